#!/usr/bin/env python3
"""tcsim throughput: a 10k-packet capture of 64-byte frames through a 50-instruction
classifier, against calling the kernel's BPF_PROG_TEST_RUN once per packet.

    python bench/bench_tcsim.py [--packets N]

Prints packets/s (best of 5) for:

* tcsim replay: the C replay loop over the capture (pcap/tcreplay.pyx), the rewritten
  bytes and per-packet outcomes included;
* tcsim command: ``tcsim -r CAPTURE PROG -o OUT`` in-process: read, replay, write
  (the rate its own summary line reports);
* pyebpf Program.run per packet from Python;
* kernel test_run per packet from Python (``pyebpf.kernel.KernelProgram.test_run``,
  one bpf(2) call per packet, JIT), when bpf(2) is allowed;

and the ratio tcsim replay / kernel test_run.  Both sides' verdicts are checked equal.
Then the time from SIGINT to the exit of a ``tcsim`` process busy replaying (median of
5), which the command promises under 0.1 s.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from pyebpf import asm, kernel  # noqa: E402
from pyebpf._core import Program  # noqa: E402
from pyebpf.pcap import pcapio, tcsim  # noqa: E402

# A direct-action classifier: bounds check, EtherType, IP protocol, UDP ports, a hash
# of addresses and ports into skb->mark, then OK (dport < 1024) or UNSPEC; 50
# instructions on the frames below.
CLASSIFIER = """
    r6 = r1
    r2 = *(u32 *)(r6 + 0x4c)
    r3 = *(u32 *)(r6 + 0x50)
    r4 = r2
    r4 += 42
    r0 = 0
    if r4 > r3 goto out
    r5 = *(u16 *)(r2 + 12)
    if r5 != 0x8 goto out
    r5 = *(u8 *)(r2 + 23)
    if r5 != 17 goto out
    r7 = *(u32 *)(r2 + 26)
    r8 = *(u32 *)(r2 + 30)
    r9 = *(u16 *)(r2 + 34)
    r5 = *(u16 *)(r2 + 36)
    r9 = be16 r9
    r5 = be16 r5
    r7 ^= r8
    r7 *= 0x9e3779b1
    r8 = r7
    r8 >>= 16
    r7 ^= r8
    r9 <<= 16
    r9 |= r5
    r7 += r9
    r7 *= 0x85ebca6b
    r8 = r7
    r8 >>= 13
    r7 ^= r8
    r7 *= 0xc2b2ae35
    r8 = r7
    r8 >>= 16
    r7 ^= r8
    r7 &= 0xffff
    r8 = r5
    r8 &= 0xff
    r7 += r8
    r8 = r9
    r8 >>= 24
    r7 ^= r8
    r7 |= 0x10000
    r7 += 1
    r7 ^= 0x55
    r8 = *(u32 *)(r6 + 0x8)
    r7 += r8
    *(u32 *)(r6 + 0x8) = r7
    r0 = 0
    if r5 < 1024 goto out
    r0 = -1
out:
    exit
"""


def frames(n):
    out = []
    for k in range(n):
        # Ethernet (14) + IPv4 (20) + UDP (8) + 22 bytes of payload = 64 bytes
        eth = bytes.fromhex("020000000002020000000001") + b"\x08\x00"
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 50, k & 0xFFFF, 0, 64, 17, 0,
                         bytes([10, 0, k >> 8 & 255, k & 255]), bytes([10, 1, 0, 1]))
        udp = struct.pack("!HHHH", 1024 + k % 50000, 53 if k % 3 else 2000, 30, 0)
        out.append(eth + ip + udp + bytes(22))
    return out


def best(fn, repeat=5):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


SPIN = "r1 = 20000\nloop:\nr1 -= 1\nif r1 != 0 goto loop\nr0 = 0\nexit\n"


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def interrupt_latency(tmp, cap_path):
    """Seconds from SIGINT to the exit of a tcsim process in its replay loop (each
    packet runs 40,003 instructions)."""
    prog = Path(tmp, "spin.s")
    prog.write_text(SPIN)
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    child = subprocess.Popen([sys.executable, "-m", "pyebpf.pcap.tcsim", str(prog), "-r",
                              str(cap_path), "-o", str(Path(tmp, "spin.pcap"))],
                             env=env, stderr=subprocess.PIPE, text=True)
    while child.poll() is None and cpu_seconds(child.pid) < 0.8:
        time.sleep(0.01)
    sent = time.perf_counter()
    child.send_signal(signal.SIGINT)
    err = child.communicate()[1]
    took = time.perf_counter() - sent
    assert child.returncode == 130 and "interrupted at packet" in err, err
    return took


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=10_000)
    n = ap.parse_args().packets
    code = asm.assemble(CLASSIFIER)
    prog = Program(code, "sched_cls")
    pkts = frames(n)
    assert all(len(f) == 64 for f in pkts)
    insns = prog.run(pkts[0]).insn_count
    with tempfile.TemporaryDirectory() as tmp:
        cap_path, prog_path, out = Path(tmp, "in.pcap"), Path(tmp, "c.s"), Path(tmp, "out.pcap")
        pcapio.write(cap_path, [(1_700_000_000 * 10**9 + k * 1000, f, len(f))
                                for k, f in enumerate(pkts)])
        prog_path.write_text(CLASSIFIER)
        capture = pcapio.read(cap_path)
        replay = tcsim.Replay(capture, [prog], hook="egress")
        t_replay = best(lambda: tcsim.Replay(capture, [prog], hook="egress"))
        with contextlib.redirect_stderr(io.StringIO()):
            t_cli = best(lambda: tcsim.main(["-r", str(cap_path), str(prog_path), "-o",
                                             str(out), "--hook", "egress"]), repeat=3)
        big = Path(tmp, "big.pcap")
        pcapio.write(big, [(k * 1000, pkts[k % n], 64) for k in range(50_000)])
        latency = statistics.median(interrupt_latency(tmp, big) for _ in range(5))
    t_run = best(lambda: [prog.run(f) for f in pkts], repeat=3)
    ours = [o[1] for o in replay.outcomes()]
    print(f"{n} packets of 64 bytes, {insns}-instruction classifier")
    print(f"tcsim replay (C loop):        {n / t_replay:12,.0f} packets/s")
    print(f"tcsim command (read+write):   {n / t_cli:12,.0f} packets/s")
    print(f"pyebpf Program.run per packet:{n / t_run:12,.0f} packets/s")
    print(f"SIGINT to exit (median of 5):  {latency * 1000:9.1f} ms")
    try:
        kp = kernel.KernelProgram(code, "sched_cls")
    except OSError as exc:
        print(f"kernel test_run: skipped ({exc})")
        return
    with kp:
        theirs = [kp.test_run(f).retval for f in pkts]
        t_kernel = best(lambda: [kp.test_run(f) for f in pkts], repeat=3)
    assert [r & 0xFFFFFFFF for r in ours] == theirs, "pyebpf and the kernel disagree"
    print(f"kernel test_run per packet:   {n / t_kernel:12,.0f} packets/s")
    print(f"ratio tcsim replay / kernel test_run: {t_kernel / t_replay:.1f}x")


if __name__ == "__main__":
    main()
