# cython: language_level=3
"""The interpreter: decoded programs, the C execution loop, memory regions, helpers.

A :class:`Program` decodes its instructions once into a C array of fixed-width
``Insn`` structs (internal op ids from ``isa``, jump targets made absolute, lddw folded
into one 64-bit immediate).  ``run`` executes them in a ``nogil`` loop with one switch;
every load and store is checked against the run's regions; a fault stops the run and
raises a :mod:`pyebpf.errors` exception naming the pc, the instruction, the address
and the region.
"""
cimport cython
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING
from libc.string cimport memcmp
from libc.stdint cimport (int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t,
                          uint32_t, uint64_t, uintptr_t)
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memcpy, memmove, memset

from . import isa as _isa
from .host import possible_cpus
from . import verifier as _verifier
from .errors import (BudgetExceeded, CallDepthExceeded, ExecutionError, HelperAccessError,
                     PacketError,
                     LoadError, MapError, MemoryFault, PinError, UnknownHelper)

DEFAULT_BUDGET = 1_000_000

cdef bint _grow(void** buf, size_t* cap, size_t n, size_t item) noexcept nogil:
    cdef size_t new_cap
    cdef void* p
    if n < cap[0]:
        return True
    new_cap = cap[0] * 2 if cap[0] else 256
    p = realloc(buf[0], new_cap * item)
    if p == NULL:
        return False
    buf[0] = p
    cap[0] = new_cap
    return True


include "skbuff.pxi"

# --- memory ------------------------------------------------------------------------

cdef uint8_t* _fault_mem(Vm* vm, uint64_t addr, uint32_t size, bint write) noexcept nogil:
    vm.status = STATUS_MEM_FAULT
    vm.fault_addr = addr
    vm.fault_size = size
    vm.fault_write = write
    return NULL


@cython.cdivision(True)
cdef inline uint8_t* _mem(Vm* vm, uint64_t addr, uint32_t size, bint write) noexcept nogil:
    """The host pointer for [addr, addr+size) if one region holds all of it, else NULL."""
    cdef int k
    cdef Region* g
    for k in range(vm.nregions):
        g = &vm.regions[k]
        # overflow-safe: addr >= start and size <= end - addr
        if addr >= g.start and addr <= g.end and g.end - addr >= size:
            if write and not g.writable:
                break
            return <uint8_t*><uintptr_t>addr
    return _fault_mem(vm, addr, size, write)


cdef inline uint64_t _load(const uint8_t* p, int size) noexcept nogil:
    cdef uint8_t b
    cdef uint16_t h
    cdef uint32_t w
    cdef uint64_t d
    if size == 1:
        return p[0]
    elif size == 2:
        memcpy(&h, p, 2)
        return h
    elif size == 4:
        memcpy(&w, p, 4)
        return w
    memcpy(&d, p, 8)
    return d


cdef inline void _store(uint8_t* p, int size, uint64_t v) noexcept nogil:
    cdef uint16_t h
    cdef uint32_t w
    if size == 1:
        p[0] = <uint8_t>v
    elif size == 2:
        h = <uint16_t>v
        memcpy(p, &h, 2)
    elif size == 4:
        w = <uint32_t>v
        memcpy(p, &w, 4)
    else:
        memcpy(p, &v, 8)


cdef inline uint64_t _sext(uint64_t v, int size) noexcept nogil:
    if size == 1:
        return <uint64_t><int64_t><int8_t>v
    elif size == 2:
        return <uint64_t><int64_t><int16_t>v
    elif size == 4:
        return <uint64_t><int64_t><int32_t>v
    return v


cdef bint _ld_packet(Vm* vm, int64_t offset, int size, uint64_t* out) noexcept nogil:
    """LD_ABS/LD_IND: read ``size`` big-endian bytes at ``offset`` of the packet."""
    if offset < 0 or offset > vm.pkt_len or vm.pkt_len - offset < size:
        return False
    cdef const uint8_t* p = vm.pkt + offset
    if size == 1:
        out[0] = p[0]
    elif size == 2:
        out[0] = (<uint64_t>p[0] << 8) | p[1]
    else:
        out[0] = (<uint64_t>p[0] << 24) | (<uint64_t>p[1] << 16) | (<uint64_t>p[2] << 8) | p[3]
    return True


include "context.pxi"


# --- tracing ---------------------------------------------------------------------

cdef struct _NoTrace:
    char unused
cdef struct _Trace:
    char unused
cdef struct _Cov:
    char unused
ctypedef fused TraceMode:
    _NoTrace
    _Trace
    _Cov


# Coverage (pyebpf.coverage): while a sink is installed, every Program made gets
# counters from it, and runs take the _Cov loop, which counts instructions executed and
# jumps taken per pc in C.  Off, runs never look at the counters.
cdef bint _cov_on = False
_cov_sink = None


def _set_coverage_sink(sink):
    """Install ``sink(program) -> writable buffer of 2 * len(program) u64, or None``
    (None: coverage off)."""
    global _cov_on, _cov_sink
    _cov_sink, _cov_on = sink, sink is not None


cdef void _trace_access(Vm* vm, uint32_t pc, uint64_t addr, int size, bint write) noexcept nogil:
    if not _grow(<void**>&vm.accesses, &vm.cap_accesses, vm.naccesses, sizeof(TraceAccess)):
        return
    cdef TraceAccess* a = &vm.accesses[vm.naccesses]
    a.step, a.pc, a.addr, a.size, a.write = <uint32_t>vm.nsteps, pc, addr, <uint8_t>size, write
    vm.naccesses += 1


cdef void _trace_step(Vm* vm, uint32_t pc, const uint64_t* r) noexcept nogil:
    if not _grow(<void**>&vm.steps, &vm.cap_steps, vm.nsteps, sizeof(TraceStep)):
        return
    cdef TraceStep* s = &vm.steps[vm.nsteps]
    s.pc = pc
    memcpy(s.regs, r, sizeof(s.regs))
    vm.nsteps += 1


# Access kind of each op for the tracer: 0 none, 1 load, 2 store, 3 read-modify-write.
cdef uint8_t _ACCESS_KIND[OP_COUNT]
cdef uint8_t _ACCESS_BASE_IS_SRC[OP_COUNT]


cdef void _trace_before(Vm* vm, const Insn* i, uint32_t pc, const uint64_t* r) noexcept nogil:
    cdef uint8_t kind = _ACCESS_KIND[i.op]
    cdef uint64_t base
    if kind == 0:
        return
    base = r[i.src] if _ACCESS_BASE_IS_SRC[i.op] else r[i.dst]
    if kind & 1:
        _trace_access(vm, pc, base + <uint64_t><int64_t>i.off, i.size, False)
    if kind & 2:
        _trace_access(vm, pc, base + <uint64_t><int64_t>i.off, i.size, True)


# --- the loop ----------------------------------------------------------------------

@cython.cdivision(True)
@cython.boundscheck(False)
@cython.wraparound(False)
cdef void _interp(Vm* vm, TraceMode* mode) noexcept nogil:
    cdef uint64_t r[11]
    cdef const Insn* insns = vm.insns
    cdef uint32_t pc = vm.pc
    cdef const Insn* i = &insns[pc]
    cdef int64_t left = vm.budget_left
    cdef uint8_t op, d, s
    cdef uint64_t imm, a, b, old
    cdef uint32_t w, v
    cdef uint8_t* p
    cdef helper_fn fn
    cdef Frame* f
    cdef uint64_t* cov = NULL
    cdef uint32_t n_insns = 0
    if TraceMode is _Cov or TraceMode is _Trace:
        cov = vm.prog.cov
        n_insns = vm.prog.n
    memcpy(r, vm.reg, sizeof(r))

    while True:
        left -= 1
        if unlikely(left < 0):
            vm.status = STATUS_BUDGET
            break
        i = &insns[pc]
        if TraceMode is _Trace:
            _trace_before(vm, i, pc, r)
        if TraceMode is _Cov or TraceMode is _Trace:
            if cov != NULL:
                cov[pc] += 1
        pc += 1
        op = i.op
        d = i.dst
        s = i.src
        imm = i.imm

        # the decoder put lddw's 64-bit value in its first slot; the second is skipped
        if op == OP_LDDW:
            r[d] = imm
            pc += 1
        # --- generated by pyebpf.isa.interp_cases(): a build rewrites it ---
        elif op == OP_ADD64_K:
            r[d] += imm
        elif op == OP_ADD64_X:
            r[d] += r[s]
        elif op == OP_SUB64_K:
            r[d] -= imm
        elif op == OP_SUB64_X:
            r[d] -= r[s]
        elif op == OP_MUL64_K:
            r[d] *= imm
        elif op == OP_MUL64_X:
            r[d] *= r[s]
        elif op == OP_DIV64_K:
            if imm:
                r[d] = r[d] / imm
            elif vm.div0_abort:
                r[0] = 0
                vm.status = STATUS_EXIT
                break
            else:
                r[d] = 0
        elif op == OP_DIV64_X:
            if r[s]:
                r[d] = r[d] / r[s]
            elif vm.div0_abort:
                r[0] = 0
                vm.status = STATUS_EXIT
                break
            else:
                r[d] = 0
        elif op == OP_OR64_K:
            r[d] |= imm
        elif op == OP_OR64_X:
            r[d] |= r[s]
        elif op == OP_AND64_K:
            r[d] &= imm
        elif op == OP_AND64_X:
            r[d] &= r[s]
        elif op == OP_LSH64_K:
            r[d] = r[d] << (imm & 63)
        elif op == OP_LSH64_X:
            r[d] = r[d] << (r[s] & 63)
        elif op == OP_RSH64_K:
            r[d] = r[d] >> (imm & 63)
        elif op == OP_RSH64_X:
            r[d] = r[d] >> (r[s] & 63)
        elif op == OP_MOD64_K:
            if imm:
                r[d] = r[d] % imm
            elif vm.div0_abort:
                r[0] = 0
                vm.status = STATUS_EXIT
                break
        elif op == OP_MOD64_X:
            if r[s]:
                r[d] = r[d] % r[s]
            elif vm.div0_abort:
                r[0] = 0
                vm.status = STATUS_EXIT
                break
        elif op == OP_XOR64_K:
            r[d] ^= imm
        elif op == OP_XOR64_X:
            r[d] ^= r[s]
        elif op == OP_MOV64_K:
            r[d] = imm
        elif op == OP_MOV64_X:
            r[d] = r[s]
        elif op == OP_ARSH64_K:
            r[d] = <uint64_t>(<int64_t>r[d] >> (imm & 63))
        elif op == OP_ARSH64_X:
            r[d] = <uint64_t>(<int64_t>r[d] >> (r[s] & 63))
        elif op == OP_SDIV64_K:
            if imm == 0:
                r[d] = 0
            elif imm == <uint64_t>-1:
                r[d] = 0 - r[d]
            else:
                r[d] = <uint64_t>(<int64_t>r[d] / <int64_t>imm)
        elif op == OP_SDIV64_X:
            if r[s] == 0:
                r[d] = 0
            elif r[s] == <uint64_t>-1:
                r[d] = 0 - r[d]
            else:
                r[d] = <uint64_t>(<int64_t>r[d] / <int64_t>r[s])
        elif op == OP_SMOD64_K:
            if imm == <uint64_t>-1:
                r[d] = 0
            elif imm:
                r[d] = <uint64_t>(<int64_t>r[d] % <int64_t>imm)
        elif op == OP_SMOD64_X:
            if r[s] == <uint64_t>-1:
                r[d] = 0
            elif r[s]:
                r[d] = <uint64_t>(<int64_t>r[d] % <int64_t>r[s])
        elif op == OP_NEG64:
            r[d] = 0 - r[d]
        elif op == OP_ADD32_K:
            r[d] = <uint32_t>(<uint32_t>r[d] + <uint32_t>imm)
        elif op == OP_ADD32_X:
            r[d] = <uint32_t>(<uint32_t>r[d] + <uint32_t>r[s])
        elif op == OP_SUB32_K:
            r[d] = <uint32_t>(<uint32_t>r[d] - <uint32_t>imm)
        elif op == OP_SUB32_X:
            r[d] = <uint32_t>(<uint32_t>r[d] - <uint32_t>r[s])
        elif op == OP_MUL32_K:
            r[d] = <uint32_t>(<uint32_t>r[d] * <uint32_t>imm)
        elif op == OP_MUL32_X:
            r[d] = <uint32_t>(<uint32_t>r[d] * <uint32_t>r[s])
        elif op == OP_DIV32_K:
            if <uint32_t>imm:
                r[d] = <uint32_t>r[d] / <uint32_t>imm
            elif vm.div0_abort:
                r[0] = 0
                vm.status = STATUS_EXIT
                break
            else:
                r[d] = 0
        elif op == OP_DIV32_X:
            if <uint32_t>r[s]:
                r[d] = <uint32_t>r[d] / <uint32_t>r[s]
            elif vm.div0_abort:
                r[0] = 0
                vm.status = STATUS_EXIT
                break
            else:
                r[d] = 0
        elif op == OP_OR32_K:
            r[d] = <uint32_t>(<uint32_t>r[d] | <uint32_t>imm)
        elif op == OP_OR32_X:
            r[d] = <uint32_t>(<uint32_t>r[d] | <uint32_t>r[s])
        elif op == OP_AND32_K:
            r[d] = <uint32_t>(<uint32_t>r[d] & <uint32_t>imm)
        elif op == OP_AND32_X:
            r[d] = <uint32_t>(<uint32_t>r[d] & <uint32_t>r[s])
        elif op == OP_LSH32_K:
            r[d] = <uint32_t>(<uint32_t>r[d] << (imm & 31))
        elif op == OP_LSH32_X:
            r[d] = <uint32_t>(<uint32_t>r[d] << (r[s] & 31))
        elif op == OP_RSH32_K:
            r[d] = <uint32_t>r[d] >> (imm & 31)
        elif op == OP_RSH32_X:
            r[d] = <uint32_t>r[d] >> (r[s] & 31)
        elif op == OP_MOD32_K:
            if <uint32_t>imm:
                r[d] = <uint32_t>r[d] % <uint32_t>imm
            elif vm.div0_abort:
                r[0] = 0
                vm.status = STATUS_EXIT
                break
            else:
                r[d] = <uint32_t>r[d]
        elif op == OP_MOD32_X:
            if <uint32_t>r[s]:
                r[d] = <uint32_t>r[d] % <uint32_t>r[s]
            elif vm.div0_abort:
                r[0] = 0
                vm.status = STATUS_EXIT
                break
            else:
                r[d] = <uint32_t>r[d]
        elif op == OP_XOR32_K:
            r[d] = <uint32_t>(<uint32_t>r[d] ^ <uint32_t>imm)
        elif op == OP_XOR32_X:
            r[d] = <uint32_t>(<uint32_t>r[d] ^ <uint32_t>r[s])
        elif op == OP_MOV32_K:
            r[d] = <uint32_t>imm
        elif op == OP_MOV32_X:
            r[d] = <uint32_t>r[s]
        elif op == OP_ARSH32_K:
            r[d] = <uint32_t>(<int32_t>r[d] >> (imm & 31))
        elif op == OP_ARSH32_X:
            r[d] = <uint32_t>(<int32_t>r[d] >> (r[s] & 31))
        elif op == OP_SDIV32_K:
            if <uint32_t>imm == 0:
                r[d] = 0
            elif <uint32_t>imm == <uint32_t>-1:
                r[d] = <uint32_t>(0 - <uint32_t>r[d])
            else:
                r[d] = <uint32_t>(<int32_t>r[d] / <int32_t>imm)
        elif op == OP_SDIV32_X:
            if <uint32_t>r[s] == 0:
                r[d] = 0
            elif <uint32_t>r[s] == <uint32_t>-1:
                r[d] = <uint32_t>(0 - <uint32_t>r[d])
            else:
                r[d] = <uint32_t>(<int32_t>r[d] / <int32_t>r[s])
        elif op == OP_SMOD32_K:
            if <uint32_t>imm == <uint32_t>-1:
                r[d] = 0
            elif <uint32_t>imm:
                r[d] = <uint32_t>(<int32_t>r[d] % <int32_t>imm)
            else:
                r[d] = <uint32_t>r[d]
        elif op == OP_SMOD32_X:
            if <uint32_t>r[s] == <uint32_t>-1:
                r[d] = 0
            elif <uint32_t>r[s]:
                r[d] = <uint32_t>(<int32_t>r[d] % <int32_t>r[s])
            else:
                r[d] = <uint32_t>r[d]
        elif op == OP_NEG32:
            r[d] = <uint32_t>(0 - <uint32_t>r[d])
        elif op == OP_MOVSX8_64:
            r[d] = <uint64_t><int64_t><int8_t>r[s]
        elif op == OP_MOVSX16_64:
            r[d] = <uint64_t><int64_t><int16_t>r[s]
        elif op == OP_MOVSX32_64:
            r[d] = <uint64_t><int64_t><int32_t>r[s]
        elif op == OP_MOVSX8_32:
            r[d] = <uint32_t><int32_t><int8_t>r[s]
        elif op == OP_MOVSX16_32:
            r[d] = <uint32_t><int32_t><int16_t>r[s]
        elif op == OP_LE16:
            r[d] = <uint16_t>r[d]
        elif op == OP_BE16:
            r[d] = bswap16(<uint16_t>r[d])
        elif op == OP_BSWAP16:
            r[d] = bswap16(<uint16_t>r[d])
        elif op == OP_LE32:
            r[d] = <uint32_t>r[d]
        elif op == OP_BE32:
            r[d] = bswap32(<uint32_t>r[d])
        elif op == OP_BSWAP32:
            r[d] = bswap32(<uint32_t>r[d])
        elif op == OP_LE64:
            pass
        elif op == OP_BE64:
            r[d] = bswap64(<uint64_t>r[d])
        elif op == OP_BSWAP64:
            r[d] = bswap64(<uint64_t>r[d])
        elif (op == OP_LDX8
              or op == OP_LDX16
              or op == OP_LDX32
              or op == OP_LDX64):
            a = r[s] + <uint64_t><int64_t>i.off
            p = _mem(vm, a, i.size, ACCESS_READ)
            if p != NULL:
                r[d] = _load(p, i.size)
            elif not ctx_load(vm, a, i.size, &r[d]):
                break
        elif (op == OP_ST8
              or op == OP_ST16
              or op == OP_ST32
              or op == OP_ST64):
            a = r[d] + <uint64_t><int64_t>i.off
            p = _mem(vm, a, i.size, ACCESS_WRITE)
            if p != NULL:
                _store(p, i.size, imm)
            elif not ctx_store(vm, a, i.size, imm):
                break
        elif (op == OP_STX8
              or op == OP_STX16
              or op == OP_STX32
              or op == OP_STX64):
            a = r[d] + <uint64_t><int64_t>i.off
            p = _mem(vm, a, i.size, ACCESS_WRITE)
            if p != NULL:
                _store(p, i.size, r[s])
            elif not ctx_store(vm, a, i.size, r[s]):
                break
        elif (op == OP_LDXS8
              or op == OP_LDXS16
              or op == OP_LDXS32):
            a = r[s] + <uint64_t><int64_t>i.off
            p = _mem(vm, a, i.size, ACCESS_READ)
            if p != NULL:
                r[d] = _sext(_load(p, i.size), i.size)
            elif ctx_load(vm, a, i.size, &r[d]):
                r[d] = _sext(r[d], i.size)
            else:
                break
        elif (op == OP_ATOMIC32_ADD
              or op == OP_ATOMIC32_OR
              or op == OP_ATOMIC32_AND
              or op == OP_ATOMIC32_XOR
              or op == OP_ATOMIC32_FETCH_ADD
              or op == OP_ATOMIC32_FETCH_OR
              or op == OP_ATOMIC32_FETCH_AND
              or op == OP_ATOMIC32_FETCH_XOR
              or op == OP_ATOMIC32_XCHG
              or op == OP_ATOMIC32_CMPXCHG
              or op == OP_ATOMIC64_ADD
              or op == OP_ATOMIC64_OR
              or op == OP_ATOMIC64_AND
              or op == OP_ATOMIC64_XOR
              or op == OP_ATOMIC64_FETCH_ADD
              or op == OP_ATOMIC64_FETCH_OR
              or op == OP_ATOMIC64_FETCH_AND
              or op == OP_ATOMIC64_FETCH_XOR
              or op == OP_ATOMIC64_XCHG
              or op == OP_ATOMIC64_CMPXCHG):
            p = _mem(vm, r[d] + <uint64_t><int64_t>i.off, i.size, ACCESS_WRITE)
            if p == NULL:
                break
            _atomic(op, p, i.size, &r[s], &r[0])
        elif op == OP_JEQ64_K:
            if r[d] == imm: pc = <uint32_t>i.off
        elif op == OP_JEQ64_X:
            if r[d] == r[s]: pc = <uint32_t>i.off
        elif op == OP_JGT64_K:
            if r[d] > imm: pc = <uint32_t>i.off
        elif op == OP_JGT64_X:
            if r[d] > r[s]: pc = <uint32_t>i.off
        elif op == OP_JGE64_K:
            if r[d] >= imm: pc = <uint32_t>i.off
        elif op == OP_JGE64_X:
            if r[d] >= r[s]: pc = <uint32_t>i.off
        elif op == OP_JSET64_K:
            if r[d] & imm: pc = <uint32_t>i.off
        elif op == OP_JSET64_X:
            if r[d] & r[s]: pc = <uint32_t>i.off
        elif op == OP_JNE64_K:
            if r[d] != imm: pc = <uint32_t>i.off
        elif op == OP_JNE64_X:
            if r[d] != r[s]: pc = <uint32_t>i.off
        elif op == OP_JSGT64_K:
            if <int64_t>r[d] > <int64_t>imm: pc = <uint32_t>i.off
        elif op == OP_JSGT64_X:
            if <int64_t>r[d] > <int64_t>r[s]: pc = <uint32_t>i.off
        elif op == OP_JSGE64_K:
            if <int64_t>r[d] >= <int64_t>imm: pc = <uint32_t>i.off
        elif op == OP_JSGE64_X:
            if <int64_t>r[d] >= <int64_t>r[s]: pc = <uint32_t>i.off
        elif op == OP_JLT64_K:
            if r[d] < imm: pc = <uint32_t>i.off
        elif op == OP_JLT64_X:
            if r[d] < r[s]: pc = <uint32_t>i.off
        elif op == OP_JLE64_K:
            if r[d] <= imm: pc = <uint32_t>i.off
        elif op == OP_JLE64_X:
            if r[d] <= r[s]: pc = <uint32_t>i.off
        elif op == OP_JSLT64_K:
            if <int64_t>r[d] < <int64_t>imm: pc = <uint32_t>i.off
        elif op == OP_JSLT64_X:
            if <int64_t>r[d] < <int64_t>r[s]: pc = <uint32_t>i.off
        elif op == OP_JSLE64_K:
            if <int64_t>r[d] <= <int64_t>imm: pc = <uint32_t>i.off
        elif op == OP_JSLE64_X:
            if <int64_t>r[d] <= <int64_t>r[s]: pc = <uint32_t>i.off
        elif op == OP_JEQ32_K:
            if <uint32_t>r[d] == <uint32_t>imm: pc = <uint32_t>i.off
        elif op == OP_JEQ32_X:
            if <uint32_t>r[d] == <uint32_t>r[s]: pc = <uint32_t>i.off
        elif op == OP_JGT32_K:
            if <uint32_t>r[d] > <uint32_t>imm: pc = <uint32_t>i.off
        elif op == OP_JGT32_X:
            if <uint32_t>r[d] > <uint32_t>r[s]: pc = <uint32_t>i.off
        elif op == OP_JGE32_K:
            if <uint32_t>r[d] >= <uint32_t>imm: pc = <uint32_t>i.off
        elif op == OP_JGE32_X:
            if <uint32_t>r[d] >= <uint32_t>r[s]: pc = <uint32_t>i.off
        elif op == OP_JSET32_K:
            if <uint32_t>r[d] & <uint32_t>imm: pc = <uint32_t>i.off
        elif op == OP_JSET32_X:
            if <uint32_t>r[d] & <uint32_t>r[s]: pc = <uint32_t>i.off
        elif op == OP_JNE32_K:
            if <uint32_t>r[d] != <uint32_t>imm: pc = <uint32_t>i.off
        elif op == OP_JNE32_X:
            if <uint32_t>r[d] != <uint32_t>r[s]: pc = <uint32_t>i.off
        elif op == OP_JSGT32_K:
            if <int32_t>r[d] > <int32_t>imm: pc = <uint32_t>i.off
        elif op == OP_JSGT32_X:
            if <int32_t>r[d] > <int32_t>r[s]: pc = <uint32_t>i.off
        elif op == OP_JSGE32_K:
            if <int32_t>r[d] >= <int32_t>imm: pc = <uint32_t>i.off
        elif op == OP_JSGE32_X:
            if <int32_t>r[d] >= <int32_t>r[s]: pc = <uint32_t>i.off
        elif op == OP_JLT32_K:
            if <uint32_t>r[d] < <uint32_t>imm: pc = <uint32_t>i.off
        elif op == OP_JLT32_X:
            if <uint32_t>r[d] < <uint32_t>r[s]: pc = <uint32_t>i.off
        elif op == OP_JLE32_K:
            if <uint32_t>r[d] <= <uint32_t>imm: pc = <uint32_t>i.off
        elif op == OP_JLE32_X:
            if <uint32_t>r[d] <= <uint32_t>r[s]: pc = <uint32_t>i.off
        elif op == OP_JSLT32_K:
            if <int32_t>r[d] < <int32_t>imm: pc = <uint32_t>i.off
        elif op == OP_JSLT32_X:
            if <int32_t>r[d] < <int32_t>r[s]: pc = <uint32_t>i.off
        elif op == OP_JSLE32_K:
            if <int32_t>r[d] <= <int32_t>imm: pc = <uint32_t>i.off
        elif op == OP_JSLE32_X:
            if <int32_t>r[d] <= <int32_t>r[s]: pc = <uint32_t>i.off
        # --- end of the generated interp_cases ---
        # legacy packet loads: out of bounds ends the program with r0 = 0
        elif (op == OP_LD_ABS8 or op == OP_LD_IND8 or op == OP_LD_ABS16 or op == OP_LD_IND16 or
              op == OP_LD_ABS32 or op == OP_LD_IND32):
            a = <uint64_t><int64_t><int32_t>imm
            if op == OP_LD_IND8 or op == OP_LD_IND16 or op == OP_LD_IND32:
                a += r[s]
            if not (skb_ld_packet(vm.skb, <int32_t>a, i.size, &r[0]) if vm.skb != NULL
                    else _ld_packet(vm, <int32_t>a, i.size, &r[0])):
                r[0] = 0
                vm.status = STATUS_EXIT
                break

        # jumps and calls
        elif op == OP_JA or op == OP_JA32:
            pc = <uint32_t>i.off
        elif op == OP_CALL or op == OP_CALLX:
            if op == OP_CALLX:
                imm = r[d]
            fn = vm.helpers[imm] if imm < HELPER_SLOTS else NULL
            if fn == NULL:
                vm.helper_id = imm
                vm.status = STATUS_UNKNOWN_HELPER
                break
            vm.helper_id = imm
            vm.pc = pc - 1
            vm.budget_left = left          # a helper may run callbacks, on this budget
            r[0] = fn(vm, r[1], r[2], r[3], r[4], r[5])
            left = vm.budget_left
            if vm.status != STATUS_RUNNING:
                if vm.status == STATUS_EXIT:
                    r[0] = vm.reg[0]
                break
        elif op == OP_MAY_GOTO:
            # the kernel's rewrite: a counter in the frame, BPF_MAX_LOOPS at entry; at 0
            # the jump is taken (do_misc_fixups)
            if vm.may_goto_left[vm.depth] == 0:
                pc = <uint32_t>i.off
            else:
                vm.may_goto_left[vm.depth] -= 1
        elif op == OP_CALL_KFUNC:
            # the id was checked when the program was decoded
            vm.helper_id = imm
            vm.pc = pc - 1
            r[0] = KFUNCS[imm](vm, r[1], r[2], r[3], r[4], r[5])
            if vm.status != STATUS_RUNNING:
                if vm.status == STATUS_EXIT:
                    r[0] = vm.reg[0]
                break
        elif op == OP_CALL_LOCAL:
            if vm.depth + 1 >= MAX_FRAMES:
                vm.status = STATUS_CALL_DEPTH
                break
            f = &vm.frames[vm.depth]
            memcpy(f.saved, &r[6], sizeof(f.saved))
            f.ret_pc = pc
            vm.depth += 1
            vm.may_goto_left[vm.depth] = BPF_MAX_LOOPS
            r[10] -= FRAME_SIZE
            # the stack region grows by the callee's frame, zeroed
            vm.regions[0].start -= FRAME_SIZE
            memset(<void*>vm.regions[0].start, 0, FRAME_SIZE)
            pc = <uint32_t>i.off
        elif op == OP_EXIT:
            if vm.depth == 0:
                vm.status = STATUS_EXIT
                break
            vm.depth -= 1
            f = &vm.frames[vm.depth]
            memcpy(&r[6], f.saved, sizeof(f.saved))
            r[10] += FRAME_SIZE
            vm.regions[0].start += FRAME_SIZE
            pc = f.ret_pc
            if pc == CALLBACK_RETURN:
                vm.status = STATUS_CALLBACK_DONE
                break
        else:
            # OP_INVALID (the sentinel past the end), OP_LDDW_TAIL, unsupported pseudo ops
            vm.status = STATUS_BAD_INSN
            break

        if TraceMode is _Trace:
            _trace_step(vm, <uint32_t>(i - insns), r)
        if TraceMode is _Cov or TraceMode is _Trace:
            if cov != NULL and pc != <uint32_t>(i - insns) + 1:
                cov[n_insns + <uint32_t>(i - insns)] += 1

    vm.pc = <uint32_t>(i - insns)
    vm.budget_left = left
    memcpy(vm.reg, r, sizeof(r))


cdef inline void _atomic(uint8_t op, uint8_t* p, int size, uint64_t* src, uint64_t* r0) noexcept nogil:
    cdef uint64_t old = _load(p, size)
    cdef uint64_t val = src[0]
    cdef uint64_t new
    cdef uint64_t mask = 0xffffffff if size == 4 else <uint64_t>-1
    # --- generated by pyebpf.isa.atomic_cases(): a build rewrites it ---
    if (op == OP_ATOMIC32_ADD
        or op == OP_ATOMIC64_ADD):
        new = old + val
    elif (op == OP_ATOMIC32_OR
          or op == OP_ATOMIC64_OR):
        new = old | val
    elif (op == OP_ATOMIC32_AND
          or op == OP_ATOMIC64_AND):
        new = old & val
    elif (op == OP_ATOMIC32_XOR
          or op == OP_ATOMIC64_XOR):
        new = old ^ val
    elif (op == OP_ATOMIC32_FETCH_ADD
          or op == OP_ATOMIC64_FETCH_ADD):
        new = old + val
        src[0] = old
    elif (op == OP_ATOMIC32_FETCH_OR
          or op == OP_ATOMIC64_FETCH_OR):
        new = old | val
        src[0] = old
    elif (op == OP_ATOMIC32_FETCH_AND
          or op == OP_ATOMIC64_FETCH_AND):
        new = old & val
        src[0] = old
    elif (op == OP_ATOMIC32_FETCH_XOR
          or op == OP_ATOMIC64_FETCH_XOR):
        new = old ^ val
        src[0] = old
    elif (op == OP_ATOMIC32_XCHG
          or op == OP_ATOMIC64_XCHG):
        new = val
        src[0] = old
    elif (op == OP_ATOMIC32_CMPXCHG
          or op == OP_ATOMIC64_CMPXCHG):
        new = val if old == (r0[0] & mask) else old
        r0[0] = old
    # --- end of the generated atomic_cases ---
    _store(p, size, new)


include "helpers.pxi"
include "maps.pxi"
include "map_helpers.pxi"
include "map_class.pxi"
include "kfuncs.pxi"
include "callbacks.pxi"
include "tracing.pxi"


# --- the VM's life: every run, of Program.run or the replay loop, goes through these ---

cdef void install_prog(Vm* vm, ProgCore* prog) noexcept nogil:
    """Make ``prog`` the running program: its code, helpers, context rules and maps."""
    vm.may_goto_left[0] = BPF_MAX_LOOPS
    cdef int k
    cdef Region* g
    vm.prog = prog
    vm.owner = prog.owner
    vm.insns, vm.helpers = prog.code, prog.helpers
    vm.maps, vm.nmaps = prog.maps, prog.nmaps
    if vm.skb != NULL:
        vm.ctx_rules = prog.ctx_rules
    vm.nregions = vm.map_regions
    for k in range(prog.nmaps):
        if prog.maps[k].values_len and not prog.maps[k].hidden:
            g = &vm.regions[vm.nregions]
            g.start = <uintptr_t>prog.maps[k].values
            g.end = g.start + prog.maps[k].values_len
            g.writable = True
            g.name = REGION_MAP0 + k
            vm.nregions += 1


cdef void tail_call_switch(Vm* vm) noexcept nogil:
    """Replace the running program after bpf_tail_call: same context, a fresh frame."""
    ringbuf_release_all(vm)
    install_prog(vm, vm.next_prog)
    vm.next_prog = NULL
    vm.status = STATUS_RUNNING
    vm.pc = 0
    vm.depth = 0
    vm.regions[0].start = vm.regions[0].end - FRAME_SIZE
    memset(<void*>vm.regions[0].start, 0, FRAME_SIZE)
    vm.reg[10] = vm.regions[0].end


cdef int vm_run(Vm* vm, ProgCore* prog, bint trace) noexcept nogil:
    """Run ``prog`` (and the programs it tail-calls) to its end; the Vm status.  With
    coverage on (pyebpf.coverage) the loop counts instructions and jumps taken.  Call
    with the GIL held when the program has Python helpers or ``trace`` is set."""
    vm.map_regions = vm.nregions
    install_prog(vm, prog)
    vm.run_mode = 2 if trace else (1 if _cov_on else 0)
    while True:
        if trace:
            _interp(vm, <_Trace*>NULL)
        elif _cov_on:
            _interp(vm, <_Cov*>NULL)
        else:
            _interp(vm, <_NoTrace*>NULL)
        if vm.status != STATUS_TAIL_CALL:
            return vm.status
        tail_call_switch(vm)


cdef object vm_fault(Vm* vm, uint64_t budget):
    """The :class:`~pyebpf.errors.ExecutionError` for a run that did not exit cleanly,
    naming the program that was running and, with line info, its C line."""
    cdef Program prog = <Program>vm.prog.owner
    fault = prog._fault(vm, budget)
    where = prog.source(vm.pc)
    if where is not None:
        fault.add_source(f"{where.file_name}:{where.line}", where.source_line.strip())
    return fault


cdef ProgCore* program_core(object program) except NULL:
    if not isinstance(program, Program):
        raise TypeError(f"a pyebpf.Program is needed, not {type(program).__name__}")
    return &(<Program>program)._pc


cdef MapStore* map_store(object m) except NULL:
    if not isinstance(m, Map):
        raise TypeError(f"a pyebpf.Map is needed, not {type(m).__name__}")
    return (<Map>m)._m


cdef int profile_id(str profile) except -1:
    try:
        return _PROFILES[profile]
    except KeyError:
        raise LoadError(f"unknown kernel profile {profile!r}; choose "
                        + " or ".join(map(repr, _PROFILES))) from None


# --- helpers of the conformance suite's uBPF plugin --------------------------------

cdef uint64_t _h_gather_bytes(Vm* vm, uint64_t a, uint64_t b, uint64_t c, uint64_t d,
                              uint64_t e) noexcept nogil:
    return ((a & 0xff) << 32) | ((b & 0xff) << 24) | ((c & 0xff) << 16) | ((d & 0xff) << 8) | (e & 0xff)


cdef uint64_t _h_memfrob(Vm* vm, uint64_t ptr, uint64_t n, uint64_t c, uint64_t d,
                         uint64_t e) noexcept nogil:
    cdef uint8_t* p
    cdef uint64_t k
    if n == 0:
        return 0
    if n > <uint64_t>0xffffffff:
        _fault_mem(vm, ptr, <uint32_t>0xffffffff, True)
        return 0
    p = _mem(vm, ptr, <uint32_t>n, ACCESS_WRITE)
    if p != NULL:
        for k in range(n):
            p[k] ^= 42
    return 0


cdef uint64_t _h_no_op(Vm* vm, uint64_t a, uint64_t b, uint64_t c, uint64_t d,
                       uint64_t e) noexcept nogil:
    return 0


cdef uint64_t _h_sqrti(Vm* vm, uint64_t a, uint64_t b, uint64_t c, uint64_t d,
                       uint64_t e) noexcept nogil:
    # integer square root, floor; Newton's method stays exact for all 64-bit inputs
    cdef uint64_t x, y
    if a < 2:
        return a
    x = a
    y = (a >> 1) + (a & 1)   # (a + 1) / 2 without overflowing at 2**64 - 1
    while y < x:
        x = y
        y = (x + a / x) >> 1
    return x


cdef uint64_t _h_strcmp(Vm* vm, uint64_t a, uint64_t b, uint64_t c, uint64_t d,
                        uint64_t e) noexcept nogil:
    # both strings must lie inside regions, byte by byte, up to their terminators
    cdef uint8_t* p
    cdef uint8_t* q
    while True:
        p = _mem(vm, a, 1, ACCESS_READ)
        if p == NULL:
            return 0
        q = _mem(vm, b, 1, ACCESS_READ)
        if q == NULL:
            return 0
        if p[0] != q[0] or p[0] == 0:
            return <uint64_t>(<int64_t>p[0] - <int64_t>q[0])
        a += 1
        b += 1


cdef uint64_t _h_unwind(Vm* vm, uint64_t a, uint64_t b, uint64_t c, uint64_t d,
                        uint64_t e) noexcept nogil:
    # uBPF's "unwind": returning 0 ends the program at once with r0 = 0
    if a == 0:
        vm.reg[0] = 0
        vm.status = STATUS_EXIT
    return a


cdef uint64_t _h_python(Vm* vm, uint64_t a, uint64_t b, uint64_t c, uint64_t d,
                        uint64_t e) noexcept nogil:
    with gil:
        return (<Program>vm.owner)._call_python_helper(vm, a, b, c, d, e)


cdef class _BuiltinHelper:
    cdef helper_fn fn
    cdef readonly str name

    def __repr__(self):
        return f"<pyebpf builtin helper {self.name}>"


cdef _BuiltinHelper _builtin(str name, helper_fn fn):
    cdef _BuiltinHelper h = _BuiltinHelper.__new__(_BuiltinHelper)
    h.fn, h.name = fn, name
    return h


BUILTIN_HELPERS = {
    "gather_bytes": _builtin("gather_bytes", _h_gather_bytes),
    "memfrob": _builtin("memfrob", _h_memfrob),
    "no_op": _builtin("no_op", _h_no_op),
    "sqrti": _builtin("sqrti", _h_sqrti),
    "strcmp": _builtin("strcmp", _h_strcmp),
    "unwind": _builtin("unwind", _h_unwind),
    "map_lookup_elem": _builtin("map_lookup_elem", bpf_map_lookup_elem),
    "map_update_elem": _builtin("map_update_elem", bpf_map_update_elem),
    "map_delete_elem": _builtin("map_delete_elem", bpf_map_delete_elem),
    "get_stackid": _builtin("get_stackid", bpf_get_stackid),
}

include "cbpf_calls.pxi"


cdef class HelperMemory:
    """Checked access to the running program's memory, for Python helpers.

    Valid only during the helper call it is handed to.
    """
    cdef Vm* _vm

    cdef uint8_t* _ptr(self, uint64_t addr, size_t n, bint write) except? NULL:
        if self._vm == NULL:
            raise ExecutionError("HelperMemory used outside its helper call")
        if n == 0:
            return <uint8_t*><uintptr_t>addr
        cdef uint8_t* p = _mem(self._vm, addr, <uint32_t>n, write) if n <= 0xffffffff else NULL
        if p == NULL:
            self._vm.status = STATUS_RUNNING
            raise HelperAccessError(addr, n, write)
        return p

    def read(self, uint64_t addr, size_t n) -> bytes:
        """``n`` bytes at ``addr``; raises :class:`~pyebpf.errors.HelperAccessError`
        outside the program's regions."""
        return PyBytes_FromStringAndSize(<char*>self._ptr(addr, n, False), n)

    def write(self, uint64_t addr, data) -> None:
        """Write ``data`` at ``addr``; raises :class:`~pyebpf.errors.HelperAccessError`
        outside writable regions."""
        cdef const unsigned char[:] view = memoryview(data).cast("B")
        cdef uint8_t* p = self._ptr(addr, view.shape[0], True)
        if view.shape[0]:
            memcpy(p, &view[0], view.shape[0])


# --- results -------------------------------------------------------------------------

cdef tuple _NO_CLONES = ()
cdef tuple _REGION_NAMES = ("stack", "memory", "packet", "pt_regs")


@cython.final
@cython.freelist(8)
cdef class Result:
    """What a run left behind.

    ``retval``: r0 at exit — all 64 bits unsigned in the raw mode, the signed 32-bit
    verdict for tc programs (-1 is TC_ACT_UNSPEC), the unsigned 32-bit length to keep
    for socket filters.  ``data``: the memory afterwards (raw mode), or the packet as a
    capture on the wire shows it (tc; a hardware-accelerated VLAN tag is inserted), or
    the bytes a socket filter keeps (``b""`` when it drops the packet).
    ``data_out``: for skb program types, the bytes the kernel holds after the run, from
    ``skb->data`` for ``len`` bytes (untrimmed; an accelerated VLAN tag is metadata, not
    in these bytes) — what ``BPF_PROG_TEST_RUN`` returns as data_out.
    ``insn_count``: instructions executed; ``trace``: a :class:`Trace` when traced.

    In the domain's terms (computed when read, see :mod:`pyebpf.results`): ``verdict``
    (tc programs: the verdict as a :class:`pyebpf.TC_ACT`, or the int when it is none
    of them), ``kept`` (socket filters: the bytes kept, 0 = dropped), ``packet``
    (``data`` dissected by scapy: Ethernet, or IP/IPv6 for a socket filter run from the
    network header), ``changed`` (the packet fields the program changed, as
    ``layer.field: old → new`` items) and ``checksums_ok`` (whether every IPv4, TCP,
    UDP, ICMP and ICMPv6 checksum in ``data`` is valid).

    For skb program types also: ``skb`` (the ``__sk_buff`` fields afterwards, as the
    program reads them), ``redirect`` (``(ifindex, ingress)`` when a tc program returned
    TC_ACT_REDIRECT after ``bpf_redirect``, else None), ``clones`` (``(ifindex, ingress,
    bytes)`` for each ``bpf_clone_redirect``), ``tunnel`` (the tunnel metadata attached
    to the packet, or None: a dict of ``id``, ``ipv6``, ``tx`` (set by the program with
    ``bpf_skb_set_tunnel_key``, else received), ``src`` and ``dst`` (outer addresses,
    network order), ``tos``, ``ttl``, ``flags`` (TUNNEL_* bits), ``label`` and
    ``options`` (the attached option bytes; readable only with an option bit in
    ``flags``)), ``trace_output`` (``bpf_trace_printk`` lines)
    and ``csum_ok``: for a run with ``csum_complete=True``, whether ``skb->csum`` still
    matches the bytes (False is where BPF_PROG_TEST_RUN fails with EBADMSG), else None.
    """
    cdef readonly object retval
    cdef readonly bytes data
    cdef readonly bytes data_out
    cdef readonly object csum_ok
    cdef readonly uint64_t insn_count
    cdef readonly object trace
    cdef readonly object redirect
    cdef readonly tuple clones
    cdef readonly list trace_output
    cdef bint _has_skb
    cdef bint _is_tc
    cdef Skb _skb
    cdef object _skb_fields
    cdef object _input

    @property
    def skb(self):
        if not self._has_skb:
            return None
        if self._skb_fields is None:
            self._skb_fields = SkbFields._from(&self._skb)
        return self._skb_fields

    @property
    def tunnel(self):
        return _tunnel_dict(&self._skb.tun) if self._has_skb and self._skb.tun.present else None

    @property
    def prog_kind(self):
        """``"tc"``, ``"socket_filter"`` or ``"raw"``: how to read ``retval``."""
        return ("tc" if self._is_tc else "socket_filter") if self._has_skb else "raw"

    @property
    def input(self):
        """The packet given to run(), as bytes (None in the raw mode)."""
        if not self._has_skb:
            return None
        return self._input if type(self._input) is bytes else bytes(self._input)

    @property
    def network_start(self):
        """Whether ``data`` starts at the network header (a socket filter run with
        ``sf_start="network"``) rather than at the Ethernet header."""
        return self._has_skb and self._skb.data != self._skb.mac_header

    @property
    def verdict(self):
        from . import results
        return results.verdict(self)

    @property
    def kept(self):
        from . import results
        return results.kept(self)

    @property
    def packet(self):
        from . import results
        return results.dissect(self.data, self.network_start) if self._has_skb else None

    @property
    def changed(self):
        from . import results
        return results.changed(self)

    @property
    def checksums_ok(self):
        from . import results
        return results.checksums_ok(self)

    def __repr__(self):
        from . import results
        return results.result_repr(self)


cdef class SkbFields:
    """The ``__sk_buff`` fields after a run, as a program reads them: ``protocol`` and
    ``vlan_proto`` in network byte order as loaded (IPv4 is 0x0008), the rest host
    order; ``cb`` as five u32 and ``cb_bytes`` as 20 bytes."""
    cdef readonly uint32_t len, pkt_type, mark, queue_mapping, protocol, vlan_present
    cdef readonly uint32_t vlan_tci, vlan_proto, priority, ingress_ifindex, ifindex
    cdef readonly uint32_t tc_index, hash, tc_classid, napi_id, wire_len, gso_segs, gso_size
    cdef readonly uint32_t tstamp_type
    cdef readonly uint64_t tstamp, hwtstamp
    cdef readonly bytes cb_bytes

    @staticmethod
    cdef SkbFields _from(Skb* skb):
        cdef SkbFields f = SkbFields.__new__(SkbFields)
        f.len, f.pkt_type, f.mark, f.queue_mapping = skb.len, skb.pkt_type, skb.mark, skb.queue_mapping
        f.protocol, f.vlan_present, f.vlan_tci = skb.protocol, skb.vlan_present, skb.vlan_tci
        if skb.profile == PROFILE_V46:
            f.vlan_tci = skb.vlan_tci & ~0x1000
        f.vlan_proto, f.priority, f.ingress_ifindex = skb.vlan_proto, skb.priority, skb.ingress_ifindex
        f.ifindex, f.tc_index, f.hash, f.tc_classid = skb.ifindex, skb.tc_index, skb.hash, skb.tc_classid
        f.napi_id, f.wire_len, f.gso_segs, f.gso_size = skb.napi_id, skb.wire_len, skb.gso_segs, skb.gso_size
        f.tstamp, f.tstamp_type, f.hwtstamp = skb.tstamp, skb.tstamp_type, skb.hwtstamp
        f.cb_bytes = PyBytes_FromStringAndSize(<char*>skb.cb, 20)
        return f

    @property
    def cb(self):
        return tuple(int.from_bytes(self.cb_bytes[k:k + 4], "little") for k in range(0, 20, 4))

    _NAMES = ("len", "pkt_type", "mark", "queue_mapping", "protocol", "vlan_present",
              "vlan_tci", "vlan_proto", "priority", "ingress_ifindex", "ifindex", "tc_index",
              "cb", "hash", "tc_classid", "napi_id", "tstamp", "wire_len", "gso_segs",
              "gso_size", "tstamp_type", "hwtstamp")

    def as_dict(self):
        return {name: getattr(self, name) for name in self._NAMES}

    def __repr__(self):
        return "SkbFields(" + ", ".join(
            f"{k}={v:#x}" if isinstance(v, int) else f"{k}={v}"
            for k, v in self.as_dict().items()) + ")"


cdef dict _tunnel_dict(TunnelInfo* t):
    family = 16 if t.ipv6 else 4
    return {
        "id": t.id, "ipv6": bool(t.ipv6), "tx": bool(t.from_helper),
        "src": PyBytes_FromStringAndSize(<char*>t.addr, family),
        "dst": PyBytes_FromStringAndSize(<char*>tunnel_dst(t), family),
        "tos": t.tos, "ttl": t.ttl, "flags": t.flags, "label": t.label,
        "options": PyBytes_FromStringAndSize(<char*>t.opts, t.opts_len),
    }


class Trace:
    """A traced run: ``steps`` is a list of ``(pc, registers)`` after each executed
    instruction (registers as an 11-tuple r0-r10); ``accesses`` a list of
    ``(step, pc, "r" | "w", region, offset, size)`` for every load and store,
    with the address given as an offset into its region."""

    def __init__(self, steps, accesses, listing, source=None):
        self.steps, self.accesses, self._listing = steps, accesses, listing
        self._source = source

    def __str__(self):
        return self.listing()

    def listing(self, last=None, registers=True):
        """The executed steps as text, each C source line before its instructions;
        ``last``: only the last that many steps; ``registers=False``: without the
        register and memory lines."""
        from .btf.ext import annotate
        by_step = {}
        first = 0 if last is None else max(0, len(self.steps) - last)
        for acc in self.accesses:
            by_step.setdefault(acc[0], []).append(acc)
        rows = []
        for n, (pc, regs) in enumerate(self.steps):
            if n < first:
                continue
            lines = [f"{pc:5d}: {self._listing(pc)}"]
            if registers:
                for _, _, kind, region, offset, size in by_step.get(n, ()):
                    lines.append(f"         {'read' if kind == 'r' else 'write'} {size} @ {region}{offset:+d}")
                lines.append("         " + " ".join(f"r{k}={v:#x}" for k, v in enumerate(regs) if v))
            rows.append((pc, lines))

        def sources(pc):
            where = self._source(pc) if self._source is not None else None
            return [where] if where is not None else []
        return "\n".join(annotate(rows, sources))


# --- programs ----------------------------------------------------------------------

cdef void _init_access_tables():
    cdef object op
    memset(_ACCESS_KIND, 0, sizeof(_ACCESS_KIND))
    memset(_ACCESS_BASE_IS_SRC, 0, sizeof(_ACCESS_BASE_IS_SRC))
    for op in _isa.OPS:
        if op.form is _isa.F_LDX:
            _ACCESS_KIND[op.id], _ACCESS_BASE_IS_SRC[op.id] = 1, 1
        elif op.form is _isa.F_ST or op.form is _isa.F_STX:
            _ACCESS_KIND[op.id] = 2
        elif op.form is _isa.F_ATOMIC:
            _ACCESS_KIND[op.id] = 3


_init_access_tables()
register_skb_helpers()
register_kfuncs()
register_callback_helpers(SKB_HELPERS)
register_map_helpers(SKB_HELPERS)
register_tracing_helpers(SKB_HELPERS)


def _prog_type(value):
    """Normalise a program type given as None, a name or a BPF_PROG_TYPE_* number."""
    if value is None:
        return None
    try:
        value = _isa.prog_type(value)
    except ValueError as exc:
        raise LoadError(str(exc)) from None
    if value not in _SKB_TYPES and value != _KPROBE:
        raise LoadError(f"program type {value.name} is not supported: pyebpf runs "
                        "SOCKET_FILTER, SCHED_CLS, SCHED_ACT and KPROBE programs")
    return value


_SKB_TYPES = (_isa.ProgType.BPF_PROG_TYPE_SOCKET_FILTER, _isa.ProgType.BPF_PROG_TYPE_SCHED_CLS,
              _isa.ProgType.BPF_PROG_TYPE_SCHED_ACT)
_KPROBE = _isa.ProgType.BPF_PROG_TYPE_KPROBE
_PROFILES = {"current": PROFILE_CURRENT, "4.6": PROFILE_V46}
_pin_hook = None    # pyebpf.pinning installs it when a map gets pinned
# pyebpf.pinning, which sets itself here when imported: pinning builds on the core, so
# the core never imports it (pyebpf imports it along with the core)
_pinning = None


cdef object _pins():
    if _pinning is None:
        raise PinError(EINVAL, "pinning needs pyebpf.pinning: import it first")
    return _pinning

# The pytest plugin installs f(program, data, budget, trace, fields) -> Result for the
# tests that use it: it runs the program itself (with this hook off), traced, and also
# in the kernel where the test asks for that.
_run_hook = None

#: bpf_ktime_get_ns's default clock (docs/clock.md): one for the process, as the kernel's
#: CLOCK_MONOTONIC is one for the machine.  It reads KTIME_START (an hour after boot) in
#: the first run that sets no ``ktime``, and each such run starts KTIME_RUN_GAP ns after
#: the last value the previous one could read.
KTIME_START = 3_600_000_000_000
KTIME_RUN_GAP = 1_000
cdef uint64_t _ktime_clock = KTIME_START


cdef list _printk_lines(Skb* skb):
    if not skb.printk_len:
        return []
    return (PyBytes_FromStringAndSize(skb.printk, skb.printk_len - 1)
            .decode("utf-8", "backslashreplace").split("\n"))


def _check_kprobe_load(prog_type, str profile, arch, kern_version):
    """The load attributes only KPROBE programs have: the architecture whose pt_regs they
    read, and 4.6's rule that kern_version equal the kernel's version (bpf_prog_load)."""
    from .verifier.rules import ARCHES
    if arch not in ARCHES:
        raise LoadError(f"unknown architecture {arch!r}; choose " + " or ".join(ARCHES))
    if prog_type != _KPROBE:
        return arch
    if arch != "x86_64" and profile == "4.6":
        raise LoadError(f"the 4.6 profile models x86-64 only, not {arch}")
    if profile == "4.6" and kern_version != _isa.LINUX_VERSION_CODE_4_6:
        raise LoadError(f"BPF_PROG_LOAD: EINVAL: a KPROBE program's kern_version must equal "
                        f"the 4.6 kernel's LINUX_VERSION_CODE "
                        f"{_isa.LINUX_VERSION_CODE_4_6:#x}, got "
                        f"{'none' if kern_version is None else hex(kern_version)}")
    return arch


cdef _require_frame(object data, object prog_type):
    """Skb programs (and BPF_PROG_TEST_RUN) see an Ethernet frame: a scapy packet that
    starts at another layer would have its first 14 bytes read as MACs and EtherType."""
    if type(data) is bytes or type(data) is bytearray or data is None \
            or not type(data).__module__.startswith("scapy."):
        return
    from scapy.layers.l2 import Dot3, Ether
    if not isinstance(data, (Ether, Dot3)):
        kind = _isa.ProgType(prog_type).name[len("BPF_PROG_TYPE_"):].lower()
        raise PacketError(f"run(): a {kind} program takes an Ethernet frame, but this scapy "
                         f"packet starts with {type(data).__name__}, whose bytes would be read "
                         f"as MAC addresses: give Ether() / packet, or the frame's bytes")


@cython.final
cdef class Program:
    """An eBPF program, decoded once and ready to run.

    ``Program(insns, prog_type=None, profile="current")`` takes raw instructions
    (bytes, 8 per slot).  ``prog_type`` is None, or ``"socket_filter"``,
    ``"sched_cls"``, ``"sched_act"`` (or their ``BPF_PROG_TYPE_*`` numbers); ``profile``
    picks the kernel whose behaviour to reproduce: ``"current"`` (today's kernel, the
    default) or ``"4.6"``.

    With ``prog_type=None`` it runs in the conformance-suite convention: r1 points at
    a writable copy of the memory passed to :meth:`run`, r2 holds its length, r10 the
    top of a 512-byte stack frame, and ``retval`` is the full 64-bit r0.  ``helpers``
    maps helper ids to a builtin helper name (see ``BUILTIN_HELPERS``) or a Python
    callable ``f(memory: HelperMemory, r1, r2, r3, r4, r5) -> int``.

    Typed programs get r1 = the ``__sk_buff`` context of the packet given to
    :meth:`run`, the kernel's helpers for their type, and the kernel verifier's
    decision (:mod:`pyebpf.verifier`: a refusal raises ``VerifierError``);
    ``verify=False`` skips it and keeps only the structural checks, for experiments
    with programs the kernel would refuse (the run-time checks still stop every bad
    access); ``unpriv=True`` decides as the kernel does for a loader without
    capabilities.  ``budget`` caps the instructions one run may execute.  ``env`` (a
    :class:`pyebpf.Environment`, default None: the default one) is the modelled network
    every run sees unless ``run(env=...)`` names another.

    ``classic`` (set by :meth:`from_cbpf`) holds the classic instructions ``insns`` was
    converted from; such code gets only the structural checks, as the kernel runs no
    verifier on a converted classic filter (``bpf_migrate_filter``).

    ``"kprobe"`` programs get r1 = the ``struct pt_regs`` of ``arch`` (``"x86_64"``, the
    default, or ``"arm64"``), read-only, and the tracing helpers over a modelled machine
    (:mod:`pyebpf.trace`, docs/kprobe.md); ``kern_version`` is the load attribute the 4.6
    kernel required to equal its own version (``isa.LINUX_VERSION_CODE_4_6``).
    """
    cdef Insn* _code
    cdef uint32_t _n
    cdef readonly bytes insns
    cdef readonly object prog_type
    cdef readonly str profile
    cdef readonly object classic
    cdef readonly str arch
    cdef bint _kprobe
    cdef public uint64_t budget
    cdef public object env
    cdef helper_fn _helpers[HELPER_SLOTS]
    cdef dict _py_helpers
    cdef object _py_error
    cdef list _listing
    cdef CtxRules _ctx
    cdef bint _is_tc
    cdef readonly list maps
    cdef MapStore* _map_ptrs[MAX_USED_MAPS]
    cdef int _nmaps
    cdef ProgCore _pc
    cdef readonly tuple line_info
    cdef list _line_pcs
    cdef readonly int fd
    cdef public uint32_t tail_call_limit
    cdef object _cov_buf
    cdef object __weakref__

    def __cinit__(self):
        self._code = NULL

    def __dealloc__(self):
        free(self._code)

    def __init__(self, insns, prog_type=None, *, profile="current", helpers=None,
                 uint64_t budget=DEFAULT_BUDGET, line_info=(), verify=True, classic=None,
                 unpriv=False, arch="x86_64", kern_version=None):
        raw = bytes(insns)
        self.prog_type = _prog_type(prog_type)
        profile_id(profile)
        self.profile = profile
        self._kprobe = self.prog_type == _KPROBE
        self.arch = _check_kprobe_load(self.prog_type, profile, arch, kern_version)
        try:
            slots = _isa.unpack_program(raw)
        except ValueError as exc:
            raise LoadError(str(exc)) from None
        if verify and classic is None:
            ops = _verifier.check(slots, self.prog_type, profile, maps=_MAP_HANDLES.get,
                                  line_info=line_info, unpriv=unpriv, arch=self.arch)
        else:
            ops = _verifier.structure.check(
                slots, None if classic is not None else self.prog_type)
        self.classic = tuple(classic) if classic is not None else None
        self.insns = raw
        self.budget = budget
        self.line_info = tuple(sorted(line_info, key=lambda li: li.pc))
        self._line_pcs = [li.pc for li in self.line_info]
        self.maps = []
        self._py_helpers = {}
        self._listing = [None] * len(slots)
        memset(self._helpers, 0, sizeof(self._helpers))
        self._decode(slots, ops)
        if self.prog_type is not None:
            self._is_tc = self.prog_type != _isa.ProgType.BPF_PROG_TYPE_SOCKET_FILTER
            ctx_rules_build(&self._ctx, self.prog_type, profile, self.arch)
            from .verifier import rules as _rules
            for helper_id in _rules.helpers_allowed(self.prog_type, profile):
                self._helpers[helper_id] = SKB_HELPERS[helper_id]
        if classic is not None:
            for name, helper_id in _isa.CBPF_CALLS.items():
                self._helpers[helper_id] = (<_BuiltinHelper>CBPF_CALLS[name]).fn
        for helper_id, helper in (helpers or {}).items():
            self.set_helper(helper_id, helper)
        if self.prog_type is not None:
            self._check_helpers_implemented(slots, ops)
        self._pc.code, self._pc.helpers = self._code, self._helpers
        self._pc.maps, self._pc.nmaps = self._map_ptrs, self._nmaps
        self._pc.ctx_rules = &self._ctx
        self._pc.prog_type = self.prog_type if self.prog_type is not None else 0
        self._pc.owner = <void*>self
        self._pc.n = self._n
        self._pc.cov = NULL
        if _cov_on:
            self._attach_coverage(_cov_sink(self))
        self.tail_call_limit = _isa.MAX_TAIL_CALL_CNT
        self._bind_prog_arrays()
        global _next_handle
        self.fd = _next_handle
        _next_handle += 1
        _PROG_HANDLES[self.fd] = self

    cdef _attach_coverage(self, buf):
        cdef uint64_t[::1] counters
        if buf is None:
            return
        counters = buf
        if counters.shape[0] != 2 * self._n:
            raise ValueError(f"coverage buffer of {counters.shape[0]} counters for "
                             f"{self._n} slots (need {2 * self._n})")
        self._cov_buf = buf
        self._pc.cov = &counters[0]

    cdef _bind_prog_arrays(self):
        # a program array serves programs of one type: the first user's (as the kernel)
        for m in self.maps:
            if (<Map>m)._m.type == BPF_MAP_TYPE_PROG_ARRAY:
                (<Map>m)._bind_owner(self._pc.prog_type)

    cdef _check_helpers_implemented(self, list slots, list ops):
        for pc, op in enumerate(ops):
            if op is None or op.form is not _isa.F_CALL or op.disc_value:
                continue
            hid = slots[pc].imm
            # an id outside the table (libbpf's CO-RE poison call 0xbad2310, or any
            # unverified program's) stops a run that reaches it as an unknown helper
            if 0 <= hid < HELPER_SLOTS and self._helpers[hid] == NULL:
                raise LoadError(f"pc {pc}: bpf_{_isa.HELPER_NAMES[hid]}#{hid} is allowed for "
                                f"{self.prog_type.name} but pyebpf does not implement it yet")

    def pin(self, path):
        """BPF_OBJ_PIN: save this program (and references to its pinned maps) to a pin
        file (see docs/pinning.md)."""
        if self._py_helpers:
            raise PinError(EINVAL, f"cannot pin {self!r} at {path}: it has Python "
                                   "helpers, which a pin file cannot hold")
        _pins().pin_program(self, path)

    @staticmethod
    def from_pin(path):
        """BPF_OBJ_GET: load the program pinned at ``path`` and the maps it pins."""
        return _pins().get_program(path)

    @classmethod
    def from_asm(cls, text, prog_type=None, **kwargs):
        """Assemble ``text`` (either syntax of :mod:`pyebpf.asm`) into a Program."""
        from .asm import assemble
        return cls(assemble(text), prog_type, **kwargs)

    @classmethod
    def from_cbpf(cls, source, **kwargs):
        """A socket filter from a classic BPF program (see :func:`pyebpf.cbpf.program`):
        ``struct sock_filter`` bytes, ``tcpdump -dd``/``-ddd`` text, instructions, or a
        pcap-filter expression; checked and converted as the kernel does it."""
        from .cbpf import program
        return program(source, **kwargs)

    def __len__(self):
        return self._n

    def __repr__(self):
        kind = self.prog_type.name if self.prog_type is not None else "raw"
        return f"<pyebpf.Program {kind}, {self._n} slots>"

    cdef _decode(self, list slots, list ops):
        cdef uint32_t n = len(slots)
        cdef uint32_t pc
        cdef Insn* c
        self._code = <Insn*>malloc((n + 1) * sizeof(Insn))
        if self._code == NULL:
            raise MemoryError()
        memset(self._code, 0, (n + 1) * sizeof(Insn))  # the slot past the end is OP_INVALID
        self._n = n
        for pc in range(n):
            op = ops[pc]
            c = &self._code[pc]
            if op is None:
                c.op = OP_LDDW_TAIL
                continue
            insn = slots[pc]
            form = op.form
            c.op, c.dst, c.src, c.size = op.id, insn.dst, insn.src, op.size
            if form.off is _isa.Field.JUMP:
                c.off = pc + 1 + insn.off
            elif form.imm is _isa.Field.JUMP:
                c.off = pc + 1 + insn.imm
            else:
                c.off = insn.off
            if form is _isa.F_LDDW:
                # pseudo sources are resolved now; at run time every lddw is a constant
                c.op = OP_LDDW
                c.imm = self._lddw_value(pc, op, insn.imm, slots[pc + 1].imm)
            elif insn.is_kfunc_call:
                c.imm = self._kfunc_id(pc, insn.imm)
            else:
                c.imm = <uint64_t><int64_t>insn.imm

    cdef uint64_t _kfunc_id(self, uint32_t pc, int32_t kid) except? 0:
        if not 0 < kid < N_KFUNC_IDS:
            raise LoadError(f"pc {pc}: kfunc call to id {kid}, which is no kfunc pyebpf "
                            f"knows (pyebpf.isa.KFUNC_IDS)")
        if KFUNCS[kid] == NULL:
            raise LoadError(f"pc {pc}: kfunc {_isa.KFUNC_NAMES[kid]} is not implemented by "
                            f"pyebpf yet (see docs/kfuncs-table.md)")
        return kid

    cdef uint64_t _lddw_value(self, uint32_t pc, op, int32_t lo, int32_t hi) except? 0:
        """The 64-bit value an lddw loads: its immediate, or what its pseudo source names."""
        cdef Map m
        cdef uint32_t offset = <uint32_t>hi
        if op.disc_value == 0:
            return ((<uint64_t><uint32_t>hi) << 32) | <uint32_t>lo
        if op.disc_value == _isa.BPF_PSEUDO_FUNC:
            # a callback: its absolute pc, the "address" helpers like bpf_loop call
            return pc + 1 + lo
        if op.disc_value not in (_isa.BPF_PSEUDO_MAP_FD, _isa.BPF_PSEUDO_MAP_VALUE):
            raise LoadError(f"pc {pc}: lddw with pseudo source {op.name[5:]} is not supported")
        m = _MAP_HANDLES.get(lo)
        if m is None:
            raise LoadError(f"pc {pc}: lddw refers to map fd {lo}, which does not exist")
        if m not in self.maps:
            if len(self.maps) == MAX_USED_MAPS:
                raise LoadError(f"pc {pc}: more than {MAX_USED_MAPS} maps")
            self._map_ptrs[len(self.maps)] = m._m
            self.maps.append(m)
            self._nmaps = len(self.maps)
        if op.disc_value == _isa.BPF_PSEUDO_MAP_FD:
            return <uintptr_t>m._m
        if m._m.type != BPF_MAP_TYPE_ARRAY or offset >= m._m.value_size:
            raise LoadError(f"pc {pc}: direct value access needs an array map and an offset "
                            f"below its value size (map fd {lo}, offset {offset})")
        return <uintptr_t>(m._m.values + offset)

    def set_helper(self, helper_id, helper):
        """Install ``helper`` (a builtin name or a Python callable) under ``helper_id``."""
        if not 0 <= helper_id < HELPER_SLOTS:
            raise ValueError(f"helper id {helper_id} is outside 0..{HELPER_SLOTS - 1}")
        if isinstance(helper, str):
            try:
                helper = BUILTIN_HELPERS[helper]
            except KeyError:
                raise ValueError(f"no builtin helper named {helper!r}; known: "
                                 f"{', '.join(sorted(BUILTIN_HELPERS))}") from None
        if isinstance(helper, _BuiltinHelper):
            self._helpers[helper_id] = (<_BuiltinHelper>helper).fn
            self._py_helpers.pop(helper_id, None)
        elif callable(helper):
            self._helpers[helper_id] = _h_python
            self._py_helpers[helper_id] = helper
        else:
            raise TypeError(f"helper {helper_id} must be a builtin name or a callable, "
                            f"not {type(helper).__name__}")
        self._pc.py_helpers = bool(self._py_helpers)

    cdef uint64_t _call_python_helper(self, Vm* vm, uint64_t a, uint64_t b, uint64_t c,
                                      uint64_t d, uint64_t e):
        cdef HelperMemory mem = HelperMemory.__new__(HelperMemory)
        mem._vm = vm
        try:
            return self._py_helpers[vm.helper_id](mem, a, b, c, d, e) & 0xffffffffffffffff
        except BaseException as exc:
            self._py_error = exc
            vm.status = STATUS_PY_ERROR
            return 0
        finally:
            mem._vm = NULL

    def disassemble(self, pc=None):
        """The program's listing (kernel syntax; with line info, each C line before the
        instructions it produced), or one instruction's text."""
        if pc is not None:
            return self._insn_text(pc)
        if self.line_info:
            from .btf.ext import interleave
            return interleave({k: self._insn_text(k) for k in range(self._n)
                               if self._code[k].op != OP_LDDW_TAIL}, self.line_info)
        return "\n".join(f"{k:5d}: {self._insn_text(k)}" for k in range(self._n)
                         if self._code[k].op != OP_LDDW_TAIL)

    def source(self, pc):
        """The line info record (``pyebpf.btf.ext.LineInfo``: file_name, line, column,
        source_line) in effect at instruction ``pc``, or None without line info."""
        import bisect
        k = bisect.bisect_right(self._line_pcs, pc) - 1
        return self.line_info[k] if k >= 0 else None

    def _insn_text(self, pc):
        if pc >= self._n:
            return "<end of program>"
        text = self._listing[pc]
        if text is None:
            from .asm import disassemble_one
            text = self._listing[pc] = disassemble_one(self.insns[pc * 8:pc * 8 + 16], pc=pc)
        return text

    def run(self, data=None, *, budget=None, bint trace=False, **fields):
        """Run once and return a :class:`Result`.

        Raw mode: ``data`` is the memory r1 points at (a writable copy is made).
        Skb program types: ``data`` is an Ethernet frame (bytes, bytearray or a scapy
        packet whose first layer is ``Ether``; another first layer is a ValueError) and
        ``fields`` set the packet's metadata (see :data:`SKB_FIELDS`).  Without
        ``ktime``, bpf_ktime_get_ns reads the process's clock (:data:`KTIME_START`,
        advancing between runs; docs/clock.md).

        KPROBE programs take no ``data``: ``regs=`` gives their ``struct pt_regs`` (a dict
        of register names or the struct's bytes), ``machine=`` the modelled machine (a
        :class:`pyebpf.trace.Machine`); the other arguments they take are listed in
        :data:`TRACE_FIELDS`.  ``retval`` is the u32 the kernel's trace_call_bpf sees.

        Raises an :class:`~pyebpf.errors.ExecutionError` subclass when the program
        faults, runs past its budget or calls a helper that is not available.
        """
        cdef Vm vm
        cdef Skb skb
        cdef bytes mem = b""
        cdef bytes src
        cdef Py_ssize_t size = 0
        cdef uint64_t limit = self.budget if budget is None else budget
        cdef Result res
        cdef bint typed = self.prog_type is not None
        cdef bint own_clock = False
        cdef _World world = None       # a tracing run's machine: alive until the run ends
        global _ktime_clock

        if self.env is not None and typed and "env" not in fields:
            fields["env"] = self.env
        if _run_hook is not None:
            return _run_hook(self, data, budget, trace, fields)
        if _pin_hook is not None:
            # pinned maps: the run is one transaction on their pin files (docs/pinning.md)
            txn = _pin_hook(self)
            if txn is not None:
                with txn:
                    return self.run(data, budget=budget, trace=trace, **fields)
        vm_begin(&vm, limit, self.tail_call_limit, self.profile == "4.6")
        skb.head, skb.clones, skb.clone_buf, skb.printk = NULL, NULL, NULL, NULL
        skb.devices = NULL

        try:
            if self._kprobe:
                world = trace_begin(&vm, &skb, data, fields, _PROFILES[self.profile], self.arch)
                if "ktime" not in fields:
                    skb.ktime, own_clock = _ktime_clock, True
            elif typed:
                _require_frame(data, self.prog_type)
                skb_init(&skb, data, fields, self.prog_type, _PROFILES[self.profile])
                if "ktime" not in fields:   # set here, not as a field: skb_init's fast path
                    skb.ktime, own_clock = _ktime_clock, True
                vm_attach_skb(&vm, &skb, self._is_tc)
            else:
                if fields:
                    raise TypeError(f"run() got packet fields ({', '.join(fields)}) but "
                                    "this program has no skb context (prog_type=None)")
                if data is not None:
                    src = data if type(data) is bytes else bytes(data)
                    size = len(src)
                    # A fresh object the program may write to.  Passing NULL matters:
                    # CPython shares cached objects for 1-byte strings given their contents.
                    mem = PyBytes_FromStringAndSize(NULL, size)
                    memcpy(PyBytes_AS_STRING(mem), <const char*>src, size)
                vm_attach_memory(&vm, <uint8_t*>PyBytes_AS_STRING(mem), size)
            if trace or self._pc.py_helpers:
                vm_run(&vm, &self._pc, trace)
            else:
                with nogil:
                    vm_run(&vm, &self._pc, False)
            if vm.status != STATUS_EXIT:
                raise vm_fault(&vm, limit)
            res = Result.__new__(Result)
            res.insn_count = limit - <uint64_t>vm.budget_left
            res.clones = _NO_CLONES
            if self._kprobe:
                res.retval = <uint32_t>vm.reg[0]
                res.trace_output = _printk_lines(&skb)
            elif typed:
                self._skb_result(res, &skb, vm.reg[0])
                res._input = data
            else:
                res.retval = vm.reg[0]
                res.data = mem
            if trace:
                res.trace = self._make_trace(&vm)
            return res
        finally:
            vm_end(&vm)
            if typed:
                if own_clock:
                    # time passed while the program read the clock (ktime_step per call)
                    _ktime_clock = max(skb.ktime, _ktime_clock) + KTIME_RUN_GAP
                skb_free(&skb)

    cdef _skb_result(self, Result res, Skb* skb, uint64_t r0):
        cdef bytes out
        cdef uint32_t keep
        cdef size_t k
        res._has_skb = True
        res._is_tc = self._is_tc
        res.data_out = PyBytes_FromStringAndSize(<char*>skb_data(skb), skb.len)
        if skb.csum_checked:
            res.csum_ok = csum_fold(skb.csum) == csum_fold(skb_csum_now(skb))
        if self._is_tc:
            res.retval = <int32_t>r0
            if skb_wire_len(skb) == skb.len:
                res.data = res.data_out
            else:
                out = PyBytes_FromStringAndSize(NULL, skb_wire_len(skb))
                skb_wire_bytes(skb, <uint8_t*>PyBytes_AS_STRING(out))
                res.data = out
            if skb.redirect_set and <int32_t>r0 == _isa.TC_ACT_REDIRECT:
                res.redirect = (skb.redirect_ifindex, bool(skb.redirect_flags & _isa.BPF_F_INGRESS))
        else:
            res.retval = <uint32_t>r0
            keep = skb.len if <uint32_t>r0 > skb.len else <uint32_t>r0
            res.data = res.data_out if keep == skb.len else res.data_out[:keep]
        if skb.nclones:
            res.clones = tuple(
                (skb.clones[k].ifindex, bool(skb.clones[k].flags & _isa.BPF_F_INGRESS),
                 PyBytes_FromStringAndSize(<char*>skb.clone_buf + skb.clones[k].offset,
                                           skb.clones[k].length))
                for k in range(skb.nclones))
        res.trace_output = _printk_lines(skb)
        memcpy(&res._skb, skb, sizeof(Skb))
        # the copy keeps metadata only; the buffers are freed with the run
        res._skb.head = NULL
        res._skb.clones = NULL
        res._skb.clone_buf = NULL
        res._skb.printk = NULL
        res._skb.devices = NULL
        res._skb.net = NULL

    cdef _regions(self, Vm* vm):
        return [(self._region_name(vm.regions[k].name), vm.regions[k].start, vm.regions[k].end,
                 vm.regions[k].writable) for k in range(vm.nregions)]

    def _region_name(self, int name):
        if name < REGION_MAP0:
            return _REGION_NAMES[name]
        if name >= REGION_INNER_MAP:
            return ("inner map", "ring buffer record", "map key")[name - REGION_INNER_MAP]
        m = self.maps[name - REGION_MAP0]
        return f"map {m.name or m.fd}"

    cdef _fault(self, Vm* vm, uint64_t limit):
        cdef uint32_t pc = vm.pc
        text = self._insn_text(pc)
        if vm.status == STATUS_MEM_FAULT:
            region, where = _describe(self._regions(vm), vm.fault_addr, vm.fault_size,
                                      vm.fault_write, <uintptr_t>(vm.stack + STACK_SIZE))
            kind = "write" if vm.fault_write else "read"
            return MemoryFault(f"invalid {kind} of {vm.fault_size} bytes at {where}", pc, text,
                               vm.fault_addr, vm.fault_size, bool(vm.fault_write), region)
        if vm.status == STATUS_CTX_FAULT:
            from .verifier import rules as _rules
            offset = vm.fault_addr - vm.ctx
            field, reason = _rules.access_rule(self.prog_type, self.profile, offset,
                                               vm.fault_size, vm.fault_write, self.arch)
            ctx = "pt_regs" if self._kprobe else "__sk_buff"
            return MemoryFault(f"invalid {ctx} access at offset {offset}: {reason}", pc,
                               text, vm.fault_addr, vm.fault_size, bool(vm.fault_write), ctx)
        if vm.status == STATUS_BUDGET:
            return BudgetExceeded(f"instruction budget of {limit} exhausted (endless loop?); "
                                  "pass budget= to run() to raise it", pc, text)
        if vm.status == STATUS_CALL_DEPTH:
            return CallDepthExceeded(f"call depth exceeds {MAX_FRAMES} frames", pc, text)
        if vm.status == STATUS_UNKNOWN_HELPER:
            call_imm = <int32_t>vm.helper_id     # the call's imm, as the instruction has it
            name = (_isa.HELPER_NAMES[call_imm] if 0 <= call_imm < len(_isa.HELPER_NAMES)
                    else None)
            label = f"helper {call_imm}" + (f" (bpf_{name})" if name else "")
            return UnknownHelper(f"{label} is not available to this program", pc, text)
        if vm.status == STATUS_HELPER_FAULT:
            hid = vm.helper_id
            if self._code[pc].op == OP_CALL_KFUNC:
                name = _isa.KFUNC_NAMES[hid]
            else:
                name = "bpf_" + (_isa.HELPER_NAMES[hid] if hid < len(_isa.HELPER_NAMES)
                                 else str(hid))
            return ExecutionError(f"{name}: {(<bytes>vm.fault_msg).decode()}", pc, text)
        if vm.status == STATUS_PY_ERROR:
            exc, self._py_error = self._py_error, None
            err = ExecutionError(f"helper {vm.helper_id} raised {type(exc).__name__}: {exc}",
                                 pc, text)
            err.__cause__ = exc
            return err
        return ExecutionError("invalid instruction reached", pc, text)

    cdef _make_trace(self, Vm* vm):
        regions = self._regions(vm)
        # the stack region at exit is one frame; name accesses against the full stack
        regions[0] = ("stack", <uintptr_t>vm.stack, <uintptr_t>(vm.stack + STACK_SIZE), True)
        if vm.skb != NULL and vm.world == NULL:    # a tracing context is a region already
            regions.append(("__sk_buff", vm.ctx, vm.ctx + CTX_SIZE, True))
        top = <uintptr_t>(vm.stack + STACK_SIZE)
        steps = [(vm.steps[k].pc, tuple(vm.steps[k].regs[j] for j in range(11)))
                 for k in range(vm.nsteps)]
        accesses = []
        for k in range(vm.naccesses):
            a = &vm.accesses[k]
            name, offset = _locate(regions, a.addr, top)
            accesses.append((a.step, a.pc, "w" if a.write else "r", name, offset, a.size))
        return Trace(steps, accesses, self._insn_text, self.source)


def _locate(regions, addr, stack_top):
    """(region name, offset) for an address; stack offsets are relative to r10 of frame 0."""
    for name, start, end, _ in regions:
        if start <= addr < end:
            return (name, addr - stack_top) if name == "stack" else (name, addr - start)
    return ("?", addr)


def _describe(regions, addr, size, write, stack_top):
    """(nearest region name or "", where a faulting access lies relative to it)."""
    best = None
    for name, start, end, writable in regions:
        if start <= addr and addr + size <= end:
            if write and not writable:
                return name, f"{name}: the region is read-only"
            continue
        if addr < start:
            dist, rel = start - addr, f"{start - addr} bytes before the start of {name}"
        elif addr >= end:
            dist, rel = addr - end, f"{addr + size - end} bytes past the end of {name}"
        else:
            dist, rel = 0, f"{addr + size - end} bytes past the end of {name}"
        if name == "stack":
            rel += f" (r10{addr - stack_top:+d})"
        if best is None or dist < best[0]:
            best = (dist, rel, name, end - start)
    if best is None or best[0] > 1 << 20:
        spans = ", ".join(f"{n} ({e - s} bytes)" for n, s, e, _ in regions)
        return "", f"{addr:#x}, which is in no region (regions: {spans})"
    return best[2], f"{best[2]}: {best[1]} (the region holds {best[3]} bytes)"
