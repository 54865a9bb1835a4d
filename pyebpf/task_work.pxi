# bpf_task_work (kernel/bpf/helpers.c: bpf_task_work_schedule_signal_impl,
# bpf_task_work_schedule_resume_impl, bpf_task_work_callback,
# bpf_task_work_cancel_and_free), in C.  Included into pyebpf/_core.pyx after
# workqueues.pxi.
#
# A map whose value holds a struct bpf_task_work gets one record per element
# (MapStore.tws, a TimerState: ``armed`` from the scheduling until its callback has
# run, ``init`` while the callback runs); the 8 bytes in the value stay zero, as a
# user-space lookup reads them.  The kernel adds the callback to the task's task_work
# list and the task runs it when it next returns to user space: for BPF_PROG_TEST_RUN,
# the calling process, as the syscall returns.  The engine runs scheduled work when
# the Program.run that scheduled it returns, in the run's current task (its
# ``machine=``), and work left otherwise (run_many, replays) at the next
# pyebpf.run_timers() (fire_timers), before queued bpf_wq work; in the order it was
# scheduled, each as its own invocation of the program that scheduled it with r1 the
# map, r2 the key and r3 the value.  Deleting or overwriting the element, or
# Map.close(), cancels it (timer_free, timers_release).

# some task work may be scheduled (set when scheduling, cleared by a scan finding none)
cdef bint _tw_scheduled = False


cdef TimerState* _task_work_arg(Vm* vm, uint64_t ptr, MapStore** out) noexcept nogil:
    """The record a struct bpf_task_work pointer names: a value's bpf_task_work in a map
    with them (the verifier saw to that)."""
    cdef size_t k
    cdef MapStore* m
    cdef uint64_t off
    for k in range(_n_timer_maps):
        m = _timer_maps[k]
        if m.tws != NULL and <uintptr_t>m.values <= ptr < <uintptr_t>m.values + m.values_len:
            off = ptr - <uintptr_t>m.values
            if off % m.stride != <uint64_t>m.task_work_off:
                break
            out[0] = m
            return &(<TimerState*>m.tws)[off // m.stride]
    helper_fault(vm, b"r2 is not the bpf_task_work of a map value")
    return NULL


cdef uint64_t _task_work_schedule(Vm* vm, uint64_t task, uint64_t tw, uint64_t fn) noexcept nogil:
    """bpf_task_work_schedule: -EPERM for a kernel thread (PF_KTHREAD in its
    task_struct's flags; 6.18 refuses one, docs/kernel-notes.md), -EBUSY when the map has
    no user reference or the work is scheduled or running (bpf_task_work_acquire_ctx:
    only a STANDBY context is taken); else the callback of the program making the call
    is scheduled."""
    global _tw_scheduled, _timer_soonest
    cdef MapStore* m = NULL
    cdef TimerState* w = _task_work_arg(vm, tw, &m)
    cdef const uint8_t* flags
    cdef uint32_t f = 0
    cdef uint64_t rc = 0
    if w == NULL:
        return 0
    if vm.world != NULL:
        flags = _kernel_bytes(vm, task + _TASK_FLAGS, 4)
        if flags != NULL:
            memcpy(&f, flags, 4)
        if f & PF_KTHREAD:
            return err(EPERM)
    map_lock(&m.lock)
    if m.no_uref or w.armed:
        rc = err(EBUSY)
    else:
        w.armed, w.init, w.prog, w.cb_pc = 1, 0, vm.prog, <uint32_t>fn
        w.seq = _seq_next(&_timer_seq)
        _tw_scheduled = True
        map_lock(&_soonest_lock)
        _timer_soonest = _KTIME_MIN
        map_unlock(&_soonest_lock)
    map_unlock(&m.lock)
    return rc


cdef uint64_t _k_task_work_schedule(Vm* vm, uint64_t task, uint64_t tw, uint64_t map_ptr,
                                    uint64_t fn, uint64_t aux) noexcept nogil:
    # TWA_SIGNAL and TWA_RESUME differ in how soon a task running in user space stops
    # for the work, which the engine does not model: both run at the return
    return _task_work_schedule(vm, task, tw, fn)


cdef TimerState* _next_task_work(MapStore** mo, uint32_t* eo, ProgCore** progs,
                                 int nprogs) noexcept nogil:
    """The scheduled work that does not run yet scheduled first (task_work_run's
    order), of ``progs`` when given."""
    cdef TimerState* best = NULL
    cdef TimerState* t
    cdef size_t k
    cdef uint32_t i
    for k in range(_n_timer_maps):
        t = <TimerState*>_timer_maps[k].tws
        if t == NULL:
            continue
        for i in range(_timer_maps[k].max_entries):
            if t[i].armed and not t[i].init and _of_progs(_timer_maps[k], &t[i], progs,
                                                          nprogs) and (
                    best == NULL or t[i].seq < best.seq):
                best, mo[0], eo[0] = &t[i], _timer_maps[k], i
    return best


cdef object fire_task_work(MachineImage task, uint64_t limit, ProgCore** progs=NULL,
                           int nprogs=0):
    """Run the callbacks of the scheduled task work in ``task``'s current task (None:
    no machine), in the order it was scheduled, work a callback schedules included
    (task_work_run runs the list until it is empty), at most ``limit``; how many ran.
    A callback's fault raises as a run's does."""
    global _tw_scheduled
    cdef MapStore* m = NULL
    cdef uint32_t e = 0, pc
    cdef TimerState* t
    cdef uint64_t n = 0
    while n < limit:
        t = _next_task_work(&m, &e, progs, nprogs)
        if t == NULL:
            if progs == NULL:
                _tw_scheduled = False
            break
        # BPF_TW_RUNNING: scheduling it again from its callback is -EBUSY
        t.init, pc, n = 1, t.cb_pc, n + 1
        try:
            _timer_callback(<Program>t.prog.owner, m, e, pc, _ktime_clock, task)
        finally:
            if t.init:
                t.armed = t.init = 0     # back to BPF_TW_STANDBY (unless freed meanwhile)
    return n


_kfunc("bpf_task_work_schedule_signal_impl", _k_task_work_schedule)
_kfunc("bpf_task_work_schedule_resume_impl", _k_task_work_schedule)
