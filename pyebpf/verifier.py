"""Load-time checks on a program's structure.

What it checks, for every program: each slot is an instruction of the table in
:mod:`pyebpf.isa` (opcode, and the discriminating ``src``/``off``/``imm``), registers
are r0-r10 where a field names one, fields an instruction does not use are zero, r10 is
never written, byte-swap widths are 16/32/64, lddw has its second slot intact, every
jump and local call lands on an instruction inside the program (never in the middle of
an lddw), and the last instruction is an ``exit`` or an unconditional jump.

For a program type (the kernel's own rules) it also refuses what the kernel's
verifier refuses at load although the RFC defines a result: shifts by an immediate
outside the operand width, division and modulo by an immediate zero, ``callx``, and
instructions no path reaches.  A data-flow pass over the control-flow graph then
tracks, per register, whether it is initialised and whether it holds the context
pointer, and by how much a constant moved it (through moves and 8-byte stack spills at
fixed ``r10`` offsets), and refuses: reading a register no path initialised ("R2
!read_ok", also after helper calls and ``LD_ABS``/``LD_IND`` clobber r1-r5, and r0 for
cmpxchg), exiting with r0 unset, ``LD_ABS``/``LD_IND`` without the context in r6 or
inside a bpf-to-bpf subprogram, context accesses the program type may not make
(``skb/rules.py``; sign-extending loads are allowed where plain ones are, except of
pointer fields), atomics on the context,
dereferencing a moved context pointer, ALU operations on the context pointer other than
64-bit add and subtract (the kernel's messages), and helpers the program type may not
call (libbpf's CO-RE poison, ``call 0xbad2310``, only where constants from ``mov``
and ``lddw`` do not prove it unreachable).  The 4.6 profile also refuses ``ST`` and sign-extending loads on the context.
The same pass measures each function's stack depth (the lowest byte below ``r10`` it
accesses through ``r10`` or a register holding ``r10`` + constant), and the kernel's
static call-chain check then refuses chains of more than 8 frames, more than 512 bytes
of combined stack (each function's depth rounded up to 16, as with the JIT), and a
tail-calling function entered with 256 bytes or more below it.  Stack accesses through
helper arguments, through a frame pointer passed to a callee or at register offsets are
not counted: the depth pyebpf sees is never more than the kernel's (but on a branch
the kernel proves dead).

What it does not do: the rest of the kernel's abstract interpretation (scalar values
and ranges, pointers other than the context, dead-branch pruning).  So a dereference of
a scalar, of ``sk`` without a NULL check or of a packet pointer without a bounds check
loads here and is refused by the kernel; and, paths being merged, not enumerated, a
register set on only some paths into a read is refused even where the kernel would
prove the other paths dead, as is the context moved by a register (its value is not
known here, even when it is 0).  Memory safety never depends on any of this: the
interpreter checks every access, the context's included, at run time.  It never
rewrites the program.
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


def check(insns: list[isa.Insn], prog_type=None, profile: str = "current"
          ) -> list[isa.Op | None]:
    """Check ``insns`` and return the table entry for each slot (None for lddw tails).

    ``prog_type`` None is the raw mode (RFC semantics); a program type adds the
    kernel's refusals for it under ``profile``.  Raises :class:`VerifierError` naming
    the first offending pc.
    """
    strict = prog_type is not None
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
        _check_ld_abs_in_main(insns, ops)
        flow = _Flow(insns, ops, isa.ProgType(prog_type), profile)
        flow.run()
        _check_call_chains(insns, ops, flow.starts, flow.depths)
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
    if strict and form is isa.F_CALLX:
        raise _reject(f"unknown opcode {insn.code:02x}", pc, insn)   # the kernel's words
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


def _check_ld_abs_in_main(insns: list[isa.Insn], ops: list[isa.Op | None]) -> None:
    # a subprogram runs from a local call's target to the next one; the kernel wants
    # BTF for LD_ABS there, and raw programs have none
    starts = [pc + 1 + insns[pc].imm for pc, op in enumerate(ops)
              if op is not None and op.form is isa.F_CALL_LOCAL]
    first = min((s for s in starts if s > 0), default=len(ops))
    for pc in range(first, len(ops)):
        if ops[pc] is not None and ops[pc].form in (isa.F_LD_ABS, isa.F_LD_IND):
            raise _reject("LD_ABS is not allowed in subprogs without BTF", pc, insns[pc])


# The kernel's check_max_stack_depth: with the JIT (x86-64's default, and this kernel's)
# each function's stack depth is rounded up to 16 bytes (the interpreter rounds
# max(depth, 1) up to 32: never less, so the JIT's rounding refuses nothing the
# interpreter's accepts).
MAX_CALL_FRAMES, MAX_BPF_STACK, _STACK_ROUND = 8, 512, 16
_TAIL_CALL = isa.HELPER_IDS["tail_call"]


def _check_call_chains(insns, ops, starts: list[int], depths: list[int]) -> None:
    """Walk every chain of bpf-to-bpf calls from the program's first function, as the
    kernel's static check does: at most 8 frames, the functions' rounded stack depths
    summing to at most 512 bytes, and no function that tail-calls entered with 256 bytes
    or more of stack below it."""
    from bisect import bisect_right
    calls = [[] for _ in starts]
    tail_calls = [False] * len(starts)
    for pc, op in enumerate(ops):
        func = bisect_right(starts, pc) - 1
        if op is not None and op.form is isa.F_CALL_LOCAL:
            calls[func].append((pc, starts.index(pc + 1 + insns[pc].imm)))
        elif op is not None and op.form is isa.F_CALL and insns[pc].imm == _TAIL_CALL:
            tail_calls[func] = True

    def walk(func: int, frames: int, below: int, pc: int) -> None:
        if func and tail_calls[func] and below >= 256:
            raise _reject(f"tail_calls are not allowed when call stack of previous frames "
                          f"is {below} bytes. Too large", pc, insns[pc])
        depth = below + -(-depths[func] // _STACK_ROUND) * _STACK_ROUND
        if depth > MAX_BPF_STACK:
            raise _reject(f"combined stack size of {frames} calls is {depth}. Too large", pc,
                          insns[pc])
        for call_pc, callee in calls[func]:
            if frames + 1 > MAX_CALL_FRAMES:
                raise _reject(f"the call stack of {frames + 1} frames is too deep", call_pc,
                              insns[call_pc])
            walk(callee, frames + 1, depth, call_pc)

    walk(0, 1, 0, 0)


# Register states of the data-flow pass.  A context pointer moved by a constant is
# (CTX, offset), by an unknown amount (CTX, None); merging two different initialised
# states gives MAYBE_CTX (a moved context wins over CTX: its dereference is refused on
# the path that moved it), and anything merged with UNINIT stays UNINIT (maybe unset).
# A pointer into the function's own stack frame is (FP, offset from r10): what a
# function's stack depth is measured through (a frame pointer handed to a callee is a
# scalar there: the kernel counts those accesses in the caller's frame, pyebpf not).
UNINIT, CTX, SCALAR, MAYBE_CTX, FP = 0, 1, 2, 3, 4
_READS_DST = frozenset({isa.F_ALU_K, isa.F_ALU_X, isa.F_ALU_XOFF_K, isa.F_ALU_XOFF_X,
                        isa.F_NEG, isa.F_END, isa.F_ST, isa.F_STX, isa.F_ATOMIC,
                        isa.F_JCC_K, isa.F_JCC_X, isa.F_CALLX})
_MOVES = ("MOV64_X", "MOV32_X")
_ALU_FORMS = (isa.F_ALU_K, isa.F_ALU_X, isa.F_ALU_XOFF_K, isa.F_ALU_XOFF_X)
# the kernel's bpf_alu_string, by BPF_OP >> 4
_ALU_STRING = ("+=", "-=", "*=", "/=", "|=", "&=", "<<=", ">>=", "neg", "%=", "^=", "=",
               "s>>=", "endian")


def _is_ctx(state) -> bool:
    return state == CTX or isinstance(state, tuple) and state[0] == CTX


def _is_fp(state) -> bool:
    return isinstance(state, tuple) and state[0] == FP


def _merge_reg(x, y):
    if x == y:
        return x
    if UNINIT in (x, y):
        return UNINIT
    if _is_ctx(x) and _is_ctx(y):
        return y if x == CTX else x
    return MAYBE_CTX


def _merge(a: tuple, b: tuple) -> tuple:
    regs = tuple(_merge_reg(x, y) for x, y in zip(a[0], b[0]))
    return regs, {k: v for k, v in a[1].items() if b[1].get(k) == v}


_CONDITIONS = {
    isa.BPF_JEQ: lambda a, b, _s: a == b, isa.BPF_JNE: lambda a, b, _s: a != b,
    isa.BPF_JGT: lambda a, b, _s: a > b, isa.BPF_JGE: lambda a, b, _s: a >= b,
    isa.BPF_JLT: lambda a, b, _s: a < b, isa.BPF_JLE: lambda a, b, _s: a <= b,
    isa.BPF_JSET: lambda a, b, _s: bool(a & b),
    isa.BPF_JSGT: lambda a, b, s: s(a) > s(b), isa.BPF_JSGE: lambda a, b, s: s(a) >= s(b),
    isa.BPF_JSLT: lambda a, b, s: s(a) < s(b), isa.BPF_JSLE: lambda a, b, s: s(a) <= s(b),
}


def _constant_dead(insns, ops) -> set[int]:
    """The pcs no path reaches once conditional jumps on registers holding constants
    (from ``mov`` or ``lddw`` of an immediate) take only their one branch, as the
    kernel's is_branch_taken does.  The kernel tracks far more, so what is dead here
    is dead there too."""
    def signed(bits):
        return lambda v: v - (1 << bits) if v >> (bits - 1) else v
    n = len(ops)
    states: dict[int, tuple] = {0: (None,) * 11}
    todo = [0]
    while todo:
        pc = todo.pop()
        regs = list(states[pc])
        insn, op = insns[pc], ops[pc]
        cls, code = insn.code & 0x07, insn.code & 0xF0
        succs = [pc + op.slots]
        if op.form is isa.F_LDDW:
            regs[insn.dst] = (None if insn.src else
                              (insn.imm & 0xFFFFFFFF) | (insns[pc + 1].imm & 0xFFFFFFFF) << 32)
        elif cls in (isa.BPF_ALU, isa.BPF_ALU64):
            value = (regs[insn.src] if insn.code & isa.BPF_X else insn.imm & (2 ** 64 - 1))
            if code == isa.BPF_MOV and not insn.off and value is not None:
                regs[insn.dst] = value if cls == isa.BPF_ALU64 else value & 0xFFFFFFFF
            else:
                regs[insn.dst] = None
        elif cls == isa.BPF_LDX:
            regs[insn.dst] = None
        elif cls == isa.BPF_STX and insn.code & 0xE0 == isa.BPF_ATOMIC:
            regs[insn.src] = regs[0] = None
        elif cls == isa.BPF_LD:
            regs[:6] = [None] * 6
        elif cls in (isa.BPF_JMP, isa.BPF_JMP32):
            target = _jump_target(op, insn, pc)
            if code == isa.BPF_EXIT:
                succs = []
            elif code == isa.BPF_CALL:
                regs[:6] = [None] * 6
                succs += [target] if target is not None else []
            elif code == isa.BPF_JA:
                succs = [target]
            else:
                a = regs[insn.dst]
                b = regs[insn.src] if insn.code & isa.BPF_X else insn.imm & (2 ** 64 - 1)
                if a is None or b is None or code not in _CONDITIONS:
                    succs.append(target)
                else:
                    bits = 32 if cls == isa.BPF_JMP32 else 64
                    mask = (1 << bits) - 1
                    taken = _CONDITIONS[code](a & mask, b & mask, signed(bits))
                    succs = [target] if taken else succs
        for succ in succs:
            if not 0 <= succ < n:
                continue
            old = states.get(succ)
            new = tuple(regs) if old is None else tuple(
                x if x == y else None for x, y in zip(old, regs))
            if new != old:
                states[succ] = new
                todo.append(succ)
    return {pc for pc in range(n) if ops[pc] is not None and pc not in states}


class _Flow:
    """The data-flow pass over a program's control-flow graph (see the module doc)."""

    def __init__(self, insns, ops, prog_type, profile):
        from .skb import rules
        self.insns, self.ops = insns, ops
        self.prog_type, self.profile, self.rules = prog_type, profile, rules
        self.allowed = rules.helpers_allowed(prog_type, profile)
        # functions: the first instruction and each local call's target; a function's
        # stack depth is the lowest r10-relative byte its instructions access
        self.starts = sorted({0} | {pc + 1 + insns[pc].imm for pc, op in enumerate(ops)
                                    if op is not None and op.form is isa.F_CALL_LOCAL})
        self.depths = [0] * len(self.starts)
        self.poison_dead = None

    def run(self) -> None:
        entry = tuple((FP, 0) if r == 10 else CTX if r == 1 else UNINIT for r in range(11))
        states: dict[int, tuple] = {0: (entry, {})}
        todo = [0]
        while todo:
            pc = todo.pop()
            for succ, state in self.step(pc, states[pc]):
                old = states.get(succ)
                new = state if old is None else _merge(old, state)
                if old is None or new[0] != old[0] or new[1] != old[1]:
                    states[succ] = new
                    todo.append(succ)

    def step(self, pc: int, state: tuple):
        """Check instruction ``pc`` under ``state``; yield (successor, state) pairs."""
        insn, op = self.insns[pc], self.ops[pc]
        form = op.form
        regs, slots = list(state[0]), dict(state[1])

        def read(r):
            if regs[r] == UNINIT:
                raise _reject(f"R{r} !read_ok", pc, insn)

        if form.src:
            read(insn.src)
        if form in _READS_DST and not op.name.startswith("MOV"):
            read(insn.dst)
        if op.name.endswith("CMPXCHG"):
            read(0)
        if form in (isa.F_LD_ABS, isa.F_LD_IND):
            read(6)
            if _is_ctx(regs[6]) and regs[6] != CTX:
                raise _reject("dereference of modified ctx ptr R6 disallowed", pc, insn)
            if regs[6] != CTX:
                raise _reject("at the time of BPF_LD_ABS|IND R6 != pointer to skb", pc, insn)
        if form is isa.F_EXIT:
            read(0)
            return
        self.check_memory(pc, insn, op, regs)

        if form is isa.F_CALL:
            self.check_helper(pc, insn)
        if form in (isa.F_CALL, isa.F_LD_ABS, isa.F_LD_IND, isa.F_CALLX):
            regs[0] = SCALAR
            regs[1:6] = [UNINIT] * 5
        elif form is isa.F_CALL_LOCAL:
            callee = [SCALAR if _is_fp(r) else r for r in regs[:10]] + [regs[10]]
            callee[6:10] = [UNINIT] * 4
            yield pc + 1 + insn.imm, (tuple(callee), {})
            regs[0] = SCALAR
            regs[1:6] = [UNINIT] * 5
        elif form is isa.F_LDX and insn.src == 10 and op.name == "LDX64":
            regs[insn.dst] = slots.get(insn.off, SCALAR)
        elif form in (isa.F_STX, isa.F_ST) and insn.dst == 10:
            spilled = regs[insn.src] if form is isa.F_STX and op.size == 8 else SCALAR
            for k in [k for k in slots if k < insn.off + op.size and insn.off < k + 8]:
                del slots[k]
            if _is_ctx(spilled) or _is_fp(spilled) or spilled == MAYBE_CTX:
                slots[insn.off] = spilled
        elif form is isa.F_ATOMIC:
            if op.disc_value == isa.BPF_CMPXCHG:
                regs[0] = SCALAR
            elif op.disc_value & isa.BPF_FETCH:
                regs[insn.src] = SCALAR
        elif op.name in _MOVES:
            regs[insn.dst] = regs[insn.src] if op.name == "MOV64_X" else SCALAR
        elif form in _ALU_FORMS and not op.name.startswith("MOV") and (
                _is_ctx(regs[insn.dst]) or form.src and _is_ctx(regs[insn.src])):
            regs[insn.dst] = self.pointer_alu(pc, insn, op, regs)
        elif _is_fp(regs[insn.dst]) and form is isa.F_ALU_K and op.is_64 and \
                op.code & 0xF0 in (isa.BPF_ADD, isa.BPF_SUB):
            moved = insn.imm if op.code & 0xF0 == isa.BPF_ADD else -insn.imm
            regs[insn.dst] = (FP, regs[insn.dst][1] + moved)
        elif form.dst and form not in (isa.F_JCC_K, isa.F_JCC_X, isa.F_ST, isa.F_STX,
                                       isa.F_CALLX):
            regs[insn.dst] = SCALAR

        state = (tuple(regs), slots)
        target = _jump_target(op, insn, pc)
        if form is isa.F_CALL_LOCAL:
            yield pc + 1, state
            return
        if target is not None:
            yield target, state
        if form not in (isa.F_JA, isa.F_JA32):
            yield pc + op.slots, state

    def check_memory(self, pc, insn, op, regs) -> None:
        form = op.form
        if form is isa.F_LDX:
            base, write = insn.src, False
        elif form in (isa.F_ST, isa.F_STX, isa.F_ATOMIC):
            base, write = insn.dst, True
        else:
            return
        state = regs[base]
        if _is_fp(state):
            from bisect import bisect_right
            func = bisect_right(self.starts, pc) - 1
            self.depths[func] = max(self.depths[func], -(state[1] + insn.off))
        if not _is_ctx(state):
            return
        if form is isa.F_ATOMIC:
            raise _reject(f"BPF_ATOMIC stores into R{base} ctx is not allowed", pc, insn)
        if form is isa.F_ST and self.profile == "4.6":
            # 4.6 passed these without converting them: they wrote into the raw sk_buff
            raise _reject(f"BPF_ST stores into R{base} ctx are refused: the 4.6 kernel "
                          f"accepted and miscompiled them", pc, insn)
        if state != CTX:
            moved = state[1]
            raise _reject(f"dereference of modified ctx ptr R{base} disallowed (moved by a "
                          f"register)" if moved is None else
                          f"negative offset ctx ptr R{base} off={moved} disallowed" if moved < 0
                          else f"dereference of modified ctx ptr R{base} off={moved} disallowed",
                          pc, insn)
        if op.name.startswith("LDXS") and self.profile == "4.6":
            raise _reject("sign-extending loads from the context do not exist in the 4.6 "
                          "kernel", pc, insn)
        field, reason = self.rules.access_rule(self.prog_type, self.profile, insn.off,
                                               op.size, write)
        if reason is None and op.name.startswith("LDXS") and field.name in \
                self.rules.POINTER_FIELDS:
            reason = f"{field.name} is a pointer; it cannot be sign-extended"
        if reason is not None:
            raise _reject(f"invalid bpf_context access off={insn.off} size={op.size}: "
                          f"{reason}", pc, insn)

    def pointer_alu(self, pc, insn, op, regs):
        """The state an ALU instruction on a context pointer leaves in dst, or the
        kernel's refusal (``adjust_reg_min_max_vals`` for a privileged loader)."""
        alu_op = op.code & 0xF0
        dst, src = regs[insn.dst], regs[insn.src] if op.form.src else SCALAR
        opstr = _ALU_STRING[alu_op >> 4]
        if _is_ctx(dst) and _is_ctx(src):
            if alu_op == isa.BPF_SUB:
                return SCALAR
            raise _reject(f"R{insn.dst} pointer {opstr} pointer prohibited", pc, insn)
        if src in (MAYBE_CTX, UNINIT) or dst in (MAYBE_CTX, UNINIT):
            return SCALAR
        if not op.is_64:
            if alu_op == isa.BPF_SUB:
                return SCALAR
            raise _reject(f"R{insn.dst} 32-bit pointer arithmetic prohibited", pc, insn)
        if alu_op in (isa.BPF_AND, isa.BPF_OR, isa.BPF_XOR):
            raise _reject(f"R{insn.dst} bitwise operator {opstr} on pointer prohibited", pc,
                          insn)
        if alu_op not in (isa.BPF_ADD, isa.BPF_SUB):
            raise _reject(f"R{insn.dst} pointer arithmetic with {opstr} operator prohibited",
                          pc, insn)
        if alu_op == isa.BPF_SUB and _is_ctx(src):
            raise _reject(f"R{insn.dst} tried to subtract pointer from scalar", pc, insn)
        moved = 0 if dst == CTX else dst[1] if _is_ctx(dst) else None
        if op.form is isa.F_ALU_K and moved is not None:
            moved += insn.imm if alu_op == isa.BPF_ADD else -insn.imm
            return CTX if moved == 0 else (CTX, moved)
        # a register operand: pyebpf does not track scalar values, the kernel does
        return (CTX, None)

    def check_helper(self, pc, insn) -> None:
        hid = insn.imm
        if hid == isa.BPF_CORE_POISON_HELPER:
            # libbpf's poison for a CO-RE relocation without a target: the kernel
            # refuses it only on a path its constant tracking does not prune, which is
            # what a bpf_core_field_exists() guard relies on
            if self.poison_dead is None:
                self.poison_dead = _constant_dead(self.insns, self.ops)
            if pc in self.poison_dead:
                return
        if not 0 <= hid <= isa.MAX_HELPER_ID:
            raise _reject(f"invalid func unknown#{hid}", pc, insn)
        if hid not in self.allowed:
            kernel = "the 4.6 kernel" if self.profile == "4.6" else "the kernel"
            raise _reject(f"program of this type cannot use helper "
                          f"bpf_{isa.HELPER_NAMES[hid]}#{hid} ({kernel}, "
                          f"{self.prog_type.name})", pc, insn)
