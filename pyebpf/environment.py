"""The modelled network around a packet: the devices of its network namespace, the
namespace's cookie, the cgroup hierarchy, and the socket the packet belongs to.

One :class:`Environment` is given to ``Program.run(..., env=)``, ``pyebpf.load(...,
env=)`` (every run of the object's programs) and ``tcsim --env net.toml``; the helpers
that consult the world read it (``bpf_check_mtu``, ``bpf_get_netns_cookie``,
``bpf_get_socket_cookie``, ``bpf_get_socket_uid``, ``bpf_skb_cgroup_id``,
``bpf_skb_ancestor_cgroup_id``, ``bpf_skb_cgroup_classid``, ``bpf_get_current_cgroup_id``,
``bpf_get_current_ancestor_cgroup_id``; ``bpf_clone_redirect`` finds
its target among the devices).  The default is what ``BPF_PROG_TEST_RUN`` shows in a
fresh network namespace: loopback only (ifindex 1, MTU 65536, down), the packet owned
by a socket of uid 0 in the root cgroup.  An Environment is immutable.  The TOML form
is described in docs/environment.md.
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field

from .errors import EbpfError

# cgroup_ancestor() reads cgrp->ancestors[level]; deeper trees than this are not modelled
MAX_CGROUP_LEVEL = 31
IFNAMSIZ = 16
MAX_MTU = 65536                 # loopback's (LOOPBACK_MTU 64 KiB)


class EnvironmentSpecError(EbpfError, ValueError):
    """A network model that cannot be used; the message names the file and the key."""


def mac_bytes(value) -> bytes:
    """Six bytes, from bytes or "aa:bb:cc:dd:ee:ff"."""
    raw = value
    if isinstance(value, str):
        try:
            raw = bytes.fromhex(value.replace(":", "").replace("-", ""))
        except ValueError:
            raw = b""
    if not isinstance(raw, (bytes, bytearray)) or len(raw) != 6:
        raise EnvironmentSpecError(f"mac: expected six bytes as aa:bb:cc:dd:ee:ff, "
                                   f"got {value!r}")
    return bytes(raw)


@dataclass(frozen=True)
class Device:
    """A network device: ``ifindex``, ``name``, ``mtu``, ``mac`` (six bytes or
    ``"aa:bb:..."``) and whether it is ``up``.  Its hardware header is Ethernet's 14
    bytes (loopback's too)."""
    ifindex: int
    name: str
    mtu: int = 1500
    mac: bytes = bytes(6)
    up: bool = True

    def __post_init__(self):
        try:
            object.__setattr__(self, "mac", mac_bytes(self.mac))
        except EnvironmentSpecError as exc:
            raise EnvironmentSpecError(f"device {self.name!r}: {exc}") from None


@dataclass(frozen=True)
class PacketSocket:
    """The socket the packet belongs to (``skb->sk``): its ``cookie``, ``uid``, the
    ``cgroup`` (a path of :attr:`Environment.cgroups`) it was created in and that
    cgroup's net_cls ``classid``."""
    cookie: int = 1
    uid: int = 0
    cgroup: str = "/"
    classid: int = 0


LOOPBACK = Device(1, "lo", 65536, bytes(6), False)


@dataclass(frozen=True)
class Environment:
    """The network a packet runs in (see the module's description).

    ``devices``: :class:`Device` values; ``cgroups``: path -> cgroup id pairs, "/" the
    root, every path's parent declared too; ``netns_cookie``: the cookie of the
    namespace the packet's socket lives in; ``init_netns_cookie``: the initial
    namespace's (what ``bpf_get_netns_cookie`` reports without a socket);
    ``socket``: a :class:`PacketSocket`, or None for a packet without one (received
    traffic at tc ingress); ``task_cgroup``: the cgroup of the current task
    (``bpf_get_current_cgroup_id``), a path of ``cgroups``."""
    devices: tuple = (LOOPBACK,)
    cgroups: tuple = (("/", 1),)
    netns_cookie: int = 1
    init_netns_cookie: int = 1
    socket: PacketSocket | None = field(default_factory=PacketSocket)
    task_cgroup: str = "/"

    def __post_init__(self):
        check(self, "Environment")

    def device(self, ifindex: int) -> Device | None:
        for d in self.devices:
            if d.ifindex == ifindex:
                return d
        return None

    def cgroup_ancestry(self, path: str) -> list[int]:
        """The ids of the cgroups from the root down to ``path`` (index = level)."""
        ids = dict(self.cgroups)
        parts = [p for p in path.split("/") if p]
        return [ids["/" + "/".join(parts[:k])] for k in range(len(parts) + 1)]

    @classmethod
    def from_toml(cls, path) -> "Environment":
        """Read a TOML file (docs/environment.md); errors name the file and the key."""
        where = os.fspath(path)
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except OSError as exc:
            raise EnvironmentSpecError(f"{where}: cannot read: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise EnvironmentSpecError(f"{where}: not TOML: {exc}") from None
        return cls.from_dict(data, where)

    @classmethod
    def from_dict(cls, data: dict, where: str = "environment") -> "Environment":
        """The same schema as the TOML file, as a dict."""
        unknown = set(data) - {"devices", "cgroups", "netns_cookie", "init_netns_cookie",
                               "socket", "task_cgroup"}
        if unknown:
            raise EnvironmentSpecError(f"{where}: unknown key {sorted(unknown)[0]!r}; known: "
                                       "devices, cgroups, netns_cookie, init_netns_cookie, "
                                       "socket, task_cgroup")
        kw = {}
        if "devices" in data:
            kw["devices"] = tuple(_device(d, f"{where}: devices[{k}]")
                                  for k, d in enumerate(_list(data["devices"],
                                                              f"{where}: devices")))
        if "cgroups" in data:
            groups = data["cgroups"]
            if not isinstance(groups, dict):
                raise EnvironmentSpecError(f"{where}: cgroups must be a table of path = id")
            kw["cgroups"] = tuple(groups.items())
        for key in ("netns_cookie", "init_netns_cookie", "task_cgroup"):
            if key in data:
                kw[key] = data[key]
        if "socket" in data:
            kw["socket"] = _socket(data["socket"], f"{where}: socket")
        try:
            return cls(**kw)
        except EnvironmentSpecError as exc:
            raise EnvironmentSpecError(f"{where}: {str(exc).split(': ', 1)[1]}") from None


def _list(value, where):
    if not isinstance(value, list):
        raise EnvironmentSpecError(f"{where} must be an array of tables")
    return value


def _table(value, where, keys):
    if not isinstance(value, dict):
        raise EnvironmentSpecError(f"{where} must be a table")
    unknown = set(value) - set(keys)
    if unknown:
        raise EnvironmentSpecError(f"{where}: unknown key {sorted(unknown)[0]!r}; known: "
                                   + ", ".join(keys))
    return value


def _device(value, where) -> Device:
    d = _table(value, where, ("ifindex", "name", "mtu", "mac", "up"))
    for key in ("ifindex", "name"):
        if key not in d:
            raise EnvironmentSpecError(f"{where}: {key} is required")
    try:
        return Device(**{**d, "mac": mac_bytes(d.get("mac", bytes(6)))})
    except EnvironmentSpecError as exc:
        raise EnvironmentSpecError(f"{where}.{exc}") from None
    except TypeError as exc:
        raise EnvironmentSpecError(f"{where}: {exc}") from None


def _socket(value, where) -> PacketSocket | None:
    if value is False:
        return None
    s = _table(value, where, ("cookie", "uid", "cgroup", "classid"))
    return PacketSocket(**s)


def _int(value, name, lo, hi):
    if type(value) is not int or not lo <= value <= hi:
        raise EnvironmentSpecError(f"{name}: expected an integer in {lo}..{hi}, got {value!r}")


def check(env: Environment, where: str) -> None:
    """Refuse an inconsistent model with one line naming the key."""
    names, indexes = set(), set()
    for k, d in enumerate(env.devices):
        at = f"{where}: devices[{k}]"
        if not isinstance(d, Device):
            raise EnvironmentSpecError(f"{at}: expected a Device, got {type(d).__name__}")
        _int(d.ifindex, f"{at}.ifindex", 1, 0x7fffffff)
        _int(d.mtu, f"{at}.mtu", 0, MAX_MTU)
        if not isinstance(d.name, str) or not 0 < len(d.name.encode()) < IFNAMSIZ \
                or "/" in d.name or d.name.strip() != d.name:
            raise EnvironmentSpecError(f"{at}.name: expected an interface name of 1..15 "
                                       f"bytes, got {d.name!r}")
        if not isinstance(d.up, bool):
            raise EnvironmentSpecError(f"{at}.up: expected true or false, got {d.up!r}")
        if d.ifindex in indexes:
            raise EnvironmentSpecError(f"{at}.ifindex: {d.ifindex} is declared twice")
        if d.name in names:
            raise EnvironmentSpecError(f"{at}.name: {d.name!r} is declared twice")
        indexes.add(d.ifindex)
        names.add(d.name)
    ids = {}
    for path, cid in env.cgroups:
        at = f"{where}: cgroups[{path!r}]"
        if not isinstance(path, str) or not path.startswith("/") \
                or (path != "/" and (path.endswith("/") or "//" in path)):
            raise EnvironmentSpecError(f"{at}: a cgroup path starts with / (the root is /)")
        _int(cid, at, 1, (1 << 64) - 1)
        if path in ids:
            raise EnvironmentSpecError(f"{at}: declared twice")
        if cid in ids.values():
            raise EnvironmentSpecError(f"{at}: id {cid} is another cgroup's")
        ids[path] = cid
    if "/" not in ids:
        raise EnvironmentSpecError(f"{where}: cgroups: the root cgroup \"/\" is not declared")
    for path in ids:
        parent = path.rsplit("/", 1)[0] or "/"
        if path != "/" and parent not in ids:
            raise EnvironmentSpecError(f"{where}: cgroups[{path!r}]: its parent "
                                       f"{parent!r} is not declared")
        if path.count("/") > MAX_CGROUP_LEVEL:
            raise EnvironmentSpecError(f"{where}: cgroups[{path!r}]: deeper than "
                                       f"{MAX_CGROUP_LEVEL} levels")
    for key in ("netns_cookie", "init_netns_cookie"):
        _int(getattr(env, key), f"{where}: {key}", 1, (1 << 64) - 1)
    if env.task_cgroup not in ids:
        raise EnvironmentSpecError(f"{where}: task_cgroup: {env.task_cgroup!r} is not one of "
                                   f"the declared cgroups ({', '.join(ids)})")
    s = env.socket
    if s is not None:
        if not isinstance(s, PacketSocket):
            raise EnvironmentSpecError(f"{where}: socket: expected a PacketSocket or None")
        _int(s.cookie, f"{where}: socket.cookie", 1, (1 << 64) - 1)
        _int(s.uid, f"{where}: socket.uid", 0, 0xffffffff)
        _int(s.classid, f"{where}: socket.classid", 0, 0xffffffff)
        if s.cgroup not in ids:
            raise EnvironmentSpecError(f"{where}: socket.cgroup: {s.cgroup!r} is not one of "
                                       f"the declared cgroups ({', '.join(ids)})")
