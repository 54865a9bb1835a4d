"""Whatever bytes a program holds, pyebpf never touches memory it does not own and
never lets anything but a pyebpf.errors exception escape."""
import random

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from pyebpf import Program, errors, isa

EXIT = isa.Insn(0x95, 0, 0, 0, 0)


def code(*insns):
    return b"".join(i.pack() for i in insns)


def _run_anything(raw, memory):
    try:
        prog = Program(raw, budget=20_000)
    except errors.VerifierError as exc:
        assert exc.pc is None or 0 <= exc.pc < max(1, len(raw) // 8)
        return
    except errors.LoadError:
        return
    try:
        prog.run(memory)
    except errors.ExecutionError as exc:
        assert 0 <= exc.pc <= len(prog)


_slot = st.builds(isa.Insn, code=st.sampled_from(sorted(isa.OPCODES)),
                  dst=st.integers(0, 15), src=st.integers(0, 15),
                  off=st.integers(-(1 << 15), (1 << 15) - 1),
                  imm=st.integers(-(1 << 31), (1 << 31) - 1))
_near_slot = st.builds(isa.Insn, code=st.sampled_from(sorted(isa.OPCODES)),
                       dst=st.integers(0, 10), src=st.integers(0, 10),
                       off=st.integers(-520, 80), imm=st.integers(-70, 70))


@settings(max_examples=400, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=8, max_size=8 * 40).filter(lambda b: len(b) % 8 == 0),
       st.binary(max_size=64))
def test_random_bytes_never_escape_as_anything_but_pyebpf_errors(raw, memory):
    _run_anything(raw, memory)


@settings(max_examples=600, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(_slot, _near_slot), min_size=1, max_size=40),
       st.binary(max_size=64))
def test_random_valid_opcodes_never_escape_as_anything_but_pyebpf_errors(slots, memory):
    # real opcodes with small offsets and immediates reach the loop far more often
    _run_anything(code(*slots, EXIT), memory)


def _random_instruction(rng):
    """One instruction of the table with random operands in the fields its form uses."""
    op = rng.choice(isa.OPS)
    form = op.form
    fields = {"dst": rng.randrange(11) if form.dst else 0,
              "src": rng.randrange(11) if form.src else 0,
              "off": rng.randrange(-520, 80) if form.off is isa.Field.MEM else
              rng.randrange(-4, 6) if form.off is isa.Field.JUMP else 0,
              "imm": rng.randrange(-4, 6) if form.imm is isa.Field.JUMP else
              rng.choice((0, 1, 2, 5, 64, (1 << 31) - 1, -1, -(1 << 31))) if form.imm in
              (isa.Field.S32, isa.Field.IMM64, isa.Field.HELPER) else 0}
    return isa.encode(op, **fields)


def test_many_random_programs_that_load_also_run_safely():
    rng = random.Random(1234)
    ran = 0
    for _ in range(3000):
        slots = [s for _ in range(rng.randrange(1, 12)) for s in _random_instruction(rng)]
        raw = code(*slots, EXIT)
        try:
            prog = Program(raw, budget=5_000)
        except errors.LoadError:
            continue
        ran += 1
        try:
            prog.run(bytes(rng.randrange(64)))
        except errors.ExecutionError:
            pass
    assert ran > 300, "the generator should produce many loadable programs"


# --- one clear error for each malformed program ------------------------------------

@pytest.mark.parametrize("slots, message, pc", [
    ([isa.Insn(0xFF, 0, 0, 0, 0), EXIT], "unknown opcode 0xff", 0),
    ([isa.Insn(0x3F, 1, 2, 7, 0), EXIT], "invalid encoding of opcode 0x3f", 0),
    ([isa.Insn(0xB7, 11, 0, 0, 0), EXIT], "invalid register r11 in dst_reg", 0),
    ([isa.Insn(0xBF, 0, 12, 0, 0), EXIT], "invalid register r12 in src_reg", 0),
    ([isa.Insn(0xB7, 10, 0, 0, 0), EXIT], "frame pointer r10 is read only", 0),
    ([isa.Insn(0x05, 0, 0, 5, 0), EXIT], "jump out of range to pc 6", 0),
    ([isa.Insn(0x05, 0, 0, -2, 0), EXIT], "jump out of range to pc -1", 0),
    ([isa.Insn(0x18, 0, 0, 0, 1)], "lddw is missing its second slot", 0),
    ([isa.Insn(0x05, 0, 0, 1, 0), isa.Insn(0x18, 0, 0, 0, 1), isa.Insn(0, 0, 0, 0, 0), EXIT],
     "jump into the middle of lddw", 0),
    ([isa.Insn(0x18, 0, 0, 0, 1), isa.Insn(0x07, 0, 0, 0, 0), EXIT],
     "invalid second slot of lddw", 1),
    ([isa.Insn(0xB7, 0, 0, 0, 0)], "last instruction is not an exit or jmp", 0),
    ([isa.Insn(0xB7, 0, 3, 0, 0), EXIT], "reserved field src_reg is not zero", 0),
    ([isa.Insn(0x95, 0, 0, 0, 1)], "reserved field imm is not zero", 0),
    ([isa.Insn(0xDC, 0, 0, 0, 8), EXIT], "invalid encoding of opcode 0xdc", 0),
], ids=["unknown-opcode", "bad-discriminator", "bad-dst", "bad-src", "write-r10",
        "jump-past-end", "jump-before-start", "lddw-split", "jump-into-lddw",
        "lddw-bad-tail", "fall-off-end", "reserved-src", "reserved-imm", "end-width-8"])
def test_a_malformed_program_is_refused_naming_the_pc(slots, message, pc):
    with pytest.raises(errors.VerifierError) as err:
        Program(code(*slots))
    assert err.value.pc == pc and message in str(err.value)
    assert str(err.value).startswith(f"pc {pc} (")


def test_an_empty_program_is_refused():
    with pytest.raises(errors.VerifierError, match="program is empty"):
        Program(b"")


def test_a_kfunc_call_to_an_id_pyebpf_does_not_know_is_refused_at_load():
    with pytest.raises(errors.LoadError, match="kfunc call to id 9999, which is no kfunc"):
        Program(code(isa.Insn(0x85, 0, 2, 0, 9999), EXIT))


def test_a_reference_to_a_map_that_does_not_exist_is_refused():
    with pytest.raises(errors.LoadError, match="map fd 999999, which does not exist"):
        Program(code(isa.Insn(0x18, 1, 1, 0, 999999), isa.Insn(0, 0, 0, 0, 0),
                     isa.Insn(0xB7, 0, 0, 0, 0), EXIT))


@pytest.mark.parametrize("prog_type", [None, "socket_filter", "sched_cls", "sched_act"])
@pytest.mark.parametrize("helper_id", [0xBAD2310, -1, 0x7FFFFFFF])
def test_an_unverified_call_of_a_helper_id_outside_the_table_is_an_unknown_helper(
        prog_type, helper_id):
    """libbpf poisons an unresolved CO-RE relocation as ``call 0xbad2310``; unverified,
    such a call loads and stops the run that reaches it, never the process."""
    from pyebpf import asm
    prog = Program(asm.assemble(f"call {helper_id}\nr0 = 0\nexit"), prog_type, verify=False)
    with pytest.raises(errors.UnknownHelper, match=f"helper {helper_id} is not available"):
        prog.run(bytes(64))
