"""Map.mmap against the kernel's mmap of a map's fd (bpf_map_mmap, array_map_mmap): the
values of a BPF_F_MMAPABLE array laid out as the kernel maps them, shared with programs,
and the kernel's refusals."""
import ctypes
import errno
import gc
import mmap
import struct
import weakref

import pytest
from mapcheck import lookup_key, u32
from recorded_kernel import count_comparison

import pyebpf
from pyebpf import Map, asm, isa
from pyebpf.errors import MapError
from pyebpf.kernel import sysbpf
from pyebpf.kernel.oracle import KernelMap, KernelProgram

T = isa.MapType
ARRAY, HASH = T.BPF_MAP_TYPE_ARRAY, T.BPF_MAP_TYPE_HASH
MMAP = isa.BPF_F_MMAPABLE
FRAME = bytes(64)
RW, RO = mmap.PROT_READ | mmap.PROT_WRITE, mmap.PROT_READ


def _program(fd):
    # value 2's first word = value 0's first word + 1, which it returns
    return lookup_key(fd, 0) + """
        if r0 == 0x0 goto out
        r6 = *(u32 *)(r0 + 0x0)""" + lookup_key(fd, 2) + """
        if r0 == 0x0 goto out
        r6 += 1
        *(u32 *)(r0 + 0x0) = r6
        r0 = r6
        exit
    out:
        r0 = 0
        exit"""


def _kernel_shared():
    with KernelMap(ARRAY, 4, 12, 3, MMAP) as k:
        view = mmap.mmap(k.fd, mmap.PAGESIZE, flags=mmap.MAP_SHARED, prot=RW)
        view[0:4] = u32(41)
        k.update(u32(1), b"abcdefghijkl")
        with KernelProgram(asm.assemble(_program(k.fd)), "sched_cls") as prog:
            retval = prog.test_run(FRAME, ctx={}).retval
        seen = {"length": len(view), "values": view[:48].hex(), "retval": retval,
                "value 0": k.lookup(u32(0)).hex(), "value 2": k.lookup(u32(2)).hex()}
        view.close()
        return seen


def test_the_mapping_holds_the_values_programs_and_commands_see_as_the_kernels(
        kernel_observation):
    """Values at round_up(value_size, 8) from offset 0, to the end of the page; a write
    through the mapping is what a program reads and a lookup gives, and a program's and
    an update's writes show in the mapping."""
    theirs = kernel_observation("an mmapable array written through its mapping", "v1",
                                _kernel_shared)
    m = Map.create(ARRAY, 4, 12, 3, MMAP)
    view = m.mmap()
    view[0:4] = u32(41)
    m.update(u32(1), b"abcdefghijkl")
    retval = pyebpf.Program(asm.assemble(_program(m.fd)), "sched_cls").run(FRAME).retval
    ours = {"length": len(view), "values": view[:48].hex(), "retval": retval,
            "value 0": m.lookup(u32(0)).hex(), "value 2": m.lookup(u32(2)).hex()}
    count_comparison()
    assert ours == theirs


def test_the_mapping_of_a_big_array_covers_its_last_page():
    m = Map.create(ARRAY, 4, 4, 2000, MMAP)
    assert len(m.mmap()) == 4 * mmap.PAGESIZE    # 2000 values at 8 bytes: 16,000 bytes


def _freeze(fd):
    attr = ctypes.create_string_buffer(isa.BPF_ATTR_SIZE)
    struct.pack_into("<I", attr, 0, fd)
    return sysbpf._syscall(isa.BpfCmd.BPF_MAP_FREEZE, attr)[1]


def _kernel_refusal(kind, flags, frozen, writable):
    with KernelMap(kind, 4, 4, 3, flags) as k:
        if frozen:
            assert _freeze(k.fd) == 0
        try:
            mmap.mmap(k.fd, mmap.PAGESIZE, flags=mmap.MAP_SHARED,
                      prot=RW if writable else RO).close()
        except OSError as exc:
            return {"errno": exc.errno}
        return {"errno": 0}


CASES = {
    "array": (ARRAY, MMAP, False, True),
    "no-mmapable": (ARRAY, 0, False, False),
    "hash": (HASH, 0, False, False),
    "frozen-writable": (ARRAY, MMAP, True, True),
    "frozen-read-only": (ARRAY, MMAP, True, False),
    "rdonly-prog-writable": (ARRAY, MMAP | isa.BPF_F_RDONLY_PROG, False, True),
    "rdonly-prog-read-only": (ARRAY, MMAP | isa.BPF_F_RDONLY_PROG, False, False),
    "rdonly-writable": (ARRAY, MMAP | isa.BPF_F_RDONLY, False, True),
    "rdonly-read-only": (ARRAY, MMAP | isa.BPF_F_RDONLY, False, False),
    "wronly-read-only": (ARRAY, MMAP | isa.BPF_F_WRONLY, False, False),
    # do_mmap refuses the fd's access before bpf_map_mmap sees the map's type
    "hash-rdonly-writable": (HASH, isa.BPF_F_RDONLY, False, True),
    "no-mmapable-frozen-writable": (ARRAY, 0, True, True),
}


@pytest.mark.parametrize("case", CASES)
def test_a_mapping_is_given_or_refused_as_the_kernel_does(kernel_observation, case):
    kind, flags, frozen, writable = CASES[case]
    theirs = kernel_observation("mmap of a map's fd", case,
                                lambda: _kernel_refusal(kind, flags, frozen, writable))
    m = Map.create(kind, 4, 4, 3, flags)
    if frozen:
        m.freeze()
    try:
        m.mmap(writable=writable).release()
        ours = {"errno": 0}
    except MapError as exc:
        ours = {"errno": exc.errno}
    count_comparison()
    assert ours == theirs


def _kernel_freeze_while_mapped():
    with KernelMap(ARRAY, 4, 4, 3, MMAP) as k:
        read_only = mmap.mmap(k.fd, mmap.PAGESIZE, flags=mmap.MAP_SHARED, prot=RO)
        writable = mmap.mmap(k.fd, mmap.PAGESIZE, flags=mmap.MAP_SHARED, prot=RW)
        mapped = _freeze(k.fd)
        writable.close()
        released = _freeze(k.fd)
        read_only.close()
        return {"writable mapping open": mapped, "released": released}


def test_freeze_is_ebusy_while_a_writable_mapping_is_open_as_in_the_kernel(
        kernel_observation):
    theirs = kernel_observation("BPF_MAP_FREEZE of a mapped array", "v1",
                                _kernel_freeze_while_mapped)
    m = Map.create(ARRAY, 4, 4, 3, MMAP)
    read_only, writable = m.mmap(writable=False), m.mmap()
    ours = {}
    for name in ("writable mapping open", "released"):
        try:
            m.freeze()
            ours[name] = 0
        except MapError as exc:
            ours[name] = exc.errno
        writable.release()
    read_only.release()
    count_comparison()
    assert ours == theirs == {"writable mapping open": errno.EBUSY, "released": 0}


def test_a_read_only_mapping_refuses_writes():
    view = Map.create(ARRAY, 4, 4, 3, MMAP).mmap(writable=False)
    with pytest.raises(TypeError):
        view[0:4] = u32(1)


def test_the_mapping_keeps_the_map_alive_until_released():
    m = Map.create(ARRAY, 4, 4, 3, MMAP)
    alive = weakref.ref(m)
    view = m.mmap()
    m.close()     # the handle table no longer holds it
    del m
    gc.collect()
    assert alive() is not None
    view.release()
    gc.collect()
    assert alive() is None


PAGE = mmap.PAGESIZE
# 1000 values of 4 bytes at 8 apart: 8,000 bytes, two pages
WINDOWS = {
    "first-page": (0, PAGE),
    "both-pages": (0, 2 * PAGE),
    "second-page": (PAGE, PAGE),
    "part-of-a-page": (PAGE, 100),
    "a-byte-past-the-values": (0, 2 * PAGE + 1),
    "a-page-past-the-values": (PAGE, 2 * PAGE),
    "offset-at-the-end": (2 * PAGE, PAGE),
    "offset-past-the-end": (1 << 40, PAGE),
    "offset-not-on-a-page": (100, PAGE),
    "length-0": (0, 0),
    "longer-than-user-space": (0, 1 << 47),
    "longer-than-the-values-not-user-space": (0, 1 << 40),
}


def _window_seen(view, lookup):
    # the window's bytes after value 512 (at 4096) and value 999 (at 7992) are updated
    return {"length": len(view), "nonzero bytes": [[i, b] for i, b in enumerate(bytes(view)) if b],
            "value 0 after writing the window's first word": lookup(u32(0)).hex(),
            "value 512 after": lookup(u32(512)).hex()}


def _kernel_window(offset, length):
    with KernelMap(ARRAY, 4, 4, 1000, MMAP) as k:
        k.update(u32(512), u32(0x5120))
        k.update(u32(999), u32(0x9990))
        try:
            view = mmap.mmap(k.fd, length, flags=mmap.MAP_SHARED, prot=RW, offset=offset)
        except OSError as exc:
            return {"errno": exc.errno}
        view[0:4] = u32(7)
        seen = _window_seen(view, k.lookup)
        view.close()
        return seen


@pytest.mark.parametrize("window", WINDOWS)
def test_a_window_of_the_values_is_mapped_or_refused_as_the_kernel_does(
        kernel_observation, window):
    """mmap's offset and length (array_map_mmap: a page-aligned window within the values'
    pages): the values the window shows, where its writes land, or the kernel's errno."""
    offset, length = WINDOWS[window]
    theirs = kernel_observation("a window of an mmapable array", window,
                                lambda: _kernel_window(offset, length))
    m = Map.create(ARRAY, 4, 4, 1000, MMAP)
    m.update(u32(512), u32(0x5120))
    m.update(u32(999), u32(0x9990))
    try:
        view = m.mmap(offset=offset, length=length)
    except MapError as exc:
        ours = {"errno": exc.errno}
    else:
        view[0:4] = u32(7)
        ours = _window_seen(view, m.lookup)
        view.release()
    count_comparison()
    assert ours == theirs


def test_the_default_length_runs_from_the_offset_to_the_end_of_the_last_page():
    m = Map.create(ARRAY, 4, 4, 1000, MMAP)
    m.update(u32(512), u32(0x5120))
    view = m.mmap(offset=PAGE)
    assert (len(view), bytes(view[0:4])) == (PAGE, u32(0x5120))


def test_the_default_length_from_past_the_end_is_refused_naming_the_window():
    with pytest.raises(MapError, match="4096 bytes from offset 8192 pass the end") as exc:
        Map.create(ARRAY, 4, 4, 1000, MMAP).mmap(offset=2 * PAGE)
    assert exc.value.errno == errno.EINVAL
