"""skb dynptrs: ``bpf_dynptr_from_skb`` (and ``bpf_dynptr_from_skb_meta``, over the
metadata area) and the kfuncs and helpers on it (slices, read, write, adjust, clone,
size, is_null, is_rdonly), in the shapes the kernel's selftests
use, against the kernel: retval and packet bytes of BPF_PROG_TEST_RUN for programs that
load, the verifier's message for those it refuses.
"""
from errno import E2BIG, EINVAL, ERANGE

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from bpfc import compile_object
from objdiff import refused_alike, same_packet, same_retval

# the kfunc declarations of the kernel selftests' bpf_kfuncs.h
DECLS = r"""
extern int bpf_dynptr_from_skb(struct __sk_buff *skb, __u64 flags,
                               struct bpf_dynptr *ptr__uninit) __ksym __weak;
extern void *bpf_dynptr_slice(const struct bpf_dynptr *ptr, __u32 offset, void *buffer,
                              __u32 buffer__szk) __ksym __weak;
extern void *bpf_dynptr_slice_rdwr(const struct bpf_dynptr *ptr, __u32 offset,
                                   void *buffer, __u32 buffer__szk) __ksym __weak;
extern int bpf_dynptr_adjust(const struct bpf_dynptr *ptr, __u32 start,
                             __u32 end) __ksym __weak;
extern _Bool bpf_dynptr_is_null(const struct bpf_dynptr *ptr) __ksym __weak;
extern _Bool bpf_dynptr_is_rdonly(const struct bpf_dynptr *ptr) __ksym __weak;
extern __u32 bpf_dynptr_size(const struct bpf_dynptr *ptr) __ksym __weak;
extern int bpf_dynptr_clone(const struct bpf_dynptr *ptr,
                            struct bpf_dynptr *clone__init) __ksym __weak;
"""

PACKET = bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") /
               IP(src="10.0.0.1", dst="10.0.0.2", ttl=64) / UDP(sport=1, dport=2) /
               (b"\x07" * 40))

TC = DECLS + 'SEC("tc") int prog(struct __sk_buff *skb) { struct bpf_dynptr d; %s }'
SOCKET = DECLS + 'SEC("socket") int prog(struct __sk_buff *skb) { struct bpf_dynptr d; %s }'


def obj(source: str) -> bytes:
    return compile_object(source, flags=("-O2", "-mcpu=v3"))


# --- programs that load: retval and bytes ---------------------------------------------

@pytest.mark.parametrize("body", [
    # parse headers through slices, with a buffer and without
    "char buf[sizeof(struct ethhdr) + sizeof(struct iphdr)];"
    "bpf_dynptr_from_skb(skb, 0, &d);"
    "struct ethhdr *eth = bpf_dynptr_slice(&d, 0, buf, sizeof(buf));"
    "if (!eth) return 1;"
    "struct iphdr *ip = (void *)(eth + 1);"
    "return ip->protocol | ip->ttl << 8 | eth->h_proto << 16;",
    "bpf_dynptr_from_skb(skb, 0, &d);"
    "struct iphdr *ip = bpf_dynptr_slice(&d, 14, NULL, sizeof(*ip));"
    "return ip ? ip->ihl : 99;",
    # a slice past the end is NULL
    "char buf[16]; bpf_dynptr_from_skb(skb, 0, &d);"
    "return bpf_dynptr_slice(&d, skb->len - 8, buf, 16) == NULL;",
    "char buf[8]; bpf_dynptr_from_skb(skb, 0, &d);"
    "char *p = bpf_dynptr_slice(&d, skb->len - 8, buf, 8); return p ? p[7] : 99;",
    # flags other than 0 are refused and leave a NULL dynptr
    "long r = bpf_dynptr_from_skb(skb, 1, &d);"
    "return (r == -22) | bpf_dynptr_is_null(&d) << 1 | (bpf_dynptr_size(&d) == -22) << 2;",
    "bpf_dynptr_from_skb(skb, 0, &d);"
    "return bpf_dynptr_size(&d) | bpf_dynptr_is_null(&d) << 16 | "
    "bpf_dynptr_is_rdonly(&d) << 17;",
    # adjust: a window of the packet; -ERANGE past its end, -EINVAL when start > end
    "bpf_dynptr_from_skb(skb, 0, &d);"
    "long a = bpf_dynptr_adjust(&d, 14, 34); long b = bpf_dynptr_adjust(&d, 0, 21);"
    "long c = bpf_dynptr_adjust(&d, 5, 4); char *p = bpf_dynptr_slice(&d, 9, NULL, 1);"
    "return (a == 0) | (b == -34) << 1 | (c == -22) << 2 | bpf_dynptr_size(&d) << 3 |"
    "(p ? *p : 0xff) << 12;",
    # a clone is a copy with its own bounds
    "struct bpf_dynptr c; bpf_dynptr_from_skb(skb, 0, &d);"
    "long r = bpf_dynptr_clone(&d, &c); bpf_dynptr_adjust(&c, 14, 20);"
    "return r | bpf_dynptr_size(&d) << 4 | bpf_dynptr_size(&c) << 16;",
    # bpf_dynptr_read: -E2BIG past the end, -EINVAL for flags; the buffer as it was
    "char buf[8] = {1, 2, 3, 4, 5, 6, 7, 8}; bpf_dynptr_from_skb(skb, 0, &d);"
    "long a = bpf_dynptr_read(buf, 6, &d, 0, 0);"
    "long b = bpf_dynptr_read(buf, 8, &d, skb->len - 4, 0);"
    "long c = bpf_dynptr_read(buf, 8, &d, 0, 1);"
    "return (a == 0) | (b == -7) << 1 | (c == -22) << 2 | buf[5] << 8 | buf[6] << 16;",
    "char buf[4]; bpf_dynptr_from_skb(skb, 0, &d); bpf_dynptr_adjust(&d, 26, 34);"
    "if (bpf_dynptr_read(buf, 4, &d, 4, 0)) return 99; return buf[3];",
    # overwriting the dynptr does not end its slices (the kernel keeps them)
    "bpf_dynptr_from_skb(skb, 0, &d); unsigned char *p = bpf_dynptr_slice(&d, 22, NULL, 1);"
    "if (!p) return 99; *(volatile __u64 *)&d = 0; return *p;",
    # a slice is memory a helper may read
    "bpf_dynptr_from_skb(skb, 0, &d); char *p = bpf_dynptr_slice(&d, 26, NULL, 8);"
    "return p ? bpf_csum_diff(0, 0, (void *)p, 8, 0) : 99;",
])
def test_an_skb_dynptr_program_returns_what_the_kernels_returns(body):
    same_retval(obj(TC % body), PACKET)


@pytest.mark.parametrize("body", [
    # write through a slice_rdwr: the packet pointer on a linear packet
    "bpf_dynptr_from_skb(skb, 0, &d);"
    "struct iphdr *ip = bpf_dynptr_slice_rdwr(&d, 14, NULL, sizeof(*ip));"
    "if (!ip) return 1; ip->ttl -= 1; ip->tos = 0x10; return 0;",
    "char buf[sizeof(struct ethhdr)]; bpf_dynptr_from_skb(skb, 0, &d);"
    "struct ethhdr *eth = bpf_dynptr_slice_rdwr(&d, 0, buf, sizeof(buf));"
    "if (!eth) return 1; eth->h_dest[0] = 0xaa; return buf[0] == (char)0xaa;",
    # bpf_dynptr_write, its flags and bounds
    "char mac[6] = {1, 2, 3, 4, 5, 6}; bpf_dynptr_from_skb(skb, 0, &d);"
    "long a = bpf_dynptr_write(&d, 6, mac, 6, 0);"
    "long b = bpf_dynptr_write(&d, skb->len - 2, mac, 6, 0);"
    "long c = bpf_dynptr_write(&d, 0, mac, 6, 4);"
    "long e = bpf_dynptr_write(&d, 0, mac, 2, BPF_F_INVALIDATE_HASH);"
    "return (a == 0) | (b == -7) << 1 | (c == -22) << 2 | (e == 0) << 3;",
    "char x[2] = {9, 9}; bpf_dynptr_from_skb(skb, 0, &d); bpf_dynptr_adjust(&d, 42, 50);"
    "return bpf_dynptr_write(&d, 6, x, 2, 0) | bpf_dynptr_write(&d, 7, x, 2, 0) << 8;",
])
def test_an_skb_dynptr_write_changes_the_packet_as_the_kernels_does(body):
    same_packet(obj(TC % body), PACKET)


@pytest.mark.parametrize("body", [
    # a socket filter's skb dynptr is read-only (specialize_kfunc)
    "char x = 1; bpf_dynptr_from_skb(skb, 0, &d);"
    "return bpf_dynptr_is_rdonly(&d) | (bpf_dynptr_write(&d, 0, &x, 1, 0) == -22) << 1;",
    "char buf[4]; bpf_dynptr_from_skb(skb, 0, &d);"
    "unsigned char *p = bpf_dynptr_slice(&d, 23, buf, 1); return p ? *p : 99;",
])
def test_a_socket_filters_skb_dynptr_is_read_only_as_in_the_kernel(body):
    same_retval(obj(SOCKET % body), PACKET)


# --- programs the verifier refuses ---------------------------------------------------


# --- skb metadata dynptrs: empty in a test run ------------------------------------------

META = DECLS + r"""
extern int bpf_dynptr_from_skb_meta(struct __sk_buff *skb, __u64 flags,
                                    struct bpf_dynptr *ptr__uninit) __ksym __weak;
extern int bpf_dynptr_memset(struct bpf_dynptr *ptr, __u32 offset, __u32 size,
                             __u8 val) __ksym __weak;
SEC("tc") int prog(struct __sk_buff *skb)
{
    struct bpf_dynptr d; char b[4] = {};
    int r = bpf_dynptr_from_skb_meta(skb, %s, &d);
    %s
}
"""
# (flags, body, what the kernel returns): BPF_PROG_TEST_RUN gives a tc program no
# metadata (it refuses a data_meta in its ctx), so the dynptr is empty: 0 bytes, writable
META_CASES = {
    "size-0": (0, "return r ? r : bpf_dynptr_size(&d);", 0),
    "data-meta-is-data": (0, "return skb->data - skb->data_meta;", 0),
    "not-read-only": (0, "return r ? r : bpf_dynptr_is_rdonly(&d);", 0),
    "not-null": (0, "return r ? r : bpf_dynptr_is_null(&d);", 0),
    "read-0-bytes": (0, "return r ? r : bpf_dynptr_read(b, 0, &d, 0, 0);", 0),
    "read-1-byte": (0, "return r ? r : bpf_dynptr_read(b, 1, &d, 0, 0);", -E2BIG),
    "write-0-bytes": (0, "return r ? r : bpf_dynptr_write(&d, 0, b, 0, 0);", 0),
    "write-1-byte": (0, "return r ? r : bpf_dynptr_write(&d, 0, b, 1, 0);", -E2BIG),
    "slice": (0, "return r ? r : bpf_dynptr_slice(&d, 0, b, 4) != 0;", 0),
    "slice-rdwr": (0, "return r ? r : bpf_dynptr_slice_rdwr(&d, 0, b, 4) != 0;", 0),
    "data-helper": (0, "return r ? r : bpf_dynptr_data(&d, 0, 0) != 0;", 0),
    "adjust-to-0": (0, "return r ? r : bpf_dynptr_adjust(&d, 0, 0);", 0),
    "adjust-past-end": (0, "return r ? r : bpf_dynptr_adjust(&d, 0, 1);", -ERANGE),
    "memset-0-bytes": (0, "return r ? r : bpf_dynptr_memset(&d, 0, 0, 1);", 0),
    "memset-1-byte": (0, "return r ? r : bpf_dynptr_memset(&d, 0, 1, 1);", -E2BIG),
    "flags": (2, "return r;", -EINVAL),
    "flags-leave-a-null-dynptr": (1, "return bpf_dynptr_is_null(&d);", 1),
}


@pytest.mark.parametrize("case", META_CASES)
def test_an_skb_metadata_dynptr_is_empty_in_a_test_run_as_in_the_kernel(case):
    flags, body, want = META_CASES[case]
    assert same_retval(obj(META % (flags, body)), PACKET) == want & 0xFFFFFFFF

@pytest.mark.parametrize("source, message", [
    (TC % "bpf_dynptr_from_skb(skb, 0, &d);"
          "struct iphdr *ip = bpf_dynptr_slice(&d, 14, NULL, sizeof(*ip));"
          "return ip->ttl;",
     "invalid mem access 'rdonly_mem_or_null'"),
    (TC % "bpf_dynptr_from_skb(skb, 0, &d);"
          "struct iphdr *ip = bpf_dynptr_slice(&d, 14, NULL, sizeof(*ip));"
          "if (!ip) return 0; ip->ttl = 1; return 0;",
     "cannot write into rdonly_mem"),
    (TC % "bpf_dynptr_from_skb(skb, 0, &d);"
          "char *p = bpf_dynptr_slice_rdwr(&d, 14, NULL, 4);"
          "if (!p) return 0; return p[4];",
     "R1 min value is outside of the allowed memory range"),
    (TC % "return bpf_dynptr_size(&d);",
     "Expected an initialized dynptr as arg #0"),
    (TC % "bpf_dynptr_from_skb(skb, 0, &d); *(volatile __u64 *)&d = 0;"
          "return bpf_dynptr_size(&d);",
     "Expected an initialized dynptr as arg #0"),
    (TC % "bpf_dynptr_from_skb(skb, 0, &d); return *(volatile __u64 *)&d;",
     "invalid read from stack off -16+0 size 8"),
    (TC % "char x = 0; bpf_dynptr_from_skb(skb, 0, &d);"
          "char *p = bpf_dynptr_slice_rdwr(&d, 14, NULL, 4);"
          "if (!p) return 0; bpf_skb_store_bytes(skb, 0, &x, 1, 0); return p[0];",
     "invalid mem access 'scalar'"),
    (TC % "char x = 0; bpf_dynptr_from_skb(skb, 0, &d);"
          "char *p = bpf_dynptr_slice_rdwr(&d, 14, NULL, 4);"
          "if (!p) return 0; bpf_dynptr_write(&d, 0, &x, 1, 0); return p[0];",
     "invalid mem access 'scalar'"),
    (TC % "bpf_dynptr_from_skb(skb, 0, &d); char *p = bpf_dynptr_slice(&d, 14, NULL, 4);"
          "if (!p) return 0; return bpf_skb_load_bytes(skb, 0, p, 4);",
     "R3 type=rdonly_mem expected=fp, pkt, pkt_meta, map_key, map_value, mem"),
    (TC % "bpf_dynptr_from_skb(skb, 0, &d); char *p = bpf_dynptr_slice(&d, 14, NULL, 4);"
          "if (!p) return 0; return bpf_csum_diff(0, 0, (void *)p, 8, 0);",
     "R3 min value is outside of the allowed memory range"),
    (SOCKET % "bpf_dynptr_from_skb(skb, 0, &d);"
              "char *p = bpf_dynptr_slice_rdwr(&d, 14, NULL, 4); return p ? p[0] : 0;",
     "the prog does not allow writes to packet data"),
])
def test_a_dynptr_misuse_is_refused_as_the_kernel_refuses_it(source, message):
    refused_alike(obj(source), message)
