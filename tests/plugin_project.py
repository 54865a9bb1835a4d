"""Throwaway projects for the pytest plugin's tests: a C classifier and test files that
use only what the plugin offers (fixtures, marker, options) and ``pyebpf.TC_ACT``."""
from __future__ import annotations

import importlib.metadata

CLASSIFIER_C = """\
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 16);
} seen SEC(".maps");

/* drops ICMP and expired packets, forwards the rest with the TTL decremented */
SEC("tc")
int classify(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	__u32 proto;
	__u64 one = 1, *count;
	__u32 check;

	if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	proto = ip->protocol;
	count = bpf_map_lookup_elem(&seen, &proto);
	if (count)
		__sync_fetch_and_add(count, 1);
	else
		bpf_map_update_elem(&seen, &proto, &one, BPF_ANY);
	if (ip->protocol == IPPROTO_ICMP)
		return TC_ACT_SHOT;
	if (ip->ttl <= 1)
		return TC_ACT_SHOT;
	check = ip->check + bpf_htons(0x0100);
	ip->check = check + (check >= 0xFFFF);
	ip->ttl--;
	return TC_ACT_OK;
}

char _license[] SEC("license") = "GPL";
"""

TESTS_PASSING = """\
import pytest
from scapy.layers.inet import ICMP, IP, TCP
from scapy.layers.l2 import Ether

from pyebpf import TC_ACT

FRAME = Ether() / IP(src="192.0.2.1", dst="198.51.100.7", ttl=64) / TCP(dport=22)


@pytest.mark.pyebpf_kernel_check
def test_icmp_is_dropped(pyebpf_load):
    res = pyebpf_load("classifier.c").program().run(Ether() / IP() / ICMP())
    assert res.verdict == TC_ACT.SHOT


@pytest.mark.pyebpf_kernel_check
def test_tcp_passes_with_ttl_decremented(pyebpf_load):
    res = pyebpf_load("classifier.c").program("classify").run(FRAME)
    assert res.verdict == TC_ACT.OK
    assert res.packet[IP].ttl == 63 and res.checksums_ok
    assert [c.field for c in res.changed] == ["IP.ttl", "IP.chksum"]


@pytest.mark.pyebpf_kernel_check
def test_counts_by_protocol(pyebpf_load):
    obj = pyebpf_load("classifier.c", section="tc")
    for _ in range(3):
        obj.program().run(FRAME)
    assert obj.maps["seen"].typed("I", "Q")[6] == 3


def test_maps_are_fresh_per_test(pyebpf_load):
    obj = pyebpf_load("classifier.c")
    assert len(obj.maps["seen"]) == 0


def test_kernel_fixture(pyebpf_kernel):
    assert pyebpf_kernel.available()[0]
"""

TESTS_FAILING = """\
from scapy.layers.inet import ICMP, IP, TCP
from scapy.layers.l2 import Ether

from pyebpf import TC_ACT


def test_wrong_verdict(pyebpf_load):
    res = pyebpf_load("classifier.c").program().run(Ether() / IP() / ICMP())
    assert res.verdict == TC_ACT.OK


def test_wrong_packet(pyebpf_load):
    frame = Ether() / IP(ttl=64) / TCP()
    res = pyebpf_load("classifier.c").program().run(frame)
    assert res.packet == Ether(bytes(frame))
"""

SMALL_C = """\
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

SEC("tc")
int small(struct __sk_buff *skb)
{
	if (skb->mark == 7)
		return TC_ACT_SHOT;
	return TC_ACT_OK;
}

char _license[] SEC("license") = "GPL";
"""

SMALL_TESTS = """\
from pyebpf import TC_ACT

FRAME = bytes(64)


def test_mark_7_is_shot(pyebpf_load):
    assert pyebpf_load("small.c", cflags=["-O0"]).program().run(FRAME, mark=7).verdict == TC_ACT.SHOT


def test_other_marks_pass(pyebpf_load):
    prog = pyebpf_load("small.c", cflags=["-O0"]).program()
    assert prog.run(FRAME, mark=0).verdict == TC_ACT.OK
    assert prog.run(FRAME, mark=1).verdict == TC_ACT.OK
"""

# Hand count for SMALL_C at -O0 over the three runs above (marks 7, 0, 1): the function's
# entry (its line info names the signature, line 6) and the test (line 8) run 3 times,
# line 9 once, line 10 twice, the common return (line 11) 3 times; the test's one
# conditional jump ("if mark != 7") is taken twice and falls through once.
SMALL_LINES = {6: 3, 8: 3, 9: 1, 10: 2, 11: 3}
SMALL_BRANCHES = {(8, 0, 0, 2), (8, 0, 1, 1)}


def plugin_args() -> list[str]:
    """``-p pyebpf.pytest_plugin`` unless the installed package's entry point loads it
    already (registering it twice is an error)."""
    if any(ep.name == "pyebpf" for ep in importlib.metadata.entry_points(group="pytest11")):
        return []
    return ["-p", "pyebpf.pytest_plugin"]
