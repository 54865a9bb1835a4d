# VLAN tags and clone_redirect: the helpers that move whole headers or copy the packet.
# Part of skb/helpers.pxi.  Kernel sources: bpf_skb_vlan_push/pop and bpf_clone_redirect in
# net/core/filter.c, skb_vlan_push/skb_vlan_pop/__skb_vlan_pop in net/core/skbuff.c,
# __vlan_insert_inner_tag and vlan_set_encap_proto in include/linux/if_vlan.h.
#
# The tag in the metadata (vlan_present/vlan_proto/vlan_tci) is the "accelerated" one that
# the NIC inserts on transmit; a tag in the bytes sits after the MAC addresses, and then
# skb->protocol is its TPID.  Only 802.1Q and 802.1ad count as tags (0x9100 does not).
# tc programs always run with skb->data at the MAC header, so the kernel's -EINVAL (with a
# WARN) for a push or pop elsewhere cannot happen here.

from libc.string cimport memmove

cdef inline bint _is_vlan_proto(uint16_t proto) noexcept nogil:
    return proto == BE_ETH_P_8021Q or proto == BE_ETH_P_8021AD


cdef inline void _put_tag(Skb* skb, uint16_t proto, uint16_t tci) noexcept nogil:
    skb.vlan_present = True
    skb.vlan_proto = proto
    # 4.6 kept its presence flag in bit 12 (VLAN_TAG_PRESENT = CFI/DEI), so a tag's DEI bit
    # is lost once the tag is in the metadata: the ctx read, the wire and a later
    # write-back into the bytes all see the TCI without it
    skb.vlan_tci = tci & ~0x1000 if skb.profile == PROFILE_V46 else tci


cdef uint32_t _mac_rcsum_push(Skb* skb) noexcept nogil:
    """bpf_push_mac_rcsum: at tc ingress skb->csum starts after the MAC header, so the
    current profile adds that header before a helper moves it; returns mac_len."""
    cdef uint32_t mac_len = skb_mac_len(skb)
    if skb.at_ingress and skb.profile != PROFILE_V46:
        skb_postpush_rcsum(skb, skb.head + skb.mac_header, mac_len)
    return mac_len


cdef void _mac_rcsum_pull(Skb* skb, uint32_t mac_len) noexcept nogil:
    """bpf_pull_mac_rcsum: the counterpart, over ``mac_len`` bytes at the (moved) MAC
    header."""
    if skb.at_ingress and skb.profile != PROFILE_V46:
        skb_postpull_rcsum(skb, skb.head + skb.mac_header, mac_len)


cdef int _vlan_insert_tag(Skb* skb, uint16_t proto, uint16_t tci) noexcept nogil:
    """skb_vlan_push's first half: write the metadata tag into the bytes after the MAC
    addresses; 0 or -errno."""
    cdef uint8_t* p
    if not skb_reserve(skb, VLAN_HLEN, 0):
        return -ENOMEM
    skb.data -= VLAN_HLEN
    skb.len += VLAN_HLEN
    skb.mac_header -= VLAN_HLEN
    p = skb_data(skb)
    memmove(p, p + VLAN_HLEN, 2 * ETH_ALEN)
    memcpy(p + 2 * ETH_ALEN, &skb.vlan_proto, 2)
    p[14] = tci >> 8
    p[15] = tci & 0xff
    skb.protocol = skb.vlan_proto
    # 4.6 grew mac_len instead; since 2024 the network header moves onto the new inner
    # tag, as for a frame received with its tags in the payload (measured on 6.18)
    if skb.profile != PROFILE_V46:
        skb.network_header -= VLAN_HLEN
    skb_postpush_rcsum(skb, skb.head + skb.data + 2 * ETH_ALEN, VLAN_HLEN)
    return 0


cdef uint64_t bpf_skb_vlan_push(Vm* vm, uint64_t r1, uint64_t r2, uint64_t r3, uint64_t d,
                                uint64_t e) noexcept nogil:
    cdef Skb* skb = vm.skb
    cdef uint16_t proto = <uint16_t>r2
    cdef uint32_t mac_len
    cdef int ret = 0
    if not is_ctx(vm, r1):
        return 0
    # any other TPID, also 0x8100 not byte-swapped, silently becomes 802.1Q
    if not _is_vlan_proto(proto):
        proto = BE_ETH_P_8021Q
    mac_len = _mac_rcsum_push(skb)
    if skb.vlan_present:
        ret = _vlan_insert_tag(skb, skb.vlan_proto, skb.vlan_tci)
    if ret == 0:
        _put_tag(skb, proto, <uint16_t>r3)
    _mac_rcsum_pull(skb, mac_len)
    skb_sync(vm)
    return err(-ret) if ret else 0


cdef int _vlan_pop_payload(Skb* skb, uint16_t* tci) noexcept nogil:
    """__skb_vlan_pop: remove the tag in the bytes after the MAC addresses; skb->protocol
    becomes the EtherType it encapsulated; 0 or -errno."""
    cdef uint8_t* p
    cdef uint16_t encap
    cdef uint32_t raw_at
    if skb.len < ETH_HLEN + VLAN_HLEN:
        return -ENOMEM
    skb_postpull_rcsum(skb, skb.head + skb.data + 2 * ETH_ALEN, VLAN_HLEN)
    p = skb_data(skb)
    tci[0] = p[14] << 8 | p[15]
    memcpy(&encap, p + 16, 2)
    # vlan_set_encap_proto reads the two bytes after the tag unchecked: for a frame of
    # exactly 18 bytes they lie in the tailroom
    raw_at = skb.data + ETH_HLEN + VLAN_HLEN
    memmove(p + VLAN_HLEN, p, 2 * ETH_ALEN)
    skb.data += VLAN_HLEN
    skb.len -= VLAN_HLEN
    skb.mac_header += VLAN_HLEN
    if bswap16(encap) >= 0x600:
        skb.protocol = encap
    elif raw_at + 2 <= skb.cap and skb.head[raw_at] == 0xff and skb.head[raw_at + 1] == 0xff:
        skb.protocol = BE_ETH_P_802_3      # raw IPX over 802.3
    else:
        skb.protocol = BE_ETH_P_802_2
    if <int64_t>skb.network_header - <int64_t>skb.data < ETH_HLEN:
        skb.network_header = skb.data + ETH_HLEN
    return 0


cdef inline bint _next_tag_in_payload(Skb* skb) noexcept nogil:
    # 4.6 left a tag whose 4 bytes are not all there alone instead of failing
    return _is_vlan_proto(skb.protocol) and not (
        skb.profile == PROFILE_V46 and skb.len < ETH_HLEN + VLAN_HLEN)


cdef int _vlan_pop(Skb* skb) noexcept nogil:
    """skb_vlan_pop: drop the outermost tag, then move the next one into the metadata."""
    cdef uint16_t tci
    cdef uint16_t proto
    cdef int ret
    if skb.vlan_present:
        skb.vlan_present = False
        skb.vlan_tci = 0
        # 4.6 cleared only vlan_tci (its presence flag lived there)
        if skb.profile != PROFILE_V46:
            skb.vlan_proto = 0
    else:
        if not _next_tag_in_payload(skb):
            return 0
        ret = _vlan_pop_payload(skb, &tci)
        if ret:
            return ret
    if not _next_tag_in_payload(skb):
        return 0
    proto = skb.protocol
    ret = _vlan_pop_payload(skb, &tci)
    if ret:
        return ret
    _put_tag(skb, proto, tci)
    return 0


cdef uint64_t bpf_skb_vlan_pop(Vm* vm, uint64_t r1, uint64_t b, uint64_t c, uint64_t d,
                               uint64_t e) noexcept nogil:
    cdef Skb* skb = vm.skb
    cdef uint32_t mac_len
    cdef int ret
    if not is_ctx(vm, r1):
        return 0
    mac_len = _mac_rcsum_push(skb)
    ret = _vlan_pop(skb)
    # __skb_vlan_pop reset mac_len to the new network header distance
    if ret == 0:
        mac_len = skb_mac_len(skb)
    _mac_rcsum_pull(skb, mac_len)
    skb_sync(vm)
    return err(-ret) if ret else 0


cdef bint skb_device_exists(Skb* skb, uint32_t ifindex) noexcept nogil:
    """Whether dev_get_by_index() finds ``ifindex`` (an int there): with run(devices=...)
    the listed ifindexes and the packet's own device, otherwise every ifindex above 0."""
    cdef size_t k
    if <int32_t>ifindex <= 0:
        return False
    if not skb.devices_listed or ifindex == skb.ifindex:
        return True
    for k in range(skb.ndevices):
        if skb.devices[k] == ifindex:
            return True
    return False


cdef uint64_t bpf_clone_redirect(Vm* vm, uint64_t r1, uint64_t ifindex, uint64_t flags,
                                 uint64_t d, uint64_t e) noexcept nogil:
    cdef Skb* skb = vm.skb
    if not is_ctx(vm, r1):
        return 0
    if flags & ~(<uint64_t>BPF_F_INGRESS):
        return err(EINVAL)
    if not skb_device_exists(skb, <uint32_t>ifindex):
        return err(EINVAL)
    # the clone is sent at once; the original goes on unchanged (6.18 unclones it, which
    # is why packet pointers must be reloaded).  Every modelled device is Ethernet and
    # every frame has its MAC header, so __bpf_redirect_common's -ERANGE cannot happen.
    skb_sync(vm)
    if not skb_append_clone(skb, <uint32_t>ifindex, <uint32_t>flags):
        return err(ENOMEM)
    # what dev_queue_xmit / netif_rx return for a device that is up and takes the packet
    return 0


cdef void register_vlan_helpers(helper_fn* table) noexcept:
    table[13] = bpf_clone_redirect
    table[18] = bpf_skb_vlan_push
    table[19] = bpf_skb_vlan_pop
