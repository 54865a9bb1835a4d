"""The loops of a program as 6.18's verifier sees them (kernel/bpf/verifier.c
``compute_scc``, ``maybe_enter_scc``/``maybe_exit_scc``, ``incomplete_read_marks``).

Every instruction in a strongly connected component of the control-flow graph (a
loop: more than one instruction, or one that jumps to itself) gets the component's
number; a call goes on to the next instruction, as ``bpf_insn_successors`` has it.  A
state's *call chain* is the call sites down to its first frame whose instruction lies
in a loop, and that loop.  The first checkpoint made with a chain opens a *visit* of
it; a state pruned while the visit is open is a *backedge*: its read and precision
marks are incomplete until the visit closes (its entry checkpoint has no open branch
left), when the marks the backedges' pruning states hold are propagated again.
While a visit has backedges, a finished state with its chain prunes only a state whose
scalars lie within its ranges (RANGE_WITHIN), not just one equal in its precise
registers."""
from __future__ import annotations

from .. import isa


def successors(insns, ops, pc: int) -> tuple[int, ...]:
    """bpf_insn_successors: where control goes after the instruction at ``pc``."""
    op = ops[pc]
    f = op.form
    if f is isa.F_EXIT:
        return ()
    if f is isa.F_JA:
        return (pc + 1 + insns[pc].off,)
    if f is isa.F_JA32:
        return (pc + 1 + insns[pc].imm,)
    if f in (isa.F_JCC_K, isa.F_JCC_X, isa.F_MAY_GOTO):
        return (pc + 1, pc + 1 + insns[pc].off)
    if f is isa.F_LDDW:
        return (pc + 2,)
    return (pc + 1,)


def components(insns, ops) -> list[int]:
    """compute_scc: per instruction its loop's number (from 1), 0 outside loops."""
    n = len(insns)
    if not any(ops[pc] is not None and any(w <= pc for w in successors(insns, ops, pc))
               for pc in range(n)):
        return [0] * n          # no jump backwards: no loop
    index = [-1] * n
    low = [0] * n
    on = [False] * n
    stack: list[int] = []
    scc = [0] * n
    count, nscc = 0, 0
    for root in range(n):
        if ops[root] is None or index[root] >= 0:
            continue
        work = [(root, iter(successors(insns, ops, root)))]
        index[root] = low[root] = count
        count += 1
        stack.append(root)
        on[root] = True
        while work:
            v, it = work[-1]
            for w in it:
                if not 0 <= w < n or ops[w] is None:
                    continue
                if index[w] < 0:
                    index[w] = low[w] = count
                    count += 1
                    stack.append(w)
                    on[w] = True
                    work.append((w, iter(successors(insns, ops, w))))
                    break
                if on[w]:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    u = work[-1][0]
                    low[u] = min(low[u], low[v])
                if low[v] == index[v]:
                    members = []
                    while True:
                        w = stack.pop()
                        on[w] = False
                        members.append(w)
                        if w == v:
                            break
                    if len(members) > 1 or v in successors(insns, ops, v):
                        nscc += 1
                        for w in members:
                            scc[w] = nscc
    return scc


def callchain(scc: list[int], st) -> tuple | None:
    """compute_scc_callchain: the call sites of ``st``'s frames down to the first whose
    instruction lies in a loop, and that loop; None if none does."""
    frames = st.frames
    sites = []
    for i in range(len(frames)):
        pc = frames[i + 1].callsite if i + 1 < len(frames) else st.insn
        if scc[pc]:
            return (*sites, scc[pc])
        sites.append(pc)
    return None


class Visit:
    """bpf_scc_visit: the entry checkpoint of an open visit, its backedges."""
    __slots__ = ("entry", "backedges")

    def __init__(self):
        self.entry = None
        self.backedges: list[tuple] = []
