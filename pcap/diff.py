"""``tcsim diff``: the same traffic through two versions of a program, and every packet
they treat differently.

    tcsim diff OLD NEW -r CAPTURE [-r CAPTURE ...] [--json] [--old-out OLD.pcap]
               [--new-out NEW.pcap] [--examples N] [--old-profile P] [--new-profile P]
               [tcsim's hook options: --type --hook --classid --no-da --act-default
                --field --budget --no-verify --cpus --steer]
               [--workers N | --scheduler tcp://HOST:8786]

OLD and NEW are tcsim PROG arguments (``file.o[:section_or_function]``, ``.s``): two
objects, or two sections of one.  Each capture is replayed through each version with
maps of its own (loaded afresh per capture and version, declared pins ignored), at the
same hook with the same options, a chunk of the capture at a time (as tcsim streams
it; only the differing packets are kept), on ``--cpus`` simulated CPUs when given, and with ``--workers N`` (a
LocalCluster of N processes) or ``--scheduler ADDRESS`` each capture as one task on a
Dask cluster (the report is the same as on one process); a packet differs when its verdict or action, its bytes afterwards, its redirect target,
or its mark, priority or classid do.  The report
groups the differing packets by kind (one packet can be in several) with counts and
the first ``--examples`` of each; ``--old-out``/``--new-out`` get the differing packets
as each version left them.  Exit status 0 when no packet differs, 1 when some do, 2 on
an error (as diff(1)).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import struct
import sys
import time

from .. import host
from ..errors import EbpfError
from . import cluster, outputs, pcapio, tcreplay, tcsim

KINDS = ("verdict", "bytes", "redirect", "mark", "priority", "classid")
_SIZE = struct.calcsize(tcreplay.REPLAY_RECORD)


def _outcome(record: bytes) -> dict:
    """The compared parts of one packet's outcome (packed as REPLAY_RECORD)."""
    (verdict, _, classid, mark, priority, rdev, _, _, _, action, has_classid, ringress,
     _, _) = struct.unpack(tcreplay.REPLAY_RECORD, record)
    ran = action < tcsim.FAULT
    return {
        "verdict": f"{tcsim.VERDICTS.get(verdict, str(verdict)) if ran else '-'} "
                   f"({tcsim.ACTIONS[action]})",
        "redirect": f"{rdev}{' ingress' if ringress else ''}"
                    if action == 3 else None,
        "mark": mark, "priority": priority,
        "classid": tcsim._classid_text(classid) if has_classid and ran else None,
    }


def _bytes_text(old: bytes, new: bytes) -> tuple:
    """The two sides of a bytes difference: the header fields that differ (named as
    ``--annotated`` names them), each side's values."""
    olds, news = [], []
    for change in tcreplay.header_changes(old, new).split("; "):
        name, _, values = change.partition(" ")
        a, arrow, b = values.partition(" \u2192 ")
        if arrow:
            olds.append(f"{name} {a}")
            news.append(f"{name} {b}")
        else:
            olds.append(change)
            news.append(change)
    return "; ".join(olds), "; ".join(news)


_BITS = [(kind, getattr(tcreplay, f"DIFF_{kind.upper()}")) for kind in KINDS]


def _differences(old, new, capture: str, first: int, kinds, sides, examples: int) -> int:
    """Count the chunk's packets two loops (``keep_packets`` on) treated differently into
    ``kinds`` (with the first ``examples`` of each) and ``sides``; how many differ.  Only
    the differing packets become Python objects."""
    found = tcreplay.kept_differences(old, new)
    for k, mask in found:
        record_a, data_a, ts, wire_a = old.kept_packet(k)
        record_b, data_b, _, wire_b = new.kept_packet(k)
        a, b = _outcome(record_a), _outcome(record_b)
        a["bytes"], b["bytes"] = _bytes_text(data_a, data_b) if mask & tcreplay.DIFF_BYTES \
            else (None, None)
        for kind, bit in _BITS:
            if mask & bit:
                entry = kinds[kind]
                entry["packets"] += 1
                if len(entry["examples"]) < examples:
                    entry["examples"].append({"capture": capture, "index": first + k,
                                              "old": a[kind], "new": b[kind]})
        sides["--old-out"].append((ts, data_a, wire_a))
        sides["--new-out"].append((ts, data_b, wire_b))
    return len(found)


def _loop(args, spec: str, profile: str, fields, classid):
    """One version's replay loop, its maps fresh (declared pins ignored)."""
    with host.simulated_cpus(args.cpus) if args.cpus else contextlib.nullcontext():
        program = tcsim.load_program(spec, args.type, profile, not args.no_verify, pins=False)
    if args.budget is not None:
        program.budget = args.budget
    mode = "act" if args.type == "sched_act" else "classid" if args.no_da else "da"
    loop = tcreplay.Loop([program], mode=mode, ingress=args.hook == "ingress",
                         classid=classid, act_default=tcsim.CONTROLS[args.act_default],
                         fields=dict(fields), cpus=args.cpus or 1, steer=args.steer)
    loop.keep_packets = True
    return loop


def diff_capture(task: dict) -> dict:
    """One capture through both versions (a Dask task on a cluster): its packets, how
    many differ, ``kinds`` with at most ``examples`` examples each, the differing
    packets as each side left them, whether the capture's clock is in ns."""
    args = argparse.Namespace(**task["args"])
    fields = tcsim.parse_fields(args.field)
    classid = tcsim.parse_classid(args.classid) if args.classid else 0
    kinds = {k: {"packets": 0, "examples": []} for k in KINDS}
    sides = {"--old-out": [], "--new-out": []}
    differing = 0
    old = _loop(args, args.old, args.old_profile or args.profile, fields, classid)
    new = _loop(args, args.new, args.new_profile or args.profile, fields, classid)
    with pcapio.Source(task["path"]) as source:
        for chunk, scanner, first in source.chunks():
            old.run_chunk(chunk, scanner, first)
            new.run_chunk(chunk, scanner, first)
            differing += _differences(old, new, task["name"], first, kinds, sides,
                                      args.examples)
        nanosecond = source.nanosecond
    return {"packets": old.count, "differing": differing, "kinds": kinds, "sides": sides,
            "nanosecond": nanosecond}


def _merged(results, examples: int):
    """The captures' diffs as one, in the captures' order (examples the first of each
    kind over all captures)."""
    kinds = {k: {"packets": 0, "examples": []} for k in KINDS}
    sides = {"--old-out": [], "--new-out": []}
    for r in results:
        for kind, entry in r["kinds"].items():
            kinds[kind]["packets"] += entry["packets"]
            kinds[kind]["examples"] = (kinds[kind]["examples"] + entry["examples"])[:examples]
        for option, packets in r["sides"].items():
            sides[option] += packets
    return kinds, sides


def _run_on_cluster(args, tasks):
    """Each capture's diff_capture as one task of the Dask cluster ``args`` names; the
    workers need the programs and captures at the same paths (made absolute here)."""
    for task in tasks:
        task["path"] = os.path.abspath(task["path"])
        for side in ("old", "new"):
            file, colon, rest = task["args"][side].partition(":")
            if os.path.exists(file):
                task["args"][side] = os.path.abspath(file) + colon + rest
    local, client = cluster.client_for(args)
    with local, client:
        return client.gather(client.map(diff_capture, tasks, pure=False))


def run(args) -> int:
    start = time.perf_counter()
    if args.no_da and args.type != "sched_cls":
        raise tcsim.UsageError("--no-da (classid mode) applies to sched_cls programs only")
    if args.cpus is not None and not 1 <= args.cpus <= tcreplay.MAX_SIMULATED_CPUS:
        raise tcsim.UsageError(f"--cpus {args.cpus}: tcsim simulates 1 to "
                               f"{tcreplay.MAX_SIMULATED_CPUS} CPUs")
    tcsim.parse_fields(args.field)
    if args.classid:
        tcsim.parse_classid(args.classid)
    captures = cluster.expand(args.read)
    targets = {option: outputs.resolve(value)
               for option, value in (("--old-out", args.old_out), ("--new-out", args.new_out))
               if value is not None}
    for capture_path in captures:
        outputs.check_distinct(targets, capture_path)
    on_cluster = args.workers or args.scheduler
    if on_cluster and "-" in captures:
        raise cluster.ClusterError("a capture on a cluster is a file: - (standard input) "
                                   "cannot be used")
    task_args = {k: v for k, v in vars(args).items() if k not in ("workers", "scheduler")}
    tasks = [{"args": dict(task_args), "path": c, "name": "stdin" if c == "-" else c}
             for c in captures]
    results = _run_on_cluster(args, tasks) if on_cluster else [diff_capture(t) for t in tasks]
    kinds, sides = _merged(results, args.examples)
    outputs.write_all([(target, pcapio.pcap_bytes(sides[option],
                                                  any(r["nanosecond"] for r in results)))
                       for option, target in targets.items()])
    differing = sum(r["differing"] for r in results)
    result = {"old": args.old, "new": args.new, "captures": captures,
              "packets": sum(r["packets"] for r in results), "differing": differing,
              "kinds": {k: v for k, v in kinds.items() if v["packets"]},
              "wall_time": round(time.perf_counter() - start, 6)}
    if args.json:
        print(json.dumps(result))
    else:
        _print(result)
    return 1 if differing else 0


def _print(result) -> None:
    print(f"tcsim diff: {result['packets']} packets, {result['differing']} treated "
          f"differently by {result['new']} than by {result['old']}")
    for kind, entry in result["kinds"].items():
        print(f"  {kind}: {entry['packets']} packets")
        for ex in entry["examples"]:
            print(f"    {ex['capture']} packet {ex['index']}: {ex['old']} -> {ex['new']}")


def build_parser():
    p = argparse.ArgumentParser(prog="tcsim diff", description=__doc__.splitlines()[0])
    p.add_argument("old", metavar="OLD", help="file.o[:section_or_function] or file.s")
    p.add_argument("new", metavar="NEW", help="file.o[:section_or_function] or file.s")
    p.add_argument("-r", "--read", action="append", required=True, metavar="CAPTURE",
                   help="a capture to replay through both (repeatable; a directory gives "
                        "its captures, a glob pattern its matches)")
    p.add_argument("--json", action="store_true", help="the report as one JSON object")
    p.add_argument("--old-out", metavar="FILE.pcap",
                   help="the differing packets as OLD left them")
    p.add_argument("--new-out", metavar="FILE.pcap",
                   help="the differing packets as NEW left them")
    p.add_argument("--examples", type=int, default=3, metavar="N",
                   help="examples shown per kind (default 3)")
    p.add_argument("--type", choices=("sched_cls", "sched_act"), default="sched_cls")
    p.add_argument("--hook", choices=("ingress", "egress"), default="ingress")
    p.add_argument("--classid", help="the filter's classid, MAJ:MIN in hex (cls_bpf)")
    p.add_argument("--no-da", action="store_true")
    p.add_argument("--act-default", choices=sorted(tcsim.CONTROLS), default="pipe")
    p.add_argument("--profile", choices=("current", "4.6"), default="current")
    p.add_argument("--old-profile", choices=("current", "4.6"))
    p.add_argument("--new-profile", choices=("current", "4.6"))
    p.add_argument("--field", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--budget", type=int)
    p.add_argument("--no-verify", action="store_true")
    p.add_argument("--cpus", type=int, metavar="N",
                   help="replay each version on N simulated CPUs (as tcsim --cpus)")
    p.add_argument("--steer", choices=("rss", "hash"), default="rss")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, metavar="N",
                       help="diff the captures on a local Dask cluster of N processes, one "
                            "task per capture (pip install 'pyebpf[dask]')")
    where.add_argument("--scheduler", metavar="tcp://HOST:8786",
                       help="diff the captures on this Dask cluster instead")
    return p


def main(argv) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except (EbpfError, OSError, ValueError, TypeError) as exc:
        print(f"tcsim diff: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
              file=sys.stderr)
        return 2
