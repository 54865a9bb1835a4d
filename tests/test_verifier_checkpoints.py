"""Where the verifier stores states and which stored states a path is compared with
(the kernel's is_state_visited): the kernel keeps them in lists by instruction and
the current function's call site (explored_state), and stores one wherever a path's
history since its last state has grown past 40 entries (force_new_state).  Neither
changes a verdict; both change how much is explored, so the kernel's processed
instructions and total states (its BPF_LOG_STATS line) are the expected values."""
from __future__ import annotations

import pytest

from bpfc import compile_object
from pyebpf import kernel, load
from pyebpf.verifier import reg, state
from recorded_kernel import count_comparison
from test_verifier_precision import kernel as kernel_verdict
from test_verifier_precision import ours
from verifier_counts import count_verifications, kernel_counts


def calls_in_a_row(n: int) -> str:
    """``n`` calls of one static function of straight-line code, each behind a branch
    out of the program: the state stored at the function's entry by the first call is
    still being explored when the next calls reach it."""
    lines = ["r6 = r1", "r7 = *(u32 *)(r6 + 0)", "r9 = 0"]
    for i in range(n):
        lines += [f"if r7 > {i} goto out", "r2 = r9", "r2 = r9", "r2 = r9", "r2 = r9",
                  "r1 = r7", "r1 += r9", "call f", "*(u32 *)(r6 + 8) = r0", "r9 += 1"]
    body = ["r0 = r1"] + ["r0 *= 3"] * 30
    return "\n".join(lines + ["out:", "r0 = 0", "exit", "f:"] + body + ["exit"])


def test_a_static_function_called_from_other_sites_keeps_their_states_apart():
    """At the entry of a function called from another site, an open state of the
    first call is not in the list looked at, so it does not hold back a new one."""
    text = calls_in_a_row(5)
    assert ours(text) == kernel_verdict(text)


def spills_after_a_join(n: int) -> str:
    """Two paths join (their r8 a context or a stack pointer, read after the join), then
    ``n`` spills and a single jump to the next instruction, where nothing live differs."""
    lines = ["r6 = r1", "call 7", "r7 = r0", "r8 = r6"] + ["r0 = 0"] * 4 + \
        ["if r7 > 100 goto +1", "r8 = r10", "r9 = r8"]
    return "\n".join(lines + ["*(u64 *)(r10 - 8) = r6"] * n + ["goto +0", "r0 = 0", "exit"])


def test_a_path_with_more_than_40_history_entries_stores_a_state_at_its_next_prune_point():
    """After the join's state, 45 spills and one jump: too few jumps for a new state,
    but the history is long, so one is stored where the jump lands, and the second
    path ends there."""
    text = spills_after_a_join(45)
    assert ours(text) == kernel_verdict(text)



def stack_pointer_join(first: str, second: str) -> str:
    """r1 = fp-16; the branch's fall-through (explored first) runs ``first`` on r1, the
    jump ``second``; after the join, enough instructions and jumps for a state there,
    then a load through r1 (``r2`` is skb->len & 8, so ``r1 += r2`` is fp-16 plus 0 or 8)."""
    return "\n".join([
        "r6 = r1", "r7 = *(u32 *)(r6 + 0)", "*(u64 *)(r10 - 16) = 0",
        "*(u64 *)(r10 - 8) = 0", "r1 = r10", "r1 += -16", "r2 = r7", "r2 &= 8",
        "if r7 > 100 goto other", first, "goto join", "other:", second, "join:",
        *["r3 = 0"] * 8, "goto +0", "goto +0", "goto +0",
        "r0 = *(u64 *)(r1 + 0)", "r0 = 0", "exit"])


def test_a_stack_pointer_within_a_stored_ones_range_does_not_prune():
    """regsafe compares stack pointers exactly (regs_exact): fp-16 after a join does
    not end the path whose stored state had fp-16 plus a variable 0..8 there."""
    text = stack_pointer_join("r1 += r2", "r0 = 0")
    assert ours(text) == kernel_verdict(text)


def test_the_same_stack_pointer_after_a_join_prunes():
    text = stack_pointer_join("r1 += 8", "r1 += 8")
    assert ours(text) == kernel_verdict(text)


def scalars_after_a_join(first: str, second: str) -> str:
    """r7 is skb->len & 7; the branch's fall-through (explored first) sets r8 by
    ``first``, the jump by ``second``; after the join, enough instructions and jumps
    for a state there, then r7 and r8 each offset a stack pointer (precise: the join's
    state compares them by range and by link)."""
    return "\n".join([
        "r6 = r1", "*(u64 *)(r10 - 16) = 0", "*(u64 *)(r10 - 8) = 0",
        "r7 = *(u32 *)(r6 + 0)", "r7 &= 7", "r9 = *(u32 *)(r6 + 4)",
        "if r9 == 0 goto other", first, "goto join", "other:", second, "join:",
        *["r3 = 0"] * 8, "goto +0", "goto +0",
        "r1 = r10", "r1 += -16", "r1 += r7", "r0 = *(u8 *)(r1 + 0)",
        "r1 = r10", "r1 += -16", "r1 += r8", "r0 = *(u8 *)(r1 + 0)",
        "r0 = 0", "exit"])


UNLINKED = "r8 = *(u32 *)(r6 + 8)\nr8 &= 7"      # skb->mark & 7: a value of its own
LINKED = "r8 = r7"                                # r7's copy: both get one id


def test_an_unlinked_old_scalar_matches_a_linked_current_one():
    """check_scalar_ids as 6.18-stable has it: a precise scalar the stored state had
    unlinked relied on no link, so the current state's r8 linked to r7 (a copy)
    within its range prunes the path."""
    text = scalars_after_a_join(UNLINKED, LINKED)
    assert ours(text) == kernel_verdict(text)


def test_a_linked_old_scalar_does_not_match_unlinked_current_ones():
    """The other way: the stored state proved safe r7 and r8 equal; the current
    state's r7 and r8, each unlinked, get an id each and cannot both map to the
    stored link, so the path is explored on."""
    text = scalars_after_a_join(LINKED, UNLINKED)
    assert ours(text) == kernel_verdict(text)


HASH_STEPS = r'''
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* a hash of 16 bytes in straight-line code: no branch inside */
static __attribute__((noinline)) __u32 mix16(const __u32 *p, __u32 seed)
{
	__u32 a = seed ^ p[0], b = p[1] + seed, c = p[2] ^ 0x9e3779b9, d = p[3];

	a -= c; a ^= (c << 4) | (c >> 28); c += b;
	b -= a; b ^= (a << 6) | (a >> 26); a += c;
	c -= b; c ^= (b << 8) | (b >> 24); b += a;
	a ^= d; a -= (d << 14) | (d >> 18);
	return a ^ b ^ c;
}

SEC("tc")
int hash_steps(struct __sk_buff *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	int i = 0;

#define STEP do { \
		if (data + i + 16 > data_end) \
			break; \
		ctx->tc_index = mix16(data + i, ctx->cb[0] + i); \
		i++; \
	} while (0);
	STEP STEP STEP STEP STEP STEP
	return 0;
}
char _license[] SEC("license") = "GPL";
'''


@pytest.mark.kernel
def test_a_hash_function_called_over_the_packet_explores_as_the_kernel(monkeypatch):
    """The shape of the selftest test_verif_scale3 (a non-inlined hash function
    called over the packet, one byte further each time) at 6 calls: its processed
    instructions and states are the kernel's (at 90 calls the kernel processes
    837,487, pyebpf the same since states are kept per call site)."""
    obj = compile_object(HASH_STEPS, prelude=False)
    count_comparison()
    with kernel.load_object(obj) as ko:
        theirs = [kernel_counts(p.verifier_log) for p in ko.programs.values()]
    mine = count_verifications(monkeypatch)
    load(obj, pin=False).close()
    assert mine == theirs


def test_the_compiled_register_comparison_uses_the_states_type_numbers():
    """reg.pyx compares registers with its own copies of state.pyx's register types and
    scalar id flags (a compiled module cannot import state.pyx, which imports it)."""
    assert reg.CONSTANTS == {name: getattr(state, name) for name in reg.CONSTANTS}


def _entry_state() -> state.VState:
    """A program's first state: R1 the context, R10 the frame pointer (interp.run's)."""
    st, fr = state.VState(), state.Frame(-1, 0, 0)
    fr.regs[1].type, fr.regs[10].type = state.PTR_TO_CTX, state.PTR_TO_STACK
    fr.regs[1].mark_known(0)
    fr.regs[10].mark_known(0)
    st.frames.append(fr)
    return st


def test_a_states_copy_has_an_equal_signature_of_equal_hash():
    """signature, the key an exact repeat is looked up by: a copy of a state finds
    the original's entry (the key's hash is computed once and kept)."""
    st = _entry_state()
    original, copied = state.signature(st, [(1, 10)]), state.signature(st.copy(), [(1, 10)])
    assert (copied == original, hash(copied) == hash(original)) == (True, True)
    assert {original: "entry"}.get(copied) == "entry"


def test_a_live_registers_change_changes_the_signature_but_a_dead_ones_does_not():
    """signature looks at the registers live there, and only at those."""
    st, changed = _entry_state(), _entry_state()
    changed.frames[0].regs[1].mark_known(8)
    assert state.signature(changed, [(1, 10)]) != state.signature(st, [(1, 10)])
    assert state.signature(changed, [(10,)]) == state.signature(st, [(10,)])
