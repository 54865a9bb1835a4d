// SPDX-License-Identifier: GPL-2.0
/* A packet pointer handed to a global function as an integer: it arrives as a
 * scalar, which cannot be dereferenced.  Expected: refused. */
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
__attribute__((noinline)) int first_byte(long data, long end)
{
	if (data + 1 > end) return 0;
	return *(__u8 *)data;
}
SEC("tc")
int gscalar(struct __sk_buff *skb)
{
	return first_byte(skb->data, skb->data_end) ? TC_ACT_OK : TC_ACT_SHOT;
}
char _license[] SEC("license") = "GPL";
