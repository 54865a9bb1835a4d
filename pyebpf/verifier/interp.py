"""The abstract interpreter: every path of the program from its first instruction,
with the kernel's register model (``do_check`` in ``kernel/bpf/verifier.c``).

Paths are explored depth first, the jump target pushed and the fall-through followed
as the kernel does, so the first refused instruction is the kernel's.  Branches whose
outcome the bounds decide are not explored (``is_branch_taken``); at prune points a
state another finished path already covers ends the path (``is_state_visited``), and
a state equal to one of its own ancestors is an infinite loop.
"""
from __future__ import annotations

import functools
from errno import EACCES, EFAULT, EINVAL, ENOMEM

from .. import host, isa
from .alloc import ALLOC_PTR, PERCPU_ALLOC_PTR, AllocObjects
from .kptrs import PERCPU_RCU_PTR, RCU_KERNEL_PTR, UNTRUSTED_PTR, KptrRules
from . import bounds, helpers, precision, rules, scc, sockets, tnum
from .btfptr import BtfPointers
from .callbacks import CALLBACK_HELPERS, CallbackCalls
from .conntrack import ConntrackCalls
from .errnos import Refusal
from .exceptions import ExceptionRules
from .dynptrs import LOCAL, PACKET_TYPES, RINGBUF, DynptrCalls, dynptr_type, is_dynptr_slot
from .globalfuncs import GlobalCalls, exception_cb_pc
from .helpers46 import Helpers46
from .speculation import SpeculationRules
from .kfuncs import ITER_ACTIVE, KfuncCalls, iter_slot, widen_scalars
from .lists import ListRules, is_alloc_obj
from .rbtree import RbtreeRules
from .irqflags import IrqFlagRules, is_irq_slot
from .arena import ArenaRules
from .locks import INNER_MAP_METAS, MAPS_OF_MAPS, SPIN_LOCK_ID, LockRules, has_spin_lock
from .liveness import StackLiveness, slot_mask
from .timers import ASYNC_CALLBACKS, TimerRules
from .tasks import TaskCalls
from .walk import BPF_MAX_VAR_OFF, Walk
from .log import Log
from .strings import ConstStrings, direct_value, map_is_rdonly
from .state import (PTR_TO_FUNC, CONST_PTR_TO_DYNPTR, CONST_PTR_TO_MAP, DYNPTR_MEM,
                    DYNPTR_SKB, DYNPTR_SLICE, DYNPTR_TYPE_FLAGS, KERNEL_MEM, MAYBE_NULL,
                    MEM_PERCPU, MEM_RDONLY,
                    PKT_TYPES, PTR_LEGACY,
                    PTR_TO_ARENA, PTR_TO_BTF_ID, PTR_TO_CTX, PTR_TO_MAP_KEY, PTR_TO_MAP_VALUE,
                    PTR_TO_MEM, PTR_TO_PACKET,
                    PTR_TO_PACKET_END, PTR_TO_PACKET_META, PTR_TO_SOCK_COMMON, PTR_TO_SOCKET,
                    PTR_TO_STACK, PTR_TO_TCP_SOCK, PTR_TO_XDP_SOCK,
                    PTR_UNTRUSTED, SCALAR, STACK_DYNPTR, STACK_INVALID, STACK_IRQ_FLAG,
                    STACK_ITER, STACK_MISC, STACK_SPILL, STACK_ZERO,
                    Frame, Reg, Slot, VState, scalar, type_str)

COMPLEXITY_LIMIT = {"current": 1_000_000, "4.6": 65_536}
# branches waiting to be explored (BPF_COMPLEXITY_LIMIT_JMP_SEQ; 4.6's push_stack: 1024)
JMP_SEQ_LIMIT = {"current": 8192, "4.6": 1024}
HELPER_MAX_46 = 30     # BPF_FUNC_skb_set_tunnel_opt, the last helper 4.6 knew
BPF_MAX_VAR_SIZ = 1 << 29
MAX_BPF_STACK = 512
# do_refine_retval_range's helpers: a CPU number, and the string reads whose R0 is at
# most the buffer's size
_GET_SMP_PROCESSOR_ID = isa.HELPER_NAMES.index("get_smp_processor_id")
_SIZED_STRING_READS = frozenset(isa.HELPER_NAMES.index(n) for n in (
    "get_stack", "get_task_stack", "probe_read_str", "probe_read_kernel_str",
    "probe_read_user_str"))
# can_elide_value_nullness: a constant in-range key makes these maps' lookup non-NULL
ELIDE_NULLNESS_MAPS = (isa.MapType.BPF_MAP_TYPE_ARRAY, isa.MapType.BPF_MAP_TYPE_PERCPU_ARRAY)


# check_ptr_alignment's names of the pointers it reports misaligned (by exact type)
_ALIGN_DESC = {PTR_TO_MAP_KEY: "key ", PTR_TO_MAP_VALUE: "value ", PTR_TO_CTX: "context ",
               PTR_TO_STACK: "stack ", PTR_TO_SOCKET: "sock ",
               PTR_TO_SOCK_COMMON: "sock_common ", PTR_TO_TCP_SOCK: "tcp_sock ",
               PTR_TO_XDP_SOCK: "xdp_sock "}


@functools.lru_cache(maxsize=256)
def _main_buckets(nslots: int) -> tuple[int, ...]:
    """Per instruction, its bucket of checkpoints in the main function (_bucket_of, call
    site -1): the same for every program of ``nslots`` slots, so made once per size."""
    return tuple(((pc ^ -1) & 0xFFFFFFFF) % nslots for pc in range(nslots))


def _unknown_load(size: int, sign: bool) -> Reg:
    """What a load of ``size`` bytes (sign-extended with ``sign``) gives from memory
    nothing is known of: an unknown scalar narrowed to the width (coerce_reg_to_size,
    coerce_reg_to_size_sx), a copy of one made once per width (narrowing one costs
    eight times a copy)."""
    key = size << 1 | sign
    made = _UNKNOWN_LOADS.get(key)
    if made is None:
        made = _UNKNOWN_LOADS[key] = scalar()
        if size < 8:
            if sign:
                bounds.sign_extend(made, size)
            else:
                bounds.truncate(made, size)
    return made.copy()


_UNKNOWN_LOADS: dict[int, Reg] = {}


class Interpreter(Walk, KfuncCalls, DynptrCalls, CallbackCalls, BtfPointers,
                  ConstStrings, GlobalCalls, SpeculationRules, LockRules, ConntrackCalls,
                  AllocObjects, KptrRules, TimerRules, ListRules, RbtreeRules, TaskCalls,
                  Helpers46, ExceptionRules, IrqFlagRules, ArenaRules):
    def __init__(self, insns, ops, prog_type, profile, maps, log: Log, starts, live,
                 unpriv: bool = False, arch: str = "x86_64", functions=(), gpl: bool = True,
                 prog_btf=None, func_info: bool = False, *, succ):
        self.insns, self.ops, self.prog_type, self.profile = insns, ops, prog_type, profile
        self.func_info = func_info  # loaded with BTF function info (callbacks need it)
        self.prog_btf = prog_btf    # the program's own BTF: bpf_obj_new's types
        self.unpriv = unpriv        # no allow_ptr_leaks, allow_uninit_stack, bypass_spec_v1
        self.alu_aux: dict[int, tuple[int, int]] = {}   # SpeculationRules: pc's masking
        self.gpl = gpl              # the license lets it call GPL-only helpers
        self.nr_cpu_ids = host.nr_cpu_ids()   # the CPU numbers the machine may run on
        self.ctx_rules = rules.context_table(prog_type, profile, arch)
        self.allowed = rules.helpers_allowed(prog_type, profile, unpriv)
        self.maps = maps
        self.log = log
        self.starts = starts
        self.live = live
        self.depths = [0] * len(starts)
        self.async_cbs = set()      # the functions pushed as async callbacks (TimerRules)
        self.states: dict[int, list[VState]] = {}       # checkpoints by bucket, oldest first
        self.nslots = len(insns)                         # buckets (state_htab_size)
        self.main_buckets = _main_buckets(self.nslots)
        self.open: dict[int, dict] = {}                  # insn -> signature -> states
        self.open_count: dict[int, int] = {}
        self.ptr_kinds: dict[int, int] = {}              # insn -> pointer type it used
        self.mixed_kinds: set[int] = set()               # insns reached with two kinds
        self.obj_arg_types: dict[int, tuple] = {}        # kfunc call -> struct it took
        # per slot, what the main loop and the ALU ask of every visit (Op's properties
        # compute it from the opcode each time), and the prune and jump points
        self.build_tables()
        self.hist_at = 0    # the visit (``processed``) whose history entry is the last
        self.loop_inline: dict[int, tuple] = {}     # bpf_loop call -> (inlinable, callback)
        self.lv = StackLiveness(succ, starts, self.callback_calls)
        self.scc = scc.components(ops, succ)
        self.loops = any(self.scc)
        self.visits: dict[tuple, scc.Visit] = {}     # call chain -> its visit
        self.unclean: dict[int, list] = {}      # insn -> finished states not yet cleaned
        # scalars not marked precise match any scalar at a prune point (precision.pyx)
        self.precision = precision.applies(self)
        self.skip_table = precision.skip_table(insns, ops) if self.precision else None
        self.note = None     # what the instruction being run adds to the path's hist
        self.pc = 0          # the instruction being looked at (mark_precise's last_idx)
        self.id_gen = 0
        self.processed = 0
        self.total_states = self.peak_states = self.cur_states = 0
        self.free_list: dict[int, VState] = {}    # evicted, not yet freed (by id)
        self.max_states_per_insn = 0
        self.jmps = self.prev_jmps = self.prev_processed = 0
        self.limit = COMPLEXITY_LIMIT[profile]
        self.jmp_seq_limit = JMP_SEQ_LIMIT[profile]
        self.globals = {f.pc: f for f in functions if not f.static}
        self.statics = {f.pc: f for f in functions if f.static}
        self.unreliable: set[int] = set()    # statics whose prototype did not match
        self.globals_called: set = set()
        self.in_global = False
        self.exception_cb = exception_cb_pc(functions)
        self.in_exception_cb = False

    # --- bookkeeping ---------------------------------------------------------------
    def refuse(self, pc: int, *lines: str, errno: int | None = None):
        raise Refusal(list(lines), pc, errno)

    def func_of(self, pc: int) -> int:
        from bisect import bisect_right
        return bisect_right(self.starts, pc) - 1

    # --- the main loop ----------------------------------------------------------------
    def run(self) -> None:
        """do_check_main, then each global function it called (do_check_subprogs)."""
        st = VState()
        fr = Frame(-1, 0, 0)
        fr.regs[1].type = PTR_TO_CTX
        fr.regs[1].mark_known(0)
        fr.regs[10].type = PTR_TO_STACK
        fr.regs[10].mark_known(0)
        st.frames.append(fr)
        self.check_maps_used()
        self.explore(st, 0)
        self.log.verified()
        self.in_global = True
        if self.exception_cb:
            # do_check_subprogs: the exception callback is presumed called
            self.globals_called.add(self.exception_cb)
        for func, entry in self.global_functions_called():
            self.in_exception_cb = func.exception_cb
            if func.exception_cb:
                self.exception_cb_entry(func)
            self.explore(entry, func.pc)
            self.log.verified()

    def _touched(self, pc: int) -> set:
        """The registers an instruction reads or writes (mark_reg_scratched)."""
        insn, f = self.insns[pc], self.ops[pc].form
        if f is isa.F_CALL:
            return {0}
        if f is isa.F_LD_ABS or f is isa.F_LD_IND:
            # check_ld_abs reads R6 (and the index register) and writes R0
            return {0, 6, insn.src} if f is isa.F_LD_IND else {0, 6}
        if f is isa.F_CALL_LOCAL:
            # a static function: init_func_state scratches the callee's frame; a
            # global one: clear_caller_saved_regs, R0 its unknown result
            return set(range(11)) if pc + 1 + insn.imm not in self.globals else \
                set(range(6))
        if f is isa.F_EXIT:
            return set()
        regs = {insn.dst} if f.dst else set()
        if f.src:
            regs.add(insn.src)
        if f is isa.F_ATOMIC and insn.imm == isa.BPF_CMPXCHG:
            regs.add(0)                 # check_atomic_rmw's check_reg_arg of R0
        return regs

    def may_goto(self, st: VState, pc: int, insn, pending) -> int:
        """check_cond_jmp_op for may_goto: the fall-through (one more iteration, one
        level deeper, changed scalars widened) is queued; this path takes the jump."""
        queued = self.push(st, pc + 1, pc, pending, ENOMEM)
        queued.may_goto_depth += 1
        prev = self.loop_entry(st, pc)
        if prev is not None:
            widen_scalars(prev, queued)
        return pc + 1 + insn.off

    def loop_entry(self, st: VState, pc: int) -> VState | None:
        """find_prev_entry: the newest state at ``pc`` with the same call sites that is
        still being explored and was checkpointed before ``st``'s own checkpoint here
        (the previous iteration's, or a state of an enclosing loop's path)."""
        own = st.parent
        sites = [f.callsite for f in own.frames]
        for old in reversed(self.states.get(self._bucket(pc, own), ())):
            if old.insn == pc and old.branches and old.dfs_depth < own.dfs_depth and \
                    [f.callsite for f in old.frames] == sites:
                return old
        return None

    def _enter_scc(self, snap: VState) -> None:
        """maybe_enter_scc: the first checkpoint with a call chain opens its visit."""
        chain = scc.callchain(self.scc, snap)
        if chain is None:
            return
        visit = self.visits.get(chain)
        if visit is None:
            visit = self.visits[chain] = scc.Visit()
        if visit.entry is None:
            visit.entry = snap
            if self.log.level >= 2:
                self.log.add(f"SCC enter {_chain_text(chain)}")

    def _exit_scc(self, p: VState) -> None:
        """maybe_exit_scc: the visit's entry checkpoint is finished: the marks of the
        states that pruned its backedges reach them again, until nothing changes
        (propagate_backedges)."""
        chain = scc.callchain(self.scc, p)
        if chain is None:
            return
        visit = self.visits.get(chain)
        if visit is None or visit.entry is not p:
            return
        if self.log.level >= 2:
            self.log.add(f"SCC exit {_chain_text(chain)}")
        backedges, visit.entry, visit.backedges = visit.backedges, None, []
        self.cur_states -= len(backedges)     # free_backedges: num_backedges
        for old, st in backedges:
            precision.propagate(self, old, st)

    def _incomplete(self, old: VState) -> bool:
        """incomplete_read_marks: ``old``'s visit is open and has backedges."""
        chain = scc.callchain(self.scc, old)
        visit = self.visits.get(chain) if chain is not None else None
        return visit is not None and bool(visit.backedges)

    def _backedge(self, old: VState, cur: VState) -> None:
        """add_scc_backedge: ``cur``, pruned by ``old`` inside an open visit."""
        chain = scc.callchain(self.scc, old)
        visit = self.visits.get(chain) if chain is not None else None
        if visit is None or visit.entry is None:
            return
        if self.log.level >= 2:
            self.log.add(f"SCC backedge {_chain_text(chain)}")
        visit.backedges.append((old, cur.copy()))
        # update_peak_states counts a backedge's copy of the state (num_backedges)
        self.cur_states += 1
        self.peak_states = max(self.peak_states, self.cur_states)

    def _bucket_of(self, pc: int, callsite: int) -> int:
        """explored_state: the kernel keeps its states in a table of as many lists as
        the program has slots, by instruction and the current function's call site
        (-1 for the main program's); a state is compared with, counted against and
        evicted among only those of its list (the same instruction reached from
        another call site usually is not)."""
        return ((pc ^ callsite) & 0xFFFFFFFF) % self.nslots

    def _clean_live_states(self, cur: VState, pc: int) -> None:
        """clean_live_states: the finished states at ``pc`` with ``cur``'s call chain
        forget their dead stack slots, once; not while their loop's visit has
        backedges (incomplete_read_marks): what is read later is not known yet."""
        sites = None
        keep = []
        for old in self.unclean.pop(pc):
            if old.evicted:
                continue
            for fr in old.frames:
                if fr.stack:
                    break
            else:
                continue    # no slot to forget, now or later: a checkpoint gains none
            if sites is None:
                sites = [f.callsite for f in cur.frames]
            if [f.callsite for f in old.frames] != sites or \
                    self.loops and self.precision and self._incomplete(old):
                keep.append(old)
                continue
            self.lv.clean(old)
        if keep:
            self.unclean[pc] = keep

    def _iter_active(self, cur: VState) -> bool:
        it = iter_slot(cur, cur.cur.regs[1])
        return it is not None and it.spill.value == ITER_ACTIVE

    def _evict(self, old: VState) -> None:
        """Forget a state (the kernel moves it to its free list, where it counts towards
        peak_states until maybe_free_verifier_state frees it: at once unless a branch
        of it is still open or its loop's read marks are incomplete)."""
        self.states[self._bucket_of(old.insn, old.frames[-1].callsite)].remove(old)
        if old.branches or self.loops and self._incomplete(old):
            self.free_list[id(old)] = old
        else:
            self.cur_states -= 1
        if old.branches:
            self.open[old.insn][old.sig].remove(old)
            self.open_count[old.insn] -= 1
        old.evicted = True

    # --- one instruction -----------------------------------------------------------------
    def _note_slot(self, st: VState, base: int, off: int) -> None:
        """A load or store at a constant stack address: which slot, for the path's
        hist (insn_stack_access_flags)."""
        reg = st.cur.regs[base]
        if reg.type == PTR_TO_STACK and reg.is_const:
            v = reg.value - (1 << 64) if reg.value >> 63 else reg.value
            self.note = (None, (reg.frame, (-(reg.off + v + off) - 1) // 8))

    # --- registers ------------------------------------------------------------------------
    _LEAK_INTO = {PTR_TO_MAP_VALUE: "map", PTR_TO_CTX: "ctx", PTR_TO_PACKET: "packet",
                  PTR_TO_PACKET_META: "packet", PTR_TO_MEM: "mem"}

    def _leak_check(self, st: VState, pc: int, insn) -> None:
        """check_mem_access for an unprivileged loader: a pointer may be spilled to the
        stack, never stored where it can be read back as a number."""
        regs = st.cur.regs
        into = self._LEAK_INTO.get(regs[insn.dst].type)
        if into is not None and regs[insn.src].is_ptr:
            if into == "packet" and \
                    self.prog_type == isa.ProgType.BPF_PROG_TYPE_SOCKET_FILTER:
                return      # refused first as a write into the packet
            self.refuse(pc, f"R{insn.src} leaks addr into {into}")

    def write_scalar(self, st: VState, r: int) -> Reg:
        reg = st.cur.regs[r]
        reg.mark_unknown()
        return reg

    # --- memory -----------------------------------------------------------------------------
    def mem_access(self, st: VState, pc: int, regno: int, off: int, size: int, write: bool,
                   value_regno: int, sign: bool = False, imm: int | None = None) -> None:
        """check_mem_access: a load into ``value_regno`` or a store of it (-1: of
        ``imm``) through ``regno`` + ``off``."""
        regs = st.cur.regs
        reg = regs[regno]
        t = reg.type
        if self.ptr_kinds.setdefault(pc, t) != t:
            self._other_pointer_kind(pc, t)
        result: Reg | None = None
        if t == PTR_TO_STACK:
            result = self.stack_access(st, pc, regno, reg, off, size, write, value_regno, imm)
        elif t == PTR_TO_CTX:
            result = self.ctx_access(st, pc, regno, reg, off, size, write, sign,
                                     write and value_regno < 0 and imm is not None)
        elif t == PTR_TO_PACKET or t == PTR_TO_PACKET_META:     # PKT_TYPES, no flag
            if write and self.prog_type == isa.ProgType.BPF_PROG_TYPE_SOCKET_FILTER:
                self.refuse(pc, "cannot write into packet")
            self.packet_access(pc, regno, reg, off + reg.off, size)
        elif t == PTR_TO_MEM | PTR_UNTRUSTED:
            result = self.untrusted_mem_access(pc, regno, write)
        elif t == PTR_TO_MAP_VALUE or t == PTR_TO_MAP_KEY or t == PTR_TO_MEM:
            limit = reg.map.value_size if t == PTR_TO_MAP_VALUE else \
                reg.map.key_size if t == PTR_TO_MAP_KEY else reg.size
            if t == PTR_TO_MAP_VALUE:
                self.map_access_type(pc, reg, off + reg.off, size, write)
            self.region_access(pc, regno, reg, off + reg.off, size, limit)
            if t == PTR_TO_MAP_VALUE:
                self.map_fields_access(pc, reg, off + reg.off, size)
                result = self.map_kptr_access(st, pc, reg, off + reg.off, size, write,
                                              value_regno, sign, imm)
                if result is None and not write and value_regno >= 0:
                    result = self.rdonly_map_read(pc, reg, off + reg.off, size, sign)
        elif t & DYNPTR_SLICE and not t & MAYBE_NULL:
            self.slice_access(pc, regno, reg, off, size, write)
        elif t in (PTR_TO_BTF_ID, PTR_TO_BTF_ID | MEM_PERCPU, RCU_KERNEL_PTR, PERCPU_RCU_PTR,
                   PERCPU_ALLOC_PTR, PTR_TO_BTF_ID | PTR_LEGACY):
            result = self.btf_access(pc, regno, reg, off, size, write)
        elif t == PTR_TO_MEM | KERNEL_MEM | MEM_RDONLY:
            if write:
                self.refuse(pc, f"R{regno} cannot write into {type_str(t)}")
            self.region_access(pc, regno, reg, off + reg.off, size, reg.size)
        elif is_alloc_obj(t):
            result = self.alloc_access(pc, regno, reg, off, size)
        elif t == UNTRUSTED_PTR:
            result = self.untrusted_btf_access(pc, regno, reg, off, size, write)
        elif t == CONST_PTR_TO_MAP:
            result = self.map_ptr_access(pc, regno, reg, off, size, write)
        elif t == PTR_TO_ARENA:
            pass        # check_mem_access: unchecked, a load an unknown scalar
        elif t in sockets.SOCK_TYPES:
            result = sockets.load(self, pc, regno, reg, off, size, write)
        else:
            # a BTF pointer nothing references is the kernel's PTR_TRUSTED one
            # (reg_type_str's "trusted_")
            trusted = "trusted_" if t == PTR_TO_BTF_ID | MAYBE_NULL and not reg.ref else ""
            self.refuse(pc, f"R{regno} invalid mem access '{trusted}{type_str(t)}'")
        if not write and value_regno >= 0:
            if result is None:      # nothing known of the memory
                result = _unknown_load(size, sign)
            elif result.type == SCALAR and size < 8:
                if sign:
                    bounds.sign_extend(result, size)
                else:
                    bounds.truncate(result, size)
            regs[value_regno] = result

    def _other_pointer_kind(self, pc: int, t: int) -> None:
        """An instruction that went through another kind of pointer (``ptr_kinds``) on
        another path: one load or store instruction works through one kind of pointer
        when either kind is the context (the kernel rewrites context accesses per
        instruction: reg_type_mismatch)."""
        prev = self.ptr_kinds[pc]
        self.mixed_kinds.add(pc)
        if PTR_TO_CTX in (prev, t) or prev & 0xFF in sockets.SOCK_TYPES or \
                t & 0xFF in sockets.SOCK_TYPES:
            self.refuse(pc, "same insn cannot be used with different pointers")

    def packet_pcs(self) -> set[int]:
        """The loads and stores whose base was a packet pointer (PTR_TO_PACKET) on every
        path: check_packet_access proved each inside the packet, so a run needs no
        region check there (pyebpf.jit leaves it out).  A global function's proof holds
        in it as in its callers: its own packet pointers come from its context, and a
        call of one that changes the packet (changes_pkt_data) clears its callers'."""
        return {pc for pc, t in self.ptr_kinds.items()
                if t == PTR_TO_PACKET and pc not in self.mixed_kinds}

    def region_access(self, pc, regno, reg: Reg, off: int, size: int, mem_size: int,
                      zero_ok: bool = False) -> None:
        """check_mem_region_access: map values, keys and ring buffer memory."""
        kind = reg.type & 0xFF
        if reg.smin < 0 and (reg.smin == -(1 << 63) or reg.smin + off < 0 or
                             not -(1 << 31) <= off + reg.smin < (1 << 31)):
            self.refuse(pc, f"R{regno} min value is negative, either use unsigned index or "
                            f"do a if (index >=0) check.")
        lo = reg.smin + off
        if not (lo >= 0 and (size > 0 or zero_ok and size == 0) and lo + size <= mem_size):
            self.refuse(pc, self._mem_msg(kind, regno, reg, lo, size, mem_size),
                        f"R{regno} min value is outside of the allowed memory range")
        if reg.umax >= BPF_MAX_VAR_OFF:
            self.refuse(pc, f"R{regno} unbounded memory access, make sure to bounds check "
                            f"any such access")
        hi = reg.umax + off
        if not (hi + size <= mem_size):
            self.refuse(pc, self._mem_msg(kind, regno, reg, hi, size, mem_size),
                        f"R{regno} max value is outside of the allowed memory range")

    def map_access_type(self, pc, reg: Reg, off: int, size: int, write: bool) -> None:
        """check_map_access_type: a BPF_F_RDONLY_PROG map's values are not written, a
        BPF_F_WRONLY_PROG map's not read (bpf_map_flags_to_cap)."""
        flags = reg.map.flags
        if write and flags & isa.BPF_F_RDONLY_PROG:
            self.refuse(pc, f"write into map forbidden, value_size={reg.map.value_size} "
                            f"off={off} size={size}")
        if not write and flags & isa.BPF_F_WRONLY_PROG and not flags & isa.BPF_F_RDONLY_PROG:
            self.refuse(pc, f"read from map forbidden, value_size={reg.map.value_size} "
                            f"off={off} size={size}")

    def rdonly_map_read(self, pc, reg: Reg, off: int, size: int, sign: bool) -> Reg | None:
        """check_mem_access: a load at a constant offset from a read-only array (libbpf's
        frozen ``.rodata``) is the value stored there, a known scalar, so that branches
        on it are dead as in the kernel (bpf_map_direct_read); None for any other map or
        a variable offset.  Read-only is bpf_map_is_rdonly's: ``BPF_F_RDONLY_PROG`` and
        frozen (``Map.frozen``: the loader freezes read-only global data, as libbpf
        does), so a ``BPF_F_RDONLY_PROG`` map of ``.maps`` (cilium's
        ``cilium_encrypt_state``) loads unknown scalars.  An array of more than one
        element has no direct value address (array_map_direct_value_addr), and the
        kernel refuses the load when such a map is frozen; pyebpf leaves its loads
        unknown scalars."""
        m = reg.map
        if not (reg.is_const and map_is_rdonly(m) and
                m.type == isa.MapType.BPF_MAP_TYPE_ARRAY and m.max_entries == 1):
            return None
        at = off + reg.value
        value = direct_value(m)
        return scalar().mark_known(int.from_bytes(value[at:at + size], "little",
                                                  signed=sign))

    @staticmethod
    def _mem_msg(kind, regno, reg, off, size, mem_size) -> str:
        if kind == PTR_TO_MAP_KEY:
            return f"invalid access to map key, key_size={mem_size} off={off} size={size}"
        if kind == PTR_TO_MAP_VALUE:
            return f"invalid access to map value, value_size={mem_size} off={off} size={size}"
        if kind in PKT_TYPES or kind == PTR_TO_PACKET_END:
            return (f"invalid access to packet, off={off} size={size}, "
                    f"R{regno}(id={reg.id},off={off},r={mem_size})")
        return f"invalid access to memory, mem_size={mem_size} off={off} size={size}"

    def packet_access(self, pc, regno, reg: Reg, off: int, size: int,
                      zero_ok: bool = False) -> None:
        """check_packet_access (``off`` includes the pointer's fixed offset)."""
        if reg.smin < 0:
            self.refuse(pc, f"R{regno} min value is negative, either use unsigned index or "
                            f"do a if (index >=0) check.")
        if reg.range < 0:
            # a pointer known at or beyond pkt_end: EINVAL, without __check_mem_access's
            # line
            self.refuse(pc, f"R{regno} offset is outside of the packet", errno=EINVAL)
        if not (off >= 0 and (size > 0 or zero_ok and size == 0) and off + size <= reg.range):
            self.refuse(pc, self._mem_msg(PTR_TO_PACKET, regno, reg, off, size, reg.range),
                        f"R{regno} offset is outside of the packet")

    def ctx_access(self, st, pc, regno, reg: Reg, off, size, write, sign, is_st
                   ) -> Reg | None:
        self.ctx_off(pc, regno, reg)
        if is_st and self.profile == "4.6":
            # 4.6 passed these without converting them: they wrote into the raw sk_buff
            self.refuse(pc, f"BPF_ST stores into R{regno} ctx are refused: the 4.6 kernel "
                            f"accepted and miscompiled them")
        if self.profile == "4.6" and sign:
            self.refuse(pc, "sign-extending loads from the context do not exist in the 4.6 "
                            "kernel")
        field, reason = self.ctx_rules.check(off, size, write)
        if reason is None and sign and field is not None and \
                field.name in rules.POINTER_FIELDS:
            reason = f"{field.name} is a pointer; it cannot be sign-extended"
        if reason is not None:
            self.refuse(pc, f"invalid bpf_context access off={off} size={size}: {reason}")
        if write or field is None:      # pt_regs: every register is a scalar
            return None
        kinds = {"data": PTR_TO_PACKET, "data_end": PTR_TO_PACKET_END,
                 "data_meta": PTR_TO_PACKET_META, "sk": PTR_TO_SOCK_COMMON | MAYBE_NULL}
        kind = kinds.get(field.name)
        if kind is None:
            return scalar()
        r = Reg(kind)
        r.mark_known(0)
        if kind & MAYBE_NULL:
            r.id = self.new_id()
        return r

    def ctx_off(self, pc, regno, reg: Reg) -> None:
        """__check_ptr_off_reg for the context: no fixed or variable offset."""
        if reg.off < 0:
            self.refuse(pc, f"negative offset ctx ptr R{regno} off={reg.off} disallowed")
        if reg.off:
            self.refuse(pc, f"dereference of modified ctx ptr R{regno} off={reg.off} "
                            f"disallowed")
        if not reg.is_const or reg.value:
            self.refuse(pc, f"variable ctx access var_off={tnum.text(reg.var)} disallowed")

    # --- the stack ------------------------------------------------------------------------
    def stack_frame(self, st: VState, reg: Reg) -> Frame:
        return st.frames[reg.frame]

    def stack_bounds(self, pc, regno, reg: Reg, off: int, size: int, what: str):
        """check_stack_access_within_bounds; the byte range [lo, hi) accessed."""
        if reg.is_const:
            lo = off + reg.off + reg.smin
            hi = lo + size
        else:
            if reg.smax >= BPF_MAX_VAR_OFF or reg.smin <= -BPF_MAX_VAR_OFF:
                self.refuse(pc, f"invalid unbounded variable-offset{what} stack R{regno}")
            lo = reg.smin + off + reg.off
            hi = reg.smax + off + reg.off + size
        if lo < -MAX_BPF_STACK or lo >= 0 or hi > 0 or size < 0:
            # check_stack_slot_within_bounds: the first byte off the stack is EACCES;
            # else reaching above the frame pointer EINVAL, a negative size EFAULT
            code = EACCES if lo < -MAX_BPF_STACK or lo >= 0 else \
                EINVAL if hi > 0 else EFAULT
            if reg.is_const:
                self.refuse(pc, f"invalid{what} stack R{regno} off={off + reg.off} "
                                f"size={size}", errno=code)
            self.refuse(pc, f"invalid variable-offset{what} stack R{regno} "
                            f"var_off={tnum.text(reg.var)} off={off + reg.off} size={size}",
                        errno=code)
        return lo, hi

    def _note_depth(self, st: VState, reg: Reg, lo: int) -> None:
        """The function's stack depth, and the frame's allocated slots, reach ``lo``
        (check_stack_access_within_bounds' grow_stack_state, for reads and writes)."""
        frame = st.frames[reg.frame]
        self.depths[frame.subprog] = max(self.depths[frame.subprog], -lo)
        if -lo > 8 * frame.allocated:
            frame.allocated = (-lo + 7) // 8

    def stack_access(self, st, pc, regno, reg: Reg, off, size, write, value_regno, imm):
        # stack accesses must be aligned (check_ptr_alignment: strict for the stack)
        at = tnum.add(reg.var, tnum.const(reg.off + off))
        if not tnum.is_aligned(at, size):
            self.refuse(pc, f"misaligned stack access off {tnum.text(reg.var)}+{reg.off}+"
                            f"{off} size {size}")
        lo, hi = self.stack_bounds(pc, regno, reg, off, size,
                                   " write to" if write else " read from")
        self._note_depth(st, reg, lo)
        frame = self.stack_frame(st, reg)
        if self.unpriv and not write and reg.is_const:
            self._initialised(pc, regno, frame, lo, size)
        if self.log.level >= 2:
            # mark_stack_slot_scratched marks the slot's index, whichever frame the
            # pointer is into: the current frame's slot of that index is printed
            self.log.slots.update(range((-hi) // 8, (-lo - 1) // 8 + 1))
        if not reg.is_const:
            if write:
                self._write_var_off(st, pc, frame, lo, hi, value_regno, imm)
                return None
            self._range_initialized(pc, regno, reg, frame, lo, hi, size)
            # check_stack_read_var_off reads every slot the range reaches
            self.lv.read(st, reg.frame, pc, slot_mask(lo, hi))
            return scalar()
        if not write:
            self.lv.read(st, reg.frame, pc, 1 << (-lo - 1) // 8)
        elif size == 8 and lo % 8 == 0:
            # check_stack_write_fixed_off: only a whole slot counts as written
            self.lv.write(reg.frame, 1 << (-lo - 1) // 8)
        if write:
            if value_regno < 0 and imm is None:
                self._write_bytes(frame, lo, size, STACK_MISC)
                return None
            value = st.cur.regs[value_regno] if value_regno >= 0 else scalar(imm)
            self.stack_write(st, pc, frame, lo, size, value, value_regno)
            return None
        return self.stack_read(st, pc, frame, lo, size)

    def _write_var_off(self, st, pc: int, frame: Frame, lo: int, hi: int,
                       value_regno: int, imm) -> None:
        """check_stack_write_var_off: each byte the range reaches becomes misc, but a
        zero written (a register known to be 0, or a store of the immediate 0) leaves
        zero bytes zero and a spilled 0 spilled; the zero register is then precise
        (backtracking does not follow STACK_ZERO).  A slot reached holding a spilled
        register, an iterator or irq flags is scrubbed whole first, every byte not
        invalid misc (6.18.44's scrub_special_slot; an iterator's reference stays
        held, to leak at the exit), after a dynptr it reaches is destroyed, both its
        slots invalid (destroy_if_dynptr_stack_slot)."""
        for a in range(lo, hi):
            self.destroy_dynptr(st, pc, frame, a)
        if value_regno >= 0:
            v = st.cur.regs[value_regno]
            zero = v.type == SCALAR and v.is_const and v.value == 0
        else:
            zero = imm == 0
        used = False
        for a in range(lo, hi):
            s = self._slot(frame, a)
            k = s.kinds[a % 8]
            if zero and k == STACK_SPILL and s.spill is not None and \
                    s.spill.type == SCALAR and s.spill.is_const and s.spill.value == 0:
                used = True
                continue
            if s.kinds[0] in (STACK_SPILL, STACK_DYNPTR, STACK_ITER, STACK_IRQ_FLAG):
                s.kinds = [STACK_INVALID if b == STACK_INVALID else STACK_MISC
                           for b in s.kinds]
            s.spill = None
            if zero and s.kinds[a % 8] == STACK_ZERO:
                used = True
                s.kinds[a % 8] = STACK_ZERO
            else:
                s.kinds[a % 8] = STACK_MISC
        if used and value_regno >= 0:
            self._needs(st, value_regno)

    def _range_initialized(self, pc, regno, reg: Reg, frame: Frame, lo: int, hi: int,
                           size: int) -> None:
        """check_stack_range_initialized, for a read at a variable offset or by a
        helper: each byte misc, zero, uninitialised (root only) or in a spilled
        register's slot (a pointer: root only); so never a dynptr's, an iterator's or
        irq flag's."""
        for a in range(lo, hi):
            s = self._slot(frame, a, create=False)
            k = s.kinds[a % 8] if s is not None else STACK_INVALID
            if k in (STACK_MISC, STACK_ZERO) or (k == STACK_INVALID and not self.unpriv):
                continue
            if s is not None and s.kinds[0] == STACK_SPILL and s.spill is not None and \
                    (s.spill.type == SCALAR or not self.unpriv):
                continue
            where = f"off {lo}" if reg.is_const else f"var_off {tnum.text(reg.var)}"
            self.refuse(pc, f"invalid read from stack R{regno} {where}+{a - lo} "
                            f"size {size}")

    def _initialised(self, pc, regno, frame: Frame, lo: int, size: int) -> None:
        """An unprivileged read may not see uninitialised stack: below the deepest slot
        written so far (check_stack_slot_within_bounds) or bytes never written
        (check_stack_read_fixed_off)."""
        allocated = 8 * (max(frame.stack) + 1) if frame.stack else 0
        if lo < -allocated:
            self.refuse(pc, f"invalid read from stack R{regno} off={lo} size={size}")
        for i in range(size):
            s = self._slot(frame, lo + i, create=False)
            if s is None or s.kinds[(lo + i) % 8] == STACK_INVALID:
                self.refuse(pc, f"invalid read from stack off {lo}+{i} size {size}")

    @staticmethod
    def _slot(frame: Frame, addr: int, create: bool = True) -> Slot | None:
        spi = (-addr - 1) // 8
        s = frame.stack.get(spi)
        if s is None and create:
            s = frame.stack[spi] = Slot()
        return s

    def stack_write(self, st, pc, frame: Frame, addr: int, size: int, value: Reg,
                    value_regno: int) -> None:
        """check_stack_write_fixed_off (``value_regno`` < 0: an immediate)."""
        is_imm = value_regno < 0
        for a in range(addr, addr + size, 8):
            self.destroy_dynptr(st, pc, frame, a)
        s = self._slot(frame, addr)
        if self.unpriv and size != 8 and s.spill is not None and s.spill.is_ptr and \
                STACK_SPILL in s.kinds:
            self.refuse(pc, "attempt to corrupt spilled pointer on stack")
        aligned = addr % 8 == 0
        if value.type == SCALAR and aligned:
            # a spill a register's value fits is linked to the register; a narrowing
            # one is not
            fits = value.umax.bit_length() <= 8 * size
            if fits and not is_imm and not self.unpriv:
                self._id_before_mov(value)
            self._spill(s, value, size)
            self.hist_entry(st)
            if not fits:
                s.spill.id = 0
            return
        if value.type != SCALAR:
            if size != 8:
                self.refuse(pc, "invalid size of register spill")
            if frame is not st.cur and value.type == PTR_TO_STACK:
                self.refuse(pc, "cannot spill pointers to stack into stack frame of the "
                                "caller")
            self._spill(s, value, 8)
            self.hist_entry(st)
            return
        # not a register spill: no history entry, and mark_precise keeps looking for
        # the slot's spill further back (check_stack_write_fixed_off: insn_flags = 0)
        self.note = None
        if value.is_null() and not is_imm:
            # the zero bytes stay zero only if the register's 0 is precise (backtracking
            # does not follow STACK_ZERO)
            self._needs(st, value_regno)
        self._write_bytes(frame, addr, size, STACK_ZERO if value.is_null() else STACK_MISC)

    def _write_bytes(self, frame: Frame, addr: int, size: int, kind: int) -> None:
        """check_stack_write_fixed_off's write of data: a slot holding a spilled
        register (or a dynptr, an iterator) becomes misc in every byte not invalid
        (scrub_spilled_slot, its zeroes too), then the bytes written become ``kind``."""
        s = self._slot(frame, addr)
        if s.kinds[0] in (STACK_SPILL, STACK_DYNPTR, STACK_ITER, STACK_IRQ_FLAG):
            s.kinds = [STACK_INVALID if k == STACK_INVALID else STACK_MISC for k in s.kinds]
        s.spill = None
        for a in range(addr, addr + size):
            s.kinds[a % 8] = kind

    @staticmethod
    def _spill(s: Slot, value: Reg, size: int) -> None:
        # the spilled bytes are the lowest ``size`` of the slot; the rest become misc
        kinds = [STACK_SPILL if i < size else
                 (s.kinds[i] if s.kinds[i] in (STACK_ZERO, STACK_INVALID) else STACK_MISC)
                 for i in range(8)]
        s.kinds = kinds
        s.spill = value.copy()

    def stack_read(self, st, pc, frame: Frame, addr: int, size: int) -> Reg:
        """check_stack_read_fixed_off (uninitialised bytes read as unknown: root); a
        read that restores a spilled register is a history entry, and only such a read
        names its slot to mark_precise (insn_flags = 0 otherwise): a read of the other
        bytes of a slot holding a narrow spill does not make the spill precise."""
        s = self._slot(frame, addr, create=False)
        if s is None:
            return scalar()
        first = addr % 8
        if is_dynptr_slot(s) or is_irq_slot(s) or STACK_ITER in s.kinds:
            # neither misc, zero nor uninitialised: each of their bytes is refused
            self.refuse(pc, f"invalid read from stack off {addr}+0 size {size}")
        if s.spill is not None and s.kinds[0] == STACK_SPILL:
            spill_size = 1
            while spill_size < 8 and s.kinds[spill_size] == STACK_SPILL:
                spill_size += 1
            if size != 8 or spill_size != 8:
                if s.spill.type != SCALAR:
                    self.refuse(pc, "invalid size of register fill")
                if first == 0 and size <= spill_size:
                    self.hist_entry(st)
                    r = s.spill.copy()
                    if size < 8:
                        if r.umax.bit_length() > 8 * size:
                            r.id = 0
                        bounds.truncate(r, size)
                    return r
                kinds = s.kinds[first:first + size]
                if all(k == STACK_SPILL for k in kinds) and s.spill.is_null():
                    self.hist_entry(st)
                    return scalar(0)
                self.note = None
                if all(k == STACK_ZERO for k in kinds):
                    return scalar(0)
                return scalar()
            self.hist_entry(st)
            return s.spill.copy()
        self.note = None
        kinds = s.kinds[first:first + size]
        if kinds and all(k == STACK_ZERO for k in kinds):
            return scalar(0)
        return scalar()

    # --- atomics, lddw, LD_ABS ------------------------------------------------------------
    def atomic(self, st, pc, insn, op) -> None:
        regs = st.cur.regs
        self.read(st, pc, insn.src)
        self.read(st, pc, insn.dst)
        if op.disc_value == isa.BPF_CMPXCHG:
            self.read(st, pc, 0)
        dst = regs[insn.dst]
        # atomic_ptr_type_ok: the exact types (a socket that may be NULL is let through)
        if dst.type in (PTR_TO_CTX, PTR_TO_PACKET, PTR_TO_PACKET_META, PTR_TO_SOCKET,
                        PTR_TO_SOCK_COMMON, PTR_TO_TCP_SOCK, PTR_TO_XDP_SOCK):
            self.refuse(pc, f"BPF_ATOMIC stores into R{insn.dst} {type_str(dst.type)} is not "
                            f"allowed")
        # check_atomic_rmw's check_mem_access(..., strict_alignment_once): every atomic
        # access is aligned, whatever the pointer (check_ptr_alignment, strict)
        at = tnum.add(dst.var, tnum.const(dst.off + insn.off))
        if dst.type != PTR_TO_ARENA and not tnum.is_aligned(at, op.size):
            # check_ptr_alignment: an arena pointer's accesses are never checked
            self.refuse(pc, f"misaligned {_ALIGN_DESC.get(dst.type, '')}access off "
                            f"{tnum.text(dst.var)}+{dst.off}+{insn.off} size {op.size}")
        fetch_reg = 0 if op.disc_value == isa.BPF_CMPXCHG else insn.src
        fetch = op.disc_value & isa.BPF_FETCH
        self.mem_access(st, pc, insn.dst, insn.off, op.size, False, -1)
        if fetch:
            # check_atomic_rmw reads again into the fetched register, as a fill: the old
            # value, a spilled constant on the stack included, before the write
            self.mem_access(st, pc, insn.dst, insn.off, op.size, False, fetch_reg)
        self.mem_access(st, pc, insn.dst, insn.off, op.size, True, -1)

    def lddw(self, st, pc, insn, op) -> None:
        regs = st.cur.regs
        hi = self.insns[pc + 1].imm
        if op.disc_value == 0:
            regs[insn.dst] = scalar(((hi & 0xFFFFFFFF) << 32) | (insn.imm & 0xFFFFFFFF))
            return
        if op.disc_value == isa.BPF_PSEUDO_BTF_ID:
            regs[insn.dst] = self.ksym_reg(pc, insn.imm, hi)
            return
        if op.disc_value == isa.BPF_PSEUDO_FUNC:
            if not self.func_info:
                self.refuse(pc, "missing btf func_info")                # check_ld_imm
            if pc + 1 + insn.imm in self.globals:
                self.refuse(pc, "callback function not static")     # check_ld_imm
            r = Reg(PTR_TO_FUNC)
            r.mark_known(0)
            r.off = pc + 1 + insn.imm        # the callback's first instruction
            regs[insn.dst] = r
            return
        m = self.maps(insn.imm) if self.maps is not None else None
        if m is None:
            self.refuse(pc, f"fd {insn.imm} is not pointing to valid bpf_map")
        if op.disc_value == isa.BPF_PSEUDO_MAP_VALUE and m is self.arena:
            r = scalar()        # check_ld_imm: an arena address is a scalar until cast
        elif op.disc_value == isa.BPF_PSEUDO_MAP_FD:
            r = Reg(CONST_PTR_TO_MAP)
            r.mark_known(0)
            r.map = m
        else:
            r = Reg(PTR_TO_MAP_VALUE)
            r.mark_known(0)
            r.map = m
            r.off = hi & 0xFFFFFFFF
        regs[insn.dst] = r

    def ld_abs(self, st, pc, insn, op, pending) -> int | None:
        """check_ld_abs; the next pc.  In a subprogram a failed load returns 0 to the
        caller (bpf_gen_ld_abs's hidden exit): that path is taken here, the load's
        success queued."""
        regs = st.cur.regs
        self.lock_held_at(st, pc, "BPF_LD_[ABS|IND]")
        if st.refs:
            self.refuse(pc, "BPF_LD_[ABS|IND] would lead to reference leak")
        self.irq_leak(st, pc, "BPF_LD_[ABS|IND]")
        r6 = self.read(st, pc, 6)
        if op.form is isa.F_LD_IND:
            self.read(st, pc, insn.src)
        if r6.type != PTR_TO_CTX:
            self.refuse(pc, "at the time of BPF_LD_ABS|IND R6 != pointer to skb")
        self.ctx_off(pc, 6, r6)
        for r in range(1, 6):
            regs[r] = Reg()
        # check_ld_abs: mark_reg_unknown, not the load's width (R0=scalar() in the log)
        regs[0] = scalar()
        if len(st.frames) == 1:
            return pc + 1
        self.push(st, pc + 1, pc, pending)
        st.cur.regs[0] = scalar(0)
        return self.exit(st, pc)

    # --- jumps ------------------------------------------------------------------------------
    def _mark_null(self, st: VState, rid: int, is_null: bool) -> None:
        """mark_ptr_or_null_regs: every copy of the checked pointer."""
        if not rid:
            return
        for r in st.all_regs():
            if r.id == rid and r.type & MAYBE_NULL:
                if is_null:
                    ref = r.ref
                    r.mark_known(0)
                    r.type = SCALAR
                    r.id = r.ref = 0
                    r.map = None
                    r.range = r.size = r.off = r.frame = r.dynptr_id = 0
                    if ref and ref == rid:
                        # only the acquired pointer's NULL drops the reference: a NULL
                        # cast of it (bpf_tcp_sock) leaves the socket to release
                        st.refs.pop(ref, None)
                else:
                    r.type &= ~MAYBE_NULL
                    # mark_ptr_or_null_reg: a socket map's lookup gives a socket, an
                    # XSKMAP's an AF_XDP socket; the map stays in map_ptr, which
                    # regsafe's memcmp compares, so a socket of the map does not prune
                    # one of bpf_sk_lookup_tcp (OBI's tctracer)
                    if r.type == PTR_TO_MAP_VALUE and r.map is not None and \
                            r.map.type in MAPS_OF_MAPS:
                        # mark_ptr_not_null_reg: a map of maps' value is a pointer to
                        # its inner_map_meta, a nameless copy of the template
                        r.type = CONST_PTR_TO_MAP
                        r.map = r.map.inner_map
                        INNER_MAP_METAS.add(r.map)
                    elif r.type == PTR_TO_MAP_VALUE and r.map is not None and \
                            r.map.type in helpers.SOCK_MAPS:
                        r.type = PTR_TO_SOCKET
                    elif r.type == PTR_TO_MAP_VALUE and r.map is not None and \
                            r.map.type == isa.MapType.BPF_MAP_TYPE_XSKMAP:
                        r.type = PTR_TO_XDP_SOCK
                    # the reference stays in ref (released by it), the id goes but
                    # where it names a lock
                    if not self.keeps_id(r):
                        r.id = 0

    # --- calls --------------------------------------------------------------------------------
    def _refine_retval(self, r0: Reg, hid: int, meta: dict) -> None:
        """do_refine_retval_range: a CPU number is below nr_cpu_ids; a string read
        returns at most its buffer's size, or an errno."""
        if hid == _GET_SMP_PROCESSOR_ID:
            r0.umin = r0.smin = r0.u32min = r0.s32min = 0
            r0.umax = r0.smax = r0.u32max = r0.s32max = self.nr_cpu_ids - 1
        elif hid in _SIZED_STRING_READS and "msize_max" in meta:
            r0.smax = r0.s32max = meta["msize_max"]
            r0.smin = r0.s32min = -isa.MAX_ERRNO
        else:
            return
        bounds.sync(r0)

    def helper_call(self, st: VState, pc: int, insn, pending) -> None:
        hid = insn.imm
        regs = st.cur.regs
        if not 0 <= hid <= isa.MAX_HELPER_ID:
            self.refuse(pc, f"invalid func unknown#{hid}")
        name = f"bpf_{isa.HELPER_NAMES[hid]}"
        if self.profile == "4.6" and hid not in self.allowed:
            # 4.6's check_call: ids past __BPF_FUNC_MAX_ID (31), then get_func_proto
            self.refuse(pc, f"invalid func {hid}" if hid > HELPER_MAX_46 else
                        f"unknown func {hid}")
        if hid not in self.allowed:
            kernel = "the 4.6 kernel" if self.profile == "4.6" else "the kernel"
            self.refuse(pc, f"program of this type cannot use helper {name}#{hid} "
                            f"({kernel}, {self.prog_type.name})")
        if hid in helpers.MIGHT_SLEEP:
            # check_helper_call: only a path that may sleep, and outside the regions
            # that may not
            if not self.in_sleepable(st):
                self.refuse(pc, "helper call might sleep in a non-sleepable prog")
            if st.rcu_lock:
                self.refuse(pc, f"sleepable helper {name}#{hid} in rcu_read_lock region")
            if st.preempt_locks:
                self.refuse(pc, f"sleepable helper {name}#{hid} in non-preemptible region")
        # a helper without a prototype here is one pyebpf does not implement: loading
        # the program fails after verification (Program), so its arguments go unchecked
        proto = helpers.PROTOS.get(hid, helpers.Proto(name, helpers.INTEGER, ()))
        meta = self.check_call_46(st, pc, hid) if self.profile == "4.6" else \
            self.helper_args(st, pc, hid, proto)
        if hid in CALLBACK_HELPERS:
            # check_helper_call queues the callback after every argument's check
            self.callback_call(st, pc, insn, pending)
        if meta["release"]:
            ref = meta["release"]
            st.refs.pop(ref, None)
            if meta.get("release_dynptr"):
                self.release_dynptr(st, ref)
            if meta.get("kptr") is not None:
                self.kptr_released(st, ref)
            for r in st.all_regs():
                if r.ref == ref:
                    r.mark_unknown()
        for r in range(1, 6):
            regs[r] = Reg()
        if proto.ret == helpers.INTEGER:
            regs[0] = scalar()
            if self.profile == "current":
                self._refine_retval(regs[0], hid, meta)
        elif proto.ret == helpers.VOID:
            regs[0] = Reg()
        elif proto.ret == helpers.MAP_VALUE_OR_NULL:
            m = meta["map"]
            r = Reg(PTR_TO_MAP_VALUE | MAYBE_NULL)
            r.mark_known(0)
            r.map = m
            if m is not None and m.type in MAPS_OF_MAPS:
                # a map value of the outer map until its NULL check makes it the inner
                # map (mark_ptr_not_null_reg)
                r.id = self.new_id()
            elif m is not None and m.type in helpers.SOCK_MAPS:
                # is_acquire_function: the socket looked up holds a reference, whose id
                # replaces the one given for the NULL check
                self.new_id()
                r.id = r.ref = self.new_id()
                st.refs[r.ref] = pc
            elif meta.get("const_key") is not None and meta["const_key"] < m.max_entries:
                r.type = PTR_TO_MAP_VALUE
                # not NULL: an id only for a value that holds a lock, to name it
                # (check_helper_call)
                r.id = self.new_id() if has_spin_lock(m) else 0
            else:
                r.id = self.new_id()
            regs[0] = r
        elif proto.ret == helpers.DYNPTR_MEM_OR_NULL:
            # RET_PTR_TO_DYNPTR_MEM_OR_NULL: writable memory of the constant size; its
            # dynptr_id names the dynptr whose destruction ends it
            r = Reg(PTR_TO_MEM | DYNPTR_MEM | MAYBE_NULL)
            r.mark_known(0)
            r.size = meta["ringbuf_size"]
            r.id = self.new_id()
            r.dynptr_id = meta["dynptr"].id
            # is_dynptr_ref_function: a ring buffer dynptr's memory ends with its record
            r.ref = meta["dynptr"].ref
            regs[0] = r
        elif proto.ret == helpers.TRUSTED_TASK:
            regs[0] = self.task_reg()
        elif proto.ret == helpers.KPTR_OR_NULL:
            regs[0] = self.kptr_return(st, pc, meta)
        elif proto.ret == helpers.BTF_PT_REGS:
            regs[0] = self.struct_reg("pt_regs")
        elif proto.ret in (helpers.PERCPU_MEM_OR_BTF_ID, helpers.PERCPU_MEM_OR_BTF_ID_OR_NULL):
            regs[0] = self.percpu_return(meta, proto.ret == helpers.PERCPU_MEM_OR_BTF_ID_OR_NULL)
        elif proto.ret in sockets.RET_KINDS:
            regs[0] = sockets.returned(self, st, pc, proto.ret, meta)
        elif proto.ret == helpers.RINGBUF_MEM_OR_NULL:
            r = Reg(PTR_TO_MEM | MAYBE_NULL)
            r.mark_known(0)
            r.size = meta["ringbuf_size"]
            # check_helper_call: an id for the NULL check, then acquire_reference's
            # replaces it (two ids spent, as the kernel's log shows them)
            self.new_id()
            r.id = r.ref = self.new_id()
            st.refs[r.ref] = pc
            regs[0] = r
        if proto.changes_pkt_data and (hid != isa.HELPER_IDS["dynptr_write"] or
                                       dynptr_type(meta["dynptr"]) in PACKET_TYPES):
            self.clear_all_pkt_pointers(st)

    def helper_args(self, st: VState, pc: int, hid: int, proto) -> dict:
        """check_helper_call's argument checks (check_func_arg of each, then
        check_map_func_compatibility and the helpers' own rules); what they found."""
        regs = st.cur.regs
        meta = {"map": None, "ringbuf_size": 0, "release": 0}
        for i, kind in enumerate(proto.args):
            self.helper_arg(st, pc, proto, hid, i + 1, kind, meta)
            if self.precision and kind != helpers.ANYTHING:
                # check_mem_size_reg and the like: a size, or a NULL, is a value the
                # verdict depends on (here every scalar argument but ARG_ANYTHING)
                self._needs(st, i + 1)
        # record_func_map: a BPF_F_RDONLY_PROG map (a devmap's always) keeps what user
        # space put in it
        if meta["map"] is not None and meta["map"].flags & isa.BPF_F_RDONLY_PROG and \
                isa.HELPER_NAMES[hid] in ("map_delete_elem", "map_update_elem",
                                          "map_push_elem", "map_pop_elem"):
            self.refuse(pc, "write into map forbidden", errno=EACCES)
        # check_map_func_compatibility: after every argument
        self._map_compatible(pc, meta["map"], hid, proto)
        if hid == isa.HELPER_IDS["snprintf"]:
            self.snprintf_format(pc, meta["const_str"], regs[5])
        if hid == isa.HELPER_IDS["tail_call"]:
            # record_func_key: a constant key the array may hold is a value the call
            # depends on (made precise), whatever ARG_ANYTHING says
            m, key = meta["map"], regs[3]
            if self.precision and m is not None and key.type == SCALAR and \
                    key.is_const and m.max_entries and \
                    tnum.in_(tnum.range_(0, m.max_entries - 1), key.var):
                self._needs(st, 3)
            if st.refs:
                self.refuse(pc, "tail_call would lead to reference leak")
            self.lock_leak(st, pc, "tail_call")
        if hid == isa.HELPER_IDS["dynptr_from_mem"] and regs[1].type != PTR_TO_MAP_VALUE:
            self.refuse(pc, f"Unsupported reg type {type_str(regs[1].type)} for "
                            f"bpf_dynptr_from_mem data")
        return meta

    _EXPECTED = {
        helpers.CTX: ("ctx",),
        helpers.CTX_OR_NULL: ("ctx",),
        helpers.U32_INOUT: ("fp", "pkt", "pkt_meta", "map_key", "map_value", "mem",
                            "ringbuf_mem", "buf", "trusted_ptr_"),
        helpers.U64_OUT: ("fp", "pkt", "pkt_meta", "map_key", "map_value", "mem",
                          "ringbuf_mem", "buf", "trusted_ptr_"),
        helpers.MAP: ("map_ptr",),
        helpers.MEM: ("fp", "pkt", "pkt_meta", "map_key", "map_value", "mem", "ringbuf_mem",
                      "buf", "trusted_ptr_"),
        helpers.UNINIT_MEM: ("fp", "pkt", "pkt_meta", "map_key", "map_value", "mem",
                             "ringbuf_mem", "buf", "trusted_ptr_"),
        helpers.RINGBUF_MEM: ("ringbuf_mem",),
        **dict.fromkeys(helpers.FIXED_SIZES, ("fp", "pkt", "pkt_meta", "map_key", "map_value",
                                              "mem", "ringbuf_mem", "buf", "trusted_ptr_")),
        helpers.FUNC: ("func",),
        helpers.SPIN_LOCK: ("map_value", "ptr_"),
        helpers.TIMER: ("map_value",),
        helpers.STACK_OR_NULL: ("fp",),
        helpers.DYNPTR: ("fp", "dynptr_ptr"),
        helpers.LOCAL_DYNPTR_OUT: ("fp", "dynptr_ptr"),
        helpers.RINGBUF_DYNPTR_OUT: ("fp", "dynptr_ptr"),
        helpers.RINGBUF_DYNPTR_RELEASE: ("fp", "dynptr_ptr"),
    }
    # dynptr arguments: (uninitialised: the helper makes it, its type or the type it
    # must have)
    _DYNPTR_ARGS = {helpers.DYNPTR: (False, 0),
                    helpers.LOCAL_DYNPTR_OUT: (True, LOCAL),
                    helpers.RINGBUF_DYNPTR_OUT: (True, RINGBUF),
                    helpers.RINGBUF_DYNPTR_RELEASE: (False, RINGBUF)}
    # a map's key and value arguments take memory as ARG_PTR_TO_MEM does (mem_types)
    _EXPECTED.update(dict.fromkeys(
        (helpers.MEM_OR_NULL, helpers.WRITE_MEM, helpers.WRITE_MEM_OR_NULL, helpers.KEY,
         helpers.VALUE, helpers.UNINIT_VALUE, helpers.VALUE_OR_NULL), _EXPECTED[helpers.MEM]))
    _MEM_TYPES = {PTR_TO_STACK, PTR_TO_PACKET, PTR_TO_PACKET_META, PTR_TO_MAP_KEY,
                  PTR_TO_MAP_VALUE, PTR_TO_MEM}
    # the memory arguments check_reg_type lets a MEM_RDONLY register through
    _RDONLY_ARGS = frozenset((helpers.MEM, helpers.MEM_OR_NULL, *helpers.FIXED_SIZES))

    _MAP_ARGS = frozenset((helpers.KEY, helpers.VALUE, helpers.UNINIT_VALUE,
                           helpers.VALUE_OR_NULL))
    # the PTR_MAYBE_NULL arguments, which take a pointer not yet checked against NULL
    _NULLABLE_ARGS = frozenset((helpers.MEM_OR_NULL, helpers.WRITE_MEM_OR_NULL,
                                helpers.VALUE_OR_NULL))

    def _is_mem(self, reg: Reg, kind: str) -> bool:
        """check_reg_type for a memory argument: one of mem_types; a kfunc's dynptr
        slice only for ARG_PTR_TO_MEM (which alone drops DYNPTR_TYPE_FLAG_MASK, not a
        map's key or value), and a read-only one (MEM_RDONLY) only where the argument
        is MEM_RDONLY too; bpf_dynptr_data's slice, plain PTR_TO_MEM to the kernel,
        for any.  A PTR_MAYBE_NULL argument takes each of them not yet checked against
        NULL too (check_reg_type drops PTR_MAYBE_NULL from the register's type)."""
        t = reg.type & ~MAYBE_NULL if kind in self._NULLABLE_ARGS else reg.type
        if t in self._MEM_TYPES or t == PTR_TO_MEM | DYNPTR_MEM:
            return True
        flags = t & DYNPTR_TYPE_FLAGS
        return bool(flags) and t & ~(flags | MEM_RDONLY) == PTR_TO_MEM and \
            kind not in self._MAP_ARGS and (kind in self._RDONLY_ARGS or not t & MEM_RDONLY)

    def _type_error(self, pc, regno, reg: Reg, kind):
        expected = self._EXPECTED[kind]
        self.refuse(pc, f"R{regno} type={type_str(reg.type)} expected={', '.join(expected)}")

    def helper_arg(self, st: VState, pc: int, proto, hid: int, regno: int, kind: str,
                   meta: dict) -> None:
        """check_func_arg."""
        reg = self.read(st, pc, regno)
        if kind == helpers.ANYTHING:
            if self.unpriv and reg.is_ptr:
                self.refuse(pc, f"R{regno} leaks addr into helper function")
            return
        if reg.type & 0xFF in PKT_TYPES and hid not in helpers.PKT_ACCESS:
            self.refuse(pc, "helper access to the packet is not allowed")
        if kind in (helpers.VALUE, helpers.UNINIT_VALUE) and meta["map"] is not None and \
                meta["map"].type in helpers.SOCK_MAPS:
            # resolve_map_arg_type: a socket map's value is a socket
            if kind != helpers.VALUE:
                self.refuse(pc, "invalid arg_type for sockmap/sockhash")
            kind = sockets.BTF_SOCK_COMMON
        if kind in sockets.ARG_KINDS:
            sockets.check_arg(self, st, pc, regno, reg, kind, meta)
            return
        if kind == helpers.PERCPU_BTF:
            self.percpu_arg(pc, regno, reg, meta)
            return
        if kind in helpers.BTF_ARGS:
            name, nullable = helpers.BTF_ARGS[kind]
            if not (nullable and reg.is_null()):
                self.btf_arg(pc, regno, reg, name)
                self.one_ref_arg(pc, regno, reg, meta)
            return
        if kind == helpers.KPTR_DEST:
            self.kptr_dest_arg(pc, regno, reg, meta)
            return
        if kind == helpers.KPTR_NEW:
            self.kptr_new_arg(pc, regno, reg, meta)
            return
        if kind == helpers.SPIN_LOCK:
            if reg.type != PTR_TO_MAP_VALUE and reg.type != ALLOC_PTR:
                self._type_error(pc, regno, reg, kind)
            self.spin_lock_arg(st, pc, regno, reg, hid == SPIN_LOCK_ID)
            return
        if kind == helpers.TIMER:
            if reg.type != PTR_TO_MAP_VALUE:
                self._type_error(pc, regno, reg, kind)
            self.timer_arg(pc, regno, reg, meta)
            return
        if kind == helpers.FUNC:
            if reg.type != PTR_TO_FUNC:
                self._type_error(pc, regno, reg, kind)
            return
        if kind == helpers.STACK_OR_NULL:
            if reg.type != PTR_TO_STACK and not reg.is_null():
                self._type_error(pc, regno, reg, kind)
            return
        if kind == helpers.CTX:
            if reg.type != PTR_TO_CTX:
                self._type_error(pc, regno, reg, kind)
            self.ctx_off(pc, regno, reg)
            return
        if kind == helpers.CTX_OR_NULL:
            if not reg.is_null():
                if reg.type != PTR_TO_CTX:
                    self._type_error(pc, regno, reg, kind)
                self.ctx_off(pc, regno, reg)
            return
        if kind in (helpers.U32_INOUT, helpers.U64_OUT):
            size = 4 if kind == helpers.U32_INOUT else 8
            if not self._is_mem(reg, kind):
                self._type_error(pc, regno, reg, kind)
            self.helper_mem(st, pc, regno, reg, size, True, False,
                            raw=kind == helpers.U64_OUT)
            if reg.type == PTR_TO_STACK:
                # initialised memory the helper writes: read first (no MEM_UNINIT)
                lo = reg.off + reg.smin
                self.lv.read(st, reg.frame, pc, slot_mask(lo, lo + size))
            # MEM_ALIGNED: check_ptr_alignment, strict, after the access check
            if reg.type == PTR_TO_STACK and not tnum.is_aligned(
                    tnum.add(reg.var, tnum.const(reg.off)), size):
                self.refuse(pc, f"misaligned stack access off {tnum.text(reg.var)}+{reg.off}+0 "
                                f"size {size}")
            return
        if kind in helpers.FIXED_SIZES:
            if not self._is_mem(reg, kind):
                self._type_error(pc, regno, reg, kind)
            self.one_ref_arg(pc, regno, reg, meta)
            self.helper_mem(st, pc, regno, reg, helpers.FIXED_SIZES[kind], False, False)
            return
        if kind in self._DYNPTR_ARGS:
            if reg.type not in (PTR_TO_STACK, CONST_PTR_TO_DYNPTR):
                self._type_error(pc, regno, reg, kind)
            if kind == helpers.RINGBUF_DYNPTR_RELEASE:
                meta["release"] = self.dynptr_release_arg(st, pc, regno, reg)
                meta["release_dynptr"] = True
            out, dtype = self._DYNPTR_ARGS[kind]
            meta["dynptr"] = self.dynptr_arg(st, pc, regno - 1, reg, out, kind=dtype,
                                             expect=0 if out else dtype)
            return
        if kind == helpers.CONST_STR:
            meta["const_str"] = self.const_str(pc, regno, reg)
            return
        if kind == helpers.MAP:
            if reg.type != CONST_PTR_TO_MAP:
                self._type_error(pc, regno, reg, kind)
            self.timer_map_arg(pc, reg, meta)
            meta["map"] = reg.map
            return
        if kind == helpers.VALUE_OR_NULL and reg.is_null():
            return
        if kind in self._MAP_ARGS:
            if not self._is_mem(reg, kind):
                self._type_error(pc, regno, reg, kind)
            self.one_ref_arg(pc, regno, reg, meta)
            m = meta["map"]
            if m is None:
                self.refuse(pc, "invalid map_ptr to access map->key")
            size = m.key_size if kind == helpers.KEY else m.value_size
            uninit = kind == helpers.UNINIT_VALUE
            self.helper_mem(st, pc, regno, reg, size, uninit, False, raw=uninit)
            # check_func_arg asks get_constant_map_key (which marks the spilled key
            # precise) only for maps whose value it may make non-NULL
            # (can_elide_value_nullness): arrays; it finds none for an unprivileged
            # loader (no bpf_capable), whose lookups stay NULL-able
            if kind == helpers.KEY and reg.type == PTR_TO_STACK and reg.is_const and \
                    m.type in ELIDE_NULLNESS_MAPS and not self.unpriv:
                meta["const_key"] = self._const_stack_key(st, reg, size)
            return
        if kind in (helpers.MEM_OR_NULL, helpers.WRITE_MEM_OR_NULL) and reg.is_null():
            meta["mem_null"] = True
            return
        if kind in (helpers.MEM, helpers.UNINIT_MEM, helpers.MEM_OR_NULL, helpers.WRITE_MEM,
                    helpers.WRITE_MEM_OR_NULL):
            if not self._is_mem(reg, kind):
                self._type_error(pc, regno, reg, kind)
            self.one_ref_arg(pc, regno, reg, meta)
            meta["mem_write"] = kind == helpers.UNINIT_MEM
            meta["mem_initialised_write"] = kind in (helpers.WRITE_MEM,
                                                     helpers.WRITE_MEM_OR_NULL)
            return
        if kind in (helpers.SIZE, helpers.SIZE_OR_ZERO):
            zero_ok = kind == helpers.SIZE_OR_ZERO
            if reg.type != SCALAR:
                self.refuse(pc, f"R{regno} type={type_str(reg.type)} expected=scalar")
            if reg.smin < 0:
                self.refuse(pc, f"R{regno} min value is negative, either use unsigned or "
                                f"'var &= const'")
            if reg.umin == 0 and not zero_ok:
                self.refuse(pc, f"R{regno} invalid zero-sized read: u64=[{reg.umin},"
                                f"{reg.umax}]")
            if reg.umax >= BPF_MAX_VAR_SIZ:
                self.refuse(pc, f"R{regno} unbounded memory access, use 'var &= const' or "
                                f"'if (var < const)'")
            meta["msize_max"] = reg.umax        # check_mem_size_reg: msize_max_value
            mem = st.cur.regs[regno - 1]
            if meta.pop("mem_null", False):
                if reg.umax:
                    self.refuse(pc, f"R{regno - 1} type=scalar expected="
                                    f"{', '.join(self._EXPECTED[helpers.MEM])}")
                return
            uninit = meta.pop("mem_write", False)
            if meta.pop("mem_initialised_write", False):
                # MEM_WRITE: read as initialised memory, then clobbered as the helper
                # may write anything there (check_stack_range_initialized with
                # BPF_WRITE: zeroes and spilled scalars become unknown)
                self.helper_mem(st, pc, regno - 1, mem, reg.umax, False, zero_ok)
                self.helper_mem(st, pc, regno - 1, mem, reg.umax, True, zero_ok)
                return
            # check_mem_size_reg: a size not constant drops the call's meta, so the
            # memory is not raw (check_helper_call writes no bytes of it after)
            self.helper_mem(st, pc, regno - 1, mem, reg.umax, uninit, zero_ok,
                            raw=uninit and reg.is_const)
            return
        if kind == helpers.ALLOC_SIZE_OR_ZERO:
            if reg.type != SCALAR or not reg.is_const:
                self.refuse(pc, f"R{regno} is not a known constant'")
            meta["ringbuf_size"] = reg.value
            return
        if kind == helpers.RINGBUF_MEM:
            if reg.type != PTR_TO_MEM or not reg.ref:
                self._type_error(pc, regno, reg, kind)
            if reg.off or not reg.is_const or reg.value:
                self.refuse(pc, f"R{regno} must have zero offset when passed to release "
                                f"func or trusted arg to kfunc")
            self.one_ref_arg(pc, regno, reg, meta)
            meta["release"] = reg.ref
            return
        raise AssertionError(kind)

    def one_ref_arg(self, pc: int, regno: int, reg: Reg, meta: dict) -> None:
        """check_func_arg: at most one argument of a call holds a reference (a socket,
        a task or cgroup acquired, a ring buffer record: any two); checked once the
        argument's type is.  6.18 refuses with EACCES and no newline after the message."""
        if not reg.ref:
            return
        if meta.get("ref_obj_id"):
            self.refuse(pc, f"more than one arg with ref_obj_id R{regno} {reg.ref} "
                            f"{meta['ref_obj_id']}", errno=EACCES)
        meta["ref_obj_id"] = reg.ref

    def _const_stack_key(self, st: VState, reg: Reg, size: int):
        """get_constant_map_key: the key's value when the stack holds it as zeroes or
        as a constant scalar spilled with exactly the key's size (the spill then made
        precise; zeroes are precise already, check_stack_write_fixed_off); else None."""
        frame = self.stack_frame(st, reg)
        v = reg.value - (1 << 64) if reg.value >> 63 else reg.value
        addr = reg.off + v
        s = self._slot(frame, addr, create=False)
        if s is None:
            return None
        first = addr % 8
        zeros = 0
        while first + zeros < 8 and s.kinds[first + zeros] == STACK_ZERO:
            zeros += 1
        if zeros >= size:
            return 0
        if s.spill is None or s.spill.type != SCALAR or s.kinds[0] != STACK_SPILL:
            return None
        spilled = 0
        while first + spilled < 8 and s.kinds[first + spilled] == STACK_SPILL:
            spilled += 1
        if spilled != size or not s.spill.is_const:
            return None
        if self.precision:
            precision.mark(self, st, (), ((-addr - 1) // 8,), reg.frame)
        return s.spill.value

    def helper_mem(self, st, pc, regno, reg: Reg, size: int, write: bool, zero_ok: bool,
                   raw: bool = False):
        """check_helper_mem_access: ``size`` bytes at ``reg`` (``raw``: a helper's
        MEM_UNINIT argument, which check_helper_call then writes a byte at a time), by
        its type without PTR_MAYBE_NULL (base_type), which a PTR_MAYBE_NULL argument
        lets through."""
        t = reg.type & ~MAYBE_NULL
        if t in PKT_TYPES:
            self.packet_access(pc, regno, reg, reg.off, size, zero_ok)
        elif t == PTR_TO_MAP_KEY:
            self.region_access(pc, regno, reg, reg.off, size, reg.map.key_size, zero_ok)
        elif t == PTR_TO_MAP_VALUE:
            self.map_access_type(pc, reg, reg.off, size, write)
            self.region_access(pc, regno, reg, reg.off, size, reg.map.value_size, zero_ok)
            self.map_fields_access(pc, reg, reg.off, size)
        elif t == PTR_TO_MEM or t & DYNPTR_SLICE and \
                t & ~(DYNPTR_SLICE | MEM_RDONLY) == PTR_TO_MEM:
            self.region_access(pc, regno, reg, reg.off, size, reg.size, zero_ok)
        elif t == PTR_TO_STACK:
            if size == 0 and not zero_ok:
                # check_stack_range_initialized: a map key or value of size 0
                self.refuse(pc, "invalid zero-sized read")
            # check_stack_access_within_bounds: a zero-sized access too stays below
            # the frame pointer
            lo, hi = self.stack_bounds(pc, regno, reg, 0, size,
                                       " write to" if write else " read from")
            if size == 0:
                return
            self._note_depth(st, reg, lo)
            frame = self.stack_frame(st, reg)
            if not write:
                # check_stack_range_initialized (not for MEM_UNINIT: raw mode)
                self._range_initialized(pc, regno, reg, frame, lo, hi, size)
                self.lv.read(st, reg.frame, pc, slot_mask(lo, hi))
            if write:
                for a in range(lo, hi):
                    if is_dynptr_slot(self._slot(frame, a, create=False)):
                        self.refuse(pc, f"potential write to dynptr at off={a} disallowed")
                if raw and self.log.level >= 2:
                    # check_helper_call writes raw-mode memory a byte at a time through
                    # check_mem_access, which marks the slots scratched
                    self.log.slots.update(range((-hi) // 8, (-lo - 1) // 8 + 1))
                for a in range(lo, hi):
                    s = self._slot(frame, a)
                    if is_irq_slot(s):
                        # each byte's check_stack_write scrubs the whole slot
                        s.kinds = [STACK_MISC] * 8
                        s.spill = None
                    # raw: each byte's check_stack_write_fixed_off ends the slot's spill;
                    # else check_stack_range_initialized's clobber ends it only for a byte
                    # of the spill itself (a kfunc's buffer beside a narrow spill keeps it);
                    # either scrubs the whole slot, its zero bytes too (scrub_spilled_slot)
                    if s.spill is not None and (raw or s.kinds[a % 8] == STACK_SPILL):
                        s.spill = None
                        s.kinds = [STACK_INVALID if k == STACK_INVALID else STACK_MISC
                                   for k in s.kinds]
                    s.kinds[a % 8] = STACK_MISC

    def _map_compatible(self, pc, m, hid: int, proto) -> None:
        if m is None:
            return
        mtype = isa.MapType(m.type) if not isinstance(m.type, isa.MapType) else m.type
        name = isa.HELPER_NAMES[hid]
        dedicated = helpers.DEDICATED_MAPS.get(mtype)
        refused = f"cannot pass map_type {int(mtype)} into func bpf_{name}#{hid}"
        if mtype in helpers.SOCK_MAPS and name in helpers.SOCK_MAP_CHANGES:
            # may_update_sockmap: program types that cannot hold a locked socket
            if self.prog_type not in helpers.SOCK_MAP_UPDATERS:
                self.refuse(pc, "cannot update sockmap in this context", refused)
            return
        if (dedicated is not None and name not in dedicated) or \
                (proto.map_types and mtype not in proto.map_types):
            self.refuse(pc, refused)

    @staticmethod
    def clear_all_pkt_pointers(st: VState) -> None:
        """Every packet pointer and skb dynptr slice, in registers and spilled, becomes
        an unknown scalar (clear_all_pkt_pointers)."""
        for f in st.frames:
            for r in f.regs:
                if (r.type & 0xFF) in PKT_TYPES or r.type == PTR_TO_PACKET_END or \
                        r.type & DYNPTR_SKB:
                    r.mark_unknown()
            for s in f.stack.values():
                if s.spill is not None and ((s.spill.type & 0xFF) in PKT_TYPES or
                                            s.spill.type == PTR_TO_PACKET_END or
                                            s.spill.type & DYNPTR_SKB):
                    s.spill.mark_unknown()

    def local_call(self, st: VState, pc: int, insn) -> int:
        if len(st.frames) >= isa.MAX_CALL_FRAMES:
            self.refuse(pc, f"the call stack of {len(st.frames) + 1} frames is too deep")
        target = pc + 1 + insn.imm
        if target in self.globals:
            return self.global_call(st, pc, self.globals[target])
        self.static_arg_notes(st, target)
        caller = st.cur
        callee = Frame(pc, self.func_of(target), len(st.frames))
        for r in range(1, 6):
            # the arguments move to the callee (clear_caller_saved_regs)
            callee.regs[r], caller.regs[r] = caller.regs[r], Reg()
        caller.regs[0] = Reg()          # R0 too: the callee's will come back in it
        callee.regs[10].type = PTR_TO_STACK
        callee.regs[10].mark_known(0)
        callee.regs[10].frame = callee.frameno
        st.frames.append(callee)
        self.log.called(st, caller, callee)
        return target

    def exit(self, st: VState, pc: int) -> int | None:
        if len(st.frames) > 1 and not st.cur.in_callback:
            # prepare_func_exit hands the caller whatever R0 holds, even nothing: only
            # a read of it there is refused
            r0 = st.cur.regs[0]
            if r0.type == PTR_TO_STACK:     # prepare_func_exit
                self.refuse(pc, "cannot return stack pointer to the caller")
            self.lv.update(st)
            callee = st.frames.pop()
            caller = st.cur
            caller.regs[0] = r0.copy()
            for r in range(1, 6):
                caller.regs[r] = Reg()
            if self.changes_pkt_data(self.starts[self.func_of(pc)], tail_calls_only=True):
                # a program it tail-called may have changed the packet: the callers'
                # pointers end (as at a global function's call); the helpers that
                # change packet data ended them where they were called
                self.clear_all_pkt_pointers(st)
            self.log.returned(st, callee, caller, callee.callsite + 1)
            self.log.resumed(st, pc, callee.callsite + 1)
            return callee.callsite + 1
        if st.cur.in_callback is True:
            return self.callback_exit(st, pc, self.read(st, pc, 0))
        # process_bpf_exit_full: check_resource_leak before check_return_code reads R0
        self.lock_held_at(st, pc, "BPF_EXIT instruction in main prog")
        if st.refs:
            ref, at = next(iter(st.refs.items()))
            self.refuse(pc, f"Unreleased reference id={ref} alloc_insn={at}",
                        "BPF_EXIT instruction in main prog would lead to reference leak")
        self.lock_leak(st, pc, "BPF_EXIT instruction in main prog")
        r0 = self.read(st, pc, 0)
        if st.cur.in_callback in ASYNC_CALLBACKS:
            # check_return_code: R0 made precise, then held to the callback's range
            self._needs(st, 0)
            self.async_exit(pc, r0, st.cur.in_callback)
            return None
        if self.in_exception_cb:
            self.exception_cb_exit(pc, r0)
            return None
        if self.in_global:
            self.global_exit(pc, r0)
            return None
        if self.unpriv and r0.is_ptr:
            self.refuse(pc, "R0 leaks addr as return value")    # check_return_code
        return None


def _chain_text(chain: tuple) -> str:
    """format_callchain: ``(site,...,scc)``, the call sites then the loop, as the level-2
    log prints them; a call at insn 0 ends the sites, as a zero ends the kernel's
    callsites array."""
    sites = []
    for pc in chain[:-1]:
        if not pc:
            break
        sites.append(str(pc))
    return "(" + ",".join(sites + [str(chain[-1])]) + ")"
