// SPDX-License-Identifier: GPL-2.0
/* Walk TCP options looking for MSS, a bounded loop with variable offsets.  Expected: accepted. */
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
int mss(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + ETH_HLEN; struct tcphdr *t = (void *)(ip + 1);
	__u8 *o; __u32 off = 0, len;
	if ((void *)(t + 1) > end || ip->protocol != IPPROTO_TCP || ip->ihl != 5) return TC_ACT_OK;
	len = t->doff * 4;
	if (len < sizeof(*t)) return TC_ACT_SHOT;
	len -= sizeof(*t);
	o = (__u8 *)(t + 1);
	for (int i = 0; i < 10; i++) {
		__u8 *p;
		if (off >= len || off > 36) break;
		p = o + off;
		if (p + 4 > (__u8 *)end) break;
		if (p[0] == 0) break;
		if (p[0] == 1) { off++; continue; }
		if (p[0] == 2 && p[1] == 4) { skb->mark = (p[2] << 8) | p[3]; break; }
		if (p[1] < 2) break;
		off += p[1];
	}
	return TC_ACT_OK;
}
char _license[] SEC("license") = "GPL";
