"""Objects built as cilium's datapath is (bpf/bpf_lxc.c, bpf_host.c, ...), which cilium's
agent loads with cilium/ebpf and its own loader (pkg/bpf), not libbpf: tail-call programs
are static functions in ``tc/tail`` sections, each naming its slot of ``cilium_calls`` in a
``tail:MAP/N`` decl tag, and that program array asks for ``CILIUM_PIN_REPLACE``.  Each
object loads into pyebpf and into the kernel (``kernel.load_object``) from the same specs,
and runs alike on both sides (docs/elf.md, docs/corpus.md).
"""
import dataclasses

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

import pyebpf
from pyebpf import elf
from pyebpf.errors import ElfError

from bpfc import compile_object

PACKET = bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1234, dport=80))

TAILS = r"""
#define CILIUM_PIN_REPLACE (1 << 4)
#define __declare_tail(n) SEC("tc/tail") __attribute__((btf_decl_tag("tail:calls/" #n)))
struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(key_size, sizeof(__u32));
    __uint(max_entries, 8);
    __uint(pinning, CILIUM_PIN_REPLACE);
    __array(values, int ());
} calls SEC(".maps");
__declare_tail(3) int tail_three(struct __sk_buff *skb) { skb->cb[0] = 3; return 30; }
__declare_tail(5) static int tail_five(struct __sk_buff *skb) { skb->cb[0] = 5; return 50; }
SEC("tc/entry") int entry(struct __sk_buff *skb)
{
    bpf_tail_call(skb, &calls, skb->mark);
    return 1;
}
char _license[] SEC("license") = "GPL";
"""


@pytest.fixture(autouse=True)
def pin_root(tmp_path, monkeypatch):
    monkeypatch.setenv("PYEBPF_PIN_ROOT", str(tmp_path / "pins"))
    return tmp_path / "pins"


def _run_both(source, name, mark, spec=None):
    """(retval, cb[0]) of program ``name`` run on PACKET with ``mark``, in pyebpf and in
    the kernel."""
    data = compile_object(source)
    with pyebpf.kernel.load_object(spec or data) as kobj:
        k = kobj.program(name).test_run(PACKET, ctx={"mark": mark})
        theirs = (k.retval, k.skb["cb"][0])
    obj = pyebpf.load(spec or data)
    try:
        r = obj.program(name).run(PACKET, mark=mark)
        return (r.retval & 0xFFFFFFFF, r.skb.as_dict()["cb"][0]), theirs
    finally:
        obj.close()


@pytest.mark.parametrize("mark", [3, 5, 4], ids=["slot3", "static-slot5", "empty-slot"])
def test_a_tail_decl_tag_fills_its_slot_of_the_program_array(mark):
    ours, theirs = _run_both(TAILS, "entry", mark)
    assert ours == theirs


def test_the_tail_decl_tags_name_the_slots_each_program_fills():
    assert elf.parse(compile_object(TAILS)).maps["calls"].programs == {
        3: "tail_three", 5: "tail_five"}


def test_a_static_function_in_a_program_section_is_a_program_as_cilium_ebpf_reads_it():
    ours, theirs = _run_both(TAILS, "tail_five", 0)
    assert ours == theirs == (50, 5)


def test_cilium_pin_replace_creates_the_map_afresh_and_pins_nothing(pin_root):
    data = compile_object(TAILS)
    assert elf.parse(data).maps["calls"].pin_path is None
    first, second = pyebpf.load(data), pyebpf.load(data)
    try:
        assert first.maps["calls"] is not second.maps["calls"]
        assert not first.pins and not any(pin_root.rglob("*"))
    finally:
        first.close()
        second.close()


def test_an_object_spec_with_its_program_arrays_emptied_loads_without_its_tail_calls():
    spec = elf.parse(compile_object(TAILS))
    alone = dataclasses.replace(spec, maps={n: dataclasses.replace(m, programs={})
                                            for n, m in spec.maps.items()})
    assert elf.parse(alone) is alone
    ours, theirs = _run_both(TAILS, "entry", 3, spec=alone)
    assert ours == theirs == (1, 0)


@pytest.mark.parametrize("tag, message", [
    ("tail:calls/9", r"decl tag 'tail:calls/9': slot 9 of program array 'calls' \(8 "
                     r"entries\) is out of bounds"),
    ("tail:calls/3", r"decl tag 'tail:calls/3': slot 3 of program array 'calls' \(8 "
                     r"entries\) is filled twice"),
    ("tail:nothing/1", r"decl tag 'tail:nothing/1': the object has no program array "
                       r"'nothing'"),
    ("tail:calls/x", r"decl tag 'tail:calls/x' does not name a program and a slot"),
], ids=["out-of-bounds", "twice", "no-such-map", "no-slot"])
def test_a_bad_tail_decl_tag_is_one_elf_error_naming_it(tag, message):
    source = TAILS.replace('__declare_tail(5) static int tail_five',
                           f'SEC("tc/tail") __attribute__((btf_decl_tag("{tag}"))) '
                           f'static int tail_five')
    with pytest.raises(ElfError, match=message):
        elf.parse(compile_object(source))
