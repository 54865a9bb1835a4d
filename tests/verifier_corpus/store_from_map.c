// SPDX-License-Identifier: GPL-2.0
/* bpf_skb_store_bytes with a map value as the source, bpf_csum_diff over packet bytes.  Expected: accepted. */
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
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, __u32); __type(value, __u8[6]); } mac SEC(".maps");
SEC("tc")
int setmac(struct __sk_buff *skb)
{
	__u32 k = 0; __u8 *v = bpf_map_lookup_elem(&mac, &k);
	__u8 *p = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	if (!v) return TC_ACT_OK;
	if (p + 16 > end) return TC_ACT_OK;
	skb->mark = bpf_csum_diff((void *)p, 8, (void *)(p + 8), 8, 0);
	bpf_skb_store_bytes(skb, 0, v, 6, 0);
	return TC_ACT_OK;
}
char _license[] SEC("license") = "GPL";
