"""A typed :class:`pyebpf.Program` run in the kernel, and compared with pyebpf's run."""
from __future__ import annotations

from dataclasses import dataclass

from .. import isa
from ..results import describe_value, packet_diff
from .oracle import KernelProgram, _ctx_bytes


@dataclass(frozen=True)
class KernelResult:
    """One run of a typed program in the kernel, in :class:`pyebpf.Result`'s shape where
    the kernel can show it: ``retval`` (signed 32-bit for tc, u32 for socket filters),
    ``data_out`` (the bytes after the run; socket filters from the L3 header), ``data``
    (socket filters: ``data_out`` trimmed to ``retval``; tc: ``data_out``, the kernel does
    not report an accelerated VLAN tag), ``skb`` (the exported ``__sk_buff`` fields) and
    ``duration`` (ns).  Fields the kernel hides (redirect, clones, tunnel metadata,
    trace output) are not here."""
    retval: int
    data: bytes
    data_out: bytes
    skb: dict
    duration: int


def run(program, packet, **fields) -> KernelResult:
    """Load a typed :class:`pyebpf.Program` into this kernel and run it once on
    ``packet`` with BPF_PROG_TEST_RUN; ``fields`` are the ``__sk_buff`` inputs test_run
    accepts (see :func:`cross_check`)."""
    if program.prog_type is None:
        raise ValueError("kernel.run needs a typed program (socket_filter, sched_cls, "
                         "sched_act); raw programs run with run_raw64")
    sf = program.prog_type == isa.ProgType.BPF_PROG_TYPE_SOCKET_FILTER
    with KernelProgram(program.insns, program.prog_type) as kprog:
        theirs = kprog.test_run(bytes(packet), ctx=dict(fields))
    if sf:
        pkt = theirs.data[14:]
        return KernelResult(theirs.retval, pkt[:theirs.retval], pkt, theirs.skb,
                            theirs.duration)
    return KernelResult(theirs.retval_signed, theirs.data, theirs.data, theirs.skb,
                        theirs.duration)


def cross_check(program, packet, **fields) -> list[str]:
    """Run a typed :class:`pyebpf.Program` on ``packet`` in pyebpf and in this kernel.

    ``fields`` are the ``__sk_buff`` inputs both sides accept (those test_run takes:
    mark, priority, ingress_ifindex, ifindex, cb, tstamp, wire_len, gso_segs, gso_size,
    hwtstamp).  Returns the differences as lines — retval, packet bytes, exported fields
    — and an empty list when the two agree.  Socket filters run from the L3 header on
    both sides, as test_run does.
    """
    if program.prog_type is None:
        raise ValueError("cross_check needs a typed program (socket_filter, sched_cls, "
                         "sched_act); raw programs compare with run_raw64")
    _ctx_bytes(fields)                      # refuse what test_run cannot take, by name
    sf = program.prog_type == isa.ProgType.BPF_PROG_TYPE_SOCKET_FILTER
    engine_fields = dict(fields)
    if not engine_fields.get("ifindex"):
        engine_fields["ifindex"] = 1        # test_run's default device is loopback
    if not engine_fields.get("wire_len"):
        engine_fields.pop("wire_len", None)
    if sf:
        engine_fields["sf_start"] = "network"
    packet = bytes(packet)
    ours = program.run(packet, **engine_fields)
    theirs = run(program, packet, **fields)
    return differences(ours, theirs.retval, theirs.data_out, theirs.skb, sf)


def differences(ours, retval: int, data_out: bytes, skb: dict, sf: bool) -> list[str]:
    """How pyebpf's :class:`pyebpf.Result` ``ours`` differs from a run in the kernel that
    returned ``retval`` (a socket filter's u32, a tc program's signed verdict), left the
    packet ``data_out`` (a socket filter's from the network header) and the exported
    ``__sk_buff`` fields ``skb``: one line per difference, none when they agree."""
    out = []
    if sf and ours.retval != retval:
        out.append(f"kept: pyebpf {ours.retval}, kernel {retval}")
    elif not sf and ours.retval != retval:
        out.append(f"verdict: pyebpf {describe_value(ours.verdict)}, kernel "
                   f"{describe_value(retval)}")
    if ours.data_out != data_out:
        if sf:
            out.append(f"packet bytes differ ({len(ours.data_out)} bytes in pyebpf, "
                       f"{len(data_out)} in the kernel)")
        else:
            out += [f"packet: {line}" for line in packet_diff(ours.data_out, data_out)]
    mine = ours.skb.as_dict()
    for name, want in skb.items():
        if name == "gso_size":
            continue                        # test_run echoes it, never updates it
        got = list(mine[name]) if name == "cb" else mine[name]
        if got != want:
            out.append(f"__sk_buff.{name}: pyebpf {got!r}, kernel {want!r}")
    return out
