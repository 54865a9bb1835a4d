"""Precision tracking against the kernel: a scalar no later decision depends on does
not keep two paths apart where they join, one that a branch, pointer arithmetic or a
helper's size argument depends on does, in one function, round loops and across calls
of static functions (arguments, return values, the caller's stack).  The kernel's
verdict, and for accepted programs its processed instructions and states (its
BPF_LOG_STATS line), are the expected values; at log level 2, its mark_precise lines."""
from __future__ import annotations

import re

import pytest

from pyebpf import asm, errors, isa, verifier
from pyebpf.kernel import sysbpf
from recorded_kernel import count_comparison
from skbdiff import CLS

MARK = 8        # __sk_buff.mark


def kernel(text: str) -> tuple[str | None, tuple | None]:
    """(the refusal's last line or None, (processed, total_states) of an accepted
    program) from the kernel's BPF_PROG_LOAD."""
    count_comparison()
    fd, err, log = sysbpf.calls.prog_load(CLS, asm.assemble(text), b"GPL\0",
                                          isa.BPF_LOG_LEVEL1 | isa.BPF_LOG_STATS)
    if fd < 0:
        return _last(log) or f"errno {err}", None
    sysbpf.calls.close(fd)
    stats = re.search(r"processed (\d+) insns .*total_states (\d+)", log)
    return None, (int(stats[1]), int(stats[2]))


def ours(text: str) -> tuple[str | None, tuple | None]:
    try:
        v = verifier.verify(isa.unpack_program(asm.assemble(text)), CLS, log_level=1)
    except errors.VerifierError as exc:
        return _last(exc.log), None
    return None, (v.processed, v.total_states)


def _last(log: str) -> str | None:
    """A refusal's message: the log's last line before the statistics."""
    lines = [ln for ln in log.splitlines() if ln and not ln.startswith(
        ("processed ", "stack depth", "verification time"))]
    return lines[-1] if lines else None


def diamonds(n: int, body: str) -> str:
    """``n`` two-way branches on bits of skb->len, each side setting r8 to its own
    constant; ``body`` then runs with r8 holding one of 2**n combinations (and the
    stack's fp-64 zeroed)."""
    lines = ["r6 = r1", "r7 = *(u32 *)(r6 + 0)", "r8 = 0", "*(u64 *)(r10 - 64) = 0"]
    for i in range(n):
        lines += [f"if r7 & {1 << i} goto a{i}", f"r8 = {i}", f"goto j{i}",
                  f"a{i}:", f"r8 = {100 + i}", f"j{i}:"]
    return "\n".join(lines + [body, "r0 = 0", "exit"])


def test_a_scalar_no_decision_depends_on_is_pruned_where_paths_join():
    text = diamonds(10, f"*(u32 *)(r6 + {MARK}) = r8")
    assert ours(text) == kernel(text)
    assert ours(text)[1][0] < 200       # not 2**10 paths


def test_a_scalar_a_decided_branch_depends_on_keeps_paths_apart():
    text = diamonds(6, f"if r8 == 105 goto +1\n*(u32 *)(r6 + {MARK}) = r8")
    assert ours(text) == kernel(text)


def test_a_scalar_added_to_a_pointer_keeps_paths_apart():
    text = diamonds(4, "r8 &= 0x38\nr2 = r10\nr2 += -64\nr2 += r8\n*(u64 *)(r2 + 0) = 0")
    assert ours(text) == kernel(text)


def test_a_scalar_added_to_a_pointer_out_of_bounds_on_one_path_is_refused():
    """Only the joined path whose r8 is 103 writes above the frame: pruning it by an
    imprecise r8 would accept the program."""
    text = diamonds(4, "r2 = r10\nr2 += -100\nr2 += r8\n*(u8 *)(r2 + 0) = 0")
    mine, theirs = ours(text), kernel(text)
    assert mine[0] is not None and theirs[0] is not None
    assert mine[0] == theirs[0]


def test_a_spilled_scalar_is_followed_through_the_stack():
    text = diamonds(4, "*(u64 *)(r10 - 8) = r8\nr3 = *(u64 *)(r10 - 8)\nr2 = r10\n"
                       "r2 += -100\nr2 += r3\n*(u8 *)(r2 + 0) = 0")
    mine, theirs = ours(text), kernel(text)
    assert mine[0] is not None and mine[0] == theirs[0], (mine, theirs)


def test_a_helpers_size_argument_keeps_paths_apart():
    """bpf_skb_load_bytes into 16 stack bytes: only the path whose length is 103 is
    out of bounds."""
    text = diamonds(4, "r4 = r8\nr4 &= 0xff\nif r4 == 0 goto +6\nr1 = r6\nr2 = 0\n"
                       "r3 = r10\nr3 += -16\ncall skb_load_bytes\nr0 = 0")
    mine, theirs = ours(text), kernel(text)
    assert (mine[0] is None) == (theirs[0] is None), (mine, theirs)
    assert mine[0] is not None and "invalid" in mine[0] and mine[0] == theirs[0], \
        (mine, theirs)


def test_scalars_a_branch_linked_are_needed_together():
    """r9 is a copy of r8 (one id); the branch on r8 bounds r9, which then offsets a
    pointer: r8 is needed at the join too."""
    text = diamonds(4, "r9 = r8\nif r8 > 50 goto +4\nr2 = r10\nr2 += -64\nr2 += r9\n"
                       "*(u8 *)(r2 + 0) = 0")
    assert ours(text) == kernel(text)


def loop(rounds: int, body: str) -> str:
    """``rounds`` turns of a loop on bits of skb->len, each setting r8 to 1 or 2 (the
    counter r9 is what the loop's branch decides on); ``body`` then runs with r8."""
    return "\n".join([
        "r6 = r1", "r7 = *(u32 *)(r6 + 0)", "r9 = 0", "*(u64 *)(r10 - 64) = 0",
        "l:", "if r7 & 1 goto a", "r8 = 1", "goto j", "a:", "r8 = 2", "j:", body,
        "r7 >>= 1", "r9 += 1", f"if r9 < {rounds} goto l", "r0 = 0", "exit"])


def test_a_loop_prunes_a_scalar_no_decision_depends_on():
    text = loop(8, f"*(u32 *)(r6 + {MARK}) = r8")
    assert ours(text) == kernel(text)


def test_a_loop_keeps_apart_a_scalar_its_pointer_arithmetic_depends_on():
    text = loop(8, "r2 = r10\nr2 += -64\nr2 += r8\nr3 = *(u8 *)(r2 + 0)\n"
                   f"*(u32 *)(r6 + {MARK}) = r3")
    assert ours(text) == kernel(text)


def test_a_loop_keeps_apart_a_scalar_a_decided_branch_depends_on():
    text = loop(8, f"if r8 == 2 goto +1\n*(u32 *)(r6 + {MARK}) = r8")
    assert ours(text) == kernel(text)


def test_a_static_functions_argument_no_decision_depends_on_is_pruned():
    text = diamonds(6, f"r1 = r8\ncall f\n*(u32 *)(r6 + {MARK}) = r0") + \
        "\nf:\nr0 = r1\nexit"
    assert ours(text) == kernel(text)


def test_an_argument_the_callee_adds_to_a_pointer_is_needed_by_the_caller():
    text = diamonds(4, "r8 &= 0x38\nr1 = r8\ncall f") + \
        "\nf:\nr2 = r10\nr2 += -64\nr2 += r1\n*(u64 *)(r2 + 0) = 0\nr0 = 0\nexit"
    assert ours(text) == kernel(text)


def test_an_argument_out_of_bounds_in_the_callee_on_one_path_is_refused():
    text = diamonds(4, "r1 = r8\ncall f") + \
        "\nf:\nr2 = r10\nr2 += -100\nr2 += r1\n*(u8 *)(r2 + 0) = 0\nr0 = 0\nexit"
    mine, theirs = ours(text), kernel(text)
    assert mine[0] is not None and mine[0] == theirs[0], (mine, theirs)


def test_a_return_value_a_decided_branch_depends_on_is_followed_into_the_callee():
    text = diamonds(6, f"r1 = r8\ncall f\nif r0 == 105 goto +1\n*(u32 *)(r6 + {MARK}) = r0") \
        + "\nf:\nr0 = r1\nexit"
    assert ours(text) == kernel(text)


def test_a_return_value_out_of_bounds_on_one_path_is_refused():
    text = diamonds(4, "r1 = r8\ncall f\nr2 = r10\nr2 += -100\nr2 += r0\n"
                       "*(u8 *)(r2 + 0) = 0") + "\nf:\nr0 = r1\nexit"
    mine, theirs = ours(text), kernel(text)
    assert mine[0] is not None and mine[0] == theirs[0], (mine, theirs)


def test_a_callers_slot_the_callee_reads_through_a_pointer_is_followed():
    text = diamonds(4, "*(u64 *)(r10 - 8) = r8\nr1 = r10\nr1 += -8\ncall f") + \
        "\nf:\nr3 = *(u64 *)(r1 + 0)\nr2 = r10\nr2 += -100\nr2 += r3\n" \
        "*(u8 *)(r2 + 0) = 0\nr0 = 0\nexit"
    mine, theirs = ours(text), kernel(text)
    assert mine[0] is not None and mine[0] == theirs[0], (mine, theirs)


def test_branches_inside_a_static_function_join_on_an_imprecise_result():
    text = f"r6 = r1\nr1 = *(u32 *)(r6 + 0)\ncall f\n*(u32 *)(r6 + {MARK}) = r0\n" \
        "r0 = 0\nexit\nf:\nr7 = r1\n" + "\n".join(
            f"if r7 & {1 << i} goto a{i}\nr0 = {i}\ngoto j{i}\na{i}:\nr0 = {100 + i}\nj{i}:"
            for i in range(6)) + "\nexit"
    assert ours(text) == kernel(text)


def test_a_loop_calling_a_static_function_prunes_its_imprecise_result():
    text = loop(8, f"r1 = r8\ncall f\n*(u32 *)(r6 + {MARK}) = r0") + \
        "\nf:\nr0 = r1\nr0 += 1\nexit"
    assert ours(text) == kernel(text)


def test_a_loop_inside_a_static_function():
    text = "r6 = r1\nr1 = *(u32 *)(r6 + 0)\ncall f\nr0 = 0\nexit\nf:\nr9 = 0\nr7 = r1\n" \
        "l:\nif r7 & 1 goto a\nr8 = 1\ngoto j\na:\nr8 = 2\nj:\nr7 >>= 1\nr9 += 1\n" \
        "if r9 < 10 goto l\nr0 = r8\nexit"
    assert ours(text) == kernel(text)


def _precision_lines(log: str) -> list[str]:
    return [ln for ln in log.splitlines()
            if ln.startswith(("mark_precise: ", "force_precise: ")) or
            re.match(r"frame \d+: propagating ", ln)]


@pytest.mark.parametrize("text", [
    loop(8, "r2 = r10\nr2 += -64\nr2 += r8\nr3 = *(u8 *)(r2 + 0)\n"
            f"*(u32 *)(r6 + {MARK}) = r3"),
    diamonds(6, f"r1 = r8\ncall f\nif r0 == 105 goto +1\n*(u32 *)(r6 + {MARK}) = r0") +
    "\nf:\nr0 = r1\nexit",
    diamonds(4, "*(u64 *)(r10 - 8) = r8\nr1 = r10\nr1 += -8\ncall f") +
    "\nf:\nr3 = *(u64 *)(r1 + 0)\nr2 = r10\nr2 += -100\nr2 += r3\n*(u8 *)(r2 + 0) = 0\n"
    "r0 = 0\nexit",
], ids=["loop", "return-value", "callers-slot"])
def test_the_level_2_log_prints_the_kernels_mark_precise_lines(text):
    """Every ``mark_precise:`` line (each instruction walked back with the registers
    and slots still wanted, each checkpoint marked with its state and ``P`` marks) and
    every ``frame N: propagating`` line, in order, as the kernel prints them."""
    count_comparison()
    fd, err, log = sysbpf.calls.prog_load(CLS, asm.assemble(text), b"GPL\0",
                                          isa.BPF_LOG_LEVEL2 | isa.BPF_LOG_STATS)
    if fd >= 0:
        sysbpf.calls.close(fd)
    try:
        mine = verifier.verify(isa.unpack_program(asm.assemble(text)), CLS,
                               log_level=2).log
    except errors.VerifierError as exc:
        mine = exc.log
    assert _precision_lines(log)
    assert _precision_lines(mine) == _precision_lines(log)


def across_a_packet_load(load: str, wanted: str) -> str:
    """Six two-way branches on bits of skb->len set r9, which nothing later needs; then
    the legacy packet load ``load`` and a stack write at fp-64 plus the scalar
    ``wanted`` (r8, the constant 8 set before the branches, or the loaded r0 masked)."""
    lines = ["r6 = r1", "r7 = *(u32 *)(r6 + 0)", "r8 = 8"]
    for i in range(6):
        lines += [f"if r7 & {1 << i} goto a{i}", f"r9 = {i}", f"goto j{i}",
                  f"a{i}:", f"r9 = {100 + i}", f"j{i}:"]
    return "\n".join(lines + [load, "r0 &= 0x38", "r2 = r10", "r2 += -64",
                              f"r2 += {wanted}", "*(u64 *)(r2 + 0) = 0", "r0 = 0", "exit"])


@pytest.mark.parametrize("load", ["r0 = *(u8 *)skb[12]", "r0 = *(u16 *)skb[r7 + 0]"],
                         ids=["ld_abs", "ld_ind"])
def test_precision_is_followed_back_past_a_packet_load_whose_r0_is_not_wanted(load):
    """backtrack_insn gives up at LD_ABS/LD_IND only for its R0: r8 is followed back
    past it, so the branches' different r9 stay imprecise and their paths join."""
    text = across_a_packet_load(load, "r8")
    assert ours(text) == kernel(text)
    assert ours(text)[1][0] < 100       # not 2**6 paths


@pytest.mark.parametrize("load", ["r0 = *(u8 *)skb[12]", "r0 = *(u16 *)skb[r7 + 0]"],
                         ids=["ld_abs", "ld_ind"])
def test_precision_wanted_from_a_packet_load_forces_every_scalar_precise(load):
    """The loaded R0 cannot be followed into the packet: every scalar is marked precise
    (mark_all_scalars_precise), r9 too, and the branches' paths stay apart."""
    text = across_a_packet_load(load, "r0")
    assert ours(text) == kernel(text)
    assert ours(text)[1][0] > 100
