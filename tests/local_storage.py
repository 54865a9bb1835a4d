"""What the local-storage tests (socket, task and cgroup storage: test_sk_storage,
test_task_storage) share: the maps BPF_MAP_CREATE is asked for, and the programs that get,
read and delete an owner's storage.  A program starts with ``owner``, text that leaves the
owner (the socket, task or cgroup) in r6; ``get`` and ``delete`` are the helpers' ids."""
from __future__ import annotations

import pytest

from pyebpf import Map, isa

NO_PREALLOC = isa.BPF_F_NO_PREALLOC

CREATION = pytest.mark.parametrize("key, value, max_entries, flags", [
    (4, 8, 0, NO_PREALLOC), (4, 8, 0, NO_PREALLOC | isa.BPF_F_CLONE),
    (4, isa.MAX_LOCAL_STORAGE_VALUE_SIZE, 0, NO_PREALLOC),
    (4, isa.MAX_LOCAL_STORAGE_VALUE_SIZE + 1, 0, NO_PREALLOC),
    (4, 8, 0, 0), (4, 8, 1, NO_PREALLOC), (8, 8, 0, NO_PREALLOC), (4, 0, 0, NO_PREALLOC),
    (4, 8, 0, NO_PREALLOC | isa.BPF_F_RDONLY), (4, 8, 0, NO_PREALLOC | isa.BPF_F_NUMA_NODE),
    (4, 8, 0, NO_PREALLOC | isa.BPF_F_RDONLY_PROG)],
    ids=["plain", "clone", "largest-value", "value-too-large", "preallocated",
         "max-entries", "key-8-bytes", "no-value", "rdonly", "numa-node", "rdonly-prog"])


def assert_next_key_is_enotsupp(kernel_oracle, kind):
    """BPF_MAP_GET_NEXT_KEY on a storage map of ``kind``: the kernel's answer, ENOTSUPP,
    in both."""
    from mapcheck import outcome
    from recorded_kernel import count_comparison
    with kernel_oracle.KernelMap(kind, 4, 8, 0, NO_PREALLOC) as theirs:
        want = outcome(theirs.next_key, None)
    count_comparison()
    assert outcome(Map.create(kind, 4, 8, 0, NO_PREALLOC).next_key, None) == want
    assert want == isa.Errno.ENOTSUPP


def get(owner: str, fd, helper: int, init=None, flags=1, of="r6") -> str:
    """``owner``, then r0 = helper(map, ``of`` (the owner's register, or 0), init,
    flags): init NULL, or a u64 on the stack holding ``init``."""
    init_value = "" if init is None else f"r2 = {init}\n*(u64 *)(r10 - 8) = r2"
    value = "r3 = 0" if init is None else "r3 = r10\nr3 += -8"
    return owner + f"""
        {init_value}
        r1 = map_fd({fd}) ll
        r2 = {of}
        {value}
        r4 = {flags}
        call {helper}
"""


def storage_life(owner: str, fd, helper_get: int, helper_delete: int) -> str:
    """r0 = the new value's first u64 (0) | what a second get without F_CREATE reads
    (after storing 5) << 4 | the first delete's result << 8 | the second's << 16; 77
    when a get gives NULL."""
    return get(owner, fd, helper_get) + f"""
        if r0 == 0 goto none
        r7 = *(u64 *)(r0 + 0)
        r1 = 5
        *(u64 *)(r0 + 0) = r1
        r1 = map_fd({fd}) ll
        r2 = r6
        r3 = 0
        r4 = 0
        call {helper_get}
        if r0 == 0 goto none
        r8 = *(u64 *)(r0 + 0)
        r1 = map_fd({fd}) ll
        r2 = r6
        call {helper_delete}
        r9 = r0
        r1 = map_fd({fd}) ll
        r2 = r6
        call {helper_delete}
        r0 &= 0xff
        r0 <<= 16
        r9 &= 0xff
        r9 <<= 8
        r0 |= r9
        r8 <<= 4
        r0 |= r8
        r0 |= r7
        exit
    none:
        r0 = 77
        exit"""


def read_at(got: str, offset: int, plus: int) -> str:
    """``got`` (a get), then r0 = the value's u64 at ``offset`` plus ``plus``, or 0 when
    the helper gave NULL."""
    return got + f"""
        if r0 == 0 goto out
        r0 = *(u64 *)(r0 + {offset})
        r0 += {plus}
    out:
        exit"""


def unchecked_read(got: str) -> str:
    """``got``, then a read of the value without checking it for NULL."""
    return got + """
        r0 = *(u64 *)(r0 + 0)
        exit"""


def read_past(got: str, value_size: int) -> str:
    """``got``, then a null-checked read of the u64 just past a value of ``value_size``."""
    return got + f"""
        if r0 == 0 goto out
        r0 = *(u64 *)(r0 + {value_size})
    out:
        exit"""


def non_pointer_owner(fd, helper: int) -> str:
    """helper(map, a stack pointer for the owner, NULL, 0); returns 0."""
    return f"""
        r1 = map_fd({fd}) ll
        r2 = r10
        r2 += -8
        r3 = 0
        r4 = 0
        call {helper}
        r0 = 0
        exit"""
