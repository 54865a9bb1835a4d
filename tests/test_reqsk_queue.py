"""Half-open connections in a listener's SYN queue (pyebpf.environment.HalfOpen) against
the kernel's: a namespace with a TCP listener on 0.0.0.0:80 gets a SYN from 10.0.0.2:4000
through a veth pair (sent by a packet socket on vtx, the peer's address owned by no one:
the SYN-ACK reaches vtx, where the test reads its ISN and window scale, and nothing
answers it, so the connection stays half-open), then BPF_PROG_TEST_RUN runs programs
that look the four-tuple up.  pyebpf runs them with an Environment whose listener
declares the same half-open connection (the SYN's values, the SYN-ACK's ISN and window
scale): the same retval and packet bytes.  Then, at vrx's tc ingress, an ACK of the
half-open four-tuple meets a program that assigns the request socket to it
(bpf_sk_assign): the same record.  The kernel's side of each is one observation
(kernel_observation), recorded for the unprivileged replay."""
from __future__ import annotations

import re
import socket
import struct
import time
from dataclasses import replace

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

import pyebpf
from pyebpf.environment import (Device, Environment, EnvironmentSpecError, HalfOpen,
                                Neighbour, Socket)
from bpfc import compile_c, compile_object
from netns import tcx_attach
from networld import world
from recorded_kernel import count_comparison
from skbdiff import packet_diff
from test_sockets import CASTS, COMMON_FIELDS, SOCK_FIELDS, kern_offset, tuple_fill

CLS = "sched_cls"
TCP_NEW_SYN_RECV, TCP_LISTEN = 12, 10
EOPNOTSUPP = 95
ETH_P_ALL = 3
DEVICES = (Device(1, "lo", 65536, addresses=("127.0.0.1/8",)),
           Device(2, "vrx", 1500, "02:00:00:00:00:02", addresses=("10.0.0.1/24", "fd00::1/64")),
           Device(3, "vtx", 1500, "02:00:00:00:00:03"))
# the SYN-ACK goes to vtx's MAC without asking ARP; vtx has no address, so it is dropped
# there unanswered (no RST ends the half-open connection)
PEER = Neighbour("vrx", "10.0.0.2", "02:00:00:00:00:03")
PEER6 = Neighbour("vrx", "fd00::2", "02:00:00:00:00:03")
SYN_SEQ, SYN_MSS, SYN_WSCALE = 0x11223344, 1400, 6
SYN = bytes(Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:03")
            / IP(src="10.0.0.2", dst="10.0.0.1")
            / TCP(sport=4000, dport=80, flags="S", seq=SYN_SEQ, window=64240,
                  options=[("MSS", SYN_MSS), ("SAckOK", b""), ("WScale", SYN_WSCALE)]))
# an IPv6 one, from [fd00::2]:4003 to a listener on [fd00::1]:443
V6_PORT = 4003
SYN6 = bytes(Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:03")
             / IPv6(src="fd00::2", dst="fd00::1")
             / TCP(sport=V6_PORT, dport=443, flags="S", seq=SYN_SEQ, window=64240,
                   options=[("MSS", SYN_MSS)]))
# an IPv4 one, from port 4004, to a dual-stack listener on [::]:8443
DUAL_PORT = 4004
SYN_DUAL = bytes(Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:03")
                 / IP(src="10.0.0.2", dst="10.0.0.1")
                 / TCP(sport=DUAL_PORT, dport=8443, flags="S", seq=SYN_SEQ, window=64240,
                       options=[("MSS", SYN_MSS)]))
# a second half-open connection, from port 4002, whose SYN has a timestamp option
TS_PORT, SYN_TSVAL = 4002, 0xABCDEF
TS_SYN = bytes(Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:03")
               / IP(src="10.0.0.2", dst="10.0.0.1")
               / TCP(sport=TS_PORT, dport=80, flags="S", seq=SYN_SEQ, window=64240,
                     options=[("MSS", SYN_MSS), ("Timestamp", (SYN_TSVAL, 0))]))
PACKET = bytes(Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:99")
               / IP(src="10.0.0.2", dst="10.0.0.1") / TCP(sport=4000, dport=80) / (b"p" * 400))

# struct tcp_request_sock fields read through bpf_skc_to_tcp_request_sock, with the size
# read (bitfields by their byte)
REQ = "req.req.__req_common."
REQUEST_FIELDS = (
    (REQ + "skc_family", 2), (REQ + "skc_state", 1), (REQ + "skc_num", 2),
    (REQ + "skc_dport", 2), (REQ + "skc_rcv_saddr", 4), (REQ + "skc_daddr", 4),
    *((f"{REQ}skc_v6_rcv_saddr.in6_u.u6_addr32[{k}]", 4) for k in (2, 3)),
    *((f"{REQ}skc_v6_daddr.in6_u.u6_addr32[{k}]", 4) for k in (2, 3)),
    (REQ + "skc_bound_dev_if", 4), (REQ + "skc_tx_queue_mapping", 2),
    (REQ + "skc_cookie.counter", 8), ("req.req.mss", 2), ("req.req.ts_recent", 4),
    ("req.req.timeout", 4), ("req.snd_wscale", 1), ("req.tstamp_ok", 1), ("req.ir_mark", 4),
    ("rcv_isn", 4), ("snt_isn", 4), ("ts_off", 4), ("rcv_nxt", 4),
)


def skc_prog(sport: int = 4000, src: str = "10.0.0.2", dst: str = "10.0.0.1",
             dport: int = 80) -> bytes:
    """bpf_skc_lookup_tcp of 10.0.0.2:``sport`` -> 10.0.0.1:80 (1 when NULL): the
    struct bpf_sock_common fields, bpf_tcp_sock / bpf_sk_fullsock / the listener socket's
    port and state, bpf_sk_assign's answer, which bpf_skc_to_* casts are NULL, and the
    struct tcp_request_sock fields read through its cast (whether rsk_listener is set;
    the cast of the cast gives it again), over the packet."""
    fill, size = tuple_fill(src, sport, dst, dport)
    reads = " ".join(f"o[{k}] = sk->{f};" for k, f in enumerate(COMMON_FIELDS))
    casts = " ".join(f"o[{20 + k}] = bpf_skc_to_{c}(sk) != 0;" for k, c in enumerate(CASTS))
    req = " ".join(f"o[{28 + k}] = *(__u{8 * n} *)(p + {kern_offset('tcp_request_sock', f)});"
                   for k, (f, n) in enumerate(REQUEST_FIELDS))
    flags = kern_offset("tcp_request_sock", "req.req.syncookie")
    listener = kern_offset("tcp_request_sock", REQ + "skc_listener")
    return compile_c(f"""
SEC("tc") int skc(struct __sk_buff *skb) {{
    struct bpf_sock_tuple t = {{}};
    __u64 o[54] = {{}};
    {fill}
    struct bpf_sock *sk = bpf_skc_lookup_tcp(skb, &t, {size}, BPF_F_CURRENT_NETNS, 0);
    if (!sk)
        return 1;
    {reads}
    o[16] = bpf_tcp_sock(sk) != 0;
    o[17] = bpf_sk_fullsock(sk) != 0;
    struct bpf_sock *l = bpf_get_listener_sock(sk);
    o[18] = l ? l->src_port : 0;
    o[19] = l ? l->state : 0;
    o[27] = bpf_sk_assign(skb, sk, 0);
    {casts}
    char *p = (char *)bpf_skc_to_tcp_request_sock(sk);
    if (p) {{
        {req}
        o[51] = *(__u8 *)(p + {flags});
        o[52] = *(__u64 *)(p + {listener}) != 0;
        o[53] = (char *)bpf_skc_to_tcp_request_sock(p) == p;
    }}
    bpf_sk_release(sk);
    return bpf_skb_store_bytes(skb, 14, o, sizeof(o), 0);
}}
""")


def sk_prog() -> bytes:
    """bpf_sk_lookup_tcp of the half-open four-tuple: the struct bpf_sock fields of what
    it finds (1 when NULL), over the packet."""
    fill, size = tuple_fill("10.0.0.2", 4000, "10.0.0.1", 80)
    reads = " ".join(f"o[{k}] = sk->{f};" for k, f in enumerate(SOCK_FIELDS))
    return compile_c(f"""
SEC("tc") int full(struct __sk_buff *skb) {{
    struct bpf_sock_tuple t = {{}};
    __u64 o[24] = {{}};
    {fill}
    struct bpf_sock *sk = bpf_sk_lookup_tcp(skb, &t, {size}, BPF_F_CURRENT_NETNS, 0);
    if (!sk)
        return 1;
    {reads}
    o[20] = bpf_sk_fullsock(sk) != 0;
    o[21] = bpf_tcp_sock(sk) != 0;
    bpf_sk_release(sk);
    return bpf_skb_store_bytes(skb, 14, o, sizeof(o), 0);
}}
""")


def snt_synack_prog() -> bytes:
    """The kernel's only: the time its first SYN-ACK was sent (snt_synack, us), of the
    connection from TS_PORT, over the packet."""
    fill, size = tuple_fill("10.0.0.2", TS_PORT, "10.0.0.1", 80)
    return compile_c(f"""
SEC("tc") int synack(struct __sk_buff *skb) {{
    struct bpf_sock_tuple t = {{}};
    {fill}
    struct bpf_sock *sk = bpf_skc_lookup_tcp(skb, &t, {size}, BPF_F_CURRENT_NETNS, 0);
    if (!sk)
        return 1;
    char *p = (char *)bpf_skc_to_tcp_request_sock(sk);
    __u64 when = p ? *(__u64 *)(p + {kern_offset("tcp_request_sock", "snt_synack")}) : 0;
    bpf_sk_release(sk);
    return bpf_skb_store_bytes(skb, 14, &when, sizeof(when), 0);
}}
""")


def retrans_prog() -> bytes:
    """The request socket of 10.0.0.2:4000's num_retrans and the byte of its
    syncookie bit and num_timeout, over the packet."""
    fill, size = tuple_fill("10.0.0.2", 4000, "10.0.0.1", 80)
    return compile_c(f"""
SEC("tc") int retrans(struct __sk_buff *skb) {{
    struct bpf_sock_tuple t = {{}};
    __u64 o[2] = {{}};
    {fill}
    struct bpf_sock *sk = bpf_skc_lookup_tcp(skb, &t, {size}, BPF_F_CURRENT_NETNS, 0);
    if (!sk)
        return 1;
    char *p = (char *)bpf_skc_to_tcp_request_sock(sk);
    if (p) {{
        o[0] = *(__u8 *)(p + {kern_offset("tcp_request_sock", "req.req.num_retrans")});
        o[1] = *(__u8 *)(p + {kern_offset("tcp_request_sock", "req.req.syncookie")});
    }}
    bpf_sk_release(sk);
    return bpf_skb_store_bytes(skb, 14, o, sizeof(o), 0);
}}
""")


PROGRAMS = {"skc": skc_prog, "skc-other-peer": lambda: skc_prog(4001), "sk": sk_prog,
            "skc-timestamps": lambda: skc_prog(TS_PORT),
            "skc-ipv6": lambda: skc_prog(V6_PORT, "fd00::2", "fd00::1", 443),
            "skc-dual-stack": lambda: skc_prog(DUAL_PORT, "10.0.0.2", "10.0.0.1", 8443)}


def _synacks(rx: socket.socket, count: int) -> dict:
    """The SYN-ACKs to our SYNs (``count`` of them), by the port each goes to."""
    found = {}
    deadline = time.monotonic() + 5
    while len(found) < count:
        assert time.monotonic() < deadline, "no SYN-ACK reached vtx"
        pkt = Ether(rx.recv(2048))
        if TCP in pkt and pkt[TCP].sport in (80, 443, 8443) and pkt[TCP].flags == "SA":
            found[pkt[TCP].dport] = pkt[TCP]
    return found


def _observe() -> dict:
    """In a namespace with the listener: the SYN sent, the SYN-ACK read, each program of
    PROGRAMS run by BPF_PROG_TEST_RUN."""
    codes = {name: make() for name, make in PROGRAMS.items()}
    retrans_code = retrans_prog()
    env = Environment(devices=DEVICES, sockets=(Socket("tcp", "0.0.0.0:80"),
                                                Socket("tcp", "[fd00::1]:443"),
                                                Socket("tcp", "[::]:8443")),
                      neighbours=(PEER, PEER6))
    with world(env, "reqskq") as run:
        def half_open():
            with socket.socket(socket.AF_PACKET, socket.SOCK_RAW,
                               socket.htons(ETH_P_ALL)) as rx:
                rx.bind(("vtx", 0))
                rx.send(SYN)
                rx.send(TS_SYN)
                rx.send(SYN6)
                rx.send(SYN_DUAL)
                synacks = _synacks(rx, 4)
            runs = {}
            for name, code in codes.items():
                with pyebpf.kernel.KernelProgram(code, CLS) as kprog:
                    r = kprog.test_run(PACKET, ctx={"ifindex": 2})
                runs[name] = {"retval": r.retval, "data": r.data.hex()}
            with pyebpf.kernel.KernelProgram(snt_synack_prog(), CLS) as kprog:
                when = kprog.test_run(PACKET, ctx={"ifindex": 2}).data[14:22]
            # the request timer resends the unanswered SYN-ACK a second after the SYN
            # (TCP_TIMEOUT_INIT): the run once num_retrans is no longer 0
            with pyebpf.kernel.KernelProgram(retrans_code, CLS) as kprog:
                deadline = time.monotonic() + 5
                while True:
                    r = kprog.test_run(PACKET, ctx={"ifindex": 2})
                    if r.data[14] or time.monotonic() > deadline:
                        break
                    time.sleep(0.05)
            runs["retrans"] = {"retval": r.retval, "data": r.data.hex()}
            return synacks, runs, int.from_bytes(when, "little")
        synacks, runs, snt_synack = run(half_open)
    plain, stamped = synacks[4000], synacks[TS_PORT]
    tsval, tsecr = dict(stamped.options)["Timestamp"]
    return {"snt_isn": plain.seq, "rcv_wscale": dict(plain.options)["WScale"],
            "ack": plain.ack, "ts_snt_isn": stamped.seq, "ts_tsval": tsval,
            "ts_tsecr": tsecr, "ts_snt_synack": snt_synack,
            "v6_snt_isn": synacks[V6_PORT].seq, "dual_snt_isn": synacks[DUAL_PORT].seq,
            "runs": runs}


@pytest.fixture(scope="module")
def kernel_half_open(kernel_observation):
    return kernel_observation("a half-open connection's lookups", "syn-queue v5", _observe)


def declared(seen: dict) -> Environment:
    """The world the kernel's namespace held, its half-open connection declared from the
    SYN the test sent and the SYN-ACK it read."""
    half = HalfOpen("10.0.0.2:4000", local="10.0.0.1", rcv_isn=SYN_SEQ,
                    snt_isn=seen["snt_isn"], mss=SYN_MSS, sack_ok=True,
                    snd_wscale=SYN_WSCALE, rcv_wscale=seen["rcv_wscale"])
    stamped = HalfOpen(f"10.0.0.2:{TS_PORT}", local="10.0.0.1", rcv_isn=SYN_SEQ,
                       snt_isn=seen["ts_snt_isn"], mss=SYN_MSS, ts_recent=SYN_TSVAL,
                       ts_off=ts_off(seen))
    v6 = HalfOpen(f"[fd00::2]:{V6_PORT}", rcv_isn=SYN_SEQ, snt_isn=seen["v6_snt_isn"],
                  mss=SYN_MSS)
    dual = HalfOpen(f"10.0.0.2:{DUAL_PORT}", local="10.0.0.1", rcv_isn=SYN_SEQ,
                    snt_isn=seen["dual_snt_isn"], mss=SYN_MSS)
    return Environment(devices=DEVICES, neighbours=(PEER, PEER6),
                       sockets=(Socket("tcp", "0.0.0.0:80", syn_queue=(half, stamped)),
                                Socket("tcp", "[fd00::1]:443", syn_queue=(v6,)),
                                Socket("tcp", "[::]:8443", syn_queue=(dual,))))


def ts_off(seen: dict) -> int:
    """The stamped connection's ts_off from its SYN-ACK: the timestamp it sent less the
    time it was sent in ms (tcp_synack_options: tsval = tcp_skb_timestamp_ts + ts_off;
    snt_synack is the same skb time in us)."""
    return (seen["ts_tsval"] - seen["ts_snt_synack"] // 1000) % 2**32


def _compare(kernel_half_open, name: str) -> list[int]:
    """Run PROGRAMS[name] in pyebpf in the declared world: the same retval and bytes as
    the kernel's; the u64 words it wrote."""
    theirs = kernel_half_open["runs"][name]
    ours = pyebpf.Program(PROGRAMS[name](), CLS).run(PACKET, ifindex=2,
                                                     env=declared(kernel_half_open))
    count_comparison()
    data = bytes.fromhex(theirs["data"])
    assert ours.retval & 0xFFFFFFFF == theirs["retval"], "retval differs"
    assert ours.data_out == data, packet_diff(ours.data_out, data)
    return [int.from_bytes(data[14 + 8 * k:22 + 8 * k], "little")
            for k in range((len(data) - 14) // 8)]


def test_a_request_socket_counts_its_retransmitted_syn_acks_as_the_kernels(
        kernel_half_open):
    """The kernel's half-open connection a second on (reqsk_timer_handler resent its
    SYN-ACK): num_retrans and num_timeout as declared in num_retrans, the syncookie
    bit clear."""
    theirs = kernel_half_open["runs"]["retrans"]
    data = bytes.fromhex(theirs["data"])
    count = data[14]
    assert count >= 1, "the kernel resent no SYN-ACK in five seconds"
    env = declared(kernel_half_open)
    listener = env.sockets[0]
    half = replace(listener.syn_queue[0], num_retrans=count)
    env = replace(env, sockets=(replace(listener, syn_queue=(half,) + listener.syn_queue[1:]),
                                *env.sockets[1:]))
    ours = pyebpf.Program(retrans_prog(), CLS).run(PACKET, ifindex=2, env=env)
    count_comparison()
    assert ours.retval & 0xFFFFFFFF == theirs["retval"], "retval differs"
    assert ours.data_out == data, packet_diff(ours.data_out, data)
    assert data[22] == count << 1


def test_the_syn_ack_acknowledges_the_syn(kernel_half_open):
    """The observation is of a real half-open connection: its SYN-ACK answers our SYN."""
    assert kernel_half_open["ack"] == SYN_SEQ + 1


def test_skc_lookup_finds_the_request_socket_as_the_kernel_does(kernel_half_open):
    """bpf_skc_lookup_tcp of the four-tuple gives the request socket: TCP_NEW_SYN_RECV,
    its addresses and ports, no full socket and no tcp_sock, its listener through
    bpf_get_listener_sock, bpf_sk_assign -EOPNOTSUPP off tc ingress, only the
    tcp_request_sock cast non-NULL."""
    o = _compare(kernel_half_open, "skc")
    fields = dict(zip(COMMON_FIELDS, o))
    assert (fields["state"], fields["src_port"], o[16], o[17], o[18], o[19]) == \
        (TCP_NEW_SYN_RECV, 80, 0, 0, 80, TCP_LISTEN)
    assert o[27] == -EOPNOTSUPP & (2**64 - 1)
    assert o[20:27] == [int(c == "tcp_request_sock") for c in CASTS]


def test_the_request_sockets_struct_holds_the_handshakes_values(kernel_half_open):
    """struct tcp_request_sock: the SYN's sequence number, MSS and window scale, the
    SYN-ACK's ISN, TCP_TIMEOUT_INIT, no cookie asked yet, rsk_listener set; the cast of
    the cast gives it again."""
    o = _compare(kernel_half_open, "skc")
    req = dict(zip((f for f, _ in REQUEST_FIELDS), o[28:]))
    assert (req["rcv_isn"], req["snt_isn"], req["req.req.mss"]) == \
        (SYN_SEQ, kernel_half_open["snt_isn"], SYN_MSS)
    assert (o[52], o[53]) == (1, 1)


def test_a_request_sockets_timestamps_are_the_syns_and_the_syn_acks(kernel_half_open):
    """A SYN with a timestamp option: tstamp_ok, ts_recent its value, ts_off the offset
    of the SYN-ACK's timestamp from the kernel's clock (random per connection,
    secure_tcp_ts_off), which echoes the SYN's."""
    o = _compare(kernel_half_open, "skc-timestamps")
    req = dict(zip((f for f, _ in REQUEST_FIELDS), o[28:]))
    assert kernel_half_open["ts_tsecr"] == SYN_TSVAL
    assert (req["req.req.ts_recent"], req["req.tstamp_ok"] & 1, req["ts_off"]) == \
        (SYN_TSVAL, 1, ts_off(kernel_half_open))


def test_an_ipv6_request_socket_reads_as_the_kernels(kernel_half_open):
    """An IPv6 half-open connection: its IPv6 addresses (tcp_v6_init_req), ports, MSS
    and ISNs."""
    o = _compare(kernel_half_open, "skc-ipv6")
    fields = dict(zip(COMMON_FIELDS, o))
    assert (fields["family"], fields["state"], fields["src_port"]) == (10, TCP_NEW_SYN_RECV, 443)


def test_an_ipv4_request_socket_of_a_dual_stack_listener_has_its_family(kernel_half_open):
    """inet_reqsk_alloc gives it the listener's family, AF_INET6, with the IPv4
    addresses (and their v4-mapped forms) tcp_v4_init_req sets."""
    o = _compare(kernel_half_open, "skc-dual-stack")
    fields = dict(zip(COMMON_FIELDS, o))
    assert (fields["family"], fields["state"], fields["src_port"]) == (10, TCP_NEW_SYN_RECV,
                                                                       8443)


def test_skc_lookup_of_another_peer_finds_the_listener(kernel_half_open):
    o = _compare(kernel_half_open, "skc-other-peer")
    assert dict(zip(COMMON_FIELDS, o))["state"] == TCP_LISTEN


def test_sk_lookup_of_the_half_open_tuple_gives_the_listener(kernel_half_open):
    """__bpf_sk_lookup takes sk_to_full_sk of what it found: the request socket's
    listener, a full socket."""
    o = _compare(kernel_half_open, "sk")
    fields = dict(zip(SOCK_FIELDS, o))
    assert (fields["state"], fields["src_port"], fields["dst_port"], o[20], o[21]) == \
        (TCP_LISTEN, 80, 0, 1, 1)


def test_an_assign_of_a_queued_request_socket_gives_skb_sk_it_at_ingress():
    """Modelled (test_run is never at tc ingress): bpf_sk_assign takes a hashed request
    socket; skb->sk is then it, its cookie its own, its uid its listener's."""
    code = compile_c("""
SEC("tc") int assign(struct __sk_buff *skb) {
    struct bpf_sock_tuple t = {};
    __u64 o[4] = {};
    """ + tuple_fill("10.0.0.2", 4000, "10.0.0.1", 80)[0] + """
    struct bpf_sock *sk = bpf_skc_lookup_tcp(skb, &t, 12, BPF_F_CURRENT_NETNS, 0);
    if (!sk)
        return 1;
    o[0] = bpf_sk_assign(skb, sk, 0);
    bpf_sk_release(sk);
    struct bpf_sock *s = skb->sk;
    o[1] = s ? s->state : 0;
    o[2] = bpf_get_socket_cookie(skb);
    o[3] = bpf_get_socket_uid(skb);
    return bpf_skb_store_bytes(skb, 14, o, sizeof(o), 0);
}
""")
    half = HalfOpen("10.0.0.2:4000", local="10.0.0.1", cookie=99)
    env = Environment(devices=DEVICES, sockets=(
        Socket("tcp", "0.0.0.0:80", uid=1000, syn_queue=(half,)),))
    res = pyebpf.Program(code, CLS).run(PACKET, ifindex=2, env=env, ingress=True)
    o = struct.unpack("<4Q", res.data_out[14:46])
    assert o == (0, TCP_NEW_SYN_RECV, 99, 1000)
    assert res.assigned_socket == 1


@pytest.mark.parametrize("queue,message", [
    ([HalfOpen("10.0.0.2:4000")], "sockets[0].syn_queue[0].local: the listener is bound to "
                                  "the wildcard address"),
    ([HalfOpen("[fd00::2]:4000", local="10.0.0.1")], "sockets[0].syn_queue[0].remote: "
                                                     "fd00::2 is not of the listener's family"),
    ([HalfOpen("10.0.0.2:4000", local="10.0.0.1", snd_wscale=15)],
     "sockets[0].syn_queue[0].snd_wscale: expected an integer in 0..14, got 15"),
    ([HalfOpen("10.0.0.2:4000", local="10.0.0.1", num_retrans=128)],
     "sockets[0].syn_queue[0].num_retrans: expected an integer in 0..127, got 128"),
    ([HalfOpen("10.0.0.2:4000", local="10.0.0.1")] * 2,
     "sockets[0].syn_queue: 10.0.0.2:4000 to port 80 is declared twice"),
], ids=["wildcard-without-local", "other-family", "wscale", "num-retrans", "twice"])
def test_a_bad_half_open_connection_is_refused_naming_it(queue, message):
    with pytest.raises(EnvironmentSpecError, match="^Environment: " + re.escape(message)):
        Environment(sockets=(Socket("tcp", "0.0.0.0:80", syn_queue=queue),))


def test_an_ipv4_half_open_connection_of_a_v6only_listener_is_refused():
    with pytest.raises(EnvironmentSpecError, match=r"sockets\[0\]\.syn_queue\[0\]\.remote: "
                                                   r"10\.0\.0\.2 is not of the listener's"):
        Environment(sockets=(Socket("tcp", "[::]:80", v6only=True, syn_queue=(
            HalfOpen("10.0.0.2:4000", local="10.0.0.1"),)),))


def test_only_a_listener_has_a_syn_queue():
    with pytest.raises(EnvironmentSpecError, match=r"sockets\[0\]\.syn_queue: only a TCP "
                                                   r"listener"):
        Environment(sockets=(Socket("udp", "0.0.0.0:53", syn_queue=(
            HalfOpen("10.0.0.2:4000", local="10.0.0.1"),)),))


def test_half_open_connections_load_from_toml(tmp_path):
    path = tmp_path / "net.toml"
    path.write_text("""
[[sockets]]
protocol = "tcp"
local = "0.0.0.0:80"

[[sockets.syn_queue]]
remote = "10.0.0.2:4000"
local = "10.0.0.1"
rcv_isn = 287454020
snt_isn = 7
mss = 1400
snd_wscale = 6
""")
    env = Environment.from_toml(path)
    assert env.request_sockets() == [(0, HalfOpen("10.0.0.2:4000", local="10.0.0.1",
                                                  rcv_isn=0x11223344, snt_isn=7, mss=1400,
                                                  snd_wscale=6))]


ASSIGN_FIELDS = ("runs", "found_state", "assign", "sk_state", "has_cookie", "uid",
                 "fullsock", "listener_port")
ASSIGN_SOURCE = r"""
#include <linux/in.h>
#include <linux/tcp.h>
char LICENSE[] SEC("license") = "GPL";
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
        ip->protocol != IPPROTO_TCP || th->syn || th->dest != bpf_htons(80))
        return TC_ACT_OK;
    __u32 zero = 0;
    struct record *r = bpf_map_lookup_elem(&seen, &zero);
    if (!r)
        return TC_ACT_OK;
    __u64 *o = r->v;
    struct bpf_sock_tuple t = {};
    t.ipv4.saddr = ip->saddr; t.ipv4.daddr = ip->daddr;
    t.ipv4.sport = th->source; t.ipv4.dport = th->dest;
    struct bpf_sock *sk = bpf_skc_lookup_tcp(skb, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
    if (!sk)
        return TC_ACT_SHOT;
    o[1] = sk->state;
    o[2] = bpf_sk_assign(skb, sk, 0);
    bpf_sk_release(sk);
    struct bpf_sock *s = skb->sk;
    if (s) {
        o[3] = s->state;
        o[4] = bpf_get_socket_cookie(skb) != 0;
        o[5] = bpf_get_socket_uid(skb);
        o[6] = bpf_sk_fullsock(s) != 0;
        struct bpf_sock *l = bpf_get_listener_sock(s);
        o[7] = l ? l->src_port : 0;
    }
    o[0] += 1;
    return TC_ACT_SHOT;     /* TCP never sees the ACK: the connection stays half-open */
}
""" % len(ASSIGN_FIELDS)
ACK = bytes(Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:03")
            / IP(src="10.0.0.2", dst="10.0.0.1")
            / TCP(sport=4000, dport=80, flags="A", seq=SYN_SEQ + 1))


def _observe_assign() -> dict:
    """A SYN made half-open, then at vrx's tc ingress the program above on an ACK of
    the same four-tuple: its record, and the SYN-ACK's ISN."""
    data = compile_object(ASSIGN_SOURCE, flags=("-O2",))
    env = Environment(devices=DEVICES, sockets=(Socket("tcp", "0.0.0.0:80"),),
                      neighbours=(PEER,))
    with world(env, "reqska") as run, pyebpf.kernel.load_object(data) as kobj:
        def half_open_then_ack():
            with socket.socket(socket.AF_PACKET, socket.SOCK_RAW,
                               socket.htons(0x0800)) as rx:
                rx.bind(("vtx", 0))
                rx.send(SYN)
                synack = _synacks(rx, 1)[4000]
                tcx_attach("vrx", kobj.program("prog").fd)
                rx.send(ACK)
            return synack.seq
        snt_isn = run(half_open_then_ack)
        seen = kobj.maps["seen"]
        deadline = time.monotonic() + 5
        while int.from_bytes(seen.lookup(bytes(4))[:8], "little") == 0:
            assert time.monotonic() < deadline, "the ACK never reached vrx's tc ingress"
            time.sleep(0.01)
        value = seen.lookup(bytes(4))
    return {"snt_isn": snt_isn, "record": value.hex()}


def test_bpf_sk_assign_of_a_queued_request_socket_at_ingress_is_the_kernels(
        kernel_observation):
    """At tc ingress (a veth's), bpf_sk_assign takes the request socket a lookup found
    (it is hashed): skb->sk is then it, in TCP_NEW_SYN_RECV, no full socket, with a
    cookie of its own and its listener's uid and listener."""
    seen = kernel_observation("an assign of a half-open connection's request socket",
                              "syn-queue assign v1", _observe_assign)
    theirs = dict(zip(ASSIGN_FIELDS, struct.unpack(f"<{len(ASSIGN_FIELDS)}Q",
                                                  bytes.fromhex(seen["record"]))))
    half = HalfOpen("10.0.0.2:4000", local="10.0.0.1", rcv_isn=SYN_SEQ,
                    snt_isn=seen["snt_isn"], mss=SYN_MSS, sack_ok=True,
                    snd_wscale=SYN_WSCALE)
    env = Environment(devices=DEVICES, neighbours=(PEER,),
                      sockets=(Socket("tcp", "0.0.0.0:80", syn_queue=(half,)),))
    obj = pyebpf.load(compile_object(ASSIGN_SOURCE, flags=("-O2",)))
    try:
        res = obj.program("prog").run(ACK, ifindex=2, env=env, ingress=True)
        ours = dict(zip(ASSIGN_FIELDS, struct.unpack(
            f"<{len(ASSIGN_FIELDS)}Q", obj.maps["seen"].lookup(bytes(4)))))
    finally:
        obj.close()
    count_comparison()
    assert ours == theirs
    assert (theirs["assign"], theirs["sk_state"], theirs["fullsock"]) == \
        (0, TCP_NEW_SYN_RECV, 0)
    assert res.assigned_socket == 1
