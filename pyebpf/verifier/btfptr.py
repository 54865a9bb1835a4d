"""Reads through pointers to kernel structs (``PTR_TO_BTF_ID``): the kernel's
``check_ptr_to_btf_access`` and the member walk of ``btf_struct_walk``, over the
target BTF (:func:`pyebpf.btf.relo.target_btf`).

A register of type ``PTR_TO_BTF_ID`` keeps the struct it points at in ``Reg.map``.

Typed ``__ksym`` variables (``check_pseudo_btf_id``): a per-CPU one (a VAR of the
``.data..percpu`` DATASEC) is ``PTR_TO_BTF_ID | MEM_PERCPU`` of its type, which only
``bpf_per_cpu_ptr`` and ``bpf_this_cpu_ptr`` take; those give ``PTR_TO_MEM | MEM_RDONLY``
sized by the type for a type that is no struct, else ``PTR_TO_BTF_ID`` of the struct
(``RET_PTR_TO_MEM_OR_BTF_ID``); per_cpu_ptr's may be NULL.  Any other variable is
that read-only memory or BTF pointer itself.  The helpers also take an RCU pointer to a
per-CPU object (``PTR_TO_BTF_ID | MEM_PERCPU | MEM_RCU``: :mod:`.kptrs`), and give one
CPU's copy of it, an allocated object the program reads and writes.
What a read of a pointer member gives (``check_ptr_to_btf_access``): from a trusted or
RCU pointer, a trusted pointer where the kernel's ``BTF_TYPE_SAFE_TRUSTED`` table lists
the member (``..._TRUSTED_OR_NULL``: one that may be NULL), an RCU pointer (``MEM_RCU``)
where ``BTF_TYPE_SAFE_RCU`` lists it (``..._RCU_OR_NULL``: one that may be NULL), else
the legacy flagless pointer (:data:`PTR_LEGACY`); from a legacy pointer a legacy one, from
an untrusted one an untrusted one.  The kernel emits those tables into its BTF as structs
named ``<struct>__safe_rcu`` and so on (``BTF_TYPE_EMIT``); they are read from the target
BTF.  A tc or socket filter program is never sleepable, so it is always in an RCU
read-side section (``in_rcu_cs``); ``bpf_rcu_read_unlock`` makes the RCU pointers
untrusted.

``bpf_rdonly_cast`` to ``void`` gives read-only untrusted memory
(``PTR_TO_MEM | PTR_UNTRUSTED``): any read is allowed (the kernel makes it a probe
load), no write.

A map pointer (``CONST_PTR_TO_MAP``) reads as the struct its map type's ops name
(``check_ptr_to_map_access``: ``map_btf_id``, :data:`MAP_STRUCTS`), privileged programs
only, at non-negative offsets, never written; a pointer member gives the legacy
pointer.  The engine answers the reads (map_struct.pxi).
"""
from __future__ import annotations

from .. import isa
from ..btf import Kind
from ..btf.relo import target_btf
from . import tnum
from .state import (KERNEL_MEM, MAYBE_NULL, MEM_ALLOC, MEM_PERCPU, MEM_RCU, MEM_RDONLY,
                    PTR_LEGACY,
                    PTR_TO_BTF_ID, PTR_TO_CTX, PTR_TO_MEM, PTR_UNTRUSTED, Reg, scalar,
                    type_str)

SCALAR_READ, POINTER_READ = "scalar", "pointer"

# the suffixes of the kernel's BTF_TYPE_SAFE_* tables in its BTF (type_is_trusted,
# type_is_trusted_or_null, type_is_rcu, type_is_rcu_or_null)
SAFE_TRUSTED, SAFE_TRUSTED_OR_NULL = "__safe_trusted", "__safe_trusted_or_null"
SAFE_RCU, SAFE_RCU_OR_NULL = "__safe_rcu", "__safe_rcu_or_null"
# the flags of a BTF pointer whose members the tables describe: trusted or RCU
# (is_trusted_reg, is_rcu_reg)
_TRUSTED_OR_RCU = (PTR_TO_BTF_ID, PTR_TO_BTF_ID | MEM_RCU)


_T = isa.MapType
# the struct each map type's ops name as map_btf_id (the *_map_btf_ids of kernel/bpf/)
MAP_STRUCTS = {
    **dict.fromkeys([_T.BPF_MAP_TYPE_ARRAY, _T.BPF_MAP_TYPE_PERCPU_ARRAY,
                     _T.BPF_MAP_TYPE_PROG_ARRAY, _T.BPF_MAP_TYPE_PERF_EVENT_ARRAY,
                     _T.BPF_MAP_TYPE_CGROUP_ARRAY, _T.BPF_MAP_TYPE_ARRAY_OF_MAPS], "bpf_array"),
    **dict.fromkeys([_T.BPF_MAP_TYPE_HASH, _T.BPF_MAP_TYPE_PERCPU_HASH,
                     _T.BPF_MAP_TYPE_LRU_HASH, _T.BPF_MAP_TYPE_LRU_PERCPU_HASH,
                     _T.BPF_MAP_TYPE_HASH_OF_MAPS], "bpf_htab"),
    _T.BPF_MAP_TYPE_LPM_TRIE: "lpm_trie",
    _T.BPF_MAP_TYPE_STACK_TRACE: "bpf_stack_map",
    _T.BPF_MAP_TYPE_RINGBUF: "bpf_ringbuf_map",
    _T.BPF_MAP_TYPE_USER_RINGBUF: "bpf_ringbuf_map",
    _T.BPF_MAP_TYPE_QUEUE: "bpf_queue_stack",
    _T.BPF_MAP_TYPE_STACK: "bpf_queue_stack",
    _T.BPF_MAP_TYPE_BLOOM_FILTER: "bpf_bloom_filter",
    _T.BPF_MAP_TYPE_SOCKMAP: "bpf_stab",
    _T.BPF_MAP_TYPE_SOCKHASH: "bpf_shtab",
    _T.BPF_MAP_TYPE_DEVMAP: "bpf_dtab",
    _T.BPF_MAP_TYPE_DEVMAP_HASH: "bpf_dtab",
    _T.BPF_MAP_TYPE_CPUMAP: "bpf_cpu_map",
    _T.BPF_MAP_TYPE_XSKMAP: "xsk_map",
}


class WalkError(Exception):
    """The kernel's message for a read the walk refuses."""


def _member_type(btf, type_id: int):
    """(type with modifiers skipped, size, element type, element count) of a member, as
    ``__btf_resolve_size`` linearizes arrays."""
    t = btf.types[type_id].resolve()
    if t.kind != Kind.ARRAY:
        return t, t.byte_size, None, 1
    count, elem = 1, t
    while elem.kind == Kind.ARRAY:
        count *= elem.nelems
        elem = elem.target.resolve()
    return t, t.byte_size, elem, count


def walk(struct, off: int, size: int):
    """What reading ``size`` bytes at ``off`` of ``struct`` gives: (SCALAR_READ, None,
    None) or (POINTER_READ, the struct pointed at or None for a pointer to anything else,
    the pointer member's name); raises WalkError with the kernel's message."""
    t = struct
    while True:
        if off + size > t.size:
            raise WalkError(f"access beyond struct {t.name} at off {off} size {size}")
        nested = None
        for m in t.members:
            moff = m.bit_offset // 8
            if off + size <= moff:
                break
            if m.bitfield_size:
                end = (m.bit_offset + m.bitfield_size + 7) // 8
                if off <= moff and end <= off + size:
                    return SCALAR_READ, None, None
                continue
            if off < moff:
                break
            mtype, msize, elem, count = _member_type(t.btf, m.type_id)
            true_end = moff + msize
            if off >= true_end:
                continue
            if mtype.kind == Kind.ARRAY:
                if moff == true_end:
                    continue
                msize //= count
                moff += (off - moff) // msize * msize
                mtype = elem
            if mtype.kind in (Kind.STRUCT, Kind.UNION):
                nested = (mtype, off - moff)
                break
            if mtype.kind == Kind.PTR:
                if msize != size or off != moff:
                    raise WalkError(f"cannot access ptr member {m.name} with moff {moff} in "
                                    f"struct {t.name} with off {off} size {size}")
                target = mtype.target.resolve()
                return POINTER_READ, (target if target.kind in (Kind.STRUCT, Kind.UNION)
                                      else None), m.name
            if off + size > true_end:
                raise WalkError(f"access beyond the end of member {m.name} (mend:{true_end}) "
                                f"in struct {t.name} with off {off} size {size}")
            return SCALAR_READ, None, None
        if nested is None:
            raise WalkError(f"struct {t.name} doesn't have field at offset {off}")
        t, off = nested


class BtfPointers:
    """The ``PTR_TO_BTF_ID`` side of :class:`~pyebpf.verifier.interp.Interpreter`
    (mixed in): the two casting kfuncs' results and reads through their pointers."""

    def kfunc_btf_return(self, st, pc: int, name: str) -> Reg | None:
        """r0 of ``bpf_cast_to_kern_ctx`` (the program's ``struct sk_buff``, trusted),
        ``bpf_rdonly_cast`` (the struct its constant BTF id names, untrusted) and
        ``bpf_get_kmem_cache`` (a ``struct kmem_cache``, untrusted: the cache may go
        away; not NULL-able despite its KF_RET_NULL: the 6.18 kernel loads a program
        reading through it unchecked, whose probe loads read a NULL as zeroes); None for
        other kfuncs."""
        if name == "bpf_get_kmem_cache":
            r = _btf_reg(target_btf().by_name("kmem_cache", Kind.STRUCT)[0])
            r.type |= PTR_UNTRUSTED
            return r
        if name == "bpf_cast_to_kern_ctx":
            if st.cur.regs[1].type != PTR_TO_CTX:
                self.refuse(pc, f"arg#0 expected pointer to ctx, but got "
                                f"{type_str(st.cur.regs[1].type)}")
            return _btf_reg(target_btf().by_name("sk_buff", Kind.STRUCT)[0])
        if name != "bpf_rdonly_cast":
            return None
        btf = target_btf()
        type_id = st.cur.regs[2].umin
        t = btf.types[type_id] if type_id < len(btf.types) else None
        if t is not None and t.kind == Kind.UNKN:
            r = Reg(PTR_TO_MEM | PTR_UNTRUSTED)
            r.mark_known(0)
            return r
        if t is None or t.kind not in (Kind.STRUCT, Kind.UNION):
            self.refuse(pc, "kfunc bpf_rdonly_cast type ID argument must be of a struct or "
                            "void")
        return _btf_reg(t)

    def task_reg(self) -> Reg:
        """r0 of ``bpf_get_current_task_btf`` (RET_PTR_TO_BTF_ID_TRUSTED): the current
        ``struct task_struct``, never NULL."""
        return _btf_reg(_struct("task_struct"))

    def vma_reg(self) -> Reg:
        """r2 of ``bpf_find_vma``'s callback: the mapping's ``struct vm_area_struct``."""
        return _btf_reg(_struct("vm_area_struct"))

    def struct_reg(self, name: str) -> Reg:
        """r0 of a helper returning RET_PTR_TO_BTF_ID of ``struct name``."""
        return _btf_reg(_struct(name))

    def btf_arg(self, pc: int, regno: int, reg: Reg, name: str) -> None:
        """check_reg_type of ARG_PTR_TO_BTF_ID for a helper taking a ``struct name *``
        (task_struct, cgroup): a BTF pointer (not NULL), trusted, RCU or legacy
        (btf_ptr_types), to that struct, at its start (btf_struct_ids_match)."""
        if reg.type not in (PTR_TO_BTF_ID, PTR_TO_BTF_ID | PTR_LEGACY,
                            PTR_TO_BTF_ID | MEM_RCU):
            self.refuse(pc, f"R{regno} type={type_str(reg.type)} expected=ptr_, "
                            f"trusted_ptr_, rcu_ptr_")
        if reg.map.name != name or reg.off or not reg.is_const or reg.smin:
            self.refuse(pc, f"R{regno} is of type {reg.map.name} but {name} is expected")

    def ksym_reg(self, pc: int, btf_id: int, btf_fd: int) -> Reg:
        """The register an lddw of a typed ksym (BPF_PSEUDO_BTF_ID) loads."""
        if btf_fd:
            self.refuse(pc, "invalid module BTF object FD specified.")
        btf = target_btf()
        t = btf.types[btf_id] if 0 < btf_id < len(btf.types) else None
        if t is None:
            self.refuse(pc, f"ldimm64 insn specifies invalid btf_id {btf_id}.")
        if t.kind != Kind.VAR:
            self.refuse(pc, f"pseudo btf_id {btf_id} in ldimm64 isn't KIND_VAR.")
        target = t.target.resolve()
        if is_percpu(t):
            r = Reg(PTR_TO_BTF_ID | MEM_PERCPU)
            r.map = target
        elif target.kind in (Kind.STRUCT, Kind.UNION):
            r = _btf_reg(target)
        else:
            r = Reg(PTR_TO_MEM | KERNEL_MEM | MEM_RDONLY)
            r.size = target.byte_size
        r.mark_known(0)
        return r

    def percpu_arg(self, pc: int, regno: int, reg: Reg, meta: dict) -> None:
        """check_func_arg of ARG_PTR_TO_PERCPU_BTF_ID: a per-CPU variable's address; its
        type is what the helper's result points at."""
        if reg.type not in (PTR_TO_BTF_ID | MEM_PERCPU, PTR_TO_BTF_ID | MEM_PERCPU | MEM_RCU):
            self.refuse(pc, f"R{regno} type={type_str(reg.type)} expected=percpu_ptr_, "
                            f"percpu_rcu_ptr_, percpu_trusted_ptr_")
        meta["percpu"] = reg.map
        # check_helper_call's returns_cpu_specific_alloc_ptr: a per-CPU object's
        meta["percpu_obj"] = bool(reg.type & MEM_RCU)

    def percpu_return(self, meta: dict, nullable: bool) -> Reg:
        """r0 of bpf_per_cpu_ptr / bpf_this_cpu_ptr (RET_PTR_TO_MEM_OR_BTF_ID)."""
        t = meta["percpu"]
        if meta["percpu_obj"]:
            # one CPU's copy of the object, never NULL-able (the helper's flags are
            # not carried)
            r = Reg(PTR_TO_BTF_ID | MEM_ALLOC | MEM_RCU)
            r.mark_known(0)
            r.map = t
            return r
        if t.kind in (Kind.STRUCT, Kind.UNION):
            r = _btf_reg(t)
        else:
            r = Reg(PTR_TO_MEM | KERNEL_MEM | MEM_RDONLY)
            r.mark_known(0)
            r.size = t.byte_size
        if nullable:
            r.type |= MAYBE_NULL
            r.id = self.new_id()
        return r

    def btf_offset(self, pc: int, regno: int, reg: Reg, off: int) -> int:
        """The constant, non-negative offset an access through a BTF pointer reaches
        (check_ptr_to_btf_access, __check_ptr_off_reg), else the kernel's refusal."""
        name = reg.map.name
        off += reg.off
        if off < 0:
            self.refuse(pc, f"R{regno} is ptr_{name} invalid negative access: off={off}")
        if not reg.is_const or reg.smin:
            self.refuse(pc, f"R{regno} is ptr_{name} invalid variable offset: off={off}, "
                            f"var_off={tnum.text(reg.var)}")
        return off

    def btf_access(self, pc: int, regno: int, reg: Reg, off: int, size: int,
                   write: bool) -> Reg:
        """check_ptr_to_btf_access: the register a read gives."""
        name = reg.map.name
        off = self.btf_offset(pc, regno, reg, off)
        if reg.type & MEM_PERCPU:
            self.refuse(pc, f"R{regno} is ptr_{name} access percpu memory: off={off}")
        if write:
            self.ct_write(pc, reg.map, off, size)
            return scalar()
        try:
            kind, target, field = walk(reg.map, off, size)
        except WalkError as exc:
            self.refuse(pc, str(exc))
        if kind == POINTER_READ and target is not None:
            return self.walked_reg(reg, target, field)
        return scalar()

    def walked_reg(self, reg: Reg, target, field: str) -> Reg:
        """check_ptr_to_btf_access: the pointer to ``target`` that reading member
        ``field`` through ``reg`` gives, trusted, RCU or neither as the kernel's tables
        say."""
        r = _btf_reg(target)
        if reg.type & PTR_UNTRUSTED:
            r.type |= PTR_UNTRUSTED
        elif reg.type not in _TRUSTED_OR_RCU:
            r.type |= PTR_LEGACY
        elif listed(reg.map, field, target, SAFE_TRUSTED):
            pass
        elif listed(reg.map, field, target, SAFE_TRUSTED_OR_NULL):
            r.type |= MAYBE_NULL
        elif listed(reg.map, field, target, SAFE_RCU):
            r.type |= MEM_RCU
        elif listed(reg.map, field, target, SAFE_RCU_OR_NULL):
            r.type |= MEM_RCU | MAYBE_NULL
        else:
            r.type |= PTR_LEGACY
        if r.type & MAYBE_NULL:
            r.id = self.new_id()
        return r

    def map_ptr_access(self, pc: int, regno: int, reg: Reg, off: int, size: int,
                       write: bool) -> Reg:
        """check_ptr_to_map_access: the register a read of the map's struct gives."""
        name = MAP_STRUCTS.get(reg.map.type)
        if name is None or not target_btf().by_name(name, Kind.STRUCT):
            self.refuse(pc, f"map_ptr access not supported for map type {int(reg.map.type)}")
        if self.unpriv:
            self.refuse(pc, f"{name} access is allowed only to CAP_PERFMON and "
                            f"CAP_SYS_ADMIN")
        off += reg.off
        if off < 0:
            self.refuse(pc, f"R{regno} is {name} invalid negative access: off={off}")
        if write:
            self.refuse(pc, f"only read from {name} is supported")
        try:
            kind, target, _ = walk(_struct(name), off, size)
        except WalkError as exc:
            self.refuse(pc, str(exc))
        if kind == POINTER_READ and target is not None:
            r = _btf_reg(target)
            r.type |= PTR_LEGACY
            return r
        return scalar()

    def untrusted_mem_access(self, pc: int, regno: int, write: bool) -> Reg:
        """check_mem_access of read-only untrusted memory: reads anywhere, no writes."""
        if write:
            self.refuse(pc, f"R{regno} cannot write into rdonly_untrusted_mem")
        return scalar()


def listed(struct, field: str, target, suffix: str) -> bool:
    """btf_nested_type_is_trusted: whether the kernel's table ``suffix`` lists member
    ``field`` of ``struct`` as a pointer to ``target``."""
    for safe in struct.btf.by_name(struct.name + suffix, struct.kind):
        for m in safe.members:
            mt = safe.btf.types[m.type_id]
            if mt.kind == Kind.PTR and m.name == field and mt.target.resolve().id == target.id:
                return True
    return False


def is_percpu(var) -> bool:
    """Whether the VAR ``var`` is a per-CPU variable: one of its BTF's ``.data..percpu``
    DATASEC (find_btf_percpu_datasec)."""
    for sec in var.btf.by_name(".data..percpu", Kind.DATASEC):
        if any(v.type_id == var.id for v in sec.vars):
            return True
    return False


def member_offset(struct: str, member: str) -> int:
    """The byte offset of ``member`` of the target BTF's ``struct`` (anonymous unions and
    structs looked into), -1 when it has none."""
    return _offset_in(_struct(struct), member)


def _offset_in(t, member: str) -> int:
    for m in t.members:
        if m.name == member:
            return m.bit_offset // 8
        mt = t.btf.types[m.type_id].resolve()
        if not m.name and mt.kind in (Kind.STRUCT, Kind.UNION):
            inner = _offset_in(mt, member)
            if inner >= 0:
                return m.bit_offset // 8 + inner
    return -1


def struct_size(name: str) -> int:
    """The byte size of the target BTF's ``struct``."""
    return _struct(name).size


def _struct(name: str):
    return target_btf().by_name(name, Kind.STRUCT)[0]


def _btf_reg(t) -> Reg:
    r = Reg(PTR_TO_BTF_ID)
    r.mark_known(0)
    r.map = t
    return r
