# The __sk_buff context: program loads and stores at context offsets, mapped onto the
# Skb model with the kernel's rules.  Included into pyebpf/_core.pyx.
#
# The context is not memory: r1 holds the address of a buffer the run owns but never
# lists as a region, so every context access misses the region table and lands here.
# Which (offset, size) pairs a program type may read or write comes from
# verifier/rules.py, whose table per program type and profile is copied into CtxRules.

cdef void ctx_rules_build(CtxRules* rules, object prog_type, str profile, str arch):
    from .verifier import rules as _rules
    table = _rules.context_table(prog_type, profile, arch)
    cdef const unsigned char[:] field = table.field, width = table.width
    cdef const unsigned char[:] read = table.read, write = table.write
    memcpy(rules.field, &field[0], CTX_SIZE)
    memcpy(rules.width, &width[0], CTX_SIZE)
    memcpy(rules.read, &read[0], CTX_SIZE)
    memcpy(rules.write, &write[0], CTX_SIZE)


cdef uint64_t _ctx_value(Vm* vm, int field) noexcept nogil:
    cdef Skb* skb = vm.skb
    if field == F_LEN:
        return skb.len
    elif field == F_PKT_TYPE:
        return skb.pkt_type
    elif field == F_MARK:
        return skb.mark
    elif field == F_QUEUE_MAPPING:
        return skb.queue_mapping
    elif field == F_PROTOCOL:
        return skb.protocol
    elif field == F_VLAN_PRESENT:
        return 1 if skb.vlan_present else 0
    elif field == F_VLAN_TCI:
        # 4.6 kept the presence flag in bit 12 (CFI/DEI) and masked it off
        return skb.vlan_tci & ~0x1000 if skb.profile == PROFILE_V46 else skb.vlan_tci
    elif field == F_VLAN_PROTO:
        return skb.vlan_proto
    elif field == F_PRIORITY:
        return skb.priority
    elif field == F_INGRESS_IFINDEX:
        return skb.ingress_ifindex
    elif field == F_IFINDEX:
        return skb.ifindex
    elif field == F_TC_INDEX:
        return skb.tc_index
    elif field == F_HASH:
        return skb.hash
    elif field == F_TC_CLASSID:
        return skb.tc_classid
    elif field == F_DATA or field == F_DATA_META:
        return <uintptr_t>skb_data(skb)
    elif field == F_DATA_END:
        return <uintptr_t>(skb_data(skb) + skb.len)
    elif field == F_NAPI_ID:
        return skb.napi_id
    elif field == F_TSTAMP:
        return skb.tstamp
    elif field == F_WIRE_LEN:
        return skb.wire_len
    elif field == F_GSO_SEGS:
        return skb.gso_segs
    elif field == F_GSO_SIZE:
        return skb.gso_size
    elif field == F_TSTAMP_TYPE:
        return skb.tstamp_type
    elif field == F_HWTSTAMP:
        return skb.hwtstamp
    return skb_sk(vm)          # sk (skb/helpers_sock.pxi)


cdef inline bint _in_ctx(Vm* vm, uint64_t addr) noexcept nogil:
    return vm.skb != NULL and addr >= vm.ctx and addr - vm.ctx < CTX_SIZE


cdef bint _ctx_fault(Vm* vm, uint64_t addr, uint32_t size, bint write) noexcept nogil:
    vm.status = STATUS_CTX_FAULT
    vm.fault_addr = addr
    vm.fault_size = size
    vm.fault_write = write
    return False


cdef bint ctx_load(Vm* vm, uint64_t addr, uint32_t size, uint64_t* out) noexcept nogil:
    """A program load from the context; False leaves a fault in vm.status."""
    cdef uint32_t off
    if not _in_ctx(vm, addr):
        # a load through a BTF pointer (trace/tracing.pxi)
        return vm.prog != NULL and vm.prog.probe_loads and trace_probe_load(vm, addr, size, out)
    off = <uint32_t>(addr - vm.ctx)
    if off + size > CTX_SIZE or not (vm.ctx_rules.read[off] & size):
        return _ctx_fault(vm, addr, size, False)
    vm.status = STATUS_RUNNING
    out[0] = ctx_read(vm, vm.ctx_rules.field[off], off, size, vm.ctx_rules.width[off])
    return True


cdef inline uint64_t ctx_read(Vm* vm, int field, uint32_t off, uint32_t size,
                              uint32_t width) noexcept nogil:
    """What a load of ``size`` bytes at context offset ``off`` reads, the access known
    to be allowed: ``field`` is the field there, ``width`` its kernel width."""
    cdef uint64_t value
    if field == F_CB:
        return _load(vm.skb.cb + (off - 48), size)
    value = _ctx_value(vm, field)
    # a narrow load of a narrower kernel field shifts into that field
    # (bpf_ctx_narrow_access_ok; docs/kernel-notes.md, struct __sk_buff)
    if size < width:
        value = (value >> (8 * (off & 3))) & ((<uint64_t>1 << (8 * size)) - 1)
    return value


cdef bint ctx_store(Vm* vm, uint64_t addr, uint32_t size, uint64_t value) noexcept nogil:
    """A program store into the context; False leaves a fault in vm.status."""
    cdef uint32_t off
    cdef int field
    cdef Skb* skb = vm.skb
    if not _in_ctx(vm, addr):
        return False
    off = <uint32_t>(addr - vm.ctx)
    if off + size > CTX_SIZE or not (vm.ctx_rules.write[off] & size):
        return _ctx_fault(vm, addr, size, True)
    vm.status = STATUS_RUNNING
    field = vm.ctx_rules.field[off]
    if field == F_CB:
        _store(skb.cb + (off - 48), size, value)
    elif field == F_MARK:
        skb.mark = <uint32_t>value
    elif field == F_PRIORITY:
        skb.priority = <uint32_t>value
    elif field == F_TC_INDEX:
        skb.tc_index = <uint16_t>value
    elif field == F_TC_CLASSID:
        skb.tc_classid = <uint16_t>value
    elif field == F_QUEUE_MAPPING:
        # the kernel skips the store for values that do not fit below 0xffff
        if <uint32_t>value < 0xffff:
            skb.queue_mapping = <uint16_t>value
    elif field == F_TSTAMP:
        skb.tstamp = value
    return True
