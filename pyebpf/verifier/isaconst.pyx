# cython: annotation_typing=False
"""The C globals isaconst.pxd declares, from :mod:`pyebpf.isa`."""
from .. import isa

F_ALU_K = isa.F_ALU_K
F_ALU_X = isa.F_ALU_X
F_ALU_SX = isa.F_ALU_SX
F_ALU_XOFF_K = isa.F_ALU_XOFF_K
F_ALU_XOFF_X = isa.F_ALU_XOFF_X
F_NEG = isa.F_NEG
F_END = isa.F_END
F_LDDW = isa.F_LDDW
F_LDX = isa.F_LDX
F_ST = isa.F_ST
F_STX = isa.F_STX
F_ATOMIC = isa.F_ATOMIC
F_LD_ABS = isa.F_LD_ABS
F_LD_IND = isa.F_LD_IND
F_JA = isa.F_JA
F_JA32 = isa.F_JA32
F_JCC_K = isa.F_JCC_K
F_JCC_X = isa.F_JCC_X
F_MAY_GOTO = isa.F_MAY_GOTO
F_CALL = isa.F_CALL
F_CALL_LOCAL = isa.F_CALL_LOCAL
F_CALLX = isa.F_CALLX
F_EXIT = isa.F_EXIT

FIELD_JUMP = isa.Field.JUMP
FIELD_UNUSED = isa.Field.UNUSED

BPF_JMP = isa.BPF_JMP
BPF_JMP32 = isa.BPF_JMP32
BPF_ALU64 = isa.BPF_ALU64

BPF_ADD = isa.BPF_ADD
BPF_SUB = isa.BPF_SUB
BPF_MUL = isa.BPF_MUL
BPF_DIV = isa.BPF_DIV
BPF_OR = isa.BPF_OR
BPF_AND = isa.BPF_AND
BPF_LSH = isa.BPF_LSH
BPF_RSH = isa.BPF_RSH
BPF_MOD = isa.BPF_MOD
BPF_XOR = isa.BPF_XOR
BPF_MOV = isa.BPF_MOV
BPF_ARSH = isa.BPF_ARSH
BPF_JEQ = isa.BPF_JEQ
BPF_JGT = isa.BPF_JGT
BPF_JGE = isa.BPF_JGE
BPF_JSET = isa.BPF_JSET
BPF_JNE = isa.BPF_JNE
BPF_JSGT = isa.BPF_JSGT
BPF_JSGE = isa.BPF_JSGE
BPF_JLT = isa.BPF_JLT
BPF_JLE = isa.BPF_JLE
BPF_JSLT = isa.BPF_JSLT
BPF_JSLE = isa.BPF_JSLE
BPF_FETCH = isa.BPF_FETCH
BPF_PSEUDO_FUNC = isa.BPF_PSEUDO_FUNC
BPF_REG_10 = isa.BPF_REG_10
MAX_BPF_REG = isa.MAX_BPF_REG
