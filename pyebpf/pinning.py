"""Pinning: BPF_OBJ_PIN and BPF_OBJ_GET over pin files (docs/pinning.md).

A directory, :func:`pin_root`, plays the role of a bpffs mount.  A pin file holds a
versioned header, the object's definition and (maps) its contents.  A pinned map is
shared state: every operation on it from Python, and every :meth:`Program.run` of a
program that can reach it, is one transaction on its pin file — an exclusive
``flock`` on the file, a reload when another process wrote since, the work, and a
write-back when the contents changed (to a temporary file, then ``os.replace``, so a
killed writer leaves the previous state).  Files are never modified in place, so
readers need no lock.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import struct
import tempfile
import weakref
from pathlib import Path

from . import _core, isa
from .errors import MapError, PinError

MAGIC = b"PYEBPFPN"
VERSION = 2                                 # written; 1 and 2 are read
KIND_MAP, KIND_PROG = 1, 2
_KIND_NAMES = {KIND_MAP: "map", KIND_PROG: "program"}
HEADER = struct.Struct("<8sHH4x16sQQ16s")  # magic, version, kind, pin id, generation,
#                                            body length, blake2b-128 of the body
MAP_DEF = struct.Struct("<IIIIIIH")         # type, key, value, max_entries, flags, ncpu,
#                                            name length
PROG_DEF = struct.Struct("<iHHIQI")         # type (-1 raw), profile length, map count,
#                                            insn bytes, budget, tail_call_limit
PROG_MAP = struct.Struct("<iH")             # fd the insns use, pin path length
SLOT_PATH = struct.Struct("<H")             # after a slot's key: its object's pin path length
_READ_ONLY = frozenset({"lookup", "next_key", "keys", "sync"})
_T = isa.MapType
_PROG_ARRAY = _T.BPF_MAP_TYPE_PROG_ARRAY
_OF_MAPS = (_T.BPF_MAP_TYPE_ARRAY_OF_MAPS, _T.BPF_MAP_TYPE_HASH_OF_MAPS)
_V1_MAPS = (_T.BPF_MAP_TYPE_HASH, _T.BPF_MAP_TYPE_ARRAY, _T.BPF_MAP_TYPE_PERCPU_HASH,
            _T.BPF_MAP_TYPE_PERCPU_ARRAY, _PROG_ARRAY)

_live = weakref.WeakValueDictionary()      # real pin path -> the Map linked to it
_map_pins = weakref.WeakKeyDictionary()    # Map -> its real pin path (also mid-transaction)
_prog_pins = weakref.WeakKeyDictionary()   # Program -> its real pin path


def pin_root() -> Path:
    """The directory that plays /sys/fs/bpf: $PYEBPF_PIN_ROOT, else a per-user one."""
    env = os.environ.get("PYEBPF_PIN_ROOT")
    if env:
        return Path(env)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return Path(runtime, "pyebpf") if runtime else \
        Path(tempfile.gettempdir(), f"pyebpf-{os.getuid()}")


def resolve(path) -> str:
    """The absolute pin path: relative paths are under :func:`pin_root` (created on
    first use); an absolute one outside it is refused with EPERM, as a path outside a
    bpffs is."""
    root = pin_root()
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    root = os.path.realpath(root)
    full = os.path.normpath(os.path.join(root, os.fspath(path)))
    if full != root and \
            os.path.commonpath([root, os.path.realpath(os.path.dirname(full))]) != root:
        raise PinError(errno.EPERM, f"pin path {full} is outside the pin root {root}")
    return full


def _rel(path: str) -> bytes:
    return os.path.relpath(path, os.path.realpath(pin_root())).encode()


def _oserror(exc: OSError, path: str, what: str) -> PinError:
    return PinError(exc.errno, f"{what} {path}: {os.strerror(exc.errno)}")


# --- the file -------------------------------------------------------------------------------

def _write(path: str, kind: int, pin_id: bytes, generation: int, body: bytes,
           create: bool = False) -> bytes:
    """Write a pin file whole (create: fail with EEXIST if ``path`` exists); returns the
    body's digest.  A temporary file renamed into place, so readers see old or new."""
    digest = hashlib.blake2b(body, digest_size=16).digest()
    header = HEADER.pack(MAGIC, VERSION, kind, pin_id, generation, len(body), digest)
    try:
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path),
                                   prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    except OSError as exc:
        raise _oserror(exc, path, "cannot pin") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(header)
            f.write(body)
        if create:
            os.link(tmp, path)
        else:
            os.replace(tmp, path)
    except OSError as exc:
        raise _oserror(exc, path, "cannot pin" if create else "cannot write") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return digest


def _header(path: str, raw: bytes) -> tuple:
    if not raw.startswith(MAGIC):
        raise PinError(errno.EACCES, f"{path} is not a pyebpf pin file (no {MAGIC.decode()} "
                                     "header)")
    if len(raw) < HEADER.size:
        raise PinError(errno.EINVAL, f"{path}: pin file truncated inside its header "
                                     f"({len(raw)} of {HEADER.size} bytes)")
    _, version, kind, pin_id, generation, length, digest = HEADER.unpack_from(raw)
    if not 1 <= version <= VERSION:
        raise PinError(errno.EINVAL, f"{path}: pin file format version {version}, this "
                                     f"pyebpf reads versions 1 to {VERSION}")
    if kind not in _KIND_NAMES:
        raise PinError(errno.EINVAL, f"{path}: pin file of unknown kind {kind}")
    return version, kind, pin_id, generation, length, digest


def _read(f, path: str, full: bool = True) -> tuple:
    """(kind, pin id, generation, body or None) of an open pin file."""
    head = f.read(HEADER.size)
    version, kind, pin_id, generation, length, digest = _header(path, head)
    if not full:
        return kind, pin_id, generation, None
    body = f.read(length + 1)
    if len(body) != length:
        raise PinError(errno.EINVAL, f"{path}: pin file {'truncated' if len(body) < length else 'too long'}"
                                     f" ({len(body)} body bytes, the header says {length})")
    if hashlib.blake2b(body, digest_size=16).digest() != digest:
        raise PinError(errno.EINVAL, f"{path}: pin file corrupt (its contents do not match "
                                     "their checksum)")
    if version == 1 and kind == KIND_MAP and body[:4] and \
            int.from_bytes(body[:4], "little") not in _V1_MAPS:
        raise PinError(errno.EINVAL, f"{path}: a version 1 pin file cannot hold a map of "
                                     f"type {int.from_bytes(body[:4], 'little')}")
    return kind, pin_id, generation, body


def _open(path: str, what: str):
    try:
        f = open(path, "rb")
        if os.path.isdir(path):
            f.close()
            raise IsADirectoryError(errno.EISDIR, path)
        return f
    except IsADirectoryError:
        raise PinError(errno.EACCES, f"{path} is a directory, not a pinned object") from None
    except OSError as exc:
        raise _oserror(exc, path, what) from None


def load(path) -> tuple[int, bytes, int, bytes]:
    """(kind, pin id, generation, body) of the pin file at ``path``."""
    full = resolve(path)
    with _open(full, "no pinned object at") as f:
        return _read(f, full)


def _locked(path: str):
    """The pin file at ``path`` opened and exclusively locked, or None if it is gone.
    The lock is on the file's inode: after waiting, make sure it is still the one the
    path names (a writer may have replaced it)."""
    while True:
        try:
            f = open(path, "rb")
        except FileNotFoundError:
            return None
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            current = os.stat(path)
        except FileNotFoundError:
            current = None
        st = os.fstat(f.fileno())
        if current is not None and (current.st_ino, current.st_dev) == (st.st_ino, st.st_dev):
            return f
        f.close()


# --- maps -----------------------------------------------------------------------------------

class Link:
    """A pinned map's tie to its pin file: the path, the pin's identity, and the
    generation and digest of the contents this process last read or wrote."""

    def __init__(self, path: str, pin_id: bytes, generation: int, digest: bytes):
        self.path, self.pin_id, self.generation, self.digest = path, pin_id, generation, digest

    def apply(self, fn, m, *args):
        """``fn(m, *args)`` as one transaction (read-only ones only refresh)."""
        if fn.__name__ in _READ_ONLY:
            _refresh_unlocked(m)
            link, m._pin = m._pin, None
            try:
                return fn(m, *args)
            finally:
                m._pin = link
        with transaction(lambda: [m]):
            return fn(m, *args)


def _map_def(m) -> bytes:
    name = m.name.encode()
    return MAP_DEF.pack(m.type, m.key_size, m.value_size, m.max_entries, m.flags, m.ncpu,
                        len(name)) + name


def _map_body(m) -> bytes:
    """The definition (maps of maps: then their inner map template's), then the
    contents: Map._dump's bytes, or per slot its key and its object's pin path."""
    head = _map_def(m) + (_map_def(m.inner_map) if m.type in _OF_MAPS else b"")
    contents = m._dump()
    if isinstance(contents, bytes):
        return head + contents
    slots = []
    for key, obj in contents:
        path = (_prog_pins if m.type == _PROG_ARRAY else _map_pins).get(obj)
        if path is None:
            owner = "its program array" if m.type == _PROG_ARRAY else "its outer map"
            raise PinError(errno.EINVAL, f"map {m.name or m.fd}: {_slot_name(m, key)} holds "
                                         f"{obj!r}, which is not pinned: pin it before {owner}")
        rel = _rel(path)
        slots.append(key + SLOT_PATH.pack(len(rel)) + rel)
    return head + b"".join(slots)


def _slot_name(m, key: bytes) -> str:
    return f"key {key.hex()}" if m.type == _T.BPF_MAP_TYPE_HASH_OF_MAPS else \
        f"slot {int.from_bytes(key, 'little')}"


def _parse_def(path: str, body: bytes, at: int, what: str) -> tuple:
    try:
        definition = MAP_DEF.unpack_from(body, at)
        end = at + MAP_DEF.size + definition[-1]
        if end > len(body):
            raise ValueError("its name runs past the end")
        name = body[at + MAP_DEF.size:end].decode()
    except (struct.error, UnicodeDecodeError, ValueError) as exc:
        raise PinError(errno.EINVAL, f"{path}: {what} unreadable ({exc})") from None
    return (*definition[:-1], name), end


def _parse_map(path: str, body: bytes) -> tuple:
    """(definition, inner map template definition or None, contents)"""
    definition, at = _parse_def(path, body, 0, "map definition")
    template = None
    if definition[0] in _OF_MAPS:
        template, at = _parse_def(path, body, at, "inner map template definition")
    return definition, template, body[at:]


def _set_contents(m, path: str, contents: bytes) -> None:
    if m.type != _PROG_ARRAY and m.type not in _OF_MAPS:
        items = contents
    else:
        items, at = [], 0
        while at < len(contents):
            key = contents[at:at + m.key_size]
            try:
                (length,) = SLOT_PATH.unpack_from(contents, at + m.key_size)
                at += m.key_size + SLOT_PATH.size + length
                if at > len(contents):
                    raise ValueError("its pin path runs past the end")
                rel = contents[at - length:at].decode()
            except (struct.error, UnicodeDecodeError, ValueError) as exc:
                raise PinError(errno.EINVAL, f"{path}: slot list unreadable at byte {at} "
                                             f"({exc})") from None
            try:
                items.append((key, get_program(rel) if m.type == _PROG_ARRAY else get_map(rel)))
            except PinError as exc:
                raise PinError(exc.errno, f"{path}: {_slot_name(m, key)}: {exc}") from None
    try:
        m._load(items)
    except ValueError as exc:
        raise PinError(errno.EINVAL, f"{path}: {exc}") from None


def _attach(m, path: str, pin_id: bytes, generation: int, digest: bytes) -> None:
    m._pin = Link(path, pin_id, generation, digest)
    _live[path] = m
    _map_pins[m] = path
    _core._pin_hook = _run_transaction


def _detach(m) -> None:
    """The pin was removed (or replaced): the map lives on, private to this process."""
    if _live.get(m._pin.path) is m:
        del _live[m._pin.path]
    _map_pins.pop(m, None)
    m._pin = None


def pin_map(m, path) -> None:
    """BPF_OBJ_PIN of a map: EEXIST if ``path`` exists, ENOENT if its directory does not.
    A map pinned already gets a second name: a symbolic link to its pin file."""
    full = resolve(path)
    if m._pin is not None:
        try:
            os.symlink(os.path.relpath(m._pin.path, os.path.dirname(full)), full)
        except OSError as exc:
            raise _oserror(exc, full, "cannot pin") from None
        return
    pin_id = os.urandom(16)
    digest = _write(full, KIND_MAP, pin_id, 0, _map_body(m), create=True)
    _attach(m, os.path.realpath(full), pin_id, 0, digest)


def get_map(path):
    """BPF_OBJ_GET of a map: the Map linked to the pin (one per pin in a process)."""
    full = os.path.realpath(resolve(path))
    with _open(full, "no pinned map at") as f:
        kind, pin_id, generation, body = _read(f, full)
    if kind != KIND_MAP:
        raise PinError(errno.EINVAL, f"{full} holds a pinned {_KIND_NAMES[kind]}, not a map")
    m = _live.get(full)
    if m is not None and (m._pin is None or m._pin.pin_id == pin_id):
        m._reopen()     # its handle may have been closed since
        return m        # the same object (detached while a transaction or load uses it)
    definition, template, contents = _parse_map(full, body)
    if template is not None:
        template = _create(full, template, "inner map template", None)
    m = _create(full, definition, "map definition", template)
    # linked first: a program in its own program array gets this map back
    _attach(m, full, pin_id, generation, hashlib.blake2b(body, digest_size=16).digest())
    link, m._pin = m._pin, None
    try:
        _set_contents(m, full, contents)
    except BaseException:
        m._pin = link
        _detach(m)
        raise
    m._pin = link
    return m


def _create(path: str, definition: tuple, what: str, template):
    kind, key, value, entries, flags, ncpu, name = definition
    try:
        return _core.Map.create(kind, key, value, entries, flags, name=name, ncpu=ncpu,
                                inner_map=template)
    except MapError as exc:
        raise PinError(errno.EINVAL, f"{path}: {what} refused ({exc})") from None


def _refresh(m, f) -> None:
    """Reload ``m`` from its open pin file if another process wrote since."""
    link = m._pin
    kind, pin_id, generation, _ = _read(f, link.path, full=False)
    if (pin_id, generation) == (link.pin_id, link.generation):
        return
    f.seek(0)
    kind, pin_id, generation, body = _read(f, link.path)
    if pin_id != link.pin_id or kind != KIND_MAP:
        _detach(m)              # unpinned and pinned anew: another object now
        return
    _, _, contents = _parse_map(link.path, body)
    m._pin = None
    try:
        _set_contents(m, link.path, contents)
    finally:
        m._pin = link
    link.generation, link.digest = generation, hashlib.blake2b(body, digest_size=16).digest()


def _refresh_unlocked(m) -> None:
    try:
        f = open(m._pin.path, "rb")
    except FileNotFoundError:
        _detach(m)
        return
    with f:
        _refresh(m, f)


def _write_back(m, link: Link) -> None:
    body = _map_body(m)
    if hashlib.blake2b(body, digest_size=16).digest() != link.digest:
        link.digest = _write(link.path, KIND_MAP, link.pin_id, link.generation + 1, body)
        link.generation += 1


@contextlib.contextmanager
def transaction(collect):
    """Lock, refresh and detach the pinned maps ``collect()`` names, run the body, then
    write back the changed ones and unlock.  Files are locked in path order (no
    deadlock between processes); ``collect`` runs again after the refresh, since a
    program array's or map of maps' new slots can reach further maps, until it finds no
    new one."""
    held = []       # (map, link, locked file)
    try:
        while True:
            todo = sorted({m._pin.path: m for m in collect() if m._pin is not None}.items())
            if not todo:
                break
            if held:    # more maps than locked: lock them all again, in order
                _release(held)
                held = []
                continue
            for path, m in todo:
                f = _locked(path)
                if f is None:
                    _detach(m)
                    continue
                link = m._pin
                try:
                    _refresh(m, f)
                except BaseException:
                    f.close()       # unreadable: neither used nor written back
                    raise
                if m._pin is not link:
                    f.close()
                    continue
                held.append((m, link, f))
                m._pin = None
        yield
    finally:
        _release(held)


def _release(held) -> None:
    """Write back and unlock.  A map that cannot be written (a slot's object is not
    pinned) is reloaded from its file, so the refused change is undone, and its error
    raised once the others are written."""
    failure = None
    for m, link, f in held:
        try:
            _write_back(m, link)
        except PinError as exc:
            failure = failure or exc
            m._pin, link.generation = link, -1
            f.seek(0)
            _refresh(m, f)
        finally:
            m._pin = link
            f.close()
    if failure is not None:
        raise failure


def _reachable_maps(prog) -> list:
    """The maps a run of ``prog`` can touch: its own, the inner maps of its maps of maps,
    and through program arrays those of every program it can tail-call."""
    maps, seen, todo = {}, set(), [prog]
    while todo:
        p = todo.pop()
        if id(p) in seen:
            continue
        seen.add(id(p))
        for m in p.maps:
            maps[id(m)] = m
            if m.type == _PROG_ARRAY:
                todo.extend(m._programs.values())
            elif m.type in _OF_MAPS:
                maps.update((id(inner), inner) for inner in m._programs.values())
    return list(maps.values())


def _run_transaction(prog):
    maps = _reachable_maps(prog)
    if not any(m._pin is not None for m in maps):
        return None
    return transaction(lambda: _reachable_maps(prog))


# --- programs -------------------------------------------------------------------------------

def pin_program(prog, path) -> None:
    """BPF_OBJ_PIN of a program: its instructions, type, profile, budget, tail-call limit
    and the pin paths of the maps it references, which must be pinned."""
    full = resolve(path)
    refs = []
    for m in prog.maps:
        if m._pin is None:
            raise PinError(errno.EINVAL, f"cannot pin program at {full}: map "
                                         f"{m.name or m.type.name} (fd {m.fd}) is not pinned; "
                                         "pin the maps it references first")
        rel = _rel(m._pin.path)
        refs.append(PROG_MAP.pack(m.fd, len(rel)) + rel)
    profile = prog.profile.encode()
    kind = -1 if prog.prog_type is None else int(prog.prog_type)
    body = (PROG_DEF.pack(kind, len(profile), len(refs), len(prog.insns), prog.budget,
                          prog.tail_call_limit) + profile + prog.insns + b"".join(refs))
    _write(full, KIND_PROG, os.urandom(16), 0, body, create=True)
    _prog_pins[prog] = os.path.realpath(full)


def get_program(path):
    """BPF_OBJ_GET of a program: a new Program whose ``lddw`` map fds are those of the
    maps got from their pins."""
    full = os.path.realpath(resolve(path))
    with _open(full, "no pinned program at") as f:
        kind, _, _, body = _read(f, full)
    if kind != KIND_PROG:
        raise PinError(errno.EINVAL, f"{full} holds a pinned {_KIND_NAMES[kind]}, not a program")
    try:
        prog_type, profile_len, nmaps, insn_len, budget, tail_limit = PROG_DEF.unpack_from(body)
        at = PROG_DEF.size
        profile = body[at:at + profile_len].decode()
        at += profile_len
        insns = bytearray(body[at:at + insn_len])
        at += insn_len
        fds = {}
        for _ in range(nmaps):
            fd, length = PROG_MAP.unpack_from(body, at)
            fds[fd] = body[at + PROG_MAP.size:at + PROG_MAP.size + length].decode()
            at += PROG_MAP.size + length
    except (struct.error, UnicodeDecodeError) as exc:
        raise PinError(errno.EINVAL, f"{full}: program definition unreadable ({exc})") from None
    try:
        maps = {fd: get_map(rel) for fd, rel in fds.items()}
    except PinError as exc:
        raise PinError(exc.errno, f"{full}: a map it references: {exc}") from None
    for pc in range(len(insns) // isa.INSN_SIZE):
        insn = isa.Insn.unpack(insns, pc * isa.INSN_SIZE)
        if insn.is_map_load and insn.imm in maps:
            isa.patch(insns, pc, imm=maps[insn.imm].fd)
    prog = _core.Program(bytes(insns), None if prog_type < 0 else prog_type, profile=profile,
                         budget=budget)
    prog.tail_call_limit = tail_limit
    _prog_pins[prog] = full
    return prog
