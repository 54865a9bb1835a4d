#!/usr/bin/env python3
"""Time a first load: ``Program(code, "sched_cls")`` of bytes the process has not seen
(the verifier's search included), beside the kernel's BPF_PROG_LOAD of the same bytes.

    python bench/bench_load.py [--json PATH] [--rounds N]

The programs: bench_core's 100-instruction classifier (``p100``, the issue's load
goal) and bench_verifier's ``classifier``, ``unrolled`` and ``loop``.  Each load gets
fresh bytes (the first instruction, ``r0 = imm``, takes a new immediate every time:
the verifier remembers accepted programs per process).  The figures are the process's
CPU time (user and system: the kernel verifies in the loading process's context), so
other work on a shared machine inflates neither side much; medians of interleaved
rounds (each round loads every program once in pyebpf and once in the kernel).
``ratio`` is pyebpf's time over the kernel's.  The kernel columns need bpf(2).
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import struct
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run from a checkout
sys.path.insert(0, str(HERE))
os.environ["PYEBPF_JIT"] = "off"     # a load, not a JIT compile, is measured

import bench_core  # noqa: E402
import bench_verifier  # noqa: E402
from pyebpf import asm, isa, kernel  # noqa: E402
from pyebpf._core import Program  # noqa: E402

CLS = isa.ProgType.BPF_PROG_TYPE_SCHED_CLS


def programs() -> dict[str, bytes]:
    """Each program's bytes, starting with an ``r0 = imm`` the loads vary."""
    bc = bench_core
    p100 = bc.assemble([bc.mov(bc.r0, 0)] * (100 - len(bc.assemble(bc.SKB_PROLOGUE +
                                                                  bc.CLASSIFIER_BODY)) // 8)
                       + bc.SKB_PROLOGUE + bc.CLASSIFIER_BODY)
    out = {"p100": p100}
    for name in ("classifier", "unrolled", "loop"):
        out[name] = asm.assemble("r0 = 0\n" + getattr(bench_verifier, name)())
    return out


def fresh(code: bytes, n: int) -> bytes:
    return code[:4] + struct.pack("<i", n) + code[8:]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", type=Path)
    p.add_argument("--rounds", type=int, default=7)
    args = p.parse_args()
    ok, reason = kernel.available()
    if not ok:
        print(f"kernel columns skipped: {reason}")
    counter = itertools.count(1)
    progs = programs()
    times: dict[str, dict[str, list]] = {name: {"pyebpf": [], "kernel": []} for name in progs}

    def ours(code):
        Program(fresh(code, next(counter)), CLS)

    def theirs(code):
        kernel.KernelProgram(fresh(code, next(counter)), CLS, log_level=0).close()
    sides = {"pyebpf": ours, **({"kernel": theirs} if ok else {})}
    for code in progs.values():   # warm-up: imports, caches, the kernel's first load
        for fn in sides.values():
            fn(code)
    for _ in range(args.rounds):
        for name, code in progs.items():
            for side, fn in sides.items():
                t0 = time.process_time()
                fn(code)
                times[name][side].append(time.process_time() - t0)
    rows = []
    for name, code in progs.items():
        ours_s = statistics.median(times[name]["pyebpf"])
        kern_s = statistics.median(times[name]["kernel"]) if ok else None
        rows.append({"program": name, "insns": len(code) // 8, "pyebpf_us": ours_s * 1e6,
                     "kernel_us": kern_s and kern_s * 1e6,
                     "ratio": ours_s / kern_s if kern_s else None})
    print(f"{'program':<11}{'insns':>6}{'pyebpf us':>12}{'kernel us':>11}{'ratio':>8}")
    for r in rows:
        kern = f"{r['kernel_us']:>11.0f}{r['ratio']:>8.1f}" if r["kernel_us"] else \
            f"{'-':>11}{'-':>8}"
        print(f"{r['program']:<11}{r['insns']:>6}{r['pyebpf_us']:>12.0f}{kern}")
    if args.json:
        tmp = args.json.with_suffix(args.json.suffix + ".tmp")
        tmp.write_text(json.dumps(rows, indent=2))
        tmp.replace(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
