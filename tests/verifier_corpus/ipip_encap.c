// SPDX-License-Identifier: GPL-2.0
/* Encapsulate in IPIP: make room, then write a new header with bpf_skb_store_bytes.  Expected: accepted. */
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
SEC("tc")
int encap(struct __sk_buff *skb)
{
	struct iphdr h = { .version = 4, .ihl = 5, .ttl = 64, .protocol = 4 };
	h.tot_len = bpf_htons(skb->len - ETH_HLEN + sizeof(h));
	h.daddr = bpf_htonl(0x0a000001);
	if (bpf_skb_adjust_room(skb, sizeof(h), BPF_ADJ_ROOM_MAC, BPF_F_ADJ_ROOM_ENCAP_L3_IPV4)) return TC_ACT_SHOT;
	if (bpf_skb_store_bytes(skb, ETH_HLEN, &h, sizeof(h), BPF_F_RECOMPUTE_CSUM)) return TC_ACT_SHOT;
	return TC_ACT_OK;
}
char _license[] SEC("license") = "GPL";
