"""Every kind of packet the issue names goes through a tc program, in pyebpf and the kernel."""
import pytest
from scapy.all import ARP, ICMP, IP, TCP, UDP, Dot1AD, Dot1Q, Ether, IPv6, IPOption_RR, Raw, fragment

import pyebpf
from bpfc import compile_c
from skbdiff import assert_same

# Walks Ethernet, up to two VLAN tags, IPv4 (with options) or IPv6, and reports what it
# saw through __sk_buff fields the kernel exports; also rewrites one byte of the payload.
SUMMARY = r"""
SEC("tc") int summary(struct __sk_buff *skb) {
    void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
    __u8 *p = data;
    __u32 off = 12, tags = 0;
    if (data + 14 > end) return TC_ACT_SHOT;
    __u16 proto = p[12] << 8 | p[13];
    for (int i = 0; i < 2 && (proto == 0x8100 || proto == 0x88a8); i++) {
        if (data + off + 6 > end) return TC_ACT_SHOT;
        off += 4; tags++;
        proto = p[off] << 8 | p[off + 1];
    }
    off += 2;
    skb->cb[0] = proto;
    skb->cb[1] = tags;
    skb->cb[2] = skb->len;
    if (proto == 0x0800) {
        if (data + off + 20 > end) return TC_ACT_SHOT;
        __u32 ihl = (p[off] & 15) * 4;
        skb->cb[3] = ihl << 16 | p[off + 9] << 8 | (p[off + 6] & 0x3f);  /* hdr len, proto, frag bits */
        if (ihl < 20 || ihl > 60) return TC_ACT_SHOT;
        off += ihl;
    } else if (proto == 0x86dd) {
        if (data + off + 40 > end) return TC_ACT_SHOT;
        skb->cb[3] = 40 << 16 | p[off + 6] << 8;
        off += 40;
    }
    if (off < 1500 && data + off + 1 <= end) {
        p[off] ^= 0xff;
        skb->cb[4] = off;
    }
    skb->mark = skb->protocol;
    return TC_ACT_OK;
}
"""

PACKETS = {
    "ipv4-tcp": Ether() / IP(dst="192.0.2.1") / TCP(dport=80),
    "ipv4-udp": Ether() / IP() / UDP(dport=53) / Raw(b"q" * 20),
    "ipv4-icmp": Ether() / IP() / ICMP(),
    "ipv4-options": Ether() / IP(options=[IPOption_RR(routers=["192.0.2.9"])]) / UDP(),
    "ipv4-fragment": Ether() / fragment(IP(dst="192.0.2.2") / UDP() / Raw(b"f" * 300),
                                        fragsize=128)[1],
    "ipv6-tcp": Ether() / IPv6() / TCP(),
    "ipv6-udp": Ether() / IPv6() / UDP() / Raw(b"6" * 100),
    "arp": Ether(dst="ff:ff:ff:ff:ff:ff") / ARP(),
    "dot1q": Ether() / Dot1Q(vlan=10) / IP() / UDP(),
    "qinq": Ether() / Dot1AD(vlan=20) / Dot1Q(vlan=30) / IP() / TCP(),
    "ethernet-only": Ether(type=0x88B5),
    "max-test-run": Ether() / IP() / UDP() / Raw(b"m" * (3712 - 42)),
}


@pytest.mark.parametrize("name", PACKETS)
def test_every_packet_kind_runs_as_in_the_kernel(name):
    assert_same(compile_c(SUMMARY), "sched_cls", bytes(PACKETS[name]))


def test_a_jumbo_frame_beyond_what_test_run_takes_runs():
    """9000 bytes: test_run refuses more than 3712, so this one is pyebpf alone."""
    frame = bytes(Ether() / IP() / UDP() / Raw(b"j" * (9000 - 42)))
    res = pyebpf.Program(compile_c(SUMMARY), "sched_cls").run(frame)
    assert res.retval == 0 and res.skb.cb[2] == 9000 and res.skb.cb[4] == 34
    assert res.data == frame[:34] + bytes([frame[34] ^ 0xFF]) + frame[35:]
