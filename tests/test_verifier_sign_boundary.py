"""A signed range that crosses the sign boundary (say [-128, 127]) is two pieces of the
unsigned domain; when the unsigned bounds leave only one piece, that piece is the range,
signed and unsigned (__reg64_deduce_bounds, __reg32_deduce_bounds).  A branch that the
narrowed range decides is dead, and the kernel does not verify what follows it."""
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


def program(extend: str, bound: int, cut: str, test: str) -> str:
    """A random number sign-extended by ``extend``, cut by the unsigned comparison
    ``cut`` against ``bound`` (jumping out), then ``test``, which jumps past the
    dereference when it holds."""
    return f"""
call 7
{extend}
r1 = {bound}
{cut} goto out
{test} goto out
{DEAD}
out:
r0 = 0
exit
"""


CASES = {
    # 64 bits: u <= 2**64-40000 leaves [0, 32767] of [-32768, 32767]
    "64-bit, the non-negative side": (
        program("r0 = (s16)r0", -40000, "if r0 > r1", "if r0 <= 32767"), None),
    # u >= 0x8000 leaves [-32768, -1]
    "64-bit, the negative side": (
        program("r0 = (s16)r0", 0x8000, "if r0 < r1", "if r0 s< 0"), None),
    # u <= 2**64-64 keeps both pieces: nothing is learnt, the dereference is reached
    "64-bit, both sides": (
        program("r0 = (s8)r0", -64, "if r0 > r1", "if r0 < 128"), REFUSED),
    # the same in the 32-bit subregister
    "32-bit, the non-negative side": (
        program("w0 = (s8)w0", 0x7FFFFF00, "if w0 > w1", "if w0 < 128"), None),
    "32-bit, the negative side": (
        program("w0 = (s8)w0", 0x80, "if w0 < w1", "if w0 s< 0"), None),
    "32-bit, both sides": (
        program("w0 = (s8)w0", -64, "if w0 > w1", "if w0 < 128"), REFUSED),
}


@pytest.mark.parametrize("text,refusal", CASES.values(), ids=CASES)
def test_one_side_of_a_range_across_the_sign_boundary_is_the_range(text, refusal):
    ours, theirs = verdicts(text)
    if refusal is None:
        assert theirs is None, theirs
        assert ours is None, ours
    else:
        assert theirs is not None and refusal in theirs, theirs
        assert ours is not None and refusal in ours, ours
