"""``pyebpf.bpf(cmd, attr)``: the bpf(2) command set over pyebpf's handles.

``cmd`` is a :class:`pyebpf.isa.BpfCmd` (or its name, with or without ``BPF_``);
``attr`` a dict of ``union bpf_attr`` field names.  Pointers become Python objects:
``key``, ``value`` (update), ``insns`` and ``license`` are bytes; the buffers the
kernel writes through — ``value`` (lookup), ``next_key``, ``log_buf`` — are
bytearrays the command fills.  ``map_fd``/``bpf_fd`` are the handles pyebpf gives maps
and programs.  ``pathname`` is relative to :func:`pyebpf.pinning.pin_root` (which
plays the bpffs mount) or an absolute path under it.

Return convention: what bpf(2) returns on success (a new handle for MAP_CREATE,
PROG_LOAD and OBJ_GET, else 0); a refusal raises :class:`pyebpf.errors.BpfError`
carrying the errno bpf(2) would set — Python's convention for a failed syscall, as
``os.open`` raises OSError.  See docs/pinning.md for the differences from the kernel.
"""
from __future__ import annotations

import errno
import os
import socket

from . import _core, isa, pinning
from .environment import TCP_ESTABLISHED, TCP_LISTEN
from .errors import BpfError, LoadError, MapError, PinError, VerifierError

C = isa.BpfCmd
_FIELDS = {
    C.BPF_MAP_CREATE: {"map_type", "key_size", "value_size", "max_entries", "map_flags",
                       "map_name", "map_extra"},
    C.BPF_MAP_LOOKUP_ELEM: {"map_fd", "key", "value", "flags"},
    C.BPF_MAP_UPDATE_ELEM: {"map_fd", "key", "value", "flags"},
    C.BPF_MAP_DELETE_ELEM: {"map_fd", "key", "flags"},
    C.BPF_MAP_GET_NEXT_KEY: {"map_fd", "key", "next_key"},
    C.BPF_MAP_LOOKUP_AND_DELETE_ELEM: {"map_fd", "key", "value", "flags"},
    **{c: {"map_fd", "in_batch", "out_batch", "keys", "values", "count", "elem_flags", "flags"}
       for c in (C.BPF_MAP_LOOKUP_BATCH, C.BPF_MAP_LOOKUP_AND_DELETE_BATCH,
                 C.BPF_MAP_UPDATE_BATCH, C.BPF_MAP_DELETE_BATCH)},
    C.BPF_PROG_LOAD: {"prog_type", "insns", "license", "log_level", "log_size", "log_buf",
                      "kern_version", "prog_name"},
    C.BPF_OBJ_PIN: {"pathname", "bpf_fd", "file_flags"},
    C.BPF_OBJ_GET: {"pathname", "bpf_fd", "file_flags"},
    C.BPF_PROG_STREAM_READ_BY_FD: {"stream_buf", "stream_buf_len", "stream_id", "prog_fd"},
    # BPF_OBJ_GET_NEXT_ID_LAST_FIELD is next_id (an output, written back into attr)
    C.BPF_PROG_GET_NEXT_ID: {"start_id", "next_id"},
    C.BPF_MAP_GET_NEXT_ID: {"start_id", "next_id"},
}
_GET_FLAGS = (0, 1 << 3, 1 << 4)   # 0, BPF_F_RDONLY, BPF_F_WRONLY (not enforced)
_SUPPORTED_PROGS = {isa.ProgType.BPF_PROG_TYPE_SOCKET_FILTER,
                    isa.ProgType.BPF_PROG_TYPE_SCHED_CLS, isa.ProgType.BPF_PROG_TYPE_SCHED_ACT}
_programs: dict = {}     # handle -> Program: a loaded program lives until close()


def _fail(code: int, cmd, message: str):
    raise BpfError(code, f"{cmd.name}: {message}: {isa.errno_name(code)}")


def _command(cmd):
    try:
        if isinstance(cmd, str):
            name = cmd.upper()
            return C[name if name.startswith("BPF_") else "BPF_" + name]
        return C(cmd)
    except (KeyError, ValueError):
        raise BpfError(errno.EINVAL, f"unknown bpf command {cmd!r}: EINVAL") from None


def _map(cmd, fd):
    m = _core.Map.from_fd(fd)
    if m is None:
        _fail(errno.EINVAL if fd in _programs else errno.EBADF, cmd, f"fd {fd} is not a map")
    return m


def _buffer(cmd, attr, field, size, out=False):
    buf = attr.get(field)
    if buf is None or len(buf) < size or (out and not isinstance(buf, (bytearray, memoryview))):
        what = "a writable buffer" if out else "bytes"
        _fail(errno.EFAULT, cmd, f"{field} must be {what} of at least {size} bytes")
    return buf


def _value_size(m):
    """The syscall's value layout: per-CPU maps one 8-byte-aligned slot per CPU."""
    return m.ncpu * ((m.value_size + 7) & ~7) if m.ncpu > 1 else m.value_size


def bpf(cmd, attr=None) -> int:
    """Run one bpf(2) command; see the module docstring."""
    cmd, given, attr = _command(cmd), attr, dict(attr or {})
    if cmd not in _FIELDS:
        _fail(errno.EINVAL, cmd, "not supported by pyebpf")
    stray = [k for k, v in attr.items() if k not in _FIELDS[cmd] and v]
    if stray:
        _fail(errno.EINVAL, cmd, f"field(s) {', '.join(stray)} are not this command's")
    try:
        return _COMMANDS[cmd](cmd, attr)
    except (MapError, PinError) as exc:
        raise BpfError(exc.errno, f"{cmd.name}: {exc}") from None
    finally:
        for out in ("count", "next_id"):
            if out in attr and isinstance(given, dict):
                given[out] = attr[out]    # an output field, written back as the kernel does


def close(fd: int) -> None:
    """close(2) of a handle: a map or program stays alive while something uses it."""
    m = _core.Map.from_fd(fd)
    if m is not None:
        m.close()
    elif _programs.pop(fd, None) is None:
        raise BpfError(errno.EBADF, f"close: fd {fd} is not open: EBADF")


def _map_create(cmd, a):
    name = a.get("map_name") or ""
    return _core.Map.create(a.get("map_type", 0), a.get("key_size", 0), a.get("value_size", 0),
                            a.get("max_entries", 0), a.get("map_flags", 0),
                            name=name.decode() if isinstance(name, bytes) else name,
                            map_extra=a.get("map_extra", 0)).fd


def _lookup(cmd, a):
    m = _map(cmd, a.get("map_fd", 0))
    flags = a.get("flags", 0)
    # map_lookup_elem: only BPF_F_LOCK, and only for a value with a bpf_spin_lock
    if flags & ~isa.BPF_F_LOCK or (flags and m.spin_lock_off is None):
        _fail(errno.EINVAL, cmd, f"flags {flags:#x} (BPF_F_LOCK needs a bpf_spin_lock in "
                                 f"the value)")
    key = _key(cmd, a, m)
    if m.type == isa.MapType.BPF_MAP_TYPE_BLOOM_FILTER:
        # the value is the one asked about (map_lookup_elem copies it in first)
        if not m.maybe_contains(bytes(_buffer(cmd, a, "value", m.value_size)[:m.value_size])):
            _fail(errno.ENOENT, cmd, "the value is not in the bloom filter")
        return 0
    out = _buffer(cmd, a, "value", _value_size(m), out=True)
    _give(cmd, out, key, m.lookup(key, flags))
    return 0


def _lookup_and_delete(cmd, a):
    m = _map(cmd, a.get("map_fd", 0))
    key = _key(cmd, a, m)
    out = _buffer(cmd, a, "value", _value_size(m), out=True)
    _give(cmd, out, key, m.lookup_and_delete(key, a.get("flags", 0)))
    return 0


def _key(cmd, a, m):
    if not m.key_size:
        # queues and stacks have no key: a key pointer is EINVAL (__bpf_copy_key)
        if a.get("key") is not None:
            _fail(errno.EINVAL, cmd, f"map fd {m.fd} has no key (key_size 0): key must be None")
        return b""
    return bytes(_buffer(cmd, a, "key", m.key_size)[:m.key_size])


def _give(cmd, out, key, value):
    """Write what a lookup found into the caller's buffer (per-CPU: the syscall layout)."""
    if value is None:
        _fail(errno.ENOENT, cmd, f"key {key.hex()} is not in the map" if key else "empty")
    if isinstance(value, list):
        stride = (len(value[0]) + 7) & ~7
        value = b"".join(v.ljust(stride, b"\0") for v in value)
    out[:len(value)] = value


def _update(cmd, a):
    m = _map(cmd, a.get("map_fd", 0))
    key = _key(cmd, a, m)
    value = bytes(_buffer(cmd, a, "value", _value_size(m))[:_value_size(m)])
    if m.type in _SOCK_MAPS:
        m.update(key, _socket_cookie(cmd, int.from_bytes(value, "little")), a.get("flags", 0))
        return 0
    if m.ncpu > 1:
        stride = (m.value_size + 7) & ~7
        value = [value[c * stride:c * stride + m.value_size] for c in range(m.ncpu)]
    m.update(key, value, a.get("flags", 0))
    return 0


_SOCK_MAPS = (isa.MapType.BPF_MAP_TYPE_SOCKMAP, isa.MapType.BPF_MAP_TYPE_SOCKHASH)
_TCPF_ALLOWED = (1 << TCP_ESTABLISHED) | (1 << TCP_LISTEN)


def _socket_cookie(cmd, ufd: int) -> int:
    """sock_map_update_elem_sys: the socket whose fd a socket map's update names (a u32,
    or a u64 in a map of 8-byte values), as the cookie the modelled socket of the run's
    Environment is found by (its SO_COOKIE).  Refused as the kernel refuses it: an fd
    above S32_MAX (EINVAL), none open (EBADF), not a socket (ENOTSOCK), a socket a
    socket map cannot hold (EOPNOTSUPP: sock_map_sk_is_suitable, and
    sock_map_sk_state_allowed: TCP listening or established, UDP bound)."""
    if ufd > 0x7FFFFFFF:
        _fail(errno.EINVAL, cmd, f"socket fd {ufd} is above S32_MAX")
    try:
        sk = socket.socket(fileno=os.dup(ufd))
    except OSError as exc:
        _fail(exc.errno, cmd, f"fd {ufd} is not a socket")
    with sk:
        if sk.family not in (socket.AF_INET, socket.AF_INET6) or \
                sk.type not in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            _fail(errno.EOPNOTSUPP, cmd, f"socket fd {ufd} is neither TCP nor UDP (pyebpf "
                                         "models no other socket in a socket map)")
        if sk.type == socket.SOCK_STREAM:
            state = sk.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]
            if not (1 << state) & _TCPF_ALLOWED:
                _fail(errno.EOPNOTSUPP, cmd, f"TCP socket fd {ufd} is neither listening nor "
                                             "established")
        elif sk.getsockname()[1] == 0:
            _fail(errno.EOPNOTSUPP, cmd, f"UDP socket fd {ufd} is not bound")
        return int.from_bytes(sk.getsockopt(socket.SOL_SOCKET, isa.SO_COOKIE, 8), "little")


def _delete(cmd, a):
    m = _map(cmd, a.get("map_fd", 0))
    if a.get("flags"):
        _fail(errno.EINVAL, cmd, f"flags {a['flags']:#x}")
    m.delete(_key(cmd, a, m))
    return 0


def _next_key(cmd, a):
    m = _map(cmd, a.get("map_fd", 0))
    key = a.get("key")
    key = None if key is None else bytes(_buffer(cmd, a, "key", m.key_size)[:m.key_size])
    out = _buffer(cmd, a, "next_key", m.key_size, out=True)
    nxt = m.next_key(key)
    if nxt is None:
        _fail(errno.ENOENT, cmd, "no key after " + ("the last" if key else "none: map empty"))
    out[:m.key_size] = nxt
    return 0


def _lookup_batch(cmd, a):
    m = _map(cmd, a.get("map_fd", 0))
    count = a.get("count", 0)
    keys = _buffer(cmd, a, "keys", count * m.key_size, out=True) if count else None
    values = _buffer(cmd, a, "values", count * _value_size(m), out=True) if count else None
    cursor = a.get("in_batch")
    rc, items, out = m._lookup_batch(count, None if cursor is None else bytes(cursor),
                                     a.get("elem_flags", 0), a.get("flags", 0),
                                     cmd == C.BPF_MAP_LOOKUP_AND_DELETE_BATCH)
    if rc == isa.Errno.ENOTSUPP or (rc == errno.EINVAL and not items):
        _fail(rc, cmd, f"map fd {m.fd} ({m.type.name})")     # count left as it was
    a["count"] = len(items)
    vsize = _value_size(m)
    for i, (key, value) in enumerate(items):
        keys[i * m.key_size:(i + 1) * m.key_size] = key
        if isinstance(value, list):
            value = b"".join(v.ljust(vsize // m.ncpu, b"\0") for v in value)
        values[i * vsize:(i + 1) * vsize] = value
    if out is not None:
        _buffer(cmd, a, "out_batch", len(out), out=True)[:len(out)] = out
    if rc:
        _fail(rc, cmd, f"after {len(items)} element(s)")
    return 0


def _change_batch(cmd, a):
    m = _map(cmd, a.get("map_fd", 0))
    count = a.get("count", 0)
    keys = bytes(_buffer(cmd, a, "keys", count * m.key_size)) if count else b""
    keys = [keys[i * m.key_size:(i + 1) * m.key_size] for i in range(count)]
    try:
        if cmd == C.BPF_MAP_DELETE_BATCH:
            a["count"] = m.delete_batch(keys, a.get("elem_flags", 0), a.get("flags", 0))
        else:
            size = _value_size(m)
            raw = bytes(_buffer(cmd, a, "values", count * size)) if count else b""
            values = [raw[i * size:(i + 1) * size] for i in range(count)]
            if m.ncpu > 1:
                stride = size // m.ncpu
                values = [[v[c * stride:c * stride + m.value_size] for c in range(m.ncpu)]
                          for v in values]
            a["count"] = m.update_batch(zip(keys, values), a.get("elem_flags", 0),
                                        a.get("flags", 0))
    except MapError as exc:
        if exc.errno not in (errno.EINVAL, isa.Errno.ENOTSUPP) or exc.count:
            a["count"] = exc.count
        raise
    return 0


def _prog_load(cmd, a):
    kind = a.get("prog_type", 0)
    if kind not in {int(t) for t in _SUPPORTED_PROGS}:
        _fail(errno.EINVAL, cmd, f"prog_type {kind} is not supported by pyebpf")
    insns = bytes(a.get("insns") or b"")
    # the license string up to its NUL (bpf_prog_load); GPL when the caller gives none
    lic = a.get("license", "GPL")
    if not isinstance(lic, str):
        lic = bytes(lic).decode(errors="replace")
    lic = lic.split("\0", 1)[0]
    try:
        prog = _core.Program(insns, kind, license=lic)
    except LoadError as exc:
        log = a.get("log_buf")
        if isinstance(log, bytearray) and a.get("log_level"):
            text = str(exc).encode()[:max(len(log) - 1, 0)] + b"\0"
            log[:len(text)] = text
        code = exc.errno if isinstance(exc, VerifierError) else errno.EINVAL
        raise BpfError(code, f"{cmd.name}: {exc}") from None
    _programs[prog.fd] = prog
    return prog.fd


def _obj_pin(cmd, a):
    fd = a.get("bpf_fd", 0)
    obj = _core.Map.from_fd(fd)
    if obj is None:
        obj = _programs.get(fd, _core._PROG_HANDLES.get(fd))
    if obj is None:
        _fail(errno.EINVAL, cmd, f"fd {fd} is not a map or program")
    if a.get("file_flags"):
        _fail(errno.EINVAL, cmd, f"file_flags {a['file_flags']:#x}")
    obj.pin(_path(cmd, a))
    return 0


def _obj_get(cmd, a):
    if a.get("bpf_fd") or a.get("file_flags", 0) not in _GET_FLAGS:
        _fail(errno.EINVAL, cmd, "bpf_fd must be 0 and file_flags 0, BPF_F_RDONLY or "
                                 "BPF_F_WRONLY")
    path = _path(cmd, a)
    kind = pinning.load(path)[0]
    if kind == pinning.KIND_MAP:
        return pinning.get_map(path).fd
    prog = pinning.get_program(path)
    _programs[prog.fd] = prog
    return prog.fd


def _prog_stream_read(cmd, a):
    fd = a.get("prog_fd", 0)
    prog = _programs.get(fd, _core._PROG_HANDLES.get(fd))
    if prog is None:
        _fail(errno.EINVAL if _core.Map.from_fd(fd) is not None else errno.EBADF, cmd,
              f"fd {fd} is not a program")
    size = a.get("stream_buf_len", 0)
    buf = _buffer(cmd, a, "stream_buf", size, out=True) if size else None
    data = prog.read_stream(a.get("stream_id", 0), size)
    if buf is not None:
        buf[:len(data)] = data
    return len(data)


def _get_next_id(cmd, a):
    """bpf_obj_get_next_id: the next id in use above start_id, in ``next_id``; EINVAL for
    a start_id of INT_MAX or more, ENOENT past the last.  Ids are the process's
    (Program.id, and Map.id of the maps made without a machine)."""
    start = a.get("start_id", 0)
    if not 0 <= start < 0x7FFFFFFF:
        _fail(errno.EINVAL, cmd, f"start_id {start} is not below INT_MAX")
    nxt = _core._process_ids(cmd == C.BPF_PROG_GET_NEXT_ID).next_after(start)
    if not nxt:
        _fail(errno.ENOENT, cmd, f"no id above {start}")
    a["next_id"] = nxt
    return 0


def _path(cmd, a):
    path = a.get("pathname")
    if not path:
        _fail(errno.ENOENT, cmd, "empty pathname")
    return path.decode() if isinstance(path, bytes) else path


_COMMANDS = {
    C.BPF_MAP_CREATE: _map_create, C.BPF_MAP_LOOKUP_ELEM: _lookup,
    C.BPF_MAP_UPDATE_ELEM: _update, C.BPF_MAP_DELETE_ELEM: _delete,
    C.BPF_MAP_GET_NEXT_KEY: _next_key, C.BPF_PROG_LOAD: _prog_load,
    C.BPF_OBJ_PIN: _obj_pin, C.BPF_OBJ_GET: _obj_get,
    C.BPF_MAP_LOOKUP_AND_DELETE_ELEM: _lookup_and_delete,
    C.BPF_MAP_LOOKUP_BATCH: _lookup_batch, C.BPF_MAP_LOOKUP_AND_DELETE_BATCH: _lookup_batch,
    C.BPF_MAP_UPDATE_BATCH: _change_batch, C.BPF_MAP_DELETE_BATCH: _change_batch,
    C.BPF_PROG_STREAM_READ_BY_FD: _prog_stream_read,
    C.BPF_PROG_GET_NEXT_ID: _get_next_id, C.BPF_MAP_GET_NEXT_ID: _get_next_id,
}
