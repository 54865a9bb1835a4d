"""``struct sk_buff`` and its ``struct net_device`` as the kernel holds them, the
objects ``bpf_cast_to_kern_ctx`` and ``bpf_rdonly_cast`` let a program read: bytes laid
out as the target BTF says (:func:`pyebpf.btf.relo.target_btf`), the fields the engine
models filled in from a run's ``__sk_buff`` values, every other byte zero.

Filled in ``struct sk_buff``: ``len``, ``data_len`` (0: the engine's packets are
linear), ``protocol``, ``mark``, ``priority``, ``vlan_tci``, ``vlan_proto``, ``hash``,
``queue_mapping``, ``tc_index``, ``pkt_type``, ``skb_iif`` (the ``__sk_buff``
``ingress_ifindex``), ``tstamp``, ``dev`` (the address given for the device); in
``struct net_device``: ``ifindex``.  Values are stored as the kernel stores them: the
``__sk_buff`` view gives ``protocol`` and ``vlan_proto`` as the raw 16-bit field, in
network byte order, and so are they written here.

:func:`kernel_socket` lays out a modelled socket (:class:`pyebpf.environment.Socket`)
as the kernel struct its protocol and family make it (``struct tcp_sock``,
``tcp6_sock``, ``udp_sock`` or ``udp6_sock``), what the ``bpf_skc_to_*`` helpers point
at.  Filled in: of ``struct sock_common`` the family, state, local port (``skc_num``),
remote port (``skc_dport``), IPv4 and IPv6 addresses (as ``struct bpf_sock`` shows
them), bound device, ``skc_reuseport`` and ``skc_ipv6only``; of ``struct sock``
``sk_protocol``, ``sk_type``, ``sk_mark``, ``sk_priority``; of ``struct inet_sock``
``inet_sport`` and ``inet_saddr``; of ``struct tcp_sock`` what ``tcp_init_sock``
leaves (``snd_cwnd`` 10, ``snd_ssthresh`` infinite, ``mss_cache`` 536, ``rtt_min``'s
samples ~0); of an IPv6 socket's ``struct ipv6_pinfo`` its ``saddr``, and
``inet_sock.pinet6`` points at it.  Every other byte is zero: other pointers are NULL
(a program's load through one reads 0, as the kernel's faulting probe load does), the
cookie is 0 (the kernel gives a socket one only when something asks for it), the
timestamps of ``rtt_min`` are 0.

:func:`request_sock_layout` gives where the request socket ``bpf_sk_assign_tcp_reqsk``
makes (what ``bpf_skc_to_tcp_request_sock`` points at, :data:`REQSK_ADDRESS`) holds
the values the model fills in its ``struct tcp_request_sock``
(:data:`REQUEST_SOCK_FIELDS`): what ``inet_reqsk_alloc`` and the kfunc write that does
not depend on the kernel's own objects or clock, and its cookie once made.

:func:`cgroup_layout` gives where the cgroup kfuncs' model (``pyebpf/tasks.pxi``) shows a
cgroup's values in its ``struct cgroup`` and ``struct kernfs_node``.

:func:`nf_conn_layout` gives where the conntrack model (``skb/conntrack.pxi``) keeps an
entry's values in its ``struct nf_conn``.
"""
from __future__ import annotations

from ..btf import Kind
from ..btf.relo import target_btf
from ..errors import BtfError

__all__ = ["sk_buff", "net_device", "SK_BUFF_FIELDS", "kernel_socket", "KERNEL_SOCKETS",
           "nf_conn_layout", "KERN_SKB_ADDRESS", "KERN_DEV_ADDRESS", "TEST_RUN_HEADROOM",
           "kern_ctx_layout", "cgroup_layout", "CGROUP_ADDRESS", "CGROUP_STRIDE",
           "KERNFS_NODE_ADDRESS", "KERNFS_NODE_STRIDE", "CGROUP1_ADDRESS",
           "KERNFS_NODE1_ADDRESS", "task_flags_offset", "css_layout", "REQSK_ADDRESS",
           "REQUEST_SOCK_FIELDS", "request_sock_layout", "request_socket", "request_socket_size", "CSS_SET_ADDRESS", "CSS_SET_STRIDE",
           "task_css_layout"]

#: Where a run's ``struct sk_buff`` is said to be: what ``bpf_cast_to_kern_ctx`` returns
#: (a direct-map address, away from :mod:`pyebpf.trace.machine`'s), and its
#: ``struct net_device``, what ``skb->dev`` holds.
KERN_SKB_ADDRESS = 0xFFFF888180000000
KERN_DEV_ADDRESS = 0xFFFF888180001000
#: Where the request socket a run's bpf_sk_assign_tcp_reqsk made is said to be (its
#: ``struct tcp_request_sock``, past the net_device's page).
REQSK_ADDRESS = 0xFFFF888180040000
#: Where the Environment's cgroups are said to be: its k-th cgroup's ``struct cgroup`` at
#: ``CGROUP_ADDRESS + k * CGROUP_STRIDE`` (what bpf_cgroup_from_id returns), the
#: ``struct kernfs_node`` its ``kn`` points at at ``KERNFS_NODE_ADDRESS + k *
#: KERNFS_NODE_STRIDE``.
CGROUP_ADDRESS = 0xFFFF888180100000
CGROUP_STRIDE = 0x1000
KERNFS_NODE_ADDRESS = 0xFFFF888190000000
KERNFS_NODE_STRIDE = 0x100
#: Where the machine's tasks' cgroup v1 cgroups are said to be (Task.cgroup1, what
#: bpf_task_get_cgroup1 returns): the k-th of the machine's at ``CGROUP1_ADDRESS + k *
#: CGROUP_STRIDE``, its kernfs_node at ``KERNFS_NODE1_ADDRESS + k * KERNFS_NODE_STRIDE``.
CGROUP1_ADDRESS = 0xFFFF888188000000
KERNFS_NODE1_ADDRESS = 0xFFFF888198000000
#: Where a machine's tasks' ``struct css_set`` is said to be (what ``task->cgroups``
#: holds where the machine's kernel memory does not say): the current task's at
#: ``CSS_SET_ADDRESS``, its ``dfl_cgrp`` the Environment's ``task_cgroup``; every other
#: task's at ``CSS_SET_ADDRESS + CSS_SET_STRIDE``, its ``dfl_cgrp`` the root cgroup.
CSS_SET_ADDRESS = 0xFFFF8881A0000000
CSS_SET_STRIDE = 0x1000
#: The headroom before a packet BPF_PROG_TEST_RUN builds (bpf_prog_test_run_skb reserves
#: NET_SKB_PAD + NET_IP_ALIGN, 64 + 0 on x86-64): ``skb->head`` is put that far before
#: the engine's packet start, so ``data - head`` and the header offsets are the kernel's.
TEST_RUN_HEADROOM = 64

#: ``struct sk_buff`` field -> the ``__sk_buff`` field its value comes from
#: (``bpf_convert_ctx_access`` reads each of these from that sk_buff field).
SK_BUFF_FIELDS = {
    "len": "len", "protocol": "protocol", "mark": "mark", "priority": "priority",
    "vlan_tci": "vlan_tci", "vlan_proto": "vlan_proto", "hash": "hash",
    "queue_mapping": "queue_mapping", "tc_index": "tc_index", "pkt_type": "pkt_type",
    "skb_iif": "ingress_ifindex", "tstamp": "tstamp",
}


def _struct(btf, name: str):
    found = btf.by_name(name, Kind.STRUCT)
    if not found:
        raise BtfError(f"the target BTF has no struct {name}")
    return found[0]


def _lay_out(t, values: dict[str, int]) -> bytes:
    """``t``'s bytes: zero, but for the named leaf fields (dotted, as ``Type.fields``
    names them), each stored little-endian in its bytes or bits."""
    fields = {f.name: f for f in t.fields()}
    out = bytearray(t.byte_size)
    for name, value in values.items():
        f = fields.get(name)
        if f is None:
            raise BtfError(f"{t.describe()} has no field {name!r}")
        if f.bits:
            # Field.bit_offset counts from the innermost struct, which starts on a byte
            bit = f.offset * 8 + f.bit_offset % 8
            word = int.from_bytes(out, "little")
            mask = ((1 << f.bits) - 1) << bit
            word = word & ~mask | (value << bit) & mask
            out[:] = word.to_bytes(len(out), "little")
        else:
            out[f.offset:f.offset + f.size] = (value % (1 << 8 * f.size)).to_bytes(f.size,
                                                                                  "little")
    return bytes(out)


def sk_buff(skb: dict, *, dev: int = 0, btf=None) -> bytes:
    """The ``struct sk_buff`` of a packet whose ``__sk_buff`` values are ``skb`` (as
    ``Result.skb.as_dict()`` gives them), its ``dev`` pointer ``dev``."""
    t = _struct(target_btf(btf), "sk_buff")
    values = {kern: skb[ctx] for kern, ctx in SK_BUFF_FIELDS.items()}
    return _lay_out(t, {**values, "data_len": 0, "dev": dev})


def net_device(skb: dict, *, btf=None) -> bytes:
    """The ``struct net_device`` the packet is on (``ifindex``)."""
    return _lay_out(_struct(target_btf(btf), "net_device"), {"ifindex": skb["ifindex"]})


#: Where a field of the run-time ``struct sk_buff`` takes its value from: KS_CTX an
#: ``__sk_buff`` field (its id in :mod:`pyebpf.verifier.rules`), the others the skb
#: model's buffer (``head``, ``data``, ``tail`` and the three header offsets, relative to
#: the head), ``dev``'s address, the ``__sk_buff`` ``cb`` bytes (the qdisc_skb_cb data)
#: and the device's ``ifindex``.
(KS_CTX, KS_DEV, KS_HEAD, KS_DATA, KS_TAIL, KS_MAC, KS_NETWORK, KS_TRANSPORT, KS_CB,
 KS_IFINDEX) = range(10)
#: ``struct sk_buff`` fields filled at run time besides :data:`SK_BUFF_FIELDS`
KERN_SKB_RUNTIME = {"dev": KS_DEV, "head": KS_HEAD, "data": KS_DATA, "tail": KS_TAIL,
                    "mac_header": KS_MAC, "network_header": KS_NETWORK,
                    "transport_header": KS_TRANSPORT}
#: where ``__sk_buff.cb`` is in ``sk_buff.cb``: ``struct qdisc_skb_cb``'s ``data``
QDISC_CB_DATA = 8


def kern_ctx_layout(btf=None) -> tuple[int, int, list[tuple[int, int, int, int, int, int, int]]]:
    """What the engine's ``bpf_cast_to_kern_ctx`` memory is made of: the sizes of
    ``struct sk_buff`` and ``struct net_device`` and, for each field it fills,
    ``(struct, source, argument, offset, size, bit, bits)``: struct 0 the sk_buff, 1
    the device; the source a KS_* code, its argument the ``__sk_buff`` field id for
    KS_CTX; the field's byte offset and size; for a bitfield its first bit, counted
    from the struct's start, and width (else 0, 0)."""
    from ..verifier.rules import FIELDS_BY_NAME
    b = target_btf(btf)
    skb, dev = _struct(b, "sk_buff"), _struct(b, "net_device")
    out = []

    def add(index, t, name, source, arg=0):
        f = {f.name: f for f in t.fields()}[name]
        bit = f.offset * 8 + f.bit_offset % 8 if f.bits else 0
        out.append((index, source, arg, f.offset, f.size, bit, f.bits))
    for kern_name, ctx_name in SK_BUFF_FIELDS.items():
        add(0, skb, kern_name, KS_CTX, FIELDS_BY_NAME[ctx_name].id)
    for kern_name, source in KERN_SKB_RUNTIME.items():
        add(0, skb, kern_name, source)
    cb = {f.name: f for f in skb.fields()}["cb"]
    out.append((0, KS_CB, 0, cb.offset + QDISC_CB_DATA, 20, 0, 0))
    add(1, dev, "ifindex", KS_IFINDEX)
    return skb.byte_size, dev.byte_size, out


#: (protocol, family) -> (the struct a socket is, the path of its struct inet_sock)
KERNEL_SOCKETS = {
    (6, 2): ("tcp_sock", "inet_conn.icsk_inet."),
    (6, 10): ("tcp6_sock", "tcp.inet_conn.icsk_inet."),
    (17, 2): ("udp_sock", "inet."), (17, 10): ("udp6_sock", "udp.inet."),
}
_TCP_INFINITE_SSTHRESH, _TCP_MSS_DEFAULT, _TCP_INIT_CWND = 0x7FFFFFFF, 536, 10


def _bound_v6_only(views) -> bool:
    """__inet6_bind makes a socket bound to an IPv6 address (not the wildcard, not
    v4-mapped) IPv6-only; the model's sockets with no remote end are bound ones."""
    a = views.local
    return views.family == 10 and views.remote is None and not a.is_unspecified \
        and a.ipv4_mapped is None


def kernel_socket_size(views, *, btf=None) -> int:
    """The size of the kernel struct of a socket whose engine form is ``views``."""
    return _struct(target_btf(btf), KERNEL_SOCKETS[views.protocol, views.family][0]).byte_size


def kernel_socket(sock, views, *, address: int = 0, btf=None) -> bytes:
    """The kernel struct of the modelled socket ``sock`` whose engine form is ``views``
    (:func:`pyebpf.environment.socket_views`), placed at ``address`` (what
    ``inet_sock.pinet6`` of an IPv6 socket is computed from; 0 leaves it NULL)."""
    from .. import isa
    name, inet = KERNEL_SOCKETS[views.protocol, views.family]
    t = _struct(target_btf(btf), name)
    common = inet + "sk.__sk_common."

    def field(f):
        off, size = isa.BPF_SOCK_LAYOUT[f][:2]
        return views.sock[off:off + size]

    def le(raw: bytes) -> int:
        return int.from_bytes(raw, "little")
    values = {
        common + "skc_family": views.family, common + "skc_state": views.state,
        common + "skc_num": views.lport,
        common + "skc_dport": le(views.rport.to_bytes(2, "big")),
        common + "skc_rcv_saddr": le(field("src_ip4")),
        common + "skc_daddr": le(field("dst_ip4")),
        common + "skc_v6_rcv_saddr.in6_u.u6_addr8": le(field("src_ip6")),
        common + "skc_v6_daddr.in6_u.u6_addr8": le(field("dst_ip6")),
        common + "skc_bound_dev_if": views.bound_dev_if,
        common + "skc_reuseport": int(sock.reuseport),
        common + "skc_ipv6only": int(sock.v6only or _bound_v6_only(views)),
        inet + "sk.sk_protocol": views.protocol,
        inet + "sk.sk_type": le(field("type")),
        inet + "sk.sk_mark": le(field("mark")),
        inet + "sk.sk_priority": le(field("priority")),
        inet + "inet_sport": le(views.lport.to_bytes(2, "big")),
        inet + "inet_saddr": le(field("src_ip4")),
    }
    if views.protocol == 6:
        tcp = "tcp." if views.family == 10 else ""
        values |= {tcp + "snd_cwnd": _TCP_INIT_CWND, tcp + "mss_cache": _TCP_MSS_DEFAULT,
                   tcp + "snd_ssthresh": _TCP_INFINITE_SSTHRESH}
        values |= {f"{tcp}rtt_min.s[{k}].v": 0xFFFFFFFF for k in range(3)}
    if views.family == 10:
        pinfo = {f.name: f for f in t.fields()}["inet6.saddr.in6_u.u6_addr8"].offset
        values |= {"inet6.saddr.in6_u.u6_addr8": le(field("src_ip6")),
                   inet + "pinet6": address + pinfo if address else 0}
    return _lay_out(t, values)


#: The ``struct tcp_request_sock`` fields of a request socket the model fills, in the
#: order of skb/helpers_sock.pxi's RQ_* codes: inet_reqsk_alloc's family and state
#: (TCP_NEW_SYN_RECV), reqsk_alloc's cleared tx queue (sk_tx_queue_clear), the listener
#: (rsk_listener), and what bpf_sk_assign_tcp_reqsk copies from its
#: ``struct bpf_tcp_req_attrs`` (syncookie 1, timeout TCP_TIMEOUT_INIT, ``ts_off``), and
#: the cookie (``ir_cookie``) once bpf_get_socket_cookie made it.
_REQ_COMMON = "req.req.__req_common."
_NO_QUEUE_MAPPING = 0xFFFF          # sk_tx_queue_clear
REQUEST_SOCK_FIELDS = (
    _REQ_COMMON + "skc_family", _REQ_COMMON + "skc_state",
    _REQ_COMMON + "skc_tx_queue_mapping", _REQ_COMMON + "skc_listener",
    "req.req.mss", "req.req.syncookie", "req.req.ts_recent", "req.req.timeout",
    "req.snd_wscale", "req.rcv_wscale", "req.tstamp_ok", "req.sack_ok", "req.wscale_ok",
    "req.ecn_ok", "req_usec_ts", _REQ_COMMON + "skc_cookie.counter", "ts_off",
)


def request_socket_size(*, btf=None) -> int:
    """The size of ``struct tcp_request_sock``."""
    return _struct(target_btf(btf), "tcp_request_sock").byte_size


def request_socket(h, views, *, listener: int, mark: int = 0, btf=None) -> bytes:
    """The ``struct tcp_request_sock`` of the half-open connection ``h``
    (:class:`pyebpf.environment.HalfOpen`) whose engine form is ``views``
    (:func:`pyebpf.environment.request_socket_views`), its listener's kernel struct at
    ``listener``: what ``inet_reqsk_alloc`` (family, state, ``rsk_listener``),
    ``reqsk_alloc`` (the cleared tx queue), ``tcp_v4_init_req`` / ``tcp_v6_init_req``
    (addresses), ``tcp_openreq_init`` (ports, ``rcv_isn``, ``rcv_nxt``, ``mss``,
    ``ts_recent``, the options and ``ir_mark``, the listener's ``mark``) and
    ``tcp_conn_request`` (the rx queue, ``snt_isn``, ``ts_off``, ``rcv_wscale``,
    ``timeout``) and ``reqsk_timer_handler`` (``num_timeout``, ``num_retrans``) write,
    and the cookie once given; every other byte zero."""
    from .. import isa
    t = _struct(target_btf(btf), "tcp_request_sock")
    c = _REQ_COMMON

    def le(raw: bytes) -> int:
        return int.from_bytes(raw, "little")

    def field(f):
        off, size = isa.BPF_SOCK_LAYOUT[f][:2]
        return views.sock[off:off + size]
    values = {
        c + "skc_family": views.family, c + "skc_state": views.state,
        c + "skc_num": views.lport, c + "skc_dport": le(views.rport.to_bytes(2, "big")),
        c + "skc_rcv_saddr": le(field("src_ip4")), c + "skc_daddr": le(field("dst_ip4")),
        c + "skc_v6_rcv_saddr.in6_u.u6_addr8": le(field("src_ip6")),
        c + "skc_v6_daddr.in6_u.u6_addr8": le(field("dst_ip6")),
        c + "skc_bound_dev_if": views.bound_dev_if,
        c + "skc_tx_queue_mapping": _NO_QUEUE_MAPPING, c + "skc_listener": listener,
        c + "skc_rx_queue_mapping": h.rx_queue & _NO_QUEUE_MAPPING,
        c + "skc_cookie.counter": h.cookie,
        "req.req.mss": h.mss, "req.req.ts_recent": h.ts_recent or 0,
        "req.req.timeout": isa.HZ,          # TCP_TIMEOUT_INIT
        # reqsk_timer_handler: a timeout counted, then inet_rtx_syn_ack's resend
        "req.req.num_timeout": h.num_retrans, "req.req.num_retrans": h.num_retrans,
        "req.snd_wscale": h.snd_wscale or 0, "req.rcv_wscale": h.rcv_wscale,
        "req.tstamp_ok": int(h.ts_recent is not None), "req.sack_ok": int(h.sack_ok),
        "req.wscale_ok": int(h.snd_wscale is not None), "req.ecn_ok": int(h.ecn_ok),
        "rcv_isn": h.rcv_isn, "snt_isn": h.snt_isn, "ts_off": h.ts_off,
        "rcv_nxt": (h.rcv_isn + 1) & 0xFFFFFFFF, "req.ir_mark": mark,
    }
    return _lay_out(t, values)


def request_sock_layout(*, btf=None) -> tuple[int, list[tuple[int, int, int, int]]]:
    """The size of ``struct tcp_request_sock`` and, for each of
    :data:`REQUEST_SOCK_FIELDS`, ``(offset, size, bit, bits)``: for a bitfield its first
    bit, counted from the struct's start, and width (else 0, 0)."""
    t = _struct(target_btf(btf), "tcp_request_sock")
    fields = {f.name: f for f in t.fields()}
    out = []
    for name in REQUEST_SOCK_FIELDS:
        f = fields.get(name)
        if f is None:
            raise BtfError(f"{t.describe()} has no field {name!r}")
        out.append((f.offset, f.size, f.offset * 8 + f.bit_offset % 8 if f.bits else 0,
                    f.bits))
    return t.byte_size, out


#: The ``struct nf_conntrack_tuple`` fields the conntrack model reads and writes, by the
#: names ``Type.fields`` gives them (dst.dir last: tuples compare up to it,
#: nf_ct_tuple_equal).
def cgroup_layout(*, btf=None) -> tuple[int, int, int]:
    """Where a modelled cgroup's values are, as the target BTF lays the structs out: the
    offsets of ``struct cgroup``'s ``level`` and ``kn``, and of ``struct kernfs_node``'s
    ``id``."""
    btf = target_btf(btf)
    for name, stride in (("cgroup", CGROUP_STRIDE), ("kernfs_node", KERNFS_NODE_STRIDE)):
        if _struct(btf, name).byte_size > stride:
            raise BtfError(f"struct {name} is larger than the {stride} bytes the model "
                           f"gives it")
    cgroup = {m.name: m.bit_offset // 8 for m in _struct(btf, "cgroup").members}
    kn = {m.name: m.bit_offset // 8 for m in _struct(btf, "kernfs_node").members}
    return cgroup["level"], cgroup["kn"], kn["id"]


def css_layout(*, btf=None) -> tuple[int, int, int]:
    """Where a modelled cgroup's css is and what it holds, as the target BTF lays the
    structs out: the offset of ``struct cgroup``'s ``self`` (its own
    ``cgroup_subsys_state``), and of ``struct cgroup_subsys_state``'s ``cgroup`` and
    ``parent``."""
    btf = target_btf(btf)
    cgroup = {m.name: m.bit_offset // 8 for m in _struct(btf, "cgroup").members}
    css = {m.name: m.bit_offset // 8 for m in _struct(btf, "cgroup_subsys_state").members}
    return cgroup["self"], css["cgroup"], css["parent"]


def task_css_layout(*, btf=None) -> tuple[int, int]:
    """Where a task's cgroups are, as the target BTF lays the structs out: the offset of
    ``struct task_struct``'s ``cgroups`` (its ``css_set``) and of ``struct css_set``'s
    ``dfl_cgrp``."""
    btf = target_btf(btf)
    if _struct(btf, "css_set").byte_size > CSS_SET_STRIDE:
        raise BtfError(f"struct css_set is larger than the {CSS_SET_STRIDE} bytes the model "
                       f"gives it")
    task = {m.name: m.bit_offset // 8 for m in _struct(btf, "task_struct").members}
    css_set = {m.name: m.bit_offset // 8 for m in _struct(btf, "css_set").members}
    return task["cgroups"], css_set["dfl_cgrp"]


def task_flags_offset(*, btf=None) -> int:
    """Where ``struct task_struct``'s ``flags`` (PF_KTHREAD) is, as the target BTF lays it
    out."""
    return next(m.bit_offset // 8 for m in _struct(target_btf(btf), "task_struct").members
                if m.name == "flags")


_TUPLE_FIELDS = {"saddr": "src.u3.all[0]", "sport": "src.u.all", "l3num": "src.l3num",
                 "daddr": "dst.u3.all[0]", "dport": "dst.u.all", "protonum": "dst.protonum",
                 "dir": "dst.dir"}


def nf_conn_layout(*, btf=None) -> dict[str, int]:
    """Where the conntrack model (``skb/conntrack.pxi``) keeps an entry's values in its
    ``struct nf_conn``, as the target BTF lays the struct out: the struct's size, the
    offsets of ``timeout``, ``zone``, ``status``, ``mark`` and of the two
    ``tuplehash[].tuple``, and of each tuple field within a tuple (``t_saddr``, ...)."""
    btf = target_btf(btf)
    conn = {f.name: f for f in _struct(btf, "nf_conn").fields()}
    tup = _struct(btf, "nf_conntrack_tuple")
    tfields = {f.name: f for f in tup.fields()}
    out = {"size": _struct(btf, "nf_conn").byte_size, "tuple_size": tup.byte_size}
    for name in ("timeout", "status", "mark"):
        out[name] = conn[name].offset
    out["zone"] = conn["zone.id"].offset
    for d in (0, 1):
        out[f"tuple{d}"] = conn[f"tuplehash[{d}].tuple.src.u3.all[0]"].offset
    for key, name in _TUPLE_FIELDS.items():
        out[f"t_{key}"] = tfields[name].offset
    if out["t_dir"] != tup.byte_size - 1:
        raise BtfError("struct nf_conntrack_tuple does not end in dst.dir")
    return out
