// SPDX-License-Identifier: GPL-2.0
/* ratelimit: a token bucket per source address, refilled from the clock; packets over
 * the rate are dropped.  Expected: accepted. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define RATE_PER_SEC	100
#define BURST		200

struct bucket {
	__u64 last_ns;
	__u64 tokens;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct bucket);
} buckets SEC(".maps");

SEC("tc")
int ratelimit(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct bucket *b, fresh = {};
	__u64 now = bpf_ktime_get_ns(), refill;
	__u32 src;

	if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	src = ip->saddr;
	b = bpf_map_lookup_elem(&buckets, &src);
	if (!b) {
		fresh.last_ns = now;
		fresh.tokens = BURST - 1;
		bpf_map_update_elem(&buckets, &src, &fresh, BPF_NOEXIST);
		return TC_ACT_OK;
	}
	refill = (now - b->last_ns) * RATE_PER_SEC / 1000000000ULL;
	if (refill) {
		b->tokens = b->tokens + refill > BURST ? BURST : b->tokens + refill;
		b->last_ns = now;
	}
	if (!b->tokens)
		return TC_ACT_SHOT;
	__sync_fetch_and_add(&b->tokens, -1);
	return TC_ACT_OK;
}

char _license[] SEC("license") = "GPL";
