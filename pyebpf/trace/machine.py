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
- ``bpf_get_stackid``, ``bpf_get_stack``: ``kernel_stack`` and ``user_stack``, return
  addresses innermost first.

A Machine is immutable.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .. import isa
from ..errors import EbpfError

TASK_COMM_LEN = 16
#: Where the default task's ``task_struct`` is said to be (a direct-map address).
DEFAULT_TASK_ADDRESS = 0xFFFF888100000000


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
    give the bytes a program reads in the machine's ``kernel_memory``."""
    pid: int = 1000
    tgid: int | None = None
    uid: int = 0
    gid: int = 0
    comm: str | bytes = "pyebpf"
    address: int = DEFAULT_TASK_ADDRESS
    fields: object = None

    def __post_init__(self):
        if self.tgid is None:
            object.__setattr__(self, "tgid", self.pid)
        for name in ("pid", "tgid", "uid", "gid"):
            _u(getattr(self, name), 32, f"task {name}")
        _u(self.address, 64, "task address")
        comm = self.comm.encode() if isinstance(self.comm, str) else bytes(self.comm)
        if len(comm) >= TASK_COMM_LEN or b"\0" in comm:
            raise MachineSpecError(f"task comm is at most {TASK_COMM_LEN - 1} bytes without "
                                   f"NUL, got {self.comm!r}")
        object.__setattr__(self, "comm_bytes", comm)   # what bpf_get_current_comm copies


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
    ``btf`` the kernel BTF that lays out the task's ``task_struct`` (a
    :class:`pyebpf.btf.Btf` or a path; default: CO-RE's target, the running kernel's
    when readable, else the one pyebpf ships)."""
    task: Task = field(default_factory=Task)
    kernel_memory: object = ()
    user_memory: object = ()
    kernel_stack: tuple = ()
    user_stack: tuple = ()
    env: object = None
    btf: object = None

    def __post_init__(self):
        if not isinstance(self.task, Task):
            raise MachineSpecError(f"task must be a pyebpf.trace.Task, not "
                                   f"{type(self.task).__name__}")
        kernel = self.kernel_memory
        if self.task.fields is not None:
            kernel = list(kernel.items() if isinstance(kernel, Mapping) else kernel)
            kernel.append((self.task.address, task_struct(self.task, self.btf)))
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


def _task_layout(btf) -> tuple[int, dict]:
    from ..btf import Kind
    from ..btf.relo import target_btf
    b = target_btf(btf)
    found = b.by_name("task_struct", Kind.STRUCT)
    if not found:
        raise MachineSpecError(f"the BTF {b!r} has no struct task_struct")
    layout = _LAYOUTS.get(id(b))
    if layout is None or layout[0] is not b:
        t = found[0]
        layout = _LAYOUTS[id(b)] = (b, t.byte_size, {f.name: f for f in t.fields()})
    return layout[1], layout[2]


_LAYOUTS: dict = {}      # id(Btf) -> (the Btf, task_struct's size, its fields by name)


def task_struct(task: Task, btf=None) -> bytes:
    """The bytes of ``task``'s ``struct task_struct``: zeros, then pid, tgid, comm and
    the task's ``fields``, where ``btf`` lays them out."""
    size, fields = _task_layout(btf)
    out = bytearray(size)
    values = {"pid": task.pid, "tgid": task.tgid, "comm": task.comm_bytes}
    values.update(task.fields or {})
    for name, value in values.items():
        f = fields.get(name)
        if f is None or f.bits:
            raise MachineSpecError(f"task fields: struct task_struct has no byte-aligned "
                                   f"field {name!r}")
        if isinstance(value, (bytes, bytearray)):
            if len(value) > f.size:
                raise MachineSpecError(f"task fields: {name} holds {f.size} bytes, got "
                                       f"{len(value)}")
            raw = bytes(value).ljust(f.size, b"\0")
        else:
            raw = (_int_field(value, f.size * 8, name)).to_bytes(f.size, "little")
        out[f.offset:f.offset + f.size] = raw
    return bytes(out)


def _int_field(value, bits: int, name: str) -> int:
    if isinstance(value, int) and -(1 << (bits - 1)) <= value < 0:
        value &= (1 << bits) - 1
    return _u(value, bits, f"task field {name}")
