"""Typeless ``__ksym`` externs (``extern const void name __ksym;``): the kernel address
libbpf writes into the ``lddw`` that takes the symbol's address
(``bpf_object__resolve_externs``, ``bpf_object__relocate_data``: both halves of the
immediate, source register 0, so the program sees a plain constant).

libbpf finds the address in ``/proc/kallsyms`` (:func:`read_kallsyms`; the kernel oracle
does the same).  pyebpf models the kernel's symbols as the functions and variables of
the target BTF (:func:`modelled`): each gets a fixed, nonzero address of its own, so a
program may test whether a symbol exists (``bpf_ksym_exists``, ``&sym != 0``) and
get the kernel's answer, but the address itself is not the running kernel's.  A
``__weak`` extern with no symbol is 0; a strong one is an error naming it.
"""
from __future__ import annotations

from .btf import Btf, Kind

__all__ = ["modelled", "read_kallsyms", "MODELLED_BASE"]

#: The address of the first modelled symbol (x86-64's kernel text starts there).
MODELLED_BASE = 0xFFFFFFFF81000000


def modelled(btf: Btf) -> dict[str, int]:
    """Name -> address of each FUNC and VAR of ``btf``, 16 bytes apart in type-id order."""
    out: dict[str, int] = {}
    for t in btf.types:
        if t.kind in (Kind.FUNC, Kind.VAR) and t.name:
            out.setdefault(t.name, MODELLED_BASE + 16 * t.id)
    return out


def read_kallsyms(path: str = "/proc/kallsyms") -> dict[str, int]:
    """Name -> address of each symbol in ``path`` (modules' included, as libbpf reads
    them); the first address of a name seen twice."""
    out: dict[str, int] = {}
    with open(path) as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 3:
                out.setdefault(fields[2], int(fields[0], 16))
    return out
