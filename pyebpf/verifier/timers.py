"""bpf_timer in the verifier (``kernel/bpf/verifier.c``): the timer argument
(``ARG_PTR_TO_TIMER``: ``process_timer_func``, ``check_map_field_pointer``), bpf_timer_init's
map argument, which must be the timer's own map (``check_func_arg``), and the callback
bpf_timer_set_callback names, verified as the kernel verifies an async callback
(``push_async_cb``, ``set_timer_callback_state``): a path of its own, queued at the call,
starting in the callback as the only frame with R1 the map, R2 the key and R3 the value
of the timer's element, and ending at its exit like a program's, with R0 == 0
(``check_return_code``).  The caller goes on after the call as after any helper.

The bpf_wq kfuncs share those rules: their ``struct bpf_wq *`` argument
(``KF_ARG_PTR_TO_WORKQUEUE``, ``process_wq_func``), bpf_wq_init's map
(``KF_ARG_PTR_TO_MAP``: the work item's own map), and the callback
bpf_wq_set_callback_impl names, an async callback as a timer's is
(``push_callback_call`` with ``set_timer_callback_state``), but verified as sleepable:
work runs in a kworker, so its path may call what might sleep (``push_async_cb``'s
``is_sleepable``, ``in_sleepable``) where a timer's callback, run in softirq, may not.

So do the bpf_task_work kfuncs (``bpf_task_work_schedule_signal_impl``, ``_resume_impl``):
a trusted task, the map value's ``struct bpf_task_work`` (``KF_ARG_PTR_TO_TASK_WORK``,
``check_map_field_pointer``), its own map and a callback, verified as an async callback
that may sleep (it runs in the task's context) and may return any int
(``set_task_work_schedule_callback_state``: ``callback_ret_range`` is the s32 range).
"""
from __future__ import annotations

from .. import isa
from .callbacks import _bounds
from .locks import map_name
from .state import (CONST_PTR_TO_MAP, PTR_TO_FUNC, PTR_TO_MAP_KEY, PTR_TO_MAP_VALUE, PTR_TO_STACK,
                    SCALAR, Frame, Reg, VState, type_str)

TIMER_SET_CALLBACK_ID = isa.HELPER_IDS["timer_set_callback"]
#: Frame.in_callback of an async callback's frame (a bpf_loop's is True); a bpf_wq
#: callback's is SLEEPABLE_ASYNC
ASYNC = "async"
SLEEPABLE_ASYNC = "sleepable async"
TASK_WORK_ASYNC = "task work"
ASYNC_CALLBACKS = (ASYNC, SLEEPABLE_ASYNC, TASK_WORK_ASYNC)
S32_MIN, S32_MAX = -(1 << 31), (1 << 31) - 1


def has_timer(m) -> bool:
    return getattr(m, "timer_off", None) is not None


class TimerRules:
    """The bpf_timer rules, mixed into :class:`~.interp.Interpreter`."""

    @staticmethod
    def in_sleepable(st) -> bool:
        """in_sleepable: the path may sleep (pyebpf loads no sleepable program; a bpf_wq
        callback's path, whose first frame is the callback's, may)."""
        return st.frames[0].in_callback in (SLEEPABLE_ASYNC, TASK_WORK_ASYNC)

    def timer_arg(self, pc: int, regno: int, reg: Reg, meta: dict) -> None:
        """process_timer_func: ``reg`` (a map value) points at its bpf_timer, at a
        constant offset; the map is remembered for bpf_timer_init's map argument."""
        if not reg.is_const:
            self.refuse(pc, f"R{regno} doesn't have constant offset. bpf_timer has to be at "
                            f"the constant offset")
        m = reg.map
        if getattr(m, "value_type", None) is None:
            self.refuse(pc, f"map '{map_name(m)}' has to have BTF in order to use bpf_timer")
        if not has_timer(m):
            self.refuse(pc, f"map '{map_name(m)}' has no valid bpf_timer")
        at = reg.value + reg.off
        if at != m.timer_off:
            self.refuse(pc, f"off {at} doesn't point to 'struct bpf_timer' that is at "
                            f"{m.timer_off}")
        meta["map"] = m
        meta["timer_map"] = m

    def timer_map_arg(self, pc: int, reg: Reg, meta: dict) -> None:
        """check_func_arg, ARG_CONST_MAP_PTR after a timer: the same map (its map_uid
        tells inner maps apart; pyebpf's verifier has none holding timers)."""
        if meta.get("timer_map") is not None and meta["timer_map"] is not reg.map:
            self.refuse(pc, "timer pointer in R1 map_uid=0 doesn't match map pointer in "
                            "R2 map_uid=0")

    def timer_callback_call(self, st, pc: int, insn, pending) -> None:
        """push_async_cb with set_timer_callback_state, once the arguments check."""
        meta = {"map": None}
        self.timer_arg_checked(st, pc, meta)
        fn = self.read(st, pc, 2)
        if fn.type != PTR_TO_FUNC:
            self.refuse(pc, f"R2 type={type_str(fn.type)} expected=func")
        self._push_async(st, pc, fn, meta["map"], pending, ASYNC)

    def _push_async(self, st, pc: int, fn: Reg, m, pending, kind) -> None:
        """push_async_cb: the callback ``fn`` names, verified later as a path of its own
        with set_timer_callback_state's registers for an element of ``m`` (``kind``:
        ASYNC, SLEEPABLE_ASYNC for a path that may sleep, TASK_WORK_ASYNC); the value
        with an id of its own, as the 6.18 kernel's log shows it.  Its frame is a first
        frame, of call site BPF_MAIN_FUNC (-1) whatever call queued it (init_func_state),
        so the callback queued by two calls prunes against itself."""
        callee = Frame(-1, self.func_of(fn.off), 0)
        callee.in_callback = kind
        self.async_cbs.add(callee.subprog)
        callee.regs[1] = Reg(CONST_PTR_TO_MAP)
        callee.regs[1].mark_known(0)
        callee.regs[1].map = m
        for regno, kind in ((2, PTR_TO_MAP_KEY), (3, PTR_TO_MAP_VALUE)):
            r = Reg(kind)
            r.mark_known(0)
            r.map = m
            callee.regs[regno] = r
        callee.regs[3].id = self.new_id()
        callee.regs[10].type = PTR_TO_STACK
        callee.regs[10].mark_known(0)
        callee.regs[10].frame = 0
        # push_async_cb: not a copy of the caller's state, nor one of its branches
        from .interp import JMP_SEQ_LIMIT
        if len(pending) >= JMP_SEQ_LIMIT[self.profile]:
            self.refuse(pc, f"The sequence of {len(pending) + 1} jumps is too complex.")
        queued = VState()
        queued.frames = [callee]
        pending.append((queued, fn.off, pc, self.log.mark()))
        self.log.scratch_all(st.cur)

    def _map_field(self, pc: int, reg: Reg, argno: int, field: str, attr: str):
        """check_map_field_pointer for a kfunc's arg#``argno``: a map value pointer at
        the constant offset of its map's ``field`` (the map's ``attr``); that map."""
        if reg.type != PTR_TO_MAP_VALUE:
            self.refuse(pc, f"arg#{argno} doesn't point to a map value")
        if not reg.is_const:
            self.refuse(pc, f"R{argno + 1} doesn't have constant offset. {field} has to be "
                            f"at the constant offset")
        m = reg.map
        if getattr(m, "value_type", None) is None:
            self.refuse(pc, f"map '{map_name(m)}' has to have BTF in order to use {field}")
        if getattr(m, attr, None) is None:
            self.refuse(pc, f"map '{map_name(m)}' has no valid {field}")
        at = reg.value + reg.off
        if at != getattr(m, attr):
            self.refuse(pc, f"off {at} doesn't point to 'struct {field}' that is at "
                            f"{getattr(m, attr)}")
        return m

    def _same_map(self, pc: int, reg: Reg, regno: int, m, what: str, field_regno: int) -> None:
        """R``regno`` the map pointer of the map whose value R``field_regno`` points into
        (check_kfunc_args' map_uid match for a map-value field)."""
        if reg.type != CONST_PTR_TO_MAP:
            self.refuse(pc, f"pointer in R{regno} isn't map pointer")
        if reg.map is not m:
            self.refuse(pc, f"{what} pointer in R{field_regno} map_uid=0 doesn't match map "
                            f"pointer in R{regno} map_uid=0")

    def _callback_arg(self, pc: int, reg: Reg, argno: int) -> Reg:
        """A kfunc's arg#``argno``: a callback (KF_ARG_PTR_TO_CALLBACK), never NULL."""
        if reg.is_null():
            self.refuse(pc, f"Possibly NULL pointer passed to trusted arg{argno}")
        if reg.type != PTR_TO_FUNC:
            self.refuse(pc, f"arg{argno} expected pointer to func")
        return reg

    def wq_call(self, st, pc: int, name: str, pending) -> None:
        """check_kfunc_args for a bpf_wq kfunc: R1 a map value's bpf_wq
        (KF_ARG_PTR_TO_WORKQUEUE, process_wq_func), bpf_wq_init's R2 that value's map,
        the flags scalars; bpf_wq_set_callback_impl's R2 a callback, queued for
        verification as an async callback."""
        m = self._map_field(pc, self.read(st, pc, 1), 0, "bpf_wq", "wq_off")
        if name == "bpf_wq_init":
            self._same_map(pc, self.read(st, pc, 2), 2, m, "workqueue", 1)
            flags = 3
        elif name == "bpf_wq_set_callback_impl":
            fn = self._callback_arg(pc, self.read(st, pc, 2), 1)
            flags = 3
        else:
            flags = 2
        if self.read(st, pc, flags).type != SCALAR:
            self.refuse(pc, f"R{flags} is not a scalar")
        if name == "bpf_wq_set_callback_impl":
            self._push_async(st, pc, fn, m, pending, SLEEPABLE_ASYNC)

    def task_work_call(self, st, pc: int, k, pending) -> None:
        """check_kfunc_args for bpf_task_work_schedule_*: R1 a trusted task, R2 a map
        value's bpf_task_work (check_map_field_pointer), R3 that value's map, R4 a
        callback, queued for verification as an async callback; R5 (aux__prog) is the
        verifier's to fill."""
        self.trusted_ptr_arg(pc, k, 0, self.read(st, pc, 1))
        m = self._map_field(pc, self.read(st, pc, 2), 1, "bpf_task_work", "task_work_off")
        self._same_map(pc, self.read(st, pc, 3), 3, m, "bpf_task_work", 2)
        fn = self._callback_arg(pc, self.read(st, pc, 4), 3)
        self._push_async(st, pc, fn, m, pending, TASK_WORK_ASYNC)

    def timer_arg_checked(self, st, pc: int, meta: dict) -> None:
        """R1 of a timer helper, as check_func_arg checks it."""
        reg = self.read(st, pc, 1)
        if reg.type != PTR_TO_MAP_VALUE:
            self.refuse(pc, f"R1 type={type_str(reg.type)} expected=map_value")
        self.timer_arg(pc, 1, reg, meta)

    def async_exit(self, pc: int, r0: Reg, kind) -> None:
        """check_return_code for an async callback: R0 must be 0, or an s32 for a task
        work callback (its callback_ret_range)."""
        where = "At async callback return the register R0"
        lo, hi = (S32_MIN, S32_MAX) if kind == TASK_WORK_ASYNC else (0, 0)
        if r0.type != SCALAR:
            self.refuse(pc, f"{where} is not a known value ({type_str(r0.type)})")
        if r0.smin < lo or r0.smax > hi:
            bounds = _bounds(r0) or " unknown scalar value"
            self.refuse(pc, f"{where} has{bounds} should have been in [{lo}, {hi}]")
