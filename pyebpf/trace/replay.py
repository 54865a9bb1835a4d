"""Replay a tracing program over a stream of events: ``pyebpf trace-replay PROG events.jsonl``.

Each line of the input is one JSON object, one probe hit (every key optional):

- ``regs``: the ``struct pt_regs``, as ``{"di": 3, "si": "0x7f00..."}`` (register names
  of :data:`pyebpf.isa.PT_REGS`) or the struct's bytes as hex;
- ``task``: ``{"pid", "tgid", "uid", "gid", "comm", "address"}`` (:class:`Task`);
- ``kernel_memory``, ``user_memory``: ``{"ADDRESS": "HEX BYTES"}`` snippets;
- ``kernel_stack``, ``user_stack``: return addresses, innermost first;
- ``timestamp``: ns, what ``bpf_ktime_get_ns`` reads during this event;
- ``cpu``, ``func_ip``, ``cookie``: the CPU, the probed address, the attach cookie;
- ``counters``: ``{"MAP": {"SLOT": value}}`` for ``bpf_perf_event_read``.

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

from .machine import Machine, MachineSpecError, Task

_KEYS = {"regs", "task", "kernel_memory", "user_memory", "kernel_stack", "user_stack",
         "timestamp", "cpu", "func_ip", "cookie", "counters"}
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
        user_stack=tuple(_int(ip, "user_stack") for ip in event.get("user_stack", ())))
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
        run["ktime"] = _int(event["timestamp"], "timestamp")
    for key in ("cpu", "func_ip", "cookie"):
        if key in event:
            run[key] = _int(event[key], key)
    return run


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


def replay(program, events, maps: dict, where: str = "events") -> dict:
    """Run ``program`` once per ``(line, event)`` of ``events``; ``maps`` (name -> Map)
    are the program's, read at the end.  The result: ``events`` (how many),
    ``returns`` (return value -> count), ``maps`` (name -> [[key hex, value hex]]),
    ``perf_events`` (name -> [[cpu, data hex]]) and ``ringbuf`` (name -> [data hex])."""
    from .. import isa
    perf = {n: m for n, m in maps.items() if m.type == isa.MapType.BPF_MAP_TYPE_PERF_EVENT_ARRAY}
    rings = {n: m for n, m in maps.items() if m.type == isa.MapType.BPF_MAP_TYPE_RINGBUF}
    for m in perf.values():
        for slot in range(m.max_entries):
            m.open(slot)
    returns: Counter = Counter()
    sent = {n: [] for n in perf}
    records = {n: [] for n in rings}
    count = 0
    for line, event in events:
        try:
            run = event_run(event)
            for name, slots in (event.get("counters") or {}).items():
                if name not in perf:
                    raise MachineSpecError(f"counters: {name!r} is no perf event array of "
                                           f"the program")
                for slot, value in slots.items():
                    perf[name].set_counter(_int(slot, "counter slot"), _int(value, "counter"))
        except (MachineSpecError, TypeError) as exc:
            raise EventError(f"{where}:{line}: {exc}") from None
        try:
            res = program.run(**run)
        except MachineSpecError as exc:         # the registers, checked by the run
            raise EventError(f"{where}:{line}: {exc}") from None
        returns[res.retval] += 1
        count += 1
        for name, m in perf.items():
            sent[name] += [[cpu, data.hex()] for cpu, data in m.drain()]
        for name, m in rings.items():
            records[name] += [data.hex() for data in m.drain()]
    return {"events": count, "returns": {str(k): v for k, v in sorted(returns.items())},
            "maps": {n: [[k.hex(), v.hex()] for k, v in m.items()]
                     for n, m in maps.items() if n not in perf and n not in rings
                     and m.type != isa.MapType.BPF_MAP_TYPE_PROG_ARRAY},
            "perf_events": sent, "ringbuf": records}
