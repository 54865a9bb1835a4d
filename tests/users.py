"""Child Pythons run as two unprivileged local users, for tests of what one user can do
to another's files in a shared temporary directory.  Needs root (to become them)."""
from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from conftest import child_python

VICTIM, ATTACKER = 61001, 61002     # no /etc/passwd entries needed
TESTS = Path(__file__).resolve().parent

_PRELUDE = """\
import json, os, sys
import pyebpf, pyebpf.pinning
import pyebpf.jit   # Program() imports it lazily, later, when the user may no longer read it
from pyebpf.errors import PinError
{imports}
os.setgroups([])
os.setresgid({uid}, {uid}, {uid})
os.setresuid({uid}, {uid}, {uid})


def attempt(fn):
    '''What fn() gave: {{"ok": value}}, or the exception's type, errno and message.'''
    try:
        return {{"ok": fn()}}
    except Exception as exc:
        return {{"error": type(exc).__name__, "errno": getattr(exc, "errno", None),
                "message": str(exc)}}


"""


@pytest.fixture
def shared_tmp(root):
    """A new directory like /tmp (mode 1777) that both users can reach, removed after."""
    base = tempfile.gettempdir()
    for d in [base, *map(str, Path(base).parents)]:
        if not os.stat(d).st_mode & stat.S_IXOTH:
            pytest.skip(f"{d} is not searchable by other users, so no shared directory "
                        "can be made beneath it (set TMPDIR elsewhere)")
    path = tempfile.mkdtemp(prefix="pyebpf-shared-", dir=base)
    os.chmod(path, 0o1777)
    yield path
    shutil.rmtree(path)


def as_user(uid: int, tmp: str, code: str, imports: str = ""):
    """Run ``code`` in a child Python as ``uid`` (group ``uid``, no supplementary groups)
    and return the JSON of what it assigned to ``out``.  Its environment is that of a
    user without HOME or XDG_RUNTIME_DIR, with ``tmp`` as TMPDIR and no PYEBPF_PIN_ROOT.
    The child imports pyebpf (and ``imports``) as root, then drops to ``uid`` as
    ``setpriv --reuid --regid --clear-groups`` would: the interpreter may live where the
    user cannot read it (a pyenv under /root)."""
    env, cwd = child_python()
    for name in ("HOME", "XDG_RUNTIME_DIR", "PYEBPF_PIN_ROOT"):
        env.pop(name, None)
    env.update(TMPDIR=tmp, PYTHONPATH=f"{env['PYTHONPATH']}{os.pathsep}{TESTS}")
    source = (_PRELUDE.format(uid=uid, imports=imports) + textwrap.dedent(code)
              + "\nprint(json.dumps(out))\n")
    done = subprocess.run([sys.executable, "-c", source], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"child as uid {uid} failed:\n{done.stderr}"
    return json.loads(done.stdout.splitlines()[-1])


def plant_link_to_a_trap(tmp: str, path: str) -> str:
    """As ATTACKER, a directory anyone may write to (the trap, in ``tmp``) and a symbolic
    link to it at ``path``; the trap's path."""
    trap = os.path.join(tmp, "trap")
    as_user(ATTACKER, tmp, f"""
os.mkdir({trap!r})
os.chmod({trap!r}, 0o777)
os.symlink({trap!r}, {path!r})
out = None
""")
    return trap


def assert_refused(outcome, *words):
    """``outcome`` (an ``attempt`` of the child's) is a one-line PinError, EPERM,
    whose message has every one of ``words``."""
    assert "error" in outcome, f"not refused: {outcome}"
    assert (outcome["error"], outcome["errno"]) == ("PinError", errno.EPERM), outcome
    message = outcome["message"]
    assert "\n" not in message, message
    missing = [w for w in words if w not in message]
    assert not missing, f"{missing} not in {message!r}"
