"""A static (bpf-to-bpf) call is checked against the callee's BTF prototype as 6.18
checks it (btf_check_subprog_call, btf_prepare_func_args with ``is_global`` false):
an int or enum argument must be a scalar, a context pointer the context, a ``struct
bpf_dynptr *`` an initialised dynptr; any other pointer, a tag, a non-scalar return
make the prototype unusable, silently.  A mismatch never refuses the call: its first
message is printed and the callee is unreliable from then on (never checked again).
Each test compares the whole level-2 log with the kernel's.
"""
from __future__ import annotations

from test_verifier_log_level2 import c_logs

DYNPTR_KFUNCS = """
extern int bpf_dynptr_from_skb(struct __sk_buff *skb, __u64 flags,
                               struct bpf_dynptr *ptr) __ksym;
extern __u32 bpf_dynptr_size(const struct bpf_dynptr *ptr) __ksym;
"""


def test_a_static_dynptr_argument_given_an_uninitialised_dynptr_prints_the_mismatch(
        monkeypatch, capsys, tmp_path):
    source = DYNPTR_KFUNCS + """
static __noinline int size_if(struct bpf_dynptr *p, int x)
{
    if (x)
        return bpf_dynptr_size(p);
    return x;
}
SEC("tc") int prog(struct __sk_buff *skb)
{
    struct bpf_dynptr p;
    int n = size_if(&p, 0);

    bpf_dynptr_from_skb(skb, 0, &p);
    return (n + size_if(&p, 1)) & 1;
}
"""
    theirs, ours = c_logs(source, monkeypatch, capsys, tmp_path)
    assert theirs.count("Expected an initialized dynptr as arg #0") == 1, theirs
    assert ours == theirs


def test_a_static_dynptr_argument_given_an_initialised_dynptr_prints_nothing(
        monkeypatch, capsys, tmp_path):
    source = DYNPTR_KFUNCS + """
static __noinline int size_of(struct bpf_dynptr *p, int x)
{
    return bpf_dynptr_size(p) + x;
}
SEC("tc") int prog(struct __sk_buff *skb)
{
    struct bpf_dynptr p;

    bpf_dynptr_from_skb(skb, 0, &p);
    return (size_of(&p, skb->len) + size_of(&p, 1)) & 1;
}
"""
    theirs, ours = c_logs(source, monkeypatch, capsys, tmp_path)
    assert not any("dynptr as arg" in line for line in theirs), theirs
    assert ours == theirs


def test_a_static_dynptr_argument_given_other_stack_memory_prints_the_mismatch(
        monkeypatch, capsys, tmp_path):
    source = DYNPTR_KFUNCS + """
static __noinline int size_if(struct bpf_dynptr *p, int x)
{
    if (x)
        return bpf_dynptr_size(p);
    return x;
}
SEC("tc") int prog(struct __sk_buff *skb)
{
    __u64 words[2] = {skb->len, skb->mark};
    struct bpf_dynptr p;
    int n = size_if((struct bpf_dynptr *)words, 0);

    bpf_dynptr_from_skb(skb, 0, &p);
    return (n + size_if(&p, 1)) & 1;
}
"""
    theirs, ours = c_logs(source, monkeypatch, capsys, tmp_path)
    assert theirs.count("Expected an initialized dynptr as arg #0") == 1, theirs
    assert ours == theirs


def test_a_static_memory_pointer_argument_is_not_checked(monkeypatch, capsys, tmp_path):
    source = """
static __noinline int first(int *p, int x)
{
    if (x)
        return *p;
    return x;
}
SEC("tc") int prog(struct __sk_buff *skb)
{
    int v = skb->len;

    return (first((int *)(long)skb->len, 0) + first(&v, 1)) & 1;
}
"""
    theirs, ours = c_logs(source, monkeypatch, capsys, tmp_path)
    assert not any("arg#" in line or "is not a" in line for line in theirs), theirs
    assert ours == theirs


def test_a_static_struct_pointer_argument_is_not_checked(monkeypatch, capsys, tmp_path):
    source = """
struct pair { int a, b; };
static __noinline int sum(struct pair *p, int x)
{
    if (x)
        return p->a + p->b;
    return x;
}
SEC("tc") int prog(struct __sk_buff *skb)
{
    struct pair v = {skb->len, skb->mark};

    return (sum((struct pair *)skb, 0) + sum(&v, 1)) & 1;
}
"""
    theirs, ours = c_logs(source, monkeypatch, capsys, tmp_path)
    assert not any("arg#" in line or "is not a" in line for line in theirs), theirs
    assert ours == theirs


def test_a_static_context_argument_given_other_memory_prints_the_mismatch(
        monkeypatch, capsys, tmp_path):
    source = """
static __noinline int len_if(struct __sk_buff *skb, int x)
{
    if (x)
        return skb->len;
    return x;
}
SEC("tc") int prog(struct __sk_buff *skb)
{
    __u64 words[2] = {skb->len, skb->mark};

    return (len_if((struct __sk_buff *)words, 0) + len_if(skb, 1)) & 1;
}
"""
    theirs, ours = c_logs(source, monkeypatch, capsys, tmp_path)
    assert theirs.count("arg#0 expects pointer to ctx") == 1, theirs
    assert ours == theirs


def test_a_static_functions_argument_tag_makes_its_prototype_unusable(
        monkeypatch, capsys, tmp_path):
    source = """
static __noinline int len_if(void *ctx __attribute__((btf_decl_tag("arg:ctx"))), int x)
{
    if (x)
        return ((struct __sk_buff *)ctx)->len;
    return x;
}
SEC("tc") int prog(struct __sk_buff *skb)
{
    __u64 words[2] = {skb->len, skb->mark};

    return (len_if(words, 0) + len_if(skb, 1)) & 1;
}
"""
    theirs, ours = c_logs(source, monkeypatch, capsys, tmp_path)
    assert theirs.count("arg#0 type tag is not supported in static functions") == 1, theirs
    assert ours == theirs
