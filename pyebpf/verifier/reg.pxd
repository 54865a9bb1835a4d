# The verifier's register, for the compiled modules that read its fields directly
# (bounds.pyx, walk.pyx, state.pyx): reg.pyx says what each field is.
cimport cython


@cython.final
cdef class Reg:
    cdef public object type, off, id, ref, range, map, size, frame, dynptr_id
    # the scalar's bounds and tnum (var_off's value and mask) as the kernel's C types
    cdef public long long smin, smax
    cdef public unsigned long long umin, umax, var_value, var_mask
    cdef public int s32min, s32max
    cdef public unsigned int u32min, u32max
    cdef public bint precise

    cpdef Reg copy(self)
    cpdef Reg mark_known(self, v)
    cpdef Reg mark_unbounded(self)


cpdef Reg scalar(object v=*)
cdef void set_known(Reg r, unsigned long long u) noexcept
cdef void set_unbounded(Reg r) noexcept
cpdef bint range_within(Reg old, Reg cur)
cpdef bint check_ids(object a, object b, dict idmap)
cpdef bint regsafe(Reg old, Reg cur, dict idmap, bint exact, bint ranges=*,
                   bint alu_limits=*)
cpdef bint regs_safe(list old, list cur, tuple alive, dict idmap, bint exact, bint ranges,
                     bint within=*, bint alu_limits=*)
cpdef bint same_raw(Reg a, Reg b)
cpdef tuple sig(Reg r)
