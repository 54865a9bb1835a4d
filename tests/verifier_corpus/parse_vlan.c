// SPDX-License-Identifier: GPL-2.0
/* Expected: accepted. */
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
struct vlan_hdr { __be16 tci; __be16 proto; };
SEC("tc")
int parse_vlan(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	__u16 proto; void *cur;
	if ((void *)(eth + 1) > end) return TC_ACT_OK;
	proto = eth->h_proto; cur = eth + 1;
#pragma unroll
	for (int i = 0; i < 2; i++) {
		struct vlan_hdr *v = cur;
		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD)) break;
		if ((void *)(v + 1) > end) return TC_ACT_SHOT;
		proto = v->proto; cur = v + 1;
	}
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = cur;
		if ((void *)(ip + 1) > end) return TC_ACT_SHOT;
		skb->mark = ip->protocol;
	}
	return TC_ACT_OK;
}
char _license[] SEC("license") = "GPL";
