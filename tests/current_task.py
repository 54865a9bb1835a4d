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


def this_process(tasks=(), **task) -> Machine:
    """The machine BPF_PROG_TEST_RUN runs a program in: this thread of this process as
    the current task, in its pid namespace, having entered bpf(2); its default cgroup's
    ``struct cgroup`` at CGROUP (through task->cgroups->dfl_cgrp); ``tasks`` the other
    tasks a program may look up."""
    ns = os.stat("/proc/self/ns/pid")
    return Machine(
        task=Task(pid=threading.get_native_id(), tgid=os.getpid(), uid=os.getuid(),
                  gid=os.getgid(), pidns=(ns.st_dev, ns.st_ino),
                  user_regs={"orig_ax": NR_BPF}, fields={"cgroups": CSS_SET}, **task),
        kernel_memory={CSS_SET: struct_bytes("css_set", {"dfl_cgrp": CGROUP}),
                       CGROUP: struct_bytes("cgroup", {})},
        tasks=tasks)
