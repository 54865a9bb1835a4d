"""Tunnel metadata helpers: skb_get_tunnel_key (20), skb_set_tunnel_key (21),
skb_get_tunnel_opt (29), skb_set_tunnel_opt (30) — docs/kernel-notes.md, Helpers.

Differential tests run one tc program in pyebpf and in the kernel (BPF_PROG_TEST_RUN).
test_run never attaches received tunnel metadata, so what the kernel can show is the
program's own metadata: each helper's return value goes to ``cb[i]`` (in call order)
and the buffers the get helpers filled (pre-set to 0xaa) are copied into the packet —
the key at bytes 0..43, the options buffer after it — where data_out shows them.
Received metadata (``run(tunnel=...)``) and the 4.6 profile are tested against the
documented semantics; those tests say so.
"""
from __future__ import annotations

import struct

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

import pyebpf
from bpfc import compile_c
from skbdiff import assert_same

CLS = "sched_cls"
PKT = bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
            / IP(src="192.0.2.1", dst="192.0.2.2") / UDP() / (b"p" * 80))
EINVAL, ENOENT, ENOMEM, EPROTO = -22, -2, -12, -71
IPV6, ZERO_CSUM_TX, DONT_FRAGMENT, SEQ_NUMBER, NO_TUNNEL_KEY = 1, 2, 4, 8, 16
TUNINFO_FLAGS = 16
GOPT = 16            # bytes of the get_tunnel_opt buffer copied into the packet

# struct bpf_tunnel_key initialisers (remote/local IPv4 in host order, as programs write them)
KEYS = {
    "v4": "{.tunnel_id = 42, .remote_ipv4 = 0x0a000001, .tunnel_tos = 0x10, "
          ".tunnel_ttl = 7, .local_ipv4 = 0x0a000002}",
    "v4_other": "{.tunnel_id = 0xfffffffe, .remote_ipv4 = 0xc0a80101, .tunnel_tos = 3, "
                ".tunnel_ttl = 255, .local_ipv4 = 0xc0a80102}",
    "v6": "{.tunnel_id = 7, .remote_ipv6 = {0x04030201, 0x08070605, 0x0c0b0a09, 0x100f0e0d}, "
          ".tunnel_tos = 0x20, .tunnel_ttl = 9, .tunnel_label = 0xfffff5, "
          ".local_ipv6 = {0x24232221, 0x28272625, 0x2c2b2a29, 0x302f2e2d}}",
    "v4_label": "{.tunnel_id = 1, .remote_ipv4 = 1, .tunnel_label = 5}",
    "v4_ext": "{.tunnel_id = 1, .remote_ipv4 = 1, .tunnel_ext = 1}",
    "v6_ext": "{.tunnel_id = 1, .remote_ipv6 = {1}, .tunnel_ext = 0x100}",
}


def set_key(size=44, flags=0, key="v4"):
    return f"bpf_skb_set_tunnel_key(skb, &{key}, {size}, {flags})"


def get_key(size=44, flags=0):
    return f"bpf_skb_get_tunnel_key(skb, got, {size}, {flags})"


def set_opt(size, fill=0):
    """Options from a stack buffer: 01 02 03 ... 0c then zeros, or all ``fill``."""
    return f"set_opt_{fill:#x}(skb, opt, {size})"


def get_opt(size):
    return f"bpf_skb_get_tunnel_opt(skb, gopt, {size})"


SOURCE = """
#define SET_OPT(fill) \\
static __always_inline long set_opt_##fill(struct __sk_buff *skb, __u8 *opt, __u32 size) \\
{ \\
    __builtin_memset(opt, fill, 260); \\
    if (!fill) { \\
        *(__u64 *)opt = 0x0807060504030201ULL; \\
        *(__u32 *)(opt + 8) = 0x0c0b0a09; \\
    } \\
    return bpf_skb_set_tunnel_opt(skb, opt, size); \\
}
/* one 4-byte store per field (4.6 refuses the 8-byte stores clang would merge) */
#define PUT(field, v) (*(volatile __u32 *)&skb->field = (v))
SET_OPT(0x0)
SET_OPT(0x11)
SET_OPT(0x77)

SEC("tc")
int prog(struct __sk_buff *skb)
{
%(keys)s
    __u8 got[44] __attribute__((aligned(8)));
    __u8 gopt[%(gopt)d] __attribute__((aligned(8)));
    __u8 opt[264] __attribute__((aligned(8)));
    __builtin_memset(got, 0xaa, sizeof(got));
    __builtin_memset(gopt, 0xaa, sizeof(gopt));
%(calls)s
%(out)s
    return 0;
}
"""

# Where a run leaves what it saw: the current kernel has direct packet access; 4.6 has
# not, so there the same calls run three times, each exporting one part through cb[]
# (and mark, priority: 28 key bytes are 7 words).
OUT_PACKET = """
%(codes)s
    void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
    if (data + 44 + %(gopt)d > end)
        return 1;
    __builtin_memcpy(data, got, 44);
    __builtin_memcpy(data + 44, gopt, %(gopt)d);
"""
OUT_KEY_WORDS = """
    __u32 *w = (__u32 *)got;
    PUT(cb[0], w[0]); PUT(cb[1], w[1]); PUT(cb[2], w[2]); PUT(cb[3], w[3]);
    PUT(cb[4], w[4]); PUT(mark, w[5]); PUT(priority, w[6]);
"""
OUT_OPT_WORDS = """
    __u32 *w = (__u32 *)gopt;
    PUT(cb[0], w[0]); PUT(cb[1], w[1]); PUT(cb[2], w[2]); PUT(cb[3], w[3]);
"""


def program(*calls, out=OUT_PACKET):
    """A tc program making ``calls`` in order; by default result i goes to cb[i]."""
    keys = "\n".join(f"    struct bpf_tunnel_key {name} = {init};"
                     for name, init in KEYS.items() if f"&{name}," in "".join(calls))
    body = "\n".join(f"    long rc{i} = {call};" for i, call in enumerate(calls))
    codes = "\n".join(f"    PUT(cb[{i}], rc{i});" for i in range(len(calls)))
    out = out % {"codes": codes, "gopt": GOPT}
    return compile_c(SOURCE % {"keys": keys, "calls": body, "gopt": GOPT, "out": out})


def differential(*calls):
    """Run in pyebpf and the kernel; return (signed results, key bytes, option bytes)."""
    engine, _ = assert_same(program(*calls), CLS, PKT)
    return _results(engine, len(calls)), engine.data_out[:44], engine.data_out[44:44 + GOPT]


def _results(res, n):
    return [struct.unpack("<i", struct.pack("<I", v))[0] for v in res.skb.cb[:n]]


def engine_run(calls, profile="current", **fields):
    """Engine only: (Result, results, key bytes, option bytes); 28 key bytes in 4.6."""
    def run(out):
        return pyebpf.Program(program(*calls, out=out), CLS, profile=profile).run(PKT, **fields)
    res = run(OUT_PACKET if profile == "current" else "%(codes)s")
    if profile == "current":
        return res, _results(res, len(calls)), res.data_out[:44], res.data_out[44:44 + GOPT]
    k = run(OUT_KEY_WORDS).skb
    key = struct.pack("<7I", *k.cb, k.mark, k.priority)
    opt = run(OUT_OPT_WORDS).skb.cb_bytes[:GOPT]
    return res, _results(res, len(calls)), key, opt


def decode(key: bytes) -> dict:
    tid, = struct.unpack_from("<I", key)
    tos, ttl, flags, label = struct.unpack_from("<BB2sI", key, 20)
    return {"id": tid, "remote": key[4:20], "tos": tos, "ttl": ttl,
            "flags": int.from_bytes(flags, "big"), "label": label, "local": key[28:44]}


def v4(host_order: int) -> bytes:
    """An IPv4 address word as the key holds it (host order u32), zero-padded to 16."""
    return struct.pack("<I", host_order) + bytes(12)


# --- get_tunnel_key without metadata ----------------------------------------------

@pytest.mark.parametrize("size, flags", [(44, 0), (44, IPV6), (28, 0), (24, 0), (22, 0), (8, 0),
                                         (17, 0), (44, TUNINFO_FLAGS), (44, 2)],
                         ids=["44", "44-ipv6", "28", "24", "22", "8", "17-bad-size",
                              "44-tuninfo-flags", "44-bad-flag"])
def test_get_tunnel_key_without_metadata_is_einval_and_zeroes_size_bytes(size, flags):
    cb, key, _ = differential(get_key(size, flags))
    assert cb == [EINVAL] and key == bytes(size) + b"\xaa" * (44 - size)


def test_get_tunnel_key_without_metadata_leaves_the_buffer_in_4_6():
    """4.6 profile (not differential: the kernel here is current): no err_clear path."""
    _, cb, key, _ = engine_run([get_key(28)], profile="4.6")
    assert cb == [EINVAL] and key == b"\xaa" * 28


# --- set_tunnel_key then get_tunnel_key: what the program's own metadata reads back --

def test_round_trip_swaps_remote_and_local_and_keeps_id_tos_ttl():
    cb, key, _ = differential(set_key(), get_key())
    assert cb == [0, 0]
    assert decode(key) == {"id": 42, "remote": v4(0x0a000002), "tos": 0x10, "ttl": 7,
                           "flags": 0, "label": 0, "local": v4(0x0a000001)}


@pytest.mark.parametrize("set_flags, tunnel_flags", [
    (0, 0x2005), (ZERO_CSUM_TX, 0x2004), (DONT_FRAGMENT, 0x2105), (SEQ_NUMBER, 0x200d),
    (NO_TUNNEL_KEY, 0x2001), (ZERO_CSUM_TX | DONT_FRAGMENT | SEQ_NUMBER, 0x210c),
    (IPV6 | ZERO_CSUM_TX | NO_TUNNEL_KEY, 0x2000),
], ids=["default", "zero-csum", "dont-fragment", "seq", "no-key", "zero-csum+df+seq",
        "ipv6+zero-csum+no-key"])
def test_tuninfo_flags_reads_the_tunnel_flags_big_endian(set_flags, tunnel_flags):
    key = "v6" if set_flags & IPV6 else "v4"
    cb, got, _ = differential(set_key(44, set_flags, key),
                              get_key(44, TUNINFO_FLAGS | set_flags & IPV6))
    assert cb == [0, 0] and decode(got)["flags"] == tunnel_flags


def test_ipv6_round_trip_masks_the_label_to_20_bits():
    cb, key, _ = differential(set_key(44, IPV6, "v6"), get_key(44, IPV6))
    assert cb == [0, 0]
    fields = decode(key)
    assert fields["label"] == 0xffff5 and fields["local"] == bytes(range(1, 17))
    assert fields["remote"] == bytes(range(0x21, 0x31))


@pytest.mark.parametrize("set_flags, get_flags", [(0, IPV6), (IPV6, 0), (IPV6, TUNINFO_FLAGS)],
                         ids=["ipv4-tunnel-ipv6-get", "ipv6-tunnel-ipv4-get",
                              "ipv6-tunnel-flags-only"])
def test_family_mismatch_is_eproto_and_zeroes_the_key(set_flags, get_flags):
    cb, key, _ = differential(set_key(44, set_flags, "v6" if set_flags else "v4"),
                              get_key(44, get_flags))
    assert cb == [0, EPROTO] and key == bytes(44)


@pytest.mark.parametrize("size", [44, 28, 24, 22, 8], ids=lambda s: f"get-{s}")
def test_get_with_an_older_layout_writes_only_size_bytes(size):
    cb, key, _ = differential(set_key(), get_key(size))
    assert cb == [0, 0] and key[size:] == b"\xaa" * (44 - size)


@pytest.mark.parametrize("set_flags, size, get_flags, result", [
    (0, 17, 0, EINVAL), (0, 44, 2, EINVAL), (0, 44, 1 << 63, EINVAL), (0, 17, IPV6, EPROTO),
    (IPV6, 8, 0, EPROTO), (IPV6, 17, TUNINFO_FLAGS | 2, EINVAL),
], ids=["bad-size", "bad-flag", "flag-bit-63", "mismatch-before-size",
        "mismatch-before-8-byte-layout", "bad-flag-before-mismatch"])
def test_get_tunnel_key_errors_with_metadata_zero_the_buffer(set_flags, size, get_flags, result):
    """Checked in this order: flags, address family, size."""
    cb, key, _ = differential(set_key(44, set_flags, "v6" if set_flags else "v4"),
                              get_key(size, get_flags))
    assert cb == [0, result] and key == bytes(size) + b"\xaa" * (44 - size)


@pytest.mark.parametrize("size", [8, 22, 24, 28], ids=lambda s: f"get-{s}")
def test_get_with_an_older_layout_of_an_ipv6_tunnel(size):
    """Size 8 has room for an IPv4 address only: -EINVAL for an IPv6 tunnel."""
    cb, key, _ = differential(set_key(44, IPV6, "v6"), get_key(size, IPV6))
    assert cb == [0, EINVAL if size == 8 else 0]


@pytest.mark.parametrize("size", [44, 28, 24, 22, 8], ids=lambda s: f"set-{s}")
@pytest.mark.parametrize("family", ["v4_other", "v6"])
def test_set_with_an_older_layout_zero_extends_the_key(size, family):
    flags = IPV6 if family == "v6" else 0
    cb, key, _ = differential(set_key(size, flags, family), get_key(44, flags | TUNINFO_FLAGS))
    assert cb == [0, 0]
    if size < 28:
        assert decode(key)["remote"] == bytes(16)        # local was cut off


@pytest.mark.parametrize("size", [4, 12, 17, 20, 32, 40], ids=lambda s: f"size-{s}")
def test_set_tunnel_key_other_sizes_are_einval_and_attach_nothing(size):
    cb, _, _ = differential(set_key(size), get_key())
    assert cb == [EINVAL, EINVAL]


@pytest.mark.parametrize("flags", [0x20, 0x40, 1 << 32, 1 << 63], ids=hex)
def test_set_tunnel_key_unknown_flags_are_einval(flags):
    cb, _, _ = differential(set_key(44, flags), get_key())
    assert cb == [EINVAL, EINVAL]


@pytest.mark.parametrize("key, flags", [("v4_label", 0), ("v4_ext", 0), ("v6_ext", IPV6)],
                         ids=["ipv4-with-label", "ipv4-with-ext", "ipv6-with-ext"])
def test_set_tunnel_key_label_without_ipv6_or_any_ext_is_einval(key, flags):
    cb, _, _ = differential(set_key(44, flags, key), get_key(44, flags))
    assert cb == [EINVAL, EINVAL]


def test_a_second_set_tunnel_key_replaces_the_first_entirely():
    cb, key, _ = differential(set_key(44, IPV6, "v6"), set_key(44, 0, "v4_other"),
                              get_key(44, TUNINFO_FLAGS))
    assert cb == [0, 0, 0]
    assert decode(key) == {"id": 0xfffffffe, "remote": v4(0xc0a80102), "tos": 3, "ttl": 255,
                           "flags": 0x2005, "label": 0, "local": v4(0xc0a80101)}


def test_get_tunnel_key_of_a_failed_set_still_sees_the_earlier_metadata():
    cb, key, _ = differential(set_key(), set_key(44, 0, "v4_ext"), get_key())
    assert cb == [0, EINVAL, 0] and decode(key)["id"] == 42


# --- tunnel options ------------------------------------------------------------------

def test_get_tunnel_opt_without_metadata_is_enoent_and_zeroes_the_buffer():
    cb, _, opt = differential(get_opt(GOPT))
    assert cb == [ENOENT] and opt == bytes(GOPT)


def test_set_tunnel_opt_without_set_tunnel_key_is_einval():
    cb, _, opt = differential(set_opt(8), get_opt(GOPT))
    assert cb == [EINVAL, ENOENT]


def test_get_tunnel_opt_after_set_tunnel_key_alone_is_enoent():
    cb, _, opt = differential(set_key(), get_opt(GOPT))
    assert cb == [0, ENOENT] and opt == bytes(GOPT)


@pytest.mark.parametrize("size", [8, 12, 16], ids=lambda s: f"get-{s}")
def test_get_tunnel_opt_copies_the_options_and_zero_fills_the_rest(size):
    cb, _, opt = differential(set_key(), set_opt(8), get_opt(size))
    assert cb == [0, 0, 8]
    assert opt == bytes(range(1, 9)) + bytes(size - 8) + b"\xaa" * (GOPT - size)


def test_get_tunnel_opt_into_a_smaller_buffer_is_enomem_and_zeroes_it():
    cb, _, opt = differential(set_key(), set_opt(8), get_opt(4))
    assert cb == [0, 0, ENOMEM] and opt == bytes(4) + b"\xaa" * (GOPT - 4)


def test_set_tunnel_opt_checks_ownership_before_the_size_limit():
    cb, _, _ = differential(set_opt(256))
    assert cb == [EINVAL]


@pytest.mark.parametrize("size, result", [(4, 0), (6, EINVAL), (252, 0), (253, EINVAL),
                                          (256, ENOMEM), (257, EINVAL)],
                         ids=lambda v: str(v))
def test_set_tunnel_opt_takes_whole_words_up_to_255_bytes(size, result):
    cb, _, _ = differential(set_key(), set_opt(size, 0x11), get_opt(GOPT))
    expect_get = (ENOMEM if size > GOPT else size) if result == 0 else ENOENT
    assert cb == [0, result, expect_get]


def test_set_tunnel_opt_flags_the_options_present():
    """GENEVE_OPT|VXLAN_OPT|ERSPAN_OPT|GTP_OPT (0xd800) join KEY|CSUM|NOCACHE."""
    cb, key, _ = differential(set_key(), set_opt(4), get_key(44, TUNINFO_FLAGS))
    assert cb == [0, 0, 0] and decode(key)["flags"] == 0xf805


def test_a_later_set_tunnel_opt_replaces_the_options():
    cb, _, opt = differential(set_key(), set_opt(12), set_opt(4, 0x77), get_opt(GOPT))
    assert cb == [0, 0, 0, 4] and opt == b"\x77" * 4 + bytes(GOPT - 4)


def test_a_later_set_tunnel_key_discards_the_options():
    cb, _, opt = differential(set_key(), set_opt(8), set_key(), get_opt(GOPT))
    assert cb == [0, 0, 0, ENOENT] and opt == bytes(GOPT)


# --- Result.tunnel: the metadata attached after the run --------------------------------

def test_result_tunnel_reports_the_set_metadata_as_the_outer_header_will_carry_it():
    """Not differential: test_run does not report the skb's metadata dst.  remote is the
    outer destination, local the outer source."""
    res, cb, _, _ = engine_run([set_key(44, DONT_FRAGMENT), set_opt(8)])
    assert cb == [0, 0]
    assert res.tunnel == {"id": 42, "ipv6": False, "tx": True, "src": bytes([10, 0, 0, 2]),
                          "dst": bytes([10, 0, 0, 1]), "tos": 0x10, "ttl": 7, "flags": 0xf905,
                          "label": 0, "options": bytes(range(1, 9))}


def test_result_tunnel_of_an_ipv6_key_has_the_masked_label():
    """Not differential: test_run does not report the skb's metadata dst."""
    res, cb, _, _ = engine_run([set_key(44, IPV6 | ZERO_CSUM_TX, "v6")])
    assert cb == [0]
    assert res.tunnel == {"id": 7, "ipv6": True, "tx": True, "src": bytes(range(0x21, 0x31)),
                          "dst": bytes(range(1, 17)), "tos": 0x20, "ttl": 9, "flags": 0x2004,
                          "label": 0xffff5, "options": b""}


@pytest.mark.parametrize("calls", [[get_key()], [set_key(44, 0x20)], [set_key(12)]],
                         ids=["no-set", "set-bad-flag", "set-bad-size"])
def test_result_tunnel_is_none_without_metadata(calls):
    res, *_ = engine_run(calls)
    assert res.tunnel is None


# --- received metadata (run(tunnel=...)) -------------------------------------------------
# test_run cannot attach received tunnel metadata (it needs a metadata-mode vxlan/geneve
# device), so these follow net/core/filter.c (docs/kernel-notes.md).

RX_V4 = {"id": 0x1234567890, "src": bytes([198, 51, 100, 1]), "dst": bytes([198, 51, 100, 2]),
         "tos": 4, "ttl": 33}
RX_V6 = {"id": 5, "src": bytes(range(0x40, 0x50)), "dst": bytes(range(0x60, 0x70)),
         "tos": 1, "ttl": 2, "label": 0xabcde, "flags": 0x0805, "options": b"\x01\x02\x03\x04" * 3}


def test_received_key_reads_remote_as_outer_source_and_local_as_outer_destination():
    """Not differential (received metadata): id low 32 bits, addresses in host order."""
    _, cb, key, _ = engine_run([get_key(44, TUNINFO_FLAGS)], tunnel=RX_V4)
    assert cb == [0]
    assert decode(key) == {"id": 0x34567890, "remote": v4(0xc6336401), "tos": 4, "ttl": 33,
                           "flags": 0x0004, "label": 0, "local": v4(0xc6336402)}


def test_received_ipv6_key_copies_addresses_as_bytes_and_reports_the_label():
    """Not differential (received metadata)."""
    _, cb, key, opt = engine_run([get_key(44, IPV6), get_opt(GOPT)], tunnel=RX_V6)
    assert cb == [0, 12]
    fields = decode(key)
    assert (fields["remote"], fields["local"]) == (RX_V6["src"], RX_V6["dst"])
    assert fields["label"] == 0xabcde
    assert opt == RX_V6["options"] + bytes(GOPT - 12)


@pytest.mark.parametrize("size, flags, result", [(44, 0, EPROTO), (8, IPV6, EINVAL)],
                         ids=["ipv4-get", "ipv6-get-size-8"])
def test_received_ipv6_metadata_refuses_an_ipv4_get_and_the_8_byte_layout(size, flags, result):
    """Not differential (received metadata): the error zeroes ``size`` bytes."""
    _, cb, key, _ = engine_run([get_key(size, flags)], tunnel=RX_V6)
    assert cb == [result] and key == bytes(size) + b"\xaa" * (44 - size)


@pytest.mark.parametrize("tunnel, message", [
    ({**RX_V6, "flags": 0x0004}, "options bit"),
    ({**RX_V6, "options": bytes(256)}, "at most 255"),
    ({**RX_V4, "label": 1}, "20-bit IPv6 flow label"),
    ({**RX_V6, "label": 0x100000}, "20-bit IPv6 flow label"),
    ({**RX_V4, "dst": RX_V6["dst"]}, "both be 4"),
    ({**RX_V4, "vni": 1}, "unknown tunnel keys: vni"),
], ids=["options-without-flag", "options-too-long", "label-on-ipv4", "label-over-20-bits",
        "mixed-families", "unknown-key"])
def test_received_metadata_that_no_device_attaches_is_refused(tunnel, message):
    with pytest.raises(ValueError, match=message):
        pyebpf.Program(program(get_key()), CLS).run(PKT, tunnel=tunnel)


def test_received_options_default_to_the_geneve_flag():
    """Not differential (received metadata): KEY, plus GENEVE_OPT when options come."""
    res, cb, _, opt = engine_run([get_opt(GOPT)], tunnel={**RX_V4, "options": b"\x09" * 8})
    assert cb == [8] and opt == b"\x09" * 8 + bytes(8) and res.tunnel["flags"] == 0x0804


def test_set_tunnel_opt_onto_received_metadata_is_einval():
    """Not differential (received metadata): only the program's own metadata takes options."""
    res, cb, _, opt = engine_run([set_opt(4), get_opt(GOPT)], tunnel=RX_V6)
    assert cb == [EINVAL, 12] and res.tunnel["options"] == RX_V6["options"]


def test_set_tunnel_key_replaces_received_metadata():
    """Not differential (received metadata)."""
    res, cb, _, _ = engine_run([set_key(), get_opt(GOPT)], tunnel=RX_V6)
    assert cb == [0, ENOENT]
    assert res.tunnel["tx"] and not res.tunnel["ipv6"] and res.tunnel["options"] == b""


def test_received_metadata_is_reported_unchanged():
    """Not differential (received metadata)."""
    res, *_ = engine_run([get_key(44, IPV6)], tunnel=RX_V6)
    assert res.tunnel == {**RX_V6, "ipv6": True, "tx": False}


# --- the 4.6 profile (v4.6 net/core/filter.c; not differential) --------------------------

@pytest.mark.parametrize("size, result", [(28, 0), (24, 0), (22, 0), (8, 0), (44, EINVAL)],
                         ids=lambda v: str(v))
def test_4_6_key_is_28_bytes_without_local_or_flags(size, result):
    """4.6 profile: struct bpf_tunnel_key ends at tunnel_label."""
    _, cb, _, _ = engine_run([set_key(size), get_key(size)], profile="4.6")
    assert cb == [result, result]


@pytest.mark.parametrize("call", [set_key(28, SEQ_NUMBER), set_key(28, NO_TUNNEL_KEY)],
                         ids=["seq-number", "no-tunnel-key"])
def test_4_6_set_tunnel_key_lacks_the_newer_flags(call):
    """4.6 profile: SEQ_NUMBER and NO_TUNNEL_KEY did not exist."""
    _, cb, _, _ = engine_run([call], profile="4.6")
    assert cb == [EINVAL]


def test_4_6_get_tunnel_key_lacks_tuninfo_flags_and_writes_only_its_fields():
    """4.6 profile: flags 0x10 is -EINVAL (buffer untouched); a full get leaves ext and
    the unused address words as they were."""
    res, cb, key, _ = engine_run([set_key(28), get_key(28, TUNINFO_FLAGS), get_key(28)],
                                 profile="4.6")
    assert cb == [0, EINVAL, 0]
    # remote is the outer source, which the 4.6 set_tunnel_key never writes
    assert key[:8] == struct.pack("<II", 42, 0) and key[8:20] == b"\xaa" * 12
    assert key[20:28] == b"\x10\x07\xaa\xaa\xaa\xaa\xaa\xaa"
    assert res.tunnel["dst"] == bytes([10, 0, 0, 1]) and res.tunnel["src"] == bytes(4)


def test_4_6_zero_csum_tx_applies_to_ipv4_only():
    """4.6 profile: ZERO_CSUM_TX was handled in the IPv4 branch."""
    res4, *_ = engine_run([set_key(28, ZERO_CSUM_TX)], profile="4.6")
    res6, *_ = engine_run([set_key(28, IPV6 | ZERO_CSUM_TX, "v6")], profile="4.6")
    assert (res4.tunnel["flags"], res6.tunnel["flags"]) == (0x2004, 0x2005)


def test_4_6_set_tunnel_opt_does_not_make_options_readable():
    """4.6 profile: the options are attached but not flagged present."""
    res, cb, _, opt = engine_run([set_key(28), set_opt(8), get_opt(GOPT)], profile="4.6")
    assert cb == [0, 0, ENOENT] and opt == b"\xaa" * GOPT
    assert res.tunnel["options"] == bytes(range(1, 9)) and res.tunnel["flags"] == 0x2005


def test_4_6_get_tunnel_opt_does_not_zero_fill():
    """4.6 profile, received geneve options: copied, the rest of the buffer untouched."""
    _, cb, _, opt = engine_run([get_opt(GOPT)], profile="4.6", tunnel=RX_V6)
    assert cb == [12] and opt == RX_V6["options"] + b"\xaa" * (GOPT - 12)


def test_4_6_set_tunnel_key_keeps_stale_state():
    """4.6 profile: no clearing — an IPv4 destination written earlier shows through the
    IPv6 source (the address union), and the options of the first key stay attached."""
    res, cb, key, _ = engine_run([set_key(28, 0, "v4"), set_opt(8), set_key(28, IPV6, "v6"),
                                  get_key(28, IPV6)], profile="4.6")
    assert cb == [0, 0, 0, 0]
    assert decode(key)["remote"] == bytes(4) + bytes([10, 0, 0, 1]) + bytes(8)
    assert res.tunnel["options"] == bytes(range(1, 9))


def test_current_set_tunnel_key_clears_stale_state():
    """The counterpart of the 4.6 test above, differential."""
    cb, key, _ = differential(set_key(44, 0, "v4"), set_opt(8), set_key(28, IPV6, "v6"),
                              get_key(44, IPV6), get_opt(GOPT))
    assert cb == [0, 0, 0, 0, ENOENT] and decode(key)["remote"] == bytes(16)


# --- arguments the kernel's verifier would refuse -------------------------------------

@pytest.mark.parametrize("helper, size, access", [
    (20, 44, "write of 44"), (21, 44, "read of 44"), (29, 16, "write of 16"),
    (30, 12, "read of 12"),
], ids=["get_tunnel_key", "set_tunnel_key", "get_tunnel_opt", "set_tunnel_opt"])
def test_a_buffer_running_past_the_stack_faults(helper, size, access):
    code = pyebpf.asm.assemble(f"r2 = r10\nr2 += -8\nr3 = {size}\nr4 = 0\ncall {helper}\nexit")
    with pytest.raises(pyebpf.errors.MemoryFault, match=f"invalid {access} bytes at stack"):
        pyebpf.Program(code, CLS, verify=False).run(PKT)


@pytest.mark.parametrize("helper", [20, 21, 29, 30])
def test_the_first_argument_must_be_the_context(helper):
    code = pyebpf.asm.assemble(f"r2 = r10\nr2 += -44\nr3 = 44\nr4 = 0\nr1 = 0\ncall {helper}\nexit")
    with pytest.raises(pyebpf.errors.ExecutionError, match="must be the context"):
        pyebpf.Program(code, CLS, verify=False).run(PKT)
