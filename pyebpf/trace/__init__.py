"""Tracing programs (BPF_PROG_TYPE_KPROBE): the modelled machine they run on
(:class:`Machine`, :class:`Task`), ``struct pt_regs`` (:func:`pt_regs`) and the replay of
an event stream (:mod:`pyebpf.trace.replay`).  The helpers themselves are C, compiled
into the core from ``tracing.pxi``; docs/kprobe.md describes it all."""
from .machine import Machine, MachineSpecError, Task, pt_regs, registers

__all__ = ["Machine", "MachineSpecError", "Task", "pt_regs", "registers"]
