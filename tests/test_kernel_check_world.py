"""``tcsim --kernel-check`` in the ``--env`` world: the kernel's test runs are in a
network namespace built as the environment declares (pyebpf.kernel.world), so a program
whose helpers consult devices, routes and neighbours is held against the kernel packet
by packet; what a namespace cannot hold is named, and a world that cannot be built skips
the check with one line (pcap/kernelcheck.py)."""
from __future__ import annotations

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from pyebpf.environment import Device, Environment, Socket
from pyebpf.kernel import world
from pyebpf.pcap import pcapio, tcsim

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


def test_a_world_that_cannot_be_built_skips_the_check_saying_why(replay, live_kernel):
    one_more = NET + '\n[[devices]]\nifindex = 4\nname = "kcodd"\n'
    assert replay(one_more) == (0, [
        "tcsim: kernel-check skipped: the --env world cannot be built in a network "
        "namespace (the namespace pairs devices 2-3, 4-5, ... as veth peers; 3 devices "
        "besides loopback cannot be paired)"])


def test_what_a_namespace_cannot_hold_is_named():
    env = Environment(sockets=(Socket("udp", "10.0.0.1:53", cookie=9),),
                      netns_cookie=5, syncookie_secret=bytes(range(32)))
    assert world.unbuilt(env) == [
        "socket cookies (the kernel numbers its sockets)",
        "namespace cookies (the kernel numbers its namespaces)",
        "the SYN cookie secret (the kernel's is random per boot)"]
    assert world.unbuilt(Environment(devices=(Device(1, "lo", up=True),))) == []
