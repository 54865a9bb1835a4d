// SPDX-License-Identifier: GPL-2.0
/* The caller hands a global function the context plus an offset.
 * Expected: refused. */
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
__attribute__((noinline)) int mark_of(struct __sk_buff *skb)
{
	return skb->mark;
}
SEC("tc")
int gctxoff(struct __sk_buff *skb)
{
	return mark_of((struct __sk_buff *)((char *)skb + 8));
}
char _license[] SEC("license") = "GPL";
