"""Line and branch coverage of BPF C source, from the instructions programs executed.

While a :class:`Collector` is active (``with pyebpf.coverage.collect() as cov:``, or
``pytest --pyebpf-cov``), every :class:`pyebpf.Program` created with line info (those
of objects clang compiled with ``-g``) gets two counters per instruction slot in the
compiled core: how often it ran and how often it jumped.  Nothing is counted per
instruction in Python, and programs made while no collector is active have no
counters at all.

Instructions map to C lines through the objects' line info (``.BTF.ext``), whose
records each mark the first instruction of a stretch of code from one line.  A line's
count is how often the instruction of its record ran (with several records, the
highest), summed over the programs loaded with that code (one object loaded by many
tests adds up); a line clang gave no record (merged into another by the optimiser) is
not listed.  Every conditional jump is a branch with two directions, taken and not
taken, attributed to the line of the last record at or before it; the lcov "block" is
the jump's position among the file's jumps.

The data is written as lcov tracefiles (``genhtml``, codecov, IDE gutters) or Cobertura
XML (CI servers, codecov), always through a temporary file renamed when complete, and
read back from either format by :func:`read` (``pyebpf cov report FILE``).
"""
from __future__ import annotations

import array
import bisect
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

from . import isa
from .files import write_atomically

__all__ = ["Collector", "collect", "FileCoverage", "Coverage", "write", "read", "summary",
           "FORMATS"]

FORMATS = ("lcov", "cobertura")
_COND_FORMS = (isa.F_JCC_K, isa.F_JCC_X)


@dataclass
class FileCoverage:
    """Coverage of one C source file: ``lines`` maps a line to its execution count;
    ``branches`` maps a line to ``[(block, direction, count or None)]`` (direction 0
    taken, 1 not taken; None: the jump never ran)."""
    lines: dict[int, int] = field(default_factory=dict)
    branches: dict[int, list[tuple[int, int, int | None]]] = field(default_factory=dict)

    @property
    def lines_hit(self) -> int:
        return sum(1 for n in self.lines.values() if n)

    @property
    def branches_total(self) -> int:
        return sum(len(b) for b in self.branches.values())

    @property
    def branches_hit(self) -> int:
        return sum(1 for b in self.branches.values() for _, _, n in b if n)


Coverage = dict            # file name -> FileCoverage, in file name order


class _Entry:
    __slots__ = ("insns", "line_info", "counters")

    def __init__(self, insns, line_info, counters):
        self.insns, self.line_info, self.counters = insns, line_info, counters


_active: list["Collector"] = []     # collectors counting now; nested ones share counters


def _sink(program):
    if not program.line_info:
        return None
    entry = _Entry(program.insns, program.line_info, array.array("Q", bytes(16 * len(program))))
    for collector in _active:
        collector._entries.append(entry)
    return entry.counters


class Collector:
    """Counters of the programs created while it is active; :meth:`coverage` folds
    them into per-file line and branch counts.  Collectors may nest (pytest's own
    pytester runs do): a program created while several are active counts for each."""

    def __init__(self):
        self._entries: list[_Entry] = []

    def start(self) -> "Collector":
        from . import _core
        if self in _active:
            raise RuntimeError("this coverage collector is already active")
        _active.append(self)
        _core._set_coverage_sink(_sink)
        return self

    def stop(self) -> None:
        from . import _core
        if self in _active:
            _active.remove(self)
        if not _active:
            _core._set_coverage_sink(None)

    def coverage(self) -> Coverage:
        """Per-file counts of everything run so far (see the module)."""
        # one program's code loaded many times counts once, with its counters summed
        merged: dict[tuple, list[int]] = {}
        for e in self._entries:
            key = (e.insns, e.line_info)
            if key not in merged:
                merged[key] = [0] * len(e.counters)
            acc = merged[key]
            for k, v in enumerate(e.counters):
                acc[k] += v
        files: dict[str, FileCoverage] = {}
        jumps: dict[str, int] = {}
        for (insns, line_info), counts in merged.items():
            _fold(insns, line_info, counts, files, jumps)
        return {name: files[name] for name in sorted(files)}


def _fold(insns, line_info, counts, files, jumps) -> None:
    slots = isa.unpack_program(insns)
    n = len(slots)
    pcs = [li.pc for li in line_info]
    line_max: dict[tuple[str, int], int] = {}
    for li in line_info:
        if li.line and li.pc < n:
            where = (li.file_name, li.line)
            line_max[where] = max(line_max.get(where, 0), counts[li.pc])
    pc = 0
    while pc < n:
        op = isa.lookup(slots[pc])
        if op is not None and op.form in _COND_FORMS:
            k = bisect.bisect_right(pcs, pc) - 1
            li = line_info[k] if k >= 0 else None
            if li is not None and li.line:
                fc = files.setdefault(li.file_name, FileCoverage())
                block = jumps.get(li.file_name, 0)
                jumps[li.file_name] = block + 1
                ran, taken = counts[pc], counts[n + pc]
                fc.branches.setdefault(li.line, []).extend(
                    [(block, 0, taken if ran else None), (block, 1, ran - taken if ran else None)])
        pc += op.slots if op is not None else 1
    for (name, line), hits in line_max.items():
        fc = files.setdefault(name, FileCoverage())
        fc.lines[line] = fc.lines.get(line, 0) + hits
    for fc in files.values():
        fc.lines = dict(sorted(fc.lines.items()))
        fc.branches = dict(sorted(fc.branches.items()))


@contextmanager
def collect():
    """``with collect() as cov: ...`` — count what programs created inside run."""
    collector = Collector().start()
    try:
        yield collector
    finally:
        collector.stop()


# --- formats --------------------------------------------------------------------------

def _lcov(cov: Coverage) -> str:
    out = ["TN:"]
    for name, fc in cov.items():
        out.append(f"SF:{name}")
        for line, branches in fc.branches.items():
            for block, direction, count in branches:
                out.append(f"BRDA:{line},{block},{direction},{'-' if count is None else count}")
        out.append(f"BRF:{fc.branches_total}")
        out.append(f"BRH:{fc.branches_hit}")
        for line, hits in fc.lines.items():
            out.append(f"DA:{line},{hits}")
        out.append(f"LF:{len(fc.lines)}")
        out.append(f"LH:{fc.lines_hit}")
        out.append("end_of_record")
    return "\n".join(out) + "\n"


def _rate(hit: int, total: int) -> str:
    return f"{hit / total:.4f}" if total else "1"


def _cobertura(cov: Coverage) -> str:
    from . import __version__
    lines_total = sum(len(fc.lines) for fc in cov.values())
    lines_hit = sum(fc.lines_hit for fc in cov.values())
    br_total = sum(fc.branches_total for fc in cov.values())
    br_hit = sum(fc.branches_hit for fc in cov.values())
    root = ElementTree.Element("coverage", {
        "line-rate": _rate(lines_hit, lines_total), "branch-rate": _rate(br_hit, br_total),
        "lines-covered": str(lines_hit), "lines-valid": str(lines_total),
        "branches-covered": str(br_hit), "branches-valid": str(br_total),
        "complexity": "0", "version": f"pyebpf {__version__}",
        "timestamp": str(int(time.time() * 1000))})
    sources = ElementTree.SubElement(root, "sources")
    ElementTree.SubElement(sources, "source").text = "."
    packages = ElementTree.SubElement(root, "packages")
    package = ElementTree.SubElement(packages, "package", {
        "name": "bpf", "line-rate": _rate(lines_hit, lines_total),
        "branch-rate": _rate(br_hit, br_total), "complexity": "0"})
    classes = ElementTree.SubElement(package, "classes")
    for name, fc in cov.items():
        cls = ElementTree.SubElement(classes, "class", {
            "name": Path(name).name, "filename": name,
            "line-rate": _rate(fc.lines_hit, len(fc.lines)),
            "branch-rate": _rate(fc.branches_hit, fc.branches_total), "complexity": "0"})
        ElementTree.SubElement(cls, "methods")
        lines = ElementTree.SubElement(cls, "lines")
        for line, hits in fc.lines.items():
            attrs = {"number": str(line), "hits": str(hits), "branch": "false"}
            branches = fc.branches.get(line)
            if branches:
                hit = sum(1 for _, _, n in branches if n)
                attrs["branch"] = "true"
                attrs["condition-coverage"] = (f"{100 * hit // len(branches)}% "
                                               f"({hit}/{len(branches)})")
            ElementTree.SubElement(lines, "line", attrs)
    ElementTree.indent(root)
    return ('<?xml version="1.0" ?>\n'
            '<!DOCTYPE coverage SYSTEM "http://cobertura.sourceforge.net/xml/coverage-04.dtd">\n'
            + ElementTree.tostring(root, encoding="unicode") + "\n")


def write(cov: Coverage, fmt: str, path) -> None:
    """Write ``cov`` as ``fmt`` (``"lcov"`` or ``"cobertura"``) to ``path``, through a
    temporary file in the same directory renamed when complete."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown coverage format {fmt!r}; choose {' or '.join(FORMATS)}")
    text = _lcov(cov) if fmt == "lcov" else _cobertura(cov)
    path = Path(path)
    if path.exists() and not path.is_file():
        raise ValueError(f"{path}: not a regular file")
    write_atomically(path, text.encode())


def read(path) -> Coverage:
    """Coverage from an lcov tracefile or a Cobertura XML file (by its first bytes).
    Malformed content raises ValueError naming the file and line."""
    path = Path(path)
    text = path.read_text()
    if text.lstrip().startswith("<"):
        return _read_cobertura(path, text)
    return _read_lcov(path, text)


def _read_lcov(path: Path, text: str) -> Coverage:
    cov: Coverage = {}
    fc = None
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        tag, _, rest = line.partition(":")
        try:
            if tag == "SF":
                fc = cov.setdefault(rest, FileCoverage())
            elif tag == "end_of_record":
                fc = None
            elif tag == "DA" and fc is not None:
                no, hits = rest.split(",")[:2]
                fc.lines[int(no)] = fc.lines.get(int(no), 0) + int(hits)
            elif tag == "BRDA" and fc is not None:
                no, block, direction, count = rest.split(",")
                fc.branches.setdefault(int(no), []).append(
                    (int(block), int(direction), None if count == "-" else int(count)))
            elif tag in ("DA", "BRDA"):
                raise ValueError(f"{tag} outside a file record (no SF: before it)")
        except ValueError as exc:
            raise ValueError(f"{path}:{n}: not an lcov record: {raw.strip()!r} ({exc})") from None
    return cov


def _read_cobertura(path: Path, text: str) -> Coverage:
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError as exc:
        raise ValueError(f"{path}: not XML: {exc}") from None
    if root.tag != "coverage":
        raise ValueError(f"{path}: not a Cobertura report (root element <{root.tag}>)")
    cov: Coverage = {}
    block = 0
    for cls in root.iter("class"):
        fc = cov.setdefault(cls.get("filename", "?"), FileCoverage())
        for el in cls.iter("line"):
            try:
                no, hits = int(el.get("number")), int(el.get("hits"))
            except (TypeError, ValueError):
                raise ValueError(f"{path}: <line> without a numeric number/hits: "
                                 f"{ElementTree.tostring(el, encoding='unicode').strip()}") from None
            fc.lines[no] = fc.lines.get(no, 0) + hits
            cond = el.get("condition-coverage")
            if el.get("branch") == "true" and cond:
                hit, _, total = cond.rpartition("(")[2].rstrip(")").partition("/")
                fc.branches[no] = [(block + k // 2, k % 2, 1 if k < int(hit) else 0)
                                   for k in range(int(total))]
                block += (int(total) + 1) // 2
    return cov


def summary(cov: Coverage, relative_to=None) -> str:
    """A table: per file, lines hit/total and branches hit/total with percentages
    (file names under ``relative_to``, default the working directory, shown relative)."""
    base = Path(relative_to or os.getcwd()).resolve()
    rows = [("file", "lines", "", "branches", "")]
    for name, fc in cov.items():
        shown = Path(name)
        if shown.is_absolute() and shown.is_relative_to(base):
            shown = shown.relative_to(base)
        rows.append((str(shown), f"{fc.lines_hit}/{len(fc.lines)}", _pct(fc.lines_hit, len(fc.lines)),
                     f"{fc.branches_hit}/{fc.branches_total}",
                     _pct(fc.branches_hit, fc.branches_total)))
    lt = sum(len(fc.lines) for fc in cov.values())
    lh = sum(fc.lines_hit for fc in cov.values())
    bt = sum(fc.branches_total for fc in cov.values())
    bh = sum(fc.branches_hit for fc in cov.values())
    rows.append(("TOTAL", f"{lh}/{lt}", _pct(lh, lt), f"{bh}/{bt}", _pct(bh, bt)))
    widths = [max(len(r[k]) for r in rows) for k in range(5)]
    return "\n".join(f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}} {r[2]:>{widths[2]}}  "
                     f"{r[3]:>{widths[3]}} {r[4]:>{widths[4]}}".rstrip() for r in rows)


def _pct(hit: int, total: int) -> str:
    return f"{100 * hit / total:.0f}%" if total else "-"
