"""Classic BPF: reading programs, the kernel's classic checker, the conversion to eBPF
and running the result as a socket filter.  The kernel's own verdicts on the same
programs are in test_cbpf_kernel.py, libpcap's interpreter in test_cbpf_libpcap.py."""
import shutil
import struct
import subprocess

import pytest
from scapy.all import IP, TCP, UDP, Ether

import pyebpf
from pyebpf import cbpf, isa
from pyebpf.asm import disassemble
from pyebpf.cbpf import SockFilter as F
from pyebpf.errors import ClassicError

AD = isa.SKF_AD_OFF & 0xFFFFFFFF
LDH_ABS, LD_ABS, LDB_ABS = 0x28, 0x20, 0x30
JEQ_K, JGT_K, JSET_K, JA = 0x15, 0x25, 0x45, 0x05
RET_K, RET_A = 0x06, 0x16
LD_MEM, ST, LD_IMM, LDX_IMM = 0x60, 0x02, 0x00, 0x01
DIV_X, MOD_K, LSH_K = 0x3C, 0x94, 0x64
TCP80 = Ether() / IP() / TCP(dport=80)
ETH_IP_TEXT = """{ 0x28, 0, 0, 0x0000000c },
{ 0x15, 0, 1, 0x00000800 },
{ 0x6, 0, 0, 0x00040000 },
{ 0x6, 0, 0, 0x00000000 },
"""
ETH_IP = [F(0x28, 0, 0, 12), F(0x15, 0, 1, 0x800), F(6, 0, 0, 0x40000), F(6, 0, 0, 0)]


def run(insns, frame=TCP80, **fields):
    return cbpf.program(insns).run(bytes(frame), **fields).retval


# --- reading ------------------------------------------------------------------------

def test_dd_text_reads_as_the_instructions_it_lists():
    assert cbpf.from_text(ETH_IP_TEXT) == ETH_IP


def test_ddd_text_reads_as_the_instructions_it_lists():
    assert cbpf.from_text("4\n40 0 0 12\n21 0 1 2048\n6 0 0 262144\n6 0 0 0\n") == ETH_IP


def test_bytes_are_struct_sock_filter_in_host_order():
    raw = b"".join(struct.pack("=HBBI", *i) for i in ETH_IP)
    assert cbpf.from_bytes(raw) == ETH_IP and cbpf.to_bytes(ETH_IP) == raw


def test_a_ddd_count_that_disagrees_with_the_lines_names_the_line():
    with pytest.raises(ClassicError, match=r"line 1: the count says 5 instructions, the text holds 1"):
        cbpf.from_text("5\n40 0 0 12\n")


def test_a_malformed_dd_line_is_named():
    with pytest.raises(ClassicError, match=r"line 2: expected '\{ code, jt, jf, k \}"):
        cbpf.from_text("{ 0x28, 0, 0, 0xc },\n{ 0x15, 0 },\n")


def test_a_field_out_of_range_is_named():
    with pytest.raises(ClassicError, match=r"line 1: jt 256 is outside 0..255"):
        cbpf.from_text("{ 0x15, 256, 0, 0 },")


def test_bytes_not_a_multiple_of_8_are_refused():
    with pytest.raises(ClassicError, match="12 bytes is not a whole number"):
        cbpf.from_bytes(bytes(12))


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump is not installed "
                    "(apt-get install tcpdump)")
@pytest.mark.parametrize("expr", ["tcp port 80", "ip6 and udp", "vlan 5 and icmp"])
@pytest.mark.parametrize("flag", ["-dd", "-ddd"])
def test_pcap_compile_gives_what_tcpdump_prints(expr, flag):
    text = subprocess.run(["tcpdump", flag, expr], capture_output=True, text=True,
                          check=True).stdout
    assert cbpf.compile(expr) == cbpf.from_text(text)


def test_a_bad_filter_expression_is_reported_with_libpcap_s_reason():
    with pytest.raises(ClassicError, match=r"filter expression 'tcp prot 80': .*syntax error"):
        cbpf.compile("tcp prot 80")


# --- the checker (bpf_check_classic) ------------------------------------------------

REFUSED = {
    "empty": ([], "an empty program"),
    "too long": ([F(RET_K, 0, 0, 0)] * (isa.BPF_MAXINSNS + 1), "more than BPF_MAXINSNS = 4096"),
    "unknown code": ([F(0x07 | 0x10, 0, 0, 0), F(RET_K, 0, 0, 0)],
                     r"classic pc 0 \(code 0x0017.*\): opcode 0x0017 is not"),
    "div by 0": ([F(0x34, 0, 0, 0), F(RET_A, 0, 0, 0)], r"classic pc 0 \(div #0x0\): division by"),
    "mod by 0": ([F(MOD_K, 0, 0, 0), F(RET_A, 0, 0, 0)], "division by the constant 0"),
    "shift 32": ([F(LSH_K, 0, 0, 32), F(RET_A, 0, 0, 0)], "shift by 32"),
    "cell 16": ([F(ST, 0, 0, 16), F(RET_A, 0, 0, 0)], "scratch memory cell 16 does not exist"),
    "ja past end": ([F(JA, 0, 0, 1), F(RET_A, 0, 0, 0)], "jump to 2, past the last"),
    "jt past end": ([F(JEQ_K, 1, 0, 0), F(RET_A, 0, 0, 0)], "jump to 2, past the last"),
    "unknown ancillary": ([F(LD_ABS, 0, 0, AD + 64), F(RET_A, 0, 0, 0)],
                          r"offset -4032 is in the ancillary range"),
    "misaligned ancillary": ([F(LD_ABS, 0, 0, AD + 2), F(RET_A, 0, 0, 0)], "names no SKF_AD"),
    "no return": ([F(LD_IMM, 0, 0, 1)], r"classic pc 0 \(ld #0x1\): the last instruction must"),
    "read before write": ([F(LD_MEM, 0, 0, 3), F(RET_A, 0, 0, 0)], r"M\[3\] is read before"),
    "written on one path only": ([F(JEQ_K, 0, 1, 0), F(ST, 0, 0, 1), F(LD_MEM, 0, 0, 1),
                                  F(RET_A, 0, 0, 0)], r"classic pc 2 .*M\[1\] is read before"),
    "seccomp load": ([F(0x21, 0, 0, 0), F(RET_A, 0, 0, 0)], "opcode 0x0021"),
}

ACCEPTED = {
    "max length": [F(RET_K, 0, 0, 0)] * isa.BPF_MAXINSNS,
    "every ancillary": [F(LD_ABS, 0, 0, AD + v) for v in isa.SKF_AD.values()] + [F(RET_A, 0, 0, 0)],
    "ancillary as a byte load": [F(LDB_ABS, 0, 0, AD), F(RET_A, 0, 0, 0)],
    "written on both paths": [F(JEQ_K, 0, 2, 0), F(ST, 0, 0, 1), F(JA, 0, 0, 1), F(ST, 0, 0, 1),
                              F(LD_MEM, 0, 0, 1), F(RET_A, 0, 0, 0)],
    "net and ll offsets": [F(LD_ABS, 0, 0, isa.SKF_NET_OFF & 0xFFFFFFFF),
                           F(LD_ABS, 0, 0, isa.SKF_LL_OFF & 0xFFFFFFFF), F(RET_A, 0, 0, 0)],
    "shift 31": [F(LSH_K, 0, 0, 31), F(RET_A, 0, 0, 0)],
}


@pytest.mark.parametrize("name", REFUSED)
def test_the_checker_refuses_what_the_kernel_refuses_and_says_where(name):
    insns, message = REFUSED[name]
    with pytest.raises(ClassicError, match=message):
        cbpf.check(insns)


@pytest.mark.parametrize("name", ACCEPTED)
def test_the_checker_accepts_what_the_kernel_accepts(name):
    cbpf.check(ACCEPTED[name])


# --- conversion (bpf_convert_filter) ------------------------------------------------

def listing(insns):
    return disassemble(b"".join(i.pack() for i in cbpf.convert(insns))).splitlines()


def test_the_prologue_clears_a_and_x_and_keeps_the_context_in_r6():
    assert listing([F(RET_A, 0, 0, 0)]) == ["w0 ^= w0", "w7 ^= w7", "r6 = r1", "exit"]


def test_a_jump_whose_false_branch_is_next_becomes_one_jump():
    assert listing([F(JEQ_K, 1, 0, 5), F(RET_K, 0, 0, 1), F(RET_K, 0, 0, 2)])[3:] == [
        "if r0 == 0x5 goto +0x2", "w0 = 0x1", "exit", "w0 = 0x2", "exit"]


def test_a_jump_whose_true_branch_is_next_is_inverted():
    assert listing([F(JGT_K, 0, 1, 5), F(RET_K, 0, 0, 1), F(RET_K, 0, 0, 2)])[3] == \
        "if r0 <= 0x5 goto +0x2"


def test_jset_with_both_branches_elsewhere_becomes_a_jump_and_a_ja():
    out = listing([F(JSET_K, 1, 2, 5), F(RET_K, 0, 0, 1), F(RET_K, 0, 0, 2), F(RET_K, 0, 0, 3)])
    assert out[3:5] == ["if r0 & 0x5 goto +0x3", "goto +0x4"]


def test_a_negative_constant_is_compared_zero_extended_through_r2():
    assert listing([F(JEQ_K, 1, 0, 0xFFFFFFFF), F(RET_K, 0, 0, 1), F(RET_K, 0, 0, 2)])[3:5] == [
        "w2 = -0x1", "if r0 == r2 goto +0x2"]


def test_scratch_memory_is_the_stack_below_r10():
    assert listing([F(ST, 0, 0, 15), F(LD_MEM, 0, 0, 15), F(RET_A, 0, 0, 0)])[3:5] == [
        "*(u32 *)(r10 - 0x40) = r0", "r0 = *(u32 *)(r10 - 0x40)"]


def test_division_by_x_guards_against_zero_as_the_kernel_does():
    assert listing([F(DIV_X, 0, 0, 0), F(RET_A, 0, 0, 0)])[3:8] == [
        "w7 = w7", "if r7 != 0x0 goto +0x2", "w0 ^= w0", "exit", "w0 /= w7"]


# --- running ------------------------------------------------------------------------

def test_from_cbpf_returns_a_socket_filter_holding_its_classic_program():
    prog = pyebpf.Program.from_cbpf(ETH_IP_TEXT)
    assert prog.prog_type == isa.ProgType.BPF_PROG_TYPE_SOCKET_FILTER
    assert list(prog.classic) == ETH_IP


def test_the_return_value_is_the_number_of_bytes_kept():
    res = cbpf.program([F(RET_K, 0, 0, 20)]).run(bytes(TCP80))
    assert (res.retval, res.data) == (20, bytes(TCP80)[:20])


def test_a_load_past_the_end_returns_0():
    assert run([F(LD_ABS, 0, 0, len(TCP80) - 3), F(RET_K, 0, 0, 9)]) == 0


def test_division_by_x_equal_to_0_returns_0():
    assert run([F(LD_IMM, 0, 0, 7), F(DIV_X, 0, 0, 0), F(RET_K, 0, 0, 9)]) == 0


def test_msh_loads_the_ip_header_length_into_x():
    prog = [F(0xB1, 0, 0, 14), F(0x87, 0, 0, 0), F(RET_A, 0, 0, 0)]   # ldxb 4*([14]&0xf); txa
    assert run(prog) == 20


def test_skf_net_off_reads_from_the_network_header():
    assert run([F(LDB_ABS, 0, 0, (isa.SKF_NET_OFF + 9) & 0xFFFFFFFF), F(RET_A, 0, 0, 0)]) == 6


@pytest.mark.parametrize("name,fields,expected", [
    ("protocol", {}, 0x0800), ("pkttype", {"pkt_type": 3}, 3), ("ifindex", {"ifindex": 7}, 7),
    ("mark", {"mark": 99}, 99), ("queue", {"queue_mapping": 3}, 3), ("hatype", {}, 1),
    ("rxhash", {"hash": 1234}, 1234), ("cpu", {"cpu": 5}, 5),
    ("vlan_tag", {"vlan": (0x88A8, 0x123)}, 0x123), ("vlan_tag_present", {"vlan": (0x8100, 1)}, 1),
    ("vlan_tpid", {"vlan": (0x88A8, 1)}, 0x88A8)])
def test_an_ancillary_load_reads_the_packet_s_metadata(name, fields, expected):
    prog = [F(LD_ABS, 0, 0, AD + isa.SKF_AD[name]), F(0x16, 0, 0, 0)]
    assert cbpf.program(prog).run(bytes(TCP80) + bytes(3000), **fields).retval == expected


def test_alu_xor_x_xors_a_with_x():
    assert run([F(LD_IMM, 0, 0, 0x0F), F(LDX_IMM, 0, 0, 0x3C), F(LD_ABS, 0, 0, AD + 40),
                F(RET_A, 0, 0, 0)]) == 0x33


def nla(kind, payload):
    """One netlink attribute, host order, padded to 4 bytes."""
    raw = struct.pack("<HH", 4 + len(payload), kind) + payload
    return raw + bytes(-len(raw) % 4)


NESTED = nla(7, b"1234") + nla(9, b"zz")
ATTRS = nla(1, b"abcd") + nla(2, b"xy") + nla(0x8003, NESTED) + nla(5, b"")
NL_FRAME = bytes(Ether(type=0x88B5)) + ATTRS     # attributes at 14, 22, 30 (7 at 34, 9 at 42), 50


@pytest.mark.parametrize("start,kind,expected", [
    (14, 1, 14), (14, 2, 22), (14, 3, 30), (14, 5, 50), (14, 4, 0), (22, 1, 0), (22, 5, 50),
    (len(NL_FRAME) - 3, 1, 0), (len(NL_FRAME), 1, 0)])
def test_nlattr_finds_the_offset_of_an_attribute(start, kind, expected):
    prog = [F(LD_IMM, 0, 0, start), F(LDX_IMM, 0, 0, kind), F(LD_ABS, 0, 0, AD + 12),
            F(RET_A, 0, 0, 0)]
    assert cbpf.program(prog).run(NL_FRAME).retval == expected


@pytest.mark.parametrize("start,kind,expected", [(30, 7, 34), (30, 9, 42), (30, 1, 0), (14, 1, 0)])
def test_nlattr_nest_finds_an_attribute_inside_the_one_at_a(start, kind, expected):
    prog = [F(LD_IMM, 0, 0, start), F(LDX_IMM, 0, 0, kind), F(LD_ABS, 0, 0, AD + 16),
            F(RET_A, 0, 0, 0)]
    assert cbpf.program(prog).run(NL_FRAME).retval == expected


@pytest.mark.parametrize("frame,expected", [
    (Ether() / IP() / TCP(dataofs=8, options=[("NOP", None)] * 12), 14 + 20 + 32),
    (Ether() / IP(options=b"\x01" * 4) / UDP(), 14 + 24 + 8),
    (Ether() / IP(flags="MF") / TCP(), 14 + 20 + 20),
    (Ether() / IP(frag=3, proto=6) / bytes(30), 14 + 20),
    (Ether() / IP() / IP() / UDP(), 14 + 20 + 20 + 8),
    (Ether(type=0x88CC) / bytes(40), 0)])
def test_pay_offset_is_where_the_transport_payload_starts(frame, expected):
    prog = [F(LD_ABS, 0, 0, AD + 52), F(0x04, 0, 0, 1), F(RET_A, 0, 0, 0)]
    assert cbpf.program(prog).run(bytes(frame) + bytes(200)).retval == expected + 1


def test_a_compiled_expression_keeps_matching_packets_whole():
    prog = cbpf.program("udp dst port 53")
    assert prog.run(bytes(Ether() / IP() / UDP(dport=53))).retval == 262144
    assert prog.run(bytes(Ether() / IP() / UDP(dport=54))).retval == 0
