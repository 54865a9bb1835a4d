"""The modelled struct sk_buff and net_device (pyebpf.skb.kern) hold what the kernel's
hold for the same packet and __sk_buff: read in the kernel through
bpf_cast_to_kern_ctx by a libbpf-loaded program."""
from __future__ import annotations

import struct

import pytest
from scapy.all import IP, TCP, UDP, Dot1Q, Ether, raw

import pyebpf
from pyebpf.btf import Kind, relo
from pyebpf.isa import SK_BUFF_LAYOUT
from pyebpf.skb import kern

from skbdiff import engine_fields
from test_core import _core_object

FIELDS = ("len", "data_len", "protocol", "pkt_type", "mark", "priority", "queue_mapping",
          "hash", "tc_index", "vlan_tci", "vlan_proto", "skb_iif", "tstamp")
READER = """
extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;
__u64 out[%d];

SEC("tc")
int kern(struct __sk_buff *ctx)
{
    struct sk_buff *skb = bpf_cast_to_kern_ctx(ctx);
    %s
    out[%d] = skb->dev->ifindex;
    return 0;
}
char _license[] SEC("license") = "GPL";
""" % (len(FIELDS) + 1, "\n    ".join(f"out[{i}] = skb->{f};" for i, f in enumerate(FIELDS)),
       len(FIELDS))

PACKETS = {
    "tcp": raw(Ether(dst="00:00:00:00:00:00") / IP() / TCP()),
    "udp-broadcast": raw(Ether() / IP() / UDP() / b"payload"),
    "vlan": raw(Ether(dst="02:00:00:00:00:01") / Dot1Q(vlan=5) / IP() / TCP()),
}
CTX = {"mark": 7, "priority": 3, "ifindex": 1}


def _ctx_bytes(ctx: dict) -> bytes:
    out = bytearray(SK_BUFF_LAYOUT["ifindex"][0] + 4)
    for name, value in ctx.items():
        struct.pack_into("<I", out, SK_BUFF_LAYOUT[name][0], value)
    return bytes(out)


@pytest.mark.parametrize("packet", sorted(PACKETS))
def test_the_modelled_sk_buff_holds_what_the_kernels_holds(packet, tmp_path, live_kernel):
    import libbpfobj
    path = tmp_path / "kern.o"
    path.write_bytes(_core_object(READER))
    with libbpfobj.LoadedObject(str(path)) as lobj:
        libbpfobj.test_run(lobj.programs["kern"].fd, PACKETS[packet], _ctx_bytes(CTX))
        bss = next(n for n in lobj.maps if n.endswith(".bss"))
        raw_out = lobj.lookup(bss, bytes(4), 8 * (len(FIELDS) + 1))
    theirs = dict(zip(FIELDS + ("dev->ifindex",), struct.unpack(f"<{len(FIELDS) + 1}Q",
                                                                raw_out)))
    prog = pyebpf.Program.from_asm("r0 = 0\nexit\n", "sched_cls")
    skb = prog.run(PACKETS[packet], **engine_fields(prog.prog_type, CTX)).skb.as_dict()
    btf = relo.target_btf()
    sk_buff = btf.by_name("sk_buff", Kind.STRUCT)[0].decode(kern.sk_buff(skb))
    dev = btf.by_name("net_device", Kind.STRUCT)[0].decode(kern.net_device(skb))
    ours = {f: sk_buff[f] for f in FIELDS} | {"dev->ifindex": dev["ifindex"]}
    assert ours == theirs
