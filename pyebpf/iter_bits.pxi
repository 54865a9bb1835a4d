# The bits iterator of kernel/bpf/helpers.c.  Included by kfuncs.pxi (after
# kfunc_strings.pxi, whose address checks it shares).

# --- the bits iterator (kernel/bpf/helpers.c): struct bpf_iter_bits is 16 bytes on the
# program's stack, read as struct bpf_iter_bits_kern { u64 bits_copy or u64 *bits;
# int nr_bits; int bit; }.  bpf_iter_bits_new copies the words it iterates: one word
# into the iterator itself, more into memory of their own (bpf_mem_alloc in the kernel,
# malloc here), freed by bpf_iter_bits_destroy.

cdef enum:
    BITS_ITER_NR_WORDS_MAX = 511

cdef struct IterBits:
    uint64_t bits                       # the word itself, or the copy's address
    int32_t nr_bits
    int32_t bit


cdef int _read_nofault(Vm* vm, uint8_t* to, uint64_t src, uint32_t n) noexcept nogil:
    """copy_from_kernel_nofault: 0, -ERANGE outside the kernel's half, -EFAULT for bytes
    that leave the region they start in (the destination then zeroed)."""
    if _str_span(vm, src) >= n:
        memcpy(to, <const uint8_t*><uintptr_t>src, n)
        return 0
    memset(to, 0, n)
    return -EFAULT if _nofault_allowed(vm, src) else -ERANGE


cdef inline IterBits* _iter_bits(Vm* vm, uint64_t it) noexcept nogil:
    return <IterBits*>_mem(vm, it, sizeof(IterBits), ACCESS_WRITE)


cdef uint64_t _k_iter_bits_new(Vm* vm, uint64_t it, uint64_t src, uint64_t nr_words,
                               uint64_t r4, uint64_t r5) noexcept nogil:
    """-EINVAL for NULL or no words, -E2BIG above 511 words, else the copy's read error
    (always -EFAULT for one word: bpf_iter_bits_new maps it)."""
    cdef IterBits* s = _iter_bits(vm, it)
    cdef uint32_t words = <uint32_t>nr_words, nr_bytes = words * 8
    cdef uint8_t* copy
    cdef int e
    if s == NULL:
        return 0
    s.nr_bits = 0
    s.bits = 0
    s.bit = -1
    if src == 0 or words == 0:
        return err(EINVAL)
    if words > BITS_ITER_NR_WORDS_MAX:
        return err(E2BIG)
    if words == 1:
        if _read_nofault(vm, <uint8_t*>&s.bits, src, 8):
            return err(EFAULT)
        s.nr_bits = 64
        return 0
    copy = <uint8_t*>malloc(nr_bytes)
    if copy == NULL:
        return err(ENOMEM)
    e = _read_nofault(vm, copy, src, nr_bytes)
    if e < 0:
        free(copy)
        return <uint64_t><int64_t>e
    s.bits = <uint64_t><uintptr_t>copy
    s.nr_bits = <int32_t>(nr_bytes * 8)
    return 0


cdef uint64_t _k_iter_bits_next(Vm* vm, uint64_t it, uint64_t r2, uint64_t r3, uint64_t r4,
                                uint64_t r5) noexcept nogil:
    """The address of the iterator's bit: the next set bit after it, or NULL."""
    cdef IterBits* s = _iter_bits(vm, it)
    cdef const uint64_t* words
    cdef int32_t bit
    if s == NULL or s.nr_bits == 0 or s.bit >= s.nr_bits:
        return 0
    words = &s.bits if s.nr_bits == 64 else <const uint64_t*><uintptr_t>s.bits
    bit = s.bit + 1
    # find_next_bit
    while bit < s.nr_bits and not (words[bit >> 6] >> (bit & 63)) & 1:
        bit += 1
    s.bit = bit
    return 0 if bit >= s.nr_bits else it + 12


cdef uint64_t _k_iter_bits_destroy(Vm* vm, uint64_t it, uint64_t r2, uint64_t r3,
                                   uint64_t r4, uint64_t r5) noexcept nogil:
    cdef IterBits* s = _iter_bits(vm, it)
    if s != NULL and s.nr_bits > 64:
        free(<void*><uintptr_t>s.bits)
    return 0
