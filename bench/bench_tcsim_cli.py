#!/usr/bin/env python3
"""What tcsim's options cost: one capture of the NAT example's sample traffic repeated
to N packets, replayed by the tcsim command in-process with each option, as ratios to
the same command without it (best of 3 each, in one process), in wall time and in the
process's CPU time (every thread's: on a shared machine the CPU-time ratios compare).

    python bench/bench_tcsim_cli.py [--packets N]

Rows: ``-o`` alone (the baseline), ``--json``, ``--annotated``, ``--report``,
``--cpus 2`` (for it the wall-time ratio is the speed-up, one CPU's time over two's),
``--dump-maps`` (proto_count's maps), and ``--kernel-check`` (one BPF_PROG_TEST_RUN per
packet from Python, where bpf(2) is allowed; on fewer packets, scaled).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from pyebpf import kernel  # noqa: E402
from pyebpf.pcap import pcapio, tcsim  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NAT4 = ROOT / "examples" / "nat4.o"
PROTO_COUNT = ROOT / "examples" / "proto_count.o"


def timed(argv) -> tuple[float, float]:
    """The best of 3 runs' wall seconds and CPU seconds (each its own best)."""
    best, best_cpu = float("inf"), float("inf")
    for _ in range(3):
        start, start_cpu = time.perf_counter(), time.process_time()
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            rc = tcsim.main([str(a) for a in argv])
        best = min(best, time.perf_counter() - start)
        best_cpu = min(best_cpu, time.process_time() - start_cpu)
        if rc not in (0, 3):
            raise SystemExit(f"tcsim {' '.join(map(str, argv))}: exit {rc}")
    return best, best_cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=200_000)
    n = ap.parse_args().packets
    sample = pcapio.read(ROOT / "examples" / "sample.pcap")
    records = [(sample.ts[k % len(sample)] + k * 1000, sample.frames[k % len(sample)],
                sample.orig_len[k % len(sample)]) for k in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        pcapio.write(d / "in.pcap", records)
        pcapio.write(d / "small.pcap", records[:2000])
        base = [NAT4, "-r", d / "in.pcap", "--hook", "egress", "-o", d / "out.pcap"]
        floor, floor_cpu = timed(base)
        print(f"tcsim -o, {n} packets: {floor:.3f} s ({n / floor:,.0f} packets/s), "
              f"{floor_cpu:.3f} CPU s")
        for name, extra in (("--json", ["--json"]),
                            ("--annotated", ["--annotated", d / "a.pcapng"]),
                            ("--report", ["--report", d / "r.jsonl"])):
            t, c = timed(base + extra)
            print(f"  {name:<14} {t / floor:5.2f}x wall {c / floor_cpu:5.2f}x CPU")
        t, c = timed(base + ["--cpus", "2"])
        print(f"  {'--cpus 2':<14} speed-up {floor / t:5.2f}x wall; CPU {c / floor_cpu:5.2f}x "
              "one CPU's")
        counts = [PROTO_COUNT, "-r", d / "in.pcap", "-o", d / "out.pcap"]
        plain, plain_cpu = timed(counts)
        t, c = timed(counts + ["--dump-maps", d / "maps"])
        print(f"  {'--dump-maps':<14} {t / plain:5.2f}x wall {c / plain_cpu:5.2f}x CPU "
              "(proto_count)")
        ok, why = kernel.available()
        if not ok:
            print(f"  --kernel-check skipped: bpf(2) is refused here ({why})")
            return
        small = [NAT4, "-r", d / "small.pcap", "--hook", "egress", "-o", d / "out.pcap"]
        t0, t1 = timed(small)[0], timed(small + ["--kernel-check"])[0]
        print(f"  {'--kernel-check':<14} {t1 / t0:5.2f}x on 2000 packets "
              f"({2000 / (t1 - t0):,.0f} kernel-checked packets/s)")


if __name__ == "__main__":
    main()
