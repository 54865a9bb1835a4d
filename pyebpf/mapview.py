"""Typed views of maps: keys and values as Python ints, tuples or named tuples, by
struct formats or by the BTF types of an object's maps (``Map.typed()``).

``Map.typed(key="I", value="QQ", value_names=("packets", "bytes"))`` gives a mutable
mapping over the same map in which keys and values are encoded with :mod:`struct`
format strings (little-endian standard sizes unless the format says otherwise, like
the kernel's layout on x86-64 and arm64).  A one-field format gives plain values; more
fields give tuples, or named tuples when names are given.  Per-CPU maps give and take a
list with one value per CPU.
"""
from __future__ import annotations

import collections
import struct
from collections.abc import MutableMapping


def _codec(fmt: str, size: int, names, what: str):
    if fmt[:1] not in "@=<>!":
        fmt = "<" + fmt
    st = struct.Struct(fmt)
    if st.size != size:
        raise ValueError(f"{what} format {fmt!r} packs {st.size} bytes; the map's "
                         f"{what}_size is {size}")
    fields = len(st.unpack(bytes(size)))
    if names is not None and len(names) != fields:
        raise ValueError(f"{what} format {fmt!r} has {fields} fields, {len(names)} names given")
    tuple_type = collections.namedtuple(f"{what.capitalize()}", names) if names else None

    def pack(value) -> bytes:
        return st.pack(*value) if fields > 1 else st.pack(value)

    def unpack(raw: bytes):
        out = st.unpack(raw)
        if tuple_type is not None:
            return tuple_type(*out)
        return out if fields > 1 else out[0]
    return pack, unpack


class TypedMap(MutableMapping):
    """A view of a :class:`pyebpf.Map` with encoded keys and values (see the module)."""

    def __init__(self, map_, key: str, value: str, key_names=None, value_names=None):
        self.map = map_
        self._pack_key, self._unpack_key = _codec(key, map_.key_size, key_names, "key")
        self._pack_value, self._unpack_value = _codec(value, map_.value_size, value_names,
                                                      "value")
        self._per_cpu = map_.ncpu > 1

    def _decode(self, raw):
        if self._per_cpu:
            return [self._unpack_value(v) for v in raw]
        return self._unpack_value(raw)

    def _encode(self, value):
        if self._per_cpu and isinstance(value, list):
            return [self._pack_value(v) for v in value]
        return self._pack_value(value)

    def __getitem__(self, key):
        raw = self.map.lookup(self._pack_key(key))
        if raw is None:
            raise KeyError(key)
        return self._decode(raw)

    def __setitem__(self, key, value):
        self.map.update(self._pack_key(key), self._encode(value))

    def update_elem(self, key, value, flags):
        """``Map.update`` with its flags (BPF_ANY, BPF_NOEXIST, BPF_EXIST)."""
        self.map.update(self._pack_key(key), self._encode(value), flags)

    def __delitem__(self, key):
        del self.map[self._pack_key(key)]

    def __iter__(self):
        return (self._unpack_key(k) for k in self.map.keys())

    def __len__(self):
        return len(self.map)

    def __repr__(self):
        return f"<TypedMap of {self.map!r}>"


# --- views typed by BTF -------------------------------------------------------------

def _record_class(name: str, members: list[str]):
    """A namedtuple of a struct's members.  A C member name Python cannot take as an
    attribute (a keyword such as ``from``, or a leading underscore: uapi's
    ``struct bpf_timer { __u64 __opaque[2]; }``) is reached by position, its attribute
    being ``_N``; ``_asdict()`` (and so every JSON form) keeps the C names."""
    base = collections.namedtuple(name, members, rename=True)
    c_names = tuple(members)

    def _asdict(self) -> dict:
        return dict(zip(c_names, self))
    return type(name, (base,), {"__slots__": (), "_c_names": c_names, "_asdict": _asdict})


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_") if part) or "Anon"


class BtfCodec:
    """Encode and decode values of one BTF type: structs and unions as named tuples
    (the class named after the C type in CamelCase, ``struct flow_key`` -> ``FlowKey``),
    arrays as lists (``char`` arrays as bytes), integers and enums as ints."""

    def __init__(self, btf_type, what: str):
        from .btf import Kind
        self.type, self.what, self._Kind = btf_type, what, Kind
        self._classes = {}
        self.size = btf_type.byte_size
        resolved = btf_type.resolve()
        self.tuple = (self._class(resolved)
                      if resolved.kind in (Kind.STRUCT, Kind.UNION) else None)

    def _class(self, t):
        if t.id not in self._classes:
            names = list(self._member_names(t))
            self._classes[t.id] = _record_class(_camel(t.name or self.what), names)
        return self._classes[t.id]

    def _member_names(self, t):
        for m in t.members:
            if m.name:
                yield m.name
            else:          # an anonymous struct or union: its members are the parent's
                yield from self._member_names(t.btf.type(m.type_id, t).resolve())

    def decode(self, raw: bytes):
        return self._wrap(self.type, self.type.decode(bytes(raw)))

    def _wrap(self, t, value):
        t = t.resolve()
        K = self._Kind
        if t.kind in (K.STRUCT, K.UNION) and isinstance(value, dict):
            cls = self._class(t)
            types = dict(self._member_types(t))
            return cls(*[self._wrap(types[name], value.get(name)) for name in cls._c_names])
        if t.kind == K.ARRAY and isinstance(value, list):
            return [self._wrap(t.target, v) for v in value]
        return value

    def _member_types(self, t):
        for m in t.members:
            mt = t.btf.type(m.type_id, t)
            if m.name:
                yield m.name, mt
            else:
                yield from self._member_types(mt.resolve())

    def encode(self, value) -> bytes:
        out = bytearray(self.size)
        try:
            self._put(self.type, value, out, 0)
        except (TypeError, ValueError, OverflowError) as exc:
            raise ValueError(f"{self.what} {value!r} does not fit {self.type.describe()}: "
                             f"{exc}") from None
        return bytes(out)

    def _put(self, t, value, out: bytearray, offset: int) -> None:
        import struct as _struct
        K = self._Kind
        t = t.resolve()
        size = t.byte_size
        if t.kind in (K.INT, K.ENUM, K.ENUM64, K.PTR):
            signed = (t.kind == K.INT and bool(t.encoding & 1)) or \
                (t.kind in (K.ENUM, K.ENUM64) and t.signed)
            out[offset:offset + size] = int(value).to_bytes(size, "little", signed=signed)
        elif t.kind == K.FLOAT:
            out[offset:offset + size] = _struct.pack("<f" if size == 4 else "<d", value)
        elif t.kind == K.ARRAY:
            if isinstance(value, (bytes, bytearray)):
                if len(value) > size:
                    raise ValueError(f"{len(value)} bytes for {size}")
                out[offset:offset + len(value)] = value
                return
            step = t.target.byte_size
            values = list(value)
            if len(values) > t.nelems:
                raise ValueError(f"{len(values)} elements for {t.nelems}")
            for k, v in enumerate(values):
                self._put(t.target, v, out, offset + k * step)
        elif t.kind in (K.STRUCT, K.UNION):
            fields = self._fields_of(t, value)
            self._put_members(t, fields, out, offset)
        else:
            raise ValueError(f"cannot encode {t.describe()}")

    def _fields_of(self, t, value) -> dict:
        if isinstance(value, dict):
            return value
        if hasattr(value, "_asdict"):
            return value._asdict()
        names = list(self._member_names(t))
        values = list(value)
        if len(values) > len(names):
            raise ValueError(f"{len(values)} values for {len(names)} fields")
        return dict(zip(names, values))

    def _put_members(self, t, fields: dict, out: bytearray, offset: int) -> None:
        for m in t.members:
            mt = t.btf.type(m.type_id, t)
            if not m.name:
                self._put_members(mt.resolve(), fields, out, offset + m.bit_offset // 8)
                continue
            if m.name not in fields or fields[m.name] is None:
                continue
            if m.bitfield_size:
                self._put_bits(out, offset * 8 + m.bit_offset, m.bitfield_size,
                               int(fields[m.name]))
            else:
                self._put(mt, fields[m.name], out, offset + m.bit_offset // 8)
        unknown = set(fields) - set(self._member_names(t))
        if unknown:
            raise ValueError(f"no field {', '.join(sorted(unknown))} in {t.describe()}")

    @staticmethod
    def _put_bits(out: bytearray, bit: int, nbits: int, value: int) -> None:
        value &= (1 << nbits) - 1
        first, last = bit // 8, (bit + nbits + 7) // 8
        word = int.from_bytes(out[first:last], "little")
        shift = bit - first * 8
        word = (word & ~(((1 << nbits) - 1) << shift)) | (value << shift)
        out[first:last] = word.to_bytes(last - first, "little")


class BtfMap(MutableMapping):
    """A view of a map of an ELF object with keys and values as its BTF types say
    (see :class:`BtfCodec`): ``Key`` and ``Value`` are the named tuple classes of struct
    keys and values (None for other types).  Per-CPU maps give and take a list with one
    value per CPU."""

    def __init__(self, map_):
        label = map_.name or str(map_.fd)
        if map_.key_type is None or map_.value_type is None:
            raise ValueError(f"map {label} has no BTF key and value types (only maps "
                             "declared with BTF in an object compiled with -g have them): "
                             "use typed(key_format, value_format)")
        self.map = map_
        self._key = BtfCodec(map_.key_type, "key")
        self._value = BtfCodec(map_.value_type, "value")
        self.Key, self.Value = self._key.tuple, self._value.tuple
        self._per_cpu = map_.ncpu > 1

    def __getitem__(self, key):
        raw = self.map.lookup(self._key.encode(key))
        if raw is None:
            raise KeyError(key)
        if self._per_cpu:
            return [self._value.decode(v) for v in raw]
        return self._value.decode(raw)

    def __setitem__(self, key, value):
        self.update_elem(key, value, 0)

    def update_elem(self, key, value, flags):
        """``Map.update`` with its flags (BPF_ANY, BPF_NOEXIST, BPF_EXIST)."""
        if self._per_cpu and isinstance(value, list):
            raw = [self._value.encode(v) for v in value]
        else:
            raw = self._value.encode(value)
        self.map.update(self._key.encode(key), raw, flags)

    def __delitem__(self, key):
        del self.map[self._key.encode(key)]

    def __iter__(self):
        return (self._key.decode(k) for k in self.map.keys())

    def __len__(self):
        return len(self.map)

    def __repr__(self):
        return f"<BtfMap of {self.map!r}>"
