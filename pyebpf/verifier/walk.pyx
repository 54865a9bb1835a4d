# cython: boundscheck=True, wraparound=True
"""The path walk's loop and its checkpoints (``do_check``, ``is_state_visited``,
``push_stack``), compiled: what runs for every instruction processed.

:class:`Walk` is the base of :class:`.interp.Interpreter`, which gives it the
instructions' rules (``step`` and what it calls) and fills its fields; its fields are
C ones here, so the walk's reads of them are a load at a fixed offset where Python
3.11's interpreter looked them up in the instance's dictionary, and the per-slot
questions (a prune point? a jump point? a mov of a constant?) are one byte of a
per-slot table.
"""
from .isaconst cimport F_JCC_K, F_JCC_X
from .state cimport Frame, VState

from . import precision
from .reg import scalar
from .state import maybe_looping, signature, states_equal

# per register mask, its registers in order (_live_regs)
REGS_OF = tuple(tuple(r for r in range(10) if mask >> r & 1) for mask in range(1 << 10))
cdef enum:
    R0_R9 = (1 << 10) - 1
    CALLEE_SAVED = R0_R9 & ~((1 << 6) - 1)     # r6-r9

# a slot's flags (Walk.slot_flags)
cdef enum:
    PRUNE = 1           # states are compared and kept here (a prune point)
    JMP_POINT = 2       # a path's history gets an entry as it arrives (mark_jmp_point)
    FORCED = 4          # a checkpoint is always made here (is_force_checkpoint)
    ITER_NEXT = 8       # an iterator's next call
    MAY_GOTO = 16
    CALLS_CALLBACK = 32
    IS_JMP = 64         # a jump instruction (BPF_JMP, BPF_JMP32): the jmps count


cdef class Walk:
    """The walk's state: what ``explore`` reads per instruction, typed."""
    cdef public object insns, ops, log, lv, live, main_buckets, states, open, open_count
    cdef public object unclean, free_list, note, profile, mov_k
    cdef public object prune, jmp_points, forced, iter_nexts, may_gotos, callback_calls
    cdef public Py_ssize_t processed, pc, hist_at, jmps, prev_jmps, prev_processed, limit
    cdef public Py_ssize_t total_states, peak_states, cur_states, max_states_per_insn
    cdef public Py_ssize_t nslots, id_gen, jmp_seq_limit
    cdef public bint precision, loops, unpriv
    cdef bytes slot_flags

    def set_slot_flags(self, is_jmp) -> None:
        """Per slot (and one past the end, where a last call's return point is), the
        flags ``explore`` and ``visited`` test: from the point sets and ``is_jmp``."""
        flags = bytearray(self.nslots + 2)
        for bit, pcs in ((PRUNE, self.prune), (JMP_POINT, self.jmp_points),
                         (FORCED, self.forced), (ITER_NEXT, self.iter_nexts),
                         (MAY_GOTO, self.may_gotos), (CALLS_CALLBACK, self.callback_calls)):
            for pc in pcs:
                if 0 <= pc < len(flags):
                    flags[pc] |= bit
        for pc, j in enumerate(is_jmp):
            if j:
                flags[pc] |= IS_JMP
        self.slot_flags = bytes(flags)

    # --- bookkeeping ---------------------------------------------------------------
    def hist_entry(self, VState st) -> None:
        """push_jmp_history: one entry per instruction at most (a jump point, a
        register spilled or filled, a branch on linked scalars or a stack pointer)."""
        if self.hist_at != self.processed:
            self.hist_at = self.processed
            st.hist_len += 1

    def new_id(self) -> int:
        self.id_gen += 1
        return self.id_gen

    # --- the main loop ----------------------------------------------------------------
    def explore(self, VState st, Py_ssize_t pc) -> None:
        """Every path from ``pc`` in state ``st`` (do_check)."""
        cdef list pending = []
        cdef Py_ssize_t prev = -1, processed
        cdef const unsigned char *flags = self.slot_flags
        cdef list mov_k = self.mov_k
        cdef int level
        cdef bint precise = self.precision
        cdef tuple item
        touched = None      # what the last instruction touched, printed before the next
        log = self.log
        log.start(pc, st)
        # per instruction processed: what stays fixed for the whole walk, looked up once
        level = log.level
        step, lv, insns, ops = self.step, self.lv, self.insns, self.ops
        while True:
            # do_check counts an instruction before it looks for an equivalent state,
            # so a pruned visit counts too and the state heuristics see it
            self.processed += 1
            processed = self.processed
            if processed > self.limit:
                self.refuse(pc, f"BPF program is too large. Processed {processed} insn")
            self.pc = pc
            if flags[pc] & PRUNE:
                if self.visited(st, pc):
                    log.slots.clear()
                    if level >= 2:
                        log.pruned(pc)
                    self.path_done(st)
                    lv.update(st)
                    if not pending:
                        return
                    item = pending.pop()
                    st, pc, prev, mark = item
                    if level:
                        log.pop(mark, prev, pc, st)
                    touched = None
                    continue
                if flags[pc] & JMP_POINT:     # every jump point is a prune point
                    # hist_entry, inlined: the instruction's first entry
                    self.hist_at = processed
                    st.hist_len += 1
            if touched is not None:
                # do_check prints the last instruction's registers after it has looked
                # for an equivalent state here (none when that pruned the path)
                log.after(st, touched, pc)
                touched = None
            if level >= 2:     # only level 2 prints a path's beginning
                log.begun()
            if flags[pc] & IS_JMP:
                self.jmps += 1
            if level:
                log.insn(pc, insns, ops, st)
            self.note = None
            k = mov_k[pc]
            if k is not None:   # a mov of an immediate (mov's first case), without the calls
                (<Frame>st.frames[-1]).regs[(<tuple>k)[0]] = scalar((<tuple>k)[1])
                nxt = pc + 1
            else:
                nxt = step(st, pc, pending)
            if precise:
                note = self.note
                st.hist.append(pc if note is None else (pc,) + note)
            if level >= 2:
                touched = self._touched(pc)
                form = ops[pc].form
                if nxt is None or form is F_JCC_K or form is F_JCC_X:
                    # check_cond_jmp_op prints its state itself, under its own pc,
                    # whether or not the next instruction prunes the path
                    log.after(st, touched, pc)
                    touched = None
            if nxt is None:
                self.path_done(st)
                lv.update(st)
                if not pending:
                    return
                item = pending.pop()
                st, pc, prev, mark = item
                if level:
                    log.pop(mark, prev, pc, st)
                continue
            prev, pc = pc, nxt

    def push(self, VState st, Py_ssize_t pc, Py_ssize_t prev, list pending,
             errno=None) -> VState:
        """push_stack; ``errno`` is what its caller returns when it fails, where that is
        not the message's (errnos.py: a branch's EFAULT, check_cond_jmp_op): 6.18's
        ENOMEM for a may_goto, an iterator's next call (process_iter_next_call) or a
        callback (push_callback_call)."""
        if len(pending) >= self.jmp_seq_limit:
            # push_stack: too many branches waiting to be explored
            self.refuse(prev, "BPF program is too complex" if self.profile == "4.6" else
                        f"The sequence of {len(pending) + 1} jumps is too complex.",
                        errno=errno)
        cdef VState other = st.copy()
        if self.precision:
            other.hist.append(prev if self.note is None else (prev,) + self.note)
        if st.parent is not None:
            (<VState>st.parent).branches += 1
        pending.append((other, pc, prev, self.log.mark()))
        return other

    def path_done(self, VState st) -> None:
        """A path ended: its checkpoints with no open branch left become finished
        states, which later paths may be pruned against."""
        cdef VState p = st.parent
        while p is not None:
            p.branches -= 1
            if p.branches:
                break
            if self.loops:
                self._exit_scc(p)
            if id(p) in self.free_list and not (self.loops and self._incomplete(p)):
                del self.free_list[id(p)]      # maybe_free_verifier_state
                self.cur_states -= 1
            if not p.evicted:
                self.open[p.insn][p.sig].remove(p)
                self.open_count[p.insn] -= 1
                self.unclean.setdefault(p.insn, []).append(p)
            p = p.parent

    def visited(self, VState cur, Py_ssize_t pc) -> bool:
        """is_state_visited: True to end this path here (an equivalent finished state
        exists); refuses an exact repeat of an ancestor; else records a checkpoint.
        States are looked at newest first, each counting its hits and misses, and one
        that misses far more often than it hits is forgotten, as the kernel forgets it
        (so a program whose paths the kernel cannot prune is refused by complexity
        here too)."""
        cdef unsigned char fl = (<const unsigned char *>self.slot_flags)[pc]
        cdef bint iter_next, may_goto, calls_callback, force, force_new, add, hold
        cdef Py_ssize_t jmps, processed, count, n
        cdef VState old, snap
        cdef list here
        if self.unclean and pc in self.unclean:
            self._clean_live_states(cur, pc)

        if len(cur.frames) == 1:    # _live_regs and _bucket, inlined for the main function
            live = [REGS_OF[self.live[pc] & R0_R9]]
            bucket = self.main_buckets[pc]
        else:
            live = self._live_regs(cur, pc)
            bucket = self._bucket(pc, cur)
        # the kernel adds a state only after 2 jumps and 8 instructions since the last
        # one (20 and 100 inside a loop): what it finds first, and its counts, follow
        force = fl & FORCED                 # is_force_checkpoint
        iter_next = fl & ITER_NEXT
        may_goto = fl & MAY_GOTO
        calls_callback = fl & CALLS_CALLBACK
        # force_new_state: also a path whose history since its checkpoint is long
        force_new = force or cur.hist_len > 40
        jmps, processed = self.jmps - self.prev_jmps, self.processed - self.prev_processed
        add = force_new or (jmps >= 2 and processed >= 8)
        # a state still open here holds the next one back until 20 jumps and 100
        # instructions have passed (a loop's)
        hold = not force_new and jmps < 20 and processed < 100
        sig = None
        # ancestors still being explored that an exact repeat would be (an infinite
        # loop): only those of cur's signature can be; not at an iterator's next call or
        # a callback call, whose loops end by their own rules (skip_inf_loop_check)
        repeats = ()
        if self.open_count.get(pc) and not (iter_next or calls_callback):
            sig = signature(cur, live)
            repeats = self.open[pc].get(sig, ())
        here = self.states.get(bucket)
        if here is None:
            here = []
        count = len(here)
        for old in here[::-1]:      # a copy: _evict may remove from here
            if old.insn != pc:
                continue
            if old.branches:
                # a state of this path or of one still open: the loop heuristics
                if force and states_equal(old, cur, live, uninit_ok=not self.unpriv,
                                          within=True) and (
                        calls_callback or
                        (may_goto and old.may_goto_depth != cur.may_goto_depth) or
                        (iter_next and self._iter_active(cur))):
                    old.hits += 1
                    if self.precision:
                        precision.propagate(self, old, cur)
                        if self.loops:
                            self._backedge(old, cur)
                    return True
                # checked in the list's order, so a newer state may prune first; a
                # may_goto whose depths are equal is checked too (is_state_visited)
                if old in repeats and maybe_looping(old, cur) and \
                        old.may_goto_depth == cur.may_goto_depth and \
                        old.callback_unroll_depth == cur.callback_unroll_depth and \
                        states_equal(old, cur, live, exact=True):
                    self.refuse(pc, f"infinite loop detected at insn {pc}")
                if hold:
                    add = False
            else:
                # a state whose loop is still being explored has incomplete marks: it
                # prunes only what lies within its ranges (incomplete_read_marks)
                loop = self.loops and self.precision and self._incomplete(old)
                if states_equal(old, cur, live, ranges=loop or not self.precision,
                                uninit_ok=not self.unpriv, within=loop):
                    old.hits += 1
                    if self.precision:
                        precision.propagate(self, old, cur)
                    if loop:
                        self._backedge(old, cur)
                    return True
            if add:
                old.misses += 1
            n = 64 if force and old.branches else 3
            if old.misses > old.hits * n + n:
                self._evict(old)
        if count > self.max_states_per_insn:
            self.max_states_per_insn = count
        if not add:
            return False
        if sig is None:
            sig = signature(cur, live)
        self.prev_jmps, self.prev_processed = self.jmps, self.processed
        snap = cur.copy()
        snap.branches = 1
        snap.parent = cur.parent
        snap.insn, snap.sig = pc, sig
        snap.hist, cur.hist = cur.hist, []
        cur.hist_len = 0
        cur.parent = snap
        cur.dfs_depth = snap.dfs_depth + 1
        self.open.setdefault(pc, {}).setdefault(sig, []).append(snap)
        self.open_count[pc] = self.open_count.get(pc, 0) + 1
        self.states.setdefault(bucket, []).append(snap)
        if self.loops:
            self._enter_scc(snap)
        self.total_states += 1
        self.cur_states += 1
        if self.cur_states > self.peak_states:
            self.peak_states = self.cur_states
        return False

    def _bucket(self, Py_ssize_t pc, VState st) -> int:
        """_bucket_of for ``st``'s current function."""
        if len(st.frames) == 1:
            return self.main_buckets[pc]
        return ((pc ^ (<Frame>st.frames[-1]).callsite) & 0xFFFFFFFF) % self.nslots

    def _live_regs(self, VState cur, Py_ssize_t pc) -> list:
        """Per frame, the registers ``visited``'s ``live`` keeps, in order: a caller's
        callee-saved ones live after its call, and the current frame's r0-r9."""
        live, frames = self.live, cur.frames
        if len(frames) == 1:
            return [REGS_OF[live[pc] & R0_R9]]
        out = [REGS_OF[live[(<Frame>f).callsite + 1] & CALLEE_SAVED] for f in frames[1:]]
        out.append(REGS_OF[live[pc] & R0_R9])
        return out
