# Batches of tracing runs in one C loop: Program.run_many for KPROBE programs (one
# machine, a pt_regs per run) and pyebpf trace-replay (a machine, clock, CPU and perf
# counters per event).  Included into pyebpf/_core.pyx after Program; the machine's C
# form and the per-run set-up are tracing.pxi's.

ctypedef struct TraceRun:
    # one run of a batch: what a call of run() would have been given
    const TraceWorld* machine      # its machine's world (task, memory images, stacks)
    const uint8_t* regs            # its struct pt_regs
    uint64_t ktime                 # its clock at the start, unless own_clock
    uint64_t func_ip
    uint64_t cookie
    uint32_t cpu
    bint own_clock                 # no ktime given: the process's clock, as run() reads it
    uint32_t first_counter         # its perf counters: [first, first + ncounters) of the
    uint32_t ncounters             # batch's table, set before it runs

ctypedef struct TraceCounter:
    MapStore* map                  # a perf event array
    uint32_t slot
    uint64_t value

ctypedef struct TraceOut:
    # ring buffer records taken after each run: (u32 length, bytes) after one another
    uint8_t* buf
    size_t len
    size_t cap

ctypedef struct TraceBatch:
    Vm* vm
    ProgCore* prog
    Skb* skb                       # the skb of every run, reset from tmpl before each
    const Skb* tmpl
    TraceWorld world               # the running one's machine, completed
    TraceRun* runs
    const TraceCounter* counters
    uint32_t regs_size
    uint64_t task_size
    bint kernel_range_check
    uint64_t budget
    bint grow                      # the program's default budget: Vm.grow
    uint32_t tail_call_limit
    bint v46
    MapStore** rings               # ring buffers drained after each run (trace-replay)
    TraceOut* ring_out
    int nrings
    uint32_t* retval
    uint64_t* insn_count
    int status                     # STATUS_EXIT, a run's fault, or -1: out of memory


cdef bint _ring_take(MapStore* m, TraceOut* out) noexcept nogil:
    """Move the ring buffer's submitted records to ``out`` (as Map.drain takes them);
    False when out of memory."""
    cdef uint64_t mask = m.max_entries - 1
    cdef uint32_t hdr, size
    cdef size_t at, first
    cdef uint8_t* grown
    while m.cons_pos < m.prod_pos:
        memcpy(&hdr, m.values + (m.cons_pos & mask), 4)
        if hdr & RB_BUSY:
            break
        if not hdr & RB_DISCARD:
            size = hdr & ~(RB_BUSY | RB_DISCARD)
            if out.len + 4 + size > out.cap:
                grown = <uint8_t*>realloc(out.buf, 2 * (out.len + 4 + size))
                if grown == NULL:
                    return False
                out.buf, out.cap = grown, 2 * (out.len + 4 + size)
            memcpy(out.buf + out.len, &size, 4)
            at = (m.cons_pos + RB_HDR) & mask
            first = min(size, m.max_entries - at)
            memcpy(out.buf + out.len + 4, m.values + at, first)
            memcpy(out.buf + out.len + 4 + first, m.values, size - first)
            out.len += 4 + size
        m.cons_pos += _rb_total(hdr)
    return True


cdef Py_ssize_t _trace_loop(TraceBatch* c, Py_ssize_t k, Py_ssize_t end) noexcept nogil:
    """Runs ``k`` to ``end``; returns ``end``, or the index of a run that faulted
    (``c.status``; its Vm left for vm_fault, not yet ended)."""
    cdef Vm* vm = c.vm
    cdef Skb* skb = c.skb
    cdef TraceRun* r
    cdef const TraceCounter* t
    cdef uint8_t* head
    cdef char* printk
    cdef size_t printk_cap
    cdef uint32_t j
    cdef int ring
    global _ktime_clock
    while k < end:
        r = &c.runs[k]
        for j in range(r.first_counter, r.first_counter + r.ncounters):
            t = &c.counters[j]
            t.map.counters[3 * t.slot] = t.value
            t.map.counters[3 * t.slot + 1] = 0
            t.map.counters[3 * t.slot + 2] = 0
        # every run starts from the same skb, as run() makes a new one (the buffers stay)
        head, printk, printk_cap = skb.head, skb.printk, skb.printk_cap
        memcpy(skb, c.tmpl, sizeof(Skb))
        skb.head, skb.printk, skb.printk_cap, skb.printk_len = head, printk, printk_cap, 0
        skb.cpu = r.cpu
        skb.ktime = _ktime_clock if r.own_clock else r.ktime
        memcpy(&c.world, r.machine, sizeof(TraceWorld))
        c.world.task_size, c.world.kernel_range_check = c.task_size, c.kernel_range_check
        c.world.func_ip, c.world.cookie = r.func_ip, r.cookie
        vm_begin(vm, c.budget, c.tail_call_limit, c.v46)
        vm.grow = c.grow
        trace_enter(vm, skb, &c.world, r.regs, c.regs_size)
        c.status = vm_run(vm, c.prog, False)
        if r.own_clock:
            _ktime_clock = (skb.ktime if skb.ktime > _ktime_clock else _ktime_clock) + _KTIME_RUN_GAP
        c.insn_count[k] = c.budget + vm.granted - <uint64_t>vm.budget_left
        if c.status != STATUS_EXIT:
            return k
        c.retval[k] = <uint32_t>vm.reg[0]
        vm_end(vm)
        for ring in range(c.nrings):
            if not _ring_take(c.rings[ring], &c.ring_out[ring]):
                c.status = -1
                return k
        k += 1
    return end


cdef list _ring_records(TraceOut* out):
    cdef size_t at = 0
    cdef uint32_t size
    records = []
    while at < out.len:
        memcpy(&size, out.buf + at, 4)
        records.append(PyBytes_FromStringAndSize(<char*>out.buf + at + 4, size))
        at += 4 + size
    return records


cdef object _trace_batch(Program prog, TraceBatch* c, Batch batch, Py_ssize_t n, bint stop):
    """Run the batch ``c`` describes into ``batch``; a fault is recorded in
    ``batch.faults`` and the batch goes on, or with ``stop``, raised after the runs before
    it."""
    cdef Vm vm
    cdef Py_ssize_t k = 0, end
    c.vm, c.prog = &vm, &prog._pc
    c.tail_call_limit, c.v46 = prog.tail_call_limit, prog._profile_id == PROFILE_V46
    c.regs_size = _REGS_SIZE[prog.arch]
    c.task_size = _isa.TASK_SIZE_MAX[prog.arch]
    c.kernel_range_check = prog.arch == "x86_64"
    c.retval = <uint32_t*>(<uintptr_t>batch.retval.buffer_info()[0])
    c.insn_count = <uint64_t*>(<uintptr_t>batch.insn_count.buffer_info()[0])
    while k < n:
        end = min(n, k + BATCH_CHUNK)
        if prog._pc.py_helpers or prog._hold_gil:
            k = _trace_loop(c, k, end)
        else:
            with nogil:
                k = _trace_loop(c, k, end)
        if c.status == -1:
            raise MemoryError()
        if c.status != STATUS_EXIT:
            try:
                err = vm_fault(&vm, c.budget)
            finally:
                vm_end(&vm)
            if stop:
                raise err
            batch.faults.append((k, err))
            k += 1
        PyErr_CheckSignals()
    return batch


def _trace_run_many(Program prog, frames, offsets, budget, bint output, dict fields):
    """Program.run_many of a KPROBE program: ``frames`` is a sequence of regs (what
    run(regs=) takes) or one buffer of packed struct pt_regs; ``fields`` are run()'s."""
    cdef Py_ssize_t n, k, size = _REGS_SIZE[prog.arch]
    cdef const uint8_t[::1] packed = None
    cdef list each = None
    if offsets is not None or output:
        raise TypeError("run_many(): a kprobe program's runs are given as their registers "
                        "(a sequence, or one buffer of struct pt_regs): no offsets, no output")
    for key in fields:
        if key == "regs" or key not in TRACE_FIELDS:
            raise TypeError(f"run_many(): unknown argument {key!r} for a kprobe program; "
                            f"known: {', '.join(sorted(set(TRACE_FIELDS) - {'regs'}))}")
    if isinstance(frames, (bytes, bytearray, memoryview, _array.array)):
        packed = memoryview(frames).cast("B")
        if packed.shape[0] % size:
            raise _machine.MachineSpecError(f"run_many(): {packed.shape[0]} bytes are no whole number "
                                   f"of {size}-byte struct pt_regs ({prog.arch})")
        n = packed.shape[0] // size
    else:
        each = list(frames)
        n = len(each)
    if _run_hook is not None:
        return prog._run_each(each if each is not None else [
            bytes(packed[k * size:(k + 1) * size]) for k in range(n)], None, budget, False,
            fields)
    if _pin_hook is not None:
        txn = _pin_hook(prog)
        if txn is not None:
            with txn:
                return _trace_many(prog, each, packed, n, budget, fields)
    return _trace_many(prog, each, packed, n, budget, fields)


cdef object _trace_many(Program prog, list each, const uint8_t[::1] packed, Py_ssize_t n,
                        budget, dict fields):
    cdef TraceBatch c
    cdef Skb tmpl
    cdef Skb work
    cdef Py_ssize_t k, size = _REGS_SIZE[prog.arch]
    cdef uint8_t* regs = NULL
    cdef MachineImage image = machine_image(fields.get("machine"))
    cdef Batch batch = _new_batch(prog, range(n), False)
    batch._frames = None
    if n == 0:
        return batch
    memset(&c, 0, sizeof(TraceBatch))
    memset(&tmpl, 0, sizeof(Skb))       # both freed below even if a field is refused
    memset(&work, 0, sizeof(Skb))
    try:
        c.runs = <TraceRun*>calloc(n, sizeof(TraceRun))
        if c.runs == NULL:
            raise MemoryError()
        if each is not None:
            regs = <uint8_t*>malloc(n * size)
            if regs == NULL:
                raise MemoryError()
            for k in range(n):
                regs_into(regs + k * size, each[k], prog.arch)
        trace_skb(&tmpl, fields, image.env, prog._profile_id)
        trace_skb(&work, fields, image.env, prog._profile_id)
        trace_world(&c.world, image, fields, prog.arch)
        for k in range(n):
            c.runs[k].machine = &image.w
            c.runs[k].regs = (regs if regs != NULL else &packed[0]) + k * size
            c.runs[k].ktime, c.runs[k].own_clock = tmpl.ktime, "ktime" not in fields
            c.runs[k].cpu = tmpl.cpu
            c.runs[k].func_ip, c.runs[k].cookie = c.world.func_ip, c.world.cookie
        c.skb, c.tmpl = &work, &tmpl
        c.budget = prog.budget if budget is None else budget
        c.grow = prog._grows(budget)
        return _trace_batch(prog, &c, batch, n, False)
    finally:
        free(c.runs)
        free(regs)
        skb_free(&work)
        skb_free(&tmpl)


def trace_replay_batch(Program prog, list runs, list rings):
    """Run ``runs``, each ``(run() keyword arguments, [(perf event array Map, slot,
    counter)])`` with its counters set first, as one batch; ring buffers ``rings`` (Maps)
    are drained after each run.  Returns (the runs' retvals, an ``array('I')``; each
    ring's records, a list of bytes per ring).  A run that faults raises its error after
    the runs before it."""
    if _run_hook is not None:
        return _replay_each(prog, runs, rings)
    if _pin_hook is not None:
        txn = _pin_hook(prog)
        if txn is not None:
            with txn:
                return _trace_replay(prog, runs, rings)
    return _trace_replay(prog, runs, rings)


def _replay_each(prog, runs, rings):
    """trace_replay_batch as a loop of run(): while a hook (the pytest plugin) watches runs."""
    retvals = _array.array("I")
    out = [[] for _ in rings]
    for run, counters in runs:
        for m, slot, value in counters:
            m.set_counter(slot, value)
        retvals.append(prog.run(**run).retval)
        for j, ring in enumerate(rings):
            out[j] += ring.drain()
    return retvals, out


cdef object _trace_replay(Program prog, list runs, list rings):
    cdef TraceBatch c
    cdef Skb tmpl
    cdef Skb work
    cdef Py_ssize_t n = len(runs), k, j, size = _REGS_SIZE[prog.arch]
    cdef Py_ssize_t ncounters = sum(len(counters) for _, counters in runs)
    cdef uint32_t at = 0
    cdef TraceCounter* counters = NULL
    cdef TraceRun* r
    cdef uint8_t* regs = NULL
    cdef MachineImage image
    cdef Map m
    cdef Batch batch = _new_batch(prog, range(n), False)
    cdef list images = []            # the runs' machines, alive until the batch ends
    batch._frames = None
    memset(&c, 0, sizeof(TraceBatch))
    memset(&tmpl, 0, sizeof(Skb))       # both freed below even if a field is refused
    memset(&work, 0, sizeof(Skb))
    try:
        c.runs = <TraceRun*>calloc(max(n, 1), sizeof(TraceRun))
        counters = <TraceCounter*>calloc(max(ncounters, 1), sizeof(TraceCounter))
        regs = <uint8_t*>malloc(max(n, 1) * size)
        c.rings = <MapStore**>calloc(max(len(rings), 1), sizeof(MapStore*))
        c.ring_out = <TraceOut*>calloc(max(len(rings), 1), sizeof(TraceOut))
        if c.runs == NULL or counters == NULL or regs == NULL or c.rings == NULL or \
                c.ring_out == NULL:
            raise MemoryError()
        for j, m in enumerate(rings):
            c.rings[j] = m._m
        c.nrings = len(rings)
        c.counters = counters
        for k, (run, counters_of) in enumerate(runs):
            image = machine_image(run.get("machine"))
            images.append(image)
            regs_into(regs + k * size, run.get("regs"), prog.arch)
            r = &c.runs[k]
            r.machine, r.regs = &image.w, regs + k * size
            r.own_clock, r.ktime = "ktime" not in run, run.get("ktime", 0)
            r.cpu, r.func_ip, r.cookie = run.get("cpu", 0), run.get("func_ip", 0), run.get("cookie", 0)
            r.first_counter, r.ncounters = at, len(counters_of)
            for m, slot, value in counters_of:
                m._check_perf_slot(slot)
                if m._m.perf_cpu[<uint32_t>slot] < 0:
                    raise MapError(ENOENT, f"map {m._label()}: slot {slot} is not open")
                counters[at].map, counters[at].slot, counters[at].value = m._m, slot, value
                at += 1
        trace_skb(&tmpl, {}, prog.env, prog._profile_id)
        trace_skb(&work, {}, prog.env, prog._profile_id)
        c.skb, c.tmpl = &work, &tmpl
        c.budget, c.grow = prog.budget, prog._grows(None)
        _trace_batch(prog, &c, batch, n, True)
        return batch.retval, [_ring_records(&c.ring_out[j]) for j in range(c.nrings)]
    finally:
        if c.ring_out != NULL:
            for j in range(c.nrings):
                free(c.ring_out[j].buf)
        free(c.ring_out)
        free(c.rings)
        free(c.runs)
        free(counters)
        free(regs)
        skb_free(&work)
        skb_free(&tmpl)
