"""Write BTF: :func:`encode` turns types back into a ``.BTF`` blob the kernel's format
describes (``struct btf_header``, the type records, the string section), and
:func:`subset` keeps the types some named roots reach, for a small target BTF.

What :func:`subset` keeps: each root and every type it holds by value (members,
array elements, typedef and qualifier targets, function prototypes), in full; a named
struct or union reached only through a pointer becomes a forward declaration
(``BTF_KIND_FWD``) with its name, unless it is kept in full for another reason.  That
is what CO-RE needs of a target: relocations match types by name and fields by name
and offset, and a pointer member only has to be a pointer (``bpf_core_fields_are_compat``
does not look behind it).  Types keep their original order, so the output of the same
input is always the same bytes.
"""
from __future__ import annotations

import struct

from .types import MAGIC, Btf, Kind, Type

__all__ = ["encode", "subset", "subset_ids"]

_HEADER = struct.Struct("<HBBIIIII")
_SIZED = (Kind.INT, Kind.STRUCT, Kind.UNION, Kind.ENUM, Kind.ENUM64, Kind.FLOAT, Kind.DATASEC)
_QUALIFIERS = (Kind.TYPEDEF, Kind.VOLATILE, Kind.CONST, Kind.RESTRICT, Kind.TYPE_TAG)


class _Strings:
    def __init__(self):
        self.data = bytearray(b"\0")
        self.offsets = {"": 0}

    def add(self, name: str) -> int:
        if name not in self.offsets:
            self.offsets[name] = len(self.data)
            self.data += name.encode() + b"\0"
        return self.offsets[name]


def encode(types: list[Type], ids: dict[int, int] | None = None) -> bytes:
    """A ``.BTF`` blob of ``types`` (without ``void``), in that order.  ``ids`` maps the
    type ids their references use to the ids in the output (default: unchanged)."""
    new_id = (lambda i: i) if ids is None else (lambda i: ids[i])
    strings = _Strings()
    out = bytearray()
    for t in types:
        members = t.vars if t.kind == Kind.DATASEC else t.members
        vlen = t.linkage if t.kind == Kind.FUNC else len(members)
        kflag = 1 if t.kind in (Kind.ENUM, Kind.ENUM64) and t.signed else t.kind_flag
        info = vlen | t.kind << 24 | kflag << 31
        # an array's size_or_type is 0: its element type is in struct btf_array
        size_or_type = (t.size if t.kind in _SIZED else 0 if t.kind == Kind.ARRAY
                        else new_id(t.type_id))
        out += struct.pack("<III", strings.add(t.name), info, size_or_type)
        if t.kind == Kind.INT:
            out += struct.pack("<I", t.encoding << 24 | t.bit_offset << 16 | t.nr_bits)
        elif t.kind == Kind.ARRAY:
            out += struct.pack("<III", new_id(t.type_id), new_id(t.index_type_id), t.nelems)
        elif t.kind in (Kind.STRUCT, Kind.UNION):
            for m in members:
                off = m.bitfield_size << 24 | m.bit_offset if t.kind_flag else m.bit_offset
                out += struct.pack("<III", strings.add(m.name), new_id(m.type_id), off)
        elif t.kind == Kind.ENUM:
            for m in members:
                out += struct.pack("<II", strings.add(m.name), m.value & 0xFFFFFFFF)
        elif t.kind == Kind.ENUM64:
            for m in members:
                v = m.value & (2 ** 64 - 1)
                out += struct.pack("<III", strings.add(m.name), v & 0xFFFFFFFF, v >> 32)
        elif t.kind == Kind.FUNC_PROTO:
            for m in members:
                out += struct.pack("<II", strings.add(m.name), new_id(m.type_id))
        elif t.kind == Kind.VAR:
            out += struct.pack("<I", t.linkage)
        elif t.kind == Kind.DATASEC:
            for v in members:
                out += struct.pack("<III", new_id(v.type_id), v.offset, v.size)
        elif t.kind == Kind.DECL_TAG:
            out += struct.pack("<i", t.component_idx)
    header = _HEADER.pack(MAGIC, 1, 0, _HEADER.size, 0, len(out), len(out), len(strings.data))
    return header + bytes(out) + bytes(strings.data)


def _references(t: Type) -> list[tuple[int, bool]]:
    """(type id, through a pointer) for each type ``t`` refers to."""
    if t.kind == Kind.PTR:
        return [(t.type_id, True)]
    refs = [] if t.kind in _SIZED else [(t.type_id, False)]
    if t.kind == Kind.ARRAY:
        refs.append((t.index_type_id, False))
    if t.kind in (Kind.STRUCT, Kind.UNION, Kind.FUNC_PROTO):
        refs += [(m.type_id, False) for m in t.members]
    refs += [(v.type_id, False) for v in t.vars]
    return refs


def subset(btf: Btf, roots: list[Type], replaced: dict[int, Type] | None = None) -> bytes:
    """The BTF of ``roots`` and what they reach, as the module doc says; ``replaced``
    gives, by id, types to write (and walk) instead of ``btf``'s (a DATASEC cut down to
    some of its variables)."""
    return subset_ids(btf, roots, replaced)[0]


def subset_ids(btf: Btf, roots: list[Type],
               replaced: dict[int, Type] | None = None) -> tuple[bytes, list[int]]:
    """:func:`subset`'s blob and the ids ``roots`` have in it."""
    replaced = replaced or {}
    full: set[int] = set()
    opaque: set[int] = set()
    todo = [(t.id, False) for t in roots]
    while todo:
        tid, behind_ptr = todo.pop()
        if tid == 0 or tid in full:
            continue
        t = replaced.get(tid) or btf.types[tid]
        if behind_ptr and t.kind in (Kind.STRUCT, Kind.UNION) and t.name:
            opaque.add(tid)
            continue
        full.add(tid)
        # qualifiers and arrays pass "behind a pointer" on to what they name
        keep = behind_ptr and t.kind in _QUALIFIERS + (Kind.ARRAY, Kind.FUNC_PROTO)
        todo += [(r, p or keep) for r, p in _references(t)]
    kept = sorted(full | opaque)
    ids = {0: 0} | {old: new for new, old in enumerate(kept, 1)}
    out = []
    for tid in kept:
        t = replaced.get(tid) or btf.types[tid]
        if tid not in full:
            t = Type(tid, Kind.FWD, t.name, 0, kind_flag=int(t.kind == Kind.UNION))
        out.append(t)
    return encode(out, ids), [ids[t.id] for t in roots]
