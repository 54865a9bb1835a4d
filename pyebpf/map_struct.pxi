# A map pointer read as the kernel's struct (check_ptr_to_map_access: the verifier lets a
# privileged program read the struct its map type's ops name, bpf_array, bpf_htab, ...,
# whose first member is struct bpf_map).  Included by pyebpf/_core.pyx before
# tracing.pxi, whose trace_probe_load answers such loads from here: the map pointer is
# the MapStore's address, and each MapStore is allocated MAP_STRUCT_SPAN bytes at least
# (maps.pxi), so that an address up to that far past one is no other map's.
#
# What reads back: struct bpf_map's map_type, key_size, value_size, max_entries,
# map_extra, map_flags, numa_node (NUMA_NO_NODE: no map is bound to a node), id (Map.id:
# pyebpf's numbering, not the kernel's), btf_key_type_id and btf_value_type_id (as the
# loader created the map), name and frozen; bpf_array's elem_size and index_mask
# (array_map_alloc), bpf_htab's n_buckets and elem_size (htab_map_alloc); every other
# byte reads 0 (the kernel's pointers and counters are not modelled).  The offsets are
# the target BTF's (map_struct_prepare).

cdef enum:
    NUMA_NO_NODE = -1

cdef struct MapStructLayout:
    int32_t map_type, key_size, value_size, max_entries, map_flags, numa_node
    int32_t map_extra, id, btf_key_type_id, btf_value_type_id, name, frozen
    int32_t array_elem_size, array_index_mask, htab_n_buckets, htab_elem_size
    int32_t htab_elem_header    # sizeof(struct htab_elem): before each element's key

cdef MapStructLayout _MAP_STRUCT
cdef bint _map_struct_ready = False


cdef int map_struct_prepare() except -1:
    """The member offsets of the target BTF, once."""
    global _map_struct_ready
    if _map_struct_ready:
        return 0
    from .verifier.btfptr import member_offset, struct_size
    _MAP_STRUCT.map_type = member_offset("bpf_map", "map_type")
    _MAP_STRUCT.key_size = member_offset("bpf_map", "key_size")
    _MAP_STRUCT.value_size = member_offset("bpf_map", "value_size")
    _MAP_STRUCT.max_entries = member_offset("bpf_map", "max_entries")
    _MAP_STRUCT.map_flags = member_offset("bpf_map", "map_flags")
    _MAP_STRUCT.numa_node = member_offset("bpf_map", "numa_node")
    _MAP_STRUCT.map_extra = member_offset("bpf_map", "map_extra")
    _MAP_STRUCT.id = member_offset("bpf_map", "id")
    _MAP_STRUCT.btf_key_type_id = member_offset("bpf_map", "btf_key_type_id")
    _MAP_STRUCT.btf_value_type_id = member_offset("bpf_map", "btf_value_type_id")
    _MAP_STRUCT.name = member_offset("bpf_map", "name")
    _MAP_STRUCT.frozen = member_offset("bpf_map", "frozen")
    _MAP_STRUCT.array_elem_size = member_offset("bpf_array", "elem_size")
    _MAP_STRUCT.array_index_mask = member_offset("bpf_array", "index_mask")
    _MAP_STRUCT.htab_n_buckets = member_offset("bpf_htab", "n_buckets")
    _MAP_STRUCT.htab_elem_size = member_offset("bpf_htab", "elem_size")
    _MAP_STRUCT.htab_elem_header = struct_size("htab_elem")
    _map_struct_ready = True
    return 0


cdef inline uint32_t _pow2_at_least(uint32_t n) noexcept nogil:
    cdef uint32_t p = 1
    while p < n:
        p <<= 1
    return p


cdef inline void _put32(uint8_t* image, int32_t off, uint32_t value) noexcept nogil:
    if off >= 0:
        memcpy(image + off, &value, 4)


cdef bint map_struct_load(Vm* vm, uint64_t addr, uint32_t size, uint64_t* out) noexcept nogil:
    """A load from one of the program's maps read as its kernel struct (see the file)."""
    cdef uint8_t image[MAP_STRUCT_SPAN]
    cdef MapStore* m
    cdef uint64_t off
    cdef int k
    cdef bint array, htab, percpu
    for k in range(vm.nmaps):
        m = vm.maps[k]
        if <uintptr_t>m <= addr and addr - <uintptr_t>m + size <= MAP_STRUCT_SPAN:
            off = addr - <uintptr_t>m
            memset(image, 0, MAP_STRUCT_SPAN)
            _put32(image, _MAP_STRUCT.map_type, m.type)
            _put32(image, _MAP_STRUCT.key_size, m.key_size)
            _put32(image, _MAP_STRUCT.value_size, m.value_size)
            _put32(image, _MAP_STRUCT.max_entries, m.max_entries)
            _put32(image, _MAP_STRUCT.map_flags, m.flags)
            _put32(image, _MAP_STRUCT.numa_node, <uint32_t>NUMA_NO_NODE)
            _put32(image, _MAP_STRUCT.id, m.id)
            _put32(image, _MAP_STRUCT.btf_key_type_id, m.btf_key_type_id)
            _put32(image, _MAP_STRUCT.btf_value_type_id, m.btf_value_type_id)
            if _MAP_STRUCT.map_extra >= 0:
                memcpy(image + _MAP_STRUCT.map_extra, &m.map_extra, 8)
            if _MAP_STRUCT.name >= 0:
                memcpy(image + _MAP_STRUCT.name, m.name, 16)
            if _MAP_STRUCT.frozen >= 0:
                image[_MAP_STRUCT.frozen] = m.frozen
            array = m.type in (BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_PERCPU_ARRAY,
                               BPF_MAP_TYPE_PROG_ARRAY, BPF_MAP_TYPE_PERF_EVENT_ARRAY,
                               BPF_MAP_TYPE_CGROUP_ARRAY, BPF_MAP_TYPE_ARRAY_OF_MAPS)
            htab = m.type in (BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_PERCPU_HASH,
                              BPF_MAP_TYPE_LRU_HASH, BPF_MAP_TYPE_LRU_PERCPU_HASH,
                              BPF_MAP_TYPE_HASH_OF_MAPS)
            percpu = m.type in (BPF_MAP_TYPE_PERCPU_HASH, BPF_MAP_TYPE_LRU_PERCPU_HASH)
            if array:
                # array_map_alloc: a value is rounded up to 8 bytes, the index masked
                # by the next power of two
                _put32(image, _MAP_STRUCT.array_elem_size, (m.value_size + 7) & ~7u)
                _put32(image, _MAP_STRUCT.array_index_mask,
                       _pow2_at_least(m.max_entries) - 1)
            elif htab:
                # htab_map_alloc: an element is its header, the key rounded up to 8, then
                # the value rounded up to 8 (a per-CPU value's pointer)
                _put32(image, _MAP_STRUCT.htab_n_buckets, _pow2_at_least(m.max_entries))
                _put32(image, _MAP_STRUCT.htab_elem_size,
                       _MAP_STRUCT.htab_elem_header + ((m.key_size + 7) & ~7u)
                       + (8 if percpu else (m.value_size + 7) & ~7u))
            out[0] = _load(image + off, size)
            return True
    return False
