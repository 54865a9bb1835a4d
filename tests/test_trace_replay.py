"""``pyebpf trace-replay`` and ``pyebpf run --type kprobe``: a tracing program over JSON
lines of events, from the command line."""
from __future__ import annotations

import json

import pytest

from pyebpf import Map, Program
from pyebpf.cli import main
from pyebpf.trace import replay

COUNT_BY_PID = """
    call 14
    r0 >>= 32
    *(u32 *)(r10 - 4) = r0
    r2 = r10
    r2 += -4
    r1 = map_fd({fd}) ll
    call 1
    if r0 == 0 goto new
    r1 = 1
    lock *(u64 *)(r0 + 0) += r1
    goto out
new:
    r1 = 1
    *(u64 *)(r10 - 16) = r1
    r2 = r10
    r2 += -4
    r3 = r10
    r3 += -16
    r1 = map_fd({fd}) ll
    r4 = 0
    call 2
out:
    r0 = 0
    exit
"""


@pytest.fixture
def program_file(tmp_path):
    counts = Map.create("hash", 4, 8, 16, name="counts")
    path = tmp_path / "count.s"
    path.write_text(COUNT_BY_PID.format(fd=counts.fd))
    return path


def _events(tmp_path, *lines) -> str:
    path = tmp_path / "events.jsonl"
    replay.write_events(path, lines)
    return str(path)


def test_each_event_runs_once_and_the_maps_keep_what_they_gathered(program_file, tmp_path,
                                                                     capsys):
    events = _events(tmp_path, '{"task": {"pid": 5}}', '{"task": {"pid": 5}}', "",
                     '{"task": {"pid": "0x6"}}')
    assert main(["trace-replay", str(program_file), events]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["events"], sorted(out["maps"]["counts"])) == (
        3, [["05000000", "0200000000000000"], ["06000000", "0100000000000000"]])


def test_a_line_that_is_not_json_is_named_by_file_and_line(program_file, tmp_path, capsys):
    events = _events(tmp_path, '{"task": {"pid": 5}}', "{nope")
    assert main(["trace-replay", str(program_file), events]) == 1
    assert capsys.readouterr().err.strip() == \
        f"pyebpf trace-replay: {events}:2: not JSON: Expecting property name enclosed in " \
        f"double quotes"


def test_an_unknown_event_key_is_named_with_its_line(program_file, tmp_path, capsys):
    events = _events(tmp_path, '{"tsak": {}}')
    assert main(["trace-replay", str(program_file), events]) == 1
    err = capsys.readouterr().err
    assert f"{events}:1: unknown key 'tsak'" in err and len(err.splitlines()) == 1


def test_the_output_file_is_written_whole_or_left_alone(program_file, tmp_path, capsys):
    out = tmp_path / "result.json"
    out.write_text("old")
    bad = _events(tmp_path, '{"task": {"pid": 5}}', '{"regs": {"rdi": 1}}')
    assert main(["trace-replay", str(program_file), bad, "-o", str(out)]) == 1
    assert f"{bad}:2: regs: x86_64 has no register 'rdi'" in capsys.readouterr().err
    assert out.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == [
        "count.s", "events.jsonl", "result.json"]
    good = _events(tmp_path, '{"task": {"pid": 5}}')
    assert main(["trace-replay", str(program_file), good, "-o", str(out)]) == 0
    assert json.loads(out.read_text())["events"] == 1


def test_an_event_gives_the_run_its_registers_memory_stacks_and_clock():
    run = replay.event_run({"regs": {"di": "-1"}, "timestamp": 9, "cpu": 1,
                            "user_memory": {"0x1000": "6869"}, "user_stack": ["0x401000"],
                            "func_ip": 3})
    assert (run["regs"], run["ktime"], run["cpu"], run["func_ip"]) == ({"di": -1}, 9, 1, 3)
    assert run["machine"].user_memory == ((0x1000, b"hi"),)
    assert run["machine"].user_stack == (0x401000,)


def test_event_writes_what_event_run_reads_back():
    hit = replay.event(regs={"di": 1 << 63}, task={"pid": 3}, kernel_memory={1 << 63: b"k"},
                       kernel_stack=[0xFFFFFFFF81000010], timestamp=5,
                       counters={"pe": {0: 9}})
    run = replay.event_run({k: v for k, v in hit.items() if k != "counters"})
    assert (run["regs"], run["ktime"], run["machine"].task.pid) == ({"di": 1 << 63}, 5, 3)
    assert run["machine"].kernel_memory == ((1 << 63, b"k"),)
    assert run["machine"].kernel_stack == (0xFFFFFFFF81000010,)
    assert hit["counters"] == {"pe": {"0": 9}}


def test_pyebpf_run_takes_a_kprobe_program_s_registers_as_fields(tmp_path, capsys):
    path = tmp_path / "arg.s"
    path.write_text("r0 = *(u64 *)(r1 + 112)\nr2 = *(u64 *)(r1 + 104)\nr0 += r2\nexit\n")
    assert main(["run", str(path), "--type", "kprobe", "--field", "di=40",
                 "--field", "si=2"]) == 0
    assert "r0 = 0x2a (42)" in capsys.readouterr().out


def test_a_kprobe_program_rejects_a_packet_field():
    with pytest.raises(TypeError, match="unknown argument 'mark'"):
        Program.from_asm("r0 = 0\nexit", "kprobe").run(mark=1)


def test_an_event_gives_the_machine_its_mappings_and_branch_records():
    run = replay.event_run({"vmas": [["0x400000", "0x401000"],
                                     {"vm_start": 0x600000, "vm_end": "0x601000"}],
                            "branches": [["0xffffffff81000010", "0xffffffff81000100"],
                                         {"from": 1, "to": 2, "mispred": 1}]})
    machine = run["machine"]
    assert [(start, end) for start, end, _ in machine.vma_table] == [(0x400000, 0x401000),
                                                                    (0x600000, 0x601000)]
    assert machine.branch_records[:16] == (0xFFFFFFFF81000010).to_bytes(8, "little") + \
        (0xFFFFFFFF81000100).to_bytes(8, "little")
    assert machine.branch_records[40:48] == (1).to_bytes(8, "little")


def test_event_writes_mappings_and_branches_that_event_run_reads_back():
    hit = replay.event(vmas=[(0x400000, 0x401000)], branches=[{"from": 1, "to": 2}])
    machine = replay.event_run(json.loads(json.dumps(hit)))["machine"]
    assert machine.vma_table[0][:2] == (0x400000, 0x401000)
    assert machine.branch_records == bytes([1]) + bytes(7) + bytes([2]) + bytes(15)


def test_a_branch_record_that_is_neither_pair_nor_object_is_refused():
    with pytest.raises(replay.MachineSpecError, match="branches"):
        replay.event_run({"branches": [[1, 2, 3]]})
