// SPDX-License-Identifier: GPL-2.0
/* Walk the first IPv4 options with a bounded loop.  Expected: accepted. */
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
int ipv4_opts(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + ETH_HLEN;
	__u8 *opt; int hl, n = 0;
	if ((void *)(ip + 1) > end) return TC_ACT_OK;
	hl = ip->ihl * 4;
	opt = (__u8 *)(ip + 1);
	for (int i = 0; i < 8; i++) {
		if ((void *)(opt + 2) > end || (void *)opt >= (void *)ip + hl) break;
		if (opt[0] == 0) break;
		if (opt[0] == 1) { opt++; continue; }
		if (opt[1] < 2) return TC_ACT_SHOT;
		n++;
		opt += opt[1];
	}
	skb->mark = n;
	return TC_ACT_OK;
}
char _license[] SEC("license") = "GPL";
