"""Loads from a read-only array (libbpf's frozen ``.rodata``) at a constant offset are the
stored value, a known scalar (check_mem_access, bpf_map_direct_read): a branch on a
``const volatile`` setting is dead at load time when the setting says so, and what it
guards is not verified, as in the kernel."""
import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from bpfc import compile_object
from objdiff import same_retval, verdicts

PACKET = bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=7, dport=9) /
               bytes(20))
UNCHECKED = "offset is outside of the packet"


def guarded(setting: str, kind: str = "int", test: str = "debug") -> bytes:
    """A tc program whose packet read without a bounds check runs only when ``test``
    on the read-only ``debug`` (of ``kind``, set to ``setting``) is true."""
    return compile_object(f"""
const volatile {kind} debug = {setting};
SEC("tc") int prog(struct __sk_buff *skb) {{
    if ({test})
        return *(volatile int *)(long)skb->data;    /* no data_end check */
    return TC_ACT_OK;
}}
char _license[] SEC("license") = "GPL";
""", flags=("-O2", "-mcpu=v4"))


def test_a_branch_that_a_rodata_zero_makes_dead_is_not_verified():
    ours, theirs = verdicts(guarded("0"))
    assert theirs is None
    assert ours is None, ours


def test_the_same_branch_is_verified_when_the_rodata_value_takes_it():
    ours, theirs = verdicts(guarded("1"))
    assert theirs is not None and UNCHECKED in theirs, theirs
    assert ours is not None and UNCHECKED in ours, ours


def test_the_dead_branch_leaves_the_program_running_as_the_kernel_runs_it():
    assert same_retval(guarded("0"), PACKET) == 0


@pytest.mark.parametrize("setting,accepted", [("-1", True), ("1", False)])
def test_a_sign_extending_load_of_a_rodata_byte_gives_its_signed_value(setting, accepted):
    # -mcpu=v4 loads a signed char with ldsx: -1 must be known as -1, not 255
    ours, theirs = verdicts(guarded(setting, "signed char", "debug > 0"))
    assert (theirs is None) == accepted, theirs
    assert (ours is None) == accepted, ours


def test_an_offset_into_a_rodata_struct_reads_the_field_there():
    data = compile_object("""
const volatile struct { int first; long second; short third; } cfg = { 5, 0, 1 };
SEC("tc") int prog(struct __sk_buff *skb) {
    if (cfg.second)
        return *(volatile int *)(long)skb->data;
    return cfg.first + cfg.third;
}
char _license[] SEC("license") = "GPL";
""", flags=("-O2", "-mcpu=v3"))
    ours, theirs = verdicts(data)
    assert (ours, theirs) == (None, None), (ours, theirs)
    assert same_retval(data, PACKET) == 6


def test_a_read_only_map_the_loader_does_not_freeze_loads_unknown_values():
    """bpf_map_is_rdonly wants the map frozen too: a ``BPF_F_RDONLY_PROG`` array of
    ``.maps`` (cilium's ``cilium_encrypt_state``), which no loader freezes, loads an
    unknown scalar, so the branch its 0 would make dead is verified (pyebpf took the 0
    and accepted; cilium's cil_to_netdev: 127,166 instructions processed, the kernel
    127,193)."""
    ours, theirs = verdicts(compile_object("""
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __uint(map_flags, BPF_F_RDONLY_PROG);
    __type(key, __u32);
    __type(value, __u8);
} settings SEC(".maps");
SEC("tc") int prog(struct __sk_buff *skb) {
    __u32 key = 0;
    __u8 *debug = bpf_map_lookup_elem(&settings, &key);
    if (debug && *debug)
        return *(volatile int *)(long)skb->data;    /* no data_end check */
    return TC_ACT_OK;
}
char _license[] SEC("license") = "GPL";
""", flags=("-O2", "-mcpu=v4")))
    assert theirs is not None and UNCHECKED in theirs, theirs
    assert ours is not None and UNCHECKED in ours, ours
