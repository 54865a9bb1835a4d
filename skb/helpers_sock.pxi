# Helpers that find and use the sockets of the modelled network (pyebpf.environment:
# Socket, and the request sockets of listeners' SYN queues, HalfOpen): the lookups, the casts between socket views, release and sk_assign.  A socket
# pointer is the address of its block in NetEnv.sock_mem (struct bpf_sock at the start,
# struct bpf_tcp_sock at SOCK_TCP_VIEW); the blocks are one read-only region of the run,
# added when a helper first hands a socket out.  The bpf_skc_to_* casts point at the
# socket's kernel struct (struct tcp_sock, ...: NetEnv.kern_mem, pyebpf.skb.kern), another
# read-only region.  Part of skb/helpers.pxi.

cdef enum:
    REGION_SOCKETS = 1010          # region names past the maps' (pyebpf/maps.pxi)
    REGION_PACKET_SOCK = 1011
    REGION_KERN_SOCKETS = 1012
    REGION_REQ_SOCK = 1013
    PACKET_SOCK = -2            # sock_of's answer for skb->sk
    REQ_SOCK = -3               # and for bpf_sk_assign_tcp_reqsk's request socket
    TCP_CLOSE_ = 7
    IPPROTO_TCP_ = 6
    IPPROTO_UDP_ = 17
    TCP_ESTABLISHED_ = 1
    TCP_LISTEN_ = 10
    TCP_NEW_SYN_RECV_ = 12


cdef uint64_t sock_ptr(Vm* vm, size_t k, bint tcp_view) noexcept nogil:
    """The address of socket ``k`` (or of its tcp_sock view); 0 with a helper fault
    when no region is left for the sockets."""
    cdef const NetEnv* net = vm.skb.net
    cdef int j
    cdef uintptr_t base = <uintptr_t>net.sock_mem
    for j in range(vm.map_regions, vm.nregions):
        if vm.regions[j].name == REGION_SOCKETS:
            break
    else:
        if not add_region(vm, base, net.nsocks * SOCK_BLOCK, REGION_SOCKETS):
            return 0
        vm.regions[vm.nregions - 1].writable = False
    return base + k * SOCK_BLOCK + (SOCK_TCP_VIEW if tcp_view else 0)


cdef uint64_t kern_sock_ptr(Vm* vm, size_t k) noexcept nogil:
    """The address of socket ``k``'s kernel struct; 0 with a helper fault when no region
    is left for them."""
    cdef const NetEnv* net = vm.skb.net
    cdef int j
    cdef uintptr_t base = <uintptr_t>net.kern_mem
    for j in range(vm.map_regions, vm.nregions):
        if vm.regions[j].name == REGION_KERN_SOCKETS:
            break
    else:
        if not add_region(vm, base, net.nsocks * net.kern_block, REGION_KERN_SOCKETS):
            return 0
        vm.regions[vm.nregions - 1].writable = False
    return base + k * net.kern_block


cdef uint64_t packet_sock(Vm* vm) noexcept nogil:
    """skb->sk: the Environment's packet socket (None: NULL), a socket of test_run's
    kind (bpf_prog_test_run_skb): no protocol or port, state TCP_CLOSE, the family and
    addresses of the packet's IP header.  Its struct bpf_sock is filled from the packet
    as it is when the program first reads the field, then kept for the run."""
    cdef Skb* skb = vm.skb
    cdef uint8_t* v = skb.sk_view
    cdef const uint8_t* ip = skb.head + skb.network_header
    cdef uint32_t headlen = skb.data + skb.len - skb.network_header
    cdef uint32_t value
    cdef int j
    if not skb.net.has_sk:
        return 0
    for j in range(vm.map_regions, vm.nregions):
        if vm.regions[j].name == REGION_PACKET_SOCK:
            return vm.regions[j].start
    memset(v, 0, SK_VIEW_SIZE)
    value = 0
    if skb.protocol == BE_ETH_P_IP:
        value = AF_INET_
        if headlen >= IPV4_HLEN:
            memcpy(v + 24, ip + 12, 4)          # src_ip4 = saddr
            memcpy(v + 52, ip + 16, 4)          # dst_ip4 = daddr
    elif skb.protocol == BE_ETH_P_IPV6:
        value = AF_INET6_
        if headlen >= IPV6_HLEN:
            memcpy(v + 28, ip + 8, 16)          # src_ip6 = saddr
            memcpy(v + 56, ip + 24, 16)         # dst_ip6 = daddr
    memcpy(v + 4, &value, 4)                    # family
    value = TCP_CLOSE_
    memcpy(v + 72, &value, 4)                   # state
    value = 0xFFFFFFFF
    memcpy(v + 76, &value, 4)                   # rx_queue_mapping: none recorded
    if not add_region(vm, <uintptr_t>v, SK_VIEW_SIZE, REGION_PACKET_SOCK):
        return 0
    vm.regions[vm.nregions - 1].writable = False
    return <uintptr_t>v


cdef uint64_t skb_sk(Vm* vm) noexcept nogil:
    """skb->sk: the socket bpf_sk_assign gave the packet, or the request socket
    bpf_sk_assign_tcp_reqsk did (both skb_orphan the packet first), else the
    Environment's packet socket (packet_sock)."""
    cdef int j
    if not vm.skb.sk_assigned:
        return packet_sock(vm)
    if not vm.skb.sk_reqsk:
        return sock_ptr(vm, vm.skb.sk_assigned - 1, False)
    for j in range(vm.map_regions, vm.nregions):
        if vm.regions[j].name == REGION_REQ_SOCK:
            return vm.regions[j].start
    if not add_region(vm, <uintptr_t>vm.skb.reqsk_view, SK_VIEW_SIZE, REGION_REQ_SOCK):
        return 0
    vm.regions[vm.nregions - 1].writable = False
    return <uintptr_t>vm.skb.reqsk_view


cdef int sock_of(Vm* vm, uint64_t ptr) noexcept nogil:
    """The index of the socket ``ptr`` points at (either view), PACKET_SOCK for the
    packet's own socket, REQ_SOCK for an assigned request socket, or -1 with a helper
    fault: the verifier lets only socket pointers through."""
    cdef const NetEnv* net = vm.skb.net
    cdef uint64_t off
    if ptr == <uintptr_t>vm.skb.sk_view:
        return PACKET_SOCK
    if ptr == <uintptr_t>vm.skb.reqsk_view or (ptr == REQSK_ADDRESS_ and vm.skb.sk_reqsk):
        return REQ_SOCK
    if net.nsocks and ptr >= <uintptr_t>net.sock_mem:
        off = ptr - <uintptr_t>net.sock_mem
        if off < net.nsocks * SOCK_BLOCK and (off % SOCK_BLOCK == 0 or
                                              off % SOCK_BLOCK == SOCK_TCP_VIEW):
            return <int>(off // SOCK_BLOCK)
    if net.nsocks and ptr >= <uintptr_t>net.kern_mem:
        off = ptr - <uintptr_t>net.kern_mem
        if off < net.nsocks * net.kern_block and off % net.kern_block == 0:
            return <int>(off // net.kern_block)
    helper_fault(vm, b"the socket argument is not a socket a helper returned")
    return -1


cdef inline bint bound_dev_eq(const NetSock* s, uint32_t dif) noexcept nogil:
    # inet_sk_bound_dev_eq without VRF devices (sdif 0)
    return s.bound_dev_if == 0 or s.bound_dev_if == dif


cdef void ip4_view(const NetSock* s, uint8_t* out) noexcept nogil:
    """sk_rcv_saddr: what IPv4 lookups compare (socket_views in pyebpf/environment.py
    lays out the same value for programs)."""
    cdef int k
    cdef bint mapped = True
    if s.family == AF_INET_:
        memcpy(out, s.laddr, 4)
        return
    for k in range(10):
        mapped = mapped and s.laddr[k] == 0
    mapped = mapped and s.laddr[10] == 0xFF and s.laddr[11] == 0xFF
    if mapped:
        memcpy(out, s.laddr + 12, 4)
        return
    for k in range(16):
        if s.laddr[k]:
            out[0], out[1], out[2], out[3] = 127, 0, 0, 6      # LOOPBACK4_IPV6
            return
    memset(out, 0, 4)


cdef int find_established(const NetEnv* net, uint8_t family, const uint8_t* saddr,
                          uint16_t sport, const uint8_t* daddr, uint16_t dport,
                          uint32_t dif) noexcept nogil:
    # __inet_lookup_established: the exact four-tuple, among the established sockets and
    # the request sockets inet_csk_reqsk_queue_hash_add put in the same hash
    cdef size_t k
    cdef const NetSock* s
    cdef int n = 4 if family == AF_INET_ else 16
    for k in range(net.nsocks):
        s = &net.socks[k]
        if s.protocol == IPPROTO_TCP_ and (s.state == TCP_ESTABLISHED_ or
                                           s.state == TCP_NEW_SYN_RECV_) \
                and s.family == family and s.lport == dport and s.rport == sport \
                and memcmp(s.laddr, daddr, n) == 0 and memcmp(s.raddr, saddr, n) == 0 \
                and bound_dev_eq(s, dif):
            return <int>k
    return -1


cdef int score_listener(const NetSock* s, uint8_t family, const uint8_t* addr,
                        uint16_t dport, uint32_t dif) noexcept nogil:
    """compute_score of inet_hashtables.c / inet6_hashtables.c against one listening
    address (the packet's destination, or the wildcard): -1 for no match."""
    cdef uint8_t v4[4]
    cdef int score
    if s.protocol != IPPROTO_TCP_ or s.state != TCP_LISTEN_ or s.lport != dport:
        return -1
    if family == AF_INET_:
        if s.family == AF_INET6_ and s.v6only:
            return -1
        ip4_view(s, v4)
        if memcmp(v4, addr, 4) != 0:
            return -1
    elif s.family != AF_INET6_ or memcmp(s.laddr, addr, 16) != 0:
        return -1
    if not bound_dev_eq(s, dif):
        return -1
    score = 2 if s.bound_dev_if else 1
    if family == AF_INET_ and s.family == AF_INET_:
        score += 1
    return score


cdef int score_udp(const NetSock* s, uint8_t family, const uint8_t* saddr, uint16_t sport,
                   const uint8_t* addr, uint16_t dport, uint32_t dif) noexcept nogil:
    """compute_score of udp.c / udp_ipv6.c against one bound address."""
    cdef uint8_t v4[4]
    cdef int score
    if s.protocol != IPPROTO_UDP_ or s.lport != dport:
        return -1
    if family == AF_INET_:
        if s.family == AF_INET6_ and s.v6only:
            return -1
        ip4_view(s, v4)
        if memcmp(v4, addr, 4) != 0:
            return -1
        score = 2 if s.family == AF_INET_ else 1
        if s.connected:
            if s.family != AF_INET_ or memcmp(s.raddr, saddr, 4) != 0 or s.rport != sport:
                return -1
            score += 8
        if not bound_dev_eq(s, dif):
            return -1
        return score + (4 if s.bound_dev_if else 0)
    if s.family != AF_INET6_ or memcmp(s.laddr, addr, 16) != 0:
        return -1
    score = 0
    if s.connected:
        if memcmp(s.raddr, saddr, 16) != 0 or s.rport != sport:
            return -1
        score += 2
    if not bound_dev_eq(s, dif):
        return -1
    return score + (1 if s.bound_dev_if else 0)


cdef int find_bound(const NetEnv* net, uint8_t proto, uint8_t family, const uint8_t* saddr,
                    uint16_t sport, const uint8_t* daddr, uint16_t dport,
                    uint32_t dif) noexcept nogil:
    """The listener (TCP) or bound socket (UDP) for the packet: the best score among
    those bound to its destination address, else among the wildcard ones.  On equal
    scores the socket declared last wins: the kernel adds sockets at the head of their
    hash chain."""
    cdef uint8_t wild[16]
    cdef const uint8_t* addr
    cdef int best, best_score, score, k, attempt
    memset(wild, 0, 16)
    for attempt in range(2):
        addr = daddr if attempt == 0 else wild
        best, best_score = -1, -1
        for k in range(<int>net.nsocks - 1, -1, -1):
            if proto == IPPROTO_TCP_:
                score = score_listener(&net.socks[k], family, addr, dport, dif)
            else:
                score = score_udp(&net.socks[k], family, saddr, sport, addr, dport, dif)
            if score > best_score:
                best, best_score = k, score
        if best >= 0:
            return best
    return -1


cdef uint64_t sk_lookup(Vm* vm, uint64_t r1, uint64_t tuple_addr, uint64_t size,
                        uint64_t netns_id, uint64_t flags, uint8_t proto,
                        bint full) noexcept nogil:
    # __bpf_skc_lookup in the namespace of the packet's device; sockets of other
    # namespaces (netns_id >= 0) are not modelled, so such lookups find nothing
    cdef const NetEnv* net = vm.skb.net
    cdef const uint8_t* t
    cdef uint8_t family
    cdef uint16_t sport, dport
    cdef int k, n
    if not is_ctx(vm, r1):
        return 0
    t = _helper_mem(vm, tuple_addr, size, ACCESS_READ, True)
    if t == NULL:
        return 0
    if <uint32_t>size == SIZEOF_BPF_SOCK_TUPLE_IPV4:
        family, n = AF_INET_, 4
    elif <uint32_t>size == SIZEOF_BPF_SOCK_TUPLE_IPV6:
        family, n = AF_INET6_, 16
    else:
        return 0
    if flags or not (<int32_t>netns_id < 0 or netns_id <= 0x7FFFFFFF):
        return 0
    if <int32_t>netns_id >= 0:
        return 0
    sport = bswap16((<const uint16_t*>(t + 2 * n))[0])
    dport = bswap16((<const uint16_t*>(t + 2 * n + 2))[0])
    k = -1
    if proto == IPPROTO_TCP_:
        k = find_established(net, family, t, sport, t + n, dport, vm.skb.ifindex)
    if k < 0:
        k = find_bound(net, proto, family, t, sport, t + n, dport, vm.skb.ifindex)
    if k >= 0 and full and net.socks[k].listener >= 0:
        # __bpf_sk_lookup: sk_to_full_sk gives a request socket's listener
        k = net.socks[k].listener
    return sock_ptr(vm, k, False) if k >= 0 else 0


cdef uint64_t bpf_sk_lookup_tcp(Vm* vm, uint64_t r1, uint64_t t, uint64_t size,
                                uint64_t netns_id, uint64_t flags) noexcept nogil:
    return sk_lookup(vm, r1, t, size, netns_id, flags, IPPROTO_TCP_, True)


cdef uint64_t bpf_skc_lookup_tcp(Vm* vm, uint64_t r1, uint64_t t, uint64_t size,
                                 uint64_t netns_id, uint64_t flags) noexcept nogil:
    # __bpf_skc_lookup: a request socket as it is (the model holds no timewait sockets)
    return sk_lookup(vm, r1, t, size, netns_id, flags, IPPROTO_TCP_, False)


cdef uint64_t bpf_sk_lookup_udp(Vm* vm, uint64_t r1, uint64_t t, uint64_t size,
                                uint64_t netns_id, uint64_t flags) noexcept nogil:
    return sk_lookup(vm, r1, t, size, netns_id, flags, IPPROTO_UDP_, True)


cdef uint64_t bpf_sk_release(Vm* vm, uint64_t sk, uint64_t b, uint64_t c, uint64_t d,
                             uint64_t e) noexcept nogil:
    # the reference is the verifier's to track; the model's sockets live on
    sock_of(vm, sk)
    return 0


cdef inline bint request_sock(Vm* vm, int k) noexcept nogil:
    # a request socket of a declared SYN queue (sk_fullsock is false for it)
    return k >= 0 and vm.skb.net.socks[k].state == TCP_NEW_SYN_RECV_


cdef uint64_t bpf_sk_fullsock(Vm* vm, uint64_t sk, uint64_t b, uint64_t c, uint64_t d,
                              uint64_t e) noexcept nogil:
    # every socket of the model but a request socket, and test_run's, is a full one
    cdef int k = sock_of(vm, sk)
    if k == PACKET_SOCK:
        return sk
    return sock_ptr(vm, k, False) if k >= 0 and not request_sock(vm, k) else 0


cdef uint64_t bpf_tcp_sock(Vm* vm, uint64_t sk, uint64_t b, uint64_t c, uint64_t d,
                           uint64_t e) noexcept nogil:
    # sk_to_full_sk is not taken: a request socket has none (sk_fullsock)
    cdef int k = sock_of(vm, sk)
    if k < 0 or vm.skb.net.socks[k].protocol != IPPROTO_TCP_ or request_sock(vm, k):
        return 0
    return sock_ptr(vm, k, True)


cdef uint64_t bpf_get_listener_sock(Vm* vm, uint64_t sk, uint64_t b, uint64_t c,
                                    uint64_t d, uint64_t e) noexcept nogil:
    cdef int k = sock_of(vm, sk)
    if k == REQ_SOCK:
        # sk_to_full_sk: a request socket's listener (rsk_listener)
        k = vm.skb.sk_assigned - 1
    elif request_sock(vm, k):
        k = vm.skb.net.socks[k].listener
    if k < 0 or vm.skb.net.socks[k].state != TCP_LISTEN_:
        return 0
    return sock_ptr(vm, k, False)


cdef uint64_t bpf_sk_assign(Vm* vm, uint64_t r1, uint64_t sk, uint64_t flags, uint64_t d,
                            uint64_t e) noexcept nogil:
    cdef int k
    if not is_ctx(vm, r1):
        return 0
    if sk == 0 or flags:
        return err(EINVAL)
    k = sock_of(vm, sk)
    if k == -1:
        return 0
    if not vm.skb.at_ingress:
        return err(EOPNOTSUPP)
    if k == PACKET_SOCK:
        return 0                # the packet's own socket stays its socket
    if k == REQ_SOCK:
        # reqsk_alloc leaves a request socket unhashed (sk_node_init)
        return err(EOPNOTSUPP)
    if vm.skb.net.socks[k].reuseport:
        return err(ESOCKTNOSUPPORT)
    vm.skb.sk_assigned = k + 1
    vm.skb.sk_reqsk = False
    return 0


# --- bpf_sk_assign_tcp_reqsk (net/core/filter.c): a request socket of a listener, made
# from the SYN cookie a program checked, given to the packet.  struct bpf_tcp_req_attrs:
# rcv_tsval, rcv_tsecr (u32), mss (u16), rcv_wscale, snd_wscale, ecn_ok, wscale_ok,
# sack_ok, tstamp_ok, usec_ts_ok, reserved[3] (u8).  The namespace's tcp_window_scaling,
# tcp_sack and tcp_timestamps are taken as on, their defaults.  skb->sk is then the
# request socket: inet_reqsk_alloc sets its family (the listener's) and its state
# TCP_NEW_SYN_RECV, and nothing fills its addresses, ports or device before TCP takes
# the packet (cookie_bpf_check, then cookie_tcp_reqsk_init): the kernel's read what the
# slab object held before, pyebpf's read 0.  It is no full socket, and sk_to_full_sk
# gives its listener.  With tstamp_ok its ts_off is rcv_tsecr less the TCP clock then
# (tcp_ns_to_ts of tcp_clock_ns, the monotonic clock in ms, or us with usec_ts_ok): the
# offset that makes the ACK's echoed timestamp the one the SYN-ACK's cookie carried.

cdef enum:
    TCP_REQ_ATTRS_SIZE = 20
    TCP_MAX_WSCALE_ = 14
    TCP_MIN_MSS4 = 536          # tcp_request_sock_ops' min_mss
    TCP_MIN_MSS6 = 1280 - 60    # IPV6_MIN_MTU - 60
    NSEC_PER_USEC_ = 1000
    NSEC_PER_MSEC_ = 1000000


cdef uint64_t _k_sk_assign_tcp_reqsk(Vm* vm, uint64_t s, uint64_t sk, uint64_t attrs,
                                     uint64_t size, uint64_t r5) noexcept nogil:
    cdef const uint8_t* a
    cdef uint8_t* v
    cdef uint32_t value, ts_off = 0
    cdef uint64_t now
    cdef uint16_t mss
    cdef int k
    if not is_ctx(vm, s):
        return 0
    if <uint32_t>size != TCP_REQ_ATTRS_SIZE:
        return err(EINVAL)
    a = _helper_mem(vm, attrs, TCP_REQ_ATTRS_SIZE, ACCESS_READ, True)
    if a == NULL:
        return 0
    if a[17] or a[18] or a[19] or not vm.skb.at_ingress:
        return err(EINVAL)
    k = sock_of(vm, sk)
    if k == -1:
        return 0
    # the packet's own socket (test_run's) is no listener
    if k < 0 or vm.skb.net.socks[k].protocol != IPPROTO_TCP_ or \
            vm.skb.net.socks[k].state != TCP_LISTEN_:
        return err(EINVAL)
    mss = a[8] | a[9] << 8
    if vm.skb.protocol == BE_ETH_P_IP:
        if mss < TCP_MIN_MSS4:
            return err(EINVAL)
    elif vm.skb.protocol == BE_ETH_P_IPV6:
        if mss < TCP_MIN_MSS6:
            return err(EINVAL)
    else:
        return err(EINVAL)
    if a[13] and (a[10] > TCP_MAX_WSCALE_ or a[11] > TCP_MAX_WSCALE_):
        return err(EINVAL)
    if a[15]:
        # tsoff = rcv_tsecr - tcp_ns_to_ts(usec_ts_ok, tcp_clock_ns()): a clock read
        now = clock_read(vm)
        memcpy(&ts_off, a + 4, 4)
        ts_off -= <uint32_t>(now // NSEC_PER_USEC_ if a[16] else now // NSEC_PER_MSEC_)
    vm.skb.sk_assigned = k + 1
    vm.skb.sk_reqsk = True
    vm.skb.reqsk_cookie_now = 0
    vm.skb.reqsk_ts_off = ts_off
    memcpy(vm.skb.reqsk_attrs, a, TCP_REQ_ATTRS_SIZE)
    v = vm.skb.reqsk_view
    memset(v, 0, SK_VIEW_SIZE)
    value = vm.skb.net.socks[k].family
    memcpy(v + 4, &value, 4)                    # family
    value = TCP_NEW_SYN_RECV_
    memcpy(v + 72, &value, 4)                   # state
    return 0


# --- the casts to kernel socket structs (bpf_skc_to_*, net/core/filter.c) ----------------
# The pointer is NULL when the socket is not of the struct's kind.  test_run's packet
# socket has no protocol and the model holds no timewait, unix or MPTCP sockets, so those
# casts find none; its request sockets are bpf_sk_assign_tcp_reqsk's and those of the
# listeners' SYN queues; a NULL argument (a BTF pointer read as NULL) gives NULL.

cdef uint64_t skc_cast(Vm* vm, uint64_t sk, uint8_t protocol, uint8_t family) noexcept nogil:
    """The kernel struct of the full socket ``sk`` when its protocol is ``protocol``
    (0: none qualifies) and, unless 0, its family ``family``."""
    cdef int k
    cdef const NetSock* s
    if sk == 0:
        return 0
    k = sock_of(vm, sk)
    if k < 0 or protocol == 0:
        return 0
    s = &vm.skb.net.socks[k]
    # the casts to full-socket structs check sk_fullsock
    if s.protocol != protocol or (family and s.family != family) or \
            s.state == TCP_NEW_SYN_RECV_:
        return 0
    return kern_sock_ptr(vm, k)


cdef uint64_t bpf_skc_to_tcp_sock(Vm* vm, uint64_t sk, uint64_t b, uint64_t c, uint64_t d,
                                  uint64_t e) noexcept nogil:
    return skc_cast(vm, sk, IPPROTO_TCP_, 0)


cdef uint64_t bpf_skc_to_tcp6_sock(Vm* vm, uint64_t sk, uint64_t b, uint64_t c, uint64_t d,
                                   uint64_t e) noexcept nogil:
    return skc_cast(vm, sk, IPPROTO_TCP_, AF_INET6_)


cdef uint64_t bpf_skc_to_udp6_sock(Vm* vm, uint64_t sk, uint64_t b, uint64_t c, uint64_t d,
                                   uint64_t e) noexcept nogil:
    # every UDP socket of the model is SOCK_DGRAM
    return skc_cast(vm, sk, IPPROTO_UDP_, AF_INET6_)


cdef uint64_t bpf_skc_to_none(Vm* vm, uint64_t sk, uint64_t b, uint64_t c, uint64_t d,
                              uint64_t e) noexcept nogil:
    """bpf_skc_to_tcp_timewait_sock, _unix_sock, _mptcp_sock: the model has no socket of
    these kinds (TCP_TIME_WAIT, AF_UNIX, an MPTCP subflow)."""
    return skc_cast(vm, sk, 0, 0)


cdef uint64_t bpf_skc_to_tcp_request_sock(Vm* vm, uint64_t sk, uint64_t b, uint64_t c,
                                          uint64_t d, uint64_t e) noexcept nogil:
    """A socket in TCP_NEW_SYN_RECV: the request socket bpf_sk_assign_tcp_reqsk gave
    the packet, its struct tcp_request_sock at REQSK_ADDRESS_, read through reqsk_load,
    or one of a declared SYN queue, its kernel struct; NULL for every other socket."""
    cdef int k
    if sk == 0:
        return 0
    k = sock_of(vm, sk)
    if request_sock(vm, k):
        return kern_sock_ptr(vm, k)
    if k != REQ_SOCK:
        return 0
    # rsk_listener points at the listener's kernel struct: a program may read it
    if not kern_sock_ptr(vm, vm.skb.sk_assigned - 1):
        return 0
    return REQSK_ADDRESS_


# --- the request socket's struct tcp_request_sock (pyebpf.skb.kern.request_sock_layout) --
# No memory: like bpf_cast_to_kern_ctx's sk_buff (skb/kernctx.pxi) each load through its
# address reaches trace_probe_load, which asks reqsk_load; that builds the bytes from the
# run's assigned listener and struct bpf_tcp_req_attrs.

cdef enum:
    RQ_FAMILY, RQ_STATE, RQ_TX_QUEUE, RQ_LISTENER, RQ_MSS, RQ_SYNCOOKIE, RQ_TS_RECENT
    RQ_TIMEOUT, RQ_SND_WSCALE, RQ_RCV_WSCALE, RQ_TSTAMP_OK, RQ_SACK_OK, RQ_WSCALE_OK
    RQ_ECN_OK, RQ_USEC_TS, RQ_COOKIE, RQ_TS_OFF, N_RQ_FIELDS
    NO_QUEUE_MAPPING_ = 0xFFFF      # sk_tx_queue_clear

cdef uint64_t REQSK_ADDRESS_ = _kern.REQSK_ADDRESS
cdef uint32_t TCP_TIMEOUT_INIT_ = _isa.HZ     # 1 second, in jiffies
cdef uint32_t _reqsk_size = 0
cdef uint32_t _reqsk_fields[N_RQ_FIELDS][4]     # offset, size, bit, bits


cdef int reqsk_prepare() except -1:
    """Read the layout from the target BTF, once per process (an Environment with
    sockets is being built)."""
    global _reqsk_size
    if _reqsk_size:
        return 0
    size, fields = _kern.request_sock_layout()
    if len(fields) != N_RQ_FIELDS:
        raise LoadError(f"pyebpf.skb.kern.REQUEST_SOCK_FIELDS has {len(fields)} fields, "
                        f"skb/helpers_sock.pxi {N_RQ_FIELDS}")
    for k, field in enumerate(fields):
        for j in range(4):
            _reqsk_fields[k][j] = field[j]
    _reqsk_size = size
    return 0


cdef uint64_t _reqsk_value(Vm* vm, int k) noexcept nogil:
    cdef const uint8_t* a = vm.skb.reqsk_attrs
    cdef const NetEnv* net = vm.skb.net
    cdef int listener = vm.skb.sk_assigned - 1
    cdef uint32_t u
    if k == RQ_FAMILY:
        return net.socks[listener].family
    elif k == RQ_STATE:
        return TCP_NEW_SYN_RECV_
    elif k == RQ_TX_QUEUE:
        return NO_QUEUE_MAPPING_
    elif k == RQ_LISTENER:
        return <uintptr_t>net.kern_mem + <uint64_t>listener * net.kern_block
    elif k == RQ_MSS:
        return a[8] | a[9] << 8
    elif k == RQ_SYNCOOKIE:
        return 1
    elif k == RQ_TS_RECENT:
        memcpy(&u, a, 4)                        # rcv_tsval
        return u
    elif k == RQ_TIMEOUT:
        return TCP_TIMEOUT_INIT_
    elif k == RQ_SND_WSCALE:
        return a[11]
    elif k == RQ_RCV_WSCALE:
        return a[10]
    elif k == RQ_TSTAMP_OK:
        return a[15] != 0
    elif k == RQ_SACK_OK:
        return a[14] != 0
    elif k == RQ_WSCALE_OK:
        return a[13] != 0
    elif k == RQ_ECN_OK:
        return a[12] != 0
    elif k == RQ_USEC_TS:
        return a[16] != 0
    elif k == RQ_TS_OFF:
        return vm.skb.reqsk_ts_off
    # RQ_COOKIE: __sock_gen_cookie writes it when first asked
    return vm.skb.reqsk_cookie_now


cdef bint reqsk_load(Vm* vm, uint64_t addr, uint32_t size, uint64_t* out) noexcept nogil:
    """A load of ``size`` bytes at ``addr`` from the run's request socket, into ``out``;
    False if it holds not all of it (or the run has none)."""
    cdef uint64_t off = addr - REQSK_ADDRESS_
    cdef uint64_t value
    cdef uint32_t j, b
    cdef uint8_t w[8]
    cdef int k
    cdef const uint32_t* f
    if _reqsk_size == 0 or vm.skb == NULL or vm.pkt_region < 0 or not vm.skb.sk_reqsk \
            or off >= _reqsk_size or _reqsk_size - off < size:
        return False
    memset(w, 0, 8)
    for k in range(N_RQ_FIELDS):
        f = _reqsk_fields[k]
        if f[0] >= off + size or f[0] + f[1] <= off:
            continue
        value = _reqsk_value(vm, k)
        if f[3]:
            for j in range(f[3]):
                b = f[2] + j
                if off <= (b >> 3) < off + size and (value >> j) & 1:
                    w[(b >> 3) - off] |= 1 << (b & 7)
            continue
        for j in range(f[1]):
            if off <= f[0] + j < off + size:
                w[f[0] + j - off] = <uint8_t>(value >> (8 * j))
    out[0] = _load(w, size)
    return True


# --- SYN cookies -------------------------------------------------------------------------
# The model's namespace keeps net.ipv4.tcp_syncookies at its default (1: cookies only
# when a listener's SYN queue overflows) and its listeners never overflow: so the kernel
# generates no cookie (tcp_get_syncookie_mss gives 0) and checks none
# (tcp_synq_no_recent_overflow); what the helpers answer before that is modelled.

cdef int syncookie_args(Vm* vm, uint64_t sk, uint64_t iph, uint64_t iph_len, uint64_t th,
                        uint64_t th_len, const uint8_t** ip, const uint8_t** tcp) noexcept nogil:
    """The socket's index (PACKET_SOCK, or -1 with a fault), the two headers' memory."""
    cdef int k = sock_of(vm, sk)
    if k == -1:
        return -1
    ip[0] = _helper_mem(vm, iph, iph_len, ACCESS_READ, True)
    if ip[0] == NULL:
        return -1
    tcp[0] = _helper_mem(vm, th, th_len, ACCESS_READ, True)
    if tcp[0] == NULL:
        return -1
    return k


cdef inline bint tcp_listener(Vm* vm, int k) noexcept nogil:
    return k >= 0 and vm.skb.net.socks[k].protocol == IPPROTO_TCP_ \
        and vm.skb.net.socks[k].state == TCP_LISTEN_


cdef uint64_t bpf_tcp_check_syncookie(Vm* vm, uint64_t sk, uint64_t iph, uint64_t iph_len,
                                      uint64_t th, uint64_t th_len) noexcept nogil:
    cdef const uint8_t* ip
    cdef const uint8_t* tcp
    cdef int k = syncookie_args(vm, sk, iph, iph_len, th, th_len, &ip, &tcp)
    if k == -1:
        return 0
    if <uint32_t>th_len < 20 or not tcp_listener(vm, k):
        return err(EINVAL)
    # th->ack, th->rst, th->syn
    if not tcp[13] & 0x10 or tcp[13] & 0x04 or tcp[13] & 0x02:
        return err(ENOENT)
    if <uint32_t>iph_len < IPV4_HLEN:
        return err(EINVAL)
    return err(ENOENT)          # no SYN queue overflow lately


cdef uint64_t bpf_tcp_gen_syncookie(Vm* vm, uint64_t sk, uint64_t iph, uint64_t iph_len,
                                    uint64_t th, uint64_t th_len) noexcept nogil:
    cdef const uint8_t* ip
    cdef const uint8_t* tcp
    cdef const NetSock* s
    cdef int k = syncookie_args(vm, sk, iph, iph_len, th, th_len, &ip, &tcp)
    if k == -1:
        return 0
    if <uint32_t>th_len < 20 or <uint32_t>th_len != (tcp[12] >> 4) * 4u:
        return err(EINVAL)
    if not tcp_listener(vm, k):
        return err(EINVAL)
    # th->syn and none of ack, fin, rst
    if not tcp[13] & 0x02 or tcp[13] & (0x10 | 0x01 | 0x04):
        return err(EINVAL)
    if <uint32_t>iph_len < IPV4_HLEN:
        return err(EINVAL)
    s = &vm.skb.net.socks[k]
    if ip[0] >> 4 == 4:
        if s.family == AF_INET6_ and s.v6only:
            return err(EINVAL)
    elif ip[0] >> 4 == 6:
        if <uint32_t>iph_len < IPV6_HLEN or s.family != AF_INET6_:
            return err(EINVAL)
    else:
        return err(EPROTONOSUPPORT)
    return err(ENOENT)          # the SYN queue is not full: no cookie


# --- SYN cookies of raw headers (bpf_tcp_raw_*_syncookie_*): the kernel's algorithm
# (net/ipv4/syncookies.c, net/ipv6/syncookies.c) with Environment.syncookie_secret as
# its keys and the model's clock as jiffies.  A cookie is
#   hash(addrs, ports, 0, key 0) + seq + (count << 24)
#   + ((hash(addrs, ports, count, key 1) + mss index) & (2**24 - 1))
# with count the minutes since boot (tcp_cookie_time); a check accepts cookies of the
# last two counts (MAX_SYNCOOKIE_AGE).

cdef enum:
    COOKIEBITS = 24
    COOKIEMASK = (1 << 24) - 1
    MAX_SYNCOOKIE_AGE = 2
    TCPOPT_EOL = 0
    TCPOPT_NOP = 1
    TCPOPT_MSS = 2
    TCPOLEN_MSS = 4

cdef uint64_t _SYNCOOKIE_PERIOD = 60 * _isa.HZ         # TCP_SYNCOOKIE_PERIOD, in jiffies
# msstab of net/ipv4/syncookies.c, then of net/ipv6/syncookies.c
cdef uint16_t MSSTAB[8]
MSSTAB[0], MSSTAB[1], MSSTAB[2], MSSTAB[3] = 536, 1300, 1440, 1460
MSSTAB[4], MSSTAB[5], MSSTAB[6], MSSTAB[7] = 1280 - 60, 1480 - 60, 1500 - 60, 9000 - 60


cdef uint64_t siphash24(const uint8_t* data, size_t n, const uint8_t* key) noexcept nogil:
    """SipHash-2-4 of ``n`` bytes under a siphash_key_t (two little-endian words)."""
    cdef uint64_t k0, k1
    memcpy(&k0, key, 8)
    memcpy(&k1, key + 8, 8)
    return _siphash_key(data, n, k0, k1)


cdef uint32_t cookie_hash(Vm* vm, const uint8_t* ip, bint v6, const uint8_t* th,
                          uint32_t count, int c) noexcept nogil:
    """cookie_hash of syncookies.c: siphash_4u32(saddr, daddr, sport << 16 | dport,
    count) for IPv4, siphash of {saddr, daddr, count, sport, dport} for IPv6 (the
    ports as the header holds them)."""
    cdef uint8_t buf[40]
    cdef uint16_t sport, dport
    cdef uint32_t ports
    cdef const uint8_t* key = vm.skb.net.syncookie_secret + 16 * c
    memcpy(&sport, th, 2)
    memcpy(&dport, th + 2, 2)
    if not v6:
        memcpy(buf, ip + 12, 8)
        ports = (<uint32_t>sport) << 16 | dport
        memcpy(buf + 8, &ports, 4)
        memcpy(buf + 12, &count, 4)
        return <uint32_t>siphash24(buf, 16, key)
    memcpy(buf, ip + 8, 32)
    memcpy(buf + 32, &count, 4)
    memcpy(buf + 36, &sport, 2)
    memcpy(buf + 38, &dport, 2)
    return <uint32_t>siphash24(buf, 40, key)


cdef inline uint32_t be32_at(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[0]) << 24 | (<uint32_t>p[1]) << 16 | (<uint32_t>p[2]) << 8 | p[3]


cdef inline uint32_t cookie_time(Vm* vm) noexcept nogil:
    # tcp_cookie_time: jiffies / TCP_SYNCOOKIE_PERIOD, from the model's clock without
    # moving it on
    return <uint32_t>((_INITIAL_JIFFIES + vm.skb.ktime // TICK_NSEC) // _SYNCOOKIE_PERIOD)


cdef uint16_t parse_mss_option(const uint8_t* th) noexcept nogil:
    """tcp_parse_mss_option(th, 0): the MSS option's non-zero value, 0 without one."""
    cdef const uint8_t* p = th + 20
    cdef int length = (th[12] >> 4) * 4 - 20
    cdef int opcode, opsize
    cdef uint16_t mss = 0, value
    while length > 0:
        opcode = p[0]
        p += 1
        if opcode == TCPOPT_EOL:
            return mss
        if opcode == TCPOPT_NOP:
            length -= 1
            continue
        if length < 2:
            return mss
        opsize = p[0]
        p += 1
        if opsize < 2 or opsize > length:
            return mss
        if opcode == TCPOPT_MSS and opsize == TCPOLEN_MSS:
            value = (<uint16_t>p[0]) << 8 | p[1]
            if value:
                mss = value
        p += opsize - 2
        length -= opsize
    return mss


cdef uint64_t raw_gen_syncookie(Vm* vm, uint64_t iph, uint64_t th_addr, uint64_t th_len,
                                bint v6) noexcept nogil:
    """__cookie_v4_init_sequence / __cookie_v6_init_sequence: the cookie in the low 32
    bits, the MSS it encodes (the table's largest not above the SYN's) in the high."""
    cdef const uint8_t* ip = _helper_mem(vm, iph, 40 if v6 else 20, ACCESS_READ, True)
    cdef const uint8_t* th
    cdef const uint16_t* table = MSSTAB + (4 if v6 else 0)
    cdef uint16_t mss
    cdef uint32_t count, cookie
    cdef int mssind
    if ip == NULL:
        return 0
    th = _helper_mem(vm, th_addr, th_len, ACCESS_READ, True)
    if th == NULL and th_len:
        return 0
    if <uint32_t>th_len < 20 or <uint32_t>th_len != (th[12] >> 4) * 4u:
        return err(EINVAL)
    mss = parse_mss_option(th)
    if mss == 0:
        mss = table[0] if not v6 else 1280 - 20 - 40    # TCP_MSS_DEFAULT, IPV6_MIN_MTU's
    mssind = 3
    while mssind and mss < table[mssind]:
        mssind -= 1
    count = cookie_time(vm)
    cookie = cookie_hash(vm, ip, v6, th, 0, 0) + be32_at(th + 4) + (count << COOKIEBITS) \
        + ((cookie_hash(vm, ip, v6, th, count, 1) + <uint32_t>mssind) & COOKIEMASK)
    return cookie | (<uint64_t>table[mssind]) << 32


cdef uint64_t raw_check_syncookie(Vm* vm, uint64_t iph, uint64_t th_addr,
                                  bint v6) noexcept nogil:
    """__cookie_v4_check / __cookie_v6_check: 0 for an ACK whose ack_seq - 1 is a cookie
    of the last two minutes with a valid MSS index, -EACCES otherwise."""
    cdef const uint8_t* ip = _helper_mem(vm, iph, 40 if v6 else 20, ACCESS_READ, True)
    cdef const uint8_t* th
    cdef uint32_t cookie, seq, count, diff, mssind
    if ip == NULL:
        return 0
    th = _helper_mem(vm, th_addr, 20, ACCESS_READ, True)
    if th == NULL:
        return 0
    cookie = be32_at(th + 8) - 1
    seq = be32_at(th + 4) - 1
    count = cookie_time(vm)
    cookie -= cookie_hash(vm, ip, v6, th, 0, 0) + seq
    diff = (count - (cookie >> COOKIEBITS)) & (0xFFFFFFFFu >> COOKIEBITS)
    if diff >= MAX_SYNCOOKIE_AGE:
        return err(EACCES)
    mssind = (cookie - cookie_hash(vm, ip, v6, th, count - diff, 1)) & COOKIEMASK
    return 0 if mssind < 4 else err(EACCES)


cdef uint64_t bpf_tcp_raw_gen_syncookie_ipv4(Vm* vm, uint64_t iph, uint64_t th,
                                             uint64_t th_len, uint64_t d,
                                             uint64_t e) noexcept nogil:
    return raw_gen_syncookie(vm, iph, th, th_len, False)


cdef uint64_t bpf_tcp_raw_gen_syncookie_ipv6(Vm* vm, uint64_t iph, uint64_t th,
                                             uint64_t th_len, uint64_t d,
                                             uint64_t e) noexcept nogil:
    return raw_gen_syncookie(vm, iph, th, th_len, True)


cdef uint64_t bpf_tcp_raw_check_syncookie_ipv4(Vm* vm, uint64_t iph, uint64_t th,
                                               uint64_t c, uint64_t d,
                                               uint64_t e) noexcept nogil:
    return raw_check_syncookie(vm, iph, th, False)


cdef uint64_t bpf_tcp_raw_check_syncookie_ipv6(Vm* vm, uint64_t iph, uint64_t th,
                                               uint64_t c, uint64_t d,
                                               uint64_t e) noexcept nogil:
    return raw_check_syncookie(vm, iph, th, True)


# --- socket local storage (net/core/bpf_sk_storage.c): an SK_STORAGE map holds one value
# per socket, found by the socket's cookie (maps.pxi).  Every modelled socket is a full
# socket, as sk_fullsock requires; skb->sk is the Environment's packet socket.

cdef MapStore* _storage_map(Vm* vm, uint64_t r1) noexcept nogil:
    # check_map_func_compatibility pairs these helpers with SK_STORAGE maps
    cdef MapStore* m = _map_arg(vm, r1)
    if m != NULL and m.type != BPF_MAP_TYPE_SK_STORAGE:
        helper_fault(vm, b"bpf_sk_storage_get/delete take a socket storage map")
        return NULL
    return m


cdef bint _storage_key(Vm* vm, uint64_t sk, uint64_t* cookie) noexcept nogil:
    cdef int k = sock_of(vm, sk)
    if k == -1 or k == REQ_SOCK or request_sock(vm, k):
        # bpf_sk_storage_get/delete: a request socket is no full socket (NULL, -EINVAL)
        return False
    cookie[0] = vm.skb.net.sk_cookie if k == PACKET_SOCK else vm.skb.net.socks[k].cookie
    return True


cdef uint64_t _sk_storage_get(Vm* vm, uint64_t r1, uint64_t sk, uint64_t value,
                              uint64_t flags, uint64_t e) noexcept nogil:
    """bpf_sk_storage_get: the socket's value; with BPF_SK_STORAGE_GET_F_CREATE a new
    one when it has none (``value``'s bytes, or zeros for NULL).  NULL for other flags,
    or when the map has no room left."""
    cdef MapStore* m = _storage_map(vm, r1)
    cdef uint64_t cookie
    cdef const uint8_t* init = NULL
    cdef int32_t elem
    cdef int rc = 0
    if m == NULL or not _storage_key(vm, sk, &cookie) or flags > BPF_SK_STORAGE_GET_F_CREATE:
        return 0
    elem = map_find(m, <const uint8_t*>&cookie)
    if elem != NO_ELEM:
        return <uintptr_t>map_value(m, elem, 0)
    if flags != BPF_SK_STORAGE_GET_F_CREATE:
        return 0
    if value:
        init = _mem(vm, value, m.value_size, ACCESS_READ)
        if init == NULL:
            return 0
    elem = _hash_update(m, <const uint8_t*>&cookie, BPF_NOEXIST, &rc)
    if elem == NO_ELEM:
        return 0
    if init != NULL:
        memcpy(map_value(m, elem, 0), init, m.value_size)
    return <uintptr_t>map_value(m, elem, 0)


cdef uint64_t _sk_storage_delete(Vm* vm, uint64_t r1, uint64_t sk, uint64_t c, uint64_t d,
                                 uint64_t e) noexcept nogil:
    """bpf_sk_storage_delete: 0, or -ENOENT when the socket has no value (-EINVAL for a
    request socket)."""
    cdef MapStore* m = _storage_map(vm, r1)
    cdef uint64_t cookie
    if m == NULL:
        return 0
    if not _storage_key(vm, sk, &cookie):
        return err(EINVAL) if vm.status == STATUS_RUNNING else 0
    return <uint64_t><int64_t>map_delete(m, <const uint8_t*>&cookie)


cdef uint64_t bpf_sk_storage_get(Vm* vm, uint64_t r1, uint64_t r2, uint64_t r3,
                                 uint64_t r4, uint64_t r5) noexcept nogil:
    return _locked(_sk_storage_get, r1, False, vm, r1, r2, r3, r4, r5)


cdef uint64_t bpf_sk_storage_delete(Vm* vm, uint64_t r1, uint64_t r2, uint64_t r3,
                                    uint64_t r4, uint64_t r5) noexcept nogil:
    return _locked(_sk_storage_delete, r1, False, vm, r1, r2, r3, r4, r5)


cdef uint64_t bpf_skb_under_cgroup(Vm* vm, uint64_t r1, uint64_t r2, uint64_t idx,
                                   uint64_t d, uint64_t e) noexcept nogil:
    """1 when the packet's socket is in the cgroup at ``idx`` of the CGROUP_ARRAY map or
    below it, 0 when not; -ENOENT without a socket, -E2BIG past the map's end, -EAGAIN
    for an empty slot."""
    cdef MapStore* m
    cdef const uint64_t* ids
    cdef uint64_t cgroup
    cdef int level, own
    if not is_ctx(vm, r1):
        return 0
    m = _map_arg(vm, r2)
    if m == NULL:
        return 0
    if m.type != BPF_MAP_TYPE_CGROUP_ARRAY:
        return helper_fault(vm, b"bpf_skb_under_cgroup takes a cgroup array")
    ids = sock_cgroups(vm, &own)      # skb_to_full_sk
    if ids == NULL:
        return err(ENOENT)
    if <uint32_t>idx >= m.max_entries:
        return err(E2BIG)
    memcpy(&cgroup, map_value(m, <int32_t><uint32_t>idx, 0), 8)
    if cgroup == 0:
        return err(EAGAIN)
    # cgroup_is_descendant: the cgroup is one of the socket cgroup's ancestors (or it)
    for level in range(own + 1):
        if ids[level] == cgroup:
            return 1
    return 0


cdef void register_sock_helpers(helper_fn* table) noexcept:
    table[33] = bpf_skb_under_cgroup
    table[107] = bpf_sk_storage_get
    table[108] = bpf_sk_storage_delete
    table[100] = bpf_tcp_check_syncookie
    table[110] = bpf_tcp_gen_syncookie
    table[84] = bpf_sk_lookup_tcp
    table[85] = bpf_sk_lookup_udp
    table[86] = bpf_sk_release
    table[95] = bpf_sk_fullsock
    table[96] = bpf_tcp_sock
    table[98] = bpf_get_listener_sock
    table[99] = bpf_skc_lookup_tcp
    table[124] = bpf_sk_assign
    table[136] = bpf_skc_to_tcp6_sock
    table[137] = bpf_skc_to_tcp_sock
    table[138] = bpf_skc_to_none
    table[139] = bpf_skc_to_tcp_request_sock
    table[140] = bpf_skc_to_udp6_sock
    table[178] = bpf_skc_to_none
    table[196] = bpf_skc_to_none
    table[204] = bpf_tcp_raw_gen_syncookie_ipv4
    table[205] = bpf_tcp_raw_gen_syncookie_ipv6
    table[206] = bpf_tcp_raw_check_syncookie_ipv4
    table[207] = bpf_tcp_raw_check_syncookie_ipv6
