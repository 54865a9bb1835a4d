"""tcsim under interrupts and faults: SIGINT and SIGTERM stop the run between packets
and write nothing; a frame no skb can hold is one packet's fault, not the end of the
replay; a program faulting on every packet prints ten lines and then its totals."""
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import child_python
from scapy.all import IP, TCP, UDP, Ether, Raw

from pyebpf import Program
from pyebpf.errors import EbpfError
from pyebpf.pcap import outputs, pcapio, tcsim
from pyebpf.pcap.report import read_line

FRAME = bytes(Ether() / IP() / UDP() / Raw(b"x" * 18))
ACCEPT = "r0 = 0\nexit\n"
FAULT = "r2 = *(u32 *)(r1 + 0x4c)\nr3 = *(u8 *)(r2 + 100)\nr0 = 0\nexit\n"  # no bounds check
SPIN = "r1 = {}\nloop:\nr1 -= 1\nif r1 != 0 goto loop\nr0 = 0\nexit\n"   # 2n + 3 instructions


def write_capture(path, frames):
    pcapio.write(path, [(k * 1000, f, len(f)) for k, f in enumerate(frames)])


@pytest.fixture
def run(tmp_path, capsys, monkeypatch):
    """run(program text, frames, *options) -> (exit code, stderr lines, report)."""
    def _run(program, frames, *options):
        (tmp_path / "prog.s").write_text(program)
        write_capture(tmp_path / "in.pcap", frames)
        rc = tcsim.main(["prog.s", "-r", "in.pcap", "--report", "report.jsonl",
                         *map(str, options)])
        err = capsys.readouterr().err.splitlines()
        rep = tmp_path / "report.jsonl"
        return rc, err, [read_line(line) for line in rep.read_text().splitlines()] \
            if rep.exists() else None
    monkeypatch.chdir(tmp_path)
    return _run


def tcsim_command(*args, cwd):
    exe = Path(sys.executable).parent / "tcsim"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "pyebpf.pcap.tcsim"]
    return [*cmd, *map(str, args)], child_python(PYTHONWARNINGS="error")[0]


# --- signals -------------------------------------------------------------------------------

def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)],
                         ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_the_replay_writes_nothing_and_says_where_it_stopped(tmp_path, signum,
                                                                           code):
    """50,000 packets of 900,003 instructions take many seconds of CPU, compiled too
    (PYEBPF_JIT=force); the signal comes once the child has used a second of it
    (start-up takes a fraction of that).  Unverified: the verifier would walk every
    round of the loop."""
    packets = 50_000
    write_capture(tmp_path / "in.pcap", [FRAME] * packets)
    (tmp_path / "spin.s").write_text(SPIN.format(450_000))
    (tmp_path / "out.pcap").write_bytes(b"previous")
    cmd, env = tcsim_command("spin.s", "-r", "in.pcap", "-o", "out.pcap", "--report",
                             "r.jsonl", "--no-verify", cwd=tmp_path)
    child = subprocess.Popen(cmd, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    try:
        while child.poll() is None and cpu_seconds(child.pid) < 1.0:
            time.sleep(0.02)
        child.send_signal(signum)
        _, err = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == code, err
    lines = err.splitlines()
    assert len(lines) == 1 and re.fullmatch(
        r"tcsim: interrupted at packet (\d+); nothing written", lines[0]), err
    assert 0 < int(lines[0].split()[4].rstrip(";")) < packets
    assert (tmp_path / "out.pcap").read_bytes() == b"previous"
    assert not (tmp_path / "r.jsonl").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(outputs.TEMP_SUFFIX)]


def direct_temp_fd(pid, tmp):
    """Whether ``pid`` has ``tmp`` open with O_DIRECT (its fdinfo's flags)."""
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if os.readlink(fd) == str(tmp):
                info = dict(line.split(":", 1) for line in
                            Path(f"/proc/{pid}/fdinfo/{fd.name}").read_text().splitlines())
                return bool(int(info["flags"], 8) & os.O_DIRECT)
        except OSError:
            continue
    return False


def test_a_signal_during_o_direct_writes_of_the_report_writes_nothing(tmp_path):
    """The report's temporary file is written with O_DIRECT by the write-behind
    (pcap/capio.pxi); a signal once megabytes of it are on the disk removes it too."""
    packets = 200_000
    write_capture(tmp_path / "in.pcap", [FRAME] * packets)
    (tmp_path / "spin.s").write_text(SPIN.format(2_000))
    (tmp_path / "out.pcap").write_bytes(b"previous")
    tmp = tmp_path / ".r.jsonl.tcsim-tmp"
    cmd, env = tcsim_command("spin.s", "-r", "in.pcap", "-o", "out.pcap", "--report",
                             "r.jsonl", "--no-verify", cwd=tmp_path)
    child = subprocess.Popen(cmd, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    try:
        while child.poll() is None and (not tmp.exists() or tmp.stat().st_size < 4 << 20):
            time.sleep(0.005)
        direct = direct_temp_fd(child.pid, tmp)
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == 130, err
    assert re.fullmatch(r"tcsim: interrupted at packet \d+; nothing written\n", err), err
    assert direct, "the report was not being written with O_DIRECT"
    assert (tmp_path / "out.pcap").read_bytes() == b"previous"
    assert not (tmp_path / "r.jsonl").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(outputs.TEMP_SUFFIX)]


def blocked_in_fifo_open(pid):
    """Wait until ``pid`` sleeps in the kernel's FIFO open (fifo_open's wait_for_partner):
    past start-up, with tcsim's signal handlers in place."""
    deadline = time.monotonic() + 60
    while Path(f"/proc/{pid}/wchan").read_text() != "wait_for_partner":
        assert time.monotonic() < deadline, "tcsim never opened the FIFO"
        time.sleep(0.01)


def interrupted_in_fifo_open(tmp_path, sig, *args) -> tuple[int, str]:
    """(exit status, stderr) of tcsim run with ``args`` in ``tmp_path`` and sent ``sig``
    once it blocks opening a FIFO."""
    cmd, env = tcsim_command(*args, cwd=tmp_path)
    child = subprocess.Popen(cmd, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    try:
        blocked_in_fifo_open(child.pid)
        child.send_signal(sig)
        _, err = child.communicate(timeout=60)
    finally:
        child.kill()
    return child.returncode, err


def test_a_signal_while_the_capture_is_awaited_says_nothing_was_replayed(tmp_path):
    os.mkfifo(tmp_path / "in.pcap")
    (tmp_path / "prog.s").write_text(ACCEPT)
    assert interrupted_in_fifo_open(tmp_path, signal.SIGTERM, "prog.s", "-r", "in.pcap",
                                    "-o", "out.pcap") == (
        143, "tcsim: interrupted before the replay; nothing written\n")
    assert not (tmp_path / "out.pcap").exists()


def test_a_signal_while_a_fifo_output_awaits_its_reader_writes_no_other_output(tmp_path):
    write_capture(tmp_path / "in.pcap", [FRAME])
    (tmp_path / "prog.s").write_text(ACCEPT)
    os.mkfifo(tmp_path / "pipe")
    assert interrupted_in_fifo_open(tmp_path, signal.SIGINT, "prog.s", "-r", "in.pcap",
                                    "-o", "pipe", "--report", "r.jsonl") == (
        130, "tcsim: interrupted while opening the outputs; nothing written\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.pcap", "pipe", "prog.s"]


# --- frames no skb can hold ----------------------------------------------------------------

def test_a_frame_shorter_than_an_ethernet_header_is_reported_dropped_and_the_replay_goes_on(
        run, tmp_path):
    rc, err, rep = run(ACCEPT, [FRAME, FRAME[:10], FRAME], "-o", "out.pcap", "--drops",
                       "drops.pcap")
    assert rc == 0
    assert err[0] == ("tcsim: in.pcap: packet 1: a 10-byte frame cannot be replayed (an skb "
                      "holds 14 to 65535 bytes); dropped")
    assert [r["action"] for r in rep] == ["delivered", "fault", "delivered"]
    assert rep[1]["errors"] == [{"program": None, "pc": None, "message":
                                 "a 10-byte frame cannot be replayed (an skb holds 14 to "
                                 "65535 bytes)"}]
    assert [f for _, f, _ in _records(tmp_path / "drops.pcap")] == [FRAME[:10]]
    assert [f for _, f, _ in _records(tmp_path / "out.pcap")] == [FRAME, FRAME]


def test_stop_on_error_stops_at_a_short_frame(run, tmp_path):
    rc, err, _ = run(ACCEPT, [FRAME, FRAME[:10], FRAME], "-o", "out.pcap", "--stop-on-error")
    assert rc == 1
    assert err == ["tcsim: in.pcap: packet 1: a 10-byte frame cannot be replayed (an skb "
                   "holds 14 to 65535 bytes); dropped",
                   "tcsim: stopped (--stop-on-error); no output written"]
    assert not (tmp_path / "out.pcap").exists()


def test_a_short_frame_through_the_command(tmp_path):
    write_capture(tmp_path / "in.pcap", [FRAME[:13], FRAME])
    (tmp_path / "prog.s").write_text(ACCEPT)
    cmd, env = tcsim_command("prog.s", "-r", "in.pcap", "--drops", "d.pcap", cwd=tmp_path)
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[0] == (
        "tcsim: in.pcap: packet 0: a 13-byte frame cannot be replayed (an skb holds 14 to "
        "65535 bytes); dropped")
    assert "1 delivered" in done.stderr and "1 faulted (dropped)" in done.stderr
    assert [f for _, f, _ in _records(tmp_path / "d.pcap")] == [FRAME[:13]]


def _records(path):
    cap = pcapio.read(path)
    return list(zip(cap.ts, cap.frames, cap.orig_len))


# --- many faults ---------------------------------------------------------------------------

def test_a_program_faulting_on_every_packet_prints_ten_lines_then_the_totals(run):
    rc, err, rep = run(FAULT, [FRAME] * 25, "--no-verify")   # the verifier refuses it
    assert rc == 0
    faults = [line for line in err if re.match(r"tcsim: packet \d+: ", line)]
    assert faults == [f"tcsim: packet {k}: program 1 (prog.s) faulted at pc 1: "
                      + rep[k]["errors"][0]["message"] for k in range(10)]
    assert err[10:12] == [
        "tcsim: 15 more faults not shown (each is in report.jsonl); all 25 by kind:",
        "tcsim: 25 packets faulted in program 1 (prog.s) at pc 1 (r3 = *(u8 *)(r2 + 0x64)): "
        "MemoryFault"]
    assert len(err) == 13 and err[12].startswith("tcsim: 25 packets from in.pcap:")
    assert all(r["action"] == "fault" and r["errors"][0]["message"] for r in rep)


def test_the_totals_count_each_distinct_fault(run):
    """Two faulting instructions (TCP frames fault at pc 4, the rest at pc 1) and short
    frames: one total line each, in order of first appearance."""
    two_faults = ("r2 = *(u32 *)(r1 + 0x4c)\nr3 = *(u8 *)(r2 + 23)\nif r3 == 6 goto tcp\n"
                  "r3 = *(u8 *)(r2 + 100)\ntcp:\nr3 = *(u8 *)(r2 + 200)\nr0 = 0\nexit\n")
    tcp = bytes(Ether() / IP() / TCP())
    rc, err, _ = run(two_faults, [FRAME, tcp, FRAME[:5]] * 5, "--no-verify")
    assert rc == 0
    totals = err[err.index("tcsim: 5 more faults not shown (each is in report.jsonl); "
                           "all 15 by kind:") + 1:-1]
    assert totals == [
        "tcsim: 5 packets faulted in program 1 (prog.s) at pc 3 (r3 = *(u8 *)(r2 + 0x64)): "
        "MemoryFault",
        "tcsim: 5 packets faulted in program 1 (prog.s) at pc 4 (r3 = *(u8 *)(r2 + 0xc8)): "
        "MemoryFault",
        "tcsim: 5 packets in in.pcap cannot be replayed (an skb holds 14 to 65535 bytes)"]


def test_a_budget_fault_names_the_commands_option(run):
    rc, err, rep = run(SPIN.format(100), [FRAME], "--budget", "50")
    assert rc == 0
    message = ("instruction budget of 50 exhausted (endless loop?); raise it with --budget")
    assert err[0].endswith(message) and "budget=" not in err[0]
    assert rep[0]["errors"][0]["message"].endswith(message)


def test_usage_errors_are_pyebpf_errors_not_value_errors():
    assert issubclass(tcsim.UsageError, EbpfError)
    assert not issubclass(tcsim.UsageError, ValueError)


# --- the in-memory replay (tcsim.Replay) with stop_on_error ------------------------------

LONG = bytes(Ether() / IP() / UDP() / Raw(b"x" * 80))    # FAULT's load at 100 is inside


def in_memory(frames):
    return pcapio.Capture("x", "pcap", frames, [0] * len(frames), list(map(len, frames)),
                          [0] * len(frames))


def test_an_in_memory_replay_with_stop_on_error_ends_after_the_faulting_packet():
    prog = Program.from_asm(FAULT, "sched_cls", verify=False)
    replay = tcsim.Replay(in_memory([LONG, FRAME, LONG]), [prog], stop_on_error=True)
    assert (replay.count, replay.data, list(replay.extras)) == (2, [LONG, FRAME], [1])
    assert [(tcsim.ACTIONS[o[9]], o[12]) for o in replay.outcomes()] == \
        [("delivered", 0), ("fault", 1)]


def test_an_in_memory_replay_with_stop_on_error_ends_after_a_frame_no_skb_holds():
    prog = Program.from_asm(ACCEPT, "sched_cls")
    replay = tcsim.Replay(in_memory([LONG, FRAME[:10], LONG]), [prog], stop_on_error=True)
    assert (replay.count, replay.data, list(replay.extras)) == (2, [LONG, FRAME[:10]], [1])
    assert [tcsim.ACTIONS[a] for a in replay.actions] == ["delivered", "fault"]
