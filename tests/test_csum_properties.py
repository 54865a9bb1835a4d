"""Property tests of the checksum helpers.

1. NAT-style rewrites (IPv4/IPv6 addresses, TCP/UDP ports) fixed up incrementally with
   skb_store_bytes + l3/l4_csum_replace, or csum_diff + size-0 replaces, in any order
   and number: the packet afterwards equals what scapy builds from scratch with the new
   values (checksum fields deleted and recomputed) — scapy is the independent judge.
   Run with CHECKSUM_COMPLETE, the same recipes also keep skb->csum right.
2. Random l3/l4_csum_replace and csum_diff calls, pyebpf against the kernel.

Hypothesis runs derandomized with bounded example counts, so every run checks the
same cases.
"""
from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import Ether

from pyebpf import kernel
from pktprog import CB, call, differential, prog, put, run_engine, save

PSEUDO, MANGLED_0, ENFORCE, IPV6 = 0x10, 0x20, 0x40, 0x80
RECOMPUTE = 1

PROPERTY = settings(derandomize=True, max_examples=400, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
DIFFERENTIAL = settings(derandomize=True, max_examples=1000, deadline=None,
                        suppress_health_check=[HealthCheck.too_slow])



# =====================================================================================
# 1. incremental fixes equal a full recomputation
# =====================================================================================

KINDS = ("ipv4-tcp", "ipv4-udp", "ipv4-icmp", "ipv6-tcp", "ipv6-udp", "ipv6-icmp")


def build(kind: str, src: bytes, dst: bytes, sport: int, dport: int, payload: bytes):
    v6 = kind.startswith("ipv6")
    eth = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    l3 = (IPv6(src=_addr6(src), dst=_addr6(dst), hlim=9) if v6 else
          IP(src=_addr4(src), dst=_addr4(dst), id=0x4242, ttl=33))
    l4 = {"tcp": TCP(sport=sport, dport=dport, seq=77, flags="A"),
          "udp": UDP(sport=sport, dport=dport),
          "icmp": ICMPv6EchoRequest(id=sport, seq=dport) if v6 else ICMP(id=sport, seq=dport),
          }[kind.split("-")[1]]
    return eth / l3 / l4 / payload


def _addr4(b: bytes) -> str:
    return ".".join(map(str, b))


def _addr6(b: bytes) -> str:
    return ":".join(b[k:k + 2].hex() for k in range(0, 16, 2))


class Layout:
    def __init__(self, kind: str):
        self.v6 = kind.startswith("ipv6")
        self.l4 = kind.split("-")[1]
        self.alen = 16 if self.v6 else 4
        self.src = 22 if self.v6 else 26
        self.dst = self.src + self.alen
        l4off = 54 if self.v6 else 34
        self.sport, self.dport = l4off, l4off + 2
        self.l4csum = l4off + {"tcp": 16, "udp": 6, "icmp": 2}[self.l4]
        # ICMPv4 has no pseudo-header: its checksum does not cover the addresses
        self.pseudo = self.l4 != "icmp" or self.v6
        self.ports = self.l4 != "icmp"
        self.mangled = MANGLED_0 if self.l4 == "udp" else 0


def _le(b: bytes) -> int:
    return int.from_bytes(b, "little")


def rewrite_parts(lay: Layout, field: str, old: bytes, new: bytes, method: str, k: int):
    """Program lines that change ``field`` from ``old`` to ``new`` and fix the checksums
    with a recipe that also keeps a CHECKSUM_COMPLETE skb->csum right (docs/kernel-notes.md)."""
    off = getattr(lay, field)
    is_addr = field in ("src", "dst")
    n = len(new)
    buf = -32 - 32 * (k % 4)                      # a fresh stack slot per rewrite
    parts = [put(buf, new)]
    l4_flags = lay.mangled | (PSEUDO if is_addr else 0)
    # IPv4 compensates an address change in its header checksum; IPv6 has none, so the
    # stored bytes themselves must move skb->csum (RECOMPUTE), unless BPF_F_IPV6 says
    # the pseudo-header update should leave skb->csum alone.
    store_flags = RECOMPUTE if (is_addr and lay.v6 and method != "diff-ipv6") else 0
    if method == "replace":
        parts.append(call("skb_store_bytes", "ctx", off, ("fp", buf), n, store_flags))
        if is_addr and not lay.v6:
            parts.append(call("l3_csum_replace", "ctx", 24, _le(old), _le(new), 4))
        if not is_addr or lay.pseudo:
            size = 2 if n == 2 else 4
            for w in range(0, n, size):
                parts.append(call("l4_csum_replace", "ctx", lay.l4csum, _le(old[w:w + size]),
                                  _le(new[w:w + size]), l4_flags | size))
        return parts
    # by difference: the old bytes read back from the packet, csum_diff, size-0 replaces
    parts += [call("skb_load_bytes", "ctx", off, ("fp", buf + 16), n),
              call("csum_diff", ("fp", buf + 16), n, ("fp", buf), n, 0), "r9 = r0",
              call("skb_store_bytes", "ctx", off, ("fp", buf), n, store_flags)]
    if is_addr and not lay.v6:
        parts.append(call("l3_csum_replace", "ctx", 24, 0, "r9", 0))
    if not is_addr or lay.pseudo:
        if method == "diff-ipv6" and is_addr:
            l4_flags |= IPV6
        parts.append(call("l4_csum_replace", "ctx", lay.l4csum, 0, "r9", l4_flags))
    return parts


@st.composite
def rewrite_cases(draw):
    kind = draw(st.sampled_from(KINDS))
    lay = Layout(kind)
    addr = st.binary(min_size=lay.alen, max_size=lay.alen)
    port = st.integers(0, 0xFFFF)
    start = dict(src=draw(addr), dst=draw(addr), sport=draw(port), dport=draw(port))
    payload = draw(st.binary(min_size=0, max_size=40))
    fields = ["src", "dst"] + (["sport", "dport"] if lay.ports else [])
    steps = []
    for _ in range(draw(st.integers(1, 6))):
        f = draw(st.sampled_from(fields))
        value = draw(addr) if f in ("src", "dst") else draw(port)
        methods = ["replace", "diff"] + (["diff-ipv6"] if lay.v6 and f in ("src", "dst") else [])
        steps.append((f, value, draw(st.sampled_from(methods))))
    return kind, start, payload, steps, draw(st.booleans())


def _field_bytes(field, value) -> bytes:
    return value if isinstance(value, bytes) else struct.pack(">H", value)


@PROPERTY
@given(rewrite_cases())
def test_incremental_rewrites_match_scapy(case):
    kind, start, payload, steps, complete = case
    lay = Layout(kind)
    before = build(kind, start["src"], start["dst"], start["sport"], start["dport"], payload)
    pkt = bytes(before)
    now = dict(start)
    parts = []
    for k, (f, value, method) in enumerate(steps):
        old, new = _field_bytes(f, now[f]), _field_bytes(f, value)
        parts += rewrite_parts(lay, f, old, new, method, k)
        now[f] = value
    out = run_engine(prog(*parts), pkt, csum=complete)
    assert out.csum_ok is (True if complete else None), "skb->csum no longer matches"
    # the judge: the same packet built by scapy from scratch with the final values
    want = bytes(build(kind, now["src"], now["dst"], now["sport"], now["dport"], payload))
    assert out.packet == want, (Ether(out.packet).show2(dump=True), Ether(want).show2(dump=True))


def test_udp_without_checksum_stays_without():
    # A zero UDP checksum (IPv4: "none") is left alone by MARK_MANGLED_0 rewrites.
    p = build("ipv4-udp", bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]), 1000, 53, b"hello")
    p[UDP].chksum = 0
    pkt = bytes(p)
    lay = Layout("ipv4-udp")
    parts = (rewrite_parts(lay, "src", pkt[26:30], bytes([192, 0, 2, 7]), "replace", 0)
             + rewrite_parts(lay, "sport", pkt[34:36], b"\x12\x34", "diff", 1))
    out = run_engine(prog(*parts), pkt)
    got = Ether(out.packet)
    assert got[UDP].chksum == 0 and got[IP].src == "192.0.2.7" and got[UDP].sport == 0x1234
    fixed = got.copy()
    del fixed[IP].chksum
    assert Ether(bytes(fixed))[IP].chksum == got[IP].chksum


# =====================================================================================
# 2. random helper calls against the kernel
# =====================================================================================

UDP4 = bytes(build("ipv4-udp", bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]), 5353, 53, b"q" * 38))
assert len(UDP4) == 80

#: cb[0] offset, cb[1] from (low), cb[2] to (low), cb[3] flags, cb[4] the high halves of
#: from and to; then cb[0..1] = the helper's result, cb[2..3] = csum_update(skb, 0).
_ARGS = ["r2 = *(u32 *)(r6 + %d)" % CB, "r3 = *(u32 *)(r6 + %d)" % (CB + 4),
         "r4 = *(u32 *)(r6 + %d)" % (CB + 8), "r5 = *(u32 *)(r6 + %d)" % (CB + 12),
         "r7 = *(u32 *)(r6 + %d)" % (CB + 16), "r7 <<= 32", "r3 |= r7", "r4 |= r7", "r1 = r6"]
REPLACE = {helper: prog(_ARGS, f"call {helper}", save(0), call("csum_update", "ctx", 0), save(2))
           for helper in ("l3_csum_replace", "l4_csum_replace")}

word = st.one_of(st.sampled_from([0, 1, 0xFFFF, 0xFFFF0000, 0xFFFFFFFF]),
                 st.integers(0, 0xFFFFFFFF))
flag_bits = st.lists(st.sampled_from([PSEUDO, MANGLED_0, ENFORCE, IPV6, 0x100, 0x8000_0000]),
                     max_size=3, unique=True).map(sum)
sizes = st.one_of(st.sampled_from([0, 2, 4]), st.integers(0, 15))


@DIFFERENTIAL
@given(helper=st.sampled_from(sorted(REPLACE)),
       offset=st.one_of(st.sampled_from([40, 24, 50, 78]),
                        st.sampled_from([41, 79, 80, 0xFFFE, 0x10000, 0xFFFFFFFE])),
       field=st.one_of(st.sampled_from([0, 1, 0xFFFF, 0xFFFE]), st.integers(0, 0xFFFF)),
       frm=word, to=word, high=st.integers(0, 0xFFFFFFFF),
       size=sizes, bits=flag_bits, complete=st.booleans())
# the corner where l3's 16-bit and l4's 32-bit arithmetic part (csum_replace2 vs
# inet_proto_csum_replace2)
@example(helper="l3_csum_replace", offset=40, field=0xFFFF, frm=0xFFFF, to=0, high=0, size=2,
         bits=0, complete=False)
@example(helper="l4_csum_replace", offset=40, field=0xFFFF, frm=0xFFFF, to=0, high=0, size=2,
         bits=0, complete=True)
def test_csum_replace_against_the_kernel(helper, offset, field, frm, to, high, size, bits,
                                         complete):
    flags = size | bits
    if size == 0 and frm and high % 3:
        frm = 0        # mostly a valid size-0 call, sometimes the -EINVAL one
    pkt = bytearray(UDP4)
    if offset + 2 <= len(pkt):
        struct.pack_into("<H", pkt, offset, field)
    differential(REPLACE[helper], bytes(pkt), cb=[offset, frm, to, flags, high], csum=complete)


def _diff_prog(fs: int, ts: int) -> bytes:
    """csum_diff over fs bytes of the packet at 14 and ts bytes at 14 + fs (copied to
    the stack), seed = cb[0] | cb[1] << 32; the result into cb[0..1]."""
    parts = []
    if fs:
        parts.append(call("skb_load_bytes", "ctx", 14, ("fp", -256), fs))
    if ts:
        parts.append(call("skb_load_bytes", "ctx", 14 + fs, ("fp", -128), ts))
    parts += ["r5 = *(u32 *)(r6 + %d)" % CB, "r7 = *(u32 *)(r6 + %d)" % (CB + 4), "r7 <<= 32",
              "r5 |= r7"]
    parts += call("csum_diff", ("fp", -256) if fs else 0, fs, ("fp", -128) if ts else 0, ts, "r5")
    return prog(*parts, save(0))


DIFF_SIZES = [0, 1, 2, 3, 4, 5, 8, 12, 16, 20, 31, 64, 128]


@DIFFERENTIAL
@given(fs=st.sampled_from(DIFF_SIZES), ts=st.sampled_from(DIFF_SIZES),
       body=st.binary(min_size=300, max_size=300), seed=st.integers(0, (1 << 64) - 1))
def test_csum_diff_against_the_kernel(fs, ts, body, seed):
    pkt = bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02", type=0x88B5)) + body
    out = differential(_diff_prog(fs, ts), pkt, cb=[seed & 0xFFFFFFFF, seed >> 32, 0, 0, 0])
    assert out.cb[1] == 0 and out.cb[0] <= 0xFFFF      # 6.13+: folded to 16 bits
