"""What an unprivileged loader is refused so that pointer arithmetic can be masked
against speculative execution (Spectre v1), as far as it changes the verdict.

Without ``bypass_spec_v1`` the kernel rewrites every ``ptr += reg`` and ``ptr -= reg``
to clamp the offset at run time (``sanitize_ptr_alu``); the arithmetic it cannot clamp
is refused: an offset register whose signed bounds straddle zero (it cannot tell the
direction to mask), a pointer kind it has no limit for (``retrieve_ptr_limit``: only
stack and map value pointers have one), and a result outside the object
(``sanitize_check_bounds``: a stack pointer must stay inside the frame, a map value
pointer inside the value).
"""
from __future__ import annotations

from .state import PTR_TO_MAP_VALUE, PTR_TO_STACK, Reg

__all__ = ["SpeculationRules"]

MAX_BPF_STACK = 512
_ERR = "pointer arithmetic with it prohibited for !root"


class SpeculationRules:
    """The unprivileged pointer-arithmetic side of
    :class:`~pyebpf.verifier.interp.Interpreter` (mixed in)."""

    def sanitize_ptr_alu(self, pc: int, insn, ptr: Reg, off_reg: Reg) -> None:
        """sanitize_ptr_alu before the arithmetic, for ``ptr += reg``/``ptr -= reg``
        (an immediate needs no masking: can_skip_alu_sanitation)."""
        # sanitize_err names the source register for a scalar's bounds and the destination
        # for the pointer, whichever operand is which: the scalar's copy is never the
        # destination's state there (6.18.44-fc-v1045; docs/kernel-notes.md)
        if not off_reg.is_const and (off_reg.smin < 0) != (off_reg.smax < 0):
            self.refuse(pc, f"R{insn.src} has unknown scalar with mixed signed bounds, {_ERR}")
        if ptr.type not in (PTR_TO_STACK, PTR_TO_MAP_VALUE):
            self.refuse(pc, f"R{insn.dst} has pointer with unsupported alu operation, {_ERR}")

    def sanitize_check_bounds(self, pc: int, regno: int, new: Reg) -> None:
        """sanitize_check_bounds after the arithmetic: the result stays inside its
        object (check_stack_access_for_ptr_arithmetic, check_map_access)."""
        if new.type == PTR_TO_STACK and new.is_const:
            off = new.off + new.value
            if off >= 0 or off < -MAX_BPF_STACK:
                self.refuse(pc, f"R{regno} stack pointer arithmetic goes out of range, "
                                f"prohibited for !root; off={off}")
        elif new.type == PTR_TO_MAP_VALUE:
            lo, hi = new.off + new.smin, new.off + new.umax
            if lo < 0 or hi + 1 > new.map.value_size:
                self.refuse(pc, f"R{regno} pointer arithmetic of map value goes out of "
                                f"range, prohibited for !root")
