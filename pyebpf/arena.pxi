# BPF arenas (BPF_MAP_TYPE_ARENA), as kernel/bpf/arena.c of 6.18 has them (source-read:
# this machine's kernel refuses to create one, docs/reference.md).  Included into
# pyebpf/_core.pyx after maps.pxi.
#
# An arena is up to 4 GiB of pages shared by programs and user space.  Its pages are one
# host mapping (MAP_NORESERVE: nothing is resident until touched) at user_vm_start, which
# is map_extra when that address is free, else chosen as arena_get_unmapped_area
# chooses: the range does not cross a 4 GiB boundary, so the low 32 bits of an address
# name its page.  The mapping is made at creation, where libbpf mmaps an arena as soon
# as it creates it; user space reaches it through Map.mmap.
#
# A page is allocated once user space touches it (arena_vm_fault gives it a zeroed page;
# with BPF_F_SEGV_ON_FAULT the mapping is PROT_NONE and the touch is SIGSEGV, as there).
# The engine finds that out with mincore(2), which counts a page touched by a read or a
# write (the host maps the zero page, or a page, into the range); huge pages are off for
# the mapping so one touch allocates one page.  A page once found allocated stays so:
# 6.18's tc and socket programs cannot free pages (the kfuncs are KF_SLEEPABLE).
#
# A program reaches the arena through PTR_TO_ARENA registers, whose loads and stores the
# kernel turns into BPF_PROBE_MEM32 (kern_vm_start + low 32 bits of the address): the
# interpreter's memory check finds no region for such an address and asks arena_mem,
# which gives the page's host bytes, or for a page not allocated a zero buffer to load
# from and a sink to store to (the JIT's exception table, ex_handler_bpf: the load's
# register is zeroed, the store dropped); a fault never ends the run.

cdef extern from *:
    """
    #include <stdint.h>
    #include <sys/mman.h>

    /* The arena's pages: at want (map_extra) when that range is free, else at an
       address whose range keeps its high 32 bits (arena_get_unmapped_area: twice the
       length is reserved, the start rounded up to 4 GiB if the range would cross one,
       the rest given back).  NULL when the host has no such room. */
    static unsigned char *pyebpf_arena_map(uint64_t want, size_t len, int segv) {
        int prot = segv ? PROT_NONE : PROT_READ | PROT_WRITE;
        int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
        unsigned char *p, *start, *end;
        if (want) {
            p = mmap((void *)(uintptr_t)want, len, prot, flags | MAP_FIXED_NOREPLACE, -1, 0);
            if (p != MAP_FAILED && (uintptr_t)p == want)
                goto out;
            if (p != MAP_FAILED)
                munmap(p, len);
        }
        p = mmap(NULL, 2 * len, prot, flags, -1, 0);
        if (p == MAP_FAILED)
            return NULL;
        start = p;
        if (((uintptr_t)p >> 32) != (((uintptr_t)p + len - 1) >> 32))
            start = (unsigned char *)(((uintptr_t)p + 0xffffffffULL) & ~0xffffffffULL);
        end = p + 2 * len;
        if (start > p)
            munmap(p, (size_t)(start - p));
        if (end > start + len)
            munmap(start + len, (size_t)(end - (start + len)));
        p = start;
    out:
        madvise(p, len, MADV_NOHUGEPAGE);
        return p;
    }

    /* Whether the host has a page in the arena's range at p: user space touched it. */
    static int pyebpf_page_resident(unsigned char *p) {
        unsigned char v = 0;
        return mincore(p, 1, &v) == 0 && (v & 1);
    }
    """
    uint8_t* pyebpf_arena_map(uint64_t want, size_t len, int segv) nogil
    int pyebpf_page_resident(uint8_t* p) nogil
    int munmap(void* addr, size_t len) nogil
    int mincore(void* addr, size_t len, unsigned char* vec) nogil


cdef Arena* arena_new(uint32_t npages, uint64_t map_extra, bint segv) except NULL:
    """The pages of a new arena (its checks are _check_create's)."""
    cdef Arena* a = <Arena*>calloc(1, sizeof(Arena))
    if a == NULL:
        raise MemoryError()
    a.npages = npages
    a.present = <uint8_t*>calloc(npages, 1)
    a.base = pyebpf_arena_map(map_extra, <size_t>npages * PAGE_SIZE, segv)
    if a.present == NULL or a.base == NULL:
        arena_release(a)
        raise MemoryError()
    a.user_vm_start = <uintptr_t>a.base if not map_extra else map_extra
    return a


cdef void arena_release(Arena* a) noexcept nogil:
    if a == NULL:
        return
    if a.base != NULL:
        munmap(a.base, <size_t>a.npages * PAGE_SIZE)
    free(a.present)
    free(a)


cdef inline bint arena_page(Arena* a, uint32_t page) noexcept nogil:
    """Whether ``page`` is allocated: found so before, or touched by user space since."""
    if a.present[page]:
        return True
    if pyebpf_page_resident(a.base + <size_t>page * PAGE_SIZE):
        a.present[page] = 1
        return True
    return False


cdef int arena_sync(Arena* a) except -1:
    """Find every page user space has touched allocated (one mincore(2) over the
    range)."""
    cdef uint32_t i
    cdef unsigned char* vec = <unsigned char*>malloc(a.npages)
    if vec == NULL:
        raise MemoryError()
    try:
        if mincore(a.base, <size_t>a.npages * PAGE_SIZE, vec) == 0:
            for i in range(a.npages):
                if vec[i] & 1:
                    a.present[i] = 1
    finally:
        free(vec)
    return 0


cdef uint8_t* arena_mem(Arena* a, uint64_t addr, uint32_t size, bint write,
                       bint strict) noexcept nogil:
    """The host bytes of an arena access (BPF_PROBE_MEM32: only the low 32 bits of the
    address count): the page's, or for a page not allocated the zero buffer or the
    sink; so too past the arena's pages (the kernel's 4 GiB area and its guards, all
    under the exception table), unless ``strict``: then NULL there.  NULL for an
    access of more than 8 bytes (a helper's memory, never an arena's)."""
    cdef uint32_t off = <uint32_t>addr - <uint32_t>a.user_vm_start
    cdef uint64_t last = (<uint64_t>off + size - 1) // PAGE_SIZE
    if size > 8:
        return NULL
    if last < a.npages:
        if arena_page(a, off // PAGE_SIZE) and arena_page(a, <uint32_t>last):
            return a.base + off
    elif strict:
        return NULL
    if write:
        memset(a.sink, 0, sizeof(a.sink))       # an atomic's fetch reads 0
        return a.sink
    return a.zero


cdef uint8_t* vm_arena_mem(Vm* vm, uint64_t addr, uint32_t size, bint write) noexcept nogil:
    """arena_mem of the running program's arena, or NULL: it has none, or the address
    is its context's (ctx_load's, which follows a failed region check).  In a program
    with an arena every other access no region holds is the arena's (the verifier
    proved the rest in their regions), but a tracing program's BTF pointer loads
    (probe_loads), which only the arena's pages take."""
    cdef int k
    if addr - vm.ctx < CTX_SIZE:
        return NULL
    for k in range(vm.nmaps):
        if vm.maps[k].arena != NULL:
            # the verifier allows one arena per program (check_map_prog_compatibility)
            return arena_mem(vm.maps[k].arena, addr, size, write, vm.prog.probe_loads)
    return NULL
