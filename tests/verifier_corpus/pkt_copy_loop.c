// SPDX-License-Identifier: GPL-2.0
/* Copy a MAC address byte by byte in a loop with packet bounds.  Expected: accepted. */
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
int cpy(struct __sk_buff *skb)
{
	__u8 *p = (void *)(long)skb->data, *end = (void *)(long)skb->data_end; __u8 mac[6];
	if (p + 12 > end) return TC_ACT_OK;
	for (int i = 0; i < 6; i++) mac[i] = p[6 + i];
	for (int i = 0; i < 6; i++) p[i] = mac[i];
	return TC_ACT_OK;
}
char _license[] SEC("license") = "GPL";
