// SPDX-License-Identifier: GPL-2.0
/* A static function's return value is known to its caller, so the index is in range.  Expected: accepted. */
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
static __attribute__((noinline)) int pick(int v) { return v & 3; }
SEC("tc")
int sret(struct __sk_buff *skb)
{
	__u32 arr[4] = {1, 2, 3, 4};
	return arr[pick(skb->len)];
}
char _license[] SEC("license") = "GPL";
