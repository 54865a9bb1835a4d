# The real sockets XSKMAPs and reuseport arrays hold, watched for their release.
# Included into pyebpf/_core.pyx.
#
# The kernel drops an AF_XDP socket from every XSKMAP it is in when the socket is
# released (xsk_release -> xsk_delete_from_maps), and a reuseport socket from its array
# when it is unhashed (bpf_sk_reuseport_detach): on its release, or when a TCP listener
# is shut down.  pyebpf keeps no reference to these sockets (one would keep them open,
# and the kernel's maps with them): it registers each in an epoll instance of its own,
# which drops the registration when the socket is released (eventpoll_release), and
# reads the registrations back from /proc/self/fdinfo.  A registration's data is the
# slot's key for the socket (an XSKMAP's inode, a reuseport array's cookie); a TCP
# listener's is marked, and its EPOLLHUP (tcp_poll: TCP_CLOSE) is its unhashing.  Only
# the sockets this process put in are watched: a slot another process filled (a pinned
# map's) is kept.  Only user code releases a socket, and it runs between entries from
# Python (a run, each C batch of run_many, a replay, a timer firing) or in a Python
# helper: a program's XSKMAP lookup reads the registrations at most once per entry
# (drop_released_once), not per packet.
#
# An AF_XDP socket put in an XSKMAP before its bind reads queue 0, and the kernel's
# lookup reads xs->queue_id each time, so a later bind shows.  Such sockets are
# remembered by inode (_XSK_UNBOUND); at each entry from Python, while there are any,
# each is found again through its registration's fd and, once bound, its queue is read
# (_xsk_rebind) and kept (_xsk_rebound), and drop_released puts it in every slot that
# holds the socket.

from posix.fcntl cimport O_RDONLY, open as c_open
from posix.unistd cimport close as c_close, read as c_read
from libc.stdio cimport snprintf
from libc.stdlib cimport strtoull as c_strtoull
from libc.string cimport strstr
from libc.errno cimport errno

cdef extern from "sys/epoll.h" nogil:
    ctypedef union epoll_data_t:
        uint64_t u64
    struct epoll_event:
        uint32_t events
        epoll_data_t data
    int epoll_create1(int flags)
    int epoll_ctl(int epfd, int op, int fd, epoll_event* event)
    int epoll_wait(int epfd, epoll_event* events, int maxevents, int timeout)
    enum:
        EPOLL_CLOEXEC
        EPOLL_CTL_ADD
        EPOLL_CTL_MOD
        EPOLLHUP

cdef enum:
    HELD_MAX = 4096             # registrations read back at once
    HELD_READ = 256 * 1024      # the fdinfo text that holds them (about 80 bytes each)

# the data's top bits: which map kind's key it is, and a TCP listener's mark
cdef uint64_t HELD_XSK = <uint64_t>1 << 62
cdef uint64_t HELD_TCP_LISTENER = <uint64_t>1 << 63

cdef int _held_epfd = -1
cdef size_t _xsk_unbound = 0        # len(_XSK_UNBOUND): checked at each entry
cdef uint64_t* _xsk_rebound = NULL  # inode << 32 | queue of the sockets bound since
cdef size_t _xsk_nrebound = 0, _xsk_rebound_room = 0
_XSK_UNBOUND = set()                # inodes of the sockets put in unbound, not seen bound
cdef uint64_t _held_entry = 1       # bumped on each entry from Python (MapStore.held_entry)
cdef uint64_t* _held_ever = NULL    # every key registered, marks cleared
cdef size_t _held_count = 0, _held_room = 0


cdef int hold_socket(int fd, uint64_t key) noexcept nogil:
    """Watch the socket ``fd`` for its release under ``key``: 0 or a negative errno."""
    global _held_epfd, _held_ever, _held_count, _held_room
    cdef epoll_event ev
    cdef uint64_t* grown
    if _held_epfd < 0:
        _held_epfd = epoll_create1(EPOLL_CLOEXEC)
        if _held_epfd < 0:
            return -errno
    if not _was_held(key & ~HELD_TCP_LISTENER):
        if _held_count == _held_room:
            grown = <uint64_t*>realloc(_held_ever, (2 * _held_room + 16) * sizeof(uint64_t))
            if grown == NULL:
                return -ENOMEM
            _held_ever, _held_room = grown, 2 * _held_room + 16
        _held_ever[_held_count] = key & ~HELD_TCP_LISTENER
        _held_count += 1
    ev.events = 0               # EPOLLHUP is reported whatever the events asked
    ev.data.u64 = key
    if epoll_ctl(_held_epfd, EPOLL_CTL_ADD, fd, &ev) == 0:
        return 0
    # the same file at the same fd, registered before: its key again
    if errno == EEXIST and epoll_ctl(_held_epfd, EPOLL_CTL_MOD, fd, &ev) == 0:
        return 0
    return -errno


cdef bint _was_held(uint64_t key) noexcept nogil:
    cdef size_t i
    for i in range(_held_count):
        if _held_ever[i] == key:
            return True
    return False


cdef int _held_keys(uint64_t* keys) noexcept nogil:
    """The keys of the sockets still held (neither released nor, for a TCP listener,
    unhashed), marks cleared: how many, or -1 when they cannot be read whole (then
    nothing is dropped)."""
    cdef char path[64]
    cdef char* text
    cdef char* at
    cdef ssize_t got, size = 0
    cdef int fd, n = 0, hups, i, j
    cdef epoll_event events[64]
    snprintf(path, sizeof(path), b"/proc/self/fdinfo/%d", _held_epfd)
    fd = c_open(path, O_RDONLY)
    if fd < 0:
        return -1
    text = <char*>malloc(HELD_READ + 1)
    if text == NULL:
        c_close(fd)
        return -1
    while size < HELD_READ:
        got = c_read(fd, text + size, HELD_READ - size)
        if got <= 0:
            break
        size += got
    c_close(fd)
    text[size] = 0
    at = strstr(text, b"data:") if size < HELD_READ else NULL
    while at != NULL and n < HELD_MAX:
        keys[n] = c_strtoull(at + 5, &at, 16)
        n += 1
        at = strstr(at, b"data:")
    free(text)
    if size == HELD_READ or at != NULL:
        return -1
    hups = epoll_wait(_held_epfd, events, 64, 0)
    for i in range(hups if hups > 0 else 0):
        if events[i].events & EPOLLHUP and events[i].data.u64 & HELD_TCP_LISTENER:
            for j in range(n):
                if keys[j] == events[i].data.u64:
                    keys[j] = 0
    for j in range(n):
        keys[j] &= ~HELD_TCP_LISTENER
    return n


cdef void held_sockets_entry() noexcept:
    """Entered from Python, where user code may have released a socket, or bound one
    put in an XSKMAP unbound: the next drop_released_once of each map looks again."""
    global _held_entry
    _held_entry += 1
    if _xsk_unbound:
        try:
            _xsk_rebind()
        except OSError:
            pass                # the registrations cannot be read: the queues stay


cdef int xsk_put_in(uint32_t ino, bint bound) except -1:
    """The socket of inode ``ino`` goes in an XSKMAP, ``bound`` or not: its queue is
    the update's; unbound, it is watched for its bind."""
    global _xsk_unbound
    cdef size_t i
    for i in range(_xsk_nrebound):
        if _xsk_rebound[i] >> 32 == ino:
            _xsk_rebound[i] = 0
    if bound:
        _XSK_UNBOUND.discard(ino)
    else:
        _XSK_UNBOUND.add(ino)
    _xsk_unbound = len(_XSK_UNBOUND)
    return 0


def _xsk_rebind():
    """Read the queue of each socket of _XSK_UNBOUND bound since: its fd is the one its
    registration names (/proc/self/fdinfo of the epoll instance: "tfd: FD events: E
    data: KEY ...") when that fd is still the socket; a socket no longer registered is
    released and forgotten."""
    global _xsk_unbound, _xsk_rebound, _xsk_nrebound, _xsk_rebound_room
    import errno as _errno
    import os as _os
    import socket as _socket
    cdef uint64_t* grown
    fds = {}
    with open(f"/proc/self/fdinfo/{_held_epfd}") as f:
        for line in f:
            parts = line.split()
            if len(parts) > 5 and parts[0] == "tfd:" and parts[4] == "data:":
                fds[int(parts[5], 16)] = int(parts[1])
    for ino in list(_XSK_UNBOUND):
        fd = fds.get(HELD_XSK | ino)
        if fd is None:
            _XSK_UNBOUND.discard(ino)
            continue
        try:
            if _os.fstat(fd).st_ino != ino:
                continue        # the fd is another file now: the socket is out of reach
        except OSError:
            continue
        with _socket_of(fd) as sk:
            try:
                sk.recv(1, _socket.MSG_DONTWAIT)        # ENXIO: not bound (xsk_update)
            except OSError as exc:
                if exc.errno == _errno.ENXIO:
                    continue
        queue = _xsk_queue_id(fd)
        if queue < 0:
            continue
        if _xsk_nrebound == _xsk_rebound_room:
            grown = <uint64_t*>realloc(_xsk_rebound,
                                       (2 * _xsk_rebound_room + 8) * sizeof(uint64_t))
            if grown == NULL:
                raise MemoryError()
            _xsk_rebound, _xsk_rebound_room = grown, 2 * _xsk_rebound_room + 8
        _xsk_rebound[_xsk_nrebound] = <uint64_t>ino << 32 | <uint32_t>queue
        _xsk_nrebound += 1
        _XSK_UNBOUND.discard(ino)
    _xsk_unbound = len(_XSK_UNBOUND)


cdef inline void drop_released_once(MapStore* m) noexcept nogil:
    """drop_released for a program's lookup: once per entry from Python."""
    if m.held_entry != _held_entry:
        m.held_entry = _held_entry
        drop_released(m)


cdef void drop_released(MapStore* m) noexcept nogil:
    """Empty the slots of the XSKMAP or reuseport array ``m`` whose socket, put in by
    this process, is gone."""
    cdef uint64_t* keys
    cdef uint64_t key
    cdef uint32_t e, queue
    cdef int n, j
    cdef uint8_t* slot
    cdef bint xsk = m.type == BPF_MAP_TYPE_XSKMAP
    if _held_epfd < 0:
        return
    keys = <uint64_t*>malloc(HELD_MAX * sizeof(uint64_t))
    if keys == NULL:
        return
    n = _held_keys(keys)
    for e in range(m.max_entries if n >= 0 else 0):
        slot = map_value(m, <int32_t>e, 0)
        if xsk:
            key = _le32(slot + 4)
            key = HELD_XSK | key if key else 0
        else:
            memcpy(&key, slot, 8)
        if key == 0 or not _was_held(key):
            continue
        for j in range(n):
            if keys[j] == key:
                break
        else:
            memset(slot, 0, 8)
            continue
        if xsk:
            for j in range(<int>_xsk_nrebound):
                if _xsk_rebound[j] >> 32 == _le32(slot + 4):
                    queue = <uint32_t>_xsk_rebound[j]
                    memcpy(slot, &queue, 4)
    free(keys)
