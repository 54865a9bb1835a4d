// SPDX-License-Identifier: GPL-2.0
/* lb4: a layer-4 load balancer: TCP/UDP to the virtual address picks one of eight
 * backends by a hash of the flow and rewrites the destination, fixing both checksums.
 * Expected: accepted. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <stddef.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define VIP 0xc0000201	/* 192.0.2.1 */

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u32);	/* backend address, network order */
} backends SEC(".maps");

SEC("tc")
int lb4(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	__u32 key, *backend, hash, l4_off;
	__be32 old;
	__be16 sport = 0, dport = 0;

	if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	if (ip->daddr != bpf_htonl(VIP) || ip->ihl != 5)
		return TC_ACT_OK;
	l4_off = ETH_HLEN + sizeof(*ip);
	if (ip->protocol == IPPROTO_TCP) {
		struct tcphdr *tcp = (void *)(ip + 1);

		if ((void *)(tcp + 1) > data_end)
			return TC_ACT_SHOT;
		sport = tcp->source;
		dport = tcp->dest;
	} else if (ip->protocol == IPPROTO_UDP) {
		struct udphdr *udp = (void *)(ip + 1);

		if ((void *)(udp + 1) > data_end)
			return TC_ACT_SHOT;
		sport = udp->source;
		dport = udp->dest;
	} else {
		return TC_ACT_OK;
	}
	hash = ip->saddr ^ ((__u32)sport << 16 | dport) ^ ip->protocol;
	hash ^= hash >> 16;
	key = hash & 7;
	backend = bpf_map_lookup_elem(&backends, &key);
	if (!backend || !*backend)
		return TC_ACT_SHOT;
	old = ip->daddr;
	bpf_l4_csum_replace(skb, l4_off + (ip->protocol == IPPROTO_TCP ?
			    offsetof(struct tcphdr, check) : offsetof(struct udphdr, check)),
			    old, *backend, BPF_F_PSEUDO_HDR | sizeof(old));
	bpf_l3_csum_replace(skb, ETH_HLEN + offsetof(struct iphdr, check), old, *backend,
			    sizeof(old));
	bpf_skb_store_bytes(skb, ETH_HLEN + offsetof(struct iphdr, daddr), backend,
			    sizeof(*backend), 0);
	return TC_ACT_OK;
}

char _license[] SEC("license") = "GPL";
