"""``tcsim --cbpf``: a capture replayed through a classic socket filter keeps what a
packet socket with that filter keeps (test_cbpf_kernel.py holds the kernel comparison
of the filter runs themselves)."""
import pytest
from scapy.all import IP, TCP, UDP, Dot1Q, Ether, Raw, wrpcap

from pyebpf import cbpf
from pyebpf.errors import ClassicError
from pyebpf.pcap import pcapio, tcsim

try:
    cbpf.compile("ip")
    PCAP_ABSENT = None
except ClassicError as exc:
    PCAP_ABSENT = str(exc)
needs_libpcap = pytest.mark.skipif(PCAP_ABSENT is not None, reason=str(PCAP_ABSENT))

PACKETS = [
    Ether() / IP() / TCP(dport=80) / Raw(b"x" * 100),
    Ether() / IP() / TCP(dport=81),
    Ether() / IP() / UDP(dport=53) / Raw(b"q" * 30),
    Ether() / Dot1Q(vlan=3) / IP() / TCP(dport=80) / Raw(b"y" * 50),
]


@pytest.fixture
def capture(tmp_path):
    path = tmp_path / "in.pcap"
    wrpcap(str(path), PACKETS)
    return path


def ddd(insns):
    return f"{len(insns)}\n" + "".join(f"{i.code} {i.jt} {i.jf} {i.k}\n" for i in insns)


@needs_libpcap
def test_the_output_holds_the_packets_the_filter_keeps_cut_to_its_return_value(capture, tmp_path):
    (tmp_path / "f.ddd").write_text(ddd(cbpf.compile("tcp port 80", snaplen=60)))
    assert tcsim.main(["-r", str(capture), "--cbpf", str(tmp_path / "f.ddd"),
                       "-o", str(tmp_path / "out.pcap")]) == 0
    frames = [bytes(p) for p in PACKETS]
    # the tagged frame: a packet socket sees it untagged (skb_vlan_untag), the snap length
    # applies to that skb, and the capture shows the tag put back
    assert pcapio.read(tmp_path / "out.pcap").frames == [frames[0][:60], frames[3][:64]]


@needs_libpcap
def test_dropped_packets_go_to_the_drops_file_whole(capture, tmp_path):
    assert tcsim.main(["-r", str(capture), "--cbpf", "udp", "-o", str(tmp_path / "o.pcap"),
                       "--drops", str(tmp_path / "d.pcap")]) == 0
    frames = [bytes(p) for p in PACKETS]
    assert pcapio.read(tmp_path / "o.pcap").frames == [frames[2]]
    assert pcapio.read(tmp_path / "d.pcap").frames == [frames[0], frames[1], frames[3]]


def test_a_struct_sock_filter_file_is_read_as_bytes(capture, tmp_path):
    (tmp_path / "f.bpf").write_bytes(cbpf.to_bytes([cbpf.SockFilter(6, 0, 0, 20)]))
    assert tcsim.main(["-r", str(capture), "--cbpf", str(tmp_path / "f.bpf"),
                       "-o", str(tmp_path / "o.pcap")]) == 0
    assert [len(f) for f in pcapio.read(tmp_path / "o.pcap").frames] == [20, 20, 20, 24]


@needs_libpcap
def test_a_bad_expression_is_one_line_and_writes_nothing(capture, tmp_path, capsys):
    assert tcsim.main(["-r", str(capture), "--cbpf", "tcp prot 80",
                       "-o", str(tmp_path / "o.pcap")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tcsim: --cbpf tcp prot 80: filter expression") and err.count("\n") == 1
    assert not (tmp_path / "o.pcap").exists()


def test_a_filter_the_kernel_refuses_is_named_with_its_instruction(capture, tmp_path, capsys):
    (tmp_path / "f.ddd").write_text("1\n0 0 0 0\n")
    assert tcsim.main(["-r", str(capture), "--cbpf", str(tmp_path / "f.ddd")]) == 1
    assert "classic pc 0 (ld #0x0): the last instruction must be a return" in capsys.readouterr().err


def test_programs_and_cbpf_together_are_refused(capture, tmp_path, capsys):
    assert tcsim.main(["prog.o", "-r", str(capture), "--cbpf", "ip"]) == 1
    assert "not both" in capsys.readouterr().err
