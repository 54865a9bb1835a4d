"""The running kernel's BTF ids of kfuncs, as libbpf resolves ``__ksym`` extern
functions (``bpf_object__resolve_ksym_func_btf_id``): by name, among the FUNC types of
``/sys/kernel/btf/vmlinux``.  Kfuncs of kernel modules (their own BTF, ``off`` = the
module BTF's index in ``fd_array``) are not looked up."""
from __future__ import annotations

import functools
import struct
from pathlib import Path

from .. import btf as _btf
from ..errors import LoadError

VMLINUX_BTF = "/sys/kernel/btf/vmlinux"
_KIND_FUNC = 12
# bytes that follow a btf_type record, by kind: fixed, then per vlen entry
_TAIL = {1: (4, 0), 3: (12, 0), 4: (0, 12), 5: (0, 12), 6: (0, 8), 13: (0, 8), 14: (4, 0),
         15: (0, 12), 17: (4, 0), 19: (0, 12)}


_KIND_VAR = 14


@functools.lru_cache(maxsize=1)
def _symbols(path: str) -> dict[int, tuple[int, str]]:
    """type id -> (kind, name) of every FUNC and VAR of the BTF at ``path``."""
    data = Path(path).read_bytes()
    magic, _ver, _flags, hdr_len, type_off, type_len, str_off, _str_len = \
        struct.unpack_from("<HBBIIIII", data)
    if magic != _btf.MAGIC:
        raise LoadError(f"{path}: not BTF (magic {magic:#x})")
    types, strings = hdr_len + type_off, hdr_len + str_off
    pos, end, type_id, symbols = types, types + type_len, 1, {}
    while pos < end:
        name_off, info = struct.unpack_from("<II", data, pos)
        kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
        if kind in (_KIND_FUNC, _KIND_VAR):
            name_end = data.index(b"\0", strings + name_off)
            symbols[type_id] = (kind, data[strings + name_off:name_end].decode())
        fixed, each = _TAIL.get(kind, (0, 0))
        pos += 12 + fixed + each * vlen
        type_id += 1
    return symbols


@functools.lru_cache(maxsize=1)
def _functions(path: str) -> dict[str, int]:
    funcs: dict[str, int] = {}
    for type_id, (kind, name) in _symbols(path).items():
        if kind == _KIND_FUNC:
            funcs.setdefault(name, type_id)
    return funcs


def symbol_name(type_id: int) -> str | None:
    """The name of the running kernel's FUNC or VAR ``type_id`` (None when it is neither,
    or the kernel's BTF cannot be read)."""
    try:
        found = _symbols(VMLINUX_BTF).get(type_id)
    except OSError:
        return None
    return found[1] if found else None


def kfunc_btf_id(name: str, pc: int) -> int:
    """The BTF id of kernel function ``name`` in the running kernel's vmlinux BTF."""
    try:
        funcs = _functions(VMLINUX_BTF)
    except OSError as exc:
        raise LoadError(f"insn {pc}: kfunc {name!r}: cannot read {VMLINUX_BTF}: "
                        f"{exc.strerror}") from None
    if name not in funcs:
        # libbpf: "extern (func ksym) '%s': not found in kernel or module BTFs"
        raise LoadError(f"insn {pc}: extern (func ksym) {name!r}: not found in kernel BTF")
    return funcs[name]
