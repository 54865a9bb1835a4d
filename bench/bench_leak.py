#!/usr/bin/env python3
"""Resident memory over many runs: a leak per run shows as RSS growing with the count.

    python bench/bench_leak.py [--calls 10000000] [--report 10]

Cycles through the ways a run ends: ``Program.run`` of a tc classifier (a Result made
and dropped), one that faults (a MemoryFault raised and caught), one past its budget
(BudgetExceeded), a socket filter with packet fields, a raw-mode run,
``run_many`` batches with a fault in each, and a run refused for a bad packet field
(ValueError).  Prints RSS at ``--report`` points; RSS
after the first tenth (allocator warm-up) to the end should stay flat.
"""
from __future__ import annotations

import argparse
import resource
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).parent)]

import bench_core  # noqa: E402
import pyebpf  # noqa: E402
from pyebpf import Program  # noqa: E402


def rss_kib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() // 1024


def workload():
    """One callable per kind of run; each call is one run (run_many: a batch of 100)."""
    clf = Program(bench_core.assemble(bench_core.SKB_PROLOGUE + bench_core.CLASSIFIER_BODY),
                  "sched_cls")
    faulty = Program.from_asm("r2 = *(u32 *)(r1 + 0x4c)\nr0 = *(u8 *)(r2 + 4000)\nexit",
                              "sched_cls", verify=False)
    endless = Program.from_asm("l: goto l", "sched_cls", verify=False, budget=50)
    sf = Program(bench_core.EMPTY, "socket_filter")
    raw = Program(bench_core.assemble(bench_core.RAW_PROLOGUE + bench_core.CLASSIFIER_BODY))
    frame = bench_core.FRAME_64
    batch = [frame] * 99 + [bytes(14) + b"\xff" * 50]
    many = Program.from_asm("r2 = *(u32 *)(r1 + 0x4c)\nr0 = *(u8 *)(r2 + 14)\n"
                            "if r0 != 0xff goto +1\nr0 = *(u8 *)(r2 + 4000)\nexit",
                            "sched_cls", verify=False)

    def fault(p, **fields):
        try:
            p.run(frame, **fields)
        except (pyebpf.errors.ExecutionError, ValueError):
            pass

    return [lambda: clf.run(frame), lambda: fault(faulty), lambda: fault(endless),
            lambda: sf.run(frame, mark=3, sf_start="network"), lambda: raw.run(frame),
            lambda: many.run_many(batch, output=True), lambda: fault(clf, vlan=(1, 2))]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=10_000_000)
    ap.add_argument("--report", type=int, default=10)
    args = ap.parse_args(argv)
    kinds = workload()
    step = max(1, args.calls // args.report)
    print(f"{'calls':>12} {'RSS KiB':>10}")
    marks = []
    done = 0
    while done < args.calls:
        n = min(step, args.calls - done)
        for k in range(n):
            kinds[k % len(kinds)]()
        done += n
        marks.append(rss_kib())
        print(f"{done:>12} {marks[-1]:>10}", flush=True)
    warm = marks[min(1, len(marks) - 1)]
    print(f"RSS from {warm} KiB after the first tenth to {marks[-1]} KiB at the end "
          f"({marks[-1] - warm:+d} KiB)")


if __name__ == "__main__":
    main()
