#!/usr/bin/env python3
"""What BPF C coverage and the pytest plugin's traced runs cost per run, as ratios to
plain runs of the same program in the same process.

    python bench/bench_coverage.py [--quick]

The program is ``examples/nat4.o`` (IPv4 source NAT, about 100 instructions executed
per TCP frame).  Rows: ``plain`` (no collector: the loop without counters), ``counted``
(a program made while a coverage collector is active: every instruction counted in C),
``uncounted while collecting`` (a program made before the collector, run while it is
active: the counting loop with no counters), ``traced`` (``trace=True``, what tests
using the plugin's fixtures do for their failure reports).  Batches alternate between
the rows so that load on the machine affects them alike; each figure is the median of
the batches.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout

import pyebpf  # noqa: E402
from pyebpf import coverage  # noqa: E402


def per_run(prog, frame, n, **kw) -> float:
    start = time.perf_counter()
    for _ in range(n):
        prog.run(frame, **kw)
    return (time.perf_counter() - start) / n * 1e9


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter batches")
    args = parser.parse_args()
    n, batches = (2000, 5) if args.quick else (20000, 9)
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether
    frame = bytes(Ether() / IP(src="10.0.0.1", dst="192.0.2.1") / TCP(sport=1234, dport=80))
    obj = str(ROOT / "examples" / "nat4.o")
    plain = pyebpf.load(obj).program()
    collector = coverage.Collector()
    rows = {"plain": [], "counted": [], "uncounted while collecting": [], "traced": []}
    for _ in range(batches):
        rows["plain"].append(per_run(plain, frame, n))
        rows["traced"].append(per_run(plain, frame, max(1, n // 20), trace=True))
        collector.start()
        try:
            counted = pyebpf.load(obj).program()
            rows["counted"].append(per_run(counted, frame, n))
            rows["uncounted while collecting"].append(per_run(plain, frame, n))
        finally:
            collector.stop()
    base = statistics.median(rows["plain"])
    print(f"{'row':<28} {'ns/run':>9} {'ratio':>7}")
    for name, values in rows.items():
        ns = statistics.median(values)
        print(f"{name:<28} {ns:>9.0f} {ns / base:>7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
