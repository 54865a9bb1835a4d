"""``tcsim``: replay a capture through a chain of tc programs and write the traffic out.

    tcsim -r CAPTURE (PROG [PROG ...] | --cbpf FILTER) [-o OUT] [--drops FILE] [--redirect-dir DIR]
          [--report FILE.jsonl] [--report-format compact|full] [--events FILE.jsonl]
          [--type sched_cls|sched_act|socket_filter] [--sf-start mac|network]
          [--hook ingress|egress] [--classid MAJ:MIN] [--no-da] [--act-default CONTROL]
          [--profile current|4.6] [--field NAME=VALUE ...] [--env NET.toml] [--budget N]
          [--stop-on-error] [--no-verify] [--jit]

PROG is ``file.o[:section_or_function]`` (an ELF object, through ``pyebpf.load``) or
``file.s``/``file.asm`` (assembler text).  The chain runs at a clsact hook as cls_bpf
filters in direct-action mode (default), cls_bpf filters in classid mode (``--no-da``)
or act_bpf actions of one filter (``--type sched_act``); see ``pcap/tcreplay.pyx`` for
the kernel semantics reproduced.  ``--cbpf FILTER`` replays through a classic socket
filter instead (a pcap-filter expression, or a file of ``tcpdump -dd``/``-ddd`` text or
``struct sock_filter`` bytes): ``-o`` gets what a packet socket with that filter keeps,
each packet cut to the filter's return value, ``--drops`` the rest; ``--type
socket_filter`` does the same for an eBPF socket filter.  The capture (Ethernet, Linux
cooked, raw IP or loopback; ``-r -`` reads standard input) is read a chunk at a time
and the outputs, in its linktype, are written as the replay goes (docs/tcsim.md); ``-o
-`` writes the capture to standard output.  A regular file is written through
``.NAME.tcsim-tmp``, renamed onto it only when the whole run succeeded; a device or
FIFO is streamed into (``pcap/outputs.py``).  Errors print one line and exit 1; SIGINT
and SIGTERM stop the run between packets, replace no file and exit 130 and 143.
"""
from __future__ import annotations

import argparse
import atexit
import contextlib
import dataclasses
import json
import os
import re
import signal
import stat
import struct
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from .. import host
from .._core import conntrack_entries
from ..errors import BudgetExceeded, EbpfError, ElfError
from . import kernelcheck, mapfiles, outputs, pcapio, report, summary, tcreplay
from .report import ACTIONS, VERDICTS

FAULT, BEFORE_TC = 4, 5
# tc's names for an action's control verb (iproute2's action_a2n)
CONTROLS = {"continue": -1, "ok": 0, "pass": 0, "reclassify": 1, "drop": 2, "shot": 2,
            "pipe": 3, "trap": 8}


SHOWN_FAULTS = 10               # fault lines on stderr before only the totals follow
REDIRECT_NAME = re.compile(r"ifindex-[0-9]+(-ingress)?\.pcap$")


class UsageError(EbpfError):
    """A mistake on the command line."""


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived (``signum``); the replay loop adds ``packet``."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


def program_source(spec: str) -> tuple:
    """(path, section or function name or None) of a PROG argument."""
    if not os.path.exists(spec) and ":" in spec:
        return tuple(spec.rsplit(":", 1))
    return spec, None


def _load_object(path: str, prog_type: str, profile: str, verify: bool, pins, btf=None,
                 kconfig=None, machine=None):
    """pyebpf.load (``btf``, ``kconfig``, ``machine`` as it takes them) with the pins the object
    declares (``pins`` None), none (False), or
    every map pinned by name (``pins`` a directory: libbpf's LIBBPF_PIN_BY_NAME with it
    as the bpffs root): a map pinned by an earlier run is reused with its contents, as
    libbpf reuses a pinned map.  The caller has made that directory the pin root
    (``_pin_root``) for as long as the maps are used."""
    import pyebpf
    if pins is None or pins is False:
        return pyebpf.load(path, prog_type=prog_type, profile=profile, verify=verify,
                           pin=pins is None, btf=btf, kconfig=kconfig, machine=machine)
    import dataclasses

    from pyebpf import elf, loader
    spec = elf.parse(path, btf=btf, kconfig=kconfig)
    for name, ms in spec.maps.items():
        if ms.pin_path is None:
            spec.maps[name] = dataclasses.replace(ms, pin_path=name)
    obj = loader.Object(spec, prog_type=prog_type, profile=profile, verify=verify,
                        machine=machine)
    for name, m in obj.maps.items():
        # a map got from its pin file comes without the BTF types of this declaration
        if m.key_type is None:
            m.key_type, m.value_type = spec.maps[name].key_type, spec.maps[name].value_type
    return obj


@contextlib.contextmanager
def _pin_root(directory):
    """PYEBPF_PIN_ROOT set to ``directory`` (pyebpf.pin_root) while entered; nothing
    changed for None."""
    if directory is None:
        yield
        return
    saved = os.environ.get("PYEBPF_PIN_ROOT")
    os.environ["PYEBPF_PIN_ROOT"] = os.path.abspath(directory)
    try:
        yield
    finally:
        if saved is None:
            del os.environ["PYEBPF_PIN_ROOT"]
        else:
            os.environ["PYEBPF_PIN_ROOT"] = saved


def load_program(spec: str, prog_type: str, profile: str, verify: bool = True, pins=None,
                 btf=None, kconfig=None, machine=None):
    """A Program from ``file.o[:name]`` or ``file.s``/``file.asm``, verified as the
    kernel verifies it unless ``verify`` is False; ``pins``: the maps' pins, None as the
    object declares, False none, a directory as ``--pin-dir``; ``btf`` is the target BTF
    of an object's CO-RE relocations, ``kconfig`` the config of its ``__kconfig``
    externs, ``machine`` the one whose ids its maps take (defaults: see
    :func:`pyebpf.load`)."""
    import pyebpf
    path, name = program_source(spec)
    suffix = Path(path).suffix
    if suffix in (".s", ".asm"):
        if name is not None:
            raise UsageError(f"{spec}: a section or function name applies to .o files only")
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise UsageError(f"{path}: cannot read the program: {exc.strerror}") from None
        try:
            return pyebpf.Program.from_asm(text, prog_type, profile=profile, verify=verify)
        except EbpfError as exc:
            raise UsageError(f"{path}: {exc}") from None
    if suffix != ".o":
        raise UsageError(f"{spec}: unknown program file: expected file.o[:section] or an "
                         "assembler file (.s, .asm)")
    if not os.path.exists(path):
        raise UsageError(f"{path}: no such program file")
    try:
        obj = _load_object(path, prog_type, profile, verify, pins, btf, kconfig, machine)
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


def current_task_fields(fields: dict, task) -> None:
    """The packet runs' current task (``bpf_get_current_pid_tgid``, ``_uid_gid``,
    ``_comm``): the machine's for the hook, unless ``--field`` names its ids."""
    fields.setdefault("pid_tgid", task.tgid << 32 | task.pid)
    fields.setdefault("uid_gid", task.gid << 32 | task.uid)
    fields.setdefault("comm", task.comm_bytes)


def load_env(path: str, hook: str = "ingress"):
    """The --env file's Environment and the Machine its tasks, kworker and current
    tasks declare, its current task the one ``[current]`` names for ``hook`` (None when
    it declares none of them: bpf_wq work then runs in no task)."""
    from pyebpf.environment import Environment, EnvironmentSpecError, read_toml
    from pyebpf.trace.machine import machine_from_dict
    try:
        data, where = read_toml(path)
        env = Environment.from_dict(data, where)
        return env, machine_from_dict(data, env, where, hook)
    except EnvironmentSpecError as exc:
        raise UsageError(f"--env {exc}") from None


def _classid_text(value):
    return f"{value >> 16:x}:{value & 0xFFFF:x}"


def _pinned_maps_transaction(programs):
    """Pinned maps the chain reaches are one transaction on their pin files for the whole
    replay (Program.run makes each run one; docs/pinning.md)."""
    from pyebpf import _core
    if _core._get_pin_hook() is None:
        return contextlib.nullcontext()
    from pyebpf import pinning

    def maps():
        return list({id(m): m for p in programs for m in pinning._reachable_maps(p)}.values())

    if not any(m._pin is not None for m in maps()):
        return contextlib.nullcontext()
    return pinning.transaction(maps)


class Replay:
    """The outcome of a replay of a :class:`pcapio.Capture` of Ethernet frames, held in
    memory: ``outcomes`` (decoded records), ``data``, ``extras``.  (The command streams
    instead: ``tcreplay.Loop.run_chunk``.)"""

    def __init__(self, capture, programs, *, mode="da", hook="ingress", classid=0,
                 act_default=3, fields=None, stop_on_error=False):
        self.capture, self.mode = capture, mode
        start = time.perf_counter()
        with _pinned_maps_transaction(programs):
            self.records, self.data, self.extras = tcreplay.tc_replay(
                programs, capture.frames, mode=mode, ingress=hook == "ingress",
                classid=classid, act_default=act_default, fields=fields or {},
                stop_on_error=stop_on_error,
                ts=None if "ktime" in (fields or {}) else capture.ts)
        self.elapsed = time.perf_counter() - start
        self.count = len(self.records) // struct.calcsize(tcreplay.REPLAY_RECORD)
        self._format = tcreplay.REPLAY_RECORD
        # one byte per packet: the hook's action (the byte after the leading fields)
        size = struct.calcsize(tcreplay.REPLAY_RECORD)
        self.actions = self.records[struct.calcsize(tcreplay.REPLAY_RECORD[:10])::size]

    def outcomes(self):
        """(verdict, retval, classid, mark, priority, redirect_ifindex, tc_index, runs,
        insns, action, has_classid, redirect_ingress, fault_prog, decider) per packet."""
        return struct.iter_unpack(self._format, self.records)


def report_line(index, fields, extra, mode, budgets, fmt) -> bytes:
    """The report line of a packet with extras (the rest are written in C, the same
    object) in the format ``fmt`` (``report.FORMATS``): ``fields`` as tcreplay.Loop
    gives them."""
    (ts, wire, caplen, len_out, verdict, retval, classid, mark, priority, rdev, tc_index,
     runs, insns, action, has_classid, ringress, fault) = fields
    error = extra.get("error")
    if error is not None and not isinstance(error, str):
        error = extra["error"] = _budget_text(error, budgets[extra["program"]])
    return report.dumps({
        "index": index, "timestamp": ts / 1e9, "timestamp_ns": ts,
        "len_in": wire, "caplen_in": caplen,
        "len_out": len_out if action < FAULT else None,
        "truncated": caplen < wire,
        "verdict": VERDICTS.get(verdict, str(verdict)) if action < FAULT and mode != "sf"
        else None,
        "retval": retval if action < FAULT else None, "action": ACTIONS[action],
        "classid": _classid_text(classid) if has_classid and action < FAULT else None,
        "mark": mark, "priority": priority, "tc_index": tc_index,
        "redirect": {"ifindex": rdev, "ingress": bool(ringress)} if action == 3 else None,
        "clones": [{"ifindex": i, "ingress": g, "len": len(b)}
                   for i, g, b in extra.get("clones", ())],
        "trace_printk": extra.get("trace", []), "instructions": insns,
        "programs_run": runs,
        "errors": [] if error is None else
        [{"program": None, "pc": None, "message": error}] if isinstance(error, str) else
        [{"program": extra["program"], "pc": error.pc, "message": str(error)}],
        "dropped_before_tc": extra.get("dropped_before_tc"),
    }, fmt)


def _plan(args) -> dict:
    """{option: outputs.Target} of every output file the arguments name, checked
    before anything runs: none a directory, no two the same file, none the input."""
    targets = {}
    for option, value in (("-o", args.output), ("--drops", args.drops),
                          ("--report", args.report), ("--events", args.events),
                          ("--annotated", args.annotated),
                          ("--dump-conntrack", args.dump_conntrack),
                          ("--tracelog", args.tracelog)):
        if value is not None:
            targets[option] = outputs.resolve(value)
    outputs.check_distinct(targets, args.read)
    if args.redirect_dir is not None:
        rdir = Path(os.path.realpath(args.redirect_dir))
        if rdir.exists() and not rdir.is_dir():
            raise UsageError(f"--redirect-dir {args.redirect_dir}: not a directory")
        named = [(option, t.given, t.path) for option, t in targets.items()]
        if str(args.read) != "-":
            named.append(("-r", str(args.read), Path(os.path.realpath(args.read))))
        for option, given, path in named:
            if path.parent == rdir and REDIRECT_NAME.match(path.name):
                raise UsageError(f"{option} {given} is inside --redirect-dir "
                                 f"{args.redirect_dir}, whose {path.name} a redirect may "
                                 "write; give it another name or place")
    return targets


class _Outputs:
    """The writers of one run, opened in ``session`` as the arguments ask: ``out``,
    ``drops`` (captures in the input's linktype), ``report``, ``events`` and one
    capture per redirect target (``redirect``, for tcreplay.Loop); the --annotated
    pcapng as ``loop``'s Annotator; the --dump-maps files (``dump_maps``)."""

    def __init__(self, args, targets, session, source, loop, classid, fields):
        self.args, self.targets, self.session, self.source = args, targets, session, source
        self.loop, self.classid, self.fields = loop, classid, fields
        self.out = self.drops = self.report = self.events = None
        self.writers = []          # (target, Writer)
        self.redirects = {}
        self.taken = {t.key: option for option, t in targets.items()}
        self.input = outputs.input_key(args.read)

    def _open(self, target, make):
        writer = make(self.session.open(target))
        # a temporary file of this run's: nothing else writes it (Writer.direct_ok)
        writer.direct_ok = target.kind == "replace"
        self.writers.append((target, writer))
        return writer

    def _capture(self, target, pcapng):
        src = self.source
        return self._open(target, lambda fd: tcreplay.CaptureWriter(
            fd, pcapng, src.nanosecond, src.linktype,
            src.scanner if pcapng and src.format == "pcapng" else None))

    def start(self):
        """Open every output named on the command line (once the first chunk has
        told the capture's interfaces)."""
        if self.writers:
            return
        t = self.targets
        if "-o" in t:
            self.out = self._capture(t["-o"], Path(self.args.output).suffix == ".pcapng")
        if "--drops" in t:
            self.drops = self._capture(t["--drops"], Path(self.args.drops).suffix == ".pcapng")
        if "--report" in t:
            self.report = self._open(t["--report"], tcreplay.Writer)
        if "--events" in t:
            self.events = self._open(t["--events"], tcreplay.Writer)
        if "--annotated" in t:
            self.loop.annotated = self._annotator(self._open(t["--annotated"],
                                                             tcreplay.Writer))

    def _annotator(self, writer):
        args, fields = self.args, self.fields
        specs = args.programs or [f"--cbpf {args.cbpf}"]
        sf = bool(args.cbpf) or args.type == "socket_filter"
        where = (f"{'packet socket' if sf else 'tc ' + args.hook} hook, ifindex "
                 f"{fields.get('ifindex', 1)}")
        return tcreplay.Annotator(
            writer, [spec.encode() for spec in specs],
            f"{where}: packets as they came in".encode(),
            f"{where}: packets as they went out".encode(), _annotation_notes, sf=sf,
            mark=int(fields.get("mark", 0)), priority=int(fields.get("priority", 0)),
            classid=self.classid)

    def dump_maps(self, maps):
        """Every map's contents into ``--dump-maps DIR``/NAME.json."""
        for target, data in mapfiles.dump_files(self.args.dump_maps, maps):
            self._open(target, tcreplay.Writer).append(data)

    def dump_conntrack(self):
        """The conntrack table at the capture's last packet into ``--dump-conntrack``,
        as the environment's ``conntrack`` entries (docs/environment.md)."""
        entries = conntrack_entries(self.fields.get("env"), self.loop.now)
        text = json.dumps({"conntrack": [_entry_dict(e) for e in entries]}, indent=1)
        self._open(self.targets["--dump-conntrack"], tcreplay.Writer).append(
            text.encode() + b"\n")

    def tracelog(self, programs):
        """Each program's BPF streams after the replay (``bpf_stream_printk``'s text,
        read as ``bpftool prog tracelog stdout|stderr`` reads it) into ``--tracelog``:
        every stream that has text, in chain order, after a ``==> PROG stdout <==``
        line."""
        names = (self.args.programs if len(self.args.programs) == len(programs)
                 else [f"program {k + 1}" for k in range(len(programs))])
        text = b""
        for name, prog in zip(names, programs):
            for stream in ("stdout", "stderr"):
                got = prog.read_stream(stream)
                if got:
                    sep = b"" if not text or text.endswith(b"\n") else b"\n"
                    text += sep + f"==> {name} {stream} <==\n".encode() + got
        self._open(self.targets["--tracelog"], tcreplay.Writer).append(text)

    def redirect(self, ifindex, ingress):
        name = f"ifindex-{ifindex}{'-ingress' if ingress else ''}.pcap"
        target = outputs.resolve(os.path.join(self.args.redirect_dir, name))
        if target.key in self.taken or target.key == self.input:
            raise UsageError(f"--redirect-dir {self.args.redirect_dir}: {name} is the same "
                             f"file as {self.taken.get(target.key, '-r')}; nothing written")
        self.taken[target.key] = f"--redirect-dir {target.given}"
        return self._capture(target, False)

    def write_events(self, extras):
        """The events of a chunk's ``extras`` not yet handed to put_events."""
        self.put_events([(i, extra["events"]) for i, extra in sorted(extras.items())
                         if "events" in extra])

    def put_events(self, batch):
        """``[(index, [(map, cpu, bytes)])]`` into --events, in the capture's order (the
        loop's events_out: it hands them over mid-chunk past its events_limit)."""
        if self.events is None:
            return
        for i, events in batch:
            for m, cpu, ev in events:
                self.events.append((json.dumps({"packet": i, "map": m.name or str(m.fd),
                                                "cpu": cpu, "size": len(ev),
                                                "data": ev.hex()}) + "\n").encode())

    def check(self, final=False):
        """Raise the first write error; with ``final``, hand every buffer over first."""
        for target, writer in self.writers:
            if final:
                writer.flush()
            if writer.error:
                raise outputs.write_error(target, writer.error)


def _entry_dict(entry) -> dict:
    """A Conntrack entry as its TOML table: the keys that differ from the defaults."""
    out = {}
    for f in dataclasses.fields(entry):
        value = getattr(entry, f.name)
        if f.default is dataclasses.MISSING or value != f.default:
            out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def _annotation_notes(extra) -> bytes:
    """What an --annotated comment adds for a packet's extras: why it never reached tc,
    its fault, its clones, its trace_printk lines."""
    parts = []
    if "dropped_before_tc" in extra:
        parts.append(f"; {extra['dropped_before_tc']}")
    if "error" in extra:
        err = extra["error"]
        where = "" if isinstance(err, str) else \
            f" in program {extra['program'] + 1} at pc {err.pc}"
        parts.append(f"; fault{where}: {str(err).splitlines()[0]}")
    if extra.get("clones"):
        parts.append("; cloned to " + ", ".join(f"{ifindex}{' ingress' if ingress else ''}"
                                                for ifindex, ingress, _ in extra["clones"]))
    if extra.get("trace"):
        parts.append("; trace_printk: " + " | ".join(extra["trace"]))
    return "".join(parts).encode()


def _budget_text(err, budget):
    """A budget fault's message in the command's words (--budget, not budget=)."""
    if not isinstance(err, BudgetExceeded):
        return err
    named = BudgetExceeded(f"instruction budget of {budget} exhausted (endless loop?); "
                           "raise it with --budget", err.pc, err.insn)
    if err.source:
        named.add_source(err.source, err.source_text)
    return named


class _Faults:
    """The first SHOWN_FAULTS faults one line each as they come, then (``finish``),
    when more were left out, one line per distinct fault (program, pc, kind) with its
    count."""

    def __init__(self, args, programs, capture_name):
        self.args, self.programs, self.capture_name = args, programs, capture_name
        self.kinds, self.shown, self.specs = {}, 0, args.programs or [args.cbpf]

    def add(self, extras):
        for i, extra in sorted(extras.items()):
            if "error" not in extra:
                continue
            err = extra["error"]
            if isinstance(err, str):
                line = f"tcsim: {self.capture_name}: packet {i}: {err}; dropped"
                skb = "skb holds" in err
                key = ("frame", skb)
                total = ("in {capture} cannot be replayed (an skb holds 14 to 65535 bytes)"
                         if skb else "in {capture} have no link-layer header tcsim can "
                         "present as Ethernet")
            else:
                k = extra["program"]
                err = extra["error"] = _budget_text(err, self.programs[k].budget)
                line = (f"tcsim: packet {i}: program {k + 1} ({self.specs[k]}) faulted at pc "
                        f"{err.pc}: {str(err).splitlines()[0]}")
                key = (k, err.pc, type(err).__name__)
                total = (f"faulted in program {k + 1} ({self.specs[k]}) at pc {err.pc}"
                         f"{f' ({err.insn})' if err.insn else ''}: {type(err).__name__}")
            if self.shown < SHOWN_FAULTS:
                print(line, file=sys.stderr)
                self.shown += 1
            self.kinds.setdefault(key, [total, 0])[1] += 1

    def finish(self):
        count = sum(n for _, n in self.kinds.values())
        if count > self.shown:
            where = (f"each is in {self.args.report}" if self.args.report
                     else "--report FILE lists each")
            print(f"tcsim: {count - self.shown} more faults not shown ({where}); all {count} "
                  "by kind:", file=sys.stderr)
            for total, n in self.kinds.values():
                print(f"tcsim: {summary.plural(n, 'packet')} "
                      f"{total.format(capture=self.capture_name)}", file=sys.stderr)


class _StopOnError(Exception):
    """--stop-on-error met a fault: the outputs are dropped."""


class _Signals:
    """While entered (in the main thread): SIGINT and SIGTERM raise Interrupted, except
    inside ``hold()``, which keeps the first for after it (the renames that make the
    outputs appear are not cut in half)."""

    def __init__(self):
        self.previous, self.holding, self.pending = {}, False, None
        self.stage = "before the replay"        # where the command is, for the message

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self.previous[signum] = signal.signal(signum, self._raise)
        return self

    def __exit__(self, *exc):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def _raise(self, signum, frame):
        if self.holding:
            self.pending = self.pending or signum
            return
        raise Interrupted(signum)

    @contextlib.contextmanager
    def hold(self):
        self.holding = True
        try:
            yield
        finally:
            self.holding = False


def _check_options(args) -> None:
    if args.no_da and args.type != "sched_cls":
        raise UsageError("--no-da (classid mode) applies to sched_cls programs only")
    if bool(args.programs) == bool(args.cbpf):
        raise UsageError("give programs (PROG ...) or --cbpf FILTER, not both"
                         if args.programs else "no program: give PROG ... or --cbpf FILTER")
    if args.cbpf and (args.type != "sched_cls" or args.no_da or args.classid):
        raise UsageError("--cbpf runs a socket filter: --type, --no-da and --classid "
                         "apply to tc programs only")
    if args.type == "socket_filter" and (args.classid or args.hook != "ingress"):
        raise UsageError("--type socket_filter runs on a packet socket: --classid and "
                         "--hook apply to tc programs only")
    if args.sf_start != "mac" and not (args.cbpf or args.type == "socket_filter"):
        raise UsageError("--sf-start applies to socket filters (--type socket_filter, "
                         "--cbpf) only")
    if args.json and "-" in (args.output, args.drops, args.report, args.events,
                             args.annotated):
        raise UsageError("--json prints the summary on standard output, which an output "
                         "given as - already takes")
    if args.cpus is not None and not 1 <= args.cpus <= tcreplay.MAX_SIMULATED_CPUS:
        raise UsageError(f"--cpus {args.cpus}: tcsim simulates 1 to {tcreplay.MAX_SIMULATED_CPUS} CPUs")
    if (args.cpus or 1) > 1 and args.kernel_check:
        raise UsageError("--kernel-check replays the packets in the capture's order on one "
                         "CPU: it applies to --cpus 1")
    if (args.cpus or 1) > 1 and any(f.partition("=")[0].strip() == "cpu" for f in args.field):
        raise UsageError("--field cpu: with --cpus N the steering picks each packet's CPU")
    if args.steer != "rss" and (args.cpus or 1) == 1:
        raise UsageError("--steer applies to several CPUs (--cpus N)")
    if args.cbpf and args.kernel_check:
        raise UsageError("--kernel-check runs eBPF programs in the kernel; a classic filter "
                         "(--cbpf) is checked against libpcap's packet socket instead "
                         "(docs/tcsim.md)")
    if args.cbpf and (args.map or args.pin_dir):
        raise UsageError("--map and --pin-dir fill the maps of eBPF programs; a classic "
                         "filter (--cbpf) has none")


def run(args, signals=None, start=None, collect=None) -> int:
    """One replay as the command line asks (``args`` from build_parser, one capture);
    ``collect``, when given, is called with the summary (the ``--json`` object)."""
    start = time.perf_counter() if start is None else start
    signals = signals or _Signals()
    _check_options(args)
    fields = parse_fields(args.field)
    machine = None
    if args.env is not None:
        fields["env"], machine = load_env(args.env, args.hook)
    classid = parse_classid(args.classid) if args.classid else 0
    targets = _plan(args)
    with _pin_root(args.pin_dir):
        source = pcapio.Source(args.read)
        try:
            return _replay(args, signals, start, fields, classid, targets, source, collect,
                           machine)
        finally:
            source.close()


def _kernel_check(args, programs, fields):
    """The kernel's copy of the programs for --kernel-check, loaded before the replay
    changes the maps; None without the option, or with a line saying why it is skipped
    where bpf(2) is refused."""
    if not args.kernel_check:
        return None
    mode = "act" if args.type == "sched_act" else "classid" if args.no_da else "da"
    programs, specs = kernelcheck.check_chain(programs, args.programs, mode, args.sf_start)
    why = kernelcheck.refused_reason()
    if why:
        print(f"tcsim: kernel-check skipped: bpf(2) is refused here ({why})",
              file=sys.stderr)
        return None
    sources = []
    for spec in specs:
        path, name = program_source(spec)
        sources.append((None, None) if Path(path).suffix in (".s", ".asm") else (path, name))
    # the --env world is built in a network namespace the kernel's test runs are in
    world = kernelcheck.env_world(fields.get("env"), sys.stderr)
    if world is False:
        return None
    try:
        return kernelcheck.Check(programs, sources,
                                 {k: v for k, v in fields.items() if k != "env"},
                                 ingress=args.hook == "ingress", world=world)
    except BaseException:
        if world is not None:
            world.close()
        raise


def _replay(args, signals, start, fields, classid, targets, source, collect,
            machine) -> int:
    if args.cbpf:
        programs = [load_classic(args.cbpf, args.profile)]
    else:
        # --cpus N is a machine of N CPUs: per-CPU maps get a value for each
        with host.simulated_cpus(args.cpus) if args.cpus else contextlib.nullcontext():
            # the --env machine's map ids number the maps (one map_idr per kernel)
            programs = [load_program(spec, args.type, args.profile, not args.no_verify,
                                     args.pin_dir, args.btf, args.kconfig, machine)
                        for spec in args.programs]
    if args.budget is not None:
        for p in programs:
            p.budget = args.budget
    from pyebpf import jit
    if args.jit or jit.MODE == "force":
        jit.compile(*programs)
    maps = mapfiles.chain_maps(programs)
    mapfiles.apply(args.map, maps)
    mapfiles.open_perf_buffers(maps, args.cpus or 1)
    check = _kernel_check(args, programs, fields)
    try:
        return _run_loop(args, signals, start, fields, classid, targets, source, programs,
                         maps, check, collect, machine)
    finally:
        if check is not None:
            check.close()


def _size(path) -> int:
    """The size of a regular capture file; 0 for standard input, a FIFO, a device."""
    try:
        st = os.stat(path)
    except OSError:
        return 0
    return st.st_size if path != "-" and stat.S_ISREG(st.st_mode) else 0


def _run_loop(args, signals, start, fields, classid, targets, source, programs, maps,
              check, collect, machine) -> int:
    sf = bool(args.cbpf) or args.type == "socket_filter"
    mode = ("sf" if sf else "act" if args.type == "sched_act"
            else "classid" if args.no_da else "da")
    if sf and args.sf_start == "network":
        fields["sf_start"] = "network"
    if machine is not None:
        # after --kernel-check took the fields: its test runs' task is tcsim's own
        current_task_fields(fields, machine.task)
    # a packet socket's filter runs on received packets, after skb_vlan_untag
    loop = tcreplay.Loop(programs, mode=mode, ingress=sf or args.hook == "ingress",
                         classid=classid, act_default=CONTROLS[args.act_default],
                         fields=fields, stop_on_error=args.stop_on_error,
                         cpus=args.cpus or 1, steer=args.steer, machine=machine)
    faults = _Faults(args, programs, source.path)
    budgets = [p.budget for p in programs]
    loop.report_full = args.report_format == "full"
    loop.report_slow = lambda i, f, extra: report_line(i, f, extra, mode, budgets,
                                                       args.report_format)
    if check is not None:
        loop.observe = check.observe
    progress = summary.Progress(_size(args.read), quiet=args.quiet or args.json)
    fault_kinds = Counter()
    try:
        with _pinned_maps_transaction(programs), outputs.Session(signals.hold) as session:
            outs = _Outputs(args, targets, session, source, loop, classid, fields)
            loop.events_out = outs.put_events
            loop.keep_events = args.events is not None
            if args.redirect_dir is not None:
                loop.redirect_writer = outs.redirect
                loop.redirect_format = (source.nanosecond, source.linktype)
            # the scan of a pcap chunk takes its records' RSS hashes for the steering
            source.scanner.hash_rss = (args.cpus or 1) > 1 and args.steer == "rss"
            for chunk, scanner, first in source.chunks():
                signals.stage = "while opening the outputs"
                outs.start()
                signals.stage = "before the replay"
                loop.run_chunk(chunk, scanner, first, outs.out, outs.drops, outs.report)
                faults.add(loop.extras)
                fault_kinds.update(summary.fault_kinds(loop.extras))
                outs.write_events(loop.extras)
                outs.check()
                progress(loop.count, source.base + source.pos)
                if loop.stopped:
                    raise _StopOnError
            progress.close()
            loop.finish_timers()
            disagreed = False
            if check is not None:
                disagreed = check.finish(sys.stderr)
            signals.stage = "while opening the outputs"
            outs.start()
            if args.dump_maps is not None:
                outs.dump_maps(maps)
            if args.dump_conntrack is not None:
                outs.dump_conntrack()
            if args.tracelog is not None:
                outs.tracelog(programs)
            signals.stage = "after the replay"
            outs.check(final=True)
    except _StopOnError:
        faults.finish()
        print("tcsim: stopped (--stop-on-error); no output written", file=sys.stderr)
        return 1
    finally:
        progress.close()
        # nothing may keep the programs, their maps and any timer armed in them alive
        # after the run: not the replay threads idling for a next chunk, nor the
        # loop's callbacks into the outputs (a cycle: the outputs hold the loop)
        loop.dismiss_crew()
        loop.events_out = loop.redirect_writer = None
    faults.finish()
    elapsed = time.perf_counter() - start
    result = summary.summary(loop, source.path, fault_kinds, elapsed, VERDICTS, ACTIONS,
                             sf)
    if collect is not None:
        collect(result)
    if args.json:
        print(json.dumps(result))
    elif not args.quiet:
        _print_summary(result, loop, source.path)
    if signals.pending:
        print("tcsim: interrupted after the outputs were written", file=sys.stderr)
        return 128 + signals.pending
    return 3 if disagreed else 0


def _print_summary(result, loop, path) -> None:
    counts = loop.counts
    text = ", ".join(f"{counts[k]} {name}" for k, name in enumerate(ACTIONS[:4]))
    if counts[BEFORE_TC]:
        text += f", {counts[BEFORE_TC]} dropped before tc"
    if counts[FAULT]:
        text += f", {counts[FAULT]} faulted (dropped)"
    rate = result["packets_per_second"]
    print(f"tcsim: {summary.plural(loop.count, 'packet')} from {path}: {text}; "
          f"bytes changed in {summary.plural(loop.changed, 'packet')}; "
          f"{rate if rate is not None else float('inf'):,.0f} packets/s", file=sys.stderr)
    truncated = loop.truncated
    if truncated:
        print(f"tcsim: {summary.plural(truncated, 'packet')} "
              f"{'was' if truncated == 1 else 'were'} captured shorter than on the wire "
              f"(caplen < len) and {'was' if truncated == 1 else 'were'} replayed as captured",
              file=sys.stderr)


def build_parser():
    p = argparse.ArgumentParser(prog="tcsim", description=__doc__.splitlines()[0])
    p.add_argument("programs", nargs="*", metavar="PROG",
                   help="file.o[:section_or_function] or file.s/.asm; several form a chain")
    p.add_argument("-r", "--read", required=True, action="append", metavar="CAPTURE",
                   help="the capture to replay (pcap or pcapng: Ethernet, Linux cooked, "
                        "raw IP or loopback; - for stdin); with --workers or --scheduler, "
                        "several: files, directories, glob patterns, -r repeated")
    p.add_argument("-o", "--output", help="delivered packets (.pcap or .pcapng; - for stdout)")
    p.add_argument("--drops", help="dropped packets (pcap)")
    p.add_argument("--redirect-dir",
                   help="one capture per redirect target: ifindex-N.pcap, ifindex-N-ingress.pcap")
    p.add_argument("--report", help="one JSON object per packet")
    p.add_argument("--report-format", choices=report.FORMATS, default="compact",
                   help="compact (the default): no spaces, keys holding their default "
                        "left out; full: every key on every line")
    p.add_argument("--events", help="bpf_perf_event_output records (JSON lines)")
    p.add_argument("--annotated", metavar="OUT.pcapng",
                   help="every packet as it came in and as it went out, each with a "
                        "comment on its outcome (for Wireshark)")
    p.add_argument("--cbpf", metavar="FILTER",
                   help="a classic socket filter instead of PROG: a pcap-filter expression "
                        "or a tcpdump -dd/-ddd file")
    p.add_argument("--type", choices=("sched_cls", "sched_act", "socket_filter"),
                   default="sched_cls")
    p.add_argument("--sf-start", choices=("mac", "network"), default="mac",
                   help="socket filters: run from the MAC header, as an AF_PACKET socket "
                        "(default), or from the network header, as an IP socket")
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
    p.add_argument("--env", metavar="NET.toml",
                   help="the modelled network the helpers see, and the tasks bpf_wq work "
                        "finds (docs/environment.md)")
    p.add_argument("--btf", type=Path, metavar="FILE",
                   help="target BTF of CO-RE relocations (default: /sys/kernel/btf/vmlinux if "
                        "readable, else the one pyebpf ships)")
    p.add_argument("--kconfig", type=Path, metavar="FILE",
                   help="kernel config (.config, or gzip-compressed) of __kconfig externs "
                        "(default: the modelled kernel's)")
    p.add_argument("--stop-on-error", action="store_true",
                   help="a program fault ends the run (exit 1, no output)")
    p.add_argument("--jit", action="store_true",
                   help="compile the chain's programs to native code first (pyebpf[jit]; "
                        "the same results, docs/jit.md)")
    p.add_argument("--no-verify", action="store_true",
                   help="load programs the kernel's verifier would refuse (experiments: "
                        "their faults drop packets)")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress bar and no summary on stderr (faults are still shown)")
    p.add_argument("--json", action="store_true",
                   help="print the summary on stdout as one JSON object")
    p.add_argument("--map", action="append", default=[], metavar="NAME=FILE.json",
                   help="initial contents of a map (repeatable; docs/tcsim-options.md)")
    p.add_argument("--dump-maps", metavar="DIR",
                   help="write every map's contents after the run to DIR/NAME.json")
    p.add_argument("--dump-conntrack", metavar="FILE.json",
                   help="write the conntrack table after the run to FILE.json, as the "
                        "--env file's conntrack entries")
    p.add_argument("--tracelog", metavar="FILE",
                   help="write the programs' BPF streams (bpf_stream_printk's stdout and "
                        "stderr, as bpftool prog tracelog shows them) after the run to "
                        "FILE (- for stdout)")
    p.add_argument("--pin-dir", metavar="DIR",
                   help="pin every map by name in DIR: a later run with the same DIR "
                        "starts from the state this one leaves")
    p.add_argument("--workers", type=int, metavar="N",
                   help="replay the captures on a local Dask cluster of N processes, each "
                        "capture with maps of its own (pip install 'pyebpf[dask]')")
    p.add_argument("--scheduler", metavar="tcp://HOST:8786",
                   help="replay the captures on this Dask cluster instead")
    p.add_argument("--kernel-check", action="store_true",
                   help="also run every packet with BPF_PROG_TEST_RUN and report each "
                        "disagreement (exit status 3)")
    p.add_argument("--cpus", type=int, metavar="N",
                   help="simulate N CPUs, each replaying the packets steered to it on a "
                        "thread of its own; per-CPU maps get N values")
    p.add_argument("--steer", choices=("rss", "hash"), default="rss",
                   help="how packets are steered to CPUs: a NIC's RSS (Toeplitz hash of "
                        "the addresses and ports, the default) or RPS (the skb's flow hash)")
    return p


def _interrupted(exc, signals) -> int:
    """The one line an interrupt prints; the exit status, 128 + the signal."""
    signum = getattr(exc, "signum", signal.SIGINT)
    streamed = getattr(exc, "streamed", None)
    if streamed:
        what = f"{', '.join(streamed)} got part of its output; nothing else written"
    else:
        what = "nothing written"
    packet = getattr(exc, "packet", None)
    where = f"at packet {packet}" if packet is not None else signals.stage
    print(f"tcsim: interrupted {where}; {what}", file=sys.stderr)
    return 128 + signum


def cli() -> None:
    """The ``tcsim`` command: :func:`main` on ``sys.argv``, then the process exits
    with its status."""
    code = main()
    if all(t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        # Its outputs written and closed, no thread left that exit would wait for: the
        # interpreter's teardown (every module, program and map freed one by one) is
        # ~4 % of a 1 M-frame run's CPU time and shows nothing to anyone; the atexit
        # handlers still run.
        atexit._run_exitfuncs()
        with contextlib.suppress(OSError):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def main(argv=None) -> int:
    """tcsim's command line on ``argv`` (``sys.argv[1:]`` when None); returns the exit
    status."""
    start = time.perf_counter()
    words = sys.argv[1:] if argv is None else list(argv)
    if words[:1] == ["diff"]:
        from . import diff
        return diff.main(words[1:])
    args = build_parser().parse_args(words)
    with _Signals() as signals:
        try:
            from . import cluster
            captures = cluster.expand(args.read)
            if len(captures) > 1 or args.workers or args.scheduler:
                if not (args.workers or args.scheduler):
                    raise UsageError(f"{len(captures)} captures: several are replayed on a "
                                     "Dask cluster, give --workers N or --scheduler ADDRESS")
                return cluster.run(args, captures)
            args.read = captures[0]
            return run(args, signals, start)
        except KeyboardInterrupt as exc:
            code = _interrupted(exc, signals)
            if argv is None:
                # The command line: nothing is left to write or remove, and the
                # interpreter's teardown (freeing every packet) alone can outlast the
                # 0.1 s an interrupted run promises.
                with contextlib.suppress(OSError):
                    sys.stdout.flush()
                    sys.stderr.flush()
                os._exit(code)
            return code
        except (EbpfError, OSError, ValueError, TypeError) as exc:
            print(f"tcsim: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                  file=sys.stderr)
            return 1


if __name__ == "__main__":
    cli()
