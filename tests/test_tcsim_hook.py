"""tcsim's hook model against the kernel's real datapath, not BPF_PROG_TEST_RUN: the NAT
example attached with ``tc filter add dev vtx egress bpf da obj nat4.o sec tc`` in a
network namespace of the test's own (netns.veth_pair), every frame of the sample capture
sent through vtx from a packet socket, and what comes out of the peer vrx (read by a
packet socket, a VLAN tag the receive path moved to the metadata put back from
PACKET_AUXDATA, as libpcap does; test_helpers_vlan's sockets) compared with tcsim's
outputs for the same capture at the egress hook.  A frame the hook drops comes back to
the sender as ENOBUFS (dev_queue_xmit's NET_XMIT_DROP through packet_snd)."""
import errno
import io
from pathlib import Path

import dpkt
import pytest

import netns
from pyebpf.pcap import tcsim
from test_helpers_vlan import packet_sockets, received_on_the_wire

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SAMPLE = EXAMPLES / "sample.pcap"
WAIT = 2.0                              # seconds a sent frame has to come out of vrx


def frames_of(path):
    return [bytes(b) for _, b in dpkt.pcap.Reader(io.BytesIO(Path(path).read_bytes()))]


@pytest.fixture(scope="module", params=["nat4.o", "nat4_v2.o"])
def nat_at_egress(request, live_kernel):
    """(send(frame) -> the frame out of vrx or None, the object at vtx's clsact egress):
    the NAT example, and its v2, which drops ICMP from inside."""
    with netns.veth_pair("hook") as (name, inside, tc):
        inside(tc, "qdisc", "add", "dev", "vtx", "clsact")
        inside(tc, "filter", "add", "dev", "vtx", "egress", "prio", "1", "handle", "1", "bpf",
               "da", "obj", str(EXAMPLES / request.param), "sec", "tc")
        tx, rx = packet_sockets(name)

        def send(frame):
            try:
                tx.send(frame)
            except OSError as exc:
                # the egress hook dropped it: dev_queue_xmit's NET_XMIT_DROP, which
                # packet_snd returns as ENOBUFS
                if exc.errno != errno.ENOBUFS:
                    raise
                return None
            return received_on_the_wire(rx, b"", WAIT)

        with tx, rx:
            yield send, EXAMPLES / request.param


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
