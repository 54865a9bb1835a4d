"""The precision walk's inner loop, compiled: back over a path's history past the
instructions that change no register still wanted (precision.pyx's ``_walk``).  A loop's
history is mostly such instructions (its jump, its counter's ``+= 1``), walked back
once per decision the loop's bounds make."""
from cpython.long cimport PyLong_AsSsize_t

# precision.skip_table's kinds of instruction
SKIP = 0                # a jump or ``d op= imm``: changes nothing wanted
SKIP_UNLESS_DST = 1     # other ALU: changes nothing wanted unless its destination is
STOP = 2                # anything else


cpdef Py_ssize_t skip_back(list hist, Py_ssize_t i, bytes kinds, bytes dsts, object regs):
    """The index of the last entry of ``hist[:i + 1]`` that precision.pyx's
    ``_backtrack`` must look at while the registers ``regs`` (a set of numbers) are
    wanted, or -1: entries that are bare instruction numbers of ``kinds`` SKIP, or
    SKIP_UNLESS_DST with a destination (``dsts``) not in ``regs``, are passed over."""
    cdef const unsigned char *k = kinds
    cdef const unsigned char *d = dsts
    cdef unsigned int mask = 0
    cdef Py_ssize_t pc
    cdef object entry
    # the kinds as C values, looked up once: compared per entry, a module global is a
    # dictionary lookup and an object comparison each time
    cdef unsigned char skip = SKIP, skip_unless_dst = SKIP_UNLESS_DST
    for r in regs:
        mask |= 1u << <int>r      # register numbers, 0-10
    while i >= 0:
        entry = hist[i]
        if type(entry) is not int:
            return i
        pc = PyLong_AsSsize_t(entry)
        if k[pc] == skip or k[pc] == skip_unless_dst and not (mask >> d[pc]) & 1:
            i -= 1
            continue
        return i
    return -1
