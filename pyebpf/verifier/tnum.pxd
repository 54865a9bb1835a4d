# The tnum operations on C integers (the kernel's kernel/bpf/tnum.c, u64 wrapping as
# there), for the compiled bounds arithmetic (bounds.pyx); tnum.pyx has the same
# operations on the (value, mask) tuples the Python modules use.

ctypedef unsigned long long u64

cdef extern from *:
    int __builtin_clzll(unsigned long long) nogil
    unsigned short __builtin_bswap16(unsigned short) nogil
    unsigned int __builtin_bswap32(unsigned int) nogil
    unsigned long long __builtin_bswap64(unsigned long long) nogil

cdef struct Tnum:
    u64 value, mask

cdef inline Tnum tn(u64 value, u64 mask) noexcept:
    cdef Tnum t
    t.value, t.mask = value, mask
    return t


cdef inline Tnum tn_range(u64 lo, u64 hi) noexcept:
    # tnum_range: the smallest tnum holding every value of [lo, hi]
    cdef u64 chi = lo ^ hi, delta
    if chi == 0:
        return tn(lo, 0)
    if chi >> 63:
        return tn(0, <u64>-1)
    delta = (<u64>1 << (64 - __builtin_clzll(chi))) - 1
    return tn(lo & ~delta, delta)


cdef inline Tnum tn_add(Tnum a, Tnum b) noexcept:
    cdef u64 sm = a.mask + b.mask, sv = a.value + b.value
    cdef u64 mu = ((sm + sv) ^ sv) | a.mask | b.mask
    return tn(sv & ~mu, mu)


cdef inline Tnum tn_sub(Tnum a, Tnum b) noexcept:
    cdef u64 dv = a.value - b.value
    cdef u64 mu = ((dv + a.mask) ^ (dv - b.mask)) | a.mask | b.mask
    return tn(dv & ~mu, mu)


cdef inline Tnum tn_and(Tnum a, Tnum b) noexcept:
    cdef u64 v = a.value & b.value
    return tn(v, (a.value | a.mask) & (b.value | b.mask) & ~v)


cdef inline Tnum tn_or(Tnum a, Tnum b) noexcept:
    cdef u64 v = a.value | b.value
    return tn(v, (a.mask | b.mask) & ~v)


cdef inline Tnum tn_xor(Tnum a, Tnum b) noexcept:
    cdef u64 mu = a.mask | b.mask
    return tn((a.value ^ b.value) & ~mu, mu)


cdef inline Tnum tn_mul(Tnum a, Tnum b) noexcept:
    # tnum_mul: long multiplication, one known/unknown bit of a at a time
    cdef Tnum acc_m = tn(0, 0)
    cdef u64 acc_v = a.value * b.value, av = a.value, am = a.mask
    while av or am:
        if av & 1:
            acc_m = tn_add(acc_m, tn(0, b.mask))
        elif am & 1:
            acc_m = tn_add(acc_m, tn(0, b.value | b.mask))
        av >>= 1
        am >>= 1
        b.value <<= 1
        b.mask <<= 1
    return tn_add(tn(acc_v, 0), acc_m)


cdef inline Tnum tn_intersect(Tnum a, Tnum b) noexcept:
    cdef u64 mu = a.mask & b.mask
    return tn((a.value | b.value) & ~mu, mu)


cdef inline Tnum tn_subreg(Tnum a) noexcept:
    return tn(a.value & <u64>0xFFFFFFFF, a.mask & <u64>0xFFFFFFFF)


cdef inline Tnum tn_clear_subreg(Tnum a) noexcept:
    return tn(a.value & ~<u64>0xFFFFFFFF, a.mask & ~<u64>0xFFFFFFFF)


cdef inline Tnum tn_with_subreg(Tnum a, Tnum s) noexcept:
    return tn_or(tn_clear_subreg(a), tn_subreg(s))



cdef inline Tnum tn_bswap(Tnum a, int size) noexcept:
    # tnum_bswap16/32/64: the low ``size`` bytes (2, 4 or 8) of value and mask reversed
    if size == 2:
        return tn(__builtin_bswap16(<unsigned short>a.value),
                  __builtin_bswap16(<unsigned short>a.mask))
    if size == 4:
        return tn(__builtin_bswap32(<unsigned int>a.value),
                  __builtin_bswap32(<unsigned int>a.mask))
    return tn(__builtin_bswap64(a.value), __builtin_bswap64(a.mask))
