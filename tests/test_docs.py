"""Every fenced block of the docs runs, so the docs cannot rot.

A document's blocks run in order in one empty directory:

- ```` ```LANG file=NAME ```` is written to NAME (C sources, test files, ...);
- ```` ```python ```` runs in-process, the document's blocks sharing one namespace;
- ```` ```sh ```` runs in bash (``-e -o pipefail``) and must exit 0, or N with
  ``exit=N``; ``pytest``, ``tcsim``, ``pyebpf`` and ``clang`` are the ones of this
  checkout's pyebpf (and the pytest plugin is on);
- ```` ```text output ```` must match the previous sh block's output: each of its lines
  (``*`` matches anything) matches a line of the output, in order.

Any other block fails the test: nothing in the docs goes unrun.  The README's pytest
section runs the same way.  The reference's tables of supported helpers and map types
are checked against what pyebpf implements.
"""
from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys

import pytest

from conftest import ROOT, child_python
from plugin_project import plugin_args

# Documents whose shell blocks run pytest on tests that ask the running kernel (a child
# process gets no recorded answers): they follow the suite's skip rule (live_kernel).
ASKS_THE_KERNEL = {"howto-property-tests.md"}
DOCS = sorted((ROOT / "docs").glob("*.md"))
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.M | re.S)
README_SECTION = "## Testing with pytest"

pytestmark = pytest.mark.skipif(shutil.which("clang-19") is None and shutil.which("clang") is None,
                                reason="clang not installed (apt-get install clang-19)")


def blocks(text: str):
    """(line number, language, options, body) of each fenced block."""
    for m in FENCE.finditer(text):
        info = m.group(1).split()
        lang, opts = (info[0] if info else ""), {}
        for word in info[1:]:
            key, _, value = word.partition("=")
            opts[key] = value or True
        yield text.count("\n", 0, m.start()) + 1, lang, opts, m.group(2)


def _shims(bin_dir, env) -> None:
    """pytest/tcsim/pyebpf as this checkout's, and clang when only clang-N exists."""
    from pyebpf import bpfcc
    py = sys.executable
    scripts = {
        "pytest": f'exec "{py}" -m pytest {" ".join(plugin_args())} "$@"',
        "tcsim": f'exec "{py}" -c "import sys; from pyebpf.pcap.tcsim import cli; '
                 f'cli()" "$@"',
        "pyebpf": f'exec "{py}" -m pyebpf "$@"',
        "python": f'exec "{py}" "$@"',
    }
    if shutil.which("clang") is None:
        scripts["clang"] = f'exec "{bpfcc.find_clang()}" "$@"'
    for name, body in scripts.items():
        path = bin_dir / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"


def _match(expected: str, output: str, where: str) -> None:
    lines = output.splitlines()
    k = 0
    for want in (w.rstrip() for w in expected.splitlines() if w.strip()):
        pattern = re.compile(".*".join(map(re.escape, want.split("*"))) + r"\Z")
        while k < len(lines) and not pattern.match(lines[k].rstrip()):
            k += 1
        assert k < len(lines), f"{where}: no output line matches {want!r} (in order):\n{output}"
        k += 1


def run_document(name: str, text: str, workdir, monkeypatch) -> None:
    env, _ = child_python(XDG_CACHE_HOME=str(workdir / ".cache"))
    bin_dir = workdir / ".bin"
    bin_dir.mkdir()
    _shims(bin_dir, env)
    monkeypatch.chdir(workdir)
    namespace = {"__name__": f"doc_{name}"}
    output = None
    for line, lang, opts, body in blocks(text):
        where = f"{name}:{line}"
        if "file" in opts:
            (workdir / opts["file"]).write_text(body)
        elif lang == "python":
            exec(compile(body, where, "exec"), namespace)
        elif lang == "sh":
            done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", body], cwd=workdir,
                                  env=env, capture_output=True, text=True, timeout=600)
            output = done.stdout + done.stderr
            want = int(opts.get("exit", 0))
            assert done.returncode == want, (f"{where}: exit {done.returncode}, want {want}:"
                                             f"\n{output}")
        elif lang == "text" and "output" in opts:
            assert output is not None, f"{where}: an output block with no sh block before it"
            _match(body, output, where)
        else:
            pytest.fail(f"{where}: a ```{lang} block that is neither a file, python, sh nor "
                        "text output: nothing in the docs goes unrun")


@pytest.mark.parametrize("doc", [d for d in DOCS if d.name not in ASKS_THE_KERNEL],
                         ids=lambda p: p.name)
def test_every_block_of_the_document_runs(doc, tmp_path, monkeypatch):
    run_document(doc.name, doc.read_text(), tmp_path, monkeypatch)


@pytest.mark.parametrize("doc", [d for d in DOCS if d.name in ASKS_THE_KERNEL],
                         ids=lambda p: p.name)
def test_every_block_of_a_document_asking_the_kernel_runs(doc, tmp_path, monkeypatch,
                                                           live_kernel):
    run_document(doc.name, doc.read_text(), tmp_path, monkeypatch)


def test_the_readmes_pytest_section_runs(tmp_path, monkeypatch):
    text = (ROOT / "README.md").read_text()
    start = text.index(README_SECTION)
    end = text.find("\n## ", start + 1)
    run_document("README.md", text[start:end if end >= 0 else None], tmp_path, monkeypatch)


def _section(text: str, name: str) -> str:
    m = re.search(rf"<!-- {name}:begin -->\n(.*?)<!-- {name}:end -->", text, re.S)
    assert m, f"reference.md has no {name} section"
    return m.group(1)


def implemented_helpers() -> str:
    """The reference's helper table, from what the engine accepts per program type."""
    import pyebpf
    from pyebpf import isa
    from pyebpf.asm import assemble
    rows = ["| helper | socket_filter | sched_cls | sched_act |", "|---|---|---|---|"]
    kinds = ("socket_filter", "sched_cls", "sched_act")
    for hid in range(1, len(isa.HELPER_NAMES)):
        have = []
        for kind in kinds:
            try:
                pyebpf.Program(assemble(f"call {hid}\nexit"), kind, verify=False)
                have.append("yes")
            except pyebpf.errors.EbpfError:
                have.append("")
        if any(have):
            rows.append(f"| `bpf_{isa.HELPER_NAMES[hid]}` ({hid}) | " + " | ".join(have) + " |")
    return "\n".join(rows) + "\n"


def implemented_maps() -> str:
    import pyebpf
    from pyebpf import isa
    names = []
    for t in isa.MapType:
        name = t.name[len("BPF_MAP_TYPE_"):].lower()
        try:
            pyebpf.Map.create(name, 0, 0, 0)
        except pyebpf.errors.EbpfError as exc:
            if "not supported" in str(exc):
                continue
        names.append(f"`{name}`")
    return ", ".join(names) + "\n"


@pytest.mark.parametrize("name,make", [("helpers", implemented_helpers),
                                       ("maps", implemented_maps)])
def test_the_references_tables_are_what_pyebpf_implements(name, make):
    want = make()
    assert _section((ROOT / "docs" / "reference.md").read_text(), name) == want, (
        f"docs/reference.md's {name} section should read:\n{want}")
