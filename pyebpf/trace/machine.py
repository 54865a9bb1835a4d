"""The modelled machine around a tracing program: the current task, kernel and user
memory, the two stacks.

One :class:`Machine` is given to ``Program.run(regs=..., machine=...)`` of a KPROBE
program (and per event by ``pyebpf trace-replay``).  What the helpers read from it:

- ``bpf_get_current_pid_tgid``, ``_uid_gid``, ``_comm``, ``bpf_get_current_task``: its
  :class:`Task`; ``bpf_get_current_cgroup_id``: ``env``'s ``task_cgroup`` (a
  :class:`pyebpf.Environment`);
- ``bpf_probe_read_kernel(_str)``: ``kernel_memory`` (and the run's own stack, context
  and map values, which are kernel memory too); ``bpf_probe_read_user(_str)``:
  ``user_memory``; ``bpf_probe_read(_str)``: the user one below the architecture's
  ``TASK_SIZE_MAX``, the kernel one above.  An address no range maps fails as in the
  kernel: -EFAULT with the destination zeroed (-ERANGE for a kernel read of a user
  address on x86-64);
- ``bpf_get_stackid``, ``bpf_get_stack``, ``bpf_get_task_stack``: ``kernel_stack`` and
  ``user_stack``, return addresses innermost first;
- ``bpf_find_vma``: ``vmas``, the task's memory mappings, each a ``struct
  vm_area_struct`` in kernel memory (:data:`VMA_BASE` on) that the callback reads;
- loads through ``bpf_get_current_task_btf``'s pointer: ``kernel_memory`` (with the
  task's ``task_struct`` when the task has ``fields``); what it does not map reads 0,
  but for the task's ``cgroups``: a modelled ``css_set`` whose ``dfl_cgrp`` is ``env``'s
  ``task_cgroup`` (the root cgroup for the other tasks; pyebpf.skb.kern.CSS_SET_ADDRESS);
- ``bpf_task_from_pid`` and ``bpf_task_from_vpid`` (kfuncs, also of packet runs given a
  machine): the task and ``tasks``, the machine's other tasks, by pid (by ``ns_pid``
  among the tasks in the current task's pid namespace); loads through what they return
  read the task's ``task_struct`` (when it has ``fields``);
- ``bpf_get_branch_snapshot``: ``branches``, the CPU's last-branch records (LBR),
  newest first, as ``struct perf_branch_entry``; none (the default, as on a machine
  without LBR) makes it -ENOENT;
- ``bpf_snprintf_btf``: the object it prints is read from ``kernel_memory`` (or the
  run's own stack, map values, packet);
- ``bpf_per_cpu_ptr`` and ``bpf_this_cpu_ptr``, and loads through what they return:
  ``percpu``, the per-CPU variables' values on each CPU, put in kernel memory where
  :func:`pyebpf.ksym.percpu_address` says; a per-CPU variable no value is given for
  reads 0 (``bpf_probe_read_kernel`` too).

A Machine is immutable.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from .. import isa
from ..errors import EbpfError

TASK_COMM_LEN = 16
#: Where the default task's ``task_struct`` is said to be (a direct-map address).
DEFAULT_TASK_ADDRESS = 0xFFFF888100000000
#: Where the machine puts the task's ``struct vm_area_struct``s, one after the other
#: (each at a multiple of 64 bytes), in at most ``VMA_SPACE`` bytes.
VMA_BASE = 0xFFFF888100200000
VMA_SPACE = 2 << 20
#: The inode number of the initial pid namespace (PROC_PID_INIT_INO), the default task's.
PROC_PID_INIT_INO = 0xEFFFFFFC
#: The device of nsfs the default task's pid namespace is on: what ``stat -L -c %d
#: /proc/self/ns/pid`` shows on a machine booted with nsfs as its fourth anonymous
#: device (it varies: declare what a test expects).
DEFAULT_NSFS_DEV = 4
#: Where the task's user registers (``struct pt_regs`` at the top of its kernel stack,
#: what ``bpf_task_pt_regs`` returns) are said to be.
USER_REGS_ADDRESS = 0xFFFFC90000003F58
#: What ``bpf_task_pt_regs`` of any other task returns: the top of a kernel stack the
#: machine does not map (loads through it read 0).
OTHER_REGS_ADDRESS = 0xFFFFC90000007F58
#: The kworker a bpf_wq callback runs in (``pyebpf.run_timers(machine=...)``) unless the
#: machine names its own (``Machine.kworker``): a kernel thread of the initial pid
#: namespace, pid 40 (a real machine's varies), with no user memory (no ``mm``), in the
#: root cgroup, whose ``task_struct`` the machine holds at ``KWORKER_ADDRESS`` with
#: ``KWORKER_FLAGS`` (a per-CPU workqueue worker's, as the kernel's read in a bpf_wq
#: callback: tests/test_wq.py).
KWORKER_ADDRESS = 0xFFFF888100300000
KWORKER_PID = 40
KWORKER_COMM = b"kworker/0:1"
KWORKER_FLAGS = (isa.PF_KTHREAD | isa.PF_WQ_WORKER | isa.PF_FORKNOEXEC | isa.PF_NOFREEZE
                 | isa.PF_NO_SETAFFINITY)
#: Where the tasks an environment file declares (``[[tasks]]``) are said to be: the k-th
#: at ``TOML_TASK_BASE + k * TOML_TASK_STRIDE``.
TOML_TASK_BASE = 0xFFFF888101000000
TOML_TASK_STRIDE = 0x10000
#: The current task of an environment file's machine unless its ``[current]`` table
#: names one for the hook: the idle task (pid 0, which bpf_task_from_pid does not find),
#: the task a received packet's softirq most often interrupts on a quiet machine.
IDLE_TASK_COMM = "swapper/0"
#: The hooks an environment file's ``[current]`` table names a current task for.
HOOKS = ("ingress", "egress")
#: The fields of ``struct perf_branch_entry`` (include/uapi/linux/perf_event.h) after
#: ``from`` and ``to``: the bitfields of its third u64, (name, first bit, width).
BRANCH_FLAGS = (("mispred", 0, 1), ("predicted", 1, 1), ("in_tx", 2, 1), ("abort", 3, 1),
                ("cycles", 4, 16), ("type", 20, 4), ("spec", 24, 2), ("new_type", 26, 4),
                ("priv", 30, 3))
BRANCH_ENTRY_SIZE = 24


class MachineSpecError(EbpfError, ValueError):
    """A machine or register set that cannot be used; the message says which part."""


def _u(value, bits: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << bits:
        raise MachineSpecError(f"{what} must be an unsigned {bits}-bit integer, got {value!r}")
    return value


@dataclass(frozen=True)
class Task:
    """The current task: ``pid`` (the thread id) and ``tgid`` (the process id, default
    ``pid``), ``uid``/``gid``, ``comm`` (at most 15 bytes) and ``address``, where its
    ``task_struct`` is (what ``bpf_get_current_task`` returns).  With ``fields`` (names
    of ``struct task_struct`` members as :meth:`pyebpf.btf.Type.fields` spells them:
    ``"prio"``, ``"se.vruntime"``, ``"real_parent"``; values an int or bytes) the
    machine holds a ``task_struct`` at ``address``, laid out by its BTF, with ``pid``,
    ``tgid`` and ``comm`` set from the task and those fields from ``fields``; without,
    give the bytes a program reads in the machine's ``kernel_memory``.

    ``pidns``: the task's pid namespace as ``(dev, ino)`` of ``/proc/<pid>/ns/pid``
    (``bpf_get_ns_current_pid_tgid`` compares them with its arguments), where the task
    is ``ns_pid`` and ``ns_tgid`` (default ``pid`` and ``tgid``: the initial namespace).
    ``user_regs``: the task's user registers (``struct pt_regs`` as ``regs=`` takes
    them: a dict of names or the struct's bytes; default all zero), which the machine
    puts in kernel memory at ``USER_REGS_ADDRESS``, where ``bpf_task_pt_regs`` points.
    ``cgroup1``: the task's cgroup in each cgroup v1 hierarchy, ``(hierarchy id, level,
    cgroup id)`` triples (``bpf_task_get_cgroup1``; ``/proc/<pid>/cgroup`` lists the
    hierarchies, a cgroup's id is its directory's inode number); default none, as on a
    machine without v1 hierarchies.  ``user_memory``: the user memory of a task of
    ``Machine.tasks`` (``{address: bytes}``, as ``Machine.user_memory`` gives the current
    task's), which ``bpf_copy_from_user_task`` reads; default none mapped.  It is mapped
    in pages (:data:`pyebpf.isa.PAGE_SIZE`), as the kernel maps memory: the bytes given
    map the pages that hold them, and the rest of those pages reads 0, as a fresh
    anonymous mapping does (``self.user_memory`` is then the page-aligned ranges); a
    copy that runs into a page none maps fails as a whole."""
    pid: int = 1000
    tgid: int | None = None
    uid: int = 0
    gid: int = 0
    comm: str | bytes = "pyebpf"
    address: int = DEFAULT_TASK_ADDRESS
    fields: object = None
    pidns: tuple = (DEFAULT_NSFS_DEV, PROC_PID_INIT_INO)
    ns_pid: int | None = None
    ns_tgid: int | None = None
    user_regs: object = None
    cgroup1: tuple = ()
    user_memory: object = ()

    def __post_init__(self):
        if self.tgid is None:
            object.__setattr__(self, "tgid", self.pid)
        if self.ns_pid is None:
            object.__setattr__(self, "ns_pid", self.pid)
        if self.ns_tgid is None:
            object.__setattr__(self, "ns_tgid", self.tgid)
        for name in ("ns_pid", "ns_tgid"):
            _u(getattr(self, name), 32, f"task {name}")
        if not isinstance(self.pidns, (tuple, list)) or len(self.pidns) != 2:
            raise MachineSpecError(f"task pidns is (dev, ino), got {self.pidns!r}")
        object.__setattr__(self, "pidns", tuple(self.pidns))
        cgroup1 = tuple(tuple(c) for c in self.cgroup1)
        if any(len(c) != 3 for c in cgroup1) or \
                len({c[0] for c in cgroup1}) != len(cgroup1):
            raise MachineSpecError(f"task cgroup1 is (hierarchy id, level, cgroup id) "
                                   f"triples, one a hierarchy, got {self.cgroup1!r}")
        for hid, level, cgid in cgroup1:
            if not _u(hid, 32, "task cgroup1 hierarchy id"):
                raise MachineSpecError("task cgroup1 hierarchy id 0 is cgroup v2's")
            _u(level, 32, "task cgroup1 level")
            _u(cgid, 64, "task cgroup1 cgroup id")
        object.__setattr__(self, "cgroup1", cgroup1)
        _u(self.pidns[0], 32, "task pidns dev")
        _u(self.pidns[1], 64, "task pidns ino")
        object.__setattr__(self, "user_regs_bytes", pt_regs(self.user_regs))
        for name in ("pid", "tgid", "uid", "gid"):
            _u(getattr(self, name), 32, f"task {name}")
        _u(self.address, 64, "task address")
        comm = self.comm.encode() if isinstance(self.comm, str) else bytes(self.comm)
        if len(comm) >= TASK_COMM_LEN or b"\0" in comm:
            raise MachineSpecError(f"task comm is at most {TASK_COMM_LEN - 1} bytes without "
                                   f"NUL, got {self.comm!r}")
        object.__setattr__(self, "comm_bytes", comm)   # what bpf_get_current_comm copies
        object.__setattr__(self, "user_memory", _pages(
            _ranges(self.user_memory, f"task {self.pid} user_memory")))


def _pages(ranges) -> tuple[tuple[int, bytes], ...]:
    """Sorted disjoint ``ranges`` grown to the pages that hold them (zeros around the
    bytes), pages that touch merged into one range."""
    out: list[list] = []
    mask = isa.PAGE_SIZE - 1
    for start, data in ranges:
        first, end = start & ~mask, (start + len(data) + mask) & ~mask
        if out and first <= out[-1][0] + len(out[-1][1]):
            out[-1][1] += bytes(end - out[-1][0] - len(out[-1][1]))
        else:
            out.append([first, bytearray(end - first)])
        out[-1][1][start - out[-1][0]:start - out[-1][0] + len(data)] = data
    return tuple((start, bytes(data)) for start, data in out)


def _ranges(memory, what: str) -> tuple[tuple[int, bytes], ...]:
    """Sorted (start, bytes) ranges with adjacent ones merged; overlaps are refused."""
    items = memory.items() if isinstance(memory, Mapping) else memory
    out: list[list] = []
    for start, data in sorted((_u(a, 64, f"{what} address"), bytes(d)) for a, d in items):
        if not data:
            continue
        if start + len(data) > 1 << 64:
            raise MachineSpecError(f"{what}: {len(data)} bytes at {start:#x} run past the end "
                                   f"of the address space")
        if out and start < out[-1][0] + len(out[-1][1]):
            raise MachineSpecError(f"{what}: the range at {start:#x} overlaps the one at "
                                   f"{out[-1][0]:#x}")
        if out and start == out[-1][0] + len(out[-1][1]):
            out[-1][1] += data
        else:
            out.append([start, bytearray(data)])
    return tuple((start, bytes(data)) for start, data in out)


@dataclass(frozen=True)
class Machine:
    """What a tracing run sees beyond its registers (see the module's docstring).
    ``kernel_memory`` and ``user_memory`` map start addresses to bytes (a dict or
    (address, bytes) pairs); ``kernel_stack`` and ``user_stack`` are return addresses,
    innermost first; ``env`` a :class:`pyebpf.Environment` or None (the default one);
    ``btf`` the kernel BTF that lays out the task's ``task_struct`` and
    ``vm_area_struct`` (a :class:`pyebpf.btf.Btf` or a path; default: CO-RE's target,
    the running kernel's when readable, else the one pyebpf ships).  ``branches``: the
    last-branch records ``bpf_get_branch_snapshot`` copies, newest first, each
    ``(from, to)`` or a dict of ``struct perf_branch_entry`` fields (``from`` and
    ``to``, and any of :data:`BRANCH_FLAGS`); ``self.branch_records`` is their bytes.
    ``vmas``: the
    task's mappings, each ``(start, end)`` or a dict of ``vm_area_struct`` fields
    (``vm_start`` and ``vm_end`` required, ``vm_flags``, ``vm_pgoff``, ``vm_file``...
    optional; others are 0), disjoint; they are put in kernel memory from ``VMA_BASE``
    on, by start, and ``self.vma_table`` lists ``(start, end, address)``.
    ``percpu``: per-CPU variables of the kernel BTF (``.data..percpu``), each name
    mapped to ``{cpu: value}``, a value an int (of the variable's size), its bytes, or
    for a struct a dict of fields as ``task.fields`` takes them.
    ``tasks``: the machine's other tasks (:class:`Task` values, each at an address and
    with a pid of its own), which ``bpf_task_from_pid`` finds; they are in the root
    cgroup.  The current task's user memory is ``user_memory`` (not its Task's).
    ``kworker``: the kernel thread bpf_wq callbacks run in (``run_timers(machine=)``), a
    :class:`Task` with no user memory (default pid :data:`KWORKER_PID`, comm
    :data:`KWORKER_COMM`, at :data:`KWORKER_ADDRESS`); ``bpf_task_from_pid`` finds it
    too, and the machine holds its ``task_struct`` (its ``flags``
    :data:`KWORKER_FLAGS` unless its ``fields`` give them) when a run uses the machine.
    ``map_ids``: the machine's map ids (a :class:`pyebpf.MapIds`, its kernel's
    ``map_idr``), which number the maps created on it (``Map.create(machine=)``,
    ``pyebpf.load(machine=)``); each Machine has its own unless given one."""
    task: Task = field(default_factory=Task)
    kernel_memory: object = ()
    user_memory: object = ()
    kernel_stack: tuple = ()
    user_stack: tuple = ()
    env: object = None
    btf: object = None
    vmas: tuple = ()
    branches: tuple = ()
    percpu: object = ()
    tasks: tuple = ()
    kworker: Task = field(default_factory=lambda: Task(
        pid=KWORKER_PID, comm=KWORKER_COMM, address=KWORKER_ADDRESS))
    map_ids: object = field(default_factory=lambda: _map_ids(), compare=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "tasks", tuple(self.tasks))
        everyone = (self.task,) + self.tasks + (self.kworker,)
        for t in everyone:
            if not isinstance(t, Task):
                raise MachineSpecError(f"task and tasks must be pyebpf.trace.Task values, "
                                       f"not {type(t).__name__}")
        if self.task.user_memory:
            raise MachineSpecError("task: give the current task's user memory as "
                                   "Machine.user_memory, not Task.user_memory")
        if self.kworker.user_memory:
            raise MachineSpecError("kworker: a kernel thread has no user memory")
        for what in ("pid", "address"):
            seen = [getattr(t, what) for t in everyone]
            if len(set(seen)) != len(seen):
                raise MachineSpecError(f"tasks: two tasks have the same {what}")
        kernel = self.kernel_memory
        kernel = list(kernel.items() if isinstance(kernel, Mapping) else kernel)
        for t in (self.task,) + self.tasks:
            if t.fields is not None:
                kernel.append((t.address, task_struct(t, self.btf, t is self.task)))
        if self.task.user_regs is not None:
            kernel.append((USER_REGS_ADDRESS, self.task.user_regs_bytes))
        table, address = [], VMA_BASE
        for fields in _vmas(self.vmas):
            raw = _struct_bytes("vm_area_struct", fields, self.btf, "vmas")
            if address + len(raw) > VMA_BASE + VMA_SPACE:
                raise MachineSpecError(f"vmas: {len(self.vmas)} mappings do not fit in the "
                                       f"{VMA_SPACE} bytes at {VMA_BASE:#x}")
            kernel.append((address, raw))
            table.append((fields["vm_start"], fields["vm_end"], address))
            address += (len(raw) + 63) & ~63
        object.__setattr__(self, "vma_table", tuple(table))
        kernel += _percpu_memory(self.percpu, self.btf)
        object.__setattr__(self, "branch_records",
                           b"".join(branch_entry(b) for b in self.branches))
        object.__setattr__(self, "kernel_memory", _ranges(kernel, "kernel_memory"))
        object.__setattr__(self, "user_memory", _ranges(self.user_memory, "user_memory"))
        for name in ("kernel_stack", "user_stack"):
            object.__setattr__(self, name, tuple(_u(ip, 64, f"{name} entry")
                                                 for ip in getattr(self, name)))
        if self.env is not None:
            from ..environment import Environment
            if not isinstance(self.env, Environment):
                raise MachineSpecError(f"env must be a pyebpf.Environment, not "
                                       f"{type(self.env).__name__}")

    @classmethod
    def from_toml(cls, path, hook: str = "ingress") -> "Machine":
        """The machine an environment file (docs/environment.md) declares with its
        ``[[tasks]]``, ``[kworker]`` and ``[current]`` tables, around the file's
        Environment (``env``), its current task the one ``[current]`` names for ``hook``
        ("ingress" or "egress"); errors name the file and the key."""
        from ..environment import Environment, read_toml
        data, where = read_toml(path)
        return machine_from_dict(data, Environment.from_dict(data, where), where, hook)


def _map_ids():
    from .._core import MapIds      # the compiled core, where maps are made
    return MapIds()


_TOML_TASK_KEYS = ("pid", "tgid", "uid", "gid", "comm", "user_memory")


def _toml_task(value, where: str, keys: tuple, address: int, **defaults) -> Task:
    from ..environment import EnvironmentSpecError, known_keys
    if not isinstance(value, Mapping):
        raise EnvironmentSpecError(f"{where}: expected a table of {', '.join(keys)}")
    known_keys(value, where, keys)
    if "pid" not in value:
        raise EnvironmentSpecError(f"{where}: pid is required")
    kw = dict(defaults)
    kw.update((k, v) for k, v in value.items() if k != "user_memory")
    memory = value.get("user_memory", {})
    if not isinstance(memory, Mapping):
        raise EnvironmentSpecError(f"{where}: user_memory must be a table of "
                                   f'"ADDRESS" = "HEX BYTES"')
    ranges = []
    for text, data in memory.items():
        try:
            ranges.append((int(text, 0), bytes.fromhex(data)))
        except (TypeError, ValueError):
            raise EnvironmentSpecError(f"{where}: user_memory: expected \"ADDRESS\" = \"HEX "
                                       f"BYTES\" (\"0x7f0000000000\" = \"68690a\"), got "
                                       f"{text!r} = {data!r}") from None
    try:
        # fields={}: the machine holds its task_struct (pid, tgid, comm), which a
        # program reaches through bpf_get_current_task_btf or bpf_task_from_pid
        return Task(address=address, user_memory=ranges, fields={}, **kw)
    except (MachineSpecError, TypeError) as exc:
        raise EnvironmentSpecError(f"{where}: {exc}") from None


def machine_from_dict(data: Mapping, env, where: str = "environment",
                      hook: str = "ingress") -> Machine | None:
    """The :class:`Machine` of an environment file's tables (``tasks``: each a table of
    pid, tgid, uid, gid, comm and user_memory, ``"ADDRESS" = "HEX BYTES"`` mapped in
    pages; ``kworker``: pid and comm; ``current``: per hook the pid of the task a
    program there runs in, 0 (the default) the idle task) around ``env``, its current
    task the one ``current`` names for ``hook``; None when the file declares none of
    them."""
    from ..environment import EnvironmentSpecError
    if hook not in HOOKS:
        raise ValueError(f"hook must be one of {', '.join(HOOKS)}, not {hook!r}")
    if not {"tasks", "kworker", "current"} & set(data):
        return None
    tasks = data.get("tasks", [])
    if not isinstance(tasks, list):
        raise EnvironmentSpecError(f"{where}: tasks must be an array of tables ([[tasks]])")
    kw = {"tasks": tuple(_toml_task(t, f"{where}: tasks[{k}]", _TOML_TASK_KEYS,
                                    TOML_TASK_BASE + k * TOML_TASK_STRIDE)
                         for k, t in enumerate(tasks))}
    if "kworker" in data:
        kw["kworker"] = _toml_task(data["kworker"], f"{where}: kworker", ("pid", "comm"),
                                   KWORKER_ADDRESS, comm=KWORKER_COMM)
    pid = _toml_current(data.get("current", {}), f"{where}: current", kw["tasks"]).get(hook, 0)
    kw["task"] = Task(pid=0, comm=IDLE_TASK_COMM, fields={})
    for k, t in enumerate(kw["tasks"]):
        if pid and t.pid == pid:
            # the current task's user memory is the machine's (Machine.user_memory)
            kw["task"], kw["user_memory"] = replace(t, user_memory=()), t.user_memory
            kw["tasks"] = kw["tasks"][:k] + kw["tasks"][k + 1:]
    try:
        return Machine(env=env, **kw)
    except MachineSpecError as exc:
        raise EnvironmentSpecError(f"{where}: {exc}") from None


def _toml_current(value, where: str, tasks: tuple) -> dict:
    """``[current]``: hook -> the pid of a declared task, or 0 for the idle task."""
    from ..environment import EnvironmentSpecError, known_keys
    if not isinstance(value, Mapping):
        raise EnvironmentSpecError(f"{where}: expected a table of {', '.join(HOOKS)}")
    known_keys(value, where, HOOKS)
    pids = {t.pid for t in tasks}
    for hook, pid in value.items():
        if type(pid) is not int or pid and pid not in pids:
            raise EnvironmentSpecError(f"{where}.{hook}: {pid!r} is not the pid of a "
                                       f"[[tasks]] table (0: the idle task)")
    return dict(value)


def _percpu_memory(percpu, btf) -> list[tuple[int, bytes]]:
    """(address, bytes) of each per-CPU variable's value on each CPU given."""
    if not percpu:
        return []
    from .. import ksym
    from ..btf import Kind
    from ..btf.relo import target_btf
    from ..host import possible_cpus
    b = target_btf(btf)
    known, ncpu, out = ksym.percpu_variables(b), possible_cpus(), []
    if not isinstance(percpu, Mapping):
        raise MachineSpecError(f"percpu maps variable names to {{cpu: value}}, got {percpu!r}")
    for name, values in percpu.items():
        if name not in known:
            raise MachineSpecError(f"percpu: {name!r} is no per-CPU variable of the kernel "
                                   f"BTF (its .data..percpu section)")
        if not isinstance(values, Mapping):
            raise MachineSpecError(f"percpu {name}: give {{cpu: value}}, got {values!r}")
        size = known[name][1]
        vtype = b.by_name(name, Kind.VAR)[0].target.resolve()
        for cpu, value in values.items():
            if isinstance(cpu, bool) or not isinstance(cpu, int) or not 0 <= cpu < ncpu:
                raise MachineSpecError(f"percpu {name}: CPU {cpu!r} is not one of the "
                                       f"{ncpu} possible CPUs")
            if isinstance(value, Mapping) and vtype.kind == Kind.STRUCT:
                raw = _struct_bytes(vtype.name, value, b, f"percpu {name}")
            elif isinstance(value, (bytes, bytearray)):
                if len(value) > size:
                    raise MachineSpecError(f"percpu {name}: {size} bytes, got {len(value)}")
                raw = bytes(value)
            else:
                raw = _int_field(value, 8 * min(size, 8),
                                 f"percpu {name}").to_bytes(min(size, 8), "little")
            out.append((ksym.percpu_address(b, name, cpu), raw))
    return out


def branch_entry(branch) -> bytes:
    """The 24 bytes of one ``struct perf_branch_entry``: from ``(from, to)`` or a dict
    of its fields (``from``, ``to`` and :data:`BRANCH_FLAGS`; unnamed ones are 0)."""
    fields = dict(branch) if isinstance(branch, Mapping) else \
        dict(zip(("from", "to"), branch)) if len(branch) == 2 else None
    if fields is None or "from" not in fields or "to" not in fields:
        raise MachineSpecError(f"branches: each is (from, to) or a dict with from and to, "
                               f"got {branch!r}")
    known = {name: (bit, width) for name, bit, width in BRANCH_FLAGS}
    word = 0
    for name, value in fields.items():
        if name in ("from", "to"):
            continue
        if name not in known:
            raise MachineSpecError(f"branches: struct perf_branch_entry has no field "
                                   f"{name!r}; known: from, to, {', '.join(known)}")
        bit, width = known[name]
        word |= _u(value, width, f"branches {name}") << bit
    return (_u(fields["from"], 64, "branches from").to_bytes(8, "little")
            + _u(fields["to"], 64, "branches to").to_bytes(8, "little")
            + word.to_bytes(8, "little"))


def pt_regs(regs, arch: str = "x86_64") -> bytes:
    """The bytes of ``struct pt_regs`` on ``arch``: from a dict of register names
    (:data:`pyebpf.isa.PT_REGS`; unnamed registers are 0), from the struct's bytes, or
    all zero for None."""
    layout, size = isa.PT_REGS[arch]
    if regs is None:
        return bytes(size)
    if isinstance(regs, (bytes, bytearray, memoryview)):
        raw = bytes(regs)
        if len(raw) != size:
            raise MachineSpecError(f"regs: struct pt_regs is {size} bytes on {arch}, got "
                                   f"{len(raw)}")
        return raw
    if not isinstance(regs, Mapping):
        raise MachineSpecError(f"regs must be a dict of register values or the struct's "
                               f"bytes, not {type(regs).__name__}")
    out = bytearray(size)
    for name, value in regs.items():
        if name not in layout:
            raise MachineSpecError(f"regs: {arch} has no register {name!r}; known: "
                                   f"{', '.join(layout)}")
        if isinstance(value, int) and -(1 << 63) <= value < 0:
            value &= (1 << 64) - 1
        out[layout[name]:layout[name] + 8] = _u(value, 64, f"register {name}").to_bytes(8, "little")
    return bytes(out)


def registers(raw: bytes, arch: str = "x86_64") -> dict:
    """The register values of ``struct pt_regs`` bytes, by name."""
    layout, _ = isa.PT_REGS[arch]
    return {name: int.from_bytes(raw[off:off + 8], "little") for name, off in layout.items()}


def _vmas(vmas) -> list[dict]:
    """The mappings as dicts of vm_area_struct fields, sorted by start, checked."""
    out = []
    for v in vmas:
        fields = dict(v) if isinstance(v, Mapping) else \
            dict(zip(("vm_start", "vm_end"), v)) if len(v) == 2 else None
        if fields is None or "vm_start" not in fields or "vm_end" not in fields:
            raise MachineSpecError(f"vmas: each mapping is (start, end) or a dict with "
                                   f"vm_start and vm_end, got {v!r}")
        _u(fields["vm_start"], 64, "vmas vm_start")
        if _u(fields["vm_end"], 64, "vmas vm_end") <= fields["vm_start"]:
            raise MachineSpecError(f"vmas: the mapping at {fields['vm_start']:#x} ends "
                                   f"before it starts")
        out.append(fields)
    out.sort(key=lambda f: f["vm_start"])
    for a, b in zip(out, out[1:]):
        if b["vm_start"] < a["vm_end"]:
            raise MachineSpecError(f"vmas: the mapping at {b['vm_start']:#x} overlaps the "
                                   f"one at {a['vm_start']:#x}")
    return out


def _layout(name: str, btf) -> tuple[int, dict]:
    from ..btf import Kind
    from ..btf.relo import target_btf
    b = target_btf(btf)
    layout = _LAYOUTS.get((id(b), name))
    if layout is None or layout[0] is not b:
        found = b.by_name(name, Kind.STRUCT)
        if not found:
            raise MachineSpecError(f"the BTF {b!r} has no struct {name}")
        t = found[0]
        layout = _LAYOUTS[(id(b), name)] = (b, t.byte_size, {f.name: f for f in t.fields()})
    return layout[1], layout[2]


_LAYOUTS: dict = {}   # (id(Btf), struct name) -> (the Btf, the struct's size, its fields)


def _struct_bytes(name: str, values: Mapping, btf, what: str) -> bytes:
    """The bytes of a ``struct name``: zeros, then ``values`` (field name -> int or
    bytes) where ``btf`` lays them out."""
    size, fields = _layout(name, btf)
    out = bytearray(size)
    for field_name, value in values.items():
        f = fields.get(field_name)
        if f is None or f.bits:
            raise MachineSpecError(f"{what}: struct {name} has no byte-aligned field "
                                   f"{field_name!r}")
        if isinstance(value, (bytes, bytearray)):
            if len(value) > f.size:
                raise MachineSpecError(f"{what}: {field_name} holds {f.size} bytes, got "
                                       f"{len(value)}")
            raw = bytes(value).ljust(f.size, b"\0")
        else:
            raw = _int_field(value, f.size * 8, f"{what} {field_name}").to_bytes(f.size,
                                                                                  "little")
        out[f.offset:f.offset + f.size] = raw
    return bytes(out)


def struct_bytes(name: str, values: Mapping, btf=None) -> bytes:
    """The bytes of a kernel ``struct name`` (``"css_set"``, ``"cgroup"``) for a
    machine's ``kernel_memory``: zeros, then ``values`` (byte-aligned field names as
    :meth:`pyebpf.btf.Type.fields` spells them -> int or bytes) where ``btf`` (default:
    CO-RE's target) lays them out."""
    return _struct_bytes(name, values, btf, f"struct {name}")


def worker_kernel_memory(machine: Machine) -> tuple[tuple[int, bytes], ...]:
    """``machine``'s kernel memory with its kworker's ``task_struct`` (made when a run
    first uses the machine: laying it out reads the kernel BTF)."""
    kworker = machine.kworker
    # a replay makes a machine per event, most with the default kworker: its bytes once
    cached = kworker.fields is None and machine.btf is None
    key = (kworker.pid, kworker.tgid, kworker.comm_bytes)
    raw = _KWORKER_STRUCTS.get(key) if cached else None
    if raw is None:
        fields = {"flags": KWORKER_FLAGS}
        fields.update(kworker.fields or {})
        raw = task_struct(Task(pid=kworker.pid, tgid=kworker.tgid, comm=kworker.comm_bytes,
                               address=kworker.address, fields=fields), machine.btf, False)
        if cached and len(_KWORKER_STRUCTS) < 64:
            _KWORKER_STRUCTS[key] = raw
    return _ranges(machine.kernel_memory + ((kworker.address, raw),), "kernel_memory")


_KWORKER_STRUCTS: dict = {}   # (pid, tgid, comm) -> a kworker's task_struct (CO-RE's BTF)


def task_struct(task: Task, btf=None, current: bool = True) -> bytes:
    """The bytes of ``task``'s ``struct task_struct``: zeros, then pid, tgid, comm, its
    ``cgroups`` (the modelled css_set of the ``current`` task, or of another one:
    :data:`pyebpf.skb.kern.CSS_SET_ADDRESS`) and the task's ``fields``, where ``btf``
    lays them out."""
    from ..skb import kern
    values = {"pid": task.pid, "tgid": task.tgid, "comm": task.comm_bytes,
              "cgroups": kern.CSS_SET_ADDRESS + (0 if current else kern.CSS_SET_STRIDE)}
    values.update(task.fields or {})
    return _struct_bytes("task_struct", values, btf, "task fields")


def _int_field(value, bits: int, what: str) -> int:
    if isinstance(value, int) and -(1 << (bits - 1)) <= value < 0:
        value &= (1 << bits) - 1
    return _u(value, bits, what)
