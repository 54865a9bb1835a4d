"""What the cgroup-array tests (test_cgroup_array, test_task_storage) share: programs
asking whether a slot's cgroup is an ancestor, and the kernel's answer about the cgroup2
hierarchy's root, which only the running kernel can give."""
from __future__ import annotations

import os

import pytest

from pyebpf import asm, isa

from mapcheck import same_map_retval, u32

CGROUP_ARRAY = isa.MapType.BPF_MAP_TYPE_CGROUP_ARRAY
SKB_UNDER_CGROUP, CURRENT_TASK_UNDER_CGROUP = 33, 37
# the register of each helper's map argument (bpf_skb_under_cgroup's first is the skb)
_MAP_ARG = {SKB_UNDER_CGROUP: 2, CURRENT_TASK_UNDER_CGROUP: 1}


def under_prog(helper: int, fd, index: int) -> str:
    """Returns ``helper``'s answer for slot ``index`` of the cgroup array ``fd``."""
    r = _MAP_ARG[helper]
    return f"""
        r{r} = map_fd({fd}) ll
        r{r + 1} = {index}
        call {helper}
        exit"""


def same_under(kernel_oracle, helper: int, index: int, packet: bytes) -> int:
    """The answer of one sched_cls run of ``under_prog`` on a fresh cgroup array of 4
    slots, pyebpf's and the kernel's alike."""
    return same_map_retval(kernel_oracle, CGROUP_ARRAY, (4, 4, 4, 0),
                           lambda fd: under_prog(helper, fd, index), packet)


def cgroup2_mount() -> str | None:
    """Where the cgroup2 hierarchy is mounted, or None."""
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 2 and fields[2] == "cgroup2":
                return fields[1]
    return None


def root_cgroup_retval(live_kernel, helper: int, index: int, packet: bytes) -> int:
    """The kernel's answer of one sched_cls run on ``packet`` of ``under_prog`` for a
    cgroup array of 4 slots whose slot ``index`` holds the root cgroup; a skip where no
    cgroup2 hierarchy is mounted."""
    mount = cgroup2_mount()
    if mount is None:
        pytest.skip("needs a mounted cgroup2 hierarchy (a cgroup array takes cgroup2 fds)")
    root = os.open(mount, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with live_kernel.KernelMap(CGROUP_ARRAY, 4, 4, 4) as theirs:
            theirs.update(u32(index), u32(root))
            code = asm.assemble(under_prog(helper, theirs.fd, index))
            with live_kernel.KernelProgram(code, "sched_cls") as prog:
                return prog.test_run(packet, ctx={}).retval
    finally:
        os.close(root)
