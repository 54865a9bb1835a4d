"""Replay a tracing program over a stream of events: ``pyebpf trace-replay PROG events.jsonl``.

Each line of the input is one JSON object, one probe hit (every key optional):

- ``regs``: the ``struct pt_regs``, as ``{"di": 3, "si": "0x7f00..."}`` (register names
  of :data:`pyebpf.isa.PT_REGS`) or the struct's bytes as hex;
- ``task``: ``{"pid", "tgid", "uid", "gid", "comm", "address"}`` (:class:`Task`);
- ``kernel_memory``, ``user_memory``: ``{"ADDRESS": "HEX BYTES"}`` snippets;
- ``kernel_stack``, ``user_stack``: return addresses, innermost first;
- ``timestamp``: ns, what ``bpf_ktime_get_ns`` reads during this event;
- ``cpu``, ``func_ip``, ``cookie``: the CPU, the probed address, the attach cookie;
- ``counters``: ``{"MAP": {"SLOT": value}}`` for ``bpf_perf_event_read``;
- ``vmas``: the task's mappings for ``bpf_find_vma``, each ``[start, end]`` or an object
  of ``struct vm_area_struct`` fields (``vm_start``, ``vm_end``, ``vm_flags``...);
- ``branches``: last-branch records for ``bpf_get_branch_snapshot``, newest first, each
  ``[from, to]`` or an object of ``struct perf_branch_entry`` fields.

Numbers may be JSON integers or strings in any base Python's ``int(x, 0)`` reads.
Maps persist across events, as they do in the kernel; every slot of every perf event
array is open for the CPU of its index, as a perf buffer reader sets them up.  The
result (:func:`replay`) is the maps' final contents, the records sent to perf event
arrays and ring buffers, and the count of each return value.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from .machine import Machine, MachineSpecError, Task, pt_regs

_KEYS = {"regs", "task", "kernel_memory", "user_memory", "kernel_stack", "user_stack",
         "timestamp", "cpu", "func_ip", "cookie", "counters", "vmas", "branches"}
_TASK_KEYS = {"pid", "tgid", "uid", "gid", "comm", "address"}


class EventError(MachineSpecError):
    """An event line that cannot be replayed: the message names the file and line."""


def _int(value, what: str) -> int:
    if isinstance(value, bool):
        raise MachineSpecError(f"{what}: expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value, 0)
        except ValueError:
            pass
    raise MachineSpecError(f"{what}: expected an integer, got {value!r}")


def _memory(value, what: str) -> dict:
    if not isinstance(value, dict):
        raise MachineSpecError(f"{what}: expected {{\"ADDRESS\": \"HEX\"}}, got {value!r}")
    try:
        return {_int(a, f"{what} address"): bytes.fromhex(d) for a, d in value.items()}
    except (ValueError, TypeError):
        raise MachineSpecError(f"{what}: the bytes must be hex strings") from None


def event_run(event: dict) -> dict:
    """``Program.run`` keyword arguments for one event (a decoded JSON object)."""
    if not isinstance(event, dict):
        raise MachineSpecError("an event is a JSON object")
    unknown = set(event) - _KEYS
    if unknown:
        raise MachineSpecError(f"unknown key {sorted(unknown)[0]!r}; known: "
                               f"{', '.join(sorted(_KEYS))}")
    task = event.get("task", {})
    if not isinstance(task, dict) or set(task) - _TASK_KEYS:
        raise MachineSpecError(f"task: expected an object of {', '.join(sorted(_TASK_KEYS))}")
    task = {k: v if k == "comm" else _int(v, f"task {k}") for k, v in task.items()}
    machine = Machine(
        task=Task(**task),
        kernel_memory=_memory(event.get("kernel_memory", {}), "kernel_memory"),
        user_memory=_memory(event.get("user_memory", {}), "user_memory"),
        kernel_stack=tuple(_int(ip, "kernel_stack") for ip in event.get("kernel_stack", ())),
        user_stack=tuple(_int(ip, "user_stack") for ip in event.get("user_stack", ())),
        vmas=_records(event.get("vmas", []), "vmas"),
        branches=_records(event.get("branches", []), "branches"))
    regs = event.get("regs")
    if isinstance(regs, str):
        try:
            regs = bytes.fromhex(regs)
        except ValueError:
            raise MachineSpecError("regs: a string must be the struct's bytes in hex") from None
    elif isinstance(regs, dict):
        regs = {name: _int(v, f"register {name}") for name, v in regs.items()}
    run = {"regs": regs, "machine": machine}
    if "timestamp" in event:
        run["ktime"] = _u(event["timestamp"], 64, "timestamp")
    for key, bits in (("cpu", 32), ("func_ip", 64), ("cookie", 64)):
        if key in event:
            run[key] = _u(event[key], bits, key)
    return run


def _records(value, what: str) -> tuple:
    """``vmas`` or ``branches``: pairs or objects of fields, with their numbers read."""
    if not isinstance(value, list):
        raise MachineSpecError(f"{what}: expected a list, got {value!r}")
    out = []
    for record in value:
        if isinstance(record, dict):
            out.append({k: _int(v, f"{what} {k}") for k, v in record.items()})
        elif isinstance(record, list) and len(record) == 2:
            out.append(tuple(_int(v, what) for v in record))
        else:
            raise MachineSpecError(f"{what}: each is [start, end] or an object of fields, "
                                   f"got {record!r}")
    return tuple(out)


def _u(value, bits: int, what: str) -> int:
    value = _int(value, what)
    if not 0 <= value < 1 << bits:
        raise MachineSpecError(f"{what}: {value} is no unsigned {bits}-bit integer")
    return value


def read_events(path: Path):
    """(line number, event) for each non-blank line of ``path``; a line that is not JSON
    is an :class:`EventError` naming it."""
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as exc:
                raise EventError(f"{path}:{number}: not JSON: {exc.msg}") from None


#: Events parsed before a batch of them runs, in C (``pyebpf._core.trace_replay_batch``).
BATCH = 1024


def replay(program, events, maps: dict, where: str = "events") -> dict:
    """Run ``program`` once per ``(line, event)`` of ``events``; ``maps`` (name -> Map)
    are the program's, read at the end.  The result: ``events`` (how many),
    ``returns`` (return value -> count), ``maps`` (name -> [[key hex, value hex]]),
    ``perf_events`` (name -> [[cpu, data hex]]) and ``ringbuf`` (name -> [data hex]).
    Events are parsed a batch at a time, each batch then run in one C loop; a bad event
    raises :class:`EventError` after the events before it ran."""
    from .. import _core, isa
    perf = {n: m for n, m in maps.items() if m.type == isa.MapType.BPF_MAP_TYPE_PERF_EVENT_ARRAY}
    rings = {n: m for n, m in maps.items() if m.type == isa.MapType.BPF_MAP_TYPE_RINGBUF}
    for m in perf.values():
        for slot in range(m.max_entries):
            m.open(slot)
    returns: Counter = Counter()
    sent = {n: [] for n in perf}
    records = {n: [] for n in rings}
    count = 0
    batch: list = []

    def run_batch():
        nonlocal count
        retvals, out = _core.trace_replay_batch(program, batch, list(rings.values()))
        returns.update(retvals)
        count += len(batch)
        batch.clear()
        for name, m in perf.items():
            sent[name] += [[cpu, data.hex()] for cpu, data in m.drain()]
        for name, got in zip(rings, out):
            records[name] += [data.hex() for data in got]

    for line, event in events:
        try:
            run = event_run(event)
            run["regs"] = pt_regs(run["regs"], program.arch)
            counters = [(perf[name], _slot(perf[name], slot), _u(value, 64, "counter"))
                        for name, slots in _counters(event, perf) for slot, value in slots]
        except (MachineSpecError, TypeError) as exc:
            run_batch()
            raise EventError(f"{where}:{line}: {exc}") from None
        batch.append((run, counters))
        if len(batch) >= BATCH:
            run_batch()
    run_batch()
    return {"events": count, "returns": {str(k): v for k, v in sorted(returns.items())},
            "maps": {n: [[k.hex(), v.hex()] for k, v in m.items()]
                     for n, m in maps.items() if n not in perf and n not in rings
                     and m.type != isa.MapType.BPF_MAP_TYPE_PROG_ARRAY},
            "perf_events": sent, "ringbuf": records}


def _counters(event: dict, perf: dict):
    """(name, [(slot, value)]) of an event's ``counters``."""
    counters = event.get("counters") or {}
    if not isinstance(counters, dict):
        raise MachineSpecError(f"counters: expected {{\"MAP\": {{\"SLOT\": value}}}}, got "
                               f"{counters!r}")
    for name, slots in counters.items():
        if name not in perf:
            raise MachineSpecError(f"counters: {name!r} is no perf event array of the program")
        if not isinstance(slots, dict):
            raise MachineSpecError(f"counters: {name}: expected {{\"SLOT\": value}}")
        yield name, slots.items()




def _slot(m, value) -> int:
    slot = _int(value, "counter slot")
    if not 0 <= slot < m.max_entries:
        raise MachineSpecError(f"counters: slot {slot} is past max_entries {m.max_entries} "
                               f"of {m.name or 'the perf event array'}")
    return slot


def event(*, regs=None, task=None, kernel_memory=None, user_memory=None, kernel_stack=(),
          user_stack=(), timestamp=None, cpu=None, func_ip=None, cookie=None,
          counters=None, vmas=(), branches=()) -> dict:
    """One event as the JSON object a line holds, from Python values: ``regs`` a dict
    of register values or the struct's bytes, ``task`` a dict of :class:`Task`'s
    fields, memories ``{address: bytes}``, stacks of addresses, ``counters``
    ``{map name: {slot: value}}``; what is None or empty is left out."""
    out: dict = {}
    if regs is not None:
        out["regs"] = (bytes(regs).hex() if isinstance(regs, (bytes, bytearray, memoryview))
                       else {name: hex(v) for name, v in regs.items()})
    if task:
        out["task"] = dict(task)
    for key, memory in (("kernel_memory", kernel_memory), ("user_memory", user_memory)):
        if memory:
            out[key] = {hex(a): bytes(d).hex() for a, d in dict(memory).items()}
    for key, stack in (("kernel_stack", kernel_stack), ("user_stack", user_stack)):
        if stack:
            out[key] = [hex(ip) for ip in stack]
    for key, value in (("timestamp", timestamp), ("cpu", cpu), ("func_ip", func_ip),
                       ("cookie", cookie)):
        if value is not None:
            out[key] = value
    if counters:
        out["counters"] = {name: {str(slot): value for slot, value in slots.items()}
                           for name, slots in counters.items()}
    for key, records in (("vmas", vmas), ("branches", branches)):
        if records:
            out[key] = [dict(r) if isinstance(r, dict) else list(r) for r in records]
    return out


def write_events(path, events) -> None:
    """Write a JSON lines file of ``events`` (objects as :func:`event` makes them, or
    lines of text as they are), whole or not at all."""
    from ..files import write_atomically
    text = "".join((item if isinstance(item, str) else json.dumps(item)) + "\n"
                   for item in events)
    write_atomically(Path(path), text.encode())
