"""The ``.BTF.ext`` section of a BPF ELF object: which function and which C source line
each instruction comes from, and a listing that interleaves the two (``llvm-objdump -S``).

``.BTF.ext`` starts with a header (magic 0xeb9f, version 1, flags, hdr_len, then offset
and length of the func_info and line_info subsections, and from hdr_len 32 of the CO-RE
relocation subsection), the offsets counted from the end of the header.  Each
subsection is a u32 record size followed by one block per ELF section: the section's
name (an offset into the .BTF string table), a record count and the records.  A
func_info record is (insn_off, type_id), a line_info record (insn_off, file_name_off,
line_off, line << 10 | column); later fields of longer records are skipped, as libbpf
does.  insn_off is a byte offset in the object file (libbpf divides it by 8 before
loading); here it becomes the instruction index ``pc``.  A CO-RE relocation record
is (insn_off, type_id, access_str_off, kind) (``struct bpf_core_relo``); the relocation
engine, :mod:`pyebpf.btf.relo`, applies them.

The strings (section names, file names, source lines) live in the ``.BTF`` section's
string table, which the caller passes as bytes; function names need the ``.BTF`` types,
which the caller may pass as a mapping of FUNC type id to name.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Iterable, Mapping, NamedTuple

from .. import isa
from ..errors import ElfError

__all__ = ["FuncInfo", "LineInfo", "CoreRelo", "BtfExt", "parse_btf_ext", "disassembly_by_pc",
           "interleave", "annotate"]

BTF_MAGIC = 0xEB9F
_MIN_HDR, _CORE_HDR = 24, 32
_FUNC_REC, _LINE_REC, _CORE_REC = 8, 16, 16


class FuncInfo(NamedTuple):
    pc: int                  # instruction index in its section
    type_id: int             # the BTF FUNC type
    name: str | None         # from type_names, None when not given


class LineInfo(NamedTuple):
    pc: int
    file_name: str
    line: int
    column: int
    source_line: str         # the C text of that line, as clang stored it


class CoreRelo(NamedTuple):
    pc: int                  # instruction index in its section
    type_id: int             # the local (object's) BTF type the access starts from
    access: str              # "0:1:2" (field/array indices) or an enumerator index
    kind: int                # isa.CoreReloKind
    number: int              # position in the section's records, for error messages


@dataclass(frozen=True)
class BtfExt:
    version: int
    flags: int
    func_info: dict[str, list[FuncInfo]]      # section name -> records, in file order
    line_info: dict[str, list[LineInfo]]
    func_info_rec_size: int
    line_info_rec_size: int
    core_relo_len: int                         # bytes of the CO-RE relocation subsection
    core_relos: dict[str, list[CoreRelo]] = None   # section name -> records, in file order


def _fail(off: int, what: str) -> ElfError:
    return ElfError(f".BTF.ext offset {off:#x}: {what}")


def _string(strings: bytes, off: int, where: int, what: str) -> str:
    end = strings.find(b"\0", off) if off < len(strings) else -1
    if end < 0:
        raise _fail(where, f"{what} at string offset {off:#x} is outside the .BTF string "
                           f"table ({len(strings)} bytes) or not NUL-terminated")
    return strings[off:end].decode(errors="replace")


def _subsection(data: bytes, bo: str, hdr_len: int, off: int, length: int, name: str,
                min_rec: int, where: int):
    """(record size, [(section name offset, position of first record, count)])."""
    if not length:
        return 0, []
    start, end = hdr_len + off, hdr_len + off + length
    if off % 4:
        raise _fail(where, f"{name} subsection offset {off:#x} is not 4-byte aligned")
    if end > len(data):
        raise _fail(where, f"{name} subsection ({length} bytes at {start:#x}) runs past "
                           f"the end of the section ({len(data)} bytes)")
    if length < 4:
        raise _fail(start, f"{name} subsection of {length} bytes has no record size")
    (rec_size,) = struct.unpack_from(bo + "I", data, start)
    if rec_size < min_rec or rec_size % 4:
        raise _fail(start, f"{name} record size {rec_size}: need a multiple of 4, at "
                           f"least {min_rec}")
    blocks, pos = [], start + 4
    while pos < end:
        if pos + 8 > end:
            raise _fail(pos, f"{name} block header runs past the subsection end {end:#x}")
        sec_off, count = struct.unpack_from(bo + "II", data, pos)
        if not count:
            raise _fail(pos, f"{name} block with no records")
        if pos + 8 + count * rec_size > end:
            raise _fail(pos, f"{name} block of {count} records of {rec_size} bytes runs "
                             f"past the subsection end {end:#x}")
        blocks.append((sec_off, pos, pos + 8, count))
        pos += 8 + count * rec_size
    return rec_size, blocks


def _pc(insn_off: int, where: int) -> int:
    if insn_off % isa.INSN_SIZE:
        raise _fail(where, f"insn_off {insn_off:#x} is not a multiple of {isa.INSN_SIZE}")
    return insn_off // isa.INSN_SIZE


def parse_btf_ext(data: bytes, strings: bytes,
                  type_names: Mapping[int, str] | None = None) -> BtfExt:
    """The func_info and line_info of a ``.BTF.ext`` section, per ELF section.

    ``strings`` is the string table of the object's ``.BTF`` section; ``type_names``
    optionally maps FUNC type ids to their names.  Bytes that do not form a valid
    ``.BTF.ext`` raise :class:`ElfError` naming the offset in the section.
    """
    data, strings = bytes(data), bytes(strings)
    if len(data) < 4:
        raise _fail(0, f"{len(data)} bytes: too short for a header")
    magic_le = struct.unpack_from("<H", data, 0)[0]
    if magic_le == BTF_MAGIC:
        bo = "<"
    elif struct.unpack_from(">H", data, 0)[0] == BTF_MAGIC:
        bo = ">"
    else:
        raise _fail(0, f"bad magic {magic_le:#06x} (want {BTF_MAGIC:#x})")
    version, flags = data[2], data[3]
    if version != 1:
        raise _fail(2, f"version {version}, only 1 is known")
    if len(data) < 8:
        raise _fail(4, "header length missing")
    (hdr_len,) = struct.unpack_from(bo + "I", data, 4)
    if hdr_len < _MIN_HDR or hdr_len > len(data):
        raise _fail(4, f"header length {hdr_len}: need {_MIN_HDR}..{len(data)}")
    func_off, func_len, line_off, line_len = struct.unpack_from(bo + "4I", data, 8)
    core_off, core_len = (struct.unpack_from(bo + "II", data, 24) if hdr_len >= _CORE_HDR
                          else (0, 0))

    func_rec, func_blocks = _subsection(data, bo, hdr_len, func_off, func_len, "func_info",
                                        _FUNC_REC, 8)
    line_rec, line_blocks = _subsection(data, bo, hdr_len, line_off, line_len, "line_info",
                                        _LINE_REC, 16)
    names = type_names or {}
    func_info: dict[str, list[FuncInfo]] = {}
    for sec_off, where, pos, count in func_blocks:
        recs = func_info.setdefault(_string(strings, sec_off, where, "section name"), [])
        for k in range(count):
            at = pos + k * func_rec
            insn_off, type_id = struct.unpack_from(bo + "II", data, at)
            recs.append(FuncInfo(_pc(insn_off, at), type_id, names.get(type_id)))
    line_info: dict[str, list[LineInfo]] = {}
    for sec_off, where, pos, count in line_blocks:
        recs = line_info.setdefault(_string(strings, sec_off, where, "section name"), [])
        for k in range(count):
            at = pos + k * line_rec
            insn_off, file_off, text_off, line_col = struct.unpack_from(bo + "4I", data, at)
            recs.append(LineInfo(_pc(insn_off, at), _string(strings, file_off, at + 4,
                                                             "file name"),
                                 line_col >> 10, line_col & 0x3FF,
                                 _string(strings, text_off, at + 8, "source line")))
    core_rec, core_blocks = _subsection(data, bo, hdr_len, core_off, core_len, "core_relo",
                                        _CORE_REC, 24)
    core_relos: dict[str, list[CoreRelo]] = {}
    for sec_off, where, pos, count in core_blocks:
        recs = core_relos.setdefault(_string(strings, sec_off, where, "section name"), [])
        for k in range(count):
            at = pos + k * core_rec
            insn_off, type_id, access_off, kind = struct.unpack_from(bo + "4I", data, at)
            recs.append(CoreRelo(_pc(insn_off, at), type_id,
                                 _string(strings, access_off, at + 8, "access string"),
                                 kind, len(recs)))
    return BtfExt(version, flags, func_info, line_info, func_rec, line_rec, core_len,
                  core_relos)


def disassembly_by_pc(code: bytes, syntax: str = "kernel") -> dict[int, str]:
    """Instruction text by pc (an lddw is one entry, at its first slot)."""
    from .. import asm  # its syntax tables are built at import: only listings need them
    slots, out, pc = isa.unpack_program(bytes(code)), {}, 0
    while pc < len(slots):
        op = isa.lookup(slots[pc])
        n = op.slots if op else 1
        out[pc] = asm.disassemble_one(slots[pc:pc + n], pc, syntax)
        pc += n
    return out


def annotate(rows: Iterable[tuple[int, list[str]]], sources) -> list[str]:
    """The lines of a listing: ``rows`` are (pc, lines printed for that pc) in order, and
    ``sources(pc)`` the :class:`LineInfo` records that begin at or before that pc and
    have not been shown yet.  A record's C line, as ``; file:line: text``, comes before
    the rows it produced; a line is shown again only when the line changes (as
    ``llvm-objdump -S -l`` does)."""
    out, shown = [], None
    for pc, lines in rows:
        for li in sources(pc):
            if (li.file_name, li.line) != shown:
                shown = (li.file_name, li.line)
                text = li.source_line.strip()
                out.append(f"; {li.file_name}:{li.line}" + (f": {text}" if text else ""))
        out.extend(lines)
    return out


def interleave(disassembly_lines_by_pc: Mapping[int, str],
               line_info: Iterable[LineInfo]) -> str:
    """A listing in which each C source line, as ``; file:line: text``, precedes the
    instructions it produced (see :func:`annotate`).  Instructions print as ``pc: text``."""
    pending = sorted(line_info, key=lambda li: li.pc)
    k = 0

    def sources(pc: int) -> list[LineInfo]:
        nonlocal k
        start = k
        while k < len(pending) and pending[k].pc <= pc:
            k += 1
        return pending[start:k]
    rows = [(pc, [f"{pc:>5}: {disassembly_lines_by_pc[pc]}"])
            for pc in sorted(disassembly_lines_by_pc)]
    return "".join(line + "\n" for line in annotate(rows, sources))
