# XDP redirect maps (kernel/bpf/devmap.c, kernel/bpf/cpumap.c, net/xdp/xskmap.c) and
# cgroup storage (kernel/bpf/local_storage.c): their user-space commands.  Included into
# pyebpf/_core.pyx.  pyebpf creates them so that objects holding them load beside their
# tc programs; of these a tc program may only look up a devmap or an XSKMAP
# (map_helpers.pxi).
#
# A DEVMAP slot and a DEVMAP_HASH element hold 8 bytes, struct bpf_devmap_val: the
# device's ifindex and its XDP program's id; a CPUMAP slot struct bpf_cpumap_val: the
# queue size and the program's id.  ifindex (qsize) 0 is an empty slot.  pyebpf has no
# XDP programs: a program fd is refused, and every id is 0.  An XSKMAP slot holds an
# AF_XDP socket of this process as {queue_id, its inode} (inode 0: empty): a program's
# lookup points at its queue_id (struct bpf_xdp_sock, the PTR_TO_XDP_SOCK the verifier
# lets it read): 0 for an unbound socket, a bound one's as the kernel tells it.  A
# socket's release empties its slots (held_sockets.pxi).  Cgroup storage exists per attached cgroup, and pyebpf attaches no program
# to a cgroup: it stays empty.  Pinned (pin format 8), each keeps its slots: ifindexes,
# queue sizes, sockets (pyebpf.pinning).

cdef enum:
    # the types of this file as bits, so that the map helpers' check of their map
    # argument tests them in one instruction (map types are below 32)
    XDP_MAP_BITS = ((1 << BPF_MAP_TYPE_DEVMAP) | (1 << BPF_MAP_TYPE_DEVMAP_HASH)
                    | (1 << BPF_MAP_TYPE_CPUMAP) | (1 << BPF_MAP_TYPE_XSKMAP))
    XDP_AND_CGROUP_STORAGE_BITS = (XDP_MAP_BITS | (1 << BPF_MAP_TYPE_CGROUP_STORAGE)
                                   | (1 << BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE))


cdef inline bint _is_xdp_map(MapStore* m) noexcept nogil:
    return (<uint64_t>1 << m.type) & XDP_MAP_BITS != 0


cdef inline bint _is_cgroup_storage(MapStore* m) noexcept nogil:
    return (m.type == BPF_MAP_TYPE_CGROUP_STORAGE
            or m.type == BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE)


cdef inline int32_t _xdp_prog_fd(MapStore* m, const uint8_t* value) noexcept nogil:
    # the value's bpf_prog.fd (signed), when the map's values have one
    cdef int32_t fd = 0
    if m.value_size == 8:
        memcpy(&fd, value + 4, 4)
    return fd


cdef int dev_map_update(MapStore* m, const uint8_t* key, const uint8_t* value,
                        uint64_t flags, object env):
    """__dev_map_update_elem and __dev_map_hash_update_elem, in the network namespace
    ``env`` (a pyebpf.Environment): 0 or a negative errno."""
    cdef uint32_t ifindex = _le32(value)
    cdef uint32_t slot[2]
    cdef int32_t fd = _xdp_prog_fd(m, value), e = NO_ELEM, prev = NO_ELEM
    cdef int rc = 0
    cdef bint hashed = m.type == BPF_MAP_TYPE_DEVMAP_HASH
    if hashed:
        if flags > BPF_EXIST or ifindex == 0:
            return -EINVAL
        # no ENOENT for BPF_EXIST: the kernel only refuses BPF_NOEXIST of a present key
        e = _hash_find(m, key, &prev)
        if e != NO_ELEM and flags & BPF_NOEXIST:
            return -EEXIST
    else:
        if flags > BPF_EXIST:
            return -EINVAL
        if _le32(key) >= m.max_entries:
            return -E2BIG
        if flags == BPF_NOEXIST:
            return -EEXIST
        e = <int32_t>_le32(key)
        if ifindex == 0:
            # an empty slot, which cannot name a program
            if fd > 0:
                return -EINVAL
            memset(map_value(m, e, 0), 0, 8)
            return 0
    # __dev_map_alloc_node: dev_get_by_index in the caller's namespace, and a program
    # fd must name an XDP program attached as BPF_XDP_DEVMAP: all EINVAL
    if env.device(ifindex) is None or fd > 0:
        return -EINVAL
    if hashed:
        if e != NO_ELEM:
            # the new node replaces the old at its bucket's head
            _hash_unlink(m, e, prev)
            _hash_link(m, e)
        else:
            e = _hash_update(m, key, BPF_NOEXIST, &rc)
            if e == NO_ELEM:
                return rc
    slot[0] = ifindex
    slot[1] = 0
    memcpy(map_value(m, e, 0), slot, 8)
    return 0


cdef int cpu_map_update(MapStore* m, const uint8_t* key, const uint8_t* value,
                        uint64_t flags) noexcept nogil:
    """cpu_map_update_elem: 0 or a negative errno; the CPUs are the modelled ones."""
    cdef uint32_t cpu = _le32(key), qsize = _le32(value)
    cdef uint32_t slot[2]
    if flags > BPF_EXIST:
        return -EINVAL
    if cpu >= m.max_entries:
        return -E2BIG
    if flags == BPF_NOEXIST:
        return -EEXIST
    if qsize > CPU_MAP_MAX_QSIZE:
        return -EOVERFLOW
    if cpu >= m.lru_ncpu:
        return -ENODEV          # not a possible CPU
    if qsize and _xdp_prog_fd(m, value) > 0:
        # __cpu_map_entry_alloc: a program it cannot take (pyebpf has no XDP programs)
        # fails the entry, which the kernel reports as ENOMEM
        return -ENOMEM
    slot[0] = qsize
    slot[1] = 0
    memcpy(map_value(m, <int32_t>cpu, 0), slot, 8)
    return 0


cdef int xdp_map_delete(MapStore* m, const uint8_t* key) noexcept nogil:
    """dev_map_delete_elem, cpu_map_delete_elem, xsk_map_delete_elem: EINVAL past the
    end, else the slot emptied (0 if empty already); DEVMAP_HASH: a hash's delete."""
    if m.type == BPF_MAP_TYPE_DEVMAP_HASH:
        return map_delete(m, key)
    if _le32(key) >= m.max_entries:
        return -EINVAL
    memset(map_value(m, <int32_t>_le32(key), 0), 0, 8)
    return 0


cdef inline uint8_t* xdp_map_lookup(MapStore* m, const uint8_t* key) noexcept nogil:
    """dev_map_lookup_elem, dev_map_hash_lookup_elem, cpu_map_lookup_elem,
    xsk_map_lookup_elem: the slot's value, NULL when there is none."""
    cdef int32_t e = map_find(m, key)
    # the slot's ifindex, qsize or (XSKMAP) socket's inode: 0 for none
    cdef uint32_t used = 4 if m.type == BPF_MAP_TYPE_XSKMAP else 0
    if e == NO_ELEM or (m.type != BPF_MAP_TYPE_DEVMAP_HASH and _le32(map_value(m, e, 0) + used) == 0):
        return NULL
    return map_value(m, e, 0)


cdef int xsk_map_update(MapStore* m, const uint8_t* key, uint32_t fd, uint64_t flags):
    """xsk_map_update_elem with the socket fd ``fd`` of this process: 0 or a negative
    errno.  sockfd_lookup's EBADF (none open) or ENOTSOCK, EOPNOTSUPP for a socket not
    AF_XDP; the same socket again is no change, else the flags' EEXIST and ENOENT.  A
    bound socket's queue (its bind's, xs->queue_id) is the kernel's to tell
    (_xsk_queue_id); where it cannot, ENOTSUPP, pyebpf's own.  The socket is watched
    for its release (held_sockets.pxi)."""
    import errno as _errno
    import os as _os
    import socket as _socket
    import stat as _stat
    cdef uint32_t slot[2]
    cdef uint8_t* value
    cdef int rc
    cdef int64_t queue_id = 0
    if flags > BPF_EXIST:
        return -EINVAL
    if _le32(key) >= m.max_entries:
        return -E2BIG
    try:
        st = _os.fstat(<int>fd)
    except (OSError, OverflowError):
        return -EBADF
    if not _stat.S_ISSOCK(st.st_mode):
        return -ENOTSOCK
    with _socket_of(<int>fd) as sk:
        if sk.family != AF_XDP:
            return -EOPNOTSUPP
        try:
            # xsk_recvmsg: ENXIO from a socket not bound (xsk_check_common), which
            # reads nothing; a bound one may answer anything else
            sk.recv(1, _socket.MSG_DONTWAIT)
            bound = True
        except OSError as exc:
            bound = exc.errno != _errno.ENXIO
    drop_released(m)
    value = map_value(m, <int32_t>_le32(key), 0)
    if _le32(value + 4) == <uint32_t>st.st_ino:
        return 0
    if flags == BPF_NOEXIST and _le32(value + 4):
        return -EEXIST
    if flags == BPF_EXIST and not _le32(value + 4):
        return -ENOENT
    if bound:
        queue_id = _xsk_queue_id(<int>fd)
        if queue_id < 0:
            return -ENOTSUPP
    rc = hold_socket(<int>fd, HELD_XSK | <uint32_t>st.st_ino)
    if rc:
        return rc
    xsk_put_in(<uint32_t>st.st_ino, bound)
    slot[0] = <uint32_t>queue_id
    slot[1] = <uint32_t>st.st_ino
    memcpy(value, slot, 8)
    return 0


_XSK_QUEUE_PROG = """
    *(u32 *)(r10 - 4) = 0
    r1 = map_fd({fd}) ll
    r2 = r10
    r2 += -4
    call 1
    if r0 == 0 goto none
    r0 = *(u32 *)(r0 + 0)
    exit
none:
    r0 = -1
    exit"""


def _xsk_queue_id(int fd):
    """The queue a bound AF_XDP socket ``fd`` was bound to (xs->queue_id), which only
    the kernel tells (without CONFIG_XDP_SOCKETS_DIAG, as here, no socket interface
    does): its own one-slot XSKMAP holding the socket, read by a tc program through
    struct bpf_xdp_sock, as a pyebpf program's lookup reads it.  -1 where the kernel
    does not answer (no CAP_BPF and CAP_NET_ADMIN)."""
    import os as _os
    from .asm import assemble
    from .kernel.sysbpf import Syscalls
    calls = Syscalls()
    map_fd, _ = calls.map_create(BPF_MAP_TYPE_XSKMAP, 4, 4, 1, 0, 0, b"pyebpf_xsk")
    if map_fd < 0:
        return -1
    try:
        if calls.map_elem(_isa.BpfCmd.BPF_MAP_UPDATE_ELEM, map_fd, bytes(4),
                          fd.to_bytes(4, "little"), 0, 0)[0]:
            return -1
        try:
            prog_fd, _, _ = calls.prog_load(_isa.ProgType.BPF_PROG_TYPE_SCHED_CLS,
                                            assemble(_XSK_QUEUE_PROG.format(fd=map_fd)),
                                            b"GPL", 0)
            if prog_fd < 0:
                return -1
            try:
                run = calls.prog_test_run(prog_fd, bytes(64), None, 0, 0, 1, 0)
            finally:
                _os.close(prog_fd)
        finally:
            # the slot's node holds the map until the socket's release: emptied, the
            # map goes with its fd
            calls.map_elem(_isa.BpfCmd.BPF_MAP_DELETE_ELEM, map_fd, bytes(4), None, 0, 0)
    finally:
        _os.close(map_fd)
    return -1 if run.err else <int32_t>run.retval


cdef int cgroup_storage_update(MapStore* m, uint64_t flags, bint has_lock) noexcept nogil:
    """cgroup_storage_update_elem, bpf_percpu_cgroup_storage_update: the flags are
    checked, then no storage is found (nothing is attached)."""
    if m.type == BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE:
        if flags != BPF_ANY and flags != BPF_EXIST:
            return -EINVAL
    elif flags & ~(<uint64_t>(BPF_F_LOCK | BPF_EXIST)) or (flags & BPF_F_LOCK and not has_lock):
        return -EINVAL
    return -ENOENT
