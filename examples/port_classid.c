// SPDX-License-Identifier: GPL-2.0
/* port_classid: a direct-action classifier that picks an HTB class and a priority by
 * destination port range (TCP and UDP over IPv4 and IPv6); other traffic is left alone.
 * skb->tc_classid holds only the class's minor number (it is 16 bits in the kernel);
 * cls_bpf takes the major number from the filter's own classid:
 *   tc filter add dev eth0 parent 1: bpf da obj port_classid.o sec classifier classid 1:
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

/* one class and priority per destination port range; first match wins */
static __always_inline int classify(struct __sk_buff *skb, __u16 dport)
{
	__u32 classid, priority;	/* classid: the minor number, 1:<classid> */

	if (dport == 22 || dport == 23 || dport == 53) {	/* ssh, telnet, dns */
		classid = 0x10;
		priority = 6;
	} else if (dport == 80 || dport == 443) {		/* web */
		classid = 0x20;
		priority = 4;
	} else if (dport >= 5000 && dport <= 5999) {		/* media */
		classid = 0x30;
		priority = 2;
	} else if (dport >= 6881 && dport <= 6889) {		/* bulk */
		classid = 0x40;
		priority = 0;
	} else {
		return TC_ACT_UNSPEC;
	}
	skb->tc_classid = classid;
	skb->priority = priority;
	return TC_ACT_OK;
}

SEC("classifier")
int port_classid(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	__u8 l4proto;
	void *l4;

	if ((void *)(eth + 1) > data_end)
		return TC_ACT_UNSPEC;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > data_end || ip->ihl < 5)
			return TC_ACT_UNSPEC;
		if (ip->frag_off & bpf_htons(0x1fff))	/* no L4 header in later fragments */
			return TC_ACT_UNSPEC;
		l4proto = ip->protocol;
		l4 = (void *)ip + ip->ihl * 4;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end)
			return TC_ACT_UNSPEC;
		l4proto = ip6->nexthdr;
		l4 = ip6 + 1;
	} else {
		return TC_ACT_UNSPEC;
	}

	if (l4proto == IPPROTO_TCP) {
		struct tcphdr *tcp = l4;

		if ((void *)(tcp + 1) > data_end)
			return TC_ACT_UNSPEC;
		return classify(skb, bpf_ntohs(tcp->dest));
	}
	if (l4proto == IPPROTO_UDP) {
		struct udphdr *udp = l4;

		if ((void *)(udp + 1) > data_end)
			return TC_ACT_UNSPEC;
		return classify(skb, bpf_ntohs(udp->dest));
	}
	return TC_ACT_UNSPEC;
}

char LICENSE[] SEC("license") = "GPL";
