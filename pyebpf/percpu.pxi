# Per-CPU variables (typed __ksym externs of the kernel's .data..percpu section) and the
# helpers that find one CPU's copy: bpf_per_cpu_ptr and bpf_this_cpu_ptr
# (kernel/bpf/helpers.c), which also take per-CPU objects (bpf_percpu_obj_new: their
# copies are side by side in the object arena, heap.pxi).  Included into
# pyebpf/_core.pyx.
#
# Addresses are pyebpf.ksym's model: a variable's lddw loads its place in the per-CPU
# section, and CPU n's copy is that place moved into CPU n's area.  The areas are kernel
# memory: what the run's Machine gives there (Machine(percpu=...)), zero elsewhere, read
# by the program's loads (probe loads of the machine's memory, trace/tracing.pxi) and by
# bpf_probe_read_kernel.

from . import ksym as _ksym
from .host import possible_cpus as _possible_cpus

cdef uint64_t PERCPU_SECTION_BASE = _ksym.PERCPU_SECTION_BASE
cdef uint64_t PERCPU_AREA_BASE = _ksym.PERCPU_AREA_BASE
cdef uint64_t PERCPU_UNIT = _ksym.PERCPU_UNIT
# nr_cpu_ids: the CPUs the kernel may bring up (cpu_possible_mask)
cdef uint32_t NR_CPU_IDS = _possible_cpus()
cdef enum:
    PERCPU_UNIT_BYTES = 0x40000
cdef uint8_t PERCPU_ZERO[PERCPU_UNIT_BYTES]     # what an area holds where nothing is given
assert PERCPU_UNIT == PERCPU_UNIT_BYTES, "pyebpf.ksym.PERCPU_UNIT changed: change percpu.pxi"


cdef inline uint64_t _percpu_ptr(uint64_t ptr, uint32_t cpu) noexcept nogil:
    # per_cpu_ptr: the section address plus the CPU's per_cpu_offset
    return ptr - PERCPU_SECTION_BASE + PERCPU_AREA_BASE + cpu * PERCPU_UNIT


cdef inline uint64_t _obj_copy(ObjHdr* h, uint64_t ptr, uint32_t cpu) noexcept nogil:
    # a per-CPU object's copy for ``cpu``, or NULL past its copies (the CPUs counted
    # when the programs were made: nr_cpu_ids, or the simulated machine's)
    if cpu >= h.copies:
        return 0
    return ptr + <uint64_t>cpu * h.size


cdef uint64_t bpf_per_cpu_ptr(Vm* vm, uint64_t ptr, uint64_t cpu, uint64_t c, uint64_t d,
                              uint64_t e) noexcept nogil:
    """``ptr``'s copy on CPU ``cpu`` (a u32), or NULL for a CPU past nr_cpu_ids."""
    cdef ObjHdr* h = percpu_obj(ptr)
    if h != NULL:
        return _obj_copy(h, ptr, <uint32_t>cpu)
    if <uint32_t>cpu >= NR_CPU_IDS:
        return 0
    return _percpu_ptr(ptr, <uint32_t>cpu)


cdef uint64_t bpf_this_cpu_ptr(Vm* vm, uint64_t ptr, uint64_t b, uint64_t c, uint64_t d,
                               uint64_t e) noexcept nogil:
    """``ptr``'s copy on the run's CPU."""
    cdef ObjHdr* h = percpu_obj(ptr)
    if h != NULL:
        return _obj_copy(h, ptr, vm.skb.cpu)
    return _percpu_ptr(ptr, vm.skb.cpu)


cdef inline bint percpu_area(uint64_t addr, uint64_t size) noexcept nogil:
    """Whether [addr, addr+size) lies in one CPU's per-CPU area (which reads zero where
    the machine gives nothing)."""
    cdef uint64_t off = addr - PERCPU_AREA_BASE
    return off < <uint64_t>NR_CPU_IDS * PERCPU_UNIT and \
        size <= PERCPU_UNIT - off % PERCPU_UNIT


cdef void register_percpu_helpers(helper_fn* table) noexcept:
    table[153] = bpf_per_cpu_ptr
    table[154] = bpf_this_cpu_ptr
