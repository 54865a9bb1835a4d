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
"""
from __future__ import annotations

from ..btf import Kind
from ..btf.relo import target_btf
from ..errors import BtfError

__all__ = ["sk_buff", "net_device", "SK_BUFF_FIELDS"]

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
