"""Write the sample captures of examples/ (run from anywhere: python3 examples/make_pcaps.py).

sample.pcap  a mix the example programs have something to do with: IPv4/IPv6 TCP, UDP
             and ICMP, ARP, VLAN-tagged and QinQ frames, an IP fragment, IP options,
             traffic from the NAT's inside network and to the redirect's router MAC.
https.pcap   a short TLS-over-TCP exchange on port 443 (IPv4 and IPv6) and some noise,
             for the socket filter.
vlan.pcap    untagged, 802.1Q, 802.1ad and QinQ frames, for the VLAN programs.

Timestamps are fixed so that the files are the same on every run.
"""
from pathlib import Path

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether
from scapy.utils import wrpcap

HERE = Path(__file__).resolve().parent
HOST, PEER, ROUTER = "02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:0a"
T0 = 1_700_000_000


def eth(dst=PEER, src=HOST):
    return Ether(dst=dst, src=src)


def v4(src="192.0.2.1", dst="198.51.100.7", **kw):
    return eth() / IP(src=src, dst=dst, **kw)


def v6(src="2001:db8::1", dst="2001:db8::2"):
    return eth() / IPv6(src=src, dst=dst)


def sample():
    return [
        v4() / TCP(sport=40000, dport=443, flags="S"),
        v4(src="198.51.100.7", dst="192.0.2.1") / TCP(sport=443, dport=40000, flags="SA"),
        v4() / TCP(sport=40001, dport=80, flags="PA") / b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        v4() / TCP(sport=40002, dport=22, flags="PA") / b"SSH-2.0-OpenSSH_9.2\r\n",
        v4() / TCP(sport=40003, dport=8080, flags="S"),
        v4() / UDP(sport=5353, dport=53) / b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00",
        v4() / UDP(sport=40004, dport=9) / b"discard me",
        v4() / UDP(sport=40005, dport=5004) / (b"\x80" * 160),
        v4() / UDP(sport=6881, dport=6885) / b"d1:ad2:id20:",
        v4() / ICMP(type=8, id=1, seq=1) / b"ping",
        v4(src="10.1.2.3", dst="203.0.113.9") / TCP(sport=51000, dport=443, flags="S"),
        v4(src="10.1.2.3", dst="203.0.113.9") / UDP(sport=51001, dport=53) / b"q",
        v4(src="10.1.2.4", dst="203.0.113.9") / ICMP(type=8, id=2, seq=1),
        v4(options=[b"\x01\x01\x01\x00"]) / TCP(sport=40006, dport=5201, flags="S"),
        v4(src="10.1.2.3", dst="203.0.113.9", frag=185, proto=17) / (b"f" * 64),
        v6() / TCP(sport=40007, dport=443, flags="S"),
        v6() / UDP(sport=40008, dport=53) / b"v6 dns",
        v6() / ICMPv6EchoRequest(id=3, seq=1),
        eth(dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=HOST, psrc="192.0.2.1",
                                            pdst="192.0.2.254"),
        eth(dst=HOST, src=ROUTER) / ARP(op=2, hwsrc=ROUTER, psrc="192.0.2.254",
                                         hwdst=HOST, pdst="192.0.2.1"),
        eth() / Dot1Q(vlan=100, prio=5) / IP(src="192.0.2.1", dst="198.51.100.7")
        / ICMP(type=8, id=4, seq=1),
        eth() / Dot1Q(vlan=200) / IP(src="192.0.2.1", dst="198.51.100.7")
        / UDP(sport=40009, dport=80) / b"tagged",
        eth() / Dot1AD(vlan=10) / Dot1Q(vlan=20) / IP(src="192.0.2.1", dst="198.51.100.7")
        / TCP(sport=40010, dport=80, flags="S"),
        eth(dst=ROUTER) / IP(src="192.0.2.1", dst="8.8.8.8") / UDP(sport=40011, dport=53)
        / b"via router",
    ]


def https():
    c, s = ("192.0.2.1", "198.51.100.7"), ("2001:db8::1", "2001:db8::2")
    hello = b"\x16\x03\x01\x00\x40" + b"\x01" + b"\x00" * 63
    return [
        v4(*c) / TCP(sport=41000, dport=443, flags="S", seq=1000,
                     options=[("MSS", 1460), ("SAckOK", b""), ("WScale", 7)]),
        v4(c[1], c[0]) / TCP(sport=443, dport=41000, flags="SA", seq=5000, ack=1001),
        v4(*c) / TCP(sport=41000, dport=443, flags="A", seq=1001, ack=5001),
        v4(*c) / TCP(sport=41000, dport=443, flags="PA", seq=1001, ack=5001) / hello,
        v4(c[1], c[0]) / TCP(sport=443, dport=41000, flags="PA", seq=5001, ack=1070,
                             options=[("NOP", None), ("NOP", None),
                                      ("Timestamp", (1, 2))]) / (b"\x17" * 1200),
        v4(*c) / TCP(sport=41001, dport=80, flags="S"),
        v4(*c) / UDP(sport=41002, dport=443) / b"quic-ish",
        v6(*s) / TCP(sport=41003, dport=443, flags="PA") / hello,
        v6(s[1], s[0]) / TCP(sport=443, dport=41003, flags="A"),
        v6(*s) / TCP(sport=41004, dport=8443, flags="S"),
    ]


def vlan():
    ip = IP(src="192.0.2.1", dst="198.51.100.7") / UDP(sport=42000, dport=4242) / b"payload"
    return [
        eth() / ip,
        eth() / Dot1Q(vlan=100, prio=3) / ip,
        eth() / Dot1Q(vlan=4094) / ip,
        eth() / Dot1AD(vlan=10) / ip,
        eth() / Dot1AD(vlan=10) / Dot1Q(vlan=20) / ip,
        eth() / Dot1Q(vlan=1) / IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(),
        eth(dst="ff:ff:ff:ff:ff:ff") / Dot1Q(vlan=7) / ARP(psrc="192.0.2.1", pdst="192.0.2.2"),
    ]


def write(name, packets):
    for i, p in enumerate(packets):
        p.time = T0 + i / 1000
    wrpcap(str(HERE / name), packets)


if __name__ == "__main__":
    write("sample.pcap", sample())
    write("https.pcap", https())
    write("vlan.pcap", vlan())
