"""The verifier log in the kernel's format (``kernel/bpf/log.c``): each processed
instruction as ``N: (code) text``, register states at level 2, the path a refusal
was found on (level 1 keeps only that path, as the kernel rewinds its log when a
path ends safely), and the statistics line."""
from __future__ import annotations

import re

from .. import isa
from . import tnum
from .state import NOT_INIT, PTR_TO_STACK, SCALAR, S64_MIN, S64_MAX, M64, type_str

_JUMP = re.compile(r"goto ([+-]?)0x([0-9a-f]+) <\d+>$")
_CALL = re.compile(r"^call 0x([0-9a-f]+)$")


def insn_text(insns, pc: int) -> str:
    """An instruction as the kernel's print_bpf_insn writes it."""
    from ..asm import disassemble_one
    op = isa.lookup(insns[pc])
    slots = insns[pc:pc + 2] if op is not None and op.form is isa.F_LDDW else insns[pc:pc + 1]
    text = disassemble_one(slots, pc=pc)
    m = _JUMP.search(text)
    if m:
        off = int(m.group(2), 16)
        text = text[:m.start()] + f"goto pc{'-' if m.group(1) == '-' else '+'}{off}"
    m = _CALL.match(text)
    if m:
        hid = int(m.group(1), 16)
        name = isa.HELPER_NAMES[hid] if 0 <= hid <= isa.MAX_HELPER_ID else "unknown"
        text = f"call bpf_{name}#{hid}"
    if text.endswith(" ll"):
        text = text[:-3]
    return f"({insns[pc].code:02x}) {text}"


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
