"""The pin file's map contents (docs/pinning.md, "Map contents"): map storage walked
in C to and from that layout.  pyebpf.pinning writes and reads the files around it.

Its own compilation unit on the core's C interface (pyebpf/_core.pxd): a pinned map
is dumped and reloaded on every run of a program using it, so the walk stays in C."""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport int32_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

from pyebpf._core cimport *

cdef enum:
    LOAD_SIZE = 1
    LOAD_DUPLICATE = 2
    LOAD_LRU = 3
    LOAD_PREFIX = 4
    LOAD_SLOT = 5
    LOAD_RING = 6
    LOAD_STACK = 7
    LOAD_QUEUE = 8
    LRU_REF = 1u << 31            # in the LRU's lists: a node's ref bit
    LRU_POS = 0x7FFFFFFF          # the rest: its element's position

_LOAD_ERRORS = {
    LOAD_SIZE: "{} bytes of contents do not fit its definition",
    LOAD_DUPLICATE: "a key appears twice in its contents",
    LOAD_LRU: "its LRU lists do not fit its elements and CPUs (each element and free "
              "node once, rotations in the inactive lists, steals from its CPUs)",
    LOAD_PREFIX: "an LPM entry is refused by the trie (a prefix longer than the key, or "
                 "one given twice)",
    LOAD_SLOT: "a perf event slot has a CPU below -1",
    LOAD_RING: "its ring buffer positions do not fall on its records",
    LOAD_STACK: "a stack entry does not match its bucket, hash or frame count",
    LOAD_QUEUE: "its queue positions hold more values than max_entries",
}


cdef inline bint _is_queue(MapStore* m) noexcept nogil:
    return m.type == BPF_MAP_TYPE_QUEUE or m.type == BPF_MAP_TYPE_STACK


cdef inline uint32_t _vsize(MapStore* m) noexcept nogil:
    """The bytes of a value the contents hold: a socket map's slot holds a socket's
    8-byte cookie, an XSKMAP's {queue_id, inode}, a cgroup array's the cgroup's 8-byte
    id, whatever its declared value size (the fd user space gives)."""
    return 8 if (_is_sock_map(m) or m.type == BPF_MAP_TYPE_REUSEPORT_SOCKARRAY
                 or m.type == BPF_MAP_TYPE_XSKMAP
                 or m.type == BPF_MAP_TYPE_CGROUP_ARRAY) else m.value_size


cdef inline bint _percpu_lru(MapStore* m) noexcept nogil:
    return (m.flags & BPF_F_NO_COMMON_LRU) != 0


cdef size_t _lru_fixed(MapStore* m) noexcept nogil:
    # each list's length; each bpf_lru_list's rotation; each CPU's next_steal (and each
    # element's node: 4 bytes more per element)
    return 4 * (<size_t>lru_heads(m.lru_ncpu, _percpu_lru(m))
                + (m.lru_ncpu if _percpu_lru(m) else 1 + m.lru_ncpu))


cdef inline bint _free_list(MapStore* m, uint32_t h) noexcept nogil:
    """List head ``h`` is a free list (a bpf_lru_list's, or a CPU's local one)."""
    return h % 3 == 2 if _percpu_lru(m) or h < 3 else (h - 3) % 2 == 0


cdef size_t _dump_size(MapStore* m) noexcept nogil:
    cdef size_t vlen = <size_t>m.ncpu * _vsize(m)
    if _is_hash(m):
        return m.count * (m.key_size + vlen) + (m.count * <size_t>4 + _lru_fixed(m)
                                                 if _is_lru(m) else 0)
    if m.type == BPF_MAP_TYPE_LPM_TRIE:
        return m.count * (<size_t>m.key_size + m.value_size)
    if m.type == BPF_MAP_TYPE_PERF_EVENT_ARRAY:
        return m.max_entries * <size_t>12
    if m.type == BPF_MAP_TYPE_RINGBUF:
        return 24 + <size_t>m.max_entries
    if m.type == BPF_MAP_TYPE_STACK_TRACE:
        return m.count * (12 + <size_t>m.value_size)
    if _is_queue(m):
        return 16 + m.max_entries * <size_t>m.value_size
    if m.type == BPF_MAP_TYPE_BLOOM_FILTER:
        return 4 + m.values_len
    return m.max_entries * vlen


cdef uint8_t* _put_values(MapStore* m, uint8_t* p, int32_t e) noexcept nogil:
    cdef uint32_t c
    for c in range(m.ncpu):
        memcpy(p, map_value(m, e, c), _vsize(m))
        p += _vsize(m)
    return p


cdef const uint8_t* _get_values(MapStore* m, const uint8_t* p, int32_t e) noexcept nogil:
    cdef uint32_t c
    for c in range(m.ncpu):
        memcpy(map_value(m, e, c), p, _vsize(m))
        p += _vsize(m)
    return p


cdef inline uint8_t* _put32(uint8_t* p, uint32_t v) noexcept nogil:
    memcpy(p, &v, 4)
    return p + 4


cdef void _dump_lru(MapStore* m, uint8_t* p, const int32_t* pos) noexcept nogil:
    """The LRU's state (lru.pxi): each list's length, then, but for a free list, its
    nodes head to tail as their element's ``pos`` in the dump and ref bit; each
    bpf_lru_list's next_inactive_rotation as a place in its inactive list (-1: the
    head); each CPU's next_steal (common LRU).  A free node holds no element, and its
    ref bit is cleared as it leaves the list (__local_list_add_pending,
    bpf_percpu_lru_pop_free): a free list is its length, untouched nodes (lru.pxi)
    included."""
    cdef uint32_t h, n, l, nlists = m.lru_ncpu if _percpu_lru(m) else 1
    cdef int32_t head, e, at
    for h in range(lru_heads(m.lru_ncpu, _percpu_lru(m))):
        head = <int32_t>(m.max_entries + h)
        n = 0
        if (h < 3 or _percpu_lru(m)) and h % 3 == 2:        # a bpf_lru_list's free list
            n = m.lru_untouched[h // 3]
        e = m.lru_next[head]
        while e != head:
            n += 1
            e = m.lru_next[e]
        p = _put32(p, n)
        if _free_list(m, h):
            continue
        e = m.lru_next[head]
        while e != head:
            p = _put32(p, <uint32_t>pos[e] | (LRU_REF if m.lru_ref[e] else 0))
            e = m.lru_next[e]
    for l in range(nlists):
        head = <int32_t>(m.max_entries + 3 * l + 1)       # its inactive list
        at, e = -1, head
        while e != m.lru_rotation[l]:
            e = m.lru_next[e]
            at += 1
        p = _put32(p, <uint32_t>at)
    for l in range(0 if _percpu_lru(m) else m.lru_ncpu):
        p = _put32(p, m.lru_steal[l])


cdef int _load_lru(MapStore* m, const uint8_t* p, uint32_t cnt, int32_t* node) noexcept nogil:
    """The LRU's state as _dump_lru writes it, for elements 0..cnt-1: each element's
    node in ``node`` (-1 on entry): 0, or LOAD_LRU.  A bpf_lru_list's free nodes, up to
    its share of the nodes, stay untouched (lru.pxi: the first of its share, linked as
    pops reach them), so a big LRU holding few elements costs memory for those only;
    the other nodes take the rest of its share, then of the next, in the lists' order."""
    cdef bint percpu = _percpu_lru(m)
    cdef uint32_t heads = lru_heads(m.lru_ncpu, percpu), nlists = m.lru_ncpu if percpu else 1
    cdef uint32_t share = m.max_entries // nlists
    cdef uint32_t h, n, i, code, l, cpu, t, listed = 0, block = 0, nxt, end
    cdef uint64_t total = 0
    cdef const uint8_t* q = p
    cdef int32_t head, e, at
    # the lists' lengths first: each share's untouched nodes, and that they add up
    for h in range(heads):
        n = _le32(q)
        q += 4
        total += n
        if not _free_list(m, h):
            if n > cnt - listed:
                return LOAD_LRU
            listed += n
            q += 4 * <size_t>n
        elif percpu or h < 3:
            m.lru_untouched[h // 3] = min(n, share)
    if listed != cnt or total != m.max_entries:
        return LOAD_LRU
    for h in range(heads):
        head = <int32_t>(m.max_entries + h)
        m.lru_prev[head] = m.lru_next[head] = head
    for l in range(2 * nlists):
        m.lru_counts[l] = 0
    # the nodes given out: those of block 0 past its untouched ones, then block 1's...
    # (the last block ends at max_entries); they are exactly the nodes not untouched
    nxt, end = m.lru_untouched[0], (share if nlists > 1 else m.max_entries)
    for h in range(heads):
        head = <int32_t>(m.max_entries + h)
        if percpu or h < 3:         # a bpf_lru_list's active, inactive and free lists
            l, t = (h // 3 if percpu else 0), h % 3
            cpu = l
        else:                       # a CPU's local free and pending lists
            l, cpu, t = 0, (h - 3) // 2, 3 + (h - 3) % 2
        n = _le32(p)
        p += 4
        if t == 2:
            n -= m.lru_untouched[l]
        for i in range(n):
            while nxt == end:
                block += 1
                nxt = block * share + m.lru_untouched[block]
                end = m.max_entries if block == nlists - 1 else (block + 1) * share
            e = <int32_t>nxt
            nxt += 1
            code = 0
            if not _free_list(m, h):
                code = _le32(p)
                p += 4
                if code & LRU_POS >= cnt or node[code & LRU_POS] >= 0:
                    return LOAD_LRU
                node[code & LRU_POS] = e
            m.lru_type[e], m.lru_ref[e], m.lru_cpu[e] = t, (code & LRU_REF) != 0, cpu
            m.lru_prev[e], m.lru_next[e] = m.lru_prev[head], head
            m.lru_next[m.lru_prev[head]] = e
            m.lru_prev[head] = e
            if t < 2:
                m.lru_counts[2 * l + t] += 1
    for l in range(nlists):
        head = <int32_t>(m.max_entries + 3 * l + 1)
        at = <int32_t>_le32(p)
        p += 4
        e = head
        while at >= 0:
            e = m.lru_next[e]
            at -= 1
            if e == head:
                return LOAD_LRU
        if at < -1:
            return LOAD_LRU
        m.lru_rotation[l] = e
    for l in range(0 if percpu else m.lru_ncpu):
        if _le32(p) >= m.lru_ncpu:
            return LOAD_LRU
        m.lru_steal[l] = <uint16_t>_le32(p)
        p += 4
    return 0


cdef int _dump_store(MapStore* m, uint8_t* p) noexcept nogil:
    """Write the contents (_dump_size bytes) to ``p``; -1 when out of memory."""
    cdef uint32_t b, k = 0
    cdef int32_t e
    cdef int32_t* aux = NULL
    if _is_lru(m) or m.type == BPF_MAP_TYPE_LPM_TRIE:
        # LRU: each element's position in the dump; LPM: the walk's stack
        # (only elements' nodes are read: untouched nodes cost nothing)
        aux = <int32_t*>malloc((2 * <size_t>m.count + 1) * sizeof(int32_t)
                               if m.type == BPF_MAP_TYPE_LPM_TRIE
                               else m.max_entries * sizeof(int32_t))
        if aux == NULL:
            return -1
    if _is_hash(m):
        for b in range(m.n_buckets):
            e = map_bucket_head(m, b)
            while e != NO_ELEM:
                memcpy(p, m.keys + <size_t>e * m.key_size, m.key_size)
                p = _put_values(m, p + m.key_size, e)
                if aux != NULL:
                    aux[e] = k
                k += 1
                e = m.next[e]
        if aux != NULL:
            _dump_lru(m, p, aux)
    elif m.type == BPF_MAP_TYPE_LPM_TRIE:
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
                memcpy(p + m.key_size, map_value(m, m.nodes[e].value, 0), m.value_size)
                p += m.key_size + m.value_size
            for b in range(2):
                if m.nodes[e].child[1 - b] != NO_ELEM:
                    aux[k] = m.nodes[e].child[1 - b]
                    k += 1
    elif m.type == BPF_MAP_TYPE_PERF_EVENT_ARRAY:
        for b in range(m.max_entries):
            memcpy(p, &m.perf_cpu[b], 4)
            memcpy(p + 4, &m.counters[b], 8)
            p += 12
    elif m.type == BPF_MAP_TYPE_RINGBUF:
        memcpy(p, &m.cons_pos, 8)
        memcpy(p + 8, &m.prod_pos, 8)
        memcpy(p + 16, &m.pend_pos, 8)
        memcpy(p + 24, m.values, m.max_entries)
    elif m.type == BPF_MAP_TYPE_STACK_TRACE:
        for b in range(m.n_buckets):
            if m.st_nr[b]:
                memcpy(p, &b, 4)
                memcpy(p + 4, &m.st_hash[b], 4)
                memcpy(p + 8, &m.st_nr[b], 4)
                memcpy(p + 12, m.values + <size_t>b * m.value_size, m.value_size)
                p += 12 + m.value_size
    elif m.type == BPF_MAP_TYPE_BLOOM_FILTER:
        memcpy(p, &m.bloom_hashes, 4)
        memcpy(p + 4, m.values, m.values_len)
    else:
        if _is_queue(m):                    # its positions, then its slots as an array's
            memcpy(p, &m.cons_pos, 8)
            memcpy(p + 8, &m.prod_pos, 8)
            p += 16
        for b in range(m.max_entries):
            p = _put_values(m, p, b)
    free(aux)
    return 0


cdef int _load_store(MapStore* m, const uint8_t* p, size_t n) noexcept nogil:
    """Fill the emptied map from ``p[:n]``, laid out as _dump_store writes: 0, or a
    LOAD_* error."""
    cdef size_t vlen = <size_t>m.ncpu * _vsize(m)
    cdef size_t esize = m.key_size + vlen
    cdef size_t lru_size = _lru_fixed(m) if _is_lru(m) else 0
    cdef size_t cnt, i, k
    cdef int32_t e, prev
    cdef int32_t* node = NULL
    cdef int rc
    cdef uint32_t b, hsh, nr
    cdef uint64_t pos, mask = m.max_entries - 1
    cdef bint cons_ok, pend_ok
    if m.type == BPF_MAP_TYPE_LPM_TRIE:
        esize = m.key_size + m.value_size
    elif m.type == BPF_MAP_TYPE_STACK_TRACE:
        esize = 12 + m.value_size
    if n < lru_size:
        return LOAD_SIZE
    n -= lru_size
    if _is_lru(m):
        esize += 4              # each element's node in the LRU's lists
    cnt = n // esize if esize else 0
    if _is_hash(m) or m.type in (BPF_MAP_TYPE_LPM_TRIE, BPF_MAP_TYPE_STACK_TRACE):
        if cnt * esize != n or cnt > m.max_entries:
            return LOAD_SIZE
    elif n != _dump_size(m):
        return LOAD_SIZE
    if _is_lru(m):
        # entry i's element is the node the lists give it
        esize -= 4
        node = <int32_t*>malloc((cnt + 1) * sizeof(int32_t))
        if node == NULL:
            return -1
        for i in range(cnt):
            node[i] = -1
        rc = _load_lru(m, p + cnt * esize, <uint32_t>cnt, node)
        if rc:
            free(node)
            return rc
    elif _is_hash(m):
        # element i holds entry i; taken before written: a failed load's _map_reset
        # clears them; the elements after them come next, in order
        m.elem_hwm = <uint32_t>cnt
    if _is_hash(m):
        # linked in reverse so that each bucket lists its elements in the dumped order
        for k in range(cnt):
            i = cnt - 1 - k
            e = node[i] if node != NULL else <int32_t>i
            if _hash_find(m, p + i * esize, &prev) != NO_ELEM:
                free(node)
                return LOAD_DUPLICATE
            memcpy(m.keys + <size_t>e * m.key_size, p + i * esize, m.key_size)
            _get_values(m, p + i * esize + m.key_size, e)
            _hash_link(m, e)
        m.count = <uint32_t>cnt
        free(node)
    elif m.type == BPF_MAP_TYPE_LPM_TRIE:
        for i in range(cnt):
            if _lpm_update(m, p + i * esize, p + i * esize + m.key_size, BPF_NOEXIST):
                return LOAD_PREFIX
    elif m.type == BPF_MAP_TYPE_PERF_EVENT_ARRAY:
        for b in range(m.max_entries):
            memcpy(&e, p + 12 * b, 4)
            if e < -1:
                return LOAD_SLOT
            m.perf_cpu[b] = e
            memcpy(&m.counters[b], p + 12 * b + 4, 8)
    elif m.type == BPF_MAP_TYPE_RINGBUF:
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
    elif m.type == BPF_MAP_TYPE_STACK_TRACE:
        for i in range(cnt):
            b, hsh, nr = _le32(p), _le32(p + 4), _le32(p + 8)
            if (b >= m.n_buckets or m.st_nr[b] or hsh & (m.n_buckets - 1) != b or nr == 0
                    or nr > m.value_size // 8 or jhash(p + 12, nr * 8, 0) != hsh):
                return LOAD_STACK
            m.st_nr[b], m.st_hash[b] = nr, hsh
            memcpy(m.values + <size_t>b * m.value_size, p + 12, m.value_size)
            p += esize
        m.count = <uint32_t>cnt
    elif m.type == BPF_MAP_TYPE_BLOOM_FILTER:
        if _le32(p) != m.bloom_hashes:
            return LOAD_SIZE
        memcpy(m.values, p + 4, m.values_len)
    else:
        if _is_queue(m):
            memcpy(&m.cons_pos, p, 8)
            memcpy(&m.prod_pos, p + 8, 8)
            if m.prod_pos - m.cons_pos > m.max_entries or m.prod_pos < m.cons_pos:
                return LOAD_QUEUE
            p += 16
        for b in range(m.max_entries):
            p = _get_values(m, p, b)
    return 0


def dump(m):
    """The contents of Map ``m`` in the pin file's layout for its type; program arrays
    and maps of maps: [(key, Program or Map)] in iteration order."""
    cdef MapStore* s = map_store(m)
    cdef bytes out
    cdef uint8_t* p
    cdef int rc
    if s.type == BPF_MAP_TYPE_PROG_ARRAY or s.inner != NULL:
        return m._slots()
    out = PyBytes_FromStringAndSize(NULL, _dump_size(s))
    p = <uint8_t*>PyBytes_AS_STRING(out)
    with nogil:
        rc = _dump_store(s, p)
    if rc:
        raise MemoryError()
    return out


def load(m, data):
    """Replace the contents of Map ``m`` with ``data``, in :func:`dump`'s layout.
    Contents that do not fit the map leave it empty and raise ValueError."""
    cdef MapStore* s = map_store(m)
    cdef bytes raw
    cdef const uint8_t* p
    cdef size_t n
    cdef int rc
    if s.type == BPF_MAP_TYPE_PROG_ARRAY or s.inner != NULL:
        if len({k for k, _ in data}) != len(data):
            raise ValueError(f"map {m._label()}: {_LOAD_ERRORS[LOAD_DUPLICATE]}")
        m._load_slots(data)
        return
    raw = data
    p, n = <const uint8_t*>PyBytes_AS_STRING(raw), len(raw)
    _map_reset(s)
    with nogil:
        rc = _load_store(s, p, n)
    if rc:
        _map_reset(s)
        if rc < 0:
            raise MemoryError()
        raise ValueError(f"map {m._label()}: {_LOAD_ERRORS[rc].format(len(raw))}")
