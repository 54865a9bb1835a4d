// SPDX-License-Identifier: GPL-2.0
/* Return a full 64-bit value from a classifier.  Expected: accepted. */
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
int retv(struct __sk_buff *skb) { return skb->len * 3; }
char _license[] SEC("license") = "GPL";
