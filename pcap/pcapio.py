"""Reading and writing pcap and pcapng captures of Ethernet frames.

:func:`read` takes pcap (either byte order, micro- or nanosecond timestamps) and pcapng
(SHB, IDB, EPB, SPB and the obsolete OPB; several interfaces and sections, either byte
order; other blocks are skipped) and returns a :class:`Capture` of parallel lists;
``-`` reads standard input.  :func:`write` writes pcap, or pcapng for a name ending in
``.pcapng``, as :mod:`pyebpf.pcap.outputs` decides: a regular file through a
temporary name renamed when complete, a device or FIFO streamed into, ``-`` standard
output.  Errors are :class:`pyebpf.errors.PcapError` with one line naming the file,
the packet index and the byte offset.
"""
from __future__ import annotations

import itertools
import operator
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path

from . import tcreplay as _capio
from ..errors import PcapError
from . import outputs

LINKTYPE_ETHERNET = 1
PCAP_US, PCAP_NS = 0xA1B2C3D4, 0xA1B23C4D
SHB, IDB, OPB, SPB, EPB = 0x0A0D0D0A, 1, 2, 3, 6
BYTE_ORDER_MAGIC = 0x1A2B3C4D
MAX_CAPLEN = 0x40000            # 256 KiB, libpcap's MAXIMUM_SNAPLEN: beyond is corruption


@dataclass
class Capture:
    """Packets as parallel lists: ``frames`` (captured bytes), ``ts`` (nanoseconds since
    the epoch), ``orig_len`` (length on the wire), ``iface`` (pcapng interface, else 0).
    ``nanosecond``: the file's timestamps had sub-microsecond resolution."""
    path: str
    format: str
    frames: list = field(default_factory=list)
    ts: list = field(default_factory=list)
    orig_len: list = field(default_factory=list)
    iface: list = field(default_factory=list)
    nanosecond: bool = False

    def __len__(self):
        return len(self.frames)

    @property
    def truncated(self):
        """Indexes of packets captured shorter than they were on the wire."""
        return list(itertools.compress(range(len(self.frames)),
                                       map(operator.lt, map(len, self.frames), self.orig_len)))


def read(path) -> Capture:
    """The capture at ``path`` (``-``: standard input, named "stdin" in errors)."""
    path = str(path)
    try:
        if path == "-":
            path = "stdin"
            buf = sys.stdin.buffer.read()
        else:
            with open(path, "rb") as f:
                buf = f.read()
    except OSError as exc:
        raise PcapError(f"{path}: cannot read: {exc.strerror}") from None
    if len(buf) >= 4 and buf[:4] == b"\x0a\x0d\x0d\x0a":
        return _read_pcapng(path, buf)
    return _read_pcap(path, buf)


def _read_pcap(path, buf):
    if len(buf) < 24:
        raise PcapError(f"{path}: truncated pcap file header ({len(buf)} of 24 bytes, "
                        "byte offset 0)")
    for endian in "<>":
        magic = struct.unpack_from(endian + "I", buf)[0]
        if magic in (PCAP_US, PCAP_NS):
            break
    else:
        raise PcapError(f"{path}: not a pcap or pcapng file (magic {buf[:4].hex()} at byte "
                        "offset 0)")
    linktype = struct.unpack_from(endian + "I", buf, 20)[0]
    if linktype != LINKTYPE_ETHERNET:
        raise PcapError(f"{path}: linktype {linktype} is not supported: tcsim replays "
                        "LINKTYPE_ETHERNET (1) captures only")
    ns = magic == PCAP_NS
    cap = Capture(path, "pcap", nanosecond=ns)
    cap.frames, cap.ts, cap.orig_len, pos = _capio._pcap_scan(buf, endian == ">", ns, 24,
                                                            MAX_CAPLEN)
    if pos < len(buf):
        _pcap_record_error(path, buf, pos, len(cap.frames), endian, ns)
    cap.iface = [0] * len(cap.frames)
    return cap


def _pcap_record_error(path, buf, pos, index, endian, ns):
    """Raise the error of the record at ``pos``, where the scan stopped."""
    end = len(buf)
    where = f"{path}: packet {index} at byte offset {pos}"
    if pos + 16 > end:
        raise PcapError(f"{where}: truncated record header ({end - pos} of 16 bytes)")
    _, frac, caplen, _ = struct.unpack_from(endian + "IIII", buf, pos)
    if caplen > MAX_CAPLEN or frac >= (1_000_000_000 if ns else 1_000_000):
        raise PcapError(f"{where}: corrupt record header (caplen {caplen}, fraction {frac})")
    raise PcapError(f"{where}: truncated packet data ({end - pos - 16} of {caplen} bytes)")


def _options(buf, pos, end, endian):
    """{code: value} of a block's options from ``pos`` to ``end`` (first value wins)."""
    out = {}
    while pos + 4 <= end:
        code, length = struct.unpack_from(endian + "HH", buf, pos)
        if code == 0:
            break
        out.setdefault(code, buf[pos + 4:pos + 4 + length])
        pos += 4 + (length + 3) // 4 * 4
    return out


def _read_pcapng(path, buf):
    cap = Capture(path, "pcapng")
    end, pos = len(buf), 0
    endian, ifaces = "<", []
    while pos < end:
        # runs of well-formed packet blocks in C; the rest, and every error, here
        pos = _capio._pcapng_epbs(buf, pos, endian == ">", ifaces, MAX_CAPLEN + 64 * 1024, cap)
        if pos >= end:
            break
        index = len(cap.frames)
        where = f"{path}: packet {index} at byte offset {pos}"
        if pos + 12 > end:
            raise PcapError(f"{where}: truncated block header ({end - pos} of 12 bytes)")
        if buf[pos:pos + 4] == b"\x0a\x0d\x0d\x0a":
            if pos + 12 > end:
                raise PcapError(f"{where}: truncated section header")
            for endian in "<>":
                if struct.unpack_from(endian + "I", buf, pos + 8)[0] == BYTE_ORDER_MAGIC:
                    break
            else:
                raise PcapError(f"{where}: corrupt section header (byte-order magic "
                                f"{buf[pos + 8:pos + 12].hex()})")
            ifaces = []
        btype, blen = struct.unpack_from(endian + "II", buf, pos)
        if blen < 12 or blen % 4 or blen > MAX_CAPLEN + 64 * 1024:
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
            opts = _options(buf, body + 8, bend, endian)
            units, offset = 1_000_000, 0
            if 9 in opts and opts[9]:
                r = opts[9][0]
                units = 2 ** (r & 0x7F) if r & 0x80 else 10 ** r
            if 14 in opts and len(opts[14]) == 8:
                offset = struct.unpack(endian + "q", opts[14])[0]
            ifaces.append((linktype, snaplen, units, offset))
        elif btype in (EPB, OPB, SPB):
            if btype == SPB:
                iface, hi, lo = 0, 0, 0
                if bend - body < 4:
                    raise PcapError(f"{where}: corrupt simple packet block")
                wire = struct.unpack_from(endian + "I", buf, body)[0]
                data = body + 4
                caplen = min(wire, bend - data)
                if ifaces and ifaces[0][1]:
                    caplen = min(caplen, ifaces[0][1])
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
            if iface >= len(ifaces):
                raise PcapError(f"{where}: packet on interface {iface}, which no interface "
                                "block describes")
            linktype, _, units, offset = ifaces[iface]
            if linktype != LINKTYPE_ETHERNET:
                raise PcapError(f"{path}: linktype {linktype} (interface {iface}) is not "
                                "supported: tcsim replays LINKTYPE_ETHERNET (1) captures only")
            t = (hi << 32) | lo
            if units != 1_000_000:
                cap.nanosecond = True
            cap.frames.append(buf[data:data + caplen])
            cap.ts.append(offset * 1_000_000_000 + t * 1_000_000_000 // units)
            cap.orig_len.append(wire)
            cap.iface.append(iface)
        pos += blen
    return cap


def _pcap_header(nanosecond):
    return struct.pack("<IHHiIII", PCAP_NS if nanosecond else PCAP_US, 2, 4, 0, 0,
                       MAX_CAPLEN, LINKTYPE_ETHERNET)


def _pcapng_header():
    """A section header and one Ethernet interface with nanosecond timestamps."""
    shb = struct.pack("<IIIHHqI", SHB, 28, BYTE_ORDER_MAGIC, 1, 0, -1, 28)
    idb_opts = struct.pack("<HHB3x", 9, 1, 9) + struct.pack("<HH", 0, 0)
    idb_len = 20 + len(idb_opts)
    return shb + struct.pack("<IIHHI", IDB, idb_len, LINKTYPE_ETHERNET, 0, 0) + idb_opts + \
        struct.pack("<I", idb_len)


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


def packets_bytes(ts, data, wire, *, nanosecond=False, pcapng=False):
    """A pcap (or pcapng) file of parallel lists: timestamps in nanoseconds, the bytes,
    the lengths on the wire."""
    header = _pcapng_header() if pcapng else _pcap_header(nanosecond)
    return _capio._capture_pack(header, pcapng, nanosecond, ts, data, wire)


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
