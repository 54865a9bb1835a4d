"""A network namespace built as a modelled network (pyebpf.Environment) declares it, so
that BPF_PROG_TEST_RUN in it sees the world the engine is given: its devices (loopback
and veth pairs, with their names, MTUs, MACs, addresses, state and forwarding), routes,
neighbours and sockets.  Nothing leaves the namespace: veth pairs join its own devices,
IPv6 addresses skip duplicate address detection and no link-local address is made.

:func:`commands` and :func:`open_sockets` build it from inside (the tests' named
namespaces use them too); :class:`World` is a namespace of its own with no name (no
``ip netns``: it lives while its file descriptor is open), which a thread enters for a
test run (:meth:`World.entered`: setns(2) moves only the calling thread).
:func:`unbuilt` lists what a namespace cannot be given.
"""
from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import os
import shutil
import socket
import subprocess
import threading

from ..environment import Environment, endpoint
from ..errors import EbpfError

__all__ = ["World", "WorldError", "commands", "open_sockets", "unbuilt", "find_tool"]

CLONE_NEWNET = 0x40000000
# Debian installs ip and sysctl in the sbin directories, not on a user's PATH
_SYSTEM_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")


class WorldError(EbpfError):
    """The namespace cannot be built as the environment declares it; the message says
    which part and why."""


def find_tool(name: str) -> str | None:
    """The path of the command ``name``: on PATH, or in the system directories."""
    path = os.environ.get("PATH", os.defpath).split(os.pathsep)
    return shutil.which(name, path=os.pathsep.join(path + [d for d in _SYSTEM_DIRS
                                                            if d not in path]))


def commands(env: Environment, ip: str, sysctl: str) -> list[list[str]]:
    """The ``ip`` and ``sysctl`` commands that make a fresh namespace ``env``'s world:
    devices 2-3, 4-5, ... become veth pairs (WorldError for an odd count)."""
    devs = [d for d in env.devices if d.ifindex != 1]
    if len(devs) % 2:
        raise WorldError("the namespace pairs devices 2-3, 4-5, ... as veth peers; "
                         f"{len(devs)} devices besides loopback cannot be paired")
    cmds = []
    for a, b in zip(devs[::2], devs[1::2]):
        cmds.append([ip, "link", "add", b.name, "type", "veth", "peer", "name", a.name])
    for d in env.devices:
        link = [ip, "link", "set", d.name, "mtu", str(d.mtu)]
        if d.ifindex != 1:
            link += ["address", d.mac.hex(":"), "addrgenmode", "none"]
        cmds.append(link)
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


def open_sockets(env: Environment) -> list[socket.socket]:
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


def unbuilt(env: Environment) -> list[str]:
    """What ``env`` declares that a namespace cannot be given (the kernel picks it, or it
    is not the namespace's): one phrase each, empty when the namespace holds it all."""
    fresh = Environment()
    out = []
    if any(s.cookie for s in env.sockets):
        out.append("socket cookies (the kernel numbers its sockets)")
    if (env.netns_cookie, env.init_netns_cookie) != \
            (fresh.netns_cookie, fresh.init_netns_cookie):
        out.append("namespace cookies (the kernel numbers its namespaces)")
    if (env.cgroups, env.task_cgroup) != (fresh.cgroups, fresh.task_cgroup):
        out.append("cgroups (not the namespace's)")
    if env.socket != fresh.socket:
        out.append("the packet's socket (test_run gives the packet one of its own)")
    if env.syncookie_secret != fresh.syncookie_secret:
        out.append("the SYN cookie secret (the kernel's is random per boot)")
    return out


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET):
        raise WorldError(f"setns(2) into the namespace: {os.strerror(ctypes.get_errno())}")


def _in_thread(fn):
    """What ``fn()`` returns called in a thread of its own (whose namespace it may
    change: the process's other threads keep theirs)."""
    result = {}

    def work():
        try:
            result["made"] = fn()
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
            result["raised"] = exc

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    if "raised" in result:
        raise result["raised"]
    return result["made"]


class World:
    """A new network namespace built as ``env`` declares (see the module); WorldError
    saying what could not be built.  ``sockets``: the open sockets; :meth:`close` ends
    the namespace with them."""

    def __init__(self, env: Environment):
        self.env = env
        self.sockets: list[socket.socket] = []
        self._fd = None
        self._fd = _in_thread(self._unshared)
        try:
            _in_thread(self._build)
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _unshared() -> int:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(CLONE_NEWNET):
            raise WorldError(f"cannot create a network namespace: "
                             f"{os.strerror(ctypes.get_errno())}")
        return os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)

    def _build(self) -> None:
        # in a thread that joined the namespace: the commands it starts are in it too
        _setns(self._fd)
        ip, sysctl = find_tool("ip"), find_tool("sysctl")
        if ip is None or sysctl is None:
            raise WorldError("ip (iproute2) and sysctl (procps) are needed to build it")
        for cmd in commands(self.env, ip, sysctl):
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode:
                raise WorldError(f"{' '.join(cmd[1:])}: {done.stderr.strip()}")
        indexes = [socket.if_nametoindex(d.name) for d in self.env.devices]
        if indexes != [d.ifindex for d in self.env.devices]:
            raise WorldError(f"its devices got ifindexes {indexes}, the environment "
                             f"declares {[d.ifindex for d in self.env.devices]} (veth pairs "
                             "are numbered 2, 3, ... in order)")
        try:
            self.sockets = open_sockets(self.env)
        except OSError as exc:
            raise WorldError(f"cannot open its sockets: {exc}") from None

    @contextlib.contextmanager
    def entered(self):
        """The calling thread in the namespace while the block runs."""
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(self._fd)
            try:
                yield self
            finally:
                _setns(home)
        finally:
            os.close(home)

    def close(self) -> None:
        for sk in self.sockets:
            sk.close()
        self.sockets = []
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
