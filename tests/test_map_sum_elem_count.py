"""``bpf_map_sum_elem_count``: the element count the kernel keeps for hash maps (and
0 for other maps), after a program's updates and deletes, against the kernel's
BPF_PROG_TEST_RUN retval; and the load verdicts of a call with NULL or another pointer
where the map goes.
"""
import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from bpfc import compile_object
from objdiff import same_retval, verdicts

PROG = r"""
extern __s64 bpf_map_sum_elem_count(const struct bpf_map *map) __ksym __weak;

struct { __uint(type, %s); __uint(max_entries, 4); __uint(map_flags, %s);
         __type(key, __u32); __type(value, __u64); } m SEC(".maps");

SEC("tc") int prog(struct __sk_buff *skb) {
    __u64 v = 1;
    __s64 before = bpf_map_sum_elem_count((struct bpf_map *)&m);
#pragma clang loop unroll(full)
    for (__u32 i = 0; i < %d; i++) {
        __u32 k = i;
        bpf_map_update_elem(&m, &k, &v, BPF_ANY);
    }
    __u32 gone = 1;
    bpf_map_delete_elem(&m, &gone);
    return before | bpf_map_sum_elem_count((struct bpf_map *)&m) << 8;
}
"""

PACKET = bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2) /
               (b"\x07" * 20))


@pytest.mark.parametrize("map_type, flags, n, want", [
    ("BPF_MAP_TYPE_HASH", "0", 3, 2),
    ("BPF_MAP_TYPE_HASH", "0", 6, 3),                      # the fifth insert fails: full
    ("BPF_MAP_TYPE_HASH", "BPF_F_NO_PREALLOC", 3, 2),
    ("BPF_MAP_TYPE_PERCPU_HASH", "0", 3, 2),
    ("BPF_MAP_TYPE_LRU_HASH", "0", 3, 2),
    ("BPF_MAP_TYPE_ARRAY", "0", 3, 0),                     # arrays keep no count
    ("BPF_MAP_TYPE_PERCPU_ARRAY", "0", 3, 0),
])
def test_the_element_count_is_the_kernels(map_type, flags, n, want):
    assert same_retval(compile_object(PROG % (map_type, flags, n)), PACKET) == want << 8


@pytest.mark.parametrize("arg, message", [
    ("(struct bpf_map *)0", "Possibly NULL pointer passed to trusted arg0"),
    ("(struct bpf_map *)&v",
     "arg#0 pointer type STRUCT bpf_map must point to scalar, or struct with scalar"),
])
def test_something_other_than_a_map_is_refused_as_the_kernel_refuses_it(arg, message):
    source = PROG.replace("bpf_map_sum_elem_count((struct bpf_map *)&m) << 8",
                          f"bpf_map_sum_elem_count({arg}) << 8") % (
        "BPF_MAP_TYPE_HASH", "0", 1)
    ours, theirs = verdicts(compile_object(source))
    assert theirs is not None and message in theirs, theirs
    assert ours is not None and theirs in ours, (ours, theirs)
