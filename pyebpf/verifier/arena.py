"""BPF arenas in the verifier, as 6.18's kernel/bpf/verifier.c has them (source-read:
the kernel of the machine pyebpf is tested on refuses every arena, docs/reference.md).

A program uses at most one arena (``add_used_map``).  An lddw of an address in it (an
``__arena`` global: BPF_PSEUDO_MAP_VALUE) is an unknown scalar (``check_ld_imm``);
``addr_space_cast`` from address space 1 to 0 (``cast_kern``, imm 1) makes a
PTR_TO_ARENA, from 0 to 1 (``cast_user``, imm 1 << 16) an unknown scalar
(``check_alu_op``).  Loads and stores through PTR_TO_ARENA are not checked, a load
giving an unknown scalar (``check_mem_access``: the kernel makes them BPF_PROBE_MEM32);
any arithmetic on one leaves it one (``adjust_reg_min_max_vals``).
"""
from __future__ import annotations

from .. import isa
from errno import EBUSY, EINVAL, EPERM

from .reg import Reg
from .state import PTR_TO_ARENA


class ArenaRules:
    """The arena rules, mixed into :class:`~.interp.Interpreter`."""

    arena = None        # the program's arena map (env->prog->aux->arena)

    def arena_map_used(self, pc: int, m) -> None:
        """add_used_map: an arena map an lddw names (before do_check)."""
        if m.type != isa.MapType.BPF_MAP_TYPE_ARENA or m is self.arena:
            return
        if self.arena is not None:
            self.refuse(pc, "Only one arena per program", errno=EBUSY)
        if self.unpriv:
            self.refuse(pc, "CAP_BPF and CAP_PERFMON are required to use arena", errno=EPERM)
        # pyebpf models a JIT that supports arenas (x86-64's, CONFIG_BPF_JIT_ALWAYS_ON),
        # and its arenas have their user address from creation (Map.user_vm_start)
        self.arena = m

    def addr_space_cast(self, pc: int, imm: int) -> None:
        """check_alu_op's rules for the cast, before it reads a register."""
        if imm not in (1, 1 << 16):
            self.refuse(pc, "addr_space_cast insn can only convert between address space "
                            "1 and 0", errno=EINVAL)
        if self.arena is None:
            self.refuse(pc, "addr_space_cast insn can only be used in a program that has "
                            "an associated arena", errno=EINVAL)

    @staticmethod
    def cast_result(imm: int) -> Reg:
        """The cast's destination: mark_reg_unknown, then PTR_TO_ARENA from as(1)."""
        r = Reg().mark_unknown()
        if imm == 1:
            r.type = PTR_TO_ARENA
        return r
