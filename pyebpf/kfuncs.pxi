# The kfuncs the engine implements, in C.  Included into pyebpf/_core.pyx.
#
# A kfunc has a helper's signature (vm, r1..r5) -> r0 and its conventions
# (skb/helpers.pxi).  KFUNCS is indexed by the engine's kfunc id
# (pyebpf.isa.KFUNC_IDS); a call's imm is that id, checked when a program is decoded.
# Which program types may call which kfunc is the verifier's (pyebpf.verifier.kfuncs).

cdef helper_fn KFUNCS[N_KFUNC_IDS]


# --- open-coded numeric iterator (kernel/bpf/bpf_iter.c): struct bpf_iter_num is
# 8 bytes on the program's stack, read as { int cur; int end; }

cdef inline int32_t* _iter_num(Vm* vm, uint64_t it) noexcept nogil:
    return <int32_t*>_mem(vm, it, 8, ACCESS_WRITE)


cdef uint64_t _k_iter_num_new(Vm* vm, uint64_t it, uint64_t start, uint64_t end,
                              uint64_t r4, uint64_t r5) noexcept nogil:
    cdef int32_t* s = _iter_num(vm, it)
    cdef int32_t lo = <int32_t>start, hi = <int32_t>end
    if s == NULL:
        return 0
    if lo > hi:
        s[0] = s[1] = 0
        return err(EINVAL)
    if <int64_t>hi - <int64_t>lo > BPF_MAX_LOOPS:
        s[0] = s[1] = 0
        return err(E2BIG)
    s[0], s[1] = lo - 1, hi
    return 0


cdef uint64_t _k_iter_num_next(Vm* vm, uint64_t it, uint64_t r2, uint64_t r3,
                               uint64_t r4, uint64_t r5) noexcept nogil:
    cdef int32_t* s = _iter_num(vm, it)
    if s == NULL:
        return 0
    # s64 arithmetic: cur == end == INT_MAX must not wrap (bpf_iter_num_next)
    if <int64_t>s[0] + 1 >= <int64_t>s[1]:
        s[0] = s[1] = 0
        return 0
    s[0] += 1
    return it


cdef uint64_t _k_iter_num_destroy(Vm* vm, uint64_t it, uint64_t r2, uint64_t r3,
                                  uint64_t r4, uint64_t r5) noexcept nogil:
    cdef int32_t* s = _iter_num(vm, it)
    if s != NULL:
        s[0] = s[1] = 0
    return 0


# --- RCU read-side and preemption regions: the verifier checks their nesting; a run
# has no other CPU to exclude, so they do nothing

cdef uint64_t _k_region(Vm* vm, uint64_t r1, uint64_t r2, uint64_t r3, uint64_t r4,
                        uint64_t r5) noexcept nogil:
    return 0



# --- bpf_map_sum_elem_count (kernel/bpf/map_iter.c): the sum of the map's per-CPU
# element counters, which only hash maps keep (htab_map_alloc: bpf_map_init_elem_count);
# 0 for every other map

cdef uint64_t _k_map_sum_elem_count(Vm* vm, uint64_t map, uint64_t r2, uint64_t r3,
                                    uint64_t r4, uint64_t r5) noexcept nogil:
    cdef MapStore* m = _map_arg(vm, map)
    if m == NULL:
        return 0
    if m.type == BPF_MAP_TYPE_HASH or m.type == BPF_MAP_TYPE_PERCPU_HASH or \
            m.type == BPF_MAP_TYPE_LRU_HASH or m.type == BPF_MAP_TYPE_LRU_PERCPU_HASH or \
            m.type == BPF_MAP_TYPE_HASH_OF_MAPS:
        return m.count
    return 0

# --- bpf_modify_return_test_tp (net/bpf/test_run.c): fires the bpf_trigger_tp
# tracepoint, which nothing in a run is attached to, and gives the nonce back (an int,
# which the kernel's x86-64 build returns zero-extended)

cdef uint64_t _k_modify_return_test_tp(Vm* vm, uint64_t nonce, uint64_t r2, uint64_t r3,
                                       uint64_t r4, uint64_t r5) noexcept nogil:
    return <uint32_t>nonce


cdef void _kfunc(str name, helper_fn fn) except *:
    KFUNCS[_isa.KFUNC_IDS[name]] = fn


# --- BPF exceptions (bpf_throw, kernel/bpf/helpers.c): the run stops at once, the
# cookie in r0; vm_run unwinds every frame and runs the exception callback

cdef uint64_t _k_throw(Vm* vm, uint64_t cookie, uint64_t r2, uint64_t r3, uint64_t r4,
                       uint64_t r5) noexcept nogil:
    vm.status = STATUS_THROW
    return cookie


include "dynptr.pxi"
include "crypto.pxi"
include "conntrack.pxi"
include "heap.pxi"
include "kfunc_strings.pxi"
include "iter_bits.pxi"
include "lists.pxi"
include "rbtree.pxi"
include "tasks.pxi"
include "streams.pxi"
include "kmem_cache.pxi"


cdef void register_kfuncs() except *:
    memset(KFUNCS, 0, sizeof(KFUNCS))
    _kfunc("bpf_iter_num_new", _k_iter_num_new)
    _kfunc("bpf_iter_num_next", _k_iter_num_next)
    _kfunc("bpf_iter_num_destroy", _k_iter_num_destroy)
    _kfunc("bpf_iter_bits_new", _k_iter_bits_new)
    _kfunc("bpf_iter_bits_next", _k_iter_bits_next)
    _kfunc("bpf_iter_bits_destroy", _k_iter_bits_destroy)
    for name in ("bpf_rcu_read_lock", "bpf_rcu_read_unlock", "bpf_preempt_disable",
                 "bpf_preempt_enable"):
        _kfunc(name, _k_region)
    _kfunc("bpf_cast_to_kern_ctx", _k_cast_to_kern_ctx)
    _kfunc("bpf_rdonly_cast", _k_rdonly_cast)
    _kfunc("bpf_map_sum_elem_count", _k_map_sum_elem_count)
    _kfunc("bpf_modify_return_test_tp", _k_modify_return_test_tp)
    _kfunc("bpf_throw", _k_throw)
    _kfunc("bpf_stream_vprintk_impl", _k_stream_vprintk)
    _kfunc("bpf_get_kmem_cache", _k_get_kmem_cache)
    _kfunc("bpf_sk_assign_tcp_reqsk", _k_sk_assign_tcp_reqsk)
    _kfunc("bpf_local_irq_save", _k_irq_save)
    _kfunc("bpf_local_irq_restore", _k_irq_restore)
    _kfunc("bpf_res_spin_lock", _k_res_spin_lock)
    _kfunc("bpf_res_spin_unlock", _k_res_spin_unlock)
    _kfunc("bpf_res_spin_lock_irqsave", _k_res_spin_lock_irqsave)
    _kfunc("bpf_res_spin_unlock_irqrestore", _k_res_spin_unlock_irqrestore)
    register_dynptr(SKB_HELPERS)
    register_conntrack()
    register_heap_kfuncs(SKB_HELPERS)
    register_string_kfuncs()
    register_list_kfuncs()
    register_rbtree_kfuncs()
    register_task_kfuncs()
    register_crypto_kfuncs()
