"""libpcap through ctypes: ``pcap_compile`` (filter expressions to classic BPF) and
``pcap_offline_filter`` (libpcap's own classic interpreter).

ctypes over the system's shared library (Debian's ``libpcap0.8`` package installs
``libpcap.so.0.8``) needs no compiler and no extra Python package, and it calls the
same code tcpdump calls, so a filter compiles here exactly as ``tcpdump -dd`` prints it.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools

from .. import isa
from ..errors import ClassicError
from .insn import SockFilter

PCAP_NETMASK_UNKNOWN = 0xFFFFFFFF
_NAMES = ("libpcap.so.0.8", "libpcap.so.1", "libpcap.so")


class _Insn(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte),
                ("k", ctypes.c_uint32)]


class _Program(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.POINTER(_Insn))]


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class _PktHdr(ctypes.Structure):
    _fields_ = [("ts", _Timeval), ("caplen", ctypes.c_uint32), ("len", ctypes.c_uint32)]


@functools.cache
def library() -> ctypes.CDLL:
    """The loaded libpcap; :class:`ClassicError` naming the package when it is absent."""
    names = list(_NAMES)
    found = ctypes.util.find_library("pcap")
    if found:
        names.append(found)
    for name in names:
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        lib.pcap_open_dead.restype = ctypes.c_void_p
        lib.pcap_open_dead.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.pcap_close.argtypes = [ctypes.c_void_p]
        lib.pcap_compile.argtypes = [ctypes.c_void_p, ctypes.POINTER(_Program),
                                     ctypes.c_char_p, ctypes.c_int, ctypes.c_uint32]
        lib.pcap_geterr.restype = ctypes.c_char_p
        lib.pcap_geterr.argtypes = [ctypes.c_void_p]
        lib.pcap_freecode.argtypes = [ctypes.POINTER(_Program)]
        lib.pcap_offline_filter.argtypes = [ctypes.POINTER(_Program), ctypes.POINTER(_PktHdr),
                                            ctypes.c_char_p]
        lib.pcap_offline_filter.restype = ctypes.c_int
        return lib
    raise ClassicError("compiling a filter expression needs libpcap (libpcap.so.0.8), "
                       "which is not installed: apt-get install libpcap0.8")


def compile(expression: str, *, linktype: int = isa.DLT_EN10MB, snaplen: int = 262144,
            optimize: bool = True, netmask: int = PCAP_NETMASK_UNKNOWN) -> list[SockFilter]:
    """The classic program ``pcap_compile`` makes of ``expression`` for a capture of
    ``linktype`` (DLT_EN10MB: Ethernet) and ``snaplen`` (what ``tcpdump -dd`` prints)."""
    lib = library()
    handle = lib.pcap_open_dead(linktype, snaplen)
    if not handle:
        raise ClassicError(f"libpcap cannot open a handle for linktype {linktype}")
    prog = _Program()
    try:
        if lib.pcap_compile(handle, ctypes.byref(prog), expression.encode(), int(optimize),
                            netmask) != 0:
            why = lib.pcap_geterr(handle).decode(errors="replace")
            raise ClassicError(f"filter expression {expression!r}: {why}")
        try:
            return [SockFilter(prog.bf_insns[i].code, prog.bf_insns[i].jt,
                               prog.bf_insns[i].jf, prog.bf_insns[i].k)
                    for i in range(prog.bf_len)]
        finally:
            lib.pcap_freecode(ctypes.byref(prog))
    finally:
        lib.pcap_close(handle)


class OfflineFilter:
    """libpcap's interpreter (``pcap_offline_filter``) over one classic program:
    ``f(frame, wire_len=None)`` is the number of bytes a capture would keep (0: none)."""

    def __init__(self, insns: list[SockFilter]):
        self._lib = library()
        self._insns = (_Insn * len(insns))(*[_Insn(*i) for i in insns])
        self._prog = _Program(len(insns), self._insns)

    def __call__(self, frame: bytes, wire_len: int | None = None) -> int:
        hdr = _PktHdr(_Timeval(0, 0), len(frame), len(frame) if wire_len is None else wire_len)
        return self._lib.pcap_offline_filter(ctypes.byref(self._prog), ctypes.byref(hdr),
                                             bytes(frame)) & 0xFFFFFFFF
