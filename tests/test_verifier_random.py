"""Structured random programs, verified by pyebpf and by the kernel (BPF_PROG_LOAD,
privileged): both accept or both refuse, and a refusal names the same instruction and
gives the same errno.
A program pyebpf accepts then runs on packets of several lengths and must never fault
(a run-time MemoryFault there is a verifier bug).

Each program is a prologue (context in r6, packet pointers in r7/r8 for tc), a few
fragments of the kinds users write and get wrong (packet reads with, without and
off-by-one bounds checks, map lookups with and without NULL checks at in- and
out-of-range offsets, stack spills and fills of every width, pointer arithmetic,
bounded and unbounded loops, helper calls with good and bad sizes, uninitialised
registers, partial spills and fills of every width, pointer arithmetic of each kind,
helper arguments good and bad, loops of several shapes, subprograms; -mcpu=v4 ALU and
JMP32 bounds used as offsets, context writes and narrow loads, packet pointers kept
across helpers that change the packet, socket lookups and ring buffer records released
wrongly, bpf_loop callbacks, bpf_iter_num loops and skb dynptr slices, paths joining
with a packet pointer known beyond pkt_end on one, helper writes over a narrow spill
beside zero bytes, slices of local, ring buffer and skb dynptrs used after a store, a
new dynptr or a release that may end them, and paths joining with slices of dynptrs
of their own), and an exit.  A
program with a callback is loaded with BTF function info, as its lddw needs.

:data:`COUNT` programs per program type run on every run, against the live kernel or
its recorded answers; ``PYEBPF_VERIFIER_FUZZ=N`` adds a long run of N other programs
per type against the live kernel only.
"""
from __future__ import annotations

import os
import random
import re
import struct

import pytest

from pyebpf import Map, Program, asm, errors, isa, kernel
from pyebpf.kernel.vmlinux import kfunc_btf_id
from skbdiff import CLS, SF

COUNT = 500
LONG_RUN = int(os.environ.get("PYEBPF_VERIFIER_FUZZ", "0"))
VALUE_SIZE = 16
PACKETS = [bytes(range(256))[:n] for n in (14, 34, 60, 64, 128, 256)]


def _fragment(rng: random.Random, tc: bool, k: int, subs: list[list[str]]) -> list[str]:
    """Assembler lines of one fragment; labels are suffixed with ``k``; a fragment with a
    callback appends its body to ``subs``."""
    kind = rng.choice(["pkt", "map", "stack", "ptr", "loop", "helper", "scalar", "uninit",
                       "ctx", "pktvar", "spill", "alu32", "tail", "mix", "mix", "partial",
                       "partial", "ptrkind", "ptrkind", "args", "args", "loop2", "atomic",
                       "v4", "v4", "ctxw", "ctxw", "ring", "loopcb", "iternum", "pktchg",
                       "pktchg", "sock", "sock", "dynptr", "pktjoin", "scrub", "dynptr2",
                       "dynptr2"]
                      if tc else
                      ["map", "stack", "ptr", "loop", "helper", "scalar", "uninit", "ctx",
                       "alu32", "tail", "mix", "mix", "partial", "partial", "ptrkind",
                       "args", "args", "loop2", "atomic", "v4", "v4", "ctxw", "ctxw", "ring",
                       "loopcb", "iternum", "scrub", "dynptr2"])
    size = rng.choice((1, 2, 4, 8))
    w = {1: "u8", 2: "u16", 4: "u32", 8: "u64"}[size]
    if kind == "pkt":
        n = rng.choice((1, 2, 4, 8, 14, 20, 34))
        off = n - size + rng.choice((0, 0, 1, -1))
        cmp = rng.choice((">", ">=", "<", "<="))
        check = [] if rng.random() < 0.15 else [f"r2 = r7", f"r2 += {n}"]
        if not check:
            return [f"r0 = *({w} *)(r7 + {off})"]
        if cmp in (">", ">="):
            return check + [f"if r2 {cmp} r8 goto skip{k}", f"r0 = *({w} *)(r7 + {off})",
                            f"skip{k}:"]
        return check + [f"if r2 {cmp} r8 goto ok{k}", f"goto skip{k}", f"ok{k}:",
                        f"r0 = *({w} *)(r7 + {off})", f"skip{k}:"]
    if kind == "pktvar":
        # a variable offset from the packet, bounded or not, checked against data_end
        mask = rng.choice((7, 15, 63, 255, None))
        lines = ["r3 = *(u8 *)(r6 + 0)" if mask is None else "r3 = *(u32 *)(r6 + 0)"]
        if mask is not None:
            lines.append(f"r3 &= {mask}")
        n = rng.choice((1, 2, 4))
        lines += ["r2 = r7", "r2 += r3", "r4 = r2", f"r4 += {n}",
                  f"if r4 > r8 goto skip{k}",
                  f"r0 = *({w} *)(r2 + {rng.choice((0, n - size, n - size + 1))})",
                  f"skip{k}:"]
        return lines
    if kind == "spill":
        # a checked packet pointer spilled and filled: the range must survive
        n = rng.choice((8, 14))
        return ["r2 = r7", f"r2 += {n}", f"if r2 > r8 goto skip{k}",
                "*(u64 *)(r10 - 16) = r7", f"r5 = *({rng.choice(('u64', 'u64', 'u32'))} *)"
                "(r10 - 16)", f"r0 = *({w} *)(r5 + {rng.choice((0, n - size, n))})",
                f"skip{k}:"]
    if kind == "mix":
        load = f"r3 = *(u{rng.choice((8, 16, 32))} *)(r6 + {rng.choice((0, 4, 8, 16))})"
        shape = rng.randint(0, 7)
        if shape == 7:
            shape = 6
        if shape == 0:      # copies of a NULL-checked pointer
            return [f"*(u32 *)(r10 - 4) = {rng.choice((0, 9))}", "r1 = map_fd(MAPFD) ll",
                    "r2 = r10", "r2 += -4", "call 1", "r5 = r0",
                    f"if r0 {rng.choice(('==', '!='))} 0 goto skip{k}",
                    f"r0 = *(u32 *)(r5 + {rng.choice((0, 12, 13))})", f"skip{k}:"]
        if shape == 1:      # a variable stack offset
            return [load, f"r3 &= {rng.choice((7, 8, 15, 24))}", "r2 = r10", "r2 += -32",
                    "r2 += r3", f"*(u{rng.choice((8, 64))} *)(r2 + 0) = 1",
                    f"r0 = *(u8 *)(r2 + {rng.choice((0, 7, 8))})"]
        if shape == 2:      # signed bounds as an index
            return [load, f"if r3 s> {rng.choice((7, 15))} goto skip{k}",
                    f"if r3 s< {rng.choice((0, -1))} goto skip{k}", "r2 = r10",
                    "r2 += -16", "r2 += r3", "r0 = *(u8 *)(r2 + 0)", f"skip{k}:"]
        if shape == 3:      # jset, byte swaps, sign extension, division
            return [load, f"r3 {rng.choice(('= be16', '= le16', '= be32'))} r3",
                    f"r3 = (s{rng.choice((8, 16))})r3" if rng.random() < 0.5 else "r3 &= 31",
                    f"if r3 & {rng.choice((32, 64, 1))} goto skip{k}",
                    f"r3 {rng.choice(('/=', '%='))} {rng.choice((3, 'r3'))}",
                    "r3 &= 15", "r2 = r10", "r2 += -16", "r2 += r3",
                    "r0 = *(u8 *)(r2 + 0)", f"skip{k}:"]
        if shape == 6:      # a ring buffer record: reserve, check, write, submit
            lines = ["r1 = map_fd(RINGFD) ll", f"r2 = {rng.choice((8, 16))}", "r3 = 0",
                     "call 131", "r5 = r0"]
            if rng.random() < 0.85:
                lines.append(f"if r0 == 0 goto skip{k}")
            lines.append(f"*(u64 *)(r5 + {rng.choice((0, 8, 16))}) = 1")
            if rng.random() < 0.85:
                lines += ["r1 = r5", "r2 = 0", f"call {rng.choice((132, 133))}"]
            return lines + [f"skip{k}:"]
        if shape == 5:      # one load, two kinds of pointer
            return [load, "r2 = r6", f"if r3 > 5 goto p{k}", "r2 = r10", "r2 += -8",
                    f"p{k}:", f"r0 = *(u32 *)(r2 + {rng.choice((0, 8))})"]
        if shape == 4 and tc:   # a loop reading the packet
            return ["r4 = 0", f"loop{k}:", "r2 = r7", "r2 += r4", "r5 = r2", "r5 += 1",
                    f"if r5 > r8 goto skip{k}", "r0 = *(u8 *)(r2 + 0)", "r4 += 1",
                    f"if r4 < {rng.choice((4, 8))} goto loop{k}", f"skip{k}:"]
        return [load, "*(u32 *)(r10 - 8) = r3", f"r4 = *(u{rng.choice((32, 64, 16))} *)"
                f"(r10 - 8)", f"if r4 > {rng.choice((15, 16, 100))} goto skip{k}",
                "r2 = r10", "r2 += -32", "r2 += r4", "r0 = *(u8 *)(r2 + 0)", f"skip{k}:"]
    if kind == "loopcb":
        return _loopcb(rng, tc, k, subs)
    if kind in _KINDS:
        return _KINDS[kind](rng, tc, k)
    if kind == "partial":
        return _partial(rng, tc, k)
    if kind == "ptrkind":
        return _ptrkind(rng, tc, k)
    if kind == "args":
        return _args(rng, tc, k)
    if kind == "loop2":
        return _loop2(rng, tc, k)
    if kind == "atomic":
        return _atomic(rng, tc, k)
    if kind == "alu32":
        return ["r3 = *(u32 *)(r6 + 0)", f"w3 {rng.choice(('+=', '-=', '*=', '&=', '|='))} "
                f"{rng.randint(1, 300)}", f"if w3 {rng.choice(('>', '<', 's>', 's<'))} "
                f"{rng.randint(0, 40)} goto skip{k}", "r3 &= 63", "r2 = r10",
                "r2 += -64", "r2 += r3", "r0 = *(u8 *)(r2 + 0)", f"skip{k}:"]
    if kind == "tail":
        return ["r1 = r6", "r2 = map_fd(PROGFD) ll", f"r3 = {rng.choice((0, 1, 5))}",
                "call 12"] + (["r0 = r0"] if rng.random() < 0.3 else [])
    if kind == "map":
        key = rng.choice((0, 1, 7))
        lines = [f"*(u32 *)(r10 - 4) = {key}", "r1 = map_fd(MAPFD) ll", "r2 = r10",
                 "r2 += -4", "call 1"]
        off = rng.choice((0, 4, 8, VALUE_SIZE - size, VALUE_SIZE - size + 1, VALUE_SIZE, -1))
        if rng.random() < 0.8:
            lines.append(f"if r0 == 0 goto skip{k}")
        if rng.random() < 0.3:
            lines += ["r3 = *(u32 *)(r6 + 0)", f"r3 &= {rng.choice((7, 15, 31))}",
                      "r0 += r3"]
        lines += [f"r1 = *({w} *)(r0 + {off})" if rng.random() < 0.5 else
                  f"*({w} *)(r0 + {off}) = 1", f"skip{k}:"]
        return lines
    if kind == "stack":
        off = -rng.choice((8, 16, 24, 4, 2, 1, 512, 520, 0))
        src = rng.choice(("r6", "r1", "r10", "r3"))
        lines = ["r3 = 5"] if src == "r3" else []
        lines.append(f"*({w} *)(r10 {off:+d}) = {src}".replace("+-", "- ").replace(
            "(r10 -", "(r10 -"))
        rsize = rng.choice((size, 8, 4, 1))
        rw = {1: "u8", 2: "u16", 4: "u32", 8: "u64"}[rsize]
        lines.append(f"r4 = *({rw} *)(r10 {off:+d})")
        if rng.random() < 0.5:
            lines.append("r0 = *(u32 *)(r4 + 0)")
        return [line.replace("(r10 +-", "(r10 -").replace("(r10 -", "(r10 - ")
                .replace("(r10 - -", "(r10 +").replace("- ", "-") for line in lines]
    if kind == "ptr":
        base = rng.choice(("r6", "r10", "r7" if tc else "r6"))
        op = rng.choice(("+=", "-=", "*=", "&=", "|=", "<<="))
        val = rng.choice(("8", "-8", "r3", "0"))
        lines = ["r3 = *(u32 *)(r6 + 0)"] if val == "r3" else []
        lines += [f"r5 = {base}", f"r5 {op} {val}"]
        if rng.random() < 0.5:
            lines.append("r0 = *(u32 *)(r5 + 0)")
        return lines
    if kind == "loop":
        bound = rng.choice((4, 16, 100))
        step = rng.choice((1, 1, 0))
        cmp = rng.choice(("<", "!="))
        return ["r4 = 0", f"loop{k}:", f"r4 += {step}", f"if r4 {cmp} {bound} goto loop{k}"]
    if kind == "helper":
        which = rng.choice(("load_bytes", "prandom", "printk", "csum_diff"))
        if which == "prandom":
            return ["call 7", "r3 = r0"]
        length = rng.choice((0, 1, 4, 8, 16, -1, 600))
        if which == "load_bytes" and tc:
            return ["r1 = r6", "r2 = 0", "r3 = r10", "r3 += -16", f"r4 = {length}",
                    "call 26"]
        if which == "printk":
            return ["*(u64 *)(r10 - 8) = 0", "r1 = r10", "r1 += -8", f"r2 = {length}",
                    "call 6"]
        return ["*(u64 *)(r10 - 8) = 0", "r1 = r10", "r1 += -8", f"r2 = {length}"] + \
            _mem_call(tc)
    if kind == "scalar":
        return [f"r3 = *(u{rng.choice((8, 16, 32))} *)(r6 + 0)",
                f"r3 {rng.choice(('&=', '>>=', '%=', '/=', '*=', '+='))} {rng.randint(1, 40)}",
                f"if r3 {rng.choice(('>', '<', '==', '!='))} {rng.randint(0, 40)} goto skip{k}",
                "r0 = r3", f"skip{k}:"]
    if kind == "uninit":
        return [f"r0 = r{rng.choice((9, 2, 3))}"]
    return [f"r3 = *(u32 *)(r6 + {rng.choice((0, 8, 16, 48, 72, 76, 80, 200, 2))})"]


_W = {1: "u8", 2: "u16", 4: "u32", 8: "u64"}


def _partial(rng: random.Random, tc: bool, k: int) -> list[str]:
    """A spill or store of one width, maybe overwritten in part, filled at another
    width and offset, the result used as a pointer or as a bounded index."""
    ws, wr = rng.choice((1, 2, 4, 8)), rng.choice((1, 2, 4, 8))
    base = rng.choice((8, 16, 24))
    store_off = -base + rng.choice((0, 0, 0, 8 - ws, 1, 4))
    read_off = rng.choice((store_off, store_off, -base, -base + 4, -base + 8 - wr,
                           store_off + 1))
    src = rng.choice(("r6", "r7" if tc else "r6", "r3", "r3", "imm", "r10"))
    lines = []
    if src == "r3":
        lines += [f"r3 = *(u32 *)(r6 + {rng.choice((0, 8, 16))})",
                  f"r3 &= {rng.choice((7, 255, 0xffff))}"]
    if src == "imm":
        lines.append(f"*({_W[ws]} *)(r10 {store_off:+d}) = {rng.choice((0, 5, -1, 300))}")
    else:
        lines.append(f"*({_W[ws]} *)(r10 {store_off:+d}) = {src}")
    if rng.random() < 0.3:
        lines.append(f"*(u8 *)(r10 {-base + rng.randint(0, 7):+d}) = 0")
    if rng.random() < 0.15:
        lines.append(f"r4 = *({_W[wr]} *)(r10 {read_off:+d})")
        lines.append(f"*({_W[wr]} *)(r10 {read_off:+d}) = r4")
    lines.append(f"r4 = *({_W[wr]} *)(r10 {read_off:+d})")
    use = rng.choice(("deref", "index", "index", "none"))
    if use == "deref":
        lines.append(f"r0 = *(u8 *)(r4 + {rng.choice((0, 4))})")
    elif use == "index":
        lines += [f"if r4 > {rng.choice((7, 15, 300))} goto skip{k}", "r2 = r10",
                  "r2 += -16", "r2 += r4", "r0 = *(u8 *)(r2 + 0)", f"skip{k}:"]
    return [line.replace("(r10 +-", "(r10 -").replace("(r10 -", "(r10 - ")
            .replace("(r10 +", "(r10 + ") for line in lines]


def _ptrkind(rng: random.Random, tc: bool, k: int) -> list[str]:
    """Pointer arithmetic of each kind: on pkt_end, on a map value that may be NULL,
    pointer plus or minus pointer, 32-bit ALU and negation on pointers, a scalar plus a
    pointer, the map pointer itself, and unbounded or negative variable offsets."""
    shape = rng.randint(0, 9)
    load = f"r3 = *(u32 *)(r6 + {rng.choice((0, 8))})"
    if shape == 0 and tc:       # arithmetic on pkt_end
        return ["r5 = r8", f"r5 {rng.choice(('+=', '-='))} {rng.choice((1, 0))}",
                f"if r7 > r5 goto skip{k}", f"skip{k}:"]
    if shape == 1:              # a map value that may still be NULL
        return ["*(u32 *)(r10 - 4) = 0", "r1 = map_fd(MAPFD) ll", "r2 = r10", "r2 += -4",
                "call 1", f"r0 += {rng.choice((0, 4))}", f"if r0 == 0 goto skip{k}",
                f"r1 = *(u32 *)(r0 + {rng.choice((0, 8))})", f"skip{k}:"]
    if shape == 2:              # pointer + pointer, pointer - pointer
        a, b = rng.choice((("r8", "r7"), ("r10", "r10"), ("r6", "r6"), ("r7", "r10")) if tc
                          else (("r10", "r10"), ("r6", "r6"), ("r10", "r6")))
        lines = [f"r5 = {a}", f"r5 {rng.choice(('+=', '-=', '-='))} {b}"]
        if rng.random() < 0.5:
            lines += [f"if r5 > 8 goto skip{k}", "r2 = r10", "r2 += -8", "r2 += r5",
                      "r0 = *(u8 *)(r2 + 0)", f"skip{k}:"]
        return lines
    if shape == 3:              # 32-bit ALU or negation on a pointer
        base = rng.choice(("r6", "r10", "r7" if tc else "r10"))
        return [f"r5 = {base}", rng.choice(("w5 += 1", "r5 = -r5", "w5 = w5", "r5 s>>= 1",
                                            "r5 /= 2", "r5 ^= 1")),
                "r0 = *(u8 *)(r5 + 0)" if rng.random() < 0.5 else "r0 = 0"]
    if shape == 4:              # scalar + pointer, the pointer on the right
        return [load, f"r3 &= {rng.choice((7, 8, 16))}", "r5 = r3",
                f"r5 += {rng.choice(('r10', 'r6', 'r7' if tc else 'r10'))}",
                f"r0 = *(u8 *)(r5 {rng.choice(('- 16', '+ 0', '- 8'))})"]
    if shape == 5:              # arithmetic on the map pointer
        return ["r1 = map_fd(MAPFD) ll", f"r1 += {rng.choice((0, 8))}",
                "*(u32 *)(r10 - 4) = 0", "r2 = r10", "r2 += -4", "call 1"]
    if shape == 6:              # a variable offset: unbounded, signed, negative
        lines = [load]
        lines.append(rng.choice(("r3 &= 15", "r3 = (s8)r3", "r3 s>>= 28", "r3 |= 1",
                                 "r3 &= -8")))
        base = rng.choice(("r10", "r7" if tc else "r10", "r0map"))
        if base == "r0map":
            lines += ["*(u32 *)(r10 - 4) = 0", "r1 = map_fd(MAPFD) ll", "r2 = r10",
                      "r2 += -4", "call 1", f"if r0 == 0 goto skip{k}", "r5 = r0",
                      "r5 += r3", f"r0 = *(u8 *)(r5 + {rng.choice((0, 15, 16))})",
                      f"skip{k}:"]
            return lines
        return lines + [f"r5 = {base}", f"r5 {rng.choice(('+=', '-='))} r3",
                        f"r0 = *(u8 *)(r5 {rng.choice(('- 16', '+ 0', '- 1'))})"]
    if shape == 7:              # a stack pointer moved out of the frame and back
        far = rng.choice((512, 520, 1 << 29, 1 << 30))
        return ["r5 = r10", f"r5 += -{far}", f"r5 += {far - 8}", "r0 = *(u64 *)(r5 + 0)"]
    if shape == 8:              # a context pointer moved
        return ["r5 = r6", f"r5 += {rng.choice((0, 4, -4))}", "r0 = *(u32 *)(r5 + 0)"]
    return [load, "r3 &= 7", "r5 = r10", "r5 += -8", "r5 -= r3", "*(u8 *)(r5 + 0) = 1",
            "r0 = *(u8 *)(r5 + 0)"]


def _atomic(rng: random.Random, tc: bool, k: int) -> list[str]:
    """An atomic read-modify-write (check_atomic_rmw) on a map value, the stack, the
    context, the packet or a scalar, at aligned and misaligned offsets, 32 or 64 bits
    wide, with and without a fetch."""
    w = rng.choice(("u32", "u64"))
    off = rng.choice((0, 0, 2, 4, 8))
    xchg = "xchg32_32" if w == "u32" else "xchg_64"
    op = rng.choice((f"lock *({w} *)(r5 + {off}) += r1",
                     f"r1 = atomic_fetch_add(({w} *)(r5 + {off}), r1)",
                     f"r1 = {xchg}(r5 + {off}, r1)"))
    target = rng.choice(("map", "map", "stack", "ctx", "scalar", "pkt" if tc else "stack"))
    if target == "map":
        return ["*(u32 *)(r10 - 4) = 0", "r1 = map_fd(MAPFD) ll", "r2 = r10", "r2 += -4",
                "call 1", f"if r0 == 0 goto skip{k}", "r5 = r0", "r1 = 1", op, f"skip{k}:"]
    if target == "stack":
        return ["*(u64 *)(r10 - 16) = 0", "*(u64 *)(r10 - 8) = 0", "r5 = r10",
                "r5 += -16", "r1 = 1", op]
    if target == "scalar":
        return ["r5 = *(u32 *)(r6 + 0)", "r1 = 1", op]
    return [f"r5 = {'r6' if target == 'ctx' else 'r7'}", "r1 = 1", op]


def _args(rng: random.Random, tc: bool, k: int) -> list[str]:
    """Helper arguments good and bad: keys and values from the stack (initialised or
    not, too short), the context, the packet or a map value; sizes constant, bounded,
    unbounded, zero or negative; a NULL map."""
    shape = rng.randint(0, 6)
    key_at = rng.choice((-4, -4, -2, -8, -1))
    init = [f"*(u32 *)(r10 {key_at:+d}) = 1"] if rng.random() < 0.7 and key_at <= -4 else []
    if shape == 0:      # lookup: where the key comes from
        key = rng.choice(("stack", "stack", "ctx", "pkt" if tc else "ctx", "value"))
        if key == "stack":
            lines = init + ["r2 = r10", f"r2 += {key_at}"]
        elif key == "ctx":
            lines = ["r2 = r6"]
        elif key == "pkt":
            lines = ["r2 = r7", "r3 = r7", "r3 += 4", f"if r3 > r8 goto skip{k}"]
        else:
            lines = ["*(u32 *)(r10 - 4) = 0", "r1 = map_fd(MAPFD) ll", "r2 = r10",
                     "r2 += -4", "call 1", f"if r0 == 0 goto skip{k}",
                     f"r2 = r0", f"r2 += {rng.choice((0, 12, 13))}"]
        return lines + ["r1 = map_fd(MAPFD) ll", "call 1", f"skip{k}:"]
    if shape == 1:      # update: the value's size on the stack
        vsize = rng.choice((8, 16, 16))
        lines = ["*(u32 *)(r10 - 4) = 0"]
        for off in range(-4 - vsize, -4, 8):
            if rng.random() < 0.9:
                lines.append(f"*(u64 *)(r10 {off:+d}) = 0")
        return lines + ["r1 = map_fd(MAPFD) ll", "r2 = r10", "r2 += -4", "r3 = r10",
                        f"r3 += {-4 - vsize}", f"r4 = {rng.choice((0, 1, 4))}", "call 2"]
    if shape == 2:      # a size from the packet or the context, bounded or not
        lines = [f"r4 = *(u32 *)(r6 + {rng.choice((0, 8))})"]
        lines.append(rng.choice(("r4 &= 15", "r4 &= 31", "r4 |= 1", "r4 = r4",
                                 "r4 &= 7", "r4 += -1")))
        if rng.random() < 0.4:
            lines.append(f"if r4 {rng.choice(('==', '>', 's<'))} 0 goto skip{k}")
        if tc and rng.random() < 0.5:
            return lines + ["r1 = r6", "r2 = 0", "r3 = r10", "r3 += -16", "call 26",
                            f"skip{k}:"]
        return lines + ["*(u64 *)(r10 - 16) = 0", "*(u64 *)(r10 - 8) = 0", "r1 = r10",
                        "r1 += -16", "r2 = r4"] + _mem_call(tc) + [f"skip{k}:"]
    if shape == 3:      # a NULL or scalar map argument
        return init + ["r2 = r10", "r2 += -4", f"r1 = {rng.choice((0, 1))}", "call 1"]
    if shape == 4 and tc:   # the packet as helper memory, checked or not
        n = rng.choice((4, 8, 14))
        size = rng.choice((n, n + 1, n - 1))
        check = [] if rng.random() < 0.2 else ["r3 = r7", f"r3 += {n}",
                                              f"if r3 > r8 goto skip{k}"]
        return check + ["r1 = r7", f"r2 = {size}"] + _mem_call(tc) + [f"skip{k}:"]
    if shape == 5:      # a map value as helper memory, in bounds or not
        size = rng.choice((8, 16, 17, 12))
        return ["*(u32 *)(r10 - 4) = 0", "r1 = map_fd(MAPFD) ll", "r2 = r10", "r2 += -4",
                "call 1", f"if r0 == 0 goto skip{k}", "r1 = r0",
                f"r1 += {rng.choice((0, 4))}", f"r2 = {size}"] + _mem_call(tc) + [f"skip{k}:"]
    # uninitialised stack as memory a helper reads
    return [f"*(u32 *)(r10 - {rng.choice((8, 16))}) = 0", "r1 = r10", "r1 += -16",
            f"r2 = {rng.choice((8, 16))}", "call 6"]


def _v4(rng: random.Random, tc: bool, k: int) -> list[str]:
    """-mcpu=v4 ALU and JMP32: a 32-bit or signed comparison refining a value then used
    as a stack offset (the upper half unknown or not), and BPF_NEG, BPF_ARSH, bswap,
    movsx, ldsx, sdiv and smod producing the offset."""
    shape = rng.randint(0, 6)
    src = rng.choice(("r3 = *(u32 *)(r6 + 0)", "call 7\nr3 = r0", "r3 = *(u16 *)(r6 + 8)"))
    lines = src.split("\n")
    use = ["r2 = r10", "r2 += -16", "r2 += r3", "r0 = *(u8 *)(r2 + 0)", f"skip{k}:"]
    if shape == 0:      # JMP32 bounds the low half only
        lines += [f"if w3 {rng.choice(('>', '>=', 's>'))} {rng.choice((7, 15, 16))} "
                  f"goto skip{k}"]
        if rng.random() < 0.5:
            lines.append(f"if w3 s< {rng.choice((0, -1))} goto skip{k}")
        if rng.random() < 0.5:
            lines.append("w3 = w3")
        return lines + use
    if shape == 1:      # negation, 64 or 32 bits wide
        return lines + [f"r3 &= {rng.choice((7, 15))}", rng.choice(("r3 = -r3", "w3 = -w3")),
                        "r2 = r10", "r2 += -1", "r2 += r3", "r0 = *(u8 *)(r2 + 0)"]
    if shape == 2:      # an arithmetic shift of a sign-extended value
        wide = rng.random() < 0.7
        return lines + [rng.choice(("r3 <<= 56", "r3 <<= 60", "r3 = (s8)r3")
                                   if wide else ("w3 <<= 24", "w3 <<= 28", "w3 = (s8)w3")),
                        f"{'r3' if wide else 'w3'} s>>= "
                        f"{rng.choice((56, 60, 4) if wide else (24, 28, 4))}",
                        f"if r3 s> {rng.choice((7, 8))} goto skip{k}",
                        f"if r3 s< {rng.choice((-8, -9, 0))} goto skip{k}",
                        "r2 = r10", "r2 += -8", "r2 += r3", "r0 = *(u8 *)(r2 + 0)",
                        f"skip{k}:"]
    if shape == 3:      # unconditional byte swaps
        return lines + [f"r3 = bswap{rng.choice((16, 32, 64))} r3",
                        rng.choice(("r3 &= 15", "r3 >>= 60", "r3 >>= 56", "w3 &= 15")),
                        ] + use
    if shape == 4:      # movsx of a bounded value: negative or not
        return lines + [f"r3 &= {rng.choice((7, 0x7f, 0xff, 0x8f))}",
                        rng.choice(("r3 = (s8)r3", "w3 = (s8)w3", "r3 = (s16)r3",
                                    "r3 = (s32)r3")),
                        f"if r3 {rng.choice(('>', 's>'))} 15 goto skip{k}"] + use
    if shape == 5:      # ldsx from the stack, a map value or the context
        where = rng.choice(("stack", "stack", "ctx", "map"))
        w = rng.choice(("s8", "s16", "s32"))
        if where == "stack":
            pre = ["*(u64 *)(r10 - 24) = r3", f"r3 = *({w} *)(r10 - 24)"]
        elif where == "ctx":
            pre = [f"r3 = *({w} *)(r6 + {rng.choice((0, 8, 48))})"]
        else:
            pre = ["*(u32 *)(r10 - 4) = 0", "r1 = map_fd(MAPFD) ll", "r2 = r10", "r2 += -4",
                   "call 1", f"if r0 == 0 goto skip{k}", f"r3 = *({w} *)(r0 + 0)"]
        return lines + pre + [f"if r3 s> 15 goto skip{k}",
                              f"if r3 s< {rng.choice((0, -16, -17))} goto skip{k}",
                              "r2 = r10", "r2 += -16", "r2 += r3",
                              "r0 = *(u8 *)(r2 + 0)", f"skip{k}:"]
    # signed division and modulo: the result's bounds
    return lines + [rng.choice(("r3 s/= 3", "r3 s%= 16", "w3 s%= 16", "w3 s/= -2",
                                "r3 s/= r3", "r3 s%= -16")),
                    f"if r3 {rng.choice(('>', 's>'))} 15 goto skip{k}",
                    f"if r3 s< {rng.choice((0, -1))} goto skip{k}"] + use


def _ctxw(rng: random.Random, tc: bool, k: int) -> list[str]:
    """Context writes the kernel allows (tc: mark, priority, tc_index, cb[],
    queue_mapping, tc_classid, tstamp; socket filters: cb[]) and refuses (len,
    pkt_type, hash, data), at each width; narrow loads of fields and of pointers."""
    if rng.random() < 0.5:
        off = rng.choice((8, 12, 32, 44, 48, 52, 64, 72, 152, 0, 4, 68, 76, 24))
        size = rng.choice((4, 4, 8, 2, 1))
        off += rng.choice((0, 0, 0, 2, 1)) if size < 4 else 0
        src = rng.choice(("r3", "imm", "r10", "r6"))
        lines = ["r3 = *(u32 *)(r6 + 0)"] if src == "r3" else []
        val = rng.choice((0, 1, 7)) if src == "imm" else src
        return lines + [f"*({_W[size]} *)(r6 + {off}) = {val}"]
    off = rng.choice((0, 4, 8, 12, 16, 20, 24, 32, 44, 48, 68, 72, 76, 80, 140, 152, 160, 168))
    size = rng.choice((1, 2, 2, 4, 8))
    off += rng.choice((0, 0, 1, 2, 3)) if size < 4 else 0
    return [f"r3 = *({_W[size]} *)(r6 + {off})",
            "r0 = *(u8 *)(r3 + 0)" if rng.random() < 0.15 else "r0 = r3"]


def _pktchg(rng: random.Random, tc: bool, k: int) -> list[str]:
    """A checked packet pointer kept, in a register or spilled, across a helper that
    changes the packet (bpf_skb_pull_data, bpf_skb_change_tail, bpf_skb_vlan_push,
    bpf_skb_store_bytes, bpf_l3_csum_replace): used as it was, or reloaded from the
    context with or without a new check."""
    call = rng.choice((["r1 = r6", f"r2 = {rng.choice((14, 34))}", "call 39"],
                       ["r1 = r6", "r2 = 100", "r3 = 0", "call 38"],
                       ["r1 = r6", "r2 = 129", "r3 = 5", "call 18"],
                       ["r1 = r6", "r2 = 0", "r3 = r10", "r3 += -8", "r4 = 2", "r5 = 0",
                        "*(u64 *)(r10 - 8) = 0", "call 9"],
                       ["r1 = r6", "r2 = 24", "r3 = 0", "r4 = 0", "r5 = 2", "call 10"],
                       ["r1 = r6", "call 7"]))
    lines = ["r2 = r7", "r2 += 14", f"if r2 > r8 goto skip{k}"]
    spill = rng.random() < 0.3
    if spill:
        lines.append("*(u64 *)(r10 - 32) = r7")
    lines += call
    after = rng.choice(("stale", "reload", "reload", "unchecked"))
    if spill:
        lines.append("r7 = *(u64 *)(r10 - 32)")
    if after == "reload":
        lines += ["r7 = *(u32 *)(r6 + 76)", "r8 = *(u32 *)(r6 + 80)", "r2 = r7",
                  f"r2 += {rng.choice((14, 14, 13))}", f"if r2 > r8 goto skip{k}"]
    elif after == "unchecked":
        lines += ["r7 = *(u32 *)(r6 + 76)", "r8 = *(u32 *)(r6 + 80)"]
    return lines + [f"r0 = *(u8 *)(r7 + {rng.choice((0, 13))})", f"skip{k}:"]


def _sock(rng: random.Random, tc: bool, k: int) -> list[str]:
    """A socket lookup (bpf_sk_lookup_tcp/udp, bpf_skc_lookup_tcp) with a tuple on the
    stack, initialised or not, of the right size or not; the result NULL-checked or not,
    read, released once, twice, not at all, or used after its release."""
    lines = ["*(u64 *)(r10 - 16) = 0"]
    if rng.random() < 0.9:
        lines.append("*(u32 *)(r10 - 8) = 0")
    lines += ["r1 = r6", "r2 = r10", "r2 += -16", f"r3 = {rng.choice((12, 12, 12, 36, 8))}",
              f"r4 = {rng.choice((-1, -1, 0))}", "r5 = 0", f"call {rng.choice((84, 85, 99))}",
              "r9 = r0"]
    checked = rng.random() < 0.8
    if checked:
        lines.append(f"if r0 == 0 goto skip{k}")
    if rng.random() < 0.5:
        lines.append(f"r0 = *(u32 *)(r9 + {rng.choice((4, 0, 8))})")
    release = rng.choice((1, 1, 1, 0, 2, "use"))
    if release:
        lines += ["r1 = r9", "call 86"]
    if release == 2:
        lines += ["r1 = r9", "call 86"]
    if release == "use":
        lines.append("r0 = *(u32 *)(r9 + 4)")
    return lines + ([f"skip{k}:"] if checked else [])


def _ring(rng: random.Random, tc: bool, k: int) -> list[str]:
    """A ring buffer record: reserved at a constant or variable size, NULL-checked or
    not, written in or past bounds, then submitted or discarded once, twice or not at
    all, from a moved pointer, or written after; or bpf_ringbuf_output from the stack."""
    if rng.random() < 0.15:
        return ["*(u64 *)(r10 - 8) = 0", "r1 = map_fd(RINGFD) ll", "r2 = r10", "r2 += -8",
                f"r3 = {rng.choice((8, 8, 16))}", "r4 = 0", "call 130"]
    size = rng.choice(("8", "16", "8", "16", "var"))
    lines = []
    if size == "var":
        lines += ["r2 = *(u32 *)(r6 + 0)", f"r2 &= {rng.choice((15, 8))}"]
    lines += ["r1 = map_fd(RINGFD) ll"] + ([] if size == "var" else [f"r2 = {size}"]) + \
        ["r3 = 0", "call 131", "r9 = r0"]
    if rng.random() < 0.85:
        lines.append(f"if r0 == 0 goto skip{k}")
    lines.append(f"*(u64 *)(r9 + {rng.choice((0, 0, 8))}) = 1")
    end = rng.choice(("submit", "submit", "discard", "twice", "moved", "after", "none"))
    call = f"call {132 if end != 'discard' else 133}"
    if end == "moved":
        lines += ["r1 = r9", "r1 += 8", "r2 = 0", call]
    elif end != "none":
        lines += ["r1 = r9", "r2 = 0", call]
    if end == "twice":
        lines += ["r1 = r9", "r2 = 0", call]
    if end == "after":
        lines.append("*(u64 *)(r9 + 0) = 2")
    return lines + [f"skip{k}:"]


def _loopcb(rng: random.Random, tc: bool, k: int, subs: list[list[str]]) -> list[str]:
    """bpf_loop with a static callback: the count constant or not, the context a stack
    pointer or NULL; the callback returning 0, 1, something else or nothing, using its
    own stack and the caller's through its context."""
    ctx = rng.choice(("stack", "stack", "null"))
    lines = []
    if ctx == "stack":
        lines += ["*(u64 *)(r10 - 24) = 0", "r3 = r10", "r3 += -24"]
    else:
        lines.append("r3 = 0")
    count = rng.choice(("4", "100", "var"))
    if count == "var":
        lines += ["r1 = *(u32 *)(r6 + 0)"]
    else:
        lines.append(f"r1 = {count}")
    lines += [f"r2 = func(@cb{k}) ll", f"r4 = {rng.choice((0, 0, 0, 1))}", "call 181"]
    body = rng.choice([
        ["r0 = 0", "exit"], ["r0 = 1", "exit"], [f"r0 = {rng.choice((2, -1))}", "exit"],
        ["exit"], ["r0 = r1", "exit"], ["r0 = r1", "r0 &= 1", "exit"],
        ["r0 = *(u64 *)(r2 + 0)", "r0 &= 1", "exit"],
        ["r3 = *(u64 *)(r2 + 0)", "r3 += r1", "*(u64 *)(r2 + 0) = r3", "r0 = 0", "exit"],
        ["r1 &= 7", "r2 += r1", "r0 = *(u8 *)(r2 + 0)", "r0 = 0", "exit"],
        ["*(u64 *)(r10 - 8) = r1", "r0 = *(u64 *)(r10 - 8)", "r0 &= 1", "exit"],
        ["r0 = *(u64 *)(r10 - 16)", "r0 = 0", "exit"],
        ["r0 = *(u64 *)(r2 + 8)", "r0 = 0", "exit"],
    ])
    subs.append([f"cb{k}:"] + body)
    return lines


def _iternum(rng: random.Random, tc: bool, k: int) -> list[str]:
    """An open-coded bpf_iter_num loop on the stack: the element NULL-checked or not and
    used as a bounded or unbounded stack index; the iterator destroyed, leaked, never
    created or overwritten."""
    lines = []
    if rng.random() < 0.95:
        lines += ["r1 = r10", "r1 += -24", "r2 = 0", f"r3 = {rng.choice((4, 16, 17))}",
                  "call KFUNC(bpf_iter_num_new)"]
    lines += [f"next{k}:", "r1 = r10", "r1 += -24", "call KFUNC(bpf_iter_num_next)"]
    if rng.random() < 0.93:
        lines.append(f"if r0 == 0 goto done{k}")
    lines.append("r3 = *(u32 *)(r0 + 0)")
    if rng.random() < 0.7:
        lines.append(f"if r3 > {rng.choice((15, 15, 16))} goto done{k}")
    lines += ["r2 = r10", "r2 += -40", "r2 += r3", "*(u8 *)(r2 + 0) = 1"]
    if rng.random() < 0.05:
        lines.append("*(u64 *)(r10 - 24) = 0")
    lines += [f"goto next{k}", f"done{k}:"]
    if rng.random() < 0.9:
        lines += ["r1 = r10", "r1 += -24", "call KFUNC(bpf_iter_num_destroy)"]
    return lines


def _dynptr(rng: random.Random, tc: bool, k: int) -> list[str]:
    """A dynptr from the skb and a slice of it (bpf_dynptr_slice/_rdwr): the dynptr
    made or not, the buffer NULL, large enough or not, the slice NULL-checked or not,
    read or written in and past its length, or kept across a helper that changes the
    packet."""
    lines = []
    if rng.random() < 0.95:
        lines += ["r1 = r6", "r2 = 0", "r3 = r10", "r3 += -16",
                  "call KFUNC(bpf_dynptr_from_skb)"]
    n = rng.choice((4, 8, 14))
    buf = rng.choice(("none", "stack", "short"))
    lines += ["r1 = r10", "r1 += -16", f"r2 = {rng.choice((0, 14))}"]
    if buf == "none":
        lines.append("r3 = 0")
    else:
        lines += ["r3 = r10", f"r3 += -{48 if buf == 'stack' else 36}"]
    lines += ["r4 = *(u32 *)(r6 + 0)", "r4 &= 15"] if rng.random() < 0.1 else [f"r4 = {n}"]
    lines += [f"call KFUNC(bpf_dynptr_slice{rng.choice(('', '_rdwr'))})", "r9 = r0"]
    checked = rng.random() < 0.85
    if checked:
        lines.append(f"if r0 == 0 goto skip{k}")
    if rng.random() < 0.2:
        lines += ["r1 = r6", "r2 = 14", "call 39"]
    off = rng.choice((0, n - 1, n))
    lines.append(rng.choice((f"r0 = *(u8 *)(r9 + {off})", f"*(u8 *)(r9 + {off}) = 1")))
    return lines + ([f"skip{k}:"] if checked else [])


def _make_dynptr(rng: random.Random, kind: str, k: int, at: int) -> list[str]:
    """A dynptr of ``kind`` made at ``r10 - at``: local over a map value (the lookup
    NULL-checked, to ``out``), a ring buffer record (held: released or leaked later), or
    the skb's."""
    if kind == "local":
        return ["*(u32 *)(r10 - 4) = 0", "r1 = map_fd(MAPFD) ll", "r2 = r10", "r2 += -4",
                "call 1", f"if r0 == 0 goto out{k}", "r1 = r0",
                f"r2 = {rng.choice((8, VALUE_SIZE))}", "r3 = 0", "r4 = r10", f"r4 += -{at}",
                f"call {isa.HELPER_IDS['dynptr_from_mem']}"]
    if kind == "ringbuf":
        return ["r1 = map_fd(RINGFD) ll", f"r2 = {rng.choice((8, 16))}", "r3 = 0", "r4 = r10",
                f"r4 += -{at}", f"call {isa.HELPER_IDS['ringbuf_reserve_dynptr']}"]
    return ["r1 = r6", "r2 = 0", "r3 = r10", f"r3 += -{at}", "call KFUNC(bpf_dynptr_from_skb)"]


def _slice_dynptr(rng: random.Random, at: int, n: int) -> list[str]:
    """A slice of ``n`` bytes at offset 0 of the dynptr at ``r10 - at`` into r0:
    bpf_dynptr_data's, or bpf_dynptr_slice(_rdwr)'s without a buffer."""
    how = rng.choice(("data", "bpf_dynptr_slice", "bpf_dynptr_slice_rdwr"))
    if how == "data":
        return ["r1 = r10", f"r1 += -{at}", "r2 = 0", f"r3 = {n}",
                f"call {isa.HELPER_IDS['dynptr_data']}"]
    return ["r1 = r10", f"r1 += -{at}", "r2 = 0", "r3 = 0", f"r4 = {n}",
            f"call KFUNC({how})"]


def _dynptr2(rng: random.Random, tc: bool, k: int) -> list[str]:
    """Slices of local, ring buffer and skb dynptrs (bpf_dynptr_data's and the kfuncs'),
    used after what may end them: a store over the dynptr's slots, the dynptr made again
    over them, its record released; passed to helpers as memory and as a map key; and
    two paths that each make a dynptr of their own, of two kinds or sizes, and slice it,
    joining before the slice is used (regsafe compares a slice's dynptr_id and size)."""
    kinds = ["local", "ringbuf"] + (["skb"] if tc else [])
    n = rng.choice((4, 8))
    if rng.random() < 0.3:
        a, b = rng.choice([x for x in kinds if x != "ringbuf"]), \
            rng.choice([x for x in kinds if x != "ringbuf"])
        lines = ["r3 = *(u32 *)(r6 + 0)", f"if r3 & {rng.choice((1, 4))} goto alt{k}"]
        lines += _make_dynptr(rng, a, k, 24) + _slice_dynptr(rng, 24, n) + ["r9 = r0"]
        lines += ["if r6 == 0 goto +0"] * 2 + ["r8 = 1"] * 8 + [f"goto join{k}", f"alt{k}:"]
        lines += _make_dynptr(rng, b, k, rng.choice((24, 24, 40)))
        lines += _slice_dynptr(rng, 24 if rng.random() < 0.9 else 40, rng.choice((4, 8)))
        lines += ["r9 = r0", f"join{k}:", f"if r9 == 0 goto out{k}"]
        off = rng.choice((0, n - 1, 7))
        return lines + [rng.choice((f"r0 = *(u8 *)(r9 + {off})", f"*(u8 *)(r9 + {off}) = 1")),
                        f"out{k}:"]
    kind = rng.choice(kinds)
    lines = _make_dynptr(rng, kind, k, 24) + _slice_dynptr(rng, 24, n) + ["r9 = r0"]
    checked = rng.random() < 0.9
    if checked:
        lines.append(f"if r9 == 0 goto end{k}")
    # (an unchecked slice given to bpf_csum_diff, whose memory may be NULL, is accepted
    # and may be NULL when run: bpf_dynptr_data's of an skb dynptr always is)
    event = rng.choice(("none", "store", "store", "remake", "remake", "release", "key") +
                       (("mem",) if checked else ()))
    released = False
    if event == "store":
        lines.append(f"*(u{rng.choice((8, 64))} *)(r10 - {rng.choice((24, 16))}) = 1"
                     if rng.random() < 0.8 else f"*(u8 *)(r10 - {rng.choice((17, 9))}) = 1")
    elif event == "remake":
        # over a ring buffer record's dynptr, refused; else one holding no reference, so
        # that the NULL path's release below stays the same
        lines += _make_dynptr(rng, kind if kind == "ringbuf" else
                              rng.choice([x for x in kinds if x != "ringbuf"]), k, 24)
    elif event == "release" and kind == "ringbuf":
        lines += ["r1 = r10", "r1 += -24", "r2 = 0",
                  f"call {isa.HELPER_IDS['ringbuf_submit_dynptr']}"]
        released = True
    elif event == "key":
        lines += ["r1 = map_fd(MAPFD) ll", "r2 = r9", "call 1"]
    elif event == "mem":
        lines += ["r1 = r9", f"r2 = {rng.choice((n, n + 1))}"] + _mem_call(tc)
    off = rng.choice((0, n - 1, n))
    lines.append(rng.choice((f"r0 = *(u8 *)(r9 + {off})", f"*(u8 *)(r9 + {off}) = 1")))
    if released:
        lines += [f"goto out{k}", f"end{k}:"]
    else:
        lines.append(f"end{k}:")
    if kind == "ringbuf" and rng.random() < 0.95:
        release = rng.choice(("ringbuf_submit_dynptr", "ringbuf_discard_dynptr"))
        lines += ["r1 = r10", "r1 += -24", "r2 = 0", f"call {isa.HELPER_IDS[release]}"]
    return lines + [f"out{k}:"]


def _pktjoin(rng: random.Random, tc: bool, k: int) -> list[str]:
    """Two paths joining with a packet pointer known beyond pkt_end on one (the taken
    side of ``if r1 > r8``) and checked on the other, then checked again (or not) and
    read at, before or past its end: a checkpoint at the join may prune only a path
    whose pointer is known the same way (regsafe's [BEYOND|AT]_PKT_END case)."""
    n = rng.choice((8, 14, 20))
    lines = ["r1 = r7", f"r1 += {n}", "r3 = *(u32 *)(r6 + 0)",
             f"if r3 & {rng.choice((1, 2))} goto checked{k}",
             f"if r1 {rng.choice(('>', '>='))} r8 goto join{k}", f"goto skip{k}",
             f"checked{k}:", f"if r1 > r8 goto skip{k}"]
    lines += ["r0 = 0"] * rng.choice((0, 4, 8))
    lines.append(f"join{k}:")
    check = rng.choice(("r1 > r8", "r1 >= r8", "r1 > r8", None))
    if check:
        lines.append(f"if {check} goto skip{k}")
    return lines + [f"r0 = *(u8 *)(r1 + {rng.choice((-1, -n, 0, -1))})", f"skip{k}:"]


def _scrub(rng: random.Random, tc: bool, k: int) -> list[str]:
    """A narrow spill beside zero bytes in one slot, a helper writing over it (bytes one
    at a time, bpf_skb_load_bytes, or clobbered, tc's bpf_check_mtu), then a byte of
    the slot used as a stack offset: the write scrubs the slot, zeroes too
    (scrub_spilled_slot), so the byte is 0..255 and the offset unbounded unless
    masked."""
    size = rng.choice((2, 4, 4, 8))
    lines = ["*(u16 *)(r10 - 20) = 0", f"r1 = {rng.choice((0, 0, 3))}",
             f"*(u{rng.choice((16, 32))} *)(r10 - 24) = r1"]
    if tc and rng.random() < 0.3:
        lines += ["r1 = r6", "r2 = 0", "r3 = r10", "r3 += -24", "r4 = 0", "r5 = 0",
                  "call 163"]
    else:
        lines += ["r1 = r6", "r2 = 0", "r3 = r10", "r3 += -24", f"r4 = {size}", "call 26"]
    lines.append(f"r2 = *(u8 *)(r10 - {rng.choice((19, 20, 20, 22))})")
    if rng.random() < 0.3:
        lines.append("r2 &= 15")
    return lines + ["r3 = r10", "r3 += -64", "r3 += r2", "r0 = *(u8 *)(r3 + 0)"]


def _resolve_funcs(lines: list[str]) -> list[str]:
    """``rN = func(@label) ll`` with the label's offset from the next instruction, as
    BPF_PSEUDO_FUNC's imm is."""
    pcs, pc = {}, 0
    for line in lines:
        if line.endswith(":"):
            pcs[line[:-1]] = pc
        else:
            pc += 2 if line.endswith(" ll") else 1
    out, pc = [], 0
    for line in lines:
        m = re.search(r"func\(@(\w+)\)", line)
        if m:
            line = line.replace(m[0], f"func({pcs[m[1]] - pc - 1})")
        out.append(line)
        if not line.endswith(":"):
            pc += 2 if line.endswith(" ll") else 1
    return out


def _mem_call(tc: bool) -> list[str]:
    """A helper reading memory r1 of size r2: bpf_csum_diff (size or zero) for tc,
    bpf_trace_printk (size) for socket filters, where pyebpf has no csum_diff."""
    return ["r3 = 0", "r4 = 0", "r5 = 0", "call 28"] if tc else ["call 6"]


def _loop2(rng: random.Random, tc: bool, k: int) -> list[str]:
    """Loops: counting down, a bound from the context, nested, a break on a bit, and
    one reading the stack at the counter."""
    shape = rng.randint(0, 4)
    if shape == 0:
        return [f"r4 = {rng.choice((5, 16))}", f"loop{k}:", "r4 -= 1",
                f"if r4 {rng.choice(('s>', '!=', '>'))} {rng.choice((0, -1))} goto loop{k}"]
    if shape == 1:
        # (an unbounded count would run to the 1,000,000 instruction limit: too slow here)
        return ["r3 = *(u32 *)(r6 + 0)", f"r3 &= {rng.choice((7, 63, 255))}", "r4 = 0",
                f"loop{k}:", "r4 += 1", f"if r4 {rng.choice(('<', '<='))} r3 goto loop{k}"]
    if shape == 2:
        return ["r4 = 0", f"outer{k}:", "r5 = 0", f"inner{k}:", "r5 += 1",
                f"if r5 < {rng.choice((3, 4))} goto inner{k}", "r4 += 1",
                f"if r4 < {rng.choice((3, 5))} goto outer{k}"]
    if shape == 3:
        return ["r3 = *(u32 *)(r6 + 0)", f"loop{k}:", "r3 >>= 1",
                f"if r3 & {rng.choice((1, 0x100))} goto done{k}",
                f"if r3 != 0 goto loop{k}" if rng.random() < 0.8 else f"goto loop{k}",
                f"done{k}:"]
    return ["*(u64 *)(r10 - 16) = 0", "*(u64 *)(r10 - 8) = 0", "r4 = 0", f"loop{k}:",
            "r2 = r10", "r2 += -16", "r2 += r4", "r0 = *(u8 *)(r2 + 0)", "r4 += 1",
            f"if r4 {rng.choice(('<', '<=', '!='))} 16 goto loop{k}"]


_KINDS = {"v4": _v4, "ctxw": _ctxw, "pktchg": _pktchg, "sock": _sock, "ring": _ring,
          "iternum": _iternum, "dynptr": _dynptr, "pktjoin": _pktjoin, "scrub": _scrub,
          "dynptr2": _dynptr2}


def generate(rng: random.Random, tc: bool) -> str:
    lines = ["r6 = r1", "r0 = 0"]
    subs: list[list[str]] = []
    sub = rng.random() < 0.2
    if sub:
        # a static subprogram given r1 and a stack pointer, returning a scalar or a map
        # value pointer the caller may use
        lines += ["*(u64 *)(r10 - 8) = 0", "r1 = r6", "r2 = r10", "r2 += -8", "call sub",
                  f"r0 = *(u{rng.choice((8, 32, 64))} *)(r0 + 0)" if rng.random() < 0.3
                  else "r9 = r0"]
    if tc:
        lines += ["r7 = *(u32 *)(r6 + 76)", "r8 = *(u32 *)(r6 + 80)"]
    for k in range(rng.randint(1, 3)):
        lines += _fragment(rng, tc, k, subs)
        if tc and rng.random() < 0.7:
            lines += ["r7 = *(u32 *)(r6 + 76)", "r8 = *(u32 *)(r6 + 80)"]
    if rng.random() < 0.95:
        lines.append("r0 = 0")
    lines.append("exit")
    if sub:
        body = rng.choice([
            ["r0 = *(u64 *)(r2 + 0)", "exit"],
            ["r0 = *(u64 *)(r2 + 8)", "exit"],
            ["r3 = r2", "*(u32 *)(r10 - 4) = 0", "r2 = r10", "r2 += -4",
             "r1 = map_fd(MAPFD) ll", "call 1", "if r0 != 0 goto +1", "r0 = r3", "exit"],
            ["r0 = r2", "exit"],
            ["r0 = *(u32 *)(r1 + 0)", "exit"],
            # writes into the caller's stack, at its slot or past it
            [f"*(u64 *)(r2 + {rng.choice((0, 0, 8))}) = r1", "r0 = 0", "exit"],
            [f"*(u32 *)(r2 + {rng.choice((0, 4))}) = 7", "r0 = *(u64 *)(r2 + 0)", "exit"],
            # a pointer to its own stack, or its own loop
            ["*(u64 *)(r10 - 8) = 0", "r0 = r10", "r0 += -8", "exit"],
            ["r0 = 0", "subloop:", "r0 += 1", f"if r0 < {rng.choice((3, 10))} goto subloop",
             "exit"],
            # a tail call from the subprogram
            ["r2 = map_fd(PROGFD) ll", "r3 = 0", "call 12", "r0 = 0", "exit"],
            # the context's packet, checked there
            ["r2 = *(u32 *)(r1 + 76)", "r3 = *(u32 *)(r1 + 80)", "r4 = r2", "r4 += 4",
             "if r4 > r3 goto +1", f"r0 = *(u32 *)(r2 + {rng.choice((0, 1))})", "r0 = 0",
             "exit"],
        ])
        lines += ["sub:"] + body
    for body in subs:
        lines += body
    return "\n".join(_resolve_funcs(lines))


def _refused_pc(log: str) -> int | None:
    """The instruction an infinite loop repeats at, else the last instruction the
    kernel's log shows being processed."""
    loop = re.search(r"^infinite loop detected at insn (\d+)$", log, re.M)
    if loop:
        return int(loop[1])
    pcs = re.findall(r"^(\d+): \(", log, re.M)
    return int(pcs[-1]) if pcs else None


def _kernel_verdict(code: bytes, prog_type, btf: bool = False):
    """The kernel's reason for refusing ``code``, the instruction and the errno (all
    None when it accepts); ``btf``: loaded with BTF function info."""
    blob, func_info = _btf(code) if btf else (None, b"")
    try:
        with kernel.KernelProgram(code, prog_type, log_level=1, btf=blob,
                                  func_info=func_info):
            return None, None, None
    except errors.KernelError as exc:
        return (str(exc).split("refused the program: ", 1)[-1], _refused_pc(exc.log or ""),
                exc.errno)


@pytest.fixture
def maps():
    """Fresh maps per program type: a program array serves one type."""
    ours = (Map.create("array", 4, VALUE_SIZE, 8), Map.create("prog_array", 4, 4, 4),
            Map.create("ringbuf", 0, 0, 4096))
    theirs = (kernel.KernelMap("array", 4, VALUE_SIZE, 8),
              kernel.KernelMap("prog_array", 4, 4, 4), kernel.KernelMap("ringbuf", 0, 0, 4096))
    yield ours, theirs
    for m in theirs:
        m.close()


def _engine_kfunc_id(name: str) -> int:
    return isa.KFUNC_IDS[name]


def _kernel_kfunc_id(name: str) -> int:
    # the FUNC's id in the running kernel's vmlinux BTF, as libbpf relocates a call (the
    # recorded answers hold the name instead)
    return kfunc_btf_id(name, 0)


def _assemble(text: str, map_, prog_array, ringbuf, kfunc_id) -> bytes:
    """``text`` with its placeholders filled: MAPFD, PROGFD, RINGFD by the maps' fds and
    ``KFUNC(name)`` by ``kfunc_id(name)``."""
    text = re.sub(r"KFUNC\((\w+)\)", lambda m: f"kfunc {kfunc_id(m[1])}", text)
    return asm.assemble(text.replace("MAPFD", str(map_.fd)).replace(
        "PROGFD", str(prog_array.fd)).replace("RINGFD", str(ringbuf.fd)))


def _btf(code: bytes) -> tuple[bytes, bytes]:
    """BTF for ``code`` and its function info: each function (the main program, each
    local call's and callback's target) a static ``int fN(void)``, as a callback's
    lddw needs (check_ld_imm: "missing btf func_info" without)."""
    starts = {0}
    pc = 0
    while pc < len(code) // 8:
        op, regs, _, imm = struct.unpack_from("<BBhi", code, pc * 8)
        if (op, regs >> 4) in ((0x85, 1), (0x18, 4)):
            starts.add(pc + imm + 1)
        pc += 2 if op == 0x18 else 1
    starts = sorted(starts)
    names = b"\0int\0" + b"".join(f"f{i}".encode() + b"\0" for i in range(len(starts)))
    types = struct.pack("<IIII", 1, 1 << 24, 4, 1 << 24 | 32) + struct.pack("<III", 0, 13 << 24, 1)
    at = 5
    for i in range(len(starts)):
        types += struct.pack("<III", at, 12 << 24, 2)
        at += len(f"f{i}") + 1
    header = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(names))
    return (header + types + names,
            b"".join(struct.pack("<II", pc, 3 + i) for i, pc in enumerate(starts)))


def _differences(prog_type, maps, rng: random.Random, count: int) -> list[str]:
    """The programs on which pyebpf and the kernel disagree, each with the program."""
    (ours_map, ours_prog, ours_ring), (their_map, their_prog, their_ring) = maps
    bad = []
    for n in range(count):
        text = generate(rng, prog_type == CLS)
        mine = _assemble(text, ours_map, ours_prog, ours_ring, _engine_kfunc_id)
        theirs = _assemble(text, their_map, their_prog, their_ring, _kernel_kfunc_id)
        btf = "func(" in text
        reason, kpc, kerrno = _kernel_verdict(theirs, prog_type, btf)
        try:
            prog = Program(mine, prog_type, func_info=btf)
            verdict, pc, code = None, None, None
        except errors.VerifierError as exc:
            prog, verdict, pc, code = None, str(exc), exc.pc, exc.errno
        if (reason is None) != (verdict is None):
            bad.append(f"#{n}: kernel {'accepts' if reason is None else 'refuses at ' + str(kpc) + ': ' + reason}; "
                       f"pyebpf {'accepts' if verdict is None else 'refuses: ' + verdict}\n{text}")
            continue
        if reason is not None and kpc is not None and kpc != pc:
            bad.append(f"#{n}: both refuse, kernel at {kpc} ({reason}), pyebpf at {pc} "
                       f"({verdict})\n{text}")
            continue
        if reason is not None and kerrno != code:
            bad.append(f"#{n}: both refuse, the kernel with errno {kerrno} ({reason}), "
                       f"pyebpf with {code} ({verdict})\n{text}")
            continue
        if prog is not None:
            for pkt in PACKETS:
                try:
                    prog.run(pkt)
                except errors.MemoryFault as exc:
                    bad.append(f"#{n}: accepted but faults on {len(pkt)} bytes: {exc}\n{text}")
                    break
    return bad


@pytest.mark.kernel
@pytest.mark.parametrize("prog_type", (SF, CLS), ids=("socket_filter", "sched_cls"))
def test_random_programs_get_the_kernels_verdict_and_accepted_ones_never_fault(prog_type,
                                                                               maps):
    bad = _differences(prog_type, maps, random.Random(f"verifier-{prog_type.name}"), COUNT)
    assert not bad, f"{len(bad)} of {COUNT} differ:\n\n" + "\n\n".join(bad[:8])


@pytest.mark.kernel
@pytest.mark.parametrize("prog_type", (SF, CLS), ids=("socket_filter", "sched_cls"))
def test_a_long_run_of_random_programs_gets_the_kernels_verdicts(prog_type, maps,
                                                                 live_kernel):
    if not LONG_RUN:
        pytest.skip("a long run on demand: PYEBPF_VERIFIER_FUZZ=N programs per type")
    seed = os.environ.get("PYEBPF_VERIFIER_SEED", "long")
    bad = _differences(prog_type, maps, random.Random(f"verifier-{seed}-{prog_type.name}"),
                       LONG_RUN)
    assert not bad, f"{len(bad)} of {LONG_RUN} differ:\n\n" + "\n\n".join(bad[:8])
