// SPDX-License-Identifier: GPL-2.0
/* IPv6 next header walk with a bounded loop over extension headers.  Expected: accepted. */
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
struct ext { __u8 nh; __u8 len; };
SEC("tc")
int v6(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ipv6hdr *ip6 = data + ETH_HLEN; void *cur; __u8 nh;
	if ((void *)(ip6 + 1) > end) return TC_ACT_OK;
	nh = ip6->nexthdr; cur = ip6 + 1;
	for (int i = 0; i < 8; i++) {
		struct ext *e = cur;
		if (nh != 0 && nh != 43 && nh != 60) break;
		if ((void *)(e + 1) > end) return TC_ACT_SHOT;
		nh = e->nh; cur += (e->len + 1) * 8;
	}
	skb->mark = nh;
	return TC_ACT_OK;
}
char _license[] SEC("license") = "GPL";
