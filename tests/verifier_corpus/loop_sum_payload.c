// SPDX-License-Identifier: GPL-2.0
/* A checksum over the first 64 payload bytes, a bounded loop with a bounds check each step.  Expected: accepted. */
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
int psum(struct __sk_buff *skb)
{
	__u8 *p = (void *)(long)skb->data, *end = (void *)(long)skb->data_end; __u32 s = 0;
	for (int i = 0; i < 64; i++) {
		if (p + i + 1 > end) break;
		s += p[i];
	}
	return s & 7;
}
char _license[] SEC("license") = "GPL";
