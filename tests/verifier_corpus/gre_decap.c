// SPDX-License-Identifier: GPL-2.0
/* Strip an outer IPv4+GRE header with bpf_skb_adjust_room.  Expected: accepted. */
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
struct greh { __be16 flags, proto; };
SEC("tc")
int decap(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + ETH_HLEN; struct greh *g = (void *)(ip + 1);
	if ((void *)(g + 1) > end || ip->protocol != 47 || ip->ihl != 5) return TC_ACT_OK;
	if (g->flags || g->proto != bpf_htons(ETH_P_IP)) return TC_ACT_OK;
	if (bpf_skb_adjust_room(skb, -(int)(sizeof(*ip) + sizeof(*g)), BPF_ADJ_ROOM_MAC, 0)) return TC_ACT_SHOT;
	return TC_ACT_OK;
}
char _license[] SEC("license") = "GPL";
