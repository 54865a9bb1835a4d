"""Many captures on a Dask cluster: ``tcsim PROG -r DIR_OR_GLOB ... --workers N``.

Each capture is one host's traffic: a task on a Dask worker replays it with programs
and maps of its own, exactly as ``tcsim PROG -r CAPTURE`` would, and writes its outputs
itself; the command then prints one merged summary and writes one merged report.  The
workers need the programs, the captures and the output directories at the same paths
(one machine, or a shared filesystem): paths are made absolute before they are sent.

Per-capture outputs (``STEM`` is the capture's file name without its suffix, which must
be unique among the captures): ``-o DIR`` and ``--drops DIR`` get ``DIR/STEM.pcap``
(``.pcapng`` for a pcapng capture), ``--events DIR`` ``DIR/STEM.jsonl``, ``--annotated
DIR`` ``DIR/STEM.pcapng``, ``--dump-conntrack DIR`` ``DIR/STEM.json``, ``--tracelog
DIR`` ``DIR/STEM.txt``,
``--redirect-dir DIR`` and ``--dump-maps DIR`` get ``DIR/STEM/``; ``--report FILE`` is the merged report, every line with a ``capture``
member; ``--kernel-check`` checks each capture on its worker (exit status 3 when any
disagreed).  ``--pin-dir`` is refused: each capture has maps of its own.  Dask is
optional: ``pip install 'pyebpf[dask]'``.
"""
from __future__ import annotations

import argparse
import contextlib
import glob
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from ..errors import EbpfError
from . import outputs, report, summary

CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap")
# options a capture's task cannot honour on a cluster: each capture has maps of its own
_REFUSED = {"pin_dir": "--pin-dir"}


class ClusterError(EbpfError):
    """The captures or options cannot be replayed on a cluster; the message says why."""


def expand(patterns) -> list:
    """The captures ``-r`` names: files as given, every capture file (by suffix) of a
    directory, the matches of a glob pattern; in order, each once."""
    found = []
    for given in patterns:
        if given == "-":
            found.append(given)
        elif os.path.isdir(given):
            found += sorted(str(p) for p in Path(given).iterdir()
                            if p.suffix in CAPTURE_SUFFIXES and p.is_file())
        elif os.path.exists(given) or not glob.has_magic(given):
            found.append(given)
        else:
            matches = sorted(glob.glob(given))
            if not matches:
                raise ClusterError(f"-r {given}: no capture matches")
            found += matches
    return list(dict.fromkeys(found))


def client_for(args):
    """(the LocalCluster to close, or a null context; a Client) for ``--scheduler``, or
    a LocalCluster of ``--workers`` processes; ClusterError naming the extra without
    Dask."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ClusterError("--workers and --scheduler need Dask: pip install "
                           "'pyebpf[dask]'") from None
    if args.scheduler:
        return contextlib.nullcontext(), Client(args.scheduler)
    environ = dict(os.environ)
    try:
        cluster = LocalCluster(n_workers=args.workers or 1, threads_per_worker=1,
                               processes=True, dashboard_address=None)
    finally:
        # distributed's Nanny writes its pre-spawn-environ (MALLOC_TRIM_THRESHOLD_, the
        # *_NUM_THREADS) into this process's environment to pass it to the workers it
        # spawns; the caller's process keeps its own (a malloc tunable there would reach
        # every child it starts later)
        for name in set(os.environ) - set(environ):
            del os.environ[name]
        os.environ.update(environ)
    return cluster, Client(cluster)


def _task_args(args, capture: str) -> dict:
    """The options of one capture's replay (as ``tcsim.build_parser`` gives them)."""
    stem = Path(capture).stem
    ext = ".pcapng" if capture.endswith(".pcapng") else ".pcap"
    task = dict(vars(args))
    task.update(read=os.path.abspath(capture), json=False, quiet=True, workers=None,
                scheduler=None, report=None,
                programs=[os.path.abspath(p) if os.path.exists(p) else p
                          for p in args.programs])
    for option, name in (("output", f"{stem}{ext}"), ("drops", f"{stem}.pcap"),
                         ("events", f"{stem}.jsonl"), ("annotated", f"{stem}.pcapng"),
                         ("redirect_dir", stem), ("dump_maps", stem),
                         ("dump_conntrack", f"{stem}.json"), ("tracelog", f"{stem}.txt")):
        if args_value := getattr(args, option):
            task[option] = os.path.join(os.path.abspath(args_value), name)
    task["want_report"] = args.report is not None
    return task


def replay_capture(task: dict) -> dict:
    """A Dask task: one capture replayed as ``tcsim`` replays it.  Returns its exit
    status, summary, report lines and what it printed on stderr."""
    from . import tcsim
    want_report = task.pop("want_report")
    args = argparse.Namespace(**task)
    err, collected = io.StringIO(), []
    with tempfile.TemporaryDirectory(prefix="tcsim-") as tmp, contextlib.redirect_stderr(err):
        if want_report:
            args.report = os.path.join(tmp, "report.jsonl")
        try:
            rc = tcsim.run(args, collect=collected.append)
        except (EbpfError, OSError, ValueError, TypeError) as exc:
            print(f"tcsim: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                  file=sys.stderr)
            rc = 1
        report = Path(args.report).read_text() if want_report and rc in (0, 3) else ""
    return {"capture": task["read"], "rc": rc, "summary": collected[0] if collected else None,
            "report": report, "stderr": err.getvalue()}


def run(args, captures) -> int:
    start = time.perf_counter()
    for option, flag in _REFUSED.items():
        if getattr(args, option, None):
            raise ClusterError(f"{flag} shares maps between runs; on a cluster each "
                               "capture has maps of its own")
    if "-" in captures or "-" in (args.output, args.drops, args.report, args.events,
                                  args.annotated, args.tracelog):
        raise ClusterError("a capture or output on a cluster is a file: - (standard "
                           "input or output) cannot be used")
    stems = {}
    for capture in captures:
        stem = Path(capture).stem
        if stem in stems:
            raise ClusterError(f"-r: {stems[stem]} and {capture} have the same name "
                               f"{stem}, which their outputs would share")
        stems[stem] = capture
    for option in ("output", "drops", "events", "annotated", "redirect_dir", "dump_maps",
                   "dump_conntrack", "tracelog"):
        if getattr(args, option):
            os.makedirs(getattr(args, option), exist_ok=True)
    report_target = outputs.resolve(args.report) if args.report else None
    cluster, client = client_for(args)
    with cluster, client:
        results = client.gather(client.map(replay_capture,
                                           [_task_args(args, c) for c in captures],
                                           pure=False))
    for r in results:
        for line in r["stderr"].splitlines():
            print(line.replace("tcsim: ", f"tcsim: {r['capture']}: ", 1)
                  if r["capture"] not in line else line, file=sys.stderr)
    done = [r["summary"] for r in results if r["summary"] is not None]
    merged = summary.merge(done)
    merged["wall_time"] = round(time.perf_counter() - start, 6)
    merged["packets_per_second"] = round(merged["packets"] / merged["wall_time"], 1)
    merged["failed"] = [r["capture"] for r in results if r["rc"] not in (0, 3)]
    if report_target is not None:
        lines = [report.with_capture(line, r["capture"], args.report_format)
                 for r in results for line in r["report"].splitlines()]
        outputs.write_all([(report_target, "".join(x + "\n" for x in lines).encode())])
    if args.json:
        print(json.dumps({**merged, "per_capture": done}))
    elif not args.quiet:
        acts = merged["actions"]
        where = (f"the cluster at {args.scheduler}" if args.scheduler
                 else summary.plural(args.workers, "worker"))
        print(f"tcsim: {summary.plural(merged['packets'], 'packet')} from "
              f"{summary.plural(len(done), 'capture')} on {where}"
              f": {', '.join(f'{n} {a}' for a, n in acts.items() if n)}; bytes changed in "
              f"{summary.plural(merged['packets_changed'], 'packet')}; "
              f"{merged['packets_per_second']:,.0f} packets/s", file=sys.stderr)
    return max((r["rc"] for r in results), default=0)
