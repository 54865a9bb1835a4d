"""Classic BPF instructions (``struct sock_filter``) and the texts they come in.

A program is a list of :class:`SockFilter`: ``code`` (u16), ``jt``, ``jf`` (u8) and
``k`` (u32), 8 bytes each in host order as ``SO_ATTACH_FILTER`` takes them.  Readers
accept raw bytes, ``tcpdump -dd`` (C array) and ``tcpdump -ddd`` (decimal) text.
"""
from __future__ import annotations

import re
import struct
from typing import NamedTuple

from .. import isa
from ..errors import ClassicError

_FMT = struct.Struct("=HBBI")


class SockFilter(NamedTuple):
    """One ``struct sock_filter``."""
    code: int
    jt: int
    jf: int
    k: int

    def __str__(self) -> str:
        return describe(self)


def from_bytes(raw) -> list[SockFilter]:
    """The instructions in ``raw`` (8 bytes each, host order)."""
    raw = bytes(raw)
    if len(raw) % _FMT.size:
        raise ClassicError(f"{len(raw)} bytes is not a whole number of 8-byte "
                           "struct sock_filter instructions")
    return [SockFilter(*f) for f in _FMT.iter_unpack(raw)]


def to_bytes(insns) -> bytes:
    """``insns`` packed as the ``struct sock_filter`` array the kernel takes."""
    return b"".join(_FMT.pack(*i) for i in insns)


_DD_LINE = re.compile(r"\{\s*(\w+)\s*,\s*(\w+)\s*,\s*(\w+)\s*,\s*(\w+)\s*\}\s*,?")


def _int(text: str, line: int, what: str, limit: int) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise ClassicError(f"line {line}: {what} {text!r} is not a number") from None
    if not 0 <= value <= limit:
        raise ClassicError(f"line {line}: {what} {value} is outside 0..{limit}")
    return value


def _insn(fields, line: int) -> SockFilter:
    return SockFilter(_int(fields[0], line, "code", 0xFFFF), _int(fields[1], line, "jt", 0xFF),
                      _int(fields[2], line, "jf", 0xFF), _int(fields[3], line, "k", 0xFFFFFFFF))


def from_text(text: str) -> list[SockFilter]:
    """Parse ``tcpdump -dd`` output (``{ 0x28, 0, 0, 0x0000000c },`` per line) or
    ``tcpdump -ddd`` output (a count line, then ``code jt jf k`` in decimal)."""
    lines = [(n, ln.strip()) for n, ln in enumerate(text.splitlines(), 1) if ln.strip()]
    if not lines:
        raise ClassicError("no instructions in the text")
    if lines[0][1].startswith("{"):
        insns = []
        for n, ln in lines:
            m = _DD_LINE.fullmatch(ln)
            if m is None:
                raise ClassicError(f"line {n}: expected '{{ code, jt, jf, k }},' "
                                   f"(tcpdump -dd), got {ln[:60]!r}")
            insns.append(_insn(m.groups(), n))
        return insns
    n0, first = lines[0]
    count = _int(first, n0, "instruction count", isa.BPF_MAXINSNS * 16)
    insns = []
    for n, ln in lines[1:]:
        fields = ln.split()
        if len(fields) != 4:
            raise ClassicError(f"line {n}: expected 'code jt jf k' (tcpdump -ddd), "
                               f"got {ln[:60]!r}")
        insns.append(_insn(fields, n))
    if len(insns) != count:
        raise ClassicError(f"line {n0}: the count says {count} instructions, "
                           f"the text holds {len(insns)}")
    return insns


_SIZE = {isa.BPF_W: "", isa.BPF_H: "h", isa.BPF_B: "b"}
_ALU = {isa.BPF_ADD: "add", isa.BPF_SUB: "sub", isa.BPF_MUL: "mul", isa.BPF_DIV: "div",
        isa.BPF_MOD: "mod", isa.BPF_AND: "and", isa.BPF_OR: "or", isa.BPF_XOR: "xor",
        isa.BPF_LSH: "lsh", isa.BPF_RSH: "rsh"}
_JMP = {isa.BPF_JEQ: "jeq", isa.BPF_JGT: "jgt", isa.BPF_JGE: "jge", isa.BPF_JSET: "jset"}
_AD_NAMES = {v: k for k, v in isa.SKF_AD.items()}


def _abs_operand(k: int) -> str:
    signed = k - (1 << 32) if k & 0x80000000 else k
    if signed >= isa.SKF_AD_OFF and signed - isa.SKF_AD_OFF in _AD_NAMES:
        return _AD_NAMES[signed - isa.SKF_AD_OFF]
    for base, name in ((isa.SKF_AD_OFF, "SKF_AD_OFF"), (isa.SKF_NET_OFF, "SKF_NET_OFF"),
                       (isa.SKF_LL_OFF, "SKF_LL_OFF")):
        if signed >= base and signed < 0:
            return f"[{name}+{signed - base}]"
    return f"[{k}]"


def describe(i: SockFilter) -> str:
    """The instruction in the mnemonics of ``tcpdump -d`` / ``bpf_asm``, with its raw
    fields when the code is not one the kernel knows."""
    cls, code, k = isa.BPF_CLASS(i.code), i.code, i.k
    size, mode = isa.BPF_SIZE(code), isa.BPF_MODE(code)
    if cls in (isa.BPF_LD, isa.BPF_LDX) and size in _SIZE:
        reg = "ld" if cls == isa.BPF_LD else "ldx"
        if mode == isa.BPF_IMM:
            return f"{reg} #{k:#x}"
        if mode == isa.BPF_MEM:
            return f"{reg} M[{k}]"
        if mode == isa.BPF_LEN:
            return f"{reg} #len"
        if mode == isa.BPF_ABS and cls == isa.BPF_LD:
            return f"ld{_SIZE[size]} {_abs_operand(k)}"
        if mode == isa.BPF_IND and cls == isa.BPF_LD:
            return f"ld{_SIZE[size]} [x+{k}]"
        if mode == isa.BPF_MSH and cls == isa.BPF_LDX and size == isa.BPF_B:
            return f"ldxb 4*([{k}]&0xf)"
    elif code == isa.BPF_ST:
        return f"st M[{k}]"
    elif code == isa.BPF_STX:
        return f"stx M[{k}]"
    elif cls == isa.BPF_ALU and isa.BPF_OP(code) in _ALU:
        src = "x" if code & isa.BPF_X else f"#{k:#x}"
        return f"{_ALU[isa.BPF_OP(code)]} {src}"
    elif code == isa.BPF_ALU | isa.BPF_NEG:
        return "neg"
    elif code == isa.BPF_JMP | isa.BPF_JA:
        return f"ja +{k}"
    elif cls == isa.BPF_JMP and isa.BPF_OP(code) in _JMP:
        src = "x" if code & isa.BPF_X else f"#{k:#x}"
        return f"{_JMP[isa.BPF_OP(code)]} {src} jt +{i.jt} jf +{i.jf}"
    elif code == isa.BPF_RET | isa.BPF_K:
        return f"ret #{k}"
    elif code == isa.BPF_RET | isa.BPF_A:
        return "ret a"
    elif code == isa.BPF_MISC | isa.BPF_TAX:
        return "tax"
    elif code == isa.BPF_MISC | isa.BPF_TXA:
        return "txa"
    return f"code {code:#06x} jt {i.jt} jf {i.jf} k {k:#x}"
