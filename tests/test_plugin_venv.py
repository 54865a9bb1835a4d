"""The plugin as users get it: ``pip install '.[test]'`` of a clone of this repository
into a fresh virtual environment, then a throwaway project's tests run by that
environment's pytest, from outside the clone, with no ``-p`` option: the entry point,
the compiled core and the modules must all be in what was installed.  pip builds and
installs as for any user: the build requirements and the dependencies come from the
package index (or pip's cache).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT
from plugin_project import CLASSIFIER_C, TESTS_FAILING, TESTS_PASSING

pytestmark = pytest.mark.venv


def _run(args, **kw):
    done = subprocess.run(args, capture_output=True, text=True, timeout=1200, **kw)
    assert done.returncode == 0, f"{' '.join(map(str, args))}:\n{done.stdout}\n{done.stderr}"
    return done


def test_pip_install_of_a_clone_gives_a_working_plugin(tmp_path, live_kernel):
    # the throwaway project's kernel test asks the running kernel: no recorded answers there
    git = shutil.which("git")
    if git is None or (shutil.which("clang") is None and shutil.which("clang-19") is None):
        pytest.skip("git and clang are needed to clone and to compile the classifier")
    clone, venv, project = tmp_path / "clone", tmp_path / "venv", tmp_path / "project"
    # safe.directory, in the clone and in its upload-pack (which does not inherit -c): the
    # checkout may be another user's (CI runs the suite again as an unprivileged user)
    trust = "safe.directory=*"
    _run([git, "-c", trust, "clone", f"--upload-pack=git -c {trust} upload-pack", "--quiet",
          str(ROOT), str(clone)])
    _run([sys.executable, "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    # an unoptimised compile (setup.py's PYEBPF_QUICK_BUILD): what is installed is the
    # same, built in less time
    _run([python, "-m", "pip", "install", "--quiet", f"{clone}[test]"], cwd=tmp_path,
         env={**os.environ, "PYEBPF_QUICK_BUILD": "1"})
    project.mkdir()
    (project / "classifier.c").write_text(CLASSIFIER_C)
    (project / "test_classifier.py").write_text(TESTS_PASSING)
    (project / "test_wrong.py").write_text(TESTS_FAILING)
    where = _run([python, "-c", "import pyebpf, pyebpf._core as c; print(c.__file__)"],
                 cwd=project).stdout
    assert where.startswith(str(venv)), where
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin:/usr/sbin", "HOME": str(tmp_path)}
    done = subprocess.run([python, "-m", "pytest", "-rs",
                           "--pyebpf-cov=lcov:cov.info"], cwd=project, env=env,
                          capture_output=True, text=True, timeout=600)
    out = done.stdout
    assert "5 passed" in out and "2 failed" in out, out + done.stderr
    assert "pyebpf 0.1.0: kernel profile current" in out
    assert "verdict TC_ACT.SHOT (2) == TC_ACT.OK (0)" in out and "IP.ttl: 63 ≠ 64" in out
    assert (project / "cov.info").read_text().count("end_of_record") == 1
    assert _run([venv / "bin" / "pyebpf", "cov", "report", "cov.info"], cwd=project,
                env=env).stdout.startswith("file")
