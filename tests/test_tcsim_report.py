"""tcsim's report lines (pcap/report.py, tcreplay's _report_line and _compact_line): the
compact format leaves out the keys that hold their default and report.read_line puts
them back, so both formats give a reader the same objects; docs/tcsim.md's table is
the list of keys."""
import json
import re
from pathlib import Path

import pytest
from scapy.all import ICMP, IP, TCP, UDP, Dot1Q, Ether, IPv6, Raw

from pyebpf.pcap import pcapio, report, tcsim

ROOT = Path(__file__).resolve().parent.parent
FRAMES = [bytes(p) for p in (
    Ether() / IP(dst="10.0.0.1") / TCP(dport=80),
    Ether() / IP() / UDP(dport=53) / Raw(b"x" * 80),
    Ether() / IP() / ICMP(),
    Ether() / IPv6() / TCP(dport=443),
)]
# (timestamp, frame, wire length): whole frames, one the capture cut short, one no skb
# can hold, one that cuts off its VLAN tag (dropped before tc; lines Python writes)
RECORDS = [(1_700_000_000_000_000_000 + k * 1_001, f, len(f)) for k, f in enumerate(FRAMES)]
RECORDS += [(1_700_000_001_000_000_000, FRAMES[1][:60], len(FRAMES[1])),
            (1_700_000_001_000_000_500, FRAMES[0][:10], 10),
            (1_700_000_001_000_000_900, bytes(Ether() / Dot1Q())[:16], 16)]
# the skb's length decides: mark 7, priority 3 and TC_ACT_SHOT above 100 bytes, else OK
BY_LENGTH = ("r2 = *(u32 *)(r1 + 0)\nif r2 > 100 goto big\nr0 = 0\nexit\n"
             "big:\nr3 = 7\n*(u32 *)(r1 + 8) = r3\nr3 = 3\n*(u32 *)(r1 + 32) = r3\n"
             "r0 = 2\nexit")
PRINTK = ("r2 = 0x6968\n*(u32 *)(r10 - 8) = r2\nr1 = r10\nr1 += -8\nr2 = 3\ncall 6\n"
          "r0 = 0\nexit")
REDIRECT = "r1 = 4\nr2 = 1\ncall 23\nexit"          # bpf_redirect(4, BPF_F_INGRESS)
GROW = "r2 = 200\nr3 = 0\ncall 38\nr0 = 0\nexit"    # bpf_skb_change_tail(skb, 200, 0)
CLONE = "r2 = 5\nr3 = 0\ncall 13\nr0 = 0\nexit"     # bpf_clone_redirect(skb, 5, 0), OK
FAULT = "r2 = *(u32 *)(r1 + 0x4c)\nr3 = *(u8 *)(r2 + 100)\nr0 = 0\nexit"
# (programs, options) of replays whose lines between them take every key off its default
REPLAYS = {
    "pass": (["r0 = 0\nexit"], []),
    "by-length": ([BY_LENGTH], []),
    "classid": (["r0 = 0x10002\nexit"], ["--no-da"]),
    "no-classid": (["r0 = 0\nexit"], ["--no-da"]),
    "retval-not-a-verdict": (["r0 = 42\nexit"], []),
    "chain": (["r0 = -1\nexit", BY_LENGTH], []),
    "printk": ([PRINTK], ["--classid", "1:3"]),
    "redirect": ([REDIRECT], []),
    "clone": ([CLONE], []),
    "grow": ([GROW], []),
    "fault": ([FAULT], ["--no-verify"]),
    "socket-filter": ([], ["--cbpf", "udp"]),
}


def _replay(tmp_path, name, fmt):
    """The report's lines, as written, of the replay REPLAYS[name] in the format fmt."""
    programs, options = REPLAYS[name]
    paths = []
    for k, text in enumerate(programs):
        (tmp_path / f"p{k}.s").write_text(text)
        paths.append(str(tmp_path / f"p{k}.s"))
    if not (tmp_path / "in.pcap").exists():
        pcapio.write(tmp_path / "in.pcap", RECORDS)
    out = tmp_path / f"{name}-{fmt}.jsonl"
    tcsim.main([*paths, "-r", str(tmp_path / "in.pcap"), "-q", *options,
                "--report", str(out), "--report-format", fmt])
    return out.read_text().splitlines()


@pytest.mark.parametrize("name", REPLAYS)
def test_read_line_gives_a_compact_line_the_object_of_the_full_one(tmp_path, name):
    full = [json.loads(line) for line in _replay(tmp_path, name, "full")]
    assert len(full) == len(RECORDS)
    assert [report.read_line(line) for line in _replay(tmp_path, name, "compact")] == full


@pytest.mark.parametrize("name", REPLAYS)
def test_a_full_line_has_every_key_in_the_documented_order(tmp_path, name):
    for line in _replay(tmp_path, name, "full"):
        assert list(json.loads(line)) == list(report.KEYS)


@pytest.mark.parametrize("name", REPLAYS)
def test_a_compact_line_has_no_spaces_and_no_key_holding_its_default(tmp_path, name):
    for line in _replay(tmp_path, name, "compact"):
        obj = json.loads(line)
        assert json.dumps(obj, separators=(",", ":")) == line
        full = report.read_line(line)
        assert [k for k in obj if k not in report.ALWAYS and obj[k] == report.DEFAULTS[k](full)] \
            == []
        assert set(report.ALWAYS) <= set(obj)


def test_the_replays_take_every_key_off_its_default_somewhere(tmp_path):
    """The equality tests above would not see a key the compact writer mishandles if no
    line of theirs had it off its default."""
    off = set()
    for name in REPLAYS:
        off |= {k for line in _replay(tmp_path, name, "compact") for k in json.loads(line)}
    assert off == set(report.KEYS) - {"timestamp"}


def test_a_compact_line_of_a_packet_that_passed_unchanged_holds_only_the_keys_always_there(
        tmp_path):
    assert _replay(tmp_path, "pass", "compact")[0] == (
        f'{{"index":0,"timestamp_ns":1700000000000000000,"len_in":{len(FRAMES[0])},'
        '"verdict":"TC_ACT_OK","action":"delivered","instructions":2}')


def test_read_line_reads_bytes_and_fills_the_keys_in_the_documented_order():
    line = report.read_line(b'{"index":3,"timestamp_ns":1500000000,"len_in":60,'
                            b'"verdict":"TC_ACT_SHOT","action":"dropped","instructions":5}')
    assert line == {
        "index": 3, "timestamp": 1.5, "timestamp_ns": 1_500_000_000, "len_in": 60,
        "caplen_in": 60, "len_out": 60, "truncated": False, "verdict": "TC_ACT_SHOT",
        "retval": 2, "action": "dropped", "classid": "0:0", "mark": 0, "priority": 0,
        "tc_index": 0, "redirect": None, "clones": [], "trace_printk": [],
        "instructions": 5, "programs_run": 1, "errors": [], "dropped_before_tc": None}
    assert list(line) == list(report.KEYS)


def test_a_line_without_a_key_always_there_is_refused_naming_where_and_which():
    with pytest.raises(ValueError) as info:
        report.read_line('{"index":0,"len_in":60,"action":"fault"}', "r.jsonl:4")
    assert str(info.value) == ("r.jsonl:4: not a tcsim report line: no timestamp_ns, "
                               "verdict, instructions")


def test_a_line_that_is_not_json_is_refused_naming_where():
    with pytest.raises(ValueError, match=r"^r.jsonl:2: not a JSON line: "):
        report.read_line('{"index":0,', "r.jsonl:2")


def test_read_names_the_file_and_line_of_a_bad_line(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text(_replay(tmp_path, "pass", "compact")[0] + "\n[1]\n")
    with pytest.raises(ValueError, match=f"^{re.escape(str(path))}:2: not a tcsim report"):
        report.read(path)


@pytest.mark.parametrize("fmt", report.FORMATS)
def test_with_capture_puts_the_capture_first_and_keeps_the_rest_of_the_line(tmp_path, fmt):
    for line in _replay(tmp_path, "by-length", fmt):
        merged = report.with_capture(line, "/caps/a.pcap", fmt)
        assert merged == json.dumps({"capture": "/caps/a.pcap", **json.loads(line)},
                                    separators=(",", ":") if fmt == "compact" else None)
        assert report.read_line(merged) == {"capture": "/caps/a.pcap",
                                            **report.read_line(line)}


def test_the_docs_table_lists_every_key_of_a_line_in_order():
    text = (ROOT / "docs" / "tcsim.md").read_text()
    section = text[text.index("## The report"):text.index("## Linktypes")]
    rows = re.findall(r"^\| (`[^|]*`) \|", section, re.M)
    assert [k for row in rows for k in re.findall(r"`(\w+)`", row)] == list(report.KEYS)
