// SPDX-License-Identifier: GPL-2.0
/* A global function updates a map value its caller looked up and checked.
 * Expected: accepted. */
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
struct stats { __u64 pkts, bytes; };
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, struct stats);
} stats SEC(".maps");
__attribute__((noinline)) int bump(struct stats *s, __u32 len)
{
	if (!s) return -1;
	__sync_fetch_and_add(&s->pkts, 1);
	__sync_fetch_and_add(&s->bytes, len);
	return 0;
}
SEC("tc")
int gmap(struct __sk_buff *skb)
{
	__u32 k = skb->protocol & 3;
	bump(bpf_map_lookup_elem(&stats, &k), skb->len);
	return TC_ACT_OK;
}
char _license[] SEC("license") = "GPL";
