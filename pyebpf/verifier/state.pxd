# The verifier's states, for the compiled modules that read their fields directly
# (precision.pyx): state.pyx says what each field is.
cimport cython


@cython.final
cdef class Slot:
    cdef public object kinds, spill

    cpdef Slot copy(self)


@cython.final
cdef class Frame:
    cdef public object regs, stack, callsite, subprog, frameno, in_callback, \
        callback_depth, allocated

    cpdef Frame copy(self)


@cython.final
cdef class VState:
    cdef public object frames, refs, parent, branches, insn, sig, may_goto_depth, \
        callback_unroll_depth, rcu_lock, preempt_locks, hits, misses, evicted, hist, \
        hist_len, spin_lock, locks, irqs, dfs_depth

    cpdef VState copy(self)


@cython.final
cdef class Sig:
    cdef readonly tuple key
    cdef Py_hash_t _hash


cpdef bint states_equal(VState old, VState cur, list live_regs, bint exact=*, bint ranges=*,
                        bint uninit_ok=*, bint within=*, bint alu_limits=*) except -1
cpdef bint maybe_looping(VState old, VState cur) except -1
cpdef Sig signature(VState st, list live_regs)
