"""BPF C coverage: the core's per-instruction counters, their folding into lines and
branches, the lcov and Cobertura files, and ``pyebpf cov``."""
from __future__ import annotations

import pytest

import pyebpf
from pyebpf import cli, coverage
from pyebpf.asm import assemble
from pyebpf.btf.ext import LineInfo

# r0 = mark == 7 ? 2 : 0, each statement on its own "line" of prog.c
CODE = assemble("r2 = *(u32 *)(r1 + 8)\n"     # 0  line 10
                "if r2 != 7 goto +2\n"        # 1  line 10
                "r0 = 2\n"                    # 2  line 11
                "exit\n"                      # 3  line 11
                "r0 = 0\n"                    # 4  line 12
                "exit")                       # 5  line 12
LINES = (LineInfo(0, "prog.c", 10, 1, "if (skb->mark == 7)"),
         LineInfo(2, "prog.c", 11, 1, "return TC_ACT_SHOT;"),
         LineInfo(4, "prog.c", 12, 1, "return TC_ACT_OK;"))


def program():
    return pyebpf.Program(CODE, "sched_cls", line_info=LINES)


def counted(marks, trace=False):
    with coverage.collect() as cov:
        prog = program()
        for mark in marks:
            prog.run(bytes(64), mark=mark, trace=trace)
    return cov.coverage()


def test_lines_count_the_runs_of_their_first_instruction():
    fc = counted([7, 0, 0])["prog.c"]
    assert fc.lines == {10: 3, 11: 1, 12: 2}


def test_a_conditional_jump_counts_both_directions():
    fc = counted([7, 0, 0])["prog.c"]
    assert fc.branches == {10: [(0, 0, 2), (0, 1, 1)]}


def test_a_jump_never_run_has_no_counts():
    prog_lines = LINES[:1]
    with coverage.collect() as cov:
        pyebpf.Program(CODE, "sched_cls", line_info=prog_lines)
    assert cov.coverage()["prog.c"].branches == {10: [(0, 0, None), (0, 1, None)]}


def test_traced_runs_count_too():
    assert counted([7, 0], trace=True)["prog.c"].lines == {10: 2, 11: 1, 12: 1}


def test_programs_with_the_same_code_add_up():
    with coverage.collect() as cov:
        program().run(bytes(64), mark=7)
        program().run(bytes(64), mark=7)
    assert cov.coverage()["prog.c"].lines == {10: 2, 11: 2, 12: 0}


def test_programs_made_outside_a_collection_have_no_counters():
    prog = program()
    with coverage.collect() as cov:
        prog.run(bytes(64), mark=7)
    assert cov.coverage() == {}


def test_nested_collections_both_count():
    with coverage.collect() as outer:
        with coverage.collect() as inner:
            program().run(bytes(64), mark=7)
        program().run(bytes(64), mark=0)
    assert inner.coverage()["prog.c"].lines == {10: 1, 11: 1, 12: 0}
    assert outer.coverage()["prog.c"].lines == {10: 2, 11: 1, 12: 1}


def test_tail_called_programs_count_in_their_own_lines():
    callee = pyebpf.Program(assemble("r0 = 2\nexit"), "sched_cls",
                            line_info=(LineInfo(0, "callee.c", 5, 1, "return 2;"),))
    with coverage.collect() as cov:
        callee = pyebpf.Program(callee.insns, "sched_cls", line_info=callee.line_info)
        jumps = pyebpf.Map.create("prog_array", 4, 4, 1)
        jumps[bytes(4)] = callee
        caller = pyebpf.Program(assemble(f"r2 = map_fd({jumps.fd}) ll\nr3 = 0\ncall 12\n"
                                         "r0 = 0\nexit"), "sched_cls",
                                line_info=(LineInfo(0, "caller.c", 3, 1, "tail call"),))
        assert caller.run(bytes(64)).retval == 2
    assert cov.coverage()["callee.c"].lines == {5: 1}
    assert cov.coverage()["caller.c"].lines == {3: 1}


def test_replays_count():
    from pyebpf.pcap.pcapio import Capture
    from pyebpf.pcap.tcsim import Replay
    capture = Capture("three.pcap", "pcap", frames=[bytes(64)] * 3, ts=[0] * 3,
                      orig_len=[64] * 3, iface=[0] * 3)
    with coverage.collect() as cov:
        Replay(capture, [program()])
    assert cov.coverage()["prog.c"].lines == {10: 3, 11: 0, 12: 3}


@pytest.mark.parametrize("fmt", coverage.FORMATS)
def test_both_formats_read_back_as_written(tmp_path, fmt):
    cov = counted([7, 0, 0])
    coverage.write(cov, fmt, tmp_path / "cov")
    back = coverage.read(tmp_path / "cov")
    assert {n: fc.lines for n, fc in back.items()} == {n: fc.lines for n, fc in cov.items()}
    assert back["prog.c"].branches_hit == cov["prog.c"].branches_hit == 2


def test_lcov_records(tmp_path):
    coverage.write(counted([7, 0, 0]), "lcov", tmp_path / "cov.info")
    assert (tmp_path / "cov.info").read_text() == (
        "TN:\nSF:prog.c\nBRDA:10,0,0,2\nBRDA:10,0,1,1\nBRF:2\nBRH:2\n"
        "DA:10,3\nDA:11,1\nDA:12,2\nLF:3\nLH:3\nend_of_record\n")


def test_a_directory_is_not_overwritten(tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(ValueError, match="not a regular file"):
        coverage.write({}, "lcov", tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_cov_report_prints_the_summary_and_missing_lines(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    coverage.write(counted([7]), "lcov", tmp_path / "cov.info")
    assert cli.main(["cov", "report", "cov.info", "--missing"]) == 0
    assert capsys.readouterr().out == (
        "file    lines      branches\n"
        "prog.c    2/3 67%       1/2 50%\n"
        "TOTAL     2/3 67%       1/2 50%\n"
        "prog.c: lines never run: 12\n")


def test_cov_report_adds_files_up(tmp_path, capsys):
    coverage.write(counted([7]), "lcov", tmp_path / "a.info")
    coverage.write(counted([0]), "cobertura", tmp_path / "b.xml")
    assert cli.main(["cov", "report", str(tmp_path / "a.info"), str(tmp_path / "b.xml")]) == 0
    assert "prog.c    3/3 100%" in capsys.readouterr().out


def test_cov_convert_writes_the_other_format(tmp_path, capsys):
    coverage.write(counted([7, 0]), "lcov", tmp_path / "cov.info")
    assert cli.main(["cov", "convert", str(tmp_path / "cov.info"),
                     f"cobertura:{tmp_path / 'cov.xml'}"]) == 0
    assert coverage.read(tmp_path / "cov.xml")["prog.c"].lines == {10: 2, 11: 1, 12: 1}


def test_a_malformed_file_is_one_line_naming_file_and_line(tmp_path, capsys):
    (tmp_path / "bad.info").write_text("TN:\nSF:x.c\nDA:three,1\n")
    assert cli.main(["cov", "report", str(tmp_path / "bad.info")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"pyebpf cov: {tmp_path / 'bad.info'}:3: not an lcov record: "
                          "'DA:three,1'") and err.count("\n") == 1
