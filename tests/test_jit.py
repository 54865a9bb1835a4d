"""pyebpf.jit: native code that behaves as the interpreter does (docs/jit.md).

Each test runs the same program in the interpreter (``jit=False``) and compiled
(``jit=True``) and expects the same result, the same fault at the same pc, the same
instruction count.  The differential fuzzer covers what these examples do not.
"""
import gc
import os
import random
import subprocess
import sys
import weakref
from pathlib import Path

import pytest
from conftest import child_python
from recorded_kernel import count_comparison

from pyebpf import Map, Program, asm, errors, isa, jit
from pyebpf._core import _set_jit_after
from pyebpf.jit import codegen, engine, fuzz
from pyebpf.verifier.globalfuncs import CTX, Arg, GlobalFunc

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(not jit.available(),
                                reason="llvmlite is not installed (pip install 'pyebpf[jit]')")


def both(text, prog_type=None, **kwargs):
    """The program twice: interpreted and compiled."""
    code = asm.assemble(text)
    return (Program(code, prog_type, jit=False, **kwargs),
            Program(code, prog_type, jit=True, **kwargs))


def outcome(program, *args, **fields):
    try:
        res = program.run(*args, **fields)
    except errors.ExecutionError as exc:
        return type(exc).__name__, exc.pc, str(exc)
    skb = res.skb.as_dict() if res.skb is not None else None
    return res.retval, res.data, res.insn_count, skb


def same(text, *args, prog_type=None, kwargs=None, **fields):
    interp, native = both(text, prog_type, **(kwargs or {}))
    assert native.jitted and not interp.jitted
    want = outcome(interp, *args, **fields)
    assert outcome(native, *args, **fields) == want
    return want


def test_jit_true_compiles_and_the_result_is_the_interpreters():
    assert same("r0 = 0\nr1 = 10\nl: r0 += r1\nr1 -= 1\nif r1 != 0 goto l\nexit") == \
        (55, b"", 33, None)


def test_jit_false_keeps_a_program_in_the_interpreter_even_when_it_runs_often(monkeypatch):
    _set_jit_after(2)
    try:
        p = Program(asm.assemble("r0 = 1\nexit"), jit=False)
        for _ in range(4):
            p.run()
        jit.wait()
        assert not p.jitted
    finally:
        _set_jit_after(jit.AFTER if jit.MODE == "auto" else 0)


def test_a_program_is_compiled_in_the_background_after_enough_runs():
    _set_jit_after(3)
    try:
        p = Program(asm.assemble("r0 = 7\nexit"))
        results = [p.run().retval for _ in range(3)]     # the third queues the compile
        jit.wait()
        assert p.jitted and results + [p.run().retval] == [7, 7, 7, 7]
    finally:
        _set_jit_after(jit.AFTER if jit.MODE == "auto" else 0)


def test_identical_programs_share_one_compiled_code():
    code = asm.assemble("r0 = 12345\nexit")
    a, b = Program(code), Program(code)
    first = engine.compile_codes([engine.source(a)])[0]
    assert engine.compile_codes([engine.source(b)])[0] is first


@pytest.mark.parametrize("budget", [1, 2, 3, 4, 5, 6, 7, 30])
def test_the_budget_ends_at_the_pc_and_count_the_interpreter_ends(budget):
    same("r0 = 0\nl: r0 += 1\nif r0 != 5 goto l\nr0 = 9\nexit", budget=budget)


@pytest.mark.parametrize("budget", range(1, 40))
def test_the_budget_ends_where_the_interpreters_ends_in_blocks_between_check_points(budget):
    # the loop's body branches forwards: only the loop's head checks the budget
    same("r0 = 0\nl: if r0 > 3 goto a\nr0 += 2\ngoto b\na: r0 += 1\nb: r0 += 1\n"
         "if r0 < 9 goto l\nr0 *= 3\nexit", budget=budget)


@pytest.mark.parametrize("budget", range(1, 36))
def test_the_budget_ends_where_the_interpreters_ends_in_a_chain_through_two_results(budget):
    # the loop's head follows an ALU instruction: the interpreter goes on from the JIT's
    # stop there; inside, each xor reads r0 from two cases back (the interpreter's acc2)
    same("r0 = 5\nr8 = 77\nr7 = 3\nl: r3 = 9\nr0 ^= r3\nr0 *= r8\nr3 = r0\nr3 >>= 3\n"
         "r0 ^= r3\nr7 -= 1\nif r7 != 0 goto l\nexit", budget=budget)


def test_compiled_code_is_freed_when_no_program_uses_it():
    code = asm.assemble("r0 = 4321\nexit")
    a, b = Program(code, jit=True), Program(code, jit=True)
    held = weakref.ref(engine.compile_codes([engine.source(a)])[0])
    del a
    gc.collect()
    assert held() is not None and b.run().retval == 4321
    del b
    gc.collect()
    assert held() is None


def test_compiling_a_program_compiles_the_programs_it_can_tail_call():
    arr = Map.create("prog_array", 4, 4, 2)
    target = Program(asm.assemble("r0 = 42\nexit"), "sched_cls")
    kept = Program(asm.assemble("r0 = 43\nexit"), "sched_cls", jit=False)
    arr[(0).to_bytes(4, "little")] = target
    arr[(1).to_bytes(4, "little")] = kept
    caller = Program(asm.assemble(f"r2 = map_fd({arr.fd}) ll\nr3 = 0\ncall 12\nr0 = 1\nexit"),
                     "sched_cls")
    jit.compile(caller)
    assert (caller.jitted, target.jitted, kept.jitted) == (True, True, False)


@pytest.mark.parametrize("text", [
    "r0 = *(u32 *)(r1 + 62)\nexit",
    "r0 = *(u8 *)(r10 - 513)\nexit",
    "*(u64 *)(r10 + 0) = 1\nr0 = 0\nexit",
    "r2 = r10\nr2 += -600\nr0 = *(u64 *)(r2 + 0)\nexit",
    "r0 = 1\nlock *(u32 *)(r1 + 64) += r0\nexit",
    "r0 = 0\nr2 = 0\nr0 = *(u64 *)(r2 + 0)\nexit",
], ids=["past-memory", "below-frame", "above-stack", "copy-of-r10", "atomic", "null"])
def test_a_memory_fault_is_the_interpreters_at_the_same_pc(text):
    assert same(text, bytes(64))[0] == "MemoryFault"


def test_stores_and_atomics_change_memory_as_in_the_interpreter():
    same("""r2 = 0x01020304
            *(u32 *)(r1 + 0) = r2
            *(u16 *)(r1 + 6) = 0x7fff
            r3 = 5
            lock *(u64 *)(r1 + 8) += r3
            r3 = atomic_fetch_xor((u64 *)(r1 + 8), r3)
            r0 = 9
            r0 = cmpxchg_64(r1 + 16, r0, r3)
            r4 = *(s16 *)(r1 + 6)
            r0 += r4
            exit""", bytes(range(32)))


@pytest.mark.parametrize("profile", ["current", "4.6"])
def test_division_by_zero_is_the_interpreters_in_each_profile(profile):
    # 4.6 ends the run with r0 = 0; today's kernel leaves 0 (div) or dst (mod)
    same("r0 = 7\nr1 = 0\nr2 = 9\nr2 %= r1\nr0 /= r1\nr0 += r2\nexit",
         prog_type="sched_cls", kwargs={"profile": profile, "verify": False},
         data=bytes(64))


def test_signed_division_by_minus_one_and_the_smallest_number():
    same("r0 = 1\nr0 <<= 63\nr1 = -1\nr2 = r0\nr2 s/= r1\nr3 = r0\nr3 s%= r1\n"
         "w4 = -2147483648\nw4 s/= -1\nr0 = r2\nr0 ^= r3\nr0 += r4\nexit")


def test_context_loads_stores_and_packet_access_in_a_tc_program():
    same("""r6 = r1
            r2 = *(u32 *)(r6 + 76)
            r3 = *(u32 *)(r6 + 80)
            r4 = r2
            r4 += 14
            if r4 > r3 goto out
            r5 = *(u16 *)(r2 + 12)
            *(u8 *)(r2 + 0) = 0xaa
            r7 = *(u32 *)(r6 + 0)
            *(u32 *)(r6 + 8) = r7
            *(u32 *)(r6 + 48) = r5
        out:
            r0 = 0
            exit""", prog_type="sched_cls", data=bytes(60), mark=3)


def specialised(program):
    """The context loads the core specialised and the region hints of its loads."""
    insns, ctx = codegen.decode(program._jit_code())
    return set(ctx.values()), {i[5] for pc, i in enumerate(insns[:-1]) if pc not in ctx
                               and i[0] in {op.id for op in isa.OPS if op.form is isa.F_LDX}}


@pytest.mark.parametrize("length", [14, 60, 1500])
def test_specialised_context_loads_read_the_fields_the_interpreter_reads(length):
    text = """r2 = *(u32 *)(r1 + 76)
              r3 = *(u32 *)(r1 + 80)
              r3 -= r2
              r4 = *(u32 *)(r1 + 0)
              r5 = *(u8 *)(r1 + 8)
              r6 = *(u16 *)(r1 + 16)
              r7 = *(u32 *)(r1 + 48)
              r0 = r3
              r0 <<= 8
              r0 ^= r4
              r0 += r5
              r0 ^= r6
              r0 += r7
              exit"""
    interp, native = both(text, "sched_cls")
    assert specialised(native)[0] == set(isa.CTX_LOAD_OPS.values())
    fields = dict(data=bytes(range(256)) * 6, mark=0x1234567, protocol=0x86dd)
    fields["data"] = fields["data"][:length]
    assert outcome(native, **fields) == outcome(interp, **fields)


# the csum loop of bench_core, summing the packet's 16-bit words up to 800 of them
CSUM_LOOP = """r6 = *(u32 *)(r1 + 76)
          r7 = *(u32 *)(r1 + 80)
          r0 = 0
          r8 = 0
          r9 = r6
      l:  r3 = r9
          r3 += 2
          if r3 > r7 goto done
          r2 = *(u16 *)(r9 + 0)
          r0 += r2
          r9 += 2
          r8 += 1
          if r8 < 800 goto l
      done:"""


@pytest.mark.parametrize("length", [14, 15, 64, 1500])
def test_packet_loads_with_the_verifiers_hint_in_a_loop_are_the_interpreters(length):
    # the csum loop of bench_core: a load hinted to the packet region, checked against
    # the packet's bounds fetched once per call-free stretch
    interp, native = both(CSUM_LOOP + "\n          exit", "sched_cls")
    assert isa.LOAD_HINTS["packet"] in specialised(native)[1]
    data = bytes(range(256)) * 6
    assert outcome(native, data=data[:length]) == outcome(interp, data=data[:length])


CSUM = CSUM_LOOP + """
          r2 = r0
          r2 >>= 16
          r0 &= 0xffff
          r0 += r2
          exit"""
CSUM_LOAD = 8                       # the pc of its packet load


def test_the_verifier_names_the_packet_loads_it_proved_inside_the_packet():
    assert Program(asm.assemble(CSUM), "sched_cls", jit=False)._packet_pcs == {CSUM_LOAD}


def test_an_unverified_program_has_no_proven_packet_accesses():
    assert Program(asm.assemble(CSUM), "sched_cls", jit=False, verify=False)._packet_pcs == set()


def test_a_load_reached_through_the_packet_and_the_stack_is_not_proven():
    # one path reads the packet, the other the stack, through the same instruction
    program = Program(asm.assemble("""
            r6 = *(u32 *)(r1 + 76)
            r7 = *(u32 *)(r1 + 80)
            r2 = r6
            r2 += 8
            if r2 > r7 goto out
            r3 = r10
            r3 += -8
            r4 = 0
            *(u64 *)(r10 - 8) = r4
            r5 = *(u32 *)(r1 + 0)
            if r5 == 0 goto read
            r3 = r6
        read:
            r0 = *(u32 *)(r3 + 0)
            r0 = *(u32 *)(r6 + 4)
        out:
            r0 = 0
            exit"""), "sched_cls", jit=False)
    assert program._packet_pcs == {13}


def test_a_global_functions_call_that_leaves_the_packet_keeps_the_callers_proof():
    text = CSUM.replace("done:\n", "done:\n          call g\n") + "\ng: r0 = 0\nexit"
    code = asm.assemble(text)
    program = Program(code, "sched_cls", jit=False, func_info=True,
                      functions=(GlobalFunc(len(code) // 8 - 2, "g"),))
    assert program._packet_pcs == {CSUM_LOAD}


# a global function that pulls 40 bytes into the linear data (bpf_skb_pull_data, which
# clears its callers' packet pointers) and one that reads the packet itself, between
# the caller's proven loads before and after them
PULLING = """r6 = r1
             r2 = *(u32 *)(r6 + 76)
             r3 = *(u32 *)(r6 + 80)
             r8 = 0
             r4 = r2
             r4 += 14
             if r4 > r3 goto pull
             r8 = *(u8 *)(r2 + 13)
         pull:
             r1 = r6
             call pull40
             r8 += r0
             r1 = r6
             call first_word
             r8 += r0
             r2 = *(u32 *)(r6 + 76)
             r3 = *(u32 *)(r6 + 80)
             r4 = r2
             r4 += 40
             if r4 > r3 goto out
             r0 = *(u32 *)(r2 + 36)
             r8 += r0
             *(u8 *)(r2 + 39) = r8
         out:
             r0 = r8
             exit
         pull40:
             r2 = 40
             call 39
             exit
         first_word:
             r2 = *(u32 *)(r1 + 76)
             r3 = *(u32 *)(r1 + 80)
             r0 = 0
             r4 = r2
             r4 += 4
             if r4 > r3 goto short
             r0 = *(u32 *)(r2 + 0)
         short:
             exit"""
PULLING_PACKET_PCS = {7, 19, 21, 33}
PULLING_FUNCTIONS = (GlobalFunc(24, "pull40", args=(Arg(CTX),)),
                     GlobalFunc(27, "first_word", args=(Arg(CTX),)))
PULLING_KWARGS = {"func_info": True, "functions": PULLING_FUNCTIONS}


def test_the_accesses_around_and_in_global_functions_are_proven_inside_the_packet():
    program = Program(asm.assemble(PULLING), "sched_cls", jit=False, **PULLING_KWARGS)
    assert program._packet_pcs == PULLING_PACKET_PCS


PULLED_FRAME = bytes(range(7, 256)) * 7


@pytest.mark.parametrize("length", [14, 15, 39, 40, 41, 64, 1500])
def test_proven_accesses_around_a_pulling_global_function_are_the_interpreters(length):
    same(PULLING, PULLED_FRAME[:length], prog_type="sched_cls", kwargs=PULLING_KWARGS)


@pytest.mark.parametrize("budget", range(1, 36))
def test_the_budget_ends_where_the_interpreters_ends_around_global_functions(budget):
    # each budget stops the run at an instruction of its own: the same pc and message
    same(PULLING, bytes(range(64)), prog_type="sched_cls", budget=budget,
         kwargs=PULLING_KWARGS)


@pytest.mark.parametrize("length", [14, 39, 40, 64, 1500])
def test_proven_accesses_around_a_pulling_function_do_what_the_kernel_does(length,
                                                                          kernel_oracle):
    # the kernel loads it without BTF: its functions are static there, with the same
    # effects on the packet and the same retval
    same_as_the_kernel(PULLING, PULLED_FRAME[:length], kernel_oracle, **PULLING_KWARGS)


def test_a_proven_packet_load_is_compiled_without_a_region_check():
    program = Program(asm.assemble(CSUM), "sched_cls", jit=False)
    code, exception_cb, packet = engine.source(program)
    with_check = codegen.translate(code, engine._ABI, "f", exception_cb)
    without = codegen.translate(code, engine._ABI, "f", exception_cb, packet)
    label = f"h{CSUM_LOAD}:"
    assert (label in with_check, label in without) == (True, False)


def same_as_the_kernel(text, frame, kernel_oracle, **kwargs):
    """Interpreted, compiled and in the kernel: the same retval and packet bytes."""
    interp, native = both(text, "sched_cls", **kwargs)
    got = outcome(native, frame)
    assert got == outcome(interp, frame)
    ours = native.run(frame)
    with kernel_oracle.KernelProgram(asm.assemble(text), "sched_cls") as kprog:
        theirs = kprog.test_run(frame, ctx={})
    count_comparison()
    assert (ours.retval, ours.data_out) == (theirs.retval_signed, theirs.data)


@pytest.mark.parametrize("length", [14, 15, 16, 17, 64, 1499, 1500, 1614, 1615])
def test_a_loop_of_proven_packet_loads_returns_what_the_kernel_returns(length, kernel_oracle):
    # the loop stops at the packet's end, or after 800 words (1614 bytes from data)
    same_as_the_kernel(CSUM, (bytes(range(7, 256)) * 7)[:length], kernel_oracle)


@pytest.mark.parametrize("budget", range(1, 79))
def test_the_budget_ends_where_the_interpreters_ends_in_a_loop_of_proven_loads(budget):
    # the loop's exit is a check point of its own; the whole run is 77 instructions
    same(CSUM, bytes(range(16)), prog_type="sched_cls", budget=budget)


PACKET_STORES = """r6 = *(u32 *)(r1 + 76)
                   r7 = *(u32 *)(r1 + 80)
                   r0 = 0
                   r2 = r6
                   r2 += 24
                   if r2 > r7 goto out
                   r3 = 0x1122334455667788 ll
                   *(u64 *)(r6 + 0) = r3
                   *(u32 *)(r6 + 8) = r3
                   *(u16 *)(r6 + 12) = r3
                   *(u8 *)(r6 + 14) = r3
                   *(u64 *)(r6 + 16) = -2
                   *(u32 *)(r6 + 15) = 0x7f00ff01
                   *(u16 *)(r6 + 20) = -3
                   *(u8 *)(r6 + 23) = 0xa5
                   r0 = *(u32 *)(r6 + 12)
               out:
                   exit"""
PACKET_STORE_PCS = set(range(8, 16))          # its stores, each size as STX and ST

STORE_LOOP = """r6 = *(u32 *)(r1 + 76)
                r7 = *(u32 *)(r1 + 80)
                r8 = 0
                r9 = r6
            l:  r3 = r9
                r3 += 2
                if r3 > r7 goto done
                r2 = *(u16 *)(r9 + 0)
                r2 ^= r8
                *(u16 *)(r9 + 0) = r2
                r9 += 2
                r8 += 1
                if r8 < 800 goto l
            done:
                r0 = r8
                exit"""
STORE_LOOP_STORE = 9


def test_the_verifier_names_the_packet_stores_it_proved_inside_the_packet():
    program = Program(asm.assemble(PACKET_STORES), "sched_cls", jit=False)
    assert PACKET_STORE_PCS | {16} == program._packet_pcs


@pytest.mark.parametrize("length", [14, 23, 24, 60])
def test_proven_packet_stores_write_the_bytes_the_kernel_writes(length, kernel_oracle):
    same_as_the_kernel(PACKET_STORES, bytes(range(100, 100 + length)), kernel_oracle)


def test_a_loop_stores_through_a_proven_packet_pointer():
    program = Program(asm.assemble(STORE_LOOP), "sched_cls", jit=False)
    assert STORE_LOOP_STORE in program._packet_pcs


@pytest.mark.parametrize("length", [14, 15, 64, 1501, 1614, 1615])
def test_a_loop_of_proven_packet_stores_writes_the_bytes_the_kernel_writes(length,
                                                                            kernel_oracle):
    # the loop stops at the packet's end, or after 800 words (1614 bytes from data)
    same_as_the_kernel(STORE_LOOP, (bytes(range(3, 256)) * 7)[:length], kernel_oracle)


@pytest.mark.parametrize("budget", range(1, 40))
def test_the_budget_ends_where_the_interpreters_ends_in_a_loop_of_proven_stores(budget):
    same(STORE_LOOP, bytes(range(16)), prog_type="sched_cls", budget=budget)


# one path stores into the stack, the other into the packet, through the same instruction
MIXED_STORE = """r6 = *(u32 *)(r1 + 76)
                 r7 = *(u32 *)(r1 + 80)
                 r0 = 0
                 r2 = r6
                 r2 += 8
                 if r2 > r7 goto out
                 r3 = r10
                 r3 += -8
                 r4 = 0
                 *(u64 *)(r10 - 8) = r4
                 r5 = *(u32 *)(r1 + 0)
                 if r5 < 40 goto write
                 r3 = r6
             write:
                 *(u32 *)(r3 + 4) = 0x5a5b5c5d
                 r0 = *(u32 *)(r10 - 4)
             out:
                 exit"""
MIXED_STORE_PC = 13


def test_a_store_through_the_packet_on_one_path_only_keeps_its_region_check():
    program = Program(asm.assemble(MIXED_STORE), "sched_cls", jit=False)
    code, exception_cb, packet = engine.source(program)
    assert MIXED_STORE_PC not in packet
    assert f"h{MIXED_STORE_PC}:" in codegen.translate(code, engine._ABI, "f", exception_cb,
                                                      packet)


@pytest.mark.parametrize("length", [14, 39, 40, 60], ids=["stack", "stack-39", "packet-40",
                                                         "packet-60"])
def test_a_store_proven_on_one_path_only_writes_what_the_kernel_writes(length, kernel_oracle):
    same_as_the_kernel(MIXED_STORE, bytes(range(1, 1 + length)), kernel_oracle)


def test_an_unchecked_store_past_the_packet_is_the_interpreters_fault():
    # unverified, nothing is proven: the store keeps its check and faults where the
    # interpreter's does, 2 bytes past the packet's end
    text = MIXED_STORE.replace("(r3 + 4)", "(r3 + 38)")
    assert Program(asm.assemble(text), "sched_cls", jit=False, verify=False)._packet_pcs \
        == set()
    assert same(text, bytes(40), prog_type="sched_cls", kwargs={"verify": False})[:2] == \
        ("MemoryFault", MIXED_STORE_PC)


def test_a_context_access_the_type_forbids_is_the_interpreters_fault():
    assert same("r0 = *(u32 *)(r1 + 184)\nexit", prog_type="sched_cls",
                kwargs={"verify": False}, data=bytes(60))[0] == "MemoryFault"


def test_ld_abs_and_ld_ind_and_their_out_of_bounds_end():
    same("r6 = r1\nr0 = *(u16 *)skb[12]\nr7 = 2\nr0 = *(u32 *)skb[r7 + 20]\n"
         "r0 = *(u8 *)skb[1000]\nexit", prog_type="sched_cls", data=bytes(range(64)))


def test_helpers_are_called_with_the_interpreters_pc_and_budget():
    # bpf_skb_store_bytes then bpf_get_hash_recalc, a helper refusal, a fault inside one
    same("""r6 = r1
            r2 = 0x11223344
            *(u32 *)(r10 - 4) = r2
            r1 = r6
            r2 = 2
            r3 = r10
            r3 += -4
            r4 = 4
            r5 = 0
            call 9
            r1 = r6
            call 34
            r1 = r6
            r2 = 0
            r3 = r10
            r3 += -4
            r4 = 400
            r5 = 0
            call 9
            exit""", prog_type="sched_cls", kwargs={"verify": False}, data=bytes(64))


def test_an_unknown_helper_is_the_interpreters_error():
    assert same("call 7\nexit", kwargs={"helpers": {1: "no_op"}})[0] == "UnknownHelper"


def test_bpf_to_bpf_calls_keep_the_callers_registers_and_frames():
    same("""r6 = 5
            *(u64 *)(r10 - 8) = r6
            call f
            r1 = *(u64 *)(r10 - 8)
            r0 += r1
            r0 += r6
            exit
        f:  r6 = 100
            *(u64 *)(r10 - 8) = r6
            r0 = *(u64 *)(r10 - 8)
            exit""")


def test_a_ninth_frame_is_the_interpreters_call_depth_error():
    assert same("call f\nexit\nf: call f\nexit")[0] == "CallDepthExceeded"


def test_may_goto_ends_a_loop_as_the_interpreter_does():
    same("r0 = 0\nl: may_goto +2\nr0 += 1\ngoto l\nexit", budget=40_000_000)


def test_bpf_loop_callbacks_run_from_compiled_code():
    same("""r1 = 5
            r2 = func(5) ll
            r3 = 0
            r4 = 0
            call 181
            exit
            r0 = 0
            exit""", prog_type="sched_cls", kwargs={"verify": False}, data=bytes(60))


def test_a_callback_starts_with_its_other_registers_zero_in_both_engines():
    # the callback returns r6: 0 lets bpf_loop run all 3 iterations
    assert same("""r6 = 77
                   r1 = 3
                   r2 = func(5) ll
                   r3 = 0
                   r4 = 0
                   call 181
                   exit
                   r0 = r6
                   exit""", prog_type="sched_cls", kwargs={"verify": False},
                data=bytes(60))[0] == 3


def test_a_tail_call_leaves_compiled_code_for_the_target():
    arr = Map.create("prog_array", 4, 4, 2)
    target = Program(asm.assemble("r0 = 42\nexit"), "sched_cls", jit=True)
    arr[(0).to_bytes(4, "little")] = target
    text = f"r2 = map_fd({arr.fd}) ll\nr3 = 0\ncall 12\nr0 = 1\nexit"
    assert same(text, prog_type="sched_cls", data=bytes(60))[0] == 42


# a throw two frames deep (the cookie: the packet's first byte), then r0 = 1; the
# exception callback at pc 9 returns cookie * 3 after a call of its own
THROWER = f"""r6 = *(u8 *)(r1 + 0)
              call f
              r0 = 1
              exit
              f: r1 = r6
              call g
              exit
              g: call kfunc {isa.KFUNC_IDS["bpf_throw"]}
              exit
              r6 = r1
              call h
              r0 += r6
              exit
              h: r0 = r6
              r0 <<= 1
              exit"""
EXCEPTION_CB = (GlobalFunc(9, "cb", exception_cb=True),)


def test_a_throw_unwinds_every_frame_and_runs_the_exception_callback_as_interpreted():
    assert same(THROWER, bytes([5]), kwargs={"verify": False, "functions": EXCEPTION_CB}) \
        == (15, bytes([5]), 12, None)


def test_a_throw_without_a_callback_returns_the_cookie_as_interpreted():
    assert same(THROWER, bytes([5]), kwargs={"verify": False})[:3] == (5, bytes([5]), 5)


@pytest.mark.parametrize("budget", range(4, 13))
def test_the_budget_ends_in_the_exception_callback_where_the_interpreter_ends(budget):
    same(THROWER, bytes([5]), budget=budget, kwargs={"verify": False, "functions": EXCEPTION_CB})


def test_the_exception_callback_is_an_entry_of_the_compiled_code():
    # vm_unwind goes on at the callback's pc: native code, not the interpreter
    program = Program(asm.assemble(THROWER), jit=False, verify=False, functions=EXCEPTION_CB)
    code, exception_cb, _ = engine.source(program)
    assert exception_cb == 9
    assert "i32 9, label %e9" in codegen.translate(code, engine._ABI, "f", exception_cb)
    assert "i32 9, label %e9" not in codegen.translate(code, engine._ABI, "f")


def test_a_traced_run_of_a_compiled_program_interprets_and_traces():
    interp, native = both("r0 = 3\nr0 += 4\nexit")
    assert native.run(trace=True).trace.steps == interp.run(trace=True).trace.steps != []


def test_without_llvmlite_jit_true_is_a_one_line_error_naming_the_extra(monkeypatch):
    monkeypatch.setattr(jit, "available", lambda: False)
    with pytest.raises(errors.LoadError, match=r"^the JIT needs llvmlite: pip install "
                                               r"'pyebpf\[jit\]'$"):
        Program(asm.assemble("r0 = 0\nexit"), jit=True)


def test_a_bad_pyebpf_jit_value_is_a_one_line_error():
    env, cwd = child_python(PYEBPF_JIT="sometimes", PATH="/usr/bin:/bin")
    proc = subprocess.run([sys.executable, "-c", "import pyebpf; pyebpf.Program(b'')"],
                          capture_output=True, text=True, cwd=cwd,
                          env={k: env[k] for k in ("PYEBPF_JIT", "PATH", "PYTHONPATH")})
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        "pyebpf.errors.LoadError: PYEBPF_JIT='sometimes': expected one of auto, force, off")


def test_tcsim_jit_writes_what_the_interpreter_writes(tmp_path):
    cmd = [sys.executable, "-m", "pyebpf.pcap.tcsim", str(ROOT / "examples" / "nat4.o"),
           "-r", str(ROOT / "examples" / "sample.pcap"), "-q"]
    env, cwd = child_python()
    for name, extra in (("interp", []), ("jit", ["--jit"])):
        subprocess.run(cmd + ["-o", str(tmp_path / f"{name}.pcap"),
                              "--report", str(tmp_path / f"{name}.jsonl")] + extra,
                       check=True, cwd=cwd, env=env)
    assert (tmp_path / "jit.pcap").read_bytes() == (tmp_path / "interp.pcap").read_bytes()
    assert (tmp_path / "jit.jsonl").read_text() == (tmp_path / "interp.jsonl").read_text()


# programs the differential fuzzer tries on every run; PYEBPF_JIT_FUZZ=N tries N instead
# (each costs an LLVM compile: 1,000 take about 90 s of CPU)
FUZZ_PROGRAMS = int(os.environ.get("PYEBPF_JIT_FUZZ", "250"))


def test_the_differential_fuzzer_finds_no_disagreement():
    seed = random.SystemRandom().getrandbits(32)
    stats = {}
    failures = fuzz.run(FUZZ_PROGRAMS, seed, stats=stats)
    assert not failures, f"{len(failures)} disagreements (seed {seed}):\n" + failures[0]
    # both outcomes stay common, so neither path goes unchecked
    assert stats.get("exit", 0) > FUZZ_PROGRAMS // 2, stats
    assert stats.get("MemoryFault", 0) > FUZZ_PROGRAMS // 5, stats


def _rounds_seen(monkeypatch, outcomes):
    """fuzz._round answering the k-th round of runs with outcomes(k): (interpreter's,
    JIT's), each engine's the same in the round's two runs of it."""
    rounds = []

    def fake(compiled, i):
        interp, native = outcomes(len(rounds))
        rounds.append((interp, native))
        return [interp, native, interp, native]
    monkeypatch.setattr(fuzz, "_round", fake)
    return rounds


def test_a_disagreement_that_changes_with_the_memory_layout_is_address_dependent(monkeypatch):
    # seed 632130657: `w8 = (s8)w6; if w8 & w2 goto` branches on a bit of r1's address,
    # which the engines' runs do not share; two layouts left that bit alone in each
    # engine (insn_count 11 and 10), a third moved it
    rounds = _rounds_seen(monkeypatch, lambda k: ("11 insns", "10 insns") if k < 2
                          else ("10 insns", "10 insns"))
    assert fuzz._both([], [(b"", 100_000, {})]) == [None]
    assert len(rounds) == 3


def test_a_disagreement_in_every_memory_layout_is_reported(monkeypatch):
    rounds = _rounds_seen(monkeypatch, lambda k: ("11 insns", "10 insns"))
    assert fuzz._both([], [(b"", 100_000, {})]) == [("11 insns", "10 insns")]
    assert len(rounds) == 2 + fuzz._CONFIRM_LAYOUTS


def test_a_may_goto_function_called_often_runs_past_the_first_budget_as_interpreted():
    """Eight calls of a function whose may_goto loop runs out its counter (BPF_MAX_LOOPS
    passes of 3 instructions): 201 million instructions, past the default budget of
    this 13-instruction program (109 million); every call grows it, in both engines."""
    want = same("""
        r6 = 0
        r7 = 0
    l:  if r6 == 8 goto out
        call f
        r7 += r0
        r6 += 1
        goto l
    out:
        r0 = r7
        exit
    f:  r0 = 0
        may_goto +2
        r0 += 1
        goto -3
        exit
    """)
    assert want[0] == 8 * isa.BPF_MAX_LOOPS
