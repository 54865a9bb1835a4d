"""A map pointer read as the kernel's struct against the kernel (check_ptr_to_map_access):
what a privileged program reads of struct bpf_map and of bpf_array's and bpf_htab's own
members through ``(struct bpf_map *)&map`` (the selftests' map_ptr_kern.c), and the
reads the verifier refuses, in the kernel's words (verifier_map_ptr.c)."""
from __future__ import annotations

import pytest

from bpfc import compile_object
from objdiff import refused_alike, same_retval

PACKET = bytes(64)
# the members read, CO-RE relocated against the kernel's layout
STRUCTS = r"""
struct bpf_map {
    enum bpf_map_type map_type; __u32 key_size; __u32 value_size; __u32 max_entries;
    __u32 map_flags; int numa_node;
} __attribute__((preserve_access_index));
struct bpf_array { struct bpf_map map; __u32 elem_size; __u32 index_mask; }
    __attribute__((preserve_access_index));
struct bpf_htab { struct bpf_map map; __u32 n_buckets; __u32 elem_size; }
    __attribute__((preserve_access_index));
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 5);
    __type(key, __u32); __type(value, char[12]);
} arr SEC(".maps");
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); __uint(max_entries, 33);
    __type(key, __u32); __type(value, __u64);
} pcpu_arr SEC(".maps");
struct {
    __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 10); __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, __u32); __type(value, char[20]);
} hash SEC(".maps");
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_HASH); __uint(max_entries, 3);
    __type(key, char[6]); __type(value, __u64);
} pcpu_hash SEC(".maps");
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH); __uint(max_entries, 64);
    __type(key, __u64); __type(value, __u32);
} lru SEC(".maps");
char LICENSE[] SEC("license") = "GPL";
"""


def read(expr: str) -> bytes:
    return compile_object(STRUCTS + f"""
SEC("tc") int prog(struct __sk_buff *skb) {{ return {expr}; }}
""")


@pytest.mark.parametrize("expr, value", [
    ("((struct bpf_map *)&arr)->map_type", 2),
    ("((struct bpf_map *)&arr)->key_size", 4),
    ("((struct bpf_map *)&arr)->value_size", 12),
    ("((struct bpf_map *)&arr)->max_entries", 5),
    ("((struct bpf_map *)&hash)->map_flags", 1),
    ("((struct bpf_map *)&hash)->numa_node", -1),
    ("((struct bpf_array *)&arr)->elem_size", 16),
    ("((struct bpf_array *)&arr)->index_mask", 7),
    ("((struct bpf_array *)&pcpu_arr)->index_mask", 63),
    ("((struct bpf_htab *)&hash)->n_buckets", 16),
    ("((struct bpf_htab *)&hash)->elem_size", 48 + 8 + 24),
    ("((struct bpf_htab *)&pcpu_hash)->elem_size", 48 + 8 + 8),
    ("((struct bpf_htab *)&lru)->n_buckets", 64),
    ("((struct bpf_map *)&lru)->map_type", 9),
], ids=lambda v: v if isinstance(v, str) else None)
def test_a_map_pointer_reads_as_the_kernels_struct(expr, value):
    assert same_retval(read(expr), PACKET) & 0xFFFFFFFF == value & 0xFFFFFFFF


ASM = STRUCTS + r"""
SEC("tc") __attribute__((naked)) int prog(struct __sk_buff *skb)
{
    asm volatile ("%s" :: __imm_addr(arr) : "memory");
}
"""


def asm(body: str) -> bytes:
    """The program of the instructions ``body`` (separated by "; "), %[arr] the map."""
    return compile_object(ASM.replace("__imm_addr(arr)", '[arr] "i"(&arr)')
                          % body.replace("; ", "\\n"))


@pytest.mark.parametrize("body, message", [
    ("r1 = %[arr] ll; r6 = *(u64 *)(r1 - 8); r0 = 1; exit;",
     "R1 is bpf_array invalid negative access: off=-8"),
    ("r2 = 0; r1 = %[arr] ll; *(u64 *)(r1 + 0) = r2; r0 = 1; exit;",
     "only read from bpf_array is supported"),
    ("r1 = %[arr] ll; r6 = *(u32 *)(r1 + 41); r0 = 1; exit;",
     "cannot access ptr member ops with moff 40 in struct bpf_map with off 41 size 4"),
    ("r1 = %[arr] ll; r6 = *(u32 *)(r1 + 312); r0 = 1; exit;",
     "access beyond struct bpf_array at off 312 size 4"),
], ids=["negative-offset", "write", "inside-a-pointer", "past-the-end"])
def test_a_map_pointer_read_is_refused_as_the_kernel_refuses_it(body, message):
    refused_alike(asm(body), message)


def test_a_pointer_member_read_through_a_map_pointer_loads_as_in_the_kernel():
    """bpf_map's ops, at 40 since 6.18 put the map's SHA-256 (sha[32], zero here: no
    hash was asked for) and excl before it, where the selftest reads at 0."""
    assert same_retval(asm("r1 = %[arr] ll; r6 = *(u64 *)(r1 + 40); r0 = 1; exit;"),
                       PACKET) == 1


def test_the_maps_hash_reads_zero_as_in_the_kernel():
    assert same_retval(asm("r1 = %[arr] ll; r0 = *(u32 *)(r1 + 1); exit;"), PACKET) == 0
