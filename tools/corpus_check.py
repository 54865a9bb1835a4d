"""Compare pyebpf with the running kernel over a corpus of compiled objects nobody here
wrote (docs/corpus.md): for every tc and socket-filter program, the load verdict of
:func:`pyebpf.load` against :func:`pyebpf.kernel.load_object`'s, and for a program both
load, runs on a few standard packets (BPF_PROG_TEST_RUN against ``Program.run``: retval,
bytes, ``__sk_buff`` fields, then the contents of the maps both can list).

    python tools/corpus_check.py CORPUS_DIR [-o results.jsonl] [--max-entries MAP=N ...]
                                 [--slot MAP/KEY=PROGRAM ...]
                                 [--prog-type NAME=TYPE ...] [--extra-btf OBJ]
                                 [--cilium-ebpf] [--host-clock] [--packet-socket]
                                 [--constant NAME=VALUE ...]

CORPUS_DIR holds ``*.o`` files, in subdirectories if wanted; each program is loaded on its
own (the object's other programs given a type pyebpf skips, the program arrays the object
fills left empty).  An object that fills a program array (iproute2's ``ID/KEY`` sections,
``__array(values, ...)``, cilium's ``tail:MAP/N`` decl tags) is then loaded whole as well,
as its own loader loads it, every program at its own type and the arrays filled, and each
program no slot names (an entry point) is run with its tail calls live.  Needs bpf(2)
(root); an absent directory is skipped with a message.  ``--max-entries MAP=N`` sizes a
map before every load, as an agent resizing its maps from its configuration does
(netobserv-ebpf-agent's ``tracer.go``).  ``--prog-type NAME=TYPE`` loads the program
or section NAME as TYPE, as a loader calling ``bpf_program__set_type`` does (Suricata's
``filter`` and ``loadbalancer`` sections are socket filters).  ``--extra-btf OBJ`` adds OBJ's BTF to the CO-RE targets,
beside the running kernel's (Inspektor Gadget's gadgets find ``gadget_socket_value`` in
its socket enricher's object).  ``--cilium-ebpf`` sizes the maps as cilium/ebpf's
``fixupMagicFields`` does before creating them, where libbpf (and pyebpf) take the
declaration as it is: a perf event array's key and value 4 bytes and at most one slot per
possible CPU, a CPU map's slots too (Retina's packetparser declares its perf event array
without key or value).  ``--host-clock`` runs pyebpf at the host's ``CLOCK_BOOTTIME``,
read just before the kernel's run, rather than at its own clock (docs/clock.md), so that
timestamps kept in seconds in maps compare.  ``--packet-socket`` runs each socket filter
both load a second time as a packet socket sees the frames: attached (SO_ATTACH_BPF) to
an AF_PACKET socket on a veth pair in a namespace of its own, the five frames addressed
to it, what the socket receives against what ``Program.run`` from the MAC header keeps
(the device's ifindex and address given), then the maps (``packet_socket`` in the
program's line; needs ``ip`` from iproute2). ``--slot MAP/KEY=PROGRAM`` puts a program (by C
function or section name) in a program array's slot, as a loader filling the array after
the load does (loxilb's ``llb_dflt_sec_map2fd_all``), in each object holding them both.
``--constant NAME=VALUE`` writes VALUE into each
``lddw`` naming the undefined symbol NAME, as a cilium/ebpf user rewriting a constant
before the load does (rakelimit's ``LIMIT``; ``pyebpf.elf.parse(constants=...)``).
One JSON line per program and per whole object, then a summary.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import time
import warnings

import pyebpf
from pyebpf import elf, host, isa, ksym
from pyebpf.kernel import load_object, world
from pyebpf.kernel.compare import differences
from pyebpf.loader import RUNNABLE_TYPES, program_type

_T = isa.MapType
_ETH_P_ALL = 0x0003                 # linux/if_ether.h
# maps whose contents are not plain key -> value bytes on both sides
UNLISTED = {_T.BPF_MAP_TYPE_PROG_ARRAY, _T.BPF_MAP_TYPE_PERF_EVENT_ARRAY, _T.BPF_MAP_TYPE_RINGBUF,
            _T.BPF_MAP_TYPE_USER_RINGBUF,
            _T.BPF_MAP_TYPE_PERCPU_ARRAY, _T.BPF_MAP_TYPE_PERCPU_HASH,
            _T.BPF_MAP_TYPE_LRU_PERCPU_HASH, _T.BPF_MAP_TYPE_ARRAY_OF_MAPS,
            _T.BPF_MAP_TYPE_HASH_OF_MAPS, _T.BPF_MAP_TYPE_QUEUE, _T.BPF_MAP_TYPE_STACK,
            _T.BPF_MAP_TYPE_SOCKMAP, _T.BPF_MAP_TYPE_SOCKHASH, _T.BPF_MAP_TYPE_CGROUP_ARRAY,
            _T.BPF_MAP_TYPE_XSKMAP, _T.BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE,
            _T.BPF_MAP_TYPE_REUSEPORT_SOCKARRAY, _T.BPF_MAP_TYPE_SK_STORAGE}


def _eth(ethertype: int, payload: bytes) -> bytes:
    return bytes(6) + bytes(6) + ethertype.to_bytes(2, "big") + payload


def packets() -> dict[str, bytes]:
    """IPv4/TCP and IPv6/TCP frames shaped as the kernel selftests' ``pkt_v4``/``pkt_v6``
    (all-zero addresses, length field and urgent pointer 123), a UDP frame, an ARP frame
    and a bare Ethernet header."""
    tcp = bytes(18) + (123).to_bytes(2, "big")
    tcp = tcp[:12] + bytes([5 << 4]) + tcp[13:]
    v4 = bytes([0x45, 0]) + (123).to_bytes(2, "big") + bytes(5) + bytes([6]) + bytes(10)
    v6 = bytes([0x60, 0, 0, 0]) + (123).to_bytes(2, "big") + bytes([6, 0]) + bytes(32)
    udp = (bytes([0x45, 0]) + (48).to_bytes(2, "big") + bytes(4) + bytes([64, 17, 0, 0]) +
           bytes([10, 0, 0, 1, 10, 0, 0, 2]) + (1234).to_bytes(2, "big") +
           (53).to_bytes(2, "big") + (28).to_bytes(2, "big") + bytes(2) + bytes(20))
    arp = bytes([0, 1, 8, 0, 6, 4, 0, 1]) + bytes(20)
    return {"pkt_v4": _eth(0x0800, v4 + tcp), "pkt_v6": _eth(0x86DD, v6 + tcp),
            "udp4": _eth(0x0800, udp), "arp": _eth(0x0806, arp), "eth_only": _eth(0, b"")}


def _verdict(load) -> tuple[bool, str]:
    try:
        load().close()
        return True, ""
    except Exception as exc:        # a refusal of any kind is a verdict to compare
        return False, f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"


def _map_differences(ours, theirs) -> list[str]:
    out = []
    for name, km in theirs.maps.items():
        if km.map_type in UNLISTED or name not in ours.maps:
            continue
        mine = dict(ours.maps[name].items())
        kernel = {k: km.lookup(k) for k in km.keys()}
        keys = sorted(k.hex() for k in set(mine) | set(kernel) if mine.get(k) != kernel.get(k))
        if keys:
            out.append(f"map {name}: values differ at keys {keys[:3]}")
    return out


def _runs(ours_spec, theirs_spec, names: dict[str, str], override,
          host_clock: bool = False, veth=None) -> dict:
    """Runs of the programs ``names`` (name -> type) on the standard packets, pyebpf's
    against the kernel's: name -> label -> differences."""
    ours, theirs = pyebpf.load(ours_spec, prog_type=override, pin=False), None
    try:
        theirs = load_object(theirs_spec, prog_type=override)
        out = {}
        for name, kind in names.items():
            sf = kind == "socket_filter"
            prog, kprog = ours.program(name), theirs.program(name)
            runs = out.setdefault(name, {})
            for label, pkt in packets().items():
                now = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
                k = kprog.test_run(pkt, ctx={})
                fields = {"ifindex": 1, **({"sf_start": "network"} if sf else {}),
                          **({"ktime": now} if host_clock else {})}
                try:
                    mine = prog.run(pkt, **fields)
                except pyebpf.errors.ExecutionError as exc:
                    runs[label] = [f"pyebpf: {str(exc).splitlines()[0][:200]}"]
                    continue
                runs[label] = differences(mine, k.retval if sf else k.retval_signed,
                                          k.data[14:] if sf else k.data, k.skb, sf)
                runs[label] += _map_differences(ours, theirs)
            if sf and veth is not None:
                runs["packet_socket"] = _packet_socket_runs(ours, theirs, name, veth)
        return out
    finally:
        ours.close()
        if theirs is not None:
            theirs.close()


_RX_MAC = "02:00:00:00:00:0b"
_SENTINEL = b"pyebpf-corpus-check-sentinel"


@contextlib.contextmanager
def _veth():
    """(sender, receiver, receiver's ifindex): packet sockets on the two ends of a veth
    pair in a namespace of their own, IPv6 off so that the kernel sends nothing of its
    own on it and ``net.core.optmem_max`` 16 MiB so that a filter of any size attaches
    (``sk_filter_charge``: ENOMEM over it, 128 KiB by default), which goes on exit."""
    ip = shutil.which("ip") or "/usr/sbin/ip"
    sysctl = shutil.which("sysctl") or "/usr/sbin/sysctl"
    name = f"corpus-check-{os.getpid()}"
    subprocess.run([ip, "netns", "add", name], check=True, capture_output=True)
    try:
        for cmd in ([sysctl, "-qw", "net.ipv6.conf.all.disable_ipv6=1"],
                    [sysctl, "-qw", "net.ipv6.conf.default.disable_ipv6=1"],
                    [sysctl, "-qw", f"net.core.optmem_max={1 << 24}"],
                    [ip, "link", "add", "vtx", "type", "veth", "peer", "name", "vrx"],
                    [ip, "link", "set", "vrx", "address", _RX_MAC],
                    [ip, "link", "set", "vtx", "up"], [ip, "link", "set", "vrx", "up"]):
            subprocess.run([ip, "netns", "exec", name, *cmd], check=True, capture_output=True)

        def make():
            with open(f"/var/run/netns/{name}") as f:
                world._setns(f.fileno())
            tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
            tx.bind(("vtx", 0))
            rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(_ETH_P_ALL))
            rx.bind(("vrx", 0))
            return tx, rx, socket.if_nametoindex("vrx")
        tx, rx, ifindex = world._in_thread(make)
        with tx, rx:
            yield tx, rx, ifindex
    finally:
        subprocess.run([ip, "netns", "del", name], capture_output=True)


def _packet_socket_runs(ours, theirs, name: str, veth) -> list[str]:
    """The socket filter ``name`` of the loaded objects on the five frames addressed to
    the receiving end of ``veth``: what its packet socket receives against what pyebpf
    keeps, then the maps."""
    tx, rx, ifindex = veth
    frames = [bytes.fromhex(_RX_MAC.replace(":", "")) + pkt[6:] for pkt in packets().values()]
    while select.select([rx], [], [], 0)[0]:
        rx.recv(65535)
    try:
        rx.setsockopt(socket.SOL_SOCKET, isa.SO_ATTACH_BPF, theirs.program(name).fd)
    except OSError as exc:
        return [f"kernel: SO_ATTACH_BPF refused: {exc.strerror}"]
    for frame in frames:
        tx.send(frame)
    rx.setsockopt(socket.SOL_SOCKET, isa.SO_DETACH_FILTER, 0)
    tx.send(frames[0][:12] + b"\x88\xb5" + _SENTINEL)
    kernel = []
    while select.select([rx], [], [], 2.0)[0]:
        data, address = rx.recvfrom(65535)
        if address[2] == socket.PACKET_OUTGOING:
            continue
        if _SENTINEL in data:
            break
        kernel.append(data)
    else:
        return ["the sentinel frame did not arrive within 2 s"]
    mine = []
    for frame in frames:
        try:
            res = ours.program(name).run(frame, ifindex=ifindex, dev_addr=_RX_MAC,
                                         dev_broadcast="ff:ff:ff:ff:ff:ff")
        except pyebpf.errors.ExecutionError as exc:
            return [f"pyebpf: {str(exc).splitlines()[0][:200]}"]
        if res.retval:
            mine.append(bytes(res.data))
    out = [] if mine == kernel else [
        f"kept: kernel {[len(d) for d in kernel]} bytes, pyebpf {[len(d) for d in mine]}"]
    return out + _map_differences(ours, theirs)


def _without_slots(spec: elf.ObjectSpec) -> elf.ObjectSpec:
    """``spec`` with its program arrays left empty: a program loaded on its own."""
    return dataclasses.replace(spec, maps={n: dataclasses.replace(m, programs={})
                                           for n, m in spec.maps.items()})


def _resized(spec: elf.ObjectSpec, sizes: dict[str, int]) -> elf.ObjectSpec:
    """``spec`` with the maps ``sizes`` names given those max_entries."""
    return dataclasses.replace(spec, maps={
        n: dataclasses.replace(m, max_entries=sizes[n]) if n in sizes else m
        for n, m in spec.maps.items()})


def _slotted(spec: elf.ObjectSpec, slots: dict[tuple[str, int], str]) -> elf.ObjectSpec:
    """``spec`` with the program array slots ``slots`` ((map, key) -> program or section
    name) filled, where the object has both the map and one such program."""
    maps = dict(spec.maps)
    for (name, key), prog in slots.items():
        found = spec.find_programs(prog)
        if name in maps and len(found) == 1:
            maps[name] = dataclasses.replace(maps[name], programs={**maps[name].programs,
                                                                    key: found[0].name})
    return dataclasses.replace(spec, maps=maps)


def _cilium_sized(spec: elf.ObjectSpec) -> elf.ObjectSpec:
    """``spec`` with the maps sized as cilium/ebpf's ``MapSpec.fixupMagicFields`` sizes
    them (a map of maps' value 4 bytes is pyebpf's already)."""
    cpus, maps = host.possible_cpus(), {}
    for n, m in spec.maps.items():
        if m.type == _T.BPF_MAP_TYPE_PERF_EVENT_ARRAY:
            m = dataclasses.replace(m, key_size=m.key_size or 4, value_size=m.value_size or 4,
                                    max_entries=min(m.max_entries or cpus, cpus))
        elif m.type == _T.BPF_MAP_TYPE_CPUMAP:
            m = dataclasses.replace(m, max_entries=min(m.max_entries or cpus, cpus))
        maps[n] = m
    return dataclasses.replace(spec, maps=maps)


def check(corpus: str, out, sizes: dict[str, int] | None = None,
          types: dict[str, str] | None = None, extra_btf=(), cilium: bool = False,
          host_clock: bool = False, veth=None,
          slots: dict[tuple[str, int], str] | None = None,
          constants: dict[str, int] | None = None) -> dict[str, int]:
    counts = dict.fromkeys(("programs", "kernel_accepted", "agree", "refused_accepted",
                            "runs", "runs_agree", "whole_objects", "whole_agree",
                            "whole_runs", "whole_runs_agree"), 0)
    for root, _, files in sorted(os.walk(corpus)):
        for fname in sorted(f for f in files if f.endswith(".o")):
            path = os.path.join(root, fname)
            try:
                # read once, each side as its loader reads it (the kernel's typeless
                # __ksym externs from /proc/kallsyms)
                spec = _slotted(_resized(elf.parse(path, extra_btf=extra_btf,
                                                   constants=constants), sizes or {}),
                                slots or {})
                kspec = _slotted(_resized(elf.parse(path, extra_btf=extra_btf,
                                                    kallsyms=ksym.read_kallsyms,
                                                    constants=constants),
                                          sizes or {}), slots or {})
                if cilium:
                    spec, kspec = _cilium_sized(spec), _cilium_sized(kspec)
            except Exception as exc:
                print(json.dumps({"obj": path, "unreadable": str(exc)[:300]}), file=out)
                continue
            kinds = {ps.name: program_type(ps, types or None) for ps in spec.programs.values()}
            runnable = {n: k for n, k in kinds.items()
                        if k in RUNNABLE_TYPES and k != "kprobe"}
            alone, kalone = _without_slots(spec), _without_slots(kspec)
            for name, kind in runnable.items():
                # the others get a type neither side loads
                override = {n: kind if n == name else "xdp" for n in kinds}
                theirs = _verdict(lambda: load_object(kalone, prog_type=override))
                ours = _verdict(lambda: pyebpf.load(alone, prog_type=override, pin=False))
                rec = {"obj": path, "prog": name, "type": kind, "kernel": theirs,
                       "pyebpf": ours}
                counts["programs"] += 1
                counts["kernel_accepted"] += theirs[0]
                counts["agree"] += theirs[0] == ours[0]
                counts["refused_accepted"] += theirs[0] and not ours[0]
                if theirs[0] and ours[0]:
                    rec["runs"] = _runs(alone, kalone, {name: kind}, override,
                                        host_clock, veth)[name]
                    counts["runs"] += len(rec["runs"])
                    counts["runs_agree"] += sum(not d for d in rec["runs"].values())
                print(json.dumps(rec), file=out, flush=True)
            slotted = {p for m in spec.maps.values() for p in m.programs.values()}
            if not slotted or not runnable:
                continue
            theirs = _verdict(lambda: load_object(kspec, prog_type=kinds))
            ours = _verdict(lambda: pyebpf.load(spec, prog_type=kinds, pin=False))
            rec = {"obj": path, "whole": True, "kernel": theirs, "pyebpf": ours}
            counts["whole_objects"] += 1
            counts["whole_agree"] += theirs[0] == ours[0]
            if theirs[0] and ours[0]:
                entries = {n: k for n, k in runnable.items() if n not in slotted}
                rec["runs"] = _runs(spec, kspec, entries, kinds, host_clock, veth)
                flat = [d for runs in rec["runs"].values() for d in runs.values()]
                counts["whole_runs"] += len(flat)
                counts["whole_runs_agree"] += sum(not d for d in flat)
            print(json.dumps(rec), file=out, flush=True)
    return counts


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("corpus")
    ap.add_argument("-o", "--output", default="-")
    ap.add_argument("--max-entries", action="append", default=[], metavar="MAP=N")
    ap.add_argument("--slot", action="append", default=[], metavar="MAP/KEY=PROGRAM")
    ap.add_argument("--prog-type", action="append", default=[], metavar="NAME=TYPE")
    ap.add_argument("--extra-btf", action="append", default=[], metavar="OBJ")
    ap.add_argument("--cilium-ebpf", action="store_true")
    ap.add_argument("--host-clock", action="store_true")
    ap.add_argument("--packet-socket", action="store_true")
    ap.add_argument("--constant", action="append", default=[], metavar="NAME=VALUE")
    args = ap.parse_args(argv)
    try:
        sizes = {k: int(v, 0) for k, _, v in (a.partition("=") for a in args.max_entries)}
    except ValueError:
        ap.error(f"--max-entries takes MAP=N: {args.max_entries}")
    try:
        constants = {k: int(v, 0) for k, _, v in (a.partition("=") for a in args.constant)}
    except ValueError:
        ap.error(f"--constant takes NAME=VALUE: {args.constant}")
    slots = {}
    for a in args.slot:
        where, _, prog = a.partition("=")
        name, _, key = where.rpartition("/")
        if not (name and prog and key.isdigit()):
            ap.error(f"--slot takes MAP/KEY=PROGRAM: {a}")
        slots[name, int(key)] = prog
    types = dict(a.partition("=")[::2] for a in args.prog_type)
    if not all(types.values()):
        ap.error(f"--prog-type takes NAME=TYPE: {args.prog_type}")
    if not os.path.isdir(args.corpus):
        print(f"corpus_check: no corpus at {args.corpus}: skipped")
        return 0
    warnings.simplefilter("ignore")     # ElfWarnings about the corpus's own sections
    out = sys.stdout if args.output == "-" else open(args.output, "w")
    extra = [elf.parse(path).btf for path in args.extra_btf]
    with _veth() if args.packet_socket else contextlib.nullcontext() as veth:
        counts = check(args.corpus, out, sizes, types, extra, args.cilium_ebpf,
                       args.host_clock, veth, slots, constants)
    print(json.dumps({"summary": counts}), file=out)
    if out is not sys.stdout:
        out.close()
        print(json.dumps(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
