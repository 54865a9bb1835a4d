// SPDX-License-Identifier: GPL-2.0
/* Global functions calling global and static ones, the context passed down.
 * Expected: accepted. */
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
static __attribute__((noinline)) int ihl(struct iphdr *ip)
{
	return ip->ihl;
}
__attribute__((noinline)) int l4_off(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + ETH_HLEN;
	if ((void *)(ip + 1) > end) return -1;
	return ETH_HLEN + ihl(ip) * 4;
}
__attribute__((noinline)) int dport(struct __sk_buff *skb)
{
	int off = l4_off(skb);
	struct tcphdr *t;
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	asm volatile("" : "+r"(off));	/* keep clang from dropping the check */
	if (off < 0) return -1;
	t = data + (off & 0x7f);
	if ((void *)(t + 1) > end) return -1;
	return bpf_ntohs(t->dest);
}
SEC("tc")
int gchain(struct __sk_buff *skb)
{
	return dport(skb) == 22 ? TC_ACT_SHOT : TC_ACT_OK;
}
char _license[] SEC("license") = "GPL";
