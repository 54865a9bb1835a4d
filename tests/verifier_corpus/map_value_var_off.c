// SPDX-License-Identifier: GPL-2.0
/* A byte buffer in a map value written at a variable, bounded offset.  Expected: accepted. */
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
struct ring { __u32 head; __u8 buf[256]; };
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, __u32); __type(value, struct ring); } r SEC(".maps");
SEC("tc")
int mvo(struct __sk_buff *skb)
{
	__u32 k = 0; struct ring *x = bpf_map_lookup_elem(&r, &k);
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	if (!x) return TC_ACT_OK;
	if (data + 1 > end) return TC_ACT_OK;
	x->buf[x->head & 255] = *(__u8 *)data;
	x->head++;
	return TC_ACT_OK;
}
char _license[] SEC("license") = "GPL";
