// SPDX-License-Identifier: GPL-2.0
/* An LPM trie ACL on the source address.  Expected: accepted. */
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
struct key4 { __u32 prefixlen; __u32 addr; };
struct { __uint(type, BPF_MAP_TYPE_LPM_TRIE); __uint(max_entries, 128); __uint(map_flags, BPF_F_NO_PREALLOC);
	 __type(key, struct key4); __type(value, __u32); } acl SEC(".maps");
SEC("tc")
int lpm(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + ETH_HLEN; struct key4 k; __u32 *act;
	if ((void *)(ip + 1) > end) return TC_ACT_OK;
	k.prefixlen = 32; k.addr = ip->saddr;
	act = bpf_map_lookup_elem(&acl, &k);
	return act ? *act : TC_ACT_OK;
}
char _license[] SEC("license") = "GPL";
