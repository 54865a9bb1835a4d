"""ELF objects loaded into the kernel the way :func:`pyebpf.load` loads them into pyebpf."""
from __future__ import annotations

import struct

from .. import isa
from ..btf.fields import has_special_fields
from ..errors import ElfError
from ..verifier.globalfuncs import kernel_takes
from .oracle import KernelMap, KernelProgram, possible_cpus
from .vmlinux import kfunc_btf_id


class KernelObject:
    """An ELF object loaded into the kernel (see :func:`load_object`): ``maps`` (name ->
    KernelMap), ``programs`` (name -> KernelProgram), ``program(name)`` by C function or
    section name, ``skipped`` (programs of types pyebpf does not run, not loaded)."""

    def __init__(self, spec, prog_type=None):
        from ..loader import RUNNABLE_TYPES, program_type
        self.spec, self.license = spec, spec.license
        self.maps, self.programs, self.skipped = {}, {}, {}
        try:
            # maps of maps last, with a template made from the inner definition (closed
            # once the outer map exists, as libbpf does), then filled with the object's maps
            for ms in sorted(spec.maps.values(), key=lambda m: m.inner is not None):
                self.maps[ms.name] = m = self._map(ms)
                for key, value in ms.contents:
                    m.update(key, value)
                for slot, inner in ms.inner_maps.items():
                    m.update(slot.to_bytes(ms.key_size, "little"),
                             self.maps[inner].fd.to_bytes(4, "little"))
                if ms.declared == "data" and ms.flags & isa.BPF_F_RDONLY_PROG:
                    m.freeze()      # libbpf freezes .rodata and .kconfig once filled
            self.maps = {name: self.maps[name] for name in spec.maps}
            fds = {name: m.fd for name, m in self.maps.items()}
            for ps in spec.programs.values():
                kind = program_type(ps, prog_type)
                if kind not in RUNNABLE_TYPES:
                    self.skipped[ps.name] = f"a {kind} program"
                    continue
                code = ps.instructions(fds, kfunc_btf_id)
                # the program's BTF and func_info whenever the object has them and the
                # kernel takes them, as libbpf passes them: they make non-static functions
                # global (check_btf_func)
                btf = spec.kernel_btf if ps.func_info and kernel_takes(spec.btf) else None
                info = b"".join(struct.pack("<II", pc, tid) for pc, tid in ps.func_info)
                lines = _line_info(spec.btf, ps.line_info) if btf else b""
                self.programs[ps.name] = KernelProgram(code, kind,
                                                       license=spec.license or "GPL",
                                                       btf=btf, func_info=info if btf else b"",
                                                       line_info=lines)
            for ms in spec.maps.values():
                for slot, prog_name in ms.programs.items():
                    if prog_name not in self.programs:
                        raise ElfError(f"slot {slot} names program {prog_name!r}, which is not "
                                       f"loaded", file=spec.name, symbol=ms.name)
                    self.maps[ms.name].update(slot.to_bytes(4, "little"),
                                              self.programs[prog_name].fd.to_bytes(4, "little"))
        except BaseException:
            self.close()
            raise

    def _map(self, ms) -> KernelMap:
        # created without BTF, the definition being what the kernel's behaviour needs,
        # unless the value holds a bpf_spin_lock, bpf_timer or kptr, which the kernel
        # finds in it
        def make(d, inner_map_fd=0):
            btf = None
            if self.spec.kernel_btf is not None and has_special_fields(d.value_type):
                btf = (self.spec.kernel_btf, d.key_type.id if d.key_type else 0,
                       d.value_type.id)
            return KernelMap(d.type, d.key_size, d.value_size,
                             d.created_max_entries(possible_cpus()), d.flags,
                             name=d.name, inner_map_fd=inner_map_fd,
                             map_extra=d.map_extra, btf=btf)
        if ms.inner is None:
            m = make(ms)
        else:
            with make(ms.inner) as template:
                m = make(ms, template.fd)
        m.key_type, m.value_type = ms.key_type, ms.value_type
        return m

    def program(self, name: str) -> KernelProgram:
        if name not in self.programs:
            found = self.spec.find_programs(name)
            if len(found) != 1 or found[0].name not in self.programs:
                raise KeyError(f"no loaded program or single-program section {name!r} in "
                               f"{self.spec.name}; loaded: {', '.join(self.programs)}")
            name = found[0].name
        return self.programs[name]

    def close(self) -> None:
        for prog in self.programs.values():
            prog.close()
        for m in self.maps.values():
            m.close()

    def __enter__(self) -> "KernelObject":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _line_info(btf, records) -> bytes:
    """``struct bpf_line_info`` records: the file and source strings by their offsets in
    the BTF string section, line and column packed as ``line << 10 | column``."""
    offsets, off = {}, 0
    for s in btf.strings.split(b"\0"):
        offsets.setdefault(s.decode(errors="replace"), off)
        off += len(s) + 1
    return b"".join(struct.pack("<IIII", li.pc, offsets.get(li.file_name, 0),
                                offsets.get(li.source_line, 0),
                                li.line << 10 | li.column & 0x3FF)
                    for li in records)


def load_object(source, *, prog_type=None, btf=None, kconfig=None) -> KernelObject:
    """Load an ELF object (path or bytes) into the kernel the way :func:`pyebpf.load`
    loads it into pyebpf: the same map definitions and initial contents (maps created
    without BTF), the same ``lddw`` rewriting from the specs, program arrays filled
    (iproute2's ``ID/KEY`` sections read as tc reads them, with the same
    :class:`~pyebpf.errors.ElfWarning` for one whose ID names no program array), kfunc
    calls resolved to the running kernel's BTF ids as libbpf resolves them, and each
    program's BTF and function info passed with it when the object has them (so the
    kernel verifies non-static functions as global ones, on their own).
    CO-RE relocations are applied against ``btf``, by default the running kernel's, and
    ``__kconfig`` externs take their values from ``kconfig`` (see :func:`pyebpf.elf.parse`);
    typeless ``__ksym`` externs the running kernel's addresses (``/proc/kallsyms``, as
    libbpf reads them)."""
    from .. import elf, ksym
    return KernelObject(elf.parse(source, btf=btf, kconfig=kconfig,
                                  kallsyms=ksym.read_kallsyms), prog_type)
