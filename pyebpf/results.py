"""A run's result in the terms of its domain: tc verdicts by name, packets as scapy
layers, the fields a program changed, whether the checksums still hold.

:class:`pyebpf.Result` exposes these as properties computed when read (``verdict``,
``kept``, ``packet``, ``changed``, ``checksums_ok``), so a run that nobody asks about
pays nothing for them.  The pytest plugin uses :func:`packet_diff` and
:func:`describe_value` to explain failed assertions.  scapy is imported on first use.
"""
from __future__ import annotations

from typing import NamedTuple

from .isa import TC_ACT

__all__ = ["Change", "verdict", "kept", "dissect", "changed", "checksums_ok",
           "packet_diff", "describe_value", "result_repr"]


class Change(NamedTuple):
    """One packet field a program changed: ``field`` is ``Layer.name`` (``IP.ttl``;
    ``IP#2.ttl`` for a second IP layer), ``old`` and ``new`` as scapy shows them."""
    field: str
    old: str
    new: str

    def __str__(self) -> str:
        return f"{self.field}: {self.old} → {self.new}"

    __repr__ = __str__


def verdict(res):
    """The tc verdict: a :class:`TC_ACT` member, or the int when it names none."""
    if res.prog_kind != "tc":
        raise AttributeError(f"verdict: this is a {res.prog_kind} program's result; tc "
                             "programs have verdicts" + (" (socket filters: use .kept)"
                                                         if res.prog_kind == "socket_filter"
                                                         else ""))
    try:
        return TC_ACT(res.retval)
    except ValueError:
        return res.retval


def kept(res) -> int:
    """The bytes a socket filter keeps (0: the packet is dropped)."""
    if res.prog_kind != "socket_filter":
        raise AttributeError(f"kept: this is a {res.prog_kind} program's result; socket "
                             "filters keep bytes" + (" (tc programs: use .verdict)"
                                                    if res.prog_kind == "tc" else ""))
    return len(res.data)


def dissect(data: bytes, network_start: bool = False):
    """``data`` as a scapy packet: Ethernet, or IPv4/IPv6 (by the version nibble) when
    it starts at the network header."""
    from scapy.layers.inet import IP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Ether
    if not network_start:
        return Ether(data)
    return IPv6(data) if data[:1] and data[0] >> 4 == 6 else IP(data)


def _layers(pkt):
    """[(label, layer)] from the outermost layer in: ``IP``, then ``IP#2`` for a second."""
    out, seen = [], {}
    layer = pkt
    while layer is not None and layer.__class__.__name__ != "NoPayload":
        name = layer.__class__.__name__
        seen[name] = seen.get(name, 0) + 1
        out.append((name if seen[name] == 1 else f"{name}#{seen[name]}", layer))
        layer = layer.payload if layer.payload else None
    return out


def _show(layer, fld, value) -> str:
    try:
        return str(fld.i2repr(layer, value))
    except Exception:       # scapy's i2repr fails on values its field cannot show
        return repr(value)


def _field_changes(before, after) -> list[Change]:
    a_layers, b_layers = _layers(before), _layers(after)
    a_names = [n for n, _ in a_layers]
    b_names = [n for n, _ in b_layers]
    if a_names != b_names:
        changes = [Change("layers", "/".join(a_names) or "(none)", "/".join(b_names) or "(none)")]
    else:
        changes = []
    for (name, a), (name_b, b) in zip(a_layers, b_layers):
        if name != name_b:
            break
        for fld in a.fields_desc:
            old, new = a.getfieldval(fld.name), b.getfieldval(fld.name)
            if old != new:
                changes.append(Change(f"{name}.{fld.name}", _show(a, fld, old),
                                      _show(b, fld, new)))
    return changes


def changed(res) -> list[Change]:
    """The fields that differ between the packet given to run() and ``res.packet``."""
    if res.prog_kind == "raw":
        raise AttributeError("changed: raw-mode results have memory, not packets")
    start = res.network_start
    before = res.input[14:] if start else res.input
    return _field_changes(dissect(before, start), res.packet)


def _fragmented(layer) -> bool:
    ip = layer
    while ip is not None and ip.__class__.__name__ != "NoPayload":
        if ip.__class__.__name__ == "IP":
            return bool(ip.frag) or bool(int(ip.flags) & 1)
        ip = ip.underlayer
    return False


def _checksummed(layer) -> str | None:
    name = layer.__class__.__name__
    if name in ("IP", "TCP", "UDP", "ICMP"):
        return "chksum"
    if name.startswith("ICMPv6") and any(f.name == "cksum" for f in layer.fields_desc):
        return "cksum"
    return None


def checksums_ok(res) -> bool:
    """Whether every IPv4 header, TCP, UDP, ICMP and ICMPv6 checksum in ``res.data``
    is what scapy computes for those bytes (a UDP checksum of 0 over IPv4 means none;
    transport checksums of IPv4 fragments are not judged)."""
    if res.prog_kind == "raw":
        raise AttributeError("checksums_ok: raw-mode results have memory, not packets")
    return _checksums_ok(res.data, res.network_start)


def _checksums_ok(data: bytes, network_start: bool = False) -> bool:
    pkt = dissect(data, network_start)
    for k, (_, layer) in enumerate(_layers(pkt)):
        field = _checksummed(layer)
        if field is None:
            continue
        if layer.__class__.__name__ != "IP" and _fragmented(layer.underlayer):
            continue
        have = layer.getfieldval(field)
        if layer.__class__.__name__ == "UDP" and have == 0 and \
                layer.underlayer is not None and layer.underlayer.__class__.__name__ == "IP":
            continue
        copy = pkt.copy()
        target = _layers(copy)[k][1]
        setattr(target, field, None)
        rebuilt = _layers(dissect(bytes(copy), network_start))[k][1]
        if rebuilt.getfieldval(field) != have:
            return False
    return True


def packet_diff(left, right) -> list[str]:
    """Field-by-field differences of two packets (scapy packets or frame bytes), as
    lines ``Layer.field: left ≠ right``."""
    left, right = _as_packet(left), _as_packet(right)
    out = []
    for ch in _field_changes(left, right):
        out.append(f"{ch.field}: {ch.old} ≠ {ch.new}")
    if not out and bytes(left) != bytes(right):
        a, b = bytes(left), bytes(right)
        at = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        out.append(f"bytes differ from offset {at} ({len(a)} vs {len(b)} bytes)")
    return out


def _as_packet(value):
    from scapy.packet import Packet
    if isinstance(value, Packet):
        return value
    return dissect(bytes(value))


def describe_value(value) -> str:
    """A verdict shown by name: ``TC_ACT.SHOT (2)``; other values as repr."""
    if isinstance(value, TC_ACT):
        return f"TC_ACT.{value.name} ({int(value)})"
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return f"{int(value)} (TC_ACT.{TC_ACT(value).name})"
        except ValueError:
            return repr(value)
    return repr(value)


def result_repr(res) -> str:
    kind = res.prog_kind
    if kind == "tc":
        v = verdict(res)
        head = f"verdict={describe_value(v) if isinstance(v, TC_ACT) else v}"
    elif kind == "socket_filter":
        head = f"kept={len(res.data)}"
    else:
        head = f"retval={res.retval:#x}"
    return f"Result({head}, data={len(res.data)} bytes, insn_count={res.insn_count})"
