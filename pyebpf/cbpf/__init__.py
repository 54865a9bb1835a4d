"""Classic BPF socket filters, checked and converted to eBPF as the kernel does it.

    prog = pyebpf.cbpf.program("tcp port 80")          # via libpcap's pcap_compile
    prog = pyebpf.Program.from_cbpf(open("f.dd").read())  # tcpdump -dd / -ddd text
    prog.run(frame).retval                              # bytes a packet socket keeps

:func:`program` reads the instructions (:mod:`.insn`), refuses what ``SO_ATTACH_FILTER``
refuses (:func:`.checker.check`, :class:`~pyebpf.errors.ClassicError`), converts them
(:func:`.convert.convert`) and returns a ``socket_filter`` :class:`pyebpf.Program`.
"""
from __future__ import annotations

import re

from .. import isa
from .checker import check
from .convert import convert
from .insn import SockFilter, from_bytes, from_text, to_bytes

__all__ = ["SockFilter", "read", "from_bytes", "from_text", "to_bytes", "check", "convert",
           "compile", "program"]

_DD_START = re.compile(r"\s*(\{|\d+\s*\n)")


def compile(expression: str, **kwargs) -> list[SockFilter]:
    """``pcap_compile`` of ``expression`` (see :func:`.libpcap.compile`)."""
    from . import libpcap
    return libpcap.compile(expression, **kwargs)


def read(source, *, linktype: int = isa.DLT_EN10MB, snaplen: int = 262144
         ) -> list[SockFilter]:
    """Classic instructions from ``source``: a sequence of :class:`SockFilter` or
    ``(code, jt, jf, k)`` tuples, ``struct sock_filter`` bytes, ``tcpdump -dd``/``-ddd``
    text, or else a pcap-filter expression compiled for ``linktype`` and ``snaplen``."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return from_bytes(source)
    if isinstance(source, str):
        if _DD_START.match(source):
            return from_text(source)
        return compile(source, linktype=linktype, snaplen=snaplen)
    return [SockFilter(*i) for i in source]


def program(source, *, hatype: int = isa.ARPHRD_ETHER, linktype: int = isa.DLT_EN10MB,
            snaplen: int = 262144, **kwargs):
    """A ``socket_filter`` :class:`pyebpf.Program` running the classic program in
    ``source`` (anything :func:`read` takes) as the kernel runs it after
    ``SO_ATTACH_FILTER``: ``run(frame).retval`` is what the filter returned, the
    number of bytes a packet socket keeps (0 drops it).  ``hatype`` is the device
    type ``SKF_AD_HATYPE`` reads; other keywords go to :class:`pyebpf.Program`."""
    from .._core import Program
    insns = read(source, linktype=linktype, snaplen=snaplen)
    check(insns)
    code = b"".join(i.pack() for i in convert(insns, hatype=hatype))
    return Program(code, "socket_filter", classic=insns, **kwargs)
