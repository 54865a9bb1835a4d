# Maps: their storage in C, the map helpers, and the Python Map class.
# Included into pyebpf/_core.pyx.
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
# the kernel's (semantics.md §4.3).  pyebpf always uses seed 0: its order is
# deterministic, where a current kernel's differs per map unless BPF_F_ZERO_SEED is set.

cdef enum:
    MAP_HASH = 1
    MAP_ARRAY = 2
    MAP_PROG_ARRAY = 3
    MAP_PERF_EVENT_ARRAY = 4
    MAP_PERCPU_HASH = 5
    MAP_PERCPU_ARRAY = 6
    MAP_STACK_TRACE = 7
    MAP_LRU_HASH = 9
    MAP_LRU_PERCPU_HASH = 10
    MAP_LPM_TRIE = 11
    MAP_ARRAY_OF_MAPS = 12
    MAP_HASH_OF_MAPS = 13
    MAP_RINGBUF = 27
    NO_ELEM = -1
    LPM_IM = 1                    # an intermediate trie node: no value
    RB_BUSY = 1u << 31            # ring buffer record header bits (BPF_RINGBUF_*_BIT)
    RB_DISCARD = 1u << 30
    RB_HDR = 8
    PERF_EVENTS_MAX = 16 << 20    # bytes of undrained perf events a map keeps
    EAGAIN = 11
    ENOSPC = 28
    EOPNOTSUPP = 95
    REGION_INNER_MAP = 1000       # region names past the program's own maps
    REGION_RB_RECORD = 1001

ctypedef struct LpmNode:
    int32_t child[2]
    uint32_t prefixlen
    uint32_t flags
    int32_t value                 # the value slot, NO_ELEM for intermediate nodes

ctypedef struct MapStore:
    uint32_t type
    uint32_t key_size
    uint32_t value_size
    uint32_t max_entries
    uint32_t flags
    uint32_t stride           # value_size rounded up to 8, as per-CPU values are laid out
    uint32_t ncpu             # copies of each value: the CPU count for per-CPU maps, else 1
    uint8_t* values           # max_entries * ncpu * stride bytes
    size_t values_len
    uint8_t* keys             # hash maps: max_entries * key_size
    int32_t* next             # hash maps: next element in the bucket, or the free list
    int32_t* buckets          # hash maps: first element of each bucket
    uint32_t n_buckets
    int32_t free_head
    uint32_t count
    ProgCore** progs          # program arrays: the program in each slot, or NULL
    int owner_type            # program arrays: the type they serve, -1 before first use
    bint hidden               # the values are no region of a run (maps of maps, ringbuf)
    int32_t* lru_prev         # LRU hashes: recency list, most recent at lru_head
    int32_t* lru_next
    int32_t lru_head, lru_tail
    LpmNode* nodes            # LPM tries: 2 * max_entries nodes, their data in keys
    int32_t root, node_free
    uint32_t data_size
    MapStore** inner          # maps of maps: the inner map of each element, or NULL
    MapStore* tmpl            # maps of maps: the inner map template
    int32_t* perf_cpu         # perf event arrays: each slot's CPU, -1 when not open
    uint64_t* counters        # perf event arrays: each slot's counter (perf_event_read)
    uint8_t* events           # perf event arrays: (u32 cpu, u32 len, bytes) records
    size_t events_len, events_cap
    uint64_t cons_pos, prod_pos, pend_pos   # ring buffers, as the kernel's
    uint32_t* st_nr           # stack trace maps: frames in each bucket's stack, 0 = empty
    uint32_t* st_hash         # stack trace maps: each stored stack's jhash


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


cdef inline uint32_t _le32(const uint8_t* p) noexcept nogil:
    cdef uint32_t w
    memcpy(&w, p, 4)
    return w


cdef inline bint _is_hash(MapStore* m) noexcept nogil:
    return (m.type == MAP_HASH or m.type == MAP_PERCPU_HASH or m.type == MAP_HASH_OF_MAPS
            or _is_lru(m))


cdef inline bint _is_lru(MapStore* m) noexcept nogil:
    return m.type == MAP_LRU_HASH or m.type == MAP_LRU_PERCPU_HASH


cdef inline uint8_t* _value(MapStore* m, int32_t elem, uint32_t cpu) noexcept nogil:
    return m.values + (<size_t>elem * m.ncpu + cpu) * m.stride


cdef int32_t _hash_find(MapStore* m, const uint8_t* key, int32_t* prev) noexcept nogil:
    cdef uint32_t bucket = jhash(key, m.key_size, 0) & (m.n_buckets - 1)
    cdef int32_t e = m.buckets[bucket]
    prev[0] = NO_ELEM
    while e != NO_ELEM:
        if memcmp(m.keys + <size_t>e * m.key_size, key, m.key_size) == 0:
            return e
        prev[0] = e
        e = m.next[e]
    return NO_ELEM


cdef int32_t map_find(MapStore* m, const uint8_t* key) noexcept nogil:
    """The element holding ``key``, or NO_ELEM (arrays: the index when in range; LPM
    tries: the value slot of the longest matching prefix)."""
    cdef uint32_t index
    cdef int32_t prev
    if _is_hash(m):
        return _hash_find(m, key, &prev)
    if m.type == MAP_LPM_TRIE:
        return _lpm_lookup(m, key)
    index = _le32(key)
    return <int32_t>index if index < m.max_entries else NO_ELEM


cdef void _hash_unlink(MapStore* m, int32_t e, int32_t prev) noexcept nogil:
    cdef uint32_t bucket
    if prev == NO_ELEM:
        bucket = jhash(m.keys + <size_t>e * m.key_size, m.key_size, 0) & (m.n_buckets - 1)
        m.buckets[bucket] = m.next[e]
    else:
        m.next[prev] = m.next[e]


cdef void _hash_link(MapStore* m, int32_t e) noexcept nogil:
    cdef uint32_t bucket = jhash(m.keys + <size_t>e * m.key_size, m.key_size, 0) & (m.n_buckets - 1)
    m.next[e] = m.buckets[bucket]
    m.buckets[bucket] = e


# --- LRU: an exact recency list (the kernel's is approximate: per-CPU lists, batches) ---

cdef void _lru_unlink(MapStore* m, int32_t e) noexcept nogil:
    if m.lru_prev[e] == NO_ELEM:
        m.lru_head = m.lru_next[e]
    else:
        m.lru_next[m.lru_prev[e]] = m.lru_next[e]
    if m.lru_next[e] == NO_ELEM:
        m.lru_tail = m.lru_prev[e]
    else:
        m.lru_prev[m.lru_next[e]] = m.lru_prev[e]


cdef void _lru_push(MapStore* m, int32_t e) noexcept nogil:
    m.lru_prev[e] = NO_ELEM
    m.lru_next[e] = m.lru_head
    if m.lru_head != NO_ELEM:
        m.lru_prev[m.lru_head] = e
    m.lru_head = e
    if m.lru_tail == NO_ELEM:
        m.lru_tail = e


cdef void lru_touch(MapStore* m, int32_t e) noexcept nogil:
    _lru_unlink(m, e)
    _lru_push(m, e)


cdef void _hash_remove(MapStore* m, int32_t e, int32_t prev) noexcept nogil:
    _hash_unlink(m, e, prev)
    if _is_lru(m):
        _lru_unlink(m, e)
    m.next[e] = m.free_head
    m.free_head = e
    m.count -= 1


cdef int32_t _lru_pop(MapStore* m) noexcept nogil:
    """A free element, evicting the least recently used one when none is free."""
    cdef int32_t e, prev
    if m.free_head == NO_ELEM:
        e = m.lru_tail
        _hash_find(m, m.keys + <size_t>e * m.key_size, &prev)
        _hash_remove(m, e, prev)
    e = m.free_head
    m.free_head = m.next[e]
    return e


cdef int32_t _hash_update(MapStore* m, const uint8_t* key, uint64_t flags, int* rc) noexcept nogil:
    cdef int32_t e, prev, fresh = NO_ELEM
    if _is_lru(m) and not (m.type == MAP_LRU_PERCPU_HASH and flags == BPF_EXIST_):
        # the kernel takes a fresh element before it looks for the key: even a failing
        # or replacing update of a full LRU map evicts
        fresh = _lru_pop(m)
    e = _hash_find(m, key, &prev)
    if (e == NO_ELEM and flags == BPF_EXIST_) or (e != NO_ELEM and flags == BPF_NOEXIST_):
        if fresh != NO_ELEM:
            m.next[fresh] = m.free_head
            m.free_head = fresh
        rc[0] = -ENOENT if e == NO_ELEM else -EEXIST
        return NO_ELEM
    if e != NO_ELEM and m.type != MAP_LRU_HASH:
        if fresh != NO_ELEM:
            m.next[fresh] = m.free_head
            m.free_head = fresh
            lru_touch(m, e)
        elif m.type == MAP_HASH or m.type == MAP_HASH_OF_MAPS:
            # a plain hash map replaces the element, which moves it to its bucket's head
            _hash_unlink(m, e, prev)
            _hash_link(m, e)
        return e
    if e != NO_ELEM:
        _hash_remove(m, e, prev)       # an LRU hash replaces the element by the fresh one
    elif fresh == NO_ELEM:
        if m.free_head == NO_ELEM:
            rc[0] = -E2BIG
            return NO_ELEM
        fresh = m.free_head
        m.free_head = m.next[fresh]
    memcpy(m.keys + <size_t>fresh * m.key_size, key, m.key_size)
    memset(_value(m, fresh, 0), 0, <size_t>m.ncpu * m.stride)
    _hash_link(m, fresh)
    if _is_lru(m):
        _lru_push(m, fresh)
    m.count += 1
    return fresh


cdef int map_update(MapStore* m, const uint8_t* key, const uint8_t* value, uint64_t flags,
                    int64_t cpu) noexcept nogil:
    """Store ``value`` under ``key``; 0 or a negative errno, as the kernel's update.

    ``cpu`` >= 0 writes that CPU's copy of a per-CPU value (a program's update: a new
    element's other copies are zeroed); -1 writes every copy from ``value``, which then
    holds ncpu values of ``stride`` bytes (the syscall's layout).
    """
    cdef int32_t e
    cdef int rc = 0
    cdef uint32_t c
    if flags > BPF_EXIST_:
        return -EINVAL
    if m.type == MAP_LPM_TRIE:
        return _lpm_update(m, key, value, flags)
    if not _is_hash(m):
        e = map_find(m, key)
        if e == NO_ELEM:
            return -E2BIG
        if flags == BPF_NOEXIST_:
            return -EEXIST
    else:
        e = _hash_update(m, key, flags, &rc)
        if e == NO_ELEM:
            return rc
    if cpu >= 0:
        memcpy(_value(m, e, <uint32_t>cpu), value, m.value_size)
    else:
        for c in range(m.ncpu):
            memcpy(_value(m, e, c), value + <size_t>c * m.stride, m.value_size)
    return 0


cdef int map_delete(MapStore* m, const uint8_t* key) noexcept nogil:
    cdef int32_t e, prev
    if m.type == MAP_LPM_TRIE:
        return _lpm_delete(m, key)
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
    if m.type == MAP_LPM_TRIE:
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
            bucket = (jhash(key, m.key_size, 0) & (m.n_buckets - 1)) + 1
        e = NO_ELEM
        while bucket < m.n_buckets and e == NO_ELEM:
            e = m.buckets[bucket]
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


cdef inline uint8_t* _lpm_data(MapStore* m, int32_t n) noexcept nogil:
    return m.keys + <size_t>n * m.data_size


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
    m.node_free = m.nodes[n].child[0]
    m.nodes[n].child[0] = m.nodes[n].child[1] = NO_ELEM
    m.nodes[n].prefixlen = prefixlen
    m.nodes[n].flags = 0 if real else LPM_IM
    m.nodes[n].value = NO_ELEM
    if real:
        m.nodes[n].value = m.free_head
        m.free_head = m.next[m.free_head]
    memcpy(_lpm_data(m, n), data, m.data_size)
    return n


cdef void _lpm_free(MapStore* m, int32_t n) noexcept nogil:
    if m.nodes[n].value != NO_ELEM:
        m.next[m.nodes[n].value] = m.free_head
        m.free_head = m.nodes[n].value
    m.nodes[n].child[0] = m.node_free
    m.node_free = n


cdef inline int _lpm_add(MapStore* m, uint64_t flags) noexcept nogil:
    # the kernel's trie_check_add_elem: a new entry
    if flags == BPF_EXIST_:
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
            if flags == BPF_NOEXIST_:
                return -EEXIST
        else:
            rc = _lpm_add(m, flags)
            if rc:
                return rc
            m.nodes[n].flags = 0
            m.nodes[n].value = m.free_head
            m.free_head = m.next[m.free_head]
        memcpy(_lpm_data(m, n), key + 4, m.data_size)
        memcpy(_value(m, m.nodes[n].value, 0), value, m.value_size)
        return 0
    rc = _lpm_add(m, flags)
    if rc:
        return rc
    new = _lpm_node(m, plen, key + 4, True)
    memcpy(_value(m, m.nodes[new].value, 0), value, m.value_size)
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


cdef void map_free(MapStore* m) noexcept nogil:
    if m != NULL:
        free(m.st_nr)
        free(m.st_hash)
        free(m.progs)
        free(m.lru_prev)
        free(m.lru_next)
        free(m.nodes)
        free(m.inner)
        free(m.perf_cpu)
        free(m.counters)
        free(m.events)
        free(m.values)
        free(m.keys)
        free(m.next)
        free(m.buckets)
        free(m)


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
    if m.type == MAP_PROG_ARRAY:
        helper_fault(vm, b"a program array is only for bpf_tail_call")
    elif m.type == MAP_PERF_EVENT_ARRAY:
        helper_fault(vm, b"a perf event array is only for bpf_perf_event_output/read")
    elif m.type == MAP_RINGBUF:
        helper_fault(vm, b"a ring buffer is only for the bpf_ringbuf_* helpers")
    elif m.type == MAP_STACK_TRACE:
        helper_fault(vm, b"a stack trace map is only for bpf_get_stackid")
    elif m.inner != NULL and not lookup:
        helper_fault(vm, b"programs may only look up a map of maps")
    else:
        return m
    return NULL


cdef inline uint32_t _cpu(Vm* vm) noexcept nogil:
    return vm.skb.cpu if vm.skb != NULL else 0


cdef uint64_t bpf_map_lookup_elem(Vm* vm, uint64_t r1, uint64_t r2, uint64_t c, uint64_t d,
                                  uint64_t e) noexcept nogil:
    cdef MapStore* m = _data_map_arg(vm, r1, True)
    cdef uint8_t* key
    cdef int32_t elem
    if m == NULL:
        return 0
    key = _mem(vm, r2, m.key_size, ACCESS_READ)
    if key == NULL:
        return 0
    elem = map_find(m, key)
    if elem == NO_ELEM:
        return 0
    if m.inner != NULL:
        # a map of maps gives the inner map itself, which map helpers then take as r1
        return <uintptr_t>m.inner[elem] if _inner_map(vm, <uintptr_t>m.inner[elem]) != NULL else 0
    if _is_lru(m):
        lru_touch(m, elem)
    return <uintptr_t>_value(m, elem, _cpu(vm) % m.ncpu)


cdef uint64_t bpf_map_update_elem(Vm* vm, uint64_t r1, uint64_t r2, uint64_t r3,
                                  uint64_t flags, uint64_t e) noexcept nogil:
    cdef MapStore* m = _data_map_arg(vm, r1, False)
    cdef uint8_t* key
    cdef uint8_t* value
    if m == NULL:
        return 0
    key = _mem(vm, r2, m.key_size, ACCESS_READ)
    if key == NULL:
        return 0
    value = _mem(vm, r3, m.value_size, ACCESS_READ)
    if value == NULL:
        return 0
    return <uint64_t><int64_t>map_update(m, key, value, flags, _cpu(vm) % m.ncpu)


cdef uint64_t bpf_map_delete_elem(Vm* vm, uint64_t r1, uint64_t r2, uint64_t c, uint64_t d,
                                  uint64_t e) noexcept nogil:
    cdef MapStore* m = _data_map_arg(vm, r1, False)
    cdef uint8_t* key
    if m == NULL:
        return 0
    key = _mem(vm, r2, m.key_size, ACCESS_READ)
    if key == NULL:
        return 0
    return <uint64_t><int64_t>map_delete(m, key)


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


cdef uint64_t bpf_perf_event_output(Vm* vm, uint64_t r1, uint64_t r2, uint64_t flags,
                                    uint64_t r4, uint64_t size) noexcept nogil:
    cdef MapStore* m
    cdef uint8_t* data = NULL
    cdef uint64_t ctxlen = (flags >> 32) & 0xFFFFF
    cdef int64_t slot
    cdef uint32_t cpu = _cpu(vm), total
    cdef uint8_t* rec
    if vm.skb != NULL and not is_ctx(vm, r1):
        return 0
    m = _typed_map_arg(vm, r2, MAP_PERF_EVENT_ARRAY, b"r2 must be a perf event array")
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
    if not _grow(<void**>&m.events, &m.events_cap, m.events_len + 8 + total, 1):
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
    cdef MapStore* m = _typed_map_arg(vm, r1, MAP_PERF_EVENT_ARRAY,
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
    return m.counters[slot]


# --- ring buffers: the data is 2 * max_entries bytes so that a record is contiguous
# even where it wraps (the kernel maps the pages twice); on commit the part past the
# end is copied to the start.  A reserved record is a region of the run until it is
# submitted or discarded; records still reserved when the run ends (or tail-calls,
# which the kernel's verifier forbids while one is held) are discarded. ---

cdef inline uint32_t _rb_total(uint32_t len_) noexcept nogil:
    return ((len_ & ~(RB_BUSY | RB_DISCARD)) + RB_HDR + 7) & ~7u


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
        if (vm.maps[k].type == MAP_RINGBUF and ptr > <uintptr_t>vm.maps[k].values
                and ptr < <uintptr_t>vm.maps[k].values + vm.maps[k].values_len):
            return vm.maps[k]
    return NULL


cdef void _rb_release(Vm* vm, int k, bint discard) noexcept nogil:
    rb_commit(_rb_of(vm, vm.regions[k].start), <uint8_t*>vm.regions[k].start, discard)
    vm.nregions -= 1
    memmove(&vm.regions[k], &vm.regions[k + 1], (vm.nregions - k) * sizeof(Region))


cdef void ringbuf_release_all(Vm* vm) noexcept nogil:
    """Discard the records a run still holds."""
    cdef int k = vm.nregions - 1
    while k >= vm.map_regions:
        if vm.regions[k].name == REGION_RB_RECORD:
            _rb_release(vm, k, True)
        k -= 1


cdef uint64_t bpf_ringbuf_output(Vm* vm, uint64_t r1, uint64_t r2, uint64_t size,
                                 uint64_t flags, uint64_t e) noexcept nogil:
    cdef MapStore* m = _typed_map_arg(vm, r1, MAP_RINGBUF, b"r1 must be a ring buffer")
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


cdef uint64_t bpf_ringbuf_reserve(Vm* vm, uint64_t r1, uint64_t size, uint64_t flags,
                                  uint64_t d, uint64_t e) noexcept nogil:
    cdef MapStore* m = _typed_map_arg(vm, r1, MAP_RINGBUF, b"r1 must be a ring buffer")
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
    cdef MapStore* m = _typed_map_arg(vm, r1, MAP_RINGBUF, b"r1 must be a ring buffer")
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
    if m.type != MAP_PROG_ARRAY:
        return helper_fault(vm, b"the map must be a program array")
    if slot >= m.max_entries or m.progs[slot] == NULL or vm.tail_calls >= vm.tail_call_limit:
        return 0
    vm.tail_calls += 1
    vm.next_prog = m.progs[slot]
    vm.status = STATUS_TAIL_CALL
    return 0


cdef enum:
    BPF_F_SKIP_FIELD_MASK = 0xff
    BPF_F_USER_STACK = 1 << 8
    BPF_F_FAST_STACK_CMP = 1 << 9
    BPF_F_REUSE_STACKID = 1 << 10
    MAX_STACK_FRAMES = MAX_FRAMES


cdef uint64_t bpf_get_stackid(Vm* vm, uint64_t r1, uint64_t r2, uint64_t flags, uint64_t d,
                              uint64_t e) noexcept nogil:
    """The kernel's __bpf_get_stackid over a synthetic stack: the running bpf-to-bpf call
    chain, innermost first, each frame named by the pc of its call (there is no other
    stack to walk in user space); the user stack is empty."""
    cdef MapStore* m = _map_arg(vm, r2)
    cdef uint64_t ips[MAX_STACK_FRAMES]
    cdef uint32_t nr = 0, skip = <uint32_t>(flags & BPF_F_SKIP_FIELD_MASK)
    cdef uint32_t hash, id, k
    cdef int level
    cdef uint8_t* slot
    if m == NULL:
        return 0
    if m.type != MAP_STACK_TRACE:
        return helper_fault(vm, b"the map must be a stack trace map")
    if flags & ~(<uint64_t>(BPF_F_SKIP_FIELD_MASK | BPF_F_USER_STACK | BPF_F_FAST_STACK_CMP
                            | BPF_F_REUSE_STACKID)):
        return err(EINVAL)
    if not flags & BPF_F_USER_STACK:
        ips[0] = vm.pc
        nr = 1
        for level in range(vm.depth - 1, -1, -1):
            ips[nr] = vm.frames[level].ret_pc - 1
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


cdef void install_prog(Vm* vm, ProgCore* prog) noexcept nogil:
    """Make ``prog`` the running program: its code, helpers, context rules and maps."""
    cdef int k
    cdef Region* g
    vm.prog = prog
    vm.owner = prog.owner
    vm.insns, vm.helpers = prog.code, prog.helpers
    vm.maps, vm.nmaps = prog.maps, prog.nmaps
    if vm.skb != NULL:
        vm.ctx_rules = prog.ctx_rules
    vm.nregions = vm.map_regions
    for k in range(prog.nmaps):
        if prog.maps[k].values_len and not prog.maps[k].hidden:
            g = &vm.regions[vm.nregions]
            g.start = <uintptr_t>prog.maps[k].values
            g.end = g.start + prog.maps[k].values_len
            g.writable = True
            g.name = REGION_MAP0 + k
            vm.nregions += 1


cdef void tail_call_switch(Vm* vm) noexcept nogil:
    """Replace the running program after bpf_tail_call: same context, a fresh frame."""
    ringbuf_release_all(vm)
    install_prog(vm, vm.next_prog)
    vm.next_prog = NULL
    vm.status = STATUS_RUNNING
    vm.pc = 0
    vm.depth = 0
    vm.regions[0].start = vm.regions[0].end - FRAME_SIZE
    memset(<void*>vm.regions[0].start, 0, FRAME_SIZE)
    vm.reg[10] = vm.regions[0].end


cdef void register_map_helpers(helper_fn* table) noexcept:
    table[1] = bpf_map_lookup_elem
    table[2] = bpf_map_update_elem
    table[3] = bpf_map_delete_elem
    table[12] = bpf_tail_call
    table[27] = bpf_get_stackid
    table[22] = bpf_perf_event_read
    table[25] = bpf_perf_event_output
    table[130] = bpf_ringbuf_output
    table[131] = bpf_ringbuf_reserve
    table[132] = bpf_ringbuf_submit
    table[133] = bpf_ringbuf_discard
    table[134] = bpf_ringbuf_query


# --- the pin file's contents (docs/pinning.md, "Map contents"): the storage walked in C ---

cdef enum:
    LOAD_SIZE = 1
    LOAD_DUPLICATE = 2
    LOAD_RECENCY = 3
    LOAD_PREFIX = 4
    LOAD_SLOT = 5
    LOAD_RING = 6
    LOAD_STACK = 7
    LRU_UNSEEN = -2

_LOAD_ERRORS = {
    LOAD_SIZE: "{} bytes of contents do not fit its definition",
    LOAD_DUPLICATE: "a key appears twice in its contents",
    LOAD_RECENCY: "its LRU recency list is not an order of its elements",
    LOAD_PREFIX: "an LPM entry is refused by the trie (a prefix longer than the key, or "
                 "one given twice)",
    LOAD_SLOT: "a perf event slot has a CPU below -1",
    LOAD_RING: "its ring buffer positions do not fall on its records",
    LOAD_STACK: "a stack entry does not match its bucket, hash or frame count",
}


cdef size_t _dump_size(MapStore* m) noexcept nogil:
    cdef size_t vlen = <size_t>m.ncpu * m.value_size
    if _is_hash(m):
        return m.count * (m.key_size + vlen + (4 if _is_lru(m) else 0))
    if m.type == MAP_LPM_TRIE:
        return m.count * (<size_t>m.key_size + m.value_size)
    if m.type == MAP_PERF_EVENT_ARRAY:
        return m.max_entries * <size_t>12
    if m.type == MAP_RINGBUF:
        return 24 + <size_t>m.max_entries
    if m.type == MAP_STACK_TRACE:
        return m.count * (12 + <size_t>m.value_size)
    return m.max_entries * vlen


cdef uint8_t* _put_values(MapStore* m, uint8_t* p, int32_t e) noexcept nogil:
    cdef uint32_t c
    for c in range(m.ncpu):
        memcpy(p, _value(m, e, c), m.value_size)
        p += m.value_size
    return p


cdef const uint8_t* _get_values(MapStore* m, const uint8_t* p, int32_t e) noexcept nogil:
    cdef uint32_t c
    for c in range(m.ncpu):
        memcpy(_value(m, e, c), p, m.value_size)
        p += m.value_size
    return p


cdef int _dump_store(MapStore* m, uint8_t* p) noexcept nogil:
    """Write the contents (_dump_size bytes) to ``p``; -1 when out of memory."""
    cdef uint32_t b, k = 0
    cdef int32_t e
    cdef int32_t* aux = NULL
    if _is_lru(m) or m.type == MAP_LPM_TRIE:
        # LRU: each element's position in the dump; LPM: the walk's stack
        aux = <int32_t*>malloc((2 * <size_t>m.count + 1) * sizeof(int32_t)
                               if m.type == MAP_LPM_TRIE else m.max_entries * sizeof(int32_t))
        if aux == NULL:
            return -1
    if _is_hash(m):
        for b in range(m.n_buckets):
            e = m.buckets[b]
            while e != NO_ELEM:
                memcpy(p, m.keys + <size_t>e * m.key_size, m.key_size)
                p = _put_values(m, p + m.key_size, e)
                if aux != NULL:
                    aux[e] = k
                k += 1
                e = m.next[e]
        e = m.lru_head if aux != NULL else NO_ELEM
        while e != NO_ELEM:                 # the recency list, most recent first
            memcpy(p, &aux[e], 4)
            p += 4
            e = m.lru_next[e]
    elif m.type == MAP_LPM_TRIE:
        # any order will do: a trie's shape depends only on its prefixes (preorder here)
        if m.root != NO_ELEM:
            aux[0] = m.root
            k = 1
        while k:
            k -= 1
            e = aux[k]
            if not (m.nodes[e].flags & LPM_IM):
                memcpy(p, &m.nodes[e].prefixlen, 4)
                memcpy(p + 4, _lpm_data(m, e), m.data_size)
                memcpy(p + m.key_size, _value(m, m.nodes[e].value, 0), m.value_size)
                p += m.key_size + m.value_size
            for b in range(2):
                if m.nodes[e].child[1 - b] != NO_ELEM:
                    aux[k] = m.nodes[e].child[1 - b]
                    k += 1
    elif m.type == MAP_PERF_EVENT_ARRAY:
        for b in range(m.max_entries):
            memcpy(p, &m.perf_cpu[b], 4)
            memcpy(p + 4, &m.counters[b], 8)
            p += 12
    elif m.type == MAP_RINGBUF:
        memcpy(p, &m.cons_pos, 8)
        memcpy(p + 8, &m.prod_pos, 8)
        memcpy(p + 16, &m.pend_pos, 8)
        memcpy(p + 24, m.values, m.max_entries)
    elif m.type == MAP_STACK_TRACE:
        for b in range(m.n_buckets):
            if m.st_nr[b]:
                memcpy(p, &b, 4)
                memcpy(p + 4, &m.st_hash[b], 4)
                memcpy(p + 8, &m.st_nr[b], 4)
                memcpy(p + 12, m.values + <size_t>b * m.value_size, m.value_size)
                p += 12 + m.value_size
    else:
        for b in range(m.max_entries):
            p = _put_values(m, p, b)
    free(aux)
    return 0


cdef int _load_store(MapStore* m, const uint8_t* p, size_t n) noexcept nogil:
    """Fill the emptied map from ``p[:n]``, laid out as _dump_store writes: 0, or a
    LOAD_* error."""
    cdef size_t vlen = <size_t>m.ncpu * m.value_size
    cdef size_t esize = m.key_size + vlen + (4 if _is_lru(m) else 0)
    cdef size_t cnt, i
    cdef int32_t e, prev
    cdef uint32_t b, hsh, nr
    cdef uint64_t pos, mask = m.max_entries - 1
    cdef bint cons_ok, pend_ok
    if m.type == MAP_LPM_TRIE:
        esize = m.key_size + m.value_size
    elif m.type == MAP_STACK_TRACE:
        esize = 12 + m.value_size
    cnt = n // esize if esize else 0
    if _is_hash(m) or m.type in (MAP_LPM_TRIE, MAP_STACK_TRACE):
        if cnt * esize != n or cnt > m.max_entries:
            return LOAD_SIZE
    elif n != _dump_size(m):
        return LOAD_SIZE
    if _is_hash(m):
        esize -= 4 if _is_lru(m) else 0
        # element i holds entry i; linked in reverse so that each bucket lists its
        # elements in the dumped order
        for i in range(cnt):
            e = <int32_t>(cnt - 1 - i)
            if _hash_find(m, p + e * esize, &prev) != NO_ELEM:
                return LOAD_DUPLICATE
            memcpy(m.keys + <size_t>e * m.key_size, p + e * esize, m.key_size)
            _get_values(m, p + e * esize + m.key_size, e)
            _hash_link(m, e)
            if _is_lru(m):
                m.lru_next[e] = LRU_UNSEEN
        m.count = <uint32_t>cnt
        m.free_head = <int32_t>cnt if cnt < m.max_entries else NO_ELEM
        for i in range(cnt if _is_lru(m) else 0):     # pushed least recent first
            e = <int32_t>_le32(p + cnt * esize + 4 * (cnt - 1 - i))
            if e < 0 or <size_t>e >= cnt or m.lru_next[e] != LRU_UNSEEN:
                return LOAD_RECENCY
            _lru_push(m, e)
    elif m.type == MAP_LPM_TRIE:
        for i in range(cnt):
            if _lpm_update(m, p + i * esize, p + i * esize + m.key_size, BPF_NOEXIST_):
                return LOAD_PREFIX
    elif m.type == MAP_PERF_EVENT_ARRAY:
        for b in range(m.max_entries):
            memcpy(&e, p + 12 * b, 4)
            if e < -1:
                return LOAD_SLOT
            m.perf_cpu[b] = e
            memcpy(&m.counters[b], p + 12 * b + 4, 8)
    elif m.type == MAP_RINGBUF:
        memcpy(&m.cons_pos, p, 8)
        memcpy(&m.prod_pos, p + 8, 8)
        memcpy(&m.pend_pos, p + 16, 8)
        memcpy(m.values, p + 24, m.max_entries)
        # the records from the older of the two read positions chain to the producer's,
        # through the other one, and none is still busy
        pos = min(m.cons_pos, m.pend_pos)
        cons_ok, pend_ok = pos == m.cons_pos, pos == m.pend_pos
        if m.cons_pos > m.prod_pos or m.pend_pos > m.prod_pos or m.prod_pos - pos > mask \
                or (m.cons_pos | m.pend_pos | m.prod_pos) & 7:
            return LOAD_RING
        while pos < m.prod_pos:
            b = _le32(m.values + (pos & mask))
            if b & RB_BUSY:
                return LOAD_RING
            pos += _rb_total(b)
            cons_ok |= pos == m.cons_pos
            pend_ok |= pos == m.pend_pos
        if pos != m.prod_pos or not (cons_ok and pend_ok):
            return LOAD_RING
    elif m.type == MAP_STACK_TRACE:
        for i in range(cnt):
            b, hsh, nr = _le32(p), _le32(p + 4), _le32(p + 8)
            if (b >= m.n_buckets or m.st_nr[b] or hsh & (m.n_buckets - 1) != b or nr == 0
                    or nr > m.value_size // 8 or jhash(p + 12, nr * 8, 0) != hsh):
                return LOAD_STACK
            m.st_nr[b], m.st_hash[b] = nr, hsh
            memcpy(m.values + <size_t>b * m.value_size, p + 12, m.value_size)
            p += esize
        m.count = <uint32_t>cnt
    else:
        for b in range(m.max_entries):
            p = _get_values(m, p, b)
    return 0


# --- maps from Python ------------------------------------------------------------------

cdef dict _MAP_HANDLES = {}                 # handle -> Map, for lddw map references
import weakref as _weakref
_PROG_HANDLES = _weakref.WeakValueDictionary()   # handle -> Program, for program arrays
cdef int _next_handle = 3                   # handles look like the kernel's fds


class MapError(OSError, EbpfError):
    """A map operation the kernel would refuse; ``errno`` is the kernel's errno."""


cdef enum:
    EBADF_ = 9

_ERRNO_NAMES = {ENOENT: "ENOENT", E2BIG: "E2BIG", EEXIST: "EEXIST", EINVAL: "EINVAL",
                EBADF_: "EBADF", ENOSPC: "ENOSPC", ENOTSUPP: "ENOTSUPP"}


def _possible_cpus():
    import os
    return os.cpu_count() or 1


@cython.final
cdef class Map:
    """A map, with the kernel's semantics for its type (semantics.md §4).

    ``Map.create(map_type, key_size, value_size, max_entries, flags=0)`` makes one;
    ``fd`` is the handle programs use in ``lddw`` (``src = BPF_PSEUDO_MAP_FD``, imm =
    fd).  It is a mutable mapping of bytes keys to bytes values; per-CPU maps take and
    give a list of one value per CPU (``ncpu`` of them).  ``lookup``/``update``/
    ``delete``/``next_key`` are the bpf() commands, with their flags and errors
    (:class:`MapError` carrying the kernel's errno).  ``keys()`` lists keys in the
    kernel's iteration order (hash maps: the order of a seed-0 kernel map; LPM tries:
    the kernel's postorder, more specific prefixes first).

    LRU hashes evict the least recently used element when full (recency: updates and
    programs' lookups, not syscall lookups).  pyebpf's LRU is exact; the kernel's is
    approximate (per-CPU lists, batch evictions), so what pyebpf guarantees is what the
    kernel shows too: a full LRU map accepts new keys, and keys programs use survive.
    Maps of maps take ``inner_map=`` (the template) and hold Maps (lookup gives the inner
    map's fd, where the kernel gives its id).  Perf event arrays: ``open(index, cpu)``
    opens a slot, ``set_counter`` sets what bpf_perf_event_read reads, ``drain()`` takes
    the (cpu, bytes) events.  Ring buffers: ``drain()`` takes the submitted records.
    """
    cdef MapStore* _m
    cdef readonly int fd
    cdef readonly str name
    cdef readonly object type
    cdef readonly dict _programs  # program arrays, maps of maps: element -> what it holds
    cdef readonly object inner_map  # maps of maps: the template
    cdef public object _pin       # a pinned map's link to its pin file (pyebpf.pinning)
    cdef public object key_type, value_type   # BTF types (pyebpf.btf) from an ELF object
    cdef object __weakref__

    def __dealloc__(self):
        map_free(self._m)

    @staticmethod
    def create(map_type, key_size, value_size, max_entries, flags=0, name="", ncpu=None,
               inner_map=None):
        cdef Map self = Map.__new__(Map)
        cdef Map tmpl = inner_map
        global _next_handle
        try:
            if isinstance(map_type, str):
                key = map_type.upper()
                kind = _isa.MapType[key if key.startswith("BPF_MAP_TYPE_")
                                    else "BPF_MAP_TYPE_" + key]
            else:
                kind = _isa.MapType(map_type)
        except (KeyError, ValueError):
            raise MapError(EINVAL, f"unknown map type {map_type!r}") from None
        self.type, self.name, self._programs, self.inner_map = kind, name, {}, inner_map
        if tmpl is not None and tmpl._m.type not in _INNER_KINDS:
            raise MapError(EINVAL, f"an inner map cannot be {tmpl.type.name} in pyebpf")
        self._m = _map_alloc(kind, key_size, value_size, max_entries, flags,
                             ncpu or _possible_cpus(), NULL if tmpl is None else tmpl._m)
        self.fd = _next_handle
        _next_handle += 1
        _MAP_HANDLES[self.fd] = self
        return self

    def close(self):
        """Drop the handle (programs already loaded keep the map)."""
        _MAP_HANDLES.pop(self.fd, None)

    def _reopen(self):
        """Register the handle again: a closed pinned map got from its pin once more
        (pyebpf.pinning keeps one Map, and one handle, per pin in a process)."""
        _MAP_HANDLES[self.fd] = self

    @property
    def key_size(self):
        return self._m.key_size

    @property
    def value_size(self):
        return self._m.value_size

    @property
    def max_entries(self):
        return self._m.max_entries

    @property
    def flags(self):
        return self._m.flags

    @property
    def ncpu(self):
        return self._m.ncpu

    cdef bytes _key(self, key):
        key = bytes(key)
        if len(key) != self._m.key_size:
            raise ValueError(f"map {self._label()}: key is {len(key)} bytes, the map's "
                             f"key_size is {self._m.key_size}")
        return key

    cdef str _label(self):
        return f"{self.name or self.type.name} (fd {self.fd})"

    cdef _fail(self, int rc, str what, bytes key):
        name = _ERRNO_NAMES.get(-rc, str(-rc))
        raise MapError(-rc, f"map {self._label()}: {what} of key {key.hex()} failed: {name}")

    cdef _bind_owner(self, int prog_type):
        if self._m.owner_type == -1:
            self._m.owner_type = prog_type
        elif self._m.owner_type != prog_type:
            raise LoadError(f"program array {self._label()} serves "
                            f"{_isa.ProgType(self._m.owner_type).name} programs")

    def decode_key(self, key):
        """``key`` as named fields (a dict for structs), per the map's BTF key type."""
        from .btf import decode
        return decode(self.key_type, key, f"map {self._label()} key")

    def decode_value(self, value):
        """``value`` as named fields (global data: by variable name), per its BTF type."""
        from .btf import decode
        return decode(self.value_type, value, f"map {self._label()} value")

    def lookup(self, key):
        """The value under ``key`` (per-CPU: a list of values; program arrays: the
        program's fd as 4 bytes), or None."""
        if self._pin is not None:
            return self._pin.apply(Map.lookup, self, key)
        cdef bytes k = self._key(key)
        cdef int32_t e
        if self._m.type in (MAP_PERF_EVENT_ARRAY, MAP_RINGBUF):
            self._fail(-ENOTSUPP, "lookup", k)
        if self._m.type == MAP_STACK_TRACE:
            e = <int32_t>self._stack_id(k)
            if e < 0 or not self._m.st_nr[e]:
                return None
            return PyBytes_FromStringAndSize(<char*>self._m.values + <size_t>e * self._m.value_size,
                                             self._m.value_size)
        e = map_find(self._m, <const uint8_t*>k)
        if e == NO_ELEM or (self._m.inner != NULL and self._m.inner[e] == NULL):
            return None
        if self._m.type == MAP_PROG_ARRAY:
            prog = self._programs.get(e)
            return None if prog is None else prog.fd.to_bytes(4, "little")
        if self._m.ncpu == 1:
            return PyBytes_FromStringAndSize(<char*>_value(self._m, e, 0), self._m.value_size)
        return [PyBytes_FromStringAndSize(<char*>_value(self._m, e, c), self._m.value_size)
                for c in range(self._m.ncpu)]

    def update(self, key, value, flags=_isa.BPF_ANY):
        """Store ``value`` (per-CPU: one value for every CPU, or a list of ncpu values)."""
        if self._pin is not None:
            return self._pin.apply(Map.update, self, key, value, flags)
        cdef bytes k = self._key(key)
        cdef bytes v
        if self._m.type == MAP_PROG_ARRAY:
            return self._set_program(k, value, flags)
        if self._m.inner != NULL:
            return self._set_inner(k, value, flags)
        if self._m.type == MAP_PERF_EVENT_ARRAY:
            raise MapError(EINVAL, f"map {self._label()}: perf event array slots are "
                                   "opened with open(), not updated")
        if self._m.type == MAP_RINGBUF:
            self._fail(-ENOTSUPP, "update", k)
        if self._m.type == MAP_STACK_TRACE:
            self._fail(-EINVAL, "update (stack traces come from bpf_get_stackid)", k)
        if self._m.ncpu > 1:
            values = [value] * self._m.ncpu if isinstance(value, (bytes, bytearray)) else list(value)
            if len(values) != self._m.ncpu:
                raise ValueError(f"map {self._label()}: {len(values)} per-CPU values for "
                                 f"{self._m.ncpu} CPUs")
            v = b"".join(self._value(x).ljust(self._m.stride, b"\0") for x in values)
        else:
            v = self._value(value)
        rc = map_update(self._m, <const uint8_t*>k, <const uint8_t*>v, flags, -1)
        if rc:
            self._fail(rc, "update", k)

    cdef bytes _value(self, value):
        value = bytes(value)
        if len(value) != self._m.value_size:
            raise ValueError(f"map {self._label()}: value is {len(value)} bytes, the map's "
                             f"value_size is {self._m.value_size}")
        return value

    cdef _set_program(self, bytes k, value, flags):
        """Put a program (a Program, or its fd as an int or 4 bytes) in a slot."""
        cdef Program prog
        cdef int32_t e = map_find(self._m, <const uint8_t*>k)
        if flags != _isa.BPF_ANY:
            self._fail(-EINVAL, "update (program arrays take BPF_ANY only)", k)
        if e == NO_ELEM:
            self._fail(-E2BIG, "update", k)
        if not isinstance(value, Program):
            fd = value if isinstance(value, int) else int.from_bytes(bytes(value), "little")
            value = _PROG_HANDLES.get(fd)
            if value is None:
                raise MapError(EBADF_, f"map {self._label()}: no program with fd {fd}")
        prog = value
        if prog.prog_type is None:
            raise MapError(EINVAL, f"map {self._label()}: raw programs cannot be tail-called")
        try:
            self._bind_owner(prog._pc.prog_type)
        except LoadError as exc:
            raise MapError(EINVAL, str(exc)) from None
        self._m.progs[e] = &prog._pc
        self._programs[e] = prog

    cdef _set_inner(self, bytes k, value, flags):
        """Put an inner map (a Map, or its fd as an int or 4 bytes) under ``k``."""
        cdef Map inner
        cdef int32_t e
        cdef int rc
        cdef bytes fdb
        if self._m.type == MAP_ARRAY_OF_MAPS:
            if flags != _isa.BPF_ANY:
                self._fail(-EINVAL, "update (arrays of maps take BPF_ANY only)", k)
            if map_find(self._m, <const uint8_t*>k) == NO_ELEM:
                self._fail(-E2BIG, "update", k)
        if not isinstance(value, Map):
            fd = value if isinstance(value, int) else int.from_bytes(bytes(value), "little")
            value = _MAP_HANDLES.get(fd)
            if value is None:
                raise MapError(EBADF_, f"map {self._label()}: no map with fd {fd}")
        inner = value
        if not _meta_equal(self._m.tmpl, inner._m):
            raise MapError(EINVAL, f"map {self._label()}: {inner._label()} does not match "
                                   "the inner map template (type, sizes, max_entries, flags)")
        fdb = inner.fd.to_bytes(4, "little")
        rc = map_update(self._m, <const uint8_t*>k, <const uint8_t*>fdb, flags, -1)
        if rc:
            self._fail(rc, "update", k)
        e = map_find(self._m, <const uint8_t*>k)
        self._m.inner[e] = inner._m
        self._programs[e] = inner

    def delete(self, key):
        if self._pin is not None:
            return self._pin.apply(Map.delete, self, key)
        cdef bytes k = self._key(key)
        cdef int32_t e
        if self._m.type == MAP_RINGBUF:
            self._fail(-ENOTSUPP, "delete", k)
        if self._m.type == MAP_STACK_TRACE:
            e = <int32_t>self._stack_id(k)
            if e < 0 or not self._m.st_nr[e]:
                self._fail(-E2BIG if e < 0 else -ENOENT, "delete", k)
            self._m.st_nr[e] = 0
            self._m.count -= 1
            return
        if self._m.inner != NULL or self._m.type == MAP_PERF_EVENT_ARRAY:
            e = map_find(self._m, <const uint8_t*>k)
            if e == NO_ELEM or not self._slot_used(e):
                self._fail(-ENOENT if e != NO_ELEM or _is_hash(self._m) else -EINVAL, "delete", k)
            if _is_hash(self._m):
                map_delete(self._m, <const uint8_t*>k)
            if self._m.inner != NULL:
                self._m.inner[e] = NULL
                del self._programs[e]
            else:
                self._m.perf_cpu[e] = -1
            return
        if self._m.type == MAP_PROG_ARRAY:
            e = map_find(self._m, <const uint8_t*>k)
            if e == NO_ELEM or self._programs.pop(e, None) is None:
                self._fail(-ENOENT if e != NO_ELEM else -EINVAL, "delete", k)
            self._m.progs[e] = NULL
            return
        rc = map_delete(self._m, <const uint8_t*>k)
        if rc:
            self._fail(rc, "delete", k)

    cdef int64_t _stack_id(self, bytes k):
        cdef uint32_t sid = int.from_bytes(k, "little")
        return sid if sid < self._m.n_buckets else -1

    cdef bint _slot_used(self, int32_t e):
        return self._m.inner[e] != NULL if self._m.inner != NULL else self._m.perf_cpu[e] >= 0

    # --- perf event arrays ---

    def open(self, index, cpu=None):
        """Open perf event array slot ``index`` for events from ``cpu`` (default: the CPU
        numbered ``index``, as one perf buffer per CPU is usually set up)."""
        if self._pin is not None:
            return self._pin.apply(Map.open, self, index, cpu)
        self._check_perf_slot(index)
        self._m.perf_cpu[index] = index if cpu is None else cpu

    def set_counter(self, index, value):
        """Set the counter bpf_perf_event_read reads from open slot ``index``."""
        if self._pin is not None:
            return self._pin.apply(Map.set_counter, self, index, value)
        self._check_perf_slot(index)
        if self._m.perf_cpu[index] < 0:
            raise MapError(ENOENT, f"map {self._label()}: slot {index} is not open")
        self._m.counters[index] = value

    cdef _check_perf_slot(self, index):
        if self._m.type != MAP_PERF_EVENT_ARRAY:
            raise TypeError(f"map {self._label()} is not a perf event array")
        if not 0 <= index < self._m.max_entries:
            raise MapError(E2BIG, f"map {self._label()}: slot {index} is past max_entries "
                                  f"{self._m.max_entries}")

    def drain(self):
        """Take the records produced so far: perf event arrays give (cpu, bytes) per
        bpf_perf_event_output, ring buffers the bytes of each submitted record."""
        if self._pin is not None:
            return self._pin.apply(Map.drain, self)
        if self._m.type == MAP_PERF_EVENT_ARRAY:
            return self._drain_perf()
        if self._m.type == MAP_RINGBUF:
            return self._drain_ring()
        raise TypeError(f"map {self._label()} is neither a perf event array nor a ring buffer")

    cdef list _drain_perf(self):
        cdef size_t pos = 0
        cdef uint32_t cpu, size
        out = []
        while pos < self._m.events_len:
            memcpy(&cpu, self._m.events + pos, 4)
            memcpy(&size, self._m.events + pos + 4, 4)
            out.append((cpu, PyBytes_FromStringAndSize(<char*>self._m.events + pos + 8, size)))
            pos += 8 + size
        self._m.events_len = 0
        return out

    cdef list _drain_ring(self):
        cdef MapStore* m = self._m
        cdef uint64_t mask = m.max_entries - 1
        cdef uint32_t hdr
        cdef size_t at, first
        out = []
        while m.cons_pos < m.prod_pos:
            memcpy(&hdr, m.values + (m.cons_pos & mask), 4)
            if hdr & RB_BUSY:
                break
            if not hdr & RB_DISCARD:
                at = (m.cons_pos + RB_HDR) & mask
                size = hdr & ~(RB_BUSY | RB_DISCARD)
                first = min(size, m.max_entries - at)
                out.append(PyBytes_FromStringAndSize(<char*>m.values + at, first)
                           + PyBytes_FromStringAndSize(<char*>m.values, size - first))
            m.cons_pos += _rb_total(hdr)
        return out

    @property
    def consumer_pos(self):
        self.sync()
        return self._m.cons_pos

    @property
    def producer_pos(self):
        self.sync()
        return self._m.prod_pos

    def next_key(self, key=None):
        """The key after ``key`` in iteration order (None or a missing key: the first);
        None after the last."""
        if self._pin is not None:
            return self._pin.apply(Map.next_key, self, key)
        cdef bytes k
        cdef bytes out = PyBytes_FromStringAndSize(NULL, self._m.key_size)
        cdef int64_t sid
        if self._m.type == MAP_STACK_TRACE:
            # the kernel's stack_map_get_next_key: a missing or past-the-end key restarts
            sid = -1 if key is None else self._stack_id(self._key(key))
            sid = 0 if sid < 0 or not self._m.st_nr[sid] else sid + 1
            while sid < self._m.n_buckets and not self._m.st_nr[sid]:
                sid += 1
            return None if sid >= self._m.n_buckets else (<uint32_t>sid).to_bytes(4, "little")
        if key is None:
            rc = map_next_key(self._m, NULL, <uint8_t*>PyBytes_AS_STRING(out))
        else:
            k = self._key(key)
            rc = map_next_key(self._m, <const uint8_t*>k, <uint8_t*>PyBytes_AS_STRING(out))
        return None if rc else out

    def keys(self):
        if self._pin is not None:
            return self._pin.apply(Map.keys, self)
        out = []
        key = self.next_key()
        while key is not None:
            out.append(key)
            key = self.next_key(key)
        return out

    @staticmethod
    def from_fd(int fd):
        """The open map whose handle is ``fd``, or None."""
        return _MAP_HANDLES.get(fd)

    def pin(self, path):
        """BPF_OBJ_PIN: share this map through a pin file (see docs/pinning.md)."""
        from . import pinning
        pinning.pin_map(self, path)

    @staticmethod
    def from_pin(path):
        """BPF_OBJ_GET: the map pinned at ``path``, linked to its pin file."""
        from . import pinning
        return pinning.get_map(path)

    def sync(self):
        """A pinned map: refresh from its pin file now (no-op for an unpinned map)."""
        if self._pin is not None:
            self._pin.apply(Map.sync, self)

    def _dump(self):
        """The contents in the pin file's layout for the map's type (docs/pinning.md);
        program arrays and maps of maps: [(key, Program or Map)] in iteration order."""
        cdef bytes out
        cdef uint8_t* p
        cdef int rc
        if self._m.type == MAP_PROG_ARRAY or self._m.inner != NULL:
            return self._slots()
        out = PyBytes_FromStringAndSize(NULL, _dump_size(self._m))
        p = <uint8_t*>PyBytes_AS_STRING(out)
        with nogil:
            rc = _dump_store(self._m, p)
        if rc:
            raise MemoryError()
        return out

    def _load(self, data):
        """Replace the contents with ``data``, in :meth:`_dump`'s layout.  Contents that
        do not fit the map leave it empty and raise ValueError."""
        cdef bytes raw
        cdef const uint8_t* p
        cdef size_t n
        cdef int rc
        if self._m.type == MAP_PROG_ARRAY or self._m.inner != NULL:
            return self._load_slots(data)
        raw = data
        p, n = <const uint8_t*>PyBytes_AS_STRING(raw), len(raw)
        _map_reset(self._m)
        with nogil:
            rc = _load_store(self._m, p, n)
        if rc:
            _map_reset(self._m)
            if rc < 0:
                raise MemoryError()
            raise ValueError(f"map {self._label()}: {_LOAD_ERRORS[rc].format(len(raw))}")

    cdef list _slots(self):
        cdef MapStore* m = self._m
        cdef uint32_t b
        cdef int32_t e
        if not _is_hash(m):
            return [(i.to_bytes(4, "little"), obj) for i, obj in sorted(self._programs.items())]
        out = []
        for b in range(m.n_buckets):
            e = m.buckets[b]
            while e != NO_ELEM:
                out.append((PyBytes_FromStringAndSize(<char*>m.keys + <size_t>e * m.key_size,
                                                      m.key_size), self._programs[e]))
                e = m.next[e]
        return out

    cdef _load_slots(self, list items):
        # inserted in reverse, so that a hash of maps lists them in the given order
        if len({k for k, _ in items}) != len(items):
            raise ValueError(f"map {self._label()}: {_LOAD_ERRORS[LOAD_DUPLICATE]}")
        for k, _ in self._slots():
            self.delete(k)
        try:
            for k, obj in reversed(items):
                self.update(k, obj)
        except (MapError, ValueError) as exc:
            for k, _ in self._slots():
                self.delete(k)
            raise ValueError(str(exc)) from None

    def __iter__(self):
        return iter(self.keys())

    def __len__(self):
        if self._m.type == MAP_RINGBUF:
            return 0
        if _is_hash(self._m) or self._m.type in (MAP_LPM_TRIE, MAP_STACK_TRACE):
            return self._m.count
        return self._m.max_entries

    def __contains__(self, key):
        return self.lookup(key) is not None

    def __getitem__(self, key):
        value = self.lookup(key)
        if value is None:
            raise KeyError(key)
        return value

    def __setitem__(self, key, value):
        self.update(key, value)

    def __delitem__(self, key):
        try:
            self.delete(key)
        except MapError as exc:
            if exc.errno == ENOENT:
                raise KeyError(key) from None
            raise

    def items(self):
        return [(k, self[k]) for k in self.keys()]

    def values(self):
        return [self[k] for k in self.keys()]

    def typed(self, key=None, value=None, key_names=None, value_names=None):
        """A view with keys and values encoded by struct formats, or without formats
        by the map's BTF types (named tuples for structs; pyebpf.mapview)."""
        from .mapview import BtfMap, TypedMap
        if key is None and value is None:
            return BtfMap(self)
        if key is None or value is None:
            raise TypeError("typed(): give both key and value formats, or neither (BTF)")
        return TypedMap(self, key, value, key_names, value_names)

    def get(self, key, default=None):
        value = self.lookup(key)
        return default if value is None else value

    def __repr__(self):
        return (f"<pyebpf.Map {self._label()}: key {self._m.key_size} B, value "
                f"{self._m.value_size} B, {len(self)}/{self._m.max_entries} entries>")


cdef bint _meta_equal(MapStore* a, MapStore* b):
    # the kernel's bpf_map_meta_equal
    return (a.type == b.type and a.key_size == b.key_size and a.value_size == b.value_size
            and a.flags == b.flags and a.max_entries == b.max_entries)


import collections.abc as _abc
_abc.MutableMapping.register(Map)


_HASHES = (MAP_HASH, MAP_PERCPU_HASH, MAP_LRU_HASH, MAP_LRU_PERCPU_HASH, MAP_HASH_OF_MAPS)
_ARRAYS = (MAP_ARRAY, MAP_PERCPU_ARRAY, MAP_PROG_ARRAY, MAP_ARRAY_OF_MAPS, MAP_PERF_EVENT_ARRAY)
# what an inner map may be: the data maps programs read through map helpers
_INNER_KINDS = (MAP_HASH, MAP_ARRAY, MAP_PERCPU_HASH, MAP_PERCPU_ARRAY, MAP_LRU_HASH,
                MAP_LRU_PERCPU_HASH, MAP_LPM_TRIE)
_NO_PREALLOC, _NO_COMMON_LRU, _ZERO_SEED = 1, 2, 64


cdef _check_create(object kind, uint32_t key_size, uint32_t value_size, uint32_t max_entries,
                   uint32_t flags, object tmpl):
    """BPF_MAP_CREATE's refusals, in the kernel's order for each type (6.18)."""
    name = kind.name
    if kind not in _HASHES + _ARRAYS + (MAP_LPM_TRIE, MAP_RINGBUF, MAP_STACK_TRACE):
        raise MapError(EINVAL, f"map type {name} is not supported by pyebpf yet")
    if kind in (MAP_ARRAY_OF_MAPS, MAP_HASH_OF_MAPS) and tmpl is None:
        raise MapError(EINVAL, f"{name} needs an inner map template (inner_map=)")
    if kind not in (MAP_ARRAY_OF_MAPS, MAP_HASH_OF_MAPS) and tmpl is not None:
        raise MapError(EINVAL, f"{name} takes no inner map")
    if kind == MAP_RINGBUF:
        if flags or key_size or value_size or max_entries & (max_entries - 1) or max_entries % 4096:
            raise MapError(EINVAL, "a ring buffer has key and value size 0, no flags and a "
                                   "power-of-2 multiple of 4096 as max_entries")
        return
    if max_entries == 0 or value_size == 0 or key_size == 0:
        raise MapError(EINVAL, "key_size, value_size and max_entries must be non-zero")
    if kind in _ARRAYS and key_size != 4:
        raise MapError(EINVAL, f"{name} keys are 4 bytes, not {key_size}")
    if kind in (MAP_PROG_ARRAY, MAP_ARRAY_OF_MAPS, MAP_HASH_OF_MAPS,
                MAP_PERF_EVENT_ARRAY) and value_size != 4:
        raise MapError(EINVAL, f"{name} values are 4-byte fds, not {value_size}")
    if kind == MAP_STACK_TRACE:
        if key_size != 4 or value_size < 8 or value_size % 8 or value_size // 8 > 127 or flags:
            raise MapError(EINVAL, "a stack trace map has 4-byte keys, values of 1 to 127 "
                                   "u64 frames and no flags (pyebpf has no build-id mode)")
        return
    if kind == MAP_LPM_TRIE:
        if not flags & _NO_PREALLOC or flags & ~_NO_PREALLOC or not 5 <= key_size <= 260:
            raise MapError(EINVAL, "an LPM trie needs BPF_F_NO_PREALLOC (and no other flag) "
                                   "and a key of a u32 prefixlen and 1 to 256 data bytes")
        return
    lru = kind in (MAP_LRU_HASH, MAP_LRU_PERCPU_HASH)
    allowed = (_NO_PREALLOC | _ZERO_SEED | (_NO_COMMON_LRU if lru else 0)) if kind in _HASHES else 0
    if flags & ~allowed:
        raise MapError(EINVAL, f"flags {flags:#x} are not valid for {name}")
    if lru and flags & _NO_PREALLOC:
        raise MapError(ENOTSUPP, f"{name} is always preallocated (BPF_F_NO_PREALLOC: ENOTSUPP)")


cdef MapStore* _map_alloc(object kind, uint32_t key_size, uint32_t value_size,
                          uint32_t max_entries, uint32_t flags, uint32_t ncpu,
                          MapStore* tmpl) except NULL:
    """Validate like BPF_MAP_CREATE (semantics.md §4.1) and allocate the storage."""
    cdef MapStore* m
    _check_create(kind, key_size, value_size, max_entries, flags, None if tmpl == NULL else 1)
    if value_size > (1 << 20) or key_size > 512 or max_entries > (1 << 24):
        raise MapError(E2BIG, "map too large for pyebpf (value 1 MiB, key 512 B, "
                              "16M entries at most)")
    if kind == MAP_LRU_HASH or kind == MAP_LRU_PERCPU_HASH:
        if flags & _NO_COMMON_LRU:      # the kernel gives each CPU an equal share
            max_entries = (max_entries + ncpu - 1) // ncpu * ncpu
    m = <MapStore*>calloc(1, sizeof(MapStore))
    if m == NULL:
        raise MemoryError()
    m.type, m.key_size, m.value_size = kind, key_size, value_size
    m.max_entries, m.flags = max_entries, flags
    m.stride = (value_size + 7) & ~7u
    m.ncpu = ncpu if kind in (MAP_PERCPU_HASH, MAP_PERCPU_ARRAY, MAP_LRU_PERCPU_HASH) else 1
    m.free_head = m.node_free = NO_ELEM
    m.owner_type = -1
    m.tmpl = tmpl
    try:
        _map_storage(m, kind)
    except MemoryError:
        map_free(m)
        raise
    _map_reset(m)
    return m


cdef _map_storage(MapStore* m, object kind):
    cdef uint32_t n = 1
    cdef uint32_t max_entries = m.max_entries
    if kind == MAP_PROG_ARRAY:
        # slots hold programs, which programs can neither read nor write
        m.progs = <ProgCore**>_zalloc(max_entries, sizeof(ProgCore*))
        return
    if kind == MAP_PERF_EVENT_ARRAY:
        m.perf_cpu = <int32_t*>_zalloc(max_entries, sizeof(int32_t))
        m.counters = <uint64_t*>_zalloc(max_entries, sizeof(uint64_t))
        return
    if kind == MAP_STACK_TRACE:
        # one stack per bucket, kept from programs: only bpf_get_stackid writes them
        while n < max_entries:
            n <<= 1
        m.n_buckets = n
        m.hidden = True
        m.values_len = <size_t>n * m.value_size
        m.values = <uint8_t*>_zalloc(m.values_len, 1)
        m.st_nr = <uint32_t*>_zalloc(n, sizeof(uint32_t))
        m.st_hash = <uint32_t*>_zalloc(n, sizeof(uint32_t))
        return
    if kind == MAP_RINGBUF:
        m.hidden = True
        m.values_len = 2 * <size_t>max_entries
        m.values = <uint8_t*>_zalloc(m.values_len, 1)
        return
    m.values_len = <size_t>max_entries * m.ncpu * m.stride
    m.values = <uint8_t*>_zalloc(m.values_len, 1)
    if kind in (MAP_ARRAY_OF_MAPS, MAP_HASH_OF_MAPS):
        # the values are the inner maps' fds, for the syscall side only
        m.hidden = True
        m.inner = <MapStore**>_zalloc(max_entries, sizeof(MapStore*))
    if kind == MAP_LPM_TRIE:
        m.data_size = m.key_size - 4
        m.keys = <uint8_t*>_zalloc(2 * <size_t>max_entries, m.data_size)
        m.nodes = <LpmNode*>_zalloc(2 * <size_t>max_entries, sizeof(LpmNode))
    elif kind in _HASHES:
        while n < max_entries:
            n <<= 1
        m.n_buckets = n
        m.keys = <uint8_t*>_zalloc(max_entries, m.key_size)
        m.buckets = <int32_t*>_zalloc(n, sizeof(int32_t))
        if kind in (MAP_LRU_HASH, MAP_LRU_PERCPU_HASH):
            m.lru_prev = <int32_t*>_zalloc(max_entries, sizeof(int32_t))
            m.lru_next = <int32_t*>_zalloc(max_entries, sizeof(int32_t))
    else:
        return
    m.next = <int32_t*>_zalloc(max_entries, sizeof(int32_t))


cdef void _map_reset(MapStore* m) noexcept nogil:
    """Empty the storage, as at creation: free lists, empty buckets and trie, closed perf
    slots, ring positions 0 (a perf event array keeps its undrained events; program
    arrays and maps of maps keep their slots, which Map manages)."""
    cdef uint32_t k, nodes = 2 * m.max_entries
    if m.values != NULL:
        memset(m.values, 0, m.values_len)
    if m.buckets != NULL:
        for k in range(m.n_buckets):
            m.buckets[k] = NO_ELEM
    if m.next != NULL:
        for k in range(m.max_entries):
            m.next[k] = <int32_t>k + 1 if k + 1 < m.max_entries else NO_ELEM
        m.free_head = 0
    if m.nodes != NULL:
        for k in range(nodes):
            m.nodes[k].child[0] = <int32_t>k + 1 if k + 1 < nodes else NO_ELEM
        m.node_free = 0
    if m.perf_cpu != NULL:
        for k in range(m.max_entries):
            m.perf_cpu[k], m.counters[k] = -1, 0
    if m.st_nr != NULL:
        memset(m.st_nr, 0, m.n_buckets * sizeof(uint32_t))
    m.root = m.lru_head = m.lru_tail = NO_ELEM
    m.count = 0
    m.cons_pos = m.prod_pos = m.pend_pos = 0


cdef void* _zalloc(size_t n, size_t size) except NULL:
    cdef void* p = calloc(n, size)
    if p == NULL:
        raise MemoryError()
    return p
