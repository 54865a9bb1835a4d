// SPDX-License-Identifier: GPL-2.0
/* A byte spilled and filled as a byte stays below 256: used to index a 256-byte map value.  Expected: accepted. */
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
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, __u32); __type(value, __u8[256]); } m SEC(".maps");
SEC("tc")
int spill8(struct __sk_buff *skb)
{
	volatile __u8 b = skb->len; __u32 k = 0; __u8 *v = bpf_map_lookup_elem(&m, &k);
	if (!v) return 0;
	v[b] += 1;
	return 0;
}
char _license[] SEC("license") = "GPL";
