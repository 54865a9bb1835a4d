# Socket maps (BPF_MAP_TYPE_SOCKMAP, BPF_MAP_TYPE_SOCKHASH; net/core/sock_map.c) on map
# storage (maps.pxi).  A slot's 8 bytes hold the cookie of the socket put there, 0 for
# none: a sockmap is an array of max_entries slots, a sockhash a hash map of its keys.
# User space puts sockets in by cookie (Map.update: an int, or an Environment Socket
# naming its cookie; the kernel takes the socket's fd) and reads the cookie back, as
# sock_map_lookup_sys does.  Programs look a socket up as a referenced pointer to the
# socket of the run's Environment with that cookie (NULL when the world has none), and
# put in sockets the lookups gave them.  Included into pyebpf/_core.pyx.
#
# A REUSEPORT_SOCKARRAY (kernel/bpf/reuseport_array.c) is an array of such slots too,
# but user space puts sockets in by fd, as the kernel takes them: the socket, open in
# this process, must be a TCP listener or a bound UDP socket with SO_REUSEPORT; it is
# kept as its cookie (SO_COOKIE), which a lookup gives back.  Only sk_reuseport
# programs use these maps (bpf_sk_select_reuseport), which pyebpf does not run.  The
# kernel drops a socket from its array when the socket is unhashed (released, or a TCP
# listener shut down); so does pyebpf (held_sockets.pxi).


cdef inline uint64_t sock_map_slot(MapStore* m, int32_t e) noexcept nogil:
    cdef uint64_t cookie
    memcpy(&cookie, map_value(m, e, 0), 8)
    return cookie


cdef int sock_map_update(MapStore* m, const uint8_t* key, uint64_t cookie,
                         uint64_t flags) noexcept nogil:
    """sock_map_update_common / sock_hash_update_common: the socket of ``cookie`` under
    ``key``; 0 or a negative errno."""
    cdef int32_t e
    cdef int rc = 0
    if flags > BPF_EXIST:
        return -EINVAL
    if m.type == BPF_MAP_TYPE_SOCKMAP:
        e = map_find(m, key)
        if e == NO_ELEM:
            return -E2BIG
        if flags == BPF_NOEXIST and sock_map_slot(m, e):
            return -EEXIST
        if flags == BPF_EXIST and not sock_map_slot(m, e):
            return -ENOENT
    else:
        e = _hash_update(m, key, flags, &rc)
        if e == NO_ELEM:
            return rc
    memcpy(map_value(m, e, 0), &cookie, 8)
    return 0


cdef int sock_map_delete(MapStore* m, const uint8_t* key) noexcept nogil:
    """sock_map_delete_elem: EINVAL past the end and for an empty slot (a sockhash's
    delete is the hash map's: ENOENT for a missing key)."""
    cdef int32_t e = map_find(m, key)
    if e == NO_ELEM or not sock_map_slot(m, e):
        return -EINVAL
    memset(map_value(m, e, 0), 0, 8)
    return 0


cdef uint64_t sock_map_lookup(Vm* vm, MapStore* m, const uint8_t* key) noexcept nogil:
    """sock_map_lookup / sock_hash_lookup: the socket, which the program must release
    (bpf_sk_release), or NULL."""
    cdef int32_t e = map_find(m, key)
    cdef uint64_t cookie
    cdef size_t k
    if e == NO_ELEM or vm.skb == NULL:
        return 0
    cookie = sock_map_slot(m, e)
    if cookie == 0:
        return 0
    for k in range(vm.skb.net.nsocks):
        if vm.skb.net.socks[k].cookie == cookie:
            return sock_ptr(vm, k, False)
    return 0


cdef uint64_t sock_map_update_prog(Vm* vm, MapStore* m, const uint8_t* key, uint64_t sk,
                                   uint64_t flags) noexcept nogil:
    """bpf_map_update_elem on a socket map (sock_map_update_elem): ``sk`` is a socket
    pointer the verifier let through."""
    cdef int k
    if vm.skb == NULL:
        return helper_fault(vm, b"a socket map takes sockets only in socket and tc programs")
    k = sock_of(vm, sk)
    if k == -1:
        return 0
    if k == PACKET_SOCK or k == REQ_SOCK or request_sock(vm, k):
        # test_run's socket (bpf_dummy_proto) has no psock_update_sk_prot:
        # sock_map_sk_is_suitable refuses it, and a request socket is no full socket
        return err(EOPNOTSUPP)
    # every modelled socket is one sock_map_sk_state_allowed takes: TCP established or
    # listening, UDP bound
    return <uint64_t><int64_t>sock_map_update(m, key, vm.skb.net.socks[k].cookie, flags)


def _socket_cookie_of(value, str label):
    """The cookie Map.update puts in a socket map: an int, or a Socket naming its own."""
    from .environment import PacketSocket, Socket
    if isinstance(value, PacketSocket):
        raise MapError(EOPNOTSUPP, f"map {label}: the packet's socket (test_run's) cannot "
                                   "go in a socket map")
    if isinstance(value, Socket):
        if not value.cookie:
            raise ValueError(f"map {label}: the socket names no cookie (give it "
                             "cookie=Environment.socket_cookie(k))")
        return value.cookie
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 1 << 64:
        raise ValueError(f"map {label}: a socket map holds sockets by cookie (an int, or "
                         f"a Socket with its cookie), not {value!r}")
    return value


cdef int reuseport_array_delete(MapStore* m, const uint8_t* key) noexcept nogil:
    """reuseport_array_delete_elem: E2BIG past the end, ENOENT for an empty slot."""
    cdef int32_t e = map_find(m, key)
    if e == NO_ELEM:
        return -E2BIG
    if not sock_map_slot(m, e):
        return -ENOENT
    memset(map_value(m, e, 0), 0, 8)
    return 0


def _socket_of(int fd):
    """A socket object on a duplicate of the socket ``fd``, with its own family, type
    and protocol (SO_DOMAIN, SO_TYPE, SO_PROTOCOL): Python's detection asks getsockname
    too, which AF_XDP sockets do not answer."""
    import os as _os
    import socket as _socket
    with _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM, 0, _os.dup(fd)) as probe:
        kind = [probe.getsockopt(_socket.SOL_SOCKET, opt) for opt in
                (_socket.SO_DOMAIN, _socket.SO_TYPE, _socket.SO_PROTOCOL)]
    return _socket.socket(*kind, _os.dup(fd))


def _reuseport_socket(int fd, bint occupied, uint64_t flags):
    """bpf_fd_reuseport_array_update_elem's look at the socket ``fd`` of this process,
    for a slot ``occupied`` or not: (0, its cookie, its held_sockets key) or (negative
    errno, 0, 0), the checks
    in the kernel's order (sockfd_lookup, reuseport_array_update_check).  The socket
    being in a pyebpf array already (the kernel's sk_user_data: EBUSY) is the caller's
    to check."""
    import os as _os
    import socket as _socket
    import stat as _stat
    try:
        if not _stat.S_ISSOCK(_os.fstat(fd).st_mode):
            return -ENOTSOCK, 0, 0
    except OSError:
        return -EBADF, 0, 0
    if occupied and flags == BPF_NOEXIST:
        return -EEXIST, 0, 0
    if not occupied and flags == BPF_EXIST:
        return -ENOENT, 0, 0
    with _socket_of(fd) as sk:
        if (sk.proto not in (_socket.IPPROTO_TCP, _socket.IPPROTO_UDP)
                or sk.family not in (_socket.AF_INET, _socket.AF_INET6)
                or sk.type not in (_socket.SOCK_STREAM, _socket.SOCK_DGRAM)):
            return -ENOTSUPP, 0, 0
        # sk_hashed and sk_reuseport_cb: a TCP socket gets both when it listens with
        # SO_REUSEPORT (__inet_hash), a UDP socket when it binds with it (udp_lib_get_port)
        if sk.type == _socket.SOCK_STREAM:
            hashed = sk.getsockopt(_socket.SOL_SOCKET, _socket.SO_ACCEPTCONN)
        else:
            hashed = sk.getsockname()[1] != 0
        if not hashed or not sk.getsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEPORT):
            return -EINVAL, 0, 0
        cookie = int.from_bytes(sk.getsockopt(_socket.SOL_SOCKET, _isa.SO_COOKIE, 8), "little")
        # a TCP listener is unhashed by its shutdown too (tcp_disconnect), seen as EPOLLHUP
        return 0, cookie, cookie | (HELD_TCP_LISTENER if sk.type == _socket.SOCK_STREAM else 0)
