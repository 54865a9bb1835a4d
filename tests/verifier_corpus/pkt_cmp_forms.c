// SPDX-License-Identifier: GPL-2.0
/* Packet pointer comparisons in several forms (end < p, p + n <= end, end - p >= n).  Expected: accepted. */
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
int cmps(struct __sk_buff *skb)
{
	__u8 *p = (void *)(long)skb->data, *end = (void *)(long)skb->data_end; int r = 0;
	if (end < p + 14) return 0;
	r += p[13];
	if (p + 20 <= end) r += p[19];
	if (!(p + 24 > end)) r += p[23];
	if (end >= p + 30) r += p[29];
	if (end > p + 34) r += p[34];
	return r & 3;
}
char _license[] SEC("license") = "GPL";
