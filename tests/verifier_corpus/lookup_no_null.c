// SPDX-License-Identifier: GPL-2.0
/* lookup_no_null: counts per protocol but forgets the lookup's NULL check on one path.
 * Expected: refused. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u64);
} per_proto SEC(".maps");

SEC("tc")
int lookup_no_null(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	__u32 proto;
	__u64 *n;

	if ((void *)(ip + 1) > data_end)
		return TC_ACT_OK;
	proto = ip->protocol;
	n = bpf_map_lookup_elem(&per_proto, &proto);
	if (proto == 6 && !n)
		return TC_ACT_OK;
	*n += 1;
	return TC_ACT_OK;
}

char _license[] SEC("license") = "GPL";
