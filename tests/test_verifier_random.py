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
helper arguments good and bad, loops of several shapes, subprograms), and an exit.

:data:`COUNT` programs per program type run on every run, against the live kernel or
its recorded answers; ``PYEBPF_VERIFIER_FUZZ=N`` adds a long run of N other programs
per type against the live kernel only.
"""
from __future__ import annotations

import os
import random
import re

import pytest

from pyebpf import Map, Program, asm, errors, kernel
from skbdiff import CLS, SF

COUNT = 500
LONG_RUN = int(os.environ.get("PYEBPF_VERIFIER_FUZZ", "0"))
VALUE_SIZE = 16
PACKETS = [bytes(range(256))[:n] for n in (14, 34, 60, 64, 128, 256)]


def _fragment(rng: random.Random, tc: bool, k: int) -> list[str]:
    """Assembler lines of one fragment; labels are suffixed with ``k``."""
    kind = rng.choice(["pkt", "map", "stack", "ptr", "loop", "helper", "scalar", "uninit",
                       "ctx", "pktvar", "spill", "alu32", "tail", "mix", "mix", "partial",
                       "partial", "ptrkind", "ptrkind", "args", "args", "loop2", "atomic"]
                      if tc else
                      ["map", "stack", "ptr", "loop", "helper", "scalar", "uninit", "ctx",
                       "alu32", "tail", "mix", "mix", "partial", "partial", "ptrkind",
                       "args", "args", "loop2", "atomic"])
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


def generate(rng: random.Random, tc: bool) -> str:
    lines = ["r6 = r1", "r0 = 0"]
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
        lines += _fragment(rng, tc, k)
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
    return "\n".join(lines)


def _refused_pc(log: str) -> int | None:
    """The instruction an infinite loop repeats at, else the last instruction the
    kernel's log shows being processed."""
    loop = re.search(r"^infinite loop detected at insn (\d+)$", log, re.M)
    if loop:
        return int(loop[1])
    pcs = re.findall(r"^(\d+): \(", log, re.M)
    return int(pcs[-1]) if pcs else None


def _kernel_verdict(code: bytes, prog_type):
    """The kernel's reason for refusing ``code``, the instruction and the errno (all
    None when it accepts)."""
    try:
        with kernel.KernelProgram(code, prog_type, log_level=1):
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


def _differences(prog_type, maps, rng: random.Random, count: int) -> list[str]:
    """The programs on which pyebpf and the kernel disagree, each with the program."""
    (ours_map, ours_prog, ours_ring), (their_map, their_prog, their_ring) = maps
    bad = []
    for n in range(count):
        text = generate(rng, prog_type == CLS)
        mine = asm.assemble(text.replace("MAPFD", str(ours_map.fd))
                            .replace("PROGFD", str(ours_prog.fd))
                            .replace("RINGFD", str(ours_ring.fd)))
        theirs = asm.assemble(text.replace("MAPFD", str(their_map.fd))
                              .replace("PROGFD", str(their_prog.fd))
                              .replace("RINGFD", str(their_ring.fd)))
        reason, kpc, kerrno = _kernel_verdict(theirs, prog_type)
        try:
            prog = Program(mine, prog_type)
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
