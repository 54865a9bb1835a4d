"""What an unprivileged loader is refused so that pointer arithmetic can be masked
against speculative execution (Spectre v1), as far as it changes the verdict.

Without ``bypass_spec_v1`` the kernel rewrites every ``ptr += reg`` and ``ptr -= reg``
to clamp the offset at run time (``sanitize_ptr_alu``); the arithmetic it cannot clamp
is refused: an offset register whose signed bounds straddle zero (it cannot tell the
direction to mask), a pointer kind it has no limit for (``retrieve_ptr_limit``: only
stack and map value pointers have one), a pointer already at the end of its object in
the direction of the offset, a result outside the object (``sanitize_check_bounds``: a
stack pointer must stay inside the frame, a map value pointer inside the value), and an
instruction that two paths would mask differently (one rewrite serves every path:
another map value's limit, another offset, a scalar added on one path and a pointer on
the other).
"""
from __future__ import annotations

from ..isa import BPF_ADD
from .state import PTR_TO_MAP_VALUE, PTR_TO_STACK, Reg

__all__ = ["SpeculationRules"]

MAX_BPF_STACK = 512
_M32 = 0xFFFFFFFF
_ERR = "pointer arithmetic with it prohibited for !root"

# include/linux/bpf_verifier.h: bpf_insn_aux_data.alu_state
BPF_ALU_SANITIZE_SRC = 1 << 0
BPF_ALU_SANITIZE_DST = 1 << 1
BPF_ALU_NEG_VALUE = 1 << 2
BPF_ALU_NON_POINTER = 1 << 3
BPF_ALU_IMMEDIATE = 1 << 4


def _op(insn) -> str:
    return "add" if insn.code & 0xF0 == BPF_ADD else "sub"


class SpeculationRules:
    """The unprivileged pointer-arithmetic side of
    :class:`~pyebpf.verifier.interp.Interpreter` (mixed in); ``alu_aux`` is the
    instructions' aux data (pc: alu_state, alu_limit), shared by every path."""

    def sanitize_ptr_alu(self, pc: int, insn, ptr: Reg, off_reg: Reg,
                         ptr_is_dst: bool) -> tuple[int, int, bool]:
        """sanitize_ptr_alu before the arithmetic, for ``ptr += reg``/``ptr -= reg``
        (an immediate needs no masking: can_skip_alu_sanitation); what the commit
        window (:meth:`sanitize_ptr_alu_commit`) takes: (alu_state, alu_limit,
        mask_to_left)."""
        # sanitize_err names the source register for a scalar's bounds and the destination
        # for the pointer, whichever operand is which: the scalar's copy is never the
        # destination's state there (6.18.44-fc-v1045; docs/kernel-notes.md)
        off_is_imm = off_reg.is_const
        if not off_is_imm and (off_reg.smin < 0) != (off_reg.smax < 0):
            self.refuse(pc, f"R{insn.src} has unknown scalar with mixed signed bounds, {_ERR}")
        off_is_neg = off_reg.smin < 0
        mask_to_left = off_is_neg if insn.code & 0xF0 == BPF_ADD else not off_is_neg
        if ptr.type not in (PTR_TO_STACK, PTR_TO_MAP_VALUE):
            self.refuse(pc, f"R{insn.dst} has pointer with unsupported alu operation, {_ERR}")
        limit = self._ptr_limit(pc, insn, ptr, mask_to_left)
        state = (BPF_ALU_NEG_VALUE if off_is_neg else 0) | \
            (BPF_ALU_IMMEDIATE if off_is_imm else 0) | \
            (BPF_ALU_SANITIZE_SRC if ptr_is_dst else BPF_ALU_SANITIZE_DST)
        if not off_is_imm:
            # regsafe compares scalars exactly from here on, so that another path's
            # offset reaches the instruction to be compared (explore_alu_limits)
            self.explore_alu_limits = True
        return state, limit, mask_to_left

    def sanitize_ptr_alu_commit(self, pc: int, insn, new: Reg,
                                masked: tuple[int, int, bool]) -> None:
        """sanitize_ptr_alu's commit window, after the arithmetic: the mask is the
        distance the pointer moved (``abs(aux.alu_limit - limit)``), and every path
        through the instruction must need the same (update_alu_sanitation_state)."""
        state, before, mask_to_left = masked
        moved = (before - self._ptr_limit(pc, insn, new, mask_to_left)) & _M32
        if moved >> 31:
            moved = (1 << 32) - moved      # abs() of the u32 difference taken as an int
        self._alu_sanitation_state(pc, insn, state, moved)

    def sanitize_val_alu(self, pc: int, insn) -> None:
        """sanitize_val_alu: scalar ``+=``/``-=`` a register marks the instruction as
        arithmetic on no pointer, which no path may then do on one."""
        self._alu_sanitation_state(pc, insn, BPF_ALU_NON_POINTER, 0)

    def _alu_sanitation_state(self, pc: int, insn, state: int, limit: int) -> None:
        # update_alu_sanitation_state: do_misc_fixups rewrites the instruction once
        seen = self.alu_aux.get(pc)
        if seen is not None and seen != (state, limit):
            self.refuse(pc, f"R{insn.dst} tried to {_op(insn)} from different maps, paths "
                            f"or scalars, {_ERR}")
        self.alu_aux[pc] = (state, limit)

    def _ptr_limit(self, pc: int, insn, ptr: Reg, mask_to_left: bool) -> int:
        """retrieve_ptr_limit: how far the pointer may move in the masked direction,
        in the kernel's u32; a pointer at its object's end that way is refused."""
        if ptr.type == PTR_TO_STACK:
            # fp itself is a start for the left direction
            bound = MAX_BPF_STACK + mask_to_left
            limit = -(ptr.var[0] + ptr.off) & _M32
        else:
            bound = ptr.map.value_size
            limit = ((ptr.smin if mask_to_left else ptr.umax) + ptr.off) & _M32
        if limit >= bound:
            self.refuse(pc, f"R{insn.dst} tried to {_op(insn)} beyond pointer bounds, {_ERR}")
        return limit

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
