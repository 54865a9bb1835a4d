"""bpf_fib_lookup, bpf_redirect_neigh and bpf_redirect_peer against the kernel: each
program fills a struct bpf_fib_lookup, calls the helper, writes the struct back over the
packet (so the kernel's every output byte is compared) and returns the helper's answer.
The kernel runs them in a namespace built as FIB declares (tests/networld.py)."""
from __future__ import annotations

import ipaddress
import re

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

import pyebpf
from pyebpf import errors, isa
from pyebpf.environment import Device, Environment, Neighbour, Route
from pyebpf.pcap.report import read_line
from bpfc import compile_c
from networld import world
from skbdiff import assert_same

CLS = "sched_cls"
FIB = Environment(
    devices=(Device(1, "lo", 65536, up=True, addresses=("127.0.0.1/8", "::1/128")),
             Device(2, "vrx", 1500, "02:00:00:00:00:02", addresses=("10.0.0.1/24", "fd00::1/64"),
                    forwarding=True),
             Device(3, "vtx", 1400, "02:00:00:00:00:03", addresses=("10.1.0.1/24", "fd01::1/64"),
                    forwarding=True)),
    routes=(Route("10.2.0.0/16", "vtx", "10.1.0.2"),
            Route("10.3.0.0/16", "vtx", "10.1.0.3", mtu=1300),
            Route("10.5.0.0/16", "vtx", "10.1.0.9", metric=7, src="10.0.0.1"),
            Route("10.9.0.0/16", type="blackhole"),
            Route("10.9.1.0/24", type="unreachable"),
            Route("10.9.2.0/24", type="prohibit"),
            Route("10.4.0.0/16", "vrx", "10.0.0.2", table=100),
            Route("fd02::/64", "vtx", "fd01::2"),
            Route("fd03::/64", "vtx", "fd01::3", mtu=1300),
            Route("fd09::/64", type="blackhole"),
            Route("fd09:1::/64", type="unreachable")),
    neighbours=(Neighbour("vtx", "10.1.0.2", "02:00:00:00:01:02"),
                Neighbour("vtx", "10.1.0.3", "02:00:00:00:01:03", "stale"),
                Neighbour("vrx", "10.0.0.2", "02:00:00:00:00:12", "reachable"),
                Neighbour("vtx", "fd01::2", "02:00:00:00:01:22"),
                Neighbour("vtx", "fd01::3", "02:00:00:00:01:23", "stale")))

PACKET = bytes(Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:99")
               / IP(src="10.0.0.2", dst="10.2.3.4") / UDP(sport=1, dport=2) / (b"p" * 100))
BIG = bytes(Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:99")
            / IP(src="10.0.0.2", dst="10.2.3.4") / UDP(sport=1, dport=2) / (b"p" * 1400))


def _words(text: str, family: int) -> str:
    """A C initializer for an address field: one __be32, or four words of an in6_addr."""
    packed = ipaddress.ip_address(text).packed
    if family == 4:
        return f"{int.from_bytes(packed, 'little'):#x}"
    return "{" + ", ".join(f"{int.from_bytes(packed[k:k + 4], 'little'):#x}"
                           for k in range(0, 16, 4)) + "}"


def fib_prog(family: int, dst: str, ifindex: int, flags: int = 0, src: str | None = None,
             tot_len: int = 0, tbid: int = 0, mark: int = 0, plen: int = 64) -> bytes:
    """r0 = bpf_fib_lookup(skb, &p, plen, flags) on a struct filled as given; the struct
    afterwards is stored over the packet from offset 14."""
    fields = [f"p.family = {2 if family == 4 else 10};", f"p.ifindex = {ifindex};",
              f"p.tot_len = {tot_len};", "p.l4_protocol = 17;",
              "p.sport = bpf_htons(1);", "p.dport = bpf_htons(2);"]
    if family == 4:
        fields.append(f"p.ipv4_dst = {_words(dst, 4)};")
        if src:
            fields.append(f"p.ipv4_src = {_words(src, 4)};")
    else:
        dst_words = _words(dst, 6)[1:-1].split(", ")
        fields += [f"p.ipv6_dst[{k}] = {w};" for k, w in enumerate(dst_words)]
        if src:
            fields += [f"p.ipv6_src[{k}] = {w};"
                       for k, w in enumerate(_words(src, 6)[1:-1].split(", "))]
    if tbid:
        fields.append(f"p.tbid = {tbid};")
    if mark:
        fields.append(f"*(__u32 *)((char *)&p + 52) = {mark};")
    body = "\n    ".join(fields)
    source = f"""
SEC("tc") int fib(struct __sk_buff *skb) {{
    struct bpf_fib_lookup p = {{}};
    {body}
    long rc = bpf_fib_lookup(skb, &p, {plen}, {flags});
    bpf_skb_store_bytes(skb, 14, &p, sizeof(p), 0);
    return rc;
}}
"""
    return compile_c(source)


@pytest.fixture(scope="module")
def fib_world():
    with world(FIB, "fib") as run:
        yield run


D, O, S, T, SRC, M = (isa.BPF_FIB_LOOKUP_DIRECT, isa.BPF_FIB_LOOKUP_OUTPUT,
                      isa.BPF_FIB_LOOKUP_SKIP_NEIGH, isa.BPF_FIB_LOOKUP_TBID,
                      isa.BPF_FIB_LOOKUP_SRC, isa.BPF_FIB_LOOKUP_MARK)
CASES = {
    "v4-via-gateway": (4, "10.2.3.4", 2), "v4-connected": (4, "10.1.0.2", 2),
    "v4-stale-neighbour": (4, "10.3.0.1", 2), "v4-no-neighbour": (4, "10.1.0.99", 2),
    "v4-no-neighbour-skip-neigh": (4, "10.1.0.99", 2, S),
    "v4-local-address": (4, "10.1.0.1", 2), "v4-broadcast": (4, "10.1.0.255", 2),
    "v4-no-route": (4, "192.168.7.7", 2), "v4-blackhole": (4, "10.9.7.7", 2),
    "v4-unreachable": (4, "10.9.1.1", 2), "v4-prohibit": (4, "10.9.2.2", 2),
    "v4-forwarding-off": (4, "10.2.3.4", 1), "v4-no-device": (4, "10.2.3.4", 99),
    "v4-unknown-flag": (4, "10.2.3.4", 2, 1 << 6), "v4-short-params": (4, "10.2.3.4", 2, 0,
                                                                       None, 0, 0, 0, 60),
    "v4-direct": (4, "10.2.3.4", 2, D), "v4-direct-local-address": (4, "10.1.0.1", 2, D),
    "v4-direct-tbid": (4, "10.4.1.1", 2, D | T, None, 0, 100),
    "v4-direct-tbid-other-route": (4, "10.2.3.4", 2, D | T, None, 0, 100),
    "v4-direct-tbid-no-table": (4, "10.2.3.4", 2, D | T, None, 0, 200),
    "v4-tbid-without-direct": (4, "10.4.1.1", 2, T, None, 0, 100),
    "v6-direct-tbid-no-table": (6, "fd02::5", 2, D | T, None, 0, 200),
    "v6-direct-tbid-main": (6, "fd02::5", 2, D | T, None, 0, 254),
    "v4-output-same-device": (4, "10.2.3.4", 3, O), "v4-output-other-device": (4, "10.2.3.4", 2, O),
    "v4-src": (4, "10.2.3.4", 2, SRC), "v4-src-preferred": (4, "10.5.0.1", 2, SRC | S),
    "v4-metric": (4, "10.5.0.1", 2, S), "v4-mark": (4, "10.2.3.4", 2, M, None, 0, 0, 77),
    "v4-tot-len-fits": (4, "10.2.3.4", 2, 0, None, 1400),
    "v4-tot-len-too-big": (4, "10.2.3.4", 2, 0, None, 1401),
    "v4-locked-route-mtu": (4, "10.3.0.1", 2, 0, None, 1350),
    "v6-via-gateway": (6, "fd02::5", 2), "v6-connected": (6, "fd01::2", 2),
    "v6-stale-neighbour": (6, "fd03::1", 2), "v6-no-neighbour": (6, "fd01::77", 2),
    "v6-skip-neigh": (6, "fd01::77", 2, S), "v6-local-address": (6, "fd01::1", 2),
    "v6-link-local": (6, "fe80::1", 2), "v6-link-local-no-device": (6, "fe80::1", 99),
    "v6-multicast-src": (6, "fd02::5", 2, 0, "ff02::1"), "v6-no-route": (6, "fd77::1", 2),
    "v6-blackhole": (6, "fd09::1", 2), "v6-unreachable": (6, "fd09:1::1", 2),
    "v6-forwarding-off": (6, "fd02::5", 1), "v6-direct": (6, "fd02::5", 2, D),
    "v6-direct-local-address": (6, "fd01::1", 2, D),
    "v6-src": (6, "fd02::5", 2, SRC), "v6-tot-len-too-big": (6, "fd02::5", 2, 0, None, 1401),
    "v6-locked-route-mtu": (6, "fd03::1", 2, 0, None, 1350),
    "v6-tot-len-fits": (6, "fd02::5", 2, 0, None, 1400),
    "v6-output-other-device": (6, "fd02::5", 2, O),
}


@pytest.mark.parametrize("case", CASES)
def test_fib_lookup_matches_the_kernel(fib_world, case):
    code = fib_prog(*CASES[case])
    fib_world(lambda: assert_same(code, CLS, PACKET, {"ifindex": 2}, env=FIB))


def test_fib_lookup_checks_the_packet_against_the_output_devices_mtu(fib_world):
    """Without tot_len the packet itself must fit vtx's 1400 bytes (is_skb_forwardable)."""
    code = fib_prog(4, "10.2.3.4", 2)
    engine, _ = fib_world(lambda: assert_same(code, CLS, BIG, {"ifindex": 2}, env=FIB))
    assert engine.retval == isa.BPF_FIB_LKUP_RET_FRAG_NEEDED


def test_fib_lookup_fills_the_next_hop():
    res = pyebpf.Program(fib_prog(4, "10.2.3.4", 2), CLS).run(PACKET, ifindex=2, env=FIB)
    p = res.data[14:14 + 64]
    assert res.retval == 0
    assert int.from_bytes(p[8:12], "little") == 3                        # vtx
    assert p[32:36] == ipaddress.ip_address("10.1.0.2").packed           # the gateway
    assert p[52:58] == bytes.fromhex("020000000003") and p[58:64] == bytes.fromhex("020000000102")
    assert int.from_bytes(p[6:8], "little") == 1400                      # mtu_result


def test_without_routes_every_lookup_is_not_forwarded_or_disabled():
    """The default Environment is a fresh namespace: loopback only, forwarding off."""
    res = pyebpf.Program(fib_prog(4, "10.2.3.4", 1), CLS).run(PACKET)
    assert res.retval == isa.BPF_FIB_LKUP_RET_FWD_DISABLED


# --- bpf_redirect_neigh and bpf_redirect_peer ------------------------------------------

def redirect_prog(call: str) -> bytes:
    return compile_c(f"""
SEC("tc") int redir(struct __sk_buff *skb) {{
    struct bpf_redir_neigh nh = {{ .nh_family = 2, .ipv4_nh = 0x0201000a }};
    (void)nh;
    return {call};
}}
""")


REDIRECTS = {
    "neigh": ("bpf_redirect_neigh(3, 0, 0, 0)", "neigh"),
    "neigh-nexthop": ("bpf_redirect_neigh(3, &nh, sizeof(nh), 0)", "nexthop"),
    "neigh-short-params": ("bpf_redirect_neigh(3, &nh, 8, 0)", None),
    "neigh-flags": ("bpf_redirect_neigh(3, 0, 0, 1)", None),
    "peer": ("bpf_redirect_peer(3, 0)", "peer"),
    "peer-flags": ("bpf_redirect_peer(3, 1)", None),
}


@pytest.mark.parametrize("case", REDIRECTS)
def test_redirect_neigh_and_peer_verdicts_match_the_kernel(case):
    call, via = REDIRECTS[case]
    engine, _ = assert_same(redirect_prog(call), CLS, PACKET, {})
    assert engine.redirect_via == via
    assert (engine.redirect is None) == (via is None)


def test_a_redirect_through_bpf_redirect_has_no_via():
    res = pyebpf.Program(redirect_prog("bpf_redirect(3, 0)"), CLS).run(PACKET)
    assert res.redirect == (3, False) and res.redirect_via is None


# --- the model ----------------------------------------------------------------------------

def test_addresses_give_the_kernels_local_and_connected_routes():
    env = Environment(devices=(Device(1, "lo", up=False), Device(2, "e", addresses=("10.0.0.1/24",))))
    assert [(t, kind, str(net), dev, src and str(src)) for t, kind, net, dev, _, _, src, _
            in env.fib()] == [(255, 2, "10.0.0.1/32", 2, "10.0.0.1"),
                              (255, 3, "10.0.0.255/32", 2, "10.0.0.1"),
                              (254, 1, "10.0.0.0/24", 2, "10.0.0.1")]


@pytest.mark.parametrize("route, message", [
    (Route("10.0.0.0/33", "e"), "routes[0].dst: expected a prefix"),
    (Route("10.0.0.0/24", "nope"), "routes[0].dev: 'nope' is not a declared device"),
    (Route("10.0.0.0/24"), "routes[0].dev: a unicast route needs a device"),
    (Route("10.0.0.0/24", "e", "fd00::1"), "routes[0].via: fd00::1 is not of the family"),
    (Route("10.0.0.0/24", "e", type="anycastish"), "routes[0].type: expected one of"),
    (Route("10.0.0.0/24", "down"), "routes[0].dev: 'down' is down")])
def test_a_bad_route_is_refused_naming_it(route, message):
    with pytest.raises(errors.EbpfError, match=re.escape(message)):
        Environment(devices=(Device(1, "lo"), Device(2, "e"), Device(3, "down", up=False)),
                    routes=(route,))


def test_routes_and_neighbours_load_from_toml(tmp_path):
    path = tmp_path / "net.toml"
    path.write_text('[[devices]]\nifindex = 1\nname = "lo"\nup = false\n'
                    '[[devices]]\nifindex = 2\nname = "vtx"\naddresses = ["10.1.0.1/24"]\n'
                    'forwarding = true\n'
                    '[[routes]]\ndst = "10.2.0.0/16"\ndev = "vtx"\nvia = "10.1.0.2"\n'
                    '[[routes]]\ndst = "10.9.0.0/16"\ntype = "blackhole"\n'
                    '[[neighbours]]\ndev = "vtx"\naddr = "10.1.0.2"\nlladdr = "02:00:00:00:01:02"\n')
    env = Environment.from_toml(path)
    assert env.routes == (Route("10.2.0.0/16", "vtx", "10.1.0.2"),
                          Route("10.9.0.0/16", type="blackhole"))
    assert env.neighbours == (Neighbour("vtx", "10.1.0.2", "02:00:00:00:01:02"),)
    assert env.devices[1].forwarding and env.devices[1].addresses == ("10.1.0.1/24",)


def test_a_route_entry_missing_its_prefix_names_the_key(tmp_path):
    path = tmp_path / "net.toml"
    path.write_text('[[routes]]\ndev = "lo"\n')
    with pytest.raises(errors.EbpfError, match=r"routes\[0\]: dst is required"):
        Environment.from_toml(path)


FORWARDER = r"""
SEC("tc") int fwd(struct __sk_buff *skb) {
    void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
    struct iphdr *ip = data + sizeof(struct ethhdr);
    if ((void *)(ip + 1) > end)
        return TC_ACT_OK;
    struct bpf_fib_lookup p = {};
    p.family = 2;
    p.ifindex = skb->ingress_ifindex;
    p.ipv4_src = ip->saddr;
    p.ipv4_dst = ip->daddr;
    if (bpf_fib_lookup(skb, &p, sizeof(p), 0) != BPF_FIB_LKUP_RET_SUCCESS)
        return TC_ACT_OK;
    return bpf_redirect_neigh(p.ifindex, 0, 0, 0);
}
"""


def test_tcsim_forwards_by_the_routes_of_its_env_file(tmp_path, capsys):
    from pyebpf.pcap import pcapio, tcsim
    from bpfc import compile_object
    (tmp_path / "fwd.o").write_bytes(compile_object(FORWARDER))
    (tmp_path / "net.toml").write_text(
        '[[devices]]\nifindex = 1\nname = "lo"\nup = false\n'
        '[[devices]]\nifindex = 2\nname = "eth0"\naddresses = ["10.0.0.1/24"]\n'
        'forwarding = true\n'
        '[[devices]]\nifindex = 3\nname = "eth1"\naddresses = ["10.1.0.1/24"]\n'
        '[[routes]]\ndst = "10.2.0.0/16"\ndev = "eth1"\nvia = "10.1.0.2"\n'
        '[[neighbours]]\ndev = "eth1"\naddr = "10.1.0.2"\nlladdr = "02:00:00:00:01:02"\n')
    frames = [bytes(Ether() / IP(src="10.0.0.2", dst=dst) / UDP()) for dst in
              ("10.2.0.9", "192.168.0.1", "10.2.1.1")]
    pcapio.write(tmp_path / "in.pcap", [(k, f, len(f)) for k, f in enumerate(frames)])
    rc = tcsim.main([str(tmp_path / "fwd.o"), "-r", str(tmp_path / "in.pcap"), "--env",
                     str(tmp_path / "net.toml"), "--field", "ingress_ifindex=2",
                     "--field", "ifindex=2", "--report", str(tmp_path / "r.jsonl"), "--quiet"])
    capsys.readouterr()
    report = [read_line(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert rc == 0
    assert [r["redirect"] for r in report] == [{"ifindex": 3, "ingress": False}, None,
                                               {"ifindex": 3, "ingress": False}]
