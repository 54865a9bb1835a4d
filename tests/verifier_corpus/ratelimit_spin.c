// SPDX-License-Identifier: GPL-2.0
/* A token bucket with a clock and map value arithmetic, 32-bit maths.  Expected: accepted. */
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
struct tb { __u64 ts; __u32 tokens; __u32 drops; };
struct { __uint(type, BPF_MAP_TYPE_LRU_HASH); __uint(max_entries, 1024);
	 __type(key, __u32); __type(value, struct tb); } tbs SEC(".maps");
SEC("tc")
int rl(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + ETH_HLEN; struct tb *b, n = {};
	__u64 now = bpf_ktime_get_ns(); __u32 add;
	if ((void *)(ip + 1) > end) return TC_ACT_OK;
	b = bpf_map_lookup_elem(&tbs, &ip->saddr);
	if (!b) {
		n.ts = now; n.tokens = 10;
		bpf_map_update_elem(&tbs, &ip->saddr, &n, BPF_ANY);
		return TC_ACT_OK;
	}
	add = (now - b->ts) / 1000000;
	if (add) { b->tokens = b->tokens + add > 100 ? 100 : b->tokens + add; b->ts = now; }
	if (!b->tokens) { b->drops++; return TC_ACT_SHOT; }
	b->tokens--;
	return TC_ACT_OK;
}
char _license[] SEC("license") = "GPL";
