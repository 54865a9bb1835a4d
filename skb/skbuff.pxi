# The sk_buff model: one linear packet buffer with head- and tailroom, plus the
# metadata the kernel keeps beside the bytes.  Included into pyebpf/_core.pyx; its
# types are declared in skb/skbuff.pxd.

# TUNNEL_* flags whose presence makes tunnel options readable (TUNNEL_OPTIONS_PRESENT):
# GENEVE_OPT|VXLAN_OPT|ERSPAN_OPT|GTP_OPT now, GENEVE_OPT|VXLAN_OPT in 4.6
cdef enum:
    TUNNEL_KEY = 0x0004
    TUNNEL_GENEVE_OPT = 0x0800
    TUNNEL_OPTIONS_PRESENT = 0xd800
    TUNNEL_OPTIONS_PRESENT_V46 = 0x1800


cdef inline bint tunnel_opts_present(TunnelInfo* t, int profile) noexcept nogil:
    return (t.flags & (TUNNEL_OPTIONS_PRESENT_V46 if profile == PROFILE_V46
                       else TUNNEL_OPTIONS_PRESENT)) != 0


cdef inline uint8_t* tunnel_dst(TunnelInfo* t) noexcept nogil:
    """The outer destination address (the source is at ``t.addr``)."""
    return t.addr + (16 if t.ipv6 else 4)


cdef bint skb_reserve(Skb* skb, uint32_t headroom, uint32_t tailroom) noexcept nogil:
    """Make sure ``headroom`` bytes before data and ``tailroom`` after the end exist.

    May move the buffer: callers re-derive pointers (and the vm its packet region).
    Returns False when memory cannot be had.
    """
    cdef uint32_t end = skb.data + skb.len
    cdef uint32_t grow_head = headroom - skb.data if headroom > skb.data else 0
    cdef uint32_t need_tail = tailroom - (skb.cap - end) if tailroom > skb.cap - end else 0
    cdef uint32_t new_cap
    cdef uint8_t* p
    if grow_head == 0 and need_tail == 0:
        return True
    if grow_head:
        grow_head += SKB_HEADROOM
    new_cap = skb.cap + grow_head + need_tail + SKB_TAILROOM
    p = <uint8_t*>malloc(new_cap)
    if p == NULL:
        return False
    memset(p, 0, new_cap)
    memcpy(p + grow_head, skb.head, skb.cap)
    free(skb.head)
    skb.head = p
    skb.cap = skb.alloc = new_cap
    skb.data += grow_head
    skb.mac_header += grow_head
    skb.network_header += grow_head
    if skb.transport_header != NO_HEADER:
        skb.transport_header += grow_head
    return True


cdef uint16_t eth_type_trans(Skb* skb) noexcept nogil:
    """Set pkt_type from the destination MAC and return skb->protocol, as the kernel's
    eth_type_trans does for the frame at ``data`` (which must hold 14 bytes)."""
    cdef uint8_t* eth = skb_data(skb)
    cdef uint16_t proto
    if eth[0] & 1:
        skb.pkt_type = 1 if memcmp(eth, skb.dev_broadcast, ETH_ALEN) == 0 else 2
    elif memcmp(eth, skb.dev_addr, ETH_ALEN) == 0:
        skb.pkt_type = 0
    else:
        skb.pkt_type = 3
    memcpy(&proto, eth + 12, 2)
    if (eth[12] << 8 | eth[13]) >= 0x600:
        return proto
    # an 802.3 length field: raw IPX ("ff ff") or else 802.2 LLC
    if skb.len >= ETH_HLEN + 2 and eth[14] == 0xff and eth[15] == 0xff:
        return BE_ETH_P_802_3
    return BE_ETH_P_802_2


cdef inline void skb_clear_hash(Skb* skb) noexcept nogil:
    skb.hash = 0
    skb.sw_hash = False
    skb.l4_hash = False


cdef void skb_free(Skb* skb) noexcept nogil:
    free(skb.head)
    free(skb.clones)
    free(skb.clone_buf)
    free(skb.printk)
    free(skb.devices)
    skb.head = NULL
    skb.clones = NULL
    skb.clone_buf = NULL
    skb.printk = NULL
    skb.devices = NULL




cdef bint skb_load_frame(Skb* skb, const Skb* tmpl, const uint8_t* frame, uint32_t n,
                         uint32_t keep) noexcept nogil:
    """Reset ``skb`` to the template's metadata (skb_init of a 14-byte frame with the
    run's fields) with ``frame`` (14 to 65535 bytes) as its bytes, reusing its buffers:
    what skb_init gives for ``frame`` and those fields.  ``keep`` bits (SKB_KEEP_*) say
    what the template holds that the frame must not override.  False when memory cannot
    be had."""
    cdef uint8_t* head = skb.head
    cdef uint32_t alloc = skb.alloc
    cdef uint32_t need = SKB_HEADROOM + n + SKB_TAILROOM
    if need > alloc:
        head = <uint8_t*>realloc(head, need)
        if head == NULL:
            return False
        skb.head, skb.alloc = head, need
    _skb_copy_meta(skb, tmpl, True)
    _skb_set_frame(skb, frame, n, keep)
    # only the head- and tailroom need zeroing: the bytes are the frame's
    bulk_zero(head, SKB_HEADROOM)
    bulk_zero(head + skb.data + skb.len, skb.cap - skb.data - skb.len)
    return True


cdef bint skb_reload_frame(Skb* skb, const Skb* tmpl, const uint8_t* frame, uint32_t n,
                           uint32_t keep) noexcept nogil:
    """skb_load_frame for an ``skb`` whose last load was from ``tmpl`` with ``keep``
    and whose runs since were all of programs that keep the layout
    (ProgCore.keeps_layout: no helper that moves the data, resizes the buffer or sets
    tunnel metadata), so its head- and tailroom are still zero and its ``tun`` the
    template's.  Resets only what such runs dirty: the metadata but ``tun`` and the
    socket view (packet_sock fills it from the packet before a run first sees it), and
    of the bytes, those of the previous frame past the new one's end and of the new
    tailroom not zero yet."""
    cdef uint8_t* head = skb.head
    cdef uint32_t old_end = skb.data + skb.len     # the frame's bytes end here (from head)
    cdef uint32_t old_cap = skb.cap                # and [old_end, old_cap) is zero
    cdef uint32_t new_end, lo
    if SKB_HEADROOM + n + SKB_TAILROOM > skb.alloc:
        return skb_load_frame(skb, tmpl, frame, n, keep)
    _skb_copy_meta(skb, tmpl, False)
    _skb_set_frame(skb, frame, n, keep)
    new_end = skb.data + skb.len
    if new_end < old_end:
        bulk_zero(head + new_end, old_end - new_end)
    lo = new_end if new_end > old_cap else old_cap
    if skb.cap > lo:
        bulk_zero(head + lo, skb.cap - lo)
    return True


cdef inline void _skb_copy_meta(Skb* skb, const Skb* tmpl, bint whole) noexcept nogil:
    """Copy the template's metadata (without ``whole``: but ``tun`` and the socket
    views), keeping ``skb``'s own buffers."""
    cdef uint8_t* head = skb.head
    cdef uint32_t alloc = skb.alloc
    cdef CloneRec* clones = skb.clones
    cdef size_t cap_clones = skb.cap_clones
    cdef uint8_t* clone_buf = skb.clone_buf
    cdef size_t clone_cap = skb.clone_cap
    cdef char* printk = skb.printk
    cdef size_t printk_cap = skb.printk_cap
    cdef size_t tun = <size_t>(<const char*>&tmpl.tun - <const char*>tmpl)
    cdef size_t tun_end = tun + sizeof(TunnelInfo)
    cdef size_t view = <size_t>(<const char*>&tmpl.sk_view - <const char*>tmpl)
    # the two socket views, side by side, are filled when used (first read, the assign)
    cdef size_t views_end = (<size_t>(<const char*>&tmpl.reqsk_view - <const char*>tmpl)
                             + SK_VIEW_SIZE)
    # bulk_copy even for the reload's constant sizes: inlined by gcc as 16-byte moves
    # they ran 29 fewer instructions a replayed packet and made the JIT replay loop
    # slower in CPU time (bench/README.md, "interp")
    if whole:
        bulk_copy(skb, tmpl, sizeof(Skb))
    else:
        bulk_copy(skb, tmpl, tun)
        bulk_copy(<char*>skb + tun_end, <const char*>tmpl + tun_end, view - tun_end)
        memcpy(<char*>skb + views_end, <const char*>tmpl + views_end,
               sizeof(Skb) - views_end)
    skb.head, skb.alloc = head, alloc
    skb.clones, skb.cap_clones, skb.nclones = clones, cap_clones, 0
    skb.clone_buf, skb.clone_cap, skb.clone_len = clone_buf, clone_cap, 0
    skb.printk, skb.printk_cap, skb.printk_len = printk, printk_cap, 0


cdef inline void _skb_set_frame(Skb* skb, const uint8_t* frame, uint32_t n,
                                uint32_t keep) noexcept nogil:
    """The frame's bytes after the headroom and what the kernel derives from them on
    receive (skb_load_frame's work past the metadata)."""
    cdef uint8_t* head = skb.head
    cdef uint8_t pkt_type
    cdef uint16_t tpid = (frame[12] << 8) | frame[13]
    skb.cap = SKB_HEADROOM + n + SKB_TAILROOM
    if keep & SKB_KEEP_UNTAG and not skb.vlan_present and (tpid == 0x8100 or tpid == 0x88a8):
        # skb_vlan_untag: the outer tag becomes metadata, the bytes close up (the caller
        # has dropped a frame too short for it)
        skb.vlan_present, skb.vlan_proto = True, bswap16(tpid)
        skb.vlan_tci = (frame[14] << 8) | frame[15]
        if skb.profile == PROFILE_V46:
            skb.vlan_tci &= ~0x1000
        memcpy(head + SKB_HEADROOM, frame, 2 * ETH_ALEN)
        memcpy(head + SKB_HEADROOM + 2 * ETH_ALEN, frame + 2 * ETH_ALEN + VLAN_HLEN,
               n - 2 * ETH_ALEN - VLAN_HLEN)
        n -= VLAN_HLEN
    else:
        memcpy(head + SKB_HEADROOM, frame, n)
    skb.data = skb.mac_header = SKB_HEADROOM
    skb.network_header = SKB_HEADROOM + ETH_HLEN
    skb.transport_header = NO_HEADER
    skb.len = n
    pkt_type = skb.pkt_type
    if keep & SKB_KEEP_PROTOCOL:
        eth_type_trans(skb)
    else:
        skb.protocol = eth_type_trans(skb)
    if keep & SKB_KEEP_PKT_TYPE:
        skb.pkt_type = pkt_type
    if keep & SKB_KEEP_NETWORK:
        skb.data += ETH_HLEN
        skb.len -= ETH_HLEN
    if not keep & SKB_KEEP_WIRE_LEN:
        skb.wire_len = skb.len
    if skb.ip_summed == CHECKSUM_COMPLETE:
        skb.csum = skb_csum_now(skb)


cdef uint32_t skb_keep_bits(dict fields):
    """skb_load_frame's ``keep`` for a template made with ``fields`` (untagging is the
    caller's to add)."""
    if not fields:
        return 0
    return ((SKB_KEEP_PROTOCOL if "protocol" in fields else 0)
            | (SKB_KEEP_PKT_TYPE if "pkt_type" in fields else 0)
            | (SKB_KEEP_WIRE_LEN if "wire_len" in fields else 0)
            | (SKB_KEEP_NETWORK if fields.get("sf_start") == "network" else 0))


cdef void skb_wire_bytes(Skb* skb, uint8_t* out) noexcept nogil:
    """The frame as a capture on the wire shows it: a hardware-accelerated tag is
    inserted after the MAC addresses.  ``out`` holds skb_wire_len() bytes."""
    cdef uint8_t* p = skb_data(skb)
    cdef uint16_t tci
    if skb_wire_len(skb) == skb.len:
        memcpy(out, p, skb.len)
        return
    tci = skb.vlan_tci
    memcpy(out, p, 2 * ETH_ALEN)
    memcpy(out + 2 * ETH_ALEN, &skb.vlan_proto, 2)
    out[14] = tci >> 8
    out[15] = tci & 0xff
    memcpy(out + 2 * ETH_ALEN + VLAN_HLEN, p + 2 * ETH_ALEN, skb.len - 2 * ETH_ALEN)


cdef bint skb_append_clone(Skb* skb, uint32_t ifindex, uint32_t flags) noexcept nogil:
    """Record a clone of the packet as it is now (clone_redirect)."""
    cdef size_t n = skb_wire_len(skb)
    if not _grow(<void**>&skb.clones, &skb.cap_clones, skb.nclones, sizeof(CloneRec)):
        return False
    while skb.clone_len + n > skb.clone_cap:
        if not _grow(<void**>&skb.clone_buf, &skb.clone_cap, skb.clone_cap, 1):
            return False
    skb_wire_bytes(skb, skb.clone_buf + skb.clone_len)
    skb.clones[skb.nclones].ifindex = ifindex
    skb.clones[skb.nclones].flags = flags
    skb.clones[skb.nclones].offset = skb.clone_len
    skb.clones[skb.nclones].length = n
    skb.nclones += 1
    skb.clone_len += n
    return True


cdef bint skb_printk(Skb* skb, const char* text, size_t n) noexcept nogil:
    """Append one line of trace_printk output (without its newline)."""
    while skb.printk_len + n + 1 > skb.printk_cap:
        if not _grow(<void**>&skb.printk, &skb.printk_cap, skb.printk_cap, 1):
            return False
    memcpy(skb.printk + skb.printk_len, text, n)
    skb.printk[skb.printk_len + n] = 10
    skb.printk_len += n + 1
    return True


# --- the context's access rules, copied per program from verifier/rules.py ---------

# field ids, as in verifier/rules.py FIELDS
cdef enum:
    F_LEN = 1
    F_PKT_TYPE
    F_MARK
    F_QUEUE_MAPPING
    F_PROTOCOL
    F_VLAN_PRESENT
    F_VLAN_TCI
    F_VLAN_PROTO
    F_PRIORITY
    F_INGRESS_IFINDEX
    F_IFINDEX
    F_TC_INDEX
    F_CB
    F_HASH
    F_TC_CLASSID
    F_DATA
    F_DATA_END
    F_NAPI_ID
    F_FAMILY
    F_REMOTE_IP4
    F_LOCAL_IP4
    F_REMOTE_IP6
    F_LOCAL_IP6
    F_REMOTE_PORT
    F_LOCAL_PORT
    F_DATA_META
    F_FLOW_KEYS
    F_TSTAMP
    F_WIRE_LEN
    F_GSO_SEGS
    F_SK
    F_GSO_SIZE
    F_TSTAMP_TYPE
    F_PADDING
    F_HWTSTAMP

# --- checksum arithmetic shared by the helpers (x86-64 csum_partial, csum_fold) -------

cdef uint32_t csum_partial(const uint8_t* buf, size_t n, uint32_t seed) noexcept nogil:
    """The kernel's csum_partial on x86-64: an end-around-carry sum of little-endian
    32-bit words (a trailing partial word zero-padded), plus ``seed``; 0 only when
    everything is 0, otherwise in [1, 0xffffffff]."""
    cdef uint64_t s = seed
    cdef uint32_t w
    cdef size_t k = 0
    while k + 4 <= n:
        memcpy(&w, buf + k, 4)
        s += w
        k += 4
    if k < n:
        w = 0
        memcpy(&w, buf + k, n - k)
        s += w
    if s == 0:
        return 0
    s %= 0xffffffffU
    return <uint32_t>s if s else 0xffffffffU


cdef inline uint32_t csum_add(uint32_t a, uint32_t b) noexcept nogil:
    cdef uint64_t s = <uint64_t>a + b
    return <uint32_t>((s & 0xffffffffU) + (s >> 32))


cdef inline uint32_t csum_sub(uint32_t a, uint32_t b) noexcept nogil:
    return csum_add(a, ~b)


cdef inline uint16_t csum_fold(uint32_t x) noexcept nogil:
    x = (x & 0xffff) + (x >> 16)
    x = (x & 0xffff) + (x >> 16)
    return <uint16_t>~x


cdef inline void skb_postpull_rcsum(Skb* skb, const uint8_t* start, uint32_t n) noexcept nogil:
    """skb_postpull_rcsum: bytes [start, start+n) left what a CHECKSUM_COMPLETE sum covers."""
    if skb.ip_summed == CHECKSUM_COMPLETE:
        skb.csum = ~csum_partial(start, n, ~skb.csum)


cdef inline void skb_postpush_rcsum(Skb* skb, const uint8_t* start, uint32_t n) noexcept nogil:
    """skb_postpush_rcsum: bytes [start, start+n) joined what a CHECKSUM_COMPLETE sum covers."""
    if skb.ip_summed == CHECKSUM_COMPLETE:
        skb.csum = csum_add(skb.csum, csum_partial(start, n, 0))


cdef inline uint32_t skb_mac_len(Skb* skb) noexcept nogil:
    """skb_mac_header_len(): the network header's distance from the MAC header."""
    return skb.network_header - skb.mac_header


cdef uint32_t skb_csum_now(Skb* skb) noexcept nogil:
    """What skb->csum should be for CHECKSUM_COMPLETE: the sum over [network header, end)."""
    cdef uint32_t end = skb.data + skb.len
    if skb.network_header >= end:
        return 0
    return csum_partial(skb.head + skb.network_header, end - skb.network_header, 0)


# --- legacy packet loads ------------------------------------------------------------

cdef bint skb_ld_packet(Skb* skb, int32_t k, int size, uint64_t* out) noexcept nogil:
    """LD_ABS/LD_IND on an skb: big-endian bytes at offset ``k`` from data, or from the
    network (SKF_NET_OFF) or MAC (SKF_LL_OFF) header; False when out of bounds."""
    cdef int64_t start
    cdef int64_t tail = <int64_t>skb.data + skb.len
    cdef const uint8_t* p
    if k >= 0:
        start = <int64_t>skb.data + k
    elif k >= SKF_NET_OFF:
        start = <int64_t>skb.network_header + (k - SKF_NET_OFF)
    elif k >= SKF_LL_OFF:
        start = <int64_t>skb.mac_header + (k - SKF_LL_OFF)
    else:
        return False
    if start + size > tail:
        return False
    p = skb.head + start
    if size == 1:
        out[0] = p[0]
    elif size == 2:
        out[0] = (<uint64_t>p[0] << 8) | p[1]
    else:
        out[0] = (<uint64_t>p[0] << 24) | (<uint64_t>p[1] << 16) | (<uint64_t>p[2] << 8) | p[3]
    return True


# --- building an skb from a frame and keyword fields --------------------------------

#: Keyword fields Program.run() accepts for skb program types, with what they set.
SKB_FIELDS = {
    "mark": "skb->mark", "priority": "skb->priority", "queue_mapping": "u16",
    "tc_index": "u16", "tc_classid": "u16 (cls_bpf presets the filter's classid)",
    "hash": "skb->hash (l4 hash)", "ifindex": "the device (default 1, as test_run's lo)",
    "ingress_ifindex": "skb->skb_iif", "napi_id": "u32", "tstamp": "ns",
    "tstamp_type": "0-2", "wire_len": "default len", "gso_segs": "u16", "gso_size": "u16",
    "hwtstamp": "ns", "cb": "20 bytes or 5 ints", "vlan": "(tpid, tci): an accelerated tag",
    "pkt_type": "override eth_type_trans", "protocol": "override, host order (0x0800)",
    "dev_addr": "device MAC (default 00:00:00:00:00:00)",
    "dev_broadcast": "device broadcast MAC (default 00:00:00:00:00:00, as loopback)",
    "ingress": "run at tc ingress (default False: egress, as test_run)",
    "csum_complete": "skb->ip_summed = CHECKSUM_COMPLETE with a correct skb->csum",
    "tunnel": "received tunnel metadata: dict(id, src, dst (outer addresses, 4 or 16 bytes), "
              "tos, ttl, flags (TUNNEL_* bits, default KEY, plus GENEVE_OPT with options), "
              "label (IPv6), options)",
    "sf_start": "socket filters: 'mac' (AF_PACKET, default) or 'network' (IP sockets, test_run)",
    "ktime": "bpf_ktime_get_ns start value", "ktime_step": "ns added per ktime call",
    "prandom_seed": "seed of bpf_get_prandom_u32", "cpu": "bpf_get_smp_processor_id",
    "cgroup_classid": "bpf_get_cgroup_classid", "route_realm": "bpf_get_route_realm",
    "devices": "ifindexes that exist for clone_redirect besides the packet's own "
               "(default: every ifindex > 0)",
    "pid_tgid": "bpf_get_current_pid_tgid: tgid << 32 | pid (default 0)",
    "uid_gid": "bpf_get_current_uid_gid: gid << 32 | uid (default 0)",
    "comm": "bpf_get_current_comm: the task name, at most 15 bytes (default empty)",
    "env": "the modelled network (pyebpf.Environment; default: test_run's fresh namespace)",
}

_U16_FIELDS = ("queue_mapping", "tc_index", "tc_classid", "gso_segs", "gso_size")


cdef bytes _mac(object value, str name):
    if isinstance(value, str):
        try:
            value = bytes.fromhex(value.replace(":", "").replace("-", ""))
        except ValueError:
            value = b""
    value = bytes(value)
    if len(value) != ETH_ALEN:
        raise ValueError(f"{name} must be a 6-byte MAC address, got {value!r}")
    return value


cdef void _set_tunnel(TunnelInfo* t, dict spec, int profile) except *:
    """Received metadata, as a metadata-mode tunnel device attaches it (mode RX)."""
    unknown = set(spec) - {"id", "src", "dst", "tos", "ttl", "flags", "label", "options"}
    if unknown:
        raise ValueError(f"unknown tunnel keys: {', '.join(sorted(unknown))}")
    src, dst = bytes(spec.get("src", b"")), bytes(spec.get("dst", b""))
    if len(src) not in (4, 16) or len(src) != len(dst):
        raise ValueError("tunnel src and dst must both be 4 (IPv4) or 16 (IPv6) bytes")
    options = bytes(spec.get("options") or b"")
    if len(options) > TUNNEL_OPTS_MAX:
        raise ValueError(f"tunnel options are at most {TUNNEL_OPTS_MAX} bytes")
    memset(t, 0, sizeof(TunnelInfo))
    t.present, t.ipv6 = True, len(src) == 16
    t.id = spec.get("id", 0)
    memcpy(t.addr, <const char*>src, len(src))
    memcpy(tunnel_dst(t), <const char*>dst, len(dst))
    t.tos, t.ttl = spec.get("tos", 0), spec.get("ttl", 64)
    t.flags = spec.get("flags", TUNNEL_KEY | (TUNNEL_GENEVE_OPT if options else 0))
    t.label = spec.get("label", 0)
    if t.label > 0xfffff or (t.label and not t.ipv6):
        raise ValueError("tunnel label is a 20-bit IPv6 flow label")
    if options and not tunnel_opts_present(t, profile):
        mask = TUNNEL_OPTIONS_PRESENT_V46 if profile == PROFILE_V46 else TUNNEL_OPTIONS_PRESENT
        raise ValueError(f"tunnel options need an options bit ({mask:#06x}) in flags "
                         f"{t.flags:#06x}")
    t.opts_len = len(options)
    memcpy(t.opts, <const char*>options, len(options))


cdef void _set_devices(Skb* skb, object value) except *:
    cdef list ids = sorted({int(v) for v in value})
    cdef size_t k
    if any(not 0 < v <= 0x7fffffff for v in ids):
        raise ValueError(f"devices must be ifindexes in 1..2147483647, got {ids!r}")
    skb.devices = <uint32_t*>malloc(max(len(ids), 1) * sizeof(uint32_t))
    if skb.devices == NULL:
        raise MemoryError()
    for k in range(len(ids)):
        skb.devices[k] = ids[k]
    skb.ndevices, skb.devices_listed = len(ids), True


cdef class NetTable:
    """An Environment in C, for the helpers (skb.net points into it)."""
    cdef NetEnv env

    def __dealloc__(self):
        cdef size_t k
        free(self.env.devices)
        free(self.env.sk_cgroups)
        free(self.env.task_cgroups)
        free(self.env.cgroups)
        free(self.env.xattrs)
        free(self.env.routes)
        free(self.env.addrs)
        free(self.env.neighs)
        for k in range(self.env.nsocks):
            free(self.env.socks[k].cgroups)
        free(self.env.socks)
        free(self.env.sock_mem)
        free(self.env.kern_mem)
        free(self.env.next_cookie)
        if self.env.ct != NULL:
            free(self.env.ct.mem)
            free(self.env.ct.state)
            free(self.env.ct.refs)
            free(self.env.ct)


cdef void* _calloc_n(size_t n, size_t size) except NULL:
    cdef void* p = calloc(n if n else 1, size)
    if p == NULL:
        raise MemoryError()
    return p


cdef void _put_addr(uint8_t* dst, object addr):
    """An ipaddress address (or None) into 16 bytes, network order, IPv4 first."""
    cdef bytes raw = addr.packed if addr is not None else b""
    memset(dst, 0, 16)
    memcpy(dst, <const char*>raw, len(raw))


cdef void _fill_world(NetEnv* e, object env) except *:
    """Routes, addresses, neighbours and sockets, and each socket's views."""
    cdef size_t k
    cdef NetRoute* r
    cdef NetAddr* a
    cdef NetNeigh* n
    cdef NetSock* s
    fib = env.fib()
    e.routes = <NetRoute*>_calloc_n(len(fib), sizeof(NetRoute))
    e.nroutes = len(fib)
    for k, (table, rtype, net, ifindex, gw, metric, src, mtu) in enumerate(fib):
        r = &e.routes[k]
        r.table, r.type, r.ifindex, r.metric, r.mtu = table, rtype, ifindex, metric, mtu
        r.family = 2 if net.version == 4 else 10
        r.prefixlen = net.prefixlen
        _put_addr(r.dst, net.network_address)
        r.has_gw, r.has_src = gw is not None, src is not None
        _put_addr(r.gw, gw)
        _put_addr(r.src, src)
    addrs = [(d.ifindex, _environment.ipaddress.ip_interface(t))
             for d in env.devices for t in d.addresses]
    e.addrs = <NetAddr*>_calloc_n(len(addrs), sizeof(NetAddr))
    e.naddrs = len(addrs)
    for k, (ifindex, iface) in enumerate(addrs):
        a = &e.addrs[k]
        a.ifindex, a.prefixlen = ifindex, iface.network.prefixlen
        a.family = 2 if iface.version == 4 else 10
        _put_addr(a.addr, iface.ip)
    e.neighs = <NetNeigh*>_calloc_n(len(env.neighbours), sizeof(NetNeigh))
    e.nneighs = len(env.neighbours)
    for k, nb in enumerate(env.neighbours):
        n = &e.neighs[k]
        ip = _environment.ipaddress.ip_address(nb.addr)
        n.ifindex = env.device_named(nb.dev).ifindex
        n.family = 2 if ip.version == 4 else 10
        n.valid = _environment.NUD_STATES.index(nb.state) < 6
        _put_addr(n.addr, ip)
        memcpy(n.lladdr, <const char*>nb.lladdr, ETH_ALEN)
    queued = env.request_sockets()
    nsocks = len(env.sockets) + len(queued)
    e.socks = <NetSock*>_calloc_n(nsocks, sizeof(NetSock))
    e.sock_mem = <uint8_t*>_calloc_n(nsocks, SOCK_BLOCK)
    e.nsocks = nsocks
    all_views = [_environment.socket_views(env, sk) for sk in env.sockets]
    all_views += [_environment.request_socket_views(env, k, h) for k, h in queued]
    # each socket's kernel struct in a block of the largest one's size (8-aligned)
    sizes = [_kern.kernel_socket_size(v) for v in all_views[:len(env.sockets)]]
    if queued:
        sizes.append(_kern.request_socket_size())
    e.kern_block = max(sizes or [8]) + 7 & ~7
    e.kern_mem = <uint8_t*>_calloc_n(nsocks, e.kern_block)
    if env.sockets:
        reqsk_prepare()         # a listener's request socket, bpf_skc_to_tcp_request_sock's
    for k in range(nsocks):
        s = &e.socks[k]
        views = all_views[k]
        if k < len(env.sockets):
            sk, s.listener = env.sockets[k], -1
        else:
            s.listener, h = queued[k - len(env.sockets)]
            sk = env.sockets[s.listener]
        s.family, s.protocol, s.state = views.family, views.protocol, views.state
        if s.listener >= 0:
            # what the lookups compare: the addresses' family (an IPv4 request socket of
            # a dual-stack listener has the listener's AF_INET6 in its views)
            s.family = 2 if views.local.version == 4 else 10
        s.v6only, s.reuseport = sk.v6only and s.listener < 0, sk.reuseport and s.listener < 0
        s.connected = views.remote is not None
        _put_addr(s.laddr, views.local)
        _put_addr(s.raddr, views.remote)
        s.lport, s.rport = views.lport, views.rport
        s.bound_dev_if = views.bound_dev_if
        # a request socket reports its listener's uid and cgroup (sk_to_full_sk)
        s.cookie, s.uid = env.socket_cookie(k), sk.uid
        s.cgroups = _cgroup_ids(env, sk.cgroup, &s.cgroup_level)
        memcpy(e.sock_mem + k * SOCK_BLOCK, <const char*>views.sock, len(views.sock))
        memcpy(e.sock_mem + k * SOCK_BLOCK + SOCK_TCP_VIEW, <const char*>views.tcp_sock,
               len(views.tcp_sock))
        if s.listener < 0:
            kern = _kern.kernel_socket(sk, views,
                                       address=<uintptr_t>(e.kern_mem + k * e.kern_block))
        else:
            kern = _kern.request_socket(
                h, views, mark=sk.mark,
                listener=<uintptr_t>(e.kern_mem + s.listener * e.kern_block))
        memcpy(e.kern_mem + k * e.kern_block, <const char*>kern, len(kern))


cdef uint64_t* _cgroup_ids(object env, str path, int* level) except NULL:
    """calloc'ed ids of ``path``'s ancestors (index = level), its level in ``level``."""
    cdef list ids = env.cgroup_ancestry(path)
    cdef uint64_t* out = <uint64_t*>calloc(len(ids), sizeof(uint64_t))
    cdef size_t k
    if out == NULL:
        raise MemoryError()
    for k in range(len(ids)):
        out[k] = ids[k]
    level[0] = len(ids) - 1
    return out


cdef int _cgroup_table(NetEnv* e, object env) except -1:
    """e.cgroups: each cgroup's id, parent, level and extended attributes (e.xattrs:
    per attribute a record of name length and value length, u32 each, then the name and
    the value)."""
    cdef dict index = {path: k for k, (path, _) in enumerate(env.cgroups)}
    cdef size_t k
    cdef bytearray blob = bytearray()
    e.cgroups = <NetCgroup*>_calloc_n(max(len(env.cgroups), 1), sizeof(NetCgroup))
    for k, (path, cgroup_id) in enumerate(env.cgroups):
        parts = [p for p in path.split("/") if p]
        e.cgroups[k].id = cgroup_id
        e.cgroups[k].level = len(parts)
        e.cgroups[k].parent = index["/" + "/".join(parts[:len(parts) - 1])] if parts else -1
        e.cgroups[k].xattr_off = len(blob)
        for name, value in env.xattrs(path).items():
            raw = name.encode()
            blob += len(raw).to_bytes(4, "little") + len(value).to_bytes(4, "little")
            blob += raw + value
        e.cgroups[k].xattr_len = len(blob) - e.cgroups[k].xattr_off
    e.ncgroups = len(env.cgroups)
    cdef bytes raw_blob = bytes(blob)
    e.xattrs = <uint8_t*>_calloc_n(len(raw_blob), 1)
    memcpy(e.xattrs, <const char*>raw_blob, len(raw_blob))
    return 0


cdef NetTable _net_table_of(object env):
    cdef NetTable t = NetTable.__new__(NetTable)
    cdef NetDevice* d
    cdef size_t k
    t.env.netns_cookie = env.netns_cookie
    t.env.init_netns_cookie = env.init_netns_cookie
    t.env.next_cookie = <uint64_t*>_calloc_n(1, sizeof(uint64_t))
    t.env.next_cookie[0] = env.request_socket_cookie()
    t.env.devices = <NetDevice*>calloc(max(len(env.devices), 1), sizeof(NetDevice))
    if t.env.devices == NULL:
        raise MemoryError()
    for k, dev in enumerate(env.devices):
        d = &t.env.devices[k]
        d.ifindex, d.mtu, d.up, d.forwarding = dev.ifindex, dev.mtu, dev.up, dev.forwarding
        memcpy(d.mac, <const char*>dev.mac, ETH_ALEN)
    t.env.ndevices = len(env.devices)
    memcpy(t.env.syncookie_secret, <const char*>env.syncookie_secret, 32)
    t.env.ct = <CtTable*>_calloc_n(1, sizeof(CtTable))
    if env.conntrack:
        ct_seed(t.env.ct, env)
    _fill_world(&t.env, env)
    t.env.task_cgroups = _cgroup_ids(env, env.task_cgroup, &t.env.task_cgroup_level)
    _cgroup_table(&t.env, env)
    if env.socket is not None:
        t.env.sk_cgroups = _cgroup_ids(env, env.socket.cgroup, &t.env.sk_cgroup_level)
        t.env.has_sk = True
        t.env.sk_cookie, t.env.sk_uid = env.socket.cookie, env.socket.uid
        t.env.sk_classid = env.socket.classid
    return t


import weakref as _weakref
from . import environment as _environment
from .skb import kern as _kern
_NET_TABLES = {}                # id(env) -> (weak reference to env, its NetTable)
cdef NetTable _default_net = _net_table_of(_environment.Environment())


cdef NetTable net_table(object env):
    """The C form of ``env``, made once per Environment object (found by identity:
    hashing a frozen dataclass per run would cost more than the run)."""
    entry = _NET_TABLES.get(id(env))
    if entry is not None and entry[0]() is env:
        return <NetTable>entry[1]
    if not isinstance(env, _environment.Environment):
        raise TypeError(f"env must be a pyebpf.Environment, not {type(env).__name__}")
    key = id(env)
    t = _net_table_of(env)
    _NET_TABLES[key] = (_weakref.ref(env, lambda _, key=key: _NET_TABLES.pop(key, None)), t)
    return t


cdef const NetDevice* net_device(const NetEnv* net, uint32_t ifindex) noexcept nogil:
    """dev_get_by_index() in the modelled namespace, or NULL."""
    cdef size_t k
    for k in range(net.ndevices):
        if net.devices[k].ifindex == ifindex:
            return &net.devices[k]
    return NULL


cdef void _apply_env(Skb* skb, NetTable t, dict fields) except *:
    """The environment's devices: clone_redirect's targets, and the packet's device's
    MAC (eth_type_trans classifies the frame against it)."""
    cdef const NetDevice* dev = net_device(&t.env, skb.ifindex)
    cdef size_t k
    skb.net = &t.env
    if "devices" not in fields:
        skb.devices = <uint32_t*>malloc(max(t.env.ndevices, 1) * sizeof(uint32_t))
        if skb.devices == NULL:
            raise MemoryError()
        for k in range(t.env.ndevices):
            skb.devices[k] = t.env.devices[k].ifindex
        skb.ndevices, skb.devices_listed = t.env.ndevices, True
    if dev != NULL and "dev_addr" not in fields:
        memcpy(skb.dev_addr, dev.mac, ETH_ALEN)
        if "pkt_type" not in fields:
            eth_type_trans(skb)


cdef void skb_init(Skb* skb, object frame, dict fields, object prog_type, int profile) except *:
    """Fill ``skb`` for one run: the frame's bytes with head- and tailroom, and the
    metadata the kernel derives on receive, then the caller's ``fields``."""
    cdef bytes raw = frame if type(frame) is bytes else (b"" if frame is None else bytes(frame))
    cdef uint32_t n = len(raw)
    memset(skb, 0, sizeof(Skb))
    if n < ETH_HLEN:
        raise ValueError(f"a {n}-byte packet is shorter than an Ethernet header (14 bytes)")
    if n > 0xffff:
        raise ValueError(f"a {n}-byte packet is longer than an skb can hold (65535 bytes)")
    skb.cap = skb.alloc = SKB_HEADROOM + n + SKB_TAILROOM
    skb.head = <uint8_t*>malloc(skb.cap)
    if skb.head == NULL:
        raise MemoryError()
    memset(skb.head, 0, skb.cap)
    memcpy(skb.head + SKB_HEADROOM, <const char*>raw, n)
    skb.data = skb.mac_header = SKB_HEADROOM
    skb.network_header = SKB_HEADROOM + ETH_HLEN
    skb.transport_header = NO_HEADER
    skb.len = n
    skb.profile = profile
    skb.ifindex = 1
    skb.gso_segs = 0
    skb.protocol = eth_type_trans(skb)
    skb.wire_len = n
    skb.prandom = 0x2545F4914F6CDD1D
    skb.net = &_default_net.env
    if not fields:
        return
    fields = dict(fields)
    env = fields.pop("env", None)
    sf_start = fields.pop("sf_start", "mac")
    for name, value in fields.items():
        if name in _U16_FIELDS and not 0 <= value <= 0xffff:
            raise ValueError(f"{name} is a 16-bit field; {value!r} does not fit")
        if name == "mark":
            skb.mark = value
        elif name == "priority":
            skb.priority = value
        elif name == "queue_mapping":
            skb.queue_mapping = value
        elif name == "tc_index":
            skb.tc_index = value
        elif name == "tc_classid":
            skb.tc_classid = value
        elif name == "hash":
            skb.hash, skb.l4_hash = value, value != 0
        elif name == "ifindex":
            skb.ifindex = value
        elif name == "ingress_ifindex":
            skb.ingress_ifindex = value
        elif name == "napi_id":
            skb.napi_id = value
        elif name == "tstamp":
            skb.tstamp = value
        elif name == "tstamp_type":
            skb.tstamp_type = value
        elif name == "wire_len":
            skb.wire_len = value
        elif name == "gso_segs":
            skb.gso_segs = value
        elif name == "gso_size":
            skb.gso_size = value
        elif name == "hwtstamp":
            skb.hwtstamp = value
        elif name == "cb":
            cb = bytes(value) if isinstance(value, (bytes, bytearray)) else b"".join(
                int(v).to_bytes(4, "little") for v in value)
            if len(cb) != 20:
                raise ValueError("cb must be 20 bytes or 5 integers")
            memcpy(skb.cb, <const char*>cb, 20)
        elif name == "vlan":
            if value is not None:
                tpid, tci = value
                if tpid not in (0x8100, 0x88a8) or not 0 <= tci <= 0xffff:
                    raise ValueError("vlan must be (0x8100 or 0x88a8, a 16-bit TCI)")
                # 4.6 kept its presence flag in the DEI bit, so a received tag lost it
                if profile == PROFILE_V46:
                    tci &= ~0x1000
                skb.vlan_present, skb.vlan_proto, skb.vlan_tci = True, bswap16(tpid), tci
        elif name == "pkt_type":
            skb.pkt_type = value
        elif name == "protocol":
            skb.protocol = bswap16(value)
        elif name == "dev_addr" or name == "dev_broadcast":
            mac = _mac(value, name)
            if name == "dev_addr":
                memcpy(skb.dev_addr, <const char*>mac, ETH_ALEN)
            else:
                memcpy(skb.dev_broadcast, <const char*>mac, ETH_ALEN)
            if "pkt_type" not in fields:
                eth_type_trans(skb)
        elif name == "ingress":
            skb.at_ingress = bool(value)
        elif name == "csum_complete":
            if value:
                skb.ip_summed = CHECKSUM_COMPLETE
        elif name == "tunnel":
            if value is not None:
                _set_tunnel(&skb.tun, dict(value), profile)
        elif name == "ktime":
            skb.ktime = value
        elif name == "ktime_step":
            skb.ktime_step = value
        elif name == "prandom_seed":
            skb.prandom = value or 1
        elif name == "cpu":
            skb.cpu = value
        elif name == "cgroup_classid":
            skb.cgroup_classid = value
        elif name == "route_realm":
            skb.route_realm = value
        elif name == "devices":
            if value is not None:
                _set_devices(skb, value)
        elif name == "pid_tgid":
            skb.pid_tgid = value
        elif name == "uid_gid":
            skb.uid_gid = value
        elif name == "comm":
            comm = value.encode() if isinstance(value, str) else bytes(value)
            if len(comm) > 15 or b"\0" in comm:
                raise ValueError(f"comm is at most 15 bytes without NUL, got {comm!r}")
            memcpy(skb.comm, <const char*>comm, len(comm))
        else:
            raise TypeError(f"unknown packet field {name!r}; known: "
                            + ", ".join(sorted(SKB_FIELDS)))
    if env is not None:
        _apply_env(skb, net_table(env), fields)
    if prog_type == 1 and sf_start != "mac":
        if sf_start != "network":
            raise ValueError("sf_start must be 'mac' or 'network'")
        skb.data += ETH_HLEN
        skb.len -= ETH_HLEN
        if "wire_len" not in fields:
            skb.wire_len = skb.len      # as test_run reports it for a socket filter
    elif sf_start != "mac":
        raise ValueError("sf_start applies to socket filters only")
    if skb.ip_summed == CHECKSUM_COMPLETE:
        skb.csum = skb_csum_now(skb)
        skb.csum_checked = True
