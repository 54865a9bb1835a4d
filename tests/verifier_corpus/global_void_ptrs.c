// SPDX-License-Identifier: GPL-2.0
/* A global parser taking (void *data, void *data_end), as static ones do: a
 * global function cannot take a pointer to void.  Expected: refused. */
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
__attribute__((noinline)) int eth_proto(void *data, void *end)
{
	struct ethhdr *e = data;
	if ((void *)(e + 1) > end) return 0;
	return e->h_proto;
}
SEC("tc")
int gvoid(struct __sk_buff *skb)
{
	return eth_proto((void *)(long)skb->data, (void *)(long)skb->data_end) ==
	       bpf_htons(ETH_P_IP) ? TC_ACT_OK : TC_ACT_SHOT;
}
char _license[] SEC("license") = "GPL";
