"""The verifier log in the kernel's format (``kernel/bpf/log.c``): each processed
instruction as ``N: (code) text``, register states at level 2, the path a refusal
was found on (level 1 keeps only that path, as the kernel rewinds its log when a
path ends safely), and the statistics line."""
from __future__ import annotations

from .. import isa
from . import tnum
from .state import NOT_INIT, PTR_TO_STACK, SCALAR, S64_MIN, S64_MAX, M64, type_str

_SIZE = {1: "u8", 2: "u16", 4: "u32", 8: "u64"}
_SSIZE = {1: "s8", 2: "s16", 4: "s32"}


def _off(v: int) -> str:
    return f"{v:+d}"


def insn_text(insns, pc: int) -> str:
    """An instruction as the kernel's print_bpf_insn writes it (``(61) r2 = *(u32
    *)(r6 +76)``); forms it spells differently fall back to pyebpf's disassembler."""
    insn = insns[pc]
    op = isa.lookup(insn)
    head = f"({insn.code:02x}) "
    f = op.form if op is not None else None
    r = "r" if op is not None and op.is_64 else "w"
    code_op = insn.code & 0xF0
    if f in (isa.F_ALU_K, isa.F_ALU_X):
        sym = isa.ALU_OP_SYMBOL[code_op]
        src = f"{r}{insn.src}" if f is isa.F_ALU_X else str(insn.imm)
        return f"{head}{r}{insn.dst} {sym} {src}"
    if f is isa.F_NEG:
        return f"{head}{r}{insn.dst} = -{r}{insn.dst}"
    if f is isa.F_END:
        kind = op.name.rstrip("0123456789").lower()
        return f"{head}r{insn.dst} = {kind}{insn.imm} r{insn.dst}"
    if f is isa.F_LDX:
        t = _SSIZE[op.size] if op.name.startswith("LDXS") else _SIZE[op.size]
        return f"{head}r{insn.dst} = *({t} *)(r{insn.src} {_off(insn.off)})"
    if f is isa.F_STX:
        return f"{head}*({_SIZE[op.size]} *)(r{insn.dst} {_off(insn.off)}) = r{insn.src}"
    if f is isa.F_ST:
        return f"{head}*({_SIZE[op.size]} *)(r{insn.dst} {_off(insn.off)}) = {insn.imm}"
    if f is isa.F_LDDW and op.disc_value == 0:
        v = ((insns[pc + 1].imm & 0xFFFFFFFF) << 32) | (insn.imm & 0xFFFFFFFF)
        return f"{head}r{insn.dst} = {v:#x}"
    if f is isa.F_LD_ABS:
        return f"{head}r0 = *({_SIZE[op.size]} *)skb[{insn.imm}]"
    if f is isa.F_LD_IND:
        return f"{head}r0 = *({_SIZE[op.size]} *)skb[r{insn.src} + {insn.imm}]"
    if f in (isa.F_JCC_K, isa.F_JCC_X):
        sym = isa.JMP_OP_SYMBOL[code_op]
        src = f"{r}{insn.src}" if f is isa.F_JCC_X else f"{insn.imm & 0xFFFFFFFF:#x}"
        return f"{head}if {r}{insn.dst} {sym} {src} goto pc{_off(insn.off)}"
    if f is isa.F_JA:
        return f"{head}goto pc{_off(insn.off)}"
    if f is isa.F_JA32:
        return f"{head}gotol pc{_off(insn.imm)}"
    if f is isa.F_MAY_GOTO:
        return f"{head}may_goto pc{_off(insn.off)}"
    if f is isa.F_EXIT:
        return f"{head}exit"
    if f is isa.F_CALL and not op.disc_value:
        name = isa.HELPER_NAMES[insn.imm] if 0 <= insn.imm <= isa.MAX_HELPER_ID else "unknown"
        return f"{head}call bpf_{name}#{insn.imm}" if name != "unknown" else \
            f"{head}call unknown#{insn.imm}"
    if f is isa.F_CALL_LOCAL:
        return f"{head}call pc{_off(insn.imm)}"
    from ..asm import disassemble_one
    slots = insns[pc:pc + 2] if f is isa.F_LDDW else insns[pc:pc + 1]
    return head + disassemble_one(slots)


def reg_text(r) -> str:
    """One register as print_verifier_state shows it (``scalar(umax=255)``, ``fp-8``)."""
    if r.type == SCALAR:
        if r.is_const:
            v = r.value
            return str(v - (1 << 64) if v >> 63 else v)
        parts = []
        if r.id:
            parts.append(f"id={r.id}")
        if r.smin != S64_MIN:
            parts.append(f"smin={r.smin}")
        if r.smax != S64_MAX:
            parts.append(f"smax={r.smax}")
        if r.umin:
            parts.append(f"umin={r.umin}")
        if r.umax != M64:
            parts.append(f"umax={r.umax}")
        if r.var != tnum.UNKNOWN and r.var != (0, r.umax):
            parts.append(f"var_off={tnum.text(r.var)}")
        return f"scalar({','.join(parts)})"
    if r.type == PTR_TO_STACK:
        off = r.off + (r.value - (1 << 64) if r.value >> 63 else r.value)
        return f"fp{off}" if r.is_const else f"fp(off={r.off},var_off={tnum.text(r.var)})"
    parts = []
    if r.id:
        parts.append(f"id={r.id}")
    if r.ref:
        parts.append(f"ref_obj_id={r.ref}")
    if r.off:
        parts.append(f"off={r.off}")
    if r.range:
        parts.append(f"r={r.range}")
    if r.map is not None:
        parts.append(f"ks={r.map.key_size},vs={r.map.value_size}")
    if not r.is_const:
        parts.append(f"var_off={tnum.text(r.var)}")
    return f"{type_str(r.type)}({','.join(parts)})"


def state_text(st) -> str:
    out = []
    for r, reg in enumerate(st.cur.regs):
        if reg.type != NOT_INIT:
            out.append(f"R{r}={reg_text(reg)}")
    for spi in sorted(st.cur.stack):
        s = st.cur.stack[spi]
        off = -(spi + 1) * 8
        if s.spill is not None:
            out.append(f"fp{off}={reg_text(s.spill)}")
        elif any(s.kinds):
            out.append(f"fp{off}=" + "".join("?rmz"[k] for k in reversed(s.kinds)))
    return " ".join(out)


class Log:
    """Lines of the verifier log at ``level`` 0 (none), 1 or 2."""

    def __init__(self, level: int = 0):
        self.level = level
        self.lines: list[str] = []

    def mark(self) -> int:
        return len(self.lines)

    def insn(self, pc: int, insns, ops, st) -> None:
        if not self.level:
            return
        line = f"{pc}: {insn_text(insns, pc)}"
        if self.level >= 2:
            line += f"\t; {state_text(st)}"
        self.lines.append(line)

    def pop(self, mark: int, prev: int, pc: int, st) -> None:
        if self.level == 1:
            del self.lines[mark:]
        elif self.level >= 2:
            self.lines.append(f"from {prev} to {pc}: {state_text(st)}")

    def pruned(self, prev: int, pc: int) -> None:
        if self.level >= 2:
            self.lines.append(f"from {prev} to {pc}: safe" if prev >= 0 else f"{pc}: safe")

    def add(self, line: str) -> None:
        if self.level:
            self.lines.append(line)

    def text(self) -> str:
        return "".join(line + "\n" for line in self.lines)
