// SPDX-License-Identifier: GPL-2.0
/* Large structures on the stack, memset and struct copies into a map.  Expected: accepted. */
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
struct big { __u64 w[24]; };
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 16); __type(key, __u32); __type(value, struct big); } m SEC(".maps");
SEC("tc")
int big(struct __sk_buff *skb)
{
	struct big b; __u32 k = skb->mark;
	__builtin_memset(&b, 0, sizeof(b));
	b.w[0] = skb->len; b.w[23] = skb->hash;
	bpf_map_update_elem(&m, &k, &b, BPF_ANY);
	return TC_ACT_OK;
}
char _license[] SEC("license") = "GPL";
