"""Typed views of maps: keys and values as Python ints, tuples or named tuples.

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
