// SPDX-License-Identifier: GPL-2.0
/* Push and pop VLAN tags, change_proto, adjust_room.  Expected: accepted. */
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
int vlan(struct __sk_buff *skb)
{
	if (skb->vlan_present) return bpf_skb_vlan_pop(skb) ? TC_ACT_SHOT : TC_ACT_OK;
	if (bpf_skb_vlan_push(skb, bpf_htons(ETH_P_8021Q), 100)) return TC_ACT_SHOT;
	if (skb->len > 1000 && bpf_skb_adjust_room(skb, 8, BPF_ADJ_ROOM_NET, 0)) return TC_ACT_SHOT;
	return TC_ACT_OK;
}
char _license[] SEC("license") = "GPL";
