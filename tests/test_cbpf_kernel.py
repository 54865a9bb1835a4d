"""Classic filters in the kernel: the checker's verdicts against SO_ATTACH_FILTER's,
and what a packet socket with the filter keeps (which frames, how many bytes) against
pyebpf, for frames sent through a veth pair in a network namespace of the test's own."""
import ctypes
import errno
import select
import socket
import struct
import sys
from pathlib import Path

import pytest
from scapy.all import (ARP, ICMP, IP, TCP, UDP, Dot1Q, Ether, ICMPv6EchoRequest, IPv6,
                       IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop, Raw)

from pyebpf import cbpf, isa
from pyebpf.cbpf import SockFilter as F
from pyebpf.errors import ClassicError

sys.path.insert(0, str(Path(__file__).parent))
import netns  # noqa: E402
import toolpath  # noqa: E402
from test_cbpf import ACCEPTED, NL_FRAME, REFUSED  # noqa: E402

ETH_P_ALL, SO_RCVBUFFORCE = 0x0003, 33
VLAN_TPIDS = (0x8100, 0x88A8)
AD = isa.SKF_AD_OFF & 0xFFFFFFFF
MARK = 0x5A5A17
SENTINEL = b"pyebpf-cbpf-sentinel"


def fprog(insns):
    """A struct sock_fprog for ``insns`` and the buffer it points at (keep both alive)."""
    buf = ctypes.create_string_buffer(cbpf.to_bytes(insns), max(8 * len(insns), 1))
    return struct.pack("HxxxxxxP", len(insns), ctypes.addressof(buf)), buf


def attach(sock, insns):
    opt, buf = fprog(insns)
    sock.setsockopt(socket.SOL_SOCKET, isa.SO_ATTACH_FILTER, opt)
    del buf


def kernel_verdict(insns):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            attach(s, insns)
        except OSError as exc:
            return errno.errorcode.get(exc.errno, exc.errno)
    return "ok"


@pytest.mark.parametrize("name", REFUSED)
def test_the_kernel_refuses_what_the_checker_refuses(name):
    insns, _ = REFUSED[name]
    with pytest.raises(ClassicError):
        cbpf.check(insns)
    assert kernel_verdict(insns) == "EINVAL"


@pytest.mark.parametrize("name", ACCEPTED)
def test_the_kernel_accepts_what_the_checker_accepts(name):
    cbpf.check(ACCEPTED[name])
    assert kernel_verdict(ACCEPTED[name]) == "ok"


# --- a packet socket on a veth pair -------------------------------------------------

@pytest.fixture(scope="module")
def veth(live_kernel):
    """(sender on vtx with SO_MARK, receiver on vrx, vrx's ifindex) in a namespace of our
    own (netns.veth_pair), vrx with a fixed MAC."""
    with netns.veth_pair("cbpf") as (name, inside, _):
        inside(toolpath.find("ip"), "link", "set", "vrx", "address", "02:00:00:00:00:0b")

        def make():
            tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
            tx.bind(("vtx", 0))
            tx.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, MARK)
            rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            rx.bind(("vrx", 0))
            rx.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 1 << 24)
            return tx, rx, socket.if_nametoindex("vrx")

        tx, rx, ifindex = netns.in_netns(name, make)
        with tx, rx:
            yield tx, rx, ifindex


def kept_by_the_kernel(veth, insns, frames):
    """What the packet socket with ``insns`` attached received of ``frames``, in order."""
    tx, rx, _ = veth
    while select.select([rx], [], [], 0)[0]:
        rx.recv(65535)
    attach(rx, insns)
    for frame in frames:
        tx.send(frame)
    rx.setsockopt(socket.SOL_SOCKET, isa.SO_DETACH_FILTER, 0)
    tx.send(bytes(Ether(dst="02:00:00:00:00:0b", type=0x88B5)) + SENTINEL)
    got = []
    while select.select([rx], [], [], 2.0)[0]:
        data, address = rx.recvfrom(65535)
        if address[2] == socket.PACKET_OUTGOING:
            continue
        if SENTINEL in data:
            return got
        got.append(data)
    raise AssertionError("the sentinel frame did not arrive on vrx within 2 s")


def kept_by_pyebpf(veth, insns, frames):
    """What pyebpf's run keeps of ``frames`` on the skb the kernel's packet socket sees:
    an outer VLAN tag moved to the metadata (skb_vlan_untag on receive), the device's
    ifindex and address, the sender's mark."""
    _, _, ifindex = veth
    prog = cbpf.program(insns)
    kept = []
    for frame in frames:
        fields = dict(ifindex=ifindex, mark=MARK, dev_addr="02:00:00:00:00:0b",
                      dev_broadcast="ff:ff:ff:ff:ff:ff")
        tpid = int.from_bytes(frame[12:14], "big")
        if tpid in VLAN_TPIDS:
            fields["vlan"] = (tpid, int.from_bytes(frame[14:16], "big"))
            frame = frame[:12] + frame[16:]
        res = prog.run(frame, **fields)
        if res.retval:
            kept.append(res.data)
    return kept


MAC_RX, MAC_OTHER = "02:00:00:00:00:0b", "02:00:00:00:00:0c"
FRAMES = [bytes(p) for p in (
    Ether(dst=MAC_RX) / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(dport=80) / Raw(b"a" * 150),
    Ether(dst=MAC_RX) / IP(src="10.0.0.2", dst="10.0.0.1") / UDP(dport=53) / Raw(b"b" * 120),
    Ether(dst="ff:ff:ff:ff:ff:ff") / IP(dst="255.255.255.255") / UDP(dport=67) / Raw(b"c" * 130),
    Ether(dst="01:00:5e:00:00:01") / IP(dst="224.0.0.1") / ICMP() / Raw(b"d" * 140),
    Ether(dst=MAC_OTHER) / IP() / TCP(dport=22) / Raw(b"e" * 160),
    Ether(dst=MAC_RX) / Dot1Q(vlan=5, prio=3) / IP() / TCP(dport=80) / Raw(b"f" * 150),
    Ether(dst=MAC_RX, type=0x88A8) / Dot1Q(vlan=300) / IP() / UDP(dport=53) / Raw(b"g" * 150),
    Ether(dst=MAC_RX) / IPv6(dst="2001:db8::1") / TCP(dport=443) / Raw(b"h" * 150),
    Ether(dst=MAC_RX, type=0x88CC) / Raw(b"i" * 150),
    Ether(dst=MAC_RX) / IP(ihl=6, options=b"\x01\x01\x01\x01") / TCP(dport=80) / Raw(b"j" * 150),
    Ether(dst=MAC_RX) / Raw(b"\x00\x30" + b"k" * 146),              # 802.3 length field
    Ether(dst=MAC_RX) / IP() / TCP(dport=80),                         # short: truncation shows
    Ether(dst=MAC_RX) / IP(flags="MF") / UDP() / Raw(b"l" * 150),     # first fragment
    Ether(dst=MAC_RX) / IP(frag=20, proto=17) / Raw(b"m" * 150),      # a later fragment
    Ether(dst=MAC_RX) / IP() / IP() / TCP(dataofs=6, options=[("NOP", None)] * 4) / Raw(b"n" * 150),
    Ether(dst=MAC_RX) / IP() / IPv6() / UDP() / Raw(b"o" * 150),
    Ether(dst=MAC_RX) / IPv6(nh=0) / IPv6ExtHdrHopByHop() / IPv6ExtHdrFragment(nh=17, m=1)
    / UDP() / Raw(b"p" * 150),
    Ether(dst=MAC_RX) / IPv6() / IPv6ExtHdrFragment(nh=6, offset=9) / Raw(b"q" * 150),
    Ether(dst=MAC_RX) / IPv6() / IPv6ExtHdrDestOpt() / ICMPv6EchoRequest() / Raw(b"r" * 150),
    Ether(dst=MAC_RX) / ARP() / Raw(b"s" * 150),
    Ether(dst=MAC_RX) / Dot1Q(vlan=5) / Dot1Q(vlan=6) / IP() / ICMP() / Raw(b"t" * 150),
    Ether(dst=MAC_RX) / IP(proto=132) / Raw(b"u" * 150),
    Ether(dst=MAC_RX) / IP(ihl=4) / Raw(b"v" * 150),                  # a header length < 5
)]


def compare(veth, insns, frames=FRAMES):
    assert kept_by_pyebpf(veth, insns, frames) == kept_by_the_kernel(veth, insns, frames)


ANCILLARY = ["protocol", "pkttype", "ifindex", "mark", "queue", "hatype", "rxhash",
             "vlan_tag", "vlan_tag_present", "vlan_tpid", "alu_xor_x", "pay_offset"]


@pytest.mark.parametrize("shift", [0, 7, 14, 21, 28])
@pytest.mark.parametrize("name", ANCILLARY)
def test_an_ancillary_load_keeps_what_the_kernel_keeps(veth, name, shift):
    """``A = anc; A = ((A >> shift) & 0x7f) + 1; ret A``: the kept length shows 7 bits of
    the loaded value, the five shifts all of it."""
    insns = [F(0x00, 0, 0, 0x1234), F(0x01, 0, 0, 0x0F0F),         # A, X for alu_xor_x
             F(0x20, 0, 0, AD + isa.SKF_AD[name]), F(0x74, 0, 0, shift), F(0x54, 0, 0, 0x7F),
             F(0x04, 0, 0, 1), F(0x16, 0, 0, 0)]
    compare(veth, insns)


@pytest.mark.parametrize("shift", [0, 7])
def test_the_length_keeps_what_the_kernel_keeps(veth, shift):
    compare(veth, [F(0x80, 0, 0, 0), F(0x74, 0, 0, shift), F(0x54, 0, 0, 0x7F),
                   F(0x04, 0, 0, 1), F(0x16, 0, 0, 0)])


@pytest.mark.parametrize("nest", [False, True], ids=["nlattr", "nlattr_nest"])
@pytest.mark.parametrize("start,kind", [(14, 1), (14, 2), (14, 3), (14, 5), (14, 4), (22, 5),
                                        (30, 7), (30, 9), (30, 3), (47, 1), (200, 1)])
def test_a_netlink_attribute_search_keeps_what_the_kernel_keeps(veth, start, kind, nest):
    frame = bytes(Ether(dst=MAC_RX)) + NL_FRAME[14:] + bytes(60)
    insns = [F(0x00, 0, 0, start), F(0x01, 0, 0, kind),
             F(0x20, 0, 0, AD + isa.SKF_AD["nlattr_nest" if nest else "nlattr"]),
             F(0x04, 0, 0, 1), F(0x16, 0, 0, 0)]
    compare(veth, insns, [frame])


NET, LL = isa.SKF_NET_OFF & 0xFFFFFFFF, isa.SKF_LL_OFF & 0xFFFFFFFF
HAND = {
    "skf_net_off protocol byte": [F(0x30, 0, 0, NET + 9), F(0x04, 0, 0, 1), F(0x16, 0, 0, 0)],
    "skf_ll_off ethertype": [F(0x28, 0, 0, LL + 12), F(0x54, 0, 0, 0x7F), F(0x16, 0, 0, 0)],
    "skf_net_off past the end": [F(0x20, 0, 0, NET + 1000), F(0x06, 0, 0, 64)],
    "load past the end": [F(0x28, 0, 0, 200), F(0x06, 0, 0, 64)],
    "msh and indirect load": [F(0xB1, 0, 0, 14), F(0x48, 0, 0, 16), F(0x54, 0, 0, 0x7F),
                              F(0x16, 0, 0, 0)],
    "div by x = 0": [F(0x00, 0, 0, 9), F(0x3C, 0, 0, 0), F(0x06, 0, 0, 64)],
    "scratch memory": [F(0x80, 0, 0, 0), F(0x02, 0, 0, 3), F(0x00, 0, 0, 1), F(0x61, 0, 0, 3),
                       F(0x87, 0, 0, 0), F(0x14, 0, 0, 50), F(0x16, 0, 0, 0)],
    "return more than the length": [F(0x06, 0, 0, 0xFFFFFFFF)],
    "jgt with a negative constant": [F(0x80, 0, 0, 0), F(0x25, 0, 1, 0x80000000),
                                     F(0x06, 0, 0, 1), F(0x06, 0, 0, 77)],
}


@pytest.mark.parametrize("name", HAND)
def test_a_hand_written_filter_keeps_what_the_kernel_keeps(veth, name):
    compare(veth, HAND[name])


try:
    cbpf.compile("ip")
    PCAP_ABSENT = None
except ClassicError as exc:
    PCAP_ABSENT = str(exc)

EXPRESSIONS = ["tcp port 80", "udp port 53", "ip6", "vlan", "vlan 5", "ether broadcast",
               "ether multicast", "ip multicast", "ether host 02:00:00:00:00:0c", "len < 100",
               "greater 150", "ip[0] & 0xf > 5", "tcp[tcpflags] & tcp-syn != 0", "icmp",
               "not ip and not ip6", "ether proto 0x88cc", "ip and udp and not port 67"]


@pytest.mark.skipif(PCAP_ABSENT is not None, reason=str(PCAP_ABSENT))
@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_a_compiled_expression_keeps_what_the_kernel_keeps(veth, expr):
    compare(veth, cbpf.compile(expr, snaplen=100))
