"""pyebpf: run Linux tc, socket-filter and kprobe eBPF programs in user space, as the kernel
would."""
from __future__ import annotations

from . import errors, isa
from .errors import MapError
from .isa import TC_ACT

__all__ = ["Program", "Result", "Map", "MapIds", "MapError", "Trace", "SKB_FIELDS", "BUILTIN_HELPERS",
           "load", "Object", "Environment", "Machine", "Task", "bpf", "pin_root", "TC_ACT", "errors", "isa", "asm",
           "kernel", "elf", "btf", "verifier", "strategies", "coverage", "KTIME_START",
           "KTIME_RUN_GAP", "run_timers"]
__version__ = "0.1.0"

_FROM_CORE = ("Program", "Result", "Map", "MapIds", "Trace", "SKB_FIELDS", "BUILTIN_HELPERS",
              "KTIME_START", "KTIME_RUN_GAP", "run_timers", "crypto_params")
_FROM_MODULE = {"bpf": "syscall", "pin_root": "pinning", "load": "loader", "Object": "loader",
                "Environment": "environment", "Machine": "trace", "Task": "trace"}


def __getattr__(name: str):
    # The compiled core is imported on first use so that the pure-Python modules
    # (isa, asm, kernel) work even where the extension was not built.
    if name in _FROM_CORE:
        try:
            from . import _core, jit, pinning  # noqa: F401  (both set themselves in the core)
        except ImportError as exc:
            raise ImportError(
                "pyebpf's compiled core (pyebpf._core) is not built: install the package "
                "with `pip install .` (or `python setup.py build_ext --inplace` in a "
                f"checkout) — {exc}") from exc
        return getattr(_core, name)
    if name in _FROM_MODULE:
        import importlib
        return getattr(importlib.import_module(f".{_FROM_MODULE[name]}", __name__), name)
    if name in ("asm", "kernel", "syscall", "pinning", "elf", "btf", "loader", "mapview",
                "verifier", "conformance", "strategies", "coverage", "results",
                "environment", "trace"):
        import importlib
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'pyebpf' has no attribute {name!r}")
