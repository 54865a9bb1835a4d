# cython: annotation_typing=False, boundscheck=True, wraparound=True, cdivision=False
"""Tristate numbers: a 64-bit value whose bits are known 0, known 1 or unknown.

A tnum is a ``(value, mask)`` pair: bits set in ``mask`` are unknown, the others are
``value``'s.  The operations are the kernel's (``kernel/bpf/tnum.c``), on Python ints
kept in 0..2**64-1.
"""
from __future__ import annotations

M64 = (1 << 64) - 1
M32 = (1 << 32) - 1

UNKNOWN = (0, M64)


def const(v: int) -> tuple[int, int]:
    return (v & M64, 0)


def is_const(t) -> bool:
    return t[1] == 0


def range_(lo: int, hi: int) -> tuple[int, int]:
    """The smallest tnum holding every value of [lo, hi] (unsigned) (tnum_range)."""
    chi = lo ^ hi
    if chi == 0:
        return (lo, 0)
    bits = chi.bit_length()
    if bits > 63:
        return UNKNOWN
    delta = (1 << bits) - 1
    return (lo & ~delta & M64, delta)


def add(a, b):
    sm = (a[1] + b[1]) & M64
    sv = (a[0] + b[0]) & M64
    sigma = (sm + sv) & M64
    chi = sigma ^ sv
    mu = chi | a[1] | b[1]
    return (sv & ~mu & M64, mu)


def sub(a, b):
    dv = (a[0] - b[0]) & M64
    alpha = (dv + a[1]) & M64
    beta = (dv - b[1]) & M64
    chi = alpha ^ beta
    mu = chi | a[1] | b[1]
    return (dv & ~mu & M64, mu)


def and_(a, b):
    alpha = a[0] | a[1]
    beta = b[0] | b[1]
    v = a[0] & b[0]
    return (v, alpha & beta & ~v & M64)


def or_(a, b):
    v = a[0] | b[0]
    mu = a[1] | b[1]
    return (v, mu & ~v & M64)


def xor(a, b):
    v = a[0] ^ b[0]
    mu = a[1] | b[1]
    return (v & ~mu & M64, mu)


def mul(a, b):
    # tnum_mul: long multiplication, one known/unknown bit of a at a time
    acc_v = (a[0] * b[0]) & M64
    acc_m = (0, 0)
    av, am = a
    bt = b
    while av or am:
        if av & 1:
            acc_m = add(acc_m, (0, bt[1]))
        elif am & 1:
            acc_m = add(acc_m, (0, bt[0] | bt[1]))
        av >>= 1
        am >>= 1
        bt = ((bt[0] << 1) & M64, (bt[1] << 1) & M64)
    return add((acc_v, 0), acc_m)


def lshift(a, n):
    return ((a[0] << n) & M64, (a[1] << n) & M64)


def rshift(a, n):
    return (a[0] >> n, a[1] >> n)


def arshift(a, n, bits=64):
    def sar(x):
        if bits == 32:
            x &= M32
            if x & (1 << 31):
                x -= 1 << 32
            return (x >> n) & M32
        if x & (1 << 63):
            x -= 1 << 64
        return (x >> n) & M64
    return (sar(a[0]), sar(a[1]))


def intersect(a, b):
    v = a[0] | b[0]
    mu = a[1] & b[1]
    return (v & ~mu & M64, mu)


def subreg(a):
    return (a[0] & M32, a[1] & M32)


def clear_subreg(a):
    return (a[0] & ~M32 & M64, a[1] & ~M32 & M64)


def with_subreg(a, s):
    return or_(clear_subreg(a), subreg(s))


def const_subreg(a, v):
    return with_subreg(a, const(v & M32))


def in_(a, b) -> bool:
    """True when every value of ``b`` is a value of ``a`` (tnum_in)."""
    if b[1] & ~a[1] & M64:
        return False
    return a[0] == b[0] & ~a[1] & M64


def is_aligned(a, size: int) -> bool:
    if not size:
        return True
    return not ((a[0] | a[1]) & (size - 1))


def bswap(a, size: int):
    """tnum_bswap16/32/64: the low ``size`` bytes of value and mask in reverse order."""
    def swab(x):
        return int.from_bytes((x & ((1 << (size * 8)) - 1)).to_bytes(size, "little"), "big")
    return swab(a[0]), swab(a[1])


def cast(a, size: int):
    m = (1 << (8 * size)) - 1
    return (a[0] & m, a[1] & m)


def text(a) -> str:
    """The kernel's tnum_strn: the value of a constant, else ``(0x0; 0xff)``."""
    if a[1] == 0:
        return str(a[0])
    return f"({a[0]:#x}; {a[1]:#x})"
