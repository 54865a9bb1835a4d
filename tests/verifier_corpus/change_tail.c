// SPDX-License-Identifier: GPL-2.0
/* Trim the packet then re-derive pointers and write.  Expected: accepted. */
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
int tail(struct __sk_buff *skb)
{
	__u8 *p, *end;
	if (skb->len > 100 && bpf_skb_change_tail(skb, 100, 0)) return TC_ACT_SHOT;
	p = (void *)(long)skb->data; end = (void *)(long)skb->data_end;
	if (p + 20 > end) return TC_ACT_OK;
	p[19] ^= 1;
	return TC_ACT_OK;
}
char _license[] SEC("license") = "GPL";
