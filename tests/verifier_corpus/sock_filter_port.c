// SPDX-License-Identifier: GPL-2.0
/* A socket filter keeping TCP to port 22 by direct packet access, which socket filters may not use (skb->data).  Expected: refused. */
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
SEC("socket")
int keep_ssh(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data; struct iphdr *ip = (void *)(eth + 1); struct tcphdr *tcp;
	if ((void *)(ip + 1) > end) return 0;
	if (eth->h_proto != bpf_htons(ETH_P_IP) || ip->protocol != IPPROTO_TCP) return 0;
	tcp = (void *)ip + ip->ihl * 4;
	if ((void *)(tcp + 1) > end) return 0;
	return tcp->dest == bpf_htons(22) ? skb->len : 0;
}
char _license[] SEC("license") = "GPL";
