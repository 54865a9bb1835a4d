// SPDX-License-Identifier: GPL-2.0
/* Read a 4-byte tag from the packet's metadata area in front of the data.  Expected: accepted. */
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
int meta(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *meta = (void *)(long)skb->data_meta;
	__u32 *tag = meta;
	if ((void *)(tag + 1) > data) return TC_ACT_OK;
	skb->mark = *tag;
	return TC_ACT_OK;
}
char _license[] SEC("license") = "GPL";
