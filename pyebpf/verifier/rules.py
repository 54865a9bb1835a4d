"""What each skb program type may do: its ``struct __sk_buff`` fields and its helpers.

:func:`context_table` (each access allowed or refused, computed once per program type
and profile) is read by the verifier and by the interpreter's context accessors
(``_core``); :func:`helpers_allowed` by both as well.  The rules per
program type and kernel profile follow ``tc_cls_act_is_valid_access``,
``sk_filter_is_valid_access`` and the ``*_func_proto`` functions of net/core/filter.c (the
current kernel measured with its verifier; 4.6 read from source; docs/kernel-notes.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from ..isa import PT_REGS, SIZEOF_SK_BUFF, SIZEOF_SK_BUFF_4_6, SK_BUFF_LAYOUT, ProgType

SF = ProgType.BPF_PROG_TYPE_SOCKET_FILTER
CLS = ProgType.BPF_PROG_TYPE_SCHED_CLS
ACT = ProgType.BPF_PROG_TYPE_SCHED_ACT
KPROBE = ProgType.BPF_PROG_TYPE_KPROBE
SKB_PROG_TYPES = (SF, CLS, ACT)
#: Architectures whose ``struct pt_regs`` a KPROBE program may see (x86-64 the default).
ARCHES = tuple(PT_REGS)

#: Kernel profiles: "current" (what 6.18 does, the default) and "4.6" (the seed's kernel).
PROFILES = ("current", "4.6")

SIZEOF = {"current": SIZEOF_SK_BUFF, "4.6": SIZEOF_SK_BUFF_4_6}


@dataclass(frozen=True)
class Field:
    """One ``__sk_buff`` field.

    ``width`` is the storage width of the kernel field behind it, which decides what a
    narrow load returns (bpf_ctx_narrow_access_ok).  ``read``/``write`` map a program type to the
    access sizes allowed (current kernel); ``read46``/``write46`` are the 4.6 rules.
    """
    id: int
    name: str
    offset: int
    size: int
    width: int
    read: dict
    write: dict
    read46: tuple = ()
    write46: tuple = ()


_NARROW = (1, 2, 4)
_ALL3 = {SF: _NARROW, CLS: _NARROW, ACT: _NARROW}
_TC_ONLY = {CLS: _NARROW, ACT: _NARROW}
_TC_W4 = {CLS: (4,), ACT: (4,)}
_CB = {SF: (1, 2, 4, 8), CLS: (1, 2, 4, 8), ACT: (1, 2, 4, 8)}
_NONE: dict = {}


def _f(fid, name, width, read, write, read46=(), write46=()):
    offset, size = SK_BUFF_LAYOUT[name]
    return Field(fid, name, offset, size, width, read, write, tuple(read46), tuple(write46))


_V46_ALL = (SF, CLS, ACT)
_V46_TC = (CLS, ACT)

# id, name, kernel width, reads, writes, 4.6 readers, 4.6 writers (offsets: isa)
FIELDS: tuple[Field, ...] = (
    _f(1, "len", 4, _ALL3, _NONE, _V46_ALL),
    _f(2, "pkt_type", 1, _ALL3, _NONE, _V46_ALL),
    _f(3, "mark", 4, _ALL3, _TC_W4, _V46_ALL, _V46_TC),
    _f(4, "queue_mapping", 2, _ALL3, _TC_W4, _V46_ALL),
    _f(5, "protocol", 2, _ALL3, _NONE, _V46_ALL),
    _f(6, "vlan_present", 4, _ALL3, _NONE, _V46_ALL),
    _f(7, "vlan_tci", 2, _ALL3, _NONE, _V46_ALL),
    _f(8, "vlan_proto", 2, _ALL3, _NONE, _V46_ALL),
    _f(9, "priority", 4, _ALL3, _TC_W4, _V46_ALL, _V46_TC),
    _f(10, "ingress_ifindex", 4, _ALL3, _NONE, _V46_ALL),
    _f(11, "ifindex", 4, _ALL3, _NONE, _V46_ALL),
    _f(12, "tc_index", 2, _ALL3, _TC_W4, _V46_ALL, _V46_TC),
    _f(13, "cb", 4, _CB, _CB, _V46_ALL, _V46_ALL),
    _f(14, "hash", 4, _ALL3, _NONE, _V46_ALL),
    _f(15, "tc_classid", 2, _TC_ONLY, _TC_W4, _V46_TC, _V46_TC),
    _f(16, "data", 4, {CLS: (4,), ACT: (4,)}, _NONE),
    _f(17, "data_end", 4, {CLS: (4,), ACT: (4,)}, _NONE),
    _f(18, "napi_id", 4, _ALL3, _NONE),
    _f(19, "family", 4, _NONE, _NONE),
    _f(20, "remote_ip4", 4, _NONE, _NONE),
    _f(21, "local_ip4", 4, _NONE, _NONE),
    _f(22, "remote_ip6", 4, _NONE, _NONE),
    _f(23, "local_ip6", 4, _NONE, _NONE),
    _f(24, "remote_port", 4, _NONE, _NONE),
    _f(25, "local_port", 4, _NONE, _NONE),
    _f(26, "data_meta", 4, {CLS: (4,), ACT: (4,)}, _NONE),
    _f(27, "flow_keys", 8, _NONE, _NONE),
    _f(28, "tstamp", 8, {CLS: (8,), ACT: (8,)}, {CLS: (8,), ACT: (8,)}),
    _f(29, "wire_len", 4, _TC_ONLY, _NONE),
    _f(30, "gso_segs", 2, _ALL3, _NONE),
    _f(31, "sk", 8, {SF: (8,), CLS: (8,), ACT: (8,)}, _NONE),
    _f(32, "gso_size", 2, _ALL3, _NONE),
    _f(33, "tstamp_type", 1, {CLS: (1,), ACT: (1,)}, _NONE),
    _f(34, "(padding)", 1, _NONE, _NONE),
    _f(35, "hwtstamp", 8, {CLS: (8,), ACT: (8,)}, _NONE),
)
FIELDS_BY_NAME = {f.name: f for f in FIELDS}
FIELDS_BY_ID = {f.id: f for f in FIELDS}

# Fields whose value is a pointer: the kernel refuses sign-extending loads of them.
POINTER_FIELDS = frozenset({"data", "data_end", "data_meta", "flow_keys", "sk"})


def _field_lookup() -> tuple[Field | None, ...]:
    at: list[Field | None] = [None] * max(f.offset + f.size for f in FIELDS)
    for f in reversed(FIELDS):      # where fields overlap, the first one is the answer
        at[f.offset:f.offset + f.size] = [f] * f.size
    return tuple(at)


# offset -> the first field of FIELDS covering it (a lookup rather than a walk of FIELDS:
# context_table asks for every offset, ~1 ms of each start-up)
_FIELD_AT = _field_lookup()


def field_at(offset: int) -> Field | None:
    return _FIELD_AT[offset] if 0 <= offset < len(_FIELD_AT) else None


def access_rule(prog_type: ProgType, profile: str, offset: int, size: int, write: bool,
                arch: str = "x86_64"):
    """``(field, None)`` when the access is allowed, else ``(field or None, reason)``.

    The reason names the field and says why; the verifier puts it after the kernel's
    own words, ``invalid bpf_context access off=N size=M``.  KPROBE contexts have no
    fields: their answer is ``(None, None)`` or ``(None, reason)``.
    """
    kind = "write" if write else "read"
    if prog_type == KPROBE:
        return None, _pt_regs_rule(offset, size, write, arch)
    done = "written" if write else "read"
    f = field_at(offset) if 0 <= offset < SIZEOF[profile] else None
    if f is None:
        kernel = " in the 4.6 kernel" if profile == "4.6" else ""
        return None, f"offset {offset} is outside struct __sk_buff ({SIZEOF[profile]} " \
                     f"bytes{kernel})"
    if offset % size:
        return f, f"misaligned {size}-byte {kind} of {f.name}"
    if profile == "4.6":
        if prog_type not in (f.write46 if write else f.read46):
            return f, f"{f.name} may not be {done} by {prog_type.name} in the 4.6 kernel"
        if size != 4:
            return f, f"{size}-byte {kind} of {f.name}; the 4.6 kernel allows 4-byte " \
                      f"context accesses only"
        return f, None
    allowed = (f.write if write else f.read).get(prog_type, ())
    if not allowed:
        return f, f"{f.name} may not be {done} by {prog_type.name}"
    if size not in allowed:
        sizes = "/".join(map(str, allowed))
        return f, f"{size}-byte {kind} of {f.name}; {prog_type.name} allows {sizes} bytes"
    if offset + size > f.offset + f.size:
        return f, f"{size}-byte {kind} at offset {offset} runs past the end of {f.name}"
    return f, None


def _pt_regs_rule(offset: int, size: int, write: bool, arch: str) -> str | None:
    """kprobe_prog_is_valid_access (4.6 and today): reads only, inside the struct, at an
    offset the size divides; the last check stops an 8-byte read of a last 4-byte member."""
    total = PT_REGS[arch][1]
    if not 0 <= offset < total:
        return f"offset {offset} is outside struct pt_regs ({total} bytes on {arch})"
    if write:
        return "the pt_regs context is read-only"
    if offset % size:
        return f"misaligned {size}-byte read of pt_regs"
    if offset + size > total:
        return f"{size}-byte read at offset {offset} runs past the end of pt_regs"
    return None


@dataclass(frozen=True)
class ContextTable:
    """The context rules of one program type and profile, for every offset of
    ``struct __sk_buff``: ``field``/``width`` (0 where no field is), and ``read``/``write``
    whose byte at an offset has bit ``size`` set when an access of that size is
    allowed there (the layout of ``CtxRules`` in ``_core``)."""
    prog_type: ProgType
    profile: str
    field: bytes
    width: bytes
    read: bytes
    write: bytes
    arch: str = "x86_64"

    def check(self, offset: int, size: int, write: bool):
        """:func:`access_rule`'s answer, looked up where the access is allowed."""
        if 0 <= offset < len(self.read) and size in (1, 2, 4, 8) and \
                (self.write if write else self.read)[offset] & size:
            return FIELDS_BY_ID.get(self.field[offset]), None
        return access_rule(self.prog_type, self.profile, offset, size, write, self.arch)


@cache
def context_table(prog_type: ProgType, profile: str, arch: str = "x86_64") -> ContextTable:
    """The :class:`ContextTable` of ``prog_type`` under ``profile`` (and, for KPROBE,
    the ``struct pt_regs`` of ``arch``), built on first use.  Its tables cover at least
    ``struct __sk_buff``'s size, the C core's ``CtxRules``."""
    if prog_type == KPROBE:
        n = max(SIZEOF_SK_BUFF, PT_REGS[arch][1])
        read = bytearray(n)
        for off in range(n):
            for size in (1, 2, 4, 8):
                if _pt_regs_rule(off, size, False, arch) is None:
                    read[off] |= size
        return ContextTable(KPROBE, profile, bytes(n), bytes(n), bytes(read), bytes(n), arch)
    n = SIZEOF_SK_BUFF
    field, width, read, write = bytearray(n), bytearray(n), bytearray(n), bytearray(n)
    for off in range(n):
        f = field_at(off)
        if f is None:
            continue
        field[off], width[off] = f.id, f.width
        for size in (1, 2, 4, 8):
            if access_rule(prog_type, profile, off, size, False)[1] is None:
                read[off] |= size
            if access_rule(prog_type, profile, off, size, True)[1] is None:
                write[off] |= size
    return ContextTable(ProgType(prog_type), profile, bytes(field), bytes(width),
                        bytes(read), bytes(write))


# Helper ids each program type may call (sk_filter_func_proto, tc_cls_act_func_proto; the
# current sets are the 6.18 verifier's answers for a privileged loader).
_V46_SF = frozenset({1, 2, 3, 5, 6, 7, 8, 12})
_V46_TC = _V46_SF | {9, 10, 11, 13, 17, 18, 19, 20, 21, 23, 24, 26, 28, 29, 30}
_CUR_SF = frozenset({
    1, 2, 3, 5, 6, 7, 8, 12, 14, 15, 16, 17, 22, 25, 26, 35, 37, 42, 46, 47, 55, 68, 80,
    87, 88, 89, 93, 94, 105, 106, 109, 112, 113, 114, 115, 117, 118, 120, 122, 123, 125,
    130, 131, 132, 133, 134, 136, 137, 138, 139, 140, 141, 148, 149, 153, 154, 156, 157,
    158, 160, 164, 165, 169, 170, 171, 172, 175, 176, 177, 178, 180, 181, 182, 191, 194,
    195, 196, 197, 198, 199, 200, 201, 202, 203, 208, 209, 210, 211})
_CUR_TC = _CUR_SF | {
    9, 10, 11, 13, 18, 19, 20, 21, 23, 24, 28, 29, 30, 31, 32, 33, 34, 38, 39, 40, 41, 43,
    48, 50, 66, 69, 79, 83, 84, 85, 86, 95, 96, 97, 98, 99, 100, 107, 108, 110, 124, 135,
    151, 152, 155, 163, 192, 204, 205, 206, 207}
# KPROBE (kprobe_prog_func_proto, then bpf_tracing_func_proto, then bpf_base_func_proto
# in kernel/trace/bpf_trace.c): 4.6 from its source, today's the 6.18 verifier's answers
# (without CONFIG_BPF_KPROBE_OVERRIDE: no override_return; probe_write_user is refused
# under lockdown).
_V46_KPROBE = frozenset({1, 2, 3, 4, 5, 6, 8, 12, 14, 15, 16, 22, 25, 27})
_CUR_KPROBE = frozenset({
    1, 2, 3, 4, 5, 6, 7, 8, 12, 14, 15, 16, 17, 22, 25, 27, 35, 37, 42, 45, 55, 67, 80, 87,
    88, 89, 93, 94, 105, 106, 109, 112, 113, 114, 115, 117, 118, 120, 123, 125, 130, 131,
    132, 133, 134, 141, 148, 149, 153, 154, 156, 157, 158, 164, 165, 169, 170, 171, 172, 173,
    174, 175, 176, 177, 180, 181, 182, 191, 194, 195, 197, 198, 199, 200, 201, 202, 203, 208,
    209, 210, 211})
_HELPERS = {
    ("current", SF): _CUR_SF, ("current", CLS): _CUR_TC, ("current", ACT): _CUR_TC,
    ("4.6", SF): _V46_SF, ("4.6", CLS): _V46_TC, ("4.6", ACT): _V46_TC,
    ("current", KPROBE): _CUR_KPROBE, ("4.6", KPROBE): _V46_KPROBE,
}


# What an unprivileged loader's socket filter may call (no CAP_BPF or CAP_PERFMON:
# bpf_base_func_proto stops before the capable-only helpers); measured on 6.18 as
# user nobody with kernel.unprivileged_bpf_disabled=0.
_UNPRIV_SF = frozenset({
    1, 2, 3, 5, 7, 8, 12, 14, 15, 25, 26, 42, 46, 47, 68, 87, 88, 89, 105, 106, 120, 122,
    125, 130, 131, 132, 133, 134, 160, 182, 195, 208})

#: Program types an unprivileged loader may load (of those pyebpf runs).
UNPRIV_PROG_TYPES = (SF,)


def helpers_allowed(prog_type: ProgType, profile: str, unpriv: bool = False) -> frozenset:
    """Helper ids the kernel of ``profile`` lets ``prog_type`` call (``unpriv``: when
    an unprivileged user loads it)."""
    if unpriv:
        return _UNPRIV_SF if prog_type == SF else frozenset()
    return _HELPERS[(profile, prog_type)]
