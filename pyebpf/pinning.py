"""Pinning: BPF_OBJ_PIN and BPF_OBJ_GET over pin files (docs/pinning.md).

A directory, :func:`pin_root`, plays the role of a bpffs mount.  A pin file holds a
versioned header, the object's definition and (maps) its contents.  A pinned map is
shared state: every operation on it from Python, and every :meth:`Program.run` of a
program that can reach it, is one transaction on its pin file — an exclusive
``flock`` on the file, a reload when another process wrote since, the work, and a
write-back when the contents changed (to a temporary file, then ``os.replace``, so a
killed writer leaves the previous state).  Files are never modified in place, so
readers need no lock — but for a ``BPF_F_MMAPABLE`` array's values, which follow its
body in the file and are every process's storage of them (a shared mapping, as the
kernel's map is one object), and its frozen byte, written in place.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import hashlib
import json
import os
import stat
import struct
import sys
import tempfile
import weakref
from pathlib import Path

from . import _core, isa, pin_format
from .errors import EbpfError, MapError, PinError

MAGIC = b"PYEBPFPN"
VERSION = 11                                # written; 1 to 11 are read
KIND_MAP, KIND_PROG = 1, 2
_KIND_NAMES = {KIND_MAP: "map", KIND_PROG: "program"}
HEADER = struct.Struct("<8sHH4x16sQQ16s")  # magic, version, kind, pin id, generation,
#                                            body length, blake2b-128 of the body
MAP_DEF = struct.Struct("<IIIIIIH")         # type, key, value, max_entries, flags, ncpu,
#                                            name length
PROG_DEF = struct.Struct("<iHHIQI")         # type (-1 raw), profile length, map count,
#                                            insn bytes, budget, tail_call_limit
PROG_MAP = struct.Struct("<iH")             # fd the insns use, pin path length
PROG_LOAD = struct.Struct("<?IH")           # since version 4, after the maps: has
#                                            kern_version, kern_version, arch length
PROG_VERIFY = struct.Struct("<?HI")         # since version 5, after the architecture: has
#                                            BTF function info, license length, global
#                                            functions length (JSON)
SLOT_PATH = struct.Struct("<H")             # after a slot's key: its object's pin path length
MAP_BTF = struct.Struct("<II")              # since version 7, after a map definition, for its
#                                            key then its value: BTF length (0: none), the
#                                            type's id in it; then the BTF
MAP_STATE = struct.Struct("<?")             # since version 10, after the definitions: frozen
VALUES_AT = struct.Struct("<I")             # since version 11, at byte 12 of the header: where
#                                            a shared array's values start (0: none)
_VALUES_AT_OFFSET = 12
_WRITERS_BYTE = 2                           # a shared array's values_at - 2: the byte each
#                                            writable mapping holds an OFD read lock on
_FLOCK = struct.Struct("hhqqi4x")           # struct flock: type, whence, start, len, pid
_PAGE = os.sysconf("SC_PAGE_SIZE")
_READ_ONLY = frozenset({"lookup", "next_key", "keys", "sync"})
_T = isa.MapType
_PROG_ARRAY = _T.BPF_MAP_TYPE_PROG_ARRAY
_OF_MAPS = (_T.BPF_MAP_TYPE_ARRAY_OF_MAPS, _T.BPF_MAP_TYPE_HASH_OF_MAPS)
_V1_MAPS = (_T.BPF_MAP_TYPE_HASH, _T.BPF_MAP_TYPE_ARRAY, _T.BPF_MAP_TYPE_PERCPU_HASH,
            _T.BPF_MAP_TYPE_PERCPU_ARRAY, _PROG_ARRAY)
_V2_MAPS = _V1_MAPS + (_T.BPF_MAP_TYPE_LRU_HASH, _T.BPF_MAP_TYPE_LRU_PERCPU_HASH,
                       _T.BPF_MAP_TYPE_LPM_TRIE, *_OF_MAPS, _T.BPF_MAP_TYPE_PERF_EVENT_ARRAY,
                       _T.BPF_MAP_TYPE_RINGBUF, _T.BPF_MAP_TYPE_STACK_TRACE)
_MAPS_UP_TO = {1: _V1_MAPS, 2: _V2_MAPS}    # the map types each older version holds
_SOCK_MAPS = (_T.BPF_MAP_TYPE_SOCKMAP, _T.BPF_MAP_TYPE_SOCKHASH)   # held since version 5
_DEV_MAPS = (_T.BPF_MAP_TYPE_DEVMAP, _T.BPF_MAP_TYPE_DEVMAP_HASH)
_V8_MAPS = _DEV_MAPS + (_T.BPF_MAP_TYPE_CPUMAP, _T.BPF_MAP_TYPE_XSKMAP,   # held since version 8
                        _T.BPF_MAP_TYPE_CGROUP_STORAGE, _T.BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE,
                        _T.BPF_MAP_TYPE_REUSEPORT_SOCKARRAY)
_V10_MAPS = (_T.BPF_MAP_TYPE_CGROUP_ARRAY, _T.BPF_MAP_TYPE_SK_STORAGE)  # held since version 10
_LRU = (_T.BPF_MAP_TYPE_LRU_HASH, _T.BPF_MAP_TYPE_LRU_PERCPU_HASH)
LRU_FREE_NODE = 0x7FFFFFFF                  # in an LRU's lists: a node no element holds

_live = weakref.WeakValueDictionary()      # real pin path -> the Map linked to it
_map_pins = weakref.WeakKeyDictionary()    # Map -> its real pin path (also mid-transaction)
_prog_pins = weakref.WeakKeyDictionary()   # Program -> its real pin path
_live_progs = weakref.WeakValueDictionary()   # (real pin path, pin id) -> the Program
_type_btfs = weakref.WeakKeyDictionary()   # BTF Type -> MAP_BTF and its BTF (every
#                                            write-back writes the definition again)


def pin_root() -> Path:
    """The directory that plays /sys/fs/bpf: $PYEBPF_PIN_ROOT, else a per-user one
    ($XDG_RUNTIME_DIR/pyebpf, else <tmp>/pyebpf-<uid>).  This only names it: pinning and
    getting make it if missing and refuse it unless :func:`private_directory` accepts it."""
    return Path(_root_name())


def _root_name() -> str:
    env = os.environ.get("PYEBPF_PIN_ROOT")
    if env:
        return env
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return os.path.join(runtime, "pyebpf") if runtime else \
        os.path.join(tempfile.gettempdir(), f"pyebpf-{os.getuid()}")


_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a FIFO planted where a pin file should be must not hang the open
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_MAXSYMLINKS = 40       # links followed in one lookup, the kernel's MAXSYMLINKS
_ROOT_HINT = ("another user could read or replace your pins there; set PYEBPF_PIN_ROOT to "
              "a directory that only you can write to")
_DIR_HINT = ("another user could replace the pins beneath it; pins are reached only "
             "through directories that you own and only you can write to")


def _unsafe(st) -> str:
    """Why a directory with these stat results could be changed by another user ("" if
    it cannot): not owned by this user, or writable by its group or others."""
    uid = os.geteuid()
    if st.st_uid != uid:
        return f"is owned by uid {st.st_uid}, not by you (uid {uid})"
    writers = [who for who, bit in (("its group", stat.S_IWGRP), ("others", stat.S_IWOTH))
               if st.st_mode & bit]
    if writers:
        return f"is writable by {' and '.join(writers)} (mode {stat.S_IMODE(st.st_mode):04o})"
    return ""


def _not_a_directory(name, dir_fd, exc: OSError) -> tuple[int, str]:
    """(errno, why) ``name`` could not be opened as a directory without following a
    link: EPERM for a symbolic link or a directory another user could change."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            return errno.EPERM, f"is a symbolic link (to {os.readlink(name, dir_fd=dir_fd)})"
    except OSError:
        return exc.errno, f"cannot be opened ({os.strerror(exc.errno)})"
    if not stat.S_ISDIR(st.st_mode):
        return errno.ENOTDIR, "is not a directory"
    problem = _unsafe(st)
    return (errno.EPERM, problem) if problem else \
        (exc.errno, f"cannot be opened ({os.strerror(exc.errno)})")


def private_directory(path: str, what: str, hint: str) -> int:
    """A descriptor of the directory ``path``, made (0700, and its parents) if missing,
    once it has proved to be what a per-user directory in a shared place such as /tmp
    must be: not a symbolic link, a directory, owned by this user, writable by no one
    else.  Otherwise PinError (EPERM) naming ``what``, the path, why, and ``hint``.
    The check is on what the open found, not on a name looked up before, so whoever
    made the directory, and whatever replaced it meanwhile, it is the one in use."""
    try:
        fd = os.open(path, _DIR)
    except FileNotFoundError:
        try:
            os.makedirs(path, 0o700)
        except FileExistsError:
            pass            # someone made it first: checked below like any other
        except OSError as exc:
            raise PinError(exc.errno, f"cannot create {what} {path}: "
                                      f"{os.strerror(exc.errno)}") from None
        fd = None
    except OSError:
        fd = None
    if fd is None:
        try:
            fd = os.open(path, _DIR)
        except OSError as exc:
            why = _not_a_directory(path, None, exc)[1]
            raise PinError(errno.EPERM, f"{what} {path} {why}: {hint}") from None
    problem = _unsafe(os.fstat(fd))
    if problem:
        os.close(fd)
        raise PinError(errno.EPERM, f"{what} {path} {problem}: {hint}")
    return fd


def _root_path() -> str:
    name = _root_name()
    return _absolute_root(name, "" if os.path.isabs(name) else os.getcwd())


@functools.lru_cache(maxsize=16)
def _absolute_root(name: str, cwd: str) -> str:
    """The pin root ``name`` as an absolute path: the directories above it resolved
    (they are the system's), its own last component as named (it is checked, not
    followed)."""
    root = os.path.normpath(os.path.join(cwd, name))
    parent, last = os.path.split(root)
    return os.path.join(os.path.realpath(parent), last) if last else root


def _inside(path: str, root: str) -> bool:
    return os.path.commonpath([root, path]) == root


def resolve(path) -> str:
    """The absolute pin path: relative paths are under :func:`pin_root` (made on first
    use, checked on every use); an absolute one outside it is refused with EPERM, as a
    path outside a bpffs is.  No symbolic link inside the root is followed here."""
    root = _root_path()
    os.close(private_directory(root, "pin root", _ROOT_HINT))
    full = os.path.normpath(os.path.join(root, os.fspath(path)))
    if not _inside(full, root):     # an absolute path may name the root another way
        alias = os.path.join(os.path.realpath(os.path.dirname(full)), os.path.basename(full))
        if not _inside(alias, root):
            raise PinError(errno.EPERM, f"pin path {full} is outside the pin root {root}")
        full = alias
    return full


def _open_dir(directory: str, what: str, path: str, create: bool = False) -> int:
    """A descriptor of ``directory``, the pin root or one inside it, reached from the
    root one component at a time without following a symbolic link, each directory
    checked as the root is (so a link planted at tc/globals cannot send pins out of the
    root).  create: missing directories are made, 0700, as mkdir in a bpffs.  Errors
    are ``what`` the pin path ``path``."""
    root = _root_path()
    fd = private_directory(root, "pin root", _ROOT_HINT)
    at = root
    try:
        rel = os.path.relpath(directory, root)
        for name in [] if rel == "." else rel.split(os.sep):
            at = os.path.join(at, name)
            try:
                if create:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(name, 0o700, dir_fd=fd)
                sub = os.open(name, _DIR, dir_fd=fd)
            except FileNotFoundError as exc:
                raise _oserror(exc, path, what) from None
            except OSError as exc:
                code, why = _not_a_directory(name, fd, exc)
                if code != errno.EPERM:
                    raise _oserror(OSError(code, why), path, what) from None
                raise PinError(code, f"{what} {path}: {at} {why}: {_DIR_HINT}") from None
            os.close(fd)
            fd = sub
            problem = _unsafe(os.fstat(fd))
            if problem:
                raise PinError(errno.EPERM, f"{what} {path}: {at} {problem}: {_DIR_HINT}")
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def _parent(full: str, what: str):
    """(a descriptor of the directory holding the pin path ``full``, its last component),
    for making a pin there: EEXIST at the root itself, which exists."""
    if full == _root_path():
        raise PinError(errno.EEXIST, f"{what} {full}: it is the pin root")
    fd = _open_dir(os.path.dirname(full), what, full)
    try:
        yield fd, os.path.basename(full)
    finally:
        os.close(fd)


def makedirs(path) -> None:
    """Make the missing directories of the pin path ``path`` (0700, as mkdir in a
    bpffs); those that exist must pass the pin root's checks."""
    full = resolve(path)
    os.close(_open_dir(full, "cannot create", full, create=True))


def _rel(path: str) -> bytes:
    return os.path.relpath(path, _root_path()).encode()


def _oserror(exc: OSError, path: str, what: str) -> PinError:
    return PinError(exc.errno, f"{what} {path}: {os.strerror(exc.errno)}")


# --- the file -------------------------------------------------------------------------------

def _values_start(body_len: int) -> int:
    """Where a shared array's values start in its pin file: the first page boundary
    after the header, the body, the writers byte and the frozen byte."""
    return -(-(HEADER.size + body_len + 2) // _PAGE) * _PAGE


def _write(path: str, kind: int, pin_id: bytes, generation: int, body: bytes,
           create: bool = False, shared=None) -> bytes:
    """Write a pin file whole (create: fail with EEXIST if ``path`` exists); returns the
    body's digest.  A temporary file renamed into place, so readers see old or new.
    shared: a BPF_F_MMAPABLE array, whose frozen byte and values follow the body, and
    whose storage becomes the file's before it is put in place."""
    digest = hashlib.blake2b(body, digest_size=16).digest()
    header = HEADER.pack(MAGIC, VERSION, kind, pin_id, generation, len(body), digest)
    if shared is not None:
        at = _values_start(len(body))
        header = header[:_VALUES_AT_OFFSET] + VALUES_AT.pack(at) + \
            header[_VALUES_AT_OFFSET + VALUES_AT.size:]
        body += bytes(at - HEADER.size - len(body) - 1) + MAP_STATE.pack(shared.frozen) + \
            shared._values_image()
    what = "cannot pin" if create else "cannot write"
    with _parent(path, what) as (dfd, name):
        try:
            fd, tmp = _temporary(dfd, name)
        except OSError as exc:
            raise _oserror(exc, path, what) from None
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(header)
                f.write(body)
                f.flush()
                if shared is not None:
                    shared._share_values(f.fileno(), at)
            if create:
                os.link(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
            else:
                os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except OSError as exc:
            raise _oserror(exc, path, what) from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp, dir_fd=dfd)
    return digest


def _temporary(dfd: int, name: str) -> tuple[int, str]:
    """A new file ``.NAME.<random>.tmp`` (0600) in the directory ``dfd``: (fd, its name)."""
    while True:
        tmp = f".{name}.{os.urandom(6).hex()}.tmp"
        try:
            return os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW |
                           os.O_CLOEXEC, 0o600, dir_fd=dfd), tmp
        except FileExistsError:
            continue


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
    (values_at,) = VALUES_AT.unpack_from(head, _VALUES_AT_OFFSET)
    if version >= 11 and values_at and values_at != _values_start(length):
        raise PinError(errno.EINVAL, f"{path}: pin file's values at byte {values_at}, not "
                                     f"{_values_start(length)} (after a {length}-byte body)")
    body = f.read(length + 1)
    if version >= 11 and values_at:
        body = body[:length]        # the frozen byte and the values follow
    if len(body) != length:
        raise PinError(errno.EINVAL, f"{path}: pin file {'truncated' if len(body) < length else 'too long'}"
                                     f" ({len(body)} body bytes, the header says {length})")
    if hashlib.blake2b(body, digest_size=16).digest() != digest:
        raise PinError(errno.EINVAL, f"{path}: pin file corrupt (its contents do not match "
                                     "their checksum)")
    if kind == KIND_MAP and body[:4] and (
            version in _MAPS_UP_TO and int.from_bytes(body[:4], "little") not in
            _MAPS_UP_TO[version] or version < 5 and int.from_bytes(body[:4], "little") in
            _SOCK_MAPS or version < 8 and int.from_bytes(body[:4], "little") in _V8_MAPS or
            version < 10 and int.from_bytes(body[:4], "little") in _V10_MAPS):
        raise PinError(errno.EINVAL, f"{path}: a version {version} pin file cannot hold a "
                                     f"map of type {int.from_bytes(body[:4], 'little')}")
    if version < 7 and kind == KIND_MAP:
        body = _without_btf(body)
    if version < 9 and kind == KIND_MAP and int.from_bytes(body[:4], "little") in _LRU:
        try:
            body = (_lru_from_recency if version < 5 else _lru_free_counted)(body)
        except ValueError as exc:
            raise PinError(errno.EINVAL, f"{path}: {exc}") from None
    if version < 10 and kind == KIND_MAP:
        body = _unfrozen(body)
    return kind, pin_id, generation, body


def _without_btf(body: bytes) -> bytes:
    """A version 1 to 6 map's body in version 7's layout: no key or value BTF after its
    definition (nor after its inner map template's).  A body too short for its
    definitions is left as it is, for the parse to refuse."""
    at, out = 0, bytearray()
    for _ in range(2):
        try:
            kind, *_, name_len = MAP_DEF.unpack_from(body, at)
        except struct.error:
            return body
        out += body[at:at + MAP_DEF.size + name_len] + MAP_BTF.pack(0, 0) * 2
        at += MAP_DEF.size + name_len
        if kind not in _OF_MAPS:
            break
    return bytes(out) + body[at:]


def _definitions_end(body: bytes):
    """Where the definitions (a map's, then a map of maps' inner map template's) of a
    body in version 7's layout end; None if they are cut short (the parse refuses it)."""
    at = 0
    try:
        for _ in range(2):
            kind, *_, name_len = MAP_DEF.unpack_from(body, at)
            at += MAP_DEF.size + name_len
            for _ in range(2):
                at += MAP_BTF.size + MAP_BTF.unpack_from(body, at)[0]
            if kind not in _OF_MAPS:
                break
    except struct.error:
        return None
    return at if at <= len(body) else None


def _unfrozen(body: bytes) -> bytes:
    """A version 1 to 9 map's body in version 10's layout: not frozen (those versions
    did not keep it; BPF_MAP_FREEZE on a pinned map came later)."""
    at = _definitions_end(body)
    return body if at is None else body[:at] + MAP_STATE.pack(False) + body[at:]


def _lru_layout(body: bytes):
    """(max_entries, its list heads, whether they are per CPU, the bytes of an element,
    where the elements start) of an LRU map's body in version 7's layout; None if its
    definition is cut short (the parse refuses it)."""
    try:
        kind, key, value, entries, flags, ncpu, at = MAP_DEF.unpack_from(body)
        at += MAP_DEF.size
        for _ in range(2):
            at += MAP_BTF.size + MAP_BTF.unpack_from(body, at)[0]
    except struct.error:
        return None
    percpu = bool(flags & isa.BPF_F_NO_COMMON_LRU)
    # an LRU_HASH's ncpu names the CPUs of its lists (1 before version 5), not its values
    esize = key + (ncpu if kind == _T.BPF_MAP_TYPE_LRU_PERCPU_HASH else 1) * value
    return entries, ncpu, percpu, esize, at


_LRU_MISFIT = "its LRU contents do not fit its definition"


def _lru_from_recency(body: bytes) -> bytes:
    """A version 2 to 4 LRU map's body in version 9's layout.  Those versions kept one
    exact recency list: its elements become the (first) inactive list in that order,
    most recent at the head, and every other node is free on the (first) free list."""
    layout = _lru_layout(body)
    if layout is None:
        return body
    entries, ncpu, percpu, esize, at = layout
    cnt = (len(body) - at) // (esize + 4)
    if at + cnt * (esize + 4) != len(body) or cnt > entries:
        raise ValueError(_LRU_MISFIT)
    nheads = 3 * ncpu if percpu else 3 + 2 * ncpu
    lists = struct.pack("<2I", 0, cnt) + body[at + cnt * esize:] + \
        struct.pack(f"<{nheads - 2}I", entries - cnt, *[0] * (nheads - 3))
    rotations = struct.pack("<i", -1) * (ncpu if percpu else 1)
    steals = b"" if percpu else struct.pack(f"<{ncpu}I", *range(ncpu))
    return body[:at + cnt * esize] + lists + rotations + steals


def _lru_free_counted(body: bytes) -> bytes:
    """A version 5 to 8 LRU map's body in version 9's layout: a free list is its
    length alone (those versions listed its nodes, each LRU_FREE_NODE and a ref bit)."""
    layout = _lru_layout(body)
    if layout is None:
        return body
    entries, ncpu, percpu, esize, at = layout
    nheads = 3 * ncpu if percpu else 3 + 2 * ncpu
    # each list's length, every node, each bpf_lru_list's rotation, each CPU's steal
    lists = len(body) - at - 4 * (nheads + entries + (ncpu if percpu else 1 + ncpu))
    if lists < 0 or lists % esize:
        raise ValueError(_LRU_MISFIT)
    p = at + lists
    out = [body[:p]]
    for h in range(nheads):
        try:
            (n,) = struct.unpack_from("<I", body, p)
        except struct.error:
            raise ValueError(_LRU_MISFIT) from None
        nodes = body[p + 4:p + 4 + 4 * n]
        if len(nodes) != 4 * n:
            raise ValueError(_LRU_MISFIT)
        if not (h % 3 == 2 if percpu or h < 3 else (h - 3) % 2 == 0):
            out.append(body[p:p + 4 + 4 * n])
        elif (nodes[0::4] + nodes[1::4] + nodes[2::4]).translate(None, b"\xff") or \
                nodes[3::4].translate(None, b"\x7f\xff"):
            # each u32 is LRU_FREE_NODE, its bit 31 (the ref bit) either way
            raise ValueError("its LRU lists do not fit its elements and CPUs (a free list "
                             "names an element)")
        else:
            out.append(body[p:p + 4])
        p += 4 + 4 * n
    return b"".join(out) + body[p:]


def _regular(fd: int, path: str):
    """The open file ``fd`` as a binary file object; EACCES (as for a non-BPF inode) and
    closed if it is not a regular file."""
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        what = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
        raise PinError(errno.EACCES, f"{path} is {what}, not a pinned object")
    return os.fdopen(fd, "rb")


def _open_pin(full: str, what: str):
    """(the pin file at ``full`` open for reading, its path with links resolved).  The
    directories on the way are checked by :func:`_open_dir`; a symbolic link at the end
    (a second name, see :func:`pin_map`) is followed only to a path inside the root."""
    named, root = full, _root_path()
    for _ in range(_MAXSYMLINKS + 1):
        if full == root:
            raise PinError(errno.EACCES, f"{named} is a directory, not a pinned object")
        dfd = _open_dir(os.path.dirname(full), what, named)
        try:
            fd = os.open(os.path.basename(full), _FILE, dir_fd=dfd)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise _oserror(exc, named, what) from None
            try:
                target = os.readlink(os.path.basename(full), dir_fd=dfd)
            except OSError:
                continue        # replaced since: looked up again
            nxt = os.path.normpath(os.path.join(os.path.dirname(full), target))
            if not _inside(nxt, root):
                raise PinError(errno.EPERM, f"{what} {named}: {full} is a symbolic link to "
                                            f"{target}, outside the pin root {root}") from None
            full = nxt
            continue
        finally:
            os.close(dfd)
        return _regular(fd, named), full
    raise PinError(errno.ELOOP, f"{what} {named}: {os.strerror(errno.ELOOP)}")


def load(path) -> tuple[int, bytes, int, bytes]:
    """(kind, pin id, generation, body) of the pin file at ``path``."""
    f, full = _open_pin(resolve(path), "no pinned object at")
    with f:
        return _read(f, full)


def _linked(path: str, lock: bool):
    """The pin file at ``path`` (a linked map's, with no link in it) opened without
    following a symbolic link, or None if it is gone.  lock: exclusively locked; the
    lock is on the file's inode, so after waiting, make sure it is still the one the
    path names (a writer may have replaced it)."""
    while True:
        try:
            dfd = _open_dir(os.path.dirname(path), "cannot open", path)
        except PinError as exc:
            if exc.errno == errno.ENOENT:
                return None
            raise
        name = os.path.basename(path)
        try:
            try:
                f = _regular(os.open(name, _FILE, dir_fd=dfd), path)
            except FileNotFoundError:
                return None
            except OSError as exc:
                raise _oserror(exc, path, "cannot open") from None
            if not lock:
                return f
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                current = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            except FileNotFoundError:
                current = None
        finally:
            os.close(dfd)
        st = os.fstat(f.fileno())
        if current is not None and (current.st_ino, current.st_dev) == (st.st_ino, st.st_dev):
            return f
        f.close()


# --- maps -----------------------------------------------------------------------------------

class Link:
    """A pinned map's tie to its pin file: the path, the pin's identity, and the
    generation and digest of the contents this process last read or wrote."""

    def __init__(self, path: str, pin_id: bytes, generation: int, digest: bytes,
                 values_at: int = 0):
        self.path, self.pin_id, self.generation, self.digest = path, pin_id, generation, digest
        self.values_at = values_at      # a shared array's: where its values are (0: none)

    def apply(self, fn, m, *args, **kwargs):
        """``fn(m, *args, **kwargs)`` as one transaction (read-only ones only refresh)."""
        if fn.__name__ in _READ_ONLY:
            _refresh_unlocked(m)
            link, m._pin = m._pin, None
            try:
                return fn(m, *args, **kwargs)
            finally:
                m._pin = link
        with transaction(lambda: [m]):
            return fn(m, *args, **kwargs)

    def map_values(self, m, writable: bool, offset: int, length):
        """Map.mmap of the pinned map, in one transaction (its frozen state as the file
        has it); a writable view of a shared array is counted in the file until
        released, as the kernel's writecnt counts every process's mappings."""
        with transaction(lambda: [m]):
            view = m.mmap(writable, offset, length)
            if writable and self.values_at:
                view.obj._counted(_WriterHold(self.path, self.values_at))
            return view

    def freeze(self, m) -> None:
        """Map.freeze of the pinned map: EBUSY while any process that has the pin holds
        a writable mapping of a shared array (map_freeze: bpf_map_write_active)."""
        with transaction(lambda: [m]):
            if self.values_at and _WriterHold.any(self.path, self.values_at):
                raise MapError(errno.EBUSY, f"map {m.name or m.fd}: freeze: a writable "
                                            "mapping of the map is open (Map.mmap), in "
                                            "this process or another")
            m.freeze()


class _WriterHold:
    """A writable mapping of a shared array, counted in its pin file: an OFD read lock
    on one byte, on a descriptor of its own, until :meth:`close` (or the process ends,
    as the kernel's mapping does)."""

    def __init__(self, path: str, values_at: int):
        f = _linked(path, lock=False)
        self._fd = None if f is None else os.dup(f.fileno())
        if f is not None:
            f.close()
            fcntl.fcntl(self._fd, fcntl.F_OFD_SETLK, _FLOCK.pack(
                fcntl.F_RDLCK, os.SEEK_SET, values_at - _WRITERS_BYTE, 1, 0))

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    __del__ = close

    @staticmethod
    def any(path: str, values_at: int) -> bool:
        """Whether a writable mapping of the shared array at ``path`` is held anywhere."""
        f = _linked(path, lock=False)
        if f is None:
            return False
        with f:
            fd = os.open(f"/proc/self/fd/{f.fileno()}", os.O_RDWR | os.O_CLOEXEC)
        try:
            got = fcntl.fcntl(fd, fcntl.F_OFD_GETLK, _FLOCK.pack(
                fcntl.F_WRLCK, os.SEEK_SET, values_at - _WRITERS_BYTE, 1, 0))
        finally:
            os.close(fd)
        return _FLOCK.unpack(got)[0] != fcntl.F_UNLCK


def _map_def(m) -> bytes:
    """The definition, then the key's and the value's BTF: the kernel's map keeps its
    btf_record (bpf_timer, bpf_wq, bpf_spin_lock...), so one got from its pin must too."""
    name = m.name.encode()
    # an LRU map's ncpu is the CPUs it keeps lists for (per-CPU values or not), a CPU
    # map's the CPUs its slots may name
    return MAP_DEF.pack(m.type, m.key_size, m.value_size, m.max_entries, m.flags,
                        m.lru_cpus or m.ncpu, len(name)) + name + \
        _type_btf(m, m.key_type, "key") + _type_btf(m, m.value_type, "value")


def _type_btf(m, t, what: str) -> bytes:
    """MAP_BTF and the BTF of ``t`` and the types it reaches (none: MAP_BTF of 0s)."""
    if t is None:
        return MAP_BTF.pack(0, 0)
    if t.btf is None:
        raise PinError(errno.EINVAL, f"map {m.name or m.fd}: its {what} type {t.name!r} "
                                     f"belongs to no BTF, so it cannot be pinned with it")
    packed = _type_btfs.get(t)
    if packed is None:
        from .btf.writer import subset_ids
        # a global data map's DATASEC has its variables' offsets filled in (Btf.datasec)
        replaced = {} if t.btf.types[t.id] is t else {t.id: t}
        blob, (tid,) = subset_ids(t.btf, [t], replaced)
        packed = _type_btfs[t] = MAP_BTF.pack(len(blob), tid) + blob
    return packed


def _map_body(m) -> bytes:
    """The definition (maps of maps: then their inner map template's), whether the map
    is frozen (the kernel's pinned map is the frozen map itself), then the contents:
    pin_format.dump's bytes, or per slot its key and its object's pin path."""
    head = _map_def(m) + (_map_def(m.inner_map) if m.type in _OF_MAPS else b"")
    if _shared(m):
        # its frozen byte and values follow the body, written in place (_write)
        return head + MAP_STATE.pack(False)
    head += MAP_STATE.pack(m.frozen)
    contents = pin_format.dump(m)
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


def _shared(m) -> bool:
    """Whether the map's values live in its pin file, shared: a BPF_F_MMAPABLE array
    (what a mapping of it shows is what every process's programs see)."""
    return m.type == _T.BPF_MAP_TYPE_ARRAY and bool(m.flags & isa.BPF_F_MMAPABLE)


def _frozen_byte(f, values_at: int) -> bool:
    """A shared array's frozen state, as its pin file ``f`` has it now (the byte before
    its values)."""
    return os.pread(f.fileno(), 1, values_at - 1) == b"\1"


def _share(m, f, path: str, values_at: int) -> None:
    """Make the values of ``m``, got from the pin file ``f``, the file's (a writable
    descriptor of the same file: a shared mapping must be writable)."""
    need = values_at + -(-m.max_entries * ((m.value_size + 7) & ~7) // _PAGE) * _PAGE
    if os.fstat(f.fileno()).st_size < need:
        raise PinError(errno.EINVAL, f"{path}: pin file truncated inside its values "
                                     f"({os.fstat(f.fileno()).st_size} of {need} bytes)")
    fd = os.open(f"/proc/self/fd/{f.fileno()}", os.O_RDWR | os.O_CLOEXEC)
    try:
        m._share_values(fd, values_at)
    except OSError as exc:
        raise _oserror(exc, path, "cannot map the values of") from None
    finally:
        os.close(fd)


def _take_values(m, f, path: str, pin_id: bytes, generation: int, digest: bytes):
    """Make a shared array got from the pin file ``f`` use the file's values, frozen if
    the file says so: (where its values are, generation, digest).  An older version's
    file, whose values are its contents, is rewritten as this version's first, once,
    under its lock, so every process maps the one file."""
    (at,) = VALUES_AT.unpack(os.pread(f.fileno(), VALUES_AT.size, _VALUES_AT_OFFSET))
    if at:
        _share(m, f, path, at)
        if _frozen_byte(f, at):
            m._set_frozen()
        return at, generation, digest
    locked = _linked(path, lock=True)
    if locked is None:
        raise PinError(errno.ENOENT, f"no pinned map at {path}: removed while read")
    with locked:
        kind, now_id, generation, body = _read(locked, path)
        if (kind, now_id) != (KIND_MAP, pin_id):
            raise PinError(errno.EINVAL, f"{path}: replaced by another object while read")
        (at,) = VALUES_AT.unpack(os.pread(locked.fileno(), VALUES_AT.size,
                                          _VALUES_AT_OFFSET))
        if at:      # another process rewrote it meanwhile
            return _take_values(m, locked, path, pin_id, generation,
                                hashlib.blake2b(body, digest_size=16).digest())
        _, _, frozen, contents = _parse_map(path, body)
        _set_contents(m, path, contents)
        if frozen:
            m._set_frozen()
        body = _map_body(m)
        digest = _write(path, KIND_MAP, pin_id, generation + 1, body, shared=m)
        return _values_start(len(body)), generation + 1, digest


def _slot_name(m, key: bytes) -> str:
    return f"key {key.hex()}" if m.type == _T.BPF_MAP_TYPE_HASH_OF_MAPS else \
        f"slot {int.from_bytes(key, 'little')}"


def _parse_def(path: str, body: bytes, at: int, what: str) -> tuple:
    """((type, key size, value size, max_entries, flags, ncpu, name, key type, value
    type), where the next section starts)"""
    from .btf.types import Btf
    try:
        definition = MAP_DEF.unpack_from(body, at)
        end = at + MAP_DEF.size + definition[-1]
        if end > len(body):
            raise ValueError("its name runs past the end")
        name = body[at + MAP_DEF.size:end].decode()
        types = []
        for part in ("key", "value"):
            length, tid = MAP_BTF.unpack_from(body, end)
            end += MAP_BTF.size + length
            if end > len(body):
                raise ValueError(f"its {part} BTF runs past the end")
            btf = Btf.parse(body[end - length:end], where=path) if length else None
            types.append(btf.type(tid) if btf else None)
    except (struct.error, UnicodeDecodeError, ValueError, EbpfError) as exc:
        raise PinError(errno.EINVAL, f"{path}: {what} unreadable ({exc})") from None
    return (*definition[:-1], name, *types), end


def _parse_map(path: str, body: bytes) -> tuple:
    """(definition, inner map template definition or None, frozen, contents)"""
    definition, at = _parse_def(path, body, 0, "map definition")
    template = None
    if definition[0] in _OF_MAPS:
        template, at = _parse_def(path, body, at, "inner map template definition")
    if body[at:at + MAP_STATE.size] not in (b"\0", b"\1"):
        raise PinError(errno.EINVAL, f"{path}: map state unreadable (frozen is "
                                     f"{body[at:at + MAP_STATE.size].hex() or 'missing'}, "
                                     "not 00 or 01)")
    (frozen,) = MAP_STATE.unpack_from(body, at)
    return definition, template, frozen, body[at + MAP_STATE.size:]


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
        pin_format.load(m, items)
    except ValueError as exc:
        raise PinError(errno.EINVAL, f"{path}: {exc}") from None


def _attach(m, path: str, pin_id: bytes, generation: int, digest: bytes,
            values_at: int = 0) -> None:
    m._pin = Link(path, pin_id, generation, digest, values_at)
    _live[path] = m
    _map_pins[m] = path
    _core._set_pin_hook(_run_transaction)


def _detach(m) -> None:
    """The pin was removed (or replaced): the map lives on, private to this process."""
    if _live.get(m._pin.path) is m:
        del _live[m._pin.path]
    _map_pins.pop(m, None)
    m._pin = None


# maps whose keys are what only this process knows its objects by: task, cgroup and
# inode local storage (the addresses of the engine's modelled kernel objects; socket
# local storage is keyed by cookies, which every process's Environment shares)
_UNPINNABLE = (isa.MapType.BPF_MAP_TYPE_TASK_STORAGE, isa.MapType.BPF_MAP_TYPE_CGRP_STORAGE,
               isa.MapType.BPF_MAP_TYPE_INODE_STORAGE,
               # an arena's pages are this process's mapping (arena.pxi), no pin file's
               isa.MapType.BPF_MAP_TYPE_ARENA)


def pin_map(m, path) -> None:
    """BPF_OBJ_PIN of a map: EEXIST if ``path`` exists, ENOENT if its directory does not.
    A map pinned already gets a second name: a symbolic link to its pin file."""
    full = resolve(path)
    if m.type in _UNPINNABLE:
        raise PinError(errno.EOPNOTSUPP, f"cannot pin {full}: pyebpf does not pin "
                                         f"{m.type.name} maps yet")
    if getattr(m, "kptrs", ()) or getattr(m, "graph_roots", ()):
        # the objects its kptr fields and lists hold live in this process's heap
        # (heap.pxi)
        raise PinError(errno.EOPNOTSUPP, f"cannot pin {full}: pyebpf does not pin maps "
                                         f"whose values hold kptrs or lists")
    if m._pin is not None:
        with _parent(full, "cannot pin") as (dfd, name):
            try:
                os.symlink(os.path.relpath(m._pin.path, os.path.dirname(full)), name,
                           dir_fd=dfd)
            except OSError as exc:
                raise _oserror(exc, full, "cannot pin") from None
        return
    pin_id = os.urandom(16)
    body = _map_body(m)
    digest = _write(full, KIND_MAP, pin_id, 0, body, create=True,
                    shared=m if _shared(m) else None)
    _attach(m, full, pin_id, 0, digest,     # no link in it: made through _parent
            _values_start(len(body)) if _shared(m) else 0)


def get_map(path):
    """BPF_OBJ_GET of a map: the Map linked to the pin (one per pin in a process)."""
    f, full = _open_pin(resolve(path), "no pinned map at")
    with f:
        kind, pin_id, generation, body = _read(f, full)
        if kind != KIND_MAP:
            raise PinError(errno.EINVAL, f"{full} holds a pinned {_KIND_NAMES[kind]}, "
                                         "not a map")
        m = _live.get(full)
        if m is not None and (m._pin is None or m._pin.pin_id == pin_id):
            m._reopen()     # its handle may have been closed since
            return m        # the same object (detached while a transaction or load uses it)
        definition, template, frozen, contents = _parse_map(full, body)
        if template is not None:
            template = _create(full, template, "inner map template", None)
        m = _create(full, definition, "map definition", template, contents)
        values_at, digest = 0, hashlib.blake2b(body, digest_size=16).digest()
        if _shared(m):
            values_at, generation, digest = _take_values(m, f, full, pin_id, generation,
                                                         digest)
    # linked first: a program in its own program array gets this map back
    _attach(m, full, pin_id, generation, digest, values_at)
    link, m._pin = m._pin, None
    try:
        if not values_at:
            _set_contents(m, full, contents)
    except BaseException:
        m._pin = link
        _detach(m)
        raise
    m._pin = link
    if frozen:
        m._set_frozen()
    return m


def _create(path: str, definition: tuple, what: str, template, contents: bytes = b""):
    kind, key, value, entries, flags, ncpu, name, key_type, value_type = definition
    if kind in _DEV_MAPS:
        flags &= ~isa.BPF_F_RDONLY_PROG     # the creation adds it (dev_map_init_map)
    # a bloom filter's contents begin with its map_extra, which sizes its bitset
    extra = int.from_bytes(contents[:4], "little") if kind == _T.BPF_MAP_TYPE_BLOOM_FILTER \
        else 0
    try:
        m = _core.Map.create(kind, key, value, entries, flags, name=name, ncpu=ncpu,
                             inner_map=template, map_extra=extra, value_type=value_type)
    except MapError as exc:
        raise PinError(errno.EINVAL, f"{path}: {what} refused ({exc})") from None
    m.key_type = key_type
    return m


def _refresh(m, f) -> None:
    """Reload ``m`` from its open pin file if another process wrote since."""
    link = m._pin
    kind, pin_id, generation, _ = _read(f, link.path, full=False)
    if (pin_id, generation) == (link.pin_id, link.generation):
        if link.values_at and _frozen_byte(f, link.values_at):
            m._set_frozen()     # another process froze it
        return
    f.seek(0)
    kind, pin_id, generation, body = _read(f, link.path)
    if pin_id != link.pin_id or kind != KIND_MAP:
        _detach(m)              # unpinned and pinned anew: another object now
        return
    _, _, frozen, contents = _parse_map(link.path, body)
    m._pin = None
    try:
        if not link.values_at:
            _set_contents(m, link.path, contents)
    finally:
        m._pin = link
    if frozen:
        m._set_frozen()     # another process froze it (a freeze is never undone)
    link.generation, link.digest = generation, hashlib.blake2b(body, digest_size=16).digest()


def _refresh_unlocked(m) -> None:
    f = _linked(m._pin.path, lock=False)
    if f is None:
        _detach(m)
        return
    with f:
        _refresh(m, f)


def _write_back(m, link: Link, f) -> None:
    if link.values_at:
        # its values are the file's already; a freeze is its one byte, in place
        if m.frozen and not _frozen_byte(f, link.values_at):
            fd = os.open(f"/proc/self/fd/{f.fileno()}", os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.pwrite(fd, MAP_STATE.pack(True), link.values_at - 1)
            finally:
                os.close(fd)
        return
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
                f = _linked(path, lock=True)
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
            _write_back(m, link, f)
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
    """BPF_OBJ_PIN of a program: its instructions, type, profile, budget, tail-call limit,
    the pin paths of the maps it references (which must be pinned), its architecture,
    kern_version, and what the verifier took from its object: whether it had BTF
    function info, its license and its global functions (a program got from the pin is
    verified again, and must decide as the kernel did when the program was loaded)."""
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
                          prog.tail_call_limit) + profile + prog.insns + b"".join(refs)
            + PROG_LOAD.pack(prog.kern_version is not None, prog.kern_version or 0,
                             len(prog.arch)) + prog.arch.encode())
    lic, funcs = prog.license.encode(), _functions_json(prog.functions)
    body += PROG_VERIFY.pack(prog.func_info, len(lic), len(funcs)) + lic + funcs
    pin_id = os.urandom(16)
    _write(full, KIND_PROG, pin_id, 0, body, create=True)
    _prog_pins[prog] = full
    _live_progs[full, pin_id] = prog


def _functions_json(functions) -> bytes:
    """A program's global functions (:class:`~pyebpf.verifier.globalfuncs.GlobalFunc`;
    not its static ones' prototypes, which only the log uses) as JSON: per function [pc, name, [[kind, size, nullable] per argument], error],
    and true after those for the exception callback (older pins have no such entry); a
    BTF pointer argument adds its struct's name and whether it is untrusted."""
    return json.dumps([[f.pc, f.name, [[a.kind, a.size, a.nullable] +
                                       ([a.struct.name, a.untrusted] if a.struct else [])
                                       for a in f.args],
                        f.error] + ([True] if f.exception_cb else [])
                       for f in functions if not f.static]).encode()


def _functions_from_json(raw: bytes) -> tuple:
    from .verifier.globalfuncs import GlobalFunc
    return tuple(GlobalFunc(int(pc), str(name), tuple(_arg_from_json(*a) for a in args),
                            str(error), bool(ex and ex[0]))
                 for pc, name, args, error, *ex in json.loads(raw))


def _arg_from_json(kind, size, nullable, struct=None, untrusted=False):
    from .btf import Kind
    from .btf.relo import target_btf
    from .verifier.globalfuncs import Arg
    t = target_btf().by_name(str(struct), Kind.STRUCT)[0] if struct is not None else None
    return Arg(str(kind), int(size), bool(nullable), t, bool(untrusted))


def get_program(path):
    """BPF_OBJ_GET of a program: the Program pinned or got there before in this process
    while it lives (the kernel's pin holds one program, with one id), else a new Program
    whose ``lddw`` map fds are those of the maps got from their pins."""
    f, full = _open_pin(resolve(path), "no pinned program at")
    with f:
        kind, pin_id, _, body = _read(f, full)
    if kind != KIND_PROG:
        raise PinError(errno.EINVAL, f"{full} holds a pinned {_KIND_NAMES[kind]}, not a program")
    prog = _live_progs.get((full, pin_id))
    if prog is not None:
        return prog
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
        arch, kern_version = "x86_64", None       # what a file before version 4 loaded as
        func_info, license, functions = False, "GPL", ()    # and before version 5
        if at < len(body):
            has_version, version, arch_len = PROG_LOAD.unpack_from(body, at)
            kern_version = version if has_version else None
            at += PROG_LOAD.size
            arch = body[at:at + arch_len].decode()
            at += arch_len
        if at < len(body):
            func_info, lic_len, funcs_len = PROG_VERIFY.unpack_from(body, at)
            at += PROG_VERIFY.size
            license = body[at:at + lic_len].decode()
            functions = _functions_from_json(body[at + lic_len:at + lic_len + funcs_len])
    except (struct.error, UnicodeDecodeError, ValueError, TypeError) as exc:
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
                         budget=budget, arch=arch, kern_version=kern_version,
                         func_info=func_info, license=license, functions=functions)
    prog.tail_call_limit = tail_limit
    _prog_pins[prog] = full
    _live_progs[full, pin_id] = prog
    return prog


_core._pinning = sys.modules[__name__]    # Map.pin, Program.pin and from_pin come here
