"""CO-RE: rewrite a program's instructions for the kernel types of a target BTF, with
libbpf's rules (``bpf_core_calc_relo_insn``, ``bpf_core_patch_insn``).

Each ``.BTF.ext`` CO-RE record names an instruction, a local type (from the object's
BTF), an access string and a kind (:class:`pyebpf.isa.CoreReloKind`).  The access
string is parsed into a *spec* on the local type (``bpf_core_parse_spec``); the target's
*candidates* are its types of the same kind whose name, with any ``___flavor`` suffix
dropped, is the local one's (``bpf_core_add_cands``); each candidate is matched
(``bpf_core_spec_match``: fields by name, anonymous members searched through, field types
compatible as ``bpf_core_fields_are_compat`` says).  Every matching candidate must give
the same value, else the relocation is ambiguous.  When none matches, the EXISTS kinds
give 0, the TYPE kinds 0, and the others poison the instruction as libbpf does: it
becomes ``call 0xbad2310``, which only fails if it can be reached.

:func:`relocate` patches one section's code; errors are
:class:`~pyebpf.errors.ElfError` naming the relocation, its access as a type path and
the candidates.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field

from .. import isa
from ..errors import ElfError
from .types import INT_SIGNED, MAX_RESOLVE_DEPTH, Btf, Kind, Type

__all__ = ["relocate", "target_btf", "Poisoned", "VMLINUX", "SHIPPED"]

K = isa.CoreReloKind
VMLINUX = "/sys/kernel/btf/vmlinux"
_FIELD_KINDS = frozenset({K.BPF_CORE_FIELD_BYTE_OFFSET, K.BPF_CORE_FIELD_BYTE_SIZE,
                          K.BPF_CORE_FIELD_EXISTS, K.BPF_CORE_FIELD_SIGNED,
                          K.BPF_CORE_FIELD_LSHIFT_U64, K.BPF_CORE_FIELD_RSHIFT_U64})
_TYPE_KINDS = frozenset({K.BPF_CORE_TYPE_ID_LOCAL, K.BPF_CORE_TYPE_ID_TARGET,
                         K.BPF_CORE_TYPE_EXISTS, K.BPF_CORE_TYPE_SIZE, K.BPF_CORE_TYPE_MATCHES})
_ENUM_KINDS = frozenset({K.BPF_CORE_ENUMVAL_EXISTS, K.BPF_CORE_ENUMVAL_VALUE})
_SPEC_MAX_LEN = 64                   # libbpf's BPF_CORE_SPEC_MAX_LEN
_SIZES = {1: isa.BPF_B, 2: isa.BPF_H, 4: isa.BPF_W, 8: isa.BPF_DW}
_COMPOSITE = (Kind.STRUCT, Kind.UNION)
_ENUMS = (Kind.ENUM, Kind.ENUM64)


class _Fail(Exception):
    """A relocation that cannot be applied; the message is completed by the caller."""


@dataclass
class _Acc:
    type_id: int                     # the composite (named access) or element type
    idx: int
    name: str | None = None


@dataclass
class _Spec:
    btf: Btf
    root_type_id: int
    kind: int
    raw: list[int] = field(default_factory=list)
    acc: list[_Acc] = field(default_factory=list)
    bit_offset: int = 0

    def path(self) -> str:
        """``struct sk_buff.len (0:2 @ offset 12)``, as libbpf's bpf_core_format_spec."""
        root = self.btf.types[self.root_type_id]
        text = root.describe()
        if self.kind in _ENUM_KINDS:
            return f"{text}::{self.acc[0].name} = {self.acc[0].idx}"
        if self.kind in _FIELD_KINDS:
            for i, a in enumerate(self.acc):
                text += f".{a.name}" if a.name else (f"[{a.idx}]" if i or a.idx else "")
            raw = ":".join(map(str, self.raw))
            text += f" ({raw} @ offset {self.bit_offset // 8}"
            text += f".{self.bit_offset % 8})" if self.bit_offset % 8 else ")"
        return text


@dataclass(frozen=True)
class Poisoned:
    """An instruction that libbpf's rules poisoned: why, for a later error."""
    pc: int
    relocation: int
    reason: str


def _skip(btf: Btf, type_id: int) -> tuple[Type, int]:
    t = btf.types[type_id].resolve()
    return t, t.id


def _essential(name: str) -> str:
    """A name without its ``___flavor`` suffix (bpf_core_essential_name_len): cut at
    the last ``X___Y`` where neither X nor Y is an underscore."""
    for i in range(len(name) - 5, -1, -1):
        if name[i] != "_" and name[i + 1:i + 4] == "___" and name[i + 4] != "_":
            return name[:i + 1]
    return name


def _kinds_compat(a: Type, b: Type) -> bool:
    return a.kind == b.kind or (a.kind in _ENUMS and b.kind in _ENUMS)


def _bitfield_size(t: Type, idx: int) -> int:
    return t.members[idx].bitfield_size if t.kind_flag else 0


def _is_flex(btf: Btf, prev: _Acc, arr: Type) -> bool:
    """An array of 0 elements that is its struct's last member (is_flex_arr)."""
    if prev.name is None or arr.nelems:
        return False
    return prev.idx == len(btf.types[prev.type_id].members) - 1


def _parse_spec(btf: Btf, type_id: int, access: str, kind: int) -> _Spec:
    """bpf_core_parse_spec: the local side of a relocation."""
    spec = _Spec(btf, type_id, kind)
    if not access:
        raise _Fail("empty access string")
    try:
        spec.raw = [int(p) for p in access.split(":")]
    except ValueError:
        raise _Fail(f"access string {access!r} is not colon-separated numbers") from None
    if len(spec.raw) > _SPEC_MAX_LEN:
        raise _Fail(f"access string {access!r} is longer than {_SPEC_MAX_LEN}")
    if kind in _TYPE_KINDS:
        if access != "0":
            raise _Fail(f"a type relocation's access string must be \"0\", not {access!r}")
        return spec
    t, tid = _skip(btf, type_id)
    idx = spec.raw[0]
    if kind in _ENUM_KINDS:
        if t.kind not in _ENUMS or len(spec.raw) > 1 or idx >= len(t.members):
            raise _Fail(f"access {access!r} is not an enumerator of {t.describe()}")
        spec.acc.append(_Acc(tid, idx, t.members[idx].name))
        return spec
    if kind not in _FIELD_KINDS:
        raise _Fail(f"unknown relocation kind {kind}")
    spec.acc.append(_Acc(tid, idx))
    spec.bit_offset = idx * t.byte_size * 8
    cur = t.id
    for idx in spec.raw[1:]:
        t, cur = _skip(btf, cur)
        if t.kind in _COMPOSITE:
            if idx >= len(t.members):
                raise _Fail(f"{t.describe()} has no member #{idx}")
            m = t.members[idx]
            spec.bit_offset += m.bit_offset
            if m.name:
                spec.acc.append(_Acc(cur, idx, m.name))
            cur = m.type_id
        elif t.kind == Kind.ARRAY:
            elem, eid = _skip(btf, t.type_id)
            if not _is_flex(btf, spec.acc[-1], t) and idx >= t.nelems:
                raise _Fail(f"index {idx} is beyond {t.describe()}")
            spec.acc.append(_Acc(eid, idx))
            spec.bit_offset += idx * elem.byte_size * 8
            cur = eid
        else:
            raise _Fail(f"access {access!r} indexes into {t.describe()}, neither a struct, "
                        f"a union nor an array")
    return spec


def _fields_compat(lb: Btf, lid: int, tb: Btf, tid: int) -> bool:
    """bpf_core_fields_are_compat."""
    for _ in range(MAX_RESOLVE_DEPTH):
        lt, lid = _skip(lb, lid)
        tt, tid = _skip(tb, tid)
        if lt.kind in _COMPOSITE and tt.kind in _COMPOSITE:
            return True
        if not _kinds_compat(lt, tt):
            return False
        if lt.kind in (Kind.PTR, Kind.FLOAT):
            return True
        if lt.kind in (Kind.FWD, *_ENUMS):
            return (not lt.name or not tt.name or _essential(lt.name) == _essential(tt.name))
        if lt.kind == Kind.INT:
            return lt.bit_offset == 0 and tt.bit_offset == 0
        if lt.kind != Kind.ARRAY:
            return False
        lid, tid = lt.type_id, tt.type_id
    return False


def _types_compat(lb: Btf, lid: int, tb: Btf, tid: int, level: int = 32) -> bool:
    """bpf_core_types_are_compat."""
    if not _kinds_compat(lb.types[lid], tb.types[tid]):
        return False
    for _ in range(level):
        lt, lid = _skip(lb, lid)
        tt, tid = _skip(tb, tid)
        if not _kinds_compat(lt, tt):
            return False
        if lt.kind in (Kind.UNKN, Kind.STRUCT, Kind.UNION, Kind.FWD, *_ENUMS):
            return True
        if lt.kind == Kind.INT:
            return lt.bit_offset == 0 and tt.bit_offset == 0
        if lt.kind in (Kind.PTR, Kind.ARRAY):
            lid, tid = lt.type_id, tt.type_id
        elif lt.kind == Kind.FUNC_PROTO:
            if len(lt.members) != len(tt.members):
                return False
            if not all(_types_compat(lb, a.type_id, tb, b.type_id, level - 1)
                       for a, b in zip(lt.members, tt.members)):
                return False
            lid, tid = lt.type_id, tt.type_id
        else:
            return False
    raise _Fail("types nest too deep")


def _names_match(local: str, target: str) -> bool:
    """bpf_core_names_match: an anonymous target matches an anonymous local only."""
    if not target:
        return not local
    return _essential(local) == _essential(target)


def _types_match(lb: Btf, lid: int, tb: Btf, tid: int, behind_ptr: bool = False,
                 level: int = 32) -> bool:
    """bpf_core_types_match: TYPE_MATCHES, stricter than compatibility."""
    if level <= 0:
        raise _Fail("types nest too deep")
    lt, lid = _skip(lb, lid)
    tt, tid = _skip(tb, tid)
    if not _names_match(lt.name, tt.name):
        return False
    lk, tk = lt.kind, tt.kind
    if lk == Kind.UNKN:
        return tk == Kind.UNKN
    if lk == Kind.FWD:
        if behind_ptr and tk != Kind.FWD:
            return (tk == Kind.STRUCT and not lt.kind_flag) or (tk == Kind.UNION and
                                                                 bool(lt.kind_flag))
        return tk == Kind.FWD and lt.kind_flag == tt.kind_flag
    if lk in _ENUMS:
        if tk not in _ENUMS:
            return False
        return len(lt.members) <= len(tt.members) and all(
            any(_names_match(m.name, o.name) for o in tt.members) for m in lt.members)
    if lk in _COMPOSITE:
        if behind_ptr:
            return lk == tk or (tk == Kind.FWD and (lk == Kind.UNION) == bool(tt.kind_flag))
        if lk != tk or len(lt.members) > len(tt.members):
            return False
        for m in lt.members:
            other = next((o for o in tt.members if _names_match(m.name, o.name)), None)
            if other is None or not _types_match(lb, m.type_id, tb, other.type_id,
                                                 behind_ptr, level - 1):
                return False
        return True
    if lk == Kind.INT:
        return (tk == lk and lt.size == tt.size and
                bool(lt.encoding & INT_SIGNED) == bool(tt.encoding & INT_SIGNED))
    if lk == Kind.PTR:
        return tk == lk and _types_match(lb, lt.type_id, tb, tt.type_id, True, level - 1)
    if lk == Kind.ARRAY:
        return (tk == lk and lt.nelems == tt.nelems and
                _types_match(lb, lt.type_id, tb, tt.type_id, behind_ptr, level - 1))
    if lk == Kind.FUNC_PROTO:
        return (tk == lk and len(lt.members) == len(tt.members) and
                all(_types_match(lb, a.type_id, tb, b.type_id, behind_ptr, level - 1)
                    for a, b in zip(lt.members, tt.members)) and
                _types_match(lb, lt.type_id, tb, tt.type_id, behind_ptr, level - 1))
    return False


def _match_member(local: _Spec, lacc: _Acc, tb: Btf, tid: int, spec: _Spec) -> int | None:
    """bpf_core_match_member: the member of target type ``tid`` named as the local
    access, searching anonymous members; its type id, or None."""
    tt, tid = _skip(tb, tid)
    if tt.kind not in _COMPOSITE:
        return None
    lm = local.btf.types[lacc.type_id].members[lacc.idx]
    for i, m in enumerate(tt.members):
        if len(spec.raw) == _SPEC_MAX_LEN:
            raise _Fail("access nests too deep in the target")
        spec.bit_offset += m.bit_offset
        spec.raw.append(i)
        if not m.name:
            found = _match_member(local, lacc, tb, m.type_id, spec)
            if found is not None:
                return found
        elif m.name == lm.name:
            if not _fields_compat(local.btf, lm.type_id, tb, m.type_id):
                return None
            spec.acc.append(_Acc(tid, i, m.name))
            return m.type_id
        spec.bit_offset -= m.bit_offset
        spec.raw.pop()
    return None


def _spec_match(local: _Spec, tb: Btf, tid: int) -> _Spec | None:
    """bpf_core_spec_match: the target spec on candidate ``tid``, or None."""
    spec = _Spec(tb, tid, local.kind)
    if local.kind in _TYPE_KINDS:
        ok = (_types_match(local.btf, local.root_type_id, tb, tid)
              if local.kind == K.BPF_CORE_TYPE_MATCHES else
              _types_compat(local.btf, local.root_type_id, tb, tid))
        return spec if ok else None
    if local.kind in _ENUM_KINDS:
        tt, tid = _skip(tb, tid)
        if tt.kind not in _ENUMS:
            return None
        want = _essential(local.acc[0].name)
        for i, m in enumerate(tt.members):
            if _essential(m.name) == want:
                spec.acc.append(_Acc(tid, i, m.name))
                spec.raw.append(i)
                return spec
        return None
    for i, lacc in enumerate(local.acc):
        if lacc.name is not None:
            nxt = _match_member(local, lacc, tb, tid, spec)
            if nxt is None:
                return None
            tid = nxt
            continue
        if i > 0:
            tt, tid = _skip(tb, tid)
            if tt.kind != Kind.ARRAY:
                return None
            if not _is_flex(tb, spec.acc[-1], tt) and lacc.idx >= tt.nelems:
                return None
            tid = _skip(tb, tt.type_id)[1]
        spec.acc.append(_Acc(tid, lacc.idx))
        spec.raw.append(lacc.idx)
        spec.bit_offset += lacc.idx * tb.types[tid].byte_size * 8
    return spec


@dataclass
class _Res:
    orig: int = 0
    new: int = 0
    poison: bool = False
    validate: bool = True
    orig_sz: int = 0
    new_sz: int = 0
    orig_type: Type | None = None
    new_type: Type | None = None
    fail_memsz: bool = False


class _Poison(Exception):
    pass


def _field_value(kind: int, spec: _Spec | None, res: _Res, side: str) -> None:
    """bpf_core_calc_field_relo, for one side ("orig" or "new") of ``res``."""
    if kind == K.BPF_CORE_FIELD_EXISTS:
        setattr(res, side, int(spec is not None))
        return
    if spec is None:
        raise _Poison
    acc = spec.acc[-1]
    btf = spec.btf
    if acc.name is None:
        size = btf.types[acc.type_id].byte_size
        if kind == K.BPF_CORE_FIELD_BYTE_OFFSET:
            setattr(res, side, spec.bit_offset // 8)
            setattr(res, side + "_sz", size)
            setattr(res, side + "_type", btf.types[acc.type_id])
        elif kind == K.BPF_CORE_FIELD_BYTE_SIZE:
            setattr(res, side, size)
        else:
            raise _Fail(f"{K(kind).name} cannot apply to an array element")
        return
    t = btf.types[acc.type_id]
    mt = btf.types[t.members[acc.idx].type_id].resolve()
    bit_off, bit_sz = spec.bit_offset, _bitfield_size(t, acc.idx)
    bitfield = bit_sz > 0
    if bitfield:
        byte_sz = mt.size
        byte_off = bit_off // 8 // byte_sz * byte_sz
        while bit_off + bit_sz - byte_off * 8 > byte_sz * 8:
            if byte_sz >= 8:
                raise _Fail("the bitfield cannot be read with one 64-bit load")
            byte_sz *= 2
            byte_off = bit_off // 8 // byte_sz * byte_sz
    else:
        byte_sz, byte_off, bit_sz = mt.byte_size, bit_off // 8, mt.byte_size * 8
    if side == "orig":
        # the compiler's guess at a bitfield may differ from libbpf's: not checked,
        # except signedness and the right shift, which are never ambiguous
        res.validate = not bitfield or kind in (K.BPF_CORE_FIELD_SIGNED,
                                                 K.BPF_CORE_FIELD_RSHIFT_U64)
    if kind == K.BPF_CORE_FIELD_BYTE_OFFSET:
        value = byte_off
        if not bitfield:
            setattr(res, side + "_sz", byte_sz)
            setattr(res, side + "_type", mt)
    elif kind == K.BPF_CORE_FIELD_BYTE_SIZE:
        value = byte_sz
    elif kind == K.BPF_CORE_FIELD_SIGNED:
        value = int((mt.kind in _ENUMS and mt.signed) or
                    (mt.kind == Kind.INT and bool(mt.encoding & INT_SIGNED)))
    elif kind == K.BPF_CORE_FIELD_LSHIFT_U64:
        value = 64 - (bit_off + bit_sz - byte_off * 8)
    else:
        value = 64 - bit_sz
    setattr(res, side, value)


def _type_value(kind: int, spec: _Spec | None) -> int:
    if spec is None:
        return 0        # type relocations give 0 when the target has no such type
    if kind in (K.BPF_CORE_TYPE_ID_LOCAL, K.BPF_CORE_TYPE_ID_TARGET):
        return spec.root_type_id
    if kind in (K.BPF_CORE_TYPE_EXISTS, K.BPF_CORE_TYPE_MATCHES):
        return 1
    return spec.btf.types[spec.root_type_id].byte_size


def _enum_value(kind: int, spec: _Spec | None) -> int:
    if kind == K.BPF_CORE_ENUMVAL_EXISTS:
        return int(spec is not None)
    if spec is None:
        raise _Poison
    t = spec.btf.types[spec.acc[0].type_id]
    v = t.members[spec.acc[0].idx].value
    if t.kind == Kind.ENUM:       # libbpf reads a 32-bit enumerator as __s32
        v &= 0xFFFFFFFF
        v -= (1 << 32) if v >> 31 else 0
    return v & (2 ** 64 - 1)


def _calc(kind: int, local: _Spec, target: _Spec | None) -> _Res:
    """bpf_core_calc_relo."""
    res = _Res()
    try:
        if kind in _FIELD_KINDS:
            _field_value(kind, local, res, "orig")
            _field_value(kind, target, res, "new")
            if res.orig_sz != res.new_sz:
                o, n = res.orig_type, res.new_type
                # only zero-extending loads may change size: pointers, unsigned ints
                res.fail_memsz = not (
                    (o.kind == Kind.PTR and n.kind == Kind.PTR) or
                    (o.kind == Kind.INT and n.kind == Kind.INT and
                     not o.encoding & INT_SIGNED and not n.encoding & INT_SIGNED))
        elif kind in _TYPE_KINDS:
            res.orig, res.new = _type_value(kind, local), _type_value(kind, target)
        else:
            res.orig, res.new = _enum_value(kind, local), _enum_value(kind, target)
    except _Poison:
        res.poison = True
    return res


def candidates(local_t: Type, target: Btf) -> list[Type]:
    """bpf_core_add_cands: target types of a compatible kind with the same essential
    name."""
    index = getattr(target, "_core_names", None)
    if index is None:
        index = {}
        for t in target.types:
            if t.name:
                index.setdefault(_essential(t.name), []).append(t)
        target._core_names = index
    return [t for t in index.get(_essential(local_t.name), ()) if _kinds_compat(t, local_t)]


def _patch(code: bytearray, pc: int, res: _Res) -> None:
    """bpf_core_patch_insn."""
    at = pc * isa.INSN_SIZE
    if at + isa.INSN_SIZE > len(code):
        raise _Fail(f"instruction {pc} is outside the section")
    opcode, regs, off, imm = struct.unpack_from("<BBhi", code, at)
    cls = opcode & 0x07
    lddw = opcode == isa.BPF_LD | isa.BPF_IMM | isa.BPF_DW

    def poison():
        if lddw:
            struct.pack_into("<BBhi", code, at + 8, isa.BPF_JMP | isa.BPF_CALL, 0, 0,
                             isa.BPF_CORE_POISON_HELPER)
        struct.pack_into("<BBhi", code, at, isa.BPF_JMP | isa.BPF_CALL, 0, 0,
                         isa.BPF_CORE_POISON_HELPER)

    if res.poison:
        poison()
        return
    if cls in (isa.BPF_ALU, isa.BPF_ALU64):
        if opcode & 0x08:
            raise _Fail(f"instruction {pc} (ALU) takes a register, not an immediate")
        if res.validate and imm & 0xFFFFFFFF != res.orig & 0xFFFFFFFF:
            raise _Fail(f"instruction {pc} (ALU) has imm {imm}, expected {res.orig}")
        struct.pack_into("<i", code, at + 4, _s32(res.new))
    elif cls in (isa.BPF_LDX, isa.BPF_ST, isa.BPF_STX):
        if res.validate and off != res.orig:
            raise _Fail(f"instruction {pc} (LDX/ST/STX) has offset {off}, expected {res.orig}")
        if res.new > 0x7FFF:
            raise _Fail(f"instruction {pc}: offset {res.new} does not fit in 16 bits")
        if res.fail_memsz:
            poison()
            return
        struct.pack_into("<h", code, at + 2, res.new)
        if res.new_sz != res.orig_sz:
            size = {isa.BPF_B: 1, isa.BPF_H: 2, isa.BPF_W: 4, isa.BPF_DW: 8}[opcode & 0x18]
            if size != res.orig_sz:
                raise _Fail(f"instruction {pc} accesses {size} bytes, expected {res.orig_sz}")
            if res.new_sz not in _SIZES:
                raise _Fail(f"instruction {pc}: no load or store of {res.new_sz} bytes")
            code[at] = (opcode & ~0x18 & 0xFF) | _SIZES[res.new_sz]
    elif lddw:
        if (regs >> 4 or off or at + 16 > len(code) or
                code[at + 8:at + 12] != b"\0\0\0\0"):
            raise _Fail(f"instruction {pc} (lddw) has an unexpected form")
        value = (imm & 0xFFFFFFFF) | struct.unpack_from("<I", code, at + 12)[0] << 32
        if res.validate and value != res.orig:
            raise _Fail(f"instruction {pc} (lddw) loads {value}, expected {res.orig}")
        struct.pack_into("<II", code, at + 4, res.new & 0xFFFFFFFF, 0)
        struct.pack_into("<I", code, at + 12, res.new >> 32 & 0xFFFFFFFF)
    else:
        raise _Fail(f"instruction {pc} (opcode {opcode:#04x}) cannot be relocated")


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >> 31 else v


def relocate(code: bytes, relos, local: Btf, target, *, file: str | None = None,
             section: str | None = None) -> tuple[bytes, list[Poisoned]]:
    """``code`` (one section's instructions) with the CO-RE records ``relos``
    (:class:`pyebpf.btf.ext.CoreRelo`) applied against ``target``, a :class:`Btf` or a
    sequence of them whose candidates are all weighed together (cilium/ebpf's
    ``CORERelocate`` over the kernel's and the extra targets); and the instructions
    poisoned because no target matched."""
    targets = (target,) if isinstance(target, Btf) else tuple(target)
    out, poisoned = bytearray(code), []
    for r in relos:
        try:
            kind = K(r.kind)
        except ValueError:
            raise ElfError(f"CO-RE relocation #{r.number}: unknown kind {r.kind}", file=file,
                           section=section, insn=r.pc) from None
        if not 0 < r.type_id < len(local.types):
            raise ElfError(f"CO-RE relocation #{r.number}: type id {r.type_id} is not in the "
                           f"object's BTF", file=file, section=section, insn=r.pc)
        local_t = local.types[r.type_id]
        what = f"CO-RE relocation #{r.number} ({kind.name[len('BPF_CORE_'):].lower()})"
        try:
            spec = _parse_spec(local, r.type_id, r.access, kind)
            if kind == K.BPF_CORE_TYPE_ID_LOCAL:
                res = _Res(r.type_id, r.type_id, validate=False)
            else:
                if not local_t.name:
                    raise _Fail(f"the local type {local_t.describe()} is anonymous: CO-RE "
                                f"needs a named type")
                res, chosen = None, None
                cands = [(tb, c) for tb in targets for c in candidates(local_t, tb)]
                for tb, cand in cands:
                    tspec = _spec_match(spec, tb, cand.id)
                    if tspec is None:
                        continue
                    cres = _calc(kind, spec, tspec)
                    if chosen is None:
                        res, chosen = cres, tspec
                    elif tspec.bit_offset != chosen.bit_offset:
                        raise _Fail(f"field offset ambiguity: {chosen.path()} and "
                                    f"{tspec.path()}")
                    elif cres.poison != res.poison or cres.new != res.new:
                        raise _Fail(f"ambiguous: {chosen.path()} gives {res.new}, "
                                    f"{tspec.path()} gives {cres.new}")
                if chosen is None:
                    res = _calc(kind, spec, None)
                    if res.poison:
                        names = ", ".join(f"[{c.id}] {c.describe()}" for _, c in cands) or "none"
                        poisoned.append(Poisoned(r.pc, r.number,
                                                 f"{what}: {spec.path()} has no match in "
                                                 f"the target BTF (candidates: {names})"))
            _patch(out, r.pc, res)
        except _Fail as exc:
            try:
                path = _parse_spec(local, r.type_id, r.access, kind).path()
            except _Fail:
                path = f"{local_t.describe()} access {r.access!r}"
            raise ElfError(f"{what} on {path}: {exc}", file=file, section=section,
                           insn=r.pc) from None
    return bytes(out), poisoned


_TARGETS: dict[tuple, Btf] = {}
#: The target BTF pyebpf ships, for the kernel it models (``tools/gen_target_btf.py``
#: writes it from that kernel's BTF: the types tc and socket-filter programs reach).
SHIPPED = os.path.join(os.path.dirname(os.path.dirname(__file__)), "target",
                       f"vmlinux-{isa.KERNEL_RELEASE}.btf")


def target_btf(btf=None) -> Btf:
    """The target BTF: ``btf`` itself if a :class:`Btf`, else the file it names, else the
    running kernel's ``/sys/kernel/btf/vmlinux`` when it can be read, else
    :data:`SHIPPED`.  Files are parsed once per process."""
    if isinstance(btf, Btf):
        return btf
    if btf is not None:
        path = os.fspath(btf)
    else:
        path = VMLINUX if os.access(VMLINUX, os.R_OK) else SHIPPED
    try:
        st = os.stat(path)
        key = (path, st.st_mtime_ns, st.st_size)
        if key not in _TARGETS:
            with open(path, "rb") as f:
                data = f.read()
            _TARGETS[key] = Btf.parse(data, path)
    except OSError as exc:
        raise ElfError(f"cannot read the target BTF {path}: {exc.strerror}") from None
    return _TARGETS[key]
