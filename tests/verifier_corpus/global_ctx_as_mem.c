// SPDX-License-Identifier: GPL-2.0
/* The context passed where a global function takes a pointer to a struct:
 * only memory (stack, packet, map values) may be.  Expected: refused. */
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
struct flow { __u32 saddr, daddr; };
__attribute__((noinline)) int saddr_of(struct flow *f)
{
	return f ? f->saddr : 0;
}
SEC("tc")
int gctxmem(struct __sk_buff *skb)
{
	return saddr_of((struct flow *)skb) ? TC_ACT_OK : TC_ACT_SHOT;
}
char _license[] SEC("license") = "GPL";
