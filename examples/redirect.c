// SPDX-License-Identifier: GPL-2.0
/* redirect: frames for the router MAC 02:00:00:00:00:0a go out of ifindex ROUTER_IFINDEX,
 * with a copy to the mirror port (bpf_clone_redirect); TCP to port 8080 is handed to the
 * ingress of PROXY_IFINDEX; everything else passes.  The ifindexes are compile-time
 * settings (-DROUTER_IFINDEX=n ...); the mirror defaults to 1, the loopback device.
 *   tc filter add dev eth0 ingress bpf da obj redirect.o sec tc
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#ifndef ROUTER_IFINDEX
#define ROUTER_IFINDEX	4
#endif
#ifndef PROXY_IFINDEX
#define PROXY_IFINDEX	5
#endif
#ifndef MIRROR_IFINDEX
#define MIRROR_IFINDEX	1
#endif
#define PROXY_PORT	8080

static const unsigned char router_mac[ETH_ALEN] = { 0x02, 0, 0, 0, 0, 0x0a };

static __always_inline int is_router_mac(const unsigned char *mac)
{
#pragma unroll
	for (int i = 0; i < ETH_ALEN; i++)
		if (mac[i] != router_mac[i])
			return 0;
	return 1;
}

SEC("tc")
int redirect_by_dst(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct tcphdr *tcp;

	if ((void *)(eth + 1) > data_end)
		return TC_ACT_OK;
	if (is_router_mac(eth->h_dest)) {
		/* a failed copy must not stop the original */
		bpf_clone_redirect(skb, MIRROR_IFINDEX, 0);
		return bpf_redirect(ROUTER_IFINDEX, 0);
	}
	if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP) ||
	    ip->protocol != IPPROTO_TCP || ip->ihl < 5 || ip->frag_off & bpf_htons(0x1fff))
		return TC_ACT_OK;
	tcp = (void *)ip + ip->ihl * 4;
	if ((void *)(tcp + 1) > data_end)
		return TC_ACT_OK;
	if (tcp->dest == bpf_htons(PROXY_PORT))
		return bpf_redirect(PROXY_IFINDEX, BPF_F_INGRESS);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
