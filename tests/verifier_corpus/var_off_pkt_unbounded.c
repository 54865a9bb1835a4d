// SPDX-License-Identifier: GPL-2.0
/* A variable packet offset without a mask.  Expected: refused. */
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
int varoff_u(struct __sk_buff *skb)
{
	__u8 *p = (void *)(long)skb->data, *end = (void *)(long)skb->data_end; __u32 off;
	off = skb->mark;
	if (p + off + 4 > end) return 0;
	return p[off];
}
char _license[] SEC("license") = "GPL";
