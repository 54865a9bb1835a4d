"""Stack slot and register liveness against the kernel: a stored state forgets the stack
slots and registers no later instruction reads before it is compared with a path that
reaches its instruction (clean_live_states; the slots from what the verifier saw each
instruction read and write, kernel/bpf/liveness.c), so paths that differ only there
join.  The kernel's verdict and, for accepted programs, its processed instructions and
states are the expected values."""
from __future__ import annotations

from pathlib import Path

import pytest

from pyebpf import errors, kernel, load
from recorded_kernel import count_comparison
from verifier_counts import count_verifications, kernel_counts
from test_verifier_precision import kernel as kernel_verdict
from test_verifier_precision import ours

CORPUS = Path(__file__).resolve().parent / "verifier_corpus"
N = 6           # joins: 2**N paths where they do not join


def joins(side_a: str, side_b: str, body: str, n: int = N) -> str:
    """``n`` two-way branches on bits of skb->len; branch ``i`` runs ``side_a`` (the
    path the verifier walks first) or ``side_b`` with ``{off}`` its own stack offset,
    -8 * (i + 1), and ``{half}`` 4 above it; ``body`` after."""
    lines = ["r6 = r1", "r7 = *(u32 *)(r6 + 0)"]
    for i in range(n):
        off = -8 * (i + 1)
        lines += [f"if r7 & {1 << i} goto a{i}", side_a.format(off=off, half=off + 4),
                  f"goto j{i}", f"a{i}:", side_b.format(off=off, half=off + 4), f"j{i}:"]
    return "\n".join(lines + [body, "r0 = 0", "exit"])


POINTER_OR_SCALAR = ("*(u64 *)(r10 {off}) = r6", "*(u64 *)(r10 {off}) = r7")


def read_all(n: int = N) -> str:
    return "\n".join(f"r2 = *(u64 *)(r10 - {8 * (i + 1)})" for i in range(n))


def test_slots_no_later_instruction_reads_are_forgotten_where_paths_join():
    text = joins(*POINTER_OR_SCALAR, "")
    assert ours(text) == kernel_verdict(text)
    assert ours(text)[1][0] < 100        # not 2**N paths


def test_slots_read_after_the_join_keep_paths_apart():
    text = joins(*POINTER_OR_SCALAR, read_all())
    assert ours(text) == kernel_verdict(text)
    assert ours(text)[1][0] > 2 ** N


def test_slots_a_helper_reads_keep_paths_apart():
    """bpf_csum_diff reads the 8 * N bytes below the frame pointer."""
    text = joins(*POINTER_OR_SCALAR, f"r1 = r10\nr1 += -{8 * N}\nr2 = {8 * N}\nr3 = 0\n"
                                      "r4 = 0\nr5 = 0\ncall csum_diff")
    assert ours(text) == kernel_verdict(text)
    assert ours(text)[1][0] > 2 ** N


def test_slots_written_whole_before_any_read_are_dead_at_the_join():
    text = joins(*POINTER_OR_SCALAR, "\n".join(
        f"*(u64 *)(r10 - {8 * (i + 1)}) = 0" for i in range(N)) + "\n" + read_all())
    assert ours(text) == kernel_verdict(text)
    assert ours(text)[1][0] < 100


def test_a_slot_written_in_part_stays_live_for_a_read_of_the_rest():
    """Only a whole 8-byte slot counts as written: the read of its upper half after a
    4-byte store keeps what the join holds in the slot alive."""
    text = joins(*POINTER_OR_SCALAR, "\n".join(
        f"*(u32 *)(r10 - {8 * (i + 1)}) = 0\nr2 = *(u32 *)(r10 - {8 * (i + 1) - 4})"
        for i in range(N)))
    assert ours(text) == kernel_verdict(text)
    assert ours(text)[1][0] > 2 ** N


CALL_F = "r1 = r10\nr1 += -8\ncall f"


def test_a_callers_slot_a_static_function_reads_through_a_pointer_is_live_at_the_join():
    """f reads fp-8 of its caller: the first join's slot is live there (the others,
    never read, are not)."""
    reads = joins(*POINTER_OR_SCALAR, CALL_F) + "\nf:\nr2 = *(u64 *)(r1 + 0)\nr0 = 0\nexit"
    never = joins(*POINTER_OR_SCALAR, CALL_F) + "\nf:\nr0 = 0\nexit"
    assert ours(reads) == kernel_verdict(reads)
    assert ours(reads)[1][0] > ours(never)[1][0]


def test_a_callers_slot_a_static_function_never_reads_is_dead_at_the_join():
    text = joins(*POINTER_OR_SCALAR, CALL_F) + "\nf:\nr0 = 0\nexit"
    assert ours(text) == kernel_verdict(text)
    assert ours(text)[1][0] < 100


def test_registers_past_a_helpers_arguments_are_dead_before_it():
    """bpf_get_prandom_u32 takes no argument: what R3 held where the paths join is
    dead (compute_live_registers counts the prototype's arguments)."""
    text = "\n".join(["r6 = r1", "r7 = *(u32 *)(r6 + 0)", "r8 = 0", "r8 = 1", "r8 = 2",
                      "r8 = 3", "if r7 & 1 goto a", "r3 = r6", "goto j", "a:", "r3 = 5",
                      "j:", "call get_prandom_u32", "r0 = 0", "exit"])
    assert ours(text) == kernel_verdict(text)


def test_a_byte_stored_into_a_narrow_spill_makes_the_whole_slot_misc():
    """A 4-byte spill of 0 leaves the slot's other half zero; a byte stored over it
    turns every byte misc (scrub_spilled_slot), as two 4-byte stores of unknowns do
    on the other path, so the paths join with the slot live."""
    text = "\n".join([
        "r6 = r1", "r7 = *(u32 *)(r6 + 0)", "r2 = 0", "if r7 & 1 goto a",
        "*(u32 *)(r10 - 4) = r2", "*(u32 *)(r10 - 8) = r2", "*(u8 *)(r10 - 4) = r7",
        "goto j", "a:", "*(u32 *)(r10 - 8) = r7", "*(u32 *)(r10 - 4) = r7", "j:"] + [
        f"if r7 & {1 << i} goto b{i}\nr3 = {i}\ngoto c{i}\nb{i}:\nr3 = 0\nc{i}:"
        for i in range(1, 7)] + ["r2 = *(u64 *)(r10 - 8)", "r0 = 0", "exit"])
    assert ours(text) == kernel_verdict(text)


def test_misc_bytes_of_a_joined_path_match_whatever_the_other_path_holds():
    """A privileged loader may read uninitialised stack (allow_uninit_stack), so a slot
    the first path left with a misc byte proved safe for any bytes: a pointer spilled
    there on the other path joins it (stacksafe)."""
    text = joins("*(u8 *)(r10 {off}) = r7", "*(u64 *)(r10 {off}) = r6",
                 f"r1 = r10\nr1 += -{8 * N}\nr2 = {8 * N}\nr3 = 0\nr4 = 0\nr5 = 0\n"
                 "call csum_diff")
    assert ours(text) == kernel_verdict(text)


def test_a_spilled_scalar_joins_bytes_all_misc():
    """A 64-bit scalar spilled on one path and eight misc bytes on the other compare
    as two scalars (scalar_reg_for_stack): an imprecise one matches."""
    text = joins("*(u64 *)(r10 {off}) = r7",
                 "*(u32 *)(r10 {off}) = r7\n*(u32 *)(r10 {half}) = r7", read_all())
    assert ours(text) == kernel_verdict(text)


def _accepted_corpus():
    return sorted(p.name for p in CORPUS.glob("*.c")
                  if "Expected: accepted" in p.read_text())


@pytest.mark.kernel
@pytest.mark.parametrize("source", _accepted_corpus())
def test_the_corpus_processes_the_kernels_instructions_and_states(source, monkeypatch):
    """The clang corpus at -O2: processed instructions and total states of every program
    as the kernel's statistics line counts them."""
    _same_counts(source, ("-O2",), monkeypatch)


@pytest.mark.kernel
@pytest.mark.parametrize("source", ["lb4.c", "switch_proto.c"])
def test_the_corpus_at_o1_decides_a_second_pkt_end_check_as_the_kernel(source, monkeypatch):
    """At -O1 these programs compare a pointer already found past pkt_end with pkt_end
    again: the kernel decides that branch (mark_pkt_end, is_pkt_ptr_branch_taken), which
    its instruction and state counts show."""
    _same_counts(source, ("-O1",), monkeypatch)


def _same_counts(source: str, flags: tuple, monkeypatch) -> None:
    from bpfc import compile_object
    obj = compile_object((CORPUS / source).read_text(), flags=flags, prelude=False)
    count_comparison()
    with kernel.load_object(obj) as ko:
        theirs = [kernel_counts(p.verifier_log) for p in ko.programs.values()]
    mine = count_verifications(monkeypatch)
    try:
        load(obj, pin=False).close()
    except errors.ElfError as exc:
        pytest.fail(f"pyebpf refuses what the kernel accepts: {exc}")
    assert mine == theirs
