"""``tcsim``: replay a capture through a chain of tc programs and write the traffic out.

    tcsim -r CAPTURE (PROG [PROG ...] | --cbpf FILTER) [-o OUT] [--drops FILE] [--redirect-dir DIR]
          [--report FILE.jsonl] [--events FILE.jsonl] [--type sched_cls|sched_act]
          [--hook ingress|egress] [--classid MAJ:MIN] [--no-da] [--act-default CONTROL]
          [--profile current|4.6] [--field NAME=VALUE ...] [--budget N] [--stop-on-error]

PROG is ``file.o[:section_or_function]`` (an ELF object, through ``pyebpf.load``) or
``file.s``/``file.asm`` (assembler text).  The chain runs at a clsact hook as cls_bpf
filters in direct-action mode (default), cls_bpf filters in classid mode (``--no-da``)
or act_bpf actions of one filter (``--type sched_act``); see ``pcap/tcreplay.pxi`` for
the kernel semantics reproduced.  ``--cbpf FILTER`` replays through a classic socket
filter instead (a pcap-filter expression, or a file of ``tcpdump -dd``/``-ddd`` text or
``struct sock_filter`` bytes): ``-o`` gets what a packet socket with that filter keeps,
each packet cut to the filter's return value, ``--drops`` the rest.  Every output is written to a temporary name and
renamed when the whole run succeeded.  Errors print one line and exit 1.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import struct
import sys
import time
from collections import Counter
from pathlib import Path

from ..errors import EbpfError, ElfError
from . import pcapio

VERDICTS = {-1: "TC_ACT_UNSPEC", 0: "TC_ACT_OK", 1: "TC_ACT_RECLASSIFY", 2: "TC_ACT_SHOT",
            3: "TC_ACT_PIPE", 4: "TC_ACT_STOLEN", 5: "TC_ACT_QUEUED", 6: "TC_ACT_REPEAT",
            7: "TC_ACT_REDIRECT", 8: "TC_ACT_TRAP"}
ACTIONS = ("delivered", "dropped", "consumed", "redirected", "fault")
# tc's names for an action's control verb (tc/tc_util.c action_a2n)
CONTROLS = {"continue": -1, "ok": 0, "pass": 0, "reclassify": 1, "drop": 2, "shot": 2,
            "pipe": 3, "trap": 8}


class UsageError(ValueError):
    """A mistake on the command line."""


def load_program(spec: str, prog_type: str, profile: str, btf=None):
    """A Program from ``file.o[:name]`` or ``file.s``/``file.asm``; ``btf`` is the
    target BTF of an object's CO-RE relocations (default: the running kernel's)."""
    import pyebpf
    path, name = spec, None
    if not os.path.exists(spec) and ":" in spec:
        path, name = spec.rsplit(":", 1)
    suffix = Path(path).suffix
    if suffix in (".s", ".asm"):
        if name is not None:
            raise UsageError(f"{spec}: a section or function name applies to .o files only")
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise UsageError(f"{path}: cannot read the program: {exc.strerror}") from None
        try:
            return pyebpf.Program.from_asm(text, prog_type, profile=profile)
        except EbpfError as exc:
            raise UsageError(f"{path}: {exc}") from None
    if suffix != ".o":
        raise UsageError(f"{spec}: unknown program file: expected file.o[:section] or an "
                         "assembler file (.s, .asm)")
    if not os.path.exists(path):
        raise UsageError(f"{path}: no such program file")
    try:
        obj = pyebpf.load(path, prog_type=prog_type, profile=profile, btf=btf)
        if name is not None:
            return obj.program(name)
    except ElfError as exc:
        raise UsageError(str(exc)) from None         # it names the file already
    except EbpfError as exc:
        raise UsageError(f"{spec}: {exc}") from None
    if len(obj.programs) != 1:
        raise UsageError(f"{path} holds {len(obj.programs)} programs "
                         f"({', '.join(obj.programs) or 'none'}); name one as {path}:NAME")
    return next(iter(obj.programs.values()))


def load_classic(spec: str, profile: str):
    """The socket filter ``--cbpf`` names: a file (tcpdump -dd/-ddd text or struct
    sock_filter bytes) or a pcap-filter expression, for Ethernet captures."""
    from pyebpf import cbpf
    source = spec
    if os.path.isfile(spec):
        raw = Path(spec).read_bytes()
        try:
            text = raw.decode("ascii")
            source = text if cbpf._DD_START.match(text) else raw
        except UnicodeDecodeError:
            source = raw
    try:
        return cbpf.program(source, profile=profile)
    except EbpfError as exc:
        raise UsageError(f"--cbpf {spec}: {exc}") from None


def parse_classid(text: str) -> int:
    """tc's MAJ:MIN, both hexadecimal (1:10 is 0x10010)."""
    major, sep, minor = text.partition(":")
    try:
        value = (int(major or "0", 16) << 16) | int(minor or "0", 16) if sep else int(text, 16)
    except ValueError:
        value = -1
    if not sep or not 0 <= value <= 0xFFFFFFFF or int(minor or "0", 16) > 0xFFFF:
        raise UsageError(f"--classid {text!r}: expected MAJ:MIN in hexadecimal, as tc (1:10)")
    return value


def parse_fields(items) -> dict:
    from pyebpf._core import SKB_FIELDS
    fields = {}
    for text in items:
        name, sep, value = text.partition("=")
        if not sep:
            raise UsageError(f"--field {text!r}: expected NAME=VALUE")
        if name not in SKB_FIELDS or name in ("ingress", "sf_start"):
            raise UsageError(f"--field {name}: unknown packet field; known: "
                             + ", ".join(sorted(set(SKB_FIELDS) - {"ingress", "sf_start"})))
        try:
            fields[name] = int(value, 0)
        except ValueError:
            fields[name] = value
    return fields


def _classid_text(value):
    return f"{value >> 16:x}:{value & 0xFFFF:x}"


def _pinned_maps_transaction(programs):
    """Pinned maps the chain reaches are one transaction on their pin files for the whole
    replay (Program.run makes each run one; docs/pinning.md)."""
    from pyebpf import _core
    if _core._pin_hook is None:
        return contextlib.nullcontext()
    from pyebpf import pinning

    def maps():
        return list({id(m): m for p in programs for m in pinning._reachable_maps(p)}.values())

    if not any(m._pin is not None for m in maps()):
        return contextlib.nullcontext()
    return pinning.transaction(maps)


class Replay:
    """The outcome of a replay: ``outcomes`` (decoded records), ``data``, ``extras``."""

    def __init__(self, capture, programs, *, mode="da", hook="ingress", classid=0,
                 act_default=3, fields=None, stop_on_error=False):
        from pyebpf import _core
        self.capture, self.mode = capture, mode
        start = time.perf_counter()
        with _pinned_maps_transaction(programs):
            self.records, self.data, self.extras = _core._tc_replay(
                programs, capture.frames, mode=mode, ingress=hook == "ingress",
                classid=classid, act_default=act_default, fields=fields or {},
                stop_on_error=stop_on_error)
        self.elapsed = time.perf_counter() - start
        self.count = len(self.records) // struct.calcsize(_core.REPLAY_RECORD)
        self._format = _core.REPLAY_RECORD
        # one byte per packet: the hook's action (the byte after the leading fields)
        size = struct.calcsize(_core.REPLAY_RECORD)
        self.actions = self.records[struct.calcsize(_core.REPLAY_RECORD[:10])::size]

    def outcomes(self):
        """(verdict, retval, classid, mark, priority, redirect_ifindex, tc_index, runs,
        insns, action, has_classid, redirect_ingress, fault_prog) per packet."""
        return struct.iter_unpack(self._format, self.records)

    def report_line(self, index, outcome) -> str:
        cap, extra = self.capture, self.extras.get(index, {})
        (verdict, retval, classid, mark, priority, rdev, tc_index, runs, insns, action,
         has_classid, ringress, fault) = outcome
        frame, out = cap.frames[index], self.data[index]
        error = extra.get("error")
        return json.dumps({
            "index": index, "timestamp": cap.ts[index] / 1e9, "timestamp_ns": cap.ts[index],
            "len_in": cap.orig_len[index], "caplen_in": len(frame),
            "len_out": len(out) + cap.orig_len[index] - len(frame) if action != 4 else None,
            "truncated": len(frame) < cap.orig_len[index],
            "verdict": None if fault or self.mode == "sf" else VERDICTS.get(verdict, str(verdict)),
            "retval": None if fault else retval, "action": ACTIONS[action],
            "classid": _classid_text(classid) if has_classid and not fault else None,
            "mark": mark, "priority": priority, "tc_index": tc_index,
            "redirect": {"ifindex": rdev, "ingress": bool(ringress)} if action == 3 else None,
            "clones": [{"ifindex": i, "ingress": g, "len": len(b)}
                       for i, g, b in extra.get("clones", ())],
            "trace_printk": extra.get("trace", []), "instructions": insns,
            "programs_run": runs,
            "errors": [{"program": extra["program"], "pc": error.pc, "message": str(error)}]
            if error is not None else [],
        })


def _outputs(args, replay, capture):
    """{path: bytes} of every output the arguments ask for."""
    out, drops, redirected, events = [], [], {}, []
    ts, orig, frames, data = capture.ts, capture.orig_len, capture.frames, replay.data
    actions, extras = replay.actions, replay.extras
    want_redirect = args.redirect_dir is not None

    def wire(i, b):
        return orig[i] - len(frames[i]) + len(b)

    for i in range(replay.count):
        action = actions[i]
        if action == 0:
            out.append((ts[i], data[i], wire(i, data[i])))
        elif action == 1:
            drops.append((ts[i], data[i], wire(i, data[i])))
        elif action == 4:
            drops.append((ts[i], frames[i], orig[i]))
        extra = extras.get(i)
        if want_redirect and extra:
            for ifindex, ingress, b in extra.get("clones", ()):
                redirected.setdefault((ifindex, ingress), []).append((ts[i], b, wire(i, b)))
        if action == 3 and want_redirect:
            rec = struct.unpack_from(replay._format, replay.records,
                                     i * struct.calcsize(replay._format))
            redirected.setdefault((rec[5], bool(rec[11])), []).append(
                (ts[i], data[i], wire(i, data[i])))
        if extra and "events" in extra:
            for m, cpu, ev in extra["events"]:
                events.append(json.dumps({"packet": i, "map": m.name or str(m.fd), "cpu": cpu,
                                          "size": len(ev), "data": ev.hex()}))
    ns = capture.nanosecond
    files = {}
    if args.output:
        files[args.output] = (pcapio.pcapng_bytes(out) if args.output.suffix == ".pcapng"
                              else pcapio.pcap_bytes(out, ns))
    if args.drops:
        files[args.drops] = (pcapio.pcapng_bytes(drops) if args.drops.suffix == ".pcapng"
                             else pcapio.pcap_bytes(drops, ns))
    if want_redirect:
        for (ifindex, ingress), recs in sorted(redirected.items()):
            name = f"ifindex-{ifindex}{'-ingress' if ingress else ''}.pcap"
            files[args.redirect_dir / name] = pcapio.pcap_bytes(recs, ns)
    if args.report:
        files[args.report] = "".join(
            replay.report_line(i, o) + "\n" for i, o in enumerate(replay.outcomes())).encode()
    if args.events:
        files[args.events] = "".join(line + "\n" for line in events).encode()
    return files


def run(args) -> int:
    if args.no_da and args.type != "sched_cls":
        raise UsageError("--no-da (classid mode) applies to sched_cls programs only")
    if bool(args.programs) == bool(args.cbpf):
        raise UsageError("give programs (PROG ...) or --cbpf FILTER, not both"
                         if args.programs else "no program: give PROG ... or --cbpf FILTER")
    if args.cbpf and (args.type != "sched_cls" or args.no_da or args.classid):
        raise UsageError("--cbpf runs a socket filter: --type, --no-da and --classid "
                         "apply to tc programs only")
    fields = parse_fields(args.field)
    classid = parse_classid(args.classid) if args.classid else 0
    capture = pcapio.read(args.read)
    if args.cbpf:
        programs = [load_classic(args.cbpf, args.profile)]
    else:
        programs = [load_program(spec, args.type, args.profile, args.btf) for spec in args.programs]
    if args.budget is not None:
        for p in programs:
            p.budget = args.budget
    mode = ("sf" if args.cbpf else "act" if args.type == "sched_act"
            else "classid" if args.no_da else "da")
    # a packet socket's filter runs on received packets, after skb_vlan_untag
    replay = Replay(capture, programs, mode=mode, hook="ingress" if args.cbpf else args.hook, classid=classid,
                    act_default=CONTROLS[args.act_default], fields=fields,
                    stop_on_error=args.stop_on_error)
    for i, extra in sorted(replay.extras.items()):
        if "error" in extra:
            err = extra["error"]
            print(f"tcsim: packet {i}: program {extra['program'] + 1} "
                  f"({(args.programs or [args.cbpf])[extra['program']]}) faulted at pc {err.pc}: "
                  f"{str(err).splitlines()[0]}", file=sys.stderr)
            if args.stop_on_error:
                print("tcsim: stopped (--stop-on-error); no output written", file=sys.stderr)
                return 1
    pcapio.write_files(_outputs(args, replay, capture))
    counts = Counter(replay.actions)
    rate = replay.count / replay.elapsed if replay.elapsed else float("inf")
    summary = ", ".join(f"{counts[k]} {name}" for k, name in enumerate(ACTIONS[:4]))
    faults = counts[4]
    print(f"tcsim: {replay.count} packets from {args.read}: {summary}"
          f"{f', {faults} faulted (dropped)' if faults else ''}; "
          f"{rate:,.0f} packets/s", file=sys.stderr)
    truncated = capture.truncated
    if truncated:
        print(f"tcsim: {len(truncated)} packets were captured shorter than on the wire "
              "(caplen < len) and were replayed as captured", file=sys.stderr)
    return 0


def build_parser():
    p = argparse.ArgumentParser(prog="tcsim", description=__doc__.splitlines()[0])
    p.add_argument("programs", nargs="*", metavar="PROG",
                   help="file.o[:section_or_function] or file.s/.asm; several form a chain")
    p.add_argument("-r", "--read", required=True, type=Path, metavar="CAPTURE",
                   help="the capture to replay (pcap or pcapng, Ethernet)")
    p.add_argument("-o", "--output", type=Path, help="delivered packets (.pcap or .pcapng)")
    p.add_argument("--drops", type=Path, help="dropped packets (pcap)")
    p.add_argument("--redirect-dir", type=Path,
                   help="one capture per redirect target: ifindex-N.pcap, ifindex-N-ingress.pcap")
    p.add_argument("--report", type=Path, help="one JSON object per packet")
    p.add_argument("--events", type=Path, help="bpf_perf_event_output records (JSON lines)")
    p.add_argument("--cbpf", metavar="FILTER",
                   help="a classic socket filter instead of PROG: a pcap-filter expression "
                        "or a tcpdump -dd/-ddd file")
    p.add_argument("--type", choices=("sched_cls", "sched_act"), default="sched_cls")
    p.add_argument("--hook", choices=("ingress", "egress"), default="ingress")
    p.add_argument("--classid", help="the filter's classid, MAJ:MIN in hex (cls_bpf)")
    p.add_argument("--no-da", action="store_true",
                   help="cls_bpf classid mode: the return value is the classid")
    p.add_argument("--act-default", choices=sorted(CONTROLS), default="pipe",
                   help="act_bpf: what a program's TC_ACT_UNSPEC means (default pipe)")
    p.add_argument("--profile", choices=("current", "4.6"), default="current")
    p.add_argument("--field", action="append", default=[], metavar="NAME=VALUE",
                   help="packet metadata for every packet (mark=7, ifindex=2; repeatable)")
    p.add_argument("--budget", type=int, help="instruction budget per program run")
    p.add_argument("--btf", type=Path, metavar="FILE",
                   help="target BTF of CO-RE relocations (default /sys/kernel/btf/vmlinux)")
    p.add_argument("--stop-on-error", action="store_true",
                   help="a program fault ends the run (exit 1, no output)")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except (EbpfError, OSError, ValueError, TypeError) as exc:
        print(f"tcsim: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
