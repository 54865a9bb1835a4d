"""The tcsim options a tc user expects: ``--json`` and ``--quiet``, the progress bar,
maps in and out (``--map``, ``--dump-maps``, ``--pin-dir``) and ``--kernel-check``
(pcap/summary.py, pcap/mapfiles.py, pcap/kernelcheck.py)."""
import io
import json
from collections import Counter
from pathlib import Path

import pytest

from scapy.all import ICMP, IP, TCP, UDP, Ether, IPv6

from pyebpf.pcap import kernelcheck, pcapio, summary, tcsim
from pyebpf.pcap.report import read_line

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SAMPLE = EXAMPLES / "sample.pcap"
PROTO_COUNT = EXAMPLES / "proto_count.o"
NAT4 = EXAMPLES / "nat4.o"
SOCKFILTER, HTTPS = EXAMPLES / "sockfilter.o", EXAMPLES / "https.pcap"

FRAMES = [bytes(p) for p in (
    Ether() / IP(src="10.1.2.3") / TCP(dport=80), Ether() / IP() / UDP(dport=53),
    Ether() / IP() / ICMP(), Ether() / IPv6() / TCP(dport=443), Ether() / IP() / TCP())]
# the verdict by the IPv4 protocol byte: TCP dropped, UDP redirected to 3's ingress,
# ICMP marked 9 and delivered, other frames (IPv6) delivered
BY_PROTO = """\
r6 = r1
r2 = *(u32 *)(r6 + 0x4c)
r3 = *(u32 *)(r6 + 0x50)
r4 = r2
r4 += 34
if r4 > r3 goto pass
r5 = *(u8 *)(r2 + 23)
if r5 == 6 goto drop
if r5 == 17 goto redirect
if r5 != 1 goto pass
r7 = 9
*(u32 *)(r6 + 8) = r7
pass:
r0 = 0
exit
drop:
r0 = 2
exit
redirect:
r1 = 3
r2 = 1
call 23
exit
"""


@pytest.fixture
def work(tmp_path):
    pcapio.write(tmp_path / "in.pcap", [(k * 1000, f, len(f)) for k, f in enumerate(FRAMES)])
    (tmp_path / "prog.s").write_text(BY_PROTO)
    return tmp_path


def tcsim_run(capsys, *argv):
    """(exit status, stdout, stderr lines) of tcsim.main(argv)."""
    rc = tcsim.main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err.splitlines()


# --- the summary -------------------------------------------------------------------------

def test_json_prints_the_summary_as_one_object_counting_what_the_report_lists(work, capsys):
    rc, out, err = tcsim_run(capsys, work / "prog.s", "-r", work / "in.pcap", "--json",
                             "--report", work / "r.jsonl")
    report = [read_line(line) for line in (work / "r.jsonl").read_text().splitlines()]
    got = json.loads(out)
    assert (rc, err, out.count("\n")) == (0, [], 1)
    assert got["packets"] == len(FRAMES)
    assert got["actions"] == {a: Counter(r["action"] for r in report)[a] for a in tcsim.ACTIONS}
    assert got["verdicts"] == dict(Counter(r["verdict"] for r in report))
    assert got["redirects"] == {"3-ingress": 1}
    assert got["bytes_in"] == sum(map(len, FRAMES))
    assert got["bytes_out"] == sum(len(f) for f, r in zip(FRAMES, report)
                                   if r["action"] in ("delivered", "redirected"))
    assert (got["packets_changed"], got["faults"]) == (0, {})
    assert got["wall_time"] > 0 and got["packets_per_second"] > 0


def test_json_counts_faults_by_kind_and_no_verdict_for_them(work, capsys):
    (work / "fault.s").write_text("r2 = *(u32 *)(r1 + 0x4c)\nr3 = *(u8 *)(r2 + 100)\n"
                                  "r0 = 0\nexit")
    _, out, _ = tcsim_run(capsys, work / "fault.s", "-r", work / "in.pcap", "--json",
                          "--no-verify")
    got = json.loads(out)
    assert got["faults"] == {"MemoryFault": len(FRAMES)}
    assert (got["verdicts"], got["actions"]["fault"]) == ({}, len(FRAMES))


def test_json_counts_the_packets_whose_bytes_changed(capsys):
    _, out, _ = tcsim_run(capsys, NAT4, "-r", SAMPLE, "--json", "--hook", "egress")
    assert json.loads(out)["packets_changed"] == 4


def test_quiet_prints_no_summary(work, capsys):
    rc, out, err = tcsim_run(capsys, work / "prog.s", "-r", work / "in.pcap", "-q")
    assert (rc, out, err) == (0, "", [])


def test_json_refuses_an_output_on_standard_output(work, capsys):
    rc, _, err = tcsim_run(capsys, work / "prog.s", "-r", work / "in.pcap", "--json",
                           "-o", "-")
    assert rc == 1 and err == ["tcsim: --json prints the summary on standard output, which "
                               "an output given as - already takes"]


# --- the progress bar --------------------------------------------------------------------

class Tty(io.StringIO):
    def isatty(self):
        return True


def test_the_progress_bar_draws_on_a_terminal_and_clears_its_line():
    stream = Tty()
    bar = summary.Progress(1000, stream=stream, delay=0)
    bar(50, 500)
    drawn = stream.getvalue()
    bar.close()
    assert "[" + "#" * 15 + "." * 15 + "] 50 packets" in drawn
    assert stream.getvalue().endswith("\r\033[K")


def test_the_progress_bar_of_a_capture_of_unknown_size_counts_packets_only():
    stream = Tty()
    bar = summary.Progress(0, stream=stream, delay=0)
    bar(50, 500)
    assert stream.getvalue().startswith("\rtcsim: 50 packets, ")


@pytest.mark.parametrize("stream, quiet, delay", [(io.StringIO(), False, 0), (Tty(), True, 0),
                                                  (Tty(), False, 60)],
                         ids=["not a terminal", "quiet", "within the first second"])
def test_the_progress_bar_stays_away(stream, quiet, delay):
    bar = summary.Progress(1000, stream=stream, quiet=quiet, delay=delay)
    bar(50, 500)
    bar.close()
    assert stream.getvalue() == ""


# --- maps in and out ---------------------------------------------------------------------

def dumped(directory, name):
    return json.loads((Path(directory) / f"{name}.json").read_text())


def test_dump_maps_writes_every_map_with_btf_decoded_and_raw_entries(tmp_path, capsys):
    rc, _, _ = tcsim_run(capsys, PROTO_COUNT, "-r", SAMPLE, "-q", "--dump-maps", tmp_path)
    stats = dumped(tmp_path, "ethertype_stats")
    by_type = {e["key"]: e for e in stats["entries"]}
    assert rc == 0 and sorted(p.name for p in tmp_path.iterdir()) == \
        ["ethertype_stats.json", "ipproto_packets.json"]
    assert (stats["type"], stats["key_size"], stats["value_size"]) == \
        ("BPF_MAP_TYPE_HASH", 2, 16)
    assert by_type[0x0800]["key_hex"] == "0008"
    assert by_type[0x86dd]["value"] == {"packets": 3, "bytes": 204}
    assert by_type[0x86dd]["value_hex"] == (3).to_bytes(8, "little").hex() + \
        (204).to_bytes(8, "little").hex()


def test_map_sets_initial_contents_from_btf_json_or_hex(tmp_path, capsys):
    (tmp_path / "stats.json").write_text(json.dumps([
        {"key": 0x86dd, "value": {"packets": 1000, "bytes": 5}},
        {"key": "0608", "value": "0a000000000000000000000000000000"}]))
    tcsim_run(capsys, PROTO_COUNT, "-r", SAMPLE, "-q", "--dump-maps", tmp_path / "out",
              "--map", f"ethertype_stats={tmp_path / 'stats.json'}")
    by_type = {e["key"]: e["value"] for e in dumped(tmp_path / "out", "ethertype_stats")["entries"]}
    assert by_type[0x86dd] == {"packets": 1003, "bytes": 209}
    assert by_type[0x0806] == {"packets": 12, "bytes": 84}


def test_a_dump_is_a_map_file(tmp_path, capsys):
    tcsim_run(capsys, PROTO_COUNT, "-r", SAMPLE, "-q", "--dump-maps", tmp_path / "a")
    tcsim_run(capsys, PROTO_COUNT, "-r", SAMPLE, "-q", "--dump-maps", tmp_path / "b",
              "--map", f"ethertype_stats={tmp_path / 'a' / 'ethertype_stats.json'}")
    first = {e["key"]: e["value"]["packets"] for e in dumped(tmp_path / "a", "ethertype_stats")["entries"]}
    second = {e["key"]: e["value"]["packets"] for e in dumped(tmp_path / "b", "ethertype_stats")["entries"]}
    assert second == {k: 2 * v for k, v in first.items()}


@pytest.mark.parametrize("content, message", [
    ("[{\"key\": 1}]", "entry 0: expected an object with \"key\" and \"value\""),
    ("[{\"key\": \"08\", \"value\": 0}]", "entry 0: key '08' is 1 bytes; the map's keys are 2"),
    ("[{\"key\": 1, \"value\": {\"nope\": 1}}]", "entry 0: value {'nope': 1} does not fit"),
    ("{", "is not JSON"),
], ids=["no value", "short hex", "unknown member", "not json"])
def test_a_bad_map_file_is_one_line_naming_the_option_file_and_entry(tmp_path, capsys,
                                                                      content, message):
    (tmp_path / "m.json").write_text(content)
    rc, _, err = tcsim_run(capsys, PROTO_COUNT, "-r", SAMPLE, "-q",
                           "--map", f"ethertype_stats={tmp_path / 'm.json'}")
    assert rc == 1 and len(err) == 1
    assert err[0].startswith(f"tcsim: --map ethertype_stats={tmp_path / 'm.json'}: ")
    assert message in err[0]


def test_map_names_the_maps_there_are_when_the_name_is_unknown(tmp_path, capsys):
    rc, _, err = tcsim_run(capsys, PROTO_COUNT, "-r", SAMPLE, "--map", "nope=x.json")
    assert rc == 1 and err == ["tcsim: --map nope=x.json: the programs have no map 'nope'; "
                               "they have: ethertype_stats, ipproto_packets"]


def test_pin_dir_keeps_map_state_across_runs(tmp_path, capsys):
    pins = tmp_path / "pins"
    pins.mkdir(mode=0o700)
    for k in (1, 2):
        rc, _, err = tcsim_run(capsys, PROTO_COUNT, "-r", SAMPLE, "-q", "--pin-dir", pins,
                               "--dump-maps", tmp_path / f"run{k}")
        assert (rc, err) == (0, [])
    first, second = ({e["key"]: e["value"] for e in dumped(tmp_path / f"run{k}",
                                                            "ethertype_stats")["entries"]}
                     for k in (1, 2))
    assert second == {k: {"packets": 2 * v["packets"], "bytes": 2 * v["bytes"]}
                      for k, v in first.items()}


# --- --kernel-check ----------------------------------------------------------------------

def test_kernel_check_says_it_is_skipped_where_bpf_is_refused(work, capsys, monkeypatch):
    monkeypatch.setattr(kernelcheck, "refused_reason", lambda: "EPERM (not root)")
    rc, _, err = tcsim_run(capsys, work / "prog.s", "-r", work / "in.pcap", "-q",
                           "--kernel-check")
    assert (rc, err) == (0, ["tcsim: kernel-check skipped: bpf(2) is refused here "
                             "(EPERM (not root))"])


def test_kernel_check_refuses_a_chain_in_classid_mode(work, capsys):
    rc, _, err = tcsim_run(capsys, work / "prog.s", work / "prog.s", "-r", work / "in.pcap",
                           "--kernel-check", "--no-da")
    assert rc == 1 and err == ["tcsim: --kernel-check runs a chain as cls_bpf direct-action "
                               "runs it, one BPF_PROG_TEST_RUN per program (give one program "
                               "in classid or action mode)"]


# the first program decides frames over 60 bytes (TC_ACT_OK) and marks the rest 7 with
# TC_ACT_UNSPEC, which hands them to the second, which drops what is marked 7
FIRST = ("r2 = *(u32 *)(r1 + 0)\nr0 = 0\nif r2 > 60 goto out\nr2 = 7\n"
         "*(u32 *)(r1 + 8) = r2\nr0 = -1\nout:\nexit\n")
SECOND = "r2 = *(u32 *)(r1 + 8)\nr0 = 0\nif r2 != 7 goto out\nr0 = 2\nout:\nexit\n"


def test_kernel_check_runs_a_chain_program_by_program_as_cls_bpf(work, live_kernel, capsys):
    (work / "first.s").write_text(FIRST)
    (work / "second.s").write_text(SECOND)
    rc, _, err = tcsim_run(capsys, work / "first.s", work / "second.s", "-r",
                           work / "in.pcap", "-q", "--kernel-check", "--report",
                           work / "r.jsonl")
    report = [read_line(line) for line in (work / "r.jsonl").read_text().splitlines()]
    assert (rc, err) == (0, [f"tcsim: kernel-check: {len(FRAMES)} packets compared, 0 "
                             "disagreed; maps agreed"])
    assert [r["programs_run"] for r in report] == [1 if len(f) > 60 else 2 for f in FRAMES]


def test_kernel_check_reports_a_chain_the_kernel_ended_at_another_program(
        work, live_kernel, capsys, monkeypatch):
    monkeypatch.setattr(kernelcheck, "DA_VERDICTS", kernelcheck.DA_VERDICTS | {-1})
    (work / "first.s").write_text(FIRST)
    (work / "second.s").write_text(SECOND)
    rc, _, err = tcsim_run(capsys, work / "first.s", work / "second.s", "-r",
                           work / "in.pcap", "-q", "--kernel-check")
    assert rc == 3
    assert err[0] == "tcsim: kernel-check: packet 0: deciding program: pyebpf 2, kernel 1"


def test_kernel_check_refuses_a_socket_filter_from_the_mac_header(capsys):
    rc, _, err = tcsim_run(capsys, SOCKFILTER, "-r", HTTPS, "--type", "socket_filter",
                           "--kernel-check")
    assert rc == 1 and err == ["tcsim: --kernel-check: BPF_PROG_TEST_RUN runs socket filters "
                               "from the network header, a packet socket from the MAC header "
                               "(--sf-start network compares them)"]


def test_kernel_check_refuses_a_classic_filter(capsys):
    rc, _, err = tcsim_run(capsys, "--cbpf", "tcp port 443", "-r", HTTPS, "--kernel-check")
    assert rc == 1 and err == ["tcsim: --kernel-check runs eBPF programs in the kernel; a "
                               "classic filter (--cbpf) is checked against libpcap's packet "
                               "socket instead (docs/tcsim.md)"]


def test_kernel_check_compares_a_socket_filters_kept_lengths_from_the_network_header(
        live_kernel, capsys):
    rc, _, err = tcsim_run(capsys, SOCKFILTER, "-r", HTTPS, "-q", "--type", "socket_filter",
                           "--sf-start", "network", "--kernel-check")
    assert (rc, err) == (0, ["tcsim: kernel-check: 10 packets compared, 0 disagreed; "
                             "maps agreed"])


def test_kernel_check_reports_a_socket_filters_injected_difference(live_kernel, capsys,
                                                                   monkeypatch):
    real = kernelcheck.Check.run

    def altered(self, packet):
        result, ran = real(self, packet)
        return type(result)(**{**vars(result), "retval": result.retval + 1}), ran

    monkeypatch.setattr(kernelcheck.Check, "run", altered)
    rc, _, err = tcsim_run(capsys, SOCKFILTER, "-r", HTTPS, "-q", "--type", "socket_filter",
                           "--sf-start", "network", "--kernel-check")
    assert rc == 3
    assert err[0].startswith("tcsim: kernel-check: packet 0: retval: pyebpf ")
    assert err[-1].startswith("tcsim: kernel-check: 10 packets compared, 10 disagreed")


def test_kernel_check_agrees_with_the_kernel_on_the_nat_example(live_kernel, capsys):
    rc, _, err = tcsim_run(capsys, NAT4, "-r", SAMPLE, "-q", "--kernel-check")
    assert rc == 0
    assert err == ["tcsim: kernel-check: 21 packets compared, 0 disagreed; maps not compared "
                   "(the kernel missed the packets not checked); 3 not checked: VLAN-tagged "
                   "at ingress (test_run does not untag)"]


def test_kernel_check_compares_maps_after_the_last_packet(live_kernel, capsys):
    rc, _, err = tcsim_run(capsys, PROTO_COUNT, "-r", SAMPLE, "-q", "--kernel-check",
                           "--hook", "egress")
    assert (rc, err) == (0, ["tcsim: kernel-check: 24 packets compared, 0 disagreed; "
                             "maps agreed"])


def test_kernel_check_reports_an_injected_difference_and_exits_3(live_kernel, capsys,
                                                                 monkeypatch):
    real = kernelcheck.Check.run
    runs = []

    def altered(self, packet):
        result, ran = real(self, packet)
        runs.append(packet)
        if len(runs) == 11:        # packet 10: the kernel's NAT rewrite, one byte off
            data = bytearray(result.data)
            data[26] ^= 0xff
            return type(result)(**{**vars(result), "data": bytes(data)}), ran
        return result, ran

    monkeypatch.setattr(kernelcheck.Check, "run", altered)
    rc, _, err = tcsim_run(capsys, NAT4, "-r", SAMPLE, "-q", "--kernel-check", "--hook",
                           "egress")
    assert rc == 3
    assert err[0].startswith("tcsim: kernel-check: packet 10: bytes from byte 26: pyebpf "
                             "cb007101")
    assert err[1].startswith("tcsim: kernel-check: 24 packets compared, 1 disagreed")
