"""The decoded program as LLVM IR: one function ``void f(Vm*)`` that does what the
interpreter's plain loop (``_interp`` in pyebpf/_core.pyx) does, instruction for
instruction.

What the code may rely on, and how it keeps the interpreter's semantics:

- It starts at ``vm.pc``: pc 0 in frame 0 (vm_run), a callback's first instruction
  in the frame vm_callback made (a pc an ``lddw`` of a function names), or the
  exception callback's in the frame vm_unwind left after a throw; any other pc goes
  to the interpreter at once.  It works on the same ``Vm``: the frames, the
  stack region, the may_goto counters and the helper table are the interpreter's,
  read and written where the interpreter reads and writes them.
- The budget is charged at check points (_check_points) for the most instructions
  that can run before the next one: the code goes on only when that many are left,
  else it stops at the check point's pc and the interpreter goes on from there (and
  stops at the same instruction with the same count).  Every stop writes back the
  registers, the pc and the budget the interpreter would have had at that
  instruction boundary (what was charged and did not run given back), so
  ``insn_count`` is the same.
- Every load and store is checked against the run's regions as ``_mem`` checks them;
  a miss calls the core's own load/store (the interpreter's region and context path),
  so a fault is raised by the same code at the same pc.  Only an access through r10
  of a frame, in a program that never writes r10, and one the verifier proved inside
  the packet (Program._packet_pcs) skip the check: such an access lies in the stack
  region, or the packet region, by construction.
- Helpers and kfuncs are called through the same tables (``vm.helpers``, ``KFUNCS``)
  with the same ``vm.pc``, ``helper_id`` and budget the interpreter sets.
- Anything rare or not translated (an exit to an unknown return address, a jump into
  the second slot of an lddw, an unknown helper, the call depth exceeded) stops with
  the state before that instruction, and the interpreter executes it.
"""
from __future__ import annotations

import heapq
import struct

from .. import isa

# the decoded Insn of pyebpf/_core.pxd: op, dst, src, size (u8), off (s32), imm (u64)
_INSN = struct.Struct("<BBBBiQ")
_OPS = {op.id: op for op in isa.OPS}
# the core's context loads specialised at decode (isa.CTX_LOAD_OPS) are, to the code here,
# plain loads of ``size`` bytes: the core's own load reads the context for them
_CTX_LOADS = frozenset(isa.CTX_LOAD_OPS.values())
# the region hints a plain load's imm carries (the decoder's; 1 + the region's index)
_HINTS = frozenset(isa.LOAD_HINTS.values())
_LDX = {op.size: op for op in isa.OPS if op.form is isa.F_LDX and not op.is_sign_extending_load}
_ALU = {isa.BPF_ADD: "add", isa.BPF_SUB: "sub", isa.BPF_MUL: "mul", isa.BPF_OR: "or",
        isa.BPF_AND: "and", isa.BPF_XOR: "xor"}
_SHIFT = {isa.BPF_LSH: "shl", isa.BPF_RSH: "lshr", isa.BPF_ARSH: "ashr"}
_CMP = {isa.BPF_JEQ: "eq", isa.BPF_JNE: "ne", isa.BPF_JGT: "ugt", isa.BPF_JGE: "uge",
        isa.BPF_JLT: "ult", isa.BPF_JLE: "ule", isa.BPF_JSGT: "sgt", isa.BPF_JSGE: "sge",
        isa.BPF_JSLT: "slt", isa.BPF_JSLE: "sle"}
_ATOMIC = {isa.BPF_ADD: "add", isa.BPF_OR: "or", isa.BPF_AND: "and", isa.BPF_XOR: "xor"}
_JUMP_FORMS = (isa.F_JA, isa.F_JA32, isa.F_JCC_K, isa.F_JCC_X, isa.F_MAY_GOTO)
_CALL_FORMS = (isa.F_CALL, isa.F_CALLX)
# forms whose dst register an instruction writes
_WRITES_DST = (isa.F_ALU_K, isa.F_ALU_X, isa.F_ALU_SX, isa.F_ALU_XOFF_K, isa.F_ALU_XOFF_X,
               isa.F_NEG, isa.F_END, isa.F_LDDW, isa.F_LDX, isa.F_ADDR_SPACE_CAST)
_U64 = (1 << 64) - 1


def decode(code: bytes) -> tuple[list[tuple], dict[int, int]]:
    """The Insn array (Program._jit_code()) as (op, dst, src, size, off, imm) tuples,
    the context loads the core specialised given back their plain load op, and those
    loads' specialised ops by pc."""
    insns = [_INSN.unpack_from(code, k) for k in range(0, len(code), _INSN.size)]
    ctx = {pc: i[0] for pc, i in enumerate(insns) if i[0] in _CTX_LOADS}
    return [(_LDX[i[3]].id, *i[1:]) if i[0] in _CTX_LOADS else i for i in insns], ctx


def _s64(v: int) -> int:
    v &= _U64
    return v - (1 << 64) if v >> 63 else v


def _s32(v: int) -> int:
    v &= 0xffffffff
    return v - (1 << 32) if v >> 31 else v


class _Fn:
    """The function being written: its lines and fresh value names."""

    def __init__(self, abi: dict):
        self.abi = abi
        self.lines: list[str] = []
        self.n = 0
        self.sizes: dict[int, int] = {}     # block start -> its instructions
        # block start -> the most instructions that can run from there before the next
        # check point (_check_points): what the budget has been charged for on entry
        self.most: dict[int, int] = {}
        self.points: set[int] = set()       # the blocks entered through a budget check
        self.block: _Block | None = None    # the block being written
        self.grants = False                 # a frame entry grows the budget (_grant)
        self.ctx: dict[int, int] = {}       # pc -> its specialised context load op
        self.written: set[int] = set()      # the registers the code may change
        # (hint, size) of the program's hinted loads: the region hints of isa.LOAD_HINTS
        self.hints: set[tuple[int, int]] = set()
        # the loads and stores the verifier proved inside the packet (Program._packet_pcs)
        self.packet: frozenset[int] = frozenset()

    def tmp(self) -> str:
        self.n += 1
        return f"%t{self.n}"

    def emit(self, text: str) -> None:
        self.lines.append("  " + text)

    def label(self, name: str) -> None:
        self.lines.append(f"{name}:")

    def field(self, offset: int) -> str:
        p = self.tmp()
        self.emit(f"{p} = getelementptr i8, ptr %vm, i64 {offset}")
        return p

    def get(self, r: int) -> str:
        v = self.tmp()
        self.emit(f"{v} = load i64, ptr %r{r}")
        return v

    def set(self, r: int, value: str) -> None:
        self.written.add(r)
        self.emit(f"store i64 {value}, ptr %r{r}")

    def region_check(self, a: str, size: int, write: bool, label: str) -> None:
        """Branch to %h<label> if [a, a+size) is in a region, else to %m<label>.

        One region is kept in %hs (start), %hl (length, at least 8) and %hw (writable)
        and tried first: the stack region after every helper, kfunc and bpf-to-bpf
        call and return (the only places regions change), then the last region of at
        least 8 bytes an access hit.  Regions are disjoint, so a hit there is the
        region the interpreter's scan finds.  With the length at least 8, one unsigned
        comparison decides: a - start <= length - size."""
        hs = self.op("load volatile i64, ptr %hs")
        hl = self.op("load volatile i64, ptr %hl")
        room = self.op(f"sub i64 {hl}, {size}")
        inside = self.op(f"icmp ule i64 {self.op(f'sub i64 {a}, {hs}')}, {room}")
        if write:
            hw = self.op("load volatile i64, ptr %hw")
            inside = self.op(f"and i1 {inside}, {self.op(f'icmp ne i64 {hw}, 0')}")
        self.emit(f"br i1 {inside}, label %h{label}, label %lk{label}, !prof !1")
        self.label(f"lk{label}")
        found = self.op(f"call preserve_mostcc {{ i1, i64, i64, i64 }} @region_lookup(ptr %vm, i64 {a}, "
                        f"i64 {size}, i1 {int(write)})")
        hit = self.op(f"extractvalue {{ i1, i64, i64, i64 }} {found}, 0")
        start = self.op(f"extractvalue {{ i1, i64, i64, i64 }} {found}, 1")
        length = self.op(f"sub i64 {self.op(f'extractvalue {{ i1, i64, i64, i64 }} {found}, 2')}, {start}")
        keep = self.op(f"and i1 {hit}, {self.op(f'icmp uge i64 {length}, 8')}")
        writable = self.op(f"extractvalue {{ i1, i64, i64, i64 }} {found}, 3")
        for slot, v in (("%hs", start), ("%hl", length), ("%hw", writable)):
            old = self.op(f"load volatile i64, ptr {slot}")
            self.emit(f"store volatile i64 {self.op(f'select i1 {keep}, i64 {v}, i64 {old}')}, ptr {slot}")
        self.emit(f"br i1 {hit}, label %h{label}, label %m{label}, !prof !1")

    def forget_region(self) -> None:
        """Keep the stack region (vm.regions[0]) from here on, and read again the
        regions the loads' hints name (regions change only where this is called)."""
        abi = self.abi
        g = abi["regions"]
        start = self.op(f"load i64, ptr {self.field(g + abi['region_start'])}")
        end = self.op(f"load i64, ptr {self.field(g + abi['region_end'])}")
        w = self.op(f"load i32, ptr {self.field(g + abi['region_writable'])}")
        self.emit(f"store volatile i64 {start}, ptr %hs")
        self.emit(f"store volatile i64 {self.op(f'sub i64 {end}, {start}')}, ptr %hl")
        self.emit(f"store volatile i64 {self.op(f'zext i32 {w} to i64')}, ptr %hw")
        if not self.hints:
            return
        n = self.op(f"load i32, ptr {self.field(abi['nregions'])}")
        for h in sorted({h for h, _ in self.hints}):
            g = abi["regions"] + (h - 1) * abi["region_size"]
            start = self.op(f"load i64, ptr {self.field(g + abi['region_start'])}")
            end = self.op(f"load i64, ptr {self.field(g + abi['region_end'])}")
            # a region the run does not have (h > nregions) holds nothing
            there = self.op(f"icmp sle i32 {h}, {n}")
            length = self.op(f"select i1 {there}, i64 {self.op(f'sub i64 {end}, {start}')}, i64 0")
            self.emit(f"store volatile i64 {start}, ptr %gs{h}")
            # [a, a+size) is inside when a - start < length - size + 1 (0: nothing fits)
            for size in sorted(z for k, z in self.hints if k == h):
                fits = self.op(f"icmp uge i64 {length}, {size}")
                room = self.op(f"sub i64 {length}, {size - 1}")
                # frozen: else LLVM splits the check into branches on fits and there
                bound = self.op(f"freeze i64 {self.op(f'select i1 {fits}, i64 {room}, i64 0')}")
                self.emit(f"store volatile i64 {bound}, ptr %gb{h}_{size}")

    def hinted_check(self, a: str, size: int, hint: int, yes: str, no: str) -> None:
        """Branch to ``yes`` if [a, a+size) is in the region the hint names (the
        interpreter's first try, _within), else to ``no``: one subtraction and one
        comparison with values that change only at calls (forget_region)."""
        start = self.op(f"load volatile i64, ptr %gs{hint}")
        bound = self.op(f"load volatile i64, ptr %gb{hint}_{size}")
        inside = self.op(f"icmp ult i64 {self.op(f'sub i64 {a}, {start}')}, {bound}")
        self.emit(f"br i1 {inside}, label %{yes}, label %{no}, !prof !1")

    def goto(self, frm: int, to: int) -> None:
        """Leave the instruction at ``frm`` (the end of the block being written, or an
        entry) for the block at ``to``.

        A check point charges the budget up front for the most instructions that can
        run from it before the next check point (``most``), and lets the code on only
        when the budget holds them: one subtraction and a branch on its sign.  Every
        other block is entered with ``%left`` = the budget less its own ``most``; a
        jump that leaves a path shorter than the one charged for gives the difference
        back.  A failed check hands the block to the interpreter with the budget it
        would have there, or, with nothing left, the run stops naming ``frm``, as the
        interpreter's does."""
        b = self.block
        # what this block's entry charged for beyond its own instructions
        ahead = self.most[b.start] - b.count if b is not None else 0
        if to not in self.points:
            if ahead > self.most[to]:
                left = self.op("load i64, ptr %left")
                self.emit(f"store i64 {self.op(f'add i64 {left}, {ahead - self.most[to]}')}, ptr %left")
            self.emit(f"br label %b{to}")
            return
        charge = self.most[to] - ahead
        left = self.op("load i64, ptr %left")
        # not nsw: LLVM then keeps the test on the result's sign, the subtraction's own flags
        new = self.op(f"sub i64 {left}, {charge}")
        self.emit(f"store i64 {new}, ptr %left")
        if charge <= 0:
            self.emit(f"br label %b{to}")
            return
        self.n += 1
        q = f"q{self.n}"
        short = self.op(f"icmp slt i64 {new}, 0")
        self.emit(f"br i1 {short}, label %{q}, label %b{to}, !prof !0")
        self.label(q)
        # the budget at ``to`` is %left + %xback
        self.emit(f"store i64 {self.most[to]}, ptr %xback")
        self.emit(f"store i32 {to}, ptr %xpc")
        self.emit(f"store i32 {frm}, ptr %bpc")
        self.emit("br label %short")

    def branch(self, frm: int, cond: str, yes: int, no: int) -> None:
        """A conditional goto."""
        self.n += 1
        t = self.n
        self.emit(f"br i1 {cond}, label %y{t}, label %n{t}")
        self.label(f"y{t}")
        self.goto(frm, yes)
        self.label(f"n{t}")
        self.goto(frm, no)

    def op(self, text: str) -> str:
        v = self.tmp()
        self.emit(f"{v} = {text}")
        return v


def module(functions: list[str], abi: dict) -> str:
    """A module's IR text: what every function uses, then ``functions`` (translate())."""
    prelude = _PRELUDE.format(
        nregions=abi["nregions"], region_size=abi["region_size"],
        start=abi["regions"] + abi["region_start"], end=abi["regions"] + abi["region_end"],
        writable=abi["regions"] + abi["region_writable"], load=abi["load"],
        store=abi["store"])
    return "\n".join([prelude, *functions, _WEIGHTS])


def translate(code: bytes, abi: dict, name: str, exception_cb: int = 0,
              packet: frozenset[int] = frozenset()) -> str:
    """LLVM IR text of ``void @name(ptr %vm)`` running the program, with an entry at
    its exception callback's first pc (``exception_cb``; 0: none), where vm_unwind
    goes on after a throw.  The loads and stores at the pcs in ``packet`` (the
    verifier's proof: Program._packet_pcs) access memory without a region check."""
    insns, f_ctx = decode(code)
    n = len(insns) - 1                     # the last slot is the OP_INVALID sentinel
    f = _Fn(abi)
    f.ctx = f_ctx
    f.packet = packet
    # a proven packet load needs no hint: it is not checked at all
    f.hints = {(i[5], i[3]) for pc, i in enumerate(insns[:n]) if pc not in f_ctx
               and pc not in packet and _OPS.get(i[0]) is not None and _OPS[i[0]].form is isa.F_LDX
               and not _OPS[i[0]].is_sign_extending_load and i[5] in _HINTS}
    leaders, returns = _leaders(insns, n)
    leaders.add(n)                         # falling off the end reaches the sentinel
    callbacks = {i[5] for i in insns[:n] if _OPS.get(i[0]) is not None
                 and _OPS[i[0]].form is isa.F_LDDW and i[2] == isa.BPF_PSEUDO_FUNC
                 and i[5] < n}
    if 0 < exception_cb < n:
        callbacks.add(exception_cb)
    leaders |= callbacks
    fold_r10 = not any(_writes_r10(i) for i in insns[:n])
    # only a program with may_goto has a frame grant (ProgCore.frame_grant)
    f.grants = any(_OPS.get(i[0]) is not None and _OPS[i[0]].form is isa.F_MAY_GOTO
                   for i in insns[:n])

    f.lines.append(f"define void @{name}(ptr %vm) {{")
    f.label("entry")
    for r in range(11):
        f.emit(f"%r{r} = alloca i64")
    f.emit("%left = alloca i64")
    f.emit("%xpc = alloca i32")
    f.emit("%xback = alloca i64")
    f.emit("%tmp = alloca i64")
    f.emit("%bpc = alloca i32")
    for slot in ("%hs", "%hl", "%hw", *sorted({f"%gs{h}" for h, _ in f.hints}),
                 *(f"%gb{h}_{size}" for h, size in sorted(f.hints))):
        f.emit(f"{slot} = alloca i64")
    f.forget_region()
    for r in range(11):
        p = f.field(abi["reg"] + 8 * r)
        f.set(r, f.op(f"load i64, ptr {p}"))
    p = f.field(abi["budget_left"])
    f.emit(f"store i64 {f.op(f'load i64, ptr {p}')}, ptr %left")
    blocks = {start: _walk(insns, n, start, leaders) for start in sorted(leaders)}
    f.sizes = {start: len(body) for start, body in blocks.items()}
    entries = [0] + sorted(callbacks - {0})
    f.points, f.most = _check_points(insns, n, blocks, returns, entries)
    pc = f.op(f"load i32, ptr {f.field(abi['pc'])}")
    cases = " ".join(f"i32 {t}, label %e{t}" for t in entries)
    f.emit(f"switch i32 {pc}, label %eu [{cases}]")
    f.label("eu")
    f.emit(f"store i32 {pc}, ptr %xpc")
    f.emit("store i64 0, ptr %xback")
    f.emit("br label %exit")
    for t in entries:
        # the interpreter's entry names the first pc when the budget is already spent
        f.label(f"e{t}")
        f.goto(t, t)

    for start, body in blocks.items():
        _block(f, insns, n, start, body, returns, fold_r10)

    f.label("short")
    left = f.op(f"add i64 {f.op('load i64, ptr %left')}, {f.op('load i64, ptr %xback')}")
    f.emit(f"br i1 {f.op(f'icmp eq i64 {left}, 0')}, label %spent, label %exit")
    f.label("spent")
    f.emit(f"store i32 {abi['STATUS_BUDGET']}, ptr {f.field(abi['status'])}")
    f.emit("store i64 -1, ptr %left")
    f.emit("store i64 0, ptr %xback")
    f.emit(f"store i32 {f.op('load i32, ptr %bpc')}, ptr %xpc")
    f.emit("br label %exit")

    # every stop: the interpreter's state at an instruction boundary (a register the
    # code never changes still holds what the entry read; not keeping it in the
    # processor's registers to the end leaves them to the ones it does change)
    f.label("exit")
    for r in sorted(f.written):
        p = f.field(abi["reg"] + 8 * r)
        f.emit(f"store i64 {f.get(r)}, ptr {p}")
    p = f.field(abi["pc"])
    f.emit(f"store i32 {f.op('load i32, ptr %xpc')}, ptr {p}")
    p = f.field(abi["budget_left"])
    left = f.op(f"add i64 {f.op('load i64, ptr %left')}, {f.op('load i64, ptr %xback')}")
    f.emit(f"store i64 {left}, ptr {p}")
    f.emit("ret void")
    f.lines.append("}")
    return "\n".join(f.lines)


_WEIGHTS = """
!0 = !{!"branch_weights", i32 1, i32 1000}
!1 = !{!"branch_weights", i32 1000, i32 1}
"""


_PRELUDE = """\
declare i16 @llvm.bswap.i16(i16)
declare i32 @llvm.bswap.i32(i32)
declare i64 @llvm.bswap.i64(i64)
declare void @llvm.memset.p0.i64(ptr, i8, i64, i1)

; the core's own load and store (a region after all, or the context), called from
; code that keeps the program's registers in the processor's: these save every
; register they use (preserve_most), so the hot paths around them need not
define internal preserve_mostcc i32 @core_load(ptr %vm, i64 %a, i32 %size, ptr %out) noinline {{
  %r = call i32 inttoptr (i64 {load} to ptr)(ptr %vm, i64 %a, i32 %size, ptr %out)
  ret i32 %r
}}

define internal preserve_mostcc i32 @core_store(ptr %vm, i64 %a, i32 %size, i64 %v) noinline {{
  %r = call i32 inttoptr (i64 {store} to ptr)(ptr %vm, i64 %a, i32 %size, i64 %v)
  ret i32 %r
}}

; _mem's scan: [a, a+size) inside one region (writable for a write), and that
; region's start, end and writable flag
define internal preserve_mostcc {{ i1, i64, i64, i64 }} @region_lookup(ptr %vm, i64 %a, i64 %size, i1 %write) noinline {{
entry:
  %np = getelementptr i8, ptr %vm, i64 {nregions}
  %n = load i32, ptr %np
  br label %loop
loop:
  %k = phi i32 [0, %entry], [%k1, %next]
  %more = icmp slt i32 %k, %n
  br i1 %more, label %body, label %miss
body:
  %k64 = zext i32 %k to i64
  %off = mul i64 %k64, {region_size}
  %g = getelementptr i8, ptr %vm, i64 %off
  %gs = getelementptr i8, ptr %g, i64 {start}
  %ge = getelementptr i8, ptr %g, i64 {end}
  %s = load i64, ptr %gs
  %e = load i64, ptr %ge
  %c1 = icmp uge i64 %a, %s
  %c2 = icmp ule i64 %a, %e
  %room = sub i64 %e, %a
  %c3 = icmp uge i64 %room, %size
  %c12 = and i1 %c1, %c2
  %in = and i1 %c12, %c3
  br i1 %in, label %hit, label %next
hit:
  %gw = getelementptr i8, ptr %g, i64 {writable}
  %w = load i32, ptr %gw
  %ro = icmp eq i32 %w, 0
  %refused = and i1 %write, %ro
  br i1 %refused, label %miss, label %yes
yes:
  %w64 = zext i32 %w to i64
  %r1 = insertvalue {{ i1, i64, i64, i64 }} {{ i1 1, i64 0, i64 0, i64 0 }}, i64 %s, 1
  %r2 = insertvalue {{ i1, i64, i64, i64 }} %r1, i64 %e, 2
  %r3 = insertvalue {{ i1, i64, i64, i64 }} %r2, i64 %w64, 3
  ret {{ i1, i64, i64, i64 }} %r3
next:
  %k1 = add i32 %k, 1
  br label %loop
miss:
  ret {{ i1, i64, i64, i64 }} {{ i1 0, i64 1, i64 0, i64 0 }}
}}
"""


def _leaders(insns, n):
    """Block starts, and the return addresses of bpf-to-bpf calls."""
    leaders, returns = {0}, set()
    for pc in range(n):
        op = _OPS.get(insns[pc][0])
        if op is None:
            continue
        nxt = pc + op.slots
        if op.form in _JUMP_FORMS:
            leaders.update((insns[pc][4], nxt))
        elif op.form is isa.F_CALL_LOCAL:
            leaders.update((insns[pc][4], nxt))
            returns.add(nxt)
        elif op.form in _CALL_FORMS or op.form is isa.F_EXIT:
            leaders.add(nxt)
    return {pc for pc in leaders if 0 <= pc <= n}, returns


def _successors(insns, n, body) -> tuple[list[int], bool]:
    """Where the block ``body`` goes on (its jumps' targets, or the next pc), and
    whether it is re-checked there anyway (after a call, which may spend budget)."""
    last = body[-1]
    op = _OPS.get(insns[last][0]) if last < n else None
    if op is None or op.form is isa.F_EXIT:
        return [], False
    nxt = last + op.slots
    if op.form in (isa.F_JA, isa.F_JA32):
        return [insns[last][4]], False
    if op.form in (isa.F_JCC_K, isa.F_JCC_X, isa.F_MAY_GOTO):
        return [insns[last][4], nxt], False
    if op.form is isa.F_CALL_LOCAL:
        return [insns[last][4]], True
    return [nxt], op.form in _CALL_FORMS


def _check_points(insns, n, blocks, returns, entries) -> tuple[set[int], dict[int, int]]:
    """The blocks where the budget is checked, and for every block the most
    instructions that can run from its start before the next check point.

    A block is a check point when it is an entry, a call's target or return address,
    the block after a helper or kfunc call (which may spend budget on callbacks), or
    the target of a jump backwards (so every loop passes one).  Everything else is
    reached by jumps forwards from a check point only, on paths the check covered:
    the budget never goes below zero, and a check that fails hands the block to the
    interpreter, which counts exactly.

    The block a loop leaves for (a jump forwards from inside [head, latch] to past
    the latch) is a check point too: else the loop's head would be charged for the
    code after the loop, and each pass round it would give that back."""
    points = set(entries) | returns
    succ = {}
    loops = []                                   # (head, the latch's last pc)
    for start, body in blocks.items():
        targets, after_call = _successors(insns, n, body)
        targets = [t for t in targets if t in blocks]
        succ[start] = targets
        for t in targets:
            if after_call or t <= body[-1]:
                points.add(t)
            if t <= body[-1]:
                loops.append((t, body[-1]))
    loops.sort()
    inside: list[int] = []                       # heap: the ends of the loops open here
    k = 0
    for start in sorted(blocks):
        while k < len(loops) and loops[k][0] <= start:
            heapq.heappush(inside, loops[k][1])
            k += 1
        while inside and inside[0] < start:
            heapq.heappop(inside)
        if inside:
            # the innermost loop around this block ends first
            points.update(t for t in succ[start] if t > inside[0])
    most: dict[int, int] = {}
    for start in sorted(blocks, reverse=True):     # forward edges reach later blocks
        ahead = [most[t] for t in succ[start] if t not in points and t > start]
        most[start] = len(blocks[start]) + max(ahead, default=0)
    return points & blocks.keys(), most


def _writes_r10(insn) -> bool:
    op = _OPS.get(insn[0])
    if op is None:
        return False
    if op.form in _WRITES_DST:
        return insn[1] == 10
    # the fetching atomics load the old value into src
    return op.form is isa.F_ATOMIC and insn[2] == 10 and (
        op.disc_value & isa.BPF_FETCH or op.disc_value in (isa.BPF_XCHG, isa.BPF_CMPXCHG))


class _Block:
    """One basic block: its instructions and how to stop inside it."""

    def __init__(self, f: _Fn, start: int, count: int):
        self.f, self.start, self.count = f, start, count

    def stop(self, pc: int, k: int, executed: bool) -> None:
        """Leave the code at instruction k of the block (pc): after it (executed, the
        state the interpreter has when that instruction stops the run) or before it
        (the interpreter runs it next)."""
        f = self.f
        # the entry charged for the block's ``most`` (goto): the exit gives back what
        # did not run (a constant per stop, so that no loop carries one value per stop)
        f.emit(f"store i64 {f.most[self.start] - k - (1 if executed else 0)}, ptr %xback")
        f.emit(f"store i32 {pc}, ptr %xpc")
        f.emit("br label %exit")

    def end_with_zero(self, pc: int, k: int) -> None:
        """End the run at instruction k (pc) with r0 = 0, a clean exit."""
        f = self.f
        f.set(0, "0")
        f.emit(f"store i32 {f.abi['STATUS_EXIT']}, ptr {f.field(f.abi['status'])}")
        self.stop(pc, k, executed=True)


def _walk(insns, n, start, leaders) -> list[int]:
    """The pcs of the basic block at ``start``."""
    body: list[int] = []
    pc = start
    while True:
        body.append(pc)
        op = _OPS.get(insns[pc][0]) if pc < n else None
        if op is None or op.form in _JUMP_FORMS or op.form in _CALL_FORMS or op.form in (
                isa.F_CALL_LOCAL, isa.F_EXIT):
            return body
        pc += op.slots
        if pc in leaders:
            return body


def _block(f, insns, n, start, body, returns, fold_r10):
    # the budget was charged for it on the way here (goto)
    b = f.block = _Block(f, start, len(body))
    f.label(f"b{start}")
    for k, pc in enumerate(body):
        _insn(f, b, insns, n, pc, k, returns, fold_r10)


def _insn(f, b, insns, n, pc, k, returns, fold_r10):
    code, dst, src, size, off, imm = insns[pc]
    op = _OPS.get(code) if pc < n else None
    form = op.form if op is not None else None
    nxt = pc + (op.slots if op is not None else 1)
    last = k == b.count - 1

    def fallthrough():
        if last:
            f.goto(pc, nxt)

    if op is None:
        # the sentinel, or the second slot of an lddw jumped into
        b.stop(pc, k, executed=False)
        return
    if form is isa.F_LDDW:
        f.set(dst, str(_s64(imm)))
    elif form in (isa.F_ALU_K, isa.F_ALU_X, isa.F_ALU_XOFF_K, isa.F_ALU_XOFF_X, isa.F_NEG,
                  isa.F_ALU_SX, isa.F_END, isa.F_ADDR_SPACE_CAST):
        _alu(f, b, op, pc, k, dst, src, imm)
    elif pc in f.ctx:
        _ctx_load(f, b, op, pc, k, dst, src, off, size, imm)
    elif form is isa.F_LDX:
        base = _reg_or_fold(f, src, off, size, fold_r10, pc)
        _load(f, b, op, pc, k, dst, base, size,
              imm if (imm, size) in f.hints and not op.is_sign_extending_load else 0)
    elif form in (isa.F_ST, isa.F_STX):
        base = _reg_or_fold(f, dst, off, size, fold_r10, pc)
        _store(f, b, pc, k, base, size, str(_s64(imm)) if form is isa.F_ST else f.get(src))
    elif form is isa.F_ATOMIC:
        _atomic(f, b, op, pc, k, dst, src, off, size)
    elif form in (isa.F_LD_ABS, isa.F_LD_IND):
        _ld_packet(f, b, form, pc, k, src, imm, size)
    elif form in (isa.F_JA, isa.F_JA32):
        f.goto(pc, off)
        return
    elif form in (isa.F_JCC_K, isa.F_JCC_X):
        cond = _cond(f, op, dst, src, imm)
        f.branch(pc, cond, off, nxt)
        return
    elif form is isa.F_MAY_GOTO:
        _may_goto(f, pc, off, nxt)
        return
    elif form in _CALL_FORMS:
        _call(f, b, op, pc, k, dst, imm, nxt)
        return
    elif form is isa.F_CALL_LOCAL:
        _call_local(f, b, pc, k, off, nxt, imm)
        return
    elif form is isa.F_EXIT:
        _exit(f, b, pc, k, returns)
        return
    else:
        b.stop(pc, k, executed=False)
        return
    fallthrough()


# --- ALU ---------------------------------------------------------------------------

def _alu(f, b, op, pc, k, dst, src, imm):
    form = op.form
    wide = op.is_64
    if form is isa.F_END:
        _end(f, op, dst)
        return
    if form is isa.F_ADDR_SPACE_CAST:
        # the interpreter's case (isa._alu_case): the low 32 bits, and with the decoded
        # imm's bit 0 the arena's high 32 bits over them unless they are 0
        low = f.op(f"and i64 {f.get(src)}, 4294967295")
        if imm & 1:
            user = f.op(f"or i64 {low}, {_s64(imm & ~0xFFFFFFFF)}")
            zero = f.op(f"icmp eq i64 {low}, 0")
            low = f.op(f"select i1 {zero}, i64 0, i64 {user}")
        f.set(dst, low)
        return
    if form is isa.F_ALU_SX:
        narrow = f.op(f"trunc i64 {f.get(src)} to i{op.size * 8}")
        if wide:
            f.set(dst, f.op(f"sext i{op.size * 8} {narrow} to i64"))
        else:
            f.set(dst, f.op(f"zext i32 {f.op(f'sext i{op.size * 8} {narrow} to i32')} to i64"))
        return
    kop = isa.BPF_OP(op.code)
    t = "i64" if wide else "i32"
    a = f.get(dst)
    if not wide:
        a = f.op(f"trunc i64 {a} to i32")
    if form is isa.F_NEG:
        _set_t(f, dst, f.op(f"sub {t} 0, {a}"), wide)
        return
    if form in (isa.F_ALU_K, isa.F_ALU_XOFF_K):
        bv = str(_s64(imm)) if wide else str(_s32(imm))
        const = imm if wide else imm & 0xffffffff
    else:
        bv = f.get(src)
        if not wide:
            bv = f.op(f"trunc i64 {bv} to i32")
        const = None
    if kop == isa.BPF_MOV:
        _set_t(f, dst, bv, wide)
    elif kop in _ALU:
        _set_t(f, dst, f.op(f"{_ALU[kop]} {t} {a}, {bv}"), wide)
    elif kop in _SHIFT:
        amount = f.op(f"and {t} {bv}, {63 if wide else 31}")
        _set_t(f, dst, f.op(f"{_SHIFT[kop]} {t} {a}, {amount}"), wide)
    elif form in (isa.F_ALU_XOFF_K, isa.F_ALU_XOFF_X):
        _signed_div(f, kop, t, dst, a, bv, wide)
    else:
        _unsigned_div(f, b, pc, k, kop, t, dst, a, bv, const, wide)


def _set_t(f, dst, value, wide):
    f.set(dst, value if wide else f.op(f"zext i32 {value} to i64"))


def _end(f, op, dst):
    v = f.get(dst)
    w = op.size * 8
    if op.is_to_le:
        if w != 64:
            f.set(dst, f.op(f"and i64 {v}, {(1 << w) - 1}"))
        return
    narrow = v if w == 64 else f.op(f"trunc i64 {v} to i{w}")
    swapped = f.op(f"call i{w} @llvm.bswap.i{w}(i{w} {narrow})")
    f.set(dst, swapped if w == 64 else f.op(f"zext i{w} {swapped} to i64"))


def _unsigned_div(f, b, pc, k, kop, t, dst, a, bv, const, wide):
    """div and mod: by zero, 0 and dst (64-bit mod) or dst truncated (32-bit mod), or
    in the 4.6 profile the end of the run with r0 = 0 (vm.div0_abort)."""
    div = kop == isa.BPF_DIV
    inst = "udiv" if div else "urem"
    if const is not None and const != 0:
        _set_t(f, dst, f.op(f"{inst} {t} {a}, {bv}"), wide)
        return
    L = f"{pc}"
    if const is None:
        zero = f.op(f"icmp eq {t} {bv}, 0")
        f.emit(f"br i1 {zero}, label %z{L}, label %nz{L}")
        f.label(f"nz{L}")
        _set_t(f, dst, f.op(f"{inst} {t} {a}, {bv}"), wide)
        f.emit(f"br label %j{L}")
    else:
        f.emit(f"br label %z{L}")
    f.label(f"z{L}")
    p = f.field(f.abi["div0_abort"])
    abort = f.op(f"icmp ne i32 {f.op(f'load i32, ptr {p}')}, 0")
    f.emit(f"br i1 {abort}, label %za{L}, label %zk{L}")
    f.label(f"za{L}")
    b.end_with_zero(pc, k)
    f.label(f"zk{L}")
    if div:
        f.set(dst, "0")
    elif not wide:
        _set_t(f, dst, a, wide)
    f.emit(f"br label %j{L}")
    f.label(f"j{L}")


def _signed_div(f, kop, t, dst, a, bv, wide):
    """sdiv: by 0 gives 0, by -1 negates; smod: by -1 gives 0, by 0 keeps dst (32-bit:
    truncated).  The divisor LLVM sees is never 0 or -1."""
    is0 = f.op(f"icmp eq {t} {bv}, 0")
    ism1 = f.op(f"icmp eq {t} {bv}, -1")
    bad = f.op(f"or i1 {is0}, {ism1}")
    safe = f.op(f"select i1 {bad}, {t} 1, {t} {bv}")
    if kop == isa.BPF_DIV:
        q = f.op(f"sdiv {t} {a}, {safe}")
        neg = f.op(f"sub {t} 0, {a}")
        r = f.op(f"select i1 {ism1}, {t} {neg}, {t} {q}")
        r = f.op(f"select i1 {is0}, {t} 0, {t} {r}")
    else:
        q = f.op(f"srem {t} {a}, {safe}")
        r = f.op(f"select i1 {is0}, {t} {a}, {t} {q}")
        r = f.op(f"select i1 {ism1}, {t} 0, {t} {r}")
    _set_t(f, dst, r, wide)


def _cond(f, op, dst, src, imm):
    wide = op.is_64
    t = "i64" if wide else "i32"
    a = f.get(dst)
    if op.form is isa.F_JCC_K:
        bv = str(_s64(imm)) if wide else str(_s32(imm))
    else:
        bv = f.get(src)
    if not wide:
        a = f.op(f"trunc i64 {a} to i32")
        if op.form is isa.F_JCC_X:
            bv = f.op(f"trunc i64 {bv} to i32")
    kop = isa.BPF_OP(op.code)
    if kop == isa.BPF_JSET:
        return f.op(f"icmp ne {t} {f.op(f'and {t} {a}, {bv}')}, 0")
    return f.op(f"icmp {_CMP[kop]} {t} {a}, {bv}")


# --- memory ------------------------------------------------------------------------

def _reg_or_fold(f, r, off, size, fold_r10, pc):
    """(address, whether it is known to lie in a region: the stack, through r10, or
    the packet, where the verifier proved it)."""
    a = f.op(f"add i64 {f.get(r)}, {off}")
    return a, pc in f.packet or fold_r10 and r == 10 and -512 <= off and off + size <= 0


def _checked(f, b, pc, k, base, size, write, fast, slow, then=None, hint=0):
    """``fast(pointer)`` where [address, +size) is in a region (the one ``hint``
    names tried first); elsewhere ``slow()``, the core's own load or store (an i32, 0
    when it left a fault, which stops the run here), then ``then()``."""
    a, known = base
    L = f"{pc}"
    if known:
        fast(f.op(f"inttoptr i64 {a} to ptr"))
        return
    if hint:
        f.hinted_check(a, size, hint, f"h{L}", f"hm{L}")
        f.label(f"hm{L}")
    f.region_check(a, size, write, L)
    f.label(f"h{L}")
    fast(f.op(f"inttoptr i64 {a} to ptr"))
    f.emit(f"br label %j{L}")
    f.label(f"m{L}")
    f.emit(f"br i1 {f.op(f'icmp ne i32 {slow()}, 0')}, label %mo{L}, label %mf{L}")
    f.label(f"mf{L}")
    b.stop(pc, k, executed=True)
    f.label(f"mo{L}")
    if then is not None:
        then()
    f.emit(f"br label %j{L}")
    f.label(f"j{L}")


def _load(f, b, op, pc, k, dst, base, size, hint=0):
    w = size * 8
    signed = op.is_sign_extending_load

    def fast(p):
        f.set(dst, _widen(f, f.op(f"load i{w}, ptr {p}, align 1"), w, signed))

    def slow():     # a region after all, or the context
        return f.op(f"call preserve_mostcc i32 @core_load"
                    f"(ptr %vm, i64 {base[0]}, i32 {size}, ptr %tmp)")

    def then():
        v = f.op("load i64, ptr %tmp")
        f.set(dst, _widen(f, f.op(f"trunc i64 {v} to i{w}"), w, True) if signed else v)

    _checked(f, b, pc, k, base, size, False, fast, slow, then, hint)


def _ctx_load(f, b, op, pc, k, dst, src, off, size, imm):
    """A context load the core specialised (Program._specialise_loads), as the
    interpreter runs it: through this run's context, the field itself (data and
    data_end: the packet's pointers); through any other base, a plain checked load."""
    abi = f.abi
    L = f"{pc}"
    code = f.ctx[pc]
    base = f.get(src)
    skb = f.op(f"load ptr, ptr {f.field(abi['skb'])}")
    ctx = f.op(f"load i64, ptr {f.field(abi['ctx'])}")
    mine = f.op(f"icmp eq i64 {base}, {ctx}")
    fast = f.op(f"and i1 {mine}, {f.op(f'icmp ne ptr {skb}, null')}")
    f.emit(f"br i1 {fast}, label %ct{L}, label %cg{L}, !prof !1")
    f.label(f"ct{L}")
    if code == isa.CTX_LOAD_OPS["LDX_CTX"]:
        f.set(dst, f.op(f"call i64 inttoptr (i64 {abi['ctx_read']} to ptr)(ptr %vm, "
                        f"i32 {imm & 0xff}, i32 {off}, i32 {size}, i32 {imm >> 8})"))
    else:
        def skb_field(name, t):
            p = f.op(f"getelementptr i8, ptr {skb}, i64 {abi[name]}")
            v = f.op(f"load {t}, ptr {p}")
            return v if t == "i64" else f.op(f"zext {t} {v} to i64")

        v = f.op(f"add i64 {skb_field('skb_head', 'i64')}, {skb_field('skb_data', 'i32')}")
        if code == isa.CTX_LOAD_OPS["LDX_CTX_DATA_END"]:
            v = f.op(f"add i64 {v}, {skb_field('skb_len', 'i32')}")
        f.set(dst, v)
    f.emit(f"br label %cj{L}")
    f.label(f"cg{L}")
    _load(f, b, op, pc, k, dst, (f.op(f"add i64 {base}, {off}"), False), size)
    f.emit(f"br label %cj{L}")
    f.label(f"cj{L}")


def _widen(f, v, w, signed):
    if w == 64:
        return v
    return f.op(f"{'sext' if signed else 'zext'} i{w} {v} to i64")


def _store(f, b, pc, k, base, size, value):
    w = size * 8
    narrow = value if w == 64 else f.op(f"trunc i64 {value} to i{w}")

    def fast(p):
        f.emit(f"store i{w} {narrow}, ptr {p}, align 1")

    def slow():
        return f.op(f"call preserve_mostcc i32 @core_store"
                    f"(ptr %vm, i64 {base[0]}, i32 {size}, i64 {value})")

    _checked(f, b, pc, k, base, size, True, fast, slow)


def _atomic(f, b, op, pc, k, dst, src, off, size):
    """The interpreter's _atomic: a checked read-modify-write of a region, done with the
    processor's atomic instructions so that tcsim --cpus threads sharing a map value lose
    no update."""
    L = f"{pc}"
    w = size * 8
    a = f.op(f"add i64 {f.get(dst)}, {off}")
    host = f.op(f"call i64 inttoptr (i64 {f.abi['mem']} to ptr)(ptr %vm, i64 {a}, i32 {size}, i32 1)")
    f.emit(f"br i1 {f.op(f'icmp ne i64 {host}, 0')}, label %h{L}, label %mf{L}")
    f.label(f"mf{L}")
    b.stop(pc, k, executed=True)
    f.label(f"h{L}")
    p = f.op(f"inttoptr i64 {host} to ptr")

    def narrow(v):
        return v if w == 64 else f.op(f"trunc i64 {v} to i{w}")

    val = narrow(f.get(src))
    kind = op.disc_value
    if kind == isa.BPF_CMPXCHG:
        pair = f.op(f"cmpxchg ptr {p}, i{w} {narrow(f.get(0))}, i{w} {val} seq_cst seq_cst, align {size}")
        f.set(0, _widen(f, f.op(f"extractvalue {{ i{w}, i1 }} {pair}, 0"), w, False))
        return
    rmw = "xchg" if kind == isa.BPF_XCHG else _ATOMIC[kind & ~isa.BPF_FETCH]
    old = f.op(f"atomicrmw {rmw} ptr {p}, i{w} {val} seq_cst, align {size}")
    if kind & isa.BPF_FETCH:
        f.set(src, _widen(f, old, w, False))


def _ld_packet(f, b, form, pc, k, src, imm, size):
    """LD_ABS/LD_IND: out of bounds ends the run with r0 = 0 in the main program; in a
    subprogram, which it returns from, the interpreter runs it."""
    L = f"{pc}"
    a = str(_s64(imm))
    if form is isa.F_LD_IND:
        a = f.op(f"add i64 {f.get(src)}, {a}")
    off = f.op(f"trunc i64 {a} to i32")
    ok = f.op(f"call i32 inttoptr (i64 {f.abi['ld_packet']} to ptr)(ptr %vm, i32 {off}, i32 {size}, ptr %tmp)")
    f.emit(f"br i1 {f.op(f'icmp ne i32 {ok}, 0')}, label %h{L}, label %mf{L}")
    f.label(f"mf{L}")
    _on_depth(f, "eq i32 {}, 0", f"mz{L}", f"ms{L}")
    b.end_with_zero(pc, k)
    f.label(f"ms{L}")
    b.stop(pc, k, executed=False)
    f.label(f"h{L}")
    f.set(0, f.op("load i64, ptr %tmp"))


# --- control -----------------------------------------------------------------------

def _may_goto(f, pc, target, nxt):
    # the kernel's rewrite: a counter per frame, BPF_MAX_LOOPS at entry; at 0 the jump
    # is taken (do_misc_fixups)
    abi = f.abi
    depth = f.op(f"load i32, ptr {f.field(abi['depth'])}")
    idx = f.op(f"sext i32 {depth} to i64")
    slot = f.op(f"getelementptr i32, ptr {f.field(abi['may_goto_left'])}, i64 {idx}")
    cnt = f.op(f"load i32, ptr {slot}")
    zero = f.op(f"icmp eq i32 {cnt}, 0")
    f.emit(f"br i1 {zero}, label %gt{pc}, label %g{pc}")
    f.label(f"gt{pc}")
    f.goto(pc, target)
    f.label(f"g{pc}")
    f.emit(f"store i32 {f.op(f'sub i32 {cnt}, 1')}, ptr {slot}")
    f.goto(pc, nxt)


def _call(f, b, op, pc, k, dst, imm, nxt):
    """A helper (vm.helpers) or kfunc (KFUNCS) call, the block's last instruction."""
    abi = f.abi
    L = f"{pc}"
    kfunc = op.name == "CALL_KFUNC"
    # a helper that runs callbacks leaves their registers in vm.reg (vm_callback): every
    # stop must write back all of the code's
    f.written.update(range(11))
    if op.form is isa.F_CALLX:
        hid = f.get(dst)
        inside = f.op(f"icmp ult i64 {hid}, {abi['HELPER_SLOTS']}")
        f.emit(f"br i1 {inside}, label %ci{L}, label %cu{L}")
        f.label(f"ci{L}")
    elif not kfunc and imm >= abi["HELPER_SLOTS"]:
        b.stop(pc, k, executed=False)          # the interpreter reports it unknown
        return
    else:
        hid = str(imm)
    if kfunc:
        table = str(abi["kfuncs"])
    else:
        table = f.op(f"load ptr, ptr {f.field(abi['helpers'])}")
    slot = f.op(f"getelementptr ptr, ptr {'inttoptr (i64 ' + table + ' to ptr)' if kfunc else table}, i64 {hid}")
    fn = f.op(f"load ptr, ptr {slot}")
    if not kfunc:
        missing = f.op(f"icmp eq ptr {fn}, null")
        f.emit(f"br i1 {missing}, label %cu{L}, label %cc{L}")
        f.label(f"cu{L}")
        b.stop(pc, k, executed=False)
        f.label(f"cc{L}")
    f.emit(f"store i64 {hid}, ptr {f.field(abi['helper_id'])}")
    f.emit(f"store i32 {pc}, ptr {f.field(abi['pc'])}")
    if not kfunc:
        # a helper may run callbacks, on this budget
        f.emit(f"store i64 {f.op('load i64, ptr %left')}, ptr {f.field(abi['budget_left'])}")
    args = ", ".join(f"i64 {f.get(r)}" for r in range(1, 6))
    f.set(0, f.op(f"call i64 {fn}(ptr %vm, {args})"))
    if not kfunc:
        left_p = f.field(abi["budget_left"])
        f.emit(f"store i64 {f.op(f'load i64, ptr {left_p}')}, ptr %left")
    f.forget_region()
    status = f.op(f"load i32, ptr {f.field(abi['status'])}")
    running = f.op(f"icmp eq i32 {status}, {abi['STATUS_RUNNING']}")
    f.emit(f"br i1 {running}, label %cn{L}, label %cs{L}, !prof !1")
    f.label(f"cn{L}")
    f.goto(pc, nxt)
    f.label(f"cs{L}")
    done = f.op(f"icmp eq i32 {status}, {abi['STATUS_EXIT']}")
    f.emit(f"br i1 {done}, label %cx{L}, label %ce{L}")
    f.label(f"cx{L}")
    f.set(0, f.op(f"load i64, ptr {f.field(abi['reg'])}"))
    f.emit(f"br label %ce{L}")
    f.label(f"ce{L}")
    b.stop(pc, k, executed=True)


def _frame(f, depth):
    abi = f.abi
    idx = f.op(f"sext i32 {depth} to i64")
    off = f.op(f"mul i64 {idx}, {abi['frame_size']}")
    return f.op(f"getelementptr i8, ptr {f.field(abi['frames'])}, i64 {off}")


def _on_depth(f, test, yes, no):
    """Branch on ``icmp <test>`` of vm.depth: (vm.depth's address, its value)."""
    depth_p = f.field(f.abi["depth"])
    depth = f.op(f"load i32, ptr {depth_p}")
    f.emit(f"br i1 {f.op(f'icmp {test}'.format(depth))}, label %{yes}, label %{no}")
    f.label(yes)
    return depth_p, depth


def _call_local(f, b, pc, k, target, nxt, zero):
    abi = f.abi
    L = f"{pc}"
    # a ninth frame: the interpreter reports the depth
    depth_p, depth = _on_depth(f, f"sge i32 {{}}, {abi['MAX_FRAMES'] - 1}", f"cu{L}", f"cc{L}")
    b.stop(pc, k, executed=False)
    f.label(f"cc{L}")
    fr = _frame(f, depth)
    for j in range(4):
        p = f.op(f"getelementptr i8, ptr {fr}, i64 {abi['frame_saved'] + 8 * j}")
        f.emit(f"store i64 {f.get(6 + j)}, ptr {p}")
    p = f.op(f"getelementptr i8, ptr {fr}, i64 {abi['frame_ret_pc']}")
    f.emit(f"store i32 {nxt}, ptr {p}")
    d1 = f.op(f"add i32 {depth}, 1")
    f.emit(f"store i32 {d1}, ptr {depth_p}")
    slot = f.op(f"getelementptr i32, ptr {f.field(abi['may_goto_left'])}, i64 {f.op(f'sext i32 {d1} to i64')}")
    f.emit(f"store i32 {abi['BPF_MAX_LOOPS']}, ptr {slot}")
    if f.grants:
        _grant(f)
    f.set(10, f.op(f"sub i64 {f.get(10)}, {abi['FRAME_SIZE']}"))
    # the stack region grows by the callee's frame, zeroed as deep as the callee reaches
    # (the decoded imm: Program._stack_zero)
    start_p = f.field(abi["regions"] + abi["region_start"])
    start = f.op(f"sub i64 {f.op(f'load i64, ptr {start_p}')}, {abi['FRAME_SIZE']}")
    f.emit(f"store i64 {start}, ptr {start_p}")
    if zero:
        low = f.op(f"sub i64 {f.get(10)}, {zero}")
        f.emit(f"call void @llvm.memset.p0.i64(ptr {f.op(f'inttoptr i64 {low} to ptr')}, i8 0, i64 {zero}, i1 0)")
    f.forget_region()
    f.goto(pc, target)


def _grant(f):
    """The interpreter's _grant: the fresh counter's room added to the budget."""
    abi = f.abi
    grant_p, granted_p = f.field(abi["grant"]), f.field(abi["granted"])
    grant = f.op(f"load i64, ptr {grant_p}")
    left = f.op("load i64, ptr %left")
    f.emit(f"store i64 {f.op(f'add i64 {left}, {grant}')}, ptr %left")
    granted = f.op(f"add i64 {f.op(f'load i64, ptr {granted_p}')}, {grant}")
    f.emit(f"store i64 {granted}, ptr {granted_p}")
    spent = f.op(f"icmp uge i64 {granted}, {abi['GRANT_CAP']}")
    f.emit(f"store i64 {f.op(f'select i1 {spent}, i64 0, i64 {grant}')}, ptr {grant_p}")


def _exit(f, b, pc, k, returns):
    abi = f.abi
    L = f"{pc}"
    back = abi["CALLBACK_RETURN"]
    depth_p, depth = _on_depth(f, "eq i32 {}, 0", f"xe{L}", f"xr{L}")
    f.emit(f"store i32 {abi['STATUS_EXIT']}, ptr {f.field(abi['status'])}")
    b.stop(pc, k, executed=True)
    f.label(f"xr{L}")
    d1 = f.op(f"sub i32 {depth}, 1")
    fr = _frame(f, d1)
    ret_p = f.op(f"getelementptr i8, ptr {fr}, i64 {abi['frame_ret_pc']}")
    ret = f.op(f"load i32, ptr {ret_p}")
    cases = " ".join(f"i32 {r}, label %xp{L}" for r in sorted(returns | {back}))
    # a return address no call of this code pushed: the interpreter's
    f.emit(f"switch i32 {ret}, label %xu{L} [{cases}]")
    f.label(f"xu{L}")
    b.stop(pc, k, executed=False)
    f.label(f"xp{L}")
    f.emit(f"store i32 {d1}, ptr {depth_p}")
    for j in range(4):
        p = f.op(f"getelementptr i8, ptr {fr}, i64 {abi['frame_saved'] + 8 * j}")
        f.set(6 + j, f.op(f"load i64, ptr {p}"))
    f.set(10, f.op(f"add i64 {f.get(10)}, {abi['FRAME_SIZE']}"))
    start_p = f.field(abi["regions"] + abi["region_start"])
    start = f.op(f"load i64, ptr {start_p}")
    start = f.op(f"add i64 {start}, {abi['FRAME_SIZE']}")
    f.emit(f"store i64 {start}, ptr {start_p}")
    f.forget_region()
    # a callback's frame returns to the helper that called it (vm_callback)
    cases = " ".join(f"i32 {r}, label %xt{L}_{r}" for r in sorted(returns | {back}))
    f.emit(f"switch i32 {ret}, label %xn{L} [{cases}]")
    f.label(f"xn{L}")
    f.emit("unreachable")
    for r in sorted(returns):
        f.label(f"xt{L}_{r}")
        f.goto(pc, r)
    f.label(f"xt{L}_{back}")
    f.emit(f"store i32 {abi['STATUS_CALLBACK_DONE']}, ptr {f.field(abi['status'])}")
    b.stop(pc, k, executed=True)
