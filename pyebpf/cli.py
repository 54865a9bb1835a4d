"""The ``pyebpf`` command: assemble, disassemble and run raw eBPF programs.

    pyebpf run PROGRAM [--memory FILE | --memory-hex HEX] [--trace] [--budget N]
               [--type sched_cls|sched_act|socket_filter|kprobe] [--profile current|4.6]
               [--field NAME=VALUE ...]
    pyebpf trace-replay PROG events.jsonl [--program NAME] [-o OUT.json] [--profile P]
    pyebpf asm SOURCE [-o OUT]
    pyebpf disasm OBJECT [--syntax kernel|conformance]
    pyebpf objdump PROG.o [--disasm]
    pyebpf verify PROGRAM [--section S] [--log-level 1|2] [--type T] [--profile P]
                  [--unpriv]
    pyebpf cov report COVERAGE [COVERAGE ...] [--missing]
    pyebpf cov convert COVERAGE FORMAT:OUT

PROGRAM is assembler text (``.s``/``.asm``, either syntax) or raw instructions
(anything else).  With ``--type`` the memory is an Ethernet frame and the program runs
against its ``__sk_buff``; ``--field`` sets packet metadata (``mark=7``, ``ifindex=2``);
a ``kprobe`` program takes no memory, and ``--field`` sets its registers (``di=3``) and
run arguments (``cpu=1``, ``func_ip=...``).  ``trace-replay`` runs a tracing program
(an object's, or ``--program`` of it; or assembler text) once per event of a JSON-lines
file (docs/kprobe.md) and prints, or writes to ``-o``, the maps' contents, the perf
event and ring buffer records and the return values as JSON.
``verify`` prints the kernel verifier's log for each program of an object (or the one
``--section`` names: section or function) or for an assembler/raw program (``--type``,
default sched_cls), and exits 1 when one is refused, naming it on stderr.
``cov`` reads BPF C coverage written by ``pytest --pyebpf-cov`` (lcov or Cobertura):
``report`` prints lines and branches hit per source file (several files are added
up; ``--missing`` lists the lines never run), ``convert`` writes it in the other format.
Errors print one line and exit 1.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import EbpfError
from .files import write_atomically


def _load_program(path: Path, prog_type=None, profile="current", verify=True):
    from . import Program
    data = path.read_bytes()
    if path.suffix in (".s", ".asm"):
        return Program.from_asm(data.decode(), prog_type, profile=profile, verify=verify)
    return Program(data, prog_type, profile=profile, verify=verify)


def _parse_field(text: str):
    name, sep, value = text.partition("=")
    if not sep:
        raise ValueError(f"--field {text!r}: expected NAME=VALUE")
    try:
        return name, int(value, 0)
    except ValueError:
        return name, value


def _cmd_run(args) -> int:
    prog = _load_program(args.program, args.type, args.profile)
    memory = None
    if args.memory:
        memory = args.memory.read_bytes()
    elif args.memory_hex:
        memory = bytes.fromhex(args.memory_hex)
    fields = dict(_parse_field(f) for f in args.field)
    if prog.prog_type is not None and prog.prog_type.name == "BPF_PROG_TYPE_KPROBE":
        from .isa import PT_REGS
        names = PT_REGS[prog.arch][0]
        regs = {n: fields.pop(n) for n in list(fields) if n in names}
        fields["regs"] = regs
    res = prog.run(memory, budget=args.budget, trace=args.trace, **fields)
    if args.trace:
        print(res.trace)
    if res.skb is None:
        print(f"r0 = {res.retval:#x} ({res.retval})")
        for line in res.trace_output or ():
            print(f"trace_printk: {line}")
    else:
        print(f"verdict = {res.retval}")
        print(f"__sk_buff: {res.skb}")
        for line in res.trace_output:
            print(f"trace_printk: {line}")
        if res.redirect:
            print(f"redirect: ifindex {res.redirect[0]}{' (ingress)' if res.redirect[1] else ''}")
    print(f"instructions executed: {res.insn_count}")
    if memory:
        changed = [k for k, (a, b) in enumerate(zip(memory, res.data)) if a != b]
        print(f"memory: {len(res.data)} bytes, {len(changed)} changed"
              + (f" (offsets {', '.join(map(str, changed[:16]))}"
                 + (", ..." if len(changed) > 16 else "") + ")" if changed else ""))
    return 0


def _cmd_asm(args) -> int:
    from .asm import assemble
    code = assemble(args.source.read_text())
    out = args.output or args.source.with_suffix(".bin")
    write_atomically(out, code)
    print(f"{out}: {len(code) // 8} instructions")
    return 0


def _cmd_disasm(args) -> int:
    from .asm import disassemble
    print(disassemble(args.object.read_bytes(), syntax=args.syntax))
    return 0


def _cmd_objdump(args) -> int:
    from .btf.ext import disassembly_by_pc, interleave
    from .elf import parse
    spec = parse(args.object)
    print(spec.listing())
    if args.disasm:
        for prog in spec.programs.values():
            print(f"\n{prog.name} (section {prog.section}):")
            refs = {r.insn: r for r in prog.map_refs}
            notes = {pc: f"  ; map {r.map}" if r.kind == "fd" else f"  ; {r.map}+{r.offset}"
                     for pc, r in refs.items()}
            lines = {pc: text + notes.get(pc, "")
                     for pc, text in disassembly_by_pc(prog.insns).items()}
            print(interleave(lines, prog.line_info), end="")
    return 0


def _cmd_verify(args) -> int:
    from . import isa, loader, verifier
    from .errors import VerifierError
    if args.program.suffix == ".o":
        obj = loader.load(args.program, profile=args.profile, pin=False, verify=False)
        by_fd = {m.fd: m for m in obj.maps.values()}
        for m in obj.maps.values():
            by_fd.update({inner.fd: inner for inner in [getattr(m, "inner_map", None)]
                          if inner is not None})
        if args.section is None:
            chosen = list(obj.programs.items())
        else:
            prog = obj.program(args.section)
            chosen = [(args.section, prog)]
        jobs = [(f"{args.program}:{name}", p.insns, p.prog_type, p.line_info, p.functions,
                 p.func_info) for name, p in chosen]
        lookup = by_fd.get
    else:
        if args.section is not None:
            raise ValueError("--section applies to .o files only")
        prog = _load_program(args.program, None, args.profile, verify=False)
        jobs = [(str(args.program), prog.insns, isa.prog_type(args.type or "sched_cls"), (),
                 (), False)]
        lookup = None
    refused = []
    for name, insns, prog_type, line_info, functions, func_info in jobs:
        slots = isa.unpack_program(insns)
        if len(jobs) > 1:
            print(f"{name}:")
        try:
            verdict = verifier.verify(slots, prog_type, args.profile, maps=lookup,
                                      line_info=line_info, log_level=args.log_level,
                                      unpriv=args.unpriv, functions=functions,
                                      func_info=func_info)
            sys.stdout.write(verdict.log)
        except VerifierError as exc:
            sys.stdout.write(exc.log)
            where = f" at {exc.source}" if exc.source else ""
            refused.append(f"{name}: refused{where}: {exc}")
    for line in refused:
        print(f"pyebpf verify: {line}", file=sys.stderr)
    return 1 if refused else 0
def _cmd_trace_replay(args) -> int:
    import json
    from . import load
    from .trace import replay
    if args.program.suffix in (".s", ".asm"):
        prog, maps = _load_program(args.program, "kprobe", args.profile), {}
        maps = {m.name or str(m.fd): m for m in prog.maps}
    else:
        obj = load(args.program, profile=args.profile)
        prog = obj.program(args.name) if args.name else obj.program()
        maps = obj.maps
    if prog.prog_type is None or prog.prog_type.name != "BPF_PROG_TYPE_KPROBE":
        raise ValueError(f"{args.program}: trace-replay runs kprobe programs, not {prog!r}")
    result = replay.replay(prog, replay.read_events(args.events), maps, str(args.events))
    text = json.dumps(result, indent=1) + "\n"
    if args.output:
        write_atomically(args.output, text.encode())
    else:
        sys.stdout.write(text)
    print(f"trace-replay: {result['events']} events", file=sys.stderr)
    return 0


def _read_coverage(paths):
    from . import coverage
    total = {}
    for path in paths:
        for name, fc in coverage.read(path).items():
            into = total.setdefault(name, coverage.FileCoverage())
            for line, hits in fc.lines.items():
                into.lines[line] = into.lines.get(line, 0) + hits
            for line, branches in fc.branches.items():
                have = {(b, d): n for b, d, n in into.branches.get(line, [])}
                for b, d, n in branches:
                    old = have.get((b, d))
                    have[(b, d)] = n if old is None else old + (n or 0)
                into.branches[line] = [(b, d, n) for (b, d), n in sorted(have.items())]
    return {name: total[name] for name in sorted(total)}


def _cmd_cov(args) -> int:
    from . import coverage
    cov = _read_coverage(args.coverage)
    if args.cov_command == "convert":
        fmt, sep, out = args.target.partition(":")
        if not sep or not out:
            raise ValueError(f"{args.target!r}: expected lcov:FILE or cobertura:FILE")
        coverage.write(cov, fmt, Path(out))
        print(f"{out}: {fmt}, {len(cov)} source files")
        return 0
    print(coverage.summary(cov))
    if args.missing:
        for name, fc in cov.items():
            missing = [line for line, hits in fc.lines.items() if not hits]
            if missing:
                print(f"{name}: lines never run: {', '.join(map(str, missing))}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pyebpf", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a program once over some memory")
    run.add_argument("program", type=Path)
    group = run.add_mutually_exclusive_group()
    group.add_argument("--memory", type=Path, help="file whose bytes r1 points at")
    group.add_argument("--memory-hex", help="the memory as hex digits")
    run.add_argument("--trace", action="store_true", help="print every step")
    run.add_argument("--budget", type=int, default=None, help="instruction budget")
    run.add_argument("--type", help="program type: sched_cls, sched_act, socket_filter or "
                                    "kprobe")
    run.add_argument("--profile", default="current", help="kernel profile: current or 4.6")
    run.add_argument("--field", action="append", default=[], metavar="NAME=VALUE",
                     help="packet metadata for typed programs (repeatable)")
    run.set_defaults(func=_cmd_run)
    tr = sub.add_parser("trace-replay", help="replay a kprobe program over JSON-lines events")
    tr.add_argument("program", type=Path, help="an object (.o) or assembler text (.s)")
    tr.add_argument("events", type=Path)
    tr.add_argument("--program", dest="name", help="the object's program: function or section")
    tr.add_argument("-o", "--output", type=Path, help="write the JSON result here")
    tr.add_argument("--profile", default="current", help="kernel profile: current or 4.6")
    tr.set_defaults(func=_cmd_trace_replay)
    asm = sub.add_parser("asm", help="assemble text into raw instructions")
    asm.add_argument("source", type=Path)
    asm.add_argument("-o", "--output", type=Path)
    asm.set_defaults(func=_cmd_asm)
    dis = sub.add_parser("disasm", help="disassemble raw instructions")
    dis.add_argument("object", type=Path)
    dis.add_argument("--syntax", choices=("kernel", "conformance"), default="kernel")
    dis.set_defaults(func=_cmd_disasm)
    objdump = sub.add_parser("objdump", help="list an ELF object's programs and maps")
    objdump.add_argument("object", type=Path)
    objdump.add_argument("--disasm", action="store_true", help="disassemble each program")
    objdump.set_defaults(func=_cmd_objdump)
    ver = sub.add_parser("verify", help="the kernel verifier's decision and log")
    ver.add_argument("program", type=Path)
    ver.add_argument("--section", help="one program of an object: section or function name")
    ver.add_argument("--log-level", type=int, choices=(1, 2), default=1)
    ver.add_argument("--type", help="program type of an assembler or raw program "
                                    "(default sched_cls)")
    ver.add_argument("--profile", default="current", help="kernel profile: current or 4.6")
    ver.add_argument("--unpriv", action="store_true",
                     help="decide as for a loader without capabilities")
    ver.set_defaults(func=_cmd_verify)
    cov = sub.add_parser("cov", help="BPF C coverage written by pytest --pyebpf-cov")
    cov_sub = cov.add_subparsers(dest="cov_command", required=True)
    report = cov_sub.add_parser("report", help="lines and branches hit per source file")
    report.add_argument("coverage", type=Path, nargs="+", help="lcov or Cobertura files")
    report.add_argument("--missing", action="store_true", help="list the lines never run")
    report.set_defaults(func=_cmd_cov)
    convert = cov_sub.add_parser("convert", help="write coverage in the other format")
    convert.add_argument("coverage", type=Path, nargs=1)
    convert.add_argument("target", metavar="FORMAT:OUT", help="lcov:FILE or cobertura:FILE")
    convert.set_defaults(func=_cmd_cov)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:                 # the reader (head, less) stopped early
        return 0
    except (EbpfError, OSError, ValueError, TypeError) as exc:
        print(f"pyebpf {args.command}: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
