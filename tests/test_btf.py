"""pyebpf.btf: every BTF kind clang emits, sizes, layouts, decoding, and corrupt BTF."""
import io
import struct

import pytest
from elftools.elf.elffile import ELFFile

import pyebpf
from pyebpf.btf import Btf, Kind
from pyebpf.errors import BtfError, ElfError

from bpfc import compile_object

ALL_KINDS = r"""
typedef unsigned int u32_t;
struct fwd;
enum color { RED = 1, BLUE = -2 };
enum big { HUGE = 0x123456789aULL };
struct bits { unsigned a:3; signed b:5; unsigned c:8; int d; };
struct all {
    u32_t t;
    const volatile __u16 cv;
    char *restrict r;
    struct fwd *f;
    enum color col;
    enum big big;
    float fl;
    double db;
    struct bits bf;
    union { __u32 x; __u16 y; };
    struct { __u8 p, q; } nested;
    __u8 arr[3];
    int __attribute__((btf_type_tag("user"))) *tagged;
} __attribute__((btf_decl_tag("tagged_struct")));

struct all g_init = {
    .t = 7, .cv = 9, .col = BLUE, .big = HUGE, .fl = 1.5, .db = -2.25,
    .bf = { .a = 5, .b = -3, .c = 200, .d = -1 }, .x = 0x01020304,
    .nested = { 1, 2 }, .arr = { 1, 2, 3 },
};
const volatile __u32 size_all = sizeof(struct all);
const volatile __u32 off_nested = __builtin_offsetof(struct all, nested);

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 2);
    __type(key, struct bits);
    __type(value, struct all);
} m SEC(".maps");

SEC("tc") int f(struct __sk_buff *s) { return 0; }
char _license[] SEC("license") = "GPL";
"""


@pytest.fixture(scope="module")
def obj():
    return pyebpf.load(compile_object(ALL_KINDS))


def _btf(data: bytes) -> Btf:
    return Btf.parse(ELFFile(io.BytesIO(data)).get_section_by_name(".BTF").data())


def test_every_kind_clang_emits_is_parsed():
    kinds = {t.kind for t in _btf(compile_object(ALL_KINDS)).types[1:]}
    assert kinds == set(Kind) - {Kind.UNKN}


def test_struct_sizes_and_offsets_match_the_compiler(obj):
    rodata = obj.maps[".rodata"].decode_value(obj.maps[".rodata"][bytes(4)])
    all_ = obj.maps["m"].value_type
    assert all_.byte_size == rodata["size_all"]
    nested = next(f for f in all_.fields() if f.name == "nested.p")
    assert nested.offset == rodata["off_nested"]


def test_layout_flattens_anonymous_members_and_names_nested_ones(obj):
    names = [f.name for f in obj.maps["m"].value_type.fields()]
    assert names == ["t", "cv", "r", "f", "col", "big", "fl", "db", "bf.a", "bf.b", "bf.c",
                     "bf.d", "x", "y", "nested.p", "nested.q", "arr", "tagged"]


def test_bitfields_are_described_by_bit_offset_and_width(obj):
    fields = {f.name: f for f in obj.maps["m"].key_type.fields()}
    assert [(fields[n].bit_offset, fields[n].bits) for n in "abc"] == [(0, 3), (3, 5), (8, 8)]
    assert (fields["d"].offset, fields["d"].size) == (4, 4)


def test_values_decode_as_the_c_initialiser_wrote_them(obj):
    v = obj.maps[".data"].decode_value(obj.maps[".data"][bytes(4)])["g_init"]
    assert v["bf"] == {"a": 5, "b": -3, "c": 200, "d": -1}
    assert (v["t"], v["cv"], v["col"], v["big"]) == (7, 9, -2, 0x123456789A)
    assert (v["fl"], v["db"]) == (1.5, -2.25)
    assert (v["x"], v["y"]) == (0x01020304, 0x0304)
    assert v["nested"] == {"p": 1, "q": 2} and v["arr"] == b"\x01\x02\x03"


def test_decoding_a_key_of_the_wrong_size_says_both_sizes(obj):
    with pytest.raises(BtfError, match=r"key is 3 bytes, its type struct bits is 8"):
        obj.maps["m"].decode_key(b"abc")


def test_a_map_without_btf_cannot_decode():
    from pyebpf import Map
    m = Map.create("array", 4, 4, 1)
    with pytest.raises(BtfError, match=r"has no BTF type"):
        m.decode_value(bytes(4))


def test_types_describe_themselves_in_c_syntax(obj):
    t = obj.maps["m"].value_type
    assert t.describe() == "struct all"
    members = {m.name: t.btf.types[m.type_id].describe() for m in t.members}
    assert members == {
        "t": "u32_t", "cv": "const volatile __u16", "r": "char *restrict",
        "f": "struct fwd *", "col": "enum color", "big": "enum big", "fl": "float",
        "db": "double", "bf": "struct bits", "": "union (anon)", "nested": "struct (anon)",
        "arr": "__u8[3]", "tagged": "int __tag(user) *"}


# --- corrupt BTF: one ElfError naming the offset ---------------------------------------------
def _blob(types: bytes, strings: bytes = b"\0", *, magic=0xEB9F, type_len=None,
          hdr_len=24) -> bytes:
    tl = len(types) if type_len is None else type_len
    return struct.pack("<HBBIIIII", magic, 1, 0, hdr_len, 0, tl, len(types),
                       len(strings)) + types + strings


def _t(name_off, kind, vlen, size_or_type, kflag=0):
    return struct.pack("<III", name_off, (kflag << 31) | (kind << 24) | vlen, size_or_type)


INT4 = _t(1, Kind.INT, 0, 4) + struct.pack("<I", 32)


@pytest.mark.parametrize("blob, message", [
    (b"\x9f\xeb\x01", r"BTF: 3 bytes is shorter than the 24-byte header"),
    (_blob(INT4, b"\0int\0", magic=0x1234), r"BTF: bad magic 0x1234 at offset 0"),
    (_blob(INT4, b"\0int\0", type_len=400), r"BTF: type section \[0x18, 0x1a8\) runs past the end"),
    (_blob(_t(0, 25, 0, 0)), r"BTF: type #1 at offset 0x18 has unknown kind 25"),
    (_blob(_t(0, Kind.PTR, 0, 5)), r"BTF: type #1 \(PTR\) refers to type id 5, beyond the last "
                                   r"\(1\) \(type record at offset 0x18\)"),
    (_blob(_t(0x50, Kind.PTR, 0, 0)), r"BTF: name offset 0x50 of the record at offset 0x18 is "
                                      r"beyond the 1-byte string section"),
    (_blob(_t(0, Kind.STRUCT, 3, 8)), r"BTF: type #1: record at offset 0x24 runs past the end "
                                      r"of the type section \(0x24\)"),
    (_blob(_t(1, Kind.INT, 0, 4) + struct.pack("<I", 200), b"\0int\0"),
     r"BTF: INT type #1 at offset 0x18: 200 bits at bit 0 in 4 bytes"),
    (_blob(INT4 + _t(0, Kind.DATASEC, 1, 4) + struct.pack("<III", 1, 0, 4), b"\0int\0"),
     r"BTF: DATASEC '' lists type #1, which is a INT, not a VAR"),
], ids=["short", "magic", "type-section", "kind", "dangling-type", "name-offset",
        "truncated-record", "int-bits", "datasec-var"])
def test_corrupt_btf_is_one_elf_error_naming_the_offset(blob, message):
    with pytest.raises(ElfError, match=message):
        Btf.parse(blob)


def test_a_typedef_cycle_is_an_error_when_sized_not_a_hang():
    btf = Btf.parse(_blob(_t(0, Kind.TYPEDEF, 0, 2) + _t(0, Kind.TYPEDEF, 0, 1)))
    with pytest.raises(ElfError, match=r"type #1 is a chain of more than 32 typedefs"):
        btf.types[1].byte_size
