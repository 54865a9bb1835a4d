# The scalar bounds arithmetic, for the compiled walk (walk.pyx) to call as C functions:
# bounds.pyx says what each does.
from .reg cimport Reg

cpdef sync(Reg r)
cpdef bint valid(Reg r)
cpdef alu(Reg dst, Reg src, long op, int bits)
cpdef zext32(Reg r)
cpdef truncate(Reg r, int size)
cpdef sign_extend(Reg r, int size)
cpdef sign_extend32(Reg r, int size)
cpdef int branch_taken(Reg a, Reg b, long op, bint is32) except -2
cpdef int reverse(int op)
cpdef bint refine(Reg a, Reg b, long op, bint is32) except -1
