"""A run's stack starts zeroed as deep as its program reaches.

The privileged verifier lets a program read stack it never wrote (allow_uninit_stack);
the kernel then reads whatever the frame held.  pyebpf reads zeroes, in every run:
each run zeroes the bytes of its frame the program can reach (the verifier's stack
depth of each function; unverified code its whole frame, or nothing when no
instruction names r10).  These programs read a stack slot before writing it, so a
frame left as the previous run (or call) wrote it shows up in r0.  ``run_many`` and
the replay loop keep one Vm for every frame, which is where a frame left dirty would
show.
"""
import pytest

from pyebpf import Program
from pyebpf.pcap import tcreplay

FRAME = bytes(range(64))

# r0 = the u64 at r10-OFF (never written before), then the slot written
READ_THEN_WRITE = """
    r0 = *(u64 *)(r10 - {off})
    r1 = 0x5555
    *(u64 *)(r10 - {off}) = r1
    exit
"""


@pytest.mark.parametrize("off", [8, 256, 512])
def test_verified_program_reads_zero_from_unwritten_stack_in_every_frame(off):
    prog = Program.from_asm(READ_THEN_WRITE.format(off=off), "sched_cls")
    assert list(prog.run_many([FRAME] * 3).retval) == [0, 0, 0]


@pytest.mark.parametrize("off", [8, 512])
def test_raw_program_reads_zero_from_unwritten_stack_in_every_frame(off):
    prog = Program.from_asm(READ_THEN_WRITE.format(off=off))
    assert list(prog.run_many([FRAME] * 3).retval) == [0, 0, 0]


def test_verified_program_reads_zero_from_unwritten_stack_in_every_run():
    prog = Program.from_asm(READ_THEN_WRITE.format(off=16), "sched_cls")
    assert [prog.run(FRAME).retval for _ in range(3)] == [0, 0, 0]


def _read_then_write_below(mem, r1, *args):
    """A Python helper reading and writing the u64 504 bytes below r10 (r1 = r10-8)."""
    value = int.from_bytes(mem.read(r1 - 496, 8), "little")
    mem.write(r1 - 496, (0x99).to_bytes(8, "little"))
    return value


def test_python_helper_reads_zero_from_stack_the_program_never_reaches():
    # the program itself accesses no stack (its verified depth is 0); the helper
    # it is given reads wherever its pointer argument leads
    prog = Program.from_asm("""
        r1 = r10
        r1 += -8
        call bpf_get_prandom_u32
        exit
    """, "sched_cls", helpers={7: _read_then_write_below})
    assert list(prog.run_many([FRAME] * 3).retval) == [0, 0, 0]


# the callee reads its slot before writing it; called twice, it must read zero twice
CALL_TWICE = """
    call sub
    r6 = r0
    call sub
    r0 += r6
    exit
sub:
    r0 = *(u64 *)(r10 - {off})
    r1 = 0x77
    *(u64 *)(r10 - {off}) = r1
    exit
"""


@pytest.mark.parametrize("off", [8, 512])
@pytest.mark.parametrize("prog_type", ["sched_cls", None])
def test_called_function_reads_zero_from_unwritten_stack_at_every_call(off, prog_type):
    prog = Program.from_asm(CALL_TWICE.format(off=off), prog_type, jit=False)
    assert prog.run(FRAME).retval == 0


def test_jitted_called_function_reads_zero_from_unwritten_stack_at_every_call():
    pytest.importorskip("llvmlite", reason="pyebpf.jit needs llvmlite")
    prog = Program.from_asm(CALL_TWICE.format(off=64), "sched_cls", jit=True)
    assert prog.jitted
    assert list(prog.run_many([FRAME] * 2).retval) == [0, 0]


def test_replay_loop_reads_zero_from_unwritten_stack_in_every_packet():
    prog = Program.from_asm(READ_THEN_WRITE.format(off=40), "sched_cls")
    loop = tcreplay.Loop([prog])
    loop.replay([FRAME] * 3)
    assert loop.verdicts == {0: 3}
