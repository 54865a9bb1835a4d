"""LRU hashes, LPM tries, maps of maps, perf event arrays and ring buffers, against the
kernel wherever test_run can show the behaviour (docs/kernel-notes.md, Maps)."""
import ctypes
import errno
import os
import struct

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import pyebpf
from pyebpf import isa
from pyebpf import Map
from pyebpf.kernel import sysbpf

from mapcheck import (U32_OR_MINUS_1, created, lookup_inner, lookup_key, outcome as _outcome,
                      perf_output_prog, u32)
from recorded_kernel import count_comparison

T = isa.MapType
LRU, LRU_PERCPU = T.BPF_MAP_TYPE_LRU_HASH, T.BPF_MAP_TYPE_LRU_PERCPU_HASH
LPM, RINGBUF, PERF = T.BPF_MAP_TYPE_LPM_TRIE, T.BPF_MAP_TYPE_RINGBUF, T.BPF_MAP_TYPE_PERF_EVENT_ARRAY
ARRAY_OF_MAPS, HASH_OF_MAPS = T.BPF_MAP_TYPE_ARRAY_OF_MAPS, T.BPF_MAP_TYPE_HASH_OF_MAPS
HASH, ARRAY = T.BPF_MAP_TYPE_HASH, T.BPF_MAP_TYPE_ARRAY
QUEUE, STACK = T.BPF_MAP_TYPE_QUEUE, T.BPF_MAP_TYPE_STACK
NO_PREALLOC, ZERO_SEED, NO_COMMON_LRU = isa.BPF_F_NO_PREALLOC, isa.BPF_F_ZERO_SEED, 2
ENOTSUPP = isa.Errno.ENOTSUPP
FRAME = bytes(range(64))


def u64(v):
    return struct.pack("<Q", v)


def lpm_key(plen, data):
    return u32(plen) + bytes(data)


def _run_both(kernel, ours_src, theirs_src, frame=FRAME, **fields):
    """retval of the engine's program and of the kernel's (sched_cls)."""
    ours = pyebpf.Program(pyebpf.asm.assemble(ours_src), "sched_cls").run(frame, **fields)
    with kernel.KernelProgram(pyebpf.asm.assemble(theirs_src), "sched_cls") as prog:
        return ours.retval, prog.test_run(frame, ctx={}).retval_signed


@pytest.fixture
def one_cpu():
    """Pin this process to one CPU, so the kernel's per-CPU LRU lists behave as one."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    yield
    os.sched_setaffinity(0, before)


# --- creation ------------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    (LRU, 4, 8, 4, NO_PREALLOC), (LRU, 4, 8, 0, 0), (HASH, 4, 8, 4, NO_COMMON_LRU),
    (LPM, 8, 4, 4, 0), (LPM, 4, 4, 4, NO_PREALLOC), (LPM, 261, 4, 4, NO_PREALLOC),
    (LPM, 8, 0, 4, NO_PREALLOC), (LPM, 8, 4, 4, NO_PREALLOC | ZERO_SEED),
    (RINGBUF, 0, 0, 12288, 0), (RINGBUF, 0, 0, 2048, 0), (RINGBUF, 4, 0, 4096, 0),
    (RINGBUF, 0, 4, 4096, 0), (RINGBUF, 0, 0, 4096, NO_PREALLOC),
    (PERF, 4, 8, 4, 0), (PERF, 4, 4, 0, 0), (PERF, 4, 4, 4, NO_PREALLOC),
    (ARRAY_OF_MAPS, 4, 4, 4, 0), (HASH_OF_MAPS, 4, 4, 4, 0),
    (QUEUE, 4, 4, 4, 0), (QUEUE, 0, 0, 4, 0), (STACK, 0, 4, 0, 0), (STACK, 0, 4, 4, NO_PREALLOC),
    (QUEUE, 0, 4, 4, ZERO_SEED), (QUEUE, 0, 4, 4, isa.BPF_F_RDONLY_PROG | isa.BPF_F_WRONLY_PROG),
], ids=["lru-noprealloc-enotsupp", "lru-max0", "hash-no-common-lru", "lpm-prealloc",
        "lpm-key4", "lpm-key261", "lpm-value0", "lpm-zeroseed", "ringbuf-not-pow2",
        "ringbuf-below-page", "ringbuf-key", "ringbuf-value", "ringbuf-flags", "perf-value8",
        "perf-max0", "perf-flags", "array-of-maps-no-inner", "hash-of-maps-no-inner",
        "queue-key", "queue-value0", "stack-max0", "stack-no-prealloc", "queue-zero-seed",
        "queue-rdonly-and-wronly-prog"])
def test_creation_is_refused_with_the_kernels_errno(kernel_oracle, args):
    theirs = created(kernel_oracle.KernelMap, *args)
    assert theirs != "ok" and created(Map.create, *args) == theirs


@pytest.mark.parametrize("args", [
    (LRU, 4, 8, 4, NO_COMMON_LRU | ZERO_SEED), (LRU_PERCPU, 4, 8, 4, 0),
    (LPM, 5, 1, 1, NO_PREALLOC), (LPM, 260, 4, 4, NO_PREALLOC), (RINGBUF, 0, 0, 8192, 0),
    (PERF, 4, 4, 1, 0), (QUEUE, 0, 4, 4, 0), (STACK, 0, 12, 1, 0),
    (QUEUE, 0, 8, 3, isa.BPF_F_RDONLY_PROG), (STACK, 0, 8, 3, isa.BPF_F_WRONLY_PROG),
    (QUEUE, 0, 4, 2, isa.BPF_F_NUMA_NODE)],
    ids=["lru-flags", "lru-percpu", "lpm-smallest", "lpm-largest", "ringbuf-2-pages", "perf",
         "queue", "stack-one", "queue-rdonly-prog", "stack-wronly-prog", "queue-numa-node"])
def test_creation_is_accepted_like_the_kernel(kernel_oracle, args):
    kernel_oracle.KernelMap(*args)
    assert Map.create(*args).max_entries >= args[3]


# --- LRU hashes ----------------------------------------------------------------------

@pytest.mark.parametrize("kind", [LRU, LRU_PERCPU], ids=["lru", "lru-percpu"])
def test_a_full_lru_map_accepts_a_new_key(kernel_oracle, one_cpu, kind):
    ncpu = kernel_oracle.possible_cpus()
    value = u64(1) if kind == LRU else u64(1) * ncpu
    ours = Map.create(kind, 4, 8, 8, ncpu=ncpu)
    with kernel_oracle.KernelMap(kind, 4, 8, 8) as theirs:
        for k in range(40):
            assert _outcome(ours.update, u32(k), value if kind == LRU else [u64(1)] * ncpu) \
                == _outcome(theirs.update, u32(k), value) == "ok"
        assert u32(39) in ours.keys() and u32(39) in theirs.keys()
        assert len(ours.keys()) <= 8 and len(theirs.keys()) <= 8


def _touch(fd, keys):
    """A program that looks up ``keys`` (marking them used) and returns how many it found."""
    lines = ["r6 = 0x0"]
    for k in keys:
        lines += [f"*(u32 *)(r10 - 0x4) = {k:#x}", f"r1 = map_fd({fd}) ll", "r2 = r10",
                  "r2 += -0x4", "call 0x1", "if r0 == 0x0 goto +1", "r6 += 0x1"]
    return "\n".join(lines + ["r0 = r6", "exit"])


def test_keys_a_program_uses_survive_a_burst_of_new_keys(kernel_oracle, one_cpu):
    hot = [3, 17, 29, 41, 55]
    ours = Map.create(LRU, 4, 8, 64)
    with kernel_oracle.KernelMap(LRU, 4, 8, 64) as theirs:
        for m in (ours, theirs):
            for k in range(64):
                m.update(u32(k), u64(k))
        assert _run_both(kernel_oracle, _touch(ours.fd, hot), _touch(theirs.fd, hot)) == (5, 5)
        for m in (ours, theirs):
            for k in range(1000, 1016):
                m.update(u32(k), u64(k))
        assert [u32(k) in ours.keys() for k in hot] == [u32(k) in theirs.keys() for k in hot] \
            == [True] * 5
        assert u32(1015) in ours.keys() and u32(1015) in theirs.keys()


# --- LPM tries -----------------------------------------------------------------------

_lpm_ops = st.lists(st.tuples(st.sampled_from(["update", "delete", "lookup", "next"]),
                              st.integers(0, 17), st.integers(0, 0xFFFF), st.integers(0, 3)),
                    max_size=60)


@settings(max_examples=80, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_lpm_ops)
def test_every_lpm_operation_returns_what_the_kernel_returns(kernel_oracle, ops):
    ours = Map.create(LPM, 6, 4, 6, NO_PREALLOC)
    with kernel_oracle.KernelMap(LPM, 6, 4, 6, NO_PREALLOC) as theirs:
        for op, plen, data, flags in ops:
            key = lpm_key(plen, data.to_bytes(2, "big"))
            if op == "update":
                args = ("update", key, u32(data), flags)
            elif op == "next":
                args = ("next_key", key)
            else:
                args = (op, key)
            assert _outcome(getattr(ours, args[0]), *args[1:]) == \
                _outcome(getattr(theirs, args[0]), *args[1:]), f"{op} /{plen} {data:#x} {flags}"
        assert ours.keys() == theirs.keys(), "iteration order differs"


def test_lpm_iteration_lists_more_specific_prefixes_first(kernel_oracle):
    prefixes = [(16, [192, 168, 0, 0]), (24, [192, 168, 0, 0]), (24, [192, 168, 128, 0]),
                (24, [192, 168, 1, 0]), (8, [10, 0, 0, 0]), (32, [10, 1, 2, 3])]
    ours = Map.create(LPM, 8, 4, 16, NO_PREALLOC)
    with kernel_oracle.KernelMap(LPM, 8, 4, 16, NO_PREALLOC) as theirs:
        for m in (ours, theirs):
            for i, (plen, data) in enumerate(prefixes):
                m.update(lpm_key(plen, data), u32(i))
        assert ours.keys() == theirs.keys()
        assert ours.keys()[:3] == [lpm_key(32, [10, 1, 2, 3]), lpm_key(8, [10, 0, 0, 0]),
                                   lpm_key(24, [192, 168, 0, 0])]


def _lpm_lookup_prog(fd, addr):
    # key {32, addr} on the stack; returns the value found, or -1
    return f"""
        *(u32 *)(r10 - 0x8) = 0x20
        *(u32 *)(r10 - 0x4) = {int.from_bytes(bytes(addr), "little"):#x}
        r1 = map_fd({fd}) ll
        r2 = r10
        r2 += -0x8
        call 0x1""" + U32_OR_MINUS_1


@pytest.mark.parametrize("addr, want", [([192, 168, 0, 7], 1), ([192, 168, 1, 7], 3),
                                        ([192, 168, 9, 9], 0), ([10, 0, 0, 1], -1)],
                         ids=["in-a-24", "in-another-24", "only-the-16", "no-match"])
def test_a_program_lookup_finds_the_longest_matching_prefix(kernel_oracle, addr, want):
    entries = [(16, [192, 168, 0, 0]), (24, [192, 168, 0, 0]), (24, [192, 168, 128, 0]),
               (24, [192, 168, 1, 0])]
    ours = Map.create(LPM, 8, 4, 8, NO_PREALLOC)
    with kernel_oracle.KernelMap(LPM, 8, 4, 8, NO_PREALLOC) as theirs:
        for m in (ours, theirs):
            for i, (plen, data) in enumerate(entries):
                m.update(lpm_key(plen, data), u32(i))
        assert _run_both(kernel_oracle, _lpm_lookup_prog(ours.fd, addr),
                         _lpm_lookup_prog(theirs.fd, addr)) == (want, want)


@pytest.mark.parametrize("op", ["update", "delete"])
def test_a_prefix_longer_than_the_key_is_einval(kernel_oracle, op):
    key = lpm_key(33, [1, 2, 3, 4])
    ours = Map.create(LPM, 8, 4, 4, NO_PREALLOC)
    with kernel_oracle.KernelMap(LPM, 8, 4, 4, NO_PREALLOC) as theirs:
        args = (key, u32(1)) if op == "update" else (key,)
        assert _outcome(getattr(ours, op), *args) == _outcome(getattr(theirs, op), *args) \
            == errno.EINVAL


def test_a_full_lpm_trie_refuses_a_new_prefix_with_enospc_but_replaces(kernel_oracle):
    ours = Map.create(LPM, 8, 4, 2, NO_PREALLOC)
    with kernel_oracle.KernelMap(LPM, 8, 4, 2, NO_PREALLOC) as theirs:
        for m in (ours, theirs):
            m.update(lpm_key(8, [10, 0, 0, 0]), u32(1))
            m.update(lpm_key(16, [10, 1, 0, 0]), u32(2))
        new, old = lpm_key(24, [10, 1, 2, 0]), lpm_key(8, [10, 0, 0, 0])
        assert _outcome(ours.update, new, u32(3)) == _outcome(theirs.update, new, u32(3)) \
            == errno.ENOSPC
        assert _outcome(ours.update, old, u32(4)) == _outcome(theirs.update, old, u32(4)) == "ok"


def test_an_ipv6_trie_matches_like_the_kernel(kernel_oracle):
    net = bytes.fromhex("20010db8000000000000000000000000")
    host = bytes.fromhex("20010db8000000000000000000000001")
    ours = Map.create(LPM, 20, 4, 4, NO_PREALLOC)
    with kernel_oracle.KernelMap(LPM, 20, 4, 4, NO_PREALLOC) as theirs:
        for m in (ours, theirs):
            m.update(lpm_key(32, net), u32(6))
            m.update(lpm_key(128, host), u32(7))
        for key in (lpm_key(128, host), lpm_key(128, net), lpm_key(128, bytes(16))):
            assert ours.lookup(key) == theirs.lookup(key)


# --- maps of maps ----------------------------------------------------------------------

def _outer_inner_prog(outer_fd, slot):
    """Look up ``slot`` of the outer map, then key 0 of the inner one: its u32, or -1/-2."""
    return lookup_inner(outer_fd, slot, "no_inner", "no_value") + """
        r0 = *(u32 *)(r0 + 0x0)
        exit
    no_inner:
        r0 = -1
        exit
    no_value:
        r0 = -2
        exit"""


def _kernel_outer(kernel, kind, tmpl):
    return kernel.KernelMap(kind, 4, 4, 4, inner_map_fd=tmpl.fd)


@pytest.mark.parametrize("kind", [ARRAY_OF_MAPS, HASH_OF_MAPS], ids=["array", "hash"])
def test_a_program_reads_an_inner_map_through_its_outer_map(kernel_oracle, kind):
    tmpl, inner = Map.create(ARRAY, 4, 4, 2), Map.create(ARRAY, 4, 4, 2)
    inner[u32(0)] = u32(77)
    outer = Map.create(kind, 4, 4, 4, inner_map=tmpl)
    outer[u32(1)] = inner
    with kernel_oracle.KernelMap(ARRAY, 4, 4, 2) as ktmpl, \
            kernel_oracle.KernelMap(ARRAY, 4, 4, 2) as kinner, \
            _kernel_outer(kernel_oracle, kind, ktmpl) as kouter:
        kinner.update(u32(0), u32(77))
        kouter.update(u32(1), u32(kinner.fd))
        assert _run_both(kernel_oracle, _outer_inner_prog(outer.fd, 1),
                         _outer_inner_prog(kouter.fd, 1)) == (77, 77)


def _kernel_map_id(fd):
    info = ctypes.create_string_buffer(80)
    attr = ctypes.create_string_buffer(isa.BPF_ATTR_SIZE)
    struct.pack_into("<IIQ", attr, 0, fd, len(info), ctypes.addressof(info))
    _, err = sysbpf._syscall(isa.BpfCmd.BPF_OBJ_GET_INFO_BY_FD, attr)
    assert err == 0
    return struct.unpack_from("<I", info, 4)[0]      # bpf_map_info.id


def _kernel_lookup_in_outer(kernel, kind):
    with kernel.KernelMap(ARRAY, 4, 4, 2) as ktmpl, \
            kernel.KernelMap(ARRAY, 4, 4, 2) as kinner, \
            _kernel_outer(kernel, kind, ktmpl) as kouter:
        kouter.update(u32(1), u32(kinner.fd))
        found = kouter.lookup(u32(1))
        return {"is the inner map's id": found == u32(_kernel_map_id(kinner.fd)),
                "empty slot": kouter.lookup(u32(2))}


@pytest.mark.parametrize("kind", [ARRAY_OF_MAPS, HASH_OF_MAPS], ids=["array", "hash"])
def test_a_lookup_from_user_space_gives_the_inner_maps_id(kernel_oracle, kernel_observation,
                                                         kind):
    """bpf_map_fd_sys_lookup_elem: the u32 id, not an fd; ``held`` gives the Map."""
    theirs = kernel_observation("lookup in a map of maps", f"{int(kind)}",
                                lambda: _kernel_lookup_in_outer(kernel_oracle, kind))
    tmpl, inner = Map.create(ARRAY, 4, 4, 2), Map.create(ARRAY, 4, 4, 2)
    outer = Map.create(kind, 4, 4, 4, inner_map=tmpl)
    outer[u32(1)] = inner
    ours = {"is the inner map's id": outer.lookup(u32(1)) == u32(inner.id),
            "empty slot": outer.lookup(u32(2))}
    count_comparison()
    assert ours == theirs == {"is the inner map's id": True, "empty slot": None}
    assert outer.held(u32(1)) is inner and outer.held(u32(2)) is None


@pytest.mark.parametrize("kind", [ARRAY_OF_MAPS, HASH_OF_MAPS], ids=["array", "hash"])
def test_an_empty_outer_slot_gives_null(kernel_oracle, kind):
    tmpl = Map.create(ARRAY, 4, 4, 2)
    outer = Map.create(kind, 4, 4, 4, inner_map=tmpl)
    with kernel_oracle.KernelMap(ARRAY, 4, 4, 2) as ktmpl, \
            _kernel_outer(kernel_oracle, kind, ktmpl) as kouter:
        assert _run_both(kernel_oracle, _outer_inner_prog(outer.fd, 2),
                         _outer_inner_prog(kouter.fd, 2)) == (-1, -1)


def test_an_inner_map_inserted_after_loading_is_reachable(kernel_oracle):
    tmpl = Map.create(HASH, 4, 4, 2)
    outer = Map.create(ARRAY_OF_MAPS, 4, 4, 4, inner_map=tmpl)
    prog = pyebpf.Program(pyebpf.asm.assemble(_outer_inner_prog(outer.fd, 3)), "sched_cls")
    inner = Map.create(HASH, 4, 4, 2)
    inner[u32(0)] = u32(5)
    outer[u32(3)] = inner
    with kernel_oracle.KernelMap(HASH, 4, 4, 2) as ktmpl, \
            kernel_oracle.KernelMap(HASH, 4, 4, 2) as kinner, \
            _kernel_outer(kernel_oracle, ARRAY_OF_MAPS, ktmpl) as kouter, \
            kernel_oracle.KernelProgram(pyebpf.asm.assemble(_outer_inner_prog(kouter.fd, 3)),
                                        "sched_cls") as kprog:
        kinner.update(u32(0), u32(5))
        kouter.update(u32(3), u32(kinner.fd))
        assert prog.run(FRAME).retval == kprog.test_run(FRAME, ctx={}).retval_signed == 5


@pytest.mark.parametrize("other", [(ARRAY, 4, 4, 3), (ARRAY, 4, 8, 2), (HASH, 4, 4, 2)],
                         ids=["max-entries", "value-size", "type"])
def test_an_inner_map_unlike_the_template_is_einval(kernel_oracle, other):
    outer = Map.create(ARRAY_OF_MAPS, 4, 4, 4, inner_map=Map.create(ARRAY, 4, 4, 2))
    with kernel_oracle.KernelMap(ARRAY, 4, 4, 2) as ktmpl, \
            kernel_oracle.KernelMap(*other) as kother, \
            _kernel_outer(kernel_oracle, ARRAY_OF_MAPS, ktmpl) as kouter:
        assert _outcome(outer.update, u32(0), Map.create(*other)) \
            == _outcome(kouter.update, u32(0), u32(kother.fd)) == errno.EINVAL


def test_array_of_maps_update_flags_are_einval(kernel_oracle):
    tmpl = Map.create(ARRAY, 4, 4, 2)
    outer = Map.create(ARRAY_OF_MAPS, 4, 4, 4, inner_map=tmpl)
    with kernel_oracle.KernelMap(ARRAY, 4, 4, 2) as ktmpl, \
            _kernel_outer(kernel_oracle, ARRAY_OF_MAPS, ktmpl) as kouter:
        assert _outcome(outer.update, u32(0), tmpl, isa.BPF_NOEXIST) \
            == _outcome(kouter.update, u32(0), u32(ktmpl.fd), isa.BPF_NOEXIST) == errno.EINVAL


def test_a_program_cannot_update_a_map_of_maps():
    """The kernel's verifier refuses it at load time; pyebpf refuses the call."""
    outer = Map.create(ARRAY_OF_MAPS, 4, 4, 4, inner_map=Map.create(ARRAY, 4, 4, 2))
    prog = pyebpf.Program(pyebpf.asm.assemble(f"""
        *(u32 *)(r10 - 0x4) = 0x0
        r1 = map_fd({outer.fd}) ll
        r2 = r10
        r2 += -0x4
        call 0x3
        exit"""), "sched_cls")
    with pytest.raises(pyebpf.errors.ExecutionError, match="only look up a map of maps"):
        prog.run(FRAME)


def test_an_inner_map_pointer_is_not_memory():
    """A lookup in a map of maps gives a map, not a value: reading it faults (the kernel's
    verifier refuses the load)."""
    tmpl = Map.create(ARRAY, 4, 4, 2)
    outer = Map.create(ARRAY_OF_MAPS, 4, 4, 4, inner_map=tmpl)
    outer[u32(0)] = tmpl
    prog = pyebpf.Program(pyebpf.asm.assemble(lookup_key(outer.fd) + """
        if r0 == 0x0 goto +1
        r0 = *(u64 *)(r0 + 0x0)
        exit"""), "sched_cls", verify=False)
    with pytest.raises(pyebpf.errors.MemoryFault):
        prog.run(FRAME)


# --- perf event arrays ---------------------------------------------------------------

def _perf_read(fd, flags):
    return f"""
        r1 = map_fd({fd}) ll
        r2 = {flags:#x} ll
        call 0x16
        exit"""


@pytest.mark.parametrize("flags, want", [
    (1 << 52, -errno.EINVAL), ((65 << 32) | 0, -errno.EFAULT), (4, -errno.E2BIG),
    (0xFFFFFFFF00000004, -errno.EINVAL), (1, -errno.ENOENT), ((64 << 32) | 2, -errno.ENOENT),
], ids=["flag-bit-52", "ctxlen-past-the-packet", "index-past-the-end", "high-bits",
        "empty-slot", "ctxlen-whole-packet-empty-slot"])
def test_perf_event_output_errors_are_the_kernels(kernel_oracle, flags, want):
    ours = Map.create(PERF, 4, 4, 4)
    with kernel_oracle.KernelMap(PERF, 4, 4, 4) as theirs:
        assert _run_both(kernel_oracle, perf_output_prog(ours.fd, flags),
                         perf_output_prog(theirs.fd, flags)) == (want, want)


@pytest.mark.parametrize("flags, want", [(4, -errno.E2BIG), (1, -errno.ENOENT),
                                         (1 << 32, -errno.EINVAL)],
                         ids=["index-past-the-end", "empty-slot", "flag-bit-32"])
def test_perf_event_read_errors_are_the_kernels(kernel_oracle, flags, want):
    ours = Map.create(PERF, 4, 4, 4)
    with kernel_oracle.KernelMap(PERF, 4, 4, 4) as theirs:
        assert _run_both(kernel_oracle, _perf_read(ours.fd, flags),
                         _perf_read(theirs.fd, flags)) == (want, want)


def test_perf_event_output_delivers_the_data_then_the_packet_bytes():
    """Not differential: test_run cannot read a perf buffer.  Expected per bpf_perf_event_output:
    the record is ``size`` bytes of data followed by ctxlen bytes from the packet start."""
    m = Map.create(PERF, 4, 4, 4)
    m.open(2)
    prog = pyebpf.Program(pyebpf.asm.assemble(perf_output_prog(m.fd, (5 << 32) | 2)), "sched_cls")
    assert prog.run(FRAME, cpu=2).retval == 0
    assert m.drain() == [(2, u64(0x1122334455667788) + FRAME[:5])]
    assert m.drain() == []


def test_perf_event_output_with_current_cpu_uses_the_runs_cpu_slot():
    """Not differential (see above): BPF_F_CURRENT_CPU selects the slot of the CPU the
    program runs on."""
    m = Map.create(PERF, 4, 4, 4)
    m.open(1)
    prog = pyebpf.Program(pyebpf.asm.assemble(perf_output_prog(m.fd, 0xFFFFFFFF, 0)), "sched_cls")
    assert [prog.run(FRAME, cpu=c).retval for c in (0, 1)] == [-errno.ENOENT, 0]
    assert m.drain() == [(1, b"")]


def test_perf_event_output_to_another_cpus_slot_is_eopnotsupp():
    """Not differential: the kernel refuses an event open on another CPU (event->oncpu)."""
    m = Map.create(PERF, 4, 4, 4)
    m.open(0, cpu=3)
    prog = pyebpf.Program(pyebpf.asm.assemble(perf_output_prog(m.fd, 0)), "sched_cls")
    assert prog.run(FRAME, cpu=0).retval == -errno.EOPNOTSUPP


def test_perf_event_read_returns_the_counter_the_user_set():
    """Not differential: pyebpf has no perf counters; Python sets the value read."""
    m = Map.create(PERF, 4, 4, 4)
    m.open(1)
    m.set_counter(1, 123456)
    prog = pyebpf.Program(pyebpf.asm.assemble(_perf_read(m.fd, 0xFFFFFFFF)), "sched_cls")
    assert prog.run(FRAME, cpu=1).retval == 123456


def test_a_perf_event_array_lookup_is_enotsupp(kernel_oracle):
    ours = Map.create(PERF, 4, 4, 4)
    with kernel_oracle.KernelMap(PERF, 4, 4, 4) as theirs:
        assert _outcome(ours.lookup, u32(0)) == _outcome(theirs.lookup, u32(0)) == ENOTSUPP


# --- ring buffers ----------------------------------------------------------------------

def _rb_output_then_query(fd, size, flags, query):
    """bpf_ringbuf_output of ``size`` (<= 512) stack bytes; its error, else
    bpf_ringbuf_query."""
    return f"""
        r1 = 0x0
        *(u64 *)(r10 - 0x8) = r1
        *(u64 *)(r10 - 0x10) = r1
        r1 = map_fd({fd}) ll
        r2 = r10
        r2 += {-max(size, 16):#x}
        r3 = {size:#x}
        r4 = {flags:#x}
        call 0x82
        if r0 != 0x0 goto out
        r1 = map_fd({fd}) ll
        r2 = {query:#x}
        call 0x86
    out:
        exit"""


@pytest.mark.parametrize("size, flags, query, want", [
    (16, 0, 0, 24), (5, 0, 0, 16), (16, 0, 1, 4096), (16, 0, 3, 24), (16, 0, 2, 0),
    (16, 3, 0, 24), (16, 4, 0, -errno.EINVAL), (0, 0, 0, 8), (16, 0, 9, 0),
], ids=["avail-data", "record-rounded-to-8", "ring-size", "prod-pos", "cons-pos",
        "wakeup-flags", "bad-flag", "empty-record", "unknown-query"])
def test_ringbuf_output_and_query_are_the_kernels(kernel_oracle, size, flags, query, want):
    ours = Map.create(RINGBUF, 0, 0, 4096)
    with kernel_oracle.KernelMap(RINGBUF, 0, 0, 4096) as theirs:
        assert _run_both(kernel_oracle, _rb_output_then_query(ours.fd, size, flags, query),
                         _rb_output_then_query(theirs.fd, size, flags, query)) == (want, want)


def test_a_128_mib_ring_buffer_is_created_and_sized_as_the_kernels(kernel_oracle):
    # netobserv-ebpf-agent's flows.o asks for one (docs/corpus.md): past the 16M
    # entries pyebpf allows other maps, as a ring buffer's entries are bytes
    ours = Map.create(RINGBUF, 0, 0, 1 << 27)
    with kernel_oracle.KernelMap(RINGBUF, 0, 0, 1 << 27) as theirs:
        assert _run_both(kernel_oracle, _rb_output_then_query(ours.fd, 16, 0, 1),
                         _rb_output_then_query(theirs.fd, 16, 0, 1)) == (1 << 27, 1 << 27)


def _rb_reserve(fd, size, discard=False):
    """Reserve ``size`` bytes, write 0x2a at the start when there is room, submit (or
    discard); returns 1 when the reservation succeeded, else 0."""
    write = "*(u8 *)(r0 + 0x0) = 0x2a\n" if size else ""
    return f"""
        r1 = map_fd({fd}) ll
        r2 = {size:#x}
        r3 = 0x0
        call 0x83
        if r0 == 0x0 goto none
        {write}r1 = r0
        r2 = 0x0
        call {0x85 if discard else 0x84:#x}
        r0 = 0x1
        exit
    none:
        r0 = 0x0
        exit"""


@pytest.mark.parametrize("size, want", [(8, 1), (4080, 1), (4081, 0), (4096, 0)],
                         ids=["small", "largest", "one-byte-too-many", "whole-ring"])
def test_ringbuf_reserve_fits_what_the_kernel_fits(kernel_oracle, size, want):
    ours = Map.create(RINGBUF, 0, 0, 4096)
    with kernel_oracle.KernelMap(RINGBUF, 0, 0, 4096) as theirs:
        assert _run_both(kernel_oracle, _rb_reserve(ours.fd, size),
                         _rb_reserve(theirs.fd, size)) == (want, want)


def test_an_unconsumed_ring_fills_up_with_eagain(kernel_oracle):
    ours = Map.create(RINGBUF, 0, 0, 4096)
    with kernel_oracle.KernelMap(RINGBUF, 0, 0, 4096) as theirs:
        results = [_run_both(kernel_oracle, _rb_output_then_query(ours.fd, 16, 0, 0),
                             _rb_output_then_query(theirs.fd, 16, 0, 0))[0] for _ in range(172)]
        with kernel_oracle.KernelProgram(pyebpf.asm.assemble(
                _rb_output_then_query(theirs.fd, 16, 0, 0)), "sched_cls") as kprog:
            kernel = [kprog.test_run(FRAME, ctx={}).retval_signed for _ in range(171)]
        assert results[-1] == kernel[-1] == -errno.EAGAIN
        assert results.index(-errno.EAGAIN) == 170


def test_ringbuf_records_are_drained_in_order():
    """Not differential (test_run does not consume the ring): output and submitted records
    come out in order, discarded ones not at all."""
    m = Map.create(RINGBUF, 0, 0, 4096)
    pyebpf.Program(pyebpf.asm.assemble(_rb_output_then_query(m.fd, 5, 0, 0)), "sched_cls").run(FRAME)
    pyebpf.Program(pyebpf.asm.assemble(_rb_reserve(m.fd, 3)), "sched_cls").run(FRAME)
    pyebpf.Program(pyebpf.asm.assemble(_rb_reserve(m.fd, 3, discard=True)), "sched_cls").run(FRAME)
    assert m.drain() == [bytes(5), b"\x2a\0\0"]
    assert m.consumer_pos == m.producer_pos == 16 + 16 + 16


def test_draining_frees_the_ring_for_more_records():
    m = Map.create(RINGBUF, 0, 0, 4096)
    prog = pyebpf.Program(pyebpf.asm.assemble(_rb_output_then_query(m.fd, 500, 0, 0)), "sched_cls")
    assert [prog.run(FRAME).retval for _ in range(8)][-1] == -errno.EAGAIN
    assert len(m.drain()) == 7
    assert prog.run(FRAME).retval == 512


def test_a_record_wrapping_the_ring_end_comes_out_whole():
    m = Map.create(RINGBUF, 0, 0, 4096)
    big = pyebpf.Program(pyebpf.asm.assemble(_rb_output_then_query(m.fd, 500, 0, 0)), "sched_cls")
    for _ in range(7):
        big.run(FRAME)
    m.drain()
    rec = pyebpf.Program(pyebpf.asm.assemble(_rb_reserve(m.fd, 3000)), "sched_cls")
    assert rec.run(FRAME).retval == 1          # starts at 3584 of a 4096-byte ring
    assert m.drain() == [b"\x2a" + bytes(2999)]


def test_a_record_still_reserved_at_exit_is_discarded():
    """The kernel's verifier refuses a program that can exit holding a record; pyebpf
    discards it, so the ring does not stay blocked."""
    m = Map.create(RINGBUF, 0, 0, 4096)
    pyebpf.Program(pyebpf.asm.assemble(f"""
        r1 = map_fd({m.fd}) ll
        r2 = 0x8
        r3 = 0x0
        call 0x83
        r0 = 0x0
        exit"""), "sched_cls", verify=False).run(FRAME)
    assert m.drain() == [] and m.consumer_pos == 16


def test_writing_past_a_reserved_record_faults():
    m = Map.create(RINGBUF, 0, 0, 4096)
    prog = pyebpf.Program(pyebpf.asm.assemble(f"""
        r1 = map_fd({m.fd}) ll
        r2 = 0x8
        r3 = 0x0
        call 0x83
        if r0 == 0x0 goto +1
        *(u64 *)(r0 + 0x8) = 0x1
        r0 = 0x0
        exit"""), "sched_cls", verify=False)
    with pytest.raises(pyebpf.errors.MemoryFault, match="ring buffer record"):
        prog.run(FRAME)


def test_submitting_a_pointer_that_is_not_a_record_is_refused():
    prog = pyebpf.Program(pyebpf.asm.assemble("""
        r1 = r10
        r1 += -0x8
        r2 = 0x0
        call 0x84
        r0 = 0x0
        exit"""), "sched_cls", verify=False)
    with pytest.raises(pyebpf.errors.ExecutionError, match="not a reserved ring buffer record"):
        prog.run(FRAME)


def test_held_gives_a_program_arrays_program_and_refuses_other_maps():
    prog = pyebpf.Program(pyebpf.asm.assemble("r0 = 0\nexit"), "sched_cls")
    progs = Map.create("prog_array", 4, 4, 2)
    progs[u32(0)] = prog
    assert progs.held(u32(0)) is prog and progs.held(u32(1)) is None
    with pytest.raises(TypeError, match="ask lookup"):
        Map.create(ARRAY, 4, 4, 2).held(u32(0))


def _kernel_lookup_in_prog_array(kernel):
    insns = pyebpf.asm.assemble("r0 = 0\nexit")
    with kernel.KernelProgram(insns, "sched_cls") as prog, \
            kernel.KernelMap(T.BPF_MAP_TYPE_PROG_ARRAY, 4, 4, 2) as progs:
        progs.update(u32(0), u32(prog.fd))
        info = ctypes.create_string_buffer(80)
        attr = ctypes.create_string_buffer(isa.BPF_ATTR_SIZE)
        struct.pack_into("<IIQ", attr, 0, prog.fd, len(info), ctypes.addressof(info))
        assert sysbpf._syscall(isa.BpfCmd.BPF_OBJ_GET_INFO_BY_FD, attr)[1] == 0
        ident = struct.unpack_from("<I", info, 4)[0]      # bpf_prog_info.id
        return {"is the program's id": progs.lookup(u32(0)) == u32(ident),
                "empty slot": progs.lookup(u32(1))}


def test_a_lookup_in_a_program_array_gives_the_programs_id(kernel_oracle, kernel_observation):
    """prog_fd_array_sys_lookup_elem: the program's id, a u32."""
    theirs = kernel_observation("lookup in a program array", "v1",
                                lambda: _kernel_lookup_in_prog_array(kernel_oracle))
    prog = pyebpf.Program(pyebpf.asm.assemble("r0 = 0\nexit"), "sched_cls")
    progs = Map.create("prog_array", 4, 4, 2)
    progs[u32(0)] = prog
    ours = {"is the program's id": progs.lookup(u32(0)) == u32(prog.id),
            "empty slot": progs.lookup(u32(1))}
    count_comparison()
    assert ours == theirs == {"is the program's id": True, "empty slot": None}


def test_programs_have_distinct_ids():
    insns = pyebpf.asm.assemble("r0 = 0\nexit")
    first, second = (pyebpf.Program(insns, "sched_cls") for _ in range(2))
    assert 0 < first.id != second.id
