// SPDX-License-Identifier: GPL-2.0
/* A socket filter with the load_byte/half/word builtins (LD_ABS, LD_IND).  Expected: accepted. */
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
unsigned long long load_byte(void *skb, unsigned long long off) asm("llvm.bpf.load.byte");
unsigned long long load_half(void *skb, unsigned long long off) asm("llvm.bpf.load.half");
unsigned long long load_word(void *skb, unsigned long long off) asm("llvm.bpf.load.word");
SEC("socket")
int ldabs(struct __sk_buff *skb)
{
	__u32 hl;
	if (load_half(skb, 12) != ETH_P_IP) return 0;
	if (load_byte(skb, 23) != IPPROTO_UDP) return 0;
	hl = (load_byte(skb, 14) & 15) * 4;
	if (load_half(skb, ETH_HLEN + hl + 2) == 53) return -1;
	return load_word(skb, 26) == 0x7f000001 ? 0 : 64;
}
char _license[] SEC("license") = "GPL";
