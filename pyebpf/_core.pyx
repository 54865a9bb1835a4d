# cython: language_level=3
"""The interpreter: decoded programs, the C execution loop, memory regions, helpers.

A :class:`Program` decodes its instructions once into a C array of fixed-width
``Insn`` structs (internal op ids from ``isa``, jump targets made absolute, lddw folded
into one 64-bit immediate).  ``run`` executes them in a ``nogil`` loop (threaded dispatch
where the compiler allows, else one switch; the budget charged per basic block); every
load and store is checked against the run's regions, context loads the verifier proved
read their field directly (docs/core.md); a fault stops the run and
raises a :mod:`pyebpf.errors` exception naming the pc, the instruction, the address
and the region.
"""
cimport cython
from cpython.buffer cimport PyBuffer_FillInfo
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.exc cimport PyErr_CheckSignals
from cpython.object cimport PyObject, PyTypeObject, destructor
from libc.string cimport memcmp
from libc.stdint cimport (int8_t, intptr_t, int16_t, int32_t, int64_t, uint8_t, uint16_t,
                          uint32_t, uint64_t, uintptr_t)
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memcpy, memmove, memset
from posix.unistd cimport sysconf, _SC_PAGESIZE

import array as _array
import operator as _operator
import os as _os

from . import isa as _isa
from .host import map_cpus
from . import verifier as _verifier
from .verifier.state import PTR_TO_BTF_ID as _PTR_TO_BTF_ID, PTR_TO_CTX as _PTR_TO_CTX
from .verifier import state as _vstate
from .verifier.globalfuncs import exception_cb_pc
from .errors import (BpfError, BudgetExceeded, CallDepthExceeded, ExecutionError,
                     HelperAccessError, PacketError,
                     LoadError, MapError, MemoryFault, PinError, UnknownHelper)

DEFAULT_BUDGET = 1_000_000

cdef bint _grow(void** buf, size_t* cap, size_t n, size_t item) noexcept nogil:
    cdef size_t new_cap
    cdef void* p
    if n < cap[0]:
        return True
    new_cap = cap[0] * 2 if cap[0] else 256
    while new_cap <= n:         # n may be past twice the room: grow until it fits
        new_cap *= 2
    p = realloc(buf[0], new_cap * item)
    if p == NULL:
        return False
    buf[0] = p
    cap[0] = new_cap
    return True


include "skbuff.pxi"

# --- memory ------------------------------------------------------------------------

cdef uint8_t* _fault_mem(Vm* vm, uint64_t addr, uint32_t size, bint write) noexcept nogil:
    cdef uint8_t* p = vm_arena_mem(vm, addr, size, write) if vm.nmaps else NULL
    if p != NULL:
        return p
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

# The loop comes in five builds.  _Threaded and _Switched charge the budget once per
# block (_block_lengths) and differ only in dispatch: threaded code where the
# compiler has labels-as-values (pyebpf/_dispatch.h), else the same switch as
# _Switched.  _Counted charges every instruction: it runs the last block of a run whose
# budget cannot cover it, so the budget runs out at the same instruction as it would
# counted one by one.  _Trace and _Cov (tracing, coverage) also count per instruction.
cdef struct _Threaded:
    char unused
cdef struct _Switched:
    char unused
cdef struct _Counted:
    char unused
cdef struct _Trace:
    char unused
cdef struct _Cov:
    char unused
ctypedef fused TraceMode:
    _Threaded
    _Switched
    _Counted
    _Trace
    _Cov

cdef extern from "_dispatch.h":
    int PYEBPF_COMPUTED_GOTO
    int PYEBPF_NO_COMPUTED_GOTO_SET
    void _label "PYEBPF_LABEL" (int op) nogil
    void _label_default "PYEBPF_LABEL_DEFAULT" () nogil
    # a case variant's label: d (_d), s (_s) or both (_ds) read from acc
    void _label_acc_d "PYEBPF_LABEL_ACC_D" (int op) nogil
    void _label_acc_s "PYEBPF_LABEL_ACC_S" (int op) nogil
    void _label_acc_ds "PYEBPF_LABEL_ACC_DS" (int op) nogil
    # a mov's slot running the next slot's op too (isa.fused_ops): the mov's source
    # read from r[] (_m) or from acc (_ms); the label is the second op's
    void _label_acc_m "PYEBPF_LABEL_ACC_M" (int op) nogil
    void _label_acc_ms "PYEBPF_LABEL_ACC_MS" (int op) nogil
    # variants reading acc2 (the result before acc's): dst (_p), dst with src from acc
    # (_ps), src (_q), src with dst from acc (_dq)
    void _label_acc_p "PYEBPF_LABEL_ACC_P" (int op) nogil
    void _label_acc_ps "PYEBPF_LABEL_ACC_PS" (int op) nogil
    void _label_acc_q "PYEBPF_LABEL_ACC_Q" (int op) nogil
    void _label_acc_dq "PYEBPF_LABEL_ACC_DQ" (int op) nogil
    const void* const (*pyebpf_acc_table)[256]
    void _dispatch_table "PYEBPF_TABLE" () nogil
    # the table's address into pyebpf_case_table (the threaded loop called without a VM)
    void _export_table "PYEBPF_EXPORT_TABLE" () nogil
    const void* const* pyebpf_case_table
    # a macro: points ``i`` at the instruction at pc and jumps to its case (ProgCore.cases,
    # found from ``i`` by the distance ``cases``), whose label reads the operands
    # (d, s, imm) the case uses; ``op`` is not set (a case reads its own op from ``i``)
    void _next "PYEBPF_NEXT" (const Insn* insns, uint32_t pc, const Insn* i,
                              intptr_t cases) nogil
    # the same for a case that left pc alone: ``i`` steps to the next slot, pc is not
    # kept (a case that reads pc sets it from ``i`` first)
    void _step "PYEBPF_STEP" (const Insn* i, intptr_t cases) nogil

# True where the interpreter was built with threaded dispatch (GCC, Clang).
COMPUTED_GOTO = bool(PYEBPF_COMPUTED_GOTO)
# True where the build defined PYEBPF_NO_COMPUTED_GOTO (the switch alone, by request).
NO_COMPUTED_GOTO = bool(PYEBPF_NO_COMPUTED_GOTO_SET)
# Plain runs use the threaded loop unless _set_dispatch("switch") (tests run both).
cdef bint _use_switch = False


def _set_dispatch(str kind):
    """Run plain runs with ``"threaded"`` dispatch (the default; the switch where the
    compiler has no labels-as-values) or the portable ``"switch"``."""
    global _use_switch
    if kind not in ("threaded", "switch"):
        raise ValueError(f"dispatch {kind!r}: 'threaded' or 'switch'")
    _use_switch = kind == "switch"


# A growing run stops granting once frame entries have added this much, so that
# budget_left (at most a default budget plus what was granted) cannot overflow.
cdef int64_t GRANT_CAP = <int64_t>1 << 62


cdef inline void _grant(Vm* vm, int64_t* left) noexcept nogil:
    """A frame is entered with a fresh may_goto counter (the kernel sets one in every
    subprogram's prologue: do_misc_fixups), so a run on the default budget gets room for
    that counter's passes again: ``left`` grows by vm.grant (ProgCore.frame_grant)."""
    left[0] += vm.grant
    vm.granted += <uint64_t>vm.grant
    if vm.granted >= <uint64_t>GRANT_CAP:
        vm.grant = 0


cdef inline uint32_t _leave_frame(Vm* vm, uint64_t* r) noexcept nogil:
    """Return from a bpf-to-bpf frame: the caller's r6-r9, r10 and stack region back;
    the pc it returns to (CALLBACK_RETURN: no pc of this code)."""
    vm.depth -= 1
    cdef Frame* f = &vm.frames[vm.depth]
    memcpy(&r[6], f.saved, sizeof(f.saved))
    r[10] += FRAME_SIZE
    vm.regions[0].start += FRAME_SIZE
    return f.ret_pc


cdef inline bint _return_from_frame(Vm* vm, uint64_t* r, uint32_t* pc) noexcept nogil:
    """Return r0 from the running function, as EXIT does (and a failed LD_ABS/LD_IND,
    whose bpf_gen_ld_abs exit is one): True when that ends the run (frame 0's return
    sets STATUS_EXIT, a callback's STATUS_CALLBACK_DONE), else the caller's frame is back
    and ``pc`` is where it goes on."""
    if vm.depth == 0:
        vm.status = STATUS_EXIT
        return True
    pc[0] = _leave_frame(vm, r)
    if pc[0] == CALLBACK_RETURN:
        vm.status = STATUS_CALLBACK_DONE
        return True
    return False


cdef inline bint _short(int64_t* left, const uint32_t* blocks, uint32_t pc) noexcept nogil:
    """Charge the block entered at pc; True (nothing charged) if the budget cannot cover it."""
    if unlikely(left[0] < <int64_t>blocks[pc]):
        return True
    left[0] -= blocks[pc]
    return False


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
    """Run vm.prog from vm.pc; the threaded loop called with no VM only exports its
    label table (pyebpf_case_table), which Program fills its ProgCore.cases from."""
    cdef uint64_t r[11]
    cdef const Insn* insns
    cdef uint32_t pc
    cdef const Insn* i
    cdef int64_t left
    cdef uint8_t op, d, s
    cdef uint64_t imm, a, b, old
    # the last ALU or load case's result, and the one before it: its variants'
    # operands (Program._fill_cases)
    cdef uint64_t acc = 0
    cdef uint64_t acc2 = 0
    cdef uint32_t w, v
    cdef uint8_t* p
    cdef helper_fn fn
    cdef Frame* f
    cdef uint64_t* cov = NULL
    cdef uint32_t n_insns = 0
    cdef const uint32_t* blocks
    # direct threading: slot i's case address is at (i >> 1) + cases (PYEBPF_GOTO_CASE)
    cdef intptr_t cases = 0
    _dispatch_table()
    if TraceMode is _Threaded:
        if vm == NULL:
            _export_table()
            return
        cases = <intptr_t>vm.prog.cases - <intptr_t>(<uintptr_t>vm.insns >> 1)
        if vm.pc > 0 and _OP_DECODE[vm.insns[vm.pc - 1].op] & DECODE_ACC:
            # resumed inside a block, just after a case that leaves acc (the JIT's
            # hand-over): the variants after it read acc and acc2, which no case of this
            # loop has set; the switch runs the plain cases alone
            _interp(vm, <_Switched*>NULL)
            return
    insns = vm.insns
    pc = vm.pc
    i = &insns[pc]
    left = vm.budget_left
    blocks = vm.prog.blocks
    if TraceMode is _Cov or TraceMode is _Trace:
        cov = vm.prog.cov
        n_insns = vm.prog.n
    memcpy(r, vm.reg, sizeof(r))
    if TraceMode is _Threaded or TraceMode is _Switched:
        if _short(&left, blocks, pc):
            _budget_short(vm, r, pc, left, pc)
            return

    while True:
        if TraceMode is not _Threaded and TraceMode is not _Switched:
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
            _label(OP_LDDW)
            r[d] = imm
            pc = <uint32_t>(i - insns) + 2
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
        # --- generated by pyebpf.isa.interp_cases(): a build rewrites it ---
        elif op == OP_ADD64_K:
            _label(OP_ADD64_K)
            acc2, acc = acc, r[d] + imm
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_ADD64_X:
            _label(OP_ADD64_X)
            acc2, acc = acc, r[d] + r[s]
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_SUB64_K:
            _label(OP_SUB64_K)
            acc2, acc = acc, r[d] - imm
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_SUB64_X:
            _label(OP_SUB64_X)
            acc2, acc = acc, r[d] - r[s]
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_MUL64_K:
            _label(OP_MUL64_K)
            acc2, acc = acc, r[d] * imm
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_MUL64_X:
            _label(OP_MUL64_X)
            acc2, acc = acc, r[d] * r[s]
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_DIV64_K:
            _label(OP_DIV64_K)
            if imm:
                r[d] = r[d] / imm
            elif vm.div0_abort:
                r[0] = 0
                vm.status = STATUS_EXIT
                break
            else:
                r[d] = 0
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_DIV64_X:
            _label(OP_DIV64_X)
            if r[s]:
                r[d] = r[d] / r[s]
            elif vm.div0_abort:
                r[0] = 0
                vm.status = STATUS_EXIT
                break
            else:
                r[d] = 0
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_OR64_K:
            _label(OP_OR64_K)
            acc2, acc = acc, r[d] | imm
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_OR64_X:
            _label(OP_OR64_X)
            acc2, acc = acc, r[d] | r[s]
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_AND64_K:
            _label(OP_AND64_K)
            acc2, acc = acc, r[d] & imm
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_AND64_X:
            _label(OP_AND64_X)
            acc2, acc = acc, r[d] & r[s]
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_LSH64_K:
            _label(OP_LSH64_K)
            acc2, acc = acc, r[d] << (imm & 63)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_LSH64_X:
            _label(OP_LSH64_X)
            acc2, acc = acc, r[d] << (r[s] & 63)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_RSH64_K:
            _label(OP_RSH64_K)
            acc2, acc = acc, r[d] >> (imm & 63)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_RSH64_X:
            _label(OP_RSH64_X)
            acc2, acc = acc, r[d] >> (r[s] & 63)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_MOD64_K:
            _label(OP_MOD64_K)
            if imm:
                r[d] = r[d] % imm
            elif vm.div0_abort:
                r[0] = 0
                vm.status = STATUS_EXIT
                break
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_MOD64_X:
            _label(OP_MOD64_X)
            if r[s]:
                r[d] = r[d] % r[s]
            elif vm.div0_abort:
                r[0] = 0
                vm.status = STATUS_EXIT
                break
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_XOR64_K:
            _label(OP_XOR64_K)
            acc2, acc = acc, r[d] ^ imm
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_XOR64_X:
            _label(OP_XOR64_X)
            acc2, acc = acc, r[d] ^ r[s]
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_MOV64_K:
            _label(OP_MOV64_K)
            acc2, acc = acc, imm
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_MOV64_X:
            _label(OP_MOV64_X)
            acc2, acc = acc, r[s]
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_ARSH64_K:
            _label(OP_ARSH64_K)
            acc2, acc = acc, <uint64_t>(<int64_t>r[d] >> (imm & 63))
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_ARSH64_X:
            _label(OP_ARSH64_X)
            acc2, acc = acc, <uint64_t>(<int64_t>r[d] >> (r[s] & 63))
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_SDIV64_K:
            _label(OP_SDIV64_K)
            if imm == 0:
                r[d] = 0
            elif imm == <uint64_t>-1:
                r[d] = 0 - r[d]
            else:
                r[d] = <uint64_t>(<int64_t>r[d] / <int64_t>imm)
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_SDIV64_X:
            _label(OP_SDIV64_X)
            if r[s] == 0:
                r[d] = 0
            elif r[s] == <uint64_t>-1:
                r[d] = 0 - r[d]
            else:
                r[d] = <uint64_t>(<int64_t>r[d] / <int64_t>r[s])
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_SMOD64_K:
            _label(OP_SMOD64_K)
            if imm == <uint64_t>-1:
                r[d] = 0
            elif imm:
                r[d] = <uint64_t>(<int64_t>r[d] % <int64_t>imm)
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_SMOD64_X:
            _label(OP_SMOD64_X)
            if r[s] == <uint64_t>-1:
                r[d] = 0
            elif r[s]:
                r[d] = <uint64_t>(<int64_t>r[d] % <int64_t>r[s])
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_NEG64:
            _label(OP_NEG64)
            r[d] = 0 - r[d]
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_ADD32_K:
            _label(OP_ADD32_K)
            acc2, acc = acc, <uint32_t>(<uint32_t>r[d] + <uint32_t>imm)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_ADD32_X:
            _label(OP_ADD32_X)
            acc2, acc = acc, <uint32_t>(<uint32_t>r[d] + <uint32_t>r[s])
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_SUB32_K:
            _label(OP_SUB32_K)
            acc2, acc = acc, <uint32_t>(<uint32_t>r[d] - <uint32_t>imm)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_SUB32_X:
            _label(OP_SUB32_X)
            acc2, acc = acc, <uint32_t>(<uint32_t>r[d] - <uint32_t>r[s])
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_MUL32_K:
            _label(OP_MUL32_K)
            acc2, acc = acc, <uint32_t>(<uint32_t>r[d] * <uint32_t>imm)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_MUL32_X:
            _label(OP_MUL32_X)
            acc2, acc = acc, <uint32_t>(<uint32_t>r[d] * <uint32_t>r[s])
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_DIV32_K:
            _label(OP_DIV32_K)
            if <uint32_t>imm:
                r[d] = <uint32_t>r[d] / <uint32_t>imm
            elif vm.div0_abort:
                r[0] = 0
                vm.status = STATUS_EXIT
                break
            else:
                r[d] = 0
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_DIV32_X:
            _label(OP_DIV32_X)
            if <uint32_t>r[s]:
                r[d] = <uint32_t>r[d] / <uint32_t>r[s]
            elif vm.div0_abort:
                r[0] = 0
                vm.status = STATUS_EXIT
                break
            else:
                r[d] = 0
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_OR32_K:
            _label(OP_OR32_K)
            acc2, acc = acc, <uint32_t>(<uint32_t>r[d] | <uint32_t>imm)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_OR32_X:
            _label(OP_OR32_X)
            acc2, acc = acc, <uint32_t>(<uint32_t>r[d] | <uint32_t>r[s])
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_AND32_K:
            _label(OP_AND32_K)
            acc2, acc = acc, <uint32_t>(<uint32_t>r[d] & <uint32_t>imm)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_AND32_X:
            _label(OP_AND32_X)
            acc2, acc = acc, <uint32_t>(<uint32_t>r[d] & <uint32_t>r[s])
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_LSH32_K:
            _label(OP_LSH32_K)
            acc2, acc = acc, <uint32_t>(<uint32_t>r[d] << (imm & 31))
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_LSH32_X:
            _label(OP_LSH32_X)
            acc2, acc = acc, <uint32_t>(<uint32_t>r[d] << (r[s] & 31))
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_RSH32_K:
            _label(OP_RSH32_K)
            acc2, acc = acc, <uint32_t>r[d] >> (imm & 31)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_RSH32_X:
            _label(OP_RSH32_X)
            acc2, acc = acc, <uint32_t>r[d] >> (r[s] & 31)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_MOD32_K:
            _label(OP_MOD32_K)
            if <uint32_t>imm:
                r[d] = <uint32_t>r[d] % <uint32_t>imm
            elif vm.div0_abort:
                r[0] = 0
                vm.status = STATUS_EXIT
                break
            else:
                r[d] = <uint32_t>r[d]
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_MOD32_X:
            _label(OP_MOD32_X)
            if <uint32_t>r[s]:
                r[d] = <uint32_t>r[d] % <uint32_t>r[s]
            elif vm.div0_abort:
                r[0] = 0
                vm.status = STATUS_EXIT
                break
            else:
                r[d] = <uint32_t>r[d]
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_XOR32_K:
            _label(OP_XOR32_K)
            acc2, acc = acc, <uint32_t>(<uint32_t>r[d] ^ <uint32_t>imm)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_XOR32_X:
            _label(OP_XOR32_X)
            acc2, acc = acc, <uint32_t>(<uint32_t>r[d] ^ <uint32_t>r[s])
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_MOV32_K:
            _label(OP_MOV32_K)
            acc2, acc = acc, <uint32_t>imm
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_MOV32_X:
            _label(OP_MOV32_X)
            acc2, acc = acc, <uint32_t>r[s]
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_ARSH32_K:
            _label(OP_ARSH32_K)
            acc2, acc = acc, <uint32_t>(<int32_t>r[d] >> (imm & 31))
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_ARSH32_X:
            _label(OP_ARSH32_X)
            acc2, acc = acc, <uint32_t>(<int32_t>r[d] >> (r[s] & 31))
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_SDIV32_K:
            _label(OP_SDIV32_K)
            if <uint32_t>imm == 0:
                r[d] = 0
            elif <uint32_t>imm == <uint32_t>-1:
                r[d] = <uint32_t>(0 - <uint32_t>r[d])
            else:
                r[d] = <uint32_t>(<int32_t>r[d] / <int32_t>imm)
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_SDIV32_X:
            _label(OP_SDIV32_X)
            if <uint32_t>r[s] == 0:
                r[d] = 0
            elif <uint32_t>r[s] == <uint32_t>-1:
                r[d] = <uint32_t>(0 - <uint32_t>r[d])
            else:
                r[d] = <uint32_t>(<int32_t>r[d] / <int32_t>r[s])
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_SMOD32_K:
            _label(OP_SMOD32_K)
            if <uint32_t>imm == <uint32_t>-1:
                r[d] = 0
            elif <uint32_t>imm:
                r[d] = <uint32_t>(<int32_t>r[d] % <int32_t>imm)
            else:
                r[d] = <uint32_t>r[d]
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_SMOD32_X:
            _label(OP_SMOD32_X)
            if <uint32_t>r[s] == <uint32_t>-1:
                r[d] = 0
            elif <uint32_t>r[s]:
                r[d] = <uint32_t>(<int32_t>r[d] % <int32_t>r[s])
            else:
                r[d] = <uint32_t>r[d]
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_NEG32:
            _label(OP_NEG32)
            r[d] = <uint32_t>(0 - <uint32_t>r[d])
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_MOVSX8_64:
            _label(OP_MOVSX8_64)
            r[d] = <uint64_t><int64_t><int8_t>r[s]
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_MOVSX16_64:
            _label(OP_MOVSX16_64)
            r[d] = <uint64_t><int64_t><int16_t>r[s]
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_MOVSX32_64:
            _label(OP_MOVSX32_64)
            r[d] = <uint64_t><int64_t><int32_t>r[s]
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_ADDR_SPACE_CAST:
            _label(OP_ADDR_SPACE_CAST)
            if imm and <uint32_t>r[s]:
                r[d] = (imm & <uint64_t>0xFFFFFFFF00000000) | <uint32_t>r[s]
            else:
                r[d] = <uint32_t>r[s]
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_MOVSX8_32:
            _label(OP_MOVSX8_32)
            r[d] = <uint32_t><int32_t><int8_t>r[s]
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_MOVSX16_32:
            _label(OP_MOVSX16_32)
            r[d] = <uint32_t><int32_t><int16_t>r[s]
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_LE16:
            _label(OP_LE16)
            r[d] = <uint16_t>r[d]
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_BE16:
            _label(OP_BE16)
            r[d] = bswap16(<uint16_t>r[d])
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_BSWAP16:
            _label(OP_BSWAP16)
            r[d] = bswap16(<uint16_t>r[d])
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_LE32:
            _label(OP_LE32)
            r[d] = <uint32_t>r[d]
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_BE32:
            _label(OP_BE32)
            r[d] = bswap32(<uint32_t>r[d])
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_BSWAP32:
            _label(OP_BSWAP32)
            r[d] = bswap32(<uint32_t>r[d])
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_LE64:
            _label(OP_LE64)
            pass
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_BE64:
            _label(OP_BE64)
            r[d] = bswap64(<uint64_t>r[d])
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_BSWAP64:
            _label(OP_BSWAP64)
            r[d] = bswap64(<uint64_t>r[d])
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_LDX8:
            _label(OP_LDX8)
            a = r[s] + <uint64_t><int64_t>i.off
            if imm != 0 and imm <= <uint64_t>vm.nregions and _within(&vm.regions[imm - 1], a, 1):
                p = <uint8_t*><uintptr_t>a
            else:
                p = _mem(vm, a, 1, ACCESS_READ)
            if p != NULL:
                acc2, acc = acc, _load(p, 1)
                r[d] = acc
            elif not ctx_load(vm, a, 1, &r[d]):
                break
            else:
                acc2, acc = acc, r[d]
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_ST8:
            _label(OP_ST8)
            a = r[d] + <uint64_t><int64_t>i.off
            p = _mem(vm, a, 1, ACCESS_WRITE)
            if p != NULL:
                _store(p, 1, imm)
            elif not ctx_store(vm, a, 1, imm):
                break
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_STX8:
            _label(OP_STX8)
            a = r[d] + <uint64_t><int64_t>i.off
            p = _mem(vm, a, 1, ACCESS_WRITE)
            if p != NULL:
                _store(p, 1, r[s])
            elif not ctx_store(vm, a, 1, r[s]):
                break
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_LDX16:
            _label(OP_LDX16)
            a = r[s] + <uint64_t><int64_t>i.off
            if imm != 0 and imm <= <uint64_t>vm.nregions and _within(&vm.regions[imm - 1], a, 2):
                p = <uint8_t*><uintptr_t>a
            else:
                p = _mem(vm, a, 2, ACCESS_READ)
            if p != NULL:
                acc2, acc = acc, _load(p, 2)
                r[d] = acc
            elif not ctx_load(vm, a, 2, &r[d]):
                break
            else:
                acc2, acc = acc, r[d]
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_ST16:
            _label(OP_ST16)
            a = r[d] + <uint64_t><int64_t>i.off
            p = _mem(vm, a, 2, ACCESS_WRITE)
            if p != NULL:
                _store(p, 2, imm)
            elif not ctx_store(vm, a, 2, imm):
                break
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_STX16:
            _label(OP_STX16)
            a = r[d] + <uint64_t><int64_t>i.off
            p = _mem(vm, a, 2, ACCESS_WRITE)
            if p != NULL:
                _store(p, 2, r[s])
            elif not ctx_store(vm, a, 2, r[s]):
                break
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_LDX32:
            _label(OP_LDX32)
            a = r[s] + <uint64_t><int64_t>i.off
            if imm != 0 and imm <= <uint64_t>vm.nregions and _within(&vm.regions[imm - 1], a, 4):
                p = <uint8_t*><uintptr_t>a
            else:
                p = _mem(vm, a, 4, ACCESS_READ)
            if p != NULL:
                acc2, acc = acc, _load(p, 4)
                r[d] = acc
            elif not ctx_load(vm, a, 4, &r[d]):
                break
            else:
                acc2, acc = acc, r[d]
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_ST32:
            _label(OP_ST32)
            a = r[d] + <uint64_t><int64_t>i.off
            p = _mem(vm, a, 4, ACCESS_WRITE)
            if p != NULL:
                _store(p, 4, imm)
            elif not ctx_store(vm, a, 4, imm):
                break
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_STX32:
            _label(OP_STX32)
            a = r[d] + <uint64_t><int64_t>i.off
            p = _mem(vm, a, 4, ACCESS_WRITE)
            if p != NULL:
                _store(p, 4, r[s])
            elif not ctx_store(vm, a, 4, r[s]):
                break
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_LDX64:
            _label(OP_LDX64)
            a = r[s] + <uint64_t><int64_t>i.off
            if imm != 0 and imm <= <uint64_t>vm.nregions and _within(&vm.regions[imm - 1], a, 8):
                p = <uint8_t*><uintptr_t>a
            else:
                p = _mem(vm, a, 8, ACCESS_READ)
            if p != NULL:
                acc2, acc = acc, _load(p, 8)
                r[d] = acc
            elif not ctx_load(vm, a, 8, &r[d]):
                break
            else:
                acc2, acc = acc, r[d]
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_ST64:
            _label(OP_ST64)
            a = r[d] + <uint64_t><int64_t>i.off
            p = _mem(vm, a, 8, ACCESS_WRITE)
            if p != NULL:
                _store(p, 8, imm)
            elif not ctx_store(vm, a, 8, imm):
                break
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_STX64:
            _label(OP_STX64)
            a = r[d] + <uint64_t><int64_t>i.off
            p = _mem(vm, a, 8, ACCESS_WRITE)
            if p != NULL:
                _store(p, 8, r[s])
            elif not ctx_store(vm, a, 8, r[s]):
                break
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_LDXS8:
            _label(OP_LDXS8)
            a = r[s] + <uint64_t><int64_t>i.off
            p = _mem(vm, a, 1, ACCESS_READ)
            if p != NULL:
                r[d] = _sext(_load(p, 1), 1)
            elif ctx_load(vm, a, 1, &r[d]):
                r[d] = _sext(r[d], 1)
            else:
                break
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_LDXS16:
            _label(OP_LDXS16)
            a = r[s] + <uint64_t><int64_t>i.off
            p = _mem(vm, a, 2, ACCESS_READ)
            if p != NULL:
                r[d] = _sext(_load(p, 2), 2)
            elif ctx_load(vm, a, 2, &r[d]):
                r[d] = _sext(r[d], 2)
            else:
                break
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_LDXS32:
            _label(OP_LDXS32)
            a = r[s] + <uint64_t><int64_t>i.off
            p = _mem(vm, a, 4, ACCESS_READ)
            if p != NULL:
                r[d] = _sext(_load(p, 4), 4)
            elif ctx_load(vm, a, 4, &r[d]):
                r[d] = _sext(r[d], 4)
            else:
                break
            if TraceMode is _Threaded: _step(i, cases)
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
            _label(OP_ATOMIC32_ADD)
            _label(OP_ATOMIC32_OR)
            _label(OP_ATOMIC32_AND)
            _label(OP_ATOMIC32_XOR)
            _label(OP_ATOMIC32_FETCH_ADD)
            _label(OP_ATOMIC32_FETCH_OR)
            _label(OP_ATOMIC32_FETCH_AND)
            _label(OP_ATOMIC32_FETCH_XOR)
            _label(OP_ATOMIC32_XCHG)
            _label(OP_ATOMIC32_CMPXCHG)
            _label(OP_ATOMIC64_ADD)
            _label(OP_ATOMIC64_OR)
            _label(OP_ATOMIC64_AND)
            _label(OP_ATOMIC64_XOR)
            _label(OP_ATOMIC64_FETCH_ADD)
            _label(OP_ATOMIC64_FETCH_OR)
            _label(OP_ATOMIC64_FETCH_AND)
            _label(OP_ATOMIC64_FETCH_XOR)
            _label(OP_ATOMIC64_XCHG)
            _label(OP_ATOMIC64_CMPXCHG)
            p = _mem(vm, r[d] + <uint64_t><int64_t>i.off, i.size, ACCESS_WRITE)
            if p == NULL:
                break
            _atomic(i.op, p, i.size, &r[s], &r[0])
            if TraceMode is _Threaded: _step(i, cases)
        elif op == OP_JEQ64_K:
            _label(OP_JEQ64_K)
            pc = (<uint32_t>i.off if r[d] == imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
        elif op == OP_JEQ64_X:
            _label(OP_JEQ64_X)
            pc = (<uint32_t>i.off if r[d] == r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
        elif op == OP_JGT64_K:
            _label(OP_JGT64_K)
            pc = (<uint32_t>i.off if r[d] > imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
        elif op == OP_JGT64_X:
            _label(OP_JGT64_X)
            pc = (<uint32_t>i.off if r[d] > r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
        elif op == OP_JGE64_K:
            _label(OP_JGE64_K)
            pc = (<uint32_t>i.off if r[d] >= imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
        elif op == OP_JGE64_X:
            _label(OP_JGE64_X)
            pc = (<uint32_t>i.off if r[d] >= r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
        elif op == OP_JSET64_K:
            _label(OP_JSET64_K)
            pc = (<uint32_t>i.off if r[d] & imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
        elif op == OP_JSET64_X:
            _label(OP_JSET64_X)
            pc = (<uint32_t>i.off if r[d] & r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
        elif op == OP_JNE64_K:
            _label(OP_JNE64_K)
            pc = (<uint32_t>i.off if r[d] != imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
        elif op == OP_JNE64_X:
            _label(OP_JNE64_X)
            pc = (<uint32_t>i.off if r[d] != r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
        elif op == OP_JSGT64_K:
            _label(OP_JSGT64_K)
            pc = (<uint32_t>i.off if <int64_t>r[d] > <int64_t>imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
        elif op == OP_JSGT64_X:
            _label(OP_JSGT64_X)
            pc = (<uint32_t>i.off if <int64_t>r[d] > <int64_t>r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
        elif op == OP_JSGE64_K:
            _label(OP_JSGE64_K)
            pc = (<uint32_t>i.off if <int64_t>r[d] >= <int64_t>imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
        elif op == OP_JSGE64_X:
            _label(OP_JSGE64_X)
            pc = (<uint32_t>i.off if <int64_t>r[d] >= <int64_t>r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
        elif op == OP_JLT64_K:
            _label(OP_JLT64_K)
            pc = (<uint32_t>i.off if r[d] < imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
        elif op == OP_JLT64_X:
            _label(OP_JLT64_X)
            pc = (<uint32_t>i.off if r[d] < r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
        elif op == OP_JLE64_K:
            _label(OP_JLE64_K)
            pc = (<uint32_t>i.off if r[d] <= imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
        elif op == OP_JLE64_X:
            _label(OP_JLE64_X)
            pc = (<uint32_t>i.off if r[d] <= r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
        elif op == OP_JSLT64_K:
            _label(OP_JSLT64_K)
            pc = (<uint32_t>i.off if <int64_t>r[d] < <int64_t>imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
        elif op == OP_JSLT64_X:
            _label(OP_JSLT64_X)
            pc = (<uint32_t>i.off if <int64_t>r[d] < <int64_t>r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
        elif op == OP_JSLE64_K:
            _label(OP_JSLE64_K)
            pc = (<uint32_t>i.off if <int64_t>r[d] <= <int64_t>imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
        elif op == OP_JSLE64_X:
            _label(OP_JSLE64_X)
            pc = (<uint32_t>i.off if <int64_t>r[d] <= <int64_t>r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
        elif op == OP_JEQ32_K:
            _label(OP_JEQ32_K)
            pc = (<uint32_t>i.off if <uint32_t>r[d] == <uint32_t>imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
        elif op == OP_JEQ32_X:
            _label(OP_JEQ32_X)
            pc = (<uint32_t>i.off if <uint32_t>r[d] == <uint32_t>r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
        elif op == OP_JGT32_K:
            _label(OP_JGT32_K)
            pc = (<uint32_t>i.off if <uint32_t>r[d] > <uint32_t>imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
        elif op == OP_JGT32_X:
            _label(OP_JGT32_X)
            pc = (<uint32_t>i.off if <uint32_t>r[d] > <uint32_t>r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
        elif op == OP_JGE32_K:
            _label(OP_JGE32_K)
            pc = (<uint32_t>i.off if <uint32_t>r[d] >= <uint32_t>imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
        elif op == OP_JGE32_X:
            _label(OP_JGE32_X)
            pc = (<uint32_t>i.off if <uint32_t>r[d] >= <uint32_t>r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
        elif op == OP_JSET32_K:
            _label(OP_JSET32_K)
            pc = (<uint32_t>i.off if <uint32_t>r[d] & <uint32_t>imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
        elif op == OP_JSET32_X:
            _label(OP_JSET32_X)
            pc = (<uint32_t>i.off if <uint32_t>r[d] & <uint32_t>r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
        elif op == OP_JNE32_K:
            _label(OP_JNE32_K)
            pc = (<uint32_t>i.off if <uint32_t>r[d] != <uint32_t>imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
        elif op == OP_JNE32_X:
            _label(OP_JNE32_X)
            pc = (<uint32_t>i.off if <uint32_t>r[d] != <uint32_t>r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
        elif op == OP_JSGT32_K:
            _label(OP_JSGT32_K)
            pc = (<uint32_t>i.off if <int32_t>r[d] > <int32_t>imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
        elif op == OP_JSGT32_X:
            _label(OP_JSGT32_X)
            pc = (<uint32_t>i.off if <int32_t>r[d] > <int32_t>r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
        elif op == OP_JSGE32_K:
            _label(OP_JSGE32_K)
            pc = (<uint32_t>i.off if <int32_t>r[d] >= <int32_t>imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
        elif op == OP_JSGE32_X:
            _label(OP_JSGE32_X)
            pc = (<uint32_t>i.off if <int32_t>r[d] >= <int32_t>r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
        elif op == OP_JLT32_K:
            _label(OP_JLT32_K)
            pc = (<uint32_t>i.off if <uint32_t>r[d] < <uint32_t>imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
        elif op == OP_JLT32_X:
            _label(OP_JLT32_X)
            pc = (<uint32_t>i.off if <uint32_t>r[d] < <uint32_t>r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
        elif op == OP_JLE32_K:
            _label(OP_JLE32_K)
            pc = (<uint32_t>i.off if <uint32_t>r[d] <= <uint32_t>imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
        elif op == OP_JLE32_X:
            _label(OP_JLE32_X)
            pc = (<uint32_t>i.off if <uint32_t>r[d] <= <uint32_t>r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
        elif op == OP_JSLT32_K:
            _label(OP_JSLT32_K)
            pc = (<uint32_t>i.off if <int32_t>r[d] < <int32_t>imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
        elif op == OP_JSLT32_X:
            _label(OP_JSLT32_X)
            pc = (<uint32_t>i.off if <int32_t>r[d] < <int32_t>r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
        elif op == OP_JSLE32_K:
            _label(OP_JSLE32_K)
            pc = (<uint32_t>i.off if <int32_t>r[d] <= <int32_t>imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
        elif op == OP_JSLE32_X:
            _label(OP_JSLE32_X)
            pc = (<uint32_t>i.off if <int32_t>r[d] <= <int32_t>r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
        elif op == OP_COUNT:
            _label_acc_d(OP_ADD64_K)
            acc2, acc = acc, acc + imm
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_p(OP_ADD64_K)
            acc2, acc = acc, acc2 + imm
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_d(OP_ADD64_X)
            acc2, acc = acc, acc + r[s]
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_p(OP_ADD64_X)
            acc2, acc = acc, acc2 + r[s]
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_s(OP_ADD64_X)
            acc2, acc = acc, r[d] + acc
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_q(OP_ADD64_X)
            acc2, acc = acc, r[d] + acc2
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_ds(OP_ADD64_X)
            acc2, acc = acc, acc + acc
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_ps(OP_ADD64_X)
            acc2, acc = acc, acc2 + acc
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_dq(OP_ADD64_X)
            acc2, acc = acc, acc + acc2
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_d(OP_SUB64_K)
            acc2, acc = acc, acc - imm
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_p(OP_SUB64_K)
            acc2, acc = acc, acc2 - imm
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_d(OP_SUB64_X)
            acc2, acc = acc, acc - r[s]
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_p(OP_SUB64_X)
            acc2, acc = acc, acc2 - r[s]
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_s(OP_SUB64_X)
            acc2, acc = acc, r[d] - acc
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_q(OP_SUB64_X)
            acc2, acc = acc, r[d] - acc2
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_ds(OP_SUB64_X)
            acc2, acc = acc, acc - acc
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_ps(OP_SUB64_X)
            acc2, acc = acc, acc2 - acc
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_dq(OP_SUB64_X)
            acc2, acc = acc, acc - acc2
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_d(OP_MUL64_K)
            acc2, acc = acc, acc * imm
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_p(OP_MUL64_K)
            acc2, acc = acc, acc2 * imm
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_d(OP_MUL64_X)
            acc2, acc = acc, acc * r[s]
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_p(OP_MUL64_X)
            acc2, acc = acc, acc2 * r[s]
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_s(OP_MUL64_X)
            acc2, acc = acc, r[d] * acc
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_q(OP_MUL64_X)
            acc2, acc = acc, r[d] * acc2
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_ds(OP_MUL64_X)
            acc2, acc = acc, acc * acc
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_ps(OP_MUL64_X)
            acc2, acc = acc, acc2 * acc
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_dq(OP_MUL64_X)
            acc2, acc = acc, acc * acc2
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_d(OP_OR64_K)
            acc2, acc = acc, acc | imm
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_p(OP_OR64_K)
            acc2, acc = acc, acc2 | imm
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_d(OP_OR64_X)
            acc2, acc = acc, acc | r[s]
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_p(OP_OR64_X)
            acc2, acc = acc, acc2 | r[s]
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_s(OP_OR64_X)
            acc2, acc = acc, r[d] | acc
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_q(OP_OR64_X)
            acc2, acc = acc, r[d] | acc2
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_ds(OP_OR64_X)
            acc2, acc = acc, acc | acc
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_ps(OP_OR64_X)
            acc2, acc = acc, acc2 | acc
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_dq(OP_OR64_X)
            acc2, acc = acc, acc | acc2
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_d(OP_AND64_K)
            acc2, acc = acc, acc & imm
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_p(OP_AND64_K)
            acc2, acc = acc, acc2 & imm
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_d(OP_AND64_X)
            acc2, acc = acc, acc & r[s]
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_p(OP_AND64_X)
            acc2, acc = acc, acc2 & r[s]
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_s(OP_AND64_X)
            acc2, acc = acc, r[d] & acc
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_q(OP_AND64_X)
            acc2, acc = acc, r[d] & acc2
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_ds(OP_AND64_X)
            acc2, acc = acc, acc & acc
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_ps(OP_AND64_X)
            acc2, acc = acc, acc2 & acc
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_dq(OP_AND64_X)
            acc2, acc = acc, acc & acc2
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_d(OP_LSH64_K)
            acc2, acc = acc, acc << (imm & 63)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_p(OP_LSH64_K)
            acc2, acc = acc, acc2 << (imm & 63)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_d(OP_LSH64_X)
            acc2, acc = acc, acc << (r[s] & 63)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_p(OP_LSH64_X)
            acc2, acc = acc, acc2 << (r[s] & 63)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_s(OP_LSH64_X)
            acc2, acc = acc, r[d] << (acc & 63)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_q(OP_LSH64_X)
            acc2, acc = acc, r[d] << (acc2 & 63)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_ds(OP_LSH64_X)
            acc2, acc = acc, acc << (acc & 63)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_ps(OP_LSH64_X)
            acc2, acc = acc, acc2 << (acc & 63)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_dq(OP_LSH64_X)
            acc2, acc = acc, acc << (acc2 & 63)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_d(OP_RSH64_K)
            acc2, acc = acc, acc >> (imm & 63)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_p(OP_RSH64_K)
            acc2, acc = acc, acc2 >> (imm & 63)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_d(OP_RSH64_X)
            acc2, acc = acc, acc >> (r[s] & 63)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_p(OP_RSH64_X)
            acc2, acc = acc, acc2 >> (r[s] & 63)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_s(OP_RSH64_X)
            acc2, acc = acc, r[d] >> (acc & 63)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_q(OP_RSH64_X)
            acc2, acc = acc, r[d] >> (acc2 & 63)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_ds(OP_RSH64_X)
            acc2, acc = acc, acc >> (acc & 63)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_ps(OP_RSH64_X)
            acc2, acc = acc, acc2 >> (acc & 63)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_dq(OP_RSH64_X)
            acc2, acc = acc, acc >> (acc2 & 63)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_d(OP_XOR64_K)
            acc2, acc = acc, acc ^ imm
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_p(OP_XOR64_K)
            acc2, acc = acc, acc2 ^ imm
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_d(OP_XOR64_X)
            acc2, acc = acc, acc ^ r[s]
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_p(OP_XOR64_X)
            acc2, acc = acc, acc2 ^ r[s]
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_s(OP_XOR64_X)
            acc2, acc = acc, r[d] ^ acc
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_q(OP_XOR64_X)
            acc2, acc = acc, r[d] ^ acc2
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_ds(OP_XOR64_X)
            acc2, acc = acc, acc ^ acc
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_ps(OP_XOR64_X)
            acc2, acc = acc, acc2 ^ acc
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_dq(OP_XOR64_X)
            acc2, acc = acc, acc ^ acc2
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_s(OP_MOV64_X)
            acc2, acc = acc, acc
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_q(OP_MOV64_X)
            acc2, acc = acc, acc2
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_d(OP_ARSH64_K)
            acc2, acc = acc, <uint64_t>(<int64_t>acc >> (imm & 63))
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_p(OP_ARSH64_K)
            acc2, acc = acc, <uint64_t>(<int64_t>acc2 >> (imm & 63))
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_d(OP_ARSH64_X)
            acc2, acc = acc, <uint64_t>(<int64_t>acc >> (r[s] & 63))
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_p(OP_ARSH64_X)
            acc2, acc = acc, <uint64_t>(<int64_t>acc2 >> (r[s] & 63))
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_s(OP_ARSH64_X)
            acc2, acc = acc, <uint64_t>(<int64_t>r[d] >> (acc & 63))
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_q(OP_ARSH64_X)
            acc2, acc = acc, <uint64_t>(<int64_t>r[d] >> (acc2 & 63))
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_ds(OP_ARSH64_X)
            acc2, acc = acc, <uint64_t>(<int64_t>acc >> (acc & 63))
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_ps(OP_ARSH64_X)
            acc2, acc = acc, <uint64_t>(<int64_t>acc2 >> (acc & 63))
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_dq(OP_ARSH64_X)
            acc2, acc = acc, <uint64_t>(<int64_t>acc >> (acc2 & 63))
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_d(OP_ADD32_K)
            acc2, acc = acc, <uint32_t>(<uint32_t>acc + <uint32_t>imm)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_p(OP_ADD32_K)
            acc2, acc = acc, <uint32_t>(<uint32_t>acc2 + <uint32_t>imm)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_d(OP_ADD32_X)
            acc2, acc = acc, <uint32_t>(<uint32_t>acc + <uint32_t>r[s])
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_p(OP_ADD32_X)
            acc2, acc = acc, <uint32_t>(<uint32_t>acc2 + <uint32_t>r[s])
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_s(OP_ADD32_X)
            acc2, acc = acc, <uint32_t>(<uint32_t>r[d] + <uint32_t>acc)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_q(OP_ADD32_X)
            acc2, acc = acc, <uint32_t>(<uint32_t>r[d] + <uint32_t>acc2)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_ds(OP_ADD32_X)
            acc2, acc = acc, <uint32_t>(<uint32_t>acc + <uint32_t>acc)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_ps(OP_ADD32_X)
            acc2, acc = acc, <uint32_t>(<uint32_t>acc2 + <uint32_t>acc)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_dq(OP_ADD32_X)
            acc2, acc = acc, <uint32_t>(<uint32_t>acc + <uint32_t>acc2)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_d(OP_SUB32_K)
            acc2, acc = acc, <uint32_t>(<uint32_t>acc - <uint32_t>imm)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_p(OP_SUB32_K)
            acc2, acc = acc, <uint32_t>(<uint32_t>acc2 - <uint32_t>imm)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_d(OP_SUB32_X)
            acc2, acc = acc, <uint32_t>(<uint32_t>acc - <uint32_t>r[s])
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_p(OP_SUB32_X)
            acc2, acc = acc, <uint32_t>(<uint32_t>acc2 - <uint32_t>r[s])
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_s(OP_SUB32_X)
            acc2, acc = acc, <uint32_t>(<uint32_t>r[d] - <uint32_t>acc)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_q(OP_SUB32_X)
            acc2, acc = acc, <uint32_t>(<uint32_t>r[d] - <uint32_t>acc2)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_ds(OP_SUB32_X)
            acc2, acc = acc, <uint32_t>(<uint32_t>acc - <uint32_t>acc)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_ps(OP_SUB32_X)
            acc2, acc = acc, <uint32_t>(<uint32_t>acc2 - <uint32_t>acc)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_dq(OP_SUB32_X)
            acc2, acc = acc, <uint32_t>(<uint32_t>acc - <uint32_t>acc2)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_d(OP_MUL32_K)
            acc2, acc = acc, <uint32_t>(<uint32_t>acc * <uint32_t>imm)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_p(OP_MUL32_K)
            acc2, acc = acc, <uint32_t>(<uint32_t>acc2 * <uint32_t>imm)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_d(OP_MUL32_X)
            acc2, acc = acc, <uint32_t>(<uint32_t>acc * <uint32_t>r[s])
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_p(OP_MUL32_X)
            acc2, acc = acc, <uint32_t>(<uint32_t>acc2 * <uint32_t>r[s])
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_s(OP_MUL32_X)
            acc2, acc = acc, <uint32_t>(<uint32_t>r[d] * <uint32_t>acc)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_q(OP_MUL32_X)
            acc2, acc = acc, <uint32_t>(<uint32_t>r[d] * <uint32_t>acc2)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_ds(OP_MUL32_X)
            acc2, acc = acc, <uint32_t>(<uint32_t>acc * <uint32_t>acc)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_ps(OP_MUL32_X)
            acc2, acc = acc, <uint32_t>(<uint32_t>acc2 * <uint32_t>acc)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_dq(OP_MUL32_X)
            acc2, acc = acc, <uint32_t>(<uint32_t>acc * <uint32_t>acc2)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_d(OP_OR32_K)
            acc2, acc = acc, <uint32_t>(<uint32_t>acc | <uint32_t>imm)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_p(OP_OR32_K)
            acc2, acc = acc, <uint32_t>(<uint32_t>acc2 | <uint32_t>imm)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_d(OP_OR32_X)
            acc2, acc = acc, <uint32_t>(<uint32_t>acc | <uint32_t>r[s])
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_p(OP_OR32_X)
            acc2, acc = acc, <uint32_t>(<uint32_t>acc2 | <uint32_t>r[s])
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_s(OP_OR32_X)
            acc2, acc = acc, <uint32_t>(<uint32_t>r[d] | <uint32_t>acc)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_q(OP_OR32_X)
            acc2, acc = acc, <uint32_t>(<uint32_t>r[d] | <uint32_t>acc2)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_ds(OP_OR32_X)
            acc2, acc = acc, <uint32_t>(<uint32_t>acc | <uint32_t>acc)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_ps(OP_OR32_X)
            acc2, acc = acc, <uint32_t>(<uint32_t>acc2 | <uint32_t>acc)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_dq(OP_OR32_X)
            acc2, acc = acc, <uint32_t>(<uint32_t>acc | <uint32_t>acc2)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_d(OP_AND32_K)
            acc2, acc = acc, <uint32_t>(<uint32_t>acc & <uint32_t>imm)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_p(OP_AND32_K)
            acc2, acc = acc, <uint32_t>(<uint32_t>acc2 & <uint32_t>imm)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_d(OP_AND32_X)
            acc2, acc = acc, <uint32_t>(<uint32_t>acc & <uint32_t>r[s])
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_p(OP_AND32_X)
            acc2, acc = acc, <uint32_t>(<uint32_t>acc2 & <uint32_t>r[s])
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_s(OP_AND32_X)
            acc2, acc = acc, <uint32_t>(<uint32_t>r[d] & <uint32_t>acc)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_q(OP_AND32_X)
            acc2, acc = acc, <uint32_t>(<uint32_t>r[d] & <uint32_t>acc2)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_ds(OP_AND32_X)
            acc2, acc = acc, <uint32_t>(<uint32_t>acc & <uint32_t>acc)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_ps(OP_AND32_X)
            acc2, acc = acc, <uint32_t>(<uint32_t>acc2 & <uint32_t>acc)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_dq(OP_AND32_X)
            acc2, acc = acc, <uint32_t>(<uint32_t>acc & <uint32_t>acc2)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_d(OP_LSH32_K)
            acc2, acc = acc, <uint32_t>(<uint32_t>acc << (imm & 31))
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_p(OP_LSH32_K)
            acc2, acc = acc, <uint32_t>(<uint32_t>acc2 << (imm & 31))
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_d(OP_LSH32_X)
            acc2, acc = acc, <uint32_t>(<uint32_t>acc << (r[s] & 31))
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_p(OP_LSH32_X)
            acc2, acc = acc, <uint32_t>(<uint32_t>acc2 << (r[s] & 31))
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_s(OP_LSH32_X)
            acc2, acc = acc, <uint32_t>(<uint32_t>r[d] << (acc & 31))
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_q(OP_LSH32_X)
            acc2, acc = acc, <uint32_t>(<uint32_t>r[d] << (acc2 & 31))
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_ds(OP_LSH32_X)
            acc2, acc = acc, <uint32_t>(<uint32_t>acc << (acc & 31))
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_ps(OP_LSH32_X)
            acc2, acc = acc, <uint32_t>(<uint32_t>acc2 << (acc & 31))
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_dq(OP_LSH32_X)
            acc2, acc = acc, <uint32_t>(<uint32_t>acc << (acc2 & 31))
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_d(OP_RSH32_K)
            acc2, acc = acc, <uint32_t>acc >> (imm & 31)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_p(OP_RSH32_K)
            acc2, acc = acc, <uint32_t>acc2 >> (imm & 31)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_d(OP_RSH32_X)
            acc2, acc = acc, <uint32_t>acc >> (r[s] & 31)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_p(OP_RSH32_X)
            acc2, acc = acc, <uint32_t>acc2 >> (r[s] & 31)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_s(OP_RSH32_X)
            acc2, acc = acc, <uint32_t>r[d] >> (acc & 31)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_q(OP_RSH32_X)
            acc2, acc = acc, <uint32_t>r[d] >> (acc2 & 31)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_ds(OP_RSH32_X)
            acc2, acc = acc, <uint32_t>acc >> (acc & 31)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_ps(OP_RSH32_X)
            acc2, acc = acc, <uint32_t>acc2 >> (acc & 31)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_dq(OP_RSH32_X)
            acc2, acc = acc, <uint32_t>acc >> (acc2 & 31)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_d(OP_XOR32_K)
            acc2, acc = acc, <uint32_t>(<uint32_t>acc ^ <uint32_t>imm)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_p(OP_XOR32_K)
            acc2, acc = acc, <uint32_t>(<uint32_t>acc2 ^ <uint32_t>imm)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_d(OP_XOR32_X)
            acc2, acc = acc, <uint32_t>(<uint32_t>acc ^ <uint32_t>r[s])
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_p(OP_XOR32_X)
            acc2, acc = acc, <uint32_t>(<uint32_t>acc2 ^ <uint32_t>r[s])
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_s(OP_XOR32_X)
            acc2, acc = acc, <uint32_t>(<uint32_t>r[d] ^ <uint32_t>acc)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_q(OP_XOR32_X)
            acc2, acc = acc, <uint32_t>(<uint32_t>r[d] ^ <uint32_t>acc2)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_ds(OP_XOR32_X)
            acc2, acc = acc, <uint32_t>(<uint32_t>acc ^ <uint32_t>acc)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_ps(OP_XOR32_X)
            acc2, acc = acc, <uint32_t>(<uint32_t>acc2 ^ <uint32_t>acc)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_dq(OP_XOR32_X)
            acc2, acc = acc, <uint32_t>(<uint32_t>acc ^ <uint32_t>acc2)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_s(OP_MOV32_X)
            acc2, acc = acc, <uint32_t>acc
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_q(OP_MOV32_X)
            acc2, acc = acc, <uint32_t>acc2
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_d(OP_ARSH32_K)
            acc2, acc = acc, <uint32_t>(<int32_t>acc >> (imm & 31))
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_p(OP_ARSH32_K)
            acc2, acc = acc, <uint32_t>(<int32_t>acc2 >> (imm & 31))
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_d(OP_ARSH32_X)
            acc2, acc = acc, <uint32_t>(<int32_t>acc >> (r[s] & 31))
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_p(OP_ARSH32_X)
            acc2, acc = acc, <uint32_t>(<int32_t>acc2 >> (r[s] & 31))
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_s(OP_ARSH32_X)
            acc2, acc = acc, <uint32_t>(<int32_t>r[d] >> (acc & 31))
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_q(OP_ARSH32_X)
            acc2, acc = acc, <uint32_t>(<int32_t>r[d] >> (acc2 & 31))
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_ds(OP_ARSH32_X)
            acc2, acc = acc, <uint32_t>(<int32_t>acc >> (acc & 31))
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_ps(OP_ARSH32_X)
            acc2, acc = acc, <uint32_t>(<int32_t>acc2 >> (acc & 31))
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_dq(OP_ARSH32_X)
            acc2, acc = acc, <uint32_t>(<int32_t>acc >> (acc2 & 31))
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_d(OP_JEQ64_K)
            pc = (<uint32_t>i.off if acc == imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_p(OP_JEQ64_K)
            pc = (<uint32_t>i.off if acc2 == imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_d(OP_JEQ64_X)
            pc = (<uint32_t>i.off if acc == r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_p(OP_JEQ64_X)
            pc = (<uint32_t>i.off if acc2 == r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_s(OP_JEQ64_X)
            pc = (<uint32_t>i.off if r[d] == acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_q(OP_JEQ64_X)
            pc = (<uint32_t>i.off if r[d] == acc2 else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_ds(OP_JEQ64_X)
            pc = (<uint32_t>i.off if acc == acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_ps(OP_JEQ64_X)
            pc = (<uint32_t>i.off if acc2 == acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_dq(OP_JEQ64_X)
            pc = (<uint32_t>i.off if acc == acc2 else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_d(OP_JGT64_K)
            pc = (<uint32_t>i.off if acc > imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_p(OP_JGT64_K)
            pc = (<uint32_t>i.off if acc2 > imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_d(OP_JGT64_X)
            pc = (<uint32_t>i.off if acc > r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_p(OP_JGT64_X)
            pc = (<uint32_t>i.off if acc2 > r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_s(OP_JGT64_X)
            pc = (<uint32_t>i.off if r[d] > acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_q(OP_JGT64_X)
            pc = (<uint32_t>i.off if r[d] > acc2 else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_ds(OP_JGT64_X)
            pc = (<uint32_t>i.off if acc > acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_ps(OP_JGT64_X)
            pc = (<uint32_t>i.off if acc2 > acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_dq(OP_JGT64_X)
            pc = (<uint32_t>i.off if acc > acc2 else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_d(OP_JGE64_K)
            pc = (<uint32_t>i.off if acc >= imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_p(OP_JGE64_K)
            pc = (<uint32_t>i.off if acc2 >= imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_d(OP_JGE64_X)
            pc = (<uint32_t>i.off if acc >= r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_p(OP_JGE64_X)
            pc = (<uint32_t>i.off if acc2 >= r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_s(OP_JGE64_X)
            pc = (<uint32_t>i.off if r[d] >= acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_q(OP_JGE64_X)
            pc = (<uint32_t>i.off if r[d] >= acc2 else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_ds(OP_JGE64_X)
            pc = (<uint32_t>i.off if acc >= acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_ps(OP_JGE64_X)
            pc = (<uint32_t>i.off if acc2 >= acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_dq(OP_JGE64_X)
            pc = (<uint32_t>i.off if acc >= acc2 else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_d(OP_JSET64_K)
            pc = (<uint32_t>i.off if acc & imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_p(OP_JSET64_K)
            pc = (<uint32_t>i.off if acc2 & imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_d(OP_JSET64_X)
            pc = (<uint32_t>i.off if acc & r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_p(OP_JSET64_X)
            pc = (<uint32_t>i.off if acc2 & r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_s(OP_JSET64_X)
            pc = (<uint32_t>i.off if r[d] & acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_q(OP_JSET64_X)
            pc = (<uint32_t>i.off if r[d] & acc2 else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_ds(OP_JSET64_X)
            pc = (<uint32_t>i.off if acc & acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_ps(OP_JSET64_X)
            pc = (<uint32_t>i.off if acc2 & acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_dq(OP_JSET64_X)
            pc = (<uint32_t>i.off if acc & acc2 else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_d(OP_JNE64_K)
            pc = (<uint32_t>i.off if acc != imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_p(OP_JNE64_K)
            pc = (<uint32_t>i.off if acc2 != imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_d(OP_JNE64_X)
            pc = (<uint32_t>i.off if acc != r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_p(OP_JNE64_X)
            pc = (<uint32_t>i.off if acc2 != r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_s(OP_JNE64_X)
            pc = (<uint32_t>i.off if r[d] != acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_q(OP_JNE64_X)
            pc = (<uint32_t>i.off if r[d] != acc2 else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_ds(OP_JNE64_X)
            pc = (<uint32_t>i.off if acc != acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_ps(OP_JNE64_X)
            pc = (<uint32_t>i.off if acc2 != acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_dq(OP_JNE64_X)
            pc = (<uint32_t>i.off if acc != acc2 else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_d(OP_JSGT64_K)
            pc = (<uint32_t>i.off if <int64_t>acc > <int64_t>imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_p(OP_JSGT64_K)
            pc = (<uint32_t>i.off if <int64_t>acc2 > <int64_t>imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_d(OP_JSGT64_X)
            pc = (<uint32_t>i.off if <int64_t>acc > <int64_t>r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_p(OP_JSGT64_X)
            pc = (<uint32_t>i.off if <int64_t>acc2 > <int64_t>r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_s(OP_JSGT64_X)
            pc = (<uint32_t>i.off if <int64_t>r[d] > <int64_t>acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_q(OP_JSGT64_X)
            pc = (<uint32_t>i.off if <int64_t>r[d] > <int64_t>acc2 else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_ds(OP_JSGT64_X)
            pc = (<uint32_t>i.off if <int64_t>acc > <int64_t>acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_ps(OP_JSGT64_X)
            pc = (<uint32_t>i.off if <int64_t>acc2 > <int64_t>acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_dq(OP_JSGT64_X)
            pc = (<uint32_t>i.off if <int64_t>acc > <int64_t>acc2 else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_d(OP_JSGE64_K)
            pc = (<uint32_t>i.off if <int64_t>acc >= <int64_t>imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_p(OP_JSGE64_K)
            pc = (<uint32_t>i.off if <int64_t>acc2 >= <int64_t>imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_d(OP_JSGE64_X)
            pc = (<uint32_t>i.off if <int64_t>acc >= <int64_t>r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_p(OP_JSGE64_X)
            pc = (<uint32_t>i.off if <int64_t>acc2 >= <int64_t>r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_s(OP_JSGE64_X)
            pc = (<uint32_t>i.off if <int64_t>r[d] >= <int64_t>acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_q(OP_JSGE64_X)
            pc = (<uint32_t>i.off if <int64_t>r[d] >= <int64_t>acc2 else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_ds(OP_JSGE64_X)
            pc = (<uint32_t>i.off if <int64_t>acc >= <int64_t>acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_ps(OP_JSGE64_X)
            pc = (<uint32_t>i.off if <int64_t>acc2 >= <int64_t>acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_dq(OP_JSGE64_X)
            pc = (<uint32_t>i.off if <int64_t>acc >= <int64_t>acc2 else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_d(OP_JLT64_K)
            pc = (<uint32_t>i.off if acc < imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_p(OP_JLT64_K)
            pc = (<uint32_t>i.off if acc2 < imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_d(OP_JLT64_X)
            pc = (<uint32_t>i.off if acc < r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_p(OP_JLT64_X)
            pc = (<uint32_t>i.off if acc2 < r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_s(OP_JLT64_X)
            pc = (<uint32_t>i.off if r[d] < acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_q(OP_JLT64_X)
            pc = (<uint32_t>i.off if r[d] < acc2 else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_ds(OP_JLT64_X)
            pc = (<uint32_t>i.off if acc < acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_ps(OP_JLT64_X)
            pc = (<uint32_t>i.off if acc2 < acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_dq(OP_JLT64_X)
            pc = (<uint32_t>i.off if acc < acc2 else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_s(OP_JLE64_X)
            pc = (<uint32_t>i.off if r[d] <= acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_q(OP_JLE64_X)
            pc = (<uint32_t>i.off if r[d] <= acc2 else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_d(OP_JSLT64_K)
            pc = (<uint32_t>i.off if <int64_t>acc < <int64_t>imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_p(OP_JSLT64_K)
            pc = (<uint32_t>i.off if <int64_t>acc2 < <int64_t>imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_d(OP_JSLT64_X)
            pc = (<uint32_t>i.off if <int64_t>acc < <int64_t>r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_p(OP_JSLT64_X)
            pc = (<uint32_t>i.off if <int64_t>acc2 < <int64_t>r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_s(OP_JSLT64_X)
            pc = (<uint32_t>i.off if <int64_t>r[d] < <int64_t>acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_q(OP_JSLT64_X)
            pc = (<uint32_t>i.off if <int64_t>r[d] < <int64_t>acc2 else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_ds(OP_JSLT64_X)
            pc = (<uint32_t>i.off if <int64_t>acc < <int64_t>acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_ps(OP_JSLT64_X)
            pc = (<uint32_t>i.off if <int64_t>acc2 < <int64_t>acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_dq(OP_JSLT64_X)
            pc = (<uint32_t>i.off if <int64_t>acc < <int64_t>acc2 else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_d(OP_JSLE64_K)
            pc = (<uint32_t>i.off if <int64_t>acc <= <int64_t>imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_p(OP_JSLE64_K)
            pc = (<uint32_t>i.off if <int64_t>acc2 <= <int64_t>imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_d(OP_JSLE64_X)
            pc = (<uint32_t>i.off if <int64_t>acc <= <int64_t>r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_p(OP_JSLE64_X)
            pc = (<uint32_t>i.off if <int64_t>acc2 <= <int64_t>r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_s(OP_JSLE64_X)
            pc = (<uint32_t>i.off if <int64_t>r[d] <= <int64_t>acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_q(OP_JSLE64_X)
            pc = (<uint32_t>i.off if <int64_t>r[d] <= <int64_t>acc2 else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_ds(OP_JSLE64_X)
            pc = (<uint32_t>i.off if <int64_t>acc <= <int64_t>acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_ps(OP_JSLE64_X)
            pc = (<uint32_t>i.off if <int64_t>acc2 <= <int64_t>acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_dq(OP_JSLE64_X)
            pc = (<uint32_t>i.off if <int64_t>acc <= <int64_t>acc2 else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_d(OP_JEQ32_K)
            pc = (<uint32_t>i.off if <uint32_t>acc == <uint32_t>imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_p(OP_JEQ32_K)
            pc = (<uint32_t>i.off if <uint32_t>acc2 == <uint32_t>imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_d(OP_JEQ32_X)
            pc = (<uint32_t>i.off if <uint32_t>acc == <uint32_t>r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_p(OP_JEQ32_X)
            pc = (<uint32_t>i.off if <uint32_t>acc2 == <uint32_t>r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_s(OP_JEQ32_X)
            pc = (<uint32_t>i.off if <uint32_t>r[d] == <uint32_t>acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_q(OP_JEQ32_X)
            pc = (<uint32_t>i.off if <uint32_t>r[d] == <uint32_t>acc2 else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_ds(OP_JEQ32_X)
            pc = (<uint32_t>i.off if <uint32_t>acc == <uint32_t>acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_ps(OP_JEQ32_X)
            pc = (<uint32_t>i.off if <uint32_t>acc2 == <uint32_t>acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_dq(OP_JEQ32_X)
            pc = (<uint32_t>i.off if <uint32_t>acc == <uint32_t>acc2 else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_d(OP_JGT32_K)
            pc = (<uint32_t>i.off if <uint32_t>acc > <uint32_t>imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_p(OP_JGT32_K)
            pc = (<uint32_t>i.off if <uint32_t>acc2 > <uint32_t>imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_d(OP_JGT32_X)
            pc = (<uint32_t>i.off if <uint32_t>acc > <uint32_t>r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_p(OP_JGT32_X)
            pc = (<uint32_t>i.off if <uint32_t>acc2 > <uint32_t>r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_s(OP_JGT32_X)
            pc = (<uint32_t>i.off if <uint32_t>r[d] > <uint32_t>acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_q(OP_JGT32_X)
            pc = (<uint32_t>i.off if <uint32_t>r[d] > <uint32_t>acc2 else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_ds(OP_JGT32_X)
            pc = (<uint32_t>i.off if <uint32_t>acc > <uint32_t>acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_ps(OP_JGT32_X)
            pc = (<uint32_t>i.off if <uint32_t>acc2 > <uint32_t>acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_dq(OP_JGT32_X)
            pc = (<uint32_t>i.off if <uint32_t>acc > <uint32_t>acc2 else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_d(OP_JGE32_K)
            pc = (<uint32_t>i.off if <uint32_t>acc >= <uint32_t>imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_p(OP_JGE32_K)
            pc = (<uint32_t>i.off if <uint32_t>acc2 >= <uint32_t>imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_d(OP_JGE32_X)
            pc = (<uint32_t>i.off if <uint32_t>acc >= <uint32_t>r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_p(OP_JGE32_X)
            pc = (<uint32_t>i.off if <uint32_t>acc2 >= <uint32_t>r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_s(OP_JGE32_X)
            pc = (<uint32_t>i.off if <uint32_t>r[d] >= <uint32_t>acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_q(OP_JGE32_X)
            pc = (<uint32_t>i.off if <uint32_t>r[d] >= <uint32_t>acc2 else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_ds(OP_JGE32_X)
            pc = (<uint32_t>i.off if <uint32_t>acc >= <uint32_t>acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_ps(OP_JGE32_X)
            pc = (<uint32_t>i.off if <uint32_t>acc2 >= <uint32_t>acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_dq(OP_JGE32_X)
            pc = (<uint32_t>i.off if <uint32_t>acc >= <uint32_t>acc2 else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_d(OP_JSET32_K)
            pc = (<uint32_t>i.off if <uint32_t>acc & <uint32_t>imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_p(OP_JSET32_K)
            pc = (<uint32_t>i.off if <uint32_t>acc2 & <uint32_t>imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_d(OP_JSET32_X)
            pc = (<uint32_t>i.off if <uint32_t>acc & <uint32_t>r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_p(OP_JSET32_X)
            pc = (<uint32_t>i.off if <uint32_t>acc2 & <uint32_t>r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_s(OP_JSET32_X)
            pc = (<uint32_t>i.off if <uint32_t>r[d] & <uint32_t>acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_q(OP_JSET32_X)
            pc = (<uint32_t>i.off if <uint32_t>r[d] & <uint32_t>acc2 else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_ds(OP_JSET32_X)
            pc = (<uint32_t>i.off if <uint32_t>acc & <uint32_t>acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_ps(OP_JSET32_X)
            pc = (<uint32_t>i.off if <uint32_t>acc2 & <uint32_t>acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_dq(OP_JSET32_X)
            pc = (<uint32_t>i.off if <uint32_t>acc & <uint32_t>acc2 else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_d(OP_JNE32_K)
            pc = (<uint32_t>i.off if <uint32_t>acc != <uint32_t>imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_p(OP_JNE32_K)
            pc = (<uint32_t>i.off if <uint32_t>acc2 != <uint32_t>imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_d(OP_JNE32_X)
            pc = (<uint32_t>i.off if <uint32_t>acc != <uint32_t>r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_p(OP_JNE32_X)
            pc = (<uint32_t>i.off if <uint32_t>acc2 != <uint32_t>r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_s(OP_JNE32_X)
            pc = (<uint32_t>i.off if <uint32_t>r[d] != <uint32_t>acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_q(OP_JNE32_X)
            pc = (<uint32_t>i.off if <uint32_t>r[d] != <uint32_t>acc2 else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_ds(OP_JNE32_X)
            pc = (<uint32_t>i.off if <uint32_t>acc != <uint32_t>acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_ps(OP_JNE32_X)
            pc = (<uint32_t>i.off if <uint32_t>acc2 != <uint32_t>acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_dq(OP_JNE32_X)
            pc = (<uint32_t>i.off if <uint32_t>acc != <uint32_t>acc2 else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_d(OP_JSGT32_K)
            pc = (<uint32_t>i.off if <int32_t>acc > <int32_t>imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_p(OP_JSGT32_K)
            pc = (<uint32_t>i.off if <int32_t>acc2 > <int32_t>imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_d(OP_JSGT32_X)
            pc = (<uint32_t>i.off if <int32_t>acc > <int32_t>r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_p(OP_JSGT32_X)
            pc = (<uint32_t>i.off if <int32_t>acc2 > <int32_t>r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_s(OP_JSGT32_X)
            pc = (<uint32_t>i.off if <int32_t>r[d] > <int32_t>acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_q(OP_JSGT32_X)
            pc = (<uint32_t>i.off if <int32_t>r[d] > <int32_t>acc2 else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_ds(OP_JSGT32_X)
            pc = (<uint32_t>i.off if <int32_t>acc > <int32_t>acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_ps(OP_JSGT32_X)
            pc = (<uint32_t>i.off if <int32_t>acc2 > <int32_t>acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_dq(OP_JSGT32_X)
            pc = (<uint32_t>i.off if <int32_t>acc > <int32_t>acc2 else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_d(OP_JSGE32_K)
            pc = (<uint32_t>i.off if <int32_t>acc >= <int32_t>imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_p(OP_JSGE32_K)
            pc = (<uint32_t>i.off if <int32_t>acc2 >= <int32_t>imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_d(OP_JSGE32_X)
            pc = (<uint32_t>i.off if <int32_t>acc >= <int32_t>r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_p(OP_JSGE32_X)
            pc = (<uint32_t>i.off if <int32_t>acc2 >= <int32_t>r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_s(OP_JSGE32_X)
            pc = (<uint32_t>i.off if <int32_t>r[d] >= <int32_t>acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_q(OP_JSGE32_X)
            pc = (<uint32_t>i.off if <int32_t>r[d] >= <int32_t>acc2 else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_ds(OP_JSGE32_X)
            pc = (<uint32_t>i.off if <int32_t>acc >= <int32_t>acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_ps(OP_JSGE32_X)
            pc = (<uint32_t>i.off if <int32_t>acc2 >= <int32_t>acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_dq(OP_JSGE32_X)
            pc = (<uint32_t>i.off if <int32_t>acc >= <int32_t>acc2 else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_d(OP_JLT32_K)
            pc = (<uint32_t>i.off if <uint32_t>acc < <uint32_t>imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_p(OP_JLT32_K)
            pc = (<uint32_t>i.off if <uint32_t>acc2 < <uint32_t>imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_d(OP_JLT32_X)
            pc = (<uint32_t>i.off if <uint32_t>acc < <uint32_t>r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_p(OP_JLT32_X)
            pc = (<uint32_t>i.off if <uint32_t>acc2 < <uint32_t>r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_s(OP_JLT32_X)
            pc = (<uint32_t>i.off if <uint32_t>r[d] < <uint32_t>acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_q(OP_JLT32_X)
            pc = (<uint32_t>i.off if <uint32_t>r[d] < <uint32_t>acc2 else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_ds(OP_JLT32_X)
            pc = (<uint32_t>i.off if <uint32_t>acc < <uint32_t>acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_ps(OP_JLT32_X)
            pc = (<uint32_t>i.off if <uint32_t>acc2 < <uint32_t>acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_dq(OP_JLT32_X)
            pc = (<uint32_t>i.off if <uint32_t>acc < <uint32_t>acc2 else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_s(OP_JLE32_X)
            pc = (<uint32_t>i.off if <uint32_t>r[d] <= <uint32_t>acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_q(OP_JLE32_X)
            pc = (<uint32_t>i.off if <uint32_t>r[d] <= <uint32_t>acc2 else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_d(OP_JSLT32_K)
            pc = (<uint32_t>i.off if <int32_t>acc < <int32_t>imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_p(OP_JSLT32_K)
            pc = (<uint32_t>i.off if <int32_t>acc2 < <int32_t>imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_d(OP_JSLT32_X)
            pc = (<uint32_t>i.off if <int32_t>acc < <int32_t>r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_p(OP_JSLT32_X)
            pc = (<uint32_t>i.off if <int32_t>acc2 < <int32_t>r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_s(OP_JSLT32_X)
            pc = (<uint32_t>i.off if <int32_t>r[d] < <int32_t>acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_q(OP_JSLT32_X)
            pc = (<uint32_t>i.off if <int32_t>r[d] < <int32_t>acc2 else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_ds(OP_JSLT32_X)
            pc = (<uint32_t>i.off if <int32_t>acc < <int32_t>acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_ps(OP_JSLT32_X)
            pc = (<uint32_t>i.off if <int32_t>acc2 < <int32_t>acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_dq(OP_JSLT32_X)
            pc = (<uint32_t>i.off if <int32_t>acc < <int32_t>acc2 else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_d(OP_JSLE32_K)
            pc = (<uint32_t>i.off if <int32_t>acc <= <int32_t>imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_p(OP_JSLE32_K)
            pc = (<uint32_t>i.off if <int32_t>acc2 <= <int32_t>imm else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_d(OP_JSLE32_X)
            pc = (<uint32_t>i.off if <int32_t>acc <= <int32_t>r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_p(OP_JSLE32_X)
            pc = (<uint32_t>i.off if <int32_t>acc2 <= <int32_t>r[s] else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_s(OP_JSLE32_X)
            pc = (<uint32_t>i.off if <int32_t>r[d] <= <int32_t>acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_q(OP_JSLE32_X)
            pc = (<uint32_t>i.off if <int32_t>r[d] <= <int32_t>acc2 else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_ds(OP_JSLE32_X)
            pc = (<uint32_t>i.off if <int32_t>acc <= <int32_t>acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_ps(OP_JSLE32_X)
            pc = (<uint32_t>i.off if <int32_t>acc2 <= <int32_t>acc else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_dq(OP_JSLE32_X)
            pc = (<uint32_t>i.off if <int32_t>acc <= <int32_t>acc2 else <uint32_t>(i - insns) + 1)
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
            _label_acc_m(OP_ADD64_K)
            acc2 = acc
            acc = r[s]
            i += 1
            imm = i.imm
            acc = acc + imm
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_ms(OP_ADD64_K)
            acc2 = acc
            i += 1
            imm = i.imm
            acc = acc + imm
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_m(OP_SUB64_K)
            acc2 = acc
            acc = r[s]
            i += 1
            imm = i.imm
            acc = acc - imm
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_ms(OP_SUB64_K)
            acc2 = acc
            i += 1
            imm = i.imm
            acc = acc - imm
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_m(OP_MUL64_K)
            acc2 = acc
            acc = r[s]
            i += 1
            imm = i.imm
            acc = acc * imm
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_ms(OP_MUL64_K)
            acc2 = acc
            i += 1
            imm = i.imm
            acc = acc * imm
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_m(OP_OR64_K)
            acc2 = acc
            acc = r[s]
            i += 1
            imm = i.imm
            acc = acc | imm
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_ms(OP_OR64_K)
            acc2 = acc
            i += 1
            imm = i.imm
            acc = acc | imm
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_m(OP_AND64_K)
            acc2 = acc
            acc = r[s]
            i += 1
            imm = i.imm
            acc = acc & imm
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_ms(OP_AND64_K)
            acc2 = acc
            i += 1
            imm = i.imm
            acc = acc & imm
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_m(OP_LSH64_K)
            acc2 = acc
            acc = r[s]
            i += 1
            imm = i.imm
            acc = acc << (imm & 63)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_ms(OP_LSH64_K)
            acc2 = acc
            i += 1
            imm = i.imm
            acc = acc << (imm & 63)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_m(OP_RSH64_K)
            acc2 = acc
            acc = r[s]
            i += 1
            imm = i.imm
            acc = acc >> (imm & 63)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_ms(OP_RSH64_K)
            acc2 = acc
            i += 1
            imm = i.imm
            acc = acc >> (imm & 63)
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_m(OP_XOR64_K)
            acc2 = acc
            acc = r[s]
            i += 1
            imm = i.imm
            acc = acc ^ imm
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_ms(OP_XOR64_K)
            acc2 = acc
            i += 1
            imm = i.imm
            acc = acc ^ imm
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_m(OP_ARSH64_K)
            acc2 = acc
            acc = r[s]
            i += 1
            imm = i.imm
            acc = <uint64_t>(<int64_t>acc >> (imm & 63))
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            _label_acc_ms(OP_ARSH64_K)
            acc2 = acc
            i += 1
            imm = i.imm
            acc = <uint64_t>(<int64_t>acc >> (imm & 63))
            r[d] = acc
            if TraceMode is _Threaded: _step(i, cases)
            vm.status = STATUS_BAD_INSN
            break
        # --- end of the generated interp_cases ---
        # context loads the decoder specialised (Program._specialise_loads): the
        # verifier proved the base the context and the field readable, as the kernel's
        # convert_ctx_access relies on; the base is still compared with this run's
        # context, and any other address takes the checked path
        elif op == OP_LDX_CTX or op == OP_LDX_CTX_DATA or op == OP_LDX_CTX_DATA_END:
            _label(OP_LDX_CTX)
            _label(OP_LDX_CTX_DATA)
            _label(OP_LDX_CTX_DATA_END)
            if unlikely(r[s] != vm.ctx or vm.skb == NULL):
                a = r[s] + <uint64_t><int64_t>i.off
                p = _mem(vm, a, i.size, ACCESS_READ)
                if p != NULL:
                    r[d] = _load(p, i.size)
                elif not ctx_load(vm, a, i.size, &r[d]):
                    break
            elif i.op == OP_LDX_CTX:
                r[d] = ctx_read(vm, <int>(imm & 0xff), <uint32_t>i.off, i.size, <uint32_t>(imm >> 8))
            elif i.op == OP_LDX_CTX_DATA:
                r[d] = <uintptr_t>skb_data(vm.skb)
            else:
                r[d] = <uintptr_t>(skb_data(vm.skb) + vm.skb.len)
            if TraceMode is _Threaded: _step(i, cases)
        # legacy packet loads: out of bounds returns 0 from the function (bpf_gen_ld_abs's
        # exit), which in the main program ends it
        elif (op == OP_LD_ABS8 or op == OP_LD_IND8 or op == OP_LD_ABS16 or op == OP_LD_IND16 or
              op == OP_LD_ABS32 or op == OP_LD_IND32):
            _label(OP_LD_ABS8)
            _label(OP_LD_IND8)
            _label(OP_LD_ABS16)
            _label(OP_LD_IND16)
            _label(OP_LD_ABS32)
            _label(OP_LD_IND32)
            a = <uint64_t><int64_t><int32_t>imm
            if i.op == OP_LD_IND8 or i.op == OP_LD_IND16 or i.op == OP_LD_IND32:
                a += r[s]
            if not (skb_ld_packet(vm.skb, <int32_t>a, i.size, &r[0]) if vm.skb != NULL
                    else _ld_packet(vm, <int32_t>a, i.size, &r[0])):
                r[0] = 0
                if _return_from_frame(vm, r, &pc): break
                if TraceMode is _Threaded or TraceMode is _Switched:
                    # the block's instructions after this one did not run
                    left += blocks[i - insns] - 1
                    if _short(&left, blocks, pc): break
                if TraceMode is _Threaded: _next(insns, pc, i, cases)
            if TraceMode is _Threaded: _step(i, cases)

        # jumps and calls: each enters a block (a case that reads pc sets it from i
        # first: the straight-line cases step i alone)
        elif op == OP_JA or op == OP_JA32:
            _label(OP_JA)
            _label(OP_JA32)
            pc = <uint32_t>i.off
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
        elif op == OP_CALL or op == OP_CALLX:
            _label(OP_CALL)
            _label(OP_CALLX)
            pc = <uint32_t>(i - insns) + 1
            if i.op == OP_CALLX:
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
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
        elif op == OP_MAY_GOTO:
            _label(OP_MAY_GOTO)
            pc = <uint32_t>(i - insns) + 1
            # the kernel's rewrite: a counter in the frame, BPF_MAX_LOOPS at entry; at 0
            # the jump is taken (do_misc_fixups)
            if vm.may_goto_left[vm.depth] == 0:
                pc = <uint32_t>i.off
            else:
                vm.may_goto_left[vm.depth] -= 1
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
        elif op == OP_CALL_KFUNC:
            _label(OP_CALL_KFUNC)
            pc = <uint32_t>(i - insns) + 1
            # the id was checked when the program was decoded
            vm.helper_id = imm
            vm.pc = pc - 1
            r[0] = KFUNCS[imm](vm, r[1], r[2], r[3], r[4], r[5])
            if vm.status != STATUS_RUNNING:
                if vm.status == STATUS_EXIT:
                    r[0] = vm.reg[0]
                break
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
        elif op == OP_CALL_LOCAL:
            _label(OP_CALL_LOCAL)
            pc = <uint32_t>(i - insns) + 1
            if vm.depth + 1 >= MAX_FRAMES:
                vm.status = STATUS_CALL_DEPTH
                break
            f = &vm.frames[vm.depth]
            memcpy(f.saved, &r[6], sizeof(f.saved))
            f.ret_pc = pc
            vm.depth += 1
            vm.may_goto_left[vm.depth] = BPF_MAX_LOOPS
            if vm.grant:
                _grant(vm, &left)
            r[10] -= FRAME_SIZE
            # the stack region grows by the callee's frame, zeroed as deep as the callee
            # reaches (imm: Program._stack_zero of the callee)
            vm.regions[0].start -= FRAME_SIZE
            if imm:
                bulk_zero(<void*>(r[10] - imm), imm)
            pc = <uint32_t>i.off
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
        elif op == OP_EXIT:
            _label(OP_EXIT)
            if _return_from_frame(vm, r, &pc): break
            if TraceMode is _Threaded or TraceMode is _Switched:
                if _short(&left, blocks, pc): break
            if TraceMode is _Threaded: _next(insns, pc, i, cases)
        else:
            _label_default()
            # OP_INVALID (the sentinel past the end), OP_LDDW_TAIL, unsupported pseudo ops
            vm.status = STATUS_BAD_INSN
            break

        if TraceMode is _Trace:
            _trace_step(vm, <uint32_t>(i - insns), r)
        if TraceMode is _Cov or TraceMode is _Trace:
            if cov != NULL and pc != <uint32_t>(i - insns) + 1:
                cov[n_insns + <uint32_t>(i - insns)] += 1

    if TraceMode is _Threaded or TraceMode is _Switched:
        if vm.status == STATUS_RUNNING:
            # a jump into a block the budget cannot cover
            _budget_short(vm, r, pc, left, <uint32_t>(i - insns))
            return
        # stopped inside the block (a fault, an early exit): give back what it did not run
        left += blocks[i - insns] - 1
    vm.pc = <uint32_t>(i - insns)
    vm.budget_left = left
    memcpy(vm.reg, r, sizeof(r))


cdef void _budget_short(Vm* vm, const uint64_t* r, uint32_t pc, int64_t left,
                        uint32_t last) noexcept nogil:
    """The block at ``pc`` needs more than the ``left`` instructions the budget still
    has (``last``: the instruction that entered it): run them one by one, so the run
    stops where a per-instruction count stops it, at the last instruction run."""
    memcpy(vm.reg, r, sizeof(vm.reg))
    if left == 0:
        vm.status = STATUS_BUDGET
        vm.pc = last
        vm.budget_left = -1
        return
    vm.pc = pc
    vm.budget_left = left
    _interp(vm, <_Counted*>NULL)


# the threaded loop's label table, for Program._fill_cases
_interp(NULL, <_Threaded*>NULL)


cdef void vm_interp(Vm* vm) noexcept nogil:
    """Run the loop vm.run_mode names (vm_run chose it) from vm.pc."""
    if vm.run_mode == 2:
        _interp(vm, <_Trace*>NULL)
    elif vm.run_mode == 1:
        _interp(vm, <_Cov*>NULL)
    elif vm.run_mode == 3:
        _interp(vm, <_Switched*>NULL)
    else:
        _interp(vm, <_Threaded*>NULL)


ctypedef void (*_jit_fn)(Vm* vm) noexcept nogil


cdef void vm_continue(Vm* vm) noexcept nogil:
    """Run from vm.pc in pyebpf.jit's code where the program has it (a plain run), which
    hands over to the interpreter wherever it stops short (STATUS_RUNNING, the state of
    an instruction boundary), else in the interpreter."""
    if vm.prog.jit != NULL and (vm.run_mode == 0 or vm.run_mode == 3):
        (<_jit_fn>vm.prog.jit)(vm)
        if vm.status != STATUS_RUNNING:
            return
    vm_interp(vm)


cdef inline void _atomic(uint8_t op, uint8_t* p, int size, uint64_t* src, uint64_t* r0) noexcept nogil:
    # atomic against other threads running programs on the same memory (tcsim --cpus):
    # the new value is stored only over the old one it was computed from, as the
    # kernel's lock-prefixed JIT code does; src and r0 end with the last round's values
    cdef uint64_t old
    cdef uint64_t val = src[0]
    cdef uint64_t new
    cdef uint64_t mask = 0xffffffff if size == 4 else <uint64_t>-1
    cdef uint64_t expected = r0[0] & mask
    while True:
        old = _load(p, size)
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
            new = val if old == expected else old
            r0[0] = old
        # --- end of the generated atomic_cases ---
        if atomic_cas(p, size, old, new):
            break


include "helpers.pxi"
include "map_memory.pxi"
include "maps.pxi"
include "arena.pxi"
include "lru.pxi"
include "held_sockets.pxi"
include "sockmap.pxi"
include "devmap.pxi"
include "map_helpers.pxi"
include "map_class.pxi"
include "kernctx.pxi"
include "kfuncs.pxi"
include "callbacks.pxi"
include "map_struct.pxi"
include "tracing.pxi"
include "percpu.pxi"
include "btfprint.pxi"


# --- the VM's life: every run, of Program.run or the replay loop, goes through these ---

cdef void install_prog(Vm* vm, ProgCore* prog) noexcept nogil:
    """Make ``prog`` the running program: its code, helpers, context rules and maps."""
    cdef int k
    cdef Region* g
    vm.prog = prog
    vm.owner = prog.owner
    vm.grant = prog.frame_grant if vm.grow and vm.granted < <uint64_t>GRANT_CAP else 0
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
    heap_region(vm)


cdef inline void _enter_frame(Vm* vm) noexcept nogil:
    """Begin the running program's main body in frame 0: r10 at its top, the stack
    region down to its bottom, zeroed as deep as the program reaches (a read of stack
    the program never wrote sees zeroes in every run: the privileged verifier lets it
    read them), a fresh may_goto budget."""
    vm.depth = 0
    vm.reg[10] = vm.regions[0].end
    vm.regions[0].start = vm.reg[10] - FRAME_SIZE
    vm.may_goto_left[0] = BPF_MAX_LOOPS
    if vm.prog.stack_zero:
        bulk_zero(<void*>(vm.reg[10] - vm.prog.stack_zero), vm.prog.stack_zero)


cdef void tail_call_switch(Vm* vm) noexcept nogil:
    """After bpf_tail_call: vm.next_prog replaces the running program, same context.  From
    the main body it takes its frame; from a subprogram it takes that subprogram's frame
    only, and returns where the subprogram would have: the x86-64 JIT's tail call unwinds
    the current frame alone, so the tail-called program runs on top of its callers'
    frames, which pile up across tail calls (up to MAX_TAIL_CALL_CNT of them) past the
    verifier's MAX_CALL_FRAMES per program.  Those callers' frames are set aside in a
    Spill (their stack copied out, to come back at the same addresses) and the
    tail-called program runs from frame 0 with a frame budget of its own."""
    cdef Spill* s
    cdef size_t n
    ringbuf_release_all(vm)
    spin_lock_release(vm)
    if vm.depth > 0:
        s = <Spill*>malloc(sizeof(Spill))
        if s == NULL:
            helper_fault(vm, b"out of memory for the frames of a tail call from a subprogram")
            return
        s.prev, s.prog, s.depth = vm.spill, vm.prog, <uint32_t>vm.depth
        memcpy(s.frames, vm.frames, vm.depth * sizeof(Frame))
        memcpy(s.may_goto_left, vm.may_goto_left, vm.depth * sizeof(uint32_t))
        n = <size_t>vm.depth * FRAME_SIZE
        memcpy(&s.stack[STACK_SIZE - n], &vm.stack[STACK_SIZE - n], n)
        vm.spill = s
    install_prog(vm, vm.next_prog)
    vm.next_prog = NULL
    vm.status = STATUS_RUNNING
    vm.pc = 0
    _grant(vm, &vm.budget_left)
    _enter_frame(vm)


cdef void tail_return(Vm* vm) noexcept nogil:
    """A program tail-called from a subprogram returned (r0 set): its caller's frames
    back, and on in the program that made the call, after the call of that subprogram
    (a callback's frame returns to the helper that called it)."""
    cdef Spill* s = vm.spill
    cdef uint32_t d = s.depth
    cdef size_t n = <size_t>d * FRAME_SIZE
    cdef Frame* f
    memcpy(vm.frames, s.frames, d * sizeof(Frame))
    memcpy(vm.may_goto_left, s.may_goto_left, d * sizeof(uint32_t))
    memcpy(&vm.stack[STACK_SIZE - n], &s.stack[STACK_SIZE - n], n)
    install_prog(vm, s.prog)
    vm.spill = s.prev
    free(s)
    vm.depth = d - 1
    f = &vm.frames[vm.depth]
    memcpy(&vm.reg[6], f.saved, sizeof(f.saved))
    vm.reg[10] = vm.regions[0].end - <uintptr_t>vm.depth * FRAME_SIZE
    vm.regions[0].start = vm.reg[10] - FRAME_SIZE
    vm.pc = f.ret_pc
    vm.status = STATUS_CALLBACK_DONE if f.ret_pc == CALLBACK_RETURN else STATUS_RUNNING


cdef void vm_unwind(Vm* vm) noexcept nogil:
    """After bpf_throw (r0 holds its cookie): drop every frame of the running program,
    bpf-to-bpf calls and callbacks alike, and return the exception callback's value from
    its main body: the program's own callback (a global function called with the cookie
    in r1, on a fresh frame), else the default one the verifier adds
    (add_hidden_subprog: r0 = r1; exit), which returns the cookie.  The callback is the
    running program's: bpf_stack_walker stops at the innermost frame of a main program,
    which a tail call replaces."""
    cdef uint64_t cookie = vm.reg[0]
    if vm.prog.exception_cb < 0:
        vm.depth = 0
        vm.reg[10] = vm.regions[0].end
        vm.regions[0].start = vm.reg[10] - FRAME_SIZE
        vm.status = STATUS_EXIT
        return
    vm.status = STATUS_RUNNING
    memset(vm.reg, 0, sizeof(vm.reg))
    vm.reg[1] = cookie
    _grant(vm, &vm.budget_left)
    _enter_frame(vm)
    vm.pc = <uint32_t>vm.prog.exception_cb


cdef void vm_drive(Vm* vm, bint outer) noexcept nogil:
    """vm_continue through tail calls, returns from programs tail-called from a
    subprogram and, where the throwing program's main body began in this drive (the
    outer one, or a tail call from a subprogram made in it), the exception callback; the
    status it stopped with otherwise.  A callback's drive (``outer`` False) leaves a throw
    to the drive of the program that called the helper."""
    cdef Spill* mine = vm.spill
    while True:
        if vm.status == STATUS_RUNNING:
            vm_continue(vm)
        elif vm.status == STATUS_EXIT and vm.spill != mine:
            tail_return(vm)
        elif vm.status == STATUS_TAIL_CALL:
            tail_call_switch(vm)
        elif vm.status == STATUS_THROW and (outer or vm.spill != mine):
            vm_unwind(vm)
        else:
            return


cdef void _free_spills(Vm* vm) noexcept nogil:
    """The frames tail calls from subprograms set aside, of a run that stopped in a
    program they led to (a fault, the budget)."""
    cdef Spill* s
    while vm.spill != NULL:
        s = vm.spill
        vm.spill = s.prev
        free(s)


cdef int vm_run(Vm* vm, ProgCore* prog, bint trace) noexcept nogil:
    """Run ``prog`` (and the programs it tail-calls) to its end; the Vm status.  With
    coverage on (pyebpf.coverage) the loop counts instructions and jumps taken.  Call
    with the GIL held when the program has Python helpers or ``trace`` is set."""
    vm.map_regions = vm.nregions
    install_prog(vm, prog)
    _enter_frame(vm)
    vm.run_mode = 2 if trace else (1 if _cov_on else (3 if _use_switch else 0))
    vm_drive(vm, True)
    spin_lock_release(vm)
    _free_spills(vm)
    return vm.status


# --- the C interface of pyebpf.jit: its code calls these for what it does not inline ---


cdef int _jit_load(Vm* vm, uint64_t a, uint32_t size, uint64_t* out) noexcept nogil:
    # the interpreter's LDX: a region, else the context; 0 leaves the fault in vm.status
    cdef uint8_t* p = _mem(vm, a, size, ACCESS_READ)
    if p != NULL:
        out[0] = _load(p, size)
        return 1
    return ctx_load(vm, a, size, out)


cdef int _jit_store(Vm* vm, uint64_t a, uint32_t size, uint64_t v) noexcept nogil:
    # the interpreter's ST/STX
    cdef uint8_t* p = _mem(vm, a, size, ACCESS_WRITE)
    if p != NULL:
        _store(p, size, v)
        return 1
    return ctx_store(vm, a, size, v)


cdef uintptr_t _jit_mem(Vm* vm, uint64_t a, uint32_t size, int write) noexcept nogil:
    # the interpreter's atomics: the host address _mem gives (an arena's page is not at
    # the program's address), or 0 and the fault
    return <uintptr_t>_mem(vm, a, size, write)


cdef int _jit_ld_packet(Vm* vm, int32_t k, int32_t size, uint64_t* out) noexcept nogil:
    # the interpreter's LD_ABS/LD_IND
    return skb_ld_packet(vm.skb, k, size, out) if vm.skb != NULL else _ld_packet(vm, k, size, out)


cdef uint64_t _jit_ctx_read(Vm* vm, int field, uint32_t off, uint32_t size,
                            uint32_t width) noexcept nogil:
    # the interpreter's OP_LDX_CTX, its base found to be this run's context
    return ctx_read(vm, field, off, size, width)


def _jit_abi():
    """The layout of ``Vm`` and the addresses pyebpf.jit's code uses (ints)."""
    cdef Vm v
    cdef Skb s
    cdef uintptr_t b = <uintptr_t>&v
    return {
        "reg": <uintptr_t>&v.reg[0] - b, "pc": <uintptr_t>&v.pc - b,
        "status": <uintptr_t>&v.status - b, "budget_left": <uintptr_t>&v.budget_left - b,
        "grant": <uintptr_t>&v.grant - b, "granted": <uintptr_t>&v.granted - b,
        "depth": <uintptr_t>&v.depth - b, "frames": <uintptr_t>&v.frames[0] - b,
        "frame_size": sizeof(Frame), "frame_saved": <uintptr_t>&v.frames[0].saved[0] - <uintptr_t>&v.frames[0],
        "frame_ret_pc": <uintptr_t>&v.frames[0].ret_pc - <uintptr_t>&v.frames[0],
        "may_goto_left": <uintptr_t>&v.may_goto_left[0] - b,
        "regions": <uintptr_t>&v.regions[0] - b, "region_size": sizeof(Region),
        "region_start": <uintptr_t>&v.regions[0].start - <uintptr_t>&v.regions[0],
        "region_end": <uintptr_t>&v.regions[0].end - <uintptr_t>&v.regions[0],
        "region_writable": <uintptr_t>&v.regions[0].writable - <uintptr_t>&v.regions[0],
        "nregions": <uintptr_t>&v.nregions - b, "helpers": <uintptr_t>&v.helpers - b,
        "helper_id": <uintptr_t>&v.helper_id - b, "div0_abort": <uintptr_t>&v.div0_abort - b,
        "skb": <uintptr_t>&v.skb - b, "ctx": <uintptr_t>&v.ctx - b,
        "skb_head": <uintptr_t>&s.head - <uintptr_t>&s, "skb_data": <uintptr_t>&s.data - <uintptr_t>&s,
        "skb_len": <uintptr_t>&s.len - <uintptr_t>&s,
        "bint_size": sizeof(bint), "int_size": sizeof(int),
        "FRAME_SIZE": FRAME_SIZE, "MAX_FRAMES": MAX_FRAMES, "HELPER_SLOTS": HELPER_SLOTS,
        "BPF_MAX_LOOPS": BPF_MAX_LOOPS, "GRANT_CAP": GRANT_CAP, "CALLBACK_RETURN": CALLBACK_RETURN,
        "STATUS_RUNNING": STATUS_RUNNING, "STATUS_EXIT": STATUS_EXIT,
        "STATUS_BUDGET": STATUS_BUDGET, "STATUS_CALLBACK_DONE": STATUS_CALLBACK_DONE,
        "kfuncs": <uintptr_t>&KFUNCS[0], "load": <uintptr_t>_jit_load,
        "store": <uintptr_t>_jit_store, "mem": <uintptr_t>_jit_mem,
        "ld_packet": <uintptr_t>_jit_ld_packet, "ctx_read": <uintptr_t>_jit_ctx_read,
    }


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


ctypedef struct SkbMeta:
    # the __sk_buff fields a Result keeps of its run: what SkbFields shows, compactly
    uint64_t tstamp, hwtstamp
    uint32_t len, mark, priority, ingress_ifindex, ifindex, hash, napi_id, wire_len
    uint16_t queue_mapping, protocol, vlan_proto, vlan_tci, tc_index, tc_classid
    uint16_t gso_segs, gso_size
    uint8_t pkt_type, vlan_present, tstamp_type
    uint8_t cb[20]
    uint32_t redirect_flags
    int sk_assigned
    bint sk_reqsk
    uint8_t reqsk_attrs[20]


cdef inline void _skb_meta(SkbMeta* m, Skb* skb) noexcept nogil:
    m.tstamp, m.hwtstamp = skb.tstamp, skb.hwtstamp
    m.len, m.mark, m.priority = skb.len, skb.mark, skb.priority
    m.ingress_ifindex, m.ifindex, m.hash = skb.ingress_ifindex, skb.ifindex, skb.hash
    m.napi_id, m.wire_len = skb.napi_id, skb.wire_len
    m.queue_mapping, m.protocol, m.vlan_proto = skb.queue_mapping, skb.protocol, skb.vlan_proto
    # 4.6 kept the presence flag in bit 12 (CFI/DEI) and masked it off
    m.vlan_tci = skb.vlan_tci & ~0x1000 if skb.profile == PROFILE_V46 else skb.vlan_tci
    m.tc_index, m.tc_classid = skb.tc_index, skb.tc_classid
    m.gso_segs, m.gso_size = skb.gso_segs, skb.gso_size
    m.pkt_type, m.vlan_present, m.tstamp_type = skb.pkt_type, skb.vlan_present, skb.tstamp_type
    memcpy(m.cb, skb.cb, 20)
    m.redirect_flags, m.sk_assigned = skb.redirect_flags, skb.sk_assigned
    m.sk_reqsk = skb.sk_reqsk
    if skb.sk_reqsk:
        memcpy(m.reqsk_attrs, skb.reqsk_attrs, 20)


cdef enum:
    # Result._kind: how to read r0
    KIND_RAW = 0
    KIND_TC = 1
    KIND_SF = 2
    KIND_TRACE = 3      # a KPROBE run: r0 as the u32 trace_call_bpf sees, no skb
    # Result._csum: csum_ok
    CSUM_NONE = 0
    CSUM_BAD = 1
    CSUM_GOOD = 2


@cython.final
@cython.no_gc
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
    # A compact record (under pymalloc's 512-byte limit, so a run allocates no large
    # block): r0 and the skb's fields as C values, Python objects made when read.
    # run() takes it from a free list of its own (_result_new, _result_dealloc).
    # Not tracked by the cycle collector (no_gc: ~20 machine instructions a run): what it
    # holds cannot lead back to it.  Bytes, SkbFields, tuples of ints and bytes; the
    # tunnel dict and the trace_output list are handed out as new objects at each read,
    # never the ones held; _input is the frame's bytes.  The one exception is a traced
    # run's Trace (a Python object a caller may extend): trace=True is for debugging.
    cdef uint64_t _r0
    cdef readonly uint64_t insn_count
    cdef readonly bytes data_out
    cdef object _data            # data when it is not data_out (or a prefix of it)
    cdef readonly object trace
    cdef object _clones          # None: no clones
    cdef bytes _printk           # bpf_trace_printk's bytes
    cdef dict _tunnel            # the tunnel dict, made at the run (rare); read as a copy
    cdef object _skb_fields
    cdef bytes _input            # the frame as bytes (what run() made of its data)
    cdef object _signals         # a tracing run's signals sent, when it sent any
    cdef uint32_t _redirect_ifindex
    cdef uint8_t _kind, _csum, _redirect, _network_start
    cdef SkbMeta _meta

    @property
    def retval(self):
        if self._kind == KIND_TC:
            return <int32_t>self._r0
        if self._kind == KIND_SF or self._kind == KIND_TRACE:
            return <uint32_t>self._r0
        return self._r0

    @property
    def data(self):
        cdef uint32_t keep
        if self._data is None and self._kind == KIND_SF:
            keep = <uint32_t>self._r0
            if keep < <uint32_t>len(self.data_out):
                self._data = self.data_out[:keep]
        return self.data_out if self._data is None else self._data

    @property
    def csum_ok(self):
        return None if self._csum == CSUM_NONE else self._csum == CSUM_GOOD

    @property
    def redirect(self):
        if not self._redirect:
            return None
        return (self._redirect_ifindex, self._redirect == 2)

    @property
    def clones(self):
        return _NO_CLONES if self._clones is None else self._clones

    @property
    def trace_output(self):
        if self._kind == KIND_RAW:
            return None
        if self._printk is None:
            return []
        return (<bytes>self._printk).decode("utf-8", "backslashreplace").split("\n")

    @property
    def signals(self):
        """A KPROBE run's, or a packet run's given a ``machine``, signals to the current
        task (``bpf_send_signal``, ``bpf_send_signal_thread``, ``bpf_send_signal_task``):
        ``(number, "process" or "thread")`` pairs in number order, each once (a signal
        pending is not sent again); None for other runs."""
        if self._signals is not None:
            return self._signals
        return () if self._kind == KIND_TRACE else None

    @property
    def skb(self):
        if self._kind == KIND_RAW or self._kind == KIND_TRACE:
            return None
        if self._skb_fields is None:
            self._skb_fields = SkbFields._from(&self._meta)
        return self._skb_fields

    @property
    def tunnel(self):
        return None if self._tunnel is None else dict(self._tunnel)

    @property
    def redirect_via(self):
        """How a ``redirect`` leaves: ``"neigh"`` (bpf_redirect_neigh: out of device
        ``redirect[0]`` with the neighbour table's MAC addresses), ``"nexthop"`` (the same
        to the next hop the program gave), ``"peer"`` (bpf_redirect_peer: into the peer
        of device ``redirect[0]``, at its ingress, in the peer's namespace), or None
        (bpf_redirect, or no redirect)."""
        if self.redirect is None:
            return None
        flags = self._meta.redirect_flags
        if flags & _isa.BPF_F_PEER:
            return "peer"
        if flags & _isa.BPF_F_NEIGH:
            return "nexthop" if flags & _isa.BPF_F_NEXTHOP else "neigh"
        return None

    @property
    def assigned_socket(self):
        """The index in ``env.sockets`` of the socket ``bpf_sk_assign`` gave the
        packet, or None."""
        if (self._kind != KIND_TC and self._kind != KIND_SF) or not self._meta.sk_assigned:
            return None
        return self._meta.sk_assigned - 1

    @property
    def assigned_request(self):
        """The request socket ``bpf_sk_assign_tcp_reqsk`` gave the packet, as the fields
        of the ``struct bpf_tcp_req_attrs`` it was made with (a dict; its listener is
        :attr:`assigned_socket`), or None."""
        if self.assigned_socket is None or not self._meta.sk_reqsk:
            return None
        a = bytes(self._meta.reqsk_attrs[:20])
        return {"rcv_tsval": int.from_bytes(a[0:4], "little"),
                "rcv_tsecr": int.from_bytes(a[4:8], "little"),
                "mss": int.from_bytes(a[8:10], "little"),
                **dict(zip(("rcv_wscale", "snd_wscale", "ecn_ok", "wscale_ok", "sack_ok",
                            "tstamp_ok", "usec_ts_ok"), a[10:17]))}

    @property
    def prog_kind(self):
        """``"tc"``, ``"socket_filter"``, ``"raw"`` or ``"kprobe"``: how to read
        ``retval``."""
        return ("raw", "tc", "socket_filter", "kprobe")[self._kind]

    @property
    def input(self):
        """The packet given to run(), as bytes (None in the raw mode and for kprobes)."""
        if self._kind == KIND_RAW or self._kind == KIND_TRACE:
            return None
        return self._input

    @property
    def network_start(self):
        """Whether ``data`` starts at the network header (a socket filter run with
        ``sf_start="network"``) rather than at the Ethernet header."""
        return bool(self._network_start)

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
        return results.dissect(self.data, self.network_start) if self._kind else None

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


# Result's own free list: a freed Result keeps its memory with every object field None
# (what Cython's freelist(N) would clear and set again: a memset of the whole record and
# nine references to None, ~60 machine instructions a run), and run() clears only its
# C fields that a run may leave unset.  A Result on the list is dead (refcount 0, as
# tp_dealloc leaves it) and never left its type: taking it back is the reference
# _result_new returns.  Raw and kprobe runs leave _meta as the last run had it; only
# skb runs read it, after _skb_meta filled it.
cdef enum:
    RESULT_FREELIST = 16
cdef PyObject* _result_free[RESULT_FREELIST]
cdef int _result_nfree = 0
cdef destructor _result_dealloc_cython = (<PyTypeObject*>Result).tp_dealloc


cdef inline Result _result_new():
    """A Result with every object field None, _kind KIND_RAW and no csum, redirect or
    network start."""
    global _result_nfree
    cdef Result res
    if _result_nfree == 0:
        return Result.__new__(Result)
    _result_nfree -= 1
    res = <Result>_result_free[_result_nfree]
    res._kind = res._csum = res._redirect = res._network_start = 0
    res._redirect_ifindex = 0
    return res


cdef void _result_dealloc(PyObject* o) noexcept:
    """Result's tp_dealloc: the object fields back to None, the record onto the free
    list; Cython's dealloc (fields cleared, memory freed) when the list is full."""
    global _result_nfree
    if _result_nfree == RESULT_FREELIST:
        _result_dealloc_cython(o)
        return
    if (<Result>o).data_out is not None:
        (<Result>o).data_out = None
    if (<Result>o)._data is not None:
        (<Result>o)._data = None
    if (<Result>o).trace is not None:
        (<Result>o).trace = None
    if (<Result>o)._clones is not None:
        (<Result>o)._clones = None
    if (<Result>o)._printk is not None:
        (<Result>o)._printk = None
    if (<Result>o)._tunnel is not None:
        (<Result>o)._tunnel = None
    if (<Result>o)._skb_fields is not None:
        (<Result>o)._skb_fields = None
    if (<Result>o)._input is not None:
        (<Result>o)._input = None
    if (<Result>o)._signals is not None:
        (<Result>o)._signals = None
    _result_free[_result_nfree] = o
    _result_nfree += 1


(<PyTypeObject*>Result).tp_dealloc = _result_dealloc


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
    cdef SkbFields _from(SkbMeta* m):
        cdef SkbFields f = SkbFields.__new__(SkbFields)
        f.len, f.pkt_type, f.mark, f.queue_mapping = m.len, m.pkt_type, m.mark, m.queue_mapping
        f.protocol, f.vlan_present, f.vlan_tci = m.protocol, m.vlan_present, m.vlan_tci
        f.vlan_proto, f.priority, f.ingress_ifindex = m.vlan_proto, m.priority, m.ingress_ifindex
        f.ifindex, f.tc_index, f.hash, f.tc_classid = m.ifindex, m.tc_index, m.hash, m.tc_classid
        f.napi_id, f.wire_len, f.gso_segs, f.gso_size = m.napi_id, m.wire_len, m.gso_segs, m.gso_size
        f.tstamp, f.tstamp_type, f.hwtstamp = m.tstamp, m.tstamp_type, m.hwtstamp
        f.cb_bytes = PyBytes_FromStringAndSize(<char*>m.cb, 20)
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


cdef tuple _clone_records(Skb* skb):
    """Result.clones of a run: (ifindex, ingress, bytes) per bpf_clone_redirect.  A
    function of its own: a generator in _skb_result would make a closure every run."""
    cdef size_t k
    cdef list out = []
    for k in range(skb.nclones):
        out.append((skb.clones[k].ifindex, bool(skb.clones[k].flags & BPF_F_INGRESS),
                    PyBytes_FromStringAndSize(<char*>skb.clone_buf + skb.clones[k].offset,
                                              skb.clones[k].length)))
    return tuple(out)


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
    for op_id in _isa.CTX_LOAD_OPS.values():
        _ACCESS_KIND[op_id], _ACCESS_BASE_IS_SRC[op_id] = 1, 1
    for op in _isa.OPS:
        if op.form is _isa.F_LDX:
            _ACCESS_KIND[op.id], _ACCESS_BASE_IS_SRC[op.id] = 1, 1
        elif op.form is _isa.F_ST or op.form is _isa.F_STX:
            _ACCESS_KIND[op.id] = 2
        elif op.form is _isa.F_ATOMIC:
            _ACCESS_KIND[op.id] = 3


cdef enum:
    # _OP_DECODE: what Program._decode does with an op's fields
    DECODE_JUMP_OFF = 1     # off is a jump's pc-relative target
    DECODE_JUMP_IMM = 2     # imm is (ja32's)
    DECODE_LDDW = 4         # the first slot of an lddw
    DECODE_LDX = 8          # a plain load: imm becomes its region hint
    DECODE_BLOCK_END = 16   # the next instruction run need not be the next slot
    DECODE_ACC = 32         # its case leaves its result in acc (isa.acc_ops, LDX8-LDX64)
cdef uint8_t _OP_DECODE[OP_COUNT]
cdef uint8_t _OP_SIZE[OP_COUNT]

cdef enum:
    # _OP_REGS: what an op does to the registers, as _hint_raw_loads follows them
    REGS_DST = 0            # writes dst (ALU, loads, lddw): its kind is lost
    REGS_NONE = 1           # writes none (stores, jumps, exit)
    REGS_COPY = 2           # dst = src (mov64 rX)
    REGS_OFFSET = 3         # dst +/-= a constant: dst keeps its kind
    REGS_CALL = 4           # r0-r5 (helper, kfunc and local calls, LD_ABS / LD_IND)
    REGS_ATOMIC = 5         # dst (load-acquire), src (fetch) and r0 (cmpxchg)
cdef uint8_t _OP_REGS[OP_COUNT]


cdef void _init_decode_tables():
    cdef object op
    memset(_OP_DECODE, 0, sizeof(_OP_DECODE))
    memset(_OP_SIZE, 0, sizeof(_OP_SIZE))
    memset(_OP_REGS, REGS_DST, sizeof(_OP_REGS))
    accs = _isa.acc_ops()
    for op in _isa.OPS:
        _OP_SIZE[op.id] = op.size
        _OP_DECODE[op.id] = (
            (DECODE_JUMP_OFF if op.form.off is _isa.Field.JUMP else 0)
            | (DECODE_JUMP_IMM if op.form.imm is _isa.Field.JUMP else 0)
            | (DECODE_LDDW if op.form is _isa.F_LDDW else 0)
            | (DECODE_LDX if op.form is _isa.F_LDX else 0)
            | (DECODE_BLOCK_END if op.form in _isa.BLOCK_END_FORMS else 0)
            | (DECODE_ACC if op in accs or op.id in (OP_LDX8, OP_LDX16, OP_LDX32, OP_LDX64)
               else 0))
        _OP_REGS[op.id] = (
            REGS_NONE if op.form in (_isa.F_ST, _isa.F_STX, _isa.F_JA, _isa.F_JA32,
                                     _isa.F_JCC_K, _isa.F_JCC_X, _isa.F_EXIT,
                                     _isa.F_MAY_GOTO)
            else REGS_COPY if op.id == OP_MOV64_X
            else REGS_OFFSET if op.id == OP_ADD64_K or op.id == OP_SUB64_K
            else REGS_CALL if op.form in (_isa.F_CALL, _isa.F_CALLX, _isa.F_CALL_LOCAL,
                                          _isa.F_LD_ABS, _isa.F_LD_IND)
            else REGS_ATOMIC if op.form is _isa.F_ATOMIC
            else REGS_DST)


cdef void _block_lengths(const Insn* code, uint32_t n, uint32_t* lengths) noexcept:
    """The interpreter's block table: for each slot ``pc`` (and the one past the end),
    how many instructions run from ``pc`` through the next block end
    (:data:`isa.BLOCK_END_FORMS`) when none of them faults, an lddw counting one (its
    second slot, and the slot past the end, count 1: reaching one is an error).

    The interpreter charges the budget this many instructions whenever it enters code at
    ``pc`` (the entry pc, a jump's target or fall-through, a call's target or return);
    when the budget cannot cover them it runs that block counting each instruction, so
    ``insn_count`` and the budget fault's pc are those of a count per instruction; a run
    that stops inside a block (a fault, an LD_ABS or division-by-zero exit) gives back
    ``length[pc] - 1`` for the instructions after ``pc`` it did not run."""
    cdef uint32_t pc = n
    cdef uint32_t after
    lengths[n] = 1
    while pc > 0:
        pc -= 1
        lengths[pc] = 1
        if code[pc].op == OP_LDDW_TAIL or _OP_DECODE[code[pc].op] & DECODE_BLOCK_END:
            continue
        after = pc + (2 if _OP_DECODE[code[pc].op] & DECODE_LDDW else 1)
        lengths[pc] = 1 + (lengths[after] if after <= n else 0)


# What _raw_load_hints knows of a register: the region hint of what it points into (its
# value is that hint, isa.LOAD_HINTS), nothing (LOAD_HINT_NONE), or not yet reached.
cdef uint8_t _HINT_NONE = _isa.LOAD_HINT_NONE
cdef uint8_t _HINT_STACK = _isa.LOAD_HINTS["stack"]
cdef uint8_t _HINT_MEMORY = _isa.LOAD_HINTS["memory"]
cdef enum:
    _UNSEEN = 0xFF
    _QUEUED = 11            # a slot's state: its 11 registers, then whether it is queued
    _STRIDE = 12


cdef inline bint _join_regs(uint8_t* into, const uint8_t* regs) noexcept:
    """Merge ``regs`` into the state ``into`` of a slot; whether it changed."""
    cdef int k
    cdef bint changed = False
    for k in range(11):
        if into[k] != regs[k] and into[k] != _HINT_NONE:
            into[k] = regs[k] if into[k] == _UNSEEN else _HINT_NONE
            changed = True
    return changed


cdef inline uint32_t _enqueue(uint8_t* state, uint32_t* work, uint32_t nwork,
                              uint32_t pc) noexcept:
    if state[pc * _STRIDE + _QUEUED]:
        return nwork
    state[pc * _STRIDE + _QUEUED] = True
    work[nwork] = pc
    return nwork + 1


cdef int _raw_load_hints(Insn* code, uint32_t n) except -1:
    """Give a raw program's plain loads the region hint of their base register where the
    decoder can follow it from the entry: r1 (the memory a raw run is given, region 1)
    or r10 (the stack, region 0), copied between registers and moved by constants; any
    other write, or paths that disagree, lose it.  A hint is only the region a load
    tries first (the interpreter's and the JIT's _within), so it changes no result."""
    cdef uint8_t* state
    cdef uint32_t* work
    cdef uint8_t regs[11]
    cdef uint32_t nwork = 0, pc, succ[2]
    cdef int nsucc, k
    cdef Insn* c
    cdef uint8_t effect
    if n == 0:
        return 0
    state, work = <uint8_t*>malloc(n * _STRIDE), <uint32_t*>malloc(n * sizeof(uint32_t))
    if state == NULL or work == NULL:
        free(state)
        free(work)
        raise MemoryError()
    for pc in range(n):
        memset(&state[pc * _STRIDE], _UNSEEN, 11)
        state[pc * _STRIDE + _QUEUED] = False
    memset(state, _HINT_NONE, 11)
    state[1], state[10] = _HINT_MEMORY, _HINT_STACK
    nwork = _enqueue(state, work, nwork, 0)
    while nwork:
        nwork -= 1
        pc = work[nwork]
        state[pc * _STRIDE + _QUEUED] = False
        c = &code[pc]
        memcpy(regs, &state[pc * _STRIDE], 11)
        if c.op == OP_LDX8 or c.op == OP_LDX16 or c.op == OP_LDX32 or c.op == OP_LDX64:
            c.imm = regs[c.src]
        effect = _OP_REGS[c.op]
        if effect == REGS_DST:
            regs[c.dst] = _HINT_NONE
        elif effect == REGS_COPY:
            regs[c.dst] = regs[c.src]
        elif effect == REGS_CALL:
            memset(regs, _HINT_NONE, 6)
        elif effect == REGS_ATOMIC:
            regs[c.dst] = regs[c.src] = regs[0] = _HINT_NONE
        nsucc = 0
        if c.op == OP_JA or c.op == OP_JA32:
            succ[0], nsucc = c.off, 1
        elif c.op != OP_EXIT and c.op != OP_LDDW_TAIL and c.op != OP_INVALID:
            succ[0], nsucc = pc + (2 if c.op == OP_LDDW else 1), 1
            if _OP_DECODE[c.op] & DECODE_JUMP_OFF:
                succ[1], nsucc = c.off, 2
        if c.op == OP_CALL_LOCAL and c.off < n and state[c.off * _STRIDE + 10] == _UNSEEN:
            # a function's own entry: its frame's r10, nothing of its caller's r1
            memset(&state[c.off * _STRIDE], _HINT_NONE, 11)
            state[c.off * _STRIDE + 10] = _HINT_STACK
            nwork = _enqueue(state, work, nwork, c.off)
        for k in range(nsucc):
            if succ[k] < n and _join_regs(&state[succ[k] * _STRIDE], regs):
                nwork = _enqueue(state, work, nwork, succ[k])
    free(state)
    free(work)
    return 0


_init_access_tables()
_init_decode_tables()
register_skb_helpers()
# the helpers that move a packet's data, resize its buffer or set its tunnel metadata
# (skb/helpers_vlan, helpers_tunnel, helpers_shape): a program calling none of them
# leaves an skb whose rooms are zero and whose tun is its template's (_keeps_layout)
cdef helper_fn _LAYOUT_HELPERS[HELPER_SLOTS]
memset(_LAYOUT_HELPERS, 0, sizeof(_LAYOUT_HELPERS))
register_vlan_helpers(_LAYOUT_HELPERS)
register_tunnel_helpers(_LAYOUT_HELPERS)
register_shape_helpers(_LAYOUT_HELPERS)
register_kfuncs()
register_callback_helpers(SKB_HELPERS)
register_map_helpers(SKB_HELPERS)
register_tracing_helpers(SKB_HELPERS)
register_percpu_helpers(SKB_HELPERS)


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
# pyebpf.pinning installs it (_set_pin_hook) when a map gets pinned; a C global, as
# _run_hook: run() tests both every call, and a module attribute costs a dict lookup
cdef object _pin_hook = None
# pyebpf.pinning, which sets itself here when imported: pinning builds on the core, so
# the core never imports it (pyebpf imports it along with the core)
_pinning = None


cdef object _pins():
    if _pinning is None:
        raise PinError(EINVAL, "pinning needs pyebpf.pinning: import it first")
    return _pinning

# The pytest plugin installs f(program, data, budget, trace, fields) -> Result for the
# tests that use it: it runs the program itself (with this hook off), traced, and also
# in the kernel where the test asks for that.  pyebpf.kernel_check sets it (_set_run_hook).
cdef object _run_hook = None


def _set_run_hook(hook):
    """Make ``hook`` (None: none) the run hook; returns the one it replaces."""
    global _run_hook
    old, _run_hook = _run_hook, hook
    return old


def _set_pin_hook(hook):
    """Make ``hook`` (None: none) the pin hook; returns the one it replaces."""
    global _pin_hook
    old, _pin_hook = _pin_hook, hook
    return old


def _get_pin_hook():
    """The pin hook, None until pyebpf.pinning pins a map."""
    return _pin_hook

# pyebpf.jit sets itself here when imported: on_program(program, jit) ends Program(),
# and tier(program) starts the _jit_after-th run of a program through run() (0: never).
_jit = None
cdef uint64_t _jit_after = 0


def _set_jit_after(uint64_t runs):
    global _jit_after
    _jit_after = runs


def _jit_module():
    if _jit is None:
        from . import jit      # installs itself
    return _jit

#: bpf_ktime_get_ns's default clock (docs/clock.md): one for the process, as the kernel's
#: CLOCK_MONOTONIC is one for the machine.  It reads KTIME_START (an hour after boot) in
#: the first run that sets no ``ktime``, and each such run starts KTIME_RUN_GAP ns after
#: the last value the previous one could read.
KTIME_START = 3_600_000_000_000
KTIME_RUN_GAP = 1_000
cdef uint64_t _ktime_clock = KTIME_START
cdef uint64_t _KTIME_RUN_GAP = KTIME_RUN_GAP


cdef inline void _clock_after_run(uint64_t ktime) noexcept nogil:
    """Time passed while a run read the clock (``ktime_step`` per call): the process
    clock moves past the run's last reading, plus the gap between runs."""
    global _ktime_clock
    _ktime_clock = (ktime if ktime > _ktime_clock else _ktime_clock) + _KTIME_RUN_GAP


cdef tuple _signals_sent(uint64_t process, uint64_t thread):
    return tuple((sig, scope) for sig in range(1, NSIG + 1)
                 for scope, bits in (("process", process), ("thread", thread))
                 if bits >> (sig - 1) & 1)


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


cdef enum:
    # A run of a program with no loop, no bpf-to-bpf or tail call and no callback runs
    # each instruction at most once: at about 2 ns an instruction, 4,096 of them hold
    # the GIL for under 10 us, far below the interpreter's 5 ms switch interval, while
    # releasing and taking it back costs 20-50 ns a run uncontended (and up to a switch
    # interval when another thread holds it then).
    SHORT_RUN_SLOTS = 4096

cdef uint64_t _TAIL_CALL = _isa.BPF_FUNC.BPF_FUNC_tail_call

cdef inline uint32_t _rounded_depth(uint32_t depth) noexcept nogil:
    return min((depth + 7) & ~7u, <uint32_t>FRAME_SIZE)


cdef bint _runs_short(const Insn* code, uint32_t n) noexcept nogil:
    """Whether every run of ``code`` is short enough to keep the GIL (SHORT_RUN_SLOTS)."""
    cdef uint32_t pc
    cdef const Insn* c
    if n > SHORT_RUN_SLOTS:
        return False
    for pc in range(n):
        c = &code[pc]
        if c.op == OP_CALL_LOCAL or c.op == OP_CALLX or c.op == OP_MAY_GOTO:
            return False
        if c.op == OP_CALL and c.imm == _TAIL_CALL:
            return False
        if c.op == OP_CALL_KFUNC:
            return False             # kfuncs may take callbacks (bpf_rbtree_add, ...)
        if c.op >= OP_JA and c.op < OP_CALL and c.off <= <int32_t>pc:
            return False             # a jump backwards: a loop
        if c.op == OP_LDDW and c.src == BPF_PSEUDO_FUNC:
            return False             # a callback's address: bpf_loop and its kind iterate
    return True


cdef bint _keeps_layout(const Insn* code, uint32_t n, helper_fn* helpers) noexcept nogil:
    """Whether no run of ``code`` can move the packet's data, resize its buffer or set
    its tunnel metadata: it calls only the skb helpers installed for its type, none of
    them _LAYOUT_HELPERS, no tail call (another program), kfunc or callx.  Its work
    skb is then reset with skb_reload_frame."""
    cdef uint32_t pc
    cdef const Insn* c
    for pc in range(n):
        c = &code[pc]
        if c.op == OP_CALL_KFUNC or c.op == OP_CALLX:
            return False
        if c.op == OP_CALL:
            if c.imm >= HELPER_SLOTS or c.imm == _TAIL_CALL:
                return False
            if _LAYOUT_HELPERS[c.imm] != NULL or helpers[c.imm] != SKB_HELPERS[c.imm]:
                return False
    return True


cdef bint _int_fields(dict fields):
    """Whether every value of ``fields`` is an int (not a subclass: True is no mark)."""
    for value in fields.values():
        if type(value) is not int:
            return False
    return True


cdef bytes _ETH_ZERO = bytes(ETH_HLEN)     # the frame skb templates are made with
# the verifier's pointer kind of a plain load -> its region hint (_specialise_loads)
# an ALU64 op -> its ALU32 op, which one on an arena pointer becomes (_specialise_loads)
cdef dict _ALU32_OF = {o.id: _isa.OPS_BY_NAME[o.name.replace("64", "32")].id for o in _isa.OPS
                       if o.form in (_isa.F_ALU_K, _isa.F_ALU_X, _isa.F_ALU_XOFF_K,
                                     _isa.F_ALU_XOFF_X) and o.name.replace("64", "32") != o.name}
cdef dict _REGION_HINTS = {_vstate.PTR_TO_STACK: _isa.LOAD_HINTS["stack"],
                           _vstate.PTR_TO_PACKET: _isa.LOAD_HINTS["packet"],
                           _vstate.PTR_TO_MAP_VALUE: _isa.LOAD_HINTS["map_value"]}


cdef bytes _frame_bytes(object data, object prog_type):
    """The frame run() was given, as bytes an skb can hold."""
    cdef bytes raw
    if type(data) is bytes:
        raw = <bytes>data
    else:
        _require_frame(data, prog_type)
        raw = b"" if data is None else bytes(data)
    if not ETH_HLEN <= PyBytes_GET_SIZE(raw) <= 0xffff:
        _check_frame_len(PyBytes_GET_SIZE(raw), "")
    return raw


cdef int _check_frame_len(Py_ssize_t n, str where) except -1:
    if n < ETH_HLEN:
        raise ValueError(f"{where}a {n}-byte packet is shorter than an Ethernet header "
                         "(14 bytes)")
    if n > 0xffff:
        raise ValueError(f"{where}a {n}-byte packet is longer than an skb can hold "
                         "(65535 bytes)")
    return 0


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
    capabilities.  ``func_info``: it comes with BTF function info, as an object built
    with -g does (None, the default: when it has ``line_info``); a callback needs it.
    ``functions`` names the program's global functions
    (:func:`pyebpf.verifier.globalfuncs.describe`; :func:`pyebpf.load` gives those of
    the object's BTF): each is verified on its own from its prototype, as the kernel
    does.  ``license`` is the load attribute (:func:`pyebpf.load` gives the object's
    license section): one the kernel does not count GPL-compatible may call no GPL-only
    helper and no kfunc.  ``budget`` caps the instructions one run may execute: by
    default 1,000,000, and for a verified program with ``may_goto`` (``can_loop``) that
    plus BPF_MAX_LOOPS times its length, grown by as much at every frame entry (a call,
    a callback: each has a fresh counter), so that its loops run out their counters as
    in the kernel; a budget given to ``run()`` does not grow.  ``env`` (a
    :class:`pyebpf.Environment`, default None: the default one) is the modelled network
    every run sees unless ``run(env=...)`` names another.

    ``jit``: True compiles the program to native code now (pyebpf.jit, which needs
    ``pip install 'pyebpf[jit]'``), False keeps it in the interpreter, None (the
    default) leaves it to the process's policy (docs/jit.md).  Results are the same.

    ``classic`` (set by :meth:`from_cbpf`) holds the classic instructions ``insns`` was
    converted from; such code gets only the structural checks, as the kernel runs no
    verifier on a converted classic filter (``bpf_migrate_filter``).

    ``"kprobe"`` programs get r1 = the ``struct pt_regs`` of ``arch`` (``"x86_64"``, the
    default, or ``"arm64"``), read-only, and the tracing helpers over a modelled machine
    (:mod:`pyebpf.trace`, docs/kprobe.md); ``kern_version`` is the load attribute the 4.6
    kernel required to equal its own version (``isa.LINUX_VERSION_CODE_4_6``), kept as
    ``kern_version`` (None when not given).
    """
    cdef Insn* _code
    cdef const void** _cases     # ProgCore.cases
    cdef uint32_t* _blocks
    cdef uint32_t _n
    cdef readonly bytes insns
    cdef readonly object prog_type
    cdef readonly str profile
    cdef readonly object classic
    cdef readonly str arch
    cdef readonly object kern_version
    cdef readonly tuple functions      # what it was verified with, kept for a pin:
    cdef readonly str license          # its global functions, license and whether it
    cdef readonly bint func_info       # came with BTF function info
    cdef bint _kprobe
    cdef public uint64_t budget
    cdef uint64_t _default_budget    # what budget=None gave: runs on it grow (_grows)
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
    cdef Stream _streams[2]      # stdout, stderr (streams.pxi)
    cdef readonly tuple line_info
    cdef list _line_pcs
    cdef readonly int fd
    cdef readonly uint32_t id    # the program's id, as the kernel's prog_idr gives it
    cdef public uint32_t tail_call_limit
    cdef object _cov_buf
    cdef object _jit_keep    # what keeps _pc.jit's code alive
    cdef readonly bint _jit_done   # compiled, queued, or jit=False: no more tiering
    # the loads and stores the verifier proved inside the packet on every path
    # (verifier.check's packet_pcs): pyebpf.jit leaves out their region check
    cdef readonly frozenset _packet_pcs
    cdef object __weakref__
    cdef int _profile_id
    cdef bint _hold_gil          # short runs keep the GIL (see _runs_short)
    cdef object _btf_image       # the BtfImage _pc.btf points into
    cdef bytes _obj_types        # what _pc.obj_types points into (heap.pxi)
    # the skb of runs without fields: a template made once, and a work skb whose buffers
    # every run reuses (one run at a time: a concurrent or nested run makes its own)
    cdef Skb _tmpl
    cdef bint _tmpl_ready
    cdef Skb _work
    cdef bint _work_busy
    cdef uint32_t _frame0_zero   # frame 0's bytes a run zeroes (_stack_zero)
    cdef bint _work_clean        # _work's last load was from _tmpl, and every run since
                                 # kept the layout: skb_reload_frame resets it
    # the template of the last run with fields, when every field was an int (mark=7)
    cdef Skb _ftmpl
    cdef dict _ftmpl_fields      # those fields (None: no template kept)
    cdef uint32_t _ftmpl_keep    # and their skb_keep_bits

    def __cinit__(self):
        self._code = NULL
        self._blocks = NULL
        self._cases = NULL
        memset(&self._tmpl, 0, sizeof(Skb))
        memset(&self._work, 0, sizeof(Skb))
        memset(&self._ftmpl, 0, sizeof(Skb))
        memset(self._streams, 0, sizeof(self._streams))

    def __dealloc__(self):
        timers_forget_prog(&self._pc)
        free(self._code)
        free(self._blocks)
        free(<void*>self._cases)
        self._work.devices = NULL        # a template's, never the work skb's own
        skb_free(&self._work)
        skb_free(&self._tmpl)
        skb_free(&self._ftmpl)
        stream_free(&self._streams[0])
        stream_free(&self._streams[1])

    def __init__(self, insns, prog_type=None, *, profile="current", helpers=None,
                 budget=None, line_info=(), verify=True, classic=None,
                 unpriv=False, jit=None, arch="x86_64", kern_version=None, functions=(),
                 btf=None, license="GPL", prog_btf=None, func_info=None):
        raw = bytes(insns)
        self.prog_type = _prog_type(prog_type)
        self._profile_id = profile_id(profile)
        self.profile = profile
        self._kprobe = self.prog_type == _KPROBE
        self.arch = _check_kprobe_load(self.prog_type, profile, arch, kern_version)
        self.kern_version = kern_version
        self.functions, self.license = tuple(functions), license
        # clang -g gives an object both its line info and its function info
        self.func_info = bool(line_info) if func_info is None else func_info
        if len(raw) % INSN_SIZE:
            raise LoadError(f"program length {len(raw)} is not a multiple of {INSN_SIZE}")
        kinds, depths, packet_pcs = {}, {}, set()
        if verify and classic is None:
            # no slots: the verifier unpacks them only for a program it does not remember
            ops = _verifier.check(None, self.prog_type, profile, maps=_MAP_HANDLES.get,
                                  line_info=line_info, unpriv=unpriv, pointer_kinds=kinds,
                                  arch=self.arch, functions=functions, license=license,
                                  prog_btf=prog_btf, stack_depths=depths, code=raw,
                                  func_info=self.func_info, packet_pcs=packet_pcs)
        else:
            ops = _verifier.structure.check(
                _isa.unpack_program(raw), None if classic is not None else self.prog_type,
                exception_cb=exception_cb_pc(self.functions))
        self.classic = tuple(classic) if classic is not None else None
        self.insns = raw
        self._packet_pcs = frozenset(packet_pcs)
        self.line_info = tuple(sorted(line_info, key=lambda li: li.pc))
        self._line_pcs = [li.pc for li in self.line_info]
        self.maps = []
        self._py_helpers = {}
        self._listing = [None] * len(ops)
        memset(self._helpers, 0, sizeof(self._helpers))
        self._decode(raw, ops)
        self._default_budget = DEFAULT_BUDGET
        if verify and classic is None and self._has_op(OP_MAY_GOTO):
            # the kernel stops a verified may_goto loop only when the frame's counter
            # (BPF_MAX_LOOPS, do_misc_fixups) is spent: room for that many passes over
            # the program, and as much again at every frame entry (a fresh counter)
            self._pc.frame_grant = BPF_MAX_LOOPS * (len(raw) // INSN_SIZE)
            self._default_budget += self._pc.frame_grant
        self.budget = self._default_budget if budget is None else budget
        self._stack_zero(raw, depths)
        if self.prog_type is None and classic is None:
            _raw_load_hints(self._code, self._n)
        if self.prog_type is not None:
            self._is_tc = self.prog_type != _isa.ProgType.BPF_PROG_TYPE_SOCKET_FILTER
            ctx_rules_build(&self._ctx, self.prog_type, profile, self.arch)
            self._specialise_loads(kinds)
            from .verifier import rules as _rules
            for helper_id in _rules.helpers_allowed(self.prog_type, profile):
                self._helpers[helper_id] = SKB_HELPERS[helper_id]
        if classic is not None:
            for name, helper_id in _isa.CBPF_CALLS.items():
                self._helpers[helper_id] = (<_BuiltinHelper>CBPF_CALLS[name]).fn
        for helper_id, helper in (helpers or {}).items():
            self.set_helper(helper_id, helper)
        if self.prog_type is not None:
            self._check_helpers_implemented()
        self._pc.btf = NULL
        if self.prog_type is not None and self._calls(OP_CALL, _SNPRINTF_BTF):
            # bpf_snprintf_btf prints by the target BTF's type ids
            self._btf_image = btf_image(btf)
            self._pc.btf = &(<BtfImage>self._btf_image).view
        self._pc.obj_types, self._pc.n_obj_types = NULL, 0
        if prog_btf is not None and (
                self._calls(OP_CALL_KFUNC, _isa.KFUNC_IDS["bpf_obj_new_impl"]) or
                self._calls(OP_CALL_KFUNC, _isa.KFUNC_IDS["bpf_percpu_obj_new_impl"])):
            heap_ready()
            self._obj_types = _obj_type_table(prog_btf)
            self._pc.obj_types = <const int32_t*><char*>self._obj_types
            self._pc.n_obj_types = len(prog_btf.types)
        self._pc.code, self._pc.helpers = self._code, self._helpers
        self._pc.maps, self._pc.nmaps = self._map_ptrs, self._nmaps
        self._pc.ctx_rules = &self._ctx
        self._pc.prog_type = self.prog_type if self.prog_type is not None else 0
        self._pc.owner = <void*>self
        self._pc.streams = self._streams
        self._pc.exception_cb = exception_cb_pc(self.functions) or -1
        self._pc.n = self._n
        self._pc.blocks = self._blocks
        self._fill_cases()
        self._pc.cov = NULL
        self._hold_gil = _runs_short(self._code, self._n)
        self._pc.keeps_layout = _keeps_layout(self._code, self._n, self._helpers)
        self._pc.jit, self._pc.runs = NULL, 0
        # loads through BTF pointers (bpf_get_current_task_btf's, a tracing program's
        # walks) are the kernel's BPF_PROBE_MEM loads, and a map pointer's reads its
        # struct (map_struct.pxi); the verifier let no other load leave the run's regions
        self._pc.probe_loads = verify and classic is None and (self._kprobe or any(
            k & 0xFF in (_PTR_TO_BTF_ID, _vstate.CONST_PTR_TO_MAP)
            or k & (_vstate.PTR_UNTRUSTED | _vstate.KERNEL_MEM) for k in kinds.values()))
        if any(k == _vstate.CONST_PTR_TO_MAP for k in kinds.values()):
            map_struct_prepare()
        self._jit_done = jit is False
        if jit is not False:
            _jit_module().on_program(self, jit)
        if _cov_on:
            self._attach_coverage(_cov_sink(self))
        self.tail_call_limit = _isa.MAX_TAIL_CALL_CNT
        self._bind_prog_arrays()
        # bpf_prog_load: the id is allocated once the program is verified and ready to
        # run (bpf_prog_alloc_id after bpf_check), so a refused program takes none
        self.id = _PROCESS_PROG_IDS.take(self)
        global _next_handle
        self.fd = _next_handle
        _next_handle += 1
        _PROG_HANDLES[self.fd] = self

    def _jit_install(self, uintptr_t entry, keep):
        """pyebpf.jit: plain runs start in the native code at ``entry`` (``void f(Vm*)``,
        alive while ``keep`` is) from now on."""
        self._jit_keep = keep
        self._jit_done = True
        self._pc.jit = <void*>entry

    def _jit_code(self):
        """pyebpf.jit: the decoded instructions, the sentinel slot included."""
        return PyBytes_FromStringAndSize(<char*>self._code, (self._n + 1) * sizeof(Insn))

    @property
    def jitted(self):
        """Whether plain runs (no trace, no coverage) start in pyebpf.jit's native code."""
        return self._pc.jit != NULL

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

    cdef bint _has_op(self, uint8_t op):
        """Whether a decoded instruction is ``op``."""
        cdef uint32_t pc
        for pc in range(self._n):
            if self._code[pc].op == op:
                return True
        return False

    cdef bint _calls(self, uint8_t op, int64_t target):
        """Whether a decoded instruction ``op`` (OP_CALL: a helper, OP_CALL_KFUNC: a
        kfunc) calls ``target``."""
        cdef uint32_t pc
        for pc in range(self._n):
            if self._code[pc].op == op and <int64_t>self._code[pc].imm == target:
                return True
        return False

    cdef _check_helpers_implemented(self):
        cdef uint32_t pc
        cdef int64_t hid
        for pc in range(self._n):
            if self._code[pc].op != OP_CALL:
                continue
            hid = <int64_t>self._code[pc].imm
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

    def _decoded_ops(self):
        """The internal op id the interpreter runs at each slot (``isa`` ids, lddw second
        slots ``OP_LDDW_TAIL``, specialised context loads ``isa.CTX_LOAD_OPS``)."""
        return [self._code[k].op for k in range(self._n)]

    def _load_hints(self):
        """The decoded region hint of each slot's plain load (isa.LOAD_HINTS: the
        verifier's pointer kind, or a raw program's r1 or r10 as _raw_load_hints follows
        them), 0 for none and for every other instruction."""
        return [self._code[k].imm if self._code[k].op in (OP_LDX8, OP_LDX16, OP_LDX32,
                                                           OP_LDX64) else 0
                for k in range(self._n)]

    def __repr__(self):
        kind = self.prog_type.name if self.prog_type is not None else "raw"
        return f"<pyebpf.Program {kind}, {self._n} slots>"

    cdef _fill_cases(self):
        """ProgCore.cases from the decoded ops (after the decoder's last rewrite of them:
        _specialise_loads): each slot's case address, the sentinel past the end's too; a
        slot no jump enters that follows a case leaving its result in acc gets the variant
        reading that register from acc (isa.acc_readers: ALU ops and conditional jumps)."""
        cdef uint32_t pc
        cdef const Insn* c
        cdef const Insn* prev
        cdef const Insn* nxt
        cdef int kind
        if pyebpf_case_table == NULL:
            return
        cdef bytearray entered = bytearray(self._n + 1)
        cdef bytearray fused = bytearray(self._n + 1)
        self._cases = <const void**>malloc((self._n + 1) * sizeof(void*))
        if self._cases == NULL:
            raise MemoryError()
        for pc in range(self._n):
            if _OP_DECODE[self._code[pc].op] & (DECODE_JUMP_OFF | DECODE_JUMP_IMM) and \
                    <uint32_t>self._code[pc].off <= self._n:
                entered[self._code[pc].off] = 1
        for pc in range(self._n + 1):
            self._cases[pc] = pyebpf_case_table[self._code[pc].op]
            if pc == 0 or entered[pc]:
                continue
            # a slot only ever run right after the one before it, an ALU case (a mov of
            # a constant too) or a load that left its result in acc: the variant that
            # reads that register from acc (an ALU op's or a conditional jump's)
            c, prev = &self._code[pc], &self._code[pc - 1]
            if not _OP_DECODE[prev.op] & DECODE_ACC:
                continue
            kind = (1 if c.dst == prev.dst else 0) | (2 if c.src == prev.dst else 0)
            if kind == 3 and pyebpf_acc_table[2][c.op] != NULL:
                self._cases[pc] = pyebpf_acc_table[2][c.op]
            elif kind & 1 and pyebpf_acc_table[0][c.op] != NULL:
                self._cases[pc] = pyebpf_acc_table[0][c.op]
            elif kind & 2 and pyebpf_acc_table[1][c.op] != NULL:
                self._cases[pc] = pyebpf_acc_table[1][c.op]
        # mov rX, rY then an immediate op on rX: one case runs both (isa.fused_ops).  The
        # second slot keeps its own case for a jump into it; the pair is one block's
        # (a jump ends a block), so the budget charged on entering it covers both.
        for pc in range(1, self._n):
            c, nxt = &self._code[pc - 1], &self._code[pc]
            if c.op != OP_MOV64_X or nxt.dst != c.dst or pyebpf_acc_table[3][nxt.op] == NULL:
                continue
            self._cases[pc - 1] = pyebpf_acc_table[
                4 if self._cases[pc - 1] == pyebpf_acc_table[1][OP_MOV64_X] else 3][nxt.op]
            fused[pc - 1] = 1
        self._fill_acc2_cases(entered, fused)
        self._pc.cases = self._cases

    cdef _fill_acc2_cases(self, bytearray entered, bytearray fused):
        """The variants reading acc2: at a slot only ever run right after two cases that
        leave acc (P, the one before it, and Q before P, one slot each or a fused pair),
        neither entered by a jump, a register Q wrote and P did not is in acc2 (the loop
        sends a run resumed right after such a case to the switch, so that every run
        that reaches these slots ran P and Q)."""
        cdef uint32_t k, p_start, p_end
        cdef const Insn* c
        cdef uint8_t pd, qd
        cdef int dk, sk, row
        cdef int rows[2]
        for k in range(2, self._n):
            # a pair's second slot runs its own case only when entered; a pair's first
            # keeps the pair's case (the slots after it count on one case for the two)
            if entered[k] or fused[k - 1] or fused[k]:
                continue
            p_end = k - 1
            p_start = k - 2 if fused[k - 2] else k - 1
            if p_start < 1 or entered[p_start] or entered[p_end]:
                continue
            if not (_OP_DECODE[self._code[p_end].op] & DECODE_ACC
                    and _OP_DECODE[self._code[p_start - 1].op] & DECODE_ACC):
                continue
            pd, qd = self._code[p_end].dst, self._code[p_start - 1].dst
            if pd == qd:
                continue
            c = &self._code[k]
            # 1: from acc, 2: from acc2, 0: from r[]
            dk = 1 if c.dst == pd else 2 if c.dst == qd else 0
            sk = 1 if c.src == pd else 2 if c.src == qd else 0
            # the first of two rows that has the op (-1: none): ps, p, dq, q (table rows)
            rows[0], rows[1] = -1, -1
            if dk == 2:
                rows[0], rows[1] = (6 if sk == 1 else 5), (5 if sk == 1 else 7 if sk == 2 else -1)
            elif sk == 2:
                rows[0], rows[1] = (8 if dk == 1 else 7), 7
            for row in rows[:2]:
                if row >= 0 and pyebpf_acc_table[row][c.op] != NULL:
                    self._cases[k] = pyebpf_acc_table[row][c.op]
                    break

    cdef _decode(self, bytes raw, list ops):
        """The interpreter's instructions from the raw slots and the verifier's table
        entry of each (``ops``: None for an lddw's second slot), and its block table."""
        cdef uint32_t n = len(ops)
        cdef uint32_t pc
        cdef Insn* c
        cdef const uint8_t* slot
        cdef int16_t off
        cdef int32_t imm, hi
        cdef uint8_t flags
        self._code = <Insn*>malloc((n + 1) * sizeof(Insn))
        if self._code == NULL:
            raise MemoryError()
        memset(self._code, 0, (n + 1) * sizeof(Insn))  # the slot past the end is OP_INVALID
        self._n = n
        self._blocks = <uint32_t*>malloc((n + 1) * sizeof(uint32_t))
        if self._blocks == NULL:
            raise MemoryError()
        for pc in range(n):
            op = ops[pc]
            c = &self._code[pc]
            if op is None:
                c.op = OP_LDDW_TAIL
                continue
            # struct bpf_insn: code, dst_reg:4 | src_reg:4, s16 off, s32 imm (little-endian)
            slot = <const uint8_t*>raw + pc * INSN_SIZE
            memcpy(&off, slot + 2, 2)
            memcpy(&imm, slot + 4, 4)
            c.op = op.id
            flags = _OP_DECODE[c.op]
            c.dst, c.src, c.size = slot[1] & 0x0F, slot[1] >> 4, _OP_SIZE[c.op]
            if flags & DECODE_JUMP_OFF:
                c.off = pc + 1 + off
            elif flags & DECODE_JUMP_IMM:
                c.off = pc + 1 + imm
            else:
                c.off = off
            if flags & DECODE_LDDW:
                # pseudo sources are resolved now; at run time every lddw is a constant
                memcpy(&hi, slot + INSN_SIZE + 4, 4)
                c.imm = self._lddw_value(pc, op, imm, hi)
                c.op = OP_LDDW
            elif flags & DECODE_LDX:
                c.imm = _isa.LOAD_HINT_NONE     # a load's imm is its region hint (_specialise_loads)
            elif c.op == OP_CALL_KFUNC:
                c.imm = self._kfunc_id(pc, imm)
            else:
                c.imm = <uint64_t><int64_t>imm
        self._arena_casts(n)
        _block_lengths(self._code, n, self._blocks)

    cdef _arena_casts(self, uint32_t n):
        """addr_space_cast as the kernel runs it: to address space 0, or to 1 in an arena
        with BPF_F_NO_USER_CONV, a 32-bit mov (do_misc_fixups), decoded imm 0; to 1 the
        JIT's conversion by the program's arena's user_vm_start, decoded as it with bit
        0 set (isa._alu_case)."""
        cdef uint32_t pc
        cdef Insn* c
        cdef Map arena = next((m for m in self.maps if (<Map>m)._m.arena != NULL), None)
        for pc in range(n):
            c = &self._code[pc]
            if c.op != OP_ADDR_SPACE_CAST:
                continue
            if c.imm == 1 << 16 and arena is not None and \
                    not arena._m.flags & BPF_F_NO_USER_CONV:
                c.imm = arena._m.arena.user_vm_start | 1
            else:
                c.imm = 0

    cdef _stack_zero(self, bytes raw, dict depths):
        """How much of a frame a run zeroes when it enters a function (ProgCore.stack_zero
        for frame 0, a local call's decoded imm for its callee's): a verified function's
        stack depth (``depths``, the verifier's: no access or helper argument reaches
        below it), rounded up to 8; for unverified code the whole frame, or nothing when
        no slot names r10, a program's only way to a stack pointer."""
        cdef uint32_t pc
        cdef Insn* c
        cdef const uint8_t* code = <const uint8_t*>raw
        cdef uint32_t whole = 0
        for pc in range(self._n):
            if code[pc * INSN_SIZE + 1] & 0x0F == 10 or code[pc * INSN_SIZE + 1] >> 4 == 10:
                whole = FRAME_SIZE
                break
        self._frame0_zero = _rounded_depth(depths[0]) if depths else whole
        self._pc.stack_zero = self._frame0_zero
        for pc in range(self._n):
            c = &self._code[pc]
            if c.op == OP_CALL_LOCAL:
                c.imm = _rounded_depth(depths.get(c.off, FRAME_SIZE)) if depths else whole

    cdef _specialise_loads(self, dict kinds):
        """Loads the verifier proved to read the context (``kinds``: its pointer kind
        per instruction; empty for an unverified program, which keeps the checked path)
        become direct reads of their field; full-width ``data`` and ``data_end`` loads,
        of the packet pointers (the kernel's convert_ctx_access).  Loads through the
        stack, the packet or a map value get the region hint of that kind (isa.LOAD_HINTS);
        they stay checked."""
        cdef Insn* c
        cdef uint32_t off
        cdef uint8_t field, width
        if self._kprobe:
            return      # pt_regs is a plain read-only region: its loads need no field table
        for pc, kind in kinds.items():
            c = &self._code[<uint32_t>pc]
            if kind == _vstate.PTR_TO_ARENA and c.op in _ALU32_OF:
                # do_misc_fixups: an ALU64 op on an arena pointer runs as its ALU32 op
                # (the verifier's needs_zext), on every path
                c.op = _ALU32_OF[c.op]
                continue
            if not (c.op == OP_LDX8 or c.op == OP_LDX16 or c.op == OP_LDX32 or
                    c.op == OP_LDX64):
                continue
            if kind != _PTR_TO_CTX:
                c.imm = _REGION_HINTS.get(kind, _isa.LOAD_HINT_NONE)
                continue
            off = <uint32_t>c.off
            field, width = self._ctx.field[off], self._ctx.width[off]
            if field == F_DATA and c.size == width:
                c.op = OP_LDX_CTX_DATA
            elif field == F_DATA_END and c.size == width:
                c.op = OP_LDX_CTX_DATA_END
            else:
                c.op = OP_LDX_CTX
                c.imm = field | <uint64_t>width << 8

    cdef uint64_t _kfunc_id(self, uint32_t pc, int32_t kid) except? 0:
        if not 0 < kid < N_KFUNC_IDS:
            raise LoadError(f"pc {pc}: kfunc call to id {kid}, which is no kfunc pyebpf "
                            f"knows (pyebpf.isa.KFUNC_IDS)")
        if KFUNCS[kid] == NULL:
            raise LoadError(f"pc {pc}: kfunc {_isa.KFUNC_NAMES[kid]} is not implemented by "
                            f"pyebpf yet (see docs/kfuncs-table.md)")
        if KFUNCS[kid] == _k_cast_to_kern_ctx:
            kern_ctx_prepare()
        elif KFUNCS[kid] == _k_get_kmem_cache:
            kmem_cache_prepare()
        elif _isa.KFUNC_NAMES[kid].startswith(("bpf_cgroup_", "bpf_iter_css_")) or \
                KFUNCS[kid] == _k_task_get_cgroup1:
            cgroup_prepare()
        elif KFUNCS[kid] == _k_send_signal_task or KFUNCS[kid] == _k_task_work_schedule:
            # both read the task's flags
            task_prepare()
        elif _isa.KFUNC_NAMES[kid] in _CT_KFUNC_NAMES:
            ct_prepare()
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
        if op.disc_value == _isa.BPF_PSEUDO_BTF_ID:
            # a typed ksym: the kernel writes the variable's address (check_pseudo_btf_id)
            from .btf import Kind
            from .btf.relo import target_btf
            btf = target_btf()
            if not 0 < lo < len(btf) or btf.types[lo].kind not in (Kind.VAR, Kind.FUNC):
                # check_pseudo_btf_id: only a VAR or FUNC of the kernel BTF has an address
                raise LoadError(f"pc {pc}: lddw of BTF id {lo}, which is no variable or "
                                f"function of the kernel BTF")
            return _ksym.variable_address(btf, lo)
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
        if m._m.arena != NULL:
            # arena_map_direct_value_addr: an __arena global's user address
            if offset > <uint64_t>m._m.arena.npages * PAGE_SIZE:
                raise LoadError(f"pc {pc}: offset {offset} is past the arena (map fd {lo}): "
                                "ERANGE")
            return m._m.arena.user_vm_start + offset
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
        # a Python helper reads the stack wherever the pointers it gets lead
        self._pc.stack_zero = FRAME_SIZE if self._py_helpers else self._frame0_zero
        self._pc.keeps_layout = (self._code != NULL
                                 and _keeps_layout(self._code, self._n, self._helpers))

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
            held_sockets_entry()    # the helper may have released a socket

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

    def read_stream(self, stream, size=None):
        """Read and consume up to ``size`` bytes (all, when None) of the program's BPF
        stream ``stream``: 1 or ``"stdout"``, 2 or ``"stderr"`` (``enum bpf_stream_id``),
        what ``bpf_stream_vprintk_impl`` (libbpf's ``bpf_stream_printk``) wrote there
        in runs of this program, as BPF_PROG_STREAM_READ_BY_FD (``bpftool prog tracelog
        stdout``) reads a kernel program's: bytes across prints, in order, the rest kept
        for the next read.  Another stream id raises :class:`pyebpf.errors.BpfError`
        with ENOENT, as the kernel refuses it."""
        cdef Stream* s
        cdef size_t n, got
        cdef bytearray out
        cdef char* dst
        sid = {"stdout": BPF_STDOUT, "stderr": BPF_STDERR}.get(stream, stream)
        if sid != BPF_STDOUT and sid != BPF_STDERR:
            raise BpfError(ENOENT, f"read_stream: no stream {stream!r} (1 or 'stdout', "
                                   f"2 or 'stderr'): ENOENT")
        s = &self._streams[<int>sid - 1]
        if size is None:
            n = BPF_STREAM_MAX_CAPACITY + MAX_BPRINTF_BUF    # more than a stream holds
        elif size < 0:
            raise ValueError(f"read_stream: size {size} is negative")
        else:
            n = size
        # what it holds now, and room for what a concurrent run adds meanwhile
        n = min(n, <size_t>(s.len - s.head) + MAX_BPRINTF_BUF)
        out = bytearray(n)
        dst = out
        with nogil:
            got = stream_read(s, dst, n)
        return bytes(out[:got])

    def run(self, data=None, *, budget=None, bint trace=False, **fields):
        """Run once and return a :class:`Result`.

        Raw mode: ``data`` is the memory r1 points at (a writable copy is made).
        Skb program types: ``data`` is an Ethernet frame (bytes, bytearray or a scapy
        packet whose first layer is ``Ether``; another first layer is a ValueError) and
        ``fields`` set the packet's metadata (see :data:`SKB_FIELDS`).  Without
        ``ktime``, bpf_ktime_get_ns reads the process's clock (:data:`KTIME_START`,
        advancing between runs; docs/clock.md).  ``machine=`` (a
        :class:`pyebpf.trace.Machine`) gives the run a current task, as
        BPF_PROG_TEST_RUN's caller is one: its ids, pid namespace, registers, local
        storage and kernel memory (then not ``pid_tgid``, ``uid_gid`` or ``comm``).

        KPROBE programs take no ``data``: ``regs=`` gives their ``struct pt_regs`` (a dict
        of register names or the struct's bytes), ``machine=`` the modelled machine (a
        :class:`pyebpf.trace.Machine`); the other arguments they take are listed in
        :data:`TRACE_FIELDS`.  ``retval`` is the u32 the kernel's trace_call_bpf sees.

        Raises an :class:`~pyebpf.errors.ExecutionError` subclass when the program
        faults, runs past its budget or calls a helper that is not available.
        """
        # Program.run is _run_entry (below the class): this def parses what it leaves
        return self._run(data, budget, trace, fields, True)

    cdef bint _grows(self, object budget) noexcept:
        """Whether a run given ``budget`` (None: the program's) grows it at frame
        entries: only on the default budget; an explicit one is a hard cap."""
        return budget is None and self.budget == self._default_budget

    cdef inline object _run(self, object data, object budget, bint trace, dict fields, bint hooks):
        """run(); ``fields`` None: no keywords were given (no dict made); ``hooks``
        False: the run and pin hooks have had their say."""
        if hooks and (_run_hook is not None or _pin_hook is not None):
            return self._run_hooked(data, budget, trace, fields)
        if _jit_after and not self._jit_done and self._pc.runs + 1 >= _jit_after:
            self._tier()
        # counted here, not in vm_run: tcsim's replay threads run one program at once,
        # and a counter they all wrote would bounce its cache line between the cores
        self._pc.runs += 1
        # one function a context kind: each sets up (and cleans up) only its own, which
        # keeps the common call, a frame to an skb program, short
        if self._kprobe:
            return self._run_kprobe(data, budget, trace, {} if fields is None else fields)
        if self.prog_type is not None:
            return self._run_skb(data, budget, trace, self._env_fields(fields))
        if fields is not None and len(fields) != 0:
            raise TypeError(f"run() got packet fields ({', '.join(fields)}) but "
                            "this program has no skb context (prog_type=None)")
        return self._run_raw(data, budget, trace)

    cdef int _tier(self) except -1:
        """Hand the program to pyebpf.jit's tiering (once); out of _run's line, which
        it would keep the C compiler from inlining."""
        self._jit_done = True
        _jit.tier(self)
        return 0

    cdef inline dict _env_fields(self, dict fields):
        """The fields of an skb program's run: ``fields`` with the program's
        Environment as ``env`` when it has one and they name none."""
        if self.env is None:
            return fields
        if fields is None:
            fields = {}
        if "env" not in fields:
            fields["env"] = self.env
        return fields

    cdef object _run_hooked(self, object data, object budget, bint trace, dict fields):
        """_run when a hook is installed: the run hook's Result, else the run inside the
        pin hook's transaction."""
        if self._kprobe:
            fields = {} if fields is None else fields
        elif self.prog_type is not None:
            fields = self._env_fields(fields)
        if _run_hook is not None:
            return _run_hook(self, data, budget, trace, fields if fields is not None else {})
        # pinned maps: the run is one transaction on their pin files (docs/pinning.md)
        txn = _pin_hook(self)
        if txn is None:
            return self._run(data, budget, trace, fields, False)
        with txn:
            return self._run(data, budget, trace, fields, True)

    cdef inline int _vm_go(self, Vm* vm, uint64_t limit, bint trace) except -1:
        """Run the program on ``vm`` (set up by the caller); an ExecutionError if it
        did not exit."""
        held_sockets_entry()
        if trace or self._pc.py_helpers or self._hold_gil:
            vm_run(vm, &self._pc, trace)
        else:
            with nogil:
                vm_run(vm, &self._pc, False)
        if vm.status != STATUS_EXIT:
            raise vm_fault(vm, limit)
        return 0

    cdef inline Result _vm_result(self, Vm* vm, uint64_t limit):
        """The Result of the run ``vm`` made: its instruction count and r0."""
        cdef Result res = _result_new()
        res.insn_count = limit + vm.granted - <uint64_t>vm.budget_left
        res._r0 = vm.reg[0]
        return res

    cdef inline int _run_done(self, Result res, Vm* vm, bint trace,
                              MachineImage image) except -1:
        """The end of every kind of run: the trace asked for, then, as the run returns
        to user space, the task work the program queued for the current task."""
        if trace:
            res.trace = self._make_trace(vm)
        if _tw_scheduled:
            fire_task_work(image, _isa.TIMER_CALLBACKS_PER_GAP)
        return 0

    cdef object _run_skb(self, object data, object budget, bint trace, dict fields):
        """_run of an skb program: ``data`` the frame."""
        cdef Vm vm
        cdef Skb tmpl
        cdef Skb spare
        cdef Skb* skb = NULL
        cdef bytes src
        cdef uint64_t limit = self.budget if budget is None else budget
        cdef Result res
        cdef bint own_clock = False
        cdef bint tmpl_made = False
        cdef MachineImage image = None     # the run's machine: alive until the run ends
        cdef TraceWorld world
        cdef bint has_fields = fields is not None and len(fields) != 0
        cdef object machine = None
        cdef bint clean
        cdef const Skb* base      # the template this run's skb is loaded from
        cdef uint32_t keep

        vm_begin(&vm, limit, self.tail_call_limit, self._profile_id == PROFILE_V46)
        vm.grow = self._grows(budget)
        try:
            src = _frame_bytes(data, self.prog_type)
            if has_fields and "machine" in fields:
                machine = _packet_machine(fields)
                has_fields = len(<dict>fields) != 0
            if has_fields:
                base = self._fields_template(fields)
                if base == NULL:
                    memset(&tmpl, 0, sizeof(Skb))    # freed even if a field is refused
                    tmpl_made = True
                    skb_init(&tmpl, _ETH_ZERO, fields, self.prog_type, self._profile_id)
                    keep = skb_keep_bits(fields)
                    base = self._keep_fields_template(fields, &tmpl, keep)
                    tmpl_made = base == &tmpl
                else:
                    keep = self._ftmpl_keep
            else:
                if not self._tmpl_ready:
                    self._template()
                base, keep = &self._tmpl, 0
            skb = self._take_skb(&spare)
            clean = skb == &self._work and self._work_clean and base == &self._tmpl
            self._work_clean = False
            if not (skb_reload_frame(skb, &self._tmpl, <const uint8_t*>PyBytes_AS_STRING(src),
                                     PyBytes_GET_SIZE(src), 0) if clean else
                    skb_load_frame(skb, base, <const uint8_t*>PyBytes_AS_STRING(src),
                                   PyBytes_GET_SIZE(src), keep)):
                raise MemoryError()
            # this run leaves the work skb clean if its program keeps the layout
            self._work_clean = (skb == &self._work and base == &self._tmpl
                                and self._pc.keeps_layout and not self._pc.py_helpers)
            if not has_fields or "ktime" not in fields:
                skb.ktime, own_clock = _ktime_clock, True
            vm_attach_skb(&vm, skb, self._is_tc)
            if machine is not None:
                image = machine_image(machine)
                packet_world(&vm, skb, &world, image)
            self._vm_go(&vm, limit, trace)
            res = self._vm_result(&vm, limit)
            self._skb_result(res, skb, src)
            res._input = src
            if machine is not None:
                res._signals = _signals_sent(world.signals, world.thread_signals)
            self._run_done(res, &vm, trace, image)
            return res
        finally:
            vm_end(&vm)
            if skb != NULL:
                if own_clock:
                    _clock_after_run(skb.ktime)
                self._give_skb(skb)
            if tmpl_made:
                skb_free(&tmpl)

    cdef object _run_kprobe(self, object data, object budget, bint trace, dict fields):
        """_run of a KPROBE program: ``data`` must be None, ``fields`` its arguments."""
        cdef Vm vm
        cdef Skb spare
        cdef uint64_t limit = self.budget if budget is None else budget
        cdef Result res
        cdef bint own_clock = False
        cdef MachineImage image = None     # the run's machine: alive until the run ends
        cdef TraceWorld world
        cdef bytes regs

        vm_begin(&vm, limit, self.tail_call_limit, self._profile_id == PROFILE_V46)
        vm.grow = self._grows(budget)
        memset(&spare, 0, sizeof(Skb))    # freed below even if trace_begin refuses
        try:
            regs = PyBytes_FromStringAndSize(NULL, _REGS_SIZE[self.arch])
            image = trace_begin(&vm, &spare, &world, <uint8_t*>PyBytes_AS_STRING(regs), data,
                                fields, self._profile_id, self.arch)
            if "ktime" not in fields:
                spare.ktime, own_clock = _ktime_clock, True
            self._vm_go(&vm, limit, trace)
            res = self._vm_result(&vm, limit)
            res._kind = KIND_TRACE
            if world.signals or world.thread_signals:
                res._signals = _signals_sent(world.signals, world.thread_signals)
            if spare.printk_len:
                res._printk = PyBytes_FromStringAndSize(spare.printk, spare.printk_len - 1)
            self._run_done(res, &vm, trace, image)
            return res
        finally:
            vm_end(&vm)
            if own_clock:
                _clock_after_run(spare.ktime)
            self._give_skb(&spare)

    cdef object _run_raw(self, object data, object budget, bint trace):
        """_run of a program without a context type: ``data`` the memory r1 points at."""
        cdef Vm vm
        cdef uint64_t limit = self.budget if budget is None else budget
        cdef Result res
        cdef bytes mem = b""
        cdef bytes src
        cdef Py_ssize_t size = 0

        vm_begin(&vm, limit, self.tail_call_limit, self._profile_id == PROFILE_V46)
        vm.grow = self._grows(budget)
        try:
            if data is not None:
                src = data if type(data) is bytes else bytes(data)
                size = len(src)
                # A fresh object the program may write to.  Passing NULL matters:
                # CPython shares cached objects for 1-byte strings given their contents.
                mem = PyBytes_FromStringAndSize(NULL, size)
                memcpy(PyBytes_AS_STRING(mem), <const char*>src, size)
            vm_attach_memory(&vm, <uint8_t*>PyBytes_AS_STRING(mem), size)
            self._vm_go(&vm, limit, trace)
            res = self._vm_result(&vm, limit)
            res._data = mem
            self._run_done(res, &vm, trace, None)
            return res
        finally:
            vm_end(&vm)

    cdef const Skb* _template(self) except NULL:
        """The skb template of runs without fields, made at the first."""
        if not self._tmpl_ready:
            skb_init(&self._tmpl, _ETH_ZERO, None, self.prog_type, self._profile_id)
            self._tmpl_ready = True
        return &self._tmpl

    cdef const Skb* _fields_template(self, dict fields) except? NULL:
        """The template of runs with ``fields`` when it is kept (_keep_fields_template),
        else NULL."""
        if self._ftmpl_fields is None or not _int_fields(fields) or fields != self._ftmpl_fields:
            return NULL
        return &self._ftmpl

    cdef const Skb* _keep_fields_template(self, dict fields, Skb* tmpl, uint32_t keep):
        """Keep ``tmpl``, made by skb_init with ``fields``, for the next runs with equal
        fields when each is an int (skb_init's template is then a function of their names
        and values, the program type and profile only: no Environment, device table or
        tunnel, whose objects may change between runs): the kept template, else ``tmpl``."""
        if not _int_fields(fields):
            return tmpl
        kept = dict(fields)     # first: nothing below can fail, so tmpl has one owner
        skb_free(&self._ftmpl)
        self._ftmpl = tmpl[0]
        self._ftmpl_fields, self._ftmpl_keep = kept, keep
        return &self._ftmpl

    cdef Skb* _take_skb(self, Skb* spare) noexcept:
        """The work skb, or ``spare`` (zeroed) while another run holds it."""
        if not self._work_busy:
            self._work_busy = True
            return &self._work
        memset(spare, 0, sizeof(Skb))
        return spare

    cdef void _give_skb(self, Skb* skb) noexcept:
        skb.devices = NULL        # the template's: skb_load_frame lends it
        if skb == &self._work:
            self._work_busy = False
        else:
            skb_free(skb)

    cdef int _skb_result(self, Result res, Skb* skb, bytes src) except -1:
        cdef bytes out
        res._kind = KIND_TC if self._is_tc else KIND_SF
        if <Py_ssize_t>skb.len == PyBytes_GET_SIZE(src) and memcmp(
                skb_data(skb), PyBytes_AS_STRING(src), skb.len) == 0:
            res.data_out = src        # the bytes are the frame's: no copy to make
        else:
            res.data_out = PyBytes_FromStringAndSize(<char*>skb_data(skb), skb.len)
        if skb.csum_checked:
            res._csum = (CSUM_GOOD if csum_fold(skb.csum) == csum_fold(skb_csum_now(skb))
                         else CSUM_BAD)
        if self._is_tc:
            if skb_wire_len(skb) != skb.len:
                out = PyBytes_FromStringAndSize(NULL, skb_wire_len(skb))
                skb_wire_bytes(skb, <uint8_t*>PyBytes_AS_STRING(out))
                res._data = out
            if skb.redirect_set and <int32_t>res._r0 == TC_ACT_REDIRECT:
                res._redirect = 2 if skb.redirect_flags & BPF_F_INGRESS else 1
                res._redirect_ifindex = skb.redirect_ifindex
        if skb.nclones:
            res._clones = _clone_records(skb)
        if skb.printk_len:
            res._printk = PyBytes_FromStringAndSize(skb.printk, skb.printk_len - 1)
        if skb.tun.present:
            res._tunnel = _tunnel_dict(&skb.tun)
        res._network_start = skb.data != skb.mac_header
        _skb_meta(&res._meta, skb)
        return 0

    def run_many(self, frames, *, offsets=None, budget=None, bint output=False, **fields):
        """Run once per frame, in C, and return a :class:`Batch`: what a loop of
        :meth:`run` over the frames gives (the same maps, clock and fields), compactly.

        ``frames``: a sequence of frames (bytes, bytearray, scapy packets: as
        :meth:`run` takes them); or one buffer holding them all, with ``offsets`` the
        ``len(frames) + 1`` boundaries (frame ``k`` is ``frames[offsets[k]:offsets[k + 1]]``);
        or a capture of Ethernet frames, as :func:`pyebpf.pcap.pcapio.read` returns it
        or a :class:`pyebpf.pcap.pcapio.Source` reading it a chunk at a time.  ``fields``
        and ``budget`` apply to every run; ``output=True`` keeps each run's ``data``.

        KPROBE programs: ``frames`` is a sequence of registers (what ``run(regs=...)``
        takes) or one buffer of packed ``struct pt_regs`` of the program's ``arch``;
        ``fields`` are :data:`TRACE_FIELDS` but ``regs`` (one machine for every run); no
        ``offsets`` or ``output``; ``retval`` is ``'I'`` and ``length`` 0.

        A run that faults does not stop the batch: its error is in ``faults``.  A frame
        no skb can hold (shorter than 14 or longer than 65535 bytes) is a ValueError
        naming its index, raised before anything runs.
        """
        if hasattr(frames, "chunks"):
            return _merge_batches(self._run_chunks(frames, budget, output, fields))
        if offsets is None and hasattr(frames, "frames") and hasattr(frames, "linktypes"):
            _require_ethernet(frames.linktypes, self.prog_type)
            frames = frames.frames
        if self.env is not None and self.prog_type is not None and "env" not in fields:
            fields["env"] = self.env
        if self._kprobe:
            return _trace_run_many(self, frames, offsets, budget, output, fields)
        if _run_hook is not None:
            return self._run_each(frames, offsets, budget, output, fields)
        if _pin_hook is not None:
            txn = _pin_hook(self)
            if txn is not None:
                with txn:
                    return _batch_run(self, frames, offsets, budget, output, fields)
        return _batch_run(self, frames, offsets, budget, output, fields)

    def _run_chunks(self, source, budget, output, fields):
        for chunk, scanner, first in source.chunks():
            _require_ethernet([scanner.iface_linktype(k) for k in range(scanner.interfaces)]
                              if scanner.pcapng else [scanner.linktype], self.prog_type)
            yield self.run_many(scanner.packets(chunk)[0], budget=budget, output=output,
                                **fields)

    def _run_each(self, frames, offsets, budget, output, fields):
        """run_many as a loop of run(): while a hook (the pytest plugin) watches runs."""
        cdef Batch batch = _new_batch(self, _frame_list(frames, offsets), output)
        for k, frame in enumerate(batch._frames):
            try:
                res = (self.run(budget=budget, regs=frame, **fields) if self._kprobe
                       else self.run(frame, budget=budget, **fields))
            except ExecutionError as exc:
                batch.faults.append((k, exc))
                continue
            batch._set(k, res.retval, res.insn_count, res.data)
        batch._frames = None
        return batch

    cdef _regions(self, Vm* vm):
        return [(self._region_name(vm.regions[k].name), vm.regions[k].start, vm.regions[k].end,
                 vm.regions[k].writable) for k in range(vm.nregions)]

    def _region_name(self, int name):
        if name < REGION_MAP0:
            return _REGION_NAMES[name]
        if name == REGION_HEAP:
            return "the object heap"
        if name >= REGION_SOCKETS:
            return ("sockets", "the packet's socket", "kernel sockets",
                    "conntrack entries")[name - REGION_SOCKETS]
        if name >= REGION_INNER_MAP:
            return ("inner map", "ring buffer record", "map key", "user ring buffer sample",
                    "dynptr")[name - REGION_INNER_MAP]
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
            return BudgetExceeded(f"instruction budget of {limit + vm.granted} exhausted (endless loop?); "
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
        if vm.skb != NULL and (vm.world == NULL or vm.world.packet):
            # a tracing context is a region already
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


# --- Program.run's entry -----------------------------------------------------------
# Cython makes a dict for **fields at every call of a def, also of prog.run(frame) (~100
# machine instructions of an empty run's ~1,200, with its parsing ~150): Program.run is
# this vectorcall method instead, which makes the dict only for packet fields, and leaves
# what it does not take apart (more than one positional argument, data given twice) to
# the def, for its errors.

cdef extern from "Python.h":
    ctypedef struct PyMethodDef:
        const char* ml_name
        void* ml_meth
        int ml_flags
        const char* ml_doc
    ctypedef struct _TypeWithDict "PyTypeObject":
        PyObject* tp_dict
    int METH_FASTCALL
    int METH_KEYWORDS
    object PyDescr_NewMethod(type cls, PyMethodDef* meth)
    void PyType_Modified(type cls)
    Py_ssize_t PyTuple_GET_SIZE(PyObject* t)
    PyObject* PyTuple_GET_ITEM(PyObject* t, Py_ssize_t k)

cdef object _run_args = Program.__dict__["run"]    # the def: its parsing and errors
cdef bytes _RUN_DOC = ("run($self, data=None, *, budget=None, trace=False, **fields)\n--\n\n"
                       + _run_args.__doc__).encode()
cdef PyMethodDef _RUN_DEF


cdef dict _keywords(PyObject** values, PyObject* kwnames, Py_ssize_t n):
    return {<object>PyTuple_GET_ITEM(kwnames, k): <object>values[k] for k in range(n)}


cdef object _run_entry(object self, PyObject** args, Py_ssize_t nargs, PyObject* kwnames):
    """Program.run (METH_FASTCALL | METH_KEYWORDS): ``args`` the positional arguments,
    then the values of the keywords ``kwnames`` names.  run(frame), the common call, has
    nothing to parse: it goes to _run without the locals _run_parse sets up and drops
    (~20 machine instructions)."""
    if nargs == 1 and kwnames == NULL:
        return (<Program>self)._run(<object>args[0], None, False, None, True)
    return _run_parse(self, args, nargs, kwnames)


cdef object _run_parse(object self, PyObject** args, Py_ssize_t nargs, PyObject* kwnames):
    """_run_entry's arguments taken apart: data, budget, trace and the fields."""
    cdef object data = None
    cdef object budget = None
    cdef bint trace = False
    cdef dict fields = None
    cdef Py_ssize_t k
    cdef Py_ssize_t nkw = PyTuple_GET_SIZE(kwnames) if kwnames != NULL else 0
    if nargs == 1:
        data = <object>args[0]
    if nargs > 1:
        return _run_args(self, *[<object>args[k] for k in range(nargs)], **_keywords(
            args + nargs, kwnames, nkw))
    for k in range(nkw):
        name = <object>PyTuple_GET_ITEM(kwnames, k)
        if name == "budget":
            budget = <object>args[nargs + k]
        elif name == "trace":
            trace = <object>args[nargs + k]
        elif name == "data":
            if nargs:
                return _run_args(self, data, **_keywords(args + nargs, kwnames, nkw))
            data = <object>args[nargs + k]
        else:
            if fields is None:
                fields = {}
            fields[name] = <object>args[nargs + k]
    return (<Program>self)._run(data, budget, trace, fields, True)


_RUN_DEF.ml_name = "run"
_RUN_DEF.ml_meth = <void*>_run_entry
_RUN_DEF.ml_flags = METH_FASTCALL | METH_KEYWORDS
_RUN_DEF.ml_doc = _RUN_DOC
(<dict><object>(<_TypeWithDict*>Program).tp_dict)["run"] = PyDescr_NewMethod(Program, &_RUN_DEF)
PyType_Modified(Program)


# --- run_many: a batch of runs in one C loop ------------------------------------------

@cython.final
cdef class Batch:
    """What :meth:`Program.run_many` left, one entry per frame, in frame order.

    ``retval``: an ``array.array`` of r0 as :attr:`Result.retval` reads it (typecode
    ``'i'``, signed 32-bit, for tc programs; ``'I'`` for socket filters; ``'Q'`` in the
    raw mode); ``insn_count`` (``'Q'``): instructions executed (up to the fault, for a
    run that faulted); ``length`` (``'I'``): ``len(Result.data)``; ``data``: with
    ``output=True`` each run's :attr:`Result.data` (None where the run faulted), else
    None; ``faults``: ``(index, error)`` for each run that raised an
    :class:`~pyebpf.errors.ExecutionError` (its retval and length are 0).
    """
    cdef readonly object retval, insn_count, length
    cdef readonly list data, faults
    cdef object _frames         # the frames, while run_many's loop of run() goes

    def __len__(self):
        return len(self.insn_count)

    def __repr__(self):
        return f"<pyebpf.Batch of {len(self)} runs, {len(self.faults)} faulted>"

    def _set(self, Py_ssize_t k, retval, insn_count, data):
        self.retval[k], self.insn_count[k] = retval, insn_count
        self.length[k] = 0 if data is None else len(data)      # a kprobe run has no data
        if self.data is not None:
            self.data[k] = data


cdef Batch _new_batch(Program prog, frames, bint output):
    cdef Batch b = Batch.__new__(Batch)
    cdef Py_ssize_t n = len(frames)
    code = "Q" if prog.prog_type is None else "i" if prog._is_tc and not prog._kprobe else "I"
    b.retval = _array.array(code, bytes(n * (8 if code == "Q" else 4)))
    b.insn_count = _array.array("Q", bytes(n * 8))
    b.length = _array.array("I", bytes(n * 4))
    b.data = [None] * n if output else None
    b.faults = []
    b._frames = frames
    return b


def _merge_batches(batches):
    """One Batch of run_many's batches, one per chunk of a capture, in order."""
    cdef Batch out = None
    cdef Batch b
    cdef Py_ssize_t base
    for b in batches:
        if out is None:
            out = b
            continue
        base = len(out)
        out.retval.extend(b.retval)
        out.insn_count.extend(b.insn_count)
        out.length.extend(b.length)
        if out.data is not None:
            out.data.extend(b.data)
        out.faults.extend((base + k, err) for k, err in b.faults)
    if out is None:
        raise ValueError("run_many(): the capture holds no packet")
    return out


def _require_ethernet(linktypes, prog_type):
    if prog_type is not None and any(lt != 1 for lt in linktypes):
        raise ValueError(f"run_many(): the capture has linktype "
                         f"{next(lt for lt in linktypes if lt != 1)}; skb programs take "
                         "Ethernet frames (tcsim replays other linktypes)")


def _frame_list(frames, offsets):
    """The frames of run_many's input as a list."""
    if offsets is None:
        return list(frames)
    view = memoryview(frames).cast("B")
    offs = list(offsets)
    return [bytes(view[offs[k]:offs[k + 1]]) for k in range(len(offs) - 1)]


ctypedef struct BatchRun:
    Vm* vm
    ProgCore* prog
    Skb* skb
    const Skb* tmpl
    uint32_t keep
    uint64_t budget
    bint grow                    # the program's default budget: Vm.grow
    uint32_t tail_call_limit
    bint v46
    bint packet_region
    bint own_clock
    bint keeps_layout            # the program keeps the layout (ProgCore.keeps_layout)
    bint clean                   # skb's last load was from tmpl and every run since kept
                                 # the layout: skb_reload_frame resets it
    uint8_t kind
    uint8_t* mem                 # raw mode: the memory a run gets, a copy of its frame
    const uint8_t** frames
    uint32_t* lens
    void* retval
    uint64_t* insn_count
    uint32_t* length
    int status                   # STATUS_EXIT, a run's fault, or -1: out of memory


cdef Py_ssize_t _batch_loop(BatchRun* c, Py_ssize_t k, Py_ssize_t end) noexcept nogil:
    """Run frames ``k`` to ``end``; returns ``end``, or the index of a frame whose run
    faulted (``c.status``; its Vm left for vm_fault, not yet ended)."""
    cdef Vm* vm = c.vm
    cdef Skb* skb = c.skb
    cdef uint64_t r0
    cdef uint32_t n
    while k < end:
        n = c.lens[k]
        vm_begin(vm, c.budget, c.tail_call_limit, c.v46)
        vm.grow = c.grow
        if c.kind == KIND_RAW:
            memcpy(c.mem, c.frames[k], n)
            vm_attach_memory(vm, c.mem, n)
        else:
            if not (skb_reload_frame(skb, c.tmpl, c.frames[k], n, c.keep) if c.clean
                    else skb_load_frame(skb, c.tmpl, c.frames[k], n, c.keep)):
                c.clean = False
                c.status = -1
                return k
            c.clean = c.keeps_layout
            if c.own_clock:
                skb.ktime = _ktime_clock
            vm_attach_skb(vm, skb, c.packet_region)
        c.status = vm_run(vm, c.prog, False)
        if c.own_clock:
            _clock_after_run(skb.ktime)
        c.insn_count[k] = c.budget + vm.granted - <uint64_t>vm.budget_left
        if c.status != STATUS_EXIT:
            return k
        r0 = vm.reg[0]
        if c.kind == KIND_TC:
            (<int32_t*>c.retval)[k] = <int32_t>r0
            c.length[k] = <uint32_t>skb_wire_len(skb)
        elif c.kind == KIND_SF:
            (<uint32_t*>c.retval)[k] = <uint32_t>r0
            c.length[k] = skb.len if <uint32_t>r0 > skb.len else <uint32_t>r0
        else:
            (<uint64_t*>c.retval)[k] = r0
            c.length[k] = n
        vm_end(vm)
        k += 1
    return end


cdef bytes _batch_data(BatchRun* c, Py_ssize_t k):
    """Result.data of run ``k``, which just ended."""
    cdef bytes out
    if c.kind == KIND_RAW:
        return PyBytes_FromStringAndSize(<char*>c.mem, c.lens[k])
    if c.kind == KIND_TC and skb_wire_len(c.skb) != c.skb.len:
        out = PyBytes_FromStringAndSize(NULL, skb_wire_len(c.skb))
        skb_wire_bytes(c.skb, <uint8_t*>PyBytes_AS_STRING(out))
        return out
    return PyBytes_FromStringAndSize(<char*>skb_data(c.skb), c.length[k])


cdef enum:
    BATCH_CHUNK = 4096           # runs between checks for signals (Ctrl-C)


include "batch.pxi"
include "timers.pxi"
include "workqueues.pxi"
include "task_work.pxi"


cdef object _batch_run(Program prog, object frames, object offsets, object budget,
                       bint output, dict fields):
    cdef BatchRun c
    cdef Vm vm
    cdef Skb tmpl
    cdef Skb spare
    cdef bint tmpl_made = False
    cdef bint typed = prog.prog_type is not None
    cdef Py_ssize_t n, k, end, checked
    cdef uint64_t limit = prog.budget if budget is None else budget
    cdef uint32_t most = 0
    cdef const uint8_t[::1] buf
    cdef const uint64_t[::1] offs
    cdef Batch batch
    cdef list held = []          # the frames converted to bytes, alive while they run
    if not typed and fields:
        raise TypeError(f"run_many() got packet fields ({', '.join(fields)}) but this "
                        "program has no skb context (prog_type=None)")
    memset(&c, 0, sizeof(BatchRun))
    if offsets is not None:
        buf = memoryview(frames).cast("B")
        offs = offsets if isinstance(offsets, _array.array) and offsets.typecode == "Q" \
            else _array.array("Q", offsets)
        n = offs.shape[0] - 1
        if n < 0:
            raise ValueError("run_many(): offsets holds the frames' boundaries: "
                             "len(frames) + 1 numbers")
    else:
        n = len(frames)
    batch = _new_batch(prog, range(n), output)
    batch._frames = None
    if n == 0:
        return batch
    c.frames = <const uint8_t**>malloc(n * sizeof(uint8_t*))
    c.lens = <uint32_t*>malloc(n * sizeof(uint32_t))
    try:
        if c.frames == NULL or c.lens == NULL:
            raise MemoryError()
        for k in range(n):
            if offsets is not None:
                if offs[k] > offs[k + 1] or offs[k + 1] > <uint64_t>buf.shape[0]:
                    raise ValueError(f"run_many(): frame {k} spans bytes {offs[k]} to "
                                     f"{offs[k + 1]} of a {buf.shape[0]}-byte buffer")
                if offs[k + 1] - offs[k] > 0xffffffff:
                    raise ValueError(f"run_many(): frame {k}: longer than 4 GiB")
                c.frames[k] = &buf[0] + offs[k] if buf.shape[0] else NULL
                c.lens[k] = <uint32_t>(offs[k + 1] - offs[k])
            else:
                f = frames[k]
                if type(f) is not bytes:
                    if typed:
                        _require_frame(f, prog.prog_type)
                    f = bytes(f)
                    held.append(f)
                if len(<bytes>f) > 0xffffffff:
                    raise ValueError(f"run_many(): frame {k}: longer than 4 GiB")
                c.frames[k] = <const uint8_t*>PyBytes_AS_STRING(f)
                c.lens[k] = <uint32_t>len(<bytes>f)
            if typed and (c.lens[k] < ETH_HLEN or c.lens[k] > 0xffff):
                _check_frame_len(c.lens[k], f"run_many(): frame {k}: ")
            most = max(most, c.lens[k])
        if typed:
            if fields:
                memset(&tmpl, 0, sizeof(Skb))        # freed even if a field is refused
                tmpl_made = True
                skb_init(&tmpl, _ETH_ZERO, fields, prog.prog_type, prog._profile_id)
            c.tmpl = &tmpl if tmpl_made else prog._template()
            c.keep = skb_keep_bits(fields)
            c.own_clock = not fields or "ktime" not in fields
            c.kind = KIND_TC if prog._is_tc else KIND_SF
            c.packet_region = prog._is_tc
            c.skb = prog._take_skb(&spare)
            c.keeps_layout = prog._pc.keeps_layout and not prog._pc.py_helpers
            c.clean = c.skb == &prog._work and prog._work_clean and not tmpl_made
            if c.skb == &prog._work:
                prog._work_clean = False
        else:
            c.kind = KIND_RAW
            c.mem = <uint8_t*>malloc(max(most, 1))
            if c.mem == NULL:
                raise MemoryError()
        c.vm, c.prog, c.budget, c.grow = &vm, &prog._pc, limit, prog._grows(budget)
        c.tail_call_limit, c.v46 = prog.tail_call_limit, prog._profile_id == PROFILE_V46
        c.retval = <void*>(<uintptr_t>batch.retval.buffer_info()[0])
        c.insn_count = <uint64_t*>(<uintptr_t>batch.insn_count.buffer_info()[0])
        c.length = <uint32_t*>(<uintptr_t>batch.length.buffer_info()[0])
        k = checked = 0
        while k < n:
            # one run at a time where Python takes each one's output or helpers need it
            end = k + 1 if output or prog._pc.py_helpers else min(n, k + BATCH_CHUNK)
            held_sockets_entry()    # a signal handler may have run since the last batch
            if prog._pc.py_helpers or prog._hold_gil:
                k = _batch_loop(&c, k, end)
            else:
                with nogil:
                    k = _batch_loop(&c, k, end)
            if c.status == -1:
                raise MemoryError()
            if c.status != STATUS_EXIT:
                try:
                    batch.faults.append((k, vm_fault(&vm, limit)))
                finally:
                    vm_end(&vm)
                k += 1
            elif output:
                batch.data[k - 1] = _batch_data(&c, k - 1)
            if k - checked >= BATCH_CHUNK:
                PyErr_CheckSignals()
                checked = k
        return batch
    finally:
        free(c.frames)
        free(c.lens)
        free(c.mem)
        if c.skb != NULL:
            if c.skb == &prog._work:
                prog._work_clean = c.clean and not tmpl_made
            prog._give_skb(c.skb)
        if tmpl_made:
            skb_free(&tmpl)


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
