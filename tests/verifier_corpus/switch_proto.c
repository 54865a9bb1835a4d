// SPDX-License-Identifier: GPL-2.0
/* A switch over the L4 protocol with per-case parsing and signed/unsigned compares.  Expected: accepted. */
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
int sw(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + ETH_HLEN; int score = 0;
	if ((void *)(ip + 1) > end) return TC_ACT_OK;
	switch (ip->protocol) {
	case IPPROTO_TCP: {
		struct tcphdr *t = (void *)(ip + 1);
		if ((void *)(t + 1) > end) return TC_ACT_SHOT;
		score = t->syn ? 10 : (t->fin ? 5 : 1);
		break; }
	case IPPROTO_UDP: {
		struct udphdr *u = (void *)(ip + 1);
		if ((void *)(u + 1) > end) return TC_ACT_SHOT;
		score = (__s16)bpf_ntohs(u->len) < 0 ? -1 : 2;
		break; }
	case 1: score = 3; break;
	case 47: score = 4; break;
	case 50: score = 6; break;
	default: score = 7;
	}
	skb->priority = score;
	return score < 0 ? TC_ACT_SHOT : TC_ACT_OK;
}
char _license[] SEC("license") = "GPL";
