"""The pytest plugin, through throwaway projects run by pytest's own ``pytester``: the
fixtures, the kernel-check marker, the options, the report header, the explanations of
failed assertions and the coverage files."""
from __future__ import annotations

import re
import shutil

import pytest

from plugin_project import (CLASSIFIER_C, SMALL_BRANCHES, SMALL_C, SMALL_LINES, SMALL_TESTS,
                            TESTS_FAILING, TESTS_PASSING, plugin_args)

pytestmark = pytest.mark.skipif(shutil.which("clang-19") is None and shutil.which("clang") is None,
                                reason="clang not installed (apt-get install clang-19)")


@pytest.fixture
def project(pytester, monkeypatch, tmp_path):
    """A pytester directory holding the classifier; objects cached in this test's own
    directory when the cache provider is off."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    pytester.makefile(".c", classifier=CLASSIFIER_C)
    return pytester


def run(pytester, *args):
    return pytester.runpytest_inprocess(*plugin_args(), *args)


def test_a_project_using_the_fixtures_marker_and_tc_act_passes(project, kernel_oracle):
    project.makepyfile(test_proj_classifier=TESTS_PASSING)
    result = run(project)
    result.assert_outcomes(passed=5)


def test_without_the_kernel_the_marked_tests_run_on_pyebpf_alone(project, monkeypatch):
    from pyebpf import kernel
    monkeypatch.setattr(kernel, "available", lambda: (False, "bpf(2) refused (EPERM)"))
    project.makepyfile(test_proj_classifier=TESTS_PASSING)
    result = run(project)
    result.assert_outcomes(passed=4, skipped=1)
    result.stdout.fnmatch_lines(["*kernel oracle unavailable (bpf(2) refused (EPERM));"
                                 " pyebpf_kernel_check tests run on pyebpf alone, kernel "
                                 "check skipped*"])


def test_a_wrong_verdict_fails_naming_both_verdicts_and_the_c_line(project):
    project.makepyfile(test_proj_wrong=TESTS_FAILING)
    result = run(project, "-k", "wrong_verdict")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "verdict TC_ACT.SHOT (2) == TC_ACT.OK (0)" in out
    assert ("classify (classifier.c) returned TC_ACT.SHOT (2), last at classifier.c:36: "
            "if (ip->protocol == IPPROTO_ICMP)") in out, out


def test_a_wrong_packet_fails_naming_the_field_that_differs(project):
    project.makepyfile(test_proj_wrong=TESTS_FAILING)
    result = run(project, "-k", "wrong_packet")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*packets ==: they differ in:*", "*IP.ttl: 63 ≠ 64*"])


def test_pyebpf_trace_shows_the_failing_runs_instructions_with_c_lines(project):
    project.makepyfile(test_proj_wrong=TESTS_FAILING)
    result = run(project, "-k", "wrong_verdict", "--pyebpf-trace")
    result.stdout.fnmatch_lines(["*pyebpf trace (last runs)*",
                                 "classify (classifier.c): Result(verdict=TC_ACT.SHOT (2)*",
                                 "; */classifier.c:36: if (ip->protocol == IPPROTO_ICMP)",
                                 "*r0=0x2 *"])


def test_the_kernel_check_fails_a_run_the_kernel_sees_differently(project, kernel_oracle):
    project.makepyfile(test_proj_diff="""
        import pytest
        from scapy.layers.inet import IP, TCP
        from scapy.layers.l2 import Ether
        from pyebpf import kernel

        @pytest.mark.pyebpf_kernel_check
        def test_it(pyebpf_load, monkeypatch):
            real = kernel.KernelProgram.test_run
            def shot(self, data, ctx=None):
                got = real(self, data, ctx)
                return type(got)(2, got.data, got.ctx, got.skb, got.duration)
            monkeypatch.setattr(kernel.KernelProgram, "test_run", shot)
            pyebpf_load("classifier.c").program().run(Ether() / IP() / TCP())
    """)
    result = run(project)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*KernelMismatch: pyebpf_kernel_check: run 1 of classify (*) differs from the kernel:",
        "*verdict: pyebpf TC_ACT.OK (0), kernel 2 (TC_ACT.SHOT)*"])


def test_the_kernel_check_compares_maps_after_the_run(project, kernel_oracle):
    project.makepyfile(test_proj_maps="""
        import pytest
        from scapy.layers.inet import IP, TCP
        from scapy.layers.l2 import Ether

        @pytest.mark.pyebpf_kernel_check
        def test_it(pyebpf_load):
            obj = pyebpf_load("classifier.c")
            obj.maps["seen"].typed("I", "Q")[6] = 41
            obj.program().run(Ether() / IP() / TCP())
            assert obj.maps["seen"].typed("I", "Q")[6] == 42
            # a map pyebpf changes behind the program's back is copied in before each run
            obj.maps["seen"].typed("I", "Q")[17] = 5
            obj.program().run(Ether() / IP() / TCP())
    """)
    run(project).assert_outcomes(passed=1)


def test_the_kernel_check_refuses_a_socket_filter_run_from_the_mac_header(project,
                                                                          kernel_oracle):
    project.makepyfile(test_proj_sf="""
        import pytest
        import pyebpf

        @pytest.mark.pyebpf_kernel_check
        def test_it():
            prog = pyebpf.Program.from_asm("r0 = 0\\nexit", "socket_filter")
            prog.run(bytes(60))
    """)
    result = run(project)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*cannot be checked against the kernel: BPF_PROG_TEST_RUN "
                                 "runs socket filters from the network header; run it with "
                                 "sf_start=\"network\"*"])


def test_the_report_header_names_version_profile_clang_and_the_oracle(project):
    import pyebpf
    project.makepyfile(test_proj_none="def test_nothing():\n    pass\n")
    result = run(project, "--pyebpf-profile=4.6")
    result.stdout.fnmatch_lines([f"pyebpf {pyebpf.__version__}: kernel profile 4.6 (running "
                                 "kernel *), clang *: *clang version*",
                                 "pyebpf: kernel oracle *"])


def test_without_clang_a_c_source_is_skipped_with_the_reason(project, monkeypatch):
    monkeypatch.setenv("PYEBPF_CLANG", "no-such-clang")
    project.makepyfile(test_proj_classifier=TESTS_PASSING)
    result = run(project, "-rs", "-k", "icmp")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*clang not found: cannot compile classifier.c*"])


def test_objects_are_cached_under_pytests_cache(project):
    project.makepyfile(test_proj_classifier=TESTS_PASSING)
    run(project, "-k", "fresh").assert_outcomes(passed=1)
    cached = sorted((project.path / ".pytest_cache" / "d" / "pyebpf-objects").glob("*.o"))
    assert len(cached) == 1


def test_without_the_cache_provider_objects_go_to_the_user_cache(project, tmp_path):
    project.makepyfile(test_proj_classifier=TESTS_PASSING)
    run(project, "-p", "no:cacheprovider", "-k", "fresh").assert_outcomes(passed=1)
    assert len(list((tmp_path / "xdg" / "pyebpf" / "objects").glob("*.o"))) == 1


def test_a_changed_header_compiles_again(project, tmp_path):
    from pyebpf import bpfcc
    header = project.makefile(".h", verdicts="#define VERDICT 2\n")
    source = project.makefile(".c", uses_header='#include <linux/bpf.h>\n'
                              '#include "verdicts.h"\n'
                              '__attribute__((section("tc"), used)) int f(void *ctx) '
                              '{ return VERDICT; }\n')
    first = bpfcc.compile(source, cache_dir=tmp_path / "c")
    assert bpfcc.compile(source, cache_dir=tmp_path / "c") == first
    mtime = first.stat().st_mtime_ns
    header.write_text("#define VERDICT 0\n")
    again = bpfcc.compile(source, cache_dir=tmp_path / "c")
    import pyebpf
    assert again.stat().st_mtime_ns != mtime
    assert pyebpf.load(again, prog_type="sched_cls").program("f").run(bytes(64)).retval == 0


def test_a_c_file_clang_refuses_fails_with_clangs_message(project):
    project.makefile(".c", broken="int f( {\n")
    project.makepyfile(test_proj_broken="def test_it(pyebpf_load):\n    pyebpf_load('broken.c')\n")
    result = run(project)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*broken.c: clang failed:*", "*error: *"])


def test_pyebpf_cov_writes_lcov_with_the_hand_counted_lines_and_branches(project):
    project.makefile(".c", small=SMALL_C)
    project.makepyfile(test_proj_small=SMALL_TESTS)
    result = run(project, "--pyebpf-cov=lcov:cov.info")
    result.assert_outcomes(passed=2)
    text = (project.path / "cov.info").read_text()
    lines = {int(n): int(h) for n, h in re.findall(r"^DA:(\d+),(\d+)$", text, re.M)}
    branches = {tuple(int(x) for x in m) for m in
                re.findall(r"^BRDA:(\d+),(\d+),(\d+),(\d+)$", text, re.M)}
    assert (lines, branches) == (SMALL_LINES, SMALL_BRANCHES)
    assert re.search(r"^SF:.*small\.c$", text, re.M)
    result.stdout.fnmatch_lines(["*pyebpf BPF C coverage*", "small.c    5/5 100%       2/2 100%",
                                 "pyebpf: lcov coverage written to *cov.info"])


def test_pyebpf_cov_writes_cobertura_that_cov_report_reads_back(project, capsys):
    from pyebpf import cli
    project.makefile(".c", small=SMALL_C)
    project.makepyfile(test_proj_small=SMALL_TESTS)
    run(project, "--pyebpf-cov=cobertura:cov.xml", "--pyebpf-cov=lcov:cov.info", "-k", "mark_7")
    capsys.readouterr()
    assert cli.main(["cov", "report", str(project.path / "cov.xml")]) == 0
    from_xml = capsys.readouterr().out
    assert cli.main(["cov", "report", str(project.path / "cov.info")]) == 0
    assert capsys.readouterr().out == from_xml
    assert re.search(r"small\.c\s+4/5\s+80%\s+1/2\s+50%", from_xml), from_xml


def test_a_bad_cov_option_is_a_usage_error(project):
    result = run(project, "--pyebpf-cov=html:out")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--pyebpf-cov 'html:out': expected lcov:FILE or "
                                 "cobertura:FILE*"])
