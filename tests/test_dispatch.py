"""The interpreter's two dispatches: threaded code (labels-as-values, where the compiler
has them; every other test runs it) and the portable C switch (the fallback for other
compilers, selectable at run time).  The whole conformance suite runs again through the
switch, giving the same r0 and instruction count as the threaded loop."""
import sysconfig

import pytest

from pyebpf import Program, _core, conformance
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
