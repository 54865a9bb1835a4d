"""Packet-shape and flow-hash helpers, differentially against the kernel (docs/kernel-notes.md).

Every test program calls helpers from a SCHED_CLS program and leaves what the kernel
does not export in ``cb[]``: the helper's return value, ``skb->protocol``, ``len``,
``pkt_type``, ``gso_size`` or ``hash``.  The packet bytes, ``cb[]`` and the exported
fields then have to match the kernel's (``skbdiff.assert_same``).
"""
from __future__ import annotations

import errno

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether

import pyebpf
from pyebpf import isa, kernel
from pyebpf.errors import KernelError

import skbdiff

CLS = "sched_cls"
EINVAL, EFAULT, ENOMEM, ENOTSUPP, EALREADY = (isa.Errno.EINVAL, isa.Errno.EFAULT, isa.Errno.ENOMEM,
                                              isa.Errno.ENOTSUPP, isa.Errno.EALREADY)
SKB_MAX_ALLOC = 16064
# helper ids
CHANGE_PROTO, CHANGE_TYPE, GET_HASH_RECALC, CHANGE_TAIL = 31, 32, 34, 38
PULL_DATA, SET_HASH_INVALID, CHANGE_HEAD, SET_HASH, ADJUST_ROOM = 39, 41, 43, 48, 50
# __sk_buff offsets
LEN, PKT_TYPE, MARK, PROTOCOL, HASH, GSO_SEGS, GSO_SIZE = 0, 4, 8, 16, 68, 164, 176
# bpf_skb_adjust_room modes and flags
NET, MAC = 0, 1
FIXED_GSO, ENCAP_L3_IPV4, ENCAP_L3_IPV6, ENCAP_L4_GRE, ENCAP_L4_UDP = 1, 2, 4, 8, 16
NO_CSUM_RESET, ENCAP_L2_ETH, DECAP_L3_IPV4, DECAP_L3_IPV6 = 32, 64, 128, 256
BE_IP, BE_IPV6 = 0x0008, 0xDD86         # htons(ETH_P_IP), htons(ETH_P_IPV6) as u16 loads


def encap_l2(n):
    """BPF_F_ADJ_ROOM_ENCAP_L2(n): the inner MAC length in bits 56-63."""
    return n << 56


def neg(errno_):
    return -errno_ & 0xFFFFFFFF


def eth():
    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


V4 = dict(src="10.0.0.1", dst="10.0.0.2")
V6 = dict(src="2001:db8::1", dst="2001:db8::2")
IPV4_UDP = bytes(eth() / IP(**V4) / UDP(sport=1234, dport=80) / (b"u" * 20))
IPV4_TCP = bytes(eth() / IP(**V4) / TCP(sport=1234, dport=80) / (b"t" * 20))
IPV6_UDP = bytes(eth() / IPv6(**V6) / UDP(sport=1234, dport=80) / (b"u" * 20))
IPV6_TCP = bytes(eth() / IPv6(**V6) / TCP(sport=1234, dport=80) / (b"t" * 20))
ARP_REQ = bytes(Ether(dst="ff:ff:ff:ff:ff:ff") / ARP(pdst="10.0.0.2"))
VLAN_UDP = bytes(eth() / Dot1Q(vlan=5) / IP(**V4) / UDP(sport=1234, dport=80) / (b"v" * 20))
BIG_V4 = bytes(eth() / IP(**V4) / UDP(sport=1, dport=2) / (b"b" * (3712 - 42)))
PACKETS = {"ipv4-udp": IPV4_UDP, "ipv4-tcp": IPV4_TCP, "ipv6-udp": IPV6_UDP,
           "ipv6-tcp": IPV6_TCP, "arp": ARP_REQ, "vlan-ipv4": VLAN_UDP}


# --- programs --------------------------------------------------------------------------

def call(helper, *args):
    """Call ``helper(ctx, *args)``; every argument is a full 64-bit value."""
    lines = ["r1 = r6"] + [f"r{i} = {a & (2**64 - 1):#x} ll" for i, a in enumerate(args, 2)]
    return lines + [f"call {helper}"]


def r0_to(off):
    return [f"*(u32 *)(r6 + {off}) = r0"]


def cb(i):
    return 48 + 4 * i


def field_to(field, off):
    return [f"r0 = *(u32 *)(r6 + {field})", f"*(u32 *)(r6 + {off}) = r0"]


def program(*parts):
    text = "\n".join(["r6 = r1", *(line for part in parts for line in part), "r0 = 0", "exit"])
    return pyebpf.asm.assemble(text)


#: after the call: cb[1] protocol, cb[2] len, cb[3] pkt_type, cb[4] gso_size
REPORT = (field_to(PROTOCOL, cb(1)) + field_to(LEN, cb(2)) + field_to(PKT_TYPE, cb(3))
          + field_to(GSO_SIZE, cb(4)))


def one_call(helper, *args):
    """cb[0] = helper's return value, then REPORT."""
    return program(call(helper, *args), r0_to(cb(0)), REPORT)


def same(code, packet, ctx=None):
    engine, theirs = skbdiff.assert_same(code, CLS, packet, ctx or {})
    return engine.skb.cb, engine.data_out


# --- 31 skb_change_proto -----------------------------------------------------------------

@pytest.mark.parametrize("packet, proto", [
    (IPV4_UDP, BE_IPV6), (IPV4_TCP, BE_IPV6), (IPV6_UDP, BE_IP), (IPV6_TCP, BE_IP),
], ids=["udp-4to6", "tcp-4to6", "udp-6to4", "tcp-6to4"])
def test_change_proto_moves_20_bytes_right_after_the_mac_header(packet, proto):
    cbs, out = same(one_call(CHANGE_PROTO, proto, 0), packet)
    assert cbs[0] == 0 and cbs[1] == proto
    if proto == BE_IPV6:
        assert out == packet[:14] + bytes(20) + packet[14:]
    else:
        assert out == packet[:14] + packet[34:]


@pytest.mark.parametrize("packet, proto, flags, want", [
    (IPV4_UDP, BE_IPV6, 1, EINVAL),
    (IPV4_UDP, BE_IPV6, 1 << 63, EINVAL),
    (IPV4_UDP, BE_IP, 0, ENOTSUPP),
    (IPV6_UDP, BE_IPV6, 0, ENOTSUPP),
    (IPV4_UDP, 0x86DD, 0, ENOTSUPP),
    (ARP_REQ, BE_IPV6, 0, ENOTSUPP),
    (VLAN_UDP, BE_IPV6, 0, ENOTSUPP),
], ids=["flags-1", "flags-bit63", "4to4", "6to6", "not-byte-swapped", "arp", "vlan-tagged"])
def test_change_proto_refuses(packet, proto, flags, want):
    cbs, out = same(one_call(CHANGE_PROTO, proto, flags), packet)
    assert cbs[0] == neg(want) and out == packet


def test_change_proto_takes_the_low_16_bits_of_proto():
    cbs, _ = same(one_call(CHANGE_PROTO, 0xABCD_0000 | BE_IPV6, 0), IPV4_UDP)
    assert cbs[0] == 0 and cbs[1] == BE_IPV6


def test_change_proto_there_and_back_restores_the_frame_but_for_the_zeroed_header():
    code = program(call(CHANGE_PROTO, BE_IPV6, 0), call(CHANGE_PROTO, BE_IP, 0),
                   r0_to(cb(0)), REPORT)
    cbs, out = same(code, IPV4_UDP)
    assert cbs[0] == 0 and out == IPV4_UDP


def test_change_proto_inserts_at_the_network_header_after_change_head():
    code = program(call(CHANGE_HEAD, 4, 0), call(CHANGE_PROTO, BE_IPV6, 0), r0_to(cb(0)),
                   REPORT)
    cbs, out = same(code, IPV4_UDP)
    assert cbs[0] == 0 and out == bytes(4) + IPV4_UDP[:14] + bytes(20) + IPV4_UDP[14:]


def test_change_proto_6to4_on_a_frame_cut_to_its_mac_header_is_enomem():
    code = program(call(CHANGE_TAIL, 14, 0), call(CHANGE_PROTO, BE_IP, 0), r0_to(cb(0)),
                   REPORT)
    cbs, out = same(code, IPV6_UDP)
    assert cbs[0] == neg(ENOMEM) and cbs[1] == BE_IPV6 and out == IPV6_UDP[:14]


def test_change_proto_clears_the_hash():
    code = program(call(SET_HASH, 0x1234), call(CHANGE_PROTO, BE_IPV6, 0),
                   field_to(HASH, cb(0)))
    cbs, _ = same(code, IPV4_UDP)
    assert cbs[0] == 0


def test_a_failed_change_proto_keeps_the_hash():
    code = program(call(SET_HASH, 0x1234), call(CHANGE_PROTO, BE_IP, 0),
                   field_to(HASH, cb(0)))
    cbs, _ = same(code, IPV4_UDP)
    assert cbs[0] == 0x1234


# --- 32 skb_change_type ------------------------------------------------------------------

@pytest.mark.parametrize("pkt_type, want", [
    (0, 0), (1, 0), (2, 0), (3, 0), (4, EINVAL), (7, EINVAL), (1 << 32 | 2, 0),
], ids=["host", "broadcast", "multicast", "otherhost", "outgoing", "7", "u32-truncated"])
def test_change_type_accepts_host_to_otherhost_only(pkt_type, want):
    cbs, _ = same(one_call(CHANGE_TYPE, pkt_type), IPV4_UDP)
    assert cbs[0] == neg(want) if want else cbs[0] == 0
    assert cbs[3] == (pkt_type & 0xFFFFFFFF if not want else 3)


def test_change_type_twice_starts_from_the_new_type():
    code = program(call(CHANGE_TYPE, 1), call(CHANGE_TYPE, 2), r0_to(cb(0)), REPORT)
    cbs, _ = same(code, IPV4_UDP)
    assert (cbs[0], cbs[3]) == (0, 2)


# --- 38 skb_change_tail ------------------------------------------------------------------

L = len(IPV4_UDP)


@pytest.mark.parametrize("new_len, flags, want", [
    (L + 10, 0, 0), (L - 10, 0, 0), (L, 0, 0), (14, 0, 0), (13, 0, EINVAL),
    (0, 0, EINVAL), (L, 1, EINVAL), (L, 1 << 40, EINVAL),
    (SKB_MAX_ALLOC, 0, 0), (SKB_MAX_ALLOC + 1, 0, EINVAL), (0x7FFFFFFF, 0, EINVAL),
    (0xFFFFFFFF, 0, EINVAL), (1 << 32 | (L + 4), 0, 0),
], ids=["grow10", "trim10", "same", "to-network-header", "below-network-header", "zero",
        "flags-1", "flags-bit40", "max", "max+1", "int-max", "u32-max", "u32-truncated"])
def test_change_tail(new_len, flags, want):
    cbs, out = same(one_call(CHANGE_TAIL, new_len, flags), IPV4_UDP)
    if want:
        assert cbs[0] == neg(want) and out == IPV4_UDP
        return
    n = new_len & 0xFFFFFFFF
    assert cbs[0] == 0 and cbs[2] == n
    assert out == (IPV4_UDP + bytes(max(n - L, 0)))[:n]


@pytest.mark.parametrize("name", ["ipv6-udp", "arp", "vlan-ipv4"])
def test_change_tail_minimum_is_the_network_header_offset(name):
    packet = PACKETS[name]
    code = program(call(CHANGE_TAIL, 13, 0), r0_to(cb(0)), call(CHANGE_TAIL, 14, 0),
                   r0_to(cb(1)))
    cbs, out = same(code, packet)
    assert cbs[0] == neg(EINVAL) and cbs[1] == 0 and out == packet[:14]


def test_change_tail_grows_the_largest_test_run_frame_to_the_limit():
    cbs, out = same(one_call(CHANGE_TAIL, SKB_MAX_ALLOC, 0), BIG_V4)
    assert cbs[0] == 0 and out == BIG_V4 + bytes(SKB_MAX_ALLOC - len(BIG_V4))


def test_change_tail_resets_gso():
    code = program(call(CHANGE_TAIL, L, 0), r0_to(cb(0)), REPORT)
    engine, theirs = skbdiff.assert_same(code, CLS, IPV4_UDP, {"gso_size": 1400, "gso_segs": 3})
    assert engine.skb.cb[4] == 0 and theirs.skb["gso_segs"] == 0


def test_a_refused_change_tail_keeps_gso():
    code = program(call(CHANGE_TAIL, 13, 0), r0_to(cb(0)), REPORT)
    engine, theirs = skbdiff.assert_same(code, CLS, IPV4_UDP, {"gso_size": 1400, "gso_segs": 3})
    assert engine.skb.cb[4] == 1400 and theirs.skb["gso_segs"] == 3


def test_change_tail_on_an_encapsulated_skb_is_enotsupp_after_the_length_checks():
    """adjust_room's ENCAP marks the skb encapsulated; with ENCAP_L4_UDP it also sets
    the transport header, which raises change_tail's minimum to its offset (34)."""
    code = program(call(ADJUST_ROOM, 28, MAC, ENCAP_L3_IPV4 | ENCAP_L4_UDP), r0_to(cb(0)),
                   call(CHANGE_TAIL, 33, 0), r0_to(cb(1)),
                   call(CHANGE_TAIL, 34, 0), r0_to(cb(2)),
                   call(CHANGE_TAIL, 200, 0), r0_to(cb(3)))
    cbs, _ = same(code, IPV4_UDP)
    assert cbs[:4] == (0, neg(EINVAL), neg(ENOTSUPP), neg(ENOTSUPP))


# --- 39 skb_pull_data --------------------------------------------------------------------

@pytest.mark.parametrize("n, want", [
    (0, 0), (14, 0), (L, 0), (L + 1, ENOMEM), (0xFFFFFFFF, ENOMEM), (1 << 32, 0),
], ids=["0-whole", "14", "len", "len+1", "u32-max", "u32-truncated-to-0"])
def test_pull_data(n, want):
    cbs, out = same(one_call(PULL_DATA, n), IPV4_UDP)
    assert cbs[0] == (neg(want) if want else 0) and out == IPV4_UDP


def test_pull_data_checks_the_current_length():
    code = program(call(CHANGE_TAIL, L + 100, 0), call(PULL_DATA, L + 100), r0_to(cb(0)),
                   call(PULL_DATA, L + 101), r0_to(cb(1)))
    cbs, _ = same(code, IPV4_UDP)
    assert cbs[:2] == (0, neg(ENOMEM))


# --- 43 skb_change_head ------------------------------------------------------------------

@pytest.mark.parametrize("head_room, flags, want", [
    (4, 0, 0), (0, 0, 0), (4000, 0, 0), (SKB_MAX_ALLOC - L, 0, 0),
    (SKB_MAX_ALLOC - L + 1, 0, EINVAL), (4, 1, EINVAL), (4, 1 << 50, EINVAL),
    (0x7FFFFFFF, 0, EINVAL), (0x80000000, 0, EINVAL), (0xFFFFFFFF, 0, EINVAL),
    (1 << 32 | 6, 0, 0),
], ids=["4", "0", "4000", "to-max", "max+1", "flags-1", "flags-bit50", "int-max",
        "negative", "u32-max", "u32-truncated"])
def test_change_head(head_room, flags, want):
    cbs, out = same(one_call(CHANGE_HEAD, head_room, flags), IPV4_UDP)
    if want:
        assert cbs[0] == neg(want) and out == IPV4_UDP
        return
    n = head_room & 0xFFFFFFFF
    assert cbs[0] == 0 and cbs[1] == BE_IP and out == bytes(n) + IPV4_UDP


def test_change_head_beyond_the_limit_is_allowed_for_gso():
    n = SKB_MAX_ALLOC - L + 1
    code = one_call(CHANGE_HEAD, n, 0)
    cbs, out = same(code, IPV4_UDP, {"gso_size": 1400})
    assert cbs[0] == 0 and out == bytes(n) + IPV4_UDP


def test_change_head_resets_the_mac_header_for_adjust_room():
    """The new bytes become the MAC header: adjust_room(MAC) then inserts after
    MAC + the 4 new bytes, at the unchanged network header."""
    code = program(call(CHANGE_HEAD, 4, 0), call(ADJUST_ROOM, 8, MAC, 0), r0_to(cb(0)),
                   REPORT)
    cbs, out = same(code, IPV4_UDP)
    assert cbs[0] == 0 and out == bytes(4) + IPV4_UDP[:14] + bytes(8) + IPV4_UDP[14:]


# --- 50 skb_adjust_room ------------------------------------------------------------------

def inserted(packet, at, n):
    return packet[:at] + bytes(n) + packet[at:]


def removed(packet, at, n):
    return packet[:at] + packet[at + n:]


@pytest.mark.parametrize("packet, diff, mode, flags, want_bytes, want_proto", [
    (IPV4_UDP, 8, NET, 0, inserted(IPV4_UDP, 34, 8), BE_IP),
    (IPV4_UDP, 8, MAC, 0, inserted(IPV4_UDP, 14, 8), BE_IP),
    (IPV4_UDP, -8, NET, 0, removed(IPV4_UDP, 34, 8), BE_IP),
    (IPV4_UDP, -8, MAC, 0, removed(IPV4_UDP, 14, 8), BE_IP),
    (IPV4_TCP, 7, NET, 0, inserted(IPV4_TCP, 34, 7), BE_IP),
    (IPV4_TCP, -7, MAC, 0, removed(IPV4_TCP, 14, 7), BE_IP),
    (IPV6_UDP, 8, NET, 0, inserted(IPV6_UDP, 54, 8), BE_IPV6),
    (IPV6_UDP, -8, NET, 0, removed(IPV6_UDP, 54, 8), BE_IPV6),
    (IPV6_TCP, 40, MAC, 0, inserted(IPV6_TCP, 14, 40), BE_IPV6),
    (IPV4_UDP, 0, NET, 0, IPV4_UDP, BE_IP),
    (IPV4_UDP, 0xFFF, NET, 0, inserted(IPV4_UDP, 34, 0xFFF), BE_IP),
    (IPV4_UDP, -20, NET, 0, removed(IPV4_UDP, 34, 20), BE_IP),
    (IPV4_UDP, -20, MAC, 0, removed(IPV4_UDP, 14, 20), BE_IP),
    (IPV4_UDP, 1 << 32 | 8, NET, 0, inserted(IPV4_UDP, 34, 8), BE_IP),
    (IPV4_UDP, 8, 1 << 32 | MAC, 0, inserted(IPV4_UDP, 14, 8), BE_IP),
    (IPV4_UDP, 8, NET, FIXED_GSO | NO_CSUM_RESET, inserted(IPV4_UDP, 34, 8), BE_IP),
    (IPV4_UDP, 8, NET, ENCAP_L4_GRE | ENCAP_L4_UDP | ENCAP_L2_ETH | encap_l2(200),
     inserted(IPV4_UDP, 34, 8), BE_IP),
    (IPV4_UDP, 20, MAC, ENCAP_L3_IPV4, inserted(IPV4_UDP, 14, 20), BE_IP),
    (IPV4_UDP, 20, NET, ENCAP_L3_IPV4, inserted(IPV4_UDP, 34, 20), BE_IP),
    (IPV4_UDP, 40, MAC, ENCAP_L3_IPV6, inserted(IPV4_UDP, 14, 40), BE_IPV6),
    (IPV6_UDP, 20, MAC, ENCAP_L3_IPV4, inserted(IPV6_UDP, 14, 20), BE_IP),
    (IPV4_UDP, 28, MAC, ENCAP_L3_IPV4 | ENCAP_L4_UDP, inserted(IPV4_UDP, 14, 28), BE_IP),
    (IPV4_UDP, 24, MAC, ENCAP_L3_IPV4 | ENCAP_L4_GRE, inserted(IPV4_UDP, 14, 24), BE_IP),
    (IPV4_UDP, 50, MAC, ENCAP_L3_IPV4 | ENCAP_L4_UDP | ENCAP_L2_ETH | encap_l2(14),
     inserted(IPV4_UDP, 14, 50), BE_IP),
    (IPV4_UDP, 30, MAC, ENCAP_L3_IPV4 | encap_l2(30), inserted(IPV4_UDP, 14, 30), BE_IP),
    (IPV4_UDP, -8, NET, DECAP_L3_IPV4, removed(IPV4_UDP, 34, 8), BE_IP),
    (BIG_V4, -8, NET, DECAP_L3_IPV6, removed(BIG_V4, 34, 8), BE_IPV6),
    (IPV6_UDP, -20, MAC, DECAP_L3_IPV4, removed(IPV6_UDP, 14, 20), BE_IP),
    (IPV6_UDP, -8, MAC, DECAP_L3_IPV6 | FIXED_GSO | NO_CSUM_RESET,
     removed(IPV6_UDP, 14, 8), BE_IPV6),
], ids=["v4+8net", "v4+8mac", "v4-8net", "v4-8mac", "tcp+7net", "tcp-7mac", "v6+8net",
        "v6-8net", "v6+40mac", "zero", "+0xfff", "-20net-leaves-20", "-20mac",
        "len-diff-s32", "mode-u32", "fixed-gso-no-csum-reset", "l4-flags-without-l3",
        "encap4-mac", "encap4-net", "encap6-on-v4", "encap4-on-v6", "encap-udp",
        "encap-gre", "encap-l2-eth-14", "inner-mac-len-equal", "decap4", "decap6-on-v4",
        "decap4-on-v6", "decap6-fixed-gso"])
def test_adjust_room(packet, diff, mode, flags, want_bytes, want_proto):
    cbs, out = same(one_call(ADJUST_ROOM, diff, mode, flags), packet)
    assert cbs[0] == 0 and cbs[1] == want_proto and out == want_bytes


@pytest.mark.parametrize("packet, diff, mode, flags, want", [
    (IPV4_UDP, 8, NET, 0x200, EINVAL),
    (IPV4_UDP, 8, NET, 1 << 55, EINVAL),
    (ARP_REQ, 8, NET, 0x200, EINVAL),
    (IPV4_UDP, 0x1000, NET, 0, EFAULT),
    (IPV4_UDP, -0x1000, NET, 0, EFAULT),
    (IPV4_UDP, 0x80000000, NET, 0, EFAULT),
    (ARP_REQ, 0x1000, NET, 0, EFAULT),
    (ARP_REQ, 8, NET, 0, ENOTSUPP),
    (VLAN_UDP, 8, MAC, 0, ENOTSUPP),
    (IPV4_UDP, 8, 2, 0, ENOTSUPP),
    (IPV4_UDP, 8, 1 << 31, DECAP_L3_IPV4, ENOTSUPP),
    (IPV4_UDP, 8, NET, DECAP_L3_IPV4, EINVAL),
    (IPV4_UDP, 0, NET, DECAP_L3_IPV4, EINVAL),
    (IPV4_UDP, -8, NET, DECAP_L3_IPV4 | DECAP_L3_IPV6, EINVAL),
    (IPV4_UDP, -(L - 14 - 20), NET, 0, 0),
    (IPV4_UDP, -(L - 14 - 19), NET, 0, ENOTSUPP),
    (IPV4_UDP, -40, NET, 0, ENOTSUPP),
    (IPV4_UDP, -(L - 14), MAC, 0, ENOTSUPP),
    (IPV4_UDP, -(L - 34), MAC, 0, 0),
    (IPV4_UDP, -(L - 33), MAC, 0, ENOTSUPP),
    (IPV6_UDP, -(len(IPV6_UDP) - 54) - 1, MAC, 0, ENOTSUPP),
    (IPV4_UDP, -(L - 14 - 40), NET, DECAP_L3_IPV6, 0),
    (IPV4_UDP, -(L - 14 - 39), NET, DECAP_L3_IPV6, ENOTSUPP),
    (IPV4_UDP, -8, NET, ENCAP_L3_IPV4, EINVAL),
    (IPV4_UDP, -8, NET, ENCAP_L2_ETH, EINVAL),
    (IPV4_UDP, -8, NET, encap_l2(14), EINVAL),
    (IPV4_UDP, 40, MAC, ENCAP_L3_IPV4 | ENCAP_L3_IPV6, EINVAL),
    (IPV4_UDP, 40, MAC, ENCAP_L3_IPV4 | ENCAP_L4_GRE | ENCAP_L4_UDP, EINVAL),
    (IPV4_UDP, 40, MAC, ENCAP_L3_IPV4 | ENCAP_L2_ETH | encap_l2(13), EINVAL),
    (IPV4_UDP, 40, MAC, ENCAP_L3_IPV4 | ENCAP_L2_ETH, EINVAL),
    (IPV4_UDP, 28, MAC, ENCAP_L3_IPV4 | encap_l2(30), EINVAL),
], ids=["flag-0x200", "flag-bit55", "flags-before-protocol", "+0x1000", "-0x1000", "s32-min",
        "efault-before-protocol", "arp", "vlan-tagged", "mode-2", "mode-before-decap",
        "decap-grow", "decap-zero", "decap-both", "net-leaves-20", "net-leaves-19", "-40net",
        "everything-after-mac", "leaves-20", "leaves-19", "v6-leaves-39",
        "decap6-leaves-40", "decap6-leaves-39", "encap-on-shrink", "l2-eth-on-shrink", "l2-len-on-shrink",
        "encap-both-l3", "encap-gre-and-udp", "inner-mac-13", "l2-eth-without-len",
        "inner-mac-beyond-room"])
def test_adjust_room_limits_and_errors(packet, diff, mode, flags, want):
    cbs, out = same(one_call(ADJUST_ROOM, diff, mode, flags), packet)
    if want:
        assert cbs[0] == neg(want) and out == packet
    else:
        assert cbs[0] == 0


def test_adjust_room_second_encap_is_ealready():
    code = program(call(ADJUST_ROOM, 20, MAC, ENCAP_L3_IPV4), r0_to(cb(0)),
                   call(ADJUST_ROOM, 20, MAC, ENCAP_L3_IPV4), r0_to(cb(1)),
                   call(ADJUST_ROOM, 8, MAC, 0), r0_to(cb(2)),
                   call(ADJUST_ROOM, -8, MAC, 0), r0_to(cb(3)))
    cbs, out = same(code, IPV4_UDP)
    assert cbs[:4] == (0, neg(EALREADY), 0, 0) and len(out) == L + 20


@pytest.mark.parametrize("diff", [8, -8], ids=["grow", "shrink"])
def test_adjust_room_on_a_gso_skb_is_enotsupp(diff):
    """test_run can set gso_size but no GSO type, and only TCP or UDP_L4 GSO may be
    adjusted."""
    cbs, out = same(one_call(ADJUST_ROOM, diff, NET, FIXED_GSO), IPV4_UDP, {"gso_size": 1400})
    assert cbs[0] == neg(ENOTSUPP) and out == IPV4_UDP


def test_adjust_room_grows_up_to_the_limit():
    code = program(call(CHANGE_TAIL, SKB_MAX_ALLOC - 100, 0),
                   call(ADJUST_ROOM, 100, NET, 0), r0_to(cb(0)), REPORT)
    cbs, _ = same(code, BIG_V4)
    assert cbs[0] == 0 and cbs[2] == SKB_MAX_ALLOC


def test_adjust_room_over_the_limit_is_enotsupp():
    code = program(call(CHANGE_TAIL, SKB_MAX_ALLOC - 100, 0),
                   call(ADJUST_ROOM, 101, MAC, 0), r0_to(cb(0)), REPORT)
    cbs, _ = same(code, BIG_V4)
    assert cbs[0] == neg(ENOTSUPP) and cbs[2] == SKB_MAX_ALLOC - 100


@pytest.mark.parametrize("size", [34, 62, 1500, 3712])
def test_adjust_room_net_on_a_frame_cut_short_is_enomem_and_moves_nothing(size):
    """After change_tail(14) the IPv4 header is gone from the packet (not from the
    buffer): NET mode would move 34 bytes, past the end, so the kernel refuses with
    -ENOMEM and the 14 bytes stay as they are, whatever the frame's size
    (docs/helpers.md)."""
    frame = (IPV4_UDP + b"u" * size)[:size]
    code = program(call(CHANGE_TAIL, 14, 0), call(ADJUST_ROOM, 8, NET, 0), r0_to(cb(0)),
                   REPORT)
    cbs, out = same(code, frame)
    assert cbs[0] == neg(ENOMEM) and out == frame[:14]


def test_adjust_room_shrink_on_a_frame_cut_short_is_enotsupp():
    code = program(call(CHANGE_TAIL, 14, 0), call(ADJUST_ROOM, -8, MAC, 0), r0_to(cb(0)))
    cbs, _ = same(code, IPV4_UDP)
    assert cbs[0] == neg(ENOTSUPP)


# --- header offsets seen by later users: LD_ABS relative to the network / MAC header ---

SKF_NET_OFF, SKF_LL_OFF = -0x100000, -0x200000


def ld_abs(base, off, i):
    """cb[i] = the byte at ``base + off`` (LD_ABS B): 0 ends the program if it is out."""
    return [f"r0 = *(u8 *)skb[{base + off}]"] + r0_to(cb(i))


@pytest.mark.parametrize("change, packet", [
    (call(CHANGE_HEAD, 4, 0), IPV4_UDP),
    (call(CHANGE_PROTO, BE_IPV6, 0), IPV4_UDP),
    (call(CHANGE_PROTO, BE_IP, 0), IPV6_UDP),
    (call(ADJUST_ROOM, 8, MAC, 0), IPV4_UDP),
    (call(ADJUST_ROOM, -8, MAC, 0), IPV4_UDP),
    (call(ADJUST_ROOM, 8, NET, 0), IPV6_UDP),
    (call(ADJUST_ROOM, 20, MAC, ENCAP_L3_IPV4), IPV4_UDP),
    (call(ADJUST_ROOM, 40, NET, ENCAP_L3_IPV6 | ENCAP_L4_UDP), IPV4_UDP),
    (call(CHANGE_TAIL, L + 3, 0), IPV4_UDP),
], ids=["change-head", "proto-4to6", "proto-6to4", "room+mac", "room-mac", "room+net-v6",
        "encap-mac", "encap-net-udp", "tail"])
def test_network_and_mac_headers_follow_the_bytes(change, packet):
    code = program(change, ld_abs(SKF_NET_OFF, 0, 0), ld_abs(SKF_NET_OFF, 9, 1),
                   ld_abs(SKF_LL_OFF, 0, 2), ld_abs(SKF_LL_OFF, 13, 3), ld_abs(0, 12, 4))
    same(code, packet)


# --- CHECKSUM_COMPLETE consistency ---------------------------------------------------------

def csum_both(code, packet):
    """(engine Result, kernel result or None on EBADMSG), with skb->csum checked."""
    engine = pyebpf.Program(code, CLS).run(packet, ifindex=1, csum_complete=True)
    with kernel.KernelProgram(code, CLS) as kprog:
        try:
            theirs = kprog.test_run(packet, ctx={},
                                    flags=pyebpf.isa.BPF_F_TEST_SKB_CHECKSUM_COMPLETE)
        except KernelError as exc:
            assert exc.errno == errno.EBADMSG, exc
            theirs = None
    return engine, theirs


@pytest.mark.parametrize("code, packet, consistent", [
    (one_call(CHANGE_TAIL, L + 10, 0), IPV4_UDP, True),
    (one_call(CHANGE_TAIL, L + 11, 0), IPV4_UDP, True),
    (one_call(CHANGE_TAIL, L - 10, 0), IPV4_UDP, False),
    (one_call(CHANGE_TAIL, L, 0), IPV4_UDP, True),
    (one_call(ADJUST_ROOM, 8, NET, 0), IPV4_UDP, True),
    (one_call(ADJUST_ROOM, -8, NET, 0), IPV4_UDP, True),
    (one_call(ADJUST_ROOM, 8, MAC, 0), IPV4_UDP, True),
    (one_call(ADJUST_ROOM, -8, MAC, 0), IPV4_TCP, True),
    (one_call(ADJUST_ROOM, 7, NET, 0), IPV4_UDP, None),
    (one_call(ADJUST_ROOM, -7, NET, 0), IPV4_UDP, None),
    (one_call(ADJUST_ROOM, -8, NET, DECAP_L3_IPV4), IPV6_UDP, True),
    (one_call(CHANGE_PROTO, BE_IPV6, 0), IPV4_UDP, True),
    (one_call(CHANGE_PROTO, BE_IP, 0), IPV6_TCP, True),
    (one_call(CHANGE_HEAD, 4, 0), IPV4_UDP, True),
    (one_call(CHANGE_HEAD, 3, 0), IPV4_UDP, True),
    (one_call(PULL_DATA, 0), IPV4_UDP, True),
    (program(call(CHANGE_TAIL, L + 10, 0), call(CHANGE_TAIL, L, 0)), IPV4_UDP, True),
], ids=["tail+10", "tail+11", "tail-10", "tail-same", "room+8net", "room-8net",
        "room+8mac", "room-8mac", "room+7net", "room-7net", "room-decap", "proto-4to6",
        "proto-6to4", "head+4", "head+3", "pull", "tail-grow-then-back"])
def test_checksum_complete_after_shape_helpers(code, packet, consistent):
    """None: docs/kernel-notes.md does not list the case; the kernel decides."""
    engine, theirs = csum_both(code, packet)
    assert engine.csum_ok == (theirs is not None)
    if consistent is not None:
        assert engine.csum_ok == consistent
    if theirs is not None:
        assert engine.data_out == theirs.data and engine.skb.cb == tuple(theirs.skb["cb"])


# --- hashes -----------------------------------------------------------------------------

# The kernel's flow hash is keyed by hashrnd, drawn once per boot (flow_dissector.c,
# net_get_random_once): its values differ between boots, so these tests are kernel_varies
# and compare only which packets hash alike.
HASH_PROG = program(field_to(HASH, cb(0)), call(GET_HASH_RECALC), r0_to(cb(1)),
                    field_to(HASH, cb(2)), call(SET_HASH_INVALID), r0_to(cb(3)),
                    field_to(HASH, cb(4)))


def hashes(packet):
    """(engine, kernel) get_hash_recalc values for ``packet``; the rest of HASH_PROG's
    report (hash before, after, set_hash_invalid's 0 and the cleared hash) must agree."""
    engine, theirs = skbdiff.both(HASH_PROG, CLS, packet, {})
    ours, kern = engine.skb.cb, tuple(theirs.skb["cb"])
    for got in (ours, kern):
        assert got[0] == 0 and got[1] != 0 and got[2] == got[1] and got[3:] == (0, 0)
    return ours[1], kern[1]


def assert_same_pattern(packets):
    """Which packets hash alike is the same in the engine and in the kernel."""
    ours, kern = zip(*(hashes(p) for p in packets))
    pattern = [[a == b for b in ours] for a in ours]
    assert pattern == [[a == b for b in kern] for a in kern]
    return pattern


def v4(sport=1234, dport=80, src="10.0.0.1", dst="10.0.0.2", l4=UDP, **ip):
    return bytes(eth() / IP(src=src, dst=dst, **ip) / l4(sport=sport, dport=dport) / (b"x" * 8))


def v6(sport=1234, dport=80, src="2001:db8::1", dst="2001:db8::2", fl=0):
    return bytes(eth() / IPv6(src=src, dst=dst, fl=fl) / UDP(sport=sport, dport=dport) / b"x")


@pytest.mark.kernel_varies
def test_get_hash_recalc_is_stable_and_nonzero_and_set_hash_invalid_clears_it():
    ours, kern = hashes(IPV4_UDP)
    assert hashes(IPV4_UDP) == (ours, kern)


@pytest.mark.kernel_varies
@pytest.mark.parametrize("packets, want", [
    ([v4(), v4(sport=1)], False),
    ([v4(), v4(dport=81)], False),
    ([v4(), v4(src="10.0.0.3")], False),
    ([v4(), v4(l4=TCP)], False),
    ([v4(), v4(sport=80, dport=1234, src="10.0.0.2", dst="10.0.0.1")], True),
    ([v4(sport=1, dport=2), v4(sport=2, dport=1)], True),
    ([v4(), v4(ttl=3, tos=8, id=99)], True),
    ([v4(flags="MF"), v4(flags="MF", sport=1)], True),
    ([v4(frag=10), v4(frag=10, sport=1)], True),
    ([v6(), v6(sport=1)], False),
    ([v6(), v6(sport=80, dport=1234, src="2001:db8::2", dst="2001:db8::1")], True),
    ([v6(fl=5), v6(fl=5, sport=1)], True),
    ([v6(fl=5), v6(fl=6)], False),
    ([bytes(eth() / IP(**V4) / ICMP(id=1)), bytes(eth() / IP(**V4) / ICMP(id=2))], True),
    ([bytes(eth() / Dot1Q(vlan=5) / IP(**V4) / UDP()),
      bytes(eth() / Dot1Q(vlan=6) / IP(**V4) / UDP())], False),
    ([bytes(eth() / IP(**V4) / IP(src="1.1.1.1", dst="2.2.2.2") / UDP(sport=1)),
      bytes(eth() / IP(**V4) / IP(src="1.1.1.1", dst="2.2.2.2") / UDP(sport=2))], False),
    ([ARP_REQ, bytes(Ether(dst="ff:ff:ff:ff:ff:ff") / ARP(pdst="10.0.0.9"))], True),
], ids=["sport", "dport", "address", "protocol", "reverse-direction", "ports-swapped",
        "ttl-tos-id", "first-fragment", "later-fragment", "v6-sport", "v6-reverse",
        "v6-flow-label-stops", "v6-flow-label", "icmp-id", "vlan-id", "ipip-inner-ports",
        "arp"])
def test_get_hash_recalc_tells_flows_apart_as_the_kernel_does(packets, want):
    assert assert_same_pattern(packets)[0][1] is want


def test_set_hash_is_returned_unchanged():
    code = program(call(SET_HASH, 0xDEADBEEF), r0_to(cb(0)), field_to(HASH, cb(1)),
                   call(GET_HASH_RECALC), r0_to(cb(2)),
                   call(SET_HASH, 1 << 32 | 7), call(GET_HASH_RECALC), r0_to(cb(3)))
    cbs, _ = same(code, IPV4_UDP)
    assert cbs[:4] == (0, 0xDEADBEEF, 0xDEADBEEF, 7)


def test_set_hash_zero_is_a_valid_hash_that_is_not_recomputed():
    code = program(call(SET_HASH, 0), call(GET_HASH_RECALC), r0_to(cb(0)))
    cbs, _ = same(code, IPV4_UDP)
    assert cbs[0] == 0


@pytest.mark.kernel_varies
def test_set_hash_invalid_after_set_hash_recomputes_the_flow_hash():
    code = program(call(SET_HASH, 0x1234), call(SET_HASH_INVALID), r0_to(cb(0)),
                   field_to(HASH, cb(1)), call(GET_HASH_RECALC), r0_to(cb(2)))
    engine, theirs = skbdiff.both(code, CLS, IPV4_UDP, {})
    for got, flow_hash in zip((engine.skb.cb, theirs.skb["cb"]), hashes(IPV4_UDP)):
        assert tuple(got[:3]) == (0, 0, flow_hash)


def test_hash_helpers_do_not_touch_the_packet():
    skbdiff.assert_same(program(call(GET_HASH_RECALC), call(SET_HASH, 5),
                                call(SET_HASH_INVALID)), CLS, IPV4_UDP, {})


def _siphash24(key: bytes, data: bytes) -> int:
    import struct
    k0, k1 = struct.unpack("<QQ", key)
    mask = 2**64 - 1
    v = [k0 ^ 0x736F6D6570736575, k1 ^ 0x646F72616E646F6D,
         k0 ^ 0x6C7967656E657261, k1 ^ 0x7465646279746573]

    def rotl(x, b):
        return ((x << b) | (x >> (64 - b))) & mask

    def rnd():
        v[0] = (v[0] + v[1]) & mask; v[1] = rotl(v[1], 13) ^ v[0]; v[0] = rotl(v[0], 32)
        v[2] = (v[2] + v[3]) & mask; v[3] = rotl(v[3], 16) ^ v[2]
        v[0] = (v[0] + v[3]) & mask; v[3] = rotl(v[3], 21) ^ v[0]
        v[2] = (v[2] + v[1]) & mask; v[1] = rotl(v[1], 17) ^ v[2]; v[2] = rotl(v[2], 32)

    tail = len(data) % 8
    blocks = [struct.unpack_from("<Q", data, i)[0] for i in range(0, len(data) - tail, 8)]
    blocks.append(int.from_bytes(data[len(data) - tail:], "little") | (len(data) & 0xFF) << 56)
    for m in blocks:
        v[3] ^= m
        rnd()
        rnd()
        v[0] ^= m
    v[2] ^= 0xFF
    for _ in range(4):
        rnd()
    return v[0] ^ v[1] ^ v[2] ^ v[3]


def test_the_engine_hash_is_siphash_of_the_flow_keys_with_a_fixed_key():
    """Not differential: the kernel keys SipHash with a random per-boot secret.  The
    engine uses the key 00 01 .. 0f over struct flow_keys from `basic` on (n_proto,
    ip_proto, flow label, vlan, cvlan, keyid, ports, icmp, then the addresses), with the
    addresses and the ports each put in ascending order."""
    key = bytes(range(16))
    assert _siphash24(key, bytes(range(15))) == 0xA129CA6149BE45E5   # the reference vector
    keys = (b"\x08\x00" + bytes([17, 0]) + bytes(24) + (80).to_bytes(2, "big")
            + (1234).to_bytes(2, "big") + bytes(4) + bytes([10, 0, 0, 1, 10, 0, 0, 2]))
    want = _siphash24(key, keys) & 0xFFFFFFFF
    res = pyebpf.Program(program(call(GET_HASH_RECALC), r0_to(cb(0))), CLS).run(IPV4_UDP)
    assert res.skb.cb[0] == want


# --- who may call them --------------------------------------------------------------------

@pytest.mark.parametrize("helper", [CHANGE_PROTO, CHANGE_TYPE, GET_HASH_RECALC, CHANGE_TAIL,
                                    PULL_DATA, SET_HASH_INVALID, CHANGE_HEAD, SET_HASH,
                                    ADJUST_ROOM])
def test_socket_filters_cannot_call_shape_and_hash_helpers(helper):
    code = program(call(helper, 0, 0, 0))
    with pytest.raises(pyebpf.errors.LoadError):
        pyebpf.Program(code, "socket_filter")
    with pytest.raises(KernelError):
        kernel.KernelProgram(code, "socket_filter")
