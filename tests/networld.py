"""A network namespace built to match a modelled network (pyebpf.Environment): its
devices (loopback and veth pairs, with their names, MTUs, MACs, addresses, state and
forwarding), routes, neighbours and sockets, so that BPF_PROG_TEST_RUN in it sees the
world the engine is given.  Nothing leaves the namespace: veth pairs join its own
devices, IPv6 addresses skip duplicate address detection and no link-local address is
made.
"""
from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import subprocess
import threading

import pytest

import toolpath
from netns import in_netns
from pyebpf.environment import Environment, endpoint


def _commands(env: Environment, ip: str) -> list[list[str]]:
    devs = [d for d in env.devices if d.ifindex != 1]
    if len(devs) % 2:
        raise ValueError("the namespace pairs devices 2-3, 4-5, ... as veth peers")
    cmds = []
    for a, b in zip(devs[::2], devs[1::2]):
        cmds.append([ip, "link", "add", b.name, "type", "veth", "peer", "name", a.name])
    for d in env.devices:
        link = [ip, "link", "set", d.name, "mtu", str(d.mtu)]
        if d.ifindex != 1:
            link += ["address", d.mac.hex(":"), "addrgenmode", "none"]
        cmds.append(link)
    sysctl = toolpath.need("sysctl", package="procps")[0]
    for d in env.devices:
        value = "1" if d.forwarding else "0"
        cmds.append([sysctl, "-qw", f"net.ipv4.conf.{d.name}.forwarding={value}"])
        cmds.append([sysctl, "-qw", f"net.ipv6.conf.{d.name}.forwarding={value}"])
    for d in env.devices:
        if d.up:
            cmds.append([ip, "link", "set", d.name, "up"])
        for a in d.addresses:
            iface = ipaddress.ip_interface(a)
            if d.ifindex == 1 and str(iface) in ("127.0.0.1/8", "::1/128"):
                continue                    # loopback's own, made when it comes up
            cmds.append([ip, "addr", "add", a, "dev", d.name]
                        + (["nodad"] if iface.version == 6 else []))
    for r in env.routes:
        net = ipaddress.ip_network(r.dst)
        cmd = [ip, "-6" if net.version == 6 else "-4", "route", "add", r.type, r.dst]
        if r.via:
            cmd += ["via", r.via]
        if r.dev:
            cmd += ["dev", r.dev]
        if r.metric is not None:
            cmd += ["metric", str(r.metric)]
        if r.table != 254:
            cmd += ["table", str(r.table)]
        if r.src:
            cmd += ["src", r.src]
        if r.mtu:
            cmd += ["mtu", "lock", str(r.mtu)]
        cmds.append(cmd)
    for n in env.neighbours:
        cmds.append([ip, "neigh", "replace", n.addr, "lladdr", n.lladdr.hex(":"), "dev", n.dev,
                     "nud", n.state])
    return cmds


def _open_sockets(env: Environment) -> list[socket.socket]:
    """The declared sockets, opened in the calling thread's namespace; an established
    TCP socket is the accepted end of a connection to a listener declared before it, and
    its client end must be declared too (the kernel has both)."""
    opened = []
    listeners = {}
    connected = set()
    for s in env.sockets:
        local, lport = endpoint(s.local, "local")
        family = socket.AF_INET if local.version == 4 else socket.AF_INET6
        kind = socket.SOCK_STREAM if s.protocol == "tcp" else socket.SOCK_DGRAM
        if s.protocol == "tcp" and s.remote is not None:
            # both ends of a connection are declared: the first makes it
            remote, rport = endpoint(s.remote, "remote")
            if (s.remote, s.local) in connected:
                continue
            connected.add((s.local, s.remote))
            client = socket.socket(family, kind)
            client.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            client.bind((str(remote), rport))
            client.connect((str(local), lport))
            accepted, _ = listeners[(str(local), lport)].accept()
            opened += [client, accepted]
            continue
        sk = socket.socket(family, kind)
        sk.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if s.reuseport:
            sk.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sk.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(s.v6only))
        if s.dev:
            sk.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, s.dev.encode())
        if s.mark:
            sk.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, s.mark)
        if s.priority:
            sk.setsockopt(socket.SOL_SOCKET, socket.SO_PRIORITY, s.priority)
        sk.bind((str(local), lport))
        if s.protocol == "tcp":
            sk.listen(8)
            listeners[(str(local), lport)] = sk
        elif s.remote is not None:
            remote, rport = endpoint(s.remote, "remote")
            sk.connect((str(remote), rport))
        opened.append(sk)
    return opened


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
        for cmd in _commands(env, ip):
            done = subprocess.run([ip, "netns", "exec", name, *cmd], capture_output=True,
                                  text=True)
            if done.returncode:
                raise RuntimeError(f"{' '.join(cmd)} in netns {name}: {done.stderr.strip()}")
        indexes = in_netns(name, lambda: [socket.if_nametoindex(d.name) for d in env.devices])
        assert indexes == [d.ifindex for d in env.devices], \
            f"devices got ifindexes {indexes}, the model says {[d.ifindex for d in env.devices]}"
        opened = in_netns(name, lambda: _open_sockets(env))
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
