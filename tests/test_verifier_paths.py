"""The verifier's values, pointers and paths against the kernel's: one behaviour per
test, the kernel's verdict and words the expected value where bpf(2) works (else the
kernel's words as written here, measured on 6.18).  Also: clang-compiled programs at
every optimisation level and ISA version, the log, the ``verify`` command, the 4.6
profile."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from pyebpf import Map, Program, asm, errors, isa, kernel, load, verifier
from conftest import child_python
from skbdiff import CLS, SF

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CORPUS = Path(__file__).resolve().parent / "verifier_corpus"
UDP = bytes(range(64))


def ours(text: str, prog_type=CLS, **kw) -> str | None:
    return _ours(text, prog_type, **kw)[0]


def _ours(text: str, prog_type=CLS, **kw) -> tuple[str | None, int | None]:
    """pyebpf's refusal and its errno (None, None: accepted)."""
    try:
        Program.from_asm(text, prog_type, **kw)
    except errors.VerifierError as exc:
        return str(exc), exc.errno
    return None, None


def theirs(text: str, prog_type=CLS) -> str | None:
    return _theirs(text, prog_type)[0]


def _theirs(text: str, prog_type=CLS) -> tuple[str | None, int | None]:
    """The kernel's refusal and its errno (None, None: accepted)."""
    try:
        with kernel.KernelProgram(asm.assemble(text), prog_type, log_level=0):
            return None, None
    except errors.KernelError as exc:
        return str(exc).split("refused the program: ", 1)[-1], exc.errno


def agree(text: str, expected: str | None, prog_type=CLS, kernel_text: str | None = None):
    """pyebpf's verdict is ``expected`` (None: accepted; else words its message holds),
    and so is the kernel's where it can be asked (``kernel_text``: the same program
    with the kernel's map fd); a refusal's errno is the kernel's."""
    mine, my_errno = _ours(text, prog_type)
    if expected is None:
        assert mine is None, mine
    else:
        assert mine is not None and expected in mine, mine
    k, their_errno = _theirs(kernel_text or text, prog_type)
    assert (k is None) == (expected is None), k
    if expected is not None:
        assert expected in k or k in mine, (k, mine)
        assert my_errno == their_errno, (mine, k)     # what BPF_PROG_LOAD sets


PKT = "r6 = r1\nr2 = *(u32 *)(r6 + 76)\nr3 = *(u32 *)(r6 + 80)\n"


# --- packet bounds ----------------------------------------------------------------------

def test_a_packet_read_inside_the_checked_range_is_accepted():
    agree(PKT + "r4 = r2\nr4 += 14\nif r4 > r3 goto +1\nr0 = *(u16 *)(r2 + 12)\n"
                "r0 = 0\nexit", None)


def test_a_packet_read_one_byte_past_the_checked_range_is_refused():
    agree(PKT + "r4 = r2\nr4 += 14\nif r4 > r3 goto +1\nr0 = *(u16 *)(r2 + 13)\n"
                "r0 = 0\nexit", "invalid access to packet, off=13 size=2, R2(id=0,off=13,r=14)")


def test_a_packet_read_without_a_check_is_refused():
    agree(PKT + "r0 = *(u8 *)(r2 + 0)\nr0 = 0\nexit", "R2 offset is outside of the packet")


def test_a_strict_less_than_check_grants_one_byte_more():
    agree(PKT + "r4 = r2\nr4 += 14\nif r4 < r3 goto +2\nr0 = 0\nexit\n"
                "r0 = *(u8 *)(r2 + 14)\nr0 = 0\nexit", None)


def test_arithmetic_on_pkt_end_is_refused():
    agree(PKT + "r3 += 1\nr0 = 0\nexit", "R3 pointer arithmetic on pkt_end prohibited")


# --- the frame pointer ------------------------------------------------------------------

def test_a_write_to_the_frame_pointer_on_a_path_is_refused():
    agree("call 7\nif r0 > 9 goto +1\nr10 = r0\nr0 = 0\nexit", "frame pointer is read only")


def test_a_write_to_the_frame_pointer_in_dead_code_is_not_looked_at():
    # check_reg_arg refuses it only where a path reaches it
    agree("r0 = 0\nif r0 == 0 goto +1\nr10 = 7\nexit", None)


def test_a_helper_that_moves_packet_data_invalidates_packet_pointers():
    agree(PKT + "r7 = r2\nr7 += 14\nif r7 > r3 goto +5\nr1 = r6\nr2 = 0\n"
                "call 39\nr0 = *(u8 *)(r7 - 1)\nr0 = 0\nexit",
          "R7 invalid mem access 'scalar'")


# --- maps ---------------------------------------------------------------------------------

@pytest.fixture
def maps():
    hash_ = Map.create("hash", 4, 8, 4)
    array = Map.create("array", 4, 8, 4)
    k = (kernel.KernelMap("hash", 4, 8, 4), kernel.KernelMap("array", 4, 8, 4))
    yield (hash_, array), k
    for m in k:
        m.close()


def _lookup(fd: int, key: int = 0) -> str:
    return (f"*(u32 *)(r10 - 8) = {key}\nr1 = map_fd({fd}) ll\nr2 = r10\nr2 += -8\n"
            "call 1\n")


def _agree_map(maps, body: str, expected, which: int = 0):
    (mine, k) = maps
    text = _lookup(mine[which].fd) + body
    agree(text, expected, kernel_text=_lookup(k[which].fd) + body)


def test_a_lookup_result_dereferenced_without_a_null_check_is_refused(maps):
    _agree_map(maps, "r0 = *(u64 *)(r0 + 0)\nr0 = 0\nexit",
               "R0 invalid mem access 'map_value_or_null'")


def test_arithmetic_on_a_lookup_result_before_its_null_check_is_refused(maps):
    _agree_map(maps, "r0 += 4\nr0 = 0\nexit",
               "R0 pointer arithmetic on map_value_or_null prohibited, null-check it first")


def test_a_map_value_read_after_the_null_check_is_accepted(maps):
    _agree_map(maps, "if r0 == 0 goto +1\nr0 = *(u64 *)(r0 + 0)\nr0 = 0\nexit", None)


def test_a_map_value_read_past_its_end_is_refused(maps):
    _agree_map(maps, "if r0 == 0 goto +1\nr0 = *(u32 *)(r0 + 6)\nr0 = 0\nexit",
               "invalid access to map value, value_size=8 off=6 size=4")


def test_an_unbounded_index_into_a_map_value_is_refused(maps):
    _agree_map(maps, "if r0 == 0 goto +3\nr1 = *(u32 *)(r6 + 0)\nr0 += r1\n"
                     "r0 = *(u8 *)(r0 + 0)\nr0 = 0\nexit".replace("r6", "r0"),
               "R0 unbounded memory access")


def test_a_masked_index_into_a_map_value_is_accepted(maps):
    _agree_map(maps, "if r0 == 0 goto +4\nr1 = *(u32 *)(r0 + 0)\nr1 &= 7\nr0 += r1\n"
                     "r0 = *(u8 *)(r0 + 0)\nr0 = 0\nexit", None)


def test_an_array_lookup_with_a_constant_key_in_range_needs_no_null_check(maps):
    """Found by the random differential test: the kernel (get_constant_map_key) knows
    such a lookup cannot fail."""
    _agree_map(maps, "r0 = *(u64 *)(r0 + 0)\nr0 = 0\nexit", None, which=1)


def test_an_array_lookup_with_a_constant_key_out_of_range_still_needs_one(maps):
    (mine, k) = maps
    body = "r0 = *(u64 *)(r0 + 0)\nr0 = 0\nexit"
    agree(_lookup(mine[1].fd, 4) + body, "R0 invalid mem access 'map_value_or_null'",
          kernel_text=_lookup(k[1].fd, 4) + body)


def test_a_sign_extended_index_non_negative_in_32_bits_is_bounded_in_64(maps):
    """Found by the clang corpus (map_value_signed_off.c at -mcpu=v4: an int index
    loaded with ``*(s32 *)``, checked with 32-bit signed jumps; the kernel's
    __reg_deduce_mixed_bounds then knows its upper half is zero)."""
    (mine, k) = maps
    body = ("if r0 == 0 goto out\nr2 = *(s32 *)(r6 + 8)\nif w2 s< 0 goto out\n"
            "if w2 s> 7 goto out\nr0 += r2\nr0 = *(u8 *)(r0 + 0)\nout:\nr0 = 0\nexit")
    agree("r6 = r1\n" + _lookup(mine[1].fd) + body, None,
          kernel_text="r6 = r1\n" + _lookup(k[1].fd) + body)


# --- stack ------------------------------------------------------------------------------

def test_a_stack_write_below_512_bytes_is_refused():
    agree("r0 = 0\n*(u64 *)(r10 - 520) = r0\nexit", "invalid write to stack R10 off=-520 size=8")


def test_a_misaligned_stack_access_is_refused():
    agree("r0 = 0\n*(u64 *)(r10 - 4) = r0\nexit",
          "misaligned stack access off 0+0+-4 size 8")


def test_an_uninitialised_stack_read_is_allowed_for_root():
    agree("r0 = *(u64 *)(r10 - 8)\nr0 = 0\nexit", None)


def test_a_32_bit_subtraction_of_a_pointer_from_a_scalar_is_unknown_in_64_bits():
    """adjust_ptr_min_max_vals: a 32-bit ALU op on a pointer gives a scalar unknown in
    all 64 bits (no zero extension), so its upper half decides no branch (found
    comparing test_pkt_access.o's level-2 log)."""
    agree("r9 = *(u32 *)(r1 + 76)\nw2 = 0\nw2 -= w9\nr2 >>= 32\nif r2 == 0 goto +1\n"
          "r0 = *(u64 *)(r2 + 0)\nr0 = 0\nexit", "R2 invalid mem access 'scalar'")


def test_a_32_bit_subtraction_of_two_pointers_is_unknown_in_64_bits():
    agree("r9 = *(u32 *)(r1 + 76)\nr2 = r9\nw2 -= w9\nr2 >>= 32\nif r2 == 0 goto +1\n"
          "r0 = *(u64 *)(r2 + 0)\nr0 = 0\nexit", "R2 invalid mem access 'scalar'")


def test_a_range_holding_one_value_of_the_tnum_is_that_constant():
    """__update_reg64_bounds (6.18): r2 & 48 in 17..40 can only be 32, so the branch
    on r2 != 32 is decided and the bad read it guards is not looked at (found
    comparing test_cls_redirect.o's level-2 log)."""
    agree("r2 = *(u32 *)(r1 + 8)\nr2 &= 0x30\nif r2 < 17 goto +4\nif r2 > 40 goto +3\n"
          "if r2 == 32 goto +2\nr3 = 0\nr0 = *(u64 *)(r3 + 0)\nr0 = 0\nexit", None)


def test_an_atomic_fetch_from_a_spilled_constant_gets_the_constant():
    """check_atomic_rmw fills the fetched register as a load would (found comparing
    level-2 logs): the branch on it is decided and the bad read it skips is not looked
    at."""
    agree("r1 = 7\n*(u64 *)(r10 - 8) = r1\nr1 = xchg_64(r10 - 0x8, r1)\n"
          "if r1 == 7 goto +2\nr2 = 0\nr0 = *(u64 *)(r2 + 0)\nr0 = 0\nexit", None)


def test_an_atomic_fetch_from_misc_stack_bytes_is_unknown():
    agree("r1 = 7\n*(u32 *)(r10 - 4) = 7\nw1 = atomic_fetch_add((u32 *)(r10 - 0x4), w1)\n"
          "if r1 == 7 goto +2\nr2 = 0\nr0 = *(u64 *)(r2 + 0)\nr0 = 0\nexit",
          "R2 invalid mem access 'scalar'")


def test_a_narrow_read_of_a_spilled_pointer_is_refused():
    agree("*(u64 *)(r10 - 8) = r1\nr0 = *(u32 *)(r10 - 8)\nr0 = 0\nexit",
          "invalid size of register fill")


def test_a_pointer_spill_overwritten_in_part_reads_back_as_a_scalar():
    agree("*(u64 *)(r10 - 8) = r1\n*(u8 *)(r10 - 8) = 0\nr2 = *(u64 *)(r10 - 8)\n"
          "r0 = *(u32 *)(r2 + 0)\nr0 = 0\nexit", "R2 invalid mem access 'scalar'")


def test_subtraction_from_the_stack_pointer_is_refused():
    """Found by the random differential test."""
    agree("r5 = r10\nr5 -= 0\nr0 = 0\nexit", "R5 subtraction from stack pointer prohibited")


def test_one_load_through_the_context_on_one_path_and_the_stack_on_another_is_refused():
    agree("r3 = *(u32 *)(r1 + 0)\nr2 = r1\nif r3 > 5 goto +2\nr2 = r10\nr2 += -8\n"
          "r0 = *(u32 *)(r2 + 0)\nr0 = 0\nexit",
          "same insn cannot be used with different pointers")


# --- atomics (check_atomic_rmw) ------------------------------------------------------------

def test_an_atomic_add_at_a_misaligned_map_value_offset_is_refused(maps):
    """Found by the public-program corpus (xadd_w_check_unaligned_map): an atomic access
    is held to strict alignment whatever the pointer, where a plain load is not."""
    _agree_map(maps, "if r0 == 0 goto +2\nr1 = 1\nlock *(u32 *)(r0 + 2) += r1\nr0 = 0\nexit",
               "misaligned value access off 0+0+2 size 4")


def test_an_atomic_add_at_an_aligned_map_value_offset_is_accepted(maps):
    _agree_map(maps, "if r0 == 0 goto +2\nr1 = 1\nlock *(u32 *)(r0 + 4) += r1\nr0 = 0\nexit",
               None)


def test_a_plain_load_at_a_misaligned_map_value_offset_is_accepted(maps):
    _agree_map(maps, "if r0 == 0 goto +1\nr1 = *(u32 *)(r0 + 2)\nr0 = 0\nexit", None)


def test_an_atomic_through_an_unknown_scalar_is_refused_as_misaligned():
    agree("call 7\nr1 = 1\nlock *(u64 *)(r0 + 0) += r1\nr0 = 0\nexit",
          "misaligned access off (0x0; 0xffffffffffffffff)+0+0 size 8")


def test_an_atomic_into_a_socket_is_refused():
    agree("r1 = *(u64 *)(r1 + 168)\nif r1 == 0 goto +2\nr2 = 1\nlock *(u32 *)(r1 + 0) += r2\n"
          "r0 = 0\nexit", "BPF_ATOMIC stores into R1 sock_common is not allowed")


# --- scalars and pointers -----------------------------------------------------------------

def test_dereferencing_a_scalar_is_refused():
    agree("r2 = 0\nr0 = *(u32 *)(r2 + 0)\nexit", "R2 invalid mem access 'scalar'")


def test_pointer_plus_pointer_is_refused():
    agree("r2 = r10\nr2 += r1\nr0 = 0\nexit", "R2 pointer += pointer prohibited")


def test_pointer_minus_pointer_is_a_scalar():
    agree("r2 = r10\nr2 -= r1\nr0 = r2\nexit", None)


def test_bitwise_operations_on_a_pointer_are_refused():
    agree("r1 &= 4\nr0 = 0\nexit", "R1 bitwise operator &= on pointer prohibited")


def test_exit_without_setting_r0_is_refused():
    agree("exit", "R0 !read_ok")


def test_a_sign_extending_move_of_a_value_that_fits_keeps_its_bounds():
    """Found by the clang corpus (signed_bounds.c at -mcpu=v4: ``r2 = (s32)r2`` of
    [0, 31] used as a stack offset; coerce_reg_to_size_sx)."""
    agree("r2 = *(u32 *)(r1 + 8)\nr2 &= 31\nr2 = (s32)r2\nr3 = r10\nr3 += -32\n"
          "*(u64 *)(r10 - 32) = 0\n*(u64 *)(r10 - 24) = 0\n*(u64 *)(r10 - 16) = 0\n"
          "*(u64 *)(r10 - 8) = 0\nr3 += r2\nr0 = *(u8 *)(r3 + 0)\nexit", None)


def test_a_sign_extending_move_of_a_negative_range_gives_a_negative_range():
    """[0x80, 0xff] as s8 is [-128, -1]: one byte higher reaches past the frame."""
    agree("r2 = *(u32 *)(r1 + 8)\nr2 &= 127\nr2 |= 128\nw2 = (s8)w2\nr2 = (s32)r2\n"
          "r3 = r10\nr3 += r2\nr3 += 1\n*(u8 *)(r3 + 0) = 0\nr0 = 0\nexit",
          "invalid variable-offset write to stack R3 var_off=(0xffffffffffffff80; 0x7f) "
          "off=1 size=1")


def test_a_sign_extending_move_of_a_range_across_the_sign_is_the_sizes_range():
    agree("r2 = *(u32 *)(r1 + 8)\nr2 &= 255\nr2 = (s8)r2\nr2 += 128\nr3 = r10\n"
          "r3 += -256\nr3 += r2\nr0 = *(u8 *)(r3 + 0)\nr0 = 0\nexit", None)


def test_a_division_by_zero_on_a_dead_path_is_not_checked():
    agree("r0 = 0\nif r0 == 0 goto +1\nr0 /= 0\nexit", None)


def test_a_quotient_of_two_constants_is_unknown_to_the_verifier():
    """Found by the random differential test: the kernel's verifier tracks no bounds
    through BPF_DIV or BPF_MOD (is_safe_to_compute_dst_reg_range), not even for
    constants, so a branch on the result may go either way."""
    agree("r3 = 10\nr3 /= 2\nif r3 > 5 goto +1\nr0 = 0\nexit", "R0 !read_ok")


def test_a_remainder_by_a_constant_is_unknown_to_the_verifier():
    agree("r3 = *(u8 *)(r1 + 0)\nr3 %= 3\nif r3 > 2 goto +1\nr0 = 0\nexit", "R0 !read_ok")


def test_a_32_bit_quotient_still_has_its_upper_half_zero():
    agree("r3 = *(u8 *)(r1 + 0)\nw3 /= 18\nif r3 > 0xffffffff goto +1\nr0 = 0\nexit", None)


def test_a_byte_swap_moves_the_known_bits_with_the_bytes():
    """Found by the random differential test: a byte swap swaps the tnum's bytes and the
    bounds are derived again from it (scalar_byte_swap), so a u8 swapped to big-endian
    has a zero low byte."""
    agree("r3 = *(u8 *)(r1 + 4)\nr3 = be16 r3\nr3 &= 31\nif r3 != 0 goto +1\nr0 = 0\nexit",
          None)


def test_a_64_bit_byte_swap_keeps_all_64_bits():
    agree("r3 = *(u8 *)(r1 + 4)\nr3 = be64 r3\nr3 >>= 56\nif r3 > 0 goto +1\nr0 = 0\nexit",
          "R0 !read_ok")


# skb->len in r2, bounded by ``cut``, moved by ``op``, then ``test``, which jumps past a
# read of r9 (never set) when it holds: the read is refused wherever it is reached.
_WRAP = "r2 = *(u32 *)(r1 + 0)\nr0 = 0\n{cut} goto out\n{op}\n{test} goto out\nr0 = r9\nout:\nexit"


def test_an_add_whose_every_sum_wraps_keeps_its_unsigned_bounds():
    """scalar32_min_max_add (6.18): [1, 2**32 - 1] plus 2**32 - 1 (``w2 += -1``) wraps
    for every value, so the sum is [0, 2**32 - 2], never 2**32 - 1, and the read of
    r9 is never reached."""
    agree(_WRAP.format(cut="if w2 == 0", op="w2 += -1", test="if w2 != -1"), None)


def test_an_add_whose_sums_wrap_only_in_part_loses_its_unsigned_bounds():
    """[0, 100] plus 2**32 - 1: 0 does not wrap, the rest does, so the sum may be
    anything (2**32 - 1 for a length of 0) and the read of r9 is reached."""
    agree(_WRAP.format(cut="if w2 > 100", op="w2 += -1", test="if w2 != -1"),
          "R9 !read_ok")


def test_a_subtraction_whose_every_difference_wraps_keeps_its_unsigned_bounds():
    """scalar_min_max_sub (6.18): [0, 5] minus 8 is below 0 for every value, so it is
    [2**64 - 8, 2**64 - 3], never 2**64 - 2 or above (the tnum alone allows 2**64 - 1)."""
    agree(_WRAP.format(cut="if r2 > 5", op="r2 -= 8", test="if r2 < -2"), None)


# fp-16 and fp-8 zeroed, then ``store`` through fp-16 plus skb->len & 8 (either slot);
# fp-8 read back decides a jump past a read of r9 (never set).
_VAR_OFF_STORE = ("*(u64 *)(r10 - 8) = 0\n*(u64 *)(r10 - 16) = 0\nr2 = *(u32 *)(r1 + 0)\n"
                  "r2 &= 8\nr3 = r10\nr3 += -16\nr3 += r2\n{store}\n"
                  "r0 = *(u64 *)(r10 - 8)\nif r0 == 0 goto +1\nr0 = r9\nexit")


def test_a_zero_stored_at_a_variable_stack_offset_leaves_zeroed_slots_zero():
    """check_stack_write_var_off: a store of the immediate 0 keeps STACK_ZERO bytes
    zero, so fp-8 still reads as 0 and the read of r9 is never reached."""
    agree(_VAR_OFF_STORE.format(store="*(u64 *)(r3 + 0) = 0"), None)


def test_a_zero_register_stored_at_a_variable_stack_offset_leaves_a_spilled_zero():
    """The same with a register known to be 0, over a spilled 0 (``r4 = 0`` spilled to
    fp-8 first): the spill stays, and fp-8 reads as 0."""
    agree(_VAR_OFF_STORE.format(store="r4 = 0\n*(u64 *)(r10 - 8) = r4\n"
                                      "*(u64 *)(r3 + 0) = r4"), None)


def test_a_non_zero_stored_at_a_variable_stack_offset_makes_the_slots_misc():
    agree(_VAR_OFF_STORE.format(store="*(u64 *)(r3 + 0) = 1"), "R9 !read_ok")


# A 32-bit move of r2 into r3, then a 32-bit bound on w2 that the kernel carries to r3
# only if the two are linked; r1 is never set, so reading it shows the link is missing.
_SUBREG = ("call 5\n{src}\n{mov}\nif w2 < 9 goto +1\nexit\nif r3 < 9 goto +1\n"
           "r0 -= r1\nexit")


def test_a_32_bit_move_of_a_value_with_a_zero_upper_half_stays_linked_to_its_source():
    """Found by the 6.12 selftests (verifier_reg_equal.c, subreg_equality_1): the copy
    of a value below 2**32 equals its source (check_alu_op: get_reg_width <= 32), so a
    32-bit bound on one is a 64-bit bound on both (sync_linked_regs)."""
    agree(_SUBREG.format(src="*(u64 *)(r10 - 8) = r0\nr2 = *(u32 *)(r10 - 8)",
                         mov="w3 = w2"), None, SF)


def test_a_32_bit_move_of_a_value_that_may_pass_2_32_is_not_linked():
    """subreg_equality_2: the copy drops the upper half, so it is not its source."""
    agree(_SUBREG.format(src="r2 = r0", mov="w3 = w2"), "R1 !read_ok", SF)


def test_a_32_bit_sign_extending_move_that_cannot_change_the_value_stays_linked():
    """check_alu_op: ``w3 = (s8)w2`` of a value below 128 keeps the source's id."""
    agree(_SUBREG.format(src="r2 = r0\nr2 &= 0x7f", mov="w3 = (s8)w2"), None, SF)


# r2 made from r0, then a bound on r0 that the kernel carries to r2 only if the two are
# linked (BPF_ADD_CONST: r2 is r0 plus a constant); r1 is never set, as above.
_ADD_CONST = "call 5\n{make}\nif r0 < 5 goto +1\nexit\nif r2 {test} goto +1\nr0 -= r1\nexit"


def test_a_copy_plus_a_constant_is_bounded_with_its_source():
    """Found by the 6.12 selftests (verifier_iterating_callbacks.c, check_add_const):
    ``r2 = r0; r2 += 4`` keeps r2 linked to r0 with the 4 (adjust_reg_min_max_vals), so
    r0 < 5 makes r2 < 9 (sync_linked_regs)."""
    agree(_ADD_CONST.format(make="r2 = r0\nr2 += 4", test="< 9"), None, SF)


def test_a_copy_minus_a_constant_is_bounded_with_its_source():
    agree(_ADD_CONST.format(make="r2 = r0\nr2 -= 4", test="s< 1"), None, SF)


def test_a_copy_plus_a_negative_constant_is_bounded_with_its_source():
    agree(_ADD_CONST.format(make="r2 = r0\nr2 += -4", test="s< 1"), None, SF)


def test_a_second_constant_added_to_a_copy_unlinks_it():
    """One constant per link: ``r2 += 1`` after ``r2 += 4`` forgets r0."""
    agree(_ADD_CONST.format(make="r2 = r0\nr2 += 4\nr2 += 1", test="< 10"), "R1 !read_ok",
          SF)


def test_a_32_bit_constant_added_to_a_copy_that_may_pass_2_32_unlinks_it():
    agree(_ADD_CONST.format(make="r2 = r0\nw2 += 4", test="< 9"), "R1 !read_ok", SF)


def test_a_32_bit_constant_added_to_a_copy_below_2_32_keeps_the_link():
    """Found by the 6.12 selftests (cond_break2, whose kernel log shows ``w3 += 1``
    linked on 6.18): a 32-bit add links a copy whose value was below 2**32
    (BPF_ADD_CONST32), the bound reaching it zero-extended."""
    agree(_ADD_CONST.format(make="r0 &= 0xff\nr2 = r0\nw2 += 4", test="< 9"), None, SF)


def test_a_32_bit_constant_added_to_a_copy_wraps_in_the_low_half():
    """``w2 -= 1`` of a copy that may be 0: the link carries the wrapped 32-bit value,
    so r0 < 5 leaves r2 possibly 0xffffffff."""
    agree(_ADD_CONST.format(make="r0 &= 0xff\nr2 = r0\nw2 -= 1", test="< 4"), "R1 !read_ok",
          SF)


def test_a_constant_outside_s32_added_to_a_copy_unlinks_it():
    agree(_ADD_CONST.format(make="r2 = r0\nr3 = 0x80000000 ll\nr2 += r3\n"
                                 "r3 = 0x80000005 ll", test="< r3"), "R1 !read_ok", SF)


def test_subtracting_s32_min_from_a_copy_unlinks_it():
    """-S32_MIN is no s32: the negated constant cannot be kept."""
    agree(_ADD_CONST.format(make="r2 = r0\nr2 -= -2147483648\nr3 = 0x80000005 ll",
                            test="< r3"), "R1 !read_ok", SF)


# r6 and r7 linked; r6 += r6 once r7 is 1: had the add kept the link (with the 2 as its
# constant), r7 == r9's sync_linked_regs would make r6 3, and r1 (never set) unread.
_SELF_ADD = ("call 7\nr6 = r0\nr7 = r6\ncall 7\nr9 = r0\nif r7 != 1 goto +4\n{add}\n"
             "if r7 == r9 goto +2\nif r6 == 3 goto +1\nr0 -= r1\nr0 = 0\nexit")


def test_adding_a_register_to_itself_unlinks_it():
    """Found by the 6.12.118 selftests (verifier_linked_scalars.o): ``r6 += r6`` is no
    copy plus a constant, though r6 is known there (adjust_reg_min_max_vals:
    ``insn->src_reg == insn->dst_reg``); pyebpf linked it."""
    agree(_SELF_ADD.format(add="r6 += r6"), "R1 !read_ok", SF)


def test_adding_a_register_to_itself_in_32_bits_unlinks_it():
    agree(_SELF_ADD.format(add="w6 += w6"), "R1 !read_ok", SF)


def test_a_copy_of_a_copy_plus_a_constant_starts_a_link_of_its_own():
    """assign_scalar_id_before_mov: ``r3 = r2`` gives r2 a new id shared with r3, and
    r2 forgets r0."""
    agree(_ADD_CONST.format(make="r2 = r0\nr2 += 4\nr3 = r2", test="< 9"), "R1 !read_ok", SF)


def test_a_spill_of_a_copy_plus_a_constant_unlinks_the_register():
    agree(_ADD_CONST.format(make="r2 = r0\nr2 += 4\n*(u64 *)(r10 - 8) = r2", test="< 9"),
          "R1 !read_ok", SF)


def test_a_spilled_scalar_is_bounded_with_its_register():
    """check_stack_write_fixed_off: a spill the value fits shares the register's id, so
    a bound on r0 reaches what is filled back from the slot."""
    agree(_ADD_CONST.format(make="*(u64 *)(r10 - 8) = r0\nr2 = *(u64 *)(r10 - 8)",
                            test="< 5"), None, SF)


def test_a_narrowing_spill_is_not_linked_to_its_register():
    agree(_ADD_CONST.format(make="*(u32 *)(r10 - 8) = r0\nr2 = *(u32 *)(r10 - 8)",
                            test="< 5"), "R1 !read_ok", SF)


def test_a_32_bit_fill_keeps_the_32_bit_bounds_of_the_spill():
    """coerce_reg_to_size of 4 bytes leaves the 32-bit bounds alone: w1 s<= 7 holds for
    the value filled back, which its 64-bit bounds (0 to 0xffffffff) do not say, so
    the branch to the read of R5 is never taken (reqsk1 #230 of the loop shapes, where
    a lost smax32 kept a may_goto from widening a spilled counter)."""
    agree("r1 = *(u32 *)(r1 + 0)\nif w1 s> 7 goto +3\n*(u32 *)(r10 - 8) = r1\n"
          "r2 = *(u32 *)(r10 - 8)\nif w2 s> 7 goto +2\nr0 = 0\nexit\nr0 = r5\nexit", None)


# check_add_const as clang emits a can_loop loop: r0 = r2 + 1 stays linked to r2, so
# r2 < 9 bounds the next iteration's index r0 to 9 and its read stays in a 10-byte value
_ADD_CONST_LOOP = """
call 5
if r0 > 9 goto +10
r1 = map_value({fd}) ll
r2 = r0
r1 += r2
r3 = *(u8 *)(r1 + 0)
may_goto +4
r0 = r2
r0 += 1
if r2 < 9 goto -9
exit
r0 = 0
exit
"""


def test_a_may_goto_loop_indexing_by_a_copy_plus_one_stays_inside_the_value():
    """Found by the 6.12 selftests (verifier_iterating_callbacks.c, check_add_const:
    refused here before BPF_ADD_CONST links, the next index unbounded)."""
    mine, theirs = Map.create("array", 4, 10, 1), kernel.KernelMap("array", 4, 10, 1)
    with theirs:
        agree(_ADD_CONST_LOOP.format(fd=mine.fd), None, SF,
              kernel_text=_ADD_CONST_LOOP.format(fd=theirs.fd))


# --- helpers ------------------------------------------------------------------------------

def test_a_helper_length_of_zero_is_refused():
    agree("r1 = r10\nr1 += -8\nr2 = 0\ncall 6\nr0 = 0\nexit",
          "R2 invalid zero-sized read: u64=[0,0]")


def test_an_unbounded_helper_length_is_refused():
    agree("r6 = r1\nr4 = *(u32 *)(r6 + 0)\nr4 += 1\nr1 = r6\nr2 = 0\nr3 = r10\nr3 += -16\n"
          "call 26\nr0 = 0\nexit", "R4 unbounded memory access")


def test_a_helper_buffer_running_past_the_stack_is_refused():
    agree("r6 = r1\nr1 = r6\nr2 = 0\nr3 = r10\nr3 += -8\nr4 = 16\ncall 26\nr0 = 0\nexit",
          "stack R3 off=-8 size=16")


# probe_read_kernel(dst=r1, size=0, src=NULL) after two zeroed slots: size 0 is allowed
_ZERO_SIZED = ("r0 = 0\n*(u64 *)(r10 - 16) = r0\n*(u64 *)(r10 - 8) = r0\n{dst}\nr2 = 0\n"
               "r3 = 0\ncall 113\nr0 = 0\nexit")
_VAR_DST = "r1 = *(u32 *)(r1 + 0)\nr1 &= {mask}\nr1 += -16\nr1 += r10"


def test_a_zero_sized_helper_buffer_at_a_variable_offset_past_the_frame_is_refused():
    """Found by the 6.12 selftests (verifier_var_off.c,
    zero_sized_access_max_out_of_bound): an access of size 0 is still bounded by the
    stack (check_stack_range_initialized calls check_stack_access_within_bounds), and
    [fp-16, fp+47] reaches above the frame pointer."""
    agree(_ZERO_SIZED.format(dst=_VAR_DST.format(mask=63)),
          "invalid variable-offset write to stack R1 var_off=(0x0; 0xffffffffffffffff) "
          "off=0 size=0", SF)


def test_a_zero_sized_helper_buffer_at_a_variable_offset_inside_the_stack_is_accepted():
    agree(_ZERO_SIZED.format(dst=_VAR_DST.format(mask=15)), None, SF)


def test_a_zero_sized_helper_buffer_at_the_frame_pointer_is_refused():
    """check_stack_slot_within_bounds: the lowest byte must lie below fp, size 0 too."""
    agree(_ZERO_SIZED.format(dst="r1 = r10"), "invalid write to stack R1 off=0 size=0", SF)


def test_a_zero_sized_helper_buffer_below_the_stack_is_refused():
    agree(_ZERO_SIZED.format(dst="r1 = r10\nr1 += -520"),
          "invalid write to stack R1 off=-520 size=0", SF)


def test_a_zero_sized_helper_read_at_a_variable_offset_past_the_frame_is_refused():
    """A buffer the helper reads (csum_diff's ``from``) is bounded the same way."""
    agree("r0 = 0\n*(u64 *)(r10 - 16) = r0\n*(u64 *)(r10 - 8) = r0\n" +
          _VAR_DST.format(mask=63) + "\nr2 = 0\nr3 = 0\nr4 = 0\nr5 = 0\ncall 28\n"
          "r0 = 0\nexit",
          "invalid variable-offset read from stack R1 var_off=(0x0; 0xffffffffffffffff) "
          "off=0 size=0")


def test_a_scalar_where_a_helper_wants_the_context_is_refused():
    agree("r1 = 0\ncall 34\nr0 = 0\nexit", "R1 type=scalar expected=ctx")


def test_exiting_with_a_ring_buffer_record_still_reserved_is_refused():
    ring = Map.create("ringbuf", 0, 0, 4096)
    body = "r2 = 8\nr3 = 0\ncall 131\nr0 = 0\nexit"
    with kernel.KernelMap("ringbuf", 0, 0, 4096) as k:
        agree(f"r1 = map_fd({ring.fd}) ll\n" + body,
              "BPF_EXIT instruction in main prog would lead to reference leak",
              kernel_text=f"r1 = map_fd({k.fd}) ll\n" + body)


def test_exiting_with_a_reservation_leaked_and_r0_unset_is_refused_for_the_leak():
    """process_bpf_exit_full checks for leaked references before check_return_code
    reads R0 (found by the random programs, seed fuzz1205): the first record leaks, the
    second is discarded, which leaves R0 unset."""
    ring = Map.create("ringbuf", 0, 0, 4096)
    reserve = "r1 = map_fd({}) ll\nr2 = 8\nr3 = 0\ncall 131\n"
    body = "if r0 == 0 goto +3\nr1 = r0\nr2 = 0\ncall 133\nexit"
    with kernel.KernelMap("ringbuf", 0, 0, 4096) as k:
        agree(reserve.format(ring.fd) * 2 + body,
              "BPF_EXIT instruction in main prog would lead to reference leak",
              kernel_text=reserve.format(k.fd) * 2 + body)


def _kfuncs(text: str) -> tuple[str, str]:
    """``text`` with each ``KFUNC(name)`` as pyebpf numbers the kfunc and as the kernel's
    vmlinux BTF does."""
    from pyebpf.kernel.vmlinux import kfunc_btf_id
    sub = lambda ids: re.sub(r"KFUNC\((\w+)\)", lambda m: f"kfunc {ids(m[1])}", text)
    return sub(isa.KFUNC_IDS.__getitem__), sub(lambda name: kfunc_btf_id(name, 0))


ITER_AT_24 = ("r6 = r1\nr1 = r10\nr1 += -24\nr2 = 0\nr3 = 4\n"
              "call KFUNC(bpf_iter_num_new)\n")
ITER_DESTROY = "r1 = r10\nr1 += -24\ncall KFUNC(bpf_iter_num_destroy)\nr0 = 0\nexit"


def test_a_load_from_an_iterators_stack_slot_is_refused():
    """check_stack_read_fixed_off: an iterator's bytes are neither misc, zero nor
    uninitialised (found by the random programs, seed wide1205)."""
    ours_, theirs_ = _kfuncs(ITER_AT_24 + "r0 = *(u32 *)(r10 - 20)\n" + ITER_DESTROY)
    agree(ours_, "invalid read from stack off -20+0 size 4", kernel_text=theirs_)


def test_a_helper_reading_stack_that_holds_an_iterator_is_refused():
    """check_stack_range_initialized refuses an iterator's bytes to a helper, even for
    root (found by the random programs, seed wide1205)."""
    ours_, theirs_ = _kfuncs(ITER_AT_24 + "*(u64 *)(r10 - 8) = 0\n*(u64 *)(r10 - 16) = 0\n"
                             "r1 = r10\nr1 += -20\nr2 = 16\ncall 6\n" + ITER_DESTROY)
    agree(ours_, "invalid read from stack R1 off -20+0 size 16", kernel_text=theirs_)


def test_a_variable_offset_store_reaching_an_iterator_scrubs_its_slot_whole():
    """check_stack_write_var_off scrubs a special slot it reaches (6.18.44's
    scrub_special_slot): the iterator's bytes all become misc, so a read of them at a
    variable offset passes, and the iterator's reference, still held, leaks at the
    exit (found by the random programs, seed newkinds1205b #6324)."""
    ours_, theirs_ = _kfuncs(ITER_AT_24 + "r3 = *(u16 *)(r6 + 4)\nr3 &= 8\nr2 = r10\n"
                             "r2 += -32\nr2 += r3\n*(u8 *)(r2 + 0) = 1\n"
                             "r0 = *(u8 *)(r2 + 7)\nr0 = 0\nexit")
    agree(ours_, "BPF_EXIT instruction in main prog would lead to reference leak",
          prog_type=SF, kernel_text=theirs_)


def test_a_variable_offset_store_reaching_a_dynptr_destroys_it():
    """check_stack_write_var_off runs destroy_if_dynptr_stack_slot on each slot it may
    reach: both of the dynptr's slots become invalid stack, which root may read
    (pyebpf kept the second slot a dynptr's and refused the read)."""
    ours_, theirs_ = _kfuncs("r6 = r1\nr1 = r6\nr2 = 0\nr3 = r10\nr3 += -16\n"
                             "call KFUNC(bpf_dynptr_from_skb)\nr3 = *(u16 *)(r6 + 4)\n"
                             "r3 &= 8\nr2 = r10\nr2 += -24\nr2 += r3\n"
                             "*(u8 *)(r2 + 0) = 1\nr0 = *(u64 *)(r10 - 8)\nr0 = 0\nexit")
    agree(ours_, None, kernel_text=theirs_)


# a local dynptr at r10 - 24 over a map value (its fd ``{fd}``), then a slice of it in r7
LOCAL_DYNPTR = ("r6 = r1\n*(u32 *)(r10 - 4) = 0\nr1 = map_fd({fd}) ll\nr2 = r10\nr2 += -4\n"
                "call 1\nif r0 == 0 goto out\nr1 = r0\nr2 = 16\nr3 = 0\nr4 = r10\n"
                f"r4 += -24\ncall {isa.HELPER_IDS['dynptr_from_mem']}\n")
SLICE_OF_24 = {
    "dynptr_data": f"r1 = r10\nr1 += -24\nr2 = 0\nr3 = 8\ncall {isa.HELPER_IDS['dynptr_data']}\n",
    "bpf_dynptr_slice": "r1 = r10\nr1 += -24\nr2 = 0\nr3 = 0\nr4 = 8\n"
                        "call KFUNC(bpf_dynptr_slice)\n",
    "bpf_dynptr_slice_rdwr": "r1 = r10\nr1 += -24\nr2 = 0\nr3 = 0\nr4 = 8\n"
                             "call KFUNC(bpf_dynptr_slice_rdwr)\n",
}
# a byte stored at r10 - 32 or r10 - 24 (the dynptr's first slot), by the packet's length
VAR_STORE_REACHING_24 = ("r3 = *(u32 *)(r6 + 0)\nr3 &= 8\nr2 = r10\nr2 += -32\nr2 += r3\n"
                         "*(u8 *)(r2 + 0) = 1\n")


def _agree_on_read_through_slice_after(store: str, slice_: str, expected: str | None):
    """:func:`agree` on the program: the slice of the local dynptr, ``store``, then a
    read through the slice."""
    text = (LOCAL_DYNPTR + SLICE_OF_24[slice_] + "if r0 == 0 goto out\nr7 = r0\n" + store +
            "r0 = *(u8 *)(r7 + 0)\nout:\nr0 = 0\nexit")
    ours_, theirs_ = _kfuncs(text)
    mine = Map.create("array", 4, 16, 1)
    with kernel.KernelMap("array", 4, 16, 1) as k:
        agree(ours_.format(fd=mine.fd), expected, kernel_text=theirs_.format(fd=k.fd))


@pytest.mark.parametrize("store", [VAR_STORE_REACHING_24, "*(u8 *)(r10 - 24) = 1\n"],
                         ids=["variable_offset", "fixed_offset"])
def test_a_store_destroying_a_dynptr_ends_its_bpf_dynptr_data_slice(store):
    """destroy_if_dynptr_stack_slot marks invalid every PTR_TO_MEM of the dynptr's
    dynptr_id: bpf_dynptr_data's slice is an unknown scalar after (pyebpf kept it)."""
    _agree_on_read_through_slice_after(store, "dynptr_data", "R7 invalid mem access 'scalar'")


@pytest.mark.parametrize("slice_", ["bpf_dynptr_slice", "bpf_dynptr_slice_rdwr"])
@pytest.mark.parametrize("store", [VAR_STORE_REACHING_24, "*(u8 *)(r10 - 24) = 1\n"],
                         ids=["variable_offset", "fixed_offset"])
def test_a_store_destroying_a_dynptr_keeps_its_kfunc_slices(store, slice_):
    """destroy_if_dynptr_stack_slot's type filter is exactly PTR_TO_MEM (or its
    _OR_NULL): a kfunc's slice, PTR_TO_MEM | DYNPTR_TYPE_LOCAL, stays readable."""
    _agree_on_read_through_slice_after(store, slice_, None)


def test_a_socket_filters_writable_slice_of_a_local_dynptr_is_refused():
    """check_kfunc_call asks may_access_direct_pkt_data(BPF_WRITE) of every
    bpf_dynptr_slice_rdwr, whatever the dynptr's type: a socket filter may not take one
    of a local dynptr either (pyebpf refused only an skb dynptr's; found by the random
    programs' dynptr2 fragments, seed f1)."""
    text = LOCAL_DYNPTR + SLICE_OF_24["bpf_dynptr_slice_rdwr"] + "out:\nr0 = 0\nexit"
    ours_, theirs_ = _kfuncs(text)
    mine = Map.create("array", 4, 16, 1)
    with kernel.KernelMap("array", 4, 16, 1) as k:
        agree(ours_.format(fd=mine.fd), "the prog does not allow writes to packet data",
              prog_type=SF, kernel_text=theirs_.format(fd=k.fd))


# an skb dynptr at r10 - 16, made again over its slots after a slice of it is taken
SKB_DYNPTR_AT_16 = "r1 = r6\nr2 = 0\nr3 = r10\nr3 += -16\ncall KFUNC(bpf_dynptr_from_skb)\n"
SLICE_OF_16 = {
    "dynptr_data": f"r1 = r10\nr1 += -16\nr2 = 0\nr3 = 8\ncall {isa.HELPER_IDS['dynptr_data']}\n",
    "bpf_dynptr_slice": "r1 = r10\nr1 += -16\nr2 = 0\nr3 = 0\nr4 = 8\n"
                        "call KFUNC(bpf_dynptr_slice)\n",
    "bpf_dynptr_slice_rdwr": "r1 = r10\nr1 += -16\nr2 = 0\nr3 = 0\nr4 = 8\n"
                             "call KFUNC(bpf_dynptr_slice_rdwr)\n",
}


def _agree_on_read_through_slice_of_remade_dynptr(slice_: str, expected: str | None):
    ours_, theirs_ = _kfuncs("r6 = r1\n" + SKB_DYNPTR_AT_16 + SLICE_OF_16[slice_] +
                             "r7 = r0\n" + SKB_DYNPTR_AT_16 +
                             "r0 = 0\nif r7 == 0 goto +1\nr0 = *(u8 *)(r7 + 0)\nexit")
    agree(ours_, expected, kernel_text=theirs_)


def test_making_a_dynptr_again_over_its_slots_ends_its_bpf_dynptr_data_slice():
    """mark_stack_slots_dynptr destroys the dynptr it overwrites first
    (destroy_if_dynptr_stack_slot): the plain PTR_TO_MEM of its dynptr_id is invalid."""
    _agree_on_read_through_slice_of_remade_dynptr("dynptr_data",
                                                  "R7 invalid mem access 'scalar'")


@pytest.mark.parametrize("slice_", ["bpf_dynptr_slice", "bpf_dynptr_slice_rdwr"])
def test_making_a_dynptr_again_over_its_slots_keeps_its_kfunc_slices(slice_):
    """The kfunc's slice has the dynptr's dynptr_id too (check_kfunc_call), but
    destroy_if_dynptr_stack_slot passes over its type, PTR_TO_MEM | DYNPTR_TYPE_SKB:
    the old slice stays readable after the dynptr is made anew."""
    _agree_on_read_through_slice_of_remade_dynptr(slice_, None)


def _iter_at(off: int) -> tuple[str, str]:
    """bpf_iter_num_new and bpf_iter_num_destroy of an iterator at ``r10 + off``."""
    return (f"r1 = r10\nr1 += {off}\nr2 = 0\nr3 = 4\ncall KFUNC(bpf_iter_num_new)\n",
            f"r1 = r10\nr1 += {off}\ncall KFUNC(bpf_iter_num_destroy)\n")


@pytest.mark.parametrize("iter_off, other_off", [(-16, -8), (-8, -16)],
                         ids=["first_slot", "second_slot"])
def test_an_iterator_made_over_a_dynptrs_slot_destroys_the_dynptr(iter_off, other_off):
    """process_iter_arg writes each slot of a new iterator (check_mem_access, BPF_DW)
    before mark_stack_slots_iter, so destroy_if_dynptr_stack_slot makes the dynptr's
    other slot invalid stack, which root may read (pyebpf kept it a dynptr's and
    refused the read; found by the random programs, seed p20a #17250, where the kept
    slot hid a later refusal of bpf_iter_num_next)."""
    new, destroy = _iter_at(iter_off)
    ours_, theirs_ = _kfuncs("r6 = r1\n" + SKB_DYNPTR_AT_16 + new +
                             f"r0 = *(u64 *)(r10 {other_off})\n" + destroy + "r0 = 0\nexit")
    agree(ours_, None, kernel_text=theirs_)


def test_an_iterator_made_over_a_dynptr_ends_its_bpf_dynptr_data_slice():
    """The write bpf_iter_num_new makes over the dynptr's slot (process_iter_arg)
    destroys it as a store would: its bpf_dynptr_data slice is an unknown scalar."""
    _agree_on_read_through_slice_after(_iter_at(-24)[0], "dynptr_data",
                                       "R7 invalid mem access 'scalar'")


def test_an_iterator_made_over_a_referenced_dynptr_is_refused():
    """destroy_if_dynptr_stack_slot, reached from process_iter_arg's write, refuses to
    overwrite a ring buffer dynptr (pyebpf made the iterator and refused only the
    discard after, for an unacquired reference)."""
    new, destroy = _iter_at(-16)
    text = ("r1 = map_fd({fd}) ll\nr2 = 8\nr3 = 0\nr4 = r10\nr4 += -16\n"
            f"call {isa.HELPER_IDS['ringbuf_reserve_dynptr']}\n" + new + destroy +
            f"r1 = r10\nr1 += -16\nr2 = 0\ncall {isa.HELPER_IDS['ringbuf_discard_dynptr']}\n"
            "r0 = 0\nexit")
    ours_, theirs_ = _kfuncs(text)
    ring = Map.create("ringbuf", 0, 0, 4096)
    with kernel.KernelMap("ringbuf", 0, 0, 4096) as k:
        agree(ours_.format(fd=ring.fd), "cannot overwrite referenced dynptr",
              kernel_text=theirs_.format(fd=k.fd))



@pytest.mark.parametrize("opens, region", [
    ("r1 = r10\nr1 += -8\ncall KFUNC(bpf_local_irq_save)\n", "bpf_local_irq_save"),
    ("call KFUNC(bpf_rcu_read_lock)\n", "bpf_rcu_read_lock"),
    ("call KFUNC(bpf_preempt_disable)\n", "bpf_preempt_disable"),
], ids=["irq", "rcu", "preemption"])
def test_an_exit_inside_an_open_region_is_refused_with_einval(opens, region):
    """check_resource_leak returns EINVAL for each region left open at the exit
    (pyebpf's errno table missed the words of the exit's prefix and gave EACCES)."""
    ours_, theirs_ = _kfuncs(opens + "r0 = 0\nexit")
    agree(ours_, f"BPF_EXIT instruction in main prog cannot be used inside {region}-ed "
                 "region", kernel_text=theirs_)

SKB_META_AT_16 = ("r6 = r1\nr8 = *(u32 *)(r6 + 76)\nr9 = *(u32 *)(r6 + 80)\nr1 = r6\n"
                  "r2 = 0\nr3 = r10\nr3 += -16\ncall KFUNC(bpf_dynptr_from_skb_meta)\n")
SLICE_OF_META_TO_R7 = ("r1 = r10\nr1 += -16\nr2 = 0\nr3 = 0\nr4 = 4\n"
                       "call KFUNC(bpf_dynptr_slice_rdwr)\nif r0 == 0 goto out\nr7 = r0\n")
WRITE_TO_META = ("*(u64 *)(r10 - 24) = 0\nr1 = r10\nr1 += -16\nr2 = 0\nr3 = r10\n"
                 f"r3 += -24\nr4 = 1\nr5 = 0\ncall {isa.HELPER_IDS['dynptr_write']}\n")


@pytest.mark.parametrize("body, reg", [
    (SLICE_OF_META_TO_R7 + "r1 = r6\nr2 = 0\ncall 39\nr0 = *(u8 *)(r7 + 0)\n", "R7"),
    (SLICE_OF_META_TO_R7 + WRITE_TO_META + "r0 = *(u8 *)(r7 + 0)\n", "R7"),
    ("r1 = r8\nr1 += 1\nif r1 > r9 goto out\n" + WRITE_TO_META + "r0 = *(u8 *)(r8 + 0)\n",
     "R8"),
], ids=["slice_after_pull_data", "slice_after_dynptr_write", "packet_after_dynptr_write"])
def test_an_skb_metadata_dynptr_changes_packet_data_as_an_skb_dynptr_does(body, reg):
    """bpf_dynptr_from_skb_meta's dynptr (DYNPTR_TYPE_SKB_META) is packet data to the
    verifier: a packet-changing helper ends its slices, and bpf_dynptr_write to it ends
    its slices and packet pointers (clear_all_pkt_pointers)."""
    ours_, theirs_ = _kfuncs(SKB_META_AT_16 + body + "out:\nr0 = 0\nexit")
    agree(ours_, f"{reg} invalid mem access 'scalar'", kernel_text=theirs_)


def test_a_variable_offset_load_reaching_a_dynptr_is_refused():
    """check_stack_read_var_off runs check_stack_range_initialized: a dynptr's bytes
    are refused (found by the random programs, seed wide1205)."""
    ours_, theirs_ = _kfuncs("r6 = r1\nr1 = r6\nr2 = 0\nr3 = r10\nr3 += -16\n"
                             "call KFUNC(bpf_dynptr_from_skb)\nr3 = *(u32 *)(r6 + 0)\n"
                             "r3 &= 7\nr2 = r10\nr2 += -16\nr2 += r3\n"
                             "r0 = *(u8 *)(r2 + 0)\nr0 = 0\nexit")
    agree(ours_, "invalid read from stack R2 var_off (0x0; 0x7)+0 size 1",
          kernel_text=theirs_)


def test_a_dynptr_slice_buffer_over_an_iterator_is_refused():
    """check_kfunc_mem_size_reg checks bpf_dynptr_slice's buffer as read before as
    written, and a read refuses an iterator's bytes (found by the random programs, seed
    newkinds1205)."""
    ours_, theirs_ = _kfuncs(ITER_AT_24 + "r1 = r6\nr2 = 0\nr3 = r10\nr3 += -16\n"
                             "call KFUNC(bpf_dynptr_from_skb)\nr1 = r10\nr1 += -16\n"
                             "r2 = 0\nr3 = r10\nr3 += -32\nr4 = 14\n"
                             "call KFUNC(bpf_dynptr_slice)\n" + ITER_DESTROY)
    agree(ours_, "arg#2 arg#3 memory, len pair leads to invalid memory access",
          kernel_text=theirs_)


@pytest.mark.parametrize("op", ("w3 /= 3", "w3 s%= 16", "w3 <<= w4"))
def test_a_32_bit_division_or_variable_shift_leaves_all_64_bits_unknown(op):
    """adjust_scalar_min_max_vals marks the result unknown and returns before its
    zext_32_to_64 where is_safe_to_compute_dst_reg_range says no: bounds a signed check
    leaves in [-1, 15] then reach below a map value (found by the random programs,
    seed newkinds1205)."""
    body = ("r6 = r1\n*(u32 *)(r10 - 4) = 0\nr1 = map_fd({}) ll\nr2 = r10\nr2 += -4\n"
            "call 1\nif r0 == 0 goto +8\nr4 = *(u32 *)(r6 + 8)\nr3 = *(u32 *)(r6 + 0)\n"
            f"{op}\nif r3 s> 15 goto +4\nif r3 s< -1 goto +3\nr0 += r3\n"
            "r0 = *(u8 *)(r0 + 0)\nr0 = 0\nexit")
    values = Map.create("array", 4, 16, 1)
    with kernel.KernelMap("array", 4, 16, 1) as k:
        agree(body.format(values.fd), "R0 min value is negative",
              kernel_text=body.format(k.fd))


# --- loops and limits ---------------------------------------------------------------------

def test_a_bounded_loop_is_accepted():
    agree("r4 = 0\nr4 += 1\nif r4 < 100 goto -2\nr0 = 0\nexit", None)


def _infinite_loop_at(text: str) -> tuple[int, int]:
    """The instruction pyebpf's and the kernel's "infinite loop detected" name."""
    mine = ours(text)
    assert mine is not None and "infinite loop detected at insn" in mine, mine
    with pytest.raises(errors.KernelError) as err:
        kernel.KernelProgram(asm.assemble(text), CLS, log_level=1)
    at = re.search(r"infinite loop detected at insn (\d+)", err.value.log)
    assert at, err.value.log[-500:]
    return int(re.search(r"at insn (\d+)", mine)[1]), int(at[1])


def test_a_loop_that_makes_no_progress_is_refused_where_the_kernel_says():
    mine, theirs_ = _infinite_loop_at("r4 = 0\nr4 += 0\nif r4 < 100 goto -2\nr0 = 0\nexit")
    assert mine == theirs_


def test_a_loop_back_to_a_may_goto_at_the_same_depth_is_an_infinite_loop():
    """may_goto's jump keeps the depth (only the fall-through goes one deeper), so a
    loop through the jump meets its own checkpoint exactly: is_state_visited's
    infinite-loop check applies at a may_goto too (reqsk1 #57 of the loop shapes)."""
    mine, theirs_ = _infinite_loop_at("r0 = 0\nmay_goto +1\nexit\ngoto -3")
    assert mine == theirs_ == 1


def test_an_add_of_an_unknown_value_leaves_no_offset_of_an_earlier_constant():
    """``r9 = r6; r9 += 2`` links r9 to r6 at offset 2; ``r9 += r7`` unlinks it, and
    the kernel's r9 is then exactly the loop's first one (r6 + r7, never linked): the
    second arrival at the loop's head is its "infinite loop", after 20 instructions.
    pyebpf had kept the offset and found the repeat only after its next checkpoint
    (120); the may_goto widening saw the same stale offset (seed verif3 #235 of the
    loop shapes)."""
    text = ("call 5\nr6 = r0\ncall 5\nr7 = r0\ncall 5\nr8 = r0\nr9 = r6\nr9 += r7\n"
            "r1 = 0\nr9 = r6\nr9 += 2\nr9 += r7\n" + "r1 += 0\n" * 6 + "goto -10")
    processed = re.compile(r"infinite loop detected at insn (\d+)\n(?:.*\n)*processed (\d+) insns")
    with pytest.raises(errors.VerifierError) as mine:
        verifier.verify(isa.unpack_program(asm.assemble(text)), CLS, log_level=1)
    with pytest.raises(errors.KernelError) as theirs:
        kernel.KernelProgram(asm.assemble(text), CLS, log_level=1)
    assert processed.search(mine.value.log).groups() == \
        processed.search(theirs.value.log).groups() == ("9", "20")


def test_a_loop_whose_state_becomes_fixed_is_refused_where_the_kernel_says():
    """Found by the random programs: the kernel's last processed instruction is the
    jump back (5), the state repeats at its target (3), and both name 3."""
    mine, theirs_ = _infinite_loop_at(
        "r6 = r1\nr0 = 0\nr3 = *(u32 *)(r6 + 0)\nr3 >>= 1\nif r3 & 1 goto +1\n"
        "goto -3\nr0 = 0\nexit")
    assert mine == theirs_ == 3


def test_a_loop_whose_copies_get_new_ids_is_explored_until_too_many_branches_wait():
    """Found by the clang corpus (a loop counter kept only in an unaligned 32-bit stack
    slot): a copy gives the value a new id each time round, so no state repeats
    exactly (states_maybe_looping compares ids) and each round leaves one more branch
    pending until push_stack gives up."""
    agree("r7 = 0\n*(u32 *)(r10 - 4) = r7\nloop:\nr1 = *(u32 *)(r10 - 4)\nr1 += 1\n"
          "*(u32 *)(r10 - 4) = r1\nif r1 > 15 goto out\nr7 = r1\ngoto loop\nout:\n"
          "r0 = 0\nexit", "The sequence of 8193 jumps is too complex.")


def test_a_loop_past_the_processed_instruction_limit_is_refused(monkeypatch):
    """The kernel's limit is 1,000,000 processed instructions; the same rule is shown
    here with a limit of 1,000 (a million take tens of seconds in Python)."""
    loop = "r4 = 0\nr4 += 1\nif r4 < 600000 goto -2\nr0 = 0\nexit"
    assert "BPF program is too large. Processed 1000001 insn" in theirs(loop)
    from pyebpf.verifier import interp
    assert interp.COMPLEXITY_LIMIT["current"] == 1_000_000
    monkeypatch.setitem(interp.COMPLEXITY_LIMIT, "current", 1000)
    assert "BPF program is too large. Processed 1001 insn" in ours(loop)


def test_the_4_6_profile_refuses_back_edges():
    assert "back-edge from insn 2 to 1" in ours("r4 = 0\nr4 += 1\nif r4 < 4 goto -2\n"
                                                "r0 = 0\nexit", profile="4.6")


def test_the_4_6_profile_refuses_bpf_to_bpf_calls():
    code = b"".join(i.pack() for i in [
        isa.Insn(0x85, 0, 1, 0, 2), isa.Insn(0xB7, 0, 0, 0, 0), isa.Insn(0x95, 0, 0, 0, 0),
        isa.Insn(0xB7, 0, 0, 0, 0), isa.Insn(0x95, 0, 0, 0, 0)])
    with pytest.raises(errors.VerifierError, match="BPF_CALL uses reserved fields"):
        Program(code, CLS, profile="4.6")


# --- subprograms ----------------------------------------------------------------------------

def test_a_static_subprogram_may_return_a_pointer():
    """Found on the ELF tests: only a global function's return must be a scalar."""
    code = b"".join(i.pack() for i in [
        isa.Insn(0x85, 0, 1, 0, 2), isa.Insn(0xB7, 0, 0, 0, 0), isa.Insn(0x95, 0, 0, 0, 0),
        isa.Insn(0xBF, 0, 1, 0, 0), isa.Insn(0x95, 0, 0, 0, 0)])
    Program(code, CLS)
    with kernel.KernelProgram(code, CLS, log_level=0):
        pass


def test_a_static_subprogram_may_return_without_setting_r0():
    """Found by the clang corpus (a subprogram ending in bpf_tail_call, whose R0 clang
    leaves unset when no caller reads it): prepare_func_exit copies R0 as it is."""
    agree("call sub\nr0 = 0\nexit\nsub:\nr1 = 1\nexit", None)


def test_a_caller_reading_an_r0_its_subprogram_never_set_is_refused():
    agree("call sub\nexit\nsub:\nr1 = 1\nexit", "R0 !read_ok")


def test_a_tail_call_in_a_subprogram_without_btf_is_refused():
    """Found by the random programs (check_abnormal_return)."""
    text = ("r6 = r1\ncall sub\nr0 = 0\nexit\nsub:\nr1 = r6\nr2 = map_fd({fd}) ll\n"
            "r3 = 0\ncall 12\nr0 = 0\nexit")
    ours_map, their_map = Map.create("prog_array", 4, 4, 2), None
    try:
        their_map = kernel.KernelMap("prog_array", 4, 4, 2)
        agree(text.format(fd=ours_map.fd), "tail_call is not allowed in subprogs without BTF",
              kernel_text=text.format(fd=their_map.fd))
    finally:
        if their_map is not None:
            their_map.close()


def test_a_subprogram_cannot_return_a_pointer_to_its_stack():
    code = b"".join(i.pack() for i in [
        isa.Insn(0x85, 0, 1, 0, 2), isa.Insn(0xB7, 0, 0, 0, 0), isa.Insn(0x95, 0, 0, 0, 0),
        isa.Insn(0xBF, 0, 10, 0, 0), isa.Insn(0x95, 0, 0, 0, 0)])
    with pytest.raises(errors.VerifierError, match="cannot return stack pointer"):
        Program(code, CLS)


LD_ABS_IN_SUBPROGRAM = """
unsigned long long load_byte(void *skb, unsigned long long off) asm("llvm.bpf.load.byte");
static __attribute__((noinline)) int proto(struct __sk_buff *skb)
{
	return load_byte(skb, 23);
}
SEC("socket")
int sf(struct __sk_buff *skb)
{
	return proto(skb) == 6 ? -1 : 0;
}
char _license[] SEC("license") = "GPL";
"""


def test_ld_abs_in_a_subprogram_of_an_object_with_btf_is_accepted(tmp_path):
    """The kernel allows it when the loader passes the object's BTF function info, as
    libbpf and tc do (raw programs have none and are refused: test_verifier.py)."""
    from bpfc import compile_object
    path = tmp_path / "ldabs.o"
    path.write_bytes(compile_object(LD_ABS_IN_SUBPROGRAM))
    assert set(load(path, pin=False).programs) == {"sf"}


def test_libbpf_loads_ld_abs_in_a_subprogram_of_an_object_with_btf(tmp_path, live_kernel):
    """The kernel's side of the test above: libbpf passes the BTF function info."""
    from bpfc import compile_object
    import libbpfobj
    path = tmp_path / "ldabs.o"
    path.write_bytes(compile_object(LD_ABS_IN_SUBPROGRAM))
    with libbpfobj.LoadedObject(str(path)) as obj:
        assert obj.programs


_LD_ABS_SUBPROG = """
__attribute__((naked, noinline, used)) static {ret} sub(void)
{{
	asm volatile ("r6 = r1; r0 = *(u32 *)skb[0]; r0 = 1; exit;" ::: "memory");
}}
SEC("socket") __attribute__((naked)) int sf(void)
{{
	asm volatile ("call sub; if r0 != 0 goto 1f; r0 = r9; 1: r0 = 0; exit;" ::: "memory");
}}
char _license[] SEC("license") = "GPL";
"""


def test_a_failed_ld_abs_in_a_subprogram_returns_0_to_its_caller():
    """Found by the 6.12.118 selftests (verifier_ld_ind.o): check_ld_abs follows the
    load's failure in a subprogram as a return of 0 (bpf_gen_ld_abs's hidden exit), so
    the caller's r0 == 0 branch, reading r9 never set, is reached; pyebpf saw only the
    1 the subprogram returns."""
    from bpfc import compile_object
    from objdiff import refused_alike
    refused_alike(compile_object(_LD_ABS_SUBPROG.format(ret="int")), "R9 !read_ok")


def test_ld_abs_in_a_subprogram_returning_void_is_refused():
    """check_btf_func: with BTF, a subprogram using LD_ABS must return an int or an enum
    (found by verifier_ld_ind.o, as above)."""
    from bpfc import compile_object
    from objdiff import refused_alike
    refused_alike(compile_object(_LD_ABS_SUBPROG.format(ret="void")),
                  "LD_ABS is only allowed in functions that return 'int'.")


def test_a_tail_call_in_a_subprogram_returning_void_is_refused():
    """check_btf_func, as for LD_ABS above."""
    from bpfc import compile_object
    from objdiff import refused_alike
    refused_alike(compile_object("""
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} jmp SEC(".maps");
static __attribute__((noinline)) void sub(struct __sk_buff *skb)
{
	bpf_tail_call(skb, &jmp, 0);
}
SEC("tc")
int cls(struct __sk_buff *skb)
{
	sub(skb);
	return 0;
}
char _license[] SEC("license") = "GPL";
"""), "tail_call is only allowed in functions that return 'int'.")


# --- what a refusal carries ---------------------------------------------------------------

def test_a_refusal_carries_the_instruction_the_log_and_the_statistics():
    with pytest.raises(errors.VerifierError) as err:
        Program.from_asm("r0 = 0\nr2 = 0\nr0 = *(u32 *)(r2 + 0)\nexit", CLS)
    assert err.value.pc == 2 and err.value.insn == "r0 = *(u32 *)(r2 +0)"
    assert err.value.log.splitlines()[-2] == "R2 invalid mem access 'scalar'"
    assert err.value.log.splitlines()[-1].startswith("processed 3 insns (limit 1000000) ")


def test_a_refusal_names_the_c_line_it_came_from():
    obj = load(EXAMPLES / "nat4.o", pin=False, verify=False)
    prog = obj.programs[next(iter(obj.programs))]
    pcs = [li.pc for li in prog.line_info]
    insns = isa.unpack_program(prog.insns)
    # make the last instruction with a C line read a scalar pointer
    pc = max(p for p in pcs if isa.lookup(insns[p]).form is isa.F_LDX)
    insns[pc] = isa.Insn(insns[pc].code, insns[pc].dst, 0, 0, 0)
    insns.insert(0, isa.Insn(0xB7, 0, 0, 0, 0))
    raw = b"".join(i.pack() for i in insns[1:])
    with pytest.raises(errors.VerifierError) as err:
        Program(raw, CLS, line_info=prog.line_info)
    assert err.value.source.startswith("nat4.c:") or "nat4.c:" in err.value.source


def test_the_kernel_and_pyebpf_print_the_same_instructions_in_a_refusal_log():
    """The instruction lines of a level-1 log (``N: (code) text``) on the refused path;
    register states and statistics are not compared (ids and counts differ)."""
    text = PKT + "r4 = r2\nr4 += 14\nif r4 > r3 goto +4\nr0 = *(u16 *)(r2 + 12)\n" \
                 "r0 &= 255\nw0 += 1\nr0 = *(u32 *)(r2 + 12)\nr0 = 0\nexit"
    with pytest.raises(errors.KernelError) as kerr:
        kernel.KernelProgram(asm.assemble(text), CLS, log_level=1)
    with pytest.raises(errors.VerifierError) as err:
        Program.from_asm(text, CLS)
    def pick(log):
        return [re.sub(r"\s+;.*", "", ln) for ln in log.splitlines()
                if ln[:1].isdigit() and ": (" in ln]
    assert pick(err.value.log) == pick(kerr.value.log)


def _level2(log: str) -> list[tuple[str, dict]]:
    """The instruction lines of a level-2 log, each with the registers and stack slots
    printed after it; ids and precision marks (which pyebpf does not track) dropped."""
    out = []
    for line in log.splitlines():
        m = re.match(r"^(\d+: \([0-9a-f]{2}\) [^;]*?)\s*(?:;\s*(.*))?$", line)
        if not m:
            continue
        state = re.sub(r"(?<=[(,])id=\d+,?", "", m[2] or "").replace(",)", ")")
        state = re.sub(r"=P(?=[-\d]|scalar)", "=", state)
        out.append((m[1], dict(re.findall(r"(R\d+|fp-?\d+)=((?:[^\s(]|\([^)]*\))+)",
                                          state))))
    return out


@pytest.mark.parametrize("text", [
    PKT + "r4 = r2\nr4 += 14\nif r4 > r3 goto +5\nr5 = *(u8 *)(r2 + 12)\nr5 &= 15\n"
          "*(u64 *)(r10 - 8) = r5\nr0 = *(u32 *)(r6 + 0)\nr0 s>>= 3\nr0 = 0\nexit",
    "r4 = 0\n*(u32 *)(r10 - 4) = 7\nr4 += 1\nr3 = *(u32 *)(r10 - 4)\nw3 += 3\n"
    "if r4 < 3 goto -4\nr0 = 0\nexit",
    "r6 = r1\nr3 = *(u32 *)(r6 + 8)\nr3 |= 1\nw3 -= 7\nr3 >>= 2\nr4 = r3\nr4 s>>= 60\n"
    "r4 = -r4\nr0 = *(u16 *)(r6 + 16)\nr0 <<= 48\nr0 = 0\nexit",
], ids=["packet", "loop", "scalars"])
def test_the_level_2_log_shows_the_kernels_register_states(text):
    """Compared: the instruction lines in order, and for each, every register and stack
    slot the kernel prints after it has the same text in pyebpf's log (ids and
    precision marks aside).  The kernel prints the registers an instruction touched
    and sometimes none; pyebpf prints those it touched always."""
    code = asm.assemble(text)
    with kernel.KernelProgram(code, CLS, log_level=2) as prog:
        k = _level2(prog.verifier_log)
    mine = _level2(verifier.verify(isa.unpack_program(code), CLS, log_level=2).log)
    assert [line for line, _ in mine] == [line for line, _ in k]
    for (line, theirs_), (_, ours_) in zip(k, mine):
        assert {r: ours_.get(r) for r in theirs_} == theirs_, line


# --- clang-compiled programs, every level and ISA version ---------------------------------

FLAGS = [("-O1",), ("-O2",), ("-O3",), ("-O2", "-mcpu=v2"), ("-O2", "-mcpu=v3"),
         ("-O2", "-mcpu=v4")]
# clang-20 at the levels where its code differs most from clang-19's (v3's 32-bit jumps
# and atomics, v4's sign extensions and byte swaps).  Its tests ask the running kernel
# only: the wheel's clang 20 numbers some types of an object's BTF differently from one
# install to another (a forward-declared struct's id: same binary, other path), so a
# recorded load's bytes need not be another checkout's build.
FLAGS_20 = [("-O2",), ("-O2", "-mcpu=v3"), ("-O2", "-mcpu=v4")]


def _examples_verdicts_agree(source, flags, compiler):
    from bpfc import compile_object
    obj = compile_object((EXAMPLES / source).read_text(), flags=flags, prelude=False,
                         compiler=compiler)
    try:
        kernel.load_object(obj).close()
        k = None
    except errors.KernelError as exc:
        k = str(exc)
    try:
        load(obj, pin=False).close()
        mine = None
    except errors.ElfError as exc:
        mine = str(exc)
    assert (k is None) == (mine is None), f"kernel: {k}\npyebpf: {mine}"


@pytest.mark.kernel
@pytest.mark.parametrize("flags", FLAGS, ids=lambda f: "".join(f))
@pytest.mark.parametrize("source", sorted(p.name for p in EXAMPLES.glob("*.c")))
def test_the_examples_compiled_every_way_get_the_kernels_verdict(source, flags):
    _examples_verdicts_agree(source, flags, "clang-19")


@pytest.mark.parametrize("flags", FLAGS_20, ids=lambda f: "".join(f))
@pytest.mark.parametrize("source", sorted(p.name for p in EXAMPLES.glob("*.c")))
def test_the_examples_built_by_clang20_get_the_kernels_verdict(source, flags, live_kernel):
    _examples_verdicts_agree(source, flags, "clang-20")


def _corpus_verdict_agrees(source, flags, compiler):
    from bpfc import compile_object
    text = (CORPUS / source).read_text()
    expected = re.search(r"Expected: (accepted|refused)", text)[1]
    obj = compile_object(text, flags=flags, prelude=False, compiler=compiler)
    kpc = None
    try:
        kernel.load_object(obj).close()
        k = None
    except errors.KernelError as exc:
        k = str(exc)
        # the instruction refused: the last one the log shows, or the one whose state
        # repeats an ancestor's (the kernel prints both states after it)
        pcs = re.findall(r"^(\d+): \(", exc.log or "", re.M)
        loop = re.search(r"infinite loop detected at insn (\d+)", exc.log or "")
        kpc = int(loop[1]) if loop else int(pcs[-1]) if pcs else None
    assert (k is None) == (expected == "accepted"), k
    try:
        load(obj, pin=False).close()
        mine = None
    except errors.ElfError as exc:
        mine = exc.__cause__
        assert isinstance(mine, errors.VerifierError), exc
    assert (k is None) == (mine is None), f"kernel: {k}\npyebpf: {mine}"
    if mine is not None:
        assert mine.pc == kpc, f"kernel refuses at {kpc}: {k}\npyebpf: {mine}"


@pytest.mark.kernel
@pytest.mark.parametrize("flags", FLAGS, ids=lambda f: "".join(f))
@pytest.mark.parametrize("source", sorted(p.name for p in CORPUS.glob("*.c")))
def test_the_corpus_compiled_every_way_gets_the_kernels_verdict_at_its_instruction(source,
                                                                                   flags):
    """Programs of the shapes users write (tests/verifier_corpus: parsers, NAT, load
    balancers, rate limiters, counters, flow tables, tail calls, subprograms, loops,
    helpers of each argument kind, and the bugs users make); each file says which
    verdict the kernel gives."""
    _corpus_verdict_agrees(source, flags, "clang-19")


@pytest.mark.parametrize("flags", FLAGS_20, ids=lambda f: "".join(f))
@pytest.mark.parametrize("source", sorted(p.name for p in CORPUS.glob("*.c")))
def test_the_corpus_built_by_clang20_gets_the_kernels_verdict_at_its_instruction(source, flags,
                                                                                 live_kernel):
    _corpus_verdict_agrees(source, flags, "clang-20")


# --- the verify command -------------------------------------------------------------------

def _cli(*args):
    # the child imports the pyebpf under test (installed, with its compiled core), not
    # the checkout's sources
    env, cwd = child_python()
    return subprocess.run([sys.executable, "-m", "pyebpf", "verify", *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=cwd)


def test_verify_prints_the_statistics_of_an_accepted_object():
    done = _cli(EXAMPLES / "nat4.o")
    assert done.returncode == 0
    assert done.stdout.strip().splitlines()[-1].startswith("processed ")


def test_verify_prints_the_refused_path_and_exits_1(tmp_path):
    src = tmp_path / "bad.s"
    src.write_text("r0 = 0\nr2 = 0\nr0 = *(u32 *)(r2 + 0)\nexit\n")
    done = _cli(src, "--type", "sched_cls")
    assert done.returncode == 1
    assert done.stdout.splitlines()[:4] == ["0: (b7) r0 = 0", "1: (b7) r2 = 0",
                                            "2: (61) r0 = *(u32 *)(r2 +0)",
                                            "R2 invalid mem access 'scalar'"]
    assert done.stderr.count("\n") == 1 and "refused" in done.stderr


def test_verify_at_level_2_prints_register_states(tmp_path):
    src = tmp_path / "ok.s"
    src.write_text("r0 = 0\nexit\n")
    done = _cli(src, "--log-level", "2")
    assert done.returncode == 0 and "R0=0" in done.stdout


# --- a pointer found past pkt_end (mark_pkt_end, is_pkt_ptr_branch_taken) -----------------

PAST_END = PKT + "r4 = r2\nr4 += 14\nif r4 {first} r3 goto out\nr0 = 0\nexit\nout:\n" \
    "if r4 {second} r3 goto done\nr0 = *(u8 *)(r2 + 20)\ndone:\nr0 = 0\nexit"


def test_a_constant_added_to_a_pointer_past_pkt_end_forgets_it_is_past():
    """adjust_ptr_min_max_vals (6.18.44): pointer arithmetic clears AT_PKT_END and
    BEYOND_PKT_END, so the same comparison after ``r4 += 0`` is not decided and the
    read after it, past the checked bytes, is refused (found comparing
    test_cls_redirect.o's level-2 log)."""
    agree(PKT + "r4 = r2\nr4 += 14\nif r4 > r3 goto out\nr0 = 0\nexit\nout:\nr4 += 0\n"
                "if r4 > r3 goto done\nr0 = *(u8 *)(r2 + 20)\ndone:\nr0 = 0\nexit",
          "invalid access to packet")


def test_a_pointer_past_pkt_end_decides_its_next_comparison_with_it():
    """``pkt > pkt_end`` taken: the pointer is at least a byte past the end, so the same
    comparison again is taken and the read past the checked bytes after it is never
    reached."""
    agree(PAST_END.format(first=">", second=">"), None)


def test_a_pointer_at_pkt_end_decides_a_greater_or_equal_comparison():
    agree(PAST_END.format(first=">=", second=">="), None)


def test_a_pointer_at_pkt_end_does_not_decide_a_strict_comparison():
    """``pkt >= pkt_end``: it may be exactly at the end, so ``pkt > pkt_end`` may fail
    and the read past the 14 checked bytes is reached."""
    agree(PAST_END.format(first=">=", second=">"), "invalid access to packet")


def test_pkt_end_compared_the_other_way_round_is_decided_too():
    agree(PAST_END.format(first=">", second=">").replace("if r4 > r3 goto done",
                                                           "if r3 < r4 goto done"), None)
