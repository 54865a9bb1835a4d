# The kernel's helpers for skb program types, in C.  Included into pyebpf/_core.pyx.
#
# Every helper has the interpreter's signature (vm, r1..r5) -> r0.  Conventions:
# - errors the kernel returns are negative errno values (isa.Errno): return err(EINVAL);
# - a pointer argument is checked with _mem() like a program access (a NULL result
#   leaves the memory fault in vm.status and the helper returns 0);
# - an argument the kernel's verifier would have refused (r1 not the context) is a
#   helper fault: return helper_fault(vm, b"why");
# - after moving or resizing packet bytes, call skb_sync(vm) so the packet region
#   follows (the kernel's verifier makes programs reload data/data_end then).
# Each group file registers its helpers in SKB_HELPERS by id; Program takes from there
# the ids its type may call (verifier/rules.py).

cdef helper_fn SKB_HELPERS[HELPER_SLOTS]


cdef inline uint64_t err(int errno_) noexcept nogil:
    return <uint64_t>(-<int64_t>errno_)


cdef uint64_t helper_fault(Vm* vm, const char* why) noexcept nogil:
    vm.status = STATUS_HELPER_FAULT
    vm.fault_msg = why
    return 0


cdef inline bint is_ctx(Vm* vm, uint64_t r1) noexcept nogil:
    """True when r1 is the context; otherwise records a helper fault."""
    if r1 == vm.ctx:
        return True
    helper_fault(vm, b"the first argument must be the context (r1 at entry)")
    return False




include "helpers_misc.pxi"
include "helpers_strings.pxi"
include "helpers_vlan.pxi"
include "helpers_tunnel.pxi"
include "helpers_shape.pxi"
include "helpers_data.pxi"
include "helpers_net.pxi"
include "helpers_fib.pxi"
include "helpers_sock.pxi"


cdef void register_skb_helpers() noexcept:
    memset(SKB_HELPERS, 0, sizeof(SKB_HELPERS))
    register_misc_helpers(SKB_HELPERS)
    register_string_helpers(SKB_HELPERS)
    register_vlan_helpers(SKB_HELPERS)
    register_tunnel_helpers(SKB_HELPERS)
    register_shape_helpers(SKB_HELPERS)
    register_data_helpers(SKB_HELPERS)
    register_net_helpers(SKB_HELPERS)
    register_fib_helpers(SKB_HELPERS)
    register_sock_helpers(SKB_HELPERS)
