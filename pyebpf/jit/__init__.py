"""Native code for programs, with the interpreter's semantics (docs/jit.md).

Needs llvmlite (``pip install 'pyebpf[jit]'``).  ``Program(..., jit=True)`` compiles
a program when it is made; ``jit=False`` keeps it in the interpreter; by default a
program is compiled on a background thread when it starts its ``PYEBPF_JIT_AFTER``-th
run (1000).  ``PYEBPF_JIT=force`` compiles every program before its first run,
``PYEBPF_JIT=off`` none.  Traced runs and runs with coverage on always
interpret.
"""
from __future__ import annotations

import importlib.util
import os
import sys

from .. import _core
from ..errors import LoadError

MODES = ("auto", "force", "off")
DEFAULT_AFTER = 1000
_NEEDS = "the JIT needs llvmlite: pip install 'pyebpf[jit]'"


def _setting(name, default, parse, expected):
    raw = os.environ.get(name, "")
    if not raw:
        return default
    try:
        return parse(raw)
    except ValueError:
        raise LoadError(f"{name}={raw!r}: expected {expected}") from None


def _mode(raw):
    if raw not in MODES:
        raise ValueError(raw)
    return raw


def available() -> bool:
    """Whether llvmlite is installed, so that programs can be compiled."""
    return importlib.util.find_spec("llvmlite") is not None


def compile(*programs) -> None:  # noqa: A001  (what it does, in the domain's word)
    """Compile ``programs`` now, as one unit (or take their code from the process's
    cache); their plain runs start in native code from then on."""
    if not available():
        raise LoadError(_NEEDS)
    from . import engine
    engine.install(*programs)


def wait() -> None:
    """Block until the programs queued for compiling in the background are compiled."""
    if available():
        from . import engine
        engine.wait()


def on_program(program, jit) -> None:
    """The core calls this at the end of ``Program()``."""
    if jit is True:
        compile(program)


def tier(program) -> None:
    """The core calls this when ``program`` starts its ``PYEBPF_JIT_AFTER``-th run
    through ``run()`` (its first when forced, which compiles it before that run)."""
    if MODE == "force":
        compile(program)
        return
    from . import engine
    engine.enqueue(program)


MODE = _setting("PYEBPF_JIT", "auto", _mode, "one of " + ", ".join(MODES))
AFTER = _setting("PYEBPF_JIT_AFTER", DEFAULT_AFTER, int, "a number of runs")
_core._jit = sys.modules[__name__]
if MODE == "force" and not available():
    raise LoadError(f"PYEBPF_JIT=force: {_NEEDS}")
_core._set_jit_after({"auto": AFTER if available() else 0, "force": 1, "off": 0}[MODE])
