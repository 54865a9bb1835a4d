"""Differential ISA tests: the interpreter against the running kernel (pyebpf.kernel).

Every test builds a context-free program, runs it in the engine's raw mode
(``Program(code).run().retval``, the full 64-bit r0) and in the kernel as a SOCKET_FILTER
(``kernel.run_raw64``, the full 64-bit r0 too), and requires the two to agree.  The table
tests also state the value the kernel gives (docs/kernel-notes.md, ISA corner cases), so each one
reads as a statement of the behaviour.  The randomised test at the end builds straight-line
programs with forward branches that the kernel verifier accepts and compares r0-r9 and the
stack, folded into r0.

Programs are kept valid for the kernel verifier: every register read has been written,
the stack is written before it is read, no division by an immediate 0, shift immediates
in range, r10 is never written and r1 (the ctx in the kernel, the memory in raw mode) is
overwritten before use.  A program the kernel refuses is a bug in this file: the test
fails with the verifier log.
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyebpf import isa, kernel
from pyebpf.errors import KernelError

from pyebpf import Program

pytestmark = pytest.mark.kernel

M32 = (1 << 32) - 1
M64 = (1 << 64) - 1
INT32_MIN = 1 << 31            # as the unsigned bit pattern
INT64_MIN = 1 << 63
R0, R1, R2, R10 = 0, 1, 2, 10


# --- building programs ------------------------------------------------------------------
def ins(name: str, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> list[isa.Insn]:
    """The slots of one instruction of the isa table, by its table name (e.g. "SDIV32_X")."""
    return isa.encode(isa.OPS_BY_NAME[name], dst, src, off, imm)


def program(*parts) -> bytes:
    """Pack instructions (each an ``Insn`` or a list of them) into program bytes."""
    out = []
    for part in parts:
        out.extend(part if isinstance(part, list) else [part])
    return b"".join(i.pack() for i in out)


def s32(value: int) -> int:
    """A 32-bit pattern as the signed imm field holds it."""
    value &= M32
    return value - (1 << 32) if value & 0x80000000 else value


def lddw(dst: int, value: int) -> list[isa.Insn]:
    return ins("LDDW", dst, imm=value & M64)


def mov(dst: int, imm: int) -> list[isa.Insn]:
    return ins("MOV64_K", dst, imm=imm)


def exit_() -> list[isa.Insn]:
    return ins("EXIT")


def binop_x(name: str, a: int, b: int) -> bytes:
    """r0 = a; r1 = b; r0 <op>= r1; exit."""
    return program(lddw(R0, a), lddw(R1, b), ins(name, R0, R1), exit_())


def binop_k(name: str, a: int, imm: int) -> bytes:
    """r0 = a; r0 <op>= imm; exit."""
    return program(lddw(R0, a), ins(name, R0, imm=imm), exit_())


def unop(name: str, a: int, **fields) -> bytes:
    """r0 = a; <op> r0; exit (for neg, end/bswap)."""
    return program(lddw(R0, a), ins(name, R0, **fields), exit_())


def listing(code: bytes) -> str:
    """The program's disassembly (pyebpf.asm when it exists), else a decoded hex dump."""
    try:
        from pyebpf.asm import disassemble
    except ImportError:
        disassemble = None
    if disassemble is not None:
        lines, pcs, pc = disassemble(code).splitlines(), [], 0
        while pc < len(code) // 8:  # number each line by its raw slot, as the kernel does
            pcs.append(pc)
            pc += 2 if code[pc * 8] == isa.BPF_LD | isa.BPF_IMM | isa.BPF_DW else 1
        if len(pcs) == len(lines):
            return "\n".join(f"{pc:5d}: {line}" for pc, line in zip(pcs, lines))
        return "\n".join(lines)
    lines, tail = [], False
    for pc, insn in enumerate(isa.unpack_program(code)):
        raw = code[pc * 8:pc * 8 + 8].hex(" ")
        if tail:
            lines.append(f"{pc:5d}: {raw}  (lddw high half {insn.imm & M32:#x})")
            tail = False
            continue
        op = isa.lookup(insn)
        name = op.name if op else "?"
        tail = op is not None and op.form is isa.F_LDDW
        lines.append(f"{pc:5d}: {raw}  {name} dst=r{insn.dst} src=r{insn.src} "
                     f"off={insn.off} imm={insn.imm}")
    return "\n".join(lines)


def run_kernel(code: bytes) -> int:
    try:
        return kernel.run_raw64(code)
    except KernelError as exc:
        pytest.fail(f"the kernel refused the program (a bug in this test's program, not in "
                    f"the engine): {exc}\n{listing(code)}\nverifier log:\n{exc.log}",
                    pytrace=False)


def run_engine(code: bytes) -> int:
    try:
        return Program(code).run().retval
    except Exception as exc:  # a load or run error is a disagreement: show the program
        pytest.fail(f"the engine failed where the kernel ran: {type(exc).__name__}: {exc}\n"
                    f"{listing(code)}", pytrace=False)


def check(code: bytes, expected: int | None = None) -> None:
    """The engine's r0 equals the kernel's; and the kernel's equals ``expected`` if given."""
    kern = run_kernel(code)
    engine = run_engine(code)
    assert engine == kern, (f"engine r0 = {engine:#x}, kernel r0 = {kern:#x}\n"
                            f"{listing(code)}")
    if expected is not None:
        assert kern == expected & M64, (f"the kernel gives {kern:#x}, this test expected "
                                        f"{expected & M64:#x} (the test's expectation is "
                                        f"wrong)\n{listing(code)}")


def case(id: str, code: bytes, expected: int):
    return pytest.param(code, expected, id=id)


# --- division and modulo ----------------------------------------------------------------
DIVIDEND = 0x1122334455667788


@pytest.mark.parametrize("code, expected", [
    case("div64", binop_x("DIV64_X", DIVIDEND, 0), 0),
    case("div32", binop_x("DIV32_X", DIVIDEND, 0), 0),
    case("sdiv64", binop_x("SDIV64_X", DIVIDEND, 0), 0),
    case("sdiv32", binop_x("SDIV32_X", DIVIDEND, 0), 0),
])
def test_div_by_zero_register_gives_zero(code, expected):
    check(code, expected)


@pytest.mark.parametrize("code, expected", [
    case("mod64", binop_x("MOD64_X", DIVIDEND, 0), DIVIDEND),
    case("mod32-zero-extends", binop_x("MOD32_X", DIVIDEND, 0), DIVIDEND & M32),
    case("smod64", binop_x("SMOD64_X", -DIVIDEND, 0), -DIVIDEND),
    case("smod32-zero-extends", binop_x("SMOD32_X", -DIVIDEND, 0), -DIVIDEND & M32),
])
def test_mod_by_zero_register_leaves_dst(code, expected):
    check(code, expected)


@pytest.mark.parametrize("code, expected", [
    case("div32", binop_x("DIV32_X", DIVIDEND, 1 << 32), 0),
    case("mod32", binop_x("MOD32_X", DIVIDEND, 1 << 32), DIVIDEND & M32),
    case("div32-divisor-low-half-only", binop_x("DIV32_X", 100, (7 << 32) | 3), 33),
])
def test_alu32_div_uses_only_the_divisors_low_half(code, expected):
    check(code, expected)


@pytest.mark.parametrize("code, expected", [
    case("div64-7-by-minus1", binop_k("DIV64_K", 7, -1), 0),
    case("div64-minus1-by-minus1", binop_k("DIV64_K", M64, -1), 1),
    case("mod64-7-by-minus1", binop_k("MOD64_K", 7, -1), 7),
    case("or64-0x80000000", binop_k("OR64_K", 0, s32(0x80000000)), 0xFFFFFFFF80000000),
    case("and64-minus2", binop_k("AND64_K", M64, -2), M64 - 1),
    case("add64-minus1", binop_k("ADD64_K", 0, -1), M64),
    case("mov64-minus1", binop_k("MOV64_K", 0, -1), M64),
    case("xor64-INT32_MIN", binop_k("XOR64_K", 0, s32(INT32_MIN)), 0xFFFFFFFF80000000),
    case("mul64-minus1", binop_k("MUL64_K", 5, -1), -5),
])
def test_alu64_immediates_are_sign_extended(code, expected):
    check(code, expected)


@pytest.mark.parametrize("code, expected", [
    case("div32-0xffffffff-by-minus1", binop_k("DIV32_K", 0xFFFFFFFF, -1), 1),
    case("div32-7-by-minus1", binop_k("DIV32_K", 7, -1), 0),
    case("mod32-0xfffffffe-by-minus1", binop_k("MOD32_K", 0xFFFFFFFE, -1), 0xFFFFFFFE),
    case("or32-0x80000000", binop_k("OR32_K", 0, s32(0x80000000)), 0x80000000),
    case("mov32-minus1", binop_k("MOV32_K", M64, -1), M32),
    case("div32-by-3-ignores-upper-half", binop_k("DIV32_K", 0xFFFFFFFF_FFFFFFFF, 3), 0x55555555),
])
def test_alu32_immediates_are_used_as_u32(code, expected):
    check(code, expected)


@pytest.mark.parametrize("code, expected", [
    case("sdiv64-minus7-by-2", binop_x("SDIV64_X", -7, 2), -3),
    case("sdiv64-7-by-minus2", binop_x("SDIV64_X", 7, -2), -3),
    case("smod64-minus7-by-2", binop_x("SMOD64_X", -7, 2), -1),
    case("smod64-7-by-minus2", binop_x("SMOD64_X", 7, -2), 1),
    case("sdiv64-INT64_MIN-by-minus1", binop_x("SDIV64_X", INT64_MIN, -1), INT64_MIN),
    case("smod64-INT64_MIN-by-minus1", binop_x("SMOD64_X", INT64_MIN, -1), 0),
    case("sdiv64-imm-INT64_MIN-by-minus1", binop_k("SDIV64_K", INT64_MIN, -1), INT64_MIN),
    case("smod64-imm-INT64_MIN-by-minus1", binop_k("SMOD64_K", INT64_MIN, -1), 0),
    case("sdiv64-imm-minus7-by-2", binop_k("SDIV64_K", -7, 2), -3),
    case("sdiv32-minus7-by-2", binop_x("SDIV32_X", -7 & M32, 2), -3 & M32),
    case("smod32-minus7-by-2", binop_x("SMOD32_X", -7 & M32, 2), -1 & M32),
    case("smod32-7-by-minus2", binop_x("SMOD32_X", 7, -2 & M32), 1),
    case("sdiv32-INT32_MIN-by-minus1", binop_x("SDIV32_X", INT32_MIN, M32), INT32_MIN),
    case("smod32-INT32_MIN-by-minus1", binop_x("SMOD32_X", INT32_MIN, M32), 0),
    case("sdiv32-imm-INT32_MIN-by-minus1", binop_k("SDIV32_K", INT32_MIN, -1), INT32_MIN),
    case("smod32-imm-INT32_MIN-by-minus1", binop_k("SMOD32_K", INT32_MIN, -1), 0),
    case("sdiv32-ignores-upper-halves", binop_x("SDIV32_X", 0x12345678_FFFFFFF9,
                                                0x9ABCDEF0_00000002), -3 & M32),
])
def test_signed_div_mod(code, expected):
    check(code, expected)


# --- shifts -----------------------------------------------------------------------------
@pytest.mark.parametrize("code, expected", [
    case("lsh64-by-65", binop_x("LSH64_X", 0x8000000000000003, 65), 0x6),
    case("lsh64-by-minus1", binop_x("LSH64_X", 1, -1), INT64_MIN),
    case("rsh64-by-64", binop_x("RSH64_X", DIVIDEND, 64), DIVIDEND),
    case("arsh64-by-67", binop_x("ARSH64_X", INT64_MIN, 67), 0xF000000000000000),
    case("lsh32-by-33", binop_x("LSH32_X", 0xFFFFFFFF_80000001, 33), 0x2),
    case("rsh32-by-32", binop_x("RSH32_X", 0xFFFFFFFF_80000001, 32), 0x80000001),
    case("rsh32-by-minus1", binop_x("RSH32_X", 0x80000000, -1), 1),
    case("arsh32-by-0x100000004", binop_x("ARSH32_X", 0x80000000, (1 << 32) | 4),
         0xF8000000),
])
def test_shift_by_register_masks_the_amount(code, expected):
    check(code, expected)


# --- ALU32 zero-extension and arsh ------------------------------------------------------
@pytest.mark.parametrize("code, expected", [
    case("mov32-minus1", program(lddw(R0, M64), ins("MOV32_K", R0, imm=-1), exit_()), M32),
    case("mov32-register", binop_x("MOV32_X", 0, 0xDEADBEEF_12345678), 0x12345678),
    case("add32-wraps", binop_k("ADD32_K", 0xABCDEF01_FFFFFFFF, 1), 0),
    case("sub32-wraps", binop_k("SUB32_K", 0xABCDEF01_00000000, 1), M32),
    case("mul32", binop_x("MUL32_X", 0xFFFFFFFF_00010000, 0x00010000), 0),
    case("neg32-of-1", unop("NEG32", 0xFFFFFFFF_00000001), M32),
    case("neg32-of-INT32_MIN", unop("NEG32", INT32_MIN), INT32_MIN),
    case("neg64-of-1", unop("NEG64", 1), M64),
    case("lsh32-imm", binop_k("LSH32_K", 0x00000001_80000001, 1), 0x2),
    case("xor32-reg", binop_x("XOR32_X", 0xFFFFFFFF_FFFFFFFF, 0xFFFFFFFF_0000FFFF),
         0xFFFF0000),
])
def test_alu32_results_are_zero_extended(code, expected):
    check(code, expected)


@pytest.mark.parametrize("code, expected", [
    case("imm-4", binop_k("ARSH32_K", 0x80000000, 4), 0xF8000000),
    case("imm-31", binop_k("ARSH32_K", 0x80000000, 31), M32),
    case("imm-ignores-upper-half", binop_k("ARSH32_K", 0x7FFFFFFF_00000000, 4), 0),
    case("reg-4", binop_x("ARSH32_X", 0x12345678_80000000, 4), 0xF8000000),
    case("positive", binop_k("ARSH32_K", 0xFFFFFFFF_7FFFFFFF, 8), 0x007FFFFF),
])
def test_alu32_arsh_is_arithmetic_on_the_low_half(code, expected):
    check(code, expected)


# --- jumps ------------------------------------------------------------------------------
def taken(jump: list[isa.Insn], *setup) -> bytes:
    """r0 = 1 when ``jump`` is taken, else 0."""
    return program(*setup, mov(R0, 1), jump, mov(R0, 0), exit_())


@pytest.mark.parametrize("code, expected", [
    case("jeq64-0xffffffff-vs-minus1",
         taken(ins("JEQ64_K", R1, off=1, imm=-1), mov(R1, 0), ins("MOV32_K", R1, imm=-1)), 0),
    case("jeq64-all-ones-vs-minus1",
         taken(ins("JEQ64_K", R1, off=1, imm=-1), mov(R1, -1)), 1),
    case("jne64-0xffffffff-vs-minus1",
         taken(ins("JNE64_K", R1, off=1, imm=-1), lddw(R1, M32)), 1),
    case("jeq32-0xffffffff-vs-minus1",
         taken(ins("JEQ32_K", R1, off=1, imm=-1), lddw(R1, M32)), 1),
    case("jgt64-0xffffffff-vs-minus1",
         taken(ins("JGT64_K", R1, off=1, imm=-1), lddw(R1, M32)), 0),
])
def test_jeq_imm_is_sign_extended(code, expected):
    check(code, expected)


JMP_CONDS = [m for _, m, _ in isa.JMP_OPS]


def condition(cond: str, a: int, b: int, bits: int) -> bool:
    """The kernel's jump condition on the low ``bits`` of a and b."""
    mask = (1 << bits) - 1
    a, b = a & mask, b & mask
    sa = a - (1 << bits) if a >> (bits - 1) else a
    sb = b - (1 << bits) if b >> (bits - 1) else b
    return {"eq": a == b, "ne": a != b, "set": bool(a & b), "gt": a > b, "ge": a >= b,
            "lt": a < b, "le": a <= b, "sgt": sa > sb, "sge": sa >= sb, "slt": sa < sb,
            "sle": sa <= sb}[cond]


# (id, dst, src) pairs whose low halves compare differently from the full 64 bits.
JMP_PAIRS_X = [
    ("low-equal-high-differs", 0x00000001_00000005, 0x00000002_00000005),
    ("low-less-high-greater", 0xFFFFFFFF_00000001, 0x00000000_00000002),
    ("low-negative-high-positive", 0x00000000_80000000, 0xFFFFFFFF_00000001),
    ("disjoint-low-bits", 0x0000FFFF_00F0F0F0, 0xFFFF0000_000F0F0F),
]
# (id, dst, imm): the imm is sign-extended for JMP, taken as the low 32 bits for JMP32.
JMP_PAIRS_K = [
    ("low-equal-imm", 0x00000005_00000005, 5),
    ("low-0xfffffffe-imm-minus1", 0x00000000_FFFFFFFE, -1),
    ("low-1-imm-minus1", 0xFFFFFFFF_00000001, -1),
    ("low-INT32_MIN-imm-INT32_MAX", 0x7FFFFFFF_80000000, 0x7FFFFFFF),
]


def jump_cases(bits: int):
    sfx = "32" if bits == 32 else "64"
    cases = []
    for cond in JMP_CONDS:
        name = f"J{cond.upper()}{sfx}"
        for pid, a, b in JMP_PAIRS_X:
            code = taken(ins(f"{name}_X", R1, R2, off=1), lddw(R1, a), lddw(R2, b))
            cases.append(case(f"j{cond}{sfx}-reg-{pid}", code, int(condition(cond, a, b, bits))))
        for pid, a, imm in JMP_PAIRS_K:
            code = taken(ins(f"{name}_K", R1, off=1, imm=imm), lddw(R1, a))
            cases.append(case(f"j{cond}{sfx}-imm-{pid}", code,
                              int(condition(cond, a, imm & M64, bits))))
    return cases


@pytest.mark.parametrize("code, expected", jump_cases(32))
def test_jmp32_compares_the_low_32_bits(code, expected):
    check(code, expected)


@pytest.mark.parametrize("code, expected", jump_cases(64))
def test_jmp64_compares_all_64_bits(code, expected):
    check(code, expected)


def jump_after_alu_cases():
    """Every conditional jump right after an ``add 0`` to the register it compares: dst,
    src or both (threaded dispatch then runs the jump's variant that takes that operand
    from the machine register the add left it in, Program._fill_cases)."""
    cases = []
    for bits, sfx in ((32, "32"), (64, "64")):
        for cond in JMP_CONDS:
            name = f"J{cond.upper()}{sfx}"
            for pid, a, b in JMP_PAIRS_X[1:3]:
                for via, src, last in (("dst", R2, R1), ("src", R2, R2), ("both", R1, R1)):
                    code = taken(ins(f"{name}_X", R1, src, off=1), lddw(R1, a), lddw(R2, b),
                                 mov(R0, 1), ins("ADD64_K", last))
                    want = condition(cond, a, b if src == R2 else a, bits)
                    cases.append(case(f"j{cond}{sfx}-reg-{pid}-{via}-just-written", code,
                                      int(want)))
            pid, a, imm = JMP_PAIRS_K[2]
            code = taken(ins(f"{name}_K", R1, off=1, imm=imm), lddw(R1, a), mov(R0, 1),
                         ins("ADD64_K", R1))
            cases.append(case(f"j{cond}{sfx}-imm-{pid}-dst-just-written", code,
                              int(condition(cond, a, imm & M64, bits))))
    return cases


@pytest.mark.parametrize("code, expected", jump_after_alu_cases())
def test_a_jump_compares_the_value_the_instruction_before_it_wrote(code, expected):
    check(code, expected)


COPIED = 0x80000001_23456789


def copy_then_change_cases():
    """r3 = r2; r3 <op>= imm (one case in threaded dispatch: isa.fused_ops), r2 read
    from the register file or just written by the instruction before; r0 = r3 ^ r2, so
    that the copy's source is checked unchanged too."""
    cases = []
    for op in isa.fused_ops():
        kop = isa.BPF_OP(op.code)
        imm = 13 if kop in (isa.BPF_LSH, isa.BPF_RSH, isa.BPF_ARSH) else -0x10F0
        k, sh = imm & M64, imm & 63
        signed = COPIED - (1 << 64)
        changed = {isa.BPF_ADD: COPIED + k, isa.BPF_SUB: COPIED - k, isa.BPF_MUL: COPIED * k,
                   isa.BPF_OR: COPIED | k, isa.BPF_AND: COPIED & k, isa.BPF_XOR: COPIED ^ k,
                   isa.BPF_LSH: COPIED << sh, isa.BPF_RSH: COPIED >> sh,
                   isa.BPF_ARSH: signed >> sh}[kop] & M64
        for via, written in (("file", []), ("just-written", ins("ADD64_K", R2))):
            code = program(lddw(R2, COPIED), written, ins("MOV64_X", 3, R2),
                           ins(op.name, 3, imm=imm), ins("MOV64_X", R0, 3),
                           ins("XOR64_X", R0, R2), exit_())
            cases.append(case(f"{op.name.lower()}-source-from-{via}", code, changed ^ COPIED))
    return cases


@pytest.mark.parametrize("code, expected", copy_then_change_cases())
def test_a_copy_changed_by_the_next_instruction_holds_the_change(code, expected):
    check(code, expected)


def test_a_multiply_xor_shift_chain_matches_the_kernel():
    # hashmix's rounds: each xor reads r0 as written two cases before it (acc2) and the
    # value one case before (acc), the shift is one case with its copy (isa.fused_ops)
    seed, mult, word = 0x243F6A8885A308D3, 0x9E3779B97F4A7C15, 0x1234567
    rounds, want = [], seed
    for _ in range(4):
        rounds += [mov(3, word), ins("XOR64_X", R0, 3), ins("MUL64_X", R0, 8),
                   ins("MOV64_X", 3, R0), ins("RSH64_K", 3, imm=29), ins("XOR64_X", R0, 3)]
        want = (want ^ word) * mult & M64
        want ^= want >> 29
    check(program(lddw(R0, seed), lddw(8, mult), *rounds, exit_()), want)


# --- byte order -------------------------------------------------------------------------
SWAP_IN = 0x1122334455667788


@pytest.mark.parametrize("code, expected", [
    case("be16", unop("BE16", SWAP_IN), 0x8877),
    case("be32", unop("BE32", SWAP_IN), 0x88776655),
    case("be64", unop("BE64", SWAP_IN), 0x8877665544332211),
])
def test_end_to_be_swaps_and_zero_extends(code, expected):
    check(code, expected)


@pytest.mark.parametrize("code, expected", [
    case("le16", unop("LE16", SWAP_IN), 0x7788),
    case("le32", unop("LE32", SWAP_IN), 0x55667788),
    case("le64", unop("LE64", SWAP_IN), SWAP_IN),
])
def test_end_to_le_truncates_without_swapping(code, expected):
    check(code, expected)


@pytest.mark.parametrize("code, expected", [
    case("bswap16", unop("BSWAP16", SWAP_IN), 0x8877),
    case("bswap32", unop("BSWAP32", SWAP_IN), 0x88776655),
    case("bswap64", unop("BSWAP64", SWAP_IN), 0x8877665544332211),
])
def test_bswap_swaps_unconditionally(code, expected):
    check(code, expected)


# --- sign extension ---------------------------------------------------------------------
@pytest.mark.parametrize("code, expected", [
    case("movsx8-64-0x80", binop_x("MOVSX8_64", 0, 0xDEADBEEF_12345680), -128),
    case("movsx8-64-0x7f", binop_x("MOVSX8_64", 0, 0xFFFFFFFF_FFFFFF7F), 0x7F),
    case("movsx16-64-0x8000", binop_x("MOVSX16_64", 0, 0x12345678_9ABC8000), -0x8000),
    case("movsx32-64-0x80000000", binop_x("MOVSX32_64", 0, 0x12345678_80000000), -INT32_MIN),
    case("movsx32-64-0x7fffffff", binop_x("MOVSX32_64", 0, 0xFFFFFFFF_7FFFFFFF), 0x7FFFFFFF),
    case("movsx8-32-0x80", binop_x("MOVSX8_32", M64, 0x12345680), 0xFFFFFF80),
    case("movsx16-32-0x8000", binop_x("MOVSX16_32", M64, 0xFFFF8000), 0xFFFF8000),
    case("movsx16-32-0x7fff", binop_x("MOVSX16_32", M64, 0xFFFF7FFF), 0x7FFF),
])
def test_movsx_sign_extends(code, expected):
    check(code, expected)


STACK_WORD = 0x80FF7F80_8000FF80  # little-endian bytes: 80 ff 00 80 80 7f ff 80


def load_from_stack(name: str, off: int) -> bytes:
    """Store STACK_WORD at r10-8, then r0 = <load name> [r10 + off]."""
    return program(lddw(R1, STACK_WORD), ins("STX64", R10, R1, off=-8),
                   ins(name, R0, R10, off=off), exit_())


@pytest.mark.parametrize("code, expected", [
    case("ldxsb-0x80", load_from_stack("LDXS8", -8), -0x80),
    case("ldxsb-0x7f", load_from_stack("LDXS8", -3), 0x7F),
    case("ldxsh-0xff80", load_from_stack("LDXS16", -8), -0x80),
    case("ldxsh-0x8000", load_from_stack("LDXS16", -6), -0x8000),
    case("ldxsw-0x8000ff80", load_from_stack("LDXS32", -8), 0x8000FF80 - (1 << 32)),
    case("ldxsw-0x80ff7f80", load_from_stack("LDXS32", -4), 0x80FF7F80 - (1 << 32)),
    case("ldxb-zero-extends", load_from_stack("LDX8", -8), 0x80),
    case("ldxh-zero-extends", load_from_stack("LDX16", -6), 0x8000),
    case("ldxw-zero-extends", load_from_stack("LDX32", -4), 0x80FF7F80),
])
def test_ldxsx_from_the_stack_sign_extends(code, expected):
    check(code, expected)


# --- atomics on the stack ---------------------------------------------------------------
SLOT = -8
MEM = 0x11111111_FFFFFFFF
OPERAND = 0xABCDEF00_0F0F0001          # its upper half must not matter to 32-bit atomics


def atomic(name: str, mem: int, operand: int, result: str, r0: int | None = None) -> bytes:
    """Store ``mem`` at r10-8, do ``name`` with r2 = ``operand`` on it (cmpxchg compares
    with r0 = ``r0``), then return ``result``: "mem" (the slot afterwards), "src" (r2
    afterwards) or "r0" (r0 afterwards)."""
    out = {"mem": ins("LDX64", R0, R10, off=SLOT), "src": ins("MOV64_X", R0, R2),
           "r0": []}[result]
    setup = lddw(R0, r0) if r0 is not None else []
    return program(lddw(R1, mem), ins("STX64", R10, R1, off=SLOT), lddw(R2, operand), setup,
                   ins(name, R10, R2, off=SLOT), out, exit_())


def _apply(op: str, a: int, b: int) -> int:
    return {"add": a + b, "or": a | b, "and": a & b, "xor": a ^ b}[op]


def _atomic_after(op: str, bits: int, mem: int, operand: int) -> int:
    """The 8-byte slot after a ``bits``-wide ``op`` of ``operand`` into it."""
    if bits == 64:
        return _apply(op, mem, operand) & M64
    return (mem & ~M32 & M64) | (_apply(op, mem & M32, operand & M32) & M32)


@pytest.mark.parametrize("code, expected", [
    case("xadd32-wraps-upper-untouched", atomic("ATOMIC32_ADD", MEM, 1, "mem"),
         0x11111111_00000000),
    case("xadd32-ignores-src-upper-half", atomic("ATOMIC32_ADD", MEM, 0xFFFFFFFF_00000002,
                                                 "mem"), 0x11111111_00000001),
    case("xadd64-carries", atomic("ATOMIC64_ADD", MEM, 1, "mem"), 0x11111112_00000000),
    case("xadd64-src-unchanged", atomic("ATOMIC64_ADD", MEM, OPERAND, "src"), OPERAND),
])
def test_xadd_on_the_stack(code, expected):
    check(code, expected)


def _bitwise_atomic_cases():
    cases = []
    for op in ("or", "and", "xor"):
        for bits in (32, 64):
            name = f"ATOMIC{bits}_{op.upper()}"
            cases.append(case(f"{op}{bits}-mem", atomic(name, MEM, OPERAND, "mem"),
                              _atomic_after(op, bits, MEM, OPERAND)))
            cases.append(case(f"{op}{bits}-src-unchanged", atomic(name, MEM, OPERAND, "src"),
                              OPERAND))
    return cases


@pytest.mark.parametrize("code, expected", _bitwise_atomic_cases())
def test_atomic_or_and_xor_without_fetch(code, expected):
    check(code, expected)


def _fetch_cases():
    cases = []
    for op in ("add", "or", "and", "xor"):
        for bits in (32, 64):
            name = f"ATOMIC{bits}_FETCH_{op.upper()}"
            old = MEM if bits == 64 else MEM & M32
            cases.append(case(f"fetch-{op}{bits}-old-value-in-src",
                              atomic(name, MEM, OPERAND, "src"), old))
            cases.append(case(f"fetch-{op}{bits}-mem", atomic(name, MEM, OPERAND, "mem"),
                              _atomic_after(op, bits, MEM, OPERAND)))
    return cases


@pytest.mark.parametrize("code, expected", _fetch_cases())
def test_atomic_fetch_returns_the_old_value(code, expected):
    check(code, expected)


@pytest.mark.parametrize("code, expected", [
    case("xchg64-old-in-src", atomic("ATOMIC64_XCHG", MEM, OPERAND, "src"), MEM),
    case("xchg64-mem", atomic("ATOMIC64_XCHG", MEM, OPERAND, "mem"), OPERAND),
    case("xchg32-old-in-src-zero-extended", atomic("ATOMIC32_XCHG", MEM, OPERAND, "src"),
         MEM & M32),
    case("xchg32-mem-upper-untouched", atomic("ATOMIC32_XCHG", MEM, OPERAND, "mem"),
         (MEM & ~M32) | (OPERAND & M32)),
])
def test_xchg_on_the_stack(code, expected):
    check(code, expected)


@pytest.mark.parametrize("code, expected", [
    case("cmpxchg64-success-r0", atomic("ATOMIC64_CMPXCHG", MEM, OPERAND, "r0", r0=MEM), MEM),
    case("cmpxchg64-success-mem", atomic("ATOMIC64_CMPXCHG", MEM, OPERAND, "mem", r0=MEM),
         OPERAND),
    case("cmpxchg64-failure-r0", atomic("ATOMIC64_CMPXCHG", MEM, OPERAND, "r0", r0=MEM ^ 1),
         MEM),
    case("cmpxchg64-failure-mem", atomic("ATOMIC64_CMPXCHG", MEM, OPERAND, "mem",
                                         r0=MEM ^ (1 << 40)), MEM),
    # 32-bit: only r0's low half is compared; r0 gets the old low half, zero-extended.
    case("cmpxchg32-success-r0", atomic("ATOMIC32_CMPXCHG", MEM, OPERAND, "r0",
                                        r0=0xDEAD0000_00000000 | (MEM & M32)), MEM & M32),
    case("cmpxchg32-success-mem", atomic("ATOMIC32_CMPXCHG", MEM, OPERAND, "mem",
                                         r0=0xDEAD0000_00000000 | (MEM & M32)),
         (MEM & ~M32) | (OPERAND & M32)),
    case("cmpxchg32-failure-r0", atomic("ATOMIC32_CMPXCHG", MEM, OPERAND, "r0",
                                        r0=MEM & M32 ^ 1), MEM & M32),
    case("cmpxchg32-failure-mem", atomic("ATOMIC32_CMPXCHG", MEM, OPERAND, "mem",
                                         r0=MEM & M32 ^ 1), MEM),
    case("cmpxchg32-src-unchanged", atomic("ATOMIC32_CMPXCHG", MEM, OPERAND, "src",
                                           r0=MEM & M32), OPERAND),
])
def test_cmpxchg_on_the_stack(code, expected):
    check(code, expected)


# --- randomised programs ----------------------------------------------------------------
# Straight-line programs with forward conditional jumps over r0-r9 and eight stack slots
# r10-64..r10-8.  Prologue: load r0-r9 (each with lddw, or through the stack so that the
# verifier does not know the value), then write every stack slot.  Epilogue: fold r0-r9
# and the eight slots into r0 (xor, then rotate left by 13).
REGS = st.integers(0, 9)
STACK_BYTES = 64
INTERESTING_64 = [0, 1, 2, 7, M64, M64 - 1, INT64_MIN, INT64_MIN - 1, M32, M32 + 1,
                  INT32_MIN, INT32_MIN - 1, 0xFFFFFFFF_00000000, 0x80, 0x8000, 63, 64, 65]
INTERESTING_32 = [0, 1, -1, 2, -2, 7, -7, 31, 32, 63, 64, -(1 << 31), (1 << 31) - 1, 0x80,
                  0xFF, 0x8000, 0xFFFF]
VALUES_64 = st.one_of(st.integers(0, M64), st.sampled_from(INTERESTING_64))
IMM32 = st.one_of(st.integers(-(1 << 31), (1 << 31) - 1), st.sampled_from(INTERESTING_32))

ALU_NAMES = ["ADD", "SUB", "MUL", "DIV", "OR", "AND", "LSH", "RSH", "MOD", "XOR", "MOV",
             "ARSH", "SDIV", "SMOD"]
SHIFTS = ("LSH", "RSH", "ARSH")
DIVISIONS = ("DIV", "MOD", "SDIV", "SMOD")
UNARY = ["NEG64", "NEG32", "MOVSX8_64", "MOVSX16_64", "MOVSX32_64", "MOVSX8_32",
         "MOVSX16_32", "LE16", "LE32", "LE64", "BE16", "BE32", "BE64", "BSWAP16", "BSWAP32",
         "BSWAP64"]
ATOMIC_WORDS = ["ADD", "OR", "AND", "XOR", "FETCH_ADD", "FETCH_OR", "FETCH_AND", "FETCH_XOR",
                "XCHG", "CMPXCHG"]


def stack_offset(size: int):
    """An offset in r10-64..r10-size aligned to ``size``."""
    return st.integers(1, STACK_BYTES // size).map(lambda k: -k * size)


@st.composite
def alu_reg(draw):
    op, bits = draw(st.sampled_from(ALU_NAMES)), draw(st.sampled_from((64, 32)))
    return ins(f"{op}{bits}_X", draw(REGS), draw(REGS))


@st.composite
def alu_imm(draw):
    op, bits = draw(st.sampled_from(ALU_NAMES)), draw(st.sampled_from((64, 32)))
    if op in SHIFTS:
        imm = draw(st.integers(0, bits - 1))
    elif op in DIVISIONS:
        imm = draw(IMM32.filter(bool))
    else:
        imm = draw(IMM32)
    return ins(f"{op}{bits}_K", draw(REGS), imm=imm)


@st.composite
def unary(draw):
    name = draw(st.sampled_from(UNARY))
    if name.startswith("MOVSX"):
        return ins(name, draw(REGS), draw(REGS))
    return ins(name, draw(REGS))


@st.composite
def store(draw):
    size = draw(st.sampled_from((1, 2, 4, 8)))
    off = draw(stack_offset(size))
    if draw(st.booleans()):
        return ins(f"ST{size * 8}", R10, off=off, imm=draw(IMM32))
    return ins(f"STX{size * 8}", R10, draw(REGS), off=off)


@st.composite
def load(draw):
    name = draw(st.sampled_from(["LDX8", "LDX16", "LDX32", "LDX64", "LDXS8", "LDXS16",
                                 "LDXS32"]))
    size = isa.OPS_BY_NAME[name].size
    return ins(name, draw(REGS), R10, off=draw(stack_offset(size)))


@st.composite
def atomic_op(draw):
    bits = draw(st.sampled_from((32, 64)))
    word = draw(st.sampled_from(ATOMIC_WORDS))
    return ins(f"ATOMIC{bits}_{word}", R10, draw(REGS), off=draw(stack_offset(bits // 8)))


@st.composite
def cond_jump(draw):
    """A conditional jump; ``off`` is the wanted skip (1-3), clamped when placed."""
    cond = draw(st.sampled_from(JMP_CONDS)).upper()
    bits = draw(st.sampled_from((64, 32)))
    skip = draw(st.integers(1, 3))
    if draw(st.booleans()):
        return ins(f"J{cond}{bits}_X", draw(REGS), draw(REGS), off=skip)
    return ins(f"J{cond}{bits}_K", draw(REGS), off=skip, imm=draw(IMM32))


BODY_INSN = st.one_of(alu_reg(), alu_imm(), alu_reg(), alu_imm(), unary(), store(), load(),
                      atomic_op(), cond_jump(), cond_jump())


def rotate_left(reg: int, scratch: int, n: int) -> list[isa.Insn]:
    return (ins("MOV64_X", scratch, reg) + ins("RSH64_K", scratch, imm=64 - n)
            + ins("LSH64_K", reg, imm=n) + ins("OR64_X", reg, scratch))


def fold_into_r0() -> list[isa.Insn]:
    """r0 = rotl13(... rotl13(r0 ^ r1) ^ r2 ...) over r1-r9, then over the stack slots."""
    out = []
    for reg in range(1, 10):  # each register is dead after its xor: use it as the scratch
        out += ins("XOR64_X", R0, reg) + rotate_left(R0, reg, 13)
    for off in range(-8, -STACK_BYTES - 1, -8):
        out += ins("LDX64", R1, R10, off=off) + ins("XOR64_X", R0, R1) + rotate_left(R0, R2, 13)
    return out


SCRATCH = -STACK_BYTES - 8     # r10-72: only the prologue uses it


def opaque_lddw(dst: int, value: int) -> list[isa.Insn]:
    """dst = value, unknown to the kernel verifier: written byte by byte to the scratch
    slot and loaded back as one word, so that the verifier cannot decide the branches
    that depend on it and the kernel really executes them."""
    out = []
    for i in range(8):
        out += ins("ST8", R10, off=SCRATCH + i, imm=(value >> (8 * i)) & 0xFF)
    return out + ins("LDX64", dst, R10, off=SCRATCH)


@st.composite
def random_programs(draw):
    prologue = []
    for reg in range(10):
        init = opaque_lddw if draw(st.booleans()) else lddw
        prologue += init(reg, draw(VALUES_64))
    for off in range(-8, -STACK_BYTES - 1, -8):
        if draw(st.booleans()):
            prologue += ins("STX64", R10, draw(REGS), off=off)
        else:
            prologue += ins("ST64", R10, off=off, imm=draw(IMM32))
    body = draw(st.lists(BODY_INSN, min_size=10, max_size=40))
    slots = []
    for k, (insn,) in enumerate(body):  # every body instruction is one slot
        if isa.lookup(insn).form in (isa.F_JCC_K, isa.F_JCC_X):
            # land inside the body or on the first instruction of the epilogue
            insn = isa.Insn(insn.code, insn.dst, insn.src, min(insn.off, len(body) - 1 - k),
                            insn.imm)
        slots.append(insn)
    return program(prologue, slots, fold_into_r0(), exit_())


@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(code=random_programs())
def test_random_programs_match_the_kernel(code):
    check(code)
