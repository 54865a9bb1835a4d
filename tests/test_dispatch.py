"""The interpreter's two dispatches: threaded code (labels-as-values, where the compiler
has them; every other test runs it) and the portable C switch (the fallback for other
compilers, selectable at run time).  The whole conformance suite runs again through the
switch, giving the same r0 and instruction count as the threaded loop."""
import sysconfig

import pytest

from pyebpf import Map, Program, _core, asm, conformance, isa
from conftest import conformance_params


@pytest.fixture
def switch_dispatch():
    _core._set_dispatch("switch")
    yield
    _core._set_dispatch("threaded")


def test_a_gcc_or_clang_build_has_threaded_dispatch():
    compiler = sysconfig.get_config_var("CC") or ""
    if "gcc" not in compiler and "clang" not in compiler:
        pytest.skip(f"the core was built by {compiler!r}, neither GCC nor Clang")
    if _core.NO_COMPUTED_GOTO:
        pytest.skip("the core was built with -DPYEBPF_NO_COMPUTED_GOTO: the switch alone")
    assert _core.COMPUTED_GOTO


def test_an_unknown_dispatch_is_refused():
    with pytest.raises(ValueError, match="'threaded' or 'switch'"):
        _core._set_dispatch("jit")


@pytest.mark.parametrize("path", conformance_params(), ids=lambda p: p.stem)
def test_conformance_file_through_the_switch(path, conformance_dir, switch_dispatch):
    case = conformance.parse(path.read_text())
    memory = case.mem or None
    switched = conformance.program_for(case.program()).run(memory)
    _core._set_dispatch("threaded")
    threaded = conformance.program_for(case.program()).run(memory)
    assert switched.retval == case.result
    assert switched.insn_count == threaded.insn_count


# Threaded dispatch runs a slot that only ever follows an ALU instruction or a load with a
# case variant taking the register that instruction wrote from a machine register
# (Program._fill_cases); a slot a jump also enters keeps the plain case.

def test_a_chain_of_dependent_alu_instructions_and_loads_gives_the_switchs_result():
    # each instruction reads what the one before it wrote: as dst, as src, or as both
    chain = Program.from_asm("""
        mov %r0, 3
        mov %r2, 5
        add %r0, 4
        mul %r0, %r2
        mov %r3, %r0
        lsh %r3, 2
        add %r3, %r3
        xor32 %r0, %r3
        ldxdw %r4, [%r1]
        sub %r4, 1
        add %r0, %r4
        exit""")
    memory = (10).to_bytes(8, "little")
    threaded = chain.run(memory).retval
    _core._set_dispatch("switch")
    try:
        switched = chain.run(memory).retval
    finally:
        _core._set_dispatch("threaded")
    assert (threaded, switched) == ((35 ^ 280) + 9, (35 ^ 280) + 9)


def test_a_jump_target_reads_its_register_not_the_result_of_the_slot_before_it():
    # "add %r0, 2" follows "add %r0, 100" in the code, but the run reaches it by the jump,
    # after "mov %r1, 7" wrote the last result: r0 is 1 + 2
    assert Program.from_asm("""
        mov %r0, 1
        mov %r1, 7
        jgt %r1, 3, target
        add %r0, 100
    target:
        add %r0, 2
        exit""").run().retval == 3



@pytest.mark.parametrize("mov, want", [("mov %r2, -1", 0xFFFFFFFF), ("mov32 %r2, -1", 0)])
def test_a_constant_moved_into_a_register_reaches_the_next_instruction_extended_as_moved(
        mov, want):
    # the shift takes the constant from the machine register: sign-extended to 64 bits
    # by mov, zero-extended by mov32
    assert Program.from_asm(f"""
        {mov}
        rsh %r2, 32
        mov %r0, %r2
        exit""").run().retval == want


def test_a_sign_extending_load_hands_the_next_instruction_its_own_result():
    # ldxsb keeps no result in the machine register (r2 = 1 is there): the add reads r4
    assert Program.from_asm("""
        mov %r2, 1
        ldxsb %r4, [%r1]
        add %r4, 200
        mov %r0, %r4
        exit""").run(b"\x80").retval == 72

# Every other way into a slot than from the slot before it must find the register in
# r[], not in the machine register: each program below reaches a slot that reads the
# register its predecessor in the code writes while the machine register holds another
# value (noted at the entry).

def test_a_may_goto_target_reads_its_register_not_the_result_of_the_slot_before_it():
    # the loop's last result is r3 = 77 when may_goto jumps, after BPF_MAX_LOOPS rounds
    prog = Program.from_asm("""
        mov %r0, 0
    loop:
        may_goto out
        add %r0, 1
        mov %r3, 77
        ja loop
        add %r0, 1000
    out:
        add %r0, 1
        exit""")
    assert prog.run(budget=5 * isa.BPF_MAX_LOOPS).retval == isa.BPF_MAX_LOOPS + 1


def test_a_called_function_reads_its_argument_not_the_result_of_the_slot_before_it():
    # the call enters f with r2 = 50 the last result; the slot before f writes r1
    assert Program.from_asm("""
        mov %r1, 4
        mov %r2, 50
        call local f
        exit
        add %r1, 1000
    f:
        mov %r0, %r1
        add %r0, 1
        exit""").run().retval == 5


def test_the_slot_after_a_call_reads_the_callees_r0_not_its_last_result():
    # f returns r0 = 21 with r2 = 99 its last result
    assert Program.from_asm("""
        mov %r0, 1
        add %r0, 10
        call local f
        add %r0, 1
        exit
    f:
        mov %r0, 21
        mov %r2, 99
        exit""").run().retval == 22


@pytest.mark.parametrize("load", ["ldabsb 0", "ldindb %r7, 0"])
def test_the_slot_after_a_legacy_packet_load_reads_its_r0_not_the_last_result(load):
    # the packet load writes r0 (its dst field says r0 too) with r2 = 9 the last result
    prog = Program(asm.assemble(f"""
        mov %r6, %r1
        mov %r7, 0
        mov %r2, 9
        {load}
        add %r0, 1
        exit"""), "socket_filter")
    assert prog.run(bytes([40]) + bytes(63)).retval == 41


def test_a_bpf_loop_callback_reads_its_index_not_the_callers_last_result():
    # the callback returns index & 1, so bpf_loop stops after two calls; it is entered
    # with r4 = 0 the caller's last result, then with its own r0 = 0
    code = bytearray(asm.assemble("""
        mov %r1, 4
        lddw %r2, 0
        mov %r3, 0
        mov %r4, 0
        call 181
        exit
        mov %r0, %r1
        and %r0, 1
        exit"""))
    isa.patch(code, 1, src=isa.BPF_PSEUDO_FUNC, imm=7 - 2)   # the callback at slot 7
    prog = Program(bytes(code), "sched_cls", func_info=True)
    assert prog.run(bytes(64)).retval == 2


def test_a_tail_called_program_reads_its_context_not_the_callers_last_result():
    # the caller's last result is the index, r3 = 1; the callee returns skb->len
    array = Map.create(isa.MapType.BPF_MAP_TYPE_PROG_ARRAY, 4, 4, 2)
    callee = Program(asm.assemble("""
        mov %r2, %r1
        ldxw %r0, [%r2+0]
        exit"""), "sched_cls")
    array[(1).to_bytes(4, "little")] = callee
    caller = Program(asm.assemble(f"""
        lddw %r2, map_fd({array.fd})
        mov %r3, 1
        call 12
        mov %r0, 0
        exit"""), "sched_cls")
    assert caller.run(bytes(64)).retval == 64


# The same for a conditional jump, whose variant compares the machine register: each
# program reaches a jump whose predecessor in the code writes the register it compares,
# by another way, with the machine register holding a value that takes the other branch.

def test_a_jump_that_is_a_jump_target_compares_its_register_not_the_last_result():
    # ja reaches the jeq with r3 = 7 the last result; the slot before the jeq writes r2
    assert Program.from_asm("""
        mov %r2, 0
        mov %r3, 7
        ja test
        mov %r2, 7
    test:
        jeq %r2, 0, yes
        mov %r0, 2
        exit
    yes:
        mov %r0, 1
        exit""").run().retval == 1


def test_a_jump_after_a_call_compares_the_callees_r0_not_its_last_result():
    # f returns r0 = 21 with r2 = 99 its last result
    assert Program.from_asm("""
        mov %r0, 1
        call local f
        jeq %r0, 21, yes
        mov %r0, 2
        exit
    yes:
        mov %r0, 1
        exit
    f:
        mov %r0, 21
        mov %r2, 99
        exit""").run().retval == 1


def test_a_callback_starting_with_a_jump_compares_its_index_not_the_callers_last_result():
    # the callback returns 1 (stop) when its index is 0, so bpf_loop returns 1; it is
    # entered with r5 = 9 the caller's last result (then 0, its own r0)
    code = bytearray(asm.assemble("""
        mov %r1, 4
        lddw %r2, 0
        mov %r3, 0
        mov %r4, 0
        mov %r5, 9
        call 181
        exit
        jeq %r1, 0, stop
        mov %r0, 0
        exit
    stop:
        mov %r0, 1
        exit"""))
    isa.patch(code, 1, src=isa.BPF_PSEUDO_FUNC, imm=8 - 2)   # the callback at slot 8
    prog = Program(bytes(code), "sched_cls", func_info=True)
    assert prog.run(bytes(64)).retval == 1


def test_a_tail_called_program_starting_with_a_jump_compares_its_context():
    # the caller's last result is the index, r3 = 1; the callee's first slot compares r1
    # (the context, not 1)
    array = Map.create(isa.MapType.BPF_MAP_TYPE_PROG_ARRAY, 4, 4, 2)
    callee = Program(asm.assemble("""
        jeq %r1, 1, bad
        mov %r0, 7
        exit
    bad:
        mov %r0, 8
        exit"""), "sched_cls")
    array[(1).to_bytes(4, "little")] = callee
    caller = Program(asm.assemble(f"""
        lddw %r2, map_fd({array.fd})
        mov %r3, 1
        call 12
        mov %r0, 0
        exit"""), "sched_cls")
    assert caller.run(bytes(64)).retval == 7


# A copy then an immediate change of the copy (mov rX, rY; add rX, 4) runs as one case
# from the mov's slot (isa.fused_ops); the second slot keeps its own case for a jump.

@pytest.mark.parametrize("r2, want", [(10, 1 + 5), (11, 11 + 5)])
def test_a_jump_into_the_second_of_a_copy_and_change_runs_only_the_change(r2, want):
    # taken, the jump skips the copy: r3 keeps 1
    assert Program.from_asm(f"""
        mov %r2, {r2}
        mov %r3, 1
        jeq %r2, 10, change
        mov %r3, %r2
    change:
        add %r3, 5
        mov %r0, %r3
        exit""").run().retval == want


def test_a_copy_that_is_a_jump_target_copies_its_register_not_the_last_result():
    # the loop's jump enters "mov %r3, %r0" with r4 the last result; falling in, r0 was
    # the last result: r0 triples each round
    assert Program.from_asm("""
        mov %r0, 1
        mov %r4, 3
        add %r0, 0
    loop:
        mov %r3, %r0
        lsh %r3, 1
        add %r0, %r3
        sub %r4, 1
        jne %r4, 0, loop
        exit""").run().retval == 27


# Two results back (acc2): a slot run right after two cases that leave their results in
# machine registers, neither entered by a jump, reads the older one from acc2 when the
# newer one did not overwrite that register.

@pytest.mark.parametrize("last, want", [
    ("add %r1, 1", 6 + 7 + 40),             # dst written two back (r1)
    ("xor %r1, %r2", (5 ^ 7) + 7 + 40),     # dst two back, src one back (r2)
    ("add %r4, %r1", 5 + 7 + 45),           # src two back
    ("sub %r2, %r1", 5 + 2 + 40),           # dst one back, src two back
    ("mov %r4, %r1", 5 + 7 + 5),            # a copy of the register two back
    ("jgt %r1, 6, out", 5 + 7 + 40),        # a jump comparing it, not taken
    ("jlt %r1, 6, out", 0),                 # taken
])
def test_an_instruction_reads_the_register_written_two_instructions_before(last, want):
    # r0 = r1 + r2 + r4 after the instruction, in both dispatches
    prog = Program.from_asm(f"""
        mov %r4, 40
        mov %r0, 0
        mov %r1, 5
        mov %r2, 7
        {last}
        add %r0, %r1
        add %r0, %r2
        add %r0, %r4
    out:
        exit""")
    threaded = prog.run().retval
    _core._set_dispatch("switch")
    try:
        switched = prog.run().retval
    finally:
        _core._set_dispatch("threaded")
    assert (threaded, switched) == (want, want)


def test_a_hash_round_gives_the_switchs_result():
    # hashmix's round: a copy changed by a shift (one case) between the multiply that
    # wrote r0 and the xor that reads r0 and the shifted copy
    prog = Program.from_asm("""
        lddw %r0, 0x243f6a8885a308d3
        lddw %r8, 0x9e3779b97f4a7c15
        mov %r7, 3
    round:
        mov %r3, 0x1234567
        xor %r0, %r3
        mul %r0, %r8
        mov %r3, %r0
        rsh %r3, 29
        xor %r0, %r3
        sub %r7, 1
        jne %r7, 0, round
        exit""")
    want = 0x243F6A8885A308D3
    for _ in range(3):
        want = ((want ^ 0x1234567) * 0x9E3779B97F4A7C15) % 2**64
        want ^= want >> 29
    assert prog.run().retval == want


def test_a_jump_into_the_newer_of_two_results_leaves_the_older_in_the_register_file():
    # the jump enters "mov %r2, 7" with r5 = 50 the last result, not r1 = 100
    assert Program.from_asm("""
        mov %r1, 3
        mov %r5, 50
        ja newer
        mov %r1, 100
    newer:
        mov %r2, 7
        add %r1, %r2
        mov %r0, %r1
        exit""").run().retval == 10


def test_a_jump_into_a_copy_and_changes_second_slot_leaves_the_older_result_unused():
    # taken, the jump runs "rsh %r3, 1" alone, with r6 = 1 the last result: r0 = 5 ^ 4
    assert Program.from_asm("""
        mov %r0, 5
        mov %r3, 8
        mov %r6, 1
        jeq %r6, 1, second
        mul %r0, 3
        mov %r3, %r0
    second:
        rsh %r3, 1
        xor %r0, %r3
        exit""").run().retval == 1


CHAIN_ACROSS_TARGETS = """
    mov %r0, 1
    mov %r3, 4
    mov %r2, 5
loop:
    add %r0, %r2
    mov %r2, %r0
    and %r2, 7
    sub %r3, 1
    jne %r3, 0, loop
    exit"""


@pytest.mark.parametrize("how", ["trace", "budget"])
def test_a_chain_across_a_jump_target_gives_the_same_r0_in_every_mode(how):
    # the trace loop has no variants; a budget just large enough checks the blocks
    prog = Program.from_asm(CHAIN_ACROSS_TARGETS)
    plain = prog.run()
    other = prog.run(trace=True) if how == "trace" else prog.run(budget=plain.insn_count)
    assert (other.retval, other.insn_count) == (plain.retval, plain.insn_count) == (16, 24)
