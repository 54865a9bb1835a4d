// SPDX-License-Identifier: GPL-2.0
/* parser_off_by_one: checks the IPv4 header's end, then reads the first L4 byte behind
 * it.  Expected: refused (the read is one byte past the checked range). */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

SEC("tc")
int parser_off_by_one(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	__u8 *l4 = (void *)(ip + 1);

	if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	skb->mark = *l4;
	return TC_ACT_OK;
}

char _license[] SEC("license") = "GPL";
