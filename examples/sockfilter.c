// SPDX-License-Identifier: GPL-2.0
/* sockfilter: a socket filter that keeps only TCP segments from or to port 443 (IPv4
 * and IPv6) and truncates each to its IP and TCP headers; the rest is dropped (0).
 * Offsets start at the network header: attach it to an AF_PACKET SOCK_DGRAM or an
 * AF_INET/AF_INET6 raw socket with setsockopt(SO_ATTACH_BPF).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define HTTPS_PORT	443

SEC("socket")
int keep_https_headers(struct __sk_buff *skb)
{
	struct tcphdr tcp;
	__u32 l4_off;

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;

		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) || ip.protocol != IPPROTO_TCP ||
		    ip.ihl < 5 || ip.frag_off & bpf_htons(0x1fff))
			return 0;
		l4_off = ip.ihl * 4;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;

		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)) || ip6.nexthdr != IPPROTO_TCP)
			return 0;
		l4_off = sizeof(ip6);
	} else {
		return 0;
	}
	if (bpf_skb_load_bytes(skb, l4_off, &tcp, sizeof(tcp)))
		return 0;
	if (tcp.source != bpf_htons(HTTPS_PORT) && tcp.dest != bpf_htons(HTTPS_PORT))
		return 0;
	return l4_off + tcp.doff * 4;
}

char LICENSE[] SEC("license") = "GPL";
