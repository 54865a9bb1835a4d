"""The verifier's register (the kernel's ``struct bpf_reg_state``), compiled: a path's
state is copied at every branch and checkpoint, eleven registers a frame.  The scalar's
bounds and its tnum are C integers of the kernel's widths (``smin``/``smax`` s64,
``umin``/``umax`` u64, ``s32min``/``s32max`` s32, ``u32min``/``u32max`` u32, the tnum
``var_value``/``var_mask`` u64), so the bounds arithmetic (bounds.pyx) allocates
nothing and a copy is a C struct's copy; Python reads them as ints, and ``var`` as the
``(value, mask)`` tuple tnum.py works on (storing a value out of a field's range raises
OverflowError).  The other fields stay Python objects."""
cimport cython
from cpython.bytes cimport PyBytes_FromStringAndSize

from .tnum import M64

cdef object _M64 = M64
# state.pyx's NOT_INIT, SCALAR, PTR_TO_STACK, PTR_TO_PACKET_META, PTR_TO_PACKET and PTR_TO_MEM
# (enum bpf_reg_type), BPF_ADD_CONST and STACK_INVALID (tests/test_verifier_checkpoints.py checks they agree)
cdef object NOT_INIT = 0
cdef object SCALAR = 1
cdef object PTR_TO_STACK = 6
cdef object PTR_TO_PACKET_META = 7
cdef object PTR_TO_PACKET = 8
cdef object PTR_TO_MEM = 11
cdef object BPF_ADD_CONST = (1 << 31) | (1 << 30)
cdef object STACK_INVALID = 0
cdef object ZERO = 0
# the types as C integers, for regsafe's tests: a register's type (always an int)
# converted to a C long compares without Python's comparison
cdef long T_NOT_INIT = NOT_INIT, T_SCALAR = SCALAR, T_PTR_TO_STACK = PTR_TO_STACK
cdef long T_PTR_TO_PACKET = PTR_TO_PACKET, T_PTR_TO_PACKET_META = PTR_TO_PACKET_META
cdef long T_PTR_TO_MEM = PTR_TO_MEM
CONSTANTS = {"NOT_INIT": NOT_INIT, "SCALAR": SCALAR, "PTR_TO_STACK": PTR_TO_STACK,
             "PTR_TO_PACKET_META": PTR_TO_PACKET_META,
             "PTR_TO_PACKET": PTR_TO_PACKET, "PTR_TO_MEM": PTR_TO_MEM,
             "BPF_ADD_CONST": BPF_ADD_CONST,
             "STACK_INVALID": STACK_INVALID}

@cython.freelist(64)
# untracked by the cycle collector (its allocations no longer count towards a
# collection): a register refers to ints, tuples of ints and maps or BTF types, none of
# which refers back to a register
@cython.no_gc
cdef class Reg:
    """One register: its type, fixed offset ``off``, the tnum ``var_off`` (``var``, as
    ``(value, mask)``; ``var_value`` and ``var_mask``) and the 64/32-bit
    signed/unsigned bounds of the scalar (or of a pointer's variable part),
    ``id`` (shared by copies: NULL checks and packet ranges reach all of them),
    ``ref`` (an acquired reference), ``range`` (packet bytes known present), ``map``
    (the map a map pointer or map value belongs to; the BTF struct a ``PTR_TO_BTF_ID``
    points at), ``size`` (memory size), ``dynptr_id`` (a dynptr slice's dynptr, by
    its id) and
    ``frame`` (the frame a stack pointer points into); ``precise``: a scalar of a
    checkpoint whose value some later decision depended on (the kernel's precision
    marks: only these scalars must match for a path to be pruned)."""

    def __init__(self, type_=NOT_INIT):
        self.type = type_
        self.off = ZERO
        set_unbounded(self)
        self.var_value, self.var_mask = 0, <unsigned long long>-1
        self.id = self.ref = self.range = self.size = self.frame = self.dynptr_id = ZERO
        self.map = None
        self.precise = False

    cpdef Reg copy(self):
        cdef Reg r = Reg.__new__(Reg)
        r.type, r.off, r.id, r.ref, r.range, r.map, r.size, r.frame = \
            self.type, self.off, self.id, self.ref, self.range, self.map, \
            self.size, self.frame
        r.dynptr_id = self.dynptr_id
        r.smin, r.smax, r.umin, r.umax = self.smin, self.smax, self.umin, self.umax
        r.s32min, r.s32max, r.u32min, r.u32max = \
            self.s32min, self.s32max, self.u32min, self.u32max
        r.var_value, r.var_mask, r.precise = self.var_value, self.var_mask, self.precise
        return r

    @property
    def var(self):
        """The tnum ``(value, mask)``."""
        return (self.var_value, self.var_mask)

    @var.setter
    def var(self, t):
        self.var_value, self.var_mask = t

    # --- constructors (the kernel's __mark_reg_*) ------------------------------------
    cpdef Reg mark_known(self, v):
        set_known(self, v & _M64)
        return self

    cpdef Reg mark_unbounded(self):
        set_unbounded(self)
        return self

    def mark_unknown(self) -> Reg:
        self.type = SCALAR
        self.off = self.id = self.ref = self.range = self.size = self.frame = ZERO
        self.dynptr_id = ZERO
        self.map = None
        self.var_value, self.var_mask = 0, <unsigned long long>-1
        return self.mark_unbounded()

    @property
    def is_const(self) -> bool:
        return self.var_mask == 0

    @property
    def value(self):
        return self.var_value

    @property
    def is_ptr(self) -> bool:
        return self.type != SCALAR and self.type != NOT_INIT

    def is_null(self) -> bool:
        return self.type == SCALAR and self.var_value == 0 and self.var_mask == 0


cpdef Reg scalar(object v=None):
    """A scalar register: unknown and unbounded, or the constant ``v`` (made at most
    instructions: every immediate operand and every helper's result is one)."""
    cdef Reg r = Reg.__new__(Reg)
    r.type = SCALAR
    r.off = r.id = r.ref = r.range = r.size = r.frame = r.dynptr_id = ZERO
    r.map = None
    r.precise = False
    if v is None:
        r.var_value, r.var_mask = 0, <unsigned long long>-1
        set_unbounded(r)
    else:
        set_known(r, v & _M64)
    return r


cdef void set_known(Reg r, unsigned long long u) noexcept:
    """__mark_reg_known: the tnum and every bound the constant ``u``."""
    r.var_value, r.var_mask = u, 0
    r.smin = r.smax = <long long>u
    r.umin = r.umax = u
    r.s32min = r.s32max = <int><unsigned int>u
    r.u32min = r.u32max = <unsigned int>u


cdef void set_unbounded(Reg r) noexcept:
    """__mark_reg_unbounded: every bound the widest."""
    r.smin, r.smax = -0x7FFFFFFFFFFFFFFF - 1, 0x7FFFFFFFFFFFFFFF
    r.umin, r.umax = 0, <unsigned long long>-1
    r.s32min, r.s32max = -0x7FFFFFFF - 1, 0x7FFFFFFF
    r.u32min, r.u32max = 0, 0xFFFFFFFF


# --- state equivalence on registers (the kernel's regsafe and its parts) ---------------
# Every checkpoint a path meets compares up to ten registers a frame; compiled, a
# comparison reads the fields as C struct members instead of Python attributes.

cpdef bint range_within(Reg old, Reg cur):
    """range_within: every bound of ``cur`` lies within ``old``'s."""
    return (old.umin <= cur.umin and cur.umax <= old.umax and old.smin <= cur.smin
            and cur.smax <= old.smax and old.u32min <= cur.u32min
            and cur.u32max <= old.u32max and old.s32min <= cur.s32min
            and cur.s32max <= old.s32max)


cdef inline bint _tnum_in(Reg a, Reg b) noexcept:
    # tnum_in (tnum.in_): every value of ``b``'s tnum is a value of ``a``'s
    if b.var_mask & ~a.var_mask:
        return False
    return a.var_value == b.var_value & ~a.var_mask


cdef inline bint _same_bounds(Reg a, Reg b) noexcept:
    # the tnum and the eight bounds equal
    return (a.var_value == b.var_value and a.var_mask == b.var_mask and
            a.smin == b.smin and a.smax == b.smax and a.umin == b.umin and
            a.umax == b.umax and a.s32min == b.s32min and a.s32max == b.s32max and
            a.u32min == b.u32min and a.u32max == b.u32max)


cpdef bint check_ids(object a, object b, dict idmap):
    """check_ids: ids ``a`` (old) and ``b`` (cur) map one to one across a comparison
    (``idmap`` holds the pairs seen so far, keyed ``("o", a)`` and ``("c", b)``)."""
    if not a and not b:
        return True
    if not a or not b:
        return False
    seen = idmap.get(("o", a))
    if seen is None:
        if ("c", b) in idmap:
            return False
        idmap[("o", a)] = b
        idmap[("c", b)] = a
        return True
    return seen == b


cdef bint check_scalar_ids(object a, object b, dict idmap):
    """check_scalar_ids, for an ``old`` register with an id: an unlinked ``cur`` one
    stands for an id of its own (so it matches one register of ``old``'s link, not
    two); a link to a constant offset maps its base id as well."""
    if not b:
        b = idmap["tmp"] = ("tmp", idmap.get("tmp", ("tmp", 0))[1] + 1)
    if not check_ids(a, b, idmap):
        return False
    return not a & BPF_ADD_CONST or \
        check_ids(a & ~BPF_ADD_CONST, b & ~BPF_ADD_CONST, idmap)


cdef object _tmp_id(dict idmap):
    # check_scalar_ids: an unlinked register stands for an id of its own
    tmp = idmap["tmp"] = ("tmp", idmap.get("tmp", ("tmp", 0))[1] + 1)
    return tmp


cdef inline bint _same_scalar(Reg old, Reg cur):
    return _same_bounds(old, cur) and old.off == cur.off


cdef inline bint _exact_fields(Reg old, Reg cur):
    return (_same_bounds(old, cur) and old.off == cur.off and old.range == cur.range and old.size == cur.size and old.frame == cur.frame and
            old.dynptr_id == cur.dynptr_id)


cpdef bint regsafe(Reg old, Reg cur, dict idmap, bint exact, bint ranges=True,
                   bint alu_limits=False):
    """True when everything safe from ``cur`` was proved safe from ``old``; ``ranges``
    False: a scalar of ``old`` not marked precise matches any scalar (NOT_EXACT, where
    True is the kernel's RANGE_WITHIN); ``alu_limits``: the kernel's
    explore_alu_limits, under which scalars match only equal ones."""
    cdef long ot = <long>old.type
    if exact:
        return ot == <long>cur.type and old.map is cur.map and _exact_fields(old, cur) and \
            check_ids(old.id, cur.id, idmap) and check_ids(old.ref, cur.ref, idmap)
    if ot == T_NOT_INIT:
        return True
    if ot != <long>cur.type:
        return False
    if ot == T_SCALAR:
        if alu_limits:
            # regsafe: once an unprivileged loader's pointer arithmetic has masked a
            # variable offset (sanitize_ptr_alu), another path's scalar may give the
            # instruction another mask limit; precision aside, only the same bounds
            # and offset match (a memcmp up to id), ids as check_scalar_ids maps them
            return _same_scalar(old, cur) and (
                not old.id and not cur.id or
                check_scalar_ids(old.id if old.id else _tmp_id(idmap), cur.id, idmap))
        if not ranges and not old.precise:
            return True
        if old.id:
            # a link to a constant offset must be the same link with the same offset
            if (old.id ^ cur.id) & BPF_ADD_CONST or \
                    old.id & BPF_ADD_CONST and old.off != cur.off:
                return False
            if not check_scalar_ids(old.id, cur.id, idmap):
                return False
        return range_within(old, cur) and _tnum_in(old, cur)
    if ot == T_PTR_TO_STACK:
        # regsafe's PTR_TO_STACK case: regs_exact, and the same frame (fp-8 of one
        # function is not fp-8 of another)
        return _exact_fields(old, cur) and check_ids(old.id, cur.id, idmap) and \
            check_ids(old.ref, cur.ref, idmap)
    if old.off != cur.off or old.map is not cur.map or old.size != cur.size or \
            old.frame != cur.frame:
        return False
    if ot == T_PTR_TO_PACKET or ot == T_PTR_TO_PACKET_META:
        # regsafe: at least the old range, but a pointer known to be at or beyond
        # pkt_end (AT_PKT_END -1, BEYOND_PKT_END -2) matches only the same
        if old.range < 0 or cur.range < 0:
            if old.range != cur.range:
                return False
        elif old.range > cur.range:
            return False
    if ot & 0xFF == T_PTR_TO_MEM and (old.range != cur.range or
                                          old.dynptr_id != cur.dynptr_id):
        # a dynptr slice's stack buffer (``range``) and its dynptr_id lie in the bytes
        # regsafe's memcmp compares for PTR_TO_MEM
        return False
    if not (range_within(old, cur) and _tnum_in(old, cur)):
        return False
    return check_ids(old.id, cur.id, idmap) and check_ids(old.ref, cur.ref, idmap)


cpdef bint regs_safe(list old, list cur, tuple alive, dict idmap, bint exact, bint ranges,
                     bint within=False, bint alu_limits=False):
    """states_equal's registers of one frame: :func:`regsafe` of each of ``alive`` (the
    registers read later, in order), or of r0-r9 for an exact comparison.  ``within``:
    the kernel's RANGE_WITHIN, under which an uninitialised register of ``old`` matches
    only an uninitialised one; ``alu_limits`` as :func:`regsafe`'s."""
    cdef Py_ssize_t r
    cdef Reg o
    if exact:
        for r in range(10):
            if not regsafe(old[r], cur[r], idmap, True, ranges):
                return False
        return True
    for k in alive:
        o = old[k]
        # 6.18's regsafe: NOT_INIT in the old state is "can't have used this" only for
        # NOT_EXACT; under RANGE_WITHIN it falls through to the type comparison
        if within and o.type == NOT_INIT and (<Reg>cur[k]).type != NOT_INIT:
            return False
        if not regsafe(o, cur[k], idmap, False, ranges, alu_limits):
            return False
    return True


cpdef bint same_raw(Reg a, Reg b):
    """states_maybe_looping's register test: every field but the precision mark and
    the frame equal, ids included, the map the same object."""
    return (a.map is b.map and _same_bounds(a, b) and a.type == b.type and
            a.off == b.off and a.id == b.id and
            a.ref == b.ref and a.range == b.range and a.size == b.size and
            a.dynptr_id == b.dynptr_id)


# a register's C fields as signature packs them: one bytes object of the tnum and the
# eight bounds (64 bytes, no padding) where ten ints were made from them
cdef struct _Packed:
    long long smin, smax
    unsigned long long umin, umax, var_value, var_mask
    int s32min, s32max
    unsigned int u32min, u32max


cpdef tuple sig(Reg r):
    """What an exact comparison of the register looks at, ids aside (signature's part
    for one register): the map by identity."""
    cdef _Packed p
    p.smin, p.smax, p.umin, p.umax = r.smin, r.smax, r.umin, r.umax
    p.var_value, p.var_mask = r.var_value, r.var_mask
    p.s32min, p.s32max, p.u32min, p.u32max = r.s32min, r.s32max, r.u32min, r.u32max
    return (r.type, r.off, PyBytes_FromStringAndSize(<char *>&p, sizeof(p)), r.range,
            r.size, r.frame, r.dynptr_id, id(r.map))


# --- Python's reads and writes of the fields ------------------------------------------
# Cython gives each ``cdef public object`` field a property, which Python 3.11 reads and
# writes through its generic attribute path (a type look-up and a C call, ~100 machine
# instructions); a member descriptor of the same field, the kind ``__slots__`` makes, is
# what its specialising interpreter turns into a load at a fixed offset
# (LOAD_ATTR_SLOT, STORE_ATTR_SLOT).  The interpreter (interp.py) reads and writes
# registers' and states' fields per instruction, so each field of these C types gets
# one, over the same C struct member the compiled code uses.

cdef extern from "structmember.h":
    ctypedef struct PyMemberDef:
        const char *name
        int type
        Py_ssize_t offset
        int flags
        const char *doc
    int T_OBJECT_EX

cdef extern from "Python.h":
    ctypedef struct PyObject
    ctypedef struct PyTypeObject:
        Py_ssize_t tp_basicsize
        PyObject *tp_dict
    object PyDescr_NewMember(PyTypeObject *, PyMemberDef *)
    void PyType_Modified(PyTypeObject *)
    void *PyMem_RawCalloc(size_t, size_t)

# the member definitions and their names, which the descriptors point into for good
_MEMBER_NAMES = []


def fields_as_members(type cls, names) -> None:
    """Replace the properties of ``cls``'s object fields ``names`` (each ``cdef public
    object``, never NULL: Cython sets it to None at allocation) with member
    descriptors of the same struct members.  Each field's offset is found by setting it
    to a fresh marker in a new instance and finding the marker's pointer in it."""
    cdef PyTypeObject *t = <PyTypeObject *>cls
    cdef Py_ssize_t nwords = t.tp_basicsize // sizeof(void *), i, found
    cdef PyMemberDef *defs = <PyMemberDef *>PyMem_RawCalloc(len(names), sizeof(PyMemberDef))
    if defs is NULL:
        raise MemoryError
    inst = cls.__new__(cls)
    cdef void **words = <void **><void *>inst
    for n, name in enumerate(names):
        marker = object()
        setattr(inst, name, marker)
        found = -1
        for i in range(2, nwords):     # past the reference count and the type
            if words[i] == <void *>marker:
                found = i
                break
        setattr(inst, name, None)
        if found < 0:
            raise AssertionError(f"{cls.__name__}.{name}: no object field")
        bname = name.encode()
        _MEMBER_NAMES.append(bname)
        defs[n].name = bname
        defs[n].type = T_OBJECT_EX
        defs[n].offset = found * sizeof(void *)
        (<dict><object>t.tp_dict)[name] = PyDescr_NewMember(t, &defs[n])
    PyType_Modified(t)


fields_as_members(Reg, ("type", "off", "id", "ref", "range", "map", "size", "frame",
                        "dynptr_id"))
