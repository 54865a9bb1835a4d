// SPDX-License-Identifier: GPL-2.0
/* Several tc helpers with constant arguments: csum_level, change_type, set_hash, hash_recalc.  Expected: accepted. */
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
int helpers(struct __sk_buff *skb)
{
	bpf_csum_level(skb, BPF_CSUM_LEVEL_QUERY);
	bpf_set_hash(skb, bpf_get_hash_recalc(skb) ^ 1);
	bpf_skb_change_type(skb, 0);
	skb->mark = bpf_get_smp_processor_id() + bpf_get_prandom_u32() + bpf_get_cgroup_classid(skb) + bpf_get_route_realm(skb);
	return TC_ACT_OK;
}
char _license[] SEC("license") = "GPL";
