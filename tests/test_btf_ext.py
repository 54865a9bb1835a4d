"""pyebpf.btf.ext: the func_info and line_info of .BTF.ext, and the interleaved listing.

The judges are independent of pyebpf: clang-19 compiles the programs (and the
examples/ objects are read as they are committed), llvm-objdump-19 -S -l says which
source line starts where, llvm-dwarfdump-19 --debug-line gives the line table's
addresses, lines and columns, llvm-readelf-19 the function symbols and bpftool the
BTF FUNC types.  Corrupt sections are made by patching one field of a real one.
"""
from __future__ import annotations

import re
import struct
import subprocess
import tempfile
from pathlib import Path

import pytest

import toolpath
from pyebpf.btf import ext as btf_ext
from pyebpf.btf.ext import LineInfo, disassembly_by_pc, interleave, parse_btf_ext
from pyebpf.errors import ElfError

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TOOLS = {t: toolpath.find(t) for t in ("clang-19", "llvm-objcopy-19", "llvm-objdump-19",
                                      "llvm-dwarfdump-19", "llvm-readelf-19")}
MULTIARCH = subprocess.run(["gcc", "-print-multiarch"], capture_output=True,
                           text=True).stdout.strip() if toolpath.find("gcc") else ""

CALLS = """\
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

static __attribute__((noinline)) int twice(int x)
{
	return x * 2;
}

SEC("tc")
int outer(struct __sk_buff *skb)
{
	int len = skb->len;

	if (len > 100)
		len = twice(len);
	return len & 3;
}

SEC("socket")
int other(struct __sk_buff *skb)
{
	return skb->protocol;
}

char LICENSE[] SEC("license") = "GPL";
"""

CORE = """\
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct thing { int a; int b; } __attribute__((preserve_access_index));

SEC("tc")
int core(struct __sk_buff *skb)
{
	struct thing *t = (void *)(long)skb->cb[0];

	return bpf_core_field_offset(t->b) + skb->len;
}

char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture(autouse=True)
def tools():
    missing = [t for t, path in TOOLS.items() if not path]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (apt-get install clang-19 llvm-19)")


def build(tmp_path, source, target="bpf") -> Path:
    src, obj = tmp_path / "prog.c", tmp_path / "prog.o"
    src.write_text(source)
    include = [f"-I/usr/include/{MULTIARCH}"] if MULTIARCH else []
    subprocess.run(["clang-19", "-O2", "-g", "-target", target, *include,
                    f"-ffile-prefix-map={tmp_path}=.", "-c", "prog.c", "-o", "prog.o"],
                   check=True, cwd=tmp_path)
    return obj


def section(obj: Path, name: str) -> bytes:
    # dump into a scratch directory: objects may live in the checkout (examples/)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp, "section.bin")
        subprocess.run(["llvm-objcopy-19", "--dump-section", f"{name}={out}", str(obj),
                        str(Path(tmp, "rest.o"))], check=True)
        return out.read_bytes()


def btf_strings(btf: bytes) -> bytes:
    """The string table of a .BTF section (header: magic, version, flags, hdr_len,
    type_off, type_len, str_off, str_len)."""
    bo = "<" if btf[:2] == b"\x9f\xeb" else ">"
    hdr_len, _, _, str_off, str_len = struct.unpack_from(bo + "5I", btf, 4)
    return btf[hdr_len + str_off:hdr_len + str_off + str_len]


def parse(obj: Path, **kw) -> btf_ext.BtfExt:
    return parse_btf_ext(section(obj, ".BTF.ext"), btf_strings(section(obj, ".BTF")), **kw)


def dedup_changes(records: list[LineInfo]) -> list[LineInfo]:
    """The records where the (file, line) changes."""
    out, last = [], None
    for li in records:
        if (li.file_name, li.line) != last:
            out.append(li)
            last = (li.file_name, li.line)
    return out


def dwarf_sequences(obj: Path) -> list[list[tuple[int, int, int]]]:
    """llvm-dwarfdump --debug-line: the line table's sequences, each a list of
    (address, line, column) rows ending with its end_sequence row."""
    out = subprocess.run(["llvm-dwarfdump-19", "--debug-line", str(obj)], check=True,
                         capture_output=True, text=True).stdout
    seqs, rows = [], []
    for m in re.finditer(r"^0x([0-9a-f]{16})\s+(\d+)\s+(\d+)\s.*$", out, re.M):
        rows.append((int(m[1], 16), int(m[2]), int(m[3])))
        if m[0].endswith("end_sequence"):
            seqs.append(rows)
            rows = []
    return seqs


def agrees(records: list[LineInfo], func_pcs: set[int], rows) -> bool:
    """Whether line_info tells the same as one DWARF sequence: every record not at a
    function's first instruction is a row (address, line, column), and every row with a
    line (line 0 is "no source line") is told by the record in effect at its address.
    At a function's first instruction clang's BTF may name the function's declaration
    line (test_a_function_starts_with_its_declaration_line), which DWARF does not."""
    table = set(rows[:-1])
    for li in records:
        if li.pc not in func_pcs and (li.pc * 8, li.line, li.column) not in table:
            return False
    for addr, line, col in rows[:-1]:
        current = [li for li in records if li.pc * 8 <= addr]
        if line and addr // 8 not in func_pcs and (
                not current or (current[-1].line, current[-1].column) != (line, col)):
            return False
    return True


def assert_same_as_dwarf(obj: Path, info: btf_ext.BtfExt):
    seqs = dwarf_sequences(obj)
    assert len(seqs) == len(info.line_info)
    for sec, records in info.line_info.items():
        size = len(section(obj, sec))
        func_pcs = {f.pc for f in info.func_info[sec]}
        matches = [k for k, rows in enumerate(seqs)
                   if rows[-1][0] == size and agrees(records, func_pcs, rows)]
        assert matches, f"section {sec}: no DWARF sequence tells the same lines"
        seqs.pop(matches[0])


OBJECTS = sorted(p.stem for p in EXAMPLES.glob("*.o"))


# --- line_info against the llvm tools -------------------------------------------------

@pytest.mark.parametrize("name", OBJECTS)
def test_line_info_tells_the_lines_and_columns_of_the_dwarf_line_table(name):
    obj = EXAMPLES / f"{name}.o"
    assert_same_as_dwarf(obj, parse(obj))


def test_line_info_of_a_program_with_a_bpf_to_bpf_call_and_two_sections(tmp_path):
    obj = build(tmp_path, CALLS)
    info = parse(obj)
    assert sorted(info.line_info) == [".text", "socket", "tc"]
    assert_same_as_dwarf(obj, info)


@pytest.mark.parametrize("name", ["vlan", "tail_dispatch", "drop_icmp", "port_classid"])
def test_a_function_starts_with_its_declaration_line(name):
    """clang's BTF puts the function's signature line, column 0, at its first
    instruction unless that instruction already has a line of its own."""
    obj = EXAMPLES / f"{name}.o"
    info = parse(obj, type_names=btf_func_names(obj))
    starts = 0
    for sec, funcs in info.func_info.items():
        for f in funcs:
            first = next(li for li in info.line_info[sec] if li.pc == f.pc)
            if first.column == 0:
                assert re.match(rf"int {f.name}\(struct __sk_buff \*skb\)$",
                                first.source_line), first
                starts += 1
    assert starts >= 1


def test_source_line_is_the_text_of_that_line_of_the_file():
    info = parse(EXAMPLES / "nat4.o")
    text = (EXAMPLES / "nat4.c").read_text().splitlines()
    records = info.line_info["tc"]
    assert {li.file_name for li in records} == {"./nat4.c"}
    for li in records:
        assert li.source_line == text[li.line - 1], li


def test_a_big_endian_object_gives_the_same_records(tmp_path):
    (tmp_path / "eb").mkdir()
    little = parse(build(tmp_path, CALLS))
    big = parse(build(tmp_path / "eb", CALLS, target="bpfeb"))
    assert big.line_info == little.line_info and big.func_info == little.func_info


def test_the_core_relocation_records_are_read_beside_the_line_info(tmp_path):
    info = parse(build(tmp_path, CORE))
    assert info.core_relo_len > 0 and info.core_relos["tc"]
    assert all(r.access and r.pc >= 0 for r in info.core_relos["tc"])
    assert [li.line for li in info.line_info["tc"]] and info.func_info["tc"][0].pc == 0


# --- func_info ------------------------------------------------------------------------

def func_symbols(obj: Path) -> dict[str, list[tuple[int, str]]]:
    """llvm-readelf -S -s: per section, (pc, name) of every FUNC symbol, in pc order."""
    out = subprocess.run(["llvm-readelf-19", "-S", "-s", str(obj)], check=True,
                         capture_output=True, text=True).stdout
    names = dict(re.findall(r"^\s+\[\s*(\d+)\] (\S+)", out, re.M))
    syms = {}
    for value, ndx, name in re.findall(r"^\s+\d+: ([0-9a-f]{16})\s+\d+ FUNC\s+\S+\s+\S+\s+"
                                       r"(\d+) (\S+)$", out, re.M):
        syms.setdefault(names[ndx], []).append((int(value, 16) // 8, name))
    return {sec: sorted(v) for sec, v in syms.items()}


def btf_func_names(obj: Path) -> dict[int, str]:
    bpftool, = toolpath.need("bpftool", package="bpftool")
    out = subprocess.run([bpftool, "btf", "dump", "file", str(obj)], check=True,
                         capture_output=True, text=True).stdout
    return {int(i): n for i, n in re.findall(r"^\[(\d+)\] FUNC '(\w+)'", out, re.M)}


@pytest.mark.parametrize("name", ["tail_dispatch", "vlan", "sockfilter"])
def test_func_info_names_each_function_at_its_symbol(name):
    obj = EXAMPLES / f"{name}.o"
    info = parse(obj, type_names=btf_func_names(obj))
    got = {sec: [(f.pc, f.name) for f in recs] for sec, recs in info.func_info.items()}
    assert got == func_symbols(obj)


def test_func_info_of_a_static_callee_is_in_its_own_section(tmp_path):
    obj = build(tmp_path, CALLS)
    info = parse(obj, type_names=btf_func_names(obj))
    assert [(f.pc, f.name) for f in info.func_info[".text"]] == [(0, "twice")]
    assert info.func_info_rec_size == 8 and info.line_info_rec_size == 16


def test_func_info_without_type_names_has_the_type_id_only():
    info = parse(EXAMPLES / "drop_icmp.o")
    ((f,),) = info.func_info.values()
    assert f.pc == 0 and f.type_id > 0 and f.name is None


# --- interleave -----------------------------------------------------------------------

def test_interleave_puts_each_source_line_before_its_instructions():
    dis = {0: "r0 = 0x0", 1: "r2 = 0x1 ll", 3: "r0 += r2", 4: "exit"}
    lines = [LineInfo(0, "a.c", 3, 2, "\tint x = 0;"), LineInfo(1, "a.c", 4, 9, "  x += 1;  "),
             LineInfo(3, "a.c", 4, 11, "  x += 1;  "), LineInfo(4, "a.c", 5, 2, "")]
    assert interleave(dis, lines) == (
        "; a.c:3: int x = 0;\n"
        "    0: r0 = 0x0\n"
        "; a.c:4: x += 1;\n"
        "    1: r2 = 0x1 ll\n"
        "    3: r0 += r2\n"
        "; a.c:5\n"
        "    4: exit\n")


def test_interleave_shows_a_line_again_when_the_code_comes_back_to_it():
    dis = {0: "a", 1: "b", 2: "c"}
    lines = [LineInfo(0, "f.c", 7, 1, "x"), LineInfo(1, "f.c", 8, 1, "y"),
             LineInfo(2, "f.c", 7, 5, "x")]
    assert interleave(dis, lines) == ("; f.c:7: x\n    0: a\n; f.c:8: y\n    1: b\n"
                                      "; f.c:7: x\n    2: c\n")


def test_interleave_of_a_record_inside_an_lddw_shows_before_the_next_instruction():
    dis = {0: "r1 = 0x1 ll", 2: "exit"}
    assert interleave(dis, [LineInfo(1, "f.c", 2, 1, "t")]) == (
        "    0: r1 = 0x1 ll\n; f.c:2: t\n    2: exit\n")


@pytest.mark.parametrize("name", ["nat4", "tail_dispatch", "port_classid"])
def test_interleave_lists_every_instruction_as_llvm_objdump_does_under_its_lines(name):
    """The instructions are llvm-objdump's (jump targets left out: objdump names them
    <func+byte offset>, pyebpf <pc>), and the comment lines are the line_info records
    where the line changes, each before the instruction at its pc."""
    obj = EXAMPLES / f"{name}.o"
    info = parse(obj)
    out = subprocess.run(["llvm-objdump-19", "-d", "--no-show-raw-insn", obj.name],
                         check=True, capture_output=True, text=True, cwd=obj.parent).stdout
    for sec, records in info.line_info.items():
        body = out.split(f"Disassembly of section {sec}:\n", 1)[1].split("Disassembly of", 1)[0]
        insns = [f"{int(m[1]):>5}: " + re.sub(r" <.*>$", "", m[2])
                 for m in re.finditer(r"^\s+(\d+):\t(.*)$", body, re.M)]
        listing = [re.sub(r" <\d+>$", "", line) for line in
                   interleave(disassembly_by_pc(section(obj, sec)), records).splitlines()]
        assert [line for line in listing if not line.startswith(";")] == insns
        changes = dedup_changes(records)
        notes = [(k, line) for k, line in enumerate(listing) if line.startswith(";")]
        assert [line for _, line in notes] == [
            f"; {li.file_name}:{li.line}" + (f": {li.source_line.strip()}"
                                             if li.source_line.strip() else "")
            for li in changes]
        for (k, _), li in zip(notes, changes):
            assert int(listing[k + 1].split(":")[0]) == li.pc


# --- corrupt sections -----------------------------------------------------------------

def patched(data: bytes, off: int, fmt: str, value) -> bytes:
    buf = bytearray(data)
    struct.pack_into(fmt, buf, off, value)
    return bytes(buf)


@pytest.fixture(scope="module")
def real():
    """(.BTF.ext, .BTF strings, header length, func_info start, line_info start) of
    examples/vlan.o."""
    obj = EXAMPLES / "vlan.o"
    ext, strings = section(obj, ".BTF.ext"), btf_strings(section(obj, ".BTF"))
    hdr_len, func_off, _, line_off = struct.unpack_from("<4I", ext, 4)
    return ext, strings, hdr_len, hdr_len + func_off, hdr_len + line_off


CORRUPTIONS = {
    # name: (how to corrupt, offset named in the error, words of the message)
    "bad magic": (lambda e, s, h, f, l: patched(e, 0, "<H", 0x1234), 0, "bad magic"),
    "version 2": (lambda e, s, h, f, l: patched(e, 2, "B", 2), 2, "version 2"),
    "header too long": (lambda e, s, h, f, l: patched(e, 4, "<I", len(e) + 1), 4,
                        "header length"),
    "header too short": (lambda e, s, h, f, l: patched(e, 4, "<I", 20), 4, "header length"),
    "func_info past the end": (lambda e, s, h, f, l: patched(e, 12, "<I", len(e)), 8,
                               "runs past the end"),
    "line_info unaligned": (lambda e, s, h, f, l: patched(e, 16, "<I", l - h + 2), 16,
                            "not 4-byte aligned"),
    "func record size 4": (lambda e, s, h, f, l: patched(e, f, "<I", 4), "f",
                           "record size 4"),
    "line record size 18": (lambda e, s, h, f, l: patched(e, l, "<I", 18), "l",
                            "record size 18"),
    "no records": (lambda e, s, h, f, l: patched(e, f + 8, "<I", 0), "f+4",
                   "no records"),
    "too many records": (lambda e, s, h, f, l: patched(e, f + 8, "<I", 1000), "f+4",
                         "runs past"),
    "section name outside strings": (lambda e, s, h, f, l: patched(e, l + 4, "<I", 1 << 30),
                                     "l+4", "section name"),
    "file name outside strings": (lambda e, s, h, f, l: patched(e, l + 16, "<I", 1 << 30),
                                  "l+16", "file name"),
    "source line outside strings": (lambda e, s, h, f, l: patched(e, l + 20, "<I", 1 << 30),
                                    "l+20", "source line"),
    "insn_off not a multiple of 8": (lambda e, s, h, f, l: patched(e, l + 12, "<I", 3),
                                     "l+12", "insn_off 0x3"),
    "truncated": (lambda e, s, h, f, l: e[:3], 0, "too short"),
}


@pytest.mark.parametrize("corrupt, where, words", CORRUPTIONS.values(), ids=CORRUPTIONS)
def test_a_corrupt_section_raises_elf_error_naming_the_offset(real, corrupt, where, words):
    ext, strings, hdr_len, func_start, line_start = real
    # f / l: start of the func_info / line_info subsection (its record size);
    # +4: the first block's sec_name_off, +8 its num_info, +12 its first record
    base = {"f": func_start, "l": line_start}
    if isinstance(where, str):
        sub, _, plus = where.partition("+")
        where = base[sub] + int(plus or 0)
    with pytest.raises(ElfError) as exc:
        parse_btf_ext(corrupt(ext, strings, hdr_len, func_start, line_start), strings)
    assert str(exc.value).startswith(f".BTF.ext offset {where:#x}: ")
    assert words in str(exc.value)


def test_the_real_section_parses(real):
    ext, strings, *_ = real
    info = parse_btf_ext(ext, strings)
    assert sorted(info.line_info) == ["classifier", "tc"] and info.version == 1
