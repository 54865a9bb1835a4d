#!/usr/bin/env python3
"""What a KPROBE run costs next to a packet run, and trace-replay's event rate.

    python bench/bench_trace.py [--quick]

Rows (median of 7 batches of ``prog.run`` in a Python loop, ns per run):

* ``sched_cls empty``: ``r0 = 0; exit`` on a 64-byte frame, the baseline;
* ``kprobe empty``: the same program as KPROBE, registers given by name, the default
  machine (the world and its pt_regs are built per run);
* ``kprobe empty, regs as bytes``: the 168 bytes given whole;
* ``kprobe reads``: probe_read_user of 64 bytes, probe_read_kernel_str, get_stackid over a
  16-frame kernel stack and a hash map update, on a machine with both images;
* ``kprobe reads, run_many``: the same runs as one ``run_many`` over packed pt_regs (ns
  per run);
* ``trace-replay``: events/s of ``pyebpf.trace.replay.replay`` over a JSON lines file
  (reading and parsing included) running the ``kprobe reads`` program.

The ratio column divides by the baseline of the same process.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from pyebpf import Map, Program  # noqa: E402
from pyebpf.trace import Machine, pt_regs  # noqa: E402
from pyebpf.trace.replay import event, read_events, replay, write_events  # noqa: E402

USER, KERNEL = 0x7F0000000000, 0xFFFF888000000000
READS = """
    r6 = r1
    r1 = r10
    r1 += -64
    r2 = 64
    r3 = *(u64 *)(r6 + 104)
    call 112
    r1 = r10
    r1 += -64
    r2 = 32
    r3 = {kernel} ll
    call 115
    r1 = r6
    r2 = map_fd({stacks}) ll
    r3 = 0
    call 27
    *(u32 *)(r10 - 68) = r0
    *(u64 *)(r10 - 80) = r0
    r2 = r10
    r2 += -68
    r3 = r10
    r3 += -80
    r1 = map_fd({ids}) ll
    r4 = 0
    call 2
    r0 = 0
    exit
"""


def per_run(fn, batches: int, n: int) -> float:
    times = []
    for _ in range(batches):
        t0 = time.perf_counter_ns()
        for _ in range(n):
            fn()
        times.append((time.perf_counter_ns() - t0) / n)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    batches, n = (3, 2000) if args.quick else (7, 20000)
    frame = bytes(64)
    empty = "r0 = 0\nexit"
    cls = Program.from_asm(empty, "sched_cls")
    kp = Program.from_asm(empty, "kprobe")
    stacks, ids = Map.create("stack_trace", 4, 128, 64), Map.create("hash", 4, 8, 64)
    reads = Program.from_asm(READS.format(kernel=KERNEL, stacks=stacks.fd, ids=ids.fd),
                             "kprobe")
    machine = Machine(user_memory={USER: bytes(range(64))},
                      kernel_memory={KERNEL: b"a kernel string\0"},
                      kernel_stack=tuple(0xFFFFFFFF81000000 + 16 * k for k in range(16)))
    regs, raw = {"si": USER}, pt_regs({"si": USER})
    rows = [("sched_cls empty", per_run(lambda: cls.run(frame), batches, n)),
            ("kprobe empty", per_run(lambda: kp.run(regs=regs), batches, n)),
            ("kprobe empty, regs as bytes", per_run(lambda: kp.run(regs=raw), batches, n)),
            ("kprobe reads", per_run(lambda: reads.run(regs=regs, machine=machine),
                                     batches, n))]
    packed = raw * n
    t0 = time.perf_counter_ns()
    reads.run_many(packed, machine=machine)
    rows.append(("kprobe reads, run_many", (time.perf_counter_ns() - t0) / n))
    base = rows[0][1]
    for name, ns in rows:
        print(f"{name:<30} {ns:9.0f} ns/run  {ns / base:5.2f}x")
    hit = event(regs={"si": USER}, user_memory={USER: bytes(64)},
                kernel_memory={KERNEL: b"a kernel string\0"},
                kernel_stack=[0xFFFFFFFF81000000 + 16 * k for k in range(16)])
    events = n // 4
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.jsonl"
        write_events(path, [hit] * events)
        t0 = time.perf_counter()
        replay(reads, read_events(path), {"ids": ids})
        rate = events / (time.perf_counter() - t0)
    print(f"{'trace-replay':<30} {rate:9.0f} events/s  ({1e9 / rate / base:5.2f}x the "
          f"baseline run per event)")

if __name__ == "__main__":
    main()
