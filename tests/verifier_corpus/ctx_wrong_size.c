// SPDX-License-Identifier: GPL-2.0
/* A one-byte read of skb->len's second byte.  Expected: accepted. */
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
int narrow(struct __sk_buff *skb)
{
	return ((volatile __u8 *)&skb->len)[1] + ((volatile __u16 *)&skb->protocol)[0];
}
char _license[] SEC("license") = "GPL";
