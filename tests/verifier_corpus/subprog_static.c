// SPDX-License-Identifier: GPL-2.0
/* Static subprograms taking packet pointers.  Expected: accepted. */
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
static __attribute__((noinline)) int l4_port(void *l4, void *end)
{
	struct udphdr *u = l4;
	if ((void *)(u + 1) > end) return -1;
	return bpf_ntohs(u->dest);
}
static __attribute__((noinline)) int classify(struct __sk_buff *skb, int port)
{
	if (port == 53) { skb->priority = 1; return TC_ACT_OK; }
	if (port < 0) return TC_ACT_SHOT;
	return TC_ACT_OK;
}
SEC("tc")
int sub(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + ETH_HLEN;
	if ((void *)(ip + 1) > end) return TC_ACT_OK;
	return classify(skb, l4_port(ip + 1, end));
}
char _license[] SEC("license") = "GPL";
