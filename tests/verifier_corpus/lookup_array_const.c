// SPDX-License-Identifier: GPL-2.0
/* An array lookup whose constant key sits in a 4-byte stack slot the verifier does not track (not 8-aligned): the lookup may fail as far as it knows, so the read needs a NULL check.  Expected: refused. */
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
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 4); __type(key, __u32); __type(value, __u64); } cfg SEC(".maps");
SEC("tc")
int cfgread(struct __sk_buff *skb)
{
	__u32 k = 2; __u64 *v = bpf_map_lookup_elem(&cfg, &k);
	asm volatile("" : "+r"(v));
	return *v & 1;
}
char _license[] SEC("license") = "GPL";
