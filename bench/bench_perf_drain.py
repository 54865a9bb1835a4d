#!/usr/bin/env python3
"""What a perf event array's give-back threshold costs under tcsim, as ratios in one run.

    python bench/bench_perf_drain.py --builds DIR,DIR... [--repeat 3] [--frames-scale 1]

A drain of more than ``PERF_EVENTS_KEPT`` bytes (pyebpf/maps.pxi) gives the event
store's pages back (``madvise(MADV_DONTNEED)``), so a program that once emitted many
events does not keep them resident; a drain of less keeps its pages for the next
packet's events.  tcsim drains each packet's events after it, so what a packet emits is
what one drain takes.  Each build named in ``--builds`` (a checkout built in place,
``python setup.py build_ext --inplace``; the first is the baseline of the ratios) runs
``tcsim PROG -r CAP -q`` in a child process, for programs that emit per packet, in
perf events of at most 16 KiB (``bpf_perf_event_output`` from a 16 KiB array value,
``BPF_F_CURRENT_CPU``), each of these volumes:

* 64 B (one event: a small record per packet, the common case), 1 M frames;
* 16 KiB (one event), 20,000 frames;
* 128 KiB (eight events), 2,500 frames;
* 512 KiB (32 events), 640 frames;
* 2 MiB (128 events: past the threshold), 160 frames;

(``--frames-scale`` multiplies the frame counts; tcsim holds a chunk's events, 4 MiB of
capture, until the chunk is replayed, so the larger volumes get fewer frames: about 330
MB of events each).  The capture is 64-byte IPv4/UDP frames.  The builds alternate
within each round (``--repeat`` rounds), each also on a 10-frame capture (its start-up);
per build and volume it prints the median CPU time (user + system, GNU time) per packet
past the start-up's, the peak resident size, and both over the baseline's, with the load
average after each volume.  Build the variants by copying a checkout and changing
``PERF_EVENTS_KEPT``: 16 << 20 (the store's size: never gives back), 0 (every drain of
a page or more gives back), 256 << 10 (the threshold before 1 MiB).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout

sys.path.insert(0, str(ROOT / "bench"))
from bench_tcsim import make_capture

CHUNK = 16 * 1024
# frames per volume: tcsim keeps a chunk's events (4 MiB of capture, ~52,000 of these
# frames) until it has replayed the chunk, so past 64 B the counts keep that under 350 MB
VOLUMES = [(64, 1_000_000), (16 << 10, 20_000), (128 << 10, 2_500), (512 << 10, 640),
           (2 << 20, 160)]
STARTUP_FRAMES = 10

PROGRAM = r"""
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, 4);
	__uint(value_size, 4);
	__uint(max_entries, 8);
} events SEC(".maps");

struct chunk { __u8 b[%(chunk)d]; };

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct chunk);
} data SEC(".maps");

SEC("tc")
int emit(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct chunk *c = bpf_map_lookup_elem(&data, &zero);

	if (!c)
		return TC_ACT_OK;
	for (int i = 0; i < %(count)d; i++)
		bpf_perf_event_output(skb, &events, BPF_F_CURRENT_CPU, c, %(size)d);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
"""


def compile_program(tmp: Path, volume: int) -> Path:
    """An object emitting ``volume`` bytes of events per packet, in events of at most
    CHUNK bytes."""
    count, size = (1, volume) if volume <= CHUNK else (volume // CHUNK, CHUNK)
    src = tmp / f"emit{volume}.c"
    src.write_text(PROGRAM % {"chunk": CHUNK, "count": count, "size": size})
    obj = src.with_suffix(".o")
    multiarch = subprocess.run(["gcc", "-print-multiarch"], capture_output=True, text=True,
                               check=True).stdout.strip()     # asm/types.h
    subprocess.run(["clang-19", "-O2", "-g", "-target", "bpf", f"-I/usr/include/{multiarch}",
                    "-c", str(src), "-o", str(obj)], check=True)
    return obj


def child(build: Path, prog: Path, cap: Path, cwd: Path,
          options=()) -> tuple[float, float]:
    """(CPU seconds, peak RSS in MB) of one tcsim run with ``build`` as its pyebpf and
    ``options`` after ``-q``."""
    env = {**os.environ, "PYTHONPATH": str(build)}
    done = subprocess.run(["/usr/bin/time", "-f", "%U %S %M", "-o", "rss.txt", sys.executable,
                           "-m", "pyebpf.pcap.tcsim", str(prog), "-r", str(cap), "-q",
                           *options],
                          cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          check=False)
    assert done.returncode == 0, done.stderr.decode()
    user, system, rss = Path(cwd, "rss.txt").read_text().split()[-3:]
    return float(user) + float(system), int(rss) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--builds", required=True, help="comma-separated checkouts, baseline first")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--frames-scale", type=float, default=1.0)
    args = ap.parse_args()
    builds = [Path(b).resolve() for b in args.builds.split(",")]
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for volume, frames in VOLUMES:
            frames = int(frames * args.frames_scale)
            prog = compile_program(tmp, volume)
            cap, start_cap = tmp / f"cap{frames}.pcap", tmp / "start.pcap"
            for path, n in ((cap, frames), (start_cap, STARTUP_FRAMES)):
                if not path.exists():
                    make_capture(path, n, mixed=False)
            runs = {b: [] for b in builds}
            starts = {b: [] for b in builds}
            for _ in range(args.repeat):
                for b in builds:
                    starts[b].append(child(b, prog, start_cap, tmp)[0])
                    runs[b].append(child(b, prog, cap, tmp))
            per_packet, rss = {}, {}
            for b in builds:
                per_packet[b] = (statistics.median(c for c, _ in runs[b])
                                 - statistics.median(starts[b])) / (frames - STARTUP_FRAMES)
                rss[b] = max(r for _, r in runs[b])
            base = builds[0]
            for b in builds:
                print(f"{volume:>7} B/packet {frames:>9} frames  {b.name:>12}: "
                      f"{per_packet[b] * 1e6:8.2f} us CPU/packet "
                      f"({per_packet[b] / per_packet[base]:.3f}x), "
                      f"peak RSS {rss[b]:6.1f} MB ({rss[b] / rss[base]:.3f}x)  "
                      f"[CPU s: {', '.join(f'{c:.2f}' for c, _ in runs[b])}; "
                      f"start-up {statistics.median(starts[b]):.2f}]")
            print(f"  load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
