// SPDX-License-Identifier: GPL-2.0
/* A global function returning void.  Expected: refused. */
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
__attribute__((noinline)) void mark_it(struct __sk_buff *skb)
{
	skb->mark = 1;
}
SEC("tc")
int gvret(struct __sk_buff *skb)
{
	mark_it(skb);
	return TC_ACT_OK;
}
char _license[] SEC("license") = "GPL";
