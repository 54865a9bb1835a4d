# BPF streams (kernel/bpf/stream.c).  Included into pyebpf/kfuncs.pxi.
#
# Each program has two streams, stdout and stderr (BPF_STDOUT, BPF_STDERR), that
# bpf_stream_vprintk_impl appends formatted text to, one element per call, and
# BPF_PROG_STREAM_READ_BY_FD reads (Program.read_stream), consuming it.  A stream keeps its
# unread elements back to back in one buffer with their lengths: a read takes bytes across
# elements, and an element stops counting against the stream's capacity only when all of
# it is read (bpf_stream_read, bpf_stream_release_capacity).  The kernel takes elements
# from per-CPU pages (bpf_stream_page_reserve_elem), an allocation that may fail with
# ENOMEM; the engine's does not (docs/kfuncs-table.md says where the kernel's always does).

cdef void stream_free(Stream* s) noexcept nogil:
    free(s.buf)
    free(s.lens)
    memset(s, 0, sizeof(Stream))


cdef void _stream_compact(Stream* s) noexcept nogil:
    """Drop the bytes and lengths of what was read from the front of the buffers."""
    memmove(s.buf, s.buf + s.head, s.len - s.head)
    memmove(s.lens, s.lens + s.first, (s.nelem - s.first) * sizeof(uint32_t))
    s.len -= s.head
    s.nelem -= s.first
    s.head = s.first = 0


cdef int64_t _stream_append(Stream* s, const char* text, uint32_t n) noexcept nogil:
    cdef size_t want
    cdef void* grown
    if s.len + n > s.size or s.nelem == s.nlens:
        _stream_compact(s)
    if s.len + n > s.size:
        want = max(2 * s.size, s.len + n, <size_t>4096)
        grown = realloc(s.buf, want)
        if grown == NULL:
            return -ENOMEM
        s.buf, s.size = <char*>grown, want
    if s.nelem == s.nlens:
        want = max(2 * s.nlens, <size_t>64)
        grown = realloc(s.lens, want * sizeof(uint32_t))
        if grown == NULL:
            return -ENOMEM
        s.lens, s.nlens = <uint32_t*>grown, want
    memcpy(s.buf + s.len, text, n)
    s.len += n
    s.lens[s.nelem] = n
    s.nelem += 1
    return 0


cdef int64_t stream_push(Stream* s, const char* text, int64_t n) noexcept nogil:
    """bpf_stream_push_str of n bytes of text: 0, -ENOSPC when the stream would hold
    BPF_STREAM_MAX_CAPACITY bytes or more, -ENOMEM for more than MAX_BPRINTF_BUF bytes
    (bpf_stream_elem_alloc's limit: the kernel has charged them to the capacity already,
    and never gives them back)."""
    cdef int64_t ret = 0
    map_lock(&s.lock)
    # bpf_stream_consume_capacity
    if s.capacity >= BPF_STREAM_MAX_CAPACITY:
        ret = -ENOSPC
    else:
        s.capacity += n
        if s.capacity >= BPF_STREAM_MAX_CAPACITY:
            s.capacity -= n
            ret = -ENOSPC
        elif n > MAX_BPRINTF_BUF:
            ret = -ENOMEM
        elif n:                     # an empty element is never seen, and holds nothing
            ret = _stream_append(s, text, <uint32_t>n)
    map_unlock(&s.lock)
    return ret


cdef size_t stream_read(Stream* s, char* out, size_t size) noexcept nogil:
    """bpf_stream_read: up to size bytes of the stream into out, consumed; how many."""
    cdef size_t rem = size, take
    map_lock(&s.lock)
    while rem and s.first < s.nelem:
        take = min(<size_t>(s.lens[s.first] - s.done), rem)
        memcpy(out + (size - rem), s.buf + s.head, take)
        s.head += take
        s.done += <uint32_t>take
        rem -= take
        if s.done == s.lens[s.first]:
            s.capacity -= s.lens[s.first]
            s.first += 1
            s.done = 0
    if s.first == s.nelem:
        s.len = s.head = s.nelem = s.first = 0
    map_unlock(&s.lock)
    return size - rem


cdef uint64_t _k_stream_vprintk(Vm* vm, uint64_t stream_id, uint64_t fmt_addr,
                                uint64_t data, uint64_t data_len,
                                uint64_t aux) noexcept nogil:
    # bpf_stream_vprintk_impl: bpf_snprintf's format rules and arguments, the text (its
    # NUL left out, but kept when the text fills the 1024-byte buffer) one element
    cdef int sid = <int>stream_id
    cdef char buf[MAX_BPRINTF_BUF]
    cdef const char* fmt
    cdef const uint64_t* args
    cdef int nargs
    cdef int64_t got
    cdef Printk o
    if (sid != BPF_STDOUT and sid != BPF_STDERR) or vm.prog.streams == NULL:
        return err(ENOENT)
    args = vararg_data(vm, data, <uint32_t>data_len, &nargs)
    if nargs < 0:
        return err(-nargs)
    if nargs and args == NULL:
        return 0
    fmt = const_str(vm, fmt_addr)
    if fmt == NULL:
        return 0
    pk_init(&o, buf, MAX_BPRINTF_BUF)
    got = bprintf(vm, &o, fmt, strlen(fmt), args, nargs)
    if got < 0:
        return <uint64_t>got
    pk_end(&o)
    return <uint64_t>stream_push(&vm.prog.streams[sid - 1], buf, <int64_t>o.pos)
