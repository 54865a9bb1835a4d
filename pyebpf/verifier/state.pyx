# cython: annotation_typing=False, boundscheck=True, wraparound=True, cdivision=False
"""Register and stack state of the abstract interpreter (the kernel's
``struct bpf_reg_state``, ``bpf_stack_state``, ``bpf_func_state`` and
``bpf_verifier_state``), their copies, and the equivalence used to prune paths.
"""
from __future__ import annotations

cimport cython

from .reg cimport Reg as _Reg
# the register comparisons as C calls (their Python names are imported below, for the
# modules that take them from here)
from .reg cimport (check_ids as _check_ids, regs_safe as _regs_safe, regsafe as _regsafe,
                   same_raw as _same_raw, sig as _sig)

from . import tnum

M64, M32 = tnum.M64, tnum.M32
S64_MIN, S64_MAX = -(1 << 63), (1 << 63) - 1
S32_MIN, S32_MAX = -(1 << 31), (1 << 31) - 1

# enum bpf_reg_type (base types) and the PTR_MAYBE_NULL flag
NOT_INIT, SCALAR, PTR_TO_CTX, CONST_PTR_TO_MAP, PTR_TO_MAP_VALUE, PTR_TO_MAP_KEY, \
    PTR_TO_STACK, PTR_TO_PACKET_META, PTR_TO_PACKET, PTR_TO_PACKET_END, \
    PTR_TO_SOCK_COMMON, PTR_TO_MEM, PTR_TO_FUNC, PTR_TO_BTF_ID, PTR_TO_SOCKET, \
    PTR_TO_TCP_SOCK = range(16)
CONST_PTR_TO_DYNPTR = 16       # the dynptr a bpf_user_ringbuf_drain callback gets
PTR_TO_XDP_SOCK = 17           # an XSKMAP's AF_XDP socket (struct bpf_xdp_sock)
PTR_TO_ARENA = 18              # an address in the program's arena (arena.py)
MAYBE_NULL = 0x100
PTR_UNTRUSTED = 0x200          # memory the kernel reads with probe loads, any offset
MEM_RDONLY = 0x400             # memory the program may only read
# a dynptr's memory: a kfunc's slice carries its dynptr's type (get_dynptr_type_flag),
# bpf_dynptr_data's none (the kernel's plain PTR_TO_MEM), which pyebpf marks DYNPTR_MEM
DYNPTR_SKB = 0x800             # DYNPTR_TYPE_SKB: packet-changing helpers end it
DYNPTR_MEM = 0x1000            # bpf_dynptr_data's: a store over its dynptr ends it
DYNPTR_LOCAL = 0x80000         # DYNPTR_TYPE_LOCAL
DYNPTR_RINGBUF = 0x100000      # DYNPTR_TYPE_RINGBUF
DYNPTR_TYPE_FLAGS = DYNPTR_SKB | DYNPTR_LOCAL | DYNPTR_RINGBUF    # DYNPTR_TYPE_FLAG_MASK
DYNPTR_SLICE = DYNPTR_TYPE_FLAGS | DYNPTR_MEM
MEM_ALLOC = 0x2000              # an object of the program's own BTF type (bpf_obj_new)
MEM_RCU = 0x4000                # a BTF pointer valid in the RCU read-side section it came in
MEM_PERCPU = 0x8000             # a per-CPU variable's address (typed __ksym): only the
                                # per-CPU helpers take it
KERNEL_MEM = 0x10000            # memory of a kernel variable (PTR_TO_MEM sized by its BTF
                                # type: bpf_per_cpu_ptr's result), printed as "mem"
NON_OWN_REF = 0x20000           # an allocated object the program gave to a list: valid
                                # until the list's bpf_spin_lock is released
PTR_LEGACY = 0x40000            # the kernel's flagless PTR_TO_BTF_ID (a walked member it
                                # lists neither trusted nor RCU, a helper's result):
                                # readable, no trusted kfunc argument; pyebpf's flagless
                                # PTR_TO_BTF_ID is the kernel's PTR_TRUSTED
# the kernel's reg_type_str
TYPE_STR = {NOT_INIT: "?", SCALAR: "scalar", PTR_TO_CTX: "ctx", CONST_PTR_TO_MAP: "map_ptr",
            PTR_TO_MAP_VALUE: "map_value", PTR_TO_MAP_KEY: "map_key", PTR_TO_STACK: "fp",
            PTR_TO_PACKET_META: "pkt_meta", PTR_TO_PACKET: "pkt", PTR_TO_PACKET_END: "pkt_end",
            PTR_TO_SOCK_COMMON: "sock_common", PTR_TO_MEM: "ringbuf_mem", PTR_TO_FUNC: "func",
            PTR_TO_BTF_ID: "ptr_", PTR_TO_SOCKET: "sock", PTR_TO_TCP_SOCK: "tcp_sock",
            CONST_PTR_TO_DYNPTR: "dynptr_ptr", PTR_TO_XDP_SOCK: "xdp_sock",
            PTR_TO_ARENA: "arena"}
PKT_TYPES = (PTR_TO_PACKET, PTR_TO_PACKET_META)

# stack byte kinds (enum bpf_stack_slot_type)
STACK_INVALID, STACK_SPILL, STACK_MISC, STACK_ZERO = 0, 1, 2, 3
STACK_DYNPTR, STACK_ITER, STACK_IRQ_FLAG = 4, 5, 6

# a scalar's id flags: the scalar is its id's value plus the constant in its ``off``
# (``r1 = r2; r1 += 4``: adjust_reg_min_max_vals), so bounds learnt on one reach the
# other; by a 32-bit add (``w1 += 4``), the sum's low 32 bits
BPF_ADD_CONST64, BPF_ADD_CONST32 = 1 << 31, 1 << 30
BPF_ADD_CONST = BPF_ADD_CONST64 | BPF_ADD_CONST32


def type_str(t: int) -> str:
    base = TYPE_STR[t & 0xFF]
    if t & (DYNPTR_SLICE | KERNEL_MEM):
        base = "rdonly_mem" if t & MEM_RDONLY else "mem"
    if base == "ptr_":
        base = ("rcu_" if t & MEM_RCU else "") + ("untrusted_" if t & PTR_UNTRUSTED else "") \
            + base
    if t & MEM_PERCPU:
        # reg_type_str's prefix order: percpu_ before rcu_ and untrusted_
        base = "percpu_" + base
    if t & MAYBE_NULL:
        # reg_type_str: a BTF pointer's postfix goes after its "ptr_" prefix
        return base[:-1] + "_or_null_" if base.endswith("ptr_") else base + "_or_null"
    return base


def s64(v: int) -> int:
    v &= M64
    return v - (1 << 64) if v >> 63 else v


def s32(v: int) -> int:
    v &= M32
    return v - (1 << 32) if v >> 31 else v


# Reg (the kernel's bpf_reg_state) is compiled (reg.pyx): copying registers is most of
# what the verifier's state copies cost.
from .reg import (Reg, check_ids, fields_as_members, regs_safe, regsafe, same_raw,  # noqa: E402,F401
                  scalar)


# Slot, Frame and VState are C types (their fields declared in state.pxd, read directly
# here and by precision.pyx): a copy at every branch and checkpoint
@cython.final
cdef class Slot:
    """An 8-byte stack slot: the kind of each byte (index 0 = lowest address) and the
    register spilled there."""

    def __init__(self):
        self.kinds = [STACK_INVALID] * 8
        self.spill: Reg | None = None

    cpdef Slot copy(self):
        cdef Slot s = Slot.__new__(Slot)
        s.kinds = list(self.kinds)
        s.spill = self.spill.copy() if self.spill is not None else None
        return s


@cython.final
cdef class Frame:
    """One function's registers and stack (``bpf_func_state``); ``callsite`` is the
    call instruction that entered it, ``subprog`` the function's index, ``in_callback``
    whether a helper (bpf_loop) called it, ``callback_depth`` how many calls of a
    callback its helper call has queued in a row (bpf_loop stops at its count);
    ``allocated`` the 8-byte slots below the frame pointer any access has reached
    (allocated_stack / 8: grow_stack_state), which forgetting a dead slot keeps."""

    def __init__(self, callsite: int, subprog: int, frameno: int):
        self.regs = [Reg() for _ in range(11)]
        self.stack: dict[int, Slot] = {}
        self.callsite, self.subprog, self.frameno = callsite, subprog, frameno
        self.in_callback = False
        self.callback_depth = 0
        self.allocated = 0

    cpdef Frame copy(self):
        cdef Frame f = Frame.__new__(Frame)
        f.regs = [(<_Reg>r).copy() for r in self.regs]
        f.stack = {k: (<Slot?>s).copy() for k, s in self.stack.items()}
        f.callsite, f.subprog, f.frameno = self.callsite, self.subprog, self.frameno
        f.in_callback = self.in_callback
        f.callback_depth = self.callback_depth
        f.allocated = self.allocated
        return f


@cython.final
cdef class VState:
    """A whole verifier state: the call frames, acquired references (id -> insn),
    and the checkpoint it descends from (``parent``) with its open-branch count;
    ``callback_unroll_depth`` counts the callback calls queued on the way here (a
    state repeated in a later call of a callback is no infinite loop); ``rcu_lock``
    and ``preempt_locks`` the bpf_rcu_read_lock and bpf_preempt_disable regions the
    path is in (active_rcu_lock, active_preempt_locks); a checkpoint's ``hits`` and
    ``misses`` count the paths it pruned and failed to, ``evicted`` that it was
    forgotten; ``hist`` the instructions run since the parent checkpoint (a
    checkpoint's: from its parent to it), each a pc or ``(pc, linked, slot)``
    (the registers and stack slots of any frame a conditional jump linked, the
    ``(frame, slot)`` a load or store reached), which precision tracking walks back;
    ``spin_lock`` the bpf_spin_lock held, (its map, the locked map value's id), or None;
    ``locks`` every lock held, bpf_spin_lock and bpf_res_spin_lock alike, in the order
    taken, each (kind, map, id) (the kernel's lock references: active_locks, the last
    one active_lock_id); ``irqs`` the irq flags saved and not restored, in the order
    saved, each (id, insn) (the kernel's irq references, the last one active_irq_id)."""

    def __init__(self):
        self.frames: list[Frame] = []
        self.refs: dict[int, int] = {}
        self.parent: VState | None = None
        self.branches = 0
        self.insn = 0
        self.sig = None
        self.may_goto_depth = 0
        self.callback_unroll_depth = 0
        self.rcu_lock = False
        self.preempt_locks = 0
        self.hits = self.misses = 0
        self.evicted = False
        self.hist: list = []
        self.hist_len = 0   # the kernel's jmp_history entries since the last checkpoint
        self.spin_lock = None
        self.locks: tuple = ()
        self.irqs: tuple = ()
        self.dfs_depth = 0  # the checkpoints on the way here (find_prev_entry orders by it)

    @property
    def cur(self) -> Frame:
        return self.frames[-1]

    cpdef VState copy(self):
        cdef VState v = VState.__new__(VState)
        v.frames = [(<Frame?>f).copy() for f in self.frames]
        v.refs = dict(self.refs)
        v.parent, v.branches, v.insn = self.parent, 0, self.insn
        v.sig = None
        v.may_goto_depth = self.may_goto_depth
        v.callback_unroll_depth = self.callback_unroll_depth
        v.rcu_lock, v.preempt_locks = self.rcu_lock, self.preempt_locks
        v.hits = v.misses = 0
        v.evicted = False
        v.hist = list(self.hist)
        v.hist_len = self.hist_len
        v.spin_lock = self.spin_lock
        v.locks, v.irqs = self.locks, self.irqs
        v.dfs_depth = self.dfs_depth
        return v

    def all_regs(self):
        """Every register and spilled register of every frame."""
        for f in self.frames:
            yield from f.regs
            for s in f.stack.values():
                if s.spill is not None:
                    yield s.spill


# --- state equivalence (the kernel's states_equal / regsafe / stacksafe) ------------

# range_within, check_ids, regsafe and regs_safe (the registers' part of the comparison), and
# signature (the exact comparison's lookup key) are compiled with the register
# (reg.pyx): the comparisons of every checkpoint a path meets are most of what pruning
# costs.


_UNBOUND = Reg(SCALAR)


def _scalar_for_slot(Slot s, uninit_ok: bool) -> Reg | None:
    """scalar_reg_for_stack: what a load of the whole slot gives, when that is a scalar
    (a spilled 64-bit scalar; any number for bytes all misc, or uninitialised that a
    privileged loader may read)."""
    if s.kinds[0] == STACK_SPILL and s.spill is not None and s.spill.type == SCALAR and \
            all(k == STACK_SPILL for k in s.kinds):
        return s.spill
    if all(k == STACK_MISC or k == STACK_INVALID and uninit_ok for k in s.kinds):
        return _UNBOUND
    return None


def _object_slot_safe(kind: int, old: Reg, cur: Reg, idmap: dict) -> bool:
    # stacksafe's STACK_ITER, STACK_DYNPTR and STACK_IRQ_FLAG cases, exact or not: the
    # slot's marker compares by what the object is (an iterator's kind and state, a
    # dynptr's kind and slot, an irq flag's kfunc class) and its reference, never as a
    # register; an iterator's depth (``range``) is left out so its loop converges
    if kind == STACK_ITER:
        return old.size == cur.size and old.var == cur.var and \
            _check_ids(old.ref, cur.ref, idmap)
    if kind == STACK_DYNPTR:
        return old.var == cur.var and old.size == cur.size and \
            _check_ids(old.ref, cur.ref, idmap)
    return old.size == cur.size and _check_ids(old.ref, cur.ref, idmap)


_INVALID_SLOT = [STACK_INVALID] * 8
_NEVER_WRITTEN = Slot()


cdef bint _stacksafe(Frame old, Frame cur, dict idmap, bint exact, bint ranges,
                    bint uninit_ok, bint within, bint alu_limits) except -1:
    cdef Slot os_, cs
    if within:
        # 6.18's stacksafe under RANGE_WITHIN: each byte of old's allocated stack has
        # the same kind in cur, a slot old forgot as dead (STACK_INVALID) included, so
        # a dead slot matches only a slot cur never wrote either (bpf-next relaxed
        # this after 6.18, "allow states pruning for misc/invalid slots in iterator
        # loops")
        if cur.allocated < old.allocated:
            return False
        for spi in range(old.allocated):
            os_, cs = old.stack.get(spi), cur.stack.get(spi)
            if (os_.kinds if os_ is not None else _INVALID_SLOT) != \
                    (cs.kinds if cs is not None else _INVALID_SLOT):
                return False
    for spi, os_ in old.stack.items():
        cs = cur.stack.get(spi)
        if not exact and (cs is not None or spi < cur.allocated):
            # a spilled 64-bit scalar against bytes that load as any number, or the
            # other way round, compare as registers (scalar_reg_for_stack); a slot of
            # cur's allocated stack it never wrote is such bytes too (STACK_INVALID)
            o_reg = _scalar_for_slot(os_, uninit_ok)
            if o_reg is not None and (os_.kinds[0] == STACK_SPILL or not uninit_ok):
                c_reg = _scalar_for_slot(cs if cs is not None else _NEVER_WRITTEN,
                                         uninit_ok)
                if c_reg is not None:
                    if not _regsafe(o_reg, c_reg, idmap, exact, ranges, alu_limits):
                        return False
                    continue
        ck = cs.kinds if cs is not None else [STACK_INVALID] * 8
        for i in range(8):
            ok_, ck_ = os_.kinds[i], ck[i]
            if exact:
                if ok_ != ck_:
                    return False
                continue
            if ok_ == STACK_INVALID:
                continue
            if ok_ == STACK_MISC and (uninit_ok or ck_ == STACK_MISC or ck_ == STACK_ZERO):
                continue        # allow_uninit_stack: whatever is there reads as misc
            if ok_ != ck_:
                return False
        if os_.kinds[0] in (STACK_ITER, STACK_DYNPTR, STACK_IRQ_FLAG):
            if os_.spill is not None and (cs is None or cs.spill is None or
                                          not _object_slot_safe(os_.kinds[0], os_.spill,
                                                                cs.spill, idmap)):
                return False
        elif os_.kinds[7] == STACK_SPILL or os_.kinds[0] == STACK_SPILL:
            if os_.spill is not None and (cs is None or cs.spill is None or
                                          not _regsafe(os_.spill, cs.spill, idmap, exact,
                                                      ranges, alu_limits)):
                return False
    if exact:
        for spi, cs in cur.stack.items():
            if spi not in old.stack and any(k != STACK_INVALID for k in cs.kinds):
                return False
    return True


cdef inline bint _ne(object a, object b) except -1:
    # the states' counters and call sites are ints, mostly the same small ones: the
    # same object is equal without Python's comparison
    return a is not b and a != b


cpdef bint states_equal(VState old, VState cur, list live_regs, bint exact=False,
                        bint ranges=True, bint uninit_ok=True, bint within=False,
                        bint alu_limits=False) except -1:
    """``live_regs[i]``: the registers of frame ``i`` read later, in order (an exact
    comparison looks at r0-r9 of every frame); ``ranges`` as :func:`regsafe`'s;
    ``uninit_ok``: a privileged loader's (allow_uninit_stack); ``within``: the
    kernel's RANGE_WITHIN (a loop's states: ``ranges``, and an uninitialised register
    or stack byte of ``old`` matches only an uninitialised one); ``alu_limits``: the
    kernel's explore_alu_limits (:func:`regsafe`)."""
    cdef Frame of, cf
    cdef Py_ssize_t i, n = len(old.frames)
    if n != len(cur.frames):
        return False
    cdef dict idmap = {}
    if old.refs or cur.refs or old.locks or cur.locks or old.irqs or cur.irqs or \
            old.spin_lock is not None or cur.spin_lock is not None or \
            _ne(old.rcu_lock, cur.rcu_lock) or _ne(old.preempt_locks, cur.preempt_locks):
        if not _held_safe(old, cur, idmap, exact):
            return False
    for i in range(n):
        of, cf = old.frames[i], cur.frames[i]
        if _ne(of.callsite, cf.callsite) or \
                of.callback_depth is not cf.callback_depth and \
                of.callback_depth > cf.callback_depth:
            return False
        if not _regs_safe(of.regs, cf.regs, live_regs[i], idmap, exact, ranges, within,
                          alu_limits):
            return False
        if (of.stack or exact and cf.stack or within and of.allocated) and \
                not _stacksafe(of, cf, idmap, exact, ranges, uninit_ok, within, alu_limits):
            return False
    if old.refs:        # (as many as cur's: _held_safe)
        for a, b in zip(sorted(old.refs), sorted(cur.refs)):
            if not _check_ids(a, b, idmap):
                return False
    return True


def _held_safe(VState old, VState cur, idmap: dict, exact: bool) -> bool:
    """states_equal's references, locks, irq flags and RCU and preemption regions
    (refsafe); their ids mapped into ``idmap`` before the registers'."""
    # an exact comparison too maps the references' ids (refsafe's check_ids): a loop
    # that acquires afresh each time round repeats itself with new ids
    if len(old.refs) != len(cur.refs) or old.rcu_lock != cur.rcu_lock or \
            old.preempt_locks != cur.preempt_locks or \
            (old.spin_lock is None) != (cur.spin_lock is None) or \
            len(old.locks) != len(cur.locks) or len(old.irqs) != len(cur.irqs):
        return False
    if old.spin_lock is not None and (old.spin_lock[0] is not cur.spin_lock[0] or
                                      not _check_ids(old.spin_lock[1], cur.spin_lock[1],
                                                    idmap)):
        return False        # refsafe: the same lock, its id mapped as the registers' are
    for (okind, omap, oid), (ckind, cmap, cid) in zip(old.locks, cur.locks):
        if okind != ckind or omap is not cmap or not _check_ids(oid, cid, idmap):
            return False
    for (oid, _), (cid, _) in zip(old.irqs, cur.irqs):
        if not _check_ids(oid, cid, idmap):
            return False
    return True


@cython.no_gc     # its tuple holds ints, bytes, None and tuples of them: no cycles
cdef class Sig:
    """signature's key: the tuple ``key`` and its hash, computed once.  A checkpoint's
    key is hashed when it is looked up, when it is filed and when its path ends; a
    tuple computes its hash again each time, over every field of every register.
    Equal keys compare equal, as their tuples do."""

    def __cinit__(self, tuple key):
        self.key = key
        self._hash = hash(key)

    def __hash__(self):
        return self._hash

    def __eq__(self, other):
        if not isinstance(other, Sig):
            return NotImplemented
        return self._hash == (<Sig>other)._hash and self.key == (<Sig>other).key


cpdef Sig signature(VState st, list live_regs):
    """What an exact comparison looks at, ids aside: equal states have equal
    signatures, so an exact repeat is looked up instead of searched for.
    ``live_regs[i]``: the registers of frame ``i`` compared, in order.  Asked at every
    prune point an open state shares (every visit of a loop's)."""
    cdef list out = [], items, regs
    cdef Frame f
    cdef Slot s
    cdef Py_ssize_t i, n = min(len(st.frames), len(live_regs))
    for i in range(n):
        f = st.frames[i]
        alive = live_regs[i]
        regs = f.regs
        items = []
        for spi, s in f.stack.items():
            kinds = s.kinds
            for k in kinds:
                if k != STACK_INVALID:
                    break
            else:
                continue
            items.append((spi, tuple(kinds), _sig(s.spill) if s.spill is not None else None))
        items.sort()
        out.append((f.callsite, alive, tuple([_sig(regs[k]) for k in alive]), tuple(items)))
    return Sig((tuple(out), len(st.refs), st.spin_lock is not None, len(st.locks),
                len(st.irqs)))


cpdef bint maybe_looping(VState old, VState cur) except -1:
    """states_maybe_looping: the current frame's registers are the same, dead ones and
    ids included, before an exact comparison may call a state a repeat (a loop that
    copies a value gives it a new id each time round, and is then explored on)."""
    if len(old.frames) != len(cur.frames):
        return False
    for a, b in zip(old.frames[-1].regs, cur.frames[-1].regs):
        if not _same_raw(a, b):
            return False
    return True


# the fields Python (interp.py) reads and writes per instruction, as member descriptors
# (reg.pyx's fields_as_members says why)
fields_as_members(Slot, ("kinds", "spill"))
fields_as_members(Frame, ("regs", "stack", "callsite", "subprog", "frameno", "in_callback",
                          "callback_depth", "allocated"))
fields_as_members(VState, ("frames", "refs", "parent", "branches", "insn", "sig",
                           "may_goto_depth", "callback_unroll_depth", "rcu_lock",
                           "preempt_locks", "hits", "misses", "evicted", "hist", "hist_len",
                           "spin_lock", "locks", "irqs", "dfs_depth"))
