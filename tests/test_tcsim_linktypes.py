"""tcsim reads every linktype a user's captures have (pcap/capio.pxi _to_eth, _from_eth):
Linux cooked SLL (113) and SLL2 (276), raw IP (101, and 12, 14), BSD loopback NULL (0)
and LOOP (108).  The programs see an Ethernet frame built as docs/tcsim.md says, and the
outputs are in the input's linktype with the programs' changes.  dpkt writes the inputs,
scapy and tcpdump judge the outputs."""
import io
import shutil
import struct
import subprocess

import dpkt
import pytest
from scapy.all import IP, UDP, IPv6, Raw, rdpcap
from scapy.layers.l2 import CookedLinux, CookedLinuxV2, Dot1Q, Loopback

from pyebpf.pcap import tcsim
from pyebpf.pcap.report import read_line

MAC = bytes.fromhex("0a0b0c0d0e0f")
PACKETS = [IP(src="10.0.0.1", dst="10.0.0.2", ttl=64) / UDP(dport=53) / Raw(b"q" * 20),
           IPv6(src="fd00::1", dst="fd00::2", hlim=64) / UDP(dport=53) / Raw(b"r" * 7)]
ETHERTYPE = {4: 0x0800, 6: 0x86DD}


def sll(pkt, pkt_type=0):
    return struct.pack("!HHH8sH", pkt_type, 1, 6, MAC + bytes(2),
                       ETHERTYPE[pkt.version]) + bytes(pkt)


def sll2(pkt, pkt_type=0):
    return struct.pack("!HHIHBB8s", ETHERTYPE[pkt.version], 0, 3, 1, pkt_type, 6,
                       MAC + bytes(2)) + bytes(pkt)


def null(pkt, pkt_type=0):
    return struct.pack("<I", 2 if pkt.version == 4 else 30) + bytes(pkt)


def loop(pkt, pkt_type=0):
    return struct.pack("!I", 2 if pkt.version == 4 else 24) + bytes(pkt)


def raw(pkt, pkt_type=0):
    return bytes(pkt)


LINKTYPES = [(113, sll), (276, sll2), (101, raw), (12, raw), (14, raw), (0, null),
             (108, loop)]
IDS = ["sll", "sll2", "raw", "raw12", "raw14", "null", "loop"]

# skb->mark = skb->protocol (network order, as a u32 load reads it), priority = pkt_type
SHOW = ("r2 = *(u32 *)(r1 + 16)\n*(u32 *)(r1 + 8) = r2\nr2 = *(u32 *)(r1 + 4)\n"
        "*(u32 *)(r1 + 32) = r2\nr0 = 0\nexit")
# bpf_skb_store_bytes(skb, 14 + 8, &1, 1, 0): the IPv4 TTL (IPv6 hop limit is at 14 + 7)
TTL_1 = ("r6 = r1\nr2 = 1\n*(u8 *)(r10 - 8) = r2\nr1 = r6\nr2 = {}\nr3 = r10\nr3 += -8\n"
         "r4 = 1\nr5 = 0\ncall 9\nr0 = 0\nexit")
# bpf_skb_vlan_push(skb, htons(ETH_P_8021Q), 5)
VLAN_PUSH = "r2 = 0x81\nr3 = 5\ncall 18\nr0 = 0\nexit"


def capture(path, linktype, frames):
    buf = io.BytesIO()
    w = dpkt.pcap.Writer(buf, linktype=linktype)
    for k, f in enumerate(frames):
        w.writepkt(f, ts=1_700_000_000 + k)
    path.write_bytes(buf.getvalue())


def replay(tmp_path, capsys, program, linktype, frames, *options):
    capture(tmp_path / "in.pcap", linktype, frames)
    (tmp_path / "p.s").write_text(program)
    rc = tcsim.main([str(tmp_path / "p.s"), "-r", str(tmp_path / "in.pcap"), "-o",
                     str(tmp_path / "out.pcap"), "--report", str(tmp_path / "r.jsonl"),
                     *options])
    assert rc == 0, capsys.readouterr().err
    reader = dpkt.pcap.Reader(io.BytesIO((tmp_path / "out.pcap").read_bytes()))
    report = [read_line(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    return reader.datalink(), [bytes(f) for _, f in reader], report


@pytest.mark.parametrize("linktype, make", LINKTYPES, ids=IDS)
def test_a_pass_all_replay_writes_the_capture_back_unchanged(tmp_path, capsys, linktype, make):
    frames = [make(p) for p in PACKETS]
    datalink, out, report = replay(tmp_path, capsys, "r0 = 0\nexit", linktype, frames)
    assert (datalink, out) == (linktype, frames)
    assert [r["len_out"] for r in report] == [len(f) for f in frames]


@pytest.mark.parametrize("linktype, make", LINKTYPES, ids=IDS)
def test_programs_see_the_protocol_of_the_capture_in_an_ethernet_frame(tmp_path, capsys,
                                                                       linktype, make):
    _, _, report = replay(tmp_path, capsys, SHOW, linktype, [make(p) for p in PACKETS])
    assert [r["mark"] for r in report] == [0x0008, 0xDD86]


@pytest.mark.parametrize("pkt_type", [0, 1, 2, 3, 4], ids=["host", "broadcast", "multicast",
                                                          "otherhost", "outgoing"])
@pytest.mark.parametrize("linktype, make", LINKTYPES[:2], ids=IDS[:2])
def test_a_cooked_header_gives_the_packet_type(tmp_path, capsys, linktype, make, pkt_type):
    frames = [make(p, pkt_type) for p in PACKETS]
    _, out, report = replay(tmp_path, capsys, SHOW, linktype, frames)
    assert [r["priority"] for r in report] == [pkt_type] * 2
    assert out == frames


@pytest.mark.parametrize("linktype, make", LINKTYPES[2:], ids=IDS[2:])
def test_frames_without_a_packet_type_arrive_for_this_host(tmp_path, capsys, linktype, make):
    _, _, report = replay(tmp_path, capsys, SHOW, linktype, [make(p) for p in PACKETS])
    assert [r["priority"] for r in report] == [0, 0]


def _layer3(linktype, frame):
    """The IP packet scapy finds in ``frame`` of ``linktype``."""
    layer = {113: CookedLinux, 276: CookedLinuxV2, 0: Loopback, 108: Loopback}.get(linktype)
    if layer is None:
        return IP(frame) if frame[0] >> 4 == 4 else IPv6(frame)
    if linktype == 108:
        frame = frame[:4][::-1] + frame[4:]      # scapy's Loopback is host-order NULL
    return layer(frame).payload


@pytest.mark.parametrize("linktype, make", LINKTYPES, ids=IDS)
def test_bytes_a_program_stores_are_in_the_output_in_the_input_linktype(tmp_path, capsys,
                                                                        linktype, make):
    _, out, _ = replay(tmp_path, capsys, TTL_1.format(22), linktype, [make(PACKETS[0])])
    ip = _layer3(linktype, out[0])
    assert (ip.ttl, ip.dst, bytes(ip.payload.payload)) == (1, "10.0.0.2", b"q" * 20)


@pytest.mark.parametrize("linktype, make", LINKTYPES[:2], ids=IDS[:2])
def test_a_pushed_vlan_tag_is_in_a_cooked_output(tmp_path, capsys, linktype, make):
    _, out, _ = replay(tmp_path, capsys, VLAN_PUSH, linktype, [make(PACKETS[0])])
    cooked = {113: CookedLinux, 276: CookedLinuxV2}[linktype](out[0])
    assert (cooked.proto, cooked[Dot1Q].vlan, cooked[IP].dst) == (0x8100, 5, "10.0.0.2")


@pytest.mark.parametrize("linktype, make", LINKTYPES[2:], ids=IDS[2:])
def test_a_pushed_vlan_tag_is_left_out_where_the_linktype_has_no_room(tmp_path, capsys,
                                                                       linktype, make):
    frames = [make(PACKETS[0])]
    _, out, _ = replay(tmp_path, capsys, VLAN_PUSH, linktype, frames)
    assert out == frames


def test_a_raw_frame_of_no_ip_version_is_reported_and_dropped(tmp_path, capsys):
    capture(tmp_path / "in.pcap", 101, [b"\x10" + bytes(30), bytes(PACKETS[0])])
    (tmp_path / "p.s").write_text("r0 = 0\nexit")
    rc = tcsim.main([str(tmp_path / "p.s"), "-r", str(tmp_path / "in.pcap"), "--drops",
                     str(tmp_path / "d.pcap")])
    err = capsys.readouterr().err.splitlines()
    assert rc == 0
    assert err[0] == (f"tcsim: {tmp_path / 'in.pcap'}: packet 0: its LINKTYPE_RAW header "
                      "names no protocol tc knows (IPv4 or IPv6); dropped")
    dropped = dpkt.pcap.Reader(io.BytesIO((tmp_path / "d.pcap").read_bytes()))
    assert [bytes(f) for _, f in dropped] == [b"\x10" + bytes(30)]


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump is not installed")
@pytest.mark.parametrize("linktype, make", LINKTYPES, ids=IDS)
def test_tcpdump_reads_every_output(tmp_path, capsys, linktype, make):
    if linktype == 14:
        pytest.skip("libpcap reads linktype 14 (OpenBSD's DLT_RAW) as no link type on Linux")
    replay(tmp_path, capsys, TTL_1.format(22), linktype, [make(PACKETS[0])])
    done = subprocess.run(["tcpdump", "-nn", "-v", "-r", str(tmp_path / "out.pcap")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "ttl 1," in done.stdout and "10.0.0.1.53 > 10.0.0.2.53" in done.stdout, done.stdout


def _two_interfaces(path):
    """A pcapng of an Ethernet interface (0) and a raw IP one (1), one packet each."""
    eth = bytes.fromhex("020000000001020000000002") + b"\x08\x00" + bytes(PACKETS[0])
    buf = io.BytesIO()
    idb = dpkt.pcapng.InterfaceDescriptionBlockLE
    w = dpkt.pcapng.Writer(buf, idb=[idb(linktype=1, snaplen=65535),
                                     idb(linktype=101, snaplen=65535)])
    for iface, frame in ((0, eth), (1, bytes(PACKETS[1]))):
        w.writepkt(dpkt.pcapng.EnhancedPacketBlockLE(
            pkt_data=frame, caplen=len(frame), pkt_len=len(frame), iface_id=iface,
            ts_high=0, ts_low=iface))
    path.write_bytes(buf.getvalue())
    return eth


def test_a_pcapng_output_keeps_each_interface_and_its_linktype(tmp_path, capsys):
    eth = _two_interfaces(tmp_path / "in.pcapng")
    (tmp_path / "p.s").write_text("r0 = 0\nexit")
    assert tcsim.main([str(tmp_path / "p.s"), "-r", str(tmp_path / "in.pcapng"), "-o",
                       str(tmp_path / "out.pcapng")]) == 0, capsys.readouterr().err
    packets = rdpcap(str(tmp_path / "out.pcapng"))
    assert [bytes(p) for p in packets] == [eth, bytes(PACKETS[1])]
    assert [type(p).__name__ for p in packets] == ["Ether", "IPv6"]


def test_a_pcap_output_of_interfaces_of_two_linktypes_has_the_first_ones(tmp_path, capsys):
    """The raw IP packet of interface 1 gets the Ethernet header tcsim built for it."""
    eth = _two_interfaces(tmp_path / "in.pcapng")
    (tmp_path / "p.s").write_text("r0 = 0\nexit")
    assert tcsim.main([str(tmp_path / "p.s"), "-r", str(tmp_path / "in.pcapng"), "-o",
                       str(tmp_path / "out.pcap")]) == 0, capsys.readouterr().err
    reader = dpkt.pcap.Reader(io.BytesIO((tmp_path / "out.pcap").read_bytes()))
    assert reader.datalink() == 1
    assert [bytes(f) for _, f in reader] == [eth, bytes(12) + b"\x86\xdd" + bytes(PACKETS[1])]
