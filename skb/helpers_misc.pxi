# Helpers that read the environment or record a decision: time, randomness, cpu,
# classids, redirect, the current task, trace_printk.  Part of skb/helpers.pxi.

cdef uint64_t _INITIAL_JIFFIES = _isa.INITIAL_JIFFIES
cdef uint64_t _KTIME_TAI_OFFSET = _isa.KTIME_TAI_OFFSET


cdef inline uint64_t clock_read(Vm* vm) noexcept nogil:
    # a settable clock (run(ktime=, ktime_step=)): reproducible where the kernel is not;
    # every clock helper reads it, each read moving it on by ktime_step
    cdef uint64_t now = vm.skb.ktime
    vm.skb.ktime += vm.skb.ktime_step
    return now


cdef uint64_t bpf_ktime_get_ns(Vm* vm, uint64_t a, uint64_t b, uint64_t c, uint64_t d,
                               uint64_t e) noexcept nogil:
    return clock_read(vm)


cdef uint64_t bpf_ktime_get_boot_ns(Vm* vm, uint64_t a, uint64_t b, uint64_t c, uint64_t d,
                                    uint64_t e) noexcept nogil:
    # CLOCK_BOOTTIME: CLOCK_MONOTONIC plus time suspended, which the model never is
    return clock_read(vm)


cdef uint64_t bpf_ktime_get_coarse_ns(Vm* vm, uint64_t a, uint64_t b, uint64_t c,
                                      uint64_t d, uint64_t e) noexcept nogil:
    # ktime_get_coarse_ns: CLOCK_MONOTONIC as of the last tick
    cdef uint64_t now = clock_read(vm)
    return now - now % TICK_NSEC


cdef uint64_t bpf_ktime_get_tai_ns(Vm* vm, uint64_t a, uint64_t b, uint64_t c, uint64_t d,
                                   uint64_t e) noexcept nogil:
    return clock_read(vm) + _KTIME_TAI_OFFSET


cdef uint64_t bpf_jiffies64(Vm* vm, uint64_t a, uint64_t b, uint64_t c, uint64_t d,
                            uint64_t e) noexcept nogil:
    # get_jiffies_64: ticks since boot, counted from INITIAL_JIFFIES
    return _INITIAL_JIFFIES + clock_read(vm) // TICK_NSEC


cdef uint64_t bpf_get_numa_node_id(Vm* vm, uint64_t a, uint64_t b, uint64_t c, uint64_t d,
                                   uint64_t e) noexcept nogil:
    # numa_node_id(): the modelled machine is one NUMA node
    return 0


cdef uint64_t bpf_get_prandom_u32(Vm* vm, uint64_t a, uint64_t b, uint64_t c, uint64_t d,
                                  uint64_t e) noexcept nogil:
    # xorshift64*, seeded per run (run(prandom_seed=)): reproducible sequences
    cdef uint64_t x = vm.skb.prandom
    x ^= x >> 12
    x ^= x << 25
    x ^= x >> 27
    vm.skb.prandom = x
    return <uint32_t>((x * <uint64_t>0x2545F4914F6CDD1D) >> 32)


cdef uint64_t bpf_get_smp_processor_id(Vm* vm, uint64_t a, uint64_t b, uint64_t c,
                                       uint64_t d, uint64_t e) noexcept nogil:
    return vm.skb.cpu


cdef uint64_t bpf_get_cgroup_classid(Vm* vm, uint64_t r1, uint64_t b, uint64_t c,
                                     uint64_t d, uint64_t e) noexcept nogil:
    if not is_ctx(vm, r1):
        return 0
    return vm.skb.cgroup_classid


cdef uint64_t bpf_get_route_realm(Vm* vm, uint64_t r1, uint64_t b, uint64_t c, uint64_t d,
                                  uint64_t e) noexcept nogil:
    if not is_ctx(vm, r1):
        return 0
    return vm.skb.route_realm


cdef uint64_t bpf_redirect(Vm* vm, uint64_t ifindex, uint64_t flags, uint64_t c, uint64_t d,
                           uint64_t e) noexcept nogil:
    # recorded, not validated: the target is looked up when the verdict is acted on
    if flags & ~(<uint64_t>BPF_F_INGRESS):
        return TC_ACT_SHOT
    vm.skb.redirect_set = True
    vm.skb.redirect_ifindex = <uint32_t>ifindex
    vm.skb.redirect_flags = <uint32_t>flags
    return TC_ACT_REDIRECT


# --- the current task: replayed packets have none, so run() supplies one ------------

cdef uint64_t bpf_get_current_pid_tgid(Vm* vm, uint64_t a, uint64_t b, uint64_t c,
                                       uint64_t d, uint64_t e) noexcept nogil:
    return vm.skb.pid_tgid


cdef uint64_t bpf_get_current_uid_gid(Vm* vm, uint64_t a, uint64_t b, uint64_t c,
                                      uint64_t d, uint64_t e) noexcept nogil:
    return vm.skb.uid_gid


cdef uint64_t bpf_get_current_comm(Vm* vm, uint64_t buf, uint64_t size, uint64_t c,
                                   uint64_t d, uint64_t e) noexcept nogil:
    # strscpy_pad: at most size-1 bytes of comm, then zeros to the end of the buffer
    cdef uint32_t n = <uint32_t>size
    cdef uint8_t* p
    cdef uint32_t k
    if n == 0:
        return helper_fault(vm, b"size must be a non-zero constant (the kernel's verifier "
                                b"refuses 0)")
    p = _mem(vm, buf, n, ACCESS_WRITE)
    if p == NULL:
        return 0
    memset(p, 0, n)
    k = 0
    while k + 1 < n and k < TASK_COMM_LEN - 1 and vm.skb.comm[k]:
        p[k] = vm.skb.comm[k]
        k += 1
    return 0


# --- bpf_trace_printk ------------------------------------------------------------------
#
# The format is checked and printed in one pass, as the kernel's bpf_bprintf_prepare()
# checks it and bstr_printf() prints it: the current kernel accepts %d %i %u %x %X
# (with l/ll), %c, %s, %p (and %pK %px %ps %pS %pB %pks %pus %pi4 %pI4 %pi6 %pI6),
# %%, the flags "0+- " and a width, at most 3 conversions, text bytes >= 0x80 (UTF-8);
# strings share the kernel's 512-byte argument buffer (-ENOSPC when it runs out); output
# goes into a 1024-byte buffer and the helper returns the length it would have had.  Every
# conversion is printed by C's snprintf from a spec rebuilt from the parsed one.
# %p is printed like %px: the kernel hashes pointers, which no engine can reproduce.

from libc.stdio cimport snprintf
from libc.string cimport memchr, strlen

cdef enum:
    PRINTK_BUF = MAX_BPRINTF_BUF   # also 4.6's TRACE_BUF_SIZE
    PRINTK_BIN_ARGS = 512          # MAX_BPRINTF_BIN_ARGS: room for the copied arguments
    PRINTK_V46_STR = 64            # 4.6 copied a %s argument into char buf[64]
    FIELD_WIDTH_MAX = (1 << 23) - 1
    TASK_COMM_LEN = 16
    PK_LEFT = 1
    PK_PLUS = 2
    PK_SPACE = 4
    PK_ZERO = 8

ctypedef struct Printk:
    char* out                      # the output buffer (NULL when cap is 0)
    size_t cap                     # its size, the terminating NUL included
    size_t pos                     # characters produced, also past the buffer's end


cdef inline void pk_init(Printk* o, char* out, size_t cap) noexcept nogil:
    o.out, o.cap, o.pos = out, cap, 0


cdef inline bint pk_isspace(uint8_t c) noexcept nogil:
    # the kernel's ctype is Latin-1: 0xa0 is a space, 0xa1-0xbf, 0xd7, 0xf7 punctuation
    return c == 32 or 9 <= c <= 13 or c == 0xa0


cdef inline bint pk_ispunct(uint8_t c) noexcept nogil:
    return (33 <= c <= 47 or 58 <= c <= 64 or 91 <= c <= 96 or 123 <= c <= 126
            or 0xa1 <= c <= 0xbf or c == 0xd7 or c == 0xf7)


cdef inline bint pk_ascii_allowed(uint8_t c) noexcept nogil:
    # (isprint || isspace) && isascii: what 4.6 accepted
    return 32 <= c <= 126 or 9 <= c <= 13


cdef inline bint pk_allowed(uint8_t c) noexcept nogil:
    # the current kernel also takes every byte >= 0x80 (UTF-8 text)
    return c >= 0x80 or pk_ascii_allowed(c)


cdef inline void pk_char(Printk* o, char c) noexcept nogil:
    if o.pos + 1 < o.cap:
        o.out[o.pos] = c
    o.pos += 1


cdef inline char* pk_dst(Printk* o) noexcept nogil:
    return o.out + o.pos if o.pos + 1 < o.cap else NULL


cdef inline size_t pk_room(Printk* o) noexcept nogil:
    return o.cap - o.pos if o.pos + 1 < o.cap else 0


cdef inline void pk_end(Printk* o) noexcept nogil:
    """NUL-terminate what fits (nothing when the buffer is empty), as vsnprintf does."""
    if o.cap:
        o.out[o.pos if o.pos < o.cap - 1 else o.cap - 1] = 0


cdef void pk_spec(char* spec, int flags, int width, const char* conv) noexcept nogil:
    """Rebuild "%[flags][width]conv" for snprintf."""
    cdef int k = 1
    spec[0] = 37    # '%'
    if flags & PK_LEFT:
        spec[k] = 45
        k += 1
    if flags & PK_PLUS:
        spec[k] = 43
        k += 1
    if flags & PK_SPACE:
        spec[k] = 32
        k += 1
    if flags & PK_ZERO:
        spec[k] = 48
        k += 1
    if width >= 0:
        k += snprintf(spec + k, 12, "%d", width)
    while conv[0]:
        spec[k] = conv[0]
        k += 1
        conv += 1
    spec[k] = 0


cdef void pk_string(Printk* o, const char* s, int flags, int width) noexcept nogil:
    cdef char spec[32]
    pk_spec(spec, flags & PK_LEFT, width, "s")    # strings pad with spaces only
    o.pos += snprintf(pk_dst(o), pk_room(o), spec, s)


cdef int pk_read_str(Vm* vm, uint64_t addr, char* dst, size_t cap) noexcept nogil:
    """strncpy_from_*_nofault: bytes taken with the NUL (cap when truncated to
    cap-1 bytes), or -1 when the string leaves the program's memory (dst holds what
    was read before that, NUL-terminated)."""
    cdef size_t k = 0
    cdef uint8_t* p
    while k < cap:
        p = _mem(vm, addr + k, 1, ACCESS_READ)
        if p == NULL:
            vm.status = STATUS_RUNNING      # a probe, not the program's fault
            dst[k] = 0
            return -1
        dst[k] = <char>p[0]
        if p[0] == 0:
            return <int>(k + 1)
        k += 1
    dst[cap - 1] = 0
    return <int>cap


cdef void pk_ip(Vm* vm, uint64_t addr, char kind, char family, char* text) noexcept nogil:
    """%pI4 %pi4 %pI6 %pi6 of the 4 or 16 bytes at addr (zeros if unreadable)."""
    cdef uint8_t a[16]
    cdef int n = 4 if family == 52 else 16
    cdef uint8_t* p = _mem(vm, addr, n, ACCESS_READ)
    cdef int k
    if p == NULL:
        vm.status = STATUS_RUNNING
        memset(a, 0, 16)
    else:
        memcpy(a, p, n)
    if n == 4:
        snprintf(text, 16, "%03u.%03u.%03u.%03u" if kind == 105 else "%u.%u.%u.%u",
                 <unsigned int>a[0], <unsigned int>a[1], <unsigned int>a[2],
                 <unsigned int>a[3])
        return
    for k in range(8):
        text += snprintf(text, 6, "%02x%02x:" if kind == 73 and k < 7 else "%02x%02x",
                         <unsigned int>a[2 * k], <unsigned int>a[2 * k + 1])


cdef uint64_t pk_commit(Vm* vm, Printk* o, size_t ret) noexcept nogil:
    """Record the trace line (the buffer up to its first NUL, one trailing newline
    dropped: each call is one line) and return ``ret``."""
    cdef size_t n
    pk_end(o)
    n = strlen(o.out)
    if n and o.out[n - 1] == 10:
        n -= 1
    skb_printk(vm.skb, o.out, n)
    return ret


cdef uint64_t bpf_trace_printk(Vm* vm, uint64_t fmt_addr, uint64_t fmt_size, uint64_t a1,
                               uint64_t a2, uint64_t a3) noexcept nogil:
    cdef uint32_t size = <uint32_t>fmt_size
    cdef const char* fmt
    cdef uint64_t args[3]
    if size == 0:
        return helper_fault(vm, b"fmt_size must be a non-zero constant (the kernel's "
                                b"verifier refuses 0)")
    fmt = <const char*>_mem(vm, fmt_addr, size, ACCESS_READ)
    if fmt == NULL:
        return 0
    if vm.skb.profile == PROFILE_V46:
        return printk_v46(vm, fmt, size, a1, a2, a3)
    args[0], args[1], args[2] = a1, a2, a3
    return trace_bprintf(vm, fmt, size, args, 3)


cdef uint64_t trace_bprintf(Vm* vm, const char* fmt, uint32_t size, const uint64_t* args,
                            int nargs) noexcept nogil:
    """bpf_trace_printk and bpf_trace_vprintk: the format up to its NUL (within
    size) printed into the 1024-byte trace buffer; the length it would have had."""
    cdef char buf[PRINTK_BUF]
    cdef Printk o
    cdef int64_t got
    cdef const char* nul = <const char*>memchr(fmt, 0, size)
    if nul == NULL:
        return err(EINVAL)
    pk_init(&o, buf, PRINTK_BUF)
    got = bprintf(vm, &o, fmt, <size_t>(nul - fmt), args, nargs)
    if got < 0:
        return <uint64_t>got
    return pk_commit(vm, &o, o.pos)


cdef int64_t bprintf(Vm* vm, Printk* po, const char* fmt, size_t n, const uint64_t* args,
                     int nargs) noexcept nogil:
    """bpf_bprintf_prepare and bstr_printf in one pass: the n bytes of fmt with nargs
    arguments printed into po; 0, or -errno for a format the kernel refuses."""
    cdef Printk o = po[0]
    cdef uint64_t v
    cdef size_t i = 0
    cdef long used = 0              # bytes of the kernel's 512-byte argument buffer
    cdef int nspec = 0, flags, width, got, longs
    cdef uint8_t c
    cdef char spec[32]
    cdef char conv[4]
    cdef char text[PRINTK_BIN_ARGS]
    while i < n:
        c = <uint8_t>fmt[i]
        if not pk_allowed(c):
            return err(EINVAL)
        if c != 37:
            pk_char(&o, <char>c)
            i += 1
            continue
        if fmt[i + 1] == 37:
            pk_char(&o, <char>37)
            i += 2
            continue
        if nspec >= nargs:
            return err(EINVAL)
        v = args[nspec]
        i += 1
        flags, width = 0, -1
        while True:
            c = <uint8_t>fmt[i]
            if c == 48:
                flags |= PK_ZERO
            elif c == 43:
                flags |= PK_PLUS
            elif c == 45:
                flags |= PK_LEFT
            elif c == 32:
                flags |= PK_SPACE
            else:
                break
            i += 1
        if 49 <= <uint8_t>fmt[i] <= 57:
            width = 0
            while 48 <= <uint8_t>fmt[i] <= 57:
                width = width * 10 + (fmt[i] - 48) if width <= FIELD_WIDTH_MAX else width
                i += 1
            if width > FIELD_WIDTH_MAX:
                width = FIELD_WIDTH_MAX
        c = <uint8_t>fmt[i]
        if c == 112:                                                    # 'p'
            c = <uint8_t>fmt[i + 1]
            if (c == 107 or c == 117) and fmt[i + 2] == 115:            # %pks %pus
                i += 2
                if not (fmt[i + 1] == 0 or pk_isspace(<uint8_t>fmt[i + 1])
                        or pk_ispunct(<uint8_t>fmt[i + 1])):
                    return err(EINVAL)
                if used >= PRINTK_BIN_ARGS:
                    return err(ENOSPC)
                # %pus reads user memory; a program's memory is all kernel memory
                got = pk_read_str(vm, v, text, PRINTK_BIN_ARGS - used) if c == 107 else -1
                if got < 0:
                    text[0], got = 0, 1
                used += got
                o.pos += snprintf(pk_dst(&o), pk_room(&o), "%s", text)  # no width
            elif c == 0 or pk_isspace(c) or pk_ispunct(c) or c == 75 or c == 120 \
                    or c == 115 or c == 83:
                used = (used + 3) & ~3
                if PRINTK_BIN_ARGS - used < 8:
                    return err(ENOSPC)
                used += 8
                if c == 115 or c == 83:        # %ps %pS: no symbols here, the address
                    snprintf(text, sizeof(text), "0x%lx", <unsigned long>v)
                    pk_string(&o, text, flags, width)
                else:
                    if width < 0:
                        flags, width = flags | PK_ZERO, 16
                    pk_spec(spec, flags & (PK_LEFT | PK_ZERO), width, "lx")
                    o.pos += snprintf(pk_dst(&o), pk_room(&o), spec, <unsigned long>v)
                i += 1
                if c != 0 and c != 75 and c != 120 and c != 115 and c != 83:
                    pk_char(&o, <char>c)      # the skipped character is plain text
            elif c == 66:                                               # %pB
                got = snprintf(text, sizeof(text), "0x%lx", <unsigned long>v)
                used += got + 1
                o.pos += snprintf(pk_dst(&o), pk_room(&o), "%s", text)
                i += 1
            elif (c == 105 or c == 73) and (fmt[i + 2] == 52 or fmt[i + 2] == 54):
                if PRINTK_BIN_ARGS - used < (4 if fmt[i + 2] == 52 else 16):
                    return err(ENOSPC)
                pk_ip(vm, v, <char>c, fmt[i + 2], text)
                used += strlen(text) + 1
                o.pos += snprintf(pk_dst(&o), pk_room(&o), "%s", text)
                i += 2
            else:
                return err(EINVAL)
        elif c == 115:                                                  # 's'
            if not (fmt[i + 1] == 0 or pk_isspace(<uint8_t>fmt[i + 1])
                    or pk_ispunct(<uint8_t>fmt[i + 1])):
                return err(EINVAL)
            if used >= PRINTK_BIN_ARGS:
                return err(ENOSPC)
            got = pk_read_str(vm, v, text, PRINTK_BIN_ARGS - used)
            if got < 0:
                text[0], got = 0, 1
            used += got
            pk_string(&o, text, flags, width)
        elif c == 99:                                                   # 'c'
            if used >= PRINTK_BIN_ARGS:
                return err(ENOSPC)
            used += 1
            pk_spec(spec, flags & PK_LEFT, width, "c")
            o.pos += snprintf(pk_dst(&o), pk_room(&o), spec, <int><uint8_t>v)
        else:
            longs = 0
            while longs < 2 and fmt[i] == 108:                          # 'l'
                longs += 1
                i += 1
            c = <uint8_t>fmt[i]
            if c != 105 and c != 100 and c != 117 and c != 120 and c != 88:
                return err(EINVAL)
            used = (used + 3) & ~3
            if PRINTK_BIN_ARGS - used < (8 if longs else 4):
                return err(ENOSPC)
            used += 8 if longs else 4
            conv[0], conv[1], conv[2], conv[3] = 108, 108, <char>c, 0
            pk_spec(spec, flags, width, &conv[0] if longs else &conv[2])
            if longs and (c == 105 or c == 100):
                got = snprintf(pk_dst(&o), pk_room(&o), spec, <long long>v)
            elif longs:
                got = snprintf(pk_dst(&o), pk_room(&o), spec, <unsigned long long>v)
            elif c == 105 or c == 100:
                got = snprintf(pk_dst(&o), pk_room(&o), spec, <int><uint32_t>v)
            else:
                got = snprintf(pk_dst(&o), pk_room(&o), spec, <unsigned int><uint32_t>v)
            o.pos += got
        i += 1
        nspec += 1
    po[0] = o
    return 0


cdef uint64_t printk_v46(Vm* vm, const char* fmt, uint32_t size, uint64_t a1, uint64_t a2,
                         uint64_t a3) noexcept nogil:
    """4.6: %d %u %x (l, ll), %p, one %s of at most 63 bytes, 3 conversions, no
    flags, widths or %%; the NUL must be the last byte; the text's length is returned.
    (4.6 also wanted fmt on the stack, the only memory its programs could point at.)"""
    cdef char buf[PRINTK_BUF]
    cdef Printk o
    cdef uint64_t args[3]
    cdef uint64_t v
    cdef uint32_t i = 0, n = size - 1
    cdef int cnt = 0, longs, got
    cdef bint str_seen = False
    cdef uint8_t c
    cdef char text[PRINTK_V46_STR]
    cdef char spec[8]
    if fmt[n] != 0:
        return err(EINVAL)
    args[0], args[1], args[2] = a1, a2, a3
    pk_init(&o, buf, PRINTK_BUF)
    while i < n:
        c = <uint8_t>fmt[i]
        if not pk_ascii_allowed(c):
            return err(EINVAL)
        if c != 37:
            pk_char(&o, <char>c)
            i += 1
            continue
        if cnt >= 3:
            return err(EINVAL)
        v = args[cnt]
        i += 1
        c = <uint8_t>fmt[i]
        if c == 112 or c == 115:                                        # %p %s
            i += 1
            if not (pk_isspace(<uint8_t>fmt[i]) or pk_ispunct(<uint8_t>fmt[i]) or fmt[i] == 0):
                return err(EINVAL)
            cnt += 1
            if c == 115:
                if str_seen:
                    return err(EINVAL)
                str_seen = True
                pk_read_str(vm, v, text, PRINTK_V46_STR)   # a fault keeps what was read
                o.pos += snprintf(pk_dst(&o), pk_room(&o), "%s", text)
            elif v == 0:
                o.pos += snprintf(pk_dst(&o), pk_room(&o), "%16s", "(null)")
            else:
                o.pos += snprintf(pk_dst(&o), pk_room(&o), "%016lx", <unsigned long>v)
            continue
        longs = 0
        while longs < 2 and fmt[i] == 108:
            longs += 1
            i += 1
        c = <uint8_t>fmt[i]
        if c != 100 and c != 117 and c != 120:
            return err(EINVAL)
        cnt += 1
        i += 1
        spec[0], spec[1], spec[2], spec[3], spec[4] = 37, 108, 108, <char>c, 0
        if not longs:
            spec[1], spec[2] = <char>c, 0
        if longs and c == 100:
            got = snprintf(pk_dst(&o), pk_room(&o), spec, <long long>v)
        elif longs:
            got = snprintf(pk_dst(&o), pk_room(&o), spec, <unsigned long long>v)
        elif c == 100:
            got = snprintf(pk_dst(&o), pk_room(&o), spec, <int><uint32_t>v)
        else:
            got = snprintf(pk_dst(&o), pk_room(&o), spec, <unsigned int><uint32_t>v)
        o.pos += got
    # vscnprintf: the length of what fits
    return pk_commit(vm, &o, o.pos if o.pos < PRINTK_BUF - 1 else PRINTK_BUF - 1)


cdef void register_misc_helpers(helper_fn* table) noexcept:
    table[5] = bpf_ktime_get_ns
    table[42] = bpf_get_numa_node_id
    table[118] = bpf_jiffies64
    table[125] = bpf_ktime_get_boot_ns
    table[160] = bpf_ktime_get_coarse_ns
    table[208] = bpf_ktime_get_tai_ns
    table[6] = bpf_trace_printk
    table[7] = bpf_get_prandom_u32
    table[8] = bpf_get_smp_processor_id
    table[14] = bpf_get_current_pid_tgid
    table[15] = bpf_get_current_uid_gid
    table[16] = bpf_get_current_comm
    table[17] = bpf_get_cgroup_classid
    table[23] = bpf_redirect
    table[24] = bpf_get_route_realm
