"""The string kfuncs of kernel/bpf/helpers.c (bpf_strcmp ... bpf_strnstr), each against
the kernel: BPF_PROG_TEST_RUN's retval for strings on the stack, in globals, in the
packet and at addresses no program owns (-ERANGE, -EFAULT), the XATTR_SIZE_MAX bound
(-E2BIG), and the load verdict of a call with a pointer where a count goes.
"""
import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from pyebpf import isa

from bpfc import compile_object
from objdiff import same_retval, verdicts

# the declarations as libbpf's bpf_experimental.h / vmlinux.h give them
DECLS = r"""
typedef unsigned long size_t;
extern int bpf_strcmp(const char *s1__ign, const char *s2__ign) __weak __ksym;
extern int bpf_strcasecmp(const char *s1__ign, const char *s2__ign) __weak __ksym;
extern int bpf_strchr(const char *s__ign, char c) __weak __ksym;
extern int bpf_strchrnul(const char *s__ign, char c) __weak __ksym;
extern int bpf_strnchr(const char *s__ign, size_t count, char c) __weak __ksym;
extern int bpf_strrchr(const char *s__ign, int c) __weak __ksym;
extern int bpf_strlen(const char *s__ign) __weak __ksym;
extern int bpf_strnlen(const char *s__ign, size_t count) __weak __ksym;
extern int bpf_strspn(const char *s__ign, const char *accept__ign) __weak __ksym;
extern int bpf_strcspn(const char *s__ign, const char *reject__ign) __weak __ksym;
extern int bpf_strstr(const char *s1__ign, const char *s2__ign) __weak __ksym;
extern int bpf_strnstr(const char *s1__ign, const char *s2__ign, size_t len) __weak __ksym;
"""

PROG = DECLS + r"""
const char text[] = "Hello, World";
char latin[8] = "\xc9t\xe9";       /* "Été" in Latin-1 */

SEC("tc") int prog(struct __sk_buff *skb) {
    char a[16] = "hello";
    char b[16] = "help";
    return %s;
}
"""

ERANGE, EFAULT, E2BIG, ENOENT = (-int(isa.Errno[n]) & 0xFFFFFFFF
                                 for n in ("ERANGE", "EFAULT", "E2BIG", "ENOENT"))
PACKET = bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1, dport=80) /
               b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n\x00")
MINUS_1 = 0xFFFFFFFF


def _u32(v: int) -> int:
    return v & 0xFFFFFFFF


@pytest.mark.parametrize("call, want", [
    ("bpf_strcmp(a, a)", 0),
    ("bpf_strcmp(a, b)", MINUS_1),                 # 'l' < 'p'
    ("bpf_strcmp(b, a)", 1),
    ("bpf_strcmp(a, \"hell\")", 1),                # the longer string is the greater
    ("bpf_strcmp(latin, a)", 1),     # chars are unsigned (-funsigned-char): 0xc9 > 'h'
    ("bpf_strcasecmp(text, \"hello, world\")", 0),
    ("bpf_strcasecmp(text, \"HELLO, X\")", MINUS_1),
    ("bpf_strcasecmp(latin, \"\\xe9T\\xc9\")", 0),  # Latin-1 capitals fold too
    ("bpf_strcasecmp(\"[\", \"a\")", MINUS_1),      # '[' is after 'A' but before 'a'
])
def test_strcmp_and_strcasecmp_order_as_the_kernel_does(call, want):
    assert same_retval(compile_object(PROG % call), PACKET) == want


@pytest.mark.parametrize("call, want", [
    ("bpf_strchr(text, 'o')", 4),
    ("bpf_strchr(text, 'z')", ENOENT),
    ("bpf_strchr(text, 0)", 12),                    # the NUL is part of the string
    ("bpf_strchr(latin, 0xe9)", 2),                 # a char argument: its low byte
    ("bpf_strchrnul(text, 'W')", 7),
    ("bpf_strchrnul(text, 'z')", 12),
    ("bpf_strnchr(text, 4, 'o')", ENOENT),
    ("bpf_strnchr(text, 5, 'o')", 4),
    ("bpf_strnchr(a, 100, 'x')", ENOENT),
    ("bpf_strrchr(text, 'o')", 8),
    ("bpf_strrchr(text, 0)", 12),
    ("bpf_strrchr(latin, 0xe9)", 2),
    ("bpf_strrchr(latin, (char)0xe9)", ENOENT),     # an int -23 never equals a char
])
def test_the_character_searches_find_what_the_kernel_finds(call, want):
    assert same_retval(compile_object(PROG % call), PACKET) == want


@pytest.mark.parametrize("call, want", [
    ("bpf_strlen(text)", 12),
    ("bpf_strlen(\"\")", 0),
    ("bpf_strnlen(text, 5)", 5),
    ("bpf_strnlen(text, 50)", 12),
    ("bpf_strnlen(text, 0)", 0),
    ("bpf_strspn(text, \"leH\")", 4),
    ("bpf_strspn(text, \"\")", 0),
    ("bpf_strcspn(text, \" ,\")", 5),
    ("bpf_strcspn(text, \"xyz\")", 12),
    ("bpf_strstr(text, \"World\")", 7),
    ("bpf_strstr(text, \"world\")", ENOENT),
    ("bpf_strstr(text, \"\")", 0),
    ("bpf_strnstr(text, \"lo\", 5)", 3),           # the needle ends at the limit
    ("bpf_strnstr(text, \"lo\", 4)", ENOENT),
    ("bpf_strnstr(text, \"Hello, World!\", 100)", ENOENT),
])
def test_lengths_spans_and_substrings_are_the_kernels(call, want):
    assert same_retval(compile_object(PROG % call), PACKET) == want


@pytest.mark.parametrize("call, want", [
    ("bpf_strlen((const char *)0)", ERANGE),
    ("bpf_strlen((const char *)4096)", ERANGE),                    # a user address
    ("bpf_strlen((const char *)0x8000000000000000UL)", ERANGE),    # not canonical
    ("bpf_strcmp(a, (const char *)0)", ERANGE),
    ("bpf_strstr((const char *)0, a)", ERANGE),
    # the first page of the kernel's half is never mapped
    ("bpf_strlen((const char *)0xffff800000000000UL)", EFAULT),
    ("bpf_strcmp(a, (const char *)0xffff800000000000UL)", EFAULT),
    ("bpf_strspn(a, (const char *)0xffff800000000000UL)", EFAULT),
])
def test_unreadable_strings_are_erange_or_efault_as_in_the_kernel(call, want):
    assert same_retval(compile_object(PROG % call), PACKET) == want


BIG = DECLS + r"""
struct bpf_iter_num { __u64 __opaque[1]; } __attribute__((aligned(8)));
extern int bpf_iter_num_new(struct bpf_iter_num *it, int start, int end) __weak __ksym;
extern int *bpf_iter_num_next(struct bpf_iter_num *it) __weak __ksym;
extern void bpf_iter_num_destroy(struct bpf_iter_num *it) __weak __ksym;

char big[65536 + 8];

SEC("tc") int prog(struct __sk_buff *skb) {
    struct bpf_iter_num it;
    int *i;
    bpf_iter_num_new(&it, 0, 65536 + 4);
    while ((i = bpf_iter_num_next(&it)))
        if (*i >= 0 && *i < 65536 + 4)
            big[*i] = 'a';
    bpf_iter_num_destroy(&it);
    return %s;
}
"""


@pytest.mark.parametrize("call, want", [
    ("bpf_strlen(big)", E2BIG),
    ("bpf_strnlen(big, 65536)", E2BIG),
    ("bpf_strnlen(big, 65535)", 65535),
    ("bpf_strchr(big, 'b')", E2BIG),
    ("bpf_strnchr(big, 65535, 'b')", ENOENT),
    ("bpf_strcmp(big, big)", E2BIG),
    ("bpf_strspn(big, \"a\")", E2BIG),
    ("bpf_strstr(big, \"b\")", E2BIG),
])
def test_no_string_is_read_past_xattr_size_max(call, want):
    assert same_retval(compile_object(BIG % call), PACKET) == want


HTTP = DECLS + r"""
SEC("tc") int prog(struct __sk_buff *skb) {
    char *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
    char *payload = data + 14 + 20 + 20;
    if (payload + 4 > end)
        return -1;
    if (bpf_strnstr(payload, "GET ", 4) != 0)
        return -2;
    return bpf_strstr(payload, "Host: ") | bpf_strcspn(payload + 22, "\r") << 8 |
           (bpf_strstr(payload, "Cookie:") == -2) << 16;
}
"""


def test_a_string_in_the_packet_is_searched_as_the_kernel_searches_it():
    # an HTTP request line and Host header, NUL-terminated in the packet
    assert same_retval(compile_object(HTTP), PACKET) == 16 | 11 << 8 | 1 << 16


@pytest.mark.parametrize("prog_type", ["socket_filter", "sched_act"])
def test_the_string_kfuncs_are_offered_to_every_skb_program_type(prog_type):
    source = DECLS + r"""
SEC("socket") int prog(struct __sk_buff *skb) { char s[4] = "ab"; return bpf_strlen(s); }
"""
    assert same_retval(compile_object(source), PACKET, prog_type) == 2


def test_a_pointer_where_a_count_goes_is_refused_as_the_kernel_refuses_it():
    source = DECLS + r"""
SEC("tc") int prog(struct __sk_buff *skb) { char s[4] = "ab"; return bpf_strnlen(s, (long)s); }
"""
    ours, theirs = verdicts(compile_object(source))
    assert theirs is not None and "R2 is not a scalar" in theirs, theirs
    assert ours is not None and theirs in ours, (ours, theirs)
