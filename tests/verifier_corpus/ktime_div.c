// SPDX-License-Identifier: GPL-2.0
/* 64-bit arithmetic on the clock, a divide by a constant, and a spill of the result.  Expected: accepted. */
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
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 60); __type(key, __u32); __type(value, __u64); } sec SEC(".maps");
SEC("tc")
int kt(struct __sk_buff *skb)
{
	__u32 k = (bpf_ktime_get_ns() / 1000000000ULL) % 60; __u64 *v = bpf_map_lookup_elem(&sec, &k);
	if (v) __sync_fetch_and_add(v, skb->len);
	return TC_ACT_OK;
}
char _license[] SEC("license") = "GPL";
