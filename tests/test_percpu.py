"""Per-CPU variables: typed __ksym externs of the kernel's .data..percpu section, and
bpf_per_cpu_ptr / bpf_this_cpu_ptr finding one CPU's copy.

The kernel here cannot load a program naming one (its kallsyms has no data symbols:
CONFIG_KALLSYMS_ALL is unset, so check_pseudo_btf_id finds no address), which a test
holds; pyebpf models the kernel with the addresses (as a distribution kernel has them),
so the runs below are checked against pyebpf's model (pyebpf.ksym,
pyebpf.trace.Machine's percpu=).  The helpers' argument check, which needs no such
variable, is compared with the kernel's."""
from __future__ import annotations

import pytest
from scapy.all import IP, TCP, Ether, raw

import pyebpf
from pyebpf import isa, ksym
from pyebpf.btf import relo
from pyebpf.errors import EbpfError, KernelError
from pyebpf.host import possible_cpus
from pyebpf.trace import Machine

from recorded_kernel import count_comparison
from test_core import _core_object

PACKET = raw(Ether() / IP() / TCP())
SOURCE = """
extern const int bpf_prog_active __ksym;
extern const struct pt_regs nmi_user_regs __ksym;
__u64 out[8];

SEC("tc")
int prog(struct __sk_buff *ctx)
{
    %s
    return 0;
}
char _license[] SEC("license") = "GPL";
"""


def _run(body: str, **fields) -> list[int]:
    obj = pyebpf.load(_core_object(SOURCE % body))
    obj.program("prog").run(PACKET, **fields)
    raw_out = obj.maps[".bss"].lookup(bytes(4))
    return [int.from_bytes(raw_out[8 * k:8 * k + 8], "little") for k in range(8)]


def _verdict(data: bytes) -> str | None:
    """pyebpf's refusal of the object's program (the verifier's message), or None."""
    try:
        pyebpf.load(data)
    except EbpfError as exc:
        return str(exc).rsplit("): ", 1)[-1]
    return None


def test_the_kernel_here_finds_no_address_for_a_per_cpu_variable(kernel_oracle):
    data = _core_object(SOURCE % "out[0] = *(int *)bpf_this_cpu_ptr(&bpf_prog_active);")
    with pytest.raises(KernelError) as exc:
        kernel_oracle.load_object(data).close()
    count_comparison()
    assert "ldimm64 failed to find the address for kernel symbol 'bpf_prog_active'." \
        in str(exc.value)
    pyebpf.load(data)      # pyebpf's kernel has it


def test_a_typed_ksym_is_an_lddw_of_its_btf_var():
    spec = pyebpf.elf.parse(_core_object(SOURCE % "out[0] = (long)&bpf_prog_active;"))
    lddws = [i for i in isa.unpack_program(spec.programs["prog"].insns)
             if i.is_lddw and i.src == isa.BPF_PSEUDO_BTF_ID]
    var = relo.target_btf().by_name("bpf_prog_active", pyebpf.btf.Kind.VAR)[0]
    assert [i.imm for i in lddws] == [var.id]


def test_per_cpu_ptr_is_null_past_the_possible_cpus():
    n = possible_cpus()
    body = "\n    ".join(f"out[{cpu}] = bpf_per_cpu_ptr(&bpf_prog_active, {cpu}) != 0;"
                         for cpu in range(n + 2))
    assert _run(body)[:n + 2] == [1] * n + [0, 0]


def test_per_cpu_ptr_points_at_the_cpus_copy():
    btf = relo.target_btf()
    assert _run("out[0] = (long)bpf_per_cpu_ptr(&bpf_prog_active, 1);")[0] == \
        ksym.percpu_address(btf, "bpf_prog_active", 1)


def test_a_per_cpu_variable_reads_zero_unless_the_machine_gives_it():
    body = "int *p = bpf_per_cpu_ptr(&bpf_prog_active, 0); if (p) out[0] = *p + 1;"
    assert _run(body)[0] == 1
    machine = Machine(percpu={"bpf_prog_active": {0: 41}})
    assert _run(body, machine=machine)[0] == 42


def test_this_cpu_ptr_reads_the_run_cpus_copy():
    machine = Machine(percpu={"bpf_prog_active": {0: 5, 1: 9}})
    body = "out[0] = *(int *)bpf_this_cpu_ptr(&bpf_prog_active);"
    assert _run(body, machine=machine, cpu=1)[0] == 9
    assert _run(body, machine=machine, cpu=0)[0] == 5


def test_a_per_cpu_struct_is_read_through_its_btf_pointer():
    machine = Machine(percpu={"nmi_user_regs": {0: {"ip": 0x1234, "sp": 0x5678}}})
    body = ("struct pt_regs *r = bpf_per_cpu_ptr(&nmi_user_regs, 0);"
            "if (r) { out[0] = r->ip; out[1] = r->sp; }")
    assert _run(body, machine=machine)[:2] == [0x1234, 0x5678]


def test_probe_read_kernel_reads_a_per_cpu_copy():
    machine = Machine(percpu={"bpf_prog_active": {0: 77}})
    body = ("int v = -1; void *p = bpf_per_cpu_ptr(&bpf_prog_active, 1);"
            "out[0] = bpf_probe_read_kernel(&v, 4, p); out[1] = v;"
            "p = bpf_per_cpu_ptr(&bpf_prog_active, 0);"
            "out[2] = bpf_probe_read_kernel(&v, 4, p); out[3] = v;")
    if possible_cpus() < 2:
        pytest.skip("needs two possible CPUs")
    assert _run(body, machine=machine)[:4] == [0, 0, 0, 77]


@pytest.mark.parametrize("body, message", [
    ("int *p = bpf_per_cpu_ptr(&bpf_prog_active, 0); out[0] = *p;",
     "invalid mem access 'rdonly_mem_or_null'"),
    ("int *p = bpf_this_cpu_ptr(&bpf_prog_active); *p = 1;",
     "cannot write into rdonly_mem"),
    ("int *p = bpf_this_cpu_ptr(&bpf_prog_active); out[0] = p[1];",
     "invalid access to memory, mem_size=4 off=4 size=4"),
    ("out[0] = *(volatile const int *)&bpf_prog_active;",
     "is ptr_int access percpu memory: off=0"),
    ("struct pt_regs *r = bpf_this_cpu_ptr(&nmi_user_regs); r->ip = 1;",
     "only read is supported"),
])
def test_memory_of_a_per_cpu_variable_is_read_only_and_bounded(body, message):
    verdict = _verdict(_core_object(SOURCE % body))
    assert verdict is not None and message in verdict, verdict


# --- the argument check, against the kernel ---------------------------------------------

PLAIN = """
__u64 out[2];

SEC("tc")
int prog(struct __sk_buff *ctx)
{
    int local = 0;
    %s
    return 0;
}
char _license[] SEC("license") = "GPL";
"""


@pytest.mark.parametrize("body", [
    "out[0] = (long)bpf_per_cpu_ptr(&local, 0);",
    "out[0] = (long)bpf_this_cpu_ptr(out);",
    "out[0] = (long)bpf_this_cpu_ptr(0);",
])
def test_a_pointer_that_is_no_per_cpu_variable_is_refused_as_the_kernel_refuses_it(
        body, kernel_oracle):
    data = _core_object(PLAIN % body)
    ours = _verdict(data)
    try:
        kernel_oracle.load_object(data).close()
        theirs = None
    except KernelError as exc:
        theirs = str(exc).split("refused the program: ", 1)[-1]
    count_comparison()
    assert ours == theirs
