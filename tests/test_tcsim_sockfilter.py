"""``tcsim --type socket_filter``: a capture replayed through an eBPF socket filter keeps
what a packet socket with that filter (SO_ATTACH_BPF) keeps, each frame cut to the
filter's return value; the kernel's packet socket on a veth pair in a namespace of the
test's own is the judge.  ``--sf-start network`` runs the filter from the network header
as an IP socket's (and BPF_PROG_TEST_RUN) does: its return values against test_run's."""
import io
import select
import socket
import struct
import sys
from pathlib import Path

import dpkt
import pytest

from pyebpf import asm, isa
from pyebpf.pcap import pcapio, tcsim
from pyebpf.pcap.report import read_line

sys.path.insert(0, str(Path(__file__).parent))
from test_cbpf_kernel import FRAMES, MAC_RX, MARK, SENTINEL, veth  # noqa: E402,F401

SOL_PACKET, PACKET_AUXDATA = 263, 8            # linux/socket.h, linux/if_packet.h
TP_STATUS_VLAN_VALID, TP_STATUS_VLAN_TPID_VALID = 0x10, 0x40

FILTERS = {
    "keep all": "r0 = -1\nexit",
    "drop all": "r0 = 0\nexit",
    "snap 60": "r0 = 60\nexit",
    "half the length": "r0 = *(u32 *)(r1 + 0)\nr0 >>= 1\nexit",
    "ipv4 only, 100 bytes": ("r2 = *(u32 *)(r1 + 16)\nr0 = 0\nif r2 != 0x8 goto out\n"
                             "r0 = 100\nout:\nexit"),
    "packet type": "r0 = *(u32 *)(r1 + 4)\nr0 += 20\nexit",
    "mark": "r0 = *(u32 *)(r1 + 8)\nr0 &= 0x7f\nr0 += 1\nexit",
    "vlan tci": "r0 = *(u32 *)(r1 + 24)\nr0 &= 0x7f\nr0 += 30\nexit",
    "skb_load_bytes": ("r6 = r1\nr2 = 23\nr3 = r10\nr3 += -8\nr4 = 1\ncall 26\n"
                       "if r0 != 0 goto fail\nr0 = *(u8 *)(r10 - 8)\nr0 += 40\nexit\n"
                       "fail:\nr0 = 10\nexit"),
    "ld_abs": "r6 = r1\nr0 = *(u8 *)skb[23]\nr0 += 50\nexit",
}


def kept_by_the_kernel(veth, code, frames):
    """What the packet socket with the eBPF filter ``code`` received of ``frames``, in
    order, a tag the receive path moved to the metadata put back as tcpdump shows it."""
    from pyebpf import kernel
    tx, rx, _ = veth
    while select.select([rx], [], [], 0)[0]:
        rx.recv(65535)
    rx.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    with kernel.KernelProgram(code, "socket_filter") as prog:
        rx.setsockopt(socket.SOL_SOCKET, isa.SO_ATTACH_BPF, prog.fd)
        for frame in frames:
            tx.send(frame)
        rx.setsockopt(socket.SOL_SOCKET, isa.SO_DETACH_FILTER, 0)
    tx.send(bytes.fromhex(MAC_RX.replace(":", "")) + bytes(6) + b"\x88\xb5" + SENTINEL)
    got = []
    while select.select([rx], [], [], 2.0)[0]:
        data, anc, _, address = rx.recvmsg(65535, socket.CMSG_SPACE(20))
        if address[2] == socket.PACKET_OUTGOING:
            continue
        if SENTINEL in data:
            return got
        for level, kind, value in anc:
            if (level, kind) == (SOL_PACKET, PACKET_AUXDATA):
                status, _, _, _, _, tci, tpid = struct.unpack("IIIHHHH", value[:20])
                if status & TP_STATUS_VLAN_VALID:
                    tpid = tpid if status & TP_STATUS_VLAN_TPID_VALID else 0x8100
                    data = data[:12] + struct.pack("!HH", tpid, tci) + data[12:]
        got.append(data)
    raise AssertionError("the sentinel frame did not arrive on vrx within 2 s")


def kept_by_tcsim(tmp_path, veth, text, frames):
    _, _, ifindex = veth
    pcapio.write(tmp_path / "in.pcap", [(k, f, len(f)) for k, f in enumerate(frames)])
    (tmp_path / "f.s").write_text(text)
    assert tcsim.main([str(tmp_path / "f.s"), "--type", "socket_filter", "-r",
                       str(tmp_path / "in.pcap"), "-o", str(tmp_path / "out.pcap"),
                       "--field", f"ifindex={ifindex}", "--field", f"mark={MARK}",
                       "--field", f"dev_addr={MAC_RX}",
                       "--field", "dev_broadcast=ff:ff:ff:ff:ff:ff"]) == 0
    out = dpkt.pcap.Reader(io.BytesIO((tmp_path / "out.pcap").read_bytes()))
    return [bytes(f) for _, f in out]


@pytest.mark.parametrize("name", FILTERS)
def test_a_socket_filter_replay_keeps_what_a_packet_socket_keeps(tmp_path, veth, name):
    code = asm.assemble(FILTERS[name])
    assert kept_by_tcsim(tmp_path, veth, FILTERS[name], FRAMES) == \
        kept_by_the_kernel(veth, code, FRAMES)


NETWORK = ["half the length", "skb_load_bytes", "ipv4 only, 100 bytes"]


@pytest.mark.parametrize("name", NETWORK)
def test_from_the_network_header_the_return_values_are_test_runs(tmp_path, kernel_oracle,
                                                                 capsys, name):
    frames = [f for f in FRAMES if f[12:14] in (b"\x08\x00", b"\x86\xdd")]
    pcapio.write(tmp_path / "in.pcap", [(k, f, len(f)) for k, f in enumerate(frames)])
    (tmp_path / "f.s").write_text(FILTERS[name].replace("r2 = 23", "r2 = 9"))
    assert tcsim.main([str(tmp_path / "f.s"), "--type", "socket_filter", "--sf-start",
                       "network", "-r", str(tmp_path / "in.pcap"), "--report",
                       str(tmp_path / "r.jsonl")]) == 0, capsys.readouterr().err
    ours = [read_line(line)["retval"] & 0xFFFFFFFF
            for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    code = asm.assemble(FILTERS[name].replace("r2 = 23", "r2 = 9"))
    with kernel_oracle.KernelProgram(code, "socket_filter") as prog:
        theirs = [prog.test_run(f).retval for f in frames]
    assert ours == theirs


def test_a_packet_socket_runs_one_filter(tmp_path, capsys):
    pcapio.write(tmp_path / "in.pcap", [(0, FRAMES[0], len(FRAMES[0]))])
    (tmp_path / "f.s").write_text(FILTERS["keep all"])
    assert tcsim.main([str(tmp_path / "f.s"), str(tmp_path / "f.s"), "--type",
                       "socket_filter", "-r", str(tmp_path / "in.pcap")]) == 1
    assert capsys.readouterr().err == "tcsim: a packet socket runs one socket filter, not 2\n"


def test_sf_start_applies_to_socket_filters_only(tmp_path, capsys):
    (tmp_path / "f.s").write_text(FILTERS["keep all"])
    assert tcsim.main([str(tmp_path / "f.s"), "--sf-start", "network", "-r", "x.pcap"]) == 1
    assert capsys.readouterr().err == ("tcsim: --sf-start applies to socket filters (--type "
                                       "socket_filter, --cbpf) only\n")
