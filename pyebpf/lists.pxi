# bpf_list_head fields of map values and the list kfuncs (kernel/bpf/helpers.c).
# Included into pyebpf/kfuncs.pxi, after heap.pxi.
#
# The layouts are the kernel's: a struct bpf_list_head is a struct list_head
# { next; prev } (16 bytes), circular, all zeroes until the first push (the kernel's
# lazy INIT_LIST_HEAD); a struct bpf_list_node is struct bpf_list_node_kern
# { struct list_head list; void *owner } (24 bytes), owner the head it is in or NULL.
# Nodes sit in objects of the arena (heap.pxi), heads in map values or in objects (a
# struct holding a bpf_list_head and its bpf_spin_lock): all memory the engine owns at
# fixed addresses, and only these functions write the links (the
# verifier refuses loads and stores of either field, copies of a value skip its heads).
#
# A program loaded without the verifier (verify=False) may have stored anything in a
# head: every link is checked before it is followed (_link_ok), and a list whose links
# are not the engine's reads as empty; the engine never follows one out of its memory.
#
# The kernel's verifier passes each push the node's offset in its struct (the r4 it
# rewrites); here the head says it: the program's map that holds the head knows the
# offset from the head's __contains tag (list_node_off), an object's head has it in the
# arena's field table (heap_field), and a head found in neither (nor in an inner map of
# one of the program's maps of maps), or a node that is no object's, is refused with
# -EINVAL.

cdef enum:
    LIST_NEXT = 0                 # the uint64_t words of a head and of a node
    LIST_PREV = 1
    LIST_OWNER = 2


cdef int32_t _list_node_off(Vm* vm, uint64_t head) noexcept nogil:
    """The offset of the node in the objects of the list whose head is at ``head`` (a
    bpf_list_head of an object, or of a value of one of the running program's maps or
    their inner maps), or -1."""
    cdef int k
    cdef MapStore* m
    cdef uint64_t rel
    cdef uint16_t f = heap_field(head)
    if f & FIELD_KIND == FIELD_LIST_HEAD:
        return f & FIELD_NODE_OFF
    m = value_map(vm, head)
    if m == NULL:
        return -1
    rel = (head - <uintptr_t>m.values) % m.stride
    for k in range(m.nlists):
        if not m.rb_roots & (1 << k) and <uint64_t>m.list_off[k] == rel:
            return m.list_node_off[k]
    return -1


cdef inline bint _link_ok(uint64_t head, uint64_t p) noexcept nogil:
    """``p`` may be followed from the list at ``head``: the head itself, or a whole
    node in the arena."""
    return p == head or (_heap != NULL and p % 8 == 0 and p >= <uintptr_t>_heap + OBJ_HDR
                         and p + SIZEOF_BPF_LIST_NODE <= <uintptr_t>_heap + HEAP_SIZE)


cdef inline uint64_t* _list_head(uint64_t head) noexcept nogil:
    """The head, initialised when it is still all zeroes or its links are not the
    engine's."""
    cdef uint64_t* h = <uint64_t*><uintptr_t>head
    if h[LIST_NEXT] == 0 or not _link_ok(head, h[LIST_NEXT]) or \
            not _link_ok(head, h[LIST_PREV]):
        h[LIST_NEXT] = h[LIST_PREV] = head
    return h


cdef uint64_t _list_add(Vm* vm, uint64_t head, uint64_t node, bint tail) noexcept nogil:
    """__bpf_list_add: link ``node`` first (last, ``tail``) into the list; a node that
    is in a list already (a refcounted object's) is -EINVAL, and the reference the
    program gave is dropped."""
    cdef int32_t noff = _list_node_off(vm, head)
    cdef uint64_t* h
    cdef uint64_t* n = <uint64_t*><uintptr_t>node
    cdef uint64_t prev, nxt
    if noff < 0 or _obj_hdr(node - <uint32_t>noff) == NULL or node == head or \
            not _link_ok(head, node):
        return err(EINVAL)
    h = _list_head(head)
    if n[LIST_OWNER]:
        obj_drop(node - <uint32_t>noff)
        return err(EINVAL)
    if tail:
        prev, nxt = h[LIST_PREV], head
    else:
        prev, nxt = head, h[LIST_NEXT]
    n[LIST_NEXT], n[LIST_PREV] = nxt, prev
    (<uint64_t*><uintptr_t>prev)[LIST_NEXT] = node
    (<uint64_t*><uintptr_t>nxt)[LIST_PREV] = node
    n[LIST_OWNER] = head
    return 0


cdef uint64_t _list_end(uint64_t head, bint tail) noexcept nogil:
    """The first (last, ``tail``) node of the list, or 0 when it is empty."""
    cdef uint64_t* h = _list_head(head)
    if h[LIST_NEXT] == head:
        return 0
    return h[LIST_PREV] if tail else h[LIST_NEXT]


cdef uint64_t _list_pop(Vm* vm, uint64_t head, bint tail) noexcept nogil:
    """__bpf_list_del: the first (last) node taken out of the list, or NULL."""
    cdef uint64_t node
    cdef uint64_t* n
    cdef uint64_t* h = <uint64_t*><uintptr_t>head
    if _list_node_off(vm, head) < 0:
        return 0
    node = _list_end(head, tail)
    if node == 0:
        return 0
    n = <uint64_t*><uintptr_t>node
    if not _link_ok(head, n[LIST_NEXT]) or not _link_ok(head, n[LIST_PREV]):
        # links that are not the engine's: the list reads as empty from here on
        h[LIST_NEXT] = h[LIST_PREV] = head
        return 0
    (<uint64_t*><uintptr_t>n[LIST_PREV])[LIST_NEXT] = n[LIST_NEXT]
    (<uint64_t*><uintptr_t>n[LIST_NEXT])[LIST_PREV] = n[LIST_PREV]
    n[LIST_NEXT] = n[LIST_PREV] = node
    n[LIST_OWNER] = 0
    return node


cdef void list_free(uint64_t head, int* lock, uint32_t node_off,
                    uint32_t* pending) noexcept nogil:
    """bpf_list_head_free: the list emptied under its ``lock`` (if any), then each
    object in it put (obj_put: the last references' join ``pending``)."""
    cdef uint64_t node, nxt, first, last, steps
    cdef uint64_t* h = <uint64_t*><uintptr_t>head
    if lock != NULL:
        map_lock(lock)
    first, last = h[LIST_NEXT], h[LIST_PREV]
    h[LIST_NEXT] = h[LIST_PREV] = 0
    if first == 0 or first == head or not _link_ok(head, first) or \
            not _link_ok(head, last) or last == head:
        if lock != NULL:
            map_unlock(lock)
        return
    # detach the chain: it ends where it came back to the head
    (<uint64_t*><uintptr_t>last)[LIST_NEXT] = 0
    if lock != NULL:
        map_unlock(lock)
    node, steps = first, 0
    while node and _link_ok(head, node) and node != head and \
            steps < HEAP_SIZE // SIZEOF_BPF_LIST_NODE:
        nxt = (<uint64_t*><uintptr_t>node)[LIST_NEXT]
        obj_put(node - node_off, pending)
        node = nxt
        steps += 1


cdef void map_free_lists(MapStore* m, uint8_t* value) noexcept nogil:
    """bpf_list_head_free of each list of a map value (bpf_rb_root_free of each
    rbtree), under the value's bpf_spin_lock, then the objects they held freed."""
    cdef int k
    cdef uint32_t pending = 0
    cdef int* lock = <int*>(value + m.spin_lock_off)
    for k in range(m.nlists):
        if m.rb_roots & (1 << k):
            rbtree_free(<uintptr_t>(value + m.list_off[k]), lock,
                        <uint32_t>m.list_node_off[k], &pending)
        else:
            list_free(<uintptr_t>(value + m.list_off[k]), lock,
                      <uint32_t>m.list_node_off[k], &pending)
    obj_free(pending)


# --- the kfuncs

cdef uint64_t _k_list_push_front(Vm* vm, uint64_t head, uint64_t node, uint64_t meta,
                                 uint64_t off, uint64_t r5) noexcept nogil:
    return _list_add(vm, head, node, False)


cdef uint64_t _k_list_push_back(Vm* vm, uint64_t head, uint64_t node, uint64_t meta,
                                uint64_t off, uint64_t r5) noexcept nogil:
    return _list_add(vm, head, node, True)


cdef uint64_t _k_list_pop_front(Vm* vm, uint64_t head, uint64_t r2, uint64_t r3,
                                uint64_t r4, uint64_t r5) noexcept nogil:
    return _list_pop(vm, head, False)


cdef uint64_t _k_list_pop_back(Vm* vm, uint64_t head, uint64_t r2, uint64_t r3,
                               uint64_t r4, uint64_t r5) noexcept nogil:
    return _list_pop(vm, head, True)


cdef uint64_t _k_list_front(Vm* vm, uint64_t head, uint64_t r2, uint64_t r3,
                            uint64_t r4, uint64_t r5) noexcept nogil:
    if _list_node_off(vm, head) < 0:
        return 0
    return _list_end(head, False)


cdef uint64_t _k_list_back(Vm* vm, uint64_t head, uint64_t r2, uint64_t r3,
                           uint64_t r4, uint64_t r5) noexcept nogil:
    if _list_node_off(vm, head) < 0:
        return 0
    return _list_end(head, True)


cdef void register_list_kfuncs() except *:
    _kfunc("bpf_list_push_front_impl", _k_list_push_front)
    _kfunc("bpf_list_push_back_impl", _k_list_push_back)
    _kfunc("bpf_list_pop_front", _k_list_pop_front)
    _kfunc("bpf_list_pop_back", _k_list_pop_back)
    _kfunc("bpf_list_front", _k_list_front)
    _kfunc("bpf_list_back", _k_list_back)
