// SPDX-License-Identifier: GPL-2.0
/* proto_count: counts packets and bytes per EtherType (the one behind a VLAN tag) in a
 * hash map, and packets per IP protocol (IPv4 protocol, IPv6 next header) in a per-CPU
 * array; it never changes a verdict.  Read them with `bpftool map dump name ...`.
 *   tc filter add dev eth0 ingress bpf da obj proto_count.o sec tc
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct vlan_hdr {
	__be16 h_vlan_TCI;
	__be16 h_vlan_encapsulated_proto;
};

struct counter {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u16);			/* EtherType, host order */
	__type(value, struct counter);
} ethertype_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 256);
	__type(key, __u32);			/* IP protocol number */
	__type(value, __u64);
} ipproto_packets SEC(".maps");

SEC("tc")
int proto_count(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	void *l3 = eth + 1;
	struct counter *c, fresh;
	__u32 ipproto;
	__u64 *n;
	__u16 type;

	if (l3 > data_end)
		return TC_ACT_OK;
	type = bpf_ntohs(eth->h_proto);
	if (type == ETH_P_8021Q || type == ETH_P_8021AD) {
		struct vlan_hdr *vh = l3;

		if ((void *)(vh + 1) > data_end)
			return TC_ACT_OK;
		type = bpf_ntohs(vh->h_vlan_encapsulated_proto);
		l3 = vh + 1;
	}

	c = bpf_map_lookup_elem(&ethertype_stats, &type);
	if (c) {
		__sync_fetch_and_add(&c->packets, 1);
		__sync_fetch_and_add(&c->bytes, skb->len);
	} else {
		fresh.packets = 1;
		fresh.bytes = skb->len;
		/* another CPU may have added it meanwhile; then count on that entry */
		if (bpf_map_update_elem(&ethertype_stats, &type, &fresh, BPF_NOEXIST)) {
			c = bpf_map_lookup_elem(&ethertype_stats, &type);
			if (c) {
				__sync_fetch_and_add(&c->packets, 1);
				__sync_fetch_and_add(&c->bytes, skb->len);
			}
		}
	}

	if (type == ETH_P_IP) {
		struct iphdr *ip = l3;

		if ((void *)(ip + 1) > data_end)
			return TC_ACT_OK;
		ipproto = ip->protocol;
	} else if (type == ETH_P_IPV6) {
		struct ipv6hdr *ip6 = l3;

		if ((void *)(ip6 + 1) > data_end)
			return TC_ACT_OK;
		ipproto = ip6->nexthdr;
	} else {
		return TC_ACT_OK;
	}
	n = bpf_map_lookup_elem(&ipproto_packets, &ipproto);
	if (n)
		*n += 1;		/* per-CPU: no other writer */
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
