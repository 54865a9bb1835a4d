// SPDX-License-Identifier: GPL-2.0
/* Write past skb->cb through a variable index.  Expected: refused. */
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
int cboob(struct __sk_buff *skb)
{
	skb->cb[skb->mark & 7] = 1;
	return TC_ACT_OK;
}
char _license[] SEC("license") = "GPL";
