"""bpf_rb_root fields of map values in the verifier: the rbtree kfuncs' arguments
(``KF_ARG_PTR_TO_RB_ROOT``, ``KF_ARG_PTR_TO_RB_NODE``, ``KF_ARG_PTR_TO_CALLBACK`` in
``check_kfunc_args``), the references they give and take, and the ``less`` callback of
``bpf_rbtree_add_impl`` (``set_rbtree_add_callback_state``).

The root is checked as a list head is (:mod:`.lists`: a constant offset, the map value's
``bpf_spin_lock`` held).  ``bpf_rbtree_add_impl`` takes an owning reference, as a push
does, after queueing a path into ``less`` (``push_callback_call``): a callback in a new
frame whose R1 and R2 are non-owning references to nodes of the tree, R0 in [0, 1] at
its exit, where it may neither take nor release a lock nor remove a node
(``in_rbtree_lock_required_cb``).  ``bpf_rbtree_remove``, ``bpf_rbtree_left`` and
``bpf_rbtree_right`` take a non-owning reference or an owning one (a node in no tree:
they return NULL); ``remove`` gives an owning one (or NULL), ``first``, ``root``,
``left`` and ``right`` a non-owning one (or NULL).
"""
from __future__ import annotations

from errno import ENOMEM

from .. import isa
from ..btf.fields import RB_ROOT, RB_NODE
from .alloc import ALLOC_PTR
from .lists import refcounted
from .state import MAYBE_NULL, MEM_RCU, NON_OWN_REF, PTR_TO_FUNC, PTR_TO_STACK, Frame, Reg

RB_ADD = "bpf_rbtree_add_impl"
RB_REMOVE = "bpf_rbtree_remove"
# the kfuncs whose node argument is a non-owning reference to a node of the tree
_NON_OWNING_ARG = frozenset({RB_REMOVE, "bpf_rbtree_left", "bpf_rbtree_right"})
RBTREE_KFUNCS = frozenset({RB_ADD, RB_REMOVE, "bpf_rbtree_first", "bpf_rbtree_root",
                           "bpf_rbtree_left", "bpf_rbtree_right"})
LESS_RANGE = (0, 1)             # set_rbtree_add_callback_state's callback_ret_range


def calls_less(insn) -> bool:
    """A call of bpf_rbtree_add_impl: a callback's call site."""
    return insn.is_kfunc_call and insn.imm == isa.KFUNC_IDS[RB_ADD]


class RbtreeRules:
    """The rbtree side of :class:`~pyebpf.verifier.interp.Interpreter` (mixed in)."""

    def in_rbtree_cb(self, st) -> bool:
        """in_rbtree_lock_required_cb: the path is in a ``less`` callback."""
        return len(st.frames) > 1 and st.cur.in_callback is True and \
            calls_less(self.insns[st.cur.callsite])

    def rbtree_call(self, st, pc: int, name: str, regs, pending) -> Reg | None:
        """check_kfunc_args and check_kfunc_call of an rbtree kfunc: r0 (None: a scalar)."""
        root = self.graph_root_arg(st, pc, regs[1], RB_ROOT)
        if name == RB_ADD:
            node = regs[2]
            if node.type != ALLOC_PTR:
                self.refuse(pc, "arg#1 expected pointer to allocated object")
            if not node.ref:
                self.refuse(pc, "allocated object must be referenced")
            self.graph_node_arg(pc, node, root, RB_ROOT, RB_NODE)
            less = regs[3]
            if less.type != PTR_TO_FUNC:
                self.refuse(pc, "arg2 expected pointer to func")
            self._less_call(st, pc, less, root, pending)
            self.graph_node_owned(st, node.ref)
            return None
        if name in _NON_OWNING_ARG:
            node = regs[2]
            non_owning = node.type & NON_OWN_REF and \
                node.type & ~(NON_OWN_REF | MEM_RCU | MAYBE_NULL) == ALLOC_PTR
            if not non_owning and not node.ref:
                self.refuse(pc, f"{name} can only take non-owning or refcounted bpf_rb_node "
                                f"pointer")
            if self.in_rbtree_cb(st):
                self.refuse(pc, f"{name} not allowed in rbtree cb")
            self.graph_node_arg(pc, node, root, RB_ROOT, RB_NODE)
        r0 = self.graph_node_reg(root)       # mark_reg_graph_node
        if name == RB_REMOVE:
            r0.id = r0.ref = self.new_id()
            st.refs[r0.ref] = pc
        else:                                 # ref_set_non_owning
            r0.type |= NON_OWN_REF | (MEM_RCU if refcounted(root.value) else 0)
        return r0

    def _less_call(self, st, pc: int, fn: Reg, root, pending) -> None:
        """push_callback_call with set_rbtree_add_callback_state: the path into
        ``less``, queued before the node's reference is given up."""
        if len(st.frames) >= isa.MAX_CALL_FRAMES:
            self.refuse(pc, f"the call stack of {len(st.frames) + 1} frames is too deep")
        queued = self.push(st, fn.off, pc, pending, ENOMEM)
        queued.callback_unroll_depth += 1
        callee = Frame(pc, self.func_of(fn.off), len(queued.frames))
        callee.in_callback = True
        for regno in (1, 2):
            r = self.graph_node_reg(root, ret=False)
            r.type |= NON_OWN_REF | (MEM_RCU if refcounted(root.value) else 0)
            callee.regs[regno] = r
        callee.regs[10].type = PTR_TO_STACK
        callee.regs[10].mark_known(0)
        callee.regs[10].frame = callee.frameno
        queued.frames.append(callee)
