"""BTF (the ``.BTF`` section of a clang-compiled BPF object) as small typed objects.

``Btf.parse(data)`` reads the header, the type section and the string section
(``include/uapi/linux/btf.h``: kinds INT through ENUM64) into :class:`Type` objects,
indexed by type id (0 is ``void``).  Each type can say its size, skip typedefs and
qualifiers (:meth:`Type.resolve`), list its fields (names, offsets, sizes) and decode
bytes into Python values: ints, floats, lists for arrays, dicts for structs, unions and
data sections.  This is what the ELF loader needs to read BTF-defined maps and what a
loaded map uses to decode its keys and values.

Corrupt BTF raises :class:`~pyebpf.errors.ElfError` naming the byte offset in the
section.  Not read: ``.BTF.ext`` (line and func info, CO-RE relocations).
"""
from __future__ import annotations

import dataclasses
import enum
import struct
from dataclasses import dataclass, field

from ..errors import BtfError, ElfError

MAGIC = 0xEB9F
MAX_RESOLVE_DEPTH = 32          # libbpf's limit on typedef/qualifier chains

_HEADER = struct.Struct("<HBBIIIII")


class Kind(enum.IntEnum):
    """``BTF_KIND_*``."""
    UNKN = 0
    INT = 1
    PTR = 2
    ARRAY = 3
    STRUCT = 4
    UNION = 5
    ENUM = 6
    FWD = 7
    TYPEDEF = 8
    VOLATILE = 9
    CONST = 10
    RESTRICT = 11
    FUNC = 12
    FUNC_PROTO = 13
    VAR = 14
    DATASEC = 15
    FLOAT = 16
    DECL_TAG = 17
    TYPE_TAG = 18
    ENUM64 = 19


_MODIFIERS = frozenset({Kind.TYPEDEF, Kind.VOLATILE, Kind.CONST, Kind.RESTRICT,
                        Kind.TYPE_TAG})
INT_SIGNED, INT_CHAR, INT_BOOL = 1, 2, 4
# a VAR's linkage (include/uapi/linux/btf.h)
BTF_VAR_STATIC, BTF_VAR_GLOBAL_ALLOCATED, BTF_VAR_GLOBAL_EXTERN = 0, 1, 2


@dataclass(frozen=True)
class Member:
    """A struct/union member, a function parameter or an enum value."""
    name: str
    type_id: int = 0
    bit_offset: int = 0
    bitfield_size: int = 0
    value: int = 0


@dataclass(frozen=True)
class VarSecinfo:
    """One variable of a DATASEC: its VAR type id, byte offset and size."""
    type_id: int
    offset: int
    size: int


@dataclass(frozen=True, eq=False, repr=False)
class Type:
    """One BTF type.  Which fields mean something depends on ``kind``:

    INT: ``size``, ``encoding`` (INT_SIGNED/CHAR/BOOL), ``bit_offset``, ``nr_bits``;
    PTR, TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG, FUNC, VAR: ``type_id``;
    ARRAY: ``type_id`` (element), ``index_type_id``, ``nelems``;
    STRUCT, UNION: ``size``, ``members``; ENUM, ENUM64: ``size``, ``members`` (their
    ``value``), ``signed``; FUNC_PROTO: ``type_id`` (return), ``members`` (parameters);
    FUNC, VAR: ``linkage``; DATASEC: ``size``, ``vars``; FLOAT: ``size``;
    FWD: ``kind_flag`` (1: union); DECL_TAG: ``type_id``, ``component_idx``.
    """
    id: int
    kind: Kind
    name: str
    offset: int                         # of its btf_type record in the .BTF section
    size: int = 0
    type_id: int = 0
    kind_flag: int = 0
    encoding: int = 0
    bit_offset: int = 0
    nr_bits: int = 0
    index_type_id: int = 0
    nelems: int = 0
    linkage: int = 0
    component_idx: int = 0
    signed: bool = False
    members: tuple[Member, ...] = ()
    vars: tuple[VarSecinfo, ...] = ()
    btf: "Btf" = field(default=None, repr=False, compare=False)

    @property
    def target(self) -> "Type":
        """The type ``type_id`` names."""
        return self.btf.type(self.type_id, self)

    def resolve(self) -> "Type":
        """This type with typedefs and qualifiers (const, volatile...) skipped."""
        t = self
        for _ in range(MAX_RESOLVE_DEPTH):
            if t.kind not in _MODIFIERS:
                return t
            t = t.target
        raise self.btf.error(f"type #{self.id} is a chain of more than {MAX_RESOLVE_DEPTH} "
                             f"typedefs or qualifiers", self)

    @property
    def byte_size(self) -> int:
        """sizeof(), as the kernel's btf_resolve_size computes it."""
        return self._size(0)

    def _size(self, depth: int) -> int:
        if depth > MAX_RESOLVE_DEPTH:
            raise self.btf.error(f"type #{self.id} nests more than {MAX_RESOLVE_DEPTH} deep",
                                 self)
        t = self.resolve()
        if t.kind == Kind.PTR:
            return 8
        if t.kind == Kind.ARRAY:
            return t.nelems * t.target._size(depth + 1)
        if t.kind == Kind.VAR:
            return t.target._size(depth + 1)
        if t.kind in (Kind.INT, Kind.ENUM, Kind.ENUM64, Kind.STRUCT, Kind.UNION, Kind.FLOAT,
                      Kind.DATASEC):
            return t.size
        raise self.btf.error(f"type #{self.id} ({t.kind.name} {t.name or '(anon)'}) has no size",
                             self)

    def fields(self, prefix: str = "", base: int = 0, _depth: int = 0) -> list["Field"]:
        """The leaf fields of this type, flattened: struct members by dotted name
        (anonymous members merged into their parent), array elements as ``name[i]``."""
        t = self._nested(_depth)
        out = []
        if t.kind in (Kind.STRUCT, Kind.UNION):
            for m in t.members:
                mt = t.btf.type(m.type_id, t)
                name = f"{prefix}.{m.name}" if prefix and m.name else (m.name or prefix)
                if m.bitfield_size:
                    out.append(Field(name, base + m.bit_offset // 8, mt.byte_size, mt,
                                     m.bit_offset, m.bitfield_size))
                else:
                    out += mt.fields(name, base + m.bit_offset // 8, _depth + 1)
        elif t.kind == Kind.DATASEC:
            for v in t.vars:
                var = t.btf.type(v.type_id, t)
                out += var.target.fields(f"{prefix}.{var.name}" if prefix else var.name,
                                         base + v.offset, _depth + 1)
        elif t.kind == Kind.ARRAY and not _is_chars(t):
            elem = t.target
            step = elem.byte_size
            for i in range(t.nelems):
                out += elem.fields(f"{prefix}[{i}]", base + i * step, _depth + 1)
        else:
            out.append(Field(prefix, base, t.byte_size, t))
        return out

    def _nested(self, depth: int) -> "Type":
        if depth > MAX_RESOLVE_DEPTH:
            raise self.btf.error(f"type #{self.id} nests more than {MAX_RESOLVE_DEPTH} deep",
                                 self)
        return self.resolve()

    def decode(self, data: bytes, offset: int = 0, _depth: int = 0):
        """The value at ``data[offset:]``: int (INT, ENUM, PTR), bool, float, bytes
        (char arrays), list (arrays), dict (struct, union, datasec: by member name;
        anonymous members merged in)."""
        t = self._nested(_depth)
        size = t.byte_size
        if offset + size > len(data):
            raise BtfError(f"{size} bytes of {t.describe()} at offset {offset} do not fit "
                             f"in {len(data)} bytes")
        k = t.kind
        if k == Kind.INT:
            if t.nr_bits < size * 8 or t.bit_offset:
                return _bits(data, offset * 8 + t.bit_offset, t.nr_bits,
                             bool(t.encoding & INT_SIGNED))
            v = int.from_bytes(data[offset:offset + size], "little",
                               signed=bool(t.encoding & INT_SIGNED))
            return bool(v) if t.encoding & INT_BOOL else v
        if k in (Kind.ENUM, Kind.ENUM64):
            return int.from_bytes(data[offset:offset + size], "little", signed=t.signed)
        if k == Kind.PTR:
            return int.from_bytes(data[offset:offset + 8], "little")
        if k == Kind.FLOAT:
            if size not in (4, 8):
                return data[offset:offset + size]
            return struct.unpack_from("<f" if size == 4 else "<d", data, offset)[0]
        if k == Kind.ARRAY:
            if _is_chars(t):
                return data[offset:offset + size]
            step = t.target.byte_size
            return [t.target.decode(data, offset + i * step, _depth + 1)
                    for i in range(t.nelems)]
        if k in (Kind.STRUCT, Kind.UNION):
            out = {}
            for m in t.members:
                mt = t.btf.type(m.type_id, t)
                if m.bitfield_size:
                    v = _bits(data, offset * 8 + m.bit_offset, m.bitfield_size,
                              bool(mt.resolve().encoding & INT_SIGNED)
                              if mt.resolve().kind == Kind.INT else mt.resolve().signed)
                else:
                    v = mt.decode(data, offset + m.bit_offset // 8, _depth + 1)
                if m.name:
                    out[m.name] = v
                elif isinstance(v, dict):
                    out.update(v)
            return out
        if k == Kind.DATASEC:
            return {t.btf.type(v.type_id, t).name:
                    t.btf.type(v.type_id, t).target.decode(data, offset + v.offset, _depth + 1)
                    for v in t.vars if offset + v.offset + v.size <= len(data)}
        if k == Kind.VAR:
            return t.target.decode(data, offset, _depth + 1)
        raise BtfError(f"cannot decode {t.describe()}")

    def __repr__(self) -> str:
        return f"<btf.Type #{self.id} {self.kind.name} {self.describe()!r}>"

    def describe(self) -> str:
        """C-like name: ``struct val``, ``__u32``, ``int[4]``, ``void *``."""
        t = self
        if t.kind == Kind.PTR:
            return ("void" if t.type_id == 0 else t.target.describe()) + " *"
        if t.kind == Kind.ARRAY:
            return f"{t.target.describe()}[{t.nelems}]"
        if t.kind in (Kind.STRUCT, Kind.UNION, Kind.ENUM, Kind.ENUM64):
            word = {Kind.STRUCT: "struct", Kind.UNION: "union"}.get(t.kind, "enum")
            return f"{word} {t.name}" if t.name else f"{word} (anon)"
        if t.kind in (Kind.CONST, Kind.VOLATILE, Kind.RESTRICT):
            inner = t.target.describe()
            # a qualified pointer reads "char *restrict"; a qualified value "const int"
            return (f"{inner}{t.kind.name.lower()}" if inner.endswith("*") else
                    f"{t.kind.name.lower()} {inner}")
        if t.kind == Kind.TYPE_TAG:
            return f"{t.target.describe()} __tag({t.name})"
        if t.kind == Kind.FWD:
            return f"{'union' if t.kind_flag else 'struct'} {t.name}"
        return t.name or t.kind.name.lower()


@dataclass(frozen=True)
class Field:
    """One leaf field of a layout: dotted name, byte offset, size and type
    (``bit_offset``/``bits`` for bitfields, relative to the enclosing struct)."""
    name: str
    offset: int
    size: int
    type: Type = field(repr=False)
    bit_offset: int = 0
    bits: int = 0


def _is_chars(t: Type) -> bool:
    e = t.target.resolve()
    return e.kind == Kind.INT and e.size == 1 and bool(e.encoding & INT_CHAR or
                                                       e.name in ("char", "unsigned char"))


def _bits(data: bytes, bit_off: int, nbits: int, signed: bool) -> int:
    start, end = bit_off // 8, (bit_off + nbits + 7) // 8
    v = (int.from_bytes(data[start:end], "little") >> (bit_off % 8)) & ((1 << nbits) - 1)
    return v - (1 << nbits) if signed and nbits and v >> (nbits - 1) else v


class Btf:
    """The types and strings of one ``.BTF`` section; ``types[id]`` is a :class:`Type`."""

    def __init__(self, types: list[Type], strings: bytes, where: str = ""):
        self.types, self.strings, self.where = types, strings, where
        self.raw: bytes | None = None     # the section parsed, when parsed from one
        self._by_name: dict[str, list[Type]] | None = None

    def error(self, message: str, t: Type | None = None) -> ElfError:
        at = f" (type record at offset {t.offset:#x})" if t is not None and t.id else ""
        return ElfError(f"BTF: {message}{at}", file=self.where or None, section=".BTF")

    def type(self, type_id: int, user: Type | None = None) -> Type:
        if not 0 <= type_id < len(self.types):
            who = f"type #{user.id} refers to " if user is not None else ""
            raise self.error(f"{who}type id {type_id}, beyond the last ({len(self.types) - 1})",
                             user)
        return self.types[type_id]

    def by_name(self, name: str, kind: Kind | None = None) -> list[Type]:
        """Every type called ``name`` (of ``kind``, if given)."""
        if self._by_name is None:
            self._by_name = {}
            for t in self.types:
                if t.name:
                    self._by_name.setdefault(t.name, []).append(t)
        return [t for t in self._by_name.get(name, ()) if kind is None or t.kind == kind]

    def datasec(self, name: str, size: int, offsets: dict[str, int]) -> Type | None:
        """The DATASEC of section ``name`` with its size and variable offsets filled in:
        clang leaves them 0 in object files, and libbpf fixes them up from the ELF
        section and symbols (``offsets``: variable name -> symbol value) as done here.
        A variable without a symbol keeps its offset."""
        found = self.by_name(name, Kind.DATASEC)
        if not found:
            return None
        t = found[0]
        fixed = []
        for v in t.vars:
            var = self.types[v.type_id]
            off = offsets.get(var.name, v.offset)
            if off + v.size > size:
                raise self.error(f"DATASEC {name!r}: variable {var.name!r} at [{off:#x}, "
                                 f"{off + v.size:#x}) is outside the section's {size} bytes", t)
            fixed.append(VarSecinfo(v.type_id, off, v.size))
        return dataclasses.replace(t, size=size, vars=tuple(fixed))

    def __len__(self) -> int:
        return len(self.types)

    def __repr__(self) -> str:
        return f"<pyebpf.btf.Btf {len(self.types) - 1} types>"

    @classmethod
    def parse(cls, data: bytes, where: str = "") -> "Btf":
        """Parse a whole ``.BTF`` section (little-endian, as BPF objects for bpfel)."""
        data = bytes(data)
        err = lambda msg: ElfError(f"BTF: {msg}", file=where or None, section=".BTF")  # noqa: E731
        if len(data) < _HEADER.size:
            raise err(f"{len(data)} bytes is shorter than the {_HEADER.size}-byte header")
        magic, version, _flags, hdr_len, type_off, type_len, str_off, str_len = \
            _HEADER.unpack_from(data)
        if magic != MAGIC:
            raise err(f"bad magic {magic:#06x} at offset 0 (expected {MAGIC:#06x}; "
                      f"big-endian objects are not supported)")
        if version != 1:
            raise err(f"version {version} at offset 2 is not 1")
        if hdr_len < _HEADER.size or hdr_len > len(data):
            raise err(f"header length {hdr_len} at offset 4 is outside "
                      f"{_HEADER.size}..{len(data)}")
        for name, off, ln in (("type", type_off, type_len), ("string", str_off, str_len)):
            if hdr_len + off + ln > len(data):
                raise err(f"{name} section [{hdr_len + off:#x}, {hdr_len + off + ln:#x}) runs "
                          f"past the end of the {len(data)}-byte section")
        if type_off % 4:
            raise err(f"type section offset {type_off:#x} is not 4-byte aligned")
        strings = data[hdr_len + str_off:hdr_len + str_off + str_len]
        if str_len and strings[-1] != 0:
            raise err(f"string section at {hdr_len + str_off:#x} does not end with NUL")
        btf = cls([], strings, where)
        btf.raw = data

        def name_at(off: int, rec: int) -> str:
            if off >= max(str_len, 1):
                raise err(f"name offset {off:#x} of the record at offset {rec:#x} is beyond "
                          f"the {str_len}-byte string section")
            end = strings.find(b"\0", off)
            try:
                return strings[off:end].decode()
            except UnicodeDecodeError:
                raise err(f"name at string offset {off:#x} (record at offset {rec:#x}) is "
                          f"not UTF-8") from None

        btf.types.append(Type(0, Kind.UNKN, "void", 0, btf=btf))
        pos, end = hdr_len + type_off, hdr_len + type_off + type_len

        def take(fmt: str, n: int = 1):
            nonlocal pos
            size = struct.calcsize(fmt) * n
            if pos + size > end:
                raise err(f"type #{len(btf.types)}: record at offset {pos:#x} runs past the "
                          f"end of the type section ({end:#x})")
            out = [struct.unpack_from(fmt, data, pos + i * struct.calcsize(fmt))
                   for i in range(n)]
            pos += size
            return out

        while pos < end:
            rec = pos
            name_off, info, size_or_type = take("<III")[0]
            vlen, kind_no, kflag = info & 0xFFFF, (info >> 24) & 0x1F, info >> 31
            try:
                kind = Kind(kind_no)
            except ValueError:
                raise err(f"type #{len(btf.types)} at offset {rec:#x} has unknown kind "
                          f"{kind_no}") from None
            if kind == Kind.UNKN:
                raise err(f"type #{len(btf.types)} at offset {rec:#x} has kind 0 (UNKN)")
            t = dict(id=len(btf.types), kind=kind, name=name_at(name_off, rec), offset=rec,
                     kind_flag=kflag, btf=btf)
            if kind in (Kind.INT, Kind.STRUCT, Kind.UNION, Kind.ENUM, Kind.ENUM64, Kind.FLOAT,
                        Kind.DATASEC):
                t["size"] = size_or_type
            else:
                t["type_id"] = size_or_type
            if kind == Kind.INT:
                (word,), = take("<I")
                t.update(encoding=(word >> 24) & 0xF, bit_offset=(word >> 16) & 0xFF,
                         nr_bits=word & 0xFF)
                if t["nr_bits"] + t["bit_offset"] > 128 or size_or_type not in (1, 2, 4, 8, 16):
                    raise err(f"INT type #{t['id']} at offset {rec:#x}: {t['nr_bits']} bits "
                              f"at bit {t['bit_offset']} in {size_or_type} bytes")
            elif kind == Kind.ARRAY:
                elem, index, nelems = take("<III")[0]
                t.update(type_id=elem, index_type_id=index, nelems=nelems)
            elif kind in (Kind.STRUCT, Kind.UNION):
                t["members"] = tuple(
                    Member(name_at(n, rec), ty, off & 0xFFFFFF if kflag else off,
                           off >> 24 if kflag else 0)
                    for n, ty, off in take("<III", vlen))
            elif kind == Kind.ENUM:
                t["signed"] = bool(kflag)
                t["members"] = tuple(Member(name_at(n, rec), value=v)
                                     for n, v in take("<Ii" if kflag else "<II", vlen))
            elif kind == Kind.ENUM64:
                t["signed"] = bool(kflag)
                t["members"] = tuple(
                    Member(name_at(n, rec), value=_s64(lo | hi << 32) if kflag else lo | hi << 32)
                    for n, lo, hi in take("<III", vlen))
            elif kind == Kind.FUNC_PROTO:
                t["members"] = tuple(Member(name_at(n, rec), ty) for n, ty in take("<II", vlen))
            elif kind == Kind.FUNC:
                t["linkage"] = vlen
            elif kind == Kind.VAR:
                (t["linkage"],), = take("<I")
            elif kind == Kind.DATASEC:
                t["vars"] = tuple(VarSecinfo(*v) for v in take("<III", vlen))
            elif kind == Kind.DECL_TAG:
                (t["component_idx"],), = take("<i")
            btf.types.append(Type(**t))
        btf._check_references()
        return btf

    def _check_references(self) -> None:
        n = len(self.types)
        for t in self.types:
            refs = [t.type_id] if t.kind not in (Kind.INT, Kind.STRUCT, Kind.UNION, Kind.ENUM,
                                                 Kind.ENUM64, Kind.FLOAT, Kind.DATASEC) else []
            refs += [t.index_type_id] + [m.type_id for m in t.members]
            refs += [v.type_id for v in t.vars]
            for r in refs:
                if not 0 <= r < n:
                    raise self.error(f"type #{t.id} ({t.kind.name}) refers to type id {r}, "
                                     f"beyond the last ({n - 1})", t)
            for v in t.vars:
                # .ksyms lists the extern functions (kfuncs) among its variables
                if self.types[v.type_id].kind not in (Kind.VAR, Kind.FUNC):
                    raise self.error(f"DATASEC {t.name!r} lists type #{v.type_id}, which is "
                                     f"a {self.types[v.type_id].kind.name}, not a VAR or FUNC", t)


def _s64(v: int) -> int:
    return v - (1 << 64) if v >> 63 else v


def decode(t: Type | None, data, what: str):
    """``t.decode(data)`` for a map's key or value; a clear error without BTF."""
    if t is None:
        raise BtfError(f"{what} has no BTF type (only maps from an ELF object with BTF "
                         f"can decode their {what.rsplit(' ', 1)[-1]}s)")
    data = bytes(data)
    if len(data) != t.byte_size:
        raise BtfError(f"{what} is {len(data)} bytes, its type {t.describe()} is "
                         f"{t.byte_size}")
    return t.decode(data)
