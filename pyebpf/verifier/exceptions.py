"""BPF exceptions: ``bpf_throw(cookie)`` and the exception callback.

A call of the ``bpf_throw`` kfunc ends its path (do_check: ``process_bpf_exit_full``
with ``exception_exit``): no lock may be held, no RCU or preemption region open and no
reference unreleased, in any frame (``check_resource_leak``, its refusals naming
``bpf_throw``); no return code is checked.  At run time the throw drops
every frame and the program returns what its exception callback returns for the
cookie: the global function the main program's ``exception_callback:NAME`` decl tag
names (:func:`.globalfuncs.exception_callback`), else the default one, which returns
the cookie.

The exception callback is verified on its own as a global function called with one
integer (``do_check_common``: "exception cb only supports single integer argument"),
returning as a main program does (``check_return_code``).  The static walk of the
call chains (``check_max_stack_depth_subprog``) refuses a throw from a callback (a
helper's, a timer's, the exception callback) or from a function one calls, and any
call of the exception callback.
"""
from __future__ import annotations

from bisect import bisect_right
from errno import EINVAL

from .. import isa
from .structure import _reject, function_start
from .state import SCALAR

THROW_ID = isa.KFUNC_IDS["bpf_throw"]
THROW_PREFIX = "bpf_throw"


def is_throw(op, insn) -> bool:
    """A call of the bpf_throw kfunc (is_bpf_throw_kfunc)."""
    return op is not None and op.form is isa.F_CALL and \
        op.disc_value == isa.BPF_PSEUDO_KFUNC_CALL and insn.imm == THROW_ID and \
        insn.off == 0


class ExceptionRules:
    """The exception side of :class:`~pyebpf.verifier.interp.Interpreter` (mixed in):
    ``self.exception_cb`` is the exception callback's first pc, 0 for none."""

    def throw_exit(self, st, pc: int) -> None:
        """check_resource_leak at a throw: no lock held or region open in any frame, no
        reference of any frame unreleased, each refusal naming bpf_throw."""
        self.lock_held_at(st, pc, THROW_PREFIX)
        if st.refs:
            ref, at = next(iter(st.refs.items()))
            self.refuse(pc, f"Unreleased reference id={ref} alloc_insn={at}",
                        f"{THROW_PREFIX} would lead to reference leak")
        self.lock_leak(st, pc, THROW_PREFIX)

    def exception_cb_entry(self, func) -> None:
        """do_check_common's checks of the exception callback's prototype."""
        if func.error:
            self.refuse(func.pc, func.error)
        if len(func.args) != 1 or func.args[0].kind != "scalar":
            self.refuse(func.pc, "exception cb only supports single integer argument",
                        errno=EINVAL)

    def exception_cb_exit(self, pc: int, r0) -> None:
        """check_return_code at the exception callback's exit: the main program's rules
        (none on the value for socket filters and tc)."""
        if self.unpriv and r0.type != SCALAR:
            self.refuse(pc, "R0 leaks addr as return value")


def check_throws(insns, ops, starts: list[int], exception_cb: int) -> None:
    """check_max_stack_depth_subprog's exception rules, on every chain of calls from the
    main program and from the exception callback, in instruction order."""
    events: list[list] = [[] for _ in starts]     # per function: (pc, callee or None)
    callbacks = set()
    for pc, op in enumerate(ops):
        # only calls and lddw of a function are events
        if op is None or not (op.form is isa.F_CALL or op.form is isa.F_CALL_LOCAL or
                              op.form is isa.F_LDDW):
            continue
        func = bisect_right(starts, pc) - 1
        if is_throw(op, insns[pc]):
            events[func].append((pc, None))
            continue
        target = function_start(op, insns[pc], pc)
        if target is not None:
            events[func].append((pc, starts.index(target)))
            if op.form is isa.F_LDDW:
                callbacks.add(starts.index(target))      # a callback (is_cb)
    ex = starts.index(exception_cb) if exception_cb else None
    if ex is not None:
        callbacks.add(ex)                                # mark_subprog_exc_cb
    walked = set()

    def walk(func: int, in_cb: bool) -> None:
        in_cb = in_cb or func in callbacks
        if (func, in_cb) in walked:
            return
        walked.add((func, in_cb))
        for pc, callee in events[func]:
            if callee is None:
                if in_cb:
                    raise _reject(f"bpf_throw kfunc (insn {pc}) cannot be called from "
                                  f"callback subprog {func}", pc, insns[pc])
            elif callee == ex and ops[pc].form is isa.F_CALL_LOCAL:
                raise _reject(f"insn {pc} cannot call exception cb directly", pc,
                              insns[pc])
            else:
                walk(callee, in_cb)

    walk(0, False)
    if ex is not None:
        walk(ex, False)
