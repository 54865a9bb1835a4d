"""A helper's R0 bounded as the kernel bounds it after the call
(do_refine_retval_range): a CPU number below nr_cpu_ids, a string read at most its
buffer's size or an errno.  Each program takes a branch the bound decides and reads a
never-written register on the other side, so the verdict says whether the verifier
knew the bound; the kernel is the expected value."""
from __future__ import annotations

import pytest

from pyebpf import Program, asm, host
from pyebpf.errors import VerifierError
from skbdiff import CLS
from test_verifier_datapath import CRASH, _verdicts
from test_verifier_log_level2 import logs

CPU = "call 8\n"                                             # bpf_get_smp_processor_id
STR = "r1 = r10\nr1 += -16\nr2 = 16\nr3 = 0\ncall {id}\n"      # a 16-byte buffer


def _branch(call: str, cond: str) -> tuple[str, str]:
    return _verdicts(f"{call}if {cond} goto +1\n{CRASH}r0 = 0\nexit")


@pytest.mark.parametrize("cond", ["r0 <= {last}", "w0 <= {last}", "r0 s>= 0", "w0 s>= 0",
                                  "r0 < {n}"])
def test_a_cpu_number_is_below_nr_cpu_ids(cond):
    n = host.nr_cpu_ids()
    theirs, ours = _branch(CPU, cond.format(last=n - 1, n=n))
    assert ours == theirs == "accepted"


def test_a_cpu_number_may_be_any_of_the_machine_s():
    theirs, ours = _branch(CPU, "r0 == 0")
    assert ours == theirs == "R9 !read_ok"


@pytest.mark.parametrize("helper", [114, 115], ids=["probe_read_user_str",
                                                     "probe_read_kernel_str"])
@pytest.mark.parametrize("cond,verdict", [("r0 s<= 16", "accepted"),
                                          ("r0 s>= -4095", "accepted"),
                                          ("r0 s<= 15", "R9 !read_ok"),
                                          ("r0 s>= -4094", "R9 !read_ok")])
def test_a_string_read_returns_at_most_its_size_or_an_errno(helper, cond, verdict):
    theirs, ours = _branch(STR.format(id=helper), cond)
    assert ours == theirs == verdict


@pytest.mark.parametrize("call", [CPU, STR.format(id=115)], ids=["cpu", "string"])
def test_the_bounded_r0_prints_as_the_kernel_prints_it(call):
    theirs, ours = logs(f"{call}if r0 s> 1 goto +1\nr0 = 0\nr0 = 0\nexit")
    assert ours == theirs


def test_a_simulated_machine_s_cpus_bound_the_cpu_number():
    # tcsim --cpus N loads inside simulated_cpus(N): the bound follows, and a program
    # verified for one machine is verified again for another
    n = host.nr_cpu_ids()
    code = asm.assemble(f"{CPU}if r0 < {n} goto +1\n{CRASH}r0 = 0\nexit")
    Program(code, CLS)
    with host.simulated_cpus(n + 1), pytest.raises(VerifierError, match="R9 !read_ok"):
        Program(code, CLS)
