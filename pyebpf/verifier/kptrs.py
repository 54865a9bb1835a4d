"""kptr fields of map values (``__kptr`` members, :func:`pyebpf.btf.fields.kptr_fields`)
in the verifier: the loads and stores ``check_map_access`` and ``check_map_kptr_access``
allow at them, and ``bpf_kptr_xchg`` (``process_kptr_func``, ``map_kptr_match_type``).

A referenced kptr (``__kptr``) is only exchanged: ``bpf_kptr_xchg(&v->field, obj)``
stores an object the program owns (its reference moves into the map) or NULL, and
returns the old one with a reference of its own, or NULL.  A load of the field gives
an RCU pointer to the object (``PTR_TO_BTF_ID | MEM_ALLOC | MEM_RCU``, maybe NULL: a
program that is not sleepable runs in an RCU read-side section, btf_ld_kptr_type) it
may read and write through but not release or store; an untrusted kptr
(``__kptr_untrusted``) loads as an untrusted pointer, read only, and takes plain
stores of NULL or of an object of its type.  A kptr to a kernel struct
(``struct task_struct __kptr *``, ``struct cgroup __kptr *``) holds a referenced
kernel object (of bpf_task_acquire, bpf_cgroup_from_id...): its load is an RCU pointer
to it that may be NULL (``rcu_protected_types``), which KF_RCU kfuncs take, and
bpf_kptr_xchg returns a trusted, referenced one.  A per-CPU kptr (``__percpu_kptr``)
holds a per-CPU object (``bpf_percpu_obj_new``): its load is an RCU pointer to it
(``PTR_TO_BTF_ID | MEM_PERCPU | MEM_RCU``, maybe NULL) that only the per-CPU helpers
take, and the object a program exchanges in stays such an RCU pointer in the program
(check_helper_call: released in an RCU read-side section).  Kptrs inside allocated
objects: an object the program owns may hold kptrs too, exchanged as a map value's
(``bpf_kptr_xchg(&obj->field, inner)``); dropping the object drops what they hold.
"""
from __future__ import annotations

from ..btf.fields import kptr_fields
from . import tnum
from .alloc import ALLOC_PTR, PERCPU_ALLOC_PTR
from .btfptr import POINTER_READ, WalkError, walk
from .locks import map_name
from .state import (MAYBE_NULL, MEM_ALLOC, MEM_PERCPU, MEM_RCU, PTR_TO_BTF_ID,
                    PTR_TO_MAP_VALUE, PTR_UNTRUSTED, Reg, scalar, type_str)

UNTRUSTED_PTR = PTR_TO_BTF_ID | PTR_UNTRUSTED
RCU_ALLOC_PTR = ALLOC_PTR | MEM_RCU
RCU_KERNEL_PTR = PTR_TO_BTF_ID | MEM_RCU
PERCPU_RCU_PTR = PTR_TO_BTF_ID | MEM_PERCPU | MEM_RCU
PERCPU_KPTR = "percpu_kptr"
# check_reg_type's btf_ptr_types, and the allocated objects bpf_kptr_xchg takes
_XCHG_NEW = (PTR_TO_BTF_ID, PTR_TO_BTF_ID | MEM_RCU, ALLOC_PTR, RCU_ALLOC_PTR, PERCPU_ALLOC_PTR)


def map_kptrs(m) -> tuple:
    return getattr(m, "kptrs", ()) if m is not None else ()


def _same_type(a, b) -> bool:
    """btf_struct_ids_match at offset 0, strict: the same BTF and type id."""
    return a.btf is b.btf and a.id == b.id


class KptrRules:
    """The kptr side of :class:`~pyebpf.verifier.interp.Interpreter` (mixed in)."""

    def map_kptr_access(self, st, pc: int, reg: Reg, off: int, size: int, write: bool,
                        value_regno: int, sign: bool, imm) -> Reg | None:
        """check_map_access's kptr fields and check_map_kptr_access: None when the
        access touches no kptr field, else what a load gives (a store: a scalar)."""
        field = None
        for k in map_kptrs(reg.map):
            if reg.smin + off < k.off + 8 and k.off < reg.umax + off + size:
                name = k.kind_name
                if not reg.is_const:
                    self.refuse(pc, f"{name} access cannot have variable offset")
                if k.off != off + reg.value:
                    self.refuse(pc, f"{name} access misaligned expected={k.off} "
                                    f"off={off + reg.value}")
                if size != 8:
                    self.refuse(pc, f"{name} access size must be BPF_DW")
                field = k
        if field is None:
            return None
        if sign:
            self.refuse(pc, "kptr in map can only be accessed using BPF_MEM instruction mode")
        referenced = field.tag != "kptr_untrusted"
        if write and referenced:
            self.refuse(pc, "store to referenced kptr disallowed")
        if not write:
            # btf_ld_kptr_type
            loaded = RCU_KERNEL_PTR if field.kernel else \
                PERCPU_RCU_PTR if field.tag == PERCPU_KPTR else RCU_ALLOC_PTR
            r = Reg((loaded if referenced else UNTRUSTED_PTR) | MAYBE_NULL)
            r.mark_known(0)
            r.map = field.target
            r.id = self.new_id()
            return r
        if value_regno < 0:
            if imm:
                self.refuse(pc, f"BPF_ST imm must be 0 when storing to kptr at off={field.off}")
        else:
            val = st.cur.regs[value_regno]
            if not val.is_null():
                self.kptr_match(pc, value_regno, val, field)
        return scalar()

    def kptr_match(self, pc: int, regno: int, reg: Reg, field) -> None:
        """map_kptr_match_type."""
        target = field.target.name
        percpu = MEM_PERCPU if field.tag == PERCPU_KPTR else 0
        perm = MAYBE_NULL | (MEM_RCU if field.kernel else ALLOC_PTR) | percpu
        # a per-CPU field takes per-CPU objects only, another field none
        if reg.type & 0xFF != PTR_TO_BTF_ID or reg.type & ~perm & ~0xFF or \
                reg.type & MEM_PERCPU != percpu:
            self.refuse(pc, f"invalid kptr access, R{regno} type={type_str(reg.type)} "
                            f"expected=ptr_{target}")
        if not reg.is_const or reg.value:
            self.refuse(pc, f"variable ptr_ access var_off={tnum.text(reg.var)} disallowed")
        if reg.off or not _same_type(reg.map, field.target):
            self.refuse(pc, f"invalid kptr access, R{regno} type={type_str(reg.type)}"
                            f"{reg.map.name} expected=ptr_{target}")

    def kptr_dest_arg(self, pc: int, regno: int, reg: Reg, meta: dict) -> None:
        """bpf_kptr_xchg's first argument (ARG_KPTR_XCHG_DEST, process_kptr_func): a
        map value's kptr field, or one of an object the program owns (its struct's
        record, reg_btf_record)."""
        if reg.type == ALLOC_PTR:
            kptrs = kptr_fields(reg.map)
        elif reg.type == PTR_TO_MAP_VALUE:
            if getattr(reg.map, "value_type", None) is None:
                self.refuse(pc, f"map '{map_name(reg.map)}' has to have BTF in order to use "
                                f"bpf_kptr_xchg")
            kptrs = map_kptrs(reg.map)
        else:
            self.refuse(pc, f"R{regno} type={type_str(reg.type)} expected=map_value, ptr_")
        if not reg.is_const:
            self.refuse(pc, f"R{regno} doesn't have constant offset. kptr has to be at the "
                            f"constant offset")
        if not kptrs:
            self.refuse(pc, f"R{regno} has no valid kptr")
        off = reg.off + reg.value
        field = next((k for k in kptrs if k.off == off), None)
        if field is None:
            self.refuse(pc, f"off={off} doesn't point to kptr")
        if field.tag == "kptr_untrusted":
            self.refuse(pc, f"off={off} kptr isn't referenced kptr")
        meta["kptr"] = field

    def kptr_new_arg(self, pc: int, regno: int, reg: Reg, meta: dict) -> None:
        """bpf_kptr_xchg's second argument (ARG_PTR_TO_BTF_ID_OR_NULL | OBJ_RELEASE):
        NULL, or an object of the field's type the program holds, which it gives up."""
        if reg.is_null():
            return
        if reg.type not in _XCHG_NEW:
            self.refuse(pc, f"R{regno} type={type_str(reg.type)} expected=ptr_, "
                            f"trusted_ptr_, rcu_ptr_")
        if reg.type == RCU_ALLOC_PTR:
            self.refuse(pc, "verifier bug: invalid PTR_TO_BTF_ID register for type match")
        self.kptr_match(pc, regno, reg, meta["kptr"])
        if not reg.ref:
            self.refuse(pc, f"R{regno} must be referenced when passed to release function")
        meta["release"] = reg.ref

    def kptr_return(self, st, pc: int, meta: dict) -> Reg:
        """r0 of bpf_kptr_xchg: the field's struct (allocated unless a kernel one),
        maybe NULL, acquired (an id for the NULL check, then the reference's)."""
        field = meta["kptr"]
        r = Reg((PTR_TO_BTF_ID if field.kernel else PERCPU_ALLOC_PTR
                 if field.tag == PERCPU_KPTR else ALLOC_PTR) | MAYBE_NULL)
        r.mark_known(0)
        r.map = field.target
        self.new_id()
        r.id = r.ref = self.new_id()
        st.refs[r.ref] = pc
        return r

    @staticmethod
    def kptr_released(st, ref: int) -> None:
        """check_helper_call's release of the object bpf_kptr_xchg stored: a per-CPU
        one stays readable by the per-CPU helpers as an RCU pointer (the program is in
        an RCU read-side section: it is not sleepable), any other is invalid."""
        for r in st.all_regs():
            if r.ref == ref:
                if r.type & MEM_ALLOC and r.type & MEM_PERCPU:
                    r.ref = 0
                    r.type = r.type & ~MEM_ALLOC | MEM_RCU
                else:
                    r.mark_unknown()

    def untrusted_btf_access(self, pc: int, regno: int, reg: Reg, off: int, size: int,
                             write: bool) -> Reg:
        """check_ptr_to_btf_access of an untrusted pointer (a loaded kptr, an RCU pointer
        after bpf_rcu_read_unlock): reads through the member walk, no write; a pointer
        member read gives an untrusted pointer."""
        off = self.btf_offset(pc, regno, reg, off)
        if write:
            self.refuse(pc, "only read is supported")
        try:
            kind, target, field = walk(reg.map, off, size)
        except WalkError as exc:
            self.refuse(pc, str(exc))
        if kind == POINTER_READ and target is not None:
            return self.walked_reg(reg, target, field)
        return scalar()
