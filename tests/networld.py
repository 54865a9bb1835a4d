"""A named network namespace built to match a modelled network (pyebpf.Environment),
with the commands and sockets of pyebpf.kernel.world (which tcsim --kernel-check builds
its namespace with), so that BPF_PROG_TEST_RUN in it sees the world the engine is given.
"""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading

import pytest

import toolpath
from netns import in_netns
from pyebpf.environment import Environment
from pyebpf.kernel.world import commands, open_sockets


@contextlib.contextmanager
def world(env: Environment, tag: str):
    """``run(fn)``: ``fn()`` called in a namespace built as ``env`` declares, its sockets
    open (``run.sockets``: Python socket objects, None where answers replay).  Where bpf(2) is refused and the kernel's answers are replayed, ``fn`` runs
    directly: the answers do not depend on where the call is made.  Skips when the
    namespace cannot be made."""
    from conftest import _answers
    if _answers.mode == "replay":
        def replay(fn):
            return fn()
        replay.sockets = None
        yield replay
        return
    ip, = toolpath.need("ip", package="iproute2")
    name = f"pyebpf-{tag}-{os.getpid()}"
    made = subprocess.run([ip, "netns", "add", name], capture_output=True, text=True)
    if made.returncode:
        pytest.skip(f"cannot create a network namespace: {made.stderr.strip()}")
    try:
        sysctl, = toolpath.need("sysctl", package="procps")
        for cmd in commands(env, ip, sysctl):
            done = subprocess.run([ip, "netns", "exec", name, *cmd], capture_output=True,
                                  text=True)
            if done.returncode:
                raise RuntimeError(f"{' '.join(cmd)} in netns {name}: {done.stderr.strip()}")
        indexes = in_netns(name, lambda: [socket.if_nametoindex(d.name) for d in env.devices])
        assert indexes == [d.ifindex for d in env.devices], \
            f"devices got ifindexes {indexes}, the model says {[d.ifindex for d in env.devices]}"
        opened = in_netns(name, lambda: open_sockets(env))
        lock = threading.Lock()

        def run(fn):
            with lock:
                return in_netns(name, fn)
        run.sockets = opened            # the open sockets (none where answers replay)
        try:
            yield run
        finally:
            for sk in opened:
                sk.close()
    finally:
        subprocess.run([ip, "netns", "del", name], capture_output=True)
