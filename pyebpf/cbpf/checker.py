"""The kernel's checks on a classic program before it converts it (``bpf_check_basics_ok``,
``bpf_check_classic``, ``chk_code_allowed``, ``check_load_and_stores`` in the kernel's
socket filter code).  Every refusal there is EINVAL; here it is a :class:`ClassicError`
naming the instruction and the rule."""
from __future__ import annotations

from .. import isa
from ..errors import ClassicError
from .insn import SockFilter

L = isa
_ALU_OPS = (L.BPF_ADD, L.BPF_SUB, L.BPF_MUL, L.BPF_DIV, L.BPF_MOD, L.BPF_AND, L.BPF_OR,
            L.BPF_XOR, L.BPF_LSH, L.BPF_RSH)
_COND_JUMPS = frozenset(L.BPF_JMP | op | src for op in (L.BPF_JEQ, L.BPF_JGE, L.BPF_JGT, L.BPF_JSET)
                        for src in (L.BPF_K, L.BPF_X))
_MEM_LOADS = frozenset((L.BPF_LD | L.BPF_MEM, L.BPF_LDX | L.BPF_MEM))
_MEM_STORES = frozenset((L.BPF_ST, L.BPF_STX))
_ABS_LOADS = frozenset(L.BPF_LD | size | L.BPF_ABS for size in (L.BPF_W, L.BPF_H, L.BPF_B))

#: The codes chk_code_allowed accepts.
ALLOWED_CODES = frozenset(
    [L.BPF_ALU | op | src for op in _ALU_OPS for src in (L.BPF_K, L.BPF_X)]
    + [L.BPF_ALU | L.BPF_NEG]
    + [L.BPF_LD | size | mode for size in (L.BPF_W, L.BPF_H, L.BPF_B)
       for mode in (L.BPF_ABS, L.BPF_IND)]
    + [L.BPF_LD | L.BPF_W | L.BPF_LEN, L.BPF_LD | L.BPF_IMM, L.BPF_LD | L.BPF_MEM,
       L.BPF_LDX | L.BPF_W | L.BPF_LEN, L.BPF_LDX | L.BPF_B | L.BPF_MSH,
       L.BPF_LDX | L.BPF_IMM, L.BPF_LDX | L.BPF_MEM, L.BPF_ST, L.BPF_STX,
       L.BPF_MISC | L.BPF_TAX, L.BPF_MISC | L.BPF_TXA, L.BPF_RET | L.BPF_K,
       L.BPF_RET | L.BPF_A, L.BPF_JMP | L.BPF_JA]
    + list(_COND_JUMPS))

_AD_BASE = L.SKF_AD_OFF & 0xFFFFFFFF


def ancillary(insn: SockFilter) -> str | None:
    """The SKF_AD_* name an LD_ABS of any size at ``k`` selects (``bpf_anc_helper``),
    or None."""
    if insn.code not in _ABS_LOADS or insn.k < _AD_BASE:
        return None
    off = insn.k - _AD_BASE
    for name, value in L.SKF_AD.items():
        if value == off:
            return name
    return None


def _fail(pc: int, insn: SockFilter, why: str):
    return ClassicError(why, pc, str(insn))


def check(insns: list[SockFilter]) -> None:
    """Raise :class:`ClassicError` where the kernel's SO_ATTACH_FILTER returns EINVAL."""
    n = len(insns)
    if n == 0:
        raise ClassicError("an empty program (the kernel needs 1 to BPF_MAXINSNS "
                           f"= {L.BPF_MAXINSNS} instructions)")
    if n > L.BPF_MAXINSNS:
        raise ClassicError(f"{n} instructions, more than BPF_MAXINSNS = {L.BPF_MAXINSNS}")
    for pc, insn in enumerate(insns):
        code, k = insn.code, insn.k
        if code not in ALLOWED_CODES:
            raise _fail(pc, insn, f"opcode {code:#06x} is not a classic instruction the "
                                  "kernel accepts")
        if code in (L.BPF_ALU | L.BPF_DIV | L.BPF_K, L.BPF_ALU | L.BPF_MOD | L.BPF_K) and k == 0:
            raise _fail(pc, insn, "division by the constant 0")
        elif code in (L.BPF_ALU | L.BPF_LSH | L.BPF_K, L.BPF_ALU | L.BPF_RSH | L.BPF_K) and k >= 32:
            raise _fail(pc, insn, f"shift by {k}, 32 or more")
        elif (code in _MEM_LOADS or code in _MEM_STORES) and k >= L.BPF_MEMWORDS:
            raise _fail(pc, insn, f"scratch memory cell {k} does not exist "
                                  f"(M[0..{L.BPF_MEMWORDS - 1}])")
        elif code == L.BPF_JMP | L.BPF_JA and k >= n - pc - 1:
            raise _fail(pc, insn, f"jump to {pc + 1 + k}, past the last instruction {n - 1}")
        elif code in _COND_JUMPS and max(insn.jt, insn.jf) + pc + 1 >= n:
            raise _fail(pc, insn, f"jump to {pc + 1 + max(insn.jt, insn.jf)}, past the last "
                                  f"instruction {n - 1}")
        elif code in _ABS_LOADS and k >= _AD_BASE and ancillary(insn) is None:
            raise _fail(pc, insn, f"offset {k - (1 << 32)} is in the ancillary range "
                                  f"(SKF_AD_OFF = {L.SKF_AD_OFF}) but names no SKF_AD_* load")
    last = insns[-1]
    if last.code not in (L.BPF_RET | L.BPF_K, L.BPF_RET | L.BPF_A):
        raise _fail(n - 1, last, "the last instruction must be a return")
    _check_load_and_stores(insns)


def _check_load_and_stores(insns: list[SockFilter]) -> None:
    # check_load_and_stores: one bit per cell, set by a store; at each jump target the
    # cells written on every path that reaches it by a jump (fall-through is ignored
    # after a jump, as the kernel sets the state to "all valid" there).
    everything = (1 << L.BPF_MEMWORDS) - 1
    masks = [everything] * len(insns)
    valid = 0
    for pc, insn in enumerate(insns):
        valid &= masks[pc]
        code = insn.code
        if code in _MEM_STORES:
            valid |= 1 << insn.k
        elif code in _MEM_LOADS:
            if not valid & (1 << insn.k):
                raise _fail(pc, insn, f"M[{insn.k}] is read before it is written on "
                                      "some path")
        elif code == L.BPF_JMP | L.BPF_JA:
            masks[pc + 1 + insn.k] &= valid
            valid = everything
        elif code in _COND_JUMPS:
            masks[pc + 1 + insn.jt] &= valid
            masks[pc + 1 + insn.jf] &= valid
            valid = everything
