# bpf_get_kmem_cache (kernel/bpf/helpers.c): the struct kmem_cache of the slab an address
# is in, or NULL.  Included into pyebpf/kfuncs.pxi.
#
# The engine's kernel objects (a run's sk_buff, net_device, packet buffer and sockets,
# the sockets a lookup gives and the request socket) each belong to the cache the
# kernel allocates them from (pyebpf.skb.slab), and so do the values of the maps whose
# memory the kernel kmallocs (_map_cache); any other address (the stack, a per-CPU or
# vmalloc'ed map's value, a callback's frame, a kernel address nothing is at) is in none.
# An address past an object's end but within its slot of the slab (the cache's object
# size from the object's start) is in the object's cache too, where the engine knows the
# slot: the sk_buff's, the net_device's, the packet buffer's and an array map's; past
# the slot the kernel's answer is a neighbour's slab, which the engine does not know.
#
# The caches are no memory: like bpf_cast_to_kern_ctx's sk_buff (skb/kernctx.pxi), a
# load through the returned pointer misses every region and reaches trace_probe_load,
# which asks kmem_cache_load, reading the caches' image (slab.image: their struct
# kmem_cache records, then their names).

from .host import possible_cpus as _possible_cpus
from .skb import slab as _slab

cdef bytes _kmem_image = None
cdef const uint8_t* _kmem_bytes = NULL
cdef uint64_t _kmem_len = 0
cdef uint64_t KMEM_CACHE_ADDRESS_ = _slab.KMEM_CACHE_ADDRESS
cdef uint64_t KMEM_CACHE_STRIDE_ = _slab.KMEM_CACHE_STRIDE
cdef uint32_t _kmem_skb_size = 0, _kmem_reqsk_size = 0, _kmem_dev_size = 0
cdef int _kmem_dev_cache = -1       # the net_device's kmalloc-cg cache
cdef int _kmem_sock_cache = -1      # test_run's skb->sk: a struct sock from kmalloc
cdef uint32_t _kmem_tailroom = 0    # SKB_DATA_ALIGN(sizeof(struct skb_shared_info))
cdef int _kmem_kmalloc[16]          # KMALLOC_SIZES' sizes, then 0
cdef uint32_t _kmem_array_head = 0  # sizeof(struct bpf_array): an array's values follow it
cdef uint32_t _kmem_htab_elem = 0   # sizeof(struct htab_elem): a key, then its value follow
cdef uint32_t _kmem_llist_node = 0  # sizeof(struct llist_node): bpf_mem_alloc's header
cdef uint32_t _kmem_cpus = 0        # num_possible_cpus()
cdef uint32_t _kmem_skb_slot = 0    # skbuff_head_cache's size: an sk_buff's slot
cdef uint32_t _kmem_dev_slot = 0    # the net_device's kmalloc size
cdef uint32_t TEST_RUN_HEADROOM_ = _kern.TEST_RUN_HEADROOM
cdef int _slab_SKBUFF = _slab.SKBUFF, _slab_REQUEST_SOCK_TCP = _slab.REQUEST_SOCK_TCP
cdef int _slab_TCP = _slab.TCP, _slab_TCPV6 = _slab.TCPV6, _slab_UDP = _slab.UDP
cdef int _slab_UDPV6 = _slab.UDPV6, _slab_KMALLOC = _slab.KMALLOC
cdef int _slab_KMALLOC_CG = _slab.KMALLOC_CG


cdef int kmem_cache_prepare() except -1:
    """Build the caches' image from the target BTF, once per process (a program calling
    bpf_get_kmem_cache is being decoded)."""
    global _kmem_image, _kmem_bytes, _kmem_len, _kmem_skb_size, _kmem_reqsk_size
    global _kmem_dev_size, _kmem_dev_cache, _kmem_sock_cache, _kmem_tailroom
    global _kmem_array_head, _kmem_htab_elem, _kmem_llist_node, _kmem_cpus
    global _kmem_skb_slot, _kmem_dev_slot
    cdef int k
    if _kmem_image is not None:
        return 0
    sizes = _slab.object_sizes()
    _kmem_skb_size, _kmem_reqsk_size = sizes["sk_buff"], sizes["tcp_request_sock"]
    _kmem_dev_size = sizes["net_device"]
    _kmem_dev_cache = _slab.KMALLOC_CG + _slab.kmalloc_index(sizes["net_device"])
    _kmem_sock_cache = _slab.KMALLOC + _slab.kmalloc_index(sizes["sock"])
    _kmem_tailroom = -(-sizes["skb_shared_info"] // _slab.CACHE_LINE) * _slab.CACHE_LINE
    _kmem_array_head, _kmem_htab_elem = sizes["bpf_array"], sizes["htab_elem"]
    _kmem_llist_node, _kmem_cpus = sizes["llist_node"], _possible_cpus()
    _, object_size, flags = _slab.caches()[_slab.SKBUFF]
    _kmem_skb_slot = _slab.geometry(object_size, flags)["size"]
    _kmem_dev_slot = _slab.KMALLOC_SIZES[_slab.kmalloc_index(sizes["net_device"])]
    memset(_kmem_kmalloc, 0, sizeof(_kmem_kmalloc))
    for k, size in enumerate(_slab.KMALLOC_SIZES):
        _kmem_kmalloc[k] = size
    image = _slab.image()
    _kmem_bytes, _kmem_len = <const uint8_t*><char*>image, len(image)
    _kmem_image = image
    return 0


cdef inline uint64_t _kmem_cache_at(int k) noexcept nogil:
    return 0 if k < 0 else KMEM_CACHE_ADDRESS_ + <uint64_t>k * KMEM_CACHE_STRIDE_


cdef int _kmalloc_cache(uint64_t size, int first=_slab_KMALLOC) noexcept nogil:
    # the kmalloc cache a kmalloc of size bytes takes (among the plain ones, or those
    # from first: the accounted ones); -1 past the largest (pages: no slab)
    cdef int k = 0
    while _kmem_kmalloc[k]:
        if size <= <uint64_t>_kmem_kmalloc[k]:
            return first + k
        k += 1
    return -1


cdef inline uint64_t _round8(uint64_t n) noexcept nogil:
    return (n + 7) & ~<uint64_t>7


cdef int _map_cache(const MapStore* m) noexcept nogil:
    """The cache holding a map's values, or -1: not a slab (vmalloc, pages, the
    per-CPU allocator) or a map type not modelled.  Each kmalloc is accounted
    (__GFP_ACCOUNT), so from a kmalloc-cg cache."""
    cdef uint64_t elem, n
    if m.type == BPF_MAP_TYPE_ARRAY:
        # array_map_alloc: a BPF_F_MMAPABLE array is vmalloc'ed; any other is the
        # struct bpf_array then the values, in one bpf_map_area_alloc (kmalloc up to its
        # largest cache, pages or vmalloc past it)
        if m.flags & BPF_F_MMAPABLE:
            return -1
        return _kmalloc_cache(_kmem_array_head + <uint64_t>m.max_entries * m.stride,
                              _slab_KMALLOC_CG)
    if m.type == BPF_MAP_TYPE_HASH or m.type == BPF_MAP_TYPE_LRU_HASH:
        # htab_map_alloc: an element is a struct htab_elem, the key and the value
        elem = _kmem_htab_elem + _round8(m.key_size) + _round8(m.value_size)
        if m.flags & BPF_F_NO_PREALLOC:
            # bpf_mem_alloc: each element a kmalloc of its own, after a llist_node
            return _kmalloc_cache(elem + _kmem_llist_node, _slab_KMALLOC_CG)
        # prealloc_init: every element in one bpf_map_area_alloc, a plain hash map's
        # with one more per possible CPU (its extra_elems)
        n = m.max_entries + (_kmem_cpus if m.type == BPF_MAP_TYPE_HASH else 0)
        return _kmalloc_cache(elem * n, _slab_KMALLOC_CG)
    return -1


cdef int _in_map(const MapStore* m, uint64_t addr, bint slot) noexcept nogil:
    # the cache of m's value addr is in; with slot, of m's allocation if addr is in its
    # slot elsewhere (an array's struct bpf_array before the values, the slack after
    # them); -2 if neither
    cdef int c
    if m.hidden:
        return -2
    if not slot:
        return _map_cache(m) if addr - <uintptr_t>m.values < m.values_len else -2
    if m.type != BPF_MAP_TYPE_ARRAY:
        return -2
    c = _map_cache(m)
    if c >= 0 and addr - (<uintptr_t>m.values - _kmem_array_head) < \
            <uint64_t>_kmem_kmalloc[c - _slab_KMALLOC_CG]:
        return c
    return -2


cdef int _map_value_cache(Vm* vm, uint64_t addr, bint slot) noexcept nogil:
    # _in_map of the program's maps, then of the inner maps of its maps of maps
    cdef int k, c
    cdef uint32_t i
    cdef const MapStore* m
    for k in range(vm.nmaps):
        m = vm.maps[k]
        c = _in_map(m, addr, slot)
        if c != -2:
            return c
        if m.inner == NULL:
            continue
        for i in range(m.max_entries):
            if m.inner[i] != NULL:
                c = _in_map(m.inner[i], addr, slot)
                if c != -2:
                    return c
    return -2


cdef int _sock_cache(const NetSock* s) noexcept nogil:
    if s.state == TCP_NEW_SYN_RECV_:
        return _slab_REQUEST_SOCK_TCP
    if s.protocol == IPPROTO_TCP_:
        return _slab_TCPV6 if s.family == AF_INET6_ else _slab_TCP
    return _slab_UDPV6 if s.family == AF_INET6_ else _slab_UDP


cdef int _kmem_cache_of(Vm* vm, uint64_t addr) noexcept nogil:
    """The index of the modelled cache holding the object ``addr`` is in, or -1."""
    cdef Skb* skb = vm.skb
    cdef const NetEnv* net
    cdef uint64_t off
    cdef Region* r
    cdef int c = _map_value_cache(vm, addr, False)
    if c != -2:
        return c
    if skb == NULL or vm.pkt_region < 0:
        return -1
    if addr - _kern_base[0] < _kmem_skb_size:
        return _slab_SKBUFF
    if addr - _kern_base[1] < _kmem_dev_size:
        return _kmem_dev_cache
    if skb.sk_reqsk and (addr - REQSK_ADDRESS_ < _kmem_reqsk_size or
                         addr - <uintptr_t>skb.reqsk_view < SK_VIEW_SIZE):
        return _slab_REQUEST_SOCK_TCP
    r = &vm.regions[vm.pkt_region]
    if r.start <= addr < r.end:
        # bpf_test_init's buffer: headroom, the packet, the shared info
        return _kmalloc_cache(TEST_RUN_HEADROOM_ + skb.len + _kmem_tailroom)
    if skb.net.has_sk and addr - <uintptr_t>skb.sk_view < SK_VIEW_SIZE:
        return _kmem_sock_cache
    net = skb.net
    if net.nsocks:
        off = addr - <uintptr_t>net.sock_mem
        if off < net.nsocks * SOCK_BLOCK:
            return _sock_cache(&net.socks[off // SOCK_BLOCK])
        off = addr - <uintptr_t>net.kern_mem
        if off < net.nsocks * net.kern_block:
            return _sock_cache(&net.socks[off // net.kern_block])
    return -1


cdef int _kmem_slot_cache_of(Vm* vm, uint64_t addr) noexcept nogil:
    """The index of the cache of the object in whose slab slot ``addr`` is, past (or
    before) the object itself, or -1."""
    cdef Skb* skb = vm.skb
    cdef Region* r
    cdef int c = _map_value_cache(vm, addr, True)
    if c != -2:
        return c
    if skb == NULL or vm.pkt_region < 0:
        return -1
    if addr - _kern_base[0] < _kmem_skb_slot:
        return _slab_SKBUFF
    if addr - _kern_base[1] < _kmem_dev_slot:
        return _kmem_dev_cache
    # bpf_test_init's buffer starts at the headroom
    r = &vm.regions[vm.pkt_region]
    c = _kmalloc_cache(TEST_RUN_HEADROOM_ + skb.len + _kmem_tailroom)
    if c >= 0 and addr - (r.start - TEST_RUN_HEADROOM_) < \
            <uint64_t>_kmem_kmalloc[c - _slab_KMALLOC]:
        return c
    return -1


cdef uint64_t _k_get_kmem_cache(Vm* vm, uint64_t addr, uint64_t r2, uint64_t r3,
                                uint64_t r4, uint64_t r5) noexcept nogil:
    cdef int c = _kmem_cache_of(vm, addr)
    return _kmem_cache_at(c if c >= 0 else _kmem_slot_cache_of(vm, addr))


cdef bint kmem_cache_load(Vm* vm, uint64_t addr, uint32_t size, uint64_t* out) noexcept nogil:
    """A load of ``size`` bytes at ``addr`` from the modelled caches, into ``out``;
    False if they hold not all of it."""
    cdef uint64_t off = addr - KMEM_CACHE_ADDRESS_
    if _kmem_bytes == NULL or off >= _kmem_len or _kmem_len - off < size:
        return False
    out[0] = 0
    memcpy(out, _kmem_bytes + off, size)
    return True
