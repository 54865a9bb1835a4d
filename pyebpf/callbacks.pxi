# Helpers that call back into the program (bpf_loop, bpf_for_each_map_elem), in C.  Included into
# pyebpf/_core.pyx.
#
# A callback runs as a bpf-to-bpf call the helper makes: a new frame (the kernel's
# callbacks get one too), its arguments in r1-r5, the program re-entered at the
# callback's pc (in pyebpf.jit's code where it has it) until the frame returns (its
# ret_pc is CALLBACK_RETURN), on the run's instruction budget (grown by _grant: the
# callback's may_goto counter is fresh).  A fault inside stops the whole run.


cdef bint vm_callback(Vm* vm, uint64_t target, uint64_t a1, uint64_t a2, uint64_t a3,
                      uint64_t a4, uint64_t* ret) noexcept nogil:
    """Call the function at pc ``target``; False (vm.status set) if the run stopped."""
    cdef uint32_t caller_pc = vm.pc
    cdef Frame* f
    if target >= vm.prog.n:
        helper_fault(vm, b"the callback is not code of the program")
        return False
    if vm.depth + 1 >= MAX_FRAMES:
        vm.status = STATUS_CALL_DEPTH
        return False
    f = &vm.frames[vm.depth]
    f.ret_pc = CALLBACK_RETURN
    vm.depth += 1
    vm.may_goto_left[vm.depth] = BPF_MAX_LOOPS
    _grant(vm, &vm.budget_left)
    # the caller's frame ends where the stack region starts: the callee's sits below
    vm.reg[10] = vm.regions[0].start
    vm.regions[0].start -= FRAME_SIZE
    bulk_zero(<void*>vm.regions[0].start, FRAME_SIZE)
    vm.reg[1], vm.reg[2], vm.reg[3], vm.reg[4], vm.reg[5] = a1, a2, a3, a4, 0
    # the others are uninitialised to the verifier (check_func_call): 0, not whatever
    # vm.reg last held, which depends on where the caller's engine last stopped
    vm.reg[0] = vm.reg[6] = vm.reg[7] = vm.reg[8] = vm.reg[9] = 0
    vm.pc = <uint32_t>target
    vm_drive(vm, False)
    if vm.status != STATUS_CALLBACK_DONE:
        return False
    vm.status = STATUS_RUNNING
    vm.pc = caller_pc
    ret[0] = vm.reg[0]
    return True


cdef uint64_t _h_loop(Vm* vm, uint64_t nr_loops, uint64_t callback, uint64_t ctx,
                      uint64_t flags, uint64_t r5) noexcept nogil:
    """bpf_loop (kernel/bpf/bpf_iter.c): the callback (index, ctx) up to nr_loops (u32)
    times, stopping after one that returns non-zero; the number of calls made."""
    cdef uint32_t n = <uint32_t>nr_loops
    cdef uint64_t i, ret = 0
    if flags:
        return err(EINVAL)
    if n > BPF_MAX_LOOPS:
        return err(E2BIG)
    for i in range(n):
        if not vm_callback(vm, callback, i, ctx, 0, 0, &ret):
            return 0
        if ret:
            return i + 1
    return n


cdef bint _key_region(Vm* vm, uintptr_t start, size_t size) noexcept nogil:
    """Let the callback read the keys at [start, start + size), as its PTR_TO_MAP_KEY."""
    if not add_region(vm, start, size, REGION_MAP_KEY):
        return False
    vm.regions[vm.nregions - 1].writable = False
    return True


cdef void _drop_key_region(Vm* vm, uintptr_t start) noexcept nogil:
    cdef int k = vm.nregions - 1
    while k >= 0:
        if vm.regions[k].name == REGION_MAP_KEY and vm.regions[k].start == start:
            vm.nregions -= 1
            memmove(&vm.regions[k], &vm.regions[k + 1], (vm.nregions - k) * sizeof(Region))
            return
        k -= 1


cdef uint64_t _h_for_each_map_elem(Vm* vm, uint64_t map_ptr, uint64_t callback, uint64_t ctx,
                                   uint64_t flags, uint64_t r5) noexcept nogil:
    """bpf_for_each_map_elem: the callback (map, key, value, ctx) on each element in
    the kernel's order (bpf_for_each_array_map_elem: every index; bpf_for_each_hash_elem:
    bucket by bucket, as get_next_key walks them), this CPU's value of a per-CPU map,
    stopping after one that returns non-zero; the number of calls made."""
    cdef MapStore* m = _data_map_arg(vm, map_ptr, True)
    cdef uint32_t index = 0, b, calls = 0
    cdef int32_t e
    cdef uint64_t ret = 0
    cdef uintptr_t keys
    cdef uint32_t cpu
    if m == NULL:
        return 0
    if m.inner != NULL or not (_is_hash(m) or m.type == BPF_MAP_TYPE_ARRAY
                               or m.type == BPF_MAP_TYPE_PERCPU_ARRAY):
        return helper_fault(vm, b"callback function not allowed for map")
    if flags:
        return err(EINVAL)
    cpu = _cpu(vm) % m.ncpu
    if not _is_hash(m):
        keys = <uintptr_t>&index
        if not _key_region(vm, keys, 4):
            return 0
        while index < m.max_entries:
            calls += 1
            if not vm_callback(vm, callback, map_ptr, keys,
                               <uintptr_t>map_value(m, <int32_t>index, cpu), ctx, &ret):
                return 0
            if ret:
                break
            index += 1
    else:
        keys = <uintptr_t>m.keys
        if not _key_region(vm, keys, <size_t>m.max_entries * m.key_size):
            return 0
        for b in range(m.n_buckets):
            e = map_bucket_head(m, b)
            while e != NO_ELEM:
                calls += 1
                if not vm_callback(vm, callback, map_ptr, keys + <size_t>e * m.key_size,
                                   <uintptr_t>map_value(m, e, cpu), ctx, &ret):
                    return 0
                if ret:
                    break
                e = m.next[e]
            if ret:
                break
    _drop_key_region(vm, keys)
    return calls


cdef void register_callback_helpers(helper_fn* table) noexcept:
    table[181] = _h_loop                  # BPF_FUNC_loop
    table[164] = _h_for_each_map_elem     # BPF_FUNC_for_each_map_elem
