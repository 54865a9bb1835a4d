"""Kernel objects behind the context: the modelled struct sk_buff and net_device
(pyebpf.skb.kern) hold what the kernel's hold for the same packet and __sk_buff (read in
the kernel through bpf_cast_to_kern_ctx by a libbpf-loaded program), and the verifier
decides reads through bpf_cast_to_kern_ctx's and bpf_rdonly_cast's pointers as the
kernel does."""
from __future__ import annotations

import struct

import pytest
from scapy.all import IP, TCP, UDP, Dot1Q, Ether, raw

import pyebpf
import pyebpf.kernel
from pyebpf import isa, verifier
from pyebpf.btf import Kind, relo
from pyebpf.errors import KernelError, VerifierError
from pyebpf.isa import SK_BUFF_LAYOUT
from pyebpf.skb import kern

from recorded_kernel import count_comparison
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


# --- the verifier's reads through the kernel pointers (check_ptr_to_btf_access) --------

CAST = """
extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;

SEC("tc")
int prog(struct __sk_buff *ctx)
{
    struct sk_buff *skb = bpf_cast_to_kern_ctx(ctx);
    __u64 out = 0;
    %s
    return out;
}
char _license[] SEC("license") = "GPL";
"""

READS = {
    "a_scalar_member": "out = skb->len;",
    "a_bitfield": "out = skb->pkt_type;",
    "a_pointer_member_then_its_struct": "out = skb->dev->ifindex;",
    "a_member_of_a_nested_union": "out = skb->mark;",
    "a_write": "skb->mark = 5;",
    "past_the_struct": "out = *(__u32 *)((char *)skb + 224);",
    "inside_a_pointer_member": "out = *(__u32 *)((char *)skb + 220);",
    "across_a_member_end": "out = *(__u64 *)((char *)skb + 108);",
    "at_a_variable_offset": "out = *((char *)skb + (ctx->len & 7));",
    "before_the_struct": "out = *(__u32 *)((char *)skb - 4);",
    "a_context_pointer_cast_read_only":
        "struct sk_buff *r = bpf_rdonly_cast(skb, bpf_core_type_id_kernel(struct sk_buff));"
        " out = r->len;",
    "across_a_member_end_through_rdonly_cast":
        "struct sk_buff *r = bpf_rdonly_cast(skb, bpf_core_type_id_kernel(struct sk_buff));"
        " out = *(__u64 *)((char *)r + 108);",
    "reads_anywhere_through_a_cast_to_void":
        "char *v = bpf_rdonly_cast(skb, 0); out = v[100] + *(__u64 *)(v - 8) +"
        " v[ctx->len & 0xff];",
    "a_write_through_a_cast_to_void": "char *v = bpf_rdonly_cast(skb, 0); v[3] = 1;",
    "a_write_through_a_cast_to_a_struct":
        "struct sk_buff *r = bpf_rdonly_cast(skb, bpf_core_type_id_kernel(struct sk_buff));"
        " r->mark = 1;",
    "a_write_through_a_pointer_member": "skb->dev->mtu = 1;",
    "a_cast_to_a_type_that_is_not_a_struct":
        "out = (long)bpf_rdonly_cast(skb, bpf_core_type_id_kernel(__u32));",
    "a_cast_of_a_pointer_that_is_not_the_context":
        "out = (long)bpf_cast_to_kern_ctx(&out);",
}


@pytest.mark.parametrize("case", sorted(READS))
def test_the_verifier_reads_kernel_structs_as_the_kernel_does(case):
    data = _core_object(CAST % READS[case])
    prog = pyebpf.elf.parse(data).programs["prog"]
    try:
        verifier.check(isa.unpack_program(prog.instructions({})),
                       isa.ProgType.BPF_PROG_TYPE_SCHED_CLS)
        ours = None
    except VerifierError as exc:
        ours = str(exc).split(": ", 1)[-1]
    try:
        pyebpf.kernel.load_object(data).close()
        theirs = None
    except KernelError as exc:
        theirs = str(exc).split("refused the program: ", 1)[-1]
    count_comparison()
    assert ours == theirs
