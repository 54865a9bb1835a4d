// SPDX-License-Identifier: GPL-2.0
/* An array of hash maps.  Expected: accepted. */
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
struct inner { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 16); __type(key, __u32); __type(value, __u64); } in0 SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS); __uint(max_entries, 2); __type(key, __u32);
	 __array(values, struct inner); } outer SEC(".maps") = { .values = { &in0 } };
SEC("tc")
int mim(struct __sk_buff *skb)
{
	__u32 k = 0, ik = skb->mark; void *m = bpf_map_lookup_elem(&outer, &k); __u64 *v;
	if (!m) return TC_ACT_OK;
	v = bpf_map_lookup_elem(m, &ik);
	if (v) *v += 1;
	return TC_ACT_OK;
}
char _license[] SEC("license") = "GPL";
