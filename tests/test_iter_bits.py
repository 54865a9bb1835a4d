"""The bits iterator (``bpf_iter_bits_new/next/destroy``, libbpf's
``bpf_for_each(bits, ...)``), against the kernel: BPF_PROG_TEST_RUN's retval for masks
of one word and of several, the errors of ``bpf_iter_bits_new``, and the load verdicts
of an iterator used uninitialized or left undestroyed.
"""
import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from bpfc import compile_object
from objdiff import same_retval, verdicts

# the declarations and the macro of the kernel selftests' bpf_experimental.h
BITS = r"""
struct bpf_iter_bits { __u64 __opaque[2]; } __attribute__((aligned(8)));
extern int bpf_iter_bits_new(struct bpf_iter_bits *it, const __u64 *unsafe_ptr__ign,
                             __u32 nr_words) __weak __ksym;
extern int *bpf_iter_bits_next(struct bpf_iter_bits *it) __weak __ksym;
extern void bpf_iter_bits_destroy(struct bpf_iter_bits *it) __weak __ksym;

#define bpf_for_each(type, cur, args...) for (                                         \
    struct bpf_iter_##type ___it __attribute__((aligned(8),                           \
                                                cleanup(bpf_iter_##type##_destroy))),  \
        *___p __attribute__((unused)) = (bpf_iter_##type##_new(&___it, ##args),       \
                                         (void)bpf_iter_##type##_destroy, (void *)0); \
    (((cur) = bpf_iter_##type##_next(&___it)));                                       \
)

__u64 words[4] = { 0x3, 0, 0x8000000000000001UL, 0x10 };

SEC("tc") int prog(struct __sk_buff *skb) { %s }
"""

PACKET = bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2) /
               (b"\x07" * 40))
FLAGS = ("-O2", "-mcpu=v3")
EINVAL, E2BIG, EFAULT, ERANGE = (0x100000000 - e for e in (22, 7, 14, 34))


def _run(body: str) -> int:
    return same_retval(compile_object(BITS % body, flags=FLAGS), PACKET)


@pytest.mark.parametrize("body, want", [
    # one word on the stack: its set bits in order
    ("__u64 m = 0x8000000000000105UL; int *b, n = 0, s = 0;"
     "bpf_for_each(bits, b, &m, 1) { n++; s = s * 3 + *b; } return n | s << 8;",
     4 | (((0 * 3 + 2) * 3 + 8) * 3 + 63) << 8),
    ("__u64 m = 0; int *b, n = 0; bpf_for_each(bits, b, &m, 1) n++; return n;", 0),
    # several words of a global, the bit numbers running on across them
    ("int *b, s = 0, n = 0; bpf_for_each(bits, b, words, 4) { n++; s += *b; }"
     "return n | s << 8;", 5 | (0 + 1 + 128 + 191 + 196) << 8),
    ("int *b, last = -1; bpf_for_each(bits, b, words, 3) last = *b; return last;", 191),
    # the iterator copies the words when made: later writes are not seen
    ("__u64 m[2] = {0x6, 0x1}; int *b, s = 0; struct bpf_iter_bits it;"
     "bpf_iter_bits_new(&it, m, 2); m[0] = 0; m[1] = 0;"
     "while ((b = bpf_iter_bits_next(&it))) s += *b;"
     "bpf_iter_bits_destroy(&it); return s;", 1 + 2 + 64),
])
def test_the_bits_iterator_yields_the_set_bits_as_the_kernels_does(body, want):
    assert _run(body) == want


@pytest.mark.parametrize("args, want", [
    ("(__u64 *)0, 1", EINVAL),
    ("words, 0", EINVAL),
    ("words, 512", E2BIG),
    ("(__u64 *)8, 1", EFAULT),
    ("(__u64 *)8, 2", ERANGE),
    ("(__u64 *)0xffff800000000000UL, 1", EFAULT),
    ("(__u64 *)0xffff800000000000UL, 2", EFAULT),
])
def test_bpf_iter_bits_new_fails_as_the_kernels_does_and_then_yields_nothing(args, want):
    body = f"""struct bpf_iter_bits it; int r = bpf_iter_bits_new(&it, {args});
    int *b = bpf_iter_bits_next(&it); bpf_iter_bits_destroy(&it);
    return b ? 1 : r;"""
    assert _run(body) == want


@pytest.mark.parametrize("body, message", [
    ("struct bpf_iter_bits it; int *b = bpf_iter_bits_next(&it); return b ? *b : 0;",
     "expected an initialized iter_bits as arg #0"),
    ("struct bpf_iter_bits it; bpf_iter_bits_new(&it, words, 1); return 0;",
     "BPF_EXIT instruction in main prog would lead to reference leak"),
    ("struct bpf_iter_bits it; bpf_iter_bits_new(&it, words, 1);"
     "bpf_iter_bits_new(&it, words, 1); bpf_iter_bits_destroy(&it); return 0;",
     "expected uninitialized iter_bits as arg #0"),
])
def test_a_misused_bits_iterator_is_refused_as_the_kernel_refuses_it(body, message):
    ours, theirs = verdicts(compile_object(BITS % body, flags=FLAGS))
    assert theirs is not None and message in theirs, theirs
    assert ours is not None and theirs in ours, (ours, theirs)
