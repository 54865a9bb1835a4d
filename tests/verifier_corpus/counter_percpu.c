// SPDX-License-Identifier: GPL-2.0
/* Per-CPU counters per protocol, an array map value arithmetic.  Expected: accepted. */
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
struct stats { __u64 pkts; __u64 bytes; __u64 by_len[16]; };
struct { __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); __uint(max_entries, 256);
	 __type(key, __u32); __type(value, struct stats); } st SEC(".maps");
SEC("tc")
int counter(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + ETH_HLEN;
	__u32 key; struct stats *s;
	if ((void *)(ip + 1) > end) return TC_ACT_OK;
	key = ip->protocol;
	s = bpf_map_lookup_elem(&st, &key);
	if (!s) return TC_ACT_OK;
	s->pkts++;
	s->bytes += skb->len;
	s->by_len[(skb->len >> 6) & 15]++;
	return TC_ACT_OK;
}
char _license[] SEC("license") = "GPL";
