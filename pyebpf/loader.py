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
the other reuses its map).  A program array or map of maps the object fills is pinned
empty, then filled: its programs are pinned at ``<pin path>.progs/NAME``, and the maps
they reference and its inner maps that ask for no pin at ``tc/<sha1>/NAME`` (the
object's namespace, where every load looks for its unpinned maps first).
``pin=False`` creates such maps unpinned; ``pin`` a callable is called as ``pin(spec,
create)`` for each and returns the Map to use (``create()`` makes a fresh one from the
spec).  ``Object.pins`` lists the paths asked for.
"""
from __future__ import annotations

import contextlib
import errno as _errno
import os

from . import elf as _elf
from . import isa
from .btf.fields import has_special_fields
from .errors import EbpfError, ElfError, PinError
from .host import map_cpus
from .verifier import globalfuncs

__all__ = ["load", "Object", "RUNNABLE_TYPES"]

RUNNABLE_TYPES = ("socket_filter", "sched_cls", "sched_act", "kprobe")
_OF_MAPS = (isa.MapType.BPF_MAP_TYPE_ARRAY_OF_MAPS, isa.MapType.BPF_MAP_TYPE_HASH_OF_MAPS)


def load(source, *, prog_type=None, profile: str = "current", pin=True,
         name: str | None = None, verify: bool = True, btf=None, kconfig=None,
         env=None, machine=None) -> "Object":
    """Load an object file (path or bytes) into an :class:`Object`; each program is
    verified as the kernel verifies it at load (``verify=False``: not, see
    :class:`~pyebpf.Program`).  ``btf`` is the target BTF of CO-RE relocations,
    ``kconfig`` the values of ``__kconfig`` externs (see :func:`pyebpf.elf.parse`);
    ``env`` (a :class:`pyebpf.Environment`) is the modelled network its programs' runs
    see; ``machine`` (a :class:`pyebpf.trace.Machine`) the machine its maps are made on,
    whose ids they take (default: the process's)."""
    obj = Object(_elf.parse(source, name=name, btf=btf, kconfig=kconfig), prog_type=prog_type,
                 profile=profile, pin=pin, verify=verify, btf=btf, machine=machine)
    if env is not None:
        from .environment import Environment
        if not isinstance(env, Environment):
            raise TypeError(f"env must be a pyebpf.Environment, not {type(env).__name__}")
        for prog in obj.programs.values():
            prog.env = env
    return obj


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
    ``program(name)`` takes a program's C function name or its section name, and
    ``program()`` gives ``default_program`` when set, else the object's only program;
    ``events(name)`` and ``ringbuf(name)`` iterate what programs sent to a perf event
    array or ring buffer, decoded with BTF (see :mod:`pyebpf.mapview`); ``license``,
    ``version`` and ``spec`` (the :class:`~pyebpf.elf.ObjectSpec`) are as read;
    ``skipped`` names the programs not loaded and why.
    """

    def __init__(self, spec: _elf.ObjectSpec, *, prog_type=None, profile: str = "current",
                 pin=True, verify: bool = True, btf=None, machine=None):
        from ._core import Map, Program
        self._btf = btf         # the target BTF: CO-RE's, and what bpf_snprintf_btf prints by
        self._machine = machine     # whose map ids the maps take
        self.spec, self.license, self.version = spec, spec.license, spec.version
        self.maps, self.programs, self.skipped, self.pins = {}, {}, {}, {}
        self.default_program = None
        self._reused = set()    # maps got from a pin: their initial contents are not applied
        self._claimed = []      # pins this load made for maps it fills after pinning them
        try:
            self._instantiate(spec, prog_type, profile, pin, verify, Map, Program)
        except BaseException:
            self.close()
            for path in self._claimed:  # half-filled: the next load must not reuse them
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            raise

    def _instantiate(self, spec, prog_type, profile, pin, verify, Map, Program) -> None:
        if spec.btf is not None:
            from .btf.fields import struct_meta_error
            refused = struct_meta_error(spec.btf)
            if refused is not None:
                # the kernel refuses the BTF (BPF_BTF_LOAD, for the first map or program
                # given it), the object with it
                raise ElfError(f"BTF: {refused}", file=spec.name, section=".BTF") \
                    from refused
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
                functions = globalfuncs.describe(spec.btf, ps.func_info, kind)
                # libbpf loads without BTF the kernel would refuse
                func_info = bool(ps.func_info) and spec.btf is not None and \
                    globalfuncs.kernel_takes(spec.btf)
                if func_info and verify:
                    globalfuncs.check_int_returns(spec.btf, ps.func_info, ps.insns)
                # no license section: "GPL", as pyebpf.kernel.load_object passes it
                self.programs[ps.name] = Program(ps.instructions(fds), kind, profile=profile,
                                                 line_info=ps.line_info, verify=verify,
                                                 kern_version=spec.version,
                                                 functions=functions, btf=self._btf,
                                                 func_info=func_info,
                                                 license=spec.license or "GPL",
                                                 prog_btf=spec.btf)
            except EbpfError as exc:
                # libbpf's poison call: say which CO-RE relocation found no target
                why = "".join(f"; {p.reason}" for p in ps.core_poisoned
                              if p.pc == getattr(exc, "pc", None))
                raise ElfError(f"program cannot be loaded: {exc}{why}", file=spec.name,
                               section=ps.section, symbol=ps.name) from exc
        # pinned arrays first: pinning their programs can pin an array not yet filled,
        # which is then filled as a pinned one (never an unpinned one already filled)
        todo = [ms for ms in spec.maps.values() if ms.programs and ms.name not in self._reused]
        while todo:
            ms = min(todo, key=lambda t: self.maps[t.name]._pin is None)
            todo.remove(ms)
            self._fill_program_array(ms)

    def _fill_program_array(self, ms: _elf.MapSpec) -> None:
        m = self.maps[ms.name]
        for slot, prog_name in ms.programs.items():
            prog = self.programs.get(prog_name)
            if prog is None:
                raise ElfError(f"slot {slot} names program {prog_name!r}, which is not "
                               f"loaded: {self.skipped.get(prog_name, 'no such program')}",
                               file=self.spec.name, section=ms.section, symbol=ms.name)
            try:
                if m._pin is not None:
                    self._pin_program(prog, prog_name, m)
                m[slot.to_bytes(4, "little")] = prog
            except EbpfError as exc:
                raise ElfError(f"cannot put program {prog_name!r} in slot {slot}: {exc}",
                               file=self.spec.name, section=ms.section, symbol=ms.name) from exc

    def _pin_program(self, prog, name: str, array) -> None:
        """Pin a program going into the pinned ``array`` at ``<its pin>.progs/NAME``,
        after pinning the maps it references that have no pin, in the object's
        namespace.  A stale pin there (left by an array since unpinned) is replaced:
        this load pinned the array, so the directory is its own."""
        from . import pinning
        if prog in pinning._prog_pins:
            return
        for m in prog.maps:
            if m._pin is None:
                self._pin_in_namespace(m)
        path = pinning.resolve(f"{array._pin.path}.progs/{name}")
        pinning.makedirs(os.path.dirname(path))
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        prog.pin(path)

    def _pin_in_namespace(self, m) -> None:
        """Pin ``m`` at ``tc/<sha1 of the object>/NAME``, as PIN_OBJECT_NS would, so that
        what holds it can be pinned (a map of maps: its inner maps first)."""
        from . import pinning
        if m.type in _OF_MAPS:
            for inner in m._programs.values():
                if inner._pin is None:
                    self._pin_in_namespace(inner)
        path = pinning.resolve(f"{self.spec.namespace}/{m.name}")
        pinning.makedirs(os.path.dirname(path))
        m.pin(path)

    def _make_map(self, Map, ms: _elf.MapSpec, pin):
        def create(fill_inner=True):
            m = template = None
            try:
                if ms.inner is not None:
                    # the template's value BTF: what the verifier knows of an inner
                    # map's values (its bpf_timer, bpf_spin_lock: bpf_map_meta_alloc)
                    template = Map.create(ms.inner.type, ms.inner.key_size,
                                          ms.inner.value_size, ms.inner.max_entries,
                                          ms.inner.flags, name=ms.inner.name,
                                          value_type=ms.inner.value_type,
                                          machine=self._machine)
                m = Map.create(ms.type, ms.key_size, ms.value_size,
                               ms.created_max_entries(map_cpus()), ms.flags,
                               name=ms.name, inner_map=template, map_extra=ms.map_extra,
                               value_type=ms.value_type, machine=self._machine)
                if ms.type == isa.MapType.BPF_MAP_TYPE_ARENA:
                    # bpf_object__create_maps: libbpf copies the __arena globals into
                    # its mapping of the arena, which allocates their pages
                    for _key, value in ms.contents:
                        m.mmap()[:len(value)] = value
                else:
                    for key, value in ms.contents:
                        m[key] = value
                if fill_inner:
                    self._fill_inner(m, ms)
            except (EbpfError, ValueError, MemoryError, OverflowError) as exc:
                if m is not None:
                    m.close()
                raise self._error(ms, f"map cannot be created ({ms.type_name}, key "
                                      f"{ms.key_size}, value {ms.value_size}, max_entries "
                                      f"{ms.max_entries}, flags {ms.flags:#x}): {exc}") from exc
            finally:
                if template is not None:
                    # libbpf closes the template's fd once the outer map is created
                    # (bpf_object__create_map); m.inner_map keeps the Map, without a handle
                    template.close()
            m.key_type, m.value_type = ms.key_type, ms.value_type
            # libbpf freezes read-only global data once filled; the BTF type ids are
            # those pyebpf.kernel.load_object creates the map with (has_special_fields)
            btf_ids = ((ms.key_type.id if ms.key_type else 0, ms.value_type.id)
                       if self.spec.kernel_btf is not None
                       and has_special_fields(ms.value_type) else (0, 0))
            m._loaded(ms.declared == "data" and bool(ms.flags & isa.BPF_F_RDONLY_PROG),
                      *btf_ids)
            return m
        if ms.pin_path is None:
            # a previous load pinned it in the object's namespace, for a pinned map's sake
            found = pin is True and self._from_pin(ms, f"{self.spec.namespace}/{ms.name}")
            return found or create()
        self.pins[ms.name] = ms.pin_path
        if pin is False:
            return create()
        return pin(ms, create) if callable(pin) else self._pinned(ms, create)

    def _fill_inner(self, m, ms: _elf.MapSpec) -> None:
        for slot, inner in ms.inner_maps.items():
            if m._pin is not None and self.maps[inner]._pin is None:
                self._pin_in_namespace(self.maps[inner])
            m[slot.to_bytes(ms.key_size, "little")] = self.maps[inner]

    def _error(self, ms: _elf.MapSpec, message: str) -> ElfError:
        return ElfError(message, file=self.spec.name, section=ms.section, symbol=ms.name)

    def _from_pin(self, ms: _elf.MapSpec, path: str):
        """The map pinned at ``path`` if there is one matching ``ms`` (ElfError if it
        does not match), else None."""
        from ._core import Map
        from . import pinning

        def definition(m):
            flags = m.flags
            if m.type in (isa.MapType.BPF_MAP_TYPE_DEVMAP, isa.MapType.BPF_MAP_TYPE_DEVMAP_HASH):
                # the creation added it (dev_map_init_map): libbpf's map_is_reuse_compat
                # ignores it
                flags &= ~isa.BPF_F_RDONLY_PROG
            return (int(m.type), m.key_size, m.value_size, m.max_entries, flags)
        try:
            m = Map.from_pin(path)
        except PinError as exc:
            if exc.errno == _errno.ENOENT:
                return None
            raise self._error(ms, f"pin {pinning.resolve(path)}: {exc}") from exc
        found, wanted = [definition(m)], [(ms.type, ms.key_size, ms.value_size,
                                           ms.max_entries, ms.flags)]
        if ms.inner is not None and m.inner_map is not None:
            found.append(definition(m.inner_map))
            wanted.append((ms.inner.type, ms.inner.key_size, ms.inner.value_size,
                           ms.inner.max_entries, ms.inner.flags))
        if found != wanted:
            raise self._error(ms, f"pin {pinning.resolve(path)}: the pinned map does not "
                                  "match the definition (type, key size, value size, "
                                  "max_entries, flags; maps of maps: then their inner "
                                  f"map's): pinned {', '.join(map(str, found))}, declared "
                                  f"{', '.join(map(str, wanted))}")
        self._reused.add(ms.name)
        return m

    def _pinned(self, ms: _elf.MapSpec, create):
        """The map pinned at ``ms.pin_path`` if there is one, else a new one pinned there.
        One the object fills with programs or inner maps is pinned empty, then filled,
        so that the load that won the pin is the one that pins what it holds."""
        from . import pinning
        full = pinning.resolve(ms.pin_path)
        for _ in range(2):
            m = self._from_pin(ms, ms.pin_path)
            if m is not None:
                return m
            m = create(fill_inner=False)
            try:
                pinning.makedirs(os.path.dirname(full))
                m.pin(ms.pin_path)
            except EbpfError as exc:
                m.close()
                if not isinstance(exc, PinError) or exc.errno != _errno.EEXIST:
                    raise self._error(ms, f"pin {full}: cannot pin the map: {exc}") from exc
                continue
            if ms.programs or ms.inner_maps:
                self._claimed.append(full)
            try:
                self._fill_inner(m, ms)
            except EbpfError as exc:
                raise self._error(ms, f"pin {full}: cannot fill the map: {exc}") from exc
            return m
        raise self._error(ms, f"pin {full}: the pin appeared and vanished while loading")

    def close(self) -> None:
        """Drop the maps' handles (programs already loaded keep their maps; a pinned map
        got again from its pin gets its handle back)."""
        for m in self.maps.values():
            m.close()

    def program(self, name: str | None = None):
        """The program called ``name`` (its C function) or the one in section ``name``;
        without a name, ``default_program`` or the only program."""
        if name is None:
            if self.default_program is not None:
                return self.default_program
            if len(self.programs) == 1:
                return next(iter(self.programs.values()))
            raise ElfError(f"the object has {len(self.programs)} programs "
                           f"({', '.join(self.programs) or 'none'}): name one",
                           file=self.spec.name)
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

    def _record_codec(self, type_name):
        if type_name is None:
            return None
        from .btf import Kind
        from .mapview import BtfCodec
        if self.spec.btf is None:
            raise ElfError(f"cannot decode records as {type_name!r}: the object has no BTF "
                           "(compile with -g)", file=self.spec.name)
        word, _, name = type_name.rpartition(" ")
        kinds = {"struct": Kind.STRUCT, "union": Kind.UNION, "": None}
        if word not in kinds:
            raise ElfError(f"record type {type_name!r}: write 'struct NAME', 'union NAME' or "
                           "a typedef name", file=self.spec.name)
        found = [t for t in self.spec.btf.by_name(name, kinds[word])
                 if kinds[word] is not None or t.kind == Kind.TYPEDEF]
        if not found:
            raise ElfError(f"no type {type_name!r} in the object's BTF", file=self.spec.name)
        return BtfCodec(found[0], "record")

    def _stream(self, name: str, kind, what: str):
        m = self.maps.get(name)
        if m is None:
            raise ElfError(f"no map {name!r}; the object has: {', '.join(self.maps) or 'none'}",
                           file=self.spec.name)
        if m.type != kind:
            raise ElfError(f"map {name!r} is a {m.type.name}, not a {what}",
                           file=self.spec.name)
        return m

    def events(self, name: str, type: str | None = None) -> list:
        """The records programs sent to perf event array ``name`` with
        bpf_perf_event_output since the last call, as ``(cpu, record)``: bytes, or with
        ``type`` (``"struct event"``, a typedef name) decoded by the object's BTF into
        a named tuple.  Only slots opened with ``Map.open`` receive records, as in the
        kernel."""
        m = self._stream(name, isa.MapType.BPF_MAP_TYPE_PERF_EVENT_ARRAY, "perf event array")
        codec = self._record_codec(type)
        return [(cpu, raw if codec is None else codec.decode(raw[:codec.size]))
                for cpu, raw in m.drain()]

    def ringbuf(self, name: str, type: str | None = None) -> list:
        """The records programs submitted to ring buffer ``name`` since the last call:
        bytes, or with ``type`` decoded by the object's BTF (see :meth:`events`)."""
        m = self._stream(name, isa.MapType.BPF_MAP_TYPE_RINGBUF, "ring buffer")
        codec = self._record_codec(type)
        return [raw if codec is None else codec.decode(raw[:codec.size]) for raw in m.drain()]

    def __repr__(self) -> str:
        return (f"<pyebpf.Object {self.spec.name}: {len(self.programs)} programs, "
                f"{len(self.maps)} maps>")
