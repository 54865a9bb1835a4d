"""Maps: pyebpf's against the kernel's, operation by operation (docs/kernel-notes.md, Maps)."""
import errno
import struct

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import pyebpf
from pyebpf import isa
from pyebpf import Map
from pyebpf.errors import MapError

from mapcheck import lookup_key

HASH, ARRAY = isa.MapType.BPF_MAP_TYPE_HASH, isa.MapType.BPF_MAP_TYPE_ARRAY
PERCPU_HASH = isa.MapType.BPF_MAP_TYPE_PERCPU_HASH
PERCPU_ARRAY = isa.MapType.BPF_MAP_TYPE_PERCPU_ARRAY
STACK_TRACE = isa.MapType.BPF_MAP_TYPE_STACK_TRACE
ZERO_SEED = isa.BPF_F_ZERO_SEED


def u32(v):
    return struct.pack("<I", v)


def u64(v):
    return struct.pack("<Q", v)


# --- creation ----------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    (HASH, 4, 8, 0, 0), (HASH, 0, 8, 4, 0), (HASH, 4, 0, 4, 0), (ARRAY, 8, 8, 4, 0),
    (ARRAY, 4, 8, 4, isa.BPF_F_NO_PREALLOC), (ARRAY, 4, 8, 4, ZERO_SEED),
    (HASH, 4, 8, 4, 1 << 9), (PERCPU_ARRAY, 2, 8, 4, 0),
    (STACK_TRACE, 8, 16, 4, 0), (STACK_TRACE, 4, 12, 4, 0), (STACK_TRACE, 4, 16, 0, 0),
    (STACK_TRACE, 4, 16, 4, isa.BPF_F_NO_PREALLOC),
], ids=["hash-max0", "hash-key0", "hash-value0", "array-key8", "array-noprealloc",
        "array-zeroseed", "hash-unknown-flag", "percpu-array-key2", "stack-trace-key8",
        "stack-trace-value12", "stack-trace-max0", "stack-trace-noprealloc"])
def test_creation_is_refused_with_einval_like_the_kernel(kernel_oracle, args):
    with pytest.raises(pyebpf.errors.KernelError) as theirs:
        kernel_oracle.KernelMap(*args)
    with pytest.raises(MapError) as ours:
        Map.create(*args)
    assert ours.value.errno == theirs.value.errno == errno.EINVAL


def test_map_types_are_accepted_by_name_and_number():
    assert Map.create("hash", 4, 4, 1).type == Map.create(HASH, 4, 4, 1).type == HASH
    assert Map.create("BPF_MAP_TYPE_ARRAY", 4, 4, 1).type == ARRAY


# --- operations, differential ---------------------------------------------------------

_ops = st.lists(st.tuples(st.sampled_from(["update", "delete", "lookup", "next"]),
                          st.integers(0, 11), st.integers(0, 3), st.integers(0, 2**64 - 1)),
                max_size=60)


def _apply(m, op, key, flags, value):
    """One operation on an engine or kernel map: its outcome as comparable data."""
    try:
        if op == "update":
            m.update(key, value, flags)
            return "ok"
        if op == "delete":
            m.delete(key)
            return "ok"
        if op == "lookup":
            return m.lookup(key)
        return m.next_key(key)
    except (MapError, pyebpf.errors.KernelError) as exc:
        return exc.errno


@pytest.mark.parametrize("kind, flags", [(HASH, ZERO_SEED), (ARRAY, 0)], ids=["hash", "array"])
@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_ops)
def test_every_operation_returns_what_the_kernel_returns(kernel_oracle, kind, flags, ops):
    ours = Map.create(kind, 4, 8, 8, flags)
    with kernel_oracle.KernelMap(kind, 4, 8, 8, flags) as theirs:
        for op, k, fl, v in ops:
            args = (op, u32(k), fl, u64(v))
            assert _apply(ours, *args) == _apply(theirs, *args), f"{op} key {k} flags {fl}"
        assert ours.keys() == theirs.keys(), "iteration order differs"
        assert [ours.lookup(k) for k in ours.keys()] == [theirs.lookup(k) for k in theirs.keys()]


@pytest.mark.parametrize("key_size", [4, 6, 8, 16])
def test_hash_iteration_order_is_a_zero_seed_kernel_maps(kernel_oracle, key_size):
    keys = [bytes((i * 37 + j * 11) % 256 for j in range(key_size)) for i in range(40)]
    ours = Map.create(HASH, key_size, 8, 64)
    with kernel_oracle.KernelMap(HASH, key_size, 8, 64, ZERO_SEED) as theirs:
        for k in keys:
            ours.update(k, u64(1))
            theirs.update(k, u64(1))
        ours.update(keys[5], u64(2))          # a plain hash map re-links the element
        theirs.update(keys[5], u64(2))
        assert ours.keys() == theirs.keys()


def test_a_full_hash_map_refuses_a_new_key_but_replaces_an_existing_one(kernel_oracle):
    ours = Map.create(HASH, 4, 8, 2)
    with kernel_oracle.KernelMap(HASH, 4, 8, 2) as theirs:
        for m in (ours, theirs):
            m.update(u32(1), u64(1))
            m.update(u32(2), u64(2))
        assert _apply(ours, "update", u32(3), 0, u64(3)) == _apply(theirs, "update", u32(3), 0, u64(3)) == errno.E2BIG
        assert _apply(ours, "update", u32(1), 0, u64(9)) == _apply(theirs, "update", u32(1), 0, u64(9)) == "ok"


def test_per_cpu_values_are_one_per_cpu(kernel_oracle):
    ncpu = kernel_oracle.possible_cpus()
    ours = Map.create(PERCPU_HASH, 4, 4, 4, ncpu=ncpu)
    with kernel_oracle.KernelMap(PERCPU_HASH, 4, 4, 4) as theirs:
        ours.update(u32(1), [u32(c + 10) for c in range(ncpu)])
        theirs.update(u32(1), b"".join(u32(c + 10).ljust(8, b"\0") for c in range(ncpu)))
        raw = theirs.lookup(u32(1))
        assert ours.lookup(u32(1)) == [raw[8 * c:8 * c + 4] for c in range(ncpu)]


# --- the Python mapping -------------------------------------------------------------

def test_a_map_is_a_mutable_mapping_of_bytes():
    import collections.abc
    m = Map.create(HASH, 4, 8, 8)
    m[u32(1)] = u64(7)
    assert isinstance(m, collections.abc.MutableMapping)
    assert (u32(1) in m, m[u32(1)], len(m), list(m)) == (True, u64(7), 1, [u32(1)])
    del m[u32(1)]
    with pytest.raises(KeyError):
        del m[u32(1)]
    assert m.get(u32(1)) is None


def test_an_array_always_holds_max_entries_zeroed_values():
    m = Map.create(ARRAY, 4, 4, 3)
    assert m.items() == [(u32(i), bytes(4)) for i in range(3)]
    with pytest.raises(MapError, match="EINVAL"):
        m.delete(u32(0))


def test_wrong_key_or_value_sizes_are_clear_errors():
    m = Map.create(HASH, 4, 8, 8, name="flows")
    with pytest.raises(ValueError, match="flows .* key is 2 bytes, the map's key_size is 4"):
        m.lookup(b"ab")
    with pytest.raises(ValueError, match="value is 1 bytes"):
        m.update(u32(0), b"x")


# --- from programs ------------------------------------------------------------------

def _counter(fd):
    # count packets per protocol byte 23 of the frame; return map_update's result
    return pyebpf.asm.assemble(f"""
        r6 = r1
        r0 = 0x0
        *(u32 *)(r10 - 0x4) = r0
        r2 = *(u32 *)(r6 + 0x10)
        *(u32 *)(r10 - 0x4) = r2
        r1 = map_fd({fd}) ll
        r2 = r10
        r2 += -0x4
        call 0x1
        if r0 == 0x0 goto new
        r1 = *(u64 *)(r0 + 0x0)
        r1 += 0x1
        *(u64 *)(r0 + 0x0) = r1
        r0 = 0x0
        exit
    new:
        r1 = 0x1
        *(u64 *)(r10 - 0x10) = r1
        r1 = map_fd({fd}) ll
        r2 = r10
        r2 += -0x4
        r3 = r10
        r3 += -0x10
        r4 = 0x1
        call 0x2
        exit""")


def test_a_counting_program_leaves_the_same_map_as_the_kernel(kernel_oracle):
    from scapy.all import ARP, IP, IPv6, Ether, UDP
    frames = [bytes(Ether() / IP() / UDP()), bytes(Ether() / IPv6() / UDP()),
              bytes(Ether() / ARP()), bytes(Ether() / IP() / UDP())]
    ours = Map.create(HASH, 4, 8, 8)
    prog = pyebpf.Program(_counter(ours.fd), "sched_cls")
    with kernel_oracle.KernelMap(HASH, 4, 8, 8) as theirs, \
            kernel_oracle.KernelProgram(_counter(theirs.fd), "sched_cls") as kprog:
        for frame in frames:
            assert prog.run(frame).retval == kprog.test_run(frame, ctx={}).retval_signed
        assert sorted(ours.items()) == sorted((k, theirs.lookup(k)) for k in theirs.keys())


def test_a_lookup_pointer_cannot_reach_past_the_maps_values():
    m = Map.create(ARRAY, 4, 8, 2)
    prog = pyebpf.Program(pyebpf.asm.assemble(lookup_key(m.fd) + """
        if r0 == 0x0 goto +1
        r0 = *(u64 *)(r0 + 0x10)
        exit"""), "sched_cls", verify=False)
    with pytest.raises(pyebpf.errors.MemoryFault, match="past the end of map"):
        prog.run(bytes(64))


# --- typed views ---------------------------------------------------------------------

def test_a_typed_view_encodes_ints_and_structs():
    m = Map.create(HASH, 8, 16, 8)
    flows = m.typed("IHH", "QQ", key_names=None, value_names=("packets", "bytes"))
    flows[(0x0A000001, 80, 443)] = (3, 180)
    assert m[struct.pack("<IHH", 0x0A000001, 80, 443)] == struct.pack("<QQ", 3, 180)
    got = flows[(0x0A000001, 80, 443)]
    assert (got.packets, got.bytes) == (3, 180) and list(flows) == [(0x0A000001, 80, 443)]


def test_a_typed_view_of_a_per_cpu_map_gives_one_value_per_cpu():
    m = Map.create(PERCPU_ARRAY, 4, 8, 2, ncpu=3)
    counts = m.typed("I", "Q")
    counts[1] = [1, 2, 3]
    assert counts[1] == [1, 2, 3] and counts[0] == [0, 0, 0]


def test_a_typed_view_refuses_formats_of_the_wrong_size():
    with pytest.raises(ValueError, match="key format '<H' packs 2 bytes; the map's key_size is 4"):
        Map.create(HASH, 4, 8, 2).typed("H", "Q")
