# Objects programs allocate (bpf_obj_new), in one arena the engine owns.  Included into
# pyebpf/kfuncs.pxi.
#
# The kernel takes them from bpf_global_ma (kernel/bpf/memalloc.c): units of at most
# 4096 bytes, the allocation's NULL when none is left.  Here each object sits behind an
# ObjHdr in one HEAP_SIZE arena, reused through a free list per 8-byte size class;
# bpf_obj_new is NULL only for a struct too large for the kernel's caches or when the
# arena is full.  A per-CPU object (bpf_percpu_obj_new) is its struct once per CPU, the
# copies side by side: the program's pointer is CPU 0's copy, and bpf_per_cpu_ptr and
# bpf_this_cpu_ptr (percpu.pxi) step to the others; the kernel's pointer is to a cell
# holding the __percpu address, which its per_cpu_ptr loads first (do_misc_fixups), a
# difference no program can see since only those helpers read through it.  The kptr
# fields, graph roots and lock of an object's struct are a record its header names:
# dropping the object drops what its kptrs, lists and trees hold (bpf_obj_free_fields),
# objects that hold objects freed in turn from one pending chain, not by recursion.  An
# object's roots and locks are also marked in a table of the arena's 4-byte words
# (_heap_fields), so the list, rbtree and lock functions find what a pointer into an
# object is, as they find a map value's fields from its map.  The arena is one region of every run once a program that allocates
# exists: objects outlive runs (a map's kptr field keeps them), and the verifier, not
# this region, keeps a program from touching an object it dropped.

cdef extern from *:
    """
    static inline uint32_t pyebpf_dec32(uint32_t* p) {
        return __atomic_sub_fetch(p, 1, __ATOMIC_ACQ_REL);
    }
    static inline uint64_t pyebpf_xchg64(uint64_t* p, uint64_t v) {
        return __atomic_exchange_n(p, v, __ATOMIC_ACQ_REL);
    }
    static inline int pyebpf_inc_not_zero32(uint32_t* p) {
        uint32_t o = __atomic_load_n(p, __ATOMIC_RELAXED);
        while (o)
            if (__atomic_compare_exchange_n(p, &o, o + 1, 0, __ATOMIC_ACQ_REL,
                                            __ATOMIC_RELAXED))
                return 1;
        return 0;
    }
    """
    uint32_t atomic_dec32 "pyebpf_dec32" (uint32_t* p) nogil
    uint64_t atomic_xchg64 "pyebpf_xchg64" (uint64_t* p, uint64_t v) nogil
    bint atomic_inc_not_zero32 "pyebpf_inc_not_zero32" (uint32_t* p) nogil

cdef enum:
    HEAP_SIZE = 4 << 20
    OBJ_HDR = 16                  # sizeof(ObjHdr): objects stay 8-byte aligned
    OBJ_MAX = 4096                # bpf_mem_alloc's largest unit, its llist_node included
    OBJ_LLIST_NODE = 8            # what bpf_mem_alloc adds to each object (LLIST_NODE_SZ)
    REGION_HEAP = 1020            # the arena's region name (past helpers_sock.pxi's)
    OBJ_CLASSES = 513             # free lists: one per 8-byte size up to OBJ_MAX

ctypedef struct ObjHdr:
    uint32_t size                 # the object's bytes (a per-CPU object's: one copy's),
                                  # rounded up to 8
    int16_t refcount_off          # its struct bpf_refcount, or -1
    uint16_t copies               # a per-CPU object's copies (one per CPU), else 0
    uint32_t record               # its struct's kptr fields (_obj_records), or 0
    uint32_t next_free            # on a free list: the next free object's offset, or 0

ctypedef struct ObjRecord:
    # the special fields of a struct programs allocate (btf_parse_struct_metas' record):
    # bpf_obj_drop drops the objects its kptrs, lists and trees hold (bpf_obj_free_fields)
    uint8_t nkptrs
    uint8_t nroots
    uint16_t kptr_off[BTF_FIELDS_MAX]
    uint16_t root_off[BTF_FIELDS_MAX]         # its bpf_list_heads and bpf_rb_roots
    uint16_t root_node_off[BTF_FIELDS_MAX]    # the node's offset in what each holds
    uint16_t rb_roots                         # which roots are bpf_rb_roots (bits)
    int16_t lock_off                          # its bpf_spin_lock, or -1

cdef enum:
    # _heap_fields: what starts at a 4-byte word of the arena (the kind in the high
    # bits; a root's node offset, below OBJ_MAX, in the low ones)
    FIELD_LIST_HEAD = 1 << 12
    FIELD_RB_ROOT = 2 << 12
    FIELD_SPIN_LOCK = 3 << 12
    FIELD_KIND = 0xF000
    FIELD_NODE_OFF = 0x0FFF

cdef enum:
    OBJ_RECORDS = 1024            # distinct records (by their fields' offsets) at most
    OBJ_TYPE_INTS = 3             # a type's ints in Program._obj_types

cdef uint8_t* _heap = NULL
cdef uint16_t* _heap_fields = NULL    # HEAP_SIZE // 4 words: FIELD_* of each, or 0
cdef uint64_t _heap_top = OBJ_HDR     # offset 0 is never an object: 0 ends a free list
cdef uint32_t _heap_free[OBJ_CLASSES]
cdef uint32_t _heap_free_percpu[OBJ_CLASSES]  # per-CPU objects, by the size of one copy
cdef int _heap_lock = 0
# the copies of a per-CPU object made now: the CPUs of the machine programs were made
# for (map_cpus(), the most of any: a run's CPU is below it, as for per-CPU maps)
cdef uint32_t _percpu_copies = 1
cdef ObjRecord _obj_records[OBJ_RECORDS]      # entry 0: no record
cdef dict _obj_record_ids = {}                # the kptr offsets -> their record's index


cdef int heap_ready() except -1:
    """Allocate the arena, once (a Program that allocates calls this when it is made),
    and count the CPUs its per-CPU objects are for."""
    global _heap, _heap_fields, _percpu_copies
    if _heap == NULL:
        _heap_fields = <uint16_t*>calloc(HEAP_SIZE // 4, sizeof(uint16_t))
        if _heap_fields == NULL:
            raise MemoryError("the object heap (bpf_obj_new) could not be allocated")
        _heap = <uint8_t*>calloc(HEAP_SIZE, 1)
        if _heap == NULL:
            raise MemoryError("the object heap (bpf_obj_new) could not be allocated")
        memset(_heap_free, 0, sizeof(_heap_free))
        memset(_heap_free_percpu, 0, sizeof(_heap_free_percpu))
    _percpu_copies = max(_percpu_copies, map_cpus())
    return 0


cdef inline void heap_region(Vm* vm) noexcept nogil:
    """Add the arena to the run's regions, if it exists."""
    cdef Region* g
    if _heap != NULL:
        g = &vm.regions[vm.nregions]
        g.start = <uintptr_t>_heap
        g.end = g.start + HEAP_SIZE
        g.writable = True
        g.name = REGION_HEAP
        vm.nregions += 1


cdef inline ObjHdr* _obj_hdr(uint64_t p) noexcept nogil:
    """The header of the object at ``p``, or NULL where no object can start."""
    if _heap == NULL or p < <uintptr_t>_heap + OBJ_HDR or \
            p >= <uintptr_t>_heap + _heap_top or (p - <uintptr_t>_heap) % 8:
        return NULL
    return <ObjHdr*><uintptr_t>(p - OBJ_HDR)


cdef inline uint16_t heap_field(uint64_t p) noexcept nogil:
    """The FIELD_* of an object's root or lock at ``p``, or 0 (anything else)."""
    if _heap == NULL or p < <uintptr_t>_heap + OBJ_HDR or \
            p >= <uintptr_t>_heap + _heap_top or (p - <uintptr_t>_heap) % 4:
        return 0
    return _heap_fields[(p - <uintptr_t>_heap) // 4]


cdef void _mark_fields(uint64_t off, uint32_t record, bint present) noexcept nogil:
    """Mark (unmark) in _heap_fields the roots and locks of the object at ``off``."""
    cdef ObjRecord* rec = &_obj_records[record]
    cdef int k
    for k in range(rec.nroots):
        _heap_fields[(off + rec.root_off[k]) // 4] = (
            (FIELD_RB_ROOT if rec.rb_roots & (1 << k) else FIELD_LIST_HEAD) |
            rec.root_node_off[k]) if present else 0
    if rec.lock_off >= 0:
        _heap_fields[(off + <uint32_t>rec.lock_off) // 4] = FIELD_SPIN_LOCK if present else 0


cdef uint64_t _obj_take(uint32_t rounded, uint32_t copies) noexcept nogil:
    """The offset of a free object of ``rounded`` bytes (``copies`` of them for a
    per-CPU one), from its free list or the arena's top, its header written; or 0."""
    global _heap_top
    cdef uint32_t* free_list = &_heap_free_percpu[rounded // 8] if copies else \
        &_heap_free[rounded // 8]
    cdef uint64_t total = <uint64_t>rounded * (copies if copies else 1)
    cdef uint64_t off = 0
    cdef ObjHdr* h
    map_lock(&_heap_lock)
    # a per-CPU object freed before more CPUs were counted is too small: left there
    if free_list[0] and (<ObjHdr*>(_heap + free_list[0] - OBJ_HDR)).copies == copies:
        off = free_list[0]
        free_list[0] = (<ObjHdr*>(_heap + off - OBJ_HDR)).next_free
    elif _heap_top + OBJ_HDR + total <= HEAP_SIZE:
        off = _heap_top + OBJ_HDR
        _heap_top = off + total
    map_unlock(&_heap_lock)
    if off:
        h = <ObjHdr*>(_heap + off - OBJ_HDR)
        h.size, h.copies, h.record, h.next_free = rounded, copies, 0, 0
        memset(_heap + off, 0, total)
    return off


cdef uint64_t obj_alloc(uint32_t size, int32_t refcount_off, uint32_t record) noexcept nogil:
    """A zeroed object of ``size`` bytes with its bpf_refcount at 1 (bpf_obj_init), its
    kptr fields ``record``'s, or 0."""
    cdef uint64_t off
    cdef ObjHdr* h
    if _heap == NULL or size == 0 or size + OBJ_LLIST_NODE > OBJ_MAX:
        return 0
    off = _obj_take((size + 7) & ~7u, 0)
    if off == 0:
        return 0
    h = <ObjHdr*>(_heap + off - OBJ_HDR)
    h.refcount_off, h.record = <int16_t>refcount_off, record
    if record:
        _mark_fields(off, record, True)
    if refcount_off >= 0:
        (<uint32_t*>(_heap + off + refcount_off))[0] = 1
    return <uintptr_t>_heap + off


cdef uint64_t percpu_obj_alloc(uint32_t size) noexcept nogil:
    """bpf_percpu_obj_new_impl: a per-CPU object of ``size`` bytes a copy, every copy
    zeroed (the verifier kept its struct to BPF_GLOBAL_PERCPU_MA_MAX_SIZE bytes of
    scalars), or 0."""
    cdef uint64_t off
    if _heap == NULL or size == 0 or size > BPF_GLOBAL_PERCPU_MA_MAX_SIZE:
        return 0
    off = _obj_take((size + 7) & ~7u, _percpu_copies)
    if off == 0:
        return 0
    (<ObjHdr*>(_heap + off - OBJ_HDR)).refcount_off = -1
    return <uintptr_t>_heap + off


cdef inline ObjHdr* percpu_obj(uint64_t p) noexcept nogil:
    """The header of the per-CPU object at ``p``, or NULL when ``p`` is not in the
    arena (a per-CPU variable's address: percpu.pxi)."""
    cdef ObjHdr* h = _obj_hdr(p)
    return h if h != NULL and h.copies else NULL


cdef bint _obj_release(uint64_t p) noexcept nogil:
    """One reference to the object at ``p`` fewer: whether it was the last (an address
    outside the arena, a kernel object's, is none: a crypto context's reference is
    dropped, bpf_crypto_ctx_release_dtor)."""
    cdef ObjHdr* h = _obj_hdr(p)
    if h == NULL:
        crypto_ctx_put(p)
        return False
    return h.refcount_off < 0 or \
        atomic_dec32(<uint32_t*><uintptr_t>(p + <uint32_t>h.refcount_off)) == 0


cdef inline void obj_put(uint64_t p, uint32_t* pending) noexcept nogil:
    """One reference to the object at ``p`` (if any) fewer; with the last it joins the
    ``pending`` chain of objects to free (obj_free)."""
    if p and _obj_release(p):
        _obj_hdr(p).next_free = pending[0]
        pending[0] = <uint32_t>(p - <uintptr_t>_heap)


cdef void obj_free(uint32_t pending) noexcept nogil:
    """Free each object of the ``pending`` chain, after the objects its kptr fields,
    lists and trees hold are put (bpf_obj_free_fields: bpf_list_head_free and
    bpf_rb_root_free under the object's lock), those freed in turn."""
    cdef uint32_t off
    cdef uint32_t* free_list
    cdef ObjHdr* h
    cdef ObjRecord* rec
    cdef int* lock
    cdef int k
    while pending:
        off = pending
        h = <ObjHdr*>(_heap + off - OBJ_HDR)
        pending = h.next_free
        if h.record:
            rec = &_obj_records[h.record]
            for k in range(rec.nkptrs):
                obj_put(atomic_xchg64(<uint64_t*>(_heap + off + rec.kptr_off[k]), 0),
                        &pending)
            lock = <int*>(_heap + off + rec.lock_off) if rec.lock_off >= 0 else NULL
            for k in range(rec.nroots):
                if rec.rb_roots & (1 << k):
                    rbtree_free(<uintptr_t>(_heap + off + rec.root_off[k]), lock,
                                rec.root_node_off[k], &pending)
                else:
                    list_free(<uintptr_t>(_heap + off + rec.root_off[k]), lock,
                              rec.root_node_off[k], &pending)
            _mark_fields(off, h.record, False)
        free_list = &_heap_free_percpu[h.size // 8] if h.copies else &_heap_free[h.size // 8]
        map_lock(&_heap_lock)
        h.next_free = free_list[0]
        free_list[0] = off
        map_unlock(&_heap_lock)


cdef void obj_drop(uint64_t p) noexcept nogil:
    """__bpf_obj_drop_impl: one reference fewer; with the last the object is freed
    (obj_free)."""
    cdef uint32_t pending = 0
    obj_put(p, &pending)
    obj_free(pending)


# --- the kfuncs

cdef uint64_t _k_obj_new(Vm* vm, uint64_t type_id, uint64_t meta, uint64_t r3,
                         uint64_t r4, uint64_t r5) noexcept nogil:
    # the running program's table of its BTF's structs (Program._obj_types): the kernel
    # rewrites the call to pass the size and the struct's btf_record instead
    cdef const int32_t* t = vm.prog.obj_types
    if t == NULL or type_id >= vm.prog.n_obj_types or t[OBJ_TYPE_INTS * type_id] <= 0:
        return 0
    t += OBJ_TYPE_INTS * type_id
    return obj_alloc(<uint32_t>t[0], t[1], <uint32_t>t[2])


cdef uint64_t _k_percpu_obj_new(Vm* vm, uint64_t type_id, uint64_t meta, uint64_t r3,
                                uint64_t r4, uint64_t r5) noexcept nogil:
    cdef const int32_t* t = vm.prog.obj_types
    if t == NULL or type_id >= vm.prog.n_obj_types or t[OBJ_TYPE_INTS * type_id] <= 0:
        return 0
    return percpu_obj_alloc(<uint32_t>t[OBJ_TYPE_INTS * type_id])


cdef uint64_t _k_obj_drop(Vm* vm, uint64_t p, uint64_t meta, uint64_t r3, uint64_t r4,
                          uint64_t r5) noexcept nogil:
    # bpf_obj_drop_impl and bpf_percpu_obj_drop_impl: the header says which
    obj_drop(p)
    return 0


cdef uint64_t _k_refcount_acquire(Vm* vm, uint64_t p, uint64_t meta, uint64_t r3,
                                  uint64_t r4, uint64_t r5) noexcept nogil:
    # refcount_inc_not_zero
    cdef ObjHdr* h = _obj_hdr(p)
    if h == NULL or h.refcount_off < 0:
        return 0
    if atomic_inc_not_zero32(<uint32_t*><uintptr_t>(p + <uint32_t>h.refcount_off)):
        return p
    return 0


cdef uint64_t bpf_kptr_xchg(Vm* vm, uint64_t dst, uint64_t ptr, uint64_t r3, uint64_t r4,
                            uint64_t r5) noexcept nogil:
    # the verifier proved ``dst`` a map value's referenced kptr field and ``ptr`` an
    # object of its type (or NULL): the field takes the object's reference, the program
    # the old one's
    cdef uint8_t* p = _mem(vm, dst, 8, ACCESS_WRITE)
    if p == NULL:
        return 0
    return atomic_xchg64(<uint64_t*>p, ptr)


cdef uint32_t _obj_record(tuple key) except? 0:
    """The index of the record ``key`` describes (made once): (kptr offsets, graph roots
    as (offset, is an rb_root, node offset), lock offset); 0 for a struct without
    special fields the arena keeps."""
    global _obj_record_ids
    cdef uint32_t i
    cdef int k
    cdef ObjRecord* rec
    kptrs, roots, lock_off = key
    if not kptrs and not roots and lock_off < 0:
        return 0
    i = _obj_record_ids.get(key, 0)
    if i == 0:
        i = len(_obj_record_ids) + 1
        if i >= OBJ_RECORDS:
            raise MemoryError(f"more than {OBJ_RECORDS - 1} distinct structs with special "
                              f"fields allocated (bpf_obj_new)")
        rec = &_obj_records[i]
        rec.nkptrs, rec.nroots, rec.rb_roots = len(kptrs), len(roots), 0
        rec.lock_off = lock_off
        for k in range(len(kptrs)):
            rec.kptr_off[k] = kptrs[k]
        for k in range(len(roots)):
            rec.root_off[k], rb, rec.root_node_off[k] = roots[k]
            if rb:
                rec.rb_roots |= 1 << k
        _obj_record_ids[key] = i
    return i


def _obj_type_table(btf) -> bytes:
    """Program._obj_types: for each type id of the program's BTF, OBJ_TYPE_INTS ints:
    (size, offset of its struct bpf_refcount or -1, record of its special fields) of a
    struct, (0, -1, 0) of anything else."""
    from .btf import Kind
    from .btf.fields import RB_ROOT, graph_roots, kptr_fields, object_fields
    cdef list out = []
    for t in btf.types:
        if t.kind == Kind.STRUCT:
            fields = object_fields(t)
            ref = next((off for kind, off, _ in fields if kind == "bpf_refcount"), -1)
            lock = next((off for kind, off, _ in fields if kind == "bpf_spin_lock"), -1)
            roots = ()
            if any(kind in ("bpf_list_head", "bpf_rb_root") for kind, _, _ in fields):
                try:
                    roots = tuple((g.off, g.kind == RB_ROOT, g.node_off)
                                  for g in graph_roots(t))
                except MapError:
                    pass    # a root without its __contains: the verifier finds none there
            out += [t.size, ref, _obj_record((tuple(k.off for k in kptr_fields(t)), roots,
                                              lock))]
        else:
            out += [0, -1, 0]
    return _array.array("i", out).tobytes()


cdef void register_heap_kfuncs(helper_fn* helpers) except *:
    helpers[_isa.HELPER_IDS["kptr_xchg"]] = bpf_kptr_xchg
    _kfunc("bpf_obj_new_impl", _k_obj_new)
    _kfunc("bpf_obj_drop_impl", _k_obj_drop)
    _kfunc("bpf_refcount_acquire_impl", _k_refcount_acquire)
    _kfunc("bpf_percpu_obj_new_impl", _k_percpu_obj_new)
    _kfunc("bpf_percpu_obj_drop_impl", _k_obj_drop)
