"""CO-RE: objects built on vmlinux.h relocate against the running kernel's BTF, in
pyebpf.load and in pyebpf.kernel.load_object, and give the kernel's results."""
from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest
from scapy.all import IP, TCP, UDP, Ether, raw

import pyebpf
import pyebpf.kernel
from pyebpf.btf import relo
from pyebpf.errors import ElfError
from pyebpf.pcap.report import read_line

import bpfc
import toolpath
from recorded_kernel import count_comparison
from skbdiff import EXPORTED, engine_fields

PACKETS = {
    "tcp": raw(Ether() / IP(src="10.0.0.1", dst="10.0.0.2", ttl=9) / TCP(dport=80) / (b"x" * 20)),
    "udp": raw(Ether() / IP(src="10.0.0.3", dst="10.0.0.4", tos=4) / UDP(dport=53) / b"y"),
    "arp": raw(Ether(type=0x0806) / (b"\0" * 28)),
}

# One body for both builds: against vmlinux.h every access below is a CO-RE relocation,
# against the UAPI headers none is.
BODY = """
SEC("tc")
int fields(struct __sk_buff *skb)
{
    void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
    struct iphdr *ip = data + sizeof(struct ethhdr);
    __u32 r = skb->len * 3 + skb->protocol + skb->ifindex;
    if ((void *)(ip + 1) > end)
        return r;
    r += ip->ttl * 5 + ip->protocol * 7 + ip->ihl * 11 + ip->version * 13 + ip->tos;
    skb->mark = ip->saddr ^ ip->daddr;
    skb->cb[1] = ip->tot_len;
    return r;
}
char _license[] SEC("license") = "GPL";
"""

CORE_CHECKS = """
struct sk_buff___old { int not_there_field; } __attribute__((preserve_access_index));
struct sk_buff___new { unsigned int len; } __attribute__((preserve_access_index));
enum bpf_ret_code___mine { BPF_REDIRECT___mine = 1 };

SEC("tc")
int checks(struct __sk_buff *skb)
{
    __u32 r = 0;
    if (bpf_core_field_exists(struct sk_buff___old, not_there_field))
        r |= 1;
    if (bpf_core_field_exists(struct sk_buff___new, len))
        r |= 2;
    if (bpf_core_type_exists(struct sk_buff))
        r |= 4;
    if (bpf_core_type_exists(struct sk_buff___old))
        r |= 8;
    if (bpf_core_enum_value_exists(enum bpf_ret_code, BPF_LWT_REROUTE))
        r |= 16;
    r |= bpf_core_enum_value(enum bpf_ret_code___mine, BPF_REDIRECT___mine) << 8;
    r |= bpf_core_type_size(struct __sk_buff) << 16;
    r += bpf_core_field_size(struct iphdr, saddr) << 28;
    return r;
}

SEC("tc")
int guarded(struct __sk_buff *skb)
{
    struct sk_buff___old *o = (void *)(long)skb->data;
    if ((void *)(o + 1) > (void *)(long)skb->data_end)
        return 1;
    if (bpf_core_field_exists(struct sk_buff___old, not_there_field))
        return o->not_there_field;
    return 2;
}
char _license[] SEC("license") = "GPL";
"""

UNGUARDED = """
struct sk_buff___old { int not_there_field; } __attribute__((preserve_access_index));
SEC("tc")
int unguarded(struct __sk_buff *skb)
{
    struct sk_buff___old *o = (void *)(long)skb->data;
    if ((void *)(o + 1) > (void *)(long)skb->data_end)
        return 1;
    return o->not_there_field;
}
char _license[] SEC("license") = "GPL";
"""

MATCHES = """
struct udphdr___same { __be16 source; __be16 dest; __be16 len; __sum16 check; };
struct udphdr___wider { __be16 source; __be16 dest; __u32 len; __sum16 check; };
struct udphdr___extra { __be16 source; int not_there; };
struct list_head___same { struct list_head *next; struct list_head *prev; };

SEC("tc")
int matches(struct __sk_buff *skb)
{
    return bpf_core_type_matches(struct udphdr___same) |
           bpf_core_type_matches(struct udphdr___wider) << 1 |
           bpf_core_type_matches(struct udphdr___extra) << 2 |
           bpf_core_type_exists(struct udphdr___wider) << 3 |
           bpf_core_type_matches(struct list_head___same) << 4;
}
char _license[] SEC("license") = "GPL";
"""

VMLINUX_PRELUDE = """\
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
"""


def _vmlinux_dir():
    """A directory holding vmlinux.h dumped from the target BTF pyebpf ships (the same
    header, so the same objects, on every machine)."""
    bpftool = toolpath.find("bpftool") or toolpath.find("/usr/sbin/bpftool")
    if bpftool is None:
        pytest.skip("bpftool not installed (apt-get install bpftool)")
    # cached by the shipped BTF's contents: tools/gen_target_btf.py may rewrite it
    shipped = hashlib.sha256(Path(relo.SHIPPED).read_bytes()).hexdigest()[:16]
    header = bpfc._cached(f"vmlinux-{shipped}", ".h", lambda: subprocess.run(
        [bpftool, "btf", "dump", "file", relo.SHIPPED, "format", "c"], check=True,
        capture_output=True).stdout)
    # named by the header's source: the compile cache keys objects by their -I flags, so
    # a regenerated target BTF gives new objects, not ones built on the old header
    out = bpfc.cache_dir() / f"vmlinux-include-{shipped}"
    out.mkdir(exist_ok=True)
    if not (out / "vmlinux.h").exists() or (out / "vmlinux.h").read_bytes() != header:
        tmp = out / f"vmlinux.h.{os.getpid()}.tmp"
        tmp.write_bytes(header)
        tmp.replace(out / "vmlinux.h")
    return out


def _core_object(source: str) -> bytes:
    # the header's directory is per user (the compile cache's): its name is mapped to one
    # that every user's build writes into the object's BTF, so the kernel answers
    # recorded as root are the answers to the loads of an unprivileged run
    include = _vmlinux_dir()
    return bpfc.compile_object(VMLINUX_PRELUDE + source, prelude=False,
                               flags=("-O2", f"-I{include}",
                                      f"-ffile-prefix-map={include}=vmlinux-include"))


def _same_run(obj, kobj, name, packet):
    prog = obj.program(name)
    ours = prog.run(packet, **engine_fields(prog.prog_type, None))
    theirs = kobj.program(name).test_run(packet, ctx={})
    assert ours.retval & 0xFFFFFFFF == theirs.retval, f"{name}: retval differs"
    assert ours.data_out == theirs.data, f"{name}: packet differs"
    mine = ours.skb.as_dict()
    for field in EXPORTED:
        got = list(mine[field]) if field == "cb" else mine[field]
        assert got == theirs.skb[field], f"{name}: __sk_buff.{field} differs"
    count_comparison()
    return ours.retval & 0xFFFFFFFF


@pytest.mark.parametrize("packet", sorted(PACKETS))
def test_vmlinux_h_build_gives_the_kernels_results(packet):
    data = _core_object(BODY)
    with pyebpf.kernel.load_object(data) as kobj:
        _same_run(pyebpf.load(data), kobj, "fields", PACKETS[packet])


@pytest.mark.parametrize("packet", sorted(PACKETS))
def test_vmlinux_h_and_uapi_builds_give_identical_results(packet):
    core = pyebpf.load(_core_object(BODY)).program("fields").run(PACKETS[packet])
    uapi_data = bpfc.compile_object(BODY)
    uapi = pyebpf.load(uapi_data).program("fields").run(PACKETS[packet])
    assert (core.retval, core.data_out, core.skb.as_dict()) == \
        (uapi.retval, uapi.data_out, uapi.skb.as_dict())
    with pyebpf.kernel.load_object(uapi_data) as kobj:
        assert kobj.program("fields").test_run(PACKETS[packet]).retval == \
            core.retval & 0xFFFFFFFF
    count_comparison()


def test_field_type_and_enum_relocations_give_the_kernels_answers():
    data = _core_object(CORE_CHECKS)
    with pyebpf.kernel.load_object(data) as kobj:
        r = _same_run(pyebpf.load(data), kobj, "checks", PACKETS["tcp"])
    # sk_buff___new.len exists, sk_buff___old.not_there_field does not; the flavor is
    # dropped for types and enumerators alike, so struct sk_buff___old exists
    assert r & 0xFF == 2 | 4 | 8 | 16
    assert r >> 8 & 0xFF == 7          # the kernel's BPF_REDIRECT, not the local 1


def test_type_matches_wants_every_member_with_the_same_shape():
    data = _core_object(MATCHES)
    with pyebpf.kernel.load_object(data) as kobj:
        # a wider len or a member the kernel lacks do not match, nor does the same
        # layout when its integers are named otherwise (clang's "unsigned short", gcc's
        # "short unsigned int" in the kernel's BTF: libbpf compares the names too)
        assert _same_run(pyebpf.load(data), kobj, "matches", PACKETS["tcp"]) == 8 | 16


def test_a_guarded_read_of_a_missing_field_loads_and_runs_as_in_the_kernel():
    data = _core_object(CORE_CHECKS)
    with pyebpf.kernel.load_object(data) as kobj:
        assert _same_run(pyebpf.load(data), kobj, "guarded", PACKETS["tcp"]) == 2


def test_an_unguarded_read_of_a_missing_field_is_poisoned_as_libbpf_does():
    data = _core_object(UNGUARDED)
    spec = pyebpf.elf.parse(data)
    (poisoned,) = spec.programs["unguarded"].core_poisoned
    assert "struct sk_buff___old.not_there_field" in poisoned.reason
    assert "candidates: [" in poisoned.reason and "struct sk_buff" in poisoned.reason
    with pytest.raises(ElfError, match=r"unknown#195896080.*CO-RE relocation #\d+ "
                                        r"\(field_byte_offset\)"):
        pyebpf.load(data)
    with pytest.raises(pyebpf.errors.KernelError, match="unknown#195896080"):
        pyebpf.kernel.load_object(data)


# An agent's own object declares the value its programs share (Inspektor Gadget's socket
# enricher, gadget_socket_value); a program built on an older copy of the struct finds
# the field where that object puts it, and the kernel's types in the kernel's BTF.
PROVIDER = """
struct shared_value { __u64 first; __u32 second; __u32 wanted; };
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct shared_value);
} shared SEC(".maps");
SEC("tc")
int provide(struct __sk_buff *skb) { return 0; }
char _license[] SEC("license") = "GPL";
"""

CONSUMER = """
struct shared_value { __u32 wanted; } __attribute__((preserve_access_index));
SEC("tc")
int consume(struct __sk_buff *skb)
{
    void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
    struct shared_value *v = data;
    if (data + 16 > end)
        return 1;
    return v->wanted + (bpf_core_field_exists(struct shared_value, wanted) << 16);
}
char _license[] SEC("license") = "GPL";
"""


def test_extra_relocation_targets_give_their_types_beside_the_kernels():
    extra = pyebpf.elf.parse(bpfc.compile_object(PROVIDER)).btf
    spec = pyebpf.elf.parse(_core_object(CONSUMER), extra_btf=[extra])
    packet = bytes(range(64))
    with pyebpf.kernel.load_object(spec) as kobj:
        # wanted is at offset 12 in the provider's struct, not the local 0
        assert _same_run(pyebpf.load(spec), kobj, "consume", packet) == \
            (1 << 16) + int.from_bytes(packet[12:16], "little")


def test_without_the_extra_target_its_struct_is_poisoned_in_both():
    data = _core_object(CONSUMER)
    (poisoned, *_) = pyebpf.elf.parse(data).programs["consume"].core_poisoned
    assert "struct shared_value.wanted" in poisoned.reason and "candidates: none" in \
        poisoned.reason
    with pytest.raises(ElfError, match=r"unknown#195896080"):
        pyebpf.load(data)
    with pytest.raises(pyebpf.errors.KernelError, match="unknown#195896080"):
        pyebpf.kernel.load_object(data)


def test_a_target_btf_that_cannot_be_read_is_a_one_line_error(tmp_path):
    with pytest.raises(ElfError, match=r"cannot read the target BTF .*missing\.btf"):
        pyebpf.load(_core_object(BODY), btf=tmp_path / "missing.btf")


def test_a_target_with_the_compilers_layout_leaves_the_instructions_as_compiled():
    # vmlinux.h came from this kernel, so the object's own BTF and the kernel's agree
    data = _core_object(BODY)
    spec = pyebpf.elf.parse(data)
    assert pyebpf.elf.parse(data, btf=spec.btf).programs["fields"].insns == \
        spec.programs["fields"].insns


def test_tcsim_relocates_against_the_btf_it_is_given(tmp_path, capsys):
    from pyebpf.pcap import tcsim
    sample = Path(__file__).resolve().parent.parent / "examples" / "sample.pcap"
    reports = {}
    for build, data in (("core", _core_object(BODY)), ("uapi", bpfc.compile_object(BODY))):
        (tmp_path / f"{build}.o").write_bytes(data)
        extra = ["--btf", relo.VMLINUX] if build == "core" else []
        assert tcsim.main([str(tmp_path / f"{build}.o"), "-r", str(sample), *extra,
                           "--report", str(tmp_path / f"{build}.json")]) == 0
        # the two builds differ in code, so in instructions run, and in nothing else
        reports[build] = [{k: v for k, v in read_line(line).items() if k != "instructions"}
                          for line in (tmp_path / f"{build}.json").read_text().splitlines()]
    assert reports["core"] == reports["uapi"]


def test_tcsim_names_a_target_btf_it_cannot_read(tmp_path, capsys):
    from pyebpf.pcap import tcsim
    obj = tmp_path / "core.o"
    obj.write_bytes(_core_object(BODY))
    sample = Path(__file__).resolve().parent.parent / "examples" / "sample.pcap"
    rc = tcsim.main([str(obj), "-r", str(sample), "--btf", str(tmp_path / "none.btf")])
    err = capsys.readouterr().err.splitlines()
    assert rc == 1 and len(err) == 1 and "cannot read the target BTF" in err[0] and \
        "none.btf" in err[0]


@pytest.mark.parametrize("program, source", [("fields", BODY), ("checks", CORE_CHECKS),
                                             ("guarded", CORE_CHECKS), ("matches", MATCHES)])
def test_libbpf_relocates_the_object_to_the_same_results(program, source, tmp_path,
                                                         live_kernel):
    """libbpf (through ctypes) loads the object itself: its relocation and ours run the
    same, packet by packet."""
    import libbpfobj
    path = tmp_path / "core.o"
    path.write_bytes(_core_object(source))
    ours = pyebpf.load(path).program(program)
    with libbpfobj.LoadedObject(str(path)) as lobj:
        for name, packet in sorted(PACKETS.items()):
            retval, data_out, _ctx = libbpfobj.test_run(lobj.programs[program].fd, packet)
            assert ours.run(packet).retval & 0xFFFFFFFF == retval, f"{name}: retval differs"


@pytest.mark.parametrize("program, source", [("fields", BODY), ("checks", CORE_CHECKS),
                                             ("guarded", CORE_CHECKS), ("matches", MATCHES)])
def test_libbpf_sends_the_kernel_the_instructions_pyebpf_relocates(program, source, tmp_path,
                                                                   libbpf_instructions):
    """___flavor structs, field-exists checks, poisoned dead code: libbpf's relocated
    instructions (bpf_program__insns after loading) are pyebpf's, slot for slot."""
    import libbpfobj
    data = _core_object(source)

    def ask():
        path = tmp_path / "core.o"
        path.write_bytes(data)
        with libbpfobj.LoadedObject(str(path)) as lobj:
            return lobj.programs[program].insns
    theirs = libbpf_instructions(VMLINUX_PRELUDE + source, program, ask)
    ours = pyebpf.elf.parse(data).programs[program].insns
    differ = [pc for pc in range(len(ours) // 8) if ours[8 * pc:8 * pc + 8] !=
              theirs[8 * pc:8 * pc + 8]]
    assert len(ours) == len(theirs) and not differ, f"instructions differ at pcs {differ}"
    count_comparison()
