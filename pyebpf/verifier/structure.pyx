# cython: annotation_typing=False, boundscheck=True, wraparound=True, cdivision=False
"""The kernel's static checks on a program's structure, before any path is explored.

For every program: each slot is an instruction of the table in :mod:`pyebpf.isa`
(opcode, and the discriminating ``src``/``off``/``imm``), registers are r0-r10 where a
field names one, fields an instruction does not use are zero, r10 is never written,
byte-swap widths are 16/32/64, lddw has its second slot intact, every jump and local
call lands on an instruction inside the program (never in the middle of an lddw), and
the last instruction is an ``exit`` or an unconditional jump.  For a program type
(``check_cfg`` and ``check_subprogs``) also: ``callx`` is refused, every instruction
is reachable, ``LD_ABS``/``LD_IND`` stay out of subprograms (raw programs have no BTF),
and, after the paths were explored, the call chains' frames and stack sizes
(:func:`check_call_chains`).
"""
from __future__ import annotations

from cpython.long cimport PyLong_FromVoidPtr

from .. import isa
from ..errors import VerifierError
from .errnos import errno_of
from .isaconst cimport (BPF_FETCH, BPF_PSEUDO_FUNC, BPF_REG_10, FIELD_JUMP, FIELD_UNUSED,
                        F_ADDR_SPACE_CAST, F_ALU_K, F_ALU_SX, F_ALU_X, F_ALU_XOFF_K,
                        F_ALU_XOFF_X, F_ATOMIC,
                        F_CALL, F_CALLX, F_CALL_LOCAL, F_END, F_EXIT, F_JA, F_JA32, F_LDDW,
                        F_LDX, F_LD_ABS, F_LD_IND, F_NEG, MAX_BPF_REG)


def _reject(message: str, pc: int, insn: isa.Insn) -> VerifierError:
    from ..asm import disassemble_one
    return VerifierError(message, pc, disassemble_one(insn.pack(), pc=pc),
                         errno=errno_of(message))


cpdef writes_r10(op: isa.Op, insn: isa.Insn):
    """Whether the instruction writes the read-only frame pointer r10."""
    if op.form is F_ATOMIC:
        return bool(op.disc_value & BPF_FETCH) and insn.src == BPF_REG_10
    return op.form in _WRITES_DST and insn.dst == BPF_REG_10


# a set: one hash per look-up (forms compare by identity), not a comparison per member
_WRITES_DST = frozenset((F_ALU_K, F_ALU_X, F_ALU_SX, F_ALU_XOFF_K, F_ALU_XOFF_X,
                         F_NEG, F_END, F_LDDW, F_LDX, F_ADDR_SPACE_CAST))


cpdef function_start(op: isa.Op | None, insn: isa.Insn, pc: int):
    """The function a local call calls or an lddw of a function (a callback,
    BPF_PSEUDO_FUNC) names, or None."""
    if op is None:
        return None
    if op.form is F_CALL_LOCAL or (op.form is F_LDDW and
                                       op.disc_value == BPF_PSEUDO_FUNC):
        return pc + 1 + insn.imm
    return None


def check(insns: list[isa.Insn], prog_type=None, btf: bool = False,
          walked: bool = False, exception_cb: int = 0) -> list[isa.Op | None]:
    """Check ``insns`` and return the table entry for each slot (None for lddw tails).

    ``prog_type`` None is the raw mode (RFC semantics); a program type adds the
    kernel's static refusals (``btf``: the program came with BTF function info, which
    lets subprograms use ``LD_ABS``).  ``walked``: the verifier's path walk follows,
    and refuses a write to r10 where a path reaches it, as the kernel does
    (check_reg_arg); without the walk every such write is refused here.
    ``exception_cb``: the exception callback's first pc (0: none), which the control
    flow is walked from too (check_cfg).  Raises
    :class:`VerifierError` naming the first offending pc.
    """
    strict = prog_type is not None
    n = len(insns)
    if n == 0:
        raise VerifierError("program is empty", errno=errno_of("program is empty"))
    ops: list[isa.Op | None] = [None] * n
    # typed: their look-ups are C calls, not a method call a slot
    cdef dict passed = _PASSED[strict, walked]
    if len(passed) >= _PASSED_MAX:
        passed.clear()
    cdef dict seen = _SEEN[strict, walked]
    if len(seen) >= _PASSED_MAX:
        seen.clear()
    # per slot, its facts (_facts) and its jump's or named function's target relative
    # to it: each later pass reads these, not the table entry's attributes
    cdef bytearray flag_buf = bytearray(n)
    cdef unsigned char *flags = flag_buf
    cdef list rels = [0] * n
    cdef Py_ssize_t pc = 0, target, last
    cdef int f
    while pc < n:
        insn = insns[pc]
        # the Insn objects of slots already checked, by identity (isa.unpack_program
        # gives the same object for the same bytes): reading its five fields from here
        # is five generic attribute look-ups
        # the object's address, as id() gives it without a call of a builtin
        addr = PyLong_FromVoidPtr(<void*>insn)
        hit = seen.get(addr)
        if hit is None or (<tuple>hit)[0] is not insn:
            # keyed by the fields: an Insn's own hash is a Python call (a dataclass's)
            key = (insn.code, insn.dst, insn.src, insn.off, insn.imm)
            op = passed.get(key)
            if op is None:
                op = isa.lookup(insn)
                if op is None:
                    raise _reject(f"unknown opcode {insn.code:#04x}"
                                  if insn.code not in isa.OPCODES
                                  else f"invalid encoding of opcode {insn.code:#04x}", pc,
                                  insn)
                _check_fields(op, insn, pc, strict, walked)
                passed[key] = op
            # the entry holds the Insn, so its id names no other object while it is here
            hit = seen[addr] = (insn, op) + _facts(op, insn)
        ops[pc] = (<tuple>hit)[1]
        f = (<tuple>hit)[2]
        flags[pc] = f
        rels[pc] = (<tuple>hit)[3]
        if f & LDDW:
            if pc + 1 >= n:
                raise _reject("lddw is missing its second slot", pc, insn)
            tail = insns[pc + 1]
            if tail.code or tail.dst or tail.src or tail.off:
                raise _reject("invalid second slot of lddw", pc + 1, tail)
            flags[pc + 1] = TAIL
            pc += 2
        else:
            pc += 1

    for pc in range(n):
        if not flags[pc] & JUMP:
            continue
        target = pc + <Py_ssize_t>rels[pc]
        if not 0 <= target < n:
            raise _reject(f"jump out of range to pc {target}", pc, insns[pc])
        if flags[target] & TAIL:
            raise _reject(f"jump into the middle of lddw at pc {target - 1}", pc, insns[pc])

    last = n - 1 if not flags[n - 1] & TAIL else n - 2     # an lddw's second slot
    if not flags[last] & STOP:
        raise _reject("last instruction is not an exit or jmp", last, insns[last])
    if strict:
        _check_reachable(insns, flag_buf, rels, exception_cb)
        if not btf:
            _check_abnormal_return(insns, flag_buf, rels)
    return ops


# _facts' bits: the slot jumps or names a function at its relative target (JUMP), does
# not fall through (STOP: exit, ja, gotol), falls through too (COND: conditional jumps,
# may_goto), is a local call or an lddw of a function (FUNC: its target starts a
# function), an lddw (LDDW) or its second slot (TAIL), LD_ABS or LD_IND (LD_ABS) or a
# helper call of bpf_tail_call (TAIL_CALL)
cdef enum:
    JUMP = 1
    STOP = 2
    COND = 4
    FUNC = 8
    LDDW = 16
    TAIL = 32
    LD_ABS = 64
    TAIL_CALL = 128


cdef tuple _facts(op, insn):
    """(flags, relative target) of a slot of ``op``."""
    form = op.form
    cdef int flags = 0
    cdef long long rel = 0
    if form.off is FIELD_JUMP:              # ja, conditional jumps, may_goto
        flags, rel = JUMP, 1 + insn.off
        flags |= STOP if form is F_JA else COND
    elif form.imm is FIELD_JUMP:            # gotol, local calls
        flags, rel = JUMP, 1 + insn.imm
        flags |= STOP if form is F_JA32 else FUNC
    elif form is F_LDDW:
        flags = LDDW
        if op.disc_value == BPF_PSEUDO_FUNC:
            flags, rel = LDDW | JUMP | FUNC, 1 + insn.imm
    elif form is F_EXIT:
        flags = STOP
    elif form is F_LD_ABS or form is F_LD_IND:
        flags = LD_ABS
    elif form is F_CALL and not op.disc_value and insn.imm == _TAIL_CALL:
        flags = TAIL_CALL
    return flags, rel


# per (strict, walked), the slots (by their fields) that passed and their table entries: the
# checks depend on the slot alone, and a process loads the same slots again and again
_PASSED = {(strict, walked): {} for strict in (False, True) for walked in (False, True)}
_PASSED_MAX = 65536
# the same by the Insn objects that passed: address (id) -> (the Insn, its table entry,
# its _facts)
_SEEN = {(strict, walked): {} for strict in (False, True) for walked in (False, True)}


def _check_fields(op: isa.Op, insn: isa.Insn, pc: int, strict: bool, walked: bool) -> None:
    form = op.form
    for name, used in (("dst_reg", form.dst), ("src_reg", form.src)):
        value = getattr(insn, name[:3])
        if used and value >= MAX_BPF_REG:
            raise _reject(f"invalid register r{value} in {name}", pc, insn)
        if not used and value and op.disc != name[:3]:
            raise _reject(f"reserved field {name} is not zero", pc, insn)
    for name, kind in (("off", form.off), ("imm", form.imm)):
        if kind is FIELD_UNUSED and getattr(insn, name) and op.disc != name:
            raise _reject(f"reserved field {name} is not zero", pc, insn)
    if not walked and writes_r10(op, insn):
        raise _reject("frame pointer r10 is read only", pc, insn)
    if strict and form is F_CALLX:
        raise _reject(f"unknown opcode {insn.code:02x}", pc, insn)   # the kernel's words


def _check_reachable(insns: list[isa.Insn], bytearray flag_buf, list rels,
                     exception_cb) -> None:
    # each straight run is followed to its end, the other edges kept for later (check
    # has made sure that every edge lands on an instruction and that the last one does
    # not fall through); the flags read through a pointer (a typed memoryview costs
    # more to make than the whole walk of a small program)
    cdef const unsigned char *flags = flag_buf
    cdef Py_ssize_t n = len(flag_buf), pc
    cdef bytearray seen_buf = bytearray(n)
    cdef unsigned char *seen = seen_buf
    cdef unsigned char f
    todo = [exception_cb, 0] if exception_cb else [0]
    while todo:
        pc = todo.pop()
        while not seen[pc]:
            seen[pc] = 1
            f = flags[pc]
            if f & JUMP:
                todo.append(pc + <Py_ssize_t>rels[pc])
            if f & STOP:
                break
            pc += 2 if f & LDDW else 1
    for pc in range(n):
        if not flags[pc] & TAIL and not seen[pc]:
            raise _reject(f"unreachable insn {pc}", pc, insns[pc])


def _check_abnormal_return(insns: list[isa.Insn], bytearray flag_buf, list rels) -> None:
    # check_abnormal_return: a subprogram runs from a local call's target to the next
    # one; the kernel wants BTF for LD_ABS or a tail call there, and raw programs have
    # none.  Each subprogram in turn, LD_ABS asked about first.
    cdef const unsigned char *flags = flag_buf
    cdef Py_ssize_t n = len(flag_buf), pc
    starts = sorted({pc + <Py_ssize_t>rels[pc] for pc in range(n) if flags[pc] & FUNC}
                    - {0})
    for start, end in zip(starts, starts[1:] + [n]):
        for pc in range(start, end):
            if flags[pc] & LD_ABS:
                raise _reject("LD_ABS is not allowed in subprogs without BTF", pc, insns[pc])
        for pc in range(start, end):
            if flags[pc] & TAIL_CALL:
                raise _reject("tail_call is not allowed in subprogs without BTF", pc,
                              insns[pc])


# The kernel's check_max_stack_depth: with the JIT (x86-64's default, and this kernel's)
# each function's stack depth is rounded up to 16 bytes (the interpreter rounds
# max(depth, 1) up to 32: never less, so the JIT's rounding refuses nothing the
# interpreter's accepts).
MAX_CALL_FRAMES, MAX_BPF_STACK, _STACK_ROUND = 8, 512, 16
_TAIL_CALL = isa.HELPER_IDS["tail_call"]


def _walk_chain(insns, list calls, list tail_calls, depths, async_cbs, int func,
                int frames, int below, int pc, bint callback=False,
                bint in_callback=False):
    """check_call_chains' walk of the calls from ``func``, entered ``frames`` deep with
    ``below`` bytes of stack under it (a function of the module, not a closure: a
    recursive closure is a reference cycle, left to the garbage collector at every
    load)."""
    if tail_calls[func] and callback:
        raise _reject("verifier bug: callback unexpected regs 1", pc, insns[pc])
    if tail_calls[func] and in_callback:
        raise _reject("cannot tail call within callback", pc, insns[pc])
    if func and tail_calls[func] and below >= 256:
        raise _reject(f"tail_calls are not allowed when call stack of previous frames "
                      f"is {below} bytes. Too large", pc, insns[pc])
    depth = below + -(-depths[func] // _STACK_ROUND) * _STACK_ROUND
    if depth > MAX_BPF_STACK:
        raise _reject(f"combined stack size of {frames} calls is {depth}. Too large", pc,
                      insns[pc])
    for call_pc, callee, by_address in calls[func]:
        if by_address and callee in async_cbs:
            continue
        if frames + 1 > MAX_CALL_FRAMES:
            raise _reject(f"the call stack of {frames + 1} frames is too deep", call_pc,
                          insns[call_pc])
        _walk_chain(insns, calls, tail_calls, depths, async_cbs, callee, frames + 1, depth,
                    call_pc, by_address, in_callback or callback)


def check_call_chains(insns, ops, starts: list[int], depths: list[int],
                      exception_cb: int = 0, async_cbs=frozenset()) -> None:
    """Walk every chain of bpf-to-bpf calls from the program's first function, and from
    its exception callback (``exception_cb``, its first pc; 0: none), as the kernel's
    static check does: at most 8 frames, the functions' rounded stack depths summing to
    at most 512 bytes, and no function that tail-calls entered with 256 bytes or more of
    stack below it.  A callback may not tail-call: the kernel refuses a tail call in a
    function a callback calls ("cannot tail call within callback": the x86-64 JIT's tail
    call would return into the helper that called the callback), and one in the callback
    itself trips its precision backtracking, which it reports as a verifier bug
    (backtrack_insn, EFAULT).  An async callback (``async_cbs``: the indexes of the
    functions a timer, bpf_wq or task work runs) is a chain of its own, not counted
    where its address is taken (check_max_stack_depth_subprog's is_async_cb)."""
    from bisect import bisect_right
    calls = [[] for _ in starts]
    tail_calls = [False] * len(starts)
    for pc, op in enumerate(ops):
        if op is None:
            continue
        form = op.form
        if form is F_CALL_LOCAL or form is F_LDDW:
            target = function_start(op, insns[pc], pc)
            if target is not None:
                # a callback counts as called from where its address is taken, as in
                # the kernel's check_max_stack_depth
                calls[bisect_right(starts, pc) - 1].append(
                    (pc, starts.index(target), form is F_LDDW))
        elif form is F_CALL and not op.disc_value and insns[pc].imm == _TAIL_CALL:
            # a helper call: a kfunc's number (bpf_dynptr_size's) may be tail_call's
            tail_calls[bisect_right(starts, pc) - 1] = True

    _walk_chain(insns, calls, tail_calls, depths, async_cbs, 0, 1, 0, 0)
    for func in sorted(async_cbs):
        _walk_chain(insns, calls, tail_calls, depths, async_cbs, func, 1, 0, starts[func])
    if exception_cb:
        _walk_chain(insns, calls, tail_calls, depths, async_cbs, starts.index(exception_cb),
                    1, 0, exception_cb)
