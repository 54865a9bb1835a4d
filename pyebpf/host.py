"""Facts about the machine pyebpf runs on that the kernel's behaviour depends on."""
from __future__ import annotations

import contextlib
import functools
import os

_simulated: list[int] = []


def possible_cpus() -> int:
    """The kernel's ``num_possible_cpus()``: per-CPU maps hold one value per possible
    CPU.  Read from ``/sys/devices/system/cpu/possible`` ("0-1,4-7": every range
    counts); where that file is missing, the number of CPUs ``os.cpu_count()`` sees."""
    try:
        with open("/sys/devices/system/cpu/possible") as f:
            text = f.read().strip()
    except OSError:
        return os.cpu_count() or 1
    total = 0
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        total += int(hi or lo) - int(lo) + 1
    return total


def nr_cpu_ids() -> int:
    """The kernel's ``nr_cpu_ids``: one past the highest possible CPU's number (the
    bound the verifier gives ``bpf_get_smp_processor_id``), or the count of the
    innermost :func:`simulated_cpus` in effect."""
    return _simulated[-1] if _simulated else _possible_ids()


@functools.cache
def _possible_ids() -> int:
    try:
        with open("/sys/devices/system/cpu/possible") as f:
            text = f.read().strip()
    except OSError:
        return os.cpu_count() or 1
    return max(int(part.rpartition("-")[2]) for part in text.split(",")) + 1


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
