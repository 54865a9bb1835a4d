// SPDX-License-Identifier: GPL-2.0
/* Index a map value array with a mask one too wide.  Expected: refused. */
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
struct stats { __u64 pkts; __u64 by_len[16]; };
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
	 __type(key, __u32); __type(value, struct stats); } st SEC(".maps");
SEC("tc")
int counter_oob(struct __sk_buff *skb)
{
	__u32 key = 0; struct stats *s = bpf_map_lookup_elem(&st, &key);
	if (!s) return TC_ACT_OK;
	s->by_len[(skb->len >> 6) & 31]++;
	return TC_ACT_OK;
}
char _license[] SEC("license") = "GPL";
