"""Pruning rules of 6.18's is_state_visited / states_equal, each on a small program
whose level-2 log (the lines compared as tests/test_verifier_log_level2.py compares
them) shows where the kernel prunes; the kernel the expected value."""
from __future__ import annotations

from test_verifier_log_level2 import logs


def test_a_stack_slot_never_written_on_this_path_matches_an_imprecise_spilled_scalar():
    """stacksafe: a slot of the current frame's allocated stack that this path never
    wrote loads as any number (allow_uninit_stack: scalar_reg_for_stack), so an
    explored state's imprecise spilled scalar there prunes it; found on cilium's
    tail_nodeport_rev_dnat_ipv4, which pyebpf explored 1.69x as far as the kernel."""
    text = ("r6 = r1\ncall 7\nr7 = r0\nif r0 == 0 goto +5\n"
            "r1 = 42\n*(u64 *)(r10 - 8) = r1\n*(u64 *)(r10 - 16) = 0\nr8 = 1\ngoto +2\n"
            "*(u64 *)(r10 - 16) = 0\nr8 = 1\n"
            "r2 = *(u64 *)(r10 - 8)\nr3 = *(u64 *)(r10 - 16)\nr0 = r7\nr0 &= 1\n"
            "if r0 == 0 goto +1\nr0 = 1\nexit")
    theirs, ours = logs(text)
    assert any(line.endswith(": safe") for line in theirs), theirs
    assert ours == theirs

