# The string kfuncs of kernel/bpf/helpers.c (bpf_strcmp ... bpf_strnstr).  Included by
# kfuncs.pxi.
#
# Their string arguments are __ign: the verifier checks nothing, so a string may be any
# address.  The kernel reads it a byte at a time with __get_kernel_nofault: an address
# outside the kernel's half of the address space is -ERANGE
# (copy_from_kernel_nofault_allowed), a byte it cannot read -EFAULT, and no string is
# read past XATTR_SIZE_MAX bytes (-E2BIG).  In the engine a string is readable up to the
# end of the region it starts in (the stack, a map value, the packet...): the kernel
# would go on reading whatever kernel memory follows the object, the engine gives
# -EFAULT there (docs/kernel-notes.md).  The results are ints: an index, 0/±1, -errno.
# Chars are unsigned: the kernel is built with -funsigned-char.

cdef enum:
    XATTR_SIZE_MAX = 65536             # include/uapi/linux/limits.h
    # x86-64 with 48-bit virtual addresses: the kernel's half starts here
    # (copy_from_kernel_nofault_allowed: at or above TASK_SIZE_MAX + PAGE_SIZE, canonical)
    KERNEL_HALF_SHIFT = 47


cdef inline uint64_t _str_span(Vm* vm, uint64_t addr) noexcept nogil:
    """How many bytes from addr the region holding it has (0: none holds it)."""
    cdef int k
    cdef Region* g
    for k in range(vm.nregions):
        g = &vm.regions[k]
        if addr >= g.start and addr < g.end:
            return g.end - addr
    return 0


cdef inline bint _nofault_allowed(Vm* vm, uint64_t addr) noexcept nogil:
    """copy_from_kernel_nofault_allowed(addr, 1): a region of the run (kernel memory
    to the program), or an address in the kernel's canonical half."""
    return _str_span(vm, addr) != 0 or (addr >> KERNEL_HALF_SHIFT) == 0x1ffff


cdef inline int _kernel_tolower(int c) noexcept nogil:
    """lib/ctype.c's tolower on a byte: ASCII and Latin-1 capitals (0xc0-0xde but 0xd7)."""
    if 65 <= c <= 90 or (0xc0 <= c <= 0xde and c != 0xd7):
        return c + 32
    return c


cdef struct StrReader:
    const uint8_t* p
    uint64_t n                          # readable bytes from p


cdef inline void _str_open(Vm* vm, StrReader* r, uint64_t addr) noexcept nogil:
    r.n = _str_span(vm, addr)
    r.p = <const uint8_t*><uintptr_t>addr


cdef inline int _str_get(StrReader* r, uint64_t i, uint8_t* c) noexcept nogil:
    """__get_kernel_nofault of byte i: 0, or -1 when it faults."""
    if i >= r.n:
        return -1
    c[0] = r.p[i]
    return 0


cdef int64_t _strcasecmp(Vm* vm, uint64_t s1, uint64_t s2, bint icase) noexcept nogil:
    """__bpf_strcasecmp: -1, 0 or 1."""
    cdef StrReader a, b
    cdef uint8_t c1, c2
    cdef int i
    if not _nofault_allowed(vm, s1) or not _nofault_allowed(vm, s2):
        return -ERANGE
    _str_open(vm, &a, s1)
    _str_open(vm, &b, s2)
    for i in range(XATTR_SIZE_MAX):
        if _str_get(&a, i, &c1) or _str_get(&b, i, &c2):
            return -EFAULT
        if icase:
            c1 = <uint8_t>_kernel_tolower(c1)
            c2 = <uint8_t>_kernel_tolower(c2)
        if c1 != c2:
            return -1 if c1 < c2 else 1
        if c1 == 0:
            return 0
    return -E2BIG


cdef int64_t _strnchr(Vm* vm, uint64_t s, uint64_t count, uint8_t c) noexcept nogil:
    """bpf_strnchr: index of the first c in the first count bytes (the NUL counts),
    -ENOENT.  c is a char: its low byte."""
    cdef StrReader r
    cdef uint8_t sc
    cdef int i = 0
    if not _nofault_allowed(vm, s):
        return -ERANGE
    _str_open(vm, &r, s)
    while <uint64_t>i < count and i < XATTR_SIZE_MAX:
        if _str_get(&r, i, &sc):
            return -EFAULT
        if sc == c:
            return i
        if sc == 0:
            return -ENOENT
        i += 1
    return -E2BIG if i == XATTR_SIZE_MAX else -ENOENT


cdef uint64_t _k_strcmp(Vm* vm, uint64_t s1, uint64_t s2, uint64_t r3, uint64_t r4,
                        uint64_t r5) noexcept nogil:
    return <uint64_t>_strcasecmp(vm, s1, s2, False)


cdef uint64_t _k_strcasecmp(Vm* vm, uint64_t s1, uint64_t s2, uint64_t r3, uint64_t r4,
                            uint64_t r5) noexcept nogil:
    return <uint64_t>_strcasecmp(vm, s1, s2, True)


cdef uint64_t _k_strnchr(Vm* vm, uint64_t s, uint64_t count, uint64_t c, uint64_t r4,
                         uint64_t r5) noexcept nogil:
    return <uint64_t>_strnchr(vm, s, count, <uint8_t>c)


cdef uint64_t _k_strchr(Vm* vm, uint64_t s, uint64_t c, uint64_t r3, uint64_t r4,
                        uint64_t r5) noexcept nogil:
    return <uint64_t>_strnchr(vm, s, XATTR_SIZE_MAX, <uint8_t>c)


cdef uint64_t _k_strchrnul(Vm* vm, uint64_t s, uint64_t c, uint64_t r3, uint64_t r4,
                           uint64_t r5) noexcept nogil:
    """bpf_strchrnul: index of the first c, else of the NUL."""
    cdef StrReader r
    cdef uint8_t sc
    cdef int i
    if not _nofault_allowed(vm, s):
        return err(ERANGE)
    _str_open(vm, &r, s)
    for i in range(XATTR_SIZE_MAX):
        if _str_get(&r, i, &sc):
            return err(EFAULT)
        if sc == 0 or sc == <uint8_t>c:
            return <uint64_t>i
    return err(E2BIG)


cdef uint64_t _k_strrchr(Vm* vm, uint64_t s, uint64_t c, uint64_t r3, uint64_t r4,
                         uint64_t r5) noexcept nogil:
    """bpf_strrchr: index of the last c.  c is an int here: a char above 0x7f passed
    sign-extended (a negative int) never equals one of the string's."""
    cdef StrReader r
    cdef uint8_t sc
    cdef int i
    cdef int64_t last = -ENOENT
    if not _nofault_allowed(vm, s):
        return err(ERANGE)
    _str_open(vm, &r, s)
    for i in range(XATTR_SIZE_MAX):
        if _str_get(&r, i, &sc):
            return err(EFAULT)
        if <int32_t>sc == <int32_t>c:
            last = i
        if sc == 0:
            return <uint64_t>last
    return err(E2BIG)


cdef int64_t _strnlen(Vm* vm, uint64_t s, uint64_t count) noexcept nogil:
    cdef StrReader r
    cdef uint8_t c
    cdef int i = 0
    if not _nofault_allowed(vm, s):
        return -ERANGE
    _str_open(vm, &r, s)
    while <uint64_t>i < count and i < XATTR_SIZE_MAX:
        if _str_get(&r, i, &c):
            return -EFAULT
        if c == 0:
            return i
        i += 1
    return -E2BIG if i == XATTR_SIZE_MAX else i


cdef uint64_t _k_strnlen(Vm* vm, uint64_t s, uint64_t count, uint64_t r3, uint64_t r4,
                         uint64_t r5) noexcept nogil:
    return <uint64_t>_strnlen(vm, s, count)


cdef uint64_t _k_strlen(Vm* vm, uint64_t s, uint64_t r2, uint64_t r3, uint64_t r4,
                        uint64_t r5) noexcept nogil:
    return <uint64_t>_strnlen(vm, s, XATTR_SIZE_MAX)


cdef int64_t _strspn(Vm* vm, uint64_t s, uint64_t accept, bint reject) noexcept nogil:
    """bpf_strspn (reject False) and bpf_strcspn: the length of s's prefix of bytes in
    (or, for strcspn, not in) the second string."""
    cdef StrReader a, b
    cdef uint8_t cs, ca = 0
    cdef int i, j
    if not _nofault_allowed(vm, s) or not _nofault_allowed(vm, accept):
        return -ERANGE
    _str_open(vm, &a, s)
    _str_open(vm, &b, accept)
    for i in range(XATTR_SIZE_MAX):
        if _str_get(&a, i, &cs):
            return -EFAULT
        if cs == 0:
            return i
        j = 0
        while j < XATTR_SIZE_MAX:
            if _str_get(&b, j, &ca):
                return -EFAULT
            if cs == ca or ca == 0:
                break
            j += 1
        if j == XATTR_SIZE_MAX:
            return -E2BIG
        if (ca != 0) == reject:
            return i
    return -E2BIG


cdef uint64_t _k_strspn(Vm* vm, uint64_t s, uint64_t accept, uint64_t r3, uint64_t r4,
                        uint64_t r5) noexcept nogil:
    return <uint64_t>_strspn(vm, s, accept, False)


cdef uint64_t _k_strcspn(Vm* vm, uint64_t s, uint64_t reject, uint64_t r3, uint64_t r4,
                         uint64_t r5) noexcept nogil:
    return <uint64_t>_strspn(vm, s, reject, True)


cdef int64_t _strnstr(Vm* vm, uint64_t s1, uint64_t s2, uint64_t length) noexcept nogil:
    """bpf_strnstr: index of the first s2 within s1's first length bytes.  s2's NUL is
    read one byte past length, so s2 may end exactly there."""
    cdef StrReader a, b
    cdef uint8_t c1, c2
    cdef int i, j
    if not _nofault_allowed(vm, s1) or not _nofault_allowed(vm, s2):
        return -ERANGE
    _str_open(vm, &a, s1)
    _str_open(vm, &b, s2)
    for i in range(XATTR_SIZE_MAX):
        j = 0
        while <uint64_t>(i + j) <= length and j < XATTR_SIZE_MAX:
            if _str_get(&b, j, &c2):
                return -EFAULT
            if c2 == 0:
                return i
            if <uint64_t>(i + j) == length:
                return -ENOENT
            if _str_get(&a, i + j, &c1):
                return -EFAULT
            if c1 == 0:
                return -ENOENT
            if c1 != c2:
                break
            j += 1
        if j == XATTR_SIZE_MAX:
            return -E2BIG
    return -E2BIG


cdef uint64_t _k_strnstr(Vm* vm, uint64_t s1, uint64_t s2, uint64_t length, uint64_t r4,
                         uint64_t r5) noexcept nogil:
    return <uint64_t>_strnstr(vm, s1, s2, length)


cdef uint64_t _k_strstr(Vm* vm, uint64_t s1, uint64_t s2, uint64_t r3, uint64_t r4,
                        uint64_t r5) noexcept nogil:
    return <uint64_t>_strnstr(vm, s1, s2, XATTR_SIZE_MAX)


cdef void register_string_kfuncs() except *:
    _kfunc("bpf_strcmp", _k_strcmp)
    _kfunc("bpf_strcasecmp", _k_strcasecmp)
    _kfunc("bpf_strchr", _k_strchr)
    _kfunc("bpf_strchrnul", _k_strchrnul)
    _kfunc("bpf_strnchr", _k_strnchr)
    _kfunc("bpf_strrchr", _k_strrchr)
    _kfunc("bpf_strlen", _k_strlen)
    _kfunc("bpf_strnlen", _k_strnlen)
    _kfunc("bpf_strspn", _k_strspn)
    _kfunc("bpf_strcspn", _k_strcspn)
    _kfunc("bpf_strstr", _k_strstr)
    _kfunc("bpf_strnstr", _k_strnstr)
