"""The ``4.6`` profile's load decisions where they differ from today's kernel.

There is no 4.6 kernel to ask: each rule is read from 4.6's source (the function named in
each test), and each program is one today's kernel loads (asked, or its recorded answer),
so the test shows the profile refusing what the current rules accept.
"""
from __future__ import annotations

import pytest

from pyebpf import Program, asm, errors, isa, kernel
from skbdiff import CLS, SF


def today(text: str, prog_type=CLS) -> None:
    """pyebpf's current profile and the running kernel both accept ``text``."""
    Program.from_asm(text, prog_type)
    with kernel.KernelProgram(asm.assemble(text), prog_type, log_level=0):
        pass


def refused_by_46(text: str, prog_type=CLS) -> str:
    with pytest.raises(errors.VerifierError) as exc:
        Program.from_asm(text, prog_type, profile="4.6")
    return str(exc.value)


def test_bpf_prog_load_in_4_6_refuses_4096_instructions():
    """bpf_prog_load: ``insn_cnt >= BPF_MAXINSNS`` is EINVAL (today: more than
    1,000,000 for root)."""
    text = "r0 = 0\n" * (isa.BPF_MAXINSNS - 1) + "exit"
    today(text)
    assert "at most 4095" in refused_by_46(text)


def test_bpf_prog_load_in_4_6_takes_4095_instructions():
    text = "r0 = 0\n" * (isa.BPF_MAXINSNS - 2) + "exit"
    Program.from_asm(text, CLS, profile="4.6")


def test_check_cfg_in_4_6_refuses_a_bounded_loop():
    """check_cfg: any edge back to an instruction on the current DFS path is a
    back-edge (bounded loops came in 5.3)."""
    text = "r0 = 0\nr1 = 0\nr1 += 1\nif r1 < 4 goto -2\nexit"
    today(text)
    assert "back-edge from insn 3 to 2" in refused_by_46(text)


def test_check_cfg_in_4_6_refuses_a_backward_unconditional_jump():
    text = "r0 = 0\nr1 = 0\nif r1 > 0 goto +2\nr1 = 1\ngoto -3\nexit"
    today(text)
    assert "back-edge from insn 4 to 2" in refused_by_46(text)


def test_do_check_in_4_6_refuses_a_bpf_to_bpf_call():
    """do_check: a BPF_CALL with a source register is ``BPF_CALL uses reserved
    fields`` (bpf-to-bpf calls came in 4.16)."""
    text = "call sub\nexit\nsub:\nr0 = 0\nexit"
    today(text)
    assert "BPF_CALL uses reserved fields" in refused_by_46(text)


def test_check_call_in_4_6_knows_no_helper_past_30():
    """check_call: ``func_id >= __BPF_FUNC_MAX_ID`` (31 in 4.6) is ``invalid func``;
    bpf_skb_change_proto (31) came in 4.8."""
    text = "r1 = r1\nr2 = 0\nr3 = 0\ncall 31\nr0 = 0\nexit"
    today(text)
    assert "invalid func 31" in refused_by_46(text)


def test_check_call_in_4_6_refuses_a_helper_the_type_does_not_offer():
    """check_call: a helper the program type's get_func_proto does not give is
    ``unknown func``: sk_filter_func_proto had no bpf_get_cgroup_classid (17; today
    socket filters may call it)."""
    text = "call 17\nr0 = 0\nexit"
    today(text, SF)
    assert "unknown func 17" in refused_by_46(text, SF)


def test_check_call_in_4_6_gives_classifiers_helpers_up_to_30():
    Program.from_asm("r1 = 0\nr2 = 0\nr3 = 0\nr4 = 0\nr5 = 0\ncall 28\nr0 = 0\nexit",
                     CLS, profile="4.6")


def test_tc_cls_act_is_valid_access_in_4_6_has_no_data_pointers():
    """4.6's struct __sk_buff ended at tc_classid (76 bytes): skb->data came in 4.7."""
    text = "r2 = *(u32 *)(r1 + 76)\nr0 = 0\nexit"
    today(text)
    assert "outside struct __sk_buff" in refused_by_46(text)
