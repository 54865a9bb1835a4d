"""The verifier's dynptrs (``process_dynptr_func``, ``mark_stack_slots_dynptr``).

A ``struct bpf_dynptr`` lives in two 8-byte stack slots whose bytes are STACK_DYNPTR;
the lower slot holds a marker register (``size`` 1, the higher 2) whose value is the
dynptr's type (``enum bpf_dynptr_type``: local, ringbuf, skb) plus :data:`RDONLY` for a
read-only dynptr (a socket filter's skb dynptr: it may not write packet data).  A ring
buffer dynptr is an acquired reference (``ref``, shared by its clones) that
``bpf_ringbuf_submit_dynptr``/``_discard_dynptr`` release, even when the reserve
failed.  Writing over either slot destroys an unreferenced dynptr
(``destroy_if_dynptr_stack_slot``) and is refused for a referenced one; reading its
bytes is refused.  ``bpf_dynptr_slice(_rdwr)`` return memory of the constant buffer
size, or NULL, flagged with the dynptr's type (DYNPTR_SKB, _LOCAL, _RINGBUF): an skb
dynptr's so that a packet-changing helper invalidates them as it does packet pointers
(``clear_all_pkt_pointers``); a ring buffer dynptr's carry its reference so that
releasing it ends them.  Every slice, a kfunc's and ``bpf_dynptr_data``'s, names its
dynptr's id in ``dynptr_id``, which pruning compares (regsafe's memcmp); a store over
the dynptr ends only ``bpf_dynptr_data``'s.
"""
from __future__ import annotations

from errno import EINVAL

from .. import isa
from .state import (CONST_PTR_TO_DYNPTR, DYNPTR_LOCAL, DYNPTR_MEM, DYNPTR_RINGBUF,
                    DYNPTR_SKB, MAYBE_NULL, MEM_RDONLY, PTR_TO_MEM, PTR_TO_STACK,
                    STACK_DYNPTR, STACK_INVALID, Reg, s64, type_str)

_SOCKET_FILTER = isa.ProgType.BPF_PROG_TYPE_SOCKET_FILTER
LOCAL, RINGBUF, SKB, SKB_META = isa.BPF_DYNPTR_TYPE_LOCAL, isa.BPF_DYNPTR_TYPE_RINGBUF, \
    isa.BPF_DYNPTR_TYPE_SKB, isa.BPF_DYNPTR_TYPE_SKB_META
PACKET_TYPES = (SKB, SKB_META)     # a dynptr over packet data, which a write changes
RDONLY = 0x100                     # in a marker's value, beside the type
TYPE_NAMES = {LOCAL: "local", RINGBUF: "ringbuf", SKB: "skb",        # dynptr_type_str
              SKB_META: "skb_meta"}
# get_dynptr_type_flag: a kfunc's slice is flagged with its dynptr's type; DYNPTR_SKB
# stands for DYNPTR_TYPE_SKB_META too, whose slices packet-changing helpers end alike
TYPE_FLAGS = {LOCAL: DYNPTR_LOCAL, RINGBUF: DYNPTR_RINGBUF, SKB: DYNPTR_SKB,
              SKB_META: DYNPTR_SKB}


def is_dynptr_slot(s) -> bool:
    return s is not None and STACK_DYNPTR in s.kinds


def dynptr_type(marker: Reg) -> int:
    return marker.value & ~RDONLY


def dynptr_rdonly(marker: Reg) -> bool:
    return bool(marker.value & RDONLY)


def const_dynptr_marker(ident: int) -> Reg:
    """The marker of a CONST_PTR_TO_DYNPTR of id ``ident`` (the kernel's dynptr_id()
    of it: its own id): a local dynptr holding no reference."""
    m = Reg(PTR_TO_STACK).mark_known(LOCAL)
    m.id = ident
    return m


def const_dynptr_reg(kind: int, ident: int) -> Reg:
    """A CONST_PTR_TO_DYNPTR of ``kind`` (kept in ``size``, which the log prints as
    ``type=``) and id ``ident``: the R1 of a bpf_user_ringbuf_drain callback
    (set_user_ringbuf_callback_state), a global function's dynptr argument
    (do_check_common)."""
    r = Reg(CONST_PTR_TO_DYNPTR)
    r.mark_known(0)
    r.size, r.id = kind, ident
    return r


class DynptrCalls:
    """The dynptr side of :class:`~pyebpf.verifier.interp.Interpreter` (mixed in)."""

    def dynptr_arg(self, st, pc: int, argno: int, reg: Reg, uninit: bool,
                   kind: int = SKB, ref: int = 0, rdonly: bool = False,
                   expect: int = 0) -> Reg | None:
        """process_dynptr_func for argument ``argno`` (0-based).  An uninitialised
        dynptr becomes one of ``kind`` (``ref``: its reference, ``rdonly``: read-only;
        an skb dynptr is read-only in a socket filter); an initialised one must be of
        type ``expect`` when given, and its marker is returned."""
        if reg.type == CONST_PTR_TO_DYNPTR:
            # a callback's dynptr (bpf_user_ringbuf_drain's) or a global function's
            # argument: a local one it may not make anew (is_dynptr_reg_valid_uninit)
            if uninit:
                self.refuse(pc, "Dynptr has to be an uninitialized dynptr", errno=EINVAL)
            if expect and expect != LOCAL:
                self.refuse(pc, f"Expected a dynptr of type {TYPE_NAMES[expect]} as arg "
                                f"#{argno}")
            return const_dynptr_marker(reg.id)
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
                self.destroy_dynptr(st, pc, frame, addr)
            if kind == SKB:
                rdonly = self.prog_type == _SOCKET_FILTER
            ident = self.new_id()
            if kind == RINGBUF and not ref:
                ref = self.new_id()         # acquire_reference, after the dynptr's id
                st.refs[ref] = pc
            # mark_stack_slots_dynptr
            self.lv.write(reg.frame, 3 << (-lo - 16) // 8)
            for part, addr in ((1, lo), (2, lo + 8)):
                s = self._slot(frame, addr)
                marker = Reg(PTR_TO_STACK)
                marker.mark_known(kind | (RDONLY if rdonly else 0))
                marker.size, marker.id, marker.ref = part, ident, ref
                s.kinds = [STACK_DYNPTR] * 8
                s.spill = marker
            self._scratch_dynptr(lo)
            return None
        if off < -isa.MAX_BPF_STACK:
            self.refuse(pc, f"Expected an initialized dynptr as arg #{argno}")
        first = self._slot(frame, off, create=False)
        second = self._slot(frame, off + 8, create=False)
        if not (is_dynptr_slot(first) and is_dynptr_slot(second) and
                first.spill is not None and first.spill.size == 1 and
                second.spill is not None and second.spill.id == first.spill.id):
            self.refuse(pc, f"Expected an initialized dynptr as arg #{argno}")
        if expect and dynptr_type(first.spill) != expect:
            self.refuse(pc, f"Expected a dynptr of type {TYPE_NAMES[expect]} as arg "
                            f"#{argno}")
        self.lv.read(st, reg.frame, pc, 3 << (-off - 16) // 8)    # mark_dynptr_read
        self._scratch_dynptr(off)
        return first.spill

    def _scratch_dynptr(self, lo: int) -> None:
        """The level-2 log prints the dynptr's slots after the call that made or read it,
        as the kernel's does after process_dynptr_func.  mark_stack_slot_scratched marks
        the slot's index whatever the dynptr's frame (a caller's, through a pointer
        argument): the current frame's slots of those indices are printed."""
        if self.log.level >= 2:
            self.log.slots.update(range((-lo - 16) // 8, (-lo - 1) // 8 + 1))

    def dynptr_release_arg(self, st, pc: int, regno: int, reg: Reg) -> int:
        """check_func_arg's OBJ_RELEASE of a dynptr: it must hold a reference (else
        "unacquired"); the reference it holds."""
        s = None
        if reg.type == CONST_PTR_TO_DYNPTR:
            self.refuse(pc, "cannot release unowned const bpf_dynptr")
        if reg.type == PTR_TO_STACK and reg.is_const:
            off = reg.off + (reg.value - (1 << 64) if reg.value >> 63 else reg.value)
            if off % 8 == 0 and -isa.MAX_BPF_STACK <= off <= -16:
                s = self._slot(self.stack_frame(st, reg), off, create=False)
        if not is_dynptr_slot(s) or s.spill is None or s.spill.size != 1 or not s.spill.ref:
            self.refuse(pc, f"arg {regno} is an unacquired reference")
        return s.spill.ref

    def release_dynptr(self, st, ref: int) -> None:
        """unmark_stack_slots_dynptr: the reference ends, with every dynptr (clones too)
        holding it; release_reference then ends the slices."""
        for f in st.frames:
            for spi, s in f.stack.items():
                if is_dynptr_slot(s) and s.spill is not None and s.spill.ref == ref:
                    self.lv.write(f.frameno, 1 << spi)      # invalidate_dynptr
                    s.kinds = [STACK_INVALID] * 8
                    s.spill = None

    def destroy_dynptr(self, st, pc: int, frame, addr: int) -> None:
        """destroy_if_dynptr_stack_slot: a write into either slot of a dynptr makes
        both ordinary invalid stack, and its bpf_dynptr_data slices unknown scalars
        (dynptrs need bpf_capable: mark_reg_invalid of a privileged loader); a
        referenced dynptr may not be overwritten."""
        s = self._slot(frame, addr, create=False)
        if not is_dynptr_slot(s) or s.spill is None:
            return
        if s.spill.ref:
            self.refuse(pc, "cannot overwrite referenced dynptr")
        dynptr_id = s.spill.id
        base = addr - addr % 8 - (8 if s.spill.size == 2 else 0)
        self.lv.write(frame.frameno, 3 << (-base - 16) // 8)
        for a in (base, base + 8):
            part = self._slot(frame, a, create=False)
            if part is not None:
                part.kinds = [STACK_INVALID] * 8
                part.spill = None
        # the kernel ends the plain PTR_TO_MEM registers of its dynptr_id, so not a
        # kfunc's slice (typed DYNPTR_TYPE_*): only bpf_dynptr_data's
        for r in st.all_regs():
            if r.dynptr_id == dynptr_id and r.type & ~MAYBE_NULL == PTR_TO_MEM | DYNPTR_MEM:
                r.mark_unknown()

    def dynptr_slice(self, pc: int, name: str, buf: Reg, size: Reg, dynptr: Reg) -> Reg:
        """check_kfunc_call's bpf_dynptr_slice(_rdwr): memory of the constant size, or
        NULL, flagged with the dynptr's type and naming its id (``dynptr_id``);
        read-only for bpf_dynptr_slice; bpf_dynptr_slice_rdwr refused to a socket
        filter whatever the dynptr's type; a ring buffer dynptr's holds its reference; a
        buffer ``buf`` on the stack is kept in its ``range`` as (frame, offset, size),
        which the log prints (``buf=fp[0]-30+14``)."""
        r = Reg(PTR_TO_MEM | TYPE_FLAGS[dynptr_type(dynptr)] | MAYBE_NULL)
        if name == "bpf_dynptr_slice":
            r.type |= MEM_RDONLY
        elif self.prog_type == _SOCKET_FILTER:
            # may_access_direct_pkt_data(BPF_WRITE), asked of every writable slice, a
            # local or ring buffer dynptr's too; check_kfunc_call's EINVAL
            self.refuse(pc, "the prog does not allow writes to packet data", errno=EINVAL)
        r.mark_known(0)
        r.size = size.value
        r.id = self.new_id()
        r.dynptr_id = dynptr.id
        r.ref = dynptr.ref
        if buf.type == PTR_TO_STACK and buf.is_const:
            r.range = (buf.frame, buf.off + s64(buf.value), size.value)
        return r

    def slice_access(self, pc: int, regno: int, reg: Reg, off: int, size: int,
                     write: bool) -> None:
        """check_mem_access on a dynptr slice (PTR_TO_MEM, perhaps MEM_RDONLY)."""
        if write and reg.type & MEM_RDONLY:
            self.refuse(pc, f"R{regno} cannot write into {type_str(reg.type)}")
        self.region_access(pc, regno, reg, off + reg.off, size, reg.size)
