// SPDX-License-Identifier: GPL-2.0
/* A verdict table in an array: the classifier returns what the map says.  Expected: accepted. */
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
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 256); __type(key, __u32); __type(value, __s32); } verdict SEC(".maps");
SEC("tc")
int vt(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + ETH_HLEN; __u32 k; __s32 *v;
	if ((void *)(ip + 1) > end) return TC_ACT_UNSPEC;
	k = ip->tos; v = bpf_map_lookup_elem(&verdict, &k);
	return v ? *v : TC_ACT_UNSPEC;
}
char _license[] SEC("license") = "GPL";
