// SPDX-License-Identifier: GPL-2.0
/* Scratch state in skb->cb between programs.  Expected: accepted. */
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
int cb(struct __sk_buff *skb)
{
	skb->cb[0] = skb->len; skb->cb[4 - 1] = skb->cb[0] + 1;
	skb->tc_index = skb->cb[3] & 0xffff;
	skb->tc_classid = 0x10001;
	return TC_ACT_OK;
}
char _license[] SEC("license") = "GPL";
