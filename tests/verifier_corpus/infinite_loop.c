// SPDX-License-Identifier: GPL-2.0
/* A loop that never ends on some path.  Expected: refused. */
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
int inf(struct __sk_buff *skb)
{
	volatile __u32 x = skb->mark;
	while (x != 5) { if (x > 10) x = 1; }
	return 0;
}
char _license[] SEC("license") = "GPL";
