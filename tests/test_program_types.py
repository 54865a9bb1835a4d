"""What a run's result means per program type (docs/kernel-notes.md, Return values): a socket filter's
return value is the number of bytes to keep, a tc program's is a signed 32-bit verdict.
BPF_PROG_TEST_RUN reports the raw low 32 bits of r0 and never trims, so the return
values are differential and the trimming is checked against the kernel's bytes."""
from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

import pyebpf
from pyebpf.asm import assemble
from skbdiff import assert_same

CLS, ACT, SF = "sched_cls", "sched_act", "socket_filter"
FRAME = bytes(Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:01")
              / IP(src="192.0.2.1", dst="192.0.2.2") / TCP(sport=80, dport=40000, flags="S"))


def returning(r0: str) -> bytes:
    return assemble(f"{r0}\nexit")


SF_RETURNS = [
    ("zero-drops", "r0 = 0", 0), ("one-byte", "r0 = 1", 1), ("twenty", "r0 = 20", 20),
    ("len-minus-1", f"r0 = {len(FRAME) - 15}", len(FRAME) - 15),
    ("exactly-len", f"r0 = {len(FRAME) - 14}", len(FRAME) - 14),
    ("more-than-len", "r0 = 1000", 1000), ("u32-max", "w0 = -1", 0xFFFFFFFF),
    ("minus-2-as-u32", "r0 = -2", 0xFFFFFFFE), ("bit-32-only-is-0", "r0 = 0x100000000 ll", 0),
    ("high-bits-ignored", "r0 = 0x500000014 ll", 20),
]


@pytest.mark.parametrize("r0, retval", [c[1:] for c in SF_RETURNS], ids=[c[0] for c in SF_RETURNS])
def test_a_socket_filter_keeps_as_many_bytes_as_it_returns(r0, retval):
    engine, theirs = assert_same(returning(r0), SF, FRAME, {})
    assert engine.retval == retval
    assert engine.data == theirs.data[14:][:retval]       # the L3 packet, trimmed


@pytest.mark.parametrize("r0, retval", [c[1:] for c in SF_RETURNS], ids=[c[0] for c in SF_RETURNS])
def test_a_socket_filter_on_a_packet_socket_counts_from_the_mac_header(r0, retval):
    """sf_start="mac" (the default) is an AF_PACKET socket, which test_run cannot model:
    the kept bytes are counted from the Ethernet header (sk_filter_trim_cap)."""
    res = pyebpf.Program(returning(r0), SF).run(FRAME)
    assert res.retval == retval and res.data == FRAME[:retval]
    assert res.data_out == FRAME


TC_RETURNS = [
    ("ok", "r0 = 0", 0), ("shot", "r0 = 2", 2), ("redirect", "r0 = 7", 7),
    ("unknown-99", "r0 = 99", 99), ("u32-max-is-unspec", "w0 = -1", -1),
    ("minus-1", "r0 = -1", -1), ("bit-32-only-is-ok", "r0 = 0x100000000 ll", 0),
    ("int-min", "r0 = 0x80000000 ll", -0x80000000),
    ("high-bits-ignored", "r0 = 0xfffffff00000002 ll", 2),
]


@pytest.mark.parametrize("prog_type", [CLS, ACT])
@pytest.mark.parametrize("r0, retval", [c[1:] for c in TC_RETURNS], ids=[c[0] for c in TC_RETURNS])
def test_a_tc_verdict_is_the_low_32_bits_of_r0_as_a_signed_int(prog_type, r0, retval):
    engine, theirs = assert_same(returning(r0), prog_type, FRAME, {})
    assert engine.retval == retval == theirs.retval_signed
    assert engine.data == FRAME                            # tc never trims


# --- division by zero: the current kernel carries on, 4.6 ended the program with 0 -------

DIV0 = [
    ("div64", "r0 /= r1"), ("mod64", "r0 %= r1"), ("div32", "w0 /= w1"), ("mod32", "w0 %= w1"),
]


@pytest.mark.parametrize("op", [c[1] for c in DIV0], ids=[c[0] for c in DIV0])
def test_division_by_a_zero_register_continues_in_the_current_kernel(op):
    code = assemble(f"r6 = r1\nr0 = 5\nr1 = 0\n{op}\n*(u32 *)(r6 + 48) = r0\nr0 = 7\nexit")
    engine, _ = assert_same(code, CLS, FRAME, {})
    assert engine.retval == 7 and engine.skb.cb[0] == (0 if "/" in op else 5)


@pytest.mark.parametrize("op", [c[1] for c in DIV0], ids=[c[0] for c in DIV0])
@pytest.mark.parametrize("prog_type", [CLS, SF])
def test_division_by_a_zero_register_ends_the_program_with_0_in_the_4_6_profile(prog_type, op):
    """Not differential: 4.6's interpreter returned 0 at once (its ___bpf_prog_run); there is
    no 4.6 kernel to ask."""
    code = assemble(f"r6 = r1\nr0 = 5\nr1 = 0\n{op}\n*(u32 *)(r6 + 48) = r0\nr0 = 7\nexit")
    res = pyebpf.Program(code, prog_type, profile="4.6").run(FRAME)
    assert res.retval == 0 and res.skb.cb[0] == 0
    assert res.data == (b"" if prog_type == SF else FRAME)
