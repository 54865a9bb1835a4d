// SPDX-License-Identifier: GPL-2.0
/* Per-CPU hash of structs keyed by a 5-tuple built from the packet.  Expected: accepted. */
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
struct key { __u32 s, d; __u16 sp, dp; __u32 proto; };
struct { __uint(type, BPF_MAP_TYPE_PERCPU_HASH); __uint(max_entries, 128); __type(key, struct key); __type(value, __u64); } m SEC(".maps");
SEC("tc")
int pch(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + ETH_HLEN; struct tcphdr *t = (void *)(ip + 1);
	struct key k = {}; __u64 one = 1, *v;
	if ((void *)(t + 1) > end) return TC_ACT_OK;
	k.s = ip->saddr; k.d = ip->daddr; k.sp = t->source; k.dp = t->dest; k.proto = ip->protocol;
	v = bpf_map_lookup_elem(&m, &k);
	if (v) *v += 1; else bpf_map_update_elem(&m, &k, &one, BPF_NOEXIST);
	return TC_ACT_OK;
}
char _license[] SEC("license") = "GPL";
