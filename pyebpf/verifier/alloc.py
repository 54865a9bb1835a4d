"""Objects a program allocates (``bpf_obj_new``): the kernel's ``PTR_TO_BTF_ID |
MEM_ALLOC`` pointers to a struct of the program's own BTF.

``bpf_obj_new_impl(local_type_id__k, meta__ign)`` (``check_kfunc_call``) gives an
owning reference to a struct of the type the constant id names in the program's BTF
(libbpf's ``bpf_obj_new(type)`` passes ``bpf_core_type_id_local(type)``);
``bpf_obj_drop_impl`` releases it (``KF_ARG_PTR_TO_ALLOC_BTF_ID``);
``bpf_refcount_acquire_impl`` takes another reference to an object whose struct holds a
``struct bpf_refcount`` (``KF_ARG_PTR_TO_REFCOUNTED_KPTR``), never NULL for an owning
argument (``is_kfunc_ret_null``).  Reads and writes of the object go through its BTF
(``check_ptr_to_btf_access``, ``btf_struct_access``): a pointer member reads as a
scalar, and the special fields (``btf_parse_struct_metas``) are not accessed directly.

``bpf_percpu_obj_new_impl`` gives an owning reference to a per-CPU object
(``PTR_TO_BTF_ID | MEM_ALLOC | MEM_PERCPU``) of a struct of at most
``BPF_GLOBAL_PERCPU_MA_MAX_SIZE`` bytes of scalars, without special fields; only
``bpf_percpu_obj_drop_impl`` releases it, only ``bpf_kptr_xchg`` stores it (into a
``__percpu_kptr`` field: :mod:`.kptrs`), and nothing reads through it but
``bpf_per_cpu_ptr`` and ``bpf_this_cpu_ptr`` (:mod:`.btfptr`), once it is an RCU pointer.
"""
from __future__ import annotations

from .. import isa
from ..btf import Kind
from ..btf.fields import object_fields
from .btfptr import WalkError, walk
from .state import (MAYBE_NULL, MEM_ALLOC, MEM_PERCPU, MEM_RCU, NON_OWN_REF, PTR_TO_BTF_ID,
                    PTR_TO_MAP_VALUE, Reg, scalar)

ALLOC_PTR = PTR_TO_BTF_ID | MEM_ALLOC
PERCPU_ALLOC_PTR = ALLOC_PTR | MEM_PERCPU
OBJ_NEW, OBJ_DROP, REFCOUNT_ACQUIRE = ("bpf_obj_new_impl", "bpf_obj_drop_impl",
                                       "bpf_refcount_acquire_impl")
PERCPU_OBJ_NEW, PERCPU_OBJ_DROP = "bpf_percpu_obj_new_impl", "bpf_percpu_obj_drop_impl"
NEW = (OBJ_NEW, PERCPU_OBJ_NEW)
_SCALAR_KINDS = (Kind.INT, Kind.ENUM, Kind.ENUM64)      # btf_type_is_scalar
_SCALAR_STRUCT_DEPTH = 3


def _scalar_struct(t, depth: int = 0) -> bool:
    """__btf_type_is_scalar_struct: a struct (a union, nested) whose members are
    scalars, arrays of scalars and such structs, three deep at most."""
    if t.kind not in (Kind.STRUCT, Kind.UNION):
        return False
    for m in t.members:
        mt = t.btf.type(m.type_id, t).resolve()
        if mt.kind in (Kind.STRUCT, Kind.UNION):
            if depth >= _SCALAR_STRUCT_DEPTH or not _scalar_struct(mt, depth + 1):
                return False
        elif mt.kind == Kind.ARRAY:
            if not mt.nelems or mt.target.resolve().kind not in _SCALAR_KINDS:
                return False
        elif mt.kind not in _SCALAR_KINDS:
            return False
    return True


def object_lock_off(struct) -> int | None:
    """Where an allocated object's struct holds its bpf_spin_lock, or None."""
    return next((off for kind, off, _ in object_fields(struct) if kind == "bpf_spin_lock"),
                None)


def lock_owner(reg):
    """What a lock taken through ``reg`` is held on, with the register's id
    (process_spin_lock, check_reg_allocation_locked): a map value's map, an allocated
    object's BTF."""
    return reg.map if reg.type == PTR_TO_MAP_VALUE else reg.map.btf


class AllocObjects:
    """The allocated-object side of :class:`~pyebpf.verifier.interp.Interpreter`
    (mixed in)."""

    def alloc_arg(self, pc: int, name: str, i: int, reg: Reg, flags: int,
                  refcounted: bool) -> None:
        """check_kfunc_args of ``p__alloc`` (bpf_obj_drop, bpf_percpu_obj_drop) and
        ``p__refcounted_kptr`` (bpf_refcount_acquire): a release kfunc's arguments are
        trusted ones (is_kfunc_trusted_args), so neither may be NULL, and a released
        one starts at the object (check_func_arg_reg_off); each drop takes its own
        kind of object."""
        if name in (OBJ_DROP, PERCPU_OBJ_DROP):
            self._one_type_per_call(pc, reg)
        regno = i + 1
        trusted = flags & (isa.KF_TRUSTED_ARGS | isa.KF_RELEASE)
        rcu = flags & isa.KF_RCU
        if (trusted or rcu) and (reg.is_null() or reg.type & MAYBE_NULL):
            self.refuse(pc, f"Possibly NULL pointer passed to trusted arg{i}")
        is_alloc = reg.type & ~(MEM_RCU | NON_OWN_REF) == ALLOC_PTR    # type_is_ptr_alloc_obj
        if refcounted:
            if not is_alloc:
                self.refuse(pc, f"arg#{i} is neither owning or non-owning ref")
            fields = object_fields(reg.map)
            if not fields:
                self.refuse(pc, "verifier bug: Couldn't find btf_record")
            if not any(f[0] == "bpf_refcount" for f in fields):
                self.refuse(pc, f"arg#{i} doesn't point to a type with bpf_refcount field")
            return
        # is_trusted_reg: of what can reach here, only a referenced object (a loaded
        # kptr's RCU pointer is not)
        if trusted and not reg.ref:
            self.refuse(pc, f"R{regno} must be referenced or trusted")
        if flags & isa.KF_RELEASE and reg.off:
            self.refuse(pc, f"R{regno} must have zero offset when passed to release func or "
                            f"trusted arg to kfunc")
        if reg.type == ALLOC_PTR:
            if name != OBJ_DROP:
                self.refuse(pc, f"arg#{i} expected for {OBJ_DROP}()")
        elif reg.type == PERCPU_ALLOC_PTR:
            if name != PERCPU_OBJ_DROP:
                self.refuse(pc, f"arg#{i} expected for {PERCPU_OBJ_DROP}()")
        else:
            self.refuse(pc, f"arg#{i} expected pointer to allocated object")
        if not reg.ref:
            self.refuse(pc, "allocated object must be referenced")

    def _one_type_per_call(self, pc: int, reg: Reg) -> None:
        """The kernel passes a call of bpf_obj_drop (bpf_percpu_obj_drop) the struct's
        record as the hidden meta argument (insn_aux_data's kptr_struct_meta, one per
        instruction): every path must bring the call an object of one struct."""
        if reg.type & 0xFF != PTR_TO_BTF_ID or reg.map is None:
            return
        struct = (id(reg.map.btf), reg.map.id)
        if self.obj_arg_types.setdefault(pc, struct) != struct:
            self.refuse(pc, "same call cannot be used with different types: use one call "
                            "for each type: inline the static function that holds the "
                            "call, or mark the callee with __attribute__((nomerge))")

    def alloc_return(self, pc: int, name: str, type_id: int, arg: Reg | None) -> Reg:
        """r0 of bpf_obj_new, bpf_percpu_obj_new (the struct ``type_id`` names in the
        program's BTF) or of bpf_refcount_acquire (``arg``'s struct), before the
        acquired reference."""
        if name in NEW:
            if type_id >> 32:
                self.refuse(pc, "local type ID argument must be in range [0, U32_MAX]")
            if self.prog_btf is None:
                self.refuse(pc, "bpf_obj_new/bpf_percpu_obj_new requires prog BTF")
            btf = self.prog_btf
            t = btf.types[type_id] if type_id < len(btf.types) else None
            if t is None or t.kind != Kind.STRUCT:
                self.refuse(pc, "bpf_obj_new/bpf_percpu_obj_new type ID argument must be of "
                                "a struct")
            if name == PERCPU_OBJ_NEW:
                self._percpu_struct(pc, t)
        else:
            t = arg.map
        r = Reg(PERCPU_ALLOC_PTR if name == PERCPU_OBJ_NEW else ALLOC_PTR)
        r.mark_known(0)
        r.map = t
        return r

    def _percpu_struct(self, pc: int, t) -> None:
        """check_kfunc_call's limits on bpf_percpu_obj_new's struct."""
        if t.size > isa.BPF_GLOBAL_PERCPU_MA_MAX_SIZE:
            self.refuse(pc, f"bpf_percpu_obj_new type size ({t.size}) is greater than "
                            f"{isa.BPF_GLOBAL_PERCPU_MA_MAX_SIZE}")
        if not _scalar_struct(t):
            self.refuse(pc, "bpf_percpu_obj_new type ID argument must be of a struct of "
                            "scalars")
        if object_fields(t):
            self.refuse(pc, "bpf_percpu_obj_new type ID argument must not contain special "
                            "fields")

    def alloc_access(self, pc: int, regno: int, reg: Reg, off: int, size: int) -> Reg:
        """btf_struct_access of a local type: no byte of a special field, then the member
        walk; what a read gives (a pointer member reads as a scalar)."""
        off = self.btf_offset(pc, regno, reg, off)
        for field, foff, fsize in object_fields(reg.map):
            if off < foff + fsize and foff < off + size:
                self.refuse(pc, f"direct access to {field} is disallowed")
        try:
            walk(reg.map, off, size)
        except WalkError as exc:
            self.refuse(pc, str(exc))
        return scalar()

