# Packet-shape helpers (change_proto, change_type, change_tail, pull_data, change_head,
# adjust_room) and the flow-hash helpers (get_hash_recalc, set_hash_invalid,
# set_hash).  Part of skb/helpers.pxi; net/core/filter.c of 6.18 is the model.
#
# The skb here is always linear, uncloned and writable, so the kernel's
# skb_cow/skb_unclone/linearise steps reduce to skb_reserve() (room, which may move the
# buffer).  GSO: only gso_size/gso_segs exist (test_run lets them be injected); the
# GSO type is always 0, so a GSO skb is never "TCP GSO" nor "UDP_L4 GSO".

from libc.string cimport memmove

cdef enum:
    IPV4_HLEN = 20              # sizeof(struct iphdr)
    IPV6_HLEN = 40              # sizeof(struct ipv6hdr)

cdef uint64_t ADJ_ALLOWED = (0xff000000000000ffULL | BPF_F_ADJ_ROOM_DECAP_L3_IPV4
                             | BPF_F_ADJ_ROOM_DECAP_L3_IPV6)


cdef bint _hdr_push(Skb* skb, uint32_t off, uint32_t n) noexcept nogil:
    """bpf_skb_net_hdr_push: open ``n`` zero bytes at ``off`` from data by moving the
    first ``off`` bytes down; the MAC and network headers keep their offsets from data.
    Zeros add nothing to a CHECKSUM_COMPLETE sum, so skb->csum is left alone."""
    cdef bint trans_same = skb.transport_header == skb.network_header
    # the move reads ``off`` bytes from data, which may run past the end (stale bytes)
    if not skb_reserve(skb, n, off - skb.len if off > skb.len else 0):
        return False
    skb.data -= n
    skb.len += n
    memmove(skb.head + skb.data, skb.head + skb.data + n, off)
    memset(skb.head + skb.data + off, 0, n)
    skb.mac_header -= n
    skb.network_header -= n
    if trans_same:
        skb.transport_header = skb.network_header
    return True


cdef uint64_t _hdr_pop(Skb* skb, uint32_t off, uint32_t n) noexcept nogil:
    """bpf_skb_net_hdr_pop: remove ``n`` bytes at ``off`` from data."""
    cdef bint trans_same = skb.transport_header == skb.network_header
    cdef uint32_t old = skb.data
    if <uint64_t>off + n > skb.len:
        return err(ENOMEM)          # pskb_may_pull(off + n) fails
    skb.data += n
    skb.len -= n
    skb_postpull_rcsum(skb, skb.head + old + off, n)
    memmove(skb.head + skb.data, skb.head + old, off)
    skb.mac_header += n
    skb.network_header += n
    if trans_same:
        skb.transport_header = skb.network_header
    return 0


# --- 31 skb_change_proto, 32 skb_change_type ----------------------------------------

cdef uint64_t bpf_skb_change_proto(Vm* vm, uint64_t r1, uint64_t proto, uint64_t flags,
                                   uint64_t d, uint64_t e) noexcept nogil:
    cdef Skb* skb = vm.skb
    cdef uint16_t to = <uint16_t>proto     # a __be16 argument: the low 16 bits count
    cdef uint64_t ret
    if not is_ctx(vm, r1):
        return 0
    if flags:
        return err(EINVAL)
    if skb.protocol == BE_ETH_P_IP and to == BE_ETH_P_IPV6:
        if not _hdr_push(skb, skb_mac_len(skb), IPV6_HLEN - IPV4_HLEN):
            ret = err(ENOMEM)
        else:
            ret = 0
            skb.protocol = BE_ETH_P_IPV6
    elif skb.protocol == BE_ETH_P_IPV6 and to == BE_ETH_P_IP:
        ret = _hdr_pop(skb, skb_mac_len(skb), IPV6_HLEN - IPV4_HLEN)
        if ret == 0:
            skb.protocol = BE_ETH_P_IP
    else:
        return err(ENOTSUPP)
    if ret == 0:
        skb_clear_hash(skb)
    skb_sync(vm)
    return ret


cdef uint64_t bpf_skb_change_type(Vm* vm, uint64_t r1, uint64_t pkt_type, uint64_t c,
                                  uint64_t d, uint64_t e) noexcept nogil:
    # only PACKET_HOST..PACKET_OTHERHOST (0-3), for the current and the new type
    if not is_ctx(vm, r1):
        return 0
    if vm.skb.pkt_type > 3 or <uint32_t>pkt_type > 3:
        return err(EINVAL)
    vm.skb.pkt_type = <uint8_t>pkt_type
    return 0


# --- 38 skb_change_tail, 39 skb_pull_data, 43 skb_change_head -------------------------

cdef uint32_t _min_len(Skb* skb) noexcept nogil:
    # __bpf_skb_min_len: the network, or else the transport, header offset from data
    cdef int64_t off = <int64_t>skb.network_header - skb.data
    cdef uint32_t min_len = <uint32_t>off if off > 0 else 0
    if skb.transport_header != NO_HEADER:
        off = <int64_t>skb.transport_header - skb.data
        if off > 0:
            min_len = <uint32_t>off
    return min_len


cdef uint64_t bpf_skb_change_tail(Vm* vm, uint64_t r1, uint64_t new_len_, uint64_t flags,
                                  uint64_t d, uint64_t e) noexcept nogil:
    cdef Skb* skb = vm.skb
    cdef uint32_t new_len = <uint32_t>new_len_
    if not is_ctx(vm, r1):
        return 0
    if flags or new_len > SKB_MAX_ALLOC or new_len < _min_len(skb):
        return err(EINVAL)
    if skb.encapsulation:
        return err(ENOTSUPP)
    if new_len > skb.len:
        if not skb_reserve(skb, 0, new_len - skb.len):
            return err(ENOMEM)
        memset(skb.head + skb.data + skb.len, 0, new_len - skb.len)
    # __skb_grow_rcsum/__skb_trim_rcsum give up on CHECKSUM_COMPLETE rather than fix
    # skb->csum (appended zeros leave it right, trimmed bytes do not)
    if new_len != skb.len and skb.ip_summed == CHECKSUM_COMPLETE:
        skb.ip_summed = CHECKSUM_NONE
    skb.len = new_len
    if skb.gso_size:
        skb.gso_size = 0            # skb_gso_reset
        skb.gso_segs = 0
    skb_sync(vm)
    return 0


cdef uint64_t bpf_skb_pull_data(Vm* vm, uint64_t r1, uint64_t len_, uint64_t c, uint64_t d,
                                uint64_t e) noexcept nogil:
    # the bytes are always linear and writable here: only the length check remains
    cdef uint32_t n = <uint32_t>len_
    if not is_ctx(vm, r1):
        return 0
    skb_sync(vm)
    return err(ENOMEM) if n > vm.skb.len else 0


cdef uint64_t bpf_skb_change_head(Vm* vm, uint64_t r1, uint64_t head_room_, uint64_t flags,
                                  uint64_t d, uint64_t e) noexcept nogil:
    cdef Skb* skb = vm.skb
    cdef uint32_t head_room = <uint32_t>head_room_
    cdef uint32_t new_len = skb.len + head_room
    if not is_ctx(vm, r1):
        return 0
    if (flags or <int32_t>head_room < 0 or (skb.gso_size == 0 and new_len > SKB_MAX_ALLOC)
            or new_len < skb.len):
        return err(EINVAL)
    if not skb_reserve(skb, head_room, 0):
        return err(ENOMEM)
    # a new L2 header in front: the network header and skb->protocol stay
    skb.data -= head_room
    skb.len = new_len
    memset(skb.head + skb.data, 0, head_room)
    skb.mac_header = skb.data
    skb_sync(vm)
    return 0


# --- 50 skb_adjust_room --------------------------------------------------------------

cdef inline uint32_t _net_base_len(uint16_t protocol) noexcept nogil:
    if protocol == BE_ETH_P_IP:
        return IPV4_HLEN
    if protocol == BE_ETH_P_IPV6:
        return IPV6_HLEN
    return 0xffffffffU


cdef uint64_t _net_grow(Skb* skb, uint32_t off, uint32_t n, uint64_t flags) noexcept nogil:
    cdef uint32_t inner_mac_len = <uint8_t>(flags >> BPF_ADJ_ROOM_ENCAP_L2_SHIFT)
    cdef bint encap = (flags & (BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 | BPF_F_ADJ_ROOM_ENCAP_L3_IPV6)) != 0
    cdef uint32_t mac_len
    if skb.gso_size:
        return err(ENOTSUPP)        # not TCP GSO, not UDP_L4 GSO (see the file header)
    if encap:
        if flags & BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 and flags & BPF_F_ADJ_ROOM_ENCAP_L3_IPV6:
            return err(EINVAL)
        if flags & BPF_F_ADJ_ROOM_ENCAP_L4_GRE and flags & BPF_F_ADJ_ROOM_ENCAP_L4_UDP:
            return err(EINVAL)
        if flags & BPF_F_ADJ_ROOM_ENCAP_L2_ETH and inner_mac_len < ETH_HLEN:
            return err(EINVAL)
        if skb.encapsulation:
            return err(EALREADY)
        if inner_mac_len > n:
            return err(EINVAL)
    mac_len = skb_mac_len(skb)
    # the ``off`` bytes that move must lie inside the packet (pskb_may_pull(skb, off)):
    # a frame cut short below its network header is refused before anything moves
    # (docs/helpers.md); skb_cow_head's own -ENOMEM is the allocation failing
    if off > skb.len or not _hdr_push(skb, off, n):
        return err(ENOMEM)
    if encap:
        # the inserted room is the outer header; the inner headers are only GSO
        # bookkeeping, which nothing here can observe
        skb.encapsulation = True
        skb.network_header = skb.data + mac_len
        if flags & (BPF_F_ADJ_ROOM_ENCAP_L4_GRE | BPF_F_ADJ_ROOM_ENCAP_L4_UDP):
            skb.transport_header = skb.network_header + (
                IPV6_HLEN if flags & BPF_F_ADJ_ROOM_ENCAP_L3_IPV6 else IPV4_HLEN)
        if skb.protocol == BE_ETH_P_IP and flags & BPF_F_ADJ_ROOM_ENCAP_L3_IPV6:
            skb.protocol = BE_ETH_P_IPV6
        elif skb.protocol == BE_ETH_P_IPV6 and flags & BPF_F_ADJ_ROOM_ENCAP_L3_IPV4:
            skb.protocol = BE_ETH_P_IP
    return 0


cdef uint64_t _net_shrink(Skb* skb, uint32_t off, uint32_t n, uint64_t flags) noexcept nogil:
    cdef uint64_t ret
    if flags & ~(<uint64_t>(BPF_F_ADJ_ROOM_FIXED_GSO | BPF_F_ADJ_ROOM_DECAP_L3_IPV4
                            | BPF_F_ADJ_ROOM_DECAP_L3_IPV6 | BPF_F_ADJ_ROOM_NO_CSUM_RESET)):
        return err(EINVAL)
    if skb.gso_size:
        return err(ENOTSUPP)
    ret = _hdr_pop(skb, off, n)
    if ret:
        return ret
    if skb.protocol == BE_ETH_P_IP and flags & BPF_F_ADJ_ROOM_DECAP_L3_IPV6:
        skb.protocol = BE_ETH_P_IPV6
    elif skb.protocol == BE_ETH_P_IPV6 and flags & BPF_F_ADJ_ROOM_DECAP_L3_IPV4:
        skb.protocol = BE_ETH_P_IP
    return 0


cdef uint64_t bpf_skb_adjust_room(Vm* vm, uint64_t r1, uint64_t len_diff_, uint64_t mode_,
                                  uint64_t flags, uint64_t e) noexcept nogil:
    cdef Skb* skb = vm.skb
    cdef int32_t len_diff = <int32_t>len_diff_
    cdef uint32_t mode = <uint32_t>mode_
    cdef bint shrink = len_diff < 0
    cdef uint32_t n = <uint32_t>(-<int64_t>len_diff if shrink else len_diff)
    cdef uint32_t len_min, len_cur, off
    cdef uint64_t ret
    if not is_ctx(vm, r1):
        return 0
    len_min = _net_base_len(skb.protocol)
    if flags & ~(ADJ_ALLOWED | BPF_F_ADJ_ROOM_NO_CSUM_RESET):
        return err(EINVAL)
    if n > 0xfff:
        return err(EFAULT)
    if skb.protocol != BE_ETH_P_IP and skb.protocol != BE_ETH_P_IPV6:
        return err(ENOTSUPP)
    off = skb_mac_len(skb)
    if mode == BPF_ADJ_ROOM_NET:
        off += len_min
    elif mode != BPF_ADJ_ROOM_MAC:
        return err(ENOTSUPP)
    if flags & (BPF_F_ADJ_ROOM_DECAP_L3_IPV4 | BPF_F_ADJ_ROOM_DECAP_L3_IPV6):
        if not shrink:
            return err(EINVAL)
        if flags & BPF_F_ADJ_ROOM_DECAP_L3_IPV4 and flags & BPF_F_ADJ_ROOM_DECAP_L3_IPV6:
            return err(EINVAL)
        len_min = IPV4_HLEN if flags & BPF_F_ADJ_ROOM_DECAP_L3_IPV4 else IPV6_HLEN
    len_cur = skb.len - (skb.network_header - skb.data)
    if ((shrink and (n >= len_cur or len_cur - n < len_min))
            or (not shrink and skb.len + n > SKB_MAX_ALLOC and skb.gso_size == 0)):
        return err(ENOTSUPP)
    ret = _net_shrink(skb, off, n, flags) if shrink else _net_grow(skb, off, n, flags)
    # __skb_reset_checksum_unnecessary
    if (ret == 0 and not flags & BPF_F_ADJ_ROOM_NO_CSUM_RESET
            and skb.ip_summed == CHECKSUM_UNNECESSARY):
        skb.ip_summed = CHECKSUM_NONE
    skb_sync(vm)
    return ret


# --- 34 get_hash_recalc, 41 set_hash_invalid, 48 set_hash -----------------------------
#
# skb_get_hash(): the flow dissector fills struct flow_keys, whose bytes from `basic`
# on are hashed with SipHash-2-4.  The kernel keys SipHash with a random per-boot
# secret, so its numbers are not reproducible; here the key is fixed (below), which
# gives the kernel's properties (same flow -> same hash, both directions alike, never
# 0) with numbers no kernel shows.  Dissected: VLAN (in the bytes or the accelerated
# tag), IPv4 (fragments), IPv6 (flow label, extension headers, fragments), IPIP and
# IPv6-in-IP, ports of TCP/UDP/UDP-Lite/DCCP/SCTP/ESP, AH's SPI.  Not dissected (the
# kernel goes further): GRE keys and payload, MPLS, PPPoE, TIPC, batman, HSR/PRP.

cdef uint64_t SIPHASH_K0 = 0x0706050403020100ULL
cdef uint64_t SIPHASH_K1 = 0x0f0e0d0c0b0a0908ULL

# struct flow_keys from `basic` on (6.18 include/net/flow_dissector.h)
cdef enum:
    FK_N_PROTO = 0              # __be16
    FK_IP_PROTO = 2
    FK_FLOW_LABEL = 4           # u32, host order
    FK_VLAN = 8                 # u16 id:12 dei:1 prio:3, __be16 tpid, __be16 eth_type
    FK_PORTS = 28               # __be16 src, __be16 dst
    FK_ADDRS = 36               # v4: src, dst; v6: src[16], dst[16]
    FK_SIZE = 68
    MAX_FLOW_DISSECT_HDRS = 15


cdef inline uint64_t _rotl(uint64_t x, int b) noexcept nogil:
    return (x << b) | (x >> (64 - b))


cdef inline void _sipround(uint64_t* v) noexcept nogil:
    v[0] += v[1]; v[1] = _rotl(v[1], 13); v[1] ^= v[0]; v[0] = _rotl(v[0], 32)
    v[2] += v[3]; v[3] = _rotl(v[3], 16); v[3] ^= v[2]
    v[0] += v[3]; v[3] = _rotl(v[3], 21); v[3] ^= v[0]
    v[2] += v[1]; v[1] = _rotl(v[1], 17); v[1] ^= v[2]; v[2] = _rotl(v[2], 32)


cdef inline void _sipblock(uint64_t* v, uint64_t m) noexcept nogil:
    v[3] ^= m
    _sipround(v)
    _sipround(v)
    v[0] ^= m


cdef uint64_t _siphash(const uint8_t* p, size_t n) noexcept nogil:
    """SipHash-2-4 (the kernel's siphash()) with the fixed key."""
    return _siphash_key(p, n, SIPHASH_K0, SIPHASH_K1)


cdef uint64_t _siphash_key(const uint8_t* p, size_t n, uint64_t k0, uint64_t k1) noexcept nogil:
    """SipHash-2-4 under the key (k0, k1) (a siphash_key_t)."""
    cdef uint64_t v[4]
    cdef uint64_t m
    cdef size_t k = 0
    v[0] = k0 ^ 0x736f6d6570736575ULL
    v[1] = k1 ^ 0x646f72616e646f6dULL
    v[2] = k0 ^ 0x6c7967656e657261ULL
    v[3] = k1 ^ 0x7465646279746573ULL
    while k + 8 <= n:
        memcpy(&m, p + k, 8)
        _sipblock(v, m)
        k += 8
    m = 0
    memcpy(&m, p + k, n - k)
    _sipblock(v, m | (<uint64_t>n << 56))
    v[2] ^= 0xff
    for k in range(4):
        _sipround(v)
    return v[0] ^ v[1] ^ v[2] ^ v[3]


cdef inline uint16_t _ld16(const uint8_t* p) noexcept nogil:
    cdef uint16_t v
    memcpy(&v, p, 2)
    return v


cdef inline uint32_t _ld32(const uint8_t* p) noexcept nogil:
    cdef uint32_t v
    memcpy(&v, p, 4)
    return v


cdef inline const uint8_t* _hdr(Skb* skb, uint32_t off, uint32_t n) noexcept nogil:
    # __skb_header_pointer over the linear data: NULL when [off, off+n) is not there
    return skb_data(skb) + off if <uint64_t>off + n <= skb.len else NULL


cdef void _skb_flow_hash(Skb* skb) noexcept nogil:
    """__skb_get_hash_net: dissect, hash the keys, store a software hash."""
    cdef uint8_t keys[FK_SIZE]
    cdef uint32_t addr_len = 0         # 0, 8 (IPv4) or 32 (IPv6): control.addr_type
    cdef bint fragment = False
    cdef bint vlan_seen = False
    cdef uint16_t proto = skb.vlan_proto if skb.vlan_present else skb.protocol
    cdef uint32_t nhoff = skb.network_header - skb.data
    cdef uint8_t ip_proto = 0
    cdef int num_hdrs = 0
    cdef const uint8_t* h
    cdef uint16_t tci, prio_id, u16v
    cdef uint32_t u32v, flow_label = 0
    cdef int poff
    cdef uint8_t tmp[16]
    memset(keys, 0, FK_SIZE)
    while True:                        # proto_again
        if proto == BE_ETH_P_IP:
            h = _hdr(skb, nhoff, 20)
            if h == NULL or (h[0] & 0xf) < 5:
                break                  # out_bad
            nhoff += (h[0] & 0xf) * 4
            ip_proto = h[9]
            memcpy(keys + FK_ADDRS, h + 12, 8)
            addr_len = 8
            if (h[6] & 0x3f) or h[7]:  # MF or a fragment offset
                fragment = True
                break                  # out_good: no ports unless PARSE_1ST_FRAG
        elif proto == BE_ETH_P_IPV6:
            h = _hdr(skb, nhoff, 40)
            if h == NULL:
                break
            ip_proto = h[6]
            nhoff += 40
            memcpy(keys + FK_ADDRS, h + 8, 32)
            addr_len = 32
            flow_label = (<uint32_t>(h[1] & 0xf) << 16) | (<uint32_t>h[2] << 8) | h[3]
            if flow_label:
                memcpy(keys + FK_FLOW_LABEL, &flow_label, 4)
                break                  # FLOW_DISSECTOR_F_STOP_AT_FLOW_LABEL
        elif proto == BE_ETH_P_8021Q or proto == BE_ETH_P_8021AD:
            u16v = proto
            if not vlan_seen and skb.vlan_present:
                proto = skb.protocol
                tci = skb.vlan_tci
            else:
                h = _hdr(skb, nhoff, 4)
                if h == NULL:
                    break
                tci = (h[0] << 8) | h[1]
                proto = _ld16(h + 2)
                nhoff += 4
            if not vlan_seen:          # the outer tag is keyed, an inner one (CVLAN) not
                prio_id = (tci & 0xfff) | (tci & 0xe000)
                memcpy(keys + FK_VLAN, &prio_id, 2)
                memcpy(keys + FK_VLAN + 2, &u16v, 2)
                memcpy(keys + FK_VLAN + 4, &proto, 2)
            vlan_seen = True
            num_hdrs += 1
            if num_hdrs > MAX_FLOW_DISSECT_HDRS:
                break
            continue
        else:
            break                      # ARP and the rest: out with n_proto only
        # ip_proto_again
        while True:
            if (ip_proto == 0 or ip_proto == 43 or ip_proto == 60) and proto == BE_ETH_P_IPV6:
                h = _hdr(skb, nhoff, 2)
                if h == NULL:
                    break
                ip_proto = h[0]
                nhoff += (<uint32_t>h[1] + 1) << 3
            elif ip_proto == 44 and proto == BE_ETH_P_IPV6:
                h = _hdr(skb, nhoff, 8)
                if h == NULL:
                    break
                fragment = True
                nhoff += 8
                ip_proto = h[0]
                break
            else:
                break
            num_hdrs += 1
            if num_hdrs > MAX_FLOW_DISSECT_HDRS:
                break
        if not fragment and (ip_proto == 4 or ip_proto == 41):
            # IPIP / IPv6-in-IP: the inner header's keys replace the outer ones
            proto = BE_ETH_P_IP if ip_proto == 4 else BE_ETH_P_IPV6
            num_hdrs += 1
            if num_hdrs > MAX_FLOW_DISSECT_HDRS:
                break
            continue
        if not fragment:
            poff = 0 if ip_proto in (6, 17, 33, 50, 132, 136) else (4 if ip_proto == 51 else -1)
            if poff >= 0:
                h = _hdr(skb, nhoff + poff, 4)
                if h != NULL:
                    memcpy(keys + FK_PORTS, h, 4)
        break
    memcpy(keys + FK_N_PROTO, &proto, 2)
    keys[FK_IP_PROTO] = ip_proto
    # __flow_hash_consistentify: order the addresses and, separately, the ports
    if addr_len == 8:
        if _ld32(keys + FK_ADDRS + 4) < _ld32(keys + FK_ADDRS):
            memcpy(tmp, keys + FK_ADDRS, 4)
            memcpy(keys + FK_ADDRS, keys + FK_ADDRS + 4, 4)
            memcpy(keys + FK_ADDRS + 4, tmp, 4)
    elif addr_len == 32:
        if memcmp(keys + FK_ADDRS + 16, keys + FK_ADDRS, 16) < 0:
            memcpy(tmp, keys + FK_ADDRS, 16)
            memcpy(keys + FK_ADDRS, keys + FK_ADDRS + 16, 16)
            memcpy(keys + FK_ADDRS + 16, tmp, 16)
    if addr_len and _ld16(keys + FK_PORTS + 2) < _ld16(keys + FK_PORTS):
        memcpy(tmp, keys + FK_PORTS, 2)
        memcpy(keys + FK_PORTS, keys + FK_PORTS + 2, 2)
        memcpy(keys + FK_PORTS + 2, tmp, 2)
    u32v = <uint32_t>_siphash(keys, FK_ADDRS + addr_len)
    skb.hash = u32v if u32v else 1
    skb.sw_hash = True
    # flow_keys_have_l4: ports or an IPv6 flow label
    skb.l4_hash = _ld32(keys + FK_PORTS) != 0 or flow_label != 0


cdef uint64_t bpf_get_hash_recalc(Vm* vm, uint64_t r1, uint64_t b, uint64_t c, uint64_t d,
                                  uint64_t e) noexcept nogil:
    if not is_ctx(vm, r1):
        return 0
    if not vm.skb.l4_hash and not vm.skb.sw_hash:
        _skb_flow_hash(vm.skb)
    return vm.skb.hash


cdef uint64_t bpf_set_hash_invalid(Vm* vm, uint64_t r1, uint64_t b, uint64_t c, uint64_t d,
                                   uint64_t e) noexcept nogil:
    if not is_ctx(vm, r1):
        return 0
    skb_clear_hash(vm.skb)
    return 0


cdef uint64_t bpf_set_hash(Vm* vm, uint64_t r1, uint64_t hash_, uint64_t c, uint64_t d,
                           uint64_t e) noexcept nogil:
    # a software L4 hash: skb_get_hash() returns it until someone clears it
    if not is_ctx(vm, r1):
        return 0
    vm.skb.hash = <uint32_t>hash_
    vm.skb.sw_hash = True
    vm.skb.l4_hash = True
    return 0


cdef void register_shape_helpers(helper_fn* table) noexcept:
    table[31] = bpf_skb_change_proto
    table[32] = bpf_skb_change_type
    table[34] = bpf_get_hash_recalc
    table[38] = bpf_skb_change_tail
    table[39] = bpf_skb_pull_data
    table[41] = bpf_set_hash_invalid
    table[43] = bpf_skb_change_head
    table[48] = bpf_set_hash
    table[50] = bpf_skb_adjust_room
