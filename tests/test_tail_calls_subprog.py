"""bpf_tail_call from a subprogram, against the kernel: the tail-called program replaces
the calling subprogram's frame only, and its return value comes back to that
subprogram's caller, whose registers and stack are as they were (the x86-64 JIT's tail
call unwinds one frame; the verifier allows it in subprograms with BTF whose callers'
frames stay under 256 bytes: check_max_stack_depth_subprog)."""
import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

import pyebpf
import pyebpf.kernel
from bpfc import compile_object
from objdiff import assert_refused_alike, program_retvals, verdicts
from recorded_kernel import count_comparison

PACKET = bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2) /
               bytes(range(1, 41)))

# a program array whose slot 0 holds ``target`` and slot 1 ``second``
JMP = """
struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, 3);
    __uint(key_size, sizeof(__u32));
    __array(values, int (void *));
} jmp SEC(".maps") = { .values = { [0] = (void *)&target, [1] = (void *)&second } };
"""


def _object(source: str) -> bytes:
    return compile_object(source + '\nchar _license[] SEC("license") = "GPL";\n',
                          flags=("-O2", "-mcpu=v3"))


def _retvals(source: str) -> tuple[int, int]:
    """(pyebpf's retval, the kernel's) of ``prog`` in an object of several programs."""
    (ours,), (theirs,) = program_retvals(_object(source), PACKET)
    return ours, theirs


TARGETS = """
SEC("tc") int second(struct __sk_buff *skb) { return 5; }
SEC("tc") int target(struct __sk_buff *skb) { return 16; }
"""


@pytest.mark.parametrize("linkage", ["static", ""], ids=["static", "global"])
def test_the_tail_called_program_returns_to_the_subprograms_caller(linkage):
    ours, theirs = _retvals(TARGETS + JMP + f"""
{linkage} __noinline int sub(struct __sk_buff *skb) {{
    bpf_tail_call(skb, &jmp, 0);
    return skb->mark + 1;
}}
SEC("tc") int prog(struct __sk_buff *skb) {{ return sub(skb) + 8; }}
""")
    assert ours == theirs == 24


def test_a_failed_tail_call_in_a_subprogram_goes_on_in_the_subprogram():
    ours, theirs = _retvals(TARGETS + JMP + """
static __noinline int sub(struct __sk_buff *skb) {
    bpf_tail_call(skb, &jmp, 2);
    return skb->mark + 1;
}
SEC("tc") int prog(struct __sk_buff *skb) { return sub(skb) + 8; }
""")
    assert ours == theirs == 9


def test_the_callers_registers_and_stack_survive_the_tail_call():
    ours, theirs = _retvals(TARGETS + JMP + """
static __noinline int sub(struct __sk_buff *skb) {
    bpf_tail_call(skb, &jmp, 0);
    return skb->mark + 1;
}
SEC("tc") int prog(struct __sk_buff *skb) {
    volatile __u32 kept[4] = { skb->len, 3, 5, 7 };
    __u32 len = skb->len, proto = skb->protocol;
    int r = sub(skb);
    return r + kept[0] * 100 + kept[1] + kept[2] + kept[3] + (len ^ proto) * 10000;
}
""")
    assert ours == theirs


def test_a_tail_call_two_calls_deep_returns_to_the_inner_caller():
    ours, theirs = _retvals(TARGETS + JMP + """
static __noinline int inner(struct __sk_buff *skb) {
    bpf_tail_call(skb, &jmp, 0);
    return skb->mark + 1;
}
static __noinline int outer(struct __sk_buff *skb) { return inner(skb) * 2 + skb->mark; }
SEC("tc") int prog(struct __sk_buff *skb) { return outer(skb) + 8; }
""")
    assert ours == theirs == 40


def test_a_tail_called_program_may_tail_call_from_its_own_subprogram():
    ours, theirs = _retvals("""
SEC("tc") int second(struct __sk_buff *skb) { return 5; }
int target(struct __sk_buff *skb);
""" + JMP + """
static __noinline int hop(struct __sk_buff *skb) {
    bpf_tail_call(skb, &jmp, 1);
    return skb->mark + 100;
}
SEC("tc") int target(struct __sk_buff *skb) { return hop(skb) * 3; }
static __noinline int sub(struct __sk_buff *skb) {
    bpf_tail_call(skb, &jmp, 0);
    return skb->mark + 1;
}
SEC("tc") int prog(struct __sk_buff *skb) { return sub(skb) + 8; }
""")
    assert ours == theirs == 23


def test_a_tail_call_from_the_main_body_of_a_program_tail_called_from_a_subprogram():
    ours, theirs = _retvals("""
SEC("tc") int second(struct __sk_buff *skb) { return 5; }
int target(struct __sk_buff *skb);
""" + JMP + """
SEC("tc") int target(struct __sk_buff *skb) {
    bpf_tail_call(skb, &jmp, 1);
    return skb->mark + 100;
}
static __noinline int sub(struct __sk_buff *skb) {
    bpf_tail_call(skb, &jmp, 0);
    return skb->mark + 1;
}
SEC("tc") int prog(struct __sk_buff *skb) { return sub(skb) + 8; }
""")
    assert ours == theirs == 13


CALLBACK = """
SEC("tc") int second(struct __sk_buff *skb) { return 0; }
SEC("tc") int target(struct __sk_buff *skb) { return 1; }
""" + JMP + """
static __noinline int sub(struct __sk_buff *skb) {
    bpf_tail_call(skb, &jmp, 0);
    return skb->mark & 1;
}
static int step(__u32 i, struct __sk_buff **ctx) {
    %s
}
SEC("tc") int prog(struct __sk_buff *skb) {
    struct __sk_buff *arg = skb;
    return bpf_loop(10, step, &arg, 0) + 40;
}"""


def test_a_function_a_callback_calls_may_not_tail_call():
    assert_refused_alike(*verdicts(_object(CALLBACK % (
        "int r = sub(*ctx);\n    asm volatile(\"\" : \"+r\"(r));\n    return r ? 1 : 0;"))),
                         "cannot tail call within callback")


def test_a_tail_call_in_a_callback_itself_is_refused_as_the_kernel_refuses_it():
    # the kernel's precision backtracking finds r0 wanted across the callback's return
    # into bpf_loop and reports its own bug (backtrack_insn), EFAULT: refused either way
    assert_refused_alike(*verdicts(_object(CALLBACK % (
        "bpf_tail_call(*ctx, &jmp, 0);\n    return (*ctx)->mark & 1;"))),
        "verifier bug: callback unexpected regs 1")


def test_a_subprogram_whose_callers_frames_reach_256_bytes_may_not_tail_call():
    source = TARGETS + JMP + """
static __noinline int sub(struct __sk_buff *skb) {
    bpf_tail_call(skb, &jmp, 0);
    return skb->mark + 1;
}
SEC("tc") int prog(struct __sk_buff *skb) {
    volatile char big[256];
    big[skb->len & 255] = 1;
    return sub(skb) + big[(skb->len + 1) & 255];
}
"""
    assert_refused_alike(*verdicts(_object(source)),
                         "tail_calls are not allowed when call stack of previous frames "
                         "is 256 bytes. Too large")


def test_a_throw_in_a_program_tail_called_from_a_subprogram_returns_to_its_caller():
    # bpf_stack_walker stops at the tail-called program's frame, below the function
    # that throws: the default exception callback returns the cookie from there, to the subprogram's caller, whose
    # registers and stack are as they were
    ours, theirs = _retvals("""
extern void bpf_throw(__u64 cookie) __ksym;
SEC("tc") int second(struct __sk_buff *skb) { return 5; }
static __noinline int thrower(struct __sk_buff *skb) { bpf_throw(16); return skb->mark; }
SEC("tc") int target(struct __sk_buff *skb) { return thrower(skb) + 1; }
""" + JMP + """
static __noinline int sub(struct __sk_buff *skb) {
    bpf_tail_call(skb, &jmp, 0);
    return skb->mark + 1;
}
SEC("tc") int prog(struct __sk_buff *skb) {
    volatile __u32 kept[2] = { skb->len, 3 };
    int r = sub(skb);
    return r * 1000 + kept[0] + kept[1];
}
""")
    assert ours == theirs


# the corpus's shape (6.12 selftests tailcall_bpf2bpf_hierarchy*, verifier_tailcall_jit):
# a subprogram tail-calls the program that called it, so each program runs on top of
# the frames of all those before it until the MAX_TAIL_CALL_CNT tail calls are spent
SELF = """
int prog(struct __sk_buff *skb);
struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, 1);
    __uint(key_size, sizeof(__u32));
    __array(values, int (void *));
} jmp SEC(".maps") = { .values = { [0] = (void *)&prog } };
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u32);
} runs SEC(".maps");
static __noinline int sub(struct __sk_buff *skb) {
    bpf_tail_call(skb, &jmp, 0);
    return skb->mark;
}
SEC("tc") int prog(struct __sk_buff *skb) {
    __u32 zero = 0, *n = bpf_map_lookup_elem(&runs, &zero);
    if (!n)
        return -1;
    __sync_fetch_and_add(n, 1);
    %s
}
"""


def _retval_and_runs(body: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """((pyebpf's retval, the kernel's), (pyebpf's count of programs run, the kernel's))
    of one run of ``prog`` in SELF with ``body`` after its count."""
    data = _object(SELF % body)
    obj = pyebpf.load(data)
    try:
        with pyebpf.kernel.load_object(data) as kobj:
            out = []
            for run, maps in ((obj.program("prog").run, obj.maps),
                              (kobj.program("prog").test_run, kobj.maps)):
                retval = run(PACKET).retval & 0xFFFFFFFF
                out.append((retval, int.from_bytes(maps["runs"].lookup(bytes(4)), "little")))
    finally:
        obj.close()
    count_comparison()
    (ours, our_runs), (theirs, their_runs) = out
    return (ours, theirs), (our_runs, their_runs)


def test_a_subprogram_tail_calling_its_own_program_nests_until_the_tail_calls_run_out():
    # 34 programs, each on top of the last's two frames: 68 frames, where one program
    # may have 8 (MAX_CALL_FRAMES)
    retvals, runs = _retval_and_runs("return sub(skb) + 1;")
    assert retvals == (34, 34)
    assert runs == (34, 34)


def test_each_nested_program_gets_its_callers_stack_back_when_it_returns():
    # each level adds the count it saw (1 to 34) from its stack, written before the
    # programs nested on top ran; the second call of the subprogram, after the tail
    # calls ran out, fails and adds the packet's mark, 0
    retvals, runs = _retval_and_runs("""volatile __u32 kept = *n;
    int r = sub(skb);
    return r + sub(skb) + kept;""")
    assert retvals == (595, 595)
    assert runs == (34, 34)
