# bpf_wq (kernel/bpf/helpers.c: bpf_wq_init, bpf_wq_set_callback_impl, bpf_wq_start,
# bpf_wq_work, bpf_wq_cancel_and_free), in C.  Included into pyebpf/_core.pyx after
# timers.pxi, whose TimerState each work item is.
#
# A map whose value holds a struct bpf_wq gets one work item per element
# (MapStore.wqs); the 16 bytes in the value stay zero, as a user-space lookup reads
# them.  The kernel runs queued work "soon", in process context, after the program run
# that queued it; the engine runs it at the next pyebpf.run_timers() (fire_timers),
# and a replay before its next packet: first the work, in the order it was queued
# (queueing work already queued does nothing, schedule_work), each as its own
# invocation of the program that set the callback with r1 the map, r2 the key and r3
# the value (bpf_wq_work), reading the time of the run that queued it.  Deleting or
# overwriting the element, or Map.close(), cancels queued work (timer_free,
# timers_release).


cdef TimerState* _wq_arg(Vm* vm, uint64_t ptr, MapStore** out) noexcept nogil:
    """The work item a struct bpf_wq pointer names: a value's bpf_wq in a map with work
    items (the verifier saw to that)."""
    cdef size_t k
    cdef MapStore* m
    cdef uint64_t off
    for k in range(_n_timer_maps):
        m = _timer_maps[k]
        if m.wqs != NULL and <uintptr_t>m.values <= ptr < <uintptr_t>m.values + m.values_len:
            off = ptr - <uintptr_t>m.values
            if off % m.stride != <uint64_t>m.wq_off:
                break
            out[0] = m
            return &(<TimerState*>m.wqs)[off // m.stride]
    helper_fault(vm, b"r1 is not the bpf_wq of a map value")
    return NULL


cdef uint64_t _k_wq_init(Vm* vm, uint64_t wq, uint64_t map_ptr, uint64_t flags,
                         uint64_t r4, uint64_t r5) noexcept nogil:
    """bpf_wq_init: flags must be 0; -EBUSY once initialised, -EPERM when the map has no
    user reference (__bpf_async_init)."""
    cdef MapStore* m = NULL
    cdef TimerState* w = _wq_arg(vm, wq, &m)
    cdef uint64_t rc = 0
    if w == NULL:
        return 0
    if <uint32_t>flags:
        return err(EINVAL)
    map_lock(&m.lock)
    if w.init:
        rc = err(EBUSY)
    elif m.no_uref:
        rc = err(EPERM)
    else:
        w.init, w.armed, w.prog = 1, 0, NULL
    map_unlock(&m.lock)
    return rc


cdef uint64_t _k_wq_set_callback(Vm* vm, uint64_t wq, uint64_t fn, uint64_t flags,
                                 uint64_t aux, uint64_t r5) noexcept nogil:
    """bpf_wq_set_callback_impl: flags must be 0; the callback, of the program making
    the call (__bpf_async_set_callback: -EINVAL before init, -EPERM without a user
    reference)."""
    cdef MapStore* m = NULL
    cdef TimerState* w = _wq_arg(vm, wq, &m)
    cdef uint64_t rc = 0
    if w == NULL:
        return 0
    if <uint32_t>flags:
        return err(EINVAL)
    map_lock(&m.lock)
    if not w.init:
        rc = err(EINVAL)
    elif m.no_uref:
        rc = err(EPERM)
    else:
        w.prog, w.cb_pc = vm.prog, <uint32_t>fn
    map_unlock(&m.lock)
    return rc


cdef uint64_t _k_wq_start(Vm* vm, uint64_t wq, uint64_t flags, uint64_t r3, uint64_t r4,
                          uint64_t r5) noexcept nogil:
    """bpf_wq_start: flags must be 0, -EINVAL before a callback is set; queues the work
    once (schedule_work on pending work does nothing)."""
    global _timer_soonest
    cdef MapStore* m = NULL
    cdef TimerState* w = _wq_arg(vm, wq, &m)
    cdef uint64_t rc = 0
    if w == NULL:
        return 0
    if <uint32_t>flags:
        return err(EINVAL)
    map_lock(&m.lock)
    if not w.init or w.prog == NULL:
        rc = err(EINVAL)
    elif not w.armed:
        w.expires, w.armed = _timer_now(vm), 1
        w.seq = _seq_next(&_timer_seq)
        map_lock(&_soonest_lock)
        _timer_soonest = _KTIME_MIN
        map_unlock(&_soonest_lock)
    map_unlock(&m.lock)
    return rc


_kfunc("bpf_wq_init", _k_wq_init)
_kfunc("bpf_wq_set_callback_impl", _k_wq_set_callback)
_kfunc("bpf_wq_start", _k_wq_start)


# --- what might sleep, which only a work callback's path may call (the verifier's
# TimerRules.in_sleepable): the kworker running it has no user memory (no mm), so every
# copy from the current task's user memory faults, as every other address does
# (access_ok); bpf_copy_from_user_task and the _task kfuncs read a task's
# (task_user_span), which only a machine's tasks have

cdef uint64_t _h_copy_from_user(Vm* vm, uint64_t dst, uint64_t size, uint64_t src,
                                uint64_t r4, uint64_t r5) noexcept nogil:
    # bpf_copy_from_user: a fault zeroes the destination
    cdef uint8_t* p
    if <uint32_t>size == 0:
        return 0
    p = _mem(vm, dst, <uint32_t>size, ACCESS_WRITE)
    if p == NULL:
        return 0
    memset(p, 0, <uint32_t>size)
    return err(EFAULT)


cdef uint64_t _h_copy_from_user_task(Vm* vm, uint64_t dst, uint64_t size, uint64_t src,
                                     uint64_t task, uint64_t flags) noexcept nogil:
    # bpf_copy_from_user_task: flags must be 0; access_process_vm copying less than all
    # of it (a byte the task does not map, or a kernel thread) zeroes the destination
    cdef uint8_t* p
    cdef const uint8_t* q
    if flags:
        return err(EINVAL)
    if <uint32_t>size == 0:
        return 0
    p = _mem(vm, dst, <uint32_t>size, ACCESS_WRITE)
    if p == NULL:
        return 0
    q = task_user_bytes(vm, task, src, <uint32_t>size)
    if q == NULL:
        memset(p, 0, <uint32_t>size)
        return err(EFAULT)
    memcpy(p, q, <uint32_t>size)
    return 0


cdef uint64_t _k_copy_from_user_str(Vm* vm, uint64_t dst, uint64_t size, uint64_t src,
                                    uint64_t flags, uint64_t r5) noexcept nogil:
    # bpf_copy_from_user_str: strncpy_from_user of size - 1 bytes, which copies
    # nothing (and cannot fault) for a 1-byte destination
    cdef uint8_t* p
    if flags & ~(<uint64_t>BPF_F_PAD_ZEROS):
        return err(EINVAL)
    if <uint32_t>size == 0:
        return 0
    p = _mem(vm, dst, <uint32_t>size, ACCESS_WRITE)
    if p == NULL:
        return 0
    if <uint32_t>size == 1:
        p[0] = 0
        return 1
    if flags & BPF_F_PAD_ZEROS:
        memset(p, 0, <uint32_t>size)
    return err(EFAULT)


cdef int64_t _task_str(Vm* vm, uint64_t task, uint64_t src, uint8_t* dst,
                       uint32_t size) noexcept nogil:
    """copy_remote_vm_str into ``dst`` (``size`` > 0): the task's NUL-terminated string
    at ``src``, at most size - 1 bytes of it and a NUL; its length, or -EFAULT when a
    byte before its end is not mapped (or the task has no memory), what it copied
    before that kept and ended with a NUL."""
    cdef uint32_t i
    cdef const uint8_t* q
    # vma_lookup first: an unmapped start faults whatever the size
    if task_user_bytes(vm, task, src, 1) == NULL:
        dst[0] = 0
        return -EFAULT
    for i in range(size - 1):
        q = task_user_bytes(vm, task, src + i, 1)
        if q == NULL:
            dst[i] = 0
            return -EFAULT
        dst[i] = q[0]
        if q[0] == 0:
            return i
    dst[size - 1] = 0
    return size - 1


cdef uint64_t _k_copy_from_user_task_str(Vm* vm, uint64_t dst, uint64_t size, uint64_t src,
                                         uint64_t task, uint64_t flags) noexcept nogil:
    # bpf_copy_from_user_task_str: the string and its NUL, the length with it returned;
    # BPF_F_PAD_ZEROS zeroes the rest (all of it on a fault)
    cdef uint8_t* p
    cdef int64_t n
    if flags & ~(<uint64_t>BPF_F_PAD_ZEROS):
        return err(EINVAL)
    if <uint32_t>size == 0:
        return 0
    p = _mem(vm, dst, <uint32_t>size, ACCESS_WRITE)
    if p == NULL:
        return 0
    n = _task_str(vm, task, src, p, <uint32_t>size)
    if n < 0:
        if flags & BPF_F_PAD_ZEROS:
            memset(p, 0, <uint32_t>size)
        return <uint64_t>n
    if flags & BPF_F_PAD_ZEROS:
        memset(p + n, 0, <uint32_t>size - <uint32_t>n)
    return <uint64_t>(n + 1)


# --- the copies into a dynptr (kernel/trace/bpf_trace.c __bpf_dynptr_copy and
# __bpf_dynptr_copy_str): into the dynptr's memory when it is writable and holds the
# range, else in chunks through a buffer, each written with __bpf_dynptr_write

cdef uint64_t _copy_user_dynptr(Vm* vm, uint64_t p, uint64_t off, uint64_t size,
                                uint64_t src, bint of_task, uint64_t task,
                                bint string) noexcept nogil:
    """What the four kfuncs return: from the current task's (the kworker's) memory every
    byte faults; from a ``task``'s (``of_task``: access_process_vm, copy_remote_vm_str)
    what it maps (task_user_bytes).  A string copy of one byte copies nothing
    (strncpy_from_user of 0 bytes) unless it is a task's."""
    cdef DynptrKern* d = _dynptr(vm, p, ACCESS_READ)
    cdef uint8_t* to
    cdef const uint8_t* q
    cdef uint8_t chunk[256]     # __bpf_dynptr_copy's buffer
    cdef uint64_t got
    cdef int64_t n
    if d == NULL:
        return 0
    if (off >> 32) or (size >> 32):
        return err(E2BIG)
    to = _dynptr_slice_ptr(vm, d, <uint32_t>off, <uint32_t>size, True)
    if vm.status != STATUS_RUNNING:
        return 0
    if to == NULL and _check_off_len(d, <uint32_t>off, <uint32_t>size):
        return err(E2BIG)
    if size == 0:
        return 0
    if of_task and not string:
        # what is mapped of it is copied, -EFAULT unless all of it; through the buffer,
        # the write into a read-only dynptr is -EINVAL
        q = task_user_span(vm, task, src, <uint32_t>size, &got)
        if to != NULL and got:
            memcpy(to, q, got)
        if got != size:
            return err(EFAULT)
        return err(EINVAL) if to == NULL else 0
    if of_task and to != NULL:
        n = _task_str(vm, task, src, to, <uint32_t>size)
        return <uint64_t>n if n < 0 else <uint64_t>(n + 1)
    if of_task:
        # the first chunk read into the buffer, whose write is -EINVAL
        n = _task_str(vm, task, src, chunk, <uint32_t>min(size, sizeof(chunk)))
        return <uint64_t>n if n < 0 else err(EINVAL)
    if not string:
        # copy_from_user zeroes what it could not copy
        if to != NULL:
            memset(to, 0, <uint32_t>size)
        return err(EFAULT)
    if to != NULL:
        if size == 1:
            to[0] = 0
        return 1 if size == 1 else err(EFAULT)
    # a chunk through the buffer: the one byte a 1-byte copy gives cannot be written
    # into a read-only dynptr (__bpf_dynptr_write)
    return err(EINVAL) if size == 1 else err(EFAULT)


cdef uint64_t _k_copy_from_user_dynptr(Vm* vm, uint64_t p, uint64_t off, uint64_t size,
                                       uint64_t src, uint64_t r5) noexcept nogil:
    return _copy_user_dynptr(vm, p, off, size, src, False, 0, False)


cdef uint64_t _k_copy_from_user_str_dynptr(Vm* vm, uint64_t p, uint64_t off, uint64_t size,
                                           uint64_t src, uint64_t r5) noexcept nogil:
    return _copy_user_dynptr(vm, p, off, size, src, False, 0, True)


cdef uint64_t _k_copy_from_user_task_dynptr(Vm* vm, uint64_t p, uint64_t off, uint64_t size,
                                            uint64_t src, uint64_t task) noexcept nogil:
    return _copy_user_dynptr(vm, p, off, size, src, True, task, False)


cdef uint64_t _k_copy_from_user_task_str_dynptr(Vm* vm, uint64_t p, uint64_t off,
                                                uint64_t size, uint64_t src,
                                                uint64_t task) noexcept nogil:
    return _copy_user_dynptr(vm, p, off, size, src, True, task, True)


# --- the dma-buf iterator (drivers/dma-buf/dma-buf.c, bpf_iter_dmabuf_*): the modelled
# machine exports no dma-buf, so the walk of the list of them ends at once

cdef uint64_t _k_iter_dmabuf_new(Vm* vm, uint64_t it, uint64_t r2, uint64_t r3, uint64_t r4,
                                 uint64_t r5) noexcept nogil:
    cdef uint64_t* s = <uint64_t*>_mem(vm, it, 8, ACCESS_WRITE)
    if s != NULL:
        s[0] = 0
    return 0


cdef uint64_t _k_iter_dmabuf_next(Vm* vm, uint64_t it, uint64_t r2, uint64_t r3,
                                  uint64_t r4, uint64_t r5) noexcept nogil:
    return 0


cdef uint64_t _k_iter_dmabuf_destroy(Vm* vm, uint64_t it, uint64_t r2, uint64_t r3,
                                     uint64_t r4, uint64_t r5) noexcept nogil:
    return 0


SKB_HELPERS[148] = _h_copy_from_user     # BPF_FUNC_copy_from_user
SKB_HELPERS[191] = _h_copy_from_user_task    # BPF_FUNC_copy_from_user_task
_kfunc("bpf_copy_from_user_str", _k_copy_from_user_str)
_kfunc("bpf_copy_from_user_task_str", _k_copy_from_user_task_str)
_kfunc("bpf_copy_from_user_dynptr", _k_copy_from_user_dynptr)
_kfunc("bpf_copy_from_user_str_dynptr", _k_copy_from_user_str_dynptr)
_kfunc("bpf_copy_from_user_task_dynptr", _k_copy_from_user_task_dynptr)
_kfunc("bpf_copy_from_user_task_str_dynptr", _k_copy_from_user_task_str_dynptr)
_kfunc("bpf_iter_dmabuf_new", _k_iter_dmabuf_new)
_kfunc("bpf_iter_dmabuf_next", _k_iter_dmabuf_next)
_kfunc("bpf_iter_dmabuf_destroy", _k_iter_dmabuf_destroy)

