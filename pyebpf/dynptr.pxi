# Dynptrs (kernel/bpf/helpers.c, kernel/bpf/ringbuf.c, net/core/filter.c): local
# dynptrs over map values (bpf_dynptr_from_mem) and user ring buffer samples
# (bpf_user_ringbuf_drain), ring buffer records
# (bpf_ringbuf_reserve_dynptr, _submit_dynptr, _discard_dynptr), skb dynptrs
# (bpf_dynptr_from_skb), skb metadata dynptrs (bpf_dynptr_from_skb_meta), the kfuncs
# bpf_dynptr_slice, _slice_rdwr, _adjust, _is_null,
# _is_rdonly, _size, _clone, _memset, _copy, bpf_probe_read_{kernel,user}{,_str}_dynptr
# and the helpers bpf_dynptr_read, _write and _data.
# Included by pyebpf/kfuncs.pxi.
#
# A dynptr is 16 bytes on the program's stack, laid out as struct bpf_dynptr_kern:
# { u64 data; u32 size; u32 offset }, size's low bits the size, then the type, its top
# bit the read-only mark.  A local or ring buffer dynptr's data is the memory's address
# (a map value, a reserved record: regions of the run); an skb dynptr's is the
# context's address (the kernel's is the sk_buff); a NULL dynptr is all zero.  The
# engine's packet is one linear buffer, so a slice of an skb dynptr is always the packet
# pointer (skb_header_pointer never copies into the caller's buffer), as in the kernel
# for a packet in its linear part.

cdef struct DynptrKern:
    uint64_t data
    uint32_t size
    uint32_t offset

cdef uint32_t _DYNPTR_RDONLY = _isa.DYNPTR_RDONLY_BIT


cdef inline DynptrKern* _dynptr(Vm* vm, uint64_t addr, bint write) noexcept nogil:
    return <DynptrKern*>_mem(vm, addr, BPF_DYNPTR_SIZE, write)


cdef inline uint32_t _dsize(DynptrKern* d) noexcept nogil:
    return d.size & DYNPTR_SIZE_MASK


cdef inline bint _drdonly(DynptrKern* d) noexcept nogil:
    return (d.size & _DYNPTR_RDONLY) != 0


cdef inline uint32_t _dtype(DynptrKern* d) noexcept nogil:
    return (d.size & ~_DYNPTR_RDONLY) >> DYNPTR_TYPE_SHIFT


cdef inline bint _in_skb(DynptrKern* d) noexcept nogil:
    """An skb or skb metadata dynptr: its bytes are found from the packet's start (the
    metadata area ends there, bpf_skb_meta_pointer) and given by slices only."""
    return _dtype(d) == BPF_DYNPTR_TYPE_SKB or _dtype(d) == BPF_DYNPTR_TYPE_SKB_META


cdef inline void _dinit(DynptrKern* d, uint64_t data, uint32_t kind, uint32_t size) noexcept nogil:
    """bpf_dynptr_init."""
    d.data = data
    d.size = size | (kind << DYNPTR_TYPE_SHIFT)
    d.offset = 0


cdef inline uint8_t* _dmem(Vm* vm, DynptrKern* d, uint32_t offset, uint32_t n,
                           bint write) noexcept nogil:
    """The bytes [offset, offset + n) of a local or ring buffer dynptr (checked against
    the run's regions: the verifier's guarantee, checked again)."""
    return _mem(vm, d.data + d.offset + offset, n, write)


cdef inline int _check_off_len(DynptrKern* d, uint32_t offset, uint32_t n) noexcept nogil:
    """bpf_dynptr_check_off_len: 0, or -E2BIG past the dynptr's end."""
    cdef uint32_t size = _dsize(d)
    if n > size or offset > size - n:
        return -E2BIG
    return 0


cdef uint64_t _k_dynptr_from_skb(Vm* vm, uint64_t s, uint64_t flags, uint64_t p,
                                 uint64_t r4, uint64_t r5) noexcept nogil:
    cdef DynptrKern* d = _dynptr(vm, p, ACCESS_WRITE)
    if d == NULL or not is_ctx(vm, s):
        return 0
    if flags:
        memset(d, 0, sizeof(DynptrKern))
        return err(EINVAL)
    d.data = vm.ctx
    d.size = vm.skb.len | (<uint32_t>BPF_DYNPTR_TYPE_SKB << DYNPTR_TYPE_SHIFT)
    d.offset = 0
    # specialize_kfunc: a program that may not write packet data (a socket filter,
    # may_access_direct_pkt_data) gets bpf_dynptr_from_skb_rdonly
    if vm.prog.prog_type == BPF_PROG_TYPE_SOCKET_FILTER:
        d.size |= _DYNPTR_RDONLY
    return 0


cdef uint64_t _k_dynptr_from_skb_meta(Vm* vm, uint64_t s, uint64_t flags, uint64_t p,
                                      uint64_t r4, uint64_t r5) noexcept nogil:
    """bpf_dynptr_from_skb_meta: a dynptr over the skb's metadata area, which is empty in
    the engine as in the kernel's test runs (bpf_prog_test_run_skb refuses a data_meta:
    only XDP fills one, bpf_xdp_adjust_meta), so every access past 0 bytes is -E2BIG."""
    cdef DynptrKern* d = _dynptr(vm, p, ACCESS_WRITE)
    if d == NULL or not is_ctx(vm, s):
        return 0
    if flags:
        memset(d, 0, sizeof(DynptrKern))
        return err(EINVAL)
    _dinit(d, vm.ctx, BPF_DYNPTR_TYPE_SKB_META, 0)
    return 0


cdef uint64_t _dynptr_slice(Vm* vm, uint64_t p, uint64_t offset, uint64_t buf, uint64_t n,
                            bint rdwr) noexcept nogil:
    cdef DynptrKern* d = _dynptr(vm, p, ACCESS_READ)
    if d == NULL:
        return 0
    # the buffer must be writable memory of its size even though it is not used
    if buf != 0 and _mem(vm, buf, <uint32_t>n, ACCESS_WRITE) == NULL:
        return 0
    if d.data == 0 or (rdwr and _drdonly(d)):
        return 0
    if _check_off_len(d, <uint32_t>offset, <uint32_t>n):
        return 0
    if not _in_skb(d):
        return <uint64_t>_dmem(vm, d, <uint32_t>offset, <uint32_t>n, rdwr)
    return <uint64_t>(skb_data(vm.skb) + d.offset + <uint32_t>offset)


cdef uint64_t _k_dynptr_slice(Vm* vm, uint64_t p, uint64_t offset, uint64_t buf, uint64_t n,
                              uint64_t r5) noexcept nogil:
    return _dynptr_slice(vm, p, offset, buf, n, False)


cdef uint64_t _k_dynptr_slice_rdwr(Vm* vm, uint64_t p, uint64_t offset, uint64_t buf,
                                   uint64_t n, uint64_t r5) noexcept nogil:
    return _dynptr_slice(vm, p, offset, buf, n, True)


cdef uint64_t _k_dynptr_adjust(Vm* vm, uint64_t p, uint64_t start, uint64_t end,
                               uint64_t r4, uint64_t r5) noexcept nogil:
    cdef DynptrKern* d = _dynptr(vm, p, ACCESS_WRITE)
    cdef uint32_t lo = <uint32_t>start, hi = <uint32_t>end, size
    if d == NULL:
        return 0
    if d.data == 0:
        return err(EINVAL)
    size = _dsize(d)
    if lo > size or hi > size:
        return err(ERANGE)
    if lo > hi:
        return err(EINVAL)
    d.offset += lo
    d.size = (d.size & ~<uint32_t>DYNPTR_SIZE_MASK) | (hi - lo)
    return 0


cdef uint64_t _k_dynptr_is_null(Vm* vm, uint64_t p, uint64_t r2, uint64_t r3, uint64_t r4,
                                uint64_t r5) noexcept nogil:
    cdef DynptrKern* d = _dynptr(vm, p, ACCESS_READ)
    return d != NULL and d.data == 0


cdef uint64_t _k_dynptr_is_rdonly(Vm* vm, uint64_t p, uint64_t r2, uint64_t r3, uint64_t r4,
                                  uint64_t r5) noexcept nogil:
    cdef DynptrKern* d = _dynptr(vm, p, ACCESS_READ)
    return d != NULL and d.data != 0 and _drdonly(d)


cdef uint64_t _k_dynptr_size(Vm* vm, uint64_t p, uint64_t r2, uint64_t r3, uint64_t r4,
                             uint64_t r5) noexcept nogil:
    cdef DynptrKern* d = _dynptr(vm, p, ACCESS_READ)
    if d == NULL:
        return 0
    if d.data == 0:
        return <uint32_t>(-EINVAL)      # the kfunc returns u32
    return _dsize(d)


cdef uint64_t _k_dynptr_clone(Vm* vm, uint64_t p, uint64_t c, uint64_t r3, uint64_t r4,
                              uint64_t r5) noexcept nogil:
    cdef DynptrKern* d = _dynptr(vm, p, ACCESS_READ)
    cdef DynptrKern* e = _dynptr(vm, c, ACCESS_WRITE)
    if d == NULL or e == NULL:
        return 0
    if d.data == 0:
        memset(e, 0, sizeof(DynptrKern))
        return err(EINVAL)
    e[0] = d[0]
    return 0


# --- the helpers (BPF_FUNC_dynptr_read/write/data) -------------------------------------

cdef uint64_t bpf_dynptr_read(Vm* vm, uint64_t dst, uint64_t n, uint64_t p, uint64_t offset,
                              uint64_t flags) noexcept nogil:
    cdef DynptrKern* d = _dynptr(vm, p, ACCESS_READ)
    cdef uint8_t* to = NULL
    cdef const uint8_t* frm
    cdef int e
    if d == NULL:
        return 0
    if <uint32_t>n:
        to = _mem(vm, dst, <uint32_t>n, ACCESS_WRITE)
        if to == NULL:
            return 0
    if d.data == 0 or flags:
        return err(EINVAL)
    e = _check_off_len(d, <uint32_t>offset, <uint32_t>n)
    if e:
        return <uint64_t><int64_t>e
    if _dtype(d) == BPF_DYNPTR_TYPE_SKB:
        memcpy(to, skb_data(vm.skb) + d.offset + <uint32_t>offset, <uint32_t>n)
    elif <uint32_t>n:
        frm = _dmem(vm, d, <uint32_t>offset, <uint32_t>n, ACCESS_READ)
        if frm == NULL:
            return 0
        # two dynptrs may overlap the same map value (the kernel's memmove)
        memmove(to, frm, <uint32_t>n)
    return 0


cdef uint64_t bpf_dynptr_write(Vm* vm, uint64_t p, uint64_t offset, uint64_t src, uint64_t n,
                               uint64_t flags) noexcept nogil:
    cdef DynptrKern* d = _dynptr(vm, p, ACCESS_READ)
    cdef const uint8_t* frm = NULL
    cdef uint8_t* to
    cdef int e
    if d == NULL:
        return 0
    if <uint32_t>n:
        frm = _mem(vm, src, <uint32_t>n, ACCESS_READ)
        if frm == NULL:
            return 0
    if d.data == 0 or _drdonly(d):
        return err(EINVAL)
    e = _check_off_len(d, <uint32_t>offset, <uint32_t>n)
    if e:
        return <uint64_t><int64_t>e
    if _dtype(d) == BPF_DYNPTR_TYPE_SKB:
        return skb_store(vm, d.offset + <uint32_t>offset, frm, <uint32_t>n, flags)
    if flags:
        return err(EINVAL)
    if <uint32_t>n:
        to = _dmem(vm, d, <uint32_t>offset, <uint32_t>n, ACCESS_WRITE)
        if to == NULL:
            return 0
        memmove(to, frm, <uint32_t>n)
    return 0


cdef uint64_t bpf_dynptr_data(Vm* vm, uint64_t p, uint64_t offset, uint64_t n, uint64_t r4,
                              uint64_t r5) noexcept nogil:
    cdef DynptrKern* d = _dynptr(vm, p, ACCESS_READ)
    if d == NULL or d.data == 0:
        return 0
    if _check_off_len(d, <uint32_t>offset, <uint32_t>n) or _drdonly(d):
        return 0
    # skb dynptrs give their bytes through bpf_dynptr_slice(_rdwr) only: NULL
    if _in_skb(d):
        return 0
    return <uint64_t>_dmem(vm, d, <uint32_t>offset, <uint32_t>n, ACCESS_WRITE)


cdef uint64_t bpf_dynptr_from_mem(Vm* vm, uint64_t data, uint64_t size, uint64_t flags,
                                  uint64_t p, uint64_t r5) noexcept nogil:
    cdef DynptrKern* d = _dynptr(vm, p, ACCESS_WRITE)
    cdef uint32_t n = <uint32_t>size
    if d == NULL:
        return 0
    if n and _mem(vm, data, n, ACCESS_WRITE) == NULL:
        return 0
    if n > DYNPTR_MAX_SIZE:                 # bpf_dynptr_check_size
        memset(d, 0, sizeof(DynptrKern))
        return err(E2BIG)
    if flags:
        memset(d, 0, sizeof(DynptrKern))
        return err(EINVAL)
    _dinit(d, data, BPF_DYNPTR_TYPE_LOCAL, n)
    return 0


# --- ring buffer dynptrs: the record is a region of the run, as bpf_ringbuf_reserve's,
# until submitted or discarded (or the run ends: discarded) ---

cdef uint64_t _ringbuf_reserve_dynptr(Vm* vm, uint64_t r1, uint64_t size, uint64_t flags,
                                      uint64_t p, uint64_t r5) noexcept nogil:
    cdef MapStore* m = _typed_map_arg(vm, r1, BPF_MAP_TYPE_RINGBUF, b"r1 must be a ring buffer")
    cdef DynptrKern* d = _dynptr(vm, p, ACCESS_WRITE)
    cdef uint32_t n = <uint32_t>size          # the helper's size is a u32
    cdef uint8_t* rec
    if m == NULL or d == NULL:
        return 0
    memset(d, 0, sizeof(DynptrKern))
    if flags:
        return err(EINVAL)
    if n > DYNPTR_MAX_SIZE:
        return err(E2BIG)
    rec = rb_reserve(m, n)
    if rec == NULL:
        return err(EINVAL)                  # no room: -EINVAL, not bpf_ringbuf_output's -EAGAIN
    if not add_region(vm, <uintptr_t>rec, n, REGION_RB_RECORD):
        rb_commit(m, rec, True)
        return 0
    _dinit(d, <uintptr_t>rec, BPF_DYNPTR_TYPE_RINGBUF, n)
    return 0


cdef uint64_t bpf_ringbuf_reserve_dynptr(Vm* vm, uint64_t r1, uint64_t r2, uint64_t r3,
                                         uint64_t r4, uint64_t r5) noexcept nogil:
    return _locked(_ringbuf_reserve_dynptr, r1, False, vm, r1, r2, r3, r4, r5)


cdef uint64_t _ringbuf_finish_dynptr(Vm* vm, uint64_t p, bint discard) noexcept nogil:
    """bpf_ringbuf_submit_dynptr/_discard_dynptr: a NULL dynptr (a failed reserve) is
    nothing to do; the dynptr is NULL afterwards."""
    cdef DynptrKern* d = _dynptr(vm, p, ACCESS_WRITE)
    cdef int k
    if d == NULL or d.data == 0:
        return 0
    k = _rb_record(vm, d.data)
    if k >= 0:
        _rb_release(vm, k, discard)
    memset(d, 0, sizeof(DynptrKern))
    return 0


cdef uint64_t bpf_ringbuf_submit_dynptr(Vm* vm, uint64_t p, uint64_t flags, uint64_t r3,
                                        uint64_t r4, uint64_t r5) noexcept nogil:
    return _ringbuf_finish_dynptr(vm, p, False)


cdef uint64_t bpf_ringbuf_discard_dynptr(Vm* vm, uint64_t p, uint64_t flags, uint64_t r3,
                                         uint64_t r4, uint64_t r5) noexcept nogil:
    return _ringbuf_finish_dynptr(vm, p, True)


# --- user ring buffers: user space produces the samples (Map.reserve, submit, discard,
# laid out as libbpf's user_ring_buffer writes them); bpf_user_ringbuf_drain consumes
# them, handing each to the callback as a local dynptr ---

cdef int64_t _user_rb_peek(MapStore* m, uint8_t** sample, uint32_t* size) noexcept nogil:
    """__bpf_user_ringbuf_peek: 0 and the next sample; -ENODATA (none, or one still
    busy); -EAGAIN for a discarded one, consumed; -EINVAL/-E2BIG for a malformed one."""
    cdef uint64_t mask = m.max_entries - 1
    cdef uint32_t hdr, n, total
    if m.prod_pos % 8:
        return -EINVAL
    if m.cons_pos >= m.prod_pos:
        return -ENODATA
    memcpy(&hdr, m.values + (m.cons_pos & mask), 4)
    n = hdr & ~(RB_BUSY | RB_DISCARD)
    total = (n + RB_HDR + 7) & ~7u
    if total > m.prod_pos - m.cons_pos:
        return -EINVAL
    if total > m.max_entries or n > DYNPTR_MAX_SIZE:
        return -E2BIG
    if hdr & RB_DISCARD:
        m.cons_pos += total
        return -EAGAIN
    if hdr & RB_BUSY:
        return -ENODATA
    sample[0] = m.values + ((m.cons_pos + RB_HDR) & mask)
    size[0] = n
    return 0


cdef void _drop_region(Vm* vm, int name) noexcept nogil:
    cdef int k = vm.nregions - 1
    while k >= 0:
        if vm.regions[k].name == name:
            vm.nregions -= 1
            memmove(&vm.regions[k], &vm.regions[k + 1], (vm.nregions - k) * sizeof(Region))
            return
        k -= 1


cdef uint64_t bpf_user_ringbuf_drain(Vm* vm, uint64_t r1, uint64_t callback, uint64_t ctx,
                                     uint64_t flags, uint64_t r5) noexcept nogil:
    """The callback (dynptr, ctx) for each sample, up to BPF_MAX_USER_RINGBUF_SAMPLES,
    stopping after one that returns non-zero; the samples drained (discarded ones
    counted out), or a malformed sample's error."""
    cdef MapStore* m = _typed_map_arg(vm, r1, BPF_MAP_TYPE_USER_RINGBUF,
                                      b"r1 must be a user ring buffer")
    cdef DynptrKern d
    cdef uint8_t* sample
    cdef uint32_t n
    cdef int64_t e, samples = 0, discarded = 0
    cdef uint64_t ret = 0
    cdef bint ok
    if m == NULL:
        return 0
    if flags & ~3ull:                       # BPF_RB_NO_WAKEUP | BPF_RB_FORCE_WAKEUP
        return err(EINVAL)
    map_lock(&m.lock)
    if m.rb_busy:                           # a drain of it is under way (rb->busy)
        map_unlock(&m.lock)
        return err(EBUSY)
    m.rb_busy = True
    map_unlock(&m.lock)
    while samples < BPF_MAX_USER_RINGBUF_SAMPLES and ret == 0:
        e = _user_rb_peek(m, &sample, &n)
        if e == -ENODATA:
            break
        samples += 1
        if e == -EAGAIN:
            discarded += 1
            continue
        if e:
            m.rb_busy = False
            return <uint64_t>e
        _dinit(&d, <uintptr_t>sample, BPF_DYNPTR_TYPE_LOCAL, n)
        if not add_region(vm, <uintptr_t>&d, sizeof(DynptrKern), REGION_DYNPTR):
            break
        if not add_region(vm, <uintptr_t>sample, n, REGION_USER_RB_SAMPLE):
            _drop_region(vm, REGION_DYNPTR)
            break
        ok = vm_callback(vm, callback, <uintptr_t>&d, ctx, 0, 0, &ret)
        _drop_region(vm, REGION_USER_RB_SAMPLE)
        _drop_region(vm, REGION_DYNPTR)
        if not ok:
            break
        m.cons_pos += (n + RB_HDR + 7) & ~7u
    m.rb_busy = False
    return <uint64_t>(samples - discarded)


# --- bpf_dynptr_memset, bpf_dynptr_copy (kernel/bpf/helpers.c) -------------------------

cdef inline uint8_t* _dynptr_slice_ptr(Vm* vm, DynptrKern* d, uint32_t offset, uint32_t n,
                                       bint write) noexcept nogil:
    """bpf_dynptr_slice(_rdwr) without a buffer: the bytes, or NULL for a NULL dynptr, a
    read-only one written, or a range past its end.  The engine's packet is linear, so an
    skb dynptr's slice always exists."""
    if d.data == 0 or (write and _drdonly(d)) or _check_off_len(d, offset, n):
        return NULL
    if _in_skb(d):
        return skb_data(vm.skb) + d.offset + offset
    return _dmem(vm, d, offset, n, write)


cdef uint64_t _k_dynptr_memset(Vm* vm, uint64_t p, uint64_t offset, uint64_t size,
                               uint64_t val, uint64_t r5) noexcept nogil:
    """bpf_dynptr_memset: -EINVAL for a read-only dynptr, -E2BIG past the end (a NULL
    dynptr has size 0)."""
    cdef DynptrKern* d = _dynptr(vm, p, ACCESS_READ)
    cdef uint8_t* to
    cdef int e
    if d == NULL:
        return 0
    to = _dynptr_slice_ptr(vm, d, <uint32_t>offset, <uint32_t>size, True)
    if to != NULL:
        memset(to, <uint8_t>val, <uint32_t>size)
        return 0
    if vm.status != STATUS_RUNNING:
        return 0
    if _drdonly(d):
        return err(EINVAL)
    e = _check_off_len(d, <uint32_t>offset, <uint32_t>size)
    if e:
        return <uint64_t><int64_t>e
    # a NULL dynptr, size 0: __bpf_dynptr_write's chunks never run
    return 0


cdef uint64_t _k_dynptr_copy(Vm* vm, uint64_t dst_p, uint64_t dst_off, uint64_t src_p,
                             uint64_t src_off, uint64_t size) noexcept nogil:
    """bpf_dynptr_copy: a memmove when both ranges are in their dynptrs, else the error
    of the write (-EINVAL: NULL or read-only destination) or read (-EINVAL: NULL source)
    that fails, or -E2BIG."""
    cdef DynptrKern* dst = _dynptr(vm, dst_p, ACCESS_READ)
    cdef DynptrKern* src = _dynptr(vm, src_p, ACCESS_READ)
    cdef uint8_t* frm
    cdef uint8_t* to
    cdef uint32_t n = <uint32_t>size
    if dst == NULL or src == NULL:
        return 0
    frm = _dynptr_slice_ptr(vm, src, <uint32_t>src_off, n, False)
    to = _dynptr_slice_ptr(vm, dst, <uint32_t>dst_off, n, True)
    if vm.status != STATUS_RUNNING:
        return 0
    if frm != NULL and to != NULL:
        memmove(to, frm, n)
        return 0
    if frm != NULL:
        # __bpf_dynptr_write
        if dst.data == 0 or _drdonly(dst):
            return err(EINVAL)
        return <uint64_t><int64_t>_check_off_len(dst, <uint32_t>dst_off, n)
    if to != NULL:
        # __bpf_dynptr_read
        if src.data == 0:
            return err(EINVAL)
        return <uint64_t><int64_t>_check_off_len(src, <uint32_t>src_off, n)
    if _check_off_len(dst, <uint32_t>dst_off, n) or _check_off_len(src, <uint32_t>src_off, n):
        return err(E2BIG)
    # neither range sliced, both within their dynptrs: size 0, a NULL source and a NULL
    # or read-only destination; the kernel's chunked copy does not start
    return 0



# --- bpf_probe_read_{kernel,user}{,_str}_dynptr (kernel/trace/bpf_trace.c) --------------
# The bytes go straight into the dynptr's slice (__bpf_dynptr_copy(_str)'s fast path):
# the engine's dynptrs always have one in range.  Without one (a NULL or read-only
# dynptr, a range past its end) the kernel reads a first chunk of at most 256 bytes
# before its write fails.  A failed read leaves the destination as it was (the kernel's
# partial copy up to a fault is not modelled).

cdef enum:
    DYNPTR_COPY_CHUNK = 256            # __bpf_dynptr_copy's buffer

cdef int64_t _nofault_copy(Vm* vm, uint8_t* to, uint64_t src, uint32_t n, bint user,
                           bint string) noexcept nogil:
    """copy_from_kernel_nofault, copy_from_user_nofault (0 or -errno), or
    strncpy_from_kernel_nofault, strncpy_from_user_nofault (the length with the NUL,
    0 for n == 0, or -errno)."""
    cdef const uint8_t* q
    cdef int64_t ret
    if string:
        if n == 0:
            return 0
        return _user_str(vm, to, n, src) if user else _kernel_str(vm, to, n, src)
    if user:
        if n == 0 and _is_user(vm, src):
            return 0
        q = _user_bytes(vm, src, n)
    else:
        if _own_region(vm, src, n) == NULL:
            ret = _kernel_allowed(vm, src)
            if ret < 0:
                return ret
        if n == 0:
            return 0
        q = _kernel_bytes(vm, src, n)
    if q == NULL:
        return -EFAULT
    memmove(to, q, n)
    return 0


cdef uint64_t _probe_read_dynptr(Vm* vm, uint64_t p, uint64_t off, uint64_t size,
                                 uint64_t src, bint user, bint string) noexcept nogil:
    cdef DynptrKern* d = _dynptr(vm, p, ACCESS_READ)
    cdef uint32_t n = <uint32_t>size
    cdef uint8_t buf[DYNPTR_COPY_CHUNK]
    cdef uint8_t* to
    cdef int64_t ret
    if d == NULL:
        return 0
    to = _dynptr_slice_ptr(vm, d, <uint32_t>off, n, True)
    if vm.status != STATUS_RUNNING:
        return 0
    if to != NULL:
        return <uint64_t>_nofault_copy(vm, to, src, n, user, string)
    if _check_off_len(d, <uint32_t>off, n):
        return err(E2BIG)
    if n == 0:
        return 0
    ret = _nofault_copy(vm, buf, src, min(n, <uint32_t>DYNPTR_COPY_CHUNK), user, string)
    # then __bpf_dynptr_write of a NULL or read-only dynptr
    return <uint64_t>ret if ret < 0 else err(EINVAL)


cdef uint64_t _k_probe_read_kernel_dynptr(Vm* vm, uint64_t p, uint64_t off, uint64_t size,
                                          uint64_t src, uint64_t r5) noexcept nogil:
    return _probe_read_dynptr(vm, p, off, size, src, False, False)


cdef uint64_t _k_probe_read_kernel_str_dynptr(Vm* vm, uint64_t p, uint64_t off,
                                              uint64_t size, uint64_t src,
                                              uint64_t r5) noexcept nogil:
    return _probe_read_dynptr(vm, p, off, size, src, False, True)


cdef uint64_t _k_probe_read_user_dynptr(Vm* vm, uint64_t p, uint64_t off, uint64_t size,
                                        uint64_t src, uint64_t r5) noexcept nogil:
    return _probe_read_dynptr(vm, p, off, size, src, True, False)


cdef uint64_t _k_probe_read_user_str_dynptr(Vm* vm, uint64_t p, uint64_t off, uint64_t size,
                                            uint64_t src, uint64_t r5) noexcept nogil:
    return _probe_read_dynptr(vm, p, off, size, src, True, True)

cdef void register_dynptr(helper_fn* helpers) except *:
    _kfunc("bpf_probe_read_kernel_dynptr", _k_probe_read_kernel_dynptr)
    _kfunc("bpf_probe_read_kernel_str_dynptr", _k_probe_read_kernel_str_dynptr)
    _kfunc("bpf_probe_read_user_dynptr", _k_probe_read_user_dynptr)
    _kfunc("bpf_probe_read_user_str_dynptr", _k_probe_read_user_str_dynptr)
    _kfunc("bpf_dynptr_from_skb", _k_dynptr_from_skb)
    _kfunc("bpf_dynptr_from_skb_meta", _k_dynptr_from_skb_meta)
    _kfunc("bpf_dynptr_slice", _k_dynptr_slice)
    _kfunc("bpf_dynptr_slice_rdwr", _k_dynptr_slice_rdwr)
    _kfunc("bpf_dynptr_adjust", _k_dynptr_adjust)
    _kfunc("bpf_dynptr_is_null", _k_dynptr_is_null)
    _kfunc("bpf_dynptr_is_rdonly", _k_dynptr_is_rdonly)
    _kfunc("bpf_dynptr_size", _k_dynptr_size)
    _kfunc("bpf_dynptr_clone", _k_dynptr_clone)
    _kfunc("bpf_dynptr_memset", _k_dynptr_memset)
    _kfunc("bpf_dynptr_copy", _k_dynptr_copy)
    helpers[_isa.HELPER_IDS["dynptr_read"]] = bpf_dynptr_read
    helpers[_isa.HELPER_IDS["dynptr_write"]] = bpf_dynptr_write
    helpers[_isa.HELPER_IDS["dynptr_data"]] = bpf_dynptr_data
    helpers[_isa.HELPER_IDS["dynptr_from_mem"]] = bpf_dynptr_from_mem
    helpers[_isa.HELPER_IDS["ringbuf_reserve_dynptr"]] = bpf_ringbuf_reserve_dynptr
    helpers[_isa.HELPER_IDS["ringbuf_submit_dynptr"]] = bpf_ringbuf_submit_dynptr
    helpers[_isa.HELPER_IDS["ringbuf_discard_dynptr"]] = bpf_ringbuf_discard_dynptr
    helpers[_isa.HELPER_IDS["user_ringbuf_drain"]] = bpf_user_ringbuf_drain
