# cython: annotation_typing=False, boundscheck=True, wraparound=True, cdivision=False
"""Scalar values: bounds kept in step with the tnum (the kernel's ``reg_bounds_sync``),
ALU results (``adjust_scalar_min_max_vals``), branch outcomes (``is_branch_taken``)
and what a taken or fallen-through branch teaches (``regs_refine_cond_op``).
"""
from .. import isa
from .isaconst cimport (BPF_ADD, BPF_AND, BPF_ARSH, BPF_DIV, BPF_JEQ, BPF_JGE, BPF_JGT, BPF_JLE,
                        BPF_JLT, BPF_JNE, BPF_JSET, BPF_JSGE, BPF_JSGT, BPF_JSLE, BPF_JSLT,
                        BPF_LSH, BPF_MOD, BPF_MUL, BPF_OR, BPF_RSH, BPF_SUB, BPF_XOR)
from .reg cimport Reg, set_known, set_unbounded
from .reg import CONSTANTS
from .tnum cimport (Tnum, __builtin_clzll, tn, tn_add, tn_and, tn_clear_subreg, tn_intersect, tn_mul, tn_or,
                    tn_range, tn_sub, tn_subreg, tn_with_subreg, tn_xor, u64)

# Every bound is a C integer of the kernel's width, as in its struct bpf_reg_state, and
# every step here is the kernel's C arithmetic on them: a scalar's ALU result, sync and
# branch refinement allocate nothing (each was ~10-30 Python int operations)
ctypedef long long s64
ctypedef unsigned int u32
ctypedef int s32

cdef enum:
    S32_MAX = 0x7FFFFFFF
    S32_MIN = -0x7FFFFFFF - 1

cdef u64 U64_MAX = <u64>-1
cdef u64 U32_MAX = 0xFFFFFFFF
cdef s64 S64_MAX = 0x7FFFFFFFFFFFFFFF
cdef s64 S64_MIN = -0x7FFFFFFFFFFFFFFF - 1
cdef object SCALAR = CONSTANTS["SCALAR"]
cdef object ZERO = 0

cdef extern from *:
    # overflow of the sums and products whose bounds the kernel keeps only when none
    # overflows (check_add_overflow, check_mul_overflow)
    bint add_overflow_u64 "__builtin_add_overflow"(u64, u64, u64 *) nogil
    bint sub_overflow_u64 "__builtin_sub_overflow"(u64, u64, u64 *) nogil
    bint mul_overflow_u64 "__builtin_mul_overflow"(u64, u64, u64 *) nogil
    bint add_overflow_s64 "__builtin_add_overflow"(s64, s64, s64 *) nogil
    bint sub_overflow_s64 "__builtin_sub_overflow"(s64, s64, s64 *) nogil
    bint mul_overflow_s64 "__builtin_mul_overflow"(s64, s64, s64 *) nogil


# the eight bounds, in the order of bpf_reg_state
cdef struct Bounds:
    s64 smin, smax
    u64 umin, umax
    s64 s32min, s32max      # s32 and u32 values, held wider for the comparisons
    u64 u32min, u32max


cdef inline Bounds _get(Reg r) noexcept:
    cdef Bounds b
    b.smin, b.smax, b.umin, b.umax = r.smin, r.smax, r.umin, r.umax
    b.s32min, b.s32max, b.u32min, b.u32max = r.s32min, r.s32max, r.u32min, r.u32max
    return b


cdef inline void _put(Reg r, Bounds b, Tnum var) noexcept:
    r.smin, r.smax, r.umin, r.umax = b.smin, b.smax, b.umin, b.umax
    r.s32min, r.s32max = <s32>b.s32min, <s32>b.s32max
    r.u32min, r.u32max = <u32>b.u32min, <u32>b.u32max
    r.var_value, r.var_mask = var.value, var.mask


cdef inline bint _valid(Bounds *b) noexcept:
    return (b.umin <= b.umax and b.smin <= b.smax and b.u32min <= b.u32max and
            b.s32min <= b.s32max)


cdef inline bint _same(Bounds *a, Bounds *b) noexcept:
    return (a.smin == b.smin and a.smax == b.smax and a.umin == b.umin and
            a.umax == b.umax and a.s32min == b.s32min and a.s32max == b.s32max and
            a.u32min == b.u32min and a.u32max == b.u32max)


cdef inline void _const_bounds(Bounds *b, u64 v) noexcept:
    b.smin = b.smax = <s64>v
    b.umin = b.umax = v
    b.s32min = b.s32max = <s32><u32>v
    b.u32min = b.u32max = <u32>v


cpdef sync(Reg r):
    """reg_bounds_sync: bounds from the tnum, signed from unsigned and back, 32 from 64
    and back, then the tnum from the bounds."""
    _sync(r)


cdef void _sync(Reg r) noexcept:
    cdef Bounds b = _get(r), nb
    cdef Tnum var = tn(r.var_value, r.var_mask), v64, v32
    cdef u64 v = var.value
    cdef int i
    if not var.mask and b.umin <= v <= b.umax and b.smin <= <s64>v <= b.smax and \
            b.u32min <= <u32>v <= b.u32max and b.s32min <= <s32><u32>v <= b.s32max:
        # a constant: every bound is the value (what the steps below arrive at)
        _const_bounds(&b, v)
        _put(r, b, var)
        return
    _update(&b, var)
    var = _single(&b, var)
    for i in range(3):
        nb = b
        _deduce(&nb)
        if _same(&nb, &b):
            break   # a step that changes nothing changes nothing the next time either
        b = nb
    if _valid(&b):
        v64 = tn_intersect(var, tn_range(b.umin, b.umax))
        v32 = tn_intersect(tn_subreg(v64), tn_range(b.u32min, b.u32max))
        var = tn_or(tn_clear_subreg(v64), v32)
    _update(&b, var)
    var = _single(&b, var)
    _put(r, b, var)


cdef inline bint _tnum_step(u64 v, u64 m, u64 z, u64 *out) noexcept:
    """tnum_step: the least value of the tnum (v; m) above ``z`` into ``out``; False
    if there is none: its unknown bits, from the top, set only where the value could
    not pass ``z`` without them."""
    cdef u64 y, o, bit, rest = m
    if z == U64_MAX:
        return False
    y = z + 1
    if y <= v:
        out[0] = v
        return True
    if y > v | m:
        return False
    o = v
    while rest:
        # the unknown bits from the top
        bit = <u64>1 << (63 - __builtin_clzll(rest))
        rest &= ~bit
        if o | rest < y:
            o |= bit
    out[0] = o
    return True


cdef Tnum _single(Bounds *b, Tnum var) noexcept:
    """__update_reg64_bounds (6.18): where the unsigned range holds one value of the
    tnum only, the register is that constant (a range whose bounds are out of order
    is left to the checks that find it dead)."""
    cdef u64 v = var.value, m = var.mask, umin = b.umin, umax = b.umax, nxt, after, val
    cdef bint has_next, has_after
    if not m or umin > umax:
        return var
    has_next = _tnum_step(v, m, umin, &nxt)
    if (umin & ~m) == v:
        if has_next and nxt <= umax:
            return var
        val = umin
    elif has_next and nxt == v | m:
        val = nxt
    elif has_next and nxt <= umax and \
            (not _tnum_step(v, m, nxt, &after) or after > umax):
        val = nxt
    else:
        return var
    _const_bounds(b, val)
    return tn(val, 0)


cdef void _update(Bounds *b, Tnum var) noexcept:
    """__update_reg_bounds: the bounds narrowed to what the tnum ``var`` allows."""
    cdef u64 v = var.value, m = var.mask, v32 = v & U32_MAX, m32 = m & U32_MAX
    cdef s64 x
    x = <s64>(v | (m & (<u64>1 << 63)))
    if x > b.smin:
        b.smin = x
    x = <s64>(v | (m & <u64>S64_MAX))
    if x < b.smax:
        b.smax = x
    if v > b.umin:
        b.umin = v
    if v | m < b.umax:
        b.umax = v | m
    x = <s32><u32>(v32 | (m32 & 0x80000000))
    if x > b.s32min:
        b.s32min = x
    x = <s32><u32>(v32 | (m32 & 0x7FFFFFFF))
    if x < b.s32max:
        b.s32max = x
    if v32 > b.u32min:
        b.u32min = v32
    if v32 | m32 < b.u32max:
        b.u32max = v32 | m32


cdef inline s64 _s32(u64 v) noexcept:
    return <s32><u32>v


cdef inline void _s32_within(Bounds *b, s64 lo, s64 hi) noexcept:
    # the s32 range narrowed to [lo, hi]
    if lo > b.s32min:
        b.s32min = lo
    if hi < b.s32max:
        b.s32max = hi


cdef inline void _u32_within(Bounds *b, u64 lo, u64 hi) noexcept:
    if lo > b.u32min:
        b.u32min = lo
    if hi < b.u32max:
        b.u32max = hi


cdef void _deduce(Bounds *b) noexcept:
    """One round of __reg_deduce_bounds."""
    cdef s64 lo, hi
    cdef u64 lo64, hi64, x
    cdef int i
    # 32-bit bounds from 64-bit ones whose upper halves agree
    if b.umin >> 32 == b.umax >> 32:
        _u32_within(b, b.umin & U32_MAX, b.umax & U32_MAX)
        lo, hi = _s32(b.umin), _s32(b.umax)
        if lo <= hi:
            _s32_within(b, lo, hi)
    if b.smin >> 32 == b.smax >> 32:
        if (<u64>b.smin & U32_MAX) <= (<u64>b.smax & U32_MAX):
            _u32_within(b, <u64>b.smin & U32_MAX, <u64>b.smax & U32_MAX)
        lo, hi = _s32(<u64>b.smin), _s32(<u64>b.smax)
        if lo <= hi:
            _s32_within(b, lo, hi)
    # a 64-bit range whose upper halves are two consecutive numbers and whose lower
    # halves go from negative to positive is a valid s32 range too
    for i in range(2):
        lo64, hi64 = (b.umin, b.umax) if i == 0 else (<u64>b.smin, <u64>b.smax)
        if <u32>((lo64 >> 32) + 1) == hi64 >> 32 and _s32(lo64) < 0 <= _s32(hi64):
            _s32_within(b, _s32(lo64), _s32(hi64))
    # signed and unsigned 32-bit views of a range that does not cross a sign boundary
    lo, hi = _s32(b.u32min), _s32(b.u32max)
    if lo <= hi:
        _s32_within(b, lo, hi)
    if <u32>b.s32min <= <u32>b.s32max:
        _u32_within(b, <u32>b.s32min, <u32>b.s32max)
    elif b.u32max < <u32>b.s32min:
        # an s32 range across the sign boundary whose u32 range lies within one of its
        # two sides: that side is the range (__reg32_deduce_bounds)
        b.s32min = _s32(b.u32min)
        b.u32max = min(b.u32max, <u32>b.s32max)
    elif <u32>b.s32max < b.u32min:
        b.s32max = _s32(b.u32max)
        b.u32min = max(b.u32min, <u32>b.s32min)
    # the same for 64 bits
    lo, hi = <s64>b.umin, <s64>b.umax
    if lo <= hi:
        if lo > b.smin:
            b.smin = lo
        if hi < b.smax:
            b.smax = hi
    if <u64>b.smin <= <u64>b.smax:
        if <u64>b.smin > b.umin:
            b.umin = <u64>b.smin
        if <u64>b.smax < b.umax:
            b.umax = <u64>b.smax
    elif b.umax < <u64>b.smin:
        # the same across the 64-bit sign boundary (__reg64_deduce_bounds)
        b.smin = <s64>b.umin
        b.umax = min(b.umax, <u64>b.smax)
    elif <u64>b.smax < b.umin:
        b.smax = <s64>b.umax
        b.umin = max(b.umin, <u64>b.smin)
    # 64-bit bounds from the 32-bit ones (__reg_deduce_mixed_bounds)
    if b.u32min <= b.u32max:
        x = (b.umin & ~U32_MAX) | b.u32min
        if x > b.umin:
            b.umin = x
        x = (b.umax & ~U32_MAX) | b.u32max
        if x < b.umax:
            b.umax = x
        lo = <s64>((<u64>b.smin & ~U32_MAX) | b.u32min)
        if lo > b.smin:
            b.smin = lo
        hi = <s64>((<u64>b.smax & ~U32_MAX) | b.u32max)
        if hi < b.smax:
            b.smax = hi
    # after a sign-extending load: a value within the s32 range whose low half is
    # non-negative cannot have its upper half all ones
    if b.s32min >= 0 and b.smin >= S32_MIN and b.smax <= S32_MAX:
        b.smin, b.smax = b.s32min, b.s32max
        b.umin, b.umax = <u64>b.s32min, <u64>b.s32max


cpdef bint valid(Reg r):
    return (r.umin <= r.umax and r.smin <= r.smax and r.u32min <= r.u32max
            and r.s32min <= r.s32max)


# --- ALU on scalars -------------------------------------------------------------------

# a register's tnum and bounds of one width (64, or the low 32 bits)
cdef struct View:
    Tnum var
    u64 umin, umax
    s64 smin, smax


cdef inline View _view(Reg r, int bits) noexcept:
    cdef View w
    if bits == 64:
        w.var = tn(r.var_value, r.var_mask)
        w.umin, w.umax, w.smin, w.smax = r.umin, r.umax, r.smin, r.smax
    else:
        w.var = tn_subreg(tn(r.var_value, r.var_mask))
        w.umin, w.umax, w.smin, w.smax = r.u32min, r.u32max, r.s32min, r.s32max
    return w


cdef u64 _const_eval(long op, u64 a, u64 b, int bits) except? 0:
    # the operation on two constants of ``bits`` bits, before truncation to them
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
        return <u64>((<s64>a if bits == 64 else <s64><s32><u32>a) >> b)
    raise AssertionError(op)


cpdef alu(Reg dst, Reg src, long op, int bits):
    """``dst op= src`` on scalars, ``bits`` 64 or 32 (the result zero-extended)."""
    cdef u64 W = U64_MAX if bits == 64 else U32_MAX, k, r1, r2
    cdef s64 SMIN = S64_MIN if bits == 64 else S32_MIN
    cdef s64 SMAX = S64_MAX if bits == 64 else S32_MAX, c, cmin, cmax
    cdef View a = _view(dst, bits), b = _view(src, bits)
    cdef bint b_const = b.var.mask == 0, ok
    cdef u64 umin = 0, umax = W
    cdef s64 smin = SMIN, smax = SMAX
    cdef Tnum var
    cdef int i
    if op == BPF_DIV or op == BPF_MOD or \
            (op == BPF_LSH or op == BPF_RSH or op == BPF_ARSH) and \
            (not b_const or b.var.value >= <u64>bits):
        # is_safe_to_compute_dst_reg_range: a quotient or remainder (signed or not, even
        # of two constants) and a shift by an unknown or too large amount are unknown;
        # a 32-bit one in all 64 bits, as adjust_scalar_min_max_vals' __mark_reg_unknown
        # returns before its zext_32_to_64
        _set(dst, tn(0, U64_MAX), 0, U64_MAX, S64_MIN, S64_MAX, 64)
        return
    if a.var.mask == 0 and b_const:
        # a constant result (a 32-bit one zero-extended) needs no bounds reasoning
        dst.type, dst.id, dst.off = SCALAR, ZERO, ZERO
        set_known(dst, _const_eval(op, a.var.value, b.var.value, bits) & W)
        return
    if op == BPF_ADD:
        var = tn_add(a.var, b.var)
        # scalar(32)_min_max_add: no sum wraps, or every sum does (then they wrap
        # alike and stay in order); only some wrapping loses the bounds
        if bits == 64:
            ok = add_overflow_u64(a.umin, b.umin, &r1)
            if not add_overflow_u64(a.umax, b.umax, &r2) or ok:
                umin, umax = r1, r2
            if not add_overflow_s64(a.smin, b.smin, &cmin) and \
                    not add_overflow_s64(a.smax, b.smax, &cmax):
                smin, smax = cmin, cmax
        else:
            if a.umax + b.umax <= W or a.umin + b.umin > W:
                umin, umax = (a.umin + b.umin) & W, (a.umax + b.umax) & W
            if SMIN <= a.smin + b.smin and a.smax + b.smax <= SMAX:
                smin, smax = a.smin + b.smin, a.smax + b.smax
    elif op == BPF_SUB:
        var = tn_sub(a.var, b.var)
        # scalar(32)_min_max_sub: likewise no difference wraps below 0, or every one
        if a.umin >= b.umax or a.umax < b.umin:
            umin, umax = (a.umin - b.umax) & W, (a.umax - b.umin) & W
        if bits == 64:
            if not sub_overflow_s64(a.smin, b.smax, &cmin) and \
                    not sub_overflow_s64(a.smax, b.smin, &cmax):
                smin, smax = cmin, cmax
        elif SMIN <= a.smin - b.smax and a.smax - b.smin <= SMAX:
            smin, smax = a.smin - b.smax, a.smax - b.smin
    elif op == BPF_MUL:
        var = tn_mul(a.var, b.var)
        if not mul_overflow_u64(a.umax, b.umax, &r2) and r2 <= W:
            umin, umax = a.umin * b.umin, r2
        # the four corners' products, none overflowing the width
        ok = True
        for i in range(4):
            if mul_overflow_s64(a.smin if i < 2 else a.smax, b.smin if i & 1 else b.smax,
                                &c) or c < SMIN or c > SMAX:
                ok = False
                break
            if i == 0 or c < cmin:
                cmin = c
            if i == 0 or c > cmax:
                cmax = c
        if ok:
            smin, smax = cmin, cmax
    elif op == BPF_AND:
        var = tn_and(a.var, b.var)
        umin, umax = var.value, min(a.umax, b.umax)
        if a.smin >= 0 and b.smin >= 0:
            smin, smax = <s64>umin, <s64>umax
    elif op == BPF_OR:
        var = tn_or(a.var, b.var)
        umin, umax = max(a.umin, b.umin), var.value | var.mask
        if a.smin >= 0 and b.smin >= 0:
            smin, smax = <s64>umin, <s64>umax
    elif op == BPF_XOR:
        var = tn_xor(a.var, b.var)
        umin, umax = var.value, var.value | var.mask
        if a.smin >= 0 and b.smin >= 0:
            smin, smax = <s64>umin, <s64>umax
    elif op == BPF_LSH:
        k = b.var.value
        var = tn((a.var.value << k) & W, (a.var.mask << k) & W)
        # __scalar64_min_max_lsh / __scalar32_min_max_lsh: the bounds shift only where
        # the top bit cannot be shifted out, umax <= 1 << (bits - 1 - k); above that
        # (0xffffffff << 32 included, which loses nothing) they are unknown
        if a.umax <= <u64>1 << (bits - 1 - k):
            umin, umax = a.umin << k, a.umax << k
        if bits == 64 and k == 32:
            # __scalar64_min_max_lsh's special case, the <<32 of a <<32 s>>32 sign
            # extension: the 32-bit signed bounds, shifted, cannot change sign
            smin = <s64>(<u64><s64>dst.s32min << 32)
            smax = <s64>(<u64><s64>dst.s32max << 32)
    elif op == BPF_RSH:
        k = b.var.value
        var = tn(a.var.value >> k, a.var.mask >> k)
        umin, umax = a.umin >> k, a.umax >> k
    elif op == BPF_ARSH:
        k = b.var.value
        if bits == 64:
            var = tn(<u64>(<s64>a.var.value >> k), <u64>(<s64>a.var.mask >> k))
        else:
            var = tn(<u32>(<s32><u32>a.var.value >> k), <u32>(<s32><u32>a.var.mask >> k))
        smin, smax = a.smin >> k, a.smax >> k
    else:
        raise AssertionError(op)
    _set(dst, var, umin, umax, smin, smax, bits)


cdef void _set(Reg r, Tnum var, u64 umin, u64 umax, s64 smin, s64 smax, int bits) noexcept:
    # an ALU result is unlinked and keeps no link's offset: the kernel compares such a
    # result exactly equal to one that never had a link (regs_exact, infinite-loop
    # detection), the offset of an `r += 2` before it forgotten
    r.type = SCALAR
    r.id = r.off = ZERO
    if bits == 64:
        set_unbounded(r)
        r.var_value, r.var_mask = var.value, var.mask
        r.umin, r.umax, r.smin, r.smax = umin, umax, smin, smax
    else:
        # a 32-bit result, zero-extended to 64 bits
        var = tn_subreg(var)
        r.var_value, r.var_mask = var.value, var.mask
        r.u32min, r.u32max, r.s32min, r.s32max = <u32>umin, <u32>umax, <s32>smin, <s32>smax
        r.umin, r.umax, r.smin, r.smax = umin, umax, <s64>umin, <s64>umax
    _sync(r)


cpdef zext32(Reg r):
    """Keep the low 32 bits of a scalar (what every ALU32 result and 32-bit move does)."""
    _set(r, tn_subreg(tn(r.var_value, r.var_mask)), r.u32min, r.u32max, r.s32min,
         r.s32max, 32)


cpdef truncate(Reg r, int size):
    """coerce_reg_to_size: keep the low ``size`` bytes, zero-extended; the id stays
    (a fill the spilled value fits in is still linked to it: check_stack_read_fixed_off
    drops the id of a narrowing one itself).  Of 4 bytes, the 32-bit bounds stay too (a
    32-bit fill keeps what a branch taught the spilled register's low half)."""
    if size >= 8:
        return
    cdef int bits = size * 8
    cdef u64 W = (<u64>1 << bits) - 1, umin, umax
    cdef Tnum var = tn(r.var_value & W, r.var_mask & W)
    cdef Bounds b = _get(r)
    if r.umin >> bits == r.umax >> bits:
        umin, umax = r.umin & W, r.umax & W
    else:
        umin, umax = 0, W
    r.type = SCALAR
    set_unbounded(r)
    if size == 4:
        r.s32min, r.s32max = <s32>b.s32min, <s32>b.s32max
        r.u32min, r.u32max = <u32>b.u32min, <u32>b.u32max
    r.var_value, r.var_mask = var.value, var.mask
    r.umin, r.umax = umin, umax
    r.smin, r.smax = <s64>umin, <s64>umax
    _sync(r)


cdef inline s64 _sx(u64 v, int bits) noexcept:
    # the low ``bits`` bits of ``v``, sign-extended
    if bits >= 64:
        return <s64>v
    v &= (<u64>1 << bits) - 1
    return <s64>(v - (<u64>1 << bits)) if v >> (bits - 1) else <s64>v


cdef void _sx_one_side(Reg r, s64 lo, s64 hi) noexcept:
    # a sign-extended range on one side of zero: every bound is the range
    cdef Tnum var = tn_range(<u64>lo, <u64>hi)
    r.smin, r.s32min = lo, <s32>lo
    r.smax, r.s32max = hi, <s32>hi
    r.umin, r.umax = <u64>lo, <u64>hi
    r.u32min, r.u32max = <u32>lo, <u32>hi
    r.var_value, r.var_mask = var.value, var.mask


cdef inline void _unknown_var(Reg r) noexcept:
    r.umin, r.umax, r.u32min, r.u32max = 0, U64_MAX, 0, U32_MAX
    r.var_value, r.var_mask = 0, U64_MAX


cpdef sign_extend(Reg r, int size):
    """coerce_reg_to_size_sx: the result of a sign-extending load or 64-bit move of
    ``size`` bytes.  From 32 bits it is the source's signed 32-bit range (6.18,
    measured: whatever the 64-bit one), every bound on one side of zero, else signed
    bounds only.  From 8 or 16, bounds survive when the source's signed range lies in
    one block of 2**bits values and sign-extends to one side of zero; else only the
    size's range."""
    cdef int bits = size * 8
    cdef s64 lo, hi, x, y
    if r.var_mask == 0:
        set_known(r, <u64>_sx(r.var_value, bits))
        return
    if bits == 32:
        lo, hi = r.s32min, r.s32max
        if (lo >= 0) == (hi >= 0):
            _sx_one_side(r, lo, hi)
        else:
            r.smin, r.smax = lo, hi
            _unknown_var(r)
        return
    if <u64>r.smax >> bits == <u64>r.smin >> bits:
        x, y = _sx(<u64>r.smax, bits), _sx(<u64>r.smin, bits)
        lo, hi = min(x, y), max(x, y)
        if (lo >= 0) == (hi >= 0):
            _sx_one_side(r, lo, hi)
            return
    r.smin = r.s32min = -(1 << (bits - 1))
    r.smax = r.s32max = (1 << (bits - 1)) - 1
    _unknown_var(r)


cpdef sign_extend32(Reg r, int size):
    """coerce_subreg_to_size_sx then zero extension: a 32-bit move sign-extending the
    low ``size`` bytes (``w1 = (s8)w2``), by the same rule on the 32-bit bounds."""
    cdef int bits = size * 8
    cdef s64 lo, hi, x, y
    cdef u64 u
    if r.var_mask == 0:
        x = _sx(r.var_value, bits)
        u = <u64>x & U32_MAX
        _set(r, tn(u, 0), u, u, x, x, 32)
        return
    if <u64><u32>r.s32max >> bits == <u64><u32>r.s32min >> bits:
        x, y = _sx(<u32>r.s32max, bits), _sx(<u32>r.s32min, bits)
        lo, hi = min(x, y), max(x, y)
        if (lo >= 0) == (hi >= 0):
            _set(r, tn_range(<u64>lo & U32_MAX, <u64>hi & U32_MAX), <u64>lo & U32_MAX,
                 <u64>hi & U32_MAX, lo, hi, 32)
            return
    _set(r, tn(0, U32_MAX), 0, U32_MAX, -(1 << (bits - 1)), (1 << (bits - 1)) - 1, 32)


# --- branches --------------------------------------------------------------------------

_REV = {isa.BPF_JEQ: isa.BPF_JNE, isa.BPF_JNE: isa.BPF_JEQ, isa.BPF_JGT: isa.BPF_JLE,
        isa.BPF_JLE: isa.BPF_JGT, isa.BPF_JGE: isa.BPF_JLT, isa.BPF_JLT: isa.BPF_JGE,
        isa.BPF_JSGT: isa.BPF_JSLE, isa.BPF_JSLE: isa.BPF_JSGT, isa.BPF_JSGE: isa.BPF_JSLT,
        isa.BPF_JSLT: isa.BPF_JSGE, isa.BPF_JSET: -1, -1: isa.BPF_JSET}
_SWAP = {isa.BPF_JGT: isa.BPF_JLT, isa.BPF_JGE: isa.BPF_JLE, isa.BPF_JSGT: isa.BPF_JSLT,
         isa.BPF_JSGE: isa.BPF_JSLE}


cpdef int branch_taken(Reg a, Reg b, long op, bint is32) except -2:
    """1 when the jump is always taken, 0 never, -1 when either may happen."""
    cdef View x = _view(a, 32 if is32 else 64), y = _view(b, 32 if is32 else 64)
    cdef bint eq, yes, no
    cdef u64 val
    if op == BPF_JEQ or op == BPF_JNE:
        eq = op == BPF_JEQ
        if x.var.mask == 0 and y.var.mask == 0:
            return (x.var.value == y.var.value) == eq
        if x.umin > y.umax or x.umax < y.umin or x.smin > y.smax or x.smax < y.smin or \
                (x.var.value ^ y.var.value) & ~(x.var.mask | y.var.mask):
            return not eq
        return -1
    if op == BPF_JSET:
        if y.var.mask and not x.var.mask:
            x, y = y, x
        if y.var.mask == 0:
            val = y.var.value
            if x.var.value & val:
                return 1
            if not (x.var.value | x.var.mask) & val:
                return 0
        return -1
    # only the comparison asked (branch_taken runs at every conditional jump)
    if op == BPF_JGT:
        yes, no = x.umin > y.umax, x.umax <= y.umin
    elif op == BPF_JGE:
        yes, no = x.umin >= y.umax, x.umax < y.umin
    elif op == BPF_JLT:
        yes, no = x.umax < y.umin, x.umin >= y.umax
    elif op == BPF_JLE:
        yes, no = x.umax <= y.umin, x.umin > y.umax
    elif op == BPF_JSGT:
        yes, no = x.smin > y.smax, x.smax <= y.smin
    elif op == BPF_JSGE:
        yes, no = x.smin >= y.smax, x.smax < y.smin
    elif op == BPF_JSLT:
        yes, no = x.smax < y.smin, x.smin >= y.smax
    elif op == BPF_JSLE:
        yes, no = x.smax <= y.smin, x.smin > y.smax
    else:
        raise AssertionError(op)
    return 1 if yes else 0 if no else -1


cpdef int reverse(int op):
    """The condition of the fall-through (-1 stands for 'JSET not set')."""
    return _REV[op]


cdef inline void _meet(s64 *alo, s64 *ahi, s64 *blo, s64 *bhi) noexcept:
    # both ranges the intersection of theirs
    alo[0] = blo[0] = max(alo[0], blo[0])
    ahi[0] = bhi[0] = min(ahi[0], bhi[0])


cdef inline void _meet_u(u64 *alo, u64 *ahi, u64 *blo, u64 *bhi) noexcept:
    alo[0] = blo[0] = max(alo[0], blo[0])
    ahi[0] = bhi[0] = min(ahi[0], bhi[0])


cdef inline bint _ne_u(u64 *lo, u64 *hi, u64 v, u64 top) noexcept:
    # reg_set_min_max's JNE: a bound equal to the constant ``v`` moves past it; False
    # when one would move out of the field's range [0, top] (the range is then empty)
    if lo[0] == v:
        if v == top:
            return False
        lo[0] = v + 1
    if hi[0] == v:
        if v == 0:
            return False
        hi[0] = v - 1
    return True


cdef inline bint _ne_s(s64 *lo, s64 *hi, s64 v, s64 bottom, s64 top) noexcept:
    if lo[0] == v:
        if v == top:
            return False
        lo[0] = v + 1
    if hi[0] == v:
        if v == bottom:
            return False
        hi[0] = v - 1
    return True


cpdef bint refine(Reg a, Reg b, long op, bint is32) except -1:
    """Narrow ``a`` and ``b`` knowing ``a op b`` holds; False when it cannot (then
    ``a`` and ``b`` are left part narrowed)."""
    cdef Bounds x, y
    cdef Tnum va, vb, t
    cdef Reg r
    cdef u64 val, d
    cdef bint signed
    if op == BPF_JGT or op == BPF_JGE or op == BPF_JSGT or op == BPF_JSGE:
        a, b, op = b, a, _SWAP[op]
    x, y = _get(a), _get(b)
    va, vb = tn(a.var_value, a.var_mask), tn(b.var_value, b.var_mask)
    if op == BPF_JEQ:
        if is32:
            _meet_u(&x.u32min, &x.u32max, &y.u32min, &y.u32max)
            _meet(&x.s32min, &x.s32max, &y.s32min, &y.s32max)
            t = tn_intersect(tn_subreg(va), tn_subreg(vb))
            va, vb = tn_with_subreg(va, t), tn_with_subreg(vb, t)
        else:
            _meet_u(&x.umin, &x.umax, &y.umin, &y.umax)
            _meet(&x.smin, &x.smax, &y.smin, &y.smax)
            if (va.value ^ vb.value) & ~(va.mask | vb.mask):
                return False
            va = vb = tn_intersect(va, vb)
    elif op == BPF_JNE or op == BPF_JSET or op == -1:
        t = tn_subreg(vb) if is32 else vb
        if t.mask:
            a, b, x, y, va, vb = b, a, y, x, vb, va
            t = tn_subreg(vb) if is32 else vb
        if t.mask == 0:
            val = t.value
            if op == BPF_JNE:
                if is32:
                    if not _ne_u(&x.u32min, &x.u32max, val & U32_MAX, U32_MAX) or \
                            not _ne_s(&x.s32min, &x.s32max, _s32(val), S32_MIN, S32_MAX):
                        return False
                elif not _ne_u(&x.umin, &x.umax, val, U64_MAX) or \
                        not _ne_s(&x.smin, &x.smax, <s64>val, S64_MIN, S64_MAX):
                    return False
            elif op == BPF_JSET:
                if val and not val & (val - 1):
                    va = tn_with_subreg(va, tn_or(tn_subreg(va), tn(val, 0))) if is32 \
                        else tn_or(va, tn(val, 0))
            else:
                va = tn_with_subreg(va, tn_and(tn_subreg(va), tn(~val & U32_MAX, 0))) \
                    if is32 else tn_and(va, tn(~val, 0))
    else:
        # JLT, JLE, JSLT, JSLE: a's top below b's, b's bottom above a's (a bound
        # that would pass the field's range leaves the range empty)
        d = 1 if op == BPF_JLT or op == BPF_JSLT else 0
        signed = op == BPF_JSLT or op == BPF_JSLE
        if signed and is32:
            if d and (y.s32max == S32_MIN or x.s32min == S32_MAX):
                return False
            x.s32max = min(x.s32max, y.s32max - <s64>d)
            y.s32min = max(y.s32min, x.s32min + <s64>d)
        elif signed:
            if d and (y.smax == S64_MIN or x.smin == S64_MAX):
                return False
            x.smax = min(x.smax, y.smax - <s64>d)
            y.smin = max(y.smin, x.smin + <s64>d)
        elif is32:
            if d and (y.u32max == 0 or x.u32min == U32_MAX):
                return False
            x.u32max = min(x.u32max, y.u32max - d)
            y.u32min = max(y.u32min, x.u32min + d)
        else:
            if d and (y.umax == 0 or x.umin == U64_MAX):
                return False
            x.umax = min(x.umax, y.umax - d)
            y.umin = max(y.umin, x.umin + d)
    _put(a, x, va)
    _put(b, y, vb)
    for r in (a, b):
        if not valid(r):
            return False
        _sync(r)
        if not valid(r):
            return False
    return True
