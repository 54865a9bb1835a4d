// SPDX-License-Identifier: GPL-2.0
/* A parser split into global functions taking the context and a stack struct
 * (checked for NULL), and a scalar.  Expected: accepted. */
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
struct flow { __u32 saddr, daddr; __u16 sport, dport; __u8 proto; };
__attribute__((noinline)) int parse_ip(struct __sk_buff *skb, struct flow *f)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + ETH_HLEN;
	if ((void *)(ip + 1) > end || !f) return -1;
	f->saddr = ip->saddr; f->daddr = ip->daddr; f->proto = ip->protocol;
	return ip->ihl * 4;
}
__attribute__((noinline)) int parse_ports(struct __sk_buff *skb, int off, struct flow *f)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct udphdr *u;
	asm volatile("" : "+r"(off));	/* keep clang from merging the checks below */
	if (!f || off < 20) return -1;
	u = data + ETH_HLEN + (off & 0x3c);
	if ((void *)(u + 1) > end) return -1;
	f->sport = bpf_ntohs(u->source); f->dport = bpf_ntohs(u->dest);
	return 0;
}
__attribute__((noinline)) int verdict(int port)
{
	return port == 53 ? TC_ACT_SHOT : TC_ACT_OK;
}
SEC("tc")
int gparse(struct __sk_buff *skb)
{
	struct flow f = {};
	int off = parse_ip(skb, &f);
	if (off < 0 || parse_ports(skb, off, &f)) return TC_ACT_OK;
	return verdict(f.dport);
}
char _license[] SEC("license") = "GPL";
