"""pyebpf.strategies: the frames are what they claim, scapy and the kernel's
BPF_PROG_TEST_RUN accept them, and pyebpf judges them as the kernel does."""
from __future__ import annotations

import importlib
import ipaddress
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import Dot1Q, Ether

import pyebpf
from pyebpf.asm import assemble
from pyebpf.results import _checksums_ok
from pyebpf.strategies import MALFORMED, frames, ipv4, ipv6, malformed_frames

from conftest import ROOT

SOME = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])
PASS = assemble("r0 = 0\nexit")


def _l3(frame):
    return frame[IP] if IP in frame else frame[IPv6]


@SOME
@given(frames())
def test_frames_are_well_formed_with_valid_checksums(frame):
    raw = bytes(frame)
    assert 14 <= len(raw) <= 1514 and Ether(raw) == frame
    assert _checksums_ok(raw)
    l3 = _l3(frame)
    assert (l3.len if IP in frame else l3.plen + 40) == len(bytes(l3))
    assert frame.haslayer(TCP) or frame.haslayer(UDP) or frame.haslayer(ICMP) \
        or frame.haslayer(ICMPv6EchoRequest)


@SOME
@given(frames(l3=IP, l4=TCP, dport=st.just(22), src=ipv4(outside="10.0.0.0/8")))
def test_frames_honour_the_given_fields(frame):
    assert frame[TCP].dport == 22
    assert ipaddress.ip_address(frame[IP].src) not in ipaddress.ip_network("10.0.0.0/8")


@SOME
@given(frames(l3="ipv6", l4="udp", vlan=True, src=ipv6(within="2001:db8::/32"), sport=53))
def test_frames_take_names_values_and_networks(frame):
    assert Dot1Q in frame and frame[UDP].sport == 53
    assert ipaddress.ip_address(frame[IPv6].src) in ipaddress.ip_network("2001:db8::/32")


def test_an_address_range_with_nothing_left_is_refused():
    with pytest.raises(ValueError, match="every address of 10.1.0.0/16 is inside 10.0.0.0/8"):
        ipv4(within="10.1.0.0/16", outside="10.0.0.0/8")


def test_addresses_without_a_family_are_refused():
    with pytest.raises(ValueError, match="src=/dst= need l3="):
        frames(src="192.0.2.1")


@SOME
@given(malformed_frames("short"))
def test_short_frames_end_inside_the_transport_header(frame):
    raw = bytes(frame)
    at = 18 if Dot1Q in frame else 14
    l3_len = 20 if raw[at] >> 4 == 4 else 40
    proto = raw[at + 9] if l3_len == 20 else raw[at + 6]
    need = {6: 20, 17: 8, 1: 8, 58: 8}[proto]
    assert at + l3_len <= len(raw) < at + l3_len + need


@SOME
@given(malformed_frames("bad_ihl"))
def test_bad_ihl_frames_have_an_impossible_header_length(frame):
    raw = bytes(frame)
    at = 18 if Dot1Q in frame else 14
    ihl = raw[at] & 0xF
    assert ihl < 5 or at + ihl * 4 > len(raw)


@SOME
@given(malformed_frames("bad_length"))
def test_bad_length_frames_disagree_with_their_bytes(frame):
    raw = bytes(frame)
    at = 18 if Dot1Q in frame else 14
    ip_len = int.from_bytes(raw[at + 2:at + 4], "big")
    udp_len = int.from_bytes(raw[at + 24:at + 26], "big") if raw[at + 9] == 17 else None
    assert ip_len != len(raw) - at or (udp_len is not None and udp_len != len(raw) - at - 20)


@SOME
@given(malformed_frames("fragment"))
def test_fragments_are_fragments(frame):
    if IP in frame:
        assert frame[IP].frag or frame[IP].flags.MF
    else:
        assert frame[IPv6].nh == 44


@pytest.mark.parametrize("kind", [None, *MALFORMED])
def test_malformed_kinds_are_known(kind):
    malformed_frames(kind)


def test_an_unknown_malformation_is_refused():
    with pytest.raises(ValueError, match="unknown malformation 'huge'; choose one of short"):
        malformed_frames("huge")


@settings(max_examples=80, deadline=None)
@given(st.one_of(frames(), malformed_frames()))
def test_the_kernel_accepts_every_frame(kernel_oracle, frame):
    for kind in ("sched_cls", "socket_filter"):
        with kernel_oracle.KernelProgram(PASS, kind) as prog:
            assert prog.test_run(bytes(frame)).retval == 0


@settings(max_examples=80, deadline=None)
@given(st.one_of(frames(), malformed_frames()))
def test_pyebpf_judges_every_frame_as_the_kernel(kernel_oracle, frame):
    prog = pyebpf.load(ROOT / "examples" / "drop_icmp.o").program()
    assert kernel_oracle.cross_check(prog, bytes(frame)) == []


def test_without_hypothesis_the_module_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "hypothesis", None)
    monkeypatch.delitem(sys.modules, "pyebpf.strategies")
    with pytest.raises(ImportError, match=r"pyebpf.strategies needs hypothesis: pip install "
                                          r"'pyebpf\[test\]'"):
        importlib.import_module("pyebpf.strategies")
