"""A fixed workload to count machine instructions of, where wall time is too noisy.

    valgrind --tool=callgrind --collect-atstart=no \\
        --toggle-collect='__pyx_pw_6pyebpf_5_core_7Program_*run' \\
        python bench/insn_counts.py csum_loop 100
    valgrind --tool=callgrind --collect-atstart=no \\
        --toggle-collect='__pyx_pw_6pyebpf_*tc_replay' python bench/insn_counts.py replay 5

runs ``Program.run`` of one of bench_core's programs (``alu``, ``classifier``,
``csum_loop``, ``empty``) N times, or the tcsim replay loop N times over bench_tcsim's
classifier and 1,000 of its frames; callgrind's ``totals`` divided by N is the count per
run.  The toggle keeps interpreter start-up and imports out of the count.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).parent)]

import bench_core  # noqa: E402
import bench_tcsim  # noqa: E402
from pyebpf import asm  # noqa: E402
from pyebpf._core import Program  # noqa: E402
from pyebpf.pcap import pcapio, tcsim  # noqa: E402

PROGRAMS = {
    "alu": (bench_core.alu_program(), bench_core.FRAME_64),
    "classifier": (bench_core.assemble(bench_core.RAW_PROLOGUE + bench_core.CLASSIFIER_BODY),
                   bench_core.FRAME_64),
    "csum_loop": (bench_core.assemble(bench_core.RAW_PROLOGUE + bench_core.CSUM_BODY),
                  bench_core.FRAME_1500),
    "empty": (bench_core.EMPTY, bench_core.FRAME_64),
}


def main(name: str, repeat: int) -> None:
    if name == "replay":
        prog = Program(asm.assemble(bench_tcsim.CLASSIFIER), "sched_cls")
        frames = bench_tcsim.frames(1000)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp, "in.pcap")
            pcapio.write(path, [(1_700_000_000 * 10**9 + k * 1000, f, len(f))
                                for k, f in enumerate(frames)])
            capture = pcapio.read(path)
        for _ in range(repeat):
            tcsim.Replay(capture, [prog], hook="egress")
        return
    code, frame = PROGRAMS[name]
    prog = Program(code)
    for _ in range(repeat):
        prog.run(frame)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in (*PROGRAMS, "replay"):
        sys.exit(f"usage: python bench/insn_counts.py {{{','.join(PROGRAMS)},replay}} N")
    main(sys.argv[1], int(sys.argv[2]))
