"""Bloom filters (BPF_MAP_TYPE_BLOOM_FILTER) against the kernel: creation and map_extra,
membership answers with BPF_F_ZERO_SEED (the kernel's hash: jhash of the value with seed
0 plus the hash function's index), from user space and from programs, and pinning."""
import errno

import pytest

import pyebpf
from pyebpf import Map, asm, isa
from pyebpf.errors import MapError

from mapcheck import outcome as _outcome, u32

BLOOM = isa.MapType.BPF_MAP_TYPE_BLOOM_FILTER
ZERO_SEED = isa.BPF_F_ZERO_SEED
FRAME = bytes(range(64))


@pytest.mark.parametrize("args", [
    (BLOOM, 4, 4, 8, ZERO_SEED, 0), (BLOOM, 0, 0, 8, 0, 0), (BLOOM, 0, 4, 0, 0, 0),
    (BLOOM, 0, 4, 8, 0, 16), (BLOOM, 0, 4, 8, isa.BPF_F_NO_PREALLOC, 0),
    (isa.MapType.BPF_MAP_TYPE_HASH, 4, 4, 8, 0, 3),
], ids=["key", "value0", "max0", "map-extra-past-0xf", "no-prealloc", "extra-on-a-hash"])
def test_creation_is_refused_with_the_kernels_errno(kernel_oracle, args):
    with pytest.raises(pyebpf.errors.KernelError) as theirs:
        kernel_oracle.KernelMap(*args[:5], map_extra=args[5])
    with pytest.raises(MapError) as ours:
        Map.create(*args[:5], map_extra=args[5])
    assert ours.value.errno == theirs.value.errno


@pytest.mark.parametrize("value_size, entries, hashes", [(4, 16, 0), (6, 100, 3), (16, 4, 1),
                                                         (8, 1000, 15)],
                         ids=["u32-default-5", "unaligned-3", "one-hash", "fifteen"])
def test_membership_answers_are_the_kernels_with_a_zero_seed(kernel_oracle, value_size,
                                                            entries, hashes):
    ours = Map.create(BLOOM, 0, value_size, entries, ZERO_SEED, map_extra=hashes)
    with kernel_oracle.KernelMap(BLOOM, 0, value_size, entries, ZERO_SEED,
                                 map_extra=hashes) as theirs:
        value = lambda i: (i * 2654435761 & 0xffffffff).to_bytes(4, "little") \
            .ljust(value_size, bytes([i & 0xff]))[:value_size]
        for i in range(0, 3 * entries, 3):
            ours.push(value(i))
            theirs.update(b"", value(i))
        probes = [value(i) for i in range(3 * entries)]
        mine = [ours.maybe_contains(v) for v in probes]
        assert mine == [theirs.maybe_contains(v) for v in probes]
        assert all(mine[::3])       # no false negatives


@pytest.mark.parametrize("op, args", [("delete", (b"",)), ("next_key", (None,)),
                                      ("lookup_and_delete", (b"",))],
                         ids=["delete", "next-key", "lookup-and-delete"])
def test_commands_a_bloom_filter_lacks_are_refused_as_the_kernel_does(kernel_oracle, op, args):
    ours = Map.create(BLOOM, 0, 4, 8, ZERO_SEED)
    with kernel_oracle.KernelMap(BLOOM, 0, 4, 8, ZERO_SEED) as theirs:
        assert _outcome(getattr(ours, op), *args) == _outcome(getattr(theirs, op), *args)


def test_a_push_with_flags_is_einval(kernel_oracle):
    ours = Map.create(BLOOM, 0, 4, 8, ZERO_SEED)
    with kernel_oracle.KernelMap(BLOOM, 0, 4, 8, ZERO_SEED) as theirs:
        assert _outcome(ours.push, u32(1), isa.BPF_EXIST) == \
            _outcome(theirs.update, b"", u32(1), isa.BPF_EXIST) == errno.EINVAL


def _push_then_peek(fd, pushed, probe):
    # push ``pushed`` and return bpf_map_peek_elem's answer for ``probe``
    return f"""
        *(u32 *)(r10 - 0x4) = {pushed:#x}
        r1 = map_fd({fd}) ll
        r2 = r10
        r2 += -0x4
        r3 = 0
        call 0x57
        *(u32 *)(r10 - 0x8) = {probe:#x}
        r1 = map_fd({fd}) ll
        r2 = r10
        r2 += -0x8
        call 0x59
        exit"""


@pytest.mark.parametrize("probe", [0x1234, 0x1235, 0xdead], ids=["pushed", "other", "another"])
def test_a_program_pushes_and_peeks_as_in_the_kernel(kernel_oracle, probe):
    ours = Map.create(BLOOM, 0, 4, 4, ZERO_SEED, map_extra=1)
    with kernel_oracle.KernelMap(BLOOM, 0, 4, 4, ZERO_SEED, map_extra=1) as theirs:
        mine = pyebpf.Program(asm.assemble(_push_then_peek(ours.fd, 0x1234, probe)),
                              "sched_cls")
        with kernel_oracle.KernelProgram(asm.assemble(_push_then_peek(theirs.fd, 0x1234,
                                                                      probe)),
                                         "sched_cls") as prog:
            assert mine.run(FRAME).retval == prog.test_run(FRAME, ctx={}).retval_signed


def test_a_pinned_bloom_filter_keeps_its_hash_count_and_bits(tmp_path, monkeypatch):
    monkeypatch.setenv("PYEBPF_PIN_ROOT", str(tmp_path / "pins"))
    m = Map.create(BLOOM, 0, 4, 64, ZERO_SEED, map_extra=2)
    for v in range(0, 40, 4):
        m.push(u32(v))
    m.pin("b")
    from pyebpf import pinning
    pinning._live.clear()
    got = Map.from_pin("b")
    assert [got.maybe_contains(u32(v)) for v in range(40)] == \
        [m.maybe_contains(u32(v)) for v in range(40)]
