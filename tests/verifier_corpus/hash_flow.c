// SPDX-License-Identifier: GPL-2.0
/* Flow table: lookup, update on miss, atomic add.  Expected: accepted. */
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
struct flow { __be32 s, d; __be16 sp, dp; __u8 proto; __u8 pad[3]; };
struct fstat { __u64 pkts, bytes; };
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 4096);
	 __type(key, struct flow); __type(value, struct fstat); } flows SEC(".maps");
SEC("tc")
int flowtab(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + ETH_HLEN; struct udphdr *l4;
	struct flow k = {}; struct fstat *v, init = {1, 0};
	if ((void *)(ip + 1) > end) return TC_ACT_OK;
	k.s = ip->saddr; k.d = ip->daddr; k.proto = ip->protocol;
	l4 = (void *)ip + (ip->ihl << 2);
	if ((void *)(l4 + 1) <= end) { k.sp = l4->source; k.dp = l4->dest; }
	v = bpf_map_lookup_elem(&flows, &k);
	if (v) {
		__sync_fetch_and_add(&v->pkts, 1);
		__sync_fetch_and_add(&v->bytes, skb->len);
	} else {
		init.bytes = skb->len;
		bpf_map_update_elem(&flows, &k, &init, BPF_NOEXIST);
	}
	return TC_ACT_OK;
}
char _license[] SEC("license") = "GPL";
