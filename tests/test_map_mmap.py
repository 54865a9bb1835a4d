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
