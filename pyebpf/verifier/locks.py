"""bpf_spin_lock and bpf_res_spin_lock in the verifier: which value a lock is taken on
and given back (``process_spin_lock`` in ``kernel/bpf/verifier.c``), what a program may
not do while it holds one (``do_check``'s call rule, ``check_resource_leak``), the
special fields of a map value that loads and stores may not touch
(``check_map_access``), and the program types that may not use a map whose value holds
a lock (``check_map_prog_compatibility``).

A map's special fields come from its value's BTF (:mod:`pyebpf.btf.fields`):
``Map.spin_lock_off``, ``Map.res_spin_lock_off`` and ``Map.timer_off``.  One
bpf_spin_lock at a time (``VState.spin_lock``: the map, the id of the map value pointer
it was taken through), but any number of bpf_res_spin_locks, each taken once (the
kernel refuses the AA deadlock it can see) and given back in the reverse order of all
the locks held (``VState.locks``).  A bpf_res_spin_lock can fail: the kfunc's call
forks a path where it returned an error and took nothing (``check_kfunc_call``).
"""
from __future__ import annotations

import weakref

from .. import isa
from ..btf.fields import GRAPH_ROOT_SIZES
from .alloc import lock_owner, object_lock_off
from .lists import LIST_KFUNCS
from .rbtree import RBTREE_KFUNCS
from .state import MEM_ALLOC, PTR_TO_BTF_ID, PTR_TO_MAP_VALUE

SPIN_LOCK_ID = isa.HELPER_IDS["spin_lock"]
SPIN_UNLOCK_ID = isa.HELPER_IDS["spin_unlock"]
RES_LOCK_KFUNCS = frozenset({"bpf_res_spin_lock", "bpf_res_spin_unlock",
                             "bpf_res_spin_lock_irqsave", "bpf_res_spin_unlock_irqrestore"})
# kfunc_spin_allowed: is_bpf_graph_api_kfunc, is_bpf_iter_num_api_kfunc,
# is_bpf_res_spin_lock_kfunc
_SPIN_ALLOWED = LIST_KFUNCS | RBTREE_KFUNCS | RES_LOCK_KFUNCS | {
    "bpf_refcount_acquire_impl", "bpf_iter_num_new", "bpf_iter_num_next",
    "bpf_iter_num_destroy"}
# the kinds of lock a VState.locks entry holds (enum ref_state_type)
LOCK, RES_LOCK, RES_LOCK_IRQ = "lock", "res_lock", "res_lock_irq"


def fields(m) -> list[tuple[int, int, str]]:
    """(offset, size, name) of the special fields of map ``m``'s value, by offset."""
    out = [(g.off, GRAPH_ROOT_SIZES[g.kind], g.kind) for g in getattr(m, "graph_roots", ())]
    lock, timer = getattr(m, "spin_lock_off", None), getattr(m, "timer_off", None)
    if lock is not None:
        out.append((lock, isa.SIZEOF_BPF_SPIN_LOCK, "bpf_spin_lock"))
    if timer is not None:
        out.append((timer, isa.SIZEOF_BPF_TIMER, "bpf_timer"))
    if getattr(m, "res_spin_lock_off", None) is not None:
        out.append((m.res_spin_lock_off, isa.SIZEOF_BPF_RES_SPIN_LOCK, "bpf_res_spin_lock"))
    if getattr(m, "wq_off", None) is not None:
        out.append((m.wq_off, isa.SIZEOF_BPF_WQ, "bpf_wq"))
    if getattr(m, "task_work_off", None) is not None:
        out.append((m.task_work_off, isa.SIZEOF_BPF_TASK_WORK, "bpf_task_work"))
    return sorted(out)


def has_spin_lock(m) -> bool:
    """reg_may_point_to_spin_lock: the map's value holds a lock of either kind."""
    return getattr(m, "spin_lock_off", None) is not None or \
        getattr(m, "res_spin_lock_off", None) is not None


# the maps of maps' templates the verifier has met as the inner map of a lookup: the
# kernel's inner_map_meta (bpf_map_meta_alloc) copies no name from its template
INNER_MAP_METAS = weakref.WeakSet()

MAPS_OF_MAPS = (isa.MapType.BPF_MAP_TYPE_ARRAY_OF_MAPS, isa.MapType.BPF_MAP_TYPE_HASH_OF_MAPS)


def map_name(m) -> str:
    """The name the kernel knows a map by (BPF_OBJ_NAME_LEN - 1 characters); none for
    a map of maps' inner map met through a lookup."""
    if m in INNER_MAP_METAS:
        return ""
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
        for pc in self.lddws:
            if self.ops[pc].disc_value not in (isa.BPF_PSEUDO_MAP_FD, isa.BPF_PSEUDO_MAP_VALUE):
                continue
            m = self.maps(self.insns[pc].imm)
            if m is not None:
                self.map_prog_compatible(pc, m)
                self.arena_map_used(pc, m)

    def call_under_lock(self, st, pc: int, insn) -> None:
        """do_check: a program holding a lock (of either kind) calls nothing but
        bpf_spin_unlock and the kfuncs kfunc_spin_allowed names (the list kfuncs,
        bpf_refcount_acquire, the numeric iterator, the bpf_res_spin_lock kfuncs)."""
        if not st.locks:
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
        if st.locks:
            self.refuse(pc, f"{prefix} cannot be used inside bpf_spin_lock-ed region")

    def spin_lock_arg(self, st, pc: int, regno: int, reg, is_lock: bool) -> None:
        """bpf_spin_lock's and bpf_spin_unlock's argument (not in an rbtree's ``less``
        callback, which runs under the tree's lock: check_func_arg)."""
        if self.in_rbtree_cb(st):
            self.refuse(pc, "can't spin_{lock,unlock} in rbtree cb")
        self.lock_arg(st, pc, regno, reg, LOCK, is_lock)

    def res_lock_arg(self, st, pc: int, reg, kind: str, is_lock: bool) -> None:
        """check_kfunc_args' KF_ARG_PTR_TO_RES_SPIN_LOCK: the lock of a map value."""
        if reg.type != PTR_TO_MAP_VALUE and reg.type != PTR_TO_BTF_ID | MEM_ALLOC:
            self.refuse(pc, "arg#0 doesn't point to map value or allocated object")
        self.lock_arg(st, pc, 1, reg, kind, is_lock)

    def lock_arg(self, st, pc: int, regno: int, reg, kind: str, is_lock: bool) -> None:
        """process_spin_lock: ``reg`` points at the lock of ``kind`` of a map value."""
        lock = "bpf_spin" if kind == LOCK else "bpf_res_spin"
        if not reg.is_const:
            self.refuse(pc, f"R{regno} doesn't have constant offset. {lock}_lock has to be "
                            f"at the constant offset")
        if reg.type == PTR_TO_MAP_VALUE:
            m = reg.map
            if getattr(m, "value_type", None) is None:
                self.refuse(pc, f"map '{map_name(m)}' has to have BTF in order to use "
                                f"{lock}_lock")
            off = getattr(m, "spin_lock_off" if kind == LOCK else "res_spin_lock_off", None)
            if off is None:
                self.refuse(pc, f"map '{map_name(m)}' has no valid {lock}_lock")
        else:
            # an allocated object (bpf_obj_new) locks with the fields of its BTF struct;
            # the lock names the BTF and the object's id (process_spin_lock's ptr)
            m = lock_owner(reg)
            # btf_parse_struct_metas records a bpf_spin_lock, never a bpf_res_spin_lock
            off = object_lock_off(reg.map) if kind == LOCK else None
            if off is None:
                self.refuse(pc, f"local 'kptr' has no valid {lock}_lock")
        at = reg.value + reg.off
        if at != off:
            self.refuse(pc, f"off {at} doesn't point to 'struct {lock}_lock' that is at "
                            f"{off}")
        if is_lock:
            if kind == LOCK and st.spin_lock is not None:
                self.refuse(pc, "Locking two bpf_spin_locks are not allowed")
            if kind != LOCK and any(k != LOCK and lm is m and i == reg.id
                                    for k, lm, i in st.locks):
                self.refuse(pc, "Acquiring the same lock again, AA deadlock detected")
            st.locks += ((kind, m, reg.id),)
            if kind == LOCK:
                st.spin_lock = (m, reg.id)
            return
        if not st.locks:
            self.refuse(pc, f"{lock}_unlock without taking a lock")
        if not any(k == kind and lm is m and i == reg.id for k, lm, i in st.locks):
            self.refuse(pc, f"{lock}_unlock of different lock")
        if st.locks[-1][1] is not m or st.locks[-1][2] != reg.id:
            self.refuse(pc, f"{lock}_unlock cannot be out of order")
        st.locks = st.locks[:-1]
        if kind == LOCK:
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
        if reg.type & 0xFF == PTR_TO_BTF_ID and reg.type & MEM_ALLOC:
            # reg_may_point_to_spin_lock: an allocated object's lock is named by it too
            return object_lock_off(reg.map) is not None
        return reg.type == PTR_TO_MAP_VALUE and has_spin_lock(reg.map)
