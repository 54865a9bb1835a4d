"""Loading clang-compiled objects (pyebpf.load) against the kernel (pyebpf.kernel.load_object).

Each object is compiled with clang-19 at -O2 and at -O0 (both with -g), loaded into pyebpf
and into the kernel from the same specs, and every program runs on the same packets on
both sides: retval, packet bytes, the exported ``__sk_buff`` fields and the maps' contents
afterwards must agree.
"""
import gc
import re
import struct
import subprocess
import sys
import weakref

import pytest

from conftest import child_python
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether

import pyebpf
from pyebpf import elf
from pyebpf.errors import ElfError

from bpfc import PRELUDE, compile_object
from objdiff import verdicts
from skbdiff import EXPORTED, engine_fields

@pytest.fixture(autouse=True)
def pin_root(tmp_path, monkeypatch):
    """A fresh pin root per test: pyebpf.load pins the maps that ask for it."""
    monkeypatch.setenv("PYEBPF_PIN_ROOT", str(tmp_path / "pins"))
    return tmp_path / "pins"


OPT = pytest.mark.parametrize("flags", [("-O2",), ("-O0",)], ids=["O2", "O0"])
# clang -O0 calls helpers through a register (callx), which no loader accepts: objects
# that call helpers are tested at -O2 and -O1, and -O0 objects without helpers.
HELPER_OPT = pytest.mark.parametrize("flags", [("-O2",), ("-O1",)], ids=["O2", "O1"])
PACKETS = {
    "tcp": bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1234, dport=80)
                 / (b"x" * 40)),
    "udp": bytes(Ether() / IP(src="10.0.0.3", dst="10.0.0.4") / UDP(sport=53, dport=5353)
                 / (b"y" * 9)),
    "arp": bytes(Ether() / ARP()),
}

BTF_MAPS = r"""
struct key { __u8 proto; __u8 ttl; __u16 len; };
struct stats { __u64 packets; __u64 bytes; __u32 last_len; __u16 proto; __u8 flags; };
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 64);
    __type(key, struct key);
    __type(value, struct stats);
    __uint(pinning, LIBBPF_PIN_BY_NAME);
} stats SEC(".maps");
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, __u64);
} hits SEC(".maps");

__u64 runs;                                  /* .bss */
__u32 seed = 0x1234;                         /* .data */
const volatile __u32 mark_base = 0x100;      /* .rodata */
static const char greeting[8] = "pyebpf!";   /* .rodata */

static __noinline __u32 mix(__u32 a, __u32 b) { return (a * 31) ^ b; }
static __noinline __u32 level3(__u32 x) { volatile char buf[200]; buf[x & 127] = x; return buf[x & 127] + 3; }
static __noinline __u32 level2(__u32 x) { volatile char buf[300]; buf[7] = 2; return level3(x + buf[7]) * 2; }
static __noinline __u32 level1(__u32 x) { return level2(x ^ 1) + mix(x, 9); }

SEC("tc")
int count(struct __sk_buff *skb)
{
    void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
    struct ethhdr *eth = data;
    struct key k = {};
    if ((void *)(eth + 1) > end)
        return TC_ACT_SHOT;
    if (eth->h_proto == bpf_htons(ETH_P_IP)) {
        struct iphdr *ip = (void *)(eth + 1);
        if ((void *)(ip + 1) > end)
            return TC_ACT_SHOT;
        k.proto = ip->protocol;
        k.ttl = ip->ttl;
    }
    k.len = skb->len;
    struct stats *s = bpf_map_lookup_elem(&stats, &k);
    if (!s) {
        struct stats fresh = {};
        bpf_map_update_elem(&stats, &k, &fresh, BPF_NOEXIST);
        s = bpf_map_lookup_elem(&stats, &k);
        if (!s)
            return TC_ACT_SHOT;
    }
    s->packets++;
    s->bytes += skb->len;
    s->last_len = skb->len;
    s->proto = k.proto;
    s->flags |= 1;
    runs++;
    seed = mix(seed, skb->len);
    __u32 idx = skb->len & 3;
    __u64 *h = bpf_map_lookup_elem(&hits, &idx);
    if (h)
        __sync_fetch_and_add(h, 1);
    skb->mark = mark_base + level1(skb->len);
    skb->cb[0] = seed;
    skb->cb[1] = runs;
    return TC_ACT_OK;
}

SEC("tc")
int stamp(struct __sk_buff *skb)
{
    const char *digits = "0123456789abcdef";    /* .rodata.str1.1 */
    char hex[2] = { digits[(skb->len >> 4) & 15], digits[skb->len & 15] };
    bpf_skb_store_bytes(skb, 14, greeting, sizeof(greeting) - 1, 0);
    bpf_skb_store_bytes(skb, 21, hex, 2, 0);
    skb->priority = level1(skb->len) + seed;
    return TC_ACT_PIPE;
}

SEC("classifier/other")
int other(struct __sk_buff *skb) { skb->cb[4] = mix(skb->len, mark_base); return 1; }

SEC("action")
int act(struct __sk_buff *skb) { skb->cb[2] = runs; return TC_ACT_RECLASSIFY; }

SEC("socket")
int sock(struct __sk_buff *skb) { return skb->len > 40 ? mix(skb->len, 3) & 0xff : 0; }

char _license[] SEC("license") = "GPL";
"""

LEGACY = r"""
struct bpf_map_def { unsigned int type, key_size, value_size, max_entries, map_flags; };
struct bpf_map_def SEC("maps") bytes_by_len = {
    .type = BPF_MAP_TYPE_HASH, .key_size = 4, .value_size = 8, .max_entries = 16,
};
struct bpf_map_def SEC("maps") totals = {
    .type = BPF_MAP_TYPE_ARRAY, .key_size = 4, .value_size = 8, .max_entries = 2,
};
SEC("classifier")
int cls(struct __sk_buff *skb)
{
    __u32 len = skb->len, zero = 0;
    __u64 one = 1, *v = bpf_map_lookup_elem(&bytes_by_len, &len);
    if (v)
        *v += 1;
    else
        bpf_map_update_elem(&bytes_by_len, &len, &one, BPF_ANY);
    __u64 *t = bpf_map_lookup_elem(&totals, &zero);
    if (t)
        *t += len;
    return len & 1 ? TC_ACT_OK : TC_ACT_UNSPEC;
}
char _license[] SEC("license") = "GPL";
"""

IPROUTE2 = r"""
struct bpf_elf_map {
    __u32 type, size_key, size_value, max_elem, flags, id, pinning, inner_id, inner_idx;
};
#define PIN_GLOBAL_NS 2
struct bpf_elf_map SEC("maps") jmp = {
    .type = BPF_MAP_TYPE_PROG_ARRAY, .size_key = 4, .size_value = 4, .max_elem = 8,
    .id = 1, .pinning = PIN_GLOBAL_NS,
};
struct bpf_elf_map SEC("maps") seen = {
    .type = BPF_MAP_TYPE_ARRAY, .size_key = 4, .size_value = 4, .max_elem = 8,
};
static __noinline void note(__u32 slot) {
    __u32 *v = bpf_map_lookup_elem(&seen, &slot);
    if (v)
        *v += 1;
}
SEC("1/0")
int hop0(struct __sk_buff *skb) { note(0); skb->cb[1] = 0xa0; bpf_tail_call(skb, &jmp, 5); return 3; }
SEC("1/5")
int hop5(struct __sk_buff *skb) { note(5); skb->cb[2] = 0xa5; return 5; }
SEC("classifier")
int entry(struct __sk_buff *skb) { note(7); skb->cb[0] = 1; bpf_tail_call(skb, &jmp, skb->mark); return 2; }
char _license[] SEC("license") = "GPL";
"""


def _objects(source, flags, **load_args):
    data = compile_object(source, flags=flags)
    return pyebpf.load(data, **load_args), pyebpf.kernel.load_object(data)


def _same_run(obj, kobj, name, packet, ctx=None):
    """Run program ``name`` in both; require the same retval, packet and exported fields."""
    prog = obj.program(name)
    ours = prog.run(packet, **engine_fields(prog.prog_type, ctx))
    theirs = kobj.program(name).test_run(packet, ctx=dict(ctx or {}))
    assert ours.retval & 0xFFFFFFFF == theirs.retval, f"{name}: retval differs"
    sf = prog.prog_type == pyebpf.isa.ProgType.BPF_PROG_TYPE_SOCKET_FILTER
    assert ours.data_out == (theirs.data[14:] if sf else theirs.data), f"{name}: packet differs"
    mine = ours.skb.as_dict()
    for field in EXPORTED:
        got = list(mine[field]) if field == "cb" else mine[field]
        assert got == theirs.skb[field], f"{name}: __sk_buff.{field} differs"
    return ours


def _contents(m):
    """A map's contents as {key: value}, from a pyebpf Map or a KernelMap."""
    return {k: m.lookup(k) for k in m.keys()}


@HELPER_OPT
def test_btf_maps_and_global_data_count_packets_as_the_kernel_does(flags):
    obj, kobj = _objects(BTF_MAPS, flags)
    with kobj:
        for name in ("tcp", "udp", "tcp", "arp"):
            _same_run(obj, kobj, "count", PACKETS[name])
        for m in ("stats", "hits", ".data", ".bss"):
            assert _contents(obj.maps[m]) == _contents(kobj.maps[m]), f"map {m} differs"


@HELPER_OPT
def test_btf_map_keys_and_values_decode_as_named_fields(flags):
    obj, kobj = _objects(BTF_MAPS, flags)
    with kobj:
        _same_run(obj, kobj, "count", PACKETS["tcp"])
        (key, value), = obj.maps["stats"].items()
        assert obj.maps["stats"].decode_key(key) == {"proto": 6, "ttl": 64,
                                                     "len": len(PACKETS["tcp"])}
        assert obj.maps["stats"].decode_value(value) == {
            "packets": 1, "bytes": len(PACKETS["tcp"]), "last_len": len(PACKETS["tcp"]),
            "proto": 6, "flags": 1}
        assert kobj.maps["stats"].decode_value(kobj.maps["stats"].lookup(key)) == \
            obj.maps["stats"].decode_value(value)


GLOBALS = r"""
__u32 counter = 5;                       /* .data */
__u64 total;                             /* .bss */
const volatile __u32 factor = 3;         /* .rodata */
static __noinline __u32 scale(__u32 x) { return x * factor + counter; }
static __noinline __u32 twice(__u32 x) { return scale(x) + scale(x + 1); }

SEC("tc")
int globals(struct __sk_buff *skb)
{
    const char *hex = "0123456789abcdef";          /* .rodata.str1.1 */
    char *p = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
    counter++;
    total += skb->len;
    skb->mark = twice(skb->len);
    skb->cb[0] = counter;
    skb->cb[1] = total;
    if (p + 20 <= end) {
        p[14] = hex[skb->len & 15];
        p[15] = hex[(skb->len >> 4) & 15];
    }
    return skb->len & 1;
}

SEC("action")
int act(struct __sk_buff *skb) { skb->priority = scale(skb->len); return TC_ACT_PIPE; }

SEC("socket")
int sock(struct __sk_buff *skb) { return twice(skb->len) & 0xffff; }

char _license[] SEC("license") = "GPL";
"""


@OPT
def test_global_data_and_subprograms_without_helpers_run_as_in_the_kernel(flags):
    obj, kobj = _objects(GLOBALS, flags)
    with kobj:
        for name in ("tcp", "udp", "arp", "tcp"):
            for prog in ("globals", "act", "sock"):
                _same_run(obj, kobj, prog, PACKETS[name])
        for m in (".data", ".bss", ".rodata", ".rodata.str1.1"):
            assert _contents(obj.maps[m]) == _contents(kobj.maps[m]), f"map {m} differs"


@OPT
def test_global_data_sections_decode_by_variable_name(flags):
    obj = pyebpf.load(compile_object(GLOBALS, flags=flags))
    obj.program("globals").run(PACKETS["tcp"])
    zero = bytes(4)
    assert obj.maps[".data"].decode_value(obj.maps[".data"][zero]) == {"counter": 6}
    assert obj.maps[".bss"].decode_value(obj.maps[".bss"][zero]) == {"total": len(PACKETS["tcp"])}
    assert obj.maps[".rodata"].decode_value(obj.maps[".rodata"][zero]) == {"factor": 3}
    assert obj.maps[".rodata.str1.1"][zero] == b"0123456789abcdef\0"


def test_clang_O0_helper_calls_through_a_register_are_refused_as_by_the_kernel(kernel_oracle):
    data = compile_object(LEGACY, flags=("-O0",))
    with pytest.raises(ElfError, match=r"section 'classifier', insn \d+: indirect call "
                                       r"\(callx\): clang -O0 calls helpers through a register"):
        pyebpf.load(data)
    code = pyebpf.asm.assemble("r3 = 1\ncallx r3\nr0 = 0\nexit")
    with pytest.raises(pyebpf.errors.KernelError):
        kernel_oracle.KernelProgram(code, "sched_cls")


@HELPER_OPT
@pytest.mark.parametrize("packet", ["tcp", "udp"])
def test_constant_strings_and_rodata_are_written_into_the_packet_as_the_kernel_does(
        flags, packet):
    obj, kobj = _objects(BTF_MAPS, flags)
    with kobj:
        ours = _same_run(obj, kobj, "stamp", PACKETS[packet])
    assert ours.data_out[14:21] == b"pyebpf!"


@HELPER_OPT
@pytest.mark.parametrize("name", ["other", "act", "sock", "classifier/other", "action",
                                  "socket"])
def test_every_program_of_a_multi_program_object_runs_as_the_kernel_runs_it(flags, name):
    obj, kobj = _objects(BTF_MAPS, flags)
    with kobj:
        for packet in PACKETS.values():
            _same_run(obj, kobj, name, packet, {"mark": 3})


def _call_chain(frames: int) -> str:
    """A tc program whose calls nest ``frames`` deep (the program itself is frame 1)."""
    n = frames - 1
    decls = "".join(f"static __noinline __u32 f{i}(__u32 x);\n" for i in range(1, n + 1))
    body = "".join(f"static __noinline __u32 f{i}(__u32 x) {{ volatile __u32 b[4]; "
                   f"b[x & 3] = x; return f{i + 1}(b[x & 3] + {i}) + 1; }}\n"
                   for i in range(1, n))
    body += f"static __noinline __u32 f{n}(__u32 x) {{ return x * 3; }}\n"
    return (decls + body + 'SEC("tc") int e(struct __sk_buff *s) { return f1(s->len); }\n'
            'char _l[] SEC("license") = "GPL";')


@OPT
def test_calls_nested_eight_frames_deep_run_as_in_the_kernel(flags):
    obj, kobj = _objects(_call_chain(8), flags)
    with kobj:
        assert _same_run(obj, kobj, "e", PACKETS["udp"]).retval == \
            (len(PACKETS["udp"]) + sum(range(1, 7))) * 3 + 6


CROSS_SECTION = r"""
__noinline int global_in_text(int x) { return x * 5 + 1; }
SEC("tc") int callee(struct __sk_buff *s) { s->cb[0] = 7; return s->len + 100; }
SEC("classifier") int caller(struct __sk_buff *s) { return callee(s) + global_in_text(s->len); }
char _l[] SEC("license") = "GPL";
"""


@OPT
def test_a_program_may_call_a_global_function_and_another_sections_program(flags):
    obj, kobj = _objects(CROSS_SECTION, flags)
    with kobj:
        for packet in PACKETS.values():
            _same_run(obj, kobj, "caller", packet)
    assert "global_in_text" in obj.spec.programs["caller"].functions


def test_programs_are_named_by_function_and_typed_by_section():
    spec = elf.parse(compile_object(BTF_MAPS))
    assert {n: (p.section, p.prog_type) for n, p in spec.programs.items()} == {
        "count": ("tc", "sched_cls"), "stamp": ("tc", "sched_cls"),
        "other": ("classifier/other", "sched_cls"), "act": ("action", "sched_act"),
        "sock": ("socket", "socket_filter")}


def test_called_functions_are_appended_once_after_the_program():
    spec = elf.parse(compile_object(BTF_MAPS))
    assert spec.programs["count"].functions == ("count", "mix", "level1", "level2", "level3")
    assert spec.programs["act"].functions == ("act",)


def test_a_section_holding_two_programs_must_be_asked_for_by_function_name():
    obj = pyebpf.load(compile_object(BTF_MAPS))
    with pytest.raises(ElfError, match=r"section 'tc' holds 2 programs: name one of count, "
                                       r"stamp"):
        obj.program("tc")


def test_an_unknown_program_name_lists_the_choices():
    obj = pyebpf.load(compile_object(BTF_MAPS))
    with pytest.raises(ElfError, match=r"no program or section 'nope'; the object has: count "
                                       r"\(section tc\), stamp \(section tc\)"):
        obj.program("nope")


def test_a_pin_by_name_request_is_kept_on_the_spec_and_handed_to_the_pin_hook():
    data = compile_object(BTF_MAPS)
    asked = []

    def pin(spec, create):
        asked.append(spec.pin_path)
        return create()

    obj = pyebpf.load(data, pin=pin)
    assert asked == ["stats"] and obj.pins == {"stats": "stats"}


@HELPER_OPT
def test_legacy_bpf_map_def_maps_count_as_the_kernel_does(flags):
    obj, kobj = _objects(LEGACY, flags)
    with kobj:
        for name in ("tcp", "udp", "tcp", "arp", "tcp"):
            _same_run(obj, kobj, "cls", PACKETS[name])
        for m in ("bytes_by_len", "totals"):
            assert _contents(obj.maps[m]) == _contents(kobj.maps[m]), f"map {m} differs"
    assert obj.spec.maps["totals"].declared == "bpf_map_def"


@HELPER_OPT
@pytest.mark.parametrize("mark", [0, 5, 3, 9], ids=["slot0-then-5", "slot5", "empty", "past"])
def test_iproute2_id_key_sections_fill_the_program_array_as_tc_does(flags, mark):
    obj, kobj = _objects(IPROUTE2, flags, pin=False)
    with kobj:
        _same_run(obj, kobj, "entry", PACKETS["udp"], {"mark": mark})
        assert _contents(obj.maps["seen"]) == _contents(kobj.maps["seen"])
    assert obj.spec.maps["jmp"].programs == {0: "hop0", 5: "hop5"}


def test_iproute2_pinning_global_ns_asks_for_tc_globals():
    spec = elf.parse(compile_object(IPROUTE2))
    assert spec.maps["jmp"].pin_path == "tc/globals/jmp"
    assert spec.maps["jmp"].elf_id == 1 and spec.maps["seen"].pin_path is None


PROG_ARRAY_INIT = r"""
SEC("tc") int target(struct __sk_buff *skb) { skb->cb[3] = 0x77; return 9; }
struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, 4);
    __type(key, __u32);
    __array(values, int (struct __sk_buff *));
} table SEC(".maps") = { .values = { [2] = (void *)&target } };
SEC("tc") int jump(struct __sk_buff *skb) { bpf_tail_call(skb, &table, skb->mark); return 1; }
char _license[] SEC("license") = "GPL";
"""


@HELPER_OPT
@pytest.mark.parametrize("mark", [2, 1])
def test_btf_program_array_initial_values_are_installed(flags, mark):
    obj, kobj = _objects(PROG_ARRAY_INIT, flags)
    with kobj:
        _same_run(obj, kobj, "jump", PACKETS["tcp"], {"mark": mark})
    assert obj.spec.maps["table"].programs == {2: "target"}


@pytest.mark.parametrize("section, prog_type", [
    ("socket", "socket_filter"), ("socket1", "socket_filter"), ("tc", "sched_cls"),
    ("tc/ingress", "sched_cls"), ("tc/egress", "sched_cls"), ("tcx/ingress", "sched_cls"),
    ("tcx/egress", "sched_cls"), ("classifier", "sched_cls"), ("classifier_x", "sched_cls"),
    ("action", "sched_act"), ("action/police", "sched_act"), ("xdp", "xdp"),
    ("xdp.frags", "xdp"), ("kprobe/tcp_v4_connect", "kprobe"), ("kprobe", "kprobe"),
    ("tracepoint/net/netif_rx", "tracepoint"), ("cgroup_skb/ingress", "cgroup_skb"),
    ("2/7", "sched_cls"), ("my_custom", "sched_cls"), ("kprobex", "sched_cls"),
])
def test_section_names_give_the_program_type_of_libbpf_and_iproute2(section, prog_type):
    assert elf.section_type(section)[0] == prog_type


def test_the_documented_section_table_is_the_one_the_loader_uses():
    from conftest import ROOT
    doc = (ROOT / "docs" / "elf.md").read_text()
    assert elf.section_table_markdown() in doc


OTHER_TYPES = r"""
SEC("xdp") int pass(struct xdp_md *ctx) { return 2; }
SEC("tc/ingress") int in(struct __sk_buff *skb) { return 0; }
SEC("tcx/egress") int out(struct __sk_buff *skb) { return 1; }
SEC("my_custom") int custom(struct __sk_buff *skb) { return 2; }
char _license[] SEC("license") = "GPL";
"""


def test_a_program_type_pyebpf_does_not_run_is_skipped_and_asking_for_it_says_why():
    obj = pyebpf.load(compile_object(OTHER_TYPES))
    assert sorted(obj.programs) == ["custom", "in", "out"]
    with pytest.raises(ElfError, match=r"program 'pass' is not loaded: a xdp program "
                                       r"\(section 'xdp'\*\); pyebpf runs"):
        obj.program("pass")


def test_the_program_type_can_be_overridden_per_program_at_load():
    obj = pyebpf.load(compile_object(OTHER_TYPES), prog_type={"custom": "sched_act",
                                                              "xdp": "socket_filter"})
    assert obj.program("custom").prog_type.name == "BPF_PROG_TYPE_SCHED_ACT"
    assert obj.program("pass").prog_type.name == "BPF_PROG_TYPE_SOCKET_FILTER"


def test_license_and_version_sections_are_read():
    spec = elf.parse(compile_object(LEGACY + 'unsigned int _version SEC("version") = 0x60c00;'))
    assert (spec.license, spec.version) == ("GPL", 0x60C00)


def test_the_listing_names_every_program_and_map():
    text = pyebpf.load(compile_object(IPROUTE2), pin=False).listing()
    for word in ("program hop0", "'1/0'", "program entry", "calls note",
                 "map     jmp", "prog_array", "pin tc/globals/jmp"):
        assert word in text


def test_the_objdump_command_lists_and_disassembles_an_object(tmp_path, capsys):
    from pyebpf.cli import main
    (tmp_path / "prog.o").write_bytes(compile_object(GLOBALS))
    assert main(["objdump", str(tmp_path / "prog.o"), "--disasm"]) == 0
    out = capsys.readouterr().out
    assert "program globals" in out and "map     .rodata.str1.1" in out
    assert "globals (section tc):" in out and "ll  ; .rodata.str1.1+0" in out


def test_the_objdump_command_reports_a_corrupt_object_in_one_line(tmp_path, capsys):
    from pyebpf.cli import main
    (tmp_path / "bad.o").write_bytes(compile_object(GLOBALS)[:100])
    assert main(["objdump", str(tmp_path / "bad.o")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("pyebpf objdump: ") and "truncated?" in err and err.count("\n") == 1


# --- maps of maps ---------------------------------------------------------------------------
def _map_in_map(outer_type: str, inner_type: str) -> str:
    """An outer map filled in the object with map_a at 0 and map_b at 3; the program
    looks up the outer map with skb->mark, then reads, adds to and updates the inner map
    it got (cb[0]: the update's return code)."""
    return rf"""
struct inner_def {{
    __uint(type, BPF_MAP_TYPE_{inner_type});
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, __u64);
}};
struct inner_def map_a SEC(".maps"), map_b SEC(".maps");
struct {{
    __uint(type, BPF_MAP_TYPE_{outer_type});
    __uint(max_entries, 4);
    __type(key, __u32);
    __array(values, struct inner_def);
}} outer SEC(".maps") = {{ .values = {{ [0] = &map_a, [3] = &map_b }} }};
SEC("tc") int use(struct __sk_buff *skb)
{{
    __u32 slot = skb->mark, k = skb->len & 3, next = (k + 1) & 3;
    void *inner = bpf_map_lookup_elem(&outer, &slot);
    if (!inner)
        return 99;
    __u64 *v = bpf_map_lookup_elem(inner, &k), fresh = skb->len;
    if (v)
        fresh += *v;
    skb->cb[0] = bpf_map_update_elem(inner, &next, &fresh, BPF_ANY);
    skb->cb[1] = v ? *v : 0;
    return 1;
}}
char _l[] SEC("license") = "GPL";
"""


MAP_IN_MAP = pytest.mark.parametrize("outer_type, inner_type", [
    ("ARRAY_OF_MAPS", "ARRAY"), ("ARRAY_OF_MAPS", "HASH"), ("HASH_OF_MAPS", "ARRAY"),
    ("HASH_OF_MAPS", "HASH")], ids=["array-of-arrays", "array-of-hashes", "hash-of-arrays",
                                    "hash-of-hashes"])


@HELPER_OPT
@MAP_IN_MAP
def test_a_program_uses_the_inner_maps_an_object_puts_in_its_map_of_maps_as_the_kernel(
        flags, outer_type, inner_type):
    obj, kobj = _objects(_map_in_map(outer_type, inner_type), flags)
    with kobj:
        for mark, packet in ((0, "tcp"), (3, "udp"), (1, "tcp"), (0, "udp"), (3, "arp"),
                             (0, "tcp"), (2, "udp")):
            _same_run(obj, kobj, "use", PACKETS[packet], {"mark": mark})
        for m in ("map_a", "map_b"):
            assert _contents(obj.maps[m]) == _contents(kobj.maps[m]), f"map {m} differs"
        assert sorted(obj.maps["outer"].keys()) == sorted(kobj.maps["outer"].keys())


def test_array_values_of_a_map_of_maps_name_its_inner_template_and_slots():
    spec = elf.parse(compile_object(_map_in_map("ARRAY_OF_MAPS", "HASH")))
    outer = spec.maps["outer"]
    assert outer.inner_maps == {0: "map_a", 3: "map_b"} and outer.programs == {}
    assert (outer.inner.type, outer.inner.key_size, outer.inner.value_size,
            outer.inner.max_entries) == (pyebpf.isa.MapType.BPF_MAP_TYPE_HASH, 4, 8, 4)
    assert outer.value_size == 4


def test_an_object_inner_map_is_the_same_map_as_the_one_the_program_reaches():
    obj = pyebpf.load(compile_object(_map_in_map("ARRAY_OF_MAPS", "ARRAY")))
    obj.program("use").run(PACKETS["tcp"], mark=3)
    k = (len(PACKETS["tcp"]) + 1) & 3
    assert obj.maps["map_b"][k.to_bytes(4, "little")] == len(PACKETS["tcp"]).to_bytes(8,
                                                                                    "little")
    assert not any(obj.maps["map_a"][key] != bytes(8) for key in obj.maps["map_a"].keys())



def test_a_closed_objects_inner_map_template_is_freed_with_its_maps():
    # libbpf closes the template's fd after creating the outer map: one kept in the
    # handle table kept each load's templates for the life of the process
    obj = pyebpf.load(compile_object(_map_in_map("ARRAY_OF_MAPS", "HASH")))
    template = weakref.ref(obj.maps["outer"].inner_map)
    obj.close()
    del obj
    gc.collect()
    assert template() is None, "the inner map template outlives its closed object"

IPROUTE2_MAP_IN_MAP = r"""
struct bpf_elf_map {
    __u32 type, size_key, size_value, max_elem, flags, id, pinning, inner_id, inner_idx;
};
struct bpf_elf_map SEC("maps") counts = {
    .type = BPF_MAP_TYPE_ARRAY, .size_key = 4, .size_value = 8, .max_elem = 2,
    .id = 42, .inner_idx = 2,
};
struct bpf_elf_map SEC("maps") by_slot = {
    .type = BPF_MAP_TYPE_ARRAY_OF_MAPS, .size_key = 4, .size_value = 4, .max_elem = 4,
    .inner_id = 42,
};
SEC("classifier")
int cls(struct __sk_buff *skb)
{
    __u32 slot = skb->mark, k = skb->len & 1;
    void *inner = bpf_map_lookup_elem(&by_slot, &slot);
    if (!inner)
        return 7;
    __u64 *v = bpf_map_lookup_elem(inner, &k);
    if (!v)
        return 8;
    *v += skb->len;
    return 1;
}
char _license[] SEC("license") = "GPL";
"""


@HELPER_OPT
@pytest.mark.parametrize("marks", [(2, 2, 0), (1, 3), (2,)], ids=["inner-slot", "empty-slots",
                                                                   "once"])
def test_iproute2_inner_id_and_inner_idx_put_the_inner_map_into_its_outer_map(flags, marks):
    obj, kobj = _objects(IPROUTE2_MAP_IN_MAP, flags)
    with kobj:
        for mark in marks:
            for packet in PACKETS.values():
                _same_run(obj, kobj, "cls", packet, {"mark": mark})
        assert _contents(obj.maps["counts"]) == _contents(kobj.maps["counts"])
    outer = obj.spec.maps["by_slot"]
    assert outer.inner_maps == {2: "counts"} and outer.inner.name == "counts"


def test_an_iproute2_inner_id_naming_no_map_is_an_elf_error():
    source = IPROUTE2_MAP_IN_MAP.replace(".inner_id = 42", ".inner_id = 43")
    with pytest.raises(ElfError, match=r"symbol 'by_slot': inner_id 43 names no map"):
        pyebpf.load(compile_object(source))


# --- pinning --------------------------------------------------------------------------------
PINNED_COUNTER = {
    "libbpf-by-name": r"""
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
    __uint(pinning, LIBBPF_PIN_BY_NAME);
} runs SEC(".maps");
""",
    "iproute2-global-ns": r"""
struct bpf_elf_map {
    __u32 type, size_key, size_value, max_elem, flags, id, pinning, inner_id, inner_idx;
};
struct bpf_elf_map SEC("maps") runs = {
    .type = BPF_MAP_TYPE_ARRAY, .size_key = 4, .size_value = 8, .max_elem = 1,
    .pinning = 2,
};
""",
    "iproute2-object-ns": r"""
struct bpf_elf_map {
    __u32 type, size_key, size_value, max_elem, flags, id, pinning, inner_id, inner_idx;
};
struct bpf_elf_map SEC("maps") runs = {
    .type = BPF_MAP_TYPE_ARRAY, .size_key = 4, .size_value = 8, .max_elem = 1,
    .pinning = 1,
};
"""}
_COUNT = r"""
SEC("tc") int count(struct __sk_buff *skb)
{
    __u32 zero = 0;
    __u64 *n = bpf_map_lookup_elem(&runs, &zero);
    if (!n)
        return 2;
    __sync_fetch_and_add(n, 1);
    skb->cb[0] = *n;
    return 0;
}
char _l[] SEC("license") = "GPL";
"""
PIN_KINDS = pytest.mark.parametrize("kind", list(PINNED_COUNTER))


def _counter_object(kind: str) -> bytes:
    return compile_object(PINNED_COUNTER[kind] + _COUNT)


def _count(obj) -> int:
    return int.from_bytes(obj.maps["runs"][bytes(4)], "little")


@PIN_KINDS
def test_two_processes_loading_one_object_share_its_pinned_map(kind, tmp_path, pin_root):
    import subprocess
    import sys
    (tmp_path / "prog.o").write_bytes(_counter_object(kind))
    script = ("import sys, pyebpf\n"
              "prog = pyebpf.load(sys.argv[1]).program('count')\n"
              "for _ in range(int(sys.argv[2])):\n"
              "    prog.run(bytes(60))\n")
    env, cwd = child_python()
    runners = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "prog.o"), "150"],
                                env={**env, "PYEBPF_PIN_ROOT": str(pin_root)}, cwd=cwd)
               for _ in range(2)]
    assert [r.wait(timeout=120) for r in runners] == [0, 0]
    assert _count(pyebpf.load(tmp_path / "prog.o")) == 300


@pytest.mark.parametrize("kind, path", [
    ("libbpf-by-name", r"runs"), ("iproute2-global-ns", r"tc/globals/runs"),
    ("iproute2-object-ns", r"tc/[0-9a-f]{40}/runs")])
def test_a_pin_request_pins_the_map_at_its_path_under_the_pin_root(kind, path, pin_root):
    import re
    obj = pyebpf.load(_counter_object(kind))
    assert re.fullmatch(path, obj.pins["runs"])
    assert (pin_root / obj.pins["runs"]).is_file()


@PIN_KINDS
def test_a_second_load_reuses_the_pinned_map_without_resetting_it(kind):
    first = pyebpf.load(_counter_object(kind))
    first.program("count").run(bytes(60))
    second = pyebpf.load(_counter_object(kind))
    assert _count(second) == 1
    assert second.program("count").run(bytes(60)).skb.cb[0] == 2


def test_closing_an_object_leaves_its_pinned_maps_to_the_next_load():
    first = pyebpf.load(_counter_object("libbpf-by-name"))
    first.program("count").run(bytes(60))
    first.close()
    assert pyebpf.load(_counter_object("libbpf-by-name")).program("count").run(
        bytes(60)).skb.cb[0] == 2


def test_pin_false_creates_the_maps_unpinned(pin_root):
    pyebpf.load(_counter_object("libbpf-by-name")).program("count").run(bytes(60))
    obj = pyebpf.load(_counter_object("libbpf-by-name"), pin=False)
    assert _count(obj) == 0 and obj.pins == {"runs": "runs"}


@pytest.mark.parametrize("change", ["max_entries", "value_size", "type"])
def test_a_pinned_map_of_another_definition_is_refused_naming_map_and_pin(change, pin_root):
    args = {"max_entries": ("array", 4, 8, 2), "value_size": ("array", 4, 4, 1),
            "type": ("hash", 4, 8, 1)}[change]
    pyebpf.Map.create(*args).pin("runs")
    with pytest.raises(ElfError, match=rf"symbol 'runs': pin {pin_root}/runs: the pinned map "
                                       r"does not match the definition"):
        pyebpf.load(_counter_object("libbpf-by-name"))


PINNED_PROG_ARRAY = {
    # the program array in the iproute2 object is IPROUTE2's jmp (PIN_GLOBAL_NS), filled
    # from sections 1/0 and 1/5; its programs reference seen, which asks for no pin
    "iproute2": (IPROUTE2, "entry", 0, ["tc/globals/jmp", "tc/globals/jmp.progs/hop0",
                                        "tc/globals/jmp.progs/hop5", "{ns}/seen"]),
    "libbpf": (r"""
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} hits SEC(".maps");
SEC("tc") int target(struct __sk_buff *skb)
{
    __u32 zero = 0;
    __u64 *n = bpf_map_lookup_elem(&hits, &zero);
    if (n)
        skb->cb[3] = ++*n;
    return 9;
}
struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, 4);
    __type(key, __u32);
    __uint(pinning, LIBBPF_PIN_BY_NAME);
    __array(values, int (struct __sk_buff *));
} table SEC(".maps") = { .values = { [2] = (void *)&target } };
SEC("tc") int jump(struct __sk_buff *skb) { bpf_tail_call(skb, &table, skb->mark); return 1; }
char _license[] SEC("license") = "GPL";
""", "jump", 2, ["table", "table.progs/target", "{ns}/hits"]),
}


def _run_in_a_process(obj_path, program: str, mark: int, pin_root) -> tuple[int, list]:
    import subprocess
    import sys
    script = ("import sys, pyebpf\n"
              "r = pyebpf.load(sys.argv[1]).program(sys.argv[2]).run(bytes(60), "
              "mark=int(sys.argv[3]))\n"
              "print(r.retval, *r.skb.cb)\n")
    env, cwd = child_python(PYEBPF_PIN_ROOT=str(pin_root))
    out = subprocess.run([sys.executable, "-c", script, str(obj_path), program, str(mark)],
                         env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    retval, *cb = map(int, out.stdout.split())
    return retval, cb


@pytest.mark.parametrize("kind", list(PINNED_PROG_ARRAY))
def test_a_pinned_program_array_the_object_fills_tail_calls_in_two_processes_the_second_reusing_its_pins(
        kind, tmp_path, pin_root):
    source, program, mark, pins = PINNED_PROG_ARRAY[kind]
    data = compile_object(source)
    (tmp_path / "prog.o").write_bytes(data)
    pins = [p.format(ns=elf.parse(data).namespace) for p in pins]
    first = _run_in_a_process(tmp_path / "prog.o", program, mark, pin_root)
    ids = {p: pyebpf.pinning.load(p)[1] for p in pins}
    second = _run_in_a_process(tmp_path / "prog.o", program, mark, pin_root)
    if kind == "iproute2":      # entry -> hop0 -> hop5, each counting in the pinned seen
        assert first == second == (5, [1, 0xa0, 0xa5, 0, 0])
        seen = pyebpf.Map.from_pin(pins[-1])
        assert [int.from_bytes(seen[s.to_bytes(4, "little")], "little") for s in (0, 5, 7)] \
            == [2, 2, 2]
    else:                       # jump -> target, counting in the pinned hits
        assert (first, second) == ((9, [0, 0, 0, 1, 0]), (9, [0, 0, 0, 2, 0]))
    assert {p: pyebpf.pinning.load(p)[1] for p in pins} == ids


def test_a_pinned_program_array_the_object_fills_is_filled_once_then_reused_as_pinned():
    data = compile_object(IPROUTE2)
    first = pyebpf.load(data)
    del first.maps["jmp"][bytes(4)]
    second = pyebpf.load(data)
    assert second.maps["jmp"] is first.maps["jmp"]
    jmp = second.maps["jmp"]
    assert [s for s in range(8) if jmp.lookup(s.to_bytes(4, "little")) is not None] == [5]
    assert second.program("entry").run(bytes(60), mark=0).retval == 2


def test_pin_false_fills_the_program_array_unpinned_and_pins_nothing(pin_root):
    obj = pyebpf.load(compile_object(IPROUTE2), pin=False)
    assert obj.maps["jmp"]._pin is None
    assert obj.program("entry").run(bytes(60), mark=5).retval == 5
    assert not pin_root.exists() or not any(pin_root.rglob("*"))


def test_a_load_that_fails_filling_a_pinned_program_array_removes_its_pin(pin_root):
    source = PROG_ARRAY_INIT.replace('SEC("tc") int target', 'SEC("xdp") int target').replace(
        "__type(key, __u32);", "__type(key, __u32);\n    __uint(pinning, LIBBPF_PIN_BY_NAME);")
    with pytest.raises(ElfError, match=r"symbol 'table': slot 2 names program 'target', "
                                       r"which is not loaded: a xdp program"):
        pyebpf.load(compile_object(source))
    assert not (pin_root / "table").exists()


def test_a_pinned_map_of_maps_pins_its_inner_maps_in_the_object_namespace_for_the_next_process(
        tmp_path, pin_root):
    source = _map_in_map("ARRAY_OF_MAPS", "ARRAY").replace(
        "__array(values, struct inner_def);",
        "__uint(pinning, LIBBPF_PIN_BY_NAME);\n    __array(values, struct inner_def);")
    (tmp_path / "prog.o").write_bytes(compile_object(source))
    # 60 bytes: reads key 0 of map_b (empty), writes 60 at key 1
    assert _run_in_a_process(tmp_path / "prog.o", "use", 3, pin_root)[0] == 1
    obj = pyebpf.load(tmp_path / "prog.o")
    assert obj.maps["map_b"] is pyebpf.Map.from_pin(f"{obj.spec.namespace}/map_b")
    assert obj.maps["outer"] is pyebpf.Map.from_pin("outer")
    assert obj.program("use").run(bytes(61), mark=3).skb.cb[1] == 60


def test_an_lddw_of_a_map_fd_without_a_relocation_is_refused_at_the_programs_load():
    """Found by the 6.12.118 selftests (verifier_map_ret_val.o, whose other programs
    went unread with it): libbpf leaves an lddw with BPF_PSEUDO_MAP_FD and no
    relocation as written, and the kernel refuses the fd (check_ld_imm); pyebpf refused
    the whole object when reading it."""
    ours, theirs = verdicts(compile_object("""
SEC("socket") __attribute__((naked)) int sf(void)
{
	asm volatile (".8byte 0x1118; .8byte 0; r0 = 0; exit;" ::: "memory");
}
char _license[] SEC("license") = "GPL";
"""))
    message = "fd 0 is not pointing to valid bpf_map"
    assert theirs is not None and message in theirs, theirs
    assert ours is not None and "program cannot be loaded" in ours and message in ours, ours


# --- the kernel's static call-chain checks --------------------------------------------------
def _assert_same_verdict(data: bytes, expect_refusal: str | None):
    ours, theirs = verdicts(data)
    if expect_refusal is None:
        assert (ours, theirs) == (None, None)
    else:
        assert theirs is not None and re.search(expect_refusal, theirs), theirs
        assert ours is not None and theirs in ours, ours


@pytest.mark.parametrize("frames, refusal", [(8, None), (9, "the call stack of 9 frames is "
                                                             "too deep")])
def test_a_call_chain_deeper_than_eight_frames_is_refused_at_load_as_by_the_kernel(
        frames, refusal):
    _assert_same_verdict(compile_object(_call_chain(frames)), refusal)


def _stack_chain(*sizes: int) -> str:
    """A tc program whose call chain has one function per size (a multiple of 8), each
    writing every u64 of a volatile buffer of that many bytes."""
    def frame(size, value, tail):
        return (f"volatile __u64 b[{size // 8}];\n#pragma unroll\n"
                f"for (int i = 0; i < {size // 8}; i++) b[i] = {value} + i;\n"
                f"return {tail} + b[0] + b[{size // 8 - 1}];")
    n, body = len(sizes), ""
    for i in reversed(range(1, n)):
        call = f"f{i + 1}(x + 1)" if i + 1 < n else "x"
        body += f"static __noinline __u32 f{i}(__u32 x) {{ {frame(sizes[i], 'x', call)} }}\n"
    first = "f1(s->len)" if n > 1 else "0"
    return (body + f'SEC("tc") int e(struct __sk_buff *s) {{ '
            f'{frame(sizes[0], "s->len", first)} }}\nchar _l[] SEC("license") = "GPL";')


@pytest.mark.parametrize("sizes, refusal", [
    ((256, 240), None), ((256, 256), None),
    ((256, 288), r"combined stack size of 2 calls is \d+\. Too large"),
    ((128, 128, 128), None), ((200, 200, 200), r"combined stack size of 3 calls is \d+"),
    ((64,) * 7, None), ((80,) * 7, r"combined stack size of \d calls is \d+"),
    ((496,), None), ((32, 480), None), ((48, 480), r"combined stack size of 2 calls is 528"),
], ids=lambda v: "-".join(map(str, v)) if isinstance(v, tuple) else
    "refused" if v else "accepted")
def test_the_combined_stack_of_a_call_chain_is_limited_as_in_the_kernel(sizes, refusal):
    """The kernel counts each function's stack (the lowest byte below r10 it touches,
    rounded up to 16 bytes with the JIT) along every call chain: at most 512 bytes."""
    _assert_same_verdict(compile_object(_stack_chain(*sizes)), refusal)


def _stack_asm(main: int, sub: int, through: str) -> bytes:
    """main touches r10-main and calls sub, which touches r10-sub directly or through
    a register that holds r10 + constant (also spilled to the stack and reloaded)."""
    access = {
        "r10": f"*(u8 *)(r10 - {sub}) = 0",
        "register": f"r1 = r10\nr1 += -{sub + 7}\n*(u8 *)(r1 + 7) = 0",
        "spilled": f"r1 = r10\nr1 += -{sub}\n*(u64 *)(r10 - 8) = r1\nr2 = *(u64 *)(r10 - 8)\n"
                   f"*(u8 *)(r2 + 0) = 0",
    }[through]
    return pyebpf.asm.assemble(f"*(u8 *)(r10 - {main}) = 0\ncall sub\nr0 = 0\nexit\n"
                               f"sub:\n{access}\nr0 = 0\nexit")


@pytest.mark.parametrize("through", ["r10", "register", "spilled"])
@pytest.mark.parametrize("main, sub", [(256, 256), (256, 257), (8, 496), (1, 504), (512, 1),
                                       (100, 400), (264, 248), (16, 496)])
def test_stack_depth_through_r10_and_registers_holding_it_is_measured_as_the_kernel(
        kernel_oracle, through, main, sub):
    prog = _stack_asm(main, sub, through)
    try:
        pyebpf.Program(prog, "sched_cls")
        ours = None
    except pyebpf.errors.VerifierError as exc:
        ours = str(exc)
    try:
        kernel_oracle.KernelProgram(prog, "sched_cls").close()
        theirs = None
    except pyebpf.errors.KernelError as exc:
        theirs = str(exc).split("refused the program: ", 1)[-1]
    assert (ours is None) == (theirs is None), (ours, theirs)
    assert theirs is None or theirs in ours


TAIL_CALL_UNDER_STACK = r"""
#define WORDS (SIZE / 8)
struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, 1);
    __uint(key_size, 4);
    __uint(value_size, 4);
} jt SEC(".maps");
static __noinline int hop(struct __sk_buff *s) { bpf_tail_call(s, &jt, 0); return s->len; }
SEC("tc") int e(struct __sk_buff *s)
{
    volatile __u64 a[WORDS];
#pragma unroll
    for (int i = 0; i < WORDS; i++)
        a[i] = s->len + i;
    return hop(s) + a[0] + a[WORDS - 1];
}
char _l[] SEC("license") = "GPL";
"""


@pytest.mark.parametrize("size", [200, 256])
def test_a_tail_call_over_256_bytes_of_caller_stack_is_refused(size):
    """Not differential: the kernel refuses any tail call in a subprogram loaded without
    BTF func_info ("tail_call is not allowed in subprogs without BTF"), and
    kernel.load_object loads without BTF.  Expected value: check_max_stack_depth refuses
    a function that tail-calls when the frames below it hold 256 bytes or more."""
    data = compile_object(f"#define SIZE {size}\n{TAIL_CALL_UNDER_STACK}")
    if size < 256:
        pyebpf.load(data)
        return
    with pytest.raises(ElfError, match=r"tail_calls are not allowed when call stack of "
                                       r"previous frames is 256 bytes\. Too large"):
        pyebpf.load(data)


# --- unsupported constructs: one clear error each ------------------------------------------
@pytest.mark.parametrize("source, message", [
    ('int *p = 0; int x; int *q = &x;\n'
     'SEC("tc") int f(struct __sk_buff *s) { return *q; }',
     r"section '.data', symbol 'x', relocation #0: relocations in global data"),
], ids=["data-pointer"])
def test_an_unsupported_construct_is_one_elf_error_naming_it(source, message):
    with pytest.raises(ElfError, match=message):
        pyebpf.load(compile_object(source + '\nchar _l[] SEC("license") = "GPL";'))


# --- corrupt objects: one clear ElfError each ----------------------------------------------
def _elf_patch(data: bytes, fmt: str, offset: int, *values) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, *values)
    return bytes(out)


def _section_header(data: bytes, name: str) -> int:
    """File offset of section ``name``'s header."""
    import io

    from elftools.elf.elffile import ELFFile
    f = ELFFile(io.BytesIO(data))
    return f["e_shoff"] + f.get_section_index(name) * f["e_shentsize"]


def _section_offset(data: bytes, name: str) -> int:
    return struct.unpack_from("<Q", data, _section_header(data, name) + 24)[0]


def _corrupt(kind: str) -> bytes:
    data = compile_object(BTF_MAPS)
    if kind == "truncated":
        return data[:len(data) // 2]
    if kind == "x86-64":
        return _elf_patch(data, "<H", 18, 62)
    if kind == "section-offset":
        return _elf_patch(data, "<Q", _section_header(data, "tc") + 24, len(data) + 8)
    if kind == "missing-symbol":
        rel = _section_offset(data, ".reltc")
        return _elf_patch(data, "<Q", rel + 8, (999 << 32) | 1)
    if kind == "btf-garbage":
        btf = _section_offset(data, ".BTF")
        return data[:btf + 24] + bytes(range(7, 247, 3))[:64] + data[btf + 88:]
    if kind == "relocation-type":
        rel = _section_offset(data, ".reltc")
        info = struct.unpack_from("<Q", data, rel + 8)[0]
        return _elf_patch(data, "<Q", rel + 8, (info & ~0xFFFFFFFF) | 3)
    if kind == "not-elf":
        return b"#!/bin/sh\n" + data[10:]
    if kind == "rela":
        return _elf_patch(data, "<I", _section_header(data, ".reltc") + 4, 4)
    raise AssertionError(kind)


@pytest.mark.parametrize("kind, message", [
    ("truncated", r"<bytes>: section header table \[0x[0-9a-f]+, 0x[0-9a-f]+\) of \d+ 64-byte "
                  r"entries does not fit in the \d+-byte file \(truncated\?\)"),
    ("x86-64", r"<bytes>: e_machine is EM_X86_64, not EM_BPF \(247\): not a BPF object"),
    ("section-offset", r"<bytes>: section 'tc': section data \[0x[0-9a-f]+, 0x[0-9a-f]+\) runs "
                       r"past the end of the \d+-byte file"),
    ("missing-symbol", r"<bytes>: section '.reltc', relocation #0: relocation against symbol "
                       r"#999, which does not exist \(\d+ symbols\)"),
    ("btf-garbage", r"<bytes>: section '.BTF': BTF: type #1 at offset 0x18 has unknown kind"),
    ("relocation-type", r"<bytes>: section 'tc', symbol 'stats', relocation #0, insn \d+: "
                        r"relocation type 3 on lddw \(expected R_BPF_64_64\)"),
    ("not-elf", r"<bytes>: not an ELF file \(\d+ bytes, magic 23212f62\)"),
    ("rela", r"<bytes>: section '#\d+': malformed ELF headers: ELFError: Expected sh_entsize "
             r"of SHT_RELA section to be 24"),
])
def test_a_corrupt_object_is_one_elf_error_naming_the_problem(kind, message):
    with pytest.raises(ElfError, match=message) as info:
        pyebpf.load(_corrupt(kind))
    assert "\n" not in str(info.value)


def test_a_missing_file_is_an_elf_error_naming_it(tmp_path):
    with pytest.raises(ElfError, match=r"nope.o: cannot read the object: No such file"):
        pyebpf.load(tmp_path / "nope.o")


def test_a_path_and_its_bytes_load_the_same_object(tmp_path):
    data = compile_object(GLOBALS)
    (tmp_path / "prog.o").write_bytes(data)
    from_path = elf.parse(tmp_path / "prog.o")
    assert from_path.name == str(tmp_path / "prog.o")
    assert from_path.programs == elf.parse(data).programs


hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies


def _regions(data: bytes) -> list[tuple[int, int]]:
    """(offset, length) of the ELF header, the section headers and every non-debug
    section: where a mutation reaches the loader's phases rather than DWARF."""
    import io

    from elftools.elf.elffile import ELFFile
    f = ELFFile(io.BytesIO(data))
    out = [(0, 64), (f["e_shoff"], f["e_shnum"] * f["e_shentsize"])]
    for s in f.iter_sections():
        if not s.name.startswith(".debug") and s["sh_type"] != "SHT_NOBITS" and s["sh_size"]:
            out.append((s["sh_offset"], s["sh_size"]))
    return out


_MUTATIONS = (st.sampled_from(["BTF_MAPS", "IPROUTE2", "GLOBALS", "LEGACY", "PROG_ARRAY_INIT"]),
              st.lists(st.tuples(st.integers(0, 63), st.integers(0, 1 << 20),
                                 st.sampled_from([0, 1, 0x7F, 0x80, 0xFF, 0x18, 0x85])),
                       min_size=1, max_size=6))


def _mutated(which, mutations) -> bytes:
    data = bytearray(compile_object(globals()[which]))
    regions = _regions(bytes(data))
    for region, offset, value in mutations:
        start, length = regions[region % len(regions)]
        data[start + offset % length] = value
    return bytes(data)


@pytest.mark.filterwarnings("ignore::pyebpf.errors.ElfWarning")   # a mutated name may warn
@hypothesis.settings(max_examples=500, derandomize=True, deadline=None,
                     suppress_health_check=list(hypothesis.HealthCheck))
@hypothesis.given(*_MUTATIONS)
def test_mutated_objects_raise_only_pyebpf_errors(which, mutations):
    try:
        obj = pyebpf.load(_mutated(which, mutations))
    except pyebpf.errors.EbpfError:
        return
    obj.close()


@hypothesis.settings(max_examples=500, derandomize=True, deadline=None,
                     suppress_health_check=list(hypothesis.HealthCheck))
@hypothesis.given(_MUTATIONS[0],
                  st.lists(st.tuples(st.integers(0, 1), st.integers(0, 1 << 20),   # the headers
                                     st.sampled_from([0, 1, 2, 3, 4, 8, 9, 0x10, 0x18, 0x80,
                                                      0xFF])),
                           min_size=1, max_size=3))
def test_section_headers_read_with_struct_are_those_pyelftools_reads(which, mutations):
    reader = elf._Reader(_mutated(which, mutations), "<bytes>")
    try:
        reader._check_header()
    except ElfError:
        return
    plain = reader._plain_headers()
    if plain is not None:     # else pyelftools reads them, and words what is wrong
        assert plain == reader._elftools_headers()


def test_a_clang_object_is_read_without_importing_pyelftools(tmp_path):
    path = tmp_path / "prog.o"
    path.write_bytes(compile_object(BTF_MAPS))
    env, cwd = child_python()
    done = subprocess.run([sys.executable, "-c", "import sys; from pyebpf import elf; "
                           f"elf.parse({str(path)!r}); print(sorted(m for m in sys.modules "
                           "if m.startswith('elftools')))"],
                          env=env, cwd=cwd, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# --- line info: C source lines on programs, listings, faults and traces ----------------------

LINES = r"""
static __attribute__((noinline)) int pick(__u8 *p, __u32 n)
{
    return p[n];
}

SEC("tc") int reader(struct __sk_buff *skb)
{
    __u32 n = skb->mark;
    __u8 *p = (void *)(long)skb->data;
    return pick(p, n);
}
char LICENSE[] SEC("license") = "GPL";
"""


def _lines_program(tmp_path):
    path = tmp_path / "lines.o"
    path.write_bytes(compile_object(LINES))
    return pyebpf.load(path, pin=False, verify=False).program("reader")   # p[n] unchecked


def _line_of(text):
    return next(k for k, line in enumerate(LINES.splitlines(), len(PRELUDE.splitlines()) + 1)
                if text in line)


def test_a_program_keeps_the_c_line_of_every_instruction_even_in_appended_functions(tmp_path):
    prog = _lines_program(tmp_path)
    lines = {li.line for li in prog.line_info}
    assert {_line_of("return pick(p, n)"), _line_of("return p[n]")} <= lines
    callee = [li for li in prog.line_info if li.line == _line_of("return p[n]")]
    assert callee and all(li.pc > 0 for li in callee)        # rebased into the program


def test_a_fault_names_the_c_line(tmp_path):
    with pytest.raises(pyebpf.errors.MemoryFault) as err:
        _lines_program(tmp_path).run(bytes(60), mark=1000)
    assert err.value.source.endswith(f"prog.c:{_line_of('return p[n]')}")
    assert err.value.source_text == "return p[n];" and "`return p[n];`" in str(err.value)


def test_the_listing_and_the_trace_show_the_c_lines(tmp_path):
    prog = _lines_program(tmp_path)
    want = f"prog.c:{_line_of('__u8 *p =')}: __u8 *p = (void *)(long)skb->data;"
    assert want in prog.disassemble()
    assert want in str(prog.run(bytes(60), mark=3, trace=True).trace)
