"""``bpf_dynptr_memset`` and ``bpf_dynptr_copy`` on skb dynptrs (writable in tc, read-only
in a socket filter), local dynptrs over a map value and NULL dynptrs, against the
kernel: retval and packet bytes of BPF_PROG_TEST_RUN, and the verifier's message for a
call on a dynptr never made.
"""
import pytest

from bpfc import compile_object
from objdiff import refused_alike, same_packet, same_retval

from test_dynptr import DECLS, PACKET

DECLS_COPY = DECLS + r"""
extern int bpf_dynptr_memset(struct bpf_dynptr *p, __u32 offset, __u32 size,
                             __u8 val) __ksym __weak;
extern int bpf_dynptr_copy(struct bpf_dynptr *dst_ptr, __u32 dst_off,
                           struct bpf_dynptr *src_ptr, __u32 src_off, __u32 size) __ksym __weak;

struct val { __u8 b[64]; };
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, __u32);
         __type(value, struct val); } vals SEC(".maps");

/* a local dynptr over the map value, filled with 0, 1, 2 ... */
#define LOCAL(m) __u32 k = 0; struct val *v = bpf_map_lookup_elem(&vals, &k);         \
    if (!v) return 1;                                                                   \
    for (int i = 0; i < 64; i++) v->b[i] = i;                                           \
    struct bpf_dynptr m; bpf_dynptr_from_mem(v, sizeof(*v), 0, &m);
/* the sum of the map value's bytes, weighted by position */
#define SUM() ({ __u32 s = 0; for (int i = 0; i < 64; i++) s += v->b[i] * (i + 1); s; })
"""

TC = DECLS_COPY + 'SEC("tc") int prog(struct __sk_buff *skb) { struct bpf_dynptr d; %s }'
SOCKET = DECLS_COPY + \
    'SEC("socket") int prog(struct __sk_buff *skb) { struct bpf_dynptr d; %s }'

EINVAL, E2BIG = 0x100000000 - 22, 0x100000000 - 7


def obj(source: str) -> bytes:
    return compile_object(source, flags=("-O2", "-mcpu=v3"))


@pytest.mark.parametrize("body, want", [
    ("bpf_dynptr_from_skb(skb, 0, &d); return bpf_dynptr_memset(&d, 42, 8, 0xab);", 0),
    ("bpf_dynptr_from_skb(skb, 0, &d); bpf_dynptr_adjust(&d, 40, 50);"
     "return bpf_dynptr_memset(&d, 2, 8, 0xcd);", 0),
    ("bpf_dynptr_from_skb(skb, 0, &d); return bpf_dynptr_memset(&d, skb->len - 4, 8, 1);",
     E2BIG),
    ("bpf_dynptr_from_skb(skb, 0, &d); return bpf_dynptr_memset(&d, skb->len, 0, 1);", 0),
    ("bpf_dynptr_from_skb(skb, 0, &d);"
     "return bpf_dynptr_memset(&d, skb->len + 1, 0, 1);", E2BIG),
    # a NULL dynptr has size 0
    ("bpf_dynptr_from_skb(skb, 1, &d); return bpf_dynptr_memset(&d, 0, 4, 1);", E2BIG),
    ("bpf_dynptr_from_skb(skb, 1, &d); return bpf_dynptr_memset(&d, 0, 0, 1);", 0),
])
def test_memset_fills_the_packet_as_the_kernels_does(body, want):
    assert same_packet(obj(TC % body), PACKET)[0] == want


@pytest.mark.parametrize("body, want", [
    # overlapping ranges of one packet: a memmove
    ("bpf_dynptr_from_skb(skb, 0, &d); return bpf_dynptr_copy(&d, 44, &d, 42, 20);", 0),
    ("bpf_dynptr_from_skb(skb, 0, &d); return bpf_dynptr_copy(&d, 0, &d, 6, 6);", 0),
    ("struct bpf_dynptr c; bpf_dynptr_from_skb(skb, 0, &d); bpf_dynptr_clone(&d, &c);"
     "bpf_dynptr_adjust(&c, 26, 34); return bpf_dynptr_copy(&d, 42, &c, 0, 8);", 0),
    ("bpf_dynptr_from_skb(skb, 0, &d); return bpf_dynptr_copy(&d, 0, &d, skb->len - 2, 4);",
     E2BIG),
    ("bpf_dynptr_from_skb(skb, 0, &d); return bpf_dynptr_copy(&d, skb->len - 2, &d, 0, 4);",
     E2BIG),
    # from and to a map value
    ("LOCAL(m) bpf_dynptr_from_skb(skb, 0, &d); long r = bpf_dynptr_copy(&d, 42, &m, 10, 16);"
     "return r | SUM() << 8;", None),
    ("LOCAL(m) bpf_dynptr_from_skb(skb, 0, &d); long r = bpf_dynptr_copy(&m, 3, &d, 26, 8);"
     "return r | SUM() << 8;", None),
    ("LOCAL(m) long r = bpf_dynptr_memset(&m, 60, 4, 0xff);"
     "long e = bpf_dynptr_memset(&m, 61, 4, 0xff); return r | (e == -7) << 1 | SUM() << 8;",
     None),
    # a NULL source or destination
    ("LOCAL(m) bpf_dynptr_from_skb(skb, 1, &d); return bpf_dynptr_copy(&m, 0, &d, 0, 4);",
     EINVAL),
    ("LOCAL(m) bpf_dynptr_from_skb(skb, 1, &d); return bpf_dynptr_copy(&d, 0, &m, 0, 4);",
     EINVAL),
    ("LOCAL(m) bpf_dynptr_from_skb(skb, 1, &d); return bpf_dynptr_copy(&m, 0, &d, 0, 0);",
     EINVAL),
    ("LOCAL(m) bpf_dynptr_from_skb(skb, 1, &d); return bpf_dynptr_copy(&d, 0, &m, 0, 0);",
     EINVAL),
    ("struct bpf_dynptr n; bpf_dynptr_from_skb(skb, 1, &d); bpf_dynptr_from_skb(skb, 1, &n);"
     "return bpf_dynptr_copy(&d, 0, &n, 0, 0);", 0),
])
def test_copy_moves_bytes_between_dynptrs_as_the_kernels_does(body, want):
    got = same_packet(obj(TC % body), PACKET)[0]
    assert want is None or got == want


@pytest.mark.parametrize("body, want", [
    ("bpf_dynptr_from_skb(skb, 0, &d); return bpf_dynptr_memset(&d, 0, 4, 1);", EINVAL),
    ("LOCAL(m) bpf_dynptr_from_skb(skb, 0, &d); return bpf_dynptr_copy(&d, 0, &m, 0, 4);",
     EINVAL),
    ("LOCAL(m) bpf_dynptr_from_skb(skb, 0, &d); long r = bpf_dynptr_copy(&m, 0, &d, 0, 20);"
     "return r | SUM() << 8;", None),
    # a read-only destination with nothing to copy
    ("LOCAL(m) bpf_dynptr_from_skb(skb, 0, &d); return bpf_dynptr_copy(&d, 0, &m, 0, 0);",
     EINVAL),
])
def test_a_socket_filters_read_only_skb_dynptr_is_not_written(body, want):
    got = same_retval(obj(SOCKET % body), PACKET)
    assert want is None or got == want


def test_memset_on_a_dynptr_never_made_is_refused_as_the_kernel_refuses_it():
    refused_alike(obj(TC % "return bpf_dynptr_memset(&d, 0, 4, 1);"),
                  "Expected an initialized dynptr as arg #0")
