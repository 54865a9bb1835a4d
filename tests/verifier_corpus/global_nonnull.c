// SPDX-License-Identifier: GPL-2.0
/* A global function whose pointer argument is tagged __arg_nonnull writes
 * through it unchecked: its callers are checked instead.  Expected: accepted. */
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
struct meta { __u32 len, mark, prio; };
__attribute__((noinline)) int fill(struct meta *m __attribute__((btf_decl_tag("arg:nonnull"))),
				   __u32 len, __u32 mark)
{
	m->len = len;
	m->mark = mark;
	m->prio = len > 1000 ? 1 : 0;
	return 0;
}
SEC("tc")
int gnonnull(struct __sk_buff *skb)
{
	struct meta m;
	fill(&m, skb->len, skb->mark);
	skb->priority = m.prio;
	return TC_ACT_OK;
}
char _license[] SEC("license") = "GPL";
