"""Packet pointers after calls of functions that may change packet data, against the
kernel's verifier: a function calling a helper that changes packet data or tail-calling
(a program tail-called from a function returns to that function's caller), itself or
through the functions it calls (check_cfg's mark_subprog_changes_pkt_data and
merge_callee_effects), leaves its callers no packet pointer: a global function's at its
call; a static function's helper at that call, in every frame, and its tail call at its
return.  The tail call itself leaves the calling function's own pointers alone.  The 6.12 selftests' verifier_sock.o holds the two
global cases."""
import pytest

from bpfc import compile_object
from objdiff import assert_refused_alike, same_retval, verdicts

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


# The 6.12 selftests' test_tcp_custom_syncookie.o in small: packet pointers kept in a
# struct on the stack, which a static function may refresh after pulling data and a
# bpf_loop callback reads through its context pointer (the caller's frame).
PKT_STRUCT = """
struct pkt { void *data; void *data_end; __u32 off; __u32 sum; };

static __noinline int headers(struct __sk_buff *skb, struct pkt *c)
{
    if (skb->len > 64) {
        if (bpf_skb_pull_data(skb, 64))
            return -1;
        %s
    }
    return 0;
}

static int add_byte(__u32 i, struct pkt *c)
{
    __u8 *p = c->data + (c->off & 63);

    if ((void *)(p + 1) > c->data_end)
        return 1;
    c->sum += *p;
    c->off++;
    return 0;
}

SEC("tc") int prog(struct __sk_buff *skb)
{
    struct pkt c = { .data = (void *)(long)skb->data,
                     .data_end = (void *)(long)skb->data_end };

    if (headers(skb, &c))
        return 2;
    bpf_loop(8, add_byte, &c, 0);
    return c.sum;
}
"""
RELOAD = """c->data = (void *)(long)skb->data;
        c->data_end = (void *)(long)skb->data_end;"""


def test_a_static_function_that_pulls_data_keeps_its_callers_pointers_on_the_paths_that_do_not():
    """Only the helper's call ends packet pointers (in every frame): the function's
    return does not, so a callback reads the caller's refreshed pointers."""
    assert verdicts(_object(PKT_STRUCT % RELOAD)) == (None, None)


def test_a_static_function_that_pulls_data_ends_the_pointers_its_caller_keeps():
    assert_refused_alike(*verdicts(_object(PKT_STRUCT % "")),
                         "invalid mem access 'scalar'")


@pytest.mark.parametrize("size", [40, 90], ids=["unpulled", "pulled"])
def test_a_callback_reads_the_packet_through_pointers_in_its_callers_stack(size):
    packet = bytes(range(7, 7 + size))
    assert same_retval(_object(PKT_STRUCT % RELOAD), packet) == sum(packet[:8])
