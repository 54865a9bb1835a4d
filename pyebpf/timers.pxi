# bpf_timer (kernel/bpf/helpers.c: bpf_timer_init/set_callback/start/cancel, bpf_timer_cb,
# bpf_timer_cancel_and_free) on the modelled clock, in C.  Included into pyebpf/_core.pyx
# after Program.
#
# A map whose value holds a struct bpf_timer gets one TimerState per element
# (MapStore.timers); the 16 bytes in the value stay zero, as a user-space lookup reads
# them.  A timer is due when the process's clock (docs/clock.md) reaches its expiry;
# run_timers() runs the callbacks of the due ones, earliest first, each as its own
# invocation of the program that set it (bpf_timer_cb: r1 the map, r2 the key, r3 the
# value).  Deleting or overwriting an element, or Map.close() (map_release_uref), cancels
# and frees its timers, as bpf_obj_free_fields does.
#
# A value's struct bpf_wq (workqueues.pxi) is a TimerState too (MapStore.wqs): work
# queued by bpf_wq_start is due at once, and fires here before any timer, in the order
# it was queued.

cdef extern from *:
    """
    static inline uint64_t pyebpf_timer_seq_next(uint64_t* p) {
        return __atomic_add_fetch(p, 1, __ATOMIC_RELAXED);
    }
    static inline int64_t pyebpf_timer_load(int64_t* p) {
        return __atomic_load_n(p, __ATOMIC_RELAXED);
    }
    """
    uint64_t _seq_next "pyebpf_timer_seq_next" (uint64_t* p) nogil
    int64_t _atomic_load_i64 "pyebpf_timer_load" (int64_t* p) nogil

ctypedef struct TimerState:
    int64_t expires        # CLOCK_MONOTONIC ns when armed
    uint64_t seq           # arming order: equal expiries fire in it (the timerqueue's)
    ProgCore* prog         # the program whose callback it runs (cb->prog), or NULL
    uint32_t cb_pc         # the callback's first instruction
    uint8_t init           # bpf_timer_init made it (async->cb != NULL)
    uint8_t armed          # queued (hrtimer_active)
    uint8_t clock          # its clock id

cdef MapStore** _timer_maps = NULL       # every map with timers, for run_timers
cdef size_t _n_timer_maps = 0, _cap_timer_maps = 0
cdef uint64_t _timer_seq = 0
cdef TimerState* _timer_running = NULL   # whose callback runs now (hrtimer_running)
# No armed timer expires before _timer_soonest (KTIME_MAX: none armed), so a replay loop
# asks for the due ones only when its clock reaches it.  Arming lowers it under
# _soonest_lock; firing recomputes it under the same lock, so an arming on another
# replay thread during the scan is never lost.
cdef int64_t _timer_soonest = 0x7fffffffffffffff
cdef int _soonest_lock = 0
cdef int64_t _KTIME_MAX = 0x7fffffffffffffff, _KTIME_MIN = -_KTIME_MAX - 1
cdef int64_t _REALTIME_OFFSET = _isa.KTIME_TAI_OFFSET - 37 * 1_000_000_000


cdef int timers_attach(MapStore* m) except -1:
    """Give ``m`` (whose value holds a bpf_timer, a bpf_wq or a bpf_task_work) its
    timers and work items, all uninitialised."""
    global _timer_maps, _n_timer_maps, _cap_timer_maps
    cdef size_t n = m.max_entries if m.max_entries else 1
    if m.timer_off >= 0:
        m.timers = store_zalloc(n, sizeof(TimerState))
    if m.wq_off >= 0:
        m.wqs = store_zalloc(n, sizeof(TimerState))
    if m.task_work_off >= 0:
        m.tws = store_zalloc(n, sizeof(TimerState))
    if not _grow(<void**>&_timer_maps, &_cap_timer_maps,
                                     _n_timer_maps + 1, sizeof(MapStore*)):
        raise MemoryError()
    _timer_maps[_n_timer_maps] = m
    _n_timer_maps += 1
    return 0


cdef void timers_detach(MapStore* m) noexcept nogil:
    """The map is freed: its timers go with it."""
    global _n_timer_maps
    cdef size_t k
    for k in range(_n_timer_maps):
        if _timer_maps[k] == m:
            _n_timer_maps -= 1
            _timer_maps[k] = _timer_maps[_n_timer_maps]
            break
    store_free(m.timers)
    store_free(m.wqs)
    store_free(m.tws)
    m.timers = m.wqs = m.tws = NULL


cdef inline void timer_free(MapStore* m, int32_t e) noexcept nogil:
    """bpf_timer_cancel_and_free: element ``e``'s timer cancelled and uninitialised."""
    if m.timers != NULL:
        memset(&(<TimerState*>m.timers)[e], 0, sizeof(TimerState))
    if m.wqs != NULL:
        # bpf_wq_cancel_and_free: queued work is cancelled
        memset(&(<TimerState*>m.wqs)[e], 0, sizeof(TimerState))
    if m.tws != NULL:
        # bpf_task_work_cancel_and_free: so is scheduled task work
        memset(&(<TimerState*>m.tws)[e], 0, sizeof(TimerState))


cdef void timers_release(MapStore* m) noexcept nogil:
    """map_release_uref: the last user reference is gone; every timer is cancelled and
    freed, and bpf_timer_init/set_callback refuse with -EPERM from now on."""
    m.no_uref = True
    if m.timers != NULL:
        memset(m.timers, 0, <size_t>m.max_entries * sizeof(TimerState))
    if m.wqs != NULL:
        memset(m.wqs, 0, <size_t>m.max_entries * sizeof(TimerState))
    if m.tws != NULL:
        memset(m.tws, 0, <size_t>m.max_entries * sizeof(TimerState))


cdef void timers_forget_prog(ProgCore* p) noexcept nogil:
    """A Program is freed: its callbacks can no longer run (the kernel's timers hold a
    reference to the program instead; pyebpf's maps may outlive it)."""
    cdef size_t k
    cdef uint32_t i
    cdef TimerState* t
    cdef int w
    for k in range(_n_timer_maps):
        for w in range(3):
            t = <TimerState*>(_timer_maps[k].timers if w == 0 else _timer_maps[k].wqs
                              if w == 1 else _timer_maps[k].tws)
            if t == NULL:
                continue
            for i in range(_timer_maps[k].max_entries):
                if t[i].prog == p:
                    t[i].prog, t[i].armed = NULL, 0


cdef TimerState* _timer_arg(Vm* vm, uint64_t ptr, MapStore** out) noexcept nogil:
    """The timer ARG_PTR_TO_TIMER points at: a value's bpf_timer in a map with timers
    (the verifier saw to that): one of the program's, or an inner map one of them
    holds."""
    cdef size_t k
    cdef MapStore* m
    cdef uint64_t off
    for k in range(_n_timer_maps):
        m = _timer_maps[k]
        if m.timers != NULL and <uintptr_t>m.values <= ptr < <uintptr_t>m.values + m.values_len:
            off = ptr - <uintptr_t>m.values
            if off % m.stride != <uint64_t>m.timer_off:
                break
            out[0] = m
            return &(<TimerState*>m.timers)[off // m.stride]
    helper_fault(vm, b"r1 is not the bpf_timer of a map value")
    return NULL


cdef inline int64_t _timer_now(Vm* vm) noexcept nogil:
    """CLOCK_MONOTONIC as the run reads it (hrtimer_start does not move it on)."""
    return <int64_t>(vm.skb.ktime if vm.skb != NULL else _ktime_clock)


cdef uint64_t _h_timer_init(Vm* vm, uint64_t timer, uint64_t map_ptr, uint64_t flags,
                            uint64_t r4, uint64_t r5) noexcept nogil:
    """bpf_timer_init: flags name the clock (REALTIME, MONOTONIC or BOOTTIME only);
    -EBUSY once initialised, -EPERM when the map has no user reference."""
    cdef MapStore* m = NULL
    cdef TimerState* t = _timer_arg(vm, timer, &m)
    cdef uint64_t clock = flags & (MAX_CLOCKS - 1)
    cdef uint64_t rc = 0
    if t == NULL:
        return 0
    if flags >= MAX_CLOCKS or (clock != TIMER_CLOCK_MONOTONIC and clock != TIMER_CLOCK_REALTIME
                               and clock != TIMER_CLOCK_BOOTTIME):
        return err(EINVAL)
    map_lock(&m.lock)
    if t.init:
        rc = err(EBUSY)
    elif m.no_uref:
        rc = err(EPERM)
    else:
        t.init, t.armed, t.clock, t.prog = 1, 0, <uint8_t>clock, NULL
    map_unlock(&m.lock)
    return rc


cdef uint64_t _h_timer_set_callback(Vm* vm, uint64_t timer, uint64_t fn, uint64_t r3,
                                    uint64_t r4, uint64_t r5) noexcept nogil:
    """bpf_timer_set_callback: the callback, of the program making the call."""
    cdef MapStore* m = NULL
    cdef TimerState* t = _timer_arg(vm, timer, &m)
    cdef uint64_t rc = 0
    if t == NULL:
        return 0
    map_lock(&m.lock)
    if not t.init:
        rc = err(EINVAL)
    elif m.no_uref:
        rc = err(EPERM)
    else:
        t.prog, t.cb_pc = vm.prog, <uint32_t>fn
    map_unlock(&m.lock)
    return rc


cdef uint64_t _h_timer_start(Vm* vm, uint64_t timer, uint64_t nsecs, uint64_t flags,
                             uint64_t r4, uint64_t r5) noexcept nogil:
    """bpf_timer_start: arm it ``nsecs`` from now (BPF_F_TIMER_ABS: at ``nsecs`` on its
    clock); -EINVAL before a callback is set."""
    global _timer_soonest
    cdef MapStore* m = NULL
    cdef TimerState* t = _timer_arg(vm, timer, &m)
    cdef uint64_t rc = 0
    cdef int64_t at = <int64_t>nsecs, base
    if t == NULL:
        return 0
    if flags & ~(<uint64_t>(BPF_F_TIMER_ABS | BPF_F_TIMER_CPU_PIN)):
        return err(EINVAL)
    map_lock(&m.lock)
    if not t.init or t.prog == NULL:
        rc = err(EINVAL)
    else:
        if flags & BPF_F_TIMER_ABS:
            # hrtimer expiries are on the timer's own clock: a REALTIME one's is the wall
            # time, which the modelled boot set (docs/clock.md)
            if t.clock == TIMER_CLOCK_REALTIME:
                at = at - _REALTIME_OFFSET if at > _KTIME_MIN + _REALTIME_OFFSET else _KTIME_MIN
        else:
            # ktime_add_safe: saturates at KTIME_MAX
            base = _timer_now(vm)
            at = base + at if at <= _KTIME_MAX - base else _KTIME_MAX
        t.expires, t.armed = at, 1
        t.seq = _seq_next(&_timer_seq)
        map_lock(&_soonest_lock)
        if at < _timer_soonest:
            _timer_soonest = at
        map_unlock(&_soonest_lock)
    map_unlock(&m.lock)
    return rc


cdef uint64_t _h_timer_cancel(Vm* vm, uint64_t timer, uint64_t r2, uint64_t r3,
                              uint64_t r4, uint64_t r5) noexcept nogil:
    """bpf_timer_cancel: 1 if it was armed, else 0; the callback is dropped (a later
    bpf_timer_start needs a new one); -EDEADLK from its own callback."""
    cdef MapStore* m = NULL
    cdef TimerState* t = _timer_arg(vm, timer, &m)
    cdef uint64_t rc
    if t == NULL:
        return 0
    map_lock(&m.lock)
    if not t.init:
        rc = err(EINVAL)
    elif t == _timer_running:
        rc = err(EDEADLK)
    else:
        rc = t.armed
        t.prog, t.armed = NULL, 0
    map_unlock(&m.lock)
    return rc


cdef void register_timer_helpers(helper_fn* table) noexcept:
    table[169] = _h_timer_init            # BPF_FUNC_timer_init
    table[170] = _h_timer_set_callback    # BPF_FUNC_timer_set_callback
    table[171] = _h_timer_start           # BPF_FUNC_timer_start
    table[172] = _h_timer_cancel          # BPF_FUNC_timer_cancel


register_timer_helpers(SKB_HELPERS)


cdef bint _of_progs(MapStore* m, TimerState* t, ProgCore** progs, int nprogs) noexcept nogil:
    """Whether the timer ``t`` of ``m`` is one of ``progs``' (every timer is when
    ``progs`` is NULL): in a map one of them uses, or set by one of them (an inner map's,
    a tail-called program's map)."""
    cdef int k, j
    if progs == NULL:
        return True
    for k in range(nprogs):
        if t.prog == progs[k]:
            return True
        for j in range(progs[k].nmaps):
            if progs[k].maps[j] == m:
                return True
    return False


cdef TimerState* _next_due(int64_t until, MapStore** mo, uint32_t* eo,
                           ProgCore** progs=NULL, int nprogs=0) noexcept nogil:
    """The queued work item queued first, else the armed timer due soonest by ``until``
    (first armed among equal expiries), one of ``progs``' when given (_of_progs)."""
    cdef TimerState* best = NULL
    cdef TimerState* t
    cdef size_t k
    cdef uint32_t i
    for k in range(_n_timer_maps):
        t = <TimerState*>_timer_maps[k].wqs
        if t == NULL:
            continue
        for i in range(_timer_maps[k].max_entries):
            if t[i].armed and _of_progs(_timer_maps[k], &t[i], progs, nprogs) and (
                    best == NULL or t[i].seq < best.seq):
                best, mo[0], eo[0] = &t[i], _timer_maps[k], i
    if best != NULL:
        return best
    for k in range(_n_timer_maps):
        t = <TimerState*>_timer_maps[k].timers
        if t == NULL:
            continue
        for i in range(_timer_maps[k].max_entries):
            if t[i].armed and t[i].expires <= until and _of_progs(_timer_maps[k], &t[i], progs,
                                                                  nprogs) and (
                    best == NULL or t[i].expires < best.expires or
                    (t[i].expires == best.expires and t[i].seq < best.seq)):
                best, mo[0], eo[0] = &t[i], _timer_maps[k], i
    return best


cdef _timer_callback(Program p, MapStore* m, uint32_t e, uint32_t pc, uint64_t now,
                     MachineImage task=None, bint worker=False):
    """bpf_timer_cb: one run of ``p`` from its callback at ``pc`` with (map, key,
    value); a fault raises as a run's does.  ``task``: the machine whose current task
    the callback runs in (task work's), or with ``worker`` whose kworker runs it (a
    bpf_wq's, worker_world), else none."""
    cdef Vm vm
    cdef Skb spare
    cdef Skb* skb = NULL
    cdef uint32_t index = e
    cdef uintptr_t key
    cdef TraceWorld world
    cdef MachineImage image = None
    cdef bytes regs
    cdef int k
    vm_begin(&vm, p.budget, p.tail_call_limit, p._profile_id == PROFILE_V46)
    vm.grow = p._grows(None)
    try:
        if p._kprobe:
            # a run as run() without arguments makes: its clock the timer's
            memset(&spare, 0, sizeof(Skb))
            skb = &spare
            regs = PyBytes_FromStringAndSize(NULL, _REGS_SIZE[p.arch])
            image = trace_begin(&vm, skb, &world, <uint8_t*>PyBytes_AS_STRING(regs), None,
                                {}, p._profile_id, p.arch)
            skb.ktime = <uint64_t>now
        elif p.prog_type is not None:
            # the callback has no context, but its clock and helpers read the run's skb:
            # an empty frame's, at the time the timer fired
            skb = p._take_skb(&spare)
            p._work_clean = False
            if not skb_load_frame(skb, p._template(), <const uint8_t*>PyBytes_AS_STRING(_ETH_ZERO),
                                  ETH_HLEN, 0):
                raise MemoryError()
            vm_attach_skb(&vm, skb, p._is_tc)
            skb.ktime = <uint64_t>now
            if task is not None and worker:
                worker_world(&vm, skb, &world, task)
            elif task is not None:
                packet_world(&vm, skb, &world, task)
        # the key: an array's index on bpf_timer_cb's stack, a hash element's own key
        key = <uintptr_t>&index if m.type == BPF_MAP_TYPE_ARRAY else \
            <uintptr_t>(m.keys + <size_t>e * m.key_size)
        if not add_region(&vm, key, m.key_size, REGION_MAP_KEY):
            raise vm_fault(&vm, p.budget)
        vm.regions[vm.nregions - 1].writable = False
        for k in range(p._pc.nmaps):
            if p._pc.maps[k] == m:
                break
        else:
            # an inner map's timer: its values a region of the run, as a lookup makes them
            if not add_region(&vm, <uintptr_t>m.values, m.values_len, REGION_INNER_MAP):
                raise vm_fault(&vm, p.budget)
        vm.reg[1], vm.reg[2], vm.reg[3] = <uintptr_t>m, key, <uintptr_t>map_value(m, <int32_t>e, 0)
        vm.pc = pc
        vm_run(&vm, &p._pc, False)
        if vm.status != STATUS_EXIT:
            raise vm_fault(&vm, p.budget)
    finally:
        vm_end(&vm)
        if skb == &spare and p._kprobe:
            skb_free(skb)
        elif skb != NULL:
            p._give_skb(skb)


cdef int64_t timers_soonest() noexcept nogil:
    """No armed timer expires before this time (KTIME_MAX when none is armed)."""
    return _atomic_load_i64(&_timer_soonest)


cdef void _soonest_recompute() noexcept nogil:
    """_timer_soonest made exact again: the earliest expiry of the armed timers."""
    global _timer_soonest
    cdef int64_t soonest = _KTIME_MAX
    cdef TimerState* t
    cdef size_t k
    cdef uint32_t i
    map_lock(&_soonest_lock)
    for k in range(_n_timer_maps):
        t = <TimerState*>_timer_maps[k].timers
        for i in range(_timer_maps[k].max_entries if t != NULL else 0):
            if t[i].armed and t[i].expires < soonest:
                soonest = t[i].expires
        t = <TimerState*>_timer_maps[k].wqs
        for i in range(_timer_maps[k].max_entries if t != NULL else 0):
            if t[i].armed:
                soonest = _KTIME_MIN        # queued work is due at once
        t = <TimerState*>_timer_maps[k].tws
        for i in range(_timer_maps[k].max_entries if t != NULL else 0):
            if t[i].armed and not t[i].init:
                soonest = _KTIME_MIN        # and so is scheduled task work
    _timer_soonest = soonest
    map_unlock(&_soonest_lock)


cdef object fire_timers(int64_t until, uint64_t limit, ProgCore** progs=NULL, int nprogs=0,
                        object machine=None):
    """Run the callbacks of the scheduled task work (task_work.pxi) and of the queued
    bpf_wq work, each in queue order, then those of the
    bpf_timers due by ``until``, earliest first (in arming order among equal expiries),
    at most ``limit`` of them, without moving the
    process's clock; how many ran.  With ``progs``, only their timers (_of_progs: a
    replay fires its own programs' timers).  The work runs in the kworker of ``machine``
    (a pyebpf.trace.Machine; None: no machine).  A callback's fault raises as a run's
    does."""
    global _timer_running
    cdef object image = None if machine is None else machine_image(machine)
    cdef MapStore* m = NULL
    cdef uint32_t e = 0, pc
    cdef TimerState* t
    cdef uint64_t n = 0
    cdef bint is_wq
    held_sockets_entry()
    try:
        if _tw_scheduled:
            n = fire_task_work(None, limit, progs, nprogs)
        while n < limit:
            t = _next_due(until, &m, &e, progs, nprogs)
            if t == NULL:
                break
            t.armed = 0
            pc, n = t.cb_pc, n + 1
            _timer_running = t
            # a timer's callback runs in softirq context, in no task
            is_wq = m.wqs != NULL and <TimerState*>m.wqs <= t < <TimerState*>m.wqs + m.max_entries
            try:
                _timer_callback(<Program>t.prog.owner, m, e, pc, t.expires,
                                image if is_wq else None, True)
            finally:
                _timer_running = NULL
    finally:
        _soonest_recompute()
    return n


def run_timers(uint64_t advance=0, *, until=None, uint64_t limit=_isa.TIMER_CALLBACKS_PER_GAP,
               machine=None):
    """Run the work queued with bpf_wq_start, in the order it was queued (each reads the
    time of the run that queued it; with ``machine``, a :class:`pyebpf.trace.Machine`,
    in a kworker of it: bpf_task_from_pid finds its tasks, whose user memory
    bpf_copy_from_user_task reads, and the kworker itself has none; without, in no
    task), then move the process's clock (docs/clock.md) on by ``advance`` ns, or to ``until``, running on the way the callbacks of the
    bpf_timers due by then, earliest first (in arming order among equal expiries), as
    the kernel's hrtimers fire them.  A callback
    reads its timer's expiry as the time; one may arm timers again, which fire in the same call when they are due by its end.
    At most ``limit`` callbacks run (a timer that re-arms itself with 0 ns would fire
    forever).  Returns how many ran; a callback's fault raises as a run's does."""
    global _ktime_clock
    cdef int64_t end = <int64_t>(_ktime_clock + advance) if until is None else <int64_t>until
    n = fire_timers(end, limit, NULL, 0, machine)
    if end > <int64_t>_ktime_clock:
        _ktime_clock = <uint64_t>end
    return n
