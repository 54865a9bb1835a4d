"""Packet bytes and checksums: skb_store_bytes, skb_load_bytes, l3/l4_csum_replace,
csum_diff and csum_update, against the kernel (docs/kernel-notes.md, Helpers).

Every program leaves the helper's return value in cb[], and ``differential`` requires
the same retval, packet bytes and exported ``__sk_buff`` fields from pyebpf and from
BPF_PROG_TEST_RUN; with ``csum=True`` it also requires the same verdict on whether
skb->csum of a CHECKSUM_COMPLETE packet still matches the bytes.  The 4.6 profile has
no kernel to compare with: its tests check the source-read rules directly.
"""
from __future__ import annotations

import struct

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import Ether

from pyebpf import isa
from pyebpf.errors import ExecutionError, KernelError, VerifierError
from pktprog import (ACT, CLS, DATA, DATA_END, SF, call, differential, kernel_prog, prog, put,
                     run_engine, save, stack_to_cb)

EINVAL, EFAULT, ENOTSUPP = isa.Errno.EINVAL, isa.Errno.EFAULT, isa.Errno.ENOTSUPP
RECOMPUTE, INVALIDATE = 1, 2
PSEUDO, MANGLED_0, ENFORCE, IPV6 = 0x10, 0x20, 0x40, 0x80

_ETH = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
_V4 = IP(src="10.0.0.1", dst="10.0.0.2", id=7)
_V6 = IPv6(src="2001:db8::1", dst="2001:db8::2")
PKTS = {
    "ipv4-tcp": bytes(_ETH / _V4 / TCP(sport=1234, dport=80, seq=1, flags="S") / b"hello world"),
    "ipv4-udp": bytes(_ETH / _V4 / UDP(sport=5353, dport=53) / (b"q" * 38)),
    "ipv4-icmp": bytes(_ETH / _V4 / ICMP(id=9, seq=1) / b"ping-ping"),
    "ipv6-tcp": bytes(_ETH / _V6 / TCP(sport=1234, dport=443, seq=9, flags="PA") / b"data!"),
    "ipv6-udp": bytes(_ETH / _V6 / UDP(sport=5353, dport=53) / (b"r" * 13)),
    "ipv6-icmp": bytes(_ETH / _V6 / ICMPv6EchoRequest(id=3, seq=4) / b"ping6"),
}
# where the checksum fields are (from the start of the frame)
L4_CSUM = {"ipv4-tcp": 50, "ipv4-udp": 40, "ipv4-icmp": 36,
           "ipv6-tcp": 70, "ipv6-udp": 60, "ipv6-icmp": 56}
IP_CSUM, IP_SRC, IP6_SRC = 24, 26, 22
UDP4 = PKTS["ipv4-udp"]              # 80 bytes, UDP checksum at 40


def u32le(b: bytes) -> int:
    return int.from_bytes(b, "little")


def with_field(pkt: bytes, off: int, value: int) -> bytes:
    p = bytearray(pkt)
    struct.pack_into("<H", p, off, value)
    return bytes(p)


def field(pkt: bytes, off: int) -> int:
    return struct.unpack_from("<H", pkt, off)[0]


# --- the arithmetic, written out (docs/kernel-notes.md; checks the fixed examples) -------

M32 = 0xFFFFFFFF


def add32(a, b):
    s = (a & M32) + (b & M32)
    return (s & M32) + (s >> 32)


def partial(buf: bytes, seed: int = 0) -> int:
    """x86-64 csum_partial: LE words, a short tail zero-padded, 0 only for all-zero."""
    buf = bytes(buf) + b"\0" * (-len(buf) % 4)
    s = (seed & M32) + sum(struct.unpack(f"<{len(buf) // 4}I", buf))
    if s == 0:
        return 0
    return s % M32 or M32


def fold16(x):
    x = (x & 0xFFFF) + (x >> 16)
    return (x & 0xFFFF) + (x >> 16)


def csum_diff_current(frm: bytes, to: bytes, seed: int = 0) -> int:
    seed &= M32
    if frm and to:
        return fold16(add32(partial(to, seed), ~partial(frm) & M32))
    if to:
        return fold16(partial(to, seed))
    if frm:
        return fold16(~partial(frm, ~seed & M32) & M32)
    return fold16(seed)


def csum_diff_46(frm: bytes, to: bytes, seed: int = 0) -> int:
    words = [~w & M32 for w in struct.unpack(f"<{len(frm) // 4}I", frm)]
    words += struct.unpack(f"<{len(to) // 4}I", to)
    return partial(struct.pack(f"<{len(words)}I", *words), seed)


def replace4(sum16, frm, to):
    return ~fold16(add32(add32(~sum16 & M32, ~frm & M32), to)) & 0xFFFF


# =====================================================================================
# skb_store_bytes
# =====================================================================================

def store_prog(offset, data: bytes, flags, *, then=()) -> bytes:
    buf = -16 * max(1, -(-len(data) // 16))
    return prog(put(buf, data),
                call("skb_store_bytes", "ctx", offset, ("fp", buf), len(data), flags),
                save(0), *then)


@pytest.mark.parametrize("name", sorted(PKTS))
@pytest.mark.parametrize("offset,data", [
    (0, b"\x02\xaa\xbb\xcc\xdd\xee"),         # destination MAC
    (16, b"\x12\x34"),                         # inside the L3 header
    (17, b"\x01\x02\x03"),                     # odd offset
    (-4, b"WXYZ"),                             # the last four bytes
    (-1, b"!"),                                # the last byte
    (0, bytes(range(40))),                     # 40 bytes from the start
])
def test_store_bytes_writes(name, offset, data):
    pkt = PKTS[name]
    offset %= len(pkt)
    out = differential(store_prog(offset, data, 0), pkt)
    assert out.ret() == 0
    assert out.packet == pkt[:offset] + data + pkt[offset + len(data):]


@pytest.mark.parametrize("prog_type", [CLS, ACT])
@pytest.mark.parametrize("offset,length,flags,want", [
    (42, 4, 0, 0),
    (42, 4, RECOMPUTE, 0),
    (42, 4, INVALIDATE, 0),
    (42, 4, RECOMPUTE | INVALIDATE, 0),
    (42, 4, 4, -EINVAL),
    (42, 4, 8, -EINVAL),
    (42, 4, 0x100, -EINVAL),
    (42, 4, 1 << 32, -EINVAL),                # flags are 64 bits wide
    (42, 4, 1 << 63, -EINVAL),
    (1000, 4, 4, -EINVAL),                    # flags are checked before the offset
    (76, 4, 0, 0),                            # up to the very last byte
    (77, 4, 0, -EFAULT),                      # one byte past the end
    (80, 1, 0, -EFAULT),
    (0x7FFFFFFF, 1, 0, -EFAULT),
    (0x80000000, 1, 0, -EFAULT),              # > INT_MAX
    (-1, 1, 0, -EFAULT),                      # 0xffffffff after the u32 conversion
    ((1 << 32) + 20, 4, 0, 0),                # offset is a u32: this writes at 20
])
def test_store_bytes_flags_and_offsets(prog_type, offset, length, flags, want):
    data = b"ABCDEFGH"[:length]
    out = differential(store_prog(offset, data, flags), UDP4, prog_type)
    assert out.ret() == want
    if want == 0:
        at = offset & 0xFFFFFFFF
        assert out.packet[at:at + length] == data
    else:
        assert out.packet == UDP4


def test_store_bytes_invalidate_hash():
    # test_run cannot preset skb->hash; the kernel comparison sees hash 0 either way
    code = store_prog(42, b"ABCD", INVALIDATE, then=["r0 = *(u32 *)(r6 + 68)", save(2, wide=False)])
    assert differential(code, UDP4).cb[2] == 0
    assert run_engine(code, UDP4, hash=0xB91A61E3).cb[2] == 0
    keep = store_prog(42, b"ABCD", RECOMPUTE, then=["r0 = *(u32 *)(r6 + 68)", save(2, wide=False)])
    assert run_engine(keep, UDP4, hash=0xB91A61E3).cb[2] == 0xB91A61E3


def test_store_bytes_512_bytes():
    pkt = bytes(_ETH / _V4 / UDP(sport=1, dport=2) / bytes(600))
    data = bytes(k % 251 for k in range(512))
    out = differential(store_prog(60, data, RECOMPUTE), pkt, csum=True)
    assert out.csum_ok and out.ret() == 0
    assert out.packet == pkt[:60] + data + pkt[572:]


@pytest.mark.parametrize("helper", ["skb_store_bytes", "skb_load_bytes"])
def test_store_and_load_bytes_refuse_packet_memory(helper):
    # neither is a pkt_access helper: "helper access to the packet is not allowed"
    args = ("ctx", 30, "r8", 20) + ((0,) if helper == "skb_store_bytes" else ())
    code = prog("r8 = *(u32 *)(r6 + %d)" % DATA, "r9 = *(u32 *)(r6 + %d)" % DATA_END,
                "r2 = r8", "r2 += 20", "if r2 > r9 goto out", call(helper, *args), "out:")
    with pytest.raises(VerifierError, match="helper access to the packet is not allowed"):
        run_engine(code, UDP4)
    with pytest.raises(ExecutionError, match="packet is not allowed"):
        run_engine(code, UDP4, verify=False)    # the run-time check behind the verifier
    with pytest.raises(KernelError, match="packet is not allowed"):
        kernel_prog(code)


def test_store_bytes_zero_length_is_refused():
    code = prog(put(-8, b"abcd"), call("skb_store_bytes", "ctx", 20, ("fp", -8), 0, 0))
    with pytest.raises(VerifierError, match="R4 invalid zero-sized read"):
        run_engine(code, UDP4)
    with pytest.raises(ExecutionError, match="size must not be 0"):
        run_engine(code, UDP4, verify=False)
    with pytest.raises(KernelError):
        kernel_prog(code)


# =====================================================================================
# skb_load_bytes
# =====================================================================================

def load_prog(offset, length) -> bytes:
    """Prefill fp-16..-1 with 0xaa, load ``length`` bytes at ``offset`` there; cb[0] the
    result (u32), cb[1..4] the 16 bytes of the buffer."""
    return prog(put(-16, b"\xaa" * 16), call("skb_load_bytes", "ctx", offset, ("fp", -16), length),
                save(0, wide=False), stack_to_cb(-16, 1, 4))


def _buffer(out) -> bytes:
    return b"".join(w.to_bytes(4, "little") for w in out.cb[1:5])


@pytest.mark.parametrize("name", sorted(PKTS))
@pytest.mark.parametrize("prog_type", [CLS, SF])
@pytest.mark.parametrize("offset,length", [(0, 16), (12, 2), (23, 5), (-16, 16), (-1, 1)])
def test_load_bytes(name, prog_type, offset, length):
    pkt = PKTS[name]
    visible = pkt[14:] if prog_type == SF else pkt     # a socket filter starts at L3
    offset %= len(visible)
    out = differential(load_prog(offset, length), pkt, prog_type)
    assert out.cb[0] == 0
    assert _buffer(out) == visible[offset:offset + length] + b"\xaa" * (16 - length)
    assert out.packet == visible


@pytest.mark.parametrize("prog_type", [CLS, SF])
@pytest.mark.parametrize("offset,length,ok", [
    (-4, 4, True),
    (-3, 4, False),                # one byte past the end
    (0x7FFFFFFF, 4, False),
    (0x80000000, 4, False),
    (-1 & 0xFFFFFFFF, 1, False),
    ((1 << 32) + 2, 4, True),      # the offset is a u32
])
def test_load_bytes_errors_zero_the_buffer(prog_type, offset, length, ok):
    visible = UDP4[14:] if prog_type == SF else UDP4
    if offset < 0:
        offset += len(visible)
    out = differential(load_prog(offset, length), UDP4, prog_type)
    if ok:
        at = offset & 0xFFFFFFFF
        assert out.cb[0] == 0
        assert _buffer(out)[:length] == visible[at:at + length]
    else:
        assert out.cb[0] == (-EFAULT) & 0xFFFFFFFF
        assert _buffer(out) == b"\0" * length + b"\xaa" * (16 - length)


def test_load_bytes_512_then_store_them_back():
    pkt = bytes(_ETH / _V4 / UDP(sport=1, dport=2) / bytes(k % 253 for k in range(700)))
    code = prog(call("skb_load_bytes", "ctx", 100, ("fp", -512), 512), save(0),
                call("skb_store_bytes", "ctx", 200, ("fp", -512), 512, 0), save(2))
    out = differential(code, pkt)
    assert out.ret(0) == 0 and out.ret(2) == 0
    assert out.packet == pkt[:200] + pkt[100:612] + pkt[712:]


# =====================================================================================
# l3_csum_replace / l4_csum_replace
# =====================================================================================

BASE = with_field(UDP4, 40, 0x1234)


def replace_prog(helper, offset, frm, to, flags) -> bytes:
    return prog(call(helper, "ctx", offset, frm, to, flags), save(0))


@pytest.mark.parametrize("offset,frm,to,flags,want", [
    (40, 1, 2, 4, 0),
    (40, 1, 2, 2, 0),
    (40, 0, 5, 0, 0),
    (40, 1, 5, 0, -EINVAL),            # size 0 takes a difference in `to` only
    (40, 1, 2, 1, -EINVAL),
    (40, 1, 2, 3, -EINVAL),
    (40, 1, 2, 8, -EINVAL),
    (40, 1, 2, PSEUDO | 4, -EINVAL),   # l3 knows no flag bits
    (40, 1, 2, (1 << 32) | 4, -EINVAL),
    (41, 1, 2, 4, -EFAULT),            # odd offset
    (41, 1, 2, 3, -EFAULT),            # the offset is checked before the size
    (41, 1, 2, PSEUDO | 4, -EINVAL),   # ... and the flags before the offset
    (78, 1, 2, 4, 0),
    (79, 1, 2, 4, -EFAULT),
    (80, 1, 2, 4, -EFAULT),
    (0x10000, 1, 2, 4, -EFAULT),
    (-2, 1, 2, 4, -EFAULT),
    ((1 << 32) + 40, 1, 2, 4, 0),      # the offset is a u32
])
def test_l3_csum_replace_errors(offset, frm, to, flags, want):
    out = differential(replace_prog("l3_csum_replace", offset, frm, to, flags), BASE)
    assert out.ret() == want
    if want:
        assert out.packet == BASE


@pytest.mark.parametrize("offset,frm,to,flags,want", [
    (40, 1, 2, 4, 0),
    (40, 1, 2, PSEUDO | 4, 0),
    (40, 1, 2, MANGLED_0 | 4, 0),
    (40, 1, 2, ENFORCE | 4, 0),
    (40, 1, 2, IPV6 | 4, 0),
    (40, 1, 2, PSEUDO | MANGLED_0 | ENFORCE | IPV6 | 2, 0),
    (40, 1, 2, 0x100 | 4, -EINVAL),
    (40, 1, 2, (1 << 40) | 4, -EINVAL),
    (40, 1, 2, 0, -EINVAL),
    (40, 0, 2, PSEUDO, 0),
    (40, 1, 2, 5, -EINVAL),
    (40, 1, 2, MANGLED_0 | 3, -EINVAL),   # non-zero field: the size is looked at
    (41, 1, 2, 4, -EFAULT),
    (79, 1, 2, 4, -EFAULT),
    (0xFFFE, 1, 2, 4, -EFAULT),
    ((1 << 32) + 40, 1, 2, 4, 0),
])
def test_l4_csum_replace_errors(offset, frm, to, flags, want):
    out = differential(replace_prog("l4_csum_replace", offset, frm, to, flags), BASE)
    assert out.ret() == want
    if want:
        assert out.packet == BASE


@pytest.mark.parametrize("helper", ["l3_csum_replace", "l4_csum_replace"])
@pytest.mark.parametrize("size", [2, 4])
@pytest.mark.parametrize("upper", [0, 0xABCD])
def test_csum_replace_uses_only_the_field_size(helper, size, upper):
    frm, to = 0x9ABC5678, 0x1357ACE0
    mask = (1 << (8 * size)) - 1
    high = upper << 48
    wide = differential(replace_prog(helper, 40, frm | high, to | high, size), BASE)
    narrow = differential(replace_prog(helper, 40, frm & mask, to & mask, size), BASE)
    assert wide.packet == narrow.packet and wide.ret() == 0


def test_mark_mangled_0():
    zero = with_field(UDP4, 40, 0)
    for flags, want in ((MANGLED_0 | 4, 0), (MANGLED_0 | ENFORCE | 4, 0xEEEE), (4, 0xEEEE),
                        (MANGLED_0 | 3, 0)):       # a zero field is skipped before the size check
        out = differential(replace_prog("l4_csum_replace", 40, 0x1111, 0x2222, flags), zero)
        assert out.ret() == 0
        assert field(out.packet, 40) == want, hex(flags)
    # an update whose result is 0 stores 0xffff (CSUM_MANGLED_0) instead
    s = next(s for s in range(1, 0x10000) if replace4(s, 1, 2) == 0)
    for flags, want in ((MANGLED_0 | 4, 0xFFFF), (4, 0)):
        out = differential(replace_prog("l4_csum_replace", 40, 1, 2, flags),
                           with_field(UDP4, 40, s))
        assert field(out.packet, 40) == want


def test_l3_and_l4_differ_with_size_2():
    pkt = with_field(UDP4, 40, 0xFFFF)
    l3 = differential(replace_prog("l3_csum_replace", 40, 0xFFFF, 0, 2), pkt)
    l4 = differential(replace_prog("l4_csum_replace", 40, 0xFFFF, 0, 2), pkt)
    assert (field(l3.packet, 40), field(l4.packet, 40)) == (0xFFFF, 0)


# =====================================================================================
# csum_diff
# =====================================================================================

def diff_prog(frm: bytes, to: bytes, seed: int, *, null_from=False, null_to=False) -> bytes:
    return prog(put(-256, frm), put(-128, to),
                call("csum_diff", 0 if null_from else ("fp", -256), len(frm),
                     0 if null_to else ("fp", -128), len(to), seed),
                save(0))


W = lambda *words: struct.pack(f"<{len(words)}I", *words)   # noqa: E731

DIFF_CASES = [
    # from, to, seed, value on 6.13+
    (W(0x11223344), W(0x55667788), 0, 0x8888),
    (W(0), W(0), 0, 0xFFFF),
    (W(0), b"", 0, 0),
    (b"", b"", 0x12345678, 0x68AC),
    (b"", W(0x01020304, 0x05060708), 0, None),
    (W(0x01020304), b"", 0, None),
    (W(0xFFFFFFFF), W(0xFFFFFFFF), 0, None),
    (W(1), W(2), 0xABCD00000005, None),        # the seed is a u32
    (W(1, 2, 3), W(4), 0xFFFFFFFF, None),
    (b"\x01\x02", b"\x03\x04\x05\x06\x07\x08", 0, None),   # not multiples of 4
    (b"\x01\x02\x03", b"\xff", 0x1234, None),
    (b"\x80" * 5, b"\x7f" * 7, 0, None),
]


@pytest.mark.parametrize("frm,to,seed,want", DIFF_CASES)
def test_csum_diff(frm, to, seed, want):
    out = differential(diff_prog(frm, to, seed), UDP4)
    model = csum_diff_current(frm, to, seed)
    assert out.ret() == model
    if want is not None:
        assert model == want


@pytest.mark.parametrize("null_from,null_to", [(True, False), (False, True), (True, True)])
def test_csum_diff_null_with_size_0(null_from, null_to):
    frm = b"" if null_from else W(0xDEADBEEF)
    to = b"" if null_to else W(0x0BADF00D)
    out = differential(diff_prog(frm, to, 77, null_from=null_from, null_to=null_to), UDP4)
    assert out.ret() == csum_diff_current(frm, to, 77)


def test_csum_diff_has_no_size_limit():
    pkt = bytes(_ETH / _V4 / UDP(sport=1, dport=2) / bytes((k * 7) % 256 for k in range(1400)))
    code = prog("r8 = *(u32 *)(r6 + %d)" % DATA, "r9 = *(u32 *)(r6 + %d)" % DATA_END,
                "r2 = r8", "r2 += 800", "if r2 > r9 goto out",
                "r3 = r8", "r3 += 100",
                call("csum_diff", "r8", 600, "r3", 700, 0), save(0), "out:")
    out = differential(code, pkt)
    assert out.ret() == csum_diff_current(pkt[:600], pkt[100:800])


# =====================================================================================
# csum_update
# =====================================================================================

def update_prog(*values) -> bytes:
    """csum_update(skb, v) for each value; results in cb[0], cb[2] (64-bit) for up to
    two values, else the low halves in cb[0], cb[1], ..."""
    wide = len(values) <= 2
    parts = []
    for k, v in enumerate(values):
        parts += [call("csum_update", "ctx", v), save(2 * k if wide else k, wide)]
    return prog(*parts)


def test_csum_update_needs_checksum_complete():
    out = differential(update_prog(0, 0x1234), UDP4)
    assert out.ret(0) == out.ret(2) == -ENOTSUPP


@pytest.mark.parametrize("name", sorted(PKTS))
def test_csum_update_returns_skb_csum(name):
    pkt = PKTS[name]
    out = differential(update_prog(0), pkt, csum=True)
    assert out.csum_ok and out.ret(0) == partial(pkt[14:])


@pytest.mark.parametrize("values,ok", [
    ((0x1234,), False),
    ((0x1234, ~0x1234 & M32), True),                      # +x then -x
    ((0xABCD00001234, ~0x1234 & M32), True),              # the argument is a u32
    ((0xFFFFFFFF,), True),                                # adding negative zero
    ((0x80000000, 0x80000000, 0xFFFFFFFE), True),
])
def test_csum_update_values(values, ok):
    out = differential(update_prog(*values), UDP4, csum=True)
    assert out.csum_ok is ok


# =====================================================================================
# CHECKSUM_COMPLETE bookkeeping (which sequences keep skb->csum right)
# =====================================================================================

def _ipv4_snat(store_flags, l4_flags, l3=True):
    old, new = PKTS["ipv4-udp"][IP_SRC:IP_SRC + 4], bytes([192, 168, 1, 1])
    parts = [put(-16, new), call("skb_store_bytes", "ctx", IP_SRC, ("fp", -16), 4, store_flags)]
    if l3:
        parts.append(call("l3_csum_replace", "ctx", IP_CSUM, u32le(old), u32le(new), 4))
    if l4_flags is not None:
        parts.append(call("l4_csum_replace", "ctx", 40, u32le(old), u32le(new), l4_flags))
    return parts


def _ipv6_word(store_flags, l4_flags):
    pkt = PKTS["ipv6-udp"]
    old, new = pkt[IP6_SRC:IP6_SRC + 4], b"\xfe\x80\x00\x00"
    return [put(-16, new), call("skb_store_bytes", "ctx", IP6_SRC, ("fp", -16), 4, store_flags),
            call("l4_csum_replace", "ctx", L4_CSUM["ipv6-udp"], u32le(old), u32le(new), l4_flags)]


def _ipv6_halves(store_flags, l4_flags):
    pkt = PKTS["ipv6-udp"]
    old, new = pkt[IP6_SRC:IP6_SRC + 4], b"\xfe\x80\x12\x34"
    parts = [put(-16, new), call("skb_store_bytes", "ctx", IP6_SRC, ("fp", -16), 4, store_flags)]
    for k in (0, 2):
        parts.append(call("l4_csum_replace", "ctx", L4_CSUM["ipv6-udp"], u32le(old[k:k + 2]),
                          u32le(new[k:k + 2]), l4_flags))
    return parts


def _ipv6_by_diff(store_flags, l4_flags):
    new = bytes(range(0xA0, 0xB0))
    return [call("skb_load_bytes", "ctx", IP6_SRC, ("fp", -64), 16), put(-32, new),
            call("csum_diff", ("fp", -64), 16, ("fp", -32), 16, 0), "r9 = r0",
            call("skb_store_bytes", "ctx", IP6_SRC, ("fp", -32), 16, store_flags),
            call("l4_csum_replace", "ctx", L4_CSUM["ipv6-udp"], 0, "r9", l4_flags)]


def _direct_write():
    return ["r8 = *(u32 *)(r6 + %d)" % DATA, "r9 = *(u32 *)(r6 + %d)" % DATA_END,
            "r2 = r8", "r2 += 50", "if r2 > r9 goto skip", "*(u8 *)(r8 + 45) = 0x55", "skip:"]


def _mac_store_and_back():
    # RECOMPUTE on MAC bytes moves skb->csum; storing the old bytes back moves it back
    old = PKTS["ipv4-udp"][0:2]
    return [put(-16, b"\x11\x22"), call("skb_store_bytes", "ctx", 0, ("fp", -16), 2, RECOMPUTE),
            call("csum_update", "ctx", 0), save(0),
            put(-16, old), call("skb_store_bytes", "ctx", 0, ("fp", -16), 2, RECOMPUTE)]


MATRIX = [
    # name, packet, program parts, consistent?
    ("payload store, flags 0", "ipv4-udp",
     [put(-16, b"ABCD"), call("skb_store_bytes", "ctx", 42, ("fp", -16), 4, 0)], False),
    ("payload store, RECOMPUTE", "ipv4-udp",
     [put(-16, b"ABCD"), call("skb_store_bytes", "ctx", 42, ("fp", -16), 4, RECOMPUTE)], True),
    ("odd-offset payload store, RECOMPUTE", "ipv4-tcp",
     [put(-16, b"xyz"), call("skb_store_bytes", "ctx", 57, ("fp", -16), 3, RECOMPUTE)], True),
    ("odd-offset payload store, flags 0", "ipv4-tcp",
     [put(-16, b"xyz"), call("skb_store_bytes", "ctx", 57, ("fp", -16), 3, 0)], False),
    ("MAC store, flags 0", "ipv4-udp",
     [put(-16, b"\x11\x22"), call("skb_store_bytes", "ctx", 0, ("fp", -16), 2, 0)], True),
    ("MAC store, RECOMPUTE", "ipv4-udp",
     [put(-16, b"\x11\x22"), call("skb_store_bytes", "ctx", 0, ("fp", -16), 2, RECOMPUTE)], False),
    ("MAC store, RECOMPUTE, odd offset", "ipv4-udp",
     [put(-16, b"\x11\x22\x33"),
      call("skb_store_bytes", "ctx", 5, ("fp", -16), 3, RECOMPUTE)], False),
    ("MAC store RECOMPUTE, then the old bytes back", "ipv4-udp", _mac_store_and_back(), True),
    ("IPv4 SNAT: store + l3 + l4(PSEUDO)", "ipv4-udp", _ipv4_snat(0, PSEUDO | 4), True),
    ("IPv4 SNAT: store(RECOMPUTE) + l3 + l4(PSEUDO)", "ipv4-udp",
     _ipv4_snat(RECOMPUTE, PSEUDO | 4), False),
    ("IPv4 SNAT: store + l3 + l4 without PSEUDO", "ipv4-udp", _ipv4_snat(0, 4), False),
    ("IPv4 SNAT: store + l3 only", "ipv4-udp", _ipv4_snat(0, None), True),   # IP header nets 0
    ("IPv4 SNAT: store + l4(PSEUDO) only", "ipv4-udp", _ipv4_snat(0, PSEUDO | 4, l3=False), False),
    ("IPv4 SNAT: store + l3 + l4(PSEUDO|MANGLED_0)", "ipv4-udp",
     _ipv4_snat(0, PSEUDO | MANGLED_0 | 4), True),
    ("IPv6 word: store(RECOMPUTE) + l4(PSEUDO)", "ipv6-udp",
     _ipv6_word(RECOMPUTE, PSEUDO | 4), True),
    ("IPv6 word: store(RECOMPUTE) + l4(PSEUDO|IPV6)", "ipv6-udp",
     _ipv6_word(RECOMPUTE, PSEUDO | IPV6 | 4), True),
    ("IPv6 word: store + l4(PSEUDO)", "ipv6-udp", _ipv6_word(0, PSEUDO | 4), False),
    ("IPv6 word: store + l4(PSEUDO|IPV6)", "ipv6-udp", _ipv6_word(0, PSEUDO | IPV6 | 4), False),
    ("IPv6 word in 16-bit halves: store(RECOMPUTE) + 2 x l4(PSEUDO, size 2)", "ipv6-udp",
     _ipv6_halves(RECOMPUTE, PSEUDO | 2), True),
    ("IPv6 word in 16-bit halves: store + 2 x l4(PSEUDO, size 2)", "ipv6-udp",
     _ipv6_halves(0, PSEUDO | 2), False),
]
for _store in (0, RECOMPUTE):
    for _l4 in (PSEUDO, PSEUDO | IPV6, 0, IPV6):
        MATRIX.append((f"IPv6 address by csum_diff: store({_store}) + l4(size 0, {_l4:#x})",
                       "ipv6-udp", _ipv6_by_diff(_store, _l4),
                       # skb->csum follows PSEUDO without IPV6 at size 0
                       bool(_store) == (_l4 == PSEUDO)))
MATRIX += [
    ("direct packet write, no fix", "ipv4-udp", _direct_write(), False),
    ("csum_update(0x1234)", "ipv4-udp", [call("csum_update", "ctx", 0x1234)], False),
    ("l3_csum_replace alone never touches skb->csum", "ipv4-udp",
     [call("l3_csum_replace", "ctx", IP_CSUM, 0, 0x1234, 0)], False),
    ("l4 by diff with PSEUDO on TCP/IPv4", "ipv4-tcp",
     [call("l4_csum_replace", "ctx", 50, 0, 0x1234, PSEUDO)], True),
    ("l4 size 2 with PSEUDO on ICMPv6", "ipv6-icmp",
     [call("l4_csum_replace", "ctx", 56, 0x1111, 0x2222, PSEUDO | 2)], True),
]


@pytest.mark.parametrize("parts,name,ok", [(m[2], m[1], m[3]) for m in MATRIX],
                         ids=[m[0] for m in MATRIX])
def test_checksum_complete_matrix(parts, name, ok):
    # the final csum_update(skb, 0) puts the exact 32-bit skb->csum into cb[3..4]
    code = prog(*parts, call("csum_update", "ctx", 0), save(3))
    out = differential(code, PKTS[name], csum=True)
    assert out.csum_ok is ok


# =====================================================================================
# the 4.6 profile (source-read; no kernel to compare with)
# =====================================================================================

V46 = "4.6"


def test_v46_load_bytes_error_leaves_the_buffer():
    code = load_prog(len(UDP4) - 3, 4)
    cur = run_engine(code, UDP4)
    old = run_engine(code, UDP4, profile=V46)
    assert cur.cb[0] == old.cb[0] == (-EFAULT) & M32
    assert _buffer(cur) == b"\0" * 4 + b"\xaa" * 12
    assert _buffer(old) == b"\xaa" * 16


@pytest.mark.parametrize("offset,want", [(20, 0), (77, -EFAULT), (0x10000, -EFAULT),
                                         ((1 << 32) + 20, 0)])
def test_v46_store_and_load_bytes(offset, want):
    out = run_engine(store_prog(offset, b"ABCD", 0), UDP4, profile=V46)
    assert out.ret() == want
    out = run_engine(load_prog(offset, 4), UDP4, profile=V46)
    assert out.ret(0, wide=False) == want


def test_v46_store_bytes_recompute_csum():
    ok = run_engine(store_prog(43, b"ABC", RECOMPUTE), UDP4, csum=True, profile=V46)
    bad = run_engine(store_prog(43, b"ABC", 0), UDP4, csum=True, profile=V46)
    assert ok.csum_ok and not bad.csum_ok


@pytest.mark.parametrize("frm,to,seed,want", DIFF_CASES[:9])
def test_v46_csum_diff_is_unfolded(frm, to, seed, want):
    # 4.6's check_stack_boundary takes a size of 0 only with a NULL buffer
    out = run_engine(diff_prog(frm, to, seed, null_from=not frm, null_to=not to), UDP4,
                     profile=V46)
    assert out.ret() == csum_diff_46(frm, to, seed & M32)


def test_v46_csum_diff_example():
    assert run_engine(diff_prog(W(0x11223344), W(0x55667788), 0), UDP4,
                      profile=V46).ret() == 0x44444444


@pytest.mark.parametrize("fs,ts", [(2, 4), (4, 6), (1, 0), (256, 260)])
def test_v46_csum_diff_rejects_odd_sizes_and_more_than_512(fs, ts):
    # more than 512 bytes from a 512-byte stack: the two buffers overlap
    to = -512 + fs if fs + ts <= 512 else -512
    code = prog(put(-512, bytes(min(fs + ts, 512))),
                call("csum_diff", ("fp", -512), fs, ("fp", to) if ts else 0, ts, 0), save(0))
    assert run_engine(code, UDP4, profile=V46).ret() == -EINVAL
    assert run_engine(code, UDP4).ret() == csum_diff_current(bytes(fs), bytes(ts))


def test_v46_csum_replace_flags_and_offsets():
    # no odd-offset check, no MARK_ENFORCE, no BPF_F_IPV6
    for helper in ("l3_csum_replace", "l4_csum_replace"):
        out = run_engine(replace_prog(helper, 41, 1, 2, 4), BASE, profile=V46)
        assert out.ret() == 0
        assert field(out.packet, 41) == replace4(field(BASE, 41), 1, 2)
    for flags in (ENFORCE | 4, IPV6 | 4):
        assert run_engine(replace_prog("l4_csum_replace", 40, 1, 2, flags), BASE,
                          profile=V46).ret() == -EINVAL
        assert run_engine(replace_prog("l4_csum_replace", 40, 1, 2, flags), BASE).ret() == 0
    for flags in (PSEUDO | 4, MANGLED_0 | PSEUDO | 2):
        assert run_engine(replace_prog("l4_csum_replace", 40, 1, 2, flags), BASE,
                          profile=V46).ret() == 0
