// SPDX-License-Identifier: GPL-2.0
/* bpf_skb_load_bytes_relative into a stack buffer.  Expected: accepted. */
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
int lbr(struct __sk_buff *skb)
{
	struct iphdr ip;
	if (bpf_skb_load_bytes_relative(skb, 0, &ip, sizeof(ip), BPF_HDR_START_NET)) return TC_ACT_OK;
	skb->mark = ip.ttl;
	return TC_ACT_OK;
}
char _license[] SEC("license") = "GPL";
