"""Frames the kernel's receive path frees before the tc ingress hook: tcsim counts them
as dropped before tc, with the reason, and never hands them to the program.

__netif_receive_skb_core untags an in-band 802.1Q/802.1ad tag (skb_vlan_untag) before
the taps and tc; skb_vlan_untag frees a frame too short to pull the tag and the
encapsulated protocol (20 bytes; the tag alone, 18 bytes, in Linux 4.6).  The kernel
judges it on its real datapath: a veth pair in a network namespace of the test's own,
the program at clsact ingress, frames sent by a packet socket, and the clsact qdisc's
counters (packets that reached the hook, packets the program dropped).
"""
import json
import socket
import subprocess
import time

import bpfc
import netns
import pytest

from scapy.all import IP, UDP, Dot1AD, Dot1Q, Ether, Raw

from pyebpf.pcap import pcapio, tcsim
from pyebpf.pcap.report import read_line

MACS = bytes.fromhex("020000000001" "020000000002")
PLAIN = bytes(Ether(dst="02:00:00:00:00:01", src="02:00:00:00:00:02") / IP(dst="10.9.9.9")
              / UDP(dport=9) / Raw(b"pyebpf-rx"))
FRAMES = {  # name: frame; a cut-off tag is the MAC addresses, the TPID and part of the rest
    **{f"8021q-{n}": (MACS + bytes.fromhex("81000005" "0800" "4500"))[:n] for n in range(14, 21)},
    **{f"8021ad-{n}": (MACS + bytes.fromhex("88a80005" "0800" "4500"))[:n] for n in (16, 19, 20)},
    "8021q-full": bytes(Ether(dst="02:00:00:00:00:01") / Dot1Q(vlan=5) / IP() / UDP()),
    "8021ad-full": bytes(Ether(dst="02:00:00:00:00:01") / Dot1AD(vlan=5) / Dot1Q(vlan=6)
                         / IP() / UDP()),
    "plain-14": PLAIN[:12] + b"\x08\x00",
    "plain": PLAIN,
}
# Drop what carries a tag in the metadata, let the rest through: the three outcomes
# (freed before tc, dropped by the program, delivered) are told apart.
SOURCE = """
char _license[] SEC("license") = "GPL";

SEC("tc")
int vlan_shot(struct __sk_buff *skb)
{
    return skb->vlan_present ? TC_ACT_SHOT : TC_ACT_OK;
}
"""
VLAN_SHOT = "r0 = *(u32 *)(r1 + 0x18)\nif r0 == 0 goto out\nr0 = 2\nout:\nexit\n"


def replay(tmp_path, program, names, *options):
    """tcsim's report for FRAMES[name] of ``names`` through ``program`` (a file)."""
    pcapio.write(tmp_path / "in.pcap", [(k, FRAMES[n], len(FRAMES[n]))
                                        for k, n in enumerate(names)])
    rc = tcsim.main([str(program), "-r", str(tmp_path / "in.pcap"), "--report",
                     str(tmp_path / "r.jsonl"), "--drops", str(tmp_path / "d.pcap"),
                     *options])
    assert rc == 0
    return [read_line(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]


@pytest.fixture
def vlan_shot(tmp_path):
    path = tmp_path / "vlan_shot.s"
    path.write_text(VLAN_SHOT)
    return path


CUT = [n for n in FRAMES if n.startswith("802") and len(FRAMES[n]) < 20]


@pytest.mark.parametrize("name", CUT)
def test_at_ingress_a_frame_that_cuts_off_its_vlan_tag_is_dropped_before_tc(tmp_path, capsys,
                                                                            vlan_shot, name):
    rep = replay(tmp_path, vlan_shot, [name])
    n = len(FRAMES[name])
    assert (rep[0]["action"], rep[0]["programs_run"], rep[0]["verdict"]) == \
        ("dropped_before_tc", 0, None)
    assert rep[0]["dropped_before_tc"] == (f"skb_vlan_untag: the {n}-byte frame cuts off its "
                                           "VLAN tag (needs 20 bytes)")
    assert pcapio.read(tmp_path / "d.pcap").frames == [FRAMES[name]]
    assert "1 dropped before tc" in capsys.readouterr().err


def test_at_egress_the_program_gets_a_frame_that_cuts_off_its_vlan_tag(tmp_path, capsys,
                                                                      vlan_shot):
    rep = replay(tmp_path, vlan_shot, CUT, "--hook", "egress")
    assert {(r["action"], r["programs_run"]) for r in rep} == {("delivered", 1)}
    capsys.readouterr()


def test_in_the_4_6_profile_the_tag_without_the_protocol_after_it_is_untagged(tmp_path,
                                                                              capsys, vlan_shot):
    """Linux 4.6's skb_vlan_untag pulled the 4-byte tag only (the encapsulated protocol's
    two bytes joined the pull in 2020)."""
    names = ["8021q-17", "8021q-18", "8021q-19", "8021q-20"]
    rep = replay(tmp_path, vlan_shot, names, "--profile", "4.6")
    assert [r["action"] for r in rep] == ["dropped_before_tc", "dropped", "dropped", "dropped"]
    assert rep[0]["dropped_before_tc"].endswith("(needs 18 bytes)")
    capsys.readouterr()


# --- the kernel's datapath -----------------------------------------------------------------

@pytest.fixture(scope="module")
def veth_ingress(tmp_path_factory, live_kernel):
    """(send(frame) -> outcome, object file): a namespace of our own with a veth pair
    vtx -> vrx (netns.veth_pair) and vlan_shot at vrx's clsact ingress."""
    if not bpfc.CLANG:
        pytest.skip("clang-19 not installed (apt-get install clang-19 libbpf-dev)")
    work = tmp_path_factory.mktemp("rx")
    src, obj = work / "vlan_shot.c", work / "vlan_shot.o"
    src.write_text(bpfc.PRELUDE + SOURCE)
    include = [f"-I/usr/include/{bpfc._MULTIARCH}"] if bpfc._MULTIARCH else []
    subprocess.run([bpfc.CLANG, "-O2", "-g", "-target", "bpf", *include, "-c", str(src), "-o",
                    str(obj)], check=True, capture_output=True)
    with netns.veth_pair("rx") as (name, inside, tc):
        inside(tc, "qdisc", "add", "dev", "vrx", "clsact")
        inside(tc, "filter", "add", "dev", "vrx", "ingress", "prio", "1", "handle", "1", "bpf",
               "da", "obj", str(obj), "sec", "tc")
        tx = _packet_socket(name)

        def counters():
            qdiscs = json.loads(inside(tc, "-s", "-j", "qdisc", "show", "dev", "vrx"))
            clsact = next(q for q in qdiscs if q["kind"] == "clsact")
            return clsact["packets"], clsact["drops"]

        def send(frame):
            """What vrx's ingress did with ``frame``: a plain frame follows it, and once
            that one has reached the hook (one backlog, in order) the counters tell."""
            before = counters()
            tx.send(frame)
            tx.send(PLAIN)
            deadline = time.monotonic() + 5
            while (now := counters())[0] < before[0] + 1:
                assert time.monotonic() < deadline, "the plain frame never reached tc"
                time.sleep(0.01)
            packets, drops = now[0] - before[0] - 1, now[1] - before[1]
            return "dropped_before_tc" if not packets else "dropped" if drops else "delivered"

        with tx:
            yield send, obj


def _packet_socket(netns_name):
    """A packet socket bound to vtx, in the namespace."""
    def make():
        tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        tx.bind(("vtx", 0))
        return tx

    return netns.in_netns(netns_name, make)


def test_what_reaches_tc_ingress_and_what_the_program_drops_match_the_kernels_datapath(
        veth_ingress, tmp_path, capsys):
    send, obj = veth_ingress
    names = list(FRAMES)
    kernel = {name: send(FRAMES[name]) for name in names}
    assert set(kernel.values()) == {"dropped_before_tc", "dropped", "delivered"}
    rep = replay(tmp_path, f"{obj}:tc", names)
    assert {n: r["action"] for n, r in zip(names, rep)} == kernel
    capsys.readouterr()
