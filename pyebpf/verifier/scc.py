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

from .flow import jumps_back


def components(ops, succ) -> list[int]:
    """compute_scc: per instruction its loop's number (from 1), 0 outside loops
    (``succ``: :func:`.flow.successors`)."""
    n = len(ops)
    if not jumps_back(succ):
        return [0] * n          # no loop
    index = [-1] * n
    low = [0] * n
    on = [False] * n
    stack: list[int] = []
    scc = [0] * n
    count, nscc = 0, 0
    for root in range(n):
        if ops[root] is None or index[root] >= 0:
            continue
        work = [(root, iter(succ[root]))]
        index[root] = low[root] = count
        count += 1
        stack.append(root)
        on[root] = True
        while work:
            v, it = work[-1]
            for w in it:
                if ops[w] is None:
                    continue
                if index[w] < 0:
                    index[w] = low[w] = count
                    count += 1
                    stack.append(w)
                    on[w] = True
                    work.append((w, iter(succ[w])))
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
                    if len(members) > 1 or v in succ[v]:
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
