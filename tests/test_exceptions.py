"""BPF exceptions: the ``bpf_throw`` kfunc and exception callbacks (libbpf's
``__exception_cb``, the ``bpf_assert*`` macros of the selftests' bpf_experimental.h),
against the kernel: load verdicts (the kernel's words for each refusal) and
BPF_PROG_TEST_RUN's retval, which after a throw is the exception callback's return
value, or the cookie's low 32 bits with the default callback."""
import errno
import re

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether


from bpfc import compile_object
from objdiff import (assert_refused_alike, level_2_logs, program_retvals, same_retval,
                     verdicts)
from recorded_kernel import count_comparison

# the declarations and macros of bpf_experimental.h (tools/testing/selftests/bpf), as
# the selftests use them
EXCEPTIONS = r"""
extern void bpf_throw(__u64 cookie) __ksym;
#define __exception_cb(name) __attribute__((btf_decl_tag("exception_callback:" #name)))
#define bpf_assert(cond) if (!(cond)) bpf_throw(0);
#define bpf_assert_with(cond, value) if (!(cond)) bpf_throw(value);
/* __bpf_assert: the comparison and the throw in one asm block, so that the verifier
   learns the bound on the path that goes on */
#define __bpf_assert(LHS, op, RHS, VAL)                                               \
    ({ (void)bpf_throw;                                                               \
       asm volatile ("if %[lhs] " op " %[rhs] goto +2; r1 = %[value]; call bpf_throw" \
                     : : [lhs] "r"(LHS), [rhs] "i"(RHS), [value] "ri"(VAL) : ); })
#define bpf_assert_range_with(LHS, BEG, END, VAL) \
    ({ __bpf_assert(LHS, ">=", BEG, VAL); __bpf_assert(LHS, "<=", END, VAL); })
"""

# the asm's call alone gives bpf_throw no BTF, which libbpf needs for an extern: the
# selftests call it from C elsewhere in the object too
C_CALL = """
__noinline int throw_from_c(__u64 c) { bpf_throw(c); return 0; }
"""

PACKET = bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2) /
               bytes(range(1, 41)))
FLAGS = [("-O2", "-mcpu=v3"), ("-O2", "-mcpu=v4")]


def _object(source: str, flags=FLAGS[0]) -> bytes:
    return compile_object(EXCEPTIONS + source + '\nchar _license[] SEC("license") = "GPL";\n',
                          flags=flags)


def _same_retval(source: str, flags=FLAGS[0], packet: bytes = PACKET) -> int:
    return same_retval(_object(source, flags), packet)


def _refused_alike(source: str, message: str) -> None:
    assert_refused_alike(*verdicts(_object(source)), message)


# --- the default exception callback: the program returns the cookie ------------------

@pytest.mark.parametrize("flags", FLAGS)
@pytest.mark.parametrize("cookie, want", [(0, 0), (5, 5), (0x1_0000_0007, 7),
                                          (0xFFFFFFFF, 0xFFFFFFFF)])
def test_a_throw_in_the_main_program_returns_the_cookies_low_32_bits(flags, cookie, want):
    assert _same_retval(f"""
SEC("tc") int prog(struct __sk_buff *skb) {{ bpf_throw({cookie}ULL); return 1; }}
""", flags) == want


@pytest.mark.parametrize("flags", FLAGS)
@pytest.mark.parametrize("threshold, want", [(10, 48), (1000, 3)])
def test_a_throw_on_one_path_leaves_the_other_paths_return(flags, threshold, want):
    assert _same_retval(f"""
SEC("tc") int prog(struct __sk_buff *skb) {{
    if (skb->len > {threshold})
        bpf_throw(48);
    return 3;
}}
""", flags) == want


UNWIND = """
static __noinline int inner(__u64 i)
{
    if (i > 40)
        bpf_throw(i + 100);
    return i;
}

static __noinline int middle(__u64 i) { return inner(i * 2) + 1; }

%s__noinline int outer(__u64 i) { return middle(i + 1) + 1; }

SEC("tc") int prog(struct __sk_buff *skb) { return outer(skb->len & %s) + 1000; }
"""


@pytest.mark.parametrize("flags", FLAGS)
@pytest.mark.parametrize("linkage", ["static ", ""])
@pytest.mark.parametrize("mask, want", [("0x7", 1000 + (((len(PACKET) & 7) + 1) * 2) + 2),
                                        ("0xff", ((len(PACKET) & 0xff) + 1) * 2 + 100)])
def test_a_throw_three_calls_deep_unwinds_every_frame(flags, linkage, mask, want):
    assert _same_retval(UNWIND % (linkage, mask), flags) == want


@pytest.mark.parametrize("flags", FLAGS)
def test_a_throw_inside_an_open_coded_loop_ends_the_program(flags):
    assert _same_retval("""
SEC("tc") int prog(struct __sk_buff *skb) {
    __u32 i, sum = 0;
    for (i = 0; i < 64; i++) {
        sum += i;
        if (sum > skb->len)
            bpf_throw(i);
    }
    return 0;
}
""", flags) == next(i for i in range(64) if sum(range(i + 1)) > len(PACKET))


# --- a program's own exception callback ---------------------------------------------

@pytest.mark.parametrize("flags", FLAGS)
@pytest.mark.parametrize("cookie", [0, 25, 0x1_0000_0002])
def test_the_exception_callback_decides_the_return_value(flags, cookie):
    assert _same_retval(f"""
__noinline int on_throw(__u64 cookie) {{ return (cookie & 0xff) + 10; }}

SEC("tc") __exception_cb(on_throw)
int prog(struct __sk_buff *skb) {{ bpf_throw({cookie}ULL); return 1; }}
""", flags) == (cookie & 0xFF) + 10


def test_the_exception_callback_is_validated_in_the_level_2_log_as_by_the_kernel(
        monkeypatch, capsys, tmp_path):
    """Each path's first state (``0: R1=ctx() R10=fp0``, ``from 1 to 4: ...`` and
    ``4: ...``), then ``Validating on_throw() func#1...`` with the callback's entry
    state and its verdict, line for line."""
    data = _object("""
__noinline int on_throw(__u64 cookie) { return cookie; }
SEC("tc") __exception_cb(on_throw)
int prog(struct __sk_buff *skb) { if (skb->len > 10) bpf_throw(25ULL); return 1; }
""")
    ours, theirs = level_2_logs(data, "prog", monkeypatch, capsys, tmp_path)

    def paths(log):
        return [ln for ln in log.splitlines()
                if re.match(r"(\d+: R|from \d+ to|Validating|Func#|\d+: safe)", ln)]
    assert "Validating on_throw() func#1..." in paths(theirs)
    assert paths(ours) == paths(theirs)


@pytest.mark.parametrize("flags", FLAGS)
def test_an_exception_callback_may_call_functions(flags):
    assert _same_retval("""
__noinline int helper_global(__u64 c) { volatile int r = 7; return r + c; }
static __noinline int helper_static(__u64 c) { return helper_global(c) * 2; }
__noinline int on_throw(__u64 cookie) { return helper_static(cookie) + 1; }

static __noinline int thrower(struct __sk_buff *skb) {
    if (skb->protocol)
        bpf_throw(skb->len);
    return 0;
}

SEC("tc") __exception_cb(on_throw)
int prog(struct __sk_buff *skb) { return thrower(skb) + 5; }
""", flags) == (7 + len(PACKET)) * 2 + 1


@pytest.mark.parametrize("flags", FLAGS)
def test_a_program_that_does_not_throw_returns_as_usual_with_a_callback(flags):
    assert _same_retval("""
__noinline int on_throw(__u64 cookie) { return 99; }

SEC("tc") __exception_cb(on_throw)
int prog(struct __sk_buff *skb) { if (skb->len > 5000) bpf_throw(1); return 4; }
""", flags) == 4


@pytest.mark.parametrize("flags", FLAGS)
def test_the_exception_callback_may_take_a_narrower_integer(flags):
    # exceptions_fail.c's exception_cb_ok_arg_small: any single integer argument
    assert _same_retval("""
__noinline int on_throw(int c) { return c + 1; }

SEC("tc") __exception_cb(on_throw)
int prog(struct __sk_buff *skb) { bpf_throw(0x100000009ULL); return 0; }
""", flags) == 10


# --- the assertion macros -------------------------------------------------------------

ASSERTS = """
__noinline int check(__s64 c)
{
    volatile __s64 v = c;
    %s
    return 0;
}

SEC("tc") int prog(struct __sk_buff *skb) { return check(%s) + 1; }
"""


@pytest.mark.parametrize("flags", FLAGS)
@pytest.mark.parametrize("assertion, arg, want", [
    ("bpf_assert(v != 0);", "5", 1),
    ("bpf_assert(v != 0);", "0", 0),
    ("bpf_assert(v < 0);", "100", 0),
    ("bpf_assert_with(v != 0, v + 100);", "0", 100),
    ("bpf_assert_with(v == 0, v + 100);", "5", 105),
    ("bpf_assert_with(v < 0, v + 100);", "100", 200),
    ("bpf_assert_with(v >= 1, v + 100);", "-1", 99),
    ("bpf_assert_with(v >= 1, v + 100);", "7", 1),
])
def test_bpf_assert_throws_its_value_when_the_condition_fails(flags, assertion, arg, want):
    assert _same_retval(ASSERTS % (assertion, arg), flags) == want


@pytest.mark.parametrize("flags", FLAGS)
@pytest.mark.parametrize("lo, hi, want", [(0, 2000, 1), (100, 200, 10), (0, 50, 10)])
def test_the_asm_range_assertion_throws_outside_its_range(flags, lo, hi, want):
    assert _same_retval(C_CALL + f"""
SEC("tc") int prog(struct __sk_buff *skb) {{
    __u64 len = skb->len;
    bpf_assert_range_with(len, {lo}, {hi}, 10);
    return 1;
}}
""", flags) == want


@pytest.mark.parametrize("flags", FLAGS)
def test_the_asm_range_assertion_bounds_the_value_for_the_verifier(flags):
    # past the assertion len is known to be below 16: the stack index is in bounds
    assert _same_retval(C_CALL + """
SEC("tc") int prog(struct __sk_buff *skb) {
    __u8 buf[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    __u64 i = skb->len & 0xff;
    bpf_assert_range_with(i, 0, 15, 77);
    return buf[i];
}
""", flags) == 77


# --- refusals -------------------------------------------------------------------------

def test_a_throw_holding_a_reference_is_refused_as_the_kernel_refuses_it():
    _refused_alike("""
SEC("tc") int prog(struct __sk_buff *skb) {
    struct bpf_sock_tuple t = {};
    struct bpf_sock *sk = bpf_sk_lookup_tcp(skb, &t, sizeof(t.ipv4), -1, 0);
    if (sk)
        bpf_throw(1);
    return 0;
}
""", "bpf_throw would lead to reference leak")


def test_a_throw_in_a_subprogram_holding_a_reference_is_refused():
    _refused_alike("""
static __noinline int sub(struct __sk_buff *skb) {
    if (skb->len)
        bpf_throw(1);
    return 0;
}

SEC("tc") int prog(struct __sk_buff *skb) {
    struct bpf_sock_tuple t = {};
    struct bpf_sock *sk = bpf_sk_lookup_tcp(skb, &t, sizeof(t.ipv4), -1, 0);
    int r;
    if (!sk)
        return 0;
    r = sub(skb);
    bpf_sk_release(sk);
    return r;
}
""", "bpf_throw would lead to reference leak")


def test_a_throw_holding_a_spin_lock_is_refused_as_a_call_under_the_lock():
    _refused_alike("""
struct val { struct bpf_spin_lock lock; int x; };
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct val);
} m SEC(".maps");

SEC("tc") int prog(struct __sk_buff *skb) {
    __u32 k = 0;
    struct val *v = bpf_map_lookup_elem(&m, &k);
    if (!v)
        return 0;
    bpf_spin_lock(&v->lock);
    if (skb->len > 10)
        bpf_throw(1);
    bpf_spin_unlock(&v->lock);
    return 0;
}
""", "function calls are not allowed while holding a lock")


RCU = """
extern void bpf_rcu_read_lock(void) __ksym;
extern void bpf_rcu_read_unlock(void) __ksym;
"""


def test_a_throw_inside_an_rcu_read_lock_region_is_refused():
    _refused_alike(RCU + """
SEC("tc") int prog(struct __sk_buff *skb) {
    bpf_rcu_read_lock();
    if (skb->len)
        bpf_throw(0);
    bpf_rcu_read_unlock();
    return 0;
}
""", "bpf_throw cannot be used inside bpf_rcu_read_lock-ed region")


def test_a_throw_from_a_subprogram_inside_an_rcu_region_is_refused():
    # unlike an exit, a throw is checked for open regions in every frame
    _refused_alike(RCU + """
static __noinline int sub(struct __sk_buff *skb) {
    if (skb->len > 10)
        bpf_throw(3);
    return 0;
}

SEC("tc") int prog(struct __sk_buff *skb) {
    int r;
    bpf_rcu_read_lock();
    r = sub(skb);
    bpf_rcu_read_unlock();
    return r;
}
""", "bpf_throw cannot be used inside bpf_rcu_read_lock-ed region")


LOOP_CB = """
static int loop_cb(__u32 i, void *ctx) { bpf_throw(0); return 0; }
"""


def test_a_throw_in_a_bpf_loop_callback_is_refused():
    _refused_alike(LOOP_CB + """
SEC("tc") int prog(struct __sk_buff *skb) { bpf_loop(5, loop_cb, 0, 0); return 0; }
""", "cannot be called from callback subprog")


def test_a_throw_in_a_function_a_callback_calls_is_refused():
    _refused_alike("""
static __noinline int deep(__u32 i) { if (i > 2) bpf_throw(0); return 0; }
static int loop_cb(__u32 i, void *ctx) { return deep(i); }

SEC("tc") int prog(struct __sk_buff *skb) { bpf_loop(5, loop_cb, 0, 0); return 0; }
""", "cannot be called from callback subprog")


def test_a_throw_inside_the_exception_callback_is_refused():
    _refused_alike("""
__noinline int on_throw(__u64 c) { bpf_throw(0); return c; }

SEC("tc") __exception_cb(on_throw)
int prog(struct __sk_buff *skb) { return 0; }
""", "cannot be called from callback subprog")


@pytest.mark.parametrize("via", ["static", "global"])
def test_a_direct_call_of_the_exception_callback_is_refused(via):
    link = "static " if via == "static" else ""
    _refused_alike(f"""
__noinline int on_throw(__u64 c) {{ return c; }}
{link}__noinline int caller(struct __sk_buff *skb) {{ return on_throw(skb->len); }}

SEC("tc") __exception_cb(on_throw)
int prog(struct __sk_buff *skb) {{ return caller(skb); }}
""", "cannot call exception cb directly")


@pytest.mark.parametrize("params", ["void", "int a, int b"])
def test_an_exception_callback_without_one_integer_argument_is_refused(params):
    _refused_alike(f"""
__noinline int on_throw({params}) {{ return 0; }}

SEC("tc") __exception_cb(on_throw)
int prog(struct __sk_buff *skb) {{ bpf_throw(0); return 0; }}
""", "exception cb only supports single integer argument")


def test_an_exception_callback_returning_a_pointer_is_refused():
    _refused_alike("""
__noinline void *on_throw(__u64 c) { return 0; }

SEC("tc") __exception_cb(on_throw)
int prog(struct __sk_buff *skb) { bpf_throw(0); return 0; }
""", "Global function on_throw() doesn't return scalar.")


def test_two_exception_callback_tags_are_refused():
    _refused_alike("""
__noinline int cb1(__u64 c) { return 1; }
__noinline int cb2(__u64 c) { return 2; }

SEC("tc") __exception_cb(cb1) __exception_cb(cb2)
int prog(struct __sk_buff *skb) { bpf_throw(0); return 0; }
""", "multiple exception callback tags for main subprog")


def test_a_static_exception_callback_is_refused():
    _refused_alike("""
static __noinline int on_throw(__u64 c) { return c + 1; }

SEC("tc") __exception_cb(on_throw)
int prog(struct __sk_buff *skb) { if (skb->len > 5000) bpf_throw(0); return on_throw(skb->len); }
""", "exception callback 'on_throw' must have global linkage")


# --- a pinned program -----------------------------------------------------------------

def test_a_program_got_from_its_pin_keeps_its_exception_callback(tmp_path, monkeypatch):
    import pyebpf
    monkeypatch.setenv("PYEBPF_PIN_ROOT", str(tmp_path))
    data = _object("""
__noinline int on_throw(__u64 cookie) { return cookie + 10; }

SEC("tc") __exception_cb(on_throw)
int prog(struct __sk_buff *skb) { bpf_throw(skb->len); return 1; }
""")
    want = same_retval(data, PACKET)
    prog = pyebpf.load(data).program("prog")
    prog.pin("prog")
    pyebpf.pinning._live_progs.clear()    # got as another process gets it
    got = pyebpf.Program.from_pin("prog")
    assert [f.name for f in got.functions if f.exception_cb] == ["on_throw"]
    assert got.run(PACKET).retval == want == len(PACKET) + 10


# --- tail calls: the exception callback of the program that throws --------------------

TAIL = """
%s
SEC("tc") %s int target(struct __sk_buff *skb) { bpf_throw(16); return 0; }

struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, 2);
    __uint(key_size, sizeof(__u32));
    __array(values, int (void *));
} jmp SEC(".maps") = { .values = { [0] = (void *)&target } };

__noinline int main_cb(__u64 cookie) { return cookie + 1000; }

%s
SEC("tc") __exception_cb(main_cb) int prog(struct __sk_buff *skb) {
    %s
}
"""


def _tail_retvals(source: str) -> tuple[int, int]:
    """(pyebpf's retval, the kernel's) of ``prog`` in an object of several programs."""
    (ours,), (theirs,) = program_retvals(_object(source), PACKET)
    return ours, theirs


@pytest.mark.parametrize("target_cb, want", [(False, 16), (True, 16 + 500)])
def test_a_throw_after_a_tail_call_runs_the_tail_called_programs_callback(target_cb, want):
    cb = "__noinline int target_cb(__u64 cookie) { return cookie + 500; }" if target_cb \
        else ""
    tag = "__exception_cb(target_cb)" if target_cb else ""
    ours, theirs = _tail_retvals(TAIL % (cb, tag, "",
                                         "bpf_tail_call(skb, &jmp, 0); return 3;"))
    assert ours == theirs == want


def test_a_throw_in_the_caller_after_a_failed_tail_call_runs_the_callers_callback():
    ours, theirs = _tail_retvals(TAIL % ("", "", "",
                                         "bpf_tail_call(skb, &jmp, 1); bpf_throw(7); "
                                         "return 3;"))
    assert ours == theirs == 1007


def test_the_exception_callbacks_calls_are_held_to_the_combined_stack_limit():
    _refused_alike("""
static __noinline int sub(__u64 c) {
    volatile char buf[300];
    buf[c & 255] = 1;
    return buf[(c + 1) & 255];
}
__noinline int on_throw(__u64 c) {
    volatile char buf[300];
    buf[c & 255] = 2;
    return sub(c) + buf[(c + 3) & 255];
}

SEC("tc") __exception_cb(on_throw)
int prog(struct __sk_buff *skb) { bpf_throw(1); return 0; }
""", "combined stack size of 2 calls is")


# --- errno ----------------------------------------------------------------------------

@pytest.mark.parametrize("source, code", [
    ("""__noinline int cb1(__u64 c) { return 1; }
__noinline int cb2(__u64 c) { return 2; }
SEC("tc") __exception_cb(cb1) __exception_cb(cb2)
int prog(struct __sk_buff *skb) { bpf_throw(0); return 0; }""", errno.EEXIST),
    ("""SEC("tc") __exception_cb(nowhere)
int prog(struct __sk_buff *skb) { bpf_throw(0); return 0; }""", errno.ENOENT),
    ("""__noinline int on_throw(void) { return 0; }
SEC("tc") __exception_cb(on_throw)
int prog(struct __sk_buff *skb) { bpf_throw(0); return 0; }""", errno.EINVAL),
    (LOOP_CB + """
SEC("tc") int prog(struct __sk_buff *skb) { bpf_loop(5, loop_cb, 0, 0); return 0; }""",
     errno.EINVAL),
], ids=["two-tags", "no-such-callback", "no-argument", "throw-in-callback"])
def test_a_refusal_sets_the_kernels_errno(source, code):
    import pyebpf
    from pyebpf.errors import ElfError, KernelError
    data = _object(source)
    with pytest.raises(KernelError) as theirs:
        pyebpf.kernel.load_object(data)
    with pytest.raises(ElfError) as ours:
        pyebpf.load(data)
    count_comparison()
    assert (ours.value.__cause__.errno, theirs.value.errno) == (code, code)
