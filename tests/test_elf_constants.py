"""Constants a loader writes into the code before the load: an ``lddw`` naming an undefined
symbol that is neither ``__kconfig`` nor ``__ksym``, as cloudflare's rakelimit declares its
packet-rate limit (``asm("%0 = LIMIT ll")``, written by its ``rewriteConstant`` through
cilium/ebpf), given by ``pyebpf.elf.parse(constants=...)``; the kernel runs the same
spec."""
from __future__ import annotations

import pytest
from scapy.all import IP, TCP, Ether, raw

import pyebpf
from pyebpf import elf
from pyebpf.errors import ElfError

import bpfc

PACKET = raw(Ether() / IP() / TCP())
# rakelimit's PARAMETER(): the value comes only from the relocation, never from the ELF
LIMIT = """
SEC("socket")
int limit(struct __sk_buff *skb)
{
    __u64 v;
    asm("%0 = LIMIT ll" : "=r"(v));
    return (v >> 32) ^ (__u32)v;
}
char _license[] SEC("license") = "GPL";
"""


@pytest.mark.parametrize("value", [100, 0x1234_5678_9ABC_DEF0, -2])
def test_a_rewritten_constant_is_the_lddw_value_the_kernel_runs(kernel_oracle, value):
    spec = elf.parse(bpfc.compile_object(LIMIT), constants={"LIMIT": value})
    ours = pyebpf.load(spec).program("limit").run(PACKET, sf_start="network").retval
    with kernel_oracle.load_object(spec) as kobj:
        theirs = kobj.program("limit").test_run(PACKET).retval
    v = value & 0xFFFF_FFFF_FFFF_FFFF
    assert (ours, theirs) == ((v >> 32) ^ (v & 0xFFFF_FFFF),) * 2


def test_a_constant_not_given_is_refused_as_libbpf_refuses_it():
    with pytest.raises(ElfError, match=r"symbol 'LIMIT'.*neither __kconfig nor __ksym"):
        elf.parse(bpfc.compile_object(LIMIT), constants={"OTHER": 1})


def test_a_constant_out_of_64_bits_is_one_error_naming_it():
    with pytest.raises(ElfError, match=r"symbol 'LIMIT'.*constant 18446744073709551616 is "
                                       r"not a 64-bit integer"):
        elf.parse(bpfc.compile_object(LIMIT), constants={"LIMIT": 1 << 64})
