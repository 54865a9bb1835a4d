#!/usr/bin/env python3
"""pyebpf's JIT against its interpreter and the kernel's JIT, as ratios in one run.

    python bench/bench_jit.py [--quick]

The programs are bench_core.py's (``alu``: 1,500 straight-line ALU instructions, the
issue's hashmix; ``classifier``; ``csum_loop`` over a 1500-byte frame; ``empty``).
For each: the compile time (CPU time of translating, optimising and emitting, the
first compile of that code in the process), ns per run through ``Program.run`` and
that minus an empty program's run (the part the JIT can change), interpreted and
compiled, and the kernel JIT's ns per run (``BPF_PROG_TEST_RUN`` with ``repeat``) where bpf(2) works.
Then ``run_many`` of the tc programs the kernel runs, compiled, against the kernel
JIT (and the JIT's less an empty program's run_many cost per frame).  Then the tcsim replay loop
(``tcreplay.tc_replay``, in C) over 64-byte frames through
the classifier: packets per CPU second, interpreted and compiled, and as a ratio to
the interpreter's ``run_many`` of the same frames.  Times are CPU
times (the machine may be shared), medians of interleaved batches.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # run from a checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_core as bc  # noqa: E402
from pyebpf import kernel  # noqa: E402
from pyebpf._core import Program  # noqa: E402
from pyebpf.jit import engine  # noqa: E402
from pyebpf.pcap import tcreplay  # noqa: E402


def cpu_ns_per_call(fn, arg, batches, n):
    """Median over ``batches`` of the CPU ns of one ``fn(arg)``, in batches of ``n``."""
    samples = []
    for _ in range(batches):
        start = time.process_time_ns()
        for _ in range(n):
            fn(arg)
        samples.append((time.process_time_ns() - start) / n)
    return statistics.median(samples)


def run_many_ns(prog, data, count, batches):
    """Median over ``batches`` of the CPU ns per frame of ``prog.run_many`` over
    ``count`` copies of ``data``."""
    frames = [data] * count
    samples = []
    for _ in range(batches):
        start = time.process_time_ns()
        prog.run_many(frames)
        samples.append((time.process_time_ns() - start) / count)
    return statistics.median(samples)


def compile_ms(code, prog_type=None):
    """CPU ms of the first compile of ``code`` (a fresh Program's decoded form)."""
    prog = Program(code, prog_type, jit=False)
    start = time.process_time()
    code = engine.compile_codes([engine.source(prog)])[0]
    elapsed = (time.process_time() - start) * 1000
    prog._jit_install(code.entry, code)
    return elapsed


def csum_rounds(rounds):
    """csum over a 1500-byte frame: pyebpf's compiled ``run_many`` (CPU ns per frame,
    20,000 frames a round) against the kernel JIT's own per-run average (100,000
    repeats), alternated ``rounds`` times in this process; a ratio per round."""
    ok, why = kernel.available()
    if not ok:
        sys.exit(f"kernel oracle unavailable ({why})")
    kp = kernel.KernelProgram(bc.assemble(bc.SKB_PROLOGUE + bc.CSUM_BODY), bc.SCHED_CLS,
                              log_level=0)
    prog = Program(bc.assemble(bc.SKB_PROLOGUE + bc.CSUM_BODY), bc.SCHED_CLS, jit=True)
    ratios = []
    for k in range(rounds):
        ours = run_many_ns(prog, bc.FRAME_1500, 20_000, 1)
        theirs = bc.kernel_jit_ns(kp, bc.FRAME_1500, 100_000, 1)
        ratios.append(ours / theirs)
        print(f"round {k + 1}: run_many {ours:.0f} ns, kernel JIT {theirs:.0f} ns, "
              f"ratio {ratios[-1]:.2f}")
    print(f"csum_loop/1500B run_many / kernel JIT over {rounds} rounds: min "
          f"{min(ratios):.2f}, median {statistics.median(ratios):.2f}, max {max(ratios):.2f}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer, shorter batches")
    ap.add_argument("--csum-rounds", type=int, metavar="N",
                    help="only csum_loop/1500B through run_many against the kernel JIT: "
                         "the ratio of each of N interleaved rounds, and their spread")
    args = ap.parse_args(argv)
    if args.csum_rounds:
        return csum_rounds(args.csum_rounds)
    batches, n = (3, 2000) if args.quick else (7, 20000)
    ok, why = kernel.available()
    if not ok:
        print(f"kernel oracle unavailable ({why}): no kernel JIT column")

    clf = bc.assemble(bc.RAW_PROLOGUE + bc.CLASSIFIER_BODY)
    clf_skb = bc.assemble(bc.SKB_PROLOGUE + bc.CLASSIFIER_BODY)
    csum = bc.assemble(bc.RAW_PROLOGUE + bc.CSUM_BODY)
    csum_skb = bc.assemble(bc.SKB_PROLOGUE + bc.CSUM_BODY)
    alu = bc.alu_program()
    cases = [("alu (hashmix)", alu, alu, bc.SOCKET_FILTER, bc.FRAME_64),
             ("classifier/64B", clf, clf_skb, bc.SCHED_CLS, bc.FRAME_64),
             ("csum_loop/1500B", csum, csum_skb, bc.SCHED_CLS, bc.FRAME_1500),
             ("empty", bc.EMPTY, bc.EMPTY, bc.SOCKET_FILTER, bc.FRAME_64)]

    print(f"compile ms (CPU) for a 100-instruction ALU program: "
          f"{compile_ms(bc.alu_program(n=100, seed=2)):.1f}")
    rows = []
    for name, code, kcode, ptype, data in cases:
        interp, native = Program(code, jit=False), Program(code, jit=False)
        row = {"program": name, "insns": len(code) // 8, "compile_ms": compile_ms(code)}
        compiled = engine.compile_codes([engine.source(native)])[0]
        native._jit_install(compiled.entry, compiled)
        want = interp.run(data)
        got = native.run(data)
        if (got.retval, got.insn_count) != (want.retval, want.insn_count):
            sys.exit(f"ABORT: {name}: the JIT gave {got.retval} in {got.insn_count} "
                     f"instructions, the interpreter {want.retval} in {want.insn_count}")
        row["executed"] = want.insn_count
        samples_i, samples_j = [], []
        for _ in range(batches):   # interleaved, so that both see the same machine
            samples_i.append(cpu_ns_per_call(interp.run, data, 1, n))
            samples_j.append(cpu_ns_per_call(native.run, data, 1, n))
        row["interp_ns"], row["jit_ns"] = statistics.median(samples_i), statistics.median(samples_j)
        if ok:
            try:
                kp = kernel.KernelProgram(kcode, ptype, log_level=0)
                row["kernel_jit_ns"] = bc.kernel_jit_ns(kp, data, 10_000 if args.quick
                                                        else 100_000, batches)
            except Exception as exc:  # a refusal is reported, not fatal
                print(f"kernel: {name}: {exc}")
        rows.append(row)
    empty = {k: rows[-1][k] for k in ("interp_ns", "jit_ns")}
    print(f"\n{'program':<18}{'insns':>6}{'exec':>7}{'compile ms':>11}{'interp ns':>10}"
          f"{'jit ns':>8}{'jit-empty':>10}{'kernel JIT':>11}{'jit/kernel':>11}"
          f"{'(jit-empty)/kernel':>19}")
    for r in rows:
        body = r["jit_ns"] - empty["jit_ns"]
        k = r.get("kernel_jit_ns")
        print(f"{r['program']:<18}{r['insns']:>6}{r['executed']:>7}{r['compile_ms']:>11.1f}"
              f"{r['interp_ns']:>10.0f}{r['jit_ns']:>8.0f}{body:>10.0f}"
              f"{'-' if k is None else round(k):>11}"
              f"{'-' if k is None else format(r['jit_ns'] / k, '.2f'):>11}"
              f"{'-' if k is None else format(body / k, '.2f'):>19}")

    # the comparison: run_many (a C loop over frames, as tcsim and property tests
    # run) of the kernel's own program, against the kernel JIT's ns per run
    count = 2_000 if args.quick else 20_000
    print(f"\n{'run_many, tc':<18}{'jit ns':>8}{'-empty':>8}{'kernel JIT':>11}{'ratio':>7}"
          f"{'(-empty)/kernel':>16}")
    empty_prog = Program(bc.EMPTY, bc.SCHED_CLS, jit=True)
    for (name, _, kcode, ptype, data), r in zip(cases, rows):
        if ptype is not bc.SCHED_CLS or name == "empty":
            continue
        ns = run_many_ns(Program(kcode, ptype, jit=True), data, count, batches)
        empty_many = run_many_ns(empty_prog, data, count, batches)
        k = r.get("kernel_jit_ns")
        ratio = "-" if k is None else format(ns / k, ".2f")
        body = "-" if k is None else format((ns - empty_many) / k, ".2f")
        print(f"{name:<18}{ns:>8.0f}{ns - empty_many:>8.0f}{'-' if k is None else round(k):>11}"
              f"{ratio:>7}{body:>16}")

    # the replay loop alone (Loop.replay: set-up, run, outcome record and output per
    # packet), against the interpreter's run_many of the same program, interleaved
    frames = [bc.FRAME_64] * (20_000 if args.quick else 200_000)
    progs = {"interpreter": Program(clf_skb, bc.SCHED_CLS, jit=False),
             "jit": Program(clf_skb, bc.SCHED_CLS, jit=True)}
    samples = {"interpreter": [], "jit": [], "run_many": []}
    for _ in range(batches):
        for label, prog in progs.items():
            start = time.process_time()
            tcreplay.tc_replay([prog], frames, mode="da", ingress=True, classid=0,
                               act_default=3, fields={}, stop_on_error=False, ts=None)
            samples[label].append(len(frames) / (time.process_time() - start))
        start = time.process_time()
        progs["interpreter"].run_many(frames)
        samples["run_many"].append(len(frames) / (time.process_time() - start))
    rates = {label: statistics.median(v) for label, v in samples.items()}
    print(f"\ntcsim replay loop, classifier on 64-byte frames, M packets/CPU s: interpreter "
          f"{rates['interpreter'] / 1e6:.2f}, JIT {rates['jit'] / 1e6:.2f} "
          f"({rates['jit'] / rates['interpreter']:.2f}x the interpreter's replay, "
          f"{rates['jit'] / rates['run_many']:.2f}x its run_many's "
          f"{rates['run_many'] / 1e6:.2f} M frames/s)")


if __name__ == "__main__":
    main()
