// SPDX-License-Identifier: GPL-2.0
/* Turn an ICMP echo request into a reply in place and bounce it.  Expected: accepted. */
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
struct icmphdr { __u8 type, code; __sum16 checksum; __be16 id, seq; };
#define ICMP_ECHO 8
#define ICMP_ECHOREPLY 0
SEC("tc")
int pong(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data; struct iphdr *ip = (void *)(eth + 1); struct icmphdr *ic;
	__u8 mac[ETH_ALEN]; __be32 a; __u16 old;
	if ((void *)(ip + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP)) return TC_ACT_OK;
	if (ip->protocol != IPPROTO_ICMP || ip->ihl != 5) return TC_ACT_OK;
	ic = (void *)(ip + 1);
	if ((void *)(ic + 1) > end || ic->type != ICMP_ECHO) return TC_ACT_OK;
	__builtin_memcpy(mac, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, mac, ETH_ALEN);
	a = ip->saddr; ip->saddr = ip->daddr; ip->daddr = a;
	old = *(__u16 *)ic; ic->type = ICMP_ECHOREPLY;
	bpf_l4_csum_replace(skb, ETH_HLEN + sizeof(*ip) + offsetof(struct icmphdr, checksum), old, *(__u16 *)ic, 2);
	return bpf_redirect(skb->ifindex, 0);
}
char _license[] SEC("license") = "GPL";
