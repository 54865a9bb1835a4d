"""Read a clang-compiled BPF object (``clang -O2 -g -target bpf -c prog.c``) into plain specs.

:func:`parse` runs a pipeline of small phases over the ELF file, the first error stopping
it; each error is an :class:`~pyebpf.errors.ElfError` naming the file, section, symbol,
relocation number and instruction where they are known.  The result, an
:class:`ObjectSpec`, is plain data — :class:`ProgramSpec` and :class:`MapSpec` with no
fds, no allocated maps and no decoded programs — that :mod:`pyebpf.loader` (and
:func:`pyebpf.kernel.load_object`) instantiate.

Phases (libbpf's ``bpf_object_open`` order):

1. ``_open``: the ELF container (read with ``struct``; pyelftools, its errors wrapped,
   for anything clang does not write): ELFCLASS64,
   little-endian, ``ET_REL``, ``e_machine`` EM_BPF (or EM_NONE, as libbpf accepts);
   every section's bytes lie inside the file.
2. ``_read_symbols``: the one ``SHT_SYMTAB`` and its string table.
3. ``_read_license``: ``license`` (NUL-terminated string), ``version`` (u32).
4. ``_read_btf``: ``.BTF`` (:mod:`pyebpf.btf`) and ``.BTF.ext`` (line info, CO-RE
   relocation records).
5. ``_read_legacy_maps``: the ``maps`` section as iproute2 reads it
   (``bpf_fetch_maps_end``): one definition per symbol, section size / symbol count bytes
   each, any size from the 16 of the first four fields of ``struct bpf_elf_map`` (type,
   size_key, size_value, max_elem) to its full 36 (then flags, id, pinning, inner_id,
   inner_idx), the fields it lacks zero; 20 is also libbpf's ``struct bpf_map_def``
   (type, key_size, value_size, max_entries, map_flags).  Then iproute2's maps of maps:
   the template of an outer map is the map whose ``id`` is its ``inner_id``, and each map
   with that id goes into it at its ``inner_idx``.
6. ``_read_btf_maps``: ``.maps``, described by its BTF DATASEC: ``__uint(f, N)`` is a
   pointer to an array of N elements, ``__type(f, T)`` a pointer to T,
   ``__array(values, T)`` the initial contents (from ``.rel.maps``) of a program array
   (functions) or of a map of maps (maps of ``.maps``; ``struct T`` is the template).
7. ``_read_data_maps``: ``.data*``, ``.rodata*`` (``.rodata.str1.1`` too), ``.bss*``:
   one single-entry ARRAY map each, holding the section's bytes (``.bss``: zeros);
   ``.addr_space.1`` (clang's section of ``__arena`` globals): the initial bytes of the
   object's one arena map, from its first page, as libbpf 1.4-1.6 place them
   (``init_arena_map_data``).
8. ``_read_functions``: ``STT_FUNC`` symbols of executable sections; in every section but
   ``.text`` each global function is a program, typed from :data:`SECTION_TYPES`;
   ``.text`` holds the subprograms.
9. ``_link_programs``: CO-RE relocations applied to each code section against the
   target BTF (:mod:`pyebpf.btf.relo`; ``btf=``, default the running kernel's, else
   the shipped one); then
   each program's instructions with its relocations applied:
   ``R_BPF_64_64`` on ``lddw`` becomes a map reference (``BPF_PSEUDO_MAP_FD``), a
   global-data reference (``BPF_PSEUDO_MAP_VALUE``, offset = symbol value + addend)
   or a typeless ``__ksym``'s address (:mod:`pyebpf.ksym`); a typed ``__ksym``
   variable's becomes ``BPF_PSEUDO_BTF_ID`` with the id of its VAR in the target BTF;
   bpf-to-bpf calls (``R_BPF_64_32``, or unrelocated calls inside a section) append the
   called functions after the program, as libbpf does, and get their offsets fixed; so
   does an ``lddw`` of a function (a callback: ``BPF_PSEUDO_FUNC``); a call of an
   extern function is a kfunc call (``ProgramSpec.kfuncs``).
10. ``_fill_prog_arrays``: iproute2's ``ID/KEY`` sections (:func:`tail_call_slot`, C's
    ``sscanf(name, "%i/%i")``): the program of section ``ID/KEY`` goes into slot KEY of
    the program array whose ``bpf_elf_map.id`` is ID; a section whose ID names no program
    array fills nothing (as in tc) and raises an :class:`~pyebpf.errors.ElfWarning`.

Not supported (each an ElfError naming it): big-endian or 32-bit objects, ``SHT_RELA``,
relocation types other than R_BPF_64_64 / R_BPF_64_32 in code and R_BPF_64_ABS64 in
``.maps``, relocations in data sections (pointer initialisers) (kfuncs are called by name, callbacks (``lddw`` of a function) placed; ``__kconfig`` externs become a ``.kconfig`` map,
:mod:`pyebpf.kconfig`; typeless ``__ksym`` externs an address),
static functions in program sections (libbpf
refuses them too), iproute2 custom pinning ids.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import re
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from . import btf as _btf
from . import isa
from .errors import ElfError, ElfWarning, LoadError

__all__ = ["parse", "ObjectSpec", "ProgramSpec", "MapSpec", "MapRef", "SECTION_TYPES",
           "section_type", "tail_call_slot"]

EM_NONE, EM_BPF, ET_REL = 0, 247, 1
ARENA_SEC = ".addr_space.1"     # libbpf's name for clang's address space 1 section
SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB, SHT_RELA, SHT_NOBITS, SHT_REL = 1, 2, 3, 4, 8, 9
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 1, 2, 4
STT_OBJECT, STT_FUNC, STT_SECTION = 1, 2, 3
STB_LOCAL, STB_GLOBAL, STB_WEAK = 0, 1, 2
SHN_UNDEF, SHN_LORESERVE = 0, 0xFF00
STV_INTERNAL, STV_HIDDEN = 1, 2           # ELF64_ST_VISIBILITY(st_other)
R_BPF_64_64, R_BPF_64_ABS64, R_BPF_64_ABS32, R_BPF_64_NODYLD32, R_BPF_64_32 = 1, 2, 3, 4, 10
LIBBPF_PIN_NONE, LIBBPF_PIN_BY_NAME = 0, 1
CILIUM_PIN_REPLACE = 1 << 4         # cilium's bpf/include/bpf/loader.h
PIN_NONE, PIN_OBJECT_NS, PIN_GLOBAL_NS = 0, 1, 2          # iproute2's bpf_elf_map.pinning
MAP_IN_MAP_TYPES = (isa.MapType.BPF_MAP_TYPE_ARRAY_OF_MAPS, isa.MapType.BPF_MAP_TYPE_HASH_OF_MAPS)
_SYM = struct.Struct("<IBBHQQ")
_SHDR = struct.Struct("<IIQQQQIIQQ")        # Elf64_Shdr
_SHF_COMPRESSED = 0x800
_SHT_LLVM_ADDRSIG = 0x6FFF4C03
# the section types _plain_headers reads: those pyelftools reads no contents of (the
# relocation and symbol tables' sizes checked as it does), and LLVM's, unknown to it
_PLAIN_SHT = frozenset((0, SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB, SHT_RELA, SHT_NOBITS,
                        SHT_REL, _SHT_LLVM_ADDRSIG))
_RELOC_ENTSIZE = {SHT_REL: 16, SHT_RELA: 24}
_REL = struct.Struct("<QQ")
_BPF_MAP_DEF = struct.Struct("<5I")          # libbpf struct bpf_map_def
_BPF_ELF_MAP = struct.Struct("<9I")          # iproute2 struct bpf_elf_map
_BPF_ELF_MAP_MIN = 16                         # its first four fields: iproute2's smallest
_MAX_NOBITS = 1 << 26

# --- the section-name table ---------------------------------------------------------------
# libbpf's section_defs (libbpf.c) with iproute2's conventions, first match wins.  Match
# rules: "exact" the whole name; "+" the name or name/anything (libbpf's SEC("x+"));
# "*" any name starting with it (libbpf < 1.0's sloppy prefixes, and iproute2).  A name no
# rule matches is loaded as tc would load it: `tc filter ... bpf obj o.o sec NAME` takes
# any section as tc's own type, SCHED_CLS; so are iproute2's numbered "ID/KEY" tail-call
# sections.  pyebpf runs socket_filter, sched_cls and sched_act; the other rows name
# what a program is, so that loading it can say why it is not run.
SECTION_TYPES: tuple[tuple[str, str, str], ...] = (
    # (pattern, rule, program type)
    ("socket", "*", "socket_filter"),
    ("tc/ingress", "exact", "sched_cls"),
    ("tc/egress", "exact", "sched_cls"),
    ("tcx/", "*", "sched_cls"),
    ("tc", "exact", "sched_cls"),
    ("classifier", "*", "sched_cls"),
    ("action", "*", "sched_act"),
    ("netkit/primary", "exact", "sched_cls"),
    ("netkit/peer", "exact", "sched_cls"),
    ("xdp", "*", "xdp"),
    ("kprobe", "+", "kprobe"),
    ("kretprobe", "+", "kprobe"),
    ("uprobe", "+", "kprobe"),
    ("uretprobe", "+", "kprobe"),
    ("ksyscall", "+", "kprobe"),
    ("kretsyscall", "+", "kprobe"),
    ("usdt", "+", "kprobe"),
    ("tracepoint", "+", "tracepoint"),
    ("tp", "+", "tracepoint"),
    ("raw_tracepoint", "+", "raw_tracepoint"),
    ("raw_tp", "+", "raw_tracepoint"),
    ("tp_btf", "+", "tracing"),
    ("fentry", "+", "tracing"),
    ("fexit", "+", "tracing"),
    ("fmod_ret", "+", "tracing"),
    ("iter", "+", "tracing"),
    ("lsm", "+", "lsm"),
    ("perf_event", "exact", "perf_event"),
    ("cgroup_skb/", "*", "cgroup_skb"),
    ("cgroup/skb", "exact", "cgroup_skb"),
    ("cgroup/dev", "exact", "cgroup_device"),
    ("cgroup/sysctl", "exact", "cgroup_sysctl"),
    ("cgroup/getsockopt", "exact", "cgroup_sockopt"),
    ("cgroup/setsockopt", "exact", "cgroup_sockopt"),
    ("cgroup/sock", "*", "cgroup_sock"),
    ("cgroup/", "*", "cgroup_sock_addr"),
    ("lwt_in", "exact", "lwt_in"),
    ("lwt_out", "exact", "lwt_out"),
    ("lwt_xmit", "exact", "lwt_xmit"),
    ("lwt_seg6local", "exact", "lwt_seg6local"),
    ("sockops", "exact", "sock_ops"),
    ("sk_skb", "*", "sk_skb"),
    ("sk_msg", "exact", "sk_msg"),
    ("sk_reuseport", "*", "sk_reuseport"),
    ("sk_lookup", "exact", "sk_lookup"),
    ("flow_dissector", "exact", "flow_dissector"),
    ("lirc_mode2", "exact", "lirc_mode2"),
    ("struct_ops", "+", "struct_ops"),
    ("syscall", "exact", "syscall"),
    ("netfilter", "exact", "netfilter"),
)
_C_SPACE = " \t\n\v\f\r"
_RULE_TEXT = {"exact": "exactly", "+": "or NAME/...", "*": "any name starting with it"}


def section_table_markdown() -> str:
    """The section-name table as Markdown (docs/elf.md holds this output)."""
    rows = ["| section name | matches | program type |", "|---|---|---|"]
    rows += [f"| `{pattern}` | {_RULE_TEXT[rule]} | {prog_type} |"
             for pattern, rule, prog_type in SECTION_TYPES]
    rows += ["| `ID/KEY` (C's `%i/%i`: `2/0`, `0x2a/0`, `052/0`, `-1/0`) | iproute2 "
             "tail-call section | sched_cls |",
             "| anything else | tc's own type for `sec NAME` | sched_cls |"]
    return "\n".join(rows) + "\n"


def section_type(name: str) -> tuple[str, str]:
    """(program type, why) for a section name: the :data:`SECTION_TYPES` row, iproute2's
    numbered tail-call convention, or tc's default for any other name."""
    for pattern, rule, prog_type in SECTION_TYPES:
        if (name == pattern if rule == "exact" else
                name.startswith(pattern) if rule == "*" else
                name == pattern or name.startswith(pattern + "/")):
            return prog_type, f"section {pattern!r}{'' if rule == 'exact' else rule}"
    if tail_call_slot(name) is not None:
        return "sched_cls", "iproute2 tail-call section ID/KEY"
    return "sched_cls", "no table row: tc's default type"


def _scan_c_int(text: str, pos: int) -> tuple[int, int] | None:
    """glibc's ``%i`` at ``pos``: (value as the ``unsigned int`` it is stored in, the
    position after it), or None on a matching failure.  Leading white space is skipped;
    an optional sign; ``0x``/``0X`` then hex digits (``0x`` alone reads 0, as glibc
    reads it), ``0`` then octal digits, else decimal digits; the value saturates at the
    bounds of ``long`` (strtol) and is then cut to 32 bits."""
    n = len(text)
    while pos < n and text[pos] in _C_SPACE:
        pos += 1
    negative = pos < n and text[pos] == "-"
    if pos < n and text[pos] in "+-":
        pos += 1
    if pos < n and text[pos] == "0":
        pos += 1
        base, digits = 8, "01234567"
        if pos < n and text[pos] in "xX":
            pos += 1
            base, digits = 16, "0123456789abcdefABCDEF"
        start = pos
    else:
        base, digits, start = 10, "0123456789", pos
    while pos < n and text[pos] in digits:
        pos += 1
    if base == 10 and pos == start:
        return None
    value = int(text[start:pos] or "0", base)
    value = min(-value if negative else value, (1 << 63) - 1)
    return max(value, -(1 << 63)) & 0xFFFFFFFF, pos


def _s32(v: int) -> int:
    return v - (1 << 32) if v >> 31 else v


def tail_call_slot(section: str) -> tuple[int, int] | None:
    """(map id, key) of an iproute2 tail-call section name, or None: iproute2 reads both
    with C's ``sscanf(name, "%i/%i")`` (``bpf_fill_prog_arrays``, and
    ``find_legacy_tail_calls`` with libbpf), so ``2/0``, ``0x2a/0``, ``052/0``, ``+7/1``,
    ``-1/0`` (id 0xffffffff) and ``1/0-foo`` (text after KEY is ignored) are all slots."""
    first = _scan_c_int(section, 0)
    if first is None or first[1] >= len(section) or section[first[1]] != "/":
        return None
    second = _scan_c_int(section, first[1] + 1)
    return None if second is None else (first[0], second[0])


# --- specs ----------------------------------------------------------------------------
@dataclass(frozen=True)
class MapRef:
    """An ``lddw`` at ``insn`` that loads map ``map``: its fd (kind "fd",
    BPF_PSEUDO_MAP_FD) or the address of byte ``offset`` of its value (kind "value",
    BPF_PSEUDO_MAP_VALUE, global data)."""
    insn: int
    map: str
    kind: str
    offset: int = 0


@dataclass(frozen=True)
class ProgramSpec:
    """One program: its instructions with every called function appended, and the
    ``lddw`` slots that :meth:`instructions` fills with map fds."""
    name: str
    section: str
    prog_type: str                   # a libbpf name: "sched_cls", "socket_filter", "xdp"...
    type_reason: str                 # which SECTION_TYPES row (or convention) chose it
    insns: bytes
    map_refs: tuple[MapRef, ...]
    functions: tuple[str, ...]       # this program's own function, then the appended ones
    license: str
    line_info: tuple = ()            # pyebpf.btf.ext.LineInfo records, pcs in this program
    kfuncs: tuple = ()               # (pc, name): the kfunc calls, by extern function name
    core_poisoned: tuple = ()        # pyebpf.btf.relo.Poisoned: call 0xbad2310 and why
    func_info: tuple = ()            # (pc, BTF FUNC id): where each function starts

    def instructions(self, fds, kfunc_ids=None) -> bytes:
        """The raw instructions with each map reference's ``lddw`` pointing at the map
        ``fds[name]``: src BPF_PSEUDO_MAP_FD, imm = fd; or src BPF_PSEUDO_MAP_VALUE,
        imm = fd, the second slot's imm = offset.  Each kfunc call (src
        BPF_PSEUDO_KFUNC_CALL) gets imm = ``kfunc_ids(name)``: by default the engine's
        id (:data:`pyebpf.isa.KFUNC_IDS`); an unknown name raises LoadError."""
        raw = bytearray(self.insns)
        for ref in self.map_refs:
            src = isa.BPF_PSEUDO_MAP_FD if ref.kind == "fd" else isa.BPF_PSEUDO_MAP_VALUE
            isa.patch(raw, ref.insn, src=src, imm=fds[ref.map])
            isa.patch(raw, ref.insn + 1, imm=ref.offset)
        for pc, name in self.kfuncs:
            isa.patch(raw, pc, imm=(kfunc_ids or _engine_kfunc_id)(name, pc))
        return bytes(raw)

    def __len__(self) -> int:
        return len(self.insns) // isa.INSN_SIZE


def _engine_kfunc_id(name: str, pc: int) -> int:
    if name not in isa.KFUNC_IDS:
        raise LoadError(f"insn {pc}: extern function {name!r} is not a kfunc pyebpf knows "
                        f"(see docs/kfuncs-table.md)")
    return isa.KFUNC_IDS[name]


@dataclass(frozen=True)
class MapSpec:
    """One map as the object declares it.

    ``contents``: initial (key, value) pairs (global data: its section's bytes under key
    0); ``programs``: a program array's initial slots (index -> program name);
    ``inner_maps``: a map of maps' initial slots (index -> map name), ``inner`` its
    inner map template.
    ``pin_path`` is the pin a declaration asks for, relative to the bpffs root:
    ``NAME`` for libbpf's LIBBPF_PIN_BY_NAME, ``tc/globals/NAME`` for iproute2's
    PIN_GLOBAL_NS, ``tc/<sha1 of the object>/NAME`` for PIN_OBJECT_NS.  ``key_type``
    and ``value_type`` are BTF types (:class:`pyebpf.btf.Type`) where known.
    """
    name: str
    type: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int
    section: str
    declared: str                    # "btf", "bpf_map_def", "bpf_elf_map" or "data"
    contents: tuple[tuple[bytes, bytes], ...] = ()
    programs: dict = field(default_factory=dict)
    inner_maps: dict = field(default_factory=dict)   # map-in-map: slot -> map name
    map_extra: int = 0               # bloom filters: the number of hash functions
    pin_path: str | None = None
    elf_id: int | None = None        # iproute2: bpf_elf_map.id, inner_id, inner_idx
    inner_id: int = 0
    inner_idx: int = 0
    inner: "MapSpec | None" = None   # map-in-map: the inner map template
    key_type: _btf.Type | None = field(default=None, repr=False, compare=False)
    value_type: _btf.Type | None = field(default=None, repr=False, compare=False)

    def created_max_entries(self, cpus: int) -> int:
        """``max_entries`` as libbpf creates the map on a machine of ``cpus`` possible
        CPUs: a perf event array declared without one gets a slot per CPU
        (``map_set_def_max_entries``); a ring buffer declared in ``.maps`` gets the
        least power-of-2 multiple of the page size that holds what it asks for
        (``adjust_ringbuf_sz``; 0 stays 0, for the kernel to refuse); otherwise as
        declared."""
        n = self.max_entries
        if (n == 0 and self.type == isa.MapType.BPF_MAP_TYPE_PERF_EVENT_ARRAY
                and self.declared in ("btf", "bpf_map_def")):
            return cpus
        if (n and self.declared == "btf" and self.type in (
                isa.MapType.BPF_MAP_TYPE_RINGBUF, isa.MapType.BPF_MAP_TYPE_USER_RINGBUF)):
            pages = 1
            while pages * isa.PAGE_SIZE < n and pages * isa.PAGE_SIZE <= 0xFFFFFFFF:
                pages <<= 1
            if pages * isa.PAGE_SIZE <= 0xFFFFFFFF:
                return pages * isa.PAGE_SIZE
        return n

    @property
    def type_name(self) -> str:
        try:
            return isa.MapType(self.type).name[len("BPF_MAP_TYPE_"):].lower()
        except ValueError:
            return f"type {self.type}"


@dataclass(frozen=True)
class ObjectSpec:
    """Everything one object declares, as plain data."""
    name: str
    programs: dict                   # name -> ProgramSpec, in section order
    maps: dict                       # name -> MapSpec
    license: str
    version: int | None
    btf: _btf.Btf | None = field(default=None, repr=False, compare=False)
    namespace: str = ""              # tc/<sha1 of the object>: PIN_OBJECT_NS's directory
    # .BTF as the kernel takes it (DATASEC sizes and offsets filled in, as libbpf's
    # btf_fixup_datasec does); None without BTF or with extern (.ksyms, .kconfig) ones
    kernel_btf: bytes | None = field(default=None, repr=False, compare=False)

    def find_programs(self, name: str) -> list[ProgramSpec]:
        """The programs called ``name``, or in section ``name``."""
        if name in self.programs:
            return [self.programs[name]]
        return [p for p in self.programs.values() if p.section == name]

    def listing(self) -> str:
        """A table of the programs and maps, for a CLI."""
        lines = [f"{self.name}: license {self.license!r}"
                 + (f", version {self.version:#x}" if self.version is not None else "")]
        for p in self.programs.values():
            calls = f", calls {', '.join(p.functions[1:])}" if len(p.functions) > 1 else ""
            lines.append(f"  program {p.name:<20} section {p.section!r:<18} {p.prog_type:<14}"
                         f"{len(p)} insns{calls}")
        for m in self.maps.values():
            pin = f", pin {m.pin_path}" if m.pin_path else ""
            lines.append(f"  map     {m.name:<20} {m.type_name:<12} key {m.key_size} value "
                         f"{m.value_size} max_entries {m.max_entries} flags {m.flags:#x} "
                         f"({m.declared} in {m.section}){pin}")
        return "\n".join(lines)


# --- the pipeline ------------------------------------------------------------------------
@dataclass
class _Section:
    index: int
    name: str
    type: int
    flags: int
    size: int
    link: int
    info: int
    raw: bytes | None          # None for NOBITS

    @property
    def data(self) -> bytes:
        return bytes(self.size) if self.raw is None else self.raw


@dataclass(frozen=True)
class _Symbol:
    index: int
    name: str
    value: int
    size: int
    type: int
    bind: int
    shndx: int
    visibility: int = 0


@dataclass(frozen=True)
class _Func:
    section: int
    start: int                 # insn index in its section
    end: int
    name: str


def parse(source, *, name: str | None = None, btf=None, kconfig=None,
          kallsyms=None, extra_btf=(), constants=None) -> ObjectSpec:
    """Read an object file (a path, or its bytes) into an :class:`ObjectSpec`; an
    :class:`ObjectSpec` already read (changed, say, with :func:`dataclasses.replace`) is
    returned as it is, so the loaders take one too.

    ``btf`` is the target of CO-RE relocations: a :class:`pyebpf.btf.Btf` or a BTF
    file; by default the running kernel's ``/sys/kernel/btf/vmlinux`` when readable,
    else the one pyebpf ships, read only when the object needs it.  ``extra_btf`` are
    further targets (each a :class:`~pyebpf.btf.Btf` or a BTF file) whose types are
    candidates beside ``btf``'s, as cilium/ebpf's ``ExtraRelocationTargets`` (Inspektor
    Gadget relocates its gadgets against its socket enricher's object BTF, the ``btf``
    of that object's :class:`ObjectSpec`); a relocation two targets resolve differently
    is an error, as one matched by two candidates of one target.  ``kconfig`` gives
    the values of ``__kconfig`` externs (see :mod:`pyebpf.kconfig`): a mapping of
    ``CONFIG_*`` names to values, the text of a kernel ``.config`` or a path to one; by
    default the modelled kernel's.  ``kallsyms`` (name -> address, or a function
    returning that, called only for an object with typeless ``__ksym`` externs)
    resolves those externs; by default the target BTF's functions and variables
    (:mod:`pyebpf.ksym`).  ``constants`` (name -> integer) gives the 64-bit value of an
    undefined symbol an ``lddw`` names that is neither ``__kconfig`` nor ``__ksym``, as
    cilium/ebpf's users write one into the instruction before the load (rakelimit's
    ``rewriteConstant``: ``asm("%0 = LIMIT ll")``); names the object lacks are ignored,
    and such a symbol not named is refused as libbpf refuses it."""
    if isinstance(source, ObjectSpec):
        return source
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, label = bytes(source), name or "<bytes>"
    else:
        label = name or os.fspath(source)
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise ElfError(f"cannot read the object: {exc.strerror}", file=label) from exc
    return _Reader(data, label, btf, kconfig, kallsyms, extra_btf, constants).run()


class _Reader:
    def __init__(self, data: bytes, label: str, target_btf=None, kconfig=None, kallsyms=None,
                 extra_btf=(), constants=None):
        self.data, self.label, self.target_btf, self.kconfig = data, label, target_btf, kconfig
        self.extra_btf = tuple(extra_btf)
        self.kallsyms = kallsyms
        self.constants = dict(constants or {})
        self.kconfig_at: dict[str, int] = {}             # extern name -> .kconfig offset
        # typeless __ksym -> its address, rewritten constant -> its value: an lddw's imm
        self.ksym_at: dict[str, int] = {}
        self.ksym_btf: dict[str, int] = {}               # typed __ksym -> its target BTF VAR
        self.core_relos, self.poisoned = {}, {}
        self.namespace = f"tc/{hashlib.sha1(data).hexdigest()}"
        self.sections: list[_Section] = []
        self.symbols: list[_Symbol] = []
        self.relocs: dict[int, list[tuple[int, int, int, int]]] = {}  # target -> (n, off, type, sym)
        self.license, self.version, self.btf = "", None, None
        self.maps: dict[str, MapSpec] = {}
        self.map_at: dict[tuple[int, int], str] = {}     # (section, offset) -> map name
        self.data_maps: dict[int, str] = {}              # section index -> map name
        self.funcs: dict[int, list[_Func]] = {}
        self.programs: dict[str, ProgramSpec] = {}

    def error(self, message: str, **where) -> ElfError:
        return ElfError(message, file=self.label, **where)

    def run(self) -> ObjectSpec:
        for phase in (self._open, self._read_symbols, self._read_license, self._read_btf,
                      self._read_legacy_maps, self._link_iproute2_inner_maps,
                      self._read_btf_maps, self._read_data_maps, self._read_kconfig,
                      self._read_functions, self._link_programs, self._fill_prog_arrays):
            phase()
        return ObjectSpec(self.label, self.programs, self.maps, self.license, self.version,
                          self.btf, self.namespace, self._kernel_btf())

    def _kernel_btf(self) -> bytes | None:
        sec = self.sec_named(".BTF")
        if sec is None or self.btf is None:
            return None
        raw = bytearray(sec.data)
        _resolve_fwds(raw, self.btf)
        for t in self.btf.types:
            if t.kind != _btf.Kind.DATASEC:
                continue
            if t.name == ".ksyms":
                raw = _ksyms_for_kernel(raw, self.btf, t)
                continue
            data = self.sec_named(t.name)
            if data is None or t.name == ".kconfig":
                return None
            struct.pack_into("<I", raw, t.offset + 8, data.size)
            where = {y.name: y.value for y in self.symbols if y.shndx == data.index}
            for k, v in enumerate(t.vars):
                name = self.btf.types[v.type_id].name
                struct.pack_into("<I", raw, t.offset + 16 + 12 * k, where.get(name, 0))
        return bytes(raw)

    def sec(self, index: int) -> _Section | None:
        return self.sections[index] if 0 < index < len(self.sections) else None

    def sec_named(self, name: str) -> _Section | None:
        return next((s for s in self.sections if s.name == name), None)

    # 1 ------------------------------------------------------------------------------------
    def _open(self) -> None:
        self._check_header()
        headers = self._plain_headers()
        if headers is None:
            headers = self._elftools_headers()
        for i, name, stype, flags, offset, size, link, info in headers:
            raw = None
            if stype != SHT_NOBITS and i:
                if offset + size > len(self.data):
                    raise self.error(f"section data [{offset:#x}, {offset + size:#x}) runs "
                                     f"past the end of the {len(self.data)}-byte file",
                                     section=name)
                raw = self.data[offset:offset + size]
            elif size > _MAX_NOBITS:
                raise self.error(f"NOBITS section of {size} bytes is larger than "
                                 f"{_MAX_NOBITS}", section=name)
            self.sections.append(_Section(i, name, stype, flags, size, link, info, raw))
        if not self.sections:
            raise self.error("the object has no sections")

    def _check_header(self) -> None:
        """The ELF identification and the section header table's place, which both
        readers of the headers take for granted."""
        if len(self.data) < 64 or self.data[:4] != b"\x7fELF":
            raise self.error(f"not an ELF file ({len(self.data)} bytes, magic "
                             f"{self.data[:4].hex() or 'missing'})")
        if self.data[4] != 2 or self.data[5] != 1:
            raise self.error("only 64-bit little-endian objects are supported (ELF class "
                             f"{self.data[4]}, data encoding {self.data[5]})")
        shoff, = struct.unpack_from("<Q", self.data, 0x28)
        shentsize, shnum = struct.unpack_from("<HH", self.data, 0x3A)
        if shentsize != 64 or shoff + shnum * shentsize > len(self.data):
            raise self.error(f"section header table [{shoff:#x}, "
                             f"{shoff + shnum * shentsize:#x}) of {shnum} {shentsize}-byte "
                             f"entries does not fit in the {len(self.data)}-byte file "
                             f"(truncated?)")

    def _plain_headers(self) -> list[tuple] | None:
        """The section headers ``(index, name, type, flags, offset, size, link, info)``
        of an object as clang writes it, read with ``struct`` (pyelftools' import costs
        a start ~22 ms); None for anything else (another machine or type, extended
        section numbering, a section type pyelftools parses the contents of, a name or
        link it would read otherwise), which _elftools_headers reads and words the
        errors of as before."""
        data, shoff = self.data, struct.unpack_from("<Q", self.data, 0x28)[0]
        etype, machine = struct.unpack_from("<HH", data, 16)
        shnum, shstrndx = struct.unpack_from("<HH", data, 0x3C)
        if (machine not in (EM_BPF, EM_NONE) or etype != ET_REL or data[7] != 0
                or not shoff or not 0 < shstrndx < shnum):
            return None
        rows = [_SHDR.unpack_from(data, shoff + 64 * i) for i in range(shnum)]
        _, strtype, strflags, _, stroff, strsize, _, _, _, _ = rows[shstrndx]
        if strtype != SHT_STRTAB or strflags & _SHF_COMPRESSED \
                or stroff + strsize > len(data):
            return None
        headers = []
        for i, (name_off, stype, flags, _, offset, size, link, info, _, entsize) \
                in enumerate(rows):
            end = data.find(b"\0", stroff + name_off, stroff + strsize)
            if stype not in _PLAIN_SHT or flags & _SHF_COMPRESSED or end < 0:
                return None
            try:
                name = data[stroff + name_off:end].decode() if i else ""
            except UnicodeDecodeError:
                return None
            if (name == ".stab" and stype == SHT_PROGBITS
                    or stype in _RELOC_ENTSIZE and entsize != _RELOC_ENTSIZE[stype]
                    or stype == SHT_SYMTAB and (not entsize or size % entsize or link >= shnum
                                                or rows[link][1] != SHT_STRTAB)):
                return None
            headers.append((i, name, stype, flags, offset, size, link, info))
        return headers

    def _elftools_headers(self) -> list[tuple]:
        """The section headers as _plain_headers gives them, read by pyelftools, whose
        checks and messages a malformed or unusual object gets."""
        from elftools.common.exceptions import ELFError as _PyElfError
        from elftools.common.exceptions import ELFParseError
        from elftools.construct import ConstructError
        from elftools.elf.elffile import ELFFile
        current = None
        headers = []
        try:
            elf = ELFFile(io.BytesIO(self.data))
            machine, etype = elf.header.e_machine, elf.header.e_type
            if machine not in ("EM_BPF", "EM_NONE", EM_BPF, EM_NONE):
                raise self.error(f"e_machine is {machine}, not EM_BPF ({EM_BPF}): not a BPF "
                                 f"object")
            if etype not in ("ET_REL", ET_REL):
                raise self.error(f"e_type is {etype}, not ET_REL: BPF objects are relocatable "
                                 f"files (clang -c)")
            for i in range(elf.num_sections()):
                current = f"#{i}"
                section = elf.get_section(i)
                hdr, name = section.header, section.name if i else ""
                stype = hdr["sh_type"]
                stype = _SHT.get(stype, stype) if isinstance(stype, str) else stype
                headers.append((i, name, stype, hdr["sh_flags"], hdr["sh_offset"],
                                hdr["sh_size"], hdr["sh_link"], hdr["sh_info"]))
        except (_PyElfError, ELFParseError, ConstructError, struct.error, UnicodeDecodeError,
                ValueError, KeyError, IndexError, OverflowError, AssertionError) as exc:
            if isinstance(exc, ElfError):
                raise
            raise self.error(f"malformed ELF headers: {type(exc).__name__}: {exc}",
                             section=current) from exc
        return headers

    # 2 ------------------------------------------------------------------------------------
    def _read_symbols(self) -> None:
        tables = [s for s in self.sections if s.type == SHT_SYMTAB]
        if len(tables) != 1:
            raise self.error(f"expected one symbol table (SHT_SYMTAB), found {len(tables)}")
        symtab = tables[0]
        strtab = self.sec(symtab.link)
        if strtab is None or strtab.type != SHT_STRTAB:
            raise self.error(f"symbol table's sh_link {symtab.link} is not a string table",
                             section=symtab.name)
        if symtab.size % _SYM.size:
            raise self.error(f"{symtab.size} bytes is not a whole number of "
                             f"{_SYM.size}-byte symbols", section=symtab.name)
        strings = strtab.data
        for i in range(symtab.size // _SYM.size):
            name_off, info, other, shndx, value, size = _SYM.unpack_from(symtab.data,
                                                                         i * _SYM.size)
            if name_off >= max(len(strings), 1):
                raise self.error(f"symbol #{i}: name offset {name_off:#x} is beyond the "
                                 f"{len(strings)}-byte string table", section=symtab.name)
            end = strings.find(b"\0", name_off)
            name = strings[name_off:end if end >= 0 else len(strings)].decode(errors="replace")
            stype = info & 0xF
            if stype == STT_SECTION and 0 < shndx < len(self.sections):
                name = name or self.sections[shndx].name
            if 0 < shndx < SHN_LORESERVE and shndx >= len(self.sections):
                raise self.error(f"symbol #{i} is in section {shndx}, beyond the last "
                                 f"({len(self.sections) - 1})", symbol=name)
            self.symbols.append(_Symbol(i, name, value, size, stype, info >> 4, shndx,
                                        other & 3))
        for s in self.sections:
            if s.type == SHT_RELA:
                raise self.error("SHT_RELA relocations are not supported (BPF objects use "
                                 "SHT_REL)", section=s.name)
            if s.type != SHT_REL:
                continue
            if s.size % _REL.size:
                raise self.error(f"{s.size} bytes is not a whole number of {_REL.size}-byte "
                                 f"relocations", section=s.name)
            entries = []
            for n in range(s.size // _REL.size):
                offset, info = _REL.unpack_from(s.data, n * _REL.size)
                sym = info >> 32
                if sym >= len(self.symbols):
                    raise self.error(f"relocation against symbol #{sym}, which does not exist "
                                     f"({len(self.symbols)} symbols)", section=s.name,
                                     relocation=n)
                entries.append((n, offset, info & 0xFFFFFFFF, sym))
            self.relocs.setdefault(s.info, []).extend(entries)

    # 3 ------------------------------------------------------------------------------------
    def _read_license(self) -> None:
        lic = self.sec_named("license")
        if lic is not None:
            self.license = lic.data.split(b"\0", 1)[0].decode(errors="replace")
        ver = self.sec_named("version")
        if ver is not None:
            if ver.size != 4:
                raise self.error(f"version section is {ver.size} bytes, not 4",
                                 section="version")
            self.version = struct.unpack("<I", ver.data)[0]

    # 4 ------------------------------------------------------------------------------------
    def _read_btf(self) -> None:
        sec = self.sec_named(".BTF")
        if sec is not None:
            self.btf = _btf.Btf.parse(sec.data, self.label)
        ext = self.sec_named(".BTF.ext")
        self.line_info = {}
        if ext is not None and self.btf is not None:
            from .btf.ext import parse_btf_ext
            parsed = parse_btf_ext(ext.data, self.btf.strings)
            self.line_info, self.core_relos = parsed.line_info, parsed.core_relos

    def _relocate_core(self) -> None:
        """Patch each code section's CO-RE relocations in place, before linking (as
        libbpf's bpf_object__relocate_core does, before bpf-to-bpf calls are appended)."""
        if not any(self.core_relos.values()):
            return
        from .btf import relo
        target = [relo.target_btf(self.target_btf), *map(relo.target_btf, self.extra_btf)]
        for name, records in self.core_relos.items():
            sec = self.sec_named(name)
            if sec is None or not sec.flags & SHF_EXECINSTR:
                raise self.error("CO-RE relocations for a section that is not code",
                                 section=name)
            sec.raw, poisoned = relo.relocate(sec.data, records, self.btf, target,
                                              file=self.label, section=name)
            self.poisoned[sec.index] = poisoned

    # 5 ------------------------------------------------------------------------------------
    def _read_legacy_maps(self) -> None:
        sec = self.sec_named("maps")
        if sec is None:
            return
        syms = sorted((s for s in self.symbols if s.shndx == sec.index and s.type != STT_SECTION
                       and s.name), key=lambda s: s.value)
        if not syms:
            if sec.size:
                raise self.error("maps section has no map symbols", section="maps")
            return
        # iproute2's rules and reasons (bpf_fetch_maps_end), in its order
        if sec.size % len(syms) or sec.size % 4:
            raise self.error(f"{sec.size} bytes do not split into {len(syms)} map "
                             f"definitions of whole 32-bit fields (iproute2: \"Number BPF map "
                             f"symbols are not multiple of struct bpf_elf_map!\")", section="maps")
        size = sec.size // len(syms)
        offsets = {sym.value for sym in syms}
        missing = next((off for off in range(0, sec.size, size) if off not in offsets), None)
        if missing is not None:
            raise self.error(f"no map symbol at offset {missing:#x}: the {len(syms)} maps are "
                             f"not all {size}-byte definitions (iproute2: \"Different struct "
                             f"bpf_elf_map in use!\")", section="maps")
        if size > _BPF_ELF_MAP.size:
            raise self.error(f"map definitions of {size} bytes are larger than iproute2's "
                             f"{_BPF_ELF_MAP.size}-byte struct bpf_elf_map (iproute2: \"struct "
                             f"bpf_elf_map not supported, coming from future version?\")",
                             section="maps")
        if size < _BPF_ELF_MAP_MIN:
            raise self.error(f"map definitions of {size} bytes are smaller than the "
                             f"{_BPF_ELF_MAP_MIN} bytes of type, size_key, size_value, max_elem "
                             f"(iproute2: \"struct bpf_elf_map too small, not supported!\")",
                             section="maps")
        for sym in syms:
            # the fields a shorter definition lacks are zero, as iproute2 fills them
            raw = sec.data[sym.value:sym.value + size].ljust(_BPF_ELF_MAP.size, b"\0")
            mtype, ks, vs, n, flags, elf_id, pinning, inner_id, inner_idx = \
                _BPF_ELF_MAP.unpack(raw)
            if pinning == PIN_GLOBAL_NS:
                pin = f"tc/globals/{sym.name}"
            elif pinning == PIN_OBJECT_NS:
                pin = f"{self.namespace}/{sym.name}"
            elif pinning == PIN_NONE:
                pin = None
            else:
                raise self.error(f"pinning {pinning} (an iproute2 custom pinning id from "
                                 f"/etc/iproute2/bpf_pinning) is not supported",
                                 section="maps", symbol=sym.name)
            declared = "bpf_map_def" if size == _BPF_MAP_DEF.size else "bpf_elf_map"
            spec = MapSpec(sym.name, mtype, ks, vs, n, flags, "maps", declared,
                           pin_path=pin, elf_id=elf_id, inner_id=inner_id, inner_idx=inner_idx)
            self._add_map(spec, sec.index, sym.value)

    def _link_iproute2_inner_maps(self) -> None:
        """iproute2's maps of maps: an outer map's ``inner_id`` names the map (by
        ``bpf_elf_map.id``) that is its template, and every map with that id and no
        ``inner_id`` of its own goes into it at its ``inner_idx`` (-1: nowhere)."""
        legacy = [m for m in self.maps.values() if m.section == "maps"]
        for outer in legacy:
            if outer.type not in MAP_IN_MAP_TYPES or not outer.inner_id:
                continue
            inners = [m for m in legacy if m.elf_id == outer.inner_id and not m.inner_id]
            if not inners:
                raise self.error(f"inner_id {outer.inner_id} names no map (no bpf_elf_map has "
                                 f"that id)", section="maps", symbol=outer.name)
            slots = {m.inner_idx: m.name for m in inners if m.inner_idx != 0xFFFFFFFF}
            self.maps[outer.name] = dataclasses.replace(outer, inner=inners[0],
                                                        inner_maps=slots)

    def _symbol_offsets(self, section: int) -> dict[str, int]:
        return {y.name: y.value for y in self.symbols
                if y.shndx == section and y.type != STT_SECTION and y.name}

    def _add_map(self, spec: MapSpec, section: int, offset: int) -> None:
        if spec.name in self.maps:
            raise self.error("two maps have this name", section=spec.section,
                             symbol=spec.name)
        self.maps[spec.name] = spec
        self.map_at[(section, offset)] = spec.name

    # 6 ------------------------------------------------------------------------------------
    def _read_btf_maps(self) -> None:
        sec = self.sec_named(".maps")
        if sec is None:
            return
        if self.btf is None:
            raise self.error("BTF-defined maps need the .BTF section (compile with -g)",
                             section=".maps")
        datasec = self.btf.datasec(".maps", sec.size, self._symbol_offsets(sec.index))
        if datasec is None:
            if sec.size:
                raise self.error("no BTF DATASEC describes the .maps section", section=".maps")
            return
        inits = {}
        for n, offset, rtype, sym in self.relocs.get(sec.index, ()):
            if rtype != R_BPF_64_ABS64:
                raise self.error(f"relocation type {rtype} in .maps (expected R_BPF_64_ABS64, "
                                 f"an __array(values, ...) initialiser)", section=".maps",
                                 relocation=n, symbol=self.symbols[sym].name)
            inits[offset] = (n, self.symbols[sym])
        declared = []
        for vsi in datasec.vars:
            var = self.btf.types[vsi.type_id]
            spec, values_at = self._btf_map_def(var.name, var.target, strict=True)
            self._add_map(spec, sec.index, vsi.offset)
            declared.append((vsi, spec, values_at))
        # initialisers second: a slot may name a map declared after its outer map
        for vsi, spec, values_at in declared:
            slots = {}
            for off, (n, sym) in inits.items():
                if vsi.offset <= off < vsi.offset + vsi.size:
                    slots[self._values_slot(spec, vsi, values_at, off, n)] = \
                        self._values_target(spec, n, sym, sec.index)
            if slots:
                kind = "programs" if spec.type == isa.MapType.BPF_MAP_TYPE_PROG_ARRAY else \
                    "inner_maps"
                self.maps[spec.name] = dataclasses.replace(spec, **{kind: slots})

    def _values_slot(self, spec, vsi, values_at, off: int, n: int) -> int:
        if values_at is None or off - vsi.offset < values_at or \
                (off - vsi.offset - values_at) % 8:
            raise self.error(f"initialiser at offset {off:#x} is not a slot of the map's "
                             f"__array(values, ...)", section=".maps", symbol=spec.name,
                             relocation=n)
        return (off - vsi.offset - values_at) // 8

    def _values_target(self, spec: MapSpec, n: int, sym: _Symbol, maps_section: int) -> str:
        """The program or map an ``__array(values, ...)`` slot names."""
        slot_error = dict(section=".maps", symbol=spec.name, relocation=n)
        if spec.type == isa.MapType.BPF_MAP_TYPE_PROG_ARRAY:
            target = self.sec(sym.shndx)
            if sym.type != STT_FUNC or target is None or not target.flags & SHF_EXECINSTR:
                raise self.error(f"a program array slot names {sym.name!r}, which is not a "
                                 f"function", **slot_error)
            return sym.name
        if spec.type not in MAP_IN_MAP_TYPES:
            raise self.error(f"initial contents of a {spec.type_name} map are not supported "
                             f"(__array(values, ...) fills program arrays and maps of maps)",
                             **slot_error)
        name = self.map_at.get((sym.shndx, sym.value)) if sym.shndx == maps_section else None
        if name is None:
            raise self.error(f"a map-in-map slot names {sym.name!r}, which is not a map of "
                             f".maps", **slot_error)
        return name

    def _btf_map_def(self, name: str, t: _btf.Type, strict: bool):
        """MapSpec of a BTF map definition struct, and the byte offset of ``values``."""
        def fail(message):
            return self.error(message, section=".maps", symbol=name)
        t = t.resolve()
        if t.kind != _btf.Kind.STRUCT:
            raise fail(f"a BTF map definition must be a struct, not {t.describe()}")
        attrs = dict(type=0, key_size=0, value_size=0, max_entries=0, flags=0)
        key_type = value_type = inner = None
        values_at, pinning, map_extra = None, LIBBPF_PIN_NONE, 0
        for m in t.members:
            mt = self.btf.type(m.type_id, t).resolve()
            if m.name == "map_extra" and mt.kind in (_btf.Kind.ENUM, _btf.Kind.ENUM64):
                # __ulong(map_extra, V): an enum of one member, V (get_map_field_long;
                # an ENUM's value is its u32)
                if len(mt.members) != 1:
                    raise fail(f"field 'map_extra' must be __ulong(map_extra, V): an enum "
                               f"of one member, not {len(mt.members)}")
                value = mt.members[0].value
                map_extra = value & 0xFFFFFFFF if mt.kind == _btf.Kind.ENUM else \
                    value & 0xFFFF_FFFF_FFFF_FFFF
                continue
            if m.name in ("type", "max_entries", "map_flags", "key_size", "value_size",
                          "pinning", "numa_node", "map_extra"):
                arr = mt.target.resolve() if mt.kind == _btf.Kind.PTR else None
                if arr is None or arr.kind != _btf.Kind.ARRAY:
                    raise fail(f"field {m.name!r} must be __uint({m.name}, N): a pointer to an "
                               f"array, not {mt.describe()}")
                value = arr.nelems
                if m.name == "pinning":
                    pinning = value
                elif m.name == "map_extra":
                    map_extra = value
                elif m.name == "numa_node":
                    if value:
                        raise fail(f"{m.name} {value} is not supported")
                else:
                    attrs["flags" if m.name == "map_flags" else m.name] = value
            elif m.name in ("key", "value"):
                if mt.kind != _btf.Kind.PTR:
                    raise fail(f"field {m.name!r} must be __type({m.name}, T): a pointer, not "
                               f"{mt.describe()}")
                size = mt.target.byte_size
                given = attrs[f"{m.name}_size"]
                if given and given != size:
                    raise fail(f"{m.name}_size {given} conflicts with sizeof({m.name}) {size}")
                attrs[f"{m.name}_size"] = size
                if m.name == "key":
                    key_type = mt.target
                else:
                    value_type = mt.target
            elif m.name == "values":
                elem = mt.target.resolve() if mt.kind == _btf.Kind.ARRAY else None
                if elem is None or elem.kind != _btf.Kind.PTR:
                    raise fail("field 'values' must be __array(values, ...): an array of "
                               "pointers")
                pointee = elem.target.resolve()
                if pointee.kind == _btf.Kind.STRUCT:
                    if not strict:
                        raise fail("an inner map cannot hold maps itself")
                    inner, _ = self._btf_map_def(f"{name}.inner", pointee, strict=False)
                if attrs["value_size"] not in (0, 4):
                    raise fail(f"value_size {attrs['value_size']} of a map with __array values "
                               f"must be 4")
                attrs["value_size"] = 4
                values_at = m.bit_offset // 8
            elif strict:
                raise fail(f"unknown map definition field {m.name!r}")
        # cilium's loader (pkg/bpf/pinning.go, consumePinReplace) strips CILIUM_PIN_REPLACE
        # before loading: the map is always created afresh, its pin replaced only after
        # the programs are attached
        if pinning not in (LIBBPF_PIN_NONE, LIBBPF_PIN_BY_NAME, CILIUM_PIN_REPLACE):
            raise fail(f"pinning {pinning} is not LIBBPF_PIN_NONE, LIBBPF_PIN_BY_NAME or "
                       f"CILIUM_PIN_REPLACE")
        if not attrs["type"]:
            raise fail("the map definition has no __uint(type, ...)")
        spec = MapSpec(name, attrs["type"], attrs["key_size"], attrs["value_size"],
                       attrs["max_entries"], attrs["flags"], ".maps", "btf",
                       pin_path=name if pinning == LIBBPF_PIN_BY_NAME else None, inner=inner,
                       key_type=key_type, value_type=value_type, map_extra=map_extra)
        return spec, values_at

    # 7 ------------------------------------------------------------------------------------
    def _read_data_maps(self) -> None:
        for s in self.sections:
            if not (s.flags & SHF_ALLOC and not s.flags & SHF_EXECINSTR and s.size and
                    re.match(r"^\.(data|rodata|bss)(\.|$)", s.name)):
                continue
            if s.index in self.relocs:
                n, _off, _t, sym = self.relocs[s.index][0]
                raise self.error("relocations in global data (pointer initialisers) are not "
                                 "supported", section=s.name, relocation=n,
                                 symbol=self.symbols[sym].name)
            ds = (self.btf.datasec(s.name, s.size, self._symbol_offsets(s.index))
                  if self.btf is not None else None)
            # libbpf (bpf_object__init_internal_map): programs may not write .rodata
            flags = isa.BPF_F_RDONLY_PROG if s.name.startswith(".rodata") else 0
            if self._exposes_variables(ds, s.index):
                flags |= isa.BPF_F_MMAPABLE
            spec = MapSpec(s.name, isa.MapType.BPF_MAP_TYPE_ARRAY, 4, s.size, 1, flags,
                           s.name, "data", contents=((bytes(4), s.data),), value_type=ds)
            self._add_map(spec, s.index, 0)
            self.data_maps[s.index] = s.name
        self._read_arena_data()

    def _exposes_variables(self, datasec, section: int) -> bool:
        """libbpf's map_is_mmapable: a global data map is made BPF_F_MMAPABLE (for
        skeletons to reach its variables without bpf(2)) when its DATASEC holds a variable
        that is neither static nor, by its symbol's STV_HIDDEN or STV_INTERNAL visibility,
        made static (btf_fixup_datasec); a section without a DATASEC
        (``.rodata.str1.1``) is not."""
        if datasec is None:
            return False
        hidden = {y.name for y in self.symbols
                  if y.shndx == section and y.visibility in (STV_HIDDEN, STV_INTERNAL)}
        return any(var.kind == _btf.Kind.VAR and var.linkage != _btf.BTF_VAR_STATIC and
                   var.name not in hidden
                   for var in (self.btf.types[v.type_id] for v in datasec.vars))

    def _read_arena_data(self) -> None:
        """``.addr_space.1``: libbpf's init_arena_map_data and its refusals.  The
        globals' lddws become references to the arena's first bytes (RELO_DATA:
        ``BPF_PSEUDO_MAP_VALUE``, offset = symbol value + addend)."""
        s = self.sec_named(ARENA_SEC)
        if s is None or not s.size:
            return
        arenas = [m for m in self.maps.values() if m.type == isa.MapType.BPF_MAP_TYPE_ARENA]
        if not arenas:
            raise self.error("to use global __arena variables the ARENA map should be "
                             "explicitly declared in SEC(\".maps\")", section=ARENA_SEC)
        if len(arenas) > 1:
            raise self.error(f"only single ARENA map is supported (map {arenas[0].name!r} "
                             "is also ARENA)", section=".maps", symbol=arenas[1].name)
        arena = arenas[0]
        if -(-s.size // isa.PAGE_SIZE) > arena.max_entries:
            raise self.error(f"declared ARENA map size ({arena.max_entries * isa.PAGE_SIZE})"
                             f" is too small to hold global __arena variables of size "
                             f"{s.size}", section=ARENA_SEC)
        if s.index in self.relocs:
            n, _off, _t, sym = self.relocs[s.index][0]
            raise self.error("relocations in global data (pointer initialisers) are not "
                             "supported", section=s.name, relocation=n,
                             symbol=self.symbols[sym].name)
        self.maps[arena.name] = dataclasses.replace(arena, contents=((b"", s.data),))
        self.data_maps[s.index] = arena.name

    def _read_kconfig(self) -> None:
        """``__kconfig`` externs: one ``.kconfig`` array map holding their values, laid
        out as libbpf lays it out (bpf_object__collect_externs); typeless ``__ksym``
        externs: their addresses (:mod:`pyebpf.ksym`)."""
        # extern functions are kfuncs, resolved at their calls (_read_program); clang gives
        # one's symbol no type when only its address is taken in a call, so the object's
        # BTF tells them apart
        functions = {t.name for t in (self.btf.types if self.btf else ())
                     if t.kind == _btf.Kind.FUNC}
        externs = [y for y in self.symbols if y.shndx == SHN_UNDEF and y.name and
                   y.bind in (STB_GLOBAL, STB_WEAK) and y.type != STT_FUNC
                   and y.name not in functions]
        if not externs:
            return
        from . import kconfig
        wanted, ksyms = {}, []
        for y in externs:
            var, sec = self._extern_var(y.name)
            if sec == ".kconfig":
                wanted[y.name] = (var.target, y.bind == STB_WEAK)
            elif sec == ".ksyms" and var.target.resolve().kind == _btf.Kind.UNKN:
                ksyms.append(y)
            elif sec == ".ksyms":
                self._resolve_typed_ksym(y)
            elif y.name in self.constants:
                value = self.constants[y.name]
                if not isinstance(value, int) or not -(1 << 63) <= value < 1 << 64:
                    raise self.error(f"constant {value!r} is not a 64-bit integer",
                                     symbol=y.name)
                self.ksym_at[y.name] = value & 0xFFFF_FFFF_FFFF_FFFF
            else:
                raise self.error("extern symbol that is neither __kconfig nor __ksym",
                                 symbol=y.name)
        if ksyms:
            self._resolve_ksyms(ksyms)
        if not wanted:
            return
        try:
            size, self.kconfig_at, data = kconfig.layout(wanted, self.kconfig)
        except ValueError as exc:
            raise self.error(str(exc), section=".kconfig") from None
        # its DATASEC's variables are externs, never static: libbpf's map_is_mmapable
        # makes the map BPF_F_MMAPABLE
        self.maps[".kconfig"] = MapSpec(".kconfig", isa.MapType.BPF_MAP_TYPE_ARRAY, 4, size, 1,
                                        isa.BPF_F_RDONLY_PROG | isa.BPF_F_MMAPABLE,
                                        ".kconfig", "data",
                                        contents=((bytes(4), data),))

    def _extern_var(self, name: str):
        """(VAR, DATASEC name) of the extern ``name`` in the object's BTF, or (None, None)."""
        for t in self.btf.types if self.btf else ():
            if t.kind == _btf.Kind.DATASEC and t.name in (".kconfig", ".ksyms"):
                for v in t.vars:
                    if self.btf.types[v.type_id].name == name:
                        return self.btf.types[v.type_id], t.name
        return None, None

    def _resolve_typed_ksym(self, y) -> None:
        """A typed ``__ksym`` variable (``extern const int bpf_prog_active __ksym;``):
        the VAR of its name in the target BTF, whose id its lddw carries
        (bpf_object__resolve_ksym_var_btf_id); a ``__weak`` one the kernel lacks is the
        constant 0."""
        from .btf import relo
        found = relo.target_btf(self.target_btf).by_name(y.name, _btf.Kind.VAR)
        if not found and y.bind != STB_WEAK:
            raise self.error("extern (var ksym): not found in the kernel BTF", symbol=y.name)
        if found:
            self.ksym_btf[y.name] = found[0].id
        else:
            self.ksym_at[y.name] = 0

    def _resolve_ksyms(self, ksyms) -> None:
        if self.kallsyms is None:
            from . import ksym
            from .btf import relo
            self.kallsyms = ksym.modelled(relo.target_btf(self.target_btf))
        elif callable(self.kallsyms):
            try:
                self.kallsyms = self.kallsyms()
            except OSError as exc:
                raise self.error(f"cannot read the kernel's symbols: {exc}") from None
        for y in ksyms:
            address = self.kallsyms.get(y.name)
            if address is None and y.bind != STB_WEAK:
                raise self.error("extern (ksym): no such kernel symbol (declare it __weak "
                                 "to read 0)", symbol=y.name)
            self.ksym_at[y.name] = address or 0

    # 8 ------------------------------------------------------------------------------------
    def _read_functions(self) -> None:
        for s in self.sections:
            if not s.flags & SHF_EXECINSTR or s.type != SHT_PROGBITS:
                continue
            if s.size % isa.INSN_SIZE:
                raise self.error(f"{s.size} bytes of code is not a whole number of "
                                 f"instructions", section=s.name)
            n = s.size // isa.INSN_SIZE
            syms = sorted((y for y in self.symbols if y.shndx == s.index and y.type == STT_FUNC),
                          key=lambda y: y.value)
            funcs = []
            for k, y in enumerate(syms):
                if y.value % isa.INSN_SIZE or y.size % isa.INSN_SIZE or y.value + y.size > s.size:
                    raise self.error(f"function [{y.value:#x}, {y.value + y.size:#x}) is not "
                                     f"whole instructions inside the section's {s.size} bytes",
                                     section=s.name, symbol=y.name)
                end = (y.value + y.size if y.size else
                       syms[k + 1].value if k + 1 < len(syms) else s.size)
                funcs.append(_Func(s.index, y.value // 8, end // 8, y.name))
            if not funcs and n:
                funcs = [_Func(s.index, 0, n, s.name)]
            self.funcs[s.index] = funcs
            if s.name == ".text":
                continue
            # a static function there is a program too, as cilium/ebpf reads it
            # (elfCode.loadProgramSections; cilium's tail calls are static); libbpf
            # refuses it (bpf_object__add_programs)
            for f in funcs:
                if f.name in self.programs:
                    raise self.error("two programs have this name", section=s.name,
                                     symbol=f.name)
                self.programs[f.name] = f     # linked in the next phase

    # 9 ------------------------------------------------------------------------------------
    def _link_programs(self) -> None:
        self._relocate_core()
        self.reloc_at = {}
        for target, entries in self.relocs.items():
            s = self.sec(target)
            if s is not None and s.flags & SHF_EXECINSTR:
                for n, off, rtype, sym in entries:
                    self.reloc_at[(target, off)] = (n, rtype, self.symbols[sym])
        for name, func in list(self.programs.items()):
            self.programs[name] = self._link(func)

    def _func_at(self, section: int, index: int) -> _Func | None:
        return next((f for f in self.funcs.get(section, ()) if f.start == index), None)

    def _link(self, entry: _Func) -> ProgramSpec:
        sec = self.sections[entry.section]
        prog_type, reason = section_type(sec.name)
        code = bytearray()
        placed: dict[_Func, int] = {}
        refs: list[MapRef] = []
        kfuncs: list[tuple[int, str]] = []

        def place(f: _Func) -> int:
            placed[f] = len(code) // 8
            code.extend(self.sections[f.section].data[f.start * 8:f.end * 8])
            todo.append(f)
            return placed[f]

        todo: list[_Func] = []
        place(entry)
        exception_cb = self._exception_callback(entry)
        while todo or (exception_cb is not None and exception_cb not in placed):
            if not todo:
                # libbpf appends the exception callback after the functions the
                # program calls (bpf_object__relocate), unless one of them calls it
                place(exception_cb)
            f = todo.pop(0)
            fsec, base = self.sections[f.section], placed[f]
            i = f.start
            while i < f.end:
                pc = base + i - f.start
                insn = isa.Insn.unpack(code, pc * isa.INSN_SIZE)
                reloc = self.reloc_at.get((f.section, i * 8))
                where = dict(section=fsec.name, insn=i)
                if reloc is not None:
                    where.update(relocation=reloc[0], symbol=reloc[2].name)
                if insn.is_lddw:
                    if i + 1 >= f.end:
                        raise self.error("lddw in the last slot of a function", **where)
                    callback = self._callback(reloc, insn.imm) if reloc is not None else None
                    if reloc is not None and reloc[2].name in self.ksym_at:
                        # libbpf writes a typeless ksym's address as a plain constant, and
                        # cilium/ebpf's users a rewritten constant's value
                        address = self.ksym_at[reloc[2].name]
                        isa.patch(code, pc, imm=_s32(address & 0xFFFFFFFF))
                        isa.patch(code, pc + 1, imm=_s32(address >> 32))
                    elif reloc is not None and reloc[2].name in self.ksym_btf:
                        # RELO_EXTERN_LD64 of a typed ksym: BPF_PSEUDO_BTF_ID, the VAR's
                        # id, the BTF object fd 0 (vmlinux)
                        isa.patch(code, pc, src=isa.BPF_PSEUDO_BTF_ID,
                                  imm=self.ksym_btf[reloc[2].name])
                        isa.patch(code, pc + 1, imm=0)
                    elif callback is not None:
                        # libbpf's RELO_SUBPROG_ADDR: the function is appended like a
                        # callee, and the lddw names it pc-relative (BPF_PSEUDO_FUNC)
                        start = placed[callback] if callback in placed else place(callback)
                        isa.patch(code, pc, src=isa.BPF_PSEUDO_FUNC, imm=start - pc - 1)
                    elif reloc is not None:
                        refs.append(self._lddw_ref(reloc, insn.imm, pc, where))
                        isa.patch(code, pc, imm=0)
                    # an lddw with a pseudo source and no relocation stays as written, as
                    # libbpf leaves it: the kernel judges its fd at the program's load
                    i += 2
                    continue
                if insn.is_pseudo_call:
                    if reloc is not None:
                        n, rtype, sym = reloc
                        if rtype != R_BPF_64_32:
                            raise self.error(f"relocation type {rtype} on a call (expected "
                                             f"R_BPF_64_32)", **where)
                        if sym.shndx == SHN_UNDEF:
                            # an extern function (__ksym): a kfunc, resolved by name when
                            # the program is instantiated (libbpf's RELO_EXTERN_CALL)
                            kfuncs.append((pc, sym.name))
                            isa.patch(code, pc, src=isa.BPF_PSEUDO_KFUNC_CALL, imm=0)
                            i += 1
                            continue
                        tsec = self.sec(sym.shndx)
                        if tsec is None or not tsec.flags & SHF_EXECINSTR:
                            raise self.error("call to a symbol that is not code in this object "
                                             "(extern functions are not supported)", **where)
                        tidx = sym.value // 8 + insn.imm + 1
                    else:
                        tsec, tidx = fsec, i + insn.imm + 1
                    callee = self._func_at(tsec.index, tidx)
                    if callee is None:
                        raise self.error(f"call target {tsec.name}+{tidx * 8:#x} is not the "
                                         f"start of a function", **where)
                    start = placed[callee] if callee in placed else place(callee)
                    isa.patch(code, pc, imm=start - pc - 1)
                elif insn.is_callx:
                    raise self.error("indirect call (callx): clang -O0 calls helpers through a "
                                     "register, which neither the kernel nor pyebpf loads; "
                                     "compile with -O1 or higher", **where)
                elif insn.is_kfunc_call:
                    raise self.error("kfunc call without a relocation naming its extern "
                                     "function", **where)
                elif reloc is not None:
                    raise self.error(f"relocation type {reloc[1]} on an instruction that is "
                                     f"neither lddw nor a call (opcode {insn.code:#04x})",
                                     **where)
                i += 1
        lines = tuple(li._replace(pc=base + li.pc - f.start)
                      for f, base in placed.items()
                      for li in self.line_info.get(self.sections[f.section].name, ())
                      if f.start <= li.pc < f.end)
        poisoned = tuple(dataclasses.replace(p, pc=base + p.pc - f.start)
                         for f, base in placed.items()
                         for p in self.poisoned.get(f.section, ()) if f.start <= p.pc < f.end)
        funcs = {t.name: t.id for t in self.btf.types
                 if t.kind == _btf.Kind.FUNC} if self.btf is not None else {}
        func_info = tuple(sorted((pc, funcs[f.name]) for f, pc in placed.items()
                                 if f.name in funcs))
        return ProgramSpec(entry.name, sec.name, prog_type, reason, bytes(code), tuple(refs),
                           tuple(f.name for f in placed), self.license,
                           tuple(sorted(lines, key=lambda li: li.pc)), tuple(kfuncs),
                           poisoned, func_info if len(func_info) == len(placed) else ())

    def _exception_callback(self, entry: _Func) -> _Func | None:
        """The function the program's one ``exception_callback:NAME`` decl tag names
        (``__exception_cb(NAME)``), or None; the kernel checks the rest."""
        if self.btf is None:
            return None
        main = {t.id for t in self.btf.types
                if t.kind == _btf.Kind.FUNC and t.name == entry.name}
        names = [t.name.split(":", 1)[1] for t in self.btf.types
                 if t.kind == _btf.Kind.DECL_TAG and t.type_id in main and
                 t.component_idx == -1 and t.name.startswith("exception_callback:")]
        if len(names) != 1:
            return None
        return next((f for fs in self.funcs.values() for f in fs
                     if f.name == names[0] and f is not entry), None)

    def _callback(self, reloc, imm: int) -> _Func | None:
        """The function an lddw's relocation names (a callback), or None."""
        _n, rtype, sym = reloc
        tsec = self.sec(sym.shndx) if sym.shndx != SHN_UNDEF else None
        if rtype != R_BPF_64_64 or tsec is None or not tsec.flags & SHF_EXECINSTR:
            return None
        # a global function: its symbol's value; a static one: the section plus imm
        return self._func_at(tsec.index, (sym.value + imm) // 8)

    def _lddw_ref(self, reloc, imm: int, index: int, where: dict) -> MapRef:
        n, rtype, sym = reloc
        if rtype != R_BPF_64_64:
            raise self.error(f"relocation type {rtype} on lddw (expected R_BPF_64_64)", **where)
        if sym.shndx == SHN_UNDEF:
            # libbpf points the lddw at the extern's slot of .kconfig; the addend is unused
            return MapRef(index, ".kconfig", "value", self.kconfig_at[sym.name])
        tsec = self.sec(sym.shndx)
        if tsec is None:
            raise self.error(f"symbol in special section {sym.shndx:#x}", **where)
        if sym.shndx in self.data_maps:
            offset = sym.value + imm
            if not 0 <= offset < tsec.size:
                raise self.error(f"global data offset {offset} is outside {tsec.name}'s "
                                 f"{tsec.size} bytes", **where)
            return MapRef(index, self.data_maps[sym.shndx], "value", offset)
        if tsec.name in ("maps", ".maps"):
            offset = sym.value + (imm if sym.type == STT_SECTION else 0)
            name = self.map_at.get((sym.shndx, offset))
            if name is None:
                raise self.error(f"{tsec.name}+{offset:#x} is not the start of a map "
                                 f"definition", **where)
            return MapRef(index, name, "fd")
        if tsec.flags & SHF_EXECINSTR:
            raise self.error(f"lddw of {tsec.name}+{sym.value + imm:#x}, which is not the "
                             f"start of a function", **where)
        raise self.error(f"lddw refers to section {tsec.name!r}, which is neither a maps "
                         f"section nor global data", **where)

    # 10 -----------------------------------------------------------------------------------
    def _fill_prog_arrays(self) -> None:
        # the first program array with the id wins, as bpf_find_map_by_id finds it
        by_id = {}
        for m in self.maps.values():
            if m.elf_id is not None and m.type == isa.MapType.BPF_MAP_TYPE_PROG_ARRAY:
                by_id.setdefault(m.elf_id, m.name)
        unmatched = {}
        for prog in list(self.programs.values()):
            slot = tail_call_slot(prog.section)
            if slot is None:
                continue
            map_id, key = slot
            if map_id not in by_id:
                unmatched[prog.section] = map_id   # tc skips it too: warned below, once
                continue
            array = self.maps[by_id[map_id]]
            if sum(p.section == prog.section for p in self.programs.values()) != 1:
                raise self.error("a tail-call section ID/KEY must hold one program",
                                 section=prog.section)
            if key >= array.max_entries:
                raise self.error(f"tail-call key {key} is out of bounds of program array "
                                 f"{array.name!r} ({array.max_entries} entries; iproute2: "
                                 f"\"Tail call key {key} for map {map_id} out of bounds?\")",
                                 section=prog.section)
            if key in array.programs:
                raise self.error(f"slot {key} of program array {array.name!r} is filled "
                                 f"twice", section=prog.section)
            self.maps[array.name] = dataclasses.replace(array,
                                                        programs={**array.programs, key: prog.name})
        self._fill_tail_tags()
        for section, map_id in unmatched.items():
            ids = sorted(by_id)
            have = (f"the object's program arrays have id {', '.join(map(str, ids))}" if ids
                    else "the object has no iproute2 program array (a bpf_elf_map in "
                         "section maps)")
            # shown as "FILE:0: ElfWarning: section ...": one line naming the object
            warnings.warn_explicit(ElfWarning(
                f"section {section!r}: an iproute2 tail-call slot ID/KEY naming map id "
                f"{map_id} ({map_id:#x}), but no program array has that id ({have}): its "
                f"program fills no slot, as in tc"), ElfWarning, self.label, 0)


    def _fill_tail_tags(self) -> None:
        """Cilium's ``__declare_tail(N)``: a program whose BTF function carries the decl
        tag ``tail:MAP/N`` fills slot N of program array MAP, as cilium's loader fills
        ``cilium_calls`` (pkg/bpf/collection.go, resolveTailCalls)."""
        if self.btf is None:
            return
        funcs = {t.id: t.name for t in self.btf.types if t.kind == _btf.Kind.FUNC}
        for t in self.btf.types:
            if (t.kind != _btf.Kind.DECL_TAG or t.component_idx != -1 or
                    t.type_id not in funcs or not t.name.startswith("tail:")):
                continue
            prog = self.programs.get(funcs[t.type_id])
            target, _, key = t.name[len("tail:"):].partition("/")
            if prog is None or not key.isdigit():
                raise self.error(f"decl tag {t.name!r} does not name a program and a slot "
                                 f"(tail:MAP/N on a function in a program section)",
                                 symbol=funcs[t.type_id])
            array, key = self.maps.get(target), int(key)
            if array is None or array.type != isa.MapType.BPF_MAP_TYPE_PROG_ARRAY:
                raise self.error(f"decl tag {t.name!r}: the object has no program array "
                                 f"{target!r}", section=prog.section, symbol=prog.name)
            if key >= array.max_entries or key in array.programs:
                raise self.error(f"decl tag {t.name!r}: slot {key} of program array "
                                 f"{target!r} ({array.max_entries} entries) is "
                                 f"{'filled twice' if key < array.max_entries else 'out of bounds'}",
                                 section=prog.section, symbol=prog.name)
            self.maps[target] = dataclasses.replace(
                array, programs={**array.programs, key: prog.name})


_SHT = {"SHT_NULL": 0, "SHT_PROGBITS": SHT_PROGBITS, "SHT_SYMTAB": SHT_SYMTAB,
        "SHT_STRTAB": SHT_STRTAB, "SHT_RELA": SHT_RELA, "SHT_NOBITS": SHT_NOBITS,
        "SHT_REL": SHT_REL}


def _resolve_fwds(raw: bytearray, btf: _btf.Btf) -> None:
    """What libbpf's BTF dedup does to forward declarations (btf_dedup_resolve_fwds):
    a reference to ``struct X;`` names the one ``struct X`` the object defines.  clang
    emits such a forward declaration behind a type tag (``struct X __kptr *``), and the
    kernel matches a kptr's type by type id."""
    from .btf.fields import full_type
    refs = (_btf.Kind.PTR, _btf.Kind.TYPEDEF, _btf.Kind.VOLATILE, _btf.Kind.CONST,
            _btf.Kind.RESTRICT, _btf.Kind.TYPE_TAG)
    for t in btf.types:
        if t.kind not in refs or not t.type_id:
            continue
        full = full_type(btf.types[t.type_id])
        if full.id != t.type_id:
            struct.pack_into("<I", raw, t.offset + 8, full.id)


def _ksyms_for_kernel(raw: bytearray, btf: _btf.Btf, sec: _btf.Type) -> bytearray:
    """The ``.ksyms`` DATASEC as libbpf hands it to the kernel
    (``bpf_object__collect_externs``): each extern a 4-byte slot at 4-byte steps; an
    extern function's slot names a dummy ``int`` VAR ``dummy_ksym`` (added at the end),
    the function turns global and its unnamed parameters take the dummy's name (the
    kernel refuses unnamed parameters and extern linkage); an extern variable becomes a
    global allocated ``int``."""
    hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from("<IIIII", raw, 4)
    int_id = next((t.id for t in btf.types if t.kind == _btf.Kind.INT and t.nr_bits == 32), 0)
    funcs = [v for v in sec.vars if btf.types[v.type_id].kind == _btf.Kind.FUNC]
    dummy_id = dummy_name = 0
    if funcs:
        dummy_id, dummy_name = len(btf.types), str_len
    for k, v in enumerate(sec.vars):
        vt = btf.types[v.type_id]
        at = sec.offset + 12 + 12 * k
        if vt.kind == _btf.Kind.FUNC:
            proto = vt.target
            for j, param in enumerate(proto.members):
                if param.type_id and not param.name:
                    struct.pack_into("<I", raw, proto.offset + 12 + 8 * j, dummy_name)
            info = struct.unpack_from("<I", raw, vt.offset + 4)[0]
            struct.pack_into("<I", raw, vt.offset + 4, info & ~0xFFFF | 1)   # BTF_FUNC_GLOBAL
            struct.pack_into("<III", raw, at, dummy_id, 4 * k, 4)
        else:
            struct.pack_into("<I", raw, vt.offset + 8, int_id)
            struct.pack_into("<I", raw, vt.offset + 12, 1)     # BTF_VAR_GLOBAL_ALLOCATED
            struct.pack_into("<I", raw, at + 4, 4 * k)
            struct.pack_into("<I", raw, at + 8, 4)
    struct.pack_into("<I", raw, sec.offset + 8, 4 * len(sec.vars))
    if not funcs:
        return raw
    types_end = hdr_len + type_off + type_len
    var = struct.pack("<IIII", dummy_name, int(_btf.Kind.VAR) << 24, int_id, 1)
    strings = bytes(raw[hdr_len + str_off:hdr_len + str_off + str_len]) + b"dummy_ksym\0"
    out = bytearray(raw[:types_end]) + var
    new_str_off = len(out) - hdr_len
    out += strings
    struct.pack_into("<III", out, 12, type_len + len(var), new_str_off, len(strings))
    return out
