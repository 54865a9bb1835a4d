"""The socket helpers against the kernel: bpf_sk_lookup_tcp/udp and bpf_skc_lookup_tcp
find the socket the kernel finds (listeners by address, wildcard, dual-stack and
device; established and connected sockets by their four-tuple), struct bpf_sock and
struct bpf_tcp_sock read as the kernel's do, and bpf_sk_assign, bpf_sk_release,
bpf_tcp_sock, bpf_sk_fullsock and bpf_get_listener_sock answer as the kernel's.  Each
program copies what it read over the packet, so every field is compared; the kernel
runs them in a namespace built as SOCKETS declares (tests/networld.py)."""
from __future__ import annotations

import errno
import ipaddress
import re

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

import pyebpf
from pyebpf import errors
from pyebpf.environment import Device, Environment, Socket
from bpfc import TCP_REQSK_DECLS, compile_c, compile_object
from networld import world
from objdiff import refused_alike
from recorded_kernel import count_comparison
from skbdiff import assert_same

CLS = "sched_cls"
SOCKETS = Environment(
    devices=(Device(1, "lo", 65536, up=True, addresses=("127.0.0.1/8", "::1/128")),
             Device(2, "vrx", 1500, "02:00:00:00:00:02", addresses=("10.0.0.1/24", "fd00::1/64")),
             Device(3, "vtx", 1500, "02:00:00:00:00:03", addresses=("10.1.0.1/24",))),
    sockets=(Socket("tcp", "0.0.0.0:80"),
             Socket("tcp", "10.0.0.1:8080", mark=7, priority=3),
             # an accepted socket keeps its listener's mark (sk_clone_lock), not its
             # priority
             Socket("tcp", "10.0.0.1:8080", "10.0.0.1:40000", mark=7),
             Socket("tcp", "10.0.0.1:40000", "10.0.0.1:8080"),
             Socket("tcp", "[::]:443"),
             Socket("tcp", "[::]:444", v6only=True),
             Socket("tcp", "[fd00::1]:445"),
             Socket("tcp", "0.0.0.0:81", dev="vtx"),
             Socket("udp", "0.0.0.0:53"),
             Socket("udp", "10.0.0.1:5353"),
             Socket("udp", "10.0.0.1:5000", "10.0.0.2:6000"),
             Socket("udp", "[::]:5300")))

PACKET = bytes(Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:99")
               / IP(src="10.0.0.2", dst="10.0.0.1") / TCP(sport=4000, dport=80) / (b"p" * 400))


def _be32s(addr: str) -> list[str]:
    packed = ipaddress.ip_address(addr).packed
    return [f"{int.from_bytes(packed[k:k + 4], 'little'):#x}" for k in range(0, len(packed), 4)]


def tuple_fill(src: str, sport: int, dst: str, dport: int) -> tuple[str, int]:
    """C statements filling ``t`` (a struct bpf_sock_tuple) and the tuple's size."""
    if ipaddress.ip_address(dst).version == 4:
        return (f"t.ipv4.saddr = {_be32s(src)[0]}; t.ipv4.daddr = {_be32s(dst)[0]}; "
                f"t.ipv4.sport = bpf_htons({sport}); t.ipv4.dport = bpf_htons({dport});", 12)
    fill = [f"t.ipv6.saddr[{k}] = {w};" for k, w in enumerate(_be32s(src))]
    fill += [f"t.ipv6.daddr[{k}] = {w};" for k, w in enumerate(_be32s(dst))]
    fill += [f"t.ipv6.sport = bpf_htons({sport}); t.ipv6.dport = bpf_htons({dport});"]
    return " ".join(fill), 36


SOCK_FIELDS = ("bound_dev_if", "family", "type", "protocol", "mark", "priority", "src_ip4",
               "src_ip6[0]", "src_ip6[1]", "src_ip6[2]", "src_ip6[3]", "src_port", "dst_port",
               "dst_ip4", "dst_ip6[0]", "dst_ip6[1]", "dst_ip6[2]", "dst_ip6[3]", "state",
               "rx_queue_mapping")
COMMON_FIELDS = tuple(f for f in SOCK_FIELDS if f not in ("type", "protocol", "mark",
                                                          "priority"))
TCP_FIELDS = ("snd_cwnd", "rtt_min", "snd_ssthresh", "mss_cache", "rcv_nxt", "total_retrans",
              "bytes_received", "icsk_retransmits")


def lookup_prog(helper: str, src: str, sport: int, dst: str, dport: int, *,
                netns: str = "BPF_F_CURRENT_NETNS", flags: int = 0, size: int | None = None,
                tcp_fields: bool = False) -> bytes:
    """``sk = helper(skb, &t, size, netns, flags)``; NULL returns 1.  Otherwise the
    socket's fields (those of struct bpf_sock_common for bpf_skc_lookup_tcp), whether
    bpf_tcp_sock, bpf_sk_fullsock and bpf_get_listener_sock give a socket, and with
    ``tcp_fields`` struct bpf_tcp_sock's, go over the packet; the program returns what
    bpf_skb_store_bytes did (0)."""
    fill, tsize = tuple_fill(src, sport, dst, dport)
    fields = COMMON_FIELDS if helper == "bpf_skc_lookup_tcp" else SOCK_FIELDS
    if sport in ESTABLISHED_PORTS:
        # the kernel records a receive queue on an established socket or not, depending
        # on the path its packets took: not a value to compare
        fields = tuple(f for f in fields if f != "rx_queue_mapping")
    reads = " ".join(f"o[{k}] = sk->{f};" for k, f in enumerate(fields))
    tcp = " ".join(f"o[{24 + k}] = tp->{f};" for k, f in enumerate(TCP_FIELDS)) \
        if tcp_fields else ""
    return compile_c(f"""
SEC("tc") int look(struct __sk_buff *skb) {{
    struct bpf_sock_tuple t = {{}};
    __u64 o[36] = {{}};
    {fill}
    struct bpf_sock *sk = {helper}(skb, &t, {size if size is not None else tsize}, {netns},
                                   {flags});
    if (!sk)
        return 1;
    {reads}
    struct bpf_tcp_sock *tp = bpf_tcp_sock(sk);
    o[20] = tp != 0;
    if (tp) {{ {tcp} }}
    struct bpf_sock *full = bpf_sk_fullsock(sk);
    o[21] = full != 0;
    o[22] = bpf_get_listener_sock(sk) != 0;
    o[23] = bpf_sk_assign(skb, sk, 0);
    bpf_sk_release(sk);
    return bpf_skb_store_bytes(skb, 14, o, sizeof(o), 0);
}}
""")


@pytest.fixture(scope="module")
def socket_world():
    with world(SOCKETS, "socks") as run:
        yield run


ESTABLISHED_PORTS = (40000, 8080)
T, U, C = "bpf_sk_lookup_tcp", "bpf_sk_lookup_udp", "bpf_skc_lookup_tcp"
LOOKUPS = {
    "tcp-wildcard-listener": (T, "10.0.0.2", 4000, "10.0.0.1", 80),
    "tcp-wildcard-listener-any-address": (T, "10.0.0.2", 4000, "10.1.0.1", 80),
    "tcp-address-listener": (T, "10.0.0.9", 1, "10.0.0.1", 8080),
    "tcp-address-listener-other-address": (T, "10.0.0.9", 1, "10.1.0.1", 8080),
    "tcp-established": (T, "10.0.0.1", 40000, "10.0.0.1", 8080),
    "tcp-established-client-end": (T, "10.0.0.1", 8080, "10.0.0.1", 40000),
    "tcp-dual-stack-listener": (T, "10.0.0.2", 4000, "10.0.0.1", 443),
    "tcp-v6only-listener": (T, "10.0.0.2", 4000, "10.0.0.1", 444),
    "tcp6-wildcard-listener": (T, "fd00::2", 4000, "fd00::1", 443),
    "tcp6-v6only-listener": (T, "fd00::2", 4000, "fd00::1", 444),
    "tcp6-address-listener": (T, "fd00::2", 4000, "fd00::1", 445),
    "tcp6-no-listener": (T, "fd00::2", 4000, "fd00::1", 80),
    "tcp-device-listener-other-device": (T, "10.0.0.2", 4000, "10.0.0.1", 81),
    "tcp-no-listener": (T, "10.0.0.2", 4000, "10.0.0.1", 99),
    "udp-wildcard": (U, "10.0.0.2", 4000, "10.0.0.1", 53),
    "udp-address": (U, "10.0.0.2", 4000, "10.0.0.1", 5353),
    "udp-connected": (U, "10.0.0.2", 6000, "10.0.0.1", 5000),
    "udp-connected-other-peer": (U, "10.0.0.2", 6001, "10.0.0.1", 5000),
    "udp-tcp-port": (U, "10.0.0.2", 4000, "10.0.0.1", 80),
    "udp6-dual-stack": (U, "fd00::2", 4000, "fd00::1", 5300),
    "udp-dual-stack-from-ipv4": (U, "10.0.0.2", 4000, "10.0.0.1", 5300),
    "skc-listener": (C, "10.0.0.2", 4000, "10.0.0.1", 80),
    "skc-established": (C, "10.0.0.1", 40000, "10.0.0.1", 8080),
}


@pytest.mark.parametrize("case", LOOKUPS)
def test_socket_lookup_finds_what_the_kernel_finds(socket_world, case):
    code = lookup_prog(*LOOKUPS[case])
    socket_world(lambda: assert_same(code, CLS, PACKET, {"ifindex": 2}, env=SOCKETS))


def test_a_listener_bound_to_a_device_is_found_from_that_device(socket_world):
    code = lookup_prog(T, "10.0.0.2", 4000, "10.0.0.1", 81)
    engine, _ = socket_world(lambda: assert_same(code, CLS, PACKET, {"ifindex": 3},
                                                 env=SOCKETS))
    assert engine.retval == 0


def test_a_listeners_tcp_sock_reads_as_a_fresh_sockets(socket_world):
    """bpf_tcp_sock of a listener that has sent nothing: tcp_init_sock's values."""
    code = lookup_prog(T, "10.0.0.2", 4000, "10.0.0.1", 80, tcp_fields=True)
    socket_world(lambda: assert_same(code, CLS, PACKET, {"ifindex": 2}, env=SOCKETS))


@pytest.mark.parametrize("args", [
    dict(size=13), dict(flags=1), dict(netns="5"), dict(netns="0x100000000ULL"),
    dict(netns="0xffffffffULL")], ids=["bad-size", "flags", "other-netns", "netns-over-s32",
                                       "netns-minus-one-in-32-bits"])
def test_a_lookups_arguments_are_checked_as_the_kernel_checks_them(socket_world, args):
    code = lookup_prog(T, "10.0.0.2", 4000, "10.0.0.1", 80, **args)
    socket_world(lambda: assert_same(code, CLS, PACKET, {"ifindex": 2}, env=SOCKETS))


def test_sk_assign_records_the_socket_at_ingress():
    """test_run's packet is not at tc ingress (-EOPNOTSUPP, compared above); a replay at
    ingress gets the socket."""
    code = lookup_prog(T, "10.0.0.2", 4000, "10.0.0.1", 80)
    prog = pyebpf.Program(code, CLS)
    egress = prog.run(PACKET, ifindex=2, env=SOCKETS)
    ingress = prog.run(PACKET, ifindex=2, env=SOCKETS, ingress=True)
    assert egress.assigned_socket is None
    assert ingress.assigned_socket == 0
    assert int.from_bytes(ingress.data[14 + 23 * 8:14 + 24 * 8], "little") == 0


# --- bpf_sk_assign_tcp_reqsk: a request socket of the listener found ---------------------

REQSK = TCP_REQSK_DECLS + r"""SEC("tc") int prog(struct __sk_buff *skb)
{
    struct bpf_sock_tuple t = {};
    %s
    struct sock *sk = (struct sock *)%s(skb, &t, %d, BPF_F_CURRENT_NETNS, 0);
    if (!sk)
        return 1;
    struct bpf_tcp_req_attrs a = {.rcv_tsval = 7, .rcv_tsecr = 9, .mss = %d,
                                  .rcv_wscale = %d, .snd_wscale = 7, .wscale_ok = 1,
                                  .sack_ok = 1};
    a.reserved[2] = %d;
    int r = bpf_sk_assign_tcp_reqsk(skb, sk, &a, sizeof(a));
    bpf_sk_release(sk);
    return r;
}
"""


def reqsk_object(lookup: str = T, *, mss: int = 1460, rcv_wscale: int = 7,
                 reserved: int = 0, src: str = "10.0.0.2", sport: int = 4000,
                 dport: int = 80) -> bytes:
    """A SYN-cookie program's assign, after a ``lookup`` of 10.0.0.1:``dport``; its
    answer (1: no socket found)."""
    fill, tsize = tuple_fill(src, sport, "10.0.0.1", dport)
    return compile_object(REQSK % (fill, lookup, tsize, mss, rcv_wscale, reserved),
                          flags=("-O2", "-mcpu=v3"))


def _reqsk_retvals(data: bytes) -> tuple[int, int]:
    obj = pyebpf.load(data)
    try:
        ours = obj.program("prog").run(PACKET, ifindex=2, env=SOCKETS).retval
        with pyebpf.kernel.load_object(data) as kobj:
            theirs = kobj.program("prog").test_run(PACKET, ctx={"ifindex": 2}).retval
    finally:
        obj.close()
    count_comparison()
    return ours & 0xFFFFFFFF, theirs


def test_a_request_socket_assign_off_tc_ingress_is_einval_as_in_the_kernel(socket_world):
    """BPF_PROG_TEST_RUN's packet is not at tc ingress: with a listener found and valid
    attributes the kernel answers -EINVAL, as it does to every call there."""
    ours, theirs = socket_world(lambda: _reqsk_retvals(reqsk_object()))
    assert ours == theirs == -errno.EINVAL & 0xFFFFFFFF


def test_a_request_socket_assign_of_a_sock_common_is_refused_as_by_the_kernel():
    """A bpf_skc_lookup_tcp result is a struct sock_common, which holds no struct sock
    (btf_struct_ids_match)."""
    refused_alike(reqsk_object(C), "kernel function bpf_sk_assign_tcp_reqsk args#1 "
                                   "expected pointer to STRUCT sock but R2 has a pointer "
                                   "to STRUCT sock_common")


def _assign_at_ingress(data: bytes):
    obj = pyebpf.load(data)
    try:
        return obj.program("prog").run(PACKET, ifindex=2, env=SOCKETS, ingress=True)
    finally:
        obj.close()


def test_a_request_socket_of_the_listener_is_assigned_at_ingress():
    """Modelled (the kernel's test runs cannot show it): the packet gets a request
    socket of the listener, made with the attributes given."""
    result = _assign_at_ingress(reqsk_object())
    assert result.retval == 0
    assert result.assigned_socket == 0
    assert result.assigned_request == {
        "rcv_tsval": 7, "rcv_tsecr": 9, "mss": 1460, "rcv_wscale": 7, "snd_wscale": 7,
        "ecn_ok": 0, "wscale_ok": 1, "sack_ok": 1, "tstamp_ok": 0, "usec_ts_ok": 0}


@pytest.mark.parametrize("kw", [dict(mss=535), dict(reserved=1),
                                dict(rcv_wscale=15)],
                         ids=["mss-below-536", "reserved-set", "wscale-above-14"])
def test_a_request_socket_assign_with_bad_attributes_is_einval_at_ingress(kw):
    result = _assign_at_ingress(reqsk_object(**kw))
    assert result.retval & 0xFFFFFFFF == -errno.EINVAL & 0xFFFFFFFF
    assert result.assigned_socket is None and result.assigned_request is None


def test_a_request_socket_assign_of_an_established_socket_is_einval_at_ingress():
    result = _assign_at_ingress(reqsk_object(src="10.0.0.1", sport=40000, dport=8080))
    assert result.retval & 0xFFFFFFFF == -errno.EINVAL & 0xFFFFFFFF
    assert result.assigned_request is None


def test_an_assign_with_bpf_sk_assign_makes_no_request_socket():
    code = lookup_prog(T, "10.0.0.2", 4000, "10.0.0.1", 80)
    result = pyebpf.Program(code, CLS).run(PACKET, ifindex=2, env=SOCKETS, ingress=True)
    assert result.assigned_socket == 0 and result.assigned_request is None


def test_without_sockets_every_lookup_finds_nothing():
    res = pyebpf.Program(lookup_prog(T, "10.0.0.2", 4000, "10.0.0.1", 80), CLS).run(PACKET)
    assert res.retval == 1


# --- the model ----------------------------------------------------------------------------

@pytest.mark.parametrize("sock, message", [
    (Socket("sctp", "0.0.0.0:1"), "sockets[0].protocol: expected \"tcp\" or \"udp\""),
    (Socket("tcp", "10.0.0.1"), "sockets[0].local: expected ADDRESS:PORT"),
    (Socket("tcp", "fd00::1:80"), "sockets[0].local: expected ADDRESS:PORT"),
    (Socket("tcp", "10.0.0.1:80", "[fd00::1]:1"), "sockets[0].remote: [fd00::1]:1 is not of"),
    (Socket("udp", "0.0.0.0:53", dev="eth9"), "sockets[0].dev: 'eth9' is not a declared")])
def test_a_bad_socket_is_refused_naming_it(sock, message):
    with pytest.raises(errors.EbpfError, match=re.escape(message)):
        Environment(sockets=(sock,))


def test_sockets_load_from_toml(tmp_path):
    path = tmp_path / "net.toml"
    path.write_text('[[sockets]]\nprotocol = "tcp"\nlocal = "0.0.0.0:80"\n'
                    '[[sockets]]\nprotocol = "udp"\nlocal = "[::]:53"\nv6only = true\n')
    assert Environment.from_toml(path).sockets == (Socket("tcp", "0.0.0.0:80"),
                                                   Socket("udp", "[::]:53", v6only=True))


# --- skb->sk: the packet's own socket ----------------------------------------------------

def packet_sock_prog() -> bytes:
    """skb->sk's fields (through bpf_sk_fullsock) over the packet; 1 for no socket."""
    return compile_c("""
SEC("tc") int own(struct __sk_buff *skb) {
    __u64 o[24] = {};
    struct bpf_sock *sk = skb->sk;
    if (!sk)
        return 1;
    o[0] = sk->family;
    o[1] = sk->state;
    sk = bpf_sk_fullsock(sk);
    if (!sk)
        return 2;
    """ + " ".join(f"o[{2 + k}] = sk->{f};" for k, f in enumerate(SOCK_FIELDS)) + """
    o[22] = bpf_tcp_sock(sk) != 0;
    o[23] = bpf_get_listener_sock(sk) != 0;
    return bpf_skb_store_bytes(skb, 14, o, sizeof(o), 0);
}
""")


OWN_PACKETS = {
    "ipv4": PACKET,
    "ipv6": bytes(Ether(dst="02:00:00:00:00:02") / IPv6(src="fd00::2", dst="fd00::1")
                  / TCP(sport=4000, dport=80) / (b"q" * 300)),
    "arp": bytes(Ether(dst="ff:ff:ff:ff:ff:ff", type=0x0806) / (b"\0" * 300)),
}


@pytest.mark.parametrize("name", OWN_PACKETS)
def test_the_packets_socket_reads_as_test_runs(name):
    """test_run gives the packet a socket of its own kind: the packet's family and IP
    addresses, state TCP_CLOSE, nothing else."""
    assert_same(packet_sock_prog(), CLS, OWN_PACKETS[name], {})


def test_a_packet_without_a_socket_has_a_null_sk():
    res = pyebpf.Program(packet_sock_prog(), CLS).run(PACKET, env=Environment(socket=None))
    assert res.retval == 1


def test_an_unverified_write_to_the_packets_socket_is_a_fault_naming_it():
    code = compile_c(r"""
SEC("tc") int scribble(struct __sk_buff *skb) {
    struct bpf_sock *sk = skb->sk;
    if (!sk)
        return 1;
    *(volatile __u32 *)((char *)sk + 4) = 3;
    return 0;
}""")
    with pytest.raises(errors.ExecutionError, match="the packet's socket: the region is read-only"):
        pyebpf.Program(code, CLS, verify=False).run(PACKET)


# --- SYN cookies: the default tcp_syncookies (1) and listeners that never overflowed ------

def syncookie_prog(helper: str, port: int, flags: int, version: int = 4,
                   iph_len: int = 20, th_len: int = 20, doff: int = 5,
                   src: str = "10.0.0.2", dst: str = "10.0.0.1", sport: int = 4000) -> bytes:
    """``helper(sk, iph, iph_len, th, th_len)`` on headers built on the stack, ``sk`` the
    socket bpf_sk_lookup_tcp finds for port ``port`` (1 when none); returns its answer."""
    fill, size = tuple_fill(src, sport, dst, port)
    return compile_c(f"""
SEC("tc") int cookie(struct __sk_buff *skb) {{
    struct bpf_sock_tuple t = {{}};
    __u8 iph[40] = {{ {version << 4 | 5} }};
    __u8 th[24] = {{ 0x0f, 0xa0, 0x00, 0x50, 1, 2, 3, 4, 5, 6, 7, 8, {doff << 4}, {flags} }};
    {fill}
    struct bpf_sock *sk = bpf_sk_lookup_tcp(skb, &t, {size}, BPF_F_CURRENT_NETNS, 0);
    if (!sk)
        return 1;
    long rc = {helper}(sk, iph, {iph_len}, th, {th_len});
    bpf_sk_release(sk);
    return rc;
}}
""")


SYN, ACK, RST, FIN = 0x02, 0x10, 0x04, 0x01
GEN, CHECK = "bpf_tcp_gen_syncookie", "bpf_tcp_check_syncookie"
COOKIES = {
    "gen-syn": (GEN, 80, SYN), "gen-syn-ipv6-header": (GEN, 80, SYN, 6, 40),
    "gen-syn-ipv6-header-ipv6-listener": (GEN, 443, SYN, 6, 40),
    "gen-ack": (GEN, 80, ACK), "gen-syn-ack": (GEN, 80, SYN | ACK),
    "gen-syn-fin": (GEN, 80, SYN | FIN), "gen-syn-rst": (GEN, 80, SYN | RST),
    "gen-th-len-not-doff": (GEN, 80, SYN, 4, 20, 24),
    "gen-short-ip-header": (GEN, 80, SYN, 4, 16), "gen-ip-version-5": (GEN, 80, SYN, 5),
    "gen-short-ipv6-header": (GEN, 443, SYN, 6, 20),
    "gen-v6only-listener-ipv4-header": (GEN, 444, SYN, 4, 20, 20, 5, "fd00::2", "fd00::1"),
    "gen-established": (GEN, 8080, SYN, 4, 20, 20, 5, "10.0.0.1", "10.0.0.1", 40000),
    "check-ack": (CHECK, 80, ACK), "check-syn": (CHECK, 80, SYN),
    "check-ack-rst": (CHECK, 80, ACK | RST), "check-short-ip-header": (CHECK, 80, ACK, 4, 16),
    "check-short-tcp-header": (CHECK, 80, ACK, 4, 20, 16),
    "check-established": (CHECK, 8080, ACK, 4, 20, 20, 5, "10.0.0.1", "10.0.0.1", 40000),
}


@pytest.mark.parametrize("case", COOKIES)
def test_syncookie_helpers_answer_as_the_kernel_does(socket_world, case):
    code = syncookie_prog(*COOKIES[case])
    socket_world(lambda: assert_same(code, CLS, PACKET, {"ifindex": 2}, env=SOCKETS))


# --- bpf_skc_to_*: the kernel socket structs ---------------------------------------------

CASTS = ("tcp_sock", "tcp6_sock", "udp6_sock", "tcp_timewait_sock", "tcp_request_sock",
         "unix_sock", "mptcp_sock")
# struct sock_common, sock and inet_sock fields, by the end of their path in the struct,
# with the size read
COMMON_KERN = (("__sk_common.skc_family", 2), ("__sk_common.skc_state", 1),
               ("__sk_common.skc_num", 2), ("__sk_common.skc_dport", 2),
               ("__sk_common.skc_rcv_saddr", 4), ("__sk_common.skc_daddr", 4),
               *((f"__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32[{k}]", 4) for k in range(4)),
               *((f"__sk_common.skc_v6_daddr.in6_u.u6_addr32[{k}]", 4) for k in range(4)),
               ("__sk_common.skc_bound_dev_if", 4), ("sk.sk_protocol", 2), ("sk.sk_type", 2),
               ("sk.sk_mark", 4), ("sk.sk_priority", 4), ("inet_sport", 2), ("inet_saddr", 4))
TCP_KERN = (("snd_cwnd", 4), ("snd_ssthresh", 4), ("mss_cache", 4), ("rtt_min.s[0].v", 4))
# skc_reuseport and skc_ipv6only share their byte with flags the model leaves out
IPV6ONLY_REUSEPORT = "__sk_common.skc_reuseport"


def kern_offset(struct: str, suffix: str) -> int:
    """Where the field whose path ends with ``suffix`` is in the target BTF's struct."""
    from pyebpf.btf import Kind
    from pyebpf.btf.relo import target_btf
    t = target_btf().by_name(struct, Kind.STRUCT)[0]
    found = [f for f in t.fields() if f.name == suffix or f.name.endswith("." + suffix)]
    return found[0].offset


def cast_prog(helper: str, src: str, sport: int, dst: str, dport: int, *,
              read_from: str | None = None, tcp_fields: bool = False) -> bytes:
    """``sk = helper(...)`` (1 when none), then whether each bpf_skc_to_* cast of it is
    NULL, and the fields read through the ``read_from`` cast's pointer (at the target
    BTF's offsets: the kernel walks them as BTF accesses), over the packet."""
    fill, tsize = tuple_fill(src, sport, dst, dport)
    casts = " ".join(f"o[{k}] = bpf_skc_to_{c}(sk) != 0;" for k, c in enumerate(CASTS))
    reads = []
    if read_from is not None:
        fields = COMMON_KERN + (TCP_KERN if tcp_fields else ())
        for k, (name, size) in enumerate(fields):
            reads.append(f"o[{8 + k}] = *(__u{8 * size} *)(p + "
                         f"{kern_offset(read_from, name)});")
        flags = kern_offset(read_from, IPV6ONLY_REUSEPORT)
        reads.append(f"o[39] = *(__u8 *)(p + {flags}) & 0x30;")
        if read_from in ("tcp6_sock", "udp6_sock"):
            # inet_sock.pinet6 points at the struct's own ipv6_pinfo
            pinet6 = kern_offset(read_from, "pinet6")
            saddr = kern_offset("ipv6_pinfo", "saddr.in6_u.u6_addr32[0]")
            reads.append(f"struct ipv6_pinfo *np = *(struct ipv6_pinfo **)(p + {pinet6}); "
                         f"o[38] = *(__u32 *)((char *)np + {saddr + 12});")
    return compile_c(f"""
struct ipv6_pinfo;
SEC("tc") int cast(struct __sk_buff *skb) {{
    struct bpf_sock_tuple t = {{}};
    __u64 o[40] = {{}};
    {fill}
    struct bpf_sock *sk = {helper}(skb, &t, {tsize}, BPF_F_CURRENT_NETNS, 0);
    if (!sk)
        return 1;
    {casts}
    char *p = {f"(char *)bpf_skc_to_{read_from}(sk)" if read_from else "0"};
    if (p) {{ {" ".join(reads)} }}
    bpf_sk_release(sk);
    return bpf_skb_store_bytes(skb, 14, o, sizeof(o), 0);
}}
""")


CAST_CASES = {
    "tcp-wildcard-listener": ((T, "10.0.0.2", 4000, "10.0.0.1", 80), "tcp_sock", True),
    "tcp-listener-with-mark": ((T, "10.0.0.9", 1, "10.0.0.1", 8080), "tcp_sock", True),
    "tcp-established": ((T, "10.0.0.1", 40000, "10.0.0.1", 8080), "tcp_sock", False),
    "tcp-established-client-end": ((T, "10.0.0.1", 8080, "10.0.0.1", 40000), "tcp_sock",
                                   False),
    "tcp6-listener": ((T, "fd00::2", 4000, "fd00::1", 445), "tcp6_sock", True),
    "tcp6-v6only-listener": ((T, "fd00::2", 4000, "fd00::1", 444), "tcp6_sock", True),
    "tcp6-dual-stack-listener-from-ipv4": ((T, "10.0.0.2", 4000, "10.0.0.1", 443),
                                           "tcp6_sock", True),
    "udp-wildcard": ((U, "10.0.0.2", 4000, "10.0.0.1", 53), None, False),
    "udp-connected": ((U, "10.0.0.2", 6000, "10.0.0.1", 5000), None, False),
    "udp6-dual-stack": ((U, "fd00::2", 4000, "fd00::1", 5300), "udp6_sock", False),
    "skc-listener": ((C, "10.0.0.2", 4000, "10.0.0.1", 80), "tcp_sock", True),
}


@pytest.mark.parametrize("case", CAST_CASES)
def test_skc_casts_give_the_kernels_socket_structs(socket_world, case):
    """Which bpf_skc_to_* casts are NULL (by protocol and family; no timewait, request,
    unix or MPTCP socket), and the modelled fields read through the cast's pointer."""
    lookup, read_from, tcp_fields = CAST_CASES[case]
    code = cast_prog(*lookup, read_from=read_from, tcp_fields=tcp_fields)
    socket_world(lambda: assert_same(code, CLS, PACKET, {"ifindex": 2}, env=SOCKETS))


def test_skc_casts_of_the_packets_socket_are_null():
    """test_run's socket of the packet has no protocol: every cast is NULL."""
    code = compile_c("""
SEC("tc") int own(struct __sk_buff *skb) {
    __u64 o[8] = {};
    struct bpf_sock *sk = skb->sk;
    if (!sk)
        return 1;
    """ + " ".join(f"o[{k}] = bpf_skc_to_{c}(sk) != 0;" for k, c in enumerate(CASTS)) + """
    o[7] = 1;
    return bpf_skb_store_bytes(skb, 14, o, sizeof(o), 0);
}
""")
    engine, _ = assert_same(code, CLS, OWN_PACKETS["ipv4"], {})
    assert engine.retval == 0


def test_a_casts_pointer_reads_the_modelled_socket():
    """The engine alone: the tcp_sock of a listener bound to 10.0.0.1:8080 with mark 7."""
    code = cast_prog(T, "10.0.0.9", 1, "10.0.0.1", 8080, read_from="tcp_sock",
                     tcp_fields=True)
    res = pyebpf.Program(code, CLS).run(PACKET, ifindex=2, env=SOCKETS)
    o = [int.from_bytes(res.data[14 + 8 * k:22 + 8 * k], "little") for k in range(40)]
    assert o[:7] == [1, 0, 0, 0, 0, 0, 0]
    fields = dict(zip([n for n, _ in COMMON_KERN + TCP_KERN], o[8:]))
    assert fields["__sk_common.skc_family"] == 2
    assert fields["__sk_common.skc_state"] == 10
    assert fields["__sk_common.skc_num"] == 8080
    assert fields["__sk_common.skc_rcv_saddr"] == int.from_bytes(bytes([10, 0, 0, 1]), "little")
    assert fields["sk.sk_mark"] == 7 and fields["sk.sk_priority"] == 3
    assert fields["inet_sport"] == int.from_bytes((8080).to_bytes(2, "big"), "little")
    assert fields["snd_cwnd"] == 10 and fields["mss_cache"] == 536
