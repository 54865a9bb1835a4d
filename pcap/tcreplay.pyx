# cython: language_level=3
"""The tc hook model and the replay loop of ``tcsim``.

A compilation unit of its own on the core's C interface (pyebpf/_core.pxd): it runs a
chain of programs over every frame of a capture in C (one Vm and one Skb reused for all
packets) and fills a C array of outcomes; Python objects are made per packet only for
the output bytes and for rare extras (clones, trace_printk lines, perf events, faults).
"""
#
# Semantics (the kernel's cls_bpf_classify, tcf_bpf_act, __tcf_classify,
# sch_handle_ingress and __netif_receive_skb_core):
#   cls_bpf direct-action: tc_classid preset to the filter's classid, then the verdict
#     through cls_bpf_exec_opcode (OK SHOT STOLEN REDIRECT UNSPEC, + TRAP now; the rest
#     UNSPEC); UNSPEC tries the next program; result classid = major(classid) | tc_classid.
#   cls_bpf classid mode: 0 no match (next program), -1 the filter's classid, else the
#     returned classid; no actions, so a match is TC_ACT_OK.
#   act_bpf (one filter's action list): PIPE RECLASSIFY OK REDIRECT SHOT as given, -1 the
#     action's default, the rest UNSPEC; PIPE runs the next action.
#   __tcf_classify: RECLASSIFY (non-compat mode, as clsact calls it) restarts the chain,
#     at most 16 times (4 in 4.6), then SHOT.
#   clsact hook: SHOT dropped; STOLEN QUEUED TRAP consumed; REDIRECT to bpf_redirect's
#     target (none: dropped); OK RECLASSIFY set tc_index to the classid's minor; the rest
#     continue.  At ingress __netif_receive_skb_core has already moved an in-band outer
#     VLAN tag into the skb's metadata (skb_vlan_untag) before tc runs; skb_vlan_untag
#     frees a frame whose tag is cut off (it pulls the tag and the encapsulated
#     protocol, 6 bytes past the MAC header; 4 bytes, the tag alone, in 4.6), so that
#     frame never reaches tc.  Nothing else __netif_receive_skb_core does before the
#     hook depends on the frame's bytes (generic XDP aside, which tcsim does not run).

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.exc cimport PyErr_CheckSignals
from libc.stdint cimport int32_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport realloc
from libc.string cimport memcmp, memcpy, memset

from pyebpf._core cimport *

from pyebpf import isa as _isa
from pyebpf._core import KTIME_START

include "capio.pxi"


cdef enum:
    MODE_DA = 0
    MODE_CLASSID = 1
    MODE_ACT = 2
    MODE_SF = 3             # one socket filter on a packet socket (tcsim --cbpf)
    MAX_CHAIN = 64

# what the hook did with a packet (tcsim's "action")
cdef enum:
    HOOK_DELIVERED = 0
    HOOK_DROPPED = 1
    HOOK_CONSUMED = 2
    HOOK_REDIRECTED = 3
    HOOK_FAULT = 4          # a program faulted, or the frame cannot be an skb: reported,
                            # treated as dropped
    HOOK_BEFORE_TC = 5      # the receive path freed the frame before the ingress hook

ctypedef struct ChainProg:
    ProgCore* core
    uint64_t budget
    uint32_t tail_call_limit

# One packet's outcome; packed as the struct format tcsim decodes (REPLAY_RECORD).
ctypedef struct TcOutcome:
    int32_t verdict         # the chain's result as the hook sees it (after the mapping)
    int32_t retval          # the last program's r0 (low 32 bits, signed)
    uint32_t classid        # the result classid (valid when has_classid)
    uint32_t mark
    uint32_t priority
    uint32_t redirect_ifindex
    uint32_t tc_index
    uint32_t runs           # programs executed (restarts included)
    uint64_t insns
    uint8_t action
    uint8_t has_classid
    uint8_t redirect_ingress
    uint8_t fault_prog      # 1 + the chain position of the program that faulted, else 0

REPLAY_RECORD = "=iiIIIIIIQBBBBxxxx"


cdef inline int32_t _da_opcode(int32_t code, int profile) noexcept nogil:
    if code == TC_ACT_OK or code == TC_ACT_SHOT or code == TC_ACT_STOLEN \
            or code == TC_ACT_REDIRECT or code == TC_ACT_UNSPEC:
        return code
    if code == TC_ACT_TRAP and profile != PROFILE_V46:
        return code
    return TC_ACT_UNSPEC


cdef inline int32_t _act_opcode(int32_t code, int32_t default) noexcept nogil:
    if code == TC_ACT_PIPE or code == TC_ACT_RECLASSIFY or code == TC_ACT_OK \
            or code == TC_ACT_REDIRECT or code == TC_ACT_SHOT:
        return code
    if code == TC_ACT_UNSPEC:
        return default
    return TC_ACT_UNSPEC


cdef bint _skb_load_frame(Skb* skb, const Skb* tmpl, const uint8_t* frame, uint32_t n,
                          uint32_t keep) noexcept nogil:
    """Reset ``skb`` to the template's metadata with ``frame`` as its bytes, reusing its
    buffers.  ``keep`` bits: 1 protocol, 2 pkt_type, 4 wire_len given by the user,
    8 untag an in-band VLAN tag (ingress).  False when memory cannot be had."""
    cdef uint8_t* head = skb.head
    cdef uint32_t cap = skb.cap
    cdef CloneRec* clones = skb.clones
    cdef size_t cap_clones = skb.cap_clones
    cdef uint8_t* clone_buf = skb.clone_buf
    cdef size_t clone_cap = skb.clone_cap
    cdef char* printk = skb.printk
    cdef size_t printk_cap = skb.printk_cap
    cdef uint32_t need = SKB_HEADROOM + n + SKB_TAILROOM
    cdef uint8_t pkt_type
    cdef uint16_t tpid
    if need > cap:
        head = <uint8_t*>realloc(head, need)
        if head == NULL:
            return False
        cap = need
    memcpy(skb, tmpl, sizeof(Skb))
    skb.head, skb.cap = head, cap
    skb.clones, skb.cap_clones, skb.nclones = clones, cap_clones, 0
    skb.clone_buf, skb.clone_cap, skb.clone_len = clone_buf, clone_cap, 0
    skb.printk, skb.printk_cap, skb.printk_len = printk, printk_cap, 0
    memset(head, 0, cap)
    tpid = (frame[12] << 8) | frame[13]
    if keep & 8 and not skb.vlan_present and (tpid == 0x8100 or tpid == 0x88a8):
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
    if keep & 1:
        eth_type_trans(skb)
    else:
        skb.protocol = eth_type_trans(skb)
    if keep & 2:
        skb.pkt_type = pkt_type
    if not keep & 4:
        skb.wire_len = n
    if skb.ip_summed == CHECKSUM_COMPLETE:
        skb.csum = skb_csum_now(skb)
    return True


cdef int _run_one(Vm* vm, ChainProg* cp, Skb* skb, bint v46) noexcept nogil:
    """Run one program of the chain on ``skb``; returns the Vm status.  A socket filter
    has no direct packet access: no packet region, as in Program.run."""
    cdef int status
    vm_begin(vm, cp.budget, cp.tail_call_limit, v46)
    vm_attach_skb(vm, skb, cp.core.prog_type != BPF_PROG_TYPE_SOCKET_FILTER)
    status = vm_run(vm, cp.core, False)
    vm_end(vm)
    return status


cdef void _run_chain(Vm* vm, ChainProg* chain, int nprogs, int mode, uint32_t classid,
                     int32_t act_default, Skb* skb, TcOutcome* o) noexcept nogil:
    """The classification of one packet and what the clsact hook does with it."""
    cdef bint v46 = skb.profile == PROFILE_V46
    cdef int reclassify_limit = 4 if v46 else 16
    cdef int reclassified = 0
    cdef int k
    cdef int32_t r0, verdict
    if mode == MODE_SF:
        # sk_filter_trim_cap / packet_rcv: 0 drops, otherwise keep that many bytes
        o.runs = 1
        k = _run_one(vm, &chain[0], skb, v46)
        o.insns = chain[0].budget - <uint64_t>vm.budget_left
        if k != STATUS_EXIT:
            o.fault_prog, o.action = 1, HOOK_FAULT
            return
        o.retval = o.verdict = <int32_t>vm.reg[0]
        o.action = HOOK_DELIVERED if <uint32_t>vm.reg[0] else HOOK_DROPPED
        return
    while True:
        verdict = TC_ACT_UNSPEC
        o.has_classid = False
        for k in range(nprogs):
            if mode != MODE_ACT:
                skb.tc_classid = <uint16_t>classid
            o.runs += 1
            if _run_one(vm, &chain[k], skb, v46) != STATUS_EXIT:
                o.insns += chain[k].budget - <uint64_t>vm.budget_left
                o.fault_prog = k + 1
                o.action = HOOK_FAULT
                return
            o.insns += chain[k].budget - <uint64_t>vm.budget_left
            r0 = <int32_t>vm.reg[0]
            o.retval = r0
            if mode == MODE_DA:
                o.classid, o.has_classid = (classid & 0xffff0000u) | skb.tc_classid, True
                verdict = _da_opcode(r0, skb.profile)
                if verdict != TC_ACT_UNSPEC:
                    break
            elif mode == MODE_CLASSID:
                if r0 == 0:
                    continue
                o.classid = classid if r0 == -1 else <uint32_t>r0
                o.has_classid = True
                verdict = TC_ACT_OK
                break
            else:
                o.classid, o.has_classid = classid, True
                verdict = _act_opcode(r0, act_default)
                if verdict != TC_ACT_PIPE:
                    break
        if verdict != TC_ACT_RECLASSIFY:
            break
        if reclassified >= reclassify_limit:
            verdict = TC_ACT_SHOT
            break
        reclassified += 1
    o.verdict = verdict
    if verdict == TC_ACT_SHOT:
        o.action = HOOK_DROPPED
    elif verdict == TC_ACT_STOLEN or verdict == TC_ACT_QUEUED or verdict == TC_ACT_TRAP:
        o.action = HOOK_CONSUMED
    elif verdict == TC_ACT_REDIRECT:
        if skb.redirect_set and skb_device_exists(skb, skb.redirect_ifindex):
            o.action = HOOK_REDIRECTED
            o.redirect_ifindex = skb.redirect_ifindex
            o.redirect_ingress = (skb.redirect_flags & BPF_F_INGRESS) != 0
        else:
            o.action = HOOK_DROPPED
    else:
        if verdict == TC_ACT_OK or verdict == TC_ACT_RECLASSIFY:
            skb.tc_index = <uint16_t>(o.classid & 0xffff)
        o.action = HOOK_DELIVERED


cdef bytes _wire(Skb* skb, object original, const uint8_t* frame, uint32_t n):
    """The packet's bytes on the wire now; the input object itself when unchanged (so
    ``is`` tells the packets the programs changed)."""
    cdef size_t m = skb_wire_len(skb)
    cdef bytes out
    if m == n and skb.vlan_present == 0 and memcmp(skb_data(skb), frame, n) == 0:
        return original
    out = PyBytes_FromStringAndSize(NULL, m)
    skb_wire_bytes(skb, <uint8_t*>PyBytes_AS_STRING(out))
    if m == n and memcmp(PyBytes_AS_STRING(out), frame, n) == 0:
        return original
    return out


cdef inline bint _vlan_tpid(const uint8_t* frame) noexcept nogil:
    """The EtherType is one skb_vlan_untag takes (eth_type_vlan: 802.1Q, 802.1ad)."""
    return (frame[12] == 0x81 and frame[13] == 0x00) or (frame[12] == 0x88 and frame[13] == 0xa8)


cdef uint32_t _untag_needs(int profile) noexcept nogil:
    """The shortest frame skb_vlan_untag keeps: the MAC header, the tag and the
    encapsulated protocol (which joined the pull in 2020; 4.6 pulled the tag alone)."""
    return ETH_HLEN + VLAN_HLEN + (0 if profile == PROFILE_V46 else 2)


def tc_replay(list programs, list frames, *, str mode="da", bint ingress=True,
               uint32_t classid=0, int act_default=TC_ACT_PIPE, dict fields=None,
               bint stop_on_error=False, list ts=None):
    """Run every frame through the chain ``programs`` at a clsact hook.

    With ``ts`` (each frame's capture time, ns), bpf_ktime_get_ns reads the capture's
    clock: ``KTIME_START`` at the first frame, then the time elapsed in the capture
    (never going back, as CLOCK_MONOTONIC does not); without it, ``fields``' ``ktime``.

    Returns ``(records, data, extras)``: ``records`` the packed outcomes (struct format
    REPLAY_RECORD, one per packet replayed), ``data`` each packet's bytes afterwards (as
    on the wire), ``extras`` {index: dict} with "clones" [(ifindex, ingress, bytes)],
    "trace" [lines], "events" [(map, cpu, bytes)], "error" (the ExecutionError, or for a
    frame no skb can hold a one-line message), "dropped_before_tc" (why the receive
    path freed it) where a packet has any.  With ``stop_on_error`` the replay ends
    after the first fault.  A KeyboardInterrupt (SIGINT, or whatever the caller's signal
    handler raises as one) stops it between packets; its ``packet`` attribute is the
    index of the first packet not replayed.
    """
    cdef int nprogs = len(programs)
    cdef ChainProg chain[MAX_CHAIN]
    cdef ProgCore* core
    cdef int imode
    cdef Vm vm
    cdef Skb tmpl
    cdef Skb skb
    cdef uint32_t keep = 0
    cdef Py_ssize_t i, nframes = len(frames)
    cdef size_t c
    cdef bytes frame, out
    cdef bytearray records
    cdef TcOutcome* outs
    cdef TcOutcome* o
    cdef list data = []
    cdef dict extras = {}
    cdef list perf = []
    cdef MapStore* m
    cdef uint32_t untag_needs, n
    cdef uint64_t clock = KTIME_START
    cdef int64_t ts0 = 0, elapsed
    cdef uint64_t KTIME_START_ = KTIME_START
    if not 0 < nprogs <= MAX_CHAIN:
        raise ValueError(f"a chain holds 1 to {MAX_CHAIN} programs, not {nprogs}")
    imode = {"da": MODE_DA, "classid": MODE_CLASSID, "act": MODE_ACT, "sf": MODE_SF}[mode]
    profile = programs[0].profile
    want = (_isa.ProgType.BPF_PROG_TYPE_SCHED_ACT if imode == MODE_ACT
            else _isa.ProgType.BPF_PROG_TYPE_SOCKET_FILTER if imode == MODE_SF
            else _isa.ProgType.BPF_PROG_TYPE_SCHED_CLS)
    if imode == MODE_SF and nprogs != 1:
        raise ValueError(f"a packet socket runs one socket filter, not {nprogs}")
    for k, p in enumerate(programs):
        if p.prog_type != want or p.profile != profile:
            raise ValueError(f"program {k + 1} of the chain is {p!r} with profile "
                             f"{p.profile!r}; this chain needs {want.name} programs with "
                             f"profile {profile!r}")
        core = program_core(p)
        if core.py_helpers:
            raise ValueError(f"program {k + 1} of the chain has Python helpers, which the "
                             "replay loop cannot call")
        chain[k].core, chain[k].budget = core, p.budget
        chain[k].tail_call_limit = p.tail_call_limit
        for mp in p.maps:
            if map_store(mp).type == BPF_MAP_TYPE_PERF_EVENT_ARRAY and mp not in perf:
                perf.append(mp)
    fields = dict(fields or {})
    fields["ingress"] = ingress
    keep = (("protocol" in fields) | ("pkt_type" in fields) << 1 | ("wire_len" in fields) << 2
            | ingress << 3)
    memset(&tmpl, 0, sizeof(Skb))
    memset(&skb, 0, sizeof(Skb))
    records = bytearray(nframes * sizeof(TcOutcome))
    outs = <TcOutcome*><char*>records
    for mp in perf:
        mp.drain()       # events from before the replay are not a packet's
    i = 0
    try:
        skb_init(&tmpl, bytes(ETH_HLEN), fields, want, profile_id(profile))
        untag_needs = _untag_needs(tmpl.profile)
        if ts:
            ts0 = ts[0]
        for i in range(nframes):
            if not i & 255:         # a pending SIGINT ends the replay within 256 packets
                PyErr_CheckSignals()
            frame = frames[i]
            o = &outs[i]
            o.mark, o.priority, o.tc_index = tmpl.mark, tmpl.priority, tmpl.tc_index
            if len(frame) < ETH_HLEN or len(frame) > 0xffff:
                o.action = HOOK_FAULT
                data.append(frame)
                extras[i] = {"error": f"a {len(frame)}-byte frame cannot be replayed (an skb "
                                      "holds 14 to 65535 bytes)"}
                if stop_on_error:
                    del records[(i + 1) * sizeof(TcOutcome):]
                    break
                continue
            n = len(frame)
            if keep & 8 and n < untag_needs and not tmpl.vlan_present \
                    and _vlan_tpid(<const uint8_t*><char*>frame):
                o.action = HOOK_BEFORE_TC
                data.append(frame)
                extras[i] = {"dropped_before_tc": f"skb_vlan_untag: the {n}-byte frame cuts "
                             f"off its VLAN tag (needs {untag_needs} bytes)"}
                continue
            if not _skb_load_frame(&skb, &tmpl, <const uint8_t*><char*>frame, n, keep):
                raise MemoryError()
            if ts:
                elapsed = <int64_t>ts[i] - ts0
                if elapsed > 0 and KTIME_START_ + <uint64_t>elapsed > clock:
                    clock = KTIME_START_ + <uint64_t>elapsed
                skb.ktime = clock
            with nogil:
                _run_chain(&vm, chain, nprogs, imode, classid, act_default, &skb, o)
            o.mark, o.priority, o.tc_index = skb.mark, skb.priority, skb.tc_index
            out = _wire(&skb, frame, <const uint8_t*><char*>frame, len(frame))
            if imode == MODE_SF and o.action == HOOK_DELIVERED and <uint32_t>o.retval < skb.len:
                # the snap length applies to the skb; a tag in its metadata is put back
                out = out[:<uint32_t>o.retval + (VLAN_HLEN if skb.vlan_present else 0)]
            data.append(out)
            if o.fault_prog or skb.nclones or skb.printk_len or perf:
                extra = {}
                if o.fault_prog:
                    extra["error"] = vm_fault(&vm, chain[o.fault_prog - 1].budget)
                    extra["program"] = o.fault_prog - 1
                if skb.nclones:
                    extra["clones"] = [
                        (skb.clones[c].ifindex, bool(skb.clones[c].flags & BPF_F_INGRESS),
                         PyBytes_FromStringAndSize(<char*>skb.clone_buf + skb.clones[c].offset,
                                                   skb.clones[c].length))
                        for c in range(skb.nclones)]
                if skb.printk_len:
                    extra["trace"] = (PyBytes_FromStringAndSize(skb.printk, skb.printk_len - 1)
                                      .decode("utf-8", "backslashreplace").split("\n"))
                for mp in perf:
                    m = map_store(mp)
                    if m.events_len:
                        extra.setdefault("events", []).extend(
                            (mp, cpu, ev) for cpu, ev in mp.drain())
                if extra:
                    extras[i] = extra
                if o.fault_prog and stop_on_error:
                    del records[(i + 1) * sizeof(TcOutcome):]
                    break
        return bytes(records), data, extras
    except KeyboardInterrupt as exc:
        exc.packet = i
        raise
    finally:
        skb.devices = NULL      # the template's
        skb_free(&skb)
        skb_free(&tmpl)
