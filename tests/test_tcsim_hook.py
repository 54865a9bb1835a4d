"""tcsim's hook model against the kernel's real datapath, not BPF_PROG_TEST_RUN: the NAT
example attached with ``tc filter add dev vtx egress bpf da obj nat4.o sec tc`` in a
network namespace of the test's own, every frame of the sample capture sent through vtx
from a packet socket, and what comes out of the peer vrx (read by a packet socket, a
VLAN tag the receive path moved to the metadata put back from PACKET_AUXDATA, as libpcap
does) compared with tcsim's outputs for the same capture at the egress hook."""
import ctypes
import errno
import io
import os
import select
import shutil
import socket
import struct
import subprocess
import threading
from pathlib import Path

import dpkt
import pytest

from pyebpf.pcap import tcsim

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SAMPLE = EXAMPLES / "sample.pcap"
CLONE_NEWNET = 0x40000000
ETH_P_ALL = 0x0003
SOL_PACKET, PACKET_AUXDATA = 263, 8
TP_STATUS_VLAN_VALID, TP_STATUS_VLAN_TPID_VALID = 0x10, 0x40
AUXDATA = struct.Struct("=IIIHHHH")     # struct tpacket_auxdata
WAIT = 0.5                              # seconds a sent frame has to come out of vrx


def frames_of(path):
    return [bytes(b) for _, b in dpkt.pcap.Reader(io.BytesIO(Path(path).read_bytes()))]


def _in_netns(netns, make):
    """``make()`` run by a thread that joined the namespace (setns moves the calling
    thread only): its sockets stay in that namespace."""
    result = {}

    def work():
        libc = ctypes.CDLL(None, use_errno=True)
        with open(f"/var/run/netns/{netns}") as fd:
            if libc.setns(fd.fileno(), CLONE_NEWNET):
                result["error"] = os.strerror(ctypes.get_errno())
                return
        result["value"] = make()

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    if "error" in result:
        raise RuntimeError(f"setns into {netns}: {result['error']}")
    return result["value"]


def _sockets():
    tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    tx.bind(("vtx", 0))
    rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    rx.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    rx.bind(("vrx", ETH_P_ALL))
    return tx, rx


def _receive(rx):
    """The next frame vrx received, with its VLAN tag back in the bytes; None if none
    came within WAIT."""
    if not select.select([rx], [], [], WAIT)[0]:
        return None
    data, ancillary, _, _ = rx.recvmsg(65535, socket.CMSG_SPACE(AUXDATA.size))
    for level, kind, raw in ancillary:
        if level == SOL_PACKET and kind == PACKET_AUXDATA:
            status, _, _, _, _, tci, tpid = AUXDATA.unpack_from(raw)
            if status & TP_STATUS_VLAN_VALID:
                tpid = tpid if status & TP_STATUS_VLAN_TPID_VALID else 0x8100
                data = data[:12] + struct.pack("!HH", tpid, tci) + data[12:]
    return data


@pytest.fixture(scope="module", params=["nat4.o", "nat4_v2.o"])
def nat_at_egress(request, live_kernel):
    """(send(frame) -> the frame out of vrx or None, the object at vtx's clsact egress):
    the NAT example, and its v2, which drops ICMP from inside."""
    ip, tc = shutil.which("ip"), shutil.which("tc")
    if not (ip and tc):
        pytest.skip("iproute2's ip and tc are not installed (apt-get install iproute2)")
    name = f"pyebpf-hook-{os.getpid()}"
    made = subprocess.run([ip, "netns", "add", name], capture_output=True, text=True)
    if made.returncode:
        pytest.skip(f"cannot create a network namespace: {made.stderr.strip()}")

    def inside(*cmd):
        done = subprocess.run([ip, "netns", "exec", name, *cmd], capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"{' '.join(cmd)} in netns {name}: {done.stderr.strip()}")

    try:
        for setting in ("all", "default"):
            inside("sysctl", "-qw", f"net.ipv6.conf.{setting}.disable_ipv6=1")
        inside(ip, "link", "add", "vtx", "type", "veth", "peer", "name", "vrx")
        for dev in ("vtx", "vrx"):
            inside(ip, "link", "set", dev, "up")
        inside(tc, "qdisc", "add", "dev", "vtx", "clsact")
        inside(tc, "filter", "add", "dev", "vtx", "egress", "prio", "1", "handle", "1", "bpf",
               "da", "obj", str(EXAMPLES / request.param), "sec", "tc")
        tx, rx = _in_netns(name, _sockets)

        def send(frame):
            try:
                tx.send(frame)
            except OSError as exc:
                # the egress hook dropped it: dev_queue_xmit's NET_XMIT_DROP, which
                # packet_snd returns as ENOBUFS
                if exc.errno != errno.ENOBUFS:
                    raise
                return None
            return _receive(rx)

        with tx, rx:
            yield send, EXAMPLES / request.param
    finally:
        subprocess.run([ip, "netns", "del", name], capture_output=True)


def test_what_leaves_the_egress_hook_is_what_tcsim_delivers(nat_at_egress, tmp_path, capsys):
    send, obj = nat_at_egress
    sent = frames_of(SAMPLE)
    kernel = [send(frame) for frame in sent]
    assert tcsim.main([str(obj), "-r", str(SAMPLE), "--hook", "egress",
                       "-q", "-o", str(tmp_path / "out.pcap"), "--drops",
                       str(tmp_path / "drops.pcap")]) == 0
    delivered, dropped = frames_of(tmp_path / "out.pcap"), frames_of(tmp_path / "drops.pcap")
    assert [f for f in kernel if f is not None] == delivered
    assert [f for f, k in zip(sent, kernel) if k is None] == dropped
    assert sum(a != b for a, b in zip(sent, kernel) if b is not None) == 4 - len(dropped)
    capsys.readouterr()
