# The annotated pcapng of tcsim --annotated, written in C as the replay loop goes:
# every packet as it came in (interface 0, "in") and as it went out
# (interface 1, "out"), each with a comment naming its outcome and the header fields the
# programs changed, found by a small dissector of Ethernet, VLAN, IPv4, IPv6, TCP, UDP
# and ICMP headers.  Included by tcreplay.pyx (after TcOutcome and capio.pxi's Writer).

from libc.stdio cimport snprintf
from libc.string cimport strcmp

cdef enum:
    FMT_DEC = 0
    FMT_HEX = 1
    FMT_MAC = 2
    FMT_IP4 = 3
    FMT_IP6 = 4
    MAX_FIELDS = 48
    MAX_COMMENT = 65532     # an option's length is 16 bits (padded to 4)
    EPB_INBOUND = 1         # epb_flags direction bits (pcapng: 01 inbound, 10 outbound)
    EPB_OUTBOUND = 2

ctypedef struct HdrField:
    const char* name
    uint32_t off
    uint32_t len
    int fmt

ctypedef struct Buf:
    char* p
    size_t len
    size_t cap

# What a comment needs besides the packet, as C data: the replay threads (tcsim --cpus N)
# write the annotated blocks of packets without extras.
ctypedef struct AnnSpec:
    bint sf
    uint32_t mark, priority, classid
    const char** names      # the chain's programs (Annotator.programs keeps them)
    size_t* name_lens


cdef bint _grow(Buf* b, size_t more) noexcept nogil:
    cdef size_t cap = b.cap or 4096
    cdef char* p
    if b.len + more <= b.cap:
        return True
    while cap < b.len + more:
        cap *= 2
    p = <char*>realloc(b.p, cap)
    if p == NULL:
        return False
    b.p, b.cap = p, cap
    return True


cdef bint _put(Buf* b, const void* src, size_t n) noexcept nogil:
    if not _grow(b, n):
        return False
    memcpy(b.p + b.len, src, n)
    b.len += n
    return True


cdef bint _put32(Buf* b, uint32_t v) noexcept nogil:
    cdef uint8_t w[4]
    _wr32(w, v)
    return _put(b, w, 4)


cdef bint _pad4(Buf* b) noexcept nogil:
    cdef uint8_t zero[4]
    memset(zero, 0, 4)
    return _put(b, zero, (4 - b.len % 4) % 4)


cdef bint _text(Buf* b, const char* s) noexcept nogil:
    return _put(b, s, strlen(s))


cdef int _field(HdrField* f, int k, const char* name, uint32_t off, uint32_t n,
                int fmt) noexcept nogil:
    if k < MAX_FIELDS:
        f[k].name, f[k].off, f[k].len, f[k].fmt = name, off, n, fmt
        k += 1
    return k


cdef int _dissect(const uint8_t* p, uint32_t n, HdrField* f) noexcept nogil:
    """The header fields of an Ethernet frame that lie wholly within its ``n`` bytes."""
    cdef int k = 0
    cdef uint32_t off = ETH_HLEN, l4 = 0, ihl
    cdef uint16_t etype
    cdef uint8_t proto = 0
    if n < ETH_HLEN:
        return 0
    k = _field(f, k, "eth.dst", 0, 6, FMT_MAC)
    k = _field(f, k, "eth.src", 6, 6, FMT_MAC)
    k = _field(f, k, "eth.type", 12, 2, FMT_HEX)
    etype = (p[12] << 8) | p[13]
    while (etype == 0x8100 or etype == 0x88a8) and off + 4 <= n:
        k = _field(f, k, "vlan.tci", off, 2, FMT_DEC)
        k = _field(f, k, "vlan.type", off + 2, 2, FMT_HEX)
        etype = (p[off + 2] << 8) | p[off + 3]
        off += 4
    if etype == 0x0800 and off + 20 <= n:
        ihl = (p[off] & 0xf) * 4
        k = _field(f, k, "ipv4.tos", off + 1, 1, FMT_HEX)
        k = _field(f, k, "ipv4.len", off + 2, 2, FMT_DEC)
        k = _field(f, k, "ipv4.id", off + 4, 2, FMT_DEC)
        k = _field(f, k, "ipv4.frag", off + 6, 2, FMT_HEX)
        k = _field(f, k, "ipv4.ttl", off + 8, 1, FMT_DEC)
        k = _field(f, k, "ipv4.proto", off + 9, 1, FMT_DEC)
        k = _field(f, k, "ipv4.csum", off + 10, 2, FMT_HEX)
        k = _field(f, k, "ipv4.src", off + 12, 4, FMT_IP4)
        k = _field(f, k, "ipv4.dst", off + 16, 4, FMT_IP4)
        proto = p[off + 9]
        if ihl >= 20 and ((p[off + 6] & 0x1f) << 8 | p[off + 7]) == 0:
            l4 = off + ihl          # the first fragment holds the L4 header
    elif etype == 0x86dd and off + 40 <= n:
        k = _field(f, k, "ipv6.flow", off, 4, FMT_HEX)
        k = _field(f, k, "ipv6.plen", off + 4, 2, FMT_DEC)
        k = _field(f, k, "ipv6.nxt", off + 6, 1, FMT_DEC)
        k = _field(f, k, "ipv6.hlim", off + 7, 1, FMT_DEC)
        k = _field(f, k, "ipv6.src", off + 8, 16, FMT_IP6)
        k = _field(f, k, "ipv6.dst", off + 24, 16, FMT_IP6)
        proto = p[off + 6]
        l4 = off + 40
    if l4 == 0:
        return k
    if proto == 6 and l4 + 20 <= n:
        k = _field(f, k, "tcp.srcport", l4, 2, FMT_DEC)
        k = _field(f, k, "tcp.dstport", l4 + 2, 2, FMT_DEC)
        k = _field(f, k, "tcp.seq", l4 + 4, 4, FMT_DEC)
        k = _field(f, k, "tcp.ack", l4 + 8, 4, FMT_DEC)
        k = _field(f, k, "tcp.flags", l4 + 13, 1, FMT_HEX)
        k = _field(f, k, "tcp.window", l4 + 14, 2, FMT_DEC)
        k = _field(f, k, "tcp.csum", l4 + 16, 2, FMT_HEX)
    elif proto == 17 and l4 + 8 <= n:
        k = _field(f, k, "udp.srcport", l4, 2, FMT_DEC)
        k = _field(f, k, "udp.dstport", l4 + 2, 2, FMT_DEC)
        k = _field(f, k, "udp.len", l4 + 4, 2, FMT_DEC)
        k = _field(f, k, "udp.csum", l4 + 6, 2, FMT_HEX)
    elif (proto == 1 or proto == 58) and l4 + 4 <= n:
        k = _field(f, k, "icmp.type" if proto == 1 else "icmpv6.type", l4, 1, FMT_DEC)
        k = _field(f, k, "icmp.code" if proto == 1 else "icmpv6.code", l4 + 1, 1, FMT_DEC)
        k = _field(f, k, "icmp.csum" if proto == 1 else "icmpv6.csum", l4 + 2, 2, FMT_HEX)
    return k


cdef bint _value(Buf* b, const uint8_t* p, const HdrField* f) noexcept nogil:
    cdef char tmp[64]
    cdef int n = 0, i
    cdef uint64_t v = 0
    if f.fmt == FMT_MAC:
        n = snprintf(tmp, 64, "%02x:%02x:%02x:%02x:%02x:%02x", p[0], p[1], p[2], p[3],
                     p[4], p[5])
    elif f.fmt == FMT_IP4:
        n = snprintf(tmp, 64, "%u.%u.%u.%u", p[0], p[1], p[2], p[3])
    elif f.fmt == FMT_IP6:
        for i in range(8):
            n += snprintf(tmp + n, 64 - n, "%s%x", ":" if i else "",
                          (p[2 * i] << 8) | p[2 * i + 1])
    else:
        for i in range(<int>f.len):
            v = (v << 8) | p[i]
        n = snprintf(tmp, 64, "0x%llx" if f.fmt == FMT_HEX else "%llu",
                     <unsigned long long>v)
    return _put(b, tmp, n)


cdef bint _changed_fields(Buf* b, const uint8_t* old, uint32_t nold, const uint8_t* new,
                          uint32_t nnew) noexcept nogil:
    """"; NAME OLD → NEW" for every header field of the old frame found at the same
    place in the new one with other bytes; then the payload or the length, if either
    changed."""
    cdef HdrField fo[MAX_FIELDS]
    cdef HdrField fn[MAX_FIELDS]
    cdef int ko = _dissect(old, nold, fo), kn = _dissect(new, nnew, fn), i, j
    cdef uint32_t end = 0
    cdef char tmp[96]
    cdef int n
    for i in range(ko):
        if fo[i].off + fo[i].len > end:
            end = fo[i].off + fo[i].len
        for j in range(kn):
            if fn[j].off == fo[i].off and strcmp(fn[j].name, fo[i].name) == 0:
                if memcmp(old + fo[i].off, new + fn[j].off, fo[i].len) != 0:
                    if not (_text(b, "; ") and _text(b, fo[i].name) and _text(b, " ")
                            and _value(b, old + fo[i].off, &fo[i])
                            and _text(b, " \xe2\x86\x92 ")
                            and _value(b, new + fn[j].off, &fn[j])):
                        return False
                break
    if nold != nnew:
        n = snprintf(tmp, 96, "; length %u \xe2\x86\x92 %u bytes", nold, nnew)
        return _put(b, tmp, n)
    if end < nold and memcmp(old + end, new + end, nold - end) != 0:
        return _text(b, "; payload changed")
    return True


cdef inline uint32_t _epb_len(uint32_t caplen, size_t clen) noexcept nogil:
    """The length of _epb's block."""
    return <uint32_t>(28 + caplen + (4 - caplen % 4) % 4 + 4 + clen + (4 - clen % 4) % 4
                      + 8 + 4 + 4)


cdef bint _epb(Buf* b, uint32_t iface, uint64_t ts, const uint8_t* d, uint32_t caplen,
               uint32_t wire, const char* comment, size_t clen, uint32_t flags) noexcept nogil:
    cdef size_t start = b.len
    cdef uint32_t total = _epb_len(caplen, clen)
    if not (_put32(b, PCAPNG_EPB_TYPE) and _put32(b, total) and _put32(b, iface)
            and _put32(b, <uint32_t>(ts >> 32)) and _put32(b, <uint32_t>ts)
            and _put32(b, caplen) and _put32(b, wire) and _put(b, d, caplen) and _pad4(b)):
        return False
    if not (_put32(b, 1 | (<uint32_t>clen << 16)) and _put(b, comment, clen) and _pad4(b)
            and _put32(b, 2 | (4 << 16)) and _put32(b, flags) and _put32(b, 0)
            and _put32(b, total)):
        return False
    return b.len - start == total


cdef bint _outcome_text(Buf* c, const TcOutcome* o, const AnnSpec* s) noexcept nogil:
    cdef char tmp[128]
    cdef int n
    if o.action == HOOK_BEFORE_TC:
        return _text(c, "dropped before tc")
    if o.action == HOOK_FAULT:
        n = snprintf(tmp, 128, "fault; dropped")
    elif s.sf:
        n = snprintf(tmp, 128, "%s %u bytes" if o.action == HOOK_DELIVERED else "%s",
                     <const char*>("kept" if o.action == HOOK_DELIVERED else "dropped"),
                     <uint32_t>o.retval)
    else:
        if -1 <= o.verdict <= 8:
            n = snprintf(tmp, 128, "%s; ", VERDICT_NAMES[o.verdict + 1])
        else:
            n = snprintf(tmp, 128, "%d; ", o.verdict)
        if o.action == HOOK_REDIRECTED:
            n += snprintf(tmp + n, 128 - n, "redirected to %u%s", o.redirect_ifindex,
                          <const char*>(" ingress" if o.redirect_ingress else ""))
        else:
            n += snprintf(tmp + n, 128 - n, "%s", <const char*>(
                "delivered" if o.action == HOOK_DELIVERED else
                "dropped" if o.action == HOOK_DROPPED else "consumed"))
    if not _put(c, tmp, n):
        return False
    if o.decider:
        n = snprintf(tmp, 128, "; program %u (", o.decider)
        if not (_put(c, tmp, n) and _put(c, s.names[o.decider - 1], s.name_lens[o.decider - 1])
                and _text(c, ")")):
            return False
    n = 0
    if o.mark != s.mark:
        n += snprintf(tmp + n, 128 - n, "; mark %u \xe2\x86\x92 %u", s.mark, o.mark)
    if o.priority != s.priority:
        n += snprintf(tmp + n, 128 - n, "; priority %u \xe2\x86\x92 %u", s.priority, o.priority)
    if o.has_classid and o.classid != s.classid and o.action < HOOK_FAULT:
        n += snprintf(tmp + n, 128 - n, "; classid %x:%x", o.classid >> 16, o.classid & 0xffff)
    return _put(c, tmp, n)


cdef bint _idb(Buf* b, const char* name, bytes description) noexcept:
    cdef size_t nlen = strlen(name), dlen = len(description)
    cdef uint32_t total = (16 + 4 + nlen + (4 - nlen % 4) % 4 + 4 + dlen + (4 - dlen % 4) % 4
                           + 8 + 4 + 4)
    cdef uint8_t tsresol[4]
    memset(tsresol, 0, 4)
    tsresol[0] = 9          # if_tsresol: nanoseconds
    return (_put32(b, 1) and _put32(b, total) and _put32(b, 1) and _put32(b, 0x40000)
            and _put32(b, 2 | (<uint32_t>nlen << 16)) and _put(b, name, nlen) and _pad4(b)
            and _put32(b, 3 | (<uint32_t>dlen << 16))
            and _put(b, PyBytes_AS_STRING(description), dlen) and _pad4(b)
            and _put32(b, 9 | (1 << 16)) and _put(b, tsresol, 4) and _put32(b, 0)
            and _put32(b, total))


cdef bint _shb(Buf* b) noexcept:
    cdef uint8_t shb[28]
    _wr32(shb, 0x0A0D0D0A)
    _wr32(shb + 4, 28)
    _wr32(shb + 8, 0x1A2B3C4D)
    _wr32(shb + 12, 1)                  # version 1.0
    memset(shb + 16, 0xff, 8)           # section length unknown
    _wr32(shb + 24, 28)
    return _put(b, shb, 28)


cdef bint _ann_comment(Buf* c, const AnnSpec* s, const TcOutcome* o, const uint8_t* frame,
                       uint32_t n, const uint8_t* out, uint32_t m) noexcept nogil:
    """The comment of a packet's two blocks into ``c`` (emptied first), its extras'
    notes left out."""
    c.len = 0
    return _outcome_text(c, o, s) and _changed_fields(c, frame, n, out, m)


cdef inline uint32_t _ann_len(const Buf* c, uint32_t n, uint32_t m) noexcept nogil:
    """The length of _ann_blocks' two blocks."""
    cdef size_t clen = c.len if c.len < MAX_COMMENT else MAX_COMMENT
    return _epb_len(n, clen) + _epb_len(m, clen)


cdef bint _ann_blocks(Buf* b, const Buf* c, uint64_t ts, const uint8_t* frame, uint32_t n,
                      const uint8_t* out, uint32_t m, int64_t delta) noexcept nogil:
    """A packet's block on ``in`` and its block on ``out``, both with the comment
    ``c`` (cut at MAX_COMMENT), into ``b``."""
    cdef size_t clen = c.len if c.len < MAX_COMMENT else MAX_COMMENT
    return (_epb(b, 0, ts, frame, n, <uint32_t>(n + delta), c.p, clen, EPB_INBOUND)
            and _epb(b, 1, ts, out, m, <uint32_t>(m + delta), c.p, clen, EPB_OUTBOUND))


cdef class Annotator:
    """The pcapng of ``tcsim --annotated`` (docs/tcsim-options.md), written into a
    Writer as the replay loop hands it each packet: interfaces ``in`` and ``out``
    (Ethernet, ns timestamps), then per packet one block on each, with the same comment.
    ``programs`` are the chain's names (bytes); ``mark``/``priority``/``classid`` what
    every packet started with; ``notes(extra)`` words a packet's extras (bytes)."""
    cdef Writer w
    cdef Buf c, blk
    cdef AnnSpec spec
    cdef list programs
    cdef object notes

    def __cinit__(self, *args, **kwargs):
        memset(&self.c, 0, sizeof(Buf))
        memset(&self.blk, 0, sizeof(Buf))
        memset(&self.spec, 0, sizeof(AnnSpec))

    def __init__(self, Writer writer, list programs, bytes in_description,
                 bytes out_description, notes, *, bint sf=False, uint32_t mark=0,
                 uint32_t priority=0, uint32_t classid=0):
        cdef Py_ssize_t k
        self.w, self.programs, self.notes = writer, list(programs), notes
        self.spec.sf, self.spec.mark, self.spec.priority, self.spec.classid = (
            sf, mark, priority, classid)
        self.spec.names = <const char**>calloc(len(programs) + 1, sizeof(char*))
        self.spec.name_lens = <size_t*>calloc(len(programs) + 1, sizeof(size_t))
        if self.spec.names == NULL or self.spec.name_lens == NULL:
            raise MemoryError()
        for k, name in enumerate(self.programs):
            self.spec.names[k], self.spec.name_lens[k] = PyBytes_AS_STRING(name), len(name)
        if not (_shb(&self.blk) and _idb(&self.blk, "in", in_description)
                and _idb(&self.blk, "out", out_description)):
            raise MemoryError()
        self._emit()

    def __dealloc__(self):
        free(self.c.p)
        free(self.blk.p)
        free(self.spec.names)
        free(self.spec.name_lens)

    cdef void _emit(self) except *:
        memcpy(self.w.room(self.blk.len), self.blk.p, self.blk.len)
        self.w.commit(self.blk.len)
        self.blk.len = 0

    cdef int blocks(self, const uint8_t* made, uint32_t n) except -1:
        """A packet's two blocks as a replay thread wrote them (_ann_blocks)."""
        memcpy(self.w.room(n), made, n)
        self.w.commit(n)
        return 0

    cdef void packet(self, uint64_t ts, const uint8_t* frame, uint32_t n, const uint8_t* out,
                     uint32_t m, int64_t delta, const TcOutcome* o, extra) except *:
        cdef bytes note
        if not _ann_comment(&self.c, &self.spec, o, frame, n, out, m):
            raise MemoryError()
        if extra is not None:
            note = self.notes(extra)
            if not _put(&self.c, PyBytes_AS_STRING(note), len(note)):
                raise MemoryError()
        if not _ann_blocks(&self.blk, &self.c, ts, frame, n, out, m, delta):
            raise MemoryError()
        self._emit()


def header_changes(bytes old, bytes new):
    """The changes from frame ``old`` to frame ``new`` as ``--annotated`` words them:
    "ipv4.src 10.1.2.3 → 203.0.113.1; tcp.csum ...", "length A → B bytes", "payload
    changed"; "" when they are equal."""
    cdef Buf b
    memset(&b, 0, sizeof(Buf))
    try:
        if not _changed_fields(&b, <const uint8_t*>PyBytes_AS_STRING(old), len(old),
                               <const uint8_t*>PyBytes_AS_STRING(new), len(new)):
            raise MemoryError()
        return PyBytes_FromStringAndSize(b.p + 2, b.len - 2).decode() if b.len else ""
    finally:
        free(b.p)
