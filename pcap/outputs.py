"""Where tcsim's outputs go, decided before anything runs, and written so that nothing
is lost or half written.

:func:`resolve` turns a path as the user gave it into a :class:`Target`:

* ``-``: standard output, streamed into;
* a regular file or a new path: written to ``.NAME.tcsim-tmp`` in the same directory,
  then renamed onto it (a symlink is followed first, so its target is what changes; a
  file already there is exchanged with it, :func:`replace`);
* anything else that exists (character device, FIFO, socket, ``/dev/stdout`` and the
  other ``/proc/PID/fd`` links): opened and streamed into directly;
* a directory: refused.

:func:`check_distinct` refuses two outputs that resolve to the same file, and an
output that resolves to the input.  A :class:`Session` opens outputs for a run that
writes them as it goes and renames the temporary files when it ends well;
:func:`write_all` writes whole outputs through one.  An error or an interrupt
removes the temporary files and replaces nothing.  A temporary file holds an ``flock`` while it is written, so a later
run into the directory tells a stale one (left by SIGKILL) from a live one and removes
it.  Errors are :class:`OutputError` (a :class:`pyebpf.errors.PcapError`) and name
the path the user gave.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from ..errors import PcapError

TEMP_SUFFIX = ".tcsim-tmp"
_PROC_FD = re.compile(r"/proc/[^/]+/(task/[^/]+/)?fd$")
_MAX_LINKS = 40                 # the kernel's MAXSYMLINKS
RENAME_EXCHANGE = 2             # include/uapi/linux/fs.h
_AT_FDCWD = -100
_renameat2 = None


class OutputError(PcapError):
    """An output that cannot be written where it was asked for; names the path given."""


@dataclass(frozen=True)
class Target:
    """One output: ``given`` (as the user wrote it, for messages), ``kind`` ("replace",
    "stream" or "stdout"), ``path`` (the file renamed onto, or opened for a stream) and
    ``key`` (what two outputs that are one file have in common)."""
    given: str
    kind: str
    path: Path
    key: tuple


def _follow(given: str) -> tuple[str, bool]:
    """(the path ``given`` names once every symlink is followed, whether a /proc fd
    link was on the way: those name open files, not paths, so are streamed into)."""
    path = os.path.abspath(given)
    for _ in range(_MAX_LINKS):
        parent = os.path.realpath(os.path.dirname(path))
        path = os.path.join(parent, os.path.basename(path))
        if _PROC_FD.match(parent):
            return path, True
        if not os.path.islink(path):
            return path, False
        path = os.path.join(parent, os.readlink(path))
    raise OutputError(f"{given}: too many levels of symbolic links")


def _stdout_key() -> tuple:
    try:
        st = os.fstat(1)
    except OSError:
        return ("stdout",)
    return (st.st_dev, st.st_ino)


def resolve(given) -> Target:
    """The :class:`Target` for an output path as given on the command line."""
    given = str(given)
    if given == "-":
        return Target(given, "stdout", Path("/dev/stdout"), _stdout_key())
    try:
        path, proc_link = _follow(given)
        st = os.stat(path)
    except FileNotFoundError:
        return Target(given, "replace", Path(path), ("path", path))
    except OSError as exc:
        raise OutputError(f"{given}: cannot be written: {exc.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise OutputError(f"{given}: is a directory")
    key = (st.st_dev, st.st_ino)
    if stat.S_ISREG(st.st_mode) and not proc_link:
        return Target(given, "replace", Path(path), key)
    return Target(given, "stream", Path(given), key)


def input_key(given) -> tuple | None:
    """What an output resolving to the input ``given`` (``-``: standard input) shares
    with it; None when it names nothing that exists."""
    try:
        st = os.fstat(0) if str(given) == "-" else os.stat(given)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def check_distinct(outputs: dict, capture=None) -> None:
    """Refuse two outputs that are one file, or an output that is the input.
    ``outputs`` maps an option name (``-o``) to its :class:`Target`; ``capture`` is
    the input as given."""
    seen = {}
    source = input_key(capture) if capture is not None else None
    for option, target in outputs.items():
        if source is not None and target.key == source:
            raise OutputError(f"{option} {target.given}: is the capture being read "
                              f"(-r {capture}); write the output elsewhere")
        if target.key in seen:
            other, first = seen[target.key]
            raise OutputError(f"{option} {target.given} and {other} {first.given} are the "
                              "same file; give each output its own")
        seen[target.key] = option, target


def remove_stale(directory: Path) -> None:
    """Remove the ``.NAME.tcsim-tmp`` files in ``directory`` that no run is writing
    (nobody holds their lock): what a killed run left behind."""
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        if not (entry.name.startswith(".") and entry.name.endswith(TEMP_SUFFIX)):
            continue
        try:
            fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                continue
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.path.samestat(os.fstat(fd), os.lstat(entry.path)):
                os.unlink(entry.path)
        except OSError:
            pass
        finally:
            os.close(fd)


def temp_path(path: Path) -> Path:
    """The temporary file an output ``path`` is written to before the rename."""
    return path.with_name(f".{path.name}{TEMP_SUFFIX}")


def _exchange(tmp: Path, path: Path) -> bool:
    """Swap the names ``tmp`` and ``path`` atomically (renameat2 RENAME_EXCHANGE);
    False where the C library or the filesystem has no such rename."""
    global _renameat2
    if _renameat2 is None:
        libc = ctypes.CDLL(None, use_errno=True)
        _renameat2 = getattr(libc, "renameat2", False)
        if _renameat2:
            _renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                                   ctypes.c_uint]
    return bool(_renameat2) and _renameat2(_AT_FDCWD, os.fsencode(tmp), _AT_FDCWD,
                                           os.fsencode(path), RENAME_EXCHANGE) == 0


def replace(tmp: Path, path: Path) -> None:
    """Put the finished temporary file ``tmp`` in the place of ``path``, atomically: a
    reader finds the old file or the new one under ``path``, never none.

    A regular file already there is not renamed over: ext4 writes out every dirty page
    of a file renamed onto another (``ext4_rename``'s ``auto_da_alloc``), which held
    tcsim for 0.25 s on a 420 MB report.  The two names are exchanged instead and the
    old file, now under ``tmp``, unlinked; it is locked meanwhile, so a run starting
    into the same output in that moment finds its temporary name taken, as while this
    run wrote.  ``os.replace`` where there is no file to lock or nothing to exchange
    with.  Raises OSError as ``os.replace``."""
    try:
        old = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        os.replace(tmp, path)
        return
    try:
        if stat.S_ISREG(os.fstat(old).st_mode):
            with contextlib.suppress(OSError):
                fcntl.flock(old, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if _exchange(tmp, path):
                    # a name left by a failed unlink is a stale one the next run removes
                    with contextlib.suppress(OSError):
                        os.unlink(tmp)
                    return
        os.replace(tmp, path)
    finally:
        os.close(old)


def _write_fd(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _create_temp(target: Target, mask: int) -> tuple[int, Path]:
    tmp = temp_path(target.path)
    try:
        target.path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale(target.path.parent)
    except OSError as exc:
        raise OutputError(f"{target.given}: cannot be written: {exc.strerror}") from None
    while True:
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            raise OutputError(f"{target.given}: cannot be written: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise OutputError(f"{target.given}: another run is writing it right now") from None
        # between the open and the lock the file is unlocked: another run's remove_stale
        # (writing into the same directory) may have unlinked it as stale; made again
        with contextlib.suppress(FileNotFoundError):
            if os.path.samestat(os.fstat(fd), os.lstat(tmp)):
                break
        os.close(fd)
    # only a leftover needs emptying: ext4 writes out at its close a file truncated to
    # 0 (ext4_truncate's auto_da_alloc, EXT4_STATE_DA_ALLOC_CLOSE), a new one included
    if os.fstat(fd).st_size:
        os.ftruncate(fd, 0)
    os.fchmod(fd, 0o666 & ~mask)
    return fd, tmp


class Session:
    """Outputs open for a run that writes them as it goes: :meth:`open` gives each
    :class:`Target` a file descriptor (a locked temporary file, or the stream itself,
    opened then; ``streamed`` lists those as given).  Leaving the ``with`` block
    normally renames every temporary file onto its target (inside ``critical()``,
    which may hold off interrupts for that short while); leaving it by an exception
    removes them and replaces nothing, and the exception's ``streamed`` lists the
    streams that may have received part of their bytes."""

    def __init__(self, critical=contextlib.nullcontext):
        self.critical = critical
        self.mask = os.umask(0)
        os.umask(self.mask)
        self.temps, self.streams, self.streamed = [], [], []

    def __enter__(self):
        return self

    def open(self, target: Target) -> int:
        if target.kind == "replace":
            fd, tmp = _create_temp(target, self.mask)
            self.temps.append((fd, tmp, target))
            return fd
        if target.kind == "stdout":
            self.streamed.append(target.given)
            return 1
        try:
            fd = os.open(target.path, os.O_WRONLY | os.O_CLOEXEC)   # a FIFO waits for a reader
        except OSError as exc:
            raise OutputError(f"{target.given}: cannot be written: {exc.strerror}") from None
        self.streams.append(fd)
        self.streamed.append(target.given)
        return fd

    def __exit__(self, kind, exc, tb):
        try:
            if exc is None:
                with self.critical():
                    while self.temps:
                        fd, tmp, target = self.temps[0]
                        try:
                            replace(tmp, target.path)
                        except OSError as err:
                            raise OutputError(f"{target.given}: cannot be written: "
                                              f"{err.strerror}") from None
                        self.temps.pop(0)
                        os.close(fd)
        except BaseException as err:
            err.streamed = self.streamed
            raise
        finally:
            for fd, tmp, _ in self.temps:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                os.close(fd)
            self.temps = []
            for fd in self.streams:
                os.close(fd)
            self.streams = []
        if exc is not None:
            exc.streamed = self.streamed
        return False


def write_error(target: Target, errno_value: int) -> OutputError:
    """The error of a failed write into ``target``."""
    if errno_value == errno.EPIPE:
        return OutputError(f"{target.given}: the reader went away (broken pipe)")
    return OutputError(f"{target.given}: cannot be written: {os.strerror(errno_value)}")


def write_all(items, critical=contextlib.nullcontext) -> None:
    """Write ``[(Target, bytes)]``: every temporary file, then the streams, then the
    renames (:class:`Session`).  Each temporary file stays locked until renamed.  On
    any error or interrupt no temporary file is left and no file replaced; a stream
    may have received part of its bytes, and the exception's ``streamed`` then lists
    the outputs (as given) it happened to."""
    items = sorted(items, key=lambda item: item[0].kind != "replace")
    with Session(critical) as session:
        for target, data in items:
            fd = session.open(target)
            try:
                _write_fd(fd, data)
            except OSError as exc:
                raise write_error(target, exc.errno) from None


