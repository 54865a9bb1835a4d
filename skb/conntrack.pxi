# The nf_conntrack kfuncs tc programs call (net/netfilter/nf_conntrack_bpf.c,
# nf_nat_bpf.c) over the modelled namespace's conntrack table (NetEnv.ct).  Part of
# kfuncs.pxi.
#
# An entry is a slot of CtTable.mem holding its struct nf_conn as the target BTF lays it
# out (pyebpf.skb.kern.nf_conn_layout): both tuples, zone, status, timeout and mark are
# kept there and nowhere else, so what a program reads through its pointer is the
# model's state, and its writes to ->mark (the one field tc_cls_act_btf_struct_access
# lets it write) are the entry's mark.  Every other byte is zero.  The slots are one
# writable region of the run, added when a kfunc first hands out an entry.
#
# Timeouts are jiffies (nfct_time_stamp: the low 32 bits of jiffies, from the run's
# clock like bpf_jiffies64, without moving it): relative while an entry is allocated,
# absolute from its insertion on.  An entry whose timeout has passed is gone, as the
# kernel's lookups and garbage collector remove it.

cdef enum:
    REGION_CONNTRACK = 1013
    CT_FREE = 0
    CT_ALLOC = 1
    CT_INSERTED = 2
    CT_TUPLE_MAX = 64
    IP_CT_DIR_REPLY = 1
    NF_NAT_MANIP_SRC = 0
    NF_NAT_MANIP_DST = 1

ctypedef struct CtLayout:
    uint32_t slot          # bytes per slot: sizeof(struct nf_conn), 8-aligned
    uint32_t size
    uint32_t tuple_size
    uint32_t timeout
    uint32_t zone
    uint32_t status
    uint32_t mark
    uint32_t tuple[2]
    uint32_t t_saddr
    uint32_t t_sport
    uint32_t t_l3num
    uint32_t t_daddr
    uint32_t t_dport
    uint32_t t_protonum
    uint32_t t_dir

cdef CtLayout CT
cdef uint32_t _CT_HZ = _isa.HZ


cdef void ct_layout() except *:
    cdef dict lay = _kern.nf_conn_layout()
    CT.size, CT.tuple_size = lay["size"], lay["tuple_size"]
    CT.slot = CT.size + 7 & ~7
    CT.timeout, CT.zone, CT.status, CT.mark = lay["timeout"], lay["zone"], lay["status"], \
        lay["mark"]
    CT.tuple[0], CT.tuple[1] = lay["tuple0"], lay["tuple1"]
    CT.t_saddr, CT.t_sport, CT.t_l3num = lay["t_saddr"], lay["t_sport"], lay["t_l3num"]
    CT.t_daddr, CT.t_dport = lay["t_daddr"], lay["t_dport"]
    CT.t_protonum, CT.t_dir = lay["t_protonum"], lay["t_dir"]
    if CT.tuple_size > CT_TUPLE_MAX:
        raise ValueError(f"struct nf_conntrack_tuple of {CT.tuple_size} bytes")


cdef inline uint32_t _nfct_time_stamp(Vm* vm) noexcept nogil:
    return <uint32_t>(_INITIAL_JIFFIES + vm.skb.ktime // TICK_NSEC)


cdef inline uint64_t _ct_status(const uint8_t* ct) noexcept nogil:
    cdef uint64_t v
    memcpy(&v, ct + CT.status, 8)
    return v


cdef inline void _ct_set_status(uint8_t* ct, uint64_t v) noexcept nogil:
    memcpy(ct + CT.status, &v, 8)


cdef inline bint _ct_expired(Vm* vm, const uint8_t* ct) noexcept nogil:
    # nf_ct_is_expired
    cdef uint32_t timeout
    memcpy(&timeout, ct + CT.timeout, 4)
    return <int32_t>(timeout - _nfct_time_stamp(vm)) <= 0


cdef CtTable* _ct_table(Vm* vm) noexcept nogil:
    """The namespace's table, its slots allocated and made a region of this run; NULL
    with a helper fault when memory or regions run out."""
    cdef CtTable* t = vm.skb.net.ct
    cdef int j
    if t.mem == NULL:
        t.mem = <uint8_t*>calloc(NF_CT_MODEL_SLOTS, CT.slot)
        t.state = <uint8_t*>calloc(NF_CT_MODEL_SLOTS, 1)
        t.refs = <uint32_t*>calloc(NF_CT_MODEL_SLOTS, sizeof(uint32_t))
        if t.mem == NULL or t.state == NULL or t.refs == NULL:
            free(t.mem)
            free(t.state)
            free(t.refs)
            t.mem, t.state, t.refs = NULL, NULL, NULL
            helper_fault(vm, b"out of memory for the conntrack table")
            return NULL
    for j in range(vm.map_regions, vm.nregions):
        if vm.regions[j].name == REGION_CONNTRACK:
            return t
    if not add_region(vm, <uintptr_t>t.mem, NF_CT_MODEL_SLOTS * CT.slot, REGION_CONNTRACK):
        return NULL
    return t


cdef int _ct_slot(Vm* vm, CtTable* t, uint64_t ptr) noexcept nogil:
    """The slot an entry pointer names, or -1 with a helper fault (the verifier lets
    only the pointers these kfuncs returned through)."""
    cdef uint64_t off
    if t != NULL and t.mem != NULL and ptr >= <uintptr_t>t.mem:
        off = ptr - <uintptr_t>t.mem
        if off % CT.slot == 0 and off // CT.slot < NF_CT_MODEL_SLOTS and \
                t.state[off // CT.slot] != CT_FREE:
            return <int>(off // CT.slot)
    helper_fault(vm, b"not a conntrack entry")
    return -1


cdef void _ct_tuple(uint8_t* out, const uint8_t* bt, uint32_t tuple_sz, uint8_t proto,
                    uint8_t dir) noexcept nogil:
    """bpf_nf_ct_tuple_parse: struct bpf_sock_tuple's ipv4 (12 bytes) or ipv6 (36) as a
    struct nf_conntrack_tuple, its ends swapped for the reply direction."""
    cdef uint32_t alen = 4 if tuple_sz == 12 else 16
    cdef uint16_t l3num = AF_INET_ if tuple_sz == 12 else AF_INET6_
    memset(out, 0, CT.tuple_size)
    memcpy(out + (CT.t_daddr if dir else CT.t_saddr), bt, alen)
    memcpy(out + (CT.t_saddr if dir else CT.t_daddr), bt + alen, alen)
    memcpy(out + (CT.t_dport if dir else CT.t_sport), bt + 2 * alen, 2)
    memcpy(out + (CT.t_sport if dir else CT.t_dport), bt + 2 * alen + 2, 2)
    memcpy(out + CT.t_l3num, &l3num, 2)
    out[CT.t_protonum] = proto
    out[CT.t_dir] = dir


cdef void _ct_invert(uint8_t* out, const uint8_t* t) noexcept nogil:
    """nf_ct_invert_tuple: the tuple of the other direction."""
    memcpy(out, t, CT.tuple_size)
    memcpy(out + CT.t_saddr, t + CT.t_daddr, 16)
    memcpy(out + CT.t_daddr, t + CT.t_saddr, 16)
    memcpy(out + CT.t_sport, t + CT.t_dport, 2)
    memcpy(out + CT.t_dport, t + CT.t_sport, 2)
    out[CT.t_dir] = not t[CT.t_dir]


cdef inline uint16_t _zone_id(const uint8_t* zone, uint8_t dir) noexcept nogil:
    # nf_ct_zone_id: a zone applies to the directions its dir bits name
    cdef uint16_t id_
    memcpy(&id_, zone, 2)
    return id_ if zone[3] & (1 << dir) else 0


cdef int _ct_find(Vm* vm, CtTable* t, const uint8_t* tuple, const uint8_t* zone,
                  int skip, uint8_t* dir) noexcept nogil:
    """____nf_conntrack_find: the live inserted entry (not ``skip``) one of whose tuples
    is ``tuple`` (nf_ct_tuple_equal: all but dst.dir) in ``zone`` for that direction;
    -1 for none.  ``dir`` gets the direction matched."""
    cdef int k
    cdef uint8_t d
    cdef uint8_t* ct
    for k in range(NF_CT_MODEL_SLOTS):
        if t.state[k] != CT_INSERTED or k == skip:
            continue
        ct = t.mem + k * CT.slot
        if _ct_expired(vm, ct):
            continue
        for d in range(2):
            if memcmp(ct + CT.tuple[d], tuple, CT.t_dir) == 0 and \
                    _zone_id(ct + CT.zone, d) == _zone_id(zone, d):
                dir[0] = d
                return k
    return -1


cdef int _ct_opts(uint8_t* opts, uint32_t opts_sz, uint32_t tuple_sz, bint lookup,
                  uint8_t* zone) noexcept nogil:
    """__bpf_nf_ct_lookup's and __bpf_nf_ct_alloc_entry's checks of struct bpf_ct_opts
    (netns_id 0, error 4, l4proto 8, dir 9, ct_zone_id 10, ct_zone_dir 12, reserved
    13..15), in their order: 0 or -errno.  ``zone`` gets the struct nf_conntrack_zone
    (id, flags, dir) to use; a 16-byte opts' ct_zone_dir 0 becomes the default, in the
    caller's opts too."""
    cdef int32_t netns
    cdef uint16_t zone_id
    cdef uint8_t l4proto = opts[8]
    cdef bint bad_proto = l4proto != IPPROTO_TCP_ and l4proto != IPPROTO_UDP_
    if opts_sz != NF_BPF_CT_OPTS_SZ and opts_sz != NF_BPF_CT_OPTS_OLD_SZ:
        return -EINVAL
    memcpy(&zone_id, opts + 10, 2)
    if opts_sz == NF_BPF_CT_OPTS_SZ:
        if opts[13] or opts[14] or opts[15]:
            return -EINVAL
    elif zone_id:
        return -EINVAL                  # the old layout's reserved bytes
    if lookup and bad_proto:
        return -EPROTO
    memcpy(&netns, opts, 4)
    if netns < -1:
        return -EINVAL
    if bad_proto:
        return -EPROTO
    if tuple_sz != 12 and tuple_sz != 36:
        return -EAFNOSUPPORT
    if netns >= 0:
        return -ENONET                  # the modelled namespace has no peers with ids
    memset(zone, 0, 4)
    zone[3] = NF_CT_DEFAULT_ZONE_DIR
    if opts_sz == NF_BPF_CT_OPTS_SZ:
        if opts[12] == 0:
            opts[12] = NF_CT_DEFAULT_ZONE_DIR
        memcpy(zone, &zone_id, 2)
        zone[3] = opts[12]
    return 0


cdef uint8_t* _ct_args(Vm* vm, uint64_t skb_ctx, uint64_t bt, uint64_t tuple_sz,
                       uint64_t opts, uint64_t opts_sz, bint lookup, uint8_t* zone,
                       const uint8_t** tup, int* rc) noexcept nogil:
    """The opts of a lookup or an alloc (NULL after a memory fault), ``rc`` the outcome
    of its checks, ``tuple`` the program's bpf_sock_tuple."""
    cdef uint8_t* o
    if not is_ctx(vm, skb_ctx):
        return NULL
    # opts->error is at offset 4, written even when opts__sz is shorter
    o = _mem(vm, opts, max(<uint32_t>opts_sz, 8), ACCESS_WRITE)
    if o == NULL:
        return NULL
    tup[0] = _mem(vm, bt, <uint32_t>tuple_sz, ACCESS_READ) if tuple_sz else o
    if tup[0] == NULL:
        return NULL
    rc[0] = _ct_opts(o, <uint32_t>opts_sz, <uint32_t>tuple_sz, lookup, zone)
    return o


cdef inline uint64_t _ct_error(uint8_t* opts, int rc) noexcept nogil:
    memcpy(opts + 4, &rc, 4)
    return 0


cdef uint64_t _k_skb_ct_lookup(Vm* vm, uint64_t skb_ctx, uint64_t bt, uint64_t tuple_sz,
                               uint64_t opts, uint64_t opts_sz) noexcept nogil:
    cdef uint8_t zone[4]
    cdef uint8_t want[CT_TUPLE_MAX]
    cdef const uint8_t* tp
    cdef int rc = 0, k
    cdef uint8_t dir = 0
    cdef CtTable* t
    cdef uint8_t* o = _ct_args(vm, skb_ctx, bt, tuple_sz, opts, opts_sz, True, zone, &tp, &rc)
    if o == NULL:
        return 0
    if rc:
        return _ct_error(o, rc)
    t = _ct_table(vm)
    if t == NULL:
        return 0
    _ct_tuple(want, tp, <uint32_t>tuple_sz, o[8], 0)
    k = _ct_find(vm, t, want, zone, -1, &dir)
    if k < 0:
        return _ct_error(o, -ENOENT)
    t.refs[k] += 1
    o[9] = dir                          # opts->dir = NF_CT_DIRECTION(hash)
    return <uintptr_t>(t.mem + k * CT.slot)


cdef uint64_t _k_skb_ct_alloc(Vm* vm, uint64_t skb_ctx, uint64_t bt, uint64_t tuple_sz,
                              uint64_t opts, uint64_t opts_sz) noexcept nogil:
    cdef uint8_t zone[4]
    cdef const uint8_t* tp
    cdef int rc = 0, k
    cdef uint32_t timeout = NF_CT_ALLOC_TIMEOUT * _CT_HZ
    cdef CtTable* t
    cdef uint8_t* ct
    cdef uint8_t* o = _ct_args(vm, skb_ctx, bt, tuple_sz, opts, opts_sz, False, zone, &tp,
                               &rc)
    if o == NULL:
        return 0
    if rc:
        return _ct_error(o, rc)
    t = _ct_table(vm)
    if t == NULL:
        return 0
    for k in range(NF_CT_MODEL_SLOTS):
        # a free slot, or one whose entry timed out and is no longer held
        if t.state[k] == CT_FREE or (t.state[k] == CT_INSERTED and t.refs[k] == 0 and
                                     _ct_expired(vm, t.mem + k * CT.slot)):
            break
    else:
        return _ct_error(o, -ENOMEM)
    ct = t.mem + k * CT.slot
    memset(ct, 0, CT.slot)
    _ct_tuple(ct + CT.tuple[0], tp, <uint32_t>tuple_sz, o[8], 0)
    _ct_tuple(ct + CT.tuple[1], tp, <uint32_t>tuple_sz, o[8], IP_CT_DIR_REPLY)
    memcpy(ct + CT.zone, zone, 4)
    memcpy(ct + CT.timeout, &timeout, 4)
    t.state[k], t.refs[k] = CT_ALLOC, 1
    return <uintptr_t>ct


cdef uint64_t _k_ct_insert_entry(Vm* vm, uint64_t nfct, uint64_t r2, uint64_t r3,
                                 uint64_t r4, uint64_t r5) noexcept nogil:
    # bpf_ct_insert_entry: the timeout becomes absolute, the entry confirmed, then
    # nf_conntrack_hash_check_insert refuses it (and frees it) when either tuple is
    # already in the table in its zone
    cdef CtTable* t = _ct_table(vm)
    cdef int k = _ct_slot(vm, t, nfct)
    cdef uint8_t* ct
    cdef uint8_t d
    cdef uint32_t timeout
    if k < 0:
        return 0
    ct = t.mem + k * CT.slot
    memcpy(&timeout, ct + CT.timeout, 4)
    timeout += _nfct_time_stamp(vm)
    memcpy(ct + CT.timeout, &timeout, 4)
    _ct_set_status(ct, _ct_status(ct) | IPS_CONFIRMED)
    if _ct_find(vm, t, ct + CT.tuple[0], ct + CT.zone, k, &d) >= 0 or \
            _ct_find(vm, t, ct + CT.tuple[1], ct + CT.zone, k, &d) >= 0:
        t.state[k], t.refs[k] = CT_FREE, 0
        return 0
    t.state[k] = CT_INSERTED
    return nfct


cdef uint64_t _k_ct_release(Vm* vm, uint64_t nfct, uint64_t r2, uint64_t r3, uint64_t r4,
                            uint64_t r5) noexcept nogil:
    cdef CtTable* t = vm.skb.net.ct
    cdef int k = _ct_slot(vm, t, nfct)
    if k >= 0 and t.refs[k]:
        t.refs[k] -= 1
    return 0


cdef uint32_t _msecs_to_jiffies(uint32_t m) noexcept nogil:
    # __msecs_to_jiffies: a negative value is infinite (MAX_JIFFY_OFFSET), which
    # __nf_ct_set_timeout caps at INT_MAX; else rounded up to whole ticks
    cdef uint32_t tick_ms = 1000 // _CT_HZ
    if <int32_t>m < 0:
        return 0x7FFFFFFF
    return (m + tick_ms - 1) // tick_ms


cdef uint64_t _ct_timeout(Vm* vm, uint64_t nfct, uint64_t msecs) noexcept nogil:
    # __nf_ct_set_timeout / __nf_ct_change_timeout: absolute once confirmed
    cdef CtTable* t = vm.skb.net.ct
    cdef int k = _ct_slot(vm, t, nfct)
    cdef uint8_t* ct
    cdef uint32_t timeout = _msecs_to_jiffies(<uint32_t>msecs)
    if k < 0:
        return 0
    ct = t.mem + k * CT.slot
    if _ct_status(ct) & IPS_CONFIRMED:
        timeout += _nfct_time_stamp(vm)
    memcpy(ct + CT.timeout, &timeout, 4)
    return 0


cdef uint64_t _k_ct_set_timeout(Vm* vm, uint64_t nfct, uint64_t msecs, uint64_t r3,
                                uint64_t r4, uint64_t r5) noexcept nogil:
    return _ct_timeout(vm, nfct, msecs)


cdef uint64_t _k_ct_change_timeout(Vm* vm, uint64_t nfct, uint64_t msecs, uint64_t r3,
                                   uint64_t r4, uint64_t r5) noexcept nogil:
    # -ETIME for a dying entry: a program cannot make one (IPS_DYING is unchangeable)
    return _ct_timeout(vm, nfct, msecs)


cdef uint64_t _ct_change_status(Vm* vm, uint64_t nfct, uint64_t status) noexcept nogil:
    # nf_ct_change_status_common: EXPECTED, CONFIRMED and DYING may not differ,
    # SEEN_REPLY and ASSURED may only be set; of the rest only the changeable bits
    # follow the new value
    cdef CtTable* t = vm.skb.net.ct
    cdef int k = _ct_slot(vm, t, nfct)
    cdef uint8_t* ct
    cdef uint64_t cur, d, want = <uint32_t>status
    if k < 0:
        return 0
    ct = t.mem + k * CT.slot
    cur = _ct_status(ct)
    d = cur ^ want
    if d & (IPS_EXPECTED | IPS_CONFIRMED | IPS_DYING):
        return err(EBUSY)
    if d & IPS_SEEN_REPLY and not want & IPS_SEEN_REPLY:
        return err(EBUSY)
    if d & IPS_ASSURED and not want & IPS_ASSURED:
        return err(EBUSY)
    _ct_set_status(ct, cur & ~<uint64_t>IPS_CHANGEABLE | want & IPS_CHANGEABLE)
    return 0


cdef uint64_t _k_ct_set_status(Vm* vm, uint64_t nfct, uint64_t status, uint64_t r3,
                               uint64_t r4, uint64_t r5) noexcept nogil:
    return _ct_change_status(vm, nfct, status)


cdef uint64_t _k_ct_change_status(Vm* vm, uint64_t nfct, uint64_t status, uint64_t r3,
                                  uint64_t r4, uint64_t r5) noexcept nogil:
    return _ct_change_status(vm, nfct, status)


cdef bint _nat_used(Vm* vm, CtTable* t, int k, const uint8_t* tuple) noexcept nogil:
    # nf_nat_used_tuple: another entry already has the reply tuple this one would get
    cdef uint8_t reply[CT_TUPLE_MAX]
    cdef uint8_t d
    _ct_invert(reply, tuple)
    return _ct_find(vm, t, reply, t.mem + k * CT.slot + CT.zone, k, &d) >= 0


cdef uint64_t _k_ct_set_nat_info(Vm* vm, uint64_t nfct, uint64_t addr, uint64_t port,
                                 uint64_t manip, uint64_t r5) noexcept nogil:
    # bpf_ct_set_nat_info -> nf_nat_setup_info with a one-address range (and one port
    # when port > 0): the entry's reply tuple becomes the inverse of the NATed one.
    # Without a port the original one is kept while no entry uses the resulting
    # tuple; else the kernel picks a random free one from the port's class
    # (nf_nat_l4proto_unique_tuple), the model the first free one.
    cdef CtTable* t = vm.skb.net.ct
    cdef int k = _ct_slot(vm, t, nfct)
    cdef uint8_t cur[CT_TUPLE_MAX]
    cdef uint8_t nat[CT_TUPLE_MAX]
    cdef const uint8_t* a
    cdef uint8_t* ct
    cdef uint64_t status, done
    cdef uint16_t l3num, p
    cdef int q, lo, hi
    cdef bint src = <uint32_t>manip == NF_NAT_MANIP_SRC
    if k < 0:
        return 0
    a = _mem(vm, addr, 16, ACCESS_READ)
    if a == NULL:
        return 0
    if <uint32_t>manip != NF_NAT_MANIP_SRC and <uint32_t>manip != NF_NAT_MANIP_DST:
        return err(EINVAL)
    ct = t.mem + k * CT.slot
    status = _ct_status(ct)
    done = IPS_SRC_NAT_DONE if src else IPS_DST_NAT_DONE
    if status & done:
        return err(ENOMEM)              # nf_nat_initialized: NF_DROP
    _ct_invert(cur, ct + CT.tuple[1])
    memcpy(nat, cur, CT.tuple_size)
    memcpy(&l3num, cur + CT.t_l3num, 2)
    memcpy(nat + (CT.t_saddr if src else CT.t_daddr), a, 4 if l3num == AF_INET_ else 16)
    if <int32_t>port > 0:
        p = bswap16(<uint16_t>port)
        memcpy(nat + (CT.t_sport if src else CT.t_dport), &p, 2)
    elif src and _nat_used(vm, t, k, nat):
        memcpy(&p, nat + CT.t_sport, 2)
        p = bswap16(p)
        lo, hi = (1, 511) if p < 512 else (600, 1023) if p < 1024 else (1024, 65535)
        for q in range(lo, hi + 1):
            p = bswap16(<uint16_t>q)
            memcpy(nat + CT.t_sport, &p, 2)
            if not _nat_used(vm, t, k, nat):
                break
    if memcmp(nat, cur, CT.t_dir) != 0:
        _ct_invert(ct + CT.tuple[1], nat)
        status |= IPS_SRC_NAT if src else IPS_DST_NAT
    _ct_set_status(ct, status | done)
    return 0


# the kfuncs below, whose loading makes the layout (ct_prepare)
_CT_KFUNC_NAMES = frozenset((
    "bpf_skb_ct_lookup", "bpf_skb_ct_alloc", "bpf_ct_insert_entry", "bpf_ct_release",
    "bpf_ct_set_timeout", "bpf_ct_change_timeout", "bpf_ct_set_status",
    "bpf_ct_change_status", "bpf_ct_set_nat_info"))


cdef void ct_prepare() except *:
    """The nf_conn layout, from the target BTF, the first time a program calling one of
    these kfuncs is loaded: importing pyebpf parses no BTF."""
    if CT.size == 0:
        ct_layout()


cdef void register_conntrack() except *:
    _kfunc("bpf_skb_ct_lookup", _k_skb_ct_lookup)
    _kfunc("bpf_skb_ct_alloc", _k_skb_ct_alloc)
    _kfunc("bpf_ct_insert_entry", _k_ct_insert_entry)
    _kfunc("bpf_ct_release", _k_ct_release)
    _kfunc("bpf_ct_set_timeout", _k_ct_set_timeout)
    _kfunc("bpf_ct_change_timeout", _k_ct_change_timeout)
    _kfunc("bpf_ct_set_status", _k_ct_set_status)
    _kfunc("bpf_ct_change_status", _k_ct_change_status)
    _kfunc("bpf_ct_set_nat_info", _k_ct_set_nat_info)


# --- the table in Python: the entries an Environment declares, and what it holds ------

cdef bytes _sock_tuple(object s, object d):
    """struct bpf_sock_tuple of (address, port) ends ``s`` -> ``d``: ipv4 (12 bytes) or
    ipv6 (36), ports in network order."""
    return s[0].packed + d[0].packed + s[1].to_bytes(2, "big") + d[1].to_bytes(2, "big")


cdef void ct_seed(CtTable* t, object env) except *:
    """The table of ``env`` holding its declared entries (Environment.conntrack), each
    inserted and confirmed as ``conntrack -I`` leaves one: its timeout ``timeout``
    seconds of jiffies after the modelled clock's start (KTIME_START), the NAT bits of
    the directions its reply tuple rewrites."""
    cdef uint8_t* ct
    cdef bytes bt
    cdef uint8_t proto
    cdef uint32_t timeout
    cdef uint64_t status
    cdef uint32_t start = <uint32_t>(_INITIAL_JIFFIES + <uint64_t>KTIME_START // TICK_NSEC)
    cdef int k
    ct_prepare()
    t.mem = <uint8_t*>calloc(NF_CT_MODEL_SLOTS, CT.slot)
    t.state = <uint8_t*>calloc(NF_CT_MODEL_SLOTS, 1)
    t.refs = <uint32_t*>calloc(NF_CT_MODEL_SLOTS, sizeof(uint32_t))
    if t.mem == NULL or t.state == NULL or t.refs == NULL:
        raise MemoryError()
    for k, entry in enumerate(env.conntrack):
        ct = t.mem + k * CT.slot
        (src, dst), (rsrc, rdst) = entry.tuples()
        proto = IPPROTO_TCP_ if entry.protocol == "tcp" else IPPROTO_UDP_
        bt = _sock_tuple(src, dst)
        _ct_tuple(ct + CT.tuple[0], <const uint8_t*><const char*>bt, len(bt), proto, 0)
        bt = _sock_tuple(rsrc, rdst)
        _ct_tuple(ct + CT.tuple[1], <const uint8_t*><const char*>bt, len(bt), proto, 0)
        ct[CT.tuple[1] + CT.t_dir] = IP_CT_DIR_REPLY
        status = IPS_CONFIRMED
        for name in entry.status:
            status |= _environment.CT_STATUS_NAMES[name]
        if rdst != src:
            status |= IPS_SRC_NAT | IPS_SRC_NAT_DONE
        if rsrc != dst:
            status |= IPS_DST_NAT | IPS_DST_NAT_DONE
        _ct_set_status(ct, status)
        ct[CT.zone] = entry.zone & 0xff
        ct[CT.zone + 1] = entry.zone >> 8
        ct[CT.zone + 3] = entry.zone_dir
        _put_u32(ct + CT.mark, entry.mark)
        timeout = start + <uint32_t>entry.timeout * _CT_HZ
        memcpy(ct + CT.timeout, &timeout, 4)
        t.state[k] = CT_INSERTED


cdef inline void _put_u32(uint8_t* p, uint32_t v) noexcept nogil:
    memcpy(p, &v, 4)


cdef object _ct_end(const uint8_t* tuple, bint dst):
    """"ADDRESS:PORT" of one end of a struct nf_conntrack_tuple."""
    cdef uint16_t l3num, port
    memcpy(&l3num, tuple + CT.t_l3num, 2)
    memcpy(&port, tuple + (CT.t_dport if dst else CT.t_sport), 2)
    raw = PyBytes_FromStringAndSize(<const char*>tuple + (CT.t_daddr if dst else CT.t_saddr),
                                    4 if l3num == AF_INET_ else 16)
    addr = _environment.ipaddress.ip_address(raw)
    return f"{addr}:{bswap16(port)}" if addr.version == 4 else f"[{addr}]:{bswap16(port)}"


def conntrack_entries(env=None, ktime=None):
    """Environment.conntrack_table: the live entries of ``env``'s table (the default
    Environment's for None) as Conntrack values, ``timeout`` the seconds left at
    ``ktime`` (default the process's clock)."""
    cdef NetTable nt = _default_net if env is None else net_table(env)
    cdef CtTable* t = nt.env.ct
    cdef uint8_t* ct
    cdef uint32_t now, timeout
    cdef uint16_t zone
    cdef uint64_t status, clock = _ktime_clock if ktime is None else ktime
    cdef int k
    out = []
    if t.mem == NULL:
        return ()
    now = <uint32_t>(_INITIAL_JIFFIES + clock // TICK_NSEC)
    for k in range(NF_CT_MODEL_SLOTS):
        ct = t.mem + k * CT.slot
        memcpy(&timeout, ct + CT.timeout, 4)
        if t.state[k] != CT_INSERTED or <int32_t>(timeout - now) <= 0:
            continue
        src, dst = _ct_end(ct + CT.tuple[0], False), _ct_end(ct + CT.tuple[0], True)
        rsrc, rdst = _ct_end(ct + CT.tuple[1], False), _ct_end(ct + CT.tuple[1], True)
        status = _ct_status(ct)
        memcpy(&zone, ct + CT.zone, 2)
        out.append(_environment.Conntrack(
            "tcp" if ct[CT.tuple[0] + CT.t_protonum] == IPPROTO_TCP_ else "udp", src, dst,
            <int32_t>(timeout - now) // <int32_t>_CT_HZ,
            reply_src=None if rsrc == dst else rsrc, reply_dst=None if rdst == src else rdst,
            zone=zone, zone_dir=ct[CT.zone + 3],
            status=tuple(name for name, bit in _environment.CT_STATUS_NAMES.items()
                         if status & bit),
            mark=_le32(ct + CT.mark)))
    return tuple(out)
