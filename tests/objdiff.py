"""Load one compiled object in pyebpf and in the kernel (``pyebpf.kernel.load_object``)
and compare: ``verdicts`` the load verdicts (``refused_alike``: both refusals say one
thing), ``same_retval`` one run's retval, ``program_retvals`` several runs of one
program of an object of several, ``level_2_logs`` both verifier logs at level 2."""
from __future__ import annotations

import pyebpf
from pyebpf import cli
from pyebpf.errors import ElfError, KernelError
from pyebpf.kernel import oracle

from recorded_kernel import count_comparison
from skbdiff import engine_fields


def verdicts(data: bytes, prog_type=None, whole_log: bool = False):
    """(ours, theirs): None for a load, else the refusal's text (the kernel's: its
    verifier's last meaningful line, or with ``whole_log`` its whole log, for a refusal
    whose last line only names what refused)."""
    try:
        pyebpf.load(data, prog_type=prog_type).close()
        ours = None
    except ElfError as exc:
        ours = str(exc)
    try:
        pyebpf.kernel.load_object(data, prog_type=prog_type).close()
        theirs = None
    except KernelError as exc:
        theirs = exc.log if whole_log else str(exc).split("refused the program: ", 1)[-1]
    count_comparison()
    return ours, theirs


def level_2_logs(data: bytes, program: str, monkeypatch, capsys, tmp_path) -> tuple[str, str]:
    """(ours, theirs): ``pyebpf verify --log-level 2`` of the object, and the kernel's
    level-2 verifier log of its ``program``, for tests that compare lines of the two."""
    init = oracle.KernelProgram.__init__
    monkeypatch.setattr(oracle.KernelProgram, "__init__",
                        lambda self, *a, **kw: init(self, *a, **{**kw, "log_level": 2}))
    with pyebpf.kernel.load_object(data) as kobj:
        theirs = kobj.program(program).verifier_log
    count_comparison()
    (tmp_path / "prog.o").write_bytes(data)
    assert cli.main(["verify", "--log-level", "2", str(tmp_path / "prog.o")]) == 0
    return capsys.readouterr().out, theirs


def assert_refused_alike(ours, theirs, message: str) -> None:
    """Both verdicts are refusals saying ``message``; the kernel's is checked first, so
    that a message the kernel does not give fails naming the kernel's."""
    assert theirs is not None and message in theirs, theirs
    assert ours is not None and message in ours, (ours, theirs)


def refused_alike(data: bytes, message: str, prog_type=None) -> None:
    """Both refuse to load the object, each saying ``message``."""
    assert_refused_alike(*verdicts(data, prog_type), message)


def same_retval(data: bytes, packet: bytes, prog_type=None) -> int:
    """Run the object's one program on ``packet`` in both; require the same retval and
    return it."""
    ours, theirs = _both_runs(data, packet, prog_type)
    assert ours.retval & 0xFFFFFFFF == theirs.retval
    return theirs.retval


def _both_runs(data: bytes, packet: bytes, prog_type=None):
    """(pyebpf's Result, the kernel's) of the object's one program run on ``packet``,
    counted as one comparison."""
    obj = pyebpf.load(data, prog_type=prog_type)
    try:
        with pyebpf.kernel.load_object(data, prog_type=prog_type) as kobj:
            (name,) = obj.programs
            prog = obj.program(name)
            ours = prog.run(packet, **engine_fields(prog.prog_type, None))
            theirs = kobj.program(name).test_run(packet)
    finally:
        obj.close()
    count_comparison()
    return ours, theirs


def same_packet(data: bytes, packet: bytes) -> tuple[int, bytes]:
    """Run the object's one tc program on ``packet`` in both; require the same retval and
    the same packet bytes afterwards, and return them."""
    ours, theirs = _both_runs(data, packet)
    assert ours.retval & 0xFFFFFFFF == theirs.retval, (ours.retval, theirs.retval)
    assert ours.data == theirs.data, (ours.data.hex(), theirs.data.hex())
    return theirs.retval, theirs.data


def program_retvals(data: bytes, packet: bytes, runs: int = 1, between=None,
                    program: str = "prog") -> tuple[list[int], list[int]]:
    """The u32 retvals of ``runs`` runs of ``program`` on ``packet``, in pyebpf and in the
    kernel, counted as one comparison; ``between(maps)``, when given, runs after each run
    but the last with the object's maps (pyebpf's, then the kernel's)."""
    obj = pyebpf.load(data)
    try:
        with pyebpf.kernel.load_object(data) as kobj:
            out = []
            for run, maps in ((obj.program(program).run, obj.maps),
                              (kobj.program(program).test_run, kobj.maps)):
                rets = []
                for i in range(runs):
                    rets.append(run(packet).retval & 0xFFFFFFFF)
                    if between is not None and i < runs - 1:
                        between(maps)
                out.append(rets)
    finally:
        obj.close()
    count_comparison()
    return out[0], out[1]
