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

cimport cython
from cpython.bytearray cimport PyByteArray_AS_STRING
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.exc cimport PyErr_CheckSignals
from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.ref cimport Py_INCREF
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, realloc
from libc.string cimport memcmp, memcpy, memmove, memset, strlen
from posix.unistd cimport usleep

from pyebpf._core cimport *

import threading

from pyebpf import isa as _isa
from pyebpf._core import KTIME_START

cdef uint64_t TIMER_CALLBACKS_PER_GAP = _isa.TIMER_CALLBACKS_PER_GAP

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
# bytes of perf events of packets already written that a chunk's extras hold before
# run_chunk hands them to Loop.events_out, so that what a program emits does not set the
# peak memory (a chunk of 64-byte frames emitting 16 KiB each would hold ~0.85 GB); with
# several CPUs a replay thread more than EVENTS_AHEAD packets ahead of the writing waits
# while twice as many are held
EVENTS_HELD_MAX = 16 << 20


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


cdef int _run_one(Vm* vm, ChainProg* cp, Skb* skb, bint v46, TraceWorld* world) noexcept nogil:
    """Run one program of the chain on ``skb`` in ``world`` (the hook's current task, or
    NULL: none); returns the Vm status.  A socket filter has no direct packet access:
    no packet region, as in Program.run."""
    cdef int status
    vm_begin(vm, cp.budget, cp.tail_call_limit, v46)
    vm_attach_skb(vm, skb, cp.core.prog_type != BPF_PROG_TYPE_SOCKET_FILTER)
    vm.world = world
    status = vm_run(vm, cp.core, False)
    vm_end(vm)
    return status


cdef int32_t _classify(Vm* vm, ChainProg* chain, int nprogs, int mode, uint32_t classid,
                       int32_t act_default, Skb* skb, TcOutcome* o, bint v46,
                       TraceWorld* world) noexcept nogil:
    """tcf_classify over the chain: the verdict, or with ``o.action`` HOOK_FAULT the
    program that faulted."""
    cdef int reclassify_limit = 4 if v46 else 16
    cdef int reclassified = 0
    cdef int k
    cdef int32_t r0, verdict
    while True:
        verdict = TC_ACT_UNSPEC
        o.has_classid = False
        for k in range(nprogs):
            if mode != MODE_ACT:
                skb.tc_classid = <uint16_t>classid
            o.runs += 1
            o.decider = k + 1
            if _run_one(vm, &chain[k], skb, v46, world) != STATUS_EXIT:
                o.insns += chain[k].budget + vm.granted - <uint64_t>vm.budget_left
                o.fault_prog = k + 1
                o.action = HOOK_FAULT
                return verdict
            o.insns += chain[k].budget + vm.granted - <uint64_t>vm.budget_left
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
            return verdict
        if reclassified >= reclassify_limit:
            return TC_ACT_SHOT
        reclassified += 1


cdef void _run_chain(Vm* vm, ChainProg* chain, int nprogs, int mode, uint32_t classid,
                     int32_t act_default, Skb* skb, TcOutcome* o,
                     TraceWorld* world) noexcept nogil:
    """The classification of one packet and what the clsact hook does with it, its
    programs run in ``world`` (_run_one)."""
    cdef bint v46 = skb.profile == PROFILE_V46
    cdef int k
    cdef int32_t r0, verdict
    if mode == MODE_SF:
        # sk_filter_trim_cap / packet_rcv: 0 drops, otherwise keep that many bytes
        o.runs, o.decider = 1, 1
        k = _run_one(vm, &chain[0], skb, v46, world)
        o.insns = chain[0].budget + vm.granted - <uint64_t>vm.budget_left
        if k != STATUS_EXIT:
            o.fault_prog, o.action = 1, HOOK_FAULT
            return
        o.retval = o.verdict = <int32_t>vm.reg[0]
        o.action = HOOK_DELIVERED if <uint32_t>vm.reg[0] else HOOK_DROPPED
        return
    if nprogs == 1 and mode == MODE_DA:
        # the common case, _classify's loop run once: one direct-action program decides
        # (_da_opcode never gives TC_ACT_RECLASSIFY, so tcf_classify does not restart)
        skb.tc_classid = <uint16_t>classid
        o.runs, o.decider = 1, 1
        k = _run_one(vm, &chain[0], skb, v46, world)
        o.insns = chain[0].budget + vm.granted - <uint64_t>vm.budget_left
        if k != STATUS_EXIT:
            o.fault_prog, o.action = 1, HOOK_FAULT
            return
        r0 = <int32_t>vm.reg[0]
        o.retval = r0
        o.classid, o.has_classid = (classid & 0xffff0000u) | skb.tc_classid, True
        verdict = _da_opcode(r0, skb.profile)
    else:
        verdict = _classify(vm, chain, nprogs, mode, classid, act_default, skb, o, v46, world)
        if o.action == HOOK_FAULT:
            return
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

# The end of the last report line one writer (a replay thread, or the writing) made,
# from "len_in" on: all of it follows from the outcome and the packet's lengths, which
# consecutive packets often share.
# And the decimal digits of its capture time's seconds, which consecutive packets share,
# and of its index, which the next packet's often follows by one.
ctypedef struct LineTail:
    TcOutcome o
    uint32_t wire, caplen
    int64_t len_out
    bint valid
    uint32_t len
    char text[REPORT_LINE_MAX]
    uint64_t sec            # 0: none yet
    uint32_t sec_len
    char sec_text[24]       # copied 16 bytes at a time (at most 11 digits)
    char ns_text[16]        # the nine digits of the last line's nanoseconds
    Py_ssize_t index
    uint32_t index_len      # 0: none yet
    char index_text[24]     # copied 20 bytes at a time (at most 19 digits)


cdef inline char* _s(char* w, const char* text) noexcept nogil:
    cdef size_t n = strlen(text)
    memcpy(w, text, n)
    return w + n


cdef extern from *:
    """
    static const char pyebpf_pairs[] =
        "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
        "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
        "8081828384858687888990919293949596979899";
    /* The 2 * pairs decimal digits of x (below 100 ** pairs), zeros first, ending at
       end.  Three or four pairs (a time's microseconds, nanoseconds) are split at 10**4
       first: fewer dependent divisions than a pair at a time. */
    static inline void pyebpf_pairs_at(char* end, uint32_t x, int pairs) {
        uint32_t hi, lo;
        if (pairs == 3 || pairs == 4) {
            hi = x / 10000u;
            lo = x % 10000u;
            memcpy(end - 4, pyebpf_pairs + 2 * (lo / 100), 2);
            memcpy(end - 2, pyebpf_pairs + 2 * (lo % 100), 2);
            if (pairs == 3)
                memcpy(end - 6, pyebpf_pairs + 2 * hi, 2);
            else {
                memcpy(end - 8, pyebpf_pairs + 2 * (hi / 100), 2);
                memcpy(end - 6, pyebpf_pairs + 2 * (hi % 100), 2);
            }
            return;
        }
        while (pairs--) {
            end -= 2;
            memcpy(end, pyebpf_pairs + 2 * (x % 100), 2);
            x /= 100;
        }
    }
    /* v in decimal digits at w; the end.  The digits are counted from the highest bit
       set, then written from the end, two a division, in 32 bits where they fit (a
       report line has about 50 of them). */
    static inline char* pyebpf_dec(char* w, uint64_t v) {
        static const uint64_t tens[20] = {
            1ull, 10ull, 100ull, 1000ull, 10000ull, 100000ull, 1000000ull, 10000000ull,
            100000000ull, 1000000000ull, 10000000000ull, 100000000000ull,
            1000000000000ull, 10000000000000ull, 100000000000000ull,
            1000000000000000ull, 10000000000000000ull, 100000000000000000ull,
            1000000000000000000ull, 10000000000000000000ull};
        int t = ((64 - __builtin_clzll(v | 1)) * 1233) >> 12;    /* log10 2 ~ 1233 / 4096 */
        int n = t + (v >= tens[t]);
        char* end = w + (n ? n : 1);
        uint32_t x;
        w = end;
        while (v > 0xffffffffu) {
            pyebpf_pairs_at(w, (uint32_t)(v % 100000000u), 4);
            w -= 8;
            v /= 100000000u;
        }
        x = (uint32_t)v;
        while (x >= 100) {
            w -= 2;
            memcpy(w, pyebpf_pairs + 2 * (x % 100), 2);
            x /= 100;
        }
        if (x >= 10)
            memcpy(w - 2, pyebpf_pairs + 2 * x, 2);
        else
            w[-1] = (char)('0' + x);
        return end;
    }
    /* Whether the n bytes at a and b are equal: memcmp == 0 a word at a time, unrolled
       where n is a constant (gcc calls memcmp for a struct's size). */
    static inline int pyebpf_same(const void* a, const void* b, size_t n) {
        const char* p = (const char*)a;
        const char* q = (const char*)b;
        uint64_t x, y, d = 0;
        size_t k;
        for (k = 0; k + 8 <= n; k += 8) {
            memcpy(&x, p + k, 8);
            memcpy(&y, q + k, 8);
            d |= x ^ y;
        }
        for (; k < n; k++)
            d |= (uint64_t)(p[k] ^ q[k]);
        return d == 0;
    }
    """
    char* _u "pyebpf_dec" (char* w, uint64_t v) noexcept nogil
    bint _same "pyebpf_same" (const void* a, const void* b, size_t n) noexcept nogil
    void _pairs_at "pyebpf_pairs_at" (char* end, uint32_t x, int pairs) noexcept nogil


cdef inline char* _hex(char* w, uint32_t v) noexcept nogil:
    """``v`` in lower-case hexadecimal digits."""
    cdef char digits[8]
    cdef int k = 0
    while True:
        digits[k] = b"0123456789abcdef"[v & 15]
        k += 1
        v >>= 4
        if v == 0:
            break
    while k:
        k -= 1
        w[0] = digits[k]
        w += 1
    return w


cdef inline char* _i(char* w, int64_t v) noexcept nogil:
    if v < 0:
        w[0] = 45
        return _u(w + 1, <uint64_t>(-(v + 1)) + 1)
    return _u(w, <uint64_t>v)


cdef extern from *:
    """
    #include <math.h>
    /* repr() of a float of at least 1 and below 2**50 (written in fixed notation, as
       repr writes those), into out (at least 24 bytes): the fewest decimal digits that
       read back as d, of those the nearest to d (as _Py_dg_dtoa's mode 0 picks); its
       length, or -1 where it does not answer (d out of that range, or a power of two,
       whose interval is lopsided): the caller asks Python then.  With d = m /
       2**s, the numbers read back as d lie strictly inside ((2m - 1) / 2**(s+1),
       (2m + 1) / 2**(s+1)) for an odd m (an even m keeps the ends: no answer when a
       candidate is an end); the digits are tried k = 0, 1, ... after the point. */
    static int pyebpf_float_repr_from(double d, char* out, int k0) {
        typedef unsigned __int128 u128;
        int e, s, k, len = 0;
        uint64_t m, n, ip, fp, p10 = 1;
        u128 p = 1, a, b, c, lo, hi, nn, half, rem;
        if (!(d >= 1.0 && d < 1125899906842624.0))
            return -1;
        m = (uint64_t)ldexp(frexp(d, &e), 53);
        s = 53 - e;
        if (m == (uint64_t)1 << 52)
            return -1;
        for (k = 0; k < k0; k++)
            p *= 10;
        for (k = k0; k <= 17; k++, p *= 10) {
            a = (2 * (u128)m - 1) * p;
            b = (2 * (u128)m + 1) * p;
            lo = (a >> (s + 1)) + 1;
            hi = b >> (s + 1);
            if ((a & (((u128)1 << (s + 1)) - 1)) == 0 || (b & (((u128)1 << (s + 1)) - 1)) == 0)
                return -1;
            if (lo > hi)
                continue;
            c = (u128)m * p;
            nn = c >> s;
            rem = c & (((u128)1 << s) - 1);
            half = (u128)1 << (s - 1);
            if (rem > half || (rem == half && (nn & 1)))
                nn += 1;            /* a tie goes to the even digit, as in _Py_dg_dtoa */
            if (nn < lo)
                nn = lo;
            if (nn > hi)
                nn = hi;
            if (nn >> 64)
                return -1;
            n = (uint64_t)nn;
            for (e = 0; e < k; e++)
                p10 *= 10;
            ip = n / p10;
            fp = n % p10;
            len = (int)(pyebpf_dec(out, ip) - out);
            out[len++] = '.';
            if (k == 0) {
                out[len++] = '0';
                return len;
            }
            for (e = k - 1; e >= 0; e--) {
                out[len + e] = '0' + fp % 10;
                fp /= 10;
            }
            return len + k;
        }
        return -1;
    }
    static int pyebpf_float_repr(double d, char* out) {
        return pyebpf_float_repr_from(d, out, 0);
    }
    /* repr(ts / 1e9) of a capture time in ns, as pyebpf_float_repr answers it; a
       whole number of microseconds (what pcap holds) from 1 s to 2**33 s has it
       cheaply: the double nearest its 6-place decimal is the time's double when the
       two divisions agree, and a double there is less than 1e-6 from its neighbours,
       so no other decimal of at most 6 places reads back as it: the decimal without
       its trailing zeros is the shortest. */
    static int pyebpf_ts_repr(uint64_t ts, char* out) {
        uint64_t us = ts / 1000, frac;
        int len;
        if (ts % 1000 || ts < 1000000000u || ts >= 8589934592000000000ull)
            return pyebpf_float_repr((double)ts / 1e9, out);
        if ((double)us / 1e6 != (double)ts / 1e9)
            /* Below 2**31 s the time's double lies within 2.5e-7 of us / 1e6 (the ns
               rounded to a double, then the division) and reads back from 1.2e-7 at
               most: no decimal of at most 6 places does, so the digits start at 7. */
            return pyebpf_float_repr_from((double)ts / 1e9, out,
                                          ts < 2147483648000000000ull ? 7 : 0);
        frac = us % 1000000;
        len = (int)(pyebpf_dec(out, us / 1000000) - out);
        out[len++] = '.';
        if (frac == 0) {
            out[len++] = '0';
            return len;
        }
        pyebpf_pairs_at(out + len + 6, (uint32_t)frac, 3);
        len += 6;
        while (out[len - 1] == '0')
            len--;
        return len;
    }
    /* pyebpf_ts_repr's answer for a whole number of microseconds whose seconds (sec =
       ts / 1e9, from 2**20 s to 2**31 s: a capture's epoch times) have the digits
       sec_text (sec_len of them; the writer keeps them, at least 16 bytes) and whose
       nanoseconds ns have the digits ns_text (nine, at least 8 bytes), in 64 bits:
       the time's double is m / 2**s with s <= 32, so its fraction's products with 10**k
       fit for k = 7 to 9 (from 2**20 s every interval holds a 9-place decimal).  The
       search is pyebpf_float_repr_from's on the fraction alone (the seconds times 10**k
       are whole and even: they move no end, no rounding, no tie); anything else goes to
       pyebpf_ts_repr. */
    static int pyebpf_ts_repr_search(uint64_t ts, uint64_t sec, double d, int len,
                                     char* out);
    static inline int pyebpf_ts_repr_sec(uint64_t ts, uint64_t sec, const char* sec_text,
                                         int sec_len, uint32_t ns, const char* ns_text,
                                         char* out) {
        double d;
        int len;
        if (ns % 1000 || sec < 1048576u || sec >= 2147483648u)
            return pyebpf_ts_repr(ts, out);
        /* below 2**63: the signed conversions, exact as the unsigned ones, are one
           instruction each */
        d = (double)(int64_t)ts / 1e9;
        memcpy(out, sec_text, 16);
        len = sec_len;
        out[len++] = '.';
        if ((double)(int64_t)(ts / 1000) / 1e6 == d) {
            if (ns == 0) {
                out[len++] = '0';
                return len;
            }
            memcpy(out + len, ns_text, 8);
            len += 6;
            while (out[len - 1] == '0')
                len--;
            return len;
        }
        return pyebpf_ts_repr_search(ts, sec, d, len, out);
    }
    /* pyebpf_ts_repr_sec's search, out holding the seconds' digits and the point
       (len bytes). */
    static int pyebpf_ts_repr_search(uint64_t ts, uint64_t sec, double d, int len,
                                     char* out) {
        uint64_t bits, m, f, p = 10000000u, a, b, lo, hi, c, nn, rem, half, mask;
        int s, k;
        memcpy(&bits, &d, 8);
        s = 1075 - (int)(bits >> 52);
        m = (bits & (((uint64_t)1 << 52) - 1)) | ((uint64_t)1 << 52);
        f = m & (((uint64_t)1 << s) - 1);
        if (m == (uint64_t)1 << 52 || (m >> s) != sec || f == 0)
            return pyebpf_ts_repr(ts, out);
        mask = ((uint64_t)1 << (s + 1)) - 1;
        half = (uint64_t)1 << (s - 1);
        for (k = 7; k <= 9; k++, p *= 10) {
            a = (2 * f - 1) * p;
            b = (2 * f + 1) * p;
            if ((a & mask) == 0 || (b & mask) == 0)
                return pyebpf_ts_repr(ts, out);
            lo = (a >> (s + 1)) + 1;
            hi = b >> (s + 1);
            if (lo > hi)
                continue;
            c = f * p;
            nn = c >> s;
            rem = c & (((uint64_t)1 << s) - 1);
            if (rem > half || (rem == half && (nn & 1)))
                nn += 1;
            if (nn < lo)
                nn = lo;
            if (nn > hi)
                nn = hi;
            if (k & 1) {
                out[len] = (char)('0' + nn / (p / 10));
                pyebpf_pairs_at(out + len + k, (uint32_t)(nn % (p / 10)), (k - 1) / 2);
            } else
                pyebpf_pairs_at(out + len + k, (uint32_t)nn, k / 2);
            return len + k;
        }
        return pyebpf_ts_repr(ts, out);
    }
    """
    int float_repr "pyebpf_float_repr" (double d, char* out) noexcept nogil
    int ts_repr "pyebpf_ts_repr" (uint64_t ts, char* out) noexcept nogil
    int ts_repr_sec "pyebpf_ts_repr_sec" (uint64_t ts, uint64_t sec, const char* sec_text,
                                          int sec_len, uint32_t ns, const char* ns_text,
                                          char* out) noexcept nogil


def float_text(double d):
    """``repr(d)`` as the report's C writer makes it (the "timestamp" of a line); None
    where it leaves ``d`` to Python's repr."""
    cdef char out[24]
    cdef int n = float_repr(d, out)
    return out[:n].decode() if n >= 0 else None


def timestamp_text(uint64_t ts):
    """``repr(ts / 1e9)`` as the report's C writer makes it for a capture time of ``ts``
    ns; None where it leaves it to Python's repr."""
    return timestamps_text([ts])[0]


def timestamps_text(times):
    """``timestamp_text`` of each of ``times`` in turn, as one writer makes them (keeping
    the seconds' digits from one to the next)."""
    cdef LineTail* t = <LineTail*>calloc(1, sizeof(LineTail))
    cdef char out[40]
    cdef int n
    texts = []
    if t == NULL:
        raise MemoryError("timestamps_text: no memory for a writer's line state")
    try:
        for ts in times:
            n = _ts_text(out, ts, t)
            texts.append(out[:n].decode() if n >= 0 else None)
    finally:
        free(t)
    return texts


cdef inline int _ts_text(char* w, uint64_t ts, LineTail* t) noexcept nogil:
    """``repr(ts / 1e9)`` at ``w`` (at least 32 bytes); its length, or -1 where Python's
    repr writes it.  Keeps the digits of the seconds (in ``t``, for this and ``_ts_ns``)
    and makes those of the nanoseconds (both use them; a whole number of microseconds
    has three zeros that need no division)."""
    cdef uint64_t sec = ts // 1000000000
    cdef uint32_t ns = <uint32_t>(ts % 1000000000)
    if sec == 0:
        return ts_repr(ts, w)
    _ts_keep(sec, ns, t)
    return ts_repr_sec(ts, sec, t.sec_text, t.sec_len, ns, t.ns_text, w)


cdef inline void _ts_keep(uint64_t sec, uint32_t ns, LineTail* t) noexcept nogil:
    """The digits of a capture time's seconds (``sec`` >= 1) and nanoseconds into ``t``:
    the seconds' only where they changed."""
    if sec != t.sec:
        t.sec, t.sec_len = sec, <uint32_t>(_u(t.sec_text, sec) - t.sec_text)
    if ns % 1000 == 0:
        _pairs_at(t.ns_text + 6, ns // 1000, 3)
        memcpy(t.ns_text + 6, b"000", 3)
    else:
        t.ns_text[0] = <char>(48 + ns // 100000000)
        _pairs_at(t.ns_text + 9, ns % 100000000, 4)


cdef inline char* _ts_digits(char* w, uint64_t ts, LineTail* t) noexcept nogil:
    """``ts`` in decimal digits, its seconds' kept in ``t`` from one line to the next
    (a compact line's "timestamp_ns", which has no "timestamp" to make them).  The
    nanoseconds' go straight into the line: made in ``t`` and copied 16 bytes at once,
    the load would wait for the stores it overlaps (store forwarding fails)."""
    cdef uint64_t sec = ts // 1000000000
    cdef uint32_t ns = <uint32_t>(ts % 1000000000)
    if sec == 0:
        return _u(w, ts)
    if sec != t.sec:
        t.sec, t.sec_len = sec, <uint32_t>(_u(t.sec_text, sec) - t.sec_text)
    memcpy(w, t.sec_text, 16)       # at most 11 digits: a fixed size is a few moves
    w += t.sec_len
    w[0] = <char>(48 + ns // 100000000)
    _pairs_at(w + 9, ns % 100000000, 4)
    return w + 9


cdef inline char* _ts_ns(char* w, uint64_t ts, LineTail* t) noexcept nogil:
    """``ts`` in decimal digits: its seconds' then its nanoseconds', as ``_ts_text``
    made them."""
    if ts < 1000000000:
        return _u(w, ts)
    memcpy(w, t.sec_text, 16)       # at most 11 digits: a fixed size is a few moves
    memcpy(w + t.sec_len, t.ns_text, 16)
    return w + t.sec_len + 9


cdef inline char* _index(char* w, Py_ssize_t index, LineTail* t) noexcept nogil:
    """``index`` in decimal digits: the writer's last line's plus one where it follows
    that line's (counted up in the line and in ``t`` a byte at a time: counted up in
    ``t`` and copied 20 bytes at once, the load would wait for the byte's store), else
    made and kept."""
    cdef int k
    if t.index_len and index == t.index + 1:
        memcpy(w, t.index_text, 20)     # at most 19 digits: a fixed size is a few moves
        k = t.index_len - 1
        while k >= 0 and w[k] == 57:
            w[k] = t.index_text[k] = 48
            k -= 1
        if k >= 0:
            w[k] += 1                   # most often the last digit alone
            t.index_text[k] = w[k]
            t.index = index
            return w + t.index_len
    t.index_len = <uint32_t>(_u(t.index_text, <uint64_t>index) - t.index_text)
    t.index = index
    memcpy(w, t.index_text, 20)
    return w + t.index_len


cdef inline int64_t _len_out(const Rec* r, uint32_t m, uint32_t lt) noexcept nogil:
    """A packet's length after the programs, in the input's linktype (of a packet that
    reached a verdict)."""
    cdef uint32_t size = m
    if lt != LT_ETHERNET:
        size = m - ETH_HLEN + _link_hlen(lt) if m >= ETH_HLEN else 0
    return <int64_t>size + r.wire - r.caplen


cdef inline bint _same_tail(const Rec* r, const TcOutcome* o, int64_t len_out,
                            const LineTail* t) noexcept nogil:
    """This line's end from "len_in" on is the writer's last line's."""
    return (t.valid and t.wire == r.wire and t.caplen == r.caplen and t.len_out == len_out
            and _same(&t.o, o, sizeof(TcOutcome)))


cdef inline char* _keep_tail(char* w, const char* tail, const Rec* r, const TcOutcome* o,
                             int64_t len_out, LineTail* t) noexcept nogil:
    """Keeps the line's end (``tail`` to ``w``) in ``t`` for the next line; ``w``."""
    memcpy(&t.o, o, sizeof(TcOutcome))
    t.wire, t.caplen, t.len_out = r.wire, r.caplen, len_out
    t.valid, t.len = True, <uint32_t>(w - tail)
    memcpy(t.text, tail, t.len)
    return w


cdef char* _compact_line(char* w, Py_ssize_t index, const Rec* r, const TcOutcome* o,
                         uint32_t m, uint32_t lt, int mode, LineTail* t) noexcept nogil:
    """The compact report line of a packet without extras into ``w`` (REPORT_LINE_MAX
    bytes): no spaces, the keys that hold their default (report.DEFAULTS) left out, in
    report.KEYS' order; its end.  ``t`` as for ``_report_line``."""
    cdef bint ok = o.action < HOOK_FAULT
    cdef int64_t len_out = _len_out(r, m, lt) if ok else 0
    cdef char* tail
    w = _s(w, b'{"index":'); w = _index(w, index, t)
    w = _s(w, b',"timestamp_ns":'); w = _ts_digits(w, r.ts, t)
    if _same_tail(r, o, len_out, t):
        memcpy(w, t.text, t.len)
        return w + t.len
    tail = w
    w = _s(w, b',"len_in":'); w = _u(w, r.wire)
    if r.caplen != r.wire:
        w = _s(w, b',"caplen_in":'); w = _u(w, r.caplen)
    if ok and len_out != r.wire:
        w = _s(w, b',"len_out":'); w = _i(w, len_out)
    if r.caplen < r.wire:
        w = _s(w, b',"truncated":true')
    if ok and mode != MODE_SF:
        w = _s(w, b',"verdict":"')
        w = _s(w, VERDICT_NAMES[o.verdict + 1]) if -1 <= o.verdict <= 8 else _i(w, o.verdict)
        w = _s(w, b'"')
    else:
        w = _s(w, b',"verdict":null')
    # "retval" defaults to the verdict's value (null without one)
    if ok and (mode == MODE_SF or o.retval != o.verdict):
        w = _s(w, b',"retval":'); w = _i(w, o.retval)
    w = _s(w, b',"action":"'); w = _s(w, ACTION_NAMES[o.action]); w = _s(w, b'"')
    # "classid" defaults to "0:0" beside a verdict (a tc classifier's result: cls_bpf
    # gives one in direct action), else to null
    if ok and mode != MODE_SF and not o.has_classid:
        w = _s(w, b',"classid":null')
    elif ok and mode != MODE_SF and o.classid:
        w = _s(w, b',"classid":"'); w = _hex(w, o.classid >> 16); w[0] = 58
        w = _hex(w + 1, o.classid & 0xffff); w = _s(w, b'"')
    if o.mark:
        w = _s(w, b',"mark":'); w = _u(w, o.mark)
    if o.priority:
        w = _s(w, b',"priority":'); w = _u(w, o.priority)
    if o.tc_index:
        w = _s(w, b',"tc_index":'); w = _u(w, o.tc_index)
    if o.action == HOOK_REDIRECTED:
        w = _s(w, b',"redirect":{"ifindex":'); w = _u(w, o.redirect_ifindex)
        w = _s(w, b',"ingress":true}' if o.redirect_ingress else b',"ingress":false}')
    w = _s(w, b',"instructions":'); w = _u(w, o.insns)
    if o.runs != 1:
        w = _s(w, b',"programs_run":'); w = _u(w, o.runs)
    w = _s(w, b'}\n')
    return _keep_tail(w, tail, r, o, len_out, t)


cdef char* _report_line(char* w, Py_ssize_t index, const Rec* r, const TcOutcome* o,
                        uint32_t m, uint32_t lt, int mode, bint full,
                        LineTail* t) noexcept nogil:
    """The report line of a packet without extras into ``w`` (REPORT_LINE_MAX bytes),
    every key on it (``full``) or compact (``_compact_line``); its end, or NULL where its
    timestamp is one Python's repr writes (a replay thread leaves that line to the
    writing).  ``t``: the writer's last line's end, seconds and index, reused where this
    one's are the same (or, the index, the next), else made and kept."""
    cdef bint ok = o.action < HOOK_FAULT
    cdef int64_t len_out
    cdef char* tail
    cdef int k
    if not full:
        return _compact_line(w, index, r, o, m, lt, mode, t)
    len_out = _len_out(r, m, lt) if ok else 0
    w = _s(w, b'{"index": '); w = _index(w, index, t)
    w = _s(w, b', "timestamp": ')
    k = _ts_text(w, r.ts, t)
    if k < 0:
        return NULL
    w += k
    w = _s(w, b', "timestamp_ns": '); w = _ts_ns(w, r.ts, t)
    if _same_tail(r, o, len_out, t):
        memcpy(w, t.text, t.len)
        return w + t.len
    tail = w
    w = _s(w, b', "len_in": '); w = _u(w, r.wire)
    w = _s(w, b', "caplen_in": '); w = _u(w, r.caplen)
    w = _s(w, b', "len_out": ')
    w = _i(w, len_out) if ok else _s(w, b"null")
    w = _s(w, b', "truncated": true, "verdict": ' if r.caplen < r.wire
           else b', "truncated": false, "verdict": ')
    if ok and mode != MODE_SF:
        w = _s(w, b'"')
        w = _s(w, VERDICT_NAMES[o.verdict + 1]) if -1 <= o.verdict <= 8 else _i(w, o.verdict)
        w = _s(w, b'", "retval": ')
    else:
        w = _s(w, b'null, "retval": ')
    w = _i(w, o.retval) if ok else _s(w, b"null")
    w = _s(w, b', "action": "'); w = _s(w, ACTION_NAMES[o.action])
    if o.has_classid and ok:
        w = _s(w, b'", "classid": "'); w = _hex(w, o.classid >> 16); w[0] = 58
        w = _hex(w + 1, o.classid & 0xffff); w = _s(w, b'", "mark": ')
    else:
        w = _s(w, b'", "classid": null, "mark": ')
    w = _u(w, o.mark)
    w = _s(w, b', "priority": '); w = _u(w, o.priority)
    w = _s(w, b', "tc_index": '); w = _u(w, o.tc_index)
    if o.action == HOOK_REDIRECTED:
        w = _s(w, b', "redirect": {"ifindex": '); w = _u(w, o.redirect_ifindex)
        w = _s(w, b', "ingress": true}' if o.redirect_ingress else b', "ingress": false}')
    else:
        w = _s(w, b', "redirect": null')
    w = _s(w, b', "clones": [], "trace_printk": [], "instructions": '); w = _u(w, o.insns)
    w = _s(w, b', "programs_run": '); w = _u(w, o.runs)
    w = _s(w, b', "errors": [], "dropped_before_tc": null}\n')
    return _keep_tail(w, tail, r, o, len_out, t)


include "annotate.pxi"


cdef enum:
    MAX_CPUS = 64           # tcsim --cpus: simulated CPUs, each a replay thread
    NO_LANE = 0xffff        # a packet no CPU replays (it never reaches tc)
    UNSTEERED = 0xfffe      # a packet whose CPU is not chosen yet (0xfffd: and waited
                            # for, which only steered and wait_steered see)
    STEER_RSS = 0
    STEER_HASH = 1

MAX_SIMULATED_CPUS = MAX_CPUS
# Lane.lens of a redirected packet (a -o record is shorter)
cdef uint32_t LEN_REDIRECTED = 0xffffffff

# bpf_ktime_get_ns on the capture's clock: the time of the first packet replayed (``ts0``)
# is KTIME_START, and the clock never goes back (as CLOCK_MONOTONIC does not)
ctypedef struct Clock:
    uint64_t now
    uint64_t ts0
    bint started


# The summary's counts of some packets (the redirect targets apart): packets per action
# and per verdict (-1..8, of those that reached one), bytes in (as tc saw them) and out
# (delivered and redirected).  Loop's are the summary's; a lane's, of its packets of a
# chunk written whole, are added to them (_add_tally).
ctypedef struct Tally:
    uint64_t count, bytes_in, bytes_out
    uint64_t counts[6]
    uint64_t verdicts[10]


cdef inline void _add_counts(Tally* t, uint8_t action, int32_t verdict, uint32_t n,
                             uint32_t m) noexcept nogil:
    """One packet into ``t``."""
    t.count += 1
    t.counts[action] += 1
    t.bytes_in += n
    if action < HOOK_FAULT and -1 <= verdict <= 8:
        t.verdicts[verdict + 1] += 1
    if action == HOOK_DELIVERED or action == HOOK_REDIRECTED:
        t.bytes_out += m


cdef inline void _add_tally(Tally* t, const Tally* more) noexcept nogil:
    """Every count of ``more`` into ``t``."""
    cdef int k
    t.count += more.count
    t.bytes_in += more.bytes_in
    t.bytes_out += more.bytes_out
    for k in range(6):
        t.counts[k] += more.counts[k]
    for k in range(10):
        t.verdicts[k] += more.verdicts[k]


# One simulated CPU: its Vm and skb, a frame as tc sees it (``eth``, built for frames
# without an Ethernet header) and the programs' output (``out``); with several CPUs, the
# chunk's frames and outputs kept for the writing, in blocks that never move while the
# writing reads them.
ctypedef struct Lane:
    Vm vm
    Skb skb
    uint8_t* eth
    uint8_t* out
    uint64_t changed
    uint8_t** blocks
    int nblocks, block      # blocks allocated, the one being filled (-1: none yet)
    size_t used             # bytes of that block filled
    bint failed             # memory could not be had
    bint clean              # skb's last load was from the template and every run since
                            # kept the layout: skb_reload_frame resets it (Loop._load)
    LineTail tail           # of the report lines its thread writes
    Buf ann                 # an --annotated comment its thread writes
    Clock clock             # the capture clock as its thread walks the chunk
    Slim* slims             # its packets of the chunk (Loop.direct), in order
    uint32_t* lens          # each one's -o record length, | REDIRECTED for a redirected
                            # one (which the writing counts, in order, from its Done)
    size_t* offs            # where each one's record goes (set by the writing)
    Py_ssize_t nslims
    Tally sums              # its packets' counts but the redirected ones'
    uint64_t truncated      # its packets captured shorter than on the wire
    bint uncommon           # one of them needs the writing of its Done record
    size_t placed           # bytes of its -o records written in place (Loop.in_place)
    TraceWorld world        # its packet runs' current task (a machine's), each thread
                            # its own: a run writes the signals it sends there

# What a lane keeps of each of its packets of a chunk written whole (Loop.direct), in
# the capture's order, for its part of the writing (_cpu_copy); the writing itself
# reads only the lane's ``lens`` and writes its ``offs`` (12 bytes a packet of another
# core's lines, not its Done record and its pcap record).
ctypedef struct Slim:
    const uint8_t* rec      # its pcap record for -o (in its lane's blocks), else NULL
    Py_ssize_t k            # the packet's place in the chunk
    uint32_t len            # rec's length (0: nothing for -o)
    uint32_t n, m           # its length as tc saw it, afterwards

# What a replay thread leaves for the writing of one packet (several CPUs); written by
# the thread of its CPU only, or by the thread that steered it when it never reaches tc.
ctypedef struct Done:
    TcOutcome o
    const uint8_t* outb     # the packet's bytes afterwards (in its lane's blocks)
    uint32_t m
    uint32_t n              # the frame's length as tc would see it
    const uint8_t* frame    # the frame as tc saw it, when built (in its lane's blocks)
    const char* line        # its report line (in its lane's blocks), when the thread
                            # wrote it (a report, no extras), else NULL
    const uint8_t* rec      # its pcap record for the capture it goes to (delivered,
                            # dropped or redirected), when the thread wrote it, else NULL
    const uint8_t* ann      # its two --annotated blocks, when the thread wrote them
    const uint8_t* clones   # its clones' records for the redirect captures (Cloned
                            # each), when the thread wrote them, else NULL
    uint32_t line_len
    uint32_t rec_len
    uint32_t ann_len
    uint32_t clones_len
    uint32_t ready          # the thread is done with it (set last, with release order;
                            # 2 while the writing waits for it: publish)
    uint16_t lt             # its linktype (LT_*, below 2^16)
    uint8_t pkt_type
    uint8_t extra           # extras[index] is set
    # 128 bytes, two cache lines: two packets' records, written by two threads, share
    # no line (checked below)

# The head of a clone's record in Done.clones: the record (rec_len bytes, in the
# redirect captures' format) follows it.
ctypedef struct Cloned:
    uint32_t ifindex
    uint32_t ingress
    uint32_t rec_len

cdef inline uint64_t _clock_step(Clock* c, uint64_t start, uint64_t ts) noexcept nogil:
    """The clock ``c`` at the next packet replayed, captured at ``ts``."""
    cdef int64_t elapsed
    if not c.started:
        c.ts0, c.started = ts, True
    elapsed = <int64_t>(ts - c.ts0)
    if elapsed > 0 and start + <uint64_t>elapsed > c.now:
        c.now = start + <uint64_t>elapsed
    return c.now


# One packet of a chunk as run_chunk kept it (Loop.keep_packets: tcsim diff compares two loops').
ctypedef struct Kept:
    TcOutcome o
    uint64_t ts
    int64_t delta           # its length on the wire less its length captured
    size_t off              # its bytes afterwards (as captured when it never reached tc)
    uint32_t len            # in kept_buf

cdef extern from "<sys/mman.h>" nogil:
    void* mmap(void* addr, size_t length, int prot, int flags, int fd, long offset)
    int munmap(void* addr, size_t length)
    int PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_ANONYMOUS
    void* MAP_FAILED

cdef enum:
    CACHE_LINE = 64
    ARENA_BLOCK = 1 << 20   # holds any packet's frame and output (2 x 64 KiB at most)
    WRITE_BATCH = 1024      # packets the writing waits for at once (several CPUs)
    EVENTS_AHEAD = 2 * WRITE_BATCH  # packets a replay thread may be ahead of the writing
                                    # however many events are held (_events_wait)
    EVENT_OBJECTS = 256     # bytes an event's Python objects and its packet's extras
                            # take beside its own, as EVENTS_HELD_MAX counts them
    REPLAY_STRIDE = 256     # packets CPU 0 walks between its turns of writing (and
                            # its looks for an interrupt)
    STEER_AHEAD = 4         # batches a CPU steers its share of before it replays them:
                            # slack for a thread the host deschedules a while
    CREW_GONE = 0           # Loop.crew: no thread for that CPU (it exits when idle for
    CREW_RUN = 1            # CREW_LINGER_NS, 100 ms, so that a Loop no longer used is
    CREW_IDLE = 2           # freed); one running a chunk; one waiting for the next;
    CREW_DISMISSED = 3      # one told to go at once (Loop.dismiss_crew)

if sizeof(Done) % CACHE_LINE:
    raise ImportError(f"a Done record is {sizeof(Done)} bytes, not whole cache lines")

cdef extern from *:
    """
    #include <errno.h>
    #include <limits.h>
    #include <linux/futex.h>
    #include <sys/syscall.h>
    #include <time.h>
    #include <unistd.h>
    /* The handoffs between the replay threads and the writing block in the kernel
       (futex) instead of polling: a word that is not yet set is marked as waited for
       (its third value) before its waiter sleeps, and whoever sets it wakes the
       waiters only when it finds that mark, so a handoff nobody waits for costs one
       exchange. */
    static inline void pyebpf_wake_if(uint32_t* at, uint32_t value, uint32_t waited) {
        if (__atomic_exchange_n(at, value, __ATOMIC_ACQ_REL) == waited)
            syscall(SYS_futex, at, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
    }
    /* Block until *at is no longer ``unset`` (nor ``waited``), for about 20 ms at most
       or until *stop (whose setters do not wake anyone: the waiter sees it within
       20 ms).  What *at holds then, ``unset`` when it is not set. */
    static uint32_t pyebpf_block(uint32_t* at, uint32_t unset, uint32_t waited,
                                 const int* stop) {
        struct timespec t = {0, 20000000};
        uint32_t v;
        int k;
        for (k = 0; k < 64; k++) {
            v = __atomic_load_n(at, __ATOMIC_ACQUIRE);
            if (v != unset && v != waited)
                return v;
            if (__atomic_load_n(stop, __ATOMIC_RELAXED))
                return unset;
            if (v == unset && !__atomic_compare_exchange_n(at, &v, waited, 0,
                                                           __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
                continue;
            if (syscall(SYS_futex, at, FUTEX_WAIT_PRIVATE, waited, &t, NULL, 0) == -1
                    && errno == ETIMEDOUT)
                break;
        }
        v = __atomic_load_n(at, __ATOMIC_ACQUIRE);
        return v == waited ? unset : v;
    }
    #define CREW_LINGER_NS 100000000
    /* A replay thread between chunks (Loop.crew): CREW_IDLE, blocked up to
       CREW_LINGER_NS for the writing to set CREW_RUN (the next chunk); then gone
       (CREW_GONE, which it sets itself, so that the writing starts another).  Whether
       it runs the next chunk. */
    static int pyebpf_crew_next(uint32_t* state) {
        struct timespec t = {0, CREW_LINGER_NS};
        uint32_t v;
        for (;;) {
            v = __atomic_load_n(state, __ATOMIC_ACQUIRE);
            if (v == 1)
                return 1;
            if (v == 3) {       /* dismissed (pyebpf_crew_dismiss) */
                __atomic_store_n(state, 0, __ATOMIC_RELEASE);
                return 0;
            }
            if (syscall(SYS_futex, state, FUTEX_WAIT_PRIVATE, v, &t, NULL, 0) == -1
                    && errno == ETIMEDOUT) {
                v = 2;
                if (__atomic_compare_exchange_n(state, &v, 0, 0, __ATOMIC_ACQ_REL,
                                                __ATOMIC_ACQUIRE))
                    return 0;
            }
        }
    }
    /* The writing hands an idle thread the chunk; false when it is gone. */
    static int pyebpf_crew_wake(uint32_t* state) {
        uint32_t v = 2;
        if (!__atomic_compare_exchange_n(state, &v, 1, 0, __ATOMIC_ACQ_REL,
                                         __ATOMIC_ACQUIRE))
            return 0;
        syscall(SYS_futex, state, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
        return 1;
    }
    /* The Loop is no longer used: an idle thread goes now (CREW_DISMISSED), not after
       CREW_LINGER_NS. */
    static void pyebpf_crew_dismiss(uint32_t* state) {
        uint32_t v = 2;
        if (__atomic_compare_exchange_n(state, &v, 3, 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE))
            syscall(SYS_futex, state, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    }
    /* A thread is done with the chunk: idle, counted in *ran; the last wakes the
       writing. */
    static void pyebpf_crew_done(uint32_t* state, uint32_t* ran, uint32_t crew) {
        __atomic_store_n(state, 2, __ATOMIC_RELEASE);
        if (__atomic_add_fetch(ran, 1, __ATOMIC_ACQ_REL) == crew)
            syscall(SYS_futex, ran, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    }
    /* The writing waits for ``crew`` threads to be done with the chunk (woken by
       the last of all the CPUs': looks every 20 ms when fewer were started). */
    static void pyebpf_crew_wait(uint32_t* ran, uint32_t crew) {
        struct timespec t = {0, 20000000};
        uint32_t v;
        while ((v = __atomic_load_n(ran, __ATOMIC_ACQUIRE)) < crew)
            syscall(SYS_futex, ran, FUTEX_WAIT_PRIVATE, v, &t, NULL, 0);
    }
    /* Done.ready: 0 (not yet), 1 (done), 2 (not yet, waited for) */
    static inline void pyebpf_publish(uint32_t* flag) {
        pyebpf_wake_if(flag, 1, 2);
    }
    static inline int pyebpf_published(const uint32_t* flag) {
        return __atomic_load_n(flag, __ATOMIC_ACQUIRE) == 1;
    }
    static inline int pyebpf_wait(uint32_t* flag, const int* stop) {
        return pyebpf_block(flag, 0, 2, stop) == 1;
    }
    /* a steering entry: UNSTEERED (0xfffe) while not chosen, 0xfffd while not chosen
       and waited for */
    static inline void pyebpf_steer(uint32_t* at, uint32_t lane) {
        pyebpf_wake_if(at, lane, 0xfffd);
    }
    /* an entry no CPU waits for (not the last of its steerer's share of a batch, the
       only one _cpu_batch waits for): a plain store, which the release of the last
       one's exchange orders before it; an exchange a packet, a locked instruction on
       a line the other CPUs read, was half of the steering's time */
    static inline void pyebpf_steer_quiet(uint32_t* at, uint32_t lane) {
        __atomic_store_n(at, lane, __ATOMIC_RELEASE);
    }
    static inline uint32_t pyebpf_steered(const uint32_t* at) {
        uint32_t lane = __atomic_load_n(at, __ATOMIC_ACQUIRE);
        return lane == 0xfffd ? 0xfffe : lane;
    }
    static inline uint32_t pyebpf_wait_steered(uint32_t* at, const int* stop) {
        return pyebpf_block(at, 0xfffe, 0xfffd, stop);
    }
    """
    void publish "pyebpf_publish" (uint32_t* flag) nogil
    void steer "pyebpf_steer" (uint32_t* at, uint32_t lane) nogil
    void steer_quiet "pyebpf_steer_quiet" (uint32_t* at, uint32_t lane) nogil
    uint32_t steered "pyebpf_steered" (const uint32_t* at) nogil
    uint32_t wait_steered "pyebpf_wait_steered" (uint32_t* at, const int* stop) nogil
    bint published "pyebpf_published" (const uint32_t* flag) nogil
    bint wait_published "pyebpf_wait" (uint32_t* flag, const int* stop) nogil
    bint crew_next "pyebpf_crew_next" (uint32_t* state) nogil
    bint crew_wake "pyebpf_crew_wake" (uint32_t* state) nogil
    void crew_dismiss "pyebpf_crew_dismiss" (uint32_t* state) nogil
    void crew_done "pyebpf_crew_done" (uint32_t* state, uint32_t* ran, uint32_t crew) nogil
    void crew_wait "pyebpf_crew_wait" (uint32_t* ran, uint32_t crew) nogil


cdef uint8_t* _lane_room(Lane* ln, size_t need) noexcept nogil:
    """``need`` bytes in the lane's blocks that stay where they are for the chunk; NULL
    when memory cannot be had."""
    cdef uint8_t** grown
    if ln.block < 0 or ln.used + need > ARENA_BLOCK:
        ln.block += 1
        ln.used = 0
        if ln.block == ln.nblocks:
            grown = <uint8_t**>realloc(ln.blocks, (ln.nblocks + 1) * sizeof(uint8_t*))
            if grown == NULL:
                return NULL
            ln.blocks = grown
            ln.blocks[ln.nblocks] = <uint8_t*>malloc(ARENA_BLOCK)
            if ln.blocks[ln.nblocks] == NULL:
                return NULL
            ln.nblocks += 1
    ln.used += need
    return ln.blocks[ln.block] + ln.used - need


cdef bint _keep_bytes(Lane* ln, Done* d, const uint8_t* frame, uint32_t n,
                      uint32_t lt) noexcept nogil:
    """Keep the packet's bytes afterwards (``d.outb``, the lane's until its next packet
    until then) and, for a frame built from another linktype, the frame as tc saw it
    (``d.frame``) in the lane's blocks, for the writing; False when memory cannot be
    had."""
    cdef uint8_t* room = _lane_room(ln, (0 if lt == LT_ETHERNET else n) + d.m)
    if room == NULL:
        return False
    if lt != LT_ETHERNET:
        memcpy(room, frame, n)
        d.frame = room
        room += n
    memcpy(room, d.outb, d.m)
    d.outb = room
    return True


include "steer.pxi"


@cython.final
cdef class Loop:
    """One replay loop: a chain of programs at a hook, the simulated CPUs that run it
    (each a Vm and skb; ``cpus`` of them, steered by RSS or the flow hash, each on its
    own thread for a chunk), and what it has replayed so far (``count``, ``counts`` per
    action, ``changed``).  Nothing of it is global, so several loops may run side by
    side on parts of a capture.

    ``replay`` runs a list of frames (on the first CPU); ``run_chunk`` the records a
    :class:`Scanner` found in a chunk of a capture, straight into the writers, in the
    capture's order whatever CPU replayed them.  ``machine``: the
    :class:`pyebpf.trace.Machine` whose kworker runs the bpf_wq work the programs queue
    and whose current task the packet runs are in (``bpf_get_current_task(_btf)`` and
    the reads through it; the ids and comm are the ``fields``); None: no task."""
    cdef ChainProg chain[MAX_CHAIN]
    cdef ProgCore* cores[MAX_CHAIN]   # the chain's programs: whose timers the replay fires
    cdef int nprogs, mode
    cdef bint keeps_layout      # every program of the chain (ProgCore.keeps_layout)
    cdef uint32_t classid, keep, untag_needs
    cdef int32_t act_default
    cdef Skb tmpl
    cdef Lane* lanes
    cdef public int cpus
    cdef int steer
    cdef Done* done
    # each packet's CPU, NO_LANE or UNSTEERED (several CPUs): apart from the Done
    # records, so that every thread's walk over the chunk reads a dense array, not the
    # cache lines the packets' own threads write
    cdef uint32_t* steering
    cdef Py_ssize_t cap_done
    cdef size_t done_bytes      # of the mapping ``done`` is (0: none)
    cdef bint done_clean        # every Done record's ready is 0: the writing resets each
                                # as it writes it, so only a chunk that ended before its
                                # last packet (or new records) leaves them to reset
    cdef const uint8_t* base    # the chunk the replay threads run
    cdef Rec* recs
    cdef Iface* ifs             # its capture's interfaces (pcapng), else NULL
    cdef uint32_t linktype      # a pcap capture's linktype
    cdef Py_ssize_t nrecs, first
    cdef int abort              # the replay threads stop (an error, an interrupt)
    cdef uint32_t crew[MAX_CPUS]    # each CPU's replay thread: CREW_GONE, _RUN or _IDLE
    cdef uint32_t ran           # replay threads done with the chunk
    # the chunk's -o records are copied by the threads that made them into one stretch
    # of the output, at offsets the writing sums (only -o, pcap; _run_threads)
    cdef bint direct
    # the replay threads keep a Done record of every packet they replay: not for a
    # pcap capture written whole (its times all fit pcap's, so no packet of it is
    # uncommon), where only a redirected packet's outcome is kept (_write_direct
    # counts it) and the rest stays in the thread's cache
    cdef bint keep_done
    # who steers packet k of the chunk: never CPU 0, whose thread also writes; for a
    # chunk written whole CPUs 1 to cpus - 1 a whole batch in turn, CPU 1 +
    # k // WRITE_BATCH % (cpus - 1) (the steering entries of a batch on cache lines
    # one thread writes), else a packet in turn, CPU 1 + k % (cpus - 1)
    cdef bint batch_steer
    cdef bint rss_recs          # the chunk's records hold their RSS hashes (Rec.rss)
    # a chunk written whole from an Ethernet pcap capture to an Ethernet pcap output:
    # where its -o records go in the output if each packet is delivered with its
    # length unchanged (so every record is as long as the capture's and sits where
    # that one does); each CPU writes such a record there, and the writing, when
    # every record of the chunk was, commits the stretch as it is (_write_direct),
    # else moves them aside and writes the chunk as before; NULL otherwise
    cdef uint8_t* in_place
    cdef size_t in_place_len
    cdef bint in_place_off      # a chunk was not written in place: no later one tries
    cdef bint copying           # the crew's job is _cpu_copy, not _cpu_run
    cdef uint8_t* copy_base
    cdef Py_ssize_t cap_slims
    cdef bint lines             # the replay threads write the report lines (a report)
    # the replay threads write the pcap records of the delivered (of the dropped)
    # packets, in that capture's linktype and fraction (a pcap capture, not pcapng)
    cdef bint out_recs, drop_recs, out_nano, drop_nano
    cdef uint32_t out_lt, drop_lt
    # a pcapng capture's interfaces (its scanner's; NULL: one interface, of out_lt)
    cdef bint out_png, drop_png
    cdef const Iface* out_ifs
    cdef const Iface* drop_ifs
    cdef object thread_error
    cdef bint use_ts
    cdef public bint stop_on_error, stopped
    cdef Clock clock
    cdef Clock chunk_clock      # the clock before the chunk the replay threads run
    cdef uint64_t ktime_start
    cdef list perf
    cdef bint has_perf          # perf is not empty
    cdef MapStore** perf_stores # perf's storage, for the replay threads (several CPUs)
    cdef public uint64_t truncated
    cdef public dict extras     # {index: dict} of the chunk (or list) last replayed
    # ([(index, [(map, cpu, bytes)])]) -> None: takes the events of packets already
    # written, in the capture's order, popped from their extras, once more than
    # events_limit bytes of them are held mid-chunk (when set)
    cdef public object events_out
    cdef list crew_threads          # the replay threads started, until dismiss_crew
    cdef public Py_ssize_t events_limit
    cdef public bint keep_events    # extras take the packets' perf events (else dropped)
    cdef Py_ssize_t events_held     # bytes of events in extras
    cdef Py_ssize_t events_written  # of those, the bytes of packets already written
    cdef dict event_bytes           # {index: bytes of its events} of those in extras
    cdef Py_ssize_t write_at        # the next packet of the chunk to write (several CPUs)
    cdef uint64_t rd_keys[MAX_REDIRECTS]
    cdef list rd_writers
    cdef public object redirect_writer   # (ifindex, ingress) -> CaptureWriter
    # (nanosecond, linktype) of redirect_writer's captures (pcap), when known: the
    # replay threads then write the redirected packets' records
    cdef public object redirect_format
    cdef bint rd_recs, rd_nano
    cdef uint32_t rd_lt
    cdef const AnnSpec* ann             # annotated's, for the replay threads (else NULL)
    cdef public object report_slow       # (index, fields, extra) -> bytes, for lines with extras
    cdef public bint report_full         # report lines with every key (else compact)
    cdef object programs
    cdef bint extra_here        # the packet being written has an entry in extras
    cdef LineTail tail          # of the report lines the writing makes
    # the summary of tcsim --json, counted here: the Tally, and packets per redirect
    # target
    cdef Tally sums
    cdef uint64_t rd_count_keys[MAX_REDIRECTS]
    cdef uint64_t rd_counts[MAX_REDIRECTS]
    cdef Py_ssize_t rd_ncounts
    cdef public Annotator annotated      # tcsim --annotated, when set
    cdef public object observe           # (index, frame, out, outcome bytes), when set
    cdef public bint keep_packets        # run_chunk keeps each packet (kept_packet)
    cdef Kept* kept
    cdef Py_ssize_t nkept, cap_kept
    cdef uint8_t* kept_buf
    cdef size_t kept_len, kept_cap

    cdef object machine         # the pyebpf.trace.Machine whose kworker runs bpf_wq work
    cdef object image           # what the lanes' worlds point into (hook_world)
    cdef bint has_world         # a machine gives the packet runs a current task
    def __cinit__(self):
        memset(&self.tmpl, 0, sizeof(Skb))
        self.crew_threads = []

    def __init__(self, list programs, *, str mode="da", bint ingress=True,
                 uint32_t classid=0, int act_default=TC_ACT_PIPE, dict fields=None,
                 bint stop_on_error=False, bint capture_clock=True, int cpus=1,
                 str steer="rss", machine=None):
        cdef int nprogs = len(programs)
        cdef ProgCore* core
        cdef MapStore* m
        cdef int c
        if not 0 < nprogs <= MAX_CHAIN:
            raise ValueError(f"a chain holds 1 to {MAX_CHAIN} programs, not {nprogs}")
        if not 0 < cpus <= MAX_CPUS:
            raise ValueError(f"tcsim simulates 1 to {MAX_CPUS} CPUs, not {cpus}")
        self.mode = {"da": MODE_DA, "classid": MODE_CLASSID, "act": MODE_ACT, "sf": MODE_SF}[mode]
        self.steer = {"rss": STEER_RSS, "hash": STEER_HASH}[steer]
        profile = programs[0].profile
        want = (_isa.ProgType.BPF_PROG_TYPE_SCHED_ACT if self.mode == MODE_ACT
                else _isa.ProgType.BPF_PROG_TYPE_SOCKET_FILTER if self.mode == MODE_SF
                else _isa.ProgType.BPF_PROG_TYPE_SCHED_CLS)
        if self.mode == MODE_SF and nprogs != 1:
            raise ValueError(f"a packet socket runs one socket filter, not {nprogs}")
        self.perf = []
        self.keeps_layout = True
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
            self.cores[k] = core
            self.keeps_layout = self.keeps_layout and core.keeps_layout
            self.chain[k].tail_call_limit = p.tail_call_limit
            for mp in p.maps:
                m = map_store(mp)
                if m.type == BPF_MAP_TYPE_PERF_EVENT_ARRAY and mp not in self.perf:
                    self.perf.append(mp)
                if (m.type == BPF_MAP_TYPE_PERCPU_ARRAY or m.type == BPF_MAP_TYPE_PERCPU_HASH
                        or m.type == BPF_MAP_TYPE_LRU_PERCPU_HASH) and m.ncpu < cpus:
                    raise ValueError(f"the per-CPU map {mp.name!r} holds values for {m.ncpu} "
                                     f"CPUs, fewer than the {cpus} simulated (a map pinned "
                                     "by an earlier run keeps its CPU count)")
        self.has_perf = len(self.perf) > 0
        self.perf_stores = <MapStore**>calloc(len(self.perf) + 1, sizeof(MapStore*))
        if self.perf_stores == NULL:
            raise MemoryError()
        for k, mp in enumerate(self.perf):
            self.perf_stores[k] = map_store(mp)
        if cpus > 1 and "cpu" in (fields or {}):
            raise ValueError("with several CPUs the steering picks each packet's CPU; "
                             "the field cpu applies to --cpus 1")
        self.programs = programs        # keeps the ProgCores alive
        self.nprogs = nprogs
        self.machine = machine
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
        self.clock.now = self.ktime_start = KTIME_START
        self.lanes = <Lane*>calloc(cpus, sizeof(Lane))
        if self.lanes == NULL:
            raise MemoryError()
        self.cpus = cpus
        for c in range(cpus):
            self.lanes[c].eth = <uint8_t*>malloc(2 * (0x10000 + LINK_MAX + VLAN_HLEN))
            if self.lanes[c].eth == NULL:
                raise MemoryError()
            self.lanes[c].out = self.lanes[c].eth + 0x10000 + LINK_MAX + VLAN_HLEN
            if machine is not None:
                self.image = hook_world(machine, &self.lanes[c].world)
                self.has_world = True
        self.extras = {}
        self.events_limit = EVENTS_HELD_MAX
        self.keep_events = True
        self._events_reset()
        self.rd_writers = []
        for mp in self.perf:
            mp.drain()       # events from before the replay are not a packet's

    def __dealloc__(self):
        cdef int c, k
        if self.lanes != NULL:
            for c in range(self.cpus):
                self.lanes[c].skb.devices = NULL      # the template's
                skb_free(&self.lanes[c].skb)
                free(self.lanes[c].eth)
                free(self.lanes[c].ann.p)
                for k in range(self.lanes[c].nblocks):
                    free(self.lanes[c].blocks[k])
                free(self.lanes[c].blocks)
                free(self.lanes[c].slims)
                free(self.lanes[c].lens)
                free(self.lanes[c].offs)
            free(self.lanes)
        skb_free(&self.tmpl)
        free(self.perf_stores)
        if self.done_bytes:
            munmap(self.done, self.done_bytes)
        free(self.steering)
        free(self.kept)
        free(self.kept_buf)

    @property
    def count(self):
        """Packets replayed."""
        return self.sums.count

    @property
    def bytes_in(self):
        """Bytes of the packets replayed, as tc saw them."""
        return self.sums.bytes_in

    @property
    def bytes_out(self):
        """Bytes of the packets delivered and redirected, afterwards."""
        return self.sums.bytes_out

    @property
    def counts(self):
        """Packets per action (HOOK_DELIVERED ... HOOK_BEFORE_TC)."""
        return [self.sums.counts[k] for k in range(6)]

    @property
    def changed(self):
        """Packets whose bytes the programs changed."""
        return sum(self.lanes[c].changed for c in range(self.cpus))

    @property
    def verdicts(self):
        """{verdict: packets} of the packets that reached a verdict."""
        return {k - 1: self.sums.verdicts[k] for k in range(10) if self.sums.verdicts[k]}

    @property
    def redirects(self):
        """{(ifindex, ingress): packets} of the packets redirected."""
        return {(self.rd_count_keys[k] >> 1, bool(self.rd_count_keys[k] & 1)):
                self.rd_counts[k] for k in range(self.rd_ncounts)}

    cdef int _tally(self, Py_ssize_t index, const TcOutcome* o, const uint8_t* frame,
                    uint32_t n, const uint8_t* out, uint32_t m, uint64_t ts,
                    int64_t delta, const Done* made) except -1:
        """Count one packet into the summary; hand it to ``annotated`` (its blocks,
        when a replay thread ``made`` them) and ``observe`` where set (``out``/``m``:
        its bytes afterwards, the frame itself when it has none; ``delta``: its length
        on the wire less its length captured)."""
        self._count(o, n, m)
        if self.annotated is not None or self.observe is not None:
            self._hand(index, o, frame, n, out, m, ts, delta, made)
        return 0

    cdef inline void _count(self, const TcOutcome* o, uint32_t n, uint32_t m) noexcept nogil:
        """_tally's counts (the summary), which every packet updates."""
        _add_counts(&self.sums, o.action, o.verdict, n, m)
        if o.action == HOOK_REDIRECTED:
            self._count_redirect(o)

    cdef void _count_redirect(self, const TcOutcome* o) noexcept nogil:
        cdef uint64_t key = (<uint64_t>o.redirect_ifindex << 1) | o.redirect_ingress
        cdef Py_ssize_t k
        for k in range(self.rd_ncounts):
            if self.rd_count_keys[k] == key:
                self.rd_counts[k] += 1
                return
        if self.rd_ncounts < MAX_REDIRECTS:
            self.rd_count_keys[self.rd_ncounts] = key
            self.rd_counts[self.rd_ncounts] = 1
            self.rd_ncounts += 1

    cdef int _hand(self, Py_ssize_t index, const TcOutcome* o, const uint8_t* frame,
                   uint32_t n, const uint8_t* out, uint32_t m, uint64_t ts,
                   int64_t delta, const Done* made) except -1:
        """_tally's hand-over to ``annotated`` and ``observe`` (one of them set)."""
        if self.annotated is not None:
            if made != NULL and made.ann != NULL:
                self.annotated.blocks(made.ann, made.ann_len)
            else:
                self.annotated.packet(ts, frame, n, out, m, delta, o,
                                      self.extras[index] if self.extra_here else None)
        if self.observe is not None:
            self.observe(index, PyBytes_FromStringAndSize(<const char*>frame, n),
                         PyBytes_FromStringAndSize(<const char*>out, m),
                         PyBytes_FromStringAndSize(<const char*>o, sizeof(TcOutcome)))
        return 0

    cdef inline bint _admitted(self, uint32_t lt, int e, const uint8_t* frame, uint32_t n,
                               TcOutcome* o) noexcept nogil:
        """Whether the frame reaches the programs: it became an Ethernet frame (``e``:
        what _to_eth returned for linktype ``lt``) an skb holds that the receive path
        does not free first; ``o`` reset for it."""
        memset(o, 0, sizeof(TcOutcome))
        o.mark, o.priority, o.tc_index = self.tmpl.mark, self.tmpl.priority, self.tmpl.tc_index
        return (lt == LT_ETHERNET or e >= 0) and ETH_HLEN <= n <= 0xffff and not (
            self.keep & 8 and n < self.untag_needs and not self.tmpl.vlan_present
            and _vlan_tpid(frame))

    cdef void _refused(self, Py_ssize_t index, Rec* r, uint32_t lt, int e, uint32_t n,
                       TcOutcome* o) except *:
        """The outcome (into ``o``) and ``extras[index]`` of a frame _admitted refused."""
        if lt != LT_ETHERNET and e < 0:
            memset(o, 0, sizeof(TcOutcome))
            o.action = HOOK_FAULT
            self.extras[index] = {"error": (
                f"a {r.caplen}-byte frame is shorter than its LINKTYPE_{LINKTYPES[lt]} "
                f"header ({_link_hlen(lt)} bytes)" if e == -1 else
                f"its LINKTYPE_{LINKTYPES[lt]} header names no protocol tc knows (IPv4 or "
                "IPv6)")}
        elif n < ETH_HLEN or n > 0xffff:
            o.action = HOOK_FAULT
            self.extras[index] = {"error": f"a {n}-byte frame cannot be replayed (an skb "
                                           "holds 14 to 65535 bytes)"}
        else:
            o.action = HOOK_BEFORE_TC
            self.extras[index] = {"dropped_before_tc": f"skb_vlan_untag: the {n}-byte frame "
                                  f"cuts off its VLAN tag (needs {self.untag_needs} bytes)"}

    cdef inline uint64_t _clock_at(self, uint64_t ts) noexcept nogil:
        """bpf_ktime_get_ns for the next packet replayed, captured at ``ts``: the
        capture's clock, which never goes back (0 without it)."""
        if not self.use_ts:
            return 0
        return _clock_step(&self.clock, self.ktime_start, ts)

    cdef inline uint64_t _time(self, uint64_t ktime) noexcept nogil:
        """The time a packet arrives at: its capture clock, or the fixed ``ktime``."""
        return ktime if self.use_ts else self.tmpl.ktime

    cdef inline bint _timers_due(self, uint64_t now) noexcept nogil:
        """Whether a bpf_timer may be due at ``now`` (the one check per packet)."""
        return <int64_t>now >= timers_soonest()

    cdef int _fire(self, uint64_t now) except -1:
        """Before a packet arriving at ``now``: the bpf_timer callbacks due by then run,
        as the kernel's hrtimers fire between packets (docs/tcsim.md)."""
        fire_timers(<int64_t>now, TIMER_CALLBACKS_PER_GAP, self.cores, self.nprogs,
                    self.machine)
        return 0

    @property
    def now(self):
        """The time of the last packet replayed (bpf_ktime_get_ns's reading)."""
        return self._time(self.clock.now)

    def finish_timers(self):
        """At the end of the capture: the callbacks due by its clock's last reading run
        (those armed for later never fire); how many ran."""
        cdef uint64_t now = self._time(self.clock.now)
        if <int64_t>now >= timers_soonest():
            return fire_timers(<int64_t>now, TIMER_CALLBACKS_PER_GAP, self.cores, self.nprogs,
                               self.machine)
        return 0

    cdef int _packet(self, Lane* ln, uint32_t cpu, const uint8_t* frame, uint32_t n,
                     uint64_t ktime, int pkt_type, TcOutcome* o) noexcept nogil:
        """Replay one admitted Ethernet frame on a CPU; ``o`` (as _admitted left it) gets
        the outcome, ``ln.skb`` holds the packet afterwards.  -1 when memory cannot be
        had."""
        if not self._load(ln, frame, n):
            return -1
        if pkt_type >= 0 and not self.keep & 2:
            ln.skb.pkt_type = pkt_type
        if self.cpus > 1:
            ln.skb.cpu = cpu
        if self.use_ts:
            ln.skb.ktime = ktime
        _run_chain(&ln.vm, self.chain, self.nprogs, self.mode, self.classid,
                   self.act_default, &ln.skb, o, &ln.world if self.has_world else NULL)
        ln.clean = self.keeps_layout
        o.mark, o.priority, o.tc_index = ln.skb.mark, ln.skb.priority, ln.skb.tc_index
        if self.keep & 16:
            # what a packet socket reads starts at the MAC header again
            ln.skb.data -= ETH_HLEN
            ln.skb.len += ETH_HLEN
        return 0

    cdef inline bint _load(self, Lane* ln, const uint8_t* frame, uint32_t n) noexcept nogil:
        """Reset the lane's skb to ``frame`` from the template: where the runs since its
        last load kept the layout, only what they dirtied (skb_reload_frame, as
        Program.run_many).  False when memory cannot be had."""
        ln.clean = (skb_reload_frame(&ln.skb, &self.tmpl, frame, n, self.keep) if ln.clean
                    else skb_load_frame(&ln.skb, &self.tmpl, frame, n, self.keep))
        return ln.clean

    cdef inline bint _has_extras(self, Lane* ln, TcOutcome* o) noexcept nogil:
        if o.fault_prog or ln.skb.nclones or ln.skb.printk_len:
            return True
        if self.cpus > 1 and self.has_perf:
            return self._cpu_has_events(ln.skb.cpu)
        return self.has_perf

    cdef bint _cpu_has_events(self, uint32_t cpu) noexcept nogil:
        """Whether a perf event array holds an event of ``cpu``: with several CPUs each
        packet's events are those of its CPU, as the kernel gives each CPU its own perf
        buffer (perf_event_output writes to the current CPU's event)."""
        cdef MapStore* m
        cdef size_t pos
        cdef uint32_t size, at
        cdef int k = 0
        cdef bint found = False
        while self.perf_stores[k] != NULL and not found:
            m = self.perf_stores[k]
            map_lock(&m.lock)
            pos = 0
            while pos < m.events_len and not found:
                memcpy(&at, m.events + pos, 4)
                memcpy(&size, m.events + pos + 4, 4)
                found = at == cpu
                pos += 8 + size
            map_unlock(&m.lock)
            k += 1
        return found

    cdef list _take_events(self, MapStore* m, uint32_t cpu):
        """[(cpu, bytes)] of ``cpu``'s events in ``m``, in the order they were sent, taken
        out of the buffer the CPUs share (the others' stay, in their order)."""
        cdef size_t pos = 0, kept = 0
        cdef uint32_t size, at
        out = []
        map_lock(&m.lock)
        try:
            while pos < m.events_len:
                memcpy(&at, m.events + pos, 4)
                memcpy(&size, m.events + pos + 4, 4)
                if at == cpu:
                    out.append((at, PyBytes_FromStringAndSize(<char*>m.events + pos + 8, size)))
                else:
                    memmove(m.events + kept, m.events + pos, 8 + size)
                    kept += 8 + size
                pos += 8 + size
            m.events_len = kept
        finally:
            map_unlock(&m.lock)
        return out

    cdef void _events_reset(self):
        self.events_held = self.events_written = self.write_at = 0
        self.event_bytes = {}

    cdef int _written(self, Py_ssize_t index) except -1:
        """Count packet ``index``'s events (if any) as written; past events_limit hand
        those of every packet up to it (all written) to events_out, popped from their
        extras (the replay threads may have made later packets' already)."""
        held = self.event_bytes.get(index)
        if held is None:
            return 0
        self.events_written += held
        if self.events_written <= self.events_limit or self.events_out is None:
            return 0
        batch = []
        for i in sorted(i for i in self.event_bytes if i <= index):
            self.events_held -= self.event_bytes.pop(i)
            extra = self.extras[i]
            batch.append((i, extra.pop("events")))
            if not extra:
                del self.extras[i]      # no packet of the chunk has an empty entry
        self.events_written = 0
        self.events_out(batch)
        return 0

    cdef bint _events_wait(self, Py_ssize_t k) noexcept nogil:
        """A replay thread's wait before packet ``k`` while it is more than EVENTS_AHEAD
        packets ahead of the writing and twice events_limit bytes of events are held;
        False on abort."""
        while (self.events_held > 2 * self.events_limit
               and k > self.write_at + EVENTS_AHEAD):
            if self.abort:
                return False
            usleep(50)
        return True

    cdef bint _extras(self, Lane* ln, Py_ssize_t index, TcOutcome* o) except *:
        """Put what the packet has beyond ``o`` into ``extras[index]``; whether it has
        any."""
        cdef Skb* skb = &ln.skb
        cdef size_t c
        cdef MapStore* m
        cdef Py_ssize_t held = 0
        extra = {}
        if o.fault_prog:
            extra["error"] = vm_fault(&ln.vm, self.chain[o.fault_prog - 1].budget)
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
        for k, mp in enumerate(self.perf):
            m = self.perf_stores[k]
            if m.events_len:
                events = mp.drain() if self.cpus == 1 else self._take_events(m, skb.cpu)
                if not self.keep_events:
                    continue
                kept = extra.setdefault("events", [])
                for cpu, ev in events:
                    kept.append((mp, cpu, ev))
                    held += PyBytes_GET_SIZE(ev) + EVENT_OBJECTS
        if held:
            self.event_bytes[index] = held
            self.events_held += held
        if extra:
            self.extras[index] = extra
        return bool(extra)

    cdef const uint8_t* _output(self, Lane* ln, TcOutcome* o, const uint8_t* frame,
                                uint32_t n, uint32_t* m) noexcept nogil:
        """The packet's bytes on the wire now (``m[0]`` of them, a socket filter's cut
        to its return value), valid until the lane's next packet: ``frame`` itself when
        they equal it, else the skb's own bytes, copied into ``ln.out`` only where a tag
        in the metadata goes back in; counts it as changed when they differ."""
        cdef const uint8_t* p = skb_data(&ln.skb)
        cdef uint32_t wire = <uint32_t>skb_wire_len(&ln.skb)
        cdef uint64_t cut = <uint64_t><uint32_t>o.retval + (ETH_HLEN if self.keep & 16 else 0)
        m[0] = wire
        if self.mode == MODE_SF and o.action == HOOK_DELIVERED and cut < ln.skb.len:
            # the snap length applies to the skb (from where the filter started); a tag
            # in its metadata is put back
            m[0] = <uint32_t>cut + (VLAN_HLEN if ln.skb.vlan_present else 0)
        if wire != ln.skb.len:
            skb_wire_bytes(&ln.skb, ln.out)
            p = ln.out
        if m[0] == n and memcmp(p, frame, n) == 0:
            return frame
        ln.changed += 1
        return p

    def replay(self, list frames, list ts=None):
        """Run every frame of ``frames`` (Ethernet, ``ts`` their capture times in ns) on
        the first CPU: ``(records, data, extras)`` as :func:`tc_replay` returns them."""
        cdef Py_ssize_t i = 0, nframes = len(frames)
        # filled in place before anything else sees them: every record up to the last
        # replayed is written (_admitted resets it), every item of data set
        cdef bytes records = PyBytes_FromStringAndSize(NULL, nframes * sizeof(TcOutcome))
        cdef TcOutcome* outs = <TcOutcome*>PyBytes_AS_STRING(records)
        cdef list data = PyList_New(nframes)
        cdef Lane* ln = &self.lanes[0]
        cdef bytes frame
        cdef object item
        cdef const uint8_t* f
        cdef const uint8_t* outb
        cdef uint32_t n, m
        cdef uint64_t ktime, t = 0
        cdef bint timed = bool(ts)
        self.extras = {}
        self._events_reset()
        held_sockets_entry()
        try:
            for i in range(nframes):
                if not i & 255:     # a pending SIGINT ends the replay within 256 packets
                    PyErr_CheckSignals()
                frame = frames[i]
                f, n = <const uint8_t*>PyBytes_AS_STRING(frame), len(frame)
                if timed:
                    t = ts[i]
                self.extra_here = False
                if not self._admitted(LT_ETHERNET, 0, f, n, &outs[i]):
                    self._refused(i, NULL, LT_ETHERNET, 0, n, &outs[i])
                    self.extra_here = True
                    Py_INCREF(frame)
                    PyList_SET_ITEM(data, i, frame)
                    self._tally(i, &outs[i], f, n, f, n, t, 0, NULL)
                    if outs[i].action == HOOK_FAULT and self.stop_on_error:
                        return self._stopped(records, data, i + 1)
                    continue
                ktime = self._clock_at(t)
                if self._timers_due(self._time(ktime)):
                    self._fire(self._time(ktime))
                if self._packet(ln, 0, f, n, ktime, -1, &outs[i]) < 0:
                    raise MemoryError()
                if self._has_extras(ln, &outs[i]):
                    self.extra_here = self._extras(ln, i, &outs[i])
                outb = self._output(ln, &outs[i], f, n, &m)
                item = frame if outb == f else PyBytes_FromStringAndSize(<const char*>outb, m)
                Py_INCREF(item)
                PyList_SET_ITEM(data, i, item)
                self._count(&outs[i], n, m)
                if self.annotated is not None or self.observe is not None:
                    self._hand(i, &outs[i], f, n, outb, m, t, 0, NULL)
                if outs[i].fault_prog and self.stop_on_error:
                    return self._stopped(records, data, i + 1)
            return records, data, self.extras
        except KeyboardInterrupt as exc:
            exc.packet = i
            raise

    cdef tuple _stopped(self, bytes records, list data, Py_ssize_t k):
        """replay's result when it stopped after ``k`` packets (a fault with
        ``stop_on_error``)."""
        self.stopped = True
        del data[k:]
        return records[:k * sizeof(TcOutcome)], data, self.extras

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
        JSON line per packet.  With several CPUs each replays its packets on a thread
        of its own, then the packets are written in the capture's order.  ``extras``
        holds the chunk's packets' extras after (in the capture's order); the count
        replayed is returned (less than all after a fault with ``stop_on_error``)."""
        cdef const uint8_t* base = &chunk[0]
        cdef Rec* r
        cdef Py_ssize_t k, index = first
        cdef TcOutcome o
        cdef Lane* ln = &self.lanes[0]
        cdef Done* d
        cdef uint32_t lt, n, m
        cdef int pkt_type
        cdef int e
        cdef const uint8_t* frame
        cdef const uint8_t* hdr
        cdef const uint8_t* outb
        cdef bint reached
        cdef uint64_t ktime
        self.extras = {}
        self._events_reset()
        self.nkept = self.kept_len = 0
        held_sockets_entry()
        if sc.nrecs and self.cpus > 1:
            return self._run_threads(base, sc, first, out, drops, report)
        try:
            for k in range(sc.nrecs):
                if not k & 255:     # a pending SIGINT ends the replay within 256 packets
                    PyErr_CheckSignals()
                r = &sc.recs[k]
                index = first + k
                lt = sc.ifs[r.iface].linktype if sc.pcapng else sc.linktype
                hdr = base + r.off
                if lt == LT_ETHERNET:
                    frame, n, pkt_type, e = hdr, r.caplen, -1, 0
                else:
                    e = _to_eth(lt, hdr, r.caplen, self.tmpl.dev_addr, ln.eth, &pkt_type)
                    frame, n = ln.eth, <uint32_t>e
                reached = self._admitted(lt, e, frame, n, &o)
                if not reached:
                    self._refused(index, r, lt, e, n, &o)
                self.extra_here = not reached
                m, outb = 0, NULL
                if reached:
                    ktime = self._clock_at(r.ts)
                    if self._timers_due(self._time(ktime)):
                        self._fire(self._time(ktime))
                    if self._packet(ln, 0, frame, n, ktime, pkt_type, &o) < 0:
                        raise MemoryError()
                    if self._has_extras(ln, &o):
                        self.extra_here = self._extras(ln, index, &o)
                    outb = self._output(ln, &o, frame, n, &m)
                if self._emit(index, r, lt, hdr, &o, reached, frame, n, outb, m,
                              ln.skb.pkt_type, out, drops, report, NULL):
                    return k + 1
                if self.events_held:
                    self._written(index)
            return sc.nrecs
        except KeyboardInterrupt as exc:
            exc.packet = index
            raise

    cdef int _emit(self, Py_ssize_t index, Rec* r, uint32_t lt, const uint8_t* hdr,
                   TcOutcome* o, bint reached, const uint8_t* frame, uint32_t n,
                   const uint8_t* outb, uint32_t m, uint8_t pkt_type, CaptureWriter out,
                   CaptureWriter drops, Writer report, const Done* made) except -1:
        """Write one replayed packet where it goes and count it; 1 when the replay
        stops here (a fault with ``stop_on_error``), else 0.  ``frame``/``n``: the
        frame as tc saw it, ``outb``/``m`` its bytes afterwards (when ``reached``);
        ``made``: what a replay thread wrote of it (its report line, pcap record,
        annotated blocks), else NULL."""
        cdef int64_t delta = <int64_t>r.wire - r.caplen
        cdef CaptureWriter w
        cdef const char* line = made.line if made != NULL else NULL
        cdef const uint8_t* rec = made.rec if made != NULL else NULL
        cdef uint32_t line_len = made.line_len if made != NULL else 0
        cdef uint32_t rec_len = made.rec_len if made != NULL else 0
        cdef char* start
        cdef char* end
        if r.caplen < r.wire:
            self.truncated += 1
        if not reached:
            if drops is not None:
                if rec != NULL:
                    if drops.pcapng:
                        drops._linktype_of(r.iface)
                    memcpy(drops.room(rec_len), rec, rec_len)
                    drops.commit(rec_len)
                else:
                    drops._raw(r.ts, hdr, r.caplen, r.wire, r.iface, lt)
        else:
            if o.action == HOOK_DELIVERED and out is not None:
                if rec != NULL:
                    if out.pcapng:
                        out._linktype_of(r.iface)   # its interface's block first
                    memcpy(out.room(rec_len), rec, rec_len)
                    out.commit(rec_len)
                else:
                    out.record(r.ts, outb, m, delta, r.iface, lt, hdr, pkt_type,
                               <const uint8_t*>hdr - r.off + r.opt_off, r.opt_len)
            elif (o.action == HOOK_DROPPED or o.action == HOOK_FAULT) and drops is not None:
                if rec != NULL:
                    if drops.pcapng:
                        drops._linktype_of(r.iface)
                    memcpy(drops.room(rec_len), rec, rec_len)
                    drops.commit(rec_len)
                elif o.action == HOOK_FAULT:
                    drops._raw(r.ts, hdr, r.caplen, r.wire, r.iface, lt)
                else:
                    drops.record(r.ts, outb, m, delta, r.iface, lt, hdr, pkt_type,
                                 <const uint8_t*>hdr - r.off + r.opt_off, r.opt_len)
            if self.redirect_writer is not None:
                if made != NULL and made.clones != NULL:
                    self._copy_clones(index, r, lt, hdr, pkt_type, made)
                elif self.extra_here:
                    for ifindex, ingress, clone in self.extras[index].get("clones", ()):
                        w = self._redirect(ifindex, ingress)
                        w.record(r.ts, <const uint8_t*>PyBytes_AS_STRING(clone), len(clone),
                                 delta, r.iface, lt, hdr, pkt_type, NULL, 0)
                if o.action == HOOK_REDIRECTED:
                    w = self._redirect(o.redirect_ifindex, o.redirect_ingress)
                    if rec != NULL and not w.pcapng and w.nanosecond == self.rd_nano \
                            and w.linktype == self.rd_lt:
                        memcpy(w.room(rec_len), rec, rec_len)
                        w.commit(rec_len)
                    else:
                        w.record(r.ts, outb, m, delta, r.iface, lt, hdr, pkt_type, NULL, 0)
        if reached:
            self._tally(index, o, frame, n, outb, m, r.ts, delta, made)
        else:
            self._tally(index, o, hdr, r.caplen, hdr, r.caplen, r.ts, delta, made)
        if report is not None:
            if line != NULL:
                memcpy(report.room(line_len), line, line_len)
                report.commit(line_len)
            else:
                # in C here, or for a packet with extras (or a timestamp only Python's
                # repr writes) through report_slow
                start = <char*>report.room(REPORT_LINE_MAX) if not self.extra_here else NULL
                end = (_report_line(start, index, r, o, m, lt, self.mode, self.report_full,
                                    &self.tail)
                       if start != NULL else NULL)
                if end != NULL:
                    report.commit(end - start)
                else:
                    report.append(self._slow_line(
                        index, r, o, m, lt, self.extras[index] if self.extra_here else {}))
        if self.keep_packets:
            self._keep(o, r.ts, delta, outb if reached else hdr, m if reached else r.caplen)
        if o.action == HOOK_FAULT and self.stop_on_error:
            self.stopped = True
            return 1
        return 0

    cdef int _copy_clones(self, Py_ssize_t index, Rec* r, uint32_t lt, const uint8_t* hdr,
                          uint8_t pkt_type, const Done* made) except -1:
        """Copy the records a replay thread wrote of the packet's clones into their
        redirect captures (_write_clones); a capture of another format gets the clone
        from ``extras[index]`` written as _emit writes it."""
        cdef Cloned head
        cdef uint32_t at = 0
        cdef Py_ssize_t c = 0
        cdef CaptureWriter w
        cdef bytes clone
        while at < made.clones_len:
            memcpy(&head, made.clones + at, sizeof(Cloned))
            w = self._redirect(head.ifindex, head.ingress)
            if not w.pcapng and w.nanosecond == self.rd_nano and w.linktype == self.rd_lt:
                memcpy(w.room(head.rec_len), made.clones + at + sizeof(Cloned), head.rec_len)
                w.commit(head.rec_len)
            else:
                clone = self.extras[index]["clones"][c][2]
                w.record(r.ts, <const uint8_t*>PyBytes_AS_STRING(clone), len(clone),
                         <int64_t>r.wire - r.caplen, r.iface, lt, hdr, pkt_type, NULL, 0)
            at += sizeof(Cloned) + head.rec_len
            c += 1
        return 0

    cdef int _keep(self, TcOutcome* o, uint64_t ts, int64_t delta, const uint8_t* data,
                   uint32_t n) except -1:
        cdef Kept* grown
        cdef uint8_t* buf
        cdef Py_ssize_t cap
        if self.nkept == self.cap_kept:
            cap = 2 * self.cap_kept if self.cap_kept else 4096
            grown = <Kept*>realloc(self.kept, cap * sizeof(Kept))
            if grown == NULL:
                raise MemoryError()
            self.kept, self.cap_kept = grown, cap
        if self.kept_len + n > self.kept_cap:
            buf = <uint8_t*>realloc(self.kept_buf, 2 * (self.kept_len + n))
            if buf == NULL:
                raise MemoryError()
            self.kept_buf, self.kept_cap = buf, 2 * (self.kept_len + n)
        memcpy(&self.kept[self.nkept].o, o, sizeof(TcOutcome))
        self.kept[self.nkept].ts, self.kept[self.nkept].delta = ts, delta
        self.kept[self.nkept].off, self.kept[self.nkept].len = self.kept_len, n
        memcpy(self.kept_buf + self.kept_len, data, n)
        self.kept_len += n
        self.nkept += 1
        return 0

    def kept_packet(self, Py_ssize_t k):
        """Packet ``k`` of the chunk last replayed with ``keep_packets`` on: (its outcome, packed
        as REPLAY_RECORD; its bytes afterwards, as captured when it never reached tc; its
        capture time in ns; its length on the wire)."""
        cdef Kept* p
        if not 0 <= k < self.nkept:
            raise IndexError(k)
        p = &self.kept[k]
        return (PyBytes_FromStringAndSize(<const char*>&p.o, sizeof(TcOutcome)),
                PyBytes_FromStringAndSize(<const char*>self.kept_buf + p.off, p.len),
                p.ts, <int64_t>p.len + p.delta)

    cdef uint32_t _steer_to(self, Lane* ln, const uint8_t* frame, uint32_t n) noexcept nogil:
        """The CPU that receives the frame: by the RSS hash of its tuple, or (--steer
        hash) by the flow hash the kernel gives the skb (__skb_get_hash, computed on
        the lane's skb), as RPS steers.  NO_LANE when memory cannot be had."""
        if self.steer == STEER_RSS:
            return rss_queue(rss_hash(frame, n), self.cpus)
        if not self._load(ln, frame, n):
            return NO_LANE
        _skb_flow_hash(&ln.skb)
        return rps_cpu(ln.skb.hash, self.cpus)

    cdef Py_ssize_t _run_threads(self, const uint8_t* base, Scanner sc, Py_ssize_t first,
                                 CaptureWriter out, CaptureWriter drops,
                                 Writer report) except -1:
        """run_chunk with several CPUs: every CPU (the GIL released) steers its share of
        the chunk's records, times them all, and replays those steered to it, writing
        their records and report lines; CPU 0 is this thread, which also writes every
        packet, in the capture's order, as the CPUs are done with it: after each
        REPLAY_STRIDE packets of its own walk those that are ready, at the end of the
        chunk the rest."""
        cdef Py_ssize_t k, start, end, stop, index = first
        cdef Rec* r
        cdef Done* d
        cdef Done* grown
        cdef int c
        cdef bint ready, wait, replaying, finished = False
        cdef Slim* slims
        cdef uint32_t* lens
        cdef size_t* offs
        if sc.nrecs > self.cap_done:
            # on cache lines of their own (malloc's 16-byte alignment would put two
            # packets' records, written by two threads, on one line); nothing kept.
            # Pages of zeros, every ready flag 0 untouched: a chunk written whole from
            # a pcap capture touches only those of the few packets it keeps a record
            # of (a reset of all was ~1,600 page faults on the main thread, ~4 ms, for
            # 52,000 records before the replay threads start)
            grown = <Done*>mmap(NULL, sc.nrecs * sizeof(Done), PROT_READ | PROT_WRITE,
                                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
            if grown == <Done*>MAP_FAILED:
                raise MemoryError()
            if self.done_bytes:
                munmap(self.done, self.done_bytes)
            self.done, self.done_bytes = grown, sc.nrecs * sizeof(Done)
            self.cap_done, self.done_clean = sc.nrecs, True
            free(self.steering)
            self.steering = <uint32_t*>malloc(sc.nrecs * sizeof(uint32_t))
            if self.steering == NULL:
                self.cap_done = 0
                raise MemoryError()
        if not self.done_clean:
            for k in range(self.cap_done):
                self.done[k].ready = 0
        self.done_clean = False     # until every packet of the chunk is written
        for k in range(sc.nrecs):
            self.steering[k] = UNSTEERED
        self.base, self.recs, self.nrecs, self.first = base, sc.recs, sc.nrecs, first
        self.ifs, self.linktype = sc.ifs if sc.pcapng else NULL, sc.linktype
        self.abort, self.thread_error = 0, None
        self.lines = report is not None
        self.out_recs, self.drop_recs = out is not None, drops is not None
        if self.out_recs:
            self.out_nano, self.out_lt, self.out_png = out.nanosecond, out.linktype, out.pcapng
            self.out_ifs = out.scanner.ifs if out.pcapng and out.scanner is not None else NULL
        if self.drop_recs:
            self.drop_nano, self.drop_lt, self.drop_png = (drops.nanosecond, drops.linktype,
                                                           drops.pcapng)
            self.drop_ifs = (drops.scanner.ifs if drops.pcapng and drops.scanner is not None
                             else NULL)
        self.ann = &self.annotated.spec if self.annotated is not None else NULL
        self.rd_recs = self.redirect_writer is not None and self.redirect_format is not None
        if self.rd_recs:
            self.rd_nano, self.rd_lt = self.redirect_format
        self.chunk_clock = self.clock
        # only -o, pcap: the chunk is written whole after its replay (_write_direct);
        # not for perf events kept, which the whole chunk's would hold until its writing
        self.direct = (out is not None and not out.pcapng and drops is None
                       and report is None and self.annotated is None and self.observe is None
                       and self.redirect_writer is None and not self.keep_packets
                       and not self.stop_on_error and not (self.has_perf and self.keep_events))
        self.keep_done = not self.direct or sc.pcapng
        self.batch_steer = self.direct
        self.rss_recs = (sc.hash_rss and not sc.pcapng and sc.linktype == LT_ETHERNET
                         and self.steer == STEER_RSS)
        self.in_place = NULL
        if (self.direct and not sc.pcapng and sc.linktype == LT_ETHERNET
                and out.linktype == LT_ETHERNET and not self.in_place_off):
            r = &sc.recs[sc.nrecs - 1]
            self.in_place_len = r.off + r.caplen - (sc.recs[0].off - PCAP_RECORD)
            self.in_place = out.room(self.in_place_len)
        if self.direct and self.cap_slims < sc.nrecs:
            for c in range(self.cpus):
                slims = <Slim*>realloc(self.lanes[c].slims, sc.nrecs * sizeof(Slim))
                if slims != NULL:
                    self.lanes[c].slims = slims
                lens = <uint32_t*>realloc(self.lanes[c].lens, sc.nrecs * sizeof(uint32_t))
                if lens != NULL:
                    self.lanes[c].lens = lens
                offs = <size_t*>realloc(self.lanes[c].offs, sc.nrecs * sizeof(size_t))
                if offs != NULL:
                    self.lanes[c].offs = offs
                if slims == NULL or lens == NULL or offs == NULL:
                    raise MemoryError()
            self.cap_slims = sc.nrecs
        for c in range(self.cpus):
            self.lanes[c].block, self.lanes[c].used, self.lanes[c].failed = -1, 0, False
            self.lanes[c].nslims, self.lanes[c].uncommon = 0, False
            self.lanes[c].placed = 0
            self.lanes[c].truncated = 0
            memset(&self.lanes[c].sums, 0, sizeof(Tally))
        self.ran = 0
        self.copying = False
        self._start_crew()
        try:
            with nogil:
                replaying = self._cpu_begin(0)
            if self.direct:
                # CPU 0's share of the whole chunk, then the writing once every CPU is
                # done with it
                start = 0
                while replaying and start < sc.nrecs:
                    end = min(start + REPLAY_STRIDE, sc.nrecs)
                    with nogil:
                        replaying = self._cpu_batch(0, start, end)
                    start = end
                    PyErr_CheckSignals()
                with nogil:
                    crew_wait(&self.ran, self.cpus - 1)
                if self.abort:
                    self._thread_failure()
                wait = False    # whether a packet of the chunk needs its Done record
                for c in range(self.cpus):
                    wait = wait or self.lanes[c].uncommon
                if wait:
                    for k in range(sc.nrecs):
                        r, d, index = &sc.recs[k], &self.done[k], first + k
                        self._write_done(k, index, r, base + r.off, d, out, drops, report)
                        d.ready = 0
                else:
                    self._write_direct(sc, out)
                index = first + sc.nrecs
                finished = self.done_clean = True
                self.clock = self.lanes[0].clock
                return sc.nrecs
            k = start = 0   # the next packet to write, CPU 0's next to walk
            while k < sc.nrecs:
                # CPU 0 far enough ahead while many events are held: the writing up to
                # a batch short of it first (_events_wait for the other CPUs)
                stop = sc.nrecs
                if (replaying and start < sc.nrecs and start > k + EVENTS_AHEAD
                        and self.events_held > 2 * self.events_limit):
                    stop, wait = start - WRITE_BATCH, True
                elif replaying and start < sc.nrecs:
                    # this thread is CPU 0: its share of the next packets, then the
                    # writing of those every CPU is done with
                    end = min(start + REPLAY_STRIDE, sc.nrecs)
                    with nogil:
                        replaying = self._cpu_batch(0, start, end)
                    start = end
                    if not replaying and self.abort:
                        self._thread_failure()
                    PyErr_CheckSignals()
                    wait = False
                else:
                    wait = True
                while k < stop:
                    self.write_at = k
                    if not k & 255:
                        PyErr_CheckSignals()
                    r, d, index = &sc.recs[k], &self.done[k], first + k
                    if not published(&d.ready):
                        if not wait:
                            break
                        # blocked until the batch from here is done, then the packets
                        # one by one (their threads are done with them or nearly)
                        end = min(k + WRITE_BATCH, sc.nrecs) - 1
                        while True:
                            with nogil:
                                ready = (wait_published(&self.done[end].ready, &self.abort)
                                         and self._wait_lanes(k, end)
                                         and wait_published(&d.ready, &self.abort))
                            if ready:
                                break
                            if self.abort:
                                self._thread_failure()
                            PyErr_CheckSignals()    # an interrupt still ends the replay
                    if self._write_done(k, index, r, base + r.off, d, out, drops, report):
                        return k + 1
                    if self.events_held:
                        self._written(index)
                    # no thread reads it again this chunk, and it is in this core's
                    # cache now: a reset here costs no miss, one at the next chunk's
                    # start a line a packet
                    d.ready = 0
                    k += 1
            index = first + k
            finished = self.done_clean = True
            self.clock = self.lanes[0].clock
            return sc.nrecs
        except KeyboardInterrupt as exc:
            exc.packet = index
            raise
        finally:
            if not finished:
                self.abort = 1
            with nogil:
                crew_wait(&self.ran, self.cpus - 1)
            self.extras = dict(sorted(self.extras.items()))

    cdef int _start_crew(self) except -1:
        """Wake each CPU's thread but CPU 0's for the job the Loop names (``copying``
        or the chunk's replay), or start one where it is gone."""
        cdef int c
        for c in range(1, self.cpus):
            # the threads stay across chunks (a start takes the GIL and ~100 us)
            if not crew_wake(&self.crew[c]):
                self.crew[c] = CREW_RUN
                try:
                    thread = threading.Thread(target=self._cpu_main, args=(c,), daemon=True)
                    thread.start()
                    self.crew_threads = [t for t in self.crew_threads if t.is_alive()]
                    self.crew_threads.append(thread)
                except BaseException:
                    self.crew[c], self.abort = CREW_GONE, 1
                    with nogil:
                        crew_wait(&self.ran, c - 1)
                    self.ran = self.cpus - 1    # every thread that will finish has
                    raise
        return 0

    cdef int _write_direct(self, Scanner sc, CaptureWriter out) except -1:
        """Write a chunk every CPU replayed (Loop.direct, no packet of it uncommon): as
        it is when each CPU wrote all its -o records in place (Loop.in_place; the
        lanes' sums and truncated counts added), else as _write_gathered does, the
        records written in place moved aside first."""
        cdef size_t placed = 0
        cdef uint8_t* aside = NULL
        cdef int c
        cdef Py_ssize_t j
        cdef Lane* ln
        cdef Slim* sl
        if self.in_place != NULL:
            for c in range(self.cpus):
                placed += self.lanes[c].placed
            if placed == self.in_place_len:
                # the records cover the stretch: each packet was delivered, none of
                # them redirected or refused
                for c in range(self.cpus):
                    _add_tally(&self.sums, &self.lanes[c].sums)
                    self.truncated += self.lanes[c].truncated
                out.commit(placed)
                return 0
            # the room is written again below: the records in it go aside first, and
            # the later chunks are written as this one
            self.in_place_off = True
            aside = <uint8_t*>malloc(self.in_place_len)
            if aside == NULL:
                raise MemoryError()
            memcpy(aside, self.in_place, self.in_place_len)
            for c in range(self.cpus):
                ln = &self.lanes[c]
                for j in range(ln.nslims):
                    sl = &ln.slims[j]
                    if self.in_place <= sl.rec < self.in_place + self.in_place_len:
                        sl.rec = aside + (sl.rec - self.in_place)
        try:
            return self._write_gathered(sc, out)
        finally:
            free(aside)

    cdef int _write_gathered(self, Scanner sc, CaptureWriter out) except -1:
        """_write_direct's chunk from the records its lanes keep (Slim.rec): each -o
        record's offset summed in the capture's order from the lanes' ``lens``, the
        packets that never reached tc or were redirected counted in that order from
        their Done records and the lanes' sums (and truncated counts) of the others
        added; then each CPU's thread copies its records into that stretch of ``out``
        and resets the Done records it kept, and the stretch is committed whole."""
        cdef Py_ssize_t at[MAX_CPUS]
        cdef Py_ssize_t k, j
        cdef size_t total = 0
        cdef uint32_t lane, rec_len
        cdef int c
        cdef Lane* ln
        cdef Rec* r
        cdef Done* d
        cdef Slim* sl
        memset(at, 0, sizeof(at))
        for k in range(sc.nrecs):
            lane = self.steering[k]
            if lane == NO_LANE:
                r = &sc.recs[k]
                if r.caplen < r.wire:
                    self.truncated += 1
                d = &self.done[k]
                self._count(&d.o, r.caplen, r.caplen)
                d.ready = 0
                continue
            ln, j = &self.lanes[lane], at[lane]
            at[lane] += 1
            rec_len = ln.lens[j]
            if rec_len == LEN_REDIRECTED:
                sl = &ln.slims[j]
                self._count(&self.done[k].o, sl.n, sl.m)
                rec_len = 0
            ln.offs[j] = total
            total += rec_len
        for c in range(self.cpus):
            _add_tally(&self.sums, &self.lanes[c].sums)
            self.truncated += self.lanes[c].truncated
        self.copy_base = out.room(total) if total else NULL
        self.copying, self.ran = True, 0
        self._start_crew()
        with nogil:
            self._cpu_copy(0)
            crew_wait(&self.ran, self.cpus - 1)
        self.copying = False
        if total:
            out.commit(total)
        return 0

    cdef void _cpu_copy(self, int cpu) noexcept nogil:
        """A CPU's part of _write_direct: its records into their places in the chunk's
        output, its Done records' ready flags reset where it kept them (the lines are
        in its cache)."""
        cdef Lane* ln = &self.lanes[cpu]
        cdef Slim* sl
        cdef Py_ssize_t j
        for j in range(ln.nslims):
            sl = &ln.slims[j]
            if sl.len:
                memcpy(self.copy_base + ln.offs[j], sl.rec, sl.len)
            if self.keep_done:
                self.done[sl.k].ready = 0

    cdef int _write_done(self, Py_ssize_t k, Py_ssize_t index, Rec* r, const uint8_t* hdr,
                         Done* d, CaptureWriter out, CaptureWriter drops,
                         Writer report) except -1:
        """Write packet ``k`` of the chunk from its Done record (published); 1 when
        the replay stops here (_emit)."""
        cdef const uint8_t* frame = hdr
        cdef uint32_t n = r.caplen
        self.extra_here = d.extra
        if self.steering[k] == NO_LANE:
            return self._emit(index, r, d.lt, hdr, &d.o, False, hdr, r.caplen, hdr, 0, 0,
                              out, drops, report, d)
        if d.lt != LT_ETHERNET:
            frame, n = d.frame, d.n
        return self._emit(index, r, d.lt, hdr, &d.o, True, frame, n, d.outb, d.m,
                          d.pkt_type, out, drops, report, d)

    cdef bint _wait_lanes(self, Py_ssize_t k, Py_ssize_t end) noexcept nogil:
        """Wait for each CPU's last packet from ``k`` to ``end`` (steered, ``end``
        published): a thread publishes its packets in order, so one wake a CPU covers
        the batch, not one a packet.  False on abort or after 20 ms."""
        cdef uint64_t seen = 0
        cdef uint32_t lane
        cdef int lanes = 0
        cdef Py_ssize_t j = end
        while j >= k and lanes < self.cpus:
            lane = self.steering[j]
            if lane < <uint32_t>self.cpus and not seen >> lane & 1:
                seen |= <uint64_t>1 << lane
                lanes += 1
                if not wait_published(&self.done[j].ready, &self.abort):
                    return False
            j -= 1
        return True

    cdef int _thread_failure(self) except -1:
        """Raise what stopped a replay thread."""
        cdef int c
        if self.thread_error is not None:
            raise self.thread_error
        for c in range(self.cpus):
            if self.lanes[c].failed:
                raise MemoryError()
        return 0

    def dismiss_crew(self) -> None:
        """End the replay threads of CPUs 1.. now and wait for them, rather than let
        them idle CREW_LINGER_NS: each holds the Loop, and through it the programs,
        their maps and any timer armed in them, which then go with the last reference
        to the Loop.  A later chunk starts threads again."""
        cdef int c
        for c in range(1, self.cpus):
            crew_dismiss(&self.crew[c])
        for thread in self.crew_threads:
            thread.join()
        self.crew_threads = []

    def _cpu_main(self, int cpu):
        """A CPU's replay thread: its chunks, until it idles CREW_LINGER_NS."""
        with nogil:
            while True:
                if self.copying:
                    self._cpu_copy(cpu)
                else:
                    self._cpu_run(cpu)
                crew_done(&self.crew[cpu], &self.ran, self.cpus - 1)
                if not crew_next(&self.crew[cpu]):
                    break

    cdef bint _steer_window(self, Lane* ln, int cpu, Py_ssize_t start) noexcept nogil:
        """Steer this CPU's share of the WRITE_BATCH packets from ``start``: whether
        each reaches tc, and the CPU that receives it, into its ``steering`` entry
        (published); a packet that never reaches tc is answered for here.  CPU 0,
        whose thread also writes every packet, steers none; the others, for a chunk
        written whole (Loop.batch_steer), each every ``cpus - 1``-th batch whole, else
        every ``cpus - 1``-th packet (CPU 1 + k % (cpus - 1) steers packet k of the
        chunk).  False when memory cannot be had."""
        cdef Py_ssize_t k, stop = min(start + WRITE_BATCH, self.nrecs)
        cdef Py_ssize_t step
        cdef Rec* r
        cdef Done* d
        cdef TcOutcome o
        cdef const uint8_t* frame
        cdef uint32_t n, lt
        cdef uint32_t lane
        cdef int e, pkt_type
        if cpu == 0:
            return True
        step = self.cpus - 1
        if self.batch_steer:
            if 1 + start // WRITE_BATCH % step != cpu:
                return True
            k, step = start, 1
        else:
            k = start + (cpu - 1 - start % step + step) % step
        while k < stop:
            r, d = &self.recs[k], &self.done[k]
            lt = self.ifs[r.iface].linktype if self.ifs != NULL else self.linktype
            if lt == LT_ETHERNET:
                frame, n, e = self.base + r.off, r.caplen, 0
            else:
                e = _to_eth(lt, self.base + r.off, r.caplen, self.tmpl.dev_addr, ln.eth,
                            &pkt_type)
                frame, n = ln.eth, <uint32_t>e
            if not self._admitted(lt, e, frame, n, &o):
                d.lt, d.n, d.extra = lt, n, 1
                d.outb, d.m = self.base + r.off, r.caplen
                d.line, d.rec, d.ann, d.clones = NULL, NULL, NULL, NULL
                with gil:
                    try:
                        self._refused(self.first + k, r, lt, e, n, &o)
                        self._write_extras(ln, self.first + k, d, r, &o, d.outb, d.m,
                                           d.outb, lt, False)
                    except BaseException as exc:
                        self.thread_error, self.abort = exc, 1
                        return False
                memcpy(&d.o, &o, sizeof(TcOutcome))
                lane = NO_LANE
            elif self.rss_recs:
                lane = rss_queue(r.rss, self.cpus)
            else:
                lane = self._steer_to(ln, frame, n)
                if lane == NO_LANE:
                    return False
            if k + step < stop:
                steer_quiet(&self.steering[k], lane)
            else:
                steer(&self.steering[k], lane)
            if lane == NO_LANE:
                publish(&d.ready)
            k += step
        return True

    cdef bint _write_rec(self, Lane* ln, Done* d, Rec* r, TcOutcome* o, const uint8_t* hdr,
                         uint32_t lt) noexcept nogil:
        """The pcap record or pcapng block of a delivered, dropped or redirected
        packet (its bytes afterwards, at ``d.outb``) for the capture it goes to, into
        the lane's blocks (``d.rec``; left NULL for a time pcap cannot hold: the writing
        says so); False when memory cannot be had.  As CaptureWriter.record writes it
        (the writing writes the interface blocks it needs first)."""
        cdef bint png, nano
        cdef uint32_t out_lt
        cdef const Iface* ifs
        cdef uint8_t* w
        cdef uint32_t need
        if o.action == HOOK_DELIVERED:
            png, nano, out_lt, ifs = self.out_png, self.out_nano, self.out_lt, self.out_ifs
        elif o.action == HOOK_DROPPED:
            png, nano, out_lt, ifs = self.drop_png, self.drop_nano, self.drop_lt, self.drop_ifs
        else:
            png, nano, out_lt, ifs = False, self.rd_nano, self.rd_lt, NULL
        if png:
            if ifs != NULL:
                out_lt = ifs[r.iface].linktype
            need = PCAPNG_EPB + d.m + LINK_MAX + 3 + r.opt_len
            w = _lane_room(ln, need)
            if w == NULL:
                return False
            d.rec_len = _pcapng_record(w, r.ts, d.outb, d.m, <int64_t>r.wire - r.caplen,
                                       out_lt, hdr if out_lt == lt else NULL, d.pkt_type,
                                       r.iface if ifs != NULL else 0,
                                       hdr - r.off + r.opt_off, r.opt_len)
            d.rec = w
            ln.used -= need - d.rec_len     # the room it did not take
            return True
        if r.ts // 1000000000 > <uint64_t>0xffffffffu:
            return True
        w = _lane_room(ln, PCAP_RECORD + d.m + LINK_MAX)
        if w == NULL:
            return False
        d.rec_len = _pcap_record(w, r.ts, d.outb, d.m, <int64_t>r.wire - r.caplen, out_lt,
                                 hdr if out_lt == lt else NULL, d.pkt_type, nano)
        d.rec = w
        ln.used -= PCAP_RECORD + d.m + LINK_MAX - d.rec_len     # the room it did not take
        return True

    cdef bint _write_ann(self, Lane* ln, Done* d, Rec* r, const TcOutcome* o,
                         const uint8_t* frame, uint32_t n, const char* note,
                         size_t note_len) noexcept nogil:
        """The two --annotated blocks of a packet (``frame``/``n`` as tc saw it, its
        bytes afterwards at ``d.outb``; ``note``: its extras worded), into the lane's
        blocks (``d.ann``), as Annotator.packet writes them; False when memory cannot
        be had."""
        cdef Buf b
        if not _ann_comment(&ln.ann, self.ann, o, frame, n, d.outb, d.m):
            return False
        if note_len and not _put(&ln.ann, note, note_len):
            return False
        b.cap = _ann_len(&ln.ann, n, d.m)
        b.p = <char*>_lane_room(ln, b.cap)
        b.len = 0
        # the room is the blocks' length: _ann_blocks never grows it
        if b.p == NULL or not _ann_blocks(&b, &ln.ann, r.ts, frame, n, d.outb, d.m,
                                          <int64_t>r.wire - r.caplen):
            return False
        d.ann, d.ann_len = <const uint8_t*>b.p, <uint32_t>b.len
        return True

    cdef bint _write_raw(self, Lane* ln, Done* d, Rec* r, const uint8_t* hdr,
                         uint32_t lt) noexcept nogil:
        """The --drops record of a packet as it was captured (a fault, or one that
        never reaches tc), as
        CaptureWriter._raw writes it, into the lane's blocks (``d.rec``); left NULL when
        the drops' linktype is not the capture's or pcap cannot hold its time (the
        writing does those); False when memory cannot be had."""
        cdef uint32_t out_lt = self.drop_lt
        cdef uint8_t* w
        if self.drop_png and self.drop_ifs != NULL:
            out_lt = self.drop_ifs[r.iface].linktype
        if out_lt != lt or (not self.drop_png and r.ts // 1000000000 > <uint64_t>0xffffffffu):
            return True
        w = _lane_room(ln, _raw_len(r.caplen, self.drop_png))
        if w == NULL:
            return False
        d.rec_len = _raw_record(w, r.ts, hdr, r.caplen, r.wire, r.iface, self.drop_png,
                                self.drop_nano)
        d.rec = w
        return True

    cdef bint _write_clones(self, Lane* ln, Done* d, Rec* r, const uint8_t* hdr,
                            uint32_t lt) noexcept nogil:
        """The records of the packet's clones for the redirect captures (in
        ``redirect_format``), each after its Cloned head, into the lane's blocks
        (``d.clones``), as CaptureWriter.record writes them; left NULL when they do not
        fit a block or pcap cannot hold their time; False when memory cannot be had."""
        cdef Skb* skb = &ln.skb
        cdef size_t need = 0, at = 0
        cdef size_t c
        cdef Cloned head
        cdef uint8_t* w
        if r.ts // 1000000000 > <uint64_t>0xffffffffu:
            return True
        for c in range(skb.nclones):
            need += sizeof(Cloned) + PCAP_RECORD + skb.clones[c].length + LINK_MAX
        if need > ARENA_BLOCK:
            return True
        w = _lane_room(ln, need)
        if w == NULL:
            return False
        for c in range(skb.nclones):
            head.ifindex = skb.clones[c].ifindex
            head.ingress = (skb.clones[c].flags & BPF_F_INGRESS) != 0
            head.rec_len = _pcap_record(w + at + sizeof(Cloned), r.ts,
                                        skb.clone_buf + skb.clones[c].offset,
                                        skb.clones[c].length, <int64_t>r.wire - r.caplen,
                                        self.rd_lt, hdr if self.rd_lt == lt else NULL,
                                        d.pkt_type, self.rd_nano)
            memcpy(w + at, &head, sizeof(Cloned))
            at += sizeof(Cloned) + head.rec_len
        d.clones, d.clones_len = w, <uint32_t>at
        ln.used -= need - at    # the room it did not take
        return True

    cdef int _write_extras(self, Lane* ln, Py_ssize_t index, Done* d, Rec* r,
                           const TcOutcome* o, const uint8_t* frame, uint32_t n,
                           const uint8_t* hdr, uint32_t lt, bint reached) except -1:
        """What a packet's extras add to the outputs, into the lane's blocks (the GIL
        held): its clones' redirect records, or (one that never ``reached`` tc) its
        --drops record, its --annotated blocks with their notes (before the report
        line words its fault), its report line (report_slow)."""
        cdef bytes text
        cdef uint8_t* w
        extra = self.extras[index]
        if reached:
            if self.rd_recs and "clones" in extra and not self._write_clones(ln, d, r, hdr,
                                                                             lt):
                raise MemoryError()
        elif self.drop_recs and not self._write_raw(ln, d, r, hdr, lt):
            raise MemoryError()
        if self.ann != NULL:
            text = self.annotated.notes(extra)
            if not self._write_ann(ln, d, r, o, frame, n, PyBytes_AS_STRING(text),
                                   PyBytes_GET_SIZE(text)):
                raise MemoryError()
        if self.lines:
            text = self._slow_line(index, r, o, d.m if reached else 0, lt, extra)
            if PyBytes_GET_SIZE(text) <= ARENA_BLOCK:
                w = _lane_room(ln, PyBytes_GET_SIZE(text))
                if w == NULL:
                    raise MemoryError()
                memcpy(w, PyBytes_AS_STRING(text), PyBytes_GET_SIZE(text))
                d.line, d.line_len = <const char*>w, <uint32_t>PyBytes_GET_SIZE(text)
        return 0

    cdef bint _cpu_begin(self, int cpu) noexcept nogil:
        """A CPU's start of a chunk: its capture clock as it was before the chunk, its
        share of the first STEER_AHEAD batches steered.  False when it failed (abort set)."""
        cdef Lane* ln = &self.lanes[cpu]
        cdef Py_ssize_t batch
        ln.clock = self.chunk_clock
        for batch in range(STEER_AHEAD):
            if not self._steer_window(ln, cpu, batch * WRITE_BATCH):
                ln.failed, self.abort = True, 1
                return False
        return True

    cdef void _cpu_run(self, int cpu) noexcept nogil:
        """A replay thread's chunk: what _run_threads does as CPU 0, but the writing."""
        if self._cpu_begin(cpu):
            self._cpu_batch(cpu, 0, self.nrecs)

    cdef bint _cpu_batch(self, int cpu, Py_ssize_t start, Py_ssize_t stop) noexcept nogil:
        """CPU ``cpu``'s walk over the chunk's packets ``start`` to ``stop`` (after
        _cpu_begin, in order).  The chunk's packets are steered STEER_AHEAD batches
        ahead, each steering CPU its share of a batch (_steer_window); each CPU
        walks every batch (the capture clock), waiting for the other CPUs' steering of
        it, and replays the packets steered to it, keeping each one's frame (when
        built), output, records and report line in its blocks for the writing, its
        Done record published (where kept: Loop.keep_done).  (A batch's steering waits
        for no CPU's replay of a later one, so the CPUs cannot wait on each other in a
        circle.)  False when the replay stops (abort set)."""
        cdef Lane* ln = &self.lanes[cpu]
        cdef Clock clock = ln.clock
        cdef Py_ssize_t k, last
        cdef Rec* r
        cdef Done* d
        cdef Done scratch       # the Done record of a packet whose record is not kept
        cdef TcOutcome o
        cdef const uint8_t* frame
        cdef const uint8_t* hdr
        cdef uint32_t n, m, lt
        cdef uint64_t ktime
        cdef int e, pkt_type
        cdef uint8_t* room
        cdef const uint8_t* outb
        cdef char* line
        cdef char* end
        cdef uint32_t lane
        cdef Slim* sl
        for k in range(start, stop):
            if self.abort:
                return False
            if k % WRITE_BATCH == 0:
                if not self._steer_window(ln, cpu, k + STEER_AHEAD * WRITE_BATCH):
                    ln.failed, self.abort = True, 1
                    return False
            r = &self.recs[k]
            lane = steered(&self.steering[k])
            if lane == UNSTEERED:
                # the CPU that steers k steers its share of k's batch in order (the
                # whole batch, or every cpus - 1-th packet): waiting for the last of
                # it, not for k, is one wake a batch, not one a packet
                last = min(k - k % WRITE_BATCH + WRITE_BATCH, self.nrecs) - 1
                if not self.batch_steer:
                    last -= (last - k) % (self.cpus - 1)
                while steered(&self.steering[last]) == UNSTEERED:
                    if self.abort:
                        return False
                    wait_steered(&self.steering[last], &self.abort)
                lane = steered(&self.steering[k])
            if lane == NO_LANE:
                continue
            ktime = _clock_step(&clock, self.ktime_start, r.ts) if self.use_ts else 0
            if lane != <uint32_t>cpu:
                continue
            if (cpu and self.events_held > 2 * self.events_limit
                    and k > self.write_at + EVENTS_AHEAD and not self._events_wait(k)):
                return False
            d = &self.done[k] if self.keep_done else &scratch
            lt = self.ifs[r.iface].linktype if self.ifs != NULL else self.linktype
            hdr = self.base + r.off
            if lt == LT_ETHERNET:
                frame, n, e, pkt_type = hdr, r.caplen, 0, -1
            else:
                e = _to_eth(lt, hdr, r.caplen, self.tmpl.dev_addr, ln.eth, &pkt_type)
                frame, n = ln.eth, <uint32_t>e
            self._admitted(lt, e, frame, n, &o)     # o as the steering found it
            if self._timers_due(self._time(ktime)):
                # a due timer fires on the CPU of the first packet at or after its expiry
                with gil:
                    try:
                        self._fire(self._time(ktime))
                    except BaseException as exc:
                        self.thread_error, self.abort = exc, 1
                        return False
            if self._packet(ln, cpu, frame, n, ktime, pkt_type, &o) < 0:
                ln.failed, self.abort = True, 1
                return False
            outb = self._output(ln, &o, frame, n, &m)
            d.outb, d.m, d.pkt_type = outb, m, ln.skb.pkt_type
            d.line, d.rec, d.ann, d.clones = NULL, NULL, NULL, NULL
            if self.direct:
                # _write_direct reads none of the packet's bytes but its -o record: they
                # are kept only for one the writing writes from its Done record
                d.frame = NULL
                if o.action == HOOK_DELIVERED and self.in_place != NULL and m == r.caplen:
                    # as long as the capture's record: where that one is (Loop.in_place)
                    room = self.in_place + (r.off - self.recs[0].off)
                    d.rec_len = _pcap_record(room, r.ts, outb, m, <int64_t>r.wire - r.caplen,
                                             LT_ETHERNET, hdr, d.pkt_type, self.out_nano)
                    d.rec = room
                    ln.placed += d.rec_len
                elif o.action == HOOK_DELIVERED and not self._write_rec(ln, d, r, &o, hdr, lt):
                    ln.failed, self.abort = True, 1
                    return False
                if o.action == HOOK_DELIVERED and d.rec == NULL:
                    if not _keep_bytes(ln, d, frame, n, lt):
                        ln.failed, self.abort = True, 1
                        return False
                else:
                    d.outb = NULL       # the lane's until its next packet; nothing reads it
            else:
                if not _keep_bytes(ln, d, frame, n, lt):
                    ln.failed, self.abort = True, 1
                    return False
                if (o.action == HOOK_DELIVERED and self.out_recs) or (
                        o.action == HOOK_DROPPED and self.drop_recs) or (
                        o.action == HOOK_REDIRECTED and self.rd_recs):
                    if not self._write_rec(ln, d, r, &o, hdr, lt):
                        ln.failed, self.abort = True, 1
                        return False
                elif o.action == HOOK_FAULT and self.drop_recs:
                    if not self._write_raw(ln, d, r, hdr, lt):
                        ln.failed, self.abort = True, 1
                        return False
            d.extra = 0
            if self._has_extras(ln, &o):
                # extras are worded in Python: here, not on the writing
                with gil:
                    try:
                        d.extra = self._extras(ln, self.first + k, &o)
                        if d.extra:
                            self._write_extras(ln, self.first + k, d, r, &o, frame, n, hdr,
                                               lt, True)
                    except BaseException as exc:
                        self.thread_error, self.abort = exc, 1
                        return False
            if self.ann != NULL and not d.extra:
                if not self._write_ann(ln, d, r, &o, frame, n, NULL, 0):
                    ln.failed, self.abort = True, 1
                    return False
            if self.lines and not d.extra:
                line = <char*>_lane_room(ln, REPORT_LINE_MAX)
                if line == NULL:
                    ln.failed, self.abort = True, 1
                    return False
                end = _report_line(line, self.first + k, r, &o, m, lt, self.mode,
                                   self.report_full, &ln.tail)
                if end != NULL:
                    d.line, d.line_len = line, <uint32_t>(end - line)
                    ln.used -= REPORT_LINE_MAX - d.line_len     # the room it did not take
            if self.direct:
                sl = &ln.slims[ln.nslims]
                sl.k, sl.n, sl.m, sl.rec, sl.len = k, n, m, NULL, 0
                if o.action == HOOK_DELIVERED:
                    if d.rec == NULL:
                        ln.uncommon = True      # a time pcap cannot hold: _emit says so
                    else:
                        sl.rec, sl.len = d.rec, d.rec_len
                if o.action == HOOK_REDIRECTED:
                    ln.lens[ln.nslims] = LEN_REDIRECTED
                    if not self.keep_done:
                        memcpy(&self.done[k].o, &o, sizeof(TcOutcome))
                else:
                    ln.lens[ln.nslims] = sl.len
                    _add_counts(&ln.sums, o.action, o.verdict, n, m)
                if r.caplen < r.wire:
                    ln.truncated += 1
                ln.nslims += 1
                if not self.keep_done:
                    continue
            memcpy(&d.o, &o, sizeof(TcOutcome))
            d.lt, d.n = lt, n
            publish(&d.ready)
        ln.clock = clock
        return True

    cdef bytes _slow_line(self, Py_ssize_t index, const Rec* r, const TcOutcome* o,
                          uint32_t m, uint32_t lt, dict extra):
        """The packet's report line through ``report_slow``."""
        cdef uint32_t size = m
        if o.action < HOOK_FAULT and lt != LT_ETHERNET:
            size = m - ETH_HLEN + _link_hlen(lt) if m >= ETH_HLEN else 0
        return self.report_slow(index, (
            r.ts, r.wire, r.caplen, <int64_t>size + r.wire - r.caplen,
            o.verdict, o.retval, o.classid, o.mark, o.priority, o.redirect_ifindex,
            o.tc_index, o.runs, o.insns, o.action, o.has_classid, o.redirect_ingress,
            o.fault_prog), extra)


# what tcsim diff compares, bits of kept_differences' masks (diff.KINDS' order)
DIFF_VERDICT, DIFF_BYTES, DIFF_REDIRECT, DIFF_MARK, DIFF_PRIORITY, DIFF_CLASSID = (
    1, 2, 4, 8, 16, 32)


def kept_differences(Loop old, Loop new):
    """[(k, mask)] of the packets the two loops (``keep_packets`` on, the same chunk replayed)
    treated differently: the DIFF_* bits of what differs (the verdict or action, the
    bytes afterwards, the redirect target, mark, priority, classid)."""
    cdef Py_ssize_t k, n = min(old.nkept, new.nkept)
    cdef Kept* a
    cdef Kept* b
    cdef bint ran_a, ran_b, classid_a, classid_b
    cdef int mask
    out = []
    for k in range(n):
        a, b = &old.kept[k], &new.kept[k]
        ran_a, ran_b = a.o.action < HOOK_FAULT, b.o.action < HOOK_FAULT
        mask = 0
        if a.o.action != b.o.action or (ran_a and a.o.verdict != b.o.verdict):
            mask |= DIFF_VERDICT
        if a.len != b.len or memcmp(old.kept_buf + a.off, new.kept_buf + b.off, a.len) != 0:
            mask |= DIFF_BYTES
        if (a.o.action == HOOK_REDIRECTED) != (b.o.action == HOOK_REDIRECTED) or (
                a.o.action == HOOK_REDIRECTED and (
                    a.o.redirect_ifindex != b.o.redirect_ifindex
                    or a.o.redirect_ingress != b.o.redirect_ingress)):
            mask |= DIFF_REDIRECT
        if a.o.mark != b.o.mark:
            mask |= DIFF_MARK
        if a.o.priority != b.o.priority:
            mask |= DIFF_PRIORITY
        classid_a, classid_b = a.o.has_classid != 0 and ran_a, b.o.has_classid != 0 and ran_b
        if classid_a != classid_b or (classid_a and a.o.classid != b.o.classid):
            mask |= DIFF_CLASSID
        if mask:
            out.append((k, mask))
    return out


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
    path freed it) where a packet has any.  The bpf_timer callbacks due run between
    the packets and, at the end, those due by the last packet's time.  With
    ``stop_on_error`` the replay ends
    after the first fault.  A KeyboardInterrupt (SIGINT, or whatever the caller's signal
    handler raises as one) stops it between packets; its ``packet`` attribute is the
    index of the first packet not replayed.
    """
    loop = Loop(programs, mode=mode, ingress=ingress, classid=classid,
                act_default=act_default, fields=fields, stop_on_error=stop_on_error,
                capture_clock=bool(ts))
    result = loop.replay(frames, ts)
    if not loop.stopped:
        loop.finish_timers()
    return result
