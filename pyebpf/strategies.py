"""Hypothesis strategies for Ethernet frames, valid and deliberately malformed.

``frames()`` draws well-formed frames: Ethernet, optionally one 802.1Q tag, IPv4 or
IPv6, then TCP, UDP or ICMP (ICMPv6 echo over IPv6) with a payload, every length and
checksum right.  Every part can be pinned or narrowed, with a value or a strategy::

    from hypothesis import given, strategies as st
    from scapy.layers.inet import TCP
    from pyebpf.strategies import frames, ipv4

    @given(frames(l4=TCP, dport=st.just(22), src=ipv4(outside="10.0.0.0/8")))
    def test_ssh_from_outside_is_dropped(frame): ...

``malformed_frames(kind)`` draws frames broken in one named way (``"short"``,
``"bad_ihl"``, ``"bad_length"``, ``"fragment"``; see :data:`MALFORMED`).

Frames come as scapy ``Ether`` packets dissected from their bytes, so ``bytes(frame)``
is exactly what was drawn.  All are at least 14 bytes and at most 1514, which
``BPF_PROG_TEST_RUN`` accepts for tc programs and socket filters.  Needs hypothesis
(``pip install 'pyebpf[test]'``).
"""
from __future__ import annotations

import ipaddress

try:
    from hypothesis import strategies as st
except ImportError as exc:       # the plugin works without it; only this module needs it
    raise ImportError("pyebpf.strategies needs hypothesis: pip install 'pyebpf[test]' "
                      "(or pip install hypothesis)") from exc
# imported here, not in the draws: a first import inside one would count as slow input
# generation in hypothesis' health check
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import Dot1Q, Ether

__all__ = ["frames", "malformed_frames", "ipv4", "ipv6", "macs", "MALFORMED"]

MALFORMED = {
    "short": "cut inside its transport header (the IP header is whole: BPF_PROG_TEST_RUN "
             "refuses IPv4 frames under 34 bytes and IPv6 ones under 54)",
    "bad_ihl": "IPv4 header length field below 5 words, or past the end of the frame",
    "bad_length": "IPv4 total length or UDP length that disagrees with the bytes present",
    "fragment": "an IPv4 fragment (more-fragments set or a non-zero offset) or an IPv6 "
                "fragment header",
}

_MAX_PAYLOAD = 256


def _strategy(value, default):
    if value is None:
        return default
    if isinstance(value, st.SearchStrategy):
        return value
    return st.just(value)


def macs() -> st.SearchStrategy[str]:
    """Unicast MAC addresses, as ``aa:bb:cc:dd:ee:ff``."""
    return st.binary(min_size=6, max_size=6).map(
        lambda b: ":".join(f"{x:02x}" for x in bytes([b[0] & 0xFE]) + b[1:]))


def _addresses(version: int, within, outside):
    net = ipaddress.ip_network(within) if within else ipaddress.ip_network(
        "0.0.0.0/0" if version == 4 else "::/0")
    if net.version != version:
        raise ValueError(f"{within!r} is not an IPv{version} network")
    excluded = [ipaddress.ip_network(n) for n in
                ([outside] if isinstance(outside, str) else list(outside or ()))]
    for n in excluded:
        if n.version != version:
            raise ValueError(f"{n} is not an IPv{version} network")
        if net.subnet_of(n):
            raise ValueError(f"every address of {net} is inside {n}: nothing to draw")
    first, size = int(net.network_address), net.num_addresses
    make = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
    return (st.integers(0, size - 1).map(lambda k: make(first + k))
            .filter(lambda a: not any(a in n for n in excluded)).map(str))


def ipv4(within: str | None = None, outside=None) -> st.SearchStrategy[str]:
    """IPv4 addresses as strings, inside the network ``within`` (default: any) and
    outside ``outside`` (a network or a list of them)."""
    return _addresses(4, within, outside)


def ipv6(within: str | None = None, outside=None) -> st.SearchStrategy[str]:
    """IPv6 addresses as strings; ``within`` and ``outside`` as for :func:`ipv4`."""
    return _addresses(6, within, outside)


def _l4_name(l4) -> str | None:
    if l4 is None:
        return None
    name = l4 if isinstance(l4, str) else getattr(l4, "__name__", str(l4))
    name = name.lower()
    if name.startswith("icmp"):
        return "icmp"
    if name not in ("tcp", "udp"):
        raise ValueError(f"l4={l4!r}: choose TCP, UDP or ICMP (scapy classes or names)")
    return name


def _l3_name(l3) -> str | None:
    if l3 is None:
        return None
    name = (l3 if isinstance(l3, str) else getattr(l3, "__name__", str(l3))).lower()
    if name in ("ip", "ipv4", "4"):
        return "ipv4"
    if name in ("ipv6", "6"):
        return "ipv6"
    raise ValueError(f"l3={l3!r}: choose IP (IPv4) or IPv6 (scapy classes or names)")


@st.composite
def _frame(draw, l3, l4, vlan, src, dst, sport, dport, payload, ttl, tcp_flags, eth_src,
           eth_dst):
    version = draw(st.sampled_from(["ipv4", "ipv6"]) if l3 is None else st.just(l3))
    proto = draw(st.sampled_from(["tcp", "udp", "icmp"]) if l4 is None else st.just(l4))
    addr = ipv4() if version == "ipv4" else ipv6()
    frame = Ether(src=draw(_strategy(eth_src, macs())), dst=draw(_strategy(eth_dst, macs())))
    if draw(_strategy(vlan, st.booleans())):
        frame = frame / Dot1Q(vlan=draw(st.integers(1, 4094)), prio=draw(st.integers(0, 7)))
    hop = draw(_strategy(ttl, st.integers(1, 255)))
    s, d = draw(_strategy(src, addr)), draw(_strategy(dst, addr))
    frame = frame / (IP(src=s, dst=d, ttl=hop) if version == "ipv4" else
                     IPv6(src=s, dst=d, hlim=hop))
    ports = st.integers(1, 65535)
    if proto == "tcp":
        frame = frame / TCP(sport=draw(_strategy(sport, ports)), dport=draw(_strategy(dport, ports)),
                            flags=draw(_strategy(tcp_flags, st.sampled_from(
                                ["S", "SA", "A", "PA", "FA", "R", "RA"]))),
                            seq=draw(st.integers(0, 2**32 - 1)))
    elif proto == "udp":
        frame = frame / UDP(sport=draw(_strategy(sport, ports)), dport=draw(_strategy(dport, ports)))
    elif version == "ipv4":
        frame = frame / ICMP(type=8, id=draw(st.integers(0, 65535)))
    else:
        frame = frame / ICMPv6EchoRequest(id=draw(st.integers(0, 65535)))
    data = draw(_strategy(payload, st.binary(max_size=_MAX_PAYLOAD)))
    return Ether(bytes(frame / data) if data else bytes(frame))


def frames(*, l3=None, l4=None, vlan=None, src=None, dst=None, sport=None, dport=None,
           payload=None, ttl=None, tcp_flags=None, eth_src=None, eth_dst=None):
    """Well-formed frames (see the module).  Each argument is a value or a strategy;
    None lets it vary: ``l3`` IP/IPv6 (scapy classes, or ``"ipv4"``/``"ipv6"``), ``l4``
    TCP/UDP/ICMP (ICMPv6 echo over IPv6), ``vlan`` whether one 802.1Q tag comes first,
    ``src``/``dst`` IP addresses (see :func:`ipv4`), ``sport``/``dport`` (TCP and UDP),
    ``payload`` bytes, ``ttl`` (hop limit for IPv6), ``tcp_flags`` (scapy's letters),
    ``eth_src``/``eth_dst`` MAC addresses."""
    l3n, l4n = _l3_name(l3), _l4_name(l4)
    if l3n is None and (src is not None or dst is not None):
        raise ValueError("src=/dst= need l3= (IP or IPv6): an address fits one family")
    return _frame(l3n, l4n, vlan, src, dst, sport, dport, payload, ttl, tcp_flags, eth_src,
                  eth_dst)


def _l3_offset(raw: bytes) -> int:
    return 18 if raw[12:14] == b"\x81\x00" else 14


@st.composite
def _malformed(draw, kind):
    if kind == "short":
        base = draw(frames())
        raw = bytes(base)
        at = _l3_offset(raw)
        v4 = raw[at] >> 4 == 4
        l3_end = at + (20 if v4 else 40)
        l4_len = 20 if raw[at + 9 if v4 else at + 6] == 6 else 8    # TCP, else UDP/ICMP
        return Ether(raw[:draw(st.integers(l3_end, l3_end + l4_len - 1))])
    if kind == "bad_ihl":
        raw = bytearray(bytes(draw(frames(l3="ipv4"))))
        at = _l3_offset(raw)
        ihl = draw(st.sampled_from([*range(5), *(v for v in range(5, 16)
                                                 if at + v * 4 > len(raw))]))
        raw[at] = 0x40 | ihl
        return Ether(bytes(raw))
    if kind == "bad_length":
        proto = draw(st.sampled_from(["tcp", "udp"]))
        raw = bytearray(bytes(draw(frames(l3="ipv4", l4=proto))))
        at = _l3_offset(raw)
        if proto == "udp" and draw(st.booleans()):
            right = len(raw) - at - 20
            wrong = draw(st.integers(0, 65535).filter(lambda v: v != right))
            raw[at + 24:at + 26] = wrong.to_bytes(2, "big")
        else:
            right = len(raw) - at
            wrong = draw(st.integers(0, 65535).filter(lambda v: v != right))
            raw[at + 2:at + 4] = wrong.to_bytes(2, "big")
            raw[at + 10:at + 12] = bytes(2)
            raw[at + 10:at + 12] = _ip_checksum(bytes(raw[at:at + 20])).to_bytes(2, "big")
        return Ether(bytes(raw))
    if kind == "fragment":
        if draw(st.booleans()):
            raw = bytearray(bytes(draw(frames(l3="ipv4"))))
            at = _l3_offset(raw)
            more = draw(st.booleans())
            offset = draw(st.integers(0 if more else 1, 8191))
            raw[at + 6:at + 8] = ((0x2000 if more else 0) | offset).to_bytes(2, "big")
            raw[at + 10:at + 12] = bytes(2)
            raw[at + 10:at + 12] = _ip_checksum(bytes(raw[at:at + 20])).to_bytes(2, "big")
            return Ether(bytes(raw))
        raw = bytearray(bytes(draw(frames(l3="ipv6"))))
        at = _l3_offset(raw)
        more = draw(st.booleans())
        offset = draw(st.integers(0 if more else 1, 8191))
        # the fragment header (RFC 8200 4.5) goes between the IPv6 header and its payload
        frag = (bytes([raw[at + 6], 0]) + ((offset << 3) | more).to_bytes(2, "big")
                + draw(st.binary(min_size=4, max_size=4)))
        raw[at + 6] = 44
        raw[at + 4:at + 6] = (int.from_bytes(raw[at + 4:at + 6], "big") + 8).to_bytes(2, "big")
        return Ether(bytes(raw[:at + 40] + frag + raw[at + 40:]))
    raise ValueError(f"unknown malformation {kind!r}; choose one of {', '.join(MALFORMED)}")


def _ip_checksum(header: bytes) -> int:
    total = sum(int.from_bytes(header[k:k + 2], "big") for k in range(0, len(header), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def malformed_frames(kind: str | None = None):
    """Frames broken in the way ``kind`` names (any of :data:`MALFORMED` when None)."""
    if kind is not None and kind not in MALFORMED:
        raise ValueError(f"unknown malformation {kind!r}; choose one of {', '.join(MALFORMED)}")
    if kind is None:
        return st.one_of(*[_malformed(k) for k in MALFORMED])
    return _malformed(kind)
