# cython: annotation_typing=False, boundscheck=True, wraparound=True, cdivision=False
"""Scalar values: bounds kept in step with the tnum (the kernel's ``reg_bounds_sync``),
ALU results (``adjust_scalar_min_max_vals``), branch outcomes (``is_branch_taken``)
and what a taken or fallen-through branch teaches (``regs_refine_cond_op``).
"""
from __future__ import annotations

from .. import isa
from . import tnum
from .isaconst cimport (BPF_ADD, BPF_AND, BPF_ARSH, BPF_DIV, BPF_JEQ, BPF_JGE, BPF_JGT, BPF_JLE,
                        BPF_JLT, BPF_JNE, BPF_JSET, BPF_JSGE, BPF_JSGT, BPF_JSLE, BPF_JSLT,
                        BPF_LSH, BPF_MOD, BPF_MUL, BPF_OR, BPF_RSH, BPF_SUB, BPF_XOR)
from .reg cimport Reg
from .state import M32, M64, S32_MAX, S32_MIN, S64_MAX, S64_MIN, SCALAR, s32, s64


cpdef sync(Reg r):
    """reg_bounds_sync: bounds from the tnum, signed from unsigned and back, 32 from 64
    and back, then the tnum from the bounds."""
    key = (r.var, r.smin, r.smax, r.umin, r.umax, r.s32min, r.s32max, r.u32min, r.u32max)
    out = _SYNCED.get(key)
    if out is None:
        if len(_SYNCED) >= _SYNCED_MAX:
            _SYNCED.clear()
        out = _SYNCED[key] = _synced(key)
    (r.var, r.smin, r.smax, r.umin, r.umax, r.s32min, r.s32max, r.u32min, r.u32max) = out


# sync's answers by its inputs: a pure function of the tnum and the eight bounds, asked
# the same question again and again as a path or a loop repeats an instruction
_SYNCED: dict = {}
_SYNCED_MAX = 1 << 16


def _synced(key: tuple) -> tuple:
    var = key[0]
    v, m = var
    if not m:
        # a constant: every bound is the value (what the steps below arrive at)
        if key[3] <= v <= key[4] and key[1] <= s64(v) <= key[2] and \
                key[7] <= v & M32 <= key[8] and key[5] <= s32(v) <= key[6]:
            return (var, s64(v), s64(v), v, v, s32(v), s32(v), v & M32, v & M32)
    var, b = _single(var, _update(var, key[1:]))
    for _ in range(3):
        nb = _deduce(b)
        if nb == b:
            break   # a step that changes nothing changes nothing the next time either
        b = nb
    smin, smax, umin, umax, s32min, s32max, u32min, u32max = b
    if umin <= umax and smin <= smax and u32min <= u32max and s32min <= s32max:
        v64 = tnum.intersect(var, tnum.range_(umin, umax))
        v32 = tnum.intersect(tnum.subreg(v64), tnum.range_(u32min, u32max))
        var = tnum.or_(tnum.clear_subreg(v64), v32)
    var, b = _single(var, _update(var, b))
    return (var,) + b


def _tnum_step(v: int, m: int, z: int) -> int:
    """tnum_step: the least value of the tnum (v; m) above ``z`` (1 << 64 if none):
    its unknown bits, from the top, set only where the value could not pass ``z``
    without them."""
    y = z + 1
    if y <= v:
        return v
    if y > v | m:
        return 1 << 64
    out = v
    for bit in range(63, -1, -1):
        b = 1 << bit
        if m & b and out | (m & (b - 1)) < y:
            out |= b
    return out


def _single(var, b) -> tuple:
    """__update_reg64_bounds (6.18): where the unsigned range holds one value of the
    tnum only, the register is that constant (a range whose bounds are out of order
    is left to the checks that find it dead)."""
    umin, umax = b[2], b[3]
    v, m = var
    if not m or umin > umax:
        return var, b
    nxt = _tnum_step(v, m, umin)
    if (umin & ~m) == v:
        if nxt <= umax:
            return var, b
        val = umin
    elif nxt == v | m:
        val = nxt
    elif nxt <= umax and _tnum_step(v, m, nxt) > umax:
        val = nxt
    else:
        return var, b
    return (val, 0), (s64(val), s64(val), val, val, s32(val), s32(val), val & M32,
                      val & M32)


def _update(var, b) -> tuple:
    """__update_reg_bounds: the bounds ``b`` (smin, smax, umin, umax, s32min, s32max,
    u32min, u32max) narrowed to what the tnum ``var`` allows."""
    smin, smax, umin, umax, s32min, s32max, u32min, u32max = b
    v, m = var
    x = v | (m & (1 << 63))
    x = x - (1 << 64) if x >> 63 else x
    if x > smin:
        smin = x
    x = v | (m & S64_MAX)
    x = x - (1 << 64) if x >> 63 else x
    if x < smax:
        smax = x
    if v > umin:
        umin = v
    if v | m < umax:
        umax = v | m
    v32, m32 = v & M32, m & M32
    x = v32 | (m32 & 0x80000000)
    x = x - (1 << 32) if x >> 31 else x
    if x > s32min:
        s32min = x
    x = v32 | (m32 & 0x7FFFFFFF)
    x = x - (1 << 32) if x >> 31 else x
    if x < s32max:
        s32max = x
    if v32 > u32min:
        u32min = v32
    if v32 | m32 < u32max:
        u32max = v32 | m32
    return smin, smax, umin, umax, s32min, s32max, u32min, u32max


def _s32(v: int) -> int:
    v &= M32
    return v - (1 << 32) if v >> 31 else v


def _deduce(b) -> tuple:
    """One round of __reg_deduce_bounds on the bounds ``b`` (as :func:`_update`)."""
    smin, smax, umin, umax, s32min, s32max, u32min, u32max = b
    # 32-bit bounds from 64-bit ones whose upper halves agree
    if umin >> 32 == umax >> 32:
        x = umin & M32
        if x > u32min:
            u32min = x
        x = umax & M32
        if x < u32max:
            u32max = x
        lo, hi = _s32(umin), _s32(umax)
        if lo <= hi:
            if lo > s32min:
                s32min = lo
            if hi < s32max:
                s32max = hi
    if smin >> 32 == smax >> 32:
        if (smin & M32) <= (smax & M32):
            x = smin & M32
            if x > u32min:
                u32min = x
            x = smax & M32
            if x < u32max:
                u32max = x
        lo, hi = _s32(smin), _s32(smax)
        if lo <= hi:
            if lo > s32min:
                s32min = lo
            if hi < s32max:
                s32max = hi
    # a 64-bit range whose upper halves are two consecutive numbers and whose lower
    # halves go from negative to positive is a valid s32 range too
    for lo64, hi64 in ((umin, umax), (smin & M64, smax & M64)):
        if ((lo64 >> 32) + 1) & M32 == hi64 >> 32 and _s32(lo64) < 0 <= _s32(hi64):
            if _s32(lo64) > s32min:
                s32min = _s32(lo64)
            if _s32(hi64) < s32max:
                s32max = _s32(hi64)
    # signed and unsigned 32-bit views of a range that does not cross a sign boundary
    lo, hi = _s32(u32min), _s32(u32max)
    if lo <= hi:
        if lo > s32min:
            s32min = lo
        if hi < s32max:
            s32max = hi
    if (s32min & M32) <= (s32max & M32):
        x = s32min & M32
        if x > u32min:
            u32min = x
        x = s32max & M32
        if x < u32max:
            u32max = x
    elif u32max < (s32min & M32):
        # an s32 range across the sign boundary whose u32 range lies within one of its
        # two sides: that side is the range (__reg32_deduce_bounds)
        s32min = _s32(u32min)
        u32max = min(u32max, s32max & M32)
    elif (s32max & M32) < u32min:
        s32max = _s32(u32max)
        u32min = max(u32min, s32min & M32)
    # the same for 64 bits
    lo, hi = s64(umin), s64(umax)
    if lo <= hi:
        if lo > smin:
            smin = lo
        if hi < smax:
            smax = hi
    if (smin & M64) <= (smax & M64):
        x = smin & M64
        if x > umin:
            umin = x
        x = smax & M64
        if x < umax:
            umax = x
    elif umax < (smin & M64):
        # the same across the 64-bit sign boundary (__reg64_deduce_bounds)
        smin = s64(umin)
        umax = min(umax, smax & M64)
    elif (smax & M64) < umin:
        smax = s64(umax)
        umin = max(umin, smin & M64)
    # 64-bit bounds from the 32-bit ones (__reg_deduce_mixed_bounds)
    if u32min <= u32max:
        x = (umin & ~M32 & M64) | u32min
        if x > umin:
            umin = x
        x = (umax & ~M32 & M64) | u32max
        if x < umax:
            umax = x
        x = s64((smin & ~M32) | u32min)
        if x > smin:
            smin = x
        x = s64((smax & ~M32) | u32max)
        if x < smax:
            smax = x
    # after a sign-extending load: a value within the s32 range whose low half is
    # non-negative cannot have its upper half all ones
    if s32min >= 0 and smin >= S32_MIN and smax <= S32_MAX:
        smin, smax = s32min, s32max
        umin, umax = s32min, s32max
    return smin, smax, umin, umax, s32min, s32max, u32min, u32max


cpdef bint valid(Reg r):
    return (r.umin <= r.umax and r.smin <= r.smax and r.u32min <= r.u32max
            and r.s32min <= r.s32max)


# --- ALU on scalars -------------------------------------------------------------------
# _view, _const_eval, _set and _bounds are C functions, and sync and valid C calls
# here: asked per ALU instruction and branch, a Python call costs more than their work

cdef tuple _view(Reg r, bits):
    if bits == 64:
        return r.var, r.umin, r.umax, r.smin, r.smax
    return tnum.subreg(r.var), r.u32min, r.u32max, r.s32min, r.s32max


cdef object _const_eval(long op, a, b, bits):
    sa = a - (1 << bits) if a >> (bits - 1) else a
    if op == BPF_ADD:
        return a + b
    if op == BPF_SUB:
        return a - b
    if op == BPF_MUL:
        return a * b
    if op == BPF_OR:
        return a | b
    if op == BPF_AND:
        return a & b
    if op == BPF_XOR:
        return a ^ b
    if op == BPF_LSH:
        return a << b
    if op == BPF_RSH:
        return a >> b
    if op == BPF_ARSH:
        return sa >> b
    raise AssertionError(op)


def alu(Reg dst, Reg src, long op, bits: int) -> None:
    """``dst op= src`` on scalars, ``bits`` 64 or 32 (the result zero-extended)."""
    W = (1 << bits) - 1
    SMIN, SMAX = (S64_MIN, S64_MAX) if bits == 64 else (S32_MIN, S32_MAX)
    av, aumin, aumax, asmin, asmax = _view(dst, bits)
    bv, bumin, bumax, bsmin, bsmax = _view(src, bits)
    b_const = bv[1] == 0
    if op in (BPF_DIV, BPF_MOD) or \
            op in (BPF_LSH, BPF_RSH, BPF_ARSH) and (not b_const or bv[0] >= bits):
        # is_safe_to_compute_dst_reg_range: a quotient or remainder (signed or not, even
        # of two constants) and a shift by an unknown or too large amount are unknown;
        # a 32-bit one in all 64 bits, as adjust_scalar_min_max_vals' __mark_reg_unknown
        # returns before its zext_32_to_64
        _set(dst, (0, M64), 0, M64, S64_MIN, S64_MAX, 64)
        return
    if av[1] == 0 and b_const:
        # a constant result (a 32-bit one zero-extended) needs no bounds reasoning
        dst.type, dst.id, dst.off = SCALAR, 0, 0
        dst.mark_known(_const_eval(op, av[0], bv[0], bits) & W)
        return
    umin, umax, smin, smax = 0, W, SMIN, SMAX
    if op == BPF_ADD:
        var = tnum.add(av, bv)
        # scalar(32)_min_max_add: no sum wraps, or every sum does (then they wrap
        # alike and stay in order); only some wrapping loses the bounds
        if aumax + bumax <= W or aumin + bumin > W:
            umin, umax = (aumin + bumin) & W, (aumax + bumax) & W
        if SMIN <= asmin + bsmin and asmax + bsmax <= SMAX:
            smin, smax = asmin + bsmin, asmax + bsmax
    elif op == BPF_SUB:
        var = tnum.sub(av, bv)
        # scalar(32)_min_max_sub: likewise no difference wraps below 0, or every one
        if aumin >= bumax or aumax < bumin:
            umin, umax = (aumin - bumax) & W, (aumax - bumin) & W
        if SMIN <= asmin - bsmax and asmax - bsmin <= SMAX:
            smin, smax = asmin - bsmax, asmax - bsmin
    elif op == BPF_MUL:
        var = tnum.mul(av, bv)
        if aumax * bumax <= W:
            umin, umax = aumin * bumin, aumax * bumax
        corners = [x * y for x in (asmin, asmax) for y in (bsmin, bsmax)]
        if SMIN <= min(corners) and max(corners) <= SMAX:
            smin, smax = min(corners), max(corners)
    elif op == BPF_AND:
        var = tnum.and_(av, bv)
        umin, umax = var[0], min(aumax, bumax)
        if asmin >= 0 and bsmin >= 0:
            smin, smax = umin, umax
    elif op == BPF_OR:
        var = tnum.or_(av, bv)
        umin, umax = max(aumin, bumin), var[0] | var[1]
        if asmin >= 0 and bsmin >= 0:
            smin, smax = umin, umax
    elif op == BPF_XOR:
        var = tnum.xor(av, bv)
        umin, umax = var[0], var[0] | var[1]
        if asmin >= 0 and bsmin >= 0:
            smin, smax = umin, umax
    elif op == BPF_LSH:
        k = bv[0]
        var = tnum.cast(tnum.lshift(av, k), bits // 8)
        # __scalar64_min_max_lsh / __scalar32_min_max_lsh: the bounds shift only where
        # the top bit cannot be shifted out, umax <= 1 << (bits - 1 - k); above that
        # (0xffffffff << 32 included, which loses nothing) they are unknown
        if aumax <= 1 << (bits - 1 - k):
            umin, umax = aumin << k, aumax << k
        if bits == 64 and k == 32:
            # __scalar64_min_max_lsh's special case, the <<32 of a <<32 s>>32 sign
            # extension: the 32-bit signed bounds, shifted, cannot change sign
            smin, smax = dst.s32min << 32, dst.s32max << 32
    elif op == BPF_RSH:
        k = bv[0]
        var = tnum.rshift(av, k)
        umin, umax = aumin >> k, aumax >> k
    else:       # BPF_ARSH: every other op is above
        k = bv[0]
        var = tnum.arshift(av, k, bits)
        smin, smax = asmin >> k, asmax >> k
    _set(dst, var, umin, umax, smin, smax, bits)


cdef _set(Reg r, var, umin, umax, smin, smax, bits):
    # an ALU result is unlinked and keeps no link's offset: the kernel compares such a
    # result exactly equal to one that never had a link (regs_exact, infinite-loop
    # detection), the offset of an `r += 2` before it forgotten
    r.type = SCALAR
    r.id = r.off = 0
    if bits == 64:
        r.mark_unbounded()
        r.var = var
        r.umin, r.umax, r.smin, r.smax = umin, umax, smin, smax
    else:
        # a 32-bit result, zero-extended to 64 bits
        r.var = tnum.subreg(var)
        r.u32min, r.u32max, r.s32min, r.s32max = umin, umax, smin, smax
        r.umin, r.umax, r.smin, r.smax = umin, umax, umin, umax
    sync(r)


def zext32(Reg r) -> None:
    """Keep the low 32 bits of a scalar (what every ALU32 result and 32-bit move does)."""
    _set(r, tnum.subreg(r.var), r.u32min, r.u32max, r.s32min, r.s32max, 32)


def truncate(Reg r, size: int) -> None:
    """coerce_reg_to_size: keep the low ``size`` bytes, zero-extended; the id stays
    (a fill the spilled value fits in is still linked to it: check_stack_read_fixed_off
    drops the id of a narrowing one itself).  Of 4 bytes, the 32-bit bounds stay too (a
    32-bit fill keeps what a branch taught the spilled register's low half)."""
    if size >= 8:
        return
    bits = size * 8
    W = (1 << bits) - 1
    var = tnum.cast(r.var, size)
    if r.umin >> bits == r.umax >> bits:
        umin, umax = r.umin & W, r.umax & W
    else:
        umin, umax = 0, W
    s32min, s32max, u32min, u32max = r.s32min, r.s32max, r.u32min, r.u32max
    r.type = SCALAR
    r.mark_unbounded()
    if size == 4:
        r.s32min, r.s32max, r.u32min, r.u32max = s32min, s32max, u32min, u32max
    r.var, r.umin, r.umax = var, umin, umax
    r.smin, r.smax = umin, umax
    sync(r)


def _sx(v: int, bits: int) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def _sx_one_side(Reg r, lo: int, hi: int) -> None:
    # a sign-extended range on one side of zero: every bound is the range
    r.smin = r.s32min = lo
    r.smax = r.s32max = hi
    r.umin, r.umax = lo & M64, hi & M64
    r.u32min, r.u32max = lo & M32, hi & M32
    r.var = tnum.range_(lo & M64, hi & M64)


def sign_extend(Reg r, size: int) -> None:
    """coerce_reg_to_size_sx: the result of a sign-extending load or 64-bit move of
    ``size`` bytes.  From 32 bits it is the source's signed 32-bit range (6.18,
    measured: whatever the 64-bit one), every bound on one side of zero, else signed
    bounds only.  From 8 or 16, bounds survive when the source's signed range lies in
    one block of 2**bits values and sign-extends to one side of zero; else only the
    size's range."""
    bits = size * 8
    if r.is_const:
        r.mark_known(_sx(r.value, bits))
        return
    if bits == 32:
        lo, hi = r.s32min, r.s32max
        if (lo >= 0) == (hi >= 0):
            _sx_one_side(r, lo, hi)
        else:
            r.smin, r.smax = lo, hi
            r.umin, r.umax, r.u32min, r.u32max = 0, M64, 0, M32
            r.var = tnum.UNKNOWN
        return
    if (r.smax & M64) >> bits == (r.smin & M64) >> bits:
        a, b = _sx(r.smax, bits), _sx(r.smin, bits)
        lo, hi = min(a, b), max(a, b)
        if (lo >= 0) == (hi >= 0):
            _sx_one_side(r, lo, hi)
            return
    r.smin = r.s32min = -(1 << (bits - 1))
    r.smax = r.s32max = (1 << (bits - 1)) - 1
    r.umin, r.umax, r.u32min, r.u32max = 0, M64, 0, M32
    r.var = tnum.UNKNOWN


def sign_extend32(Reg r, size: int) -> None:
    """coerce_subreg_to_size_sx then zero extension: a 32-bit move sign-extending the
    low ``size`` bytes (``w1 = (s8)w2``), by the same rule on the 32-bit bounds."""
    bits = size * 8
    if r.is_const:
        u, v = _sx(r.value, bits) & M32, _sx(r.value, bits)
        _set(r, tnum.const(u), u, u, v, v, 32)
        return
    if (r.s32max & M32) >> bits == (r.s32min & M32) >> bits:
        a, b = _sx(r.s32max, bits), _sx(r.s32min, bits)
        lo, hi = min(a, b), max(a, b)
        if (lo >= 0) == (hi >= 0):
            _set(r, tnum.range_(lo & M32, hi & M32), lo & M32, hi & M32, lo, hi, 32)
            return
    _set(r, tnum.subreg(tnum.UNKNOWN), 0, M32, -(1 << (bits - 1)), (1 << (bits - 1)) - 1,
         32)


# --- branches --------------------------------------------------------------------------

_REV = {isa.BPF_JEQ: isa.BPF_JNE, isa.BPF_JNE: isa.BPF_JEQ, isa.BPF_JGT: isa.BPF_JLE,
        isa.BPF_JLE: isa.BPF_JGT, isa.BPF_JGE: isa.BPF_JLT, isa.BPF_JLT: isa.BPF_JGE,
        isa.BPF_JSGT: isa.BPF_JSLE, isa.BPF_JSLE: isa.BPF_JSGT, isa.BPF_JSGE: isa.BPF_JSLT,
        isa.BPF_JSLT: isa.BPF_JSGE, isa.BPF_JSET: -1, -1: isa.BPF_JSET}
_SWAP = {isa.BPF_JGT: isa.BPF_JLT, isa.BPF_JGE: isa.BPF_JLE, isa.BPF_JSGT: isa.BPF_JSLT,
         isa.BPF_JSGE: isa.BPF_JSLE}


cdef tuple _bounds(Reg r, bint is32):
    if is32:
        return tnum.subreg(r.var), r.u32min, r.u32max, r.s32min, r.s32max
    return r.var, r.umin, r.umax, r.smin, r.smax


def branch_taken(Reg a, Reg b, long op, is32: bool) -> int:
    """1 when the jump is always taken, 0 never, -1 when either may happen."""
    (av, aumin, aumax, asmin, asmax) = _bounds(a, is32)
    (bv, bumin, bumax, bsmin, bsmax) = _bounds(b, is32)
    if op == BPF_JEQ or op == BPF_JNE:
        eq = op == BPF_JEQ
        if av[1] == 0 and bv[1] == 0:
            return int((av[0] == bv[0]) == eq)
        if aumin > bumax or aumax < bumin or asmin > bsmax or asmax < bsmin or \
                (av[0] ^ bv[0]) & ~(av[1] | bv[1]) & M64:
            return int(not eq)
        return -1
    if op == BPF_JSET:
        if av[1] and not bv[1]:
            pass
        elif bv[1] and not av[1]:
            av, bv = bv, av
        if bv[1] == 0:
            val = bv[0]
            if av[0] & val:
                return 1
            if not (av[0] | av[1]) & val:
                return 0
        return -1
    # only the comparison asked (branch_taken runs at every conditional jump)
    if op == BPF_JGT:
        yes, no = aumin > bumax, aumax <= bumin
    elif op == BPF_JGE:
        yes, no = aumin >= bumax, aumax < bumin
    elif op == BPF_JLT:
        yes, no = aumax < bumin, aumin >= bumax
    elif op == BPF_JLE:
        yes, no = aumax <= bumin, aumin > bumax
    elif op == BPF_JSGT:
        yes, no = asmin > bsmax, asmax <= bsmin
    elif op == BPF_JSGE:
        yes, no = asmin >= bsmax, asmax < bsmin
    elif op == BPF_JSLT:
        yes, no = asmax < bsmin, asmin >= bsmax
    elif op == BPF_JSLE:
        yes, no = asmax <= bsmin, asmin > bsmax
    else:
        raise AssertionError(op)
    return 1 if yes else 0 if no else -1


def reverse(op: int) -> int:
    """The condition of the fall-through (-1 stands for 'JSET not set')."""
    return _REV[op]


# the bound fields refine narrows, by number: _get and _put read and write them as C
# field accesses (getattr and setattr by name cost a Python attribute look-up each)
cdef enum:
    R_UMIN, R_UMAX, R_SMIN, R_SMAX, R_U32MIN, R_U32MAX, R_S32MIN, R_S32MAX


cdef object _get(Reg r, int field):
    if field == R_UMIN:
        return r.umin
    if field == R_UMAX:
        return r.umax
    if field == R_SMIN:
        return r.smin
    if field == R_SMAX:
        return r.smax
    if field == R_U32MIN:
        return r.u32min
    if field == R_U32MAX:
        return r.u32max
    if field == R_S32MIN:
        return r.s32min
    return r.s32max


cdef void _put(Reg r, int field, v):
    if field == R_UMIN:
        r.umin = v
    elif field == R_UMAX:
        r.umax = v
    elif field == R_SMIN:
        r.smin = v
    elif field == R_SMAX:
        r.smax = v
    elif field == R_U32MIN:
        r.u32min = v
    elif field == R_U32MAX:
        r.u32max = v
    elif field == R_S32MIN:
        r.s32min = v
    else:
        r.s32max = v


cdef void _meet(Reg a, Reg b, int lo, int hi):
    """Both registers' [lo, hi] the intersection of theirs."""
    m, M = max(_get(a, lo), _get(b, lo)), min(_get(a, hi), _get(b, hi))
    _put(a, lo, m)
    _put(a, hi, M)
    _put(b, lo, m)
    _put(b, hi, M)


def refine(Reg a, Reg b, long op, is32: bool) -> bool:
    """Narrow ``a`` and ``b`` knowing ``a op b`` holds; False when it cannot."""
    cdef int lo, hi
    if op in _SWAP:
        a, b, op = b, a, _SWAP[op]
    if op == BPF_JEQ:
        if is32:
            _meet(a, b, R_U32MIN, R_U32MAX)
            _meet(a, b, R_S32MIN, R_S32MAX)
            t = tnum.intersect(tnum.subreg(a.var), tnum.subreg(b.var))
            a.var, b.var = tnum.with_subreg(a.var, t), tnum.with_subreg(b.var, t)
        else:
            _meet(a, b, R_UMIN, R_UMAX)
            _meet(a, b, R_SMIN, R_SMAX)
            if (a.var[0] ^ b.var[0]) & ~(a.var[1] | b.var[1]) & M64:
                return False
            t = tnum.intersect(a.var, b.var)
            a.var = b.var = t
    elif op in (BPF_JNE, BPF_JSET, -1):
        bv = _bounds(b, is32)[0]
        if bv[1]:
            a, b = b, a
            bv = _bounds(b, is32)[0]
        if bv[1] == 0:
            val = bv[0]
            if op == BPF_JNE:
                names = ((R_U32MIN, R_U32MAX, val & M32), (R_S32MIN, R_S32MAX, s32(val))) \
                    if is32 else ((R_UMIN, R_UMAX, val & M64), (R_SMIN, R_SMAX, s64(val)))
                for lo, hi, v in names:
                    if _get(a, lo) == v:
                        _put(a, lo, v + 1)
                    if _get(a, hi) == v:
                        _put(a, hi, v - 1)
            elif op == BPF_JSET:
                if val and not val & (val - 1):
                    a.var = tnum.with_subreg(a.var, tnum.or_(tnum.subreg(a.var), (val, 0))) \
                        if is32 else tnum.or_(a.var, (val, 0))
            else:
                mask = ~val & (M32 if is32 else M64)
                a.var = tnum.with_subreg(a.var, tnum.and_(tnum.subreg(a.var), (mask, 0))) \
                    if is32 else tnum.and_(a.var, (mask, 0))
    else:
        strict = op in (BPF_JLT, BPF_JSLT)
        signed = op in (BPF_JSLT, BPF_JSLE)
        lo, hi = ((R_S32MIN, R_S32MAX) if signed else (R_U32MIN, R_U32MAX)) if is32 else \
            ((R_SMIN, R_SMAX) if signed else (R_UMIN, R_UMAX))
        d = 1 if strict else 0
        _put(a, hi, min(_get(a, hi), _get(b, hi) - d))
        _put(b, lo, max(_get(b, lo), _get(a, lo) + d))
    for r in (a, b):
        if not valid(r):
            return False
        sync(r)
        if not valid(r):
            return False
    return True
