"""pcap and pcapng reading and writing (pyebpf.pcap.pcapio), with dpkt as the judge."""
import errno
import io
import os
import struct
import threading

import dpkt
import pytest

from pyebpf.errors import PcapError
from pyebpf.pcap import pcapio

FRAMES = [bytes(range(k, k + 60)) for k in range(0, 150, 50)] + [bytes(14), bytes(1514)]
TS_NS = [1_700_000_000_123_456_789, 1_700_000_001_000_000_001, 5, 1_700_000_002_999_999_999,
         1_800_000_000_000_000_000]


def _dpkt_pcap(endian, nano):
    """A pcap file written field by field in ``endian`` order (dpkt writes one order)."""
    magic = pcapio.PCAP_NS if nano else pcapio.PCAP_US
    out = [struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, 65535, 1)]
    for ts, frame in zip(TS_NS, FRAMES):
        sec, ns = divmod(ts, 10**9)
        out.append(struct.pack(endian + "IIII", sec, ns if nano else ns // 1000, len(frame),
                               len(frame)) + frame)
    return b"".join(out)


@pytest.mark.parametrize("nano", [False, True], ids=["microseconds", "nanoseconds"])
@pytest.mark.parametrize("endian", ["<", ">"], ids=["little-endian", "big-endian"])
def test_pcap_reads_what_dpkt_reads(tmp_path, endian, nano):
    raw = _dpkt_pcap(endian, nano)
    (tmp_path / "in.pcap").write_bytes(raw)
    cap = pcapio.read(tmp_path / "in.pcap")
    theirs = list(dpkt.pcap.Reader(io.BytesIO(raw)))
    assert cap.frames == [bytes(b) for _, b in theirs]
    want = [t if nano else t // 1000 * 1000 for t in TS_NS]
    assert cap.ts == want
    assert cap.nanosecond == nano
    # dpkt gives float seconds: equal within a float's precision
    assert all(abs(t / 1e9 - float(ts)) < 1e-6 for t, (ts, _) in zip(cap.ts, theirs))


@pytest.mark.parametrize("nano", [False, True], ids=["microseconds", "nanoseconds"])
def test_pcap_writer_output_is_read_by_dpkt_with_the_same_frames_and_times(tmp_path, nano):
    ts = [t if nano else t // 1000 * 1000 for t in TS_NS]
    pcapio.write(tmp_path / "out.pcap", list(zip(ts, FRAMES, map(len, FRAMES))), nano)
    reader = dpkt.pcap.Reader(io.BytesIO((tmp_path / "out.pcap").read_bytes()))
    assert reader.datalink() == dpkt.pcap.DLT_EN10MB
    got = list(reader)
    assert [bytes(b) for _, b in got] == FRAMES
    assert pcapio.read(tmp_path / "out.pcap").ts == ts


def test_pcap_round_trip_keeps_the_wire_length_of_short_captures(tmp_path):
    pcapio.write(tmp_path / "t.pcap", [(10**9, FRAMES[0][:20], 60)])
    cap = pcapio.read(tmp_path / "t.pcap")
    assert (cap.frames, cap.orig_len, cap.truncated) == ([FRAMES[0][:20]], [60], [0])


def test_pcapng_writer_output_is_read_by_dpkt(tmp_path):
    pcapio.write(tmp_path / "out.pcapng", list(zip(TS_NS, FRAMES, map(len, FRAMES))))
    reader = dpkt.pcapng.Reader(io.BytesIO((tmp_path / "out.pcapng").read_bytes()))
    got = list(reader)
    assert [bytes(b) for _, b in got] == FRAMES
    assert all(abs(ts - t / 1e9) < 1e-6 for (ts, _), t in zip(got, TS_NS))
    assert pcapio.read(tmp_path / "out.pcapng").ts == TS_NS


def test_pcapng_written_by_dpkt_is_read(tmp_path):
    buf = io.BytesIO()
    w = dpkt.pcapng.Writer(buf)
    for k, frame in enumerate(FRAMES):
        w.writepkt(frame, ts=1_700_000_000 + k)
    cap = pcapio.read(_put(tmp_path, buf.getvalue()))
    assert cap.frames == FRAMES
    assert cap.ts == [(1_700_000_000 + k) * 10**9 for k in range(len(FRAMES))]


def _block(endian, btype, body):
    body += b"\0" * (-len(body) % 4)
    n = len(body) + 12
    return struct.pack(endian + "II", btype, n) + body + struct.pack(endian + "I", n)


def _opt(endian, code, value):
    return struct.pack(endian + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def _multi_interface(endian):
    """Two interfaces (microsecond and 2^-10 s resolution, the second with a 100 s
    offset), an EPB on each, an SPB and an OPB, and an NRB to skip."""
    shb = struct.pack(endian + "IHHq", pcapio.BYTE_ORDER_MAGIC, 1, 0, -1)
    idb0 = struct.pack(endian + "HHI", 1, 0, 0)
    idb1 = struct.pack(endian + "HHI", 1, 0, 0) + _opt(endian, 9, b"\x8a") + \
        _opt(endian, 14, struct.pack(endian + "q", 100)) + _opt(endian, 0, b"")

    def epb(iface, t, frame, wire=None):
        return struct.pack(endian + "IIIII", iface, t >> 32, t & 0xFFFFFFFF, len(frame),
                           wire or len(frame)) + frame

    return b"".join([
        _block(endian, pcapio.SHB, shb), _block(endian, pcapio.IDB, idb0),
        _block(endian, pcapio.IDB, idb1),
        _block(endian, pcapio.EPB, epb(0, 1_700_000_000_000_001, FRAMES[0])),
        _block(endian, 4, b"\0" * 8),
        _block(endian, pcapio.EPB, epb(1, 3 * 1024 + 512, FRAMES[1], 100)),
        _block(endian, pcapio.SPB, struct.pack(endian + "I", len(FRAMES[2])) + FRAMES[2]),
        _block(endian, pcapio.OPB, struct.pack(endian + "HHIIII", 1, 0, 0, 1024,
                                               len(FRAMES[3]), len(FRAMES[3])) + FRAMES[3]),
    ])


@pytest.mark.parametrize("endian", ["<", ">"], ids=["little-endian", "big-endian"])
def test_pcapng_with_several_interfaces_and_every_packet_block(tmp_path, endian):
    raw = _multi_interface(endian)
    cap = pcapio.read(_put(tmp_path, raw, "m.pcapng"))
    assert cap.frames == FRAMES[:4]
    assert cap.iface == [0, 1, 0, 1]
    assert cap.ts == [1_700_000_000_000_001_000, 103_500_000_000, 0, 101_000_000_000]
    assert cap.orig_len == [60, 100, 60, 14]
    assert cap.nanosecond


def test_pcapng_packet_bytes_of_several_interfaces_match_dpkt(tmp_path):
    """dpkt judges the enhanced packet blocks' bytes (its reader applies the first
    interface's resolution to every packet, so the times are checked above)."""
    raw = _multi_interface("<")
    assert pcapio.read(_put(tmp_path, raw, "m.pcapng")).frames[:2] == \
        [bytes(b) for _, b in list(dpkt.pcapng.Reader(io.BytesIO(raw)))[:2]]


def _put(tmp_path, raw, name="f.pcap"):
    path = tmp_path / name
    path.write_bytes(raw)
    return path


def _pcap(frames=FRAMES[:3], linktype=1):
    buf = io.BytesIO()
    w = dpkt.pcap.Writer(buf, linktype=linktype)
    for k, f in enumerate(frames):
        w.writepkt(f, ts=k)
    return buf.getvalue()


@pytest.mark.parametrize("cut, message", [
    (10, "truncated pcap file header (10 of 24 bytes, byte offset 0)"),
    (24 + 7, "packet 0 at byte offset 24: truncated record header (7 of 16 bytes)"),
    (24 + 16 + 60 + 16 + 30, "packet 1 at byte offset 100: truncated packet data "
                             "(30 of 60 bytes)"),
], ids=["file-header", "record-header", "record-data"])
def test_a_truncated_pcap_is_one_error_naming_file_packet_and_offset(tmp_path, cut, message):
    path = _put(tmp_path, _pcap()[:cut])
    with pytest.raises(PcapError) as exc:
        pcapio.read(path)
    assert str(exc.value) == f"{path}: {message}"


def test_a_corrupt_record_length_is_an_error_with_its_offset(tmp_path):
    raw = bytearray(_pcap())
    struct.pack_into("<I", raw, 24 + 16 + 60 + 8, 0x7FFFFFFF)
    with pytest.raises(PcapError, match=r"packet 1 at byte offset 100: corrupt record header"):
        pcapio.read(_put(tmp_path, bytes(raw)))


@pytest.mark.parametrize("linktype", [105, 127, 147], ids=["802.11", "radiotap", "user0"])
def test_a_pcap_of_another_linktype_is_refused_naming_it(tmp_path, linktype):
    path = _put(tmp_path, _pcap(linktype=linktype))
    with pytest.raises(PcapError, match=rf"^{path}: linktype {linktype} is not supported"):
        pcapio.read(path)


def test_a_pcapng_interface_of_another_linktype_is_refused_naming_it(tmp_path):
    buf = io.BytesIO()
    dpkt.pcapng.Writer(buf, linktype=105).writepkt(FRAMES[0], ts=1)
    path = _put(tmp_path, buf.getvalue(), "x.pcapng")
    with pytest.raises(PcapError, match=rf"^{path}: linktype 105 \(interface 0\)"):
        pcapio.read(path)


def test_a_truncated_pcapng_block_names_the_packet_and_offset(tmp_path):
    raw = _multi_interface("<")
    cut = len(raw) - 10
    path = _put(tmp_path, raw[:cut], "t.pcapng")
    start = len(raw) - len(_block("<", pcapio.OPB, bytes(20) + FRAMES[3]))
    with pytest.raises(PcapError, match=rf"packet 3 at byte offset {start}: truncated block"):
        pcapio.read(path)


def test_a_file_that_is_no_capture_is_refused(tmp_path):
    with pytest.raises(PcapError, match="not a pcap or pcapng file"):
        pcapio.read(_put(tmp_path, b"hello, this is not a capture file"))


def test_a_failed_write_leaves_existing_files_and_no_temporary_ones(tmp_path):
    good, other = tmp_path / "keep.pcap", tmp_path / "other.pcap"
    good.write_bytes(b"good")
    with pytest.raises(TypeError):
        pcapio.write_files({good: b"new contents", other: 12345})
    assert good.read_bytes() == b"good"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.pcap"]


class _LoggedFile:
    """A Source's file that logs its reads and its closing; ``fileno`` (what close
    asks first) lets the held read ahead go."""

    def __init__(self, file, log, go):
        self.file, self.log, self.go = file, log, go

    def readinto(self, view):
        self.log.append("read")
        return self.file.readinto(view)

    def fileno(self):
        self.go.set()
        return self.file.fileno()

    def close(self):
        self.log.append("close")
        self.file.close()


def _refuse_mapping(monkeypatch):
    """mmap refused, as by a filesystem without it: a regular pcap file is read."""
    def refused(*args, **kwargs):
        raise OSError(errno.ENODEV, os.strerror(errno.ENODEV))
    monkeypatch.setattr(pcapio.mmap, "mmap", refused)


def test_closing_a_source_waits_for_its_read_ahead_of_a_regular_file(tmp_path, monkeypatch):
    frames = [bytes([k % 256]) * 1000 for k in range(1000)]     # past the first read
    pcapio.write(tmp_path / "in.pcap", [(10**9 + k, f, len(f)) for k, f in enumerate(frames)])
    _refuse_mapping(monkeypatch)
    src = pcapio.Source(tmp_path / "in.pcap", chunk=4096)
    log, go = [], threading.Event()
    read_scan = pcapio._read_scan

    def held(file, buf, end, scanner):      # the read ahead starts once close has begun
        go.wait()
        got = read_scan(file, buf, end, scanner)
        log.append("read")
        return got

    monkeypatch.setattr(pcapio, "_read_scan", held)
    src._file = _LoggedFile(src._file, log, go)
    chunks = src.chunks()
    next(chunks)
    ahead = src._ahead
    src.close()
    assert (log[0], log[-1], ahead.finished.is_set()) == ("read", "close", True)
    assert ahead.done[0] > 0 and ahead.done[2] is None      # the read ran to its end
    chunks.close()


def test_a_regular_pcap_file_is_replayed_from_windows_of_its_mapping_unmapped_in_turn(
        tmp_path):
    frames = [bytes([k % 256]) * 1000 for k in range(1000)]
    pcapio.write(tmp_path / "in.pcap", [(10**9 + k, f, len(f)) for k, f in enumerate(frames)])
    with pcapio.Source(tmp_path / "in.pcap", chunk=4096) as src:
        chunks = src.chunks()
        first, _, _ = next(chunks)
        second, _, _ = next(chunks)
        assert (type(first), first.closed, second.closed) == (pcapio.mmap.mmap, True, False)
        chunks.close()
    assert second.closed


def test_closing_a_source_waits_for_its_mapping_ahead_and_unmaps_it(tmp_path):
    frames = [bytes([k % 256]) * 1000 for k in range(1000)]
    pcapio.write(tmp_path / "in.pcap", [(10**9 + k, f, len(f)) for k, f in enumerate(frames)])
    src = pcapio.Source(tmp_path / "in.pcap", chunk=4096)
    chunks = src.chunks()
    next(chunks)
    ahead, worker = src._ahead, src._worker
    src.close()
    assert (ahead.finished.is_set(), ahead.window.closed, worker.is_alive()) == \
        (True, True, False)
    chunks.close()


@pytest.mark.parametrize("ahead", ["mapped", "read"])
def test_one_thread_takes_every_chunk_of_a_source_ahead(tmp_path, monkeypatch, ahead):
    frames = [bytes([k % 256]) * 1000 for k in range(1000)]
    pcapio.write(tmp_path / "in.pcap", [(10**9 + k, f, len(f)) for k, f in enumerate(frames)])
    if ahead == "read":
        _refuse_mapping(monkeypatch)
    job = pcapio._MapAhead if ahead == "mapped" else pcapio._ReadAhead
    threads, run = [], job.run

    def logged(self):
        threads.append(threading.get_native_id())
        run(self)

    monkeypatch.setattr(job, "run", logged)
    with pcapio.Source(tmp_path / "in.pcap", chunk=4096) as src:
        chunks = len(list(src.chunks()))
    assert (chunks > 3, len(threads) >= chunks - 1, len(set(threads))) == (True, True, 1)


def _chunked(path, chunk):
    """(frames, times) of a capture read ``chunk`` bytes at a time."""
    frames, ts = [], []
    with pcapio.Source(path, chunk=chunk) as src:
        for data, sc, first in src.chunks():
            assert first == len(frames)
            got_frames, got_ts, _, _ = sc.packets(data)
            frames += got_frames
            ts += got_ts
    return frames, ts


@pytest.fixture(params=["mapped", "whole", "pieces"])
def read_pieces(request, monkeypatch):
    """A chunk is a window of the file's mapping; or (mmap refused) the read ahead reads
    it in one read(2), or in pieces of 1,000 bytes (most records straddle two),
    scanning after each."""
    if request.param != "mapped":
        _refuse_mapping(monkeypatch)
    if request.param == "pieces":
        monkeypatch.setattr(pcapio, "READ_PIECE", 1000)


def test_a_pcap_read_in_chunks_scanned_as_they_are_read_gives_every_record_once(
        tmp_path, read_pieces):
    # records cut by every chunk's end: the rest of one starts the next chunk, whose
    # records the thread that read it scans
    frames = [bytes([k % 256]) * (60 + k * 37 % 1400) for k in range(2000)]
    pcapio.write(tmp_path / "in.pcap", [(10**9 + k, f, len(f)) for k, f in enumerate(frames)])
    assert _chunked(tmp_path / "in.pcap", 4096) == (frames, [10**9 + k // 1000 * 1000
                                                             for k in range(2000)])


def test_a_corrupt_record_in_a_later_chunk_is_an_error_naming_it(tmp_path, read_pieces):
    frames = [bytes(100)] * 500
    raw = bytearray(pcapio.packets_bytes([k * 1000 for k in range(500)], frames,
                                         [100] * 500))
    at = 24 + 400 * 116
    struct.pack_into("<I", raw, at + 8, 0x7FFFFFFF)
    path = _put(tmp_path, bytes(raw))
    with pytest.raises(PcapError) as exc:
        _chunked(path, 4096)
    assert str(exc.value).startswith(f"{path}: packet 400 at byte offset {at}: corrupt "
                                     "record header")
