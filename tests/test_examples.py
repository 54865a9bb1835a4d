"""The example programs of examples/: they build, load into the running kernel, and do
what examples/README.md says.

Every object is loaded whole into the kernel by libbpf (tests/libbpfobj.py: BTF-defined
maps, relocations, the program array's initial contents), which is how users load them.
The programs without maps run in pyebpf and in the kernel on every frame of the sample
captures, from their section bytes (they have no relocations), and must agree
(skbdiff.assert_same).  The programs with maps (proto_count, tail_dispatch) run through
pyebpf.load() and kernel.load_object() on every frame of sample.pcap, the process kept
on one CPU: retvals, packets, exported fields and the maps afterwards (per-CPU slots
included) must agree.  What the kernel does not report (tc_classid, VLAN metadata,
tunnel metadata, redirect targets, clones) is checked in pyebpf's Result against what
the program's comment promises.
"""
from __future__ import annotations

import ipaddress
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest
from scapy.layers.l2 import Dot1AD, Dot1Q, Ether
from scapy.utils import rdpcap

import pyebpf
import bpfc
import toolpath
import libbpfobj
from skbdiff import EXPORTED, assert_same, both

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CLS, SF = 3, 1
TC_ACT_UNSPEC, TC_ACT_OK, TC_ACT_SHOT, TC_ACT_REDIRECT = -1, 0, 2, 7

# object -> {program: (section, program type)}; maps: object -> {map: map type}
PROGRAMS = {
    "drop_icmp": {"drop_icmp": ("tc", CLS)},
    "port_classid": {"port_classid": ("classifier", CLS)},
    "nat4": {"snat4": ("tc", CLS)},
    "nat4_v2": {"snat4": ("tc", CLS)},
    "vlan": {"vlan_tag": ("tc", CLS), "vlan_untag": ("classifier", CLS)},
    "tunnel_key": {"set_tunnel": ("tc", CLS)},
    "redirect": {"redirect_by_dst": ("tc", CLS)},
    "proto_count": {"proto_count": ("tc", CLS)},
    "tail_dispatch": {"dispatch": ("tc", CLS), "handle_tcp": ("tc", CLS),
                      "handle_udp": ("tc", CLS), "handle_icmp": ("tc", CLS)},
    "sockfilter": {"keep_https_headers": ("socket", SF)},
}
MAPS = {"proto_count": {"ethertype_stats": 1, "ipproto_packets": 6},   # HASH, PERCPU_ARRAY
        "tail_dispatch": {"handlers": 3}}                               # PROG_ARRAY
MAPLESS = [(obj, sec, ptype) for obj, progs in PROGRAMS.items() if obj not in MAPS
           for sec, ptype in progs.values()]


def frames(name):
    return [bytes(p) for p in rdpcap(str(EXAMPLES / name))]


SAMPLE, HTTPS, VLAN = frames("sample.pcap"), frames("https.pcap"), frames("vlan.pcap")
ALL = [(f"{name}#{i}", f) for name, fs in (("sample", SAMPLE), ("https", HTTPS),
                                            ("vlan", VLAN)) for i, f in enumerate(fs)]


def section_code(obj: str, section: str) -> bytes:
    """The bytes of one program section of examples/<obj>.o (which has no relocations)."""
    if not (bpfc.OBJCOPY and bpfc.READELF):
        pytest.skip("llvm-19 tools not installed")
    path = EXAMPLES / f"{obj}.o"
    relocs = subprocess.run([bpfc.READELF, "-r", str(path)], check=True, capture_output=True,
                            text=True).stdout
    assert f"'.rel{section}'" not in relocs, f"{obj}.o section {section} has relocations"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp, "code.bin")
        subprocess.run([bpfc.OBJCOPY, "-O", "binary", f"--only-section={section}", str(path),
                        str(out)], check=True)
        return out.read_bytes()


@pytest.fixture(scope="module")
def loaded(live_kernel):
    """loaded(name): examples/<name>.o loaded into the kernel by libbpf (once per module)."""
    objs = {}

    def load(name):
        if name not in objs:
            objs[name] = libbpfobj.LoadedObject(str(EXAMPLES / f"{name}.o"))
        return objs[name]
    yield load
    for o in objs.values():
        o.close()


def run_ok(prog, frame, **fields):
    return pyebpf.Program(prog, "sched_cls").run(frame, ifindex=1, **fields)


# --- build ------------------------------------------------------------------------------

def test_every_c_source_has_a_committed_object_and_nothing_else_does():
    assert sorted(p.stem for p in EXAMPLES.glob("*.c")) == sorted(PROGRAMS)
    assert sorted(p.stem for p in EXAMPLES.glob("*.o")) == sorted(PROGRAMS)


def test_the_committed_objects_are_what_make_builds_from_the_sources():
    if not (bpfc.CLANG and toolpath.find("make") and toolpath.find("llvm-objdump-19")):
        pytest.skip("clang-19, llvm-objdump-19 or make not installed")
    run = subprocess.run(["make", "-s", "-C", str(EXAMPLES), "check"], capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_sample_captures_are_what_make_pcaps_writes(tmp_path):
    shutil.copy(EXAMPLES / "make_pcaps.py", tmp_path)
    subprocess.run([sys.executable, str(tmp_path / "make_pcaps.py")], check=True)
    for name in ("sample.pcap", "https.pcap", "vlan.pcap"):
        assert (tmp_path / name).read_bytes() == (EXAMPLES / name).read_bytes(), name


# --- the kernel loads every object ----------------------------------------------------

@pytest.mark.parametrize("obj", PROGRAMS)
def test_every_program_of_the_object_loads_into_the_kernel(loaded, obj):
    got = {p.name: (p.section, p.prog_type) for p in loaded(obj).programs.values()}
    assert got == PROGRAMS[obj]
    assert all(p.fd >= 0 for p in loaded(obj).programs.values())


@pytest.mark.parametrize("obj", PROGRAMS)
def test_the_btf_defined_maps_of_the_object_are_created(loaded, obj):
    assert {m.name: m.map_type for m in loaded(obj).maps.values()} == MAPS.get(obj, {})


def test_the_program_array_is_filled_from_its_initial_contents(loaded):
    obj = loaded("tail_dispatch")
    slots = {k: obj.lookup("handlers", struct.pack("<I", k), 4) for k in (0, 1, 6, 17, 58)}
    assert slots[0] is None
    assert len({slots[k] for k in (1, 6, 17)}) == 3 and slots[1] == slots[58]


# --- map-less programs: pyebpf against the kernel on every sample frame ---------------

@pytest.mark.parametrize("frame", [f for _, f in ALL], ids=[i for i, _ in ALL])
@pytest.mark.parametrize("obj, section, ptype", MAPLESS,
                         ids=[f"{o}:{s}" for o, s, _ in MAPLESS])
def test_example_runs_as_in_the_kernel(obj, section, ptype, frame):
    assert_same(section_code(obj, section), ptype, frame, {})


# --- programs with maps: pyebpf.load against kernel.load_object on every sample frame ---

MAPPED = [("proto_count", "proto_count"), ("tail_dispatch", "dispatch")]


@pytest.fixture
def on_one_cpu():
    """This process kept on one CPU, so that the kernel's per-CPU map writes land in a
    known slot (test_run runs the program on the caller's CPU); pyebpf runs as that CPU."""
    import os
    before = os.sched_getaffinity(0)
    cpu = min(before)
    os.sched_setaffinity(0, {cpu})
    yield cpu
    os.sched_setaffinity(0, before)


def _map_contents(m, kernel_side: bool):
    """{key: value} of a map; per-CPU values as one bytes per CPU, program arrays' slots
    as their keys only (the values are fds, different on each side)."""
    out = {}
    for key in m.keys():
        value = m.lookup(key)
        if (m.map_type if kernel_side else m.type) == pyebpf.isa.MapType.BPF_MAP_TYPE_PROG_ARRAY:
            value = None
        elif kernel_side and m.value_buffer_size != m.value_size:
            step = (m.value_size + 7) & ~7
            value = [value[i:i + m.value_size] for i in range(0, len(value), step)]
        out[key] = value
    return out


@pytest.mark.parametrize("obj, prog", MAPPED, ids=[o for o, _ in MAPPED])
def test_example_with_maps_runs_as_in_the_kernel_on_every_sample_frame(obj, prog, on_one_cpu):
    ours = pyebpf.load(EXAMPLES / f"{obj}.o")
    with pyebpf.kernel.load_object(EXAMPLES / f"{obj}.o") as theirs:
        for i, frame in enumerate(SAMPLE):
            mine = ours.program(prog).run(frame, ifindex=1, cpu=on_one_cpu)
            kern = theirs.program(prog).test_run(frame, ctx={})
            assert (mine.retval & 0xFFFFFFFF, mine.data_out) == (kern.retval, kern.data), \
                f"sample#{i}"
            fields = mine.skb.as_dict()
            for name in EXPORTED:
                got = list(fields[name]) if name == "cb" else fields[name]
                assert got == kern.skb[name], f"sample#{i}: __sk_buff.{name} differs"
        for name in ours.maps:
            assert _map_contents(ours.maps[name], False) == \
                _map_contents(theirs.maps[name], True), f"map {name} differs"


# --- what each program does -----------------------------------------------------------

def test_drop_icmp_drops_exactly_icmp_and_icmpv6():
    code = section_code("drop_icmp", "tc")
    for name, frame in ALL:
        p = Ether(frame)
        icmp = p.haslayer(ICMP) or p.haslayer(ICMPv6EchoRequest)
        _, theirs = both(code, CLS, frame, {})
        assert theirs.retval == (TC_ACT_SHOT if icmp else TC_ACT_OK), name


PORT_CLASSES = [((22, 23, 53), 0x10, 6), ((80, 443), 0x20, 4),
                (range(5000, 6000), 0x30, 2), (range(6881, 6890), 0x40, 0)]


def expected_class(frame):
    p = Ether(frame)
    if Dot1Q in p or Dot1AD in p or not (TCP in p or UDP in p) or (IP in p and p[IP].frag):
        return None
    dport = (p[TCP] if TCP in p else p[UDP]).dport
    return next(((c, prio) for ports, c, prio in PORT_CLASSES if dport in ports), None)


def test_port_classid_sets_priority_by_destination_port_in_the_kernel():
    code = section_code("port_classid", "classifier")
    for name, frame in ALL:
        want = expected_class(frame)
        _, theirs = both(code, CLS, frame, {})
        assert theirs.retval_signed == (TC_ACT_OK if want else TC_ACT_UNSPEC), name
        assert theirs.skb["priority"] == (want[1] if want else 0), name


def test_port_classid_sets_tc_classid_by_destination_port():
    """Not differential: test_run does not report tc_classid."""
    code = section_code("port_classid", "classifier")
    for name, frame in ALL:
        want = expected_class(frame)
        assert run_ok(code, frame).skb.tc_classid == (want[0] if want else 0), name


def inside(frame):
    p = Ether(frame)
    return IP in p and ipaddress.ip_address(p[IP].src) in ipaddress.ip_network("10.0.0.0/8")


def test_nat4_rewrites_inside_sources_with_correct_checksums_in_the_kernel():
    code = section_code("nat4", "tc")
    seen = 0
    for name, frame in ALL:
        _, theirs = both(code, CLS, frame, {})
        assert theirs.retval == TC_ACT_OK, name
        if not inside(frame):
            assert theirs.data == frame, name
            continue
        seen += 1
        before, after = Ether(frame), Ether(theirs.data)
        assert after[IP].src == "203.0.113.1", name
        for layer in (TCP, UDP):
            if layer in before and not before[IP].frag:
                assert after[layer].sport == 20000 + (before[layer].sport & 0x3FF), name
        recomputed = after.copy()
        del recomputed[IP].chksum
        for layer in (TCP, UDP, ICMP):
            if layer in recomputed and not before[IP].frag:
                del recomputed[layer].chksum
        assert bytes(Ether(bytes(recomputed))) == theirs.data, f"{name}: checksums"
    assert seen == 4


def test_vlan_tag_puts_untagged_frames_into_vlan_100_with_the_priority_as_pcp():
    """Not differential: the kernel keeps a pushed tag in the skb's metadata, which
    test_run does not report; pyebpf's Result.data shows it on the wire."""
    code = section_code("vlan", "tc")
    for name, frame in ALL:
        res = run_ok(code, frame, priority=5)
        tagged = Dot1Q in Ether(frame) or Dot1AD in Ether(frame)
        assert res.retval == TC_ACT_OK
        tag = b"\x81\x00" + struct.pack(">H", 5 << 13 | 100)
        want = frame if tagged else frame[:12] + tag + frame[12:]
        assert res.data == want, name


def tags(frame):
    """How many VLAN tags (802.1Q or 802.1ad) the frame's bytes start with."""
    n = 0
    while frame[12 + 4 * n:14 + 4 * n] in (b"\x81\x00", b"\x88\xa8"):
        n += 1
    return n


def test_vlan_untag_removes_the_outer_tag_and_moves_an_inner_one_to_the_metadata():
    """The kernel's skb_vlan_pop puts a second tag into the metadata, so a QinQ frame's
    bytes lose both tags."""
    code = section_code("vlan", "classifier")
    for name, frame in [(n, f) for n, f in ALL if n.startswith("vlan")]:
        _, theirs = both(code, CLS, frame, {})
        assert theirs.retval == TC_ACT_OK
        assert theirs.data == frame[:12] + frame[12 + 4 * tags(frame):], name


def test_tunnel_key_drops_everything_but_ipv4_in_the_kernel():
    code = section_code("tunnel_key", "tc")
    for name, frame in ALL:
        _, theirs = both(code, CLS, frame, {})
        assert theirs.retval == (TC_ACT_OK if frame[12:14] == b"\x08\x00" else TC_ACT_SHOT)


def test_tunnel_key_attaches_the_vni_remote_and_mark_option():
    """Not differential: test_run does not report the skb's metadata dst."""
    code = section_code("tunnel_key", "tc")
    frame = bytes(Ether() / IP(src="192.0.2.1", dst="10.7.9.1", tos=0x28) / UDP())
    tun = run_ok(code, frame, mark=0xAABBCCDD).tunnel
    assert (tun["id"], tun["dst"], tun["tos"], tun["ttl"]) == (1007, bytes([198, 51, 100, 9]),
                                                                0x28, 64)
    assert tun["options"] == bytes.fromhex("0102 80 01 aabbccdd")


def test_redirect_sends_router_frames_out_with_a_mirror_copy():
    """Where a redirect and a clone go is pyebpf's model (test_run only shows the verdict,
    which test_example_runs_as_in_the_kernel compares)."""
    code = section_code("redirect", "tc")
    frame = SAMPLE[-1]
    res = run_ok(code, frame)
    assert (res.retval, res.redirect, res.clones) == (TC_ACT_REDIRECT, (4, False),
                                                      ((1, False, frame),))


def test_redirect_hands_tcp_8080_to_the_proxy_ingress_and_passes_the_rest():
    code = section_code("redirect", "tc")
    for name, frame in ALL:
        if frame[:6] == bytes.fromhex("02000000000a"):
            continue
        p = Ether(frame)
        proxy = TCP in p and p[TCP].dport == 8080 and Dot1Q not in p
        res = run_ok(code, frame)
        assert (res.retval, res.redirect, res.clones) == (
            (TC_ACT_REDIRECT, (5, True), ()) if proxy else (TC_ACT_OK, None, ())), name


def test_sockfilter_keeps_the_headers_of_https_segments_only():
    code = section_code("sockfilter", "socket")
    kept = 0
    for name, frame in ALL:
        p = Ether(frame)
        https = (TCP in p and 443 in (p[TCP].sport, p[TCP].dport) and Dot1Q not in p
                 and Dot1AD not in p)
        want = 0
        if https:
            want = (p[IP].ihl * 4 if IP in p else 40) + p[TCP].dataofs * 4
            kept += 1
        _, theirs = both(code, SF, frame, {})
        assert theirs.retval == want, name
    assert kept == 11


# --- programs with maps, loaded by libbpf: what they do ---------------------------------

def ctx_fields(ctx: bytes) -> tuple[int, int]:
    return struct.unpack_from("<I", ctx, 8)[0], struct.unpack_from("<I", ctx, 32)[0]


def test_tail_dispatch_runs_each_protocols_handler_in_the_kernel(loaded):
    fd = loaded("tail_dispatch").programs["dispatch"].fd
    for name, frame in ALL:
        p = Ether(frame)
        retval, _, ctx = libbpfobj.test_run(fd, frame)
        mark, priority = ctx_fields(ctx)
        plain = Dot1Q not in p and Dot1AD not in p and not (IP in p and p[IP].frag)
        syn = plain and TCP in p and p[TCP].flags == "S"
        discard = plain and UDP in p and p[UDP].dport == 9
        icmp = plain and (ICMP in p or ICMPv6EchoRequest in p)
        assert (retval, mark, priority) == (TC_ACT_SHOT if discard else TC_ACT_OK,
                                            int(syn), 7 if icmp else 0), name


def test_proto_count_counts_per_ethertype_and_ip_protocol_behind_one_tag_in_the_kernel(
        live_kernel):
    obj = libbpfobj.LoadedObject(str(EXAMPLES / "proto_count.o"))
    with obj:
        fd = obj.programs["proto_count"].fd
        want, per_proto = {}, {}
        for _, frame in ALL:
            assert libbpfobj.test_run(fd, frame)[0] == TC_ACT_OK
            l3 = 14 + 4 * min(tags(frame), 1)
            etype = int.from_bytes(frame[l3 - 2:l3], "big")
            pk, by = want.get(etype, (0, 0))
            want[etype] = (pk + 1, by + len(frame))
            if etype in (0x0800, 0x86DD):
                proto = frame[l3 + (9 if etype == 0x0800 else 6)]
                per_proto[proto] = per_proto.get(proto, 0) + 1
        for etype, counts in want.items():
            assert obj.lookup("ethertype_stats", struct.pack("<H", etype), 16) == \
                struct.pack("<QQ", *counts), hex(etype)
        ncpu = libbpfobj.libbpf().libbpf_num_possible_cpus()
        for proto in range(256):
            raw = obj.lookup("ipproto_packets", struct.pack("<I", proto), 8 * ncpu)
            assert sum(struct.unpack(f"<{ncpu}Q", raw)) == per_proto.get(proto, 0), proto
