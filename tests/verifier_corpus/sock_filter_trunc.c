// SPDX-License-Identifier: GPL-2.0
/* A socket filter truncating to a header length read with bpf_skb_load_bytes.  Expected: accepted. */
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
SEC("socket")
int trunc(struct __sk_buff *skb)
{
	__u8 vhl;
	if (bpf_skb_load_bytes(skb, ETH_HLEN, &vhl, 1)) return 0;
	return ETH_HLEN + (vhl & 15) * 4 + 8;
}
char _license[] SEC("license") = "GPL";
