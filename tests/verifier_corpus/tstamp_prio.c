// SPDX-License-Identifier: GPL-2.0
/* Writes of the writable tc fields: tstamp, priority, queue_mapping, tc_classid.  Expected: accepted. */
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
int wr(struct __sk_buff *skb)
{
	skb->tstamp = bpf_ktime_get_ns() + 1000;
	skb->priority = 7; skb->queue_mapping = 1; skb->tc_classid = 0x10002;
	return TC_ACT_OK;
}
char _license[] SEC("license") = "GPL";
