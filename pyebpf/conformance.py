"""The bpf_conformance suite: its test-file format and its runner's plugin protocol.

``parse(text)`` reads a ``.data`` test file; ``run(case)`` executes it in pyebpf the way
the suite's uBPF plugin does (the helpers of :data:`HELPERS`, r1/r2 = memory and length); ``main()`` is the ``pyebpf-conformance-plugin`` command
that the public ``bpf_conformance_runner`` starts once per test file:

    bpf_conformance_runner --test_file_directory tests --cpu_version v4 \
        --include_groups callx --plugin_path pyebpf-conformance-plugin

argv carries the memory as hex (when the test has some), stdin the program as hex; the
plugin prints r0 in hex and exits 0, or prints one error line and exits 1.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

from .errors import EbpfError

#: The helper numbering of the suite's uBPF plugin, as pyebpf builtin helper names.
HELPERS = {0: "gather_bytes", 1: "memfrob", 2: "no_op", 3: "sqrti", 4: "strcmp", 5: "unwind"}

# Section directives, looked up in this order (the upstream parser's order).
_SECTIONS = ("asm", "result", "mem", "raw", "no register offset", " c", "error")


@dataclass(frozen=True)
class Case:
    """One test file: the program (assembly, or raw words that win over it), the
    memory, and the expected r0 or error text."""
    asm: str
    raw: tuple[int, ...] | None
    mem: bytes
    result: int | None
    error: str | None

    def program(self) -> bytes:
        if self.raw is not None:
            return b"".join(w.to_bytes(8, "little") for w in self.raw)
        from .asm import assemble
        return assemble(self.asm, syntax="conformance")


def sections(text: str) -> dict[str, list[str]]:
    """A ``.data`` file's sections (``asm``, ``result``, ``mem``, ``raw``, ``error``, ...)
    as their non-empty lines, comments stripped; ValueError for an unknown directive."""
    out: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        if "--" in line:
            current = next((s for s in _SECTIONS if s in line), None)
            if current is None:
                raise ValueError(f"unknown section directive {line.strip()!r}")
            out.setdefault(current, [])
            continue
        if current is not None and line.strip():
            out[current].append(line)
    return out


def parse(text: str) -> Case:
    """Parse a ``.data`` file's text; raises ValueError for a file with no program or
    no expectation, which the upstream runner would skip."""
    parts = sections(text)
    asm = "\n".join(parts.get("asm", []))
    raw = tuple(int(tok, 0) for line in parts.get("raw", []) for tok in line.split()) \
        if "raw" in parts else None
    mem = bytes(int(tok, 16) for line in parts.get("mem", []) for tok in line.split())
    result = parts.get("result")
    error = parts.get("error")
    value = None
    if result:
        last = result[-1].strip()
        value = int(last, 16) if "0x" in last.lower() else int(last)
    if not asm.strip() and raw is None:
        raise ValueError("test file has no program")
    if value is None and not error:
        raise ValueError("test file has neither a result nor an error")
    return Case(asm, raw, mem, value, error[-1].strip() if error else None)


def program_for(code: bytes):
    """A raw-mode Program with the conformance helpers installed."""
    import pyebpf
    return pyebpf.Program(code, helpers=HELPERS)


def run(case: Case) -> int:
    """Execute a case and return r0 (all 64 bits)."""
    return program_for(case.program()).run(case.mem or None).retval


def main(argv: list[str] | None = None) -> int:
    """The runner-facing plugin: memory hex in argv[1], program hex on stdin."""
    args = list(sys.argv[1:] if argv is None else argv)
    mem = b""
    if args and not args[0].startswith("--"):
        mem = bytes.fromhex(args.pop(0))
    for opt in args:
        if opt in ("--elf",):
            print("pyebpf-conformance-plugin: --elf objects are not supported; "
                  "run the runner without --elf true")
            return 1
        if opt not in ("--interpret", "--debug"):
            print(f"pyebpf-conformance-plugin: unknown option {opt!r}")
            return 1
    try:
        code = bytes.fromhex(sys.stdin.read())
        r0 = program_for(code).run(mem or None).retval
    except (EbpfError, ValueError, ImportError) as exc:
        print(str(exc).splitlines()[0])
        return 1
    print(f"{r0:x}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
