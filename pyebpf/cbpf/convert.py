"""Classic BPF to eBPF, as the kernel's ``bpf_convert_filter`` does it.

Registers: A is r0, X is r7, the context (the skb) is kept in r6, r2 is the scratch
register (the kernel's BPF_REG_TMP), M[k] is the word at r10 - (4k + 4).  The prologue
clears A and X and saves the context; every classic instruction then becomes the
kernel's sequence, with jumps re-targeted.

Where the kernel's code reads its ``struct sk_buff`` and ``net_device`` directly, the
converted program here reads the equivalent ``struct __sk_buff`` field (the skb mirror
every pyebpf program sees), and packet loads are eBPF's own ``LD_ABS``/``LD_IND``
(which are defined as the kernel's classic load, including SKF_NET_OFF/SKF_LL_OFF and
"return 0 when out of range").  Counts therefore differ from the kernel's: a packet
load is 1 instruction here and 6 to 11 there, MSH 7 here and 12 or more there, the
kernel's 4-instruction cache of ``skb->data`` and the head length is not emitted,
``ifindex``/``hatype`` are 1 here and 4 there, ``pkttype`` 1 here and 2 or 3 there.
``nlattr``, ``nlattr_nest`` and ``pay_offset`` call the classic-only functions of
``isa.CBPF_CALLS``, as the kernel calls its in-kernel ones.
"""
from __future__ import annotations

from .. import isa
from ..errors import ClassicError
from ..isa import Insn
from ..verifier.rules import FIELDS
from .checker import ancillary
from .insn import SockFilter

A, X, TMP, CTX, FP = 0, 7, 2, 6, 10
ARG1, ARG2, ARG3 = 1, 2, 3
_SKB = {f.name: f.offset for f in FIELDS}
L = isa


def _s32(k: int) -> int:
    return k - (1 << 32) if k & 0x80000000 else k


def _alu32(op, dst, src=0, imm=0, x=False):
    return Insn(L.BPF_ALU | op | (L.BPF_X if x else L.BPF_K), dst, src, 0, imm)


def _mov64(dst, src):
    return Insn(L.BPF_ALU64 | L.BPF_MOV | L.BPF_X, dst, src, 0, 0)


def _mov32_imm(dst, imm):
    return Insn(L.BPF_ALU | L.BPF_MOV | L.BPF_K, dst, 0, 0, _s32(imm))


def _ldx_w(dst, src, off):
    return Insn(L.BPF_LDX | L.BPF_MEM | L.BPF_W, dst, src, off, 0)


def _be16(dst):
    return Insn(L.BPF_ALU | L.BPF_END | L.BPF_TO_BE, dst, 0, 0, 16)


_EXIT = Insn(L.BPF_JMP | L.BPF_EXIT, 0, 0, 0, 0)
_CALL = {"cpu": isa.BPF_FUNC.BPF_FUNC_get_smp_processor_id,
         "random": isa.BPF_FUNC.BPF_FUNC_get_prandom_u32, **isa.CBPF_CALLS}
# __sk_buff fields that hold the same value the kernel's conversion reads
_FIELD = {"pkttype": "pkt_type", "mark": "mark", "queue": "queue_mapping",
          "rxhash": "hash", "vlan_tag": "vlan_tci", "vlan_tag_present": "vlan_present",
          "ifindex": "ifindex"}


def _ancillary(name: str, hatype: int) -> list:
    if name in ("protocol", "vlan_tpid"):
        # the field holds the big-endian value; ntohs as the kernel does
        field = "protocol" if name == "protocol" else "vlan_proto"
        return [_ldx_w(A, CTX, _SKB[field]), _be16(A)]
    if name in _FIELD:
        return [_ldx_w(A, CTX, _SKB[_FIELD[name]])]
    if name == "hatype":
        # dev->type: pyebpf's packets are on one device of the type given at conversion
        return [_mov32_imm(A, hatype)]
    if name == "alu_xor_x":
        return [_alu32(L.BPF_XOR, A, X, x=True)]
    # cpu, random, nlattr, nlattr_nest, pay_offset: a call with ctx, A and X
    return [_mov64(ARG1, CTX), _mov64(ARG2, A), _mov64(ARG3, X),
            Insn(L.BPF_JMP | L.BPF_CALL, 0, 0, 0, int(_CALL[name]))]


def _load(insn: SockFilter) -> list:
    size = L.BPF_SIZE(insn.code)
    if L.BPF_MODE(insn.code) == L.BPF_ABS:
        return [Insn(L.BPF_LD | L.BPF_ABS | size, 0, 0, 0, _s32(insn.k))]
    return [Insn(L.BPF_LD | L.BPF_IND | size, 0, X, 0, _s32(insn.k))]


def _jump(pc: int, insn: SockFilter) -> list:
    """Items for a conditional jump: Insn or (Insn, classic target)."""
    op, src = L.BPF_OP(insn.code), L.BPF_SRC(insn.code)
    out: list = []
    if src == L.BPF_K and insn.k & 0x80000000:
        # eBPF immediates are sign-extended: compare against the zero-extended k in TMP
        out.append(_mov32_imm(TMP, insn.k))
        base = dict(dst=A, src=TMP, imm=0)
        src = L.BPF_X
    else:
        base = dict(dst=A, src=X if src == L.BPF_X else 0, imm=_s32(insn.k) if src == L.BPF_K else 0)
    if insn.jf == 0:
        return out + [(Insn(L.BPF_JMP | op | src, off=0, **base), pc + 1 + insn.jt)]
    inverse = {L.BPF_JEQ: L.BPF_JNE, L.BPF_JGT: L.BPF_JLE, L.BPF_JGE: L.BPF_JLT}
    if insn.jt == 0 and op in inverse:
        return out + [(Insn(L.BPF_JMP | inverse[op] | src, off=0, **base), pc + 1 + insn.jf)]
    return out + [(Insn(L.BPF_JMP | op | src, off=0, **base), pc + 1 + insn.jt),
                  (Insn(L.BPF_JMP | L.BPF_JA, 0, 0, 0, 0), pc + 1 + insn.jf)]


def _one(pc: int, insn: SockFilter, hatype: int) -> list:
    code, k = insn.code, insn.k
    cls = L.BPF_CLASS(code)
    if cls == L.BPF_ALU:
        out = []
        if code in (L.BPF_ALU | L.BPF_DIV | L.BPF_X, L.BPF_ALU | L.BPF_MOD | L.BPF_X):
            # a classic division by X = 0 returns 0
            out = [Insn(L.BPF_ALU | L.BPF_MOV | L.BPF_X, X, X, 0, 0),
                   Insn(L.BPF_JMP | L.BPF_JNE | L.BPF_K, X, 0, 2, 0),
                   _alu32(L.BPF_XOR, A, A, x=True), _EXIT]
        return out + [Insn(code, A, X if code & L.BPF_X else 0, 0,
                           0 if code & L.BPF_X else _s32(k))]
    if code in (L.BPF_LD | s | m for s in (L.BPF_W, L.BPF_H, L.BPF_B)
                for m in (L.BPF_ABS, L.BPF_IND)):
        name = ancillary(insn)
        return _ancillary(name, hatype) if name else _load(insn)
    if code == L.BPF_LDX | L.BPF_B | L.BPF_MSH:
        # X = 4 * (pkt[k] & 0xf), A unchanged; a failed load ends the program with 0
        return [_mov64(X, A), Insn(L.BPF_LD | L.BPF_ABS | L.BPF_B, 0, 0, 0, _s32(k)),
                _alu32(L.BPF_AND, A, imm=0xF), _alu32(L.BPF_LSH, A, imm=2),
                _mov64(TMP, X), _mov64(X, A), _mov64(A, TMP)]
    if code == L.BPF_JMP | L.BPF_JA:
        return [(Insn(L.BPF_JMP | L.BPF_JA, 0, 0, 0, 0), pc + 1 + k)]
    if cls == L.BPF_JMP:
        return _jump(pc, insn)
    if code == L.BPF_RET | L.BPF_K:
        return [_mov32_imm(A, k), _EXIT]
    if code == L.BPF_RET | L.BPF_A:
        return [_EXIT]
    if code in (L.BPF_ST, L.BPF_STX):
        return [Insn(L.BPF_STX | L.BPF_MEM | L.BPF_W, FP, A if code == L.BPF_ST else X,
                     -(4 * k + 4), 0)]
    if code in (L.BPF_LD | L.BPF_MEM, L.BPF_LDX | L.BPF_MEM):
        return [_ldx_w(A if cls == L.BPF_LD else X, FP, -(4 * k + 4))]
    if code in (L.BPF_LD | L.BPF_IMM, L.BPF_LDX | L.BPF_IMM):
        return [_mov32_imm(A if cls == L.BPF_LD else X, k)]
    if code == L.BPF_MISC | L.BPF_TAX:
        return [_mov64(X, A)]
    if code == L.BPF_MISC | L.BPF_TXA:
        return [_mov64(A, X)]
    if code in (L.BPF_LD | L.BPF_W | L.BPF_LEN, L.BPF_LDX | L.BPF_W | L.BPF_LEN):
        return [_ldx_w(A if cls == L.BPF_LD else X, CTX, _SKB["len"])]
    raise ClassicError(f"opcode {code:#06x} cannot be converted", pc, str(insn))


def convert(insns: list[SockFilter], *, hatype: int = isa.ARPHRD_ETHER) -> list[Insn]:
    """The eBPF instructions for a classic program that :func:`~.checker.check` accepted.

    ``hatype`` is the device type ``SKF_AD_HATYPE`` reads (``dev->type``; ARPHRD_ETHER
    for the Ethernet frames pyebpf runs)."""
    prologue = [_alu32(L.BPF_XOR, A, A, x=True), _alu32(L.BPF_XOR, X, X, x=True),
                _mov64(CTX, ARG1)]
    pieces = [_one(pc, insn, hatype) for pc, insn in enumerate(insns)]
    addrs, at = [], len(prologue)
    for piece in pieces:
        addrs.append(at)
        at += len(piece)
    out = list(prologue)
    for piece in pieces:
        for item in piece:
            if isinstance(item, tuple):
                jump, target = item
                off = addrs[target] - len(out) - 1
                if jump.code == L.BPF_JMP | L.BPF_JA:
                    jump = Insn(jump.code, 0, 0, off, 0)
                else:
                    jump = Insn(jump.code, jump.dst, jump.src, off, jump.imm)
                out.append(jump)
            else:
                out.append(item)
    return out
