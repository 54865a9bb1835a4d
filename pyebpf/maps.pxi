# Maps: their storage in C, the map helpers, and the Python Map class.
# Included into pyebpf/_core.pyx.
#
# Storage is preallocated at creation, as the kernel's default (prealloc) maps are:
# element i of a map owns bytes [i * slot, (i + 1) * slot) of one value block, so a
# pointer returned by a lookup stays inside memory the map owns for the map's life
# (a deleted element's pointer still lands in that block, never in freed memory).
# Each map a program references is one region of its runs.
#
# Hash maps chain elements in buckets exactly as the kernel's htab does: bucket =
# jhash(key, seed) & (n_buckets - 1), n_buckets = roundup_pow_of_two(max_entries),
# newest element first; so with seed 0 (v4.6, or BPF_F_ZERO_SEED) iteration order is
# the kernel's (semantics.md §4.3).  pyebpf always uses seed 0: its order is
# deterministic, where a current kernel's differs per map unless BPF_F_ZERO_SEED is set.

cdef enum:
    MAP_HASH = 1
    MAP_ARRAY = 2
    MAP_PROG_ARRAY = 3
    MAP_PERCPU_HASH = 5
    MAP_PERCPU_ARRAY = 6
    NO_ELEM = -1

ctypedef struct MapStore:
    uint32_t type
    uint32_t key_size
    uint32_t value_size
    uint32_t max_entries
    uint32_t flags
    uint32_t stride           # value_size rounded up to 8, as per-CPU values are laid out
    uint32_t ncpu             # copies of each value: the CPU count for per-CPU maps, else 1
    uint8_t* values           # max_entries * ncpu * stride bytes
    size_t values_len
    uint8_t* keys             # hash maps: max_entries * key_size
    int32_t* next             # hash maps: next element in the bucket, or the free list
    int32_t* buckets          # hash maps: first element of each bucket
    uint32_t n_buckets
    int32_t free_head
    uint32_t count
    ProgCore** progs          # program arrays: the program in each slot, or NULL
    int owner_type            # program arrays: the type they serve, -1 before first use


cdef inline uint32_t _rol32(uint32_t x, int k) noexcept nogil:
    return (x << k) | (x >> (32 - k))


cdef uint32_t jhash(const uint8_t* k, uint32_t length, uint32_t initval) noexcept nogil:
    """The kernel's jhash (lookup3); equals jhash2 for keys that are whole words."""
    cdef uint32_t a, b, c
    cdef uint8_t tail[12]
    a = b = c = 0xdeadbeefU + length + initval
    while length > 12:
        a += _le32(k)
        b += _le32(k + 4)
        c += _le32(k + 8)
        a -= c; a ^= _rol32(c, 4); c += b
        b -= a; b ^= _rol32(a, 6); a += c
        c -= b; c ^= _rol32(b, 8); b += a
        a -= c; a ^= _rol32(c, 16); c += b
        b -= a; b ^= _rol32(a, 19); a += c
        c -= b; c ^= _rol32(b, 4); b += a
        length -= 12
        k += 12
    if length == 0:
        return c
    memset(tail, 0, 12)
    memcpy(tail, k, length)
    a += _le32(tail)
    b += _le32(tail + 4)
    c += _le32(tail + 8)
    c ^= b; c -= _rol32(b, 14)
    a ^= c; a -= _rol32(c, 11)
    b ^= a; b -= _rol32(a, 25)
    c ^= b; c -= _rol32(b, 16)
    a ^= c; a -= _rol32(c, 4)
    b ^= a; b -= _rol32(a, 14)
    c ^= b; c -= _rol32(b, 24)
    return c


cdef inline uint32_t _le32(const uint8_t* p) noexcept nogil:
    cdef uint32_t w
    memcpy(&w, p, 4)
    return w


cdef inline bint _is_hash(MapStore* m) noexcept nogil:
    return m.type == MAP_HASH or m.type == MAP_PERCPU_HASH


cdef inline uint8_t* _value(MapStore* m, int32_t elem, uint32_t cpu) noexcept nogil:
    return m.values + (<size_t>elem * m.ncpu + cpu) * m.stride


cdef int32_t _hash_find(MapStore* m, const uint8_t* key, int32_t* prev) noexcept nogil:
    cdef uint32_t bucket = jhash(key, m.key_size, 0) & (m.n_buckets - 1)
    cdef int32_t e = m.buckets[bucket]
    prev[0] = NO_ELEM
    while e != NO_ELEM:
        if memcmp(m.keys + <size_t>e * m.key_size, key, m.key_size) == 0:
            return e
        prev[0] = e
        e = m.next[e]
    return NO_ELEM


cdef int32_t map_find(MapStore* m, const uint8_t* key) noexcept nogil:
    """The element holding ``key``, or NO_ELEM (arrays: the index when in range)."""
    cdef uint32_t index
    cdef int32_t prev
    if _is_hash(m):
        return _hash_find(m, key, &prev)
    index = _le32(key)
    return <int32_t>index if index < m.max_entries else NO_ELEM


cdef void _hash_unlink(MapStore* m, int32_t e, int32_t prev) noexcept nogil:
    cdef uint32_t bucket
    if prev == NO_ELEM:
        bucket = jhash(m.keys + <size_t>e * m.key_size, m.key_size, 0) & (m.n_buckets - 1)
        m.buckets[bucket] = m.next[e]
    else:
        m.next[prev] = m.next[e]


cdef void _hash_link(MapStore* m, int32_t e) noexcept nogil:
    cdef uint32_t bucket = jhash(m.keys + <size_t>e * m.key_size, m.key_size, 0) & (m.n_buckets - 1)
    m.next[e] = m.buckets[bucket]
    m.buckets[bucket] = e


cdef int map_update(MapStore* m, const uint8_t* key, const uint8_t* value, uint64_t flags,
                    int64_t cpu) noexcept nogil:
    """Store ``value`` under ``key``; 0 or a negative errno, as the kernel's update.

    ``cpu`` >= 0 writes that CPU's copy of a per-CPU value (a program's update: a new
    element's other copies are zeroed); -1 writes every copy from ``value``, which then
    holds ncpu values of ``stride`` bytes (the syscall's layout).
    """
    cdef int32_t e, prev
    cdef uint32_t c
    if flags > BPF_EXIST_:
        return -EINVAL
    if not _is_hash(m):
        e = map_find(m, key)
        if e == NO_ELEM:
            return -E2BIG
        if flags == BPF_NOEXIST_:
            return -EEXIST
    else:
        e = _hash_find(m, key, &prev)
        if e == NO_ELEM:
            if flags == BPF_EXIST_:
                return -ENOENT
            if m.free_head == NO_ELEM:
                return -E2BIG
            e = m.free_head
            m.free_head = m.next[e]
            memcpy(m.keys + <size_t>e * m.key_size, key, m.key_size)
            memset(_value(m, e, 0), 0, <size_t>m.ncpu * m.stride)
            _hash_link(m, e)
            m.count += 1
        elif flags == BPF_NOEXIST_:
            return -EEXIST
        elif m.type == MAP_HASH:
            # a plain hash map replaces the element, which moves it to its bucket's head
            _hash_unlink(m, e, prev)
            _hash_link(m, e)
    if cpu >= 0:
        memcpy(_value(m, e, <uint32_t>cpu), value, m.value_size)
    else:
        for c in range(m.ncpu):
            memcpy(_value(m, e, c), value + <size_t>c * m.stride, m.value_size)
    return 0


cdef int map_delete(MapStore* m, const uint8_t* key) noexcept nogil:
    cdef int32_t e, prev
    if not _is_hash(m):
        return -EINVAL
    e = _hash_find(m, key, &prev)
    if e == NO_ELEM:
        return -ENOENT
    _hash_unlink(m, e, prev)
    m.next[e] = m.free_head
    m.free_head = e
    m.count -= 1
    return 0


cdef int map_next_key(MapStore* m, const uint8_t* key, uint8_t* out) noexcept nogil:
    """BPF_MAP_GET_NEXT_KEY: the key after ``key`` (NULL or missing: the first)."""
    cdef int32_t e = NO_ELEM, prev
    cdef uint32_t index, bucket
    if not _is_hash(m):
        index = 0 if key == NULL else _le32(key)
        index = 0 if key == NULL or index >= m.max_entries else index + 1
        if index >= m.max_entries:
            return -ENOENT
        memcpy(out, &index, 4)
        return 0
    if key != NULL:
        e = _hash_find(m, key, &prev)
    if e != NO_ELEM and m.next[e] != NO_ELEM:
        e = m.next[e]
    else:
        bucket = 0
        if e != NO_ELEM:
            bucket = (jhash(key, m.key_size, 0) & (m.n_buckets - 1)) + 1
        e = NO_ELEM
        while bucket < m.n_buckets and e == NO_ELEM:
            e = m.buckets[bucket]
            bucket += 1
        if e == NO_ELEM:
            return -ENOENT
    memcpy(out, m.keys + <size_t>e * m.key_size, m.key_size)
    return 0


cdef void map_free(MapStore* m) noexcept nogil:
    if m != NULL:
        free(m.progs)
        free(m.values)
        free(m.keys)
        free(m.next)
        free(m.buckets)
        free(m)


# --- the map helpers ------------------------------------------------------------------

cdef MapStore* _map_arg(Vm* vm, uint64_t ptr) noexcept nogil:
    """The map r1 names, which must be one the program references."""
    cdef int k
    for k in range(vm.nmaps):
        if <uintptr_t>vm.maps[k] == ptr:
            return vm.maps[k]
    helper_fault(vm, b"r1 is not a map this program references")
    return NULL


cdef MapStore* _data_map_arg(Vm* vm, uint64_t ptr) noexcept nogil:
    cdef MapStore* m = _map_arg(vm, ptr)
    if m != NULL and m.type == MAP_PROG_ARRAY:
        helper_fault(vm, b"a program array is only for bpf_tail_call")
        return NULL
    return m


cdef inline uint32_t _cpu(Vm* vm) noexcept nogil:
    return vm.skb.cpu if vm.skb != NULL else 0


cdef uint64_t bpf_map_lookup_elem(Vm* vm, uint64_t r1, uint64_t r2, uint64_t c, uint64_t d,
                                  uint64_t e) noexcept nogil:
    cdef MapStore* m = _data_map_arg(vm, r1)
    cdef uint8_t* key
    cdef int32_t elem
    if m == NULL:
        return 0
    key = _mem(vm, r2, m.key_size, ACCESS_READ)
    if key == NULL:
        return 0
    elem = map_find(m, key)
    if elem == NO_ELEM:
        return 0
    return <uintptr_t>_value(m, elem, _cpu(vm) % m.ncpu)


cdef uint64_t bpf_map_update_elem(Vm* vm, uint64_t r1, uint64_t r2, uint64_t r3,
                                  uint64_t flags, uint64_t e) noexcept nogil:
    cdef MapStore* m = _data_map_arg(vm, r1)
    cdef uint8_t* key
    cdef uint8_t* value
    if m == NULL:
        return 0
    key = _mem(vm, r2, m.key_size, ACCESS_READ)
    if key == NULL:
        return 0
    value = _mem(vm, r3, m.value_size, ACCESS_READ)
    if value == NULL:
        return 0
    return <uint64_t><int64_t>map_update(m, key, value, flags, _cpu(vm) % m.ncpu)


cdef uint64_t bpf_map_delete_elem(Vm* vm, uint64_t r1, uint64_t r2, uint64_t c, uint64_t d,
                                  uint64_t e) noexcept nogil:
    cdef MapStore* m = _data_map_arg(vm, r1)
    cdef uint8_t* key
    if m == NULL:
        return 0
    key = _mem(vm, r2, m.key_size, ACCESS_READ)
    if key == NULL:
        return 0
    return <uint64_t><int64_t>map_delete(m, key)


cdef uint64_t bpf_tail_call(Vm* vm, uint64_t r1, uint64_t r2, uint64_t index, uint64_t d,
                            uint64_t e) noexcept nogil:
    # failure is a no-op: the program goes on with the next instruction
    cdef MapStore* m
    cdef uint32_t slot = <uint32_t>index         # the kernel compares the low 32 bits
    if vm.skb != NULL and not is_ctx(vm, r1):
        return 0
    m = _map_arg(vm, r2)
    if m == NULL:
        return 0
    if m.type != MAP_PROG_ARRAY:
        return helper_fault(vm, b"the map must be a program array")
    if slot >= m.max_entries or m.progs[slot] == NULL or vm.tail_calls >= vm.tail_call_limit:
        return 0
    vm.tail_calls += 1
    vm.next_prog = m.progs[slot]
    vm.status = STATUS_TAIL_CALL
    return 0


cdef void install_prog(Vm* vm, ProgCore* prog) noexcept nogil:
    """Make ``prog`` the running program: its code, helpers, context rules and maps."""
    cdef int k
    cdef Region* g
    vm.prog = prog
    vm.owner = prog.owner
    vm.insns, vm.helpers = prog.code, prog.helpers
    vm.maps, vm.nmaps = prog.maps, prog.nmaps
    if vm.skb != NULL:
        vm.ctx_rules = prog.ctx_rules
    vm.nregions = vm.map_regions
    for k in range(prog.nmaps):
        if prog.maps[k].values_len:
            g = &vm.regions[vm.nregions]
            g.start = <uintptr_t>prog.maps[k].values
            g.end = g.start + prog.maps[k].values_len
            g.writable = True
            g.name = REGION_MAP0 + k
            vm.nregions += 1


cdef void tail_call_switch(Vm* vm) noexcept nogil:
    """Replace the running program after bpf_tail_call: same context, a fresh frame."""
    install_prog(vm, vm.next_prog)
    vm.next_prog = NULL
    vm.status = STATUS_RUNNING
    vm.pc = 0
    vm.depth = 0
    vm.regions[0].start = vm.regions[0].end - FRAME_SIZE
    memset(<void*>vm.regions[0].start, 0, FRAME_SIZE)
    vm.reg[10] = vm.regions[0].end


cdef void register_map_helpers(helper_fn* table) noexcept:
    table[1] = bpf_map_lookup_elem
    table[2] = bpf_map_update_elem
    table[3] = bpf_map_delete_elem
    table[12] = bpf_tail_call


# --- maps from Python ------------------------------------------------------------------

cdef dict _MAP_HANDLES = {}                 # handle -> Map, for lddw map references
import weakref as _weakref
_PROG_HANDLES = _weakref.WeakValueDictionary()   # handle -> Program, for program arrays
cdef int _next_handle = 3                   # handles look like the kernel's fds


class MapError(OSError, EbpfError):
    """A map operation the kernel would refuse; ``errno`` is the kernel's errno."""


cdef enum:
    EBADF_ = 9

_ERRNO_NAMES = {ENOENT: "ENOENT", E2BIG: "E2BIG", EEXIST: "EEXIST", EINVAL: "EINVAL",
                EBADF_: "EBADF"}


def _possible_cpus():
    import os
    return os.cpu_count() or 1


@cython.final
cdef class Map:
    """A map, with the kernel's semantics for its type (semantics.md §4).

    ``Map.create(map_type, key_size, value_size, max_entries, flags=0)`` makes one;
    ``fd`` is the handle programs use in ``lddw`` (``src = BPF_PSEUDO_MAP_FD``, imm =
    fd).  It is a mutable mapping of bytes keys to bytes values; per-CPU maps take and
    give a list of one value per CPU (``ncpu`` of them).  ``lookup``/``update``/
    ``delete``/``next_key`` are the bpf() commands, with their flags and errors
    (:class:`MapError` carrying the kernel's errno).  ``keys()`` lists keys in the
    kernel's iteration order (hash maps: the order of a seed-0 kernel map).
    """
    cdef MapStore* _m
    cdef readonly int fd
    cdef readonly str name
    cdef readonly object type
    cdef dict _programs           # program arrays: slot -> Program, to keep them alive
    cdef public object key_type, value_type   # BTF types (pyebpf.btf) from an ELF object

    def __dealloc__(self):
        map_free(self._m)

    @staticmethod
    def create(map_type, key_size, value_size, max_entries, flags=0, name="", ncpu=None):
        cdef Map self = Map.__new__(Map)
        global _next_handle
        try:
            if isinstance(map_type, str):
                key = map_type.upper()
                kind = _isa.MapType[key if key.startswith("BPF_MAP_TYPE_")
                                    else "BPF_MAP_TYPE_" + key]
            else:
                kind = _isa.MapType(map_type)
        except (KeyError, ValueError):
            raise MapError(EINVAL, f"unknown map type {map_type!r}") from None
        self.type, self.name, self._programs = kind, name, {}
        self._m = _map_alloc(kind, key_size, value_size, max_entries, flags,
                             ncpu or _possible_cpus())
        self.fd = _next_handle
        _next_handle += 1
        _MAP_HANDLES[self.fd] = self
        return self

    def close(self):
        """Drop the handle (programs already loaded keep the map)."""
        _MAP_HANDLES.pop(self.fd, None)

    @property
    def key_size(self):
        return self._m.key_size

    @property
    def value_size(self):
        return self._m.value_size

    @property
    def max_entries(self):
        return self._m.max_entries

    @property
    def flags(self):
        return self._m.flags

    @property
    def ncpu(self):
        return self._m.ncpu

    cdef bytes _key(self, key):
        key = bytes(key)
        if len(key) != self._m.key_size:
            raise ValueError(f"map {self._label()}: key is {len(key)} bytes, the map's "
                             f"key_size is {self._m.key_size}")
        return key

    cdef str _label(self):
        return f"{self.name or self.type.name} (fd {self.fd})"

    cdef _fail(self, int rc, str what, bytes key):
        name = _ERRNO_NAMES.get(-rc, str(-rc))
        raise MapError(-rc, f"map {self._label()}: {what} of key {key.hex()} failed: {name}")

    cdef _bind_owner(self, int prog_type):
        if self._m.owner_type == -1:
            self._m.owner_type = prog_type
        elif self._m.owner_type != prog_type:
            raise LoadError(f"program array {self._label()} serves "
                            f"{_isa.ProgType(self._m.owner_type).name} programs")

    def decode_key(self, key):
        """``key`` as named fields (a dict for structs), per the map's BTF key type."""
        from .btf import decode
        return decode(self.key_type, key, f"map {self._label()} key")

    def decode_value(self, value):
        """``value`` as named fields (global data: by variable name), per its BTF type."""
        from .btf import decode
        return decode(self.value_type, value, f"map {self._label()} value")

    def lookup(self, key):
        """The value under ``key`` (per-CPU: a list of values; program arrays: the
        program's fd as 4 bytes), or None."""
        cdef bytes k = self._key(key)
        cdef int32_t e = map_find(self._m, <const uint8_t*>k)
        if e == NO_ELEM:
            return None
        if self._m.type == MAP_PROG_ARRAY:
            prog = self._programs.get(e)
            return None if prog is None else prog.fd.to_bytes(4, "little")
        if self._m.ncpu == 1:
            return PyBytes_FromStringAndSize(<char*>_value(self._m, e, 0), self._m.value_size)
        return [PyBytes_FromStringAndSize(<char*>_value(self._m, e, c), self._m.value_size)
                for c in range(self._m.ncpu)]

    def update(self, key, value, flags=_isa.BPF_ANY):
        """Store ``value`` (per-CPU: one value for every CPU, or a list of ncpu values)."""
        cdef bytes k = self._key(key)
        cdef bytes v
        if self._m.type == MAP_PROG_ARRAY:
            return self._set_program(k, value, flags)
        if self._m.ncpu > 1:
            values = [value] * self._m.ncpu if isinstance(value, (bytes, bytearray)) else list(value)
            if len(values) != self._m.ncpu:
                raise ValueError(f"map {self._label()}: {len(values)} per-CPU values for "
                                 f"{self._m.ncpu} CPUs")
            v = b"".join(self._value(x).ljust(self._m.stride, b"\0") for x in values)
        else:
            v = self._value(value)
        rc = map_update(self._m, <const uint8_t*>k, <const uint8_t*>v, flags, -1)
        if rc:
            self._fail(rc, "update", k)

    cdef bytes _value(self, value):
        value = bytes(value)
        if len(value) != self._m.value_size:
            raise ValueError(f"map {self._label()}: value is {len(value)} bytes, the map's "
                             f"value_size is {self._m.value_size}")
        return value

    cdef _set_program(self, bytes k, value, flags):
        """Put a program (a Program, or its fd as an int or 4 bytes) in a slot."""
        cdef Program prog
        cdef int32_t e = map_find(self._m, <const uint8_t*>k)
        if flags != _isa.BPF_ANY:
            self._fail(-EINVAL, "update (program arrays take BPF_ANY only)", k)
        if e == NO_ELEM:
            self._fail(-E2BIG, "update", k)
        if not isinstance(value, Program):
            fd = value if isinstance(value, int) else int.from_bytes(bytes(value), "little")
            value = _PROG_HANDLES.get(fd)
            if value is None:
                raise MapError(EBADF_, f"map {self._label()}: no program with fd {fd}")
        prog = value
        if prog.prog_type is None:
            raise MapError(EINVAL, f"map {self._label()}: raw programs cannot be tail-called")
        try:
            self._bind_owner(prog._pc.prog_type)
        except LoadError as exc:
            raise MapError(EINVAL, str(exc)) from None
        self._m.progs[e] = &prog._pc
        self._programs[e] = prog

    def delete(self, key):
        cdef bytes k = self._key(key)
        cdef int32_t e
        if self._m.type == MAP_PROG_ARRAY:
            e = map_find(self._m, <const uint8_t*>k)
            if e == NO_ELEM or self._programs.pop(e, None) is None:
                self._fail(-ENOENT if e != NO_ELEM else -EINVAL, "delete", k)
            self._m.progs[e] = NULL
            return
        rc = map_delete(self._m, <const uint8_t*>k)
        if rc:
            self._fail(rc, "delete", k)

    def next_key(self, key=None):
        """The key after ``key`` in iteration order (None or a missing key: the first);
        None after the last."""
        cdef bytes k
        cdef bytes out = PyBytes_FromStringAndSize(NULL, self._m.key_size)
        if key is None:
            rc = map_next_key(self._m, NULL, <uint8_t*>PyBytes_AS_STRING(out))
        else:
            k = self._key(key)
            rc = map_next_key(self._m, <const uint8_t*>k, <uint8_t*>PyBytes_AS_STRING(out))
        return None if rc else out

    def keys(self):
        out = []
        key = self.next_key()
        while key is not None:
            out.append(key)
            key = self.next_key(key)
        return out

    def __iter__(self):
        return iter(self.keys())

    def __len__(self):
        return self._m.count if _is_hash(self._m) else self._m.max_entries

    def __contains__(self, key):
        return self.lookup(key) is not None

    def __getitem__(self, key):
        value = self.lookup(key)
        if value is None:
            raise KeyError(key)
        return value

    def __setitem__(self, key, value):
        self.update(key, value)

    def __delitem__(self, key):
        try:
            self.delete(key)
        except MapError as exc:
            if exc.errno == ENOENT:
                raise KeyError(key) from None
            raise

    def items(self):
        return [(k, self[k]) for k in self.keys()]

    def values(self):
        return [self[k] for k in self.keys()]

    def get(self, key, default=None):
        value = self.lookup(key)
        return default if value is None else value

    def __repr__(self):
        return (f"<pyebpf.Map {self._label()}: key {self._m.key_size} B, value "
                f"{self._m.value_size} B, {len(self)}/{self._m.max_entries} entries>")


import collections.abc as _abc
_abc.MutableMapping.register(Map)


cdef MapStore* _map_alloc(object kind, uint32_t key_size, uint32_t value_size,
                          uint32_t max_entries, uint32_t flags, uint32_t ncpu) except NULL:
    """Validate like BPF_MAP_CREATE (semantics.md §4.1) and allocate the storage."""
    cdef MapStore* m
    cdef uint32_t n = 1
    hashes = (MAP_HASH, MAP_PERCPU_HASH)
    arrays = (MAP_ARRAY, MAP_PERCPU_ARRAY, MAP_PROG_ARRAY)
    if kind not in hashes + arrays:
        raise MapError(EINVAL, f"map type {kind.name} is not supported by pyebpf yet")
    if max_entries == 0 or value_size == 0 or key_size == 0:
        raise MapError(EINVAL, "key_size, value_size and max_entries must be non-zero")
    if kind in arrays and key_size != 4:
        raise MapError(EINVAL, f"{kind.name} keys are 4 bytes, not {key_size}")
    if kind == MAP_PROG_ARRAY and value_size != 4:
        raise MapError(EINVAL, f"{kind.name} values are 4-byte program fds, not {value_size}")
    allowed = (_isa.BPF_F_NO_PREALLOC | _isa.BPF_F_ZERO_SEED) if kind in hashes else 0
    if flags & ~allowed:
        raise MapError(EINVAL, f"flags {flags:#x} are not valid for {kind.name}")
    if value_size > (1 << 20) or key_size > 512 or max_entries > (1 << 24):
        raise MapError(E2BIG, "map too large for pyebpf (value 1 MiB, key 512 B, "
                              "16M entries at most)")
    m = <MapStore*>calloc(1, sizeof(MapStore))
    if m == NULL:
        raise MemoryError()
    m.type, m.key_size, m.value_size = kind, key_size, value_size
    m.max_entries, m.flags = max_entries, flags
    m.stride = (value_size + 7) & ~7u
    m.ncpu = ncpu if kind in (MAP_PERCPU_HASH, MAP_PERCPU_ARRAY) else 1
    m.free_head = NO_ELEM
    m.owner_type = -1
    if kind == MAP_PROG_ARRAY:
        # slots hold programs, which programs can neither read nor write
        m.progs = <ProgCore**>calloc(max_entries, sizeof(ProgCore*))
        if m.progs == NULL:
            map_free(m)
            raise MemoryError()
        return m
    m.values_len = <size_t>max_entries * m.ncpu * m.stride
    m.values = <uint8_t*>calloc(m.values_len, 1)
    if m.values == NULL:
        map_free(m)
        raise MemoryError()
    if kind in hashes:
        while n < max_entries:
            n <<= 1
        m.n_buckets = n
        m.keys = <uint8_t*>calloc(max_entries, key_size)
        m.next = <int32_t*>malloc(max_entries * sizeof(int32_t))
        m.buckets = <int32_t*>malloc(n * sizeof(int32_t))
        if m.keys == NULL or m.next == NULL or m.buckets == NULL:
            map_free(m)
            raise MemoryError()
        for k in range(n):
            m.buckets[k] = NO_ELEM
        for k in range(max_entries):
            m.next[k] = <int32_t>k + 1 if k + 1 < max_entries else NO_ELEM
        m.free_head = 0
    return m
