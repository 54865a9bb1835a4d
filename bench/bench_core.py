#!/usr/bin/env python3
"""Benchmark pyebpf's interpreter against the kernel's JIT and BPF_PROG_TEST_RUN.

    python bench/bench_core.py [--json PATH] [--quick]

Four hand-built programs (``alu``, ``classifier``, ``csum_loop``, ``empty``) run in
pyebpf's raw mode, typed (the kernel's program type: SCHED_CLS, or SOCKET_FILTER for
``alu``) and, when bpf(2) works here, in the kernel.  Every program's result is checked
against the kernel's first (the bench aborts on a mismatch), then timed in interleaved
rounds (each round times every variant once; the figure is the median over rounds):

* raw ns: ``prog.run(frame)`` of the raw-mode program, called in a Python loop;
* typed ns: ``prog.run(frame)`` of the typed program (a ``__sk_buff`` context);
* many ns: ``prog.run_many(frames)`` of the typed program, per frame;
* kernel JIT ns/run: ``.duration`` of ``test_run(frame, repeat=N)`` (measured in-kernel);
* test_run ns: wall time of one ``KernelProgram.test_run(frame, repeat=1)`` from Python;
* syscall ns: the same BPF_PROG_TEST_RUN as a bare ctypes call with a prebuilt attr.

and the time to build a 100-instruction SCHED_CLS program, ``Program(...)`` beside
the kernel's BPF_PROG_LOAD of it.  See bench/README.md for what each column means.
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import itertools
import json
import os
import platform
import random
import statistics
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout
# The interpreter is what this bench measures: with the tiered JIT on, every program here
# would be compiled after its PYEBPF_JIT_AFTER-th run and the interpreter's columns would
# be the JIT's (bench/bench_jit.py compares the two).
os.environ["PYEBPF_JIT"] = "off"

import pyebpf  # noqa: E402
from pyebpf import isa, kernel  # noqa: E402
from pyebpf._core import Program  # noqa: E402

SCHED_CLS = isa.ProgType.BPF_PROG_TYPE_SCHED_CLS
SOCKET_FILTER = isa.ProgType.BPF_PROG_TYPE_SOCKET_FILTER


# --- a tiny label-resolving emitter (pyebpf.asm may not exist yet) ----------------------
class Reg(int):
    """A register operand; a plain int operand is an immediate."""


r0, r1, r2, r3, r4, r5, r6, r7, r8, r9, r10 = (Reg(i) for i in range(11))


def _alu(op, bits=64):
    cls = isa.BPF_ALU64 if bits == 64 else isa.BPF_ALU

    def emit(dst, x):
        if isinstance(x, Reg):
            return (cls | op | isa.BPF_X, dst, x, 0, 0)
        return (cls | op | isa.BPF_K, dst, 0, 0, x)
    return emit


def _jmp(op):
    def emit(dst, x, target):
        if isinstance(x, Reg):
            return (isa.BPF_JMP | op | isa.BPF_X, dst, x, target, 0)
        return (isa.BPF_JMP | op | isa.BPF_K, dst, 0, target, x)
    return emit


def _ldx(size):
    return lambda dst, src, off: (isa.BPF_LDX | isa.BPF_MEM | size, dst, src, off, 0)


mov, add, and_, or_, xor = (_alu(o) for o in (isa.BPF_MOV, isa.BPF_ADD, isa.BPF_AND,
                                              isa.BPF_OR, isa.BPF_XOR))
lsh, rsh = _alu(isa.BPF_LSH), _alu(isa.BPF_RSH)
jeq, jne, jgt, jlt = (_jmp(o) for o in (isa.BPF_JEQ, isa.BPF_JNE, isa.BPF_JGT, isa.BPF_JLT))
ldxb, ldxh, ldxw = _ldx(isa.BPF_B), _ldx(isa.BPF_H), _ldx(isa.BPF_W)
EXIT = (isa.BPF_JMP | isa.BPF_EXIT, 0, 0, 0, 0)


def ja(target):
    return (isa.BPF_JMP | isa.BPF_JA, 0, 0, target, 0)


def be16(dst):
    return (isa.BPF_ALU | isa.BPF_END | isa.BPF_TO_BE, dst, 0, 0, 16)


def assemble(items) -> bytes:
    """Tuples are instructions, strings are labels; a label as ``off`` is a jump target."""
    labels, insns = {}, []
    for it in items:
        if isinstance(it, str):
            labels[it] = len(insns)
        else:
            insns.append(it)
    return b"".join(
        isa.Insn(code, dst, src, labels[off] - pc - 1 if isinstance(off, str) else off,
                 imm).pack()
        for pc, (code, dst, src, off, imm) in enumerate(insns))


# --- the programs ------------------------------------------------------------------------
def alu_program(n=1500, seed=1) -> bytes:
    """Straight-line ALU mix over r0-r9; imm shifts stay in range, divisors are non-zero."""
    rng = random.Random(seed)
    regs = [Reg(i) for i in range(10)]
    body = [mov(r, rng.randrange(-2**31, 2**31)) for r in regs]
    plain = (isa.BPF_ADD, isa.BPF_SUB, isa.BPF_MUL, isa.BPF_OR, isa.BPF_AND, isa.BPF_XOR,
             isa.BPF_MOV)
    while len(body) < n - 10:
        bits = rng.choice((64, 64, 32))
        dst, roll = rng.choice(regs), rng.random()
        if roll < 0.15:  # shift by an immediate below the operand width
            op = rng.choice((isa.BPF_LSH, isa.BPF_RSH, isa.BPF_ARSH))
            body.append(_alu(op, bits)(dst, rng.randrange(bits)))
        elif roll < 0.18:
            op = rng.choice((isa.BPF_DIV, isa.BPF_MOD))
            body.append(_alu(op, bits)(dst, rng.randrange(1, 1 << 16)))
        elif roll < 0.55:
            body.append(_alu(rng.choice(plain), bits)(dst, rng.randrange(-2**31, 2**31)))
        else:
            body.append(_alu(rng.choice(plain), bits)(dst, rng.choice(regs)))
    body += [xor(r0, r) if i % 2 else add(r0, r) for i, r in enumerate(regs[1:])]
    return assemble(body + [EXIT])


# Both engines hand the body r6 = packet start and r7 = packet end; only this differs.
RAW_PROLOGUE = [mov(r6, r1), mov(r7, r1), add(r7, r2)]          # r1 = data, r2 = length
SKB_PROLOGUE = [ldxw(r6, r1, 76), ldxw(r7, r1, 80)]             # __sk_buff data, data_end

# Classes: 0 malformed/truncated, 1 not IPv4, 2 IPv4 fragment or other protocol,
# 3 TCP to 80/443, 4 TCP SYN, 5 other TCP, 6 UDP DNS, 7 other UDP; +0x10 if VLAN-tagged.
CLASSIFIER_BODY = [
    mov(r0, 0), mov(r1, 0),                     # r0 = class, r1 = VLAN flag
    mov(r3, r6), add(r3, 14), jgt(r3, r7, "out"),
    ldxh(r2, r6, 12),                           # EtherType as a little-endian load sees it
    mov(r8, r6), add(r8, 14),                   # r8 = L3 header
    jne(r2, 0x0081, "untagged"),                # 0x8100: 802.1Q tag
    mov(r3, r6), add(r3, 18), jgt(r3, r7, "out"),
    ldxh(r2, r6, 16), add(r8, 4), mov(r1, 0x10),
    "untagged",
    mov(r0, 1), jne(r2, 0x0008, "out"),         # 0x0800: IPv4
    mov(r0, 0),
    mov(r3, r8), add(r3, 20), jgt(r3, r7, "out"),
    ldxb(r2, r8, 0),                            # version | IHL
    mov(r3, r2), rsh(r3, 4), jne(r3, 4, "out"),
    and_(r2, 0xF), lsh(r2, 2), jlt(r2, 20, "out"),
    mov(r0, 2),
    ldxh(r3, r8, 6), and_(r3, 0xFF3F), jne(r3, 0, "tag"),  # MF or offset: no L4 header
    ldxb(r5, r8, 9),                            # protocol
    jeq(r5, 6, "l4"), jne(r5, 17, "tag"),
    "l4",
    mov(r0, 0),
    mov(r9, r8), add(r9, r2),                   # r9 = L4 header, at IHL * 4
    mov(r3, r9), add(r3, 8), jgt(r3, r7, "out"),
    ldxh(r3, r9, 0), be16(r3), ldxh(r4, r9, 2), be16(r4),   # sport, dport
    jeq(r5, 17, "udp"),
    mov(r2, r9), add(r2, 20), jgt(r2, r7, "out"),
    mov(r0, 3), jeq(r4, 80, "tag"), jeq(r4, 443, "tag"),
    ldxb(r2, r9, 13), and_(r2, 0x12),           # SYN and ACK flags
    mov(r0, 4), jeq(r2, 0x02, "tag"),
    mov(r0, 5), ja("tag"),
    "udp",
    mov(r0, 6), jeq(r4, 53, "tag"), jeq(r3, 53, "tag"),
    mov(r0, 7),
    "tag", or_(r0, r1),
    "out", EXIT,
]

CSUM_ITERS = 700
CSUM_BODY = [  # one's-complement-style sum of 16-bit words, bounds-checked every word
    mov(r0, 0), mov(r8, 0), mov(r9, r6),
    "loop",
    mov(r3, r9), add(r3, 2), jgt(r3, r7, "done"),
    ldxh(r2, r9, 0), add(r0, r2), add(r9, 2),
    add(r8, 1), jlt(r8, CSUM_ITERS, "loop"),    # constant bound keeps the verifier happy
    "done",
    mov(r2, r0), rsh(r2, 16), and_(r0, 0xFFFF), add(r0, r2),
    mov(r2, r0), rsh(r2, 16), and_(r0, 0xFFFF), add(r0, r2),
    xor(r0, 0xFFFF), EXIT,
]

EMPTY = assemble([mov(r0, 0), EXIT])


# --- frames ------------------------------------------------------------------------------
def _ip_csum(hdr: bytes) -> int:
    s = sum(struct.unpack(f"!{len(hdr) // 2}H", hdr))
    s = (s & 0xFFFF) + (s >> 16)
    return ~((s & 0xFFFF) + (s >> 16)) & 0xFFFF


def frame(size, proto=6, sport=40000, dport=443, flags=0x10, vlan=False, ihl=5,
          ethertype=0x0800) -> bytes:
    """An Ethernet (+ optional 802.1Q) / IPv4 / TCP or UDP frame padded to ``size`` bytes."""
    l2 = bytes.fromhex("020000000002" "020000000001")
    l2 += (b"\x81\x00\x00\x64" if vlan else b"") + struct.pack("!H", ethertype)
    if ethertype != 0x0800:
        return l2.ljust(size, b"\0")
    l4 = (struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, flags, 65535, 0, 0)
          if proto == 6 else struct.pack("!HHHH", sport, dport, 8, 0))
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, size - len(l2), 1, 0x4000,
                               64, proto, 0, bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])))
    ip += b"\x01" * (4 * (ihl - 5))             # NOP options
    struct.pack_into("!H", ip, 10, _ip_csum(bytes(ip)))
    return (l2 + ip + l4).ljust(size, b"\0")


FRAME_64, FRAME_1500 = frame(64), frame(1500)
MANY = 10_000                   # frames per run_many call
CHECK_FRAMES = {  # extra classifier paths, checked against the kernel but not timed
    "vlan udp dns": frame(80, proto=17, dport=53, vlan=True),
    "tcp syn :22 +opts": frame(90, dport=22, flags=0x02, ihl=7),
    "tcp ack :22": frame(64, dport=22),
    "udp other": frame(64, proto=17, dport=9999),
    "icmp": frame(64, proto=1),
    "arp": frame(64, ethertype=0x0806),
}


# --- timing ------------------------------------------------------------------------------
def _batch_ns(fn, arg, n):
    it = range(n)
    t0 = time.perf_counter_ns()
    for _ in it:
        fn(arg)
    return time.perf_counter_ns() - t0


def interleaved_ns(fns, batches, batch_ns):
    """{name: median ns per call} of ``fns`` ({name: (fn, arg, calls per fn(arg))}),
    timed in ``batches`` rounds that each time every one once, so load on a shared
    machine falls on all of them alike."""
    sizes = {}
    for name, (fn, arg, per) in fns.items():
        for _ in range(3):
            fn(arg)
        n = 1
        while (t := _batch_ns(fn, arg, n)) < batch_ns / 20:
            n *= 8
        sizes[name] = max(1, int(n * batch_ns / max(t, 1)))
    times = {name: [] for name in fns}
    gc.disable()
    try:
        for _ in range(batches):
            for name, (fn, arg, per) in fns.items():
                times[name].append(_batch_ns(fn, arg, sizes[name]) / sizes[name] / per)
    finally:
        gc.enable()
    return {name: statistics.median(t) for name, t in times.items()}


def kernel_jit_ns(kprog, data, repeat, batches):
    """Median of the kernel's own per-run average over ``batches`` repeat-runs."""
    kprog.test_run(data, repeat=1000)           # warm-up
    return statistics.median(kprog.test_run(data, repeat=repeat, data_out_size=0).duration
                             for _ in range(batches))


class BareTestRun:
    """One BPF_PROG_TEST_RUN through ctypes with a prebuilt attr: the syscall's own cost,
    without the per-call buffer and struct work of ``KernelProgram.test_run``."""

    def __init__(self, kprog, data):
        libc = ctypes.CDLL(None, use_errno=True)
        self.syscall, self.nr = libc.syscall, {"x86_64": 321, "aarch64": 280}[platform.machine()]
        self.syscall.argtypes = (ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_ulong)
        self.data, self.out = data, ctypes.create_string_buffer(len(data))
        self.attr = ctypes.create_string_buffer(144)  # union bpf_attr, test block at 0
        struct.pack_into("<IIIIQQI", self.attr, 0, kprog.fd, 0, len(data), len(data),
                         ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p).value,
                         ctypes.addressof(self.out), 1)
        if self(None) != 0:
            raise OSError(ctypes.get_errno(), "bare BPF_PROG_TEST_RUN failed")

    def __call__(self, _):
        return self.syscall(self.nr, isa.BpfCmd.BPF_PROG_TEST_RUN, self.attr, 144)


# --- main --------------------------------------------------------------------------------
def env_info():
    try:
        jit = Path("/proc/sys/net/core/bpf_jit_enable").read_text().strip()
    except OSError:
        jit = "?"
    return {"pyebpf": pyebpf.__version__, "python": platform.python_version(),
            "kernel": platform.release(), "machine": platform.machine(),
            "cpus": os.cpu_count(), "bpf_jit_enable": jit}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    ap.add_argument("--quick", action="store_true", help="fewer, shorter batches")
    args = ap.parse_args(argv)
    batches, batch_ns = (3, 10e6) if args.quick else (7, 40e6)
    repeat = 10_000 if args.quick else 100_000

    ok, why = kernel.available()
    env = env_info()
    print(f"pyebpf {env['pyebpf']}  Python {env['python']}  {env['machine']}  "
          f"{env['cpus']} CPUs  kernel {env['kernel']}  bpf_jit_enable={env['bpf_jit_enable']}")
    if not ok:
        print(f"kernel oracle unavailable ({why}): pyebpf figures only")

    clf_raw = assemble(RAW_PROLOGUE + CLASSIFIER_BODY)
    clf_skb = assemble(SKB_PROLOGUE + CLASSIFIER_BODY)
    csum_raw = assemble(RAW_PROLOGUE + CSUM_BODY)
    csum_skb = assemble(SKB_PROLOGUE + CSUM_BODY)
    alu = alu_program()
    # (row, pyebpf program, kernel program, kernel prog type, frame)
    cases = [
        ("alu", alu, alu, SOCKET_FILTER, FRAME_64),
        ("classifier/64B", clf_raw, clf_skb, SCHED_CLS, FRAME_64),
        ("classifier/1500B", clf_raw, clf_skb, SCHED_CLS, FRAME_1500),
        ("csum_loop/1500B", csum_raw, csum_skb, SCHED_CLS, FRAME_1500),
        ("empty", EMPTY, EMPTY, SCHED_CLS, FRAME_64),
    ]
    kprogs = {}
    if ok:  # load every program once; a refusal is reported, not fatal
        for name, _, kcode, ptype, _ in cases:
            if kcode not in kprogs:
                try:
                    kprogs[kcode] = kernel.KernelProgram(kcode, ptype, log_level=0)
                except pyebpf.errors.KernelError as exc:
                    kprogs[kcode] = None
                    print(f"kernel refused {name} ({ptype.name}): {exc}")

    # Correctness first: a benchmark of programs that disagree would be meaningless.
    kclf = kprogs.get(clf_skb)
    for label, data in [("64B", FRAME_64), ("1500B", FRAME_1500)] + list(CHECK_FRAMES.items()):
        got = Program(clf_raw).run(data).retval
        if kclf is not None:
            want = kclf.test_run(data).retval
            if got != want:
                sys.exit(f"ABORT: classifier on {label} frame: pyebpf {got:#x} != kernel {want:#x}")
    if Program(clf_raw).run(FRAME_64).retval != 3:
        sys.exit("ABORT: classifier does not classify the 64B TCP/443 frame as 3")

    rows = []
    for name, code, kcode, ptype, data in cases:
        prog = Program(code)
        typed = Program(kcode, ptype)
        res = prog.run(data)
        kp = kprogs.get(kcode)
        if kp is not None:
            kret = kp.test_run(data).retval
            if res.retval & 0xFFFFFFFF != kret:
                sys.exit(f"ABORT: {name}: pyebpf r0 {res.retval:#x} != kernel {kret:#x}")
        if typed.run(data).retval & 0xFFFFFFFF != res.retval & 0xFFFFFFFF:
            sys.exit(f"ABORT: {name}: the typed program disagrees with the raw one")
        frames = [data] * MANY
        fns = {"pyebpf_ns": (prog.run, data, 1), "typed_ns": (typed.run, data, 1),
               "many_ns": (typed.run_many, frames, MANY)}
        if kp is not None:
            # data_out sized to the packet: the kernel copies it back as run() does,
            # without the wrapper's default 65 KiB growth buffer.
            fns["test_run_ns"] = (lambda d, f=kp.test_run: f(d, data_out_size=len(d)), data, 1)
            # The ratio uses the bare syscall: the smaller figure, so the stricter test.
            fns["syscall_ns"] = (BareTestRun(kp, data), None, 1)
        row = {"program": name, "insns": len(code) // 8, "executed": res.insn_count,
               "frame_bytes": len(data), "retval": res.retval,
               **interleaved_ns(fns, batches, batch_ns)}
        row["ns_per_insn"] = row["pyebpf_ns"] / res.insn_count
        row["mpps_many"] = 1e3 / row["many_ns"]
        if kp is not None:
            row["kernel_jit_ns"] = kernel_jit_ns(kp, data, repeat, batches)
            row["vs_jit"] = row["pyebpf_ns"] / max(row["kernel_jit_ns"], 1)
            for col in ("pyebpf", "typed", "many"):
                row[f"{col}_vs_syscall"] = row[f"{col}_ns"] / row["syscall_ns"]
        rows.append(row)
    load = load_times(ok, batches)

    print_table(rows)
    print_load(load)
    by = {r["program"]: r for r in rows}
    targets = [  # (what, figure, goal text, passed)
        # issue 14 item 5: 1.2 ns an instruction on hashmix (the alu program's shape)
        ("interpreter ns/insn on alu", by["alu"]["ns_per_insn"], "<= 1.2",
         by["alu"]["ns_per_insn"] <= 1.2),
        ("classifier/64B run_many Mpps", by["classifier/64B"]["mpps_many"], ">= 6",
         by["classifier/64B"]["mpps_many"] >= 6),
        ("load 100 insns us", load["pyebpf_us"], "<= 100", load["pyebpf_us"] <= 100),
        ("load 100 insns us, first time", load["pyebpf_cold_us"], "<= 100",
         load["pyebpf_cold_us"] <= 100),
    ]
    # issue 14 item 1: 80 and 150 ns a call, and as ratios to the bare syscall (the issue's
    # 1,141 ns: 0.07 and 0.13); a kernel whose syscall is slower passes the ratios sooner
    for what, row, ns in (("empty sched_cls", "empty", 80),
                          ("classifier/64B sched_cls", "classifier/64B", 150)):
        targets.append((f"{what} run() ns", by[row]["typed_ns"], f"<= {ns}",
                        by[row]["typed_ns"] <= ns))
    for what, row, limit in (("empty sched_cls", "empty", 0.13 * 80 / 150),
                             ("classifier/64B sched_cls", "classifier/64B", 0.13)):
        r = by[row]
        targets.append((f"{what} run() / bare syscall", r.get("typed_vs_syscall"),
                        f"<= {limit:.2f}",
                        r["typed_vs_syscall"] <= limit if "typed_vs_syscall" in r else None))
    print()
    print(f"{'target':<48}{'figure':>9}  {'goal':<8}result")
    for what, fig, goal, passed in targets:
        verdict = "n/a (no kernel)" if passed is None else "PASS" if passed else "MISS"
        print(f"{what:<48}{'-' if fig is None else f'{fig:.2f}':>9}  {goal:<8}{verdict}")

    if args.json:
        out = {"env": env, "kernel_available": ok, "kernel_unavailable_reason": why,
               "batches": batches, "kernel_repeat": repeat, "rows": rows, "load": load,
               "targets": [{"target": w, "figure": f, "goal": g, "pass": p}
                           for w, f, g, p in targets]}
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
        print(f"\nwrote {args.json}")


def load_times(kernel_ok, batches):
    """Median us to build a 100-instruction SCHED_CLS program: ``Program(...)`` of the
    same bytes again (the process has verified them: ``pyebpf_us``), of bytes it has not
    seen (the first padding instruction's immediate differs each time, so the verifier
    runs: ``pyebpf_cold_us``), and the kernel's BPF_PROG_LOAD of it (load and close)."""
    code = assemble([mov(r0, 0)] * (100 - len(assemble(SKB_PROLOGUE + CLASSIFIER_BODY)) // 8)
                    + SKB_PROLOGUE + CLASSIFIER_BODY)
    fresh = itertools.count(1)

    def cold(c):
        Program(c[:4] + struct.pack("<i", next(fresh)) + c[8:], SCHED_CLS)
    fns = {"pyebpf_us": (lambda c: Program(c, SCHED_CLS), code, 1),
           "pyebpf_cold_us": (cold, code, 1)}
    if kernel_ok:
        fns["kernel_us"] = (lambda c: kernel.KernelProgram(c, SCHED_CLS, log_level=0).close(),
                            code, 1)
    out = {k: v / 1e3 for k, v in interleaved_ns(fns, batches, 20e6).items()}
    out["insns"] = len(code) // 8
    return out


def print_load(load):
    kern = load.get("kernel_us")
    print(f"\nload {load['insns']} insns: pyebpf {load['pyebpf_us']:.0f} us "
          f"(first time {load['pyebpf_cold_us']:.0f} us)"
          + (f", kernel BPF_PROG_LOAD {kern:.0f} us, ratio {load['pyebpf_us'] / kern:.1f}"
             if kern else ""))


def print_table(rows):
    cols = [("program", "program", "<18", "{}"), ("insns", "insns", ">6", "{}"),
            ("executed", "exec", ">6", "{}"),
            ("kernel_jit_ns", "JIT ns", ">8", "{:.0f}"),
            ("syscall_ns", "syscall", ">8", "{:.0f}"),
            ("test_run_ns", "test_run", ">9", "{:.0f}"),
            ("pyebpf_ns", "raw ns", ">8", "{:.0f}"), ("ns_per_insn", "ns/insn", ">8", "{:.2f}"),
            ("typed_ns", "typed ns", ">9", "{:.0f}"), ("many_ns", "many ns", ">8", "{:.0f}"),
            ("vs_jit", "raw/JIT", ">8", "{:.1f}"),
            ("pyebpf_vs_syscall", "raw/sys", ">8", "{:.2f}"),
            ("typed_vs_syscall", "typed/sys", ">10", "{:.2f}"),
            ("many_vs_syscall", "many/sys", ">9", "{:.3f}"),
            ("mpps_many", "many Mpps", ">10", "{:.2f}")]
    print("".join(f"{head:{align}}" for _, head, align, _ in cols))
    for r in rows:
        print("".join(f"{(fmt.format(r[k]) if k in r else '-'):{align}}"
                      for k, _, align, fmt in cols))


if __name__ == "__main__":
    main()
