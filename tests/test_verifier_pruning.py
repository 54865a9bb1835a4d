"""Pruning rules of 6.18's is_state_visited / states_equal, each on a small program
whose level-2 log (the lines compared as tests/test_verifier_log_level2.py compares
them) shows where the kernel prunes; the kernel the expected value."""
from __future__ import annotations

import re

from pyebpf import Map, isa, kernel
from pyebpf.kernel.vmlinux import kfunc_btf_id
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


def _with_kfuncs(text: str) -> tuple[str, str]:
    """``text`` with each ``KFUNC(name)`` the kernel's BTF id of it, and pyebpf's."""
    def fill(kfunc_id):
        return re.sub(r"KFUNC\((\w+)\)", lambda m: f"kfunc {kfunc_id(m[1])}", text)
    return fill(lambda name: kfunc_btf_id(name, 0)), fill(lambda name: isa.KFUNC_IDS[name])


def test_dynptr_slices_over_different_stack_buffers_are_not_equivalent():
    """regsafe compares a PTR_TO_MEM's bytes before var_off whole (memcmp), the slice's
    buffer among them: a path whose slice was copied into another stack buffer is not
    pruned by the first path's checkpoint (pyebpf ignored the buffer)."""
    slice_ = "r1 = r10\nr1 += -16\nr2 = 0\nr4 = 8\ncall KFUNC(bpf_dynptr_slice)\n"
    # enough jumps and instructions on the first path for a checkpoint at the join
    filler = "if r6 == 0 goto +0\n" * 2 + "r8 = 1\n" * 8
    theirs_text, ours_text = _with_kfuncs(
        "r6 = r1\nr2 = 0\nr3 = r10\nr3 += -16\ncall KFUNC(bpf_dynptr_from_skb)\n"
        "call 7\nif r0 == 0 goto +18\n"
        "r3 = r10\nr3 += -32\n" + slice_ + filler + "goto +7\n"
        "r3 = r10\nr3 += -48\n" + slice_ +
        "r7 = 0\nif r0 == 0 goto +1\nr7 = *(u8 *)(r0 + 0)\nr0 = r7\nexit")
    theirs, ours = logs(theirs_text, ours_text=ours_text)
    assert any("buf=fp[0]-48+8" in line for line in theirs), theirs
    assert ours == theirs


SKB_DYNPTR_AT_16 = "r1 = r6\nr2 = 0\nr3 = r10\nr3 += -16\ncall KFUNC(bpf_dynptr_from_skb)\n"
SLICE_OF_16_TO_R7 = ("r1 = r10\nr1 += -16\nr2 = 0\nr3 = 0\nr4 = 8\n"
                     "call KFUNC(bpf_dynptr_slice)\nr7 = r0\n")
# enough jumps and instructions on the first path for a checkpoint at the join
FILLER = "if r6 == 0 goto +0\n" * 2 + "r8 = 1\n" * 8
READ_R7 = "join:\nr0 = 0\nif r7 == 0 goto +1\nr0 = *(u8 *)(r7 + 0)\nexit"


def test_dynptr_slices_of_two_dynptrs_are_not_equivalent():
    """check_kfunc_call gives a slice its dynptr's id (dynptr_id), which regsafe's memcmp
    of a PTR_TO_MEM compares: paths that each made their own dynptr and sliced it do not
    prune each other at the join (pyebpf's kfunc slices had no dynptr_id, and pruned)."""
    theirs_text, ours_text = _with_kfuncs(
        "r6 = r1\ncall 7\nif r0 == 0 goto b\n" + SKB_DYNPTR_AT_16 + SLICE_OF_16_TO_R7 +
        FILLER + "goto join\nb:\n" + SKB_DYNPTR_AT_16 + SLICE_OF_16_TO_R7 + READ_R7)
    theirs, ours = logs(theirs_text, ours_text=ours_text)
    assert sum(line.startswith("38: (b7) r0 = 0") for line in theirs) == 2, theirs
    assert ours == theirs


def test_dynptr_slices_of_one_dynptr_on_two_paths_are_equivalent():
    """Slices of the same dynptr taken on two paths have the same dynptr_id (and ids
    regsafe maps one to the other): the second path is pruned at the join."""
    theirs_text, ours_text = _with_kfuncs(
        "r6 = r1\n" + SKB_DYNPTR_AT_16 + "call 7\nif r0 == 0 goto b\n" + SLICE_OF_16_TO_R7 +
        FILLER + "goto join\nb:\n" + SLICE_OF_16_TO_R7 + READ_R7)
    theirs, ours = logs(theirs_text, ours_text=ours_text)
    assert "33: safe" in theirs, theirs
    assert ours == theirs


def test_a_packet_pointer_known_beyond_pkt_end_prunes_only_another_known_beyond():
    """regsafe: a packet pointer's range must cover the old one's, but a pointer known to
    lie beyond pkt_end (BEYOND_PKT_END, printed r=0xfffffffffffffffe) or at it matches
    only the same: a path whose pointer was checked (r=14) is not pruned by a checkpoint
    where it was beyond, which pyebpf compared as the number -2 and pruned; found on
    cilium's tail_nodeport_nat_egress_ipv6 (11,569 instructions processed, the kernel's
    11,626)."""
    theirs, ours = logs(
        "r6 = r1\ncall 7\nr7 = r0\nr2 = *(u32 *)(r6 + 76)\nr3 = *(u32 *)(r6 + 80)\n"
        "r1 = r2\nr1 += 14\nif r7 == 0 goto checked\n"
        "if r1 > r3 goto beyond\nr0 = 0\nexit\n"
        "beyond:\n" + "r8 = 1\n" * 8 + "goto join\n"
        "checked:\nif r1 > r3 goto out\n" + "r8 = 1\n" * 8 +
        "join:\nif r1 > r3 goto out\nr0 = *(u8 *)(r1 - 1)\n"
        "out:\nr0 = 0\nexit")
    assert any(line.startswith("30: (71) r0 = *(u8 *)(r1 -1)") for line in theirs), theirs
    assert ours == theirs


def test_a_socket_of_a_socket_map_does_not_prune_one_of_a_socket_lookup():
    """A SOCKHASH lookup's socket keeps the map in map_ptr (mark_ptr_or_null_reg), which
    regsafe's memcmp compares: at the release both paths reach, the socket
    bpf_sk_lookup_tcp found is not pruned by the map's socket's checkpoint (pyebpf
    dropped the map and pruned; OpenTelemetry eBPF Instrumentation's tctracer, 8
    instructions fewer than the kernel's)."""
    text = ("r6 = r1\ncall 7\nif r0 == 0 goto b\n"
            "r1 = 0\n*(u32 *)(r10 - 4) = r1\nr1 = map_fd({fd}) ll\nr2 = r10\nr2 += -4\n"
            "call 1\nif r0 == 0 goto out\n" + "if r6 == 0 goto +0\n" * 2 + "r8 = 1\n" * 8 +
            "r1 = r0\ngoto join\n"
            "b:\nr1 = 0\n*(u64 *)(r10 - 40) = r1\n*(u32 *)(r10 - 32) = r1\nr1 = r6\n"
            "r2 = r10\nr2 += -40\nr3 = 12\nr4 = -1\nr5 = 0\ncall 84\nif r0 == 0 goto out\n"
            "r1 = r0\njoin:\ncall 86\nout:\nr0 = 0\nexit")
    with kernel.KernelMap("sockhash", 4, 4, 1) as theirs_map:
        our_map = Map.create("sockhash", 4, 4, 1)
        try:
            theirs, ours = logs(text, theirs_map, our_map)
        finally:
            our_map.close()
    release = [line for line in theirs if re.match(r"^\d+: \(85\) call bpf_sk_release", line)]
    assert len(release) == 2, theirs       # each path goes through the release
    assert ours == theirs
