// SPDX-License-Identifier: GPL-2.0
/* Spills of every width through a volatile stack array.  Expected: accepted. */
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
int spills(struct __sk_buff *skb)
{
	volatile __u8 b[8]; volatile __u16 h[4]; volatile __u32 w[2]; volatile __u64 d;
	b[3] = skb->len; h[1] = skb->mark; w[1] = skb->priority; d = skb->hash;
	return (b[3] + h[1] + w[1] + d) & 3;
}
char _license[] SEC("license") = "GPL";
