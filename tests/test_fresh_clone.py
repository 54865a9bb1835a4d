"""A clone of the repository alone (no ``../shared`` beside it) runs the test suite.

The README's test command is run where nothing but a clone exists: its conformance tests
must skip with one printed reason, and nothing may stop the collection.  The clone is of
this checkout's committed HEAD; its tests import the pyebpf this process imported (the
clone's own sources have no compiled core).
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

import toolpath
from conftest import ROOT, child_python


@pytest.fixture(scope="module")
def lone_clone(tmp_path_factory):
    """A clone of HEAD in an otherwise empty directory, and the environment to run it."""
    if toolpath.find("git") is None:
        pytest.skip("git is not installed")
    if not (ROOT / ".git").exists():
        pytest.skip(f"{ROOT} is not a git checkout")
    clone = tmp_path_factory.mktemp("alone") / "pyebpf"
    # safe.directory, in the clone and in the upload-pack it starts (which does not inherit
    # -c): the user running the tests need not own the checkout (CI runs the suite again
    # as an unprivileged user)
    trust = "safe.directory=*"
    subprocess.run(["git", "-c", trust, "clone", f"--upload-pack=git -c {trust} upload-pack",
                    "--quiet", "--no-hardlinks", str(ROOT), str(clone)],
                   check=True, capture_output=True, timeout=60)
    env, _ = child_python()
    env.pop("PYEBPF_SHARED", None)
    return clone, env


def _pytest(clone, env, *args):
    # run from the clone's parent, not the clone: the clone's pyebpf/ (no compiled core)
    # must not shadow the imported one through the working directory
    return subprocess.run([sys.executable, "-m", "pytest", *args],
                          cwd=clone.parent, env=env, capture_output=True, text=True,
                          timeout=120)


def test_a_lone_clone_collects_every_test(lone_clone):
    clone, env = lone_clone
    out = _pytest(clone, env, "--collect-only", "-q", str(clone / "tests"))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]


def test_a_lone_clone_skips_the_conformance_files_with_one_reason(lone_clone):
    clone, env = lone_clone
    out = _pytest(clone, env, "-q", "-rs", str(clone / "tests" / "test_conformance.py"))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    skipped = [line for line in out.stdout.splitlines() if line.startswith("SKIPPED")]
    where = os.path.join(str(clone.parent), "shared", "bpf_conformance", "tests")
    assert len(skipped) == 1, "\n".join(skipped)
    assert where in skipped[0] and "PYEBPF_SHARED" in skipped[0], skipped[0]
