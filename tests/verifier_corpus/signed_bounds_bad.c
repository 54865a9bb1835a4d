// SPDX-License-Identifier: GPL-2.0
/* Only an upper bound on a signed index.  Expected: refused. */
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
int sbad(struct __sk_buff *skb)
{
	__u8 tab[32] = {};
	int i = (int)skb->mark - 100;
	if (i >= 32) return TC_ACT_OK;
	tab[i] = 1;
	return tab[0];
}
char _license[] SEC("license") = "GPL";
