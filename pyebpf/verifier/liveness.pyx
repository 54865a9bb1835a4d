# cython: annotation_typing=False, boundscheck=True, wraparound=True, cdivision=False
"""Stack slot liveness as the 6.18 kernel computes it (``kernel/bpf/liveness.c``), so
that a stored state forgets the stack slots no later instruction reads before it is
compared (``clean_live_states``, ``clean_func_state``).

The kernel learns what each instruction does to the stack while it verifies: per call
chain (the call instructions that led into a function, and the function) and
instruction, the slots it may read (the union over every visit: ``bpf_mark_stack_read``)
and the slots it surely writes (the intersection over every visit of the whole 8-byte
slots written: ``bpf_mark_stack_write``, committed after each instruction).  When a path
ends, and when a function returns, what the instructions of each function of the path
read and write is propagated backwards through the function's control flow
(``update_instance``): a slot is live before an instruction if the instruction or one
after it may read it before an instruction surely writes it.  A function's reads and
writes of its callers' frames are handed to the call instruction of the caller
(``propagate_to_outer_instance``).  A finished state is cleaned once, the first time a
path with the same call chain reaches its instruction, by what is known then: the slots
of each frame dead there (for a caller's frame, dead after the call, or before a call of
a callback, which may run again) are forgotten (``bpf_stack_slot_alive``).

Only instructions whose visits reach the stack are recorded; a slot is 64 bits of a
mask per frame, bit ``spi`` for the bytes ``[-8 * (spi + 1), -8 * spi)``.
"""
from __future__ import annotations

from .flow import predecessors

_ALL = (1 << 64) - 1


def slot_mask(lo: int, hi: int) -> int:
    """The stack slots the bytes [lo, hi) below the frame pointer reach, as a mask."""
    first, last = (-hi) // 8, (-lo - 1) // 8
    return ((1 << (last + 1)) - 1) ^ ((1 << first) - 1)


class _Instance:
    """``struct func_instance``: one function reached by one call chain; per frame of the
    chain (0 is the outermost), per instruction of the function (relative to ``start``),
    the masks ``read`` (may_read), ``write`` (must_write), ``acc`` (must_write_acc) and
    ``live`` (live_before); None for a frame nothing was marked in."""
    __slots__ = ("chain", "start", "n", "read", "write", "acc", "live", "seen",
                 "updated", "dropped", "dirty")

    def __init__(self, chain: tuple, start: int, n: int):
        self.chain, self.start, self.n = chain, start, n
        depth = len(chain)
        self.read = [None] * depth
        self.write = [None] * depth
        self.acc = [None] * depth
        self.live = [None] * depth
        self.seen = bytearray(n)        # must_write_set: visits committed
        self.updated = self.dropped = False
        self.dirty: set = set()         # instructions whose marks changed since the update

    def frame(self, f: int) -> None:
        if self.read[f] is None:
            n = self.n
            self.read[f], self.write[f], self.acc[f], self.live[f] = \
                [0] * n, [0] * n, [0] * n, [0] * n


class StackLiveness:
    """The analysis of one program (``struct bpf_liveness``), over its control flow
    ``succ`` (:func:`.flow.successors`)."""

    def __init__(self, succ, starts, calls_callback):
        n = len(succ)
        self.starts = starts
        self.ends = list(starts[1:]) + [n]
        self.calls_callback = calls_callback
        self.instances: dict[tuple, _Instance] = {}
        self.succ = succ
        self._pred = None       # predecessors(succ), made when a path first marks a slot
        self.writes: dict[int, int] = {}    # frame -> slots written by this instruction
        self.stale = False      # an instance has marks ``update`` has not propagated

    # --- call chains ---------------------------------------------------------------
    def instance(self, st, depth: int) -> _Instance:
        """lookup_instance: the function of frame ``depth`` of ``st`` by its call chain."""
        frames = st.frames
        chain = tuple(frames[i].callsite for i in range(1, depth + 1)) + \
            (self.starts[frames[depth].subprog],) if depth else \
            (self.starts[frames[0].subprog],)
        inst = self.instances.get(chain)
        if inst is None:
            sub = frames[depth].subprog
            inst = self.instances[chain] = _Instance(chain, self.starts[sub],
                                                     self.ends[sub] - self.starts[sub])
        return inst

    def _outer(self, inst: _Instance) -> _Instance:
        chain = inst.chain[:-2] + (self._start_of(inst.chain[-2]),)
        outer = self.instances.get(chain)
        if outer is None:
            sub = self._func(chain[-1])
            outer = self.instances[chain] = _Instance(chain, self.starts[sub],
                                                      self.ends[sub] - self.starts[sub])
        return outer

    def _func(self, pc: int) -> int:
        from bisect import bisect_right
        return bisect_right(self.starts, pc) - 1

    def _start_of(self, pc: int) -> int:
        return self.starts[self._func(pc)]

    # --- marks -----------------------------------------------------------------------
    def read(self, st, frame: int, pc: int, mask: int) -> None:
        """bpf_mark_stack_read: the instruction at ``pc`` of ``st``'s current function
        may read the slots ``mask`` of frame ``frame``."""
        self._read(self.instance(st, len(st.frames) - 1), frame, pc, mask)

    def _read(self, inst: _Instance, frame: int, pc: int, mask: int) -> None:
        inst.frame(frame)
        i = pc - inst.start
        reads = inst.read[frame]
        new = reads[i] | mask
        if new != reads[i]:
            if new | inst.live[frame][i] != inst.live[frame][i]:
                inst.updated = self.stale = True
            reads[i] = new
            inst.dirty.add(i)

    def write(self, frame: int, mask: int) -> None:
        """bpf_mark_stack_write: the instruction being checked writes all of these
        slots of frame ``frame``."""
        self.writes[frame] = self.writes.get(frame, 0) | mask

    def commit(self, st, pc: int) -> None:
        """bpf_commit_stack_write_marks, after an instruction that may write the stack:
        what every visit so far wrote (the first visit sets it)."""
        self._commit(self.instance(st, len(st.frames) - 1), pc, self.writes)
        self.writes = {}

    def _commit(self, inst: _Instance, pc: int, writes: dict) -> None:
        i = pc - inst.start
        seen = inst.seen[i]
        for f in range(len(inst.chain)):
            mask = writes.get(f, 0)
            if not mask and not seen:
                continue
            inst.frame(f)
            old = inst.write[f][i]
            if seen:
                mask &= old
            if old != mask:
                inst.write[f][i] = mask
                inst.updated = self.stale = True
                inst.dirty.add(i)
            if old & ~mask:
                inst.dropped = True
        inst.seen[i] = 1

    # --- propagation -----------------------------------------------------------------
    def update(self, st) -> None:
        """bpf_update_live_stack: a path ended or a function returned; bring the live
        slots of every function of ``st``'s call chain, innermost first, up to date."""
        if not self.stale:
            return      # a path that marked no stack slot (most of them) has nothing to do
        for depth in range(len(st.frames) - 1, -1, -1):
            inst = self.instance(st, depth)
            if inst.updated:
                self._update(inst)
                inst.updated = inst.dropped = False
        self.stale = any(inst.updated for inst in self.instances.values())

    def _update(self, inst: _Instance) -> None:
        """update_instance: live_before and must_write_acc to their fixed point, from
        the instructions whose marks changed."""
        if self._pred is None:
            self._pred = predecessors(self.succ)
        start, succ, pred = inst.start, self.succ, self._pred
        n = inst.n
        if inst.dropped:
            for f in range(len(inst.chain)):
                if inst.acc[f] is not None:
                    inst.acc[f] = [0] * n
        for f in range(len(inst.chain)):
            reads = inst.read[f]
            if reads is None:
                continue
            writes, acc, live = inst.write[f], inst.acc[f], inst.live[f]
            work = set(range(n)) if inst.dropped else set(inst.dirty)
            while work:
                i = work.pop()
                nxt = succ[start + i]
                if not nxt:
                    continue
                after, wacc = 0, _ALL
                for s in nxt:
                    after |= live[s - start]
                    wacc &= acc[s - start]
                before = (after & ~writes[i]) | reads[i]
                wacc |= writes[i]
                if before != live[i] or wacc != acc[i]:
                    live[i], acc[i] = before, wacc
                    work.update(p - start for p in pred[start + i])
        inst.dirty.clear()
        if len(inst.chain) > 1:
            self._to_outer(inst)

    def _to_outer(self, inst: _Instance) -> None:
        """propagate_to_outer_instance: the function's reads and writes of its callers'
        frames, as seen from its first instruction, become the call instruction's."""
        outer = self._outer(inst)
        callsite = inst.chain[-2]
        writes = {}
        for f in range(len(inst.chain) - 1):
            if inst.read[f] is None:
                continue
            writes[f] = inst.acc[f][0]
            self._read(outer, f, callsite, inst.live[f][0])
        self._commit(outer, callsite, writes)

    # --- queries -----------------------------------------------------------------------
    def clean(self, old) -> None:
        """clean_verifier_state's stack part: forget the slots of ``old`` (a finished
        state) that are dead at its instruction (``bpf_stack_slot_alive``)."""
        frames = old.frames
        if not any(fr.stack for fr in frames):
            return      # no slot to forget (most states of programs that spill nothing)
        cur = len(frames) - 1
        insts = [self.instance(old, d) for d in range(cur + 1)]
        top = insts[cur]
        for fno, fr in enumerate(frames):
            if not fr.stack:
                continue
            alive = _live(top, old.insn, fno)
            for i in range(fno, cur):
                site = frames[i + 1].callsite
                alive |= _live(insts[i], site if site in self.calls_callback else site + 1,
                               fno)
            for spi in [spi for spi in fr.stack if not alive >> spi & 1]:
                del fr.stack[spi]


def _live(inst: _Instance, pc: int, frame: int) -> int:
    live = inst.live[frame]
    return 0 if live is None else live[pc - inst.start]
