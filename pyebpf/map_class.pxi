# The Python Map class and the handles (fds) of maps and programs.  Included into
# pyebpf/_core.pyx.

# --- maps from Python ------------------------------------------------------------------

cdef dict _MAP_HANDLES = {}                 # handle -> Map, for lddw map references
import weakref as _weakref
_PROG_HANDLES = _weakref.WeakValueDictionary()   # handle -> Program, for program arrays
cdef int _next_handle = 3                   # handles look like the kernel's fds


cdef uint32_t _ID_END = 0x7fffffff      # idr_alloc_cyclic's end (INT_MAX, not given)


cdef class MapIds:
    """A machine's map ids, as its kernel's ``map_idr`` gives them (bpf_map_alloc_id:
    ``idr_alloc_cyclic(&map_idr, map, 1, INT_MAX)``): maps alone, each id one past the
    last given, from 1 (or ``next``), up to INT_MAX - 1 and round to 1 again, skipping
    the ids of maps still alive (a map's id is freed with it, bpf_map_free_id).
    :class:`pyebpf.trace.Machine` holds one (``map_ids``); maps created without a
    machine share the process's."""
    cdef uint32_t _next
    cdef object _live           # id -> Map, while the map lives

    def __init__(self, next=1):
        if not 1 <= next < _ID_END:
            raise ValueError(f"MapIds: next is 1 to {_ID_END - 1}, not {next}")
        self._next = next
        self._live = _weakref.WeakValueDictionary()

    @property
    def next(self):
        """Where the search for the next map's id starts."""
        return self._next

    def next_after(self, start):
        """The smallest id above ``start`` that a live object holds, 0 for none: what
        BPF_PROG_GET_NEXT_ID / BPF_MAP_GET_NEXT_ID walk (bpf_obj_get_next_id:
        idr_get_next from ``start + 1``)."""
        return min((i for i in self._live.keys() if i > start), default=0)

    cdef uint32_t take(self, object m) except 0:
        cdef uint32_t id = self._next, first = self._next
        while id in self._live:
            id = id + 1 if id + 1 < _ID_END else 1
            if id == first:
                raise MapError(ENOSPC, "every id (1 to INT_MAX - 1) is in use")
        self._live[id] = m
        self._next = id + 1 if id + 1 < _ID_END else 1
        return id


cdef MapIds _PROCESS_MAP_IDS = MapIds()    # the ids of maps made without a machine
# programs' ids, as the kernel's prog_idr gives them (bpf_prog_alloc_id: the same
# idr_alloc_cyclic as map_idr's), for the whole process
cdef MapIds _PROCESS_PROG_IDS = MapIds()


def _process_ids(bint programs):
    """The MapIds numbering the process's programs, or its maps made without a machine."""
    return _PROCESS_PROG_IDS if programs else _PROCESS_MAP_IDS


# the map types whose values may hold each special field (map_check_btf)
_SPIN_LOCK_MAPS = (BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_CGROUP_STORAGE,
                   BPF_MAP_TYPE_SK_STORAGE, BPF_MAP_TYPE_INODE_STORAGE,
                   BPF_MAP_TYPE_TASK_STORAGE, BPF_MAP_TYPE_CGRP_STORAGE)
# map_check_btf: the maps whose values may hold a bpf_list_head
_GRAPH_MAPS = (BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_LRU_HASH, BPF_MAP_TYPE_ARRAY)
_TIMER_MAPS = (BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_LRU_HASH, BPF_MAP_TYPE_ARRAY)
_KPTR_MAPS = (BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_PERCPU_HASH, BPF_MAP_TYPE_LRU_HASH,
              BPF_MAP_TYPE_LRU_PERCPU_HASH, BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_PERCPU_ARRAY,
              BPF_MAP_TYPE_SK_STORAGE, BPF_MAP_TYPE_INODE_STORAGE,
              BPF_MAP_TYPE_TASK_STORAGE, BPF_MAP_TYPE_CGRP_STORAGE)


@cython.final
cdef class Map:
    """A map, with the kernel's semantics for its type (docs/kernel-notes.md, Maps).

    ``Map.create(map_type, key_size, value_size, max_entries, flags=0)`` makes one;
    ``fd`` is the handle programs use in ``lddw`` (``src = BPF_PSEUDO_MAP_FD``, imm =
    fd); ``machine=`` (a :class:`pyebpf.trace.Machine`) the machine whose map ids
    number it (``id``; default the process's).  It is a mutable mapping of bytes keys
    to bytes values; per-CPU maps take and give a list of one value per CPU (``ncpu``
    of them).  ``lookup``/``update``/
    ``delete``/``next_key`` are the bpf() commands, with their flags and errors
    (:class:`MapError` carrying the kernel's errno).  ``keys()`` lists keys in the
    kernel's iteration order (hash maps: the order of a seed-0 kernel map; LPM tries:
    the kernel's postorder, more specific prefixes first).

    LRU hashes evict as the kernel's bpf_lru_list.c does (pyebpf/lru.pxi): active and
    inactive lists with ref bits (set by programs' lookups and by replacing updates,
    not by syscall lookups), per-CPU local lists filled in batches, or with
    BPF_F_NO_COMMON_LRU a list per CPU; a program's CPU is its run's, an ``update``'s
    ``on_cpu`` (0 unless said); so a map filled past its size keeps the kernel's keys.
    Maps of maps take ``inner_map=`` (the template) and hold Maps (lookup gives the inner
    map's id, as the kernel does; ``held(key)`` the Map).  Perf event arrays:
    ``open(index, cpu)`` opens a slot, ``set_counter`` sets what bpf_perf_event_read
    reads, ``drain()`` takes the (cpu, bytes) events.  Ring buffers: ``drain()`` takes the submitted records.
    Bloom filters (no key; ``map_extra=`` the number of hash functions): ``push`` and
    ``maybe_contains``.
    Queues and stacks (no key: ``key_size`` 0): ``push``, ``pop``, ``peek``, and the
    commands as the kernel maps them (lookup peeks, update pushes, lookup_and_delete
    pops; delete and next_key: EINVAL); ``len()`` is the number of values held.
    Socket local storage (SK_STORAGE): keys are sockets, given as a socket cookie (an
    int), an Environment ``Socket``/``PacketSocket`` with a cookie of its own, or the
    8 bytes of a cookie as ``keys()`` gives them; ``keys()`` lists the sockets holding
    a value (the kernel has no next_key for these maps: ENOTSUPP); a map holds the
    values of at most 1024 sockets.  Task and cgroup local storage (TASK_STORAGE,
    CGRP_STORAGE) are the same, keyed by the owner's kernel address, what the helpers
    are given (the kernel keys them by a pidfd or a cgroup fd in user space): a task as
    a :class:`pyebpf.trace.Task` (its ``address``) or an int, a cgroup as an int (the
    ``struct cgroup`` address), either as 8 bytes; inode local storage (INODE_STORAGE)
    too, an inode by its ``struct inode`` address (the kernel: a file's fd), though no
    tc or socket filter program may reach one (its helpers are the LSM programs').
    Cgroup arrays: ``update(index, cgroup_id)`` puts a
    cgroup of the Environment in a slot (the kernel takes a cgroup fd); lookup is
    ENOTSUPP, as in the kernel.  Devmaps (DEVMAP, DEVMAP_HASH) hold devices of the
    network ``update(..., env=)`` names (an Environment; default loopback only), CPU
    maps queue sizes per modelled CPU; XSKMAPs AF_XDP sockets of this process by fd
    (unbound ones: pyebpf cannot know a bound one's queue); cgroup storage stays empty
    (no attached cgroup): pyebpf/devmap.pxi, docs/environment.md.
    REUSEPORT_SOCKARRAY: ``update(index, fd)`` with the fd (as the value's bytes) of a
    SO_REUSEPORT socket of this process, listening (TCP) or bound (UDP); a lookup gives
    its cookie (pyebpf/sockmap.pxi).
    """
    cdef MapStore* _m
    cdef readonly int fd
    cdef readonly str name
    cdef readonly object type
    cdef readonly dict _programs  # program arrays, maps of maps: element -> what it holds
    cdef readonly object inner_map  # maps of maps: the template
    cdef public object _pin       # a pinned map's link to its pin file (pyebpf.pinning)
    cdef public object key_type, value_type   # BTF types (pyebpf.btf) from an ELF object
    cdef readonly tuple kptrs     # the value's kptr fields (pyebpf.btf.fields.Kptr)
    cdef readonly tuple graph_roots   # its list heads (pyebpf.btf.fields.GraphRoot)
    cdef object _btf_view                     # typed() without formats, made once
    cdef int _write_maps          # writable mappings alive (Map.mmap): the kernel's writecnt
    cdef object __weakref__

    def __dealloc__(self):
        map_free(self._m)

    @staticmethod
    def create(map_type, key_size, value_size, max_entries, flags=0, name="", ncpu=None,
               inner_map=None, map_extra=0, value_type=None, machine=None):
        cdef Map self = Map.__new__(Map)
        cdef Map tmpl = inner_map
        cdef MapIds ids = _PROCESS_MAP_IDS
        global _next_handle
        if machine is not None:
            ids = getattr(machine, "map_ids", None)
            if ids is None:
                raise TypeError(f"machine must be a pyebpf.trace.Machine, not "
                                f"{type(machine).__name__}")
        try:
            if isinstance(map_type, str):
                key = map_type.upper()
                kind = _isa.MapType[key if key.startswith("BPF_MAP_TYPE_")
                                    else "BPF_MAP_TYPE_" + key]
            else:
                kind = _isa.MapType(map_type)
        except (KeyError, ValueError):
            raise MapError(EINVAL, f"unknown map type {map_type!r}") from None
        self.type, self.name, self._programs, self.inner_map = kind, name, {}, inner_map
        self.kptrs = self.graph_roots = ()
        if tmpl is not None and tmpl._m.type not in _INNER_KINDS:
            raise MapError(EINVAL, f"an inner map cannot be {tmpl.type.name} in pyebpf")
        self._m = _map_alloc(kind, key_size, value_size, max_entries, flags,
                             ncpu or map_cpus(), NULL if tmpl is None else tmpl._m,
                             map_extra)
        if value_type is not None:
            self._special_fields(value_type)
            self.value_type = value_type
        self.fd = _next_handle
        _next_handle += 1
        _MAP_HANDLES[self.fd] = self
        self._m.id = ids.take(self)
        # bpf_obj_name_cpy keeps up to 15 bytes and the NUL (libbpf cuts longer names)
        raw = name.encode()[:15]
        memcpy(self._m.name, <const char*>raw, len(raw))
        return self

    @property
    def id(self):
        """The map's id, what a program reads in ``struct bpf_map``'s ``id``: given as
        the kernel gives its maps' (:class:`MapIds`), by the ``machine=`` the map was
        created on (a :class:`pyebpf.trace.Machine`), else by the process's."""
        return self._m.id

    @property
    def frozen(self):
        """Whether the map is frozen (``struct bpf_map``'s ``frozen``): ``pyebpf.load``
        freezes read-only global data (``.rodata``, ``.kconfig``) once filled, as libbpf
        does."""
        return bool(self._m.frozen)

    def freeze(self):
        """BPF_MAP_FREEZE (map_freeze): from now on user space may not write the map
        (update and delete: EPERM), and a ``BPF_F_RDONLY_PROG`` map is read-only to the
        verifier (bpf_map_is_rdonly: loads of known values, constant strings).  EPERM
        when user space may not write it already (``BPF_F_RDONLY``, frozen), ENOTSUPP
        for a value with BTF-found fields (a bpf_spin_lock, bpf_timer, kptr, ...).  A
        pinned map stays frozen in its pin: every process's map got from it is; a pinned
        ``BPF_F_MMAPABLE`` array's freeze is EBUSY while any process that has the pin
        holds a writable mapping of it."""
        from .btf.fields import has_special_fields
        if self.value_type is not None and has_special_fields(self.value_type):
            raise MapError(ENOTSUPP, f"map {self._label()}: freeze: the value has fields "
                                     "found through BTF")
        if self._pin is not None:
            return self._pin.freeze(self)
        self._allow(False, True, "freeze")
        if self._write_maps:
            # map_freeze: bpf_map_write_active, a writable mapping could still write it
            raise MapError(EBUSY, f"map {self._label()}: freeze: a writable mapping of "
                                  "the map is open (Map.mmap)")
        self._m.frozen = True

    def mmap(self, writable=True, offset=0, length=None):
        """The values of a ``BPF_F_MMAPABLE`` array as a memoryview, what the kernel's
        ``mmap(NULL, length, ..., MAP_SHARED, map_fd, offset)`` maps: value ``i`` at
        ``i * round_up(value_size, 8) - offset``, zeros to the end of the last page;
        ``length`` bytes (default: from ``offset`` to the end of the last page).  Programs'
        lookups and updates see its writes and it sees theirs.  While a writable one is
        alive (until its ``release()`` or its last reference goes), ``freeze`` is EBUSY.
        Errors as ``mmap(2)``'s, in its order: EINVAL for an ``offset`` not a multiple of
        the page size or a ``length`` of 0, ENOMEM for a ``length`` past the end of user
        space (TASK_SIZE); then the fd's: a ``BPF_F_RDONLY`` map (its fd read-only:
        do_mmap drops VM_SHARED) is EACCES writable, a ``BPF_F_WRONLY`` one EACCES; then
        ``bpf_map_mmap``'s: ENOTSUPP for other types and values with BTF-found fields,
        EINVAL for a ``BPF_F_RDONLY`` map read-only, a writable mapping of a frozen map
        is EPERM, of a ``BPF_F_RDONLY_PROG`` one EACCES; then ``array_map_mmap``'s:
        EINVAL for an array without the flag and for a window past the values'
        page-rounded end.  A pinned map's mapping shares its values with every process
        that has the pin (docs/pinning.md).

        An arena's mapping is all its pages (``offset`` 0 and ``length``
        ``max_entries * 4096`` bytes; a longer one E2BIG, another EINVAL, as
        ``arena_get_unmapped_area``), the view's first byte at ``user_vm_start`` when the arena got the address it asked for
        (``map_extra``; else at the address pyebpf chose, which ``user_vm_start`` is).
        A page user space touches is allocated, as ``arena_vm_fault`` allocates it; with
        ``BPF_F_SEGV_ON_FAULT`` the touch is SIGSEGV, as the kernel sends."""
        from .btf.fields import has_special_fields
        cdef MapStore* m = self._m
        cdef size_t page = <size_t>sysconf(_SC_PAGESIZE)
        what = f"map {self._label()}: mmap"
        end = (<size_t>m.arena.npages * PAGE_SIZE if m.type == BPF_MAP_TYPE_ARENA
               else _page_round(m.values_len))
        offset = _operator.index(offset)
        length = max(end - offset, page) if length is None else _operator.index(length)
        if offset < 0 or length < 0:
            raise MapError(EINVAL, f"{what}: a negative offset or length")
        if offset % page:
            # ksys_mmap_pgoff's callers: the offset must fall on a page
            raise MapError(EINVAL, f"{what}: offset {offset} is not a multiple of the "
                                   f"page size ({page})")
        if length == 0:
            raise MapError(EINVAL, f"{what}: a length of 0")
        if length > _HOST_TASK_SIZE:
            # do_mmap -> __get_unmapped_area: no room for it below TASK_SIZE
            raise MapError(ENOMEM, f"{what}: {length} bytes do not fit in user space")
        if m.flags & BPF_F_WRONLY or writable and m.flags & BPF_F_RDONLY:
            raise MapError(EACCES, f"{what}: the map's fd is not open for "
                                   f"{'writing' if writable else 'reading'}")
        if m.type == BPF_MAP_TYPE_ARENA:
            # arena_get_unmapped_area: the whole arena from its first page (its
            # user_vm_start and user_vm_end are set: pyebpf maps it at creation)
            if not offset and length > end:
                raise MapError(E2BIG, f"{what}: {length} bytes, the arena has {end}")
            if offset or length != end:
                raise MapError(EINVAL, f"{what}: an arena is mapped whole ({end} bytes from "
                                       f"offset 0), not {length} bytes from offset {offset}")
            return memoryview(_MapValues(self, writable, 0, length))
        if m.type != BPF_MAP_TYPE_ARRAY or m.ncpu != 1 or (
                self.value_type is not None and has_special_fields(self.value_type)):
            raise MapError(ENOTSUPP, f"{what}: only arrays without BTF-found fields in "
                                     "their values can be mapped")
        if m.flags & BPF_F_RDONLY:
            raise MapError(EINVAL, f"{what}: a BPF_F_RDONLY map's mapping is not shared")
        if writable and m.frozen:
            raise MapError(EPERM, f"{what}: a writable mapping of a frozen map")
        if writable and m.flags & BPF_F_RDONLY_PROG:
            raise MapError(EACCES, f"{what}: a writable mapping of a BPF_F_RDONLY_PROG map")
        if not m.flags & BPF_F_MMAPABLE:
            raise MapError(EINVAL, f"{what}: the map was not created BPF_F_MMAPABLE")
        if offset + -(-length // page) * page > end:
            # array_map_mmap: the window must lie within PAGE_ALIGN(max_entries * elem_size)
            raise MapError(EINVAL, f"{what}: {length} bytes from offset {offset} pass "
                                   f"the end of the values ({end} bytes, page-rounded)")
        if self._pin is not None:
            # another process may have frozen it: its state as the pin file has it now
            return self._pin.map_values(self, writable, offset, length)
        return memoryview(_MapValues(self, writable, offset, length))

    def _values_image(self):
        """An mmapable array's values to the end of the last page, as bytes (its pin
        file's copy: pyebpf.pinning)."""
        return PyBytes_FromStringAndSize(<char*>self._m.values,
                                         <Py_ssize_t>_page_round(self._m.values_len))

    def _share_values(self, int fd, long offset):
        """An mmapable array's values become the pages of the file ``fd`` from
        ``offset`` (its pin file's: pyebpf.pinning), shared with every process that
        maps them, at the same addresses (programs and mappings keep pointing at
        them)."""
        cdef MapStore* m = self._m
        if m.type != BPF_MAP_TYPE_ARRAY or not m.flags & BPF_F_MMAPABLE:
            raise MapError(EINVAL, f"map {self._label()}: only a BPF_F_MMAPABLE array's "
                                   "values can be shared")
        rc = store_share(m.values, _page_round(m.values_len), fd, offset)
        if rc:
            raise OSError(rc, f"map {self._label()}: cannot map its values from its pin "
                              f"file ({_os.strerror(rc)})")

    def _set_frozen(self):
        """Frozen as its pin file says (pyebpf.pinning): the map was frozen in the
        process that pinned it, or in another that got it since."""
        self._m.frozen = True

    def _loaded(self, bint frozen, uint32_t btf_key_type_id, uint32_t btf_value_type_id):
        """What the loader created the map with beyond BPF_MAP_CREATE's sizes: frozen,
        and the BTF type ids of its key and value (0: created without BTF)."""
        self._m.frozen = frozen
        self._m.btf_key_type_id = btf_key_type_id
        self._m.btf_value_type_id = btf_value_type_id

    cdef _special_fields(self, value_type):
        """map_check_btf: where the value's bpf_spin_lock and bpf_timer are, and which
        maps may hold them (the kernel's refusals, in its order)."""
        from .btf.fields import (RB_ROOT, RES_SPIN_LOCK, SPIN_LOCK, TASK_WORK, TIMER, WQ,
                                 graph_roots, kptr_fields, special_fields)
        found = special_fields(value_type)
        if SPIN_LOCK in found and RES_SPIN_LOCK in found:
            # btf_parse_fields: one kind of lock per value
            raise MapError(EINVAL, f"map {self._label()}: a value cannot hold both a "
                                   f"bpf_spin_lock and a bpf_res_spin_lock")
        kptrs = kptr_fields(value_type)
        roots = graph_roots(value_type)
        if kptrs:
            found = {**found, "kptr": kptrs[0].off}
        if roots:
            found = {**found, roots[0].kind: roots[0].off}
            if SPIN_LOCK not in found:
                # btf_parse_fields: a bpf_list_head needs the bpf_spin_lock guarding it
                raise MapError(EINVAL, f"map {self._label()}: a value with a "
                                       f"{roots[0].kind} needs a bpf_spin_lock")
        if len(kptrs) + len(roots) > BTF_FIELDS_MAX:
            raise MapError(E2BIG, f"map {self._label()}: the value holds more than "
                                  f"{BTF_FIELDS_MAX} kptrs and list heads")
        if not found:
            return
        if self._m.flags & (BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG):
            raise MapError(EACCES, f"map {self._label()}: a value with a "
                                   f"{' or '.join(found)} cannot be BPF_F_RDONLY_PROG or "
                                   f"BPF_F_WRONLY_PROG")
        for lock in (SPIN_LOCK, RES_SPIN_LOCK):
            if lock in found and self._m.type not in _SPIN_LOCK_MAPS:
                raise MapError(EOPNOTSUPP, f"map {self._label()}: a {self.type.name} value "
                                           f"cannot hold a {lock}")
        if TIMER in found and self._m.type not in _TIMER_MAPS:
            raise MapError(EOPNOTSUPP, f"map {self._label()}: a {self.type.name} value "
                                       f"cannot hold a bpf_timer")
        if WQ in found and self._m.type not in _TIMER_MAPS:
            raise MapError(EOPNOTSUPP, f"map {self._label()}: a {self.type.name} value "
                                       f"cannot hold a bpf_wq")
        if TASK_WORK in found and self._m.type not in _TIMER_MAPS:
            raise MapError(EOPNOTSUPP, f"map {self._label()}: a {self.type.name} value "
                                       f"cannot hold a bpf_task_work")
        if kptrs and self._m.type not in _KPTR_MAPS:
            raise MapError(EOPNOTSUPP, f"map {self._label()}: a {self.type.name} value "
                                       f"cannot hold a kptr")
        if roots and self._m.type not in _GRAPH_MAPS:
            raise MapError(EOPNOTSUPP, f"map {self._label()}: a {self.type.name} value "
                                       f"cannot hold a {roots[0].kind}")
        self._m.spin_lock_off = found.get(SPIN_LOCK, -1)
        self._m.timer_off = found.get(TIMER, -1)
        self._m.res_spin_lock_off = found.get(RES_SPIN_LOCK, -1)
        self._m.wq_off = found.get(WQ, -1)
        self._m.task_work_off = found.get(TASK_WORK, -1)
        for k, kptr in enumerate(kptrs):
            self._m.kptr_off[k] = kptr.off
        self._m.nkptrs = len(kptrs)
        self.kptrs = tuple(kptrs)
        for k, root in enumerate(roots):
            self._m.list_off[k] = root.off
            self._m.list_node_off[k] = root.node_off
            if root.kind == RB_ROOT:
                self._m.rb_roots |= 1 << k
        self._m.nlists = len(roots)
        self.graph_roots = tuple(roots)
        if any(k.kernel and k.target.name == "cgroup" for k in kptrs):
            # a program may read a stored cgroup without calling a cgroup kfunc itself
            cgroup_prepare()
        if self._m.timer_off >= 0 or self._m.wq_off >= 0 or self._m.task_work_off >= 0:
            timers_attach(self._m)

    @property
    def spin_lock_off(self):
        """Where the value's struct bpf_spin_lock is (from its BTF), or None."""
        return self._m.spin_lock_off if self._m.spin_lock_off >= 0 else None

    @property
    def res_spin_lock_off(self):
        """Where the value's struct bpf_res_spin_lock is (from its BTF), or None."""
        return self._m.res_spin_lock_off if self._m.res_spin_lock_off >= 0 else None

    @property
    def timer_off(self):
        """Where the value's struct bpf_timer is (from its BTF), or None."""
        return self._m.timer_off if self._m.timer_off >= 0 else None

    @property
    def wq_off(self):
        """Where the value's struct bpf_wq is (from its BTF), or None."""
        return self._m.wq_off if self._m.wq_off >= 0 else None

    @property
    def task_work_off(self):
        """Where the value's struct bpf_task_work is (from its BTF), or None."""
        return self._m.task_work_off if self._m.task_work_off >= 0 else None

    def close(self):
        """Drop the handle (programs already loaded keep the map).  Its bpf_timers are
        cancelled and freed, and cannot be initialised again (map_release_uref: the
        last user reference is gone) unless the map is pinned."""
        _MAP_HANDLES.pop(self.fd, None)
        if self._pin is None:
            timers_release(self._m)

    def _reopen(self):
        """Register the handle again: a closed pinned map got from its pin once more
        (pyebpf.pinning keeps one Map, and one handle, per pin in a process)."""
        _MAP_HANDLES[self.fd] = self
        self._m.no_uref = False

    @property
    def key_size(self):
        # socket local storage: the fd BPF_MAP_CREATE declares (the store holds cookies)
        return 4 if _is_local_storage(self._m) else self._m.key_size

    @property
    def value_size(self):
        return self._m.value_size

    @property
    def max_entries(self):
        return 0 if _is_local_storage(self._m) else self._m.max_entries

    @property
    def flags(self):
        return self._m.flags

    @property
    def ncpu(self):
        return self._m.ncpu

    @property
    def lru_cpus(self):
        """LRU hashes: the CPUs the LRU keeps lists for; CPU maps: the CPUs a slot may
        name (both: the possible CPUs, or ``ncpu=``, at creation); 0 for other maps."""
        return self._m.lru_ncpu if _is_lru(self._m) or self._m.type == BPF_MAP_TYPE_CPUMAP else 0

    def allocated_pages(self):
        """Arenas: the numbers of their allocated pages, in order (those user space has
        touched: arena_vm_fault allocated them)."""
        cdef Arena* a = self._m.arena
        if a == NULL:
            raise TypeError(f"map {self._label()} is not an arena")
        arena_sync(a)
        return [p for p in range(a.npages) if a.present[p]]

    @property
    def user_vm_start(self):
        """Arenas: the address of their first page, as programs and user space see it
        (``map_extra`` when given, else the address of ``mmap()``'s view); None for
        other maps."""
        return self._m.arena.user_vm_start if self._m.arena != NULL else None

    @property
    def map_extra(self):
        """Bloom filters: the number of hash functions (map_extra as created, 0: 5);
        arenas: the user address asked for (0: none)."""
        if self._m.type == BPF_MAP_TYPE_ARENA:
            return self._m.map_extra
        return self._m.bloom_hashes if self._m.type == BPF_MAP_TYPE_BLOOM_FILTER else 0

    cdef bytes _key(self, key):
        if self._m.type == BPF_MAP_TYPE_SK_STORAGE:
            return self._socket_key(key)
        if _is_local_storage(self._m):
            return self._owner_key(key)
        key = bytes(key)
        if len(key) != self._m.key_size:
            raise ValueError(f"map {self._label()}: key is {len(key)} bytes, the map's "
                             f"key_size is {self._m.key_size}")
        return key

    cdef bytes _socket_key(self, key):
        """A socket local storage key: the socket's cookie as 8 bytes."""
        if isinstance(key, (bytes, bytearray, memoryview)) and len(key) == 8:
            return bytes(key)
        cookie = getattr(key, "cookie", key)
        if isinstance(cookie, bool) or not isinstance(cookie, int) or \
                not 0 < cookie < 1 << 64:
            raise ValueError(f"map {self._label()}: a key is a socket: its cookie, a "
                             f"Socket or PacketSocket with a cookie, or 8 bytes; got {key!r}")
        return cookie.to_bytes(8, "little")

    cdef bytes _owner_key(self, key):
        """A task or cgroup local storage key: the owner's address as 8 bytes."""
        if isinstance(key, (bytes, bytearray, memoryview)) and len(key) == 8:
            return bytes(key)
        address = getattr(key, "address", key)
        if isinstance(address, bool) or not isinstance(address, int) or \
                not 0 < address < 1 << 64:
            raise ValueError(f"map {self._label()}: a key is the owner's kernel address: "
                             f"an int, a pyebpf.trace.Task, or 8 bytes; got {key!r}")
        return address.to_bytes(8, "little")

    cpdef str _label(self):
        return f"{self.name or self.type.name} (fd {self.fd})"

    cdef _fail(self, int rc, str what, bytes key):
        raise MapError(-rc, f"map {self._label()}: {what} of key {key.hex()} failed: "
                            f"{_isa.errno_name(-rc)}")

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

    def lookup(self, key, flags=0):
        """The value under ``key`` (per-CPU: a list of values; program arrays: the
        program's ``id`` as 4 bytes; maps of maps: the inner map's ``id`` as 4 bytes, as
        the kernel's BPF_MAP_LOOKUP_ELEM gives it; ``held`` gives the Map), or None.  A value's bpf_spin_lock and bpf_timer read
        as zeroes; ``flags`` BPF_F_LOCK copies the value under its bpf_spin_lock (a map
        without one: EINVAL)."""
        if self._pin is not None:
            return self._pin.apply(Map.lookup, self, key, flags)
        self._allow(True, False, "lookup")
        cdef bytes k = self._key(key)
        cdef int32_t e
        cdef bytes out
        cdef uint8_t* found
        if flags & ~_isa.BPF_F_LOCK or (flags and self._m.spin_lock_off < 0):
            self._fail(-EINVAL, f"lookup (flags {flags:#x})", k)
        if _is_cgroup_storage(self._m):
            return None
        if self._m.type == BPF_MAP_TYPE_XSKMAP:
            self._fail(-EOPNOTSUPP, "lookup (an XSKMAP's sockets are not read back)", k)
        if _is_xdp_map(self._m):
            found = xdp_map_lookup(self._m, <const uint8_t*>k)
            return None if found == NULL else PyBytes_FromStringAndSize(<char*>found,
                                                                         self._m.value_size)
        if self._m.type in (BPF_MAP_TYPE_PERF_EVENT_ARRAY, BPF_MAP_TYPE_RINGBUF,
                            BPF_MAP_TYPE_USER_RINGBUF, BPF_MAP_TYPE_CGROUP_ARRAY):
            self._fail(-ENOTSUPP, "lookup", k)
        if self._m.type == BPF_MAP_TYPE_ARENA:       # arena_map_lookup_elem
            self._fail(-EINVAL, "lookup (an arena's pages are mmap()'s)", k)
        if self._m.type == BPF_MAP_TYPE_QUEUE or self._m.type == BPF_MAP_TYPE_STACK:
            return self._take(False)
        if self._m.type == BPF_MAP_TYPE_REUSEPORT_SOCKARRAY:
            drop_released(self._m)
        if _is_sock_map(self._m) or self._m.type == BPF_MAP_TYPE_REUSEPORT_SOCKARRAY:
            return self._socket_cookie(k)
        if self._m.type == BPF_MAP_TYPE_BLOOM_FILTER:
            raise TypeError(f"map {self._label()} is a bloom filter: ask maybe_contains(value)")
        if self._m.type == BPF_MAP_TYPE_STACK_TRACE:
            e = <int32_t>self._stack_id(k)
            if e < 0 or not self._m.st_nr[e]:
                return None
            return PyBytes_FromStringAndSize(<char*>self._m.values + <size_t>e * self._m.value_size,
                                             self._m.value_size)
        e = map_find(self._m, <const uint8_t*>k)
        if e == NO_ELEM or (self._m.inner != NULL and self._m.inner[e] == NULL):
            return None
        if self._m.type == BPF_MAP_TYPE_PROG_ARRAY:
            # prog_fd_array_sys_lookup_elem: the program's id
            prog = self._programs.get(e)
            return None if prog is None else prog.id.to_bytes(4, "little")
        if self._m.inner != NULL:
            # bpf_map_fd_sys_lookup_elem: a map of maps gives its inner map's id
            return (<Map>self._programs[e])._m.id.to_bytes(4, "little")
        if map_has_fields(self._m):
            out = PyBytes_FromStringAndSize(NULL, self._m.value_size)
            if flags:
                map_copy_locked(self._m, <uint8_t*>PyBytes_AS_STRING(out),
                                map_value(self._m, e, 0), True)
            else:
                memcpy(PyBytes_AS_STRING(out), map_value(self._m, e, 0), self._m.value_size)
                map_zero_fields(self._m, <uint8_t*>PyBytes_AS_STRING(out))
            return out
        if self._m.ncpu == 1:
            return PyBytes_FromStringAndSize(<char*>map_value(self._m, e, 0), self._m.value_size)
        return [PyBytes_FromStringAndSize(<char*>map_value(self._m, e, c), self._m.value_size)
                for c in range(self._m.ncpu)]

    def held(self, key):
        """What a program array or map of maps holds under ``key``: the Program or
        inner Map itself (``lookup`` gives the program's id, the inner map's), or
        None for an empty slot.  TypeError for a map of another type."""
        if self._m.type != BPF_MAP_TYPE_PROG_ARRAY and self._m.inner == NULL:
            raise TypeError(f"map {self._label()} holds no programs or maps: ask lookup")
        self.sync()
        cdef bytes k = self._key(key)
        cdef int32_t e = map_find(self._m, <const uint8_t*>k)
        return None if e == NO_ELEM else self._programs.get(e)

    def update(self, key, value, flags=_isa.BPF_ANY, *, on_cpu=0, env=None):
        """Store ``value`` (per-CPU: one value for every CPU, or a list of ncpu values).
        ``on_cpu`` is the CPU the update runs on, as the kernel's syscall runs on the
        caller's: an LRU map takes a new element from that CPU's lists (CPU 0 unless
        said; pyebpf.bpf's updates are CPU 0's).  ``env`` is the caller's network
        namespace, whose devices a devmap's ifindex must name (a pyebpf.Environment;
        default: a fresh namespace's, loopback only)."""
        if self._pin is not None:
            return self._pin.apply(Map.update, self, key, value, flags, on_cpu=on_cpu)
        self._allow(False, True, "update")
        cdef bytes k = self._key(key)
        cdef bytes v
        if _is_xdp_map(self._m) or _is_cgroup_storage(self._m):
            return self._set_xdp(k, value, flags, env)
        if self._m.type == BPF_MAP_TYPE_PROG_ARRAY:
            return self._set_program(k, value, flags)
        if self._m.inner != NULL:
            return self._set_inner(k, value, flags)
        if self._m.type == BPF_MAP_TYPE_ARENA:       # arena_map_update_elem
            self._fail(-EOPNOTSUPP, "update (an arena's pages are mmap()'s)", k)
        if self._m.type == BPF_MAP_TYPE_CGROUP_ARRAY:
            return self._set_cgroup(k, value, flags)
        if _is_sock_map(self._m):
            return self._set_socket(k, value, flags)
        if self._m.type == BPF_MAP_TYPE_REUSEPORT_SOCKARRAY:
            return self._set_reuseport(k, value, flags)
        if self._m.type == BPF_MAP_TYPE_PERF_EVENT_ARRAY:
            raise MapError(EINVAL, f"map {self._label()}: perf event array slots are "
                                   "opened with open(), not updated")
        if self._m.type == BPF_MAP_TYPE_RINGBUF or self._m.type == BPF_MAP_TYPE_USER_RINGBUF:
            self._fail(-ENOTSUPP, "update", k)
        if self._m.type == BPF_MAP_TYPE_STACK_TRACE:
            self._fail(-EINVAL, "update (stack traces come from bpf_get_stackid)", k)
        if self._m.type == BPF_MAP_TYPE_BLOOM_FILTER:
            v = self._value(value)
            rc = bloom_push(self._m, <const uint8_t*>v, flags)
            if rc:
                self._fail(rc, "push", k)
            return
        if self._m.type == BPF_MAP_TYPE_QUEUE or self._m.type == BPF_MAP_TYPE_STACK:
            v = self._value(value)
            rc = qs_push(self._m, <const uint8_t*>v, flags)
            if rc:
                self._fail(rc, "push", k)
            return
        if self._m.ncpu > 1:
            values = [value] * self._m.ncpu if isinstance(value, (bytes, bytearray)) else list(value)
            if len(values) != self._m.ncpu:
                raise ValueError(f"map {self._label()}: {len(values)} per-CPU values for "
                                 f"{self._m.ncpu} CPUs")
            v = b"".join(self._value(x).ljust(self._m.stride, b"\0") for x in values)
        else:
            v = self._value(value)
        rc = map_update(self._m, <const uint8_t*>k, <const uint8_t*>v, flags, -1, on_cpu)
        if rc:
            self._fail(rc, "update", k)

    def create_crypto_ctx(self, key, algo, cipher_key, *, type="skcipher", authsize=0):
        """What a syscall program's bpf_crypto_ctx_create and bpf_kptr_xchg do (the
        kernel selftests' crypto_ctx_insert, pyebpf/crypto.pxi): the value under ``key``
        is set to zeroes (its kptrs released), then a crypto context of ``algo``
        ("ecb(aes)" or "cbc(aes)", or their aes-generic and aes-fixed-time drivers)
        keyed with ``cipher_key`` goes into its ``struct bpf_crypto_ctx __kptr`` field
        (CPU 0's copy).  bpf_crypto_ctx_create's refusals raise MapError with the
        kernel's errno, checked in its order: ENOENT for a ``type`` but "skcipher",
        EOPNOTSUPP for an algorithm the modelled kernel does not have as an lskcipher or
        for an authsize, EINVAL for an empty key or one longer than 256 bytes, then
        EINVAL for ctr, xts, cts and rfc3686 (skciphers only), ecb(cipher_null) and a
        key of another size than 16, 24 or 32 bytes."""
        self.create_crypto_ctx_from_params(
            key, crypto_params(type, algo, bytes(cipher_key), authsize))

    def create_crypto_ctx_from_params(self, key, params):
        """create_crypto_ctx with the ``struct bpf_crypto_params`` bytes a program would
        pass (their length is its params__sz; crypto_params() builds them): EINVAL for
        non-zero reserved bytes or another size than 408, then as create_crypto_ctx."""
        cdef int32_t e
        cdef uint64_t old
        params = bytes(params)
        field = next((k for k in self.kptrs if k.kernel and k.target.name == "bpf_crypto_ctx"),
                     None)
        if field is None:
            raise MapError(EINVAL, f"map {self._label()}: its value has no "
                                   f"struct bpf_crypto_ctx __kptr field")
        ctx = _crypto_ctx_new(params)
        if ctx < 0:
            raise MapError(-ctx, f"map {self._label()}: bpf_crypto_ctx_create of "
                                 f"{crypto_params_algo(params)!r} "
                                 f"({len(params)}-byte params) failed: "
                                 f"{_isa.errno_name(-ctx)}")
        cdef bytes k = self._key(key)
        try:
            self.update(k, bytes(self._m.value_size) if self._m.ncpu == 1 else
                        [bytes(self._m.value_size)] * self._m.ncpu)
        except BaseException:
            crypto_ctx_put(ctx)
            raise
        e = map_find(self._m, <const uint8_t*>k)
        old = atomic_xchg64(<uint64_t*>(map_value(self._m, e, 0) + <uint32_t>field.off), ctx)
        if old:
            obj_drop(old)

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
                raise MapError(EBADF, f"map {self._label()}: no program with fd {fd}")
        prog = value
        if prog.prog_type is None:
            raise MapError(EINVAL, f"map {self._label()}: raw programs cannot be tail-called")
        try:
            self._bind_owner(prog._pc.prog_type)
        except LoadError as exc:
            raise MapError(EINVAL, str(exc)) from None
        self._m.progs[e] = &prog._pc
        self._programs[e] = prog

    cdef _set_inner(self, bytes k, value, flags):
        """Put an inner map (a Map, or its fd as an int or 4 bytes) under ``k``."""
        cdef Map inner
        cdef int32_t e
        cdef int rc
        cdef bytes fdb
        if self._m.type == BPF_MAP_TYPE_ARRAY_OF_MAPS:
            if flags != _isa.BPF_ANY:
                self._fail(-EINVAL, "update (arrays of maps take BPF_ANY only)", k)
            if map_find(self._m, <const uint8_t*>k) == NO_ELEM:
                self._fail(-E2BIG, "update", k)
        if not isinstance(value, Map):
            fd = value if isinstance(value, int) else int.from_bytes(bytes(value), "little")
            value = _MAP_HANDLES.get(fd)
            if value is None:
                raise MapError(EBADF, f"map {self._label()}: no map with fd {fd}")
        inner = value
        if not _meta_equal(self._m.tmpl, inner._m):
            raise MapError(EINVAL, f"map {self._label()}: {inner._label()} does not match "
                                   "the inner map template (type, sizes, max_entries, flags)")
        fdb = inner.fd.to_bytes(4, "little")
        rc = map_update(self._m, <const uint8_t*>k, <const uint8_t*>fdb, flags, -1, 0)
        if rc:
            self._fail(rc, "update", k)
        e = map_find(self._m, <const uint8_t*>k)
        self._m.inner[e] = inner._m
        self._programs[e] = inner

    cdef _set_xdp(self, bytes k, value, uint64_t flags, env):
        """The updates of devmaps, cpumaps, xskmaps and cgroup storage (devmap.pxi)."""
        cdef bytes v
        cdef int rc
        if _is_cgroup_storage(self._m):
            rc = cgroup_storage_update(self._m, flags, self._m.spin_lock_off >= 0)
        else:
            v = self._value(value)
            if self._m.type == BPF_MAP_TYPE_CPUMAP:
                rc = cpu_map_update(self._m, <const uint8_t*>k, <const uint8_t*>v, flags)
            elif self._m.type == BPF_MAP_TYPE_XSKMAP:
                rc = xsk_map_update(self._m, <const uint8_t*>k, _le32(<const uint8_t*>v), flags)
            else:
                if env is None:
                    from .environment import Environment
                    env = Environment()
                rc = dev_map_update(self._m, <const uint8_t*>k, <const uint8_t*>v, flags, env)
        if rc:
            self._fail(rc, "update", k)

    cdef _set_cgroup(self, bytes k, value, flags):
        """Put a cgroup, by its id (a cgroup of the Environment the programs run in),
        in a slot (bpf_fd_array_map_update_elem: BPF_ANY only, E2BIG past the end)."""
        cdef int32_t e = map_find(self._m, <const uint8_t*>k)
        cdef uint64_t cgroup
        if flags != _isa.BPF_ANY:
            self._fail(-EINVAL, "update (cgroup arrays take BPF_ANY only)", k)
        if e == NO_ELEM:
            self._fail(-E2BIG, "update", k)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 1 << 64:
            raise ValueError(f"map {self._label()}: a cgroup array holds cgroups by id "
                             f"(an int of Environment.cgroups), not {value!r}")
        cgroup = value
        memcpy(map_value(self._m, e, 0), &cgroup, 8)

    cdef _set_socket(self, bytes k, value, flags):
        """Put a socket in: its cookie (an int), or a Socket of the Environment that
        names its cookie (sock_map_update_elem_sys, which takes the socket's fd)."""
        cdef int rc
        rc = sock_map_update(self._m, <const uint8_t*>k, _socket_cookie_of(value, self._label()),
                             flags)
        if rc:
            self._fail(rc, "update", k)

    cdef _set_reuseport(self, bytes k, value, uint64_t flags):
        """bpf_fd_reuseport_array_update_elem: the socket whose fd ``value`` holds (a
        u32, or a u64 in a map of 8-byte values) in the slot ``k``, as its cookie."""
        cdef bytes v = self._value(value)
        cdef int32_t e = map_find(self._m, <const uint8_t*>k)
        cdef uint64_t fd = int.from_bytes(v, "little")
        cdef uint64_t cookie
        cdef Map other
        if flags > BPF_EXIST:
            self._fail(-EINVAL, "update", k)
        if e == NO_ELEM:
            self._fail(-E2BIG, "update", k)
        if self._m.value_size == 8 and fd > 0x7FFFFFFF:
            self._fail(-EINVAL, f"update (socket fd {fd} is above S32_MAX)", k)
        for other in _MAP_HANDLES.values():
            if other._m.type == BPF_MAP_TYPE_REUSEPORT_SOCKARRAY:
                drop_released(other._m)
        rc, cookie, key = _reuseport_socket(<int32_t>fd, sock_map_slot(self._m, e) != 0, flags)
        if rc:
            self._fail(rc, f"update (socket fd {<int32_t>fd})", k)
        for other in _MAP_HANDLES.values():
            if other._m.type == BPF_MAP_TYPE_REUSEPORT_SOCKARRAY and other._holds_socket(cookie):
                # the kernel marks the socket's sk_user_data with its array's slot
                self._fail(-EBUSY, f"update (socket fd {<int32_t>fd} is in "
                                   f"{other._label()} already)", k)
        rc = hold_socket(<int32_t>fd, key)
        if rc:
            self._fail(rc, f"update (socket fd {<int32_t>fd} cannot be watched for its release)", k)
        memcpy(map_value(self._m, e, 0), &cookie, 8)

    cdef bint _holds_socket(self, uint64_t cookie):
        cdef uint32_t e
        for e in range(self._m.max_entries):
            if sock_map_slot(self._m, <int32_t>e) == cookie:
                return True
        return False

    cdef _socket_cookie(self, bytes k):
        """sock_map_lookup_sys: the socket's cookie as 8 bytes, ENOSPC for a map of
        4-byte values, None for an empty slot."""
        cdef int32_t e
        cdef uint64_t cookie
        if self._m.value_size != 8:
            self._fail(-ENOSPC, "lookup (a socket's cookie needs an 8-byte value)", k)
        e = map_find(self._m, <const uint8_t*>k)
        if e == NO_ELEM:
            return None
        memcpy(&cookie, map_value(self._m, e, 0), 8)
        return None if cookie == 0 else cookie.to_bytes(8, "little")

    def delete(self, key):
        if self._pin is not None:
            return self._pin.apply(Map.delete, self, key)
        self._allow(False, True, "delete")
        cdef bytes k = self._key(key)
        cdef int32_t e
        if _is_cgroup_storage(self._m):
            self._fail(-EINVAL, "delete", k)        # cgroup_storage_delete_elem
        if _is_xdp_map(self._m):
            rc = xdp_map_delete(self._m, <const uint8_t*>k)
            if rc:
                self._fail(rc, "delete", k)
            return
        if self._m.type == BPF_MAP_TYPE_REUSEPORT_SOCKARRAY:
            drop_released(self._m)
            rc = reuseport_array_delete(self._m, <const uint8_t*>k)
            if rc:
                self._fail(rc, "delete", k)
            return
        if self._m.type == BPF_MAP_TYPE_RINGBUF or self._m.type == BPF_MAP_TYPE_USER_RINGBUF:
            self._fail(-ENOTSUPP, "delete", k)
        if self._m.type == BPF_MAP_TYPE_QUEUE or self._m.type == BPF_MAP_TYPE_STACK:
            self._fail(-EINVAL, "delete (queues and stacks pop)", k)
        if self._m.type == BPF_MAP_TYPE_BLOOM_FILTER:
            self._fail(-EOPNOTSUPP, "delete (a bloom filter only grows)", k)
        if self._m.type == BPF_MAP_TYPE_ARENA:       # arena_map_delete_elem
            self._fail(-EOPNOTSUPP, "delete (an arena has no elements)", k)
        if self._m.type == BPF_MAP_TYPE_STACK_TRACE:
            e = <int32_t>self._stack_id(k)
            if e < 0 or not self._m.st_nr[e]:
                self._fail(-E2BIG if e < 0 else -ENOENT, "delete", k)
            self._m.st_nr[e] = 0
            self._m.count -= 1
            return
        if self._m.inner != NULL or self._m.type in (BPF_MAP_TYPE_PERF_EVENT_ARRAY,
                                                     BPF_MAP_TYPE_CGROUP_ARRAY):
            e = map_find(self._m, <const uint8_t*>k)
            if e == NO_ELEM or not self._slot_used(e):
                # __fd_array_map_delete_elem: E2BIG past the end
                self._fail(-ENOENT if e != NO_ELEM or _is_hash(self._m) else -E2BIG, "delete", k)
            if _is_hash(self._m):
                map_delete(self._m, <const uint8_t*>k)
            if self._m.inner != NULL:
                self._m.inner[e] = NULL
                del self._programs[e]
            elif self._m.type == BPF_MAP_TYPE_CGROUP_ARRAY:
                memset(map_value(self._m, e, 0), 0, 8)
            else:
                self._m.perf_cpu[e] = -1
            return
        if self._m.type == BPF_MAP_TYPE_PROG_ARRAY:
            e = map_find(self._m, <const uint8_t*>k)
            if e == NO_ELEM or self._programs.pop(e, None) is None:
                self._fail(-ENOENT if e != NO_ELEM else -E2BIG, "delete", k)
            self._m.progs[e] = NULL
            return
        rc = map_delete(self._m, <const uint8_t*>k)
        if rc:
            self._fail(rc, "delete", k)

    def lookup_and_delete(self, key=b"", flags=0):
        """BPF_MAP_LOOKUP_AND_DELETE_ELEM: the value under ``key``, removed (queues and
        stacks: the value popped, no key), or None when there is none.  Hash maps and
        queues and stacks only (others: ENOTSUPP); no flags (BPF_F_LOCK needs a spin
        lock: EINVAL)."""
        if self._pin is not None:
            return self._pin.apply(Map.lookup_and_delete, self, key, flags)
        self._allow(True, True, "lookup_and_delete")
        cdef bytes k = self._key(key)
        if flags:
            self._fail(-EINVAL, f"lookup_and_delete (flags {flags:#x})", k)
        if self._m.type == BPF_MAP_TYPE_QUEUE or self._m.type == BPF_MAP_TYPE_STACK:
            return self._take(True)
        if not _is_hash(self._m) or self._m.inner != NULL or _is_local_storage(self._m) \
                or _is_sock_map(self._m) or _is_xdp_map(self._m):
            self._fail(-ENOTSUPP, "lookup_and_delete", k)
        value = self.lookup(k)
        if value is not None:
            self.delete(k)
        return value

    def push(self, value, flags=_isa.BPF_ANY):
        """Queues and stacks: push ``value`` (the update command); a full map refuses
        (E2BIG) unless ``flags`` is BPF_EXIST, which drops the oldest value.  Bloom
        filters: add ``value`` (flags: BPF_ANY only).  User ring buffers: reserve a
        sample of ``value``'s size and submit it (no flags); its position."""
        if self._m.type == BPF_MAP_TYPE_USER_RINGBUF:
            if flags:
                raise MapError(EINVAL, f"map {self._label()}: a sample is pushed without flags")
            pos = self.reserve(len(value))
            self.submit(pos, value)
            return pos
        self.update(b"", value, flags)

    def maybe_contains(self, value):
        """Bloom filters: False when ``value`` was certainly never pushed, True when it
        may have been (the lookup command, whose value is the one asked about)."""
        if self._pin is not None:
            return self._pin.apply(Map.maybe_contains, self, value)
        self._allow(True, False, "lookup")
        if self._m.type != BPF_MAP_TYPE_BLOOM_FILTER:
            raise TypeError(f"map {self._label()} is not a bloom filter")
        cdef bytes v = self._value(value)
        return bloom_peek(self._m, <const uint8_t*>v) == 0

    def pop(self):
        """Queues and stacks: the oldest (queue) or newest (stack) value, removed; None
        when empty (the lookup-and-delete command)."""
        return self.lookup_and_delete(b"")

    def peek(self):
        """Queues and stacks: the value :meth:`pop` would give, left in place (the
        lookup command)."""
        return self.lookup(b"")

    # --- batch commands: the hash maps' (__htab_map_lookup_and_delete_batch: a bucket
    # number as the cursor, whole buckets at a time) and the generic ones of
    # kernel/bpf/syscall.c (generic_map_*_batch: the last key as the cursor) ---

    def lookup_batch(self, count, cursor=None, elem_flags=0, flags=0):
        """BPF_MAP_LOOKUP_BATCH: up to ``count`` (key, value) pairs from ``cursor`` (None:
        the start), in the kernel's order.  Returns (items, next cursor, done): the
        cursor is what the kernel writes to out_batch (None when it writes nothing) and
        ``done`` its ENOENT, the map exhausted (``items`` may still hold the last ones).
        Hash maps: the cursor is a u32 bucket number and buckets are taken whole (ENOSPC
        when the first does not fit in ``count``); ``flags`` must be 0.  Arrays and LPM
        tries: the cursor is the last key given.  ``elem_flags``: 0, or BPF_F_LOCK for a
        value with a bpf_spin_lock (copied under it; EINVAL for others).  Other map
        types: ENOTSUPP."""
        return self._lookup_batch_py(count, cursor, elem_flags, flags, False)

    def lookup_and_delete_batch(self, count, cursor=None, elem_flags=0, flags=0):
        """BPF_MAP_LOOKUP_AND_DELETE_BATCH: :meth:`lookup_batch` that also deletes what
        it gives; hash maps only (others: ENOTSUPP)."""
        return self._lookup_batch_py(count, cursor, elem_flags, flags, True)

    def update_batch(self, items, elem_flags=0, flags=0):
        """BPF_MAP_UPDATE_BATCH: update each (key, value) in order (as BPF_ANY); the
        number done.  A refusal stops it: MapError with the kernel's errno and
        ``.count``, the number done before it.  Hash maps, arrays, LPM tries."""
        if self._pin is not None:
            return self._pin.apply(Map.update_batch, self, items, elem_flags, flags)
        return self._change_batch(list(items), elem_flags, True)

    def delete_batch(self, keys, elem_flags=0, flags=0):
        """BPF_MAP_DELETE_BATCH: delete each key in order; as :meth:`update_batch`.
        Hash maps and LPM tries."""
        if self._pin is not None:
            return self._pin.apply(Map.delete_batch, self, keys, elem_flags, flags)
        return self._change_batch([(k, None) for k in keys], elem_flags, False)

    def _lookup_batch_py(self, count, cursor, elem_flags, flags, delete):
        if self._pin is not None:
            return self._pin.apply(Map._lookup_batch_py, self, count, cursor, elem_flags,
                                   flags, delete)
        rc, items, out = self._lookup_batch(count, cursor, elem_flags, flags, delete)
        if rc and rc != ENOENT:
            self._batch_fail(rc, "lookup_and_delete_batch" if delete else "lookup_batch", 0)
        return items, out, rc == ENOENT

    def _lookup_batch(self, uint32_t count, cursor, elem_flags, flags, bint delete):
        """(0 or the errno, items, the cursor written or None), as the kernel's batch
        lookups leave them: on an error, the items are those given before it."""
        cdef MapStore* m = self._m
        cdef uint32_t batch, total = 0
        self._allow(True, delete, "lookup_and_delete_batch" if delete else "lookup_batch")
        if not self._batch_supports("lookup_and_delete" if delete else "lookup"):
            return ENOTSUPP, [], None
        # BPF_F_LOCK only for a value with a lock: copied under it
        if elem_flags & ~_isa.BPF_F_LOCK or (elem_flags and m.spin_lock_off < 0) or \
                (_is_hash(m) and flags):
            return EINVAL, [], None
        if count == 0:
            return 0, [], None
        items = []
        if not _is_hash(m):
            key = None if cursor is None else self._key(bytes(cursor)[:m.key_size])
            while len(items) < count:
                nxt = self.next_key(key)
                if nxt is None:
                    return ENOENT, items, (key if items else None)
                key = nxt
                value = self.lookup(key, elem_flags)
                if value is not None:
                    items.append((key, value))
            return 0, items, key
        batch = 0 if cursor is None else int.from_bytes(bytes(cursor)[:4], "little")
        if batch >= m.n_buckets:
            return ENOENT, [], None
        rc = 0
        while True:
            keys = self._bucket_keys(batch)
            if <uint32_t>len(keys) > count - total:
                rc = ENOSPC if total == 0 else 0
                break
            for key in keys:
                items.append((key, self.lookup(key, elem_flags)))
                if delete:
                    self.delete(key)
            total += len(keys)
            batch += 1
            if batch >= m.n_buckets:
                rc = ENOENT
                break
        return rc, items, int(batch).to_bytes(4, "little")

    cdef list _bucket_keys(self, uint32_t b):
        cdef int32_t e = map_bucket_head(self._m, b)
        out = []
        while e != NO_ELEM:
            out.append(PyBytes_FromStringAndSize(<char*>self._m.keys + <size_t>e * self._m.key_size,
                                                 self._m.key_size))
            e = self._m.next[e]
        return out

    cdef _allow(self, bint read, bint write, str what):
        # map_get_sys_perms: a map made BPF_F_RDONLY (BPF_F_WRONLY) refuses the commands
        # that write (read) it, and a frozen map those that write it
        if write and self._m.frozen:
            raise MapError(EPERM, f"map {self._label()}: {what}: the map is frozen")
        if write and self._m.flags & BPF_F_RDONLY or read and self._m.flags & BPF_F_WRONLY:
            mode = "BPF_F_RDONLY" if self._m.flags & BPF_F_RDONLY else "BPF_F_WRONLY"
            raise MapError(EPERM, f"map {self._label()}: {what}: the map is {mode} for "
                                   "user space")

    cdef bint _batch_supports(self, str op):
        # the kernel's map types with batch ops: the hash maps' (a hash of maps too),
        # the generic lookup and update of arrays (an array of maps too); maps of maps
        # give their inner maps' ids, as their lookups do
        if _is_local_storage(self._m) or _is_sock_map(self._m) or _is_xdp_map(self._m):
            return False
        if _is_hash(self._m):
            return True
        if self._m.type in (BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_PERCPU_ARRAY,
                            BPF_MAP_TYPE_ARRAY_OF_MAPS):
            return op == "lookup" or op == "update"
        return self._m.type == BPF_MAP_TYPE_LPM_TRIE and op != "lookup_and_delete"

    def _change_batch(self, list items, elem_flags, bint update):
        what = "update_batch" if update else "delete_batch"
        self._allow(False, True, what)
        if not self._batch_supports("update" if update else "delete"):
            self._batch_fail(ENOTSUPP, what, 0)
        # BPF_F_LOCK, for a value with a lock, the only flag (checked by the kernel)
        if elem_flags & ~_isa.BPF_F_LOCK or (elem_flags and self._m.spin_lock_off < 0):
            self._batch_fail(EINVAL, what, 0)
        done = 0
        for key, value in items:
            try:
                if update:
                    self.update(key, value, elem_flags)
                else:
                    self.delete(key)
            except MapError as exc:
                self._batch_fail(exc.errno, what, done)
            done += 1
        return done

    cdef _batch_fail(self, int code, str what, count):
        exc = MapError(code, f"map {self._label()}: {what} failed after {count} "
                             f"element(s): {_isa.errno_name(code)}")
        exc.count = count
        raise exc

    cdef object _take(self, bint remove):
        cdef bytes out = PyBytes_FromStringAndSize(NULL, self._m.value_size)
        if qs_take(self._m, <uint8_t*>PyBytes_AS_STRING(out), remove):
            return None
        return out

    cdef int64_t _stack_id(self, bytes k):
        cdef uint32_t sid = int.from_bytes(k, "little")
        return sid if sid < self._m.n_buckets else -1

    cdef bint _slot_used(self, int32_t e):
        cdef uint64_t cgroup
        if self._m.type == BPF_MAP_TYPE_CGROUP_ARRAY:
            memcpy(&cgroup, map_value(self._m, e, 0), 8)
            return cgroup != 0
        return self._m.inner[e] != NULL if self._m.inner != NULL else self._m.perf_cpu[e] >= 0

    # --- perf event arrays ---

    def open(self, index, cpu=None):
        """Open perf event array slot ``index`` for events from ``cpu`` (default: the CPU
        numbered ``index``, as one perf buffer per CPU is usually set up)."""
        if self._pin is not None:
            return self._pin.apply(Map.open, self, index, cpu)
        self._check_perf_slot(index)
        self._m.perf_cpu[index] = index if cpu is None else cpu

    def set_counter(self, index, value, enabled=0, running=0):
        """Set the counter bpf_perf_event_read reads from open slot ``index``, and the
        enabled and running times bpf_perf_event_read_value reports with it."""
        if self._pin is not None:
            return self._pin.apply(Map.set_counter, self, index, value, enabled, running)
        self._check_perf_slot(index)
        if self._m.perf_cpu[index] < 0:
            raise MapError(ENOENT, f"map {self._label()}: slot {index} is not open")
        self._m.counters[3 * index] = value
        self._m.counters[3 * index + 1] = enabled
        self._m.counters[3 * index + 2] = running

    cdef _check_perf_slot(self, index):
        if self._m.type != BPF_MAP_TYPE_PERF_EVENT_ARRAY:
            raise TypeError(f"map {self._label()} is not a perf event array")
        if not 0 <= index < self._m.max_entries:
            raise MapError(E2BIG, f"map {self._label()}: slot {index} is past max_entries "
                                  f"{self._m.max_entries}")

    # --- user ring buffers: this side is the producer, as libbpf's user_ring_buffer ---

    cdef MapStore* _user_ring(self) except NULL:
        if self._m.type != BPF_MAP_TYPE_USER_RINGBUF:
            raise TypeError(f"map {self._label()} is not a user ring buffer")
        return self._m

    def reserve(self, size):
        """user_ring_buffer__reserve: room for a sample of ``size`` bytes, its header
        marked busy (the program's bpf_user_ringbuf_drain stops there until it is
        submitted); the sample's position, for :meth:`submit` or :meth:`discard`.
        MapError E2BIG when it could never fit, ENOSPC when the ring has no room now."""
        cdef MapStore* m = self._user_ring()
        cdef uint64_t total
        cdef uint32_t hdr[2]
        if not 0 <= size < RB_DISCARD:
            raise MapError(E2BIG, f"map {self._label()}: a sample of {size} bytes does not "
                                  f"fit a ring buffer header")
        total = (<uint64_t>size + RB_HDR + 7) & ~7ull
        if total > m.max_entries:
            raise MapError(E2BIG, f"map {self._label()}: a sample of {size} bytes is larger "
                                  f"than the ring")
        if m.max_entries - (m.prod_pos - m.cons_pos) < total:
            raise MapError(ENOSPC, f"map {self._label()}: no room for a sample of {size} "
                                   f"bytes until the program drains the ring")
        hdr[0], hdr[1] = <uint32_t>size | RB_BUSY, 0
        memcpy(m.values + (m.prod_pos & (m.max_entries - 1)), hdr, RB_HDR)
        pos = m.prod_pos
        m.prod_pos += total
        return pos

    cdef uint8_t* _reserved(self, pos, uint32_t* size) except NULL:
        cdef MapStore* m = self._user_ring()
        cdef uint32_t hdr
        cdef size_t at
        if not (isinstance(pos, int) and m.cons_pos <= pos < m.prod_pos and pos % 8 == 0):
            raise ValueError(f"map {self._label()}: {pos!r} is not a reserved sample")
        at = <uint64_t>pos & (m.max_entries - 1)
        memcpy(&hdr, m.values + at, 4)
        if not hdr & RB_BUSY or hdr & RB_DISCARD:
            raise ValueError(f"map {self._label()}: the sample at {pos} is not reserved")
        size[0] = hdr & ~RB_BUSY
        # the data follows the header in the doubled buffer, as in libbpf's double mapping
        return m.values + at + RB_HDR

    def submit(self, pos, data=b""):
        """user_ring_buffer__submit: write ``data`` (at most the reserved size; bytes not
        written keep what the ring held) into the sample reserved at ``pos`` and hand it
        to the program."""
        cdef uint32_t size
        cdef uint8_t* at = self._reserved(pos, &size)
        cdef const uint8_t[:] view = memoryview(data).cast("B")
        if <size_t>view.shape[0] > size:
            raise ValueError(f"map {self._label()}: {view.shape[0]} bytes do not fit the "
                             f"{size}-byte sample")
        if view.shape[0]:
            memcpy(at, &view[0], view.shape[0])
        rb_commit(self._m, at, False)

    def discard(self, pos):
        """user_ring_buffer__discard: the sample reserved at ``pos`` is skipped."""
        cdef uint32_t size
        rb_commit(self._m, self._reserved(pos, &size), True)

    def drain(self):
        """Take the records produced so far: perf event arrays give (cpu, bytes) per
        bpf_perf_event_output, ring buffers the bytes of each submitted record."""
        if self._pin is not None:
            return self._pin.apply(Map.drain, self)
        if self._m.type == BPF_MAP_TYPE_PERF_EVENT_ARRAY:
            return self._drain_perf()
        if self._m.type == BPF_MAP_TYPE_RINGBUF:
            return self._drain_ring()
        raise TypeError(f"map {self._label()} is neither a perf event array nor a ring buffer")

    cdef list _drain_perf(self):
        cdef size_t pos = 0
        cdef uint32_t cpu, size
        out = []
        while pos < self._m.events_len:
            memcpy(&cpu, self._m.events + pos, 4)
            memcpy(&size, self._m.events + pos + 4, 4)
            out.append((cpu, PyBytes_FromStringAndSize(<char*>self._m.events + pos + 8, size)))
            pos += 8 + size
        if self._m.events_len > PERF_EVENTS_KEPT:
            # the store stays resident only as far as events fill it again, not to its
            # high-water mark (map_memory.pxi, store_zero)
            store_zero(self._m.events, self._m.events_len)
        self._m.events_len = 0
        return out

    cdef list _drain_ring(self):
        cdef MapStore* m = self._m
        cdef uint64_t mask = m.max_entries - 1
        cdef uint32_t hdr
        cdef size_t at, first
        out = []
        while m.cons_pos < m.prod_pos:
            memcpy(&hdr, m.values + (m.cons_pos & mask), 4)
            if hdr & RB_BUSY:
                break
            if not hdr & RB_DISCARD:
                at = (m.cons_pos + RB_HDR) & mask
                size = hdr & ~(RB_BUSY | RB_DISCARD)
                first = min(size, m.max_entries - at)
                out.append(PyBytes_FromStringAndSize(<char*>m.values + at, first)
                           + PyBytes_FromStringAndSize(<char*>m.values, size - first))
            m.cons_pos += _rb_total(hdr)
        return out

    @property
    def consumer_pos(self):
        self.sync()
        return self._m.cons_pos

    @property
    def producer_pos(self):
        self.sync()
        return self._m.prod_pos

    def next_key(self, key=None):
        """The key after ``key`` in iteration order (None or a missing key: the first);
        None after the last."""
        if self._pin is not None:
            return self._pin.apply(Map.next_key, self, key)
        self._allow(True, False, "next_key")
        cdef bytes k
        cdef bytes out = PyBytes_FromStringAndSize(NULL, self._m.key_size)
        cdef int64_t sid
        if self._m.type == BPF_MAP_TYPE_QUEUE or self._m.type == BPF_MAP_TYPE_STACK:
            self._fail(-EINVAL, "next_key (queues and stacks have no keys)", b"")
        if self._m.type == BPF_MAP_TYPE_BLOOM_FILTER:
            self._fail(-EOPNOTSUPP, "next_key (a bloom filter has no keys)", b"")
        if self._m.type == BPF_MAP_TYPE_ARENA:       # arena_map_get_next_key
            self._fail(-EOPNOTSUPP, "next_key (an arena has no keys)", b"")
        if _is_local_storage(self._m):
            self._fail(-ENOTSUPP, "next_key (local storage: keys() lists the owners)", b"")
        if _is_cgroup_storage(self._m):
            return None         # cgroup_storage_get_next_key: no cgroup has storage
        if self._m.type == BPF_MAP_TYPE_STACK_TRACE:
            # the kernel's stack_map_get_next_key: a missing or past-the-end key restarts
            sid = -1 if key is None else self._stack_id(self._key(key))
            sid = 0 if sid < 0 or not self._m.st_nr[sid] else sid + 1
            while sid < self._m.n_buckets and not self._m.st_nr[sid]:
                sid += 1
            return None if sid >= self._m.n_buckets else (<uint32_t>sid).to_bytes(4, "little")
        if key is None:
            rc = map_next_key(self._m, NULL, <uint8_t*>PyBytes_AS_STRING(out))
        else:
            k = self._key(key)
            rc = map_next_key(self._m, <const uint8_t*>k, <uint8_t*>PyBytes_AS_STRING(out))
        return None if rc else out

    def keys(self):
        if self._pin is not None:
            return self._pin.apply(Map.keys, self)
        out = []
        if _is_local_storage(self._m):
            for b in range(self._m.n_buckets):
                out += self._bucket_keys(b)
            return out
        key = self.next_key()
        while key is not None:
            out.append(key)
            key = self.next_key(key)
        return out

    @staticmethod
    def from_fd(int fd):
        """The open map whose handle is ``fd``, or None."""
        return _MAP_HANDLES.get(fd)

    def pin(self, path):
        """BPF_OBJ_PIN: share this map through a pin file (see docs/pinning.md)."""
        _pins().pin_map(self, path)

    @staticmethod
    def from_pin(path):
        """BPF_OBJ_GET: the map pinned at ``path``, linked to its pin file."""
        return _pins().get_map(path)

    def sync(self):
        """A pinned map: refresh from its pin file now (no-op for an unpinned map)."""
        if self._pin is not None:
            self._pin.apply(Map.sync, self)

    cpdef list _slots(self):
        # program arrays and maps of maps: [(key, Program or Map)] in iteration order
        cdef MapStore* m = self._m
        cdef uint32_t b
        cdef int32_t e
        if not _is_hash(m):
            return [(i.to_bytes(4, "little"), obj) for i, obj in sorted(self._programs.items())]
        out = []
        for b in range(m.n_buckets):
            e = map_bucket_head(m, b)
            while e != NO_ELEM:
                out.append((PyBytes_FromStringAndSize(<char*>m.keys + <size_t>e * m.key_size,
                                                      m.key_size), self._programs[e]))
                e = m.next[e]
        return out

    cpdef _load_slots(self, list items):
        # inserted in reverse, so that a hash of maps lists them in the given order
        for k, _ in self._slots():
            self.delete(k)
        try:
            for k, obj in reversed(items):
                self.update(k, obj)
        except (MapError, ValueError) as exc:
            for k, _ in self._slots():
                self.delete(k)
            raise ValueError(str(exc)) from None

    def __iter__(self):
        return iter(self.keys())

    def __len__(self):
        if self._m.type in (BPF_MAP_TYPE_RINGBUF, BPF_MAP_TYPE_USER_RINGBUF,
                            BPF_MAP_TYPE_BLOOM_FILTER, BPF_MAP_TYPE_ARENA):
            return 0
        if self._m.type == BPF_MAP_TYPE_QUEUE or self._m.type == BPF_MAP_TYPE_STACK:
            return self._m.prod_pos - self._m.cons_pos
        if _is_hash(self._m) or self._m.type in (BPF_MAP_TYPE_LPM_TRIE, BPF_MAP_TYPE_STACK_TRACE):
            return self._m.count
        return self._m.max_entries

    cdef object _by_btf(self, key):
        """The BTF view (``typed()``) when ``key`` is not bytes and the map has BTF key
        and value types; None for a bytes key."""
        if isinstance(key, (bytes, bytearray, memoryview)):
            return None
        if self.key_type is None or self.value_type is None:
            raise TypeError(f"map {self._label()}: keys are bytes of key_size "
                            f"{self._m.key_size} (a map without BTF types); got "
                            f"{type(key).__name__}: use typed(key_format, value_format)")
        return self._btf()

    cdef object _btf(self):
        if self._btf_view is None:
            self._btf_view = self.typed()
        return self._btf_view

    @property
    def Key(self):
        """The named tuple class of a struct key, per the map's BTF (None otherwise)."""
        return self._btf().Key

    @property
    def Value(self):
        """The named tuple class of a struct value, per the map's BTF (None otherwise)."""
        return self._btf().Value

    def __contains__(self, key):
        view = self._by_btf(key)
        return key in view if view is not None else self.lookup(key) is not None

    def __getitem__(self, key):
        """``m[b"..."]`` gives bytes; a key that is not bytes (a named tuple, dict or int)
        is encoded by the map's BTF key type and gives the BTF-decoded value."""
        view = self._by_btf(key)
        if view is not None:
            return view[key]
        value = self.lookup(key)
        if value is None:
            raise KeyError(key)
        return value

    def __setitem__(self, key, value):
        """A key that is not bytes takes a BTF-encoded value too (see ``__getitem__``)."""
        view = self._by_btf(key)
        if view is not None:
            view[key] = value
        else:
            self.update(key, value)

    def __delitem__(self, key):
        view = self._by_btf(key)
        if view is not None:
            del view[key]
            return
        try:
            self.delete(key)
        except MapError as exc:
            if exc.errno == ENOENT:
                raise KeyError(key) from None
            raise

    def items(self):
        """The (key, value) pairs of the entries present.  Keys the kernel's
        get_next_key lists without a value (a DEVMAP's or CPUMAP's empty slots:
        dev_map_get_next_key, cpu_map_get_next_key) are left out, as a lookup of them
        finds nothing."""
        return [(k, v) for k in self.keys() for v in (self.lookup(k),) if v is not None]

    def values(self):
        """The values of the entries present (see ``items``)."""
        return [v for _, v in self.items()]

    def typed(self, key=None, value=None, key_names=None, value_names=None):
        """A view with keys and values encoded by struct formats, or without formats
        by the map's BTF types (named tuples for structs; pyebpf.mapview)."""
        from .mapview import BtfMap, TypedMap
        if key is None and value is None:
            return BtfMap(self)
        if key is None or value is None:
            raise TypeError("typed(): give both key and value formats, or neither (BTF)")
        return TypedMap(self, key, value, key_names, value_names)

    def get(self, key, default=None):
        try:
            return self[key]
        except KeyError:
            return default

    def __repr__(self):
        return (f"<pyebpf.Map {self._label()}: key {self._m.key_size} B, value "
                f"{self._m.value_size} B, {len(self)}/{self._m.max_entries} entries>")


import collections.abc as _abc
_abc.MutableMapping.register(Map)


# Where the calling process's user space ends (TASK_SIZE_MAX): a longer mapping is
# ENOMEM before the map is asked (do_mmap -> __get_unmapped_area)
_HOST_TASK_SIZE = _isa.TASK_SIZE_MAX.get(
    {"aarch64": "arm64"}.get(_os.uname().machine, _os.uname().machine),
    _isa.TASK_SIZE_MAX["x86_64"])


@cython.final
cdef class _MapValues:
    """The exporter behind Map.mmap's memoryview: it keeps the map alive and counts a
    writable mapping in the map's ``_write_maps`` while the view holds it."""
    cdef Map map
    cdef bint writable
    cdef Py_ssize_t offset, length
    cdef object _hold       # a pinned map's: the writable mapping counted in its pin file

    def __cinit__(self, Map map, bint writable, Py_ssize_t offset, Py_ssize_t length):
        self.map, self.writable, self.offset, self.length = map, writable, offset, length

    def __getbuffer__(self, Py_buffer* buf, int flags):
        cdef MapStore* m = self.map._m
        cdef uint8_t* base = m.arena.base if m.arena != NULL else m.values
        PyBuffer_FillInfo(buf, self, base + self.offset, self.length, not self.writable, flags)
        if self.writable:
            self.map._write_maps += 1

    def __releasebuffer__(self, Py_buffer* buf):
        if self.writable:
            self.map._write_maps -= 1
        if self._hold is not None:
            self._hold.close()
            self._hold = None

    def _counted(self, hold):
        """``hold`` (pyebpf.pinning) counts this writable mapping for every process
        that has the map's pin until the view is released (``hold.close()``)."""
        self._hold = hold
