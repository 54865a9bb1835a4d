"""A big map costs resident memory for the elements used, not for its max_entries:
its storage is zero pages until an element is written (pyebpf/maps.pxi, _elem_take)."""
import resource
import subprocess
import sys

import pytest
from conftest import child_python

from pyebpf import Map, pin_format
from pyebpf.isa import BPF_F_NO_COMMON_LRU

pytestmark = pytest.mark.skipif(sys.platform != "linux",
                                reason="resident memory is read from /proc/self/statm")

ENTRIES = 1 << 20
VALUE = 256                                     # 256 MiB of values in all
BOUND = 32 << 20                                # what a million untouched slots may cost
ENTRIES_BIG, VALUE_BIG = 1 << 16, 4096          # 256 MiB of values, few nodes


def _resident():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def _grown_by(make):
    before = _resident()
    m = make()
    grown = _resident() - before
    m.close()
    return grown


@pytest.mark.parametrize("kind", ["hash", "percpu_hash", "array"])
def test_a_new_maps_untouched_values_are_not_resident(kind):
    grown = _grown_by(lambda: Map.create(kind, 8 if "hash" in kind else 4, VALUE, ENTRIES,
                                         ncpu=1))
    assert grown < BOUND, f"creating a {ENTRIES}-entry {kind} map made {grown >> 20} MiB resident"


def test_a_used_hash_maps_elements_past_the_high_water_mark_stay_untouched():
    def make():
        m = Map.create("hash", 8, VALUE, ENTRIES)
        for k in range(100):
            m[k.to_bytes(8, "little")] = bytes([k]) * VALUE
        for k in range(0, 100, 2):
            del m[k.to_bytes(8, "little")]
        m[(1000).to_bytes(8, "little")] = bytes(VALUE)
        return m
    grown = _grown_by(make)
    assert grown < BOUND, f"a hash map with 51 elements made {grown >> 20} MiB resident"


def test_a_new_hash_maps_empty_buckets_are_not_resident():
    # 16M entries: their buckets alone are 64 MiB of int32 (a netobserv flows.o map's)
    grown = _grown_by(lambda: Map.create("hash", 8, 8, 1 << 24))
    assert grown < BOUND, f"creating a 16M-entry hash map made {grown >> 20} MiB resident"





@pytest.mark.parametrize("kind,flags", [("lru_hash", 0), ("lru_percpu_hash", 0),
                                         ("lru_hash", "BPF_F_NO_COMMON_LRU")])
def test_a_new_lru_maps_free_lists_are_not_resident(kind, flags):
    # bpf_lru_populate threads every node onto a free list at creation; pyebpf links
    # them only as pops reach them (lru.pxi, _free_fill)
    flags = BPF_F_NO_COMMON_LRU if flags else 0
    grown = _grown_by(lambda: Map.create(kind, 8, 8, 1 << 24, flags=flags, ncpu=2))
    assert grown < BOUND, f"creating a 16M-entry {kind} made {grown >> 20} MiB resident"


def test_a_used_lru_maps_untouched_nodes_stay_untouched():
    def make():
        m = Map.create("lru_hash", 8, 8, 1 << 24, ncpu=2)
        for k in range(1000):
            m[k.to_bytes(8, "little")] = k.to_bytes(8, "little")
        for k in range(0, 1000, 3):
            del m[k.to_bytes(8, "little")]
        return m
    grown = _grown_by(make)
    assert grown < BOUND, f"a 16M-entry LRU hash with 666 elements made {grown >> 20} MiB resident"



@pytest.mark.parametrize("flags", [0, BPF_F_NO_COMMON_LRU])
def test_loading_a_big_lru_from_a_pin_makes_resident_only_what_the_pin_holds(flags):
    # loading empties the map first (_map_reset): its values and buckets zero again as
    # pages given back (map_memory.pxi, store_zero), not written over with zeros
    def make():
        m = Map.create("lru_hash", 8, VALUE_BIG, ENTRIES_BIG, flags=flags, ncpu=2)
        pin_format.load(m, pin_format.dump(pinned))
        return m
    pinned = Map.create("lru_hash", 8, VALUE_BIG, ENTRIES_BIG, flags=flags, ncpu=2)
    for k in range(100):
        pinned[k.to_bytes(8, "little")] = bytes([k]) * VALUE_BIG
    grown = _grown_by(make)
    assert grown < BOUND, (f"a {ENTRIES_BIG}-entry LRU hash of {VALUE_BIG}-byte values "
                           f"loaded with 100 elements made {grown >> 20} MiB resident")


@pytest.mark.parametrize("flags", [0, BPF_F_NO_COMMON_LRU])
def test_loading_a_16m_entry_lru_from_a_pin_leaves_its_free_nodes_untouched(flags):
    # a pin's free lists are their lengths, and a load leaves each bpf_lru_list's free
    # nodes for pops to link (pin_format.pyx, _load_lru), as a new map does: 12 bytes a
    # node, 192 MiB for 16M, were all written
    def make():
        m = Map.create("lru_hash", 8, 8, 1 << 24, flags=flags, ncpu=2)
        pin_format.load(m, pinned)
        return m
    held = Map.create("lru_hash", 8, 8, 1 << 24, flags=flags, ncpu=2)
    for k in range(1000):
        held[k.to_bytes(8, "little")] = k.to_bytes(8, "little")
    for k in range(0, 1000, 3):
        del held[k.to_bytes(8, "little")]
    pinned = pin_format.dump(held)
    held.close()
    grown = _grown_by(make)
    assert grown < BOUND, (f"a 16M-entry LRU hash loaded with 666 elements made "
                           f"{grown >> 20} MiB resident")


def test_reloading_an_lru_gives_back_the_nodes_of_the_elements_it_held():
    # a reload empties the map first (_map_clear): the nodes and keys of a million
    # elements go back as pages (store_zero), then only the pin's few are written
    m = Map.create("lru_hash", 8, 8, 1 << 24, ncpu=1)
    few = pin_format.dump(m)
    for k in range(1 << 20):
        m[k.to_bytes(8, "little")] = k.to_bytes(8, "little")
    before = _resident()
    pin_format.load(m, few)
    given_back = before - _resident()
    assert given_back > 16 << 20, (f"reloading an LRU hash that held 1M elements gave back "
                                   f"{given_back >> 20} MiB")


DROPPED_MAP = """
import ctypes, sys
from pyebpf import Map
if sys.argv[1] == "raised":
    # the user's process keeps big blocks on the heap and does not trim it, as glibc's
    # own raising does (M_MMAP_THRESHOLD -3, M_TRIM_THRESHOLD -1 in glibc)
    libc = ctypes.CDLL(None)
    assert libc.mallopt(-3, 32 << 20) == 1 and libc.mallopt(-1, 64 << 20) == 1
def resident():
    return int(open("/proc/self/statm").read().split()[1]) * 4096
Map.create("array", 4, 1 << 10, 24 << 10).close()
before = resident()
dropped = Map.create("array", 4, 1 << 10, 16 << 10)
for k in range(0, 16 << 10, 4):
    dropped[k.to_bytes(4, "little")] = bytes(1 << 10)
kept = bytearray(1 << 20)
dropped.close()
del dropped
print(resident() - before)
"""


@pytest.mark.parametrize("threshold", ["glibc's", "raised"])
def test_a_dropped_maps_memory_goes_back_to_the_system(threshold):
    # a map's stores are mappings of their own (pyebpf/map_memory.pxi), whatever the
    # process's allocator does: glibc raises its mmap threshold to the size of each
    # mmap'd block freed (up to 32 MiB), and a user may set it, and a store taken from
    # the heap below it stays resident when dropped with anything allocated above it.
    # A fresh process: the heap's layout decides, and a test process's is its history's
    env, cwd = child_python()
    out = subprocess.run([sys.executable, "-c", DROPPED_MAP, threshold], env=env, cwd=cwd,
                         capture_output=True, text=True, check=True).stdout
    grown = int(out)
    assert grown < 8 << 20, (f"a dropped 16 MiB array left {grown >> 20} MiB resident "
                             f"({threshold} mmap threshold)")


# a child's set-up: 768 runs of a program whose bpf_perf_event_output sends 8 stack
# bytes and the whole 16 KiB frame (BPF_F_CURRENT_CPU), 12 MiB of events, undrained;
# ``before`` is the resident size after one run (what running costs, a JIT's compiler
# included, is not the map's)
EMIT_12_MIB = """
import pyebpf
from pyebpf import Map
def resident():
    return int(open("/proc/self/statm").read().split()[1]) * 4096
FRAME = bytes(16 << 10)
events = Map.create("perf_event_array", 4, 4, 1)
events.open(0, cpu=0)
prog = pyebpf.Program(pyebpf.asm.assemble(f\"\"\"
    r0 = 0
    *(u64 *)(r10 - 8) = r0
    r2 = map_fd({events.fd}) ll
    r3 = {(len(FRAME) << 32) | 0xFFFFFFFF} ll
    r4 = r10
    r4 += -8
    r5 = 8
    call 25
    exit\"\"\"), "sched_cls")
prog.run(FRAME, cpu=0)
events.drain()
before = resident()
for _ in range(768):
    assert prog.run(FRAME, cpu=0).retval == 0
"""

UNDRAINED_EVENTS = """
import ctypes, sys
if sys.argv[1] == "raised":
    libc = ctypes.CDLL(None)
    assert libc.mallopt(-3, 32 << 20) == 1 and libc.mallopt(-1, 64 << 20) == 1
""" + EMIT_12_MIB + """
kept = bytearray(1 << 20)
events.close()
del events, prog
print(resident() - before)
"""


@pytest.mark.parametrize("threshold", ["glibc's", "raised"])
def test_a_dropped_perf_event_arrays_undrained_events_go_back_to_the_system(threshold):
    # 12 MiB of undrained events are a store of the map's own (map_helpers.pxi,
    # bpf_perf_event_output), not a heap block that stays resident under ``kept``
    env, cwd = child_python()
    out = subprocess.run([sys.executable, "-c", UNDRAINED_EVENTS, threshold], env=env,
                         cwd=cwd, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    grown = int(out.stdout)
    assert grown < 4 << 20, (f"a dropped perf event array left {grown >> 20} MiB of its "
                             f"12 MiB of events resident ({threshold} mmap threshold)")


DRAINED_EVENTS = EMIT_12_MIB + """
assert len(events.drain()) == 768
print(resident() - before)
"""


def test_a_perf_event_arrays_drained_events_go_back_to_the_system():
    # 12 MiB of events drained: the store's pages go back (map_class.pxi, _drain_perf),
    # rather than staying resident to its high-water mark for the map's life
    env, cwd = child_python()
    out = subprocess.run([sys.executable, "-c", DRAINED_EVENTS], env=env, cwd=cwd,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    grown = int(out.stdout)
    assert grown < 4 << 20, (f"a drained perf event array kept {grown >> 20} MiB of its "
                             f"12 MiB of events resident")


IMPORT_KEEPS_MALLOC = """
import ctypes
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
# glibc raises its threshold after a mapped block is freed, unless it was set (mallopt)
libc.free(libc.malloc(24 << 20))
import pyebpf
from pyebpf import Map
Map.create("hash", 8, 64, 1 << 16).close()
def resident():
    return int(open("/proc/self/statm").read().split()[1]) * 4096
before = resident()
held = libc.malloc(16 << 20)
ctypes.memset(held, 1, 16 << 20)
libc.free(held)
print(resident() - before)
"""


def test_importing_pyebpf_leaves_the_processs_allocator_as_it_was():
    # a 16 MiB block under the raised threshold comes from the heap and stays there when
    # freed; a process-wide mallopt would have made it a mapping, given back at once
    env, cwd = child_python()
    out = subprocess.run([sys.executable, "-c", IMPORT_KEEPS_MALLOC], env=env, cwd=cwd,
                         capture_output=True, text=True, check=True).stdout
    assert int(out) >= 8 << 20, ("a freed 16 MiB heap block went back to the system: "
                                 "importing pyebpf changed glibc's mmap threshold")
