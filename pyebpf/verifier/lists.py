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
and ``bpf_list_back`` a non-owning one, or NULL.  A head may also be in an object the
program owns (``bpf_obj_new``'s struct holding a ``bpf_list_head`` and the
``bpf_spin_lock`` that guards it), the lock then taken through that object.
"""
from __future__ import annotations

from ..btf.fields import LIST_HEAD, LIST_NODE, graph_roots, object_fields
from .alloc import ALLOC_PTR, lock_owner, object_lock_off
from .state import MAYBE_NULL, MEM_RCU, NON_OWN_REF, PTR_TO_MAP_VALUE, Reg

PUSH = frozenset({"bpf_list_push_front_impl", "bpf_list_push_back_impl"})
POP = frozenset({"bpf_list_pop_front", "bpf_list_pop_back"})
PEEK = frozenset({"bpf_list_front", "bpf_list_back"})
LIST_KFUNCS = PUSH | POP | PEEK


def object_roots(struct) -> list:
    """The graph roots of a struct programs allocate (its btf_record's), by offset."""
    return graph_roots(struct)


def is_alloc_obj(t: int) -> bool:
    """type_is_ptr_alloc_obj, with the flags an allocated object's pointer may carry."""
    return t & ~(NON_OWN_REF | MEM_RCU) == ALLOC_PTR


def refcounted(struct) -> bool:
    """The struct holds a struct bpf_refcount: its non-owning references are MEM_RCU."""
    return any(f[0] == "bpf_refcount" for f in object_fields(struct))


class ListRules:
    """The list side of :class:`~pyebpf.verifier.interp.Interpreter` (mixed in), and the
    graph root and node rules lists share with rbtrees (:mod:`.rbtree`)."""

    def list_call(self, st, pc: int, name: str, regs) -> Reg | None:
        """check_kfunc_args and check_kfunc_call of a list kfunc: r0 (None: a scalar)."""
        root = self.graph_root_arg(st, pc, regs[1], LIST_HEAD)
        if name in PUSH:
            node = regs[2]
            if node.type != ALLOC_PTR:
                self.refuse(pc, "arg#1 expected pointer to allocated object")
            if not node.ref:
                self.refuse(pc, "allocated object must be referenced")
            self.graph_node_arg(pc, node, root, LIST_HEAD, LIST_NODE)
            self.graph_node_owned(st, node.ref)
            return None
        r0 = self.graph_node_reg(root)
        if name in POP:
            r0.id = r0.ref = self.new_id()
            st.refs[r0.ref] = pc
        else:                             # ref_set_non_owning
            r0.type |= NON_OWN_REF | (MEM_RCU if refcounted(root.value) else 0)
        return r0

    def graph_node_reg(self, root, ret: bool = True) -> Reg:
        """mark_reg_graph_node: a node of the struct the root holds, at its node's
        offset; a kfunc's r0 (``ret``) is NULL-able, with an id of its own."""
        r = Reg(ALLOC_PTR | (MAYBE_NULL if ret else 0))
        r.mark_known(0)
        r.map, r.off = root.value, root.node_off
        if ret:
            r.id = self.new_id()
        return r

    @staticmethod
    def graph_node_owned(st, ref: int) -> None:
        """A push's, an add's end: ref_convert_owning_non_owning then
        release_reference of the node's owning reference."""
        for r in st.all_regs():
            if r.ref == ref:
                r.ref = 0
                r.type |= NON_OWN_REF | (MEM_RCU if refcounted(r.map) else 0)
        st.refs.pop(ref, None)

    def graph_root_arg(self, st, pc: int, reg: Reg, kind: str):
        """KF_ARG_PTR_TO_LIST_HEAD, KF_ARG_PTR_TO_RB_ROOT: the root (``kind``) of a map
        value or of an object the program owns, whose lock the program holds
        (__process_kf_arg_ptr_to_graph_root, check_reg_allocation_locked)."""
        if reg.type != PTR_TO_MAP_VALUE and reg.type != ALLOC_PTR:
            self.refuse(pc, "arg#0 expected pointer to map value or allocated object")
        if reg.type == ALLOC_PTR and not reg.ref:
            self.refuse(pc, "allocated object must be referenced")
        if not reg.is_const:
            self.refuse(pc, f"R1 doesn't have constant offset. {kind} has to be at "
                            f"the constant offset")
        off = reg.off + reg.value
        roots = getattr(reg.map, "graph_roots", ()) if reg.type == PTR_TO_MAP_VALUE else \
            object_roots(reg.map)
        root = next((g for g in roots if g.off == off and g.kind == kind), None)
        if root is None:
            self.refuse(pc, f"{kind} not found at offset={off}")
        lock = st.spin_lock
        if lock is None or lock[0] is not lock_owner(reg) or lock[1] != reg.id:
            lock_off = reg.map.spin_lock_off if reg.type == PTR_TO_MAP_VALUE else \
                object_lock_off(reg.map)
            self.refuse(pc, f"bpf_spin_lock at off={lock_off} must be held for {kind}")
        return root

    def graph_node_arg(self, pc: int, reg: Reg, root, root_kind: str,
                       node_kind: str) -> None:
        """__process_kf_arg_ptr_to_graph_node: an object at its ``node_kind`` member,
        of the struct and at the offset the root holds."""
        if not reg.is_const:
            self.refuse(pc, f"R2 doesn't have constant offset. {node_kind} has to be at "
                            f"the constant offset")
        off = reg.off + reg.value
        if not any(f == (node_kind, off, f[2]) for f in object_fields(reg.map)):
            self.refuse(pc, f"{node_kind} not found at offset={off}")
        if reg.map.btf is not root.value.btf or reg.map.id != root.value.id:
            self.refuse(pc, f"operation on {root_kind} expects arg#1 {node_kind} at "
                            f"offset={root.node_off} in struct {root.value.name}, but arg "
                            f"is at offset={off} in struct {reg.map.name}")
        if off != root.node_off:
            self.refuse(pc, f"arg#1 offset={off}, but expected {node_kind} at "
                            f"offset={root.node_off} in struct {root.value.name}")

    @staticmethod
    def invalidate_non_owning(st) -> None:
        """invalidate_non_owning_refs, at bpf_spin_unlock (mark_reg_invalid of a
        privileged loader: an unknown scalar)."""
        for r in st.all_regs():
            if r.type & NON_OWN_REF:
                r.mark_unknown()
