"""Small skb test programs in kernel asm, and one run of them in pyebpf and in the kernel.

Programs are written as lines of kernel-syntax assembly around a fixed frame: ``r6``
holds the context for the whole program (``prog()`` adds ``r6 = r1``), helpers are
called with ``call()`` and their 64-bit result is put into ``cb[]`` with ``save()``, which
test_run hands back in ctx_out.  ``differential()`` runs one program on one packet in
both backends and requires the same outcome, optionally with ``skb->csum`` checked:
pyebpf's ``csum_complete=True`` against test_run's ``BPF_F_TEST_SKB_CHECKSUM_COMPLETE``
(a kernel run whose sum no longer matches fails with EBADMSG and reports nothing else,
so then only that verdict is compared).
"""
from __future__ import annotations

import errno
from dataclasses import dataclass

import pyebpf
from pyebpf import asm, isa, kernel
from pyebpf.errors import KernelError

import skbdiff
from recorded_kernel import count_comparison
from skbdiff import EXPORTED, engine_fields

CLS, ACT, SF = "sched_cls", "sched_act", "socket_filter"
CB = isa.SK_BUFF_LAYOUT["cb"][0]
DATA, DATA_END = isa.SK_BUFF_LAYOUT["data"][0], isa.SK_BUFF_LAYOUT["data_end"][0]
M64 = (1 << 64) - 1


# --- assembling ----------------------------------------------------------------------

def imm(value: int) -> str:
    """An operand for ``rN = ...``: mov for a sign-extended 32-bit value, lddw otherwise."""
    if -(1 << 31) <= value < (1 << 31):
        return str(value)
    return f"{value & M64:#x} ll"


def setreg(reg: int, value) -> list[str]:
    """``value``: an int, ``"ctx"``, ``"rN"``, or ``("fp", -off)`` for a stack address."""
    if value == "ctx":
        return [f"r{reg} = r6"]
    if isinstance(value, str):
        return [] if value == f"r{reg}" else [f"r{reg} = {value}"]
    if isinstance(value, tuple):
        return [f"r{reg} = r10", f"r{reg} += {value[1]}"]
    return [f"r{reg} = {imm(value)}"]


def call(helper: str, *args) -> list[str]:
    """Load ``args`` into r1.. and call ``helper`` (a helper name, e.g. "csum_diff")."""
    lines = []
    for reg, value in enumerate(args, 1):
        lines += setreg(reg, value)
    return lines + [f"call {helper}"]


def put(off: int, data: bytes) -> list[str]:
    """Write ``data`` onto the stack at r10 + off (off < 0)."""
    return [f"*(u8 *)(r10 - {-(off + k)}) = {b}" for k, b in enumerate(data)]


def save(slot: int, wide: bool = True) -> list[str]:
    """r0 into cb[slot] (and its high half into cb[slot + 1] when ``wide``); uses r7."""
    lines = ["r7 = r0", f"*(u32 *)(r6 + {CB + 4 * slot}) = r7"]
    if wide:
        lines += ["r7 >>= 32", f"*(u32 *)(r6 + {CB + 4 * slot + 4}) = r7"]
    return lines


def stack_to_cb(off: int, slot: int, words: int) -> list[str]:
    """Copy ``words`` u32 from r10 + off into cb[slot...]."""
    out = []
    for k in range(words):
        out += [f"r7 = *(u32 *)(r10 - {-(off + 4 * k)})",
                f"*(u32 *)(r6 + {CB + 4 * (slot + k)}) = r7"]
    return out


def prog(*parts, ret: int | None = 0) -> bytes:
    """Assemble: ``r6 = r1``, the parts (lists of lines), then ``r0 = ret; exit``
    (with ``ret=None`` the program exits with r0 as the last part left it)."""
    lines = ["r6 = r1"]
    for part in parts:
        lines += [part] if isinstance(part, str) else list(part)
    if ret is not None:
        lines.append(f"r0 = {ret}")
    lines.append("exit")
    return asm.assemble("\n".join(lines), "kernel")


def counter(map_fd: int) -> bytes:
    """SCHED_CLS code adding 1 to the u64 at key 0 of the array map ``map_fd``."""
    return asm.assemble(f"""
        r0 = 0
        *(u32 *)(r10 - 4) = r0
        r1 = map_fd({map_fd}) ll
        r2 = r10
        r2 += -4
        call 1
        if r0 == 0 goto +2
        r1 = 1
        lock *(u64 *)(r0 + 0) += r1
        r0 = 0
        exit""", "kernel")


# --- running -----------------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    """One run as both backends can report it.  ``csum_ok`` is None without the
    CHECKSUM_COMPLETE check; when it is False nothing else is known (EBADMSG)."""
    csum_ok: bool | None
    retval: int | None = None          # u32, as test_run reports it
    packet: bytes | None = None        # SOCKET_FILTER: from the L3 header
    skb: dict | None = None            # the fields test_run exports

    @property
    def cb(self) -> list[int]:
        return self.skb["cb"]

    def ret(self, slot: int = 0, wide: bool = True) -> int:
        """A helper's result that save(slot) left in cb[], as a signed value."""
        v = self.cb[slot] | (self.cb[slot + 1] << 32 if wide else 0)
        bits = 64 if wide else 32
        return v - (1 << bits) if v >> (bits - 1) else v


_ENGINE: dict = {}
_KERNEL: dict = {}


def engine_prog(code: bytes, prog_type=CLS, profile: str = "current", verify: bool = True):
    key = (code, prog_type, profile, verify)
    if key not in _ENGINE:
        _ENGINE[key] = pyebpf.Program(code, prog_type, profile=profile, verify=verify)
    return _ENGINE[key]


_KERNEL_CACHED = 128       # loaded programs kept open (each holds a file descriptor)


def kernel_prog(code: bytes, prog_type=CLS):
    key = (code, prog_type)
    if key not in _KERNEL:
        if len(_KERNEL) >= _KERNEL_CACHED:
            for kprog in _KERNEL.values():
                kprog.close()
            _KERNEL.clear()
        _KERNEL[key] = kernel.KernelProgram(code, prog_type)
    return _KERNEL[key]


def run_engine(code: bytes, packet: bytes, prog_type=CLS, cb=None, csum: bool = False,
               profile: str = "current", verify: bool = True, **fields) -> Outcome:
    ctx = {"cb": list(cb or [0] * 5)}
    res = engine_prog(code, prog_type, profile, verify).run(
        packet, **engine_fields(isa.prog_type(prog_type), ctx), csum_complete=csum, **fields)
    if csum and not res.csum_ok:
        return Outcome(False)
    ours = res.skb.as_dict()
    skb = {name: list(ours[name]) if name == "cb" else ours[name] for name in EXPORTED}
    return Outcome(True if csum else None, res.retval & 0xFFFFFFFF, res.data_out, skb)


def run_kernel(code: bytes, packet: bytes, prog_type=CLS, cb=None, csum: bool = False) -> Outcome:
    kprog = kernel_prog(code, prog_type)
    flags = isa.BPF_F_TEST_SKB_CHECKSUM_COMPLETE if csum else 0
    try:
        res = kprog.test_run(packet, ctx={"cb": list(cb or [0] * 5)}, flags=flags)
    except KernelError as exc:
        if csum and exc.errno == errno.EBADMSG:
            return Outcome(False)
        raise
    data = res.data[14:] if isa.prog_type(prog_type) == isa.ProgType.BPF_PROG_TYPE_SOCKET_FILTER \
        else res.data
    skb = {name: res.skb[name] for name in EXPORTED}
    return Outcome(True if csum else None, res.retval, data, skb)


def differential(code: bytes, packet: bytes, prog_type=CLS, cb=None, csum: bool = False) -> Outcome:
    """Run in both; require the same outcome and return it."""
    theirs = run_kernel(code, packet, prog_type, cb, csum)
    ours = run_engine(code, packet, prog_type, cb, csum)
    count_comparison()
    if csum:
        assert ours.csum_ok == theirs.csum_ok, (
            f"skb->csum consistency: engine {ours.csum_ok}, kernel {theirs.csum_ok}")
    assert ours.retval == theirs.retval, f"retval: engine {ours.retval}, kernel {theirs.retval}"
    assert ours.packet == theirs.packet, skbdiff.packet_diff(
        ours.packet, theirs.packet,
        start="network" if isa.prog_type(prog_type) == isa.ProgType.BPF_PROG_TYPE_SOCKET_FILTER
        else "mac")
    if ours.skb is not None:
        for name in EXPORTED:
            assert ours.skb[name] == theirs.skb[name], (
                f"__sk_buff.{name}: engine {ours.skb[name]!r}, kernel {theirs.skb[name]!r}")
    return ours

