# Tracing program types (BPF_PROG_TYPE_KPROBE): the modelled machine a run sees (its
# pt_regs context, the current task, kernel and user memory, stacks) and the helpers of
# kernel/trace/bpf_trace.c that read it.  Included into pyebpf/_core.pyx.
#
# It sits with the tracing modules in pyebpf/trace/, not in skb/: nothing here touches a
# packet.  A tracing run still carries an Skb, with no packet bytes, because that is
# where the helpers every type shares find the run's clock, random state, CPU, current
# task ids, trace_printk buffer and cgroups.
#
# Addresses: kernel and user memory are images (address ranges -> bytes, given by
# pyebpf.trace.Machine); the run's own regions (stack, pt_regs, map values) are kernel
# memory too, wherever the host put them, so a probe read of a stack buffer works as it
# does in the kernel.

from .trace import machine as _machine


@cython.final
cdef class MachineImage:
    """A :class:`pyebpf.trace.Machine` in C, made once per Machine (it is immutable) and
    shared by every run on it: ``w`` is the TraceWorld a run copies and completes."""
    cdef TraceWorld w
    cdef MemRange* _ranges
    cdef uint64_t* _stacks
    cdef uint64_t* _vmas
    cdef uint64_t* _tasks
    cdef uint64_t* _cgroup1
    cdef uint64_t* _task_umem
    cdef object machine          # owns the bytes the ranges point into
    cdef object env              # the machine's Environment, or None
    cdef tuple kmem              # its kernel memory with the kworker's task_struct
    cdef uint64_t kworker        # the kworker's task_struct address, pid << 32 | tgid,
    cdef uint64_t kworker_pid_tgid  # ids and comm (worker_world)
    cdef uint64_t kworker_ns_pid_tgid
    cdef uint64_t kworker_uid_gid
    cdef bytes kworker_comm

    def __cinit__(self):
        self._ranges = NULL
        self._stacks = NULL
        self._vmas = NULL
        self._tasks = NULL
        self._cgroup1 = NULL
        self._task_umem = NULL

    def __dealloc__(self):
        free(self._ranges)
        free(self._stacks)
        free(self._vmas)
        free(self._tasks)
        free(self._cgroup1)
        free(self._task_umem)

    def __init__(self, machine):
        cdef tuple kmem = _machine.worker_kernel_memory(machine)
        cdef tuple umem = machine.user_memory
        cdef tuple kstack = machine.kernel_stack
        cdef tuple ustack = machine.user_stack
        cdef tuple vmas = machine.vma_table
        # every task's user memory: the current task's (umem), then each other task's
        cdef list owners = [(machine.task.address, umem)] + [
            (t.address, t.user_memory) for t in machine.tasks if t.user_memory]
        cdef tuple tumem = sum((mem for _, mem in owners[1:]), ())
        cdef size_t k, n = len(kmem) + len(umem) + len(tumem)
        cdef size_t depth = len(kstack) + len(ustack), first
        cdef const uint8_t* data
        self.machine, self.env, self.kmem = machine, machine.env, kmem
        task_css_prepare()
        memset(&self.w, 0, sizeof(TraceWorld))
        self._ranges = <MemRange*>malloc(max(n, 1) * sizeof(MemRange))
        self._stacks = <uint64_t*>malloc(max(depth, 1) * sizeof(uint64_t))
        self._vmas = <uint64_t*>malloc(max(len(vmas), 1) * 3 * sizeof(uint64_t))
        if self._ranges == NULL or self._stacks == NULL or self._vmas == NULL:
            raise MemoryError()
        for k, (start, end, address) in enumerate(vmas):
            self._vmas[3 * k], self._vmas[3 * k + 1], self._vmas[3 * k + 2] = start, end, address
        self.w.vmas, self.w.nvmas = self._vmas, len(vmas)
        self.w.branches = <const uint8_t*>(<const char*>machine.branch_records)
        self.w.nbranches = len(machine.branch_records) // _machine.BRANCH_ENTRY_SIZE
        for k, (start, chunk) in enumerate(kmem + umem + tumem):
            data = chunk
            self._ranges[k].start = start
            self._ranges[k].end = start + len(chunk)
            self._ranges[k].data = data
        for k, ip in enumerate(kstack + ustack):
            self._stacks[k] = ip
        self.w.kmem, self.w.nkmem = self._ranges, len(kmem)
        self.w.umem, self.w.numem = self._ranges + len(kmem), len(umem)
        self.w.kstack, self.w.nkstack = self._stacks, len(kstack)
        self.w.ustack, self.w.nustack = self._stacks + len(kstack), len(ustack)
        task = machine.task
        self.w.task = task.address
        self.w.pid_tgid = (<uint64_t>task.tgid << 32) | <uint32_t>task.pid
        self.w.uid_gid = (<uint64_t>task.gid << 32) | <uint32_t>task.uid
        memcpy(self.w.comm, <const char*>task.comm_bytes, len(task.comm_bytes))
        self.w.pidns_dev, self.w.pidns_ino = task.pidns
        self.w.ns_pid_tgid = (<uint64_t>task.ns_tgid << 32) | <uint32_t>task.ns_pid
        self.w.user_regs = _machine.USER_REGS_ADDRESS
        kworker = machine.kworker
        self.kworker = kworker.address
        self.kworker_pid_tgid = (<uint64_t>kworker.tgid << 32) | <uint32_t>kworker.pid
        self.kworker_ns_pid_tgid = (<uint64_t>kworker.ns_tgid << 32) | <uint32_t>kworker.ns_pid
        self.kworker_uid_gid = (<uint64_t>kworker.gid << 32) | <uint32_t>kworker.uid
        self.kworker_comm = kworker.comm_bytes
        # the kernel's task list: each thread group at its tgid (its leader's pid: init_task,
        # pid 0, first), its leader first, then its other threads by pid
        tasks = sorted((task,) + machine.tasks + (kworker,),
                       key=lambda t: (t.tgid, t.pid != t.tgid, t.pid))
        self._tasks = <uint64_t*>malloc(len(tasks) * 4 * sizeof(uint64_t))
        if self._tasks == NULL:
            raise MemoryError()
        for k, t in enumerate(tasks):
            self._tasks[4 * k], self._tasks[4 * k + 2] = t.pid, t.address
            self._tasks[4 * k + 1] = t.ns_pid if t.pidns == task.pidns else NO_VPID
            self._tasks[4 * k + 3] = t.tgid
        self.w.tasks, self.w.ntasks = self._tasks, len(tasks)
        cgroup1 = [(t.address,) + c for t in tasks for c in t.cgroup1]
        self._cgroup1 = <uint64_t*>malloc(max(len(cgroup1), 1) * 4 * sizeof(uint64_t))
        if self._cgroup1 == NULL:
            raise MemoryError()
        for k, (address, hid, level, cgid) in enumerate(cgroup1):
            self._cgroup1[4 * k], self._cgroup1[4 * k + 1] = address, hid
            self._cgroup1[4 * k + 2], self._cgroup1[4 * k + 3] = level, cgid
        self.w.cgroup1, self.w.ncgroup1 = self._cgroup1, len(cgroup1)
        self._task_umem = <uint64_t*>malloc(len(owners) * 3 * sizeof(uint64_t))
        if self._task_umem == NULL:
            raise MemoryError()
        first = len(kmem)
        for k, (address, mem) in enumerate(owners):
            self._task_umem[3 * k], self._task_umem[3 * k + 1] = address, first
            self._task_umem[3 * k + 2] = len(mem)
            first += len(mem)
        self.w.task_umem, self.w.ntask_umem = self._task_umem, len(owners)


_IMAGES = {}        # id(Machine) -> (weak reference to it, its MachineImage)
_default_image = None     # of Machine(), made on first use


cdef MachineImage machine_image(object machine):
    """The C form of ``machine`` (None: the default Machine()), made once per Machine
    object (found by identity, as net_table finds an Environment's)."""
    global _default_image
    if machine is None:
        if _default_image is None:
            _default_image = MachineImage(_machine.Machine())
        return <MachineImage>_default_image
    entry = _IMAGES.get(id(machine))
    if entry is not None and entry[0]() is machine:
        return <MachineImage>entry[1]
    if not isinstance(machine, _machine.Machine):
        raise TypeError(f"machine must be a pyebpf.trace.Machine, not {type(machine).__name__}")
    key = id(machine)
    image = MachineImage(machine)
    _IMAGES[key] = (_weakref.ref(machine, lambda _, key=key, images=_IMAGES: images.pop(key, None)),
                    image)
    return image


#: What ``Program.run`` takes for a KPROBE program besides ``regs`` and ``machine``.
TRACE_FIELDS = {
    "regs": "the pt_regs: a dict of register names (pyebpf.isa.PT_REGS) or the struct's bytes",
    "machine": "a pyebpf.trace.Machine: task, memory images, stacks (default Machine())",
    "func_ip": "what bpf_get_func_ip returns (the probed function's address; default 0)",
    "cookie": "what bpf_get_attach_cookie returns (default 0)",
    "env": "a pyebpf.Environment (cgroups: the task's is its task_cgroup)",
    "ktime": "bpf_ktime_get_ns's clock at the start (docs/clock.md)",
    "ktime_step": "ns the clock moves per read", "prandom_seed": "bpf_get_prandom_u32's seed",
    "cpu": "the current CPU",
}
_REG_OFFSETS = {arch: layout for arch, (layout, _) in _isa.PT_REGS.items()}
_REGS_SIZE = {arch: size for arch, (_, size) in _isa.PT_REGS.items()}


cdef int regs_into(uint8_t* out, object regs, str arch) except -1:
    """Write ``struct pt_regs`` of ``arch`` from ``regs`` (what pyebpf.trace.pt_regs
    takes) into ``out``, zeroed; anything irregular goes to pt_regs for its error."""
    cdef dict layout = _REG_OFFSETS[arch]
    cdef Py_ssize_t size = _REGS_SIZE[arch]
    cdef const uint8_t[::1] raw
    cdef uint64_t u = 0
    cdef bytes made
    memset(out, 0, size)
    if regs is None:
        return 0
    if type(regs) is dict:
        for name, value in (<dict>regs).items():
            off = layout.get(name)
            try:
                if off is None or type(value) is not int:
                    raise OverflowError
                u = <uint64_t>value if value >= 0 else <uint64_t><int64_t>value
            except OverflowError:
                _machine.pt_regs(regs, arch)            # raises the error
            memcpy(out + <Py_ssize_t>off, &u, 8)
        return 0
    if type(regs) is bytes and len(<bytes>regs) == size:
        memcpy(out, PyBytes_AS_STRING(regs), size)
        return 0
    if isinstance(regs, (bytearray, memoryview)) and len(regs) == size:
        raw = memoryview(regs).cast("B")
        memcpy(out, &raw[0], size)
        return 0
    made = _machine.pt_regs(regs, arch)             # a Mapping, or an error
    memcpy(out, <const char*>made, size)
    return 0


cdef int trace_skb(Skb* skb, dict fields, object env, int profile) except -1:
    """An skb for tracing runs: no packet, only the run's environment (clock, random
    state, CPU, network) where the helpers every type shares look for it."""
    memset(skb, 0, sizeof(Skb))
    skb.cap = 1
    skb.head = <uint8_t*>malloc(1)
    if skb.head == NULL:
        raise MemoryError()
    skb.profile = profile
    skb.prandom = fields.get("prandom_seed") or 0x2545F4914F6CDD1D
    skb.ktime = fields.get("ktime", 0)
    skb.ktime_step = fields.get("ktime_step", 0)
    skb.cpu = fields.get("cpu", 0)
    env = fields.get("env", env)
    skb.net = &(<NetTable>(net_table(env) if env is not None else _default_net)).env
    return 0


cdef int trace_world(TraceWorld* w, MachineImage image, dict fields, str arch) except -1:
    """``w``: ``image``'s world, with the run's fields and ``arch``'s address limits."""
    memcpy(w, &image.w, sizeof(TraceWorld))
    w.task_size = _isa.TASK_SIZE_MAX[arch]
    w.kernel_range_check = arch == "x86_64"
    w.func_ip = fields.get("func_ip", 0)
    w.cookie = fields.get("cookie", 0)
    return 0


cdef inline void trace_enter(Vm* vm, Skb* skb, TraceWorld* w, const uint8_t* regs,
                             uint32_t size) noexcept nogil:
    """Point a reset ``vm`` at a tracing run: r1 is ``regs``, a read-only region; ``skb``
    carries the task ids the shared helpers read."""
    skb.pid_tgid, skb.uid_gid = w.pid_tgid, w.uid_gid
    memcpy(skb.comm, w.comm, sizeof(w.comm))
    vm.skb = skb
    vm.world = w
    vm.ctx = <uintptr_t>regs
    vm.reg[1] = vm.ctx
    vm.regions[1].start = vm.ctx
    vm.regions[1].end = vm.ctx + size
    vm.regions[1].writable = False
    vm.regions[1].name = REGION_PT_REGS
    vm.nregions = 2


cdef object _packet_machine(dict fields):
    """Take ``machine`` out of a packet run's fields: the task it gives replaces the
    ``pid_tgid``, ``uid_gid`` and ``comm`` fields, which it refuses beside it."""
    for name in ("pid_tgid", "uid_gid", "comm"):
        if name in fields:
            raise TypeError(f"run(): {name}= and machine= both give the current task; "
                            f"give the Machine's Task instead")
    return fields.pop("machine")


cdef inline void _packet_task(TraceWorld* w, MachineImage image) noexcept:
    # a packet run's view of the machine: its current task, memory and tasks (x86-64)
    memcpy(w, &image.w, sizeof(TraceWorld))
    w.task_size = TASK_SIZE_MAX_X86_64
    w.kernel_range_check = True
    w.packet = True


cdef void packet_world(Vm* vm, Skb* skb, TraceWorld* w, MachineImage image) noexcept:
    """A packet run's current task from ``image``: BPF_PROG_TEST_RUN runs the program
    in its caller, so the task helpers see that process (its machine's memory, x86-64)."""
    _packet_task(w, image)
    skb.pid_tgid, skb.uid_gid = w.pid_tgid, w.uid_gid
    memcpy(skb.comm, w.comm, sizeof(w.comm))
    vm.world = w


cdef object hook_world(object machine, TraceWorld* w):
    """A replay's packet runs' world (``vm.world``): ``machine``'s current task, as
    packet_world gives run()'s; the ids and comm stay the runs' skb fields.  Returns
    what ``w`` points into, which the caller keeps as long as it uses ``w``."""
    cdef MachineImage image = machine_image(machine)
    _packet_task(w, image)
    return image


cdef MachineImage trace_begin(Vm* vm, Skb* skb, TraceWorld* w, uint8_t* regs, object data,
                              dict fields, int profile, str arch):
    """Set up one tracing run from run()'s arguments: ``regs`` (room for the largest
    pt_regs) gets the registers; returns the image ``w`` points into, which the run
    must keep alive."""
    cdef MachineImage image
    if data is not None:
        raise TypeError("run(): a kprobe program takes no packet: give its registers as "
                        "regs= (and the task, memory and stacks as machine=)")
    for key in fields:
        if key not in TRACE_FIELDS:
            raise TypeError(f"run(): unknown argument {key!r} for a kprobe program; "
                            f"known: {', '.join(sorted(TRACE_FIELDS))}")
    image = machine_image(fields.get("machine"))
    regs_into(regs, fields.get("regs"), arch)
    trace_world(w, image, fields, arch)
    trace_skb(skb, fields, image.env, profile)
    trace_enter(vm, skb, w, regs, _REGS_SIZE[arch])
    return image


cdef uint64_t OTHER_REGS_ADDRESS = _machine.OTHER_REGS_ADDRESS
cdef uint64_t TASK_SIZE_MAX_X86_64 = _isa.TASK_SIZE_MAX["x86_64"]

cdef uint64_t PROC_PID_INIT_INO = _machine.PROC_PID_INIT_INO


cdef void worker_world(Vm* vm, Skb* skb, TraceWorld* w, MachineImage image) noexcept:
    """A bpf_wq callback's world (bpf_wq_work runs it from the system workqueue): the
    machine of ``image`` around its kworker (Machine.kworker) as the current task, a
    kernel thread with no user memory, no mappings and no user stack, in the initial
    pid namespace."""
    packet_world(vm, skb, w, image)
    w.task = image.kworker
    w.pid_tgid = image.kworker_pid_tgid
    w.ns_pid_tgid = image.kworker_ns_pid_tgid
    w.uid_gid = image.kworker_uid_gid
    w.pidns_ino = PROC_PID_INIT_INO
    memset(w.comm, 0, sizeof(w.comm))
    memcpy(w.comm, <const char*>image.kworker_comm, len(image.kworker_comm))
    w.umem, w.numem = NULL, 0
    w.ustack, w.nustack = NULL, 0
    w.vmas, w.nvmas = NULL, 0
    w.user_regs = OTHER_REGS_ADDRESS
    skb.pid_tgid, skb.uid_gid = w.pid_tgid, w.uid_gid
    memcpy(skb.comm, w.comm, sizeof(w.comm))


cdef const uint8_t* task_user_span(Vm* vm, uint64_t task, uint64_t addr, uint64_t size,
                                   uint64_t* got) noexcept nogil:
    """The bytes at ``addr`` in the user memory of the task at ``task``, ``got`` of the
    ``size`` wanted mapped there one after the other (what access_process_vm copies
    before the first byte it cannot); NULL and 0 for none: a task with nothing mapped
    there, a kernel thread, no machine."""
    cdef uint32_t k, i
    cdef const MemRange* r
    got[0] = 0
    if vm.world == NULL:
        return NULL
    for k in range(vm.world.ntask_umem):
        if vm.world.task_umem[3 * k] == task:
            r = vm.world.kmem + vm.world.task_umem[3 * k + 1]
            for i in range(<uint32_t>vm.world.task_umem[3 * k + 2]):
                if r[i].start <= addr < r[i].end:
                    got[0] = min(size, r[i].end - addr)
                    return r[i].data + (addr - r[i].start)
            return NULL
    return NULL


cdef inline const uint8_t* task_user_bytes(Vm* vm, uint64_t task, uint64_t addr,
                                           uint64_t size) noexcept nogil:
    """The bytes of [addr, addr+size) in the task's user memory if all are mapped, else
    NULL (task_user_span)."""
    cdef uint64_t got
    cdef const uint8_t* q = task_user_span(vm, task, addr, size, &got)
    return q if got == size else NULL


# --- memory: copy_from_kernel_nofault and copy_from_user_nofault over the images ------

cdef const uint8_t* _image(const MemRange* r, uint32_t n, uint64_t addr,
                           uint64_t size) noexcept nogil:
    """The bytes of [addr, addr+size) if one range of the image holds them, else NULL
    (the world's ranges are merged, so a read across two mapped ranges finds one)."""
    cdef uint32_t k
    for k in range(n):
        if addr >= r[k].start and addr < r[k].end and r[k].end - addr >= size:
            return r[k].data + (addr - r[k].start)
    return NULL


cdef const uint8_t* _own_region(Vm* vm, uint64_t addr, uint64_t size) noexcept nogil:
    """A region of the run (stack, pt_regs, map values) holding [addr, addr+size)."""
    cdef int k
    cdef Region* g
    for k in range(vm.nregions):
        g = &vm.regions[k]
        if addr >= g.start and addr <= g.end and g.end - addr >= size:
            return <const uint8_t*><uintptr_t>addr
    return NULL


cdef inline bint _is_user(Vm* vm, uint64_t addr) noexcept nogil:
    return vm.world != NULL and addr < vm.world.task_size


cdef int64_t _kernel_allowed(Vm* vm, uint64_t addr) noexcept nogil:
    """copy_from_kernel_nofault_allowed: x86-64 refuses user and non-canonical addresses
    with -ERANGE; elsewhere every address may be tried."""
    if vm.world == NULL or not vm.world.kernel_range_check:
        return 0
    if addr < vm.world.task_size + 4096 or (addr >> 47) != 0x1FFFF:
        return -ERANGE
    return 0


cdef const uint8_t* _kernel_bytes(Vm* vm, uint64_t addr, uint64_t size) noexcept nogil:
    cdef const uint8_t* p = _own_region(vm, addr, size)
    if p == NULL and vm.world != NULL:
        p = _image(vm.world.kmem, vm.world.nkmem, addr, size)
    if p == NULL and percpu_area(addr, size):
        p = PERCPU_ZERO         # per-CPU memory the machine gives nothing in (percpu.pxi)
    return p


cdef const uint8_t* _user_bytes(Vm* vm, uint64_t addr, uint64_t size) noexcept nogil:
    if vm.world == NULL or not _is_user(vm, addr) or vm.world.task_size - addr < size:
        return NULL
    return _image(vm.world.umem, vm.world.numem, addr, size)


cdef uint8_t* _dst(Vm* vm, uint64_t dst, uint64_t size) noexcept nogil:
    """The helper's destination (ARG_PTR_TO_UNINIT_MEM); NULL leaves the fault."""
    return _mem(vm, dst, <uint32_t>size, ACCESS_WRITE)


cdef uint64_t _read_kernel(Vm* vm, uint8_t* p, uint32_t size, uint64_t src) noexcept nogil:
    # bpf_probe_read_kernel_common: on any failure the destination is zeroed
    cdef const uint8_t* q
    cdef int64_t ret
    if _own_region(vm, src, size) == NULL:
        ret = _kernel_allowed(vm, src)
        if ret < 0:
            memset(p, 0, size)
            return <uint64_t>ret
    if size == 0:
        return 0
    q = _kernel_bytes(vm, src, size)
    if q == NULL:
        memset(p, 0, size)
        return err(EFAULT)
    memmove(p, q, size)
    return 0


cdef uint64_t _read_user(Vm* vm, uint8_t* p, uint32_t size, uint64_t src) noexcept nogil:
    # bpf_probe_read_user_common over copy_from_user_nofault: access_ok, then the copy
    cdef const uint8_t* q
    if size == 0 and _is_user(vm, src):
        return 0
    q = _user_bytes(vm, src, size)
    if q == NULL:
        memset(p, 0, size)
        return err(EFAULT)
    memmove(p, q, size)
    return 0


cdef uint64_t bpf_probe_read_kernel(Vm* vm, uint64_t dst, uint64_t size, uint64_t src,
                                    uint64_t d, uint64_t e) noexcept nogil:
    cdef uint8_t* p = _dst(vm, dst, size) if size else <uint8_t*>vm.stack
    if p == NULL:
        return 0
    return _read_kernel(vm, p, <uint32_t>size, src)


cdef uint64_t bpf_probe_read_user(Vm* vm, uint64_t dst, uint64_t size, uint64_t src,
                                  uint64_t d, uint64_t e) noexcept nogil:
    cdef uint8_t* p = _dst(vm, dst, size) if size else <uint8_t*>vm.stack
    if p == NULL:
        return 0
    return _read_user(vm, p, <uint32_t>size, src)


cdef uint64_t bpf_probe_read(Vm* vm, uint64_t dst, uint64_t size, uint64_t src,
                             uint64_t d, uint64_t e) noexcept nogil:
    # bpf_probe_read_compat: a user address (below TASK_SIZE) is read as user memory,
    # anything else as kernel memory (x86-64's and arm64's split address spaces)
    cdef uint8_t* p = _dst(vm, dst, size) if size else <uint8_t*>vm.stack
    if p == NULL:
        return 0
    if _own_region(vm, src, size) == NULL and _is_user(vm, src):
        return _read_user(vm, p, <uint32_t>size, src)
    return _read_kernel(vm, p, <uint32_t>size, src)


cdef int64_t _kernel_str(Vm* vm, uint8_t* p, uint32_t count, uint64_t src) noexcept nogil:
    """strncpy_from_kernel_nofault: byte by byte up to ``count`` (the last byte read is
    then replaced by NUL); the length with the NUL, or -errno."""
    cdef const uint8_t* q
    cdef uint32_t k = 0
    cdef int64_t ret
    if _own_region(vm, src, 1) == NULL:
        ret = _kernel_allowed(vm, src)
        if ret < 0:
            return ret
    while True:
        q = _kernel_bytes(vm, src + k, 1)
        if q == NULL:
            p[0] = 0
            return -EFAULT
        p[k] = q[0]
        k += 1
        if not p[k - 1] or k >= count:
            break
    p[k - 1] = 0
    return k


cdef int64_t _user_str(Vm* vm, uint8_t* p, uint32_t count, uint64_t src) noexcept nogil:
    """strncpy_from_user_nofault: strncpy_from_user gives the string's length (count
    when no NUL came first), then a whole buffer is cut to end in NUL and a string is
    counted with its NUL (the empty one too: 1, as the kernel answers)."""
    cdef const uint8_t* q
    cdef uint32_t k = 0
    if not _is_user(vm, src):
        return -EFAULT
    while k < count:
        q = _user_bytes(vm, src + k, 1)
        if q == NULL:
            return -EFAULT
        p[k] = q[0]
        if not q[0]:
            break
        k += 1
    if k >= count:
        p[count - 1] = 0
        return count
    return k + 1


cdef uint64_t _read_str(Vm* vm, uint64_t dst, uint64_t size, uint64_t src, int kind) noexcept nogil:
    # kind: 0 kernel, 1 user, 2 compat (by address); a failure zeroes the destination
    cdef uint8_t* p
    cdef int64_t ret
    if size == 0:
        return 0
    p = _dst(vm, dst, size)
    if p == NULL:
        return 0
    if kind == 2:
        kind = 1 if _own_region(vm, src, 1) == NULL and _is_user(vm, src) else 0
    ret = _user_str(vm, p, <uint32_t>size, src) if kind == 1 else \
        _kernel_str(vm, p, <uint32_t>size, src)
    if ret < 0:
        memset(p, 0, size)
    return <uint64_t>ret


cdef uint64_t bpf_probe_read_kernel_str(Vm* vm, uint64_t dst, uint64_t size, uint64_t src,
                                        uint64_t d, uint64_t e) noexcept nogil:
    return _read_str(vm, dst, size, src, 0)


cdef uint64_t bpf_probe_read_user_str(Vm* vm, uint64_t dst, uint64_t size, uint64_t src,
                                      uint64_t d, uint64_t e) noexcept nogil:
    return _read_str(vm, dst, size, src, 1)


cdef uint64_t bpf_probe_read_str(Vm* vm, uint64_t dst, uint64_t size, uint64_t src,
                                 uint64_t d, uint64_t e) noexcept nogil:
    return _read_str(vm, dst, size, src, 2)


# --- the task, the probe, stacks, counters ------------------------------------------

cdef uint64_t bpf_get_current_task(Vm* vm, uint64_t a, uint64_t b, uint64_t c, uint64_t d,
                                   uint64_t e) noexcept nogil:
    # without a machine (packet runs) there is no task_struct to point at
    return vm.world.task if vm.world != NULL else 0


cdef uint64_t bpf_get_func_ip(Vm* vm, uint64_t r1, uint64_t b, uint64_t c, uint64_t d,
                              uint64_t e) noexcept nogil:
    if not is_ctx(vm, r1):
        return 0
    return vm.world.func_ip if vm.world != NULL else 0


cdef uint64_t bpf_get_attach_cookie(Vm* vm, uint64_t r1, uint64_t b, uint64_t c, uint64_t d,
                                    uint64_t e) noexcept nogil:
    if not is_ctx(vm, r1):
        return 0
    return vm.world.cookie if vm.world != NULL else 0


cdef uint32_t trace_stack(Vm* vm, bint user, const uint64_t** ips) noexcept nogil:
    """get_perf_callchain over the modelled stacks: the kernel's or the user's, at most
    MAX_PERF_STACK deep; without a machine, none."""
    cdef uint32_t n
    if vm.world == NULL:
        ips[0] = NULL
        return 0
    ips[0] = vm.world.ustack if user else vm.world.kstack
    n = vm.world.nustack if user else vm.world.nkstack
    return n if n < MAX_PERF_STACK else MAX_PERF_STACK


cdef uint64_t _stack_into(Vm* vm, uint8_t* p, uint32_t n, uint64_t flags,
                         bint own) noexcept nogil:
    """__bpf_get_stack: the stack's ips after ``skip`` into ``p`` (``n`` bytes), the
    rest zeroed; the bytes copied, or -errno with ``p`` zeroed.  ``own``: the stacks are
    the current task's (another task's are not modelled: empty)."""
    cdef uint32_t skip = <uint32_t>(flags & BPF_F_SKIP_FIELD_MASK)
    cdef uint32_t num, depth = 0, nr, copy
    cdef const uint64_t* ips = NULL
    cdef int64_t ret = -EINVAL
    if flags & BPF_F_USER_BUILD_ID:
        if flags & BPF_F_USER_STACK:
            return helper_fault(vm, b"BPF_F_USER_BUILD_ID: build ids are not modelled")
    elif not flags & ~(<uint64_t>(BPF_F_SKIP_FIELD_MASK | BPF_F_USER_STACK)) and n % 8 == 0:
        num = n // 8
        if own:
            depth = trace_stack(vm, flags & BPF_F_USER_STACK, &ips)
        if depth > num + skip:
            depth = num + skip
        if depth >= skip:
            nr = depth - skip
            copy = (nr if nr < num else num) * 8
            if copy:
                memcpy(p, ips + skip, copy)
            memset(p + copy, 0, n - copy)
            return copy
        ret = -EFAULT
    memset(p, 0, n)
    return <uint64_t>ret


cdef uint64_t bpf_get_stack(Vm* vm, uint64_t r1, uint64_t buf, uint64_t size, uint64_t flags,
                            uint64_t e) noexcept nogil:
    """bpf_get_stack for the probe's own task."""
    cdef uint8_t* p = _dst(vm, buf, size) if size else <uint8_t*>vm.stack
    if p == NULL or not is_ctx(vm, r1):
        return 0
    return _stack_into(vm, p, <uint32_t>size, flags, True)


cdef uint64_t bpf_get_task_stack(Vm* vm, uint64_t task, uint64_t buf, uint64_t size,
                                 uint64_t flags, uint64_t e) noexcept nogil:
    """bpf_get_task_stack: the current task's stacks, as bpf_get_stack reads them (its
    user stack comes from the task's user registers, which in a probe on user code are
    the probe's); any other task's are empty."""
    cdef uint8_t* p = _dst(vm, buf, size) if size else <uint8_t*>vm.stack
    if p == NULL:
        return 0
    return _stack_into(vm, p, <uint32_t>size, flags,
                       vm.world != NULL and task == vm.world.task)


cdef uint64_t bpf_perf_event_read_value(Vm* vm, uint64_t r1, uint64_t flags, uint64_t buf,
                                        uint64_t size, uint64_t e) noexcept nogil:
    """struct bpf_perf_event_value {counter, enabled, running} of the slot, from what
    Map.set_counter set; on an error the buffer is zeroed."""
    cdef MapStore* m = _typed_map_arg(vm, r1, BPF_MAP_TYPE_PERF_EVENT_ARRAY,
                                      b"r1 must be a perf event array")
    cdef uint8_t* p
    cdef int64_t slot = -EINVAL
    if m == NULL:
        return 0
    p = _dst(vm, buf, size)
    if p == NULL:
        return 0
    if size == 24 and not flags >> 32:
        slot = _perf_slot(vm, m, flags)
        if slot >= 0 and <uint32_t>m.perf_cpu[slot] != _cpu(vm):
            slot = -EINVAL
        if slot >= 0:
            memcpy(p, m.counters + 3 * slot, 24)
            return 0
    memset(p, 0, size)
    return <uint64_t>slot


# --- signals, BTF pointers --------------------------------------------------------------

cdef uint64_t _send_signal(Vm* vm, uint64_t sig, bint thread) noexcept nogil:
    """bpf_send_signal_common for the current task: the kernel refuses to signal the
    init process (-EPERM, is_global_init) before it checks the signal (valid_signal:
    at most _NSIG, -EINVAL); signal 0 sends nothing."""
    if vm.world == NULL or vm.world.packet:
        return err(EPERM)
    if vm.skb != NULL and vm.skb.pid_tgid >> 32 == 1:
        return err(EPERM)
    if <uint32_t>sig > NSIG:
        return err(EINVAL)
    if <uint32_t>sig:
        if thread:
            vm.world.thread_signals |= <uint64_t>1 << (<uint32_t>sig - 1)
        else:
            vm.world.signals |= <uint64_t>1 << (<uint32_t>sig - 1)
    return 0


cdef uint64_t bpf_send_signal(Vm* vm, uint64_t sig, uint64_t b, uint64_t c, uint64_t d,
                              uint64_t e) noexcept nogil:
    return _send_signal(vm, sig, False)


cdef uint64_t bpf_send_signal_thread(Vm* vm, uint64_t sig, uint64_t b, uint64_t c,
                                     uint64_t d, uint64_t e) noexcept nogil:
    return _send_signal(vm, sig, True)


cdef uint64_t bpf_find_vma(Vm* vm, uint64_t task, uint64_t addr, uint64_t callback,
                           uint64_t ctx, uint64_t flags) noexcept nogil:
    """bpf_find_vma: the callback (task, vma, ctx) once on the current task's mapping
    holding ``addr`` (find_vma: the first ending above it, if it starts at or below),
    then 0; -ENOENT when none holds it or the task is another (its mappings are not
    modelled); -EINVAL for any flag."""
    cdef uint32_t k
    cdef const uint64_t* v
    cdef uint64_t ret = 0
    if flags:
        return err(EINVAL)
    if vm.world == NULL or task != vm.world.task:
        return err(ENOENT)
    for k in range(vm.world.nvmas):
        v = vm.world.vmas + 3 * k
        if v[1] > addr:
            if v[0] > addr:
                break
            if not vm_callback(vm, callback, task, v[2], ctx, 0, &ret):
                return 0
            return 0
    return err(ENOENT)


cdef uint64_t bpf_get_branch_snapshot(Vm* vm, uint64_t buf, uint64_t size, uint64_t flags,
                                      uint64_t d, uint64_t e) noexcept nogil:
    """bpf_get_branch_snapshot: the machine's last-branch records that fit in ``buf``
    (perf_snapshot_branch_stack copies them, leaving the rest as it was), then -EINVAL
    for any flag, -ENOENT when none was copied (no records: a CPU without LBR, a packet
    run, or an architecture other than x86), else the bytes copied."""
    cdef uint32_t n = <uint32_t>size // 24
    cdef uint8_t* p = _dst(vm, buf, size) if size else <uint8_t*>vm.stack
    if p == NULL:
        return 0
    if vm.world == NULL or not vm.world.kernel_range_check:
        n = 0
    elif n > vm.world.nbranches:
        n = vm.world.nbranches
    if n:
        memcpy(p, vm.world.branches, n * 24)
    if flags:
        return err(EINVAL)
    if n == 0:
        return err(ENOENT)
    return n * 24


cdef bint trace_probe_load(Vm* vm, uint64_t addr, uint32_t size, uint64_t* out) noexcept nogil:
    """A load through a BTF pointer, which the kernel makes a BPF_PROBE_MEM load: the
    machine's kernel memory, 0 when nothing is mapped there (the fault handler zeroes
    the register) or the address is a user one (x86-64's JIT compares it with
    TASK_SIZE_MAX + PAGE_SIZE first; arm64 faults on it)."""
    cdef const uint8_t* q = NULL
    vm.status = STATUS_RUNNING
    if kern_ctx_load(vm, addr, size, out):       # bpf_cast_to_kern_ctx's (skb/kernctx.pxi)
        return True
    if reqsk_load(vm, addr, size, out):          # a request socket's (skb/helpers_sock.pxi)
        return True
    if cgroup_load(vm, addr, size, out):         # the cgroup kfuncs' (tasks.pxi)
        return True
    if map_struct_load(vm, addr, size, out):     # a map pointer's (map_struct.pxi)
        return True
    if kmem_cache_load(vm, addr, size, out):     # bpf_get_kmem_cache's (kmem_cache.pxi)
        return True
    # a packet run has no machine: no task (get_current_task_btf is NULL), nothing mapped
    if vm.world != NULL and addr >= vm.world.task_size + 4096:
        q = _image(vm.world.kmem, vm.world.nkmem, addr, size)
        if q == NULL and task_css_load(vm, addr, size, out):   # a task's cgroups (tasks.pxi)
            return True
    out[0] = _load(q, size) if q != NULL else 0
    return True


# --- the task's pid namespace, registers and cgroup --------------------------------------

cdef uint64_t bpf_get_ns_current_pid_tgid(Vm* vm, uint64_t dev, uint64_t ino, uint64_t buf,
                                          uint64_t size, uint64_t e) noexcept nogil:
    """struct bpf_pidns_info {pid, tgid} of the current task in its pid namespace, when
    (dev, ino) names that namespace; else -EINVAL (a size other than 8, a dev wider than
    dev_t, no task: a packet run without a machine) with the buffer zeroed."""
    cdef uint8_t* p = _dst(vm, buf, size)
    cdef uint32_t ids[2]
    if p == NULL:
        return 0
    if (size != 8 or dev >> 32 or vm.world == NULL or dev != vm.world.pidns_dev
            or ino != vm.world.pidns_ino):
        memset(p, 0, size)
        return err(EINVAL)
    ids[0] = <uint32_t>vm.world.ns_pid_tgid
    ids[1] = <uint32_t>(vm.world.ns_pid_tgid >> 32)
    memcpy(p, ids, 8)
    return 0


cdef uint64_t bpf_task_pt_regs(Vm* vm, uint64_t task, uint64_t b, uint64_t c, uint64_t d,
                               uint64_t e) noexcept nogil:
    """task_pt_regs: the current task's user registers (Task.user_regs); any other
    task's stack is not modelled, so its pointer leads nowhere (loads read 0)."""
    if vm.world != NULL and task == vm.world.task:
        return vm.world.user_regs
    return OTHER_REGS_ADDRESS


cdef uint64_t bpf_current_task_under_cgroup(Vm* vm, uint64_t r1, uint64_t idx, uint64_t c,
                                            uint64_t d, uint64_t e) noexcept nogil:
    """1 when the current task's cgroup (the Environment's task_cgroup) is the one at
    ``idx`` of the CGROUP_ARRAY map or below it, else 0; -E2BIG past the map's end,
    -EAGAIN for an empty slot."""
    cdef MapStore* m = _typed_map_arg(vm, r1, BPF_MAP_TYPE_CGROUP_ARRAY,
                                      b"r1 must be a cgroup array")
    cdef const NetEnv* net = vm.skb.net
    cdef uint64_t cgroup
    cdef int level
    if m == NULL:
        return 0
    if <uint32_t>idx >= m.max_entries:
        return err(E2BIG)
    memcpy(&cgroup, map_value(m, <int32_t><uint32_t>idx, 0), 8)
    if cgroup == 0:
        return err(EAGAIN)
    # task_under_cgroup_hierarchy: cgroup_is_descendant of the task's default cgroup
    for level in range(net.task_cgroup_level + 1):
        if net.task_cgroups[level] == cgroup:
            return 1
    return 0


# --- task and cgroup local storage (kernel/bpf/bpf_task_storage.c, bpf_cgrp_storage.c):
# a TASK_STORAGE or CGRP_STORAGE map holds one value per owner, found by the address of
# its task_struct or cgroup (maps.pxi).  Every task and cgroup a program can point at is
# alive (refcounted), so F_CREATE always may create.

cdef MapStore* _owner_map(Vm* vm, uint64_t r1, int kind) noexcept nogil:
    # check_map_func_compatibility pairs each pair of helpers with its map type
    cdef MapStore* m = _map_arg(vm, r1)
    if m != NULL and m.type != kind:
        helper_fault(vm, b"bpf_task/cgrp_storage_get/delete take their own storage map")
        return NULL
    return m


cdef uint64_t _owner_storage_get(Vm* vm, uint64_t r1, uint64_t owner, uint64_t value,
                                 uint64_t flags, int kind) noexcept nogil:
    """bpf_task_storage_get, bpf_cgrp_storage_get: the owner's value; with
    BPF_LOCAL_STORAGE_GET_F_CREATE a new one when it has none (``value``'s bytes, or
    zeros for NULL).  NULL for a NULL owner, other flags, or a full map."""
    cdef MapStore* m = _owner_map(vm, r1, kind)
    cdef const uint8_t* init = NULL
    cdef int32_t elem
    cdef int rc = 0
    if m == NULL or flags & ~(<uint64_t>BPF_LOCAL_STORAGE_GET_F_CREATE) or owner == 0:
        return 0
    elem = map_find(m, <const uint8_t*>&owner)
    if elem != NO_ELEM:
        return <uintptr_t>map_value(m, elem, 0)
    if not flags & BPF_LOCAL_STORAGE_GET_F_CREATE:
        return 0
    if value:
        init = _mem(vm, value, m.value_size, ACCESS_READ)
        if init == NULL:
            return 0
    elem = _hash_update(m, <const uint8_t*>&owner, BPF_NOEXIST, &rc)
    if elem == NO_ELEM:
        return 0
    if init != NULL:
        memcpy(map_value(m, elem, 0), init, m.value_size)
    return <uintptr_t>map_value(m, elem, 0)


cdef uint64_t _owner_storage_delete(Vm* vm, uint64_t r1, uint64_t owner,
                                    int kind) noexcept nogil:
    """bpf_task_storage_delete, bpf_cgrp_storage_delete: 0, -ENOENT when the owner has
    no value, -EINVAL for a NULL owner."""
    cdef MapStore* m = _owner_map(vm, r1, kind)
    if m == NULL:
        return 0
    if owner == 0:
        return err(EINVAL)
    return <uint64_t><int64_t>map_delete(m, <const uint8_t*>&owner)


cdef uint64_t _task_storage_get(Vm* vm, uint64_t r1, uint64_t r2, uint64_t r3, uint64_t r4,
                                uint64_t r5) noexcept nogil:
    return _owner_storage_get(vm, r1, r2, r3, r4, BPF_MAP_TYPE_TASK_STORAGE)


cdef uint64_t _task_storage_delete(Vm* vm, uint64_t r1, uint64_t r2, uint64_t r3,
                                   uint64_t r4, uint64_t r5) noexcept nogil:
    return _owner_storage_delete(vm, r1, r2, BPF_MAP_TYPE_TASK_STORAGE)


cdef uint64_t _cgrp_storage_get(Vm* vm, uint64_t r1, uint64_t r2, uint64_t r3, uint64_t r4,
                                uint64_t r5) noexcept nogil:
    return _owner_storage_get(vm, r1, r2, r3, r4, BPF_MAP_TYPE_CGRP_STORAGE)


cdef uint64_t _cgrp_storage_delete(Vm* vm, uint64_t r1, uint64_t r2, uint64_t r3,
                                   uint64_t r4, uint64_t r5) noexcept nogil:
    return _owner_storage_delete(vm, r1, r2, BPF_MAP_TYPE_CGRP_STORAGE)


cdef uint64_t bpf_task_storage_get(Vm* vm, uint64_t r1, uint64_t r2, uint64_t r3,
                                   uint64_t r4, uint64_t r5) noexcept nogil:
    return _locked(_task_storage_get, r1, False, vm, r1, r2, r3, r4, r5)


cdef uint64_t bpf_task_storage_delete(Vm* vm, uint64_t r1, uint64_t r2, uint64_t r3,
                                      uint64_t r4, uint64_t r5) noexcept nogil:
    return _locked(_task_storage_delete, r1, False, vm, r1, r2, r3, r4, r5)


cdef uint64_t bpf_cgrp_storage_get(Vm* vm, uint64_t r1, uint64_t r2, uint64_t r3,
                                   uint64_t r4, uint64_t r5) noexcept nogil:
    return _locked(_cgrp_storage_get, r1, False, vm, r1, r2, r3, r4, r5)


cdef uint64_t bpf_cgrp_storage_delete(Vm* vm, uint64_t r1, uint64_t r2, uint64_t r3,
                                      uint64_t r4, uint64_t r5) noexcept nogil:
    return _locked(_cgrp_storage_delete, r1, False, vm, r1, r2, r3, r4, r5)


cdef void register_tracing_helpers(helper_fn* table) noexcept:
    table[37] = bpf_current_task_under_cgroup
    table[120] = bpf_get_ns_current_pid_tgid
    table[156] = bpf_task_storage_get
    table[157] = bpf_task_storage_delete
    table[175] = bpf_task_pt_regs
    table[210] = bpf_cgrp_storage_get
    table[211] = bpf_cgrp_storage_delete
    table[4] = bpf_probe_read
    table[35] = bpf_get_current_task
    table[45] = bpf_probe_read_str
    table[55] = bpf_perf_event_read_value
    table[67] = bpf_get_stack
    table[109] = bpf_send_signal
    table[112] = bpf_probe_read_user
    table[113] = bpf_probe_read_kernel
    table[114] = bpf_probe_read_user_str
    table[115] = bpf_probe_read_kernel_str
    table[117] = bpf_send_signal_thread
    table[141] = bpf_get_task_stack
    table[149] = bpf_snprintf_btf
    table[158] = bpf_get_current_task
    table[173] = bpf_get_func_ip
    table[174] = bpf_get_attach_cookie
    table[176] = bpf_get_branch_snapshot
    table[180] = bpf_find_vma
