"""tcsim's hook model against the kernel's real datapath, not BPF_PROG_TEST_RUN, in a
network namespace of the test's own (netns.veth_pair), frames sent through vtx from a
packet socket:

- egress: the NAT example attached with ``tc filter add dev vtx egress bpf da obj
  nat4.o sec tc``, every frame of the sample capture sent, and what comes out of the
  peer vrx (read by a packet socket, a VLAN tag the receive path moved to the metadata
  put back from PACKET_AUXDATA, as libpcap does; test_helpers_vlan's sockets) compared
  with tcsim's outputs for the same capture at the egress hook.  A frame the hook drops
  comes back to the sender as ENOBUFS (dev_queue_xmit's NET_XMIT_DROP through
  packet_snd);
- ingress: a program at vrx's clsact ingress that drops TCP, lets other frames into the
  stack and redirects UDP, its TTL lowered (checksum fixed with bpf_l3_csum_replace) and
  the checksum state bpf_csum_level reports written over its UDP checksum (the veth path
  leaves a packet socket's frames CHECKSUM_NONE), to the egress of a third veth vtx2,
  whose peer vrx2 a packet socket reads; plain and VLAN-tagged frames (the receive path moves the tag to the metadata before tc; the
  redirect sends it out again), and frames sent with a virtio_net_hdr flagged DATA_VALID
  (PACKET_VNET_HDR), which still reach tc CHECKSUM_NONE.  What reached the hook and what it dropped are the
  clsact qdisc's counters; compared with tcsim's report and its --redirect-dir capture.
"""
import errno
import io
import json
import socket
import struct
import time
from pathlib import Path

import dpkt
import pytest

from scapy.all import ICMP, IP, TCP, UDP, Dot1Q, Ether, Raw

import bpfc
import netns
import toolpath
from pyebpf.pcap import pcapio, tcsim
from pyebpf.pcap.report import read_line
from test_helpers_vlan import (PACKET_AUXDATA, SOL_PACKET, packet_sockets,
                               received_on_the_wire)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SAMPLE = EXAMPLES / "sample.pcap"
WAIT = 2.0                              # seconds a sent frame has to come out of vrx
PACKET_VNET_HDR = 15                    # linux/if_packet.h
VIRTIO_NET_HDR_F_DATA_VALID = 2         # linux/virtio_net.h


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


# --- ingress: drops, delivery and a redirect to a third veth ---------------------------------

INGRESS = """
#include <linux/in.h>

char _license[] SEC("license") = "GPL";

SEC("tc")
int ingress_steer(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	__u16 old, new, level;

	if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	if (ip->protocol == IPPROTO_TCP)
		return TC_ACT_SHOT;
	if (ip->protocol != IPPROTO_UDP)
		return TC_ACT_OK;
	old = *(__u16 *)&ip->ttl;
	new = old - 1;			/* the TTL is the first byte of the word, as stored */
	bpf_l3_csum_replace(skb, ETH_HLEN + 10, old, new, 2);
	bpf_skb_store_bytes(skb, ETH_HLEN + 8, &new, 2, 0);
	/* the checksum state the veth path gives: -EACCES unless CHECKSUM_UNNECESSARY,
	 * written over the UDP checksum */
	level = bpf_csum_level(skb, BPF_CSUM_LEVEL_QUERY);
	bpf_skb_store_bytes(skb, ETH_HLEN + sizeof(struct iphdr) + 6, &level, 2, 0);
	return bpf_redirect(TARGET, 0);
}
"""
MACS = dict(dst="02:00:00:00:00:01", src="02:00:00:00:00:02")
INGRESS_FRAMES = [bytes(p) for p in (
    Ether(**MACS) / IP(dst="10.9.9.9", ttl=64) / UDP(dport=9) / Raw(b"pyebpf-in-0"),
    Ether(**MACS) / Dot1Q(vlan=5, prio=3) / IP(dst="10.9.9.9", ttl=9) / UDP(dport=9)
    / Raw(b"pyebpf-in-1"),
    Ether(**MACS) / IP(dst="10.9.9.9") / TCP(dport=80) / Raw(b"pyebpf-in-2"),
    Ether(**MACS) / Dot1Q(vlan=7) / IP(dst="10.9.9.9") / TCP(dport=80) / Raw(b"pyebpf-in-3"),
    Ether(**MACS) / IP(dst="10.9.9.9") / ICMP() / Raw(b"pyebpf-in-4"),
    Ether(**MACS) / IP(dst="10.9.9.9", ttl=1) / UDP(dport=53) / Raw(b"pyebpf-in-5"),
)]


@pytest.fixture(scope="module")
def redirect_at_ingress(live_kernel, tmp_path_factory):
    """(send(frame) -> (action, bytes out of vrx2 or None), the program's object, vtx2's
    ifindex)."""
    ip, _ = toolpath.need("ip", "tc", package="iproute2")
    work = tmp_path_factory.mktemp("ingress")
    with netns.veth_pair("hookin") as (name, inside, tc):
        inside(ip, "link", "add", "vtx2", "type", "veth", "peer", "name", "vrx2")
        inside(ip, "link", "set", "vtx2", "up")
        inside(ip, "link", "set", "vrx2", "up")
        target = json.loads(inside(ip, "-j", "link", "show", "vtx2"))[0]["ifindex"]
        obj = work / "ingress.o"
        obj.write_bytes(bpfc.compile_object(INGRESS, flags=("-O2", f"-DTARGET={target}")))
        inside(tc, "qdisc", "add", "dev", "vrx", "clsact")
        inside(tc, "filter", "add", "dev", "vrx", "ingress", "prio", "1", "handle", "1", "bpf",
               "da", "obj", str(obj), "sec", "tc")
        tx, vrx_socket = packet_sockets(name)

        def make_vouching_tx():
            sender = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
            sender.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
            sender.bind(("vtx", 0))
            return sender

        tx_valid = netns.in_netns(name, make_vouching_tx)

        def make_rx():
            rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
            rx.bind(("vrx2", 0))
            rx.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
            return rx

        rx = netns.in_netns(name, make_rx)

        def counters():
            qdiscs = json.loads(inside(tc, "-s", "-j", "qdisc", "show", "dev", "vrx"))
            clsact = next(q for q in qdiscs if q["kind"] == "clsact")
            return clsact["packets"], clsact["drops"]

        def send(frame, data_valid=False):
            before = counters()
            if data_valid:
                # struct virtio_net_hdr: flags, gso_type, hdr_len, gso_size, csum_start,
                # csum_offset
                tx_valid.send(struct.pack("<BBHHHH", VIRTIO_NET_HDR_F_DATA_VALID, 0, 0, 0,
                                          0, 0) + frame)
            else:
                tx.send(frame)
            deadline = time.monotonic() + 5
            while (now := counters())[0] < before[0] + 1:
                assert time.monotonic() < deadline, "the frame never reached tc ingress"
                time.sleep(0.01)
            if now[1] > before[1]:
                return "dropped", None
            try:
                return "redirected", received_on_the_wire(rx, frame[-11:], 0.5)
            except AssertionError:
                return "delivered", None

        with tx, tx_valid, vrx_socket, rx:
            yield send, obj, target


def test_what_tc_ingress_drops_delivers_and_redirects_is_what_tcsim_says(
        redirect_at_ingress, tmp_path, capsys):
    send, obj, target = redirect_at_ingress
    kernel = [send(frame) for frame in INGRESS_FRAMES]
    pcapio.write(tmp_path / "in.pcap", [(k, f, len(f)) for k, f in enumerate(INGRESS_FRAMES)])
    assert tcsim.main([f"{obj}:tc", "-r", str(tmp_path / "in.pcap"), "-q", "--report",
                       str(tmp_path / "r.jsonl"), "--redirect-dir", str(tmp_path / "rd")]) == 0
    report = [read_line(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [r["action"] for r in report] == [action for action, _ in kernel]
    assert {a for a, _ in kernel} == {"dropped", "delivered", "redirected"}
    assert frames_of(tmp_path / "rd" / f"ifindex-{target}.pcap") == \
        [data for action, data in kernel if action == "redirected"]
    capsys.readouterr()


def test_a_frame_sent_flagged_data_valid_still_reaches_tc_checksum_none(
        redirect_at_ingress, tmp_path, capsys):
    """A virtio_net_hdr flagged DATA_VALID on a packet socket's send is not taken as the
    checksums vouched for (packet_snd's virtio_net_hdr_to_skb reads NEEDS_CSUM and GSO
    only): bpf_csum_level(QUERY) at the far side's tc ingress is -EACCES, which the
    program writes over the UDP checksum, as tcsim replays every frame."""
    send, obj, target = redirect_at_ingress
    frames = [INGRESS_FRAMES[0], INGRESS_FRAMES[1], INGRESS_FRAMES[5]]
    kernel = [send(frame, data_valid=True) for frame in frames]
    pcapio.write(tmp_path / "in.pcap", [(k, f, len(f)) for k, f in enumerate(frames)])
    assert tcsim.main([f"{obj}:tc", "-r", str(tmp_path / "in.pcap"), "-q",
                       "--redirect-dir", str(tmp_path / "rd")]) == 0
    out = frames_of(tmp_path / "rd" / f"ifindex-{target}.pcap")
    assert [action for action, _ in kernel] == ["redirected"] * len(frames)
    assert out == [data for _, data in kernel]
    # the program stores the u16 in host (little-endian) order
    assert {dpkt.ethernet.Ethernet(f).data.data.sum.to_bytes(2, "big") for f in out[::2]} == \
        {struct.pack("<h", -errno.EACCES)}
    capsys.readouterr()
