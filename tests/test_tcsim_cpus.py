"""tcsim --cpus N: packets steered to N simulated CPUs (RSS, or RPS by the flow hash),
each CPU replaying on a thread of its own, the outputs in the capture's order
(pcap/tcreplay.pyx, pcap/steer.pxi; the maps' locks in map_helpers.pxi)."""
import io
import json
import os
import random
import struct
import threading
from collections import Counter
from pathlib import Path

import dpkt
import pytest

from scapy.all import ICMP, IP, TCP, UDP, Dot1Q, Ether, IPv6

from bpfc import compile_object
from recorded_kernel import count_comparison
from pyebpf.pcap import pcapio, tcreplay, tcsim
from pyebpf.pcap.report import read_line

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
PROTO_COUNT = EXAMPLES / "proto_count.o"
NAT4 = EXAMPLES / "nat4.o"
MARK_BY_PORT = EXAMPLES / "mark_by_port.s"

# mark = the CPU the program runs on, priority = the skb's flow hash
CPU_AND_HASH = """\
r6 = r1
call 8
*(u32 *)(r6 + 8) = r0
r1 = r6
call 34
*(u32 *)(r6 + 32) = r0
r0 = 0
exit
"""


def _frames(count=600, seed=7):
    rnd = random.Random(seed)
    out = []
    for k in range(count):
        src, dst = f"10.0.{rnd.randrange(256)}.{rnd.randrange(1, 255)}", "192.168.1.1"
        sport, dport = rnd.randrange(1024, 65536), rnd.choice([22, 23, 80, 443, 8080])
        kind = k % 6
        if kind == 0:
            p = Ether() / IP(src=src, dst=dst) / UDP(sport=sport, dport=53)
        elif kind == 1:
            p = Ether() / IPv6(src=f"fd00::{k:x}", dst="fd00::1") / TCP(sport=sport, dport=dport)
        elif kind == 2:
            p = Ether() / Dot1Q(vlan=5) / IP(src=src, dst=dst) / TCP(sport=sport, dport=dport)
        elif kind == 3:
            p = Ether() / IP(src=src, dst=dst) / ICMP()
        else:
            p = Ether() / IP(src=src, dst=dst) / TCP(sport=sport, dport=dport) / (b"x" * k)
        out.append(bytes(p))
    return out


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    path = tmp_path_factory.mktemp("cpus") / "in.pcap"
    pcapio.write(path, [(k * 1000, f, len(f)) for k, f in enumerate(_frames())])
    return path


def tcsim_run(capsys, *argv):
    rc = tcsim.main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err.splitlines()


def _replay(capsys, tmp_path, name, program, capture, *options):
    """(delivered bytes, dropped bytes, report lines) of one run."""
    d = tmp_path / name
    d.mkdir()
    rc, _, err = tcsim_run(capsys, program, "-r", capture, "-o", d / "out.pcap",
                           "--drops", d / "drops.pcap", "--report", d / "r.jsonl", "-q",
                           *options)
    assert (rc, err) == (0, [])
    lines = (d / "r.jsonl").read_text().splitlines()
    return (d / "out.pcap").read_bytes(), (d / "drops.pcap").read_bytes(), lines


# --- the Toeplitz hash: Microsoft's RSS verification suite --------------------------------

@pytest.mark.parametrize("src, sport, dst, dport, with_ports, addresses_only", [
    ("66.9.149.187", 2794, "161.142.100.80", 1766, 0x51ccc178, 0x323e8fc2),
    ("199.92.111.2", 14230, "65.69.140.83", 4739, 0xc626b0ea, 0xd718262a),
    ("24.19.198.95", 12898, "12.22.207.184", 38024, 0x5c2b394a, 0xd2d0a5de),
    ("38.27.205.30", 48228, "209.142.163.6", 2217, 0xafc7327f, 0x82989176),
    ("153.39.163.191", 44251, "202.188.127.2", 1303, 0x10e828a2, 0x5d1809c5),
])
def test_the_rss_hash_of_ipv4_is_the_specifications_toeplitz_hash(src, sport, dst, dport,
                                                                  with_ports, addresses_only):
    tcp = bytes(Ether() / IP(src=src, dst=dst) / TCP(sport=sport, dport=dport))
    icmp = bytes(Ether() / IP(src=src, dst=dst) / ICMP())
    assert (hex(tcreplay.frame_rss_hash(tcp)), hex(tcreplay.frame_rss_hash(icmp))) == \
        (hex(with_ports), hex(addresses_only))


def test_the_rss_hash_of_ipv6_is_the_specifications_toeplitz_hash():
    src, dst = "3ffe:2501:200:1fff::7", "3ffe:2501:200:3::1"
    tcp = bytes(Ether() / IPv6(src=src, dst=dst) / TCP(sport=2794, dport=1766))
    icmp = bytes(Ether() / IPv6(src=src, dst=dst, nh=58) / b"\x80\x00\x00\x00")
    assert (hex(tcreplay.frame_rss_hash(tcp)), hex(tcreplay.frame_rss_hash(icmp))) == \
        (hex(0x40207d3d), hex(0x2cc18cd5))


def test_the_rss_hash_skips_a_vlan_tag_and_ignores_fragments_ports():
    plain = bytes(Ether() / IP(src="1.2.3.4", dst="5.6.7.8") / UDP(sport=1, dport=2))
    tagged = bytes(Ether() / Dot1Q(vlan=9) / IP(src="1.2.3.4", dst="5.6.7.8") / UDP(sport=1, dport=2))
    fragment = bytes(Ether() / IP(src="1.2.3.4", dst="5.6.7.8", flags="MF") / UDP(sport=1, dport=2))
    bare = bytes(Ether() / IP(src="1.2.3.4", dst="5.6.7.8", proto=47))
    assert tcreplay.frame_rss_hash(tagged) == tcreplay.frame_rss_hash(plain)
    assert tcreplay.frame_rss_hash(fragment) == tcreplay.frame_rss_hash(bare)


# --- the same results as one CPU -----------------------------------------------------------

@pytest.mark.parametrize("program, options", [
    (MARK_BY_PORT, ()), (NAT4, ("--hook", "egress")), (NAT4, ("--hook", "ingress")),
], ids=["mark_by_port", "nat4-egress", "nat4-ingress"])
def test_two_cpus_give_one_cpus_outputs_and_report_for_a_stateless_program(
        tmp_path, capsys, capture, program, options):
    one = _replay(capsys, tmp_path, "one", program, capture, "--cpus", "1", *options)
    two = _replay(capsys, tmp_path, "two", program, capture, "--cpus", "2", *options)
    assert one[0] == two[0] and one[1] == two[1]
    assert [json.loads(a) for a in one[2]] == [json.loads(b) for b in two[2]]


@pytest.mark.parametrize("program, options", [
    (MARK_BY_PORT, ()), (NAT4, ("--hook", "egress")),
], ids=["mark_by_port", "nat4-egress"])
def test_two_cpus_give_one_cpus_pcapng_and_annotated_outputs(tmp_path, capsys, program,
                                                               options):
    # pcapng in, pcapng out: the interface blocks and each packet's options come through
    frames = _frames()
    pcapio.write(tmp_path / "in.pcapng", [(1_700_000_000 * 10**9 + k * 1000, f, len(f))
                                          for k, f in enumerate(frames)])
    runs = []
    for cpus in (1, 2):
        d = tmp_path / str(cpus)
        d.mkdir()
        rc, _, err = tcsim_run(capsys, program, "-r", tmp_path / "in.pcapng",
                               "-o", d / "out.pcapng", "--drops", d / "drops.pcapng",
                               "--annotated", d / "a.pcapng", "--report", d / "r.jsonl", "-q",
                               "--cpus", cpus, *options)
        assert (rc, err) == (0, [])
        runs.append({name: (d / name).read_bytes()
                     for name in ("out.pcapng", "drops.pcapng", "a.pcapng", "r.jsonl")})
    assert len(runs[0]["r.jsonl"].splitlines()) == len(frames)
    assert runs[0].keys() == runs[1].keys()
    for name in runs[0]:
        assert (name, runs[0][name]) == (name, runs[1][name])


# mark = bpf_ktime_get_ns (low 32 bits)
KTIME_MARK = "r6 = r1\ncall 5\n*(u32 *)(r6 + 8) = r0\nr0 = 0\nexit\n"


def _cooked_capture(path):
    """A Linux cooked (SLL) capture of _frames()' packets with their times going back
    now and then, and frames that never reach tc among them: shorter than the cooked
    header, and an 802.1Q frame cut off after its tag (skb_vlan_untag frees it)."""
    ts, data = [], []
    for k, f in enumerate(_frames()):
        data.append(struct.pack("!HHH8s", 0, 1, 6, f[6:12] + bytes(2)) + f[12:])
        ts.append(1_700_000_000 * 10**9 + k * 1000 - (50_000 if k % 7 == 3 else 0))
        if k % 97 == 5:
            data.append(bytes(10))
            ts.append(ts[-1])
        if k % 89 == 6:
            data.append(struct.pack("!HHH8sH", 0, 1, 6, bytes(8), 0x8100) + b"\x00\x05")
            ts.append(ts[-1])
    path.write_bytes(pcapio.packets_bytes(ts, data, [len(d) for d in data], linktype=113))


def test_two_cpus_give_one_cpus_outputs_for_a_cooked_capture_and_frames_tc_never_sees(
        tmp_path, capsys, monkeypatch):
    # chunks of 4 KiB: the capture clock carries over from chunk to chunk
    monkeypatch.setattr(pcapio, "CHUNK", 4096)
    _cooked_capture(tmp_path / "in.pcap")
    (tmp_path / "ktime.s").write_text(KTIME_MARK)
    runs = []
    for cpus in (1, 2):
        d = tmp_path / str(cpus)
        d.mkdir()
        rc, _, err = tcsim_run(capsys, tmp_path / "ktime.s", "-r", tmp_path / "in.pcap",
                               "-o", d / "out.pcap", "--drops", d / "drops.pcap",
                               "--report", d / "r.jsonl", "-q", "--cpus", cpus)
        report = [read_line(line) for line in (d / "r.jsonl").read_text().splitlines()]
        runs.append((rc, err, (d / "out.pcap").read_bytes(), (d / "drops.pcap").read_bytes(),
                     report))
    assert runs[0] == runs[1]
    actions = Counter(r["action"] for r in runs[1][4])
    assert actions["fault"] == 7 and actions["dropped_before_tc"] == 7
    assert len(runs[1][1]) == 7         # one line for each frame too short for its header
    assert len({r["mark"] for r in runs[1][4]}) > 500


def _output_alone(capsys, tmp_path, program, capture, cpus):
    """(stderr lines, -o's bytes, the --json summary less its times) of a run whose only
    output is -o: each chunk written whole once every CPU replayed it."""
    out = tmp_path / f"{Path(program).stem}-{cpus}.pcap"
    rc, text, err = tcsim_run(capsys, program, "-r", capture, "-o", out, "--json",
                              "--cpus", cpus)
    summary = json.loads(text) if rc == 0 else None
    for key in ("wall_time", "packets_per_second"):
        if summary:
            summary.pop(key)
    return rc, err, out.read_bytes() if out.exists() else None, summary


@pytest.mark.parametrize("program", [NAT4, MARK_BY_PORT, "redirect"],
                         ids=["nat4", "mark_by_port", "redirect_by_len"])
def test_cpus_with_only_o_write_one_cpus_output_and_summary(tmp_path, capsys, monkeypatch,
                                                           capture, program):
    # chunks of 4 KiB: many chunks, each written whole; a redirected packet is counted
    # from its Done record
    monkeypatch.setattr(pcapio, "CHUNK", 4096)
    if program == "redirect":
        program = tmp_path / "redirect.s"
        program.write_text(REDIRECT_BY_LEN)
    one = _output_alone(capsys, tmp_path, program, capture, 1)
    assert one[:2] == (0, []) and one[2]
    assert _output_alone(capsys, tmp_path, program, capture, 2) == one
    assert _output_alone(capsys, tmp_path, program, capture, 4) == one


# the capture's packets from the 447th on are the first over 500 bytes: its first
# chunks are all delivered unchanged, later ones not
DROP_LONG = """\
r2 = *(u32 *)(r1 + 0)
r0 = 0
if r2 < 500 goto out
r0 = 2
out:
exit
"""
TRIM_LONG = """\
r2 = *(u32 *)(r1 + 0)
if r2 < 500 goto out
r2 -= 4
r3 = 0
call 38
out:
r0 = 0
exit
"""


@pytest.mark.parametrize("program", [DROP_LONG, TRIM_LONG], ids=["drop", "trim"])
def test_cpus_with_only_o_write_one_cpus_output_when_later_chunks_change_their_packets(
        tmp_path, capsys, monkeypatch, capture, program):
    """Chunks whose packets are all delivered as long as captured (each record written
    where the capture has it), then chunks with packets dropped or cut (written from
    the records moved aside, and the rest as before)."""
    monkeypatch.setattr(pcapio, "CHUNK", 4096)
    lengths = [len(f) for f in _frames()]
    assert max(lengths[:440]) < 500 <= max(lengths)
    (tmp_path / "prog.s").write_text(program)
    one = _output_alone(capsys, tmp_path, tmp_path / "prog.s", capture, 1)
    assert one[:2] == (0, []) and len(one[2]) < capture.stat().st_size
    assert _output_alone(capsys, tmp_path, tmp_path / "prog.s", capture, 2) == one
    assert _output_alone(capsys, tmp_path, tmp_path / "prog.s", capture, 3) == one


def test_cpus_with_only_o_write_one_cpus_output_of_a_cooked_capture(tmp_path, capsys,
                                                                   monkeypatch):
    """Frames built from another linktype and frames that never reach tc (counted from
    their Done records), with only -o."""
    monkeypatch.setattr(pcapio, "CHUNK", 4096)
    _cooked_capture(tmp_path / "in.pcap")
    one = _output_alone(capsys, tmp_path, NAT4, tmp_path / "in.pcap", 1)
    assert one[0] == 0 and one[3]["actions"]["dropped_before_tc"] == 7
    assert _output_alone(capsys, tmp_path, NAT4, tmp_path / "in.pcap", 2) == one


def test_cpus_with_only_o_count_the_packets_captured_short_as_one_cpu_does(
        tmp_path, capsys, monkeypatch):
    """Packets captured shorter than on the wire, a few of them too short to reach tc:
    with only -o each CPU counts those it replayed and the writing the others, and the
    summary's count is one CPU's."""
    monkeypatch.setattr(pcapio, "CHUNK", 4096)
    ts, data, wire = [], [], []
    for k, f in enumerate(_frames(300)):
        ts.append(k * 1000)
        data.append(f[:54] if k % 3 == 0 else f)
        wire.append(len(f))
        if k % 50 == 7:
            ts.append(k * 1000)
            data.append(f[:10])
            wire.append(len(f))
    short = sum(len(d) < w for d, w in zip(data, wire))
    (tmp_path / "in.pcap").write_bytes(pcapio.packets_bytes(ts, data, wire))
    runs = []
    for cpus in (1, 2, 3):
        out = tmp_path / f"out-{cpus}.pcap"
        rc, _, err = tcsim_run(capsys, NAT4, "-r", tmp_path / "in.pcap", "-o", out,
                               "--cpus", cpus)
        # the summary's line but its packets/s, and the line of the packets cut short
        runs.append((rc, [line.rsplit(";", 1)[0] for line in err[-2:]], out.read_bytes()))
    assert runs[0][1][1].startswith(f"tcsim: {short} packets were captured shorter"), runs[0]
    assert runs[1] == runs[0] and runs[2] == runs[0]


def test_cpus_with_only_o_refuse_a_time_pcap_cannot_hold_as_one_cpu_does(tmp_path, capsys):
    """A delivered packet whose time is past pcap's 32-bit seconds: its chunk is written
    from the Done records, and the run fails with one CPU's words."""
    frames = _frames(40)
    ts = [k * 1000 for k in range(40)]
    ts[30] = (1 << 32) * 10**9
    pcapio.write(tmp_path / "in.pcapng", list(zip(ts, frames, map(len, frames))))
    runs = [_output_alone(capsys, tmp_path, MARK_BY_PORT, tmp_path / "in.pcapng", cpus)[:2]
            for cpus in (1, 2)]
    assert runs[0] == runs[1] and runs[0][0] == 1, runs
    assert "past what pcap's 32-bit seconds hold" in runs[0][1][0]


# bpf_redirect by skb->len: len & 3 == 3 delivered, else to ifindex 4 + (len & 1), to its
# ingress when len & 3 == 2
REDIRECT_BY_LEN = """\
r2 = *(u32 *)(r1 + 0)
r0 = 0
r3 = r2
r3 &= 3
if r3 == 3 goto out
r1 = r2
r1 &= 1
r1 += 4
r2 = r3
r2 >>= 1
call 23
out:
exit
"""


def _outputs(capsys, tmp_path, name, program, capture, *options):
    """(its stderr lines, {file: bytes} of every output) of one run: -o, --drops,
    --annotated, --report and the --redirect-dir captures."""
    d = tmp_path / name
    d.mkdir()
    rc, _, err = tcsim_run(capsys, program, "-r", capture, "-o", d / "out.pcap",
                           "--drops", d / "drops.pcap", "--annotated", d / "a.pcapng",
                           "--report", d / "r.jsonl", "--redirect-dir", d / "rd", "-q",
                           *options)
    assert rc == 0
    return err, {str(f.relative_to(d)): f.read_bytes() for f in sorted(d.rglob("*"))
                 if f.is_file()}


@pytest.mark.parametrize("linktype", ["ethernet", "cooked"])
def test_two_cpus_write_one_cpus_redirect_captures_and_annotated_records(tmp_path, capsys,
                                                                         capture, linktype):
    if linktype == "cooked":
        capture = tmp_path / "in.pcap"
        _cooked_capture(capture)
    (tmp_path / "redirect.s").write_text(REDIRECT_BY_LEN)
    err_one, one = _outputs(capsys, tmp_path, "one", tmp_path / "redirect.s", capture,
                            "--cpus", "1")
    err_two, two = _outputs(capsys, tmp_path, "two", tmp_path / "redirect.s", capture,
                            "--cpus", "2")
    assert err_two == err_one
    redirects = sorted(name for name in one if name.startswith("rd/"))
    assert redirects == ["rd/ifindex-4-ingress.pcap", "rd/ifindex-4.pcap",
                         "rd/ifindex-5.pcap"]
    assert sorted(two) == sorted(one)
    for name in one:
        assert (name, one[name]) == (name, two[name])


# by the frame's 30th byte (an IPv4 source's last) & 3: 0 bpf_trace_printk("hi"), 1 two
# clones (bpf_clone_redirect to 7, to 8's ingress), 2 a fault (a read far past the
# packet), 3 TC_ACT_SHOT
EXTRAS_BY_BYTE = """\
r6 = r1
r2 = *(u32 *)(r6 + 0x4c)
r2 = *(u8 *)(r2 + 29)
r2 &= 3
if r2 == 0 goto printk
if r2 == 1 goto clone
if r2 == 2 goto fault
r0 = 2
exit
printk:
r2 = 0x6968
*(u32 *)(r10 - 8) = r2
r1 = r10
r1 += -8
r2 = 3
call 6
r0 = 0
exit
clone:
r1 = r6
r2 = 7
r3 = 0
call 13
r1 = r6
r2 = 8
r3 = 1
call 13
r0 = 0
exit
fault:
r2 = *(u32 *)(r6 + 0x4c)
r3 = *(u8 *)(r2 + 2000)
r0 = 0
exit
"""


def _records(data):
    """The (time, bytes) of a pcap or pcapng capture's packets, as dpkt reads them."""
    reader = (dpkt.pcapng.Reader if data[:4] == b"\x0a\x0d\x0d\x0a" else
              dpkt.pcap.Reader)(io.BytesIO(data))
    return [(ts, bytes(b)) for ts, b in reader]


@pytest.mark.parametrize("linktype", ["ethernet", "cooked"])
def test_two_cpus_write_one_cpus_outputs_of_packets_with_trace_clones_and_faults(
        tmp_path, capsys, capture, linktype):
    # their report lines, --annotated blocks, clones' redirect records and faults'
    # --drops records are written on the replay threads
    if linktype == "cooked":
        capture = tmp_path / "in.pcap"
        _cooked_capture(capture)
    (tmp_path / "extras.s").write_text(EXTRAS_BY_BYTE)
    err_one, one = _outputs(capsys, tmp_path, "one", tmp_path / "extras.s", capture,
                            "--cpus", "1", "--no-verify")
    err_two, two = _outputs(capsys, tmp_path, "two", tmp_path / "extras.s", capture,
                            "--cpus", "2", "--no-verify")
    assert [line.replace("/two/", "/one/") for line in err_two] == err_one
    assert sorted(two) == sorted(one) == ["a.pcapng", "drops.pcap", "out.pcap", "r.jsonl",
                                          "rd/ifindex-7.pcap", "rd/ifindex-8-ingress.pcap"]
    for name in one:
        assert (name, one[name]) == (name, two[name])
    report = [read_line(line) for line in two["r.jsonl"].splitlines()]
    actions = Counter(r["action"] for r in report)
    assert actions["fault"] > 50 and actions["dropped"] > 50
    assert sum(r["trace_printk"] == ["hi"] for r in report) > 50
    cloned = [r for r in report if r["clones"]]
    # dpkt reads every capture: each clone in its redirect capture, each fault and drop
    # in --drops, every packet twice in --annotated
    assert len(_records(two["rd/ifindex-7.pcap"])) == len(cloned) > 50
    assert len(_records(two["rd/ifindex-8-ingress.pcap"])) == len(cloned)
    assert len(_records(two["drops.pcap"])) == actions["fault"] + actions["dropped"] + \
        actions["dropped_before_tc"]
    assert len(_records(two["a.pcapng"])) == 2 * len(report)


def _cooked_capture_cpus(cpus):
    """The CPU whose thread answers for each packet of _cooked_capture() in turn: the
    one RSS steers it to, or, for a frame that never reaches tc, the one that steers
    it (CPU 0, which writes, steers none; packet k is CPU 1 + k % (cpus - 1)'s)."""
    out = []
    for k, f in enumerate(_frames()):
        out.append((tcreplay.frame_rss_hash(f) & 127) % cpus)
        for never in (k % 97 == 5, k % 89 == 6):
            if never:
                out.append(1 + len(out) % (cpus - 1))
    return out


def test_two_cpus_word_each_packets_extras_on_its_cpus_thread_cpu_0s_on_the_main_one(
        tmp_path, capsys, monkeypatch):
    on_main = {}
    notes = Counter()

    def line(index, *args):
        on_main[index] = threading.current_thread() is threading.main_thread()
        return report_line(index, *args)

    def annotation(*args):
        notes[threading.current_thread() is threading.main_thread()] += 1
        return annotation_notes(*args)
    report_line, annotation_notes = tcsim.report_line, tcsim._annotation_notes
    monkeypatch.setattr(tcsim, "report_line", line)
    monkeypatch.setattr(tcsim, "_annotation_notes", annotation)
    # times since the epoch (the lines of packets without extras are all written in C),
    # frames that never reach tc among them
    _cooked_capture(tmp_path / "in.pcap")
    (tmp_path / "extras.s").write_text(EXTRAS_BY_BYTE)
    _outputs(capsys, tmp_path, "two", tmp_path / "extras.s", tmp_path / "in.pcap",
             "--cpus", "2", "--no-verify")
    cpus = _cooked_capture_cpus(2)
    assert {index: cpus[index] == 0 for index in on_main} == on_main
    assert notes == Counter(on_main.values())
    assert set(on_main.values()) == {False, True} and len(on_main) > 150


def test_cpus_1_is_the_replay_without_the_option(tmp_path, capsys, capture):
    before = _replay(capsys, tmp_path, "none", NAT4, capture, "--hook", "egress")
    one = _replay(capsys, tmp_path, "one", NAT4, capture, "--hook", "egress", "--cpus", "1")
    assert before == one


def test_four_cpus_keep_the_captures_order_in_every_output(tmp_path, capsys, capture):
    one = _replay(capsys, tmp_path, "one", MARK_BY_PORT, capture)
    four = _replay(capsys, tmp_path, "four", MARK_BY_PORT, capture, "--cpus", "4")
    assert one[:2] == four[:2]
    assert [read_line(x)["index"] for x in four[2]] == list(range(len(_frames())))


# --- which CPU a packet runs on -------------------------------------------------------------

def _marks_and_priorities(capsys, tmp_path, capture, *options):
    (tmp_path / "cpu.s").write_text(CPU_AND_HASH)
    *_, lines = _replay(capsys, tmp_path, "run", tmp_path / "cpu.s", capture, *options)
    return [(r["mark"], r["priority"]) for r in map(read_line, lines)]


def test_bpf_get_smp_processor_id_is_the_cpu_rss_steered_the_packet_to(tmp_path, capsys,
                                                                       capture):
    # from a pcap capture, by the hashes its scan took (Scanner.hash_rss)
    got = _marks_and_priorities(capsys, tmp_path, capture, "--cpus", "3")
    want = [(tcreplay.frame_rss_hash(f) & 127) % 3 for f in _frames()]
    assert [cpu for cpu, _ in got] == want
    assert set(want) == {0, 1, 2}


def test_a_pcapng_capture_is_steered_as_the_same_pcap_capture(tmp_path, capsys, capture):
    # pcapng's records hold no hash: the steering takes each one from the frame
    png = tmp_path / "in.pcapng"
    pcapio.write(png, [(k * 1000, f, len(f)) for k, f in enumerate(_frames())])
    (tmp_path / "png").mkdir()
    (tmp_path / "pcap").mkdir()
    assert _marks_and_priorities(capsys, tmp_path / "png", png, "--cpus", "3") == \
        _marks_and_priorities(capsys, tmp_path / "pcap", capture, "--cpus", "3")


def test_steer_hash_picks_the_cpu_as_rps_does_from_the_skbs_flow_hash(tmp_path, capsys,
                                                                      capture):
    got = _marks_and_priorities(capsys, tmp_path, capture, "--cpus", "2", "--steer", "hash")
    assert [cpu for cpu, _ in got] == [(h * 2) >> 32 for _, h in got]
    assert {cpu for cpu, _ in got} == {0, 1}


# --- shared and per-CPU maps -----------------------------------------------------------------

def _dump(capsys, tmp_path, name, capture, *options):
    rc, _, err = tcsim_run(capsys, PROTO_COUNT, "-r", capture, "-q",
                           "--dump-maps", tmp_path / name, *options)
    assert (rc, err) == (0, [])
    return {m: json.loads((tmp_path / name / f"{m}.json").read_text())["entries"]
            for m in ("ethertype_stats", "ipproto_packets")}


def test_shared_counters_updated_atomically_total_the_same_on_two_cpus(tmp_path, capsys):
    # 60,000 packets: both threads add to the same few counters (a hash map's values,
    # inserted with BPF_NOEXIST by whichever CPU sees an EtherType first) all along
    frames = _frames()
    pcapio.write(tmp_path / "many.pcap",
                 [(k * 1000, frames[k % len(frames)], len(frames[k % len(frames)]))
                  for k in range(100 * len(frames))])
    one = _dump(capsys, tmp_path, "one", tmp_path / "many.pcap", "--cpus", "1")
    two = _dump(capsys, tmp_path, "two", tmp_path / "many.pcap", "--cpus", "2")
    stats = {e["key"]: e["value"] for e in one["ethertype_stats"]}
    assert {e["key"]: e["value"] for e in two["ethertype_stats"]} == stats
    assert sum(v["packets"] for v in stats.values()) == 100 * len(frames)


ATOMIC_ADDS = """
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} total SEC(".maps");

SEC("tc")
int add_200(struct __sk_buff *skb)
{
	__u32 zero = 0;
	__u64 *v = bpf_map_lookup_elem(&total, &zero);

	if (!v)
		return TC_ACT_OK;
	for (int i = 0; i < 200; i++)
		__sync_fetch_and_add(v, 1);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
"""


def test_atomic_adds_of_every_cpu_to_one_value_all_count(tmp_path, capsys):
    # both threads add to one array value all along: a lost update would show
    (tmp_path / "adds.o").write_bytes(compile_object(ATOMIC_ADDS))
    frames = _frames()
    pcapio.write(tmp_path / "many.pcap",
                 [(k * 1000, frames[k % len(frames)], len(frames[k % len(frames)]))
                  for k in range(20 * len(frames))])
    rc, _, err = tcsim_run(capsys, tmp_path / "adds.o", "-r", tmp_path / "many.pcap", "-q",
                           "--cpus", "2", "--dump-maps", tmp_path / "maps")
    (entry,) = json.loads((tmp_path / "maps" / "total.json").read_text())["entries"]
    assert (rc, err, entry["value"]) == (0, [], 200 * 20 * len(frames))


PERF_EVENTS = """
struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, 4);
	__uint(value_size, 4);
	__uint(max_entries, 8);
} events SEC(".maps");

SEC("tc")
int emit(struct __sk_buff *skb)
{
	__u32 rec[2] = {skb->len, bpf_get_smp_processor_id()};

	bpf_perf_event_output(skb, &events, BPF_F_CURRENT_CPU, rec, sizeof(rec));
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
"""


def _events(capsys, tmp_path, name, capture, *options):
    rc, _, err = tcsim_run(capsys, tmp_path / "perf.o", "-r", capture, "-q",
                           "--events", tmp_path / f"{name}.jsonl", *options)
    assert (rc, err) == (0, [])
    return [json.loads(line) for line in (tmp_path / f"{name}.jsonl").read_text().splitlines()]


def test_perf_events_of_every_cpu_go_to_its_buffer_and_out_in_packet_order(tmp_path, capsys):
    # 12,000 packets on two threads sending to one perf event array all along
    (tmp_path / "perf.o").write_bytes(compile_object(PERF_EVENTS))
    frames = _frames()
    many = [frames[k % len(frames)] for k in range(20 * len(frames))]
    pcapio.write(tmp_path / "many.pcap", [(k * 1000, f, len(f)) for k, f in enumerate(many)])
    one = _events(capsys, tmp_path, "one", tmp_path / "many.pcap")
    two = _events(capsys, tmp_path, "two", tmp_path / "many.pcap", "--cpus", "2")
    steered = [(tcreplay.frame_rss_hash(f) & 127) % 2 for f in many]
    assert [e["packet"] for e in two] == [e["packet"] for e in one] == list(range(len(many)))
    assert [e["cpu"] for e in two] == steered
    assert [int.from_bytes(bytes.fromhex(e["data"])[4:], "little") for e in two] == steered
    assert [e["data"][:8] for e in two] == [e["data"][:8] for e in one]


def test_a_per_cpu_map_has_one_value_per_simulated_cpu_each_counting_its_packets(
        tmp_path, capsys, capture):
    two = _dump(capsys, tmp_path, "two", capture, "--cpus", "3")
    tcp = next(e["value"] for e in two["ipproto_packets"] if e["key"] == 6)
    frames = [f for f in _frames() if b"\x06" == (f[23:24] if f[12:14] == b"\x08\x00"
                                                 else f[27:28] if f[12:14] == b"\x81\x00"
                                                 else f[20:21])]
    want = [sum(1 for f in frames if (tcreplay.frame_rss_hash(f) & 127) % 3 == c)
            for c in range(3)]
    assert tcp == want


def test_a_per_cpu_map_pinned_for_fewer_cpus_is_refused(tmp_path, capsys, capture):
    tcsim_run(capsys, PROTO_COUNT, "-r", capture, "-q", "--pin-dir", tmp_path, "--cpus", "2")
    rc, _, err = tcsim_run(capsys, PROTO_COUNT, "-r", capture, "-q", "--pin-dir", tmp_path,
                           "--cpus", "3")
    assert (rc, len(err)) == (1, 1)
    assert "the per-CPU map 'ipproto_packets' holds values for 2 CPUs, fewer than the 3" in err[0]


# --- what --cpus refuses ---------------------------------------------------------------------

@pytest.mark.parametrize("options, message", [
    (("--cpus", "0"), "--cpus 0: tcsim simulates 1 to 64 CPUs"),
    (("--cpus", "2", "--kernel-check"), "--kernel-check replays the packets in the "
                                        "capture's order on one CPU"),
    (("--cpus", "2", "--field", "cpu=1"), "--field cpu: with --cpus N the steering picks"),
    (("--steer", "hash",), "--steer applies to several CPUs"),
], ids=["zero", "kernel-check", "field-cpu", "steer-alone"])
def test_options_cpus_cannot_combine_with_are_one_line(capsys, capture, options, message):
    rc, _, err = tcsim_run(capsys, MARK_BY_PORT, "-r", capture, "-q", *options)
    assert rc == 1 and len(err) == 1 and message in err[0]


# --- LRU maps: each simulated CPU's lists ---------------------------------------------------

FLOWS_LRU = """
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(map_flags, BPF_F_NO_COMMON_LRU | BPF_F_ZERO_SEED);
	__uint(max_entries, 16);
	__type(key, __u64);
	__type(value, __u64);
} flows SEC(".maps");

SEC("tc")
int track(struct __sk_buff *skb)
{
	__u64 key = 0, seen = skb->len;

	/* the flow: the IPv4 source address and the two ports */
	if (bpf_skb_load_bytes(skb, 26, &key, 4) || bpf_skb_load_bytes(skb, 34, (char *)&key + 4, 4))
		return TC_ACT_OK;
	bpf_map_update_elem(&flows, &key, &seen, BPF_ANY);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
"""


def _flow_frames(count=400, flows=48, seed=11):
    rnd = random.Random(seed)
    tuples = [(f"10.1.{rnd.randrange(256)}.{rnd.randrange(1, 255)}", rnd.randrange(1024, 65536),
               rnd.choice([53, 80, 443])) for _ in range(flows)]
    return [bytes(Ether() / IP(src=src, dst="192.168.1.1") / UDP(sport=sport, dport=dport)
                  / (b"y" * rnd.randrange(0, 40)))
            for src, sport, dport in (rnd.choice(tuples) for _ in range(count))]


@pytest.mark.parametrize("cpus", [None, 2], ids=["cpu-0", "cpus-2"])
def test_an_lru_map_with_per_cpu_lists_keeps_the_kernels_flows(kernel_oracle, tmp_path,
                                                               capsys, cpus):
    """BPF_F_NO_COMMON_LRU: each CPU evicts from its own share of the map, so with every
    flow steered to one CPU the survivors do not depend on how the CPUs' threads
    interleave: the kernel's, running each packet pinned to the CPU tcsim steered it to
    (without --cpus: CPU 0)."""
    data = compile_object(FLOWS_LRU)
    (tmp_path / "flows.o").write_bytes(data)
    frames = _flow_frames(seed=11 if cpus else 12)     # the kernel's answers: one history each
    pcapio.write(tmp_path / "flows.pcap", [(k * 1000, f, len(f)) for k, f in enumerate(frames)])
    rc, _, err = tcsim_run(capsys, tmp_path / "flows.o", "-r", tmp_path / "flows.pcap", "-q",
                           "--dump-maps", tmp_path / "maps", *(("--cpus", cpus) if cpus else ()))
    assert (rc, err) == (0, [])
    ours = {e["key"] for e in json.loads((tmp_path / "maps" / "flows.json").read_text())["entries"]}
    before = os.sched_getaffinity(0)
    try:
        with kernel_oracle.load_object(data) as kobj:
            prog = kobj.program("track")
            for f in frames:
                os.sched_setaffinity(0, {(tcreplay.frame_rss_hash(f) & 127) % cpus if cpus else 0})
                prog.test_run(f, ctx={})
            theirs = {int.from_bytes(k, "little") for k in kobj.maps["flows"].keys()}
    finally:
        os.sched_setaffinity(0, before)
    count_comparison()
    assert len(ours) < len({f[26:30] + f[34:38] for f in frames})      # some were evicted
    assert (sorted(ours - theirs), sorted(theirs - ours)) == ([], [])


# flows: packets per (source address, source port), each flow steered to one CPU; ports:
# packets per destination port, keys every CPU inserts and adds to; scratch: each packet's
# flow key put in and taken out again (at most one per CPU at a time, so a free list that
# lost an element would soon refuse with -E2BIG); failures: what did not go as planned
FLOW_TABLES = """
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, __u64);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2);
	__type(key, __u64);
	__type(value, __u64);
} scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} failures SEC(".maps");

static void count(void *map, void *key)
{
	__u64 zero = 0, *v = bpf_map_lookup_elem(map, key);
	__u32 k = 0;

	if (!v) {
		/* another CPU may insert it first: -EEXIST, then the lookup finds it */
		bpf_map_update_elem(map, key, &zero, BPF_NOEXIST);
		v = bpf_map_lookup_elem(map, key);
	}
	if (v)
		__sync_fetch_and_add(v, 1);
	else if ((v = bpf_map_lookup_elem(&failures, &k)))
		__sync_fetch_and_add(v, 1);
}

SEC("tc")
int tables(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	__u64 flow, one = 1, *v;
	__u32 port, k = 0;

	if (data + 38 > end)
		return TC_ACT_OK;
	flow = (__u64)*(__u32 *)(data + 26) << 16 | *(__u16 *)(data + 34);
	port = *(__u16 *)(data + 36);
	count(&flows, &flow);
	count(&ports, &port);
	if ((bpf_map_update_elem(&scratch, &flow, &one, BPF_NOEXIST)
	     || bpf_map_delete_elem(&scratch, &flow))
	    && (v = bpf_map_lookup_elem(&failures, &k)))
		__sync_fetch_and_add(v, 1);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
"""


def _tables(path):
    """{map: {key: value}} of a --dump-maps directory (a per-CPU value summed)."""
    return {m: {e["key"]: sum(e["value"]) if isinstance(e["value"], list) else e["value"]
                for e in json.loads((path / f"{m}.json").read_text())["entries"]}
            for m in ("flows", "ports", "scratch", "failures")}


def test_hash_maps_two_cpus_insert_into_and_delete_from_all_along_keep_every_update(
        kernel_oracle, tmp_path, capsys):
    """Each bucket has its own lock (htab_lock_bucket) and the buckets share the free
    list: two CPUs inserting, adding to and deleting keys of the same hash maps for
    40,000 packets lose nothing.  The totals are those of one CPU and 100 times the
    kernel's for one pass of the frames."""
    data = compile_object(FLOW_TABLES)
    (tmp_path / "tables.o").write_bytes(data)
    frames = _flow_frames(count=400, flows=300, seed=13)
    pcapio.write(tmp_path / "many.pcap", [(k * 1000, frames[k % len(frames)],
                                           len(frames[k % len(frames)]))
                                          for k in range(100 * len(frames))])
    runs = {}
    for cpus in (1, 2):
        rc, _, err = tcsim_run(capsys, tmp_path / "tables.o", "-r", tmp_path / "many.pcap",
                               "-q", "--cpus", cpus, "--dump-maps", tmp_path / f"maps{cpus}")
        assert (rc, err) == (0, [])
        runs[cpus] = _tables(tmp_path / f"maps{cpus}")
    with kernel_oracle.load_object(data) as kobj:
        prog = kobj.program("tables")
        for f in frames:
            prog.test_run(f, ctx={})
        kernel = {
            m: {int.from_bytes(k, "little"): 100 * sum(
                int.from_bytes(v[c:c + 8], "little") for c in range(0, len(v), 8))
                for k, v in ((k, kobj.maps[m].lookup(k)) for k in kobj.maps[m].keys())}
            for m in ("flows", "ports", "scratch", "failures")}
    count_comparison()
    assert runs[2] == runs[1]
    assert runs[1] == kernel
    assert (len(kernel["flows"]), kernel["failures"], kernel["scratch"]) == (
        len({f[26:30] + f[34:36] for f in frames}), {0: 0}, {})


def _interfaces_capture(path, frames):
    """A pcapng of three interfaces: Ethernet, raw IP (the frames less their Ethernet
    header) and Ethernet again with a name, whose first packets come late; every third
    packet has a comment, packets of 20-byte-long link headers none."""
    import dpkt
    idb = dpkt.pcapng.InterfaceDescriptionBlockLE
    opt = dpkt.pcapng.PcapngOptionLE
    buf = io.BytesIO()
    w = dpkt.pcapng.Writer(buf, idb=[
        idb(linktype=1, snaplen=65535), idb(linktype=101, snaplen=65535),
        idb(linktype=1, snaplen=65535, opts=[opt(code=2, data=b"eth9"), opt(code=0)])])
    for k, f in enumerate(frames):
        iface = 0 if k < 100 else k % 3
        data = f[14:] if iface == 1 else f
        if iface == 1 and f[12:14] not in (b"\x08\x00", b"\x86\xdd"):
            iface, data = 0, f
        t = 1_700_000_000 * 10**6 + k       # microseconds (no if_tsresol)
        opts = [opt(code=1, data=f"packet {k}".encode()), opt(code=0)] if k % 3 == 0 else []
        w.writepkt(dpkt.pcapng.EnhancedPacketBlockLE(
            pkt_data=data, caplen=len(data), pkt_len=len(data) + k % 2, iface_id=iface,
            ts_high=t >> 32, ts_low=t & 0xffffffff, opts=opts))
    path.write_bytes(buf.getvalue())


def test_two_cpus_write_one_cpus_pcapng_blocks_for_interfaces_of_two_linktypes(
        tmp_path, capsys):
    """The replay threads write the pcapng packet blocks (options kept, each in its
    interface's linktype); the writing puts each interface's block before its first
    packet's, as one CPU does."""
    _interfaces_capture(tmp_path / "in.pcapng", _frames(count=900))
    runs = []
    for cpus in (1, 2):
        d = tmp_path / str(cpus)
        d.mkdir()
        rc, _, err = tcsim_run(capsys, MARK_BY_PORT, "-r", tmp_path / "in.pcapng",
                               "-o", d / "out.pcapng", "--drops", d / "drops.pcapng", "-q",
                               "--cpus", cpus)
        assert (rc, err) == (0, [])
        runs.append(((d / "out.pcapng").read_bytes(), (d / "drops.pcapng").read_bytes()))
    assert runs[0] == runs[1]
    out, drops = (list(dpkt_blocks(b)) for b in runs[1])
    assert Counter(t for t, _ in out)[1] == 3 and Counter(t for t, _ in drops)[6] > 10
    assert any(b"packet 99" in body for t, body in out if t == 6)


def dpkt_blocks(data):
    """(type, body) of each pcapng block."""
    pos = 0
    while pos < len(data):
        kind, length = struct.unpack_from("<II", data, pos)
        yield kind, data[pos + 8:pos + length - 4]
        pos += length
