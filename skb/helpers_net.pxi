# Helpers that consult the modelled network (skb.net, pyebpf.environment): the packet's
# socket, cgroups and namespace, device MTUs; the checksum-level and ECN helpers; header-
# relative loads, timestamps and IPsec state.  Part of skb/helpers.pxi.

cdef enum:
    OVERFLOWUID = 65534         # what from_kuid_munged() gives for no socket
    INET_ECN_MASK = 3
    INET_ECN_CE = 3
    SKB_MAX_CSUM_LEVEL = 3
    VLAN_MAX_DEPTH = 8


# --- the packet's socket, its cgroup, its namespace -----------------------------------
# skb->sk is the Environment's packet socket until bpf_sk_assign gives the packet one of
# its sockets, or bpf_sk_assign_tcp_reqsk a request socket of a listener (skb_sk); the
# uid and cgroup helpers read the full socket (sk_to_full_sk: a request socket's
# listener).

cdef enum:
    NO_SOCK = -1                # full_sock's answer without skb->sk


cdef int full_sock(Vm* vm) noexcept nogil:
    """sk_to_full_sk(skb->sk): the assigned socket's index (a request socket's
    listener's), PACKET_SOCK for the packet socket, NO_SOCK for none."""
    if vm.skb.sk_assigned:
        return vm.skb.sk_assigned - 1
    return PACKET_SOCK if vm.skb.net.has_sk else NO_SOCK


cdef uint64_t bpf_get_socket_cookie(Vm* vm, uint64_t r1, uint64_t b, uint64_t c,
                                    uint64_t d, uint64_t e) noexcept nogil:
    # skb->sk ? __sock_gen_cookie(skb->sk) : 0
    cdef int k
    cdef uint64_t next
    if not is_ctx(vm, r1):
        return 0
    if vm.skb.sk_reqsk:
        # __sock_gen_cookie: each request socket asked gets the generator's next value
        # (gen_cookie_next, one atomic64 for the machine: no cookie is given twice), here
        # the Environment's, which goes on over its runs and the replay's threads
        if not vm.skb.reqsk_cookie_now:
            next = vm.skb.net.next_cookie[0]
            while not atomic_cas(<uint8_t*>vm.skb.net.next_cookie, 8, next, next + 1):
                next = vm.skb.net.next_cookie[0]
            vm.skb.reqsk_cookie_now = next
        return vm.skb.reqsk_cookie_now
    k = full_sock(vm)
    if k == NO_SOCK:
        return 0
    return vm.skb.net.sk_cookie if k == PACKET_SOCK else vm.skb.net.socks[k].cookie


cdef uint64_t bpf_get_socket_uid(Vm* vm, uint64_t r1, uint64_t b, uint64_t c,
                                 uint64_t d, uint64_t e) noexcept nogil:
    cdef int k
    if not is_ctx(vm, r1):
        return 0
    k = full_sock(vm)
    if k == NO_SOCK:
        return OVERFLOWUID
    return vm.skb.net.sk_uid if k == PACKET_SOCK else vm.skb.net.socks[k].uid


cdef const uint64_t* sock_cgroups(Vm* vm, int* level) noexcept nogil:
    """The ids of the full socket's cgroup's ancestors (by level, its own at ``level``);
    NULL without a socket."""
    cdef const NetEnv* net = vm.skb.net
    cdef int k = full_sock(vm)
    if k == NO_SOCK:
        return NULL
    if k == PACKET_SOCK:
        level[0] = net.sk_cgroup_level
        return net.sk_cgroups
    level[0] = net.socks[k].cgroup_level
    return net.socks[k].cgroups


cdef uint64_t bpf_skb_cgroup_id(Vm* vm, uint64_t r1, uint64_t b, uint64_t c, uint64_t d,
                                uint64_t e) noexcept nogil:
    # __bpf_sk_cgroup_id: the id of the socket's cgroup, 0 without a socket
    cdef const uint64_t* ids
    cdef int level
    if not is_ctx(vm, r1):
        return 0
    ids = sock_cgroups(vm, &level)
    return ids[level] if ids != NULL else 0


cdef uint64_t bpf_skb_ancestor_cgroup_id(Vm* vm, uint64_t r1, uint64_t level, uint64_t c,
                                         uint64_t d, uint64_t e) noexcept nogil:
    # __bpf_sk_ancestor_cgroup_id: cgroup_ancestor() takes an int level, NULL (0) when
    # it is negative or deeper than the socket's cgroup
    cdef const uint64_t* ids
    cdef int lv = <int>level, own
    if not is_ctx(vm, r1):
        return 0
    ids = sock_cgroups(vm, &own)
    if ids == NULL or lv < 0 or lv > own:
        return 0
    return ids[lv]


cdef uint64_t bpf_get_current_cgroup_id(Vm* vm, uint64_t a, uint64_t b, uint64_t c,
                                        uint64_t d, uint64_t e) noexcept nogil:
    # the cgroup v2 cgroup of the current task (task_dfl_cgroup)
    return vm.skb.net.task_cgroups[vm.skb.net.task_cgroup_level]


cdef uint64_t bpf_get_current_ancestor_cgroup_id(Vm* vm, uint64_t level, uint64_t b,
                                                 uint64_t c, uint64_t d,
                                                 uint64_t e) noexcept nogil:
    cdef int lv = <int>level
    if lv < 0 or lv > vm.skb.net.task_cgroup_level:
        return 0
    return vm.skb.net.task_cgroups[lv]


cdef uint64_t bpf_skb_cgroup_classid(Vm* vm, uint64_t r1, uint64_t b, uint64_t c,
                                     uint64_t d, uint64_t e) noexcept nogil:
    # sock_cgroup_classid() of the full socket, 0 without one; the Environment's
    # sockets have no net_cls classid (cgroup v2's 0)
    if not is_ctx(vm, r1):
        return 0
    return vm.skb.net.sk_classid if full_sock(vm) == PACKET_SOCK else 0


cdef uint64_t bpf_get_netns_cookie(Vm* vm, uint64_t r1, uint64_t b, uint64_t c, uint64_t d,
                                   uint64_t e) noexcept nogil:
    # __bpf_get_netns_cookie(skb && skb->sk ? skb->sk : NULL): init_net's without a socket
    # (ARG_PTR_TO_CTX_OR_NULL: r1 may be NULL); every socket lives in the namespace
    if r1 != 0 and not is_ctx(vm, r1):
        return 0
    if r1 != 0 and full_sock(vm) != NO_SOCK:
        return vm.skb.net.netns_cookie
    return vm.skb.net.init_netns_cookie


# --- device MTUs ------------------------------------------------------------------------

cdef uint64_t bpf_check_mtu(Vm* vm, uint64_t r1, uint64_t ifindex, uint64_t mtu_len_addr,
                            uint64_t len_diff, uint64_t flags) noexcept nogil:
    # bpf_skb_check_mtu: the device's MTU plus its hardware header (Ethernet's 14 bytes)
    # against skb->len, or against *mtu_len (an L3 length) when that is non-zero
    cdef const NetDevice* dev
    cdef uint32_t* mtu_len
    cdef int skb_len, dev_len, mtu
    cdef uint64_t ret = BPF_MTU_CHK_RET_FRAG_NEEDED
    if not is_ctx(vm, r1):
        return 0
    mtu_len = <uint32_t*>_mem(vm, mtu_len_addr, 4, ACCESS_WRITE)
    if mtu_len == NULL:
        return 0
    if flags & ~(<uint64_t>BPF_MTU_CHK_SEGS):
        return err(EINVAL)
    if flags & BPF_MTU_CHK_SEGS and (<int32_t>len_diff or mtu_len[0]):
        return err(EINVAL)
    dev = net_device(vm.skb.net, <uint32_t>ifindex if <uint32_t>ifindex else vm.skb.ifindex)
    if dev == NULL:
        if <uint32_t>ifindex:
            return err(ENODEV)
        return helper_fault(vm, b"the packet's device (run(ifindex=...)) is not a device "
                                b"of the environment: declare it in env")
    mtu = <int>dev.mtu
    dev_len = mtu + ETH_HLEN
    skb_len = <int>(mtu_len[0] + ETH_HLEN) if mtu_len[0] else <int>vm.skb.len
    skb_len += <int32_t>len_diff
    if skb_len <= dev_len:
        ret = BPF_MTU_CHK_RET_SUCCESS
    elif vm.skb.gso_size:
        # a GSO packet is checked per segment, and only when asked (skb_gso_validate_
        # network_len: the network and transport headers plus gso_size)
        ret = BPF_MTU_CHK_RET_SUCCESS
        if flags & BPF_MTU_CHK_SEGS and gso_network_seglen(vm.skb) > <uint32_t>mtu:
            ret = BPF_MTU_CHK_RET_SEGS_TOOBIG
    mtu_len[0] = <uint32_t>mtu
    return ret


cdef uint32_t gso_network_seglen(Skb* skb) noexcept nogil:
    # skb_gso_network_seglen for a packet without a GSO type (test_run's): the bytes
    # from the network header to the transport header, plus gso_size
    cdef uint32_t transport = (skb.transport_header if skb.transport_header != NO_HEADER
                               else skb.network_header)
    return transport - skb.network_header + skb.gso_size


# --- checksum level and ECN -------------------------------------------------------------

cdef uint64_t bpf_csum_level(Vm* vm, uint64_t r1, uint64_t level, uint64_t c, uint64_t d,
                             uint64_t e) noexcept nogil:
    cdef Skb* skb = vm.skb
    if not is_ctx(vm, r1):
        return 0
    if level == BPF_CSUM_LEVEL_QUERY:
        return skb.csum_level if skb.ip_summed == CHECKSUM_UNNECESSARY else err(EACCES)
    if level == BPF_CSUM_LEVEL_INC:
        # __skb_incr_checksum_unnecessary
        if skb.ip_summed == CHECKSUM_UNNECESSARY:
            if skb.csum_level < SKB_MAX_CSUM_LEVEL:
                skb.csum_level += 1
        elif skb.ip_summed == CHECKSUM_NONE:
            skb.ip_summed, skb.csum_level = CHECKSUM_UNNECESSARY, 0
    elif level == BPF_CSUM_LEVEL_DEC:
        # __skb_decr_checksum_unnecessary
        if skb.ip_summed == CHECKSUM_UNNECESSARY:
            if skb.csum_level == 0:
                skb.ip_summed = CHECKSUM_NONE
            else:
                skb.csum_level -= 1
    elif level == BPF_CSUM_LEVEL_RESET:
        # __skb_reset_checksum_unnecessary
        if skb.ip_summed == CHECKSUM_UNNECESSARY:
            skb.ip_summed, skb.csum_level = CHECKSUM_NONE, 0
    else:
        return err(EINVAL)
    return 0


cdef inline uint16_t be16_at(const uint8_t* p) noexcept nogil:
    return <uint16_t>((p[0] << 8) | p[1])


cdef uint16_t skb_protocol_skip_vlan(Skb* skb) noexcept nogil:
    """skb_protocol(skb, true) in host order: past in-band VLAN tags (__vlan_get_protocol,
    which reads each tag after the Ethernet header), 0 when a tag is cut off."""
    cdef uint16_t proto = bswap16(skb.protocol)
    cdef uint32_t depth = ETH_HLEN
    cdef int n = 0
    if proto != 0x8100 and proto != 0x88a8:
        return proto
    while proto == 0x8100 or proto == 0x88a8:
        if n == VLAN_MAX_DEPTH or depth + VLAN_HLEN > skb.len:
            return 0
        proto = be16_at(skb_data(skb) + depth + 2)
        depth += VLAN_HLEN
        n += 1
    return proto


cdef uint64_t bpf_skb_ecn_set_ce(Vm* vm, uint64_t r1, uint64_t b, uint64_t c, uint64_t d,
                                 uint64_t e) noexcept nogil:
    # INET_ECN_set_ce on the network header: 1 when the packet is (now) marked CE
    cdef Skb* skb = vm.skb
    cdef uint16_t proto
    cdef uint32_t hlen
    cdef uint8_t* iph
    cdef uint32_t ecn, from_, to
    cdef uint16_t check, add
    if not is_ctx(vm, r1):
        return 0
    proto = skb_protocol_skip_vlan(skb)
    if proto == 0x0800:
        hlen = IPV4_HLEN
    elif proto == 0x86dd:
        hlen = IPV6_HLEN
    else:
        return 0
    if skb.len < hlen or skb.network_header + hlen > skb.data + skb.len:
        return 0
    iph = skb.head + skb.network_header
    if proto == 0x0800:
        # IP_ECN_set_ce: the checksum follows the TOS byte's change (csum16_add)
        ecn = (iph[1] + 1) & INET_ECN_MASK
        if not ecn & 2:
            return not ecn
        add = <uint16_t>(bswap16(0xFFFB) + bswap16(<uint16_t>ecn))
        memcpy(&check, iph + 10, 2)
        check = <uint16_t>(check + add)
        check = <uint16_t>(check + (check < add))
        memcpy(iph + 10, &check, 2)
        iph[1] |= INET_ECN_CE
        return 1
    # IP6_ECN_set_ce: the traffic class's ECN bits are bits 20-21 of the first word
    if (be16_at(iph) >> 4) & INET_ECN_MASK == 0:
        return 0
    memcpy(&from_, iph, 4)
    to = from_ | bswap32(<uint32_t>INET_ECN_CE << 20)
    memcpy(iph, &to, 4)
    if skb.ip_summed == CHECKSUM_COMPLETE:
        skb.csum = csum_add(csum_sub(skb.csum, from_), to)
    return 1


# --- reading headers, timestamps, IPsec state ---------------------------------------------

cdef uint64_t bpf_skb_load_bytes_relative(Vm* vm, uint64_t r1, uint64_t offset, uint64_t to,
                                          uint64_t size, uint64_t start_header) noexcept nogil:
    # from the MAC or the network header; on any error the buffer is zeroed, -EFAULT
    cdef Skb* skb = vm.skb
    cdef uint8_t* dst
    cdef uint64_t start
    if not is_ctx(vm, r1) or not _size_ok(vm, size):
        return 0
    dst = _helper_mem(vm, to, size, ACCESS_WRITE, False)
    if dst == NULL:
        return 0
    if start_header == BPF_HDR_START_MAC and skb.mac_header != NO_HEADER:
        start = skb.mac_header
    elif start_header == BPF_HDR_START_NET:
        start = skb.network_header
    else:
        start = NO_HEADER
    if start != NO_HEADER and <uint32_t>offset <= 0xffff \
            and start + <uint32_t>offset + size <= skb.data + skb.len:
        memcpy(dst, skb.head + start + <uint32_t>offset, size)
        return 0
    memset(dst, 0, size)
    return err(EFAULT)


cdef uint64_t bpf_skb_set_tstamp(Vm* vm, uint64_t r1, uint64_t tstamp, uint64_t tstamp_type,
                                 uint64_t d, uint64_t e) noexcept nogil:
    # a monotonic or TAI time must be non-zero; the realtime clock takes 0 (no time)
    cdef uint32_t kind = <uint32_t>tstamp_type
    if not is_ctx(vm, r1):
        return 0
    if kind > BPF_SKB_CLOCK_TAI or (kind != BPF_SKB_CLOCK_REALTIME and tstamp == 0):
        return err(EINVAL)
    vm.skb.tstamp, vm.skb.tstamp_type = tstamp, <uint8_t>kind
    return 0


cdef uint64_t bpf_skb_get_xfrm_state(Vm* vm, uint64_t r1, uint64_t index, uint64_t to,
                                     uint64_t size, uint64_t flags) noexcept nogil:
    # no packet here went through IPsec (skb_sec_path() is NULL): the buffer is zeroed
    # and the answer is -EINVAL, as for an index past the security path
    cdef uint8_t* dst
    if not is_ctx(vm, r1) or not _size_ok(vm, size):
        return 0
    dst = _helper_mem(vm, to, size, ACCESS_WRITE, False)
    if dst == NULL:
        return 0
    memset(dst, 0, size)
    return err(EINVAL)


def implemented_helpers():
    """The helper ids the engine implements for skb program types (which of them a
    program may call depends on its type: pyebpf.verifier.rules.helpers_allowed)."""
    return frozenset(k for k in range(HELPER_SLOTS) if SKB_HELPERS[k] != NULL)


cdef void register_net_helpers(helper_fn* table) noexcept:
    table[46] = bpf_get_socket_cookie
    table[47] = bpf_get_socket_uid
    table[79] = bpf_skb_cgroup_id
    table[83] = bpf_skb_ancestor_cgroup_id
    table[97] = bpf_skb_ecn_set_ce
    table[122] = bpf_get_netns_cookie
    table[135] = bpf_csum_level
    table[151] = bpf_skb_cgroup_classid
    table[163] = bpf_check_mtu
    table[66] = bpf_skb_get_xfrm_state
    table[68] = bpf_skb_load_bytes_relative
    table[192] = bpf_skb_set_tstamp
    table[80] = bpf_get_current_cgroup_id
    table[123] = bpf_get_current_ancestor_cgroup_id
