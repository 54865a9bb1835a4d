"""REUSEPORT_SOCKARRAY maps against the kernel: the maps BPF_MAP_CREATE makes and
refuses, user space putting sockets in by fd (which sockets the kernel takes, and its
errnos), lookups giving the socket's cookie, and what a tc program may do with one
(nothing: only sk_reuseport programs' bpf_sk_select_reuseport takes it).

The sockets sit at fixed fds (the kernel's recorded answers are keyed by the values,
which hold the fds); their cookies differ from run to run, so a lookup's cookie is
compared as the fd of the socket it names."""
from __future__ import annotations

import contextlib
import errno
import os
import socket
import struct

import pytest

import pyebpf
import pyebpf.kernel
from pyebpf import Map, isa

from bpfc import compile_object
from mapcheck import created, lookup_prog, outcome, refused_alike, u32
from recorded_kernel import count_comparison

REUSEPORT = isa.MapType.BPF_MAP_TYPE_REUSEPORT_SOCKARRAY
RDONLY, WRONLY = isa.BPF_F_RDONLY, isa.BPF_F_WRONLY
RDONLY_PROG, WRONLY_PROG = isa.BPF_F_RDONLY_PROG, isa.BPF_F_WRONLY_PROG
ANY, NOEXIST, EXIST = isa.BPF_ANY, isa.BPF_NOEXIST, isa.BPF_EXIST
FIRST_FD = 1000


def u64(v):
    return struct.pack("<Q", v)


@pytest.mark.parametrize("sizes", [
    (4, 8, 1, 0), (4, 4, 4, 0), (4, 16, 4, 0), (4, 0, 4, 0), (8, 8, 4, 0), (4, 8, 0, 0),
    (4, 8, 4, RDONLY), (4, 8, 4, WRONLY), (4, 8, 4, RDONLY_PROG),
    (4, 8, 4, RDONLY_PROG | WRONLY_PROG), (4, 8, 4, isa.BPF_F_NUMA_NODE),
    (4, 8, 4, isa.BPF_F_NO_PREALLOC), (4, 8, 4, isa.BPF_F_MMAPABLE),
    (4, 8, 4, isa.BPF_F_INNER_MAP), (4, 8, 4, isa.BPF_F_ZERO_SEED),
], ids=lambda a: f"k{a[0]}-v{a[1]}-n{a[2]}-f{a[3]:#x}")
def test_creation_succeeds_and_fails_as_the_kernels(kernel_oracle, sizes):
    """reuseport_array_alloc_check: a 4- or 8-byte value (a socket's fd; read back, its
    cookie), then array_map_alloc_check's key, max_entries and flags."""
    count_comparison()
    assert created(Map.create, REUSEPORT, *sizes) == \
        created(kernel_oracle.KernelMap, REUSEPORT, *sizes)


@pytest.fixture
def sockets(tmp_path):
    """Sockets (and a file) at fixed fds from FIRST_FD on, named: {name: fd}."""
    def udp(family=socket.AF_INET, reuse=True, bind=True):
        s = socket.socket(family, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, int(reuse))
        if bind:
            s.bind(("127.0.0.1" if family == socket.AF_INET else "::1", 0))
        return s

    def tcp(reuse=True, listen=True):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, int(reuse))
        s.bind(("127.0.0.1", 0))
        if listen:
            s.listen()
        return s

    (tmp_path / "f").write_bytes(b"")
    made = {
        "file": open(tmp_path / "f", "rb"),
        "udp": udp(), "tcp listener": tcp(), "udp6": udp(socket.AF_INET6),
        "udp without SO_REUSEPORT": udp(reuse=False), "udp unbound": udp(bind=False),
        "tcp not listening": tcp(listen=False),
        "tcp listener without SO_REUSEPORT": tcp(reuse=False),
        "unix": socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM),
    }
    fds = {}
    try:
        for n, (name, obj) in enumerate(made.items()):
            os.dup2(obj.fileno(), FIRST_FD + n)
            fds[name] = FIRST_FD + n
        yield fds
    finally:
        for fd in fds.values():
            os.close(fd)
        for obj in made.values():
            obj.close()


def _cookie(fd: int) -> bytes:
    with socket.socket(fileno=os.dup(fd)) as s:
        return s.getsockopt(socket.SOL_SOCKET, isa.SO_COOKIE, 8)


def _named(outcomes: list, fds: dict) -> list:
    """``outcomes`` with each socket's cookie as "cookie of <name>", bytes as hex."""
    names = {_cookie(fd): name for name, fd in fds.items() if name != "file"}
    return [f"cookie of {names[o]}" if isinstance(o, bytes) and o in names else
            o.hex() if isinstance(o, bytes) else o for o in outcomes]


def same_commands(kernel_observation, fds, sizes, ops):
    """Run ``ops`` ((command, *args)) on a fresh map in pyebpf and in the kernel: the
    same outcomes, cookies as the sockets they name (one comparison)."""
    ours = Map.create(REUSEPORT, *sizes)
    mine = _named([outcome(getattr(ours, op), *args) for op, *args in ops], fds)

    def ask():
        with pyebpf.kernel.KernelMap(REUSEPORT, *sizes) as theirs:
            return {"outcomes": _named([outcome(getattr(theirs, op), *args)
                                        for op, *args in ops], fds)}
    theirs = kernel_observation("REUSEPORT_SOCKARRAY commands", repr((sizes, ops)),
                                ask)["outcomes"]
    count_comparison()
    differ = [(op, m, k) for op, m, k in zip(ops, mine, theirs) if m != k]
    assert not differ, f"(command, pyebpf, kernel): {differ}"


def test_sockets_go_in_by_fd_and_read_back_as_cookies_as_in_the_kernel(kernel_observation,
                                                                        sockets):
    """An 8-byte value is the fd as a u64 (above S32_MAX: EINVAL); the flags and index
    first, then the fd (EBADF, ENOTSOCK), the slot's occupancy (EEXIST, ENOENT), the
    socket's kind (ENOTSUPP), then it must be a TCP listener or a bound UDP socket with
    SO_REUSEPORT (EINVAL); a socket in an array already is EBUSY."""
    fd = sockets
    same_commands(kernel_observation, fd, (4, 8, 3), [
        ("update", u32(3), u64(fd["udp"])), ("update", u32(0), u64(fd["udp"]), 4),
        ("update", u32(0), u64(1 << 31)), ("update", u32(0), u64(0x7FFFFFF0)),
        ("update", u32(0), u64(fd["file"])), ("update", u32(0), u64(fd["udp"]), EXIST),
        ("update", u32(0), u64(fd["unix"])),
        ("update", u32(0), u64(fd["udp without SO_REUSEPORT"])),
        ("update", u32(0), u64(fd["udp unbound"])), ("update", u32(0), u64(fd["tcp not listening"])),
        ("update", u32(0), u64(fd["tcp listener without SO_REUSEPORT"])),
        ("lookup", u32(0)), ("update", u32(0), u64(fd["udp"])), ("lookup", u32(0)),
        ("update", u32(1), u64(fd["udp"])), ("update", u32(0), u64(fd["udp"])),
        ("update", u32(0), u64(fd["tcp listener"]), NOEXIST),
        ("update", u32(0), u64(fd["unix"]), NOEXIST),
        ("update", u32(0), u64(fd["tcp listener"]), EXIST), ("lookup", u32(0)),
        ("update", u32(1), u64(fd["udp"]), NOEXIST), ("update", u32(2), u64(fd["udp6"])),
        ("lookup", u32(1)), ("lookup", u32(2)), ("lookup", u32(3)),
        ("next_key", None), ("next_key", u32(1)), ("next_key", u32(2)), ("next_key", u32(7)),
        ("delete", u32(1)), ("lookup", u32(1)), ("delete", u32(1)), ("delete", u32(3)),
        ("update", u32(1), u64(fd["udp"])), ("lookup", u32(1)),
        ("lookup_and_delete", u32(0)),
    ])


def test_a_map_of_4_byte_values_takes_fds_but_gives_no_cookies_as_in_the_kernel(
        kernel_observation, sockets):
    """A 4-byte value is the fd as an int (-1: EBADF); a lookup needs room for the
    cookie: ENOSPC, even for an empty slot."""
    fd = sockets
    same_commands(kernel_observation, fd, (4, 4, 2), [
        ("update", u32(0), u32(fd["tcp listener"])), ("update", u32(1), u32(0xFFFFFFFF)),
        ("lookup", u32(0)), ("lookup", u32(1)), ("lookup", u32(5)),
        ("delete", u32(0)), ("delete", u32(0)),
    ])


def test_the_syscall_takes_a_socket_fd_as_the_kernel(sockets):
    """pyebpf.bpf's BPF_MAP_UPDATE_ELEM with the fd, then BPF_MAP_LOOKUP_ELEM: the
    socket's cookie (compared with the kernel's above)."""
    fd = pyebpf.bpf("BPF_MAP_CREATE", {"map_type": int(REUSEPORT), "key_size": 4,
                                       "value_size": 8, "max_entries": 1})
    pyebpf.bpf("BPF_MAP_UPDATE_ELEM", {"map_fd": fd, "key": u32(0),
                                       "value": u64(sockets["udp"])})
    out = bytearray(8)
    pyebpf.bpf("BPF_MAP_LOOKUP_ELEM", {"map_fd": fd, "key": u32(0), "value": out})
    assert bytes(out) == _cookie(sockets["udp"])


def test_a_tc_program_cannot_look_one_up_as_in_the_kernel(kernel_oracle):
    """check_map_func_compatibility: bpf_sk_select_reuseport is its only helper."""
    refused_alike(kernel_oracle, REUSEPORT, (4, 8, 1, 0), lookup_prog,
                  f"cannot pass map_type {int(REUSEPORT)} into func bpf_map_lookup_elem#1")


def test_a_tc_program_cannot_select_a_reuseport_socket_as_in_the_kernel(kernel_oracle):
    call = isa.HELPER_IDS["sk_select_reuseport"]

    def make(fd):
        return f"""
            *(u32 *)(r10 - 4) = 0
            r2 = map_fd({fd}) ll
            r3 = r10
            r3 += -4
            r4 = 0
            call {call}
            exit"""
    refused_alike(kernel_oracle, REUSEPORT, (4, 8, 1, 0), make,
                  f"program of this type cannot use helper bpf_sk_select_reuseport#{call}")


SOURCE = """
struct { __uint(type, BPF_MAP_TYPE_REUSEPORT_SOCKARRAY); __uint(max_entries, 2);
         __type(key, __u32); __type(value, __u64); } servers SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
         __type(key, __u32); __type(value, __u32); } hits SEC(".maps");

SEC("sk_reuseport")
int pick(struct sk_reuseport_md *md)
{
    __u32 key = 0;
    return bpf_sk_select_reuseport(md, &servers, &key, 0) == 0 ? SK_PASS : SK_DROP;
}

SEC("classifier")
int count(struct __sk_buff *skb)
{
    __u32 key = 0;
    __u32 *n = bpf_map_lookup_elem(&hits, &key);

    if (n)
        __sync_fetch_and_add(n, 1);
    return skb->len;
}
char _license[] SEC("license") = "GPL";
"""


def test_an_object_holding_one_loads_and_its_tc_program_runs_as_in_the_kernel(sockets):
    """The map is made (and takes a socket) beside the object's tc program; its
    sk_reuseport program is skipped by both."""
    data = compile_object(SOURCE)
    obj, kobj = pyebpf.load(data), pyebpf.kernel.load_object(data)
    with kobj:
        count_comparison()
        assert [outcome(maps["servers"].update, u32(1), u64(sockets["tcp listener"]))
                for maps in (obj.maps, kobj.maps)] == ["ok", "ok"]
        assert obj.maps["servers"].lookup(u32(1)) == _cookie(sockets["tcp listener"])
        count_comparison()
        assert obj.program("count").run(bytes(60)).retval == \
            kobj.program("count").test_run(bytes(60), ctx={}).retval_signed == 60
    assert "pick" in obj.skipped and "pick" in kobj.skipped


# --- sockets leaving their array --------------------------------------------------------

def story(ops, new_map) -> list:
    """What each of ``ops`` gave, on an array of 3 slots ``new_map()`` makes (a context
    manager), with sockets of its own: ("tcp", name) a listener, ("udp", name) a bound
    UDP socket, both SO_REUSEPORT on 127.0.0.1; ("update", key, name[, flags]);
    ("lookup", key) (a cookie as the name of its socket, None for none); ("delete", key);
    ("dup", name) a second fd on a socket, ("close", name) closing its first,
    ("close dup", name) its second; ("shutdown", name) shutdown(SHUT_RDWR)."""
    sockets, dups, cookies, out = {}, {}, {}, []
    with new_map() as m:
        try:
            for op, *args in ops:
                if op in ("tcp", "udp"):
                    kind = socket.SOCK_STREAM if op == "tcp" else socket.SOCK_DGRAM
                    sk = sockets[args[0]] = socket.socket(socket.AF_INET, kind)
                    sk.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                    sk.bind(("127.0.0.1", 0))
                    if op == "tcp":
                        sk.listen()
                    cookies[_cookie(sk.fileno())] = f"cookie of {args[0]}"
                elif op == "update":
                    key, name, *flags = args
                    out.append(outcome(m.update, u32(key), u64(sockets[name].fileno()), *flags))
                elif op == "lookup":
                    got = outcome(m.lookup, u32(args[0]))
                    out.append(cookies.get(got, got))
                elif op == "delete":
                    out.append(outcome(m.delete, u32(args[0])))
                elif op == "dup":
                    dups[args[0]] = os.dup(sockets[args[0]].fileno())
                elif op == "close":
                    sockets[args[0]].close()
                elif op == "close dup":
                    os.close(dups.pop(args[0]))
                elif op == "shutdown":
                    # an unbound UDP socket's is ENOTCONN, its shutdown made all the same
                    with contextlib.suppress(OSError):
                        sockets[args[0]].shutdown(socket.SHUT_RDWR)
        finally:
            for sk in sockets.values():
                sk.close()
            for fd in dups.values():
                os.close(fd)
    return out


def same_story(kernel_observation, ops) -> list:
    """``ops`` told in pyebpf and in the kernel: the same outcomes (one comparison);
    the kernel's."""
    mine = story(ops, lambda: contextlib.nullcontext(Map.create(REUSEPORT, 4, 8, 3)))
    theirs = kernel_observation(
        "REUSEPORT_SOCKARRAY story", repr(ops),
        lambda: {"outcomes": story(ops, lambda: pyebpf.kernel.KernelMap(REUSEPORT, 4, 8, 3))}
    )["outcomes"]
    count_comparison()
    told = [o for o in ops if o[0] in ("update", "lookup", "delete")]
    differ = [(op, m, k) for op, m, k in zip(told, mine, theirs) if m != k]
    assert not differ, f"(op, pyebpf, kernel): {differ}"
    return theirs


def test_a_closed_socket_leaves_its_array_as_in_the_kernel(kernel_observation):
    """bpf_sk_reuseport_detach, from the socket's unhashing on release: its slot is
    empty (a lookup finds nothing, delete and BPF_EXIST are ENOENT, BPF_NOEXIST fills
    it)."""
    assert same_story(kernel_observation, [
        ("udp", "udp"), ("tcp", "listener"), ("udp", "other"),
        ("update", 0, "udp"), ("update", 1, "listener"), ("close", "udp"), ("close", "listener"),
        ("lookup", 0), ("lookup", 1), ("delete", 0), ("update", 1, "other", EXIST),
        ("update", 1, "other", NOEXIST), ("lookup", 1),
    ]) == ["ok", "ok", None, None, errno.ENOENT, errno.ENOENT, "ok", "cookie of other"]


def test_a_socket_stays_while_another_fd_holds_it_as_in_the_kernel(kernel_observation):
    """Closing one fd of two unhashes nothing; closing the last does."""
    assert same_story(kernel_observation, [
        ("tcp", "listener"), ("update", 2, "listener"), ("dup", "listener"),
        ("close", "listener"), ("lookup", 2), ("close dup", "listener"), ("lookup", 2),
    ]) == ["ok", "cookie of listener", None]


def test_a_shut_down_listener_leaves_its_array_as_in_the_kernel(kernel_observation):
    """A TCP listener's shutdown unhashes it (tcp_disconnect) while it stays open; a UDP
    socket's shutdown does not."""
    assert same_story(kernel_observation, [
        ("tcp", "listener"), ("udp", "udp"), ("update", 0, "listener"), ("update", 1, "udp"),
        ("shutdown", "listener"), ("shutdown", "udp"), ("lookup", 0), ("lookup", 1),
        ("delete", 0),
    ]) == ["ok", "ok", None, "cookie of udp", errno.ENOENT]
