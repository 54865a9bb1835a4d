// SPDX-License-Identifier: GPL-2.0
/* nat4_v2: nat4.c changed on purpose, the "new version" of `tcsim diff` examples:
 * the public address is 203.0.113.2 (was .1) and ICMP from inside is dropped (was
 * translated).  Otherwise as nat4: stateless source NAT for IPv4 on egress, TCP and
 * UDP source ports moved into 20000-21023.  The IPv4 header
 * checksum is fixed with bpf_l3_csum_replace, the TCP/UDP checksum (whose pseudo-header
 * holds the address) with bpf_l4_csum_replace and BPF_F_PSEUDO_HDR.
 *   tc filter add dev eth0 egress bpf da obj nat4_v2.o sec tc
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <stddef.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define INTERNAL_NET	0x0a000000	/* 10.0.0.0/8 */
#define INTERNAL_MASK	0xff000000
#define NAT_ADDR	0xcb007102	/* 203.0.113.2 */
#define NAT_PORT_BASE	20000
#define NAT_PORT_MASK	0x3ff

#define IP_CSUM_OFF	(ETH_HLEN + offsetof(struct iphdr, check))
#define IP_SRC_OFF	(ETH_HLEN + offsetof(struct iphdr, saddr))

SEC("tc")
int snat4(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	__be32 old_ip, new_ip = bpf_htonl(NAT_ADDR);
	__be16 old_port, new_port;
	__u32 l4_off, csum_off, flags;

	if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	old_ip = ip->saddr;
	if ((bpf_ntohl(old_ip) & INTERNAL_MASK) != INTERNAL_NET)
		return TC_ACT_OK;
	if (ip->protocol == IPPROTO_ICMP)
		return TC_ACT_SHOT;

	/* the L4 header is only in the first fragment, and only ICMP has no pseudo-header */
	l4_off = 0;
	if (!(ip->frag_off & bpf_htons(0x1fff)) &&
	    (ip->protocol == IPPROTO_TCP || ip->protocol == IPPROTO_UDP)) {
		__u32 ip_len = ip->ihl * 4;
		void *l4 = (void *)ip + ip_len;

		/* malformed: drop rather than leak the inside address */
		if (ip->ihl < 5)
			return TC_ACT_SHOT;
		if (ip->protocol == IPPROTO_TCP) {
			struct tcphdr *tcp = l4;

			if ((void *)(tcp + 1) > data_end)
				return TC_ACT_SHOT;
			old_port = tcp->source;
			csum_off = offsetof(struct tcphdr, check);
			flags = 0;
		} else {
			struct udphdr *udp = l4;

			if ((void *)(udp + 1) > data_end)
				return TC_ACT_SHOT;
			old_port = udp->source;
			csum_off = offsetof(struct udphdr, check);
			flags = BPF_F_MARK_MANGLED_0;	/* keep a zero UDP checksum zero */
		}
		l4_off = ETH_HLEN + ip_len;
		csum_off += l4_off;
	}

	if (l4_off) {
		new_port = bpf_htons(NAT_PORT_BASE + (bpf_ntohs(old_port) & NAT_PORT_MASK));
		if (bpf_l4_csum_replace(skb, csum_off, old_ip, new_ip,
					flags | BPF_F_PSEUDO_HDR | sizeof(new_ip)) ||
		    bpf_l4_csum_replace(skb, csum_off, old_port, new_port,
					flags | sizeof(new_port)) ||
		    bpf_skb_store_bytes(skb, l4_off, &new_port, sizeof(new_port), 0))
			return TC_ACT_SHOT;
	}
	if (bpf_l3_csum_replace(skb, IP_CSUM_OFF, old_ip, new_ip, sizeof(new_ip)) ||
	    bpf_skb_store_bytes(skb, IP_SRC_OFF, &new_ip, sizeof(new_ip), 0))
		return TC_ACT_SHOT;
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
