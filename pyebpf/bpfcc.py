"""Compile BPF C with clang, cached by what the output depends on.

``compile(source, cflags=(), cache_dir=...)`` runs ``clang -O2 -g -target bpf -c`` with
the host's multiarch include directory (``/usr/include/<triplet>``, where
``<asm/types.h>`` lives on Debian and Ubuntu) and returns the object's path in the cache.
The cache key covers clang's identity, the flags, the source's path and bytes, and the
bytes of every header it included (clang lists them with ``-MD``): changing any of them
compiles again.  Objects are written to a temporary name and renamed.

``find_clang()`` picks ``$PYEBPF_CLANG``, else ``clang``, else the newest ``clang-N`` on
PATH; None when there is none.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

from .files import write_atomically

__all__ = ["find_clang", "clang_version", "include_flags", "compile", "default_cache_dir",
           "CompileError"]


class CompileError(Exception):
    """clang refused the source; the message holds clang's diagnostics."""


def find_clang() -> str | None:
    explicit = os.environ.get("PYEBPF_CLANG")
    if explicit:
        return shutil.which(explicit)
    found = shutil.which("clang")
    if found:
        return found
    for n in range(30, 9, -1):
        found = shutil.which(f"clang-{n}")
        if found:
            return found
    return None


@functools.lru_cache(maxsize=None)
def clang_version(clang: str) -> str:
    """clang's first ``--version`` line (``Debian clang version 19.1.7 (3)``)."""
    out = subprocess.run([clang, "--version"], capture_output=True, text=True)
    return out.stdout.splitlines()[0].strip() if out.stdout else "unknown version"


_TRIPLETS = {"x86_64": "x86_64-linux-gnu", "aarch64": "aarch64-linux-gnu",
             "arm64": "aarch64-linux-gnu", "armv7l": "arm-linux-gnueabihf",
             "ppc64le": "powerpc64le-linux-gnu", "s390x": "s390x-linux-gnu",
             "riscv64": "riscv64-linux-gnu", "i686": "i386-linux-gnu"}


@functools.lru_cache(maxsize=None)
def include_flags() -> tuple[str, ...]:
    """``-I/usr/include/<multiarch>`` when that directory exists (``gcc
    -print-multiarch`` if gcc is there, else the machine's usual triplet)."""
    triplet = ""
    if shutil.which("gcc"):
        triplet = subprocess.run(["gcc", "-print-multiarch"], capture_output=True,
                                 text=True).stdout.strip()
    triplet = triplet or _TRIPLETS.get(platform.machine(), "")
    path = Path("/usr/include") / triplet
    return (f"-I{path}",) if triplet and path.is_dir() else ()


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pyebpf" / "objects"


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(len(p).to_bytes(8, "little"))
        h.update(p)
    return h.hexdigest()[:32]


def _file_digest(path: str) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def _headers(depfile: str, source: Path) -> list[str]:
    """The files a make-style dependency file lists, the source itself left out."""
    text = Path(depfile).read_text().replace("\\\n", " ")
    _, _, deps = text.partition(": ")
    out = []
    for dep in deps.split():
        if Path(dep).resolve() != source:
            out.append(str(Path(dep).resolve()))
    return out


def compile(source, cflags=(), *, clang: str | None = None, cache_dir=None) -> Path:
    """The object clang makes of ``source`` (a .c path), from the cache when nothing it
    depends on changed.  Raises :class:`CompileError` with clang's messages, or
    FileNotFoundError when there is no clang or no source."""
    source = Path(source).resolve()
    if not source.is_file():
        raise FileNotFoundError(f"{source}: no such C source file")
    clang = clang or find_clang()
    if clang is None:
        raise FileNotFoundError("clang not found (install clang, or set PYEBPF_CLANG)")
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    flags = ["-O2", "-g", "-target", "bpf", *include_flags(), *cflags]
    key = _digest(clang_version(clang).encode(), os.path.realpath(clang).encode(),
                  "\0".join(flags).encode(), str(source).encode(), source.read_bytes())
    manifest, obj = cache / f"{key}.json", cache / f"{key}.o"
    if manifest.is_file() and obj.is_file():
        try:
            recorded = json.loads(manifest.read_text())
        except ValueError:
            recorded = None
        if isinstance(recorded, dict) and all(_file_digest(h) == d for h, d in recorded.items()):
            return obj
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        out, dep = os.path.join(tmp, "out.o"), os.path.join(tmp, "out.d")
        # the object names its source relative to its folder: the same bytes wherever
        # the project lives (its BTF goes to the kernel with every load)
        done = subprocess.run([clang, *flags, f"-ffile-prefix-map={source.parent}=.", "-MD",
                               "-MF", dep, "-c", str(source), "-o", out],
                              capture_output=True, text=True)
        if done.returncode:
            raise CompileError(f"{source}: clang failed:\n{done.stderr.rstrip()}")
        headers = {h: _file_digest(h) for h in _headers(dep, source)}
        write_atomically(obj, Path(out).read_bytes())
        write_atomically(manifest, json.dumps(headers, indent=0).encode())
    return obj
