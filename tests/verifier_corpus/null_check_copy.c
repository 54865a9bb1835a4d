// SPDX-License-Identifier: GPL-2.0
/* A NULL check on a copy of the lookup result marks the original too.  Expected: accepted. */
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
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 16); __type(key, __u32); __type(value, __u64); } m SEC(".maps");
SEC("tc")
int nc(struct __sk_buff *skb)
{
	__u32 k = skb->mark; __u64 *v = bpf_map_lookup_elem(&m, &k), *w = v;
	asm volatile("" : "+r"(w));
	if (!w) return 0;
	return *v & 1;
}
char _license[] SEC("license") = "GPL";
