// SPDX-License-Identifier: GPL-2.0
/* A length check by subtraction end - data, which the verifier does not relate to the packet.  Expected: refused. */
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
int lendiff(struct __sk_buff *skb)
{
	__u8 *p = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	if (end - p < 20) return 0;
	return p[19];
}
char _license[] SEC("license") = "GPL";
