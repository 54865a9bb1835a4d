"""bpf_ktime_get_ns in Program.run: a clock that is never 0 and advances between runs, as
the kernel's does, but fixed (docs/clock.md); ``ktime=`` still sets it per run."""
import struct
import subprocess
import sys

import pytest

import pyebpf
from pyebpf import KTIME_RUN_GAP, KTIME_START

from conftest import child_python
from test_helpers_misc import CLS, FRAME, _u64s, two_calls_prog

KTIME = 5   # helper id of bpf_ktime_get_ns


def _kernel_reads(runs: int) -> list[tuple[int, int]]:
    with pyebpf.kernel.KernelProgram(two_calls_prog(KTIME), CLS) as kprog:
        return [struct.unpack("<QQ", struct.pack("<5I", *kprog.test_run(FRAME, ctx={}).skb["cb"])[:16])
                for _ in range(runs)]


@pytest.mark.kernel_varies
def test_the_default_clock_is_never_zero_as_the_kernels_is_not():
    ours = _u64s(pyebpf.Program(two_calls_prog(KTIME), CLS).run(FRAME))
    theirs = _kernel_reads(1)[0]
    assert min(ours) >= KTIME_START > 0 and min(theirs) > 0, (ours, theirs)


@pytest.mark.kernel_varies
def test_the_default_clock_advances_between_runs_as_the_kernels_does():
    prog = pyebpf.Program(two_calls_prog(KTIME), CLS)
    ours = [_u64s(prog.run(FRAME)) for _ in range(3)]
    theirs = _kernel_reads(3)
    for reads in (ours, theirs):
        assert reads[0][1] < reads[1][0] < reads[2][0], reads
    assert [b[0] - a[0] for a, b in zip(ours, ours[1:])] == [KTIME_RUN_GAP] * 2


def test_every_program_of_the_process_reads_one_clock():
    first = pyebpf.Program(two_calls_prog(KTIME), CLS).run(FRAME)
    second = pyebpf.Program(two_calls_prog(KTIME), CLS).run(FRAME)
    assert _u64s(second)[0] == _u64s(first)[0] + KTIME_RUN_GAP


def test_a_fresh_process_reads_the_same_clock_values():
    script = ("import sys; sys.path[:0] = sys.argv[1:]\n"
              "import pyebpf\n"
              "from test_helpers_misc import CLS, FRAME, _u64s, two_calls_prog\n"
              "p = pyebpf.Program(two_calls_prog(5), CLS)\n"
              "print(*_u64s(p.run(FRAME)), *_u64s(p.run(FRAME, ktime_step=7)), "
              "*_u64s(p.run(FRAME)))\n")
    env, cwd = child_python()
    tests = str(__import__("pathlib").Path(__file__).parent)
    out = subprocess.run([sys.executable, "-c", script, tests], env=env, cwd=cwd,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    start, gap = KTIME_START, KTIME_RUN_GAP
    assert list(map(int, out.stdout.split())) == [
        start, start, start + gap, start + gap + 7, start + 2 * gap + 14, start + 2 * gap + 14]


def test_ktime_given_to_a_run_is_what_it_reads_and_leaves_the_clock_alone():
    prog = pyebpf.Program(two_calls_prog(KTIME), CLS)
    before = _u64s(prog.run(FRAME))[0]
    assert _u64s(prog.run(FRAME, ktime=10 ** 15, ktime_step=3)) == (10 ** 15, 10 ** 15 + 3)
    assert _u64s(prog.run(FRAME))[0] == before + KTIME_RUN_GAP


def test_a_run_that_faults_still_moves_the_clock_on():
    prog = pyebpf.Program(two_calls_prog(KTIME), CLS)
    before = _u64s(prog.run(FRAME))[0]
    try:
        prog.run(FRAME, budget=3)
    except pyebpf.errors.BudgetExceeded:
        pass
    assert _u64s(prog.run(FRAME))[0] == before + 2 * KTIME_RUN_GAP


def test_a_packet_refused_before_the_run_leaves_the_clock_alone():
    prog = pyebpf.Program(two_calls_prog(KTIME), CLS)
    before = _u64s(prog.run(FRAME))[0]
    for bad in (bytes(5), object()):
        try:
            prog.run(bad)
        except (ValueError, TypeError):
            pass
    assert _u64s(prog.run(FRAME))[0] == before + KTIME_RUN_GAP
