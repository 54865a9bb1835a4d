"""The verifier log in the kernel's format (``kernel/bpf/log.c``): each processed
instruction as ``N: (code) text``, register states at level 2, the path a refusal
was found on (level 1 keeps only that path, as the kernel rewinds its log when a
path ends safely), the C source line before the first instruction of each new one
(verbose_linfo), and the statistics line."""
from __future__ import annotations

from bisect import bisect_right

from .. import isa
from . import tnum
from .dynptrs import TYPE_NAMES, dynptr_type
from .kfuncs import ITER_ACTIVE
from .locks import map_name
from .state import (BPF_ADD_CONST, CONST_PTR_TO_DYNPTR, CONST_PTR_TO_MAP, M64, MAYBE_NULL,
                    NOT_INIT, PKT_TYPES, PTR_TO_ARENA, PTR_TO_FUNC, PTR_TO_MAP_KEY, PTR_TO_MAP_VALUE,
                    PTR_TO_MEM, PTR_TO_STACK, S64_MAX, S64_MIN, SCALAR, STACK_DYNPTR, STACK_ITER,
                    type_str)

_SIZE = {1: "u8", 2: "u16", 4: "u32", 8: "u64"}
_MAP_PTRS = (CONST_PTR_TO_MAP, PTR_TO_MAP_VALUE, PTR_TO_MAP_KEY)
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
    if f is isa.F_ADDR_SPACE_CAST:
        return (f"{head}r{insn.dst} = addr_space_cast(r{insn.src}, "
                f"{(insn.imm & 0xFFFFFFFF) >> 16}, {insn.imm & 0xFFFF})")
    if f is isa.F_END:
        return f"{head}r{insn.dst} = {op.mnemonic} r{insn.dst}"
    if f is isa.F_LDX:
        t = _SSIZE[op.size] if op.is_sign_extending_load else _SIZE[op.size]
        return f"{head}r{insn.dst} = *({t} *)(r{insn.src} {_off(insn.off)})"
    if f is isa.F_STX:
        return f"{head}*({_SIZE[op.size]} *)(r{insn.dst} {_off(insn.off)}) = r{insn.src}"
    if f is isa.F_ST:
        return f"{head}*({_SIZE[op.size]} *)(r{insn.dst} {_off(insn.off)}) = {insn.imm}"
    if f is isa.F_ATOMIC:
        imm, t = insn.imm, _SIZE[op.size]
        mem, bits = f"({t} *)(r{insn.dst} {_off(insn.off)})", "64" if op.size == 8 else ""
        if imm == isa.BPF_CMPXCHG:
            return f"{head}r0 = atomic{bits}_cmpxchg({mem}, r0, r{insn.src})"
        if imm == isa.BPF_XCHG:
            return f"{head}r{insn.src} = atomic{bits}_xchg({mem}, r{insn.src})"
        if imm & isa.BPF_FETCH:
            name = isa.ALU_OP_MNEMONIC[imm & 0xF0]
            return f"{head}r{insn.src} = atomic{bits}_fetch_{name}({mem}, r{insn.src})"
        return f"{head}lock *{mem} {isa.ALU_OP_SYMBOL[imm]} r{insn.src}"
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
    if f is isa.F_CALL and op.disc_value == isa.BPF_PSEUDO_KFUNC_CALL \
            and 0 < insn.imm < isa.N_KFUNC_IDS:
        name = isa.KFUNC_NAMES[insn.imm]
        return f"{head}call {name}#{kfunc_btf_id(name, insn.imm)}"
    from ..asm import disassemble_one
    slots = insns[pc:pc + 2] if f is isa.F_LDDW else insns[pc:pc + 1]
    return head + disassemble_one(slots)


_KFUNC_BTF_IDS: dict[str, int] = {}


def kfunc_btf_id(name: str, engine_id: int) -> int:
    """The id the kernel's log gives the kfunc ``name`` (print_call: its FUNC's id in
    the vmlinux BTF, the call's imm once libbpf has relocated it): the target BTF's
    (the running kernel's /sys/kernel/btf/vmlinux when readable, else the shipped
    one), or pyebpf's ``engine_id`` where that BTF does not declare it."""
    if name not in _KFUNC_BTF_IDS:
        from ..btf.relo import target_btf
        from ..btf.types import Kind
        found = target_btf().by_name(name, Kind.FUNC)
        _KFUNC_BTF_IDS[name] = found[0].id if found else engine_id
    return _KFUNC_BTF_IDS[name]


def _unum(v: int) -> str:
    # verbose_unum: decimal up to U16_MAX, else hex
    return str(v) if v <= 0xFFFF else f"{v:#x}"


def _snum(v: int) -> str:
    # verbose_snum: decimal within S16, else the 64-bit pattern in hex
    return str(v) if -0x8000 <= v <= 0x7FFF else f"{v & M64:#x}"


def _s32(v: int) -> int:
    # print_scalar_ranges: a 32-bit signed bound printed in hex is not sign-extended
    # (smin32=0xfffffffe, not smin=smin32=0xfffffffffffffffe)
    return v if -0x8000 <= v <= 0x7FFF else v & 0xFFFFFFFF


def _ranges(r) -> list[str]:
    """print_scalar_ranges: each bound not at its default, equal ones of the same kind
    of sign joined (``smax=umax=smax32=umax32=255``; a 32-bit signed bound outside S16
    as its unsigned 32 bits: ``smin32=umin32=0xfffe7960``)."""
    items = [["smin", r.smin, r.smin == S64_MIN], ["smax", r.smax, r.smax == S64_MAX],
             ["umin", r.umin, r.umin == 0], ["umax", r.umax, r.umax == M64],
             ["smin32", _s32(r.s32min), r.s32min == -(1 << 31)],
             ["smax32", _s32(r.s32max), r.s32max == (1 << 31) - 1],
             ["umin32", r.u32min, r.u32min == 0], ["umax32", r.u32max, r.u32max == 0xFFFFFFFF]]
    out = []
    for i, (name, val, omit) in enumerate(items):
        if omit:
            continue
        neg = name[0] == "s" and val < 0
        names = [name]
        for other in items[i + 2::2]:
            if other[2] or other[1] != val or (other[0][0] == "s" and other[1] < 0) != neg:
                continue
            other[2] = True
            names.append(other[0])
        text = _snum(val) if name[0] == "s" else _unum(val)
        out.append("=".join(names) + "=" + text)
    return out


def reg_text(r, marks: bool = False, frameno: int | None = None) -> str:
    """One register as the kernel's print_reg_state shows it (``scalar(smin=smin32=0,
    smax=umax=smax32=umax32=255,var_off=(0x0; 0xff))``, ``fp-8``, ``pkt(off=14,r=14)``);
    ``marks``: a precise scalar with its ``P`` (``P5``, ``Pscalar(...)``); ``frameno``:
    the frame printed, a pointer to another frame's stack showing that frame's number
    (``fp[0]-8``)."""
    if marks and r.type == SCALAR and r.precise:
        return "P" + reg_text(r, frameno=frameno)
    fp = "fp"
    if r.type == PTR_TO_STACK and frameno is not None and r.frame != frameno:
        fp = f"fp[{r.frame}]"
    if r.type == SCALAR and r.is_const:
        v = r.value
        return _snum(v - (1 << 64) if v >> 63 else v)
    if r.type == PTR_TO_STACK and r.is_const:
        v = r.value
        return f"{fp}{r.off + (v - (1 << 64) if v >> 63 else v)}"
    if r.type == PTR_TO_ARENA:
        return "arena"          # print_reg_state: its type only
    parts = []
    if r.id & BPF_ADD_CONST:
        parts.append(f"id={r.id & ~BPF_ADD_CONST}{r.off:+d}")
    elif r.id:
        parts.append(f"id={r.id}")
    if r.ref:
        parts.append(f"ref_obj_id={r.ref}")
    if r.map is not None and r.type & 0xFF in _MAP_PTRS:   # type_is_map_ptr
        if map_name(r.map):                 # print_reg_state: none for an unnamed map
            parts.append(f"map={map_name(r.map)}")
        parts.append(f"ks={r.map.key_size},vs={r.map.value_size}")
    if r.type != SCALAR and r.type != PTR_TO_FUNC and r.off:
        # pyebpf keeps a function pointer's target in off; the kernel's is subprogno
        parts.append(f"off={_snum(r.off)}")
    if r.type & 0xFF in PKT_TYPES:
        parts.append(f"r={_unum(r.range & M64)}")     # past pkt_end: negative
    if r.type & 0xFF == PTR_TO_MEM:
        parts.append(f"sz={r.size}")
        if r.range:     # a dynptr slice's stack buffer (dynptrs.py)
            frame, off, size = r.range
            parts.append(f"buf=fp[{frame}]{off}+{size}")
    if r.type == CONST_PTR_TO_DYNPTR and r.size:
        parts.append(f"type={TYPE_NAMES[r.size]}")
    if r.is_const:
        if r.value:
            parts.append(f"imm={_snum(r.value)}")
    else:
        parts += _ranges(r)
        if r.var != tnum.UNKNOWN:
            parts.append(f"var_off={tnum.text(r.var)}")
    name = fp if r.type == PTR_TO_STACK else type_str(r.type)
    if r.type & ~MAYBE_NULL == PTR_TO_MEM and not r.ref:
        # pyebpf's flagless PTR_TO_MEM is ring buffer memory, which holds its
        # reservation's reference (the kernel's MEM_RINGBUF), or a global function's
        # memory argument, which holds none: the kernel's plain "mem"
        name = name.replace("ringbuf_mem", "mem", 1)
    return f"{name}({','.join(parts)})"


# slot_type_char, indexed by STACK_INVALID, _SPILL, _MISC, _ZERO, _DYNPTR, _ITER, _IRQ_FLAG
_SLOT_CHARS = "?rm0dif"


def _slot_text(s, marks: bool = False, frameno: int | None = None) -> str | None:
    """A stack slot as print_verifier_state shows it; None for one it skips (an
    iterator's or a dynptr's other slots)."""
    if s.kinds[0] == STACK_ITER:
        m = s.spill
        if m is None:
            return None
        kind = isa.KFUNC_NAMES[m.size][len("bpf_"):-len("_new")]
        state = "active" if m.value == ITER_ACTIVE else "drained"
        return f"{kind}(ref_id={m.ref},state={state},depth={m.range})"
    if s.kinds[0] == STACK_DYNPTR:
        m = s.spill
        if m is None or m.size != 1:
            return None
        ref = f"ref_id={m.ref}," if m.ref else ""
        # the 6.18 kernel's dynptr_id here is 1 for every dynptr, clones and ring
        # buffer ones included: the slot printed is the dynptr's first
        return f"dynptr_{TYPE_NAMES[dynptr_type(m)]}(id={m.id},{ref}dynptr_id=1)"
    if s.spill is not None:
        # a spill narrower than the slot: the types of the bytes above it first
        # (print_verifier_state, ``fp-8=mmmm0``)
        above = "".join(_SLOT_CHARS[k] for k in reversed(s.kinds))
        return above.split("r", 1)[0] + reg_text(s.spill, marks, frameno)
    return "".join(_SLOT_CHARS[k] for k in reversed(s.kinds))


def frame_text(frame, st=None) -> str:
    """One frame of a checkpoint whole, precision marks included (print_verifier_state
    with print_all, as mark_precise prints a parent state); with ``st``, the references
    it holds and whether the frame is a callback's after it (as a call and a return
    print the frames)."""
    out = [f" frame{frame.frameno}:"] if frame.frameno else []
    out += [f" R{r}={reg_text(reg, True, frame.frameno)}" for r, reg in enumerate(frame.regs)
            if reg.type != NOT_INIT]
    for spi in sorted(frame.stack):
        s = frame.stack[spi]
        text = _slot_text(s, True, frame.frameno) if s.spill is not None or any(s.kinds) \
            else None
        if text is not None:
            out.append(f" fp{-(spi + 1) * 8}={text}")
    if st is not None:
        out += [f" {t}" for t in _tail(st, frame)]
    return "".join(out)


def _tail(st, frame=None) -> list[str]:
    """What print_verifier_state adds after the stack: the references held
    (``refs=2,5``) and whether the frame (the current one by default) is a callback's
    (``cb``, ``async_cb``)."""
    out = [f"refs={','.join(str(r) for r in st.refs)}"] if st.refs else []
    cb = (frame if frame is not None else st.cur).in_callback
    if cb:
        out.append("cb" if cb is True else "async_cb")
    return out


def state_text(st) -> str:
    out = [f"frame{st.cur.frameno}:"] if st.cur.frameno else []
    for r, reg in enumerate(st.cur.regs):
        if reg.type != NOT_INIT:
            out.append(f"R{r}={reg_text(reg, frameno=st.cur.frameno)}")
    for spi in sorted(st.cur.stack):
        s = st.cur.stack[spi]
        text = _slot_text(s, frameno=st.cur.frameno) if s.spill is not None or any(s.kinds) \
            else None
        if text is not None:
            out.append(f"fp{-(spi + 1) * 8}={text}")
    return " ".join(out + _tail(st))


def scratched_text(st, regs, slots) -> str | None:
    """The registers and stack slots an instruction touched, after it (the kernel's
    print_insn_state at level 2); None where it touched none, "" where none of them
    is printed (a helper's clobbered arguments)."""
    if not regs and not slots:
        return None
    frame = st.cur
    out = [f"frame{frame.frameno}:"] if frame.frameno else []
    out += [f"R{r}={reg_text(frame.regs[r], frameno=frame.frameno)}" for r in sorted(regs)
            if frame.regs[r].type != NOT_INIT]
    for spi in sorted(slots):
        s = frame.stack.get(spi)
        text = _slot_text(s, frameno=frame.frameno) \
            if s is not None and (s.spill is not None or any(s.kinds)) \
            else None
        if text is not None:
            out.append(f"fp{-(spi + 1) * 8}={text}")
    return " ".join(out + _tail(st))


def subprog_lines(starts) -> list[str]:
    """check_subprogs at level 2: ``func#N @start`` for each function."""
    return [f"func#{i} @{start}" for i, start in enumerate(starts)]


def live_regs_lines(insns, ops, live, scc) -> list[str]:
    """compute_live_registers at level 2: ``Live regs before insn:``, then each
    instruction with its loop's number (if any), the registers r0-r9 live before it
    and its text (``  3:   0: .1........ (b7) r6 = 0``)."""
    out = ["Live regs before insn:"]
    for pc, op in enumerate(ops):
        if op is None:
            continue
        mask = "".join(str(r) if live[pc] >> r & 1 else "." for r in range(10))
        loop = f"{scc[pc]:3d} " if scc[pc] else "    "
        out.append(f"{loop}{pc:3d}: {mask} {insn_text(insns, pc)}")
    return out


class Log:
    """Lines of the verifier log at ``level`` 0 (none), 1 or 2; with ``line_info``
    (the program's :class:`~pyebpf.btf.ext.LineInfo` records) each instruction of a
    new source line is preceded by ``; <text> @ <file>:<line>``."""

    def __init__(self, level: int = 0, line_info=()):
        self.level = level
        self.linfo = sorted(line_info, key=lambda li: li.pc)
        self.linfo_pcs = [li.pc for li in self.linfo]
        self.prev_linfo = None          # index of the record last printed
        self.lines: list[str] = []
        self.slots: set[int] = set()    # stack slots the current instruction touched
        self.all_regs = False           # and every register (scratch_all)
        self.insn_line = -1             # where the last instruction line is
        # a path just begun (do_check's do_print_state): (the pc it was queued at, or
        # None for a function's entry; its first pc; its state; whether ``Y: state``
        # follows), printed once it is not pruned there
        self.fresh = None
        self.texts: dict[int, str] = {}   # pc -> its instruction's line (one program a log)

    def mark(self) -> int:
        return len(self.lines)

    def insn(self, pc: int, insns, ops, st) -> None:
        if not self.level:
            return
        if self.linfo:
            self._source(pc)
        self.insn_line = len(self.lines)
        line = self.texts.get(pc)
        if line is None:    # a loop prints its instructions again and again
            line = self.texts[pc] = f"{pc}: {insn_text(insns, pc)}"
        self.lines.append(line)

    def _source(self, pc: int) -> None:
        """verbose_linfo: the record covering ``pc`` once, not again while it stays the
        last printed, nor where it names the last printed one's file and line (only
        its column differs); a rewound level-1 log does not print it again."""
        i = bisect_right(self.linfo_pcs, pc) - 1
        if i < 0 or i == self.prev_linfo:
            return
        li = self.linfo[i]
        if self.prev_linfo is not None:
            prev = self.linfo[self.prev_linfo]
            if prev.file_name == li.file_name and prev.line == li.line:
                return
        # ltrim of the text; the file's basename only
        self.lines.append(f"; {li.source_line.lstrip()} @ "
                          f"{li.file_name.rsplit('/', 1)[-1]}:{li.line}")
        self.prev_linfo = i

    def after(self, st, regs, pc: int) -> None:
        """Level 2: the registers ``regs`` and the stack slots the instruction last
        logged touched, as they are before instruction ``pc`` (print_insn_state: on
        that instruction's line, or on a line of its own, ``pc:``, where other lines
        came between)."""
        if self.level >= 2 and st.frames:
            if self.all_regs:
                regs, self.all_regs = range(11), False
            touched = scratched_text(st, regs, self.slots)
            text = f" {touched}" if touched else ""
            if touched is not None and self.insn_line == len(self.lines) - 1:
                # print_insn_state: ';' at the column vlog_alignment gives (a multiple
                # of 8 past the line and its newline, at least 40, less 2)
                col = -(-max(len(self.lines[-1]) + 5, 40) // 8) * 8 - 2
                self.lines[-1] = f"{self.lines[-1]:<{col}};{text}"
            elif touched is not None:
                self.lines.append(f"{pc}:{text}")
        self.slots.clear()

    def pop(self, mark: int, prev: int, pc: int, st) -> None:
        if self.level == 1:
            del self.lines[mark:]
        elif self.level >= 2:
            self.fresh = (prev, pc, state_text(st), True)

    def start(self, pc: int, st) -> None:
        """A function's verification begins at ``pc`` in state ``st`` (at level 2 its
        state is printed; do_check_common forgets the source line last printed)."""
        self.prev_linfo = None
        if self.level >= 2:
            self.fresh = (None, pc, state_text(st), True)

    def verified(self) -> None:
        """A function found safe: do_check_common rewinds a level-1 log to its start
        (what follows is the next function's)."""
        if self.level == 1:
            self.lines.clear()

    def called(self, st, caller, callee) -> None:
        """A static function's call: both frames whole (__check_func_call)."""
        if self.level:
            self.lines += ["caller:", frame_text(caller, st), "callee:",
                           frame_text(callee, st)]

    def returned(self, st, callee, caller, to: int) -> None:
        """A static function's or a callback's return (prepare_func_exit): both frames
        whole, the callee's as it returns, the caller's before a callback's changes
        are widened."""
        if self.level:
            self.lines += ["returning from callee:", frame_text(callee, st),
                           f"to caller at {to}:", frame_text(caller, st)]

    def resumed(self, st, exit_pc: int, to: int) -> None:
        """Level 2: after a return the caller's path goes on as a popped one does
        (do_check's do_print_state: ``from X to Y: state``, with no ``Y: state`` after
        it, nothing being scratched)."""
        if self.level >= 2:
            self.fresh = (exit_pc, to, state_text(st), False)

    def scratch_all(self, frame) -> None:
        """Level 2: every register and stack slot of ``frame`` is printed after the
        instruction (init_func_state's mark_verifier_state_scratched, for a callback
        queued while the caller's frame is the current one)."""
        if self.level >= 2:
            self.all_regs = True
            self.slots.update(frame.stack)

    def begun(self) -> None:
        """Level 2: the path just begun goes on: ``from X to Y: state`` for a queued
        one, then ``Y: state`` (every register scratched, print_insn_state)."""
        if self.fresh is not None:
            prev, pc, text, state_line = self.fresh
            if prev is not None:
                # do_check prints "\nfrom X to Y:": a blank line before each popped path
                self.lines += ["", f"from {prev} to {pc}: {text}"]
            if state_line:
                self.lines.append(f"{pc}: {text}")
            self.fresh = None

    def pruned(self, pc: int) -> None:
        """Level 2: ``from X to Y: safe`` for a path pruned where it was popped, else
        ``Y: safe``."""
        if self.level >= 2:
            popped = self.fresh is not None and self.fresh[0] is not None
            self.lines += ["", f"from {self.fresh[0]} to {pc}: safe"] if popped else \
                [f"{pc}: safe"]
            self.fresh = None

    def add(self, line: str) -> None:
        if self.level:
            self.lines.append(line)

    def text(self) -> str:
        return "".join(line + "\n" for line in self.lines)
