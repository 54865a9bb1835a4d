"""Load-time verdicts against the kernel's: pyebpf refuses a program (VerifierError)
exactly when the running kernel's verifier refuses it (KernelError), for every context
access a program can spell and for the register rules of ``pyebpf/verifier/``.
(Values, pointers and paths: tests/test_verifier_paths.py; random programs:
tests/test_verifier_random.py.)
"""
import errno

import pytest

from pyebpf import Program, errors, isa, kernel, verifier
from skbdiff import CLS, EXIT, R0_0, SF, SIZES, TYPES, assert_same

I = isa.Insn
A = isa.OPS_BY_NAME
UDP4 = bytes.fromhex("000000000000020000000001080045000024000100004011f6c57f0000017f000001"
                     "04d2162e00100000") + b"payload!"


def code(*insns) -> bytes:
    return b"".join(i.pack() for i in insns)


def ret0(*body) -> bytes:
    """``body``, then r0 = 0 and exit."""
    return code(*body, R0_0, EXIT)


def ours(prog: bytes, prog_type) -> str | None:
    """pyebpf's refusal (the VerifierError's text), or None when it loads."""
    try:
        Program(prog, prog_type)
    except errors.VerifierError as exc:
        return str(exc)
    return None


def theirs(prog: bytes, prog_type) -> str | None:
    """The kernel verifier's reason for refusing, or None when it loads."""
    try:
        with kernel.KernelProgram(prog, prog_type, log_level=0):
            return None
    except errors.KernelError as exc:
        return str(exc).split("refused the program: ", 1)[-1]


def disagreements(cases, prog_type, same_reason=True) -> list[str]:
    """(label, program) pairs whose verdicts differ, or (``same_reason``) whose kernel
    reason for refusing does not appear in pyebpf's message."""
    out = []
    for label, prog in cases:
        a, b = ours(prog, prog_type), theirs(prog, prog_type)
        if (a is None) != (b is None):
            out.append(f"{label}: pyebpf {'accepts' if a is None else 'refuses: ' + a}; "
                       f"kernel {'accepts' if b is None else 'refuses: ' + b}")
        elif same_reason and b is not None and b not in a:
            out.append(f"{label}: both refuse, but pyebpf says {a!r}, kernel {b!r}")
    return out


# --- every context access, against the kernel --------------------------------------

OFFSETS = range(-8, 200)   # negative, aligned and misaligned, inside, past the 192 bytes


def _access(kind: str, off: int, size: int) -> bytes:
    s = SIZES[size]
    if kind == "LDX":
        return ret0(I(isa.BPF_LDX | isa.BPF_MEM | s, 0, 1, off, 0))
    if kind == "LDXSX":
        return ret0(I(isa.BPF_LDX | isa.BPF_MEMSX | s, 0, 1, off, 0))
    if kind == "STX":
        return ret0(I(0xB7, 2, 0, 0, 0x1234), I(isa.BPF_STX | isa.BPF_MEM | s, 1, 2, off, 0))
    return ret0(I(isa.BPF_ST | isa.BPF_MEM | s, 1, 0, off, 0x1234))


@pytest.mark.kernel
@pytest.mark.parametrize("kind", ["LDX", "LDXSX", "STX", "ST"])
@pytest.mark.parametrize("prog_type", TYPES, ids=lambda t: t.name[14:].lower())
def test_every_context_access_is_accepted_exactly_when_the_kernel_accepts_it(prog_type,
                                                                             kind):
    """One load/store per (offset, size): offsets -8..199, sizes 1/2/4/8 (LDXSX has no
    8-byte form), so aligned, misaligned and past-the-end accesses are all covered."""
    sizes = (1, 2, 4) if kind == "LDXSX" else (1, 2, 4, 8)
    cases = [(f"{kind} off={off} size={size}", _access(kind, off, size))
             for off in OFFSETS for size in sizes]
    bad = disagreements(cases, prog_type)
    assert not bad, f"{len(bad)} of {len(cases)} differ:\n" + "\n".join(bad)


@pytest.mark.kernel
@pytest.mark.parametrize("prog_type", TYPES, ids=lambda t: t.name[14:].lower())
def test_atomics_into_the_context_are_refused_as_the_kernel_refuses_them(prog_type):
    cases = []
    for op in isa.OPS:
        if op.form is isa.F_ATOMIC:
            for off in (8, 48, 56, 152):   # mark, cb[0], cb[2], tstamp
                if off % op.size == 0:
                    cases.append((f"{op.name} off={off}",
                                  ret0(I(0xB7, 0, 0, 0, 0), I(0xB7, 2, 0, 0, 1),
                                       I(op.code, 1, 2, off, op.disc_value))))
    bad = disagreements(cases, prog_type)
    assert not bad, "\n".join(bad)


def test_a_refused_context_access_reads_like_the_kernel_and_names_the_field():
    with pytest.raises(errors.VerifierError) as err:
        Program(ret0(I(A["LDX32"].code, 0, 1, 72, 0)), SF)
    assert err.value.pc == 0
    assert str(err.value) == ("pc 0 (r0 = *(u32 *)(r1 +72)): invalid bpf_context access "
                              "off=72 size=4: tc_classid may not be read by "
                              "BPF_PROG_TYPE_SOCKET_FILTER")


@pytest.mark.parametrize("off, size, reason", [
    (64, 8, "8-byte read at offset 64 runs past the end of cb"),
    (8, 8, "8-byte read of mark; BPF_PROG_TYPE_SCHED_CLS allows 1/2/4 bytes"),
    (156, 4, "4-byte read of tstamp; BPF_PROG_TYPE_SCHED_CLS allows 8 bytes"),
    (6, 4, "misaligned 4-byte read of pkt_type"),
    (192, 1, "offset 192 is outside struct __sk_buff (192 bytes)"),
    (88, 4, "family may not be read by BPF_PROG_TYPE_SCHED_CLS"),
], ids=["cb-dw-past-cb4", "mark-dw", "tstamp-w", "misaligned", "past-the-struct",
        "sk_skb-field"])
def test_each_kind_of_refused_read_says_why(off, size, reason):
    with pytest.raises(errors.VerifierError,
                       match=f"invalid bpf_context access off={off} size={size}: ") as err:
        Program(ret0(I(isa.BPF_LDX | isa.BPF_MEM | SIZES[size], 0, 1, off, 0)), CLS)
    assert str(err.value).endswith(reason)


# --- pointer arithmetic on the context ------------------------------------------------

LDXW_R1 = I(A["LDX32"].code, 0, 1, 0, 0)
MODIFIED_CTX = {
    "r1 += 8; load": ret0(I(A["ADD64_K"].code, 1, 0, 0, 8), LDXW_R1),
    "r1 += 0; load": ret0(I(A["ADD64_K"].code, 1, 0, 0, 0), LDXW_R1),
    "r1 -= 8; load at +8": ret0(I(A["SUB64_K"].code, 1, 0, 0, 8),
                                I(A["LDX32"].code, 0, 1, 8, 0)),
    "r1 += 8; r1 -= 8; load": ret0(I(A["ADD64_K"].code, 1, 0, 0, 8),
                                   I(A["SUB64_K"].code, 1, 0, 0, 8), LDXW_R1),
    "r1 += 8; store": ret0(I(A["ADD64_K"].code, 1, 0, 0, 8),
                           I(A["ST32"].code, 1, 0, 40, 7)),
    "r2 = r1; r2 += 8; load via r2": ret0(I(A["MOV64_X"].code, 2, 1, 0, 0),
                                          I(A["ADD64_K"].code, 2, 0, 0, 8),
                                          I(A["LDX32"].code, 0, 2, 0, 0)),
    "r2 = 8; r2 -= r1": ret0(I(0xB7, 2, 0, 0, 8), I(A["SUB64_X"].code, 2, 1, 0, 0)),
    "r2 = r1; r2 -= r1": ret0(I(A["MOV64_X"].code, 2, 1, 0, 0),
                              I(A["SUB64_X"].code, 2, 1, 0, 0)),
    "r1 += r1": ret0(I(A["ADD64_X"].code, 1, 1, 0, 0)),
    "r1 += 8, never dereferenced": ret0(I(A["ADD64_K"].code, 1, 0, 0, 8)),
    "r1 += 8; spill; reload; load": ret0(I(A["ADD64_K"].code, 1, 0, 0, 8),
                                         I(A["STX64"].code, 10, 1, -8, 0),
                                         I(A["LDX64"].code, 2, 10, -8, 0),
                                         I(A["LDX32"].code, 0, 2, 0, 0)),
}


# Moved by a register holding a known constant: the kernel folds it into the offset.
MOVED_BY_A_REGISTER = {
    "r2 = 8; r1 += r2; load": ret0(I(0xB7, 2, 0, 0, 8), I(A["ADD64_X"].code, 1, 2, 0, 0),
                                   LDXW_R1),
    "r2 = 8; r2 += r1; load via r2": ret0(I(0xB7, 2, 0, 0, 8),
                                          I(A["ADD64_X"].code, 2, 1, 0, 0),
                                          I(A["LDX32"].code, 0, 2, 0, 0)),
}


@pytest.mark.kernel
@pytest.mark.parametrize("prog_type", (SF, CLS), ids=lambda t: t.name[14:].lower())
def test_a_moved_context_pointer_is_treated_as_the_kernel_treats_it(prog_type):
    bad = disagreements(MODIFIED_CTX.items(), prog_type)
    bad += disagreements(MOVED_BY_A_REGISTER.items(), prog_type)
    assert not bad, "\n".join(bad)


@pytest.mark.kernel
def test_alu_operations_on_the_context_pointer_are_refused_as_the_kernel_refuses_them():
    """Every ALU operation with the context pointer as destination or source operand:
    only 64-bit add/sub (and sub of two pointers) pass; the others fail with the
    kernel's message (32-bit arithmetic, bitwise operators, other operators)."""
    cases = []
    for op in isa.OPS:
        if op.form not in (isa.F_ALU_K, isa.F_ALU_X, isa.F_ALU_XOFF_K, isa.F_ALU_XOFF_X) \
                or op.name.startswith("MOV"):
            continue
        off = op.disc_value or 0
        imm = 1 if op.name.startswith(("LSH", "RSH", "ARSH")) else 8
        if op.form in (isa.F_ALU_K, isa.F_ALU_XOFF_K):
            cases.append((f"{op.name} r1, {imm}", ret0(I(op.code, 1, 0, off, imm))))
        else:
            r2 = I(0xB7, 2, 0, 0, imm)
            cases += [(f"{op.name} r1, r2", ret0(r2, I(op.code, 1, 2, off, 0))),
                      (f"{op.name} r2, r1", ret0(r2, I(op.code, 2, 1, off, 0))),
                      (f"{op.name} r1, r1", ret0(I(op.code, 1, 1, off, 0)))]
    bad = disagreements(cases, CLS)
    assert not bad, "\n".join(bad)


def test_a_context_pointer_moved_by_a_register_holding_zero_is_accepted_as_the_kernel_does():
    """``r2 = 0; r1 += r2``: r2 is a known zero, so r1 is still the context."""
    prog = ret0(I(0xB7, 2, 0, 0, 0), I(A["ADD64_X"].code, 1, 2, 0, 0), LDXW_R1)
    assert ours(prog, CLS) is None
    assert theirs(prog, CLS) is None


# --- sign-extending loads -------------------------------------------------------------

def test_sign_extending_loads_of_the_packet_pointers_are_refused_like_the_kernel():
    with pytest.raises(errors.VerifierError, match="off=76 size=4: data is a pointer; it "
                                                   "cannot be sign-extended"):
        Program(ret0(I(A["LDXS32"].code, 0, 1, 76, 0)), CLS)


# --- the data-flow pass ---------------------------------------------------------------

CALL_PRANDOM = I(0x85, 0, 0, 0, isa.HELPER_IDS["get_prandom_u32"])
LDABS_B0 = I(A["LD_ABS8"].code, 0, 0, 0, 0)
R6_CTX = I(A["MOV64_X"].code, 6, 1, 0, 0)
FLOW = {
    "uninitialised r2 read": (code(I(A["MOV64_X"].code, 0, 2, 0, 0), EXIT),
                              "R2 !read_ok"),
    "exit without r0": (code(EXIT), "R0 !read_ok"),
    "r0 set on one branch only": (code(I(A["JEQ64_K"].code, 1, 0, 1, 0), R0_0, EXIT),
                                  "R0 !read_ok"),
    "cmpxchg reads r0": (code(I(0xB7, 2, 0, 0, 0), I(A["STX64"].code, 10, 2, -8, 0),
                              I(A["ATOMIC64_CMPXCHG"].code, 10, 2, -8, isa.BPF_CMPXCHG),
                              R0_0, EXIT), "R0 !read_ok"),
    "r0 after a helper call": (code(CALL_PRANDOM, EXIT), None),
    "r6 after a helper call": (code(R6_CTX, CALL_PRANDOM,
                                    I(A["LDX32"].code, 0, 6, 0, 0), EXIT), None),
    "LD_ABS with the context in r6": (code(R6_CTX, LDABS_B0, EXIT), None),
    "LD_ABS without r6": (code(LDABS_B0, EXIT), "R6 !read_ok"),
    "LD_ABS with a scalar in r6": (code(I(0xB7, 6, 0, 0, 0), LDABS_B0, EXIT),
                                   "at the time of BPF_LD_ABS|IND R6 != pointer to skb"),
    "ctx spilled, reloaded (clang -O0)": (
        code(I(A["STX64"].code, 10, 1, -8, 0), I(A["LDX64"].code, 2, 10, -8, 0),
             I(A["LDX32"].code, 0, 2, 0, 0), EXIT), None),
    "ctx spilled, slot overwritten, reloaded, refused access": (
        code(I(A["STX64"].code, 10, 1, -8, 0), I(A["ST64"].code, 10, 0, -8, 0),
             I(A["LDX64"].code, 2, 10, -8, 0), I(A["LDX32"].code, 0, 2, 200, 0), EXIT),
        "R2 invalid mem access 'scalar'"),
    "ctx spilled, reloaded, refused access": (
        code(I(A["STX64"].code, 10, 1, -16, 0), I(A["LDX64"].code, 3, 10, -16, 0),
             I(A["LDX32"].code, 0, 3, 72, 0), EXIT),
        "invalid bpf_context access off=72 size=4"),
    "unreachable instruction": (code(R0_0, EXIT, R0_0, EXIT), "unreachable insn 2"),
    "callx": (code(I(0xB7, 2, 0, 0, 0), I(A["CALLX"].code, 2, 0, 0, 0), R0_0, EXIT),
              "unknown opcode 8d"),
    "skb_store_bytes from a socket filter": (
        code(I(0x85, 0, 0, 0, isa.HELPER_IDS["skb_store_bytes"]), EXIT),
        "program of this type cannot use helper bpf_skb_store_bytes#9"),
    "helper id 0": (code(I(0x85, 0, 0, 0, 0), EXIT),
                    "program of this type cannot use helper bpf_unspec#0"),
    "helper id -1": (code(I(0x85, 0, 0, 0, -1), EXIT), "invalid func unknown#-1"),
    "helper id past the last": (code(I(0x85, 0, 0, 0, isa.MAX_HELPER_ID + 1), EXIT),
                                f"invalid func unknown#{isa.MAX_HELPER_ID + 1}"),
}
for _r in range(1, 6):
    FLOW[f"r{_r} after a helper call"] = (
        code(CALL_PRANDOM, I(A["MOV64_X"].code, 0, _r, 0, 0), EXIT), f"R{_r} !read_ok")
    FLOW[f"r{_r} after LD_ABS"] = (
        code(R6_CTX, LDABS_B0, I(A["MOV64_X"].code, 0, _r, 0, 0), EXIT), f"R{_r} !read_ok")


@pytest.mark.kernel
@pytest.mark.parametrize("name", FLOW)
def test_the_data_flow_verdict_matches_the_kernel(name):
    """Socket filter: the kernel's reason is asserted as written in FLOW (where pyebpf
    differs from it the case is in the tests below instead), and pyebpf must agree."""
    prog, kernel_reason = FLOW[name]
    assert theirs(prog, SF) == kernel_reason
    assert disagreements([(name, prog)], SF) == []


def test_a_scalar_used_as_a_pointer_is_refused_at_load_and_faults_when_not_verified():
    prog, _ = FLOW["ctx spilled, slot overwritten, reloaded, refused access"]
    with pytest.raises(errors.VerifierError, match="pc 3 .*R2 invalid mem access 'scalar'"):
        Program(prog, SF)
    with pytest.raises(errors.MemoryFault):
        Program(prog, SF, verify=False).run(UDP4)


@pytest.mark.kernel
def test_a_context_pointer_reloaded_from_the_stack_reads_the_same_as_in_the_kernel():
    prog = code(I(A["STX64"].code, 10, 1, -8, 0), I(A["MOV64_K"].code, 1, 0, 0, 0),
                I(A["LDX64"].code, 2, 10, -8, 0), I(A["LDX32"].code, 3, 2, 0, 0),
                I(A["STX32"].code, 2, 3, 48, 0), R0_0, EXIT)
    engine, _ = assert_same(prog, CLS, UDP4, {})
    assert engine.skb.cb[0] == len(UDP4)


@pytest.mark.kernel
@pytest.mark.parametrize("prog_type", TYPES, ids=lambda t: t.name[14:].lower())
def test_every_helper_id_is_callable_exactly_where_the_kernel_allows_it(prog_type):
    """A bare ``call N`` for every id: the kernel either refuses the id ("invalid func",
    "cannot use helper") or goes on to check the arguments, which this program does not
    set up.  For a helper pyebpf implements the verdicts and reasons must agree; for the
    others (no prototype here) pyebpf must refuse exactly the first kind."""
    from pyebpf.verifier.helpers import PROTOS
    bad = []
    for hid in [-1, *range(isa.MAX_HELPER_ID + 3), 1 << 20]:
        prog = code(I(0x85, 0, 0, 0, hid), EXIT)
        reason = theirs(prog, prog_type) or ""
        kernel_refuses = "invalid func" in reason or "cannot use helper" in reason
        try:
            verifier.check(isa.unpack_program(prog), prog_type)
            refused = None
        except errors.VerifierError as exc:
            refused = str(exc)
        if hid in PROTOS:
            if bool(reason) != (refused is not None) or reason and reason not in refused:
                bad.append(f"helper {hid}: kernel {reason or 'accepts'!r}, pyebpf {refused!r}")
        elif kernel_refuses != (refused is not None):
            bad.append(f"helper {hid}: kernel {reason or 'accepts'!r}, pyebpf {refused!r}")
    assert not bad, "\n".join(bad)


# --- paths are followed one by one, as the kernel follows them --------------------

def _kernel_accepts(prog, prog_type=SF):
    assert theirs(prog, prog_type) is None, "the kernel was expected to accept this"


def test_a_register_set_on_every_feasible_path_is_accepted():
    """``if len > 10 skip; r3 = 1; if len > 10 skip; r0 = r3``: on the path where r3 is
    unset the second branch is known taken, so the read of r3 is never reached."""
    prog = code(I(A["LDX32"].code, 2, 1, 0, 0), I(A["JGT64_K"].code, 2, 0, 1, 10),
                I(0xB7, 3, 0, 0, 1), R0_0, I(A["JGT64_K"].code, 2, 0, 1, 10),
                I(A["MOV64_X"].code, 0, 3, 0, 0), EXIT)
    assert ours(prog, SF) is None
    _kernel_accepts(prog)


def test_a_read_on_a_branch_proved_dead_is_not_checked():
    """``r0 = 1; if r0 == 1 goto exit; r0 = r2``: the branch is always taken."""
    prog = code(I(0xB7, 0, 0, 0, 1), I(A["JEQ64_K"].code, 0, 0, 1, 1),
                I(A["MOV64_X"].code, 0, 2, 0, 0), EXIT)
    assert ours(prog, SF) is None
    _kernel_accepts(prog)


@pytest.mark.parametrize("jump", ["if r1 > r8 goto +2", "if r1 >= r8 goto +2"],
                         ids=["beyond", "at"])
def test_a_read_through_a_pointer_known_past_pkt_end_is_einval_as_in_the_kernel(jump):
    """check_packet_access: a packet pointer known at or beyond pkt_end (the taken side
    of a comparison with it: AT_PKT_END, BEYOND_PKT_END) is refused with EINVAL and
    "R1 offset is outside of the packet" alone, before __check_mem_access (pyebpf gave
    EACCES and its "invalid access to packet" line; random programs v3new #74)."""
    from pyebpf import asm
    prog = asm.assemble("r6 = r1\nr7 = *(u32 *)(r6 + 76)\nr8 = *(u32 *)(r6 + 80)\n"
                        f"r1 = r7\nr1 += 8\n{jump}\nr0 = 0\nexit\n"
                        "r0 = *(u8 *)(r1 + 0)\nr0 = 0\nexit")
    with pytest.raises(errors.KernelError) as kernel_refusal:
        kernel.KernelProgram(prog, CLS).close()
    with pytest.raises(errors.VerifierError) as refusal:
        verifier.verify(isa.unpack_program(prog), CLS)
    assert (kernel_refusal.value.errno, str(kernel_refusal.value).split(": ", 1)[-1]) == \
        (errno.EINVAL, "R1 offset is outside of the packet")
    assert (refusal.value.errno, refusal.value.log.splitlines()[-2]) == \
        (errno.EINVAL, "R1 offset is outside of the packet")
