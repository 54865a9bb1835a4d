# A map's stores (values, keys, buckets, chains, LRU lists, timers...) are memory of
# their own, as the kernel's are (bpf_map_area_alloc: vmalloc past a few pages): a big
# store is an anonymous mapping, MAP_NORESERVE, whose pages are zero and cost nothing
# until an element is written, and which munmap gives back whole when the map goes.
# Small stores come from calloc.  Nothing here touches the process's allocator:
# glibc's own mmap threshold is left as the user's process has it.  Included into
# pyebpf/_core.pyx before maps.pxi.

cdef extern from *:
    """
    #include <errno.h>
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

    /* A store of whole pages, page-aligned (an mmapable array's values, which a file
       mapping may later replace in place: pyebpf_store_share).  Its block starts a page
       before it; the word after the length says how far back. */
    static void *pyebpf_store_alloc_pages(size_t len) {
        size_t page = (size_t)sysconf(_SC_PAGESIZE), total;
        unsigned char *p;
        if (len > SIZE_MAX - 2 * page)
            return NULL;
        total = page + ((len + page - 1) & ~(page - 1));
        p = mmap(NULL, total, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED)
            return NULL;
        p += page;
        ((size_t *)(p - PYEBPF_STORE_HEAD))[0] = total;
        ((size_t *)(p - PYEBPF_STORE_HEAD))[1] = page;
        return p;
    }

    /* The pages of a store made by pyebpf_store_alloc_pages become the file's, from
       offset off, shared (MAP_FIXED over the same addresses, so pointers into the store
       stay good): 0, or the errno. */
    static int pyebpf_store_share(void *store, size_t len, int fd, long off) {
        if (mmap(store, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd,
                 (off_t)off) == MAP_FAILED)
            return errno;
        return 0;
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
        /* not a page store's: its pages may be a file's, which MADV_DONTNEED would
           read back */
        if (*(size_t *)(p - PYEBPF_STORE_HEAD)
                && ((size_t *)(p - PYEBPF_STORE_HEAD))[1] == 0 && end > start
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
        if (((size_t *)p)[1])
            munmap((unsigned char *)store - ((size_t *)p)[1], total);
        else if (total)
            munmap(p, total);
        else
            free(p);
    }
    """
    void* pyebpf_store_alloc(size_t n, size_t size) nogil
    void pyebpf_store_free(void* store) nogil
    void pyebpf_store_zero(void* store, size_t len) nogil
    void* pyebpf_store_alloc_pages(size_t len) nogil
    int pyebpf_store_share(void* store, size_t len, int fd, long off) nogil


cdef void* store_zalloc(size_t n, size_t size) except NULL:
    """``n * size`` zero bytes of a map's own, freed by store_free."""
    cdef void* p = pyebpf_store_alloc(n, size)
    if p == NULL:
        raise MemoryError()
    return p


cdef void* store_zalloc_pages(size_t length) except NULL:
    """``length`` zero bytes of a map's own, page-aligned and to the end of the last
    page (an mmapable array's values: store_share), freed by store_free."""
    cdef void* p = pyebpf_store_alloc_pages(length)
    if p == NULL:
        raise MemoryError()
    return p


cdef int store_share(void* store, size_t length, int fd, long offset) noexcept nogil:
    """The pages of a store_zalloc_pages store become the file ``fd``'s from ``offset``,
    a shared mapping at the same addresses: 0, or the errno."""
    return pyebpf_store_share(store, length, fd, offset)


cdef inline void store_zero(void* store, size_t len) noexcept nogil:
    """The first ``len`` bytes of a store (store_zalloc) zero, a big store's pages
    no longer resident."""
    pyebpf_store_zero(store, len)


cdef inline void store_free(void* store) noexcept nogil:
    pyebpf_store_free(store)
