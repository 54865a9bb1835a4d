"""Reading and writing pcap and pcapng captures.

:class:`Source` reads a capture a chunk at a time (a fixed-size buffer, whatever the
capture's size; ``-`` is standard input): pcap (either byte order, micro- or
nanosecond timestamps) and pcapng (SHB, IDB, EPB, SPB and the obsolete OPB; several
interfaces and sections, either byte order, ``if_tsresol`` and ``if_tsoffset``; other
blocks are skipped).  The C scan (``tcreplay.Scanner``) finds each chunk's records;
the blocks it leaves (interfaces, sections, simple and obsolete packet blocks, and any
error) are read here.  Linktypes: Ethernet, Linux cooked (SLL, SLL2), raw IP and BSD
loopback (``LINKTYPES``); a packet of another is an error naming it.

:func:`read` returns a whole capture as a :class:`Capture` of parallel lists (its
frames as captured, in their link layer).  :func:`write` writes pcap, or pcapng for a
name ending in ``.pcapng``, as :mod:`pyebpf.pcap.outputs` decides: a regular file
through a temporary name renamed when complete, a device or FIFO streamed into, ``-``
standard output.  Errors are :class:`pyebpf.errors.PcapError` with one line naming the
file, the packet index and the byte offset.
"""
from __future__ import annotations

import itertools
import mmap
import operator
import os
import queue
import stat
import struct
import threading
from dataclasses import dataclass, field
from pathlib import Path

from . import tcreplay as _capio
from ..errors import PcapError
from . import outputs

LINKTYPE_ETHERNET = 1
LINKTYPES = _capio.LINKTYPES
PCAP_US, PCAP_NS = 0xA1B2C3D4, 0xA1B23C4D
SHB, IDB, OPB, SPB, EPB = 0x0A0D0D0A, 1, 2, 3, 6
BYTE_ORDER_MAGIC = 0x1A2B3C4D
MAX_CAPLEN = 0x40000            # 256 KiB, libpcap's MAXIMUM_SNAPLEN: beyond is corruption
MAX_BLOCK = MAX_CAPLEN + 64 * 1024
CHUNK = 4 << 20                 # bytes of capture read at a time
MAP_POPULATE = getattr(mmap, "MAP_POPULATE", 0)
READ_PIECE = 256 << 10          # of a chunk, read and scanned at a time (_ReadAhead)
KEPT_IDB_OPTIONS = (2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 15)   # all but tsresol, tsoffset


@dataclass
class Capture:
    """Packets as parallel lists: ``frames`` (captured bytes, in their interface's
    linktype), ``ts`` (nanoseconds since the epoch), ``orig_len`` (length on the wire),
    ``iface`` (pcapng interface, numbered over all sections, else 0).  ``nanosecond``:
    the file's timestamps had sub-microsecond resolution; ``linktypes``: each
    interface's (pcap: the file's one)."""
    path: str
    format: str
    frames: list = field(default_factory=list)
    ts: list = field(default_factory=list)
    orig_len: list = field(default_factory=list)
    iface: list = field(default_factory=list)
    nanosecond: bool = False
    linktypes: list = field(default_factory=list)

    def __len__(self):
        return len(self.frames)

    @property
    def truncated(self):
        """Indexes of packets captured shorter than they were on the wire."""
        return list(itertools.compress(range(len(self.frames)),
                                       map(operator.lt, map(len, self.frames), self.orig_len)))


def _unsupported(path, linktype, where=""):
    return PcapError(f"{path}: linktype {linktype}{where} is not supported: tcsim replays "
                     "Ethernet (1), Linux cooked (113, 276), raw IP (101, 12, 14) and BSD "
                     "loopback (0, 108) captures")


def _read_into(file, buf, end):
    """Read ``file`` into ``buf`` from ``end`` until it is full or the file ends:
    ``(end, at the file's end, the OSError that stopped it or None)``."""
    view = memoryview(buf)
    eof = False
    try:
        while end < len(buf):
            n = file.readinto(view[end:])
            if not n:
                eof = True
                break
            end += n
    except OSError as exc:
        return end, eof, exc
    finally:
        view.release()
    return end, eof, None


def _read_scan(file, buf, end, scanner):
    """_read_into of a regular pcap file and the scan of ``buf`` into ``scanner``, a
    piece at a time in C (Scanner.read_scan): ``(end, at the file's end, the OSError
    that stopped it or None, where the scan stopped or None)``."""
    end, eof, errno, scanned = scanner.read_scan(file.fileno(), buf, end, READ_PIECE)
    if errno:
        return end, eof, OSError(errno, os.strerror(errno)), None
    return end, eof, None, scanned


class _Job:
    """A piece of work for a Source's _Worker thread: ``_work`` runs there, and
    ``result`` waits for it and gives ``_result()`` or raises what it raised."""

    def __init__(self):
        self.failure = None
        self.finished = threading.Event()

    def run(self):
        try:
            self._work()
        except BaseException as exc:    # noqa: BLE001 - raised again by result
            self.failure = exc
        finally:
            self.finished.set()

    def result(self):
        self.finished.wait()
        if self.failure is not None:
            raise self.failure
        return self._result()


class _ReadAhead(_Job):
    """_read_into on a Source's _Worker thread (a daemon: a replay that ends early does
    not wait for a read from a pipe that may never end).  With a ``scanner`` (pcap),
    the chunk read is scanned into it there too, from its start: ``scanned`` is where
    that scan stopped (None when not scanned).  From a ``regular`` file (one
    Source.close waits for the read of), it reads and scans READ_PIECE bytes at a time
    in C (_read_scan), with the GIL released throughout, so that a replay holding the
    GIL delays neither."""

    def __init__(self, file, buf, end, scanner=None, regular=False):
        super().__init__()
        self.args, self.done = (file, buf, end), (end, True, None)
        self.scanner, self.scanned, self.regular = scanner, None, regular

    def _work(self):
        file, buf, end = self.args
        if self.scanner is not None and self.regular:
            self.scanner.clear()
            end, eof, error, self.scanned = _read_scan(file, buf, end, self.scanner)
            self.done = (end, eof, error)
            return
        try:
            self.done = _read_into(file, buf, end)
        except ValueError:
            return      # the source was closed under it (a replay ended early): unused
        end, _, error = self.done
        if self.scanner is not None and error is None:
            self.scanner.clear()
            self.scanned = self.scanner.scan(buf, 0, end)

    def _result(self):
        return self.done


class _MapAhead(_Job):
    """The window of a regular pcap file from byte ``at`` (a page's start) to at most
    ``length`` bytes on, mapped and scanned into ``scanner`` from byte ``pos`` of the
    window by a Source's _Worker thread: the mapping reads its pages in (MAP_POPULATE),
    so that the replay takes no page fault on them, and the scan runs in C with the GIL
    released.  ``window`` the mapping (None when the file ends before ``at`` or the
    mapping failed: ``error``), ``eof`` whether it reaches the file's end, ``scanned``
    where the scan stopped."""

    def __init__(self, fd, at, length, pos, scanner):
        super().__init__()
        self.args, self.scanner = (fd, at, length, pos), scanner
        self.window, self.eof, self.error, self.scanned = None, True, None, pos

    def _work(self):
        fd, at, length, pos = self.args
        try:
            size = os.fstat(fd).st_size
            length = min(length, size - at)
            if length <= pos:
                return
            self.eof = at + length >= size
            self.window = mmap.mmap(fd, length, mmap.MAP_SHARED | MAP_POPULATE,
                                    mmap.PROT_READ, offset=at)
        except OSError as exc:
            self.error = exc
            return
        self.scanner.clear()
        try:
            self.scanned = self.scanner.scan(self.window, pos, length)
        except MemoryError:
            self.scanner.clear()    # scanned again from ``pos`` on the replay's thread

    def _result(self):
        return self.window


class _Worker(threading.Thread):
    """A Source's thread that reads or maps its chunks ahead (_ReadAhead, _MapAhead),
    one at a time, for the whole replay: a chunk asked for costs the replay a queue's
    wake, not a thread's start (which waits until the new thread runs: ~5 ms a chunk
    on a loaded machine).  A daemon: a replay that ends early does not wait for a read
    from a pipe that may never end."""

    def __init__(self):
        super().__init__(daemon=True)
        self.jobs = queue.SimpleQueue()
        self.start()

    def run(self):
        while (job := self.jobs.get()) is not None:
            job.run()

    def submit(self, job):
        """``job`` run on this thread; returned."""
        self.jobs.put(job)
        return job

    def stop(self, wait):
        """End the thread after its job (``wait``: once it has ended)."""
        self.jobs.put(None)
        if wait:
            self.join()


def _unmap(window):
    """Unmap a window of a capture (left to the garbage collector while a view of it
    is held)."""
    try:
        window.close()
    except BufferError:
        pass


class Source:
    """A capture read a chunk at a time from ``path`` (``-``: standard input, named
    "stdin" in errors).  The file header is read on opening; :meth:`chunks` yields
    ``(chunk, scanner, first)``: a buffer, the :class:`tcreplay.Scanner` whose records
    point into it, and the index of its first packet.  Two buffers take turns: while
    a chunk is replayed a thread reads the next into the other (its reads release the
    GIL), so reading is off the replay's path.  A regular pcap file is not read but
    mapped, a window of the same size at a time (an ``mmap.mmap``, the chunk), the next
    mapped and scanned by the Source's one thread for it (_Worker, which reads the
    chunks of other captures) while one is replayed.  A chunk is valid until the
    next is asked for."""

    def __init__(self, path, chunk=None):
        path = str(path)
        try:
            if path == "-":
                self.path, self._file = "stdin", open(0, "rb", buffering=0, closefd=False)
            else:
                self.path, self._file = path, open(path, "rb", buffering=0)
        except OSError as exc:
            raise PcapError(f"{path}: cannot read: {exc.strerror}") from None
        self.buf = bytearray((chunk or CHUNK) + MAX_BLOCK)
        self._regular = stat.S_ISREG(os.fstat(self._file.fileno()).st_mode)
        self._ahead = self._window = None       # the read ahead; the mapped window
        self._worker = None
        self.end, self.base, self.eof, self.index = 0, 0, False, 0
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    def _start(self):
        self._fill()
        buf = self.buf
        if self.end >= 4 and buf[:4] == b"\x0a\x0d\x0d\x0a":
            self.format, self.pos, self.endian = "pcapng", 0, "<"
            self.scanner = _capio.Scanner(True, False, False, LINKTYPE_ETHERNET, MAX_CAPLEN)
            return
        self.format = "pcap"
        if self.end < 24:
            raise PcapError(f"{self.path}: truncated pcap file header ({self.end} of 24 "
                            "bytes, byte offset 0)")
        for endian in "<>":
            magic = struct.unpack_from(endian + "I", buf)[0]
            if magic in (PCAP_US, PCAP_NS):
                break
        else:
            raise PcapError(f"{self.path}: not a pcap or pcapng file (magic {buf[:4].hex()} "
                            "at byte offset 0)")
        linktype = struct.unpack_from(endian + "I", buf, 20)[0]
        if not _capio.link_supported(linktype):
            raise _unsupported(self.path, linktype)
        self.endian, self.pos = endian, 24
        self.scanner = _capio.Scanner(False, endian == ">", magic == PCAP_NS, linktype,
                                      MAX_CAPLEN)

    def close(self):
        # a read ahead of a regular file ends soon: the file is closed after it, so that
        # its descriptor is not reused under it (one of a pipe may never end)
        ahead, self._ahead = self._ahead, None
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.stop(wait=stat.S_ISREG(os.fstat(self._file.fileno()).st_mode))
        if isinstance(ahead, _MapAhead) and ahead.window is not None:
            _unmap(ahead.window)
        if self._window is not None:
            _unmap(self._window)
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def nanosecond(self):
        return self.scanner.nanosecond

    @property
    def linktype(self):
        """The linktype of a pcap file, or of a pcapng file's first interface (Ethernet
        before one is read)."""
        sc = self.scanner
        if not sc.pcapng:
            return sc.linktype
        return sc.iface_linktype(0) if sc.interfaces else LINKTYPE_ETHERNET

    def _fill(self):
        self.end, self.eof, error = _read_into(self._file, self.buf, self.end)
        if error is not None:
            raise PcapError(f"{self.path}: cannot read: {error.strerror}") from None

    def chunks(self):
        if self._worker is None:
            self._worker = _Worker()
        if self._regular and self.format == "pcap":
            # a regular pcap file is mapped a window at a time, not read: no copy of its
            # bytes, and none of a record cut by a chunk's end
            first = self._ahead = self._worker.submit(_MapAhead(
                self._file.fileno(), 0, len(self.buf), self.pos, self.scanner))
            if first.result() is not None:
                yield from self._mapped_chunks(first)
                return
            self._ahead = None      # no mapping (a filesystem without mmap): read
        sc = self.scanner
        spare = bytearray(len(self.buf))
        # a pcap chunk's records are scanned by the thread that reads it, into a
        # scanner of their own (pcapng's blocks between them are read here)
        spare_sc = (_capio.Scanner(False, sc.big, sc.nanosecond, sc.linktype, MAX_CAPLEN)
                    if self.format == "pcap" else None)
        if spare_sc is not None:
            spare_sc.hash_rss = sc.hash_rss
        scanned = None
        while True:
            if scanned is None:
                sc.clear()
                scanned = self.pos
            self.pos = self._scan(scanned)
            last = self.eof and self.pos >= self.end
            if not last:
                # the next chunk: the rest of this one's bytes, then what is read while
                # this one is replayed
                keep = self.end - self.pos
                spare[:keep] = self.buf[self.pos:self.end]
                ahead = self._ahead = _ReadAhead(self._file, spare, keep, spare_sc,
                                                 self._regular)
                if self.eof:
                    ahead.finished.set()    # nothing past the file's end to read
                else:
                    self._worker.submit(ahead)
            if sc.count:
                yield self.buf, sc, self.index
                self.index += sc.count
            if last:
                return
            self.end, self.eof, error = ahead.result()
            self._ahead = None
            if error is not None:
                raise PcapError(f"{self.path}: cannot read: {error.strerror}") from None
            self.base += self.pos
            self.buf, spare, self.pos = spare, self.buf, 0
            scanned = ahead.scanned
            if spare_sc is not None:
                sc, spare_sc = spare_sc, sc
                self.scanner = sc

    def _mapped_chunks(self, ahead):
        """chunks of a regular pcap file from ``ahead``, its first window mapped and
        scanned: each chunk is a window of the file's mapping, scanned (and the next
        window mapped) on a thread while the one before is replayed; a window is
        unmapped once the next is asked for."""
        window = ahead.window
        length = len(self.buf)
        fd = self._file.fileno()
        scanners = (ahead.scanner, _capio.Scanner(False, ahead.scanner.big,
                                                   ahead.scanner.nanosecond,
                                                   ahead.scanner.linktype, MAX_CAPLEN))
        scanners[1].hash_rss = ahead.scanner.hash_rss
        while True:
            self._ahead = None
            sc = self.scanner = ahead.scanner
            self.buf = self._window = window
            self.base, self.end, self.eof = ahead.args[1], len(window), ahead.eof
            self.pos = self._scan(ahead.scanned)
            last = self.eof and self.pos >= self.end
            if not last:
                pos = self.base + self.pos
                at = pos - pos % mmap.ALLOCATIONGRANULARITY
                ahead = self._ahead = self._worker.submit(_MapAhead(
                    fd, at, pos - at + length, pos - at, scanners[sc is scanners[0]]))
            if sc.count:
                yield window, sc, self.index
                self.index += sc.count
            if last:
                return
            got = ahead.result()
            if got is None:
                error = ahead.error or OSError(0, "the file shrank while it was read")
                raise PcapError(f"{self.path}: cannot read: {error.strerror}") from None
            _unmap(window)
            window = got

    def _scan(self, pos):
        """Scan from ``pos`` as far as whole records go; the blocks the C scan leaves
        are read here.  Returns where the next chunk starts."""
        sc, buf, end = self.scanner, self.buf, self.end
        while True:
            pos = sc.scan(buf, pos, end)
            if pos >= end:
                return pos
            if not sc.pcapng:
                if pos + 16 <= end:
                    _, frac, caplen, _ = struct.unpack_from(self.endian + "IIII", buf, pos)
                    complete = caplen > MAX_CAPLEN or pos + 16 + caplen <= end
                else:
                    complete = False
                if not complete and not self.eof:
                    return pos
                self._pcap_record_error(pos)
            if not self.eof and (pos + 12 > end or pos + self._block_length(pos) > end):
                return pos          # the rest of the block comes with the next chunk
            pos = self._pcapng_block(pos)

    def _block_length(self, pos):
        """The length of the block at ``pos`` (which holds 12 bytes); 0 when it is no
        length (the block is then an error)."""
        endian = self.endian
        if self.buf[pos:pos + 4] == b"\x0a\x0d\x0d\x0a":
            endian = ">" if self.buf[pos + 8:pos + 12] == b"\x1a\x2b\x3c\x4d" else "<"
        blen = struct.unpack_from(endian + "I", self.buf, pos + 4)[0]
        return blen if 12 <= blen <= MAX_BLOCK else 0

    def _where(self, pos):
        return f"{self.path}: packet {self.index + self.scanner.count} at byte offset " \
               f"{self.base + pos}"

    def _pcap_record_error(self, pos):
        """Raise the error of the record at ``pos``, where the scan stopped."""
        buf, end, where = self.buf, self.end, self._where(pos)
        if pos + 16 > end:
            raise PcapError(f"{where}: truncated record header ({end - pos} of 16 bytes)")
        _, frac, caplen, _ = struct.unpack_from(self.endian + "IIII", buf, pos)
        if caplen > MAX_CAPLEN or frac >= (1_000_000_000 if self.nanosecond else 1_000_000):
            raise PcapError(f"{where}: corrupt record header (caplen {caplen}, fraction "
                            f"{frac})")
        raise PcapError(f"{where}: truncated packet data ({end - pos - 16} of {caplen} "
                        "bytes)")

    def _pcapng_block(self, pos):
        """Read the block at ``pos`` (or raise its error); returns the next one's."""
        buf, end, sc, where = self.buf, self.end, self.scanner, self._where(pos)
        if pos + 12 > end:
            raise PcapError(f"{where}: truncated block header ({end - pos} of 12 bytes)")
        if buf[pos:pos + 4] == b"\x0a\x0d\x0d\x0a":
            for endian in "<>":
                if struct.unpack_from(endian + "I", buf, pos + 8)[0] == BYTE_ORDER_MAGIC:
                    break
            else:
                raise PcapError(f"{where}: corrupt section header (byte-order magic "
                                f"{buf[pos + 8:pos + 12].hex()})")
            self.endian = endian
            sc.big = endian == ">"
            sc.section_base = sc.interfaces
        endian = self.endian
        btype, blen = struct.unpack_from(endian + "II", buf, pos)
        if blen < 12 or blen % 4 or blen > MAX_BLOCK:
            raise PcapError(f"{where}: corrupt block (type {btype:#x}, length {blen})")
        if pos + blen > end:
            raise PcapError(f"{where}: truncated block (type {btype:#x}: {end - pos} of "
                            f"{blen} bytes)")
        if struct.unpack_from(endian + "I", buf, pos + blen - 4)[0] != blen:
            raise PcapError(f"{where}: corrupt block (type {btype:#x}): the trailing length "
                            "does not match")
        body, bend = pos + 8, pos + blen - 4
        if btype == IDB:
            if bend - body < 8:
                raise PcapError(f"{where}: corrupt interface block ({bend - body} bytes)")
            linktype, _, snaplen = struct.unpack_from(endian + "HHI", buf, body)
            opts, kept = _options(buf, body + 8, bend, endian)
            units, offset = 1_000_000, 0
            if 9 in opts and opts[9]:
                r = opts[9][0]
                units = 2 ** (r & 0x7F) if r & 0x80 else 10 ** r
            if 14 in opts and len(opts[14]) == 8:
                offset = struct.unpack(endian + "q", opts[14])[0]
            sc.add_iface(linktype, snaplen, units, offset, kept)
        elif btype in (EPB, OPB, SPB):
            opt_off = opt_len = 0
            if btype == SPB:
                iface, hi, lo = 0, 0, 0
                if bend - body < 4:
                    raise PcapError(f"{where}: corrupt simple packet block")
                wire = struct.unpack_from(endian + "I", buf, body)[0]
                data = body + 4
                caplen = min(wire, bend - data)
                if sc.interfaces > sc.section_base and sc.iface(sc.section_base)[1]:
                    caplen = min(caplen, sc.iface(sc.section_base)[1])
            else:
                if bend - body < 20:
                    raise PcapError(f"{where}: corrupt packet block ({bend - body} bytes)")
                if btype == EPB:
                    iface, hi, lo, caplen, wire = struct.unpack_from(endian + "IIIII", buf, body)
                else:
                    iface, _, hi, lo, caplen, wire = struct.unpack_from(endian + "HHIIII", buf,
                                                                        body)
                data = body + 20
                if data + caplen > bend:
                    raise PcapError(f"{where}: corrupt packet block (caplen {caplen} exceeds "
                                    f"the block's {bend - data} data bytes)")
                if btype == EPB:
                    opt_off = data + (caplen + 3) // 4 * 4
                    opt_len = max(0, bend - opt_off)
            if sc.section_base + iface >= sc.interfaces:
                raise PcapError(f"{where}: packet on interface {iface}, which no interface "
                                "block describes")
            linktype, _, units, offset = sc.iface(sc.section_base + iface)
            if not _capio.link_supported(linktype):
                raise _unsupported(self.path, linktype, f" (interface {iface})")
            t = (hi << 32) | lo
            sc.add_record(data, caplen, wire, sc.section_base + iface,
                          offset * 1_000_000_000 + t * 1_000_000_000 // units, opt_off, opt_len)
        return pos + blen


def read(path) -> Capture:
    """The whole capture at ``path`` (``-``: standard input, named "stdin" in errors)."""
    with Source(path) as src:
        cap = Capture(src.path, src.format)
        for chunk, sc, _ in src.chunks():
            for column, values in zip((cap.frames, cap.ts, cap.orig_len, cap.iface),
                                      sc.packets(chunk)):
                column.extend(values)
        sc = src.scanner
        cap.nanosecond = sc.nanosecond
        cap.linktypes = ([sc.iface_linktype(k) for k in range(sc.interfaces)] if sc.pcapng
                         else [sc.linktype])
    return cap


def _options(buf, pos, end, endian):
    """({code: value} of a block's options from ``pos`` to ``end`` (first value wins),
    the options other than if_tsresol and if_tsoffset as bytes, little-endian)."""
    out, kept = {}, bytearray()
    while pos + 4 <= end:
        code, length = struct.unpack_from(endian + "HH", buf, pos)
        if code == 0:
            break
        value = bytes(buf[pos + 4:pos + 4 + length])
        out.setdefault(code, value)
        if code in KEPT_IDB_OPTIONS and (endian == "<" or code in (2, 3, 5, 6, 12)):
            # kept as they are: text, or numbers already in the output's byte order
            kept += struct.pack("<HH", code, length) + value + bytes(-length % 4)
        pos += 4 + (length + 3) // 4 * 4
    return out, bytes(kept)


def _columns(records):
    ts, data, wire = [], [], []
    for column, values in zip((ts, data, wire), zip(*records)):
        column.extend(values)
    return ts, data, wire


def pcap_bytes(records, nanosecond=False):
    """A pcap file (little-endian, LINKTYPE_ETHERNET) of ``(ts_ns, data, orig_len)``."""
    return packets_bytes(*_columns(records), nanosecond=nanosecond)


def pcapng_bytes(records):
    """A pcapng file (one section, one Ethernet interface with nanosecond timestamps)."""
    return packets_bytes(*_columns(records), pcapng=True)


def packets_bytes(ts, data, wire, *, nanosecond=False, pcapng=False,
                  linktype=LINKTYPE_ETHERNET):
    """A pcap (or pcapng: one section, one interface with nanosecond timestamps) file
    of ``linktype`` from parallel lists: timestamps in nanoseconds, the bytes, the
    lengths on the wire."""
    if not (len(ts) == len(data) == len(wire)):
        raise ValueError("ts, data and wire must have one entry per packet")
    w = _capio.CaptureWriter(-1, pcapng, nanosecond, linktype)
    for i, (t, d, n) in enumerate(zip(ts, data, wire)):
        try:
            w.packet(t, d, n)
        except ValueError as exc:
            raise ValueError(f"packet {i}: {exc}") from None
    return w.take()


def write(path, records, nanosecond=False):
    """Write ``(ts_ns, data, orig_len)`` records as pcap (pcapng when ``path`` ends in
    .pcapng); a regular file atomically."""
    path = Path(path)
    write_files({path: pcapng_bytes(records) if path.suffix == ".pcapng"
                 else pcap_bytes(records, nanosecond)})


def write_files(files: dict):
    """Write every ``{path: bytes}`` (:func:`pyebpf.pcap.outputs.write_all`): regular
    files under a temporary name, renamed when all are written; an error leaves no
    partial file and replaces no existing one."""
    outputs.write_all([(outputs.resolve(path), data) for path, data in files.items()])
