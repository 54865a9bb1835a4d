"""``__kconfig`` externs: the values libbpf gives them and the ``.kconfig`` map it puts
them in (``bpf_object__collect_externs``, ``bpf_object__resolve_externs``).

An extern's BTF type decides how its value is stored: ``bool`` (y 1, n 0), ``enum
libbpf_tristate`` (n 0, y 1, m 2), ``char`` (the letter y/n/m, or a number), 1..8-byte
integers (numbers), ``char[N]`` (a quoted string, cut to N-1 bytes and NUL-terminated).
Externs are laid out by alignment (largest first), then size (smallest first), then
name, each at its alignment.

Values: ``LINUX_KERNEL_VERSION`` is the modelled kernel's release
(:data:`pyebpf.isa.KERNEL_RELEASE`) as ``KERNEL_VERSION(a, b, min(c, 255))``;
``LINUX_HAS_BPF_COOKIE`` and ``LINUX_HAS_SYSCALL_WRAPPER`` are y (both hold for the
kernels pyebpf models); ``CONFIG_*`` come from the config given (a mapping of names to
values, the text of a ``.config``, or a path to one, gzip-compressed or not), else from
the modelled kernel's config, which the package ships (:data:`SHIPPED_CONFIG`).  An
extern without a value is zero when declared ``__weak``, and an error otherwise.
"""
from __future__ import annotations

import gzip
import os
import pathlib
import re

from . import isa
from .btf import INT_BOOL, INT_SIGNED, Kind

__all__ = ["layout", "read_config", "kernel_version", "SHIPPED_CONFIG"]

#: The modelled kernel's config, as its ``/proc/config.gz`` gave it
#: (``tools/gen_target_btf.py`` copies it beside the target BTF).
SHIPPED_CONFIG = os.path.join(os.path.dirname(__file__), "target",
                              f"config-{isa.KERNEL_RELEASE}.gz")

TRI_NO, TRI_YES, TRI_MODULE = 0, 1, 2
_LINUX_YES = frozenset({"LINUX_HAS_BPF_COOKIE", "LINUX_HAS_SYSCALL_WRAPPER"})
_LINE = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$")


def kernel_version(release: str | None = None) -> int:
    """``KERNEL_VERSION(a, b, c)`` of a release string (default: the modelled kernel's),
    the patch level capped at 255 as the kernel caps it."""
    release = release or isa.KERNEL_RELEASE
    m = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", release)
    if m is None:
        raise ValueError(f"kernel release {release!r} is not a.b.c")
    a, b, c = int(m[1]), int(m[2]), int(m[3] or 0)
    return a << 16 | b << 8 | min(c, 255)


def read_config(source=None) -> dict[str, str]:
    """``CONFIG_*`` name -> value text (``y``, ``"text"``, ``0x10``...) from a mapping,
    the text of a config, a path, or (None) the modelled kernel's config."""
    if isinstance(source, dict):
        out = {}
        for name, value in source.items():
            if isinstance(value, bool):
                value = "y" if value else "n"
            elif isinstance(value, str) and value not in ("y", "n", "m") and \
                    not value.startswith('"'):
                value = '"' + value + '"'
            out[name] = str(value)
        return out
    if source is None:
        source = pathlib.Path(SHIPPED_CONFIG)
    if isinstance(source, os.PathLike):
        try:
            with open(source, "rb") as f:
                raw = f.read()
        except OSError as exc:
            raise ValueError(f"cannot read the kernel config {os.fspath(source)}: "
                             f"{exc.strerror}") from None
        source = (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode()
    out = {}
    for line in source.splitlines():
        m = _LINE.match(line.strip())
        if m:
            out[m[1]] = m[2]
    return out


def _kind(t) -> tuple[str, bool]:
    """find_kcfg_type: ("bool" | "tristate" | "char" | "int" | "chars", signed)."""
    t = t.resolve()
    if t.kind == Kind.INT:
        if t.encoding & INT_BOOL:
            return ("bool", False) if t.size == 1 else ("", False)
        if t.size == 1:
            return "char", bool(t.encoding & INT_SIGNED)
        return ("int", bool(t.encoding & INT_SIGNED)) if t.size in (2, 4, 8) else ("", False)
    if t.kind in (Kind.ENUM, Kind.ENUM64) and t.name == "libbpf_tristate":
        return "tristate", False
    if t.kind == Kind.ARRAY and t.nelems and _kind(t.target)[0] == "char":
        return "chars", False
    return "", False


def _align(t) -> int:
    t = t.resolve()
    if t.kind == Kind.ARRAY:
        return _align(t.target)
    return t.byte_size


def _value(name: str, kind: str, signed: bool, size: int, text: str) -> bytes:
    """The bytes of ``text`` (a config value) for an extern of ``kind``."""
    if text in ("y", "n", "m"):
        if kind == "bool" and text != "m":
            return bytes([text == "y"])
        if kind == "tristate":
            return {"n": TRI_NO, "y": TRI_YES, "m": TRI_MODULE}[text].to_bytes(size, "little")
        if kind == "char":
            return text.encode()
        raise ValueError(f"extern (kcfg) {name!r}: value {text!r} for a {kind or 'non-'}"
                         f"{'' if kind else 'tristate'} type")
    if text.startswith('"'):
        if kind != "chars" or len(text) < 2 or not text.endswith('"'):
            raise ValueError(f"extern (kcfg) {name!r}: string value {text} for a "
                             f"{kind} type")
        return text[1:-1].encode()[:size - 1].ljust(size, b"\0")
    try:
        number = int(text, 0)
    except ValueError:
        raise ValueError(f"extern (kcfg) {name!r}: value {text!r} is neither y/n/m, a "
                         f"quoted string nor a number") from None
    if kind not in ("int", "char"):
        raise ValueError(f"extern (kcfg) {name!r}: number {text} for a {kind} type")
    bits = size * 8
    lo, hi = (-(1 << bits - 1), (1 << bits - 1) - 1) if signed else (0, (1 << bits) - 1)
    if not lo <= number <= hi:
        raise ValueError(f"extern (kcfg) {name!r}: value {number} does not fit in "
                         f"{size} {'signed' if signed else 'unsigned'} bytes")
    return (number & ((1 << bits) - 1)).to_bytes(size, "little")


def layout(externs: dict, config=None) -> tuple[int, dict[str, int], bytes]:
    """(size, name -> offset, bytes) of the ``.kconfig`` map for ``externs`` (name ->
    (BTF type, weak)); raises ValueError naming the extern."""
    rows = []
    for name, (t, weak) in externs.items():
        kind, signed = _kind(t)
        if not kind:
            raise ValueError(f"extern (kcfg) {name!r}: type {t.describe()} is unsupported")
        rows.append((-_align(t), t.byte_size, name, kind, signed, weak))
    rows.sort()
    offsets, off = {}, 0
    for neg_align, size, name, *_ in rows:
        off = (off + -neg_align - 1) // -neg_align * -neg_align
        offsets[name] = off
        off += size
    data = bytearray(off)
    values = None
    for _a, size, name, kind, signed, weak in rows:
        if name == "LINUX_KERNEL_VERSION":
            text = str(kernel_version())
        elif name in _LINUX_YES:
            text = "y"
        elif name.startswith("CONFIG_"):
            if values is None:
                values = read_config(config)
            text = values.get(name)
        elif name.startswith("LINUX_") and weak:
            text = None
        else:
            raise ValueError(f"extern (kcfg) {name!r}: unrecognized: libbpf gives values "
                             f"to CONFIG_* and LINUX_* externs only")
        if text is None:
            if not weak:
                raise ValueError(f"extern (kcfg) {name!r}: no value in the kernel config "
                                 f"(declare it __weak to read 0, or give kconfig=)")
            continue
        data[offsets[name]:offsets[name] + size] = _value(name, kind, signed, size, text)
    return off, offsets, bytes(data)
