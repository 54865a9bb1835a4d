// SPDX-License-Identifier: GPL-2.0
/* Read the metadata area without comparing with data.  Expected: refused. */
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
int meta_bad(struct __sk_buff *skb)
{
	__u32 *tag = (void *)(long)skb->data_meta;
	skb->mark = *tag;
	return TC_ACT_OK;
}
char _license[] SEC("license") = "GPL";
