// SPDX-License-Identifier: GPL-2.0
/* skb->len is read-only.  Expected: refused. */
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
int wl(struct __sk_buff *skb)
{
	skb->len = 60;
	return TC_ACT_OK;
}
char _license[] SEC("license") = "GPL";
