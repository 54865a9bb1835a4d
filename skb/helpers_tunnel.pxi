# Tunnel metadata helpers: skb_{get,set}_tunnel_{key,opt} (net/core/filter.c).
# Part of skb/helpers.pxi.  The metadata is skb.tun (TunnelInfo): received from a
# metadata-mode device (run(tunnel=...)), or the per-CPU metadata dst that
# set_tunnel_key attaches (from_helper).  The kernel's per-CPU dst outlives a run; here
# each run starts from a zeroed one, which only the 4.6 profile (no clearing) can tell.
#
# struct bpf_tunnel_key: u32 tunnel_id @0, remote @4 (u32 host order, or 16 bytes of
# IPv6), u8 tos @20, u8 ttl @21, u16 ext / be16 flags @22, u32 label @24, local @28
# (current only): 44 bytes now, 28 in 4.6.

cdef enum:
    TUNNEL_KEY_SIZE = 44
    TUNNEL_KEY_SIZE_V46 = 28
    TUNNEL_CSUM = 0x0001
    TUNNEL_SEQ = 0x0008
    TUNNEL_DONT_FRAGMENT = 0x0100
    TUNNEL_NOCACHE = 0x2000
    IPV6_FLOWLABEL_MASK = 0xfffff


cdef inline bint _tunnel_key_size_ok(uint32_t size, bint v46) noexcept nogil:
    """The sizes of struct bpf_tunnel_key's layouts: the current one and older ones
    (up to remote_ipv6[1], tunnel_ext, tunnel_label, local_ipv4)."""
    return (size == 8 or size == 22 or size == 24 or size == TUNNEL_KEY_SIZE_V46
            or (size == TUNNEL_KEY_SIZE and not v46))


cdef inline void _put_be32_as_host(uint8_t* key, const uint8_t* addr) noexcept nogil:
    # be32_to_cpu of a network-order IPv4 address, stored as the program's u32
    key[0], key[1], key[2], key[3] = addr[3], addr[2], addr[1], addr[0]


cdef uint64_t _get_tunnel_key(TunnelInfo* t, uint8_t* to, uint32_t size, uint64_t flags,
                              bint v46) noexcept nogil:
    cdef uint8_t key[TUNNEL_KEY_SIZE]
    cdef uint32_t id32 = <uint32_t>t.id
    cdef uint64_t accepted = BPF_F_TUNINFO_IPV6 | (0 if v46 else BPF_F_TUNINFO_FLAGS)
    if not t.present or flags & ~accepted:
        return err(EINVAL)
    if t.ipv6 != ((flags & BPF_F_TUNINFO_IPV6) != 0):
        return err(EPROTO)
    # the 8-byte layout has room for an IPv4 remote address only
    if not _tunnel_key_size_ok(size, v46) or (size == 8 and t.ipv6):
        return err(EINVAL)
    # the current kernel writes every byte (unused address words, ext, an IPv4
    # label: 0); 4.6 filled only id, tos, ttl, remote and the IPv6 label, the rest
    # keeping what the program had there (in the older layouts 4.6 copied them from an
    # uninitialised buffer: modelled as untouched)
    memset(key, 0, TUNNEL_KEY_SIZE)
    if v46:
        memcpy(key, to, size)
    memcpy(key, &id32, 4)
    key[20], key[21] = t.tos, t.ttl
    if t.ipv6:
        memcpy(key + 4, t.addr, 16)
        memcpy(key + 24, &t.label, 4)
        if not v46:
            memcpy(key + 28, t.addr + 16, 16)
    else:
        _put_be32_as_host(key + 4, t.addr)
        if not v46:
            _put_be32_as_host(key + 28, t.addr + 4)
    if flags & BPF_F_TUNINFO_FLAGS:
        key[22], key[23] = t.flags >> 8, t.flags & 0xff
    memcpy(to, key, size)
    return 0


cdef uint64_t bpf_skb_get_tunnel_key(Vm* vm, uint64_t r1, uint64_t r2, uint64_t r3,
                                     uint64_t flags, uint64_t e) noexcept nogil:
    cdef uint32_t size = <uint32_t>r3
    cdef uint8_t* to
    cdef uint64_t ret
    if not is_ctx(vm, r1):
        return 0
    to = _mem(vm, r2, size, ACCESS_WRITE)
    if to == NULL:
        return 0
    ret = _get_tunnel_key(&vm.skb.tun, to, size, flags, vm.skb.profile == PROFILE_V46)
    if ret and vm.skb.profile != PROFILE_V46:
        memset(to, 0, size)
    return ret


cdef uint64_t bpf_skb_set_tunnel_key(Vm* vm, uint64_t r1, uint64_t r2, uint64_t r3,
                                     uint64_t flags, uint64_t e) noexcept nogil:
    cdef uint32_t size = <uint32_t>r3
    cdef const uint8_t* frm
    cdef uint8_t key[TUNNEL_KEY_SIZE]
    cdef uint16_t ext
    cdef uint32_t id32, label
    cdef TunnelInfo* t = &vm.skb.tun
    cdef bint v46 = vm.skb.profile == PROFILE_V46
    cdef bint ipv6 = (flags & BPF_F_TUNINFO_IPV6) != 0
    cdef uint64_t accepted = BPF_F_TUNINFO_IPV6 | BPF_F_ZERO_CSUM_TX | BPF_F_DONT_FRAGMENT
    if not is_ctx(vm, r1):
        return 0
    frm = _mem(vm, r2, size, ACCESS_READ)
    if frm == NULL:
        return 0
    if not v46:
        accepted |= BPF_F_SEQ_NUMBER | BPF_F_NO_TUNNEL_KEY
    if flags & ~accepted or not _tunnel_key_size_ok(size, v46):
        return err(EINVAL)
    memset(key, 0, TUNNEL_KEY_SIZE)
    memcpy(key, frm, size)
    memcpy(&ext, key + 22, 2)
    memcpy(&label, key + 24, 4)
    if (label and not ipv6) or ext:
        return err(EINVAL)
    # the skb's route becomes the per-CPU metadata dst; the current kernel clears it
    # first, 4.6 overwrote only the fields below (stale addresses, label and options)
    if not v46 or not t.from_helper:
        memset(t, 0, sizeof(TunnelInfo))
    t.present, t.from_helper, t.ipv6 = True, True, ipv6
    t.flags = TUNNEL_KEY | TUNNEL_CSUM | TUNNEL_NOCACHE
    if flags & BPF_F_DONT_FRAGMENT:
        t.flags |= TUNNEL_DONT_FRAGMENT
    if flags & BPF_F_ZERO_CSUM_TX and not (v46 and ipv6):
        t.flags &= ~TUNNEL_CSUM
    if flags & BPF_F_SEQ_NUMBER:
        t.flags |= TUNNEL_SEQ
    if flags & BPF_F_NO_TUNNEL_KEY:
        t.flags &= ~TUNNEL_KEY
    memcpy(&id32, key, 4)
    t.id = id32
    t.tos, t.ttl = key[20], key[21]
    # remote is the outer destination, local the outer source
    if ipv6:
        memcpy(t.addr + 16, key + 4, 16)
        t.label = label & IPV6_FLOWLABEL_MASK
        if not v46:
            memcpy(t.addr, key + 28, 16)
    else:
        _put_be32_as_host(t.addr + 4, key + 4)
        if not v46:
            _put_be32_as_host(t.addr, key + 28)
    return 0


cdef uint64_t bpf_skb_get_tunnel_opt(Vm* vm, uint64_t r1, uint64_t r2, uint64_t r3,
                                     uint64_t d, uint64_t e) noexcept nogil:
    cdef uint32_t size = <uint32_t>r3
    cdef uint8_t* to
    cdef TunnelInfo* t = &vm.skb.tun
    cdef bint v46 = vm.skb.profile == PROFILE_V46
    cdef uint64_t ret
    if not is_ctx(vm, r1):
        return 0
    to = _mem(vm, r2, size, ACCESS_WRITE)
    if to == NULL:
        return 0
    if not t.present or not tunnel_opts_present(t, vm.skb.profile):
        ret = err(ENOENT)
    elif size < t.opts_len:
        ret = err(ENOMEM)
    else:
        memcpy(to, t.opts, t.opts_len)
        if not v46:
            memset(to + t.opts_len, 0, size - t.opts_len)
        return t.opts_len
    # 4.6 left the buffer as it was on errors
    if not v46:
        memset(to, 0, size)
    return ret


cdef uint64_t bpf_skb_set_tunnel_opt(Vm* vm, uint64_t r1, uint64_t r2, uint64_t r3,
                                     uint64_t d, uint64_t e) noexcept nogil:
    cdef uint32_t size = <uint32_t>r3
    cdef const uint8_t* frm
    cdef TunnelInfo* t = &vm.skb.tun
    if not is_ctx(vm, r1):
        return 0
    frm = _mem(vm, r2, size, ACCESS_READ)
    if frm == NULL:
        return 0
    # only onto this skb's own set_tunnel_key metadata, in whole 32-bit words
    if not t.from_helper or size & 3:
        return err(EINVAL)
    if size > TUNNEL_OPTS_MAX:
        return err(ENOMEM)
    t.opts_len = size
    if size:
        memcpy(t.opts, frm, size)
        # 4.6 did not flag the options present, so they could not be read back
        if vm.skb.profile != PROFILE_V46:
            t.flags |= TUNNEL_OPTIONS_PRESENT
    return 0


cdef void register_tunnel_helpers(helper_fn* table) noexcept:
    table[20] = bpf_skb_get_tunnel_key
    table[21] = bpf_skb_set_tunnel_key
    table[29] = bpf_skb_get_tunnel_opt
    table[30] = bpf_skb_set_tunnel_opt
