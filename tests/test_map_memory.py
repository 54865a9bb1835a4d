"""A big map costs resident memory for the elements used, not for its max_entries:
its storage is zero pages until an element is written (pyebpf/maps.pxi, _elem_take)."""
import resource
import sys

import pytest

from pyebpf import Map

pytestmark = pytest.mark.skipif(sys.platform != "linux",
                                reason="resident memory is read from /proc/self/statm")

ENTRIES = 1 << 20
VALUE = 256                                     # 256 MiB of values in all
BOUND = 32 << 20                                # what a million untouched slots may cost


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
