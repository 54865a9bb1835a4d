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

Typed ``__ksym`` variables (``extern const int bpf_prog_active __ksym;``) reach the
program as the address of their VAR in the target BTF (:func:`variable_address`).
Per-CPU ones (the VARs of the ``.data..percpu`` DATASEC) sit in a modelled per-CPU
section at their DATASEC offsets, from :data:`PERCPU_SECTION_BASE`; each CPU's copy of
them is in its per-CPU area, :data:`PERCPU_UNIT` bytes from :data:`PERCPU_AREA_BASE` on
(:func:`percpu_address`), where ``bpf_per_cpu_ptr`` and ``bpf_this_cpu_ptr`` point, and
where :class:`pyebpf.trace.Machine` puts the values it is given.
"""
from __future__ import annotations

from .btf import Btf, Kind

__all__ = ["modelled", "read_kallsyms", "MODELLED_BASE", "variable_address",
           "percpu_address", "percpu_variables", "PERCPU_SECTION_BASE", "PERCPU_AREA_BASE",
           "PERCPU_UNIT"]

#: The address of the first modelled symbol (x86-64's kernel text starts there).
MODELLED_BASE = 0xFFFFFFFF81000000
#: Where the modelled per-CPU section (the variables' link-time addresses) starts.
PERCPU_SECTION_BASE = 0xFFFFFFFF84000000
#: Where CPU 0's per-CPU area starts (a direct-map address); CPU n's is n units on.
PERCPU_AREA_BASE = 0xFFFF888140000000
#: The bytes of one CPU's area: room for the whole ``.data..percpu`` section.
PERCPU_UNIT = 0x40000


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


def percpu_variables(btf: Btf) -> dict[str, tuple[int, int]]:
    """Name -> (offset in the per-CPU section, size) of each per-CPU variable of ``btf``."""
    out: dict[str, tuple[int, int]] = {}
    for sec in btf.by_name(".data..percpu", Kind.DATASEC):
        for v in sec.vars:
            out.setdefault(btf.types[v.type_id].name, (v.offset, v.size))
    return out


def variable_address(btf: Btf, var_id: int) -> int:
    """The address a typed ksym's lddw loads: a per-CPU variable's in the per-CPU
    section, any other VAR's modelled symbol address (:func:`modelled`)."""
    offset = _percpu_offsets(btf).get(var_id)
    return PERCPU_SECTION_BASE + offset if offset is not None else MODELLED_BASE + 16 * var_id


def percpu_address(btf: Btf, name: str, cpu: int) -> int:
    """Where CPU ``cpu``'s copy of the per-CPU variable ``name`` is (what
    ``bpf_per_cpu_ptr(&name, cpu)`` returns)."""
    found = percpu_variables(btf).get(name)
    if found is None:
        raise KeyError(f"{name!r} is no per-CPU variable of the kernel BTF")
    return PERCPU_AREA_BASE + cpu * PERCPU_UNIT + found[0]


def _percpu_offsets(btf: Btf) -> dict[int, int]:
    return {v.type_id: v.offset for sec in btf.by_name(".data..percpu", Kind.DATASEC)
            for v in sec.vars}
