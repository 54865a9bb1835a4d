"""Run one skb program on one packet in pyebpf and in the kernel, and compare.

``both(code, prog_type, packet, ctx)`` runs the program in the engine and through
BPF_PROG_TEST_RUN with the same ``__sk_buff`` input fields (the ones test_run accepts:
mark, priority, ingress_ifindex, ifindex, cb, tstamp, wire_len, gso_segs, gso_size,
hwtstamp); ``assert_same`` then requires the same retval, the same packet bytes and
the same exported ``__sk_buff`` fields.  Socket filters run with ``sf_start="network"``
because test_run starts them at L3.

``packet_diff(got, want)`` says where two packets or buffers first differ: the offset, the
protocol layer it falls in, and both sides as a hexdump around it.  Every comparison of
packets or buffers in the tests shows it on failure (``conftest.pytest_assertrepr_compare``
for a plain ``assert a == b``, explicitly where the assertion is in a helper module).
"""
from __future__ import annotations

import pyebpf
from pyebpf import kernel
from recorded_kernel import count_comparison

isa = pyebpf.isa
SF = isa.ProgType.BPF_PROG_TYPE_SOCKET_FILTER
CLS = isa.ProgType.BPF_PROG_TYPE_SCHED_CLS
ACT = isa.ProgType.BPF_PROG_TYPE_SCHED_ACT
TYPES = (SF, CLS, ACT)
SIZES = {1: isa.BPF_B, 2: isa.BPF_H, 4: isa.BPF_W, 8: isa.BPF_DW}
R0_0, EXIT = isa.Insn(0xB7, 0, 0, 0, 0), isa.Insn(0x95, 0, 0, 0, 0)
# test_run echoes gso_size from ctx_in and never updates it: not an output to compare
EXPORTED = tuple(f for f in isa.TEST_RUN_SK_BUFF_FIELDS if f != "gso_size")


def engine_fields(prog_type, ctx: dict | None) -> dict:
    fields = dict(ctx or {})
    if fields.get("ifindex", 0) == 0:
        fields["ifindex"] = 1          # test_run's default device is loopback
    if fields.get("wire_len", 0) == 0:
        fields.pop("wire_len", None)   # 0 means "len" to test_run
    if pyebpf.isa.ProgType(prog_type) == SF:
        fields["sf_start"] = "network"
    return fields


def both(code: bytes, prog_type, packet: bytes, ctx: dict | None = None, *,
         profile: str = "current", **extra):
    """(engine Result, kernel result) for one run of ``code`` on ``packet``."""
    prog_type = pyebpf.isa.prog_type(prog_type)
    engine = pyebpf.Program(code, prog_type, profile=profile).run(
        packet, **engine_fields(prog_type, ctx), **extra)
    with kernel.KernelProgram(code, prog_type) as kprog:
        theirs = kprog.test_run(packet, ctx=dict(ctx or {}))
    return engine, theirs


def assert_same(code: bytes, prog_type, packet: bytes, ctx: dict | None = None, **extra):
    """Run in both and require the same retval, packet and exported fields."""
    engine, theirs = both(code, prog_type, packet, ctx, **extra)
    count_comparison()
    assert engine.retval & 0xFFFFFFFF == theirs.retval, "retval differs"
    sf = pyebpf.isa.prog_type(prog_type) == SF
    kernel_packet = theirs.data[14:] if sf else theirs.data
    assert engine.data_out == kernel_packet, packet_diff(
        engine.data_out, kernel_packet, start="network" if sf else "mac")
    ours = engine.skb.as_dict()
    for name in EXPORTED:
        want = list(theirs.skb[name]) if name == "cb" else theirs.skb[name]
        got = list(ours[name]) if name == "cb" else ours[name]
        assert got == want, f"__sk_buff.{name} differs: engine {got!r}, kernel {want!r}"
    return engine, theirs


# --- where two packets differ ------------------------------------------------------------

ETH_HLEN = 14
_VLAN_TPIDS = {0x8100: "802.1Q tag", 0x88A8: "802.1ad tag", 0x9100: "802.1Q tag (0x9100)"}
_IPV6_EXT = {0: "IPv6 hop-by-hop header", 43: "IPv6 routing header",
             60: "IPv6 destination options", 44: "IPv6 fragment header", 51: "AH header"}
_L4 = {6: "TCP", 17: "UDP", 1: "ICMP", 58: "ICMPv6", 2: "IGMP", 47: "GRE", 132: "SCTP"}


def _ip_layers(frame: bytes, off: int, version: int) -> list[tuple[str, int, int]]:
    """The IP header at ``off`` and what follows it, as (name, start, end) spans."""
    spans = []
    if version == 4:
        end = off + max(20, (frame[off] & 0xF) * 4) if off < len(frame) else off + 20
        spans.append(("IPv4 header", off, end))
        proto = frame[off + 9] if off + 9 < len(frame) else None
    else:
        end = off + 40
        spans.append(("IPv6 header", off, end))
        proto = frame[off + 6] if off + 6 < len(frame) else None
        while proto in _IPV6_EXT and end + 2 <= len(frame):
            size = (8 if proto == 44 else (frame[end + 1] + 2) * 4 if proto == 51
                    else (frame[end + 1] + 1) * 8)
            spans.append((_IPV6_EXT[proto], end, end + size))
            proto, end = frame[end], end + size
    off = end
    if proto in (4, 41) and off < len(frame):          # IP in IP
        return spans + _ip_layers(frame, off, 4 if proto == 4 else 6)
    if proto in _L4:
        size = 8
        if proto == 6 and off + 12 < len(frame):
            size = max(20, (frame[off + 12] >> 4) * 4)
        elif proto == 132:
            size = 12
        elif proto == 47:
            size = 4
        spans.append((f"{_L4[proto]} header", off, off + size))
        off += size
    spans.append(("payload", off, None))
    return spans


def layers(frame: bytes, start: str = "mac") -> list[tuple[str, int, int | None]]:
    """The protocol layers of ``frame`` as (name, start, end) spans (end None: to the end),
    read from its own bytes: Ethernet, 802.1Q/802.1ad tags, ARP, IPv4, IPv6 and its
    extension headers, IP in IP, TCP, UDP, ICMP, ICMPv6, GRE, SCTP, then payload.
    ``start="network"`` reads a packet that begins at its IP header (socket filters),
    ``start="buffer"`` plain bytes."""
    if start == "buffer":
        return [("buffer", 0, None)]
    if start == "network":
        version = frame[0] >> 4 if frame else 0
        return _ip_layers(frame, 0, version) if version in (4, 6) else [("payload", 0, None)]
    spans = [("Ethernet header", 0, 12)]
    off = 12
    while off + 2 <= len(frame) and int.from_bytes(frame[off:off + 2], "big") in _VLAN_TPIDS:
        spans.append((_VLAN_TPIDS[int.from_bytes(frame[off:off + 2], "big")], off, off + 4))
        off += 4
    spans.append(("Ethernet header (EtherType)", off, off + 2))
    ethertype = int.from_bytes(frame[off:off + 2], "big") if off + 2 <= len(frame) else None
    off += 2
    if ethertype == 0x0800:
        return spans + _ip_layers(frame, off, 4)
    if ethertype == 0x86DD:
        return spans + _ip_layers(frame, off, 6)
    if ethertype == 0x0806:
        return spans + [("ARP", off, off + 28), ("payload", off + 28, None)]
    return spans + [("payload", off, None)]


def guess_start(data: bytes) -> str:
    """How an unlabelled buffer is read: "network" when it is a whole IP packet (its
    length field says so), "mac" (a frame) when it holds an Ethernet header, else
    "buffer" (plain bytes, no layers)."""
    if len(data) >= 20 and data[0] >> 4 == 4 and int.from_bytes(data[2:4], "big") == len(data):
        return "network"
    if len(data) >= 40 and data[0] >> 4 == 6 and int.from_bytes(data[4:6], "big") + 40 == len(data):
        return "network"
    return "mac" if len(data) >= ETH_HLEN else "buffer"


def layer_at(frame: bytes, offset: int, start: str = "mac") -> str:
    """``offset`` in words: the layer of ``frame`` it falls in and the byte within it."""
    if offset >= len(frame):
        return f"past the end ({len(frame)} bytes)"
    if start == "buffer":
        return f"byte {offset}"
    for name, begin, end in layers(frame, start):
        if begin <= offset and (end is None or offset < end):
            return f"{name}, byte {offset - begin}"
    return "payload"


def _row(data: bytes, at: int) -> str:
    return " ".join(f"{b:02x}" for b in data[at:at + 16])


def packet_diff(got: bytes, want: bytes, names: tuple[str, str] = ("engine", "kernel"),
                start: str = "mac") -> str:
    """Where ``got`` and ``want`` first differ, for an assertion message: the offset, the
    protocol layer it falls in on each side, and both sides in hex (16-byte rows from the
    row before the difference, up to four rows), ``^^`` under each byte that differs."""
    got, want = bytes(got), bytes(want)
    if got == want:
        return f"{names[0]} and {names[1]} are the same {len(got)} bytes"
    first = next((k for k in range(min(len(got), len(want))) if got[k] != want[k]),
                 min(len(got), len(want)))
    where_got, where_want = layer_at(got, first, start), layer_at(want, first, start)
    where = (where_want if where_got == where_want
             else f"{where_got} in {names[0]}, {where_want} in {names[1]}")
    width = max(len(n) for n in names)
    lines = [f"first difference at offset {first} ({first:#x}): {where}; "
             f"{names[0]} {len(got)} bytes, {names[1]} {len(want)} bytes"]
    row0 = max(0, first // 16 - 1) * 16
    for at in range(row0, min(max(len(got), len(want)), row0 + 64), 16):
        lines.append(f"{names[0]:>{width}}  {at:04x}  {_row(got, at)}".rstrip())
        lines.append(f"{names[1]:>{width}}  {at:04x}  {_row(want, at)}".rstrip())
        marks = "".join("^^ " if k >= len(got) or k >= len(want) or got[k] != want[k]
                        else "   " for k in range(at, min(at + 16, max(len(got), len(want)))))
        if marks.strip():
            lines.append(" " * (width + 8) + marks.rstrip())
    return "\n".join(lines)
