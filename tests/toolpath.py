"""Finding the command-line tools the tests run, the same way in every test.

Debian installs system tools (bpftool, ip, tc) in /usr/sbin and /sbin, which are not on a
normal user's PATH; the tests look there too, so a tool that is installed is found
whoever runs them.
"""
from __future__ import annotations

import os
import shutil

import pytest

_SYSTEM_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")


def find(name: str) -> str | None:
    """The path of the command ``name``: on PATH, or in the system directories."""
    path = os.environ.get("PATH", os.defpath).split(os.pathsep)
    return shutil.which(name, path=os.pathsep.join(path + [d for d in _SYSTEM_DIRS
                                                            if d not in path]))


def need(*names: str, package: str = "") -> list[str]:
    """The paths of ``names``, or skip the test naming the missing ones (and the Debian
    package to install)."""
    found = [find(n) for n in names]
    missing = [n for n, p in zip(names, found) if p is None]
    if missing:
        hint = f" (apt-get install {package})" if package else ""
        pytest.skip(f"not installed: {', '.join(missing)}{hint}")
    return found
