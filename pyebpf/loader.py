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

Pinning: a map spec whose declaration asks for a pin keeps it in ``pin_path``; ``pin``,
if given, is called as ``pin(spec, create)`` for each such map and returns the Map to
use (``create()`` makes a fresh one from the spec): the hook through which pinned maps
are shared.  Without it such maps are created unpinned and ``Object.pins`` lists the
paths they asked for.
"""
from __future__ import annotations

from . import elf as _elf
from . import isa
from .errors import EbpfError, ElfError

__all__ = ["load", "Object", "RUNNABLE_TYPES"]

RUNNABLE_TYPES = ("socket_filter", "sched_cls", "sched_act")


def load(source, *, prog_type=None, profile: str = "current", pin=None,
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
                 pin=None):
        from ._core import Map, Program
        self.spec, self.license, self.version = spec, spec.license, spec.version
        self.maps, self.programs, self.skipped, self.pins = {}, {}, {}, {}
        try:
            self._instantiate(spec, prog_type, profile, pin, Map, Program)
        except BaseException:
            self.close()
            raise

    def _instantiate(self, spec, prog_type, profile, pin, Map, Program) -> None:
        for ms in spec.maps.values():
            self.maps[ms.name] = self._make_map(Map, ms, pin)
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
            m = None
            try:
                m = Map.create(ms.type, ms.key_size, ms.value_size, ms.max_entries, ms.flags,
                               name=ms.name)
                for key, value in ms.contents:
                    m[key] = value
            except (EbpfError, ValueError, MemoryError) as exc:
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
        return create() if pin is None else pin(ms, create)

    def close(self) -> None:
        """Drop the maps' handles (programs already loaded keep their maps)."""
        for m in self.maps.values():
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
