"""Maps in and out of a tcsim run: ``--map NAME=FILE.json`` and ``--dump-maps DIR``.

A map file is a JSON object ``{"map": NAME, "type": ..., "entries": [{"key": K,
"value": V}, ...]}`` (what ``--dump-maps`` writes), or just the list of entries.  A key
or value is a string of hexadecimal digits (the raw bytes, as the map stores them), or
a BTF-decoded value as :meth:`pyebpf.Map.typed` gives it: an integer, a list for an
array, an object of member names for a struct or union; per-CPU maps take and give a
list with one value per CPU.  Dumps give both: ``key``/``value`` decoded where the map
has BTF types (else hexadecimal) and ``key_hex``/``value_hex``.  The keys of local
storage are the owners: sockets' cookies, tasks' and cgroups' kernel addresses (an
integer, or 8 bytes in hexadecimal).  The values of socket maps (SOCKMAP, SOCKHASH) are
sockets' cookies, integers (a dump lists the sockets of a map of 8-byte values, whose
cookies read back; of 4-byte values, whose cookies do not, only the keys (a sockmap's
every index), ``value`` null).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from .. import isa
from ..errors import EbpfError


class MapFileError(EbpfError):
    """A ``--map`` or ``--dump-maps`` argument that cannot be used; names it."""


def chain_maps(programs) -> dict:
    """{name: Map} of the maps the programs reference, in order of first use."""
    found = {}
    for p in programs:
        for m in p.maps:
            found.setdefault(m.name or str(m.fd), m)
    return found


def open_perf_buffers(maps, cpus: int) -> None:
    """Open slot c of every perf event array for CPU c, for each simulated CPU c the
    array has a slot for: what a reader of the events does, as libbpf's
    perf_buffer__new opens one perf event per CPU in the slot of its number.  Unopened,
    bpf_perf_event_output finds no event there (-ENOENT)."""
    for m in maps.values():
        if m.type == isa.MapType.BPF_MAP_TYPE_PERF_EVENT_ARRAY:
            for cpu in range(min(cpus, m.max_entries)):
                m.open(cpu)


def _jsonable(value):
    if hasattr(value, "_asdict"):
        return {k: _jsonable(v) for k, v in value._asdict().items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    return value


def _codecs(m):
    """(key codec, value codec) from the map's BTF types, or (None, None)."""
    if m.key_type is None or m.value_type is None:
        return None, None
    from ..mapview import BtfCodec
    try:
        return BtfCodec(m.key_type, "key"), BtfCodec(m.value_type, "value")
    except (ValueError, TypeError):
        return None, None


def _per_cpu(m) -> bool:
    return m.ncpu > 1


def _storage(m) -> bool:
    return m.type.name in ("BPF_MAP_TYPE_SK_STORAGE", "BPF_MAP_TYPE_TASK_STORAGE",
                           "BPF_MAP_TYPE_CGRP_STORAGE")


def _sockets(m) -> bool:
    return m.type.name in ("BPF_MAP_TYPE_SOCKMAP", "BPF_MAP_TYPE_SOCKHASH")


def _dump_sockets(m) -> list:
    # sock_map_lookup_sys: ENOSPC for 4-byte values (the kernel's fds), else the cookie
    entries = []
    for key in m.keys():
        raw = m.lookup(key) if m.value_size == 8 else b""
        if raw is None:
            continue
        entries.append({"key": key.hex(), "value": int.from_bytes(raw, "little") if raw
                        else None, "key_hex": key.hex(), "value_hex": raw.hex() or None})
    return entries


def dump(m) -> dict:
    """One map's contents as the JSON object ``--dump-maps`` writes (local storage:
    each key is the owner, a socket's cookie or a task's or cgroup's address; an
    arena: each allocated page, by its number, with its bytes)."""
    if m.type == isa.MapType.BPF_MAP_TYPE_ARENA:
        view = m.mmap(writable=False)
        pages = [{"key": p, "value": None, "key_hex": None,
                  "value_hex": bytes(view[p * isa.PAGE_SIZE:(p + 1) * isa.PAGE_SIZE]).hex()}
                 for p in m.allocated_pages()]
        return {"map": m.name, "type": m.type.name, "key_size": 0, "value_size": 0,
                "max_entries": m.max_entries, "user_vm_start": m.user_vm_start,
                "entries": pages}
    kc, vc = _codecs(m)
    entries = _dump_sockets(m) if _sockets(m) else []
    for key in [] if _sockets(m) else m.keys():
        raw = m.lookup(key)
        values = raw if _per_cpu(m) else [raw]
        shown = int.from_bytes(key, "little") if _storage(m) else \
            _jsonable(kc.decode(key)) if kc else key.hex()
        entry = {"key": shown,
                 "value": None, "key_hex": key.hex(),
                 "value_hex": [v.hex() for v in values] if _per_cpu(m) else raw.hex()}
        decoded = [_jsonable(vc.decode(v)) if vc else v.hex() for v in values]
        entry["value"] = decoded if _per_cpu(m) else decoded[0]
        entries.append(entry)
    return {"map": m.name, "type": m.type.name, "key_size": m.key_size,
            "value_size": m.value_size, "max_entries": m.max_entries, "entries": entries}


def _raw(text, size: int, what: str) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"{what} {text!r} is neither hexadecimal bytes nor a typed "
                         "value") from None
    if len(raw) != size:
        raise ValueError(f"{what} {text!r} is {len(raw)} bytes; the map's {what}s are "
                         f"{size}")
    return raw


def _encode(value, codec, size: int, what: str, label: str) -> bytes:
    if isinstance(value, str):
        return _raw(value, size, what)
    if codec is None:
        raise ValueError(f"{what} {value!r}: map {label} has no BTF types, so its "
                         f"{what}s are given as hexadecimal bytes")
    return codec.encode(value)


def load(m, path: str, given: str) -> None:
    """Put the entries of the map file ``path`` into ``m`` (``given``: the argument,
    for messages)."""
    try:
        doc = json.loads(Path(path).read_text())
    except OSError as exc:
        raise MapFileError(f"--map {given}: cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise MapFileError(f"--map {given}: {path} is not JSON: {exc}") from None
    entries = doc.get("entries") if isinstance(doc, dict) else doc
    if not isinstance(entries, list):
        raise MapFileError(f"--map {given}: {path} holds neither a list of entries nor an "
                           "object with \"entries\"")
    kc, vc = _codecs(m)
    for k, entry in enumerate(entries):
        try:
            if not isinstance(entry, dict) or not {"key", "value"} <= set(entry):
                raise ValueError("expected an object with \"key\" and \"value\"")
            if _storage(m):
                key = entry["key"] if isinstance(entry["key"], int) else \
                    _raw(entry["key"], 8, "key")
            else:
                key = _encode(entry["key"], kc, m.key_size, "key", m.name)
            value = entry["value"]
            if _sockets(m):
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ValueError(f"value {value!r}: a socket map's values are sockets' "
                                     "cookies (integers)")
                m.update(key, value)
                continue
            if _per_cpu(m) and isinstance(value, list) and len(value) == m.ncpu:
                raw = [_encode(v, vc, m.value_size, "value", m.name) for v in value]
            else:
                raw = _encode(value, vc, m.value_size, "value", m.name)
            m.update(key, raw)
        except (ValueError, TypeError, OverflowError, EbpfError) as exc:
            raise MapFileError(f"--map {given}: {path} entry {k}: "
                               f"{str(exc).splitlines()[0]}") from None


def apply(items, maps: dict) -> None:
    """``--map NAME=FILE`` arguments, each filling the named map of the chain."""
    for given in items:
        name, sep, path = given.partition("=")
        if not sep or not name or not path:
            raise MapFileError(f"--map {given!r}: expected NAME=FILE.json")
        if name not in maps:
            raise MapFileError(f"--map {given}: the programs have no map {name!r}; they "
                               f"have: {', '.join(maps) or 'none'}")
        load(maps[name], path, given)


def dump_files(directory: str, maps: dict) -> list:
    """[(outputs.Target, bytes)]: ``DIR/NAME.json`` for every map, for outputs.write_all."""
    from . import outputs
    target_dir = Path(directory)
    if target_dir.exists() and not target_dir.is_dir():
        raise MapFileError(f"--dump-maps {directory}: not a directory")
    target_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for name, m in maps.items():
        safe = name.replace(os.sep, "_").lstrip(".") or "map"
        text = json.dumps(dump(m), indent=1) + "\n"
        files.append((outputs.resolve(target_dir / f"{safe}.json"), text.encode()))
    return files
