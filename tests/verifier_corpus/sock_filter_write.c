// SPDX-License-Identifier: GPL-2.0
/* A socket filter may not write skb->mark.  Expected: refused. */
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
SEC("socket")
int sfw(struct __sk_buff *skb)
{
	skb->mark = 1;
	return skb->len;
}
char _license[] SEC("license") = "GPL";
