// SPDX-License-Identifier: GPL-2.0
/* A global function dereferences its pointer argument without checking it
 * for NULL: the kernel verifies it for any caller.  Expected: refused. */
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
struct counters { __u64 pkts, bytes; };
__attribute__((noinline)) int account(struct counters *c, int len)
{
	c->pkts++;
	c->bytes += len;
	return 0;
}
SEC("tc")
int gnull(struct __sk_buff *skb)
{
	struct counters c = {};
	account(&c, skb->len);
	return c.pkts > 1 ? TC_ACT_SHOT : TC_ACT_OK;
}
char _license[] SEC("license") = "GPL";
