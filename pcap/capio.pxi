# Capture I/O in C for pcap/pcapio.py and tcsim: the record scan of a chunk of a
# capture, the link-layer headers turned into Ethernet and back, and the buffered
# writers of pcap, pcapng and JSON lines.  Included by tcreplay.pyx.  Python per
# packet here would be most of a tcsim command's time.

from cpython.bytes cimport PyBytes_GET_SIZE
from libc.errno cimport errno, EINTR
from libc.stdlib cimport free, malloc
from posix.unistd cimport read as c_read, write as c_write

cdef enum:
    PCAP_RECORD = 16        # ts_sec, ts_frac, caplen, len
    PCAPNG_EPB = 32         # type, length, interface, ts high, ts low, caplen, len, length
    PCAPNG_EPB_TYPE = 6
    PCAPNG_IDB_TYPE = 1
    FLUSH_AT = 1 << 20      # a writer hands its bytes to the kernel past this many
    DIO_ALIGN = 4096        # what O_DIRECT writes are aligned to: any block size up to a page
    LINK_MAX = 20           # the longest link header tcsim replaces by Ethernet (SLL2)

# linktypes (tcpdump.org's LINKTYPE_* numbers)
cdef enum:
    LT_NULL = 0
    LT_ETHERNET = 1
    LT_RAW12 = 12
    LT_RAW14 = 14
    LT_RAW = 101
    LT_LOOP = 108
    LT_SLL = 113
    LT_SLL2 = 276

LINKTYPES = {LT_NULL: "NULL", LT_ETHERNET: "ETHERNET", LT_RAW12: "RAW (12)",
             LT_RAW14: "RAW (14)", LT_RAW: "RAW", LT_LOOP: "LOOP", LT_SLL: "LINUX_SLL",
             LT_SLL2: "LINUX_SLL2"}

cdef extern from *:
    """
    /* A mapped window's bytes are in no cache when the scan reads them, and each
       record's length says where the next starts: each read would wait for the one
       before.  The scan asks for the lines SCAN_AHEAD bytes on early (a prefetch
       never faults, past the window's end neither). */
    #define pyebpf_prefetch(p) __builtin_prefetch((p), 0, 3)
    """
    void prefetch "pyebpf_prefetch" (const void* p) noexcept nogil

cdef enum:
    SCAN_AHEAD = 2048

ctypedef struct Iface:
    uint32_t linktype
    uint32_t snaplen
    uint64_t units          # timestamp units per second
    int64_t offset          # if_tsoffset, seconds
    uint32_t opt_off        # the IDB's options other than if_tsresol and if_tsoffset, in
    uint32_t opt_len        # the scanner's option store

ctypedef struct Rec:
    Py_ssize_t off          # the captured bytes in the chunk
    uint32_t caplen
    uint32_t wire
    uint32_t iface          # pcapng: the interface (numbered over all sections), else 0
    uint32_t rss            # its frame's RSS hash (Scanner.hash_rss), else not set
    uint64_t ts             # nanoseconds since the epoch
    Py_ssize_t opt_off      # pcapng: the packet block's options in the chunk
    uint32_t opt_len


cdef inline uint32_t _rd32(const uint8_t* p, bint big) noexcept nogil:
    if big:
        return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]
    return (<uint32_t>p[3] << 24) | (<uint32_t>p[2] << 16) | (<uint32_t>p[1] << 8) | p[0]


cdef inline uint16_t _rd16(const uint8_t* p, bint big) noexcept nogil:
    return (<uint16_t>p[0] << 8) | p[1] if big else (<uint16_t>p[1] << 8) | p[0]


cdef inline void _wr32(uint8_t* p, uint32_t v) noexcept nogil:
    p[0], p[1], p[2], p[3] = v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, v >> 24


cdef inline void _wr16be(uint8_t* p, uint16_t v) noexcept nogil:
    p[0], p[1] = v >> 8, v & 0xff


cdef inline int _link_hlen(uint32_t linktype) noexcept nogil:
    """The bytes of link-layer header replaced by an Ethernet header; -1: unsupported."""
    if linktype == LT_ETHERNET:
        return ETH_HLEN
    if linktype == LT_SLL:
        return 16
    if linktype == LT_SLL2:
        return 20
    if linktype == LT_RAW or linktype == LT_RAW12 or linktype == LT_RAW14:
        return 0
    if linktype == LT_NULL or linktype == LT_LOOP:
        return 4
    return -1


def link_supported(uint32_t linktype):
    return _link_hlen(linktype) >= 0


cdef uint16_t _family_ethertype(uint32_t family) noexcept nogil:
    """A BSD loopback header's address family as an EtherType (AF_INET6 is 10 on Linux,
    24, 28 or 30 on the BSDs and macOS); 0 for any other."""
    if family == 2:
        return 0x0800
    if family == 10 or family == 24 or family == 28 or family == 30:
        return 0x86DD
    return 0


cdef int _to_eth(uint32_t linktype, const uint8_t* f, uint32_t n, const uint8_t* dev_addr,
                 uint8_t* out, int* pkt_type) noexcept nogil:
    """The frame ``f`` of ``linktype`` as the Ethernet frame tc sees, into ``out``; its
    length, or -1 for a frame shorter than its header, -2 for a protocol no EtherType
    names.  ``pkt_type`` gets the packet type a Linux cooked header gives, else -1."""
    cdef int h = _link_hlen(linktype)
    cdef uint16_t proto
    cdef uint32_t family
    cdef int kind
    pkt_type[0] = -1
    if linktype == LT_ETHERNET:
        memcpy(out, f, n)
        return n
    if n < <uint32_t>h or (h == 0 and n < 1):
        return -1
    memset(out, 0, ETH_HLEN)
    if linktype == LT_SLL or linktype == LT_SLL2:
        if linktype == LT_SLL:
            kind, proto = _rd16(f, True), _rd16(f + 14, True)
            if _rd16(f + 4, True) == ETH_ALEN:
                memcpy(out + ETH_ALEN, f + 6, ETH_ALEN)
        else:
            kind, proto = f[10], _rd16(f, True)
            if f[11] == ETH_ALEN:
                memcpy(out + ETH_ALEN, f + 12, ETH_ALEN)
        pkt_type[0] = kind
        # the destination eth_type_trans would have read that packet type from
        if kind == 0:
            memcpy(out, dev_addr, ETH_ALEN)
        elif kind == 1:
            memset(out, 0xff, ETH_ALEN)
        elif kind == 2:
            if proto == 0x86DD:
                out[0], out[1], out[5] = 0x33, 0x33, 1
            else:
                out[0], out[2], out[5] = 1, 0x5e, 1
        elif kind == 3:
            out[0], out[5] = 2, 1
    elif linktype == LT_NULL or linktype == LT_LOOP:
        # DLT_NULL is in the capturing host's byte order: a family fits in the low bytes
        family = _rd32(f, linktype == LT_LOOP or (f[0] == 0 and f[1] == 0))
        proto = _family_ethertype(family)
        if proto == 0:
            return -2
        memcpy(out, dev_addr, ETH_ALEN)
    else:
        proto = 0x0800 if f[0] >> 4 == 4 else 0x86DD if f[0] >> 4 == 6 else 0
        if proto == 0:
            return -2
        memcpy(out, dev_addr, ETH_ALEN)
    _wr16be(out + 12, proto)
    memcpy(out + ETH_HLEN, f + h, n - h)
    return ETH_HLEN + n - h


cdef uint32_t _from_eth(uint32_t linktype, const uint8_t* hdr, const uint8_t* eth,
                        uint32_t n, uint8_t pkt_type, uint8_t* out) noexcept nogil:
    """The Ethernet frame ``eth`` (the programs' output) in ``linktype``, into ``out``;
    ``hdr`` is the input's link header when the packet came in that linktype (its
    fields the Ethernet header does not hold are kept), else NULL.  Returns the length."""
    cdef uint16_t proto = _rd16(eth + 12, True) if n >= ETH_HLEN else 0
    cdef uint32_t body = n - ETH_HLEN if n >= ETH_HLEN else 0
    cdef const uint8_t* payload = eth + ETH_HLEN
    cdef uint32_t family
    cdef bint big
    if linktype == LT_ETHERNET:
        memcpy(out, eth, n)
        return n
    if linktype == LT_SLL:
        if hdr != NULL:
            memcpy(out, hdr, 16)
        else:
            memset(out, 0, 16)
            out[3], out[5] = 1, ETH_ALEN            # ARPHRD_ETHER, a MAC address
        _wr16be(out, pkt_type)
        if _rd16(out + 4, True) == ETH_ALEN:
            memcpy(out + 6, eth + ETH_ALEN, ETH_ALEN)
        _wr16be(out + 14, proto)
        memcpy(out + 16, payload, body)
        return 16 + body
    if linktype == LT_SLL2:
        if hdr != NULL:
            memcpy(out, hdr, 20)
        else:
            memset(out, 0, 20)
            out[9], out[11] = 1, ETH_ALEN
        _wr16be(out, proto)
        out[10] = pkt_type
        if out[11] == ETH_ALEN:
            memcpy(out + 12, eth + ETH_ALEN, ETH_ALEN)
        memcpy(out + 20, payload, body)
        return 20 + body
    # raw IP and loopback have no room for a VLAN tag the programs left: it is left out
    while (proto == 0x8100 or proto == 0x88A8) and body >= VLAN_HLEN:
        proto = _rd16(payload + 2, True)
        payload += VLAN_HLEN
        body -= VLAN_HLEN
    if linktype == LT_NULL or linktype == LT_LOOP:
        big = linktype == LT_LOOP or (hdr != NULL and hdr[0] == 0 and hdr[1] == 0)
        if hdr != NULL and _family_ethertype(_rd32(hdr, big)) == proto:
            memcpy(out, hdr, 4)
        else:
            # the family of the EtherType now; one no family names keeps the input's
            family = 2 if proto == 0x0800 else 10 if proto == 0x86DD else \
                (_rd32(hdr, big) if hdr != NULL else 0)
            if big:
                _wr16be(out, 0)
                _wr16be(out + 2, <uint16_t>family)
            else:
                _wr32(out, family)
        memcpy(out + 4, payload, body)
        return 4 + body
    memcpy(out, payload, body)
    return body


cdef uint32_t _pcap_record(uint8_t* w, uint64_t t, const uint8_t* eth, uint32_t n,
                           int64_t wire_delta, uint32_t lt, const uint8_t* hdr,
                           uint8_t pkt_type, bint nanosecond) noexcept nogil:
    """A pcap record of the Ethernet frame ``eth`` in linktype ``lt`` into ``w``
    (PCAP_RECORD + n + LINK_MAX bytes), its time ``t`` within pcap's 32-bit seconds;
    its length."""
    cdef uint32_t size = _from_eth(lt, hdr, eth, n, pkt_type, w + PCAP_RECORD)
    cdef int64_t wire = size + wire_delta
    _wr32(w, <uint32_t>(t // 1000000000))
    _wr32(w + 4, <uint32_t>(t % 1000000000 if nanosecond else t % 1000000000 // 1000))
    _wr32(w + 8, size)
    _wr32(w + 12, <uint32_t>(wire if wire > size else size))
    return PCAP_RECORD + size


cdef inline uint32_t _raw_len(uint32_t n, bint pcapng) noexcept nogil:
    """The length of _raw_record's record of an ``n``-byte frame."""
    return PCAPNG_EPB + (n + 3) // 4 * 4 if pcapng else PCAP_RECORD + n


cdef uint32_t _raw_record(uint8_t* w, uint64_t t, const uint8_t* frame, uint32_t n,
                          uint32_t wire, uint32_t iface, bint pcapng,
                          bint nanosecond) noexcept nogil:
    """A packet as it was captured (its bytes as they are, no options) into ``w``
    (_raw_len bytes): a pcapng packet block on ``iface``, or a pcap record (its time
    within pcap's 32-bit seconds); its length."""
    cdef uint32_t block
    if pcapng:
        block = PCAPNG_EPB + (n + 3) // 4 * 4
        _wr32(w, PCAPNG_EPB_TYPE); _wr32(w + 4, block); _wr32(w + 8, iface)
        _wr32(w + 12, <uint32_t>(t >> 32)); _wr32(w + 16, <uint32_t>t)
        _wr32(w + 20, n); _wr32(w + 24, wire)
        memcpy(w + 28, frame, n)
        memset(w + 28 + n, 0, block - PCAPNG_EPB - n)
        _wr32(w + block - 4, block)
        return block
    _wr32(w, <uint32_t>(t // 1000000000))
    _wr32(w + 4, <uint32_t>(t % 1000000000 if nanosecond else t % 1000000000 // 1000))
    _wr32(w + 8, n)
    _wr32(w + 12, wire)
    memcpy(w + PCAP_RECORD, frame, n)
    return PCAP_RECORD + n


cdef uint32_t _pcapng_record(uint8_t* w, uint64_t t, const uint8_t* eth, uint32_t n,
                             int64_t wire_delta, uint32_t lt, const uint8_t* hdr,
                             uint8_t pkt_type, uint32_t iface, const uint8_t* opts,
                             uint32_t optlen) noexcept nogil:
    """A pcapng enhanced packet block of the Ethernet frame ``eth`` in linktype ``lt`` on
    interface ``iface`` with the options ``opts`` into ``w`` (PCAPNG_EPB + n + LINK_MAX
    + 3 + optlen bytes); its length."""
    cdef uint32_t size = _from_eth(lt, hdr, eth, n, pkt_type, w + 28)
    cdef uint32_t block = PCAPNG_EPB + (size + 3) // 4 * 4 + optlen
    cdef int64_t wire = size + wire_delta
    _wr32(w, PCAPNG_EPB_TYPE); _wr32(w + 4, block)
    _wr32(w + 8, iface)
    _wr32(w + 12, <uint32_t>(t >> 32)); _wr32(w + 16, <uint32_t>t)
    _wr32(w + 20, size); _wr32(w + 24, <uint32_t>(wire if wire > size else size))
    memset(w + 28 + size, 0, (size + 3) // 4 * 4 - size)
    if optlen:
        memcpy(w + 28 + (size + 3) // 4 * 4, opts, optlen)
    _wr32(w + block - 4, block)
    return block


cdef class Scanner:
    """The records of one capture, a chunk at a time: what the C scan and pcapio found
    in the chunk last scanned (``count``, the records' fields in C), and the capture's
    interfaces (pcapng: every interface block of every section, numbered in order)."""
    cdef public bint pcapng, big, nanosecond
    # an Ethernet pcap capture's records get their frames' RSS hashes (rss_hash, for
    # tcsim --cpus N): taken by the scan, which has the frame's first bytes in the
    # cache, so that the steering of the replay threads touches no frame
    cdef public bint hash_rss
    cdef public uint32_t linktype       # pcap's; pcapng's are per interface
    cdef public uint32_t max_caplen
    cdef public uint32_t section_base   # the first interface of the current section
    cdef Rec* recs
    cdef Py_ssize_t nrecs, cap_recs
    cdef Iface* ifs
    cdef uint32_t nifs, cap_ifs
    cdef public bytearray idb_options   # interface blocks' options kept for pcapng output

    def __cinit__(self, bint pcapng, bint big, bint nanosecond, uint32_t linktype,
                  uint32_t max_caplen):
        self.pcapng, self.big, self.nanosecond = pcapng, big, nanosecond
        self.linktype, self.max_caplen = linktype, max_caplen
        self.idb_options = bytearray()

    def __dealloc__(self):
        free(self.recs)
        free(self.ifs)

    @property
    def count(self):
        return self.nrecs

    @property
    def interfaces(self):
        return self.nifs

    def iface_linktype(self, uint32_t k):
        return self.ifs[k].linktype

    def clear(self):
        self.nrecs = 0

    cdef int _room(self) except -1:
        """``recs`` grown (twice its size and 1,024 more)."""
        cdef Rec* grown = <Rec*>realloc(self.recs, (self.cap_recs * 2 + 1024) * sizeof(Rec))
        if grown == NULL:
            raise MemoryError()
        self.recs, self.cap_recs = grown, self.cap_recs * 2 + 1024
        return 0

    cdef Rec* _next(self) except NULL:
        if self.nrecs == self.cap_recs:
            self._room()
        self.nrecs += 1
        return &self.recs[self.nrecs - 1]

    def add_iface(self, uint32_t linktype, uint32_t snaplen, uint64_t units, int64_t offset,
                  bytes options):
        cdef Iface* grown
        if self.nifs == self.cap_ifs:
            grown = <Iface*>realloc(self.ifs, (self.cap_ifs * 2 + 8) * sizeof(Iface))
            if grown == NULL:
                raise MemoryError()
            self.ifs, self.cap_ifs = grown, self.cap_ifs * 2 + 8
        self.ifs[self.nifs] = Iface(linktype, snaplen, units, offset, len(self.idb_options),
                                    len(options))
        self.idb_options += options
        self.nifs += 1

    def iface(self, uint32_t k):
        """(linktype, snaplen, units per second, offset in seconds) of interface ``k``."""
        return self.ifs[k].linktype, self.ifs[k].snaplen, self.ifs[k].units, self.ifs[k].offset

    def add_record(self, Py_ssize_t off, uint32_t caplen, uint32_t wire, uint32_t iface,
                   uint64_t ts, Py_ssize_t opt_off=0, uint32_t opt_len=0):
        self._next()[0] = Rec(off, caplen, wire, iface, 0, ts, opt_off, opt_len)
        if iface < self.nifs and self.ifs[iface].units != 1000000:
            self.nanosecond = True

    cdef Py_ssize_t _scan_pcap(self, const uint8_t* p, Py_ssize_t pos,
                               Py_ssize_t end) noexcept nogil:
        """scan of a pcap chunk while ``recs`` has room; where it stopped."""
        cdef uint32_t frac, caplen
        cdef uint64_t scale = 1 if self.nanosecond else 1000
        cdef uint32_t limit = 1000000000 if self.nanosecond else 1000000
        cdef bint big = self.big
        cdef bint hash_rss = self.hash_rss and self.linktype == LT_ETHERNET
        cdef Rec* r
        while pos + PCAP_RECORD <= end and self.nrecs < self.cap_recs:
            prefetch(p + pos + SCAN_AHEAD)
            frac = _rd32(p + pos + 4, big)
            caplen = _rd32(p + pos + 8, big)
            if caplen > self.max_caplen or frac >= limit or pos + PCAP_RECORD + caplen > end:
                break
            r = &self.recs[self.nrecs]
            self.nrecs += 1
            r.off, r.caplen, r.iface = pos + PCAP_RECORD, caplen, 0
            r.wire = _rd32(p + pos + 12, big)
            r.ts = <uint64_t>_rd32(p + pos, big) * 1000000000 + frac * scale
            r.opt_off, r.opt_len = 0, 0
            if hash_rss:
                r.rss = rss_hash(p + pos + PCAP_RECORD, caplen)
            pos += PCAP_RECORD + caplen
        return pos

    def read_scan(self, int fd, uint8_t[::1] buf, Py_ssize_t end, Py_ssize_t piece):
        """Read the file ``fd`` (a regular file, pcap) into ``buf`` from ``end`` until
        it is full or the file ends, ``piece`` bytes a read(2), and scan its records
        from the buffer's start after each read, while the piece is in the cache (a
        record scan of a chunk read whole runs from memory: one miss a record); with
        the GIL released, but to grow the index.  Returns ``(end, at the file's end,
        the errno that stopped the reading or 0, where the scan stopped)``, the scan
        where scan(buf, 0, end) stops."""
        cdef uint8_t* p = &buf[0]
        cdef Py_ssize_t cap = buf.shape[0], scanned = 0
        cdef ssize_t n
        cdef bint eof = False
        cdef int err = 0
        with nogil:
            while True:
                scanned = self._scan_pcap(p, scanned, end)
                if self.nrecs == self.cap_recs:
                    with gil:
                        self._room()
                elif end == cap or eof or err:
                    break
                else:
                    n = c_read(fd, p + end, <size_t>min(piece, cap - end))
                    if n > 0:
                        end += n
                    elif n == 0:
                        eof = True
                    elif errno != EINTR:
                        err = errno
        return end, eof, err, scanned

    def scan(self, const uint8_t[::1] chunk, Py_ssize_t pos, Py_ssize_t end):
        """Scan the records from ``pos`` while they are whole and well formed before
        ``end``; returns where it stopped (a record cut off by ``end``, or one pcapio
        reads or words as an error)."""
        cdef const uint8_t* p = &chunk[0]
        cdef uint32_t frac, caplen, block, iface, limit
        cdef uint64_t scale, t
        cdef Rec* r
        cdef bint big = self.big
        if not self.pcapng:
            # with the GIL released (Source scans a chunk on the thread that read it)
            while True:
                with nogil:
                    pos = self._scan_pcap(p, pos, end)
                if self.nrecs < self.cap_recs:
                    return pos
                self._room()
        while pos + 28 <= end and _rd32(p + pos, big) == PCAPNG_EPB_TYPE:
            block = _rd32(p + pos + 4, big)
            if block < PCAPNG_EPB or block % 4 or block > self.max_caplen + 65536 \
                    or pos + block > end or _rd32(p + pos + block - 4, big) != block:
                break
            iface = self.section_base + _rd32(p + pos + 8, big)
            caplen = _rd32(p + pos + 20, big)
            if iface >= self.nifs or caplen > block - PCAPNG_EPB:
                break
            if _link_hlen(self.ifs[iface].linktype) < 0 or self.ifs[iface].units > 1000000000 \
                    or 1000000000 % self.ifs[iface].units:
                break
            scale = 1000000000 // self.ifs[iface].units
            t = (<uint64_t>_rd32(p + pos + 12, big) << 32) | _rd32(p + pos + 16, big)
            if t > (<uint64_t>-1) // scale:
                break
            if self.ifs[iface].units != 1000000:
                self.nanosecond = True
            r = self._next()
            r.off, r.caplen, r.wire, r.iface = pos + 28, caplen, _rd32(p + pos + 24, big), iface
            r.ts = self.ifs[iface].offset * 1000000000 + t * scale
            r.opt_off = pos + 28 + (caplen + 3) // 4 * 4
            r.opt_len = <uint32_t>(pos + block - 4 - r.opt_off)
            pos += block
        return pos

    def packets(self, const uint8_t[::1] chunk):
        """The chunk's records as Python lists (frames, ts, orig_len, iface): for
        pcapio.read, whose callers want every packet as an object."""
        cdef Py_ssize_t k
        cdef Rec* r
        cdef list frames = [], ts = [], orig = [], where = []
        for k in range(self.nrecs):
            r = &self.recs[k]
            frames.append(PyBytes_FromStringAndSize(<const char*>&chunk[0] + r.off, r.caplen))
            ts.append(r.ts)
            orig.append(r.wire)
            where.append(r.iface)
        return frames, ts, orig, where


cdef extern from *:
    """
    #include <errno.h>
    #include <fcntl.h>
    #include <pthread.h>
    #include <stdlib.h>
    #include <string.h>
    #include <sys/stat.h>
    #include <unistd.h>
    /* A writer's write-behind (Writer): a thread of its own (named pyebpf-write)
       writes one full buffer into a duplicate of the writer's descriptor while the
       writer fills the other.
       ``buf`` is the buffer being written, NULL when the thread is idle. */
    typedef struct {
        pthread_t thread;
        pthread_mutex_t mu;
        pthread_cond_t cv;
        int fd, started, quit, error;
        const uint8_t* buf;
        size_t len;
    } pyebpf_behind;

    static int pyebpf_direct_off(int fd);

    static void* pyebpf_behind_main(void* arg) {
        pyebpf_behind* b = (pyebpf_behind*)arg;
        const uint8_t* p;
        size_t len, done;
        ssize_t k;
        int err;
        pthread_setname_np(pthread_self(), "pyebpf-write");
        pthread_mutex_lock(&b->mu);
        for (;;) {
            while (b->buf == NULL && !b->quit)
                pthread_cond_wait(&b->cv, &b->mu);
            if (b->buf == NULL)
                break;
            p = b->buf, len = b->len, done = 0, err = b->error;
            pthread_mutex_unlock(&b->mu);
            while (done < len && !err) {
                /* at most 1 MiB a write, whatever the buffer holds (a chunk written
                   whole: Loop._write_direct): one write of several MiB into ext4 cost
                   several times the system time of the same bytes in 1 MiB writes */
                k = write(b->fd, p + done, len - done < (1 << 20) ? len - done : (1 << 20));
                if (k < 0) {
                    /* a filesystem that takes O_DIRECT only in part: written through
                       the page cache from here on */
                    if (errno == EINVAL && pyebpf_direct_off(b->fd) == 0)
                        continue;
                    if (errno != EINTR)
                        err = errno;
                } else {
                    done += k;
                }
            }
            pthread_mutex_lock(&b->mu);
            b->error = err;
            b->buf = NULL;
            pthread_cond_broadcast(&b->cv);
        }
        pthread_mutex_unlock(&b->mu);
        return NULL;
    }

    /* O_DIRECT on ``fd``'s open file, where the filesystem takes it and the file's
       offset is aligned: the write-behind's writes then go from the writer's two
       buffers to the disk, and no page of the page cache is taken for them; 1 if so. */
    static int pyebpf_direct_on(int fd) {
        int fl = fcntl(fd, F_GETFL);
        off_t at = lseek(fd, 0, SEEK_CUR);
        return fl >= 0 && at >= 0 && at % 4096 == 0 && fcntl(fd, F_SETFL, fl | O_DIRECT) == 0;
    }

    /* O_DIRECT off again; 0, or -1 (errno) where it cannot be. */
    static int pyebpf_direct_off(int fd) {
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || !(fl & O_DIRECT))
            return -1;
        return fcntl(fd, F_SETFL, fl & ~O_DIRECT);
    }

    /* A buffer of ``cap`` bytes aligned for O_DIRECT holding the first ``len`` of
       ``old`` (freed); NULL when memory cannot be had (``old`` kept). */
    static uint8_t* pyebpf_aligned_grow(uint8_t* old, size_t len, size_t cap) {
        void* p;
        if (posix_memalign(&p, 4096, cap) != 0)
            return NULL;
        if (len)
            memcpy(p, old, len);
        free(old);
        return (uint8_t*)p;
    }

    /* Whether ``fd`` is a regular file, which a write-behind may write: a pipe, a
       FIFO or a terminal is written in place, in order with whatever else writes it. */
    static int pyebpf_behind_fits(int fd) {
        struct stat st;
        return fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    }

    /* Wait until the thread is idle; the errno of the first failed write, else 0. */
    static int pyebpf_behind_wait(pyebpf_behind* b) {
        int err;
        if (!b->started)
            return 0;
        pthread_mutex_lock(&b->mu);
        while (b->buf != NULL)
            pthread_cond_wait(&b->cv, &b->mu);
        err = b->error;
        pthread_mutex_unlock(&b->mu);
        return err;
    }

    /* Hand the idle thread ``len`` bytes at ``buf`` (started on the first, writing
       into a duplicate of ``fd``); 0, or -1 when no thread could be had. */
    static int pyebpf_behind_put(pyebpf_behind* b, int fd, const uint8_t* buf, size_t len) {
        if (!b->started) {
            b->fd = dup(fd);
            if (b->fd < 0)
                return -1;
            b->buf = NULL, b->quit = 0, b->error = 0;
            pthread_mutex_init(&b->mu, NULL);
            pthread_cond_init(&b->cv, NULL);
            if (pthread_create(&b->thread, NULL, pyebpf_behind_main, b) != 0) {
                pthread_mutex_destroy(&b->mu);
                pthread_cond_destroy(&b->cv);
                close(b->fd);
                return -1;
            }
            b->started = 1;
        }
        pthread_mutex_lock(&b->mu);
        b->buf = buf, b->len = len;
        pthread_cond_broadcast(&b->cv);
        pthread_mutex_unlock(&b->mu);
        return 0;
    }

    /* Wait for the thread's last write, end it; its error as pyebpf_behind_wait. */
    static int pyebpf_behind_stop(pyebpf_behind* b) {
        int err = pyebpf_behind_wait(b);
        if (!b->started)
            return 0;
        pthread_mutex_lock(&b->mu);
        b->quit = 1;
        pthread_cond_broadcast(&b->cv);
        pthread_mutex_unlock(&b->mu);
        pthread_join(b->thread, NULL);
        pthread_mutex_destroy(&b->mu);
        pthread_cond_destroy(&b->cv);
        close(b->fd);
        b->started = 0;
        return err;
    }
    """
    ctypedef struct Behind "pyebpf_behind":
        pass
    bint behind_fits "pyebpf_behind_fits" (int fd) nogil
    bint direct_on "pyebpf_direct_on" (int fd) nogil
    int direct_off "pyebpf_direct_off" (int fd) nogil
    uint8_t* aligned_grow "pyebpf_aligned_grow" (uint8_t* old, size_t len, size_t cap) nogil
    int behind_wait "pyebpf_behind_wait" (Behind* b) nogil
    int behind_put "pyebpf_behind_put" (Behind* b, int fd, const uint8_t* buf, size_t n) nogil
    int behind_stop "pyebpf_behind_stop" (Behind* b) nogil


cdef class Writer:
    """Bytes written through a buffer to a file descriptor (``fd`` -1: kept, for
    ``take``).  An error writing is kept in ``error`` (an errno) and ends the writing.
    Into a regular file a full buffer is written by a thread of the writer's while the
    next fills (a duplicate descriptor: closing ``fd`` does not stop it); ``flush``
    waits for every byte written, and ``error`` tells a failed write by the next full
    buffer or ``flush`` at the latest.  With ``direct_ok`` (set for a file nothing else
    writes while this writer does), the thread writes with O_DIRECT where the file takes
    it: set on ``fd``'s open file from the first full buffer to ``flush``, which writes
    the last bytes through the page cache."""
    cdef uint8_t* buf
    cdef size_t len, cap
    cdef uint8_t* spare         # the buffer being written behind
    cdef size_t spare_cap
    cdef Behind behind
    cdef bint behind_ok         # fd is a regular file
    cdef public bint direct_ok
    cdef bint direct_tried      # O_DIRECT was asked for (the first full buffer)
    cdef bint direct            # the thread's writes are O_DIRECT: whole DIO_ALIGN blocks
    cdef public int fd
    cdef public int error
    cdef public uint64_t written

    def __cinit__(self, int fd=-1, *args, **kwargs):
        self.fd = fd
        self.behind_ok = fd >= 0 and behind_fits(fd)

    def __dealloc__(self):
        with nogil:
            behind_stop(&self.behind)
        free(self.buf)
        free(self.spare)

    cdef inline uint8_t* room(self, size_t n) except NULL:
        """Where the next ``n`` bytes go (``commit`` them after)."""
        if self.len + n <= self.cap:
            return self.buf + self.len
        return self._grow(n)

    cdef uint8_t* _grow(self, size_t n) except NULL:
        """``room`` where the buffer does not hold ``n`` more bytes: flushed or grown."""
        cdef uint8_t* grown
        if self.len + n > self.cap:
            if self.fd >= 0 and self.len:
                self._hand_over()
            if self.len + n > self.cap:
                grown = aligned_grow(self.buf, self.len, self.len + n + (FLUSH_AT if self.fd >= 0 else self.cap))
                if grown == NULL:
                    raise MemoryError()
                self.buf, self.cap = grown, self.len + n + (FLUSH_AT if self.fd >= 0 else self.cap)
        return self.buf + self.len

    cdef inline void commit(self, size_t n) noexcept:
        self.len += n
        self.written += n
        if self.fd >= 0 and self.len >= FLUSH_AT:
            self._hand_over()

    cdef void _hand_over(self) noexcept:
        """The buffer to the kernel: to the write-behind (once its last write is done;
        then the spare buffer is filled) where there is one, else in place.  An
        O_DIRECT write-behind takes the whole blocks; the bytes past them start the
        spare buffer."""
        cdef uint8_t* full = self.buf
        cdef size_t cap = self.cap
        cdef size_t whole = self.len
        cdef uint8_t* grown
        cdef int err
        if not self.behind_ok:
            self._flush()
            return
        with nogil:
            err = behind_wait(&self.behind)
        if err and not self.error:
            self.error = err
        if self.direct_ok and not self.direct_tried and not self.error:
            self.direct_tried, self.direct = True, direct_on(self.fd)
        if self.direct:
            whole -= whole % DIO_ALIGN
            if whole == 0:
                return      # _grow makes room
            if self.spare_cap < self.len - whole:
                grown = aligned_grow(self.spare, 0, cap)
                if grown == NULL:
                    self._flush()
                    return
                self.spare, self.spare_cap = grown, cap
        if self.error or behind_put(&self.behind, self.fd, full, whole) < 0:
            self._flush()
            return
        self.buf, self.cap = self.spare, self.spare_cap
        self.spare, self.spare_cap = full, cap
        if whole < self.len:
            memcpy(self.buf, full + whole, self.len - whole)
        self.len -= whole

    cdef void _flush(self) noexcept:
        cdef size_t done = 0
        cdef ssize_t k
        cdef int err
        with nogil:
            err = behind_stop(&self.behind)
        if err and not self.error:
            self.error = err
        if self.direct:
            # the last bytes are no whole block: through the page cache, as whatever
            # else writes fd after
            direct_off(self.fd)
            self.direct = False
            self.direct_tried = False
        while done < self.len and self.error == 0:
            with nogil:
                k = c_write(self.fd, self.buf + done, self.len - done)
            if k < 0:
                if errno != EINTR:
                    self.error = errno
            else:
                done += k
        self.len = 0

    def append(self, const uint8_t[::1] data):
        cdef Py_ssize_t n = data.shape[0]
        if n:
            memcpy(self.room(n), &data[0], n)
            self.commit(n)

    def flush(self):
        if self.fd >= 0:
            self._flush()

    def take(self):
        """The bytes kept (fd -1), emptied."""
        out = PyBytes_FromStringAndSize(<char*>self.buf, self.len)
        self.len = 0
        return out


cdef class CaptureWriter(Writer):
    """A capture file: pcap of one linktype (``nanosecond`` fractions or micro), or
    pcapng whose interfaces are the input's (``scanner``'s, written as their first
    packet comes, with their options, timestamps in nanoseconds) or one of
    ``linktype``.  Packets come as Ethernet frames and go out in their interface's
    linktype (pcap: the file's)."""
    cdef public bint pcapng, nanosecond
    cdef public uint32_t linktype
    cdef Scanner scanner
    cdef uint32_t ifaces_written

    def __cinit__(self, int fd=-1, bint pcapng=False, bint nanosecond=False,
                  uint32_t linktype=LT_ETHERNET, Scanner scanner=None):
        self.pcapng, self.nanosecond, self.linktype, self.scanner = \
            pcapng, nanosecond, linktype, scanner
        self._header()

    cdef void _header(self) except *:
        cdef uint8_t* w
        if self.pcapng:
            w = self.room(28)
            _wr32(w, 0x0A0D0D0A); _wr32(w + 4, 28); _wr32(w + 8, 0x1A2B3C4D)
            _wr32(w + 12, 1)                                    # version 1.0
            _wr32(w + 16, 0xffffffff); _wr32(w + 20, 0xffffffff)  # section length unknown
            _wr32(w + 24, 28)
            self.commit(28)
            if self.scanner is None:
                self._idb(self.linktype, 0, NULL, 0)
            return
        w = self.room(24)
        _wr32(w, 0xA1B23C4D if self.nanosecond else 0xA1B2C3D4)
        w[4], w[5], w[6], w[7] = 2, 0, 4, 0
        memset(w + 8, 0, 8)
        _wr32(w + 16, 0x40000)
        _wr32(w + 20, self.linktype)
        self.commit(24)

    cdef void _idb(self, uint32_t linktype, uint32_t snaplen, const uint8_t* opts,
                   uint32_t optlen) except *:
        # if_tsresol 9 (nanoseconds), the input's other options, opt_endofopt
        cdef uint32_t block = 20 + 8 + optlen + 4
        cdef uint8_t* w = self.room(block)
        _wr32(w, PCAPNG_IDB_TYPE); _wr32(w + 4, block)
        w[8], w[9] = linktype & 0xff, linktype >> 8
        w[10], w[11] = 0, 0
        _wr32(w + 12, snaplen)
        w[16], w[17], w[18], w[19] = 9, 0, 1, 0
        w[20], w[21], w[22], w[23] = 9, 0, 0, 0
        if optlen:
            memcpy(w + 24, opts, optlen)
        memset(w + 24 + optlen, 0, 4)
        _wr32(w + block - 4, block)
        self.commit(block)

    cdef uint32_t _linktype_of(self, uint32_t iface) except? 0xffffffff:
        cdef Iface* f
        if not self.pcapng or self.scanner is None:
            return self.linktype
        if iface >= self.scanner.nifs:
            raise ValueError(f"interface {iface} is not one of the capture's")
        while self.ifaces_written <= iface:
            f = &self.scanner.ifs[self.ifaces_written]
            self._idb(f.linktype, f.snaplen,
                      <const uint8_t*>PyByteArray_AS_STRING(self.scanner.idb_options) + f.opt_off,
                      f.opt_len)
            self.ifaces_written += 1
        return self.scanner.ifs[iface].linktype

    cdef int record(self, uint64_t t, const uint8_t* eth, uint32_t n, int64_t wire_delta,
                    uint32_t iface, uint32_t in_linktype, const uint8_t* hdr,
                    uint8_t pkt_type, const uint8_t* opts, uint32_t optlen) except -1:
        """One packet: the Ethernet frame ``eth`` in the output's linktype, the length on
        the wire ``wire_delta`` more than its captured bytes; ``hdr`` the input's link
        header (kept where it has fields Ethernet has not, when the linktypes match);
        ``opts`` the input packet block's options (pcapng)."""
        cdef uint32_t lt = self._linktype_of(iface)
        cdef uint8_t* w
        if lt != in_linktype:
            hdr = NULL
        if self.pcapng:
            w = self.room(PCAPNG_EPB + n + LINK_MAX + 3 + optlen)
            self.commit(_pcapng_record(w, t, eth, n, wire_delta, lt, hdr, pkt_type,
                                       iface if self.scanner is not None else 0, opts,
                                       optlen))
            return 0
        if t // 1000000000 > <uint64_t>0xffffffffu:
            raise ValueError(f"a timestamp of {t} ns is past what pcap's 32-bit seconds "
                             "hold (write pcapng)")
        w = self.room(PCAP_RECORD + n + LINK_MAX)
        self.commit(_pcap_record(w, t, eth, n, wire_delta, lt, hdr, pkt_type, self.nanosecond))
        return 0

    cdef int _raw(self, uint64_t t, const uint8_t* frame, uint32_t n, uint32_t wire,
                  uint32_t iface, uint32_t in_linktype) except -1:
        """A packet as it was captured, in ``in_linktype`` (through Ethernet into the
        output's linktype when that differs; a frame Ethernet cannot hold is left out)."""
        cdef int pkt_type
        cdef int e
        cdef uint8_t* eth
        cdef uint8_t no_addr[ETH_ALEN]
        if self._linktype_of(iface) == in_linktype:
            return self._bytes(t, frame, n, wire, iface)
        eth = <uint8_t*>malloc(n + ETH_HLEN)
        if eth == NULL:
            raise MemoryError()
        try:
            memset(no_addr, 0, ETH_ALEN)
            e = _to_eth(in_linktype, frame, n, no_addr, eth, &pkt_type)
            if e >= 0:
                self.record(t, eth, e, <int64_t>wire - n, iface, LT_ETHERNET, NULL,
                            pkt_type if pkt_type >= 0 else 0, NULL, 0)
        finally:
            free(eth)
        return 0

    def packet(self, uint64_t t, bytes frame, uint32_t wire, uint32_t iface=0):
        """One packet of ``frame`` as captured in the output's linktype (pcapio.write)."""
        self._linktype_of(iface)
        self._bytes(t, <const uint8_t*>PyBytes_AS_STRING(frame), PyBytes_GET_SIZE(frame),
                    wire, iface)

    cdef int _bytes(self, uint64_t t, const uint8_t* frame, uint32_t n, uint32_t wire,
                    uint32_t iface) except -1:
        if not self.pcapng and t // 1000000000 > <uint64_t>0xffffffffu:
            raise ValueError(f"a timestamp of {t} ns is past what pcap's 32-bit seconds "
                             "hold (write pcapng)")
        self.commit(_raw_record(self.room(_raw_len(n, self.pcapng)), t, frame, n, wire,
                                iface, self.pcapng, self.nanosecond))
        return 0
