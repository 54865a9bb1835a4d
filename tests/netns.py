"""A network namespace of a test's own, with a veth pair, for the tests that ask the
kernel's real datapath: frames go from vtx to vrx and nowhere else.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import struct
import subprocess

import pytest

import toolpath

from pyebpf.kernel import world


@contextlib.contextmanager
def veth_pair(tag: str, queues: int = 1):
    """``(name, inside, tc)``: a new namespace ``pyebpf-<tag>-<pid>`` holding a veth pair
    vtx <-> vrx of ``queues`` RX and TX queues each, both up, with IPv6 off and no addresses so that the kernel sends nothing
    of its own; removed, with everything in it, on exit.  ``inside(*cmd)`` runs a command
    in it and returns its stdout (RuntimeError with its stderr when it fails); ``tc`` is
    the path of tc.  Skips when iproute2 is missing or namespaces cannot be made."""
    ip, tc = toolpath.need("ip", "tc", package="iproute2")
    name = f"pyebpf-{tag}-{os.getpid()}"
    made = subprocess.run([ip, "netns", "add", name], capture_output=True, text=True)
    if made.returncode:
        pytest.skip(f"cannot create a network namespace: {made.stderr.strip()}")

    def inside(*cmd):
        done = subprocess.run([ip, "netns", "exec", name, *cmd], capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"{' '.join(cmd)} in netns {name}: {done.stderr.strip()}")
        return done.stdout

    try:
        inside("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
        inside("sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1")
        sizes = ["numrxqueues", str(queues), "numtxqueues", str(queues)]
        inside(ip, "link", "add", "vtx", *sizes, "type", "veth", "peer", "name", "vrx", *sizes)
        inside(ip, "link", "set", "vtx", "up")
        inside(ip, "link", "set", "vrx", "up")
        yield name, inside, tc
    finally:
        subprocess.run([ip, "netns", "del", name], capture_output=True)


def in_netns(name: str, make):
    """What ``make()`` returns when a thread that has joined the namespace ``name`` calls
    it (setns moves only the calling thread): sockets it opens belong to the namespace."""
    def joined():
        with open(f"/var/run/netns/{name}") as fd:
            world._setns(fd.fileno())
        return make()
    return world._in_thread(joined)


BPF_PROG_ATTACH, BPF_TCX_INGRESS, BPF_TCX_EGRESS = 8, 46, 47     # enum bpf_cmd, bpf_attach_type


def tcx_attach(ifname: str, prog_fd: int, ingress: bool = True) -> None:
    """Attach the tc program ``prog_fd`` at ``ifname``'s tcx ingress (or egress) with
    BPF_PROG_ATTACH, in the calling thread's namespace (run it through ``in_netns``); it
    stays until the device goes, with its namespace.  The test keeps the program's maps,
    which iproute2's ``tc filter ... obj`` would make its own."""
    from pyebpf.kernel import sysbpf
    attr = ctypes.create_string_buffer(144)
    struct.pack_into("<IIII", attr, 0, socket.if_nametoindex(ifname), prog_fd,
                     BPF_TCX_INGRESS if ingress else BPF_TCX_EGRESS, 0)
    ret, err = sysbpf._syscall(BPF_PROG_ATTACH, attr)
    if ret < 0:
        raise OSError(err, f"BPF_PROG_ATTACH at {ifname}: {os.strerror(err)}")
