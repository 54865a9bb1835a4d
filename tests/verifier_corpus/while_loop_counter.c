// SPDX-License-Identifier: GPL-2.0
/* A while loop that halves a value until it is small: bounded only by the value's range.  Expected: accepted. */
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
int halve(struct __sk_buff *skb)
{
	__u32 v = skb->len & 0xffff; int n = 0;
	while (v > 1 && n < 20) { v >>= 1; n++; }
	return n;
}
char _license[] SEC("license") = "GPL";
