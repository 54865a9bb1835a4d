// SPDX-License-Identifier: GPL-2.0
/* counters: packets and bytes per DSCP value, and a histogram of lengths in 64-byte
 * buckets.  Expected: accepted. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct counter {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, struct counter);
} dscp SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64[24]);
} lengths SEC(".maps");

SEC("tc")
int counters(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct counter *c;
	__u64 *hist;
	__u32 key = 0, bucket;

	hist = bpf_map_lookup_elem(&lengths, &key);
	if (hist) {
		bucket = skb->len / 64;
		if (bucket > 23)
			bucket = 23;
		__sync_fetch_and_add(&hist[bucket], 1);
	}
	if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	key = ip->tos >> 2;
	c = bpf_map_lookup_elem(&dscp, &key);
	if (!c)
		return TC_ACT_OK;
	__sync_fetch_and_add(&c->packets, 1);
	__sync_fetch_and_add(&c->bytes, skb->len);
	return TC_ACT_OK;
}

char _license[] SEC("license") = "GPL";
