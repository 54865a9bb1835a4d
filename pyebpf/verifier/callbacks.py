"""Helpers that call a function of the program (``bpf_loop``), as the kernel verifies
them (``push_callback_call``, ``prepare_func_exit``): the path goes on after the call as
if the callback ran zero times, and a path is queued into the callback, in a new frame
with the helper's callback arguments; when the callback returns, its R0 must be in the
callback's return range and the path goes back to the helper call, which queues the
callback again: the calls converge like a loop, at the call instruction."""
from __future__ import annotations

from .. import isa
from .kfuncs import widen_scalars
from .state import PTR_TO_FUNC, PTR_TO_STACK, SCALAR, Frame, Reg, scalar, type_str

# helper id -> (callback's argument registers from the caller's: None for an unknown
# scalar; its return range)
CALLBACK_HELPERS = {
    isa.HELPER_IDS["loop"]: ((None, 3), (0, 1)),       # set_loop_callback_state
}


class CallbackCalls:
    """The callback side of :class:`~pyebpf.verifier.interp.Interpreter` (mixed in)."""

    def callback_call(self, st, pc: int, insn, pending) -> None:
        fn = self.read(st, pc, 2)
        if fn.type != PTR_TO_FUNC:
            self.refuse(pc, f"R2 type={type_str(fn.type)} expected=func")
        if len(st.frames) >= isa.MAX_CALL_FRAMES:
            self.refuse(pc, f"the call stack of {len(st.frames) + 1} frames is too deep")
        args, _range = CALLBACK_HELPERS[insn.imm]
        queued = self.push(st, fn.off, pc, pending)
        caller = queued.cur
        callee = Frame(pc, self.func_of(fn.off), len(queued.frames))
        callee.in_callback = True
        for regno, source in enumerate(args, start=1):
            callee.regs[regno] = scalar() if source is None else caller.regs[source].copy()
        callee.regs[10].type = PTR_TO_STACK
        callee.regs[10].mark_known(0)
        callee.regs[10].frame = callee.frameno
        queued.frames.append(callee)

    def callback_exit(self, st, pc: int, r0: Reg) -> int:
        """prepare_func_exit for a callback: R0 in range, then back to the call."""
        if r0.type != SCALAR:
            self.refuse(pc, "R0 not a scalar value")
        callee = st.frames[-1]
        lo, hi = CALLBACK_HELPERS[self.insns[callee.callsite].imm][1]
        if r0.smin < lo or r0.smax > hi:
            self.refuse(pc, f"At callback return the register R0 has{_bounds(r0)} should "
                            f"have been in [{lo}, {hi}]")
        st.frames.pop()
        # scalars the callback changed since the previous call are widened, as for
        # iterators (prepare_func_exit: widen_imprecise_scalars)
        prev = st.parent
        while prev is not None and not (prev.insn == callee.callsite and
                                        len(prev.frames) == len(st.frames)):
            prev = prev.parent
        if prev is not None:
            widen_scalars(prev, st)
        return callee.callsite


def _bounds(r: Reg) -> str:
    """verbose_invalid_scalar's description of a register."""
    from . import tnum
    from .state import S64_MAX, S64_MIN
    out = ""
    if r.smin > S64_MIN:
        out += f" smin={r.smin}"
    if r.smax < S64_MAX:
        out += f" smax={r.smax}"
    if r.var != tnum.UNKNOWN and not r.is_const:
        out += f" var_off={tnum.text(r.var)}"
    return out
