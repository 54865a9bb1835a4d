"""Runs through bpf_cast_to_kern_ctx and bpf_rdonly_cast: a tc program reads the
struct sk_buff and net_device behind its context, after writing __sk_buff fields or
calling a helper that changes the packet, and pyebpf gives the values the kernel's
BPF_PROG_TEST_RUN gives (read back from the object's .bss in both)."""
from __future__ import annotations

import struct

import pytest
from scapy.all import IP, TCP, UDP, Dot1Q, Ether, raw

import pyebpf
from pyebpf.skb import kern

from recorded_kernel import count_comparison
from skbdiff import engine_fields
from test_core import _core_object

PACKETS = {
    "tcp": raw(Ether(dst="00:00:00:00:00:00") / IP() / TCP()),
    "udp-broadcast": raw(Ether() / IP() / UDP() / b"payload"),
    "vlan": raw(Ether(dst="02:00:00:00:00:01") / Dot1Q(vlan=5) / IP() / TCP()),
}
CTX = {"mark": 7, "priority": 3, "ifindex": 1}

# what each program stores in out[], one C expression per slot
READS = {
    "fields": [
        "skb->len", "skb->data_len", "skb->protocol", "skb->pkt_type", "skb->mark",
        "skb->priority", "skb->queue_mapping", "skb->tc_index", "skb->vlan_tci",
        "skb->vlan_proto", "skb->skb_iif", "skb->tstamp", "skb->dev->ifindex",
        "skb->data - skb->head", "skb->tail", "skb->mac_header", "skb->network_header",
        "skb->transport_header",
    ],
    "after_context_writes": [
        "skb->mark", "skb->priority", "skb->tc_index", "skb->queue_mapping",
        "*(__u32 *)&skb->cb[12]", "*(__u32 *)&skb->cb[24]", "skb->cb[9]",
    ],
    "after_a_vlan_push": [
        "skb->len", "skb->vlan_tci", "skb->vlan_proto", "skb->protocol",
        "skb->data - skb->head", "skb->mac_header", "skb->network_header", "skb->tail",
    ],
    "after_a_change_tail": ["skb->len", "skb->tail", "skb->data - skb->head"],
    "through_rdonly_cast": [
        "((struct sk_buff *)bpf_rdonly_cast(skb, bpf_core_type_id_kernel(struct sk_buff)))"
        "->len",
        "((char *)bpf_rdonly_cast(skb, 0))[112]",
        "*(__u16 *)((char *)bpf_rdonly_cast(skb, 0) + 176)",
        "((struct net_device *)bpf_rdonly_cast(skb->dev, "
        "bpf_core_type_id_kernel(struct net_device)))->ifindex",
    ],
}
BEFORE = {
    "after_context_writes": "ctx->mark = 0x1234; ctx->priority = 9; ctx->tc_index = 6; "
                            "ctx->queue_mapping = 2; ctx->cb[1] = 0xabcd; "
                            "ctx->cb[4] = 0x55667788;",
    "after_a_vlan_push": "bpf_skb_vlan_push(ctx, bpf_htons(0x88a8), 42);",
    "after_a_change_tail": "bpf_skb_change_tail(ctx, ctx->len + 10, 0);",
}
SOURCE = """
#include <bpf/bpf_endian.h>

extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;
__u64 out[%d];

SEC("tc")
int kern(struct __sk_buff *ctx)
{
    struct sk_buff *skb;
    %s
    skb = bpf_cast_to_kern_ctx(ctx);
    %s
    return 0;
}
char _license[] SEC("license") = "GPL";
"""


def _object(case: str) -> bytes:
    reads = READS[case]
    body = "\n    ".join(f"out[{k}] = {expr};" for k, expr in enumerate(reads))
    return _core_object(SOURCE % (len(reads), BEFORE.get(case, ""), body))


def _out(value: bytes, n: int) -> list[int]:
    return list(struct.unpack(f"<{n}Q", value[:8 * n]))


@pytest.mark.parametrize("packet", sorted(PACKETS))
@pytest.mark.parametrize("case", sorted(READS))
def test_reads_through_the_kernel_context_give_the_kernels_values(case, packet,
                                                                   kernel_oracle):
    data, n = _object(case), len(READS[case])
    obj = pyebpf.load(data)
    prog = obj.program("kern")
    prog.run(PACKETS[packet], **engine_fields(prog.prog_type, CTX))
    ours = _out(obj.maps[".bss"].lookup(bytes(4)), n)
    with kernel_oracle.load_object(data) as kobj:
        kobj.program("kern").test_run(PACKETS[packet], ctx=CTX)
        theirs = _out(kobj.maps[".bss"].lookup(bytes(4)), n)
    count_comparison()
    assert dict(zip(READS[case], ours)) == dict(zip(READS[case], theirs))


def test_the_kernel_context_is_one_address_for_every_run():
    obj = pyebpf.load(_core_object(SOURCE % (1, "", "out[0] = (long)skb;")))
    obj.program("kern").run(PACKETS["tcp"])
    assert _out(obj.maps[".bss"].lookup(bytes(4)), 1) == [kern.KERN_SKB_ADDRESS]
