// SPDX-License-Identifier: GPL-2.0
/* The packet key is only checked for 2 of its 4 bytes.  Expected: refused. */
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
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 64); __type(key, __u32); __type(value, __u64); } seen SEC(".maps");
SEC("tc")
int updshort(struct __sk_buff *skb)
{
	__u8 *p = (void *)(long)skb->data, *end = (void *)(long)skb->data_end; __u64 one = 1;
	if (p + 2 > end) return TC_ACT_OK;
	bpf_map_update_elem(&seen, p, &one, BPF_ANY);
	return TC_ACT_OK;
}
char _license[] SEC("license") = "GPL";
