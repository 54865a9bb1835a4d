"""Regenerate what pyebpf ships of the kernel it models, in ``pyebpf/target/``: the
target BTF ``vmlinux-A.B.C.btf`` from a kernel's BTF (the types tc, socket-filter and
kprobe programs reach: each root below and what it holds by value, other structs behind
pointers as forward declarations, :func:`pyebpf.btf.writer.subset`), and its config
``config-A.B.C.gz`` (``__kconfig`` defaults), copied as the kernel gives it.

    python tools/gen_target_btf.py [--btf /sys/kernel/btf/vmlinux] [--config /proc/config.gz]
                                   [--release 6.18.44] [-o DIR]

The release (default: the running kernel's, ``uname -r``) names the output files; set
``KERNEL_RELEASE`` in pyebpf/isa.py to it when it changes.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE))

from pyebpf.btf import Btf, Kind  # noqa: E402
from pyebpf.btf.writer import subset  # noqa: E402
from pyebpf.errors import EbpfError  # noqa: E402
from pyebpf.files import write_atomically  # noqa: E402

# What tc, socket-filter and kprobe programs read: the context and the kernel objects behind it,
# the packet headers, the UAPI structs helpers and kfuncs take, and the enums programs
# test with bpf_core_enum_value_exists.
ROOTS = {
    Kind.STRUCT: [
        "__sk_buff", "sk_buff", "skb_shared_info", "sock", "sock_common", "inet_sock",
        "inet_connection_sock", "tcp_sock", "udp_sock", "request_sock",
        "inet_timewait_sock", "net_device", "nf_conn",
        "ethhdr", "vlan_hdr", "vlan_ethhdr", "arphdr", "iphdr", "ipv6hdr", "ipv6_opt_hdr",
        "frag_hdr", "tcphdr", "udphdr", "icmphdr", "icmp6hdr", "gre_base_hdr", "in_addr",
        "in6_addr",
        "bpf_sock", "bpf_tcp_sock", "bpf_sock_tuple", "bpf_tunnel_key", "bpf_xfrm_state",
        "bpf_fib_lookup", "bpf_redir_neigh", "bpf_flow_keys", "bpf_spin_lock", "bpf_timer",
        "bpf_dynptr", "bpf_list_head", "bpf_list_node", "bpf_rb_root", "bpf_rb_node",
        "bpf_refcount", "bpf_iter_num", "bpf_ct_opts",
        # what kprobe programs read: their context and the current task
        "pt_regs", "task_struct",
        # what bpf_get_kmem_cache returns: the slab cache of a kernel object
        "kmem_cache",
    ],
    Kind.ENUM: [
        "bpf_ret_code", "bpf_func_id", "bpf_map_type", "bpf_prog_type", "bpf_adj_room_mode",
        "bpf_hdr_start_off", "bpf_lwt_encap_mode", "bpf_check_mtu_flags",
        "bpf_check_mtu_ret", "skb_tstamp_type", "sk_action",
    ],
}


# The per-CPU variables kept (typed __ksym externs of bpf_per_cpu_ptr/bpf_this_cpu_ptr
# programs): the kernel BTF's .data..percpu DATASEC is cut down to these, whose types the
# roots above keep already (so vmlinux.h dumped from the target does not change).
PERCPU_VARS = ["bpf_prog_active", "cpu_number", "process_counts", "nmi_user_regs"]


def roots(btf: Btf) -> list:
    """The root types, each the first of its name and kind in ``btf``; a root the
    kernel does not have is left out."""
    return [found[0] for kind, names in ROOTS.items() for name in names
            if (found := btf.by_name(name, kind))]


def percpu_datasec(btf: Btf) -> dict:
    """{id: the .data..percpu DATASEC with only PERCPU_VARS} (none if the kernel has
    no such section)."""
    out = {}
    for sec in btf.by_name(".data..percpu", Kind.DATASEC):
        keep = tuple(v for v in sec.vars if btf.types[v.type_id].name in PERCPU_VARS)
        out[sec.id] = dataclasses.replace(sec, vars=keep)
    return out


def release_version(release: str) -> str:
    m = re.match(r"\d+\.\d+(\.\d+)?", release)
    if m is None:
        raise EbpfError(f"kernel release {release!r} does not start with A.B.C")
    return m[0]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--btf", type=Path, default=Path("/sys/kernel/btf/vmlinux"),
                   help="the kernel's BTF (default /sys/kernel/btf/vmlinux)")
    p.add_argument("--config", type=Path, default=Path("/proc/config.gz"),
                   help="the kernel's config, gzip-compressed (default /proc/config.gz)")
    p.add_argument("--release", default=os.uname().release,
                   help="the kernel release they came from (default: uname -r)")
    p.add_argument("-o", "--output", type=Path, default=HERE / "pyebpf" / "target",
                   help="output directory (default pyebpf/target)")
    args = p.parse_args(argv)
    try:
        version = release_version(args.release)
        btf = Btf.parse(args.btf.read_bytes(), str(args.btf))
        config = args.config.read_bytes()
    except OSError as exc:
        print(f"gen_target_btf: cannot read {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 1
    except EbpfError as exc:
        print(f"gen_target_btf: {exc}", file=sys.stderr)
        return 1
    if config[:2] != b"\x1f\x8b":
        print(f"gen_target_btf: {args.config} is not gzip-compressed", file=sys.stderr)
        return 1
    cut = percpu_datasec(btf)
    out = subset(btf, roots(btf) + list(cut.values()), cut)
    for name, data in ((f"vmlinux-{version}.btf", out), (f"config-{version}.gz", config)):
        write_atomically(args.output / name, data)
        print(f"{args.output / name}: {len(data)} bytes ({args.release})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
