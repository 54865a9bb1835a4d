"""AF_XDP sockets in XSKMAPs against the kernel, over their lives: a bound socket's
queue_id as a tc program reads it through the lookup's PTR_TO_XDP_SOCK, and a socket
leaving every XSKMAP it is in when it is released (xsk_release -> xsk_delete_from_maps),
which closing one of its fds while another is open is not.

Each side (pyebpf, the kernel) makes its own sockets and map and goes through the same
story (``ops``); the sockets are bound in copy mode (XDP_COPY) to a queue of a veth in
a namespace of the test's own.  AF_XDP sockets want CAP_NET_RAW (the ``net_raw``
fixture), binding them root: these are root tests."""
from __future__ import annotations

import contextlib
import ctypes
import errno
import mmap
import os
import socket
import struct

import pytest

import pyebpf
import pyebpf.kernel
from pyebpf import Map, asm, isa

from mapcheck import U32_OR_MINUS_1, lookup_key, outcome, u32
from netns import in_netns, veth_pair
from recorded_kernel import count_comparison

XSKMAP = isa.MapType.BPF_MAP_TYPE_XSKMAP
NOEXIST, EXIST = isa.BPF_NOEXIST, isa.BPF_EXIST
FRAME = bytes(range(64))
QUEUES = 4                      # the veth's RX queues: a socket binds to one of them

# linux/if_xdp.h
SOL_XDP = 283
XDP_RX_RING, XDP_UMEM_REG, XDP_UMEM_FILL_RING, XDP_UMEM_COMPLETION_RING = 2, 4, 5, 6
XDP_COPY = 1 << 1
FRAMES, FRAME_SIZE, RING = 16, 4096, 16


@pytest.fixture
def veth(net_raw):
    """(namespace, {side: ifindex}): a veth pair of QUEUES RX queues in a namespace of
    this test's own, one device for pyebpf's sockets and one for the kernel's (a queue
    a socket was bound to is busy a while after its release: xp_put_pool's work)."""
    with veth_pair("xsk", queues=QUEUES) as (name, inside, _):
        yield name, {side: int(inside("cat", f"/sys/class/net/{dev}/ifindex"))
                     for side, dev in (("pyebpf", "vtx"), ("kernel", "vrx"))}


def prepared_socket():
    """(an AF_XDP socket ready to bind, its UMEM's memory): xsk_bind wants a registered
    UMEM with fill and completion rings, and an RX ring."""
    sk = socket.socket(isa.AF_XDP, socket.SOCK_RAW)
    umem = mmap.mmap(-1, FRAMES * FRAME_SIZE)
    address = ctypes.addressof(ctypes.c_char.from_buffer(umem))
    sk.setsockopt(SOL_XDP, XDP_UMEM_REG,
                  struct.pack("<QQIIII", address, len(umem), FRAME_SIZE, 0, 0, 0))
    for ring in (XDP_UMEM_FILL_RING, XDP_UMEM_COMPLETION_RING, XDP_RX_RING):
        sk.setsockopt(SOL_XDP, ring, RING)
    return sk, umem


def bound_socket(ifindex: int, queue_id: int):
    """(an AF_XDP socket bound in copy mode to ``queue_id`` of the device ``ifindex`` of
    this thread's namespace, its UMEM's memory)."""
    sk, umem = prepared_socket()
    bind(sk, ifindex, queue_id)
    return sk, umem


def bind(sk, ifindex: int, queue_id: int) -> None:
    where = struct.pack("<HHIII", isa.AF_XDP, XDP_COPY, ifindex, queue_id, 0)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.bind(sk.fileno(), where, len(where)):
        err = ctypes.get_errno()
        sk.close()
        raise OSError(err, f"bind to queue {queue_id}: {os.strerror(err)}")


def story(ops, veth, side, new_map, queue_id_at) -> list:
    """What each of ``ops`` gave, on a map ``new_map()`` makes (a context manager):
    ("unbound", name) and ("bound", name, queue) make sockets in the veth's namespace
    (bound to the device of ``side``), ("prepared", name) one with its UMEM and rings
    that ("bind", name, queue) binds later;
    ("update", key, name[, flags]) the map's update with the socket's fd ("ok" or the
    errno); ("queue", key) a tc program's lookup of ``key``: the socket's
    queue_id, -1 for NULL (``queue_id_at(map, key)``); ("dup", name) opens a second fd
    on a socket, ("close", name) closes its first, ("close dup", name) its second."""
    namespace, devices = veth
    ifindex = devices[side]
    sockets, dups, keep, out = {}, {}, [], []
    with new_map() as m:
        try:
            for op, *args in ops:
                if op == "unbound":
                    sockets[args[0]] = in_netns(namespace,
                                                lambda: socket.socket(isa.AF_XDP, socket.SOCK_RAW))
                elif op == "bound":
                    sockets[args[0]], umem = in_netns(
                        namespace, lambda: bound_socket(ifindex, args[1]))
                    keep.append(umem)
                elif op == "prepared":
                    sockets[args[0]], umem = in_netns(namespace, prepared_socket)
                    keep.append(umem)
                elif op == "bind":
                    name, queue = args
                    in_netns(namespace, lambda: bind(sockets[name], ifindex, queue))
                elif op == "update":
                    key, name, *flags = args
                    out.append(outcome(m.update, u32(key), u32(sockets[name].fileno()), *flags))
                elif op == "queue":
                    out.append(queue_id_at(m, args[0]))
                elif op == "dup":
                    dups[args[0]] = os.dup(sockets[args[0]].fileno())
                elif op == "close":
                    sockets[args[0]].close()
                elif op == "close dup":
                    os.close(dups.pop(args[0]))
        finally:
            for sk in sockets.values():
                sk.close()
            for fd in dups.values():
                os.close(fd)
    return out


def _pyebpf_queue_id(m, key: int) -> int:
    prog = pyebpf.Program(asm.assemble(lookup_key(m.fd, key) + U32_OR_MINUS_1), "sched_cls")
    return prog.run(FRAME).retval


def _kernel_queue_id(m, key: int) -> int:
    with pyebpf.kernel.KernelProgram(asm.assemble(lookup_key(m.fd, key) + U32_OR_MINUS_1),
                                     "sched_cls") as prog:
        return prog.test_run(FRAME, ctx={}).retval_signed


def same_story(kernel_observation, veth, ops) -> list:
    """``ops`` told in pyebpf and in the kernel (4 slots): the same outcomes (one
    comparison); the kernel's."""
    mine = story(ops, veth, "pyebpf", lambda: contextlib.nullcontext(Map.create(XSKMAP, 4, 4, 4)),
                 _pyebpf_queue_id)
    theirs = kernel_observation(
        "XSKMAP story", repr(ops),
        lambda: {"outcomes": story(ops, veth, "kernel",
                                   lambda: pyebpf.kernel.KernelMap(XSKMAP, 4, 4, 4),
                                   _kernel_queue_id)})["outcomes"]
    count_comparison()
    differ = [(op, m, k) for op, m, k in zip([o for o in ops if o[0] in ("update", "queue")],
                                             mine, theirs) if m != k]
    assert not differ, f"(op, pyebpf, kernel): {differ}"
    return theirs


def test_a_bound_sockets_queue_id_reads_as_in_the_kernel(kernel_observation, veth):
    """xs->queue_id is the queue the socket was bound to; an unbound socket's is 0."""
    assert same_story(kernel_observation, veth, [
        ("bound", "q3", 3), ("bound", "q1", 1), ("unbound", "free"),
        ("update", 0, "q3"), ("update", 1, "q1"), ("update", 2, "free"),
        ("queue", 0), ("queue", 1), ("queue", 2), ("queue", 3)]) == ["ok"] * 3 + [3, 1, 0, -1]


def test_a_sockets_queue_id_is_read_again_after_its_bind_as_in_the_kernel(
        kernel_observation, veth):
    """The lookup points at xs->queue_id, which xsk_bind sets: a socket put in unbound
    reads 0, and the queue it is bound to afterwards, in every slot that holds it."""
    assert same_story(kernel_observation, veth, [
        ("prepared", "late"), ("update", 0, "late"), ("update", 1, "late"), ("queue", 0),
        ("bind", "late", 2), ("queue", 0), ("queue", 1)]) == ["ok", "ok", 0, 2, 2]


def test_a_bound_socket_goes_in_as_any_other_as_in_the_kernel(kernel_observation, veth):
    """xsk_map_update_elem asks nothing of the socket's state: a bound socket goes in
    several slots, and the flags answer for the slot as they do for an unbound one."""
    assert same_story(kernel_observation, veth, [
        ("bound", "q2", 2), ("unbound", "free"),
        ("update", 0, "q2", NOEXIST), ("update", 0, "q2", NOEXIST), ("update", 1, "q2", EXIST),
        ("update", 1, "q2"), ("update", 0, "free", NOEXIST), ("update", 0, "free", EXIST),
        ("queue", 0), ("queue", 1)]) == ["ok", "ok", errno.ENOENT, "ok", errno.EEXIST, "ok",
                                         0, 2]


def test_a_released_socket_leaves_every_xskmap_slot_as_in_the_kernel(kernel_observation, veth):
    """xsk_release -> xsk_delete_from_maps: every slot that held the socket is empty
    (a lookup is NULL, BPF_EXIST finds nothing, BPF_NOEXIST fills it); the other
    socket stays."""
    assert same_story(kernel_observation, veth, [
        ("bound", "q3", 3), ("unbound", "free"),
        ("update", 0, "q3"), ("update", 1, "q3"), ("update", 2, "free"), ("close", "q3"),
        ("queue", 0), ("queue", 1), ("queue", 2),
        ("update", 0, "free", EXIST), ("update", 1, "free", NOEXIST), ("queue", 1),
    ]) == [*["ok"] * 3, -1, -1, 0, errno.ENOENT, "ok", 0]


def test_a_socket_stays_while_another_fd_holds_it_as_in_the_kernel(kernel_observation, veth):
    """Closing one fd of two releases nothing; closing the last does."""
    assert same_story(kernel_observation, veth, [
        ("unbound", "free"), ("update", 0, "free"), ("dup", "free"), ("close", "free"),
        ("queue", 0), ("close dup", "free"), ("queue", 0)]) == ["ok", 0, -1]


def _presence_prog(fd) -> str:
    """r0 = 1 if slot 0 holds a socket, + 2 if slot 1 does."""
    return lookup_key(fd, 0) + """
        r6 = 0
        if r0 == 0 goto second
        r6 = 1
    second:""" + lookup_key(fd, 1) + """
        if r0 == 0 goto done
        r6 += 2
    done:
        r0 = r6
        exit"""


# frames in each run_many: several of its C batches (BATCH_CHUNK, 4096 runs each)
MANY = 3 * 4096 + 5


def test_run_many_drops_a_socket_released_before_it_and_not_one_released_after_it(
        kernel_observation, net_raw):
    """A socket released before a call is gone for every frame of a run_many; one
    released between two calls is there for every frame of the first and gone for every
    frame of the second.  pyebpf looks for released sockets once per entry from Python,
    not per lookup: this is what that has to keep.  The kernel's test runs, repeated
    as many times, return the same."""
    def story_of(m, many):
        a, b = (socket.socket(isa.AF_XDP, socket.SOCK_RAW) for _ in range(2))
        try:
            for key, sk in enumerate((a, b)):
                m.update(u32(key), u32(sk.fileno()))
            a.close()
            first = many()
            b.close()
            return [first, many()]
        finally:
            a.close()
            b.close()

    def pyebpf_story():
        m = Map.create(XSKMAP, 4, 4, 4)
        prog = pyebpf.Program(asm.assemble(_presence_prog(m.fd)), "sched_cls")
        return story_of(m, lambda: sorted(set(prog.run_many([FRAME] * MANY).retval)))

    def kernel_story():
        with pyebpf.kernel.KernelMap(XSKMAP, 4, 4, 4) as m, \
                pyebpf.kernel.KernelProgram(asm.assemble(_presence_prog(m.fd)),
                                            "sched_cls") as prog:
            return story_of(m, lambda: [prog.test_run(FRAME, ctx={}, repeat=MANY).retval])

    mine = pyebpf_story()
    theirs = kernel_observation("XSKMAP release around run_many", repr(MANY),
                                lambda: {"retvals": kernel_story()})["retvals"]
    count_comparison()
    assert mine == theirs == [[2], [0]], f"pyebpf {mine}, kernel {theirs}"
