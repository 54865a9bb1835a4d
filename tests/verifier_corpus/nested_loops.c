// SPDX-License-Identifier: GPL-2.0
/* Nested bounded loops over a stack matrix.  Expected: accepted. */
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
int nested(struct __sk_buff *skb)
{
	__u32 m[4][4]; __u32 s = 0;
	for (int i = 0; i < 4; i++)
		for (int j = 0; j < 4; j++)
			m[i][j] = skb->len + i * j;
	for (int i = 0; i < 4; i++)
		for (int j = 0; j < 4; j++)
			s += m[j][i];
	return s & 3;
}
char _license[] SEC("license") = "GPL";
