"""Results in the domain's terms: TC_ACT, verdict, kept, packet, changed, checksums_ok,
with the kernel's BPF_PROG_TEST_RUN as the expected value where it shows the same."""
from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import Ether

import pyebpf
from pyebpf import TC_ACT, isa
from pyebpf.asm import assemble
from pyebpf.results import Change, _checksums_ok

from conftest import ROOT

FRAME = bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
              / IP(src="10.0.0.1", dst="192.0.2.9", ttl=64) / TCP(sport=1234, dport=80))


def returning(value: int, prog_type="sched_cls"):
    return pyebpf.Program(assemble(f"r0 = {value}\nexit"), prog_type)


def test_tc_act_holds_every_tc_act_constant_of_isa():
    names = {n[len("TC_ACT_"):]: v for n, v in vars(isa).items() if n.startswith("TC_ACT_")}
    assert {m.name: m.value for m in TC_ACT} == names
    assert pyebpf.TC_ACT is isa.TC_ACT and TC_ACT.SHOT == 2 and TC_ACT.UNSPEC == -1


@pytest.mark.parametrize("verdict", list(TC_ACT), ids=lambda v: v.name)
def test_verdict_names_what_the_kernel_returns(kernel_oracle, verdict):
    prog = returning(int(verdict))
    res = prog.run(FRAME)
    assert res.verdict is verdict
    assert res.verdict == kernel_oracle.run(prog, FRAME).retval


def test_a_verdict_tc_does_not_name_stays_an_int(kernel_oracle):
    prog = returning(42)
    assert prog.run(FRAME).verdict == 42 == kernel_oracle.run(prog, FRAME).retval
    assert type(prog.run(FRAME).verdict) is int


@pytest.mark.parametrize("r0", [0, 20, 1000])
def test_kept_is_the_bytes_the_kernel_keeps(kernel_oracle, r0):
    prog = returning(r0, "socket_filter")
    res = prog.run(FRAME, sf_start="network")
    assert res.kept == len(kernel_oracle.run(prog, FRAME).data)


def test_verdict_and_kept_each_belong_to_their_program_type():
    with pytest.raises(AttributeError, match=r"socket_filter program's result.*use \.kept"):
        returning(0, "socket_filter").run(FRAME).verdict
    with pytest.raises(AttributeError, match=r"tc program's result.*use \.verdict"):
        returning(0).run(FRAME).kept


def test_packet_is_the_output_dissected_as_ethernet():
    res = returning(0).run(FRAME)
    assert res.packet == Ether(FRAME) and bytes(res.packet) == res.data


def test_a_socket_filter_run_from_the_network_header_dissects_as_ip():
    res = returning(1000, "socket_filter").run(FRAME, sf_start="network")
    assert res.packet == IP(FRAME[14:]) and res.network_start


def nat():
    return pyebpf.load(ROOT / "examples" / "nat4.o").program()


def test_changed_lists_the_fields_nat_rewrote():
    res = nat().run(FRAME)
    fields = [c.field for c in res.changed]
    assert fields == ["IP.chksum", "IP.src", "TCP.sport", "TCP.chksum"]
    assert res.changed[1] == Change("IP.src", "10.0.0.1", "203.0.113.1")
    assert str(res.changed[1]) == "IP.src: 10.0.0.1 → 203.0.113.1"


def test_an_untouched_packet_changed_nothing():
    assert returning(0).run(FRAME).changed == []


def test_changed_names_layers_a_program_pushes(kernel_oracle):
    code = assemble("r2 = 0x81\nr3 = 100\ncall 18\nr0 = 0\nexit")   # bpf_skb_vlan_push
    res = pyebpf.Program(code, "sched_cls").run(FRAME)
    assert res.changed[0] == Change("layers", "Ether/IP/TCP", "Ether/Dot1Q/IP/TCP")


def test_checksums_ok_agrees_with_the_kernels_bytes(kernel_oracle):
    prog = nat()
    for frame in (FRAME, bytes(Ether() / IP(src="10.1.2.3") / UDP(sport=5, dport=53) / b"q"),
                  bytes(Ether() / IP(src="10.9.9.9") / ICMP())):
        res = prog.run(frame)
        assert res.checksums_ok is _checksums_ok(kernel_oracle.run(prog, frame).data) is True


def test_a_ttl_written_without_its_checksum_fix_breaks_checksums_ok(kernel_oracle):
    code = assemble("r2 = *(u32 *)(r1 + 76)\nr3 = *(u32 *)(r1 + 80)\nr4 = r2\nr4 += 23\n"
                    "if r4 > r3 goto +2\nr5 = 9\n*(u8 *)(r2 + 22) = r5\nr0 = 0\nexit")
    prog = pyebpf.Program(code, "sched_cls")
    res = prog.run(FRAME)
    assert res.changed == [Change("IP.ttl", "64", "9")]
    assert res.checksums_ok is _checksums_ok(kernel_oracle.run(prog, FRAME).data) is False


def test_udp_over_ipv4_without_a_checksum_is_valid():
    frame = bytearray(bytes(Ether() / IP() / UDP() / b"data"))
    frame[40:42] = b"\0\0"
    assert returning(0).run(bytes(frame)).checksums_ok


def test_transport_checksums_of_fragments_are_not_judged():
    frame = Ether(bytes(Ether() / IP(flags="MF") / TCP(chksum=0x1234)))
    assert returning(0).run(bytes(frame)).checksums_ok


def test_a_result_shows_its_verdict_by_name():
    assert repr(returning(2).run(FRAME)) == (
        f"Result(verdict=TC_ACT.SHOT (2), data={len(FRAME)} bytes, insn_count=2)")
    assert repr(returning(5, "socket_filter").run(FRAME)).startswith("Result(kept=5,")


def test_raw_mode_results_have_no_packets():
    res = pyebpf.Program(assemble("r0 = 1\nexit")).run(b"abc")
    assert res.packet is None and res.prog_kind == "raw"
    with pytest.raises(AttributeError, match="raw-mode results have memory"):
        res.changed


def test_a_result_run_reuses_keeps_nothing_of_the_run_before():
    # run() takes its Result from a free list of freed ones: the record must read as the
    # new run's alone, whatever the last run set (redirect, csum_ok, network start, trace)
    tc = pyebpf.Program(assemble("r1 = 5\nr2 = 1\ncall 23\nexit"), "sched_cls")   # bpf_redirect
    sf = returning(1000, "socket_filter")
    raw = pyebpf.Program(assemble("r0 = 1\nexit"))
    res = tc.run(FRAME, csum_complete=True, trace=True)
    assert res.redirect == (5, True) and res.csum_ok is True and res.trace is not None
    record = id(res)
    del res
    res = raw.run(b"abc")
    assert id(res) == record      # the free list gave the same record back
    assert (res.prog_kind, res.redirect, res.csum_ok, res.trace, res.skb, res.input,
            res.trace_output, res.data) == ("raw", None, None, None, None, None, None, b"abc")
    del res
    res = sf.run(FRAME, sf_start="network")
    assert res.network_start and res.prog_kind == "socket_filter"
    del res
    res = tc.run(FRAME)
    assert id(res) == record
    assert (res.network_start, res.csum_ok, res.trace, res.redirect) == (False, None, None,
                                                                          (5, True))
