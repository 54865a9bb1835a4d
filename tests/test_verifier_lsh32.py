"""A 64-bit shift left by exactly 32 takes its signed bounds from the register's 32-bit
signed bounds, shifted (__scalar64_min_max_lsh's special case for the ``<<32 s>>32``
sign extension compilers emit), a negative 32-bit minimum included; any other shift
leaves the signed bounds to what the unsigned ones and the tnum say.  A branch that the
sign-extended range decides is dead, and the kernel does not verify what follows it
(colatrl's ``clat_egress`` sign-extends ``ETH_HLEN + sizeof(*ip4) + ntohs(uh->len) -
ofs`` so; pyebpf processed 34,943 instructions where the kernel processes 34,859)."""
import pytest

from pyebpf import Program, asm, errors, kernel
from skbdiff import CLS

# dereferencing a scalar: refused wherever it is reached
DEAD = "r0 = *(u8 *)(r0 + 0)"
REFUSED = "invalid mem access 'scalar'"


def verdicts(text: str):
    """(pyebpf's refusal or None, the kernel's refusal or None) for a tc program."""
    try:
        Program.from_asm(text, CLS)
        ours = None
    except errors.VerifierError as exc:
        ours = str(exc)
    try:
        with kernel.KernelProgram(asm.assemble(text), CLS, log_level=0):
            theirs = None
    except errors.KernelError as exc:
        theirs = str(exc)
    return ours, theirs


def program(narrow: str, shift: int, test: str) -> str:
    """A random number narrowed by ``narrow`` (32-bit operations), shifted left and
    arithmetically right by ``shift``, then ``test``, which jumps past the dereference
    when it holds."""
    return f"""
call 7
{narrow}
r0 <<= {shift}
r0 s>>= {shift}
{test} goto out
{DEAD}
out:
r0 = 0
exit
"""


# w0 in [0, 255], then 10 less: s32 [-10, 245], zero-extended to 64 bits
ACROSS_ZERO = "w0 &= 255\nw0 += -10"
CASES = {
    # the kernel keeps [-10, 245] through <<32 s>>32: both tests hold on every path
    "a negative 32-bit minimum, the upper test": (
        program(ACROSS_ZERO, 32, "if r0 s<= 245"), None),
    "a negative 32-bit minimum, the lower test": (
        program(ACROSS_ZERO, 32, "if r0 s>= -10"), None),
    # a non-negative 32-bit range (the unsigned bounds alone decide this one)
    "a non-negative 32-bit range": (
        program("w0 &= 255", 32, "if r0 s<= 255"), None),
    # by 31 there is no special case: the top bit may be shifted out, nothing is known
    "a shift by 31": (
        program(ACROSS_ZERO, 31, "if r0 s<= 245"), REFUSED),
}


@pytest.mark.parametrize("text,refusal", CASES.values(), ids=CASES)
def test_a_shift_left_by_32_keeps_the_32_bit_signed_bounds(text, refusal):
    ours, theirs = verdicts(text)
    if refusal is None:
        assert theirs is None, theirs
        assert ours is None, ours
    else:
        assert theirs is not None and refusal in theirs, theirs
        assert ours is not None and refusal in ours, ours
