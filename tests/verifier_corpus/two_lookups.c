// SPDX-License-Identifier: GPL-2.0
/* Two lookups; only the first is NULL-checked before both are read.  Expected: refused. */
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
int two(struct __sk_buff *skb)
{
	__u32 k = skb->mark, k2 = k + 1; __u64 *a = bpf_map_lookup_elem(&m, &k), *b = bpf_map_lookup_elem(&m, &k2);
	if (!a) return 0;
	asm volatile("" : "+r"(b));
	return (*a + *b) & 1;
}
char _license[] SEC("license") = "GPL";
