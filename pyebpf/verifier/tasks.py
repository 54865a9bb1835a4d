"""The verifier's side of the task and cgroup kfuncs of ``kernel/bpf/helpers.c``'s
generic set (``bpf_task_acquire``, ``bpf_task_release``, ``bpf_task_from_pid``,
``bpf_task_from_vpid``, ``bpf_cgroup_acquire``, ``bpf_cgroup_release``,
``bpf_cgroup_from_id``, ``bpf_cgroup_ancestor``, ``bpf_task_under_cgroup``,
``bpf_task_get_cgroup1``) and of
``kernel/trace/bpf_trace.c``'s ``bpf_send_signal_task``, as
``check_kfunc_args`` checks their pointer arguments.

A ``struct task_struct *`` or ``struct cgroup *`` argument is trusted
(``KF_TRUSTED_ARGS`` is the default for these since 6.12): NULL, or a pointer that
may be NULL, is refused; it must be a ``PTR_TO_BTF_ID`` of that struct at offset 0,
trusted (referenced, or a trusted pointer such as ``bpf_get_current_task_btf``'s), or
RCU-protected where the kfunc is ``KF_RCU``.  A ``KF_RELEASE`` kfunc takes a
referenced pointer and ends every copy of it; a ``KF_ACQUIRE`` kfunc's result is a
trusted pointer of its return struct that may be NULL, holding a new reference.
"""
from __future__ import annotations

from .. import isa
from .conntrack import _base
from .state import MAYBE_NULL, MEM_RCU, PTR_TO_BTF_ID, SCALAR

#: the kfuncs this module checks
TASK_KFUNCS = frozenset({"bpf_task_acquire", "bpf_task_release", "bpf_task_from_pid",
                         "bpf_task_from_vpid", "bpf_cgroup_acquire", "bpf_cgroup_release",
                         "bpf_cgroup_from_id", "bpf_cgroup_ancestor",
                         "bpf_task_under_cgroup", "bpf_send_signal_task",
                         "bpf_task_get_cgroup1"})


class TaskCalls:
    """The task and cgroup kfunc side of :class:`~pyebpf.verifier.interp.Interpreter`
    (mixed in)."""

    def task_args(self, st, pc: int, k) -> int:
        """check_kfunc_args for a task or cgroup kfunc; returns the reference a
        KF_RELEASE kfunc releases (0 for none)."""
        released = 0
        for i, arg in enumerate(k.args):
            regno = i + 1
            reg = self.read(st, pc, regno)
            if not arg.ctype.endswith("*"):
                if reg.type != SCALAR:
                    self.refuse(pc, f"R{regno} is not a scalar")
                continue
            self.trusted_ptr_arg(pc, k, i, reg)
            if k.flags & isa.KF_RELEASE:
                if not reg.ref:
                    self.refuse(pc, f"release kernel function {k.name} expects refcounted "
                                    f"PTR_TO_BTF_ID")
                released = reg.ref
        return released

    def trusted_ptr_arg(self, pc: int, k, i: int, reg) -> None:
        """check_kfunc_args on pointer argument ``i`` (a task or cgroup) of ``k``: not
        NULL, trusted (or RCU for a KF_RCU kfunc), to the struct, at offset 0."""
        regno, name = i + 1, _base(k.args[i].ctype)[1]
        if reg.is_null() or reg.type & MAYBE_NULL:
            self.refuse(pc, f"Possibly NULL pointer passed to trusted arg{i}")
        if reg.type & 0xFF != PTR_TO_BTF_ID:
            self.refuse(pc, f"arg#{i} pointer type STRUCT {name} must point to scalar, "
                            f"or struct with scalar")
        # is_trusted_reg / is_rcu_reg: KF_RCU takes an RCU pointer too
        allowed = PTR_TO_BTF_ID | (MEM_RCU if k.flags & isa.KF_RCU else 0)
        if reg.type & ~allowed:
            self.refuse(pc, f"R{regno} must be a rcu pointer" if k.flags & isa.KF_RCU
                        else f"R{regno} must be referenced or trusted")
        self.btf_arg_at_zero(pc, k, i, reg, name)
