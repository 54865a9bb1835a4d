# The precision walk's inner loop, for precision.pyx to call as a C function:
# backtrack.pyx says what it does.

cpdef Py_ssize_t skip_back(list hist, Py_ssize_t i, bytes kinds, bytes dsts, object regs)
