#!/usr/bin/env python3
"""tcsim end to end on captures it generates, as ratios measured in one run.

    python bench/bench_tcsim.py [--frames 1000000,10000000] [--mixes 64,64-1500] [--repeat 3]
                                [--out-dirs DIR,DIR...]

For each capture size (``--frames``) and frame mix (``--mixes``: 64-byte frames; sizes
spread over 64-1500 bytes) it times, in child processes (median of ``--repeat``, the 10 M
captures once), and records each child's CPU time (user + system) and peak RSS:

* ``dpkt floor``: reading the capture with ``dpkt.pcap.Reader`` and writing every frame
  back with ``dpkt.pcap.Writer`` (what a Python tool needs only to touch the traffic);
* ``tcsim pass-all``: ``tcsim pass.s -r CAP -o OUT``, a program returning TC_ACT_OK;
* ``tcsim pass-all --report``: the same with ``--report`` and ``--drops`` on (the
  compact report lines, the default);
* ``tcsim pass-all --report full``: the same with ``--report-format full`` (every key on
  every line);
* ``tcsim nat4``: ``tcsim examples/nat4.o -r CAP -o OUT`` (source NAT, checksums fixed);
* ``tcsim nat4 --cpus 2``: the same on two simulated CPUs, two replay threads;
* ``tcsim nat4 on one core``: ``tcsim nat4`` with the process held to one core, so that
  its read-ahead, replay and write-behind threads take turns, as a strictly one-thread
  replay with its I/O inline would run (the ``--cpus 2`` speed-up against it is printed
  too, labelled: the issue's is against ``--cpus 1``);

and, once, ``BPF_PROG_TEST_RUN`` per packet from Python on 100,000 of the 64-byte frames
(``pyebpf.kernel.KernelProgram.test_run``, where bpf(2) is allowed).  Ratios printed:
tcsim packets/s over the dpkt floor's and over test_run's; ``--report`` time over plain
time; nat4's time on one CPU over its time on two; peak RSS of each size.  The outputs
go to the temporary directory the capture is in, or to each of ``--out-dirs`` in turn
(the pass-all runs again for each after the first: ``--out-dirs /tmp,/dev/shm`` gives
the ``--report`` overhead on the disk and on tmpfs), each beside the time ``dd`` takes
to write as many bytes as the report's to that directory (``oflag=direct`` where the
filesystem takes it, as tcsim writes), which is what the disk alone asks.  Each
ratio is given for wall time and for CPU time: on a machine others load, a child gets a
varying share of the cores and only the CPU-time ratios compare (for ``--cpus 2``
the CPU-time ratio is what the second thread costs, the wall-time one what it gains on
free cores).  For nat4 on one and on two CPUs the CPU time is also split: the main
thread's (start-up, its CPU's replay, the writing's serial part), the read-ahead
threads' (each chunk read, or mapped, and its records indexed) and the rest (the
second CPU's, the write-behind's), and the main thread's on a 10-frame capture
(start-up alone), each with the load average it was taken at.  On two free cores a run takes at least the larger
of its main thread's time and half of all its threads' (the Amdahl bound the
``--cpus 2`` speed-up is printed against).  Then the
time from SIGINT to the exit of a ``tcsim`` busy replaying (median of 5), which the
command promises under 0.1 s.  The children run with Python's bytecode cache, as an
installed package has it (pip compiles it): pyebpf's modules are compiled first, and
PYTHONDONTWRITEBYTECODE is not passed on (without the cache every start compiles
pyebpf's modules again, ~0.1 s of CPU, more than a 1 M-frame replay takes).  The machine the numbers come from may be shared: they
are medians of runs interleaved with others' work, which is why they are ratios taken
in one run.
"""
from __future__ import annotations

import argparse
import compileall
import os
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout

from pyebpf import asm, kernel  # noqa: E402
from pyebpf.pcap import tcreplay  # noqa: E402

PASS = "r0 = 0\nexit\n"
NAT = ROOT / "examples" / "nat4.o"
ENV = {**{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
       "PYTHONPATH": str(ROOT)}
DPKT_FLOOR = """
import sys, dpkt
with open(sys.argv[1], "rb") as f, open(sys.argv[2], "wb") as g:
    w = dpkt.pcap.Writer(g, nano=False)
    for ts, buf in dpkt.pcap.Reader(f):
        w.writepkt(buf, ts=ts)
"""


def frame(k, size):
    """An IPv4/UDP frame of ``size`` bytes from 10.0.x.y (which nat4 rewrites)."""
    eth = bytes.fromhex("020000000002020000000001") + b"\x08\x00"
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, size - 14, k & 0xFFFF, 0, 64, 17, 0,
                     bytes([10, 0, k >> 8 & 255, k & 255]), bytes([192, 0, 2, 1]))
    udp = struct.pack("!HHHH", 1024 + k % 50000, 53, size - 34, 0)
    return eth + ip + udp + bytes(size - 42)


def make_capture(path, n, mixed):
    """n frames cycling through 1,000 distinct ones, 64 bytes or 64-1500 (a fixed
    spread: mean 782 bytes), written by tcsim's own C writer."""
    sizes = [64 + (k * 7919) % 1437 if mixed else 64 for k in range(1000)]
    base = [frame(k, s) for k, s in enumerate(sizes)]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    w = tcreplay.CaptureWriter(fd)
    for k in range(n):
        f = base[k % 1000]
        w.packet(1_700_000_000 * 10**9 + k * 1000, f, len(f))
    w.flush()
    os.close(fd)


def one_core():
    """The child runs on one core (the first this process may use): all its threads
    take turns on it."""
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def child(cmd, cwd, on_one_core=False):
    """(wall seconds, CPU seconds, peak RSS in MB) of one child process; CPU time and
    RSS as GNU time reports them (the rusage of a child forked from this process would
    count the fork's copy of it).  The earlier runs' writes reach the disk first
    (a 10 M-frame run writes up to 4 GB): their write-back would fall on this run."""
    os.sync()
    start = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-f", "%U %S %M", "-o", "rss.txt", *cmd],
                          cwd=cwd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          preexec_fn=one_core if on_one_core else None)
    took = time.perf_counter() - start
    assert done.returncode == 0, f"{cmd}: {done.stderr.decode()}"
    user, system, rss = Path(cwd, "rss.txt").read_text().split()[-3:]
    return took, float(user) + float(system), int(rss) / 1024


SPLIT = """
import os, resource, sys, time
from pyebpf.pcap import pcapio, tcsim
reading = []
def timed(run, self):
    start = time.thread_time()
    try:
        run(self)
    finally:
        reading.append(time.thread_time() - start)
for ahead in (pcapio._ReadAhead, pcapio._MapAhead):
    ahead.run = lambda self, run=ahead.run: timed(run, self)
assert tcsim.main(sys.argv[1:]) == 0
main = open(f"/proc/self/task/{os.getpid()}/schedstat").read().split()[0]
usage = resource.getrusage(resource.RUSAGE_SELF)
print(int(main) / 1e9, usage.ru_utime + usage.ru_stime, sum(reading), file=sys.stderr)
"""


def thread_split(args, cwd, repeat):
    """Medians of (the main thread's CPU seconds, every thread's, the read-ahead
    threads') of ``tcsim ARGS`` run in a child process: the main thread's from its
    schedstat (the time it ran), all threads' from getrusage, as the run ends, the
    read-ahead's (each chunk read, or a regular file's window mapped, and scanned on a
    thread of its own) from each one's thread_time."""
    runs = []
    for _ in range(repeat):
        done = subprocess.run([sys.executable, "-c", SPLIT, *args], cwd=cwd, env=ENV,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              check=False)
        assert done.returncode == 0, done.stderr
        runs.append([float(v) for v in done.stderr.splitlines()[-1].split()])
    return tuple(statistics.median(run[k] for run in runs) for k in range(3))


def measure(cmd, cwd, repeat, on_one_core=False):
    """Medians of wall and CPU seconds, the largest peak RSS."""
    runs = [child(cmd, cwd, on_one_core) for _ in range(repeat)]
    return (statistics.median(t for t, _, _ in runs), statistics.median(c for _, c, _ in runs),
            max(m for _, _, m in runs))


ONE_CORE = "tcsim nat4 on one core"
SPIN = "r1 = 20000\nloop:\nr1 -= 1\nif r1 != 0 goto loop\nr0 = 0\nexit\n"


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def interrupt_latency(tmp, cap_path):
    """Seconds from SIGINT to the exit of a tcsim process in its replay loop (each
    packet runs 40,003 instructions)."""
    prog = Path(tmp, "spin.s")
    prog.write_text(SPIN)
    # unverified: the verifier's walk of the loop is no part of what is timed
    child_proc = subprocess.Popen([sys.executable, "-m", "pyebpf.pcap.tcsim", str(prog), "-r",
                                   str(cap_path), "-o", str(Path(tmp, "spin.pcap")),
                                   "--no-verify"],
                                  env=ENV, stderr=subprocess.PIPE, text=True)
    while child_proc.poll() is None and cpu_seconds(child_proc.pid) < 0.8:
        time.sleep(0.01)
    sent = time.perf_counter()
    child_proc.send_signal(signal.SIGINT)
    err = child_proc.communicate()[1]
    took = time.perf_counter() - sent
    assert child_proc.returncode == 130 and "interrupted at packet" in err, err
    return took


def test_run_rate(n=100_000):
    """Packets/s of one BPF_PROG_TEST_RUN per 64-byte frame from Python; None where
    bpf(2) is refused."""
    frames = [frame(k, 64) for k in range(1000)]
    try:
        kp = kernel.KernelProgram(asm.assemble(PASS), "sched_cls")
    except OSError as exc:
        print(f"kernel test_run: skipped ({exc})")
        return None
    with kp:
        start = time.perf_counter()
        for k in range(n):
            kp.test_run(frames[k % 1000])
        return n / (time.perf_counter() - start)


def dd_seconds(directory, size):
    """Wall seconds of ``dd`` writing ``size`` bytes (whole MiB blocks, at least one) to
    a file in ``directory``: with ``oflag=direct`` where the filesystem takes it (as
    tcsim's writer), else through the page cache; and which of the two."""
    blocks = max(1, -(-size // (1 << 20)))
    target = Path(directory, "dd.bin")
    for flags in (["oflag=direct"], []):
        start = time.perf_counter()
        done = subprocess.run(["dd", "if=/dev/zero", f"of={target}", "bs=1M",
                               f"count={blocks}", *flags], capture_output=True, check=False)
        took = time.perf_counter() - start
        target.unlink(missing_ok=True)
        if done.returncode == 0:
            return took, "direct" if flags else "page cache"
    raise OSError(f"dd cannot write to {directory}: {done.stderr.decode().strip()}")


def fs_type(directory):
    """The type of the filesystem ``directory`` is on (the longest mount point of
    /proc/mounts that holds it)."""
    path, best = str(Path(directory).resolve()), ("", "?")
    for line in Path("/proc/mounts").read_text().splitlines():
        mount, kind = line.split()[1:3]
        inside = path == mount or path.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) > len(best[0]):
            best = (mount, kind)
    return best[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", default="1000000,10000000",
                    help="capture sizes, comma-separated (default 1 M and 10 M frames)")
    ap.add_argument("--mixes", default="64,64-1500",
                    help="frame mixes, comma-separated: 64 (bytes), 64-1500 (spread)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out-dirs", default="",
                    help="directories the outputs are written to, comma-separated, each "
                         "in turn (default: the capture's temporary directory)")
    args = ap.parse_args()
    sizes = [int(n) for n in args.frames.split(",")]
    mixes = args.mixes.split(",")
    tcsim = [sys.executable, "-m", "pyebpf.pcap.tcsim"]
    compileall.compile_dir(ROOT / "pyebpf", quiet=1)
    kernel_rate = test_run_rate()
    rss = {}
    with tempfile.TemporaryDirectory() as tmp:
        out_dirs = [Path(d) for d in args.out_dirs.split(",") if d] or [Path(tmp)]
        for d in out_dirs:
            if not d.is_dir():
                sys.exit(f"bench_tcsim: --out-dirs: {d} is not a directory")
        Path(tmp, "pass.s").write_text(PASS)
        Path(tmp, "floor.py").write_text(DPKT_FLOOR)
        make_capture(Path(tmp, "ten.pcap"), 10, False)
        startup = thread_split([str(NAT), "-r", "ten.pcap", "-o", "ten-out.pcap"], tmp,
                               args.repeat)[0]
        print(f"{'frames':>10} {'mix':>8} {'run':<26} {'s':>8} {'cpu s':>8} {'pkt/s':>12} "
              f"{'x floor':>8} {'x fl cpu':>8} {'x test_run':>10} {'RSS MB':>7}")
        for n in sizes:
            repeat = args.repeat if n < 5_000_000 else 1
            for mix in mixes:
                make_capture(Path(tmp, "in.pcap"), n, mix == "64-1500")
                for at, out_dir in enumerate(out_dirs):
                    out = {name: str(out_dir / name)
                           for name in ("o.pcap", "f.pcap", "r.jsonl", "rf.jsonl",
                                        "d.pcap")}
                    runs = [("tcsim pass-all", ["pass.s"], []),
                            ("tcsim pass-all --report", ["pass.s"],
                             ["--report", out["r.jsonl"], "--drops", out["d.pcap"]]),
                            ("tcsim pass-all --report full", ["pass.s"],
                             ["--report", out["rf.jsonl"], "--drops", out["d.pcap"],
                              "--report-format", "full"])]
                    rows = []
                    if not at:
                        floor, floor_cpu, floor_rss = measure(
                            [sys.executable, "floor.py", "in.pcap", out["f.pcap"]], tmp,
                            repeat)
                        rows.append(("dpkt floor (read+write)", floor, floor_cpu, floor_rss))
                        runs += [("tcsim nat4", [str(NAT)], []),
                                 ("tcsim nat4 --cpus 2", [str(NAT)], ["--cpus", "2"]),
                                 (ONE_CORE, [str(NAT)], [])]
                    sizes_of = {}
                    for name, progs, extra in runs:
                        t, c, m = measure([*tcsim, *progs, "-r", "in.pcap", "-o",
                                           out["o.pcap"], *extra], tmp, repeat,
                                          name == ONE_CORE)
                        rows.append((name, t, c, m))
                        for file in ("r.jsonl", "rf.jsonl"):
                            # a 10 M-frame report is 1-4 GB: gone before the next run
                            if out[file] in extra:
                                sizes_of[file] = Path(out[file]).stat().st_size
                                Path(out[file]).unlink()
                        if not at:
                            rss.setdefault(name, {})[(n, mix)] = m
                    for name, t, c, m in rows:
                        rate = n / t
                        vs_kernel = (f"{rate / kernel_rate:10.1f}" if kernel_rate
                                     else f"{'-':>10}")
                        print(f"{n:>10,} {mix:>8} {name:<26} {t:8.2f} {c:8.2f} {rate:12,.0f} "
                              f"{floor / t:8.1f} {floor_cpu / c:8.1f} {vs_kernel} {m:7.0f}",
                              flush=True)
                    by_name = {name: (t, c) for name, t, c, _ in rows}
                    plain, plain_cpu = by_name["tcsim pass-all"]
                    for fmt, name, file in (("compact", "tcsim pass-all --report", "r.jsonl"),
                                            ("full", "tcsim pass-all --report full",
                                             "rf.jsonl")):
                        report, report_cpu = by_name[name]
                        size = sizes_of[file]
                        disk, how = dd_seconds(out_dir, size)
                        print(f"{'':>10} {mix:>8} --report overhead ({fmt}), outputs on "
                              f"{out_dir} ({fs_type(out_dir)}): {report / plain:.2f}x wall, "
                              f"{report_cpu / plain_cpu:.2f}x CPU; the report "
                              f"{size / 1e6:,.0f} MB, {size / n:.0f} bytes a packet, which "
                              f"dd ({how}) writes there in {disk:.2f} s "
                              f"({size / 1e6 / disk:,.0f} MB/s), the least a --report run "
                              f"takes: {disk / plain:.2f}x the plain run's wall", flush=True)
                    if not at:
                        one, one_cpu = by_name["tcsim nat4"]
                        two, two_cpu = by_name["tcsim nat4 --cpus 2"]
                        print(f"{'':>10} {mix:>8} --cpus 2 (nat4): speed-up {one / two:.2f}x "
                              f"wall; CPU time {two_cpu / one_cpu:.2f}x one CPU's", flush=True)
                        print(f"{'':>10} {mix:>8} --cpus 2 (nat4) against --cpus 1 on one "
                              f"core (its reading, replay and writing taking turns, as a "
                              f"strictly one-thread replay would; not the issue's "
                              f"comparison): {by_name[ONE_CORE][0] / two:.2f}x wall",
                              flush=True)
                        bounds = []
                        for cpus in (1, 2):
                            main_s, total, reading = thread_split(
                                [str(NAT), "-r", "in.pcap", "-o", out["o.pcap"], "--cpus",
                                 str(cpus)], tmp, repeat)
                            bounds.append(max(main_s, total / 2))
                            print(f"{'':>10} {mix:>8} nat4 --cpus {cpus}: main thread "
                                  f"{main_s:.3f} s CPU, the others {total - main_s:.3f} s "
                                  f"(read-ahead {reading:.3f}, the other CPUs' and the "
                                  f"write-behind {total - main_s - reading:.3f}); on two "
                                  f"free cores at least {bounds[-1]:.3f} s "
                                  f"(load {os.getloadavg()[0]:.1f})", flush=True)
                        print(f"{'':>10} {mix:>8} --cpus 2 (nat4): at most "
                              f"{bounds[0] / bounds[1]:.2f}x on two free cores (start-up: the main thread's "
                              f"{startup:.3f} s of CPU)", flush=True)
                    for name in out.values():
                        Path(name).unlink(missing_ok=True)
                Path(tmp, "in.pcap").unlink(missing_ok=True)
        if kernel_rate:
            print(f"kernel test_run per packet: {kernel_rate:,.0f} packets/s")
        for name, by_size in rss.items():
            print(f"peak RSS, {name}: " + ", ".join(
                f"{n:,} x {mix}: {m:.0f} MB" for (n, mix), m in sorted(by_size.items())))
        make_capture(Path(tmp, "big.pcap"), 50_000, False)
        latency = statistics.median(interrupt_latency(tmp, Path(tmp, "big.pcap"))
                                    for _ in range(5))
        print(f"SIGINT to exit (median of 5): {latency * 1000:.1f} ms")


if __name__ == "__main__":
    main()
