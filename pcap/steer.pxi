# Steering of tcsim --cpus: which simulated CPU receives a packet, as a multi-queue NIC's
# receive-side scaling (RSS) picks a queue, or as RPS picks a CPU by the skb's flow hash.
# Included into tcreplay.pyx.

# The Toeplitz key most NICs ship as their default, the one of Microsoft's RSS
# specification (its verification suite gives the hashes tests/test_tcsim_cpus.py checks).
cdef const uint8_t* RSS_KEY = (
    b"\x6d\x5a\x56\xda\x25\x5b\x0e\xc2\x41\x67\x25\x3d\x43\xa3\x8f\xb0"
    b"\xd0\xca\x2b\xcb\xae\x7b\x30\xb4\x77\xcb\x2d\xa3\x80\x30\xf2\x0c"
    b"\x6a\x42\xb7\x3b\xbe\xac\x01\xfa")

cdef enum:
    RSS_INDIR_SIZE = 128        # the indirection table's entries (ethtool's default size)
    RSS_TUPLE_MAX = 36          # IPv6 addresses and ports


cdef uint32_t toeplitz_bit(int i, int b) noexcept nogil:
    """The 32 key bits that input bit ``b`` (0 the most significant) of byte ``i`` XORs
    into the Toeplitz hash when set: the key's bits from position 8 * i + b on."""
    cdef uint32_t window = 0
    cdef int k, bit
    for k in range(32):
        bit = 8 * i + b + k
        window = (window << 1) | ((RSS_KEY[bit >> 3] >> (7 - (bit & 7))) & 1)
    return window


# TOEPLITZ[i][v]: what byte ``i`` of the input being ``v`` XORs into the hash
cdef uint32_t TOEPLITZ[RSS_TUPLE_MAX][256]


cdef void _toeplitz_table() noexcept nogil:
    cdef int i, b, v
    cdef uint32_t bits[8]
    for i in range(RSS_TUPLE_MAX):
        for b in range(8):
            bits[b] = toeplitz_bit(i, b)
        for v in range(256):
            TOEPLITZ[i][v] = 0
            for b in range(8):
                if v & (0x80 >> b):
                    TOEPLITZ[i][v] ^= bits[b]


_toeplitz_table()


cdef inline uint32_t toeplitz_part(const uint8_t* data, int at, int n) noexcept nogil:
    """What the ``n`` bytes ``data`` at byte ``at`` of the input (``at + n`` at most
    RSS_TUPLE_MAX) XOR into its Toeplitz hash under RSS_KEY: every set input bit XORs in
    the 32 key bits starting at its position.  (Inlined with constant ``at`` and ``n``,
    an unrolled run of table lookups on the frame's bytes where they are.)"""
    cdef uint32_t result = 0
    cdef int i
    for i in range(n):
        result ^= TOEPLITZ[at + i][data[i]]
    return result


cdef uint32_t rss_hash(const uint8_t* frame, uint32_t n) noexcept nogil:
    """What an RSS NIC hashes an Ethernet frame by (one VLAN tag skipped): an IPv4 or IPv6
    packet's source and destination addresses, then for TCP and UDP (not a fragment) the
    source and destination ports; 0 for anything else, which goes to the first queue."""
    cdef uint32_t off = 12, ihl, h
    cdef uint16_t proto
    if n < 14:
        return 0
    proto = (frame[12] << 8) | frame[13]
    if (proto == 0x8100 or proto == 0x88a8) and n >= 18:
        proto = (frame[16] << 8) | frame[17]
        off = 16
    off += 2
    if proto == 0x0800 and n >= off + 20:
        ihl = (frame[off] & 0xf) * 4
        h = toeplitz_part(frame + off + 12, 0, 8)
        if (frame[off + 9] == 6 or frame[off + 9] == 17) and ihl >= 20 \
                and not (frame[off + 6] & 0x3f) and not frame[off + 7] and n >= off + ihl + 4:
            h ^= toeplitz_part(frame + off + ihl, 8, 4)
        return h
    if proto == 0x86dd and n >= off + 40:
        h = toeplitz_part(frame + off + 8, 0, 32)
        if (frame[off + 6] == 6 or frame[off + 6] == 17) and n >= off + 44:
            h ^= toeplitz_part(frame + off + 40, 32, 4)
        return h
    return 0


cdef inline uint32_t rss_queue(uint32_t hash, uint32_t ncpus) noexcept nogil:
    """The queue (CPU) of a hash: the indirection table's entry for its low bits, the
    table filled round robin (ethtool_rxfh_indir_default)."""
    return (hash & (RSS_INDIR_SIZE - 1)) % ncpus


cdef inline uint32_t rps_cpu(uint32_t hash, uint32_t ncpus) noexcept nogil:
    """get_rps_cpu's choice over a map of every CPU: reciprocal_scale of the flow hash."""
    return <uint32_t>((<uint64_t>hash * ncpus) >> 32)


def frame_rss_hash(bytes frame):
    """The Toeplitz hash tcsim --cpus steers the Ethernet frame ``frame`` by."""
    return rss_hash(<const uint8_t*>PyBytes_AS_STRING(frame), len(frame))
