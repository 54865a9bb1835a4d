# Helpers that read and write packet bytes and keep checksums right: skb_store_bytes,
# skb_load_bytes, l3_csum_replace, l4_csum_replace, csum_diff, csum_update.  Part of
# skb/helpers.pxi.
#
# The arithmetic is the kernel's, with x86-64's csum_partial (skbuff.pxi), so that not
# only the 16-bit checksum fields but also the exact 32-bit skb->csum of a
# CHECKSUM_COMPLETE packet and csum_diff's return value come out as the kernel's do
# (docs/kernel-notes.md, Helpers).    Offsets count from skb->data: the MAC header
# for tc, the L3 header for a socket filter run with sf_start="network".
#
# CHECKSUM_PARTIAL: only the branches of inet_proto_csum_replace* are modelled; the skb
# has no csum_start, so store_bytes' "pulled past csum_start -> CHECKSUM_NONE" rule of
# __skb_postpull_rcsum is not (and run() cannot make a PARTIAL skb today).

from libc.string cimport memmove

cdef enum:
    CSUM_MANGLED_0 = 0xffff
    INT_MAX_ = 0x7fffffff
    V46_MAX_OFFSET = 0xffff     # 4.6 refused offsets above 64 KiB
    V46_SCRATCH = 512           # 4.6's per-cpu scratch buffer (MAX_BPF_STACK)
    V46_SCRATCH_WORDS = 128


# --- the kernel's checksum primitives (include/net/checksum.h, x86-64) --------------

cdef inline uint32_t ror32(uint32_t x, int n) noexcept nogil:
    return (x >> n) | (x << (32 - n))


cdef inline uint32_t csum_block_add(uint32_t csum, uint32_t csum2, uint32_t offset) noexcept nogil:
    # a block summed on its own, added at an odd offset, is byte-swapped first
    if offset & 1:
        csum2 = ror32(csum2, 8)
    return csum_add(csum, csum2)


cdef inline uint32_t csum_block_sub(uint32_t csum, uint32_t csum2, uint32_t offset) noexcept nogil:
    return csum_block_add(csum, ~csum2, offset)


cdef inline uint16_t csum_from32to16(uint32_t s) noexcept nogil:
    # fold with end-around carry, no complement
    s += (s >> 16) | (s << 16)
    return <uint16_t>(s >> 16)


cdef inline uint16_t csum16_add(uint16_t csum, uint16_t addend) noexcept nogil:
    cdef uint16_t res = csum + addend
    return res + (1 if res < addend else 0)


cdef inline uint16_t csum_replace2(uint16_t sum, uint16_t old, uint16_t new) noexcept nogil:
    # 16-bit arithmetic (bpf_l3_csum_replace's csum_replace2): differs from the 32-bit
    # form of bpf_l4_csum_replace in one corner
    return ~csum16_add(csum16_add(~sum, ~old), new)


cdef inline uint16_t csum_replace4(uint16_t sum, uint32_t frm, uint32_t to) noexcept nogil:
    cdef uint32_t tmp = csum_sub(~(<uint32_t>sum), frm)
    return csum_fold(csum_add(tmp, to))


cdef inline uint16_t csum_replace_by_diff(uint16_t sum, uint32_t diff) noexcept nogil:
    return csum_fold(csum_add(diff, ~(<uint32_t>sum)))


cdef inline uint32_t _csum_pair(uint32_t frm, uint32_t to, uint32_t seed) noexcept nogil:
    """csum_partial over the two words {~from, to} (inet_proto_csum_replace4's diff[])."""
    cdef uint32_t diff[2]
    diff[0] = ~frm
    diff[1] = to
    return csum_partial(<const uint8_t*>diff, 8, seed)


cdef uint16_t inet_proto_csum_replace4(Skb* skb, uint16_t sum, uint32_t frm, uint32_t to,
                                       bint pseudohdr) noexcept nogil:
    if skb.ip_summed != CHECKSUM_PARTIAL:
        sum = csum_fold(_csum_pair(frm, to, ~(<uint32_t>sum)))
        if skb.ip_summed == CHECKSUM_COMPLETE and pseudohdr:
            skb.csum = ~_csum_pair(frm, to, ~skb.csum)
    elif pseudohdr:
        sum = ~csum_fold(_csum_pair(frm, to, sum))
    return sum


cdef uint16_t inet_proto_csum_replace_by_diff(Skb* skb, uint16_t sum, uint32_t diff,
                                              bint pseudohdr, bint ipv6) noexcept nogil:
    if skb.ip_summed != CHECKSUM_PARTIAL:
        sum = csum_replace_by_diff(sum, diff)
        # BPF_F_IPV6: the address bytes and the L4 checksum change cancel in the sum;
        # only IPv4, whose header checksum changes as well, needs skb->csum to follow
        if skb.ip_summed == CHECKSUM_COMPLETE and pseudohdr and not ipv6:
            skb.csum = ~csum_sub(diff, skb.csum)
    elif pseudohdr:
        sum = ~csum_fold(csum_add(diff, sum))
    return sum


# --- argument checks -----------------------------------------------------------------

cdef inline bint _within(Region* g, uint64_t addr, uint64_t n) noexcept nogil:
    return addr >= g.start and addr <= g.end and g.end - addr >= n


cdef uint8_t* _helper_mem(Vm* vm, uint64_t addr, uint64_t n, bint write,
                          bint pkt_ok) noexcept nogil:
    """The program memory [addr, addr+n) a helper argument names (n > 0), or NULL with
    the fault recorded.  Only helpers the kernel marks ``pkt_access`` take packet
    memory (``pkt_ok``); the 4.6 verifier took such buffers from the stack only."""
    cdef uint8_t* p
    if n > <uint64_t>0xffffffff:
        return _fault_mem(vm, addr, <uint32_t>0xffffffff, write)
    p = _mem(vm, addr, <uint32_t>n, write)
    if p == NULL:
        return NULL
    if vm.skb.profile == PROFILE_V46:
        # the run's first region is its stack
        if not _within(&vm.regions[0], addr, n):
            helper_fault(vm, b"the 4.6 verifier accepts only stack memory here")
            return NULL
    elif not pkt_ok and vm.pkt_region >= 0 and _within(&vm.regions[vm.pkt_region], addr, n):
        helper_fault(vm, b"helper access to the packet is not allowed (the kernel's verifier "
                         b"refuses packet pointers for this helper)")
        return NULL
    return p


cdef inline bint _size_ok(Vm* vm, uint64_t n) noexcept nogil:
    if n != 0:
        return True
    helper_fault(vm, b"the size must not be 0 (ARG_CONST_SIZE: the verifier refuses 0)")
    return False


# --- the helpers -----------------------------------------------------------------------

cdef uint64_t bpf_skb_store_bytes(Vm* vm, uint64_t r1, uint64_t r2, uint64_t r3, uint64_t r4,
                                  uint64_t flags) noexcept nogil:
    cdef uint32_t offset = <uint32_t>r2
    cdef const uint8_t* src
    if not is_ctx(vm, r1) or not _size_ok(vm, r4):
        return 0
    src = _helper_mem(vm, r3, r4, ACCESS_READ, False)
    if src == NULL:
        return 0
    return skb_store(vm, offset, src, <uint32_t>r4, flags)


cdef uint64_t skb_store(Vm* vm, uint32_t offset, const uint8_t* src, uint32_t n,
                        uint64_t flags) noexcept nogil:
    """__bpf_skb_store_bytes: bpf_skb_store_bytes and bpf_dynptr_write on an skb dynptr."""
    cdef Skb* skb = vm.skb
    cdef uint8_t* ptr
    cdef bint rcsum
    if flags & ~(<uint64_t>(BPF_F_RECOMPUTE_CSUM | BPF_F_INVALIDATE_HASH)):
        return err(EINVAL)
    if skb.profile == PROFILE_V46:
        if offset > V46_MAX_OFFSET or n > V46_SCRATCH:
            return err(EFAULT)
    elif offset > INT_MAX_:
        return err(EFAULT)
    # bpf_try_make_writable(skb, offset + len) fails past the end of the packet
    if <uint64_t>offset + n > skb.len:
        return err(EFAULT)
    ptr = skb_data(skb) + offset
    # __skb_postpull_rcsum / __skb_postpush_rcsum: skb->csum follows the bytes wherever
    # they are, the MAC header included, which the sum does not cover.
    rcsum = (flags & BPF_F_RECOMPUTE_CSUM) != 0 and skb.ip_summed == CHECKSUM_COMPLETE
    if rcsum:
        skb.csum = csum_block_sub(skb.csum, csum_partial(ptr, n, 0), offset)
    memmove(ptr, src, n)
    if rcsum:
        skb.csum = csum_block_add(skb.csum, csum_partial(ptr, n, 0), offset)
    if flags & BPF_F_INVALIDATE_HASH:
        skb.hash, skb.l4_hash, skb.sw_hash = 0, False, False
    skb_sync(vm)
    return 0


cdef uint64_t bpf_skb_load_bytes(Vm* vm, uint64_t r1, uint64_t r2, uint64_t r3, uint64_t r4,
                                 uint64_t r5) noexcept nogil:
    cdef Skb* skb = vm.skb
    cdef uint32_t offset = <uint32_t>r2
    cdef uint32_t n
    cdef uint8_t* dst
    if not is_ctx(vm, r1) or not _size_ok(vm, r4):
        return 0
    dst = _helper_mem(vm, r3, r4, ACCESS_WRITE, False)
    if dst == NULL:
        return 0
    n = <uint32_t>r4
    if skb.profile == PROFILE_V46:
        # errors leave the buffer as it was
        if offset > V46_MAX_OFFSET or n > V46_SCRATCH or <uint64_t>offset + n > skb.len:
            return err(EFAULT)
    elif offset > INT_MAX_ or <uint64_t>offset + n > skb.len:
        # zeroed, so that the verifier may call the buffer initialised either way
        memset(dst, 0, n)
        return err(EFAULT)
    memmove(dst, skb_data(skb) + offset, n)
    return 0


cdef uint8_t* _csum_field(Vm* vm, uint32_t offset, uint64_t* ret) noexcept nogil:
    """The 16-bit field at ``offset`` for l3/l4_csum_replace, or NULL with ``ret`` set."""
    cdef Skb* skb = vm.skb
    if offset > V46_MAX_OFFSET or (offset & 1 and skb.profile != PROFILE_V46):
        ret[0] = err(EFAULT)
        return NULL
    if <uint64_t>offset + 2 > skb.len:
        ret[0] = err(EFAULT)
        return NULL
    return skb_data(skb) + offset


cdef uint64_t bpf_l3_csum_replace(Vm* vm, uint64_t r1, uint64_t r2, uint64_t frm, uint64_t to,
                                  uint64_t flags) noexcept nogil:
    cdef uint64_t ret = 0
    cdef uint8_t* ptr
    cdef uint16_t sum
    cdef uint64_t size = flags & BPF_F_HDR_FIELD_MASK
    if not is_ctx(vm, r1):
        return 0
    if flags & ~(<uint64_t>BPF_F_HDR_FIELD_MASK):
        return err(EINVAL)
    ptr = _csum_field(vm, <uint32_t>r2, &ret)
    if ptr == NULL:
        return ret
    memcpy(&sum, ptr, 2)
    if size == 0:
        if frm != 0:
            return err(EINVAL)
        sum = csum_replace_by_diff(sum, <uint32_t>to)
    elif size == 2:
        sum = csum_replace2(sum, <uint16_t>frm, <uint16_t>to)
    elif size == 4:
        sum = csum_replace4(sum, <uint32_t>frm, <uint32_t>to)
    else:
        return err(EINVAL)
    memcpy(ptr, &sum, 2)
    skb_sync(vm)
    return 0


cdef uint64_t bpf_l4_csum_replace(Vm* vm, uint64_t r1, uint64_t r2, uint64_t frm, uint64_t to,
                                  uint64_t flags) noexcept nogil:
    cdef Skb* skb = vm.skb
    cdef uint64_t ret = 0
    cdef uint64_t known = BPF_F_HDR_FIELD_MASK | BPF_F_PSEUDO_HDR | BPF_F_MARK_MANGLED_0
    cdef uint8_t* ptr
    cdef uint16_t sum
    cdef uint64_t size = flags & BPF_F_HDR_FIELD_MASK
    cdef bint pseudo = (flags & BPF_F_PSEUDO_HDR) != 0
    cdef bint mmzero = (flags & BPF_F_MARK_MANGLED_0) != 0
    cdef bint mforce = (flags & BPF_F_MARK_ENFORCE) != 0
    cdef bint ipv6 = (flags & BPF_F_IPV6) != 0
    if not is_ctx(vm, r1):
        return 0
    if skb.profile != PROFILE_V46:
        known |= BPF_F_MARK_ENFORCE | BPF_F_IPV6
    if flags & ~known:
        return err(EINVAL)
    ptr = _csum_field(vm, <uint32_t>r2, &ret)
    if ptr == NULL:
        return ret
    memcpy(&sum, ptr, 2)
    # a zero UDP checksum means "none": left alone, before the size is even looked at
    if mmzero and not mforce and sum == 0:
        return 0
    if size == 0:
        if frm != 0:
            return err(EINVAL)
        sum = inet_proto_csum_replace_by_diff(skb, sum, <uint32_t>to, pseudo, ipv6)
    elif size == 2:
        # inet_proto_csum_replace2 widens the 16-bit values to 32 bits
        sum = inet_proto_csum_replace4(skb, sum, <uint16_t>frm, <uint16_t>to, pseudo)
    elif size == 4:
        sum = inet_proto_csum_replace4(skb, sum, <uint32_t>frm, <uint32_t>to, pseudo)
    else:
        return err(EINVAL)
    if mmzero and sum == 0:
        sum = CSUM_MANGLED_0
    memcpy(ptr, &sum, 2)
    skb_sync(vm)
    return 0


cdef uint64_t bpf_csum_diff(Vm* vm, uint64_t r1, uint64_t from_size, uint64_t r3,
                            uint64_t to_size, uint64_t seed) noexcept nogil:
    cdef const uint8_t* frm = NULL
    cdef const uint8_t* to = NULL
    cdef uint32_t words[V46_SCRATCH_WORDS]
    cdef uint32_t w
    cdef uint64_t k, j = 0
    cdef uint32_t s = <uint32_t>seed
    if from_size:
        frm = _helper_mem(vm, r1, from_size, ACCESS_READ, True)
        if frm == NULL:
            return 0
    if to_size:
        to = _helper_mem(vm, r3, to_size, ACCESS_READ, True)
        if to == NULL:
            return 0
    if vm.skb.profile == PROFILE_V46:
        # up to 6.12: whole words only, at most 512 bytes, the 32-bit sum unfolded
        if (from_size | to_size) & 3 or from_size + to_size > V46_SCRATCH:
            return err(EINVAL)
        for k in range(0, from_size, 4):
            memcpy(&w, frm + k, 4)
            words[j] = ~w
            j += 1
        for k in range(0, to_size, 4):
            memcpy(&w, to + k, 4)
            words[j] = w
            j += 1
        return csum_partial(<const uint8_t*>words, 4 * j, s)
    # 6.13+: any sizes, the result folded to 16 bits (the same on every architecture)
    if from_size and to_size:
        return csum_from32to16(csum_sub(csum_partial(to, to_size, s),
                                        csum_partial(frm, from_size, 0)))
    if to_size:
        return csum_from32to16(csum_partial(to, to_size, s))
    if from_size:
        return csum_from32to16(~csum_partial(frm, from_size, ~s))
    return csum_from32to16(s)


cdef uint64_t bpf_csum_update(Vm* vm, uint64_t r1, uint64_t csum, uint64_t c, uint64_t d,
                              uint64_t e) noexcept nogil:
    cdef Skb* skb = vm.skb
    if not is_ctx(vm, r1):
        return 0
    if skb.ip_summed == CHECKSUM_COMPLETE:
        skb.csum = csum_add(skb.csum, <uint32_t>csum)
        return skb.csum
    return err(ENOTSUPP)


cdef void register_data_helpers(helper_fn* table) noexcept:
    table[9] = bpf_skb_store_bytes
    table[10] = bpf_l3_csum_replace
    table[11] = bpf_l4_csum_replace
    table[26] = bpf_skb_load_bytes
    table[28] = bpf_csum_diff
    table[40] = bpf_csum_update
