"""``tcsim --annotated OUT.pcapng`` (pcap/annotate.pxi): every packet as it came in and
as it went out, on interfaces ``in`` and ``out``, each with a comment on its outcome;
tshark and dpkt read it back."""
import io
import shutil
import subprocess
from pathlib import Path

import dpkt
import pytest

from scapy.all import ICMP, IP, TCP, UDP, Ether, Dot1Q

import test_tcsim_cli
from pyebpf.pcap import pcapio, tcsim

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SAMPLE = EXAMPLES / "sample.pcap"
ARROW = "\u2192"

FRAMES = [bytes(p) for p in (
    Ether() / IP(src="10.1.2.3") / TCP(dport=80), Ether() / IP() / UDP(dport=53),
    Ether() / IP() / ICMP(), Ether() / Dot1Q(vlan=5) / IP() / TCP(), Ether() / IP() / TCP())]
# test_tcsim_cli's program (TCP dropped, UDP redirected to 3's ingress, ICMP marked 9,
# the rest passed) after a bpf_trace_printk("hi")
BY_PROTO = """\
r6 = r1
r2 = 0x6968
*(u32 *)(r10 - 4) = r2
r1 = r10
r1 += -4
r2 = 4
call 6
r1 = r6
""" + test_tcsim_cli.BY_PROTO


@pytest.fixture
def work(tmp_path):
    pcapio.write(tmp_path / "in.pcap", [(k * 1000, f, len(f)) for k, f in enumerate(FRAMES)])
    (tmp_path / "prog.s").write_text(BY_PROTO)
    return tmp_path


def annotate(tmp_path, *argv):
    out = tmp_path / "a.pcapng"
    assert tcsim.main([*map(str, argv), "-q", "--annotated", str(out)]) == 0
    return out


def read_dpkt(path):
    """[(interface name, bytes)] of a pcapng written by tcsim."""
    reader = dpkt.pcapng.Reader(io.BytesIO(Path(path).read_bytes()))
    names = ["in", "out"]
    return [(names[k % 2], bytes(b)) for k, (_, b) in enumerate(reader)]


def tshark_fields(path, *fields, display=None):
    tshark = shutil.which("tshark")
    if tshark is None:
        pytest.skip("tshark is not installed (apt-get install tshark)")
    cmd = [tshark, "-r", str(path), "-T", "fields", "-E", "separator=|",
           *[x for f in fields for x in ("-e", f)]]
    if display:
        cmd += ["-Y", display]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return [line.split("|") for line in out.splitlines()]


def test_every_packet_appears_as_it_came_in_and_as_it_went_out(work):
    path = annotate(work, work / "prog.s", "-r", work / "in.pcap", "--hook", "egress")
    assert read_dpkt(path) == [(side, f) for f in FRAMES for side in ("in", "out")]


def test_the_out_copy_holds_the_bytes_the_programs_left(tmp_path):
    path = annotate(tmp_path, EXAMPLES / "nat4.o", "-r", SAMPLE, "--hook", "egress",
                    "-o", tmp_path / "o.pcap")
    outs = [b for side, b in read_dpkt(path) if side == "out"]
    delivered = [bytes(b) for _, b in dpkt.pcap.Reader(io.BytesIO(
        (tmp_path / "o.pcap").read_bytes()))]
    assert outs == delivered


def test_tshark_reads_the_interfaces_with_hook_ifindex_and_direction(work):
    path = annotate(work, work / "prog.s", "-r", work / "in.pcap", "--field", "ifindex=4")
    rows = tshark_fields(path, "frame.interface_name", "frame.interface_description",
                         "frame.packet_flags_direction")
    assert rows[:2] == [["in", "tc ingress hook, ifindex 4: packets as they came in", "0x00000001"],
                        ["out", "tc ingress hook, ifindex 4: packets as they went out",
                         "0x00000002"]]


def test_the_comment_names_verdict_action_program_changes_and_trace(work):
    prog = work / "prog.s"
    path = annotate(work, prog, "-r", work / "in.pcap", "--hook", "egress")
    comments = [c for (c,) in tshark_fields(path, "frame.comment")][::2]
    trace = "; trace_printk: hi"
    assert comments == [
        f"TC_ACT_SHOT; dropped; program 1 ({prog}){trace}",
        f"TC_ACT_REDIRECT; redirected to 3 ingress; program 1 ({prog}){trace}",
        f"TC_ACT_OK; delivered; program 1 ({prog}); mark 0 {ARROW} 9{trace}",
        # at egress the tag stays in the bytes: byte 23 is the low byte of ipv4.id, 1
        f"TC_ACT_OK; delivered; program 1 ({prog}); mark 0 {ARROW} 9{trace}",
        f"TC_ACT_SHOT; dropped; program 1 ({prog}){trace}",
    ]


def test_changed_header_fields_are_named_with_old_and_new_values(tmp_path):
    path = annotate(tmp_path, EXAMPLES / "nat4.o", "-r", SAMPLE, "--hook", "egress")
    rows = tshark_fields(path, "frame.comment", display='frame.comment contains "ipv4.src"')
    assert len(rows) == 8        # the 4 packets from inside, in and out
    assert rows[0][0].endswith(f"; ipv4.src 10.1.2.3 {ARROW} 203.0.113.1; tcp.srcport 51000 "
                               f"{ARROW} 20824; tcp.csum 0x7ee1 {ARROW} 0xc4c3")


def test_wireshark_filters_select_the_dropped_packets(tmp_path):
    path = annotate(tmp_path, EXAMPLES / "nat4_v2.o", "-r", SAMPLE, "--hook", "egress")
    rows = tshark_fields(path, "frame.interface_name", "ip.src",
                         display='frame.comment contains "TC_ACT_SHOT"')
    assert rows == [["in", "10.1.2.4"], ["out", "10.1.2.4"]]


def test_a_fault_is_in_the_comment(work):
    (work / "fault.s").write_text("r2 = *(u32 *)(r1 + 0x4c)\nr3 = *(u8 *)(r2 + 100)\n"
                                  "r0 = 0\nexit")
    path = annotate(work, work / "fault.s", "-r", work / "in.pcap", "--no-verify")
    (first,) = tshark_fields(path, "frame.comment")[0]
    assert first.startswith(f"fault; dropped; program 1 ({work / 'fault.s'}); fault in "
                            "program 1 at pc 1: ")


def test_a_frame_freed_before_tc_says_why(tmp_path):
    short = bytes(Ether() / Dot1Q(vlan=5))[:17]
    pcapio.write(tmp_path / "in.pcap", [(0, short, len(short))])
    (tmp_path / "p.s").write_text("r0 = 0\nexit")
    path = annotate(tmp_path, tmp_path / "p.s", "-r", tmp_path / "in.pcap")
    comments = [c for (c,) in tshark_fields(path, "frame.comment")]
    assert comments[0].startswith("dropped before tc; skb_vlan_untag: the 17-byte frame")
