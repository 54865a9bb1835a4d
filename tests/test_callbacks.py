"""Helpers that call back into the program: ``bpf_loop`` with a static callback
(``lddw`` of a function, BPF_PSEUDO_FUNC), against the kernel: load verdicts (the
kernel's message for a callback whose return is out of range) and retvals."""
import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from bpfc import compile_object
from objdiff import same_retval, verdicts

PACKET = bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2) /
               bytes(range(1, 41)))
FLAGS = [("-O2", "-mcpu=v3"), ("-O2", "-mcpu=v4")]

SUM = """
struct ctx { struct __sk_buff *skb; __u32 sum; };

static long add_byte(__u32 i, void *data)
{
    struct ctx *c = data;
    __u8 b;
    if (bpf_skb_load_bytes(c->skb, i, &b, 1))
        return 1;
    c->sum += b;
    return 0;
}

SEC("tc") int prog(struct __sk_buff *skb)
{
    struct ctx c = { .skb = skb, .sum = 0 };
    long n = bpf_loop(%s, add_byte, &c, 0);
    return c.sum + (n << 16);
}
"""


@pytest.mark.parametrize("flags", FLAGS)
@pytest.mark.parametrize("count", ["10", "skb->len", "2000"])
def test_bpf_loop_calls_its_callback_until_it_returns_one(flags, count):
    retval = same_retval(compile_object(SUM % count, flags=flags), PACKET)
    # 2000: the call for index len(PACKET) fails to load a byte and stops the loop
    calls = {"10": 10, "skb->len": len(PACKET), "2000": len(PACKET) + 1}[count]
    assert retval >> 16 == calls


@pytest.mark.parametrize("flags, want", [("1", 0x100 - 22), ("0", 3)])
def test_bpf_loop_refuses_flags_and_returns_the_number_of_calls(flags, want):
    source = """
static long nothing(__u32 i, void *data) { return 0; }
SEC("tc") int prog(struct __sk_buff *skb) { return bpf_loop(3, nothing, 0, %s) & 0xff; }
""" % flags
    assert same_retval(compile_object(source), PACKET) == want


def test_a_callback_returning_outside_0_1_is_refused_as_the_kernel_refuses_it():
    ours, theirs = verdicts(compile_object("""
static long two(__u32 i, void *data) { return 2; }
SEC("tc") int prog(struct __sk_buff *skb) { return bpf_loop(3, two, 0, 0); }
"""))
    assert theirs is not None and "At callback return the register R0" in theirs, theirs
    assert ours is not None and theirs in ours


# --- bpf_for_each_map_elem --------------------------------------------------------------

FOR_EACH = """
struct {
    __uint(type, BPF_MAP_TYPE_%(type)s);
    __uint(max_entries, 8);
    __uint(map_flags, %(flags)s);
    __type(key, __u32);
    __type(value, __u64);
} m SEC(".maps");

struct acc { __u64 sum; __u32 stop; };

static long visit(void *map, __u32 *key, __u64 *value, struct acc *a)
{
    a->sum = a->sum * 31 + *key * 1000 + *value;
    *value += 1;
    return *key == a->stop;
}

SEC("tc") int prog(struct __sk_buff *skb)
{
    struct acc a = { .sum = 0, .stop = %(stop)s };
    __u32 k, key;
    for (k = 1; k < 6; k++) {
        __u64 v = k * 7 + skb->len;
        key = k;
        bpf_map_update_elem(&m, &key, &v, 0);
    }
    long n = bpf_for_each_map_elem(&m, visit, &a, %(call_flags)s);
    return (__u32)(a.sum << 8) | (n & 0xff);
}
"""


@pytest.mark.parametrize("map_type, flags", [("ARRAY", "0"), ("HASH", "BPF_F_ZERO_SEED"),
                                             ("LRU_HASH", "BPF_F_ZERO_SEED"),
                                             ("PERCPU_ARRAY", "0")])
@pytest.mark.parametrize("stop", ["100", "3", "skb->len & 7"])
def test_for_each_map_elem_visits_the_elements_in_the_kernels_order(map_type, flags, stop):
    source = FOR_EACH % {"type": map_type, "flags": flags, "stop": stop, "call_flags": "0"}
    same_retval(compile_object(source, flags=("-O2", "-mcpu=v3")), PACKET)


def test_for_each_map_elem_refuses_flags():
    source = FOR_EACH % {"type": "ARRAY", "flags": "0", "stop": "100", "call_flags": "1"}
    assert same_retval(compile_object(source), PACKET) & 0xFF == 0x100 - 22


def test_for_each_map_elem_refuses_a_map_without_element_callbacks_as_the_kernel_does():
    ours, theirs = verdicts(compile_object("""
struct {
    __uint(type, BPF_MAP_TYPE_LPM_TRIE);
    __uint(max_entries, 8);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, __u64);
    __type(value, __u64);
} m SEC(".maps");

static long visit(void *map, __u64 *key, __u64 *value, void *ctx) { return 0; }

SEC("tc") int prog(struct __sk_buff *skb)
{
    return bpf_for_each_map_elem(&m, visit, 0, 0);
}
"""))
    assert theirs is not None and "callback function not allowed for map" in theirs, theirs
    assert ours is not None and theirs in ours, (ours, theirs)


LOOP_RAW = """r1 = 4
r2 = func(6) ll
r3 = 0
r4 = 0
call loop
r0 = 0
exit
r0 = 0
exit"""


def test_a_callback_in_a_program_without_btf_function_info_is_refused_as_the_kernel_refuses_it():
    """check_ld_imm: the lddw of a callback needs BTF function info (raw instructions
    have none): ``missing btf func_info``, EINVAL."""
    from pyebpf import Program, asm, errors, isa, kernel
    cls = isa.ProgType.BPF_PROG_TYPE_SCHED_CLS
    with pytest.raises(errors.KernelError) as theirs:
        with kernel.KernelProgram(asm.assemble(LOOP_RAW), cls):
            pass
    assert "missing btf func_info" in str(theirs.value)
    with pytest.raises(errors.VerifierError) as ours:
        Program.from_asm(LOOP_RAW, cls)
    assert str(ours.value).endswith("missing btf func_info")
    assert (ours.value.pc, ours.value.errno) == (1, theirs.value.errno)


def test_a_callback_with_btf_function_info_is_verified():
    from pyebpf import Program, isa
    Program.from_asm(LOOP_RAW, isa.ProgType.BPF_PROG_TYPE_SCHED_CLS, func_info=True)


# bpf_loop_iter_limit_ok/_overflow and _nested of the 6.12 selftests
# (verifier_iterating_callbacks.c): a counter the callback increments indexes a
# two-byte array after the loop, so it must stay precise through the callback
ITER_LIMIT = """
char choice_arr[2];
struct num_context { __u64 i; };

static int count(__u32 idx, struct num_context *ctx) { ctx->i++; return 0; }

SEC("tc") int prog(struct __sk_buff *skb)
{
    struct num_context ctx = { .i = 0 };
    bpf_loop(%d, count, &ctx, 0);
    return choice_arr[ctx.i];
}
"""


def test_a_counter_a_bpf_loop_callback_increments_is_not_widened_when_it_indexes():
    """Found by the 6.12 selftests (bpf_loop_iter_limit_ok, refused here while
    precision was not tracked through callbacks and every changed scalar was widened):
    the count 1 is precise, so the callback runs at most once (callback_depth) and the
    index is 0 or 1."""
    data = compile_object(ITER_LIMIT % 1)
    assert verdicts(data) == (None, None)


def test_a_counter_a_bpf_loop_callback_increments_past_the_array_is_refused():
    """bpf_loop_iter_limit_overflow: two calls make the index 2."""
    ours, theirs = verdicts(compile_object(ITER_LIMIT % 2))
    assert theirs == "R1 min value is outside of the allowed memory range"
    assert ours is not None and ours.endswith(
        "invalid access to map value, value_size=2 off=2 size=1; " + theirs), ours


def test_nested_bpf_loop_callbacks_each_visited_once_give_the_kernels_retval():
    """bpf_loop_iter_limit_nested: a callback calling bpf_loop twice; refused here as
    too complex before callback_depth."""
    data = compile_object("""
char choice_arr[2];
struct num_context { __u64 i; };

static int level2a(__u32 idx, struct num_context *ctx) { ctx->i += 100; return 0; }
static int level2b(__u32 idx, struct num_context *ctx) { ctx->i += 10; return 0; }
static int level1(__u32 idx, struct num_context *ctx)
{
    ctx->i += 1;
    bpf_loop(1, level2a, ctx, 0);
    bpf_loop(1, level2b, ctx, 0);
    return 0;
}

SEC("tc") int prog(struct __sk_buff *skb)
{
    struct num_context ctx1 = { .i = 0 }, ctx2 = { .i = 0 };
    __u64 a, b, c;

    bpf_loop(1, level1, &ctx1, 0);
    bpf_loop(1, level1, &ctx2, 0);
    a = ctx1.i;
    b = ctx2.i;
    c = choice_arr[(a + b) % 2];
    c /= 10;
    if (a != 0 && a != 1 && a != 11 && a != 101 && a != 111 &&
        b != 0 && b != 1 && b != 11 && b != 101 && b != 111)
        asm volatile ("r0 /= 0;" ::: "r0");
    return 1000 * a + b + c;
}
""")
    assert same_retval(data, PACKET) == 111111


def test_a_kfunc_numbered_as_bpf_tail_call_in_a_callback_is_no_tail_call():
    """A callback calling bpf_dynptr_size (pyebpf's kfunc 12, bpf_tail_call's helper
    number) is verified like the kernel's: only a helper call is a tail call
    (check_max_stack_depth; pyebpf refused it as "callback unexpected regs 1")."""
    source = """
extern __u32 bpf_dynptr_size(const struct bpf_dynptr *p) __ksym;
extern int bpf_dynptr_from_skb(struct __sk_buff *s, __u64 flags,
                               struct bpf_dynptr *p) __ksym;

static long size_of(__u32 i, void *data)
{
    return bpf_dynptr_size(data) & 1;
}

SEC("tc") int prog(struct __sk_buff *skb)
{
    struct bpf_dynptr d;

    bpf_dynptr_from_skb(skb, 0, &d);
    return bpf_loop(2, size_of, &d, 0) & 1;
}
"""
    ours, theirs = verdicts(compile_object(source, flags=("-O2", "-mcpu=v3")))
    assert (ours, theirs) == (None, None), (ours, theirs)
