"""Typeless __ksym externs: the address libbpf writes into the lddw, from the modelled
kernel's symbols in pyebpf and from /proc/kallsyms in the kernel oracle."""
from __future__ import annotations

import pytest
from scapy.all import IP, TCP, Ether, raw

import pyebpf
from pyebpf import isa, ksym
from pyebpf.btf import relo
from pyebpf.errors import ElfError

import bpfc

PACKET = raw(Ether() / IP() / TCP())
# tcp_v4_rcv is a function of every kernel with IPv4 (in its BTF and in kallsyms)
EXISTS = """
extern const void tcp_v4_rcv __ksym __weak;
extern const void no_such_symbol_in_any_kernel __ksym __weak;

SEC("tc")
int ksyms(struct __sk_buff *skb)
{
    /* libbpf's bpf_ksym_exists() */
    return ((long)&tcp_v4_rcv != 0) | ((long)&no_such_symbol_in_any_kernel != 0) << 1;
}
char _license[] SEC("license") = "GPL";
"""


def _lddw_immediates(spec, program):
    insns = isa.unpack_program(spec.programs[program].insns)
    return [(a.imm & 0xFFFFFFFF) | (b.imm & 0xFFFFFFFF) << 32
            for a, b in zip(insns, insns[1:]) if a.is_lddw]


def test_a_kernel_symbol_exists_and_a_missing_weak_one_is_zero():
    prog = pyebpf.load(bpfc.compile_object(EXISTS)).program("ksyms")
    assert prog.run(PACKET).retval == 1


def test_the_kernel_resolves_typeless_ksyms_as_pyebpf_does(live_kernel):
    data = bpfc.compile_object(EXISTS)
    with live_kernel.load_object(data) as kobj:
        theirs = kobj.program("ksyms").test_run(PACKET, ctx={})
    assert theirs.retval == pyebpf.load(data).program("ksyms").run(PACKET).retval


def test_a_typeless_ksym_is_a_constant_lddw_of_the_modelled_address():
    spec = pyebpf.elf.parse(bpfc.compile_object(EXISTS))
    modelled = ksym.modelled(relo.target_btf())
    assert sorted(_lddw_immediates(spec, "ksyms")) == [0, modelled["tcp_v4_rcv"]]
    assert all(insn.src == 0 for insn in isa.unpack_program(spec.programs["ksyms"].insns)
               if insn.is_lddw)


def test_the_addresses_given_are_the_ones_written():
    spec = pyebpf.elf.parse(bpfc.compile_object(EXISTS),
                            kallsyms={"tcp_v4_rcv": 0xFFFFFFFF82035B40})
    assert sorted(_lddw_immediates(spec, "ksyms")) == [0, 0xFFFFFFFF82035B40]


def test_a_strong_ksym_the_kernel_lacks_is_one_error_naming_it():
    source = ('extern const void no_such_symbol_in_any_kernel __ksym;\n'
              'SEC("tc") int f(struct __sk_buff *s) '
              '{ return (long)&no_such_symbol_in_any_kernel & 1; }\n'
              'char _l[] SEC("license") = "GPL";')
    with pytest.raises(ElfError, match=r"symbol 'no_such_symbol_in_any_kernel'.*no such "
                                       r"kernel symbol"):
        pyebpf.load(bpfc.compile_object(source))


def test_a_typed_ksym_variable_the_kernel_lacks_is_one_error_naming_it():
    source = ('extern const int some_kernel_int __ksym;\n'
              'SEC("tc") int f(struct __sk_buff *s) { return (long)&some_kernel_int; }\n'
              'char _l[] SEC("license") = "GPL";')
    with pytest.raises(ElfError, match=r"symbol 'some_kernel_int'.*not found in the kernel "
                                       r"BTF"):
        pyebpf.load(bpfc.compile_object(source))


def test_a_weak_typed_ksym_variable_the_kernel_lacks_is_null():
    source = ('extern const int some_kernel_int __ksym __weak;\n'
              'SEC("tc") int f(struct __sk_buff *s) { return &some_kernel_int != 0; }\n'
              'char _l[] SEC("license") = "GPL";')
    assert pyebpf.load(bpfc.compile_object(source)).program("f").run(PACKET).retval == 0
