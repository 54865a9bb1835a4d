"""Instantiate an :class:`~pyebpf.elf.ObjectSpec`: maps allocated, programs decoded.

``pyebpf.load("prog.o")`` reads the object (:func:`pyebpf.elf.parse`) and makes an
:class:`Object`: one :class:`~pyebpf.Map` per map spec with its initial contents (global
data copied in, program arrays filled), then one :class:`~pyebpf.Program` per program
spec with its ``lddw`` map references pointed at those maps.

Program types come from the section names (:data:`pyebpf.elf.SECTION_TYPES`);
``prog_type`` overrides them, as tc's command line does: one type for every program,
or a dict from program or section name to type.  pyebpf runs socket_filter, sched_cls
and sched_act programs; a program of another type (xdp, kprobe...) is not loaded, and
asking for it says why (``Object.skipped``).

Maps of maps are created after the other maps, each with a fresh map of its inner
definition as template, then filled with the object's maps (``inner_maps``).

Pinning (libbpf's LIBBPF_PIN_BY_NAME, iproute2's PIN_GLOBAL_NS and PIN_OBJECT_NS; the
spec's ``pin_path`` is relative to :func:`pyebpf.pin_root`): by default a map whose
declaration asks for a pin reuses the map pinned there if its definition matches (type,
key and value size, max_entries, flags; otherwise an ElfError naming map and pin path,
as libbpf refuses an incompatible pinned map), without re-applying initial contents;
else it is created, filled and pinned (a loader that pins the same path first wins,
the other reuses its map).  ``pin=False`` creates such maps unpinned; ``pin`` a
callable is called as ``pin(spec, create)`` for each and returns the Map to use
(``create()`` makes a fresh one from the spec).  ``Object.pins`` lists the paths asked
for.
"""
from __future__ import annotations

import errno as _errno
import os

from . import elf as _elf
from . import isa
from .errors import EbpfError, ElfError, PinError

__all__ = ["load", "Object", "RUNNABLE_TYPES"]

RUNNABLE_TYPES = ("socket_filter", "sched_cls", "sched_act")


def load(source, *, prog_type=None, profile: str = "current", pin=True,
         name: str | None = None) -> "Object":
    """Load an object file (path or bytes) into an :class:`Object`."""
    return Object(_elf.parse(source, name=name), prog_type=prog_type, profile=profile,
                  pin=pin)


def program_type(spec: _elf.ProgramSpec, override) -> str:
    """The type to load ``spec`` as: ``override`` (one type, or a dict by program or
    section name), else the one its section name gives."""
    if isinstance(override, dict):
        override = override.get(spec.name, override.get(spec.section))
    if override is None:
        return spec.prog_type
    try:
        return isa.prog_type(override).name[len("BPF_PROG_TYPE_"):].lower()
    except ValueError as exc:
        raise ElfError(str(exc), section=spec.section, symbol=spec.name) from None


class Object:
    """The maps and programs of one object.

    ``programs`` (name -> Program) and ``maps`` (name -> Map) are in declaration order;
    ``program(name)`` takes a program's C function name or its section name; ``license``,
    ``version`` and ``spec`` (the :class:`~pyebpf.elf.ObjectSpec`) are as read;
    ``skipped`` names the programs not loaded and why.
    """

    def __init__(self, spec: _elf.ObjectSpec, *, prog_type=None, profile: str = "current",
                 pin=True):
        from ._core import Map, Program
        self.spec, self.license, self.version = spec, spec.license, spec.version
        self.maps, self.programs, self.skipped, self.pins = {}, {}, {}, {}
        try:
            self._instantiate(spec, prog_type, profile, pin, Map, Program)
        except BaseException:
            self.close()
            raise

    def _instantiate(self, spec, prog_type, profile, pin, Map, Program) -> None:
        # maps of maps last: their slots hold the others
        for ms in sorted(spec.maps.values(), key=lambda m: m.inner is not None):
            self.maps[ms.name] = self._make_map(Map, ms, pin)
        self.maps = {name: self.maps[name] for name in spec.maps}
        fds = {name: m.fd for name, m in self.maps.items()}
        for ps in spec.programs.values():
            kind = program_type(ps, prog_type)
            if kind not in RUNNABLE_TYPES:
                self.skipped[ps.name] = (f"a {kind} program ({ps.type_reason}); pyebpf runs "
                                         f"{', '.join(RUNNABLE_TYPES)}: pass prog_type= to "
                                         f"load it as one of those")
                continue
            try:
                self.programs[ps.name] = Program(ps.instructions(fds), kind, profile=profile)
            except EbpfError as exc:
                raise ElfError(f"program cannot be loaded: {exc}", file=spec.name,
                               section=ps.section, symbol=ps.name) from exc
        for ms in spec.maps.values():
            for slot, prog_name in ms.programs.items():
                prog = self.programs.get(prog_name)
                if prog is None:
                    raise ElfError(f"slot {slot} names program {prog_name!r}, which is not "
                                   f"loaded: {self.skipped.get(prog_name, 'no such program')}",
                                   file=spec.name, section=ms.section, symbol=ms.name)
                try:
                    self.maps[ms.name][slot.to_bytes(4, "little")] = prog
                except EbpfError as exc:
                    raise ElfError(f"cannot put program {prog_name!r} in slot {slot}: {exc}",
                                   file=spec.name, section=ms.section, symbol=ms.name) from exc

    def _make_map(self, Map, ms: _elf.MapSpec, pin):
        def create():
            m = template = None
            try:
                if ms.inner is not None:
                    template = Map.create(ms.inner.type, ms.inner.key_size,
                                          ms.inner.value_size, ms.inner.max_entries,
                                          ms.inner.flags, name=ms.inner.name)
                m = Map.create(ms.type, ms.key_size, ms.value_size, ms.max_entries, ms.flags,
                               name=ms.name, inner_map=template)
                for key, value in ms.contents:
                    m[key] = value
                for slot, inner in ms.inner_maps.items():
                    m[slot.to_bytes(ms.key_size, "little")] = self.maps[inner]
            except (EbpfError, ValueError, MemoryError, OverflowError) as exc:
                if m is not None:
                    m.close()
                raise ElfError(f"map cannot be created ({ms.type_name}, key {ms.key_size}, "
                               f"value {ms.value_size}, max_entries {ms.max_entries}, flags "
                               f"{ms.flags:#x}): {exc}", file=self.spec.name,
                               section=ms.section, symbol=ms.name) from exc
            m.key_type, m.value_type = ms.key_type, ms.value_type
            return m
        if ms.pin_path is None:
            return create()
        self.pins[ms.name] = ms.pin_path
        if pin is False:
            return create()
        return pin(ms, create) if callable(pin) else self._pinned(Map, ms, create)

    def _pinned(self, Map, ms: _elf.MapSpec, create):
        """The map pinned at ``ms.pin_path`` if there is one, else a new one pinned there."""
        from . import pinning

        def fail(message):
            return ElfError(f"pin {pinning.resolve(ms.pin_path)}: {message}",
                            file=self.spec.name, section=ms.section, symbol=ms.name)
        if ms.programs or ms.inner is not None:
            raise fail("pyebpf's pin format cannot hold a program array filled by the "
                       "object or a map of maps: load with pin=False")
        for _ in range(2):
            try:
                m = Map.from_pin(ms.pin_path)
            except PinError as exc:
                if exc.errno != _errno.ENOENT:
                    raise fail(str(exc)) from exc
            else:
                found = (int(m.type), m.key_size, m.value_size, m.max_entries, m.flags)
                wanted = (ms.type, ms.key_size, ms.value_size, ms.max_entries, ms.flags)
                if found != wanted:
                    raise fail("the pinned map does not match the definition (type, key "
                               "size, value size, max_entries, flags): pinned "
                               f"{found}, declared {wanted}")
                return m
            m = create()
            try:
                os.makedirs(os.path.dirname(pinning.resolve(ms.pin_path)), exist_ok=True)
                m.pin(ms.pin_path)
                return m
            except EbpfError as exc:
                m.close()
                if not isinstance(exc, PinError) or exc.errno != _errno.EEXIST:
                    raise fail(f"cannot pin the map: {exc}") from exc
        raise fail("the pin appeared and vanished while loading")

    def close(self) -> None:
        """Drop the maps' handles (programs already loaded keep their maps); pinned maps
        keep theirs: in a process one Map stands for a pin, shared by every load of it."""
        for m in self.maps.values():
            if m._pin is None:
                m.close()

    def program(self, name: str):
        """The program called ``name`` (its C function) or the one in section ``name``."""
        if name in self.programs:
            return self.programs[name]
        if name in self.skipped:
            raise ElfError(f"program {name!r} is not loaded: {self.skipped[name]}",
                           file=self.spec.name)
        found = self.spec.find_programs(name)
        if len(found) == 1:
            return self.program(found[0].name)
        choices = ", ".join(f"{p.name} (section {p.section})" for p in
                            self.spec.programs.values())
        if found:
            raise ElfError(f"section {name!r} holds {len(found)} programs: name one of "
                           f"{', '.join(p.name for p in found)}", file=self.spec.name)
        raise ElfError(f"no program or section {name!r}; the object has: {choices or 'none'}",
                       file=self.spec.name)

    def listing(self) -> str:
        return self.spec.listing()

    def __repr__(self) -> str:
        return (f"<pyebpf.Object {self.spec.name}: {len(self.programs)} programs, "
                f"{len(self.maps)} maps>")
