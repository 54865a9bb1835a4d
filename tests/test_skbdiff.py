"""What a failed comparison of packets says: ``skbdiff.packet_diff`` and the assertion hook."""
from __future__ import annotations

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether

import conftest
from skbdiff import layer_at, packet_diff

MACS = dict(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
UDP4 = bytes(Ether(**MACS) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2)
             / (b"u" * 20))


def changed(data: bytes, at: int, value: int) -> bytes:
    out = bytearray(data)
    out[at] = value
    return bytes(out)


def test_the_message_names_the_offset_the_layer_and_dumps_both_sides_around_it():
    message = packet_diff(UDP4, changed(UDP4, 23, 6))
    assert message.splitlines() == [
        "first difference at offset 23 (0x17): IPv4 header, byte 9; "
        "engine 62 bytes, kernel 62 bytes",
        "engine  0000  02 00 00 00 00 02 02 00 00 00 00 01 08 00 45 00",
        "kernel  0000  02 00 00 00 00 02 02 00 00 00 00 01 08 00 45 00",
        "engine  0010  00 30 00 01 00 00 40 11 66 ba 0a 00 00 01 0a 00",
        "kernel  0010  00 30 00 01 00 00 40 06 66 ba 0a 00 00 01 0a 00",
        "                                   ^^",
        "engine  0020  00 02 00 01 00 02 00 1c 55 1a 75 75 75 75 75 75",
        "kernel  0020  00 02 00 01 00 02 00 1c 55 1a 75 75 75 75 75 75",
        "engine  0030  75 75 75 75 75 75 75 75 75 75 75 75 75 75",
        "kernel  0030  75 75 75 75 75 75 75 75 75 75 75 75 75 75",
    ]


def test_a_shorter_side_is_shown_ending_and_the_missing_bytes_marked():
    lines = packet_diff(UDP4[:14], UDP4[:22]).splitlines()
    assert lines[0] == ("first difference at offset 14 (0xe): past the end (14 bytes) in "
                        "engine, IPv4 header, byte 0 in kernel; engine 14 bytes, kernel 22 bytes")
    assert lines[1:] == [
        "engine  0000  02 00 00 00 00 02 02 00 00 00 00 01 08 00",
        "kernel  0000  02 00 00 00 00 02 02 00 00 00 00 01 08 00 45 00",
        " " * (14 + 3 * 14) + "^^ ^^",
        "engine  0010",
        "kernel  0010  00 30 00 01 00 00",
        "              ^^ ^^ ^^ ^^ ^^ ^^",
    ]


def test_the_dump_starts_one_row_before_the_difference_and_holds_four_rows():
    big = bytes(Ether(**MACS) / IP() / UDP() / bytes(200))
    lines = packet_diff(big, changed(big, 100, 1), ("ours", "theirs")).splitlines()
    offsets = [line.split()[1] for line in lines[1:] if line.split()[0] in ("ours", "theirs")]
    assert offsets == ["0050", "0050", "0060", "0060", "0070", "0070", "0080", "0080"]


def test_vlan_tags_ipv6_and_tcp_are_told_apart():
    frame = bytes(Ether(**MACS) / Dot1Q(vlan=5) / Dot1Q(vlan=6) / IPv6() / TCP() / b"x")
    assert [layer_at(frame, k) for k in (0, 12, 15, 16, 20, 22, 61, 62, 81, 82)] == [
        "Ethernet header, byte 0", "802.1Q tag, byte 0", "802.1Q tag, byte 3",
        "802.1Q tag, byte 0", "Ethernet header (EtherType), byte 0", "IPv6 header, byte 0",
        "IPv6 header, byte 39", "TCP header, byte 0", "TCP header, byte 19", "payload, byte 0"]


def test_arp_and_a_packet_that_starts_at_its_ip_header():
    arp = bytes(Ether(**MACS) / ARP())
    assert layer_at(arp, 14 + 27) == "ARP, byte 27"
    assert layer_at(UDP4[14:], 20, start="network") == "UDP header, byte 0"
    assert layer_at(b"\x01\x02", 1, start="buffer") == "byte 1"


def test_a_failed_bytes_comparison_in_a_test_shows_the_diff():
    lines = conftest.pytest_assertrepr_compare(None, "==", (0, UDP4), (0, changed(UDP4, 40, 0)))
    assert lines[1] == ("item 1: first difference at offset 40 (0x28): UDP header, byte 6; "
                        "left 62 bytes, right 62 bytes")
    assert lines[6] == " " * (13 + 3 * 8) + "^^"


def test_other_comparisons_keep_pytests_own_explanation():
    assert conftest.pytest_assertrepr_compare(None, "==", [1], [2]) is None
    assert conftest.pytest_assertrepr_compare(None, "!=", UDP4, UDP4) is None


def test_a_failed_comparison_of_packet_lists_names_each_differing_item():
    lines = conftest.pytest_assertrepr_compare(None, "==", [UDP4, UDP4],
                                               [UDP4, changed(UDP4, 0, 0)])
    assert lines[1].startswith("item 1: first difference at offset 0 (0x0): Ethernet header")
