"""The ``4.6`` profile's helper calls: 4.6's ``check_call``, ``check_func_arg``,
``check_stack_boundary`` and ``check_map_func_compatibility`` (kernel/bpf/verifier.c
of 4.6), where they differ from today's.

4.6 knew eight argument kinds.  A buffer (``ARG_PTR_TO_STACK``, a map key or value)
is a pointer into the stack at a fixed offset, never a map value nor packet memory
(``ARG_PTR_TO_MEM`` and packet pointers came later), and every byte of it must have
been written by a store that was no pointer spill (``STACK_MISC``: there was no
uninitialised buffer a helper fills, ``ARG_PTR_TO_RAW_STACK`` came in 4.7).  A size
(``ARG_CONST_STACK_SIZE``) is a register holding a constant (``CONST_IMM``), more than 0;
only bpf_csum_diff's sizes (``ARG_CONST_STACK_SIZE_OR_ZERO``) may be 0 with a NULL
buffer.  The messages are 4.6's, with its register type names (``reg_type_str``).
"""
from __future__ import annotations

from .. import isa
from .liveness import slot_mask
from .state import (CONST_PTR_TO_MAP, MAYBE_NULL, PTR_TO_CTX, PTR_TO_MAP_VALUE, PTR_TO_STACK,
                    SCALAR, STACK_MISC, STACK_SPILL, STACK_ZERO, s64, type_str)

# enum bpf_arg_type of 4.6 (ARG_DONTCARE: the argument is absent from the tuple)
ANYTHING = "anything"            # ARG_ANYTHING
CTX = "ctx"                      # ARG_PTR_TO_CTX
MAP_PTR = "map_ptr"              # ARG_CONST_MAP_PTR
MAP_KEY = "map_key"              # ARG_PTR_TO_MAP_KEY
MAP_VALUE = "map_value"          # ARG_PTR_TO_MAP_VALUE
STACK = "stack"                  # ARG_PTR_TO_STACK
STACK_SIZE = "stack_size"        # ARG_CONST_STACK_SIZE
STACK_SIZE_OR_ZERO = "stack_size_or_zero"   # ARG_CONST_STACK_SIZE_OR_ZERO

_A, _C, _S, _N = ANYTHING, CTX, STACK, STACK_SIZE

#: Each helper 4.6 had (ids 1-30): its arguments as 4.6's bpf_func_proto gave them
#: (kernel/bpf/helpers.c, kernel/trace/bpf_trace.c, kernel/bpf/stackmap.c,
#: kernel/bpf/core.c, net/core/filter.c of 4.6).
ARGS = {
    1: (MAP_PTR, MAP_KEY),                          # map_lookup_elem
    2: (MAP_PTR, MAP_KEY, MAP_VALUE, _A),           # map_update_elem
    3: (MAP_PTR, MAP_KEY),                          # map_delete_elem
    4: (_S, _N, _A),                                # probe_read
    5: (),                                          # ktime_get_ns
    6: (_S, _N),                                    # trace_printk
    7: (),                                          # get_prandom_u32
    8: (),                                          # get_smp_processor_id
    9: (_C, _A, _S, _N, _A),                        # skb_store_bytes
    10: (_C, _A, _A, _A, _A),                       # l3_csum_replace
    11: (_C, _A, _A, _A, _A),                       # l4_csum_replace
    12: (_C, MAP_PTR, _A),                          # tail_call
    13: (_C, _A, _A),                               # clone_redirect
    14: (),                                         # get_current_pid_tgid
    15: (),                                         # get_current_uid_gid
    16: (_S, _N),                                   # get_current_comm
    17: (_C,),                                      # get_cgroup_classid
    18: (_C, _A, _A),                               # skb_vlan_push
    19: (_C,),                                      # skb_vlan_pop
    20: (_C, _S, _N, _A),                           # skb_get_tunnel_key
    21: (_C, _S, _N, _A),                           # skb_set_tunnel_key
    22: (MAP_PTR, _A),                              # perf_event_read
    23: (_A, _A),                                   # redirect
    24: (_C,),                                      # get_route_realm
    25: (_C, MAP_PTR, _A, _S, _N),                  # perf_event_output
    26: (_C, _A, _S, _N),                           # skb_load_bytes
    27: (_C, MAP_PTR, _A),                          # get_stackid
    28: (_S, STACK_SIZE_OR_ZERO, _S, STACK_SIZE_OR_ZERO, _A),   # csum_diff
    29: (_C, _S, _N),                               # skb_get_tunnel_opt
    30: (_C, _S, _N),                               # skb_set_tunnel_opt
}

#: The 4.6 prototypes with gpl_only set: bpf_probe_read, bpf_ktime_get_ns (not
#: GPL-only today), bpf_trace_printk, bpf_perf_event_read, bpf_perf_event_output,
#: bpf_get_stackid.
GPL_ONLY = frozenset((4, 5, 6, 22, 25, 27))
LICENSE_REFUSAL = "cannot call GPL only function from proprietary program"

_T = isa.MapType
# check_map_func_compatibility: the map types kept for some helpers, both ways
_DEDICATED = {_T.BPF_MAP_TYPE_PROG_ARRAY: (12,),
              _T.BPF_MAP_TYPE_PERF_EVENT_ARRAY: (22, 25),
              _T.BPF_MAP_TYPE_STACK_TRACE: (27,)}
_HELPER_MAP = {hid: mtype for mtype, hids in _DEDICATED.items() for hid in hids}

_EXPECTED = {CTX: "ctx", MAP_PTR: "map_ptr", MAP_KEY: "fp", MAP_VALUE: "fp", STACK: "fp",
             STACK_SIZE: "imm", STACK_SIZE_OR_ZERO: "imm"}
MAX_BPF_STACK = 512


def _is_imm(reg) -> bool:
    """A CONST_IMM of 4.6: a scalar the verifier knows the value of."""
    return reg.type == SCALAR and reg.is_const


def _stack_off(reg) -> int | None:
    """The offset below the frame pointer of a 4.6 PTR_TO_STACK (frame pointer plus a
    constant); None for anything else, the frame pointer itself included (FRAME_PTR)."""
    if reg.type != PTR_TO_STACK or not reg.is_const:
        return None
    off = reg.off + s64(reg.value)
    return off or None


def type_name(reg) -> str:
    """reg_type_str of 4.6 for what ``reg`` holds."""
    if reg.type == SCALAR:
        return "imm" if reg.is_const else "inv"
    if reg.type == PTR_TO_STACK:
        return "fp" if reg.is_const else "inv"
    if reg.type == PTR_TO_MAP_VALUE | MAYBE_NULL:
        return "map_value_or_null"
    if reg.type == PTR_TO_CTX and (reg.off or not reg.is_const or reg.value):
        return "inv"    # 4.6 kept no offset on a context pointer
    return type_str(reg.type)


class Helpers46:
    """4.6's helper calls, mixed into :class:`~.interp.Interpreter`."""

    def check_call_46(self, st, pc: int, hid: int) -> dict:
        """4.6's check_call from the license on: each argument, then the map's
        helpers.  Returns what the arguments gave (the map)."""
        if not self.gpl and hid in GPL_ONLY:
            self.refuse(pc, LICENSE_REFUSAL)
        meta = {"map": None, "ringbuf_size": 0, "release": 0}
        for i, kind in enumerate(ARGS[hid]):
            self._func_arg_46(st, pc, i + 1, kind, meta)
        m = meta["map"]
        if m is not None:
            mtype = isa.MapType(m.type)
            if hid not in _DEDICATED.get(mtype, (hid,)) or \
                    _HELPER_MAP.get(hid, mtype) != mtype:
                self.refuse(pc, f"cannot pass map_type {int(mtype)} into func {hid}")
        return meta

    def _func_arg_46(self, st, pc: int, regno: int, kind: str, meta: dict) -> None:
        """check_func_arg of 4.6."""
        regs = st.cur.regs
        reg = self.read(st, pc, regno)
        if kind == ANYTHING:
            if self.unpriv and reg.is_ptr:
                self.refuse(pc, f"R{regno} leaks addr into helper function")
            return
        if kind == STACK and _is_imm(reg) and reg.value == 0:
            ok = True       # a NULL buffer: its size decides (check_stack_boundary)
        elif kind in (MAP_KEY, MAP_VALUE, STACK):
            ok = _stack_off(reg) is not None
        elif kind in (STACK_SIZE, STACK_SIZE_OR_ZERO):
            ok = _is_imm(reg)
        elif kind == MAP_PTR:
            ok = reg.type == CONST_PTR_TO_MAP
        else:
            ok = type_name(reg) == "ctx"
        if not ok:
            self.refuse(pc, f"R{regno} type={type_name(reg)} expected={_EXPECTED[kind]}")
        if kind == MAP_PTR:
            meta["map"] = reg.map
        elif kind in (MAP_KEY, MAP_VALUE):
            m = meta["map"]
            if m is None:
                self.refuse(pc, f"invalid map_ptr to access map->{kind[4:]}")
            self._stack_boundary_46(st, pc, regno, reg,
                                    m.key_size if kind == MAP_KEY else m.value_size, False)
        elif kind in (STACK_SIZE, STACK_SIZE_OR_ZERO):
            self._stack_boundary_46(st, pc, regno - 1, regs[regno - 1], s64(reg.value),
                                    kind == STACK_SIZE_OR_ZERO)

    def _stack_boundary_46(self, st, pc: int, regno: int, reg, size: int,
                           zero_ok: bool) -> None:
        """check_stack_boundary of 4.6: ``size`` bytes of stack, each written."""
        off = _stack_off(reg)
        if off is None:
            if zero_ok and size == 0 and _is_imm(reg) and reg.value == 0:
                return
            self.refuse(pc, f"R{regno} type={type_name(reg)} expected=fp")
        if off >= 0 or off < -MAX_BPF_STACK or off + size > 0 or size <= 0:
            self.refuse(pc, f"invalid stack type R{regno} off={off} access_size={size}")
        self._note_depth(st, reg, off)
        self.lv.read(st, reg.frame, pc, slot_mask(off, off + size))
        frame = self.stack_frame(st, reg)
        for i in range(size):
            s = self._slot(frame, off + i, create=False)
            k = s.kinds[(off + i) % 8] if s is not None else None
            # 4.6 spilled only pointers (is_spillable_regtype): a stored scalar was
            # STACK_MISC, as were zeroes (STACK_ZERO came in 4.17)
            if not (k in (STACK_MISC, STACK_ZERO) or
                    (k == STACK_SPILL and s.spill.type == SCALAR)):
                self.refuse(pc, f"invalid indirect read from stack off {off}+{i} "
                                f"size {size}")
