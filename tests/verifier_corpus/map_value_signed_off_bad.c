// SPDX-License-Identifier: GPL-2.0
/* A signed offset into a map value checked only above.  Expected: refused. */
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
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, __u32); __type(value, __u64[8]); } m SEC(".maps");
SEC("tc")
int svob(struct __sk_buff *skb)
{
	__u32 k = 0; __u64 *v = bpf_map_lookup_elem(&m, &k); int i = (int)skb->mark;
	if (!v) return 0;
	if (i > 7) return 0;
	return v[i] & 1;
}
char _license[] SEC("license") = "GPL";
