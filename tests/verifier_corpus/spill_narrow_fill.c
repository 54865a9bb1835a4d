// SPDX-License-Identifier: GPL-2.0
/* A masked index kept in a volatile 4-byte stack variable: a 32-bit spill not 8-aligned is not tracked, so the index filled back is unbounded.  Expected: refused. */
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
int spill32(struct __sk_buff *skb)
{
	volatile __u32 idx = skb->mark & 15; __u8 tab[16] = {};
	tab[idx] = 1;
	return tab[3];
}
char _license[] SEC("license") = "GPL";
