# cython: boundscheck=False, wraparound=False
"""A program's control flow as the verifier's passes share it: where its functions
start, and per slot where each instruction goes next (``bpf_insn_successors``),
where it is reached from, and the registers live before it
(``compute_live_registers``).  Compiled: they are made afresh for every program
loaded, before its paths are walked."""
from cpython.long cimport PyLong_FromVoidPtr
from cpython.mem cimport PyMem_Free, PyMem_Malloc

from .isaconst cimport (BPF_FETCH, BPF_MOV, F_ADDR_SPACE_CAST, F_ALU_K, F_ALU_SX, F_ALU_X, F_ALU_XOFF_K,
                        F_ALU_XOFF_X, F_ATOMIC, F_CALL, F_CALL_LOCAL, F_END, F_EXIT, F_JA,
                        F_JA32, F_JCC_K, F_JCC_X, F_LD_ABS, F_LD_IND, F_LDDW, F_LDX,
                        F_MAY_GOTO, F_NEG)

from .. import isa
from . import helpers, kfuncs
from .structure import function_start

cdef long BPF_CMPXCHG = isa.BPF_CMPXCHG
cdef enum:
    R0 = 1
    R0_R5 = 0b111111            # a call's result and the registers it clobbers
    R0_R9 = 0b1111111111


def successors(insns, ops) -> list:
    """bpf_insn_successors, per slot: where control goes after each instruction, inside
    the program (() for an lddw's second slot), a jump's target last.  The verifier's
    passes over the control flow (register and stack liveness, loops) share one list."""
    cdef Py_ssize_t n = len(ops), pc, a, b
    cdef list succ = [()] * n
    for pc in range(n):
        op = ops[pc]
        if op is None:
            continue
        f = op.form
        if f is F_EXIT:
            continue
        b = -1
        if f is F_JA:
            a = pc + 1 + insns[pc].off
        elif f is F_JA32:
            a = pc + 1 + insns[pc].imm
        elif f is F_JCC_K or f is F_JCC_X or f is F_MAY_GOTO:
            a, b = pc + 1, pc + 1 + insns[pc].off
        elif f is F_LDDW:
            a = pc + 2
        else:
            a = pc + 1
        if b < 0:
            succ[pc] = (a,) if a < n else ()
        elif a < n and b < n:
            succ[pc] = (a, b)
        else:
            succ[pc] = (a,) if a < n else (b,) if b < n else ()
    return succ


def function_starts(insns, ops) -> set:
    """The first instructions of the functions the program's local calls call and its
    lddws of a function name (structure.function_start), besides the main program's."""
    cdef Py_ssize_t n = len(ops), pc
    starts = set()
    for pc in range(n):
        op = ops[pc]
        if op is None:
            continue
        f = op.form
        if f is F_CALL_LOCAL or f is F_LDDW:
            s = function_start(op, insns[pc], pc)
            if s is not None:
                starts.add(s)
    return starts


def jumps_back(list succ) -> bool:
    """Whether an instruction goes to itself or to one before it (``succ``:
    :func:`successors`): without, the program has no loop."""
    cdef Py_ssize_t pc
    cdef tuple nxt
    for pc in range(len(succ)):
        nxt = succ[pc]
        if len(nxt) and <Py_ssize_t>nxt[len(nxt) - 1] <= pc:
            return True
    return False


def predecessors(list succ) -> list:
    """Per slot, the slots whose successors (``succ``) it is, in order."""
    cdef Py_ssize_t n = len(succ), pc
    cdef list pred = [[] for _ in range(n)]
    for pc in range(n):
        for s in <tuple>succ[pc]:
            (<list>pred[s]).append(pc)
    return pred


def call_args(insn, form) -> int:
    """The argument registers a call reads (get_call_summary): a helper's prototype's
    count, a kfunc's own, all five for a static function (or a helper pyebpf has no
    prototype of)."""
    if form is F_CALL and not insn.src and insn.imm in helpers.PROTOS:
        return len(helpers.PROTOS[insn.imm].args)
    return kfuncs.arg_count(insn)


cdef void _uses_defs(insn, op, int *u, int *d) except *:
    """The registers ``insn`` reads and writes, as bit masks."""
    f = op.form
    cdef int dst = insn.dst, src = insn.src
    cdef bint alu = f is F_ALU_K or f is F_ALU_X or f is F_ALU_SX or f is F_ADDR_SPACE_CAST
    u[0] = d[0] = 0
    if f.src:
        u[0] |= 1 << src
    if f.dst and f is not F_LDDW and f is not F_LDX:
        if not (op.code & 0xF0 == BPF_MOV and alu):
            u[0] |= 1 << dst
    if alu or f is F_ALU_XOFF_K or f is F_ALU_XOFF_X or f is F_NEG or f is F_END or \
            f is F_LDDW or f is F_LDX:
        d[0] |= 1 << dst
    if f is F_ATOMIC:
        if op.disc_value == BPF_CMPXCHG:
            u[0] |= R0
            d[0] |= R0
        elif op.disc_value & BPF_FETCH:
            d[0] |= 1 << src
    if f is F_CALL or f is F_CALL_LOCAL:
        u[0] |= ((1 << call_args(insn, f)) - 1) << 1
        d[0] |= R0_R5
    elif f is F_LD_ABS or f is F_LD_IND:
        # compute_insn_live_regs keeps its defaults for them: every register read,
        # none written (the 6.18 log's table shows r0-r9 live before each)
        u[0] |= R0_R9
        d[0] = 0
    if f is F_EXIT:
        u[0] |= R0


cdef dict _SLOTS = {}
cdef Py_ssize_t _SLOTS_MAX = 65536


cdef tuple _slot(insn, op):
    """(insn, registers read, registers written) of a slot (:func:`_uses_defs`), made
    once per Insn object: isa.unpack_program gives the same one for the same bytes (the
    entry holds it, so its id names no other object while it is there)."""
    # the address, as id() gives it without a call of a builtin
    addr = PyLong_FromVoidPtr(<void*>insn)
    hit = _SLOTS.get(addr)
    if hit is not None and (<tuple>hit)[0] is insn:
        return <tuple>hit
    cdef int u, d
    _uses_defs(insn, op, &u, &d)
    if len(_SLOTS) >= _SLOTS_MAX:
        _SLOTS.clear()
    hit = _SLOTS[addr] = (insn, u, d)
    return <tuple>hit


def live_registers(insns, ops, list succ) -> list:
    """Registers each instruction may read before they are written again, along any
    path of its function (compute_live_registers: for pruning, and the level-2 log's
    table), as a mask per slot (bit r for register r; one more slot, 0, past the end);
    ``succ``: the control flow (:func:`successors`)."""
    cdef Py_ssize_t n = len(ops), pc
    # uses, defs and live, then two successors per slot
    cdef int *uses = <int *>PyMem_Malloc(5 * (n + 1) * sizeof(int))
    if uses == NULL:
        raise MemoryError()
    cdef int *defs = uses + n + 1
    cdef int *live = defs + n + 1
    cdef int *nxt = live + n + 1        # two successors per slot, -1 for none
    cdef int out, new
    cdef bint back = False, changed = True
    cdef tuple s, t
    try:
        for pc in range(n):
            uses[pc] = defs[pc] = live[pc] = 0
            nxt[2 * pc] = nxt[2 * pc + 1] = -1
            s = succ[pc]
            if len(s) > 0:
                nxt[2 * pc] = s[0]
                if len(s) > 1:
                    nxt[2 * pc + 1] = s[1]
                if <Py_ssize_t>s[len(s) - 1] <= pc:
                    back = True
            op = ops[pc]
            if op is not None:
                t = _slot(insns[pc], op)
                uses[pc], defs[pc] = t[1], t[2]
        while changed:
            changed = False
            for pc in range(n - 1, -1, -1):
                out = 0
                if nxt[2 * pc] >= 0:
                    out = live[nxt[2 * pc]]
                    if nxt[2 * pc + 1] >= 0:
                        out |= live[nxt[2 * pc + 1]]
                new = uses[pc] | (out & ~defs[pc])
                if new != live[pc]:
                    live[pc] = new
                    changed = back  # without a jump backwards one pass from the end is exact
        result = [live[pc] for pc in range(n)]
    finally:
        PyMem_Free(uses)
    result.append(0)
    return result
