# The kernel objects behind a packet program's context, as bpf_cast_to_kern_ctx and
# bpf_rdonly_cast let it read them: the run's struct sk_buff and its struct net_device,
# laid out as the target BTF says (pyebpf.skb.kern.kern_ctx_layout).  Included into
# pyebpf/_core.pyx.
#
# They are no memory: bpf_cast_to_kern_ctx returns KERN_SKB_ADDRESS, a kernel address no
# region holds, so each load through it misses the region table and, being a load
# through a BTF pointer (a BPF_PROBE_MEM load), reaches trace_probe_load, which asks
# kern_ctx_load first.  That builds the bytes it reads from the skb model as it is at
# that moment, so what the program wrote through __sk_buff (mark, priority, cb...) or a
# helper changed (len, protocol, data) shows, as it does in the kernel, where both are
# the one struct.

from .skb import kern as _kern

ctypedef struct KernField:
    uint8_t index          # 0: the sk_buff, 1: the net_device
    uint8_t source         # pyebpf.skb.kern's KS_* code
    uint16_t arg           # KS_CTX: the __sk_buff field id
    uint32_t off
    uint32_t size
    uint32_t bit           # bitfields: the first bit from the struct's start, and width
    uint32_t bits

cdef enum:
    MAX_KERN_FIELDS = 32

cdef KernField _KERN_FIELDS[MAX_KERN_FIELDS]
cdef int _n_kern_fields = 0
cdef uint64_t _kern_size[2]
cdef uint64_t _kern_base[2]
_kern_base[0] = _kern.KERN_SKB_ADDRESS
_kern_base[1] = _kern.KERN_DEV_ADDRESS
# skb->head as the kernel's test run has it: TEST_RUN_HEADROOM before the packet's start
cdef uint32_t _HEAD_SHIFT = SKB_HEADROOM - _kern.TEST_RUN_HEADROOM
cdef int KS_CTX = _kern.KS_CTX, KS_DEV = _kern.KS_DEV, KS_HEAD = _kern.KS_HEAD
cdef int KS_DATA = _kern.KS_DATA, KS_TAIL = _kern.KS_TAIL, KS_MAC = _kern.KS_MAC
cdef int KS_NETWORK = _kern.KS_NETWORK, KS_TRANSPORT = _kern.KS_TRANSPORT
cdef int KS_CB = _kern.KS_CB, KS_IFINDEX = _kern.KS_IFINDEX


cdef int kern_ctx_prepare() except -1:
    """Read the layout from the target BTF, once per process (a program calling
    bpf_cast_to_kern_ctx is being decoded)."""
    global _n_kern_fields
    if _n_kern_fields:
        return 0
    skb_size, dev_size, fields = _kern.kern_ctx_layout()
    if len(fields) > MAX_KERN_FIELDS:
        raise LoadError(f"the modelled struct sk_buff has {len(fields)} fields, more than "
                        f"{MAX_KERN_FIELDS}")
    _kern_size[0], _kern_size[1] = skb_size, dev_size
    for k, (index, source, arg, off, size, bit, bits) in enumerate(fields):
        _KERN_FIELDS[k].index, _KERN_FIELDS[k].source, _KERN_FIELDS[k].arg = index, source, arg
        _KERN_FIELDS[k].off, _KERN_FIELDS[k].size = off, size
        _KERN_FIELDS[k].bit, _KERN_FIELDS[k].bits = bit, bits
    _n_kern_fields = len(fields)
    return 0


cdef inline uint32_t _header(uint32_t h) noexcept nogil:
    # the model's offsets from its head, moved to the kernel's head; unset stays ~0
    return 0xFFFF if h == NO_HEADER else <uint16_t>(h - _HEAD_SHIFT)


cdef uint64_t _kern_value(Vm* vm, int source, int arg) noexcept nogil:
    cdef Skb* skb = vm.skb
    if source == KS_CTX:
        return _ctx_value(vm, arg)
    elif source == KS_DEV:
        return _kern_base[1]
    elif source == KS_HEAD:
        return <uintptr_t>skb.head + _HEAD_SHIFT
    elif source == KS_DATA:
        return <uintptr_t>skb_data(skb)
    elif source == KS_TAIL:
        return skb.data + skb.len - _HEAD_SHIFT
    elif source == KS_MAC:
        return _header(skb.mac_header)
    elif source == KS_NETWORK:
        return _header(skb.network_header)
    elif source == KS_TRANSPORT:
        return _header(skb.transport_header)
    return skb.ifindex         # KS_IFINDEX


cdef bint kern_ctx_load(Vm* vm, uint64_t addr, uint32_t size, uint64_t* out) noexcept nogil:
    """A load of ``size`` bytes at ``addr`` from the run's sk_buff or net_device, into
    ``out``; False if neither holds all of it (or the run has no packet)."""
    cdef int index, k, b
    cdef uint64_t off, value
    cdef uint32_t j
    cdef uint8_t w[8]
    cdef KernField* f
    if _n_kern_fields == 0 or vm.skb == NULL or vm.pkt_region < 0:
        return False
    for index in range(2):
        off = addr - _kern_base[index]
        if off < _kern_size[index] and _kern_size[index] - off >= size:
            break
    else:
        return False
    memset(w, 0, 8)
    for k in range(_n_kern_fields):
        f = &_KERN_FIELDS[k]
        if f.index != index or f.off >= off + size or f.off + f.size <= off:
            continue
        if f.source == KS_CB:
            for j in range(f.size):
                if off <= f.off + j < off + size:
                    w[f.off + j - off] = vm.skb.cb[j]
            continue
        value = _kern_value(vm, f.source, f.arg)
        if f.bits:
            for j in range(f.bits):
                b = f.bit + j
                if off <= <uint32_t>(b >> 3) < off + size and (value >> j) & 1:
                    w[(b >> 3) - off] |= 1 << (b & 7)
            continue
        for j in range(f.size):
            if off <= f.off + j < off + size:
                w[f.off + j - off] = <uint8_t>(value >> (8 * j))
    out[0] = _load(w, size)
    return True


# --- the two kfuncs ------------------------------------------------------------------

cdef uint64_t _k_cast_to_kern_ctx(Vm* vm, uint64_t ctx, uint64_t r2, uint64_t r3,
                                  uint64_t r4, uint64_t r5) noexcept nogil:
    """bpf_cast_to_kern_ctx: the context's struct sk_buff (in the kernel the context
    pointer itself; here the address its modelled bytes are read at)."""
    return _kern_base[0]


cdef uint64_t _k_rdonly_cast(Vm* vm, uint64_t obj, uint64_t btf_id, uint64_t r3,
                             uint64_t r4, uint64_t r5) noexcept nogil:
    """bpf_rdonly_cast: the pointer itself; only the verifier's view of it changes, and
    loads through it are probe loads (a fault reads 0)."""
    return obj
