"""The public bpf_conformance suite, every file, run through pyebpf.

CPU version v4 and the ``callx`` group are included: all 313 files must pass.  Where the
suite's files are absent (a clone without ``../shared``) the tests that read them skip
with one reason (``conftest.conformance_dir``); the plugin's protocol tests still run.
"""
import subprocess
import sys

import pytest

from pyebpf import conformance
from conftest import CONFORMANCE_FILES, child_python, conformance_params


def test_the_suite_is_complete(conformance_dir):
    assert len(CONFORMANCE_FILES) == 313, f"expected 313 conformance files in {conformance_dir}"


@pytest.mark.parametrize("path", conformance_params(), ids=lambda p: p.stem)
def test_conformance_file(path, conformance_dir):
    case = conformance.parse(path.read_text())
    assert case.error is None, "no file of the suite expects an error"
    assert conformance.run(case) == case.result


def _plugin(program_hex, *args):
    # the runner's way: memory hex as argv[1], program hex on stdin, r0 hex on stdout;
    # the child imports the very pyebpf this test process imported
    env, cwd = child_python(PYTHONWARNINGS="error")
    return subprocess.run([sys.executable, "-m", "pyebpf.conformance", *args],
                          input=program_hex + "\n", capture_output=True, text=True,
                          timeout=60, cwd=cwd, env=env)


def _runner_hex(data: bytes) -> str:
    return "".join(f"{b:02x}  " for b in data)


def test_plugin_speaks_the_runner_protocol(conformance_dir):
    case = conformance.parse((conformance_dir / "mem-len.data").read_text())
    out = _plugin(_runner_hex(case.program()), _runner_hex(case.mem))
    assert (out.returncode, out.stdout) == (0, "8\n")


def test_plugin_runs_without_memory(conformance_dir):
    case = conformance.parse((conformance_dir / "callx.data").read_text())
    out = _plugin(_runner_hex(case.program()))
    assert (out.returncode, out.stdout) == (0, "2\n")


def test_plugin_reports_a_bad_program_on_one_line_and_exits_1():
    out = _plugin(_runner_hex(bytes.fromhex("ff00000000000000")))
    assert out.returncode == 1
    assert len(out.stdout.splitlines()) == 1 and "unknown opcode 0xff" in out.stdout


def test_plugin_refuses_unknown_options():
    out = _plugin("9500000000000000", "--jit")
    assert out.returncode == 1 and "--jit" in out.stdout
