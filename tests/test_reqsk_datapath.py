"""skb->sk after bpf_sk_assign_tcp_reqsk (and after bpf_sk_assign of the listener
itself), against the kernel's real datapath: a network
namespace built as ENV declares (tests/networld.py: a veth pair vrx <-> vtx, a TCP
listener on port 80), the program at vrx's tc ingress (tcx), a SYN sent from vtx by a
packet socket, and the same program run by pyebpf at ingress on the same frame with an
Environment holding what the kernel's world holds (the listener's and the packet
socket's cookies, the namespaces' cookies, the test's uid and cgroup).  BPF_PROG_TEST_RUN
cannot show any of it: its packet is never at tc ingress.  The program writes what it
read into an array map, before and after the assign; the kernel's map and pyebpf's are
compared field by field."""
from __future__ import annotations

import os
import socket
import struct
import time

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

import pyebpf
from bpfc import TCP_REQSK_DECLS, compile_object
from cgroup_support import cgroup2_mount
from netns import tcx_attach
from networld import world
from pyebpf.environment import Device, Environment, PacketSocket, Socket

SO_COOKIE, SO_NETNS_COOKIE = 57, 71         # asm-generic/socket.h
TCP_NEW_SYN_RECV = 12
EOPNOTSUPP = 95

# what the program records, in this order (u64 each)
FIELDS = (
    "runs",
    # skb->sk before the assign: the sender's packet socket (veth keeps skb->sk)
    "before_has_sk", "before_cookie", "before_netns_cookie", "before_uid", "before_cgroup_id",
    "assign",
    # struct bpf_sock of skb->sk after it (a struct bpf_sock_common to the verifier)
    "family", "state", "src_ip4", "src_ip6_0", "src_ip6_3", "src_port", "dst_port",
    "dst_ip4", "dst_ip6_0", "dst_ip6_3", "bound_dev_if", "rx_queue_mapping",
    "fullsock", "tcp_sock", "listener_port",
    # the helpers that read skb->sk
    "cookie", "cookie_again", "netns_cookie", "uid", "cgroup_id", "ancestor_0",
    "ancestor_1", "ancestor_deep", "sk_assign_again",
    # bpf_skc_to_tcp_request_sock(skb->sk) and its struct tcp_request_sock
    "rq_cast", "rq_family", "rq_state", "rq_tx_queue_mapping", "rq_has_listener", "rq_mss",
    "rq_syncookie", "rq_ts_recent", "rq_timeout", "rq_snd_wscale", "rq_rcv_wscale",
    "rq_tstamp_ok", "rq_sack_ok", "rq_wscale_ok", "rq_ecn_ok", "rq_usec_ts", "rq_ts_off",
    "rq_cast_again", "rq_cookie",
    # a second bpf_sk_assign_tcp_reqsk of the same listener (with tstamp_ok), its request
    # socket's cookie, its ts_off and the clock read just before and after the assign
    "second_assign", "second_cookie", "second_cookie_again", "second_ts_off",
    "second_t0", "second_t1",
)
# read through CO-RE: offsets and bitfields as the target BTF lays them out
REQUEST_SOCK_DECLS = r"""
#include <bpf/bpf_core_read.h>
struct sock_common {
    unsigned short skc_family; unsigned char skc_state; struct { __s64 counter; } skc_cookie;
    struct sock *skc_listener; unsigned short skc_tx_queue_mapping;
} __attribute__((preserve_access_index));
struct request_sock {
    struct sock_common __req_common; __u16 mss; __u8 syncookie: 1; __u32 ts_recent;
    __u32 timeout;
} __attribute__((preserve_access_index));
struct inet_request_sock {
    struct request_sock req;
    __u16 snd_wscale: 4, rcv_wscale: 4, tstamp_ok: 1, sack_ok: 1, wscale_ok: 1, ecn_ok: 1;
} __attribute__((preserve_access_index));
struct tcp_request_sock {
    struct inet_request_sock req; __u8 req_usec_ts; __u32 ts_off;
} __attribute__((preserve_access_index));
"""
SOURCE = "#include <linux/in.h>\n#include <linux/tcp.h>\n" + REQUEST_SOCK_DECLS + \
    TCP_REQSK_DECLS + r"""
struct record { __u64 v[%d]; };
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
    __type(key, __u32); __type(value, struct record);
} seen SEC(".maps");

SEC("tc") int prog(struct __sk_buff *skb)
{
    void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
    struct ethhdr *eth = data;
    struct iphdr *ip = (void *)(eth + 1);
    struct tcphdr *th = (void *)(ip + 1);
    if ((void *)(th + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP) || ip->ihl != 5 ||
        ip->protocol != IPPROTO_TCP || !th->syn || th->dest != bpf_htons(80))
        return TC_ACT_OK;
    __u32 zero = 0;
    struct record *r = bpf_map_lookup_elem(&seen, &zero);
    if (!r)
        return TC_ACT_OK;
    __u64 *o = r->v;
    o[1] = skb->sk != 0;
    o[2] = bpf_get_socket_cookie(skb);
    o[3] = bpf_get_netns_cookie(skb);
    o[4] = bpf_get_socket_uid(skb);
    o[5] = bpf_skb_cgroup_id(skb);
    struct bpf_sock_tuple t = {};
    t.ipv4.saddr = ip->saddr; t.ipv4.daddr = ip->daddr;
    t.ipv4.sport = th->source; t.ipv4.dport = th->dest;
    struct bpf_sock *l = bpf_sk_lookup_tcp(skb, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
    if (!l)
        return TC_ACT_SHOT;
#ifdef FULL_ASSIGN
    o[6] = bpf_sk_assign(skb, l, 0);
#else
    struct bpf_tcp_req_attrs a = {.rcv_tsval = 0x12345, .mss = 1460, .rcv_wscale = 7,
                                  .snd_wscale = 5, .ecn_ok = 1, .wscale_ok = 1,
                                  .sack_ok = 1, .usec_ts_ok = 1};
    o[6] = bpf_sk_assign_tcp_reqsk(skb, (struct sock *)l, &a, sizeof(a));
#endif
    bpf_sk_release(l);
    struct bpf_sock *s = skb->sk;
    if (!s)
        return TC_ACT_SHOT;
    o[7] = s->family; o[8] = s->state; o[9] = s->src_ip4; o[10] = s->src_ip6[0];
    o[11] = s->src_ip6[3]; o[12] = s->src_port; o[13] = s->dst_port; o[14] = s->dst_ip4;
    o[15] = s->dst_ip6[0]; o[16] = s->dst_ip6[3]; o[17] = s->bound_dev_if;
    o[18] = s->rx_queue_mapping;
    o[19] = bpf_sk_fullsock(s) != 0;
    o[20] = bpf_tcp_sock(s) != 0;
    struct bpf_sock *ls = bpf_get_listener_sock(s);
    o[21] = ls ? ls->src_port : 0;
    o[22] = bpf_get_socket_cookie(skb);
    o[23] = bpf_get_socket_cookie(skb);
    o[24] = bpf_get_netns_cookie(skb);
    o[25] = bpf_get_socket_uid(skb);
    o[26] = bpf_skb_cgroup_id(skb);
    o[27] = bpf_skb_ancestor_cgroup_id(skb, 0);
    o[28] = bpf_skb_ancestor_cgroup_id(skb, 1);
    o[29] = bpf_skb_ancestor_cgroup_id(skb, 32);
    o[30] = bpf_sk_assign(skb, s, 0);
    struct tcp_request_sock *rq = bpf_skc_to_tcp_request_sock(s);
    o[31] = rq != 0;
    if (rq) {
        struct request_sock *req = &rq->req.req;
        o[32] = req->__req_common.skc_family; o[33] = req->__req_common.skc_state;
        o[34] = req->__req_common.skc_tx_queue_mapping;
        o[35] = req->__req_common.skc_listener != 0;
        o[36] = req->mss; o[37] = BPF_CORE_READ_BITFIELD(req, syncookie);
        o[38] = req->ts_recent; o[39] = req->timeout;
        o[40] = BPF_CORE_READ_BITFIELD(&rq->req, snd_wscale);
        o[41] = BPF_CORE_READ_BITFIELD(&rq->req, rcv_wscale);
        o[42] = BPF_CORE_READ_BITFIELD(&rq->req, tstamp_ok);
        o[43] = BPF_CORE_READ_BITFIELD(&rq->req, sack_ok);
        o[44] = BPF_CORE_READ_BITFIELD(&rq->req, wscale_ok);
        o[45] = BPF_CORE_READ_BITFIELD(&rq->req, ecn_ok);
        o[46] = rq->req_usec_ts; o[47] = rq->ts_off;
        o[48] = bpf_skc_to_tcp_request_sock(rq) == rq;
        o[49] = req->__req_common.skc_cookie.counter;
    }
#ifndef FULL_ASSIGN
    l = bpf_sk_lookup_tcp(skb, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
    if (!l)
        return TC_ACT_SHOT;
    a.tstamp_ok = 1; a.usec_ts_ok = 0; a.rcv_tsecr = TSECR;
    o[54] = bpf_ktime_get_ns();
    o[50] = bpf_sk_assign_tcp_reqsk(skb, (struct sock *)l, &a, sizeof(a));
    o[55] = bpf_ktime_get_ns();
    bpf_sk_release(l);
    o[51] = bpf_get_socket_cookie(skb);
    o[52] = bpf_get_socket_cookie(skb);
    s = skb->sk;
    rq = s ? bpf_skc_to_tcp_request_sock(s) : 0;
    if (rq)
        o[53] = rq->ts_off;
#endif
    o[0] += 1;
    return TC_ACT_SHOT;     /* TCP never sees the SYN: nothing else changes the record */
}
""" % len(FIELDS)
TSECR = 0x40000000
SOURCE = f"#define TSECR {TSECR}u\n" + SOURCE

DEVICES = (Device(1, "lo", 65536, addresses=("127.0.0.1/8",)),
           Device(2, "vrx", 1500, "02:00:00:00:00:02", addresses=("10.0.0.1/24",)),
           Device(3, "vtx", 1500, "02:00:00:00:00:03"))
LISTENER = Socket("tcp", "0.0.0.0:80")
SYN = bytes(Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:03")
            / IP(src="10.0.0.2", dst="10.0.0.1") / TCP(sport=4000, dport=80, flags="S"))


def own_cgroups() -> tuple[str, tuple]:
    """This process's cgroup2 path and the (path, id) of it and each ancestor: a
    cgroup's id is its directory's inode number (the root's is 1)."""
    mount = cgroup2_mount()
    with open("/proc/self/cgroup") as f:
        path = next(line.split("::", 1)[1].strip() for line in f if line.startswith("0::"))
    if mount is None and path != "/":
        pytest.skip("needs a mounted cgroup2 hierarchy to name this process's cgroup ids")
    parts = [p for p in path.split("/") if p]
    paths = ["/" + "/".join(parts[:n]) for n in range(len(parts) + 1)]
    return path, tuple((p, os.stat(mount + p).st_ino if p != "/" else 1) for p in paths)


def cookie_of(sk, option: int) -> int:
    return struct.unpack("<Q", sk.getsockopt(socket.SOL_SOCKET, option, 8))[0]


def decode(value: bytes) -> dict:
    return dict(zip(FIELDS, struct.unpack(f"<{len(FIELDS)}Q", value)))


@pytest.fixture(scope="module")
def records(live_kernel):
    """(the kernel's record, pyebpf's, the Environment) of one SYN through the program
    at tc ingress, which gives it a request socket of the listener."""
    return _records(live_kernel, ())


@pytest.fixture(scope="module")
def full_records(live_kernel):
    """The same with bpf_sk_assign of the listener itself."""
    return _records(live_kernel, ("-DFULL_ASSIGN",))


def _records(live_kernel, defines):
    data = compile_object(SOURCE, flags=("-O2", "-mcpu=v3", *defines))
    cgroup, cgroups = own_cgroups()
    with world(Environment(devices=DEVICES, sockets=(LISTENER,)), "reqsk") as run, \
            live_kernel.load_object(data) as kobj:
        listener, = run.sockets

        def attach_and_open():
            tcx_attach("vrx", kobj.program("prog").fd)
            tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
            tx.bind(("vtx", 0))
            return tx, cookie_of(listener, SO_NETNS_COOKIE)

        tx, netns_cookie = run(attach_and_open)
        with tx, socket.socket() as root_ns_socket:
            init_netns_cookie = cookie_of(root_ns_socket, SO_NETNS_COOKIE)
            seen = kobj.maps["seen"]
            tx.send(SYN)
            deadline = time.monotonic() + 5
            while decode(seen.lookup(bytes(4)))["runs"] == 0:
                assert time.monotonic() < deadline, "the SYN never reached vrx's tc ingress"
                time.sleep(0.01)
            theirs = decode(seen.lookup(bytes(4)))
            env = Environment(
                devices=DEVICES, cgroups=cgroups, netns_cookie=netns_cookie,
                init_netns_cookie=init_netns_cookie,
                socket=PacketSocket(cookie=cookie_of(tx, SO_COOKIE), uid=os.getuid(),
                                    cgroup=cgroup),
                sockets=(Socket("tcp", "0.0.0.0:80", cookie=cookie_of(listener, SO_COOKIE),
                                uid=os.getuid(), cgroup=cgroup),))
    obj = pyebpf.load(data)
    try:
        res = obj.program("prog").run(SYN, ifindex=2, env=env, ingress=True)
        assert res.retval == 2          # TC_ACT_SHOT
        ours = decode(obj.maps["seen"].lookup(bytes(4)))
    finally:
        obj.close()
    return theirs, ours, env


def _pick(record: dict, names) -> dict:
    return {n: record[n] for n in names}


def test_before_the_assign_skb_sk_is_the_senders_packet_socket(records):
    theirs, ours, _ = records
    names = [f for f in FIELDS if f.startswith("before_")]
    assert _pick(ours, names) == _pick(theirs, names)


def test_the_assign_of_a_request_socket_succeeds_at_tc_ingress(records):
    theirs, ours, _ = records
    assert ours["assign"] == theirs["assign"] == 0


def test_skb_sk_reads_the_family_and_state_of_the_kernels_request_socket(records):
    """inet_reqsk_alloc gives the request socket the listener's family and
    TCP_NEW_SYN_RECV.  Nothing fills its addresses, ports or device before TCP takes the
    packet: the kernel's read whatever the slab object held before (an earlier
    handshake's 127.0.0.1:80 was seen), pyebpf's read 0, so they are not compared."""
    theirs, ours, _ = records
    names = ("family", "state")
    assert _pick(ours, names) == _pick(theirs, names) == {"family": socket.AF_INET,
                                                          "state": TCP_NEW_SYN_RECV}


def test_a_request_socket_is_no_full_socket_and_its_listener_is_the_listener(records):
    theirs, ours, _ = records
    names = ("fullsock", "tcp_sock", "listener_port")
    assert _pick(ours, names) == _pick(theirs, names) == {"fullsock": 0, "tcp_sock": 0,
                                                          "listener_port": 80}


def test_uid_and_cgroup_ids_after_the_assign_are_the_listeners(records):
    """sk_to_full_sk: bpf_get_socket_uid and the cgroup helpers read the listener."""
    theirs, ours, env = records
    names = ("uid", "cgroup_id", "ancestor_0", "ancestor_1", "ancestor_deep")
    assert _pick(ours, names) == _pick(theirs, names)
    assert theirs["cgroup_id"] == dict(env.cgroups)[env.sockets[0].cgroup]


def test_the_netns_cookie_after_the_assign_is_the_listeners_namespaces(records):
    theirs, ours, env = records
    assert ours["netns_cookie"] == theirs["netns_cookie"] == env.netns_cookie


def test_the_socket_cookie_after_the_assign_is_a_new_one(records):
    """The request socket's own cookie, made when first asked: not the listener's nor
    the packet socket's, the same at each ask.  Its value is the kernel's generator's
    next one; pyebpf's is Environment.request_socket_cookie()."""
    theirs, ours, env = records
    for record in (theirs, ours):
        assert record["cookie"] == record["cookie_again"]
        assert record["cookie"] not in (0, record["before_cookie"],
                                        env.socket_cookie(0))
    assert ours["cookie"] == env.request_socket_cookie()


def test_a_second_request_socket_gets_a_cookie_of_its_own(records):
    """A second assign replaces the first request socket (skb_orphan) with a new one,
    whose cookie, made when asked, is the generator's next value again: pyebpf's is one
    past the first's."""
    theirs, ours, env = records
    for record in (theirs, ours):
        assert record["second_assign"] == 0
        assert record["second_cookie"] == record["second_cookie_again"]
        assert record["second_cookie"] not in (0, record["cookie"], record["before_cookie"],
                                               env.socket_cookie(0))
    assert ours["second_cookie"] == env.request_socket_cookie() + 1


def test_request_socket_cookies_go_on_over_the_runs_of_an_environment(records):
    """The kernel's cookies come from one generator (sock_gen_cookie's atomic64) and are
    never given twice: a later run on the same Environment gives its request sockets
    the values after those of the runs before (the fixture's run took two)."""
    _, ours, env = records
    obj = pyebpf.load(compile_object(SOURCE, flags=("-O2", "-mcpu=v3")))
    try:
        obj.program("prog").run(SYN, ifindex=2, env=env, ingress=True)
        again = decode(obj.maps["seen"].lookup(bytes(4)))
    finally:
        obj.close()
    assert (again["cookie"], again["second_cookie"]) == (ours["second_cookie"] + 1,
                                                         ours["second_cookie"] + 2)


def test_a_request_sockets_ts_off_is_the_echoed_timestamp_less_the_tcp_clock(records):
    """With tstamp_ok, ts_off = rcv_tsecr - tcp_ns_to_ts(usec_ts_ok, tcp_clock_ns()) at
    the assign: the monotonic clock (in ms here) read between the program's two
    bpf_ktime_get_ns calls around it.  pyebpf's clock does not move within the run
    (ktime_step 0), so its ts_off is exactly rcv_tsecr less the clock in ms."""
    theirs, ours, _ = records
    for record in (theirs, ours):
        assert record["second_assign"] == 0
        echoed_clock = (TSECR - record["second_ts_off"]) % 2**32
        assert record["second_t0"] // 10**6 % 2**32 <= echoed_clock \
            <= record["second_t1"] // 10**6 % 2**32
    assert ours["second_ts_off"] == (TSECR - ours["second_t0"] // 10**6) % 2**32


def test_bpf_sk_assign_of_the_request_socket_is_eopnotsupp(records):
    """A request socket is unhashed (reqsk_alloc's sk_node_init)."""
    theirs, ours, _ = records
    assert ours["sk_assign_again"] == theirs["sk_assign_again"] == -EOPNOTSUPP & (2**64 - 1)


def test_bpf_skc_to_tcp_request_sock_gives_the_request_socket(records):
    """Its state is TCP_NEW_SYN_RECV; the cast of the pointer it gave gives it again."""
    theirs, ours, _ = records
    names = ("rq_cast", "rq_cast_again")
    assert _pick(ours, names) == _pick(theirs, names) == {"rq_cast": 1, "rq_cast_again": 1}


def test_the_request_sockets_struct_holds_what_the_kfunc_and_its_allocation_wrote(records):
    """struct tcp_request_sock read through CO-RE: inet_reqsk_alloc's family, state and
    timeout (TCP_TIMEOUT_INIT), reqsk_alloc's cleared tx queue, the listener (only
    whether it is set: rsk_listener shares a union with skc_flags, so the kernel's
    verifier reads it as a scalar and lets no load through it), and
    bpf_sk_assign_tcp_reqsk's copy of the attributes (syncookie set; ts_off 0 without
    tstamp_ok)."""
    theirs, ours, _ = records
    names = [f for f in FIELDS if f.startswith("rq_") and f not in ("rq_cast", "rq_cast_again",
                                                                   "rq_cookie")]
    assert _pick(ours, names) == _pick(theirs, names)
    assert (theirs["rq_has_listener"], theirs["rq_mss"], theirs["rq_snd_wscale"],
            theirs["rq_rcv_wscale"]) == (1, 1460, 5, 7)


def test_the_request_sockets_cookie_field_holds_the_cookie_once_made(records):
    """ir_cookie: what bpf_get_socket_cookie gave (__sock_gen_cookie writes it there)."""
    theirs, ours, _ = records
    assert (ours["rq_cookie"], theirs["rq_cookie"]) == (ours["cookie"], theirs["cookie"])
    assert theirs["rq_cookie"] != 0


def test_bpf_skc_to_tcp_request_sock_of_a_full_socket_is_null(full_records):
    theirs, ours, _ = full_records
    assert ours["rq_cast"] == theirs["rq_cast"] == 0


def test_after_bpf_sk_assign_skb_sk_reads_as_the_assigned_listener(full_records):
    """bpf_sk_assign: skb_orphan, then skb->sk is the socket given; struct bpf_sock
    reads the listener (a full socket, its own listener)."""
    theirs, ours, _ = full_records
    names = FIELDS[FIELDS.index("assign"):FIELDS.index("listener_port") + 1]
    assert _pick(ours, names) == _pick(theirs, names)
    assert (theirs["state"], theirs["src_port"], theirs["fullsock"]) == (10, 80, 1)


def test_after_bpf_sk_assign_the_socket_helpers_read_the_assigned_listener(full_records):
    theirs, ours, env = full_records
    names = FIELDS[FIELDS.index("cookie"):]
    assert _pick(ours, names) == _pick(theirs, names)
    assert theirs["cookie"] == env.socket_cookie(0)
