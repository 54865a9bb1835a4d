"""The kernel's answers to the oracle's bpf(2) calls, live or played back from the repository.

:class:`Answers` stands in for ``pyebpf.kernel.sysbpf.calls`` for the whole test session,
so every differential test has one body and two backends:

- ``live``: bpf(2) works here.  Each call goes to the kernel, and its answer must equal
  the one kept in ``tests/kernel_answers/`` (a test fails on a difference, or on a call
  that has no recorded answer: record again).
- ``replay``: bpf(2) is refused (no root).  Each call is answered from the files; a call
  without a recorded answer fails the test, naming the command.
- ``record`` (``pytest --record-kernel-answers``, needs bpf(2)): calls go to the kernel
  and the answers of every test that ran replace that test's in its module's file.

Some answers differ from run to run in the kernel itself: those about hash maps created
without ``BPF_F_ZERO_SEED`` (their order depends on a random per-map seed) or LRU maps
(per-CPU lists evict approximately), runs of programs that reach such a map, lookups in
program arrays and maps of maps (they give kernel-wide ids), and the tests marked
``kernel_varies`` (time, random numbers).  They are recorded and replayed,
but a live run does not hold them against the recorded ones.  Tests that need the
running kernel itself (the ``live_kernel`` fixture) neither record nor check answers.

A call is keyed by a hash of its inputs with file descriptors replaced by what they
stand for: a map by its creation parameters (and how many equal maps were open), a
program by its type, licence and instructions (map fds in ``lddw`` by their maps), a
map's contents by the history of what was done to it (updates, deletes, lookups, runs of
programs that can reach it).  So the key does not depend on fd numbers or test order, and
a lookup after a run has another key than the same lookup before it.

Files: ``tests/kernel_answers/<test module>.json.gz``, one JSON object: ``kernel`` (the
``uname -r`` the answers came from), ``possible_cpus`` and ``tests`` (test node id ->
key -> answer).
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import platform
from pathlib import Path

import pytest

from pyebpf import isa
from pyebpf.kernel import sysbpf, vmlinux
from pyebpf.kernel.oracle import _meaningful_last_line

DIR = Path(__file__).resolve().parent / "kernel_answers"
_SESSION = "session"                    # calls made outside any test
_FAKE_FD = 1 << 20                      # replayed fds: far above any real one
_FD_VALUE_MAPS = frozenset({isa.MapType.BPF_MAP_TYPE_PROG_ARRAY,
                            isa.MapType.BPF_MAP_TYPE_ARRAY_OF_MAPS,
                            isa.MapType.BPF_MAP_TYPE_HASH_OF_MAPS})
_MAP_LDDW = frozenset({isa.BPF_PSEUDO_MAP_FD, isa.BPF_PSEUDO_MAP_VALUE})
_LDDW = isa.OPS_BY_NAME["LDDW"].code
_CALL = isa.CALL_CODE
_HASH_KINDS = frozenset({isa.MapType.BPF_MAP_TYPE_HASH, isa.MapType.BPF_MAP_TYPE_PERCPU_HASH,
                         isa.MapType.BPF_MAP_TYPE_HASH_OF_MAPS})
_LRU_KINDS = frozenset({isa.MapType.BPF_MAP_TYPE_LRU_HASH,
                        isa.MapType.BPF_MAP_TYPE_LRU_PERCPU_HASH})
_SOCK_MAPS = frozenset({isa.MapType.BPF_MAP_TYPE_SOCKMAP, isa.MapType.BPF_MAP_TYPE_SOCKHASH})

# Sockets put in socket maps, which take them by fd: fd -> the name a test gave the
# socket (name_socket), what an update's key holds instead of the fd's number.
SOCKET_NAMES: dict[int, str] = {}


def name_socket(fd: int, name: str) -> None:
    """Key the socket map updates that put ``fd`` in by ``name``."""
    SOCKET_NAMES[fd] = name


# Differential comparisons made by the test helpers (skbdiff, pktprog), per test node id,
# for the summary.
COMPARISONS: dict[str, int] = {}


def count_comparison() -> None:
    test = _test()
    COMPARISONS[test] = COMPARISONS.get(test, 0) + 1


class AnswerMismatch(AssertionError):
    """The kernel's answer is not the recorded one, or there is no recorded answer."""


def _h(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=_plain)
                          .encode()).hexdigest()[:32]


def _plain(v):
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).hex()
    raise TypeError(f"cannot key {type(v).__name__}")


def _test() -> str:
    """The node id of the running test ("" outside tests)."""
    return os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" (", 1)[0]


def _module(test: str) -> str:
    return Path(test.split("::")[0]).stem if test else _SESSION


class _Handle:
    """What an fd stands for: ``ident`` names the object, ``state`` its history."""

    def __init__(self, kind: str, ident: str, reaches=()):
        self.kind, self.ident, self.state = kind, ident, ident
        self.reaches = list(reaches)      # handles this one can reach (maps; fds in values)
        self.map_type = self.params = None
        self.varies = False               # the kernel's answers about it vary run to run


class Answers:
    """A stand-in for :class:`pyebpf.kernel.sysbpf.Syscalls`; ``mode`` is ``"live"``,
    ``"replay"`` or ``"record"``."""

    def __init__(self, mode: str, real: sysbpf.Syscalls, directory: Path = DIR):
        self.mode, self.real, self.dir = mode, real, directory
        self.files: dict[str, dict] = {}         # module -> test -> key -> answer
        self.recorded: dict[str, dict] = {}     # key -> answer, from every file
        self.kernel = self.possible = None
        for path in sorted(directory.glob("*.json.gz")):
            data = json.loads(gzip.decompress(path.read_bytes()))
            self.kernel, self.possible = data["kernel"], data["possible_cpus"]
            self.files[path.name[:-len(".json.gz")]] = data["tests"]
            for answers in data["tests"].values():
                self.recorded.update(answers)
        self.new: dict[str, dict] = {}           # test -> key -> answer (record mode)
        self.live_only: set[str] = set()         # tests of the live_kernel fixture
        self.varying: set[str] = set()           # tests marked kernel_varies
        self.handles: dict[int, _Handle] = {}
        self.next_fd = _FAKE_FD
        self.served: dict[str, int] = {}        # test node id -> answers given
        self.asked: dict[str, dict] = {}         # varying test -> key -> times asked

    # --- the answer for one call ---------------------------------------------------------
    def _answer(self, what: str, key: str, ask, same=lambda a, b: a == b,
                varies: bool = False) -> dict:
        test = _test()
        if test in self.live_only:
            return ask()
        self.served[test] = self.served.get(test, 0) + 1
        if test in self.varying:
            # asked again, the kernel may answer otherwise (a later clock): each asking of
            # the same call in such a test has an answer of its own, in that test only
            times = self.asked.setdefault(test, {})
            times[key] = times.get(key, 0) + 1
            key = _h(key, test, times[key])
        if self.mode == "replay":
            if key not in self.recorded:
                raise AnswerMismatch(f"no recorded kernel answer for this {what} (key {key}): "
                                     f"record them where bpf(2) works: "
                                     f"python -m pytest --record-kernel-answers")
            return self.recorded[key]
        got = ask()
        if self.mode == "record":
            self.new.setdefault(test, {})[key] = got
        elif varies or test in self.varying:
            return got
        elif key not in self.recorded:
            raise AnswerMismatch(f"the kernel answered a {what} that has no recorded answer "
                                 f"(key {key}): record them again: "
                                 f"python -m pytest --record-kernel-answers")
        elif not same(self.recorded[key], got):
            raise AnswerMismatch(f"the kernel's answer to a {what} differs from the recorded "
                                 f"one (recorded on {self.kernel}): recorded "
                                 f"{self.recorded[key]!r}, now {got!r}")
        return got

    def _fd(self, handle: _Handle, real_fd: int) -> int:
        if self.mode == "replay":
            real_fd, self.next_fd = self.next_fd, self.next_fd + 1
        self.handles[real_fd] = handle
        return real_fd

    def _ident(self, fd: int) -> str:
        h = self.handles.get(fd)
        return h.ident if h is not None else f"fd:{fd}"

    def _reachable(self, roots) -> list[_Handle]:
        seen, todo, out = set(), list(roots), []
        while todo:
            h = todo.pop()
            if id(h) in seen:
                continue
            seen.add(id(h))
            if h.kind == "map":
                out.append(h)
            todo += h.reaches
        return sorted(out, key=lambda h: h.ident)

    # --- programs ------------------------------------------------------------------------
    def _program_refs(self, insns: bytes) -> tuple[bytes, list]:
        """The instructions with map fds in lddw zeroed, and the maps' handles; a kfunc's
        or kernel variable's BTF id of vmlinux (a call's or lddw's imm) becomes its name,
        so that the answers hold for another build of the same kernel, whose BTF numbers
        its types differently."""
        code, refs = bytearray(insns), []
        for i in range(0, len(code) - 7, isa.INSN_SIZE):
            op, src = code[i], code[i + 1] >> 4
            if op == _LDDW and src in _MAP_LDDW and i + 16 <= len(code):
                fd = int.from_bytes(code[i + 4:i + 8], "little", signed=True)
                refs.append(self.handles.get(fd) or _Handle("unknown", f"fd:{fd}"))
                code[i + 4:i + 8] = bytes(4)
            elif (op == _CALL and src == isa.BPF_PSEUDO_KFUNC_CALL and code[i + 2:i + 4] == b"\0\0"
                  or op == _LDDW and src == isa.BPF_PSEUDO_BTF_ID and i + 16 <= len(code)
                  and code[i + 12:i + 16] == bytes(4)):
                name = vmlinux.symbol_name(int.from_bytes(code[i + 4:i + 8], "little"))
                if name is not None:
                    code[i + 4:i + 8] = bytes(4)
                    refs.append(_Handle("ksym", name))
        return bytes(code), refs

    def prog_load(self, prog_type, insns, license, log_level, btf=None, func_info=b"",
                  line_info=b"", prog_flags=0):
        code, refs = self._program_refs(insns)
        refs_ids = [h.ident for h in refs]
        extra = (btf, func_info) if btf is not None else ()
        extra += (line_info,) if line_info else ()
        # flags only in the keys of loads that have them: older answers keep theirs
        flags = {"prog_flags": prog_flags} if prog_flags else {}
        key = _h("load", int(prog_type), code, refs_ids, license, log_level, *extra,
                 *flags.values())
        # the verifier reads a read-only map's contents (constants from .rodata): two
        # loads of one code with other settings are other calls; answers recorded before
        # the contents were part of the key are still found under the old one
        settings = [h.state for h in refs if h.params and h.params[4] & isa.BPF_F_RDONLY_PROG]
        if settings:
            old_key, key = key, _h(key, settings)
            if self.mode != "record" and key not in self.recorded and old_key in self.recorded:
                key = old_key

        def ask():
            fd, err, log = self.real.prog_load(prog_type, insns, license, log_level, *extra,
                                               **flags)
            ask.fd = fd
            return {"ok": fd >= 0, "err": err, "log": log}
        ask.fd = -1

        def same(a, b):
            return (a["ok"], a["err"], _meaningful_last_line(a["log"])) == \
                (b["ok"], b["err"], _meaningful_last_line(b["log"]))
        answer = self._answer("BPF_PROG_LOAD", key, ask, same)
        if not answer["ok"]:
            return -1, answer["err"], answer["log"]
        handle = _Handle("prog", _h("prog", int(prog_type), code, refs_ids, license, *extra,
                                    *flags.values()), refs)
        return self._fd(handle, ask.fd), 0, answer["log"]

    def prog_test_run(self, fd, data, ctx, data_out_size, ctx_out_size, repeat, flags):
        prog = self.handles.get(fd)
        maps = self._reachable([prog]) if prog is not None else []
        key = _h("run", self._ident(fd), data, ctx, data_out_size, ctx_out_size, repeat, flags,
                 [m.state for m in maps])
        for m in maps:
            m.state = _h(m.state, key)
        if prog is not None:
            prog.state = _h(prog.state, key)

        def ask():
            r = self.real.prog_test_run(fd, data, ctx, data_out_size, ctx_out_size, repeat,
                                        flags)
            return {"err": r.err, "retval": r.retval, "data": r.data.hex(),
                    "ctx": r.ctx.hex() if r.ctx is not None else None, "size_out": r.size_out}
        a = self._answer("BPF_PROG_TEST_RUN", key, ask, varies=any(m.varies for m in maps))
        return sysbpf.TestRun(a["err"], a["retval"], bytes.fromhex(a["data"]),
                              bytes.fromhex(a["ctx"]) if a["ctx"] is not None else None,
                              a["size_out"], 0)

    def prog_stream_read(self, fd, stream_id, size):
        # what a read gives depends on the program's runs and reads before it: each
        # changes the program's state (a run's own key leaves it out, as it did before
        # streams were read)
        prog = self.handles.get(fd)
        key = _h("stream_read", prog.state if prog is not None else f"fd:{fd}", stream_id,
                 size)
        if prog is not None:
            prog.state = _h(prog.state, key)

        def ask():
            err, data = self.real.prog_stream_read(fd, stream_id, size)
            return {"err": err, "data": data.hex()}
        a = self._answer("BPF_PROG_STREAM_READ_BY_FD", key, ask)
        return a["err"], bytes.fromhex(a["data"])

    # --- maps ----------------------------------------------------------------------------
    def map_create(self, map_type, key_size, value_size, max_entries, flags, inner_map_fd,
                   name, map_extra=0, btf=None):
        params = [int(map_type), key_size, value_size, max_entries, flags,
                  self._ident(inner_map_fd) if inner_map_fd else 0, name]
        if map_extra:       # appended only when given: the keys of older answers stay
            params.append(map_extra)
        if btf is not None:
            params.append(_h(btf[0], btf[1], btf[2]))
        twins = sum(1 for h in self.handles.values() if h.params == params)
        key = _h("map_create", params)

        def ask():
            fd, err = self.real.map_create(map_type, key_size, value_size, max_entries, flags,
                                           inner_map_fd, name, map_extra,
                                           **({} if btf is None else {"btf": btf}))
            ask.fd = fd
            return {"ok": fd >= 0, "err": err}
        ask.fd = -1
        answer = self._answer("BPF_MAP_CREATE", key, ask)
        if not answer["ok"]:
            return -1, answer["err"]
        handle = _Handle("map", _h("map", params, twins))
        handle.params, handle.map_type = params, int(map_type)
        handle.varies = (map_type in _LRU_KINDS or
                         (map_type in _HASH_KINDS and not flags & isa.BPF_F_ZERO_SEED))
        return self._fd(handle, ask.fd), 0

    def map_elem(self, cmd, fd, key, value, flags, out_size):
        m = self.handles.get(fd)
        value_id = value
        if m is not None and m.map_type in _FD_VALUE_MAPS and value is not None \
                and len(value) == 4:
            target = self.handles.get(int.from_bytes(value, "little"))
            if target is not None:
                value_id = target.ident
                if cmd == isa.BpfCmd.BPF_MAP_UPDATE_ELEM:
                    m.reaches.append(target)
        sock_map = m is not None and m.map_type in _SOCK_MAPS
        if sock_map and value is not None and cmd == isa.BpfCmd.BPF_MAP_UPDATE_ELEM:
            fd_value = int.from_bytes(value, "little")
            value_id = SOCKET_NAMES.get(fd_value, f"socket fd {fd_value}")
        state = m.state if m is not None else f"fd:{fd}"
        k = _h("elem", int(cmd), state, key, value_id, flags, out_size)
        if m is not None:
            m.state = _h(m.state, k)

        def ask():
            err, out = self.real.map_elem(cmd, fd, key, value, flags, out_size)
            return {"err": err, "out": out.hex()}
        # a lookup in a program array or a map of maps gives the kernel-wide id of the
        # program or map in the slot, which differs from run to run
        # a socket map's lookup gives the socket's cookie, a kernel-wide counter's value
        varies = m is not None and (m.varies or (
            (m.map_type in _FD_VALUE_MAPS or sock_map) and cmd == isa.BpfCmd.BPF_MAP_LOOKUP_ELEM))
        a = self._answer(isa.BpfCmd(cmd).name, k, ask, varies=varies)
        return a["err"], bytes.fromhex(a["out"])

    def libbpf_instructions(self, source: str, program: str, ask) -> bytes:
        """The instructions libbpf sent the kernel for ``program`` of the object compiled
        from ``source`` (CO-RE relocated): ``ask()``'s where bpf(2) works, else the
        recorded ones.  Keyed by the source: the object's bytes name its build directory."""
        a = self._answer("libbpf object load", _h("libbpf insns", source, program),
                         lambda: {"insns": ask().hex()})
        return bytes.fromhex(a["insns"])

    def observation(self, what: str, key: str, ask, unavailable=()) -> dict:
        """What ``ask()`` saw the running kernel do beyond single bpf(2) calls (a program
        attached to a probe, then triggered), with the bpf(2) calls it makes going
        straight to the kernel: asked where bpf(2) works, recorded with
        ``--record-kernel-answers``, replayed elsewhere.  It differs from run to run
        (pids, addresses), so a live run does not hold it against the recorded one.
        Where ``ask()`` raises one of ``unavailable`` (the mechanism is missing from this
        kernel) a live run falls back to the recorded answer; without one the test is
        skipped with the reason."""
        key = _h("observation", what, key)
        if self.mode == "replay" and key not in self.recorded:
            pytest.skip(f"{what}: no recorded observation (the kernel that recorded the "
                        f"answers could not make it either)")

        def direct():
            saved, sysbpf.calls = sysbpf.calls, self.real
            try:
                return ask()
            except unavailable as exc:
                if key not in self.recorded or self.mode == "record":
                    pytest.skip(f"{what}: {exc}")
                print(f"{what}: {exc}; the recorded observation stands in")
                return self.recorded[key]
            finally:
                sysbpf.calls = saved
        return self._answer(what, key, direct, varies=True)

    def map_batch(self, cmd, fd, in_batch, keys, values, count, elem_flags, flags,
                  batch_size):
        m = self.handles.get(fd)
        state = m.state if m is not None else f"fd:{fd}"
        k = _h("batch", int(cmd), state, in_batch, keys, values, count, elem_flags, flags,
               batch_size)
        if m is not None:
            m.state = _h(m.state, k)

        def ask():
            err, got, out, kout, vout = self.real.map_batch(
                cmd, fd, in_batch, keys, values, count, elem_flags, flags, batch_size)
            return {"err": err, "count": got, "out": out.hex(), "keys": kout.hex(),
                    "values": vout.hex()}
        a = self._answer(isa.BpfCmd(cmd).name, k, ask, varies=m is not None and m.varies)
        return (a["err"], a["count"], bytes.fromhex(a["out"]), bytes.fromhex(a["keys"]),
                bytes.fromhex(a["values"]))

    def close(self, fd):
        self.handles.pop(fd, None)
        if self.mode != "replay":
            self.real.close(fd)

    def possible_cpus(self):
        if self.mode == "replay":
            return self.possible
        return self.real.possible_cpus()

    # --- files ---------------------------------------------------------------------------
    def save(self) -> list[Path]:
        """Write the answers of every test that ran (record mode) into its module's file,
        replacing what that test had there; the paths written."""
        self.dir.mkdir(exist_ok=True)
        meta = {"kernel": platform.release(), "possible_cpus": self.real.possible_cpus()}
        by_module: dict[str, dict] = {}
        for test, answers in self.new.items():
            by_module.setdefault(_module(test), {})[test] = answers
        written = []
        for module, tests in sorted(by_module.items()):
            # a test renamed or removed since its answers were recorded leaves them behind,
            # where they would answer for the same call in its place: dropped here
            kept = self.files.get(module, {})
            if module != _SESSION:
                source = (Path(__file__).parent / f"{module}.py").read_text()
                kept = {t: a for t, a in kept.items()
                        if f"def {t.split('::')[-1].split('[')[0]}(" in source}
            merged = {**kept, **tests}
            path = self.dir / f"{module}.json.gz"
            body = json.dumps({**meta, "tests": {t: dict(sorted(a.items()))
                                                 for t, a in sorted(merged.items())}},
                              separators=(",", ":")).encode()
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(gzip.compress(body, mtime=0))
            tmp.replace(path)
            written.append(path)
        return written
