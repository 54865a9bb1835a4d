// SPDX-License-Identifier: GPL-2.0
/* bpf_loop with a callback counting into a context struct.  Expected: accepted. */
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
struct ctxs { __u32 n; __u32 s; };
static long step(__u32 i, void *c) { struct ctxs *x = c; x->s += i; return x->s > x->n; }
SEC("tc")
int bloop(struct __sk_buff *skb)
{
	struct ctxs c = { skb->len, 0 };
	bpf_loop(100, step, &c, 0);
	return c.s & 3;
}
char _license[] SEC("license") = "GPL";
