"""may_goto (opcode 0xe5), as libbpf's bpf_experimental.h ``can_loop`` emits it: a loop
bounded only by it loads and runs as in the kernel; its budget is BPF_MAX_LOOPS per
frame (the kernel's rewrite in do_misc_fixups)."""


import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

import pyebpf
import pyebpf.kernel
from pyebpf import isa
from pyebpf.pcap import pcapio, tcsim
from pyebpf.pcap.report import read_line

from bpfc import compile_object
from objdiff import program_retvals, same_retval, verdicts
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


# a function with a can_loop loop of n iterations
SPIN = """
static __attribute__((noinline)) unsigned int spin(unsigned int n) {
    unsigned int i, s = 0;
    for (i = 0; i < n && can_loop; i++)
        s += i;
    return s;
}
"""
# spin() with len << 16 iterations (the packet's bound: the verifier widens the
# counter), called len >> 4 times from a can_loop loop of the main body (one call
# site: two would make the kernel explore past its million instructions)
CALLED = SPIN + """SEC("tc") int prog(struct __sk_buff *skb) {
    unsigned int n = skb->len << 16, m = skb->len >> 4, s = 0, j;
    for (j = 0; j < m && can_loop; j++)
        s += spin(n);
    return s;
}
"""


def test_a_can_loop_function_called_many_times_gives_the_kernels_retval():
    """Six calls of 6,684,672 iterations, 240 million instructions: past the budget of
    a program of 26 instructions (1,000,000 + BPF_MAX_LOOPS x 26), which stopped it
    here while it was fixed once per run; the kernel refills the counter in every
    call's prologue, and the budget grows by as much at every frame entry."""
    data = compile_object(CAN_LOOP + CALLED, flags=("-O2", "-mcpu=v3"))
    n = len(PACKET) << 16
    calls = len(PACKET) >> 4
    assert same_retval(data, PACKET) == calls * (n * (n - 1) // 2) & 0xFFFFFFFF


def test_a_budget_given_to_run_does_not_grow_at_frame_entries():
    # the default budget itself, passed explicitly: a hard cap the six calls exceed
    data = compile_object(CAN_LOOP + CALLED, flags=("-O2", "-mcpu=v3"))
    obj = pyebpf.load(data, pin=False)
    try:
        prog = obj.program("prog")
        with pytest.raises(pyebpf.errors.BudgetExceeded, match=f"budget of {prog.budget} "):
            prog.run(PACKET, budget=prog.budget)
    finally:
        obj.close()


def test_a_bpf_loop_callback_with_a_can_loop_loop_gives_the_kernels_retval():
    """Twelve callbacks of 6,684,672 iterations, 481 million instructions: each
    callback's frame has a fresh counter, and the budget (252 million for this program
    of 30 instructions) grows by as much at every callback."""
    data = compile_object(CAN_LOOP + """
struct ctx { unsigned int n, s; };
static long cb(unsigned int j, struct ctx *c) {
    unsigned int i, n = c->n, s = 0;
    for (i = 0; i < n && can_loop; i++)
        s += i;
    c->s += s;
    return 0;
}
SEC("tc") int prog(struct __sk_buff *skb) {
    struct ctx c = {skb->len << 16, 0};
    bpf_loop(skb->len >> 3, cb, &c, 0);
    return c.s;
}
""", flags=("-O2", "-mcpu=v3"))
    n = len(PACKET) << 16
    calls = len(PACKET) >> 3
    assert same_retval(data, PACKET) == calls * (n * (n - 1) // 2) & 0xFFFFFFFF


def test_tcsims_report_counts_a_may_goto_programs_instructions_as_run_does(
        tmp_path, monkeypatch, capsys):
    """Frame entries grant a may_goto program budget (vm.granted): the replay's count
    takes it into account as Program.run's insn_count does, where before the merge of
    the growing budget it would have wrapped below zero."""
    data = compile_object(CAN_LOOP + SPIN + """SEC("tc") int prog(struct __sk_buff *skb) {
    unsigned int m = skb->len >> 4, s = 0, j;
    for (j = 0; j < m && can_loop; j++)
        s += spin(skb->len);
    return s & 1;
}
""", flags=("-O2", "-mcpu=v3"))
    (tmp_path / "prog.o").write_bytes(data)
    pcapio.write(tmp_path / "in.pcap", [(0, PACKET, len(PACKET))])
    monkeypatch.chdir(tmp_path)
    assert tcsim.main(["prog.o", "-r", "in.pcap", "--report", "report.jsonl"]) == 0
    capsys.readouterr()
    [line] = (tmp_path / "report.jsonl").read_text().splitlines()
    obj = pyebpf.load(data, pin=False)
    try:
        expected = obj.program("prog").run(PACKET).insn_count
    finally:
        obj.close()
    assert read_line(line)["instructions"] == expected


def test_a_can_loop_program_tail_calling_itself_gets_a_fresh_counter_in_each_call():
    """Sixteen runs of the program through its own tail calls, each looping 6,684,672
    times: more than the budget of one program of its length, which stops only if a
    tail call does not grant a fresh may_goto counter (the kernel's is set in every
    program's prologue)."""
    data = compile_object(CAN_LOOP + """
int prog(struct __sk_buff *skb);
struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, 1);
    __uint(key_size, sizeof(__u32));
    __array(values, int (void *));
} jmp SEC(".maps") = { .values = { [0] = (void *)&prog } };
SEC("tc") int prog(struct __sk_buff *skb) {
    unsigned int n = skb->len << 16, i, s = 0;
    for (i = 0; i < n && can_loop; i++)
        s += i;
    skb->cb[0] += s;
    skb->cb[1] += 1;
    if (skb->cb[1] < 16)
        bpf_tail_call(skb, &jmp, 0);
    return skb->cb[1] * 1000 + (skb->cb[0] & 0xff);
}
char _license[] SEC("license") = "GPL";
""", flags=("-O2", "-mcpu=v3"))
    ours, theirs = program_retvals(data, PACKET)
    assert ours == theirs
    assert theirs[0] // 1000 == 16
    obj = pyebpf.load(data, pin=False)
    try:
        prog = obj.program("prog")
        ungranted = 1_000_000 + isa.BPF_MAX_LOOPS * (len(prog.insns) // isa.INSN_SIZE)
        assert prog.run(PACKET).insn_count > ungranted
    finally:
        obj.close()
