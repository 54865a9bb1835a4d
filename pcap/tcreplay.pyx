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

from cpython.bytearray cimport PyByteArray_AS_STRING
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.exc cimport PyErr_CheckSignals
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport realloc
from libc.string cimport memcmp, memcpy, memset, strlen

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
    uint8_t decider         # 1 + the chain position of the last program run, else 0

REPLAY_RECORD = "=iiIIIIIIQBBBBBxxx"


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
        o.runs, o.decider = 1, 1
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
            o.decider = k + 1
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


cdef inline bint _vlan_tpid(const uint8_t* frame) noexcept nogil:
    """The EtherType is one skb_vlan_untag takes (eth_type_vlan: 802.1Q, 802.1ad)."""
    return (frame[12] == 0x81 and frame[13] == 0x00) or (frame[12] == 0x88 and frame[13] == 0xa8)


cdef uint32_t _untag_needs(int profile) noexcept nogil:
    """The shortest frame skb_vlan_untag keeps: the MAC header, the tag and the
    encapsulated protocol (which joined the pull in 2020; 4.6 pulled the tag alone)."""
    return ETH_HLEN + VLAN_HLEN + (0 if profile == PROFILE_V46 else 2)


cdef extern from "Python.h":
    char* PyOS_double_to_string(double val, char format_code, int precision, int flags,
                                int* ptype) except NULL
    int Py_DTSF_ADD_DOT_0
    void PyMem_Free(void* p)


# what the report calls a verdict (TC_ACT_* from -1 to 8) and an action (HOOK_*)
cdef const char* VERDICT_NAMES[10]
VERDICT_NAMES[:] = [b"TC_ACT_UNSPEC", b"TC_ACT_OK", b"TC_ACT_RECLASSIFY", b"TC_ACT_SHOT",
                    b"TC_ACT_PIPE", b"TC_ACT_STOLEN", b"TC_ACT_QUEUED", b"TC_ACT_REPEAT",
                    b"TC_ACT_REDIRECT", b"TC_ACT_TRAP"]
cdef const char* ACTION_NAMES[6]
ACTION_NAMES[:] = [b"delivered", b"dropped", b"consumed", b"redirected", b"fault",
                   b"dropped_before_tc"]
cdef enum:
    REPORT_LINE_MAX = 1024      # a report line of a packet without extras fits
    MAX_REDIRECTS = 4096        # redirect targets one replay writes captures for


cdef inline char* _s(char* w, const char* text) noexcept nogil:
    cdef size_t n = strlen(text)
    memcpy(w, text, n)
    return w + n


cdef inline char* _num(char* w, uint64_t v, unsigned base) noexcept nogil:
    """``v`` in decimal or (lower-case) hexadecimal digits."""
    cdef char digits[20]
    cdef int k = 0
    while True:
        digits[k] = b"0123456789abcdef"[v % base]
        k += 1
        v //= base
        if v == 0:
            break
    while k:
        k -= 1
        w[0] = digits[k]
        w += 1
    return w


cdef inline char* _u(char* w, uint64_t v) noexcept nogil:
    return _num(w, v, 10)


cdef inline char* _i(char* w, int64_t v) noexcept nogil:
    if v < 0:
        w[0] = 45
        return _num(w + 1, <uint64_t>(-(v + 1)) + 1, 10)
    return _num(w, <uint64_t>v, 10)


include "annotate.pxi"


cdef class Loop:
    """One replay loop: a chain of programs at a hook, its Vm and skb, and what it has
    replayed so far (``count``, ``counts`` per action, ``changed``).  Nothing of it is
    global, so several loops may run side by side on parts of a capture.

    ``replay`` runs a list of frames; ``run_chunk`` the records a :class:`Scanner`
    found in a chunk of a capture, straight into the writers."""
    cdef ChainProg chain[MAX_CHAIN]
    cdef int nprogs, mode
    cdef uint32_t classid, keep, untag_needs
    cdef int32_t act_default
    cdef Skb tmpl, skb
    cdef Vm vm
    cdef bint use_ts, started
    cdef public bint stop_on_error, stopped
    cdef uint64_t clock, ktime_start
    cdef uint64_t ts0
    cdef list perf
    cdef uint8_t* eth           # a frame as tc sees it, and the programs' output
    cdef uint8_t* out
    cdef uint64_t counts_[6]
    cdef public uint64_t count, changed, truncated
    cdef public dict extras     # {index: dict} of the chunk (or list) last replayed
    cdef uint64_t rd_keys[MAX_REDIRECTS]
    cdef list rd_writers
    cdef public object redirect_writer   # (ifindex, ingress) -> CaptureWriter
    cdef public object report_slow       # (index, fields, extra) -> bytes, for lines with extras
    cdef object programs
    cdef bint extra_here        # the packet being replayed has an entry in extras
    # the summary of tcsim --json, counted here: packets per verdict (-1..8, of those
    # that reached one), per redirect target, bytes in (as tc saw them) and out
    # (delivered and redirected)
    cdef uint64_t verdicts_[10]
    cdef uint64_t rd_count_keys[MAX_REDIRECTS]
    cdef uint64_t rd_counts[MAX_REDIRECTS]
    cdef Py_ssize_t rd_ncounts
    cdef public uint64_t bytes_in, bytes_out
    cdef public Annotator annotated      # tcsim --annotated, when set
    cdef public object observe           # (index, frame, out, outcome bytes), when set

    def __cinit__(self):
        memset(&self.tmpl, 0, sizeof(Skb))
        memset(&self.skb, 0, sizeof(Skb))

    def __init__(self, list programs, *, str mode="da", bint ingress=True,
                 uint32_t classid=0, int act_default=TC_ACT_PIPE, dict fields=None,
                 bint stop_on_error=False, bint capture_clock=True):
        cdef int nprogs = len(programs)
        cdef ProgCore* core
        cdef MapStore* m
        if not 0 < nprogs <= MAX_CHAIN:
            raise ValueError(f"a chain holds 1 to {MAX_CHAIN} programs, not {nprogs}")
        self.mode = {"da": MODE_DA, "classid": MODE_CLASSID, "act": MODE_ACT, "sf": MODE_SF}[mode]
        profile = programs[0].profile
        want = (_isa.ProgType.BPF_PROG_TYPE_SCHED_ACT if self.mode == MODE_ACT
                else _isa.ProgType.BPF_PROG_TYPE_SOCKET_FILTER if self.mode == MODE_SF
                else _isa.ProgType.BPF_PROG_TYPE_SCHED_CLS)
        if self.mode == MODE_SF and nprogs != 1:
            raise ValueError(f"a packet socket runs one socket filter, not {nprogs}")
        self.perf = []
        for k, p in enumerate(programs):
            if p.prog_type != want or p.profile != profile:
                raise ValueError(f"program {k + 1} of the chain is {p!r} with profile "
                                 f"{p.profile!r}; this chain needs {want.name} programs with "
                                 f"profile {profile!r}")
            core = program_core(p)
            if core.py_helpers:
                raise ValueError(f"program {k + 1} of the chain has Python helpers, which "
                                 "the replay loop cannot call")
            self.chain[k].core, self.chain[k].budget = core, p.budget
            self.chain[k].tail_call_limit = p.tail_call_limit
            for mp in p.maps:
                if map_store(mp).type == BPF_MAP_TYPE_PERF_EVENT_ARRAY and mp not in self.perf:
                    self.perf.append(mp)
        self.programs = programs        # keeps the ProgCores alive
        self.nprogs = nprogs
        self.classid, self.act_default = classid, act_default
        self.stop_on_error = stop_on_error
        fields = dict(fields or {})
        fields["ingress"] = ingress
        network = fields.get("sf_start") == "network"
        self.keep = (("protocol" in fields) | ("pkt_type" in fields) << 1
                     | ("wire_len" in fields) << 2 | ingress << 3 | network << 4)
        self.use_ts = capture_clock and "ktime" not in fields
        fields.pop("sf_start", None)
        skb_init(&self.tmpl, bytes(ETH_HLEN), fields, want, profile_id(profile))
        self.untag_needs = _untag_needs(self.tmpl.profile)
        self.clock = self.ktime_start = KTIME_START
        self.eth = <uint8_t*>malloc(2 * (0x10000 + LINK_MAX + VLAN_HLEN))
        if self.eth == NULL:
            raise MemoryError()
        self.out = self.eth + 0x10000 + LINK_MAX + VLAN_HLEN
        self.extras = {}
        self.rd_writers = []
        for mp in self.perf:
            mp.drain()       # events from before the replay are not a packet's

    def __dealloc__(self):
        self.skb.devices = NULL      # the template's
        skb_free(&self.skb)
        skb_free(&self.tmpl)
        free(self.eth)

    @property
    def counts(self):
        """Packets per action (HOOK_DELIVERED ... HOOK_BEFORE_TC)."""
        return [self.counts_[k] for k in range(6)]

    @property
    def verdicts(self):
        """{verdict: packets} of the packets that reached a verdict."""
        return {k - 1: self.verdicts_[k] for k in range(10) if self.verdicts_[k]}

    @property
    def redirects(self):
        """{(ifindex, ingress): packets} of the packets redirected."""
        return {(self.rd_count_keys[k] >> 1, bool(self.rd_count_keys[k] & 1)):
                self.rd_counts[k] for k in range(self.rd_ncounts)}

    cdef void _tally(self, Py_ssize_t index, const TcOutcome* o, const uint8_t* frame,
                     uint32_t n, const uint8_t* out, uint32_t m, uint64_t ts,
                     int64_t delta) except *:
        """Count one packet into the summary; hand it to ``annotated`` and ``observe``
        where set (``out``/``m``: its bytes afterwards, the frame itself when it has
        none; ``delta``: its length on the wire less its length captured)."""
        cdef uint64_t key
        cdef Py_ssize_t k
        self.bytes_in += n
        if o.action < HOOK_FAULT and -1 <= o.verdict <= 8:
            self.verdicts_[o.verdict + 1] += 1
        if o.action == HOOK_DELIVERED or o.action == HOOK_REDIRECTED:
            self.bytes_out += m
        if o.action == HOOK_REDIRECTED:
            key = (<uint64_t>o.redirect_ifindex << 1) | o.redirect_ingress
            for k in range(self.rd_ncounts):
                if self.rd_count_keys[k] == key:
                    self.rd_counts[k] += 1
                    break
            else:
                if self.rd_ncounts < MAX_REDIRECTS:
                    self.rd_count_keys[self.rd_ncounts] = key
                    self.rd_counts[self.rd_ncounts] = 1
                    self.rd_ncounts += 1
        if self.annotated is not None:
            self.annotated.packet(ts, frame, n, out, m, delta, o,
                                  self.extras[index] if self.extra_here else None)
        if self.observe is not None:
            self.observe(index, PyBytes_FromStringAndSize(<const char*>frame, n),
                         PyBytes_FromStringAndSize(<const char*>out, m),
                         PyBytes_FromStringAndSize(<const char*>o, sizeof(TcOutcome)))

    cdef int _packet(self, Py_ssize_t index, const uint8_t* frame, uint32_t n, uint64_t ts,
                     int pkt_type, TcOutcome* o) except -1:
        """Replay one Ethernet frame; ``o`` gets the outcome, ``self.skb`` holds the
        packet afterwards (when ``o.action`` is not a fault of the frame or before tc)
        and ``extras[index]`` what the packet has beyond ``o``."""
        cdef int64_t elapsed
        memset(o, 0, sizeof(TcOutcome))
        o.mark, o.priority, o.tc_index = self.tmpl.mark, self.tmpl.priority, self.tmpl.tc_index
        if n < ETH_HLEN or n > 0xffff:
            o.action = HOOK_FAULT
            self.extra_here = True
            self.extras[index] = {"error": f"a {n}-byte frame cannot be replayed (an skb "
                                           "holds 14 to 65535 bytes)"}
            return 0
        if self.keep & 8 and n < self.untag_needs and not self.tmpl.vlan_present \
                and _vlan_tpid(frame):
            o.action = HOOK_BEFORE_TC
            self.extra_here = True
            self.extras[index] = {"dropped_before_tc": f"skb_vlan_untag: the {n}-byte frame "
                                  f"cuts off its VLAN tag (needs {self.untag_needs} bytes)"}
            return 0
        if not skb_load_frame(&self.skb, &self.tmpl, frame, n, self.keep):
            raise MemoryError()
        if pkt_type >= 0 and not self.keep & 2:
            self.skb.pkt_type = pkt_type
        if self.use_ts:
            if not self.started:
                self.ts0, self.started = ts, True
            elapsed = <int64_t>(ts - self.ts0)
            if elapsed > 0 and self.ktime_start + <uint64_t>elapsed > self.clock:
                self.clock = self.ktime_start + <uint64_t>elapsed
            self.skb.ktime = self.clock
        _run_chain(&self.vm, self.chain, self.nprogs, self.mode, self.classid,
                   self.act_default, &self.skb, o)
        o.mark, o.priority, o.tc_index = self.skb.mark, self.skb.priority, self.skb.tc_index
        if self.keep & 16:
            # what a packet socket reads starts at the MAC header again
            self.skb.data -= ETH_HLEN
            self.skb.len += ETH_HLEN
        if o.fault_prog or self.skb.nclones or self.skb.printk_len or self.perf:
            self._extras(index, o)
        return 0

    cdef void _extras(self, Py_ssize_t index, TcOutcome* o) except *:
        cdef Skb* skb = &self.skb
        cdef size_t c
        cdef MapStore* m
        extra = {}
        if o.fault_prog:
            extra["error"] = vm_fault(&self.vm, self.chain[o.fault_prog - 1].budget)
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
        for mp in self.perf:
            m = map_store(mp)
            if m.events_len:
                extra.setdefault("events", []).extend((mp, cpu, ev) for cpu, ev in mp.drain())
        if extra:
            self.extra_here = True
            self.extras[index] = extra

    cdef uint32_t _output(self, TcOutcome* o, const uint8_t* frame, uint32_t n) noexcept:
        """The packet's bytes on the wire now into ``self.out`` (a socket filter's cut
        to its return value); counts it as changed when they differ from ``frame``."""
        cdef uint32_t m = <uint32_t>skb_wire_len(&self.skb)
        cdef uint64_t cut = <uint64_t><uint32_t>o.retval + (ETH_HLEN if self.keep & 16 else 0)
        skb_wire_bytes(&self.skb, self.out)
        if self.mode == MODE_SF and o.action == HOOK_DELIVERED and cut < self.skb.len:
            # the snap length applies to the skb (from where the filter started); a tag
            # in its metadata is put back
            m = <uint32_t>cut + (VLAN_HLEN if self.skb.vlan_present else 0)
        if m != n or memcmp(self.out, frame, n) != 0:
            self.changed += 1
        return m

    def replay(self, list frames, list ts=None):
        """Run every frame of ``frames`` (Ethernet, ``ts`` their capture times in ns):
        ``(records, data, extras)`` as :func:`tc_replay` returns them."""
        cdef Py_ssize_t i = 0, nframes = len(frames)
        cdef bytearray records = bytearray(nframes * sizeof(TcOutcome))
        cdef TcOutcome* outs = <TcOutcome*><char*>records
        cdef list data = []
        cdef bytes frame
        cdef uint32_t n, m
        cdef uint64_t changed
        self.extras = {}
        try:
            for i in range(nframes):
                if not i & 255:     # a pending SIGINT ends the replay within 256 packets
                    PyErr_CheckSignals()
                frame = frames[i]
                n = len(frame)
                self._packet(i, <const uint8_t*>PyBytes_AS_STRING(frame), n,
                             ts[i] if ts else 0, -1, &outs[i])
                self.count += 1
                self.counts_[outs[i].action] += 1
                if outs[i].action >= HOOK_FAULT and not outs[i].fault_prog:
                    data.append(frame)
                    self._tally(i, &outs[i], <const uint8_t*>PyBytes_AS_STRING(frame), n,
                                <const uint8_t*>PyBytes_AS_STRING(frame), n,
                                ts[i] if ts else 0, 0)
                    if outs[i].action == HOOK_FAULT and self.stop_on_error:
                        del records[(i + 1) * sizeof(TcOutcome):]
                        self.stopped = True
                        break
                    continue
                changed = self.changed
                m = self._output(&outs[i], <const uint8_t*>PyBytes_AS_STRING(frame), n)
                data.append(frame if self.changed == changed and m == n
                            else PyBytes_FromStringAndSize(<char*>self.out, m))
                self._tally(i, &outs[i], <const uint8_t*>PyBytes_AS_STRING(frame), n,
                            self.out, m, ts[i] if ts else 0, 0)
                if outs[i].fault_prog and self.stop_on_error:
                    del records[(i + 1) * sizeof(TcOutcome):]
                    self.stopped = True
                    break
            return bytes(records), data, self.extras
        except KeyboardInterrupt as exc:
            exc.packet = i
            raise

    cdef CaptureWriter _redirect(self, uint32_t ifindex, bint ingress):
        cdef uint64_t key = (<uint64_t>ifindex << 1) | ingress
        cdef Py_ssize_t k
        cdef CaptureWriter w
        for k in range(len(self.rd_writers)):
            if self.rd_keys[k] == key:
                return <CaptureWriter>self.rd_writers[k]
        if len(self.rd_writers) == MAX_REDIRECTS:
            raise ValueError(f"more than {MAX_REDIRECTS} redirect targets")
        w = self.redirect_writer(ifindex, ingress)
        self.rd_keys[len(self.rd_writers)] = key
        self.rd_writers.append(w)
        return w

    def run_chunk(self, const uint8_t[::1] chunk, Scanner sc, Py_ssize_t first,
                  CaptureWriter out=None, CaptureWriter drops=None, Writer report=None):
        """Replay the records ``sc`` found in ``chunk`` (the first is packet ``first``
        of the capture) and write each where it goes: ``out`` delivered, ``drops``
        dropped (faulted ones and those freed before tc as captured), captures of
        ``redirect_writer`` redirected (and bpf_clone_redirect copies), ``report`` one
        JSON line per packet.  ``extras`` holds the chunk's packets' extras after; the
        count replayed is returned (less than all after a fault with
        ``stop_on_error``)."""
        cdef const uint8_t* base = &chunk[0]
        cdef Rec* r
        cdef Py_ssize_t k, index = first
        cdef TcOutcome o
        cdef uint32_t lt, n, m, c
        cdef int hlen, pkt_type
        cdef int e
        cdef const uint8_t* frame
        cdef const uint8_t* hdr
        cdef CaptureWriter w
        cdef int64_t delta
        cdef bint raw
        self.extras = {}
        try:
            for k in range(sc.nrecs):
                if not k & 255:     # a pending SIGINT ends the replay within 256 packets
                    PyErr_CheckSignals()
                r = &sc.recs[k]
                index = first + k
                e = 0
                self.extra_here = False
                lt = sc.ifs[r.iface].linktype if sc.pcapng else sc.linktype
                hdr = base + r.off
                delta = <int64_t>r.wire - r.caplen
                if r.caplen < r.wire:
                    self.truncated += 1
                hlen = _link_hlen(lt)
                if lt == LT_ETHERNET:
                    frame, n, pkt_type = hdr, r.caplen, -1
                else:
                    e = _to_eth(lt, hdr, r.caplen, self.tmpl.dev_addr, self.eth, &pkt_type)
                    frame, n = self.eth, <uint32_t>e
                    if e < 0:
                        memset(&o, 0, sizeof(TcOutcome))
                        o.action = HOOK_FAULT
                        self.extra_here = True
                        self.extras[index] = {"error": (
                            f"a {r.caplen}-byte frame is shorter than its LINKTYPE_"
                            f"{LINKTYPES[lt]} header ({hlen} bytes)" if e == -1 else
                            f"its LINKTYPE_{LINKTYPES[lt]} header names no protocol tc "
                            "knows (IPv4 or IPv6)")}
                if lt == LT_ETHERNET or e >= 0:
                    self._packet(index, frame, n, r.ts, pkt_type, &o)
                self.count += 1
                self.counts_[o.action] += 1
                raw = o.action >= HOOK_FAULT and not o.fault_prog or (lt != LT_ETHERNET and e < 0)
                if raw:
                    m = 0
                    if drops is not None:
                        drops._raw(r.ts, hdr, r.caplen, r.wire, r.iface, lt)
                else:
                    m = self._output(&o, frame, n)
                    pkt_type = self.skb.pkt_type
                    if o.action == HOOK_DELIVERED and out is not None:
                        out.record(r.ts, self.out, m, delta, r.iface, lt, hdr, pkt_type,
                                   base + r.opt_off, r.opt_len)
                    elif (o.action == HOOK_DROPPED or o.action == HOOK_FAULT) and drops is not None:
                        if o.action == HOOK_FAULT:
                            drops._raw(r.ts, hdr, r.caplen, r.wire, r.iface, lt)
                        else:
                            drops.record(r.ts, self.out, m, delta, r.iface, lt, hdr, pkt_type,
                                         base + r.opt_off, r.opt_len)
                    if self.redirect_writer is not None:
                        for c in range(self.skb.nclones):
                            w = self._redirect(self.skb.clones[c].ifindex,
                                               (self.skb.clones[c].flags & BPF_F_INGRESS) != 0)
                            w.record(r.ts, self.skb.clone_buf + self.skb.clones[c].offset,
                                     self.skb.clones[c].length, delta, r.iface, lt, hdr,
                                     pkt_type, NULL, 0)
                        if o.action == HOOK_REDIRECTED:
                            w = self._redirect(o.redirect_ifindex, o.redirect_ingress)
                            w.record(r.ts, self.out, m, delta, r.iface, lt, hdr, pkt_type,
                                     NULL, 0)
                if raw:
                    self._tally(index, &o, hdr, r.caplen, hdr, r.caplen, r.ts, delta)
                else:
                    self._tally(index, &o, frame, n, self.out, m, r.ts, delta)
                if report is not None:
                    self._report(report, index, r, &o, m, lt)
                if o.action == HOOK_FAULT and self.stop_on_error:
                    self.stopped = True
                    return k + 1
            return sc.nrecs
        except KeyboardInterrupt as exc:
            exc.packet = index
            raise

    cdef void _report(self, Writer report, Py_ssize_t index, Rec* r, TcOutcome* o,
                      uint32_t m, uint32_t lt) except *:
        """The packet's report line: in C, or for a packet with extras through
        ``report_slow``."""
        cdef char* w
        cdef char* start
        cdef char* ts
        cdef uint32_t size = m
        cdef bint ok = o.action < HOOK_FAULT
        if ok and lt != LT_ETHERNET:
            size = m - ETH_HLEN + _link_hlen(lt) if m >= ETH_HLEN else 0
        if self.extra_here:
            report.append(self.report_slow(index, (
                r.ts, r.wire, r.caplen, <int64_t>size + r.wire - r.caplen,
                o.verdict, o.retval, o.classid, o.mark, o.priority, o.redirect_ifindex,
                o.tc_index, o.runs, o.insns, o.action, o.has_classid, o.redirect_ingress,
                o.fault_prog), self.extras[index]))
            return
        ts = PyOS_double_to_string(r.ts / 1e9, b'r', 0, Py_DTSF_ADD_DOT_0, NULL)
        w = <char*>report.room(REPORT_LINE_MAX)
        start = w
        w = _s(w, b'{"index": '); w = _u(w, index)
        w = _s(w, b', "timestamp": '); w = _s(w, ts)
        PyMem_Free(ts)
        w = _s(w, b', "timestamp_ns": '); w = _u(w, r.ts)
        w = _s(w, b', "len_in": '); w = _u(w, r.wire)
        w = _s(w, b', "caplen_in": '); w = _u(w, r.caplen)
        w = _s(w, b', "len_out": ')
        w = _i(w, <int64_t>size + r.wire - r.caplen) if ok else _s(w, b"null")
        w = _s(w, b', "truncated": '); w = _s(w, b"true" if r.caplen < r.wire else b"false")
        w = _s(w, b', "verdict": ')
        if ok and self.mode != MODE_SF:
            w = _s(w, b'"')
            w = _s(w, VERDICT_NAMES[o.verdict + 1]) if -1 <= o.verdict <= 8 else _i(w, o.verdict)
            w = _s(w, b'"')
        else:
            w = _s(w, b"null")
        w = _s(w, b', "retval": ')
        w = _i(w, o.retval) if ok else _s(w, b"null")
        w = _s(w, b', "action": "'); w = _s(w, ACTION_NAMES[o.action])
        w = _s(w, b'", "classid": ')
        if o.has_classid and ok:
            w = _s(w, b'"'); w = _num(w, o.classid >> 16, 16); w = _s(w, b":")
            w = _num(w, o.classid & 0xffff, 16); w = _s(w, b'"')
        else:
            w = _s(w, b"null")
        w = _s(w, b', "mark": '); w = _u(w, o.mark)
        w = _s(w, b', "priority": '); w = _u(w, o.priority)
        w = _s(w, b', "tc_index": '); w = _u(w, o.tc_index)
        w = _s(w, b', "redirect": ')
        if o.action == HOOK_REDIRECTED:
            w = _s(w, b'{"ifindex": '); w = _u(w, o.redirect_ifindex)
            w = _s(w, b', "ingress": '); w = _s(w, b"true}" if o.redirect_ingress else b"false}")
        else:
            w = _s(w, b"null")
        w = _s(w, b', "clones": [], "trace_printk": [], "instructions": '); w = _u(w, o.insns)
        w = _s(w, b', "programs_run": '); w = _u(w, o.runs)
        w = _s(w, b', "errors": [], "dropped_before_tc": null}\n')
        report.commit(w - start)


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
    loop = Loop(programs, mode=mode, ingress=ingress, classid=classid,
                act_default=act_default, fields=fields, stop_on_error=stop_on_error,
                capture_clock=bool(ts))
    return loop.replay(frames, ts)
