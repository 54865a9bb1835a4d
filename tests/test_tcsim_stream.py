"""tcsim streams a capture (pcap/pcapio.py Source, pcap/capio.pxi, tcreplay.Loop): it is
read a fixed-size chunk at a time, records cut by a chunk's end are read with the next,
and outputs are written as the replay goes, with the same bytes as a whole-capture
replay; dpkt is the judge of what is written."""
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import dpkt
import pytest
from bpfc import compile_object
from scapy.all import IP, UDP, Ether, Raw

from pyebpf.pcap import pcapio, report, tcreplay, tcsim
from pyebpf.pcap.report import read_line

FRAMES = [bytes(Ether() / IP(dst=f"10.0.0.{k % 250}") / UDP(dport=k) / Raw(b"x" * (k % 300)))
          for k in range(400)]
TS = [1_700_000_000_000_000_000 + k * 1_000_003 for k in range(len(FRAMES))]
MARK = "r2 = 7\n*(u32 *)(r1 + 8) = r2\nr0 = 0\nexit"     # skb->mark = 7, TC_ACT_OK
EVEN_DROP = ("r2 = *(u32 *)(r1 + 0)\nr2 &= 1\nr0 = 2\nif r2 == 0 goto out\nr0 = 0\n"
             "out:\nexit")                                  # drop even lengths


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 1,000 bytes: most records straddle two."""
    monkeypatch.setattr(pcapio, "CHUNK", 1000)


def test_a_pcap_read_in_small_chunks_is_the_capture_dpkt_reads(tmp_path, small_chunks):
    path = tmp_path / "in.pcap"
    pcapio.write(path, list(zip(TS, FRAMES, map(len, FRAMES))), nanosecond=True)
    cap = pcapio.read(path)
    assert (cap.frames, cap.ts) == (FRAMES, TS)


def test_a_pcapng_read_in_small_chunks_is_the_capture_it_holds(tmp_path, small_chunks):
    path = tmp_path / "in.pcapng"
    pcapio.write(path, list(zip(TS, FRAMES, map(len, FRAMES))))
    cap = pcapio.read(path)
    assert (cap.frames, cap.ts) == (FRAMES, TS)


def _replay(tmp_path, capsys, *options, read="in.pcap"):
    (tmp_path / "p.s").write_text(EVEN_DROP)
    rc = tcsim.main([str(tmp_path / "p.s"), "-r", str(tmp_path / read), *options])
    assert rc == 0, capsys.readouterr().err
    return {name: (tmp_path / name).read_bytes() for name in ("o.pcap", "d.pcap", "r.jsonl")
            if (tmp_path / name).exists()}


def test_outputs_of_a_replay_in_small_chunks_equal_those_of_one_chunk(tmp_path, capsys,
                                                                      monkeypatch):
    pcapio.write(tmp_path / "in.pcap", list(zip(TS, FRAMES, map(len, FRAMES))))
    options = ["-o", str(tmp_path / "o.pcap"), "--drops", str(tmp_path / "d.pcap"),
               "--report", str(tmp_path / "r.jsonl")]
    whole = _replay(tmp_path, capsys, *options)
    monkeypatch.setattr(pcapio, "CHUNK", 1000)
    assert _replay(tmp_path, capsys, *options) == whole
    assert [len(f) for _, f in dpkt.pcap.Reader(io.BytesIO(whole["o.pcap"]))] == \
        [len(f) for f in FRAMES if len(f) % 2]


def test_a_capture_on_standard_input_streams_through(tmp_path):
    pcapio.write(tmp_path / "in.pcap", list(zip(TS, FRAMES, map(len, FRAMES))))
    (tmp_path / "p.s").write_text(MARK)
    done = subprocess.run([sys.executable, "-m", "pyebpf.pcap.tcsim", "p.s", "-r", "-",
                           "-o", "-"], cwd=tmp_path, capture_output=True, timeout=120,
                          input=(tmp_path / "in.pcap").read_bytes(),
                          env={"PYTHONPATH": str(Path(tcsim.__file__).parents[2])})
    assert done.returncode == 0, done.stderr
    assert [bytes(f) for _, f in dpkt.pcap.Reader(io.BytesIO(done.stdout))] == FRAMES


@pytest.mark.parametrize("fmt", report.FORMATS)
def test_every_report_line_is_report_dumps_of_its_object(tmp_path, capsys, fmt):
    """Lines written in C and the few written by Python (packets with extras) are the
    same serialisation: report.dumps in the line's format (json.dumps with the default
    separators or none, keys in report.KEYS' order, a compact line without the keys
    that hold their default)."""
    frames = FRAMES[:20] + [FRAMES[0][:10]]           # the last one no skb can hold
    pcapio.write(tmp_path / "in.pcap", [(t, f, len(f)) for t, f in zip(TS, frames)])
    _replay(tmp_path, capsys, "--report", str(tmp_path / "r.jsonl"), "--report-format", fmt)
    lines = (tmp_path / "r.jsonl").read_text().splitlines()
    assert len(lines) == 21
    for line in lines:
        assert report.dumps(read_line(line), fmt).decode() == line + "\n"


# capture times a writer makes from the last line's seconds' digits: within one second,
# across seconds, with nanoseconds of leading zeros, and below one second
TIMES = [5, 999_999_999, 1_000_000_005, 1_000_000_006, 1_050_000_000,
         1_700_000_000_000_000_001, 1_700_000_000_000_000_001, 1_700_000_000_099_999_999,
         1_700_000_000_999_999_999, 1_700_000_001_000_000_000, 1_700_000_001_000_001_000,
         1_699_999_999_123_456_789, 2**33 * 10**9 + 7]
TIMES += [1_700_000_002_000_000_000 + k * 37_000_001 for k in range(60)]


def _times_report(tmp_path, capsys, *options):
    """The report's lines (as written) of a replay of TIMES."""
    pcapio.write(tmp_path / "in.pcapng", [(t, FRAMES[k % len(FRAMES)], 99)
                                          for k, t in enumerate(TIMES)])
    _replay(tmp_path, capsys, "--report", str(tmp_path / "r.jsonl"), *options,
            read="in.pcapng")
    return [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("fmt", report.FORMATS)
@pytest.mark.parametrize("cpus", ["1", "2"])
def test_report_lines_give_each_capture_time_in_ns(tmp_path, capsys, cpus, fmt):
    lines = _times_report(tmp_path, capsys, "--cpus", cpus, "--report-format", fmt)
    assert [r["timestamp_ns"] for r in lines] == TIMES


@pytest.mark.parametrize("cpus", ["1", "2"])
def test_full_report_lines_give_each_capture_time_as_python_repr_of_its_seconds(
        tmp_path, capsys, cpus):
    lines = _times_report(tmp_path, capsys, "--cpus", cpus, "--report-format", "full")
    assert [repr(r["timestamp"]) for r in lines] == [repr(t / 1e9) for t in TIMES]


def test_report_lines_number_the_packets_across_the_index_s_added_digits(tmp_path, capsys):
    """A writer counts the last line's index up in its digits (9 -> 10, 99 -> 100)."""
    pcapio.write(tmp_path / "in.pcap", [(1_700_000_000_000_000_000 + k * 1000,
                                         FRAMES[k % len(FRAMES)], 99) for k in range(120)])
    _replay(tmp_path, capsys, "--report", str(tmp_path / "r.jsonl"))
    lines = (tmp_path / "r.jsonl").read_text().splitlines()
    assert [read_line(line)["index"] for line in lines] == list(range(120))


def test_pcapng_output_keeps_the_interfaces_and_packet_comments(tmp_path, capsys):
    buf = io.BytesIO()
    w = dpkt.pcapng.Writer(buf, shb=None, idb=dpkt.pcapng.InterfaceDescriptionBlockLE(
        linktype=1, snaplen=65535, opts=[dpkt.pcapng.PcapngOptionLE(code=2, data=b"eth7"),
                                         dpkt.pcapng.PcapngOptionLE(code=0)]))
    for k, f in enumerate(FRAMES[:3]):
        epb = dpkt.pcapng.EnhancedPacketBlockLE(
            pkt_data=f, caplen=len(f), pkt_len=len(f), ts_high=0, ts_low=k,
            opts=[dpkt.pcapng.PcapngOptionLE(code=1, data=f"packet {k}".encode()),
                  dpkt.pcapng.PcapngOptionLE(code=0)])
        w.writepkt(epb)
    (tmp_path / "in.pcapng").write_bytes(buf.getvalue())
    (tmp_path / "p.s").write_text(MARK)
    assert tcsim.main([str(tmp_path / "p.s"), "-r", str(tmp_path / "in.pcapng"), "-o",
                       str(tmp_path / "o.pcapng")]) == 0
    tshark = shutil.which("tshark")
    if tshark is None:
        pytest.skip("tshark is not installed (apt-get install tshark)")
    shown = subprocess.run([tshark, "-r", str(tmp_path / "o.pcapng"), "-T", "fields",
                            "-e", "frame.comment", "-e", "frame.interface_name"],
                           capture_output=True, text=True, timeout=120)
    if shown.returncode != 0:
        pytest.skip(f"tshark cannot run here: {shown.stderr.strip()}")
    assert shown.stdout.splitlines() == [f"packet {k}\teth7" for k in range(3)]


def test_peak_memory_does_not_grow_with_the_capture(tmp_path):
    """A child replays 20,000 and then 200,000 frames with every output on: its peak
    RSS grows by less than 10 MB (the whole capture would be ~30 MB more)."""
    script = (tmp_path / "child.py")
    script.write_text(f"""
import sys
sys.path.insert(0, {str(Path(tcsim.__file__).parents[2])!r})
from pyebpf.pcap import tcsim, tcreplay
from pyebpf.pcap.report import read_line
import os
n, path = int(sys.argv[1]), sys.argv[2]
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
w = tcreplay.CaptureWriter(fd)
frame = bytes.fromhex("020000000002020000000001080045000032000000004011000000000000000000000000")
frame += bytes(150 - len(frame))
for k in range(n):
    w.packet(k * 1000, frame, 150)
w.flush()
os.close(fd)
open("p.s", "w").write("r0 = 0\\nexit\\n")
assert tcsim.main(["p.s", "-r", path, "-o", "o.pcap", "--report", "r.jsonl",
                   "--drops", "d.pcap"]) == 0
# VmHWM: ru_maxrss would start at the parent's peak (exec keeps the old mm's)
print(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM")))
""")
    rss = []
    for n in (20_000, 200_000):
        done = subprocess.run([sys.executable, str(script), str(n), "in.pcap"], cwd=tmp_path,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        rss.append(int(done.stdout.split()[-1]))
    assert rss[1] - rss[0] < 10_000, f"peak RSS {rss[0]} KB, then {rss[1]} KB"


# a perf event per packet of its first 64 bytes (or fewer) after a record of its length and
# CPU, so that a mix-up of packets or of their order shows in the events
PACKET_EVENTS = """
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
	__u64 n = skb->len < 64 ? skb->len : 64;

	bpf_perf_event_output(skb, &events, (n << 32) | BPF_F_CURRENT_CPU, rec, sizeof(rec));
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
"""


@pytest.mark.parametrize("chunk", [None, 20_000], ids=["one-chunk", "chunks"])
@pytest.mark.parametrize("cpus", ["1", "2"])
def test_events_handed_over_mid_chunk_are_written_as_those_held_to_its_end(
        tmp_path, capsys, monkeypatch, cpus, chunk):
    """With EVENTS_HELD_MAX at 1 byte the loop hands every packet's events to --events as
    soon as the packet is written: the outputs are the bytes of a run holding them all
    (the capture in one chunk, or in chunks of 20,000 bytes)."""
    if chunk is not None:
        monkeypatch.setattr(pcapio, "CHUNK", chunk)
    (tmp_path / "perf.o").write_bytes(compile_object(PACKET_EVENTS))
    pcapio.write(tmp_path / "in.pcap", [(TS[k % 400] + k, FRAMES[k % 400], len(FRAMES[k % 400]))
                                        for k in range(10_000)])
    handed, chunk_ends = [], []
    put_events, write_events = tcsim._Outputs.put_events, tcsim._Outputs.write_events
    monkeypatch.setattr(tcsim._Outputs, "put_events",
                        lambda self, batch: (handed.append(len(batch)), put_events(self, batch)))
    monkeypatch.setattr(tcsim._Outputs, "write_events",
                        lambda self, extras: (chunk_ends.append(1), write_events(self, extras)))
    runs = {}
    for limit in (tcreplay.EVENTS_HELD_MAX, 1):
        monkeypatch.setattr(tcreplay, "EVENTS_HELD_MAX", limit)
        handed.clear()
        chunk_ends.clear()
        out = tmp_path / str(limit)
        assert tcsim.main([str(tmp_path / "perf.o"), "-r", str(tmp_path / "in.pcap"), "-q",
                           "--cpus", cpus, "--events", str(out / "e.jsonl"), "-o",
                           str(out / "o.pcap"), "--report", str(out / "r.jsonl")]) == 0, \
            capsys.readouterr().err
        runs[limit] = ([(out / f).read_bytes() for f in ("e.jsonl", "o.pcap", "r.jsonl")],
                       len(handed) - len(chunk_ends))
    (held, mid_chunk), (handed_over, times) = runs.values()
    assert (mid_chunk, times > 100) == (0, True)
    assert [json.loads(line)["packet"] for line in held[0].splitlines()] == list(range(10_000))
    assert handed_over == held



@pytest.mark.parametrize("cpus", ["1", "2"])
def test_without_events_a_program_s_perf_events_change_no_other_output(tmp_path, capsys,
                                                                      cpus):
    """Without --events the loop keeps no perf event (with --cpus 2 and -o alone the
    chunk is then replayed whole before its writing): -o is the capture of a run
    writing them."""
    (tmp_path / "perf.o").write_bytes(compile_object(PACKET_EVENTS))
    pcapio.write(tmp_path / "in.pcap", [(TS[k % 400] + k, FRAMES[k % 400], len(FRAMES[k % 400]))
                                        for k in range(10_000)])
    outs = []
    for name, events in (("kept", ["--events", str(tmp_path / "e.jsonl")]), ("none", [])):
        assert tcsim.main([str(tmp_path / "perf.o"), "-r", str(tmp_path / "in.pcap"), "-q",
                           "--cpus", cpus, "-o", str(tmp_path / f"{name}.pcap"), *events]) == 0, \
            capsys.readouterr().err
        outs.append((tmp_path / f"{name}.pcap").read_bytes())
    assert len((tmp_path / "e.jsonl").read_text().splitlines()) == 10_000
    assert outs[1] == outs[0]


# 16 KiB of an array value as one perf event per packet
BIG_EVENTS = """
struct big { __u8 b[16384]; };

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, 4);
	__uint(value_size, 4);
	__uint(max_entries, 8);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct big);
} data SEC(".maps");

SEC("tc")
int emit(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct big *c = bpf_map_lookup_elem(&data, &zero);

	if (c)
		bpf_perf_event_output(skb, &events, BPF_F_CURRENT_CPU, c, sizeof(*c));
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
"""


@pytest.mark.parametrize("cpus", ["1", "2"])
def test_peak_memory_does_not_grow_with_the_perf_events_a_program_emits(tmp_path, cpus):
    """A child replays 2,000 and then 12,000 frames (one chunk) of a program emitting
    16 KiB of perf events per packet, --events and every other output on: its peak RSS
    grows by less than 40 MB (the chunk's events held to its end would be 164 MB more)."""
    (tmp_path / "big.o").write_bytes(compile_object(BIG_EVENTS))
    script = tmp_path / "child.py"
    script.write_text(f"""
import sys
sys.path.insert(0, {str(Path(tcsim.__file__).parents[2])!r})
from pyebpf.pcap import pcapio, tcsim
n, cpus = int(sys.argv[1]), sys.argv[2]
frame = bytes.fromhex("020000000002020000000001080045000032000000004011000000000000000000000000")
frame += bytes(64 - len(frame))
pcapio.write("in.pcap", [(k * 1000, frame, len(frame)) for k in range(n)])
assert tcsim.main(["big.o", "-r", "in.pcap", "-q", "-o", "o.pcap", "--report", "r.jsonl",
                   "--events", "/dev/null", "--cpus", cpus]) == 0
# VmHWM: ru_maxrss would start at the parent's peak (exec keeps the old mm's)
print(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM")))
""")
    rss = []
    for n in (2_000, 12_000):
        done = subprocess.run([sys.executable, str(script), str(n), cpus], cwd=tmp_path,
                              capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0, done.stderr
        rss.append(int(done.stdout.split()[-1]))
    assert rss[1] - rss[0] < 40_000, f"peak RSS {rss[0]} KB, then {rss[1]} KB"

