#!/usr/bin/env python3
"""Compiled code is freed when no program uses it: RSS over many compile/free cycles.

    python bench/bench_jit_free.py [--rounds R] [--programs N]

Each round compiles N distinct programs (a program of the round's own constants, so
no round finds another's code in the cache), runs each once in native code, and
drops them.  The resident set size after each round is printed; after the first
rounds (LLVM's own allocations settle) it must stay flat.  Exits 1 when the second
half of the rounds grew RSS by more than ``--slack`` MiB, with what it grew by.
"""
from __future__ import annotations

import argparse
import gc
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # run from a checkout

from pyebpf import asm, jit  # noqa: E402
from pyebpf._core import Program  # noqa: E402


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * 4096 / 2**20


def program_text(k: int) -> str:
    """About 100 instructions, a loop and a stack access, distinct for each ``k``."""
    body = "\n".join(f"r{1 + i % 5} += {k * 131 + i}\nr0 ^= r{1 + i % 5}" for i in range(40))
    return (f"r0 = {k}\nr1 = 0\nr2 = 0\nr3 = 0\nr4 = 0\nr5 = 0\nr6 = 8\n"
            f"l: {body}\n*(u64 *)(r10 - 8) = r0\nr6 -= 1\nif r6 != 0 goto l\nexit")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--programs", type=int, default=50)
    ap.add_argument("--slack", type=float, default=8.0,
                    help="MiB the second half may grow by (allocator noise)")
    args = ap.parse_args(argv)
    if not jit.available():
        print("llvmlite is not installed: nothing to measure (pip install 'pyebpf[jit]')")
        return 0
    seen = []
    for r in range(args.rounds):
        codes = [asm.assemble(program_text(r * args.programs + k)) for k in range(args.programs)]
        programs = [Program(code, jit=False) for code in codes]
        jit.compile(*programs)
        for code, p in zip(codes, programs):
            if not p.jitted or p.run().retval != Program(code, jit=False).run().retval:
                sys.exit(f"ABORT: round {r + 1}: the compiled program disagrees with the "
                         "interpreter")
        del programs
        gc.collect()
        seen.append(rss_mib())
        print(f"round {r + 1:3}: {(r + 1) * args.programs:6} programs compiled and freed, "
              f"RSS {seen[-1]:7.1f} MiB")
    half = len(seen) // 2
    grew = seen[-1] - seen[half]
    print(f"RSS grew {grew:+.1f} MiB over the last {len(seen) - half} rounds "
          f"({(len(seen) - half) * args.programs} programs)")
    return 1 if grew > args.slack else 0


if __name__ == "__main__":
    sys.exit(main())
