"""The verifier's register (the kernel's ``struct bpf_reg_state``), compiled: a path's
state is copied at every branch and checkpoint, eleven registers a frame, and a copy of
a Python object with 18 slots cost ~2 us a register (~40 % of verifying bench_core's
100-instruction program); a copy here is a C struct's 18 references.  Its fields stay
Python objects (ints of any width, tuples, maps), read and written as the slots were."""
cimport cython

from .tnum import M64, M32, UNKNOWN

cdef object _M64 = M64
cdef object _M32 = M32
# state.py's bounds, made from Python ints (no C constant of 64 bits or more)
cdef object S64_MAX = _M64 >> 1
cdef object S64_MIN = -S64_MAX - 1
cdef object S32_MAX = _M32 >> 1
cdef object S32_MIN = -S32_MAX - 1
cdef object TWO64 = _M64 + 1
cdef object TWO32 = _M32 + 1
cdef object ZERO = 0
cdef object _UNKNOWN = UNKNOWN
# state.py's NOT_INIT and SCALAR (enum bpf_reg_type)
cdef object NOT_INIT = 0
cdef object SCALAR = 1


cdef inline object _s64(object v):
    v &= _M64
    return v - TWO64 if v >> 63 else v


cdef inline object _s32(object v):
    v &= _M32
    return v - TWO32 if v >> 31 else v


@cython.final
@cython.freelist(64)
# untracked by the cycle collector (its allocations no longer count towards a
# collection): a register refers to ints, tuples of ints and maps or BTF types, none of
# which refers back to a register
@cython.no_gc
cdef class Reg:
    """One register: its type, fixed offset ``off``, the tnum ``var_off`` and the
    64/32-bit signed/unsigned bounds of the scalar (or of a pointer's variable part),
    ``id`` (shared by copies: NULL checks and packet ranges reach all of them),
    ``ref`` (an acquired reference), ``range`` (packet bytes known present), ``map``
    (the map a map pointer or map value belongs to; the BTF struct a ``PTR_TO_BTF_ID``
    points at), ``size`` (memory size) and
    ``frame`` (the frame a stack pointer points into); ``precise``: a scalar of a
    checkpoint whose value some later decision depended on (the kernel's precision
    marks: only these scalars must match for a path to be pruned)."""
    cdef public object type, off, var, smin, smax, umin, umax, s32min, s32max, \
        u32min, u32max, id, ref, range, map, size, frame, precise

    def __init__(self, type_=NOT_INIT):
        self.type = type_
        self.off = ZERO
        self.var = _UNKNOWN
        self.smin, self.smax, self.umin, self.umax = S64_MIN, S64_MAX, ZERO, _M64
        self.s32min, self.s32max, self.u32min, self.u32max = S32_MIN, S32_MAX, ZERO, _M32
        self.id = self.ref = self.range = self.size = self.frame = ZERO
        self.map = None
        self.precise = False

    cpdef Reg copy(self):
        cdef Reg r = Reg.__new__(Reg)
        r.type, r.off, r.var, r.id, r.ref, r.range, r.map, r.size, r.frame = \
            self.type, self.off, self.var, self.id, self.ref, self.range, self.map, \
            self.size, self.frame
        r.smin, r.smax, r.umin, r.umax = self.smin, self.smax, self.umin, self.umax
        r.s32min, r.s32max, r.u32min, r.u32max = \
            self.s32min, self.s32max, self.u32min, self.u32max
        r.precise = self.precise
        return r

    # --- constructors (the kernel's __mark_reg_*) ------------------------------------
    def mark_known(self, v) -> Reg:
        v &= _M64
        self.var = (v, ZERO)
        self.smin = self.smax = _s64(v)
        self.umin = self.umax = v
        self.s32min = self.s32max = _s32(v)
        self.u32min = self.u32max = v & _M32
        return self

    def mark_unbounded(self) -> Reg:
        self.smin, self.smax, self.umin, self.umax = S64_MIN, S64_MAX, ZERO, _M64
        self.s32min, self.s32max, self.u32min, self.u32max = S32_MIN, S32_MAX, ZERO, _M32
        return self

    def mark_unknown(self) -> Reg:
        self.type = SCALAR
        self.off = self.id = self.ref = self.range = self.size = self.frame = ZERO
        self.map = None
        self.var = _UNKNOWN
        return self.mark_unbounded()

    @property
    def is_const(self) -> bool:
        return self.var[1] == 0

    @property
    def value(self):
        return self.var[0]

    @property
    def is_ptr(self) -> bool:
        return self.type != SCALAR and self.type != NOT_INIT

    def is_null(self) -> bool:
        return self.type == SCALAR and self.var == (0, 0)


def copy_regs(list regs) -> list:
    """A copy of each register of a frame's list, in order."""
    return [(<Reg?>r).copy() for r in regs]
