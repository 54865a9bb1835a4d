"""bpf_tail_call through program arrays, against the kernel (docs/kernel-notes.md, Maps)."""
import pytest

import pyebpf
from pyebpf import isa
from pyebpf import Map
from pyebpf.errors import MapError

PROG_ARRAY = isa.MapType.BPF_MAP_TYPE_PROG_ARRAY


def _hop(array_fd, next_slot):
    """cb[0] += 1, then tail-call ``next_slot``; if that fails, return cb[0]."""
    return pyebpf.asm.assemble(f"""
        r6 = r1
        r2 = *(u32 *)(r6 + 0x30)
        r2 += 0x1
        *(u32 *)(r6 + 0x30) = r2
        r1 = r6
        r2 = map_fd({array_fd}) ll
        r3 = {next_slot:#x} ll
        call 0xc
        r0 = *(u32 *)(r6 + 0x30)
        exit""")


def _engine_chain(length, slot_of_next=lambda i: i + 1, size=40):
    array = Map.create(PROG_ARRAY, 4, 4, size)
    progs = [pyebpf.Program(_hop(array.fd, slot_of_next(i)), "sched_cls") for i in range(length)]
    for i, prog in enumerate(progs):
        array[i.to_bytes(4, "little")] = prog
    return progs[0].run(bytes(64)).retval


def _kernel_chain(kernel, length, slot_of_next=lambda i: i + 1, size=40):
    with kernel.KernelMap(PROG_ARRAY, 4, 4, size) as array:
        progs = [kernel.KernelProgram(_hop(array.fd, slot_of_next(i)), "sched_cls")
                 for i in range(length)]
        try:
            for i, prog in enumerate(progs):
                array.update(i.to_bytes(4, "little"), prog.fd.to_bytes(4, "little"))
            return progs[0].test_run(bytes(64), ctx={}).retval
        finally:
            for prog in progs:
                prog.close()


@pytest.mark.parametrize("length", [1, 2, 32, 33, 34, 35])
def test_a_chain_runs_as_many_programs_as_the_kernel(kernel_oracle, length):
    assert _engine_chain(length) == _kernel_chain(kernel_oracle, length) == min(length, 34)


def test_a_program_that_tail_calls_itself_runs_34_times(kernel_oracle):
    itself = lambda i: 0  # noqa: E731
    assert _engine_chain(1, itself) == _kernel_chain(kernel_oracle, 1, itself) == 34


@pytest.mark.parametrize("slot", [5, 40, 0xFFFFFFFF], ids=["empty", "past-the-end", "u32-max"])
def test_a_failed_tail_call_goes_on_with_the_next_instruction(kernel_oracle, slot):
    target = lambda i: slot  # noqa: E731
    assert _engine_chain(1, target) == _kernel_chain(kernel_oracle, 1, target) == 1


def test_the_index_is_compared_as_u32(kernel_oracle):
    wraps = lambda i: (1 << 32) + 1 if i == 0 else 99  # noqa: E731
    assert _engine_chain(2, wraps) == _kernel_chain(kernel_oracle, 2, wraps) == 2


def test_the_tail_call_limit_is_a_setting():
    array = Map.create(PROG_ARRAY, 4, 4, 1)
    prog = pyebpf.Program(_hop(array.fd, 0), "sched_cls")
    array[bytes(4)] = prog
    prog.tail_call_limit = 32
    assert prog.run(bytes(64)).retval == 33


def test_a_program_array_serves_one_program_type():
    array = Map.create(PROG_ARRAY, 4, 4, 2)
    pyebpf.Program(_hop(array.fd, 1), "sched_cls")
    other = pyebpf.Program(pyebpf.asm.assemble("r0 = 0x0\nexit"), "socket_filter")
    with pytest.raises(MapError, match="serves BPF_PROG_TYPE_SCHED_CLS programs"):
        array[bytes(4)] = other


def test_program_arrays_refuse_noexist_and_exist_flags():
    array = Map.create(PROG_ARRAY, 4, 4, 2)
    prog = pyebpf.Program(pyebpf.asm.assemble("r0 = 0x0\nexit"), "sched_cls")
    with pytest.raises(MapError, match="EINVAL"):
        array.update(bytes(4), prog, isa.BPF_NOEXIST)


def test_map_helpers_refuse_a_program_array():
    array = Map.create(PROG_ARRAY, 4, 4, 2)
    prog = pyebpf.Program(pyebpf.asm.assemble(f"""
        *(u32 *)(r10 - 0x4) = 0x0
        r1 = map_fd({array.fd}) ll
        r2 = r10
        r2 += -0x4
        call 0x1
        r0 = 0x0
        exit"""), "sched_cls", verify=False)
    with pytest.raises(pyebpf.errors.ExecutionError, match="only for bpf_tail_call"):
        prog.run(bytes(64))
