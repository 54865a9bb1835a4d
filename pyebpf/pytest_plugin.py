"""pytest plugin ``pyebpf`` (entry point ``pytest11``): test tc, socket-filter and
kprobe programs as ordinary tests, without root (a kprobe program runs with
``run(regs=..., machine=...)``, docs/kprobe.md).

Fixtures:
    ``pyebpf_load(path, section=None, *, cflags=(), prog_type=None, profile=None,
    pin=False)`` -> :class:`pyebpf.Object`: a ``.o`` loaded, or a ``.c`` compiled with
    clang (``-O2 -g -target bpf``, the host's include directory, ``cflags``) and cached
    by the bytes of the source, its headers and the flags; relative paths are taken from
    the test file's directory.  Maps are fresh per call; pins only with ``pin=True``.
    ``section`` names the program ``obj.program()`` returns.  No clang: the test is
    skipped, saying so.
    ``pyebpf_kernel``: :mod:`pyebpf.kernel`, the oracle; skipped with the reason where
    bpf(2) is refused.

Marker ``@pytest.mark.pyebpf_kernel_check``: every ``run()`` in the test also runs in
the kernel (:mod:`pyebpf.kernel_check`) and any difference fails it; where bpf(2) is
refused the test runs on pyebpf alone and the report header says so.

Options: ``--pyebpf-trace`` (failing tests show their last runs' executed instructions
with C source lines), ``--pyebpf-cov=FORMAT:FILE`` (``lcov`` or ``cobertura``; BPF C
line and branch coverage, repeatable), ``--pyebpf-profile=current|4.6`` (the kernel
``pyebpf_load`` reproduces).  Failed comparisons of verdicts and packets explain
themselves: verdicts by name, packets field by field, the last instructions executed.

This module imports only pytest at import time; pyebpf's parts load when used.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

_WATCHER = pytest.StashKey()      # the test's RunWatcher
_COLLECTOR = pytest.StashKey()    # the session's coverage Collector
_COV_TARGETS = pytest.StashKey()  # [(format, path)]
_current = None                   # the RunWatcher of the test running now

MARKER = "pyebpf_kernel_check"
_TAIL = 6                         # instructions an assertion failure shows


def pytest_addoption(parser):
    group = parser.getgroup("pyebpf", "pyebpf: BPF programs under test")
    group.addoption("--pyebpf-trace", action="store_true", default=False,
                    help="show the executed instructions, with C source lines, of the "
                         "last runs of each failing test")
    group.addoption("--pyebpf-cov", action="append", default=[], metavar="FORMAT:FILE",
                    help="write BPF C line and branch coverage: lcov:FILE or "
                         "cobertura:FILE (repeatable)")
    group.addoption("--pyebpf-profile", default="current", choices=("current", "4.6"),
                    help="the kernel whose behaviour pyebpf_load reproduces")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", f"{MARKER}: run every pyebpf run() of the test in the kernel too "
                   "(BPF_PROG_TEST_RUN) and fail on any difference")
    targets = []
    for spec in config.getoption("pyebpf_cov"):
        fmt, sep, path = spec.partition(":")
        if not sep or not path or fmt not in ("lcov", "cobertura"):
            raise pytest.UsageError(f"--pyebpf-cov {spec!r}: expected lcov:FILE or "
                                    "cobertura:FILE")
        targets.append((fmt, Path(path).absolute()))
    config.stash[_COV_TARGETS] = targets
    if targets:
        from pyebpf.coverage import Collector
        config.stash[_COLLECTOR] = Collector().start()


def pytest_unconfigure(config):
    collector = config.stash.get(_COLLECTOR, None)
    if collector is not None:
        collector.stop()


def pytest_report_header(config):
    import platform

    import pyebpf
    from pyebpf import bpfcc, kernel
    ok, reason = kernel.available()
    clang = bpfcc.find_clang()
    return [f"pyebpf {pyebpf.__version__}: kernel profile {config.getoption('pyebpf_profile')}"
            f" (running kernel {platform.release()}), "
            + (f"clang {clang}: {bpfcc.clang_version(clang)}" if clang else
               "clang not found (tests compiling .c files are skipped)"),
            "pyebpf: kernel oracle " + ("available" if ok else
                                        f"unavailable ({reason}); {MARKER} tests run on "
                                        "pyebpf alone, kernel check skipped")]


# --- fixtures -------------------------------------------------------------------------

def _watcher(item):
    watcher = item.stash.get(_WATCHER, None)
    if watcher is None:
        from pyebpf.kernel_check import RunWatcher
        watcher = item.stash[_WATCHER] = RunWatcher(kernel=_kernel_check(item))
    return watcher


def _kernel_check(item) -> bool:
    if item.get_closest_marker(MARKER) is None:
        return False
    from pyebpf import kernel
    return kernel.available()[0]


def _cache_dir(config) -> Path:
    cache = getattr(config, "cache", None)      # absent under -p no:cacheprovider
    if cache is not None:
        return cache.mkdir("pyebpf-objects")
    from pyebpf.bpfcc import default_cache_dir
    return default_cache_dir()


@pytest.fixture
def pyebpf_load(request):
    """``pyebpf_load(path, section=None, *, cflags=(), prog_type=None, profile=None,
    pin=False)`` -> pyebpf.Object (see the plugin's docstring)."""
    import pyebpf
    from pyebpf import bpfcc
    watcher = _watcher(request.node)
    loaded = []
    base = Path(request.node.path).parent if getattr(request.node, "path", None) else Path.cwd()

    def load(path, section=None, *, cflags=(), prog_type=None, profile=None, pin=False):
        path = Path(os.fspath(path))
        if not path.is_absolute():
            path = base / path if (base / path).exists() else path.absolute()
        if path.suffix == ".c":
            clang = bpfcc.find_clang()
            if clang is None:
                pytest.skip(f"clang not found: cannot compile {path.name} (install clang, "
                            "or set PYEBPF_CLANG)")
            try:
                obj_path = bpfcc.compile(path, tuple(cflags), clang=clang,
                                         cache_dir=_cache_dir(request.config))
            except (bpfcc.CompileError, FileNotFoundError) as exc:
                pytest.fail(str(exc), pytrace=False)
        else:
            obj_path = path
        try:
            obj = pyebpf.load(obj_path, prog_type=prog_type, pin=pin, name=str(path),
                              profile=profile or request.config.getoption("pyebpf_profile"))
            if section is not None:
                obj.default_program = obj.program(section)
        except (pyebpf.errors.EbpfError, OSError) as exc:
            pytest.fail(f"pyebpf_load: {exc}", pytrace=False)
        loaded.append(obj)
        watcher.register(obj, str(obj_path), path.name)
        return obj

    yield load
    for obj in loaded:
        obj.close()


@pytest.fixture
def pyebpf_kernel():
    """pyebpf.kernel, the oracle; skips the test with the reason where bpf(2) is refused."""
    from pyebpf import kernel
    ok, reason = kernel.available()
    if not ok:
        pytest.skip(f"kernel oracle unavailable: {reason}")
    return kernel


# --- the call phase: runs watched, traces shown ---------------------------------------

def _watched(item) -> bool:
    names = getattr(item, "fixturenames", ())
    return ("pyebpf_load" in names or item.get_closest_marker(MARKER) is not None
            or item.config.getoption("pyebpf_trace"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    global _current
    if not _watched(item):
        return (yield)
    watcher = _watcher(item)
    _current = watcher
    try:
        with watcher:
            return (yield)
    finally:
        _current = None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    watcher = item.stash.get(_WATCHER, None)
    if (call.when == "call" and report.failed and watcher is not None and watcher.last
            and item.config.getoption("pyebpf_trace")):
        parts = []
        for label, res in watcher.last:
            if res.trace is not None:
                parts.append(f"{label}: {res!r}\n{res.trace.listing()}")
        if parts:
            report.sections.append(("pyebpf trace (last runs)", "\n\n".join(parts)))
    return report


# --- explanations ---------------------------------------------------------------------

def pytest_assertrepr_compare(config, op, left, right):
    if op not in ("==", "!="):
        return None
    from pyebpf.isa import TC_ACT
    if isinstance(left, TC_ACT) or isinstance(right, TC_ACT):
        return _explain_verdicts(op, left, right)
    if _is_packet(left) or _is_packet(right):
        if not (_is_packet(left) or isinstance(left, (bytes, bytearray))) or \
                not (_is_packet(right) or isinstance(right, (bytes, bytearray))):
            return None
        return _explain_packets(op, left, right)
    return None


def _is_packet(value) -> bool:
    packet = getattr(sys.modules.get("scapy.packet"), "Packet", None)     # scapy loaded?
    return packet is not None and isinstance(value, packet)


def _explain_verdicts(op, left, right):
    from pyebpf.results import describe_value
    lines = [f"verdict {describe_value(left)} {op} {describe_value(right)}"]
    return lines + _last_run_lines()


def _explain_packets(op, left, right):
    from pyebpf.results import packet_diff
    diff = packet_diff(left, right)
    lines = [f"packets {op}: " + ("they differ in:" if diff else "they are equal")]
    lines += [f"  {d}" for d in diff]
    return lines + _last_run_lines()


def _last_run_lines():
    if _current is None or not _current.last:
        return []
    label, res = _current.last[-1]
    trace = res.trace
    if trace is None or not trace.steps:
        return [f"last run: {label}: {res!r}"]
    outcome = (f"returned {describe(res)}" if res.prog_kind != "raw"
               else f"returned {res.retval:#x}")
    where = trace.listing(last=1, registers=False).splitlines()[0]
    lines = [f"{label} {outcome}" + (f", last at {_short(where[2:])}" if where.startswith(";")
                                     else "")]
    lines.append("last instructions executed:")
    lines += ["  " + _short(line) for line in
              trace.listing(last=_TAIL, registers=False).splitlines()]
    return lines


def describe(res) -> str:
    from pyebpf.results import describe_value
    return describe_value(res.verdict) if res.prog_kind == "tc" else f"{res.kept} bytes kept"


def _short(line: str) -> str:
    """A listing line with its source file's directory left out."""
    head, sep, rest = line.partition(":")
    if "/" in head and sep:
        prefix = "; " if head.startswith("; ") else ""
        return prefix + head.rsplit("/", 1)[1] + sep + rest
    return line


# --- coverage -------------------------------------------------------------------------

def pytest_terminal_summary(terminalreporter, config):
    collector = config.stash.get(_COLLECTOR, None)
    if collector is None:
        return
    from pyebpf import coverage
    cov = collector.coverage()
    terminalreporter.write_sep("-", "pyebpf BPF C coverage")
    terminalreporter.write_line(coverage.summary(cov, config.invocation_params.dir))
    for fmt, path in config.stash[_COV_TARGETS]:
        coverage.write(cov, fmt, path)
        terminalreporter.write_line(f"pyebpf: {fmt} coverage written to {path}")
