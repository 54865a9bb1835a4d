"""Verifier rules cilium's datapath (bpf_host.o, bpf_lxc.o, ...: docs/corpus.md) needs
as the kernel has them, each on a small assembly program, the kernel the expected value:
its verdict, or where a rule only changes which states are kept, its level-2 log (the
lines compared as tests/test_verifier_log_level2.py compares them).
"""
from __future__ import annotations

import pytest

from pyebpf import Map, asm, isa, kernel, verifier
from pyebpf.errors import KernelError, VerifierError
from skbdiff import CLS
from test_verifier_log_level2 import logs

CRASH = "r0 = *(u64 *)(r9 + 0)\n"       # r9 never written: refused where reached


def _verdicts(text: str) -> tuple[str, str]:
    """(the kernel's, pyebpf's) verdict: "accepted" or the refusal's reason."""
    code = asm.assemble(text)
    try:
        with kernel.KernelProgram(code, CLS):
            theirs = "accepted"
    except KernelError as exc:
        theirs = exc.log.strip().splitlines()[-2]
    try:
        verifier.verify(isa.unpack_program(code), CLS)
        ours = "accepted"
    except VerifierError as exc:
        ours = exc.log.strip().splitlines()[-2]
    return theirs, ours


# maybe_fork_scalars: dst in [-1, 0] and'ed or or'ed with a constant is followed as -1
# and as 0 apart, so a value between the two results is no path
@pytest.mark.parametrize("text", [
    "w7 s>>= 31\nw7 &= -153\nif r7 > 0x10 goto +2\nif r7 == 0 goto +1\n",
    "w7 s>>= 31\nw7 |= 8\nif w7 == 8 goto +2\nif w7 == -1 goto +1\n",
    "r7 <<= 32\nr7 s>>= 63\nr7 &= 8\nif r7 == 8 goto +2\nif r7 == 0 goto +1\n",
    "w7 s>>= 31\nw8 = 8\nw7 &= w8\nif w7 == 8 goto +2\nif w7 == 0 goto +1\n",
    "w7 s>>= 31\nw7 ^= 8\nif w7 == 8 goto +2\nif w7 == -9 goto +1\n",
], ids=["and32", "or32", "and64", "and-constant-register", "xor-no-fork"])
def test_and_or_of_a_value_in_minus_one_to_zero_follows_each_value_apart(text):
    theirs, ours = _verdicts("call 7\nw7 = w0\n" + text + CRASH + "r0 = 0\nexit")
    assert ours == theirs


def test_and_with_a_constant_forks_in_the_kernels_log_order():
    theirs, ours = logs("call 7\nw7 = w0\nw7 s>>= 31\nw7 &= -153\nif w7 s< 0 goto +1\n"
                        "r0 = 0\nr0 = 0\nexit")
    assert ours == theirs


def test_a_spilled_scalar_passed_to_fib_lookup_is_unknown_after_it():
    # bpf_fib_lookup's params are ARG_PTR_TO_MEM | MEM_WRITE: the helper may write any
    # byte, so the spilled 0 is a scalar the branch below does not decide
    text = "".join(f"*(u64 *)(r10 - {off}) = r7\n" for off in range(8, 72, 8))
    theirs, ours = _verdicts(
        f"r6 = r1\nr7 = 0\n{text}r1 = r6\nr2 = r10\nr2 += -64\nr3 = 64\nr4 = 0\ncall 69\n"
        f"r8 = *(u64 *)(r10 - 64)\nif r8 == 0 goto +1\n{CRASH}r0 = 0\nexit")
    assert ours == theirs


def test_an_atomic_add_is_backtracked_through_without_forcing_every_scalar_precise():
    # backtrack_insn follows a non-fetching atomic as a store of no register: the
    # walk for r9 goes on past it (before, pyebpf marked every scalar precise there)
    with kernel.KernelMap("array", 4, 8, 1) as km:
        um = Map.create("array", 4, 8, 1)
        text = ("r9 = r1\ncall 7\nr6 = r0\nr1 = 0\n*(u32 *)(r10 - 4) = r1\nr2 = r10\n"
                "r2 += -4\nr1 = map_fd({fd}) ll\ncall 1\nif r0 == 0 goto +4\nr1 = 1\n"
                "lock *(u64 *)(r0 + 0) += r1\nr9 = 2\nif r9 == 2 goto +0\nr0 = 0\nexit")
        theirs, ours = logs(text, km, um)
    assert any("falling back" in line for line in ours) == \
        any("falling back" in line for line in theirs)
    assert ours == theirs


def test_an_atomic_fetch_is_backtracked_as_a_load_into_its_register():
    text = ("r1 = 5\n*(u64 *)(r10 - 8) = r1\nr2 = 1\n"
            "r2 = atomic_fetch_add((u64 *)(r10 - 8), r2)\nif r2 == 5 goto +0\nr0 = 0\nexit")
    theirs, ours = logs(text)
    assert ours == theirs


def test_a_constant_key_is_made_precise_only_for_an_array_lookup():
    # check_func_arg asks get_constant_map_key only for maps whose lookup it may make
    # non-NULL (can_elide_value_nullness): a hash map's key stays imprecise
    with kernel.KernelMap("hash", 8, 8, 4) as km:
        um = Map.create("hash", 8, 8, 4)
        text = ("r1 = 7\n*(u64 *)(r10 - 8) = r1\nr2 = r10\nr2 += -8\nr1 = map_fd({fd}) ll\n"
                "call 1\nr0 = 0\nexit")
        theirs, ours = logs(text, km, um)
    assert not any("mark_precise" in line for line in theirs)
    assert ours == theirs


def test_a_constant_tail_call_key_within_the_array_is_made_precise():
    with kernel.KernelMap("prog_array", 4, 4, 4) as km:
        um = Map.create("prog_array", 4, 4, 4)
        text = "r2 = map_fd({fd}) ll\nr3 = 1\ncall 12\nr0 = 0\nexit"
        theirs, ours = logs(text, km, um)
    assert any("regs=r3" in line for line in theirs)
    assert ours == theirs


@pytest.mark.parametrize("tail", ["r0 = 0\nexit", "r0 = r6\nexit"], ids=["r6-dead", "r6-live"])
def test_a_jump_narrows_only_the_linked_registers_live_there(tail):
    # collect_linked_regs reads live_regs_before: a dead copy keeps its bounds
    theirs, ours = logs("call 7\nr6 = r0\nr9 = r0\nr0 = 0\nif r9 == 0 goto +1\nr0 = 0\n" + tail)
    assert ours == theirs
