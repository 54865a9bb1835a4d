"""The license rules of BPF_PROG_LOAD against the kernel: a program whose license is not
GPL-compatible may call no GPL-only helper ("cannot call GPL-restricted function from
non-GPL compatible program", checked before the helper's arguments) and no kernel
function ("cannot call kernel function from non-GPL compatible program", before any
path is walked); an ELF object's license is its "license" section."""
from __future__ import annotations

import pytest

from pyebpf import asm, errors, isa, kernel, load, verifier
from pyebpf.kernel import sysbpf
from pyebpf.verifier import license as licenses, rules
from recorded_kernel import count_comparison

T = isa.ProgType
TYPES = [T.BPF_PROG_TYPE_SOCKET_FILTER, T.BPF_PROG_TYPE_SCHED_CLS,
         T.BPF_PROG_TYPE_SCHED_ACT, T.BPF_PROG_TYPE_KPROBE]
GPL_MSG = "cannot call GPL-restricted function from non-GPL compatible program"


def kernel_log(prog_type, text: str, license: str) -> str:
    count_comparison()
    fd, _err, log = sysbpf.calls.prog_load(prog_type, asm.assemble(text),
                                           license.encode() + b"\0", isa.BPF_LOG_LEVEL1)
    if fd >= 0:
        sysbpf.calls.close(fd)
    return log


def words(exc: errors.VerifierError) -> str:
    """A refusal's message without the instruction it names."""
    return str(exc).removeprefix(f"pc {exc.pc} ({exc.insn}): ")


def refusal(prog_type, text: str, license: str) -> str | None:
    try:
        verifier.verify(isa.unpack_program(asm.assemble(text)), prog_type,
                        license=license)
    except errors.VerifierError as exc:
        return words(exc)
    return None


@pytest.mark.parametrize("prog_type", TYPES, ids=lambda t: t.name[14:].lower())
def test_the_gpl_only_helpers_of_each_type_are_the_kernels(prog_type):
    """Every helper pyebpf offers the type, called with nothing set up by a program
    licensed "Proprietary": refused for its license exactly where the kernel is."""
    allowed = sorted(rules.helpers_allowed(prog_type, "current", False))
    mine, theirs = set(), set()
    for hid in allowed:
        text = f"call {hid}\nr0 = 0\nexit"
        if GPL_MSG in kernel_log(prog_type, text, "Proprietary"):
            theirs.add(isa.HELPER_NAMES[hid])
        if refusal(prog_type, text, "Proprietary") == GPL_MSG:
            mine.add(isa.HELPER_NAMES[hid])
    assert mine == theirs
    assert theirs           # every type offers some GPL-only helper


@pytest.mark.parametrize("license", sorted(licenses.GPL_COMPATIBLE) + [
    "Proprietary", "", "gpl", "GPL v3", "Dual BSD/GPL ", "BSD"])
def test_which_licenses_may_call_a_gpl_only_helper(license):
    text = "r1 = r10\nr1 += -8\n*(u64 *)(r1 + 0) = 0\nr2 = 8\ncall trace_printk\n" \
        "r0 = 0\nexit"
    theirs = GPL_MSG in kernel_log(T.BPF_PROG_TYPE_SCHED_CLS, text, license)
    assert (refusal(T.BPF_PROG_TYPE_SCHED_CLS, text, license) == GPL_MSG) == theirs
    assert theirs == (license not in licenses.GPL_COMPATIBLE)


def test_the_license_is_checked_before_the_helpers_arguments():
    """bpf_fib_lookup with no argument set: the license refuses it first."""
    text = f"call {isa.HELPER_IDS['fib_lookup']}\nr0 = 0\nexit"
    log = kernel_log(T.BPF_PROG_TYPE_SCHED_CLS, text, "MIT")
    assert log.splitlines()[-2] == GPL_MSG
    assert refusal(T.BPF_PROG_TYPE_SCHED_CLS, text, "MIT") == GPL_MSG


KFUNC = """
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
extern void bpf_rcu_read_lock(void) __ksym;
extern void bpf_rcu_read_unlock(void) __ksym;
SEC("tc")
int prog(struct __sk_buff *skb)
{
\tbpf_rcu_read_lock();
\tbpf_rcu_read_unlock();
\treturn 0;
}
char _license[] SEC("license") = "%s";
"""


@pytest.mark.parametrize("license", ["GPL", "Dual MIT/GPL", "Proprietary"])
def test_a_kfunc_call_needs_a_gpl_compatible_license(license):
    """Refused before any path is walked, at the first call."""
    from bpfc import compile_object
    obj = compile_object(KFUNC % license, prelude=False)
    try:
        kernel.load_object(obj).close()
        theirs = None
    except errors.KernelError as exc:
        theirs = exc.log
    try:
        load(obj, pin=False).close()
        mine = None
    except errors.ElfError as exc:
        mine = exc.__cause__
    assert (theirs is None) == (license in licenses.GPL_COMPATIBLE)
    assert (mine is None) == (theirs is None), (mine, theirs)
    if mine is not None:
        assert words(mine) == licenses.KFUNC_REFUSAL
        assert theirs.startswith(licenses.KFUNC_REFUSAL + "\nprocessed 0 insns")
        assert mine.pc == 0


PRINTK = """
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
SEC("tc")
int prog(struct __sk_buff *skb)
{
\tbpf_printk("len %%u", skb->len);
\treturn 0;
}
%s
"""


@pytest.mark.parametrize("section", ['char _license[] SEC("license") = "Dual BSD/GPL";',
                                     'char _license[] SEC("license") = "Proprietary";'],
                         ids=["gpl-compatible", "proprietary"])
def test_an_objects_license_section_decides_for_its_programs(section):
    from bpfc import compile_object
    obj = compile_object(PRINTK % section, prelude=False)
    try:
        kernel.load_object(obj).close()
        theirs = None
    except errors.KernelError as exc:
        theirs = str(exc)
    try:
        load(obj, pin=False).close()
        mine = None
    except errors.ElfError as exc:
        mine = words(exc.__cause__)
    assert (mine is None) == (theirs is None), (mine, theirs)
    assert (mine is None) == ("Proprietary" not in section)
    if mine is not None:
        assert mine == GPL_MSG and GPL_MSG in theirs


@pytest.mark.parametrize("license", ["GPL", "Proprietary"])
def test_the_bpf_command_loads_with_its_license(license):
    """pyebpf.bpf(BPF_PROG_LOAD) decides with the license it is given, as bpf(2)."""
    import pyebpf
    text = "r1 = r10\nr1 += -8\n*(u64 *)(r1 + 0) = 0\nr2 = 8\ncall trace_printk\n" \
        "r0 = 0\nexit"
    theirs = GPL_MSG in kernel_log(T.BPF_PROG_TYPE_SCHED_CLS, text, license)
    log = bytearray(4096)
    try:
        pyebpf.bpf("PROG_LOAD", dict(prog_type=T.BPF_PROG_TYPE_SCHED_CLS,
                                     insns=asm.assemble(text),
                                     license=license.encode() + b"\0", log_level=1,
                                     log_buf=log, log_size=len(log)))
        mine = False
    except errors.BpfError:
        mine = GPL_MSG in log.decode(errors="replace")
    assert mine == theirs == (license == "Proprietary")
