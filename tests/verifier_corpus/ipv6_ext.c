// SPDX-License-Identifier: GPL-2.0
/* ipv6_ext: walks up to eight IPv6 extension headers in a bounded loop to find the
 * upper-layer protocol and counts it.  Expected: accepted. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u64);
} l4_packets SEC(".maps");

struct opt_hdr {
	__u8 nexthdr;
	__u8 hdrlen;
};

SEC("tc")
int ipv6_ext(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct ipv6hdr *ip6 = (void *)(eth + 1);
	void *cur;
	__u32 next, i;
	__u64 *n;

	if ((void *)(ip6 + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IPV6))
		return TC_ACT_OK;
	next = ip6->nexthdr;
	cur = ip6 + 1;
	for (i = 0; i < 8; i++) {
		struct opt_hdr *h = cur;

		if (next != IPPROTO_HOPOPTS && next != IPPROTO_ROUTING &&
		    next != IPPROTO_DSTOPTS)
			break;
		if ((void *)(h + 1) > data_end)
			return TC_ACT_SHOT;
		next = h->nexthdr;
		cur += (h->hdrlen + 1) * 8;
	}
	n = bpf_map_lookup_elem(&l4_packets, &next);
	if (n)
		__sync_fetch_and_add(n, 1);
	return TC_ACT_OK;
}

char _license[] SEC("license") = "GPL";
