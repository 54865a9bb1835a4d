"""Global functions: verified once, on their own, from their BTF signature.

A function of an object with BTF whose ``FUNC`` record has global linkage (C without
``static``) is not followed from its call sites.  A call checks the caller's registers
against the function's prototype (``btf_check_subprog_call``), then the caller goes on
with an unknown scalar in R0; after the main program, each global function some
verified path called is verified once from a state built from its prototype
(``do_check_subprogs``, ``do_check_common``).  An argument's ``arg:`` decl tags
(libbpf's ``__arg_ctx``, ``__arg_nonnull``, ``__arg_nullable``, ``__arg_trusted``,
``__arg_untrusted``, ``__arg_arena``) come before its type (``btf_prepare_func_args``):

- a pointer to the program type's context struct (``struct __sk_buff``, or its kernel
  projection ``struct sk_buff``; ``bpf_user_pt_regs_t`` or ``struct pt_regs`` for
  KPROBE), or a pointer tagged ``ctx`` (to that struct or ``void``), is the context;
- a ``struct bpf_dynptr *`` is an initialised dynptr of the caller's; the function
  sees a local dynptr (``CONST_PTR_TO_DYNPTR``) it may read, not remake;
- a pointer tagged ``trusted`` is a trusted BTF pointer to the kernel struct of its
  pointee's name (not NULL, but for ``nullable`` too);
- a pointer tagged ``untrusted`` is anything the caller likes: to a struct, an
  untrusted BTF pointer to the kernel's; to ``void`` or a number, read-only memory the
  function reads with probe loads;
- an integer or enum is an unknown scalar, and so is a pointer tagged ``arena`` (the
  caller passes a scalar or an arena pointer; the function casts it to dereference it);
- any other pointer is memory of its pointee's size that may be NULL, not NULL when
  tagged ``nonnull``; a pointee without a size (``void``) refuses the call;
- the function must return an integer or enum, and R0 must hold a scalar at its exit
  (``check_return_code``).

Combinations of tags the kernel has no meaning for refuse the call with the kernel's
words.  Static functions stay verified in the context of each call; a call is checked
against their prototype too (ints, the context and dynptrs only; a tag or any other
type makes it unusable), its first mismatch printed, never refused.
"""
from __future__ import annotations

from errno import EACCES, EEXIST, EINVAL, ENOENT, EOPNOTSUPP, ESRCH

from dataclasses import dataclass, replace

from .. import isa
from ..btf.relo import candidates, target_btf
from ..btf.types import Kind
from ..errors import VerifierError
from . import tnum
from .dynptrs import SKB, const_dynptr_reg
from .errnos import Refusal
from .state import (CONST_PTR_TO_DYNPTR, MAYBE_NULL, MEM_RCU, PKT_TYPES, PTR_LEGACY,
                    PTR_TO_ARENA, PTR_TO_BTF_ID, PTR_TO_CTX, PTR_TO_MAP_KEY, PTR_TO_MAP_VALUE, PTR_TO_MEM,
                    PTR_TO_STACK, PTR_UNTRUSTED, SCALAR, Frame, Reg, VState, scalar, type_str)

BTF_FUNC_EXTERN = 2        # enum btf_func_linkage

__all__ = ["Arg", "GlobalFunc", "describe", "kernel_takes", "GlobalCalls"]

BTF_FUNC_GLOBAL = 1
MAX_BPF_FUNC_REG_ARGS = 5
CTX, ANYTHING, MEM, DYNPTR, BTF, UNTRUSTED_MEM, ARENA = ("ctx", "scalar", "mem", "dynptr",
                                                         "btf", "untrusted_mem", "arena")
# the arg: decl tags btf_prepare_func_args knows (enum btf_arg_tag)
ARG_TAGS = ("ctx", "nonnull", "trusted", "untrusted", "nullable", "arena")
_INVALID_TAGS = "arg#{} has invalid combination of tags"
# the flags of a BTF pointer is_trusted_reg does not trust (nor an RCU one)
_NOT_TRUSTED = PTR_LEGACY | PTR_UNTRUSTED | MEM_RCU

# the context struct each program type's global functions may take (btf_is_prog_ctx_type)
_CTX_STRUCTS = {
    isa.ProgType.BPF_PROG_TYPE_SOCKET_FILTER: ("__sk_buff",),
    isa.ProgType.BPF_PROG_TYPE_SCHED_CLS: ("__sk_buff",),
    isa.ProgType.BPF_PROG_TYPE_SCHED_ACT: ("__sk_buff",),
    isa.ProgType.BPF_PROG_TYPE_KPROBE: ("pt_regs",),
}
_KPROBE_CTX_TYPEDEF = "bpf_user_pt_regs_t"
# the kernel struct a context struct is the projection of, which a global function may
# take for it untagged (btf_is_projection_of)
_PROJECTIONS = {"__sk_buff": "sk_buff"}
_INTS = (Kind.INT, Kind.ENUM, Kind.ENUM64)
# the registers check_func_arg_reg_off lets carry any offset
_MOVABLE = (SCALAR, PTR_TO_STACK, PTR_TO_MAP_KEY, PTR_TO_MAP_VALUE, PTR_TO_MEM) + \
    tuple(PKT_TYPES)


@dataclass(frozen=True)
class Arg:
    """One argument register: ``kind`` CTX, ANYTHING (a scalar), MEM (``size`` bytes
    the function may read and write, NULL allowed when ``nullable``), DYNPTR, BTF (a
    pointer to the kernel struct ``struct``: trusted, NULL allowed when ``nullable``,
    or ``untrusted``), UNTRUSTED_MEM (read-only memory of any size) or ARENA (an
    address in a BPF arena: the caller passes a scalar or an arena pointer, the
    function sees an unknown scalar)."""
    kind: str
    size: int = 0
    nullable: bool = True
    struct: object = None
    untrusted: bool = False


@dataclass(frozen=True)
class GlobalFunc:
    """A global function starting at instruction ``pc``: its arguments, or the
    kernel's reason to refuse any call of it (``error``)."""
    pc: int
    name: str
    args: tuple = ()
    error: str = ""
    exception_cb: bool = False      # the main program's exception callback
    errno: int = EINVAL             # BPF_PROG_LOAD's for ``error``
    static: bool = False            # a static function's prototype (static_prototype)


def describe(btf, func_info, prog_type) -> tuple:
    """The global functions among ``func_info`` ((pc, BTF FUNC id) pairs of one
    program in the object whose BTF is ``btf``), the program's own (pc 0) excepted,
    and the static ones' prototypes (``static``: :func:`static_prototype`).  None
    when the kernel would refuse that BTF (:func:`kernel_takes`): loaded without it,
    as libbpf then loads, every function is static."""
    if btf is None or not func_info or not kernel_takes(btf):
        return ()
    tags: dict = {}
    for t in btf.types:
        if t.kind == Kind.DECL_TAG and t.name.startswith("arg:"):
            tags.setdefault((t.type_id, t.component_idx), []).append(t.name[4:])
    ex_cb = exception_callback(btf, func_info)
    out = []
    for pc, tid in func_info:
        func = btf.types[tid]
        if pc == 0:
            continue
        if func.linkage != BTF_FUNC_GLOBAL:
            static = static_prototype(func, pc, tags, isa.prog_type(prog_type))
            if static is not None:
                out.append(static)
            continue
        f = _prepare(func, pc, tags, isa.prog_type(prog_type))
        out.append(replace(f, exception_cb=True) if pc == ex_cb else f)
    return tuple(out)


def static_prototype(func, pc: int, tags: dict, prog_type) -> GlobalFunc | None:
    """btf_prepare_func_args for a static function: an int or enum argument a scalar,
    a pointer to the context the context, a ``struct bpf_dynptr *`` an initialised
    dynptr; None where it gives up silently, as it does for a static function (a return
    that is not a scalar, any other pointer or type, more than five arguments); a tag
    gives up with the kernel's message (``error``), printed at the first call."""
    proto = func.target
    params = proto.members
    ret = proto.target.resolve() if proto.type_id else None
    if len(params) > MAX_BPF_FUNC_REG_ARGS or ret is None or ret.kind not in _INTS:
        return None
    args = []
    for i, p in enumerate(params):
        if tags.get((func.id, i)):
            return GlobalFunc(pc, func.name, error=f"arg#{i} type tag is not supported in "
                                                   f"static functions", static=True)
        t = func.btf.type(p.type_id).resolve() if p.type_id else None
        if t is not None and t.kind == Kind.PTR and _is_ctx(t, prog_type):
            args.append(Arg(CTX))
        elif t is not None and t.kind == Kind.PTR and _is_dynptr_ptr(t):
            args.append(Arg(DYNPTR))
        elif t is not None and t.kind in _INTS:
            args.append(Arg(ANYTHING))
        else:
            return None
    return GlobalFunc(pc, func.name, tuple(args), static=True)


def _is_dynptr_ptr(t) -> bool:
    """btf_is_dynptr_ptr: ``t`` (a pointer) points at ``struct bpf_dynptr``."""
    pointee = _skip_modifiers(t.target if t.type_id else None)
    return pointee is not None and pointee.kind in (Kind.STRUCT, Kind.FWD) and \
        pointee.name == "bpf_dynptr"


def check_int_returns(btf, func_info, code: bytes) -> None:
    """check_btf_func: a subprogram (the main program aside) that uses ``LD_ABS``/
    ``LD_IND`` or tail-calls returns an int or an enum in its BTF prototype, since
    either can end it with a return of 0 (bpf_gen_ld_abs, a tail call's fall-through);
    a :class:`VerifierError` in the kernel's words otherwise.  ``func_info`` as for
    :func:`describe`, given where the kernel takes the program's BTF."""
    insns = isa.unpack_program(code)
    starts = [pc for pc, _ in func_info] + [len(insns)]
    for (start, tid), end in zip(func_info[1:], starts[2:]):
        proto = btf.types[tid].target
        ret = proto.target.resolve() if proto.type_id else None
        if ret is not None and ret.kind in _INTS:
            continue
        body = insns[start:end]
        # check_subprogs' has_ld_abs and has_tail_call, asked in that order
        if any(i.code & 0x07 == isa.BPF_LD and i.code & 0xE0 in (isa.BPF_ABS, isa.BPF_IND)
               for i in body):
            raise VerifierError("LD_ABS is only allowed in functions that return 'int'.",
                                errno=EINVAL)
        if any(i.code == isa.BPF_JMP | isa.BPF_CALL and i.src == 0 and
               i.imm == isa.HELPER_IDS["tail_call"] for i in body):
            raise VerifierError("tail_call is only allowed in functions that return 'int'.",
                                errno=EINVAL)


EXCEPTION_CB_TAG = "exception_callback:"


def exception_cb_pc(functions) -> int:
    """The first pc of the exception callback among ``functions`` (0: none)."""
    return next((f.pc for f in functions if f.exception_cb), 0)


def exception_callback(btf, func_info) -> int:
    """The first pc of the function the main program's ``exception_callback:NAME`` decl
    tag names (libbpf's ``__exception_cb``), 0 when it has none; a :class:`VerifierError`
    with the kernel's words where bpf_find_exception_callback_insn_off refuses it."""
    main = func_info[0][1]
    names = [t.name[len(EXCEPTION_CB_TAG):] for t in btf.types
             if t.kind == Kind.DECL_TAG and t.type_id == main and t.component_idx == -1
             and t.name.startswith(EXCEPTION_CB_TAG)]
    if not names:
        return 0
    if len(names) > 1:
        # btf_find_decl_tag_value's EEXIST
        raise VerifierError("multiple exception callback tags for main subprog", errno=EEXIST)
    name = names[0]
    funcs = btf.by_name(name, Kind.FUNC)
    if not funcs:
        raise VerifierError(f"exception callback '{name}' could not be found in BTF",
                            errno=ENOENT)
    if funcs[0].linkage != BTF_FUNC_GLOBAL:
        raise VerifierError(f"exception callback '{name}' must have global linkage",
                            errno=EINVAL)
    pcs = [pc for pc, tid in func_info if tid == funcs[0].id]
    if not pcs:
        raise VerifierError("exception callback type id not found in func_info",
                            errno=EINVAL)
    if pcs[-1] == 0:
        raise VerifierError("invalid exception callback insn_off in func_info: 0",
                            errno=EINVAL)
    return pcs[-1]


def kernel_takes(btf) -> bool:
    """Whether BPF_BTF_LOAD accepts ``btf`` as far as functions go (btf_func_check:
    every parameter of a function's prototype has a name; clang -O0 leaves some
    unnamed; an extern function's, which libbpf names, do not count)."""
    return all(p.name or not p.type_id
               for t in btf.types if t.kind == Kind.FUNC and t.linkage != BTF_FUNC_EXTERN
               for p in t.target.members)


def _prepare(func, pc: int, tags: dict, prog_type) -> GlobalFunc:
    """btf_prepare_func_args for a global function."""
    proto = func.target
    name = func.name
    params = proto.members
    if len(params) > MAX_BPF_FUNC_REG_ARGS:
        return GlobalFunc(pc, name, error=f"Global function {name}() with {len(params)} > "
                                          f"{MAX_BPF_FUNC_REG_ARGS} args. Buggy compiler.")
    ret = proto.target.resolve() if proto.type_id else None
    if ret is None or ret.kind not in _INTS:
        return GlobalFunc(pc, name, error=f"Global function {name}() doesn't return scalar. "
                                          f"Only those are supported.")
    args = []
    for i, p in enumerate(params):
        arg_tags = set(tags.get((func.id, i), ()))
        unknown = arg_tags - set(ARG_TAGS)
        if unknown:
            return GlobalFunc(pc, name, error=f"arg#{i} has unsupported set of tags",
                              errno=EOPNOTSUPP)
        t = func.btf.type(p.type_id).resolve() if p.type_id else None
        if t is not None and t.kind == Kind.PTR:
            arg = _pointer_arg(func, i, t, arg_tags, prog_type)
            if isinstance(arg, GlobalFunc):
                return replace(arg, pc=pc, name=name)
            args.append(arg)
            continue
        if arg_tags:
            return GlobalFunc(pc, name, error=f"arg#{i} has pointer tag, but is not a "
                                              f"pointer type")
        if t is not None and t.kind in _INTS:
            args.append(Arg(ANYTHING))
            continue
        kind = t.kind.name if t is not None else "UNKNOWN"
        return GlobalFunc(pc, name, error=f"Arg#{i} type {kind} in {name}() is not "
                                          f"supported yet.")
    return GlobalFunc(pc, name, tuple(args))


def _pointer_arg(func, i: int, t, tags: set, prog_type):
    """The :class:`Arg` of pointer parameter ``i`` (type ``t``) tagged ``tags``, or a
    :class:`GlobalFunc` holding the kernel's refusal (its pc and name left to fill)."""
    def refused(message: str, errno: int = EINVAL) -> GlobalFunc:
        return GlobalFunc(0, "", error=message, errno=errno)

    if "ctx" in tags or _is_ctx(t, prog_type):
        if tags - {"ctx"}:
            return refused(_INVALID_TAGS.format(i))
        if tags:
            message = _ctx_tag_refusal(t, i, prog_type)
            if message:
                return refused(message)
        return Arg(CTX)
    pointee = _skip_modifiers(t.target if t.type_id else None)
    if _is_dynptr_ptr(t):
        if tags:
            return refused(_INVALID_TAGS.format(i))
        return Arg(DYNPTR)
    if "trusted" in tags:
        if "nonnull" in tags:
            return refused(_INVALID_TAGS.format(i))
        struct = _kernel_type(i, pointee)
        if isinstance(struct, GlobalFunc):
            return struct
        return Arg(BTF, nullable="nullable" in tags, struct=struct)
    if "untrusted" in tags:
        if tags - {"untrusted"}:
            return refused(f"arg#{i} untrusted cannot be combined with any other tags")
        if pointee is None or pointee.kind in _INTS + (Kind.FLOAT,):
            return Arg(UNTRUSTED_MEM, nullable=False)
        struct = _kernel_type(i, pointee)
        if isinstance(struct, GlobalFunc):
            return struct
        if struct.kind != Kind.STRUCT:
            return refused(f"arg#{i} has type {struct.kind.name} '', but only struct or "
                           f"primitive types are allowed")
        return Arg(BTF, nullable=False, struct=struct, untrusted=True)
    if "arena" in tags:
        if tags - {"arena"}:
            return refused(f"arg#{i} arena cannot be combined with any other tags")
        return Arg(ARENA)
    if "nullable" in tags:
        return refused(_INVALID_TAGS.format(i))
    try:
        size = pointee.byte_size if pointee is not None else None
    except Exception:   # a FWD, FUNC_PROTO...: btf_resolve_size fails
        size = None
    if size is None:
        what = f"{pointee.kind.name} {pointee.name}" if pointee is not None else "UNKNOWN "
        return refused(f"arg#{i} reference type('{what}') size cannot be determined: -22")
    return Arg(MEM, size, "nonnull" not in tags)


def _skip_modifiers(t):
    while t is not None and t.kind in (Kind.CONST, Kind.VOLATILE, Kind.RESTRICT,
                                       Kind.TYPE_TAG, Kind.TYPEDEF):
        t = t.target if t.type_id else None
    return t


def _kernel_type(i: int, local):
    """btf_get_ptr_to_btf_id: the one type of the kernel's BTF the program's ``local``
    type names (CO-RE candidates: same kind, same name but for a ``___flavor``), or the
    refusal."""
    if local is None:
        return GlobalFunc(0, "", error=f"arg#{i} reference type('UNKNOWN ') has no matches",
                          errno=ENOENT)
    found = candidates(local, target_btf())
    if len(found) != 1:
        what = "has no matches" if not found else "is ambiguous"
        return GlobalFunc(0, "", error=f"arg#{i} reference type('{local.kind.name} "
                                       f"{local.name}') {what}",
                          errno=ENOENT if not found else ESRCH)
    return found[0]


def _ctx_tag_refusal(ptr, i: int, prog_type) -> str:
    """btf_validate_prog_ctx_type's refusal of an ``arg:ctx`` pointer (empty: none): a
    pointer to ``void`` or to the program type's context struct."""
    t = ptr.target if ptr.type_id else None
    if prog_type == isa.ProgType.BPF_PROG_TYPE_KPROBE:
        u = t
        while u is not None and u.kind in (Kind.CONST, Kind.VOLATILE, Kind.RESTRICT,
                                           Kind.TYPE_TAG):
            u = u.target if u.type_id else None
        if u is not None and u.kind == Kind.TYPEDEF and u.name == _KPROBE_CTX_TYPEDEF:
            return ""
    t = _skip_modifiers(t)
    if t is None:
        return ""
    if not t.name:
        return f"arg#{i} type doesn't have a name"
    names = _CTX_STRUCTS.get(prog_type, ())
    if t.kind == Kind.STRUCT and t.name == names[0]:
        return ""
    return f"arg#{i} should be `struct {names[0]} *`"


def _is_ctx(ptr, prog_type) -> bool:
    t = ptr.target if ptr.type_id else None
    while t is not None and t.kind in (Kind.CONST, Kind.VOLATILE, Kind.RESTRICT,
                                       Kind.TYPE_TAG, Kind.TYPEDEF):
        if t.kind == Kind.TYPEDEF and prog_type == isa.ProgType.BPF_PROG_TYPE_KPROBE and \
                t.name == _KPROBE_CTX_TYPEDEF:
            return True
        t = t.target
    return t is not None and t.kind == Kind.STRUCT and \
        (t.name in _CTX_STRUCTS.get(prog_type, ()) or
         t.name == _PROJECTIONS.get(_CTX_STRUCTS.get(prog_type, ("",))[0]))


class GlobalCalls:
    """The global-function side of :class:`~pyebpf.verifier.interp.Interpreter`
    (mixed in): ``self.globals`` maps a start pc to its :class:`GlobalFunc`."""

    def static_arg_notes(self, st: VState, target: int) -> None:
        """btf_check_subprog_call for a static callee: its BTF prototype checked
        against the caller's registers, the first mismatch only printed (a compiler
        may drop or reorder a static function's arguments), after which the function
        is unreliable and not checked again."""
        func = self.statics.get(target)
        if func is None or target in self.unreliable:
            return
        if func.error:
            self.log.add(func.error)
            self.unreliable.add(target)
            return
        regs = st.cur.regs
        for i, arg in enumerate(func.args):
            regno = i + 1
            reg = regs[regno]
            note = None
            if arg.kind == ANYTHING and reg.type != SCALAR:
                note = f"R{regno} is not a scalar"
            elif arg.kind == DYNPTR:
                try:
                    self._check_dynptr_reg(st, self.pc, regno, reg, "")
                except Refusal as exc:
                    note = exc.lines[0]
            elif arg.kind == CTX:
                try:
                    self._check_arg_reg_off(self.pc, regno, reg, "")
                except Refusal as exc:
                    note = exc.lines[0]
                if note is None and reg.type != PTR_TO_CTX:
                    note = f"arg#{i} expects pointer to ctx"
            if note is not None:
                self.log.add(note)
                self.unreliable.add(target)
                return

    def global_call(self, st: VState, pc: int, func: GlobalFunc) -> int:
        """check_func_call for a global callee: btf_check_subprog_call on the caller's
        registers, then R0 an unknown scalar, R1-R5 clobbered, on to the next insn."""
        subprog = self.func_of(func.pc)
        invalid = f"Caller passes invalid args into func#{subprog} ('{func.name}')"
        if func.error:
            self.refuse(pc, func.error, invalid, errno=func.errno)
        regs = st.cur.regs
        for i, arg in enumerate(func.args):
            regno = i + 1
            reg = regs[regno]
            if arg.kind == ANYTHING:
                if reg.type != SCALAR:
                    self.refuse(pc, f"R{regno} is not a scalar", invalid)
            elif arg.kind == ARENA:
                # btf_check_func_arg_match: a scalar (an arena address) or PTR_TO_ARENA
                if reg.type != SCALAR and reg.type != PTR_TO_ARENA:
                    self.refuse(pc, f"R{regno} is not a pointer to arena or scalar.",
                                invalid)
            elif arg.kind == UNTRUSTED_MEM or arg.untrusted:
                # anything goes: the function reads it with probe loads
                continue
            elif arg.kind == BTF:
                self._check_btf_reg(pc, regno, reg, arg, invalid)
            elif arg.kind == DYNPTR:
                self._check_dynptr_reg(st, pc, regno, reg, invalid)
            elif arg.kind == CTX:
                self._check_arg_reg_off(pc, regno, reg, invalid)
                if reg.type != PTR_TO_CTX:
                    self.refuse(pc, f"arg#{i} expects pointer to ctx", invalid)
            else:
                self._check_arg_reg_off(pc, regno, reg, invalid)
                self._check_mem_reg(st, pc, regno, reg, arg.size, invalid)
                if not arg.nullable and reg.type & MAYBE_NULL:
                    self.refuse(pc, f"arg#{i} is expected to be non-NULL", invalid)
        self.log.add(f"Func#{subprog} ('{func.name}') is global and assumed valid.")
        if self.changes_pkt_data(func.pc):
            self.clear_all_pkt_pointers(st)
        self.globals_called.add(func.pc)
        for r in range(1, 6):
            regs[r] = Reg()
        regs[0] = scalar()
        return pc + 1

    def changes_pkt_data(self, start: int, tail_calls_only: bool = False) -> bool:
        """Whether the function at ``start``, or a function it calls, calls a helper
        that changes packet data, or tail-calls, on some path from its entry (check_cfg's
        mark_subprog_changes_pkt_data and merge_callee_effects; callbacks are their own
        functions).  A tail call leaves the calling function's packet pointers alone (a
        program tail-called returns to that function's caller), not its callers'.
        With ``tail_calls_only``, whether it tail-calls: at a static function's return
        only that matters, a helper's call having ended the pointers of every frame on
        its own paths (clear_all_pkt_pointers)."""
        from .helpers import PROTOS
        known = self.__dict__.setdefault("_changes_pkt_data", {})
        if (start, tail_calls_only) in known:
            return known[start, tail_calls_only]
        known[start, tail_calls_only] = False       # recursion is refused elsewhere
        func = self.func_of(start)
        end = self.starts[func + 1] if func + 1 < len(self.starts) else len(self.insns)
        todo, seen, changes = [start], set(), False
        while todo and not changes:
            pc = todo.pop()
            if pc in seen or not start <= pc < end or self.ops[pc] is None:
                continue
            seen.add(pc)
            insn, f = self.insns[pc], self.ops[pc].form
            if insn.is_helper_call:
                proto = PROTOS.get(insn.imm)
                changes = insn.imm == isa.HELPER_IDS["tail_call"] or \
                    not tail_calls_only and proto is not None and proto.changes_pkt_data
            elif f is isa.F_CALL_LOCAL:
                changes = self.changes_pkt_data(pc + 1 + insn.imm, tail_calls_only)
            if insn.is_exit:
                continue
            if f in (isa.F_JA, isa.F_JA32):
                todo.append(pc + 1 + (insn.imm if f is isa.F_JA32 else insn.off))
                continue
            if f in (isa.F_JCC_K, isa.F_JCC_X, isa.F_MAY_GOTO):
                todo.append(pc + 1 + insn.off)
            todo.append(pc + (2 if f is isa.F_LDDW else 1))
        known[start, tail_calls_only] = changes
        return changes

    def _check_btf_reg(self, pc, regno, reg: Reg, arg: Arg, invalid: str) -> None:
        """The check of a trusted BTF pointer argument: NULL passes where it may be
        NULL; anything else must be trusted (is_trusted_reg: referenced, or a trusted BTF
        pointer), then check_reg_type's: a BTF pointer (one that may be NULL only where
        the argument may be) to the struct, at its start."""
        if arg.nullable and reg.type == SCALAR and reg.is_const and reg.value == 0:
            return
        base, flags = reg.type & 0xff, reg.type & ~0xff & ~MAYBE_NULL
        if not reg.ref and not (base == PTR_TO_BTF_ID and not flags & _NOT_TRUSTED):
            self.refuse(pc, f"R{regno} must be referenced or trusted", invalid)
        checked = reg
        if arg.nullable and reg.type & MAYBE_NULL:
            checked = reg.copy()
            checked.type &= ~MAYBE_NULL
        try:
            self.btf_arg(pc, regno, checked, arg.struct.name)
        except Refusal as exc:
            self.refuse(pc, *exc.lines, invalid, errno=EACCES)

    def _check_dynptr_reg(self, st, pc, regno, reg: Reg, invalid: str) -> None:
        """check_func_arg_reg_off and process_dynptr_func for a dynptr argument
        (ARG_PTR_TO_DYNPTR | MEM_RDONLY): an initialised dynptr of any type."""
        if reg.type == CONST_PTR_TO_DYNPTR:
            self._check_arg_reg_off(pc, regno, reg, invalid)
        try:
            self.dynptr_arg(st, pc, regno - 1, reg, False)
        except Refusal as exc:
            self.refuse(pc, *exc.lines, invalid, errno=exc.errno)

    def _check_arg_reg_off(self, pc, regno, reg: Reg, invalid: str) -> None:
        """check_func_arg_reg_off (ARG_DONTCARE), which btf_check_func_arg_match runs on
        a ctx or memory argument before its type: a scalar or a pointer that may be moved
        passes; any other register, an uninitialised one or a pointer that may be NULL
        too, must be unmoved (__check_ptr_off_reg), a BTF pointer but for a fixed offset.
        Its refusals are EACCES; btf_check_func_arg_match's own are EINVAL."""
        base, flags = reg.type & 0xff, reg.type & ~0xff
        if base in _MOVABLE and not flags & MAYBE_NULL:
            return
        what = type_str(reg.type)
        if reg.off < 0:
            self.refuse(pc, f"negative offset {what} ptr R{regno} off={reg.off} disallowed",
                        invalid, errno=EACCES)
        if reg.off and base != PTR_TO_BTF_ID:
            self.refuse(pc, f"dereference of modified {what} ptr R{regno} off={reg.off} "
                            f"disallowed", invalid, errno=EACCES)
        if not reg.is_const or reg.value:
            self.refuse(pc, f"variable {what} access var_off={tnum.text(reg.var)} disallowed",
                        invalid, errno=EACCES)

    def _check_mem_reg(self, st, pc, regno, reg: Reg, size: int, invalid: str) -> None:
        """check_mem_reg: a NULL constant passes; anything else must point at ``size``
        bytes the callee may read and write (a NULL-able pointer taken as checked)."""
        if reg.type == SCALAR and reg.is_const and reg.value == 0:
            return
        base = reg.type & ~MAYBE_NULL
        if base not in (PTR_TO_STACK, PTR_TO_MAP_VALUE, PTR_TO_MAP_KEY, PTR_TO_MEM) and \
                base not in PKT_TYPES:
            # check_helper_mem_access names the stack as what it expected
            self.refuse(pc, f"R{regno} type={type_str(reg.type)} expected=fp", invalid)
        saved = reg
        reg = reg.copy()
        reg.type = base
        st.cur.regs[regno] = reg
        try:
            try:
                self.helper_mem(st, pc, regno, reg, size, False, True)
                self.helper_mem(st, pc, regno, reg, size, True, True)
            except Refusal as exc:
                self.refuse(pc, *exc.lines, invalid)
        finally:
            st.cur.regs[regno] = saved

    def global_entry(self, func: GlobalFunc) -> VState:
        """do_check_common's state for a global function: its arguments from the
        prototype, the other registers not initialised."""
        st = VState()
        fr = Frame(-1, self.func_of(func.pc), 0)
        for i, arg in enumerate(func.args):
            reg = fr.regs[i + 1]
            if arg.kind == CTX:
                reg.type = PTR_TO_CTX
                reg.mark_known(0)
            elif arg.kind == ANYTHING or arg.kind == ARENA:
                # an arena pointer too (do_check_common: mark_reg_unknown, with or
                # without an arena): the function sees an unknown scalar
                fr.regs[i + 1] = scalar()
            elif arg.kind == DYNPTR:
                # do_check_common: a dynptr the function may read, which 6.18's log
                # shows as an skb one
                fr.regs[i + 1] = const_dynptr_reg(SKB, self.new_id())
            elif arg.kind == BTF:
                reg.type = PTR_TO_BTF_ID | (PTR_UNTRUSTED if arg.untrusted else 0) | \
                    (MAYBE_NULL if arg.nullable else 0)
                reg.mark_known(0)
                reg.map = arg.struct
                if arg.nullable:
                    reg.id = self.new_id()
            elif arg.kind == UNTRUSTED_MEM:
                reg.type = PTR_TO_MEM | PTR_UNTRUSTED
                reg.mark_known(0)
            else:
                reg.type = PTR_TO_MEM | (MAYBE_NULL if arg.nullable else 0)
                reg.mark_known(0)
                reg.size = arg.size
                if arg.nullable:
                    reg.id = self.new_id()
        fr.regs[10].type = PTR_TO_STACK
        fr.regs[10].mark_known(0)
        st.frames.append(fr)
        return st

    def global_exit(self, pc: int, r0: Reg) -> None:
        """check_return_code at a global function's exit."""
        if r0.type != SCALAR:
            self.refuse(pc, f"At subprogram exit the register R0 is not a scalar value "
                            f"({type_str(r0.type)})")

    def global_functions_called(self):
        """do_check_subprogs: each global function a verified path called, in function
        order, again while verifying them calls others; yields (func, state)."""
        done: set = set()
        while True:
            new = 0
            for start in sorted(self.globals):
                if start in done or start not in self.globals_called:
                    continue
                done.add(start)
                new += 1
                func = self.globals[start]
                self.log.add(f"Validating {func.name}() func#{self.func_of(start)}...")
                yield func, self.global_entry(func)
                self.log.add(f"Func#{self.func_of(start)} ('{func.name}') is safe for any "
                             f"args that match its prototype")
            if not new:
                return
