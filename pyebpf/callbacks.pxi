# Helpers that call back into the program (bpf_loop), in C.  Included into
# pyebpf/_core.pyx.
#
# A callback runs as a bpf-to-bpf call the helper makes: a new frame (the kernel's
# callbacks get one too), its arguments in r1-r5, the interpreter re-entered at the
# callback's pc until the frame returns (its ret_pc is CALLBACK_RETURN), on the run's
# instruction budget.  A fault inside stops the whole run.


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
    # the caller's frame ends where the stack region starts: the callee's sits below
    vm.reg[10] = vm.regions[0].start
    vm.regions[0].start -= FRAME_SIZE
    memset(<void*>vm.regions[0].start, 0, FRAME_SIZE)
    vm.reg[1], vm.reg[2], vm.reg[3], vm.reg[4], vm.reg[5] = a1, a2, a3, a4, 0
    vm.pc = <uint32_t>target
    vm_interp(vm)
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


cdef void register_callback_helpers(helper_fn* table) noexcept:
    table[181] = _h_loop                  # BPF_FUNC_loop
