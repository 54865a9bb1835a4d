// SPDX-License-Identifier: GPL-2.0
/* Signed range checks on an index into a stack array.  Expected: accepted. */
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
int sbounds(struct __sk_buff *skb)
{
	__u8 tab[32] = {};
	int i = (int)skb->mark - 100;
	if (i < 0 || i >= 32) return TC_ACT_OK;
	tab[i] = 1;
	return tab[(skb->len) & 31];
}
char _license[] SEC("license") = "GPL";
