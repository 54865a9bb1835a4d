"""A fixed workload to count machine instructions of, where wall time is too noisy.

    valgrind --tool=callgrind --collect-atstart=no \\
        --toggle-collect='__pyx_f_6pyebpf_5_core__run_entry' \\
        python bench/insn_counts.py csum_loop 100
    valgrind --tool=callgrind --collect-atstart=no \\
        --toggle-collect='__pyx_pw_6pyebpf_*tc_replay' python bench/insn_counts.py replay 5

runs ``Program.run`` of one of bench_core's programs (``alu``, ``classifier``,
``csum_loop``, ``empty``), of ``hashmix`` (below), of ``classifier_skb`` (bench_core's
classifier as a sched_cls program, reading ``data``/``data_end`` from its context) or of
``empty_skb`` (the empty program as a sched_cls one: a typed call's own cost) N times;
``run_many`` of ``classifier_skb`` over 20,000 frames N times (``classifier_many``,
toggle ``*run_many``: divide by 20,000 N); or the tcsim replay loop N times over
bench_tcsim's classifier and 1,000 of its frames (kept here as ``REPLAY_CLASSIFIER`` and
``replay_frames``).  Callgrind's ``totals`` divided by N is the count per run.  The toggle keeps interpreter start-up and imports
out of the count (``Program.run`` is ``_run_entry``, a vectorcall method: before
2026-12-03 its wrapper was ``__pyx_pw_6pyebpf_5_core_7Program_*run``).  Run it with ``PYEBPF_JIT=off``: with the JIT's tiering on, the run
that reaches ``PYEBPF_JIT_AFTER`` compiles the program, and that lands in the count.
"""
from __future__ import annotations

import struct
import sys
import tempfile
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).parent)]

import bench_core  # noqa: E402
from pyebpf import asm  # noqa: E402
from pyebpf._core import Program  # noqa: E402
from pyebpf.pcap import pcapio, tcsim  # noqa: E402

# The replay workload of the measurements in bench/README.md (bench_tcsim's classifier
# and frames when they were taken), kept here so the counts stay comparable.
REPLAY_CLASSIFIER = """
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


# hashmix: 30 rounds of a multiply-xor-shift mix over the eight 64-bit words of a 64-byte
# frame (raw mode: r1 = the frame), 1,535 instructions a run: an ALU- and load-bound loop
# with one backward jump per round, the interpreter's per-instruction cost with little else.
_MIX_WORD = """
    r3 = *(u64 *)(r6 + {off})
    r0 ^= r3
    r0 *= r8
    r3 = r0
    r3 >>= 29
    r0 ^= r3
"""
HASHMIX = ("""
    r6 = r1
    r7 = 30
    r8 = 0x9e3779b97f4a7c15 ll
    r0 = 0x243f6a8885a308d3 ll
round:
""" + "".join(_MIX_WORD.format(off=8 * k) for k in range(8)) + """
    r0 += r7
    r7 -= 1
    if r7 != 0 goto round
    exit
""")


def replay_frames(n: int) -> list[bytes]:
    """n 64-byte Ethernet/IPv4/UDP frames, each with another source address and port."""
    out = []
    for k in range(n):
        eth = bytes.fromhex("020000000002020000000001") + b"\x08\x00"
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 50, k & 0xFFFF, 0, 64, 17, 0,
                         bytes([10, 0, k >> 8 & 255, k & 255]), bytes([10, 1, 0, 1]))
        udp = struct.pack("!HHHH", 1024 + k % 50000, 53 if k % 3 else 2000, 30, 0)
        out.append(eth + ip + udp + bytes(22))
    return out


PROGRAMS = {
    "alu": (bench_core.alu_program(), bench_core.FRAME_64),
    "classifier": (bench_core.assemble(bench_core.RAW_PROLOGUE + bench_core.CLASSIFIER_BODY),
                   bench_core.FRAME_64),
    "csum_loop": (bench_core.assemble(bench_core.RAW_PROLOGUE + bench_core.CSUM_BODY),
                  bench_core.FRAME_1500),
    "empty": (bench_core.EMPTY, bench_core.FRAME_64),
    "hashmix": (asm.assemble(HASHMIX), bench_core.FRAME_64),
}


# the same classifier as a sched_cls program reading data / data_end from its context, and
# the empty program as one (the per-call cost of a typed run)
TYPED = {"classifier_skb": (bench_core.assemble(bench_core.SKB_PROLOGUE + bench_core.CLASSIFIER_BODY),
                            bench_core.FRAME_64),
         "empty_skb": (bench_core.EMPTY, bench_core.FRAME_64)}


def main(name: str, repeat: int) -> None:
    if name == "replay":
        prog = Program(asm.assemble(REPLAY_CLASSIFIER), "sched_cls")
        frames = replay_frames(1000)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp, "in.pcap")
            pcapio.write(path, [(1_700_000_000 * 10**9 + k * 1000, f, len(f))
                                for k, f in enumerate(frames)])
            capture = pcapio.read(path)
        for _ in range(repeat):
            tcsim.Replay(capture, [prog], hook="egress")
        return
    if name == "classifier_many":
        code, frame = TYPED["classifier_skb"]
        prog, frames = Program(code, "sched_cls"), [frame] * 20_000
        for _ in range(repeat):
            prog.run_many(frames)
        return
    if name in TYPED:
        code, frame = TYPED[name]
        prog = Program(code, "sched_cls")
    else:
        code, frame = PROGRAMS[name]
        prog = Program(code)
    for _ in range(repeat):
        prog.run(frame)


if __name__ == "__main__":
    names = [*PROGRAMS, *TYPED, "classifier_many", "replay"]
    if len(sys.argv) != 3 or sys.argv[1] not in names:
        sys.exit(f"usage: python bench/insn_counts.py {{{','.join(names)}}} N")
    main(sys.argv[1], int(sys.argv[2]))
