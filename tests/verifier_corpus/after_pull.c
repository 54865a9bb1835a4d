// SPDX-License-Identifier: GPL-2.0
/* Pull data, then check the bounds again.  Expected: accepted. */
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
int pull(struct __sk_buff *skb)
{
	void *data, *end;
	if (bpf_skb_pull_data(skb, 64)) return TC_ACT_OK;
	data = (void *)(long)skb->data; end = (void *)(long)skb->data_end;
	if (data + 64 > end) return TC_ACT_OK;
	return ((__u8 *)data)[63] & 1;
}
char _license[] SEC("license") = "GPL";
