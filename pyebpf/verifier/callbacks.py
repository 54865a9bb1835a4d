"""Helpers that call a function of the program (``bpf_loop``,
``bpf_for_each_map_elem``), as the kernel verifies
them (``push_callback_call``, ``prepare_func_exit``): the path goes on after the call as
if the callback ran zero times, and a path is queued into the callback, in a new frame
with the helper's callback arguments; when the callback returns, its R0 must be in the
callback's return range and the path goes back to the helper call, which queues the
callback again: the calls converge like a loop, at the call instruction."""
from __future__ import annotations

from errno import ENOMEM

from .. import isa
from .dynptrs import LOCAL, const_dynptr_reg
from .kfuncs import widen_scalars
from .rbtree import LESS_RANGE, calls_less
from .helpers import DEDICATED_MAPS, FUNC, PROTOS
from .state import (CONST_PTR_TO_MAP, PTR_TO_MAP_KEY, PTR_TO_MAP_VALUE,
                    PTR_TO_STACK, SCALAR, Frame, Reg, scalar)

_T = isa.MapType
_LOOP = isa.HELPER_IDS["loop"]
# helper id -> (callback's argument registers: the caller's register they copy, None
# for an unknown scalar, "key"/"value" for an element of the caller's r1 map; its
# return range)
CALLBACK_HELPERS = {
    isa.HELPER_IDS["loop"]: ((None, 3), (0, 1)),       # set_loop_callback_state
    # set_map_elem_callback_state
    isa.HELPER_IDS["for_each_map_elem"]: ((1, "key", "value", 3), (0, 1)),
    # set_find_vma_callback_state: the task, its struct vm_area_struct, the context
    isa.HELPER_IDS["find_vma"]: ((1, "vma", 4), (0, 1)),
    # set_user_ringbuf_callback_state: a local dynptr over the sample, the context
    isa.HELPER_IDS["user_ringbuf_drain"]: (("dynptr", 3), (0, 1)),
}
# the map types with map_for_each_callback
FOR_EACH_MAPS = frozenset({_T.BPF_MAP_TYPE_ARRAY, _T.BPF_MAP_TYPE_PERCPU_ARRAY,
                           _T.BPF_MAP_TYPE_HASH, _T.BPF_MAP_TYPE_PERCPU_HASH,
                           _T.BPF_MAP_TYPE_LRU_HASH, _T.BPF_MAP_TYPE_LRU_PERCPU_HASH})


class CallbackCalls:
    """The callback side of :class:`~pyebpf.verifier.interp.Interpreter` (mixed in)."""

    def callback_call(self, st, pc: int, insn, pending) -> None:
        """The callback of a helper whose arguments check_helper_call has checked
        (push_callback_call)."""
        fn = st.cur.regs[PROTOS[insn.imm].args.index(FUNC) + 1]
        self.static_arg_notes(st, fn.off)   # push_callback_call, on the helper's registers
        if len(st.frames) >= isa.MAX_CALL_FRAMES:
            self.refuse(pc, f"the call stack of {len(st.frames) + 1} frames is too deep")
        args, _range = CALLBACK_HELPERS[insn.imm]
        m = self._callback_map(st, pc, args)
        if insn.imm == _LOOP:
            self._loop_inline_state(st, pc, fn.off)
            if self.precision:
                # the count decides when the calls stop
                self._needs(st, 1)
            if st.cur.callback_depth >= st.cur.regs[1].umax:
                st.cur.callback_depth = 0
                if self.log.level >= 2:
                    self.log.add(f"frame{len(st.frames) - 1} bpf_loop iteration limit "
                                 f"reached")
                return
        queued = self.push(st, fn.off, pc, pending, ENOMEM)
        queued.callback_unroll_depth += 1
        caller = queued.cur
        caller.callback_depth += 1
        st.cur.callback_depth = 0
        callee = Frame(pc, self.func_of(fn.off), len(queued.frames))
        callee.in_callback = True
        for regno, source in enumerate(args, start=1):
            if source == "vma":
                callee.regs[regno] = self.vma_reg()
            elif source == "dynptr":
                # mark_dynptr_cb_reg: a local dynptr of an id of its own, which its
                # slices name and the log prints (dynptr_ptr(id=1,type=local))
                callee.regs[regno] = const_dynptr_reg(LOCAL, self.new_id())
            elif source in ("key", "value"):
                r = Reg(PTR_TO_MAP_KEY if source == "key" else PTR_TO_MAP_VALUE)
                r.mark_known(0)
                r.map = m
                if source == "value":
                    # the 6.18 kernel's log gives the value an id of its own at each
                    # queueing (map_value(id=2,...)), the key none
                    r.id = self.new_id()
                callee.regs[regno] = r
            else:
                callee.regs[regno] = scalar() if source is None else \
                    caller.regs[source].copy()
        callee.regs[10].type = PTR_TO_STACK
        callee.regs[10].mark_known(0)
        callee.regs[10].frame = callee.frameno
        queued.frames.append(callee)
        self.log.scratch_all(st.cur)

    def _loop_inline_state(self, st, pc: int, fn: int) -> None:
        """update_loop_inline_state: a bpf_loop call the kernel may inline has flags
        0 and always the same callback; while it may, the zero flags are marked
        precise (loop_flag_is_zero)."""
        fit, callback = self.loop_inline.get(pc, (True, fn))
        if fit:
            r4 = st.cur.regs[4]
            fit = r4.type == SCALAR and r4.is_const and r4.value == 0
            if fit and self.precision:
                self._needs(st, 4)
        self.loop_inline[pc] = (fit and callback == fn, callback)

    def _callback_map(self, st, pc: int, args):
        """The map whose elements the callback gets (r1), checked as
        set_map_elem_callback_state checks it; None for a helper without one.  A map
        argument the helper's own checks refuse is left to them (they come first in
        the kernel)."""
        if "key" not in args:
            return None
        reg = st.cur.regs[1]
        if reg.type != CONST_PTR_TO_MAP or reg.map is None:
            return None
        mtype = _T(reg.map.type)
        if mtype not in FOR_EACH_MAPS and mtype not in DEDICATED_MAPS:
            self.refuse(pc, "callback function not allowed for map")
        return reg.map

    def callback_exit(self, st, pc: int, r0: Reg) -> int:
        """prepare_func_exit for a callback: R0 in range, then back to the call."""
        if r0.type != SCALAR:
            self.refuse(pc, "R0 not a scalar value")
        if self.precision:
            self._needs(st, 0)      # its range is checked
        callee = st.frames[-1]
        call = self.insns[callee.callsite]
        lo, hi = LESS_RANGE if calls_less(call) else CALLBACK_HELPERS[call.imm][1]
        if r0.smin < lo or r0.smax > hi:
            bounds = _bounds(r0) or " unknown scalar value"
            self.refuse(pc, f"At callback return the register R0 has{bounds} should have "
                            f"been in [{lo}, {hi}]")
        self.lv.update(st)
        st.frames.pop()
        self.log.returned(st, callee, st.cur, callee.callsite)
        # scalars the callback changed since the previous call are widened, as for
        # iterators (prepare_func_exit: widen_imprecise_scalars)
        prev = st.parent
        while prev is not None and not (prev.insn == callee.callsite and
                                        len(prev.frames) == len(st.frames)):
            prev = prev.parent
        if prev is not None:
            widen_scalars(prev, st)
        self.log.resumed(st, pc, callee.callsite)
        return callee.callsite


def _bounds(r: Reg) -> str:
    """verbose_invalid_scalar's description of a register: its signed bounds only."""
    from .state import S64_MAX, S64_MIN
    out = ""
    if r.smin > S64_MIN:
        out += f" smin={r.smin}"
    if r.smax < S64_MAX:
        out += f" smax={r.smax}"
    return out
