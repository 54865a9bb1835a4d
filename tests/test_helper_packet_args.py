"""A packet pointer as a helper's argument: only helpers whose prototype allows packet
access take one (check_func_arg, may_access_direct_pkt_data: ``.pkt_access``); every other
helper is refused with "helper access to the packet is not allowed", even though the
bytes lie inside the checked range."""
import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from bpfc import compile_object
from objdiff import same_retval, verdicts

REFUSED = "helper access to the packet is not allowed"
PACKET = bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1000, dport=80) /
               bytes(range(40)))

MAP = """
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 8);
         __type(key, __u32); __type(value, __u64); } seen SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY); __uint(key_size, 4);
         __uint(value_size, 4); } events SEC(".maps");
"""


def program(body: str) -> bytes:
    """A tc program that checks 64 bytes of packet, then runs ``body`` with ``p`` the
    packet's first byte and ``skb`` the context."""
    return compile_object(MAP + f"""
SEC("tc") int prog(struct __sk_buff *skb) {{
    unsigned char *p = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
    if (p + 64 > end)
        return TC_ACT_OK;
    {body}
}}
char _license[] SEC("license") = "GPL";
""")


NOT_PACKET_HELPERS = {
    "skb_load_bytes into the packet": "return bpf_skb_load_bytes(skb, 0, p, 8);",
    "skb_store_bytes from the packet": "return bpf_skb_store_bytes(skb, 20, p, 4, 0);",
    "perf_event_output of packet bytes":
        "return bpf_perf_event_output(skb, &events, 0, p, 8);",
    "fib_lookup parameters in the packet":
        "return bpf_fib_lookup(skb, (void *)p, 64, 0);",
}


@pytest.mark.parametrize("body", NOT_PACKET_HELPERS.values(), ids=NOT_PACKET_HELPERS)
def test_a_helper_without_packet_access_refuses_a_packet_pointer(body):
    ours, theirs = verdicts(program(body))
    assert theirs is not None and REFUSED in theirs, theirs
    assert ours is not None and REFUSED in ours, ours


def test_csum_diff_takes_packet_bytes_and_sums_them_as_the_kernel_does():
    data = program("return bpf_csum_diff(0, 0, (void *)(p + 16), 8, 0) & 0x7fffffff;")
    assert verdicts(data) == (None, None)
    same_retval(data, PACKET)


def test_a_map_key_and_value_in_the_packet_are_taken():
    data = program("""
    if (bpf_map_update_elem(&seen, p + 26, p + 32, BPF_ANY))
        return TC_ACT_SHOT;
    return bpf_map_lookup_elem(&seen, p + 26) ? TC_ACT_OK : TC_ACT_SHOT;""")
    assert verdicts(data) == (None, None)
    assert same_retval(data, PACKET) == 0


def test_a_socket_lookup_tuple_in_the_packet_is_taken():
    data = program("""
    struct bpf_sock *sk = bpf_sk_lookup_tcp(skb, (void *)(p + 26), 12, -1, 0);
    if (sk) {
        bpf_sk_release(sk);
        return TC_ACT_SHOT;
    }
    return TC_ACT_OK;""")
    assert verdicts(data) == (None, None)
    assert same_retval(data, PACKET) == 0
