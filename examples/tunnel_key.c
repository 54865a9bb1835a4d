// SPDX-License-Identifier: GPL-2.0
/* tunnel_key: on the egress of a collect_md Geneve device, picks the remote VTEP and the
 * VNI from the inner IPv4 destination (10.<vni>.<vtep>.x -> VNI 1000+<vni>, remote
 * 198.51.100.<vtep>) and adds a Geneve option carrying skb->mark.  Non-IPv4 is dropped.
 *   ip link add gnv0 type geneve external
 *   tc filter add dev gnv0 egress bpf da obj tunnel_key.o sec tc
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define VNI_BASE	1000
#define VTEP_NET	0xc6336400	/* 198.51.100.0/24 */
#define TUNNEL_TTL	64

/* a Geneve TLV option (struct geneve_opt of the kernel) with 4 bytes of data */
struct geneve_mark_opt {
	__be16 opt_class;
	__u8 type;
	__u8 length;		/* of data, in 4-byte words (low 5 bits) */
	__be32 mark;
};

SEC("tc")
int set_tunnel(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct bpf_tunnel_key key = {};
	struct geneve_mark_opt opt = {};
	__u32 dst;

	if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_SHOT;
	dst = bpf_ntohl(ip->daddr);
	key.tunnel_id = VNI_BASE + (dst >> 16 & 0xff);
	key.remote_ipv4 = VTEP_NET | (dst >> 8 & 0xff);
	key.tunnel_tos = ip->tos;
	key.tunnel_ttl = TUNNEL_TTL;
	if (bpf_skb_set_tunnel_key(skb, &key, sizeof(key), BPF_F_ZERO_CSUM_TX))
		return TC_ACT_SHOT;

	opt.opt_class = bpf_htons(0x0102);
	opt.type = 0x80;
	opt.length = sizeof(opt.mark) / 4;
	opt.mark = bpf_htonl(skb->mark);
	if (bpf_skb_set_tunnel_opt(skb, &opt, sizeof(opt)))
		return TC_ACT_SHOT;
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
