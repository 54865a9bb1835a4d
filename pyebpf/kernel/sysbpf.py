"""bpf(2) itself: the syscall, ``union bpf_attr`` packing, and one function per command.

Everything the oracle asks of the kernel passes through :data:`calls` (a
:class:`Syscalls`): its methods take and return plain bytes and ints, never pointers, so
a stand-in with the same methods can record the kernel's answers or play them back
(the test suite does, where bpf(2) is refused).  Attribute layouts are
``pyebpf.isa.BPF_ATTR``.
"""
from __future__ import annotations

import collections
import ctypes
import errno as _errno
import os
import platform
import struct
from dataclasses import dataclass

from .. import host, isa
from ..errors import KernelError

_SYS_BPF = {"x86_64": 321, "amd64": 321, "aarch64": 280, "arm64": 280}
_LOG_SIZE = 64 << 10               # first try; a longer log is fetched again at its true size
_LOG_MAX = (1 << 30) - 1           # the kernel's ceiling (UINT_MAX >> 2)
_BTF_LOG_SIZE = 16 << 20           # a refused BTF's log: one line per type before the reason

_libc = None
_sysno = 0


def errname(e: int) -> str:
    """``ENOENT (No such file or directory)`` for an errno."""
    return f"{_errno.errorcode.get(e, f'errno {e}')} ({os.strerror(e)})"


def setup() -> str:
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


def _syscall(cmd: int, attr) -> tuple[int, int]:
    """One bpf(2) call on an attr buffer: (return value, errno or 0)."""
    if _libc is None:
        reason = setup()
        if reason:
            raise KernelError(_errno.ENOSYS, reason)
    ret = _libc.syscall(_sysno, cmd, attr, isa.BPF_ATTR_SIZE)
    return (ret, ctypes.get_errno()) if ret < 0 else (ret, 0)


class _Attr:
    """A zeroed ``union bpf_attr`` for one command, filled by field name; keeps the
    buffers its pointers point at alive as long as it lives."""

    def __init__(self, cmd, **fields):
        self.cmd, self.layout = isa.BpfCmd(cmd), isa.BPF_ATTR[cmd]
        self.buf, self._keep = ctypes.create_string_buffer(isa.BPF_ATTR_SIZE), []
        for name, value in fields.items():
            self[name] = value

    def __setitem__(self, name: str, value) -> None:
        off, fmt = self.layout[name]
        if fmt == "P":
            value = self._pointer(value)
            fmt = "Q"
        struct.pack_into("<" + fmt, self.buf, off, value)

    def __getitem__(self, name: str):
        off, fmt = self.layout[name]
        return struct.unpack_from("<" + ("Q" if fmt == "P" else fmt), self.buf, off)[0]

    def _pointer(self, value) -> int:
        # bytes: the kernel reads them in place; a ctypes buffer: it writes into it.
        if value is None:
            return 0
        if isinstance(value, int):
            return value
        if isinstance(value, bytearray):
            value = (ctypes.c_char * len(value)).from_buffer(value)
        elif not isinstance(value, ctypes.Array):
            value = ctypes.c_char_p(bytes(value))
        self._keep.append(value)
        return ctypes.cast(value, ctypes.c_void_p).value or 0

    def call(self) -> tuple[int, int]:
        return _syscall(self.cmd, self.buf)


@dataclass(frozen=True)
class TestRun:
    """What BPF_PROG_TEST_RUN wrote back: ``err`` (0, or the errno), ``retval``,
    ``data`` (data_out up to data_size_out), ``ctx`` (ctx_out up to ctx_size_out, None
    without a ctx or when the kernel failed before writing it), ``size_out``
    (data_size_out as reported) and ``duration``."""
    err: int
    retval: int
    data: bytes
    ctx: bytes | None
    size_out: int
    duration: int


class Syscalls:
    """The bpf(2) commands the oracle uses, on bytes and ints.

    A BTF blob is loaded once (BPF_BTF_LOAD) and kept: the maps and programs of one
    object name the same kernel BTF, as libbpf's do, which kptr fields need (the kernel
    matches a kptr's type by BTF object and type id).  Only the last ``BTF_FDS_KEPT``
    blobs are kept: a test session loads thousands of objects, and each fd kept would
    stay open to the end (maps and programs hold their own reference to their BTF)."""

    BTF_FDS_KEPT = 32

    def __init__(self):
        self._btf_fds: collections.OrderedDict[bytes, int] = collections.OrderedDict()

    def _btf_fd(self, blob: bytes) -> tuple[int, int]:
        """The fd of ``blob`` loaded (kept for later calls), or (-1, errno).  Loaded
        without a log, as libbpf does (btf_load_into_kernel): the BTF log lists every
        type, and one that outgrows its buffer fails the load with ENOSPC."""
        fd = self._btf_fds.get(blob)
        if fd is not None:
            self._btf_fds.move_to_end(blob)
            return fd, 0
        fd, err = _Attr(isa.BpfCmd.BPF_BTF_LOAD, btf=blob, btf_size=len(blob)).call()
        if fd >= 0:
            self._btf_fds[blob] = fd
            if len(self._btf_fds) > self.BTF_FDS_KEPT:
                os.close(self._btf_fds.popitem(last=False)[1])
        return fd, err

    @staticmethod
    def _btf_refusal(blob: bytes) -> str:
        """The kernel's BTF log for a blob it refused, the reason on its last line (a
        log cut at the buffer's end would lose it, hence the large buffer)."""
        logbuf = ctypes.create_string_buffer(_BTF_LOG_SIZE)
        fd, _ = _Attr(isa.BpfCmd.BPF_BTF_LOAD, btf=blob, btf_size=len(blob),
                      btf_log_buf=logbuf, btf_log_size=_BTF_LOG_SIZE,
                      btf_log_level=1).call()
        if fd >= 0:
            os.close(fd)
        return logbuf.value.decode(errors="replace")

    def prog_load(self, prog_type: int, insns: bytes, license: bytes,
                  log_level: int, btf: bytes | None = None,
                  func_info: bytes = b"", line_info: bytes = b"",
                  prog_flags: int = 0) -> tuple[int, int, str]:
        """BPF_PROG_LOAD: (fd or -1, errno or 0, verifier log).  ``btf`` (a BTF blob,
        loaded with BPF_BTF_LOAD for this call) and ``func_info`` (``struct
        bpf_func_info`` records) tell the kernel where functions start and which are
        global; ``line_info`` (``struct bpf_line_info`` records) names their C lines;
        ``prog_flags`` (BPF_F_SLEEPABLE...) as libbpf sets them for the section."""
        btf_fd = -1
        if btf is not None:
            btf_fd, err = self._btf_fd(btf)
            if btf_fd < 0:
                return -1, err, "BTF: " + self._btf_refusal(btf)
        return self._prog_load(prog_type, insns, license, log_level, btf_fd, func_info,
                               line_info, prog_flags)

    def _prog_load(self, prog_type, insns, license, log_level, btf_fd, func_info,
                   line_info, prog_flags):
        size = _LOG_SIZE if log_level else 0
        while True:
            logbuf = ctypes.create_string_buffer(size) if size else None
            attr = _Attr(isa.BpfCmd.BPF_PROG_LOAD, prog_type=prog_type,
                         insn_cnt=len(insns) // isa.INSN_SIZE, insns=insns, license=license,
                         log_level=log_level, log_size=size, log_buf=logbuf,
                         prog_name=b"pyebpf", prog_flags=prog_flags)
            if btf_fd >= 0:
                attr["prog_btf_fd"] = btf_fd
                attr["func_info_rec_size"] = 8
                attr["func_info"] = func_info
                attr["func_info_cnt"] = len(func_info) // 8
                if line_info:
                    attr["line_info_rec_size"] = 16
                    attr["line_info"] = line_info
                    attr["line_info_cnt"] = len(line_info) // 16
            fd, err = attr.call()
            log = logbuf.value.decode(errors="replace") if size else ""
            # The log is cut when it outgrows the buffer (6.4+: ENOSPC even on success);
            # log_true_size tells how much room the whole log needs.
            true_size = attr["log_true_size"]
            if size and true_size > size and size < _LOG_MAX:
                if fd >= 0:
                    os.close(fd)
                size = min(true_size, _LOG_MAX)
                continue
            return fd, err, log

    def prog_test_run(self, fd: int, data: bytes, ctx: bytes | None, data_out_size: int,
                      ctx_out_size: int, repeat: int, flags: int) -> TestRun:
        """BPF_PROG_TEST_RUN; ``data_out_size`` 0 passes no data_out at all (0 would tell
        the kernel "no limit"), ``ctx`` None no ctx; empty ``data`` passes no data_in (a
        syscall program's run refuses one: bpf_prog_test_run_syscall)."""
        dout = ctypes.create_string_buffer(data_out_size) if data_out_size > 0 else None
        cout = ctypes.create_string_buffer(ctx_out_size) if ctx is not None else None
        attr = _Attr(isa.BpfCmd.BPF_PROG_TEST_RUN, prog_fd=fd, data_size_in=len(data),
                     data_size_out=data_out_size, data_in=data or None, data_out=dout,
                     repeat=repeat,
                     ctx_size_in=len(ctx) if ctx is not None else 0,
                     ctx_size_out=ctx_out_size if ctx is not None else 0, ctx_in=ctx,
                     ctx_out=cout, flags=flags)
        _, err = attr.call()
        size_out, csize_out = attr["data_size_out"], attr["ctx_size_out"]
        # ENOSPC comes from copying data_out, after retval, data_size_out and duration
        # are written but before ctx_out is (bpf_test_finish): no ctx then.
        ctx_out = (cout.raw[:min(csize_out, ctx_out_size)]
                   if cout is not None and not err else None)
        return TestRun(err, attr["retval"],
                       dout.raw[:min(size_out, data_out_size)] if dout is not None else b"",
                       ctx_out, size_out, attr["duration"])

    def prog_stream_read(self, fd: int, stream_id: int, size: int) -> tuple[int, bytes]:
        """BPF_PROG_STREAM_READ_BY_FD: (errno or 0, the bytes read, up to ``size``)."""
        buf = ctypes.create_string_buffer(size) if size else None
        got, err = _Attr(isa.BpfCmd.BPF_PROG_STREAM_READ_BY_FD, stream_buf=buf,
                         stream_buf_len=size, stream_id=stream_id, prog_fd=fd).call()
        return err, buf.raw[:got] if buf is not None and not err else b""

    def map_create(self, map_type: int, key_size: int, value_size: int, max_entries: int,
                   flags: int, inner_map_fd: int, name: bytes,
                   map_extra: int = 0, btf: tuple | None = None) -> tuple[int, int]:
        """BPF_MAP_CREATE: (fd or -1, errno or 0).  ``btf``: (a BTF blob, the key's type
        id, the value's), loaded with BPF_BTF_LOAD for this call, for the map types the
        kernel creates only with BTF (local storage)."""
        attr = _Attr(isa.BpfCmd.BPF_MAP_CREATE, map_type=map_type, key_size=key_size,
                     value_size=value_size, max_entries=max_entries, map_flags=flags,
                     inner_map_fd=inner_map_fd, map_name=name[:15], map_extra=map_extra)
        if btf is None:
            return attr.call()
        blob, key_id, value_id = btf
        btf_fd, err = self._btf_fd(blob)
        if btf_fd < 0:
            return -1, err
        attr["btf_fd"], attr["btf_key_type_id"] = btf_fd, key_id
        attr["btf_value_type_id"] = value_id
        return attr.call()

    def map_elem(self, cmd: int, fd: int, key: bytes | None, value: bytes | None,
                 flags: int, out_size: int) -> tuple[int, bytes]:
        """One of the element commands: (errno or 0, the ``out_size`` bytes the kernel
        wrote into value/next_key, empty for none)."""
        out = ctypes.create_string_buffer(out_size) if out_size else None
        attr = _Attr(cmd, map_fd=fd, key=key, flags=flags)
        attr["value"] = out if out is not None else value
        _, err = attr.call()
        return err, out.raw if out is not None and not err else b""

    def map_batch(self, cmd: int, fd: int, in_batch: bytes | None, keys: bytes,
                  values: bytes, count: int, elem_flags: int, flags: int,
                  batch_size: int) -> tuple[int, int, bytes, bytes, bytes]:
        """One of the batch commands on ``count`` elements: (errno or 0, the count the
        kernel wrote back, out_batch (``batch_size`` bytes, all 0xff where the kernel
        wrote none), keys, values).  ``keys`` and ``values`` are the buffers (lookups:
        their sizes, zeroed)."""
        kbuf, vbuf, out = bytearray(keys), bytearray(values), bytearray(b"\xff" * batch_size)
        attr = _Attr(cmd, map_fd=fd, in_batch=in_batch, out_batch=out if batch_size else None,
                     keys=kbuf if kbuf else None, values=vbuf if vbuf else None, count=count,
                     elem_flags=elem_flags, flags=flags)
        _, err = attr.call()
        return err, attr["count"], bytes(out), bytes(kbuf), bytes(vbuf)

    def close(self, fd: int) -> None:
        os.close(fd)

    def possible_cpus(self) -> int:
        """The number of possible CPUs: per-CPU values have one slot per possible CPU."""
        return host.possible_cpus()


#: What the oracle calls; a stand-in with the same methods may replace it.
calls = Syscalls()


def command(cmd, attr: dict) -> int:
    """bpf(2) with a dict attr, as :func:`pyebpf.bpf` takes it: ``attr`` maps
    ``isa.BPF_ATTR`` field names to values (pointers as bytes, str, or bytearrays the
    kernel writes into); returns what the syscall returns, or raises KernelError."""
    cmd = isa.BpfCmd(cmd)
    buf = _Attr(cmd)
    for name, value in attr.items():
        if isinstance(value, str):
            value = value.encode() + (b"\0" if buf.layout[name][1] == "P" else b"")
        buf[name] = value
        if name == "insns":
            buf["insn_cnt"] = len(value) // isa.INSN_SIZE
    ret, err = buf.call()
    if ret < 0:
        raise KernelError(err, f"{cmd.name}: {errname(err)}")
    return ret
