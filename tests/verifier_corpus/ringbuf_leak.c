// SPDX-License-Identifier: GPL-2.0
/* A reserved record not submitted on one path.  Expected: refused. */
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
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 4096); } rb SEC(".maps");
SEC("tc")
int rbleak(struct __sk_buff *skb)
{
	__u32 *r = bpf_ringbuf_reserve(&rb, 8, 0);
	if (!r) return TC_ACT_OK;
	r[0] = skb->len;
	if (skb->mark) return TC_ACT_SHOT;
	bpf_ringbuf_submit(r, 0);
	return TC_ACT_OK;
}
char _license[] SEC("license") = "GPL";
