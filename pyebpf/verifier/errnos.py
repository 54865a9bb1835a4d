"""The errno ``BPF_PROG_LOAD`` sets for each refusal of the verifier.

The kernel's checks return their own codes: most refusals of what a program does with
its registers and memory are EACCES, refusals of its shape (opcodes, reserved fields,
jumps, the control flow graph), of calls and references are EINVAL, limits are E2BIG.
:func:`errno_of` gives the code from the refusal's words, first match wins; a check
whose words do not decide it (``check_stack_access_within_bounds``) gives the code
with its refusal.  tests/test_syscall_errno.py asks the running kernel for each kind.
"""
from __future__ import annotations

import functools
import re
from errno import E2BIG, EACCES, EBADF, EFAULT, EINVAL, EPERM

from ..isa import Errno

ENOTSUPP = int(Errno.ENOTSUPP)     # the kernel-internal 524 (include/linux/errno.h)

# (errno, words each refusal of that errno starts with: regular expressions)
_TABLE = (
    (E2BIG, (
        r"BPF program is too large\.",                  # do_check: the 1M processed insns
        r"the call stack of \d+ frames is too deep",    # check_func_call
        r"program of \d+ instructions is larger than",  # bpf_prog_load: insn_cnt
        r"program is empty",                            # bpf_prog_load: insn_cnt == 0
    )),
    (EPERM, (
        r"loading/calling other bpf or kernel functions are allowed for",
        r"\w+ programs need CAP_BPF",                   # bpf_prog_load: bpf_capable
    )),
    (EBADF, (r"fd -?\d+ is not pointing to valid bpf_map",)),
    (EFAULT, (
        r"verifier bug",
        r"The sequence of \d+ jumps is too complex\.",  # a branch's push_stack (interp.push)
    )),
    (ENOTSUPP, (r"callback function not allowed for map",)),
    (EINVAL, (
        # the shape of the program: check_subprogs, check_cfg, resolve_pseudo_ldimm64,
        # do_check's reserved-field and opcode checks
        r"unknown opcode", r"reserved field", r"BPF_CALL uses reserved fields",
        r"invalid register r", r"invalid second slot of lddw", r"lddw is missing",
        r"jump out of range", r"jump into the middle of lddw", r"last instruction is not",
        r"unreachable insn", r"back-edge from insn", r"infinite loop detected",
        r"div by zero", r"invalid shift", r"invalid func",
        r"program of this type cannot use helper", r"unknown func",
        r"program of \d+ instructions: the 4\.6 kernel",
        r"LD_ABS is not allowed in subprogs", r"tail_call is not allowed in subprogs",
        r"cannot tail call within callback",
        r"at the time of BPF_LD_ABS\|IND R6 != pointer to skb",
        r"ldimm64 insn specifies invalid btf_id", r"pseudo btf_id \d+ in ldimm64",
        r"no direct value access support", r"kernel btf_id \d+ is not a function",
        r"invalid module BTF object FD",
        r"same insn cannot be used with different pointers",
        # check_reg_sane_offset (adjust_ptr_min_max_vals)
        r"math between \w+ pointer and", r"value -?\d+ makes \w+ pointer be out of bounds",
        r"\w+ pointer offset -?\d+ is not allowed",
        # returns and references: check_return_code, prepare_func_exit,
        # check_reference_leak, release_reference, check_func_arg_reg_off
        r"At (async callback return|callback return|program exit|subprogram exit) the "
        r"register R0",
        r"Caller passes invalid args into func#", r"callback function not static",
        r"missing btf func_info",
        r"cannot return stack pointer to the caller",
        r"cannot spill pointers to stack into stack frame of the caller",
        r"Unreleased reference", r".* would lead to reference leak",
        r"R\d+ must be referenced", r"R\d+ must have zero offset when passed to release",
        r"arg \d+ is an unacquired reference", r"allocated object must be referenced",
        r"release kernel function", r"R\d+ must be a known constant", r"R\d+ is not a scalar$",
        # helper calls: check_helper_call, check_func_arg, check_map_func_compatibility
        r"cannot call GPL", r"cannot call kernel function from non-GPL",
        r"helper call might sleep", r"sleepable helper \S+ in (rcu_read_lock|non-preemptible) "
        r"region", r"cannot pass map_type", r"cannot update sockmap",
        r"invalid arg_type for sockmap", r"Invalid format string",
        r"string is not zero-terminated", r"timer pointer in R1 map_uid",
        # locks, timers, kptrs, dynptrs, iterators, RCU and preemption regions
        r"R\d+ doesn't have constant offset\.", r"R\d+ has no valid kptr",
        r"map '.*' has (no valid|to have BTF)", r"off \d+ doesn't point to 'struct",
        r"Locking two bpf_spin_locks", r"bpf_spin_unlock (of different lock|without)",
        r"function calls are not allowed while holding a lock",
        r"global function calls are not allowed while holding a lock",
        r"(socket filter|tracing) progs cannot use",
        r".* cannot be used inside",                    # check_resource_leak's regions
        r"nested rcu read lock", r"unmatched (rcu read unlock|attempt to enable)",
        r"Expected (a dynptr|an initialized dynptr)", r"cannot overwrite referenced dynptr",
        r"cannot pass in (dynptr|iter_\w+) at an offset", r"cannot release unowned const",
        r"cannot pass pointer to const bpf_dynptr", r"dynptr has to be at a constant",
        r"(expected an initialized|expected uninitialized) iter_",
        r"iter_\w+ has to be at a constant offset",
        # kfunc arguments: check_kfunc_args
        r"arg#\d+ ", r"kernel function \S+ args#", r"bpf_obj_new/bpf_percpu_obj_new",
        r"kfunc bpf_rdonly_cast type ID", r"local type ID argument",
        # BPF exceptions: bpf_find_exception_callback_insn_off, do_check_common,
        # check_max_stack_depth_subprog
        r"multiple exception callback tags", r"(invalid )?exception callback ",
        r"exception cb only supports", r"bpf_throw kfunc \(insn \d+\) cannot be called",
        r"insn \d+ cannot call exception cb directly",
    )),
)


@functools.cache
def _patterns() -> tuple:
    # compiled at the first refusal, not at import: a program that loads never needs
    # them, and compiling them costs every start-up some 5 ms
    return tuple((code, re.compile("|".join(f"(?:{w})" for w in words)))
                 for code, words in _TABLE)


def errno_of(message: str) -> int:
    """The errno of a refusal whose last line is ``message`` (EACCES unless listed)."""
    for code, pattern in _patterns():
        if pattern.match(message):
            return code
    return EACCES


class Refusal(Exception):
    """The kernel's refusal: its message lines, the instruction, and the errno
    BPF_PROG_LOAD gives for it when the refusing check chooses one (else the one its
    words give: :func:`errno_of`)."""

    def __init__(self, lines: list[str], pc: int, errno: int | None = None):
        super().__init__(lines[-1])
        self.lines, self.pc, self.errno = lines, pc, errno
