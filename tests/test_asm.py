"""pyebpf.asm: the assembler and disassembler in conformance and kernel syntax."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from pyebpf import asm, conformance, isa
from pyebpf.errors import AsmError

import toolpath
from conftest import CONFORMANCE_FILES, conformance_params

SYNTAXES = ("kernel", "conformance")
_F = isa.Field


def _sections(path: Path) -> dict[str, list[str]]:
    return conformance.sections(path.read_text(encoding="latin-1"))


def _asm_text(path: Path) -> str:
    return "\n".join(_sections(path)["asm"])


def _encode(op: isa.Op, fields: dict) -> bytes:
    return b"".join(i.pack() for i in isa.encode(op, **fields))


def _legal_fields(op: isa.Op) -> st.SearchStrategy[dict]:
    """Random values for the fields op takes as operands; the others stay zero."""
    f, reg, zero = op.form, st.integers(0, isa.MAX_BPF_REG - 1), st.just(0)
    imm = {_F.S32: st.integers(-2**31, 2**31 - 1), _F.JUMP: st.integers(-2**31, 2**31 - 1),
           _F.HELPER: st.integers(-2**31, 2**31 - 1), _F.IMM64: st.integers(0, 2**64 - 1)}
    return st.fixed_dictionaries({
        "dst": reg if f.dst else zero,
        "src": reg if f.src else zero,
        "off": st.integers(-2**15, 2**15 - 1) if f.off in (_F.MEM, _F.JUMP) else zero,
        "imm": imm.get(f.imm, zero),
    })


# --- round trips ------------------------------------------------------------------------
@pytest.mark.parametrize("syntax", SYNTAXES)
@pytest.mark.parametrize("op", isa.OPS, ids=lambda op: op.name)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_every_op_survives_bytes_to_text_to_bytes(op, syntax, data):
    code = _encode(op, data.draw(_legal_fields(op)))
    text = asm.disassemble(code, syntax)
    assert not text.startswith(".insn")
    assert asm.assemble(text, syntax) == code


@pytest.mark.parametrize("syntax", SYNTAXES)
@pytest.mark.parametrize("op", isa.OPS, ids=lambda op: op.name)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_disassembler_output_is_a_fixed_point_of_text_to_bytes_to_text(op, syntax, data):
    text = asm.disassemble(_encode(op, data.draw(_legal_fields(op))), syntax)
    assert asm.disassemble(asm.assemble(text, syntax), syntax) == text


@pytest.mark.parametrize("syntax", SYNTAXES)
@settings(max_examples=500, deadline=None)
@given(words=st.lists(st.binary(min_size=8, max_size=8), min_size=1, max_size=4))
def test_any_8_byte_words_survive_the_round_trip(syntax, words):
    code = b"".join(words)
    assert asm.assemble(asm.disassemble(code, syntax), syntax) == code


@pytest.mark.parametrize("syntax", SYNTAXES)
def test_disassembler_output_is_read_back_by_auto_syntax(syntax):
    code = asm.assemble("ja +1\nlddw %r1, map_fd(3)\nlock fetch add [%r10-8], %r1\n"
                        "call local +0\nexit", "conformance")
    assert asm.assemble(asm.disassemble(code, syntax)) == code


@pytest.mark.parametrize("word", ["0000000000000000", "9501000000000000", "07b0000001000000",
                                  "0710010001000000", "1801000005000000"])
def test_slot_that_is_not_a_valid_instruction_prints_as_raw_insn(word):
    # unknown opcode; exit with dst set; r11; add with off set; lddw missing its second slot
    value = int.from_bytes(bytes.fromhex(word), "little")
    assert asm.disassemble(bytes.fromhex(word)) == f".insn {value:#018x}\n"


def test_lddw_with_a_bad_second_slot_prints_both_slots_raw():
    code = bytes.fromhex("1801000005000000" "0001000000000000")
    assert asm.disassemble(code).splitlines() == [".insn 0x0000000500000118",
                                                  ".insn 0x0000000000000100"]


# --- the conformance suite --------------------------------------------------------------
def test_conformance_suite_is_present(conformance_dir):
    assert len(CONFORMANCE_FILES) == 313, f"expected the 313 data files in {conformance_dir}"


@pytest.mark.parametrize("path", conformance_params(), ids=lambda p: p.name)
def test_conformance_asm_section_assembles_with_auto_syntax(path, conformance_dir):
    text = _asm_text(path)
    assert asm.assemble(text) == asm.assemble(text, "conformance")


@pytest.mark.parametrize("syntax", SYNTAXES)
@pytest.mark.parametrize("path", conformance_params(), ids=lambda p: p.name)
def test_conformance_program_round_trips_through_disassembly(path, syntax, conformance_dir):
    code = asm.assemble(_asm_text(path), "conformance")
    text = asm.disassemble(code, syntax)
    assert asm.assemble(text, syntax) == code
    assert asm.disassemble(asm.assemble(text, syntax), syntax) == text


def test_lddw_data_file_asm_section_matches_its_raw_section(conformance_dir):
    sections = _sections(conformance_dir / "lddw.data")
    raw = b"".join(int(tok, 0).to_bytes(8, "little")
                   for line in sections["raw"] for tok in line.split())
    assert asm.assemble("\n".join(sections["asm"])) == raw


def test_raw_words_assemble_like_a_raw_section():
    assert asm.assemble(".insn 0x5566778800000018\n.insn 0x1122334400000000") == \
        asm.assemble("lddw %r0, 0x1122334455667788")


# --- known encodings --------------------------------------------------------------------
KNOWN = [
    # conformance syntax
    ("conformance", "ldxw %r0, [%r1+8]", "6110080000000000"),
    ("conformance", "ldxdw %r0, [%r1]", "7910000000000000"),
    ("conformance", "stw [%r10-8], 0xffffff80", "620af8ff80ffffff"),
    ("conformance", "mov32 %r0, -128", "b400000080ffffff"),
    ("conformance", "add64 %r1, 2", "0701000002000000"),
    ("conformance", "lddw %r1, 0x1122334455667788", "1801000088776655" "0000000044332211"),
    ("conformance", "lddw %r1, -1", "18010000ffffffff" "00000000ffffffff"),
    ("conformance", "lddw %r1, map_fd(5)", "1811000005000000" "0000000000000000"),
    ("conformance", "lddw %r1, map_value(0x1000000005)", "1821000005000000" "0000000010000000"),
    ("conformance", "call 5", "8500000005000000"),
    ("conformance", "call helper 5", "8500000005000000"),
    ("conformance", "call local +2", "8510000002000000"),
    ("conformance", "call kfunc 7", "8520000007000000"),
    ("conformance", "call runtime 7", "8520000007000000"),
    ("conformance", "call %r2", "8d02000000000000"),
    ("conformance", "callx %r2", "8d02000000000000"),
    ("conformance", "sdiv %r0, 3", "3700010003000000"),
    ("conformance", "smod32 %r0, %r1", "9c10010000000000"),
    ("conformance", "movsx864 %r0, %r1", "bf10080000000000"),
    ("conformance", "movsx1632 %r0, %r1", "bc10100000000000"),
    ("conformance", "swap16 %r0", "d700000010000000"),
    ("conformance", "lock cmpxchg [%r10-8], %r1", "db1af8fff1000000"),
    ("conformance", "lock fetch and32 [%r10-8], %r1", "c31af8ff51000000"),
    ("conformance", "ja32 +1", "0600000001000000"),
    ("conformance", "jsgt32 %r1, -6, -1", "6601fffffaffffff"),
    ("conformance", "jgt %r1, 4, +1,", "2501010004000000"),
    ("conformance", "ldabsh 12", "280000000c000000"),
    ("conformance", "ldindw %r1, -4", "40100000fcffffff"),
    ("conformance", ".insn 0x0000000000000095", "9500000000000000"),
    # kernel syntax: llvm-objdump and the verifier log
    ("kernel", "r0 = *(u32 *)(r1 + 0x8)", "6110080000000000"),
    ("kernel", "r0 = *(u32 *)(r1 +8)", "6110080000000000"),
    ("kernel", "w0 = *(u32 *)(r1 + 0x8)", "6110080000000000"),
    ("kernel", "r0 = *(s8 *)(r1 + 0x0)", "9110000000000000"),
    ("kernel", "*(u64 *)(r10 - 0x8) = r1", "7b1af8ff00000000"),
    ("kernel", "*(u32 *)(r10 -8) = -1", "620af8ffffffffff"),
    ("kernel", "if r1 > 0x64 goto +0x1", "2501010064000000"),
    ("kernel", "if r1 > 0x64 goto pc+1", "2501010064000000"),
    ("kernel", "if r1 > 0x64 goto +0x1 <LBB0_2>", "2501010064000000"),
    ("kernel", "if w1 > 0x64 goto +1", "2601010064000000"),
    ("kernel", "if r1 s> r2 goto -0x1", "6d21ffff00000000"),
    ("kernel", "if r1 s>= r2 goto +1", "7d21010000000000"),
    ("kernel", "if r1 s< 0x5 goto +1", "c501010005000000"),
    ("kernel", "if w1 s<= w2 goto +1", "de21010000000000"),
    ("kernel", "if r1 & 0x3 goto +1", "4501010003000000"),
    ("kernel", "if r1 == 0xffffffff goto +1", "15010100ffffffff"),
    ("kernel", "w0 += w1", "0c10000000000000"),
    ("kernel", "r0 = -r0", "8700000000000000"),
    ("kernel", "w0 = -w0", "8400000000000000"),
    ("kernel", "r0 s/= 0x3", "3700010003000000"),
    ("kernel", "w1 = -0x80000000", "b401000000000080"),
    ("kernel", "r1 = 0x1234 ll", "1801000034120000" "0000000000000000"),
    ("kernel", "r1 = map_fd(0x5) ll", "1811000005000000" "0000000000000000"),
    ("kernel", "call 0xc", "850000000c000000"),
    ("kernel", "call bpf_tail_call#12", "850000000c000000"),
    ("kernel", "call tail_call", "850000000c000000"),
    ("kernel", "call pc+5", "8510000005000000"),
    ("kernel", "call kfunc 0x7", "8520000007000000"),
    ("kernel", "callx r2", "8d02000000000000"),
    ("kernel", "lock *(u64 *)(r10 - 0x8) += r1", "db1af8ff00000000"),
    ("kernel", "lock *(u32 *)(r10 -8) |= r1", "c31af8ff40000000"),
    ("kernel", "r1 = atomic_fetch_add((u64 *)(r10 - 0x8), r1)", "db1af8ff01000000"),
    ("kernel", "r1 = atomic64_fetch_add((u64 *)(r10 -8), r1)", "db1af8ff01000000"),
    ("kernel", "w1 = atomic_fetch_and((u32 *)(r10 - 0x8), w1)", "c31af8ff51000000"),
    ("kernel", "r1 = xchg_64(r10 - 0x8, r1)", "db1af8ffe1000000"),
    ("kernel", "w1 = xchg32_32(r10 - 0x8, w1)", "c31af8ffe1000000"),
    ("kernel", "r0 = cmpxchg_64(r10 - 0x8, r0, r1)", "db1af8fff1000000"),
    ("kernel", "w0 = cmpxchg32_32(r10 - 0x8, w0, w1)", "c31af8fff1000000"),
    ("kernel", "r0 = atomic64_cmpxchg((u64 *)(r10 -8), r0, r1)", "db1af8fff1000000"),
    ("kernel", "r0 = be16 r0", "dc00000010000000"),
    ("kernel", "r0 = le32 r0", "d400000020000000"),
    ("kernel", "r0 = bswap64 r0", "d700000040000000"),
    ("kernel", "r0 = (s8)r1", "bf10080000000000"),
    ("kernel", "w0 = (s16)w1", "bc10100000000000"),
    ("kernel", "goto +0x1", "0500010000000000"),
    ("kernel", "gotol +0x1", "0600000001000000"),
    ("kernel", "r0 = *(u8 *)skb[12]", "300000000c000000"),
    ("kernel", "r0 = *(u16 *)skb[r1 + 0xc]", "481000000c000000"),
    ("kernel", "r0 = *(u16 *)skb[r1]", "4810000000000000"),
    ("kernel", "exit", "9500000000000000"),
    ("kernel", "      12:\t61 10 08 00 00 00 00 00\tr0 = *(u32 *)(r1 + 0x8)", "6110080000000000"),
    ("kernel", "12: (61) r0 = *(u32 *)(r1 +8)", "6110080000000000"),
    ("kernel", "1: (18) r1 = 0x1234", "1801000034120000" "0000000000000000"),
    ("kernel", "3: (85) call bpf_map_lookup_elem#1   ; R0_w=scalar()", "8500000001000000"),
]


@pytest.mark.parametrize("syntax,text,hexcode", KNOWN, ids=[t for _, t, _ in KNOWN])
def test_instruction_encodes_to_known_bytes(syntax, text, hexcode):
    assert asm.assemble(text, syntax).hex() == hexcode


def test_kernel_disassembly_uses_llvm_objdump_spelling():
    code = asm.assemble("ldxw %r0, [%r1-8]\njgt %r1, 100, +1\nlddw %r1, -1\ncall 12\nexit")
    assert asm.disassemble(code) == ("r0 = *(u32 *)(r1 - 0x8)\nif r1 > 0x64 goto +0x1\n"
                                     "r1 = -0x1 ll\ncall 0xc\nexit\n")


def test_conformance_disassembly_uses_the_isa_mnemonics():
    code = asm.assemble("r0 = *(u32 *)(r1 - 0x8)\nif r1 > 0x64 goto +0x1\nr1 = -0x1 ll\n"
                        "callx r2\nexit")
    assert asm.disassemble(code, "conformance") == (
        "ldxw %r0, [%r1-8]\njgt %r1, 100, +1\nlddw %r1, 0xffffffffffffffff\ncallx %r2\nexit\n")


# --- labels -----------------------------------------------------------------------------
def test_label_offset_counts_lddw_as_two_slots():
    code = asm.assemble("ja end\nlddw %r0, 1\nend:\nexit")
    assert isa.Insn.unpack(code).off == 2


def test_backward_label_gives_negative_offset():
    code = asm.assemble("top:\nadd %r0, 1\njlt %r0, 10, top\nexit")
    assert isa.Insn.unpack(code, 8).off == -2


def test_exit_label_is_defined_at_the_first_exit():
    code = asm.assemble("jeq %r1, 0, exit\nmov %r0, 1\nexit\nmov %r0, 2\nexit")
    assert isa.Insn.unpack(code).off == 1


def test_explicit_exit_label_wins_over_the_automatic_one():
    code = asm.assemble("ja exit\nexit\nexit:\nexit", "conformance")
    assert isa.Insn.unpack(code).off == 1


def test_call_local_label_sets_imm_to_the_relative_slot():
    code = asm.assemble("call local f\nexit\nf:\nmov %r0, 1\nexit")
    assert isa.Insn.unpack(code) == isa.Insn(0x85, 0, 1, 0, 1)


def test_ja32_label_sets_imm_not_off():
    code = asm.assemble("ja32 end\nmov %r0, 1\nend:\nexit")
    assert isa.Insn.unpack(code) == isa.Insn(0x06, 0, 0, 0, 1)


def test_kernel_syntax_labels_jumps_and_local_calls():
    code = asm.assemble("if r1 == 0x0 goto out\ncall sub\nout:\nexit\nsub:\nr0 = 0x1\nexit",
                        "kernel")
    assert asm.disassemble(code).splitlines()[:2] == ["if r1 == 0x0 goto +0x1", "call pc+0x1"]


def test_objdump_symbol_line_defines_a_label():
    code = asm.assemble("call sub\nexit\n\n0000000000000010 <sub>:\nexit", "kernel")
    assert isa.Insn.unpack(code) == isa.Insn(0x85, 0, 1, 0, 1)


# --- kernel-syntax input from tools -----------------------------------------------------
def test_objdump_unknown_line_assembles_to_its_bytes():
    line = "      21:\tc3 1a f8 ff 40 00 00 00\t<unknown>"
    assert asm.assemble(line, "kernel").hex() == "c31af8ff40000000"


@pytest.mark.parametrize("hexcode,op_name", [("8510000018000000", "CALL_LOCAL"),
                                             ("8520000018000000", "CALL_KFUNC"),
                                             ("8500000018000000", "CALL")])
def test_objdump_call_takes_its_src_from_the_bytes(hexcode, op_name):
    spaced = " ".join(re.findall("..", hexcode))
    code = asm.assemble(f"      17:\t{spaced}\tcall 0x18", "kernel")
    assert isa.lookup(isa.Insn.unpack(code)).name == op_name


def test_objdump_lddw_takes_its_pseudo_source_from_the_bytes():
    line = "      35:\t18 11 00 00 00 00 00 00 00 00 00 00 00 00 00 00\tr1 = 0x0 ll"
    assert isa.lookup(isa.Insn.unpack(asm.assemble(line))).name == "LDDW_MAP_FD"


def test_kernel_comments_do_not_swallow_helper_numbers():
    text = "call bpf_tail_call#12 // tail call\n; source line\nexit # done"
    assert asm.assemble(text, "kernel").hex() == "850000000c000000" "9500000000000000"


# --- syntax detection -------------------------------------------------------------------
@pytest.mark.parametrize("text,expected", [
    ("mov %r0, 1\nexit", "conformance"),
    ("ja +1\nexit\nexit", "conformance"),
    ("L1:\nlock fetch add [%r10-8], %r1", "conformance"),
    ("call local f\nf:\nexit", "conformance"),
    ("r0 = 0x1\nexit", "kernel"),
    ("exit", "kernel"),
])
def test_auto_syntax_detection(text, expected):
    assert asm.assemble(text) == asm.assemble(text, expected)


def test_unknown_syntax_name_is_rejected():
    with pytest.raises(ValueError, match="unknown syntax"):
        asm.assemble("exit", "gas")


# --- errors -----------------------------------------------------------------------------
ERRORS = [
    ("conformance", "mov %r0, 1\nfoo %r1, 2", 2, 1, "unknown mnemonic 'foo'"),
    ("kernel", "exit\n  r0 = foo", 2, 3, "unrecognised instruction"),
    ("conformance", "mov %r11, 1", 1, 5, "bad register '%r11'"),
    ("kernel", "r0 = r11", 1, 6, "bad register 'r11'"),
    ("conformance", "mov %r0, 0x100000000", 1, 10, "immediate '0x100000000' out of range"),
    ("conformance", "mov %r0, -2147483649", 1, 10, "immediate '-2147483649' out of range"),
    ("conformance", "lddw %r0, 0x10000000000000000", 1, 11, "immediate"),
    ("conformance", "ldxw %r0, [%r1+32768]", 1, 15, "offset '+32768' out of range"),
    ("kernel", "r0 = *(u32 *)(r1 - 0x8001)", 1, 18, "offset '- 0x8001' out of range"),
    ("conformance", "ja nowhere\nexit", 1, 4, "unknown label 'nowhere'"),
    ("conformance", "a:\nexit\n  a:\nexit", 3, 3, "duplicate label 'a'"),
    ("kernel", "goto +0x8000", 1, 6, "jump offset '+0x8000' out of range"),
    ("conformance", "ja far\n" + "mov %r0, 0\n" * 32768 + "far:\nexit", 1, 4,
     "jump to 'far' out of range"),
    ("conformance", "add %r1, 2, 3", 1, 1, "wrong operand count: 'add' takes 2"),
    ("conformance", "exit %r0", 1, 1, "wrong operand count: 'exit' takes 0"),
    ("conformance", "add %r1, [%r2]", 1, 10, "invalid operand '[%r2]'"),
    ("conformance", ".insn 0x10000000000000000", 1, 7, "raw word"),
]


@pytest.mark.parametrize("syntax,text,line,column,message", ERRORS,
                         ids=[m for *_, m in ERRORS])
def test_error_names_line_and_column(syntax, text, line, column, message):
    with pytest.raises(AsmError, match=re.escape(message)) as info:
        asm.assemble(text, syntax)
    assert (info.value.line, info.value.column) == (line, column)
    assert str(info.value).startswith(f"line {line}, column {column}: ")


# --- disassemble_one --------------------------------------------------------------------
def test_disassemble_one_accepts_bytes_an_insn_or_slots():
    code = asm.assemble("r1 = 0x1234 ll")
    slots = isa.unpack_program(code)
    assert asm.disassemble_one(code) == asm.disassemble_one(slots) == "r1 = 0x1234 ll"
    assert asm.disassemble_one(isa.Insn(0x61, 0, 1, 8, 0)) == "r0 = *(u32 *)(r1 + 0x8)"


def test_disassemble_one_with_pc_names_the_jump_target():
    code = asm.assemble("if r1 > 0x5 goto +0x3")
    assert asm.disassemble_one(code, pc=10) == "if r1 > 0x5 goto +0x3 <14>"
    assert asm.disassemble_one(code, pc=10, syntax="conformance") == "jgt %r1, 5, +3  # 14"


def test_disassemble_one_output_with_pc_still_assembles():
    code = asm.assemble("goto -0x1")
    for syntax in SYNTAXES:
        assert asm.assemble(asm.disassemble_one(code, pc=3, syntax=syntax), syntax) == code


# --- packaging --------------------------------------------------------------------------
def test_asm_imports_without_the_compiled_core():
    script = ("import sys; sys.modules['pyebpf._core'] = None\n"
              "import pyebpf.asm; print(pyebpf.asm.disassemble(b'\\x95' + bytes(7)), end='')")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1])
    assert (done.returncode, done.stdout) == (0, "exit\n"), done.stderr


# --- llvm -------------------------------------------------------------------------------
LLVM_TOOLS = ("clang-19", "llvm-objdump-19", "llvm-objcopy-19")
C_SOURCE = r"""
typedef unsigned long long u64; typedef unsigned int u32;
static long (*trace)(const char *fmt, u32 size, ...) = (void *)6;
__attribute__((noinline)) static int sub(int a, long b) { return a * 3 + (b >> 2) - a / 7; }
int prog(unsigned long *ctx) {
    volatile u64 v = ctx[1];
    volatile u32 w = ctx[2];
    __sync_fetch_and_add(&v, 5);
    __sync_fetch_and_or(&w, 3);
    long r = __sync_val_compare_and_swap(&v, 3, 4) + __sync_lock_test_and_set(&v, 9);
    if ((long)ctx[0] == -1)
        return 2;
    if ((int)ctx[2] < -5)
        r += sub(ctx[3], ctx[4]);
    r += (signed char)ctx[5] + __builtin_bswap32(ctx[6]) + 0x123456789abcLL * ctx[7];
    trace("x", 2, r);
    return r;
}
"""


@pytest.fixture(scope="module")
def llvm_object(tmp_path_factory):
    """(llvm-objdump -d text, .text bytes) of a small C program compiled for v4."""
    missing = [tool for tool in LLVM_TOOLS if toolpath.find(tool) is None]
    if missing:
        reason = f"llvm tools not installed: {', '.join(missing)}"
        print(reason)
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("llvm")
    (tmp / "p.c").write_text(C_SOURCE)
    subprocess.run(["clang-19", "-O2", "-target", "bpf", "-mcpu=v4", "-c", "p.c", "-o", "p.o"],
                   cwd=tmp, check=True)
    subprocess.run(["llvm-objcopy-19", "-O", "binary", "--only-section=.text", "p.o", "p.bin"],
                   cwd=tmp, check=True)
    dump = subprocess.run(["llvm-objdump-19", "-d", "p.o"], cwd=tmp, check=True,
                          capture_output=True, text=True).stdout
    return dump, (tmp / "p.bin").read_bytes()


def _objdump_body(dump: str) -> list[str]:
    """Instruction and symbol lines; the file and section headers are not assembler input."""
    return [line for line in dump.splitlines() if re.match(r"\s*\d+:\t|[0-9a-f]+ <", line)]


def test_llvm_objdump_text_assembles_to_the_text_section(llvm_object):
    dump, text_section = llvm_object
    assert asm.assemble("\n".join(_objdump_body(dump))) == text_section


def test_kernel_disassembly_matches_llvm_objdump_line_for_line(llvm_object):
    dump, text_section = llvm_object
    theirs = [re.sub(r"\s+<[^<>]*>$", "", line.split("\t")[-1])
              for line in _objdump_body(dump) if re.match(r"\s*\d+:", line)]
    ours = asm.disassemble(text_section).splitlines()
    # llvm prints a local call like a helper call and cannot print 32-bit atomics
    # without --mattr=+alu32; those lines are ours to spell.
    differ = [(a, b) for a, b in zip(ours, theirs)
              if a != b and not a.startswith("call pc") and b != "<unknown>"]
    assert len(ours) == len(theirs) and not differ
