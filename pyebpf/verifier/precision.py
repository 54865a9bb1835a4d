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

The walk here covers programs of one function without loops, calls of functions,
callbacks, kfuncs or ``may_goto`` (:func:`applies`); elsewhere every scalar counts
as precise, which prunes less than the kernel and never more.  Where the walk meets
what it does not follow (atomics, ``LD_ABS``/``LD_IND``, a value older than the first
instruction), it marks every scalar of every checkpoint on the path, as the kernel's
``mark_all_scalars_precise`` does.
"""
from __future__ import annotations

from .. import isa
from .state import SCALAR, STACK_SPILL, VState

_ALU = (isa.F_ALU_K, isa.F_ALU_X, isa.F_ALU_SX, isa.F_ALU_XOFF_K, isa.F_ALU_XOFF_X,
        isa.F_NEG, isa.F_END)


def applies(interp) -> bool:
    """Whether ``interp``'s program is one the walk follows (see the module)."""
    if interp.unpriv or interp.profile != "current" or len(interp.starts) != 1 or \
            interp.iter_nexts or interp.may_gotos or interp.callback_calls:
        return False
    for pc, op in enumerate(interp.ops):
        if op is None:
            continue
        insn, f = interp.insns[pc], op.form
        if f in (isa.F_JA, isa.F_JCC_K, isa.F_JCC_X) and insn.off < 0 or \
                f is isa.F_JA32 and insn.imm < 0:
            return False        # a back-edge (or a jump to itself)
        if f is isa.F_CALL and insn.src != 0 or f is isa.F_CALL_LOCAL or \
                f is isa.F_CALLX:
            return False
    return True


def mark(interp, st: VState, regs=(), slots=()) -> None:
    """mark_chain_precision: the scalars ``regs`` (register numbers) and ``slots``
    (stack slot indices) of ``st``'s frame were needed precisely at its current
    instruction."""
    regs, slots = set(regs), set(slots)
    insns, ops = interp.insns, interp.ops
    hist, p = st.hist, st.parent
    while True:
        for entry in reversed(hist):
            if not _backtrack(insns, ops, entry, regs, slots):
                mark_all(st)
                return
            if not regs and not slots:
                return
        if p is None:
            # something older than the first instruction: the kernel gives up too
            mark_all(st)
            return
        frame = p.frames[0]
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
        if not regs and not slots:
            return
        hist, p = p.hist, p.parent


def propagate(interp, old: VState, cur: VState) -> None:
    """propagate_precision: ``cur``, pruned by ``old``, needs what ``old`` marked."""
    frame = old.frames[0]
    regs = [r for r in range(10) if frame.regs[r].type == SCALAR and frame.regs[r].precise]
    slots = [spi for spi, s in frame.stack.items()
             if s.spill is not None and s.spill.type == SCALAR and s.spill.precise and
             STACK_SPILL in s.kinds]
    if regs or slots:
        mark(interp, cur, regs, slots)


def mark_all(st: VState) -> None:
    """mark_all_scalars_precise: every scalar of every checkpoint ``st`` descends from."""
    p = st.parent
    while p is not None:
        for f in p.frames:
            for r in f.regs:
                if r.type == SCALAR:
                    r.precise = True
            for s in f.stack.values():
                if s.spill is not None and s.spill.type == SCALAR:
                    s.spill.precise = True
        p = p.parent


def _backtrack(insns, ops, entry, regs: set, slots: set) -> bool:
    """backtrack_insn: what the needed ``regs`` and ``slots`` after the instruction
    ``entry`` were made of before it; False where the walk cannot follow."""
    if type(entry) is tuple:
        pc, linked, slot = entry
    else:
        pc, linked, slot = entry, None, None
    if linked is not None:
        _sync_linked(linked, regs, slots)
    insn, op = insns[pc], ops[pc]
    f = op.form
    if f in _ALU:
        d = insn.dst
        if d not in regs:
            return True
        if op.code & 0xF0 == isa.BPF_MOV and f in (isa.F_ALU_K, isa.F_ALU_X, isa.F_ALU_SX):
            regs.discard(d)         # d = imm or d = src: d's old value is not needed
            if f is not isa.F_ALU_K:
                regs.add(insn.src)
        elif f.src:
            regs.add(insn.src)      # d op= src: both
    elif f is isa.F_LDX:
        if insn.dst in regs:
            regs.discard(insn.dst)
            if slot is not None:
                slots.add(slot)     # a fill: the value was the stack slot's
    elif f is isa.F_STX or f is isa.F_ST:
        if slot is not None and slot in slots:
            slots.discard(slot)
            if f is isa.F_STX:
                regs.add(insn.src)  # a spill: the slot's value was the register's
    elif f is isa.F_LDDW:
        regs.discard(insn.dst)
    elif f is isa.F_CALL:
        regs.discard(0)             # the helper's result; r1-r5 are clobbered
        if regs & {1, 2, 3, 4, 5}:
            return False
    elif f is isa.F_JCC_X:
        if insn.dst in regs or insn.src in regs:
            regs.add(insn.dst)
            regs.add(insn.src)
    elif f not in (isa.F_JCC_K, isa.F_JA, isa.F_JA32):
        return False                # atomics, LD_ABS/LD_IND
    if linked is not None:
        _sync_linked(linked, regs, slots)
    return True


def _sync_linked(linked, regs: set, slots: set) -> None:
    """bt_sync_linked_regs: scalars a conditional jump bounded together (one id) are
    needed together."""
    lregs, lslots = linked
    if regs & lregs or slots & lslots:
        regs |= lregs
        slots |= lslots


def linked_at(st: VState, regs) -> tuple | None:
    """collect_linked_regs: the registers and stack slots of the current frame sharing
    an id with the scalar registers ``regs``, or None when no scalar is linked."""
    frame = st.frames[-1]
    ids = {r.id for r in regs if r.type == SCALAR and r.id}
    if not ids:
        return None
    lregs = frozenset(i for i, r in enumerate(frame.regs) if r.type == SCALAR and r.id in ids)
    lslots = frozenset(spi for spi, s in frame.stack.items()
                       if s.spill is not None and s.spill.type == SCALAR and s.spill.id in ids)
    if len(lregs) + len(lslots) < 2:
        return None
    return lregs, lslots
