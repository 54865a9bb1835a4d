"""Socket pointers in the verifier: the types the socket helpers return
(``PTR_TO_SOCKET``, ``PTR_TO_SOCK_COMMON``, ``PTR_TO_TCP_SOCK``, each possibly NULL) and
an XSKMAP lookup gives (``PTR_TO_XDP_SOCK``), the fields a program may read through them
(``bpf_sock_is_valid_access``, ``bpf_sock_common_is_valid_access``,
``bpf_tcp_sock_is_valid_access``, ``bpf_xdp_sock_is_valid_access`` in
``net/core/filter.c``), the helper arguments that take them (``compatible_reg_types``)
and the references the lookups acquire (``acquire_reference``, ``release_reference``
and ``is_ptr_cast_function`` in ``kernel/bpf/verifier.c``).  The interpreter
(:mod:`.interp`) calls in here for loads through such pointers, for these argument and
return kinds, and keeps the references in ``VState.refs``.
"""
from __future__ import annotations

from .. import isa
from ..btf import Kind
from ..btf.relo import target_btf
from .state import (MAYBE_NULL, PTR_TO_BTF_ID, PTR_TO_SOCK_COMMON, PTR_TO_SOCKET,
                    PTR_TO_TCP_SOCK, PTR_TO_XDP_SOCK, Reg, scalar, type_str)

SOCK_TYPES = (PTR_TO_SOCK_COMMON, PTR_TO_SOCKET, PTR_TO_TCP_SOCK, PTR_TO_XDP_SOCK)

# helper argument kinds (enum bpf_arg_type)
SOCK_COMMON = "sock_common"              # ARG_PTR_TO_SOCK_COMMON
BTF_SOCK_COMMON = "btf_sock_common"      # ARG_PTR_TO_BTF_ID_SOCK_COMMON
SOCK_RELEASE = "sock_release"            # ARG_PTR_TO_BTF_ID_SOCK_COMMON | OBJ_RELEASE
ARG_KINDS = (SOCK_COMMON, BTF_SOCK_COMMON, SOCK_RELEASE)

# return kinds (enum bpf_return_type) and what the helper does with references
SOCKET_ACQUIRED = "socket_acquired"          # RET_PTR_TO_SOCKET_OR_NULL, a lookup
SOCK_COMMON_ACQUIRED = "sock_common_acquired"  # RET_PTR_TO_SOCK_COMMON_OR_NULL, skc_lookup
SOCKET_CAST = "socket_cast"                  # RET_PTR_TO_SOCKET_OR_NULL, bpf_sk_fullsock
TCP_SOCK_CAST = "tcp_sock_cast"              # RET_PTR_TO_TCP_SOCK_OR_NULL, bpf_tcp_sock
LISTENER = "listener"                        # RET_PTR_TO_SOCKET_OR_NULL, no reference
# RET_PTR_TO_BTF_ID_OR_NULL of the bpf_skc_to_* casts: the struct pointed at, and
# whether the result carries its argument's reference (is_ptr_cast_function, which
# leaves out bpf_skc_to_unix_sock)
BTF_CASTS = {f"btf_{name}": (name, name != "unix_sock")
             for name in ("tcp_sock", "tcp6_sock", "tcp_timewait_sock", "tcp_request_sock",
                          "udp6_sock", "unix_sock", "mptcp_sock")}
RET_KINDS = {**dict.fromkeys(BTF_CASTS, PTR_TO_BTF_ID), SOCKET_ACQUIRED: PTR_TO_SOCKET, SOCK_COMMON_ACQUIRED: PTR_TO_SOCK_COMMON,
             SOCKET_CAST: PTR_TO_SOCKET, TCP_SOCK_CAST: PTR_TO_TCP_SOCK,
             LISTENER: PTR_TO_SOCKET}

_SOCK_NAMES = ("sock_common", "sock", "tcp_sock", "xdp_sock")
# the kernel struct each socket pointer is (reg2btf_ids)
SOCK_STRUCTS = dict(zip(SOCK_TYPES, _SOCK_NAMES))
EXPECTED = {SOCK_COMMON: _SOCK_NAMES,
            BTF_SOCK_COMMON: _SOCK_NAMES + ("ptr_", "trusted_ptr_"),
            SOCK_RELEASE: _SOCK_NAMES + ("ptr_", "trusted_ptr_")}

_LAYOUT = isa.BPF_SOCK_LAYOUT
# struct bpf_sock fields read at 1, 2 or 4 bytes (bpf_ctx_narrow_access_ok): those
# named at their start only, the address ranges anywhere inside
_NARROW_AT = {_LAYOUT[f][0] for f in ("state", "family", "type", "protocol", "src_port",
                                      "rx_queue_mapping")}
_NARROW_IN = [(_LAYOUT[f][0], _LAYOUT[f][0] + _LAYOUT[f][1])
              for f in ("src_ip4", "src_ip6", "dst_ip4", "dst_ip6")]
_DST_PORT = _LAYOUT["dst_port"][0]
_DST_IP4 = _LAYOUT["dst_ip4"][0]
_COMMON_HIDDEN = (_LAYOUT["type"][0], _LAYOUT["priority"][0] + 4)   # type..priority


def _narrow(size: int, field_size: int) -> bool:
    return size <= field_size and size & (size - 1) == 0


def sock_field_ok(off: int, size: int) -> bool:
    """bpf_sock_is_valid_access for a read."""
    if off < 0 or off >= isa.SIZEOF_BPF_SOCK or off % size:
        return False
    if off in _NARROW_AT or any(lo <= off < hi for lo, hi in _NARROW_IN):
        return _narrow(size, 4)
    if _DST_PORT <= off < _DST_PORT + 4:
        if off >= _DST_PORT + 2:
            return False
        return _narrow(size, 4 if size == 4 else 2)
    return size == 4


def sock_common_field_ok(off: int, size: int) -> bool:
    """bpf_sock_common_is_valid_access: struct bpf_sock less type..priority."""
    if _COMMON_HIDDEN[0] <= off < _COMMON_HIDDEN[1]:
        return False
    return sock_field_ok(off, size)


def tcp_sock_field_ok(off: int, size: int) -> bool:
    """bpf_tcp_sock_is_valid_access."""
    if off < 0 or off >= isa.SIZEOF_BPF_TCP_SOCK or off % size:
        return False
    return size == (8 if off in isa.BPF_TCP_SOCK_U64.values() else 4)


def xdp_sock_field_ok(off: int, size: int) -> bool:
    """bpf_xdp_sock_is_valid_access: struct bpf_xdp_sock is one u32, queue_id."""
    return off == 0 and size == 4


_FIELD_OK = {PTR_TO_SOCK_COMMON: sock_common_field_ok, PTR_TO_SOCKET: sock_field_ok,
             PTR_TO_TCP_SOCK: tcp_sock_field_ok, PTR_TO_XDP_SOCK: xdp_sock_field_ok}


def load(v, pc: int, regno: int, reg: Reg, off: int, size: int, write: bool) -> Reg:
    """check_mem_access through a socket pointer: no writes, then the type's field
    rules (check_sock_access; a misaligned read is one of their refusals); the value
    read is an unknown scalar."""
    t = reg.type
    if write:
        v.refuse(pc, f"R{regno} cannot write into {type_str(t)}")
    if reg.smin < 0:
        v.refuse(pc, f"R{regno} min value is negative, either use unsigned index or do a "
                     f"if (index >=0) check.")
    if not _FIELD_OK[t](off + reg.off, size):
        v.refuse(pc, f"R{regno} invalid {type_str(t)} access off={off + reg.off} size={size}")
    return scalar()


def check_arg(v, st, pc: int, regno: int, reg: Reg, kind: str, meta: dict) -> None:
    """check_func_arg for the socket argument kinds: the register's type among the
    kind's compatible ones, and for a release the reference it holds."""
    allowed = SOCK_TYPES if kind == SOCK_COMMON else SOCK_TYPES + (PTR_TO_BTF_ID,)
    if reg.type not in allowed:
        v.refuse(pc, f"R{regno} type={type_str(reg.type)} expected={', '.join(EXPECTED[kind])}")
    if reg.type == PTR_TO_BTF_ID and not holds_struct(reg.map, reg.off, "sock_common"):
        v.refuse(pc, f"R{regno} is of type {reg.map.name} but sock_common is expected")
    if kind == SOCK_RELEASE:
        if not reg.ref:
            v.refuse(pc, f"R{regno} must be referenced when passed to release function")
        meta["release"] = reg.ref
    if reg.ref:
        meta["ref"] = reg.ref
    v.one_ref_arg(pc, regno, reg, meta)


def holds_struct(struct, off: int, name: str) -> bool:
    """btf_struct_ids_match for ``struct name``: the struct at ``off`` of ``struct``, or
    a struct nested there (btf_struct_walk's first-member descent), is it."""
    t = struct
    while True:
        if t.name == name and off == 0:
            return True
        for m in t.members:
            mt = t.btf.types[m.type_id].resolve()
            moff = m.bit_offset // 8
            if mt.kind in (Kind.STRUCT, Kind.UNION) and moff <= off < moff + mt.byte_size:
                t, off = mt, off - moff
                break
        else:
            return False


def returned(v, st, pc: int, kind: str, meta: dict) -> Reg:
    """R0 after a socket helper: a pointer that may be NULL, with a fresh id for its
    NULL check; a lookup acquires a reference (the id is then the reference's), a cast
    carries the reference of its argument so that releasing either releases both."""
    r = Reg(RET_KINDS[kind] | MAYBE_NULL)
    r.mark_known(0)
    r.id = v.new_id()
    if kind in BTF_CASTS:
        name, carries = BTF_CASTS[kind]
        r.map = target_btf().by_name(name, Kind.STRUCT)[0]
        r.ref = meta.get("ref", 0) if carries else 0
        return r
    if kind in (SOCKET_ACQUIRED, SOCK_COMMON_ACQUIRED):
        r.id = r.ref = v.new_id()
        st.refs[r.ref] = pc
    elif kind in (SOCKET_CAST, TCP_SOCK_CAST):
        r.ref = meta.get("ref", 0)
    return r
