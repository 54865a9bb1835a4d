"""The modelled network around a packet: the devices of its network namespace and their
addresses, its routes and neighbours, the sockets open in it, the namespace's cookie,
the cgroup hierarchy, and the socket the packet belongs to.

One :class:`Environment` is given to ``Program.run(..., env=)``, ``pyebpf.load(...,
env=)`` (every run of the object's programs) and ``tcsim --env net.toml``; the helpers
that consult the world read it (``bpf_check_mtu``, ``bpf_get_netns_cookie``,
``bpf_get_socket_cookie``, ``bpf_get_socket_uid``, ``bpf_skb_cgroup_id``,
``bpf_skb_ancestor_cgroup_id``, ``bpf_skb_under_cgroup``, ``bpf_skb_cgroup_classid``,
``bpf_get_current_cgroup_id``, the cgroup kfuncs (``bpf_cgroup_from_id``,
``bpf_cgroup_ancestor``, ``bpf_task_under_cgroup``, ``bpf_cgroup_read_xattr``),
``bpf_sk_storage_get`` and
``bpf_sk_storage_delete`` (by socket cookie), ``bpf_get_current_ancestor_cgroup_id``,
``bpf_fib_lookup``, ``bpf_sk_lookup_tcp``,
``bpf_sk_lookup_udp``, ``bpf_skc_lookup_tcp``, ``bpf_sk_assign``, ``bpf_map_lookup_elem``
on a SOCKMAP or SOCKHASH (by socket cookie); ``bpf_clone_redirect`` finds its target
among the devices).  The default is what ``BPF_PROG_TEST_RUN`` shows in a
fresh network namespace: loopback only (ifindex 1, MTU 65536, down), the packet owned
by a socket of uid 0 in the root cgroup.  An Environment is immutable.  The TOML form
is described in docs/environment.md.
"""
from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field

from . import isa
from .errors import EbpfError

# cgroup_ancestor() reads cgrp->ancestors[level]; deeper trees than this are not modelled
MAX_CGROUP_LEVEL = 31
IFNAMSIZ = 16
MAX_MTU = 65536                 # loopback's (LOOPBACK_MTU 64 KiB)
FIRST_SOCKET_COOKIE = 4096      # the cookie of sockets[0] when it names none
TCP_MAX_WSCALE = 14             # include/net/tcp.h: the largest window scale
SYNCOOKIE_SECRET_SIZE = 32      # two siphash_key_t (net/ipv4/syncookies.c)
# what setxattr(2) lets a cgroupfs node hold (include/uapi/linux/limits.h,
# include/linux/kernfs.h, fs/kernfs/inode.c's kernfs_xattr_handlers)
XATTR_NAME_MAX = 255
XATTR_SIZE_MAX = 65536
KERNFS_MAX_USER_XATTRS = 128
KERNFS_USER_XATTR_SIZE_LIMIT = 128 << 10
XATTR_PREFIXES = ("user.", "trusted.", "security.")
# an environment file's keys that declare the machine around the network (its tasks and
# the kworker bpf_wq work runs in: pyebpf.trace.machine.machine_from_dict)
MACHINE_KEYS = ("tasks", "kworker", "current")


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


def _interface(text, where):
    try:
        return ipaddress.ip_interface(text)
    except ValueError:
        raise EnvironmentSpecError(f"{where}: expected an address with its prefix length "
                                   f"(10.0.0.1/24, fd00::1/64), got {text!r}") from None


def _address(text, where):
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise EnvironmentSpecError(f"{where}: expected an IPv4 or IPv6 address, "
                                   f"got {text!r}") from None


def _network(text, where):
    try:
        return ipaddress.ip_network(text)
    except ValueError:
        raise EnvironmentSpecError(f"{where}: expected a prefix with no host bits "
                                   f"(10.1.0.0/16, ::/0), got {text!r}") from None


@dataclass(frozen=True)
class Device:
    """A network device: ``ifindex``, ``name``, ``mtu``, ``mac`` (six bytes or
    ``"aa:bb:..."``), whether it is ``up``, its ``addresses`` (``"10.0.0.1/24"``,
    ``"fd00::1/64"``: each gives the kernel's local and connected routes) and whether
    it ``forwards`` (``net.ipv4.conf.DEV.forwarding`` and its IPv6 twin, off in a fresh
    namespace).  Its hardware header is Ethernet's 14 bytes (loopback's too)."""
    ifindex: int
    name: str
    mtu: int = 1500
    mac: bytes = bytes(6)
    up: bool = True
    addresses: tuple = ()
    forwarding: bool = False

    def __post_init__(self):
        try:
            object.__setattr__(self, "mac", mac_bytes(self.mac))
        except EnvironmentSpecError as exc:
            raise EnvironmentSpecError(f"device {self.name!r}: {exc}") from None
        object.__setattr__(self, "addresses", tuple(self.addresses))


#: Route types (``ip route add TYPE ...``) and the kernel's RTN_* numbers.
ROUTE_TYPES = {"unicast": 1, "local": 2, "broadcast": 3, "blackhole": 6,
               "unreachable": 7, "prohibit": 8, "throw": 9}
RT_TABLE_MAIN, RT_TABLE_LOCAL = 254, 255


@dataclass(frozen=True)
class Route:
    """A route: ``dst`` a prefix (``"10.1.0.0/16"``, ``"0.0.0.0/0"``, ``"fd00:1::/64"``),
    ``dev`` the name of its device (unicast routes), ``via`` its gateway, ``metric``
    (``None``: the kernel's default, 0 for IPv4 and 1024 for IPv6), ``table`` (254 is
    main), ``type`` (a key of :data:`ROUTE_TYPES`), ``src`` its preferred source
    address and ``mtu`` a locked MTU (``mtu lock N``; 0 for none)."""
    dst: str
    dev: str | None = None
    via: str | None = None
    metric: int | None = None
    table: int = RT_TABLE_MAIN
    type: str = "unicast"
    src: str | None = None
    mtu: int = 0


#: Neighbour states (``ip neigh ... nud STATE``); the first six are NUD_VALID.
NUD_STATES = ("permanent", "noarp", "reachable", "stale", "delay", "probe",
              "incomplete", "failed")


@dataclass(frozen=True)
class Neighbour:
    """A neighbour table entry: ``addr`` on device ``dev`` (a name) has link-layer
    address ``lladdr``, in ``state`` (one of :data:`NUD_STATES`)."""
    dev: str
    addr: str
    lladdr: bytes = bytes(6)
    state: str = "permanent"

    def __post_init__(self):
        try:
            object.__setattr__(self, "lladdr", mac_bytes(self.lladdr))
        except EnvironmentSpecError as exc:
            raise EnvironmentSpecError(f"neighbour {self.addr!r}: {exc}") from None


def endpoint(text: str, where: str):
    """(address, port) from ``"10.0.0.1:80"`` or ``"[fd00::1]:80"``."""
    host, sep, port = str(text).rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        host = ""
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535 or not host:
        raise EnvironmentSpecError(f"{where}: expected ADDRESS:PORT (10.0.0.1:80, "
                                   f"[fd00::1]:80), got {text!r}")
    return _address(host, where), int(port)


@dataclass(frozen=True)
class HalfOpen:
    """A half-open connection in a TCP listener's SYN queue: the request socket
    (``TCP_NEW_SYN_RECV``) the kernel made for a SYN it answered and is waiting for the
    ACK of (``tcp_conn_request``).  ``remote``: the peer's endpoint (``"10.0.0.2:4000"``);
    ``local``: the address the SYN was sent to (None: the listener's, which must then
    not be the wildcard); what ``tcp_openreq_init`` took from the SYN: ``rcv_isn`` (its
    sequence number), ``mss`` (its MSS option, 536 without one), ``sack_ok``,
    ``snd_wscale`` (its window scale; None: no option), ``ts_recent`` (its timestamp
    value; None: no option), ``ecn_ok``; and what the listener chose for its SYN-ACK:
    ``snt_isn``, ``rcv_wscale`` and ``ts_off`` (random per connection in the kernel: take
    them from a capture); ``rx_queue``: the receive queue the SYN came in on, which
    ``tcp_conn_request`` records (``sk_rx_queue_set``; -1: none recorded); ``cookie``:
    the cookie it was given (0: none asked yet; see :meth:`Environment.socket_cookie`);
    ``num_retrans``: the SYN-ACKs retransmitted so far, each when the request timer
    expired (``reqsk_timer_handler``: the kernel's first a second after the SYN, then
    doubling), so the struct's ``num_retrans`` and ``num_timeout`` (at most 127)."""
    remote: str
    local: str | None = None
    rcv_isn: int = 0
    snt_isn: int = 0
    mss: int = 536
    sack_ok: bool = False
    snd_wscale: int | None = None
    rcv_wscale: int = 0
    ts_recent: int | None = None
    ts_off: int = 0
    ecn_ok: bool = False
    rx_queue: int = 0
    cookie: int = 0
    num_retrans: int = 0


@dataclass(frozen=True)
class Socket:
    """A socket open in the namespace: ``protocol`` "tcp" or "udp", its ``local``
    endpoint (``"10.0.0.1:80"``, ``"0.0.0.0:53"``, ``"[::]:80"``), its ``remote`` one
    for an established TCP or a connected UDP socket (None: a TCP listener or an
    unconnected UDP socket), the device it is bound to (``dev``, SO_BINDTODEVICE),
    ``v6only`` (an IPv6 socket that IPv4 lookups do not find), ``reuseport``, what
    ``struct bpf_sock`` shows of it: ``mark``, ``priority``, its ``cookie`` (what
    socket local storage is keyed by; 0: :meth:`Environment.socket_cookie` gives it
    one), and the ``uid`` and ``cgroup`` (a path of :attr:`Environment.cgroups`) of the
    task that opened it, which ``bpf_get_socket_uid`` and the socket cgroup helpers
    report once ``bpf_sk_assign`` or ``bpf_sk_assign_tcp_reqsk`` gave it (or a request
    socket of it) to the packet.  A TCP listener's ``syn_queue`` holds its half-open
    connections (:class:`HalfOpen` values, or tables of their fields)."""
    protocol: str
    local: str
    remote: str | None = None
    dev: str | None = None
    v6only: bool = False
    reuseport: bool = False
    mark: int = 0
    priority: int = 0
    cookie: int = 0
    uid: int = 0
    cgroup: str = "/"
    syn_queue: tuple = ()

    def __post_init__(self):
        if isinstance(self.syn_queue, (list, tuple)):
            object.__setattr__(self, "syn_queue", tuple(
                _entry(HalfOpen, h, f"syn_queue[{k}]") if isinstance(h, dict) else h
                for k, h in enumerate(self.syn_queue)))

    @property
    def state(self) -> str:
        """"listen", "established" (TCP), "connected" or "unconnected" (UDP)."""
        if self.protocol == "tcp":
            return "established" if self.remote is not None else "listen"
        return "connected" if self.remote is not None else "unconnected"


@dataclass(frozen=True)
class PacketSocket:
    """The socket the packet belongs to (``skb->sk``): its ``cookie``, ``uid``, the
    ``cgroup`` (a path of :attr:`Environment.cgroups`) it was created in and that
    cgroup's net_cls ``classid``."""
    cookie: int = 1
    uid: int = 0
    cgroup: str = "/"
    classid: int = 0


# the status bits a declared entry may have (IPS_CHANGEABLE: nf_ct_change_status_common
# lets ctnetlink and the kfuncs set only these); the NAT bits follow from the tuples
CT_STATUS_NAMES = {name: getattr(isa, f"IPS_{name}")
                   for name in ("SEEN_REPLY", "ASSURED", "FIXED_TIMEOUT", "HELPER")}
CT_TIMEOUT_MAX = 0x7FFFFFFF // isa.HZ     # seconds: INT_MAX jiffies


@dataclass(frozen=True)
class Conntrack:
    """A connection in the namespace's conntrack table, as ``conntrack -I`` declares one:
    ``protocol`` "tcp" or "udp", the original direction's ``src`` and ``dst``
    (``"10.0.0.1:1234"``, ``"[fd00::1]:80"``), ``timeout`` (seconds from
    ``KTIME_START``, the modelled clock's start: the entry is gone from then on), the
    reply direction's ``reply_src`` and ``reply_dst`` (default ``dst`` and ``src``; a
    ``reply_dst`` other than ``src`` is source NAT, a ``reply_src`` other than ``dst``
    destination NAT), its ``zone`` id and ``zone_dir`` (the directions the zone applies
    to: 1 original, 2 reply, 3 both), ``status`` (names of ``CT_STATUS_NAMES``) and
    ``mark``."""
    protocol: str
    src: str
    dst: str
    timeout: int
    reply_src: str | None = None
    reply_dst: str | None = None
    zone: int = 0
    zone_dir: int = 3
    status: tuple = ()
    mark: int = 0

    def __post_init__(self):
        if isinstance(self.status, (list, tuple)):
            object.__setattr__(self, "status", tuple(self.status))

    def tuples(self):
        """((src, dst), (reply src, reply dst)) as (address, port) pairs."""
        src, dst = endpoint(self.src, "src"), endpoint(self.dst, "dst")
        rsrc = endpoint(self.reply_src, "reply_src") if self.reply_src is not None else dst
        rdst = endpoint(self.reply_dst, "reply_dst") if self.reply_dst is not None else src
        return (src, dst), (rsrc, rdst)


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
    (``bpf_get_current_cgroup_id``), a path of ``cgroups``; ``routes``: :class:`Route`
    values besides those the devices' addresses give (:meth:`fib`); ``neighbours``:
    :class:`Neighbour` values; ``sockets``: the :class:`Socket` values open in the
    namespace, which the socket lookups search; ``syncookie_secret``: the 32 bytes of the
    two SipHash keys SYN cookies are made with (the kernel's ``syncookie_secret`` and
    ``syncookie6_secret``, random per boot there; one pair for both families here, all
    zero unless given); ``conntrack``: :class:`Conntrack` entries the namespace's
    conntrack table holds before the first run; ``cgroup_xattrs``: a mapping of cgroup
    path (one of ``cgroups``) to that cgroup directory's extended attributes, name ->
    bytes (what ``bpf_cgroup_read_xattr`` reads; names in the user., trusted. and
    security. namespaces, as cgroupfs takes them; kept as sorted pairs)."""
    devices: tuple = (LOOPBACK,)
    cgroups: tuple = (("/", 1),)
    netns_cookie: int = 1
    init_netns_cookie: int = 1
    socket: PacketSocket | None = field(default_factory=PacketSocket)
    task_cgroup: str = "/"
    routes: tuple = ()
    neighbours: tuple = ()
    sockets: tuple = ()
    syncookie_secret: bytes = bytes(SYNCOOKIE_SECRET_SIZE)
    conntrack: tuple = ()
    cgroup_xattrs: tuple = ()

    def __post_init__(self):
        for key in ("devices", "routes", "neighbours", "sockets", "cgroups", "conntrack"):
            object.__setattr__(self, key, tuple(getattr(self, key)))
        object.__setattr__(self, "cgroup_xattrs", _xattr_pairs(self.cgroup_xattrs))
        check(self, "Environment")

    def xattrs(self, path: str) -> dict:
        """The extended attributes of the cgroup at ``path`` (name -> bytes)."""
        return dict(dict(self.cgroup_xattrs).get(path, ()))

    def request_sockets(self) -> list[tuple[int, "HalfOpen"]]:
        """The half-open connections of the listeners' SYN queues, as (the listener's
        index in ``sockets``, the :class:`HalfOpen`), in declaration order: the engine
        numbers them after the sockets, the j-th ``len(sockets) + j``
        (``Result.assigned_socket`` gives that number for one)."""
        return [(k, h) for k, s in enumerate(self.sockets) for h in s.syn_queue]

    def socket_cookie(self, k: int) -> int:
        """The cookie of ``sockets[k]`` (past them, of request socket ``k -
        len(sockets)``): its own, else FIRST_SOCKET_COOKIE + k."""
        if k >= len(self.sockets):
            return self.request_sockets()[k - len(self.sockets)][1].cookie \
                or FIRST_SOCKET_COOKIE + k
        return self.sockets[k].cookie or FIRST_SOCKET_COOKIE + k

    def request_socket_cookie(self) -> int:
        """The cookie the first request socket made by ``bpf_sk_assign_tcp_reqsk`` in
        the runs on this Environment reports: the kernel makes it when first asked
        (``__sock_gen_cookie``), the machine's generator's next value; modelled as one
        past the largest cookie of the environment's sockets.  Every later request
        socket asked, in the same run or a later one on this Environment object, gets
        the next value: as in the kernel, no cookie is given twice."""
        cookies = [self.socket_cookie(k)
                   for k in range(len(self.sockets) + len(self.request_sockets()))]
        if isinstance(self.socket, PacketSocket):
            cookies.append(self.socket.cookie)
        return max(cookies, default=0) + 1

    def device_named(self, name: str) -> Device | None:
        for d in self.devices:
            if d.name == name:
                return d
        return None

    def fib(self) -> list[tuple]:
        """Every route the kernel would hold: the declared ones and, for each address
        of an up device, the local route (local table) and the connected route (main
        table, IPv4 with the address as preferred source; IPv6 at metric 256) that
        fib_add_ifaddr and addrconf add.  Each as (table, type, network, ifindex,
        gateway or None, metric, preferred source or None, locked mtu)."""
        out = []
        for d in self.devices:
            if not d.up:
                continue
            for text in d.addresses:
                a = ipaddress.ip_interface(text)
                host = ipaddress.ip_network(f"{a.ip}/{a.max_prefixlen}")
                out.append((RT_TABLE_LOCAL, ROUTE_TYPES["local"], host, d.ifindex, None,
                            0, a.ip, 0))
                if a.version == 4:
                    if a.network.prefixlen < 31:
                        bcast = ipaddress.ip_network(f"{a.network.broadcast_address}/32")
                        out.append((RT_TABLE_LOCAL, ROUTE_TYPES["broadcast"], bcast,
                                    d.ifindex, None, 0, a.ip, 0))
                    if a.network.prefixlen < 32:
                        out.append((RT_TABLE_MAIN, ROUTE_TYPES["unicast"], a.network,
                                    d.ifindex, None, 0, a.ip, 0))
                elif a.network.prefixlen < 128:
                    out.append((RT_TABLE_MAIN, ROUTE_TYPES["unicast"], a.network,
                                d.ifindex, None, 256, None, 0))
        for r in self.routes:
            net = ipaddress.ip_network(r.dst)
            dev = self.device_named(r.dev) if r.dev else None
            metric = r.metric if r.metric is not None else (0 if net.version == 4 else 1024)
            out.append((r.table, ROUTE_TYPES[r.type], net, dev.ifindex if dev else 0,
                        ipaddress.ip_address(r.via) if r.via else None, metric,
                        ipaddress.ip_address(r.src) if r.src else None, r.mtu))
        return out

    def conntrack_table(self, ktime: int | None = None) -> tuple:
        """The entries this Environment's conntrack table holds now (the declared ones
        and those programs inserted; those whose timeout passed are gone), as
        :class:`Conntrack` values whose ``timeout`` is the seconds left at ``ktime``
        (default: the process's clock, docs/clock.md), rounded down as ``conntrack -L``
        shows them."""
        from ._core import conntrack_entries
        return conntrack_entries(self, ktime)

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
        """Read a TOML file (docs/environment.md); errors name the file and the key.  Its
        ``tasks`` and ``kworker`` are the machine's: :meth:`pyebpf.trace.Machine.from_toml`
        reads them."""
        return cls.from_dict(*read_toml(path))

    @classmethod
    def from_dict(cls, data: dict, where: str = "environment") -> "Environment":
        """The same schema as the TOML file, as a dict (``tasks`` and ``kworker``
        left to :func:`pyebpf.trace.machine.machine_from_dict`)."""
        unknown = set(data) - {"devices", "cgroups", "netns_cookie", "init_netns_cookie",
                               "socket", "task_cgroup", "routes", "neighbours", "sockets",
                               "syncookie_secret", "conntrack", "cgroup_xattrs",
                               *MACHINE_KEYS}
        if unknown:
            raise EnvironmentSpecError(f"{where}: unknown key {sorted(unknown)[0]!r}; known: "
                                       "devices, cgroups, netns_cookie, init_netns_cookie, "
                                       "socket, task_cgroup, routes, neighbours, sockets, "
                                       "syncookie_secret, conntrack, cgroup_xattrs, "
                                       + ", ".join(MACHINE_KEYS))
        kw = {}
        if "devices" in data:
            kw["devices"] = tuple(_device(d, f"{where}: devices[{k}]")
                                  for k, d in enumerate(_list(data["devices"],
                                                              f"{where}: devices")))
        for key, make in (("routes", Route), ("neighbours", Neighbour), ("sockets", Socket),
                          ("conntrack", Conntrack)):
            if key in data:
                kw[key] = tuple(_entry(make, e, f"{where}: {key}[{k}]")
                                for k, e in enumerate(_list(data[key], f"{where}: {key}")))
        if "cgroups" in data:
            groups = data["cgroups"]
            if not isinstance(groups, dict):
                raise EnvironmentSpecError(f"{where}: cgroups must be a table of path = id")
            kw["cgroups"] = tuple(groups.items())
        for key in ("netns_cookie", "init_netns_cookie", "task_cgroup"):
            if key in data:
                kw[key] = data[key]
        if "cgroup_xattrs" in data:
            kw["cgroup_xattrs"] = _toml_xattrs(data["cgroup_xattrs"],
                                               f"{where}: cgroup_xattrs")
        if "socket" in data:
            kw["socket"] = _socket(data["socket"], f"{where}: socket")
        if "syncookie_secret" in data:
            text = data["syncookie_secret"]
            try:
                kw["syncookie_secret"] = bytes.fromhex(text)
            except (TypeError, ValueError):
                raise EnvironmentSpecError(f"{where}: syncookie_secret: expected "
                                           f"{2 * SYNCOOKIE_SECRET_SIZE} hex digits, got "
                                           f"{text!r}") from None
        try:
            return cls(**kw)
        except EnvironmentSpecError as exc:
            raise EnvironmentSpecError(f"{where}: {str(exc).split(': ', 1)[1]}") from None


def read_toml(path) -> tuple[dict, str]:
    """The tables of the environment file at ``path`` and the name errors give it."""
    import tomllib  # only a --env file needs the parser (3 ms of every start-up)
    where = os.fspath(path)
    try:
        with open(path, "rb") as f:
            return tomllib.load(f), where
    except OSError as exc:
        raise EnvironmentSpecError(f"{where}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise EnvironmentSpecError(f"{where}: not TOML: {exc}") from None


def _xattr_pairs(value) -> tuple:
    """cgroup_xattrs as sorted (path, ((name, value), ...)) pairs, from a mapping or
    pairs; what is not of that shape is left for check() to name."""
    try:
        items = value.items() if hasattr(value, "items") else value
        return tuple(sorted((path, tuple(sorted(attrs.items() if hasattr(attrs, "items")
                                                else attrs)))
                            for path, attrs in items))
    except (TypeError, ValueError):
        return value


def _toml_xattrs(value, where) -> dict:
    """[cgroup_xattrs."PATH"] tables: a string value is its UTF-8 bytes, an array of
    integers its bytes."""
    if not isinstance(value, dict):
        raise EnvironmentSpecError(f"{where} must be a table of cgroup path = table")
    out = {}
    for path, attrs in value.items():
        if not isinstance(attrs, dict):
            raise EnvironmentSpecError(f"{where}[{path!r}] must be a table of name = value")
        out[path] = {}
        for name, v in attrs.items():
            if isinstance(v, str):
                out[path][name] = v.encode()
            elif isinstance(v, list) and all(isinstance(b, int) and 0 <= b <= 255 for b in v):
                out[path][name] = bytes(v)
            else:
                raise EnvironmentSpecError(f"{where}[{path!r}][{name!r}]: expected a string "
                                           f"or an array of bytes (0..255), got {v!r}")
    return out


def _check_xattrs(env, ids, where) -> None:
    """cgroup_xattrs: declared cgroups, names and values setxattr(2) would take on
    cgroupfs (xattr_resolve_name: a known prefix and more; kernfs' user.* limits)."""
    if not isinstance(env.cgroup_xattrs, tuple):
        raise EnvironmentSpecError(f"{where}: cgroup_xattrs: expected a mapping of cgroup "
                                   f"path to {{name: bytes}}, got {env.cgroup_xattrs!r}")
    for path, attrs in env.cgroup_xattrs:
        at = f"{where}: cgroup_xattrs[{path!r}]"
        if path not in ids:
            raise EnvironmentSpecError(f"{at}: not one of the declared cgroups "
                                       f"({', '.join(ids)})")
        users = total = 0
        for name, value in attrs:
            if not isinstance(name, str) or not name.startswith(XATTR_PREFIXES) \
                    or name in XATTR_PREFIXES:
                raise EnvironmentSpecError(f"{at}: name {name!r}: expected user.NAME, "
                                           f"trusted.NAME or security.NAME")
            if len(name.encode()) > XATTR_NAME_MAX or "\0" in name:
                raise EnvironmentSpecError(f"{at}: name {name!r}: longer than "
                                           f"{XATTR_NAME_MAX} bytes or holding a NUL")
            if not isinstance(value, bytes) or len(value) > XATTR_SIZE_MAX:
                raise EnvironmentSpecError(f"{at}[{name!r}]: expected at most "
                                           f"{XATTR_SIZE_MAX} bytes, got {value!r:.60}")
            if name.startswith("user."):
                users += 1
                total += len(value)
        if users > KERNFS_MAX_USER_XATTRS or total > KERNFS_USER_XATTR_SIZE_LIMIT:
            raise EnvironmentSpecError(f"{at}: more than {KERNFS_MAX_USER_XATTRS} user.* "
                                       f"attributes or {KERNFS_USER_XATTR_SIZE_LIMIT} bytes "
                                       f"of their values (kernfs' limits: ENOSPC)")


def _list(value, where):
    if not isinstance(value, list):
        raise EnvironmentSpecError(f"{where} must be an array of tables")
    return value


def _table(value, where, keys):
    if not isinstance(value, dict):
        raise EnvironmentSpecError(f"{where} must be a table")
    return known_keys(value, where, keys)


def known_keys(value, where: str, keys):
    """``value`` (a table) when it holds only ``keys``; else the one-line error naming
    the first unknown key and the known ones."""
    unknown = set(value) - set(keys)
    if unknown:
        raise EnvironmentSpecError(f"{where}: unknown key {sorted(unknown)[0]!r}; known: "
                                   + ", ".join(keys))
    return value


def _entry(make, value, where):
    keys = tuple(make.__dataclass_fields__)
    d = _table(value, where, keys)
    required = [k for k, f in make.__dataclass_fields__.items()
                if f.default is f.default_factory and k not in d]
    if required:
        raise EnvironmentSpecError(f"{where}: {required[0]} is required")
    try:
        return make(**d)
    except EnvironmentSpecError as exc:
        raise EnvironmentSpecError(f"{where}: {exc}") from None


def _device(value, where) -> Device:
    d = _table(value, where, ("ifindex", "name", "mtu", "mac", "up", "addresses",
                              "forwarding"))
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
    if not isinstance(env.syncookie_secret, bytes) \
            or len(env.syncookie_secret) != SYNCOOKIE_SECRET_SIZE:
        raise EnvironmentSpecError(f"{where}: syncookie_secret: expected "
                                   f"{SYNCOOKIE_SECRET_SIZE} bytes, got "
                                   f"{env.syncookie_secret!r}")
    _check_world(env, where)
    _check_xattrs(env, ids, where)
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


def _check_protocol(entry, kind, at: str) -> None:
    """A Socket or Conntrack entry of its class, naming TCP or UDP."""
    if not isinstance(entry, kind):
        raise EnvironmentSpecError(f"{at}: expected a {kind.__name__}, got "
                                   f"{type(entry).__name__}")
    if entry.protocol not in ("tcp", "udp"):
        raise EnvironmentSpecError(f"{at}.protocol: expected \"tcp\" or \"udp\", "
                                   f"got {entry.protocol!r}")


def _check_world(env: Environment, where: str) -> None:
    """Addresses, routes, neighbours and sockets: each names declared devices and
    well-formed addresses (the one line names the entry and its key)."""
    for k, d in enumerate(env.devices):
        at = f"{where}: devices[{k}]"
        if not isinstance(d.forwarding, bool):
            raise EnvironmentSpecError(f"{at}.forwarding: expected true or false, "
                                       f"got {d.forwarding!r}")
        for j, a in enumerate(d.addresses):
            _interface(a, f"{at}.addresses[{j}]")
    tables = set()
    for k, r in enumerate(env.routes):
        at = f"{where}: routes[{k}]"
        if not isinstance(r, Route):
            raise EnvironmentSpecError(f"{at}: expected a Route, got {type(r).__name__}")
        net = _network(r.dst, f"{at}.dst")
        if r.type not in ROUTE_TYPES:
            raise EnvironmentSpecError(f"{at}.type: expected one of "
                                       f"{', '.join(ROUTE_TYPES)}, got {r.type!r}")
        _int(r.table, f"{at}.table", 1, 0xffffffff)
        _int(r.mtu, f"{at}.mtu", 0, MAX_MTU)
        if r.metric is not None:
            _int(r.metric, f"{at}.metric", 0, 0xffffffff)
        for key in ("via", "src"):
            value = getattr(r, key)
            if value is not None and _address(value, f"{at}.{key}").version != net.version:
                raise EnvironmentSpecError(f"{at}.{key}: {value} is not of the family of "
                                           f"dst {r.dst}")
        if r.type in ("unicast", "local", "broadcast"):
            if r.dev is None:
                raise EnvironmentSpecError(f"{at}.dev: a {r.type} route needs a device")
        if r.dev is not None:
            dev = env.device_named(r.dev)
            if dev is None:
                raise EnvironmentSpecError(f"{at}.dev: {r.dev!r} is not a declared device")
            if not dev.up:
                raise EnvironmentSpecError(f"{at}.dev: {r.dev!r} is down (the kernel "
                                           f"refuses routes through a device that is down)")
        tables.add(r.table)
    for k, n in enumerate(env.neighbours):
        at = f"{where}: neighbours[{k}]"
        if not isinstance(n, Neighbour):
            raise EnvironmentSpecError(f"{at}: expected a Neighbour, got {type(n).__name__}")
        _address(n.addr, f"{at}.addr")
        if env.device_named(n.dev) is None:
            raise EnvironmentSpecError(f"{at}.dev: {n.dev!r} is not a declared device")
        if n.state not in NUD_STATES:
            raise EnvironmentSpecError(f"{at}.state: expected one of {', '.join(NUD_STATES)},"
                                       f" got {n.state!r}")
    for k, s in enumerate(env.sockets):
        at = f"{where}: sockets[{k}]"
        _check_protocol(s, Socket, at)
        local, _ = endpoint(s.local, f"{at}.local")
        if s.remote is not None:
            remote, rport = endpoint(s.remote, f"{at}.remote")
            if remote.version != local.version:
                raise EnvironmentSpecError(f"{at}.remote: {s.remote} is not of the family "
                                           f"of local {s.local}")
        if s.dev is not None and env.device_named(s.dev) is None:
            raise EnvironmentSpecError(f"{at}.dev: {s.dev!r} is not a declared device")
        for key in ("v6only", "reuseport"):
            if not isinstance(getattr(s, key), bool):
                raise EnvironmentSpecError(f"{at}.{key}: expected true or false")
        _int(s.mark, f"{at}.mark", 0, 0xffffffff)
        _int(s.priority, f"{at}.priority", 0, 0xffffffff)
        _int(s.cookie, f"{at}.cookie", 0, (1 << 64) - 1)
        _int(s.uid, f"{at}.uid", 0, 0xffffffff)
        if s.cgroup not in dict(env.cgroups):
            raise EnvironmentSpecError(f"{at}.cgroup: {s.cgroup!r} is not one of the "
                                       f"declared cgroups ({', '.join(dict(env.cgroups))})")
        if not isinstance(s.syn_queue, tuple):
            raise EnvironmentSpecError(f"{at}.syn_queue: expected a list of half-open "
                                       f"connections")
        if s.syn_queue and s.state != "listen":
            raise EnvironmentSpecError(f"{at}.syn_queue: only a TCP listener has a SYN "
                                       f"queue")
        for j, h in enumerate(s.syn_queue):
            _check_half_open(h, local, s.v6only, f"{at}.syn_queue[{j}]")
    pairs = set()
    for k, h in env.request_sockets():
        s = env.sockets[k]
        pair = (_half_open_local(h, s), endpoint(h.remote, "remote"),
                endpoint(s.local, "local")[1])
        if pair in pairs:
            raise EnvironmentSpecError(f"{where}: sockets[{k}].syn_queue: {h.remote} to port "
                                       f"{pair[2]} is declared twice")
        pairs.add(pair)
    _check_conntrack(env, where)
    cookies = {env.socket.cookie: "socket"} if isinstance(env.socket, PacketSocket) else {}
    names = [f"sockets[{k}]" for k in range(len(env.sockets))]
    queued = {}
    for k, _ in env.request_sockets():
        names.append(f"sockets[{k}].syn_queue[{queued.get(k, 0)}]")
        queued[k] = queued.get(k, 0) + 1
    for k, name in enumerate(names):
        cookie = env.socket_cookie(k)
        if cookie in cookies:
            raise EnvironmentSpecError(f"{where}: {name}.cookie: {cookie} is also "
                                       f"{cookies[cookie]}'s")
        cookies[cookie] = name


def _half_open_local(h, listener):
    """The address a half-open connection's SYN was sent to (HalfOpen.local, else the
    listener's)."""
    if h.local is not None:
        return _address(h.local, "local")
    return endpoint(listener.local, "local")[0]


def _check_half_open(h, listener_addr, v6only: bool, at: str) -> None:
    if not isinstance(h, HalfOpen):
        raise EnvironmentSpecError(f"{at}: expected a HalfOpen, got {type(h).__name__}")
    remote, _ = endpoint(h.remote, f"{at}.remote")
    if h.local is not None:
        local = _address(h.local, f"{at}.local")
    elif listener_addr.is_unspecified:
        raise EnvironmentSpecError(f"{at}.local: the listener is bound to the wildcard "
                                   f"address: name the address the SYN was sent to")
    else:
        local = listener_addr
    # an IPv4 SYN to a dual-stack listener makes an IPv4 request socket of the IPv6
    # listener (tcp_v6_conn_request hands it to tcp_v4_conn_request)
    dual = listener_addr.version == 6 and not v6only
    for key, addr in (("remote", remote), ("local", local)):
        if addr.version != listener_addr.version and not (dual and addr.version == 4):
            raise EnvironmentSpecError(f"{at}.{key}: {addr} is not of the listener's family")
    if remote.version != local.version:
        raise EnvironmentSpecError(f"{at}.remote: {remote} is not of the family of local "
                                   f"{local}")
    for key, hi in (("rcv_isn", 0xffffffff), ("snt_isn", 0xffffffff), ("ts_off", 0xffffffff),
                    ("rcv_wscale", TCP_MAX_WSCALE), ("cookie", (1 << 64) - 1),
                    ("num_retrans", 127)):
        _int(getattr(h, key), f"{at}.{key}", 0, hi)
    _int(h.mss, f"{at}.mss", 1, 0xffff)
    _int(h.rx_queue, f"{at}.rx_queue", -1, 0xfffe)
    if h.snd_wscale is not None:
        _int(h.snd_wscale, f"{at}.snd_wscale", 0, TCP_MAX_WSCALE)
    if h.ts_recent is not None:
        _int(h.ts_recent, f"{at}.ts_recent", 0, 0xffffffff)
    for key in ("sack_ok", "ecn_ok"):
        if not isinstance(getattr(h, key), bool):
            raise EnvironmentSpecError(f"{at}.{key}: expected true or false")


def _check_conntrack(env: Environment, where: str) -> None:
    """The declared conntrack entries: well-formed, one family each, and no tuple twice
    in a zone (nf_conntrack_hash_check_insert refuses the second: EEXIST)."""
    if len(env.conntrack) > isa.NF_CT_MODEL_SLOTS:
        raise EnvironmentSpecError(f"{where}: conntrack: {len(env.conntrack)} entries, the "
                                   f"table holds {isa.NF_CT_MODEL_SLOTS}")
    seen = {}
    for k, c in enumerate(env.conntrack):
        at = f"{where}: conntrack[{k}]"
        _check_protocol(c, Conntrack, at)
        ends = {}
        for key in ("src", "dst", "reply_src", "reply_dst"):
            if getattr(c, key) is not None:
                ends[key] = endpoint(getattr(c, key), f"{at}.{key}")[0]
                if ends[key].version != ends["src"].version:
                    raise EnvironmentSpecError(f"{at}.{key}: {getattr(c, key)} is not of the "
                                               f"family of src {c.src}")
        _int(c.timeout, f"{at}.timeout", 0, CT_TIMEOUT_MAX)
        _int(c.zone, f"{at}.zone", 0, 0xffff)
        _int(c.zone_dir, f"{at}.zone_dir", 1, 3)
        _int(c.mark, f"{at}.mark", 0, 0xffffffff)
        if not isinstance(c.status, tuple):
            raise EnvironmentSpecError(f"{at}.status: expected a list of names, got "
                                       f"{c.status!r}")
        for name in c.status:
            if name not in CT_STATUS_NAMES:
                raise EnvironmentSpecError(f"{at}.status: {name!r} is not one of "
                                           f"{', '.join(CT_STATUS_NAMES)} (the table sets "
                                           "CONFIRMED and the NAT bits itself)")
        orig, reply = c.tuples()
        for d, (s, t) in enumerate((orig, reply)):
            zone = c.zone if c.zone_dir & (1 << d) else 0
            key = (c.protocol, s, t, zone)
            if key in seen:
                raise EnvironmentSpecError(f"{at}: the tuple {s[0]}:{s[1]} -> {t[0]}:{t[1]} "
                                           f"is also {seen[key]}'s (the kernel refuses "
                                           "the second: EEXIST)")
            seen[key] = f"conntrack[{k}]"


# sk_state values (include/net/tcp_states.h) and the socket constants struct bpf_sock shows
TCP_ESTABLISHED, TCP_CLOSE, TCP_LISTEN = 1, 7, 10
AF_INET, AF_INET6 = 2, 10
SOCK_STREAM, SOCK_DGRAM = 1, 2
IPPROTO_TCP, IPPROTO_UDP = 6, 17
LOOPBACK4_IPV6 = ipaddress.ip_address("127.0.0.6")   # an IPv6 socket's IPv4 address


@dataclass(frozen=True)
class SocketViews:
    """What the engine keeps of one :class:`Socket`: its family, protocol, state,
    addresses (ipaddress values; the remote one None), ports, bound device, and the bytes
    of the ``struct bpf_sock`` and ``struct bpf_tcp_sock`` programs read through it."""
    family: int
    protocol: int
    state: int
    local: object
    remote: object
    lport: int
    rport: int
    bound_dev_if: int
    sock: bytes
    tcp_sock: bytes


def _ip4_view(addr) -> bytes:
    """sk_rcv_saddr / sk_daddr of a socket: an IPv6 socket keeps INADDR_ANY for the
    wildcard, the IPv4 address of a v4-mapped one, and LOOPBACK4_IPV6 otherwise
    (inet6_bind, tcp_v6_connect), so that IPv4 lookups never match it by address."""
    if addr is None:
        return bytes(4)
    if addr.version == 4:
        return addr.packed
    if addr.ipv4_mapped is not None:
        return addr.ipv4_mapped.packed
    return bytes(4) if addr.is_unspecified else LOOPBACK4_IPV6.packed


def socket_views(env: Environment, s: Socket) -> SocketViews:
    """The engine's form of ``s`` (see :class:`SocketViews`): struct bpf_sock as
    bpf_sock_convert_ctx_access reads a full socket, and struct bpf_tcp_sock as
    tcp_init_sock leaves a socket that has sent nothing (cwnd 10, ssthresh infinite,
    rtt_min ~0, mss 536)."""
    import struct
    local, lport = endpoint(s.local, "local")
    remote, rport = endpoint(s.remote, "remote") if s.remote is not None else (None, 0)
    family = AF_INET if local.version == 4 else AF_INET6
    tcp = s.protocol == "tcp"
    if tcp:
        state = TCP_ESTABLISHED if remote is not None else TCP_LISTEN
    else:
        state = TCP_ESTABLISHED if remote is not None else TCP_CLOSE
    dev = env.device_named(s.dev).ifindex if s.dev else 0
    sock = bytearray(isa.SIZEOF_BPF_SOCK)

    def put(name, fmt, value):
        struct.pack_into(fmt, sock, isa.BPF_SOCK_LAYOUT[name][0], value)
    put("bound_dev_if", "<I", dev)
    put("family", "<I", family)
    put("type", "<I", SOCK_STREAM if tcp else SOCK_DGRAM)
    put("protocol", "<I", IPPROTO_TCP if tcp else IPPROTO_UDP)
    put("mark", "<I", s.mark)
    put("priority", "<I", s.priority)
    put("src_ip4", "4s", _ip4_view(local))
    if family == AF_INET6:
        put("src_ip6", "16s", local.packed)
        if remote is not None:
            put("dst_ip6", "16s", remote.packed)
    elif tcp and remote is not None:
        # an IPv4 connection's addresses are set with sk_rcv_saddr_set and sk_daddr_set,
        # which keep their v4-mapped IPv6 forms too
        put("src_ip6", "16s", _v4_mapped(local))
        put("dst_ip6", "16s", _v4_mapped(remote))
    put("src_port", "<I", lport)
    put("dst_port", ">H", rport)
    put("dst_ip4", "4s", _ip4_view(remote))
    put("state", "<I", state)
    # sk_rx_queue_mapping: NO_QUEUE_MAPPING (-1) until a received packet records a queue;
    # the kernel's established sockets show -1 or 0 depending on the path their packets took
    put("rx_queue_mapping", "<i", -1)
    tcp_sock = bytearray(isa.SIZEOF_BPF_TCP_SOCK)
    # snd_cwnd, rtt_min, snd_ssthresh, mss_cache (tcp_init_sock)
    for off, value in ((0, 10), (8, 0xFFFFFFFF), (12, 0x7FFFFFFF), (28, 536)):
        struct.pack_into("<I", tcp_sock, off, value)
    return SocketViews(family, IPPROTO_TCP if tcp else IPPROTO_UDP, state, local, remote,
                       lport, rport, dev, bytes(sock), bytes(tcp_sock))


def _v4_mapped(addr) -> bytes:
    """An IPv4 address's v4-mapped IPv6 form (::ffff:a.b.c.d), as sk_rcv_saddr_set and
    sk_daddr_set keep it beside the IPv4 one."""
    return bytes(10) + b"\xff\xff" + addr.packed


TCP_NEW_SYN_RECV = 12


def request_socket_views(env: Environment, listener: int, h: HalfOpen) -> SocketViews:
    """The engine's form of a half-open connection of ``sockets[listener]``: struct
    bpf_sock as bpf_sock_convert_ctx_access reads a request socket's struct sock_common
    (tcp_v4_init_req / tcp_v6_init_req set its addresses, an IPv4 one's with their
    v4-mapped IPv6 forms too, an IPv6 one's IPv4 pair LOOPBACK4_IPV6 as the kernel's
    reads; tcp_openreq_init its ports; ir_iif is the listener's bound device), no
    struct bpf_tcp_sock (it is no full socket)."""
    import struct
    s = env.sockets[listener]
    listening, lport = endpoint(s.local, "local")
    local = _half_open_local(h, s)
    remote, rport = endpoint(h.remote, "remote")
    # inet_reqsk_alloc: the listener's family, an IPv4 connection's of a dual-stack
    # listener too
    family = AF_INET if listening.version == 4 else AF_INET6
    dev = env.device_named(s.dev).ifindex if s.dev else 0
    sock = bytearray(isa.SIZEOF_BPF_SOCK)

    def put(name, fmt, value):
        struct.pack_into(fmt, sock, isa.BPF_SOCK_LAYOUT[name][0], value)
    put("bound_dev_if", "<I", dev)
    put("family", "<I", family)
    if local.version == 4:
        put("src_ip4", "4s", local.packed)
        put("dst_ip4", "4s", remote.packed)
        put("src_ip6", "16s", _v4_mapped(local))
        put("dst_ip6", "16s", _v4_mapped(remote))
    else:
        # an IPv6 one's IPv4 addresses both read LOOPBACK4_IPV6 (as the kernel's do)
        put("src_ip4", "4s", LOOPBACK4_IPV6.packed)
        put("dst_ip4", "4s", LOOPBACK4_IPV6.packed)
        put("src_ip6", "16s", local.packed)
        put("dst_ip6", "16s", remote.packed)
    put("src_port", "<I", lport)
    put("dst_port", ">H", rport)
    put("state", "<I", TCP_NEW_SYN_RECV)
    put("rx_queue_mapping", "<i", h.rx_queue)
    return SocketViews(family, IPPROTO_TCP, TCP_NEW_SYN_RECV, local, remote, lport, rport,
                       dev, bytes(sock), bytes(isa.SIZEOF_BPF_TCP_SOCK))
