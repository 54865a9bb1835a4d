// SPDX-License-Identifier: GPL-2.0
/* Divisions and modulo by registers (defined at run time for zero).  Expected: accepted. */
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
SEC("tc")
int divs(struct __sk_buff *skb)
{
	__u32 a = skb->len, b = skb->mark; __u64 c = skb->hash;
	return ((a / b) + (a % b) + (c / (b | 1))) & 3;
}
char _license[] SEC("license") = "GPL";
