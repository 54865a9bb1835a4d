"""The instruction budget, charged once per basic block (``_core._block_lengths``), stops
a run exactly where a count per instruction would: for every budget below a program's
instruction count the run raises ``BudgetExceeded`` at the last instruction it ran, and
at or above it ``insn_count`` is that count.  The reference is the trace loop, which
still counts instruction by instruction; each behaviour is checked with both
dispatches of the plain loop."""
import pytest

from pyebpf import Program, asm, errors, isa
from pyebpf import _core

# (name, source, memory): each enters and leaves blocks in another way
PROGRAMS = [
    ("loop", """
        mov %r0, 0
        mov %r2, 7
    loop:
        add %r0, 3
        mov %r1, %r0
        rsh %r1, 1
        sub %r2, 1
        jne %r2, 0, loop
        exit""", None),
    ("copy-then-change", """
        mov %r0, 1
        mov %r4, 3
        add %r0, 0
    loop:
        mov %r3, %r0
        lsh %r3, 1
        add %r0, %r3
        mov %r5, %r0
        and %r5, 0xff
        sub %r4, 1
        jne %r4, 0, loop
        mov %r2, %r4
        add %r2, %r5
        add %r0, %r2
        exit""", None),
    ("lddw-in-a-block", """
        lddw %r1, 0x1122334455667788
        mov %r0, %r1
        lddw %r2, 7
        add %r0, %r2
        ja next
        mov %r0, 0
    next:
        add %r0, 1
        exit""", None),
    ("local-calls", """
        mov %r6, 3
        mov %r0, 0
    again:
        call local f
        sub %r6, 1
        jgt %r6, 0, again
        exit
    f:
        add %r0, 10
        mov %r1, %r0
        exit""", None),
    ("helper-calls", """
        mov %r1, 2
        mov %r2, 5
        call 9
        mov %r1, %r0
        mov %r2, 1
        call 9
        add %r0, 1
        exit""", None),
    ("memory-and-branches", """
        ldxb %r2, [%r1+0]
        ldxb %r3, [%r1+1]
        mov %r0, 0
        jgt %r2, %r3, bigger
        mov %r0, 1
        stxb [%r1+2], %r0
        exit
    bigger:
        mov %r0, 2
        stxb [%r1+3], %r0
        exit""", b"\x09\x04\x00\x00"),
]
HELPERS = {9: "sqrti"}


@pytest.fixture(params=["threaded", "switch"])
def dispatch(request):
    _core._set_dispatch(request.param)
    yield request.param
    _core._set_dispatch("threaded")


def _program(source):
    return Program(asm.assemble(source), helpers=HELPERS)


def _outcome(prog, memory, budget, trace):
    """("exit", insn_count) or ("budget", the pc the budget ran out at)."""
    try:
        return "exit", prog.run(memory, budget=budget, trace=trace).insn_count
    except errors.BudgetExceeded as err:
        return "budget", err.pc


def _check_every_budget(prog, memory):
    count = prog.run(memory, trace=True).insn_count
    for budget in range(count + 2):
        assert _outcome(prog, memory, budget, False) == _outcome(prog, memory, budget, True), \
            f"budget {budget} of a run of {count} instructions"


@pytest.mark.parametrize("name,source,memory", PROGRAMS, ids=[p[0] for p in PROGRAMS])
def test_every_budget_stops_where_a_count_per_instruction_stops(name, source, memory,
                                                                dispatch):
    _check_every_budget(_program(source), memory)


def test_a_budget_hit_at_a_jump_target_stops_at_the_jump(dispatch):
    prog = _program("mov %r0, 0\nja t\nmov %r0, 1\nt:\nadd %r0, 2\nexit")
    with pytest.raises(errors.BudgetExceeded) as err:
        prog.run(budget=2)
    assert err.value.pc == 1


def test_a_budget_hit_in_a_loop_stops_inside_the_loop_body(dispatch):
    prog = _program("mov %r0, 0\nloop:\nadd %r0, 1\nadd %r0, 1\nadd %r0, 1\nja loop\nexit")
    with pytest.raises(errors.BudgetExceeded) as err:
        prog.run(budget=1 + 4 * 5 + 2)   # the entry, five rounds, two adds of the sixth
    assert err.value.pc == 2


def test_a_fault_inside_a_block_names_its_own_pc(dispatch):
    prog = _program("mov %r0, 0\nadd %r0, 1\nldxb %r2, [%r10+8]\nadd %r0, 1\nexit")
    with pytest.raises(errors.MemoryFault) as err:
        prog.run()
    assert err.value.pc == 2


def test_a_fault_inside_a_block_entered_by_a_jump_names_its_own_pc(dispatch):
    prog = _program("mov %r0, 0\nja t\nexit\nt:\nadd %r0, 1\nstxb [%r10+1], %r0\nexit")
    with pytest.raises(errors.MemoryFault) as err:
        prog.run()
    assert err.value.pc == 4


def test_an_ld_abs_exit_inside_a_block_counts_only_what_ran(dispatch):
    prog = Program(asm.assemble("mov %r6, %r1\nmov %r0, 5\nldabsb 1000\nmov %r0, 7\nexit"),
                   "socket_filter")
    result = prog.run(bytes(64))
    assert (result.retval, result.insn_count) == (0, 3)


def _bpf_loop_program():
    """bpf_loop(4, cb, NULL, 0) in a sched_cls program; cb runs two instructions."""
    code = bytearray(asm.assemble("""
        mov %r1, 4
        lddw %r2, 0
        mov %r3, 0
        mov %r4, 0
        call 181
        mov %r0, 0
        exit
        mov %r0, 0
        exit"""))
    # the lddw (slots 1-2) becomes the address of the callback at slot 8
    isa.patch(code, 1, src=isa.BPF_PSEUDO_FUNC, imm=8 - 2)
    return Program(bytes(code), "sched_cls", func_info=True)   # a callback needs BTF func_info


def test_a_bpf_loop_callback_runs_on_the_budget_of_its_caller(dispatch):
    _check_every_budget(_bpf_loop_program(), bytes(64))
