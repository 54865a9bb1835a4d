# Helpers that consult the modelled routes and neighbours (pyebpf.environment: Route,
# Neighbour, Device.addresses): bpf_fib_lookup, and the redirects that go through the
# neighbour table or to a peer device.  Part of skb/helpers.pxi.

cdef enum:
    AF_INET_ = 2
    AF_INET6_ = 10
    RTN_UNICAST = 1
    RTN_BLACKHOLE = 6
    RTN_UNREACHABLE = 7
    RTN_PROHIBIT = 8
    RTN_THROW = 9
    RT_TABLE_DEFAULT = 253
    RT_TABLE_MAIN = 254
    RT_TABLE_LOCAL = 255
    IP_MAX_MTU = 0xFFFF
    IPV6_MIN_MTU = 1280
    IP6_MAX_MTU = 0xFFFF + 40
    # struct bpf_fib_lookup
    FIB_FAMILY = 0
    FIB_TOT_LEN = 6              # union with mtu_result
    FIB_IFINDEX = 8
    FIB_RT_METRIC = 12           # union with tos and flowinfo
    FIB_SRC = 16
    FIB_DST = 32
    FIB_TBID = 48                # union with h_vlan_proto, h_vlan_TCI
    FIB_MARK = 52
    FIB_SMAC = 52
    FIB_DMAC = 58
    FIB_LOOKUP_FLAGS = (BPF_FIB_LOOKUP_DIRECT | BPF_FIB_LOOKUP_OUTPUT |
                        BPF_FIB_LOOKUP_SKIP_NEIGH | BPF_FIB_LOOKUP_TBID |
                        BPF_FIB_LOOKUP_SRC | BPF_FIB_LOOKUP_MARK)


cdef inline uint32_t rd32(const uint8_t* p) noexcept nogil:
    cdef uint32_t v
    memcpy(&v, p, 4)
    return v


cdef inline void wr32(uint8_t* p, uint32_t v) noexcept nogil:
    memcpy(p, &v, 4)


cdef inline void wr16(uint8_t* p, uint16_t v) noexcept nogil:
    memcpy(p, &v, 2)


cdef bint prefix_match(const uint8_t* a, const uint8_t* b, int plen) noexcept nogil:
    """The first ``plen`` bits of ``a`` and ``b`` are equal."""
    cdef int full = plen >> 3
    cdef int rest = plen & 7
    if full and memcmp(a, b, full) != 0:
        return False
    return rest == 0 or ((a[full] ^ b[full]) & (0xFF << (8 - rest)) & 0xFF) == 0


cdef int common_prefix(const uint8_t* a, const uint8_t* b, int nbytes) noexcept nogil:
    cdef int n = 0
    cdef int k
    cdef uint8_t x
    for k in range(nbytes):
        x = a[k] ^ b[k]
        if x == 0:
            n += 8
            continue
        while not x & 0x80:
            n += 1
            x <<= 1
        break
    return n


cdef bint table_exists(const NetEnv* net, uint32_t table) noexcept nogil:
    # main, local and default are made with the namespace; another once a route is in it
    cdef size_t k
    if table == RT_TABLE_MAIN or table == RT_TABLE_LOCAL or table == RT_TABLE_DEFAULT:
        return True
    for k in range(net.nroutes):
        if net.routes[k].table == table:
            return True
    return False


cdef const NetRoute* table_lookup(const NetEnv* net, uint8_t family, uint32_t table,
                                  const uint8_t* dst, uint32_t oif) noexcept nogil:
    """fib_table_lookup / fib6_table_lookup in one table: the longest prefix, then the
    lowest metric, then the first declared.  IPv4 skips unicast routes through another
    device than ``oif`` (fib_lookup_good_nhc) and goes on to shorter prefixes; IPv6
    prefers a route through ``oif`` among the best prefix's (rt6_score_route).  IPv4's
    local table is merged into main while no policy rule is added (fib_unmerge), so a
    lookup in main sees the local routes too."""
    cdef const NetRoute* best = NULL
    cdef const NetRoute* r
    cdef size_t k
    cdef bint better
    for k in range(net.nroutes):
        r = &net.routes[k]
        if r.family != family:
            continue
        if r.table != table and not (family == AF_INET_ and table == RT_TABLE_MAIN
                                     and r.table == RT_TABLE_LOCAL):
            continue
        if not prefix_match(r.dst, dst, r.prefixlen):
            continue
        if family == AF_INET_ and oif and r.type == RTN_UNICAST and r.ifindex != oif:
            continue
        if best == NULL or r.prefixlen > best.prefixlen:
            better = True
        elif r.prefixlen < best.prefixlen:
            better = False
        elif r.metric != best.metric:
            better = r.metric < best.metric
        else:
            better = (family == AF_INET6_ and oif and r.ifindex == oif
                      and best.ifindex != oif)
        if better:
            best = r
    return best


cdef const NetRoute* fib_rules_lookup(const NetEnv* net, uint8_t family,
                                      const uint8_t* dst, uint32_t oif) noexcept nogil:
    """fib_lookup through the default rules: local, main, default; a throw route ends
    the search in its table."""
    cdef uint32_t tables[3]
    cdef const NetRoute* r
    cdef int k
    tables[0], tables[1], tables[2] = RT_TABLE_LOCAL, RT_TABLE_MAIN, RT_TABLE_DEFAULT
    for k in range(3):
        r = table_lookup(net, family, tables[k], dst, oif)
        if r != NULL and r.type != RTN_THROW:
            return r
    return NULL


cdef const NetNeigh* neigh_lookup(const NetEnv* net, uint32_t ifindex, uint8_t family,
                                  const uint8_t* addr) noexcept nogil:
    cdef size_t k
    cdef int n = 4 if family == AF_INET_ else 16
    for k in range(net.nneighs):
        if net.neighs[k].ifindex == ifindex and net.neighs[k].family == family \
                and memcmp(net.neighs[k].addr, addr, n) == 0:
            return &net.neighs[k]
    return NULL


cdef bint is_host_scope4(const uint8_t* a) noexcept nogil:
    return a[0] == 127


cdef bint select_src4(const NetEnv* net, uint32_t ifindex, const uint8_t* near,
                      uint8_t* out) noexcept nogil:
    """inet_select_addr: an address of the device in the subnet of ``near`` (the
    gateway), else its first one, else the first global address of any device."""
    cdef size_t k
    cdef const NetAddr* a
    cdef const NetAddr* first = NULL
    for k in range(net.naddrs):
        a = &net.addrs[k]
        if a.family != AF_INET_ or a.ifindex != ifindex or is_host_scope4(a.addr):
            continue
        if prefix_match(a.addr, near, a.prefixlen):
            memcpy(out, a.addr, 4)
            return True
        if first == NULL:
            first = a
    if first == NULL:
        for k in range(net.naddrs):
            a = &net.addrs[k]
            if a.family == AF_INET_ and not is_host_scope4(a.addr):
                first = a
                break
    if first == NULL:
        return False
    memcpy(out, first.addr, 4)
    return True


cdef bint select_src6(const NetEnv* net, uint32_t ifindex, const uint8_t* dst,
                      uint8_t* out) noexcept nogil:
    """ipv6_dev_get_saddr, reduced to the rules the model can tell apart: global
    addresses only, the outgoing device's first (rule 5), then the longest prefix in
    common with the destination (rule 8)."""
    cdef size_t k
    cdef const NetAddr* a
    cdef const NetAddr* best = NULL
    cdef int score, best_score = -1
    for k in range(net.naddrs):
        a = &net.addrs[k]
        if a.family != AF_INET6_ or (a.addr[0] == 0xFE and (a.addr[1] & 0xC0) == 0x80):
            continue
        if memcmp(a.addr, b"\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\1", 16) == 0:
            continue
        score = common_prefix(a.addr, dst, 16) + (256 if a.ifindex == ifindex else 0)
        if score > best_score:
            best, best_score = a, score
    if best == NULL:
        return False
    memcpy(out, best.addr, 16)
    return True


cdef bint v6_strict(const uint8_t* a) noexcept nogil:
    # rt6_need_strict: multicast, link-local or loopback
    cdef int k
    if a[0] == 0xFF or (a[0] == 0xFE and (a[1] & 0xC0) == 0x80):
        return True
    for k in range(15):
        if a[k]:
            return False
    return a[15] == 1


cdef int64_t fib4(const NetEnv* net, uint8_t* p, uint32_t flags, bint check_mtu) noexcept nogil:
    """bpf_ipv4_fib_lookup on ``p`` (a struct bpf_fib_lookup)."""
    cdef uint32_t ifindex = rd32(p + FIB_IFINDEX)
    cdef const NetDevice* dev = net_device(net, ifindex)
    cdef const NetRoute* r
    cdef const NetNeigh* nb
    cdef const NetDevice* out
    cdef uint32_t mtu = 0
    cdef uint32_t table
    cdef uint16_t tot_len
    cdef uint8_t dst[16]
    if dev == NULL:
        return -ENODEV
    if not dev.forwarding:
        return BPF_FIB_LKUP_RET_FWD_DISABLED
    memset(dst, 0, 16)
    memcpy(dst, p + FIB_DST, 4)
    if flags & BPF_FIB_LOOKUP_DIRECT:
        table = RT_TABLE_MAIN
        if flags & BPF_FIB_LOOKUP_TBID:
            # read, then zeroed at once: the field is the output's VLAN tag too
            table = rd32(p + FIB_TBID)
            wr32(p + FIB_TBID, 0)
        if not table_exists(net, table):
            return BPF_FIB_LKUP_RET_NOT_FWDED
        r = table_lookup(net, AF_INET_, table, dst,
                         ifindex if flags & BPF_FIB_LOOKUP_OUTPUT else 0)
        if r != NULL and r.type == RTN_THROW:
            r = NULL
    else:
        # the mark (BPF_FIB_LOOKUP_MARK) only selects policy rules, which the model has
        # none of beyond the default three
        r = fib_rules_lookup(net, AF_INET_, dst,
                             ifindex if flags & BPF_FIB_LOOKUP_OUTPUT else 0)
    if r == NULL:
        return BPF_FIB_LKUP_RET_NOT_FWDED
    # fib_props[type].error: -EINVAL, -EHOSTUNREACH, -EACCES
    if r.type == RTN_BLACKHOLE:
        return BPF_FIB_LKUP_RET_BLACKHOLE
    if r.type == RTN_UNREACHABLE:
        return BPF_FIB_LKUP_RET_UNREACHABLE
    if r.type == RTN_PROHIBIT:
        return BPF_FIB_LKUP_RET_PROHIBIT
    if r.type != RTN_UNICAST:
        return BPF_FIB_LKUP_RET_NOT_FWDED
    out = net_device(net, r.ifindex)
    if check_mtu:
        # ip_mtu_from_fib_result: a locked route MTU, else the device's
        mtu = r.mtu if r.mtu else (out.mtu if out.mtu < IP_MAX_MTU else IP_MAX_MTU)
        memcpy(&tot_len, p + FIB_TOT_LEN, 2)
        if tot_len > mtu:
            wr16(p + FIB_TOT_LEN, <uint16_t>mtu)
            return BPF_FIB_LKUP_RET_FRAG_NEEDED
    wr32(p + FIB_RT_METRIC, r.metric)
    wr32(p + FIB_IFINDEX, r.ifindex)
    if r.has_gw:
        memcpy(p + FIB_DST, r.gw, 4)
    if flags & BPF_FIB_LOOKUP_SRC:
        # fib_result_prefsrc: the route's, else one inet_select_addr picks (0 if none)
        if r.has_src:
            memcpy(p + FIB_SRC, r.src, 4)
        elif not select_src4(net, r.ifindex, p + FIB_DST, p + FIB_SRC):
            wr32(p + FIB_SRC, 0)
    if not flags & BPF_FIB_LOOKUP_SKIP_NEIGH:
        nb = neigh_lookup(net, r.ifindex, AF_INET_, p + FIB_DST)
        if nb == NULL or not nb.valid:
            return BPF_FIB_LKUP_RET_NO_NEIGH
        memcpy(p + FIB_DMAC, nb.lladdr, ETH_ALEN)
        memcpy(p + FIB_SMAC, out.mac, ETH_ALEN)
    wr32(p + FIB_TBID, 0)                       # h_vlan_proto, h_vlan_TCI
    if mtu:
        wr16(p + FIB_TOT_LEN, <uint16_t>mtu)
    return BPF_FIB_LKUP_RET_SUCCESS


cdef int64_t fib6(const NetEnv* net, uint8_t* p, uint32_t flags, bint check_mtu) noexcept nogil:
    """bpf_ipv6_fib_lookup on ``p``."""
    cdef uint32_t ifindex
    cdef const NetDevice* dev
    cdef const NetRoute* r
    cdef const NetNeigh* nb
    cdef const NetDevice* out
    cdef uint32_t mtu = 0
    cdef uint32_t table
    cdef uint16_t tot_len
    if v6_strict(p + FIB_DST) or v6_strict(p + FIB_SRC):
        return BPF_FIB_LKUP_RET_NOT_FWDED
    ifindex = rd32(p + FIB_IFINDEX)
    dev = net_device(net, ifindex)
    if dev == NULL:
        return -ENODEV
    if not dev.forwarding:
        return BPF_FIB_LKUP_RET_FWD_DISABLED
    if flags & BPF_FIB_LOOKUP_DIRECT:
        table = RT_TABLE_MAIN
        if flags & BPF_FIB_LOOKUP_TBID:
            # read, then zeroed at once: the field is the output's VLAN tag too
            table = rd32(p + FIB_TBID)
            wr32(p + FIB_TBID, 0)
        if not table_exists(net, table):
            return BPF_FIB_LKUP_RET_NOT_FWDED
        r = table_lookup(net, AF_INET6_, table, p + FIB_DST, ifindex)
        if r != NULL and r.type == RTN_THROW:
            r = NULL
    else:
        r = fib_rules_lookup(net, AF_INET6_, p + FIB_DST, ifindex)
    if r == NULL:
        return BPF_FIB_LKUP_RET_NOT_FWDED
    if r.type == RTN_BLACKHOLE:
        return BPF_FIB_LKUP_RET_BLACKHOLE
    if r.type == RTN_UNREACHABLE:
        return BPF_FIB_LKUP_RET_UNREACHABLE
    if r.type == RTN_PROHIBIT:
        return BPF_FIB_LKUP_RET_PROHIBIT
    if r.type != RTN_UNICAST:
        return BPF_FIB_LKUP_RET_NOT_FWDED
    out = net_device(net, r.ifindex)
    if check_mtu:
        # ip6_mtu_from_fib6: the route's MTU, else the device's, at least IPV6_MIN_MTU
        mtu = r.mtu if r.mtu else (out.mtu if out.mtu > IPV6_MIN_MTU else IPV6_MIN_MTU)
        if mtu > IP6_MAX_MTU:
            mtu = IP6_MAX_MTU
        memcpy(&tot_len, p + FIB_TOT_LEN, 2)
        if tot_len > mtu:
            wr16(p + FIB_TOT_LEN, <uint16_t>mtu)
            return BPF_FIB_LKUP_RET_FRAG_NEEDED
    if r.has_gw:
        memcpy(p + FIB_DST, r.gw, 16)
    wr32(p + FIB_RT_METRIC, r.metric)
    wr32(p + FIB_IFINDEX, r.ifindex)
    if flags & BPF_FIB_LOOKUP_SRC:
        if r.has_src:
            memcpy(p + FIB_SRC, r.src, 16)
        elif not select_src6(net, r.ifindex, p + FIB_DST, p + FIB_SRC):
            return BPF_FIB_LKUP_RET_NO_SRC_ADDR
    if not flags & BPF_FIB_LOOKUP_SKIP_NEIGH:
        nb = neigh_lookup(net, r.ifindex, AF_INET6_, p + FIB_DST)
        if nb == NULL or not nb.valid:
            return BPF_FIB_LKUP_RET_NO_NEIGH
        memcpy(p + FIB_DMAC, nb.lladdr, ETH_ALEN)
        memcpy(p + FIB_SMAC, out.mac, ETH_ALEN)
    wr32(p + FIB_TBID, 0)
    if mtu:
        wr16(p + FIB_TOT_LEN, <uint16_t>mtu)
    return BPF_FIB_LKUP_RET_SUCCESS


cdef uint64_t bpf_fib_lookup(Vm* vm, uint64_t r1, uint64_t params, uint64_t plen,
                             uint64_t flags, uint64_t e) noexcept nogil:
    # bpf_skb_fib_lookup: in the namespace of the packet's device
    cdef const NetEnv* net = vm.skb.net
    cdef uint8_t* p
    cdef uint16_t tot_len
    cdef int64_t rc = -EAFNOSUPPORT
    cdef const NetDevice* dev
    cdef uint32_t len_limit
    if not is_ctx(vm, r1):
        return 0
    p = _helper_mem(vm, params, plen, ACCESS_WRITE, False)
    if p == NULL:
        return 0
    if <int32_t>plen < SIZEOF_BPF_FIB_LOOKUP:
        return err(EINVAL)
    if <uint32_t>flags & ~(<uint32_t>FIB_LOOKUP_FLAGS):
        return err(EINVAL)
    memcpy(&tot_len, p + FIB_TOT_LEN, 2)
    if p[FIB_FAMILY] == AF_INET_:
        rc = fib4(net, p, <uint32_t>flags, tot_len != 0)
    elif p[FIB_FAMILY] == AF_INET6_:
        rc = fib6(net, p, <uint32_t>flags, tot_len != 0)
    if rc == BPF_FIB_LKUP_RET_SUCCESS and tot_len == 0:
        # without tot_len the packet itself is checked against the output device
        # (is_skb_forwardable: MTU plus the hardware header and one VLAN tag)
        dev = net_device(net, rd32(p + FIB_IFINDEX))
        len_limit = dev.mtu + ETH_HLEN + VLAN_HLEN
        if not dev.up or (vm.skb.len > len_limit and not vm.skb.gso_size):
            rc = BPF_FIB_LKUP_RET_FRAG_NEEDED
        wr16(p + FIB_TOT_LEN, <uint16_t>dev.mtu)
    return <uint64_t>rc


# --- redirects through the neighbour table or to a peer ---------------------------------

cdef uint64_t bpf_redirect_neigh(Vm* vm, uint64_t ifindex, uint64_t params, uint64_t plen,
                                 uint64_t flags, uint64_t e) noexcept nogil:
    # recorded as bpf_redirect is, with the kind (and the next hop) skb_do_redirect uses
    if (<int32_t>plen and <int32_t>plen < SIZEOF_BPF_REDIR_NEIGH) or flags:
        return TC_ACT_SHOT
    if params != 0 and _helper_mem(vm, params, plen, ACCESS_READ, False) == NULL:
        return 0
    vm.skb.redirect_set = True
    vm.skb.redirect_ifindex = <uint32_t>ifindex
    vm.skb.redirect_flags = BPF_F_NEIGH | (BPF_F_NEXTHOP if <int32_t>plen else 0)
    return TC_ACT_REDIRECT


cdef uint64_t bpf_redirect_peer(Vm* vm, uint64_t ifindex, uint64_t flags, uint64_t c,
                                uint64_t d, uint64_t e) noexcept nogil:
    if flags:
        return TC_ACT_SHOT
    vm.skb.redirect_set = True
    vm.skb.redirect_ifindex = <uint32_t>ifindex
    vm.skb.redirect_flags = BPF_F_PEER
    return TC_ACT_REDIRECT


cdef void register_fib_helpers(helper_fn* table) noexcept:
    table[69] = bpf_fib_lookup
    table[152] = bpf_redirect_neigh
    table[155] = bpf_redirect_peer
