#!/usr/bin/env python3
"""tcsim's peak RSS for a program emitting many perf events per packet.

    python bench/bench_tcsim_events.py [--builds DIR,DIR...] [--frames N] [--small N]
                                       [--repeat 3]

Each build named in ``--builds`` (a checkout built in place; the first the baseline; the
default this checkout) runs ``tcsim PROG -r CAP -o OUT.pcap --report R.jsonl --events
E.jsonl`` in a child process for a program that emits 1 KiB, 16 KiB and 64 KiB of perf
events per packet (``bpf_perf_event_output`` from an array value, events of at most 16
KiB) over ``--frames`` 64-byte IPv4/UDP frames (default 10,000: one chunk of capture).
It prints the peak RSS (GNU time's %M) and the CPU time of each, with the load average.
Then the common case, one 64-byte event per packet over ``--small`` frames (default
300,000), with ``--cpus 2 -o``, ``--events -o`` and ``--cpus 2 --events -o``: the builds
alternate within each of ``--repeat`` rounds; the median CPU time (user + system) of each.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
# compile_program: bench_perf_drain.py's program, emitting per packet ``volume`` bytes of
# perf events in events of at most 16 KiB; child: one tcsim run's CPU time and peak RSS
from bench_perf_drain import child, compile_program
from bench_tcsim import make_capture

VOLUMES = (1 << 10, 16 << 10, 64 << 10)


EVERY_OUTPUT = ("-o", "o.pcap", "--report", "r.jsonl", "--events", "e.jsonl")
SMALL_CASES = {"--cpus 2 -o": ("--cpus", "2", "-o", "o.pcap"),
               "--events -o": ("--events", "e.jsonl", "-o", "o.pcap"),
               "--cpus 2 --events -o": ("--cpus", "2", "--events", "e.jsonl", "-o", "o.pcap")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--builds", default=str(ROOT), help="comma-separated checkouts")
    ap.add_argument("--frames", type=int, default=10_000)
    ap.add_argument("--small", type=int, default=300_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    builds = [Path(b).resolve() for b in args.builds.split(",")]
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        cap = tmp / "cap.pcap"
        make_capture(cap, args.frames, mixed=False)
        for volume in VOLUMES:
            prog = compile_program(tmp, volume)
            for b in builds:
                cpu, rss = child(b, prog, cap, tmp, EVERY_OUTPUT)
                print(f"{volume >> 10:>3} KiB/packet {args.frames} frames {b.name:>8}: "
                      f"peak RSS {rss:7.1f} MB, CPU {cpu:6.2f} s "
                      f"(load {os.getloadavg()[0]:.1f})", flush=True)
        prog, cap = compile_program(tmp, 64), tmp / "small.pcap"
        make_capture(cap, args.small, mixed=False)
        for name, options in SMALL_CASES.items():
            cpu = {b: [] for b in builds}
            for _ in range(args.repeat):
                for b in builds:
                    cpu[b].append(child(b, prog, cap, tmp, options)[0])
            for b in builds:
                print(f" 64 B/packet {args.small} frames {name:>21} {b.name:>8}: CPU median "
                      f"{statistics.median(cpu[b]):5.2f} s (load {os.getloadavg()[0]:.1f})",
                      flush=True)


if __name__ == "__main__":
    main()
