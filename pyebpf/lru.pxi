# The LRU of LRU_HASH and LRU_PERCPU_HASH maps: the kernel's kernel/bpf/bpf_lru_list.c,
# list for list, so that a map filled past its size keeps the keys the kernel keeps.
# Included into pyebpf/_core.pyx after maps.pxi, whose hash table it evicts from.
#
# Every element is a node on exactly one list.  A list is circular through a head, as
# the kernel's list_head: lru_prev/lru_next hold the nodes' links, then the heads'
# (index max_entries and up).  The common LRU (the default) has one bpf_lru_list (heads
# ACTIVE, INACTIVE, FREE) and per CPU a local free list and a pending list; with
# BPF_F_NO_COMMON_LRU each CPU has a bpf_lru_list of its own over an equal share of the
# elements.  The CPU a run is on picks the local (or per-CPU) lists: a program's the
# run's CPU (its skb's cpu), a syscall's the CPU the caller names (0 unless it says).
#
# bpf_lru_populate threads every node onto a free list at creation; here a free list's
# nodes no one has taken yet stay off it, counted (lru_untouched), and are linked at its
# tail, in the order the kernel threaded them, only as a pop reaches them (_free_fill):
# a big LRU's lists cost no resident memory until used, and every list reads as the
# kernel's.
#
# The kernel frees a node another CPU holds the lock of later (pending_free); one
# thread never meets that, and tcsim's threads take the map's lock around each change.

cdef enum:
    LRU_ACTIVE = 0                # enum bpf_lru_list_type
    LRU_INACTIVE = 1
    LRU_FREE = 2
    LRU_LOCAL_FREE = 3
    LRU_LOCAL_PENDING = 4
    NR_BPF_LRU_LIST_T = 3         # the lists of a bpf_lru_list
    NR_BPF_LRU_LIST_COUNT = 2     # the ones it counts: active, inactive
    LOCAL_FREE_TARGET = 128       # the most nodes a CPU takes from the common lists at once
    LOCAL_NR_SCANS = LOCAL_FREE_TARGET
    PERCPU_FREE_TARGET = 4
    PERCPU_NR_SCANS = PERCPU_FREE_TARGET


cdef inline bint _lru_percpu(MapStore* m) noexcept nogil:
    return (m.flags & BPF_F_NO_COMMON_LRU) != 0


cdef uint32_t lru_heads(uint32_t ncpu, bint percpu) noexcept nogil:
    """The list heads: a bpf_lru_list's per CPU, or the common one's and a local free
    and pending list per CPU."""
    return NR_BPF_LRU_LIST_T * ncpu if percpu else NR_BPF_LRU_LIST_T + 2 * ncpu


cdef inline int32_t _head(MapStore* m, uint32_t l, int t) noexcept nogil:
    # list t of bpf_lru_list l (0 for the common LRU, the CPU for per-CPU lists)
    return <int32_t>(m.max_entries + NR_BPF_LRU_LIST_T * l + t)


cdef inline int32_t _local_free(MapStore* m, uint32_t cpu) noexcept nogil:
    return <int32_t>(m.max_entries + NR_BPF_LRU_LIST_T + 2 * cpu)


cdef inline int32_t _local_pending(MapStore* m, uint32_t cpu) noexcept nogil:
    return <int32_t>(m.max_entries + NR_BPF_LRU_LIST_T + 2 * cpu + 1)


# --- list_head, as include/linux/list.h ---

cdef inline void _list_del(MapStore* m, int32_t n) noexcept nogil:
    m.lru_next[m.lru_prev[n]] = m.lru_next[n]
    m.lru_prev[m.lru_next[n]] = m.lru_prev[n]


cdef inline void _list_insert(MapStore* m, int32_t n, int32_t prev, int32_t nxt) noexcept nogil:
    m.lru_prev[n], m.lru_next[n] = prev, nxt
    m.lru_next[prev] = n
    m.lru_prev[nxt] = n


cdef inline void _list_move(MapStore* m, int32_t n, int32_t head) noexcept nogil:
    _list_del(m, n)
    _list_insert(m, n, head, m.lru_next[head])


cdef inline void _list_move_tail(MapStore* m, int32_t n, int32_t head) noexcept nogil:
    _list_del(m, n)
    _list_insert(m, n, m.lru_prev[head], head)


cdef inline bint _list_empty(MapStore* m, int32_t head) noexcept nogil:
    return m.lru_next[head] == head


# --- the untouched nodes ---

cdef void _free_fill(MapStore* m, uint32_t l, uint32_t want) noexcept nogil:
    """Up to ``want`` of bpf_lru_list ``l``'s untouched nodes linked at its free list's
    tail: bpf_lru_populate list_adds node 0 first, so the list ends ..., 1, 0 (a per-CPU
    list over its own share of the nodes)."""
    cdef int32_t head = _head(m, l, LRU_FREE), n
    cdef uint32_t base = l * (m.max_entries // m.lru_ncpu) if _lru_percpu(m) else 0
    while want and m.lru_untouched[l]:
        m.lru_untouched[l] -= 1
        n = <int32_t>(base + m.lru_untouched[l])
        m.lru_cpu[n] = <uint16_t>l
        m.lru_type[n] = LRU_FREE
        m.lru_ref[n] = 0
        _list_insert(m, n, m.lru_prev[head], head)
        want -= 1


# --- a bpf_lru_list's moves ---

cdef inline void _count_inc(MapStore* m, uint32_t l, uint8_t t) noexcept nogil:
    if t < NR_BPF_LRU_LIST_COUNT:
        m.lru_counts[NR_BPF_LRU_LIST_COUNT * l + t] += 1


cdef inline void _count_dec(MapStore* m, uint32_t l, uint8_t t) noexcept nogil:
    if t < NR_BPF_LRU_LIST_COUNT:
        m.lru_counts[NR_BPF_LRU_LIST_COUNT * l + t] -= 1


cdef inline void _pass_rotation(MapStore* m, uint32_t l, int32_t n) noexcept nogil:
    # a node leaving its place takes the inactive rotation's start one back with it
    if m.lru_rotation[l] == n:
        m.lru_rotation[l] = m.lru_prev[n]


cdef void _move_to_free(MapStore* m, uint32_t l, int32_t n, int32_t free_list, uint8_t t,
                        bint tail) noexcept nogil:
    """__bpf_lru_node_move_to_free (``tail``: onto a CPU's local free list in the order
    bpf_lru_list_pop_free_to_local hands them over)."""
    _pass_rotation(m, l, n)
    _count_dec(m, l, m.lru_type[n])
    m.lru_type[n] = t
    if tail:
        _list_move_tail(m, n, free_list)
    else:
        _list_move(m, n, free_list)


cdef void _move_in(MapStore* m, uint32_t l, int32_t n, uint8_t t) noexcept nogil:
    """__bpf_lru_node_move_in: a pending node onto the common lists."""
    _count_inc(m, l, t)
    m.lru_type[n] = t
    m.lru_ref[n] = 0
    _list_move(m, n, _head(m, l, t))


cdef void _move(MapStore* m, uint32_t l, int32_t n, uint8_t t) noexcept nogil:
    """__bpf_lru_node_move: to the head of list ``t``, its ref bit cleared."""
    if m.lru_type[n] != t:
        _count_dec(m, l, m.lru_type[n])
        _count_inc(m, l, t)
        m.lru_type[n] = t
    m.lru_ref[n] = 0
    _pass_rotation(m, l, n)
    _list_move(m, n, _head(m, l, t))


cdef void _rotate_active(MapStore* m, uint32_t l, uint32_t nr_scans) noexcept nogil:
    """__bpf_lru_list_rotate_active: from the tail, referenced nodes go back to the
    active head, the others to the inactive head."""
    cdef int32_t active = _head(m, l, LRU_ACTIVE)
    cdef int32_t first = m.lru_next[active]
    cdef int32_t n = m.lru_prev[active], tmp
    cdef uint32_t i = 0
    while n != active:
        tmp = m.lru_prev[n]
        _move(m, l, n, LRU_ACTIVE if m.lru_ref[n] else LRU_INACTIVE)
        i += 1
        if i == nr_scans or n == first:
            break
        n = tmp


cdef void _rotate_inactive(MapStore* m, uint32_t l, uint32_t nr_scans) noexcept nogil:
    """__bpf_lru_list_rotate_inactive: from next_inactive_rotation towards the head,
    referenced nodes go to the active list; the others stay."""
    cdef int32_t inactive = _head(m, l, LRU_INACTIVE)
    cdef int32_t cur, last, nxt = inactive
    cdef uint32_t i = 0
    if _list_empty(m, inactive):
        return
    last = m.lru_next[m.lru_rotation[l]]
    if last == inactive:
        last = m.lru_next[last]
    cur = m.lru_rotation[l]
    while i < nr_scans:
        if cur == inactive:
            cur = m.lru_prev[cur]
            continue
        nxt = m.lru_prev[cur]
        if m.lru_ref[cur]:
            _move(m, l, cur, LRU_ACTIVE)
        if cur == last:
            break
        cur = nxt
        i += 1
    m.lru_rotation[l] = nxt


cdef void _rotate(MapStore* m, uint32_t l, uint32_t nr_scans) noexcept nogil:
    """__bpf_lru_list_rotate: the active list when the inactive one is the shorter."""
    cdef uint32_t* counts = &m.lru_counts[NR_BPF_LRU_LIST_COUNT * l]
    if counts[LRU_INACTIVE] < counts[LRU_ACTIVE]:
        _rotate_active(m, l, nr_scans)
    _rotate_inactive(m, l, nr_scans)


cdef uint32_t _shrink_inactive(MapStore* m, uint32_t l, uint32_t nr_scans, uint32_t want,
                               int32_t free_list, uint8_t t, bint tail) noexcept nogil:
    """__bpf_lru_list_shrink_inactive: from the tail, unreferenced nodes leave the hash
    table for ``free_list``, referenced ones go to the active list."""
    cdef int32_t inactive = _head(m, l, LRU_INACTIVE)
    cdef int32_t n = m.lru_prev[inactive], tmp
    cdef uint32_t done = 0, i = 0
    while n != inactive:
        tmp = m.lru_prev[n]
        if m.lru_ref[n]:
            _move(m, l, n, LRU_ACTIVE)
        else:
            lru_del_from_htab(m, n)
            _move_to_free(m, l, n, free_list, t, tail)
            done += 1
            if done == want:
                break
        i += 1
        if i == nr_scans:
            break
        n = tmp
    return done


cdef uint32_t _shrink(MapStore* m, uint32_t l, uint32_t nr_scans, uint32_t want,
                      int32_t free_list, uint8_t t, bint tail) noexcept nogil:
    """__bpf_lru_list_shrink: else the inactive (or, empty, the active) list's tail
    node, referenced or not."""
    cdef int32_t force, n
    cdef uint32_t done = _shrink_inactive(m, l, nr_scans, want, free_list, t, tail)
    if done:
        return done
    force = _head(m, l, LRU_INACTIVE)
    if _list_empty(m, force):
        force = _head(m, l, LRU_ACTIVE)
    n = m.lru_prev[force]
    if n == force:
        return 0
    lru_del_from_htab(m, n)
    _move_to_free(m, l, n, free_list, t, tail)
    return 1


# --- the common LRU's local lists ---

cdef void _local_flush(MapStore* m, uint32_t cpu) noexcept nogil:
    """__local_list_flush: a CPU's pending nodes, oldest first, onto the common lists."""
    cdef int32_t pending = _local_pending(m, cpu)
    cdef int32_t n = m.lru_prev[pending], tmp
    while n != pending:
        tmp = m.lru_prev[n]
        _move_in(m, 0, n, LRU_ACTIVE if m.lru_ref[n] else LRU_INACTIVE)
        n = tmp


cdef void _pop_free_to_local(MapStore* m, uint32_t cpu) noexcept nogil:
    """bpf_lru_list_pop_free_to_local: up to target_free nodes for the CPU's local free
    list, from the common free list, then shrunk from the inactive list."""
    cdef int32_t free_list = _head(m, 0, LRU_FREE), local = _local_free(m, cpu)
    cdef int32_t n, tmp
    cdef uint32_t nfree = 0
    _local_flush(m, cpu)
    _rotate(m, 0, LOCAL_NR_SCANS)
    _free_fill(m, 0, m.lru_target_free)
    n = m.lru_next[free_list]
    while n != free_list:
        tmp = m.lru_next[n]
        _move_to_free(m, 0, n, local, LRU_LOCAL_FREE, True)
        nfree += 1
        if nfree == m.lru_target_free:
            break
        n = tmp
    if nfree < m.lru_target_free:
        _shrink(m, 0, LOCAL_NR_SCANS, m.lru_target_free - nfree, local, LRU_LOCAL_FREE, True)


cdef inline int32_t _local_pop_free(MapStore* m, uint32_t cpu) noexcept nogil:
    cdef int32_t local = _local_free(m, cpu)
    cdef int32_t n = m.lru_next[local]
    if n == local:
        return NO_ELEM
    _list_del(m, n)
    return n


cdef int32_t _local_pop_pending(MapStore* m, uint32_t cpu) noexcept nogil:
    """__local_list_pop_pending: the oldest unreferenced pending node, else the oldest."""
    cdef int32_t pending = _local_pending(m, cpu)
    cdef int32_t n
    cdef bint force
    for force in range(2):
        n = m.lru_prev[pending]
        while n != pending:
            if force or not m.lru_ref[n]:
                lru_del_from_htab(m, n)
                _list_del(m, n)
                return n
            n = m.lru_prev[n]
    return NO_ELEM


cdef inline void _add_pending(MapStore* m, uint32_t cpu, int32_t n) noexcept nogil:
    m.lru_cpu[n] = <uint16_t>cpu
    m.lru_type[n] = LRU_LOCAL_PENDING
    m.lru_ref[n] = 0
    _list_insert(m, n, _local_pending(m, cpu), m.lru_next[_local_pending(m, cpu)])


cdef int32_t _common_pop_free(MapStore* m, uint32_t cpu) noexcept nogil:
    """bpf_common_lru_pop_free: the CPU's local free list, refilled from the common
    lists when empty, else stolen from each CPU's local lists in turn."""
    cdef int32_t n = _local_pop_free(m, cpu)
    cdef uint32_t steal, first
    if n == NO_ELEM:
        _pop_free_to_local(m, cpu)
        n = _local_pop_free(m, cpu)
    if n == NO_ELEM:
        first = steal = m.lru_steal[cpu]
        while True:
            n = _local_pop_free(m, steal)
            if n == NO_ELEM:
                n = _local_pop_pending(m, steal)
            steal = (steal + 1) % m.lru_ncpu
            if n != NO_ELEM or steal == first:
                break
        m.lru_steal[cpu] = <uint16_t>steal
        if n == NO_ELEM:
            return NO_ELEM
    _add_pending(m, cpu, n)
    return n


cdef int32_t _percpu_pop_free(MapStore* m, uint32_t cpu) noexcept nogil:
    """bpf_percpu_lru_pop_free: the CPU's own lists only."""
    cdef int32_t free_list = _head(m, cpu, LRU_FREE)
    cdef int32_t n
    _rotate(m, cpu, PERCPU_NR_SCANS)
    _free_fill(m, cpu, 1)
    if _list_empty(m, free_list):
        _shrink(m, cpu, PERCPU_NR_SCANS, PERCPU_FREE_TARGET, free_list, LRU_FREE, False)
    if _list_empty(m, free_list):
        return NO_ELEM
    n = m.lru_next[free_list]
    m.lru_ref[n] = 0
    _move(m, cpu, n, LRU_INACTIVE)
    return n


cdef int32_t lru_pop_free(MapStore* m, uint32_t cpu) noexcept nogil:
    """bpf_lru_pop_free: a node for a new element, taken on ``cpu`` (evicting elements
    when none is free), or NO_ELEM."""
    cpu %= m.lru_ncpu
    if _lru_percpu(m):
        return _percpu_pop_free(m, cpu)
    return _common_pop_free(m, cpu)


cdef void lru_push_free(MapStore* m, int32_t n) noexcept nogil:
    """bpf_lru_push_free: a node whose element left the hash table (or never entered
    it): a pending node to its CPU's local free list, others to the free list."""
    if _lru_percpu(m):
        _move(m, m.lru_cpu[n], n, LRU_FREE)
    elif m.lru_type[n] == LRU_LOCAL_PENDING:
        m.lru_type[n] = LRU_LOCAL_FREE
        m.lru_ref[n] = 0
        _list_move(m, n, _local_free(m, m.lru_cpu[n]))
    else:
        _move(m, 0, n, LRU_FREE)


cdef inline void lru_set_ref(MapStore* m, int32_t n) noexcept nogil:
    """bpf_lru_node_set_ref: a program's lookup marks the element used."""
    if not m.lru_ref[n]:
        m.lru_ref[n] = 1


cdef void lru_populate(MapStore* m) noexcept nogil:
    """bpf_lru_init and bpf_lru_populate: every node free (untouched: _free_fill links
    them as they are reached); the common LRU's batch (target_free) is half a CPU's
    share, 1 to LOCAL_FREE_TARGET; per-CPU lists get max_entries / ncpu nodes each."""
    cdef uint32_t k, share = m.max_entries // m.lru_ncpu
    cdef uint32_t nheads = lru_heads(m.lru_ncpu, _lru_percpu(m))
    cdef uint32_t nlists = m.lru_ncpu if _lru_percpu(m) else 1
    cdef int32_t h
    for k in range(nheads):
        h = <int32_t>(m.max_entries + k)
        m.lru_prev[h] = m.lru_next[h] = h
    for k in range(nlists):
        m.lru_counts[NR_BPF_LRU_LIST_COUNT * k] = 0
        m.lru_counts[NR_BPF_LRU_LIST_COUNT * k + 1] = 0
        m.lru_rotation[k] = _head(m, k, LRU_INACTIVE)
        m.lru_untouched[k] = share if _lru_percpu(m) else m.max_entries
    for k in range(m.lru_ncpu):
        m.lru_steal[k] = <uint16_t>k
    m.lru_target_free = min(max(share // 2, 1), LOCAL_FREE_TARGET)
