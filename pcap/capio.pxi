# Capture I/O in C for pcap/pcapio.py and tcsim: the pcap record scan, the pcap and
# pcapng writers, and picking a replay's packets for one output.  Included by
# tcreplay.pxi.  Python per packet here would be most of a tcsim command's time.

from cpython.bytes cimport PyBytes_GET_SIZE

cdef enum:
    PCAP_RECORD = 16        # ts_sec, ts_frac, caplen, len
    PCAPNG_EPB = 32         # type, length, interface, ts high, ts low, caplen, len, length
    PCAPNG_EPB_TYPE = 6


cdef inline uint32_t _rd32(const uint8_t* p, bint big) noexcept nogil:
    if big:
        return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]
    return (<uint32_t>p[3] << 24) | (<uint32_t>p[2] << 16) | (<uint32_t>p[1] << 8) | p[0]


cdef inline void _wr32(uint8_t* p, uint32_t v) noexcept nogil:
    p[0], p[1], p[2], p[3] = v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, v >> 24


def _pcap_scan(bytes buf, bint big_endian, bint nanosecond, Py_ssize_t pos,
               uint32_t max_caplen):
    """The records of a pcap file from byte ``pos``: ``(frames, ts_ns, orig_len, stop)``,
    ``stop`` the end of ``buf`` or the offset of the first record that is cut off or
    corrupt (caplen above ``max_caplen``, a fraction of a second of a second or more),
    which the caller words as an error."""
    cdef const uint8_t* p = <const uint8_t*>PyBytes_AS_STRING(buf)
    cdef Py_ssize_t end = PyBytes_GET_SIZE(buf)
    cdef uint32_t sec, frac, caplen
    cdef uint64_t scale = 1 if nanosecond else 1000
    cdef uint32_t limit = 1000000000 if nanosecond else 1000000
    cdef list frames = [], ts = [], orig = []
    while pos + PCAP_RECORD <= end:
        sec = _rd32(p + pos, big_endian)
        frac = _rd32(p + pos + 4, big_endian)
        caplen = _rd32(p + pos + 8, big_endian)
        if caplen > max_caplen or frac >= limit or pos + PCAP_RECORD + caplen > end:
            break
        frames.append(PyBytes_FromStringAndSize(<const char*>p + pos + PCAP_RECORD, caplen))
        ts.append(<uint64_t>sec * 1000000000 + frac * scale)
        orig.append(_rd32(p + pos + 12, big_endian))
        pos += PCAP_RECORD + caplen
    return frames, ts, orig, pos


def _capture_pack(bytes header, bint pcapng, bint nanosecond, list ts, list data, list wire):
    """``header`` followed by one little-endian record per packet: pcap records (micro-
    or nanosecond fractions) or pcapng enhanced packet blocks on interface 0 (its
    timestamps in nanoseconds).  ``wire`` holds each packet's length on the wire."""
    cdef Py_ssize_t n = len(data), i, total = PyBytes_GET_SIZE(header)
    cdef Py_ssize_t size
    cdef uint64_t t
    cdef uint32_t block
    cdef bytes d, out
    cdef uint8_t* w
    if len(ts) != n or len(wire) != n:
        raise ValueError("ts, data and wire must have one entry per packet")
    for i in range(n):
        size = PyBytes_GET_SIZE(<bytes?>data[i])
        total += (PCAPNG_EPB + (size + 3) // 4 * 4) if pcapng else PCAP_RECORD + size
    out = PyBytes_FromStringAndSize(NULL, total)
    w = <uint8_t*>PyBytes_AS_STRING(out)
    memcpy(w, PyBytes_AS_STRING(header), PyBytes_GET_SIZE(header))
    w += PyBytes_GET_SIZE(header)
    for i in range(n):
        d = <bytes>data[i]
        size = PyBytes_GET_SIZE(d)
        t = ts[i]
        if pcapng:
            block = <uint32_t>(PCAPNG_EPB + (size + 3) // 4 * 4)
            _wr32(w, PCAPNG_EPB_TYPE)
            _wr32(w + 4, block)
            _wr32(w + 8, 0)
            _wr32(w + 12, <uint32_t>(t >> 32))
            _wr32(w + 16, <uint32_t>t)
            _wr32(w + 20, <uint32_t>size)
            _wr32(w + 24, <uint32_t>wire[i])
            memcpy(w + 28, PyBytes_AS_STRING(d), size)
            memset(w + 28 + size, 0, block - PCAPNG_EPB - size)
            _wr32(w + block - 4, block)
            w += block
        else:
            if t // 1000000000 > 0xffffffff:
                raise ValueError(f"packet {i}: a timestamp of {t} ns is past what pcap's "
                                 "32-bit seconds hold (write pcapng)")
            _wr32(w, <uint32_t>(t // 1000000000))
            _wr32(w + 4, <uint32_t>(t % 1000000000 if nanosecond else t % 1000000000 // 1000))
            _wr32(w + 8, <uint32_t>size)
            _wr32(w + 12, <uint32_t>wire[i])
            memcpy(w + PCAP_RECORD, PyBytes_AS_STRING(d), size)
            w += PCAP_RECORD + size
    return out


def _replay_pick(bytes actions, bytes take, bytes original, list ts, list frames,
                 list orig, list data):
    """``(ts, data, wire)`` of the packets whose action byte ``a`` has ``take[a]`` set:
    the bytes the programs left, or the captured ones where ``original[a]`` is set, and
    the wire length changed by as much as the programs changed the captured bytes."""
    cdef Py_ssize_t n = PyBytes_GET_SIZE(actions), i
    cdef const uint8_t* act = <const uint8_t*>PyBytes_AS_STRING(actions)
    cdef const uint8_t* tk = <const uint8_t*>PyBytes_AS_STRING(take)
    cdef const uint8_t* og = <const uint8_t*>PyBytes_AS_STRING(original)
    cdef list out_ts = [], out_data = [], out_wire = []
    if PyBytes_GET_SIZE(take) != 256 or PyBytes_GET_SIZE(original) != 256:
        raise ValueError("take and original hold one flag per action byte (256)")
    if len(ts) < n or len(frames) < n or len(orig) < n or len(data) < n:
        raise ValueError("ts, frames, orig and data must cover every action")
    for i in range(n):
        if not tk[act[i]]:
            continue
        out_ts.append(ts[i])
        if og[act[i]]:
            out_data.append(frames[i])
            out_wire.append(orig[i])
        else:
            out_data.append(data[i])
            out_wire.append(<long>orig[i] - PyBytes_GET_SIZE(<bytes?>frames[i])
                            + PyBytes_GET_SIZE(<bytes?>data[i]))
    return out_ts, out_data, out_wire


def _pcapng_epbs(bytes buf, Py_ssize_t pos, bint big_endian, list ifaces,
                 uint32_t max_block, object cap):
    """Append to ``cap`` the packets of the enhanced packet blocks from byte ``pos`` on,
    while each is well formed, on a known Ethernet interface (``ifaces``: pcapio's
    (linktype, snaplen, units per second, offset in seconds)) whose units divide a
    second; returns the offset of the first block it leaves to pcapio (any other block,
    or one whose error pcapio words)."""
    cdef const uint8_t* p = <const uint8_t*>PyBytes_AS_STRING(buf)
    cdef Py_ssize_t end = PyBytes_GET_SIZE(buf)
    cdef uint32_t block, iface, caplen, nifaces = len(ifaces)
    cdef uint64_t t
    cdef uint64_t scale
    cdef list frames = cap.frames, ts = cap.ts, orig = cap.orig_len, where = cap.iface
    while pos + 28 <= end and _rd32(p + pos, big_endian) == PCAPNG_EPB_TYPE:
        block = _rd32(p + pos + 4, big_endian)
        if block < PCAPNG_EPB or block % 4 or block > max_block or pos + block > end \
                or _rd32(p + pos + block - 4, big_endian) != block:
            break
        iface = _rd32(p + pos + 8, big_endian)
        caplen = _rd32(p + pos + 20, big_endian)
        if iface >= nifaces or caplen > block - PCAPNG_EPB:
            break
        linktype, _, units, offset = ifaces[iface]
        if linktype != 1 or units > 1000000000 or 1000000000 % units:
            break
        scale = 1000000000 // units
        t = (<uint64_t>_rd32(p + pos + 12, big_endian) << 32) | _rd32(p + pos + 16, big_endian)
        if t > 0xffffffffffffffff // scale:
            break
        if units != 1000000:
            cap.nanosecond = True
        frames.append(PyBytes_FromStringAndSize(<const char*>p + pos + 28, caplen))
        ts.append(offset * 1000000000 + t * scale)
        orig.append(_rd32(p + pos + 24, big_endian))
        where.append(iface)
        pos += block
    return pos
