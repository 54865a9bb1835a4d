"""Load-time checks on a program's structure.

What it checks, for every program: each slot is an instruction of the table in
:mod:`pyebpf.isa` (opcode, and the discriminating ``src``/``off``/``imm``), registers
are r0-r10 where a field names one, fields an instruction does not use are zero, r10 is
never written, byte-swap widths are 16/32/64, lddw has its second slot intact, every
jump and local call lands on an instruction inside the program (never in the middle of
an lddw), and the last instruction is an ``exit`` or an unconditional jump.

With ``strict`` (every typed program: the kernel's own rules) it also refuses what the
kernel's verifier refuses at load although the RFC defines a result: shifts by an
immediate outside the operand width, division and modulo by an immediate zero, and
instructions no path reaches.

What it does not do: the kernel's abstract interpretation (register types, value
ranges, initialised registers and stack, pointer provenance).  Memory safety never
depends on it: the interpreter checks every access at run time.  It never rewrites
the program.
"""
from __future__ import annotations

from . import isa
from .errors import VerifierError

_SHIFT_OPS = (isa.BPF_LSH, isa.BPF_RSH, isa.BPF_ARSH)
_DIV_OPS = (isa.BPF_DIV, isa.BPF_MOD)


def _reject(message: str, pc: int, insn: isa.Insn) -> VerifierError:
    from .asm import disassemble_one
    return VerifierError(message, pc, disassemble_one(insn.pack(), pc=pc))


def _jump_target(op: isa.Op, insn: isa.Insn, pc: int) -> int | None:
    """Absolute target of a jump or local call, or None for any other instruction."""
    if op.form.off is isa.Field.JUMP:
        return pc + 1 + insn.off
    if op.form.imm is isa.Field.JUMP:
        return pc + 1 + insn.imm
    return None


def check(insns: list[isa.Insn], strict: bool = False) -> list[isa.Op | None]:
    """Check ``insns`` and return the table entry for each slot (None for lddw tails).

    Raises :class:`VerifierError` naming the first offending pc.
    """
    n = len(insns)
    if n == 0:
        raise VerifierError("program is empty")
    ops: list[isa.Op | None] = [None] * n
    pc = 0
    while pc < n:
        insn = insns[pc]
        op = isa.lookup(insn)
        if op is None:
            raise _reject(f"unknown opcode {insn.code:#04x}" if insn.code not in isa.OPCODES
                          else f"invalid encoding of opcode {insn.code:#04x}", pc, insn)
        _check_fields(op, insn, pc, strict)
        ops[pc] = op
        if op.form is isa.F_LDDW:
            if pc + 1 >= n:
                raise _reject("lddw is missing its second slot", pc, insn)
            tail = insns[pc + 1]
            if tail.code or tail.dst or tail.src or tail.off:
                raise _reject("invalid second slot of lddw", pc + 1, tail)
            pc += 2
        else:
            pc += 1

    for pc, op in enumerate(ops):
        if op is None:
            continue
        target = _jump_target(op, insns[pc], pc)
        if target is None:
            continue
        if not 0 <= target < n:
            raise _reject(f"jump out of range to pc {target}", pc, insns[pc])
        if ops[target] is None:
            raise _reject(f"jump into the middle of lddw at pc {target - 1}", pc, insns[pc])

    last = max(i for i, op in enumerate(ops) if op is not None)
    if ops[last].form not in (isa.F_EXIT, isa.F_JA, isa.F_JA32):
        raise _reject("last instruction is not an exit or jmp", last, insns[last])
    if strict:
        _check_reachable(insns, ops)
    return ops


def _check_fields(op: isa.Op, insn: isa.Insn, pc: int, strict: bool) -> None:
    form = op.form
    for name, used in (("dst_reg", form.dst), ("src_reg", form.src)):
        value = getattr(insn, name[:3])
        if used and value >= isa.MAX_BPF_REG:
            raise _reject(f"invalid register r{value} in {name}", pc, insn)
        if not used and value and op.disc != name[:3]:
            raise _reject(f"reserved field {name} is not zero", pc, insn)
    for name, kind in (("off", form.off), ("imm", form.imm)):
        if kind is isa.Field.UNUSED and getattr(insn, name) and op.disc != name:
            raise _reject(f"reserved field {name} is not zero", pc, insn)
    writes_dst = form in (isa.F_ALU_K, isa.F_ALU_X, isa.F_ALU_SX, isa.F_ALU_XOFF_K,
                          isa.F_ALU_XOFF_X, isa.F_NEG, isa.F_END, isa.F_LDDW, isa.F_LDX)
    if writes_dst and insn.dst == isa.BPF_REG_10:
        raise _reject("frame pointer r10 is read only", pc, insn)
    if form is isa.F_ATOMIC and op.disc_value & isa.BPF_FETCH and insn.src == isa.BPF_REG_10:
        raise _reject("frame pointer r10 is read only", pc, insn)
    if not strict or form is not isa.F_ALU_K:
        return
    alu_op = op.code & 0xF0
    width = 64 if op.is_64 else 32
    if alu_op in _SHIFT_OPS and not 0 <= insn.imm < width:
        raise _reject(f"invalid shift {insn.imm}", pc, insn)
    if alu_op in _DIV_OPS and insn.imm == 0:
        raise _reject("div by zero", pc, insn)


def _check_reachable(insns: list[isa.Insn], ops: list[isa.Op | None]) -> None:
    seen = [False] * len(ops)
    todo = [0]
    while todo:
        pc = todo.pop()
        if seen[pc]:
            continue
        seen[pc] = True
        op = ops[pc]
        target = _jump_target(op, insns[pc], pc)
        if target is not None:
            todo.append(target)
        if op.form in (isa.F_EXIT, isa.F_JA, isa.F_JA32):
            continue
        todo.append(pc + op.slots)
    for pc, op in enumerate(ops):
        if op is not None and not seen[pc]:
            raise _reject(f"unreachable insn {pc}", pc, insns[pc])
