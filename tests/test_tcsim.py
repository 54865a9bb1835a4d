"""tcsim: replaying captures through tc program chains (pcap/tcsim.py, pcap/tcreplay.pyx).

Verdict semantics follow the kernel's cls_bpf_classify, tcf_bpf_act and __tcf_classify;
the kernel judges the classifier verdicts of every sample frame where BPF_PROG_TEST_RUN
can show them (it returns the raw r0 only, so the cls_bpf/clsact mapping applied to it
is the one those functions make).
"""
import io
import json
import random
import subprocess
import sys
from pathlib import Path

import dpkt
import pytest

from conftest import child_python
from pktprog import counter
from scapy.all import ARP, ICMP, IP, TCP, UDP, Ether, IPv6, Raw

from pyebpf import asm
from pyebpf import Map, Program
from pyebpf.pcap import pcapio, tcreplay, tcsim
from pyebpf.pcap.report import read_line

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "examples" / "sample.pcap"
VLAN = ROOT / "examples" / "vlan.pcap"

FRAMES = [bytes(p) for p in (
    Ether(dst="02:00:00:00:00:01") / IP(dst="10.0.0.1") / TCP(dport=80),
    Ether() / IP() / UDP(dport=53) / Raw(b"x" * 80),
    Ether() / IP() / ICMP(),
    Ether() / IPv6() / TCP(dport=443),
    Ether() / ARP(),
)]
RET = "r0 = {}\nexit"
REDIRECT = "r1 = {}\nr2 = {}\ncall 23\nexit"           # return bpf_redirect(ifindex, flags)
CLONE = "r2 = {}\nr3 = {}\ncall 13\nr0 = 0\nexit"      # bpf_clone_redirect(skb, ...), OK
FAULT = "r2 = *(u32 *)(r1 + 0x4c)\nr3 = *(u8 *)(r2 + 100)\nr0 = 0\nexit"  # no bounds check


@pytest.fixture
def capture(tmp_path):
    path = tmp_path / "in.pcap"
    pcapio.write(path, [(1_700_000_000_000_000_000 + k * 1000, f, len(f))
                        for k, f in enumerate(FRAMES)])
    return path


@pytest.fixture
def run(tmp_path, capsys):
    """run(programs, *options) -> (exit code, stderr lines, report or None)."""
    def _run(programs, *options, read=None, report=True):
        paths = []
        for k, text in enumerate([programs] if isinstance(programs, str) else programs):
            p = tmp_path / f"prog{k}.s"
            p.write_text(text)
            paths.append(str(p))
        argv = [*paths, "-r", str(read or tmp_path / "in.pcap"), *map(str, options)]
        if report:
            argv += ["--report", str(tmp_path / "report.jsonl")]
        rc = tcsim.main(argv)
        err = capsys.readouterr().err.splitlines()
        rep = tmp_path / "report.jsonl"
        lines = [read_line(line) for line in rep.read_text().splitlines()] \
            if report and rep.exists() else None
        return rc, err, lines
    return _run


def frames_of(path):
    return [bytes(b) for _, b in dpkt.pcap.Reader(io.BytesIO(Path(path).read_bytes()))]


# --- verdicts ------------------------------------------------------------------------

DA_CASES = [  # r0, verdict the hook sees, action
    ("-1", "TC_ACT_UNSPEC", "delivered"), ("0", "TC_ACT_OK", "delivered"),
    ("1", "TC_ACT_UNSPEC", "delivered"), ("2", "TC_ACT_SHOT", "dropped"),
    ("3", "TC_ACT_UNSPEC", "delivered"), ("4", "TC_ACT_STOLEN", "consumed"),
    ("5", "TC_ACT_UNSPEC", "delivered"), ("6", "TC_ACT_UNSPEC", "delivered"),
    ("7", "TC_ACT_REDIRECT", "dropped"), ("8", "TC_ACT_TRAP", "consumed"),
    ("99", "TC_ACT_UNSPEC", "delivered"), ("0x100000002 ll", "TC_ACT_SHOT", "dropped"),
]


@pytest.mark.parametrize("r0, verdict, action", DA_CASES, ids=[c[0] for c in DA_CASES])
def test_direct_action_maps_the_return_value_and_the_hook_acts_on_it(capture, run, tmp_path,
                                                                    r0, verdict, action):
    rc, _, rep = run(RET.format(r0), "-o", tmp_path / "out.pcap", "--drops",
                     tmp_path / "drops.pcap")
    assert rc == 0
    assert {(r["verdict"], r["action"]) for r in rep} == {(verdict, action)}
    assert frames_of(tmp_path / "out.pcap") == (FRAMES if action == "delivered" else [])
    assert frames_of(tmp_path / "drops.pcap") == (FRAMES if action == "dropped" else [])


def test_trap_is_no_verdict_in_the_4_6_profile(capture, run):
    """4.6's cls_bpf had no TC_ACT_TRAP: 8 became UNSPEC (cls_bpf_exec_opcode)."""
    _, _, rep = run(RET.format(8), "--profile", "4.6")
    assert {(r["verdict"], r["action"]) for r in rep} == {("TC_ACT_UNSPEC", "delivered")}


def test_unspec_falls_through_to_the_next_program_of_the_chain(capture, run, tmp_path):
    first = "r2 = 1\n*(u32 *)(r1 + 8) = r2\nr0 = -1\nexit"
    second = "r2 = *(u32 *)(r1 + 8)\nr0 = 0\nif r2 != 1 goto out\nr0 = 2\nout:\nexit"
    _, _, rep = run([first, second], "--drops", tmp_path / "d.pcap")
    assert [(r["action"], r["programs_run"], r["mark"]) for r in rep] == \
        [("dropped", 2, 1)] * len(FRAMES)
    assert frames_of(tmp_path / "d.pcap") == FRAMES


def test_a_decision_ends_the_chain(capture, run):
    _, _, rep = run([RET.format(0), RET.format(2)])
    assert {(r["action"], r["programs_run"]) for r in rep} == {("delivered", 1)}


def test_direct_action_result_classid_is_the_filters_major_and_the_programs_tc_classid(
        capture, run):
    set_minor = "r2 = 7\n*(u32 *)(r1 + 0x48) = r2\nr0 = 0\nexit"
    _, _, rep = run(set_minor, "--classid", "1:0")
    assert {(r["classid"], r["tc_index"]) for r in rep} == {("1:7", 7)}


def test_direct_action_presets_tc_classid_to_the_filters_minor(capture, run):
    read_minor = "r2 = *(u32 *)(r1 + 0x48)\n*(u32 *)(r1 + 8) = r2\nr0 = 0\nexit"
    _, _, rep = run(read_minor, "--classid", "1:5")
    assert {(r["mark"], r["classid"], r["tc_index"]) for r in rep} == {(5, "1:5", 5)}


def test_unspec_leaves_tc_index_alone(capture, run):
    _, _, rep = run(RET.format(-1), "--classid", "1:5", "--field", "tc_index=9")
    assert {r["tc_index"] for r in rep} == {9}


CLASSID_CASES = [  # r0, classid, verdict, tc_index
    ("0", None, "TC_ACT_UNSPEC", 0), ("-1", "1:5", "TC_ACT_OK", 5),
    ("0x10007", "1:7", "TC_ACT_OK", 7), ("2", "0:2", "TC_ACT_OK", 2),
]


@pytest.mark.parametrize("r0, classid, verdict, tc_index", CLASSID_CASES,
                         ids=["0-no-match", "-1-configured", "0x10007", "2-is-a-classid"])
def test_classid_mode_the_return_value_selects_the_class(capture, run, r0, classid, verdict,
                                                         tc_index):
    """Without actions no return value can drop a packet (cls_bpf_classify)."""
    _, _, rep = run(RET.format(r0), "--no-da", "--classid", "1:5")
    assert {(r["classid"], r["verdict"], r["action"], r["tc_index"]) for r in rep} == \
        {(classid, verdict, "delivered", tc_index)}


def test_classid_mode_no_match_tries_the_next_program(capture, run):
    _, _, rep = run([RET.format(0), RET.format(0x20003)], "--no-da")
    assert {(r["classid"], r["programs_run"], r["tc_index"]) for r in rep} == {("2:3", 2, 3)}


ACT_CASES = [  # r0, --act-default, verdict, action
    ("-1", "pipe", "TC_ACT_PIPE", "delivered"), ("-1", "shot", "TC_ACT_SHOT", "dropped"),
    ("-1", "ok", "TC_ACT_OK", "delivered"), ("0", "pipe", "TC_ACT_OK", "delivered"),
    ("2", "pipe", "TC_ACT_SHOT", "dropped"), ("3", "pipe", "TC_ACT_PIPE", "delivered"),
    ("4", "pipe", "TC_ACT_UNSPEC", "delivered"), ("5", "pipe", "TC_ACT_UNSPEC", "delivered"),
    ("6", "pipe", "TC_ACT_UNSPEC", "delivered"), ("8", "pipe", "TC_ACT_UNSPEC", "delivered"),
    ("7", "pipe", "TC_ACT_REDIRECT", "dropped"),
]


@pytest.mark.parametrize("r0, default, verdict, action", ACT_CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in ACT_CASES])
def test_act_bpf_maps_the_return_value(capture, run, r0, default, verdict, action):
    _, _, rep = run(RET.format(r0), "--type", "sched_act", "--act-default", default)
    assert {(r["verdict"], r["action"]) for r in rep} == {(verdict, action)}


def test_act_bpf_pipe_runs_the_next_action(capture, run):
    _, _, rep = run([RET.format(3), RET.format(2)], "--type", "sched_act")
    assert {(r["action"], r["programs_run"]) for r in rep} == {("dropped", 2)}


@pytest.mark.parametrize("profile, runs", [("current", 17), ("4.6", 5)])
def test_reclassify_restarts_the_chain_until_the_loop_limit_then_drops(capture, run,
                                                                       profile, runs):
    """__tcf_classify restarts on RECLASSIFY at most 16 times (4 in 4.6), then SHOT."""
    _, _, rep = run(RET.format(1), "--type", "sched_act", "--profile", profile)
    assert {(r["verdict"], r["action"], r["programs_run"]) for r in rep} == \
        {("TC_ACT_SHOT", "dropped", runs)}


# --- redirects and clones ------------------------------------------------------------

@pytest.mark.parametrize("flags, name", [(0, "ifindex-4.pcap"), (1, "ifindex-4-ingress.pcap")],
                         ids=["egress", "ingress"])
def test_redirect_writes_the_packets_to_the_targets_capture(capture, run, tmp_path, flags,
                                                            name):
    rc, _, rep = run(REDIRECT.format(4, flags), "-o", tmp_path / "out.pcap",
                     "--redirect-dir", tmp_path / "rd")
    assert rc == 0
    assert [p.name for p in (tmp_path / "rd").iterdir()] == [name]
    assert frames_of(tmp_path / "rd" / name) == FRAMES
    assert frames_of(tmp_path / "out.pcap") == []
    assert {json.dumps(r["redirect"]) for r in rep} == \
        {json.dumps({"ifindex": 4, "ingress": bool(flags)})}


def test_redirect_to_a_device_that_does_not_exist_drops(capture, run):
    _, _, rep = run(REDIRECT.format(0, 0))
    assert {(r["action"], r["redirect"]) for r in rep} == {("dropped", None)}


def test_bpf_redirect_without_returning_redirect_delivers(capture, run):
    _, _, rep = run("r1 = 4\nr2 = 0\ncall 23\nr0 = 0\nexit")
    assert {r["action"] for r in rep} == {"delivered"}


def test_clones_go_to_their_targets_capture_and_the_packet_continues(capture, run, tmp_path):
    _, _, rep = run(CLONE.format(3, 1), "-o", tmp_path / "out.pcap",
                    "--redirect-dir", tmp_path / "rd")
    assert frames_of(tmp_path / "rd" / "ifindex-3-ingress.pcap") == FRAMES
    assert frames_of(tmp_path / "out.pcap") == FRAMES
    assert [r["clones"] for r in rep] == [[{"ifindex": 3, "ingress": True, "len": len(f)}]
                                          for f in FRAMES]


# --- bytes, metadata, report ---------------------------------------------------------

REWRITE = """
    r6 = r1
    r2 = *(u32 *)(r6 + 0x4c)
    r3 = *(u32 *)(r6 + 0x50)
    r4 = r2
    r4 += 14
    if r4 > r3 goto push
    r5 = 0x42
    *(u8 *)(r2 + 0) = r5
push:
    r1 = r6
    r2 = 0x81
    r3 = 42
    call 18
    r2 = *(u32 *)(r6 + 0)
    *(u32 *)(r6 + 8) = r2
    r0 = 0
    exit
"""


@pytest.mark.parametrize("hook", ["egress", "ingress"])
def test_the_rewritten_bytes_are_what_program_run_gives(tmp_path, run, hook):
    """Each frame of sample.pcap: the delivered bytes and the mark equal a single
    Program.run with the hook's metadata (ingress: an in-band outer VLAN tag is already
    metadata, as skb_vlan_untag leaves it before tc)."""
    _, _, rep = run(REWRITE, "-o", tmp_path / "out.pcap", "--hook", hook, read=SAMPLE)
    prog = Program.from_asm(REWRITE, "sched_cls")
    want, marks = [], []
    for frame in frames_of(SAMPLE):
        fields = {"ingress": hook == "ingress"}
        if hook == "ingress" and frame[12:14] in (b"\x81\x00", b"\x88\xa8"):
            fields["vlan"] = (int.from_bytes(frame[12:14], "big"),
                              int.from_bytes(frame[14:16], "big"))
            frame = frame[:12] + frame[16:]
        res = prog.run(frame, **fields)
        want.append(res.data)
        marks.append(res.skb.mark)
    assert frames_of(tmp_path / "out.pcap") == want
    assert [r["mark"] for r in rep] == marks


def test_at_ingress_the_outer_vlan_tag_is_metadata_and_returns_on_the_wire(run, tmp_path):
    show = ("r2 = *(u32 *)(r1 + 24)\n*(u32 *)(r1 + 8) = r2\n"
            "r2 = *(u32 *)(r1 + 20)\n*(u32 *)(r1 + 32) = r2\nr0 = 0\nexit")
    frames = frames_of(VLAN)
    tagged = [f[12:14] in (b"\x81\x00", b"\x88\xa8") for f in frames]
    assert any(tagged) and not all(tagged)
    for hook in ("ingress", "egress"):
        _, _, rep = run(show, "-o", tmp_path / "out.pcap", "--hook", hook, read=VLAN)
        assert frames_of(tmp_path / "out.pcap") == frames
        assert [(r["priority"], r["mark"]) for r in rep] == [
            (1, int.from_bytes(f[14:16], "big")) if t and hook == "ingress" else (0, 0)
            for f, t in zip(frames, tagged)]


def test_fields_set_every_packets_metadata(capture, run):
    show = "r2 = *(u32 *)(r1 + 8)\nr3 = *(u32 *)(r1 + 40)\nr2 += r3\n" \
           "*(u32 *)(r1 + 32) = r2\nr0 = 0\nexit"
    _, _, rep = run(show, "--field", "mark=7", "--field", "ifindex=3")
    assert {(r["mark"], r["priority"]) for r in rep} == {(7, 10)}


def test_the_report_has_one_object_per_packet_with_every_field(capture, run):
    printk = ("r2 = 0x6968\n*(u32 *)(r10 - 8) = r2\nr1 = r10\nr1 += -8\nr2 = 3\ncall 6\n"
              "r0 = 0\nexit")
    _, _, rep = run(printk, "--classid", "1:3")
    assert len(rep) == len(FRAMES)
    assert rep[1] == {
        "index": 1, "timestamp": 1_700_000_000.000001, "timestamp_ns": 1_700_000_000_000_001_000,
        "len_in": len(FRAMES[1]), "caplen_in": len(FRAMES[1]), "len_out": len(FRAMES[1]),
        "truncated": False, "verdict": "TC_ACT_OK", "retval": 0, "action": "delivered",
        "classid": "1:3", "mark": 0, "priority": 0, "tc_index": 3, "redirect": None,
        "clones": [], "trace_printk": ["hi"], "instructions": 8, "programs_run": 1,
        "errors": [], "dropped_before_tc": None,
    }


def _capture_times():
    """Capture times in ns: a seeded spread from 1 s to 2**50 s, whole and half seconds,
    times a power of two ns from their neighbours, every ns of a few seconds' starts."""
    rnd = random.Random(13)
    times = [rnd.randrange(10**9, 2**50 * 10**9) for _ in range(20_000)]
    times += [rnd.randrange(1_600_000_000, 1_800_000_000) * 10**9 + rnd.randrange(10**9)
              for _ in range(20_000)]
    times += [s * 10**9 + f for s in (1, 7, 1_700_000_000) for f in range(0, 2000)]
    times += [s * 10**9 + f for s in (1, 3, 2**30, 2**31 - 1) for f in (0, 5 * 10**8)]
    times += [t + d for t in (2**k for k in range(30, 80)) for d in (-1, 0, 1)]
    return times


def test_the_c_report_writer_gives_each_timestamp_as_python_repr_of_its_seconds():
    answered = 0
    for ts in _capture_times():
        text = tcreplay.float_text(ts / 1e9)
        if text is not None:
            assert text == repr(ts / 1e9), ts
            answered += 1
    assert answered > 0.99 * len(_capture_times())


def test_the_c_report_writer_gives_each_capture_time_as_python_repr_of_its_seconds():
    # whole microseconds (what pcap holds) take the writer's short way
    rnd = random.Random(17)
    micro = [rnd.randrange(10**6, 2**33 * 10**6) * 1000 for _ in range(20_000)]
    micro += [rnd.randrange(1_600_000_000, 1_800_000_000) * 10**9 + rnd.randrange(10**6) * 1000
              for _ in range(20_000)]
    micro += [s * 10**9 + f * 1000 for s in (1, 9, 2**32, 2**33 - 1) for f in range(2000)]
    for ts in micro + [t for t in _capture_times() if t < 2**64]:
        text = tcreplay.timestamp_text(ts)
        if text is not None:
            assert text == repr(ts / 1e9), ts
        else:
            assert tcreplay.float_text(ts / 1e9) is None, ts
    assert all(tcreplay.timestamp_text(ts) is not None for ts in micro)


def test_the_c_report_writer_gives_a_capture_s_times_in_turn_as_python_repr_of_their_seconds():
    # one writer's lines in a row: the seconds' digits kept from one time to the next
    rnd = random.Random(23)
    times = sorted(rnd.randrange(1_700_000_000, 1_700_000_020) * 10**9 + rnd.randrange(10**6) * 1000
                   for _ in range(20_000))
    times += [2**20 * 10**9 + f * 1000 for f in range(2000)] + [10**9, 10**9 + 1]
    texts = tcreplay.timestamps_text(times)
    assert [t for t, x in zip(times, texts) if x != repr(t / 1e9)] == []


@pytest.mark.parametrize("seconds", [0.0, 0.5, 1e-9, 2.0**50, 1e16, float("inf")])
def test_the_c_report_writer_leaves_seconds_it_does_not_write_to_python(seconds):
    assert tcreplay.float_text(seconds) is None


# --- the summary line -------------------------------------------------------------------

SET_FIRST_BYTE = """
    r2 = *(u32 *)(r1 + 0x4c)
    r3 = *(u32 *)(r1 + 0x50)
    r4 = r2
    r4 += 1
    if r4 > r3 goto out
    r5 = 2
    *(u8 *)(r2 + 0) = r5
out:
    r0 = 0
    exit
"""


def test_the_summary_counts_the_packets_whose_bytes_the_programs_changed(capture, run):
    """Writing a byte that already holds the value changes nothing."""
    _, err, _ = run(SET_FIRST_BYTE)
    changed = sum(f[0] != 2 for f in FRAMES)
    assert 0 < changed < len(FRAMES)
    assert f"; bytes changed in {changed} packets; " in err[-1]


def test_a_vlan_tag_untagged_at_ingress_and_put_back_is_no_change(run):
    _, err, _ = run(RET.format(0), "--hook", "ingress", read=VLAN)
    assert "; bytes changed in 0 packets; " in err[-1]


def test_the_summary_of_one_packet_is_singular(tmp_path, run):
    pcapio.write(tmp_path / "one.pcap", [(0, FRAMES[0], len(FRAMES[0]))])
    _, err, _ = run(SET_FIRST_BYTE.replace("r5 = 2", "r5 = 3"), read=tmp_path / "one.pcap")
    assert err[-1].startswith(f"tcsim: 1 packet from {tmp_path / 'one.pcap'}: 1 delivered, ")
    assert "; bytes changed in 1 packet; " in err[-1]


def test_the_summary_rate_is_of_the_whole_command_not_the_replay_loop(capture, run,
                                                                      monkeypatch):
    """Loading the program takes 3 s of a clock that stands still otherwise: 5 packets
    give 2 packets/s (5/3, rounded), not a rate of the replay alone."""
    clock = [0]
    load = tcsim.load_program

    def slow_load(*args, **kwargs):
        clock[0] += 3
        return load(*args, **kwargs)

    monkeypatch.setattr(tcsim.time, "perf_counter", lambda: clock[0])
    monkeypatch.setattr(tcsim, "load_program", slow_load)
    _, err, _ = run(RET.format(0), report=False)
    assert err[-1].endswith("; 2 packets/s")


def test_short_captures_are_replayed_as_captured_and_said_so(tmp_path, run):
    pcapio.write(tmp_path / "short.pcap", [(0, FRAMES[1][:40], len(FRAMES[1]))])
    rc, err, rep = run(RET.format(0), "-o", tmp_path / "out.pcap", read=tmp_path / "short.pcap")
    assert rc == 0
    assert (rep[0]["truncated"], rep[0]["caplen_in"], rep[0]["len_in"]) == \
        (True, 40, len(FRAMES[1]))
    assert err[-1] == ("tcsim: 1 packet was captured shorter than on the wire (caplen < len) "
                       "and was replayed as captured")
    reader = dpkt.pcap.Reader(io.BytesIO((tmp_path / "out.pcap").read_bytes()))
    assert [len(b) for _, b in reader] == [40]


def test_a_pcapng_output_holds_the_delivered_packets_with_their_timestamps(capture, run,
                                                                           tmp_path):
    _, _, rep = run(SET_FIRST_BYTE, "-o", tmp_path / "out.pcapng")
    with open(tmp_path / "out.pcapng", "rb") as f:
        assert [bytes(b) for _, b in dpkt.pcapng.Reader(f)] == \
            [b"\x02" + frame[1:] for frame in FRAMES]
    assert pcapio.read(tmp_path / "out.pcapng").ts == [r["timestamp_ns"] for r in rep]


def test_perf_events_are_attributed_to_their_packet():
    m = Map.create("perf_event_array", 4, 4, 1)
    m.open(0)
    prog = Program(asm.assemble(f"""
        r6 = r1
        r2 = *(u32 *)(r6 + 0)
        *(u64 *)(r10 - 8) = r2
        r1 = r6
        r2 = map_fd({m.fd}) ll
        r3 = 0
        r4 = r10
        r4 += -8
        r5 = 8
        call 25
        r0 = 0
        exit"""), "sched_cls")
    cap = pcapio.Capture("x", "pcap", FRAMES, [0] * 5, list(map(len, FRAMES)), [0] * 5)
    replay = tcsim.Replay(cap, [prog])
    assert {i: [(cpu, ev) for _, cpu, ev in e["events"]] for i, e in replay.extras.items()} == \
        {i: [(0, len(f).to_bytes(8, "little"))] for i, f in enumerate(FRAMES)}


# --- errors ----------------------------------------------------------------------------

def test_a_program_fault_drops_that_packet_and_is_reported(capture, run, tmp_path):
    rc, err, rep = run(FAULT, "-o", tmp_path / "out.pcap", "--drops", tmp_path / "d.pcap",
                       "--no-verify")
    short = [k for k, f in enumerate(FRAMES) if len(f) <= 100]
    assert rc == 0 and short and len(short) < len(FRAMES)
    faults = [line for line in err if " faulted at pc " in line]
    assert faults == [f"tcsim: packet {k}: program 1 ({tmp_path / 'prog0.s'}) faulted at pc 1: "
                      + rep[k]["errors"][0]["message"] for k in short]
    assert [r["action"] for r in rep] == ["fault" if k in short else "delivered"
                                          for k in range(len(FRAMES))]
    assert {r["errors"][0]["pc"] for r in rep if r["errors"]} == {1}
    assert frames_of(tmp_path / "d.pcap") == [FRAMES[k] for k in short]


def test_stop_on_error_ends_the_run_with_exit_1_and_no_output(capture, run, tmp_path):
    (tmp_path / "out.pcap").write_bytes(b"previous")
    rc, err, _ = run(FAULT, "-o", tmp_path / "out.pcap", "--stop-on-error", "--no-verify",
                     report=False)
    assert rc == 1
    assert err[-1] == "tcsim: stopped (--stop-on-error); no output written"
    assert (tmp_path / "out.pcap").read_bytes() == b"previous"


def _assert_one_line_error(rc, err, tmp_path, pattern):
    import re
    assert rc == 1
    assert len(err) == 1 and re.match(pattern, err[0]), err
    assert (tmp_path / "out.pcap").read_bytes() == b"previous"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert not (tmp_path / "report.jsonl").exists()


@pytest.mark.parametrize("cut, where", [(20, "truncated pcap file header"),
                                        (24 + 16 + 30, "packet 0 at byte offset 24: truncated "
                                                       "packet data")],
                         ids=["header", "mid-record"])
def test_a_truncated_capture_is_one_line_and_leaves_outputs_alone(capture, run, tmp_path, cut,
                                                                  where):
    capture.write_bytes(capture.read_bytes()[:cut])
    (tmp_path / "out.pcap").write_bytes(b"previous")
    rc, err, _ = run(RET.format(0), "-o", tmp_path / "out.pcap")
    _assert_one_line_error(rc, err, tmp_path, rf"tcsim: {capture}: {where}")


def test_a_capture_of_another_linktype_is_one_line(tmp_path, run):
    buf = io.BytesIO()
    dpkt.pcap.Writer(buf, linktype=105).writepkt(bytes(24), ts=0)
    (tmp_path / "in.pcap").write_bytes(buf.getvalue())
    (tmp_path / "out.pcap").write_bytes(b"previous")
    rc, err, _ = run(RET.format(0), "-o", tmp_path / "out.pcap")
    _assert_one_line_error(rc, err, tmp_path,
                           rf"tcsim: {tmp_path / 'in.pcap'}: linktype 105 is not supported")


@pytest.mark.parametrize("spec, pattern", [
    ("prog.c", r"tcsim: prog.c: unknown program file"),
    ("missing.s", r"tcsim: missing.s: cannot read the program"),
    ("missing.o", r"tcsim: missing.o: no such program file"),
    ("x.s:sec", r"tcsim: x.s:sec: a section or function name applies to .o files only"),
], ids=["unknown-suffix", "missing-asm", "missing-object", "section-on-asm"])
def test_a_bad_program_spec_is_one_line(capture, tmp_path, capsys, spec, pattern):
    import re
    (tmp_path / "out.pcap").write_bytes(b"previous")
    rc = tcsim.main([spec, "-r", str(capture), "-o", str(tmp_path / "out.pcap")])
    err = capsys.readouterr().err.splitlines()
    assert rc == 1 and len(err) == 1 and re.match(pattern, err[0]), err
    assert (tmp_path / "out.pcap").read_bytes() == b"previous"


def test_bad_assembler_is_one_line_naming_the_file(capture, run, tmp_path):
    (tmp_path / "out.pcap").write_bytes(b"previous")
    rc, err, _ = run("r0 = \nexit", "-o", tmp_path / "out.pcap")
    _assert_one_line_error(rc, err, tmp_path, rf"tcsim: {tmp_path / 'prog0.s'}: line 1")


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_an_object_files_program_is_loaded_by_section_or_alone(capture, tmp_path, capsys):
    """drop_icmp.o holds one program: ``file.o`` and ``file.o:tc`` both name it."""
    for spec in (f"{EXAMPLES / 'drop_icmp.o'}:tc", str(EXAMPLES / "drop_icmp.o")):
        assert tcsim.main([spec, "-r", str(EXAMPLES / "sample.pcap"),
                           "--drops", str(tmp_path / "d.pcap")]) == 0
        dropped = frames_of(tmp_path / "d.pcap")
        assert dropped and all(b"\x01" in f[23:24] or f[12:14] == b"\x86\xdd" or
                               f[12:14] == b"\x81\x00" for f in dropped)
    capsys.readouterr()


def test_an_object_with_several_programs_needs_a_name(capture, tmp_path, capsys):
    rc = tcsim.main([str(EXAMPLES / "tail_dispatch.o"), "-r", str(capture)])
    err = capsys.readouterr().err.splitlines()
    assert rc == 1 and len(err) == 1 and "holds 4 programs" in err[0] and "name one as" in err[0]


def test_a_corrupt_object_is_one_line(capture, tmp_path, capsys):
    obj = tmp_path / "p.o"
    obj.write_bytes(b"\x7fELF")
    rc = tcsim.main([f"{obj}:tc", "-r", str(capture)])
    err = capsys.readouterr().err.splitlines()
    assert rc == 1 and err == [f"tcsim: {obj}: not an ELF file (4 bytes, magic 7f454c46)"]


@pytest.mark.parametrize("option, pattern", [
    (["--field", "colour=3"], r"tcsim: --field colour: unknown packet field; known: "),
    (["--field", "mark"], r"tcsim: --field 'mark': expected NAME=VALUE"),
    (["--classid", "x"], r"tcsim: --classid 'x': expected MAJ:MIN"),
    (["--type", "sched_act", "--no-da"], r"tcsim: --no-da \(classid mode\) applies to "),
], ids=["unknown-field", "field-without-value", "bad-classid", "no-da-with-act"])
def test_a_bad_option_is_one_line(capture, run, tmp_path, option, pattern):
    (tmp_path / "out.pcap").write_bytes(b"previous")
    rc, err, _ = run(RET.format(0), "-o", tmp_path / "out.pcap", *option)
    _assert_one_line_error(rc, err, tmp_path, pattern)


# --- end to end, and the kernel as judge ---------------------------------------------

def test_tcsim_command_end_to_end_on_the_sample_capture(tmp_path):
    exe = Path(sys.executable).parent / "tcsim"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "pyebpf.pcap.tcsim"]
    proc = subprocess.run(cmd + [str(ROOT / "examples" / "mark_by_port.s"), "-r", str(SAMPLE),
                                 "-o", str(tmp_path / "out.pcap"), "--report",
                                 str(tmp_path / "r.jsonl")],
                          capture_output=True, text=True, cwd=tmp_path,
                          env=child_python(PYTHONWARNINGS="error")[0])
    assert proc.returncode == 0, proc.stderr
    frames = frames_of(SAMPLE)
    assert proc.stderr.startswith(f"tcsim: {len(frames)} packets from {SAMPLE}: ")
    assert frames_of(tmp_path / "out.pcap") == frames
    rep = [read_line(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    tcp = [f[12:14] == b"\x08\x00" and f[23] == 6 and len(f) >= 54 for f in frames]
    assert [r["mark"] for r in rep] == [
        (1 if int.from_bytes(f[36:38], "big") < 1024 else 2) if t else 0
        for f, t in zip(frames, tcp)]


KERNEL_JUDGED = """
    r0 = -1
    r2 = *(u32 *)(r1 + 0x4c)
    r3 = *(u32 *)(r1 + 0x50)
    r4 = r2
    r4 += 24
    if r4 > r3 goto out
    r0 = *(u8 *)(r2 + 23)
    r5 = *(u8 *)(r2 + 13)
    r0 += r5
    r5 = *(u32 *)(r1 + 0)
    r0 += r5
    r0 %= 11
    r0 -= 1
out:
    exit
"""
DA = {-1: "TC_ACT_UNSPEC", 0: "TC_ACT_OK", 2: "TC_ACT_SHOT", 4: "TC_ACT_STOLEN",
      7: "TC_ACT_REDIRECT", 8: "TC_ACT_TRAP"}
HOOK = {"TC_ACT_UNSPEC": "delivered", "TC_ACT_OK": "delivered", "TC_ACT_SHOT": "dropped",
        "TC_ACT_STOLEN": "consumed", "TC_ACT_TRAP": "consumed", "TC_ACT_REDIRECT": "dropped"}


def test_verdicts_of_every_sample_frame_match_the_kernels_return_value(kernel_oracle, run,
                                                                       tmp_path):
    """The kernel runs the classifier on each frame (BPF_PROG_TEST_RUN: raw r0); the
    direct-action mapping and the clsact hook's action are applied to its r0."""
    frames = frames_of(SAMPLE) + frames_of(ROOT / "examples" / "https.pcap")
    pcapio.write(tmp_path / "all.pcap", [(k, f, len(f)) for k, f in enumerate(frames)])
    _, _, rep = run(KERNEL_JUDGED, "--hook", "egress", read=tmp_path / "all.pcap")
    with kernel_oracle.KernelProgram(asm.assemble(KERNEL_JUDGED), "sched_cls") as kp:
        raw = [kp.test_run(f).retval for f in frames]
    signed = [r - (1 << 32) if r >> 31 else r for r in raw]
    verdicts = [DA.get(r, "TC_ACT_UNSPEC") for r in signed]
    assert len(set(verdicts)) >= 4
    assert [(r["retval"], r["verdict"], r["action"]) for r in rep] == \
        [(r, v, HOOK[v]) for r, v in zip(signed, verdicts)]


def test_a_replay_is_one_transaction_on_the_pinned_maps_it_reaches(tmp_path, monkeypatch):
    """What the chain did to a pinned map is in its pin file when the replay returns."""
    monkeypatch.setenv("PYEBPF_PIN_ROOT", str(tmp_path))
    m = Map.create("array", 4, 8, 1)
    m.pin("count")
    prog = Program(counter(m.fd), "sched_cls")
    cap = pcapio.Capture("x", "pcap", FRAMES, [0] * 5, list(map(len, FRAMES)), [0] * 5)
    tcsim.Replay(cap, [prog])
    env, cwd = child_python()
    out = subprocess.run([sys.executable, "-c", "import pyebpf; print(pyebpf.Map.from_pin("
                          "'count')[bytes(4)].hex())"], capture_output=True, text=True,
                         env=env, cwd=cwd, check=True).stdout
    assert int.from_bytes(bytes.fromhex(out.strip()), "little") == len(FRAMES)


def test_the_replay_loop_is_an_extension_of_its_own_on_the_cores_c_interface():
    from pyebpf import _core
    from pyebpf.pcap import tcreplay
    exported = set(_core.__pyx_capi__)
    assert {"vm_run", "vm_fault", "program_core", "skb_init"} <= exported
    assert tcreplay.__file__ != _core.__file__


# bpf_ktime_get_ns: low 32 bits into mark (r6 keeps the context across the call)
KTIME_TO_MARK = "r6 = r1\ncall 5\n*(u32 *)(r6 + 8) = r0\nr0 = 0\nexit"


def _low32_of_ktime(elapsed_ns):
    from pyebpf import KTIME_START
    return (KTIME_START + elapsed_ns) & 0xFFFFFFFF


def test_programs_read_the_captures_clock_from_its_first_frame_on(capture, run):
    _, _, rep = run(KTIME_TO_MARK)
    # the capture fixture's frames are 1000 ns apart
    assert [r["mark"] for r in rep] == [_low32_of_ktime(k * 1000) for k in range(len(rep))]


def test_the_captures_clock_never_goes_back(tmp_path, run):
    frame = FRAMES[0]
    pcapio.write(tmp_path / "in.pcap", [(5_000, frame, len(frame)), (9_000, frame, len(frame)),
                                        (7_000, frame, len(frame))])
    _, _, rep = run(KTIME_TO_MARK)
    assert [r["mark"] for r in rep] == [_low32_of_ktime(0), _low32_of_ktime(4_000),
                                        _low32_of_ktime(4_000)]


def test_a_ktime_field_sets_every_packets_clock(capture, run):
    _, _, rep = run(KTIME_TO_MARK, "--field", "ktime=12345")
    assert {r["mark"] for r in rep} == {12345}
