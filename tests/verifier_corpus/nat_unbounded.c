// SPDX-License-Identifier: GPL-2.0
/* nat_unbounded: a port-translation table indexed by the source port without a bound.
 * Expected: refused (the index is unbounded). */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct ports {
	__u16 to[64];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ports);
} table SEC(".maps");

SEC("tc")
int nat_unbounded(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);
	struct ports *p;
	__u32 zero = 0;

	if ((void *)(udp + 1) > data_end || ip->protocol != IPPROTO_UDP)
		return TC_ACT_OK;
	p = bpf_map_lookup_elem(&table, &zero);
	if (!p)
		return TC_ACT_OK;
	skb->mark = p->to[bpf_ntohs(udp->source)];
	return TC_ACT_OK;
}

char _license[] SEC("license") = "GPL";
