"""A global function's arguments at its call, against the kernel's verifier
(btf_check_func_arg_match): a context or memory argument's register passes
check_func_arg_reg_off first (a scalar or a movable pointer passes; any other register,
an uninitialised one or a pointer that may be NULL too, must be unmoved: EACCES), then its
type (a memory argument: check_mem_reg, a NULL constant passing; a context argument:
PTR_TO_CTX; EINVAL)."""
from bpfc import compile_object
from objdiff import assert_refused_alike as refused_alike, verdicts

HEAD = """
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} m SEC(".maps");

__noinline int mem(struct __sk_buff *skb, int *p) { return skb->len + (p ? *p : 0); }
__noinline int mem_nonnull(struct __sk_buff *skb, int *p __attribute__((btf_decl_tag("arg:nonnull"))))
{
    return skb->len + *p;
}
__noinline int unused_mem(struct __sk_buff *skb, int *p) { return skb->len; }
__noinline int unused_ctx(int x, struct __sk_buff *skb) { return bpf_get_prandom_u32() + x; }
__noinline int ctx(int x, struct __sk_buff *skb) { return skb->len + x; }
"""


def _verdicts(body: str) -> tuple:
    """(ours, the kernel's) verdicts of a tc program whose body is ``body``, beside the
    functions above: None for a load, else the refusal's text (the kernel's whole log:
    its last line names only the call)."""
    return verdicts(_object(HEAD, body), whole_log=True)


def _object(head: str, body: str) -> bytes:
    return compile_object(
        head + 'SEC("tc") int prog(struct __sk_buff *skb)\n{\n    __u32 k = 0;\n    %s\n}\n'
        'char _license[] SEC("license") = "GPL";\n' % body, flags=("-O2", "-mcpu=v3"))


def assert_refused_alike(ours, theirs, message: str) -> None:
    """Both refuse, the kernel's log and pyebpf's refusal saying ``message`` and naming
    the call's refusal."""
    refused_alike(ours, theirs, message)
    assert "Caller passes invalid args" in theirs, theirs
    assert "Caller passes invalid args" in ours, (ours, theirs)


def test_an_uninitialised_register_for_a_memory_argument_is_refused_as_moved():
    """The caller of a function that never reads its pointer leaves R2 unset."""
    assert_refused_alike(*_verdicts("int x = 0; return unused_mem(skb, &x);"),
                         "variable ? access var_off=(0x0; 0xffffffffffffffff) disallowed")


def test_an_uninitialised_register_for_a_context_argument_is_refused_as_moved():
    assert_refused_alike(*_verdicts("return unused_ctx(skb->len, skb);"),
                         "variable ? access var_off=(0x0; 0xffffffffffffffff) disallowed")


def test_a_scalar_for_a_memory_argument_is_refused_as_no_stack_pointer():
    assert_refused_alike(*_verdicts("return mem(skb, (int *)(long)skb->len);"),
                         "R2 type=scalar expected=fp")


def test_a_scalar_for_a_context_argument_is_refused_as_no_context():
    assert_refused_alike(*_verdicts("return ctx(1, (void *)(long)skb->len);"),
                         "arg#1 expects pointer to ctx")


def test_the_context_for_a_memory_argument_is_refused_as_no_stack_pointer():
    assert_refused_alike(*_verdicts("return mem(skb, (int *)skb);"),
                         "R2 type=ctx expected=fp")


def test_a_moved_context_for_a_memory_argument_is_refused_as_moved():
    assert_refused_alike(*_verdicts("return mem(skb, (int *)&skb->mark);"),
                         "dereference of modified ctx ptr R2 off=8 disallowed")


def test_an_unchecked_map_value_goes_to_a_memory_argument_that_may_be_null():
    assert _verdicts("return mem(skb, bpf_map_lookup_elem(&m, &k));") == (None, None)


def test_an_unchecked_map_value_is_refused_for_a_nonnull_memory_argument():
    assert_refused_alike(*_verdicts("return mem_nonnull(skb, bpf_map_lookup_elem(&m, &k));"),
                         "arg#1 is expected to be non-NULL")


def test_null_goes_to_a_memory_argument():
    assert _verdicts("return mem(skb, 0);") == (None, None)
