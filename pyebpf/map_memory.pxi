# A map's stores (values, keys, buckets, chains, LRU lists, timers...) are memory of
# their own, as the kernel's are (bpf_map_area_alloc: vmalloc past a few pages): a big
# store is an anonymous mapping, MAP_NORESERVE, whose pages are zero and cost nothing
# until an element is written, and which munmap gives back whole when the map goes.
# Small stores come from calloc.  Nothing here touches the process's allocator:
# glibc's own mmap threshold is left as the user's process has it.  Included into
# pyebpf/_core.pyx before maps.pxi.

cdef extern from *:
    """
    #include <stdint.h>
    #include <stdlib.h>
    #include <string.h>
    #include <unistd.h>
    #include <sys/mman.h>
    /* Each store starts one cache line past its block: the line holds the mapping's
       length (0 for a calloc'd block), so a store is freed knowing only its address. */
    #define PYEBPF_STORE_HEAD 64
    #define PYEBPF_STORE_MAPPED (128 * 1024)

    static void *pyebpf_store_alloc(size_t n, size_t size) {
        size_t total;
        unsigned char *p;
        if (size && n > (SIZE_MAX - PYEBPF_STORE_HEAD) / size)
            return NULL;
        total = n * size + PYEBPF_STORE_HEAD;
        if (total >= PYEBPF_STORE_MAPPED) {
            p = mmap(NULL, total, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
            if (p == MAP_FAILED)
                return NULL;
        } else {
            p = calloc(1, total);
            if (p == NULL)
                return NULL;
            total = 0;
        }
        *(size_t *)p = total;
        return p + PYEBPF_STORE_HEAD;
    }

    /* The first len bytes of a store zero again.  A mapped store's whole pages are
       given back (madvise MADV_DONTNEED: a private anonymous page reads as zero after
       it, and costs nothing until written), so emptying a big map leaves resident only
       what is written after; the rest, and a calloc'd store, are memset. */
    static void pyebpf_store_zero(void *store, size_t len) {
        unsigned char *p = store, *start, *end;
        size_t page = (size_t)sysconf(_SC_PAGESIZE);
        if (store == NULL || len == 0)
            return;
        start = (unsigned char *)(((uintptr_t)p + page - 1) & ~(uintptr_t)(page - 1));
        end = (unsigned char *)(((uintptr_t)p + len) & ~(uintptr_t)(page - 1));
        if (*(size_t *)(p - PYEBPF_STORE_HEAD) && end > start
                && madvise(start, (size_t)(end - start), MADV_DONTNEED) == 0) {
            memset(p, 0, (size_t)(start - p));
            memset(end, 0, (size_t)(p + len - end));
            return;
        }
        memset(p, 0, len);
    }

    static void pyebpf_store_free(void *store) {
        unsigned char *p;
        size_t total;
        if (store == NULL)
            return;
        p = (unsigned char *)store - PYEBPF_STORE_HEAD;
        total = *(size_t *)p;
        if (total)
            munmap(p, total);
        else
            free(p);
    }
    """
    void* pyebpf_store_alloc(size_t n, size_t size) nogil
    void pyebpf_store_free(void* store) nogil
    void pyebpf_store_zero(void* store, size_t len) nogil


cdef void* store_zalloc(size_t n, size_t size) except NULL:
    """``n * size`` zero bytes of a map's own, freed by store_free."""
    cdef void* p = pyebpf_store_alloc(n, size)
    if p == NULL:
        raise MemoryError()
    return p


cdef inline void store_zero(void* store, size_t len) noexcept nogil:
    """The first ``len`` bytes of a store (store_zalloc) zero, a big store's pages
    no longer resident."""
    pyebpf_store_zero(store, len)


cdef inline void store_free(void* store) noexcept nogil:
    pyebpf_store_free(store)
