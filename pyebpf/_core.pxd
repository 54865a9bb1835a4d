# The compiled core's C interface: the decoded program, the VM and its regions, map
# storage, the helper table, and the functions another compilation unit (tcsim's replay
# loop, a JIT, worker threads) needs to set up, run and tear down a VM.  The skb model's
# types are in skb/skbuff.pxd; the constants, generated from pyebpf/isa.py, in
# pyebpf/_isa_defs.pxd.  Everything declared here is implemented in pyebpf/_core.pyx
# and the files it includes.
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t, uintptr_t
from libc.stdlib cimport free
from libc.string cimport memcpy, memset

from pyebpf._isa_defs cimport *
from pyebpf.skb.skbuff cimport *

cdef extern from *:
    """
    #if defined(__GNUC__)
    #define PYEBPF_BSWAP16(x) __builtin_bswap16(x)
    #define PYEBPF_BSWAP32(x) __builtin_bswap32(x)
    #define PYEBPF_BSWAP64(x) __builtin_bswap64(x)
    #define PYEBPF_UNLIKELY(x) __builtin_expect(!!(x), 0)
    #else
    #define PYEBPF_BSWAP16(x) ((uint16_t)((((x) & 0xff) << 8) | (((x) >> 8) & 0xff)))
    #define PYEBPF_BSWAP32(x) ((((uint32_t)PYEBPF_BSWAP16((x) & 0xffff)) << 16) | PYEBPF_BSWAP16((x) >> 16))
    #define PYEBPF_BSWAP64(x) ((((uint64_t)PYEBPF_BSWAP32((x) & 0xffffffffu)) << 32) | PYEBPF_BSWAP32((x) >> 32))
    #define PYEBPF_UNLIKELY(x) (x)
    #endif
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
    #error "pyebpf's interpreter assumes a little-endian host, like the kernel's x86-64 and arm64 builds"
    #endif
    """
    uint16_t bswap16 "PYEBPF_BSWAP16" (uint16_t) nogil
    uint32_t bswap32 "PYEBPF_BSWAP32" (uint32_t) nogil
    uint64_t bswap64 "PYEBPF_BSWAP64" (uint64_t) nogil
    bint unlikely "PYEBPF_UNLIKELY" (bint) nogil

cdef extern from *:
    """
    /* memset/memcpy of a few hundred bytes through the C library.  gcc inlines a
       constant size that large as `rep stosq`/`rep movsq`, whose start-up cost made
       them a quarter of run_many's time (perf, AMD EPYC); hiding the size from the
       optimiser makes it call glibc's vector versions instead. */
    static inline void pyebpf_zero(void* p, size_t n) {
    #if defined(__GNUC__)
        __asm__("" : "+r"(n));
    #endif
        memset(p, 0, n);
    }
    static inline void pyebpf_copy(void* d, const void* s, size_t n) {
    #if defined(__GNUC__)
        __asm__("" : "+r"(n));
    #endif
        memcpy(d, s, n);
    }
    """
    void bulk_zero "pyebpf_zero" (void* p, size_t n) nogil
    void bulk_copy "pyebpf_copy" (void* d, const void* s, size_t n) nogil

cdef enum:
    FRAME_SIZE = MAX_BPF_STACK
    MAX_FRAMES = MAX_CALL_FRAMES
    STACK_SIZE = FRAME_SIZE * MAX_FRAMES
    MAX_REGIONS = 72                  # stack, memory or packet, and up to 64 maps
    MAX_USED_MAPS = 64
    HELPER_SLOTS = 256
    CALLBACK_RETURN = 0x7FFFFFFF      # a frame's ret_pc when a helper called it

# Why a run stopped.  STATUS_EXIT is the only clean stop; helpers may set
# STATUS_EXIT to end the program early with r0 already set (ld_abs aborts, unwind).
cdef enum Status:
    STATUS_RUNNING = 0
    STATUS_EXIT
    STATUS_MEM_FAULT
    STATUS_BUDGET
    STATUS_CALL_DEPTH
    STATUS_UNKNOWN_HELPER
    STATUS_PY_ERROR
    STATUS_BAD_INSN
    STATUS_CTX_FAULT       # a context access the program type may not make
    STATUS_HELPER_FAULT    # a helper refused its arguments; vm.fault_msg says why
    STATUS_TAIL_CALL       # bpf_tail_call: vm.next_prog replaces the running program
    STATUS_CALLBACK_DONE   # a callback a helper called (callbacks.pxi) returned
    STATUS_THROW           # bpf_throw: r0 holds the cookie; vm_run unwinds (kfuncs.pxi)

cdef enum Access:
    ACCESS_READ = 0
    ACCESS_WRITE = 1

ctypedef struct Insn:
    uint8_t op
    uint8_t dst
    uint8_t src
    uint8_t size
    int32_t off        # memory offset, or the absolute target pc of a jump or call
    uint64_t imm       # sign-extended imm32, lddw's imm64, or a helper id

ctypedef struct Region:
    uintptr_t start
    uintptr_t end      # exclusive
    bint writable
    int name           # index into the run's region-name list

ctypedef struct Frame:
    uint64_t saved[4]  # r6-r9
    uint32_t ret_pc

ctypedef struct Vm
ctypedef uint64_t (*helper_fn)(Vm* vm, uint64_t r1, uint64_t r2, uint64_t r3,
                               uint64_t r4, uint64_t r5) noexcept nogil

ctypedef struct TraceStep:
    uint32_t pc
    uint64_t regs[11]

ctypedef struct TraceAccess:
    uint32_t step
    uint32_t pc
    uint8_t write
    uint8_t size
    uint64_t addr

ctypedef struct MapStore

ctypedef struct BtfView:
    # a target BTF as the kernel holds it (btfprint.pxi): the raw .BTF blob and where
    # each type id's btf_type record starts in it (0 for void)
    const uint8_t* data
    const uint32_t* offs
    uint32_t ntypes                # type ids below this exist, void included
    const char* strs               # the string section
    uint32_t str_len

ctypedef struct Stream:
    # one of a program's BPF streams (streams.pxi): the unread elements' bytes, in order
    char* buf
    size_t len                     # bytes held in buf
    size_t head                    # of which read already
    size_t size                    # buf's allocation
    uint32_t* lens                 # each element's length, oldest first
    size_t nelem, first, nlens     # elements held, the first unread one, lens' allocation
    uint32_t done                  # bytes of the first unread element read already
    int64_t capacity               # the kernel's bpf_stream.capacity: bytes charged
    int lock

ctypedef struct ProgCore:
    # what a run needs of a Program, reachable from C (tail calls switch between these)
    Insn* code
    helper_fn* helpers
    MapStore** maps
    int nmaps
    CtxRules* ctx_rules
    int prog_type
    bint py_helpers    # some helper is a Python callable: runs keep the GIL
    void* owner        # the Program
    uint32_t n         # slots
    uint32_t* blocks   # n + 1 block lengths (isa.block_lengths): the budget per block
    const void** cases # threaded dispatch: slot pc's case address, n + 1 slots (the
                       # sentinel's too); NULL without computed goto
    uint64_t* cov      # coverage on: hits per pc, then jumps taken per pc; else NULL
    void* jit          # native code of pyebpf.jit for plain runs (void f(Vm*)), or NULL
    uint64_t runs      # runs started through Program.run (the JIT's tiering)
    bint probe_loads   # a verified tracing program: a load no region holds went through a
                       # BTF pointer, and reads as the kernel's BPF_PROBE_MEM (tracing.pxi)
    const BtfView* btf # the target BTF bpf_snprintf_btf prints by (NULL: none needed)
    const int32_t* obj_types   # bpf_obj_new's structs by local type id: (size, bpf_refcount
    uint32_t n_obj_types       # offset or -1, kptr record) triples (heap.pxi), or NULL
    uint32_t stack_zero  # bytes below r10 a run zeroes on entry (Program._stack_zero)
    bint keeps_layout  # no run moves the packet or sets tunnel metadata (_keeps_layout)
    int32_t exception_cb  # bpf_throw's exception callback: its pc, or -1 for the
                          # default one, which returns the cookie
    int64_t frame_grant   # what each frame entry adds to a growing run's budget:
                          # BPF_MAX_LOOPS × n for a verified program with may_goto, else 0
    Stream* streams       # its stdout and stderr (BPF_STDOUT - 1, BPF_STDERR - 1)

ctypedef struct MemRange:
    uint64_t start
    uint64_t end       # exclusive
    const uint8_t* data

ctypedef struct TraceWorld:
    # what a tracing (KPROBE) run sees besides its context: the modelled machine of
    # pyebpf/trace/.  trace/tracing.pxi's MachineImage builds one per Machine, once (the
    # Machine owns the bytes it points into); each run copies it and sets the per-run
    # fields at the end.  A new field: declare it here, fill it in MachineImage (from the
    # Machine) or in trace_world (from run()'s arguments), read it as vm.world.NAME.
    const MemRange* kmem           # kernel memory, sorted, adjacent ranges merged
    uint32_t nkmem
    const MemRange* umem           # the current task's user memory, the same way
    uint32_t numem
    const uint64_t* kstack         # the kernel stack's return addresses, innermost first
    uint32_t nkstack
    const uint64_t* ustack         # the user stack's
    uint32_t nustack
    uint64_t task                  # bpf_get_current_task: the task_struct's address
    uint64_t pid_tgid              # bpf_get_current_pid_tgid, _uid_gid, _comm
    uint64_t uid_gid
    uint8_t comm[16]
    uint64_t pidns_dev             # bpf_get_ns_current_pid_tgid: the task's pid namespace
    uint64_t pidns_ino
    uint64_t ns_pid_tgid           # and its ids there, tgid << 32 | pid
    uint64_t user_regs             # bpf_task_pt_regs of the current task
    const uint64_t* tasks          # bpf_task_from_pid, _vpid, the task iterator: (pid, pid in
    uint32_t ntasks                # the current task's namespace or NO_VPID, address, tgid)
                                   # rows in the kernel's task-list order (tasks.pxi)
    const uint64_t* cgroup1        # bpf_task_get_cgroup1: (task address, hierarchy id,
    uint32_t ncgroup1              # level, cgroup id) quadruples (Task.cgroup1)
    bint packet                    # a packet run given a machine (its current task)
    const uint64_t* task_umem      # bpf_copy_from_user_task: (task address, first range,
    uint32_t ntask_umem            # ranges) triples, the ranges counted from kmem's first
    # per run
    uint64_t task_size             # addresses below are user addresses (TASK_SIZE_MAX)
    bint kernel_range_check        # x86-64: kernel reads of user addresses are -ERANGE
    uint64_t func_ip               # bpf_get_func_ip
    uint64_t cookie                # bpf_get_attach_cookie
    uint64_t signals               # bpf_send_signal: bit sig-1 for each signal sent
    uint64_t thread_signals        # bpf_send_signal_thread: the same, to the thread
    const uint64_t* vmas           # the task's mappings: (start, end, vm_area_struct address)
    uint32_t nvmas                 # triples, by start (bpf_find_vma)
    const uint8_t* branches        # bpf_get_branch_snapshot: struct perf_branch_entry
    uint32_t nbranches             # records, newest first

cdef struct Spill:
    # the frames a tail call from a subprogram left (tail_call_switch): the tail-called
    # program runs on top of them in the kernel, here from frame 0 with them set aside
    Spill* prev
    ProgCore* prog         # the program whose subprogram made the tail call
    uint32_t depth         # frames 0 to depth - 1 saved; the tail call replaced frame depth
    Frame frames[MAX_FRAMES]
    uint32_t may_goto_left[MAX_FRAMES]
    uint8_t stack[STACK_SIZE]      # the saved frames' stack, at the Vm stack's offsets

ctypedef struct Vm:
    uint64_t reg[11]
    uint8_t stack[STACK_SIZE]      # frame 0 at the top; a bpf-to-bpf call adds one below
    uint8_t ctx_mem[CTX_SIZE]      # r1 of skb program types: never a region (context.pxi)
    Insn* insns
    uint32_t pc
    int status
    int64_t budget_left
    int64_t grant          # what a frame entry adds to budget_left now (_grant)
    uint64_t granted       # all that frame entries added this run: insn_count is the
                           # budget plus this less budget_left
    bint grow              # the run has its program's default budget, which frame entries
                           # grow (False: an explicit budget, a hard cap)
    int depth
    Frame frames[MAX_FRAMES]
    uint32_t may_goto_left[MAX_FRAMES]   # each frame's may_goto budget (BPF_MAX_LOOPS)
    uint8_t run_mode       # the loop vm_run chose (0 plain, 1 coverage, 2 trace, 3 plain
                           # with the switch dispatch): callbacks run in the same one
    Region regions[MAX_REGIONS]
    int nregions
    helper_fn* helpers
    uint64_t helper_id
    # raw mode: legacy packet loads (LD_ABS/LD_IND) read from here
    const uint8_t* pkt
    uint32_t pkt_len
    # skb program types: the packet and its context (NULL in raw mode)
    Skb* skb
    uintptr_t ctx
    CtxRules* ctx_rules
    int pkt_region         # index of the packet's region, or -1
    TraceWorld* world      # tracing program types: their machine (NULL for packets)
    MapStore** maps        # the maps the program references
    int nmaps
    int map_regions        # index of the first map region
    ProgCore* prog         # the program running now
    ProgCore* next_prog    # set by bpf_tail_call
    uint32_t tail_calls
    uint32_t tail_call_limit
    # the frames of the callers of the subprograms that tail-called, innermost first
    # (malloc'd by tail_call_switch, freed as the tail-called programs return and at the
    # end of vm_run): NULL in a run without a tail call from a subprogram
    Spill* spill
    bint div0_abort        # the 4.6 profile: division by zero ends the run with 0
    # fault details
    uint64_t fault_addr
    uint32_t fault_size
    uint8_t fault_write
    const char* fault_msg
    void* owner        # the running Program, for Python helpers
    # trace buffers (trace mode only)
    TraceStep* steps
    size_t nsteps
    size_t cap_steps
    TraceAccess* accesses
    size_t naccesses
    size_t cap_accesses
    int* held_lock     # the bpf_spin_lock the program holds (map_helpers.pxi), or NULL
    int* res_held[RES_NR_HELD]  # the bpf_res_spin_locks it holds, in the order taken
    int nres_held


# --- map storage (maps.pxi) -----------------------------------------------------

ctypedef struct LpmNode:
    int32_t child[2]
    uint32_t prefixlen
    uint32_t flags
    int32_t value                 # the value slot, NO_ELEM for intermediate nodes

ctypedef struct Arena:
    # BPF_MAP_TYPE_ARENA's pages (arena.pxi): a host mapping of npages pages; what
    # programs and user space see at user_vm_start + page * PAGE_SIZE
    uint8_t* base
    uint32_t npages
    uint64_t user_vm_start
    uint8_t* present          # per page: 1 once found allocated (arena_page)
    uint8_t zero[8]           # what a load from a page not allocated reads
    uint8_t sink[8]           # where a store to one goes

ctypedef struct MapStore:
    uint32_t type
    uint32_t key_size
    uint32_t value_size
    uint32_t max_entries
    uint32_t flags
    uint64_t map_extra        # as created
    uint32_t id               # Map.id
    char name[16]             # Map.name as the kernel keeps it (BPF_OBJ_NAME_LEN)
    uint32_t btf_key_type_id  # the BTF type ids the loader created it with, 0: none
    uint32_t btf_value_type_id
    bint frozen               # BPF_MAP_FREEZE: the loader freezes read-only data
    uint32_t stride           # value_size rounded up to 8, as per-CPU values are laid out
    uint32_t ncpu             # copies of each value: the CPU count for per-CPU maps, else 1
    uint8_t* values           # max_entries * ncpu * stride bytes
    size_t values_len
    uint8_t* keys             # hash maps: max_entries * key_size
    int32_t* next             # hash maps: next element in the bucket, or the free list
    int32_t* buckets          # hash maps: first element of each bucket plus 1, 0 for none
                              # (calloc's zero pages are empty buckets): map_bucket_head
    uint32_t n_buckets
    int32_t free_head         # the elements freed since creation or reset, last first
    uint32_t elem_hwm         # the elements ever taken: those from here on come next, in
                              # order, after the free list (untouched, so not resident)
    uint32_t count
    ProgCore** progs          # program arrays: the program in each slot, or NULL
    int owner_type            # program arrays: the type they serve, -1 before first use
    bint hidden               # the values are no region of a run (maps of maps, ringbuf)
    int32_t* lru_prev         # LRU hashes (lru.pxi): the links of each element's node,
    int32_t* lru_next         # then of each list head (lru_heads of them)
    uint8_t* lru_ref          # each node's ref bit
    uint8_t* lru_type         # each node's list (enum bpf_lru_list_type)
    uint16_t* lru_cpu         # each node's CPU: of its pending list, or its per-CPU list
    uint32_t* lru_counts      # each bpf_lru_list's active and inactive counts
    int32_t* lru_rotation     # each bpf_lru_list's next_inactive_rotation
    uint16_t* lru_steal       # each CPU's next_steal (the common LRU)
    uint32_t* lru_untouched   # each free list's nodes lru_populate left unlinked, at its
                              # tail (lru.pxi: _free_fill)
    uint32_t lru_ncpu         # the possible CPUs, each with local or per-CPU lists
    uint32_t lru_target_free  # the common LRU's batch to a CPU's local free list
    LpmNode* nodes            # LPM tries: 2 * max_entries nodes, their data in keys
    int32_t root, node_free
    uint32_t node_hwm         # LPM tries: the nodes ever taken (as elem_hwm)
    uint32_t data_size
    MapStore** inner          # maps of maps: the inner map of each element, or NULL
    MapStore* tmpl            # maps of maps: the inner map template
    int32_t* perf_cpu         # perf event arrays: each slot's CPU, -1 when not open
    uint64_t* counters        # perf event arrays: each slot's counter, enabled and running
                              # times (perf_event_read, perf_event_read_value)
    uint8_t* events           # perf event arrays: (u32 cpu, u32 len, bytes) records
    size_t events_len
    uint64_t cons_pos, prod_pos, pend_pos   # ring buffers, as the kernel's; queues and
                                            # stacks: their oldest value, the next push
    bint rb_busy              # user ring buffers: a bpf_user_ringbuf_drain is consuming
    uint32_t* st_nr           # stack trace maps: frames in each bucket's stack, 0 = empty
    uint32_t* st_hash         # stack trace maps: each stored stack's jhash
    uint32_t bloom_hashes     # bloom filters: hash functions (map_extra, 5 when 0)
    uint32_t bloom_mask       # bloom filters: bits in the bitset (values) - 1
    int lock                  # held while a helper changes the map or walks its lists
                              # (map_lock): replay threads share the map
    int* bucket_locks         # plain and per-CPU hash maps: a lock per bucket, which a
                              # helper holds instead of ``lock`` for a value without
                              # special fields (htab_lock_bucket), else NULL
    int free_lock             # hash maps: held while the free list and count change
    int32_t spin_lock_off     # the value's struct bpf_spin_lock (its BTF), or -1
    int32_t timer_off         # the value's struct bpf_timer, or -1
    int32_t res_spin_lock_off # the value's struct bpf_res_spin_lock, or -1
    int32_t wq_off            # the value's struct bpf_wq, or -1
    int32_t task_work_off     # the value's struct bpf_task_work, or -1
    uint8_t nkptrs            # the value's kptr fields (__kptr members, its BTF)
    int32_t kptr_off[BTF_FIELDS_MAX]    # and their offsets
    uint8_t nlists            # the value's graph roots: struct bpf_list_head fields
                              # (lists.pxi) and struct bpf_rb_root ones (rbtree.pxi)
    int32_t list_off[BTF_FIELDS_MAX]    # and their offsets
    int32_t list_node_off[BTF_FIELDS_MAX]   # where each one's bpf_list_node (bpf_rb_node)
                                            # sits in the struct its elements are
    uint16_t rb_roots         # bit k: root k is a struct bpf_rb_root
    void* timers              # then each element's TimerState (timers.pxi)
    void* wqs                 # and with a bpf_wq each element's work item (workqueues.pxi)
    void* tws                 # and with a bpf_task_work each element's (task_work.pxi)
    bint no_uref              # Map.close() dropped the user reference (map_release_uref)
    uint64_t held_entry       # XSKMAPs: the entry from Python whose released sockets a
                              # lookup dropped last (held_sockets.pxi)
    Arena* arena              # arenas: their pages (arena.pxi), else NULL


cdef enum:
    NO_ELEM = -1                  # no element: a missing key, the end of a chain

cdef extern from *:
    """
    #include <sched.h>
    /* A map's lock: what the kernel's per-bucket raw spin locks (htab_lock_bucket) and
       the ring buffer's spin lock give, for the whole map.  Spins a little, then
       yields: the replay threads may outnumber the host's free CPUs. */
    static inline void pyebpf_map_lock(int* l) {
        int spins = 0;
        while (__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE)) {
            while (__atomic_load_n(l, __ATOMIC_RELAXED)) {
                if (++spins > 64) { sched_yield(); spins = 0; }
            }
        }
    }
    static inline void pyebpf_map_unlock(int* l) { __atomic_store_n(l, 0, __ATOMIC_RELEASE); }
    static inline int pyebpf_try_lock(int* l) { return !__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE); }
    static inline void pyebpf_yield(void) { sched_yield(); }
    static inline int pyebpf_cas(uint8_t* p, int size, uint64_t old, uint64_t new_) {
        if (size == 4) {
            uint32_t o = (uint32_t)old;
            return __atomic_compare_exchange_n((uint32_t*)p, &o, (uint32_t)new_, 0,
                                               __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
        }
        return __atomic_compare_exchange_n((uint64_t*)p, &old, new_, 0,
                                           __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    }
    """
    void map_lock "pyebpf_map_lock" (int* l) nogil
    void map_unlock "pyebpf_map_unlock" (int* l) nogil
    bint try_lock "pyebpf_try_lock" (int* l) nogil
    void cpu_yield "pyebpf_yield" () nogil
    bint atomic_cas "pyebpf_cas" (uint8_t* p, int size, uint64_t old, uint64_t new) nogil

cdef inline uint8_t* map_value(MapStore* m, int32_t elem, uint32_t cpu) noexcept nogil:
    # element ``elem``'s value for ``cpu`` (0 unless per-CPU): slots are stride apart
    return m.values + (<size_t>elem * m.ncpu + cpu) * m.stride

cdef int32_t map_find(MapStore* m, const uint8_t* key) noexcept nogil
cdef int map_update(MapStore* m, const uint8_t* key, const uint8_t* value, uint64_t flags,
                    int64_t cpu, uint32_t run_cpu) noexcept nogil
cdef int map_delete(MapStore* m, const uint8_t* key) noexcept nogil
cdef int map_next_key(MapStore* m, const uint8_t* key, uint8_t* out) noexcept nogil

# what the pin file format (pyebpf/pin_format.pyx) walks and rebuilds storage with
cdef enum:
    LPM_IM = 1                    # an intermediate trie node: no value
    RB_BUSY = 1u << 31            # ring buffer record header bits (BPF_RINGBUF_*_BIT)
    RB_DISCARD = 1u << 30
    RB_HDR = 8

cdef inline uint32_t _le32(const uint8_t* p) noexcept nogil:
    cdef uint32_t w
    memcpy(&w, p, 4)
    return w

cdef inline int32_t map_bucket_head(MapStore* m, uint32_t b) noexcept nogil:
    """The first element in bucket ``b``, or NO_ELEM."""
    return m.buckets[b] - 1


cdef inline bint _is_lru(MapStore* m) noexcept nogil:
    return m.type == BPF_MAP_TYPE_LRU_HASH or m.type == BPF_MAP_TYPE_LRU_PERCPU_HASH

cdef inline bint _is_local_storage(MapStore* m) noexcept nogil:
    return (m.type == BPF_MAP_TYPE_SK_STORAGE or m.type == BPF_MAP_TYPE_TASK_STORAGE
            or m.type == BPF_MAP_TYPE_CGRP_STORAGE or m.type == BPF_MAP_TYPE_INODE_STORAGE)

cdef inline bint _is_sock_map(MapStore* m) noexcept nogil:
    # SOCKMAP and SOCKHASH: each slot's 8 bytes hold a socket's cookie, 0 for none
    return m.type == BPF_MAP_TYPE_SOCKMAP or m.type == BPF_MAP_TYPE_SOCKHASH

cdef inline bint _is_hash(MapStore* m) noexcept nogil:
    # local storage is a hash keyed by its owner: the socket's cookie, the task's or the
    # cgroup's address (maps.pxi); a DEVMAP_HASH one bucketed by its key (devmap.pxi)
    return (m.type == BPF_MAP_TYPE_HASH or m.type == BPF_MAP_TYPE_PERCPU_HASH
            or m.type == BPF_MAP_TYPE_HASH_OF_MAPS or _is_lru(m) or _is_local_storage(m)
            or m.type == BPF_MAP_TYPE_SOCKHASH or m.type == BPF_MAP_TYPE_DEVMAP_HASH)

cdef inline uint8_t* _lpm_data(MapStore* m, int32_t n) noexcept nogil:
    return m.keys + <size_t>n * m.data_size

cdef inline uint32_t _rb_total(uint32_t len_) noexcept nogil:
    # a ring buffer record's bytes: header and data, rounded up to 8
    return ((len_ & ~(RB_BUSY | RB_DISCARD)) + RB_HDR + 7) & ~7u

cdef uint32_t jhash(const uint8_t* k, uint32_t length, uint32_t initval) noexcept nogil
cdef int32_t _hash_find(MapStore* m, const uint8_t* key, int32_t* prev) noexcept nogil
cdef void _hash_link(MapStore* m, int32_t e) noexcept nogil
cdef uint32_t lru_heads(uint32_t ncpu, bint percpu) noexcept nogil
cdef void lru_populate(MapStore* m) noexcept nogil
cdef int _lpm_update(MapStore* m, const uint8_t* key, const uint8_t* value,
                     uint64_t flags) noexcept nogil
cdef void _map_reset(MapStore* m) noexcept nogil


# --- the VM's life: the one set-up, run and tear-down of every caller ----------------

# the regions' names: the stack, raw mode's memory, the packet, then the program's maps
cdef enum:
    REGION_STACK = 0
    REGION_MEMORY = 1
    REGION_PACKET = 2
    REGION_PT_REGS = 3
    REGION_MAP0 = 4

cdef int vm_run(Vm* vm, ProgCore* prog, bint trace) noexcept nogil
cdef void held_sockets_entry() noexcept
cdef void ringbuf_release_all(Vm* vm) noexcept nogil
cdef object vm_fault(Vm* vm, uint64_t budget)

# Set-up and tear-down are inline: the replay loop, in another module, runs them per
# packet.

cdef inline void skb_sync(Vm* vm) noexcept nogil:
    """Point the packet region at the packet's current bytes."""
    cdef Region* g
    if vm.pkt_region >= 0:
        g = &vm.regions[vm.pkt_region]
        g.start = <uintptr_t>skb_data(vm.skb)
        g.end = g.start + vm.skb.len


cdef inline void vm_begin(Vm* vm, uint64_t budget, uint32_t tail_call_limit,
                          bint div0_abort) noexcept nogil:
    """Reset ``vm`` for one run: registers zero, r10 at the top of a stack frame (vm_run
    zeroes as much of it as the program reaches), the stack the only region, no packet
    or context yet (raw mode)."""
    memset(&vm.reg, 0, sizeof(vm.reg))
    vm.pc = 0
    vm.status = STATUS_RUNNING
    vm.budget_left = (<int64_t>budget if budget < <uint64_t>0x7fffffffffffffff
                      else 0x7fffffffffffffff)
    vm.grant, vm.granted, vm.grow = 0, 0, True
    vm.depth = 0
    vm.regions[0].start = <uintptr_t>(vm.stack + STACK_SIZE - FRAME_SIZE)
    vm.regions[0].end = <uintptr_t>(vm.stack + STACK_SIZE)
    vm.regions[0].writable = True
    vm.regions[0].name = REGION_STACK
    vm.nregions = vm.map_regions = 1
    vm.reg[10] = vm.regions[0].end
    vm.skb, vm.ctx, vm.ctx_rules, vm.pkt_region = NULL, 0, NULL, -1
    vm.world = NULL
    vm.div0_abort = div0_abort
    vm.pkt, vm.pkt_len = NULL, 0
    vm.fault_msg = NULL
    vm.tail_calls, vm.tail_call_limit, vm.next_prog = 0, tail_call_limit, NULL
    vm.spill = NULL
    vm.prog, vm.owner = NULL, NULL
    vm.steps, vm.nsteps, vm.cap_steps = NULL, 0, 0
    vm.accesses, vm.naccesses, vm.cap_accesses = NULL, 0, 0
    vm.held_lock = NULL
    vm.nres_held = 0


cdef inline void vm_attach_memory(Vm* vm, uint8_t* mem, size_t size) noexcept nogil:
    """Raw mode: r1 points at ``size`` writable bytes, r2 holds their length, and legacy
    packet loads read them.  Nothing when ``size`` is 0."""
    if size == 0:
        return
    vm.regions[1].start = <uintptr_t>mem
    vm.regions[1].end = vm.regions[1].start + size
    vm.regions[1].writable = True
    vm.regions[1].name = REGION_MEMORY
    vm.nregions = 2
    vm.reg[1] = vm.regions[1].start
    vm.reg[2] = size
    vm.pkt = mem
    vm.pkt_len = <uint32_t>size


cdef inline void vm_attach_skb(Vm* vm, Skb* skb, bint packet_region) noexcept nogil:
    """Skb program types: r1 is the packet's ``__sk_buff`` context and the packet bytes
    are a region, writable with ``packet_region`` (tc programs: direct packet access);
    a socket filter reaches it only through a dynptr slice."""
    vm.skb = skb
    vm.ctx = <uintptr_t>vm.ctx_mem
    vm.reg[1] = vm.ctx
    vm.pkt_region = 1
    vm.regions[1].writable = packet_region
    vm.regions[1].name = REGION_PACKET
    vm.nregions = 2
    skb_sync(vm)


cdef inline void vm_end(Vm* vm) noexcept nogil:
    """Release what a run holds: reserved ring buffer records, trace buffers."""
    ringbuf_release_all(vm)
    if vm.steps != NULL or vm.accesses != NULL:
        free(vm.steps)
        free(vm.accesses)
        vm.steps, vm.nsteps, vm.cap_steps = NULL, 0, 0
        vm.accesses, vm.naccesses, vm.cap_accesses = NULL, 0, 0


# --- what a Python Program or Map holds ----------------------------------------------

cdef ProgCore* program_core(object program) except NULL
cdef MapStore* map_store(object m) except NULL
cdef int profile_id(str profile) except -1

# --- bpf_timer (timers.pxi): what a replay loop fires between its packets ------------

cdef int64_t timers_soonest() noexcept nogil
cdef object fire_timers(int64_t until, uint64_t limit, ProgCore** progs=*, int nprogs=*,
                        object machine=*)

# --- the modelled machine (trace/tracing.pxi): a replay's packet runs' current task ---

cdef object hook_world(object machine, TraceWorld* w)

# --- the skb model (skb/skbuff.pxi) --------------------------------------------------

cdef void skb_init(Skb* skb, object frame, dict fields, object prog_type, int profile) except *
cdef void skb_free(Skb* skb) noexcept nogil
cdef bint skb_load_frame(Skb* skb, const Skb* tmpl, const uint8_t* frame, uint32_t n,
                         uint32_t keep) noexcept nogil
cdef bint skb_reload_frame(Skb* skb, const Skb* tmpl, const uint8_t* frame, uint32_t n,
                           uint32_t keep) noexcept nogil
cdef uint32_t skb_keep_bits(dict fields)
cdef uint16_t eth_type_trans(Skb* skb) noexcept nogil
cdef uint32_t skb_csum_now(Skb* skb) noexcept nogil
cdef void skb_wire_bytes(Skb* skb, uint8_t* out) noexcept nogil
cdef bint skb_device_exists(Skb* skb, uint32_t ifindex) noexcept nogil
cdef void _skb_flow_hash(Skb* skb) noexcept nogil   # __skb_get_hash_net
