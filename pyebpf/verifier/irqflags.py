"""Saved irq flags in the verifier: ``bpf_local_irq_save``/``bpf_local_irq_restore`` and
the irqsave variants of the bpf_res_spin_lock kfuncs (``process_irq_flag`` in
``kernel/bpf/verifier.c``).

A save marks the 8-byte stack slot its argument points at STACK_IRQ_FLAG, with a
marker register holding the save's id (``ref``) and the class of kfunc that saved it
(``size``: native or lock), and pushes the id on ``VState.irqs``; a restore takes an
initialized flag of its own class, and only the last one saved (the kernel restores
irq state in LIFO order).  Bytes written over the slot make it ordinary stack, so a
restore of it is refused; the program may not read it.  The region may not end the
program (``check_resource_leak``) or do what may sleep.
"""
from __future__ import annotations

from .state import PTR_TO_STACK, STACK_INVALID, STACK_IRQ_FLAG, Reg

IRQ_KFUNCS = frozenset({"bpf_local_irq_save", "bpf_local_irq_restore"})
# the kfunc classes of an irq flag (IRQ_NATIVE_KFUNC, IRQ_LOCK_KFUNC)
IRQ_NATIVE, IRQ_LOCK = 0, 1
_CLASS_NAMES = ("native", "lock")


def is_irq_slot(s) -> bool:
    return s is not None and STACK_IRQ_FLAG in s.kinds


class IrqFlagRules:
    """The irq flag rules, mixed into :class:`~.interp.Interpreter`."""

    def irq_flag_arg(self, st, pc: int, i: int, reg: Reg, save: bool, cls: int) -> None:
        """check_kfunc_args' KF_ARG_PTR_TO_IRQ_FLAG: argument ``i`` of a save or a
        restore of kfunc class ``cls``."""
        if reg.type != PTR_TO_STACK:
            self.refuse(pc, f"arg#{i} doesn't point to an irq flag on stack")
        # stack_slot_obj_get_spi
        if not reg.is_const:
            self.refuse(pc, "irq_flag has to be at a constant offset")
        off = reg.off + reg.smin
        if off % 8:
            self.refuse(pc, f"cannot pass in irq_flag at an offset={off}")
        frame = self.stack_frame(st, reg)
        s = self._slot(frame, off, create=False)
        mask = 1 << (-off - 1) // 8
        if save:
            if is_irq_slot(s):
                self.refuse(pc, f"expected uninitialized irq flag as arg#{i}")
            # check_mem_access: an 8-byte write there
            self.stack_access(st, pc, i + 1, reg, 0, 8, True, -1, None)
            s = self._slot(frame, off)
            marker = Reg(PTR_TO_STACK)
            marker.mark_known(0)
            marker.ref = self.new_id()          # acquire_irq_state
            marker.size = cls
            s.kinds = [STACK_IRQ_FLAG] * 8
            s.spill = marker
            st.irqs += ((marker.ref, pc),)
            return
        if s is None or s.spill is None or not s.spill.ref or \
                any(k != STACK_IRQ_FLAG for k in s.kinds):
            self.refuse(pc, f"expected an initialized irq flag as arg#{i}")
        self.lv.read(st, reg.frame, pc, mask)          # mark_irq_flag_read
        if s.spill.size != cls:
            self.refuse(pc, f"irq flag acquired by {_CLASS_NAMES[s.spill.size]} kfuncs "
                            f"cannot be restored with {_CLASS_NAMES[cls]} kfuncs")
        top, at = st.irqs[-1]
        if s.spill.ref != top:
            # release_irq_state: only the last flag saved
            self.refuse(pc, f"cannot restore irq state out of order, expected id={top} "
                            f"acquired at insn_idx={at}")
        st.irqs = st.irqs[:-1]
        self.lv.write(reg.frame, mask)                 # unmark_stack_slot_irq_flag
        s.kinds = [STACK_INVALID] * 8
        s.spill = None

    def irq_leak(self, st, pc: int, prefix: str) -> None:
        """check_resource_leak: ``prefix`` may not leave irqs disabled."""
        if st.irqs:
            self.refuse(pc, f"{prefix} cannot be used inside bpf_local_irq_save-ed region")
