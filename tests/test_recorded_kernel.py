"""The recorded kernel answers (tests/recorded_kernel.py) on a stand-in kernel: what is
recorded is played back, keyed by what a call means rather than by fd numbers, and a
live answer that differs from the recorded one fails."""

import pytest

from pyebpf import isa
from pyebpf.kernel import sysbpf

from recorded_kernel import AnswerMismatch, Answers

LOOKUP, UPDATE = isa.BpfCmd.BPF_MAP_LOOKUP_ELEM, isa.BpfCmd.BPF_MAP_UPDATE_ELEM
ARRAY = isa.MapType.BPF_MAP_TYPE_ARRAY


class Kernel:
    """A kernel with one array map whose value a program run increments; fds start at
    ``first_fd``."""

    def __init__(self, first_fd=3, step=1):
        self.next_fd, self.value, self.step = first_fd, 0, step

    def _fd(self):
        self.next_fd += 1
        return self.next_fd - 1

    def prog_load(self, prog_type, insns, license, log_level):
        return self._fd(), 0, ""

    def prog_test_run(self, fd, data, ctx, data_out_size, ctx_out_size, repeat, flags):
        self.value += self.step
        return sysbpf.TestRun(0, self.value, data, None, len(data), 7)

    def map_create(self, *args):
        return self._fd(), 0

    def map_elem(self, cmd, fd, key, value, flags, out_size):
        return (0, self.value.to_bytes(out_size, "little")) if cmd == LOOKUP else (0, b"")

    def close(self, fd):
        pass

    def possible_cpus(self):
        return 2


def session(calls):
    """Create a map, look its value up, load a program using it, run it twice, and look
    the value up again."""
    mfd, _ = calls.map_create(ARRAY, 4, 8, 1, 0, 0, b"m")
    before = calls.map_elem(LOOKUP, mfd, bytes(4), None, 0, 8)
    lddw = isa.encode(isa.OPS_BY_NAME["LDDW_MAP_FD"], 1, isa.BPF_PSEUDO_MAP_FD, imm=mfd)
    code = b"".join(i.pack() for i in lddw + isa.encode(isa.OPS_BY_NAME["EXIT"]))
    pfd, _, _ = calls.prog_load(isa.ProgType.BPF_PROG_TYPE_SCHED_CLS, code, b"GPL\0", 1)
    runs = [calls.prog_test_run(pfd, bytes(14), None, 14, 0, 1, 0).retval for _ in range(2)]
    return before, runs, calls.map_elem(LOOKUP, mfd, bytes(4), None, 0, 8)


def recorded(tmp_path, **kernel):
    rec = Answers("record", Kernel(**kernel), tmp_path)
    want = session(rec)
    rec.save()
    return want


def test_replayed_answers_are_the_recorded_ones_whatever_the_fd_numbers(tmp_path):
    want = recorded(tmp_path, first_fd=3)
    assert session(Answers("replay", Kernel(first_fd=40), tmp_path)) == want
    assert session(Answers("live", Kernel(first_fd=40), tmp_path)) == want


def test_a_lookup_after_a_run_is_not_the_lookup_before_it(tmp_path):
    recorded(tmp_path)
    before, runs, after = session(Answers("replay", Kernel(), tmp_path))
    assert (before, runs, after) == ((0, bytes(8)), [1, 2], (0, (2).to_bytes(8, "little")))


def test_a_live_answer_that_differs_from_the_recorded_one_fails(tmp_path):
    recorded(tmp_path, step=1)
    with pytest.raises(AnswerMismatch, match="differs from the recorded one"):
        session(Answers("live", Kernel(step=2), tmp_path))


def test_a_call_without_a_recorded_answer_fails_naming_the_command(tmp_path):
    recorded(tmp_path)
    replay = Answers("replay", Kernel(), tmp_path)
    with pytest.raises(AnswerMismatch, match="no recorded kernel answer for this "
                                             "BPF_MAP_UPDATE_ELEM"):
        replay.map_elem(UPDATE, 99, bytes(4), bytes(8), 0, 0)
