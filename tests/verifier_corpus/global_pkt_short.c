// SPDX-License-Identifier: GPL-2.0
/* The caller passes a TCP header pointer it checked for the 14 bytes the callee
 * reads, not for the 20 the argument type has.  Expected: refused. */
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
__attribute__((noinline)) int tcp_flags(struct tcphdr *t)
{
	return t ? ((__u8 *)t)[13] : 0;
}
SEC("tc")
int gshort(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct tcphdr *t = data + ETH_HLEN + sizeof(struct iphdr);
	if ((void *)t + 14 > end) return TC_ACT_OK;
	return tcp_flags(t) & 2 ? TC_ACT_SHOT : TC_ACT_OK;
}
char _license[] SEC("license") = "GPL";
