# Helpers that read the environment or record a decision: time, randomness, cpu,
# classids, redirect.  Part of skb/helpers.pxi.

cdef uint64_t bpf_ktime_get_ns(Vm* vm, uint64_t a, uint64_t b, uint64_t c, uint64_t d,
                               uint64_t e) noexcept nogil:
    # a settable clock (run(ktime=, ktime_step=)): reproducible where the kernel is not
    cdef uint64_t now = vm.skb.ktime
    vm.skb.ktime += vm.skb.ktime_step
    return now


cdef uint64_t bpf_get_prandom_u32(Vm* vm, uint64_t a, uint64_t b, uint64_t c, uint64_t d,
                                  uint64_t e) noexcept nogil:
    # xorshift64*, seeded per run (run(prandom_seed=)): reproducible sequences
    cdef uint64_t x = vm.skb.prandom
    x ^= x >> 12
    x ^= x << 25
    x ^= x >> 27
    vm.skb.prandom = x
    return <uint32_t>((x * <uint64_t>0x2545F4914F6CDD1D) >> 32)


cdef uint64_t bpf_get_smp_processor_id(Vm* vm, uint64_t a, uint64_t b, uint64_t c,
                                       uint64_t d, uint64_t e) noexcept nogil:
    return vm.skb.cpu


cdef uint64_t bpf_get_cgroup_classid(Vm* vm, uint64_t r1, uint64_t b, uint64_t c,
                                     uint64_t d, uint64_t e) noexcept nogil:
    if not is_ctx(vm, r1):
        return 0
    return vm.skb.cgroup_classid


cdef uint64_t bpf_get_route_realm(Vm* vm, uint64_t r1, uint64_t b, uint64_t c, uint64_t d,
                                  uint64_t e) noexcept nogil:
    if not is_ctx(vm, r1):
        return 0
    return vm.skb.route_realm


cdef uint64_t bpf_redirect(Vm* vm, uint64_t ifindex, uint64_t flags, uint64_t c, uint64_t d,
                           uint64_t e) noexcept nogil:
    # recorded, not validated: the target is looked up when the verdict is acted on
    if flags & ~(<uint64_t>BPF_F_INGRESS_):
        return TC_ACT_SHOT_
    vm.skb.redirect_set = True
    vm.skb.redirect_ifindex = <uint32_t>ifindex
    vm.skb.redirect_flags = <uint32_t>flags
    return TC_ACT_REDIRECT_


cdef void register_misc_helpers(helper_fn* table) noexcept:
    table[5] = bpf_ktime_get_ns
    table[7] = bpf_get_prandom_u32
    table[8] = bpf_get_smp_processor_id
    table[17] = bpf_get_cgroup_classid
    table[23] = bpf_redirect
    table[24] = bpf_get_route_realm
