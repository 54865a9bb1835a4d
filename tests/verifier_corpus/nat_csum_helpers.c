// SPDX-License-Identifier: GPL-2.0
/* Rewrite the UDP source port and fix checksums with csum_diff.  Expected: accepted. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <stddef.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
SEC("tc")
int snat_port(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + ETH_HLEN; struct udphdr *udp = (void *)(ip + 1);
	__be32 from, to; __s64 d;
	if ((void *)(udp + 1) > end || ip->protocol != IPPROTO_UDP || ip->ihl != 5) return TC_ACT_OK;
	from = udp->source; to = bpf_htons(40000);
	d = bpf_csum_diff(&from, 4, &to, 4, 0);
	if (d < 0) return TC_ACT_SHOT;
	bpf_skb_store_bytes(skb, ETH_HLEN + sizeof(*ip) + offsetof(struct udphdr, source), &to, 2, 0);
	bpf_l4_csum_replace(skb, ETH_HLEN + sizeof(*ip) + offsetof(struct udphdr, check), 0, d, BPF_F_MARK_MANGLED_0);
	return TC_ACT_OK;
}
char _license[] SEC("license") = "GPL";
