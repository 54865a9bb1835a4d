"""The interpreter's behaviour beyond the conformance suite: memory regions, faults,
calls, the budget, helpers, tracing and the result object."""
from pathlib import Path

import pytest

import pyebpf
from pyebpf import Program, errors, isa


def prog(text, **kwargs):
    return Program.from_asm(text, **kwargs)


# --- results ---------------------------------------------------------------------

def test_retval_is_the_full_64_bit_r0():
    assert prog("lddw %r0, 0xfedcba9876543210\nexit").run().retval == 0xFEDCBA9876543210


def test_data_is_the_memory_after_the_run_and_the_input_is_untouched():
    mem = bytearray(b"\x01\x02\x03\x04")
    res = prog("stb [%r1+1], 0xaa\nmov %r0, 0\nexit").run(mem)
    assert res.data == b"\x01\xaa\x03\x04" and mem == b"\x01\x02\x03\x04"


def test_a_one_byte_memory_is_private_to_the_run():
    # CPython shares 1-byte bytes objects; the program must never write into them
    res = prog("stb [%r1], 0x7a\nmov %r0, 0\nexit").run(b"a")
    assert res.data == b"z" and b"a" == bytes([0x61])


def test_insn_count_counts_executed_instructions():
    p = prog("mov %r0, 3\nloop:\nsub %r0, 1\njne %r0, 0, loop\nexit")
    assert p.run().insn_count == 1 + 3 * 2 + 1


def test_without_memory_r1_and_r2_are_zero():
    assert prog("mov %r0, %r1\nor %r0, %r2\nexit").run().retval == 0


def test_each_run_starts_with_a_zeroed_stack():
    p = prog("ldxdw %r0, [%r10-8]\nstdw [%r10-8], 99\nexit")
    assert [p.run().retval, p.run().retval] == [0, 0]


# --- memory faults -----------------------------------------------------------------

@pytest.mark.parametrize("text, region, detail", [
    ("ldxw %r0, [%r1+62]", "memory", "2 bytes past the end of memory"),
    ("ldxb %r0, [%r1-1]", "memory", "1 bytes before the start of memory"),
    ("ldxdw %r0, [%r10+0]", "stack", "8 bytes past the end of stack"),
    ("ldxb %r0, [%r10-513]", "stack", "1 bytes before the start of stack"),
    ("stw [%r1+64], 1", "memory", "4 bytes past the end of memory"),
    ("stxdw [%r10-516], %r1", "stack", "4 bytes before the start of stack"),
], ids=["load-past-memory", "load-before-memory", "load-above-stack",
        "load-below-frame", "store-past-memory", "store-below-frame"])
def test_an_access_just_outside_a_region_faults_and_names_it(text, region, detail):
    with pytest.raises(errors.MemoryFault) as err:
        prog(f"{text}\nmov %r0, 0\nexit").run(bytes(64))
    assert err.value.pc == 0 and err.value.region == region
    assert detail in str(err.value) and str(err.value).startswith("pc 0 (")


def test_the_last_byte_of_each_region_is_accessible():
    p = prog("ldxb %r0, [%r1+63]\nldxb %r3, [%r10-1]\nldxb %r3, [%r10-512]\nexit")
    assert p.run(bytes(63) + b"\x2a").retval == 0x2A


def test_address_arithmetic_is_modulo_2_to_the_64():
    p = prog("lddw %r2, 0xffffffffffffffff\nadd %r1, %r2\nldxb %r0, [%r1+2]\nexit")
    assert p.run(b"\x00\x2a").retval == 0x2A


def test_an_access_that_wraps_past_the_top_of_the_address_space_faults():
    p = prog("lddw %r1, 0xfffffffffffffffc\nldxdw %r0, [%r1+0]\nexit")
    with pytest.raises(errors.MemoryFault, match="in no region"):
        p.run(bytes(8))


def test_a_wild_address_is_reported_as_outside_every_region():
    with pytest.raises(errors.MemoryFault, match="in no region"):
        prog("mov %r1, 4096\nldxb %r0, [%r1]\nexit").run()


def test_a_fault_reports_the_instruction_disassembled():
    with pytest.raises(errors.MemoryFault) as err:
        prog("mov %r0, 0\nldxw %r0, [%r1+8]\nexit").run(bytes(4))
    assert err.value.pc == 1 and "r0 = *(u32 *)(r1 + 0x8)" in err.value.insn


# --- calls -----------------------------------------------------------------------

def _call_chain(depth):
    lines = ["call local f1", "exit"]
    for k in range(1, depth):
        lines += [f"f{k}:", f"call local f{k + 1}" if k + 1 < depth else "mov %r0, 7", "exit"]
    return "\n".join(lines)


def test_eight_frames_of_local_calls_run():
    assert prog(_call_chain(8)).run().retval == 7


def test_a_ninth_frame_is_refused():
    with pytest.raises(errors.CallDepthExceeded, match="8 frames"):
        prog(_call_chain(9)).run()


def test_a_callee_has_its_own_stack_frame():
    p = prog("""
        stdw [%r10-8], 11
        call local f
        ldxdw %r0, [%r10-8]
        exit
        f:
        stdw [%r10-8], 22
        mov %r0, 0
        exit""")
    assert p.run().retval == 11


def test_a_callee_may_use_a_pointer_into_its_callers_frame():
    p = prog("""
        mov %r1, %r10
        sub %r1, 8
        call local f
        ldxdw %r0, [%r10-8]
        exit
        f:
        stdw [%r1], 33
        mov %r0, 0
        exit""")
    assert p.run().retval == 33


def test_a_callee_cannot_reach_below_its_own_frame():
    p = prog("call local f\nexit\nf:\nldxb %r0, [%r10-513]\nexit")
    with pytest.raises(errors.MemoryFault, match="before the start of stack"):
        p.run()


# --- budget --------------------------------------------------------------------------

def test_an_endless_loop_stops_at_the_budget():
    with pytest.raises(errors.BudgetExceeded, match="budget of 1000000") as err:
        prog("mov %r0, 0\nloop:\nja loop\nexit").run()
    assert err.value.pc == 1


def test_the_budget_is_settable_per_program_and_per_run():
    p = prog("mov %r0, 0\nloop:\nadd %r0, 1\njlt %r0, 100, loop\nexit", budget=10)
    with pytest.raises(errors.BudgetExceeded, match="budget of 10 "):
        p.run()
    assert p.run(budget=1000).retval == 100


# --- helpers -------------------------------------------------------------------------

def test_a_helper_with_no_implementation_is_a_clear_error():
    with pytest.raises(errors.UnknownHelper, match=r"helper 1 \(bpf_map_lookup_elem\)"):
        prog("call 1\nexit").run()


def test_callx_with_an_id_out_of_range_is_an_unknown_helper():
    with pytest.raises(errors.UnknownHelper, match="helper 4096"):
        prog("mov %r1, 4096\ncall %r1\nexit").run()


def test_a_python_helper_gets_arguments_and_returns_r0():
    p = prog("mov %r1, 2\nmov %r2, 3\ncall 9\nexit", helpers={9: lambda mem, a, b, c, d, e: a * 10 + b})
    assert p.run().retval == 23


def test_a_python_helper_reads_and_writes_memory_through_checked_access():
    def swap(mem, ptr, n, *_):
        mem.write(ptr, mem.read(ptr, n)[::-1])
        return 0
    p = prog("mov %r2, 4\ncall 9\nldxw %r0, [%r1]\nexit", helpers={9: swap})
    assert p.run(b"\x01\x02\x03\x04").data == b"\x04\x03\x02\x01"


def test_a_python_helper_cannot_touch_memory_outside_the_regions():
    p = prog("mov %r1, 0\ncall 9\nexit", helpers={9: lambda mem, a, *_: len(mem.read(a + 8, 1))})
    with pytest.raises(errors.ExecutionError, match="helper 9 raised HelperAccessError") as err:
        p.run()
    assert (err.value.__cause__.address, err.value.__cause__.size) == (8, 1)


def test_helper_memory_kept_past_its_helper_call_raises_an_execution_error():
    kept = []
    prog("call 9\nexit", helpers={9: lambda mem, *_: kept.append(mem) or 0}).run()
    with pytest.raises(errors.ExecutionError, match="outside its helper call"):
        kept[0].read(0, 1)


def test_an_exception_in_a_python_helper_becomes_an_execution_error():
    def boom(*_):
        raise KeyError("nope")
    with pytest.raises(errors.ExecutionError, match="helper 9 raised KeyError") as err:
        prog("call 9\nexit", helpers={9: boom}).run()
    assert isinstance(err.value.__cause__, KeyError)


def test_the_unwind_helper_ends_the_program_when_it_returns_zero():
    p = prog("mov %r1, 0\ncall 5\nmov %r0, 2\nexit", helpers={5: "unwind"})
    assert p.run().retval == 0


def test_builtin_memfrob_is_bounded_by_the_region():
    p = prog("mov %r2, 5\ncall 1\nmov %r0, 0\nexit", helpers={1: "memfrob"})
    with pytest.raises(errors.MemoryFault):
        p.run(b"abcd")
    assert bytes(b ^ 42 for b in p.run(b"abcde").data) == b"abcde"


def test_builtin_sqrti_is_the_integer_square_root():
    p = prog("lddw %r1, 0xffffffffffffffff\ncall 3\nexit", helpers={3: "sqrti"})
    assert p.run().retval == 0xFFFFFFFF


def test_an_unknown_builtin_name_is_refused():
    with pytest.raises(ValueError, match="no builtin helper named 'nope'"):
        prog("exit", helpers={1: "nope"})


# --- legacy packet loads in the raw mode ---------------------------------------------

def _ld(code, imm, src=0):
    return isa.Insn(code, 0, src, 0, imm).pack()


def test_ld_abs_reads_big_endian_from_the_memory():
    code = isa.Insn(0xBF, 6, 1, 0, 0).pack() + _ld(0x28, 1) + isa.Insn(0x95, 0, 0, 0, 0).pack()
    assert Program(code).run(b"\x00\x12\x34\x00").retval == 0x1234


def test_ld_abs_past_the_end_ends_the_program_with_zero():
    code = (_ld(0x20, 2) + isa.Insn(0x07, 0, 0, 0, 1).pack() + isa.Insn(0x95, 0, 0, 0, 0).pack())
    assert Program(code).run(b"\x00\x12\x34\x00").retval == 0


def test_ld_ind_adds_the_register_to_the_offset():
    code = isa.Insn(0xB7, 3, 0, 0, 2).pack() + _ld(0x50, 1, src=3) + isa.Insn(0x95, 0, 0, 0, 0).pack()
    assert Program(code).run(b"\x00\x00\x00\x77").retval == 0x77


# --- tracing -------------------------------------------------------------------------

def test_a_trace_lists_every_step_with_registers():
    res = prog("mov %r0, 1\nadd %r0, 2\nexit").run(trace=True)
    assert [(pc, regs[0]) for pc, regs in res.trace.steps] == [(0, 1), (1, 3)]


def test_a_trace_records_memory_accesses_by_region_and_offset():
    res = prog("stw [%r10-4], 5\nldxw %r0, [%r1+2]\nexit").run(bytes(8), trace=True)
    assert res.trace.accesses == [(0, 0, "w", "stack", -4, 4), (1, 1, "r", "memory", 2, 4)]
    assert "write 4 @ stack-4" in str(res.trace)


def test_an_untraced_run_has_no_trace():
    assert prog("mov %r0, 0\nexit").run().trace is None


# --- loading ---------------------------------------------------------------------------

def test_a_program_whose_length_is_not_a_multiple_of_8_is_refused():
    with pytest.raises(errors.LoadError, match="not a multiple of 8"):
        Program(b"\x95" + bytes(8))


def test_an_unknown_program_type_is_refused():
    with pytest.raises(errors.LoadError, match="unknown program type 'nope'"):
        Program(isa.Insn(0x95, 0, 0, 0, 0).pack(), prog_type="nope")


def test_disassemble_lists_the_program():
    assert prog("mov %r0, 1\nexit").disassemble() == "    0: r0 = 0x1\n    1: exit"


@pytest.mark.parametrize("region", ["interp_cases", "atomic_cases"])
def test_the_instruction_cases_are_the_ones_the_isa_table_generates(region):
    src = (Path(pyebpf.__file__).parent / "_core.pyx").read_text()
    generated = isa.core_region(region)
    assert generated in src, \
        f"the {region} in _core.pyx are stale: a build (setup.py) rewrites them"
