// SPDX-License-Identifier: GPL-2.0
/* The caller uses what a global function returned as a pointer: global
 * functions return unknown scalars.  Expected: refused. */
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
__attribute__((noinline)) long data_of(struct __sk_buff *skb)
{
	return skb->data;
}
SEC("tc")
int gret(struct __sk_buff *skb)
{
	long d = data_of(skb);
	if (d + 1 > (long)skb->data_end) return TC_ACT_OK;
	return *(__u8 *)d;
}
char _license[] SEC("license") = "GPL";
