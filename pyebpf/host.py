"""Facts about the machine pyebpf runs on that the kernel's behaviour depends on."""
from __future__ import annotations

import contextlib
import functools
import os

_simulated: list[int] = []


@functools.cache
def _possible_ranges() -> tuple[tuple[int, int], ...] | None:
    """The ranges of ``/sys/devices/system/cpu/possible`` ("0-1,4-7"), or None where
    that file is missing (it does not change while the machine runs)."""
    try:
        with open("/sys/devices/system/cpu/possible") as f:
            text = f.read().strip()
    except OSError:
        return None
    return tuple((int(lo), int(hi or lo))
                 for lo, _, hi in (part.partition("-") for part in text.split(",")))


def possible_cpus() -> int:
    """The kernel's ``num_possible_cpus()``: per-CPU maps hold one value per possible
    CPU.  Read from ``/sys/devices/system/cpu/possible`` ("0-1,4-7": every range
    counts); where that file is missing, the number of CPUs ``os.cpu_count()`` sees."""
    ranges = _possible_ranges()
    if ranges is None:
        return os.cpu_count() or 1
    return sum(hi - lo + 1 for lo, hi in ranges)


def nr_cpu_ids() -> int:
    """The kernel's ``nr_cpu_ids``: one past the highest possible CPU's number (the
    bound the verifier gives ``bpf_get_smp_processor_id``), or the count of the
    innermost :func:`simulated_cpus` in effect."""
    return _simulated[-1] if _simulated else _machine_nr_cpu_ids()


@functools.cache
def _machine_nr_cpu_ids() -> int:
    """nr_cpu_ids of the machine (it does not change while the machine runs; the
    verifier asks for it twice a load)."""
    ranges = _possible_ranges()
    return (os.cpu_count() or 1) if ranges is None else max(hi for _, hi in ranges) + 1


def map_cpus() -> int:
    """The CPUs a per-CPU map made now keeps a value for: :func:`possible_cpus`, or the
    count of the innermost :func:`simulated_cpus` in effect."""
    return _simulated[-1] if _simulated else possible_cpus()


@contextlib.contextmanager
def simulated_cpus(n: int):
    """Within it, per-CPU maps are made with ``n`` values (tcsim --cpus N loads its
    programs in it: a machine of N CPUs)."""
    _simulated.append(n)
    try:
        yield
    finally:
        _simulated.pop()
