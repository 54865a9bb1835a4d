# The in-kernel functions that converted classic code calls for three ancillary loads
# (SKF_AD_NLATTR, SKF_AD_NLATTR_NEST, SKF_AD_PAY_OFFSET).  The kernel calls them by
# address; pyebpf installs them in a classic program's helper table under the ids
# isa.CBPF_CALLS gives, past every real helper id, so no eBPF program can reach them.
# Included in pyebpf/_core.pyx after BUILTIN_HELPERS.  r1 = ctx, r2 = A, r3 = X.

cdef enum:
    NLA_HDRLEN = 4
    NLA_TYPE_MASK = 0x3fff          # ~(NLA_F_NESTED | NLA_F_NET_BYTEORDER)


cdef inline uint16_t _nla_u16(const uint8_t* p) noexcept nogil:
    # struct nlattr fields are host order (little-endian here)
    return p[0] | (p[1] << 8)


cdef inline bint _nla_ok(const uint8_t* nla, int64_t rem) noexcept nogil:
    return rem >= NLA_HDRLEN and _nla_u16(nla) >= NLA_HDRLEN and _nla_u16(nla) <= rem


cdef int64_t _nla_find(const uint8_t* head, int64_t rem, uint32_t attrtype) noexcept nogil:
    """nla_find: the offset from ``head`` of the first attribute of ``attrtype``, or -1."""
    cdef int64_t at = 0, step
    while _nla_ok(head + at, rem):
        if (_nla_u16(head + at + 2) & NLA_TYPE_MASK) == attrtype:
            return at
        step = (_nla_u16(head + at) + 3) & ~3           # NLA_ALIGN
        rem -= step
        at += step
    return -1


cdef uint64_t cbpf_get_nlattr(Vm* vm, uint64_t r1, uint64_t a, uint64_t x, uint64_t d,
                              uint64_t e) noexcept nogil:
    # bpf_skb_get_nlattr: the offset of attribute X in the attributes at data + A, or 0
    cdef Skb* skb = vm.skb
    cdef int64_t found
    a, x = <uint32_t>a, <uint32_t>x
    if skb.len < NLA_HDRLEN or a > skb.len - NLA_HDRLEN:
        return 0
    found = _nla_find(skb_data(skb) + a, <int64_t>skb.len - <int64_t>a, <uint32_t>x)
    return <uint64_t>(a + found) if found >= 0 else 0


cdef uint64_t cbpf_get_nlattr_nest(Vm* vm, uint64_t r1, uint64_t a, uint64_t x, uint64_t d,
                                   uint64_t e) noexcept nogil:
    # bpf_skb_get_nlattr_nest: attribute X inside the nested attribute at data + A, or 0
    cdef Skb* skb = vm.skb
    cdef const uint8_t* nla
    cdef int64_t found
    a, x = <uint32_t>a, <uint32_t>x
    if skb.len < NLA_HDRLEN or a > skb.len - NLA_HDRLEN:
        return 0
    nla = skb_data(skb) + a
    if not _nla_ok(nla, <int64_t>skb.len - <int64_t>a):
        return 0
    found = _nla_find(nla + NLA_HDRLEN, <int64_t>_nla_u16(nla) - NLA_HDRLEN, <uint32_t>x)
    return <uint64_t>(a + NLA_HDRLEN + found) if found >= 0 else 0


cdef enum:
    _IPPROTO_HOPOPTS = 0
    _IPPROTO_ICMP = 1
    _IPPROTO_IGMP = 2
    _IPPROTO_IPIP = 4
    _IPPROTO_TCP = 6
    _IPPROTO_UDP = 17
    _IPPROTO_DCCP = 33
    _IPPROTO_IPV6 = 41
    _IPPROTO_ROUTING = 43
    _IPPROTO_FRAGMENT = 44
    _IPPROTO_ICMPV6 = 58
    _IPPROTO_DSTOPTS = 60
    _IPPROTO_SCTP = 132
    _IPPROTO_UDPLITE = 136


cdef uint64_t cbpf_get_pay_offset(Vm* vm, uint64_t r1, uint64_t a, uint64_t x, uint64_t d,
                                  uint64_t e) noexcept nogil:
    # bpf_skb_get_pay_offset -> __skb_get_poff: the flow dissector's transport offset
    # (skb_flow_dissect_flow_keys_basic, no flags) plus the transport header's length;
    # 0 where the dissector gives up.  Followed: the metadata VLAN tag, in-band 802.1Q /
    # 802.1ad tags, IPv4 (fragments, IPIP, IPv6-in-IPv4), IPv6 (hop-by-hop, routing,
    # destination options, fragment headers), ARP.  Not followed (0): GRE, MPLS, PPPoE
    # and the other encapsulations the kernel's dissector knows.
    cdef Skb* skb = vm.skb
    cdef const uint8_t* p = skb_data(skb)
    cdef uint32_t n = skb.len
    cdef uint32_t nhoff = skb.network_header - skb.data
    cdef uint16_t proto = bswap16(skb.vlan_proto if skb.vlan_present else skb.protocol)
    cdef bint tag_in_metadata = skb.vlan_present
    cdef int ip_proto = -1
    cdef bint fragment = False, first_fragment = False
    cdef uint32_t poff, ihl
    while True:
        if proto == 0x8100 or proto == 0x88a8:
            if tag_in_metadata:
                tag_in_metadata = False
                proto = bswap16(skb.protocol)
                continue
            if nhoff + 4 > n:
                return 0
            proto = (p[nhoff + 2] << 8) | p[nhoff + 3]
            nhoff += 4
            continue
        if proto == 0x0800:
            if nhoff + 20 > n or (p[nhoff] & 0xf) < 5:
                return 0
            ihl = (p[nhoff] & 0xf) * 4
            ip_proto = p[nhoff + 9]
            if (p[nhoff + 6] & 0x3f) or p[nhoff + 7]:           # ip_is_fragment
                fragment = True
                first_fragment = not ((p[nhoff + 6] & 0x1f) or p[nhoff + 7])
                nhoff += ihl
                break
            nhoff += ihl
        elif proto == 0x86dd:
            if nhoff + 40 > n:
                return 0
            ip_proto = p[nhoff + 6]
            nhoff += 40
        elif proto == 0x0806 or proto == 0x8035:
            ip_proto = 0
            break
        else:
            return 0
        # the transport protocol, or a header the dissector steps over
        while True:
            if proto == 0x86dd and ip_proto in (_IPPROTO_HOPOPTS, _IPPROTO_ROUTING,
                                                _IPPROTO_DSTOPTS):
                if nhoff + 2 > n:
                    return 0
                ip_proto, nhoff = p[nhoff], nhoff + ((p[nhoff + 1] + 1) << 3)
                continue
            if proto == 0x86dd and ip_proto == _IPPROTO_FRAGMENT:
                if nhoff + 8 > n:
                    return 0
                fragment = True
                first_fragment = not ((p[nhoff + 2] << 8 | p[nhoff + 3]) & 0xfff8)
                ip_proto, nhoff = p[nhoff], nhoff + 8
                break
            break
        if fragment:
            break
        if ip_proto == _IPPROTO_IPIP:
            proto = 0x0800
            continue
        if ip_proto == _IPPROTO_IPV6:
            proto = 0x86dd
            continue
        break
    poff = nhoff if nhoff < n else n                     # thoff, at most the length
    if fragment and not first_fragment:
        return poff
    if ip_proto == _IPPROTO_TCP:
        if poff + 13 > n:
            return poff
        return poff + max(20, (p[poff + 12] & 0xf0) >> 2)
    if ip_proto in (_IPPROTO_UDP, _IPPROTO_UDPLITE, _IPPROTO_ICMP, _IPPROTO_ICMPV6,
                    _IPPROTO_IGMP):
        return poff + 8
    if ip_proto == _IPPROTO_DCCP:
        return poff + 16
    if ip_proto == _IPPROTO_SCTP:
        return poff + 12
    return poff


#: The functions by SKF_AD_* name; Program installs them for classic programs.
CBPF_CALLS = {
    "nlattr": _builtin("skb_get_nlattr", cbpf_get_nlattr),
    "nlattr_nest": _builtin("skb_get_nlattr_nest", cbpf_get_nlattr_nest),
    "pay_offset": _builtin("skb_get_pay_offset", cbpf_get_pay_offset),
}
