#!/usr/bin/env python3
"""Benchmark pyebpf's verifier against the kernel's, in the same run.

    python bench/bench_verifier.py [--json PATH] [--repeat N]

Three SCHED_CLS programs built here:

* ``classifier``: ~60 instructions of Ethernet/IPv4/L4 parsing with a bounds check
  before each load;
* ``unrolled``: ~1,500 instructions, the same checks and loads unrolled over the frame;
* ``loop``: a bounded loop the verifier walks to its end (~100,000 processed
  instructions).

For each: pyebpf's verification time (``pyebpf.verifier.verify``, median of N), the
kernel's BPF_PROG_LOAD wall time (median of N) and the kernel's own verification time
(the ``verification time`` its BPF_LOG_STATS log reports), the ratios, and the
processed instructions and states both report.  The kernel columns need bpf(2).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from pyebpf import asm, isa, kernel, verifier  # noqa: E402
from pyebpf.kernel import sysbpf  # noqa: E402

CLS = isa.ProgType.BPF_PROG_TYPE_SCHED_CLS
BPF_LOG_STATS = 4


def classifier() -> str:
    lines = ["r6 = r1", "r7 = *(u32 *)(r6 + 76)", "r8 = *(u32 *)(r6 + 80)", "r0 = 0",
             "r2 = r7", "r2 += 14", "if r2 > r8 goto out", "r3 = *(u16 *)(r7 + 12)",
             "if r3 != 8 goto out", "r2 = r7", "r2 += 34", "if r2 > r8 goto out",
             "r4 = *(u8 *)(r7 + 14)", "r4 &= 15", "r4 <<= 2", "r5 = *(u8 *)(r7 + 23)",
             "if r5 == 6 goto tcp", "if r5 == 17 goto udp", "goto out"]
    for proto, port_off in (("tcp", 2), ("udp", 2)):
        lines += [f"{proto}:", "r2 = r7", "r2 += 14", "r2 += r4", "r3 = r2", "r3 += 8",
                  "if r3 > r8 goto out", f"r1 = *(u16 *)(r2 + {port_off})",
                  "r1 = be16 r1", "if r1 == 80 goto web", "if r1 == 443 goto web",
                  "r0 = 1", "goto out"]
    lines += ["web:", "r1 = *(u32 *)(r6 + 8)", "r1 |= 1", "*(u32 *)(r6 + 8) = r1",
              "r0 = 2", "out:", "exit"]
    return "\n".join(lines)


def unrolled(blocks: int = 250) -> str:
    lines = ["r6 = r1", "r7 = *(u32 *)(r6 + 76)", "r8 = *(u32 *)(r6 + 80)", "r0 = 0",
             "r2 = r7", "r2 += 64", "if r2 > r8 goto out"]
    for k in range(blocks):
        off = k % 60
        lines += [f"r3 = *(u8 *)(r7 + {off})", "r3 &= 7", f"if r3 > {k % 5} goto s{k}",
                  "r0 += r3", "r0 &= 0xffff", f"s{k}:"]
    lines += ["out:", "exit"]
    return "\n".join(lines)


def loop(iterations: int = 33_333) -> str:
    return "\n".join(["r0 = 0", "r4 = 0", "top:", "r0 += r4", "r4 += 1",
                      f"if r4 < {iterations} goto top", "r0 = 0", "exit"])


def _median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _kernel(code: bytes, repeat: int):
    ok, reason = kernel.available()
    if not ok:
        return None, None, None, reason

    def load():
        kernel.KernelProgram(code, CLS, log_level=0).close()
    wall = _median_time(load, repeat)
    fd, err, log = sysbpf.calls.prog_load(CLS, code, b"GPL\0", BPF_LOG_STATS | 1)
    if fd >= 0:
        os.close(fd)
    vt = re.search(r"verification time (\d+) usec", log)
    processed = re.search(r"processed (\d+) insns.*total_states (\d+)", log)
    return wall, (int(vt[1]) / 1e6 if vt else None), processed, ""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", type=Path)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    rows = []
    for name, text in (("classifier", classifier()), ("unrolled", unrolled()),
                       ("loop", loop())):
        code = asm.assemble(text)
        slots = isa.unpack_program(code)
        verdict = verifier.verify(slots, CLS, log_level=0)
        ours = _median_time(lambda: verifier.verify(slots, CLS, log_level=0), args.repeat)
        wall, vtime, kstats, reason = _kernel(code, args.repeat)
        row = {"program": name, "insns": len(slots), "processed": verdict.processed,
               "states": verdict.total_states, "pyebpf_s": ours, "kernel_load_s": wall,
               "kernel_verification_s": vtime,
               "kernel_processed": int(kstats[1]) if kstats else None,
               "kernel_states": int(kstats[2]) if kstats else None,
               "ratio_load": ours / wall if wall else None,
               "ratio_verification": ours / vtime if vtime else None}
        rows.append(row)
        if reason:
            print(f"kernel columns skipped: {reason}")
    head = (f"{'program':<11}{'insns':>6}{'processed':>10}{'k.proc':>8}{'states':>7}"
            f"{'k.st':>6}{'pyebpf ms':>11}{'load ms':>9}{'verif ms':>10}{'/load':>8}"
            f"{'/verif':>8}")
    print(head)
    for r in rows:
        def f(v, fmt):
            return format(v, fmt) if v is not None else "-"
        print(f"{r['program']:<11}{r['insns']:>6}{r['processed']:>10}"
              f"{f(r['kernel_processed'], 'd'):>8}{r['states']:>7}"
              f"{f(r['kernel_states'], 'd'):>6}{r['pyebpf_s'] * 1e3:>11.2f}"
              f"{f(r['kernel_load_s'] and r['kernel_load_s'] * 1e3, '.2f'):>9}"
              f"{f(r['kernel_verification_s'] and r['kernel_verification_s'] * 1e3, '.2f'):>10}"
              f"{f(r['ratio_load'], '.1f'):>8}{f(r['ratio_verification'], '.1f'):>8}")
    if args.json:
        tmp = args.json.with_suffix(args.json.suffix + ".tmp")
        tmp.write_text(json.dumps(rows, indent=2))
        tmp.replace(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
