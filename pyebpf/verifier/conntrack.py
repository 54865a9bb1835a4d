"""The verifier's side of the nf_conntrack kfuncs (``net/netfilter/nf_conntrack_bpf.c``,
``nf_nat_bpf.c``): their pointer arguments as ``check_kfunc_args`` checks them, the
references ``bpf_skb_ct_lookup``/``bpf_skb_ct_alloc`` acquire and ``bpf_ct_release``/
``bpf_ct_insert_entry`` release, and the one write the kernel lets a tc program make
through an entry pointer (``_nf_conntrack_btf_struct_access``: ``nf_conn->mark``).

Every pointer argument of these kfuncs is trusted in 6.18: NULL, or a pointer that
may be NULL, is refused.  An entry argument must be the ``PTR_TO_BTF_ID`` of the
kfunc's struct exactly (``nf_conn`` and ``nf_conn___init`` do not stand for each
other), holding a reference.  ``union nf_inet_addr *`` is memory of the union's size
(a struct of scalars, ``__btf_type_is_scalar_struct``); the tuple and the opts are
memory of the size argument after them.
"""
from __future__ import annotations

from .. import isa
from ..btf import Kind
from ..btf.relo import target_btf
from .errnos import Refusal
from .state import MAYBE_NULL, PTR_TO_BTF_ID, PTR_TO_CTX, SCALAR, Reg, type_str

#: the kfuncs this module checks: every one of the conntrack set
CT_KFUNCS = frozenset({"bpf_skb_ct_lookup", "bpf_skb_ct_alloc", "bpf_ct_insert_entry",
                       "bpf_ct_release", "bpf_ct_set_timeout", "bpf_ct_change_timeout",
                       "bpf_ct_set_status", "bpf_ct_change_status", "bpf_ct_set_nat_info"})
ENTRY_STRUCTS = ("nf_conn", "nf_conn___init")


def _struct(name: str, kind=Kind.STRUCT):
    return target_btf().by_name(name, kind)[0]


def _base(ctype: str) -> tuple[str, str]:
    """("struct", "nf_conn") of "const struct nf_conn *"."""
    kw, name = ctype.replace("const ", "").rstrip("*").split()
    return kw, name


class ConntrackCalls:
    """The conntrack kfunc side of :class:`~pyebpf.verifier.interp.Interpreter`
    (mixed in)."""

    def ct_args(self, st, pc: int, k) -> int:
        """check_kfunc_args for a conntrack kfunc: its pointer arguments; returns the
        reference a KF_RELEASE kfunc releases (0 for none)."""
        released = 0
        for i, arg in enumerate(k.args):
            regno = i + 1
            reg = self.read(st, pc, regno)
            if not arg.ctype.endswith("*"):
                if reg.type != SCALAR:
                    self.refuse(pc, f"R{regno} is not a scalar")
                continue
            if reg.is_null() or reg.type & MAYBE_NULL:
                self.refuse(pc, f"Possibly NULL pointer passed to trusted arg{i}")
            kw, name = _base(arg.ctype)
            if name == "__sk_buff":
                if reg.type != PTR_TO_CTX:
                    self.refuse(pc, f"arg#{i} expected pointer to ctx, but got "
                                    f"{type_str(reg.type)}")
            elif name in ENTRY_STRUCTS:
                if reg.type != PTR_TO_BTF_ID:
                    self.refuse(pc, f"arg#{i} pointer type STRUCT {name} must point to "
                                    f"scalar, or struct with scalar")
                if not reg.ref:
                    self.refuse(pc, f"R{regno} must be referenced or trusted")
                self.btf_arg_at_zero(pc, k, i, reg, name)
                if k.flags & isa.KF_RELEASE:
                    released = reg.ref
            else:
                # memory: of the size argument after it, or of the scalar struct's size
                if i + 1 < len(k.args) and k.args[i + 1].name.endswith("__sz"):
                    size_reg = self.read(st, pc, regno + 1)
                    size = size_reg.umax if size_reg.type == SCALAR else 0
                    where = f"arg#{i} arg#{i + 1} memory, len pair leads to invalid " \
                            f"memory access"
                else:
                    size = _struct(name, Kind.UNION if kw == "union" else Kind.STRUCT) \
                        .byte_size
                    where = None
                self._ct_mem(st, pc, regno, reg, size, where)
        return released

    def btf_arg_at_zero(self, pc: int, k, i: int, reg: Reg, name: str) -> None:
        """check_kfunc_args on a conntrack, task or cgroup pointer argument ``i``: a
        pointer to the kfunc's struct, at offset 0."""
        if reg.map.name != name:
            self.refuse(pc, f"kernel function {k.name} args#{i} expected pointer to STRUCT "
                            f"{name} but R{i + 1} has a pointer to STRUCT {reg.map.name}")
        if reg.off or not reg.is_const or reg.smin:
            self.refuse(pc, f"R{i + 1} must have zero offset when passed to release func "
                            f"or trusted arg to kfunc")

    def _ct_mem(self, st, pc, regno: int, reg: Reg, size: int, where) -> None:
        try:
            self.helper_mem(st, pc, regno, reg, size, True, False)
        except Refusal as exc:
            if where is None:
                raise
            self.refuse(pc, *exc.lines, where)

    def kfunc_return(self, st, pc: int, k, released: int) -> Reg | None:
        """r0 of a conntrack or task/cgroup kfunc after its call: the released reference
        gone (and every copy of its pointer), an acquired pointer that may be NULL holding
        a new reference; None for a kfunc returning a scalar or nothing."""
        if released:
            st.refs.pop(released, None)
            for r in st.all_regs():
                if r.ref == released:
                    r.mark_unknown()
        if not k.flags & isa.KF_ACQUIRE:
            return None
        r = Reg(PTR_TO_BTF_ID | MAYBE_NULL)
        r.mark_known(0)
        r.map = _struct(_base(k.ret)[1])
        if k.flags & isa.KF_RET_NULL:
            # check_kfunc_call: is_kfunc_ret_null's id for the NULL check comes first,
            # then acquire_reference's, which replaces it
            self.new_id()
        r.id = r.ref = self.new_id()
        st.refs[r.ref] = pc
        return r

    def ct_write(self, pc: int, struct, off: int, size: int) -> None:
        """_nf_conntrack_btf_struct_access (tc_cls_act_btf_struct_access): a write
        through an entry pointer may only be to ``mark``."""
        if struct.name not in ENTRY_STRUCTS or \
                self.prog_type not in (isa.ProgType.BPF_PROG_TYPE_SCHED_CLS,
                                       isa.ProgType.BPF_PROG_TYPE_SCHED_ACT):
            self.refuse(pc, "only read is supported")
        mark = next(f for f in _struct("nf_conn").fields() if f.name == "mark")
        if off != mark.offset:
            self.refuse(pc, f"no write support to nf_conn at off {off}")
        if off + size > mark.offset + mark.size:
            self.refuse(pc, f"write access at off {off} with size {size} beyond the member "
                            f"of nf_conn ended at {mark.offset + mark.size}")
