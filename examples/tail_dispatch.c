// SPDX-License-Identifier: GPL-2.0
/* tail_dispatch: a dispatcher that tail-calls one handler per IP protocol through a
 * program array filled in the object itself (libbpf's __array(values, ...)): TCP SYNs
 * get mark 1, UDP to the discard port 9 is dropped, ICMP gets priority 7.  Protocols
 * without a handler pass.  The dispatcher leaves the L4 offset in cb[0].
 *   tc filter add dev eth0 ingress bpf da obj tail_dispatch.o sec tc   (libbpf-based loaders)
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define DISCARD_PORT	9

int handle_tcp(struct __sk_buff *skb);
int handle_udp(struct __sk_buff *skb);
int handle_icmp(struct __sk_buff *skb);

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 256);
	__uint(key_size, sizeof(__u32));	/* program arrays take no BTF key type */
	__array(values, int (struct __sk_buff *));
} handlers SEC(".maps") = {
	.values = {
		[IPPROTO_TCP] = (void *)&handle_tcp,
		[IPPROTO_UDP] = (void *)&handle_udp,
		[IPPROTO_ICMP] = (void *)&handle_icmp,
		[IPPROTO_ICMPV6] = (void *)&handle_icmp,
	},
};

SEC("tc")
int dispatch(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	__u32 proto;

	if ((void *)(eth + 1) > data_end)
		return TC_ACT_OK;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > data_end || ip->ihl < 5)
			return TC_ACT_OK;
		if (ip->frag_off & bpf_htons(0x1fff))
			return TC_ACT_OK;
		proto = ip->protocol;
		skb->cb[0] = ETH_HLEN + ip->ihl * 4;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end)
			return TC_ACT_OK;
		proto = ip6->nexthdr;
		skb->cb[0] = ETH_HLEN + sizeof(*ip6);
	} else {
		return TC_ACT_OK;
	}
	bpf_tail_call(skb, &handlers, proto);
	return TC_ACT_OK;		/* no handler for this protocol */
}

SEC("tc")
int handle_tcp(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	__u32 off = skb->cb[0];
	struct tcphdr *tcp;

	if (off > 74)				/* Ethernet + the longest IPv4 header */
		return TC_ACT_OK;
	tcp = data + off;
	if ((void *)(tcp + 1) > data_end)
		return TC_ACT_OK;
	if (tcp->syn && !tcp->ack)
		skb->mark = 1;
	return TC_ACT_OK;
}

SEC("tc")
int handle_udp(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	__u32 off = skb->cb[0];
	struct udphdr *udp;

	if (off > 74)
		return TC_ACT_OK;
	udp = data + off;
	if ((void *)(udp + 1) > data_end)
		return TC_ACT_OK;
	return udp->dest == bpf_htons(DISCARD_PORT) ? TC_ACT_SHOT : TC_ACT_OK;
}

SEC("tc")
int handle_icmp(struct __sk_buff *skb)
{
	skb->priority = 7;
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
