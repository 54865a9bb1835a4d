# The verifier's register, for the compiled modules that read its fields directly
# (bounds.pyx): reg.pyx says what each field is.
cimport cython


@cython.final
cdef class Reg:
    cdef public object type, off, var, smin, smax, umin, umax, s32min, s32max, \
        u32min, u32max, id, ref, range, map, size, frame, precise, dynptr_id

    cpdef Reg copy(self)
    cpdef Reg mark_known(self, v)
    cpdef Reg mark_unbounded(self)
