"""bpf_list_head fields of map values in the verifier: the list kfuncs' arguments
(``__process_kf_arg_ptr_to_graph_root``, ``__process_kf_arg_ptr_to_graph_node`` in
``kernel/bpf/verifier.c``), the references they give and take, and the lock that
guards each list.

Every list operation needs the ``bpf_spin_lock`` of the map value that holds the head
(``check_reg_allocation_locked``).  A push takes the program's owning reference to an
object (``bpf_obj_new``'s, a pop's) and leaves its pointers as non-owning references
(``ref_convert_owning_non_owning``: the object may still be read and written, not
dropped or pushed again) until the lock is released (``invalidate_non_owning_refs``).
A pop gives an owning reference to the node (``mark_reg_graph_node``: the struct the
head's ``__contains`` tag names, at the node's offset), or NULL; ``bpf_list_front``
and ``bpf_list_back`` a non-owning one, or NULL.  Heads in allocated objects are not
modelled: a head argument must point into a map value.
"""
from __future__ import annotations

from ..btf.fields import LIST_HEAD, LIST_NODE, object_fields
from .alloc import ALLOC_PTR
from .state import MAYBE_NULL, MEM_RCU, NON_OWN_REF, PTR_TO_MAP_VALUE, Reg

PUSH = frozenset({"bpf_list_push_front_impl", "bpf_list_push_back_impl"})
POP = frozenset({"bpf_list_pop_front", "bpf_list_pop_back"})
PEEK = frozenset({"bpf_list_front", "bpf_list_back"})
LIST_KFUNCS = PUSH | POP | PEEK


def is_alloc_obj(t: int) -> bool:
    """type_is_ptr_alloc_obj, with the flags an allocated object's pointer may carry."""
    return t & ~(NON_OWN_REF | MEM_RCU) == ALLOC_PTR


def _refcounted(struct) -> bool:
    return any(f[0] == "bpf_refcount" for f in object_fields(struct))


class ListRules:
    """The list side of :class:`~pyebpf.verifier.interp.Interpreter` (mixed in)."""

    def list_call(self, st, pc: int, name: str, regs) -> Reg | None:
        """check_kfunc_args and check_kfunc_call of a list kfunc: r0 (None: a scalar)."""
        root = self._list_head_arg(st, pc, regs[1])
        if name in PUSH:
            node = regs[2]
            self._list_node_arg(pc, node, root)
            ref = node.ref
            for r in st.all_regs():       # ref_convert_owning_non_owning
                if r.ref == ref:
                    r.ref = 0
                    r.type |= NON_OWN_REF | (MEM_RCU if _refcounted(r.map) else 0)
            st.refs.pop(ref, None)        # release_reference
            return None
        r0 = Reg(ALLOC_PTR | MAYBE_NULL)  # mark_reg_graph_node
        r0.mark_known(0)
        r0.map, r0.off = root.value, root.node_off
        r0.id = self.new_id()
        if name in POP:
            r0.id = r0.ref = self.new_id()
            st.refs[r0.ref] = pc
        else:                             # ref_set_non_owning
            r0.type |= NON_OWN_REF | (MEM_RCU if _refcounted(root.value) else 0)
        return r0

    def _list_head_arg(self, st, pc: int, reg: Reg):
        """KF_ARG_PTR_TO_LIST_HEAD: the head of a map value whose lock the program holds."""
        if reg.type != PTR_TO_MAP_VALUE:
            if reg.type == ALLOC_PTR:
                self.refuse(pc, "pyebpf does not model a bpf_list_head in an allocated "
                                "object")
            self.refuse(pc, "arg#0 expected pointer to map value or allocated object")
        if not reg.is_const:
            self.refuse(pc, f"R1 doesn't have constant offset. {LIST_HEAD} has to be at "
                            f"the constant offset")
        off = reg.off + reg.value
        root = next((g for g in getattr(reg.map, "graph_roots", ()) if g.off == off), None)
        if root is None:
            self.refuse(pc, f"{LIST_HEAD} not found at offset={off}")
        lock = st.spin_lock
        if lock is None or lock[0] is not reg.map or lock[1] != reg.id:
            self.refuse(pc, f"bpf_spin_lock at off={reg.map.spin_lock_off} must be held "
                            f"for {LIST_HEAD}")
        return root

    def _list_node_arg(self, pc: int, reg: Reg, root) -> None:
        """KF_ARG_PTR_TO_LIST_NODE: an object the program owns, at its bpf_list_node of
        the type the head holds."""
        if reg.type != ALLOC_PTR:
            self.refuse(pc, "arg#1 expected pointer to allocated object")
        if not reg.ref:
            self.refuse(pc, "allocated object must be referenced")
        if not reg.is_const:
            self.refuse(pc, f"R2 doesn't have constant offset. {LIST_NODE} has to be at "
                            f"the constant offset")
        off = reg.off + reg.value
        if not any(f == (LIST_NODE, off, f[2]) for f in object_fields(reg.map)):
            self.refuse(pc, f"{LIST_NODE} not found at offset={off}")
        same = reg.map.btf is root.value.btf and reg.map.id == root.value.id
        if not same or off != root.node_off:
            self.refuse(pc, f"operation on {LIST_HEAD} expects arg#1 {LIST_NODE} at "
                            f"offset={root.node_off} in struct {root.value.name}, but arg "
                            f"is at offset={off} in struct {reg.map.name}")

    @staticmethod
    def invalidate_non_owning(st) -> None:
        """invalidate_non_owning_refs, at bpf_spin_unlock (mark_reg_invalid of a
        privileged loader: an unknown scalar)."""
        for r in st.all_regs():
            if r.type & NON_OWN_REF:
                r.mark_unknown()
