"""Legacy packet loads (BPF_LD | BPF_ABS / BPF_IND) for tc and socket filters, against
the kernel (bpf_skb_load_helper_*; docs/kernel-notes.md).

Each probe loads one value, stores it in cb[0] and returns 1, so that a load that
ends the program (r0 = 0) cannot be mistaken for a loaded 0.  Socket filters run with
``sf_start="network"``, where BPF_PROG_TEST_RUN starts them (offset 0 = the IP header).
"""
from __future__ import annotations

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

import pyebpf
from pyebpf import errors, kernel
from pyebpf.asm import assemble
from skbdiff import assert_same

CLS, ACT, SF = "sched_cls", "sched_act", "socket_filter"
SKF_AD_OFF, SKF_NET_OFF, SKF_LL_OFF = -0x1000, -0x100000, -0x200000
FRAME = bytes(Ether(dst="00:00:00:00:00:00", src="02:00:00:00:00:01")
              / IP(src="10.0.0.1", dst="10.0.0.2", id=1) / UDP(sport=1234, dport=53)
              / b"hello world!")
L = len(FRAME)
WIDTH = {1: "u8", 2: "u16", 4: "u32"}
START = {CLS: 0, ACT: 0, SF: 14}     # where skb->data is in the frame under test_run


def expected(prog_type: str, size: int, k: int, frame: bytes = FRAME) -> int | None:
    """The value a load at offset k reads, or None when it ends the program."""
    k = (k + 2**31) % 2**32 - 2**31           # the offset is a signed 32-bit int
    if k >= 0:
        start = START[prog_type] + k
    elif k >= SKF_NET_OFF:
        start = 14 + k - SKF_NET_OFF            # network header
    elif k >= SKF_LL_OFF:
        start = k - SKF_LL_OFF                   # MAC header
    else:
        return None
    if start + size > len(frame):
        return None
    return int.from_bytes(frame[start:start + size], "big")


def probe(load: str) -> bytes:
    return assemble(f"r6 = r1\n{load}\n*(u32 *)(r6 + 48) = r0\nr0 = 1\nexit")


def check(prog_type, code, value, frame=FRAME):
    """Same result as the kernel, and the value the specification says."""
    engine, _ = assert_same(code, prog_type, frame, {"cb": [0xDEAD, 0, 0, 0, 0]})
    if value is None:
        assert (engine.retval, engine.skb.cb[0]) == (0, 0xDEAD)
    else:
        assert (engine.retval, engine.skb.cb[0]) == (1, value)


ABS = [
    ("B[0]", 1, 0), ("H[12]", 2, 12), ("W[14]", 4, 14), ("W[6]-unaligned", 4, 6),
    ("H[13]-unaligned", 2, 13), ("B[len-1]", 1, L - 1), ("H[len-1]", 2, L - 1),
    ("W[len-4]", 4, L - 4), ("W[len-3]", 4, L - 3), ("B[len]", 1, L),
    ("W[0x7fffffff]", 4, 0x7FFFFFFF), ("B[-1]", 1, -1),
    ("B[SKF_AD_OFF]-no-ancillary-data", 1, SKF_AD_OFF),
    ("B[SKF_AD_OFF+4]-no-ancillary-data", 4, SKF_AD_OFF + 4),
    ("B[SKF_NET_OFF]", 1, SKF_NET_OFF), ("W[SKF_NET_OFF+12]", 4, SKF_NET_OFF + 12),
    ("B[SKF_NET_OFF-1]", 1, SKF_NET_OFF - 1), ("B[SKF_NET_OFF+len-15]", 1, SKF_NET_OFF + L - 15),
    ("B[SKF_NET_OFF+len-14]", 1, SKF_NET_OFF + L - 14),
    ("B[SKF_LL_OFF]", 1, SKF_LL_OFF), ("W[SKF_LL_OFF+6]", 4, SKF_LL_OFF + 6),
    ("H[SKF_LL_OFF+12]-ethertype", 2, SKF_LL_OFF + 12),
    ("B[SKF_LL_OFF+len-1]", 1, SKF_LL_OFF + L - 1), ("B[SKF_LL_OFF+len]", 1, SKF_LL_OFF + L),
    ("B[SKF_LL_OFF-1]", 1, SKF_LL_OFF - 1), ("B[-0x80000000]", 1, -0x80000000),
]


@pytest.mark.parametrize("prog_type", [CLS, ACT, SF])
@pytest.mark.parametrize("size, k", [c[1:] for c in ABS], ids=[c[0] for c in ABS])
def test_ld_abs_reads_big_endian_bytes_or_ends_the_program_with_0(prog_type, size, k):
    check(prog_type, probe(f"r0 = *({WIDTH[size]} *)skb[{k}]"), expected(prog_type, size, k))


IND = [
    ("X=14+0", 1, 14, 0), ("X=10+4", 4, 10, 4), ("X=-1+1", 1, -1, 1),
    ("X=0xffffffff+1-wraps-to-0", 1, 0xFFFFFFFF, 1), ("X=1<<32+0-is-0", 1, 1 << 32, 0),
    ("X=1<<32+12", 2, (1 << 32) + 12, 0), ("X=SKF_LL_OFF+0", 1, SKF_LL_OFF, 0),
    ("X=SKF_NET_OFF+imm-9", 1, SKF_NET_OFF, 9), ("X=len+0", 1, L, 0),
    ("X=20+imm-(-6)", 2, 20, -6), ("X=0x7fffffff+1-is-INT_MIN", 1, 0x7FFFFFFF, 1),
]


@pytest.mark.parametrize("prog_type", [CLS, SF])
@pytest.mark.parametrize("size, x, imm", [c[1:] for c in IND], ids=[c[0] for c in IND])
def test_ld_ind_adds_x_and_imm_as_a_signed_32_bit_offset(prog_type, size, x, imm):
    sign = "+" if imm >= 0 else "-"
    code = assemble(f"r6 = r1\nr7 = {x & 0xFFFFFFFFFFFFFFFF:#x} ll\n"
                    f"r0 = *({WIDTH[size]} *)skb[r7 {sign} {abs(imm)}]\n"
                    "*(u32 *)(r6 + 48) = r0\nr0 = 1\nexit")
    check(prog_type, code, expected(prog_type, size, x + imm))


def test_a_socket_filter_reaches_the_ethernet_header_through_skf_ll_off():
    check(SF, probe(f"r0 = *(u16 *)skb[{SKF_LL_OFF + 12}]"), 0x0800)


def test_the_loaded_word_is_zero_extended():
    frame = FRAME[:14] + b"\xff\xff\xff\xfe" + FRAME[18:]
    code = assemble("r6 = r1\nr0 = *(u32 *)skb[14]\nr0 >>= 32\n*(u32 *)(r6 + 48) = r0\n"
                    "r0 = 1\nexit")
    check(CLS, code, 0, frame)


def test_r6_to_r9_survive_a_load_and_the_abort_skips_the_rest():
    code = assemble("r6 = r1\nr7 = 7\nr8 = 8\nr9 = 9\nr0 = *(u8 *)skb[0]\n"
                    "r7 += r8\nr7 += r9\n*(u32 *)(r6 + 52) = r7\n"
                    f"r0 = *(u8 *)skb[{L}]\n*(u32 *)(r6 + 56) = r7\nr0 = 1\nexit")
    engine, _ = assert_same(code, CLS, FRAME, {"cb": [0, 0, 0xAB, 0, 0]})
    assert engine.retval == 0 and engine.skb.cb[1:3] == (24, 0xAB)


def test_a_socket_filter_started_at_the_mac_header_reads_it_at_offset_0():
    """AF_PACKET sockets (sf_start="mac", the default) see the frame from its MAC header;
    test_run cannot start there, so this is checked against the frame itself."""
    p = pyebpf.Program(probe("r0 = *(u16 *)skb[12]"), SF)
    assert p.run(FRAME).skb.cb[0] == 0x0800
    assert p.run(FRAME, sf_start="network").skb.cb[0] == expected(SF, 2, 12)


# --- what the verifiers refuse -------------------------------------------------------------

REFUSED = [
    ("r6-never-written", "r0 = *(u16 *)skb[12]\nexit", "R6 !read_ok"),
    ("r6-not-the-context", "r6 = 0\nr0 = *(u16 *)skb[12]\nexit", "R6 != pointer to skb"),
    ("r6-moved-context", "r6 = r1\nr6 += 8\nr0 = *(u16 *)skb[12]\nexit",
     "dereference of modified ctx ptr R6"),
    ("r1-r5-clobbered", "r6 = r1\nr2 = 5\nr0 = *(u8 *)skb[0]\nr0 = r2\nexit", "R2 !read_ok"),
    ("in-a-subprogram", "r6 = r1\ncall pc+1\nexit\nr0 = *(u8 *)skb[0]\nexit",
     "LD_ABS is not allowed in subprogs without BTF"),
]


@pytest.mark.parametrize("text, reason", [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
@pytest.mark.parametrize("prog_type", [CLS, SF])
def test_the_verifier_refuses_like_the_kernel(prog_type, text, reason):
    code = assemble(text)
    with pytest.raises(errors.KernelError) as theirs:
        kernel.KernelProgram(code, prog_type)
    with pytest.raises(errors.VerifierError) as ours:
        pyebpf.Program(code, prog_type)
    assert reason in str(theirs.value) and reason in str(ours.value)


@pytest.mark.parametrize("raw, why", [
    (0x38, "unknown opcode"),                 # LD | ABS | DW
    (0x58, "unknown opcode"),                 # LD | IND | DW
], ids=["abs-dw", "ind-dw"])
def test_a_double_word_legacy_load_is_refused_like_the_kernel(raw, why):
    code = assemble("r6 = r1\n") + bytes([raw]) + bytes(7) + assemble("exit")
    with pytest.raises(errors.KernelError):
        kernel.KernelProgram(code, CLS)
    with pytest.raises(errors.VerifierError, match=why):
        pyebpf.Program(code, CLS)


def test_a_load_in_the_main_program_with_a_subprogram_is_allowed_like_the_kernel():
    code = assemble("r6 = r1\nr0 = *(u16 *)skb[12]\n*(u32 *)(r6 + 48) = r0\n"
                    "call pc+1\nexit\nr0 = 1\nexit")
    engine, _ = assert_same(code, CLS, FRAME, {})
    assert (engine.retval, engine.skb.cb[0]) == (1, 0x0800)


def test_a_failed_load_in_a_subprogram_returns_0_to_its_caller():
    """bpf_gen_ld_abs's exit on a failed load is the subprogram's own: its caller goes on
    with r0 = 0 (here: returns 10); pyebpf ended the whole program with 0.  Found with
    the 6.12.118 selftests' verifier_ld_ind.o, whose subprograms are written so."""
    from bpfc import compile_object
    from objdiff import same_retval
    source = """
__attribute__((naked, noinline, used)) static int sub(void)
{
	asm volatile ("r6 = r1; r0 = *(u32 *)skb[1000]; r0 = 1; exit;" ::: "memory");
}
SEC("tc") __attribute__((naked)) int cls(void)
{
	asm volatile ("call sub; r0 += 10; exit;" ::: "memory");
}
char _license[] SEC("license") = "GPL";
"""
    assert same_retval(compile_object(source), FRAME) == 10
