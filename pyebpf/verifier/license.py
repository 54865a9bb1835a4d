"""The license rules of ``BPF_PROG_LOAD``: a program whose license string is not one of
the GPL-compatible ones (``license_is_gpl_compatible``, ``include/linux/license.h``,
compared exactly) may not call a helper whose prototype is ``gpl_only``
(``check_helper_call``) nor any kernel function (``add_kfunc_call``, before the
instructions are walked)."""
from __future__ import annotations

from .. import isa

GPL_COMPATIBLE = frozenset(("GPL", "GPL v2", "GPL and additional rights", "Dual BSD/GPL",
                            "Dual MIT/GPL", "Dual MPL/GPL"))

# the helpers whose prototype, as offered to socket filters, tc and kprobes on 6.18, has
# gpl_only set (kernel/trace/bpf_trace.c, net/core/filter.c, kernel/bpf/helpers.c);
# tests/test_verifier_license.py asks the kernel about every helper of every type
GPL_ONLY = frozenset(isa.HELPER_IDS[name] for name in (
    "probe_read", "trace_printk", "perf_event_read", "perf_event_output", "get_stackid",
    "get_current_task", "probe_read_str", "perf_event_read_value", "get_stack",
    "fib_lookup", "tcp_check_syncookie", "tcp_gen_syncookie", "probe_read_user",
    "probe_read_kernel", "probe_read_user_str", "probe_read_kernel_str",
    "get_current_task_btf", "check_mtu", "snprintf", "timer_init", "timer_set_callback",
    "timer_start", "timer_cancel", "get_func_ip", "task_pt_regs", "get_branch_snapshot",
    "trace_vprintk", "copy_from_user_task", "tcp_raw_gen_syncookie_ipv4",
    "tcp_raw_gen_syncookie_ipv6", "tcp_raw_check_syncookie_ipv4",
    "tcp_raw_check_syncookie_ipv6"))

HELPER_REFUSAL = "cannot call GPL-restricted function from non-GPL compatible program"
KFUNC_REFUSAL = "cannot call kernel function from non-GPL compatible program"


def gpl_compatible(license: str) -> bool:
    """Whether the kernel lets a program of this license call GPL-only functions."""
    return license in GPL_COMPATIBLE
