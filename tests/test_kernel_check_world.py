"""``tcsim --kernel-check`` in the ``--env`` world: the kernel's test runs are in a
network namespace built as the environment declares (pyebpf.kernel.world), so a program
whose helpers consult devices, routes and neighbours is held against the kernel packet
by packet; what a namespace cannot hold is named, and a world that cannot be built skips
the check with one line (pcap/kernelcheck.py)."""
from __future__ import annotations


import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from pyebpf.environment import Device, Environment, Socket
from pyebpf.kernel import world
from pyebpf.pcap import pcapio, tcsim
from pyebpf.pcap.report import read_line

from bpfc import compile_object

# two veth peers 2 and 3 forwarding, a route through a gateway on 3 with its neighbour,
# one with a locked MTU, a blackhole
NET = """
[[devices]]
ifindex = 1
name = "lo"
up = true
addresses = ["127.0.0.1/8"]

[[devices]]
ifindex = 2
name = "kcrx"
mac = "02:00:00:00:00:02"
addresses = ["10.0.0.1/24"]
forwarding = true

[[devices]]
ifindex = 3
name = "kctx"
mtu = 1400
mac = "02:00:00:00:00:03"
addresses = ["10.1.0.1/24"]
forwarding = true

[[routes]]
dst = "10.2.0.0/16"
dev = "kctx"
via = "10.1.0.2"

[[routes]]
dst = "10.3.0.0/16"
dev = "kctx"
via = "10.1.0.2"
mtu = 1300

[[routes]]
dst = "10.9.0.0/16"
type = "blackhole"

[[neighbours]]
dev = "kctx"
addr = "10.1.0.2"
lladdr = "02:00:00:00:01:02"
"""
# bpf_fib_lookup of the packet's IPv4 destination as forwarded from device 2 (its length
# as tot_len), bpf_check_mtu of the packet on device 3: the answers in the mark (fib's
# low byte, check_mtu's the next), the lookup's struct written over the packet from
# byte 14, so that every byte the kernel gives is compared
FORWARD = r"""
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
SEC("tc") int forward(struct __sk_buff *skb)
{
    void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
    struct iphdr *ip = data + sizeof(struct ethhdr);
    struct bpf_fib_lookup p = {};
    __u32 mtu = 0;
    if ((void *)(ip + 1) > end)
        return TC_ACT_OK;
    p.family = 2;
    p.ifindex = 2;
    p.tot_len = bpf_ntohs(ip->tot_len);
    p.l4_protocol = ip->protocol;
    p.ipv4_src = ip->saddr;
    p.ipv4_dst = ip->daddr;
    long rc = bpf_fib_lookup(skb, &p, sizeof(p), 0);
    long mtu_rc = bpf_check_mtu(skb, 3, &mtu, 0, 0);
    skb->mark = (rc & 0xff) | (mtu_rc & 0xff) << 8;
    bpf_skb_store_bytes(skb, 14, &p, sizeof(p), 0);
    return TC_ACT_OK;
}
char LICENSE[] SEC("license") = "GPL";
"""
# through the gateway, over the route's locked MTU, to a connected address without a
# neighbour, into the blackhole, where no route goes, and too long for device 3; each
# long enough to hold the struct written over it
FRAMES = [Ether(dst="02:00:00:00:00:02") / IP(src="10.0.0.2", dst=dst) / UDP() / (b"x" * n)
          for dst, n in (("10.2.3.4", 50), ("10.3.0.1", 1290), ("10.1.0.99", 50),
                         ("10.9.7.7", 50), ("192.168.7.7", 50), ("10.2.3.4", 1390))]


@pytest.fixture
def replay(tmp_path, capsys):
    """``(env text) -> (exit status, stderr lines)`` of tcsim --kernel-check of FORWARD
    over FRAMES with that --env."""
    (tmp_path / "forward.o").write_bytes(compile_object(FORWARD, prelude=False))
    pcapio.write(tmp_path / "in.pcap", [(k * 1000, bytes(f), len(f))
                                       for k, f in enumerate(FRAMES)])

    def run(env: str):
        (tmp_path / "net.toml").write_text(env)
        rc = tcsim.main([str(tmp_path / "forward.o"), "-r", str(tmp_path / "in.pcap"), "-q",
                         "--env", str(tmp_path / "net.toml"), "--kernel-check"])
        return rc, capsys.readouterr().err.splitlines()
    return run


def test_fib_lookup_and_check_mtu_agree_with_the_kernel_in_the_env_world(replay,
                                                                         live_kernel):
    assert replay(NET) == (0, [f"tcsim: kernel-check: {len(FRAMES)} packets compared, 0 "
                               "disagreed; maps agreed"])


def test_a_route_the_kernel_is_not_given_is_a_disagreement_and_exit_status_3(
        replay, live_kernel, monkeypatch):
    real = world.commands
    monkeypatch.setattr(world, "commands", lambda *a: [c for c in real(*a)
                                                        if "10.2.0.0/16" not in c])
    rc, err = replay(NET)
    # the two packets to 10.2.3.4: pyebpf forwards them (0, and 8: too long for the
    # route's device), the kernel finds no route (4)
    assert rc == 3
    assert err[0].startswith("tcsim: kernel-check: packet 0: bytes from byte 20: ")
    assert err[1] == "tcsim: kernel-check: packet 0: mark: pyebpf 0, kernel 4"
    assert err[2].startswith("tcsim: kernel-check: packet 5: bytes from byte 20: ")
    assert err[3] == "tcsim: kernel-check: packet 5: mark: pyebpf 264, kernel 260"
    assert err[4:] == [f"tcsim: kernel-check: {len(FRAMES)} packets compared, 2 disagreed; "
                       "maps agreed"]


# a TCP listener and a connected UDP socket on device 3's address
SOCKETS = NET + """
[[sockets]]
protocol = "tcp"
local = "10.1.0.1:80"

[[sockets]]
protocol = "udp"
local = "10.1.0.1:53"
remote = "10.1.0.2:5353"
"""
# the packet's TCP or UDP destination looked up as a socket (its source the remote end):
# found or not in the mark, the socket's state and port in the packet's first bytes
LOOKUP = r"""
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
SEC("tc") int lookup(struct __sk_buff *skb)
{
    void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
    struct iphdr *ip = data + sizeof(struct ethhdr);
    struct bpf_sock_tuple t = {};
    struct bpf_sock *sk;
    __u16 *ports = (void *)(ip + 1);
    if ((void *)(ports + 2) > end)
        return TC_ACT_OK;
    t.ipv4.saddr = ip->saddr;
    t.ipv4.daddr = ip->daddr;
    t.ipv4.sport = ports[0];
    t.ipv4.dport = ports[1];
    sk = ip->protocol == IPPROTO_TCP ?
        bpf_sk_lookup_tcp(skb, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0) :
        bpf_sk_lookup_udp(skb, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
    if (!sk) {
        skb->mark = 1;
        return TC_ACT_OK;
    }
    skb->mark = 2 | sk->state << 8 | sk->src_port << 16;
    bpf_sk_release(sk);
    return TC_ACT_OK;
}
char LICENSE[] SEC("license") = "GPL";
"""


def test_socket_lookups_agree_with_the_kernel_in_the_env_world(tmp_path, capsys,
                                                               live_kernel):
    """The listener, the connected UDP socket (from its remote end only) and misses
    are found as in the kernel, whose namespace holds the sockets --env declares."""
    (tmp_path / "lookup.o").write_bytes(compile_object(LOOKUP, prelude=False))
    frames = [Ether() / IP(src="10.1.0.2", dst=dst) / proto(sport=sport, dport=dport)
              / (b"x" * 20)
              for proto, sport, dport, dst in ((TCP, 4000, 80, "10.1.0.1"),
                                               (TCP, 4000, 81, "10.1.0.1"),
                                               (UDP, 5353, 53, "10.1.0.1"),
                                               (UDP, 5354, 53, "10.1.0.1"))]
    pcapio.write(tmp_path / "in.pcap", [(k * 1000, bytes(f), len(f))
                                       for k, f in enumerate(frames)])
    (tmp_path / "net.toml").write_text(SOCKETS)
    rc = tcsim.main([str(tmp_path / "lookup.o"), "-r", str(tmp_path / "in.pcap"), "-q",
                     "--env", str(tmp_path / "net.toml"), "--kernel-check", "--report",
                     str(tmp_path / "r.jsonl")])
    marks = [read_line(line)["mark"] for line in
             (tmp_path / "r.jsonl").read_text().splitlines()]
    assert (rc, capsys.readouterr().err.splitlines()) == (0, [
        "tcsim: kernel-check: 4 packets compared, 0 disagreed; maps agreed"])
    assert [m & 0xFF for m in marks] == [2, 1, 2, 1]


def test_a_world_that_cannot_be_built_skips_the_check_saying_why(replay, live_kernel):
    one_more = NET + '\n[[devices]]\nifindex = 4\nname = "kcodd"\n'
    assert replay(one_more) == (0, [
        "tcsim: kernel-check skipped: the --env world cannot be built in a network "
        "namespace (the namespace pairs devices 2-3, 4-5, ... as veth peers; 3 devices "
        "besides loopback cannot be paired)"])


def test_what_the_namespace_cannot_be_given_is_named_and_the_check_goes_on(replay,
                                                                           live_kernel):
    cookie = NET + '\n[[sockets]]\nprotocol = "udp"\nlocal = "10.1.0.1:53"\ncookie = 9\n'
    assert replay(cookie) == (0, [
        "tcsim: kernel-check: the kernel is not given what --env declares of socket "
        "cookies (the kernel numbers its sockets): runs that read them may disagree",
        f"tcsim: kernel-check: {len(FRAMES)} packets compared, 0 disagreed; maps agreed"])


def test_what_a_namespace_cannot_hold_is_named():
    env = Environment(sockets=(Socket("udp", "10.0.0.1:53", cookie=9),),
                      netns_cookie=5, syncookie_secret=bytes(range(32)))
    assert world.unbuilt(env) == [
        "socket cookies (the kernel numbers its sockets)",
        "namespace cookies (the kernel numbers its namespaces)",
        "the SYN cookie secret (the kernel's is random per boot)"]
    assert world.unbuilt(Environment(devices=(Device(1, "lo", up=True),))) == []
