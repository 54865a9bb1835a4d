// SPDX-License-Identifier: GPL-2.0
/* Sign-extending loads and moves, sdiv/smod, bswap: cpu v4 instructions under -mcpu=v4.  Expected: accepted. */
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
int v4ops(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	__s8 *p = data; long a, b;
	if ((void *)(p + 8) > end) return TC_ACT_OK;
	a = p[3]; b = *(__s16 *)(p + 4);
	b = b ? b : 1;
#if __BPF_CPU_VERSION__ >= 4
	skb->priority = (__u32)(a / b + a % b) ^ (__u32)__builtin_bswap32(skb->mark);
#else
	skb->priority = (__u32)(a + b) ^ (__u32)__builtin_bswap32(skb->mark);
#endif
	return (int)(short)skb->len < 0 ? TC_ACT_SHOT : TC_ACT_OK;
}
char _license[] SEC("license") = "GPL";
