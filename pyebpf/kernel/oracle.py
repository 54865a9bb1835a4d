"""The running kernel as an oracle: programs loaded with BPF_PROG_LOAD and run with
BPF_PROG_TEST_RUN, maps created with BPF_MAP_CREATE, 64-bit results of context-free code.

Every call into the kernel goes through :data:`pyebpf.kernel.sysbpf.calls`.
"""
from __future__ import annotations

import errno as _errno
import struct
import weakref
from dataclasses import dataclass

from .. import isa
from ..errors import KernelError
from . import sysbpf
from .sysbpf import errname as _errname

# Default data_out capacity, len(data) + 65 KiB: skb growth helpers stop at SKB_MAX_ALLOC
# (16064 bytes measured on 6.18 x86_64) or at most MTU + header, and socket filters get 14
# zero bytes in front, so ENOSPC (which loses the ctx) stays out of reach.
_DATA_OUT_SLACK = 65536 + 1024
_DATA_OUT_CAP = 16 << 20


def _field_format(name: str) -> str:
    size = isa.SK_BUFF_LAYOUT[name][1]
    return {4: "<I", 8: "<Q"}.get(size, f"<{size // 4}I")


# The __sk_buff fields test_run exchanges: name -> (offset, struct format).
_SKB_FIELDS = {name: (isa.SK_BUFF_LAYOUT[name][0], _field_format(name))
               for name in isa.TEST_RUN_SK_BUFF_FIELDS}
_HASH_MAPS = frozenset({isa.MapType.BPF_MAP_TYPE_HASH, isa.MapType.BPF_MAP_TYPE_PERCPU_HASH,
                        isa.MapType.BPF_MAP_TYPE_LRU_HASH,
                        isa.MapType.BPF_MAP_TYPE_LRU_PERCPU_HASH,
                        isa.MapType.BPF_MAP_TYPE_HASH_OF_MAPS})
_PERCPU_MAPS = frozenset({isa.MapType.BPF_MAP_TYPE_PERCPU_HASH,
                          isa.MapType.BPF_MAP_TYPE_PERCPU_ARRAY,
                          isa.MapType.BPF_MAP_TYPE_LRU_PERCPU_HASH,
                          isa.MapType.BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE})


def _close(fd: int) -> None:
    sysbpf.calls.close(fd)


def possible_cpus() -> int:
    """The kernel's number of possible CPUs (the slots of a per-CPU map's value)."""
    return sysbpf.calls.possible_cpus()


def _enum(kind, value, what: str):
    if isinstance(value, str):
        prefix = "BPF_PROG_TYPE_" if kind is isa.ProgType else "BPF_MAP_TYPE_"
        try:
            return kind[prefix + value.upper()]
        except KeyError:
            raise ValueError(f"unknown {what} {value!r}") from None
    return int(value)


# --- availability ------------------------------------------------------------------------
_available: tuple[bool, str] | None = None
_available_with = None          # the sysbpf.calls it was computed with


def available() -> tuple[bool, str]:
    """(True, "") when bpf(2) can load and test-run a trivial SCHED_CLS program here,
    else (False, reason).  Computed once (again when ``sysbpf.calls`` is replaced).

    The probe is a tc program, not a socket filter: with
    ``kernel.unprivileged_bpf_disabled`` at 0 any user may load a socket filter, but a
    tc program, an LPM trie or a map-in-map needs CAP_BPF and CAP_NET_ADMIN
    (``bpf_prog_load`` and ``map_create`` in kernel/bpf/syscall.c), and the oracle asks
    for all of them."""
    global _available, _available_with
    if _available is None or _available_with is not sysbpf.calls:
        _available_with = sysbpf.calls
        reason = sysbpf.setup()
        if not reason:
            trivial = b"".join(i.pack() for op in ("MOV64_K", "EXIT")
                              for i in isa.encode(isa.OPS_BY_NAME[op]))
            try:
                with KernelProgram(trivial, isa.ProgType.BPF_PROG_TYPE_SCHED_CLS,
                                   log_level=0) as prog:
                    prog.test_run(_DUMMY_FRAME)
            except KernelError as exc:
                reason = f"bpf(2) does not work here: {exc}"
                if exc.errno == _errno.EPERM:
                    reason += " (needs root, or CAP_BPF and CAP_NET_ADMIN)"
        _available = (not reason, reason)
    return _available


# --- programs ------------------------------------------------------------------------------
@dataclass(frozen=True)
class KernelRunResult:
    """What one BPF_PROG_TEST_RUN reported.

    ``retval`` is the kernel's u32 (low half of r0); ``data`` the packet after the run
    (SOCKET_FILTER: 14 zero bytes, then the L3 packet); ``ctx`` the 192-byte ctx_out and
    ``skb`` its exported fields, both None when the run had no ctx; ``duration`` ns per run.
    """
    retval: int
    data: bytes
    ctx: bytes | None
    skb: dict | None
    duration: int

    @property
    def retval_signed(self) -> int:
        return self.retval - (1 << 32) if self.retval & 0x80000000 else self.retval


def _ctx_bytes(ctx: dict) -> bytes:
    unknown = sorted(set(ctx) - set(_SKB_FIELDS))
    if unknown:
        raise ValueError(f"unknown __sk_buff field(s) {', '.join(map(repr, unknown))} in ctx; "
                         f"test_run accepts only {', '.join(_SKB_FIELDS)}")
    buf = bytearray(isa.SIZEOF_SK_BUFF)
    for name, value in ctx.items():
        off, fmt = _SKB_FIELDS[name]
        values = list(value) if name == "cb" else [value]
        if name == "cb" and len(values) > 5:
            raise ValueError(f"ctx field 'cb' has {len(values)} entries, __sk_buff has 5")
        bits = 64 if fmt.endswith("Q") else 32
        for i, v in enumerate(values):
            if not isinstance(v, int) or not -(1 << (bits - 1)) <= v < (1 << bits):
                raise ValueError(f"ctx field {name!r}{f'[{i}]' if name == 'cb' else ''} = "
                                 f"{v!r} does not fit in {bits} bits")
            struct.pack_into("<Q" if bits == 64 else "<I", buf, off + 4 * i,
                             v & ((1 << bits) - 1))
    return bytes(buf)


def _skb_fields(ctx_out: bytes) -> dict:
    out = {}
    for name, (off, fmt) in _SKB_FIELDS.items():
        vals = struct.unpack_from(fmt, ctx_out, off)
        out[name] = list(vals) if name == "cb" else vals[0]
    return out


def _meaningful_last_line(log: str) -> str:
    # The verifier's reason is the last line before its statistics trailer.
    for line in reversed(log.splitlines()):
        line = line.strip()
        if line and not line.startswith(("processed ", "verification time", "stack depth",
                                         "Validating ", "Func#", "func#")):
            return line
    return ""


class _Owned:
    """Holds an fd the kernel gave: closed by close(), at the end of a ``with`` block,
    or when the object is garbage-collected."""
    fd = -1

    def _own(self, fd: int) -> None:
        self.fd = fd
        self._finalizer = weakref.finalize(self, _close, fd)

    def close(self) -> None:
        if self.fd >= 0:
            self._finalizer()
            self.fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class KernelProgram(_Owned):
    """A program loaded into the kernel with BPF_PROG_LOAD.

    ``insns`` are raw instruction bytes (or a sequence of :class:`isa.Insn`); ``prog_type`` a
    :class:`isa.ProgType`, an int or ``"socket_filter"``/``"sched_cls"``/``"sched_act"``.
    With ``log_level`` 1 or 2 the verifier log of a successful load is kept in
    ``verifier_log``; with 0 no log is kept, and a refused load is retried at level 1 so
    that the error still carries the reason.  A refusal raises :class:`KernelError` with
    the kernel's errno, the verifier's reason in the message and the whole log in ``.log``.
    Map fds go into ``lddw`` slots with ``src = isa.BPF_PSEUDO_MAP_FD``.  ``btf``,
    ``func_info`` and ``line_info`` are the program's BTF and its ``.BTF.ext`` records,
    as libbpf passes them; ``prog_flags`` the load's flags (BPF_F_SLEEPABLE for a
    syscall program that calls a sleepable kfunc).
    """

    def __init__(self, insns, prog_type=isa.ProgType.BPF_PROG_TYPE_SOCKET_FILTER,
                 license: str = "GPL", log_level: int = 1, btf: bytes | None = None,
                 func_info: bytes = b"", line_info: bytes = b"", prog_flags: int = 0):
        if not isinstance(insns, (bytes, bytearray, memoryview)):
            insns = b"".join(i.pack() for i in insns)
        insns = bytes(insns)
        if not insns or len(insns) % isa.INSN_SIZE:
            raise ValueError(f"program of {len(insns)} bytes: need a non-zero multiple of "
                             f"{isa.INSN_SIZE}")
        if log_level not in (0, 1, 2):
            raise ValueError(f"log_level {log_level!r}: expected 0, 1 or 2")
        self.fd = -1
        self.prog_type = _enum(isa.ProgType, prog_type, "program type")
        self.verifier_log = ""
        lic = license.encode() + b"\0"
        flags = {"prog_flags": prog_flags} if prog_flags else {}
        fd, err, log = sysbpf.calls.prog_load(self.prog_type, insns, lic, log_level, btf,
                                              func_info, line_info, **flags)
        if fd < 0 and log_level == 0:
            # only to learn why
            fd, err, log = sysbpf.calls.prog_load(self.prog_type, insns, lic, 1, btf,
                                                  func_info, line_info, **flags)
            if fd >= 0:  # accepted this time: keep it rather than fail oddly
                err = 0
        if fd < 0:
            reason = _meaningful_last_line(log)
            msg = (f"kernel verifier refused the program: {reason}" if reason else
                   f"kernel refused to load the program ({self._describe(insns)}): "
                   f"{_errname(err)}, no verifier log")
            raise KernelError(err, msg, log)
        self.verifier_log = log if log_level else ""
        self._own(fd)

    def _describe(self, insns: bytes) -> str:
        try:
            name = isa.ProgType(self.prog_type).name
        except ValueError:
            name = f"prog_type {self.prog_type}"
        return f"{name}, {len(insns) // isa.INSN_SIZE} insns"

    def test_run(self, data: bytes, ctx: bytes | dict | None = None, repeat: int = 1,
                 flags: int = 0, data_out_size: int | None = None) -> KernelRunResult:
        """Run the program ``repeat`` times on one skb made from ``data`` (BPF_PROG_TEST_RUN).

        ``ctx`` is the 192-byte ``__sk_buff`` to start from, as bytes or as a dict of the
        exported field names (mark, priority, ingress_ifindex, ifindex, cb, tstamp, wire_len,
        gso_segs, gso_size, hwtstamp); ``ctx={}`` gets ``.skb`` back with zero input (the
        kernel then sets wire_len to len, whereas ``ctx=None`` leaves it 0).  A failed run
        raises :class:`KernelError` whose ``.result`` is what the kernel still reported: for
        ENOSPC (data_out too small) retval, duration and the truncated data, without ctx; for
        EBADMSG (``BPF_F_TEST_SKB_CHECKSUM_COMPLETE`` found skb->csum wrong) None, because
        the kernel then writes nothing back at all.  ``data_out_size`` is the capacity for
        the packet after the run (default: room for any growth; 0: do not copy it out).
        """
        if self.fd < 0:
            raise ValueError("test_run on a closed KernelProgram")
        data = bytes(data)
        if isinstance(ctx, dict):
            ctx = _ctx_bytes(ctx)
        elif ctx is not None:
            ctx = bytes(ctx)
            if not ctx:
                raise ValueError("empty ctx: pass None for no context")
        out_size = (min(len(data) + _DATA_OUT_SLACK, _DATA_OUT_CAP) if data_out_size is None
                    else max(data_out_size, 0))
        ctx_out_size = max(len(ctx), isa.SIZEOF_SK_BUFF) if ctx is not None else 0
        raw = sysbpf.calls.prog_test_run(self.fd, data, ctx, out_size, ctx_out_size, repeat,
                                         flags)
        err, retval, size_out = raw.err, raw.retval, raw.size_out
        if err and err not in (_errno.EBADMSG, _errno.ENOSPC):
            hint = ""
            if err == _errno.EINVAL:
                hint = ("; skb programs need 14..3712 bytes of data (IPv4 frames 34+, IPv6 "
                        "54+), only exported ctx fields non-zero, flags 0 or "
                        "BPF_F_TEST_SKB_CHECKSUM_COMPLETE")
            raise KernelError(err, f"BPF_PROG_TEST_RUN of prog fd {self.fd} on "
                                   f"{len(data)} bytes failed: {_errname(err)}{hint}")
        if err == _errno.EBADMSG:
            # The kernel bails out before writing anything back (verified on 6.18: retval,
            # data_size_out, duration, data_out and ctx_out stay untouched), so there is no
            # result to attach; run again without the flag to see retval and data.
            exc = KernelError(err, f"BPF_PROG_TEST_RUN of prog fd {self.fd}: the packet's "
                                   f"checksum no longer matches skb->csum after the run "
                                   f"(BPF_F_TEST_SKB_CHECKSUM_COMPLETE): {_errname(err)}; "
                                   f"the kernel reports no retval or data for such a run")
            exc.result = None
            raise exc
        ctx_out = raw.ctx
        result = KernelRunResult(
            retval, raw.data, ctx_out,
            _skb_fields(ctx_out) if ctx_out is not None and len(ctx_out) >= isa.SIZEOF_SK_BUFF
            else None, raw.duration)
        if err:  # ENOSPC
            exc = KernelError(err, f"BPF_PROG_TEST_RUN of prog fd {self.fd}: the packet grew to "
                                   f"{size_out} bytes, beyond data_out_size {out_size}: "
                                   f"{_errname(err)}; retval {retval:#x}")
            exc.result = result
            raise exc
        return result

    def read_stream(self, stream, size: int = isa.BPF_STREAM_MAX_CAPACITY) -> bytes:
        """Read and consume up to ``size`` bytes of the program's BPF stream ``stream``
        (1 or ``"stdout"``, 2 or ``"stderr"``; another number is passed on as it is) with
        BPF_PROG_STREAM_READ_BY_FD, as ``bpftool prog tracelog`` does; a refusal raises
        :class:`KernelError` with the kernel's errno (ENOENT for a stream id it has no
        stream for)."""
        if self.fd < 0:
            raise ValueError("read_stream on a closed KernelProgram")
        sid = {"stdout": isa.BPF_STDOUT, "stderr": isa.BPF_STDERR}.get(stream, stream)
        err, data = sysbpf.calls.prog_stream_read(self.fd, sid, size)
        if err:
            raise KernelError(err, f"BPF_PROG_STREAM_READ_BY_FD of prog fd {self.fd}, "
                                   f"stream {stream!r}: {_errname(err)}")
        return data

    def __repr__(self) -> str:
        return f"<KernelProgram fd={self.fd} prog_type={self.prog_type}>"


# --- maps ----------------------------------------------------------------------------------
def local_storage_btf(value_size: int) -> tuple[bytes, int, int]:
    """The BTF a local storage map is created with (bpf_local_storage_map_alloc_check
    wants key and value types; bpf_local_storage_map_check_btf an ``int`` key), as
    libbpf passes it for ``__type(key, int)`` and a value of ``value_size`` bytes:
    (blob, key type id, value type id)."""
    from ..btf.types import INT_SIGNED, Kind, Type
    from ..btf.writer import encode
    types = [Type(1, Kind.INT, "int", 0, size=4, encoding=INT_SIGNED, nr_bits=32),
             Type(2, Kind.INT, "unsigned char", 0, size=1, nr_bits=8),
             Type(3, Kind.ARRAY, "", 0, type_id=2, index_type_id=1, nelems=value_size)]
    return encode(types), 1, 3


class KernelMap(_Owned):
    """A map created with BPF_MAP_CREATE (``btf``: with the BTF blob and the key's and
    value's type ids, as a map whose value holds a bpf_spin_lock or bpf_timer needs).

    Keys are ``key_size`` bytes; values ``value_size`` bytes, or for per-CPU maps
    ``n_possible_cpus * round_up(value_size, 8)`` bytes (one slot per CPU, as the syscall
    interface sees them; see ``value_buffer_size``).  Every kernel refusal raises
    :class:`KernelError` with the kernel's errno; a lookup or next_key that finds nothing
    returns None.
    """

    def __init__(self, map_type, key_size: int, value_size: int, max_entries: int,
                 flags: int = 0, name: str = "", inner_map_fd: int = 0, map_extra: int = 0,
                 btf: tuple | None = None):
        self.fd = -1
        self.map_type = _enum(isa.MapType, map_type, "map type")
        self.key_size, self.value_size, self.max_entries = key_size, value_size, max_entries
        self.flags, self.name = flags, name
        self.value_buffer_size = (possible_cpus() * ((value_size + 7) & ~7)
                                  if self.map_type in _PERCPU_MAPS else value_size)
        extra = {}
        if self.map_type in (isa.MapType.BPF_MAP_TYPE_SK_STORAGE,
                             isa.MapType.BPF_MAP_TYPE_INODE_STORAGE,
                             isa.MapType.BPF_MAP_TYPE_TASK_STORAGE,
                             isa.MapType.BPF_MAP_TYPE_CGRP_STORAGE) and btf is None:
            extra["btf"] = local_storage_btf(value_size)
        elif btf is not None:
            extra["btf"] = btf      # (blob, key type id, value type id)
        fd, err = sysbpf.calls.map_create(self.map_type, key_size, value_size, max_entries,
                                          flags, inner_map_fd, name.encode(), map_extra,
                                          **extra)
        if fd < 0:
            raise KernelError(err, f"BPF_MAP_CREATE {self._kind()} (key {key_size}, value "
                                   f"{value_size}, max_entries {max_entries}, flags "
                                   f"{flags:#x}) failed: {_errname(err)}")
        self._own(fd)

    def _kind(self) -> str:
        try:
            return isa.MapType(self.map_type).name[len("BPF_MAP_TYPE_"):].lower()
        except ValueError:
            return f"map_type {self.map_type}"

    def _key(self, key) -> bytes | None:
        key = bytes(key)
        if not self.key_size and not key:
            return None         # a keyless map (queue, stack): the kernel wants no pointer
        # The kernel reads exactly key_size bytes from our pointer: never pass a short one.
        if len(key) != self.key_size:
            raise ValueError(f"key of {len(key)} bytes for a {self._kind()} map with "
                             f"key_size {self.key_size}")
        return key

    def _op(self, cmd, what: str, key: bytes | None, value: bytes | None = None,
            flags: int = 0, out_size: int = 0) -> tuple[int, bytes]:
        if self.fd < 0:
            raise ValueError(f"{what} on a closed KernelMap")
        return sysbpf.calls.map_elem(cmd, self.fd, key, value, flags, out_size)

    def _fail(self, err: int, what: str, key: bytes | None, flags: int | None = None):
        where = f"key {key.hex()}" if key is not None else "no key"
        if flags is not None:
            where += f", flags {flags:#x}"
        raise KernelError(err, f"map {what} on {self._kind()} map fd {self.fd} ({where}): "
                               f"{_errname(err)}")

    def lookup(self, key, flags: int = 0) -> bytes | None:
        """The value under ``key``, or None (``flags``: BPF_F_LOCK)."""
        key = self._key(key)
        err, value = self._op(isa.BpfCmd.BPF_MAP_LOOKUP_ELEM, "lookup", key,
                              flags=flags, out_size=self.value_buffer_size)
        if err == _errno.ENOENT:
            return None
        if err:
            self._fail(err, "lookup", key, flags or None)
        return value

    def maybe_contains(self, value) -> bool:
        """A bloom filter's lookup: the value asked about goes in; ENOENT is False."""
        err, _ = self._op(isa.BpfCmd.BPF_MAP_LOOKUP_ELEM, "lookup", None, bytearray(value))
        if err and err != _errno.ENOENT:
            self._fail(err, "lookup", None)
        return not err

    def lookup_and_delete(self, key=b"", flags: int = 0) -> bytes | None:
        """BPF_MAP_LOOKUP_AND_DELETE_ELEM (queues and stacks: pop, no key); None when
        there is nothing to take."""
        key = self._key(key)
        err, value = self._op(isa.BpfCmd.BPF_MAP_LOOKUP_AND_DELETE_ELEM, "lookup_and_delete",
                              key, flags=flags, out_size=self.value_buffer_size)
        if err == _errno.ENOENT:
            return None
        if err:
            self._fail(err, "lookup_and_delete", key, flags)
        return value

    def freeze(self) -> None:
        """BPF_MAP_FREEZE: no more writes from user space (programs: as the flags say)."""
        err, _ = self._op(isa.BpfCmd.BPF_MAP_FREEZE, "freeze", None)
        if err:
            self._fail(err, "freeze", None)

    def update(self, key, value, flags: int = 0) -> None:
        key, value = self._key(key), bytes(value)
        if len(value) != self.value_buffer_size:
            raise ValueError(f"value of {len(value)} bytes for a {self._kind()} map whose "
                             f"values are {self.value_buffer_size} bytes")
        err, _ = self._op(isa.BpfCmd.BPF_MAP_UPDATE_ELEM, "update", key, value, flags)
        if err:
            self._fail(err, "update", key, flags)

    def delete(self, key) -> None:
        key = self._key(key)
        err, _ = self._op(isa.BpfCmd.BPF_MAP_DELETE_ELEM, "delete", key)
        if err:
            self._fail(err, "delete", key)

    # --- batch commands, with pyebpf.Map's signatures and results ---
    def lookup_batch(self, count: int, cursor=None, elem_flags: int = 0, flags: int = 0):
        """BPF_MAP_LOOKUP_BATCH: (items, the cursor the kernel wrote or None, done: its
        ENOENT); other refusals raise KernelError."""
        return self._lookup_batch(isa.BpfCmd.BPF_MAP_LOOKUP_BATCH, count, cursor,
                                  elem_flags, flags)

    def lookup_and_delete_batch(self, count: int, cursor=None, elem_flags: int = 0,
                                flags: int = 0):
        """BPF_MAP_LOOKUP_AND_DELETE_BATCH, as :meth:`lookup_batch`."""
        return self._lookup_batch(isa.BpfCmd.BPF_MAP_LOOKUP_AND_DELETE_BATCH, count, cursor,
                                  elem_flags, flags)

    def _batch_size(self) -> int:
        # hash maps' cursor is a u32 bucket number, the generic one the last key
        return 4 if self.map_type in _HASH_MAPS else self.key_size

    def _lookup_batch(self, cmd, count, cursor, elem_flags, flags):
        ks, vs, bs = self.key_size, self.value_buffer_size, self._batch_size()
        err, got, out, keys, values = sysbpf.calls.map_batch(
            cmd, self.fd, None if cursor is None else bytes(cursor), bytes(count * ks),
            bytes(count * vs), count, elem_flags, flags, bs)
        if err and err != _errno.ENOENT:
            self._batch_fail(err, cmd, got)
        items = [(keys[i * ks:(i + 1) * ks], values[i * vs:(i + 1) * vs]) for i in range(got)]
        return items, (None if out == b"\xff" * bs else out), err == _errno.ENOENT

    def update_batch(self, items, elem_flags: int = 0, flags: int = 0) -> int:
        """BPF_MAP_UPDATE_BATCH: the number updated; a refusal raises KernelError with
        ``.count``, the count the kernel left: the number done before the refusal, or the
        count given when it refused before starting (flags)."""
        items = list(items)
        return self._change_batch(isa.BpfCmd.BPF_MAP_UPDATE_BATCH, [k for k, _ in items],
                                  b"".join(bytes(v) for _, v in items), elem_flags, flags)

    def delete_batch(self, keys, elem_flags: int = 0, flags: int = 0) -> int:
        """BPF_MAP_DELETE_BATCH, as :meth:`update_batch`."""
        return self._change_batch(isa.BpfCmd.BPF_MAP_DELETE_BATCH, list(keys), b"",
                                  elem_flags, flags)

    def _change_batch(self, cmd, keys, values, elem_flags, flags) -> int:
        err, got, _, _, _ = sysbpf.calls.map_batch(
            cmd, self.fd, None, b"".join(bytes(k) for k in keys), values, len(keys),
            elem_flags, flags, 0)
        if err:
            self._batch_fail(err, cmd, got)
        return got

    def _batch_fail(self, err, cmd, count):
        exc = KernelError(err, f"{isa.BpfCmd(cmd).name} on {self._kind()} map fd {self.fd}: "
                               f"{_errname(err)} (count {count})")
        exc.count = count
        raise exc

    def next_key(self, key=None) -> bytes | None:
        """The key after ``key`` (the first key for None); None after the last one."""
        key = self._key(key) if key is not None else None
        err, nxt = self._op(isa.BpfCmd.BPF_MAP_GET_NEXT_KEY, "next_key", key,
                            out_size=max(self.key_size, 1))
        if err == _errno.ENOENT:
            return None
        if err:
            self._fail(err, "next_key", key)
        return nxt[:self.key_size]

    def keys(self) -> list[bytes]:
        """All keys in the kernel's iteration order."""
        out, key = [], self.next_key()
        while key is not None:
            out.append(key)
            key = self.next_key(key)
        return out

    key_type = value_type = None        # BTF types (pyebpf.btf), set by load_object

    def decode_key(self, key):
        """``key`` as named fields, per the map's BTF key type (maps of ELF objects)."""
        from ..btf import decode
        return decode(self.key_type, key, f"map {self.name or self.fd} key")

    def decode_value(self, value):
        """``value`` as named fields, per the map's BTF value type (maps of ELF objects)."""
        from ..btf import decode
        return decode(self.value_type, value, f"map {self.name or self.fd} value")

    def __repr__(self) -> str:
        return f"<KernelMap fd={self.fd} {self._kind()} key={self.key_size} " \
               f"value={self.value_size} max_entries={self.max_entries}>"


# --- 64-bit results ------------------------------------------------------------------------
# 64 bytes, EtherType 0x88b5 (IEEE local experimental): not IP, so the kernel needs only the
# 14-byte Ethernet header and parses nothing else.
_DUMMY_FRAME = b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x01" + b"\x88\xb5" + bytes(50)
_OP = isa.OPS_BY_NAME


def run_raw64(insns: bytes) -> int:
    """The full 64-bit r0 (unsigned) of a program that does not use its context.

    test_run only reports r0's low 32 bits, so the program is loaded twice as SOCKET_FILTER
    and run on a 64-byte non-IP frame: once as given (low half) and once with every
    ``exit`` turned into a jump to an appended ``r0 >>= 32; exit`` (high half).  Rewriting
    exits is only right in a single-function program, so bpf-to-bpf calls and callback
    references (``lddw`` of ``BPF_PSEUDO_FUNC``) are refused with ValueError.
    """
    slots = isa.unpack_program(bytes(insns))
    out, tail, i = [], len(slots), 0
    while i < len(slots):
        s = slots[i]
        op = isa.lookup(s)
        if op is not None and (op.form is isa.F_CALL_LOCAL or
                               (op.form is isa.F_LDDW and s.src == isa.BPF_PSEUDO_FUNC)):
            raise ValueError(f"pc {i}: run_raw64 cannot rewrite a program with bpf-to-bpf "
                             f"calls or callbacks")
        if op is not None and op.form is isa.F_LDDW:  # two slots; the second is data
            out += slots[i:i + 2]
            i += 2
            continue
        if op is not None and op.form is isa.F_EXIT:
            dist = tail - i - 1
            s = (isa.encode(_OP["JA"], off=dist) if dist < 0x8000 else
                 isa.encode(_OP["JA32"], imm=dist))[0]   # gotol: 32-bit reach
        out.append(s)
        i += 1
    out += isa.encode(_OP["RSH64_K"], 0, imm=32) + isa.encode(_OP["EXIT"])
    with KernelProgram(bytes(insns)) as lo_prog:
        lo = lo_prog.test_run(_DUMMY_FRAME).retval
    with KernelProgram(b"".join(s.pack() for s in out)) as hi_prog:
        hi = hi_prog.test_run(_DUMMY_FRAME).retval
    return (hi << 32) | lo


