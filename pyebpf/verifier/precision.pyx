# cython: annotation_typing=False, boundscheck=True, wraparound=True, cdivision=False
"""Precision tracking: which scalars of a checkpoint a later decision depended on
(the kernel's ``mark_chain_precision``, ``backtrack_insn`` and ``propagate_precision``
in ``kernel/bpf/verifier.c``).

A privileged loader's scalars start imprecise.  When a decision depends on a scalar's
value (a branch its bounds decide, pointer arithmetic with it, a helper's size
argument), the instructions of the path are walked back from there to find the
registers and stack slots that value came from, and each checkpoint on the way marks
those of its scalars precise.  A finished checkpoint then prunes a path whose other
scalars differ (``regsafe`` with ``NOT_EXACT``), and a pruned path takes on the marks
of the checkpoint that pruned it.

The walk follows every frame of the path, as the kernel's ``backtrack_state`` does:
back over a static function's ``exit`` into the function (the caller's R0 was its
R0), back over the call into the caller (its R1-R5 were the arguments), through
stack slots of any frame a constant stack pointer reached, and round loops (the
path's instructions are kept in order, back-edges included).  It covers programs
without callbacks, kfuncs or iterators (:func:`applies`); elsewhere every scalar
counts as precise, which prunes less than the kernel and never more.  Where the walk
meets what it does not follow (``LD_ABS``/``LD_IND``, a value older than
the first instruction), it marks every scalar of every checkpoint on the path, as
the kernel's ``mark_all_scalars_precise`` does.
"""
from __future__ import annotations

cimport cython

from .. import isa
from .isaconst cimport (BPF_MOV, F_ADDR_SPACE_CAST, F_ALU_K, F_ALU_SX, F_ALU_X, F_ALU_XOFF_K, F_ALU_XOFF_X,
                        F_CALL, F_CALLX, F_CALL_LOCAL, F_END, F_EXIT, F_JA, F_JA32, F_JCC_K,
                        F_JCC_X, F_LDDW, F_LDX, F_LD_ABS, F_LD_IND, F_MAY_GOTO, F_NEG,
                        F_ST, F_STX, F_ATOMIC)
from .reg cimport Reg
from .state cimport Frame, VState
from .backtrack cimport skip_back
from .backtrack import SKIP, SKIP_UNLESS_DST, STOP
from .log import frame_text, insn_text
from .state import BPF_ADD_CONST, SCALAR, STACK_SPILL, VState
from .timers import ASYNC_CALLBACKS


_ALU = frozenset((F_ALU_K, F_ALU_X, F_ALU_SX, F_ALU_XOFF_K,
                  F_ALU_XOFF_X, F_NEG, F_END, F_ADDR_SPACE_CAST))
_ARGS = frozenset(range(1, 6))
_PASS = frozenset((F_JCC_K, F_JA, F_JA32, F_MAY_GOTO))


def applies(interp) -> bool:
    """Whether ``interp``'s program is one the walk follows (see the module)."""
    if interp.unpriv or interp.profile != "current":
        return False
    return not any(op is not None and op.form is F_CALLX for op in interp.ops)


def skip_table(insns, ops) -> tuple[bytes, bytes]:
    """Per instruction, what :func:`_walk` may pass over without ``_backtrack`` (its
    kind for ``backtrack.skip_back``) and its destination register."""
    cdef Py_ssize_t pc, n = len(ops)
    cdef bytearray kinds = bytearray(n), dsts = bytearray(n)
    cdef unsigned char *k = kinds
    cdef unsigned char *d = dsts
    # the kinds as C values (module globals are a dictionary lookup each)
    cdef unsigned char skip = SKIP, skip_unless_dst = SKIP_UNLESS_DST, stop = STOP
    for pc in range(n):
        op = ops[pc]
        if op is None:
            k[pc] = stop
            continue
        f = op.form
        if f is F_JCC_K or f is F_JA or f is F_JA32 or f is F_MAY_GOTO or \
                f is F_ALU_K and op.code & 0xF0 != BPF_MOV:
            k[pc] = skip
        elif f is F_ALU_K or f is F_ALU_X or f is F_ALU_SX or f is F_ALU_XOFF_K or \
                f is F_ALU_XOFF_X or f is F_NEG or f is F_END or f is F_ADDR_SPACE_CAST:
            k[pc] = skip_unless_dst
        else:
            k[pc] = stop
        d[pc] = insns[pc].dst
    return bytes(kinds), bytes(dsts)


@cython.final
cdef class _Walk:
    """backtrack_state: per frame of the path, the registers and stack slots whose
    values are still to be found; ``fr`` the frame the walk is in.  A C type, its
    fields read directly: a walk is made at every decision a scalar's value makes (a
    loop's every bounded branch)."""
    cdef public list regs, slots
    cdef public Py_ssize_t fr

    def __init__(self, Py_ssize_t nframes):
        self.regs = [set() for _ in range(nframes)]
        self.slots = [set() for _ in range(nframes)]
        self.fr = nframes - 1

    cpdef bint empty(self):
        return not any(self.regs) and not any(self.slots)


def mark(interp, st: VState, regs=(), slots=(), frame: int | None = None) -> None:
    """mark_chain_precision: the scalars ``regs`` (register numbers of ``st``'s
    current frame) and ``slots`` (stack slot indices of frame ``frame``, the current
    one by default) were needed precisely at its current instruction."""
    cdef _Walk w = _Walk(len(st.frames))
    w.regs[w.fr].update(regs)
    w.slots[w.fr if frame is None else frame].update(slots)
    _walk(interp, st, w)


def propagate(interp, VState old, VState cur) -> None:
    """propagate_precision: ``cur``, pruned by ``old``, needs what ``old`` marked."""
    cdef _Walk w = None     # made at the first mark found: most prunes find none
    cdef Frame frame
    cdef Reg reg
    cdef Py_ssize_t r, fr, n = len(old.frames)
    cdef list regs
    for fr in range(n):
        frame = old.frames[fr]
        regs = frame.regs
        for r in range(10):     # a C loop over the registers: one at every prune
            reg = regs[r]
            if reg.precise and reg.type == SCALAR:
                if w is None:
                    w = _Walk(len(cur.frames))
                w.regs[fr].add(r)
        if frame.stack:
            for spi, s in frame.stack.items():
                if s.spill is not None and s.spill.type == SCALAR and s.spill.precise and \
                        STACK_SPILL in s.kinds:
                    if w is None:
                        w = _Walk(len(cur.frames))
                    w.slots[fr].add(spi)
    if w is None:
        return
    log = interp.log
    if log.level >= 2:
        for fr in range(len(old.frames) - 1, -1, -1):
            names = [f"r{r}" for r in sorted(w.regs[fr])] + \
                [f"fp{-(spi + 1) * 8}" for spi in sorted(w.slots[fr])]
            if names:
                log.add(f"frame {fr}: propagating {','.join(names)}")
    _walk(interp, cur, w)


def _walk(interp, VState st, _Walk w) -> None:
    """__mark_chain_precision: back through ``st``'s instructions and checkpoints."""
    cdef VState p
    cdef Frame frame
    insns, ops, globals_ = interp.insns, interp.ops, interp.globals
    kinds, dsts = interp.skip_table
    log = interp.log if interp.log.level >= 2 else None
    calls_cb = interp.callback_calls
    hist, p = st.hist, st.parent
    last, first, subseq = interp.pc, _first(st, interp.pc), -1
    later = interp.pc       # the instruction run after the last of ``hist``
    while True:
        if log:
            log.add(f"mark_precise: frame{w.fr}: last_idx {last} first_idx {first} "
                    f"subseq_idx {subseq} ")
        n = len(hist)
        i = n - 1
        while i >= 0:
            if log:
                pc = _pc(hist[i])
                log.add(f"mark_precise: frame{w.fr}: regs={_regs_text(w.regs[w.fr])} "
                        f"stack={_slots_text(w.slots[w.fr])} before {pc}: "
                        f"{insn_text(insns, pc)}")
            else:
                # what most instructions walked back are: a jump, ALU on a register not
                # wanted or ``d op= imm``, which change nothing wanted (a loop walks many)
                i = skip_back(hist, i, kinds, dsts, w.regs[w.fr])
                if i < 0:
                    break
            nxt = _pc(hist[i + 1]) if i + 1 < n else later
            if not _backtrack(insns, ops, globals_, hist[i], w, nxt, calls_cb):
                mark_all(st, log)
                return
            if not w.regs[w.fr] and w.empty():
                return
            i -= 1
        if p is None:
            if interp.in_global and not hist and w.fr == 0 and not any(w.slots) and \
                    w.regs[0] <= _ARGS:
                # a global function's arguments: its prototype's to give, where the
                # walk reached its entry checkpoint (the kernel's last_idx < 0); from
                # a first state that ran instructions the kernel falls back
                return
            # something older than the first instruction: the kernel gives up too
            mark_all(st, log)
            return
        assert len(p.frames) == w.fr + 1, (p.insn, len(p.frames), w.fr)
        for fr in range(w.fr, -1, -1):
            frame, regs, slots = p.frames[fr], w.regs[fr], w.slots[fr]
            for r in list(regs):
                reg = frame.regs[r]
                if reg.type != SCALAR or reg.precise:
                    regs.discard(r)
                else:
                    reg.precise = True
            for spi in list(slots):
                s = frame.stack.get(spi)
                if s is None or s.spill is None or s.spill.type != SCALAR or \
                        STACK_SPILL not in s.kinds or s.spill.precise:
                    slots.discard(spi)
                else:
                    s.spill.precise = True
            if log:
                log.add(f"mark_precise: frame{fr}: parent state regs={_regs_text(regs)} "
                        f"stack={_slots_text(slots)}: {frame_text(frame, p)}")
        if w.empty():
            return
        subseq = first
        if hist:
            later = _pc(hist[0])
        last, first = (_pc(p.hist[-1]), _first(p, -1)) if p.hist else (-1, -1)
        hist, p = p.hist, p.parent


cdef inline object _pc(entry):
    return entry if type(entry) is int else entry[0]


cdef object _first(VState st, int empty):
    """The state's first_insn_idx as the walk's header prints it: its first
    instruction (``empty`` where it has none); 0 for an async callback's first
    state, which push_async_cb leaves unset."""
    if st.parent is None and st.frames[0].in_callback in ASYNC_CALLBACKS:
        return 0
    return _pc(st.hist[0]) if st.hist else empty


def _regs_text(regs) -> str:
    return ",".join(f"r{r}" for r in sorted(regs))


def _slots_text(slots) -> str:
    return ",".join(str(-(spi + 1) * 8) for spi in sorted(slots))


def mark_all(st: VState, log=None) -> None:
    """mark_all_scalars_precise: every scalar of every checkpoint ``st`` descends from."""
    if log:
        log.add(f"mark_precise: frame{len(st.frames) - 1}: falling back to forcing all "
                f"scalars precise")
    p = st.parent
    while p is not None:
        for fr, f in enumerate(p.frames):
            for i, r in enumerate(f.regs[:10]):
                if r.type == SCALAR and not r.precise:
                    r.precise = True
                    if log:
                        log.add(f"force_precise: frame{fr}: forcing r{i} to be precise")
            for spi in sorted(f.stack):
                s = f.stack[spi]
                if s.spill is not None and s.spill.type == SCALAR and not s.spill.precise:
                    s.spill.precise = True
                    if log:
                        log.add(f"force_precise: frame{fr}: forcing fp{-(spi + 1) * 8} "
                                f"to be precise")
        p = p.parent


cdef bint _backtrack(insns, ops, globals_, entry, _Walk w, nxt, calls_cb) except -1:
    """backtrack_insn: what the needed registers and slots after the instruction
    ``entry`` were made of before it (``nxt``: the instruction run after it);
    False where the walk cannot follow."""
    if type(entry) is tuple:
        pc, linked, slot = entry
    else:
        pc, linked, slot = entry, None, None
    if linked is not None:
        _sync_linked(linked, w)
    insn, op = insns[pc], ops[pc]
    f = op.form
    fr = w.fr
    regs = w.regs[fr]
    if f in _ALU:
        d = insn.dst
        if d not in regs:
            return True
        if op.code & 0xF0 == BPF_MOV and f in (F_ALU_K, F_ALU_X, F_ALU_SX, F_ADDR_SPACE_CAST):
            regs.discard(d)         # d = imm or d = src: d's old value is not needed
            if f is not F_ALU_K:
                regs.add(insn.src)
        elif f.src:
            regs.add(insn.src)      # d op= src: both
    elif f is F_LDX:
        if insn.dst in regs:
            regs.discard(insn.dst)
            if slot is not None:
                w.slots[slot[0]].add(slot[1])   # a fill: the value was the slot's
    elif f is F_STX or f is F_ST:
        if slot is not None and slot[1] in w.slots[slot[0]]:
            w.slots[slot[0]].discard(slot[1])
            if f is F_STX:
                regs.add(insn.src)  # a spill: the slot's value was the register's
    elif f is F_LDDW:
        regs.discard(insn.dst)
    elif f is F_CALL_LOCAL and pc + 1 + insn.imm in globals_:
        regs.discard(0)             # a global function's result; r1-r5 are clobbered
        if regs & _ARGS:
            return False
    elif f is F_CALL_LOCAL:
        # back into the caller: the callee's arguments were the caller's R1-R5, and
        # nothing else of the callee's existed before the call
        if regs - _ARGS or w.slots[fr]:
            return False
        w.regs.pop()
        w.slots.pop()
        w.fr -= 1
        w.regs[w.fr] |= regs
    elif f is F_EXIT:
        # back into the function that returned: the caller's R0 was its R0; the
        # caller's R1-R5 were clobbered by the return.  A callback returns to the
        # helper that called it, which sets the caller's R0 itself; the caller's
        # R1-R5 stay wanted through the callback's body, back to the call (the 6.18
        # kernel's log walks the body with them)
        callback = nxt in calls_cb
        if regs & _ARGS and not callback:
            return False
        inner = {0} if 0 in regs and not callback else set()
        regs.discard(0)
        w.regs.append(inner)
        w.slots.append(set())
        w.fr += 1
    elif f is F_CALL and nxt != pc + 1 and pc in calls_cb:
        # back out of a callback into the helper call that queued it: its arguments
        # were the helper's to give; a slot of its own cannot have been older
        if regs - _ARGS or w.slots[fr]:
            return False
        w.regs.pop()
        w.slots.pop()
        w.fr -= 1
    elif f is F_CALL:
        regs.discard(0)             # the helper's result; r1-r5 are clobbered
        if regs & _ARGS:
            return False
    elif f is F_JCC_X:
        if insn.dst in regs or insn.src in regs:
            regs.add(insn.dst)
            regs.add(insn.src)
    elif f is F_ATOMIC:
        # a fetch loads the old value into its register (R0 for cmpxchg) as BPF_LDX
        # does (is_atomic_fetch_insn); the others store no register's value: the
        # kernel follows them as BPF_STX without a spill, giving up only where the
        # address is a needed scalar
        if insn.imm & isa.BPF_FETCH:
            load = 0 if insn.imm == isa.BPF_CMPXCHG else insn.src
            if load in regs:
                regs.discard(load)
                if slot is not None:
                    w.slots[slot[0]].add(slot[1])
        elif insn.dst in regs:
            return False
    elif f is F_LD_ABS or f is F_LD_IND:
        # the packet's bytes cannot be followed back, but the walk passes a load whose
        # register (R0: check_ld_abs refuses others) is not wanted: backtrack_insn's
        # BPF_LD case gives up only for its dreg
        if insn.dst in regs:
            return False
    elif f not in _PASS:
        return False
    if linked is not None:
        _sync_linked(linked, w)
    return True


cdef _sync_linked(linked, _Walk w):
    """bt_sync_linked_regs: scalars a conditional jump bounded together (one id) are
    needed together, in whichever frames they are."""
    lregs, lslots = linked
    if any(r in w.regs[fr] for fr, r in lregs) or \
            any(spi in w.slots[fr] for fr, spi in lslots):
        for fr, r in lregs:
            w.regs[fr].add(r)
        for fr, spi in lslots:
            w.slots[fr].add(spi)


def linked_at(st: VState, regs, live) -> tuple | None:
    """collect_linked_regs: the registers (those ``live`` holds, per frame) and stack
    slots of every frame sharing an id with the scalar registers ``regs`` (as
    ``(frame, number)`` pairs), or None when no scalar is linked."""
    cdef Reg reg
    for reg in regs:
        if reg.id and reg.type == SCALAR:
            break
    else:
        return None     # (most branches: no linked scalar to look for)
    ids = {r.id & ~BPF_ADD_CONST for r in regs if r.type == SCALAR and r.id}
    lregs, lslots = [], []
    for fr, frame in enumerate(st.frames):
        lregs += [(fr, i) for i, r in enumerate(frame.regs)
                  if r.type == SCALAR and live[fr] >> i & 1 and
                  r.id & ~BPF_ADD_CONST in ids]
        lslots += [(fr, spi) for spi, s in frame.stack.items()
                   if s.spill is not None and s.spill.type == SCALAR and
                   s.spill.id & ~BPF_ADD_CONST in ids]
    if len(lregs) + len(lslots) < 2:
        return None
    return frozenset(lregs), frozenset(lslots)
