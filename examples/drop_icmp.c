// SPDX-License-Identifier: GPL-2.0
/* drop_icmp: a tc classifier (direct-action) that drops ICMP and ICMPv6 and passes
 * everything else, VLAN-tagged frames included (one 802.1Q/802.1ad tag in the bytes).
 *   tc qdisc add dev eth0 clsact
 *   tc filter add dev eth0 ingress bpf da obj drop_icmp.o sec tc
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* <linux/if_vlan.h> keeps struct vlan_hdr to the kernel */
struct vlan_hdr {
	__be16 h_vlan_TCI;
	__be16 h_vlan_encapsulated_proto;
};

SEC("tc")
int drop_icmp(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	void *l3 = eth + 1;
	__u16 proto;

	if (l3 > data_end)
		return TC_ACT_OK;
	proto = eth->h_proto;
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
		struct vlan_hdr *vh = l3;

		if ((void *)(vh + 1) > data_end)
			return TC_ACT_OK;
		proto = vh->h_vlan_encapsulated_proto;
		l3 = vh + 1;
	}

	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = l3;

		if ((void *)(ip + 1) > data_end)
			return TC_ACT_OK;
		return ip->protocol == IPPROTO_ICMP ? TC_ACT_SHOT : TC_ACT_OK;
	}
	if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;

		if ((void *)(ip6 + 1) > data_end)
			return TC_ACT_OK;
		/* only the first next-header; ICMPv6 behind extension headers passes */
		return ip6->nexthdr == IPPROTO_ICMPV6 ? TC_ACT_SHOT : TC_ACT_OK;
	}
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
