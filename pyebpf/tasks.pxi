# The task and cgroup kfuncs of kernel/bpf/helpers.c's generic set (bpf_task_*,
# bpf_cgroup_*).  Included into pyebpf/_core.pyx through kfuncs.pxi.
#
# A task is a task_struct of the run's machine (TraceWorld.tasks: the current task and
# pyebpf.trace.Machine.tasks, in the kernel's task-list order), found by its address; a
# packet run given no machine has none.  A cgroup is one of the Environment's
# (NetEnv.cgroups), at CGROUP_ADDRESS + its index * CGROUP_STRIDE: no memory; a load
# through the pointer (a BPF_PROBE_MEM load, trace_probe_load) is answered by
# cgroup_load from the model: level and kn (its kernfs_node, whose id is the cgroup's
# id), and its css's cgroup and parent; every other byte reads 0 (the verifier lets no
# program read the ancestors[] flexible array: btf_struct_walk).
# A cgroup's extended attributes are the Environment's cgroup_xattrs (NetEnv.xattrs),
# read by bpf_cgroup_read_xattr.
# Every modelled task and cgroup outlives the run, so acquiring one returns the pointer
# and releasing one does nothing: the verifier pairs them.

cdef extern from "<string.h>":
    size_t strnlen(const char* s, size_t n) nogil

cdef enum:
    NO_VPID = 0xFFFFFFFFFFFFFFFF       # a task outside the current task's pid namespace

ctypedef struct CgroupLayout:
    # pyebpf.skb.kern.cgroup_layout, read once a program calling a cgroup kfunc is decoded
    uint32_t level
    uint32_t kn
    uint32_t kn_id

ctypedef struct CssLayout:
    # pyebpf.skb.kern.css_layout, read with CgroupLayout
    uint32_t self_off
    uint32_t cgroup
    uint32_t parent

cdef CgroupLayout _CGRP
cdef CssLayout _CSS
cdef bint _cgrp_ready = False
cdef uint64_t CGROUP_ADDRESS = _kern.CGROUP_ADDRESS
cdef uint64_t CGROUP_STRIDE = _kern.CGROUP_STRIDE
cdef uint64_t KERNFS_NODE_ADDRESS = _kern.KERNFS_NODE_ADDRESS
cdef uint64_t KERNFS_NODE_STRIDE = _kern.KERNFS_NODE_STRIDE
cdef uint64_t CGROUP1_ADDRESS = _kern.CGROUP1_ADDRESS
cdef uint64_t KERNFS_NODE1_ADDRESS = _kern.KERNFS_NODE1_ADDRESS


cdef int cgroup_prepare() except -1:
    global _cgrp_ready
    if not _cgrp_ready:
        _CGRP.level, _CGRP.kn, _CGRP.kn_id = _kern.cgroup_layout()
        _CSS.self_off, _CSS.cgroup, _CSS.parent = _kern.css_layout()
        _cgrp_ready = True
    return 0


cdef inline const NetCgroup* _cgroups(Vm* vm, size_t* n) noexcept nogil:
    if vm.skb == NULL or vm.skb.net == NULL:
        n[0] = 0
        return NULL
    n[0] = vm.skb.net.ncgroups
    return vm.skb.net.cgroups


cdef inline int64_t _cgroup_index(Vm* vm, uint64_t addr) noexcept nogil:
    """The Environment index of the cgroup at ``addr``, or -1."""
    cdef size_t n
    _cgroups(vm, &n)
    if addr < CGROUP_ADDRESS or (addr - CGROUP_ADDRESS) % CGROUP_STRIDE or \
            (addr - CGROUP_ADDRESS) // CGROUP_STRIDE >= n:
        return -1
    return <int64_t>((addr - CGROUP_ADDRESS) // CGROUP_STRIDE)


cdef inline uint64_t _cgroup_address(int64_t k) noexcept nogil:
    return CGROUP_ADDRESS + <uint64_t>k * CGROUP_STRIDE


cdef inline void _overlay(uint8_t* out, uint64_t off, uint32_t size, uint64_t field_off,
                          uint64_t value, uint32_t width) noexcept nogil:
    """Copy the bytes of the little-endian ``value`` (``width`` bytes at ``field_off``)
    that fall in the loaded window [off, off + size) into ``out``."""
    cdef uint64_t b
    for b in range(width):
        if off <= field_off + b < off + size:
            out[field_off + b - off] = <uint8_t>(value >> (8 * b))


cdef bint _cgroup1_load(Vm* vm, uint64_t addr, uint32_t size, uint8_t* buf) noexcept nogil:
    """cgroup_load for a machine task's cgroup v1 cgroup (Task.cgroup1)."""
    cdef uint64_t k, off, n = vm.world.ncgroup1 if vm.world != NULL else 0
    cdef const uint64_t* c
    if CGROUP1_ADDRESS <= addr < CGROUP1_ADDRESS + n * CGROUP_STRIDE:
        k, off = (addr - CGROUP1_ADDRESS) // CGROUP_STRIDE, (addr - CGROUP1_ADDRESS) % CGROUP_STRIDE
        c = vm.world.cgroup1 + 4 * k
        _overlay(buf, off, size, _CGRP.level, <uint32_t>c[2], 4)
        _overlay(buf, off, size, _CGRP.kn, KERNFS_NODE1_ADDRESS + k * KERNFS_NODE_STRIDE, 8)
    elif KERNFS_NODE1_ADDRESS <= addr < KERNFS_NODE1_ADDRESS + n * KERNFS_NODE_STRIDE:
        k = (addr - KERNFS_NODE1_ADDRESS) // KERNFS_NODE_STRIDE
        off = (addr - KERNFS_NODE1_ADDRESS) % KERNFS_NODE_STRIDE
        _overlay(buf, off, size, _CGRP.kn_id, vm.world.cgroup1[4 * k + 3], 8)
    else:
        return False
    return True


cdef bint cgroup_load(Vm* vm, uint64_t addr, uint32_t size, uint64_t* out) noexcept nogil:
    """A load through a modelled cgroup's struct cgroup or its kernfs_node; False for an
    address of neither."""
    cdef size_t n
    cdef const NetCgroup* cg = _cgroups(vm, &n)
    cdef uint8_t buf[8]
    cdef uint64_t k, off
    if not _cgrp_ready:
        return False
    memset(buf, 0, 8)
    if _cgroup1_load(vm, addr, size, buf):
        out[0] = _load(buf, size)
        return True
    if n == 0:
        return False
    if CGROUP_ADDRESS <= addr < CGROUP_ADDRESS + n * CGROUP_STRIDE:
        k, off = (addr - CGROUP_ADDRESS) // CGROUP_STRIDE, (addr - CGROUP_ADDRESS) % CGROUP_STRIDE
        _overlay(buf, off, size, _CGRP.level, <uint32_t>cg[k].level, 4)
        _overlay(buf, off, size, _CGRP.kn, KERNFS_NODE_ADDRESS + k * KERNFS_NODE_STRIDE, 8)
        # its css (cgroup->self): the cgroup, and its parent's css (NULL for the root)
        _overlay(buf, off, size, _CSS.self_off + _CSS.cgroup, _cgroup_address(k), 8)
        if cg[k].parent >= 0:
            _overlay(buf, off, size, _CSS.self_off + _CSS.parent,
                     _cgroup_address(cg[k].parent) + _CSS.self_off, 8)
    elif KERNFS_NODE_ADDRESS <= addr < KERNFS_NODE_ADDRESS + n * KERNFS_NODE_STRIDE:
        k = (addr - KERNFS_NODE_ADDRESS) // KERNFS_NODE_STRIDE
        off = (addr - KERNFS_NODE_ADDRESS) % KERNFS_NODE_STRIDE
        _overlay(buf, off, size, _CGRP.kn_id, cg[k].id, 8)
    else:
        return False
    out[0] = _load(buf, size)
    return True


# --- a task's cgroups (task->cgroups->dfl_cgrp) where the machine does not give them: the
# current task's css_set has the Environment's task_cgroup as its default cgroup, every
# other task's the root cgroup (Machine.tasks are in it)

cdef uint32_t _TASK_CSS = 0, _CSS_DFL_CGRP = 0
cdef bint _css_ready = False
cdef uint64_t CSS_SET_ADDRESS = _kern.CSS_SET_ADDRESS
cdef uint64_t CSS_SET_STRIDE = _kern.CSS_SET_STRIDE


cdef int task_css_prepare() except -1:
    """Read where task_struct's cgroups and css_set's dfl_cgrp are (and the cgroups'
    layout, which a load through dfl_cgrp reads), once a machine is made."""
    global _TASK_CSS, _CSS_DFL_CGRP, _css_ready
    if not _css_ready:
        cgroup_prepare()
        _TASK_CSS, _CSS_DFL_CGRP = _kern.task_css_layout()
        _css_ready = True
    return 0


cdef int64_t _dfl_cgroup(Vm* vm, bint current) noexcept nogil:
    """The Environment index of the current task's cgroup (its task_cgroup), or of the
    root cgroup; -1 if it declares none."""
    cdef size_t k, n
    cdef const NetCgroup* cg = _cgroups(vm, &n)
    for k in range(n):
        if (cg[k].id == vm.skb.net.task_cgroups[vm.skb.net.task_cgroup_level] if current
                else cg[k].parent < 0):
            return <int64_t>k
    return -1


cdef bint task_css_load(Vm* vm, uint64_t addr, uint32_t size, uint64_t* out) noexcept nogil:
    """A load the machine's kernel memory does not answer, of a task's ``cgroups``
    pointer (its modelled css_set, _kern.CSS_SET_ADDRESS) or through that css_set (its
    ``dfl_cgrp``, the Environment's cgroup; the rest 0); False for any other address."""
    cdef uint8_t buf[8]
    cdef uint64_t task = 0, css
    cdef uint32_t k
    cdef int64_t c
    if not _css_ready or vm.world == NULL:
        return False
    memset(buf, 0, 8)
    if CSS_SET_ADDRESS <= addr < CSS_SET_ADDRESS + 2 * CSS_SET_STRIDE:
        c = _dfl_cgroup(vm, addr < CSS_SET_ADDRESS + CSS_SET_STRIDE)
        if c >= 0:
            _overlay(buf, (addr - CSS_SET_ADDRESS) % CSS_SET_STRIDE, size, _CSS_DFL_CGRP,
                     _cgroup_address(c), 8)
        out[0] = _load(buf, size)
        return True
    if vm.world.task <= addr < vm.world.task + _TASK_CSS + 8:
        task, css = vm.world.task, CSS_SET_ADDRESS
    else:
        for k in range(vm.world.ntasks):
            if vm.world.tasks[4 * k + 2] <= addr < vm.world.tasks[4 * k + 2] + _TASK_CSS + 8:
                task, css = vm.world.tasks[4 * k + 2], CSS_SET_ADDRESS + CSS_SET_STRIDE
                break
        else:
            return False
    _overlay(buf, addr - task, size, _TASK_CSS, css, 8)
    out[0] = _load(buf, size)
    return True


cdef uint64_t _k_acquire(Vm* vm, uint64_t p, uint64_t r2, uint64_t r3, uint64_t r4,
                         uint64_t r5) noexcept nogil:
    return p


cdef uint64_t _k_release(Vm* vm, uint64_t p, uint64_t r2, uint64_t r3, uint64_t r4,
                         uint64_t r5) noexcept nogil:
    return 0


cdef uint64_t _find_task(Vm* vm, uint64_t pid, int column) noexcept nogil:
    """The address of the machine's task whose pid (column 0) or pid in the current
    task's namespace (column 1) is ``pid``, else 0.  Pid 0 finds none: the idle task
    (init_task) has no struct pid (find_task_by_pid_ns)."""
    cdef uint32_t k
    if vm.world == NULL or pid == 0:
        return 0
    for k in range(vm.world.ntasks):
        if vm.world.tasks[4 * k + column] == pid:
            return vm.world.tasks[4 * k + 2]
    return 0


cdef uint64_t _k_task_from_pid(Vm* vm, uint64_t pid, uint64_t r2, uint64_t r3, uint64_t r4,
                               uint64_t r5) noexcept nogil:
    """find_task_by_pid_ns(pid, &init_pid_ns)."""
    return _find_task(vm, <uint32_t>pid, 0)


cdef uint64_t _k_task_from_vpid(Vm* vm, uint64_t vpid, uint64_t r2, uint64_t r3, uint64_t r4,
                                uint64_t r5) noexcept nogil:
    """find_task_by_vpid: by the pid in the current task's pid namespace."""
    return _find_task(vm, <uint32_t>vpid, 1)


cdef uint64_t _k_cgroup_from_id(Vm* vm, uint64_t cgid, uint64_t r2, uint64_t r3, uint64_t r4,
                                uint64_t r5) noexcept nogil:
    """cgroup_get_from_id: the Environment's cgroup of that id, else NULL."""
    cdef size_t k, n
    cdef const NetCgroup* cg = _cgroups(vm, &n)
    for k in range(n):
        if cg[k].id == cgid:
            return _cgroup_address(k)
    return 0


cdef uint64_t _k_cgroup_read_xattr(Vm* vm, uint64_t cgrp, uint64_t name_p, uint64_t value_p,
                                   uint64_t r4, uint64_t r5) noexcept nogil:
    """bpf_cgroup_read_xattr (fs/bpf_fs_kfuncs.c): -EPERM for a name outside user.*,
    -EINVAL for a NULL or read-only dynptr, then kernfs_xattr_get: -ENODATA for no such
    attribute, -ERANGE for a value longer than the dynptr, else the value copied and its
    length."""
    cdef const char* name = <const char*><uintptr_t>name_p
    cdef size_t name_len, n
    cdef DynptrKern* d = _dynptr(vm, value_p, ACCESS_READ)
    cdef int64_t k = _cgroup_index(vm, cgrp)
    cdef const uint8_t* rec
    cdef const uint8_t* end
    cdef uint32_t nlen, vlen, size
    cdef uint8_t* out
    if d == NULL:
        return 0
    # the verifier made name a NUL-terminated constant string (check_reg_const_str)
    name_len = strnlen(name, _str_span(vm, name_p))
    if name_len < 5 or memcmp(name, b"user.", 5):
        return err(EPERM)                   # XATTR_USER_PREFIX only
    size = _dsize(d)
    out = _dynptr_slice_ptr(vm, d, 0, size, True)
    if vm.status != STATUS_RUNNING:
        return 0
    if out == NULL:
        return err(EINVAL)                  # __bpf_dynptr_data_rw
    if k < 0:
        return err(ENODATA)                 # no attributes (kernfs_iattrs_noalloc)
    rec = vm.skb.net.xattrs + vm.skb.net.cgroups[k].xattr_off
    end = rec + vm.skb.net.cgroups[k].xattr_len
    while rec < end:
        memcpy(&nlen, rec, 4)
        memcpy(&vlen, rec + 4, 4)
        if nlen == name_len and memcmp(rec + 8, name, nlen) == 0:
            if vlen > size:
                return err(ERANGE)          # simple_xattr_get
            memcpy(out, rec + 8 + nlen, vlen)
            return vlen
        rec += 8 + nlen + vlen
    return err(ENODATA)


cdef uint64_t _k_cgroup_ancestor(Vm* vm, uint64_t cgrp, uint64_t level, uint64_t r3,
                                 uint64_t r4, uint64_t r5) noexcept nogil:
    """The ancestor at ``level`` (cgrp->ancestors[level]); NULL for a negative level or
    one deeper than the cgroup's."""
    cdef size_t n
    cdef const NetCgroup* cg = _cgroups(vm, &n)
    cdef int64_t k = _cgroup_index(vm, cgrp)
    cdef int32_t want = <int32_t>level
    if k < 0 or want < 0 or want > cg[k].level:
        return 0
    while cg[k].level > want:
        k = cg[k].parent
    return _cgroup_address(k)


cdef uint64_t _k_task_under_cgroup(Vm* vm, uint64_t task, uint64_t cgrp, uint64_t r3,
                                   uint64_t r4, uint64_t r5) noexcept nogil:
    """task_under_cgroup_hierarchy: whether the task's default cgroup is ``cgrp`` or
    below it.  The current task's is the Environment's task_cgroup; the machine's
    other tasks are in the root cgroup."""
    cdef size_t n
    cdef const NetCgroup* cg = _cgroups(vm, &n)
    cdef int64_t k = _cgroup_index(vm, cgrp)
    cdef const NetEnv* net
    if k < 0:
        return 0
    if vm.world == NULL or task != vm.world.task:
        return cg[k].level == 0
    net = vm.skb.net
    return cg[k].level <= net.task_cgroup_level and \
        net.task_cgroups[cg[k].level] == cg[k].id


cdef uint32_t _TASK_FLAGS = 0
cdef bint _task_ready = False
cdef uint32_t PF_KTHREAD = _isa.PF_KTHREAD
cdef uint32_t PIDTYPE_PID = _isa.PIDTYPE_PID
cdef uint32_t PIDTYPE_TGID = _isa.PIDTYPE_TGID


cdef int task_prepare() except -1:
    global _TASK_FLAGS, _task_ready
    if not _task_ready:
        _TASK_FLAGS = _kern.task_flags_offset()
        _task_ready = True
    return 0


cdef uint64_t _k_send_signal_task(Vm* vm, uint64_t task, uint64_t sig, uint64_t type,
                                  uint64_t value, uint64_t r5) noexcept nogil:
    """bpf_send_signal_task: a pid type other than PIDTYPE_PID or PIDTYPE_TGID is
    -EINVAL; then bpf_send_signal_common: a kernel thread (PF_KTHREAD in the flags of its
    task_struct in the machine's kernel memory) or the init process (tgid 1; another
    task of the machine: pid 1) is -EPERM, then a signal above _NSIG -EINVAL (valid_signal
    in group_send_sig_info); signal 0 sends nothing.  A signal to the current task is
    recorded as bpf_send_signal's (PIDTYPE_TGID) or bpf_send_signal_thread's
    (PIDTYPE_PID); one to another task of the machine is not recorded."""
    cdef const uint8_t* flags
    cdef uint32_t f = 0
    cdef bint current
    if <uint32_t>type != PIDTYPE_PID and <uint32_t>type != PIDTYPE_TGID:
        return err(EINVAL)
    if vm.world == NULL:
        return err(EPERM)
    flags = _kernel_bytes(vm, task + _TASK_FLAGS, 4)
    if flags != NULL:
        memcpy(&f, flags, 4)
    current = task == vm.world.task
    if f & PF_KTHREAD or (current and vm.world.pid_tgid >> 32 == 1) or \
            (not current and _task_pid(vm, task) == 1):
        return err(EPERM)
    if <uint32_t>sig > NSIG:
        return err(EINVAL)
    if <uint32_t>sig and current:
        if <uint32_t>type == PIDTYPE_PID:
            vm.world.thread_signals |= <uint64_t>1 << (<uint32_t>sig - 1)
        else:
            vm.world.signals |= <uint64_t>1 << (<uint32_t>sig - 1)
    return 0


cdef uint64_t _k_task_get_cgroup1(Vm* vm, uint64_t task, uint64_t hierarchy_id,
                                  uint64_t r3, uint64_t r4, uint64_t r5) noexcept nogil:
    """task_get_cgroup1: the task's cgroup in the v1 hierarchy of that id (Task.cgroup1),
    else NULL (the kernel's -ENOENT, which the kfunc turns into NULL)."""
    cdef uint32_t k
    if vm.world == NULL:
        return 0
    for k in range(vm.world.ncgroup1):
        if vm.world.cgroup1[4 * k] == task and \
                vm.world.cgroup1[4 * k + 1] == <uint32_t>hierarchy_id:
            return CGROUP1_ADDRESS + k * CGROUP_STRIDE
    return 0


cdef uint64_t _task_pid(Vm* vm, uint64_t task) noexcept nogil:
    """The pid of the machine's task at ``task``, else 0."""
    cdef uint32_t k
    for k in range(vm.world.ntasks):
        if vm.world.tasks[4 * k + 2] == task:
            return vm.world.tasks[4 * k]
    return 0


# --- the task iterator (kernel/bpf/task_iter.c): struct bpf_iter_task is 24 bytes on the
# program's stack, read here as positions in the machine's task table (TraceWorld.tasks,
# in the kernel's task-list order: a thread group's rows together, its leader first).
# The kernel keeps pointers (bpf_iter_task_kern: task, pos, flags); the verifier lets no
# program read the iterator's bytes, so indexes are as good.

cdef uint32_t BPF_TASK_ITER_ALL_PROCS = _isa.BPF_TASK_ITER_ALL_PROCS
cdef uint32_t BPF_TASK_ITER_ALL_THREADS = _isa.BPF_TASK_ITER_ALL_THREADS
cdef uint32_t BPF_TASK_ITER_PROC_THREADS = _isa.BPF_TASK_ITER_PROC_THREADS

cdef struct IterTask:
    int64_t task                        # the row of the process walked (kit->task)
    int64_t pos                         # the row next() yields, -1 for none (kit->pos)
    uint32_t flags


cdef inline IterTask* _iter_task(Vm* vm, uint64_t it) noexcept nogil:
    return <IterTask*>_mem(vm, it, sizeof(IterTask), ACCESS_WRITE)


cdef inline uint64_t _row_tgid(Vm* vm, int64_t row) noexcept nogil:
    return vm.world.tasks[4 * row + 3]


cdef uint64_t _k_iter_task_new(Vm* vm, uint64_t it, uint64_t task, uint64_t flags,
                               uint64_t r4, uint64_t r5) noexcept nogil:
    """bpf_iter_task_new: -EINVAL for unknown flags or BPF_TASK_ITER_PROC_THREADS without
    a task (the iterator then yields nothing); the walk starts at init_task (the table's
    first row) or at ``task``."""
    cdef IterTask* s = _iter_task(vm, it)
    cdef uint32_t k, n = vm.world.ntasks if vm.world != NULL else 0
    cdef uint32_t f = <uint32_t>flags
    if s == NULL:
        return 0
    s.pos = s.task = -1
    if f != BPF_TASK_ITER_ALL_PROCS and f != BPF_TASK_ITER_ALL_THREADS and \
            f != BPF_TASK_ITER_PROC_THREADS:
        return err(EINVAL)
    if f == BPF_TASK_ITER_PROC_THREADS and task == 0:
        return err(EINVAL)
    s.flags = f
    if f != BPF_TASK_ITER_PROC_THREADS:
        s.task = 0 if n else -1
    else:
        for k in range(n):
            if vm.world.tasks[4 * k + 2] == task:
                s.task = k
    s.pos = s.task
    return 0


cdef uint64_t _k_iter_task_next(Vm* vm, uint64_t it, uint64_t r2, uint64_t r3, uint64_t r4,
                                uint64_t r5) noexcept nogil:
    """bpf_iter_task_next: the task at pos, then pos moves to the next thread of its
    group (__next_thread; BPF_TASK_ITER_ALL_PROCS skips them), past the group's last to
    the next group's leader (next_task), past the last group to none (the list wraps
    to init_task)."""
    cdef IterTask* s = _iter_task(vm, it)
    cdef int64_t pos, n
    if s == NULL or s.pos < 0 or vm.world == NULL:
        return 0
    pos, n = s.pos, vm.world.ntasks
    if s.flags != BPF_TASK_ITER_ALL_PROCS:
        if pos + 1 < n and _row_tgid(vm, pos + 1) == _row_tgid(vm, pos):
            s.pos = pos + 1
            return vm.world.tasks[4 * pos + 2]
        if s.flags == BPF_TASK_ITER_PROC_THREADS:
            s.pos = -1
            return vm.world.tasks[4 * pos + 2]
    s.task += 1
    while s.task < n and _row_tgid(vm, s.task) == _row_tgid(vm, s.task - 1):
        s.task += 1
    s.pos = s.task if s.task < n else -1
    return vm.world.tasks[4 * pos + 2]


# --- the css iterator (kernel/bpf/cgroup_iter.c): a modelled cgroup's css is its struct
# cgroup's own (cgroup->self, at _CSS.self in it), whose cgroup and parent a load reads
# (cgroup_load); its children are the Environment's cgroups whose parent it is, in their
# order there (the kernel's: creation order).  struct bpf_iter_css is 24 bytes on the
# program's stack, read here as Environment indexes.

cdef uint32_t BPF_CGROUP_ITER_DESCENDANTS_PRE = _isa.BPF_CGROUP_ITER_DESCENDANTS_PRE
cdef uint32_t BPF_CGROUP_ITER_DESCENDANTS_POST = _isa.BPF_CGROUP_ITER_DESCENDANTS_POST
cdef uint32_t BPF_CGROUP_ITER_ANCESTORS_UP = _isa.BPF_CGROUP_ITER_ANCESTORS_UP

cdef struct IterCss:
    int64_t start                       # the css walked from, -1 for none (kit->start)
    int64_t pos                         # the css last yielded, -1 for none (kit->pos)
    uint32_t flags


cdef inline IterCss* _iter_css(Vm* vm, uint64_t it) noexcept nogil:
    return <IterCss*>_mem(vm, it, sizeof(IterCss), ACCESS_WRITE)


cdef int64_t _first_child(const NetCgroup* cg, size_t n, int64_t k) noexcept nogil:
    cdef size_t j
    for j in range(n):
        if cg[j].parent == k:
            return <int64_t>j
    return -1


cdef int64_t _next_sibling(const NetCgroup* cg, size_t n, int64_t k) noexcept nogil:
    cdef size_t j
    if cg[k].parent < 0:
        return -1
    for j in range(<size_t>k + 1, n):
        if cg[j].parent == cg[k].parent:
            return <int64_t>j
    return -1


cdef int64_t _leftmost(const NetCgroup* cg, size_t n, int64_t k) noexcept nogil:
    """css_leftmost_descendant: the first child's first child ..., or k."""
    cdef int64_t c = _first_child(cg, n, k)
    while c >= 0:
        k, c = c, _first_child(cg, n, c)
    return k


cdef uint64_t _k_iter_css_new(Vm* vm, uint64_t it, uint64_t start, uint64_t flags,
                              uint64_t r4, uint64_t r5) noexcept nogil:
    """bpf_iter_css_new: -EINVAL for an order other than pre, post or ancestors (the
    iterator then yields nothing)."""
    cdef IterCss* s = _iter_css(vm, it)
    cdef uint32_t f = <uint32_t>flags
    if s == NULL:
        return 0
    s.start = s.pos = -1
    if f != BPF_CGROUP_ITER_DESCENDANTS_PRE and f != BPF_CGROUP_ITER_DESCENDANTS_POST and \
            f != BPF_CGROUP_ITER_ANCESTORS_UP:
        return err(EINVAL)
    s.start = _cgroup_index(vm, start - _CSS.self_off)
    s.flags = f
    return 0


cdef uint64_t _k_iter_css_next(Vm* vm, uint64_t it, uint64_t r2, uint64_t r3, uint64_t r4,
                               uint64_t r5) noexcept nogil:
    """bpf_iter_css_next: css_next_descendant_pre, css_next_descendant_post, or the
    parent (ancestors), from the css last yielded; after the last, NULL (a pre or post
    walk called again starts over, as the kernel's does)."""
    cdef IterCss* s = _iter_css(vm, it)
    cdef size_t n
    cdef const NetCgroup* cg = _cgroups(vm, &n)
    cdef int64_t pos, nxt
    if s == NULL or s.start < 0:
        return 0
    pos = s.pos
    if s.flags == BPF_CGROUP_ITER_DESCENDANTS_PRE:
        if pos < 0:
            pos = s.start
        else:
            nxt = _first_child(cg, n, pos)
            while nxt < 0 and pos != s.start:
                nxt = _next_sibling(cg, n, pos)
                if nxt < 0:
                    pos = cg[pos].parent
            pos = nxt
    elif s.flags == BPF_CGROUP_ITER_DESCENDANTS_POST:
        if pos < 0:
            pos = _leftmost(cg, n, s.start)
        elif pos == s.start:
            pos = -1
        else:
            nxt = _next_sibling(cg, n, pos)
            pos = _leftmost(cg, n, nxt) if nxt >= 0 else cg[pos].parent
    else:
        pos = s.start if pos < 0 else cg[pos].parent
    s.pos = pos
    return 0 if pos < 0 else _cgroup_address(pos) + _CSS.self_off



# --- the VMA iterator (kernel/bpf/task_iter.c): the current task's memory map is the
# machine's (TraceWorld.vmas, by start); no other task has one declared, so a walk of
# another task's is -ENOENT, as a kernel thread's (no mm).  struct bpf_iter_task_vma is
# 8 bytes on the program's stack: the next mapping's row, -1 for none.

cdef struct IterTaskVma:
    int64_t pos


cdef inline IterTaskVma* _iter_task_vma(Vm* vm, uint64_t it) noexcept nogil:
    return <IterTaskVma*>_mem(vm, it, sizeof(IterTaskVma), ACCESS_WRITE)


cdef uint64_t _k_iter_task_vma_new(Vm* vm, uint64_t it, uint64_t task, uint64_t addr,
                                   uint64_t r4, uint64_t r5) noexcept nogil:
    """bpf_iter_task_vma_new: the walk starts at the first mapping that ends above
    ``addr`` (vma_iter_init, then vma_next)."""
    cdef IterTaskVma* s = _iter_task_vma(vm, it)
    cdef uint32_t k
    if s == NULL:
        return 0
    s.pos = -1
    if vm.world == NULL or task != vm.world.task:
        return err(ENOENT)
    for k in range(vm.world.nvmas):
        if vm.world.vmas[3 * k + 1] > addr:
            s.pos = k
            break
    return 0


cdef uint64_t _k_iter_task_vma_next(Vm* vm, uint64_t it, uint64_t r2, uint64_t r3,
                                    uint64_t r4, uint64_t r5) noexcept nogil:
    cdef IterTaskVma* s = _iter_task_vma(vm, it)
    cdef int64_t k
    if s == NULL or s.pos < 0 or vm.world == NULL:
        return 0
    k = s.pos
    s.pos = k + 1 if k + 1 < vm.world.nvmas else -1
    return vm.world.vmas[3 * k + 2]

cdef void register_task_kfuncs() except *:
    _kfunc("bpf_task_acquire", _k_acquire)
    _kfunc("bpf_cgroup_acquire", _k_acquire)
    _kfunc("bpf_task_release", _k_release)
    _kfunc("bpf_cgroup_release", _k_release)
    _kfunc("bpf_task_from_pid", _k_task_from_pid)
    _kfunc("bpf_task_from_vpid", _k_task_from_vpid)
    _kfunc("bpf_cgroup_from_id", _k_cgroup_from_id)
    _kfunc("bpf_cgroup_ancestor", _k_cgroup_ancestor)
    _kfunc("bpf_cgroup_read_xattr", _k_cgroup_read_xattr)
    _kfunc("bpf_task_under_cgroup", _k_task_under_cgroup)
    _kfunc("bpf_send_signal_task", _k_send_signal_task)
    _kfunc("bpf_task_get_cgroup1", _k_task_get_cgroup1)
    _kfunc("bpf_iter_task_new", _k_iter_task_new)
    _kfunc("bpf_iter_task_next", _k_iter_task_next)
    _kfunc("bpf_iter_task_destroy", _k_release)
    _kfunc("bpf_iter_css_new", _k_iter_css_new)
    _kfunc("bpf_iter_css_next", _k_iter_css_next)
    _kfunc("bpf_iter_css_destroy", _k_release)
    _kfunc("bpf_iter_task_vma_new", _k_iter_task_vma_new)
    _kfunc("bpf_iter_task_vma_next", _k_iter_task_vma_next)
    _kfunc("bpf_iter_task_vma_destroy", _k_release)
