// SPDX-License-Identifier: GPL-2.0
/* vlan: two programs in one object.  vlan_tag (SEC "tc") puts untagged frames into
 * VLAN 100, the PCP taken from skb->priority; vlan_untag (SEC "classifier") takes the
 * outer tag off tagged frames, whether the tag is in the metadata or in the bytes.
 *   tc filter add dev eth0 egress bpf da obj vlan.o sec tc
 *   tc filter add dev eth0 ingress bpf da obj vlan.o sec classifier
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define VLAN_ID		100
#define VLAN_PRIO_SHIFT	13

static __always_inline int is_tagged(struct __sk_buff *skb)
{
	return skb->vlan_present || skb->protocol == bpf_htons(ETH_P_8021Q) ||
	       skb->protocol == bpf_htons(ETH_P_8021AD);
}

SEC("tc")
int vlan_tag(struct __sk_buff *skb)
{
	__u16 tci = VLAN_ID | (skb->priority & 7) << VLAN_PRIO_SHIFT;

	if (is_tagged(skb))
		return TC_ACT_OK;
	if (bpf_skb_vlan_push(skb, bpf_htons(ETH_P_8021Q), tci))
		return TC_ACT_SHOT;
	return TC_ACT_OK;
}

SEC("classifier")
int vlan_untag(struct __sk_buff *skb)
{
	if (!is_tagged(skb))
		return TC_ACT_OK;
	if (bpf_skb_vlan_pop(skb))
		return TC_ACT_SHOT;
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
