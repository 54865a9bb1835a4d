// SPDX-License-Identifier: GPL-2.0
/* bpf_clone_redirect and bpf_redirect by a map value.  Expected: accepted. */
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
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 4); __type(key, __u32); __type(value, __u32); } ports SEC(".maps");
SEC("tc")
int mirror(struct __sk_buff *skb)
{
	__u32 k = skb->queue_mapping & 3, *ifi = bpf_map_lookup_elem(&ports, &k);
	if (!ifi) return TC_ACT_OK;
	bpf_clone_redirect(skb, *ifi, 0);
	return bpf_redirect(*ifi + 1, BPF_F_INGRESS);
}
char _license[] SEC("license") = "GPL";
