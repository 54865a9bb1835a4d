// SPDX-License-Identifier: GPL-2.0
/* Send a sample to a perf event array.  Expected: accepted. */
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
struct { __uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY); __uint(max_entries, 64); __uint(key_size, 4); __uint(value_size, 4); } ev SEC(".maps");
struct sample { __u32 len, mark; };
SEC("tc")
int perf(struct __sk_buff *skb)
{
	struct sample s = { skb->len, skb->mark };
	bpf_perf_event_output(skb, &ev, BPF_F_CURRENT_CPU | ((__u64)64 << 32), &s, sizeof(s));
	return TC_ACT_OK;
}
char _license[] SEC("license") = "GPL";
