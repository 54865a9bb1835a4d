"""The JIT-vs-interpreter differential fuzzer.

Random programs (every instruction class: ALU of both widths, divisions by zero and
-1, byte swaps, sign extensions, loads and stores in and out of every region and the
context, atomics, jumps forwards and backwards, may_goto, helper, bpf-to-bpf and
recursive calls, bpf_loop callbacks, tail calls into other random programs (compiled
in the JIT's runs), LD_ABS/LD_IND, early exits, bpf_throw from any frame with the
default exception callback or the program's own), built without the
verifier so that they also fault, loop until the budget ends and call helpers that
do not exist.  Each runs on random inputs in the interpreter and in the JIT's code;
the two must agree on everything a run shows: the return value, the memory or packet
bytes and ``__sk_buff`` fields afterwards, ``insn_count``, and for a fault its kind,
pc and message.

``python -m pyebpf.jit.fuzz [--programs N] [--seed S]`` prints each disagreement
(with the seed and the program's listing) and exits 1 if there was one.
"""
from __future__ import annotations

import argparse
import random
import re
import sys

from .. import isa
from ..errors import ExecutionError, LoadError
from ..verifier.globalfuncs import GlobalFunc

_O = isa.OPS_BY_NAME
_ALU = [op for op in isa.OPS if op.form in (isa.F_ALU_K, isa.F_ALU_X, isa.F_ALU_XOFF_K,
                                            isa.F_ALU_XOFF_X, isa.F_NEG, isa.F_ALU_SX, isa.F_END)]
_JCC = [op for op in isa.OPS if op.form in (isa.F_JCC_K, isa.F_JCC_X)]
_LDX = [op for op in isa.OPS if op.form is isa.F_LDX]
_STORES = [op for op in isa.OPS if op.form in (isa.F_ST, isa.F_STX)]
_ATOMICS = [op for op in isa.OPS if op.form is isa.F_ATOMIC]
_LD_PKT = [op for op in isa.OPS if op.form in (isa.F_LD_ABS, isa.F_LD_IND)]
_IMMS = (0, 1, -1, 2, 7, 8, 31, 32, 63, 64, 0x7fffffff, -0x80000000, 0xff, 0xffff)
# the uBPF plugin's helpers of the raw mode; 7 is no helper
_RAW_HELPERS = {1: "gather_bytes", 2: "memfrob", 3: "no_op", 4: "sqrti", 5: "unwind",
                6: "strcmp"}
# deterministic tc helpers: skb_store_bytes, l3/l4_csum_replace, skb_load_bytes,
# csum_diff, get_hash_recalc, skb_pull_data, skb_change_tail, get_cgroup_classid
_TC_HELPERS = (9, 10, 11, 26, 28, 34, 39, 38, 17, 1000)
# __sk_buff offsets: len, mark, priority, tc_index, cb[0..4], data, data_end, and
# anything else in the first 192 bytes
_CTX_OFFS = (0, 8, 32, 40, 48, 52, 56, 60, 64, 76, 80)


def _imm(rng):
    return rng.choice(_IMMS) if rng.random() < 0.6 else rng.randrange(-2**31, 2**31)


class _Gen:
    """One random program, as (op, dst, src, off, imm, target item) items."""

    def __init__(self, rng: random.Random, typed: bool, prog_array: int | None = None):
        self.rng, self.typed = rng, typed
        self.prog_array = prog_array                   # a program array's fd: tail calls
        self.items: list[list] = []
        self.sub = 0                                   # the subprogram's first item
        self.has_cb = False                            # whether there is a callback
        self.cb = 0                                    # the callback's first item
        self.exc = 0                                   # the exception callback's (0: none)
        self.functions: tuple = ()                     # Program's functions: that callback

    def add(self, name_or_op, dst=0, src=0, off=0, imm=0, target=None):
        op = _O[name_or_op] if isinstance(name_or_op, str) else name_or_op
        form = op.form
        # only the fields the form has (encode() fills in the discriminator)
        dst = dst if form.dst else 0
        src = src if form.src else 0
        off = off if form.off in (isa.Field.MEM, isa.Field.JUMP) else 0
        imm = imm if form.imm in (isa.Field.S32, isa.Field.IMM64, isa.Field.HELPER,
                                  isa.Field.JUMP) else 0
        self.items.append([op, dst, src, off, imm, target])

    def reg(self):
        rng = self.rng
        return rng.choice((0, 1, 2, 3, 4, 5, 8, 9)) if rng.random() < 0.9 else rng.randrange(10)

    def mem_base(self):
        """(base register, offset) aimed at a region, its edges, or nowhere."""
        rng = self.rng
        kind = rng.random()
        if kind < 0.35:
            return 10, rng.choice((-8, -16, -1, -4, -512, -504, -2)) if rng.random() < 0.7 \
                else rng.randrange(-520, 4)
        if kind < 0.5:
            return 7, rng.randrange(-24, 24)           # a copy of r10, minus 64
        if kind < 0.85:
            return 6, rng.randrange(-4, 52)            # memory (raw) or the context (typed)
        if self.typed and kind < 0.95:
            return 9, rng.randrange(-2, 70)            # the packet
        return self.reg(), rng.randrange(-16, 16)

    def body(self, end: int, sub: bool):
        """Items up to index ``end`` (the exit that follows), jumps inside."""
        rng = self.rng
        while len(self.items) < end:
            here = len(self.items)
            k = rng.random()
            if k < 0.40:
                op = rng.choice(_ALU)
                self.add(op, self.reg(), rng.randrange(11), imm=_imm(rng))
            elif k < 0.45:
                self.add("LDDW", self.reg(), imm=rng.getrandbits(64))
            elif k < 0.58:
                base, off = self.mem_base()
                self.add(rng.choice(_LDX), self.reg(), base, off)
            elif k < 0.70:
                base, off = self.mem_base()
                if self.typed and base == 6 and rng.random() < 0.7:
                    off = rng.choice(_CTX_OFFS)
                self.add(rng.choice(_STORES), base, rng.randrange(10), off, _imm(rng))
            elif k < 0.75:
                base, off = self.mem_base()
                self.add(rng.choice(_ATOMICS), base, self.reg(), off)
            elif k < 0.86:
                back = rng.random() < 0.15
                target = rng.randrange(max(0, here - 6), here + 1) if back \
                    else rng.randrange(here + 1, end + 1)
                if rng.random() < 0.85:
                    self.add(rng.choice(_JCC), self.reg(), rng.randrange(11), imm=_imm(rng),
                             target=target)
                elif rng.random() < 0.5:
                    self.add("MAY_GOTO", target=target)
                else:
                    self.add(rng.choice(("JA", "JA32")), target=target)
            elif k < 0.91:
                if self.typed:
                    if rng.random() < 0.7:
                        self.add("MOV64_X", 1, 6)
                    self.add("CALL", imm=rng.choice(_TC_HELPERS))
                else:
                    self.add("CALL", imm=rng.randrange(1, 8))
            elif k < 0.94 and sub:
                self.add("CALL_LOCAL", target="sub")
            elif k < 0.95 and self.has_cb:
                # bpf_loop(n, callback, ctx, 0)
                self.add("MOV64_K", 1, imm=rng.randrange(0, 4))
                self.add("LDDW_FUNC", 2, target="cb")
                self.add("MOV64_X", 3, rng.choice((6, 7, 10)))
                self.add("MOV64_K", 4, imm=0 if rng.random() < 0.9 else 1)
                self.add("CALL", imm=isa.BPF_FUNC.BPF_FUNC_loop)
            elif k < 0.96 and self.prog_array is not None:
                self.add("MOV64_X", 1, 6)
                self.add("LDDW_MAP_FD", 2, imm=self.prog_array)
                self.add("MOV64_K", 3, imm=rng.randrange(-1, 5))
                self.add("CALL", imm=isa.BPF_FUNC.BPF_FUNC_tail_call)
            elif k < 0.97:
                self.add(rng.choice(_LD_PKT), src=self.reg(), imm=rng.randrange(-4, 70))
            elif k < 0.99:
                self.throw()
            else:
                self.add("EXIT")

    def throw(self):
        """bpf_throw, its cookie in r1 (a constant, or what r1 holds)."""
        if self.rng.random() < 0.5:
            self.add("MOV64_K", 1, imm=_imm(self.rng))
        self.add("CALL_KFUNC", imm=isa.KFUNC_IDS["bpf_throw"])

    def program(self) -> bytes:
        rng = self.rng
        self.add("MOV64_X", 6, 1)
        self.add("MOV64_X", 7, 10)
        self.add("ADD64_K", 7, imm=-64)
        if self.typed:
            self.add("LDX32", 9, 6, 76)                # data
        has_sub = rng.random() < 0.3
        self.has_cb = has_cb = self.typed and rng.random() < 0.3
        if rng.random() < 0.2:
            # a throw on some inputs, before the random body's faults can end the run
            skip = len(self.items)
            self.add(rng.choice(_JCC), rng.choice((0, 1, 9)), rng.randrange(11), imm=_imm(rng))
            self.throw()
            self.items[skip][5] = len(self.items)
        self.body(len(self.items) + rng.randrange(4, 48), has_sub)
        self.add("EXIT")
        if has_sub:
            self.sub = len(self.items)
            self.body(self.sub + rng.randrange(1, 10), rng.random() < 0.3)
            self.add("EXIT")
        if has_cb:
            self.cb = len(self.items)
            self.body(self.cb + rng.randrange(1, 12), has_sub)
            self.add("EXIT")
        if rng.random() < 0.3:
            # vm_unwind enters it with the cookie in r1, every other register but r10 0
            self.exc = len(self.items)
            if rng.random() < 0.5:
                self.add("MOV64_X", 0, 1)                  # the default callback's r0 = r1
            self.body(self.exc + rng.randrange(1, 10), has_sub)
            self.add("EXIT")
        return self._encode()

    def _encode(self) -> bytes:
        slots_at, pos = [], 0
        for item in self.items:
            slots_at.append(pos)
            pos += item[0].slots
        slots_at.append(pos)
        if self.exc:
            self.functions = (GlobalFunc(slots_at[self.exc], "exception_cb", exception_cb=True),)
        out = []
        for k, (op, dst, src, off, imm, target) in enumerate(self.items):
            if target == "sub":
                target = self.sub
            elif target == "cb":
                target = self.cb
            if target is not None:
                rel = slots_at[target] - slots_at[k] - 1
                if op.form in (isa.F_JA32, isa.F_CALL_LOCAL, isa.F_LDDW):
                    imm = rel
                else:
                    off = rel
            out.extend(isa.encode(op, dst, src, off, imm))
        return b"".join(insn.pack() for insn in out)


_ADDR = re.compile(r"0x[0-9a-f]+")


def _outcome(program, data, budget, fields):
    try:
        res = program.run(data, budget=budget, **fields)
    except ExecutionError as exc:
        return ("fault", type(exc).__name__, exc.pc, _ADDR.sub("ADDR", exc.message))
    skb = res.skb.as_dict() if res.skb is not None else None
    # copies: the run's buffers are freed before the next run, which then gets memory
    # at the same addresses
    return ("ok", res.retval, bytearray(res.data), bytearray(res.data_out or b""), skb,
            res.insn_count)


def _round(compiled, i):
    """Interpreter, JIT, interpreter, JIT, back to back through one call site: the
    first of ``compiled`` ((program, code) pairs) runs, the others are its tail calls'
    targets and switch engines with it."""
    seen = []
    for jitted in (False, True, False, True):
        for program, code in compiled:
            program._jit_install(code.entry if jitted else 0, code)
        seen.append(_outcome(compiled[0][0], *i))
    return seen


# more layouts tried before a disagreement is reported: the engines' runs do not get
# their buffers and stack at the same addresses, so a program that branches on an
# address bit (a byte of r1, sign-extended and masked) can take another path in each
# engine while two layouts happen to leave that bit alone in both
_CONFIRM_LAYOUTS = 8


def _moved_round(compiled, i, layout):
    """_round with the heap and the C stack moved by an amount ``layout`` picks."""
    hold = [bytes(len(i[0]) + k * (layout + 1)) for k in (0, 1, 8, 33, 600, 5000)]
    text = "second = _round(compiled, i)"
    for _ in range(layout % 4):
        text = f"exec({text!r}, globals())"     # each level a deeper C stack
    scope = {"_round": _round, "compiled": compiled, "i": i}
    exec(text, scope)
    del hold
    return scope["second"]


def _both(compiled, inputs):
    """(interpreter, JIT) outcomes per input, or None where the outcome depends on
    where memory is (a program may compute with an address, or store one): two rounds
    of runs, the second with the heap and the C stack moved, must agree in each
    engine; a disagreement must also hold in _CONFIRM_LAYOUTS more layouts."""
    out = []
    for i in inputs:
        runs = _round(compiled, i) + _moved_round(compiled, i, 0)
        stable = runs[0::2].count(runs[0]) == 4 and runs[1::2].count(runs[1]) == 4
        if stable and runs[0] != runs[1]:
            for layout in range(1, _CONFIRM_LAYOUTS + 1):
                more = _moved_round(compiled, i, layout)
                if more[0::2] != [runs[0]] * 2 or more[1::2] != [runs[1]] * 2:
                    stable = False
                    break
        out.append((runs[0], runs[1]) if stable else None)
    return out


def _inputs(rng, typed):
    budget = rng.choice((30, 200, 100_000))
    if typed:
        frame = bytes(rng.getrandbits(8) for _ in range(rng.randrange(14, 90)))
        return frame, budget, {"mark": rng.getrandbits(32), "ktime": 1}
    return bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 48))), budget, {}


def _program(rng, typed, prog_array=None):
    """A random program the core accepts (the structural checks refuse some: unreachable
    code), tail-calling into ``prog_array`` (a Map) where given."""
    from .. import _core
    fd = prog_array.fd if prog_array is not None else None
    while True:
        gen = _Gen(rng, typed, fd)
        code = gen.program()
        try:
            return _core.Program(code, "sched_cls" if typed else None, verify=False,
                                 jit=False, helpers=None if typed else _RAW_HELPERS,
                                 functions=gen.functions)
        except LoadError:
            continue


def _tail_called(rng) -> list:
    """A program array of 4 slots, two of them holding random tc programs: [the map,
    the programs]."""
    from .. import Map
    prog_array = Map.create("prog_array", 4, 4, 4)
    targets = [_program(rng, True) for _ in range(2)]
    for slot, target in zip((0, 2), targets):
        prog_array[slot.to_bytes(4, "little")] = target
    return [prog_array] + targets


def run(programs: int, seed: int, batch: int = 250, stats: dict | None = None) -> list[str]:
    """Fuzz ``programs`` random programs from ``seed``; a report per disagreement.
    ``stats`` (a dict) counts the outcomes compared by kind, and the runs left out."""
    from . import engine
    rng = random.Random(seed)
    failures = []
    done = 0
    while done < programs:
        group = []
        for _ in range(min(batch, programs - done)):
            typed = rng.random() < 0.4
            progs = _tail_called(rng) if typed and rng.random() < 0.25 else []
            prog = _program(rng, typed, progs[0] if progs else None)
            group.append(([prog] + progs[1:], [_inputs(rng, typed) for _ in range(3)]))
        codes = iter(engine.compile_codes([engine.source(p) for progs, _ in group for p in progs]))
        for progs, inputs in group:
            compiled = [(p, next(codes)) for p in progs]
            for i, pair in zip(inputs, _both(compiled, inputs)):
                if stats is not None:
                    kind = "address-dependent" if pair is None else (
                        pair[0][1] if pair[0][0] == "fault" else "exit")
                    stats[kind] = stats.get(kind, 0) + 1
                if pair is not None and pair[0] != pair[1]:
                    want, got = pair
                    failures.append(f"seed {seed}: input {i!r}\n  interpreter: {want}\n"
                                    f"  jit:         {got}\n" + "\n".join(
                                        p.disassemble() for p in progs))
        done += len(group)
    return failures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pyebpf.jit.fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--programs", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().getrandbits(32)
    stats: dict = {}
    failures = run(args.programs, seed, stats=stats)
    for text in failures:
        print(text, end="\n\n")
    counts = ", ".join(f"{n} {kind}" for kind, n in sorted(stats.items()))
    print(f"{args.programs} programs, seed {seed}: runs {counts}; {len(failures)} "
          "disagreements", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
