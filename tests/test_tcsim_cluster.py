"""Many captures on a Dask cluster (pcap/cluster.py): each replayed as one host's
traffic with maps of its own, outputs per capture, one merged summary and report."""
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from pyebpf.pcap import cluster, tcsim
from pyebpf.pcap import report as report_format
from pyebpf.pcap.report import read_line

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PROTO_COUNT = EXAMPLES / "proto_count.o"
CAPTURES = {"a": EXAMPLES / "sample.pcap", "b": EXAMPLES / "https.pcap",
            "c": EXAMPLES / "vlan.pcap"}


@pytest.fixture
def captures(tmp_path):
    d = tmp_path / "caps"
    d.mkdir()
    for stem, src in CAPTURES.items():
        shutil.copy(src, d / f"{stem}.pcap")
    (d / "notes.txt").write_text("not a capture")
    return d


def tcsim_run(capsys, *argv):
    rc = tcsim.main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err.splitlines()


def test_a_directory_gives_its_captures_and_a_glob_its_matches(captures):
    assert cluster.expand([str(captures)]) == [str(captures / f"{s}.pcap") for s in "abc"]
    assert cluster.expand([str(captures / "[ab].pcap"), str(captures / "a.pcap")]) == \
        [str(captures / "a.pcap"), str(captures / "b.pcap")]


def test_a_glob_matching_nothing_is_one_line(capsys, tmp_path):
    rc, _, err = tcsim_run(capsys, PROTO_COUNT, "-r", tmp_path / "*.pcap", "--workers", "2")
    assert rc == 1 and err == [f"tcsim: -r {tmp_path / '*.pcap'}: no capture matches"]


def test_several_captures_without_a_cluster_are_refused(capsys, captures):
    rc, _, err = tcsim_run(capsys, PROTO_COUNT, "-r", captures)
    assert rc == 1 and err == ["tcsim: 3 captures: several are replayed on a Dask cluster, "
                               "give --workers N or --scheduler ADDRESS"]


def test_without_dask_the_error_names_the_extra(capsys, captures, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    rc, _, err = tcsim_run(capsys, PROTO_COUNT, "-r", captures, "--workers", "2")
    assert rc == 1 and err == ["tcsim: --workers and --scheduler need Dask: pip install "
                               "'pyebpf[dask]'"]


def test_a_local_cluster_replays_each_capture_as_tcsim_does_alone(capsys, captures,
                                                                 tmp_path):
    pytest.importorskip("distributed", reason="Dask is not installed (pyebpf[dask])")
    out = tmp_path / "out"
    rc, stdout, err = tcsim_run(capsys, PROTO_COUNT, "-r", captures, "--workers", "2",
                                "-o", out / "delivered", "--dump-maps", out / "maps",
                                "--report", out / "report.jsonl", "--json",
                                "--annotated", out / "annotated")
    assert (rc, err) == (0, [])          # a failed capture says why before its outputs
    merged = json.loads(stdout)
    for stem, src in CAPTURES.items():
        tcsim_run(capsys, PROTO_COUNT, "-r", src, "-q", "-o", tmp_path / f"{stem}.pcap",
                  "--dump-maps", tmp_path / stem, "--annotated", tmp_path / f"{stem}.pcapng",
                  "--report", tmp_path / f"{stem}.jsonl")
        assert (out / "delivered" / f"{stem}.pcap").read_bytes() == \
            (tmp_path / f"{stem}.pcap").read_bytes()
        assert (out / "maps" / stem / "ethertype_stats.json").read_text() == \
            (tmp_path / stem / "ethertype_stats.json").read_text()
        assert (out / "annotated" / f"{stem}.pcapng").read_bytes() == \
            (tmp_path / f"{stem}.pcapng").read_bytes()
    report = [read_line(line) for line in (out / "report.jsonl").read_text().splitlines()]
    assert merged["packets"] == len(report) == sum(p["packets"]
                                                   for p in merged["per_capture"])
    assert [Path(c).stem for c in merged["captures"]] == list(CAPTURES)
    assert [(Path(r["capture"]).stem, r["index"]) for r in report][:2] == [("a", 0), ("a", 1)]
    # each capture's lines as its own replay wrote them, its path first
    assert (out / "report.jsonl").read_text().splitlines() == [
        report_format.with_capture(line, str(captures / f"{stem}.pcap"), "compact")
        for stem in CAPTURES for line in (tmp_path / f"{stem}.jsonl").read_text().splitlines()]


def test_a_local_cluster_leaves_the_callers_environment_as_it_was(capsys, captures,
                                                                  tmp_path):
    pytest.importorskip("distributed", reason="Dask is not installed (pyebpf[dask])")
    before = dict(os.environ)
    rc, _, err = tcsim_run(capsys, PROTO_COUNT, "-r", captures, "--workers", "1",
                           "-q", "-o", tmp_path / "delivered")
    assert (rc, err) == (0, [])
    changed = {name: (before.get(name), os.environ.get(name))
               for name in set(before) | set(os.environ)
               if before.get(name) != os.environ.get(name)}
    assert changed == {}, f"(before, after) of each variable the cluster changed: {changed}"


def test_pin_dir_is_refused_on_a_cluster(capsys, captures, tmp_path):
    rc, _, err = tcsim_run(capsys, PROTO_COUNT, "-r", captures, "--workers", "2",
                           "--pin-dir", tmp_path)
    assert rc == 1 and err == ["tcsim: --pin-dir shares maps between runs; on a cluster "
                               "each capture has maps of its own"]
