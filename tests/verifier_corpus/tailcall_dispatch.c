// SPDX-License-Identifier: GPL-2.0
/* Dispatch on the IP protocol through a program array.  Expected: accepted. */
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
struct { __uint(type, BPF_MAP_TYPE_PROG_ARRAY); __uint(max_entries, 256);
	 __type(key, __u32); __type(value, __u32); } jt SEC(".maps");
SEC("tc")
int dispatch(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + ETH_HLEN;
	if ((void *)(ip + 1) > end) return TC_ACT_OK;
	bpf_tail_call(skb, &jt, ip->protocol);
	return TC_ACT_OK;
}
SEC("tc")
int tcp_prog(struct __sk_buff *skb) { skb->mark = 6; return TC_ACT_OK; }
char _license[] SEC("license") = "GPL";
