"""Helper prototypes as data: one entry per helper the engine implements, with the
kernel's argument and return types (``struct bpf_func_proto`` in ``net/core/filter.c``,
``kernel/bpf/helpers.c`` and ``kernel/bpf/ringbuf.c``) and whether the helper may move
packet data (``bpf_helper_changes_pkt_data``)."""
from __future__ import annotations

from dataclasses import dataclass

from .. import isa
from .sockets import (BTF_SOCK_COMMON, LISTENER, SOCK_COMMON, SOCK_COMMON_ACQUIRED,
                      SOCK_RELEASE, SOCKET_ACQUIRED, SOCKET_CAST, TCP_SOCK_CAST)

# argument types (enum bpf_arg_type)
ANYTHING = "anything"              # ARG_ANYTHING
CTX = "ctx"                        # ARG_PTR_TO_CTX
CTX_OR_NULL = "ctx_or_null"        # ARG_PTR_TO_CTX_OR_NULL
U32_INOUT = "u32_inout"            # ARG_PTR_TO_FIXED_SIZE_MEM | MEM_WRITE | MEM_ALIGNED, 4
U64_OUT = "u64_out"                # ARG_PTR_TO_FIXED_SIZE_MEM | MEM_UNINIT | MEM_WRITE |
                                   # MEM_ALIGNED, 8
CONST_STR = "const_str"            # ARG_PTR_TO_CONST_STR
MAP = "map_ptr"                    # ARG_CONST_MAP_PTR
KEY = "map_key"                    # ARG_PTR_TO_MAP_KEY
VALUE = "map_value"                # ARG_PTR_TO_MAP_VALUE
UNINIT_VALUE = "uninit_map_value"  # ARG_PTR_TO_MAP_VALUE | MEM_UNINIT: the helper writes it
VALUE_OR_NULL = "map_value_or_null"  # ARG_PTR_TO_MAP_VALUE | PTR_MAYBE_NULL
MEM = "mem"                        # ARG_PTR_TO_MEM | MEM_RDONLY
MEM_OR_NULL = "mem_or_null"        # ARG_PTR_TO_MEM | PTR_MAYBE_NULL | MEM_RDONLY
UNINIT_MEM = "uninit_mem"          # ARG_PTR_TO_UNINIT_MEM
WRITE_MEM = "write_mem"            # ARG_PTR_TO_MEM | MEM_WRITE: initialised, then written
WRITE_MEM_OR_NULL = "write_mem_or_null"  # ARG_PTR_TO_MEM | PTR_MAYBE_NULL | MEM_WRITE
SIZE = "size"                      # ARG_CONST_SIZE
SIZE_OR_ZERO = "size_or_zero"      # ARG_CONST_SIZE_OR_ZERO
ALLOC_SIZE_OR_ZERO = "alloc_size"  # ARG_CONST_ALLOC_SIZE_OR_ZERO
RINGBUF_MEM = "ringbuf_mem"        # ARG_PTR_TO_RINGBUF_MEM | OBJ_RELEASE
FUNC = "func"                      # ARG_PTR_TO_FUNC (a callback)
STACK_OR_NULL = "stack_or_null"    # ARG_PTR_TO_STACK_OR_NULL
DYNPTR = "dynptr"                  # ARG_PTR_TO_DYNPTR | MEM_RDONLY: an initialised dynptr
LOCAL_DYNPTR_OUT = "local_dynptr_out"      # ARG_PTR_TO_DYNPTR | DYNPTR_TYPE_LOCAL | MEM_UNINIT
RINGBUF_DYNPTR_OUT = "ringbuf_dynptr_out"  # ARG_PTR_TO_DYNPTR | DYNPTR_TYPE_RINGBUF | MEM_UNINIT
RINGBUF_DYNPTR_RELEASE = "ringbuf_dynptr"  # ARG_PTR_TO_DYNPTR | DYNPTR_TYPE_RINGBUF | OBJ_RELEASE
BTF_TASK = "btf_task"              # ARG_PTR_TO_BTF_ID of struct task_struct
BTF_TASK_OR_NULL = "btf_task_or_null"      # ARG_PTR_TO_BTF_ID_OR_NULL of task_struct
BTF_CGROUP_OR_NULL = "btf_cgroup_or_null"  # ARG_PTR_TO_BTF_ID_OR_NULL of struct cgroup
PERCPU_BTF = "percpu_btf"          # ARG_PTR_TO_PERCPU_BTF_ID: a per-CPU variable's address
#: the struct each BTF pointer argument points at, and whether NULL may be passed
BTF_ARGS = {BTF_TASK: ("task_struct", False), BTF_TASK_OR_NULL: ("task_struct", True),
            BTF_CGROUP_OR_NULL: ("cgroup", True)}
# ARG_PTR_TO_FIXED_SIZE_MEM | MEM_RDONLY of a header struct: its size (arg*_size)
IPHDR, IPV6HDR, TCPHDR = "iphdr", "ipv6hdr", "tcphdr"
FIXED_SIZES = {IPHDR: 20, IPV6HDR: 40, TCPHDR: 20}
SPIN_LOCK = "spin_lock"            # ARG_PTR_TO_SPIN_LOCK: a map value's bpf_spin_lock
KPTR_DEST = "kptr_dest"            # ARG_KPTR_XCHG_DEST: a map value's referenced kptr field
KPTR_NEW = "kptr_new"              # ARG_PTR_TO_BTF_ID_OR_NULL | OBJ_RELEASE, of its type
TIMER = "timer"                    # ARG_PTR_TO_TIMER: a map value's bpf_timer

# return types (enum bpf_return_type)
INTEGER, VOID, MAP_VALUE_OR_NULL, RINGBUF_MEM_OR_NULL = "int", "void", "map_value", "mem"
DYNPTR_MEM_OR_NULL = "dynptr_mem"
TRUSTED_TASK = "trusted_task"      # RET_PTR_TO_BTF_ID_TRUSTED of struct task_struct
BTF_PT_REGS = "btf_pt_regs"        # RET_PTR_TO_BTF_ID of struct pt_regs
# RET_PTR_TO_MEM_OR_BTF_ID | MEM_RDONLY (| PTR_MAYBE_NULL): by the per-CPU argument's type
PERCPU_MEM_OR_BTF_ID, PERCPU_MEM_OR_BTF_ID_OR_NULL = "percpu_mem", "percpu_mem_or_null"
KPTR_OR_NULL = "kptr_or_null"      # RET_PTR_TO_BTF_ID_OR_NULL of bpf_kptr_xchg's field type


@dataclass(frozen=True)
class Proto:
    name: str
    ret: str
    args: tuple
    changes_pkt_data: bool = False
    map_types: tuple = ()      # map types the map argument may be (empty: any that
                               # check_map_func_compatibility lets through)


_T = isa.MapType


_QUEUES = (_T.BPF_MAP_TYPE_QUEUE, _T.BPF_MAP_TYPE_STACK)
_BLOOM = (_T.BPF_MAP_TYPE_BLOOM_FILTER,)
_SK_STORAGE = (_T.BPF_MAP_TYPE_SK_STORAGE,)
_CGROUP_ARRAY = (_T.BPF_MAP_TYPE_CGROUP_ARRAY,)
_TASK_STORAGE = (_T.BPF_MAP_TYPE_TASK_STORAGE,)
_CGRP_STORAGE = (_T.BPF_MAP_TYPE_CGRP_STORAGE,)


def _p(name, ret, *args, pkt=False, maps=()):
    return isa.HELPER_IDS[name], Proto(f"bpf_{name}", ret, args, pkt, maps)


PROTOS: dict[int, Proto] = dict([
    _p("loop", INTEGER, ANYTHING, FUNC, STACK_OR_NULL, ANYTHING),
    _p("user_ringbuf_drain", INTEGER, MAP, FUNC, STACK_OR_NULL, ANYTHING,
       maps=(_T.BPF_MAP_TYPE_USER_RINGBUF,)),
    _p("for_each_map_elem", INTEGER, MAP, FUNC, STACK_OR_NULL, ANYTHING),
    _p("map_lookup_elem", MAP_VALUE_OR_NULL, MAP, KEY),
    _p("map_update_elem", INTEGER, MAP, KEY, VALUE, ANYTHING),
    _p("map_delete_elem", INTEGER, MAP, KEY),
    _p("ktime_get_ns", INTEGER),
    _p("ktime_get_boot_ns", INTEGER),
    _p("ktime_get_coarse_ns", INTEGER),
    _p("ktime_get_tai_ns", INTEGER),
    _p("jiffies64", INTEGER),
    _p("get_numa_node_id", INTEGER),
    _p("strtol", INTEGER, MEM, SIZE, ANYTHING, U64_OUT),
    _p("strtoul", INTEGER, MEM, SIZE, ANYTHING, U64_OUT),
    _p("strncmp", INTEGER, MEM, SIZE, CONST_STR),
    _p("snprintf", INTEGER, WRITE_MEM_OR_NULL, SIZE_OR_ZERO, CONST_STR, MEM_OR_NULL,
       SIZE_OR_ZERO),
    _p("trace_vprintk", INTEGER, MEM, SIZE, MEM_OR_NULL, SIZE_OR_ZERO),
    _p("trace_printk", INTEGER, MEM, SIZE),
    _p("get_prandom_u32", INTEGER),
    _p("spin_lock", VOID, SPIN_LOCK),
    _p("kptr_xchg", KPTR_OR_NULL, KPTR_DEST, KPTR_NEW),
    _p("spin_unlock", VOID, SPIN_LOCK),
    _p("timer_init", INTEGER, TIMER, MAP, ANYTHING),
    _p("timer_set_callback", INTEGER, TIMER, FUNC),
    _p("timer_start", INTEGER, TIMER, ANYTHING, ANYTHING),
    _p("timer_cancel", INTEGER, TIMER),
    _p("dynptr_from_mem", INTEGER, UNINIT_MEM, SIZE_OR_ZERO, ANYTHING, LOCAL_DYNPTR_OUT),
    _p("ringbuf_reserve_dynptr", INTEGER, MAP, ANYTHING, ANYTHING, RINGBUF_DYNPTR_OUT,
       maps=(_T.BPF_MAP_TYPE_RINGBUF,)),
    _p("ringbuf_submit_dynptr", VOID, RINGBUF_DYNPTR_RELEASE, ANYTHING),
    _p("ringbuf_discard_dynptr", VOID, RINGBUF_DYNPTR_RELEASE, ANYTHING),
    _p("dynptr_read", INTEGER, UNINIT_MEM, SIZE_OR_ZERO, DYNPTR, ANYTHING, ANYTHING),
    # an skb dynptr's write changes packet data (check_helper_call: only an skb one's)
    _p("dynptr_write", INTEGER, DYNPTR, ANYTHING, MEM, SIZE_OR_ZERO, ANYTHING, pkt=True),
    _p("dynptr_data", DYNPTR_MEM_OR_NULL, DYNPTR, ANYTHING, ALLOC_SIZE_OR_ZERO),
    _p("get_smp_processor_id", INTEGER),
    _p("skb_store_bytes", INTEGER, CTX, ANYTHING, MEM, SIZE, ANYTHING, pkt=True),
    _p("l3_csum_replace", INTEGER, CTX, ANYTHING, ANYTHING, ANYTHING, ANYTHING, pkt=True),
    _p("l4_csum_replace", INTEGER, CTX, ANYTHING, ANYTHING, ANYTHING, ANYTHING, pkt=True),
    _p("tail_call", VOID, CTX, MAP, ANYTHING, maps=(_T.BPF_MAP_TYPE_PROG_ARRAY,)),
    _p("clone_redirect", INTEGER, CTX, ANYTHING, ANYTHING, pkt=True),
    _p("get_current_pid_tgid", INTEGER),
    _p("get_current_uid_gid", INTEGER),
    _p("get_current_comm", INTEGER, UNINIT_MEM, SIZE),
    _p("get_cgroup_classid", INTEGER, CTX),
    _p("skb_vlan_push", INTEGER, CTX, ANYTHING, ANYTHING, pkt=True),
    _p("skb_vlan_pop", INTEGER, CTX, pkt=True),
    _p("skb_get_tunnel_key", INTEGER, CTX, UNINIT_MEM, SIZE, ANYTHING),
    _p("skb_set_tunnel_key", INTEGER, CTX, MEM, SIZE, ANYTHING),
    _p("perf_event_read", INTEGER, MAP, ANYTHING, maps=(_T.BPF_MAP_TYPE_PERF_EVENT_ARRAY,)),
    _p("redirect", INTEGER, ANYTHING, ANYTHING),
    _p("get_route_realm", INTEGER, CTX),
    _p("perf_event_output", INTEGER, CTX, MAP, ANYTHING, MEM, SIZE_OR_ZERO,
       maps=(_T.BPF_MAP_TYPE_PERF_EVENT_ARRAY,)),
    _p("skb_load_bytes", INTEGER, CTX, ANYTHING, UNINIT_MEM, SIZE),
    _p("get_stackid", INTEGER, CTX, MAP, ANYTHING, maps=(_T.BPF_MAP_TYPE_STACK_TRACE,)),
    _p("csum_diff", INTEGER, MEM_OR_NULL, SIZE_OR_ZERO, MEM_OR_NULL, SIZE_OR_ZERO, ANYTHING),
    _p("skb_get_tunnel_opt", INTEGER, CTX, UNINIT_MEM, SIZE),
    _p("skb_set_tunnel_opt", INTEGER, CTX, MEM, SIZE),
    _p("skb_change_proto", INTEGER, CTX, ANYTHING, ANYTHING, pkt=True),
    _p("skb_change_type", INTEGER, CTX, ANYTHING),
    _p("get_hash_recalc", INTEGER, CTX),
    _p("skb_change_tail", INTEGER, CTX, ANYTHING, ANYTHING, pkt=True),
    _p("skb_pull_data", INTEGER, CTX, ANYTHING, pkt=True),
    _p("csum_update", INTEGER, CTX, ANYTHING),
    _p("set_hash_invalid", INTEGER, CTX),
    _p("skb_change_head", INTEGER, CTX, ANYTHING, ANYTHING, pkt=True),
    _p("set_hash", INTEGER, CTX, ANYTHING),
    _p("skb_adjust_room", INTEGER, CTX, ANYTHING, ANYTHING, ANYTHING, pkt=True),
    _p("get_socket_cookie", INTEGER, CTX),
    _p("get_socket_uid", INTEGER, CTX),
    _p("skb_cgroup_id", INTEGER, CTX),
    _p("skb_ancestor_cgroup_id", INTEGER, CTX, ANYTHING),
    _p("skb_ecn_set_ce", INTEGER, CTX),
    _p("get_netns_cookie", INTEGER, CTX_OR_NULL),
    _p("csum_level", INTEGER, CTX, ANYTHING),
    _p("skb_cgroup_classid", INTEGER, CTX),
    _p("check_mtu", INTEGER, CTX, ANYTHING, U32_INOUT, ANYTHING, ANYTHING),
    _p("skb_get_xfrm_state", INTEGER, CTX, ANYTHING, UNINIT_MEM, SIZE, ANYTHING),
    _p("skb_load_bytes_relative", INTEGER, CTX, ANYTHING, UNINIT_MEM, SIZE, ANYTHING),
    _p("skb_set_tstamp", INTEGER, CTX, ANYTHING, ANYTHING),
    _p("get_current_cgroup_id", INTEGER),
    _p("get_current_ancestor_cgroup_id", INTEGER, ANYTHING),
    _p("ringbuf_output", INTEGER, MAP, MEM, SIZE_OR_ZERO, ANYTHING,
       maps=(_T.BPF_MAP_TYPE_RINGBUF,)),
    _p("ringbuf_reserve", RINGBUF_MEM_OR_NULL, MAP, ALLOC_SIZE_OR_ZERO, ANYTHING,
       maps=(_T.BPF_MAP_TYPE_RINGBUF,)),
    _p("ringbuf_submit", VOID, RINGBUF_MEM, ANYTHING),
    _p("ringbuf_discard", VOID, RINGBUF_MEM, ANYTHING),
    _p("ringbuf_query", INTEGER, MAP, ANYTHING, maps=(_T.BPF_MAP_TYPE_RINGBUF,)),
    _p("map_push_elem", INTEGER, MAP, VALUE, ANYTHING, maps=_QUEUES + _BLOOM),
    _p("map_pop_elem", INTEGER, MAP, UNINIT_VALUE, maps=_QUEUES),
    _p("map_peek_elem", INTEGER, MAP, UNINIT_VALUE, maps=_QUEUES + _BLOOM),
    _p("fib_lookup", INTEGER, CTX, WRITE_MEM, SIZE, ANYTHING),
    _p("redirect_neigh", INTEGER, ANYTHING, MEM_OR_NULL, SIZE_OR_ZERO, ANYTHING),
    _p("redirect_peer", INTEGER, ANYTHING, ANYTHING),
    _p("sk_lookup_tcp", SOCKET_ACQUIRED, CTX, MEM, SIZE, ANYTHING, ANYTHING),
    _p("sk_lookup_udp", SOCKET_ACQUIRED, CTX, MEM, SIZE, ANYTHING, ANYTHING),
    _p("skc_lookup_tcp", SOCK_COMMON_ACQUIRED, CTX, MEM, SIZE, ANYTHING, ANYTHING),
    _p("sk_release", INTEGER, SOCK_RELEASE),
    _p("sk_fullsock", SOCKET_CAST, SOCK_COMMON),
    _p("tcp_sock", TCP_SOCK_CAST, SOCK_COMMON),
    _p("get_listener_sock", LISTENER, SOCK_COMMON),
    _p("sk_assign", INTEGER, CTX, BTF_SOCK_COMMON, ANYTHING),
    *(_p(f"skc_to_{name}", f"btf_{name}", BTF_SOCK_COMMON)
      for name in ("tcp_sock", "tcp6_sock", "tcp_timewait_sock", "tcp_request_sock",
                   "udp6_sock", "unix_sock", "mptcp_sock")),
    _p("sk_storage_get", MAP_VALUE_OR_NULL, MAP, BTF_SOCK_COMMON, VALUE_OR_NULL, ANYTHING,
       maps=_SK_STORAGE),
    _p("sk_storage_delete", INTEGER, MAP, BTF_SOCK_COMMON, maps=_SK_STORAGE),
    _p("skb_under_cgroup", INTEGER, CTX, MAP, ANYTHING, maps=_CGROUP_ARRAY),
    _p("tcp_check_syncookie", INTEGER, BTF_SOCK_COMMON, MEM, SIZE, MEM, SIZE),
    _p("tcp_gen_syncookie", INTEGER, BTF_SOCK_COMMON, MEM, SIZE, MEM, SIZE),
    _p("tcp_raw_gen_syncookie_ipv4", INTEGER, IPHDR, MEM, SIZE_OR_ZERO),
    _p("tcp_raw_gen_syncookie_ipv6", INTEGER, IPV6HDR, MEM, SIZE_OR_ZERO),
    _p("tcp_raw_check_syncookie_ipv4", INTEGER, IPHDR, TCPHDR),
    _p("tcp_raw_check_syncookie_ipv6", INTEGER, IPV6HDR, TCPHDR),
    # tracing (kernel/trace/bpf_trace.c)
    _p("probe_read", INTEGER, UNINIT_MEM, SIZE_OR_ZERO, ANYTHING),
    _p("probe_read_str", INTEGER, UNINIT_MEM, SIZE_OR_ZERO, ANYTHING),
    _p("probe_read_user", INTEGER, UNINIT_MEM, SIZE_OR_ZERO, ANYTHING),
    _p("probe_read_kernel", INTEGER, UNINIT_MEM, SIZE_OR_ZERO, ANYTHING),
    _p("probe_read_user_str", INTEGER, UNINIT_MEM, SIZE_OR_ZERO, ANYTHING),
    _p("probe_read_kernel_str", INTEGER, UNINIT_MEM, SIZE_OR_ZERO, ANYTHING),
    _p("get_current_task", INTEGER),
    _p("get_stack", INTEGER, CTX, UNINIT_MEM, SIZE_OR_ZERO, ANYTHING),
    _p("get_func_ip", INTEGER, CTX),
    _p("get_attach_cookie", INTEGER, CTX),
    _p("perf_event_read_value", INTEGER, MAP, ANYTHING, UNINIT_MEM, SIZE,
       maps=(_T.BPF_MAP_TYPE_PERF_EVENT_ARRAY,)),
    _p("get_current_task_btf", TRUSTED_TASK),
    _p("per_cpu_ptr", PERCPU_MEM_OR_BTF_ID_OR_NULL, PERCPU_BTF, ANYTHING),
    _p("this_cpu_ptr", PERCPU_MEM_OR_BTF_ID, PERCPU_BTF),
    _p("get_task_stack", INTEGER, BTF_TASK, UNINIT_MEM, SIZE_OR_ZERO, ANYTHING),
    _p("find_vma", INTEGER, BTF_TASK, ANYTHING, FUNC, STACK_OR_NULL, ANYTHING),
    _p("task_pt_regs", BTF_PT_REGS, BTF_TASK),
    _p("get_ns_current_pid_tgid", INTEGER, ANYTHING, ANYTHING, UNINIT_MEM, SIZE),
    _p("current_task_under_cgroup", INTEGER, MAP, ANYTHING, maps=_CGROUP_ARRAY),
    # local storage of tasks and cgroups (kernel/bpf/bpf_task_storage.c, bpf_cgrp_storage.c)
    _p("task_storage_get", MAP_VALUE_OR_NULL, MAP, BTF_TASK_OR_NULL, VALUE_OR_NULL,
       ANYTHING, maps=_TASK_STORAGE),
    _p("task_storage_delete", INTEGER, MAP, BTF_TASK_OR_NULL, maps=_TASK_STORAGE),
    _p("cgrp_storage_get", MAP_VALUE_OR_NULL, MAP, BTF_CGROUP_OR_NULL, VALUE_OR_NULL,
       ANYTHING, maps=_CGRP_STORAGE),
    _p("cgrp_storage_delete", INTEGER, MAP, BTF_CGROUP_OR_NULL, maps=_CGRP_STORAGE),
    _p("snprintf_btf", INTEGER, WRITE_MEM, SIZE, MEM, SIZE, ANYTHING),
    _p("get_branch_snapshot", INTEGER, UNINIT_MEM, SIZE_OR_ZERO, ANYTHING),
    # refused before their arguments are read (MIGHT_SLEEP); their kernel prototypes
    _p("copy_from_user", INTEGER, UNINIT_MEM, SIZE_OR_ZERO, ANYTHING),
    _p("copy_from_user_task", INTEGER, UNINIT_MEM, SIZE_OR_ZERO, ANYTHING, BTF_TASK, ANYTHING),
    _p("send_signal", INTEGER, ANYTHING),
    _p("send_signal_thread", INTEGER, ANYTHING),
    _p("map_lookup_percpu_elem", MAP_VALUE_OR_NULL, MAP, KEY, ANYTHING,
       maps=(_T.BPF_MAP_TYPE_PERCPU_HASH, _T.BPF_MAP_TYPE_PERCPU_ARRAY,
             _T.BPF_MAP_TYPE_LRU_PERCPU_HASH)),
])

# Helpers whose proto has might_sleep: check_helper_call refuses them on a path that may
# not sleep, before it looks at their arguments (pyebpf loads no program sleepable: only
# a bpf_wq callback's path may sleep, timers.in_sleepable).
MIGHT_SLEEP = frozenset(isa.HELPER_IDS[n] for n in ("copy_from_user", "copy_from_user_task"))
# the helpers whose prototype has .pkt_access = true: the only ones a packet pointer may
# be passed to (check_func_arg, may_access_direct_pkt_data)
PKT_ACCESS = frozenset(isa.HELPER_IDS[n] for n in (
    "map_lookup_elem", "map_update_elem", "map_delete_elem", "map_push_elem",
    "map_lookup_percpu_elem", "csum_diff", "sk_lookup_tcp", "sk_lookup_udp", "skc_lookup_tcp",
    "tcp_check_syncookie", "tcp_gen_syncookie", "tcp_raw_gen_syncookie_ipv4",
    "tcp_raw_gen_syncookie_ipv6", "tcp_raw_check_syncookie_ipv4",
    "tcp_raw_check_syncookie_ipv6", "sock_map_update", "sock_hash_update"))

# Socket maps (check_map_func_compatibility): the helpers that take them, and
# map_update_elem and map_delete_elem in the program types may_update_sockmap allows.
SOCK_MAPS = (_T.BPF_MAP_TYPE_SOCKMAP, _T.BPF_MAP_TYPE_SOCKHASH)
SOCK_MAP_CHANGES = ("map_update_elem", "map_delete_elem")
SOCK_MAP_UPDATERS = (isa.ProgType.BPF_PROG_TYPE_SOCKET_FILTER,
                     isa.ProgType.BPF_PROG_TYPE_SCHED_CLS, isa.ProgType.BPF_PROG_TYPE_SCHED_ACT)

# Map types that only their own helpers may take (check_map_func_compatibility).
DEDICATED_MAPS = {
    _T.BPF_MAP_TYPE_PROG_ARRAY: ("tail_call",),
    _T.BPF_MAP_TYPE_PERF_EVENT_ARRAY: ("perf_event_read", "perf_event_output",
                                       "perf_event_read_value"),
    _T.BPF_MAP_TYPE_RINGBUF: ("ringbuf_output", "ringbuf_reserve", "ringbuf_query",
                              "ringbuf_reserve_dynptr"),
    _T.BPF_MAP_TYPE_USER_RINGBUF: ("user_ringbuf_drain",),
    _T.BPF_MAP_TYPE_STACK_TRACE: ("get_stackid",),
    _T.BPF_MAP_TYPE_QUEUE: ("map_push_elem", "map_pop_elem", "map_peek_elem"),
    _T.BPF_MAP_TYPE_STACK: ("map_push_elem", "map_pop_elem", "map_peek_elem"),
    _T.BPF_MAP_TYPE_BLOOM_FILTER: ("map_push_elem", "map_peek_elem"),
    _T.BPF_MAP_TYPE_SK_STORAGE: ("sk_storage_get", "sk_storage_delete"),
    _T.BPF_MAP_TYPE_CGROUP_ARRAY: ("skb_under_cgroup", "current_task_under_cgroup"),
    _T.BPF_MAP_TYPE_TASK_STORAGE: ("task_storage_get", "task_storage_delete"),
    _T.BPF_MAP_TYPE_CGRP_STORAGE: ("cgrp_storage_get", "cgrp_storage_delete"),
    _T.BPF_MAP_TYPE_INODE_STORAGE: ("inode_storage_get", "inode_storage_delete"),
    _T.BPF_MAP_TYPE_SOCKMAP: ("sk_redirect_map", "sock_map_update", "msg_redirect_map",
                              "sk_select_reuseport", "map_lookup_elem"),
    _T.BPF_MAP_TYPE_SOCKHASH: ("sk_redirect_hash", "sock_hash_update", "msg_redirect_hash",
                               "sk_select_reuseport", "map_lookup_elem"),
    _T.BPF_MAP_TYPE_DEVMAP: ("redirect_map", "map_lookup_elem"),
    _T.BPF_MAP_TYPE_DEVMAP_HASH: ("redirect_map", "map_lookup_elem"),
    _T.BPF_MAP_TYPE_CPUMAP: ("redirect_map",),
    _T.BPF_MAP_TYPE_XSKMAP: ("redirect_map", "map_lookup_elem"),
    _T.BPF_MAP_TYPE_CGROUP_STORAGE: ("get_local_storage",),
    _T.BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE: ("get_local_storage",),
    _T.BPF_MAP_TYPE_REUSEPORT_SOCKARRAY: ("sk_select_reuseport",),
}
