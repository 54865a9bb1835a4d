"""BPF_MAP_TYPE_ARENA: creating one (arena_map_alloc's rules), its pages as user space
maps them, and programs reaching them.

The kernel is the oracle where it creates arenas; the machine these tests were written
on refuses every BPF_MAP_CREATE of an arena with EPERM (docs/reference.md, Arenas), so
the expected values are kernel/bpf/arena.c's of 6.18 (source-read), and the test that
asks the kernel skips with the reason it printed.
"""
import errno

import pytest

from pyebpf import Map
from pyebpf.errors import KernelError, MapError
from pyebpf.isa import BPF_F_MMAPABLE, BPF_F_NO_USER_CONV, BPF_F_SEGV_ON_FAULT, PAGE_SIZE

from mapcheck import created


def arena(pages=4, flags=BPF_F_MMAPABLE, map_extra=0, key_size=0, value_size=0):
    return Map.create("arena", key_size, value_size, pages, flags=flags, map_extra=map_extra)


# --- BPF_MAP_CREATE -----------------------------------------------------------------

# (what, key_size, value_size, max_entries, flags, map_extra, errno) as arena_map_alloc
# refuses them, in its order
REFUSED = [
    ("a key", 4, 0, 4, BPF_F_MMAPABLE, 0, errno.EINVAL),
    ("a value", 0, 8, 4, BPF_F_MMAPABLE, 0, errno.EINVAL),
    ("no pages", 0, 0, 0, BPF_F_MMAPABLE, 0, errno.EINVAL),
    ("no BPF_F_MMAPABLE", 0, 0, 4, 0, 0, errno.EINVAL),
    ("another flag", 0, 0, 4, BPF_F_MMAPABLE | 1, 0, errno.EINVAL),
    ("map_extra not page-aligned", 0, 0, 4, BPF_F_MMAPABLE, 0x1000_0010, errno.EINVAL),
    ("more than 4 GiB", 0, 0, (1 << 20) + 1, BPF_F_MMAPABLE, 0, errno.E2BIG),
    ("a range across 4 GiB", 0, 0, 4, BPF_F_MMAPABLE, (1 << 32) - PAGE_SIZE, errno.ERANGE),
]


@pytest.mark.parametrize("what,key,value,pages,flags,extra,expected", REFUSED,
                         ids=[r[0] for r in REFUSED])
def test_create_refuses_as_arena_map_alloc(what, key, value, pages, flags, extra, expected):
    assert created(Map.create, "arena", key, value, pages, flags, "", None, None,
                   extra) == expected


@pytest.mark.parametrize("flags", [BPF_F_MMAPABLE, BPF_F_MMAPABLE | BPF_F_SEGV_ON_FAULT,
                                   BPF_F_MMAPABLE | BPF_F_NO_USER_CONV])
def test_create_takes_the_arena_flags(flags):
    assert arena(flags=flags).flags == flags


def test_a_4_gib_arena_is_created():
    assert len(arena(pages=1 << 20).mmap()) == 1 << 32


def test_the_kernel_creates_an_arena_where_it_allows_one(kernel_oracle):
    try:
        kernel_oracle.KernelMap("arena", 0, 0, 4, BPF_F_MMAPABLE).close()
    except KernelError as exc:
        if exc.errno == errno.EPERM:
            pytest.skip(f"this kernel refuses arenas: {exc}")
        raise
    assert created(arena) == "ok"


# --- the address and user space's mapping ---------------------------------------------

def test_user_vm_start_is_map_extra():
    assert arena(map_extra=0x3_0000_0000).user_vm_start == 0x3_0000_0000


def test_a_chosen_start_keeps_the_pages_in_one_4_gib_window():
    a = arena(pages=1 << 19)
    start = a.user_vm_start
    assert start % PAGE_SIZE == 0
    assert start >> 32 == (start + (1 << 19) * PAGE_SIZE - 1) >> 32


def test_the_mapping_is_every_page_zero():
    view = arena(pages=3).mmap()
    assert len(view) == 3 * PAGE_SIZE and bytes(view) == bytes(3 * PAGE_SIZE)


def test_other_maps_have_no_user_vm_start():
    assert Map.create("array", 4, 4, 1).user_vm_start is None


def test_map_extra_of_another_map_is_refused():
    with pytest.raises(MapError) as exc:
        Map.create("array", 4, 4, 1, map_extra=PAGE_SIZE)
    assert exc.value.errno == errno.EINVAL


# --- a program's accesses (BPF_PROBE_MEM32) -------------------------------------------

def _unverified(arena_map, body):
    """A socket filter that names the arena (so it is one of its maps), r1 = its first
    page, then ``body``; unverified, as the accesses need no verifier to run."""
    from pyebpf import Program
    start = arena_map.user_vm_start
    return Program.from_asm(f"r2 = map_fd({arena_map.fd:#x}) ll\n"
                            f"r1 = {start:#x} ll\n{body}\nexit", "socket_filter",
                            verify=False)


def test_a_load_from_a_page_user_space_wrote_reads_it():
    a = arena()
    view = a.mmap()
    view[PAGE_SIZE + 8:PAGE_SIZE + 16] = (0x11223344).to_bytes(8, "little")
    prog = _unverified(a, "r0 = *(u64 *)(r1 + 4104)")
    assert prog.run(bytes(64)).retval == 0x11223344


def test_a_load_from_a_page_not_allocated_reads_zero():
    prog = _unverified(arena(), "r0 = 7\nr0 = *(u64 *)(r1 + 8)")
    assert prog.run(bytes(64)).retval == 0


def test_a_store_to_a_page_not_allocated_is_dropped():
    a = arena()
    prog = _unverified(a, "r3 = 5\n*(u64 *)(r1 + 0) = r3\nr0 = *(u64 *)(r1 + 0)")
    assert prog.run(bytes(64)).retval == 0
    assert bytes(a.mmap()[:8]) == bytes(8)


def test_a_store_to_an_allocated_page_is_seen_by_user_space():
    a = arena()
    view = a.mmap()
    view[0] = 0                                  # user space's touch allocates page 0
    prog = _unverified(a, "r3 = 5\n*(u64 *)(r1 + 16) = r3\nr0 = 0")
    prog.run(bytes(64))
    assert view[16] == 5


def test_only_the_low_32_bits_of_an_address_count():
    a = arena()
    a.mmap()[0:8] = (42).to_bytes(8, "little")
    low = a.user_vm_start & 0xFFFF_FFFF
    prog = _unverified(a, f"r1 = {low:#x} ll\nr0 = *(u64 *)(r1 + 0)")
    assert prog.run(bytes(64)).retval == 42


# --- the element commands (arena.c's map ops) -----------------------------------------

@pytest.mark.parametrize("command,args,expected", [
    ("lookup", (b"",), errno.EINVAL), ("update", (b"", b""), errno.EOPNOTSUPP),
    ("delete", (b"",), errno.EOPNOTSUPP), ("next_key", (None,), errno.EOPNOTSUPP)])
def test_the_element_commands_are_refused(command, args, expected):
    with pytest.raises(MapError) as exc:
        getattr(arena(), command)(*args)
    assert exc.value.errno == expected
