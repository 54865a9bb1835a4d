"""may_goto (opcode 0xe5), as libbpf's bpf_experimental.h ``can_loop`` emits it: a loop
bounded only by it loads and runs as in the kernel; its budget is BPF_MAX_LOOPS per
frame (the kernel's rewrite in do_misc_fixups)."""

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

import pyebpf
import pyebpf.kernel
from pyebpf import isa

from bpfc import compile_object
from objdiff import same_retval, verdicts
from recorded_kernel import count_comparison
from verifier_counts import count_verifications, kernel_counts

CAN_LOOP = r"""
#define can_loop ({ __label__ l_break, l_continue; _Bool ret = 1;                 \
    asm volatile goto("may_goto %l[l_break]" :::: l_break); goto l_continue;   \
    l_break: ret = 0; l_continue:; ret; })
"""
PACKET = bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2) /
               bytes(range(60)))


@pytest.mark.parametrize("mcpu", ["-mcpu=v3", "-mcpu=v4"])
def test_a_can_loop_loop_over_the_packet_sums_its_bytes(mcpu):
    data = compile_object(CAN_LOOP + """
SEC("tc") int prog(struct __sk_buff *skb) {
    unsigned int s = 0, i = 0;
    unsigned char b;
    while (can_loop) {
        if (i >= skb->len || bpf_skb_load_bytes(skb, i, &b, 1))
            break;
        s += b;
        i++;
    }
    return s;
}
""", flags=("-O2", mcpu))
    assert same_retval(data, PACKET) == sum(PACKET)


def test_a_loop_whose_index_the_kernel_must_track_precisely_is_refused_as_too_complex():
    # i reaches packet arithmetic, so the kernel cannot widen it: every iteration is a
    # new state until its jump-sequence limit
    data = compile_object(CAN_LOOP + """
SEC("tc") int prog(struct __sk_buff *skb) {
    unsigned char *p = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
    unsigned int s = 0, i = 0;
    while (i < skb->len && can_loop) {
        if (p + i + 1 > end)
            break;
        s += p[i];
        i++;
    }
    return s;
}
""", flags=("-O2", "-mcpu=v3"))
    ours, theirs = verdicts(data)
    assert theirs == "The sequence of 8193 jumps is too complex."
    assert ours is not None and ours.endswith(theirs), ours


# the kernel's processed instructions and total states for a program of one object
def _kernel_counts(data: bytes) -> tuple[int, int]:
    with pyebpf.kernel.load_object(data) as kobj:
        (prog,) = kobj.programs.values()
        log = prog.verifier_log
    count_comparison()
    return kernel_counts(log)


def _our_counts(data: bytes, monkeypatch) -> tuple[int, int]:
    counts = count_verifications(monkeypatch)
    pyebpf.load(data, pin=False).close()
    return counts[-1]


# a loop bounded by can_loop indexing a global array: the index reaches map value
# arithmetic, so it is precise and each iteration a state of its own
# (widen_imprecise_scalars leaves precise scalars alone)
INDEXED = """
long arr[100];
SEC("tc") int prog(struct __sk_buff *skb) {
    long i;
    for (i = 0; i < 100 && can_loop; i++)
        arr[i] = i;
    return 0;
}
"""
# a sum of a constant loop: nothing decides on i but the loop, which the kernel widens
SUMMED = """
SEC("tc") int prog(struct __sk_buff *skb) {
    int i, s = 0;
    for (i = 0; i < 1000 && can_loop; i++)
        s += i;
    return s;
}
"""


@pytest.mark.parametrize("source", [INDEXED, SUMMED], ids=["indexed", "summed"])
def test_a_can_loop_loop_is_explored_with_the_kernels_instructions_and_states(
        source, monkeypatch):
    """Found by the 6.12 selftests (verifier_iterating_callbacks.c test1, refused here
    when every changed scalar was widened): precision is tracked through may_goto."""
    data = compile_object(CAN_LOOP + source, flags=("-O2", "-mcpu=v3"))
    assert _our_counts(data, monkeypatch) == _kernel_counts(data)


def test_may_goto_takes_its_jump_once_the_frames_budget_is_spent():
    # r0 counts the fall-throughs: BPF_MAX_LOOPS of them, then the jump to exit
    prog = pyebpf.Program.from_asm("""
        r0 = 0
        may_goto +2
        r0 += 1
        goto -3
        exit
    """, "sched_cls", budget=4 * isa.BPF_MAX_LOOPS + 10)
    assert prog.run(bytes(PACKET)).retval == isa.BPF_MAX_LOOPS


def test_a_can_loop_loop_longer_than_a_million_instructions_gives_the_kernels_retval():
    """len << 12 iterations (over 400,000 for this packet, four instructions each): the
    run default of 1,000,000 instructions stopped it here, where the kernel runs a
    verified may_goto loop until its counter (BPF_MAX_LOOPS) is spent.  The bound is
    the packet's, so the verifier widens the counter and the loop verifies in a few
    states."""
    data = compile_object(CAN_LOOP + """
SEC("tc") int prog(struct __sk_buff *skb) {
    unsigned int i, n = skb->len << 12, s = 0;
    for (i = 0; i < n && can_loop; i++)
        s += i;
    return s;
}
""", flags=("-O2", "-mcpu=v3"))
    n = len(PACKET) << 12
    assert same_retval(data, PACKET) == (n * (n - 1) // 2) & 0xFFFFFFFF
