"""The verifier's skb dynptrs (``process_dynptr_func``, ``mark_stack_slots_dynptr``).

A ``struct bpf_dynptr`` lives in two 8-byte stack slots whose bytes are STACK_DYNPTR;
the lower slot holds a marker register (``size`` 1, the higher 2) whose value is 1 for
a read-only dynptr (a socket filter's: it may not write packet data).  Writing over
either slot destroys the dynptr (``destroy_if_dynptr_stack_slot``); reading its bytes
is refused.  ``bpf_dynptr_slice(_rdwr)`` return memory of the constant buffer size, or
NULL, flagged DYNPTR_SKB so that a packet-changing helper invalidates it as it does
packet pointers (``clear_all_pkt_pointers``).
"""
from __future__ import annotations

from .. import isa
from .state import (DYNPTR_SKB, MAYBE_NULL, MEM_RDONLY, PTR_TO_MEM, PTR_TO_STACK,
                    STACK_DYNPTR, STACK_INVALID, Reg, type_str)

_SOCKET_FILTER = isa.ProgType.BPF_PROG_TYPE_SOCKET_FILTER


def is_dynptr_slot(s) -> bool:
    return s is not None and STACK_DYNPTR in s.kinds


class DynptrCalls:
    """The dynptr side of :class:`~pyebpf.verifier.interp.Interpreter` (mixed in)."""

    def dynptr_arg(self, st, pc: int, argno: int, reg: Reg, uninit: bool) -> bool:
        """process_dynptr_func for argument ``argno`` (0-based); for an initialised
        dynptr, whether it is read-only."""
        if reg.type != PTR_TO_STACK:
            self.refuse(pc, f"arg#{argno} expected pointer to stack or const struct "
                            f"bpf_dynptr")
        if not reg.is_const:
            self.refuse(pc, "dynptr has to be at a constant offset")
        off = reg.off + (reg.value - (1 << 64) if reg.value >> 63 else reg.value)
        if off % 8 or off > -16:
            self.refuse(pc, f"cannot pass in dynptr at an offset={off}")
        frame = self.stack_frame(st, reg)
        if uninit:
            lo, _hi = self.stack_bounds(pc, argno + 1, reg, 0, isa.BPF_DYNPTR_SIZE,
                                        " write to")
            self._note_depth(st, reg, lo)
            for addr in (lo, lo + 8):
                self.destroy_dynptr(st, frame, addr)
            rdonly = self.prog_type == _SOCKET_FILTER
            ident = self.new_id()
            for part, addr in ((1, lo), (2, lo + 8)):
                s = self._slot(frame, addr)
                marker = Reg(PTR_TO_STACK)
                marker.mark_known(int(rdonly))
                marker.size, marker.id = part, ident
                s.kinds = [STACK_DYNPTR] * 8
                s.spill = marker
            return rdonly
        if off < -isa.MAX_BPF_STACK:
            self.refuse(pc, f"Expected an initialized dynptr as arg #{argno}")
        first = self._slot(frame, off, create=False)
        second = self._slot(frame, off + 8, create=False)
        if not (is_dynptr_slot(first) and is_dynptr_slot(second) and
                first.spill is not None and first.spill.size == 1 and
                second.spill is not None and second.spill.id == first.spill.id):
            self.refuse(pc, f"Expected an initialized dynptr as arg #{argno}")
        return bool(first.spill.value)

    def destroy_dynptr(self, st, frame, addr: int) -> None:
        """destroy_if_dynptr_stack_slot: a write into either slot of a dynptr makes
        both ordinary invalid stack."""
        s = self._slot(frame, addr, create=False)
        if not is_dynptr_slot(s) or s.spill is None:
            return
        base = addr - addr % 8 - (8 if s.spill.size == 2 else 0)
        for a in (base, base + 8):
            part = self._slot(frame, a, create=False)
            if part is not None:
                part.kinds = [STACK_INVALID] * 8
                part.spill = None

    def dynptr_slice(self, pc: int, name: str, size: Reg, rdonly: bool) -> Reg:
        """check_kfunc_call's bpf_dynptr_slice(_rdwr): memory of the constant size, or
        NULL; read-only for bpf_dynptr_slice."""
        r = Reg(PTR_TO_MEM | DYNPTR_SKB | MAYBE_NULL)
        if name == "bpf_dynptr_slice":
            r.type |= MEM_RDONLY
        elif self.prog_type == _SOCKET_FILTER:
            # may_access_direct_pkt_data(BPF_WRITE)
            self.refuse(pc, "the prog does not allow writes to packet data")
        r.mark_known(0)
        r.size = size.value
        r.id = self.new_id()
        return r

    def slice_access(self, pc: int, regno: int, reg: Reg, off: int, size: int,
                     write: bool) -> None:
        """check_mem_access on a dynptr slice (PTR_TO_MEM, perhaps MEM_RDONLY)."""
        if write and reg.type & MEM_RDONLY:
            self.refuse(pc, f"R{regno} cannot write into {type_str(reg.type)}")
        self.region_access(pc, regno, reg, off + reg.off, size, reg.size)
