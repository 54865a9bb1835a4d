"""The verifier's processed-instruction and state counts, the kernel's (from its log)
and pyebpf's (from each program ``Program()`` verifies), for the tests that compare
them."""
from __future__ import annotations

import re

import pyebpf
import pyebpf.kernel
from pyebpf import isa, verifier

from recorded_kernel import count_comparison

_STATS = re.compile(r"processed (\d+) insns .*total_states (\d+)")


def kernel_counts(log: str) -> tuple[int, int]:
    """(processed instructions, total states) of a kernel verifier log."""
    return tuple(map(int, _STATS.search(log).groups()))


def count_verifications(monkeypatch) -> list[tuple[int, int]]:
    """From now on (for the test), each program pyebpf verifies appends its (processed
    instructions, total states) to the list returned."""
    counts = []
    real = verifier.check

    def counting(insns, prog_type=None, profile="current", **kw):
        # Program() passes its raw code and no slots when the verifier may remember it
        v = verifier.verify(insns if insns is not None else isa.unpack_program(kw["code"]),
                            prog_type, profile,
                            **{k: w for k, w in kw.items()
                               if k not in ("pointer_kinds", "stack_depths", "code", "packet_pcs")})
        counts.append((v.processed, v.total_states))
        return real(insns, prog_type, profile, **kw)
    monkeypatch.setattr(verifier, "check", counting)
    return counts


def counts_and_the_kernels(data: bytes, monkeypatch) -> tuple[tuple[int, int], tuple[int, int]]:
    """pyebpf's (processed instructions, total states) for the one program of object
    ``data``, and the kernel's for the same object."""
    counts = count_verifications(monkeypatch)
    pyebpf.load(data, pin=False).close()
    with pyebpf.kernel.load_object(data) as kobj:
        (prog,) = kobj.programs.values()
        log = prog.verifier_log
    count_comparison()
    return counts[-1], kernel_counts(log)
