"""bpf_get_branch_snapshot: without last-branch records (this machine's kernel, a packet
run, the default Machine) it is -ENOENT, or -EINVAL with a flag, and the buffer is left
as it was, as the kernel does (BPF_PROG_TEST_RUN of a tc program); with
``Machine(branches=...)`` a kprobe run gets the records that fit, as struct
perf_branch_entry."""
from __future__ import annotations

import errno
import struct

import pytest

from pyebpf import isa
from pyebpf.trace import Machine, MachineSpecError

from kprobe_value import run_into_value
from skbdiff import assert_same

I = isa.Insn
FRAME = bytes(range(64))


def tc_snapshot(size: int, flags: int) -> bytes:
    """A tc program: 48 bytes of 0x11 on the stack, r0 = bpf_get_branch_snapshot(them,
    size, flags); returns r0 if negative, else the first 8 stack bytes' low half."""
    insns = [I(0x7A, 10, 0, -8 * k, 0x11111111) for k in range(1, 7)]
    insns += [I(0xBF, 1, 10, 0, 0), I(0x07, 1, 0, 0, -48), I(0xB7, 2, 0, 0, size),
              I(0xB7, 3, 0, 0, flags), I(0x85, 0, 0, 0, 176),
              I(0x65, 0, 0, 1, -1),             # if r0 s> -1 goto +1
              I(0x95, 0, 0, 0, 0),
              I(0x61, 0, 10, -48, 0), I(0x95, 0, 0, 0, 0)]
    return b"".join(i.pack() for i in insns)


@pytest.mark.parametrize("size,flags,want", [(48, 0, -errno.ENOENT), (0, 0, -errno.ENOENT),
                                             (48, 1, -errno.EINVAL)])
def test_without_branch_records_the_kernel_s_errno_comes_back(size, flags, want):
    engine, _ = assert_same(tc_snapshot(size, flags), "sched_cls", FRAME)
    assert engine.retval & 0xFFFFFFFF == want & 0xFFFFFFFF


def snapshot(machine: Machine, size: int = 48, flags: int = 0, arch: str = "x86_64"):
    """(r0, the 48-byte map value buffer) of a kprobe run calling the helper into a map
    value filled with 0xAA."""
    return run_into_value(machine, f"""
        r1 = r7
        r1 += 8
        r2 = {size}
        r3 = {flags}
        call 176""", 48, fill=0xAA, arch=arch)


BRANCHES = ({"from": 0xFFFFFFFF81000010, "to": 0xFFFFFFFF81000100, "mispred": 1,
             "cycles": 300, "type": 2}, (0xFFFFFFFF81000200, 0xFFFFFFFF81000010))


def entry(frm: int, to: int, word: int = 0) -> bytes:
    return struct.pack("<QQQ", frm, to, word)


def test_the_records_that_fit_are_copied_newest_first():
    r0, buf = snapshot(Machine(branches=BRANCHES))
    first = entry(0xFFFFFFFF81000010, 0xFFFFFFFF81000100, 1 | 300 << 4 | 2 << 20)
    assert (r0, buf) == (48, first + entry(0xFFFFFFFF81000200, 0xFFFFFFFF81000010))


def test_a_buffer_for_one_record_gets_the_newest_and_keeps_the_rest():
    r0, buf = snapshot(Machine(branches=BRANCHES), size=40)
    assert r0 == 24 and buf[24:] == b"\xaa" * 24


def test_a_flag_is_einval_after_the_records_are_copied():
    r0, buf = snapshot(Machine(branches=BRANCHES), flags=1)
    assert r0 == -errno.EINVAL and buf[:16] == entry(0xFFFFFFFF81000010,
                                                     0xFFFFFFFF81000100)[:16]


def test_a_machine_without_records_is_enoent_and_leaves_the_buffer():
    assert snapshot(Machine()) == (-errno.ENOENT, b"\xaa" * 48)


def test_arm64_has_no_branch_snapshot():
    assert snapshot(Machine(branches=BRANCHES), arch="arm64") == (-errno.ENOENT, b"\xaa" * 48)


@pytest.mark.parametrize("branch,what", [((1,), "from and to"),
                                         ({"from": 1, "to": 2, "taken": 1}, "'taken'"),
                                         ({"from": 1, "to": 2, "cycles": 1 << 16}, "16-bit")])
def test_a_malformed_branch_record_is_refused_saying_why(branch, what):
    with pytest.raises(MachineSpecError, match=what):
        Machine(branches=(branch,))
