"""The ``4.6`` profile's load decisions where they differ from today's kernel.

There is no 4.6 kernel to ask: each rule is read from 4.6's source (the function named in
each test), and each program is one today's kernel loads (asked, or its recorded answer),
so the test shows the profile refusing what the current rules accept.
"""
from __future__ import annotations

import pytest

from pyebpf import Map, Program, asm, errors, isa, kernel
from skbdiff import CLS, SF

KPROBE = isa.ProgType.BPF_PROG_TYPE_KPROBE


def today(text: str, prog_type=CLS, license: str = "GPL", kernel_text: str = "") -> None:
    """pyebpf's current profile and the running kernel both accept ``text``
    (``kernel_text``: the same program naming the kernel's maps)."""
    Program.from_asm(text, prog_type, license=license)
    with kernel.KernelProgram(asm.assemble(kernel_text or text), prog_type, license=license,
                              log_level=0):
        pass


def refused_today(text: str, prog_type=CLS) -> str:
    """pyebpf's current profile and the running kernel both refuse ``text``: the
    kernel's words."""
    with pytest.raises(errors.VerifierError):
        Program.from_asm(text, prog_type)
    with pytest.raises(errors.KernelError) as exc:
        with kernel.KernelProgram(asm.assemble(text), prog_type, log_level=0):
            pass
    return str(exc.value)


def _46(prog_type) -> dict:
    # a 4.6 kprobe program names the 4.6 kernel's version (bpf_prog_load)
    return {"kern_version": isa.LINUX_VERSION_CODE_4_6} if prog_type == KPROBE else {}


def refused_by_46(text: str, prog_type=CLS, license: str = "GPL") -> str:
    with pytest.raises(errors.VerifierError) as exc:
        Program.from_asm(text, prog_type, profile="4.6", license=license, **_46(prog_type))
    return str(exc.value)


def accepted_by_46(text: str, prog_type=CLS, license: str = "GPL") -> None:
    Program.from_asm(text, prog_type, profile="4.6", license=license)


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


# --- helper arguments: 4.6's check_func_arg and check_stack_boundary ---------------------

# bpf_skb_load_bytes(skb, 0, fp - 8, 8): 4.6 gave it ARG_PTR_TO_STACK (its buffer read as
# if the helper read it; ARG_PTR_TO_RAW_STACK came in 4.7), today ARG_PTR_TO_UNINIT_MEM
LOAD_8 = "r1 = r6\nr2 = 0\nr3 = r10\nr3 += -8\nr4 = 8\ncall skb_load_bytes\nr0 = 0\nexit"


def test_check_stack_boundary_in_4_6_refuses_an_unwritten_buffer():
    """check_stack_boundary: every byte of an ARG_PTR_TO_STACK buffer must be
    STACK_MISC; ``invalid indirect read from stack off %d+%d size %d``."""
    text = "r6 = r1\n" + LOAD_8
    today(text)
    assert "invalid indirect read from stack off -8+0 size 8" in refused_by_46(text)


def test_check_stack_boundary_in_4_6_names_the_first_unwritten_byte():
    text = "r6 = r1\n*(u32 *)(r10 - 8) = 0\n" + LOAD_8
    today(text)
    assert "invalid indirect read from stack off -8+4 size 8" in refused_by_46(text)


def test_check_stack_boundary_in_4_6_refuses_a_spilled_pointer():
    """check_stack_write of 4.6 marks a spilled pointer's bytes STACK_SPILL, which
    check_stack_boundary does not take."""
    text = "r6 = r1\n*(u64 *)(r10 - 8) = r1\n" + LOAD_8
    today(text)
    assert "invalid indirect read from stack off -8+0 size 8" in refused_by_46(text)


def test_check_stack_boundary_in_4_6_takes_a_written_buffer():
    accepted_by_46("r6 = r1\n*(u64 *)(r10 - 8) = 0\n" + LOAD_8)


def test_check_stack_boundary_in_4_6_takes_a_stored_scalar():
    """is_spillable_regtype of 4.6: a scalar stored from a register is STACK_MISC."""
    accepted_by_46("r6 = r1\nr2 = *(u32 *)(r1 + 0)\n*(u64 *)(r10 - 8) = r2\n" + LOAD_8)


def test_check_func_arg_in_4_6_wants_a_constant_size():
    """check_func_arg: ARG_CONST_STACK_SIZE expects CONST_IMM (``R4 type=inv
    expected=imm``); today a bounded size is enough."""
    text = ("r6 = r1\n*(u64 *)(r10 - 8) = 0\nr4 = *(u32 *)(r6 + 0)\nr4 &= 7\nr4 += 1\n"
            "r1 = r6\nr2 = 0\nr3 = r10\nr3 += -8\ncall skb_load_bytes\nr0 = 0\nexit")
    today(text)
    assert "R4 type=inv expected=imm" in refused_by_46(text)


def test_check_stack_boundary_in_4_6_refuses_a_zero_size():
    """``access_size <= 0`` is ``invalid stack type``: bpf_probe_read's size was
    ARG_CONST_STACK_SIZE (today ARG_CONST_SIZE_OR_ZERO, which takes 0)."""
    text = "r1 = r10\nr1 += -8\nr2 = 0\nr3 = 0\ncall probe_read\nr0 = 0\nexit"
    today(text, KPROBE)
    assert "invalid stack type R1 off=-8 access_size=0" in refused_by_46(text, KPROBE)


def test_check_stack_boundary_in_4_6_refuses_a_buffer_past_the_frame():
    """``off + access_size > 0``; today's kernel refuses it too."""
    text = "r6 = r1\n*(u64 *)(r10 - 8) = 0\n" + LOAD_8.replace("r4 = 8", "r4 = 9")
    assert "invalid" in refused_today(text)
    assert "invalid stack type R3 off=-8 access_size=9" in refused_by_46(text)


def test_check_stack_boundary_in_4_6_takes_a_null_buffer_of_size_zero_for_csum_diff():
    """ARG_CONST_STACK_SIZE_OR_ZERO (bpf_csum_diff, new in 4.6): NULL with size 0."""
    text = "r1 = 0\nr2 = 0\nr3 = 0\nr4 = 0\nr5 = 0\ncall csum_diff\nr0 = 0\nexit"
    today(text)
    accepted_by_46(text)


def test_check_stack_boundary_in_4_6_refuses_a_null_buffer_of_size_four():
    text = "r1 = 0\nr2 = 4\nr3 = 0\nr4 = 0\nr5 = 0\ncall csum_diff\nr0 = 0\nexit"
    assert "R1 type=scalar expected=fp" in refused_today(text)
    assert "R1 type=imm expected=fp" in refused_by_46(text)


@pytest.fixture
def arrays():
    """An array of 8-byte values, pyebpf's and the kernel's."""
    mine = Map.create("array", 4, 8, 4)
    theirs = kernel.KernelMap("array", 4, 8, 4)
    yield mine, theirs
    theirs.close()


def _value(fd: int, body: str) -> str:
    """Look up key 0 of map ``fd``; with R0 its value (not NULL) and R6 the context,
    run ``body``."""
    return ("r6 = r1\n*(u32 *)(r10 - 4) = 0\nr1 = map_fd(%d) ll\nr2 = r10\nr2 += -4\n"
            "call map_lookup_elem\nif r0 == 0 goto +%d\n%s\nr0 = 0\nexit"
            % (fd, body.count("\n") + 1, body))


def test_check_func_arg_in_4_6_refuses_a_map_value_as_a_buffer(arrays):
    """ARG_PTR_TO_STACK expects PTR_TO_STACK: a map value is ``R3 type=map_value
    expected=fp`` (today ARG_PTR_TO_UNINIT_MEM takes it)."""
    mine, theirs = arrays
    body = "r1 = r6\nr2 = 0\nr3 = r0\nr4 = 8\ncall skb_load_bytes"
    today(_value(mine.fd, body), kernel_text=_value(theirs.fd, body))
    assert "R3 type=map_value expected=fp" in refused_by_46(_value(mine.fd, body))


def test_check_func_arg_in_4_6_refuses_a_map_value_as_a_key(arrays):
    """ARG_PTR_TO_MAP_KEY expects PTR_TO_STACK too."""
    mine, theirs = arrays
    body = "r1 = map_fd(%d) ll\nr2 = r0\ncall map_lookup_elem"
    today(_value(mine.fd, body % mine.fd), kernel_text=_value(theirs.fd, body % theirs.fd))
    assert "R2 type=map_value expected=fp" in refused_by_46(_value(mine.fd, body % mine.fd))


def test_check_func_arg_in_4_6_checks_the_key_as_a_stack_buffer(arrays):
    """check_stack_boundary(key_size) of an unwritten key."""
    mine, _ = arrays
    text = (f"r1 = map_fd({mine.fd}) ll\nr2 = r10\nr2 += -4\ncall map_lookup_elem\n"
            "r0 = 0\nexit")
    assert "invalid indirect read from stack off -4+0 size 4" in refused_by_46(text)


def test_check_map_func_compatibility_in_4_6_keeps_a_stack_trace_map_for_get_stackid():
    """Both kernels refuse bpf_map_lookup_elem of a stack trace map; 4.6 says
    ``cannot pass map_type 7 into func 1``."""
    m = Map.create("stack_trace", 4, 8 * 127, 4)
    text = (f"*(u32 *)(r10 - 4) = 0\nr1 = map_fd({m.fd}) ll\nr2 = r10\nr2 += -4\n"
            "call map_lookup_elem\nr0 = 0\nexit")
    assert "cannot pass map_type 7 into func 1" in refused_by_46(text, KPROBE)


# --- the license: 4.6's check_call ------------------------------------------------------

def test_check_call_in_4_6_refuses_a_gpl_only_helper_with_its_own_words():
    """``cannot call GPL only function from proprietary program`` (today: ``cannot
    call GPL-restricted function from non-GPL compatible program``)."""
    text = "r1 = r10\nr1 += -8\n*(u64 *)(r1 + 0) = 0\nr2 = 8\ncall trace_printk\n" \
        "r0 = 0\nexit"
    assert "cannot call GPL-restricted function" in refused_today_licensed(text, "MIT")
    assert "cannot call GPL only function from proprietary program" in \
        refused_by_46(text, license="MIT")


def test_check_call_in_4_6_counts_ktime_get_ns_gpl_only():
    """4.6's bpf_ktime_get_ns_proto had gpl_only set; today's has not."""
    text = "call ktime_get_ns\nr0 = 0\nexit"
    today(text, license="MIT")
    assert "cannot call GPL only function from proprietary program" in \
        refused_by_46(text, license="MIT")


def test_check_call_in_4_6_lets_a_proprietary_program_call_the_others():
    accepted_by_46("call get_prandom_u32\nr0 = 0\nexit", license="MIT")


def test_check_call_in_4_6_checks_the_license_before_the_arguments():
    text = "call trace_printk\nr0 = 0\nexit"
    assert "cannot call GPL only function from proprietary program" in \
        refused_by_46(text, license="MIT")


def refused_today_licensed(text: str, license: str, prog_type=CLS) -> str:
    with pytest.raises(errors.VerifierError):
        Program.from_asm(text, prog_type, license=license)
    with pytest.raises(errors.KernelError) as exc:
        with kernel.KernelProgram(asm.assemble(text), prog_type, license=license,
                                  log_level=0):
            pass
    return str(exc.value)
