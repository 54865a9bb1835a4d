# skb dynptrs (kernel/bpf/helpers.c, net/core/filter.c): the kfuncs bpf_dynptr_from_skb,
# _slice, _slice_rdwr, _adjust, _is_null, _is_rdonly, _size, _clone and the helpers
# bpf_dynptr_read, _write and _data.  Included by pyebpf/kfuncs.pxi.
#
# A dynptr is 16 bytes on the program's stack, laid out as struct bpf_dynptr_kern:
# { u64 data; u32 size; u32 offset }, size's low bits the size, then the type, its top
# bit the read-only mark.  An skb dynptr's data is the context's address (the kernel's
# is the sk_buff); a NULL dynptr is all zero.  The engine's packet is one linear
# buffer, so a slice of it is always the packet pointer (skb_header_pointer never
# copies into the caller's buffer), as in the kernel for a packet in its linear part.

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
    memcpy(to, skb_data(vm.skb) + d.offset + <uint32_t>offset, <uint32_t>n)
    return 0


cdef uint64_t bpf_dynptr_write(Vm* vm, uint64_t p, uint64_t offset, uint64_t src, uint64_t n,
                               uint64_t flags) noexcept nogil:
    cdef DynptrKern* d = _dynptr(vm, p, ACCESS_READ)
    cdef const uint8_t* frm = NULL
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
    return skb_store(vm, d.offset + <uint32_t>offset, frm, <uint32_t>n, flags)


cdef uint64_t bpf_dynptr_data(Vm* vm, uint64_t p, uint64_t offset, uint64_t n, uint64_t r4,
                              uint64_t r5) noexcept nogil:
    # skb dynptrs give their bytes through bpf_dynptr_slice(_rdwr) only: NULL
    return 0


cdef void register_dynptr(helper_fn* helpers) except *:
    _kfunc("bpf_dynptr_from_skb", _k_dynptr_from_skb)
    _kfunc("bpf_dynptr_slice", _k_dynptr_slice)
    _kfunc("bpf_dynptr_slice_rdwr", _k_dynptr_slice_rdwr)
    _kfunc("bpf_dynptr_adjust", _k_dynptr_adjust)
    _kfunc("bpf_dynptr_is_null", _k_dynptr_is_null)
    _kfunc("bpf_dynptr_is_rdonly", _k_dynptr_is_rdonly)
    _kfunc("bpf_dynptr_size", _k_dynptr_size)
    _kfunc("bpf_dynptr_clone", _k_dynptr_clone)
    helpers[_isa.HELPER_IDS["dynptr_read"]] = bpf_dynptr_read
    helpers[_isa.HELPER_IDS["dynptr_write"]] = bpf_dynptr_write
    helpers[_isa.HELPER_IDS["dynptr_data"]] = bpf_dynptr_data
