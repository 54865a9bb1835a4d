"""Plain loads of a verified program carry the region the verifier proved their pointer in
(stack, packet or map value: ``isa.LOAD_HINTS``), which the interpreter tries first; a
hinted load reads what the checked load of an unverified program (``verify=False``)
reads, and what the kernel's run of the same program returns.  A raw program's loads
(no verifier) carry the memory or stack hint where the decoder follows r1 or r10 to them."""
import pytest

from pyebpf import Map, Program, asm, errors, isa
from recorded_kernel import count_comparison

SCHED_CLS = isa.ProgType.BPF_PROG_TYPE_SCHED_CLS
ARRAY = isa.MapType.BPF_MAP_TYPE_ARRAY
FRAME = bytes.fromhex("02000000000202000000000108004500002e0001000040110000"
                      "0a0000010a000002") + bytes(30)
HINTS = isa.LOAD_HINTS


def _program(first_fd, second_fd):
    """r0 = the frame's EtherType (packet) + a stack word + slot 0 of the second map's
    value (the first map's values are the map region the hint names)."""
    return asm.assemble(f"""
        r6 = r1
        r7 = *(u32 *)(r6 + 76)
        r8 = *(u32 *)(r6 + 80)
        r0 = 0
        r2 = r7
        r2 += 14
        if r2 > r8 goto out
        r9 = *(u16 *)(r7 + 12)
        r1 = 0x55
        *(u64 *)(r10 - 8) = r1
        r1 = *(u64 *)(r10 - 8)
        r9 += r1
        r1 = 0
        *(u32 *)(r10 - 12) = r1
        r1 = map_fd({first_fd}) ll
        r2 = r10
        r2 += -12
        call 1
        r1 = map_fd({second_fd}) ll
        r2 = r10
        r2 += -12
        call 1
        if r0 == 0 goto out
        r0 = *(u32 *)(r0 + 0)
        r0 += r9
    out:
        exit""")


def _maps(make):
    first, second = make(), make()
    second.update((0).to_bytes(4, "little"), (0x1000).to_bytes(4, "little"))
    return first, second


def test_each_verified_load_carries_the_region_of_its_pointer():
    first, second = _maps(lambda: Map.create(ARRAY, 4, 4, 1))
    hints = Program(_program(first.fd, second.fd), SCHED_CLS)._load_hints()
    loaded = {pc: hint for pc, hint in enumerate(hints) if hint}
    assert loaded == {7: HINTS["packet"], 10: HINTS["stack"], 25: HINTS["map_value"]}


def test_an_unverified_program_has_no_load_hints():
    first, second = _maps(lambda: Map.create(ARRAY, 4, 4, 1))
    hints = Program(_program(first.fd, second.fd), SCHED_CLS, verify=False)._load_hints()
    assert not any(hints), hints


def test_hinted_loads_read_what_checked_loads_read():
    first, second = _maps(lambda: Map.create(ARRAY, 4, 4, 1))
    code = _program(first.fd, second.fd)
    hinted, checked = Program(code, SCHED_CLS), Program(code, SCHED_CLS, verify=False)
    assert [(r.retval, r.insn_count) for r in (hinted.run(FRAME), checked.run(FRAME))] == \
        [(0x1000 + 0x0008 + 0x55, 26)] * 2


def test_a_map_value_load_through_another_maps_value_reads_as_the_kernel(kernel_oracle):
    first, second = _maps(lambda: Map.create(ARRAY, 4, 4, 1))
    ours = Program(_program(first.fd, second.fd), SCHED_CLS).run(FRAME).retval
    with kernel_oracle.KernelMap(ARRAY, 4, 4, 1) as kfirst, \
            kernel_oracle.KernelMap(ARRAY, 4, 4, 1) as ksecond:
        ksecond.update((0).to_bytes(4, "little"), (0x1000).to_bytes(4, "little"))
        with kernel_oracle.KernelProgram(_program(kfirst.fd, ksecond.fd), "sched_cls") as kprog:
            theirs = kprog.test_run(FRAME, ctx={}).retval_signed
    count_comparison()
    assert ours == theirs


@pytest.mark.parametrize("size", [1, 2, 4, 8])
def test_a_hinted_load_at_the_end_of_its_region_reads_its_last_bytes(size):
    # the stack's top slot: the hint's bounds are those of the checked path
    code = asm.assemble(f"""
        r1 = -1
        *(u64 *)(r10 - 8) = r1
        r0 = *(u{size * 8} *)(r10 - {size})
        exit""")
    prog = Program(code, SCHED_CLS)
    assert prog._load_hints()[2] == HINTS["stack"]
    assert prog.run(FRAME).retval == (-1 if size >= 4 else (1 << size * 8) - 1)


# --- raw programs: the decoder follows r1 and r10 -----------------------------------

MEMORY = bytes(range(1, 65))


def _raw_hints(text):
    prog = Program(asm.assemble(text))
    return prog, {pc: hint for pc, hint in enumerate(prog._load_hints()) if hint}


def test_a_raw_programs_loads_through_r1_and_r10_carry_the_memory_and_stack_hints():
    prog, hints = _raw_hints("""
        r6 = r1
        r6 += 4
        r0 = *(u32 *)(r6 + 0)
        *(u64 *)(r10 - 8) = r0
        r2 = r10
        r2 += -8
        r3 = *(u64 *)(r2 + 0)
        r0 += r3
        exit""")
    assert hints == {2: HINTS["memory"], 6: HINTS["stack"]}
    assert prog.run(MEMORY).retval == 2 * int.from_bytes(MEMORY[4:8], "little")


def test_a_register_the_paths_disagree_on_carries_no_hint():
    prog, hints = _raw_hints("""
        r6 = r1
        if r2 > 8 goto read
        r6 = r10
        r6 += -8
    read:
        r0 = *(u8 *)(r6 + 0)
        exit""")
    assert hints == {}
    assert [prog.run(MEMORY).retval, prog.run(MEMORY[:8]).retval] == [MEMORY[0], 0]


def test_a_register_kept_through_a_loop_keeps_its_hint():
    _, hints = _raw_hints("""
        r6 = r1
        r7 = 4
    loop:
        r0 = *(u8 *)(r6 + 0)
        r6 += 1
        r7 -= 1
        if r7 != 0 goto loop
        exit""")
    assert hints == {2: HINTS["memory"]}


def test_a_computed_pointer_carries_no_hint():
    _, hints = _raw_hints("""
        r6 = r1
        r6 += r2
        r0 = *(u8 *)(r6 - 1)
        r7 = *(u64 *)(r10 - 8)
        r7 = *(u8 *)(r7 + 0)
        exit""")
    assert hints == {3: HINTS["stack"]}


def test_a_call_keeps_r6_to_r9_and_a_function_knows_only_its_own_r10():
    prog, hints = _raw_hints("""
        r6 = r1
        call f
        r1 = *(u8 *)(r6 + 1)
        r0 += r1
        exit
    f:
        r0 = *(u8 *)(r1 + 0)
        r2 = *(u8 *)(r10 - 1)
        r0 += r2
        exit""")
    assert hints == {2: HINTS["memory"], 6: HINTS["stack"]}
    assert prog.run(MEMORY).retval == MEMORY[0] + MEMORY[1]


@pytest.mark.parametrize("text", ["r0 = *(u32 *)(r1 + 62)",
                                  "*(u64 *)(r10 - 8) = r1\n r1 = *(u64 *)(r10 - 8)\n"
                                  " r0 = *(u32 *)(r1 + 62)"],
                         ids=["hinted", "unhinted"])
def test_a_raw_load_past_its_region_faults_whether_hinted_or_not(text):
    with pytest.raises(errors.MemoryFault) as err:
        Program(asm.assemble(f"{text}\n exit")).run(bytes(64))
    assert err.value.region == "memory" and "2 bytes past the end of memory" in str(err.value)
