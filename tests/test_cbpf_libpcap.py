"""libpcap's own interpreter (pcap_offline_filter) as the oracle for converted classic
filters: every expression below, compiled by pcap_compile for Ethernet, must keep the
same number of bytes of every packet of the corpus in pyebpf as in libpcap.  (Filters
compiled for a capture file use no ancillary loads: VLAN tags are in the bytes.)"""
import pytest
from scapy.all import (ARP, ICMP, IP, UDP, Dot1Q, Ether, ICMPv6EchoRequest, IPv6,
                       IPv6ExtHdrFragment, Raw, TCP, IPOption_RR)

from pyebpf import cbpf
from pyebpf.errors import ClassicError

try:
    from pyebpf.cbpf import libpcap
    libpcap.library()
    ABSENT = None
except ClassicError as exc:
    ABSENT = str(exc)

A, B, C6 = "10.0.0.1", "192.168.7.9", "2001:db8::5"
MAC_A, MAC_B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"


def _corpus():
    e = Ether(src=MAC_A, dst=MAC_B)
    pkts = [
        e / IP(src=A, dst=B) / TCP(sport=1234, dport=80, flags="S"),
        e / IP(src=B, dst=A) / TCP(sport=80, dport=1234, flags="SA") / Raw(b"x" * 100),
        e / IP(src=A, dst=B) / TCP(sport=22, dport=5555, flags="F"),
        e / IP(src=A, dst=B) / TCP(sport=443, dport=5555, flags="R"),
        e / IP(src=A, dst=B) / TCP(sport=1, dport=8080, flags="PA") / Raw(b"GET / HTTP/1.1\r\n"),
        e / IP(src=A, dst=B, options=[IPOption_RR()]) / TCP(sport=1234, dport=80),
        e / IP(src=A, dst=B) / UDP(sport=53, dport=33000) / Raw(b"d" * 40),
        e / IP(src="172.16.5.4", dst="8.8.8.8") / UDP(sport=33000, dport=53),
        e / IP(src=A, dst="224.0.0.251") / UDP(sport=5353, dport=5353),
        Ether(src=MAC_A, dst="ff:ff:ff:ff:ff:ff") / IP(src=A, dst="255.255.255.255") / UDP(dport=67),
        e / IP(src=A, dst=B) / ICMP(type=8),
        e / IP(src=B, dst=A) / ICMP(type=0),
        e / IP(src=A, dst=B) / ICMP(type=3, code=3),
        e / IP(src=A, dst=B, flags="MF", frag=0, proto=6) / Raw(b"f" * 24),
        e / IP(src=A, dst=B, frag=100, proto=6) / Raw(b"g" * 24),
        e / IP(src=A, dst=B, ttl=1) / UDP(dport=33434),
        e / IP(src=A, dst=B, tos=0x10) / TCP(dport=25),
        e / IPv6(src=C6, dst="2001:db8::9") / TCP(sport=1234, dport=80, flags="S"),
        e / IPv6(src="2001:db8::9", dst=C6) / UDP(sport=53, dport=1000),
        e / IPv6(src=C6, dst="ff02::1") / ICMPv6EchoRequest(),
        e / IPv6(src=C6, dst="2001:db8::9") / IPv6ExtHdrFragment(m=1) / Raw(b"q" * 16),
        e / ARP(op=1, psrc=A, pdst=B),
        e / ARP(op=2, psrc=B, pdst=A),
        e / Dot1Q(vlan=5) / IP(src=A, dst=B) / TCP(dport=80),
        e / Dot1Q(vlan=7) / IP(src=B, dst=A) / UDP(dport=53),
        e / Dot1Q(vlan=5) / Dot1Q(vlan=100) / IP(src=A, dst=B) / ICMP(),
        e / Dot1Q(vlan=9) / IPv6(src=C6, dst="2001:db8::1") / TCP(dport=443),
        Ether(src=MAC_B, dst="01:00:5e:00:00:01") / IP(src=B, dst="224.0.0.1") / Raw(b"\x11" * 8),
        Ether(src=MAC_A, dst=MAC_B, type=0x88CC) / Raw(b"l" * 50),
        e / Raw(b"\x00" * 2),
    ]
    frames = [bytes(p) for p in pkts]
    frames += [frames[0][:20], frames[0][:34], frames[17][:40], frames[1][:60]]
    frames.append(bytes(e / IP(src=A, dst=B, len=1400) / TCP(dport=80) / Raw(b"z" * 1400)))
    return frames


CORPUS = _corpus()

HOSTS = ["host 10.0.0.1", "src host 192.168.7.9", "dst host 8.8.8.8", "host 2001:db8::5",
         "ether host 02:00:00:00:00:0a", "ether dst ff:ff:ff:ff:ff:ff", "ether src 02:00:00:00:00:0b",
         "ether broadcast", "ether multicast", "ip broadcast", "ip multicast", "ip6 multicast"]
NETS = ["net 10.0.0.0/8", "src net 192.168.0.0/16", "dst net 224.0.0.0/4", "net 172.16.0.0 mask 255.240.0.0",
        "net 2001:db8::/32", "dst net 8.0.0.0/8"]
PORTS = ["port 80", "tcp port 80", "udp port 53", "src port 53", "dst port 5353", "portrange 1-1024",
         "tcp dst portrange 8000-9000", "udp src port 33000", "port 443 or port 22", "ip6 and port 80"]
PROTOS = ["ip", "ip6", "arp", "rarp", "tcp", "udp", "icmp", "icmp6", "ip proto 6", "ip6 proto 17",
          "ether proto 0x88cc", "arp[6:2] = 2", "ip and not tcp", "proto \\tcp"]
VLANS = ["vlan", "vlan 5", "vlan 7 and udp", "vlan and vlan 100", "vlan 9 and ip6", "vlan and tcp port 80",
         "not vlan"]
FRAGS = ["ip[6:2] & 0x1fff != 0", "ip[6] & 0x20 != 0", "ip[6:2] & 0x3fff = 0", "ip6 and ip6[6] = 44",
         "ip[8] = 1", "ip[1] & 0x10 != 0"]
FLAGS = ["tcp[tcpflags] & tcp-syn != 0", "tcp[tcpflags] & (tcp-syn|tcp-ack) = (tcp-syn|tcp-ack)",
         "tcp[tcpflags] & tcp-fin != 0", "tcp[tcpflags] & tcp-rst != 0", "tcp[tcpflags] = tcp-push|tcp-ack",
         "tcp[13] & 2 = 2", "icmp[icmptype] = icmp-echo", "icmp[icmptype] = icmp-echoreply",
         "icmp[icmptype] = icmp-unreach and icmp[icmpcode] = 3", "icmp6[icmp6type] = icmp6-echo"]
LENGTHS = ["len < 60", "len >= 100", "less 64", "greater 200", "len = 54", "ip[2:2] > 100",
           "ip[0] & 0xf > 5", "ip6[4:2] > 10", "tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x47455420"]
BYTES = ["ether[12:2] = 0x0800", "ether[0] & 1 != 0", "ip[9] = 17", "ip[12:4] = 0x0a000001",
         "udp[8:2] = 0x6464", "tcp[2:2] > 1000", "ip[16] = 224", "ether[14:2] = 0x0005",
         "ip[2:2] - 20 > 60", "ip[9] * 2 = 34", "ip[9] / 3 = 2", "ip[9] % 5 = 1",
         "ip[8] + ip[9] > 70", "ip[9] << 1 = 12", "ip[8] >> 4 = 4", "(ip[9] ^ 1) = 7",
         "ip[9] | 1 = 7", "ether[len - 1] = 0x7a", "ether[ether[14] & 0xf] = 0"]
ATOMS = HOSTS + NETS + PORTS + PROTOS + VLANS + FRAGS + FLAGS + LENGTHS + BYTES


def _expressions():
    out = list(ATOMS)
    for i, a in enumerate(ATOMS):
        b = ATOMS[(i * 7 + 3) % len(ATOMS)]
        c = ATOMS[(i * 13 + 5) % len(ATOMS)]
        out += [f"({a}) and ({b})", f"({a}) or not ({c})", f"not ({a}) and (({b}) or ({c}))"]
    return out


EXPRESSIONS = _expressions()


@pytest.mark.skipif(ABSENT is not None, reason=str(ABSENT))
@pytest.mark.parametrize("optimize", [True, False], ids=["optimized", "unoptimized"])
@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_a_converted_filter_keeps_what_libpcap_keeps(expr, optimize):
    try:
        insns = cbpf.compile(expr, optimize=optimize, snaplen=65535, netmask=0xFFFFFF00)
    except ClassicError as exc:
        pytest.skip(f"libpcap refuses it: {exc}")
    oracle = libpcap.OfflineFilter(insns)
    prog = cbpf.program(insns)
    expected = [oracle(f) for f in CORPUS]
    assert [prog.run(f).retval for f in CORPUS] == expected
