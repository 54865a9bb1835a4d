"""``tcsim diff`` (pcap/diff.py) on two versions of the NAT example: examples/nat4_v2.c
translates to 203.0.113.2 instead of .1 and drops ICMP from inside instead of
translating it."""
import io
import json
import sys
from pathlib import Path

import dpkt
import pytest

from pyebpf.pcap import pcapio, tcsim

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SAMPLE = EXAMPLES / "sample.pcap"
OLD, NEW = EXAMPLES / "nat4.o", EXAMPLES / "nat4_v2.o"
INSIDE = [10, 11, 12, 14]       # sample.pcap's packets from 10.0.0.0/8; 12 is ICMP


def diff(capsys, *argv):
    rc = tcsim.main(["diff", *map(str, argv)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def frames_of(path):
    return [bytes(b) for _, b in dpkt.pcap.Reader(io.BytesIO(Path(path).read_bytes()))]


def test_two_versions_differ_in_the_packets_the_change_touches(capsys):
    rc, out, _ = diff(capsys, OLD, NEW, "-r", SAMPLE, "--json", "--hook", "egress")
    got = json.loads(out)
    assert (rc, got["packets"], got["differing"]) == (1, 24, len(INSIDE))
    assert {k: v["packets"] for k, v in got["kinds"].items()} == {"verdict": 1,
                                                                 "bytes": len(INSIDE)}
    assert got["kinds"]["verdict"]["examples"] == [
        {"capture": str(SAMPLE), "index": 12, "old": "TC_ACT_OK (delivered)",
         "new": "TC_ACT_SHOT (dropped)"}]
    assert [e["index"] for e in got["kinds"]["bytes"]["examples"]] == INSIDE[:3]


def test_a_program_against_itself_differs_nowhere(capsys):
    rc, out, _ = diff(capsys, OLD, OLD, "-r", SAMPLE, "--json")
    got = json.loads(out)
    assert (rc, got["differing"], got["kinds"]) == (0, 0, {})


def test_the_differing_packets_are_written_as_each_side_left_them(tmp_path, capsys):
    diff(capsys, OLD, NEW, "-r", SAMPLE, "--old-out", tmp_path / "old.pcap",
         "--new-out", tmp_path / "new.pcap")
    old, new = frames_of(tmp_path / "old.pcap"), frames_of(tmp_path / "new.pcap")
    sources = [dpkt.ethernet.Ethernet(f).data.src for f in old]
    assert len(old) == len(new) == len(INSIDE)
    assert sources[:2] == [bytes([203, 0, 113, 1])] * 2
    assert [dpkt.ethernet.Ethernet(f).data.src for f in new[:2]] == [bytes([203, 0, 113, 2])] * 2
    assert new[2] == frames_of(SAMPLE)[12]      # dropped by v2 before any rewrite


def test_the_text_report_lists_kinds_with_counts_and_examples(capsys):
    rc, out, _ = diff(capsys, OLD, NEW, "-r", SAMPLE, "--examples", "1")
    lines = out.splitlines()
    assert rc == 1
    assert lines[0] == (f"tcsim diff: 24 packets, 4 treated differently by {NEW} than by "
                        f"{OLD}")
    assert lines[1:3] == ["  verdict: 1 packets",
                          f"    {SAMPLE} packet 12: TC_ACT_OK (delivered) -> TC_ACT_SHOT "
                          "(dropped)"]
    assert lines[3] == "  bytes: 4 packets" and len(lines) == 5


def test_several_captures_are_each_replayed_with_fresh_maps(capsys, tmp_path):
    (tmp_path / "again.pcap").write_bytes(SAMPLE.read_bytes())
    _, out, _ = diff(capsys, OLD, NEW, "-r", SAMPLE, "-r", tmp_path / "again.pcap", "--json")
    got = json.loads(out)
    assert (got["packets"], got["differing"]) == (48, 2 * len(INSIDE))


@pytest.mark.parametrize("argv, message", [
    (["nope.o", NEW, "-r", SAMPLE], "tcsim diff: nope.o: no such program file"),
    ([OLD, NEW, "-r", "missing.pcap"], "tcsim diff: missing.pcap: cannot read"),
], ids=["program", "capture"])
def test_an_error_is_one_line_and_exit_status_2(capsys, argv, message):
    rc, _, err = diff(capsys, *argv)
    assert rc == 2 and err.count("\n") == 1 and err.startswith(message)


def test_a_bytes_difference_names_the_header_fields_each_side_wrote(capsys):
    _, out, _ = diff(capsys, OLD, NEW, "-r", SAMPLE, "--json", "--examples", "1")
    (example,) = json.loads(out)["kinds"]["bytes"]["examples"]
    assert (example["old"], example["new"]) == (
        "ipv4.csum 0x2c4; ipv4.src 203.0.113.1; tcp.csum 0xc4c3",
        "ipv4.csum 0x2c3; ipv4.src 203.0.113.2; tcp.csum 0xc4c2")


def test_two_profiles_of_one_program_differ_where_the_kernels_did(capsys, tmp_path):
    """4.6's cls_bpf had no TC_ACT_TRAP: 8 was UNSPEC, the packet went on."""
    (tmp_path / "trap.s").write_text("r0 = 8\nexit\n")
    rc, out, _ = diff(capsys, tmp_path / "trap.s", tmp_path / "trap.s", "-r", SAMPLE,
                      "--old-profile", "4.6", "--json", "--examples", "1")
    got = json.loads(out)
    assert (rc, got["differing"]) == (1, 24)
    (example,) = got["kinds"]["verdict"]["examples"]
    assert (example["old"], example["new"]) == ("TC_ACT_UNSPEC (delivered)",
                                                "TC_ACT_TRAP (consumed)")


def _without_time(out):
    got = json.loads(out)
    del got["wall_time"]
    return got


def test_a_capture_read_in_many_chunks_gives_the_same_diff(capsys, monkeypatch, tmp_path):
    sample = pcapio.read(SAMPLE)
    big = tmp_path / "big.pcap"
    pcapio.write(big, [(t, f, w) for _ in range(1000)
                       for t, f, w in zip(sample.ts, sample.frames, sample.orig_len)])
    _, whole, _ = diff(capsys, OLD, NEW, "-r", big, "--json", "--hook", "egress")
    monkeypatch.setattr(pcapio, "CHUNK", 256)       # a chunk: 256 bytes and a block
    with pcapio.Source(str(big)) as source:
        assert len(list(source.chunks())) > 3
    _, chunked, _ = diff(capsys, OLD, NEW, "-r", big, "--json", "--hook", "egress")
    assert _without_time(chunked) == _without_time(whole)
    assert json.loads(whole)["differing"] == 1000 * len(INSIDE)


def test_two_cpus_give_one_cpus_diff(capsys, tmp_path):
    _, one, _ = diff(capsys, OLD, NEW, "-r", SAMPLE, "--json", "--old-out",
                     tmp_path / "o1.pcap", "--new-out", tmp_path / "n1.pcap")
    _, two, _ = diff(capsys, OLD, NEW, "-r", SAMPLE, "--json", "--cpus", "2", "--old-out",
                     tmp_path / "o2.pcap", "--new-out", tmp_path / "n2.pcap")
    assert _without_time(two) == _without_time(one)
    assert frames_of(tmp_path / "o2.pcap") == frames_of(tmp_path / "o1.pcap")
    assert frames_of(tmp_path / "n2.pcap") == frames_of(tmp_path / "n1.pcap")


def test_a_local_cluster_gives_one_process_diff(capsys, tmp_path):
    pytest.importorskip("distributed", reason="Dask is not installed (pyebpf[dask])")
    captures = tmp_path / "caps"
    captures.mkdir()
    for name in ("sample", "https", "vlan"):
        (captures / f"{name}.pcap").write_bytes((EXAMPLES / f"{name}.pcap").read_bytes())
    runs = {}
    for where, extra in (("alone", []), ("cluster", ["--workers", "2"])):
        _, out, _ = diff(capsys, OLD, NEW, "-r", captures, "--json", "--examples", "5",
                         "--old-out", tmp_path / f"old-{where}.pcap",
                         "--new-out", tmp_path / f"new-{where}.pcap", *extra)
        runs[where] = _without_time(out)
    assert runs["cluster"] == runs["alone"]
    assert runs["alone"]["captures"] == [str(captures / f"{n}.pcap")
                                         for n in ("https", "sample", "vlan")]
    for side in ("old", "new"):
        assert frames_of(tmp_path / f"{side}-cluster.pcap") == \
            frames_of(tmp_path / f"{side}-alone.pcap")


def test_a_cluster_without_dask_is_one_line_naming_the_extra(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    rc, _, err = diff(capsys, OLD, NEW, "-r", SAMPLE, "--workers", "2")
    assert (rc, err) == (2, "tcsim diff: --workers and --scheduler need Dask: pip install "
                            "'pyebpf[dask]'\n")
