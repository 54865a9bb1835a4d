"""The target BTF pyebpf ships: what tools/gen_target_btf.py makes of this kernel's BTF,
relocating CO-RE programs as the running kernel's BTF does, and the target when the
running kernel's cannot be read."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import pyebpf
from pyebpf import isa, kconfig
from pyebpf.btf import Btf, Kind, relo
from pyebpf.btf.writer import encode

from test_core import BODY, CORE_CHECKS, MATCHES, _core_object

ROOT = Path(__file__).resolve().parent.parent

# Offsets, sizes, bitfield shifts and existence of the kernel objects' fields, and enum
# values: everything a program compiled on vmlinux.h asks of the target.
KERNEL_FIELDS = """
SEC("tc")
int kernel_fields(struct __sk_buff *ctx)
{
    struct sk_buff *skb = 0;
    __u64 r = bpf_core_field_offset(struct sk_buff, mark);
    r = r * 31 + bpf_core_field_offset(struct sk_buff, len);
    r = r * 31 + bpf_core_field_offset(struct sk_buff, dev);
    r = r * 31 + bpf_core_field_offset(struct sk_buff, vlan_tci);
    r = r * 31 + bpf_core_field_size(struct sk_buff, protocol);
    r = r * 31 + bpf_core_field_offset(struct sock, sk_rcvbuf);
    r = r * 31 + bpf_core_field_offset(struct sock_common, skc_daddr);
    r = r * 31 + bpf_core_field_offset(struct tcp_sock, snd_cwnd);
    r = r * 31 + bpf_core_field_offset(struct net_device, ifindex);
    r = r * 31 + bpf_core_field_offset(struct net_device, mtu);
    r = r * 31 + bpf_core_type_size(struct sk_buff);
    r = r * 31 + bpf_core_type_size(struct net_device);
    r = r * 31 + bpf_core_field_exists(struct sk_buff, tstamp_type);
    r = r * 31 + __builtin_preserve_field_info(skb->pkt_type, BPF_FIELD_LSHIFT_U64);
    r = r * 31 + __builtin_preserve_field_info(skb->pkt_type, BPF_FIELD_RSHIFT_U64);
    r = r * 31 + bpf_core_enum_value(enum bpf_func_id, BPF_FUNC_skb_store_bytes);
    r = r * 31 + bpf_core_enum_value(enum skb_tstamp_type, SKB_CLOCK_MONOTONIC);
    return r;
}
char _license[] SEC("license") = "GPL";
"""


def _live_btf() -> str:
    try:
        with open(relo.VMLINUX, "rb") as f:
            f.read(1)
    except OSError as exc:
        pytest.skip(f"the running kernel's BTF cannot be read: {exc}")
    return relo.VMLINUX


def test_the_shipped_target_btf_is_what_the_script_makes_of_this_kernel(tmp_path):
    _live_btf()
    release = os.uname().release
    # the files are one build's: another build of the same version has other options set
    built = isa.KERNEL_RELEASE + kconfig.read_config().get(
        "CONFIG_LOCALVERSION", "").strip('"')
    if release != built:
        pytest.skip(f"pyebpf ships the BTF and config of {built}, this kernel is {release}")
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_target_btf.py"),
                           "-o", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / Path(relo.SHIPPED).name).read_bytes() == Path(relo.SHIPPED).read_bytes()
    assert (tmp_path / Path(kconfig.SHIPPED_CONFIG).name).read_bytes() == \
        Path(kconfig.SHIPPED_CONFIG).read_bytes()


PROGRAMS = {"fields": BODY, "checks": CORE_CHECKS, "guarded": CORE_CHECKS,
            "matches": MATCHES, "kernel_fields": KERNEL_FIELDS}


@pytest.mark.parametrize("program", sorted(PROGRAMS))
def test_core_programs_relocate_against_the_shipped_btf_as_against_the_kernels(program):
    live = _live_btf()
    data = _core_object(PROGRAMS[program])
    shipped = pyebpf.elf.parse(data, btf=relo.SHIPPED).programs[program]
    kernel = pyebpf.elf.parse(data, btf=live).programs[program]
    assert shipped.insns == kernel.insns
    # the same instructions poisoned (the reasons name candidates by their type ids)
    assert [(p.pc, p.relocation) for p in shipped.core_poisoned] == \
        [(p.pc, p.relocation) for p in kernel.core_poisoned]


def test_without_a_readable_kernel_btf_the_shipped_one_is_the_target(monkeypatch, tmp_path):
    monkeypatch.setattr(relo, "VMLINUX", str(tmp_path / "no-such-btf"))
    assert relo.target_btf().by_name("sk_buff", Kind.STRUCT)
    assert relo.target_btf() is relo.target_btf(relo.SHIPPED)


def test_the_shipped_btf_keeps_structs_behind_pointers_as_forward_declarations():
    btf = relo.target_btf(relo.SHIPPED)
    # struct net_device is a root, kept whole; struct net only behind pointers
    (dev,) = btf.by_name("net_device", Kind.STRUCT)
    assert any(t.kind == Kind.PTR and t.type_id == dev.id for t in btf.types)
    assert btf.by_name("net", Kind.FWD) and not btf.by_name("net", Kind.STRUCT)


def test_encoding_the_parsed_shipped_btf_gives_its_bytes_back():
    data = Path(relo.SHIPPED).read_bytes()
    assert encode(Btf.parse(data).types[1:]) == data

