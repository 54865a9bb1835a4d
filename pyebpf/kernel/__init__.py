"""The running kernel as an oracle: load raw eBPF with bpf(2), run it with BPF_PROG_TEST_RUN.

Differential tests hold the engine against what this package gets from the kernel.  It
needs Linux (x86_64 or aarch64) and the right to call bpf(2) (root, or CAP_BPF +
CAP_NET_ADMIN); :func:`available` says whether that works here, and why not.  Pure Python
(ctypes): it does not need the compiled core.

Maps are referenced from programs the kernel's way: the caller creates a :class:`KernelMap`
and puts its ``fd`` into an ``lddw`` whose ``src`` is ``isa.BPF_PSEUDO_MAP_FD``; the kernel
resolves it at load time and keeps the map alive for as long as the program lives.

``oracle`` holds programs, maps and 64-bit results; ``objects`` whole ELF objects;
``compare`` runs of a :class:`pyebpf.Program` here and in pyebpf; ``sysbpf`` the bpf(2)
plumbing underneath (``sysbpf.command`` is bpf(2) with a dict attr).
"""
from __future__ import annotations

from ..errors import KernelError
from .compare import KernelResult, cross_check, run
from .objects import KernelObject, load_object
from .oracle import (KernelMap, KernelProgram, KernelRunResult, available, possible_cpus,
                     run_raw64)

__all__ = ["available", "KernelProgram", "KernelRunResult", "KernelMap", "run_raw64",
           "run", "KernelResult", "cross_check", "load_object", "KernelObject",
           "possible_cpus", "KernelError"]
