// SPDX-License-Identifier: GPL-2.0
/* A map key partly uninitialised (padding) is fine for root.  Expected: accepted. */
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
struct k { __u8 a; __u32 b; };
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 16); __type(key, struct k); __type(value, __u32); } m SEC(".maps");
SEC("tc")
int ukey(struct __sk_buff *skb)
{
	struct k key; __u32 *v;
	key.a = skb->mark; key.b = skb->len;
	v = bpf_map_lookup_elem(&m, &key);
	return v ? *v : 0;
}
char _license[] SEC("license") = "GPL";
