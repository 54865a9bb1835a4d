"""bpf_skb_vlan_push (18) and bpf_skb_vlan_pop (19), held against the kernel.

Each program runs a sequence of helper calls on a SCHED_CLS skb and then exposes what
test_run hides (docs/kernel-notes.md): ``mark`` packs the helpers' return
codes (one byte per call, last call lowest), cb[0..4] hold vlan_present, vlan_tci,
vlan_proto, protocol and len as the program reads them.  skbdiff.assert_same then
compares those, the retval and the packet bytes with BPF_PROG_TEST_RUN.  test_run
cannot hand the kernel a frame with an accelerated tag, so a metadata tag on the
kernel side always comes from a push in the same program.
"""
import select
import socket
import struct
import subprocess
import time

import pytest
from scapy.layers.l2 import Dot1AD, Dot1Q, Ether, LLC
from scapy.layers.inet import IP, UDP

import pyebpf
from pyebpf import kernel

import bpfc
import netns as netns_
import skbdiff

CLS = "sched_cls"
Q, AD = 0x0081, 0xA888          # htons(0x8100), htons(0x88a8): what a program passes

MACS = dict(dst="02:00:00:00:00:01", src="02:00:00:00:00:02")
INNER = IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=1000, dport=2000) / b"vlan test payload"
UNTAGGED = bytes(Ether(**MACS) / INNER)
TAG_Q = bytes(Ether(**MACS) / Dot1Q(prio=5, dei=1, vlan=5) / INNER)          # TCI 0xb005
TAG_AD = bytes(Ether(**MACS) / Dot1AD(vlan=7) / INNER)
QINQ = bytes(Ether(**MACS) / Dot1AD(vlan=1) / Dot1Q(vlan=2) / INNER)
TRIPLE = bytes(Ether(**MACS) / Dot1AD(vlan=1) / Dot1Q(vlan=2) / Dot1Q(vlan=3) / INNER)
TAG_9100 = bytes(Ether(**MACS, type=0x9100) / Dot1Q(vlan=9) / INNER)
# a tag around an 802.3 length field: raw IPX ("ff ff") or 802.2 LLC
TAG_IPX = bytes(Ether(**MACS) / Dot1Q(vlan=4, type=30) / (b"\xff\xff" + bytes(28)))
TAG_LLC = bytes(Ether(**MACS) / Dot1Q(vlan=4, type=30) / LLC(dsap=0x42, ssap=0x42) / bytes(27))
# 12 MAC bytes, TPID 0x8100, then fewer than the 4 bytes a tag needs, or exactly 4
SHORT_TAG = {n: UNTAGGED[:12] + b"\x81\x00\x00\x05\x08\x00"[:n - 12] for n in (14, 15, 16, 17, 18)}
SHORT_TAG_LLC = UNTAGGED[:12] + b"\x81\x00\x00\x05\x00\x10"        # 18 bytes, EtherType 0x10

FRAMES = {"untagged": UNTAGGED, "8021q": TAG_Q, "8021ad": TAG_AD, "qinq": QINQ,
          "triple": TRIPLE, "tpid9100": TAG_9100, "ipx": TAG_IPX, "llc": TAG_LLC}


def push(proto, tci):
    return f"r1 = r6\nr2 = {proto:#x} ll\nr3 = {tci:#x} ll\ncall 18\n"


POP = "r1 = r6\ncall 19\n"


def vlan_prog(*calls):
    """The calls, each return code shifted into r7, then the snapshot epilogue."""
    body = "".join(c + "r0 &= 0xff\nr7 <<= 8\nr7 |= r0\n" for c in calls)
    snapshot = "".join(f"r0 = *(u32 *)(r6 + {src})\n*(u32 *)(r6 + {48 + 4 * k}) = r0\n"
                       for k, src in enumerate((20, 24, 28, 16, 0)))
    return pyebpf.asm.assemble("r6 = r1\nr7 = 0\n" + body + snapshot +
                               "*(u32 *)(r6 + 8) = r7\nr0 = 0\nexit")


def snapshot(res):
    """(return codes, vlan_present, vlan_tci, vlan_proto, protocol, len) of a kernel run."""
    cb, mark = res.skb["cb"], res.skb["mark"]
    return mark, *cb


def wire(packet, present, tci, proto):
    """The frame on the wire: a metadata tag goes in after the MAC addresses."""
    if not present:
        return packet
    return packet[:12] + struct.pack("<H", proto) + struct.pack(">H", tci) + packet[12:]


def same(calls, frame, **extra):
    return skbdiff.assert_same(vlan_prog(*calls), CLS, frame, {}, **extra)


# --- push -----------------------------------------------------------------------------

@pytest.mark.parametrize("proto", [Q, AD, 0x8100, 0x88A8, 0x0091, 0x9100, 0x1234, 0,
                                   0xFFFF, 0x10081, 0x1A888, 0xFFFFFFFFFFFFA888],
                         ids=lambda p: f"proto{p:#x}")
def test_vlan_push_accepts_only_8021q_and_8021ad_and_makes_anything_else_8021q(proto):
    mine, theirs = same([push(proto, 0x123)], UNTAGGED)
    expected = AD if proto & 0xFFFF == AD else Q
    assert snapshot(theirs) == (0, 1, 0x123, expected, 0x0008, len(UNTAGGED))
    assert mine.skb.vlan_proto == expected


@pytest.mark.parametrize("tci", [0, 0x123, 0x1000, 0x1FFF, 0xEFFF, 0xFFFF, 0xABCDE,
                                 0xFFFFFFFFFFFFFFFF], ids=lambda t: f"tci{t:#x}")
def test_vlan_push_keeps_all_16_bits_of_the_tci_and_drops_the_rest(tci):
    mine, theirs = same([push(Q, tci)], UNTAGGED)
    assert snapshot(theirs)[2] == tci & 0xFFFF == mine.skb.vlan_tci


@pytest.mark.parametrize("name", FRAMES)
def test_vlan_push_on_a_frame_without_a_metadata_tag_changes_only_the_metadata(name):
    mine, theirs = same([push(AD, 0x1064)], FRAMES[name])
    assert theirs.data == FRAMES[name]
    assert snapshot(theirs)[:4] == (0, 1, 0x1064, AD)


@pytest.mark.parametrize("name", FRAMES)
@pytest.mark.parametrize("first, second", [((Q, 100), (AD, 200)), ((AD, 0x1fff), (Q, 0xe001)),
                                           ((Q, 1), (Q, 2))], ids=["q-then-ad", "ad-then-q",
                                                                   "q-then-q"])
def test_vlan_push_over_a_metadata_tag_writes_the_old_tag_into_the_bytes(name, first, second):
    frame = FRAMES[name]
    mine, theirs = same([push(*first), push(*second)], frame)
    old_tag = struct.pack("<H", first[0]) + struct.pack(">H", first[1])
    assert theirs.data == frame[:12] + old_tag + frame[12:]
    assert snapshot(theirs) == (0, 1, second[1], second[0], first[0], len(frame) + 4)


def test_three_pushes_stack_the_older_tags_in_the_bytes_newest_outermost():
    mine, theirs = same([push(Q, 100), push(AD, 200), push(Q, 300)], UNTAGGED)
    assert theirs.data == UNTAGGED[:12] + bytes.fromhex("88a800c8 81000064") + UNTAGGED[12:]
    assert mine.data == UNTAGGED[:12] + bytes.fromhex("8100012c 88a800c8 81000064") + UNTAGGED[12:]


# --- pop ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["untagged", "tpid9100"])
def test_vlan_pop_of_a_metadata_tag_clears_it_and_leaves_untagged_bytes_alone(name):
    mine, theirs = same([push(AD, 0x1234), POP], FRAMES[name])
    assert theirs.data == FRAMES[name] and snapshot(theirs)[:4] == (0, 0, 0, 0)


@pytest.mark.parametrize("name", FRAMES)
def test_vlan_pop_without_a_metadata_tag_removes_the_tag_in_the_bytes(name):
    same([POP], FRAMES[name])


@pytest.mark.parametrize("name", ["8021q", "8021ad", "qinq", "ipx"])
def test_vlan_pop_of_a_metadata_tag_then_moves_the_first_tag_in_the_bytes_up(name):
    frame = FRAMES[name]
    mine, theirs = same([push(AD, 0x1234), POP], frame)
    assert theirs.data == frame[:12] + frame[16:]
    assert snapshot(theirs)[1:4] == (1, struct.unpack(">H", frame[14:16])[0],
                                     struct.unpack("<H", frame[12:14])[0])


def test_vlan_pop_moves_the_next_tag_in_the_bytes_into_the_metadata():
    mine, theirs = same([POP], QINQ)
    assert theirs.data == UNTAGGED
    assert snapshot(theirs) == (0, 1, 2, Q, 0x0008, len(UNTAGGED))
    assert mine.data == bytes(Ether(**MACS) / Dot1Q(vlan=2) / INNER)


@pytest.mark.parametrize("frame, protocol", [(TAG_IPX, 0x0100), (TAG_LLC, 0x0400),
                                             (SHORT_TAG_LLC, 0x0400)],
                         ids=["ipx-802.3", "llc-802.2", "18-byte-tag-only"])
def test_vlan_pop_of_a_tag_around_a_length_field_sets_the_802_3_protocols(frame, protocol):
    mine, theirs = same([POP], frame)
    assert snapshot(theirs)[4] == protocol


def test_vlan_pop_leaves_a_tag_with_tpid_9100_alone():
    mine, theirs = same([POP], TAG_9100)
    assert theirs.data == TAG_9100 and snapshot(theirs)[4] == 0x0091


@pytest.mark.parametrize("n", sorted(SHORT_TAG), ids=lambda n: f"{n}-bytes")
def test_vlan_pop_of_a_truncated_tag_fails_with_enomem(n):
    mine, theirs = same([POP], SHORT_TAG[n])
    assert snapshot(theirs)[0] == (0xF4 if n < 18 else 0)     # -ENOMEM's low byte


def test_vlan_pop_clears_the_metadata_tag_before_failing_on_a_truncated_next_tag():
    mine, theirs = same([push(Q, 7), POP], SHORT_TAG[17])
    assert snapshot(theirs)[:2] == (0x00F4, 0)


# --- sequences ------------------------------------------------------------------------

SEQUENCES = {
    "push-push": [push(Q, 100), push(AD, 200)],
    "push-pop": [push(Q, 100), POP],
    "pop-pop": [POP, POP],
    "pop-pop-pop": [POP, POP, POP],
    "push-push-pop": [push(Q, 100), push(AD, 200), POP],
    "push-push-pop-pop": [push(Q, 100), push(AD, 200), POP, POP],
    "pop-push": [POP, push(AD, 0x1abc)],
    "push-pop-pop": [push(Q, 9), POP, POP],
    "pop-push-push-pop": [POP, push(Q, 3), push(AD, 4), POP],
}


@pytest.mark.parametrize("name", FRAMES)
@pytest.mark.parametrize("seq", SEQUENCES)
def test_vlan_sequences_match_the_kernel(seq, name):
    same(SEQUENCES[seq], FRAMES[name])


# --- what the results and the packet pointers show ------------------------------------

@pytest.mark.parametrize("seq", SEQUENCES)
@pytest.mark.parametrize("name", ["untagged", "qinq", "triple"])
def test_result_data_is_the_wire_frame_with_the_metadata_tag_inserted(seq, name):
    mine, theirs = same(SEQUENCES[seq], FRAMES[name])
    _, present, tci, proto, _, _ = snapshot(theirs)
    assert mine.data_out == theirs.data
    assert mine.data == wire(theirs.data, present, tci, proto)
    assert (mine.skb.vlan_present, mine.skb.vlan_tci, mine.skb.vlan_proto) == (present, tci, proto)


def test_vlan_push_invalidates_packet_pointers_and_reloaded_ones_see_the_moved_bytes():
    # after the second push the frame starts 4 bytes earlier: reload data, read bytes 12..16
    code = pyebpf.asm.assemble("r6 = r1\n" + push(Q, 0x64) + push(AD, 0xc8) + """
r2 = *(u32 *)(r6 + 76)
r3 = *(u32 *)(r6 + 80)
r4 = r2
r4 += 16
if r4 > r3 goto +2
r0 = *(u32 *)(r2 + 12)
*(u32 *)(r6 + 48) = r0
r0 = 0
exit""")
    mine, theirs = skbdiff.assert_same(code, CLS, UNTAGGED, {})
    assert theirs.skb["cb"][0] == struct.unpack("<I", bytes.fromhex("81000064"))[0]


@pytest.mark.parametrize("calls, frame", [
    ([push(Q, 100), push(AD, 200)], UNTAGGED),
    ([push(Q, 7), push(Q, 8)], TAG_Q),
    ([POP], QINQ),
    ([POP, POP], TRIPLE),
], ids=["push-push", "push-push-on-tagged", "pop-qinq", "pop-pop-triple"])
def test_the_network_header_follows_the_tags_as_the_kernel_moves_it(calls, frame):
    # LD_ABS at SKF_NET_OFF reads relative to skb->network_header: 6.18 moves it onto an
    # inner tag written by push (the TCI), and a pop puts it 14 bytes after the MAC header
    code = pyebpf.asm.assemble(
        "r6 = r1\n" + "".join(calls) +
        "r0 = *(u32 *)skb[-0x100000]\n*(u32 *)(r6 + 48) = r0\nr0 = 0\nexit")
    skbdiff.assert_same(code, CLS, frame, {})


@pytest.mark.parametrize("seq, name", [
    ("push", "untagged"), ("push-push", "untagged"), ("push-push", "8021q"),
    ("pop", "8021q"), ("pop", "qinq"), ("push-pop", "untagged"), ("pop", "untagged"),
])
def test_checksum_complete_bookkeeping_matches_the_kernel(seq, name):
    # the kernel fails the run with EBADMSG when skb->csum no longer covers the bytes
    calls = SEQUENCES.get(seq) or {"push": [push(Q, 5)], "pop": [POP]}[seq]
    code, frame = vlan_prog(*calls), FRAMES[name]
    mine = pyebpf.Program(code, CLS).run(frame, csum_complete=True)
    with kernel.KernelProgram(code, CLS) as kprog:
        try:
            kprog.test_run(frame, ctx={}, flags=1 << 2)
            kernel_ok = True
        except pyebpf.errors.KernelError as exc:
            assert exc.errno == 74
            kernel_ok = False
    assert mine.csum_ok == kernel_ok


def test_many_pushes_grow_the_frame_beyond_the_initial_headroom():
    # 80 pushes write 79 tags into the bytes: 316 bytes, more than pyebpf's first headroom
    code = pyebpf.asm.assemble("""
r6 = r1
r7 = 0
r1 = r6
r2 = 0x81
r3 = r7
call 18
r7 += 1
if r7 < 80 goto -6
r0 = *(u32 *)(r6 + 0)
exit""")
    mine, theirs = skbdiff.assert_same(code, CLS, UNTAGGED, {})
    assert theirs.retval == len(UNTAGGED) + 79 * 4
    assert mine.data[12:20] == bytes.fromhex("8100004f 8100004e")


@pytest.mark.parametrize("calls, frame", [([push(Q, 100), push(AD, 200)], UNTAGGED),
                                          ([POP], QINQ), ([POP, POP], TRIPLE)],
                         ids=["push-push", "pop-qinq", "pop-pop-triple"])
def test_at_tc_ingress_the_mac_header_bracketing_keeps_skb_csum_consistent(calls, frame):
    """bpf_push/pull_mac_rcsum around the helper (source-read; test_run runs neither at
    ingress nor with a MAC header in skb->csum, so this is pyebpf's model only)."""
    code = vlan_prog(*calls)
    assert pyebpf.Program(code, CLS).run(frame, csum_complete=True, ingress=True).csum_ok
    assert not pyebpf.Program(code, CLS).run(frame, csum_complete=True).csum_ok


# --- the 4.6 profile (pyebpf only: no 4.6 kernel to compare with) ---------------------

def v46(calls, frame, **fields):
    return pyebpf.Program(vlan_prog(*calls), CLS, profile="4.6").run(frame, **fields)


def test_v46_vlan_push_loses_the_dei_bit_in_the_metadata_and_on_the_wire():
    """v4.6 kept VLAN_TAG_PRESENT in bit 0x1000 of vlan_tci (__vlan_hwaccel_put_tag)."""
    res = v46([push(Q, 0x3fff)], UNTAGGED)
    assert res.skb.cb[:3] == (1, 0x2fff, Q) and res.skb.vlan_tci == 0x2fff
    assert res.data == wire(UNTAGGED, 1, 0x2fff, Q)


def test_v46_vlan_push_over_a_tag_writes_it_into_the_bytes_without_dei():
    res = v46([push(Q, 0x1064), push(AD, 0x10c8)], UNTAGGED)
    assert res.data_out == UNTAGGED[:12] + bytes.fromhex("81000064") + UNTAGGED[12:]
    assert res.data == UNTAGGED[:12] + bytes.fromhex("88a800c8 81000064") + UNTAGGED[12:]


def test_v46_vlan_push_leaves_the_network_header_on_the_l3_header():
    """4.6 grew mac_len where 6.18 moves the network header onto the inner tag."""
    code = pyebpf.asm.assemble("r6 = r1\n" + push(Q, 100) + push(AD, 200) +
                               "r0 = *(u8 *)skb[-0x100000]\nexit")
    assert pyebpf.Program(code, CLS, profile="4.6").run(UNTAGGED).retval == 0x45
    assert pyebpf.Program(code, CLS).run(UNTAGGED).retval == 0x00


def test_v46_vlan_pop_of_a_metadata_tag_keeps_vlan_proto():
    """v4.6 skb_vlan_pop cleared only vlan_tci (which held the presence flag)."""
    res = v46([push(AD, 5), POP], UNTAGGED)
    assert res.skb.cb[:3] == (0, 0, AD) and res.data == UNTAGGED


@pytest.mark.parametrize("n", sorted(SHORT_TAG), ids=lambda n: f"{n}-bytes")
def test_v46_vlan_pop_leaves_frames_shorter_than_18_bytes_untouched(n):
    """v4.6 checked skb->len < VLAN_ETH_HLEN first and returned 0."""
    res = v46([POP], SHORT_TAG[n])
    if n < 18:
        assert res.skb.mark == 0 and res.data_out == SHORT_TAG[n]
    else:
        assert res.skb.mark == 0 and res.data_out == UNTAGGED[:12] + b"\x08\x00"


def test_v46_vlan_pop_moving_a_tag_into_the_metadata_loses_its_dei_bit():
    frame = bytes(Ether(**MACS) / Dot1AD(vlan=1) / Dot1Q(dei=1, vlan=2) / INNER)
    res = v46([POP], frame)
    assert res.skb.cb[:3] == (1, 2, Q) and res.data == wire(UNTAGGED, 1, 2, Q)


def test_v46_a_received_metadata_tag_has_no_dei_bit():
    res = v46([], UNTAGGED, vlan=(0x8100, 0x1005))
    assert res.skb.cb[:3] == (1, 5, Q) and res.data == wire(UNTAGGED, 1, 5, Q)


# --- received metadata tags (pyebpf only: test_run cannot inject one) -----------------

def test_a_received_metadata_tag_is_popped_then_the_next_tag_in_the_bytes_moves_up():
    """What the kernel does for a frame received with an accelerated tag and a QinQ
    payload: the documented pop order (bpf_skb_vlan_pop, step 1 then 2)."""
    res = pyebpf.Program(vlan_prog(POP), CLS).run(QINQ, vlan=(0x8100, 0x1009))
    assert res.skb.cb == (1, 1, AD, Q, len(QINQ) - 4)
    assert res.data == QINQ


def test_a_received_metadata_tag_is_written_into_the_bytes_by_a_push():
    res = pyebpf.Program(vlan_prog(push(Q, 2)), CLS).run(UNTAGGED, vlan=(0x88a8, 0x1009))
    assert res.data_out == UNTAGGED[:12] + bytes.fromhex("88a81009") + UNTAGGED[12:]
    assert res.data == UNTAGGED[:12] + bytes.fromhex("81000002 88a81009") + UNTAGGED[12:]


# --- on the wire: the true oracle for the metadata tag (test_run cannot show it) ------

E2E_PROGRAMS = {
    # a DEI bit in each TCI: it must survive into the metadata and onto the wire
    "push-push": ("bpf_skb_vlan_push(skb, bpf_htons(ETH_P_8021Q), 0x1005);\n"
                  "bpf_skb_vlan_push(skb, bpf_htons(ETH_P_8021AD), 0xf123);", UNTAGGED),
    "pop-qinq": ("bpf_skb_vlan_pop(skb);",
                 bytes(Ether(**MACS) / Dot1AD(vlan=1) / Dot1Q(prio=3, dei=1, vlan=2) / INNER)),
}
E2E_SOURCE = """
char _license[] SEC("license") = "GPL";

SEC("tc")
int vlan_on_egress(struct __sk_buff *skb)
{
    %s
    return TC_ACT_OK;
}
"""
ETH_P_ALL, SOL_PACKET, PACKET_AUXDATA = 0x0003, 263, 8
TP_STATUS_VLAN_VALID, TP_STATUS_VLAN_TPID_VALID = 0x10, 0x40


@pytest.fixture(scope="module")
def netns(live_kernel):
    """A network namespace of our own with a veth pair vtx <-> vrx and a clsact qdisc on
    vtx (netns.veth_pair)."""
    with netns_.veth_pair("vlan") as (name, inside, tc):
        inside(tc, "qdisc", "add", "dev", "vtx", "clsact")
        yield name, inside, tc


def packet_sockets(netns_name):
    """(sender bound to vtx, receiver on vrx with PACKET_AUXDATA), in the namespace."""
    def make():
        tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        tx.bind(("vtx", 0))
        rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        rx.bind(("vrx", 0))
        rx.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
        return tx, rx

    return netns_.in_netns(netns_name, make)


def received_on_the_wire(rx, marker, timeout=2.0):
    """The first frame carrying ``marker``, with the VLAN tag from its auxdata put back
    in after the MAC addresses, as on the wire."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        if not select.select([rx], [], [], left)[0]:
            break
        data, ancillary, _, address = rx.recvmsg(65535, 256)
        if address[2] == socket.PACKET_OUTGOING or marker not in data:
            continue
        for level, kind, aux in ancillary:
            if level == SOL_PACKET and kind == PACKET_AUXDATA:
                status, _, _, _, _, tci, tpid = struct.unpack("<IIIHHHH", aux[:20])
                if status & TP_STATUS_VLAN_VALID:
                    tpid = tpid if status & TP_STATUS_VLAN_TPID_VALID else 0x8100
                    data = data[:12] + struct.pack(">HH", tpid, tci) + data[12:]
        return data
    raise AssertionError(f"no frame with {marker!r} arrived on vrx within {timeout} s")


@pytest.mark.parametrize("name", E2E_PROGRAMS)
def test_result_data_is_what_arrives_on_the_wire_after_tc_egress(netns, name, tmp_path):
    """cls_bpf direct-action on a veth's egress, a frame sent with AF_PACKET, the peer's
    capture (tag from PACKET_AUXDATA): pyebpf's Result.data must be those bytes."""
    netns_name, inside, tc = netns
    body, frame = E2E_PROGRAMS[name]
    source = E2E_SOURCE % body
    code = bpfc.compile_c(source, "tc")          # skips where clang-19 is missing
    obj = tmp_path / "prog.o"
    include = [f"-I/usr/include/{bpfc._MULTIARCH}"] if bpfc._MULTIARCH else []
    src = tmp_path / "prog.c"
    src.write_text(bpfc.PRELUDE + source)
    subprocess.run([bpfc.CLANG, "-O2", "-g", "-target", "bpf", *include, "-c", str(src),
                    "-o", str(obj)], check=True, capture_output=True)
    inside(tc, "filter", "replace", "dev", "vtx", "egress", "prio", "1", "handle", "1",
           "bpf", "da", "obj", str(obj), "sec", "tc")
    marker = f"pyebpf-e2e-{name}".encode()
    frame += marker
    tx, rx = packet_sockets(netns_name)
    with tx, rx:
        tx.send(frame)
        arrived = received_on_the_wire(rx, marker)
    res = pyebpf.Program(code, CLS).run(frame)
    assert res.retval == 0 and res.data == arrived
