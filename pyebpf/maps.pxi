# Map storage in C: the data structures of each map type and their operations, and
# creating storage with BPF_MAP_CREATE's refusals.  Included into pyebpf/_core.pyx;
# MapStore is declared in pyebpf/_core.pxd.  The map helpers are in map_helpers.pxi,
# the Python Map class in map_class.pxi; the pin file's contents are walked by the
# pyebpf.pin_format module, on the declarations in pyebpf/_core.pxd.
#
# Storage is preallocated at creation, as the kernel's default (prealloc) maps are:
# element i of a map owns bytes [i * slot, (i + 1) * slot) of one value block, so a
# pointer returned by a lookup stays inside memory the map owns for the map's life
# (a deleted element's pointer still lands in that block, never in freed memory).
# Each map a program references is one region of its runs.
#
# Hash maps chain elements in buckets exactly as the kernel's htab does: bucket =
# jhash(key, seed) & (n_buckets - 1), n_buckets = roundup_pow_of_two(max_entries),
# newest element first; so with seed 0 (v4.6, or BPF_F_ZERO_SEED) iteration order is
# the kernel's (htab_map_get_next_key; docs/kernel-notes.md, Maps).  pyebpf always uses seed 0: its order is
# deterministic, where a current kernel's differs per map unless BPF_F_ZERO_SEED is set.

cdef enum:
    PERF_EVENTS_MAX = 16 << 20    # bytes of undrained perf events a map keeps
    PERF_EVENTS_KEPT = 1 << 20    # drained bytes past which their pages go back (smaller
                                  # drains, a packet's events, keep them for the next:
                                  # giving back costs a drain 1.4x, bench/README.md)
    SK_STORAGE_SOCKETS = 1024     # owners (sockets, tasks, cgroups) one local storage map
                                  # holds values of
    REGION_INNER_MAP = 1000       # region names past the program's own maps
    REGION_RB_RECORD = 1001
    REGION_MAP_KEY = 1002         # the keys bpf_for_each_map_elem hands its callback
    REGION_USER_RB_SAMPLE = 1003  # the sample bpf_user_ringbuf_drain hands its callback
    REGION_DYNPTR = 1004          # the dynptr it hands it
    MAP_STRUCT_SPAN = 1024        # the most of a map's kernel struct a map pointer reads
                                  # (bpf_htab's 896 bytes: map_struct.pxi)

cdef inline uint32_t _rol32(uint32_t x, int k) noexcept nogil:
    return (x << k) | (x >> (32 - k))


cdef uint32_t jhash(const uint8_t* k, uint32_t length, uint32_t initval) noexcept nogil:
    """The kernel's jhash (lookup3); equals jhash2 for keys that are whole words."""
    cdef uint32_t a, b, c
    cdef uint8_t tail[12]
    a = b = c = 0xdeadbeefU + length + initval
    while length > 12:
        a += _le32(k)
        b += _le32(k + 4)
        c += _le32(k + 8)
        a -= c; a ^= _rol32(c, 4); c += b
        b -= a; b ^= _rol32(a, 6); a += c
        c -= b; c ^= _rol32(b, 8); b += a
        a -= c; a ^= _rol32(c, 16); c += b
        b -= a; b ^= _rol32(a, 19); a += c
        c -= b; c ^= _rol32(b, 4); b += a
        length -= 12
        k += 12
    if length == 0:
        return c
    memset(tail, 0, 12)
    memcpy(tail, k, length)
    a += _le32(tail)
    b += _le32(tail + 4)
    c += _le32(tail + 8)
    c ^= b; c -= _rol32(b, 14)
    a ^= c; a -= _rol32(c, 11)
    b ^= a; b -= _rol32(a, 25)
    c ^= b; c -= _rol32(b, 16)
    a ^= c; a -= _rol32(c, 4)
    b ^= a; b -= _rol32(a, 14)
    c ^= b; c -= _rol32(b, 24)
    return c


cdef inline uint32_t map_bucket(MapStore* m, const uint8_t* key) noexcept nogil:
    # dev_map_index_hash: a DEVMAP_HASH's bucket is its u32 key's low bits
    if m.type == BPF_MAP_TYPE_DEVMAP_HASH:
        return _le32(key) & (m.n_buckets - 1)
    return jhash(key, m.key_size, 0) & (m.n_buckets - 1)


cdef inline int32_t hash_find_in(MapStore* m, const uint8_t* key, uint32_t bucket,
                                 int32_t* prev) noexcept nogil:
    """The element holding ``key`` in ``bucket`` (its bucket), or NO_ELEM; ``prev``
    the one before it in the chain."""
    cdef int32_t e = map_bucket_head(m, bucket)
    prev[0] = NO_ELEM
    while e != NO_ELEM:
        if memcmp(m.keys + <size_t>e * m.key_size, key, m.key_size) == 0:
            return e
        prev[0] = e
        e = m.next[e]
    return NO_ELEM


cdef int32_t _hash_find(MapStore* m, const uint8_t* key, int32_t* prev) noexcept nogil:
    return hash_find_in(m, key, map_bucket(m, key), prev)


cdef int32_t map_find(MapStore* m, const uint8_t* key) noexcept nogil:
    """The element holding ``key``, or NO_ELEM (arrays: the index when in range; LPM
    tries: the value slot of the longest matching prefix)."""
    cdef uint32_t index
    cdef int32_t prev
    if _is_hash(m):
        return _hash_find(m, key, &prev)
    if m.type == BPF_MAP_TYPE_LPM_TRIE:
        return _lpm_lookup(m, key)
    index = _le32(key)
    return <int32_t>index if index < m.max_entries else NO_ELEM


cdef void _hash_unlink(MapStore* m, int32_t e, int32_t prev) noexcept nogil:
    cdef uint32_t bucket
    if prev == NO_ELEM:
        bucket = map_bucket(m, m.keys + <size_t>e * m.key_size)
        m.buckets[bucket] = m.next[e] + 1
    else:
        m.next[prev] = m.next[e]


cdef void _hash_link(MapStore* m, int32_t e) noexcept nogil:
    cdef uint32_t bucket = map_bucket(m, m.keys + <size_t>e * m.key_size)
    m.next[e] = map_bucket_head(m, bucket)
    m.buckets[bucket] = e + 1


cdef void _elem_release(MapStore* m, int32_t e) noexcept nogil:
    # check_and_free_fields: what a removed element still holds
    if map_holds_objects(m):
        map_free_objects(m, e)
    timer_free(m, e)


cdef void _hash_remove(MapStore* m, int32_t e, int32_t prev) noexcept nogil:
    _elem_release(m, e)
    _hash_unlink(m, e, prev)
    if _is_lru(m):
        lru_push_free(m, e)
        m.count -= 1
    else:
        # free_htab_elem: the free list is the map's, shared by its buckets
        map_lock(&m.free_lock)
        m.next[e] = m.free_head
        m.free_head = e
        m.count -= 1
        map_unlock(&m.free_lock)


cdef void lru_del_from_htab(MapStore* m, int32_t e) noexcept nogil:
    """htab_lru_map_delete_node: the LRU evicts element ``e`` from the hash table (its
    node is the LRU's to move)."""
    cdef int32_t prev
    _hash_find(m, m.keys + <size_t>e * m.key_size, &prev)
    _elem_release(m, e)
    _hash_unlink(m, e, prev)
    m.count -= 1


cdef int32_t _lru_update(MapStore* m, const uint8_t* key, uint64_t flags, uint32_t cpu,
                         int* rc) noexcept nogil:
    """htab_lru_map_update_elem, htab_lru_percpu_map_update_elem: the new element's node
    is taken (lru.pxi, on ``cpu``) before the key is looked for, so even a failing or
    replacing update of a full map evicts; a per-CPU map's BPF_EXIST update takes none,
    and any update of its existing element is in place, marking it used."""
    cdef int32_t e, prev, fresh = NO_ELEM
    cdef bint in_place = m.type == BPF_MAP_TYPE_LRU_PERCPU_HASH
    if not (in_place and flags == BPF_EXIST):
        fresh = lru_pop_free(m, cpu)
        if fresh == NO_ELEM:
            rc[0] = -ENOMEM
            return NO_ELEM
    e = _hash_find(m, key, &prev)
    if (e == NO_ELEM and flags == BPF_EXIST) or (e != NO_ELEM and flags == BPF_NOEXIST):
        if fresh != NO_ELEM:
            lru_push_free(m, fresh)
        rc[0] = -ENOENT if e == NO_ELEM else -EEXIST
        return NO_ELEM
    if in_place and e != NO_ELEM:
        if fresh != NO_ELEM:
            lru_push_free(m, fresh)
        lru_set_ref(m, e)
        return e
    if e != NO_ELEM:
        # the replacement is marked used; the replaced element's node is freed
        _hash_remove(m, e, prev)
        lru_set_ref(m, fresh)
    memcpy(m.keys + <size_t>fresh * m.key_size, key, m.key_size)
    memset(map_value(m, fresh, 0), 0, <size_t>m.ncpu * m.stride)
    _hash_link(m, fresh)
    m.count += 1
    return fresh


cdef int32_t _hash_update(MapStore* m, const uint8_t* key, uint64_t flags, int* rc) noexcept nogil:
    cdef int32_t e, prev, fresh
    e = _hash_find(m, key, &prev)
    if (e == NO_ELEM and flags == BPF_EXIST) or (e != NO_ELEM and flags == BPF_NOEXIST):
        rc[0] = -ENOENT if e == NO_ELEM else -EEXIST
        return NO_ELEM
    if e != NO_ELEM:
        if (m.type == BPF_MAP_TYPE_HASH or m.type == BPF_MAP_TYPE_HASH_OF_MAPS
                or m.type == BPF_MAP_TYPE_SOCKHASH):
            # a plain hash map (and sock_hash_update_common) replaces the element, which
            # moves it to its bucket's head
            _hash_unlink(m, e, prev)
            _hash_link(m, e)
        return e
    # alloc_htab_elem: an element from the map's free list (the bucket's lock is not
    # enough: the buckets share it)
    map_lock(&m.free_lock)
    fresh = _elem_take(m)
    if fresh != NO_ELEM:
        m.count += 1
    map_unlock(&m.free_lock)
    if fresh == NO_ELEM:
        rc[0] = -E2BIG
        return NO_ELEM
    memcpy(m.keys + <size_t>fresh * m.key_size, key, m.key_size)
    memset(map_value(m, fresh, 0), 0, <size_t>m.ncpu * m.stride)
    _hash_link(m, fresh)
    return fresh


# --- values with special fields (struct bpf_spin_lock, struct bpf_timer, found in the
# value's BTF at creation): copies leave them alone, as the kernel's copy_map_value ---

cdef inline bint map_has_fields(MapStore* m) noexcept nogil:
    return m.spin_lock_off >= 0 or m.timer_off >= 0 or m.wq_off >= 0 or m.nkptrs or \
        m.nlists or m.res_spin_lock_off >= 0 or m.task_work_off >= 0


cdef inline bint map_bucket_locked(MapStore* m) noexcept nogil:
    """Whether a helper holds a bucket's lock for a key of the map instead of the map's
    (htab_lock_bucket): plain and per-CPU hashes whose values have no special fields
    (their timers, locks and objects stay under the map's lock)."""
    return m.bucket_locks != NULL and not map_has_fields(m)


cdef inline int* map_bucket_lock(MapStore* m, const uint8_t* key) noexcept nogil:
    """The lock a helper holds for ``key``: its bucket's, or NULL where the map's serves."""
    if not map_bucket_locked(m):
        return NULL
    return &m.bucket_locks[map_bucket(m, key)]


cdef inline bint map_holds_objects(MapStore* m) noexcept nogil:
    """The value has fields holding allocated objects (kptrs, lists)."""
    return m.nkptrs or m.nlists


cdef void map_copy_value(MapStore* m, uint8_t* dst, const uint8_t* src) noexcept nogil:
    """copy_map_value: the value's bytes but its lock, timer, kptrs and list heads,
    which keep their own."""
    cdef int32_t a = m.spin_lock_off, b = m.timer_off
    cdef uint32_t asz = SIZEOF_BPF_SPIN_LOCK, bsz = SIZEOF_BPF_TIMER, at = 0
    cdef uint64_t kept[BTF_FIELDS_MAX]
    cdef uint8_t heads[BTF_FIELDS_MAX * SIZEOF_BPF_LIST_HEAD]
    cdef uint32_t res_word = 0
    cdef int k
    if m.res_spin_lock_off >= 0:
        memcpy(&res_word, dst + m.res_spin_lock_off, SIZEOF_BPF_RES_SPIN_LOCK)
    for k in range(m.nkptrs):
        memcpy(&kept[k], dst + m.kptr_off[k], 8)
    for k in range(m.nlists):
        memcpy(&heads[k * SIZEOF_BPF_LIST_HEAD], dst + m.list_off[k], SIZEOF_BPF_LIST_HEAD)
    if b >= 0 and (a < 0 or b < a):
        a, b, asz, bsz = b, a, bsz, asz
    if a >= 0:
        memcpy(dst, src, <uint32_t>a)
        at = <uint32_t>a + asz
    if b >= 0:
        memcpy(dst + at, src + at, <uint32_t>b - at)
        at = <uint32_t>b + bsz
    memcpy(dst + at, src + at, m.value_size - at)
    for k in range(m.nkptrs):
        memcpy(dst + m.kptr_off[k], &kept[k], 8)
    for k in range(m.nlists):
        memcpy(dst + m.list_off[k], &heads[k * SIZEOF_BPF_LIST_HEAD], SIZEOF_BPF_LIST_HEAD)
    if m.res_spin_lock_off >= 0:
        memcpy(dst + m.res_spin_lock_off, &res_word, SIZEOF_BPF_RES_SPIN_LOCK)
    if m.wq_off >= 0:
        # the value's bpf_wq reads as zeros (its work item is MapStore.wqs')
        memset(dst + m.wq_off, 0, SIZEOF_BPF_WQ)
    if m.task_work_off >= 0:
        # and so does its bpf_task_work (MapStore.tws)
        memset(dst + m.task_work_off, 0, SIZEOF_BPF_TASK_WORK)


cdef void map_zero_fields(MapStore* m, uint8_t* value) noexcept nogil:
    """check_and_init_map_value: the lock and timer as a fresh element has them."""
    if m.spin_lock_off >= 0:
        memset(value + m.spin_lock_off, 0, SIZEOF_BPF_SPIN_LOCK)
    if m.timer_off >= 0:
        memset(value + m.timer_off, 0, SIZEOF_BPF_TIMER)
    if m.res_spin_lock_off >= 0:
        memset(value + m.res_spin_lock_off, 0, SIZEOF_BPF_RES_SPIN_LOCK)
    if m.wq_off >= 0:
        memset(value + m.wq_off, 0, SIZEOF_BPF_WQ)
    if m.task_work_off >= 0:
        memset(value + m.task_work_off, 0, SIZEOF_BPF_TASK_WORK)
    cdef int k
    for k in range(m.nkptrs):
        memset(value + m.kptr_off[k], 0, 8)
    for k in range(m.nlists):
        memset(value + m.list_off[k], 0, SIZEOF_BPF_LIST_HEAD)


cdef void map_free_copy(MapStore* m, uint8_t* value) noexcept nogil:
    """bpf_obj_free_fields' kptrs and list heads of one copy of a value: each object
    they hold is dropped, a kptr left NULL, a list empty."""
    cdef int k
    cdef uint64_t p
    for k in range(m.nkptrs):
        p = atomic_xchg64(<uint64_t*>(value + m.kptr_off[k]), 0)
        if p:
            obj_drop(p)
    if m.nlists:
        map_free_lists(m, value)


cdef void map_free_objects(MapStore* m, int32_t e) noexcept nogil:
    """map_free_copy of every CPU's copy of element ``e``."""
    cdef uint32_t c
    for c in range(m.ncpu):
        map_free_copy(m, map_value(m, e, c))


cdef void map_copy_locked(MapStore* m, uint8_t* dst, const uint8_t* src,
                          bint to_user) noexcept nogil:
    """copy_map_value_locked: the copy under the element's own bpf_spin_lock (the
    element is ``src`` for a lookup, ``to_user``, else ``dst``)."""
    cdef int* word = <int*>((src if to_user else dst) + m.spin_lock_off)
    map_lock(word)
    map_copy_value(m, dst, src)
    map_unlock(word)
    if to_user:
        map_zero_fields(m, dst)


cdef int map_update(MapStore* m, const uint8_t* key, const uint8_t* value, uint64_t flags,
                    int64_t cpu, uint32_t run_cpu) noexcept nogil:
    """Store ``value`` under ``key``; 0 or a negative errno, as the kernel's update.

    ``cpu`` >= 0 writes that CPU's copy of a per-CPU value (a program's update: a new
    element's other copies are zeroed); -1 writes every copy from ``value``, which then
    holds ncpu values of ``stride`` bytes (the syscall's layout).  BPF_F_LOCK (a value
    with a bpf_spin_lock only) copies into an existing element under its lock.
    ``run_cpu`` is the CPU the update runs on, whose lists an LRU map takes from.
    """
    cdef int32_t e, prev
    cdef int rc = 0
    cdef uint32_t c
    cdef bint in_place = False
    cdef uint64_t lock = flags & BPF_F_LOCK
    flags &= ~(<uint64_t>BPF_F_LOCK)
    if flags > BPF_EXIST or (lock and m.spin_lock_off < 0):
        return -EINVAL
    if m.type == BPF_MAP_TYPE_LPM_TRIE:
        return _lpm_update(m, key, value, flags)
    if not _is_hash(m):
        e = map_find(m, key)
        if e == NO_ELEM:
            return -E2BIG
        if flags == BPF_NOEXIST:
            return -EEXIST
    else:
        e = _hash_find(m, key, &prev) if lock else NO_ELEM
        if e != NO_ELEM:
            # htab_map_update_elem: BPF_F_LOCK updates an existing element in place
            if flags == BPF_NOEXIST:
                return -EEXIST
        else:
            # a per-CPU hash writes an existing element in place (pcpu_copy_value)
            in_place = (m.type == BPF_MAP_TYPE_PERCPU_HASH or
                        m.type == BPF_MAP_TYPE_LRU_PERCPU_HASH) and \
                map_holds_objects(m) and _hash_find(m, key, &prev) != NO_ELEM
            if _is_lru(m):
                e = _lru_update(m, key, flags, run_cpu, &rc)
            else:
                e = _hash_update(m, key, flags, &rc)
            if e == NO_ELEM:
                return rc
            if not lock and not in_place and map_has_fields(m):
                # the kernel replaces the element by a new one: its lock and timer are
                # fresh, the old one's objects dropped
                if map_holds_objects(m):
                    map_free_objects(m, e)
                map_zero_fields(m, map_value(m, e, 0))
                timer_free(m, e)
    if lock:
        map_copy_locked(m, map_value(m, e, 0), value, False)
    elif map_has_fields(m):
        if cpu >= 0:
            map_copy_value(m, map_value(m, e, <uint32_t>cpu), value)
        else:
            for c in range(m.ncpu):
                map_copy_value(m, map_value(m, e, c), value + <size_t>c * m.stride)
        # array_map_update_elem: bpf_obj_free_fields on the old value's timer
        timer_free(m, e)
    elif cpu >= 0:
        memcpy(map_value(m, e, <uint32_t>cpu), value, m.value_size)
    else:
        for c in range(m.ncpu):
            memcpy(map_value(m, e, c), value + <size_t>c * m.stride, m.value_size)
    if map_holds_objects(m) and (not _is_hash(m) or in_place):
        # array_map_update_elem, pcpu_copy_value: bpf_obj_free_fields of the copy
        # written (a program's update of a per-CPU value: its CPU's)
        if cpu >= 0:
            map_free_copy(m, map_value(m, e, <uint32_t>cpu))
        else:
            map_free_objects(m, e)
    return 0


cdef int map_delete(MapStore* m, const uint8_t* key) noexcept nogil:
    cdef int32_t e, prev
    if m.type == BPF_MAP_TYPE_LPM_TRIE:
        return _lpm_delete(m, key)
    if m.type == BPF_MAP_TYPE_SOCKMAP:
        return sock_map_delete(m, key)
    if not _is_hash(m):
        return -EINVAL
    e = _hash_find(m, key, &prev)
    if e == NO_ELEM:
        return -ENOENT
    _hash_remove(m, e, prev)
    return 0


cdef int map_next_key(MapStore* m, const uint8_t* key, uint8_t* out) noexcept nogil:
    """BPF_MAP_GET_NEXT_KEY: the key after ``key`` (NULL or missing: the first)."""
    cdef int32_t e = NO_ELEM, prev
    cdef uint32_t index, bucket
    if m.type == BPF_MAP_TYPE_LPM_TRIE:
        return _lpm_next_key(m, key, out)
    if not _is_hash(m):
        index = 0 if key == NULL else _le32(key)
        index = 0 if key == NULL or index >= m.max_entries else index + 1
        if index >= m.max_entries:
            return -ENOENT
        memcpy(out, &index, 4)
        return 0
    if key != NULL:
        e = _hash_find(m, key, &prev)
    if e != NO_ELEM and m.next[e] != NO_ELEM:
        e = m.next[e]
    else:
        bucket = 0
        if e != NO_ELEM:
            bucket = map_bucket(m, key) + 1
        e = NO_ELEM
        while bucket < m.n_buckets and e == NO_ELEM:
            e = map_bucket_head(m, bucket)
            bucket += 1
        if e == NO_ELEM:
            return -ENOENT
    memcpy(out, m.keys + <size_t>e * m.key_size, m.key_size)
    return 0


# --- LPM tries: the kernel's lpm_trie.c, with nodes and values in preallocated arrays ---
# A key is a u32 prefixlen then data_size bytes (big-endian bit order).  Nodes are
# 2 * max_entries (a real node per entry, an intermediate node per fork), their data in
# ``keys``; values are max_entries slots, free ones chained through ``next``.

cdef inline uint32_t _lpm_bit(const uint8_t* data, uint32_t index) noexcept nogil:
    return (data[index >> 3] >> (7 - (index & 7))) & 1


cdef uint32_t _lpm_match(MapStore* m, int32_t n, const uint8_t* key) noexcept nogil:
    """How many leading bits of node ``n`` and ``key`` agree, at most both prefixes."""
    cdef uint32_t limit = m.nodes[n].prefixlen, plen = 0, i
    cdef uint8_t x
    cdef const uint8_t* a = _lpm_data(m, n)
    if _le32(key) < limit:
        limit = _le32(key)
    for i in range(m.data_size):
        x = a[i] ^ key[4 + i]
        if x == 0:
            plen += 8
        else:
            while not (x & 0x80):
                plen += 1
                x <<= 1
            break
    return plen if plen < limit else limit


cdef int32_t _lpm_lookup(MapStore* m, const uint8_t* key) noexcept nogil:
    cdef int32_t n = m.root, found = NO_ELEM
    cdef uint32_t ml
    if _le32(key) > m.data_size * 8:
        return NO_ELEM
    while n != NO_ELEM:
        ml = _lpm_match(m, n, key)
        if ml == m.data_size * 8:
            found = n
            break
        if ml < m.nodes[n].prefixlen:
            break
        if not (m.nodes[n].flags & LPM_IM):
            found = n
        n = m.nodes[n].child[_lpm_bit(key + 4, m.nodes[n].prefixlen)]
    return m.nodes[found].value if found != NO_ELEM else NO_ELEM


cdef int32_t _lpm_node(MapStore* m, uint32_t prefixlen, const uint8_t* data,
                       bint real) noexcept nogil:
    cdef int32_t n = m.node_free
    if n != NO_ELEM:
        m.node_free = m.nodes[n].child[0]
    else:                   # the trie's nodes are 2 * max_entries: one is always left
        n = <int32_t>m.node_hwm
        m.node_hwm += 1
    m.nodes[n].child[0] = m.nodes[n].child[1] = NO_ELEM
    m.nodes[n].prefixlen = prefixlen
    m.nodes[n].flags = 0 if real else LPM_IM
    m.nodes[n].value = NO_ELEM
    if real:
        m.nodes[n].value = _elem_take(m)
    memcpy(_lpm_data(m, n), data, m.data_size)
    return n


cdef inline int32_t _elem_take(MapStore* m) noexcept nogil:
    # the element a free list threaded through all of them in index order would give:
    # the last one freed, else the first never taken (an element is touched, so made
    # resident, only when used); NO_ELEM when all are in use
    cdef int32_t e = m.free_head
    if e != NO_ELEM:
        m.free_head = m.next[e]
    elif m.elem_hwm < m.max_entries:
        e = <int32_t>m.elem_hwm
        m.elem_hwm += 1
    return e


cdef void _lpm_free(MapStore* m, int32_t n) noexcept nogil:
    if m.nodes[n].value != NO_ELEM:
        m.next[m.nodes[n].value] = m.free_head
        m.free_head = m.nodes[n].value
    m.nodes[n].child[0] = m.node_free
    m.node_free = n


cdef inline int _lpm_add(MapStore* m, uint64_t flags) noexcept nogil:
    # the kernel's trie_check_add_elem: a new entry
    if flags == BPF_EXIST:
        return -ENOENT
    if m.count == m.max_entries:
        return -ENOSPC
    m.count += 1
    return 0


cdef int _lpm_update(MapStore* m, const uint8_t* key, const uint8_t* value,
                     uint64_t flags) noexcept nogil:
    cdef uint32_t plen = _le32(key), ml = 0, maxp = m.data_size * 8
    cdef int32_t* slot = &m.root
    cdef int32_t n = m.root, im, new
    cdef int rc
    cdef uint32_t bit
    if plen > maxp:
        return -EINVAL
    while n != NO_ELEM:
        ml = _lpm_match(m, n, key)
        if m.nodes[n].prefixlen != ml or m.nodes[n].prefixlen == plen or m.nodes[n].prefixlen == maxp:
            break
        slot = &m.nodes[n].child[_lpm_bit(key + 4, m.nodes[n].prefixlen)]
        n = slot[0]
    if n != NO_ELEM and m.nodes[n].prefixlen == ml:
        # the same prefix: the node takes the key's data and the value
        if not (m.nodes[n].flags & LPM_IM):
            if flags == BPF_NOEXIST:
                return -EEXIST
        else:
            rc = _lpm_add(m, flags)
            if rc:
                return rc
            m.nodes[n].flags = 0
            m.nodes[n].value = _elem_take(m)
        memcpy(_lpm_data(m, n), key + 4, m.data_size)
        memcpy(map_value(m, m.nodes[n].value, 0), value, m.value_size)
        return 0
    rc = _lpm_add(m, flags)
    if rc:
        return rc
    new = _lpm_node(m, plen, key + 4, True)
    memcpy(map_value(m, m.nodes[new].value, 0), value, m.value_size)
    if n == NO_ELEM:
        slot[0] = new
    elif ml == plen:
        # the new prefix covers the node: it goes in between
        m.nodes[new].child[_lpm_bit(_lpm_data(m, n), ml)] = n
        slot[0] = new
    else:
        im = _lpm_node(m, ml, _lpm_data(m, n), False)
        bit = _lpm_bit(key + 4, ml)
        m.nodes[im].child[bit] = new
        m.nodes[im].child[1 - bit] = n
        slot[0] = im
    return 0


cdef int _lpm_delete(MapStore* m, const uint8_t* key) noexcept nogil:
    cdef uint32_t plen = _le32(key), ml = 0
    cdef int32_t* trim = &m.root
    cdef int32_t* trim2 = trim
    cdef int32_t n = m.root, parent = NO_ELEM
    cdef LpmNode* p
    if plen > m.data_size * 8:
        return -EINVAL
    while n != NO_ELEM:
        ml = _lpm_match(m, n, key)
        if m.nodes[n].prefixlen != ml or m.nodes[n].prefixlen == plen:
            break
        parent = n
        trim2 = trim
        trim = &m.nodes[n].child[_lpm_bit(key + 4, m.nodes[n].prefixlen)]
        n = trim[0]
    if (n == NO_ELEM or m.nodes[n].prefixlen != plen or m.nodes[n].prefixlen != ml
            or m.nodes[n].flags & LPM_IM):
        return -ENOENT
    m.count -= 1
    if m.nodes[n].child[0] != NO_ELEM and m.nodes[n].child[1] != NO_ELEM:
        # a fork stays, as an intermediate node
        m.next[m.nodes[n].value] = m.free_head
        m.free_head = m.nodes[n].value
        m.nodes[n].value = NO_ELEM
        m.nodes[n].flags = LPM_IM
        return 0
    if (parent != NO_ELEM and m.nodes[parent].flags & LPM_IM
            and m.nodes[n].child[0] == NO_ELEM and m.nodes[n].child[1] == NO_ELEM):
        # a leaf under an intermediate node: the node's other child takes its place
        p = &m.nodes[parent]
        trim2[0] = p.child[1] if p.child[0] == n else p.child[0]
        _lpm_free(m, parent)
        _lpm_free(m, n)
        return 0
    trim[0] = m.nodes[n].child[0] if m.nodes[n].child[0] != NO_ELEM else m.nodes[n].child[1]
    _lpm_free(m, n)
    return 0


cdef int _lpm_next_key(MapStore* m, const uint8_t* key, uint8_t* out) noexcept nogil:
    """The kernel's order: postorder, so more specific prefixes come first."""
    cdef int32_t stack[2049]
    cdef int32_t n, parent, search = m.root, found = NO_ELEM
    cdef int sp = -1
    cdef uint32_t ml
    if search == NO_ELEM:
        return -ENOENT
    if key != NULL and _le32(key) <= m.data_size * 8:
        n = search
        while n != NO_ELEM:
            sp += 1
            stack[sp] = n
            ml = _lpm_match(m, n, key)
            if m.nodes[n].prefixlen != ml or m.nodes[n].prefixlen == _le32(key):
                break
            n = m.nodes[n].child[_lpm_bit(key + 4, m.nodes[n].prefixlen)]
        if n != NO_ELEM and m.nodes[n].prefixlen == _le32(key) and not (m.nodes[n].flags & LPM_IM):
            search = NO_ELEM
            while sp > 0:
                parent = stack[sp - 1]
                if m.nodes[parent].child[0] == n and m.nodes[parent].child[1] != NO_ELEM:
                    search = m.nodes[parent].child[1]
                    break
                if not (m.nodes[parent].flags & LPM_IM):
                    found = parent
                    break
                n = parent
                sp -= 1
            if search == NO_ELEM and found == NO_ELEM:
                return -ENOENT
    n = search if found == NO_ELEM else NO_ELEM
    while n != NO_ELEM:                  # the leftmost real node under ``search``
        if m.nodes[n].flags & LPM_IM:
            n = m.nodes[n].child[0]
        else:
            found = n
            n = m.nodes[n].child[0]
            if n == NO_ELEM:
                n = m.nodes[found].child[1]
    memcpy(out, &m.nodes[found].prefixlen, 4)
    memcpy(out + 4, _lpm_data(m, found), m.data_size)
    return 0


# --- queues and stacks (kernel/bpf/queue_stack_maps.c): max_entries value slots used
# as a ring, the values held being those from cons_pos (the oldest) up to prod_pos ---

cdef int qs_push(MapStore* m, const uint8_t* value, uint64_t flags) noexcept nogil:
    """queue_stack_map_push_elem: a full map refuses (E2BIG) unless ``flags`` is
    BPF_EXIST, which drops its oldest value; any other flag is EINVAL."""
    if flags & BPF_NOEXIST or flags > BPF_EXIST:
        return -EINVAL
    if m.prod_pos - m.cons_pos == m.max_entries:
        if not flags & BPF_EXIST:
            return -E2BIG
        m.cons_pos += 1
    memcpy(map_value(m, <int32_t>(m.prod_pos % m.max_entries), 0), value, m.value_size)
    m.prod_pos += 1
    return 0


cdef int qs_take(MapStore* m, uint8_t* out, bint remove) noexcept nogil:
    """__queue_map_get and __stack_map_get: copy the oldest (queue) or newest (stack)
    value to ``out``, and with ``remove`` pop it; -ENOENT when empty (``out`` zeroed)."""
    cdef uint64_t pos
    if m.prod_pos == m.cons_pos:
        memset(out, 0, m.value_size)
        return -ENOENT
    if m.type == BPF_MAP_TYPE_QUEUE:
        pos = m.cons_pos
        m.cons_pos += remove
    else:
        pos = m.prod_pos - 1
        m.prod_pos -= remove
    memcpy(out, map_value(m, <int32_t>(pos % m.max_entries), 0), m.value_size)
    return 0


# --- bloom filters (kernel/bpf/bloom_filter.c): a bitset of a power of two bits; a value
# sets (push) or tests (peek) bit jhash(value, seed + i) & mask for each hash function i.
# pyebpf's seed is 0, the kernel's too with BPF_F_ZERO_SEED (else random). jhash equals
# the kernel's jhash2 for values of whole words. ---

cdef inline uint32_t _bloom_bit(MapStore* m, const uint8_t* value, uint32_t i) noexcept nogil:
    return jhash(value, m.value_size, i) & m.bloom_mask


cdef int bloom_push(MapStore* m, const uint8_t* value, uint64_t flags) noexcept nogil:
    """bloom_map_push_elem: only BPF_ANY."""
    cdef uint32_t i, h
    if flags != BPF_ANY:
        return -EINVAL
    for i in range(m.bloom_hashes):
        h = _bloom_bit(m, value, i)
        m.values[h >> 3] |= 1 << (h & 7)
    return 0


cdef int bloom_peek(MapStore* m, const uint8_t* value) noexcept nogil:
    """bloom_map_peek_elem: 0 when every bit of ``value`` is set (maybe present),
    -ENOENT when one is not (certainly absent)."""
    cdef uint32_t i, h
    for i in range(m.bloom_hashes):
        h = _bloom_bit(m, value, i)
        if not m.values[h >> 3] & (1 << (h & 7)):
            return -ENOENT
    return 0


cdef void map_free(MapStore* m) noexcept nogil:
    cdef int32_t e
    if m != NULL and map_holds_objects(m):
        # bpf_map_free_record's fields: the objects the elements still hold
        for e in range(<int32_t>(m.values_len // (<size_t>m.ncpu * m.stride))):
            map_free_objects(m, e)
    if m != NULL:
        if m.timers != NULL or m.wqs != NULL or m.tws != NULL:
            timers_detach(m)
        store_free(m.st_nr)
        store_free(m.st_hash)
        store_free(m.progs)
        store_free(m.lru_prev)
        store_free(m.lru_next)
        store_free(m.lru_ref)
        store_free(m.lru_type)
        store_free(m.lru_cpu)
        store_free(m.lru_counts)
        store_free(m.lru_rotation)
        store_free(m.lru_steal)
        store_free(m.lru_untouched)
        store_free(m.nodes)
        store_free(m.inner)
        store_free(m.perf_cpu)
        store_free(m.counters)
        store_free(m.events)
        store_free(m.values)
        store_free(m.keys)
        store_free(m.next)
        store_free(m.buckets)
        store_free(m.bucket_locks)
        arena_release(m.arena)
        free(m)


# --- creating storage ---------------------------------------------------------------

cdef bint _meta_equal(MapStore* a, MapStore* b):
    # the kernel's bpf_map_meta_equal; arrays (array_map_meta_equal) also compare
    # max_entries unless the template is BPF_F_INNER_MAP
    return (a.type == b.type and a.key_size == b.key_size and a.value_size == b.value_size
            and a.flags == b.flags
            and (a.type != BPF_MAP_TYPE_ARRAY or a.flags & BPF_F_INNER_MAP
                 or a.max_entries == b.max_entries))


_HASHES = (BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_PERCPU_HASH, BPF_MAP_TYPE_LRU_HASH,
           BPF_MAP_TYPE_LRU_PERCPU_HASH, BPF_MAP_TYPE_HASH_OF_MAPS)
_ARRAYS = (BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_PERCPU_ARRAY, BPF_MAP_TYPE_PROG_ARRAY,
           BPF_MAP_TYPE_ARRAY_OF_MAPS, BPF_MAP_TYPE_PERF_EVENT_ARRAY,
           BPF_MAP_TYPE_CGROUP_ARRAY)
_QUEUES = (BPF_MAP_TYPE_QUEUE, BPF_MAP_TYPE_STACK)
_PERCPU = (BPF_MAP_TYPE_PERCPU_HASH, BPF_MAP_TYPE_PERCPU_ARRAY, BPF_MAP_TYPE_LRU_PERCPU_HASH)
_PROG_ACCESS = BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG
_ACCESS_FLAGS = BPF_F_RDONLY | BPF_F_WRONLY | _PROG_ACCESS        # BPF_F_ACCESS_MASK
_HASH_FLAGS = BPF_F_NO_PREALLOC | BPF_F_NUMA_NODE | _ACCESS_FLAGS | BPF_F_ZERO_SEED
_FD_ARRAY_FLAGS = BPF_F_NUMA_NODE | BPF_F_RDONLY | BPF_F_WRONLY   # fd_array_map_alloc_check
_SOCK_MAPS = (BPF_MAP_TYPE_SOCKMAP, BPF_MAP_TYPE_SOCKHASH)
# the flags each map type takes (its *_CREATE_FLAG_MASK)
_CREATE_FLAGS = {
    BPF_MAP_TYPE_HASH: _HASH_FLAGS, BPF_MAP_TYPE_PERCPU_HASH: _HASH_FLAGS,
    BPF_MAP_TYPE_HASH_OF_MAPS: _HASH_FLAGS,
    BPF_MAP_TYPE_LRU_HASH: _HASH_FLAGS | BPF_F_NO_COMMON_LRU,
    BPF_MAP_TYPE_LRU_PERCPU_HASH: _HASH_FLAGS | BPF_F_NO_COMMON_LRU,
    BPF_MAP_TYPE_ARRAY: BPF_F_NUMA_NODE | BPF_F_MMAPABLE | _ACCESS_FLAGS | BPF_F_INNER_MAP,
    BPF_MAP_TYPE_PERCPU_ARRAY: _ACCESS_FLAGS,
    BPF_MAP_TYPE_PROG_ARRAY: _FD_ARRAY_FLAGS, BPF_MAP_TYPE_ARRAY_OF_MAPS: _FD_ARRAY_FLAGS,
    BPF_MAP_TYPE_PERF_EVENT_ARRAY: _FD_ARRAY_FLAGS, BPF_MAP_TYPE_CGROUP_ARRAY: _FD_ARRAY_FLAGS,
    BPF_MAP_TYPE_LPM_TRIE: BPF_F_NO_PREALLOC | BPF_F_NUMA_NODE | _ACCESS_FLAGS,
    BPF_MAP_TYPE_STACK_TRACE: BPF_F_NUMA_NODE | BPF_F_RDONLY | BPF_F_WRONLY,
    BPF_MAP_TYPE_RINGBUF: BPF_F_NUMA_NODE, BPF_MAP_TYPE_USER_RINGBUF: BPF_F_NUMA_NODE,
    BPF_MAP_TYPE_QUEUE: BPF_F_NUMA_NODE | _ACCESS_FLAGS,
    BPF_MAP_TYPE_BLOOM_FILTER: BPF_F_NUMA_NODE | BPF_F_ZERO_SEED | _ACCESS_FLAGS,
    BPF_MAP_TYPE_STACK: BPF_F_NUMA_NODE | _ACCESS_FLAGS,
    BPF_MAP_TYPE_SK_STORAGE: BPF_F_NO_PREALLOC | BPF_F_CLONE,
    BPF_MAP_TYPE_TASK_STORAGE: BPF_F_NO_PREALLOC | BPF_F_CLONE,
    BPF_MAP_TYPE_INODE_STORAGE: BPF_F_NO_PREALLOC | BPF_F_CLONE,
    BPF_MAP_TYPE_CGRP_STORAGE: BPF_F_NO_PREALLOC | BPF_F_CLONE,
    # SOCK_CREATE_FLAG_MASK (net/core/sock_map.c)
    BPF_MAP_TYPE_SOCKMAP: BPF_F_NUMA_NODE | BPF_F_RDONLY | BPF_F_WRONLY,
    BPF_MAP_TYPE_SOCKHASH: BPF_F_NUMA_NODE | BPF_F_RDONLY | BPF_F_WRONLY,
    # array_map_alloc_check: ARRAY_CREATE_FLAG_MASK less those of plain arrays
    BPF_MAP_TYPE_REUSEPORT_SOCKARRAY: BPF_F_NUMA_NODE | _ACCESS_FLAGS,
    # DEV_CREATE_FLAG_MASK (kernel/bpf/devmap.c), cpu_map_alloc, xsk_map_alloc,
    # LOCAL_STORAGE_CREATE_FLAG_MASK (kernel/bpf/local_storage.c)
    BPF_MAP_TYPE_DEVMAP: BPF_F_NUMA_NODE | BPF_F_RDONLY | BPF_F_WRONLY,
    BPF_MAP_TYPE_DEVMAP_HASH: BPF_F_NUMA_NODE | BPF_F_RDONLY | BPF_F_WRONLY,
    BPF_MAP_TYPE_CPUMAP: BPF_F_NUMA_NODE,
    BPF_MAP_TYPE_XSKMAP: BPF_F_NUMA_NODE | BPF_F_RDONLY | BPF_F_WRONLY,
    BPF_MAP_TYPE_CGROUP_STORAGE: BPF_F_NUMA_NODE | _ACCESS_FLAGS,
    BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE: BPF_F_NUMA_NODE | _ACCESS_FLAGS,
}
_DEV_MAPS = (BPF_MAP_TYPE_DEVMAP, BPF_MAP_TYPE_DEVMAP_HASH)
_CGROUP_STORAGE = (BPF_MAP_TYPE_CGROUP_STORAGE, BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE)
# the XDP redirect targets and cgroup storage (devmap.pxi): created, run beside, never
# holding anything a tc program could reach but a devmap's {ifindex, prog id}
_XDP_MAPS = _DEV_MAPS + (BPF_MAP_TYPE_CPUMAP, BPF_MAP_TYPE_XSKMAP) + _CGROUP_STORAGE
_LOCAL_STORAGE = (BPF_MAP_TYPE_SK_STORAGE, BPF_MAP_TYPE_TASK_STORAGE, BPF_MAP_TYPE_CGRP_STORAGE,
                  BPF_MAP_TYPE_INODE_STORAGE)
# what an inner map may be: the data maps programs read through map helpers
_INNER_KINDS = (BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_PERCPU_HASH,
                BPF_MAP_TYPE_PERCPU_ARRAY, BPF_MAP_TYPE_LRU_HASH, BPF_MAP_TYPE_LRU_PERCPU_HASH,
                BPF_MAP_TYPE_LPM_TRIE)


cdef _check_create(object kind, uint32_t key_size, uint32_t value_size, uint32_t max_entries,
                   uint32_t flags, object tmpl, uint64_t map_extra):
    """BPF_MAP_CREATE's refusals, in the kernel's order for each type (6.18)."""
    name = kind.name
    if kind not in _HASHES + _ARRAYS + _QUEUES + (BPF_MAP_TYPE_LPM_TRIE, BPF_MAP_TYPE_RINGBUF,
                                                  BPF_MAP_TYPE_USER_RINGBUF,
                                                  BPF_MAP_TYPE_STACK_TRACE,
                                                  BPF_MAP_TYPE_BLOOM_FILTER) + _LOCAL_STORAGE \
            + _SOCK_MAPS + _XDP_MAPS + (BPF_MAP_TYPE_REUSEPORT_SOCKARRAY,
                                        BPF_MAP_TYPE_ARENA):
        raise MapError(EINVAL, f"map type {name} is not supported by pyebpf yet")
    if map_extra and kind != BPF_MAP_TYPE_BLOOM_FILTER and kind != BPF_MAP_TYPE_ARENA:
        raise MapError(EINVAL, f"{name} takes no map_extra")        # map_create
    if kind in (BPF_MAP_TYPE_ARRAY_OF_MAPS, BPF_MAP_TYPE_HASH_OF_MAPS) and tmpl is None:
        raise MapError(EINVAL, f"{name} needs an inner map template (inner_map=)")
    if kind not in (BPF_MAP_TYPE_ARRAY_OF_MAPS, BPF_MAP_TYPE_HASH_OF_MAPS) and tmpl is not None:
        raise MapError(EINVAL, f"{name} takes no inner map")
    if flags & BPF_F_RDONLY and flags & BPF_F_WRONLY:        # bpf_get_file_flag
        raise MapError(EINVAL, "a map is not both BPF_F_RDONLY and BPF_F_WRONLY")
    if kind in _CGROUP_STORAGE:
        # cgroup_storage_map_alloc, which checks the sizes before the flags: a key of a
        # u64 cgroup id, or struct bpf_cgroup_storage_key (16 bytes: with the attach type)
        if key_size not in (8, 16) or value_size == 0:
            raise MapError(EINVAL, f"{name} has an 8- or 16-byte key and a value")
        limit = MAX_LOCAL_STORAGE_VALUE_SIZE
        if kind == BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE:
            limit = min(limit, PCPU_MIN_UNIT_SIZE)
        if value_size > limit:
            raise MapError(E2BIG, f"a {name} value is at most {limit} bytes")
        if flags & ~_CREATE_FLAGS[kind] or flags & _PROG_ACCESS == _PROG_ACCESS or max_entries:
            raise MapError(EINVAL, f"{name} has max_entries 0 and flags of "
                                   f"{_CREATE_FLAGS[kind]:#x} only, got {flags:#x}")
        return
    if kind == BPF_MAP_TYPE_ARENA:
        _check_arena(key_size, value_size, max_entries, flags, map_extra)
        return
    if (flags & ~_CREATE_FLAGS[kind] or flags & _PROG_ACCESS == _PROG_ACCESS
            or (kind in _PERCPU and flags & BPF_F_NUMA_NODE)):
        # each type's alloc_check and its *_CREATE_FLAG_MASK; bpf_map_flags_access_ok;
        # per-CPU maps are on every node
        raise MapError(EINVAL, f"flags {flags:#x} are not valid for {name}")
    if kind == BPF_MAP_TYPE_RINGBUF or kind == BPF_MAP_TYPE_USER_RINGBUF:
        if key_size or value_size or max_entries & (max_entries - 1) or max_entries % 4096:
            raise MapError(EINVAL, "a ring buffer has key and value size 0, no flags and a "
                                   "power-of-2 multiple of 4096 as max_entries")
        return
    if kind == BPF_MAP_TYPE_BLOOM_FILTER:
        # bloom_map_alloc: the low 4 bits of map_extra are the number of hash functions
        if key_size or value_size == 0 or max_entries == 0 or map_extra & ~0xF:
            raise MapError(EINVAL, "a bloom filter has no key, a value, max_entries and "
                                   "at most 15 hash functions (map_extra)")
        return
    if kind in _LOCAL_STORAGE:
        # bpf_local_storage_map_alloc_check (the same for sockets, tasks, cgroups and
        # inodes);
        # its BTF (an int key, the value's type) is the ELF object's, which Map.create
        # does not take
        if not flags & BPF_F_NO_PREALLOC or max_entries or key_size != 4 or value_size == 0:
            raise MapError(EINVAL, f"{name} has BPF_F_NO_PREALLOC, a 4-byte key (an fd), "
                                   f"a value and max_entries 0")
        if value_size > MAX_LOCAL_STORAGE_VALUE_SIZE:
            raise MapError(E2BIG, f"a local storage value is at most "
                                  f"{MAX_LOCAL_STORAGE_VALUE_SIZE} bytes")
        return
    if kind in _SOCK_MAPS:
        # sock_map_alloc, sock_hash_alloc: a value is a socket's fd (4 bytes) or, read
        # back, its cookie (8); a sockmap's key is its u32 index
        if (max_entries == 0 or value_size not in (4, 8) or
                (key_size != 4 if kind == BPF_MAP_TYPE_SOCKMAP else key_size == 0)):
            raise MapError(EINVAL, f"{name} has max_entries, a 4- or 8-byte value and "
                                   f"{'a 4-byte' if kind == BPF_MAP_TYPE_SOCKMAP else 'a'} key")
        if key_size > MAX_BPF_STACK:
            raise MapError(E2BIG, f"a {name} key is at most {MAX_BPF_STACK} bytes")
        return
    if kind == BPF_MAP_TYPE_REUSEPORT_SOCKARRAY:
        # reuseport_array_alloc_check, then array_map_alloc_check: a value is a socket's
        # fd (4 bytes, or 8) or, read back, its cookie (8); the key a u32 index
        if value_size not in (4, 8) or max_entries == 0 or key_size != 4:
            raise MapError(EINVAL, f"{name} has max_entries, a 4-byte key and a 4- or "
                                   f"8-byte value")
        return
    if kind in _DEV_MAPS + (BPF_MAP_TYPE_CPUMAP, BPF_MAP_TYPE_XSKMAP):
        # dev_map_alloc_check, cpu_map_alloc, xsk_map_alloc: a u32 key; a devmap's value
        # is struct bpf_devmap_val's ifindex, or it and the program fd; a cpumap's
        # struct bpf_cpumap_val's qsize, or it and the program fd; an xskmap's a socket fd
        sizes = [4] if kind == BPF_MAP_TYPE_XSKMAP else [4, 8]
        if max_entries == 0 or key_size != 4 or value_size not in sizes:
            raise MapError(EINVAL, f"{name} has max_entries, a 4-byte key and a "
                                   f"{' or '.join(map(str, sizes))}-byte value")
        if kind == BPF_MAP_TYPE_CPUMAP and max_entries > NR_CPUS:
            raise MapError(E2BIG, f"a CPUMAP has at most NR_CPUS ({NR_CPUS}) entries")
        return
    if kind in _QUEUES:
        # queue_stack_map_alloc_check
        if max_entries == 0 or key_size or value_size == 0:
            raise MapError(EINVAL, f"a {name} has no key, a value and max_entries")
        return
    if max_entries == 0 or value_size == 0 or key_size == 0:
        raise MapError(EINVAL, "key_size, value_size and max_entries must be non-zero")
    if kind in _ARRAYS and key_size != 4:
        raise MapError(EINVAL, f"{name} keys are 4 bytes, not {key_size}")
    if kind in (BPF_MAP_TYPE_PROG_ARRAY, BPF_MAP_TYPE_ARRAY_OF_MAPS, BPF_MAP_TYPE_HASH_OF_MAPS,
                BPF_MAP_TYPE_PERF_EVENT_ARRAY, BPF_MAP_TYPE_CGROUP_ARRAY) and value_size != 4:
        raise MapError(EINVAL, f"{name} values are 4-byte fds, not {value_size}")
    if kind == BPF_MAP_TYPE_STACK_TRACE:
        if key_size != 4 or value_size < 8 or value_size % 8 or value_size // 8 > 127:
            raise MapError(EINVAL, "a stack trace map has 4-byte keys and values of 1 to 127 "
                                   "u64 frames")
        return
    if kind == BPF_MAP_TYPE_LPM_TRIE:
        if not flags & BPF_F_NO_PREALLOC or not 5 <= key_size <= 260:
            raise MapError(EINVAL, "an LPM trie needs BPF_F_NO_PREALLOC and a key of a u32 "
                                   "prefixlen and 1 to 256 data bytes")
        return
    if kind in (BPF_MAP_TYPE_LRU_HASH, BPF_MAP_TYPE_LRU_PERCPU_HASH) and flags & BPF_F_NO_PREALLOC:
        raise MapError(ENOTSUPP, f"{name} is always preallocated (BPF_F_NO_PREALLOC: ENOTSUPP)")


cdef _check_arena(uint32_t key_size, uint32_t value_size, uint32_t max_entries,
                  uint32_t flags, uint64_t map_extra):
    # arena_map_alloc, in its order
    if (key_size or value_size or max_entries == 0 or not flags & BPF_F_MMAPABLE
            or flags & ~(BPF_F_SEGV_ON_FAULT | BPF_F_MMAPABLE | BPF_F_NO_USER_CONV)):
        raise MapError(EINVAL, "an arena has no key or value, max_entries pages, "
                               "BPF_F_MMAPABLE and no flags but BPF_F_SEGV_ON_FAULT and "
                               f"BPF_F_NO_USER_CONV, got flags {flags:#x}")
    if map_extra % PAGE_SIZE:
        raise MapError(EINVAL, f"an arena's map_extra (its user address) is page-aligned, "
                               f"not {map_extra:#x}")
    span = <uint64_t>max_entries * PAGE_SIZE
    if span > _isa.ARENA_MAX_BYTES:
        raise MapError(E2BIG, f"an arena spans at most 4 GiB, not {max_entries} pages")
    if map_extra >> 32 != (map_extra + span - 1) >> 32:
        raise MapError(ERANGE, f"an arena at {map_extra:#x} of {max_entries} pages would "
                               "cross a 4 GiB boundary")


cdef MapStore* _map_alloc(object kind, uint32_t key_size, uint32_t value_size,
                          uint32_t max_entries, uint32_t flags, uint32_t ncpu,
                          MapStore* tmpl, uint64_t map_extra=0) except NULL:
    """Validate like BPF_MAP_CREATE (map_create, the maps' alloc_check) and allocate the storage."""
    cdef MapStore* m
    _check_create(kind, key_size, value_size, max_entries, flags, None if tmpl == NULL else 1,
                  map_extra)
    # a ring buffer's max_entries are bytes, allocated twice over (map_memory.pxi: the
    # pages are only touched as records reach them), as big as agents ask for
    # (netobserv: 128 MiB)
    ring = kind == BPF_MAP_TYPE_RINGBUF or kind == BPF_MAP_TYPE_USER_RINGBUF
    if value_size > (1 << 20) or key_size > 512 or (kind != BPF_MAP_TYPE_ARENA and
                                                    max_entries > ((1 << 30) if ring
                                                                   else (1 << 24))):
        raise MapError(E2BIG, "map too large for pyebpf (value 1 MiB, key 512 B, "
                              "16M entries at most, a ring buffer 1 GiB)")
    if kind == BPF_MAP_TYPE_LRU_HASH or kind == BPF_MAP_TYPE_LRU_PERCPU_HASH:
        if flags & BPF_F_NO_COMMON_LRU:      # the kernel gives each CPU an equal share
            max_entries = (max_entries + ncpu - 1) // ncpu * ncpu
    if kind in _LOCAL_STORAGE:
        # each element is an owner's value, found by the socket's cookie, the task's,
        # the cgroup's or the inode's address
        key_size, max_entries = 8, SK_STORAGE_SOCKETS
    # no other map starts within a kernel struct's size of this one (map_struct.pxi)
    m = <MapStore*>calloc(1, max(sizeof(MapStore), MAP_STRUCT_SPAN))
    if m == NULL:
        raise MemoryError()
    if kind in _DEV_MAPS:
        # dev_map_init_map: a lookup points at the device's own struct bpf_devmap_val
        flags |= BPF_F_RDONLY_PROG
    m.type, m.key_size, m.value_size = kind, key_size, value_size
    m.max_entries, m.flags, m.map_extra = max_entries, flags, map_extra
    m.stride = (value_size + 7) & ~7u
    m.ncpu = ncpu if kind in (BPF_MAP_TYPE_PERCPU_HASH, BPF_MAP_TYPE_PERCPU_ARRAY,
                              BPF_MAP_TYPE_LRU_PERCPU_HASH,
                              BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE) else 1
    m.free_head = m.node_free = NO_ELEM
    m.owner_type = -1
    m.tmpl = tmpl
    m.lru_ncpu = ncpu
    m.bloom_hashes = <uint32_t>map_extra if map_extra else 5
    m.spin_lock_off = m.timer_off = m.wq_off = m.res_spin_lock_off = m.task_work_off = -1
    m.nkptrs = 0
    m.nlists = 0
    m.rb_roots = 0
    try:
        _map_storage(m, kind)
    except MemoryError:
        map_free(m)
        raise
    _map_clear(m, True)
    return m


cdef size_t _page_round(size_t n):
    cdef size_t page = <size_t>sysconf(_SC_PAGESIZE)
    return (n + page - 1) & ~(page - 1)


cdef _map_storage(MapStore* m, object kind):
    cdef uint32_t n = 1
    cdef uint64_t bits
    cdef uint32_t max_entries = m.max_entries, heads
    if kind == BPF_MAP_TYPE_PROG_ARRAY:
        # slots hold programs, which programs can neither read nor write
        m.progs = <ProgCore**>store_zalloc(max_entries, sizeof(ProgCore*))
        return
    if kind == BPF_MAP_TYPE_PERF_EVENT_ARRAY:
        m.perf_cpu = <int32_t*>store_zalloc(max_entries, sizeof(int32_t))
        # per slot: counter, enabled and running times (struct bpf_perf_event_value)
        m.counters = <uint64_t*>store_zalloc(3 * <size_t>max_entries, sizeof(uint64_t))
        return
    if kind == BPF_MAP_TYPE_STACK_TRACE:
        # one stack per bucket, kept from programs: only bpf_get_stackid writes them
        while n < max_entries:
            n <<= 1
        m.n_buckets = n
        m.hidden = True
        m.values_len = <size_t>n * m.value_size
        m.values = <uint8_t*>store_zalloc(m.values_len, 1)
        m.st_nr = <uint32_t*>store_zalloc(n, sizeof(uint32_t))
        m.st_hash = <uint32_t*>store_zalloc(n, sizeof(uint32_t))
        return
    if kind == BPF_MAP_TYPE_ARENA:
        # its pages are a mapping of their own (arena.pxi), no region of a run
        m.hidden = True
        m.arena = arena_new(max_entries, m.map_extra, m.flags & BPF_F_SEGV_ON_FAULT)
        return
    if kind == BPF_MAP_TYPE_BLOOM_FILTER:
        # bloom_map_alloc: max_entries * hashes * 7 / 5 bits (about 1/ln 2 per element
        # and hash), rounded up to a power of two, 64 at least
        bits = <uint64_t>max_entries * m.bloom_hashes // 5 * 7
        if bits > (1 << 27):
            raise MapError(E2BIG, "bloom filter too large for pyebpf (2^27 bits at most)")
        while n < bits or n < 64:
            n <<= 1
        m.bloom_mask = n - 1
        m.hidden = True
        m.values_len = n // 8
        m.values = <uint8_t*>store_zalloc(m.values_len, 1)
        return
    if kind in _QUEUES:
        # values leave only through the helpers' copies
        m.hidden = True
        m.values_len = <size_t>max_entries * m.stride
        m.values = <uint8_t*>store_zalloc(m.values_len, 1)
        return
    if kind in _CGROUP_STORAGE:
        # storage exists per attached cgroup, and pyebpf attaches nothing: no elements
        m.hidden = True
        return
    if kind == BPF_MAP_TYPE_RINGBUF or kind == BPF_MAP_TYPE_USER_RINGBUF:
        m.hidden = True
        m.values_len = 2 * <size_t>max_entries
        m.values = <uint8_t*>store_zalloc(m.values_len, 1)
        return
    m.values_len = <size_t>max_entries * m.ncpu * m.stride
    if m.flags & BPF_F_MMAPABLE:
        # array_map_alloc: an mmapable array's values fill whole pages, which a mapping
        # covers (Map.mmap); programs reach only the first values_len bytes
        m.values = <uint8_t*>store_zalloc_pages(m.values_len)
    else:
        m.values = <uint8_t*>store_zalloc(m.values_len, 1)
    if kind == BPF_MAP_TYPE_CPUMAP:
        # slots of {qsize, prog id}, which tc programs cannot look up (an XSKMAP's
        # {queue_id, inode} they can: its queue_id only, devmap.pxi)
        m.hidden = True
    if (kind == BPF_MAP_TYPE_CGROUP_ARRAY or kind in _SOCK_MAPS
            or kind == BPF_MAP_TYPE_REUSEPORT_SOCKARRAY):
        # each slot's 8 bytes (the stride) hold the id of the cgroup put there, or the
        # cookie of the socket (sockmap.pxi), 0 for none; programs never see the slots
        m.hidden = True
    if kind in (BPF_MAP_TYPE_ARRAY_OF_MAPS, BPF_MAP_TYPE_HASH_OF_MAPS):
        # the values are the inner maps' fds, for the syscall side only
        m.hidden = True
        m.inner = <MapStore**>store_zalloc(max_entries, sizeof(MapStore*))
    if kind == BPF_MAP_TYPE_LPM_TRIE:
        m.data_size = m.key_size - 4
        m.keys = <uint8_t*>store_zalloc(2 * <size_t>max_entries, m.data_size)
        m.nodes = <LpmNode*>store_zalloc(2 * <size_t>max_entries, sizeof(LpmNode))
    elif (kind in _HASHES or kind in _LOCAL_STORAGE or kind == BPF_MAP_TYPE_SOCKHASH
          or kind == BPF_MAP_TYPE_DEVMAP_HASH):
        while n < max_entries:
            n <<= 1
        m.n_buckets = n
        m.keys = <uint8_t*>store_zalloc(max_entries, m.key_size)
        m.buckets = <int32_t*>store_zalloc(n, sizeof(int32_t))
        if kind in (BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_PERCPU_HASH):
            m.bucket_locks = <int*>store_zalloc(n, sizeof(int))
        if kind in (BPF_MAP_TYPE_LRU_HASH, BPF_MAP_TYPE_LRU_PERCPU_HASH):
            heads = lru_heads(m.lru_ncpu, _lru_percpu(m))
            m.lru_prev = <int32_t*>store_zalloc(max_entries + heads, sizeof(int32_t))
            m.lru_next = <int32_t*>store_zalloc(max_entries + heads, sizeof(int32_t))
            m.lru_ref = <uint8_t*>store_zalloc(max_entries, 1)
            m.lru_type = <uint8_t*>store_zalloc(max_entries, 1)
            m.lru_cpu = <uint16_t*>store_zalloc(max_entries, sizeof(uint16_t))
            m.lru_counts = <uint32_t*>store_zalloc(NR_BPF_LRU_LIST_COUNT * <size_t>m.lru_ncpu,
                                              sizeof(uint32_t))
            m.lru_rotation = <int32_t*>store_zalloc(m.lru_ncpu, sizeof(int32_t))
            m.lru_steal = <uint16_t*>store_zalloc(m.lru_ncpu, sizeof(uint16_t))
            m.lru_untouched = <uint32_t*>store_zalloc(m.lru_ncpu, sizeof(uint32_t))
    else:
        return
    m.next = <int32_t*>store_zalloc(max_entries, sizeof(int32_t))


cdef void _map_reset(MapStore* m) noexcept nogil:
    """Empty the storage, as at creation: free lists, empty buckets and trie, closed perf
    slots, ring positions 0 (a perf event array keeps its undrained events; program
    arrays and maps of maps keep their slots, which Map manages)."""
    _map_clear(m, False)


cdef void _map_clear(MapStore* m, bint fresh) noexcept nogil:
    # fresh: the storage is new (map_memory.pxi), zero and untouched, and stays so where it is zero:
    # a big map costs resident memory only for what is used (its elements from the
    # free list or the high-water mark, _elem_take)
    cdef uint32_t k
    cdef size_t used = m.values_len
    if m.next != NULL and m.lru_prev == NULL:
        # elements past the high-water mark were never written
        used = min(used, <size_t>m.elem_hwm * m.ncpu * m.stride)
    if m.values != NULL and not fresh:
        store_zero(m.values, used)
    if m.buckets != NULL and not fresh:
        store_zero(m.buckets, m.n_buckets * sizeof(int32_t))
    m.free_head = m.node_free = NO_ELEM
    m.elem_hwm = m.node_hwm = 0
    if m.perf_cpu != NULL:
        for k in range(m.max_entries):
            m.perf_cpu[k] = -1
        if not fresh:
            store_zero(m.counters, 3 * <size_t>m.max_entries * sizeof(uint64_t))
    if m.st_nr != NULL and not fresh:
        store_zero(m.st_nr, m.n_buckets * sizeof(uint32_t))
    if m.lru_prev != NULL:
        if not fresh:
            # the nodes and keys of the elements it held go back too, so a reload
            # (pin_format.pyx) makes resident only the nodes its pin holds
            store_zero(m.keys, m.max_entries * <size_t>m.key_size)
            store_zero(m.lru_prev, (m.max_entries + <size_t>lru_heads(m.lru_ncpu, _lru_percpu(m)))
                       * sizeof(int32_t))
            store_zero(m.lru_next, (m.max_entries + <size_t>lru_heads(m.lru_ncpu, _lru_percpu(m)))
                       * sizeof(int32_t))
            store_zero(m.lru_ref, m.max_entries)
            store_zero(m.lru_type, m.max_entries)
            store_zero(m.lru_cpu, m.max_entries * sizeof(uint16_t))
        lru_populate(m)         # the LRU's lists hold the free elements
        m.elem_hwm = m.max_entries
    m.root = NO_ELEM
    m.count = 0
    m.cons_pos = m.prod_pos = m.pend_pos = 0
