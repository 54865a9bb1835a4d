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
from .isaconst cimport (BPF_ADD, BPF_ALU64, BPF_AND, BPF_ARSH, BPF_DIV, BPF_JEQ, BPF_JGE,
                        BPF_JGT, BPF_JLE, BPF_JLT, BPF_JMP, BPF_JMP32, BPF_JNE, BPF_LSH,
                        BPF_MOD, BPF_MOV, BPF_OR, BPF_PSEUDO_FUNC, BPF_REG_10, BPF_RSH,
                        BPF_SUB, BPF_XOR, F_ADDR_SPACE_CAST, F_ALU_K, F_ALU_SX, F_ALU_X, F_ALU_XOFF_K,
                        F_ALU_XOFF_X, F_ATOMIC, F_CALL, F_CALL_LOCAL, F_CALLX, F_END, F_EXIT,
                        F_JA, F_JA32, F_JCC_K, F_JCC_X, F_LD_ABS, F_LD_IND, F_LDDW, F_LDX,
                        F_MAY_GOTO, F_NEG, F_ST, F_STX)
from cpython.mem cimport PyMem_Calloc, PyMem_Free

from . cimport bounds
from .reg cimport Reg, scalar
from .state cimport Frame, VState, maybe_looping, signature, states_equal
from .tnum cimport Tnum, tn, tn_bswap

from .. import isa
from . import precision, sockets, structure, tnum
from .callbacks import CALLBACK_HELPERS
from .exceptions import is_throw
from .kfuncs import is_iter_next
from .license import GPL_ONLY, HELPER_REFUSAL
from .lists import is_alloc_obj
from .rbtree import calls_less
from .state import (BPF_ADD_CONST, BPF_ADD_CONST32, BPF_ADD_CONST64, CONST_PTR_TO_MAP, M32,
                    M64, MAYBE_NULL, MEM_RCU, NOT_INIT, PKT_TYPES, PTR_TO_ARENA, PTR_TO_BTF_ID,
                    PTR_TO_MAP_KEY, PTR_TO_MAP_VALUE, PTR_TO_MEM, PTR_TO_PACKET,
                    PTR_TO_PACKET_END, PTR_TO_PACKET_META, PTR_TO_STACK, S32_MAX, S32_MIN,
                    SCALAR, type_str)
from .timers import TIMER_SET_CALLBACK_ID

_PKT_ANY = (PTR_TO_PACKET, PTR_TO_PACKET_META, PTR_TO_PACKET_END)
# a packet pointer's range once a comparison showed it at or past pkt_end (mark_pkt_end)
AT_PKT_END, BEYOND_PKT_END = -1, -2
_FLIP = {BPF_JGT: BPF_JLT, BPF_JLT: BPF_JGT, BPF_JGE: BPF_JLE, BPF_JLE: BPF_JGE}
BPF_MAX_VAR_OFF = 1 << 29
MAX_PACKET_OFF = 0xFFFF
# the same numbers as C integers, for the tests run at every instruction: a register's
# type (always an int) converted to a C long compares without Python's comparison
cdef long long _MAX_VAR_OFF = BPF_MAX_VAR_OFF
cdef long _NOT_INIT = NOT_INIT, _SCALAR = SCALAR, _PTR_TO_PACKET = PTR_TO_PACKET
cdef long _PTR_TO_PACKET_META = PTR_TO_PACKET_META, _PTR_TO_PACKET_END = PTR_TO_PACKET_END
cdef long _PTR_TO_STACK = PTR_TO_STACK


cdef inline bint _pkt_any(long t) noexcept:
    return t == _PTR_TO_PACKET or t == _PTR_TO_PACKET_META or t == _PTR_TO_PACKET_END
_ALU_STRING = ("+=", "-=", "*=", "/=", "|=", "&=", "<<=", ">>=", "neg", "%=", "^=", "=",
               "s>>=", "endian")

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

# a slot's instruction (Walk.slot_kind)
cdef enum:
    IS_64 = 1           # 64-bit (BPF_ALU64, BPF_JMP): Op.is_64
    WRITES_R10 = 2      # writes the read-only frame pointer (structure.writes_r10)
    IS_ALU = 4          # a form _alu takes
    SIGN_LOAD = 8       # a sign-extending load (Op.is_sign_extending_load)
    SWAP = 16           # a byte swap that swaps (BPF_ALU64's bswap, or to big-endian)


# a slot's operands as C integers (its Insn's fields, its Op's opcode and size), which
# the dispatch, the ALU and the jumps read at every visit
cdef struct Fields:
    int code, dst, src, off, imm, size


cdef class Walk:
    """The walk's state: what ``explore`` reads per instruction, typed."""
    cdef public object insns, ops, log, lv, live, main_buckets
    cdef public object note, profile, mov_k, callback_calls
    cdef public list lddws
    cdef public bint kfunc_calls, throws
    cdef public dict states, open, open_count, unclean, free_list
    cdef public Py_ssize_t processed, pc, hist_at, jmps, prev_jmps, prev_processed, limit
    cdef public Py_ssize_t total_states, peak_states, cur_states, max_states_per_insn
    cdef public Py_ssize_t nslots, id_gen, jmp_seq_limit
    cdef public bint precision, loops, unpriv, gpl
    cdef public bint explore_alu_limits    # sanitize_ptr_alu masked a variable offset
    cdef public object allowed
    cdef bytes slot_flags, slot_kind
    cdef Fields *fields

    def __dealloc__(self):
        PyMem_Free(self.fields)

    def build_tables(self) -> None:
        """The per-slot tables, from ``insns`` and ``ops``: ``slot_flags`` (and one
        past the end, where a last call's return point is), ``slot_kind``, ``mov_k``
        and ``callback_calls``, and each slot's ``Fields``; ``lddws``, the first slots of the lddws, and whether any
        call is a kfunc's (``kfunc_calls``) or bpf_throw's (``throws``), for the
        per-program checks around the walk.  Where states are compared and kept (the kernel's
        visit_insn and push_insn): conditional jumps and their targets, targets of
        unconditional jumps, where calls return, and a called (or referenced)
        function's first instruction (visit_func_call_insn: a BRANCH edge), and of
        those the jump points, where a path's history gets an entry as it arrives
        (mark_jmp_point: all but the jumps and calls themselves).  One pass over the
        slots, each slot's part made once per Insn (_slot_facts): a process-wide cache
        of whole programs cost more in look-ups than the pass."""
        cdef Py_ssize_t n = self.nslots, pc
        insns, ops = self.insns, self.ops
        cdef bytearray flags = bytearray(n + 2)
        cdef bytearray kind = bytearray(n)
        cdef unsigned char *fl = flags
        cdef list mov_k = [None] * n
        callback_calls = set()
        cdef Fields *fields = <Fields *>PyMem_Calloc(n, sizeof(Fields))
        if fields == NULL:
            raise MemoryError()
        PyMem_Free(self.fields)
        self.fields = fields
        cdef list lddws = []
        cdef bint kfunc_calls = False, throws = False
        cdef tuple t
        cdef int x
        for pc in range(n):
            op = ops[pc]
            if op is None:
                continue
            t = _slot_facts(op, insns[pc])
            fields[pc] = Fields(t[1], t[2], t[3], t[4], t[5], t[6])
            fl[pc] |= <unsigned char>t[7]
            kind[pc] = <unsigned char>t[8]
            mov_k[pc] = t[9]
            x = t[12]
            if x & X_A:
                _point(fl, n, pc + <Py_ssize_t>t[10], PRUNE | JMP_POINT)
            if x & X_B:
                _point(fl, n, pc + <Py_ssize_t>t[11], PRUNE | JMP_POINT)
            if x & X_CALLBACK:
                callback_calls.add(pc)
            if x & X_LDDW:
                lddws.append(pc)
            if x & X_KFUNC:
                kfunc_calls = True
            if x & X_THROW:
                throws = True
        self.slot_flags, self.slot_kind, self.mov_k = bytes(flags), bytes(kind), mov_k
        self.callback_calls = callback_calls
        self.lddws, self.kfunc_calls, self.throws = lddws, kfunc_calls, throws

    # --- bookkeeping ---------------------------------------------------------------
    def hist_entry(self, VState st) -> None:
        """push_jmp_history: one entry per instruction at most (a jump point, a
        register spilled or filled, a branch on linked scalars or a stack pointer)."""
        self._hist_entry(st)

    cdef _hist_entry(self, VState st):
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
        lv, insns, ops = self.lv, self.insns, self.ops
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
                nxt = self._step(st, pc, pending)
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

    cpdef VState push(self, VState st, Py_ssize_t pc, Py_ssize_t prev, list pending,
                      err=None):
        """push_stack; ``err`` is the errno its caller returns when it fails, where that is
        not the message's (errnos.py: a branch's EFAULT, check_cond_jmp_op): 6.18's
        ENOMEM for a may_goto, an iterator's next call (process_iter_next_call) or a
        callback (push_callback_call)."""
        if len(pending) >= self.jmp_seq_limit:
            # push_stack: too many branches waiting to be explored
            self.refuse(prev, "BPF program is too complex" if self.profile == "4.6" else
                        f"The sequence of {len(pending) + 1} jumps is too complex.",
                        errno=err)
        cdef VState other = st.copy()
        if self.precision:
            other.hist.append(prev if self.note is None else (prev,) + self.note)
        if st.parent is not None:
            (<VState>st.parent).branches += 1
        pending.append((other, pc, prev, self.log.mark()))
        return other

    cpdef path_done(self, VState st):
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

    cpdef bint visited(self, VState cur, Py_ssize_t pc) except -1:
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
                # (states_equal's arguments: exact, ranges, uninit_ok, within, alu_limits)
                if force and states_equal(old, cur, live, False, True, not self.unpriv,
                                          True, self.explore_alu_limits) and (
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
                        states_equal(old, cur, live, True):
                    self.refuse(pc, f"infinite loop detected at insn {pc}")
                if hold:
                    add = False
            else:
                # a state whose loop is still being explored has incomplete marks: it
                # prunes only what lies within its ranges (incomplete_read_marks)
                loop = self.loops and self.precision and self._incomplete(old)
                if states_equal(old, cur, live, False, loop or not self.precision,
                                not self.unpriv, loop, self.explore_alu_limits):
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

    # --- one instruction -----------------------------------------------------------------
    cdef object _step(self, VState st, Py_ssize_t pc, list pending):
        """One instruction (do_check's body) but a mov of an immediate, which explore
        makes itself: the next instruction's pc, None where the path ends."""
        cdef Fields *sf = &self.fields[pc]
        insn, op = self.insns[pc], self.ops[pc]
        f = op.form
        cdef unsigned char kind = (<const unsigned char *>self.slot_kind)[pc]
        if kind & WRITES_R10:
            self.refuse(pc, "frame pointer is read only")     # check_reg_arg, DST_OP
        if kind & IS_ALU:
            self._alu(st, pc, insn, op, pending)
            return pc + 1
        if f is F_JCC_K or f is F_JCC_X:
            return self._cond_jmp(st, pc, op, pending)
        if f is F_LDX:
            self._read(st, pc, sf.src)
            if self.precision:
                self._note_slot(st, sf.src, sf.off)
            self.mem_access(st, pc, sf.src, sf.off, sf.size, False, sf.dst,
                            sign=kind & SIGN_LOAD != 0)
            return pc + 1
        if f is F_STX:
            self._read(st, pc, sf.src)
            self._read(st, pc, sf.dst)
            if self.unpriv:
                self._leak_check(st, pc, insn)
            if self.precision:
                self._note_slot(st, sf.dst, sf.off)
            self.mem_access(st, pc, sf.dst, sf.off, sf.size, True, sf.src)
            self.lv.commit(st, pc)
            return pc + 1
        if f is F_ST:
            self._read(st, pc, sf.dst)
            if self.precision:
                self._note_slot(st, sf.dst, sf.off)
            self.mem_access(st, pc, sf.dst, sf.off, sf.size, True, -1, imm=sf.imm)
            self.lv.commit(st, pc)
            return pc + 1
        if f is F_ATOMIC:
            if self.precision:
                self._note_slot(st, sf.dst, sf.off)
            self.atomic(st, pc, insn, op)
            self.lv.commit(st, pc)
            return pc + 1
        if f is F_LDDW:
            self.lddw(st, pc, insn, op)
            return pc + 2
        if f is F_LD_ABS or f is F_LD_IND:
            return self.ld_abs(st, pc, insn, op, pending)
        if f is F_JA:
            return pc + 1 + sf.off
        if f is F_JA32:
            return pc + 1 + sf.imm
        if f is F_MAY_GOTO:
            return self.may_goto(st, pc, insn, pending)
        if f is F_CALL:
            self.call_under_lock(st, pc, insn)
            if op.disc_value == isa.BPF_PSEUDO_KFUNC_CALL:
                self.kfunc_call(st, pc, insn, pending)
                if is_throw(op, insn):
                    self.throw_exit(st, pc)
                    return None
            else:
                if not self.gpl and sf.imm in GPL_ONLY and sf.imm in self.allowed \
                        and self.profile == "current":
                    # check_helper_call: a helper the type offers is refused for the
                    # license before its arguments and any callback are looked at
                    self.refuse(pc, HELPER_REFUSAL)
                if sf.imm == TIMER_SET_CALLBACK_ID and sf.imm in self.allowed:
                    self.timer_callback_call(st, pc, insn, pending)
                self.helper_call(st, pc, insn, pending)
            self.lv.commit(st, pc)
            return pc + 1
        if f is F_CALL_LOCAL:
            self.call_under_lock(st, pc, insn)
            return self.local_call(st, pc, insn)
        if f is F_EXIT:
            return self.exit(st, pc)
        if f is F_CALLX:
            self.refuse(pc, f"unknown opcode {insn.code:02x}")
        raise AssertionError(f)

    # --- registers ------------------------------------------------------------------------
    def read(self, VState st, Py_ssize_t pc, Py_ssize_t r) -> Reg:
        return self._read(st, pc, r)

    cdef Reg _read(self, VState st, Py_ssize_t pc, Py_ssize_t r):
        cdef Reg reg = (<Frame>st.frames[-1]).regs[r]
        if <long>reg.type == _NOT_INIT:
            self.refuse(pc, f"R{r} !read_ok")
        return reg

    def _needs(self, VState st, *regnos) -> None:
        """A decision here depends on these registers' values: the scalars among them
        are marked precise back along the path (not where precision is not tracked:
        __mark_chain_precision returns at once without bpf_capable, and the 4.6
        profile has none)."""
        if not self.precision:
            return
        regs = (<Frame>st.frames[-1]).regs
        marked = [r for r in regnos if (<Reg>regs[r]).type == SCALAR]
        if marked:
            precision.mark(self, st, marked)

    cdef _need(self, VState st, Py_ssize_t r):
        """_needs of one register."""
        if self.precision and \
                (<Reg>(<Frame>st.frames[-1]).regs[r]).type == SCALAR:
            precision.mark(self, st, [r])

    # --- ALU ------------------------------------------------------------------------------
    cdef _alu(self, VState st, Py_ssize_t pc, insn, op, list pending):
        cdef Fields *sf = &self.fields[pc]
        cdef list regs = (<Frame>st.frames[-1]).regs
        cdef bint is64
        cdef int bits
        cdef long code_op
        cdef Reg dst, src, zero
        cdef Tnum var
        f = op.form
        is64 = (<const unsigned char *>self.slot_kind)[pc] & IS_64
        bits = 64 if is64 else 32
        code_op = sf.code & 0xF0
        if f is F_END:
            dst = self._read(st, pc, sf.dst)
            if dst.type != SCALAR:
                dst.mark_unknown()
                return
            # scalar_byte_swap: a swap (to big-endian on this little-endian target, or
            # BPF_ALU64's bswap) swaps the known bits and derives the bounds again from
            # them; a 16- or 32-bit one then keeps only those bits, zero-extended
            swap = (<const unsigned char *>self.slot_kind)[pc] & SWAP
            if swap or sf.size < 8:
                dst.id = 0
            if swap:
                var = tn_bswap(tn(dst.var_value, dst.var_mask), sf.size)
                dst.mark_unbounded()
                dst.var_value, dst.var_mask = var.value, var.mask
                bounds.sync(dst)
            bounds.truncate(dst, sf.size)
            return
        if f is F_NEG:
            dst = self._read(st, pc, sf.dst)
            if dst.type != SCALAR:
                dst.mark_unknown()
                if not is64:
                    bounds.zext32(dst)
                return
            zero = scalar(0)
            bounds.alu(zero, dst, BPF_SUB, bits)
            regs[sf.dst] = zero
            return
        if code_op == BPF_MOV:
            self._mov(st, pc, op)
            return
        # the operand
        if f.src:
            src = self._read(st, pc, sf.src)
        else:
            src = scalar(sf.imm if is64 else sf.imm & 0xFFFFFFFF)
            if code_op in (BPF_DIV, BPF_MOD) and sf.imm == 0:
                self.refuse(pc, "div by zero")
            if code_op in (BPF_LSH, BPF_RSH, BPF_ARSH) and \
                    not 0 <= sf.imm < bits:
                self.refuse(pc, f"invalid shift {sf.imm}")
        dst = self._read(st, pc, sf.dst)
        if dst.type == PTR_TO_ARENA or src.type == PTR_TO_ARENA:
            # adjust_reg_min_max_vals: any arithmetic on an arena pointer keeps one
            # (with a scalar destination, the arena pointer's copy)
            if dst.type != PTR_TO_ARENA:
                regs[sf.dst] = src.copy()
            if is64:
                # needs_zext: do_misc_fixups makes the instruction its ALU32 form (the
                # decoder does: pointer_kinds)
                self.ptr_kinds[pc] = PTR_TO_ARENA
            return
        if dst.type != SCALAR or src.type != SCALAR:
            if self.precision and f.src:
                # adjust_reg_min_max_vals: the scalar added to or taken from a pointer
                self._need(st, sf.src if src.type == SCALAR else sf.dst)
            self._ptr_alu(st, pc, insn, op, dst, src, code_op)
            return
        if self.unpriv and f.src and code_op in (BPF_ADD, BPF_SUB):
            self.sanitize_val_alu(pc, insn)
        if code_op in (BPF_AND, BPF_OR) and src.var_mask == 0:
            self._fork_scalars(st, pc, sf.dst, dst, pending)
        link, umax = dst.id, dst.umax
        bounds.alu(dst, src, code_op, bits)
        # r += r is no copy plus a constant: its id goes (the kernel's insn->src_reg ==
        # insn->dst_reg test)
        if link and not self.unpriv and code_op in (BPF_ADD, BPF_SUB) and \
                not (f.src and sf.src == sf.dst) and \
                (src.var_mask == 0 if is64 else src.var_mask & 0xFFFFFFFF == 0):
            # adjust_reg_min_max_vals: a copy plus or minus a constant stays linked to
            # its source, with the constant in off (once only): in 64 bits one that
            # fits an s32, in 32 bits any, of a copy below 2**32
            if is64:
                val = <long long>src.var_value
                linked = S32_MIN <= val <= S32_MAX
            else:
                val = src.var_value & M32
                val, linked = val - (1 << 32) if val >> 31 else val, umax <= M32
            linked = linked and not link & BPF_ADD_CONST and \
                not (code_op == BPF_SUB and val == S32_MIN)
            delta = -val if code_op == BPF_SUB else val
            flag = BPF_ADD_CONST64 if is64 else BPF_ADD_CONST32
            dst.id, dst.off = (link | flag, delta) if linked else (0, 0)

    cdef _fork_scalars(self, VState st, Py_ssize_t pc, Py_ssize_t d, Reg dst, list pending):
        """maybe_fork_scalars: a destination in [-1, 0] (64-bit signed range, else
        32-bit: LLVM's ``s>>= 31`` then ``&``/``|`` a constant) splits the path: this
        one goes on with -1, the one queued runs the instruction again with 0."""
        if dst.smin == -1 and dst.smax == 0:
            alu32 = False
        elif dst.s32min == -1 and dst.s32max == 0:
            alu32 = True
        else:
            return
        other = self.push(st, pc, pc, pending)
        if self.precision:
            other.hist.pop()    # the instruction runs again there, recorded then
        zero = (<Frame>other.frames[-1]).regs[d]
        cdef unsigned long long low
        for r, v in ((zero, 0), (dst, -1)):
            if alu32:
                # __mark_reg32_known: the low half and its bounds only
                # (tnum_const_subreg: the low half's value v, its mask cleared)
                low = (r.var_value & ~<unsigned long long>0xFFFFFFFF) | \
                    <unsigned long long>(v & M32)
                r.var_mask = r.var_mask & ~<unsigned long long>0xFFFFFFFF & ~low
                r.var_value = low
                r.s32min = r.s32max = v
                r.u32min = r.u32max = v & M32
            else:
                r.mark_known(v)
                r.id = 0

    def _id_before_mov(self, Reg src) -> None:
        """assign_scalar_id_before_mov: a scalar copied (or spilled) shares an id with
        its copy; one linked to another with a constant added loses that link first
        (one constant per link)."""
        if src.type != SCALAR:
            return
        if src.id & BPF_ADD_CONST:
            src.id, src.off = 0, 0
        if not src.id and src.var_mask != 0:
            src.id = self.new_id()

    cdef _mov(self, VState st, Py_ssize_t pc, op):
        cdef Fields *sf = &self.fields[pc]
        cdef list regs = (<Frame>st.frames[-1]).regs
        cdef bint is64
        cdef Reg src, new
        is64 = (<const unsigned char *>self.slot_kind)[pc] & IS_64
        if op.form is F_ALU_K:
            regs[sf.dst] = scalar(sf.imm if is64 else sf.imm & 0xFFFFFFFF)
            return
        if op.form is F_ADDR_SPACE_CAST:
            self.addr_space_cast(pc, sf.imm)        # arena.py: its refusals first
            self._read(st, pc, sf.src)
            regs[sf.dst] = self.cast_result(sf.imm)
            return
        src = self._read(st, pc, sf.src)
        if op.form is F_ALU_SX:
            if src.type != SCALAR:
                # a root's pointer: an unknown scalar, nothing sign-extended
                new = scalar()
                if not is64:
                    bounds.zext32(new)
                regs[sf.dst] = new
                return
            # check_alu_op: a value the extension cannot change stays linked to its source
            linked = src.umax < 1 << (op.size * 8 - 1)
            if linked:
                self._id_before_mov(src)
            new = src.copy()
            if is64:
                bounds.sign_extend(new, sf.size)
            else:
                bounds.sign_extend32(new, sf.size)
            new.id = src.id if linked else 0
            regs[sf.dst] = new
            return
        if is64:
            if src.type == SCALAR and (src.id & BPF_ADD_CONST or
                                       not src.id and src.var_mask != 0):
                self._id_before_mov(src)
            regs[sf.dst] = src.copy()
            return
        if self.unpriv and src.is_ptr:
            self.refuse(pc, f"R{sf.src} partial copy of pointer")
        # check_alu_op: a value whose upper half is known zero (get_reg_width <= 32)
        # is unchanged by the copy, so it stays linked to its source
        linked = src.type == SCALAR and src.umax < 1 << 32
        if linked and (src.id & BPF_ADD_CONST or not src.id and src.var_mask != 0):
            self._id_before_mov(src)
        new = src.copy()
        if src.type != SCALAR:
            new.mark_unknown()
        bounds.zext32(new)
        if linked:
            new.id = src.id
        regs[sf.dst] = new

    cdef _ptr_alu(self, VState st, Py_ssize_t pc, insn, op, Reg dst, Reg src, long code_op):
        """adjust_reg_min_max_vals / adjust_ptr_min_max_vals for a privileged loader."""
        cdef Fields *sf = &self.fields[pc]
        cdef list regs = (<Frame>st.frames[-1]).regs
        cdef Py_ssize_t d = sf.dst
        cdef Reg ptr, off_reg, new, var_holder
        opstr = _ALU_STRING[code_op >> 4]
        if dst.type != SCALAR and src.type != SCALAR:
            if code_op == BPF_SUB and not self.unpriv:
                # mark_reg_unknown, in 32 bits too: no zero extension
                regs[d].mark_unknown()
                return
            self.refuse(pc, f"R{d} pointer {opstr} pointer prohibited")
        ptr, off_reg = (dst, src) if dst.type != SCALAR else (src, dst)
        if not (<const unsigned char *>self.slot_kind)[pc] & IS_64:
            if code_op == BPF_SUB:
                # adjust_ptr_min_max_vals: a meaningless scalar, all 64 bits unknown
                # (__mark_reg_unknown, no zero extension)
                regs[d].mark_unknown()
                return
            self.refuse(pc, f"R{d} 32-bit pointer arithmetic prohibited")
        if ptr.type & MAYBE_NULL:
            self.refuse(pc, f"R{d} pointer arithmetic on {type_str(ptr.type)} prohibited, "
                            f"null-check it first")
        base = ptr.type & 0xFF
        known = off_reg.var_mask == 0
        if base == CONST_PTR_TO_MAP and known and off_reg.var_value == 0 and \
                code_op == BPF_ADD:
            pass
        elif base in (CONST_PTR_TO_MAP, PTR_TO_PACKET_END) or base in sockets.SOCK_TYPES:
            self.refuse(pc, f"R{d} pointer arithmetic on {type_str(ptr.type)} prohibited")
        self._sane_offset(pc, off_reg, ptr.type)
        self._sane_offset(pc, ptr, ptr.type)
        sanitize = self.unpriv and op.form is F_ALU_X and code_op in (BPF_ADD, BPF_SUB)
        if sanitize:
            masked = self.sanitize_ptr_alu(pc, insn, ptr, off_reg, ptr is dst)
        if code_op == BPF_SUB and dst.type == SCALAR:
            self.refuse(pc, f"R{d} tried to subtract pointer from scalar")
        if code_op == BPF_SUB and base == PTR_TO_STACK:
            self.refuse(pc, f"R{d} subtraction from stack pointer prohibited")
        if code_op in (BPF_AND, BPF_OR, BPF_XOR):
            self.refuse(pc, f"R{d} bitwise operator {opstr} on pointer prohibited")
        if code_op not in (BPF_ADD, BPF_SUB):
            self.refuse(pc, f"R{d} pointer arithmetic with {opstr} operator prohibited")
        if self.unpriv and base == PTR_TO_STACK and not known:
            # check_stack_access_for_ptr_arithmetic (no bypass_spec_v1)
            self.refuse(pc, f"R{d} variable stack access prohibited for !root, "
                            f"var_off={tnum.text(off_reg.var)} off={ptr.off}")
        new = ptr.copy()
        smin = off_reg.smin
        if code_op == BPF_ADD:
            if known and -(1 << 31) <= ptr.off + smin < (1 << 31):
                new.off = ptr.off + smin
                if base in PKT_TYPES and new.range < 0:
                    # adjust_ptr_min_max_vals (6.18.44): arithmetic ends what a
                    # comparison with pkt_end found (AT_PKT_END, BEYOND_PKT_END)
                    new.range = 0
            else:
                var_holder = ptr.copy()
                var_holder.type = SCALAR
                bounds.alu(var_holder, off_reg, BPF_ADD, 64)
                _take_var(new, var_holder)
                if base in PKT_TYPES:
                    new.id = self.new_id()
                    new.range = 0
        else:
            if known and -(1 << 31) <= ptr.off - smin < (1 << 31):
                new.off = ptr.off - smin
            else:
                var_holder = ptr.copy()
                var_holder.type = SCALAR
                bounds.alu(var_holder, off_reg, BPF_SUB, 64)
                _take_var(new, var_holder)
                if base in PKT_TYPES:
                    new.id = self.new_id()
                    if smin < 0:
                        new.range = 0
        self._sane_offset(pc, new, ptr.type)
        if self.unpriv:
            self.sanitize_check_bounds(pc, d, new)
        if sanitize:
            self.sanitize_ptr_alu_commit(pc, insn, new, masked)
        regs[d] = new

    cdef _sane_offset(self, Py_ssize_t pc, Reg reg, ptype):
        """check_reg_sane_offset (the type's name made only for a refusal)."""
        cdef bint known = reg.var_mask == 0, is_scalar = <long>reg.type == _SCALAR
        cdef long long val = reg.smin
        if is_scalar and known and not -_MAX_VAR_OFF < val < _MAX_VAR_OFF:
            self.refuse(pc, f"math between {type_str(ptype)} pointer and {val} is not allowed")
        if not -BPF_MAX_VAR_OFF < reg.off < BPF_MAX_VAR_OFF:
            self.refuse(pc, f"{type_str(ptype)} pointer offset {reg.off} is not allowed")
        if val == -(1 << 63):
            self.refuse(pc, f"math between {type_str(ptype)} pointer and register with "
                            f"unbounded min value is not allowed")
        if not -_MAX_VAR_OFF < val < _MAX_VAR_OFF:
            # the scalar operand's bounds are "value ... makes"; a pointer's variable part
            # (the result of the arithmetic) is reported as its offset, as 6.18.44-fc-v1045
            # prints it (docs/kernel-notes.md)
            if is_scalar:
                self.refuse(pc, f"value {reg.smin} makes {type_str(ptype)} pointer be out "
                                f"of bounds")
            self.refuse(pc, f"{type_str(ptype)} pointer offset {reg.smin} is not allowed")

    # --- jumps ------------------------------------------------------------------------------
    cdef object _cond_jmp(self, VState st, Py_ssize_t pc, op, list pending):
        cdef Fields *sf = &self.fields[pc]
        cdef list regs = (<Frame>st.frames[-1]).regs
        cdef long code_op = sf.code & 0xF0
        cdef bint is32 = not (<const unsigned char *>self.slot_kind)[pc] & IS_64
        cdef bint x = op.form is F_JCC_X
        cdef Py_ssize_t target, d = sf.dst, s = sf.src
        cdef int taken
        cdef Reg dst, src
        cdef VState other
        cdef long dt, srt
        dst = self._read(st, pc, d)
        if x:
            src = self._read(st, pc, s)
            if self.unpriv and src.is_ptr and not (dst.type & 0xFF in _PKT_ANY and
                                                   src.type & 0xFF in _PKT_ANY):
                self.refuse(pc, f"R{s} pointer comparison prohibited")
        else:
            src = scalar(sf.imm if not is32 else sf.imm & 0xFFFFFFFF)
        target = pc + 1 + sf.off
        dt, srt = <long>dst.type, <long>src.type
        if dt == _PTR_TO_STACK or x and srt == _PTR_TO_STACK:
            self._hist_entry(st)    # INSN_F_DST_REG_STACK / INSN_F_SRC_REG_STACK
        taken = -1
        if dt == _SCALAR and srt == _SCALAR:
            taken = bounds.branch_taken(dst, src, code_op, is32)
        elif not is32 and _pkt_any(dt) and _pkt_any(srt):
            taken = _pkt_end_taken(dst, src, code_op)
        elif not is32 and (code_op == BPF_JEQ or code_op == BPF_JNE) and src.is_null() and \
                dst.type != SCALAR and not dst.type & MAYBE_NULL and \
                ((dst.type & 0xFF) in (PTR_TO_MAP_VALUE, PTR_TO_MAP_KEY, PTR_TO_MEM) or
                 dst.type & 0xFF in sockets.SOCK_TYPES or
                 (dst.type == PTR_TO_BTF_ID and dst.ref) or
                 (is_alloc_obj(dst.type) and (dst.ref or not dst.type & MEM_RCU))):
            # reg_not_null: a referenced BTF pointer is trusted, never NULL, and so is an
            # allocated object's, owning or non-owning (is_trusted_reg: MEM_ALLOC and
            # NON_OWN_REF are trusted modifiers, MEM_RCU is not)
            taken = 0 if code_op == BPF_JEQ else 1
        if self.precision:
            if taken >= 0 or x and (dt == _SCALAR) != (srt == _SCALAR):
                # check_cond_jmp_op: a branch the bounds decide (and here too a scalar
                # compared with a pointer, whose NULL-ness it decides)
                # one mark_chain_precision for dst, then one for src
                self._need(st, d)
                if x:
                    self._need(st, s)
            # collect_linked_regs comes after a decided branch has returned: only an
            # undecided one records its linked scalars for mark_precise
            linked = precision.linked_at(st, (dst, src) if x else (dst,),
                                         self._link_live(st, pc)) if taken < 0 else None
            self.note = (linked, None) if linked is not None else None
        if taken == 1:
            return target
        if taken == 0:
            return pc + 1
        if dt == _SCALAR and srt == _SCALAR:
            return self._scalar_branch(st, pc, d, s, x, code_op, is32, dst, src, target,
                                       pending)
        if self.unpriv and dst.is_ptr and \
                not ((code_op == BPF_JEQ or code_op == BPF_JNE) and src.is_null() and
                     dst.type & MAYBE_NULL) and \
                not (dst.type & 0xFF in _PKT_ANY and src.type & 0xFF in _PKT_ANY):
            self.refuse(pc, f"R{d} pointer comparison prohibited")
        if dst.id or src.id:
            self._hist_linked(st, pc, dst, src, x)
        other = self.push(st, target, pc, pending)
        oregs = (<Frame>other.frames[-1]).regs
        if not is32 and (code_op == BPF_JEQ or code_op == BPF_JNE):
            null_reg = None
            if src.is_null() and dst.type & MAYBE_NULL:
                null_reg = d
            elif x and dst.is_null() and src.type & MAYBE_NULL:
                null_reg = s
            if null_reg is not None:
                rid = (<Reg>regs[null_reg]).id
                eq_state, ne_state = (other, st) if code_op == BPF_JEQ else (st, other)
                self._mark_null(eq_state, rid, True)
                self._mark_null(ne_state, rid, False)
                return pc + 1
        if not is32 and x:
            _pkt_compare(st, other, dst, src, code_op, oregs[d], oregs[s])
        return pc + 1

    cdef object _scalar_branch(self, VState st, Py_ssize_t pc, Py_ssize_t d, Py_ssize_t s,
                               bint is_x, long code_op, bint is32, Reg dst, Reg src,
                               Py_ssize_t target, list pending):
        """Both outcomes possible: each side learns its condition (reg_set_min_max);
        a side whose condition contradicts the bounds is dead."""
        cdef bint same = is_x and d == s
        cdef Reg t_dst = dst.copy(), t_src = src.copy(), f_dst = dst.copy(), f_src = src.copy()
        cdef bint ok_t = same or bounds.refine(t_dst, t_src, code_op, is32)
        cdef bint ok_f = same or bounds.refine(f_dst, f_src, bounds.reverse(code_op), is32)
        if not ok_t and not ok_f:
            return pc + 1
        if self.precision and not (ok_t and ok_f):
            # a side the bounds rule out: decided by the values, as a taken branch is
            self._need(st, d)
            if is_x:
                self._need(st, s)
        cdef list live = self._link_live(st, pc)
        if not ok_t:
            if not same:
                _apply(st, d, s, is_x, f_dst, f_src, live)
            return pc + 1
        if not ok_f:
            if not same:
                _apply(st, d, s, is_x, t_dst, t_src, live)
            return target
        if dst.id or src.id:
            self._hist_linked(st, pc, dst, src, is_x)
        other = self.push(st, target, pc, pending)
        if not same:
            _apply(other, d, s, is_x, t_dst, t_src, live)
            _apply(st, d, s, is_x, f_dst, f_src, live)
        return pc + 1

    cdef _hist_linked(self, VState st, Py_ssize_t pc, Reg dst, Reg src, bint x):
        """check_cond_jmp_op: a branch on scalars linked to others is a history
        entry (collect_linked_regs)."""
        linked = self.note is not None if self.precision else \
            precision.linked_at(st, (dst, src) if x else (dst,),
                                self._link_live(st, pc)) is not None
        if linked:
            self._hist_entry(st)

    cdef list _link_live(self, VState st, Py_ssize_t pc):
        """Per frame, the registers collect_linked_regs looks at: those live before
        the frame's instruction (``live_regs_before``; a caller's: its call)."""
        cdef list frames = st.frames
        cdef Py_ssize_t i, n = len(frames)
        live = self.live
        return [live[(<Frame>frames[i + 1]).callsite] if i + 1 < n else live[pc]
                for i in range(n)]


# _slot_facts' bits besides the slot's flags and kind: it names a point at its first
# (X_A) and second (X_B) relative target, calls a callback (X_CALLBACK), is an lddw
# (X_LDDW), a kfunc call (X_KFUNC), a bpf_throw call (X_THROW)
cdef enum:
    X_A = 1
    X_B = 2
    X_CALLBACK = 4
    X_LDDW = 8
    X_KFUNC = 16
    X_THROW = 32


cdef dict _FACTS = {}
cdef Py_ssize_t _FACTS_MAX = 65536


cdef tuple _slot_facts(op, insn):
    """build_tables' answers for one slot, its points relative to it: (insn, its six
    Fields, its slot_flags bits, its slot_kind, its mov_k, the two targets, the X_*
    bits).  Made once per Insn object (isa.unpack_program gives the same one for the
    same bytes; the entry holds it, so its id names no other object while there)."""
    hit = _FACTS.get(id(insn))
    if hit is not None and (<tuple>hit)[0] is insn:
        return <tuple>hit
    cdef int code = op.code, cls = code & 0x07, own = 0, k = 0, x = 0
    cdef long long a = 0, b = 0
    f = op.form
    mov = None
    if cls == BPF_JMP or cls == BPF_JMP32:
        own |= IS_JMP
    if cls == BPF_ALU64 or cls == BPF_JMP:
        k |= IS_64
    if (insn.dst == BPF_REG_10 or insn.src == BPF_REG_10) and \
            structure.writes_r10(op, insn):
        k |= WRITES_R10
    if f is F_ALU_K or f is F_ALU_X or f is F_ALU_SX or f is F_ALU_XOFF_K or \
            f is F_ALU_XOFF_X or f is F_NEG or f is F_END or f is F_ADDR_SPACE_CAST:
        k |= IS_ALU
        if f is F_ALU_K and code & 0xF0 == BPF_MOV and not k & WRITES_R10:
            # a mov of an immediate: (dst, its constant), which explore makes
            mov = (insn.dst, insn.imm if k & IS_64 else insn.imm & 0xFFFFFFFF)
        elif f is F_END and (cls == BPF_ALU64 or not op.is_to_le):
            k |= SWAP
    elif f is F_LDX and op.is_sign_extending_load:
        k |= SIGN_LOAD
    if f is F_JCC_K or f is F_JCC_X or f is F_MAY_GOTO:
        own |= PRUNE
        x, a = X_A, 1 + insn.off
        if f is F_MAY_GOTO:
            own |= MAY_GOTO | FORCED
    elif f is F_JA:
        x, a = X_A, 1 + insn.off
    elif f is F_JA32:
        x, a = X_A, 1 + insn.imm
    elif f is F_CALL:
        x, a = X_A, 1
        if op.disc_value == isa.BPF_PSEUDO_KFUNC_CALL:
            x |= X_KFUNC
            if is_throw(op, insn):
                x |= X_THROW
        if is_iter_next(insn):
            own |= ITER_NEXT | FORCED | PRUNE
        if not op.disc_value and insn.imm in CALLBACK_HELPERS or calls_less(insn):
            x |= X_CALLBACK
            own |= CALLS_CALLBACK | FORCED | PRUNE | JMP_POINT
    elif f is F_CALL_LOCAL:
        own |= PRUNE
        x, a, b = X_A | X_B, 1, 1 + insn.imm
    elif f is F_LDDW:
        x = X_LDDW
        if op.disc_value == BPF_PSEUDO_FUNC:
            own |= PRUNE
            x, a, b = X_LDDW | X_A | X_B, 2, 1 + insn.imm
    if len(_FACTS) >= _FACTS_MAX:
        _FACTS.clear()
    hit = _FACTS[id(insn)] = (insn, code, insn.dst, insn.src, insn.off, insn.imm, op.size,
                              own, k, mov, a, b, x)
    return <tuple>hit


cdef inline void _point(unsigned char *flags, Py_ssize_t n, Py_ssize_t pc,
                        unsigned char bits):
    """Flags of a point another slot names (a target outside the slots has none)."""
    if 0 <= pc < n + 2:
        flags[pc] |= bits


cdef _apply(VState state, Py_ssize_t d, Py_ssize_t s, bint is_x, Reg dst, Reg src,
            list live):
    """A branch's side: its registers as that side's condition refined them, and the
    scalars linked to them."""
    cdef list regs = (<Frame>state.frames[-1]).regs
    regs[d] = dst
    _sync_linked(state, dst, live)
    if is_x:
        regs[s] = src
        _sync_linked(state, src, live)


cdef _sync_linked(VState st, Reg known, list live):
    """sync_linked_regs: every scalar sharing ``known``'s id takes its bounds,
    shifted by the difference of their constants (BPF_ADD_CONST): spilled ones, and
    the registers ``live`` holds (collect_linked_regs skips dead ones)."""
    cdef Reg r
    cdef Py_ssize_t i
    if known.type != SCALAR or not known.id:
        return
    base = known.id & ~BPF_ADD_CONST
    for f, mask in zip(st.frames, live):
        regs = (<Frame>f).regs
        for i, r in enumerate(regs):
            if r is not known and r.type == SCALAR and mask >> i & 1 and \
                    r.id & ~BPF_ADD_CONST == base:
                regs[i] = known.copy() if r.id == known.id == base else \
                    _linked_copy(known, r)
        for sl in (<Frame>f).stack.values():
            if sl.spill is not None and sl.spill is not known and \
                    sl.spill.type == SCALAR and sl.spill.id & ~BPF_ADD_CONST == base:
                sl.spill = known.copy() if sl.spill.id == known.id == base else \
                    _linked_copy(known, sl.spill)


cdef Reg _linked_copy(Reg known, Reg r):
    """sync_linked_regs: ``r`` (linked to ``known``) as ``known`` plus the difference
    of their constants, keeping its own id and constant."""
    cdef Reg new = known.copy()
    delta = (r.off if r.id & BPF_ADD_CONST else 0) - \
        (known.off if known.id & BPF_ADD_CONST else 0)
    if delta:
        if (r.id | known.id) & BPF_ADD_CONST32:
            # zero-extended where either side's link is a 32-bit one (6.18.44's
            # sync_linked_regs: (reg->id | known_reg->id) & BPF_ADD_CONST32), from the
            # 32-bit sum's bounds: a 32-bit add
            bounds.alu(new, scalar(delta & 0xFFFFFFFF), BPF_ADD, 32)
        else:
            bounds.alu(new, scalar(delta & M64), BPF_ADD, 64)
    new.id, new.off = r.id, r.off
    return new


cdef int _pkt_end_taken(Reg dst, Reg src, long op) except -2:
    """is_pkt_ptr_branch_taken: a pointer known at or past pkt_end decides its
    comparison with pkt_end (1 taken, 0 not, -1 unknown)."""
    cdef Reg pkt
    if src.type == PTR_TO_PACKET_END:
        pkt = dst
    elif dst.type == PTR_TO_PACKET_END:
        pkt, op = src, _FLIP.get(op, op)
    else:
        return -1
    if pkt.range >= 0:
        return -1
    if (op == BPF_JLE or op == BPF_JGT) and pkt.range == BEYOND_PKT_END:
        return op == BPF_JGT
    if op == BPF_JLT or op == BPF_JGE:
        return op == BPF_JGE
    return -1


cdef _take_var(Reg ptr, Reg v):
    """A pointer's variable part: the bounds of ``v``, the sum of the arithmetic."""
    ptr.var_value, ptr.var_mask = v.var_value, v.var_mask
    ptr.smin, ptr.smax, ptr.umin, ptr.umax = v.smin, v.smax, v.umin, v.umax
    ptr.s32min, ptr.s32max, ptr.u32min, ptr.u32max = v.s32min, v.s32max, v.u32min, v.u32max


cdef bint _pkt_vs_end(Reg a, Reg b):
    cdef long at = <long>a.type, bt = <long>b.type
    return (at == _PTR_TO_PACKET and bt == _PTR_TO_PACKET_END) or \
        (at == _PTR_TO_PACKET_META and bt == _PTR_TO_PACKET and
         b.off == 0 and b.var_mask == 0 and b.var_value == 0)


cdef _pkt_compare(VState this, VState other, Reg dst, Reg src, long op, Reg odst, Reg osrc):
    """try_match_pkt_pointers: a bounds check against data_end (or data for meta)."""
    cdef Reg p, p_other, beyond
    cdef VState where
    cdef bint right_open
    if _pkt_vs_end(dst, src):
        p, p_other = dst, odst
        if op == BPF_JGT:
            where, right_open = this, False
        elif op == BPF_JLT:
            where, right_open = other, True
        elif op == BPF_JGE:
            where, right_open = this, True
        elif op == BPF_JLE:
            where, right_open = other, False
        else:
            return
    elif _pkt_vs_end(src, dst):
        p, p_other = src, osrc
        if op == BPF_JGT:
            where, right_open = other, True
        elif op == BPF_JLT:
            where, right_open = this, False
        elif op == BPF_JGE:
            where, right_open = other, False
        elif op == BPF_JLE:
            where, right_open = this, True
        else:
            return
    else:
        return
    _good_pkt_pointers(where, p if where is this else p_other, right_open)
    # mark_pkt_end: on the other branch the pointer is past the end (pkt > pkt_end)
    # or at it (pkt >= pkt_end), so a later comparison with pkt_end is decided
    beyond = p_other if where is this else p
    if <long>beyond.type == _PTR_TO_PACKET:
        beyond.range = AT_PKT_END if right_open else BEYOND_PKT_END


cdef _good_pkt_pointers(VState st, Reg reg, bint right_open):
    """find_good_pkt_pointers: every copy of ``reg`` (its type and id), in a register
    or spilled in any frame, may read the packet up to its offset."""
    cdef Reg r
    cdef long t = <long>reg.type
    if reg.off < 0 or (reg.off == 0 and right_open):
        return
    if reg.umax > MAX_PACKET_OFF or reg.umax + reg.off > MAX_PACKET_OFF:
        return
    new_range = reg.off + (1 if right_open else 0)
    for f in st.frames:
        for r in (<Frame>f).regs:
            if <long>r.type == t and r.id == reg.id and new_range > r.range:
                r.range = new_range
        for sl in (<Frame>f).stack.values():
            r = sl.spill
            if r is not None and <long>r.type == t and r.id == reg.id and \
                    new_range > r.range:
                r.range = new_range
