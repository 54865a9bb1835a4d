#!/usr/bin/env python3
"""Per-packet cost of a SCHED_CLS classifier: pyebpf's ``prog.run(frame)`` against one
``KernelProgram.test_run(frame, data_out_size=len(frame))`` per packet, both from Python.

    python bench/bench_skb.py [--quick]

The classifier (kernel syntax, about 60 instructions) reads the EtherType with LD_ABS,
walks an optional 802.1Q tag, the IPv4 header length and the TCP/UDP ports with direct
packet access behind ``data_end`` checks, writes ``skb->mark`` and ``cb[0]`` and returns
a verdict.  Every frame's verdict, mark and cb are checked against the kernel's before
anything is timed; a mismatch aborts.  The goal: pyebpf at or below the kernel path.
"""
from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

import pyebpf  # noqa: E402
from pyebpf import kernel  # noqa: E402
from pyebpf.asm import assemble  # noqa: E402

CLASSIFIER = """
    r6 = r1
    r0 = *(u16 *)skb[12]
    r7 = 14
    if r0 != 0x8100 goto l3
    r0 = *(u16 *)skb[16]
    r7 = 18
l3:
    if r0 != 0x800 goto other
    r2 = *(u32 *)(r6 + 76)
    r3 = *(u32 *)(r6 + 80)
    r2 += r7
    r4 = r2
    r4 += 20
    if r4 > r3 goto short
    r5 = *(u8 *)(r2 + 0)
    r5 &= 0xf
    if r5 < 5 goto short
    r5 <<= 2
    r8 = *(u8 *)(r2 + 9)
    r9 = *(u16 *)(r2 + 6)
    r9 &= 0xff3f
    if r9 != 0 goto fragment
    r2 += r5
    r4 = r2
    r4 += 4
    if r4 > r3 goto short
    r4 = *(u16 *)(r2 + 2)
    r4 = be16 r4
    if r8 == 6 goto tcp
    if r8 == 17 goto udp
    r0 = 1
    goto done
tcp:
    r0 = 2
    if r4 == 22 goto drop
    if r4 == 80 goto web
    if r4 == 443 goto web
    goto done
udp:
    r0 = 3
    if r4 == 53 goto dns
    if r4 < 1024 goto done
    r0 = 4
    goto done
web:
    r0 = 10
    goto done
dns:
    r0 = 11
    goto done
drop:
    *(u32 *)(r6 + 8) = 22
    r0 = 2
    exit
fragment:
    r0 = 5
    goto done
short:
    r0 = 6
    goto done
other:
    r0 = 7
done:
    *(u32 *)(r6 + 48) = r0
    r0 <<= 8
    *(u32 *)(r6 + 8) = r0
    r0 = 0
    exit
"""


def frames() -> dict[str, bytes]:
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.l2 import ARP, Dot1Q, Ether
    eth = Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:01")
    out = {
        "tcp-443": eth / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(dport=443),
        "udp-53": eth / IP() / UDP(dport=53),
        "vlan-tcp-22": eth / Dot1Q(vlan=5) / IP() / TCP(dport=22),
        "ip-options-udp": eth / IP(options=b"\x01" * 4) / UDP(dport=5000),
        "icmp": eth / IP() / ICMP(),
        "arp": eth / ARP(),
    }
    return {name: bytes(p).ljust(64, b"\0") for name, p in out.items()}


def timed(fn, n: int, batches: int) -> float:
    """Median ns per call over ``batches`` batches of ``n`` calls."""
    results = []
    gc.disable()
    try:
        for _ in range(batches):
            t0 = time.perf_counter_ns()
            for _ in range(n):
                fn()
            results.append((time.perf_counter_ns() - t0) / n)
    finally:
        gc.enable()
    return statistics.median(results)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer, shorter batches")
    args = ap.parse_args()
    n, batches = (2000, 3) if args.quick else (20000, 7)

    code = assemble(CLASSIFIER)
    prog = pyebpf.Program(code, "sched_cls")
    ok, reason = kernel.available()
    if not ok:
        print(f"kernel path unavailable: {reason}")
    kprog = kernel.KernelProgram(code, "sched_cls") if ok else None
    packets = frames()
    for name, frame in packets.items():
        ours = prog.run(frame)
        if kprog is not None:
            theirs = kprog.test_run(frame, ctx={})
            got = (ours.retval & 0xFFFFFFFF, ours.skb.mark, list(ours.skb.cb))
            want = (theirs.retval, theirs.skb["mark"], theirs.skb["cb"])
            if got != want:
                print(f"MISMATCH on {name}: pyebpf {got}, kernel {want}")
                return 1

    frame = packets["tcp-443"]
    insns = len(code) // 8
    executed = prog.run(frame).insn_count
    ours = timed(lambda: prog.run(frame), n, batches)
    print(f"classifier: {insns} instructions, {executed} executed on a {len(frame)}-byte "
          f"TCP frame; results identical to the kernel on {len(packets)} frames")
    print(f"pyebpf  prog.run(frame)                                 {ours:8.0f} ns/packet")
    env = pyebpf.Environment()
    with_env = timed(lambda: prog.run(frame, env=env), n, batches)
    print(f"pyebpf  prog.run(frame, env=Environment())              {with_env:8.0f} ns/packet"
          f"  ({with_env / ours:.2f}x)")
    if kprog is not None:
        theirs = timed(lambda: kprog.test_run(frame, data_out_size=len(frame)),
                       max(n // 4, 500), batches)
        ratio = ours / theirs
        print(f"kernel  KernelProgram.test_run(frame, data_out_size=64)  {theirs:8.0f} ns/packet")
        print(f"ratio pyebpf / kernel path: {ratio:.2f}  "
              f"({'PASS' if ratio <= 1 else 'MISS'}: goal <= 1.00)")
        kprog.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
