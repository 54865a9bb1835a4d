# The map helpers: bpf_map_*_elem, perf event arrays, ring buffers, tail calls and
# stack ids, on map storage (maps.pxi).  Included into pyebpf/_core.pyx.

# --- the map helpers ------------------------------------------------------------------

cdef bint add_region(Vm* vm, uintptr_t start, size_t size, int name) noexcept nogil:
    cdef Region* g
    if vm.nregions == MAX_REGIONS:
        helper_fault(vm, b"too many memory regions in one run")
        return False
    g = &vm.regions[vm.nregions]
    g.start, g.end, g.writable, g.name = start, start + size, True, name
    vm.nregions += 1
    return True


cdef MapStore* _inner_map(Vm* vm, uint64_t ptr) noexcept nogil:
    """An inner map of one of the program's maps of maps, its values made a region."""
    cdef int k, j
    cdef uint32_t i
    cdef MapStore* o
    for k in range(vm.nmaps):
        o = vm.maps[k]
        if o.inner == NULL:
            continue
        for i in range(o.max_entries):
            if o.inner[i] != NULL and <uintptr_t>o.inner[i] == ptr:
                for j in range(vm.nregions):
                    if vm.regions[j].start == <uintptr_t>o.inner[i].values:
                        return o.inner[i]
                if add_region(vm, <uintptr_t>o.inner[i].values, o.inner[i].values_len,
                              REGION_INNER_MAP):
                    return o.inner[i]
                return NULL
    return NULL


cdef MapStore* _map_arg(Vm* vm, uint64_t ptr) noexcept nogil:
    """The map r1 names: one the program references, or an inner map of one of them."""
    cdef int k
    cdef MapStore* m
    for k in range(vm.nmaps):
        if <uintptr_t>vm.maps[k] == ptr:
            return vm.maps[k]
    m = _inner_map(vm, ptr)
    if m == NULL and vm.status == STATUS_RUNNING:
        helper_fault(vm, b"r1 is not a map this program references")
    return m


cdef MapStore* _data_map_arg(Vm* vm, uint64_t ptr, bint lookup) noexcept nogil:
    # the kernel's verifier pairs map types with helpers (check_map_func_compatibility)
    cdef MapStore* m = _map_arg(vm, ptr)
    if m == NULL:
        return NULL
    if m.type == BPF_MAP_TYPE_PROG_ARRAY:
        helper_fault(vm, b"a program array is only for bpf_tail_call")
    elif m.type == BPF_MAP_TYPE_PERF_EVENT_ARRAY:
        helper_fault(vm, b"a perf event array is only for bpf_perf_event_output/read")
    elif m.type == BPF_MAP_TYPE_RINGBUF or m.type == BPF_MAP_TYPE_USER_RINGBUF:
        helper_fault(vm, b"a ring buffer is only for the bpf_ringbuf_* helpers and "
                         b"bpf_user_ringbuf_drain")
    elif m.type == BPF_MAP_TYPE_STACK_TRACE:
        helper_fault(vm, b"a stack trace map is only for bpf_get_stackid")
    elif (m.type == BPF_MAP_TYPE_QUEUE or m.type == BPF_MAP_TYPE_STACK
          or m.type == BPF_MAP_TYPE_BLOOM_FILTER):
        helper_fault(vm, b"a queue, stack or bloom filter is only for bpf_map_push/pop/peek_elem")
    elif _is_local_storage(m):
        helper_fault(vm, b"local storage is only for its bpf_*_storage_get/delete")
    elif m.type == BPF_MAP_TYPE_CGROUP_ARRAY:
        helper_fault(vm, b"a cgroup array is only for bpf_skb_under_cgroup")
    elif m.inner != NULL and not lookup:
        helper_fault(vm, b"programs may only look up a map of maps")
    elif (<uint64_t>1 << m.type) & XDP_AND_CGROUP_STORAGE_BITS and not (lookup and (
            m.type == BPF_MAP_TYPE_DEVMAP or m.type == BPF_MAP_TYPE_DEVMAP_HASH
            or m.type == BPF_MAP_TYPE_XSKMAP)):
        helper_fault(vm, b"of the XDP maps and cgroup storage, tc programs may only look "
                         b"up a devmap or an xskmap")
    else:
        return m
    return NULL


cdef inline uint32_t _cpu(Vm* vm) noexcept nogil:
    return vm.skb.cpu if vm.skb != NULL else 0


cdef int32_t _find_locked(MapStore* m, const uint8_t* key) noexcept nogil:
    """map_find under the key's bucket lock where the map has them: the kernel's lookup
    takes none (RCU keeps a chain walkable), but here another CPU's update or delete
    relinks the chain's elements through the free list while it is walked.  The key
    is hashed once, for the lock and the walk."""
    cdef uint32_t bucket
    cdef int32_t elem, prev
    if not map_bucket_locked(m):
        return map_find(m, key)
    bucket = map_bucket(m, key)
    map_lock(&m.bucket_locks[bucket])
    elem = hash_find_in(m, key, bucket, &prev)
    map_unlock(&m.bucket_locks[bucket])
    return elem


cdef uint64_t _map_lookup_elem(Vm* vm, uint64_t r1, uint64_t r2, uint64_t c, uint64_t d,
                               uint64_t e) noexcept nogil:
    cdef MapStore* m = _data_map_arg(vm, r1, True)
    cdef uint8_t* key
    cdef int32_t elem
    if m == NULL:
        return 0
    key = _mem(vm, r2, m.key_size, ACCESS_READ)
    if key == NULL:
        return 0
    if _is_sock_map(m):
        return sock_map_lookup(vm, m, key)
    if m.type == BPF_MAP_TYPE_XSKMAP:
        # a socket released since its update is in no XSKMAP (xsk_delete_from_maps)
        drop_released_once(m)
    if m.type == BPF_MAP_TYPE_DEVMAP or m.type == BPF_MAP_TYPE_XSKMAP:
        return <uintptr_t>xdp_map_lookup(m, key)
    elem = _find_locked(m, key)
    if elem == NO_ELEM:
        return 0
    if m.inner != NULL:
        # a map of maps gives the inner map itself, which map helpers then take as r1
        return <uintptr_t>m.inner[elem] if _inner_map(vm, <uintptr_t>m.inner[elem]) != NULL else 0
    if _is_lru(m):
        lru_set_ref(m, elem)
    return <uintptr_t>map_value(m, elem, _cpu(vm) % m.ncpu)


cdef uint64_t _map_lookup_percpu_elem(Vm* vm, uint64_t r1, uint64_t r2, uint64_t cpu,
                                      uint64_t d, uint64_t e) noexcept nogil:
    """The value of ``cpu`` (NULL past the last CPU) of a per-CPU map's element."""
    cdef MapStore* m = _data_map_arg(vm, r1, True)
    cdef uint8_t* key
    cdef int32_t elem
    if m == NULL:
        return 0
    if m.ncpu == 1:
        return helper_fault(vm, b"bpf_map_lookup_percpu_elem takes a per-CPU map")
    key = _mem(vm, r2, m.key_size, ACCESS_READ)
    if key == NULL or <uint32_t>cpu >= m.ncpu:
        return 0
    elem = _find_locked(m, key)
    if elem == NO_ELEM:
        return 0
    if _is_lru(m):
        lru_set_ref(m, elem)
    return <uintptr_t>map_value(m, elem, <uint32_t>cpu)


cdef uint64_t _map_update_elem(Vm* vm, uint64_t r1, uint64_t r2, uint64_t r3,
                               uint64_t flags, uint64_t e) noexcept nogil:
    cdef MapStore* m = _data_map_arg(vm, r1, False)
    cdef uint8_t* key
    cdef uint8_t* value
    cdef int* lock
    cdef int rc
    if m == NULL:
        return 0
    key = _mem(vm, r2, m.key_size, ACCESS_READ)
    if key == NULL:
        return 0
    if _is_sock_map(m):
        # the value is a socket (resolve_map_arg_type: ARG_PTR_TO_BTF_ID_SOCK_COMMON)
        return sock_map_update_prog(vm, m, key, r3, flags)
    value = _mem(vm, r3, m.value_size, ACCESS_READ)
    if value == NULL:
        return 0
    lock = map_bucket_lock(m, key)
    if lock != NULL:
        map_lock(lock)
    rc = map_update(m, key, value, flags, _cpu(vm) % m.ncpu, _cpu(vm))
    if lock != NULL:
        map_unlock(lock)
    return <uint64_t><int64_t>rc


cdef uint64_t _map_delete_elem(Vm* vm, uint64_t r1, uint64_t r2, uint64_t c, uint64_t d,
                               uint64_t e) noexcept nogil:
    cdef MapStore* m = _data_map_arg(vm, r1, False)
    cdef uint8_t* key
    cdef int* lock
    cdef int rc
    if m == NULL:
        return 0
    key = _mem(vm, r2, m.key_size, ACCESS_READ)
    if key == NULL:
        return 0
    lock = map_bucket_lock(m, key)
    if lock != NULL:
        map_lock(lock)
    rc = map_delete(m, key)
    if lock != NULL:
        map_unlock(lock)
    return <uint64_t><int64_t>rc


# --- queues, stacks and bloom filters: the values are copied in and out (bloom
# filters: hashed), never pointed to ---

cdef MapStore* _queue_arg(Vm* vm, uint64_t ptr, bint bloom_ok) noexcept nogil:
    cdef MapStore* m = _map_arg(vm, ptr)
    if m != NULL and m.type != BPF_MAP_TYPE_QUEUE and m.type != BPF_MAP_TYPE_STACK and \
            not (bloom_ok and m.type == BPF_MAP_TYPE_BLOOM_FILTER):
        helper_fault(vm, b"r1 must be a queue or a stack (or for push and peek a bloom filter)")
        return NULL
    return m


cdef uint64_t _map_push_elem(Vm* vm, uint64_t r1, uint64_t r2, uint64_t flags,
                             uint64_t d, uint64_t e) noexcept nogil:
    cdef MapStore* m = _queue_arg(vm, r1, True)
    cdef uint8_t* value
    if m == NULL:
        return 0
    value = _mem(vm, r2, m.value_size, ACCESS_READ)
    if value == NULL:
        return 0
    if m.type == BPF_MAP_TYPE_BLOOM_FILTER:
        return <uint64_t><int64_t>bloom_push(m, value, flags)
    return <uint64_t><int64_t>qs_push(m, value, flags)


cdef uint64_t _queue_take(Vm* vm, uint64_t r1, uint64_t r2, bint remove) noexcept nogil:
    cdef MapStore* m = _queue_arg(vm, r1, not remove)
    cdef uint8_t* out
    if m == NULL:
        return 0
    if m.type == BPF_MAP_TYPE_BLOOM_FILTER:         # peek: is the value maybe in it
        out = _mem(vm, r2, m.value_size, ACCESS_READ)
        return 0 if out == NULL else <uint64_t><int64_t>bloom_peek(m, out)
    out = _mem(vm, r2, m.value_size, ACCESS_WRITE)
    if out == NULL:
        return 0
    return <uint64_t><int64_t>qs_take(m, out, remove)


cdef uint64_t _map_pop_elem(Vm* vm, uint64_t r1, uint64_t r2, uint64_t c, uint64_t d,
                            uint64_t e) noexcept nogil:
    return _queue_take(vm, r1, r2, True)


cdef uint64_t _map_peek_elem(Vm* vm, uint64_t r1, uint64_t r2, uint64_t c, uint64_t d,
                             uint64_t e) noexcept nogil:
    return _queue_take(vm, r1, r2, False)


cdef MapStore* _typed_map_arg(Vm* vm, uint64_t ptr, uint32_t kind, const char* why) noexcept nogil:
    cdef MapStore* m = _map_arg(vm, ptr)
    if m != NULL and m.type != kind:
        helper_fault(vm, why)
        return NULL
    return m


# --- perf event arrays: a slot is open once Python opened it for a CPU; events are kept
# in the map as (u32 cpu, u32 length, bytes) records until Python drains them ---

cdef int64_t _perf_slot(Vm* vm, MapStore* m, uint64_t flags) noexcept nogil:
    """The slot ``flags`` names (its low 32 bits, or the current CPU), or -errno."""
    cdef uint64_t index = flags & 0xFFFFFFFFu
    if index == 0xFFFFFFFFu:
        index = _cpu(vm)
    if index >= m.max_entries:
        return -E2BIG
    if m.perf_cpu[index] < 0:
        return -ENOENT
    return <int64_t>index


cdef uint64_t _perf_event_output(Vm* vm, uint64_t r1, uint64_t r2, uint64_t flags,
                                 uint64_t r4, uint64_t size) noexcept nogil:
    cdef MapStore* m
    cdef uint8_t* data = NULL
    cdef uint64_t ctxlen = (flags >> 32) & 0xFFFFF
    cdef int64_t slot
    cdef uint32_t cpu = _cpu(vm), total
    cdef uint8_t* rec
    if vm.skb != NULL and not is_ctx(vm, r1):
        return 0
    m = _typed_map_arg(vm, r2, BPF_MAP_TYPE_PERF_EVENT_ARRAY, b"r2 must be a perf event array")
    if m != NULL and vm.world != NULL and not vm.world.packet and flags >> 32:
        return err(EINVAL)          # the tracing variant copies no context bytes
    if m == NULL:
        return 0
    if size >> 32:
        return helper_fault(vm, b"the data size must fit in 32 bits")
    if size:
        data = _mem(vm, r4, <uint32_t>size, ACCESS_READ)
        if data == NULL:
            return 0
    if flags >> 52:
        return err(EINVAL)
    if ctxlen > (vm.skb.len if vm.skb != NULL else 0):
        return err(EFAULT)
    slot = _perf_slot(vm, m, flags)
    if slot < 0:
        return <uint64_t>slot
    if <uint32_t>m.perf_cpu[slot] != cpu:
        return err(EOPNOTSUPP)
    total = <uint32_t>(size + ctxlen)
    if m.events_len + 8 + total > PERF_EVENTS_MAX:
        return err(ENOSPC)
    if m.events == NULL:
        # the map's own store of PERF_EVENTS_MAX bytes, as the reader's perf ring is
        # one fixed mapping (perf_mmap): its pages cost memory only as events reach them
        m.events = <uint8_t*>pyebpf_store_alloc(PERF_EVENTS_MAX, 1)
        if m.events == NULL:
            return err(ENOSPC)
    rec = m.events + m.events_len
    memcpy(rec, &cpu, 4)
    memcpy(rec + 4, &total, 4)
    if size:
        memcpy(rec + 8, data, size)
    if ctxlen:
        memcpy(rec + 8 + size, skb_data(vm.skb), ctxlen)
    m.events_len += 8 + total
    return 0


cdef uint64_t bpf_perf_event_read(Vm* vm, uint64_t r1, uint64_t flags, uint64_t c,
                                  uint64_t d, uint64_t e) noexcept nogil:
    cdef MapStore* m = _typed_map_arg(vm, r1, BPF_MAP_TYPE_PERF_EVENT_ARRAY,
                                      b"r1 must be a perf event array")
    cdef int64_t slot
    if m == NULL:
        return 0
    if flags >> 32:
        return err(EINVAL)
    slot = _perf_slot(vm, m, flags)
    if slot < 0:
        return <uint64_t>slot
    if <uint32_t>m.perf_cpu[slot] != _cpu(vm):
        return err(EINVAL)           # perf_event_read_local: a CPU event of another CPU
    return m.counters[3 * slot]


# --- ring buffers: the data is 2 * max_entries bytes so that a record is contiguous
# even where it wraps (the kernel maps the pages twice); on commit the part past the
# end is copied to the start.  A reserved record is a region of the run until it is
# submitted or discarded; records still reserved when the run ends (or tail-calls,
# which the kernel's verifier forbids while one is held) are discarded. ---

cdef uint8_t* rb_reserve(MapStore* m, uint64_t size) noexcept nogil:
    """The kernel's __bpf_ringbuf_reserve: the record's data, or NULL without room."""
    cdef uint64_t total, mask = m.max_entries - 1
    cdef uint32_t hdr[2]
    if size > 0x3FFFFFFF - RB_HDR:
        return NULL
    total = (size + RB_HDR + 7) & ~7ull
    if total > m.max_entries:
        return NULL
    while m.pend_pos < m.prod_pos:
        memcpy(hdr, m.values + (m.pend_pos & mask), 4)
        if hdr[0] & RB_BUSY:
            break
        m.pend_pos += _rb_total(hdr[0])
    if m.prod_pos + total - m.cons_pos > mask or m.prod_pos + total - m.pend_pos > mask:
        return NULL
    hdr[0] = <uint32_t>size | RB_BUSY
    hdr[1] = 0
    memcpy(m.values + (m.prod_pos & mask), hdr, 8)
    m.prod_pos += total
    return m.values + ((m.prod_pos - total) & mask) + RB_HDR


cdef void rb_commit(MapStore* m, uint8_t* data, bint discard) noexcept nogil:
    cdef uint8_t* hdr = data - RB_HDR
    cdef uint32_t len_
    cdef size_t end
    memcpy(&len_, hdr, 4)
    len_ = (len_ & ~RB_BUSY) | (RB_DISCARD if discard else 0)
    memcpy(hdr, &len_, 4)
    end = <size_t>(hdr - m.values) + _rb_total(len_)
    if end > m.max_entries:
        memcpy(m.values, m.values + m.max_entries, end - m.max_entries)


cdef int _rb_record(Vm* vm, uint64_t ptr) noexcept nogil:
    cdef int k
    for k in range(vm.map_regions, vm.nregions):
        if vm.regions[k].name == REGION_RB_RECORD and vm.regions[k].start == ptr:
            return k
    helper_fault(vm, b"r1 is not a reserved ring buffer record")
    return -1


cdef MapStore* _rb_of(Vm* vm, uintptr_t ptr) noexcept nogil:
    cdef int k
    for k in range(vm.nmaps):
        if (vm.maps[k].type == BPF_MAP_TYPE_RINGBUF and ptr > <uintptr_t>vm.maps[k].values
                and ptr < <uintptr_t>vm.maps[k].values + vm.maps[k].values_len):
            return vm.maps[k]
    return NULL


cdef void _rb_release(Vm* vm, int k, bint discard) noexcept nogil:
    cdef MapStore* m = _rb_of(vm, vm.regions[k].start)
    map_lock(&m.lock)
    rb_commit(m, <uint8_t*>vm.regions[k].start, discard)
    map_unlock(&m.lock)
    vm.nregions -= 1
    memmove(&vm.regions[k], &vm.regions[k + 1], (vm.nregions - k) * sizeof(Region))


cdef void ringbuf_release_all(Vm* vm) noexcept nogil:
    """Discard the records a run still holds."""
    cdef int k = vm.nregions - 1
    while k >= vm.map_regions:
        if vm.regions[k].name == REGION_RB_RECORD:
            _rb_release(vm, k, True)
        k -= 1


cdef uint64_t _ringbuf_output(Vm* vm, uint64_t r1, uint64_t r2, uint64_t size,
                              uint64_t flags, uint64_t e) noexcept nogil:
    cdef MapStore* m = _typed_map_arg(vm, r1, BPF_MAP_TYPE_RINGBUF, b"r1 must be a ring buffer")
    cdef uint8_t* data
    cdef uint8_t* rec
    if m == NULL:
        return 0
    if size >> 32:
        return helper_fault(vm, b"the data size must fit in 32 bits")
    data = _mem(vm, r2, <uint32_t>size, ACCESS_READ)
    if data == NULL:
        return 0
    if flags & ~3ull:                       # BPF_RB_NO_WAKEUP | BPF_RB_FORCE_WAKEUP
        return err(EINVAL)
    rec = rb_reserve(m, size)
    if rec == NULL:
        return err(EAGAIN)
    memcpy(rec, data, size)
    rb_commit(m, rec, False)
    return 0


cdef uint64_t _ringbuf_reserve(Vm* vm, uint64_t r1, uint64_t size, uint64_t flags,
                               uint64_t d, uint64_t e) noexcept nogil:
    cdef MapStore* m = _typed_map_arg(vm, r1, BPF_MAP_TYPE_RINGBUF, b"r1 must be a ring buffer")
    cdef uint8_t* rec
    if m == NULL or flags:
        return 0
    rec = rb_reserve(m, size)
    if rec == NULL:
        return 0
    if not add_region(vm, <uintptr_t>rec, size, REGION_RB_RECORD):
        rb_commit(m, rec, True)
        return 0
    return <uintptr_t>rec


cdef uint64_t _rb_finish(Vm* vm, uint64_t r1, bint discard) noexcept nogil:
    cdef int k = _rb_record(vm, r1)
    if k >= 0:
        _rb_release(vm, k, discard)
    return 0


cdef uint64_t bpf_ringbuf_submit(Vm* vm, uint64_t r1, uint64_t flags, uint64_t c,
                                 uint64_t d, uint64_t e) noexcept nogil:
    return _rb_finish(vm, r1, False)


cdef uint64_t bpf_ringbuf_discard(Vm* vm, uint64_t r1, uint64_t flags, uint64_t c,
                                  uint64_t d, uint64_t e) noexcept nogil:
    return _rb_finish(vm, r1, True)


cdef uint64_t bpf_ringbuf_query(Vm* vm, uint64_t r1, uint64_t flags, uint64_t c,
                                uint64_t d, uint64_t e) noexcept nogil:
    cdef MapStore* m = _typed_map_arg(vm, r1, BPF_MAP_TYPE_RINGBUF, b"r1 must be a ring buffer")
    if m == NULL:
        return 0
    if flags == 0:                          # BPF_RB_AVAIL_DATA
        return m.prod_pos - m.cons_pos
    if flags == 1:                          # BPF_RB_RING_SIZE
        return m.max_entries
    if flags == 2:                          # BPF_RB_CONS_POS
        return m.cons_pos
    if flags == 3:                          # BPF_RB_PROD_POS
        return m.prod_pos
    return 0


cdef uint64_t bpf_tail_call(Vm* vm, uint64_t r1, uint64_t r2, uint64_t index, uint64_t d,
                            uint64_t e) noexcept nogil:
    # failure is a no-op: the program goes on with the next instruction
    cdef MapStore* m
    cdef uint32_t slot = <uint32_t>index         # the kernel compares the low 32 bits
    if vm.skb != NULL and not is_ctx(vm, r1):
        return 0
    m = _map_arg(vm, r2)
    if m == NULL:
        return 0
    if m.type != BPF_MAP_TYPE_PROG_ARRAY:
        return helper_fault(vm, b"the map must be a program array")
    if slot >= m.max_entries or m.progs[slot] == NULL or vm.tail_calls >= vm.tail_call_limit:
        return 0
    vm.tail_calls += 1
    vm.next_prog = m.progs[slot]
    vm.status = STATUS_TAIL_CALL
    return 0


cdef enum:
    MAX_STACK_FRAMES = MAX_FRAMES


cdef uint64_t _get_stackid(Vm* vm, uint64_t r1, uint64_t r2, uint64_t flags, uint64_t d,
                           uint64_t e) noexcept nogil:
    """The kernel's bpf_get_stackid and __bpf_get_stackid.  A tracing run walks the
    modelled machine's stacks (trace/tracing.pxi); other runs a synthetic one: the
    running bpf-to-bpf call chain, innermost first, each frame named by the pc of its
    call (there is no other stack to walk in user space), and an empty user stack."""
    cdef MapStore* m = _map_arg(vm, r2)
    cdef uint64_t frames[MAX_STACK_FRAMES]
    cdef const uint64_t* ips = frames
    cdef uint32_t nr = 0, skip = <uint32_t>(flags & BPF_F_SKIP_FIELD_MASK)
    cdef uint32_t hash, id, k
    cdef int level
    cdef uint8_t* slot
    if m == NULL:
        return 0
    if vm.skb != NULL and not is_ctx(vm, r1):
        return 0
    if m.type != BPF_MAP_TYPE_STACK_TRACE:
        return helper_fault(vm, b"the map must be a stack trace map")
    if flags & ~(<uint64_t>(BPF_F_SKIP_FIELD_MASK | BPF_F_USER_STACK | BPF_F_FAST_STACK_CMP
                            | BPF_F_REUSE_STACKID)):
        return err(EINVAL)
    if vm.world != NULL and not vm.world.packet:
        # the callchain holds at most value_size / 8 frames past the skipped ones
        nr = trace_stack(vm, flags & BPF_F_USER_STACK, &ips)
        if nr > m.value_size // 8 + skip:
            nr = m.value_size // 8 + skip
    elif not flags & BPF_F_USER_STACK:
        frames[0] = vm.pc
        nr = 1
        for level in range(vm.depth - 1, -1, -1):
            frames[nr] = vm.frames[level].ret_pc - 1
            nr += 1
    if nr <= skip:
        return err(EFAULT)
    nr -= skip
    if nr > m.value_size // 8:
        nr = m.value_size // 8
    hash = jhash(<uint8_t*>(ips + skip), nr * 8, 0)
    id = hash & (m.n_buckets - 1)
    slot = m.values + <size_t>id * m.value_size
    if m.st_nr[id] and m.st_hash[id] == hash and (
            flags & BPF_F_FAST_STACK_CMP or
            (m.st_nr[id] == nr and memcmp(slot, ips + skip, nr * 8) == 0)):
        return id
    if m.st_nr[id] and not flags & BPF_F_REUSE_STACKID:
        return err(EEXIST)
    if not m.st_nr[id]:
        if m.count == m.max_entries:      # every preallocated stack is in use
            return err(ENOMEM)
        m.count += 1
    memset(slot, 0, m.value_size)
    memcpy(slot, ips + skip, nr * 8)
    m.st_nr[id], m.st_hash[id] = nr, hash
    return id


# --- locks: the replay threads of tcsim --cpus share the maps.  Each helper that changes
# a map or walks its lists holds the map's lock (the queue's and ring buffer's spin
# locks), or for a plain or per-CPU hash map the key's bucket's (htab_lock_bucket:
# the helpers above take it, map_bucket_lock); array lookups take none, as
# array_map_lookup_elem takes none: the value is written in place. ---

cdef MapStore* _known_map(Vm* vm, uint64_t ptr) noexcept nogil:
    """The map ``ptr`` is, when the program references it or holds it as an inner map;
    NULL otherwise (the helper then faults as it would)."""
    cdef int k
    cdef uint32_t i
    for k in range(vm.nmaps):
        if <uintptr_t>vm.maps[k] == ptr:
            return vm.maps[k]
    for k in range(vm.nmaps):
        if vm.maps[k].inner != NULL:
            for i in range(vm.maps[k].max_entries):
                if <uintptr_t>vm.maps[k].inner[i] == ptr and ptr:
                    return vm.maps[k].inner[i]
    return NULL


cdef inline uint64_t _locked(helper_fn f, uint64_t map_ptr, bint array_free, Vm* vm,
                             uint64_t r1, uint64_t r2, uint64_t r3, uint64_t r4,
                             uint64_t r5) noexcept nogil:
    cdef MapStore* m = _known_map(vm, map_ptr)
    cdef uint64_t rv
    if m == NULL or map_bucket_locked(m) or (array_free and (
            m.type == BPF_MAP_TYPE_ARRAY or m.type == BPF_MAP_TYPE_PERCPU_ARRAY)):
        return f(vm, r1, r2, r3, r4, r5)
    map_lock(&m.lock)
    rv = f(vm, r1, r2, r3, r4, r5)
    map_unlock(&m.lock)
    return rv


cdef uint64_t bpf_map_lookup_elem(Vm* vm, uint64_t r1, uint64_t r2, uint64_t r3,
                                  uint64_t r4, uint64_t r5) noexcept nogil:
    return _locked(_map_lookup_elem, r1, True, vm, r1, r2, r3, r4, r5)


cdef uint64_t bpf_map_lookup_percpu_elem(Vm* vm, uint64_t r1, uint64_t r2, uint64_t r3,
                                         uint64_t r4, uint64_t r5) noexcept nogil:
    return _locked(_map_lookup_percpu_elem, r1, True, vm, r1, r2, r3, r4, r5)


cdef uint64_t bpf_map_update_elem(Vm* vm, uint64_t r1, uint64_t r2, uint64_t r3,
                                  uint64_t r4, uint64_t r5) noexcept nogil:
    return _locked(_map_update_elem, r1, False, vm, r1, r2, r3, r4, r5)


cdef uint64_t bpf_map_delete_elem(Vm* vm, uint64_t r1, uint64_t r2, uint64_t r3,
                                  uint64_t r4, uint64_t r5) noexcept nogil:
    return _locked(_map_delete_elem, r1, False, vm, r1, r2, r3, r4, r5)


cdef uint64_t bpf_map_push_elem(Vm* vm, uint64_t r1, uint64_t r2, uint64_t r3,
                                uint64_t r4, uint64_t r5) noexcept nogil:
    return _locked(_map_push_elem, r1, False, vm, r1, r2, r3, r4, r5)


cdef uint64_t bpf_map_pop_elem(Vm* vm, uint64_t r1, uint64_t r2, uint64_t r3,
                               uint64_t r4, uint64_t r5) noexcept nogil:
    return _locked(_map_pop_elem, r1, False, vm, r1, r2, r3, r4, r5)


cdef uint64_t bpf_map_peek_elem(Vm* vm, uint64_t r1, uint64_t r2, uint64_t r3,
                                uint64_t r4, uint64_t r5) noexcept nogil:
    return _locked(_map_peek_elem, r1, False, vm, r1, r2, r3, r4, r5)


cdef uint64_t bpf_perf_event_output(Vm* vm, uint64_t r1, uint64_t r2, uint64_t r3,
                                    uint64_t r4, uint64_t r5) noexcept nogil:
    return _locked(_perf_event_output, r2, False, vm, r1, r2, r3, r4, r5)


cdef uint64_t bpf_ringbuf_output(Vm* vm, uint64_t r1, uint64_t r2, uint64_t r3,
                                 uint64_t r4, uint64_t r5) noexcept nogil:
    return _locked(_ringbuf_output, r1, False, vm, r1, r2, r3, r4, r5)


cdef uint64_t bpf_ringbuf_reserve(Vm* vm, uint64_t r1, uint64_t r2, uint64_t r3,
                                  uint64_t r4, uint64_t r5) noexcept nogil:
    return _locked(_ringbuf_reserve, r1, False, vm, r1, r2, r3, r4, r5)


cdef uint64_t bpf_get_stackid(Vm* vm, uint64_t r1, uint64_t r2, uint64_t r3,
                              uint64_t r4, uint64_t r5) noexcept nogil:
    return _locked(_get_stackid, r2, False, vm, r1, r2, r3, r4, r5)


from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec


# --- bpf_spin_lock: the lock word in a map value (its BTF places it), taken and released
# as the kernel's __bpf_spin_lock does: a spinning lock the replay threads of tcsim
# --cpus contend for.  The verifier lets a program hold one at a time and call no helper
# but bpf_spin_unlock while it does; a run that ends holding it (a fault, the budget)
# releases it (vm_run). ---

cdef inline bint _holds_value(MapStore* m, uint64_t ptr) noexcept nogil:
    return m != NULL and ptr >= <uintptr_t>m.values and \
        ptr - <uintptr_t>m.values < m.values_len


cdef MapStore* value_map(Vm* vm, uint64_t ptr) noexcept nogil:
    """The map whose values hold ``ptr``: one of the program's maps or an inner map of
    one of its maps of maps; NULL for anything else."""
    cdef int k
    cdef uint32_t i
    cdef MapStore* m
    for k in range(vm.nmaps):
        if _holds_value(vm.maps[k], ptr):
            return vm.maps[k]
    for k in range(vm.nmaps):
        m = vm.maps[k]
        if m.inner != NULL:
            for i in range(m.max_entries):
                if _holds_value(m.inner[i], ptr):
                    return m.inner[i]
    return NULL


cdef int* _spin_lock_arg(Vm* vm, uint64_t ptr) noexcept nogil:
    """The lock word ``ptr`` is: a value's bpf_spin_lock in one of the program's maps
    (or their inner maps), or an allocated object's (heap.pxi)."""
    cdef MapStore* m
    if heap_field(ptr) == FIELD_SPIN_LOCK:
        return <int*><uintptr_t>ptr
    m = value_map(vm, ptr)
    if m != NULL and m.spin_lock_off >= 0 and \
            (ptr - <uintptr_t>m.values) % m.stride == <uint32_t>m.spin_lock_off:
        return <int*><uintptr_t>ptr
    helper_fault(vm, b"r1 is not the bpf_spin_lock of a map value or an object")
    return NULL


cdef uint64_t bpf_spin_lock(Vm* vm, uint64_t r1, uint64_t b, uint64_t c, uint64_t d,
                            uint64_t e) noexcept nogil:
    cdef int* word = _spin_lock_arg(vm, r1)
    if word == NULL:
        return 0
    if vm.held_lock != NULL:
        # the kernel's verifier refuses this ("Locking two bpf_spin_locks are not
        # allowed"); taken again, the lock would never be given back
        return helper_fault(vm, b"bpf_spin_lock while the program holds a lock")
    map_lock(word)
    vm.held_lock = word
    return 0


cdef uint64_t bpf_spin_unlock(Vm* vm, uint64_t r1, uint64_t b, uint64_t c, uint64_t d,
                              uint64_t e) noexcept nogil:
    cdef int* word = _spin_lock_arg(vm, r1)
    if word == NULL:
        return 0
    if vm.held_lock != word:
        return helper_fault(vm, b"bpf_spin_unlock of a lock the program does not hold")
    vm.held_lock = NULL
    map_unlock(word)
    return 0


cdef void spin_lock_release(Vm* vm) noexcept nogil:
    """The end of a run: a lock it still holds goes back (only a faulting run has one)."""
    if vm.held_lock != NULL:
        map_unlock(vm.held_lock)
        vm.held_lock = NULL
    while vm.nres_held:
        vm.nres_held -= 1
        map_unlock(vm.res_held[vm.nres_held])


# --- bpf_res_spin_lock (kernel/bpf/rqspinlock.c): the lock word of a map value's struct
# bpf_res_spin_lock.  Taking one the run already holds is the AA deadlock rqspinlock's
# held-locks table detects (-EDEADLK); one another replay thread holds is waited for
# RES_DEF_TIMEOUT_NS, then given up (-ETIMEDOUT).  The verifier makes the program check
# the result and give locks back in the reverse order.  A run has no interrupts: the
# irq save and restore kfuncs only keep the verifier's books. ---

cdef int* _res_lock_arg(Vm* vm, uint64_t ptr) noexcept nogil:
    cdef MapStore* m = value_map(vm, ptr)
    if m != NULL and m.res_spin_lock_off >= 0 and \
            (ptr - <uintptr_t>m.values) % m.stride == <uint32_t>m.res_spin_lock_off:
        return <int*><uintptr_t>ptr
    helper_fault(vm, b"r1 is not the bpf_res_spin_lock of a map value")
    return NULL


cdef inline int64_t _monotonic_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <int64_t>ts.tv_sec * 1000000000 + ts.tv_nsec


cdef uint64_t _res_lock(Vm* vm, int* word) noexcept nogil:
    """res_spin_lock: 0 with the lock taken, or the error it fails with."""
    cdef int k, spins = 0
    cdef int64_t deadline = 0
    for k in range(vm.nres_held):
        if vm.res_held[k] == word:
            return err(EDEADLK)         # check_deadlock_AA
    if vm.nres_held == RES_NR_HELD:
        return helper_fault(vm, b"more bpf_res_spin_locks held than rqspinlock's "
                                b"held-locks table records (RES_NR_HELD)")
    while not try_lock(word):
        spins += 1
        if spins & 1023 == 0:
            if deadline == 0:
                deadline = _monotonic_ns() + RES_DEF_TIMEOUT_NS
            elif _monotonic_ns() > deadline:
                return err(ETIMEDOUT)   # check_timeout
            cpu_yield()
    vm.res_held[vm.nres_held] = word
    vm.nres_held += 1
    return 0


cdef void _res_unlock(Vm* vm, int* word) noexcept nogil:
    if vm.nres_held == 0 or vm.res_held[vm.nres_held - 1] != word:
        # the verifier refuses this ("bpf_res_spin_unlock cannot be out of order")
        helper_fault(vm, b"bpf_res_spin_unlock of a lock that is not the last one taken")
        return
    vm.nres_held -= 1
    map_unlock(word)


cdef uint64_t _k_res_spin_lock(Vm* vm, uint64_t r1, uint64_t r2, uint64_t r3, uint64_t r4,
                               uint64_t r5) noexcept nogil:
    cdef int* word = _res_lock_arg(vm, r1)
    return _res_lock(vm, word) if word != NULL else 0


cdef uint64_t _k_res_spin_unlock(Vm* vm, uint64_t r1, uint64_t r2, uint64_t r3,
                                 uint64_t r4, uint64_t r5) noexcept nogil:
    cdef int* word = _res_lock_arg(vm, r1)
    if word != NULL:
        _res_unlock(vm, word)
    return 0


cdef uint64_t _k_irq_save(Vm* vm, uint64_t flags, uint64_t r2, uint64_t r3, uint64_t r4,
                          uint64_t r5) noexcept nogil:
    """bpf_local_irq_save: the saved flags word (nothing to save; the program cannot
    read it) is the verifier's STACK_IRQ_FLAG slot."""
    cdef uint64_t* slot = <uint64_t*>_mem(vm, flags, 8, ACCESS_WRITE)
    if slot != NULL:
        slot[0] = 0
    return 0


cdef uint64_t _k_irq_restore(Vm* vm, uint64_t flags, uint64_t r2, uint64_t r3,
                             uint64_t r4, uint64_t r5) noexcept nogil:
    _mem(vm, flags, 8, ACCESS_READ)
    return 0


cdef uint64_t _k_res_spin_lock_irqsave(Vm* vm, uint64_t r1, uint64_t flags, uint64_t r3,
                                       uint64_t r4, uint64_t r5) noexcept nogil:
    cdef int* word = _res_lock_arg(vm, r1)
    cdef uint64_t rc
    if word == NULL:
        return 0
    rc = _res_lock(vm, word)
    if rc == 0:
        _k_irq_save(vm, flags, 0, 0, 0, 0)
    return rc


cdef uint64_t _k_res_spin_unlock_irqrestore(Vm* vm, uint64_t r1, uint64_t flags,
                                            uint64_t r3, uint64_t r4,
                                            uint64_t r5) noexcept nogil:
    _k_res_spin_unlock(vm, r1, 0, 0, 0, 0)
    return _k_irq_restore(vm, flags, 0, 0, 0, 0)


cdef void register_map_helpers(helper_fn* table) noexcept:
    table[93] = bpf_spin_lock
    table[94] = bpf_spin_unlock
    table[1] = bpf_map_lookup_elem
    table[2] = bpf_map_update_elem
    table[3] = bpf_map_delete_elem
    table[12] = bpf_tail_call
    table[27] = bpf_get_stackid
    table[195] = bpf_map_lookup_percpu_elem
    table[87] = bpf_map_push_elem
    table[88] = bpf_map_pop_elem
    table[89] = bpf_map_peek_elem
    table[22] = bpf_perf_event_read
    table[25] = bpf_perf_event_output
    table[130] = bpf_ringbuf_output
    table[131] = bpf_ringbuf_reserve
    table[132] = bpf_ringbuf_submit
    table[133] = bpf_ringbuf_discard
    table[134] = bpf_ringbuf_query
