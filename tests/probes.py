"""Attach a BPF_PROG_TYPE_KPROBE program to a real probe of the running kernel.

``perf_event_open`` on the kprobe or uprobe PMU (its type number in
``/sys/bus/event_source/devices/{kprobe,uprobe}/type``), then ``PERF_EVENT_IOC_SET_BPF``
and ``PERF_EVENT_IOC_ENABLE``: the path libbpf takes for ``kprobe/...`` and
``uprobe/...`` sections.  The event follows this thread only (pid 0, any CPU).  Where
the PMU is missing (a kernel without CONFIG_KPROBES or CONFIG_UPROBE_EVENTS) or the
calls are refused, :class:`ProbeUnavailable` says why.
"""
from __future__ import annotations

import ctypes
import os
import struct
from pathlib import Path

from elftools.elf.elffile import ELFFile

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_NR_PERF_EVENT_OPEN = {"x86_64": 298, "aarch64": 241}.get(os.uname().machine)
PERF_ATTR_SIZE = 136                    # PERF_ATTR_SIZE_VER8
PERF_EVENT_IOC_ENABLE = 0x2400
PERF_EVENT_IOC_SET_BPF = 0x40042408     # _IOW('$', 8, __u32)
_PERF_FLAG_FD_CLOEXEC = 1 << 3


class ProbeUnavailable(Exception):
    """This kernel cannot attach the probe; the message says why."""


def pmu_type(kind: str) -> int:
    path = Path(f"/sys/bus/event_source/devices/{kind}/type")
    try:
        return int(path.read_text())
    except OSError:
        raise ProbeUnavailable(f"no {kind} PMU ({path} is missing: the kernel was built "
                               f"without {'CONFIG_KPROBES' if kind == 'kprobe' else 'CONFIG_UPROBE_EVENTS'})") from None


def _ioctl(fd: int, request: int, arg: int) -> None:
    if _libc.ioctl(fd, ctypes.c_ulong(request), ctypes.c_ulong(arg)) < 0:
        e = ctypes.get_errno()
        raise ProbeUnavailable(f"ioctl {request:#x} on the perf event: {os.strerror(e)}")


class Probe:
    """A perf event of the kprobe or uprobe PMU with a BPF program attached; a context
    manager that closes it."""

    def __init__(self, kind: str, target: str, offset: int, prog_fd: int):
        if _NR_PERF_EVENT_OPEN is None:
            raise ProbeUnavailable(f"perf_event_open's number on {os.uname().machine} is not "
                                   f"known here")
        self._name = ctypes.create_string_buffer(target.encode())
        attr = bytearray(PERF_ATTR_SIZE)
        struct.pack_into("<IIQQ", attr, 0, pmu_type(kind), PERF_ATTR_SIZE, 0, 1)
        struct.pack_into("<Q", attr, 40, 1)                     # disabled
        struct.pack_into("<QQ", attr, 56, ctypes.addressof(self._name), offset)
        buf = ctypes.create_string_buffer(bytes(attr), PERF_ATTR_SIZE)
        fd = _libc.syscall(_NR_PERF_EVENT_OPEN, buf, 0, -1, -1, _PERF_FLAG_FD_CLOEXEC)
        if fd < 0:
            e = ctypes.get_errno()
            raise ProbeUnavailable(f"perf_event_open({kind} {target}+{offset:#x}): "
                                   f"{os.strerror(e)}")
        self.fd = fd
        try:
            _ioctl(fd, PERF_EVENT_IOC_SET_BPF, prog_fd)
            _ioctl(fd, PERF_EVENT_IOC_ENABLE, 0)
        except BaseException:
            os.close(fd)
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        os.close(self.fd)


def file_offset(path: str, symbol: str) -> int:
    """Where ``symbol``'s code is in the file (what a uprobe is placed by)."""
    with open(path, "rb") as f:
        elf = ELFFile(f)
        sym = elf.get_section_by_name(".symtab") or elf.get_section_by_name(".dynsym")
        value = next(s["st_value"] for s in sym.iter_symbols() if s.name == symbol)
        for seg in elf.iter_segments():
            if seg["p_type"] == "PT_LOAD" and \
                    seg["p_vaddr"] <= value < seg["p_vaddr"] + seg["p_memsz"]:
                return value - seg["p_vaddr"] + seg["p_offset"]
    raise LookupError(f"{symbol} is in no loadable segment of {path}")
