"""The level-2 verifier log as the kernel prints it (``kernel/bpf/log.c``
print_verifier_state, print_reg_state, print_scalar_ranges; do_check's path lines): each
test one display rule, the kernel's log of the same program the expected value.

Compared: the log's lines in order, but for what pyebpf does not print (the kernel's
stack liveness lines and the statistics line), with an ``lddw`` of a map shown as
``<map>`` (the kernel prints the map's address) and the column of its ``;`` not
counted."""
from __future__ import annotations

import re

import pytest

from pyebpf import Map, asm, isa, kernel, verifier
from pyebpf.errors import KernelError, VerifierError
from bpfc import PRELUDE, compile_object
from objdiff import level_2_logs
from skbdiff import CLS


def _line_of(source: str, text: str) -> int:
    """The line of ``source`` holding ``text``, as prog.c numbers it (after the prelude)."""
    return (PRELUDE + source).splitlines().index(next(
        ln for ln in (PRELUDE + source).splitlines() if text in ln)) + 1


def _lines(log: str) -> list[str]:
    out = []
    for line in log.splitlines():
        if re.match(r"^\([\d,]+\) (frame \d+ insn|live stack)|^processed ", line):
            continue
        if re.search(r"\d+: (?:[.\d]{10} )?\(18\) r\d+ = \S+", line):
            line = re.sub(r"(\d+: (?:[.\d]{10} )?\(18\) r\d+ = )\S+(?: ll)?", r"\1<map>",
                          line)
            line = re.sub(r"\s+;", " ;", line)
        out.append(line.rstrip())
    return out


def logs(text: str, kernel_map=None, our_map=None, ours_text: str | None = None,
         extra=None) -> tuple[list[str], list[str]]:
    """(the kernel's, pyebpf's) level-2 log lines of the assembly ``text`` (pyebpf's:
    ``ours_text`` where given), whose ``{fd}`` is each side's map; ``extra``: more of
    pyebpf's maps by fd."""
    code = asm.assemble(text.format(fd=kernel_map.fd if kernel_map is not None else 0))
    with kernel.KernelProgram(code, CLS, log_level=2) as prog:
        theirs = _lines(prog.verifier_log)
    mine = asm.assemble((ours_text or text).format(
        fd=our_map.fd if our_map is not None else 0))
    by_fd = {**({our_map.fd: our_map} if our_map is not None else {}), **(extra or {})}
    maps = by_fd.get if by_fd else None
    ours = _lines(verifier.verify(isa.unpack_program(mine), CLS, log_level=2,
                                  maps=maps).log)
    return theirs, ours


COUNT = "r6 = r1\nr3 = *(u32 *)(r6 + 8)\n"


def test_the_log_begins_with_the_functions_and_the_registers_live_before_each_insn():
    """check_subprogs' ``func#0 @0`` and compute_live_registers' table: the registers
    r0-r9 live before each instruction, with its text."""
    theirs, ours = logs(COUNT + "r0 = r3\nr0 &= 1\nexit")
    assert theirs[:3] == ["func#0 @0", "Live regs before insn:",
                          "      0: .1........ (bf) r6 = r1"], theirs
    assert ours == theirs


def test_an_instruction_in_a_loop_is_listed_with_its_loops_number():
    """compute_scc's number before the instruction's (``  1   4: 0.2....``)."""
    theirs, ours = logs(COUNT + "r0 = 0\nr2 = 0\nl:\nr0 += r2\nr2 += 1\n"
                                "if r2 < 10 goto l\nr0 &= 1\nexit")
    assert "  1   4: 0.2....... (0f) r0 += r2" in theirs, theirs
    assert ours == theirs


def test_every_register_is_live_before_a_packet_load_and_its_result_is_unbounded():
    """compute_insn_live_regs keeps its defaults for LD_ABS/LD_IND (all registers
    read, none written); check_ld_abs leaves R0 unknown, reading R6."""
    theirs, ours = logs("r6 = r1\nr0 = *(u8 *)skb[12]\nr2 = 5\nr7 = 1\n"
                        "r0 = *(u16 *)skb[r2 + 3]\nr0 = *(u16 *)skb[r7 + 3]\nr0 = 0\nexit")
    assert "      1: 0123456789 (30) r0 = *(u8 *)skb[12]" in theirs, theirs
    assert any(line.endswith("; R0=scalar() R6=ctx()") for line in theirs), theirs
    assert ours == theirs

def test_a_spill_narrower_than_its_slot_shows_the_slot_types_above_it():
    # misc bytes above a 4-byte spill of 0 (mmmm0), and never-written ones (????0)
    theirs, ours = logs("r1 = 0\nr2 = 7\n*(u64 *)(r10 - 8) = r2\n*(u32 *)(r10 - 8) = r1\n"
                        "r3 = 5\n*(u32 *)(r10 - 16) = r3\nr0 = 0\nexit")
    assert any("fp-8=mmmm0" in line for line in theirs), theirs
    assert ours == theirs


def test_a_narrow_spill_of_an_unknown_scalar_shows_its_state_after_the_slot_types():
    theirs, ours = logs(COUNT + "*(u32 *)(r10 - 8) = r3\nr4 = *(u32 *)(r10 - 8)\n"
                                "r0 = 0\nexit")
    assert any("fp-8=????scalar(" in line for line in theirs), theirs
    assert ours == theirs


def test_a_32_bit_signed_bound_printed_in_hex_is_not_sign_extended():
    # smin32=umin32=0xfffe7960 joined, not smin=smin32=0xfffffffffffe7960
    theirs, ours = logs(COUNT + "r3 &= 0xffff\nr3 -= 100000\nw5 = w3\nr0 = 0\nexit")
    assert any("smin32=umin32=0xfffe7960" in line for line in theirs), theirs
    assert ours == theirs


def test_a_32_bit_signed_bound_within_s16_is_joined_with_the_64_bit_one():
    theirs, ours = logs(COUNT + "r3 &= 0xff\nr3 -= 1000\nr0 = 0\nexit")
    assert any("smin=smin32=-1000" in line for line in theirs), theirs
    assert ours == theirs


def test_each_path_taken_from_the_queue_begins_after_a_blank_line():
    theirs, ours = logs(COUNT + "if r3 > 7 goto +2\nr0 = 1\nexit\nif r3 > 9 goto +1\n"
                                "r0 = 2\nr0 = 0\nexit")
    assert "" in theirs and any(line.startswith("from ") for line in theirs), theirs
    assert ours == theirs


@pytest.fixture
def named_maps():
    ours = Map.create("array", 4, 8, 4, name="counters_of_packets")
    theirs = kernel.KernelMap("array", 4, 8, 4, name="counters_of_pac")
    yield theirs, ours
    theirs.close()
    ours.close()


def test_a_map_pointer_names_its_map_in_at_most_15_characters(named_maps):
    theirs, ours = logs("r1 = 0\n*(u32 *)(r10 - 4) = r1\nr1 = map_fd({fd}) ll\nr2 = r10\n"
                        "r2 += -4\ncall 1\nif r0 == 0 goto +1\nr0 = *(u64 *)(r0 + 0)\n"
                        "r0 = 0\nexit", *named_maps)
    assert any("map=counters_of_pac,ks=4,vs=8" in line for line in theirs), theirs
    assert ours == theirs


def test_a_pointer_to_the_callers_stack_names_the_callers_frame():
    """``fp[0]-8`` in frame 1, for a register and a spill of it (the lines the kernel
    prints at the call and the return, which pyebpf does not, left aside)."""
    theirs, ours = logs("r1 = 0\n*(u64 *)(r10 - 8) = r1\nr1 = r10\nr1 += -8\ncall sub\n"
                        "r0 = 0\nexit\nsub:\nr2 = *(u64 *)(r1 + 0)\n"
                        "*(u64 *)(r10 - 16) = r1\nr3 = r1\nr0 = 0\nexit")
    callee = [line for line in theirs if re.match(r"^\d+: \(", line) and "frame1:" in line]
    assert any("fp-16=fp[0]-8" in line for line in callee), theirs
    assert [line for line in ours if line in callee] == callee


def test_an_access_to_the_callers_stack_prints_the_callees_slot_of_that_index():
    """mark_stack_slot_scratched marks a slot by its index, whichever frame the pointer is
    into: after a read or a write through ``fp[0]-8`` in frame 1 the kernel prints frame
    1's own ``fp-8`` (l3af's ipfix exporter reads its caller's flow record so)."""
    theirs, ours = logs("r1 = 0\n*(u64 *)(r10 - 8) = r1\nr1 = r10\nr1 += -8\ncall sub\n"
                        "r0 = 0\nexit\nsub:\nr4 = 7\n*(u64 *)(r10 - 8) = r4\n"
                        "r2 = *(u64 *)(r1 + 0)\n*(u64 *)(r1 + 0) = r4\nr0 = 0\nexit")
    accesses = [line for line in theirs if re.match(r"^\d+: \((79|7b)\) .*\(r1 \+0\)", line)]
    assert len(accesses) == 2 and all("fp-8=7" in line for line in accesses), theirs
    assert ours == theirs



def test_a_dynptr_read_through_the_callers_stack_prints_the_callees_slots_of_its_index(
        named_maps):
    """mark_stack_slot_scratched marks a dynptr's slots by their index, whichever frame it
    is in: after bpf_dynptr_read of the caller's dynptr at ``fp[0]-32`` frame 1 prints its
    own ``fp-24`` and ``fp-32``."""
    text = ("r1 = 0\n*(u32 *)(r10 - 40) = r1\nr2 = r10\nr2 += -40\nr1 = map_fd({fd}) ll\n"
            "call 1\nif r0 == 0 goto out\nr1 = r0\nr2 = 8\nr3 = 0\nr4 = r10\nr4 += -32\n"
            "call 197\nr1 = r10\nr1 += -32\ncall sub\nout:\nr0 = 0\nexit\n"
            "sub:\nr4 = 7\n*(u64 *)(r10 - 32) = r4\n*(u64 *)(r10 - 24) = r4\nr3 = r1\n"
            "r1 = r10\nr1 += -8\nr2 = 1\nr4 = 0\nr5 = 0\ncall 201\nr0 = 0\nexit")
    theirs, ours = logs(text, *named_maps)
    # the state after the call follows its precision walk, on a line of its own
    assert "29: frame1: R0=scalar() fp-8=???????m fp-24=7 fp-32=7" in theirs, theirs
    assert ours == theirs


# --- precision the log shows (mark_precise lines) -----------------------------------------

def test_a_zero_register_written_off_a_slot_boundary_is_made_precise_at_the_write():
    """check_stack_write_fixed_off: the bytes stay STACK_ZERO only with the register's 0
    precise, so the kernel walks back from the write."""
    theirs, ours = logs("r1 = 0\n*(u32 *)(r10 - 4) = r1\nr0 = 0\nexit")
    assert "mark_precise: frame0: regs=r1 stack= before 0: (b7) r1 = 0" in theirs, theirs
    assert ours == theirs


def test_a_constant_map_key_of_zero_bytes_is_not_made_precise_again(named_maps):
    """get_constant_map_key: zero bytes give the key 0 at once; only a spilled constant
    is marked precise."""
    theirs, ours = logs("r1 = 0\n*(u32 *)(r10 - 4) = r1\nr1 = map_fd({fd}) ll\nr2 = r10\n"
                        "r2 += -4\ncall 1\nr0 = 0\nexit", *named_maps)
    assert not any("stack=-8" in line for line in theirs), theirs
    assert ours == theirs


def test_a_constant_map_key_spilled_is_made_precise(named_maps):
    theirs, ours = logs("r1 = 1\n*(u32 *)(r10 - 8) = r1\nr1 = map_fd({fd}) ll\nr2 = r10\n"
                        "r2 += -8\ncall 1\nr0 = 0\nexit", *named_maps)
    assert any("stack=-8" in line for line in theirs), theirs
    assert ours == theirs


def test_atomic_instructions_are_written_as_the_kernels_disassembler_writes_them():
    # print_bpf_insn: lock *(u64 *)(r10 -8) += r1, r1 = atomic64_fetch_add(...),
    # atomic_xchg, atomic64_cmpxchg
    theirs, ours = logs("r1 = 0\n*(u64 *)(r10 - 8) = r1\n*(u64 *)(r10 - 16) = r1\nr1 = 1\n"
                        "lock *(u64 *)(r10 - 0x8) += r1\nlock *(u32 *)(r10 -8) |= r1\n"
                        "r1 = atomic_fetch_add((u64 *)(r10 - 0x8), r1)\n"
                        "w1 = atomic_fetch_and((u32 *)(r10 - 0x8), w1)\n"
                        "w1 = xchg32_32(r10 - 0x10, w1)\nr0 = 0\n"
                        "r0 = cmpxchg_64(r10 - 0x8, r0, r1)\nr0 = 0\nexit")
    assert any("lock *(u64 *)(r10 -8) += r1" in line for line in theirs), theirs
    assert ours == theirs


def test_the_state_after_a_long_instruction_starts_where_the_kernels_alignment_puts_it():
    # vlog_alignment: ';' at a multiple of 8 past the line, at least column 38
    theirs, ours = logs("r1 = 0\n*(u64 *)(r10 - 8) = r1\nr1 = 1\n"
                        "r1 = atomic_fetch_add((u64 *)(r10 - 0x8), r1)\nr0 = 0\nexit")
    assert any("r1)          ; R1=" in line for line in theirs), theirs
    assert ours == theirs


def test_a_call_of_a_helper_returning_nothing_ends_its_line_with_a_bare_semicolon(ringbufs):
    """print_insn_state: the clobbered argument registers are scratched though none is
    printed; the reference the submit released is gone from ``refs=``."""
    theirs, ours = logs("r6 = r1\nr1 = map_fd({fd}) ll\nr2 = 8\nr3 = 0\ncall 131\n"
                        "if r0 == 0 goto +3\nr1 = r0\nr2 = 0\ncall 132\nr0 = 0\nexit",
                        *ringbufs)
    assert any(re.search(r"call bpf_ringbuf_submit#132 +;$", line) for line in theirs), theirs
    assert any("refs=2" in line for line in theirs), theirs
    assert ours == theirs



def test_a_parent_state_printed_by_a_precision_walk_ends_with_the_references_held(
        ringbufs):
    """print_verifier_state prints the state's ``refs=`` for mark_precise's parent
    state too."""
    theirs, ours = logs("r6 = r1\nr8 = 4\nr1 = map_fd({fd}) ll\nr2 = 8\nr3 = 0\ncall 131\n"
                        "if r0 == 0 goto +15\nr7 = r0\nr9 = *(u32 *)(r6 + 0)\n"
                        "if r9 > 5 goto +1\nr9 = 1\nif r9 > 3 goto +1\nr9 = 2\nr1 = r6\n"
                        "r2 = 0\nr3 = r10\nr3 += -8\nr4 = r8\ncall 26\nr1 = r7\nr2 = 0\n"
                        "call 132\nr0 = 0\nexit", *ringbufs)
    parents = [line for line in theirs if "parent state" in line]
    assert parents and all(line.endswith(" refs=2") for line in parents), theirs
    assert ours == theirs


def test_helper_memory_of_a_variable_size_is_not_printed_after_its_call():
    """check_mem_size_reg drops the call's meta for a size not constant: no raw
    memory, so check_helper_call writes (and scratches) none of the stack."""
    theirs, ours = logs("r4 = *(u32 *)(r1 + 0)\nr4 &= 7\nr4 += 1\nr2 = 0\nr3 = r10\n"
                        "r3 += -8\ncall 26\nr0 = 0\nexit")
    assert "7: R0=scalar()" in theirs, theirs
    assert ours == theirs

@pytest.fixture
def ringbufs():
    theirs, ours = kernel.KernelMap("ringbuf", 0, 0, 4096), Map.create("ringbuf", 0, 0, 4096)
    yield theirs, ours
    theirs.close()
    ours.close()


def test_a_decided_jump_prints_its_state_under_its_own_pc():
    """check_cond_jmp_op prints the state itself: after the mark_precise lines of a
    branch it decides, the line is ``N: ...`` with the jump's N."""
    theirs, ours = logs("r2 = 129\nr3 = r2\nif r2 == 0xdd86 goto +1\nr0 = 0\nexit")
    assert "2: R2=P129" in theirs or "2: R2=129" in theirs, theirs
    assert ours == theirs


def test_a_constant_key_array_lookup_spends_no_id(named_maps):
    """check_helper_call gives R0 an id only where it may be NULL (or names a lock):
    the hash lookup after it gets id 1."""
    theirs_map, our_map = named_maps
    with kernel.KernelMap("hash", 4, 8, 4) as kh:
        our_hash = Map.create("hash", 4, 8, 4)
        try:
            text = ("r1 = 0\n*(u32 *)(r10 - 4) = r1\nr1 = map_fd({fd}) ll\nr2 = r10\n"
                    "r2 += -4\ncall 1\nr1 = map_fd({fd2}) ll\nr2 = r10\nr2 += -4\ncall 1\n"
                    "r0 = 0\nexit")
            theirs, ours = logs(text.replace("{fd2}", str(kh.fd)), theirs_map, our_map,
                                ours_text=text.replace("{fd2}", str(our_hash.fd)),
                                extra={our_hash.fd: our_hash})
        finally:
            our_hash.close()
    assert any("map_value_or_null(id=1," in line for line in theirs), theirs
    assert ours == theirs


def test_the_stack_bytes_a_helper_writes_are_printed_after_its_call():
    theirs, ours = logs("r2 = 0\nr3 = r10\nr3 += -8\nr4 = 4\ncall 26\nr0 = 0\nexit")
    assert any(line.startswith("5: R0=scalar() fp-8=") for line in theirs), theirs
    assert ours == theirs


def test_a_decided_jump_on_a_linked_scalar_links_nothing_for_precision():
    """collect_linked_regs runs only where the branch is not decided, so walking back
    through a decided one keeps only the registers asked for (``regs=r4``)."""
    theirs, ours = logs("r0 = *(u32 *)(r1 + 8)\nr0 &= 15\nr0 += 1\nr2 = r0\nr4 = r0\n"
                        "if r2 == 0 goto +2\nif r4 > 100 goto +1\nr0 = 0\nexit")
    assert "mark_precise: frame0: regs=r4 stack= before 5: (15) if r2 == 0x0 goto pc+2" \
        in theirs, theirs
    assert ours == theirs


def test_a_register_dead_at_a_jump_is_not_linked_for_precision():
    """collect_linked_regs (6.18) takes only registers live before the jump: r2, a
    copy of r1 written again on every path after it, is not walked back with r1."""
    theirs, ours = logs("r6 = r1\nr1 = *(u32 *)(r6 + 0)\nr1 &= 7\nr2 = r1\n"
                        "if r1 == 0 goto +6\nr2 = 0\nr3 = r10\nr3 += -8\nr4 = r1\n"
                        "r1 = r6\ncall 26\nr0 = 0\nexit")
    assert "mark_precise: frame0: regs=r1 stack= before 3: (bf) r2 = r1" in theirs, theirs
    assert ours == theirs

def test_a_jump_decided_by_two_registers_walks_back_for_each_in_turn():
    """check_cond_jmp_op: mark_chain_precision of dst, then of src, two walks (not one
    with ``regs=r1,r2``)."""
    theirs, ours = logs("r1 = *(u32 *)(r1 + 8)\nr1 &= 7\nr1 += 1\nr2 = 65536\n"
                        "if r2 > r1 goto +1\nr1 = 1\nr0 = 0\nexit")
    walks = [line for line in theirs if "last_idx 4 " in line]
    assert len(walks) == 2, theirs
    assert ours == theirs


def test_stack_memory_a_helper_reads_and_writes_is_not_printed_after_its_call():
    """bpf_check_mtu's mtu_len is initialised memory (no MEM_UNINIT): not written a
    byte at a time by check_helper_call, so not scratched."""
    theirs, ours = logs("r2 = 0\n*(u32 *)(r10 - 4) = r2\nr3 = r10\nr3 += -4\nr4 = 0\n"
                        "r5 = 0\ncall 163\nr0 = 0\nexit")
    assert any(re.search(r"call bpf_check_mtu#163 +; R0=scalar\(\)$", line)
               for line in theirs), theirs
    assert ours == theirs


# --- calls of static and global functions ---------------------------------------------------

CALL = ("r1 = *(u32 *)(r1 + 8)\n*(u64 *)(r10 - 8) = r1\nr0 = 5\nr1 = r10\nr1 += -8\n"
        "call sub\nr0 = 0\nexit\n"
        "sub:\nr2 = *(u64 *)(r1 + 0)\nif r2 > 3 goto +2\nr0 = 1\nexit\nr0 = 2\nexit\n")


def test_a_static_call_prints_the_caller_and_the_callee_whole():
    """__check_func_call: ``caller:`` and ``callee:`` with each frame's state (the
    caller's R0 to R5 cleared), then the callee's first state line."""
    theirs, ours = logs(CALL)
    at = theirs.index("caller:")
    assert theirs[at + 2] == "callee:" and theirs[at + 4].startswith("8: frame1:"), theirs
    assert ours == theirs


def test_a_return_prints_both_frames_and_goes_on_as_a_popped_path():
    """prepare_func_exit: ``returning from callee:``, ``to caller at N:``, then do_check
    prints ``from X to N:`` with no ``N:`` state line after it."""
    theirs, ours = logs(CALL)
    assert "returning from callee:" in theirs and "to caller at 6:" in theirs, theirs
    assert any(line.startswith("from 11 to 6: ") for line in theirs), theirs
    assert ours == theirs


def test_a_refusal_found_after_the_paths_is_the_logs_last_line():
    """check_max_stack_depth refuses once every path is verified: its message comes
    after them, before the statistics."""
    code = asm.assemble("r1 = 0\n*(u64 *)(r10 - 256) = r1\ncall a\nr0 = 0\nexit\n"
                        "a:\nr1 = 0\n*(u64 *)(r10 - 256) = r1\ncall b\nr0 = 0\nexit\n"
                        "b:\nr1 = 0\n*(u64 *)(r10 - 256) = r1\nr0 = 0\nexit")
    with pytest.raises(KernelError) as theirs:
        kernel.KernelProgram(code, CLS, log_level=2).close()
    with pytest.raises(VerifierError) as ours:
        verifier.verify(isa.unpack_program(code), CLS, log_level=2)
    assert _lines(theirs.value.log)[-1] == "combined stack size of 3 calls is 768. Too large"
    assert _lines(ours.value.log) == _lines(theirs.value.log)

def test_a_path_popped_inside_a_function_names_its_frame():
    theirs, ours = logs(CALL)
    assert any(line.startswith("from 9 to 12: frame1: ") for line in theirs), theirs
    assert ours == theirs


def test_a_register_linked_to_a_32_bit_sum_is_zero_extended_when_synced():
    """sync_linked_regs: r8 takes w2's bounds (w2 = w8 - 1) plus 1, zero-extended since
    w2's link is a 32-bit one (r8 in 0..101, not 1..0x100000000)."""
    theirs, ours = logs("r8 = *(u32 *)(r1 + 8)\nif r8 > 255 goto +5\nw2 = w8\nw2 += -1\n"
                        "if w2 s> 100 goto +2\nr0 = r8\nr0 = r2\nr0 = 0\nexit")
    assert any(line.startswith("5: (bf) r0 = r8") and "smax=umax=smax32=umax32=101" in line
               for line in theirs), theirs
    assert ours == theirs


@pytest.mark.parametrize("text", [
    "r2 = *(u32 *)(r1 + 8)\nw2 &= 0x200\nif w2 == 0x0 goto +1\nr0 = r2\nr0 = 0\nexit",
    "r2 = *(u32 *)(r1 + 8)\nr2 &= 0x30\nif r2 < 17 goto +3\nif r2 > 40 goto +2\nr0 = r2\n"
    "r3 = r2\nr0 = 0\nexit",
], ids=["the-upper-end", "between"])
def test_a_range_holding_one_value_of_the_tnum_prints_as_that_constant(text):
    theirs, ours = logs(text)
    assert any(line.startswith("3: (bf) r0 = r2") and "R2=" in line and "scalar" not in line
               for line in theirs) or any("R2=32" in line for line in theirs), theirs
    assert ours == theirs



# --- callbacks -------------------------------------------------------------------------------

LOOP = """
static int add(__u32 i, void *ctx)
{
    __u64 *sum = ctx;

    *sum += i;
    return 0;
}
SEC("tc") int prog(struct __sk_buff *skb)
{
    __u64 sum = 0;

    bpf_loop(4, add, &sum, 0);
    return sum & 1;
}
"""


def test_a_function_pointer_prints_as_func_without_an_offset(monkeypatch, capsys, tmp_path):
    theirs, ours = c_logs(LOOP, monkeypatch, capsys, tmp_path)
    assert any(line.endswith("; R2=func()") for line in theirs), theirs
    assert [line for line in ours if "R2=func" in line] == \
        [line for line in theirs if "R2=func" in line]


def test_a_call_queueing_a_callback_prints_the_callers_whole_frame_after_it(
        monkeypatch, capsys, tmp_path):
    """init_func_state scratches every register and slot while the caller's frame is
    the current one: ``9: R0=scalar() R10=fp0 fp-8=0``."""
    theirs, ours = c_logs(LOOP, monkeypatch, capsys, tmp_path)
    assert "9: R0=scalar() R10=fp0 fp-8=0" in theirs, theirs
    assert ours == theirs


def test_a_callbacks_return_prints_both_frames_and_goes_on_at_the_call(
        monkeypatch, capsys, tmp_path):
    """prepare_func_exit: ``returning from callee:``, ``to caller at 8:`` (the call),
    the caller as it is before widen_imprecise_scalars, then ``from 18 to 8:`` with
    the widened state, and ``from 18 to 8: safe`` where the call prunes it."""
    theirs, ours = c_logs(LOOP, monkeypatch, capsys, tmp_path)
    assert "to caller at 8:" in theirs and "from 18 to 8: safe" in theirs, theirs
    assert ours == theirs


def test_a_precision_walk_goes_back_through_a_callbacks_body_to_its_call(
        monkeypatch, capsys, tmp_path):
    """backtrack_insn keeps the caller's wanted registers through the callback (the
    walk prints each of its instructions, ``frame1: regs= stack=``) back to the
    helper call."""
    theirs, ours = c_logs(LOOP, monkeypatch, capsys, tmp_path)
    assert "mark_precise: frame1: regs= stack= before 8: (85) call bpf_loop#181" \
        in theirs, theirs
    assert [line for line in ours if line.startswith("mark_precise")] == \
        [line for line in theirs if line.startswith("mark_precise")]


def test_a_null_callback_context_is_made_precise_before_the_loops_own_checks(
        monkeypatch, capsys, tmp_path):
    """check_func_arg walks a NULL ``ctx`` back (r3) before check_helper_call's
    bpf_loop checks walk the flags (r4) and the count (r1)."""
    source = LOOP.replace("bpf_loop(4, add, &sum, 0);", "bpf_loop(4, add, 0, 0);") \
        .replace("*sum += i;", "if (sum)\n        *sum += i;")
    theirs, ours = c_logs(source, monkeypatch, capsys, tmp_path)
    walks = [line for line in theirs if line.startswith("mark_precise: frame0: parent")]
    assert walks[0].startswith("mark_precise: frame0: parent state regs=r3 "), theirs
    assert ours == theirs


def test_a_for_each_callbacks_value_has_an_id_of_its_own(monkeypatch, capsys, tmp_path):
    """set_map_elem_callback_state's R3: ``map_value(id=1,map=m,...)`` in the 6.18
    log, the key without one."""
    source = """
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 2);
    __type(key, __u32);
    __type(value, __u64);
} m SEC(".maps");
static __u64 visit(void *map, __u32 *key, __u64 *value, void *ctx)
{
    return 0;
}
SEC("tc") int prog(struct __sk_buff *skb)
{
    return bpf_for_each_map_elem(&m, visit, 0, 0) & 1;
}
"""
    theirs, ours = c_logs(source, monkeypatch, capsys, tmp_path)
    assert any("R3=map_value(id=1,map=m,ks=4,vs=8)" in line for line in theirs), theirs
    assert ours == theirs


TIMER = """
struct elem {
    struct bpf_timer t;
};
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct elem);
} tm SEC(".maps");
static int fire(void *map, __u32 *key, struct elem *v)
{
    return 0;
}
SEC("tc") int prog(struct __sk_buff *skb)
{
    __u32 key = 0;
    struct elem *v = bpf_map_lookup_elem(&tm, &key);

    if (!v)
        return 0;
    bpf_timer_init(&v->t, &tm, 1);
    bpf_timer_set_callback(&v->t, fire);
    return 0;
}
char LICENSE[] SEC("license") = "GPL";
"""


def test_a_timer_callbacks_path_prints_as_the_kernels(monkeypatch, capsys, tmp_path):
    """push_async_cb: the caller's whole frame after the call, the value's id; at the
    callback's exit check_return_code walks R0 back, from a first_idx of 0 (the
    async state's, never set)."""
    theirs, ours = c_logs(TIMER, monkeypatch, capsys, tmp_path)
    assert any(line.startswith("mark_precise: frame0: last_idx ") and
               line.endswith(" first_idx 0 subseq_idx -1") for line in theirs), theirs
    assert ours == theirs

# --- C source lines (verbose_linfo) ---------------------------------------------------------

def c_logs(source: str, monkeypatch, capsys, tmp_path) -> tuple[list[str], list[str]]:
    """(the kernel's, pyebpf's) level-2 log lines of the C ``source``'s program ``prog``,
    compiled with line info (clang -g)."""
    ours, theirs = level_2_logs(compile_object(source), "prog", monkeypatch, capsys, tmp_path)
    return _lines(theirs), _lines(ours)


BRANCHES = """
SEC("tc") int prog(struct __sk_buff *skb)
{
    __u32 len = skb->len;
    __u32 mark = skb->mark;

    if (len > 100)
        return mark & 3;
    return len &
           7;
}
"""


def test_each_source_line_is_printed_with_its_file_and_line_before_its_first_instruction(
        monkeypatch, capsys, tmp_path):
    theirs, ours = c_logs(BRANCHES, monkeypatch, capsys, tmp_path)
    assert "; __u32 len = skb->len; @ prog.c:" + str(_line_of(BRANCHES, "__u32 len")) \
        in theirs, theirs
    assert ours == theirs


def test_a_source_line_is_not_printed_again_where_a_popped_path_goes_on_in_it(
        monkeypatch, capsys, tmp_path):
    """verbose_linfo forgets nothing at a pop: the path queued at the jump begins in the
    line printed last, so no source line comes before its first instruction."""
    source = """
SEC("tc") int prog(struct __sk_buff *skb)
{
    __u32 len = skb->len, mark = skb->mark;
    return (len > 100 ? mark : len) & 3;
}
"""
    theirs, ours = c_logs(source, monkeypatch, capsys, tmp_path)
    at = next(i for i, line in enumerate(theirs) if line.startswith("from "))
    assert not theirs[at + 2].startswith("; "), theirs
    assert ours == theirs


def test_the_source_lines_of_a_global_function_begin_again_with_its_verification(
        monkeypatch, capsys, tmp_path):
    """do_check_common forgets the line last printed: the function's first line is
    printed though the main program's path printed it at the call."""
    source = """
__noinline int twice(int x) { return x * 2; }
SEC("tc") int prog(struct __sk_buff *skb) { return twice(skb->len) & 1; }
"""
    theirs, ours = c_logs(source, monkeypatch, capsys, tmp_path)
    at = theirs.index("Validating twice() func#1...")
    assert theirs[at + 2].startswith("; __noinline int twice(int x)"), theirs
    assert ours == theirs



def test_a_global_functions_memory_argument_prints_as_mem(monkeypatch, capsys, tmp_path):
    """btf_prepare_func_args gives a pointer to an int PTR_TO_MEM (| PTR_MAYBE_NULL):
    ``mem_or_null(id=3,sz=4)``, not ring buffer memory."""
    source = """
__noinline int add(struct __sk_buff *skb, int *p, int x)
{
    if (!p)
        return x;
    return *p + x + skb->len;
}
SEC("tc") int prog(struct __sk_buff *skb)
{
    int v = 5;

    return add(skb, &v, skb->mark);
}
"""
    theirs, ours = c_logs(source, monkeypatch, capsys, tmp_path)
    assert any("R2=mem_or_null(id=" in line for line in theirs), theirs
    assert ours == theirs


def test_peak_states_counts_a_loops_backedges_and_states_not_yet_freed(
        monkeypatch, capsys, tmp_path):
    """update_peak_states: explored states, plus those evicted but not yet freed (a
    branch still open), plus the copies a loop's visit keeps of its backedges (6.12
    selftests' loop4: the kernel's 17, not 16)."""
    source = """
SEC("socket") int prog(volatile struct __sk_buff *skb)
{
    int ret = 0, i;

#pragma nounroll
    for (i = 0; i < 20; i++)
        if (skb->len)
            ret |= 1 << i;
    return ret;
}
"""
    ours, theirs = level_2_logs(compile_object(source), "prog", monkeypatch, capsys, tmp_path)
    stats = [[line for line in log.splitlines() if line.startswith("processed ")]
             for log in (theirs, ours)]
    assert "peak_states 17" in stats[0][0], stats
    assert stats[1] == stats[0]


def test_a_static_call_whose_registers_miss_its_prototype_prints_the_first_mismatch_once(
        monkeypatch, capsys, tmp_path):
    """btf_check_subprog_call: clang drops the static function's unused ``var``, so R1
    holds the context where the prototype has an int: ``R1 is not a scalar`` at the
    first call, none at the second (the function is unreliable from then on)."""
    source = """
static __noinline int len_of(int var, struct __sk_buff *skb)
{
    return skb->len;
}
SEC("tc") int prog(struct __sk_buff *skb)
{
    return (len_of(1, skb) + len_of(2, skb)) & 1;
}
"""
    theirs, ours = c_logs(source, monkeypatch, capsys, tmp_path)
    assert theirs.count("R1 is not a scalar") == 1, theirs
    assert ours == theirs


def test_a_global_functions_argument_wanted_from_its_first_state_forces_all_precise(
        monkeypatch, capsys, tmp_path):
    """mark_chain_precision: the walk leaves the function's first state (it has no
    parent, and ran instructions) still wanting the argument ``off``: the kernel falls
    back to marking every scalar precise."""
    source = """
__noinline int byte_at(struct __sk_buff *skb, __u32 off)
{
    __u8 *data = (void *)(long)skb->data;
    void *data_end = (void *)(long)skb->data_end;
    __u8 *p;

    if (off > 54)
        return -1;
    p = data + off;
    if ((void *)(p + 1) > data_end)
        return -1;
    return *p;
}
SEC("tc") int prog(struct __sk_buff *skb)
{
    return byte_at(skb, skb->len & 63) & 1;
}
"""
    theirs, ours = c_logs(source, monkeypatch, capsys, tmp_path)
    assert "mark_precise: frame0: falling back to forcing all scalars precise" in theirs, \
        theirs
    assert ours == theirs

# --- kfunc calls -----------------------------------------------------------------------------

DYNPTR = """
extern int bpf_dynptr_from_skb(struct __sk_buff *skb, __u64 flags,
                               struct bpf_dynptr *ptr) __ksym;
extern int bpf_dynptr_size(const struct bpf_dynptr *ptr) __ksym;
SEC("tc") int prog(struct __sk_buff *skb)
{
    struct bpf_dynptr p;

    bpf_dynptr_from_skb(skb, 0, &p);
    return bpf_dynptr_size(&p) & 1;
}
"""


def _calls(lines: list[str], ids: bool = True) -> list[str]:
    """The call instructions' text (without the state after them); a kfunc's BTF id as
    ``#N`` unless ``ids``."""
    out = [line.split(";")[0].rstrip() for line in lines
           if re.match(r"^\d+: \(85\) call ", line)]
    return out if ids else [re.sub(r"#\d+$", "#N", line) for line in out]


def test_a_kfunc_call_is_written_with_its_name(monkeypatch, capsys, tmp_path):
    """print_call: ``call bpf_dynptr_from_skb#N``."""
    theirs, ours = c_logs(DYNPTR, monkeypatch, capsys, tmp_path)
    assert any("call bpf_dynptr_from_skb#" in line for line in theirs), theirs
    assert _calls(ours, ids=False) == _calls(theirs, ids=False)


def test_a_kfunc_calls_id_is_the_running_kernels_vmlinux_btf_id(monkeypatch, capsys,
                                                                 tmp_path, live_kernel):
    """The N of ``call bpf_dynptr_from_skb#N`` is the function's id in the target
    kernel's BTF: the running kernel's (so only the live kernel can say it)."""
    theirs, ours = c_logs(DYNPTR, monkeypatch, capsys, tmp_path)
    assert _calls(ours) == _calls(theirs)


def test_the_dynptr_a_kfunc_makes_or_reads_is_printed_after_its_call(monkeypatch, capsys,
                                                                   tmp_path):
    """process_dynptr_func: ``fp-16=dynptr_skb(id=1,dynptr_id=1)`` after
    bpf_dynptr_from_skb, which makes it, and after bpf_dynptr_size, which reads it."""
    theirs, ours = c_logs(DYNPTR, monkeypatch, capsys, tmp_path)
    made = [line for line in theirs if re.match(r"\d+: \(85\) call bpf_dynptr_", line)]
    assert len(made) == 2 and all(line.endswith("fp-16=dynptr_skb(id=1,dynptr_id=1)")
                                  for line in made), theirs
    assert [re.sub(r"#\d+", "#N", line) for line in ours] == \
        [re.sub(r"#\d+", "#N", line) for line in theirs]


def test_every_dynptr_prints_a_dynptr_id_of_1(monkeypatch, capsys, tmp_path):
    """The 6.18 kernel prints ``dynptr_id=1`` for each dynptr, whatever its id: a
    second skb dynptr, its clone and a ring buffer one."""
    source = DYNPTR.replace("return bpf_dynptr_size(&p) & 1;", """struct bpf_dynptr q, r;

    bpf_dynptr_from_skb(skb, 0, &q);
    bpf_dynptr_clone(&q, &r);
    bpf_ringbuf_reserve_dynptr(&rb, 8, 0, &p);
    bpf_ringbuf_discard_dynptr(&p, 0);
    return bpf_dynptr_size(&r) & 1;""").replace("extern int bpf_dynptr_size", """
struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 4096);
} rb SEC(".maps");
extern int bpf_dynptr_clone(const struct bpf_dynptr *p, struct bpf_dynptr *c) __ksym;
extern int bpf_dynptr_size""")
    theirs, ours = c_logs(source, monkeypatch, capsys, tmp_path)
    assert any("dynptr_ringbuf(id=4,ref_id=5,dynptr_id=1)" in line for line in theirs), theirs
    assert [re.sub(r"#\d+", "#N", line) for line in ours] == \
        [re.sub(r"#\d+", "#N", line) for line in theirs]

def test_an_skb_metadata_dynptr_is_printed_as_skb_meta(monkeypatch, capsys, tmp_path):
    """dynptr_type_str names bpf_dynptr_from_skb_meta's dynptr ``skb_meta``
    (BPF_DYNPTR_TYPE_SKB_META; pyebpf printed it as an skb one)."""
    source = DYNPTR.replace("bpf_dynptr_from_skb(skb, 0, &p);",
                            "bpf_dynptr_from_skb_meta(skb, 0, &p);").replace(
        "extern int bpf_dynptr_size", """
extern int bpf_dynptr_from_skb_meta(struct __sk_buff *skb, __u64 flags,
                                    struct bpf_dynptr *ptr) __ksym;
extern int bpf_dynptr_size""")
    theirs, ours = c_logs(source, monkeypatch, capsys, tmp_path)
    assert any(line.endswith("fp-16=dynptr_skb_meta(id=1,dynptr_id=1)") for line in theirs), \
        theirs
    assert [re.sub(r"#\d+", "#N", line) for line in ours] == \
        [re.sub(r"#\d+", "#N", line) for line in theirs]


def test_a_user_ring_buffer_callbacks_dynptr_has_an_id_of_its_own(monkeypatch, capsys,
                                                                    tmp_path):
    """mark_dynptr_cb_reg: bpf_user_ringbuf_drain's callback gets a local dynptr with a
    new id, ``R1=dynptr_ptr(id=1,type=local)`` (pyebpf gave it none)."""
    source = """
struct { __uint(type, BPF_MAP_TYPE_USER_RINGBUF); __uint(max_entries, 4096); } urb SEC(".maps");
extern __u32 bpf_dynptr_size(const struct bpf_dynptr *p) __ksym;

static long cb(struct bpf_dynptr *d, void *ctx)
{
    return bpf_dynptr_size(d) & 1;
}

SEC("tc") int prog(struct __sk_buff *skb)
{
    return bpf_user_ringbuf_drain(&urb, cb, 0, 0) & 1;
}
"""
    theirs, ours = c_logs(source, monkeypatch, capsys, tmp_path)
    assert any("frame1: R1=dynptr_ptr(id=1,type=local)" in line for line in theirs), theirs
    assert [re.sub(r"#\d+", "#N", line) for line in ours] == \
        [re.sub(r"#\d+", "#N", line) for line in theirs]


def test_a_kfuncs_constant_buffer_size_is_made_precise_once_per_check(monkeypatch, capsys,
                                                                      tmp_path):
    """check_kfunc_args: bpf_dynptr_slice's ``buffer__szk`` is walked back three times,
    for check_kfunc_mem_size_reg's read and write checks and as a constant."""
    source = DYNPTR.replace("return bpf_dynptr_size(&p) & 1;", """__u8 buf[14];
    __u8 *h = bpf_dynptr_slice(&p, 0, buf, sizeof(buf));

    return h ? h[12] : 0;""").replace("extern int bpf_dynptr_size", """
extern void *bpf_dynptr_slice(const struct bpf_dynptr *p, __u32 offset, void *buffer,
                              __u32 buffer__szk) __ksym;
extern int bpf_dynptr_size""")
    theirs, ours = c_logs(source, monkeypatch, capsys, tmp_path)
    walks = [line for line in theirs if line.startswith("mark_precise: frame0: regs=r4 ")]
    assert len(walks) == 3, theirs
    assert [line for line in ours if line.startswith("mark_precise")] == \
        [line for line in theirs if line.startswith("mark_precise")]


SLICE = DYNPTR.replace("return bpf_dynptr_size(&p) & 1;", """struct {
        __u32 key;
        __u8 buf[4];
    } s __attribute__((aligned(8)));
    __u8 *h;

    s.key = 0;
    h = bpf_dynptr_slice(&p, 0, BUFFER, 4);
    __u64 *v = bpf_map_lookup_elem(&m, &s.key);

    return (h ? h[1] : 0) + (v ? *v : 0);""").replace("extern int bpf_dynptr_size", """
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} m SEC(".maps");
extern void *bpf_dynptr_slice(const struct bpf_dynptr *p, __u32 offset, void *buffer,
                              __u32 buffer__szk) __ksym;
extern int bpf_dynptr_size""")


def test_a_dynptr_slice_names_the_stack_buffer_it_may_return(monkeypatch, capsys,
                                                             tmp_path):
    """print_reg_state: ``buf=fp[0]-20+4``, the buffer's frame, offset and size, on the
    slice and its copies (none for a NULL buffer)."""
    theirs, ours = c_logs(SLICE.replace("BUFFER", "s.buf"), monkeypatch, capsys, tmp_path)
    assert any(re.search(r"rdonly_mem_or_null\(id=2,sz=4,buf=fp\[0\]-\d+\+4\)", line)
               for line in theirs), theirs
    assert [re.sub(r"#\d+", "#N", line) for line in ours] == \
        [re.sub(r"#\d+", "#N", line) for line in theirs]


def test_a_dynptr_slice_prints_its_size_but_not_its_dynptr_id(monkeypatch, capsys,
                                                               tmp_path):
    """print_reg_state: a PTR_TO_MEM shows ``sz=``; the dynptr_id a slice keeps
    (check_kfunc_call) is not printed on it, only on the dynptr's stack slot."""
    theirs, ours = c_logs(SLICE.replace("BUFFER", "0"), monkeypatch, capsys, tmp_path)
    slices = [line for line in theirs if re.search(r"R0=rdonly_mem_or_null\(id=2,sz=4\)", line)]
    assert slices and not any(re.search(r"mem(_or_null)?\([^)]*dynptr_id", line)
                              for line in theirs), theirs
    assert [re.sub(r"#\d+", "#N", line) for line in ours] == \
        [re.sub(r"#\d+", "#N", line) for line in theirs]


def test_a_null_slice_buffer_is_made_precise_once_and_its_size_not_checked(
        monkeypatch, capsys, tmp_path):
    """check_kfunc_args: a NULL ``buffer__opt`` is walked back once, then its size
    only as the constant (check_kfunc_mem_size_reg skipped)."""
    theirs, ours = c_logs(SLICE.replace("BUFFER", "0"), monkeypatch, capsys, tmp_path)
    walks = [line for line in theirs if re.match(r"mark_precise: frame0: regs=r[34] ", line)]
    assert walks[0].startswith("mark_precise: frame0: regs=r3 "), theirs
    assert [line for line in ours if line.startswith("mark_precise")] == \
        [line for line in theirs if line.startswith("mark_precise")]


def test_a_kfuncs_buffer_beside_a_narrow_spill_leaves_the_spill(monkeypatch, capsys,
                                                                tmp_path):
    """check_stack_range_initialized clobbers a spill only where a byte written is one
    of its own: the key 0 spilled below the buffer stays a constant map key (the
    lookup's R0 is not NULL)."""
    theirs, ours = c_logs(SLICE.replace("BUFFER", "s.buf"), monkeypatch, capsys, tmp_path)
    assert any(re.search(r"fp-\d+=mmmmP0", line) for line in theirs), theirs
    assert [re.sub(r"#\d+", "#N", line) for line in ours] == \
        [re.sub(r"#\d+", "#N", line) for line in theirs]


def test_a_left_shift_that_may_reach_the_top_bit_leaves_the_unsigned_bounds_unknown():
    """__scalar64_min_max_lsh: 1..0xffffffff << 32 keeps no umin (umax above
    1 << (63 - 32)), though no bit is lost; only the tnum bounds it."""
    theirs, ours = logs(COUNT + "if r3 == 0 goto +2\nr3 <<= 32\nr3 >>= 32\nr0 = 0\nexit")
    assert any("r3 <<= 32" in line and "umin=" not in line for line in theirs), theirs
    assert ours == theirs


def test_a_map_of_maps_lookup_is_a_value_of_the_outer_map_until_its_null_check():
    """check_helper_call gives R0 the outer map's ``map_value_or_null``; its NULL check
    makes it a pointer to the inner map's meta (mark_ptr_not_null_reg), which has no
    name (bpf_map_meta_alloc copies none from the template), nor has a value looked up
    in it (dae's ``route_match_lpm`` on its ``lpm_array_map``)."""
    text = ("r1 = 0\n*(u32 *)(r10 - 4) = r1\nr1 = map_fd({fd}) ll\nr2 = r10\nr2 += -4\n"
            "call 1\nif r0 == 0 goto +4\nr1 = r0\nr2 = r10\nr2 += -4\ncall 1\nr0 = 0\nexit")
    with kernel.KernelMap("array", 4, 8, 1, name="inner_template") as k_inner, \
            kernel.KernelMap("array_of_maps", 4, 4, 1, name="outer_of_maps",
                             inner_map_fd=k_inner.fd) as k_outer:
        o_inner = Map.create("array", 4, 8, 1, name="inner_template")
        o_outer = Map.create("array_of_maps", 4, 4, 1, name="outer_of_maps",
                             inner_map=o_inner)
        try:
            theirs, ours = logs(text, k_outer, o_outer)
        finally:
            o_outer.close()
            o_inner.close()
    assert any("R0=map_value_or_null(id=1,map=outer_of_maps,ks=4,vs=4)" in line
               for line in theirs), theirs
    assert any("R0=map_ptr(ks=4,vs=8)" in line for line in theirs), theirs
    assert ours == theirs


SCC_IN_A_FUNCTION = "r1 = 0\nloop:\nr1 += 1\nif r1 < 3 goto loop\nr0 = 0\nexit"


@pytest.mark.parametrize("text", {
    "one call": "r6 = 0\ncall sub\nr0 = 0\nexit\nsub:\n" + SCC_IN_A_FUNCTION,
    "two calls": ("r6 = 0\ncall sub\nr0 = 0\nexit\nsub:\nr6 = 0\ncall sub2\nr0 = 0\n"
                  "exit\nsub2:\n" + SCC_IN_A_FUNCTION),
    # a zero ends the kernel's callsites array: a call at insn 0 is not printed
    "a call at insn 0": "call sub\nr0 = 0\nexit\nsub:\n" + SCC_IN_A_FUNCTION,
}.values(), ids=["one call", "two calls", "a call at insn 0"])
def test_an_scc_in_a_function_prints_its_call_sites_and_loop_in_one_pair_of_brackets(text):
    """format_callchain: ``SCC enter (1,5,1)``, the call sites and then the loop's
    number (dae's ``tproxy_lan_ingress_l2``, whose loops are in a function called at
    insn 1)."""
    theirs, ours = logs(text)
    assert any(line.startswith("SCC enter (") for line in theirs), theirs
    assert ours == theirs
