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
"""
from __future__ import annotations

from .. import isa
from ..btf import Kind
from ..btf.fields import object_fields
from .btfptr import WalkError, walk
from .state import MAYBE_NULL, MEM_ALLOC, MEM_RCU, NON_OWN_REF, PTR_TO_BTF_ID, Reg, scalar

ALLOC_PTR = PTR_TO_BTF_ID | MEM_ALLOC
OBJ_NEW, OBJ_DROP, REFCOUNT_ACQUIRE = ("bpf_obj_new_impl", "bpf_obj_drop_impl",
                                       "bpf_refcount_acquire_impl")


class AllocObjects:
    """The allocated-object side of :class:`~pyebpf.verifier.interp.Interpreter`
    (mixed in)."""

    def alloc_arg(self, pc: int, i: int, reg: Reg, flags: int, refcounted: bool) -> None:
        """check_kfunc_args of ``p__alloc`` (bpf_obj_drop) and ``p__refcounted_kptr``
        (bpf_refcount_acquire): a release kfunc's arguments are trusted ones
        (is_kfunc_trusted_args), so neither may be NULL, and a released one starts at
        the object (check_func_arg_reg_off)."""
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
        if reg.type != ALLOC_PTR:
            self.refuse(pc, f"arg#{i} expected pointer to allocated object")
        if not reg.ref:
            self.refuse(pc, "allocated object must be referenced")

    def alloc_return(self, pc: int, name: str, type_id: int, arg: Reg | None) -> Reg:
        """r0 of bpf_obj_new (the struct ``type_id`` names in the program's BTF) or of
        bpf_refcount_acquire (``arg``'s struct), before the acquired reference."""
        if name == OBJ_NEW:
            if type_id >> 32:
                self.refuse(pc, "local type ID argument must be in range [0, U32_MAX]")
            if self.prog_btf is None:
                self.refuse(pc, "bpf_obj_new/bpf_percpu_obj_new requires prog BTF")
            btf = self.prog_btf
            t = btf.types[type_id] if type_id < len(btf.types) else None
            if t is None or t.kind != Kind.STRUCT:
                self.refuse(pc, "bpf_obj_new/bpf_percpu_obj_new type ID argument must be of "
                                "a struct")
        else:
            t = arg.map
        r = Reg(ALLOC_PTR)
        r.mark_known(0)
        r.map = t
        return r

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

