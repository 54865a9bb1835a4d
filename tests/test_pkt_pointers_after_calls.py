"""Packet pointers after calls of functions that may change packet data, against the
kernel's verifier: a function calling a helper that changes packet data or tail-calling
(a program tail-called from a function returns to that function's caller), itself or
through the functions it calls (check_cfg's mark_subprog_changes_pkt_data and
merge_callee_effects), leaves its callers no packet pointer: a global function's at its
call, a static function's at its return.  The tail call itself leaves the calling
function's own pointers alone.  The 6.12 selftests' verifier_sock.o holds the two
global cases."""
import pytest

from bpfc import compile_object
from objdiff import assert_refused_alike, verdicts

HEAD = """
struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, 1);
    __uint(key_size, sizeof(__u32));
    __uint(value_size, sizeof(__u32));
} jmp SEC(".maps");
"""

WRITE_AFTER = """
SEC("tc") int prog(struct __sk_buff *skb)
{
    int *p = (void *)(long)skb->data;

    if ((void *)(p + 1) > (void *)(long)skb->data_end)
        return 2;
    %s;
    *p = 42;
    return 0;
}
"""


def _object(source: str) -> bytes:
    return compile_object(HEAD + source + '\nchar _license[] SEC("license") = "GPL";\n',
                          flags=("-O2", "-mcpu=v3"))


def _verdicts(functions: str, call: str) -> tuple:
    """The verdicts of ``prog``, which writes through a checked packet pointer after
    ``call``, beside ``functions``."""
    return verdicts(_object(functions + WRITE_AFTER % call))


def test_a_tail_call_keeps_the_calling_functions_packet_pointers():
    assert _verdicts("", "bpf_tail_call(skb, &jmp, 0)") == (None, None)


@pytest.mark.parametrize("linkage", ["static", ""], ids=["static", "global"])
def test_a_function_that_tail_calls_keeps_its_own_packet_pointers(linkage):
    assert verdicts(_object(f"""
{linkage} __noinline int sub(struct __sk_buff *skb)
{{
    int *p = (void *)(long)skb->data;

    if ((void *)(p + 1) > (void *)(long)skb->data_end)
        return 2;
    bpf_tail_call(skb, &jmp, 0);
    *p = 42;
    return 0;
}}
SEC("tc") int prog(struct __sk_buff *skb) {{ return sub(skb); }}
""")) == (None, None)


def test_a_static_function_that_tail_calls_ends_its_callers_packet_pointers_at_its_return():
    """The pointer it was given stays good in it, after its tail call too."""
    assert_refused_alike(*_verdicts("""
static __noinline int sub(struct __sk_buff *skb, int *p)
{
    bpf_tail_call(skb, &jmp, 0);
    *p = 3;
    return 0;
}""", "sub(skb, p)"), "invalid mem access 'scalar'")


def test_a_global_function_that_tail_calls_ends_its_callers_packet_pointers():
    assert_refused_alike(*_verdicts("""
__noinline int tail_call(struct __sk_buff *skb)
{
    bpf_tail_call_static(skb, &jmp, 0);
    return 0;
}""", "tail_call(skb)"), "invalid mem access 'scalar'")


def test_a_global_function_whose_callee_pulls_data_ends_its_callers_packet_pointers():
    assert_refused_alike(*_verdicts("""
__noinline long pull2(struct __sk_buff *skb, __u32 len) { return bpf_skb_pull_data(skb, len); }
__noinline long pull1(struct __sk_buff *skb, __u32 len) { return pull2(skb, len); }
""", "pull1(skb, 0)"), "invalid mem access 'scalar'")


def test_a_global_function_that_changes_no_packet_data_keeps_its_callers_packet_pointers():
    assert _verdicts("""
__noinline long mark(struct __sk_buff *skb) { return skb->mark + bpf_get_prandom_u32(); }
""", "skb->priority = mark(skb)") == (None, None)
