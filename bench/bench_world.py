#!/usr/bin/env python3
"""The cost of the helpers that consult the modelled network, as ratios in one run.

    python bench/bench_world.py [--frames 200000] [--repeat 5]

Three clang-compiled tc programs replay the same in-memory capture of 64-byte TCP frames
through the C replay loop (``pyebpf.pcap.tcsim.Replay``, ingress, the Environment of
``WORLD``): ``parse`` reads the Ethernet and IPv4 headers and returns TC_ACT_OK;
``fib`` does the same and calls ``bpf_fib_lookup`` on the destination (a gateway route,
its neighbour found); ``sock`` calls ``bpf_sk_lookup_tcp`` on the frame's four-tuple
(a listener among 64 sockets), reads the socket's state and releases it.  Printed: each
program's packets/s (median of ``--repeat``) and the two helpers' programs over
``parse``.  The machine may be shared: only ratios taken in one run mean much.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout

import pyebpf  # noqa: E402
from pyebpf import bpfcc  # noqa: E402
from pyebpf.environment import Device, Environment, Neighbour, Route, Socket  # noqa: E402
from pyebpf.pcap import pcapio  # noqa: E402
from pyebpf.pcap.tcsim import Replay  # noqa: E402

WORLD = Environment(
    devices=(Device(1, "lo", 65536, up=False),
             Device(2, "eth0", 1500, "02:00:00:00:00:02", addresses=("10.0.0.1/24",),
                    forwarding=True),
             Device(3, "eth1", 1500, "02:00:00:00:00:03", addresses=("10.1.0.1/24",),
                    forwarding=True)),
    routes=tuple(Route(f"10.{k}.0.0/16", "eth1", "10.1.0.2") for k in range(2, 66)),
    neighbours=(Neighbour("eth1", "10.1.0.2", "02:00:00:00:01:02"),),
    sockets=tuple(Socket("tcp", f"10.0.0.1:{1000 + k}") for k in range(63))
    + (Socket("tcp", "0.0.0.0:80"),))

PRELUDE = """
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#define PARSE \\
    void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end; \\
    struct ethhdr *eth = data; struct iphdr *ip = (void *)(eth + 1); \\
    struct tcphdr *th = (void *)(ip + 1); \\
    if ((void *)(th + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP)) return TC_ACT_OK;
"""
PROGRAMS = {
    "parse": "SEC(\"tc\") int parse(struct __sk_buff *skb) { PARSE return TC_ACT_OK; }",
    "fib": """SEC("tc") int fib(struct __sk_buff *skb) { PARSE
        struct bpf_fib_lookup p = {};
        p.family = 2; p.ifindex = skb->ingress_ifindex; p.ipv4_dst = ip->daddr;
        p.ipv4_src = ip->saddr;
        return bpf_fib_lookup(skb, &p, sizeof(p), 0) == 0 ? TC_ACT_OK : TC_ACT_SHOT; }""",
    "sock": """SEC("tc") int sock(struct __sk_buff *skb) { PARSE
        struct bpf_sock_tuple t = {};
        t.ipv4.saddr = ip->saddr; t.ipv4.daddr = ip->daddr;
        t.ipv4.sport = th->source; t.ipv4.dport = th->dest;
        struct bpf_sock *sk = bpf_sk_lookup_tcp(skb, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
        if (!sk) return TC_ACT_SHOT;
        int ok = sk->state == BPF_TCP_LISTEN;
        bpf_sk_release(sk);
        return ok ? TC_ACT_OK : TC_ACT_SHOT; }""",
}


def frame(k: int) -> bytes:
    ip = bytes.fromhex("450000280000400040060000") + bytes([10, 0, 0, 9]) \
        + bytes([10, 2 + k % 64, 0, 1])
    tcp = (40000 + k % 1000).to_bytes(2, "big") + (80).to_bytes(2, "big") + bytes(16)
    return bytes.fromhex("020000000002020000000009") + b"\x08\x00" + ip + tcp


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    cap = pcapio.Capture(path="-", format="pcap",
                         frames=[frame(k) for k in range(args.frames)],
                         ts=[k * 1000 for k in range(args.frames)])
    rates = {}
    tmp = Path(tempfile.mkdtemp(prefix="bench-world-"))
    for name, body in PROGRAMS.items():
        src = tmp / f"{name}.c"
        src.write_text(PRELUDE + body)
        obj = pyebpf.load(bpfcc.compile(src))
        prog = obj.program(name)
        times = []
        for _ in range(args.repeat):
            r = Replay(cap, [prog], fields={"ifindex": 2, "ingress_ifindex": 2, "env": WORLD})
            assert set(r.actions) == {0}, f"{name}: not every frame passed"
            times.append(r.elapsed)
        rates[name] = args.frames / statistics.median(times)
        print(f"{name:6} {rates[name]:12,.0f} packets/s")
    for name in ("fib", "sock"):
        print(f"{name} / parse: {rates[name] / rates['parse']:.2f}")


if __name__ == "__main__":
    main()
