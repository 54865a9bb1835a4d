"""Socket maps (BPF_MAP_TYPE_SOCKMAP, BPF_MAP_TYPE_SOCKHASH) where tc programs use them,
against the kernel: the maps BPF_MAP_CREATE makes and refuses, the user-space commands,
the verifier's rules (a lookup is a referenced socket to release, updates take sockets,
the helpers these maps pair with), and programs that look sockets up, put them in and
delete them, with the kernel's maps holding real sockets of a namespace built as ENV
declares (tests/networld.py) and pyebpf's holding the modelled ones by cookie."""
from __future__ import annotations

import errno
import ipaddress
import json
import socket

import pytest

import pyebpf
from pyebpf import Map, asm, isa
from pyebpf.environment import Device, Environment, PacketSocket, Socket, endpoint
from pyebpf.errors import KernelError, MapError, VerifierError

from bpfc import compile_object
from mapcheck import created, load_verdicts, outcome, u32
from networld import world
from recorded_kernel import count_comparison, name_socket
from skbdiff import engine_fields

T = isa.MapType
SOCKMAP, SOCKHASH = T.BPF_MAP_TYPE_SOCKMAP, T.BPF_MAP_TYPE_SOCKHASH
NUMA, RDONLY = isa.BPF_F_NUMA_NODE, isa.BPF_F_RDONLY
CLS = isa.ProgType.BPF_PROG_TYPE_SCHED_CLS
SO_COOKIE = 57                  # asm-generic/socket.h; Python's socket module lacks it

ENV = Environment(
    devices=(Device(1, "lo", 65536, up=True, addresses=("127.0.0.1/8", "::1/128")),
             Device(2, "vrx", 1500, "02:00:00:00:00:02", addresses=("10.0.0.1/24", "fd00::1/64")),
             Device(3, "vtx", 1500, "02:00:00:00:00:03", addresses=("10.1.0.1/24",))),
    sockets=(Socket("tcp", "10.0.0.1:80"),
             Socket("udp", "10.0.0.1:53"),
             Socket("tcp", "[fd00::1]:443"),
             Socket("tcp", "10.0.0.1:8080"),
             Socket("tcp", "10.0.0.1:8080", "10.0.0.1:40000"),
             Socket("tcp", "10.0.0.1:40000", "10.0.0.1:8080"),
             Socket("udp", "10.0.0.1:5000", "10.0.0.2:6000")))
PACKET = bytes(range(14)) + bytes(200)


# --- creation and the user-space commands ---------------------------------------------

@pytest.mark.parametrize("kind, key, value, max_entries, flags", [
    (SOCKMAP, 4, 4, 1, 0), (SOCKMAP, 4, 8, 1, 0), (SOCKMAP, 8, 8, 1, 0),
    (SOCKMAP, 4, 2, 1, 0), (SOCKMAP, 4, 16, 1, 0), (SOCKMAP, 4, 8, 0, 0),
    (SOCKMAP, 4, 8, 1, NUMA), (SOCKMAP, 4, 8, 1, RDONLY),
    (SOCKMAP, 4, 8, 1, isa.BPF_F_NO_PREALLOC), (SOCKMAP, 4, 8, 1, isa.BPF_F_RDONLY_PROG),
    (SOCKHASH, 4, 8, 1, 0), (SOCKHASH, 16, 4, 4, 0), (SOCKHASH, 0, 8, 1, 0),
    (SOCKHASH, 512, 8, 1, 0), (SOCKHASH, 513, 8, 1, 0), (SOCKHASH, 4, 12, 1, 0),
    (SOCKHASH, 4, 8, 0, 0), (SOCKHASH, 4, 8, 1, isa.BPF_F_ZERO_SEED)],
    ids=["sockmap-fd-values", "sockmap", "sockmap-key-8-bytes", "sockmap-value-2-bytes",
         "sockmap-value-16-bytes", "sockmap-no-entries", "sockmap-numa-node",
         "sockmap-rdonly", "sockmap-no-prealloc", "sockmap-rdonly-prog", "sockhash",
         "sockhash-16-byte-key", "sockhash-no-key", "sockhash-largest-key",
         "sockhash-key-too-large", "sockhash-value-12-bytes", "sockhash-no-entries",
         "sockhash-zero-seed"])
def test_creation_succeeds_and_fails_as_the_kernels(kernel_oracle, kind, key, value,
                                                    max_entries, flags):
    args = (kind, key, value, max_entries, flags)
    count_comparison()
    assert created(Map.create, *args) == created(kernel_oracle.KernelMap, *args)


@pytest.mark.parametrize("kind, value, op, args", [
    (SOCKMAP, 8, "lookup", (u32(0),)), (SOCKMAP, 8, "lookup", (u32(9),)),
    (SOCKMAP, 4, "lookup", (u32(0),)), (SOCKMAP, 8, "delete", (u32(0),)),
    (SOCKMAP, 8, "delete", (u32(9),)), (SOCKMAP, 8, "next_key", (None,)),
    (SOCKMAP, 8, "next_key", (u32(1),)), (SOCKMAP, 8, "next_key", (u32(3),)),
    (SOCKMAP, 8, "lookup_and_delete", (u32(0),)),
    (SOCKHASH, 8, "lookup", (u32(0),)), (SOCKHASH, 4, "lookup", (u32(0),)),
    (SOCKHASH, 8, "delete", (u32(0),)), (SOCKHASH, 8, "next_key", (None,)),
    (SOCKHASH, 8, "lookup_and_delete", (u32(0),))],
    ids=["sockmap-lookup", "sockmap-lookup-past-the-end", "sockmap-lookup-4-byte-values",
         "sockmap-delete-empty", "sockmap-delete-past-the-end", "sockmap-first-key",
         "sockmap-key-after-1", "sockmap-after-the-last", "sockmap-lookup-and-delete",
         "sockhash-lookup", "sockhash-lookup-4-byte-values", "sockhash-delete-missing",
         "sockhash-first-key", "sockhash-lookup-and-delete"])
def test_the_commands_on_an_empty_map_answer_as_the_kernels(kernel_oracle, kind, value, op,
                                                            args):
    ours = Map.create(kind, 4, value, 4)
    with kernel_oracle.KernelMap(kind, 4, value, 4) as theirs:
        count_comparison()
        assert outcome(getattr(ours, op), *args) == outcome(getattr(theirs, op), *args)


def test_user_space_puts_sockets_in_by_cookie_and_reads_the_cookie_back():
    m = Map.create(SOCKMAP, 4, 8, 2)
    m.update(u32(1), Socket("tcp", "10.0.0.1:80", cookie=77))
    m.update(u32(0), 78)
    assert (m.lookup(u32(1)), m.lookup(u32(0))) == ((77).to_bytes(8, "little"),
                                                     (78).to_bytes(8, "little"))
    m.delete(u32(1))
    assert m.lookup(u32(1)) is None and m.keys() == [u32(0), u32(1)] and len(m) == 2


@pytest.mark.parametrize("key, flags, filled, want", [
    (2, isa.BPF_ANY, False, errno.E2BIG), (0, isa.BPF_NOEXIST, True, errno.EEXIST),
    (0, isa.BPF_EXIST, False, errno.ENOENT), (0, 4, False, errno.EINVAL)],
    ids=["past-the-end", "noexist-on-a-socket", "exist-on-an-empty-slot", "bad-flags"])
def test_a_sockmap_update_is_refused_as_sock_map_update_common_refuses_it(key, flags,
                                                                          filled, want):
    m = Map.create(SOCKMAP, 4, 8, 2)
    if filled:
        m.update(u32(key), 5)
    with pytest.raises(MapError) as exc:
        m.update(u32(key), 6, flags)
    assert exc.value.errno == want


def test_a_full_sockhash_refuses_a_new_key_but_replaces_an_old_one():
    m = Map.create(SOCKHASH, 4, 8, 1)
    m.update(u32(7), 5)
    with pytest.raises(MapError) as exc:
        m.update(u32(8), 6)
    assert exc.value.errno == errno.E2BIG
    m.update(u32(7), 6)
    assert m.lookup(u32(7)) == (6).to_bytes(8, "little") and m.keys() == [u32(7)]


@pytest.mark.parametrize("value, message", [
    (Socket("tcp", "10.0.0.1:80"), "the socket names no cookie"),
    (b"\x05\0\0\0\0\0\0\0", "holds sockets by cookie"), (0, "holds sockets by cookie")],
    ids=["socket-without-cookie", "bytes", "zero"])
def test_a_value_that_names_no_socket_is_refused_saying_so(value, message):
    with pytest.raises(ValueError, match=message):
        Map.create(SOCKHASH, 4, 8, 1).update(u32(0), value)


def test_the_packets_own_socket_cannot_go_in():
    """test_run's socket, like the kernel's, has no socket map support (EOPNOTSUPP)."""
    with pytest.raises(MapError) as exc:
        Map.create(SOCKMAP, 4, 8, 1).update(u32(0), PacketSocket(cookie=3))
    assert exc.value.errno == errno.EOPNOTSUPP


def test_the_kernel_takes_sockets_only_listening_established_or_bound(live_kernel):
    """sock_map_sk_state_allowed: a TCP socket neither listening nor established, and a
    UDP socket not bound, are refused.  Every socket of the model is one it takes."""
    tcp, udp = socket.socket(), socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        with live_kernel.KernelMap(SOCKMAP, 4, 8, 2) as theirs:
            for sk in (tcp, udp):
                assert outcome(theirs.update, u32(0), sk.fileno().to_bytes(8, "little")) \
                    == errno.EOPNOTSUPP
            udp.bind(("127.0.0.1", 0))
            theirs.update(u32(1), udp.fileno().to_bytes(8, "little"))
            cookie = udp.getsockopt(socket.SOL_SOCKET, SO_COOKIE, 8)
            assert theirs.lookup(u32(1)) == cookie
    finally:
        tcp.close()
        udp.close()


# --- the verifier --------------------------------------------------------------------

def _lookup(fd, then):
    """r0 = bpf_map_lookup_elem(map, &(u32)0), then ``then``."""
    return f"""
        r6 = r1
        *(u32 *)(r10 - 4) = 0
        r1 = map_fd({fd}) ll
        r2 = r10
        r2 += -4
        call 1
        {then}
        r0 = 0
        exit"""


RELEASED = """
        if r0 == 0 goto out
        r1 = r0
        call 86
    out:"""
SHAPES = {
    "lookup-released": lambda fd: _lookup(fd, RELEASED),
    "lookup-not-released": lambda fd: _lookup(fd, ""),
    "read-before-null-check": lambda fd: _lookup(fd, "r1 = *(u32 *)(r0 + 4)"),
    "read-a-field": lambda fd: _lookup(fd, """
        if r0 == 0 goto out
        r7 = *(u32 *)(r0 + 4)
        r1 = r0
        call 86
    out:"""),
    "write-a-field": lambda fd: _lookup(fd, """
        if r0 == 0 goto out
        *(u32 *)(r0 + 4) = 1
        r1 = r0
        call 86
    out:"""),
    "update-with-a-stack-value": lambda fd: f"""
        *(u64 *)(r10 - 16) = 0
        *(u32 *)(r10 - 4) = 0
        r1 = map_fd({fd}) ll
        r2 = r10
        r2 += -4
        r3 = r10
        r3 += -16
        r4 = 0
        call 2
        r0 = 0
        exit""",
    "update-with-skb-sk": lambda fd: f"""
        r3 = *(u64 *)(r1 + {isa.SK_BUFF_LAYOUT['sk'][0]})
        if r3 == 0 goto out
        *(u32 *)(r10 - 4) = 0
        r1 = map_fd({fd}) ll
        r2 = r10
        r2 += -4
        r4 = 0
        call 2
    out:
        r0 = 0
        exit""",
    "update-with-unchecked-skb-sk": lambda fd: f"""
        r3 = *(u64 *)(r1 + {isa.SK_BUFF_LAYOUT['sk'][0]})
        *(u32 *)(r10 - 4) = 0
        r1 = map_fd({fd}) ll
        r2 = r10
        r2 += -4
        r4 = 0
        call 2
        r0 = 0
        exit""",
    "update-with-the-looked-up-socket": lambda fd: _lookup(fd, f"""
        if r0 == 0 goto out
        r7 = r0
        r1 = map_fd({fd}) ll
        r2 = r10
        r2 += -4
        r3 = r7
        r4 = 0
        call 2
        r1 = r7
        call 86
    out:"""),
    "delete": lambda fd: f"""
        *(u32 *)(r10 - 4) = 0
        r1 = map_fd({fd}) ll
        r2 = r10
        r2 += -4
        call 3
        r0 = 0
        exit""",
    "peek": lambda fd: f"""
        r1 = map_fd({fd}) ll
        r2 = r10
        r2 += -8
        call 89
        r0 = 0
        exit""",
    "sk-redirect-map": lambda fd: f"""
        r2 = map_fd({fd}) ll
        r3 = 0
        r4 = 0
        call 52
        exit""",
}


@pytest.mark.parametrize("kind", [SOCKMAP, SOCKHASH], ids=["sockmap", "sockhash"])
@pytest.mark.parametrize("prog_type", ["sched_cls", "socket_filter"])
@pytest.mark.parametrize("shape", SHAPES)
def test_the_verifier_decides_as_the_kernels(kernel_oracle, kind, prog_type, shape):
    mine, kernel = load_verdicts(kernel_oracle, kind, (4, 8, 4, 0), SHAPES[shape], prog_type)
    count_comparison()
    assert (mine is None) == (kernel is None), (mine, kernel)
    if kernel is not None:
        assert kernel.rsplit(": ", 1)[-1].strip() in mine, (mine, kernel)


def test_a_kprobe_may_not_change_a_socket_map(kernel_oracle):
    """may_update_sockmap, which map_delete_elem needs too, leaves kprobes out."""
    ours = Map.create(SOCKMAP, 4, 8, 4)
    with pytest.raises(VerifierError) as mine:
        pyebpf.Program(asm.assemble(SHAPES["delete"](ours.fd)), "kprobe")
    with kernel_oracle.KernelMap(SOCKMAP, 4, 8, 4) as theirs:
        with pytest.raises(KernelError) as kernel:
            kernel_oracle.KernelProgram(asm.assemble(SHAPES["delete"](theirs.fd)),
                                        "kprobe").close()
    count_comparison()
    want = ("cannot update sockmap in this context\n"
            "cannot pass map_type 15 into func bpf_map_delete_elem#3")
    assert want in mine.value.log and want in kernel.value.log


# --- programs on sockets of a namespace --------------------------------------------------

@pytest.fixture(scope="module")
def socks_world():
    with world(ENV, "sockmap") as run:
        yield run


def _fd_of(run, k: int) -> int:
    """The fd of the socket that ENV.sockets[k] declares (a stand-in where answers
    replay), named for the recorded answers."""
    if run.sockets is None:
        fd = (1 << 22) + k
    else:
        s = ENV.sockets[k]
        local = endpoint(s.local, "local")
        remote = endpoint(s.remote, "remote") if s.remote else None
        fd = next(sk.fileno() for sk in run.sockets
                  if _name(sk.getsockname()) == local and _peer(sk) == remote
                  and (sk.type == socket.SOCK_STREAM) == (s.protocol == "tcp"))
    name_socket(fd, f"sockets[{k}]")
    return fd


def _name(addr) -> tuple:
    return ipaddress.ip_address(addr[0]), addr[1]


def _peer(sk):
    try:
        return _name(sk.getpeername())
    except OSError:
        return None


MAPS = """
struct {
    __uint(type, BPF_MAP_TYPE_SOCKMAP);
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, __u64);
} sock_map SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_SOCKHASH);
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, __u64);
} sock_hash SEC(".maps");
"""
FIELDS = ("family", "type", "protocol", "src_port", "dst_port", "state", "src_ip4",
          "dst_ip4", "src_ip6[3]", "bound_dev_if", "mark", "priority")


def _read_prog(map_name: str, key: int) -> bytes:
    """The socket under ``key``: its fields and whether it is a TCP one over the packet,
    then released; 1 for none."""
    reads = " ".join(f"o[{k}] = sk->{f};" for k, f in enumerate(FIELDS))
    return compile_object(MAPS + f"""
SEC("tc") int read_sock(struct __sk_buff *skb) {{
    __u32 key = {key};
    __u64 o[16] = {{}};
    struct bpf_sock *sk = bpf_map_lookup_elem(&{map_name}, &key);
    if (!sk)
        return 1;
    {reads}
    o[15] = bpf_tcp_sock(sk) != 0;
    bpf_sk_release(sk);
    return bpf_skb_store_bytes(skb, 14, o, sizeof(o), 0);
}}
""")


def _run_both(run, data: bytes, fill: dict, ctx=None, after=None):
    """One run of ``data``'s program in both, their maps filled with ``fill`` ({map name:
    {key: ENV socket index}}); (pyebpf's Result, the kernel's) after asserting the same
    retval and packet, and ``after`` (map name, key): both maps' values there, present
    or not."""
    obj = pyebpf.load(data)
    for name, slots in fill.items():
        for key, k in slots.items():
            obj.maps[name].update(u32(key), ENV.socket_cookie(k))
    (prog_name,) = obj.programs
    ours = obj.program(prog_name).run(PACKET, env=ENV, **engine_fields(CLS, ctx))

    def kernel_side():
        with pyebpf.kernel.load_object(data) as kobj:
            for name, slots in fill.items():
                for key, k in slots.items():
                    kobj.maps[name].update(u32(key), _fd_of(run, k).to_bytes(8, "little"))
            res = kobj.program(prog_name).test_run(PACKET, ctx=dict(ctx or {}))
            there = None if after is None else kobj.maps[after[0]].lookup(u32(after[1]))
            return res, there
    theirs, there = run(kernel_side)
    count_comparison()
    assert ours.retval & 0xFFFFFFFF == theirs.retval, (ours.retval, theirs.retval)
    assert ours.data_out == theirs.data
    if after is not None:
        here = obj.maps[after[0]].lookup(u32(after[1]))
        assert (here is None) == (there is None), (here, there)
    obj.close()
    return ours, theirs


@pytest.mark.parametrize("k", [0, 1, 2, 3, 4, 6],
                         ids=["tcp-listener", "udp", "tcp6-listener", "tcp-listener-8080",
                              "tcp-established", "udp-connected"])
@pytest.mark.parametrize("map_name", ["sock_map", "sock_hash"])
def test_a_looked_up_socket_reads_as_the_kernels(socks_world, map_name, k):
    ours, _ = _run_both(socks_world, _read_prog(map_name, 2), {map_name: {2: k}})
    assert ours.retval == 0


@pytest.mark.parametrize("map_name, key", [("sock_map", 1), ("sock_map", 9),
                                           ("sock_hash", 1)],
                         ids=["sockmap-empty-slot", "sockmap-past-the-end",
                              "sockhash-missing-key"])
def test_a_lookup_of_no_socket_gives_null(socks_world, map_name, key):
    ours, _ = _run_both(socks_world, _read_prog(map_name, key), {map_name: {2: 0}})
    assert ours.retval == 1


def _update_prog(map_name: str, key: int, flags: int, source: str) -> bytes:
    """Put a socket (``source``: "lookup", bpf_sk_lookup_tcp's listener on 10.0.0.1:80;
    "skb", skb->sk) under ``key``; then look ``key`` up: retval the update's answer's
    low byte, and 0x100 when the lookup found a socket, whose source port goes over the
    packet."""
    if source == "lookup":
        get = """struct bpf_sock_tuple t = {};
    t.ipv4.saddr = bpf_htonl(0x0a000002); t.ipv4.daddr = bpf_htonl(0x0a000001);
    t.ipv4.sport = bpf_htons(4000); t.ipv4.dport = bpf_htons(80);
    struct bpf_sock *sk = bpf_sk_lookup_tcp(skb, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
    if (!sk)
        return 0x200;"""
        put = "bpf_sk_release(sk);"
    else:
        get = """struct bpf_sock *sk = skb->sk;
    if (!sk)
        return 0x200;"""
        put = ""
    return compile_object(MAPS + f"""
SEC("tc") int put_sock(struct __sk_buff *skb) {{
    __u32 key = {key};
    __u64 o[2] = {{}};
    {get}
    long rc = bpf_map_update_elem(&{map_name}, &key, sk, {flags});
    {put}
    int found = 0;
    struct bpf_sock *got = bpf_map_lookup_elem(&{map_name}, &key);
    if (got) {{
        found = 0x100;
        o[0] = got->src_port;
        bpf_sk_release(got);
    }}
    bpf_skb_store_bytes(skb, 14, o, sizeof(o), 0);
    return (rc & 0xff) | found;
}}
""")


UPDATES = {
    "sockmap-any": ("sock_map", 0, "BPF_ANY", {}, 0 | 0x100),
    "sockmap-past-the-end": ("sock_map", 4, "BPF_ANY", {}, -errno.E2BIG & 0xff),
    "sockmap-bad-flags": ("sock_map", 0, "4", {}, -errno.EINVAL & 0xff),
    "sockmap-exist-on-empty": ("sock_map", 0, "BPF_EXIST", {}, -errno.ENOENT & 0xff),
    "sockmap-exist-replaces": ("sock_map", 0, "BPF_EXIST", {0: 1}, 0x100),
    "sockmap-noexist-on-a-socket": ("sock_map", 0, "BPF_NOEXIST", {0: 1},
                                    -errno.EEXIST & 0xff | 0x100),
    "sockhash-any": ("sock_hash", 7, "BPF_ANY", {}, 0x100),
    "sockhash-exist-on-missing": ("sock_hash", 7, "BPF_EXIST", {}, -errno.ENOENT & 0xff),
    "sockhash-full": ("sock_hash", 7, "BPF_ANY", {1: 1, 2: 1, 3: 1, 4: 3},
                      -errno.E2BIG & 0xff),
}


@pytest.mark.parametrize("case", UPDATES)
def test_a_program_puts_a_looked_up_socket_in_as_the_kernel(socks_world, case):
    map_name, key, flags, filled, want = UPDATES[case]
    ours, _ = _run_both(socks_world, _update_prog(map_name, key, flags, "lookup"),
                        {map_name: filled}, ctx={"ifindex": 2}, after=(map_name, key))
    assert ours.retval == want


def test_the_packets_own_socket_is_refused_with_eopnotsupp(socks_world):
    ours, _ = _run_both(socks_world, _update_prog("sock_map", 0, "BPF_ANY", "skb"), {})
    assert ours.retval == -errno.EOPNOTSUPP & 0xff


def _delete_prog(map_name: str, key: int) -> bytes:
    return compile_object(MAPS + f"""
SEC("tc") int drop_sock(struct __sk_buff *skb) {{
    __u32 key = {key};
    long rc = bpf_map_delete_elem(&{map_name}, &key);
    struct bpf_sock *got = bpf_map_lookup_elem(&{map_name}, &key);
    if (got)
        bpf_sk_release(got);
    return (rc & 0xff) | (got ? 0x100 : 0);
}}
""")


@pytest.mark.parametrize("map_name, key, filled, want", [
    ("sock_map", 1, {1: 0}, 0), ("sock_map", 1, {}, -errno.EINVAL & 0xff),
    ("sock_map", 9, {}, -errno.EINVAL & 0xff), ("sock_hash", 1, {1: 0}, 0),
    ("sock_hash", 1, {}, -errno.ENOENT & 0xff)],
    ids=["sockmap-a-socket", "sockmap-empty", "sockmap-past-the-end", "sockhash-a-socket",
         "sockhash-missing"])
def test_a_program_deletes_as_the_kernel(socks_world, map_name, key, filled, want):
    ours, _ = _run_both(socks_world, _delete_prog(map_name, key), {map_name: filled},
                        after=(map_name, key))
    assert ours.retval == want


# --- what only the model shows --------------------------------------------------------

def test_a_socket_the_run_s_world_does_not_hold_is_not_found():
    obj = pyebpf.load(_read_prog("sock_map", 2))
    obj.maps["sock_map"].update(u32(2), 99)
    assert obj.program("read_sock").run(PACKET, env=ENV).retval == 1


def test_the_map_keeps_what_a_program_put_in_across_runs():
    obj = pyebpf.load(_update_prog("sock_hash", 7, "BPF_NOEXIST", "lookup"))
    prog = obj.program("put_sock")
    assert prog.run(PACKET, env=ENV, ifindex=2).retval == 0x100
    assert prog.run(PACKET, env=ENV, ifindex=2).retval == -errno.EEXIST & 0xff | 0x100
    assert obj.maps["sock_hash"].lookup(u32(7)) == ENV.socket_cookie(0).to_bytes(8, "little")


def test_tcsim_map_files_put_sockets_in_by_cookie_and_dump_them(tmp_path):
    from pyebpf.pcap import mapfiles
    obj = pyebpf.load(_read_prog("sock_hash", 2))
    path = tmp_path / "socks.json"
    path.write_text(json.dumps([{"key": "02000000", "value": ENV.socket_cookie(1)}]))
    mapfiles.load(obj.maps["sock_hash"], str(path), f"sock_hash={path}")
    assert obj.program("read_sock").run(PACKET, env=ENV).retval == 0
    cookie = ENV.socket_cookie(1)
    assert mapfiles.dump(obj.maps["sock_hash"])["entries"] == [
        {"key": "02000000", "value": cookie, "key_hex": "02000000",
         "value_hex": cookie.to_bytes(8, "little").hex()}]


def test_a_sockhash_walks_its_keys_in_the_kernels_order(socks_world, kernel_oracle):
    """jhash of the key with seed 0, newest first in a bucket; a replaced key moves to
    its bucket's head."""
    keys = [u32(v) for v in (5, 1, 9, 300, 7, 2, 1 << 20)] + [u32(9)]
    ours = Map.create(SOCKHASH, 4, 8, 8)
    for key in keys:
        ours.update(key, ENV.socket_cookie(0))

    def kernel_side():
        with kernel_oracle.KernelMap(SOCKHASH, 4, 8, 8) as theirs:
            for key in keys:
                theirs.update(key, _fd_of(socks_world, 0).to_bytes(8, "little"))
            return theirs.keys()
    count_comparison()
    assert ours.keys() == socks_world(kernel_side)
