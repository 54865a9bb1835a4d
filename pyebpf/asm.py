"""Assembler and disassembler for eBPF, in two syntaxes.

``"conformance"`` is the bpf_conformance / uBPF syntax (``ldxw %r0, [%r1+8]``), as the
suite's ``.data`` files write it (``pyebpf.conformance`` reads those files).  ``"kernel"`` is the pseudo-C of ``llvm-objdump -d``
and of the kernel verifier log (``r0 = *(u32 *)(r1 + 0x8)``).  Each :class:`isa.Op` gets one
spelling per syntax (``_kernel_templates``, ``_conformance_templates``), built from the
op's form, mnemonic and the symbol tables of :mod:`pyebpf.isa`; there is no opcode table
here.  A spelling is printed by filling it in and parsed by a regex compiled from the same
text, so the disassembler never prints what the assembler cannot read.  Further
spellings of an op are accepted aliases (``add64``, ``swap16``, ``call %r2``, ``goto pc+1``).

Kernel syntax input may carry what the tools print around an instruction:

* llvm-objdump lines ``12:  61 10 08 00 00 00 00 00  r0 = ...``: the address and bytes are
  skipped, with two exceptions.  llvm prints helper, local and kfunc calls alike
  (``call 0x18``) and every lddw alike (``r1 = 0x0 ll``), so for ``call`` and lddw the
  ``src`` field is taken from the bytes; and ``<unknown>`` assembles to the bytes as they
  are.  Symbol lines ``0000000000000150 <sub>:`` define the label ``sub``.
* verifier log lines ``12: (61) r0 = ...``; there lddw has no ``ll`` suffix.
* a trailing ``<LBB0_2>`` (llvm's symbolized target) and comments after ``;``, ``//`` or a
  ``#`` that starts a word (``call bpf_tail_call#12`` names helper 12).

Spellings that neither tool defines:

===================  ==============================  ================================
instruction          kernel                          conformance
===================  ==============================  ================================
lddw, src=1..6       ``r1 = map_fd(0x5) ll``         ``lddw %r1, map_fd(0x5)``
local call (src=1)   ``call pc+0x5`` or ``call f``   ``call local +5`` or ``... f``
kfunc call (src=2)   ``call kfunc 0x1234``           ``call kfunc 4660``
any 8-byte word      ``.insn 0x0000000000000095``    ``.insn 0x0000000000000095``
===================  ==============================  ================================

The lddw tag is the isa op name without ``LDDW_``: ``map_fd``, ``map_value``, ``btf_id``,
``func``, ``map_idx``, ``map_idx_value``; its argument is the whole 64-bit immediate
(for ``map_value``, the value offset in the high half).  The conformance assembler also
reads upstream's ``call runtime N`` for a kfunc call and ``call %rN`` for callx.
``.insn`` takes the slot as a little-endian 64-bit number (opcode in the low byte), as in
a conformance ``-- raw`` section.  The disassembler prints it for every slot that is not
a valid instruction with in-range registers and zero unused fields, so bytes -> text ->
bytes is the identity for any input.  In kernel syntax ``call NAME`` is a helper call
when NAME is a helper (``tail_call`` or ``bpf_tail_call``), else a local call to label
NAME.  The conformance assembler defines the label ``exit`` at the first ``exit`` unless
the program defines it.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from . import isa
from .errors import AsmError

__all__ = ["assemble", "disassemble", "disassemble_one"]

_SYNTAXES = ("kernel", "conformance")
_F = isa.Field

_HEXDEC = r"(?:0[xX][0-9a-fA-F]+|\d+)"
_NUM = rf"[-+]?{_HEXDEC}"
_LABEL = r"[A-Za-z_.$][\w.$]*"
_S16 = (-(1 << 15), (1 << 15) - 1)
_S32 = (-(1 << 31), (1 << 31) - 1)
_IMM32 = (-(1 << 31), (1 << 32) - 1)
_IMM64 = (-(1 << 63), (1 << 64) - 1)


# --- spellings --------------------------------------------------------------------------
# A template is text with placeholders {kind} or {kind:prefixes}.  Kinds: dst, src (a
# register; prefixes like "w|r" are accepted, the first is printed), R0 (the fixed r0 of
# cmpxchg), imm, imm64, helper, off (memory offset), simm (ld_ind's signed imm), target
# (jump) and ltarget (local call).

def _jump_field(op: isa.Op) -> str:
    return "off" if op.form.off is _F.JUMP else "imm"


def _pseudo_tag(op: isa.Op) -> str:
    """``map_fd`` for LDDW_MAP_FD and so on; empty for the plain lddw."""
    return op.name[len("LDDW_"):].lower() if op.form is isa.F_LDDW and op.disc_value else ""


def _kernel_templates(op: isa.Op) -> list[str]:
    f, bits = op.form, op.size * 8
    w = "w" if op.cls in (isa.BPF_ALU, isa.BPF_JMP32) else "r"
    if f in (isa.F_ALU_K, isa.F_ALU_X, isa.F_ALU_XOFF_K, isa.F_ALU_XOFF_X):
        sym = ("s" if f.off is _F.FIXED else "") + isa.ALU_OP_SYMBOL[isa.BPF_OP(op.code)]
        rhs = "{imm}" if f.imm is _F.S32 else f"{{src:{w}}}"
        return [f"{{dst:{w}}} {sym} {rhs}"]
    if f is isa.F_ALU_SX:
        return [f"{{dst:{w}}} = (s{op.disc_value}){{src:{w}}}"]
    if f is isa.F_ADDR_SPACE_CAST:
        return ["{dst:r} = addr_space_cast({src:r}, {spaces})"]
    if f is isa.F_NEG:
        return [f"{{dst:{w}}} = -{{dst:{w}}}"]
    if f is isa.F_END:
        return [f"{{dst:r}} = {op.mnemonic} {{dst:r}}"]
    if f is isa.F_LDDW:
        tag = _pseudo_tag(op)
        return [f"{{dst:r}} = {tag}({{imm64}}) ll" if tag else "{dst:r} = {imm64} ll"]
    mem = "{dst:r} {off}"
    if f is isa.F_LDX:
        sign = "s" if isa.BPF_MODE(op.code) == isa.BPF_MEMSX else "u"
        return [f"{{dst:r|w}} = *({sign}{bits} *)({{src:r}} {{off}})"]
    if f is isa.F_ST:
        return [f"*(u{bits} *)({mem}) = {{imm}}"]
    if f is isa.F_STX:
        return [f"*(u{bits} *)({mem}) = {{src:r|w}}"]
    if f is isa.F_ATOMIC:
        # llvm spells the 32-bit ones with w registers, the kernel with r.
        x, imm = ("w|r" if bits == 32 else "r"), op.disc_value
        word = isa.ATOMIC_OP_WORDS[imm].split()[-1]
        wide = "64" if bits == 64 else ""
        llvm_name = f"{word}{'' if wide else '32'}_{bits}"
        kernel_name = f"atomic{wide}_{word}"
        typed = f"((u{bits} *)({mem})"
        if imm == isa.BPF_CMPXCHG:
            return [f"{{R0:{x}}} = {llvm_name}({mem}, {{R0:{x}}}, {{src:{x}}})",
                    f"{{R0:{x}}} = {kernel_name}{typed}, {{R0:{x}}}, {{src:{x}}})"]
        if imm == isa.BPF_XCHG:
            return [f"{{src:{x}}} = {llvm_name}({mem}, {{src:{x}}})",
                    f"{{src:{x}}} = {kernel_name}{typed}, {{src:{x}}})"]
        if imm & isa.BPF_FETCH:
            names = dict.fromkeys((f"atomic_fetch_{word}", f"atomic{wide}_fetch_{word}"))
            return [f"{{src:{x}}} = {n}{typed}, {{src:{x}}})" for n in names]
        return [f"lock *(u{bits} *)({mem}) {isa.ALU_OP_SYMBOL[imm]} {{src:{x}}}"]
    if f is isa.F_LD_ABS:
        return [f"r0 = *(u{bits} *)skb[{{imm}}]"]
    if f is isa.F_LD_IND:  # the kernel prints the imm, llvm does not
        return [f"r0 = *(u{bits} *)skb[{{src:r}} {{simm}}]", f"r0 = *(u{bits} *)skb[{{src:r}}]"]
    if f in (isa.F_JCC_K, isa.F_JCC_X):
        rhs = "{imm}" if f.imm is _F.S32 else f"{{src:{w}}}"
        return [f"if {{dst:{w}}} {isa.JMP_OP_SYMBOL[isa.BPF_OP(op.code)]} {rhs} goto {{target}}"]
    return {isa.F_JA: ["goto {target}"], isa.F_JA32: ["gotol {target}"],
            isa.F_MAY_GOTO: ["may_goto {target}"],
            isa.F_CALL: ["call {helper}" if op.disc_value == 0 else f"{op.mnemonic} {{imm}}"],
            isa.F_CALL_LOCAL: ["call {ltarget}"], isa.F_CALLX: ["callx {dst:r}"],
            isa.F_EXIT: ["exit"]}[f]


_CONFORMANCE_OPERANDS = {
    isa.F_ALU_K: ["{dst}", "{imm}"], isa.F_ALU_XOFF_K: ["{dst}", "{imm}"],
    isa.F_ALU_X: ["{dst}", "{src}"], isa.F_ALU_XOFF_X: ["{dst}", "{src}"],
    isa.F_ALU_SX: ["{dst}", "{src}"], isa.F_ADDR_SPACE_CAST: ["{dst}", "{src}", "{imm}"],
    isa.F_NEG: ["{dst}"], isa.F_END: ["{dst}"],
    isa.F_LDDW: ["{dst}", "{imm64}"], isa.F_LDX: ["{dst}", "[{src}{off}]"],
    isa.F_ST: ["[{dst}{off}]", "{imm}"], isa.F_STX: ["[{dst}{off}]", "{src}"],
    isa.F_ATOMIC: ["[{dst}{off}]", "{src}"], isa.F_LD_ABS: ["{imm}"],
    isa.F_LD_IND: ["{src}", "{imm}"], isa.F_JA: ["{target}"], isa.F_JA32: ["{target}"],
    isa.F_JCC_K: ["{dst}", "{imm}", "{target}"], isa.F_JCC_X: ["{dst}", "{src}", "{target}"],
    isa.F_CALL: ["{imm}"], isa.F_CALL_LOCAL: ["{target}"], isa.F_CALLX: ["{dst}"],
    isa.F_EXIT: [], isa.F_MAY_GOTO: ["{target}"],
}
# Spellings the upstream conformance assembler reads besides the isa mnemonic.
_CONFORMANCE_ALIASES = {"call": ["call helper"], "call kfunc": ["call runtime"],
                        "callx": ["call", "call helper"]}


def _conformance_templates(op: isa.Op) -> list[str]:
    m, f = op.mnemonic, op.form
    names = [m, *_CONFORMANCE_ALIASES.get(m, [])]
    if f is isa.F_END and op.cls == isa.BPF_ALU64:
        names.append(m[1:])  # swap16
    elif op.cls == isa.BPF_ALU64 and f not in (isa.F_ALU_SX, isa.F_END, isa.F_ADDR_SPACE_CAST):
        names.append(m + "64")  # add64 = add
    operands = list(_CONFORMANCE_OPERANDS[f])
    if _pseudo_tag(op):
        operands[1] = f"{_pseudo_tag(op)}({{imm64}})"
    return [" ".join([n, ", ".join(operands)]).strip() for n in names]


# --- template compiler ------------------------------------------------------------------
_PLACEHOLDER = re.compile(r"\{(\w+)(?::([^}]*))?\}")
_HELPER_NAMES = "|".join(sorted(isa.HELPER_NAMES, key=len, reverse=True))


def _placeholder_regex(kind: str, spec: str, syntax: str, seen: set[str]) -> str:
    if kind in ("dst", "src"):
        if kind in seen:  # the same register again (neg, be16, xchg)
            return f"(?P={kind})"
        seen.add(kind)
        prefixes = "%r" if syntax == "conformance" else spec
        return rf"(?P<{kind}>(?:{prefixes})\d+)"
    conformance = syntax == "conformance"
    return {
        "R0": rf"(?:{spec})0",
        "imm": rf"(?P<imm>{_NUM})",
        "imm64": rf"(?P<imm64>{_NUM})",
        "helper": rf"(?:(?:[\w-]+#)?(?P<imm>{_NUM})|(?:bpf_)?(?P<helper>{_HELPER_NAMES}))",
        "off": (rf"(?:\s*(?P<off>[-+]\s*{_HEXDEC}))?" if conformance
                else rf"(?P<off>[-+]\s*{_NUM})"),
        "simm": rf"(?P<simm>[-+]\s*{_NUM})",
        # addr_space_cast's two address spaces, destination first (llvm's spelling)
        "spaces": rf"(?P<to_as>{_HEXDEC})\s*,\s*(?P<from_as>{_HEXDEC})",
        "target": (rf"(?:{'' if conformance else '(?:pc)?'}(?P<target>[-+]{_HEXDEC})"
                   rf"|(?P<label>{_LABEL}))"),
        "ltarget": rf"(?:pc(?P<target>[-+]{_HEXDEC})|(?P<label>{_LABEL}))",
    }[kind]


def _literal_regex(text: str, before: str, after: str, syntax: str) -> str:
    """Regex for the literal text between placeholders; spacing is free where it may be."""
    out = []
    for i, c in enumerate(text):
        prev = text[i - 1] if i else before
        nxt = text[i + 1] if i + 1 < len(text) else after
        if c == " " and prev == ",":
            continue
        if c == ",":
            # conformance operands are separated by commas and/or spaces
            out.append(r"(?:\s*,\s*|\s+)" if syntax == "conformance" else r"\s*,\s*")
        elif c == " ":
            out.append(r"\s+" if (prev.isalnum() and (nxt.isalnum() or nxt == "{"))
                       else r"\s*")
        else:
            out.append(re.escape(c))
    return "".join(out)


@functools.lru_cache(maxsize=None)
def _compile(template: str, syntax: str) -> re.Pattern:
    parts, seen, pos = [], set(), 0
    for m in _PLACEHOLDER.finditer(template):
        before = template[pos - 1] if pos else ""
        parts.append(_literal_regex(template[pos:m.start()], before, "{", syntax))
        parts.append(_placeholder_regex(m.group(1), m.group(2) or "", syntax, seen))
        pos = m.end()
    parts.append(_literal_regex(template[pos:], "}" if pos else "", "", syntax))
    if syntax == "conformance":
        parts.append(r"(?:\s*,)?")  # upstream drops a trailing comma
    return re.compile("".join(parts))


@functools.lru_cache(maxsize=None)
def _literal_chars(template: str) -> frozenset[str]:
    """The characters a line must hold to match the template: its literal text's (each
    matched as itself), but spaces and commas, whose matching is free."""
    return frozenset(_PLACEHOLDER.sub("", template)) - {" ", ","}


@dataclass(frozen=True)
class _Spelling:
    op: isa.Op
    template: str
    syntax: str

    @property
    def regex(self) -> re.Pattern:
        # compiled when first tried: compiling all ~800 at import was most of the time
        # `import pyebpf` took (tcsim's start-up included)
        return _compile(self.template, self.syntax)

    def may_match(self, chars: set[str]) -> bool:
        """Whether a line of the characters ``chars`` can match at all: only those are
        compiled and tried (compiling the ~180 spellings tried before ``r0 = 0`` and
        ``exit`` was most of a small program's assembly, 0.1 s of tcsim's start-up)."""
        return _literal_chars(self.template) <= chars


def _mnemonic(template: str) -> str:
    """The words a template starts with: ``lock fetch add``, ``call local``, ``if``."""
    m = re.match(r"[a-z][\w.]*(?: [a-z][\w.]*)*", template)
    return m.group() if m else ""


_TEMPLATE_FUNCS = {"kernel": _kernel_templates, "conformance": _conformance_templates}
_SPELLINGS = {s: [_Spelling(op, t, s) for op in isa.OPS
                  for t in _TEMPLATE_FUNCS[s](op)] for s in _SYNTAXES}
# The disassembler prints an op's first spelling (reversed: the first one is stored last).
_CANONICAL = {s: {sp.op.id: sp.template for sp in reversed(_SPELLINGS[s])} for s in _SYNTAXES}
# conformance mnemonic -> the operand templates of each spelling that starts with it
_CONFORMANCE_FORMS: dict[str, list[list[str]]] = {}
for _sp in _SPELLINGS["conformance"]:
    _m = _mnemonic(_sp.template)
    _rest = _sp.template[len(_m):].strip()
    _CONFORMANCE_FORMS.setdefault(_m, []).append(_rest.split(", ") if _rest else [])
del _sp, _m, _rest


def _words_pattern(phrases) -> str:
    alts = sorted({re.escape(p).replace(r"\ ", r"\s+") for p in phrases}, key=len, reverse=True)
    return rf"(?:{'|'.join(alts)})(?![\w.:])"


@functools.cache
def _conformance_mnemonic() -> re.Pattern:
    # compiled when a conformance line is first diagnosed, not at import (~1 ms of start-up)
    return re.compile(_words_pattern(_CONFORMANCE_FORMS))


# Text is conformance syntax when it names a %r register or opens a line with a mnemonic
# the kernel syntax does not also use (exit, call N and callx read the same in both).
_CONFORMANCE_ONLY = re.compile(
    rf"%r\d|^\s*(?:{_LABEL}:\s*)?"
    + _words_pattern(set(_CONFORMANCE_FORMS)
                     - {_mnemonic(sp.template) for sp in _SPELLINGS["kernel"]}),
    re.M)


# --- assembler --------------------------------------------------------------------------
_COMMENT = {"conformance": re.compile(r"#"), "kernel": re.compile(r";|//|(?:^|(?<=\s))#")}
_LABEL_DEF = {"conformance": re.compile(rf"\s*(?P<name>{_LABEL})\s*:"),
              # llvm-objdump's symbol lines: 0000000000000150 <sub>:
              "kernel": re.compile(rf"\s*(?:[0-9a-f]+\s+)?(<)?(?P<name>{_LABEL})(?(1)>)\s*:")}
_OBJDUMP = re.compile(r"\s*\d+:\s+(?P<hex>[0-9a-f]{2}(?: [0-9a-f]{2}){7}"
                      r"(?:(?: [0-9a-f]{2}){8})?)\s+")
_VERIFIER = re.compile(r"\s*\d+:\s*\((?P<code>[0-9a-f]{2})\)\s*")
_SYMBOLIZED = re.compile(r"\s+<[^<>]*>\s*$")
_RAW = re.compile(rf"\.insn\s+(?P<raw>{_NUM})")
_OPERAND = re.compile(r"\[[^\]]*\]?|[^\s,]+")
_WORDS = re.compile(r"[A-Za-z_.][\w.]*(?:\s+[A-Za-z_][\w.]*)*")


@dataclass
class _Stmt:
    """One source instruction, its jump label (if any) still to resolve."""
    line: int
    op: isa.Op | None                  # None: raw words
    fields: dict = field(default_factory=dict)
    raw: list[int] = field(default_factory=list)
    label: tuple[str, int] | None = None   # (name, column)

    @property
    def slots(self) -> int:
        return self.op.slots if self.op else len(self.raw)


def _int(text: str) -> int:
    sign = -1 if text[0] == "-" else 1
    body = text.lstrip("+-")
    return sign * int(body, 16 if body[:2].lower() == "0x" else 10)


def _signed_after(text: str) -> int:
    """``- 0x8``, ``+8``, ``+ -16``: an operator sign, then a possibly signed number."""
    return (-1 if text[0] == "-" else 1) * _int(text[1:].strip())


def _check(value: int, bounds: tuple[int, int], what: str, line: int, col: int, tok: str):
    lo, hi = bounds
    if not lo <= value <= hi:
        raise AsmError(f"{what} {tok!r} out of range ({lo}..{hi})", line, col, tok)
    return value


def _convert(op: isa.Op, m: re.Match, line: int) -> _Stmt:
    stmt = _Stmt(line, op)
    for name, tok in m.groupdict().items():
        if tok is None:
            continue
        col = m.start(name) + 1
        if name in ("dst", "src"):
            reg = int(tok.lstrip("%rw"))
            if reg >= isa.MAX_BPF_REG:
                raise AsmError(f"bad register {tok!r} (r0..r10)", line, col, tok)
            stmt.fields[name] = reg
        elif name == "imm":
            stmt.fields["imm"] = _check(_int(tok), _IMM32, "immediate", line, col, tok)
        elif name == "simm":
            stmt.fields["imm"] = _check(_signed_after(tok), _S32, "immediate", line, col, tok)
        elif name == "imm64":
            stmt.fields["imm"] = _check(_int(tok), _IMM64, "immediate", line, col, tok)
        elif name == "helper":
            stmt.fields["imm"] = isa.HELPER_IDS[tok]
        elif name in ("to_as", "from_as"):
            space = _check(_int(tok), (0, 0xFFFF), "address space", line, col, tok)
            stmt.fields["imm"] = stmt.fields.get("imm", 0) | \
                (space << 16 if name == "to_as" else space)
        elif name == "off":
            stmt.fields["off"] = _check(_signed_after(tok), _S16, "offset", line, col, tok)
        elif name == "target":
            bounds = _S16 if _jump_field(op) == "off" else _S32
            stmt.fields[_jump_field(op)] = _check(_int(tok), bounds, "jump offset", line,
                                                  col, tok)
        else:
            stmt.label = (tok, col)
    if stmt.fields.get("imm", 0) >= 1 << 31 and op.form.imm is not _F.IMM64:
        stmt.fields["imm"] -= 1 << 32  # 0x80000000..0xffffffff: a raw 32-bit pattern
    return stmt


def _diagnose_conformance(text: str, pos: int, end: int, line: int) -> AsmError:
    """Say why a conformance line matched no spelling: mnemonic, count, or which operand."""
    mn = _conformance_mnemonic().match(text, pos, end)
    if mn is None:
        tok = _WORDS.match(text, pos, end) or re.compile(r"\S+").match(text, pos, end)
        return AsmError(f"unknown mnemonic {tok.group()!r}", line, pos + 1, tok.group())
    name = " ".join(mn.group().split())
    operands = list(_OPERAND.finditer(text, mn.end(), end))
    forms = [f for f in _CONFORMANCE_FORMS[name] if len(f) == len(operands)]
    if not forms:
        counts = " or ".join(sorted({str(len(f)) for f in _CONFORMANCE_FORMS[name]}))
        return AsmError(f"wrong operand count: {name!r} takes {counts} operand(s), "
                        f"got {len(operands)}",
                        line, pos + 1, text[pos:end])
    # Blame the operand where the spelling that fits longest stops fitting.
    def fits(form):
        return next((i for i, (tmpl, o) in enumerate(zip(form, operands))
                     if not _compile(tmpl, "conformance").fullmatch(o.group())), len(form))
    bad = max(fits(f) for f in forms)
    if bad == len(operands):
        return AsmError(f"cannot parse {name!r} operands", line, pos + 1, text[pos:end])
    o = operands[bad]
    return AsmError(f"invalid operand {o.group()!r} for {name!r}", line, o.start() + 1,
                    o.group())


def _parse_line(text: str, line: int, syntax: str) -> tuple[list[tuple[str, int]], _Stmt | None]:
    """Labels defined on one source line, and its instruction."""
    comment = _COMMENT[syntax].search(text)
    end = len(text[:comment.start()].rstrip()) if comment else len(text.rstrip())
    pos, hexbytes, code = 0, None, None
    if syntax == "kernel":
        if m := _OBJDUMP.match(text, 0, end) or _VERIFIER.match(text, 0, end):
            pos, hexbytes, code = m.end(), m.groupdict().get("hex"), m.groupdict().get("code")
        if text[pos:end] == "<unknown>" and hexbytes:
            raw = bytes.fromhex(hexbytes)
            words = [int.from_bytes(raw[i:i + 8], "little") for i in range(0, len(raw), 8)]
            return [], _Stmt(line, None, raw=words)
        if m := _SYMBOLIZED.search(text, pos, end):
            end = m.start()
        if code and int(code, 16) == isa.LDDW_CODE and not text[pos:end].endswith("ll"):
            text, end = text[:end] + " ll", end + 3  # the verifier prints lddw bare
    labels = []
    while m := _LABEL_DEF[syntax].match(text, pos, end):
        labels.append((m.group("name"), m.start("name") + 1))
        pos = m.end()
    pos = len(text[:end]) - len(text[pos:end].lstrip())
    if pos == end:
        return labels, None
    if m := _RAW.fullmatch(text, pos, end):
        word = _check(_int(m["raw"]), (0, (1 << 64) - 1), "raw word", line,
                      m.start("raw") + 1, m["raw"])
        return labels, _Stmt(line, None, raw=[word])
    chars = set(text[pos:end])
    for sp in _SPELLINGS[syntax]:
        if sp.may_match(chars) and (m := sp.regex.fullmatch(text, pos, end)):
            stmt = _convert(sp.op, m, line)
            if hexbytes and sp.op.disc == "src":
                bytes_op = isa.lookup(isa.Insn.unpack(bytes.fromhex(hexbytes)))
                if bytes_op is not None and bytes_op.code == sp.op.code:
                    stmt.op = bytes_op
            return labels, stmt
    if syntax == "conformance":
        raise _diagnose_conformance(text, pos, end, line)
    raise AsmError(f"unrecognised instruction {text[pos:end]!r}", line, pos + 1, text[pos:end])


def _check_syntax(syntax: str) -> None:
    if syntax not in _SYNTAXES:
        raise ValueError(f"unknown syntax {syntax!r}; expected one of {_SYNTAXES}")


def _detect(text: str) -> str:
    plain = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    return "conformance" if _CONFORMANCE_ONLY.search(plain) else "kernel"


def assemble(text: str, syntax: str = "auto") -> bytes:
    """Assemble a program; ``syntax`` is "conformance", "kernel" or "auto"."""
    if syntax == "auto":
        syntax = _detect(text)
    _check_syntax(syntax)
    stmts: list[tuple[int, _Stmt]] = []
    labels: dict[str, int] = {}
    slot = 0
    for lineno, text_line in enumerate(text.splitlines(), 1):
        defined, stmt = _parse_line(text_line, lineno, syntax)
        for name, col in defined:
            if name in labels:
                raise AsmError(f"duplicate label {name!r}", lineno, col, name)
            labels[name] = slot
        if stmt:
            stmts.append((slot, stmt))
            slot += stmt.slots
    if syntax == "conformance" and "exit" not in labels:
        first_exit = next((s for s, st in stmts if st.op is isa.OPS_BY_NAME["EXIT"]), None)
        if first_exit is not None:
            labels["exit"] = first_exit
    out = bytearray()
    for slot, stmt in stmts:
        if stmt.op is None:
            out += b"".join(w.to_bytes(8, "little") for w in stmt.raw)
            continue
        if stmt.label:
            name, col = stmt.label
            if name not in labels:
                raise AsmError(f"unknown label {name!r}", stmt.line, col, name)
            bounds = _S16 if _jump_field(stmt.op) == "off" else _S32
            stmt.fields[_jump_field(stmt.op)] = _check(
                labels[name] - slot - 1, bounds, "jump to", stmt.line, col, name)
        out += b"".join(i.pack() for i in isa.encode(stmt.op, **stmt.fields))
    return bytes(out)


# --- disassembler -----------------------------------------------------------------------
def _decode(slots: list[isa.Insn], i: int) -> tuple[isa.Op, dict] | None:
    """The op at slot i and its operand fields, or None unless it re-encodes exactly."""
    op = isa.lookup(slots[i])
    if op is None or i + op.slots > len(slots):
        return None
    insn, f = slots[i], op.form
    fields = {"dst": insn.dst if f.dst else 0, "src": insn.src if f.src else 0,
              "off": insn.off if f.off in (_F.MEM, _F.JUMP) else 0, "imm": 0}
    if f.imm in (_F.S32, _F.JUMP, _F.HELPER):
        fields["imm"] = insn.imm
    elif f.imm is _F.IMM64:
        fields["imm"] = (slots[i + 1].imm & 0xFFFFFFFF) << 32 | insn.imm & 0xFFFFFFFF
    if max(fields["dst"], fields["src"]) >= isa.MAX_BPF_REG:
        return None
    if isa.encode(op, **fields) != slots[i:i + op.slots]:
        return None
    return op, fields


def _render(op: isa.Op, fields: dict, syntax: str) -> str:
    kernel = syntax == "kernel"
    jump = fields[_jump_field(op)]

    def fill(m: re.Match) -> str:
        kind, spec = m.group(1), (m.group(2) or "%r").split("|")[0]
        if kind in ("dst", "src"):
            return spec + str(fields[kind])
        if kind == "R0":
            return spec + "0"
        if kind == "imm64":
            value = fields["imm"]
            return f"{value - (value >> 63 << 64):#x}" if kernel else f"{value:#x}"
        if kind in ("off", "simm"):
            value = fields["off" if kind == "off" else "imm"]
            if not kernel:
                return f"{value:+d}"
            return f"{'-' if value < 0 else '+'} {abs(value):#x}"
        if kind == "target":
            return f"{jump:+#x}" if kernel else f"{jump:+d}"
        if kind == "ltarget":
            return f"pc{jump:+#x}"
        if kind == "spaces":
            return f"{fields['imm'] >> 16 & 0xFFFF:#x}, {fields['imm'] & 0xFFFF:#x}"
        return f"{fields['imm']:#x}" if kernel else str(fields["imm"])  # imm, helper

    return _PLACEHOLDER.sub(fill, _CANONICAL[syntax][op.id])


def _text_at(slots: list[isa.Insn], i: int, syntax: str) -> tuple[str, int, int | None]:
    """Text of the instruction at slot i, its slot count, and its jump offset if any."""
    decoded = _decode(slots, i)
    if decoded is None:
        return f".insn 0x{int.from_bytes(slots[i].pack(), 'little'):016x}", 1, None
    op, fields = decoded
    jumps = _F.JUMP in (op.form.off, op.form.imm)
    return _render(op, fields, syntax), op.slots, fields[_jump_field(op)] if jumps else None


def disassemble(code: bytes, syntax: str = "kernel") -> str:
    """One line per instruction (an lddw is one line); slots that are not a valid
    instruction print as ``.insn``, so ``assemble(disassemble(code)) == code``."""
    _check_syntax(syntax)
    slots, lines, i = isa.unpack_program(bytes(code)), [], 0
    while i < len(slots):
        text, n, _ = _text_at(slots, i, syntax)
        lines.append(text)
        i += n
    return "".join(line + "\n" for line in lines)


def disassemble_one(insn, pc: int | None = None, syntax: str = "kernel") -> str:
    """Text of one instruction, given as bytes, an :class:`isa.Insn`, or a sequence of
    Insns (pass both slots of an lddw).  With ``pc``, a jump also names its target slot."""
    _check_syntax(syntax)
    if isinstance(insn, isa.Insn):
        insn = [insn]
    raw = bytes(insn) if isinstance(insn, (bytes, bytearray, memoryview)) else \
        b"".join(i.pack() for i in insn)
    text, _, jump = _text_at(isa.unpack_program(raw), 0, syntax)
    if pc is None or jump is None:
        return text
    return f"{text} <{pc + 1 + jump}>" if syntax == "kernel" else f"{text}  # {pc + 1 + jump}"
