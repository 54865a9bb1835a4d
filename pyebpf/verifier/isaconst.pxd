# The table's forms, field kinds and numbers that the verifier's compiled modules compare
# with, as C globals shared through this file (isaconst.pyx fills them from pyebpf.isa,
# their one source): each ``isa.X`` read is a module look-up, and each ``isa.Field.X``
# goes through Python 3.11's EnumType.__getattr__ (~800 machine instructions).
# Names are isa's (the kernel's, for the numbers).

# forms (isa.Form), compared by identity
cdef object F_ALU_K, F_ALU_X, F_ALU_SX, F_ALU_XOFF_K, F_ALU_XOFF_X, F_NEG, F_END
cdef object F_ADDR_SPACE_CAST
cdef object F_LDDW, F_LDX, F_ST, F_STX, F_ATOMIC, F_LD_ABS, F_LD_IND
cdef object F_JA, F_JA32, F_JCC_K, F_JCC_X, F_MAY_GOTO
cdef object F_CALL, F_CALL_LOCAL, F_CALLX, F_EXIT

# how a form uses its off and imm fields (isa.Field)
cdef object FIELD_JUMP, FIELD_UNUSED

# instruction classes (BPF_CLASS)
cdef long BPF_JMP, BPF_JMP32, BPF_ALU64

# BPF_OP values of ALU and jump instructions
cdef long BPF_ADD, BPF_SUB, BPF_MUL, BPF_DIV, BPF_OR, BPF_AND, BPF_LSH, BPF_RSH
cdef long BPF_MOD, BPF_XOR, BPF_MOV, BPF_ARSH
cdef long BPF_JEQ, BPF_JGT, BPF_JGE, BPF_JSET, BPF_JNE, BPF_JSGT, BPF_JSGE
cdef long BPF_JLT, BPF_JLE, BPF_JSLT, BPF_JSLE

# fields' values
cdef long BPF_FETCH, BPF_PSEUDO_FUNC, BPF_REG_10, MAX_BPF_REG
