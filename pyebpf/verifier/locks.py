"""bpf_spin_lock in the verifier: which value a lock is taken on and given back
(``process_spin_lock`` in ``kernel/bpf/verifier.c``), what a program may not do while it
holds one (``do_check``'s call rule, ``check_resource_leak``), the special fields of a
map value that loads and stores may not touch (``check_map_access``), and the program
types that may not use a map whose value holds a lock (``check_map_prog_compatibility``).

A map's special fields come from its value's BTF (:mod:`pyebpf.btf.fields`):
``Map.spin_lock_off`` and ``Map.timer_off``.  One lock at a time: ``VState.spin_lock``
is (the map, the id of the map value pointer it was taken through) or None.
"""
from __future__ import annotations

from .. import isa
from ..btf.fields import GRAPH_ROOT_SIZES
from .lists import LIST_KFUNCS
from .rbtree import RBTREE_KFUNCS
from .state import PTR_TO_MAP_VALUE

SPIN_LOCK_ID = isa.HELPER_IDS["spin_lock"]
SPIN_UNLOCK_ID = isa.HELPER_IDS["spin_unlock"]
# kfunc_spin_allowed: is_bpf_graph_api_kfunc, is_bpf_iter_num_api_kfunc
_SPIN_ALLOWED = LIST_KFUNCS | RBTREE_KFUNCS | {"bpf_refcount_acquire_impl",
                                               "bpf_iter_num_new", "bpf_iter_num_next",
                                               "bpf_iter_num_destroy"}


def fields(m) -> list[tuple[int, int, str]]:
    """(offset, size, name) of the special fields of map ``m``'s value, by offset."""
    out = [(g.off, GRAPH_ROOT_SIZES[g.kind], g.kind) for g in getattr(m, "graph_roots", ())]
    lock, timer = getattr(m, "spin_lock_off", None), getattr(m, "timer_off", None)
    if lock is not None:
        out.append((lock, isa.SIZEOF_BPF_SPIN_LOCK, "bpf_spin_lock"))
    if timer is not None:
        out.append((timer, isa.SIZEOF_BPF_TIMER, "bpf_timer"))
    if getattr(m, "wq_off", None) is not None:
        out.append((m.wq_off, isa.SIZEOF_BPF_WQ, "bpf_wq"))
    return sorted(out)


def has_spin_lock(m) -> bool:
    return getattr(m, "spin_lock_off", None) is not None


def map_name(m) -> str:
    """The name the kernel knows a map by (BPF_OBJ_NAME_LEN - 1 characters)."""
    return (getattr(m, "name", "") or "")[:15]


class LockRules:
    """The bpf_spin_lock rules, mixed into :class:`~.interp.Interpreter`."""

    def map_prog_compatible(self, pc: int, m) -> None:
        """check_map_prog_compatibility, for a map an lddw names (before do_check)."""
        if has_spin_lock(m):
            if self.prog_type == isa.ProgType.BPF_PROG_TYPE_SOCKET_FILTER:
                self.refuse(pc, "socket filter progs cannot use bpf_spin_lock yet")
            if self.prog_type == isa.ProgType.BPF_PROG_TYPE_KPROBE:
                self.refuse(pc, "tracing progs cannot use bpf_spin_lock yet")
        if getattr(m, "timer_off", None) is not None and \
                self.prog_type == isa.ProgType.BPF_PROG_TYPE_KPROBE:
            self.refuse(pc, "tracing progs cannot use bpf_timer yet")
        if getattr(m, "wq_off", None) is not None and \
                self.prog_type == isa.ProgType.BPF_PROG_TYPE_KPROBE:
            self.refuse(pc, "tracing progs cannot use bpf_wq yet")

    def check_maps_used(self) -> None:
        """resolve_pseudo_ldimm64's walk over every lddw naming a map, in order."""
        if self.maps is None:
            return
        for pc, op in enumerate(self.ops):
            if op is None or op.form is not isa.F_LDDW or \
                    op.disc_value not in (isa.BPF_PSEUDO_MAP_FD, isa.BPF_PSEUDO_MAP_VALUE):
                continue
            m = self.maps(self.insns[pc].imm)
            if m is not None:
                self.map_prog_compatible(pc, m)

    def call_under_lock(self, st, pc: int, insn) -> None:
        """do_check: a program holding a lock calls nothing but bpf_spin_unlock and the
        kfuncs kfunc_spin_allowed names (the list kfuncs, bpf_refcount_acquire, the
        numeric iterator)."""
        if st.spin_lock is None:
            return
        if insn.src == 0 and insn.imm == SPIN_UNLOCK_ID:
            return
        if insn.is_kfunc_call and 0 < insn.imm < isa.N_KFUNC_IDS and \
                isa.KFUNC_NAMES[insn.imm] in _SPIN_ALLOWED:
            return
        if insn.src == isa.BPF_PSEUDO_CALL and self.pc_of_call(pc) not in self.globals:
            return          # static subprograms run under the caller's lock
        if insn.src == isa.BPF_PSEUDO_CALL:
            self.refuse(pc, "global function calls are not allowed while holding a lock,",
                        "use static function instead")
        self.refuse(pc, "function calls are not allowed while holding a lock")

    def pc_of_call(self, pc: int) -> int:
        return pc + 1 + self.insns[pc].imm

    def lock_held_at(self, st, pc: int, prefix: str) -> None:
        """check_resource_leak's first rule: ``prefix`` may not leave a lock held."""
        if st.spin_lock is not None:
            self.refuse(pc, f"{prefix} cannot be used inside bpf_spin_lock-ed region")

    def spin_lock_arg(self, st, pc: int, regno: int, reg, is_lock: bool) -> None:
        """process_spin_lock: ``reg`` points at the map value's bpf_spin_lock (not in an
        rbtree's ``less`` callback, which runs under the tree's lock: check_func_arg)."""
        if self.in_rbtree_cb(st):
            self.refuse(pc, "can't spin_{lock,unlock} in rbtree cb")
        if not reg.is_const:
            self.refuse(pc, f"R{regno} doesn't have constant offset. bpf_spin_lock has to be "
                            f"at the constant offset")
        m = reg.map
        if getattr(m, "value_type", None) is None:
            self.refuse(pc, f"map '{map_name(m)}' has to have BTF in order to use "
                            f"bpf_spin_lock")
        if not has_spin_lock(m):
            self.refuse(pc, f"map '{map_name(m)}' has no valid bpf_spin_lock")
        at = reg.value + reg.off
        if at != m.spin_lock_off:
            self.refuse(pc, f"off {at} doesn't point to 'struct bpf_spin_lock' that is at "
                            f"{m.spin_lock_off}")
        if is_lock:
            if st.spin_lock is not None:
                self.refuse(pc, "Locking two bpf_spin_locks are not allowed")
            st.spin_lock = (m, reg.id)
            return
        if st.spin_lock is None:
            self.refuse(pc, "bpf_spin_unlock without taking a lock")
        if st.spin_lock[0] is not m or st.spin_lock[1] != reg.id:
            self.refuse(pc, "bpf_spin_unlock of different lock")
        st.spin_lock = None
        self.invalidate_non_owning(st)

    def map_fields_access(self, pc: int, reg, off: int, size: int) -> None:
        """check_map_access: no load, store or helper touches a special field."""
        for at, fsize, name in fields(reg.map):
            if reg.smin + off < at + fsize and at < reg.umax + off + size:
                self.refuse(pc, f"{name} cannot be accessed directly by load/store")

    @staticmethod
    def keeps_id(reg) -> bool:
        """mark_ptr_or_null_reg: a non-NULL map value that may hold a lock keeps its id,
        which names the lock taken through it."""
        return reg.type == PTR_TO_MAP_VALUE and has_spin_lock(reg.map)
