"""Constant strings as helper arguments (``ARG_PTR_TO_CONST_STR``: ``bpf_strncmp``'s
second string, ``bpf_snprintf``'s format) and the load-time format check of
``bpf_snprintf`` (``check_bpf_snprintf_call``).

A constant string lives in a read-only array map of one element (``.rodata``), at a
constant offset, with a NUL before the value's end (``check_reg_const_str``).  Read-only
is ``bpf_map_is_rdonly``'s: ``BPF_F_RDONLY_PROG`` and frozen (``Map.frozen``: the loader
freezes ``.rodata`` as libbpf does, ``Map.freeze`` any map).
"""
from __future__ import annotations

from .. import isa
from .state import PTR_TO_MAP_VALUE, Reg, type_str

_T = isa.MapType


def map_is_rdonly(m) -> bool:
    """bpf_map_is_rdonly: read-only to the program (``BPF_F_RDONLY_PROG``) and frozen, so
    what it holds now is what every run reads (constant strings, known loads)."""
    return bool(m.flags & isa.BPF_F_RDONLY_PROG) and m.frozen


def direct_value(m) -> bytes:
    """The value of a one-element array at its direct value address
    (array_map_direct_value_addr), zero bytes while it has none."""
    return m.lookup(bytes(4)) or bytes(m.value_size)


def _space(c: int) -> bool:
    # the kernel's ctype is Latin-1: 0xa0 is a space
    return c == 32 or 9 <= c <= 13 or c == 0xA0


def _punct(c: int) -> bool:
    return (33 <= c <= 47 or 58 <= c <= 64 or 91 <= c <= 96 or 123 <= c <= 126
            or 0xA1 <= c <= 0xBF or c in (0xD7, 0xF7))


def _ends_conversion(c: int) -> bool:
    return c == 0 or _space(c) or _punct(c)


def bprintf_format_ok(fmt: bytes, nargs: int) -> bool:
    """bpf_bprintf_prepare without arguments: whether the kernel takes ``fmt`` (up to
    its NUL) with ``nargs`` u64 arguments.  The same rules as the engine's printing
    (skb/helpers_misc.pxi, ``bprintf``)."""
    fmt = fmt.split(b"\0", 1)[0] + b"\0\0\0"
    n, i, nspec = len(fmt) - 3, 0, 0
    while i < n:
        c = fmt[i]
        if not (c >= 0x80 or 32 <= c <= 126 or 9 <= c <= 13):
            return False
        if c != 37:
            i += 1
            continue
        if fmt[i + 1] == 37:
            i += 2
            continue
        if nspec >= nargs:
            return False
        i += 1
        while fmt[i] in b"0+- ":
            i += 1
        if 49 <= fmt[i] <= 57:
            while 48 <= fmt[i] <= 57:
                i += 1
        c = fmt[i]
        if c == ord("p"):
            nxt = fmt[i + 1]
            if nxt in b"ku" and fmt[i + 2] == ord("s"):
                i += 2
                if not _ends_conversion(fmt[i + 1]):
                    return False
            elif _ends_conversion(nxt) or nxt in b"KxsSB":
                i += 1
            elif nxt in b"iI" and fmt[i + 2] in b"46":
                i += 2
            else:
                return False
        elif c == ord("s"):
            if not _ends_conversion(fmt[i + 1]):
                return False
        elif c != ord("c"):
            longs = 0
            while longs < 2 and fmt[i] == ord("l"):
                longs += 1
                i += 1
            if fmt[i] not in b"iduxX":
                return False
        i += 1
        nspec += 1
    return True


class ConstStrings:
    """The constant-string side of :class:`~pyebpf.verifier.interp.Interpreter`
    (mixed in)."""

    def const_str(self, pc: int, regno: int, reg: Reg) -> bytes:
        """check_reg_const_str: the string ``reg`` points at, NUL included."""
        if reg.type != PTR_TO_MAP_VALUE:
            self.refuse(pc, f"R{regno} type={type_str(reg.type)} expected=map_value")
        m = reg.map
        if not map_is_rdonly(m):
            self.refuse(pc, f"R{regno} does not point to a readonly map'")
        if not reg.is_const:
            self.refuse(pc, f"R{regno} is not a constant address'")
        if m.type != _T.BPF_MAP_TYPE_ARRAY:
            self.refuse(pc, "no direct value access support for this map type")
        self.region_access(pc, regno, reg, reg.off, m.value_size - reg.off, m.value_size)
        if m.max_entries != 1:
            # array_map_direct_value_addr: only an array of one element has the address
            self.refuse(pc, "direct value access on string failed")
        value = direct_value(m)
        start = reg.off + reg.value
        end = value.find(b"\0", start)
        if end < 0:
            self.refuse(pc, "string is not zero-terminated")
        return value[start:end + 1]

    def snprintf_format(self, pc: int, fmt: bytes, data_len: Reg) -> None:
        """check_bpf_snprintf_call: the format with data_len / 8 arguments (the
        smallest length the register may hold, as the kernel reads var_off.value)."""
        least = data_len.var[0]
        if least % 8 or not bprintf_format_ok(fmt, least // 8):
            self.refuse(pc, "Invalid format string")
