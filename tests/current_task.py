"""The machine BPF_PROG_TEST_RUN runs a packet program in: this process as the current
task (the kernel runs a tc program in the task that asks), for the tests of the task
helpers and kfuncs."""
from __future__ import annotations

import os
import threading

from pyebpf.trace import Machine, Task
from pyebpf.trace.machine import struct_bytes

NR_BPF = 321                     # x86-64's __NR_bpf: test_run's caller is inside bpf(2)
CSS_SET, CGROUP = 0xFFFF888100400000, 0xFFFF888100500000


def cgroup1() -> tuple:
    """This process's cgroup in each cgroup v1 hierarchy, (hierarchy id, level, cgroup
    id) as Task.cgroup1 takes them: the hierarchies and paths of /proc/self/cgroup, each
    cgroup's id the inode number of its directory where /proc/self/mountinfo shows the
    hierarchy mounted (a hierarchy mounted nowhere this process sees is left out)."""
    mounts = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields, tail = line.split(" - ", 1)
            fstype, _, options = tail.split()[:3]
            if fstype == "cgroup":
                _, _, _, root, point = fields.split()[:5]
                mounts.append((set(options.split(",")), root, point))
    found = []
    with open("/proc/self/cgroup") as f:
        for line in f:
            hid, controllers, path = line.rstrip("\n").split(":", 2)
            for options, root, point in mounts:
                if int(hid) and set(controllers.split(",")) <= options and \
                        (path + "/").startswith(root.rstrip("/") + "/"):
                    inode = os.stat(point + path[len(root.rstrip("/")):]).st_ino
                    found.append((int(hid), len([p for p in path.split("/") if p]), inode))
                    break
    return tuple(found)


def this_process(tasks=(), vmas=(), **task) -> Machine:
    """The machine BPF_PROG_TEST_RUN runs a program in: this thread of this process as
    the current task, in its pid namespace, having entered bpf(2); its default cgroup's
    ``struct cgroup`` at CGROUP (through task->cgroups->dfl_cgrp), its cgroup v1 cgroups
    (:func:`cgroup1`); ``task`` other Task fields; ``tasks`` the other tasks a program
    may look up; ``vmas`` its memory map as the machine declares it."""
    ns = os.stat("/proc/self/ns/pid")
    return Machine(
        task=Task(pid=threading.get_native_id(), tgid=os.getpid(), uid=os.getuid(),
                  gid=os.getgid(), pidns=(ns.st_dev, ns.st_ino),
                  user_regs={"orig_ax": NR_BPF}, fields={"cgroups": CSS_SET},
                  **({"cgroup1": cgroup1()} | task)),
        kernel_memory={CSS_SET: struct_bytes("css_set", {"dfl_cgrp": CGROUP}),
                       CGROUP: struct_bytes("cgroup", {})},
        tasks=tasks, vmas=vmas)
