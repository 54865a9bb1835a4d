"""Watch the runs of one test: keep them traced, and compare each with the kernel.

A :class:`RunWatcher` installed as the core's run hook sees every
:meth:`pyebpf.Program.run` while it is active (the pytest plugin activates one for the
call phase of each test that uses its fixtures or marker).  It runs the program itself,
traced (so that a failed assertion can show the last instructions with their C lines),
keeps the last results, and with ``kernel=True`` runs the same program on the same
packet in the running kernel with ``BPF_PROG_TEST_RUN`` and raises
:class:`KernelMismatch` listing every difference: the verdict, the packet bytes, the
``__sk_buff`` fields test_run reports, and the contents of the object's hash, array,
LRU hash and LPM trie maps after the run (copied into the kernel's maps before it).

Runs the kernel cannot reproduce raise :class:`KernelMismatch` saying why rather than
passing unchecked: raw-mode programs, socket filters run from the MAC header
(test_run starts them at the network header: pass ``sf_start="network"``), packet
fields test_run does not take, programs with maps not loaded through the plugin.
A kernel-checked run without ``ifindex=`` gets ifindex 1, the loopback device
test_run attaches the packet to.
"""
from __future__ import annotations

import collections
import weakref

from . import isa

__all__ = ["KernelMismatch", "RunWatcher"]

_SYNCED_MAPS = frozenset({isa.MapType.BPF_MAP_TYPE_HASH, isa.MapType.BPF_MAP_TYPE_ARRAY,
                          isa.MapType.BPF_MAP_TYPE_LRU_HASH,
                          isa.MapType.BPF_MAP_TYPE_LPM_TRIE})
_TEST_RUN_FIELDS = frozenset({"mark", "priority", "ingress_ifindex", "ifindex", "cb",
                              "tstamp", "wire_len", "gso_segs", "gso_size", "hwtstamp",
                              "sf_start"})


class KernelMismatch(AssertionError):
    """A run whose outcome in the kernel differs from pyebpf's (or that the kernel
    cannot reproduce); the message lists the differences."""


class RunWatcher:
    """The core's run hook for one test (see the module).  ``objects`` maps programs to
    ``(object path, program name, pyebpf Object, name shown)`` for the kernel side."""

    def __init__(self, *, trace: bool = True, kernel: bool = False, keep: int = 4):
        self.trace = trace
        self.kernel = kernel
        self.objects: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self.last = collections.deque(maxlen=keep)    # (program label, Result)
        self.runs = 0
        self._kernel_objects: dict[int, object] = {}

    def register(self, obj, path: str, shown: str | None = None) -> None:
        """Note the programs of ``obj``, loaded from object file ``path`` (``shown``:
        the name failures give it, by default the path)."""
        for name, prog in obj.programs.items():
            self.objects[prog] = (path, name, obj, shown or path)

    def label(self, program) -> str:
        entry = self.objects.get(program)
        return f"{entry[1]} ({entry[3]})" if entry else repr(program)

    def __enter__(self) -> "RunWatcher":
        from . import _core
        self._saved = _core._set_run_hook(self)
        return self

    def __exit__(self, *exc) -> None:
        from . import _core
        _core._set_run_hook(self._saved)
        for kobj in self._kernel_objects.values():
            kobj.close()
        self._kernel_objects.clear()

    def __call__(self, program, data, budget, trace, fields):
        from . import _core
        _core._set_run_hook(None)
        try:
            self.runs += 1
            if self.kernel:
                return self._checked(program, data, budget, trace, fields)
            res = program.run(data, budget=budget, trace=trace or self.trace, **fields)
            self.last.append((self.label(program), res))
            return res
        finally:
            _core._set_run_hook(self)

    # --- the kernel side ---------------------------------------------------------------

    def _refuse(self, program, why: str):
        raise KernelMismatch(f"pyebpf_kernel_check: run {self.runs} of "
                             f"{self.label(program)} cannot be checked against the kernel: "
                             f"{why}")

    def _checked(self, program, data, budget, trace, fields):
        from . import kernel
        if program.prog_type is None:
            self._refuse(program, "a raw-mode program has no context test_run can give it")
        if program.prog_type == isa.ProgType.BPF_PROG_TYPE_KPROBE:
            self._refuse(program, "BPF_PROG_TEST_RUN does not run kprobe programs; "
                                  "docs/kprobe.md says how they are held against the kernel")
        sf = program.prog_type == isa.ProgType.BPF_PROG_TYPE_SOCKET_FILTER
        if sf and fields.get("sf_start", "mac") != "network":
            self._refuse(program, "BPF_PROG_TEST_RUN runs socket filters from the network "
                                  "header; run it with sf_start=\"network\"")
        unknown = sorted(set(fields) - _TEST_RUN_FIELDS)
        if unknown:
            self._refuse(program, f"BPF_PROG_TEST_RUN cannot set {', '.join(unknown)}")
        fields = dict(fields)
        fields.setdefault("ifindex", 1)
        ctx = {k: v for k, v in fields.items() if k != "sf_start"}
        packet = bytes(data)
        kprog, kmaps, pmaps = self._kernel_program(program)
        for name, m in pmaps.items():
            _copy_map(m, kmaps[name])
        res = program.run(data, budget=budget, trace=trace or self.trace, **fields)
        self.last.append((self.label(program), res))
        try:
            theirs = kprog.test_run(packet, ctx=ctx)
        except kernel.KernelError as exc:
            raise KernelMismatch(f"pyebpf_kernel_check: run {self.runs} of "
                                 f"{self.label(program)}: BPF_PROG_TEST_RUN failed where "
                                 f"pyebpf ran: {exc}") from None
        # test_run starts a socket filter at the network header and returns its u32
        diffs = kernel.compare.differences(
            res, theirs.retval if sf else theirs.retval_signed,
            theirs.data[14:] if sf else theirs.data, theirs.skb or {}, sf)
        for name, m in pmaps.items():
            diffs += _map_differences(name, m, kmaps[name])
        if diffs:
            raise KernelMismatch(f"pyebpf_kernel_check: run {self.runs} of "
                                 f"{self.label(program)} differs from the kernel:\n  "
                                 + "\n  ".join(diffs))
        return res

    def _kernel_program(self, program):
        """(KernelProgram, its kernel maps by name, the pyebpf maps to sync by name)."""
        from . import kernel
        entry = self.objects.get(program)
        if entry is None:
            if program.maps:
                self._refuse(program, "it uses maps and was not loaded through pyebpf_load, "
                                      "so the kernel's copy of its maps is unknown")
            key = id(program)
            if key not in self._kernel_objects:
                self._kernel_objects[key] = self._load(program, lambda: kernel.KernelProgram(
                    program.insns, program.prog_type))
            return self._kernel_objects[key], {}, {}
        path, name, obj, _ = entry
        key = id(obj)
        if key not in self._kernel_objects:
            self._kernel_objects[key] = self._load(program, lambda: kernel.load_object(
                path, prog_type={n: p.prog_type.name[len("BPF_PROG_TYPE_"):].lower()
                                 for n, p in obj.programs.items()}))
        kobj = self._kernel_objects[key]
        pmaps = {n: m for n, m in obj.maps.items() if m.type in _SYNCED_MAPS}
        return kobj.program(name), kobj.maps, pmaps

    def _load(self, program, make):
        from . import kernel
        try:
            return make()
        except kernel.KernelError as exc:
            raise KernelMismatch(f"pyebpf_kernel_check: {self.label(program)}: the kernel "
                                 f"refuses to load what pyebpf runs: {exc}") from None


def _copy_map(ours, theirs) -> None:
    mine = dict(ours.items())
    if ours.type in (isa.MapType.BPF_MAP_TYPE_HASH, isa.MapType.BPF_MAP_TYPE_LRU_HASH,
                     isa.MapType.BPF_MAP_TYPE_LPM_TRIE):
        for key in theirs.keys():
            if key not in mine:
                theirs.delete(key)
    for key, value in mine.items():
        theirs.update(key, value)


def _map_differences(name, ours, theirs) -> list[str]:
    mine = dict(ours.items())
    kernels = {k: theirs.lookup(k) for k in theirs.keys()}
    out = []
    for key in sorted(set(mine) | set(kernels)):
        a, b = mine.get(key), kernels.get(key)
        if a != b:
            out.append(f"map {name} key {key.hex()}: pyebpf "
                       f"{'(none)' if a is None else a.hex()}, kernel "
                       f"{'(none)' if b is None else b.hex()}")
    return out

