"""iproute2's reading of an object: tail-call section names ``ID/KEY`` and the size of
``struct bpf_elf_map``, in pyebpf.load and pyebpf.kernel.load_object alike.

Expected values: C's ``sscanf(name, "%i/%i")`` (the call iproute2 makes, through libc),
``tc filter add ... bpf da obj F sec S`` in a network namespace of the test's own (what
iproute2 prints of its reading), and the kernel running the loaded programs.
"""
import ctypes
import re
import shutil
import subprocess
import uuid
import warnings

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

import pyebpf
from pyebpf import elf
from pyebpf.errors import ElfError, ElfWarning

from bpfc import compile_object

hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies

FRAME = bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2) / b"x")


@pytest.fixture(autouse=True)
def pin_root(tmp_path, monkeypatch):
    monkeypatch.setenv("PYEBPF_PIN_ROOT", str(tmp_path / "pins"))


# --- C's %i/%i ---------------------------------------------------------------------------------
_LIBC = ctypes.CDLL(None)


def _sscanf(name: str):
    """(id, key) as glibc's sscanf(name, "%i/%i") stores them in iproute2's unsigned ints,
    or None when it does not convert both."""
    map_id, key = ctypes.c_uint(0), ctypes.c_uint(0)
    n = _LIBC.sscanf(name.encode(), b"%i/%i", ctypes.byref(map_id), ctypes.byref(key))
    return (map_id.value, key.value) if n == 2 else None


FORMS = {
    "decimal": "42/3", "hex": "0x2a/3", "HEX": "0X2A/0x3", "octal": "052/03",
    "plus": "+42/+3", "minus": "-1/3", "blanks-before-numbers": " 42/ 3",
    "past-long": "99999999999999999999/3", "past-u32": "4294967338/3",
    "text-after-key": "42/3/extra", "bare-0x": "0x/3",
    "blank-before-slash": "42 /3", "octal-8": "08/3", "no-key": "42/", "word": "tc/ingress",
    "hex-then-garbage": "0x2ag/3",
}


@pytest.mark.parametrize("name", FORMS.values(), ids=FORMS.keys())
def test_a_tail_call_section_name_is_read_as_cs_sscanf_percent_i_reads_it(name):
    assert elf.tail_call_slot(name) == _sscanf(name)


@hypothesis.settings(max_examples=1000, derandomize=True, deadline=None)
@hypothesis.given(st.text(alphabet="0123789aAfFgxX+-/ \t", max_size=12)
                  | st.builds(lambda a, b: f"{a}/{b}", st.integers(-2 ** 70, 2 ** 70),
                              st.integers(-2 ** 70, 2 ** 70)))
def test_any_section_name_is_a_tail_call_slot_exactly_when_sscanf_reads_two_numbers(name):
    assert elf.tail_call_slot(name) == _sscanf(name)


# --- tc's reading, in a network namespace ------------------------------------------------------
@pytest.fixture(scope="module")
def tc_load(tmp_path_factory, live_kernel):
    """``tc_load(object_bytes, section, verbose)``: the CompletedProcess of ``tc filter add
    dev t0 ingress bpf da obj F sec S`` in a namespace with a veth pair made for this module
    (removed after it)."""
    if not (shutil.which("tc") and shutil.which("ip")):
        pytest.skip("iproute2's tc and ip are not installed (apt-get install iproute2)")
    ns = f"pyebpf-elf-{uuid.uuid4().hex[:8]}"
    setup = [["ip", "netns", "add", ns],
             ["ip", "-n", ns, "link", "add", "t0", "type", "veth", "peer", "name", "t1"],
             ["ip", "-n", ns, "link", "set", "t0", "up"],
             ["ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "t0", "clsact"]]
    folder = tmp_path_factory.mktemp("tc-objects")
    try:
        for cmd in setup:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
            if done.returncode:
                pytest.skip(f"cannot build the test's network namespace: {' '.join(cmd)}: "
                            f"{done.stderr.strip()}")

        def load(data: bytes, section: str, verbose: bool = False):
            path = folder / f"{uuid.uuid4().hex}.o"
            path.write_bytes(data)
            return subprocess.run(["ip", "netns", "exec", ns, "tc", "filter", "add", "dev", "t0",
                                   "ingress", "bpf", "da", "obj", str(path), "sec", section]
                                  + (["verbose"] if verbose else []),
                                  capture_output=True, text=True, timeout=120)
        yield load
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=60)


NO_MAP_SLOTS = ["0x2a/0", "052/1", "-1/1", " +7/1", "4294967338/1", "0x/1", "9/0x"]


def _no_map_object() -> bytes:
    """Programs in tail-call sections of every form, and no map for them to fill."""
    body = "".join(f'SEC("{name}") int p{k}(struct __sk_buff *skb) {{ return {k}; }}\n'
                   for k, name in enumerate(NO_MAP_SLOTS))
    return compile_object(body + 'SEC("classifier") int entry(struct __sk_buff *skb) '
                                 '{ return 2; }\nchar _license[] SEC("license") = "GPL";\n')


def test_tc_reads_the_map_id_of_every_tail_call_section_form_as_pyebpf_does(tc_load):
    done = tc_load(_no_map_object(), "classifier")
    said = [int(n) for n in re.findall(r"unable to find map id (\d+) for tail call", done.stderr)]
    if not said:
        pytest.skip("this tc does not print the map id it reads (iproute2 without libbpf "
                    f"skips such a section silently); it said: {done.stderr.strip()!r}")
    with pytest.warns(ElfWarning):
        spec = elf.parse(_no_map_object())
    ours = [elf.tail_call_slot(p.section)[0] for p in spec.programs.values()
            if elf.tail_call_slot(p.section) is not None]
    assert said[:len(ours)] == ours == [42, 42, 0xFFFFFFFF, 7, 42, 0, 9]


def test_a_tail_call_section_naming_no_program_array_warns_once_per_section_as_tc_says(
        tc_load):
    done = tc_load(_no_map_object(), "classifier")
    said = set(re.findall(r"unable to find map id (\d+) for tail call", done.stderr))
    with pytest.warns(ElfWarning) as caught:
        pyebpf.load(_no_map_object())
    messages = [str(w.message) for w in caught]
    assert len(messages) == len(NO_MAP_SLOTS)
    for name, message in zip(NO_MAP_SLOTS, messages):
        map_id = elf.tail_call_slot(name)[0]
        assert f"section {name!r}" in message and f"map id {map_id} " in message
        assert not said or str(map_id) in said, f"tc named other ids: {sorted(said)}"


def test_kernel_load_object_warns_for_a_tail_call_section_naming_no_program_array():
    with pytest.warns(ElfWarning) as caught:
        pyebpf.kernel.load_object(_no_map_object()).close()
    assert "section '0x2a/0': an iproute2 tail-call slot ID/KEY naming map id 42 (0x2a)" in \
        str(caught[0].message)


# --- tail calls through every form, against the kernel ------------------------------------------
TAIL_FORMS = r"""
struct bpf_elf_map { __u32 type, size_key, size_value, max_elem, flags, id, pinning; };
struct bpf_elf_map SEC("maps") jmp = {
    .type = BPF_MAP_TYPE_PROG_ARRAY, .size_key = 4, .size_value = 4, .max_elem = 8, .id = 42,
};
struct bpf_elf_map SEC("maps") far = {
    .type = BPF_MAP_TYPE_PROG_ARRAY, .size_key = 4, .size_value = 4, .max_elem = 2,
    .id = 0xffffffff,
};
SEC("0x2a/1") int hex(struct __sk_buff *skb) { skb->cb[0] = 0x11; return 11; }
SEC("052/2") int octal(struct __sk_buff *skb) { skb->cb[0] = 0x12; return 12; }
SEC("+42/0x3") int plus(struct __sk_buff *skb) { skb->cb[0] = 0x13; return 13; }
SEC("-1/1") int minus(struct __sk_buff *skb) { skb->cb[0] = 0x14; return 14; }
SEC("classifier")
int entry(struct __sk_buff *skb)
{
    if (skb->mark >= 8)
        bpf_tail_call(skb, &far, skb->mark - 8);
    else
        bpf_tail_call(skb, &jmp, skb->mark);
    return 2;
}
char _license[] SEC("license") = "GPL";
"""


def test_hex_octal_and_signed_tail_call_sections_fill_the_slots_tc_fills():
    spec = elf.parse(compile_object(TAIL_FORMS))
    assert spec.maps["jmp"].programs == {1: "hex", 2: "octal", 3: "plus"}
    assert spec.maps["far"].programs == {1: "minus"}


@pytest.mark.parametrize("mark, expected", [(1, 11), (2, 12), (3, 13), (9, 14), (4, 2)],
                         ids=["hex", "octal", "plus", "minus-id", "empty-slot"])
def test_a_tail_call_into_a_hex_octal_or_signed_section_runs_it_as_the_kernel_does(
        mark, expected):
    data = compile_object(TAIL_FORMS)
    obj = pyebpf.load(data)
    with pyebpf.kernel.load_object(data) as kobj:
        theirs = kobj.program("entry").test_run(FRAME, ctx={"mark": mark})
    ours = obj.program("entry").run(FRAME, mark=mark)
    assert (ours.retval, list(ours.skb.cb)) == (theirs.retval, theirs.skb["cb"])
    assert theirs.retval == expected


def test_a_tail_call_key_past_the_program_array_is_refused_with_iproute2s_reason():
    source = TAIL_FORMS.replace('SEC("052/2")', 'SEC("42/-1")')
    with pytest.raises(ElfError, match=r"section '42/-1': tail-call key 4294967295 is out of "
                                       r"bounds of program array 'jmp' \(8 entries; "
                                       r"iproute2: \"Tail call key 4294967295 for map 42 out "
                                       r"of bounds\?\"\)"):
        pyebpf.load(compile_object(source))


# --- struct bpf_elf_map of every size iproute2 takes -----------------------------------------
FIELDS = ("type", "size_key", "size_value", "max_elem", "flags", "id", "pinning", "inner_id",
          "inner_idx")
_VALUES = {"type": "BPF_MAP_TYPE_ARRAY", "size_key": "4", "size_value": "8", "max_elem": "4",
           "flags": "0", "id": "7", "pinning": "0", "inner_id": "0", "inner_idx": "0"}


def _sized(nfields: int, *, packed_extra: str = "", maps: int = 1) -> str:
    """An object whose maps section holds ``maps`` definitions of the first ``nfields``
    u32 fields of struct bpf_elf_map (``packed_extra``: a trailing member of a packed
    struct), and a program counting into the first one."""
    fields = list(FIELDS[:nfields]) + [f"x{k}" for k in range(max(0, nfields - 9))]
    members = "".join(f"__u32 {f}; " for f in fields) + packed_extra
    attr = " __attribute__((packed))" if packed_extra else ""
    init = ", ".join(f".{f} = {_VALUES[f]}" for f in fields if f in _VALUES)
    defs = "".join(f'struct bpf_elf_map SEC("maps") m{k} = {{ {init} }};\n' for k in range(maps))
    return (f"struct{attr} bpf_elf_map {{ {members}}};\n{defs}"
            "SEC(\"classifier\") int count(struct __sk_buff *skb)\n{\n"
            "    __u32 key = skb->len & 3;\n"
            "    __u64 *v = bpf_map_lookup_elem(&m0, &key);\n"
            "    if (v)\n        *v += skb->len;\n    return 0;\n}\n"
            'char _license[] SEC("license") = "GPL";\n')


ACCEPTED = {f"{n}-fields": (_sized(n), 4 * n) for n in range(4, 10)}
ACCEPTED["two-packed-18-byte"] = (_sized(4, packed_extra="__u16 flags; ", maps=2), 18)
REFUSED = {
    "3-fields": (_sized(3), "struct bpf_elf_map too small, not supported!"),
    "10-fields": (_sized(10), "struct bpf_elf_map not supported, coming from future version?"),
    "one-packed-18-byte": (_sized(4, packed_extra="__u16 flags; "),
                           "Number BPF map symbols are not multiple of struct bpf_elf_map!"),
}


def _iproute2_verdict(done) -> str | None:
    """None if iproute2's own reading of the maps section passed, else its reason: the
    line before 'Error fixing up map structure' (tc prints it whether or not libbpf then
    loads the object)."""
    lines = done.stderr.splitlines()
    for k, line in enumerate(lines):
        if line.startswith("Error fixing up map structure"):
            return lines[k - 1].strip()
    return None


@pytest.mark.parametrize("source, size", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_a_bpf_elf_map_iproute2_accepts_is_accepted_with_the_missing_fields_zero(
        source, size, tc_load):
    data = compile_object(source)
    done = tc_load(data, "classifier", verbose=True)
    assert _iproute2_verdict(done) is None, done.stderr
    m = elf.parse(data).maps["m0"]
    if size < 36:
        assert f"{36 - size} bytes struct bpf_elf_map fixup performed" in done.stdout
    want = {f: int(_VALUES[f]) if f != "type" else 2 for f in FIELDS[:size // 4]}
    got = dict(type=m.type, size_key=m.key_size, size_value=m.value_size,
               max_elem=m.max_entries, flags=m.flags, id=m.elf_id,
               pinning=0 if m.pin_path is None else m.pin_path,
               inner_id=m.inner_id, inner_idx=m.inner_idx)
    assert got == {**dict.fromkeys(FIELDS, 0), **want}


@pytest.mark.parametrize("source, reason", REFUSED.values(), ids=REFUSED.keys())
def test_a_bpf_elf_map_iproute2_refuses_is_refused_with_its_reason(source, reason, tc_load):
    data = compile_object(source)
    assert _iproute2_verdict(tc_load(data, "classifier")) == reason
    with pytest.raises(ElfError, match=re.escape(f'(iproute2: "{reason}")')):
        pyebpf.load(data)
    with pytest.raises(ElfError, match=re.escape(f'(iproute2: "{reason}")')):
        pyebpf.kernel.load_object(data)


def test_two_map_definitions_of_different_sizes_are_refused_with_iproute2s_reason(tc_load):
    """16 + 20 bytes: read as two 18-byte definitions, offset 18 has no symbol.  iproute2's
    check (bpf_map_verify_all_offs) only fires when the symbol table ends with a map
    symbol, so this object has no license symbol after the maps; pyebpf refuses always."""
    source = _sized(5).replace('struct bpf_elf_map SEC("maps") m0',
                               'struct small { __u32 type, size_key, size_value, max_elem; };\n'
                               'struct small SEC("maps") zz = { .type = 2, .size_key = 4, '
                               '.size_value = 4, .max_elem = 1 };\n'
                               'struct bpf_elf_map SEC("maps") m0'
                               ).replace('char _license[] SEC("license") = "GPL";\n', "")
    data = compile_object(source)
    reason = "Different struct bpf_elf_map in use!"
    assert _iproute2_verdict(tc_load(data, "classifier")) == reason
    with pytest.raises(ElfError, match=re.escape(f'(iproute2: "{reason}")')):
        pyebpf.load(data)


@pytest.mark.parametrize("source, size", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_a_bpf_elf_map_of_any_accepted_size_counts_packets_as_the_kernel_does(source, size):
    data = compile_object(source)
    obj = pyebpf.load(data)
    with pyebpf.kernel.load_object(data) as kobj:
        for n in range(6):
            frame = FRAME + bytes(n)
            assert obj.program("count").run(frame).retval == \
                kobj.program("count").test_run(frame).retval
        ours, theirs = obj.maps["m0"], kobj.maps["m0"]
        assert {k: ours.lookup(k) for k in ours.keys()} == \
            {k: theirs.lookup(k) for k in theirs.keys()}


def test_the_seven_field_layout_reads_id_and_pinning():
    source = _sized(7).replace(".pinning = 0", ".pinning = 2")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = elf.parse(compile_object(source)).maps["m0"]
    assert (m.elf_id, m.pin_path, m.declared) == (7, "tc/globals/m0", "bpf_elf_map")


def test_the_warning_is_one_line_naming_the_object_file(tmp_path):
    path = tmp_path / "slots.o"
    path.write_bytes(_no_map_object())
    with pytest.warns(ElfWarning) as caught:
        pyebpf.load(path)
    shown = warnings.formatwarning(caught[0].message, caught[0].category, caught[0].filename,
                                   caught[0].lineno, caught[0].line)
    assert shown.rstrip("\n") == (f"{path}:0: ElfWarning: section '0x2a/0': an iproute2 "
                                  "tail-call slot ID/KEY naming map id 42 (0x2a), but no "
                                  "program array has that id (the object has no iproute2 "
                                  "program array (a bpf_elf_map in section maps)): its program "
                                  "fills no slot, as in tc")
