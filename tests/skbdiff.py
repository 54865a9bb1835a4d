"""Run one skb program on one packet in pyebpf and in the kernel, and compare.

``both(code, prog_type, packet, ctx)`` runs the program in the engine and through
BPF_PROG_TEST_RUN with the same ``__sk_buff`` input fields (the ones test_run accepts:
mark, priority, ingress_ifindex, ifindex, cb, tstamp, wire_len, gso_segs, gso_size,
hwtstamp); ``assert_same`` then requires the same retval, the same packet bytes and
the same exported ``__sk_buff`` fields.  Socket filters run with ``sf_start="network"``
because test_run starts them at L3.
"""
from __future__ import annotations

import pytest

import pyebpf
from pyebpf import kernel

isa = pyebpf.isa
SF = isa.ProgType.BPF_PROG_TYPE_SOCKET_FILTER
CLS = isa.ProgType.BPF_PROG_TYPE_SCHED_CLS
ACT = isa.ProgType.BPF_PROG_TYPE_SCHED_ACT
TYPES = (SF, CLS, ACT)
SIZES = {1: isa.BPF_B, 2: isa.BPF_H, 4: isa.BPF_W, 8: isa.BPF_DW}
R0_0, EXIT = isa.Insn(0xB7, 0, 0, 0, 0), isa.Insn(0x95, 0, 0, 0, 0)
EXPORTED = ("mark", "priority", "ingress_ifindex", "ifindex", "cb", "tstamp", "wire_len",
            "gso_segs", "hwtstamp")


def require_kernel():
    ok, reason = kernel.available()
    if not ok:
        pytest.skip(f"kernel oracle unavailable: {reason}")


def engine_fields(prog_type, ctx: dict | None) -> dict:
    fields = dict(ctx or {})
    if fields.get("ifindex", 0) == 0:
        fields["ifindex"] = 1          # test_run's default device is loopback
    if fields.get("wire_len", 0) == 0:
        fields.pop("wire_len", None)   # 0 means "len" to test_run
    if pyebpf.isa.ProgType(prog_type) == SF:
        fields["sf_start"] = "network"
    return fields


def both(code: bytes, prog_type, packet: bytes, ctx: dict | None = None, *,
         profile: str = "current", **extra):
    """(engine Result, kernel result) for one run of ``code`` on ``packet``."""
    require_kernel()
    prog_type = pyebpf.isa.prog_type(prog_type)
    engine = pyebpf.Program(code, prog_type, profile=profile).run(
        packet, **engine_fields(prog_type, ctx), **extra)
    with kernel.KernelProgram(code, prog_type) as kprog:
        theirs = kprog.test_run(packet, ctx=dict(ctx or {}))
    return engine, theirs


def assert_same(code: bytes, prog_type, packet: bytes, ctx: dict | None = None, **extra):
    """Run in both and require the same retval, packet and exported fields."""
    engine, theirs = both(code, prog_type, packet, ctx, **extra)
    assert engine.retval & 0xFFFFFFFF == theirs.retval, "retval differs"
    kernel_packet = theirs.data[14:] if pyebpf.isa.prog_type(prog_type) == SF else theirs.data
    assert engine.data_out == kernel_packet, "packet bytes differ"
    ours = engine.skb.as_dict()
    for name in EXPORTED:
        want = list(theirs.skb[name]) if name == "cb" else theirs.skb[name]
        got = list(ours[name]) if name == "cb" else ours[name]
        assert got == want, f"__sk_buff.{name} differs: engine {got!r}, kernel {want!r}"
    return engine, theirs
