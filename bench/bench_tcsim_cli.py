#!/usr/bin/env python3
"""What tcsim's options cost: one capture of the NAT example's sample traffic repeated
to N packets, replayed by the tcsim command in-process with each option, as ratios to
the same command without it (best of 3 each, in one process).

    python bench/bench_tcsim_cli.py [--packets N]

Rows: ``-o`` alone (the baseline), ``--json``, ``--annotated``, ``--report``,
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


def timed(argv) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            rc = tcsim.main([str(a) for a in argv])
        best = min(best, time.perf_counter() - start)
        if rc not in (0, 3):
            raise SystemExit(f"tcsim {' '.join(map(str, argv))}: exit {rc}")
    return best


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
        floor = timed(base)
        print(f"tcsim -o, {n} packets: {floor:.3f} s ({n / floor:,.0f} packets/s)")
        for name, extra in (("--json", ["--json"]),
                            ("--annotated", ["--annotated", d / "a.pcapng"]),
                            ("--report", ["--report", d / "r.jsonl"])):
            t = timed(base + extra)
            print(f"  {name:<14} {t / floor:5.2f}x")
        counts = [PROTO_COUNT, "-r", d / "in.pcap", "-o", d / "out.pcap"]
        plain = timed(counts)
        t = timed(counts + ["--dump-maps", d / "maps"])
        print(f"  {'--dump-maps':<14} {t / plain:5.2f}x (proto_count)")
        ok, why = kernel.available()
        if not ok:
            print(f"  --kernel-check skipped: bpf(2) is refused here ({why})")
            return
        small = [NAT4, "-r", d / "small.pcap", "--hook", "egress", "-o", d / "out.pcap"]
        t0, t1 = timed(small), timed(small + ["--kernel-check"])
        print(f"  {'--kernel-check':<14} {t1 / t0:5.2f}x on 2000 packets "
              f"({2000 / (t1 - t0):,.0f} kernel-checked packets/s)")


if __name__ == "__main__":
    main()
