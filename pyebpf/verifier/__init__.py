"""The kernel's load-time decision, without a kernel: will ``BPF_PROG_LOAD`` accept
this program, and if not, which instruction does it refuse and in which words.

:func:`check` runs the static checks (:mod:`.structure`) and, for a program type,
the abstract interpreter (:mod:`.interp`) on the kernel's model: registers typed as
the kernel types them (scalars with a tnum and signed/unsigned 32/64-bit bounds,
context, stack, packet, packet end, map pointers, map values or NULL, ring buffer
memory), stack bytes and spilled registers, every path explored with dead branches
skipped, states pruned, bounded loops run to their end and the 1,000,000 processed
instruction limit.  Privileged (root) rules by default: uninitialised stack may be
read, pointers may be stored or compared; ``unpriv=True`` gives an unprivileged
loader's.  The ``4.6`` profile refuses what 4.6 refused first: more than 4096
instructions, back-edges and bpf-to-bpf calls.

A refusal is a :class:`~pyebpf.errors.VerifierError` whose message ends with the
kernel's own words for it, with ``pc``, ``insn`` (its text), ``source`` (the C line,
from line info) and ``log`` (the verifier log at level 1 or 2).  :func:`verify` returns
the log and the statistics of an accepted program too.
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import host, isa
from ..errors import VerifierError
from . import errnos, exceptions, flow, license as licenses, scc, structure
from .globalfuncs import exception_cb_pc
from .interp import COMPLEXITY_LIMIT, Interpreter, Refusal
from .log import Log, insn_text, live_regs_lines, subprog_lines

__all__ = ["check", "verify", "Verdict", "COMPLEXITY_LIMIT"]

BPF_MAXINSNS_46 = 4096


@dataclass
class Verdict:
    """What a verification found: the log, instructions processed and states kept
    (as the kernel's statistics line counts them), and each function's stack depth."""
    log: str
    processed: int
    total_states: int
    peak_states: int
    max_states_per_insn: int
    stack_depths: list


def check(insns: list[isa.Insn] | None, prog_type=None, profile: str = "current", *, maps=None,
          line_info=(), log_level: int = 0, unpriv: bool = False,
          pointer_kinds: dict | None = None, arch: str = "x86_64",
          functions=(), license: str = "GPL", prog_btf=None,
          stack_depths: dict | None = None, func_info: bool = False,
          code: bytes | None = None, packet_pcs: set | None = None) -> list[isa.Op | None]:
    """Check ``insns`` and return the table entry of each slot (None for lddw tails).

    ``prog_type`` None is the raw mode (structure only); a program type adds
    everything the kernel's verifier checks.  ``maps(fd)`` returns the map an lddw
    names (or None).  ``unpriv``: the rules for a loader without CAP_BPF,
    CAP_PERFMON or CAP_SYS_ADMIN.  ``arch``: whose ``struct pt_regs`` a KPROBE program
    reads.  ``functions``: the program's global functions
    (:func:`.globalfuncs.describe`), each verified on its own from its BTF prototype;
    the others are verified at each call (those of them ``describe`` gives with
    ``static`` have their calls checked against their prototype for the log).  ``func_info``: the program comes with BTF
    function info (BPF_PROG_LOAD's func_info; an object built with -g, as libbpf loads
    it), which a callback and subprograms that tail-call need.  ``license``: the program's license string
    (only GPL-compatible ones may call GPL-only helpers and kfuncs).  ``prog_btf``: the
    program's own BTF (:class:`pyebpf.btf.Btf`), whose types ``bpf_obj_new`` allocates.
    Raises
    :class:`VerifierError` at the first refusal.  ``pointer_kinds``, a
    dict, receives for each load and store the verifier reached the pointer type
    (``state.PTR_TO_*``) its base had on the first path there: the only one when it is
    the context (other kinds may mix on other paths).  ``stack_depths``, a dict,
    receives each function's stack depth (the bytes below its r10 any access or helper
    argument reaches), keyed by its first pc; the raw mode gives none.  ``packet_pcs``,
    a set, receives the loads and stores proved inside the packet on every path
    (Interpreter.packet_pcs).  ``code``: the
    program's bytes, when the caller has them (the remembered answers are keyed by them;
    hashing them is far cheaper than hashing the slots); with ``code``, ``insns`` may be
    None: the slots are unpacked only when the program is not remembered."""
    gpl = licenses.gpl_compatible(license)
    if code is None and prog_type is not None:
        code = b"".join(i.pack() for i in insns)
    # nr_cpu_ids bounds bpf_get_smp_processor_id (do_refine_retval_range)
    key = (code, prog_type, profile, unpriv, arch, func_info,
           COMPLEXITY_LIMIT.get(profile), tuple(functions), gpl, host.nr_cpu_ids()) \
        if prog_type is not None else None
    hit = _ACCEPTED.get(key) if key is not None else None
    if hit is not None:
        ops, kinds, depths, packet = hit
    else:
        if insns is None:
            insns = isa.unpack_program(code)
        ops, _, interp = _run(insns, prog_type, profile, maps, line_info, log_level, unpriv,
                              arch, functions, gpl, prog_btf, func_info)
        kinds = interp.ptr_kinds if interp is not None else {}
        depths = dict(zip(interp.starts, interp.depths)) if interp is not None else {}
        packet = frozenset(interp.packet_pcs()) if interp is not None else frozenset()
        if key is not None and _self_contained(insns, interp):
            if len(_ACCEPTED) >= _ACCEPTED_MAX:
                _ACCEPTED.pop(next(iter(_ACCEPTED)))
            _ACCEPTED[key] = (tuple(ops), dict(kinds), dict(depths), packet)
    if pointer_kinds is not None:
        pointer_kinds.update(kinds)
    if stack_depths is not None:
        stack_depths.update(depths)
    if packet_pcs is not None:
        packet_pcs.update(packet)
    return list(ops)


# check()'s answers for accepted programs that consult nothing outside themselves (no
# map, whose contents a constant-string argument reads, no kfunc, whose BTF types come
# from the running kernel): the same slots, type, profile, loader, architecture,
# instruction limit and global functions are verified the same way, so a process that builds a program again skips the search
_ACCEPTED: dict = {}
_ACCEPTED_MAX = 4096


def _self_contained(insns, interp) -> bool:
    """No kfunc call, and no lddw but of a constant or a function (the walk's tables
    name them)."""
    return not interp.kfunc_calls and \
        all(insns[pc].src in (0, isa.BPF_PSEUDO_FUNC) for pc in interp.lddws)


def verify(insns: list[isa.Insn], prog_type, profile: str = "current", *, maps=None,
           line_info=(), log_level: int = 1, unpriv: bool = False,
           arch: str = "x86_64", functions=(), license: str = "GPL",
           prog_btf=None, func_info: bool = False) -> Verdict:
    """Verify a typed program; the :class:`Verdict` of an accepted one, else
    :class:`VerifierError`."""
    return _run(insns, prog_type, profile, maps, line_info, log_level, unpriv, arch,
                functions, licenses.gpl_compatible(license), prog_btf, func_info)[1]


def _run(insns, prog_type, profile, maps, line_info, log_level, unpriv=False,
         arch="x86_64", functions=(), gpl=True, prog_btf=None, func_info=False):
    exception_cb = exception_cb_pc(functions)
    ops = structure.check(insns, prog_type, btf=func_info, walked=prog_type is not None,
                          exception_cb=exception_cb)
    if prog_type is None:
        return ops, None, None
    prog_type = isa.ProgType(prog_type)
    log = Log(log_level, line_info)
    try:
        if profile == "4.6":
            _check_46(insns, ops)
        if unpriv:
            _check_unpriv(insns, ops, prog_type)
        if not gpl and profile == "current":
            _check_kfunc_license(insns, ops)
        starts = sorted({0} | flow.function_starts(insns, ops) |
                        ({exception_cb} if exception_cb else set()))
        succ = flow.successors(insns, ops)
        live = flow.live_registers(insns, ops, succ)
        if log.level >= 2:
            log.lines += subprog_lines(starts)
            log.lines += live_regs_lines(insns, ops, live, scc.components(ops, succ))
        interp = Interpreter(insns, ops, prog_type, profile, maps, log, starts,
                             live, unpriv, arch, functions,
                             gpl, prog_btf, func_info, succ=succ)
        interp.run()
    except Refusal as exc:
        if not log_level:
            # as the kernel's loaders do: the log of a refusal is worth a second pass
            return _run(insns, prog_type, profile, maps, line_info, 1, unpriv, arch,
                        functions, gpl, prog_btf, func_info)
        raise _error(exc.lines, exc.pc, insns, log, line_info,
                     interp if "interp" in locals() else None, exc.errno) from None
    try:
        structure.check_call_chains(insns, ops, starts, interp.depths, exception_cb,
                                    frozenset(interp.async_cbs))
        if exception_cb or interp.throws:
            # its refusals are of a bpf_throw call and of a call of the exception callback
            exceptions.check_throws(insns, ops, starts, exception_cb)
    except VerifierError as exc:
        # check_max_stack_depth and check_throws refuse after the paths: their message
        # is the log's last line before the statistics
        log.add(exc.message)
        exc.log = log.text() + _stats(interp)
        raise
    if log.level == 1:
        log.lines.clear()   # the kernel rewinds a level-1 log as each path proves safe
    log.add(_stats(interp).rstrip("\n"))
    return ops, Verdict(log.text(), interp.processed, interp.total_states,
                        interp.peak_states, interp.max_states_per_insn, interp.depths), interp


def _stats(interp) -> str:
    if interp is None:
        return ""
    return (f"processed {interp.processed} insns (limit {interp.limit}) "
            f"max_states_per_insn {interp.max_states_per_insn} total_states "
            f"{interp.total_states} peak_states {interp.peak_states} mark_read 0\n")


def _error(lines, pc, insns, log: Log, line_info, interp,
           errno: int | None = None) -> VerifierError:
    for line in lines:
        log.add(line)
    text = log.text() + _stats(interp)
    src = _source(line_info, pc)
    err = VerifierError("; ".join(lines), pc, insn_text(insns, pc).split(") ", 1)[1],
                        text, errno if errno is not None else errnos.errno_of(lines[-1]))
    err.source = src
    return err


def _source(line_info, pc: int) -> str:
    best = None
    for li in line_info:
        if li.pc <= pc and (best is None or li.pc >= best.pc):
            best = li
    if best is None:
        return ""
    return f"{best.file_name}:{best.line} `{best.source_line.strip()}`"


def _check_46(insns, ops) -> None:
    """What the 4.6 kernel refused before exploring paths: bpf_prog_load's instruction
    count, check_cfg's back-edges, do_check's BPF_CALL with a source register (no
    bpf-to-bpf calls yet)."""
    n = len(insns)
    if n >= BPF_MAXINSNS_46:
        # bpf_prog_load: insn_cnt >= BPF_MAXINSNS is EINVAL, before the verifier runs
        raise Refusal([f"program of {n} instructions: the 4.6 kernel loads at most "
                       f"{BPF_MAXINSNS_46 - 1} (EINVAL)"], 0)
    for pc, op in enumerate(ops):
        if op is None:
            continue
        if op.form is isa.F_CALL_LOCAL:
            raise Refusal(["BPF_CALL uses reserved fields"], pc)
        target = None
        if op.form in (isa.F_JA, isa.F_JCC_K, isa.F_JCC_X, isa.F_MAY_GOTO):
            target = pc + 1 + insns[pc].off
        elif op.form is isa.F_JA32:
            target = pc + 1 + insns[pc].imm
        if target is not None and target <= pc:
            raise Refusal([f"back-edge from insn {pc} to {target}"], pc)


def _check_kfunc_license(insns, ops) -> None:
    """add_subprog_and_kfunc: a program that is not GPL-compatible may call no kernel
    function (the first call is refused before any path is walked)."""
    for pc, op in enumerate(ops):
        if op is not None and op.form is isa.F_CALL and \
                insns[pc].src == isa.BPF_PSEUDO_KFUNC_CALL:
            raise Refusal([licenses.KFUNC_REFUSAL], pc)


def _check_unpriv(insns, ops, prog_type) -> None:
    """What the kernel refuses an unprivileged loader before exploring paths: program
    types (bpf_prog_load: EPERM), more than BPF_MAXINSNS instructions (E2BIG), calls of
    other functions (add_subprog_and_kfunc) and back-edges (check_cfg without
    bpf_capable)."""
    from .rules import UNPRIV_PROG_TYPES
    if prog_type not in UNPRIV_PROG_TYPES:
        raise Refusal([f"{prog_type.name} programs need CAP_BPF; an unprivileged loader "
                       f"may load socket filters only (the kernel answers EPERM)"], 0)
    if len(insns) > BPF_MAXINSNS_46:
        raise Refusal([f"program of {len(insns)} instructions is larger than an "
                       f"unprivileged loader's {BPF_MAXINSNS_46} (the kernel answers "
                       f"E2BIG)"], 0)
    for pc, op in enumerate(ops):
        if op is not None and op.form is isa.F_CALL_LOCAL:
            raise Refusal(["loading/calling other bpf or kernel functions are allowed for "
                           "CAP_BPF and CAP_SYS_ADMIN"], pc)
    for pc, op in enumerate(ops):
        target = None
        if op is None:
            continue
        if op.form in (isa.F_JA, isa.F_JCC_K, isa.F_JCC_X):
            target = pc + 1 + insns[pc].off
        elif op.form is isa.F_JA32:
            target = pc + 1 + insns[pc].imm
        if target is not None and target <= pc:
            raise Refusal([f"back-edge from insn {pc} to {target}"], pc)
