"""The special fields of a map value: the ``struct bpf_spin_lock`` and ``struct bpf_timer``
its BTF type holds, found as the kernel's ``btf_parse_fields`` finds them
(``kernel/bpf/btf.c``): by struct name, in the value's members and the members of the
structs and unions nested in it, at most one of each."""
from __future__ import annotations

import errno

from .. import isa
from ..errors import MapError
from .types import Kind, Type

SPIN_LOCK, TIMER = "bpf_spin_lock", "bpf_timer"
# size and alignment of each (btf_get_field_type)
_SHAPES = {SPIN_LOCK: (isa.SIZEOF_BPF_SPIN_LOCK, 4), TIMER: (isa.SIZEOF_BPF_TIMER, 8)}
_MAX_NESTING = 32


def special_fields(value_type: Type | None) -> dict[str, int]:
    """{field name: byte offset} of the special fields in ``value_type``; MapError
    E2BIG for a second one of a kind, EINVAL for one in an array (the kernel's
    refusals at BPF_MAP_CREATE)."""
    found: dict[str, int] = {}
    if value_type is not None:
        _walk(value_type.resolve(), 0, found, 0)
    return found


def _walk(t: Type, base: int, found: dict, depth: int) -> None:
    if t.kind not in (Kind.STRUCT, Kind.UNION) or depth > _MAX_NESTING:
        return
    for m in t.members:
        mt = t.btf.type(m.type_id, t).resolve()
        off = base + m.bit_offset // 8
        nelems = 1
        while mt.kind == Kind.ARRAY:
            nelems *= mt.nelems
            mt = mt.target.resolve()
        if mt.kind == Kind.STRUCT and mt.name in _SHAPES:
            size, align = _SHAPES[mt.name]
            if mt.size != size or off % align:
                continue        # btf_find_field_one ignores a misplaced or resized one
            if mt.name in found:
                raise MapError(errno.E2BIG, f"the map value holds more than one struct "
                                            f"{mt.name}")
            if nelems != 1:
                raise MapError(errno.EINVAL, f"the map value holds an array of struct "
                                             f"{mt.name}")
            found[mt.name] = off
        elif mt.kind in (Kind.STRUCT, Kind.UNION):
            step = mt.size
            for i in range(nelems):
                _walk(mt, off + i * step, found, depth + 1)
