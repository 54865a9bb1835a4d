# The string helpers every program type gets from bpf_base_func_proto: number parsing,
# comparison, formatting into a buffer or the trace.  Part of skb/helpers.pxi (after
# helpers_misc.pxi, whose bprintf they share).

cdef enum:
    STRTOX_COPY = 64              # __bpf_strtoull parses a copy in char str[64]


cdef inline int hex_digit(uint8_t c) noexcept nogil:
    """The value of a digit of any base up to 16, else 16 (lowercase and uppercase)."""
    if 48 <= c <= 57:
        return c - 48
    c |= 0x20
    if 97 <= c <= 102:
        return c - 97 + 10
    return 16


cdef int strtoull(const uint8_t* buf, size_t buf_len, uint64_t flags, uint64_t* res,
                  bint* negative) noexcept nogil:
    """__bpf_strtoull: bytes consumed (leading space, sign, 0x prefix and digits) or
    -errno; the value in res (modulo 2**64 on overflow, which is -ERANGE)."""
    cdef unsigned int base = flags & BPF_STRTOX_BASE_MASK
    cdef size_t pos = 0, n, k = 0, digits = 0
    cdef uint8_t s[STRTOX_COPY]
    cdef int d
    cdef bint overflow = False
    if base != 0 and base != 8 and base != 10 and base != 16:
        return -EINVAL
    if flags & ~(<uint64_t>BPF_STRTOX_BASE_MASK):
        return -EINVAL
    while pos < buf_len and pk_isspace(buf[pos]):
        pos += 1
    negative[0] = pos < buf_len and buf[pos] == 45        # '-'
    if negative[0]:
        pos += 1
    if pos == buf_len:
        return -EINVAL
    # the digits are read from a NUL-terminated copy of at most 63 bytes
    n = buf_len - pos if buf_len - pos < STRTOX_COPY - 1 else STRTOX_COPY - 1
    memcpy(s, buf + pos, n)
    s[n] = 0
    # _parse_integer_fixup_radix
    if base == 0:
        if s[0] == 48:
            base = 16 if (s[1] | 0x20) == 120 and hex_digit(s[2]) < 16 else 8
        else:
            base = 10
    if base == 16 and s[0] == 48 and (s[1] | 0x20) == 120:
        k = 2
    res[0] = 0
    while True:
        d = hex_digit(s[k + digits])
        if d >= <int>base:
            break
        if res[0] >> 60 and res[0] > (~(<uint64_t>0) - <uint64_t>d) // base:
            overflow = True
        res[0] = res[0] * base + <uint64_t>d
        digits += 1
    if overflow:
        return -ERANGE
    if digits == 0:
        return -EINVAL
    return <int>(pos + k + digits)


cdef uint64_t bpf_strtol(Vm* vm, uint64_t buf, uint64_t buf_len, uint64_t flags,
                         uint64_t res, uint64_t e) noexcept nogil:
    cdef uint8_t* p = _mem(vm, buf, <uint32_t>buf_len, ACCESS_READ)
    cdef int64_t* out
    cdef uint64_t v
    cdef bint negative
    cdef int got
    if p == NULL:
        return 0
    out = <int64_t*>_mem(vm, res, 8, ACCESS_WRITE)
    if out == NULL:
        return 0
    out[0] = 0
    got = strtoull(p, <uint32_t>buf_len, flags, &v, &negative)
    if got < 0:
        return err(-got)
    if negative:
        if <int64_t>(0 - v) > 0:
            return err(ERANGE)
        out[0] = <int64_t>(0 - v)
    else:
        if <int64_t>v < 0:
            return err(ERANGE)
        out[0] = <int64_t>v
    return <uint64_t>got


cdef uint64_t bpf_strtoul(Vm* vm, uint64_t buf, uint64_t buf_len, uint64_t flags,
                          uint64_t res, uint64_t e) noexcept nogil:
    cdef uint8_t* p = _mem(vm, buf, <uint32_t>buf_len, ACCESS_READ)
    cdef uint64_t* out
    cdef uint64_t v
    cdef bint negative
    cdef int got
    if p == NULL:
        return 0
    out = <uint64_t*>_mem(vm, res, 8, ACCESS_WRITE)
    if out == NULL:
        return 0
    out[0] = 0
    got = strtoull(p, <uint32_t>buf_len, flags, &v, &negative)
    if got < 0:
        return err(-got)
    if negative:
        return err(EINVAL)
    out[0] = v
    return <uint64_t>got


cdef uint64_t bpf_strncmp(Vm* vm, uint64_t s1, uint64_t s1_sz, uint64_t s2, uint64_t d,
                          uint64_t e) noexcept nogil:
    # the kernel's generic strncmp: -1, 0 or 1; s2 is a NUL-terminated constant string
    # (ARG_PTR_TO_CONST_STR), s1 s1_sz bytes the program may read
    cdef uint32_t n = <uint32_t>s1_sz
    cdef uint8_t* a = _mem(vm, s1, n, ACCESS_READ)
    cdef uint8_t* b
    cdef uint32_t k = 0
    if a == NULL:
        return 0
    while k < n:
        b = _mem(vm, s2 + k, 1, ACCESS_READ)
        if b == NULL:
            return 0
        if a[k] != b[0]:
            return <uint64_t>(-1 if a[k] < b[0] else 1)
        if a[k] == 0:
            break
        k += 1
    return 0


cdef const char* const_str(Vm* vm, uint64_t addr) noexcept nogil:
    """An ARG_PTR_TO_CONST_STR argument: the verifier proved a NUL follows in the map
    value; NULL (a memory fault recorded) when it is not readable."""
    cdef uint8_t* p
    cdef size_t k = 0
    while True:
        p = _mem(vm, addr + k, 1, ACCESS_READ)
        if p == NULL:
            return NULL
        if p[0] == 0:
            return <const char*>_mem(vm, addr, <uint32_t>(k + 1), ACCESS_READ)
        k += 1


cdef const uint64_t* vararg_data(Vm* vm, uint64_t data, uint32_t data_len,
                                 int* nargs) noexcept nogil:
    """The u64 array of bpf_snprintf and bpf_trace_vprintk; nargs is -EINVAL when the
    kernel refuses its length (not a multiple of 8, more than MAX_BPRINTF_VARARGS, or
    a length with no array), or 0 with NULL when it is not readable."""
    if data_len % 8 or data_len > MAX_BPRINTF_VARARGS * 8 or (data_len and not data):
        nargs[0] = -EINVAL
        return NULL
    nargs[0] = data_len // 8
    if data_len == 0:
        return NULL
    return <const uint64_t*>_mem(vm, data, data_len, ACCESS_READ)


cdef uint64_t bpf_snprintf(Vm* vm, uint64_t str_, uint64_t str_size, uint64_t fmt_addr,
                           uint64_t data, uint64_t data_len) noexcept nogil:
    cdef uint32_t size = <uint32_t>str_size
    cdef char* out = NULL
    cdef const char* fmt
    cdef const uint64_t* args
    cdef int nargs
    cdef int64_t got
    cdef Printk o
    args = vararg_data(vm, data, <uint32_t>data_len, &nargs)
    if nargs < 0:
        return err(-nargs)
    if nargs and args == NULL:
        return 0
    fmt = const_str(vm, fmt_addr)
    if fmt == NULL:
        return 0
    if size:
        out = <char*>_mem(vm, str_, size, ACCESS_WRITE)
        if out == NULL:
            return 0
    pk_init(&o, out, size)
    got = bprintf(vm, &o, fmt, strlen(fmt), args, nargs)
    if got < 0:
        return <uint64_t>got
    pk_end(&o)
    return o.pos + 1


cdef uint64_t bpf_trace_vprintk(Vm* vm, uint64_t fmt_addr, uint64_t fmt_size, uint64_t data,
                                uint64_t data_len, uint64_t e) noexcept nogil:
    cdef uint32_t size = <uint32_t>fmt_size
    cdef const char* fmt = <const char*>_mem(vm, fmt_addr, size, ACCESS_READ)
    cdef const uint64_t* args
    cdef int nargs
    if fmt == NULL:
        return 0
    args = vararg_data(vm, data, <uint32_t>data_len, &nargs)
    if nargs < 0:
        return err(-nargs)
    if nargs and args == NULL:
        return 0
    return trace_bprintf(vm, fmt, size, args, nargs)


cdef void register_string_helpers(helper_fn* table) noexcept:
    table[105] = bpf_strtol
    table[106] = bpf_strtoul
    table[165] = bpf_snprintf
    table[177] = bpf_trace_vprintk
    table[182] = bpf_strncmp
