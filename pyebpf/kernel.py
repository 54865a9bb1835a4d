"""The running kernel as an oracle: load raw eBPF with bpf(2), run it with BPF_PROG_TEST_RUN.

Differential tests hold the engine against what this module gets from the kernel.  It needs
Linux (x86_64 or aarch64) and the right to call bpf(2) (root, or CAP_BPF + CAP_NET_ADMIN);
:func:`available` says whether that works here, and why not.  Pure Python (ctypes): it does
not need the compiled core.

Maps are referenced from programs the kernel's way: the caller creates a :class:`KernelMap`
and puts its ``fd`` into an ``lddw`` whose ``src`` is ``isa.BPF_PSEUDO_MAP_FD``; the kernel
resolves it at load time and keeps the map alive for as long as the program lives.

Attribute layouts follow ``union bpf_attr`` of 6.18 (little-endian); every attr is passed
as 144 zero-padded bytes, which the kernel accepts as long as the unknown tail is zero.
"""
from __future__ import annotations

import ctypes
import errno as _errno
import os
import platform
import struct
import weakref
from dataclasses import dataclass

from . import isa
from .errors import KernelError

__all__ = ["available", "KernelProgram", "KernelRunResult", "KernelMap", "run_raw64",
           "run", "KernelResult", "cross_check", "load_object", "KernelObject"]

_SYS_BPF = {"x86_64": 321, "amd64": 321, "aarch64": 280, "arm64": 280}
_ATTR_SIZE = 144
_SKB_SIZE = 192                    # sizeof(struct __sk_buff) on 6.18
_LOG_SIZE = 64 << 10               # first try; a longer log is fetched again at its true size
_LOG_MAX = (1 << 30) - 1           # the kernel's ceiling (UINT_MAX >> 2)
# Default data_out capacity, len(data) + 65 KiB: skb growth helpers stop at SKB_MAX_ALLOC
# (16064 bytes measured on 6.18 x86_64) or at most MTU + header, and socket filters get 14
# zero bytes in front, so ENOSPC (which loses the ctx) stays out of reach.
_DATA_OUT_SLACK = 65536 + 1024
_DATA_OUT_CAP = 16 << 20

# Exported __sk_buff fields (test-oracle.md §2-3): name -> (offset, struct format).
_SKB_FIELDS = {
    "mark": (8, "<I"), "priority": (32, "<I"), "ingress_ifindex": (36, "<I"),
    "ifindex": (40, "<I"), "cb": (48, "<5I"), "tstamp": (152, "<Q"), "wire_len": (160, "<I"),
    "gso_segs": (164, "<I"), "gso_size": (176, "<I"), "hwtstamp": (184, "<Q"),
}
_PERCPU_MAPS = frozenset({isa.MapType.BPF_MAP_TYPE_PERCPU_HASH,
                          isa.MapType.BPF_MAP_TYPE_PERCPU_ARRAY,
                          isa.MapType.BPF_MAP_TYPE_LRU_PERCPU_HASH,
                          isa.MapType.BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE})

_libc = None
_sysno = 0


def _errname(e: int) -> str:
    return f"{_errno.errorcode.get(e, f'errno {e}')} ({os.strerror(e)})"


def _setup() -> str:
    """Bind libc's syscall(); returns a reason string when bpf(2) cannot exist here."""
    global _libc, _sysno
    if _libc is not None:
        return ""
    if platform.system() != "Linux":
        return f"bpf(2) needs Linux, this is {platform.system() or 'unknown'}"
    machine = platform.machine()
    if machine not in _SYS_BPF:
        return f"no known bpf(2) syscall number for machine {machine!r} (x86_64, aarch64 only)"
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    libc.syscall.argtypes = (ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_ulong)
    _libc, _sysno = libc, _SYS_BPF[machine]
    return ""


def _bpf(cmd: int, attr) -> tuple[int, int]:
    """One bpf(2) call on a 144-byte ctypes buffer: (return value, errno or 0)."""
    if _libc is None:
        reason = _setup()
        if reason:
            raise KernelError(_errno.ENOSYS, reason)
    ret = _libc.syscall(_sysno, cmd, attr, _ATTR_SIZE)
    return (ret, ctypes.get_errno()) if ret < 0 else (ret, 0)


def _attr(fmt: str, *fields):
    buf = ctypes.create_string_buffer(_ATTR_SIZE)
    struct.pack_into(fmt, buf, 0, *fields)
    return buf


def _addr(data: bytes) -> int:
    # Address of an immutable bytes object's own buffer: no copy, and the kernel only reads
    # it.  The caller keeps ``data`` referenced for the duration of the syscall.
    return ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p).value or 0


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


def available() -> tuple[bool, str]:
    """(True, "") when bpf(2) can load and test-run a trivial SOCKET_FILTER program here,
    else (False, reason).  Computed once."""
    global _available
    if _available is None:
        reason = _setup()
        if not reason:
            trivial = isa.Insn(0xB7, 0, 0, 0, 0).pack() + isa.Insn(0x95, 0, 0, 0, 0).pack()
            try:
                with KernelProgram(trivial, log_level=0) as prog:
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
    buf = bytearray(_SKB_SIZE)
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


class KernelProgram:
    """A program loaded into the kernel with BPF_PROG_LOAD.

    ``insns`` are raw instruction bytes (or a sequence of :class:`isa.Insn`); ``prog_type`` a
    :class:`isa.ProgType`, an int or ``"socket_filter"``/``"sched_cls"``/``"sched_act"``.
    With ``log_level`` 1 or 2 the verifier log of a successful load is kept in
    ``verifier_log``; with 0 no log is kept, and a refused load is retried at level 1 so
    that the error still carries the reason.  A refusal raises :class:`KernelError` with
    the kernel's errno, the verifier's reason in the message and the whole log in ``.log``.
    Map fds go into ``lddw`` slots with ``src = isa.BPF_PSEUDO_MAP_FD``.
    """

    def __init__(self, insns, prog_type=isa.ProgType.BPF_PROG_TYPE_SOCKET_FILTER,
                 license: str = "GPL", log_level: int = 1):
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
        fd, err, log = self._load(insns, lic, log_level)
        if fd < 0 and log_level == 0:
            fd, err, log = self._load(insns, lic, 1)  # only to learn why
            if fd >= 0:  # accepted this time: keep it rather than fail oddly
                err = 0
        if fd < 0:
            reason = _meaningful_last_line(log)
            msg = (f"kernel verifier refused the program: {reason}" if reason else
                   f"kernel refused to load the program ({self._describe(insns)}): "
                   f"{_errname(err)}, no verifier log")
            raise KernelError(err, msg, log)
        self.fd = fd
        self.verifier_log = log if log_level else ""
        self._finalizer = weakref.finalize(self, os.close, fd)

    def _describe(self, insns: bytes) -> str:
        try:
            name = isa.ProgType(self.prog_type).name
        except ValueError:
            name = f"prog_type {self.prog_type}"
        return f"{name}, {len(insns) // isa.INSN_SIZE} insns"

    def _load(self, insns: bytes, lic: bytes, log_level: int) -> tuple[int, int, str]:
        size = _LOG_SIZE if log_level else 0
        while True:
            logbuf = ctypes.create_string_buffer(size) if size else None
            attr = _attr("<IIQQIIQII16s", self.prog_type, len(insns) // isa.INSN_SIZE,
                         _addr(insns), _addr(lic), log_level, size,
                         ctypes.addressof(logbuf) if size else 0, 0, 0, b"pyebpf")
            fd, err = _bpf(isa.BpfCmd.BPF_PROG_LOAD, attr)
            log = logbuf.value.decode(errors="replace") if size else ""
            # The log is cut when it outgrows the buffer (6.4+: ENOSPC even on success);
            # log_true_size (offset 140) tells how much room the whole log needs.
            true_size = struct.unpack_from("<I", attr, 140)[0]
            if size and true_size > size and size < _LOG_MAX:
                if fd >= 0:
                    os.close(fd)
                size = min(true_size, _LOG_MAX)
                continue
            return fd, err, log

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
                    else data_out_size)
        # data_out_size 0 would tell the kernel "no limit": never hand it a short buffer,
        # pass no data_out at all instead.
        dout = ctypes.create_string_buffer(out_size) if out_size > 0 else None
        ctx_out_size = max(len(ctx), _SKB_SIZE) if ctx is not None else 0
        cout = ctypes.create_string_buffer(ctx_out_size) if ctx is not None else None
        attr = _attr("<IIIIQQIIIIQQII", self.fd, 0, len(data), max(out_size, 0), _addr(data),
                     ctypes.addressof(dout) if dout is not None else 0, repeat, 0,
                     len(ctx) if ctx is not None else 0, ctx_out_size,
                     _addr(ctx) if ctx is not None else 0,
                     ctypes.addressof(cout) if cout is not None else 0, flags, 0)
        _, err = _bpf(isa.BpfCmd.BPF_PROG_TEST_RUN, attr)
        _, retval, _, size_out, _, _, _, duration, _, csize_out = struct.unpack_from(
            "<IIIIQQIIII", attr, 0)
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
        # ENOSPC comes from copying data_out, after retval, data_size_out and duration are
        # written but before ctx_out is: keep the first, drop the ctx.
        ctx_out = cout.raw[:min(csize_out, ctx_out_size)] if cout is not None and not err else None
        result = KernelRunResult(
            retval, dout.raw[:min(size_out, out_size)] if dout is not None else b"", ctx_out,
            _skb_fields(ctx_out) if ctx_out is not None and len(ctx_out) >= _SKB_SIZE else None,
            duration)
        if err:  # ENOSPC
            exc = KernelError(err, f"BPF_PROG_TEST_RUN of prog fd {self.fd}: the packet grew to "
                                   f"{size_out} bytes, beyond data_out_size {out_size}: "
                                   f"{_errname(err)}; retval {retval:#x}")
            exc.result = result
            raise exc
        return result

    def close(self) -> None:
        if self.fd >= 0:
            self._finalizer()
            self.fd = -1

    def __enter__(self) -> "KernelProgram":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<KernelProgram fd={self.fd} prog_type={self.prog_type}>"


# --- maps ----------------------------------------------------------------------------------
def _possible_cpus() -> int:
    # "0-1,4-7": every range counts; per-CPU values have one slot per possible CPU.
    with open("/sys/devices/system/cpu/possible") as f:
        total = 0
        for part in f.read().strip().split(","):
            lo, _, hi = part.partition("-")
            total += int(hi or lo) - int(lo) + 1
        return total


class KernelMap:
    """A map created with BPF_MAP_CREATE.

    Keys are ``key_size`` bytes; values ``value_size`` bytes, or for per-CPU maps
    ``n_possible_cpus * round_up(value_size, 8)`` bytes (one slot per CPU, as the syscall
    interface sees them; see ``value_buffer_size``).  Every kernel refusal raises
    :class:`KernelError` with the kernel's errno; a lookup or next_key that finds nothing
    returns None.
    """

    def __init__(self, map_type, key_size: int, value_size: int, max_entries: int,
                 flags: int = 0, name: str = "", inner_map_fd: int = 0):
        self.fd = -1
        self.map_type = _enum(isa.MapType, map_type, "map type")
        self.key_size, self.value_size, self.max_entries = key_size, value_size, max_entries
        self.flags, self.name = flags, name
        self.value_buffer_size = (_possible_cpus() * ((value_size + 7) & ~7)
                                  if self.map_type in _PERCPU_MAPS else value_size)
        attr = _attr("<IIIIIII16s", self.map_type, key_size, value_size, max_entries, flags,
                     inner_map_fd, 0, name.encode()[:15])
        fd, err = _bpf(isa.BpfCmd.BPF_MAP_CREATE, attr)
        if fd < 0:
            raise KernelError(err, f"BPF_MAP_CREATE {self._kind()} (key {key_size}, value "
                                   f"{value_size}, max_entries {max_entries}, flags "
                                   f"{flags:#x}) failed: {_errname(err)}")
        self.fd = fd
        self._finalizer = weakref.finalize(self, os.close, fd)

    def _kind(self) -> str:
        try:
            return isa.MapType(self.map_type).name[len("BPF_MAP_TYPE_"):].lower()
        except ValueError:
            return f"map_type {self.map_type}"

    def _key(self, key) -> bytes:
        key = bytes(key)
        # The kernel reads exactly key_size bytes from our pointer: never pass a short one.
        if len(key) != self.key_size:
            raise ValueError(f"key of {len(key)} bytes for a {self._kind()} map with "
                             f"key_size {self.key_size}")
        return key

    def _op(self, cmd, what: str, key: bytes | None, ptr2: int, flags: int = 0) -> int:
        if self.fd < 0:
            raise ValueError(f"{what} on a closed KernelMap")
        attr = _attr("<IIQQQ", self.fd, 0, _addr(key) if key is not None else 0, ptr2, flags)
        _, err = _bpf(cmd, attr)
        return err

    def _fail(self, err: int, what: str, key: bytes | None, flags: int | None = None):
        where = f"key {key.hex()}" if key is not None else "no key"
        if flags is not None:
            where += f", flags {flags:#x}"
        raise KernelError(err, f"map {what} on {self._kind()} map fd {self.fd} ({where}): "
                               f"{_errname(err)}")

    def lookup(self, key) -> bytes | None:
        key = self._key(key)
        value = ctypes.create_string_buffer(self.value_buffer_size)
        err = self._op(isa.BpfCmd.BPF_MAP_LOOKUP_ELEM, "lookup", key, ctypes.addressof(value))
        if err == _errno.ENOENT:
            return None
        if err:
            self._fail(err, "lookup", key)
        return value.raw

    def update(self, key, value, flags: int = 0) -> None:
        key, value = self._key(key), bytes(value)
        if len(value) != self.value_buffer_size:
            raise ValueError(f"value of {len(value)} bytes for a {self._kind()} map whose "
                             f"values are {self.value_buffer_size} bytes")
        err = self._op(isa.BpfCmd.BPF_MAP_UPDATE_ELEM, "update", key, _addr(value), flags)
        if err:
            self._fail(err, "update", key, flags)

    def delete(self, key) -> None:
        key = self._key(key)
        err = self._op(isa.BpfCmd.BPF_MAP_DELETE_ELEM, "delete", key, 0)
        if err:
            self._fail(err, "delete", key)

    def next_key(self, key=None) -> bytes | None:
        """The key after ``key`` (the first key for None); None after the last one."""
        key = self._key(key) if key is not None else None
        nxt = ctypes.create_string_buffer(max(self.key_size, 1))
        err = self._op(isa.BpfCmd.BPF_MAP_GET_NEXT_KEY, "next_key", key,
                       ctypes.addressof(nxt))
        if err == _errno.ENOENT:
            return None
        if err:
            self._fail(err, "next_key", key)
        return nxt.raw[:self.key_size]

    def keys(self) -> list[bytes]:
        """All keys in the kernel's iteration order."""
        out, key = [], self.next_key()
        while key is not None:
            out.append(key)
            key = self.next_key(key)
        return out

    def close(self) -> None:
        if self.fd >= 0:
            self._finalizer()
            self.fd = -1

    def __enter__(self) -> "KernelMap":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    key_type = value_type = None        # BTF types (pyebpf.btf), set by load_object

    def decode_key(self, key):
        """``key`` as named fields, per the map's BTF key type (maps of ELF objects)."""
        from .btf import decode
        return decode(self.key_type, key, f"map {self.name or self.fd} key")

    def decode_value(self, value):
        """``value`` as named fields, per the map's BTF value type (maps of ELF objects)."""
        from .btf import decode
        return decode(self.value_type, value, f"map {self.name or self.fd} value")

    def __repr__(self) -> str:
        return f"<KernelMap fd={self.fd} {self._kind()} key={self.key_size} " \
               f"value={self.value_size} max_entries={self.max_entries}>"


# --- ELF objects ---------------------------------------------------------------------------
class KernelObject:
    """An ELF object loaded into the kernel (see :func:`load_object`): ``maps`` (name ->
    KernelMap), ``programs`` (name -> KernelProgram), ``program(name)`` by C function or
    section name, ``skipped`` (programs of types pyebpf does not run, not loaded)."""

    def __init__(self, spec, prog_type=None):
        from .errors import ElfError
        from .loader import RUNNABLE_TYPES, program_type
        self.spec, self.license = spec, spec.license
        self.maps, self.programs, self.skipped = {}, {}, {}
        try:
            # maps of maps last, with a template made from the inner definition (closed
            # once the outer map exists, as libbpf does), then filled with the object's maps
            for ms in sorted(spec.maps.values(), key=lambda m: m.inner is not None):
                self.maps[ms.name] = m = self._map(ms)
                for key, value in ms.contents:
                    m.update(key, value)
                for slot, inner in ms.inner_maps.items():
                    m.update(slot.to_bytes(ms.key_size, "little"),
                             self.maps[inner].fd.to_bytes(4, "little"))
            self.maps = {name: self.maps[name] for name in spec.maps}
            fds = {name: m.fd for name, m in self.maps.items()}
            for ps in spec.programs.values():
                kind = program_type(ps, prog_type)
                if kind not in RUNNABLE_TYPES:
                    self.skipped[ps.name] = f"a {kind} program"
                    continue
                self.programs[ps.name] = KernelProgram(ps.instructions(fds), kind,
                                                       license=spec.license or "GPL")
            for ms in spec.maps.values():
                for slot, prog_name in ms.programs.items():
                    if prog_name not in self.programs:
                        raise ElfError(f"slot {slot} names program {prog_name!r}, which is not "
                                       f"loaded", file=spec.name, symbol=ms.name)
                    self.maps[ms.name].update(slot.to_bytes(4, "little"),
                                              self.programs[prog_name].fd.to_bytes(4, "little"))
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _map(ms) -> KernelMap:
        # created without BTF: the definition is what the kernel's behaviour needs
        def make(d, inner_map_fd=0):
            return KernelMap(d.type, d.key_size, d.value_size, d.max_entries, d.flags,
                             name=d.name, inner_map_fd=inner_map_fd)
        if ms.inner is None:
            m = make(ms)
        else:
            with make(ms.inner) as template:
                m = make(ms, template.fd)
        m.key_type, m.value_type = ms.key_type, ms.value_type
        return m

    def program(self, name: str) -> KernelProgram:
        if name not in self.programs:
            found = self.spec.find_programs(name)
            if len(found) != 1 or found[0].name not in self.programs:
                raise KeyError(f"no loaded program or single-program section {name!r} in "
                               f"{self.spec.name}; loaded: {', '.join(self.programs)}")
            name = found[0].name
        return self.programs[name]

    def close(self) -> None:
        for prog in self.programs.values():
            prog.close()
        for m in self.maps.values():
            m.close()

    def __enter__(self) -> "KernelObject":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def load_object(source, *, prog_type=None) -> KernelObject:
    """Load an ELF object (path or bytes) into the kernel the way :func:`pyebpf.load`
    loads it into pyebpf: the same map definitions and initial contents (maps created
    without BTF), the same ``lddw`` rewriting from the specs, program arrays filled."""
    from . import elf
    return KernelObject(elf.parse(source), prog_type)


# --- 64-bit results ------------------------------------------------------------------------
# 64 bytes, EtherType 0x88b5 (IEEE local experimental): not IP, so the kernel needs only the
# 14-byte Ethernet header and parses nothing else.
_DUMMY_FRAME = b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x01" + b"\x88\xb5" + bytes(50)
_EXIT = isa.BPF_JMP | isa.BPF_EXIT
_LDDW = isa.BPF_LD | isa.BPF_IMM | isa.BPF_DW
_CALL = isa.BPF_JMP | isa.BPF_CALL


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
        if (s.code == _CALL and s.src == isa.BPF_PSEUDO_CALL) or \
                (s.code == _LDDW and s.src == isa.BPF_PSEUDO_FUNC):
            raise ValueError(f"pc {i}: run_raw64 cannot rewrite a program with bpf-to-bpf "
                             f"calls or callbacks")
        if s.code == _LDDW:  # two slots; the second is data, never an exit
            out += slots[i:i + 2]
            i += 2
            continue
        if s.code == _EXIT:
            dist = tail - i - 1
            s = (isa.Insn(isa.BPF_JMP | isa.BPF_JA, 0, 0, dist, 0) if dist < 0x8000 else
                 isa.Insn(isa.BPF_JMP32 | isa.BPF_JA, 0, 0, 0, dist))  # gotol: 32-bit reach
        out.append(s)
        i += 1
    out += [isa.Insn(isa.BPF_ALU64 | isa.BPF_RSH | isa.BPF_K, 0, 0, 0, 32),
            isa.Insn(_EXIT, 0, 0, 0, 0)]
    with KernelProgram(bytes(insns)) as lo_prog:
        lo = lo_prog.test_run(_DUMMY_FRAME).retval
    with KernelProgram(b"".join(s.pack() for s in out)) as hi_prog:
        hi = hi_prog.test_run(_DUMMY_FRAME).retval
    return (hi << 32) | lo


# --- running a pyebpf program in the kernel ------------------------------------------------------
@dataclass(frozen=True)
class KernelResult:
    """One run of a typed program in the kernel, in :class:`pyebpf.Result`'s shape where
    the kernel can show it: ``retval`` (signed 32-bit for tc, u32 for socket filters),
    ``data_out`` (the bytes after the run; socket filters from the L3 header), ``data``
    (socket filters: ``data_out`` trimmed to ``retval``; tc: ``data_out``, the kernel does
    not report an accelerated VLAN tag), ``skb`` (the exported ``__sk_buff`` fields) and
    ``duration`` (ns).  Fields the kernel hides (redirect, clones, tunnel metadata,
    trace output) are not here."""
    retval: int
    data: bytes
    data_out: bytes
    skb: dict
    duration: int


def run(program, packet, **fields) -> KernelResult:
    """Load a typed :class:`pyebpf.Program` into this kernel and run it once on
    ``packet`` with BPF_PROG_TEST_RUN; ``fields`` are the ``__sk_buff`` inputs test_run
    accepts (see :func:`cross_check`)."""
    if program.prog_type is None:
        raise ValueError("kernel.run needs a typed program (socket_filter, sched_cls, "
                         "sched_act); raw programs run with run_raw64")
    sf = program.prog_type == isa.ProgType.BPF_PROG_TYPE_SOCKET_FILTER
    with KernelProgram(program.insns, program.prog_type) as kprog:
        theirs = kprog.test_run(bytes(packet), ctx=dict(fields))
    if sf:
        pkt = theirs.data[14:]
        return KernelResult(theirs.retval, pkt[:theirs.retval], pkt, theirs.skb,
                            theirs.duration)
    return KernelResult(theirs.retval_signed, theirs.data, theirs.data, theirs.skb,
                        theirs.duration)


# --- cross-checking a pyebpf program ---------------------------------------------------------
def cross_check(program, packet, **fields) -> list[str]:
    """Run a typed :class:`pyebpf.Program` on ``packet`` in pyebpf and in this kernel.

    ``fields`` are the ``__sk_buff`` inputs both sides accept (those test_run takes:
    mark, priority, ingress_ifindex, ifindex, cb, tstamp, wire_len, gso_segs, gso_size,
    hwtstamp).  Returns the differences as lines — retval, packet bytes, exported fields
    — and an empty list when the two agree.  Socket filters run from the L3 header on
    both sides, as test_run does.
    """
    if program.prog_type is None:
        raise ValueError("cross_check needs a typed program (socket_filter, sched_cls, "
                         "sched_act); raw programs compare with run_raw64")
    _ctx_bytes(fields)                      # refuse what test_run cannot take, by name
    sf = program.prog_type == isa.ProgType.BPF_PROG_TYPE_SOCKET_FILTER
    engine_fields = dict(fields)
    if not engine_fields.get("ifindex"):
        engine_fields["ifindex"] = 1        # test_run's default device is loopback
    if not engine_fields.get("wire_len"):
        engine_fields.pop("wire_len", None)
    if sf:
        engine_fields["sf_start"] = "network"
    packet = bytes(packet)
    ours = program.run(packet, **engine_fields)
    theirs = run(program, packet, **fields)
    diffs = []
    if ours.retval != theirs.retval:
        diffs.append(f"retval: pyebpf {ours.retval:#x}, kernel {theirs.retval:#x}")
    kernel_packet = theirs.data_out
    if ours.data_out != kernel_packet:
        at = next((i for i, (a, b) in enumerate(zip(ours.data_out, kernel_packet)) if a != b),
                  min(len(ours.data_out), len(kernel_packet)))
        diffs.append(f"packet: first difference at byte {at} (pyebpf {len(ours.data_out)} "
                     f"bytes, kernel {len(kernel_packet)} bytes)")
    mine = ours.skb.as_dict()
    for name, want in theirs.skb.items():
        if name == "gso_size":
            continue                        # test_run echoes it, never updates it
        got = list(mine[name]) if name == "cb" else mine[name]
        if got != want:
            diffs.append(f"__sk_buff.{name}: pyebpf {got!r}, kernel {want!r}")
    return diffs


# --- bpf(2) with a dict attr, as pyebpf.bpf takes it ------------------------------------------
_ATTR_LAYOUT = {   # field -> (offset, struct format); "*" formats are pointers to buffers
    isa.BpfCmd.BPF_MAP_CREATE: {"map_type": (0, "I"), "key_size": (4, "I"),
                                "value_size": (8, "I"), "max_entries": (12, "I"),
                                "map_flags": (16, "I"), "map_name": (28, "16s")},
    isa.BpfCmd.BPF_PROG_LOAD: {"prog_type": (0, "I"), "insns": (8, "*"), "license": (16, "*"),
                               "log_level": (24, "I"), "log_size": (28, "I"),
                               "log_buf": (32, "*"), "kern_version": (40, "I"),
                               "prog_name": (48, "16s")},
    isa.BpfCmd.BPF_OBJ_PIN: {"pathname": (0, "*"), "bpf_fd": (8, "I"), "file_flags": (12, "I")},
}
_ATTR_LAYOUT[isa.BpfCmd.BPF_OBJ_GET] = _ATTR_LAYOUT[isa.BpfCmd.BPF_OBJ_PIN]
for _cmd in (isa.BpfCmd.BPF_MAP_LOOKUP_ELEM, isa.BpfCmd.BPF_MAP_UPDATE_ELEM,
             isa.BpfCmd.BPF_MAP_DELETE_ELEM, isa.BpfCmd.BPF_MAP_GET_NEXT_KEY):
    _ATTR_LAYOUT[_cmd] = {"map_fd": (0, "I"), "key": (8, "*"), "value": (16, "*"),
                          "next_key": (16, "*"), "flags": (24, "Q")}


def bpf(cmd, attr: dict) -> int:
    """bpf(2) itself with :func:`pyebpf.bpf`'s conventions: ``attr`` a dict of bpf_attr
    field names (buffers as bytes, or bytearrays the kernel writes into); returns what
    the syscall returns, or raises KernelError with its errno."""
    cmd = isa.BpfCmd(cmd)
    buf, keep = ctypes.create_string_buffer(_ATTR_SIZE), []
    for name, value in attr.items():
        off, fmt = _ATTR_LAYOUT[cmd][name]
        if fmt == "*":
            if value is None:
                continue
            if isinstance(value, str):
                value = value.encode() + b"\0"
            data = (ctypes.c_char * len(value)).from_buffer(value) \
                if isinstance(value, bytearray) else ctypes.c_char_p(bytes(value))
            keep.append(data)
            struct.pack_into("<Q", buf, off, ctypes.cast(data, ctypes.c_void_p).value or 0)
            if name == "insns":
                struct.pack_into("<I", buf, 4, len(value) // isa.INSN_SIZE)
        else:
            struct.pack_into("<" + fmt, buf, off, value.encode() if isinstance(value, str) else value)
    ret, err = _bpf(cmd, buf)
    if ret < 0:
        raise KernelError(err, f"{cmd.name}: {_errname(err)}")
    return ret
