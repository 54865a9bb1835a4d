// SPDX-License-Identifier: GPL-2.0
/* bpf_skb_load_bytes with a length that may be zero or too big.  Expected: refused. */
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
int badsize(struct __sk_buff *skb)
{
	__u8 buf[16]; __u32 n = skb->mark & 31;
	if (bpf_skb_load_bytes(skb, 0, buf, n)) return 0;
	return buf[0];
}
char _license[] SEC("license") = "GPL";
