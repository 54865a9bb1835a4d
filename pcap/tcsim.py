"""``tcsim``: replay a capture through a chain of tc programs and write the traffic out.

    tcsim -r CAPTURE (PROG [PROG ...] | --cbpf FILTER) [-o OUT] [--drops FILE] [--redirect-dir DIR]
          [--report FILE.jsonl] [--events FILE.jsonl] [--type sched_cls|sched_act]
          [--hook ingress|egress] [--classid MAJ:MIN] [--no-da] [--act-default CONTROL]
          [--profile current|4.6] [--field NAME=VALUE ...] [--env NET.toml] [--budget N]
          [--stop-on-error] [--no-verify]

PROG is ``file.o[:section_or_function]`` (an ELF object, through ``pyebpf.load``) or
``file.s``/``file.asm`` (assembler text).  The chain runs at a clsact hook as cls_bpf
filters in direct-action mode (default), cls_bpf filters in classid mode (``--no-da``)
or act_bpf actions of one filter (``--type sched_act``); see ``pcap/tcreplay.pyx`` for
the kernel semantics reproduced.  ``--cbpf FILTER`` replays through a classic socket
filter instead (a pcap-filter expression, or a file of ``tcpdump -dd``/``-ddd`` text or
``struct sock_filter`` bytes): ``-o`` gets what a packet socket with that filter keeps,
each packet cut to the filter's return value, ``--drops`` the rest.  ``-r -`` reads
standard input, ``-o -`` writes the capture to standard output.  Outputs are written
only when the whole run succeeded: a regular file through ``.NAME.tcsim-tmp`` renamed
onto it, a device or FIFO streamed into (``pcap/outputs.py``).  Errors print one line
and exit 1; SIGINT and SIGTERM stop the run between packets, write nothing and exit 130
and 143.
"""
from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import operator
import os
import re
import signal
import struct
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from ..errors import BudgetExceeded, EbpfError, ElfError
from . import outputs, pcapio, tcreplay

VERDICTS = {-1: "TC_ACT_UNSPEC", 0: "TC_ACT_OK", 1: "TC_ACT_RECLASSIFY", 2: "TC_ACT_SHOT",
            3: "TC_ACT_PIPE", 4: "TC_ACT_STOLEN", 5: "TC_ACT_QUEUED", 6: "TC_ACT_REPEAT",
            7: "TC_ACT_REDIRECT", 8: "TC_ACT_TRAP"}
ACTIONS = ("delivered", "dropped", "consumed", "redirected", "fault", "dropped_before_tc")
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


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def load_program(spec: str, prog_type: str, profile: str, verify: bool = True, btf=None,
                 kconfig=None):
    """A Program from ``file.o[:name]`` or ``file.s``/``file.asm``, verified as the
    kernel verifies it unless ``verify`` is False; ``btf`` is the target BTF of an
    object's CO-RE relocations, ``kconfig`` the config of its ``__kconfig`` externs
    (defaults: see :func:`pyebpf.load`)."""
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
            return pyebpf.Program.from_asm(text, prog_type, profile=profile, verify=verify)
        except EbpfError as exc:
            raise UsageError(f"{path}: {exc}") from None
    if suffix != ".o":
        raise UsageError(f"{spec}: unknown program file: expected file.o[:section] or an "
                         "assembler file (.s, .asm)")
    if not os.path.exists(path):
        raise UsageError(f"{path}: no such program file")
    try:
        obj = pyebpf.load(path, prog_type=prog_type, profile=profile, verify=verify, btf=btf,
                          kconfig=kconfig)
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


def load_env(path: str):
    from pyebpf.environment import Environment, EnvironmentSpecError
    try:
        return Environment.from_toml(path)
    except EnvironmentSpecError as exc:
        raise UsageError(f"--env {exc}") from None


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
            "len_out": len(out) + cap.orig_len[index] - len(frame) if action < FAULT else None,
            "truncated": len(frame) < cap.orig_len[index],
            "verdict": VERDICTS.get(verdict, str(verdict))
            if action < FAULT and self.mode != "sf" else None,
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
        })


def _plan(args) -> dict:
    """{option: outputs.Target} of every output file the arguments name, checked
    before anything runs: none a directory, no two the same file, none the input."""
    targets = {}
    for option, value in (("-o", args.output), ("--drops", args.drops),
                          ("--report", args.report), ("--events", args.events)):
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


def _flags(*actions) -> bytes:
    return bytes(1 if a in actions else 0 for a in range(256))


def _outputs(args, targets, replay, capture):
    """[(outputs.Target, bytes)] of every output the arguments ask for."""
    ts, orig, frames, data = capture.ts, capture.orig_len, capture.frames, replay.data
    actions, ns = replay.actions, capture.nanosecond

    def capture_file(given, take, original=()):
        picked = tcreplay._replay_pick(actions, _flags(*take), _flags(*original), ts, frames,
                                    orig, data)
        return pcapio.packets_bytes(*picked, nanosecond=ns,
                                    pcapng=Path(given).suffix == ".pcapng")

    files = []
    if "-o" in targets:
        files.append((targets["-o"], capture_file(args.output, [0])))
    if "--drops" in targets:
        files.append((targets["--drops"], capture_file(args.drops, [1, FAULT, BEFORE_TC],
                                                       [FAULT, BEFORE_TC])))
    if "--report" in targets:
        files.append((targets["--report"], "".join(
            replay.report_line(i, o) + "\n" for i, o in enumerate(replay.outcomes())).encode()))
    if "--events" in targets:
        events = [json.dumps({"packet": i, "map": m.name or str(m.fd), "cpu": cpu,
                              "size": len(ev), "data": ev.hex()})
                  for i, extra in sorted(replay.extras.items())
                  for m, cpu, ev in extra.get("events", ())]
        files.append((targets["--events"], "".join(line + "\n" for line in events).encode()))
    if args.redirect_dir is not None:
        files.extend(_redirect_files(args, targets, replay, capture))
    return files


def _redirect_files(args, targets, replay, capture):
    """One capture per redirect target: the packets redirected to it and the
    bpf_clone_redirect copies, in packet order."""
    ts, orig, frames, data = capture.ts, capture.orig_len, capture.frames, replay.data
    size = struct.calcsize(replay._format)
    redirected = {}
    clones = {i: e["clones"] for i, e in replay.extras.items() if "clones" in e}
    redirects = itertools.compress(range(replay.count), map((3).__eq__, replay.actions))
    for i in sorted({*clones, *redirects}):
        for ifindex, ingress, b in clones.get(i, ()):
            redirected.setdefault((ifindex, ingress), []).append(
                (ts[i], b, orig[i] - len(frames[i]) + len(b)))
        if replay.actions[i] == 3:
            rec = struct.unpack_from(replay._format, replay.records, i * size)
            redirected.setdefault((rec[5], bool(rec[11])), []).append(
                (ts[i], data[i], orig[i] - len(frames[i]) + len(data[i])))
    taken = {t.key: option for option, t in targets.items()}
    source = outputs.input_key(args.read)
    files = []
    for (ifindex, ingress), recs in sorted(redirected.items()):
        name = f"ifindex-{ifindex}{'-ingress' if ingress else ''}.pcap"
        target = outputs.resolve(os.path.join(args.redirect_dir, name))
        if target.key in taken or target.key == source:
            raise UsageError(f"--redirect-dir {args.redirect_dir}: {name} is the same file "
                             f"as {taken.get(target.key, '-r')}; nothing written")
        taken[target.key] = f"--redirect-dir {target.given}"
        files.append((target, pcapio.pcap_bytes(recs, capture.nanosecond)))
    return files


def _budget_text(err, budget):
    """A budget fault's message in the command's words (--budget, not budget=)."""
    if not isinstance(err, BudgetExceeded):
        return err
    named = BudgetExceeded(f"instruction budget of {budget} exhausted (endless loop?); "
                           "raise it with --budget", err.pc, err.insn)
    if err.source:
        named.add_source(err.source, err.source_text)
    return named


def _report_faults(args, replay, programs, capture_name) -> None:
    """The first SHOWN_FAULTS faults one line each, then, when more were left out, one
    line per distinct fault (program, pc, kind) with its count."""
    kinds, shown, specs = {}, 0, args.programs or [args.cbpf]
    for i, extra in sorted(replay.extras.items()):
        if "error" not in extra:
            continue
        err = extra["error"]
        if isinstance(err, str):
            line = f"tcsim: {capture_name}: packet {i}: {err}; dropped"
            key = ("frame",)
            total = "in {capture} cannot be replayed (an skb holds 14 to 65535 bytes)"
        else:
            k = extra["program"]
            err = extra["error"] = _budget_text(err, programs[k].budget)
            line = (f"tcsim: packet {i}: program {k + 1} ({specs[k]}) faulted at pc "
                    f"{err.pc}: {str(err).splitlines()[0]}")
            key = (k, err.pc, type(err).__name__)
            total = (f"faulted in program {k + 1} ({specs[k]}) at pc {err.pc}"
                     f"{f' ({err.insn})' if err.insn else ''}: {type(err).__name__}")
        if shown < SHOWN_FAULTS:
            print(line, file=sys.stderr)
            shown += 1
        kinds.setdefault(key, [total, 0])[1] += 1
    count = sum(n for _, n in kinds.values())
    if count > shown:
        where = f"each is in {args.report}" if args.report else "--report FILE lists each"
        print(f"tcsim: {count - shown} more faults not shown ({where}); all {count} by kind:",
              file=sys.stderr)
        for total, n in kinds.values():
            print(f"tcsim: {_plural(n, 'packet')} {total.format(capture=capture_name)}",
                  file=sys.stderr)


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


def run(args, signals=None, start=None) -> int:
    start = time.perf_counter() if start is None else start
    signals = signals or _Signals()
    if args.no_da and args.type != "sched_cls":
        raise UsageError("--no-da (classid mode) applies to sched_cls programs only")
    if bool(args.programs) == bool(args.cbpf):
        raise UsageError("give programs (PROG ...) or --cbpf FILTER, not both"
                         if args.programs else "no program: give PROG ... or --cbpf FILTER")
    if args.cbpf and (args.type != "sched_cls" or args.no_da or args.classid):
        raise UsageError("--cbpf runs a socket filter: --type, --no-da and --classid "
                         "apply to tc programs only")
    fields = parse_fields(args.field)
    if args.env is not None:
        fields["env"] = load_env(args.env)
    classid = parse_classid(args.classid) if args.classid else 0
    targets = _plan(args)
    capture = pcapio.read(args.read)
    if args.cbpf:
        programs = [load_classic(args.cbpf, args.profile)]
    else:
        programs = [load_program(spec, args.type, args.profile, not args.no_verify, args.btf,
                                 args.kconfig)
                    for spec in args.programs]
    if args.budget is not None:
        for p in programs:
            p.budget = args.budget
    mode = ("sf" if args.cbpf else "act" if args.type == "sched_act"
            else "classid" if args.no_da else "da")
    # a packet socket's filter runs on received packets, after skb_vlan_untag
    replay = Replay(capture, programs, mode=mode, hook="ingress" if args.cbpf else args.hook,
                    classid=classid, act_default=CONTROLS[args.act_default], fields=fields,
                    stop_on_error=args.stop_on_error)
    _report_faults(args, replay, programs, capture.path)
    counts = Counter(replay.actions)
    if args.stop_on_error and counts[FAULT]:
        print("tcsim: stopped (--stop-on-error); no output written", file=sys.stderr)
        return 1
    signals.stage = "after the replay"
    outputs.write_all(_outputs(args, targets, replay, capture), critical=signals.hold)
    elapsed = time.perf_counter() - start
    rate = replay.count / elapsed if elapsed else float("inf")
    changed = sum(map(operator.is_not, replay.data, capture.frames))
    summary = ", ".join(f"{counts[k]} {name}" for k, name in enumerate(ACTIONS[:4]))
    if counts[BEFORE_TC]:
        summary += f", {counts[BEFORE_TC]} dropped before tc"
    if counts[FAULT]:
        summary += f", {counts[FAULT]} faulted (dropped)"
    print(f"tcsim: {_plural(replay.count, 'packet')} from {capture.path}: {summary}; "
          f"bytes changed in {_plural(changed, 'packet')}; {rate:,.0f} packets/s",
          file=sys.stderr)
    truncated = len(capture.truncated)
    if truncated:
        print(f"tcsim: {_plural(truncated, 'packet')} "
              f"{'was' if truncated == 1 else 'were'} captured shorter than on the wire "
              f"(caplen < len) and {'was' if truncated == 1 else 'were'} replayed as captured",
              file=sys.stderr)
    if signals.pending:
        print("tcsim: interrupted after the outputs were written", file=sys.stderr)
        return 128 + signals.pending
    return 0


def build_parser():
    p = argparse.ArgumentParser(prog="tcsim", description=__doc__.splitlines()[0])
    p.add_argument("programs", nargs="*", metavar="PROG",
                   help="file.o[:section_or_function] or file.s/.asm; several form a chain")
    p.add_argument("-r", "--read", required=True, metavar="CAPTURE",
                   help="the capture to replay (pcap or pcapng, Ethernet; - for stdin)")
    p.add_argument("-o", "--output", help="delivered packets (.pcap or .pcapng; - for stdout)")
    p.add_argument("--drops", help="dropped packets (pcap)")
    p.add_argument("--redirect-dir",
                   help="one capture per redirect target: ifindex-N.pcap, ifindex-N-ingress.pcap")
    p.add_argument("--report", help="one JSON object per packet")
    p.add_argument("--events", help="bpf_perf_event_output records (JSON lines)")
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
    p.add_argument("--env", metavar="NET.toml",
                   help="the modelled network the helpers see (docs/environment.md)")
    p.add_argument("--btf", type=Path, metavar="FILE",
                   help="target BTF of CO-RE relocations (default: /sys/kernel/btf/vmlinux if "
                        "readable, else the one pyebpf ships)")
    p.add_argument("--kconfig", type=Path, metavar="FILE",
                   help="kernel config (.config, or gzip-compressed) of __kconfig externs "
                        "(default: the modelled kernel's)")
    p.add_argument("--stop-on-error", action="store_true",
                   help="a program fault ends the run (exit 1, no output)")
    p.add_argument("--no-verify", action="store_true",
                   help="load programs the kernel's verifier would refuse (experiments: "
                        "their faults drop packets)")
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


def main(argv=None) -> int:
    start = time.perf_counter()
    args = build_parser().parse_args(argv)
    with _Signals() as signals:
        try:
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
    sys.exit(main())
