"""bpf_redirect (23), bpf_clone_redirect (13) and what Result reports of them.

The kernel's answers come from BPF_PROG_TEST_RUN: the helpers' return codes (the
program returns them).  test_run does not act on a redirect verdict, but a clone is
really transmitted (bpf_clone_redirect), so every clone that the kernel side can send
targets ifindex 1, the loopback device; unknown ifindexes are picked from the ones
this machine does not have.  Where a clone goes and what it holds, and what the tc
layer makes of a verdict, are pyebpf's model (Result.clones, Result.redirect); those
tests say so and check the documented behaviour.
"""
import socket

import pytest
from scapy.layers.l2 import Ether
from scapy.layers.inet import IP, UDP

import pyebpf
import skbdiff

CLS, ACT = "sched_cls", "sched_act"
TC_ACT_OK, TC_ACT_SHOT, TC_ACT_REDIRECT = 0, 2, 7
EINVAL = -22
FRAME = bytes(Ether(dst="02:00:00:00:00:01", src="02:00:00:00:00:02") /
              IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=1, dport=2) / b"redirect me")


def absent_ifindex():
    """An ifindex no device on this machine has (so the kernel cannot send to it)."""
    taken = {index for index, _ in socket.if_nameindex()}
    candidate = 0x7FFFFF00
    while candidate in taken:
        candidate += 1
    return candidate


def returning(call):
    """A program that returns what one helper call returned."""
    return pyebpf.asm.assemble("r6 = r1\n" + call + "exit")


def clone_redirect(ifindex, flags):
    return f"r1 = r6\nr2 = {ifindex:#x} ll\nr3 = {flags:#x} ll\ncall 13\n"


def redirect(ifindex, flags):
    return f"r1 = {ifindex:#x} ll\nr2 = {flags:#x} ll\ncall 23\n"


def run(text, frame=FRAME, prog_type=CLS, **fields):
    return pyebpf.Program(pyebpf.asm.assemble("r6 = r1\n" + text), prog_type).run(
        frame, **fields)


# --- clone_redirect: return codes against the kernel ----------------------------------

@pytest.mark.parametrize("ifindex, flags, expected", [
    (1, 0, 0),
    (1, 1, 0),                              # BPF_F_INGRESS
    (1, 2, EINVAL),
    (1, 0x10, EINVAL),
    (1, 1 << 32, EINVAL),                   # flags is a u64: no bit above is ignored
    (0, 0, EINVAL),                         # no device has ifindex 0
    (0xFFFFFFFF, 0, EINVAL),                # an int in dev_get_by_index: -1
    ((1 << 32) | 1, 0, 0),                  # ifindex is a u32: this is the loopback
    (None, 0, EINVAL),                      # a device this machine does not have
    (None, 2, EINVAL),
], ids=["lo", "lo-ingress", "flag2", "flag0x10", "flag-bit32", "ifindex0", "ifindex-minus1",
        "ifindex-truncated", "absent", "absent-badflags"])
def test_clone_redirect_return_codes_match_the_kernel(ifindex, flags, expected):
    ifindex = absent_ifindex() if ifindex is None else ifindex
    # devices=[]: in the engine only the packet's own device (lo, 1) exists, like here
    # for the ifindexes these cases use
    mine, theirs = skbdiff.assert_same(returning(clone_redirect(ifindex, flags)), CLS, FRAME,
                                       {}, devices=[])
    assert mine.retval == theirs.retval_signed == expected


def test_clone_redirect_leaves_the_original_packet_unchanged():
    code = pyebpf.asm.assemble("r6 = r1\n" + clone_redirect(1, 0) +
                               "*(u32 *)(r6 + 48) = r0\nr0 = *(u32 *)(r6 + 0)\nexit")
    mine, theirs = skbdiff.assert_same(code, CLS, FRAME, {})
    assert theirs.data == FRAME and theirs.retval == len(FRAME)


def test_clone_redirect_invalidates_packet_pointers_and_reloaded_ones_still_read_the_packet():
    code = pyebpf.asm.assemble("r6 = r1\n" + clone_redirect(1, 0) + """
r2 = *(u32 *)(r6 + 76)
r3 = *(u32 *)(r6 + 80)
r4 = r2
r4 += 14
r0 = 0
if r4 > r3 goto +1
r0 = *(u16 *)(r2 + 12)
exit""")
    mine, theirs = skbdiff.assert_same(code, CLS, FRAME, {})
    assert theirs.retval == 0x0008


# --- clone_redirect: what pyebpf records (the kernel transmits it; not comparable) ----

def test_every_clone_is_recorded_in_call_order_with_its_target_and_direction():
    res = run(clone_redirect(3, 0) + clone_redirect(4, 1) + "r0 = 0\nexit")
    assert res.clones == ((3, False, FRAME), (4, True, FRAME))


def test_a_clone_holds_the_bytes_at_the_time_of_the_call():
    # a direct write after the clone changes the original only
    res = run(clone_redirect(3, 0) + """
r2 = *(u32 *)(r6 + 76)
r3 = *(u32 *)(r6 + 80)
r4 = r2
r4 += 1
if r4 > r3 goto +1
*(u8 *)(r2 + 0) = 0xff
r0 = 0
exit""")
    assert res.clones[0][2] == FRAME and res.data == b"\xff" + FRAME[1:]


def test_a_clone_carries_the_metadata_vlan_tag_as_the_wire_would():
    res = run("r1 = r6\nr2 = 0x81\nr3 = 100\ncall 18\n"
              "r1 = r6\nr2 = 0xa888\nr3 = 200\ncall 18\n" + clone_redirect(3, 0) + "exit")
    assert res.clones[0][2] == FRAME[:12] + bytes.fromhex("88a800c8 81000064") + FRAME[12:]
    assert res.clones[0][2] == res.data


@pytest.mark.parametrize("ifindex, flags", [(3, 2), (0, 0), (9, 0)], ids=["bad-flags",
                                                                          "ifindex0", "absent"])
def test_a_refused_clone_is_not_recorded(ifindex, flags):
    res = run(clone_redirect(ifindex, flags) + "exit", devices=[3])
    assert res.retval == EINVAL and res.clones == ()


@pytest.mark.parametrize("ifindex, ok", [(1, True), (2, True), (0x7FFFFFFF, True), (0, False),
                                         (0x80000000, False), (0xFFFFFFFF, False)])
def test_without_devices_every_positive_ifindex_exists(ifindex, ok):
    assert run(clone_redirect(ifindex, 0) + "exit").retval == (0 if ok else EINVAL)


@pytest.mark.parametrize("ifindex, ok", [(3, True), (4, True), (7, True), (5, False),
                                         (1, False)], ids=["listed-3", "listed-4", "own-device",
                                                           "unlisted", "lo-unlisted"])
def test_devices_lists_the_ifindexes_that_exist_besides_the_packets_own(ifindex, ok):
    res = run(clone_redirect(ifindex, 0) + "exit", devices=[3, 4], ifindex=7)
    assert res.retval == (0 if ok else EINVAL)


@pytest.mark.parametrize("devices", [[0], [-1], [1 << 31]])
def test_devices_must_be_valid_ifindexes(devices):
    with pytest.raises(ValueError, match="devices must be ifindexes"):
        run("r0 = 0\nexit", devices=devices)


def test_a_clone_is_not_a_redirect():
    res = run(clone_redirect(3, 0) + "r0 = 7\nexit")
    assert res.redirect is None and len(res.clones) == 1


# --- redirect: return codes against the kernel ----------------------------------------

@pytest.mark.parametrize("ifindex, flags, expected", [
    (1, 0, TC_ACT_REDIRECT),
    (1, 1, TC_ACT_REDIRECT),
    (9999, 0, TC_ACT_REDIRECT),             # the target is looked up only when acted on
    (0, 0, TC_ACT_REDIRECT),
    (1, 2, TC_ACT_SHOT),
    (1, 1 << 32, TC_ACT_SHOT),
], ids=["lo", "lo-ingress", "absent", "ifindex0", "flag2", "flag-bit32"])
@pytest.mark.parametrize("prog_type", [CLS, ACT])
def test_redirect_return_codes_match_the_kernel(prog_type, ifindex, flags, expected):
    mine, theirs = skbdiff.assert_same(returning(redirect(ifindex, flags)), prog_type, FRAME, {})
    assert mine.retval == theirs.retval == expected


def test_redirect_does_not_invalidate_packet_pointers_or_touch_the_packet():
    code = pyebpf.asm.assemble("""
r6 = r1
r0 = 0
r7 = *(u32 *)(r6 + 76)
r8 = *(u32 *)(r6 + 80)
r2 = r7
r2 += 14
if r2 > r8 goto +4
r1 = 1
r2 = 0
call 23
r0 = *(u16 *)(r7 + 12)
exit""")
    mine, theirs = skbdiff.assert_same(code, CLS, FRAME, {})
    assert theirs.retval == 0x0008 and theirs.data == FRAME


# --- Result.redirect: pyebpf's reading of the verdict (test_run does not act on it) ---

@pytest.mark.parametrize("prog_type", [CLS, ACT])
@pytest.mark.parametrize("flags, ingress", [(0, False), (1, True)])
def test_result_redirect_is_reported_when_the_program_returns_tc_act_redirect(
        prog_type, flags, ingress):
    res = run(redirect(5, flags) + "exit", prog_type=prog_type)
    assert res.retval == TC_ACT_REDIRECT and res.redirect == (5, ingress)


def test_result_redirect_is_none_when_the_program_returns_another_verdict():
    # measured end to end: redirect() then return 0 delivers the packet normally
    res = run(redirect(5, 0) + "r0 = 0\nexit")
    assert res.retval == TC_ACT_OK and res.redirect is None


def test_returning_tc_act_redirect_without_calling_redirect_reports_none():
    # measured end to end (skb_do_redirect): the kernel drops such a packet; no target
    res = run("r0 = 7\nexit")
    assert res.retval == TC_ACT_REDIRECT and res.redirect is None


def test_redirect_with_invalid_flags_returns_shot_and_records_nothing():
    res = run(redirect(5, 2) + "exit")
    assert res.retval == TC_ACT_SHOT and res.redirect is None


def test_a_refused_redirect_leaves_the_earlier_target_in_place():
    # the failed call returns before touching the per-CPU redirect state
    res = run(redirect(5, 1) + redirect(6, 2) + "r0 = 7\nexit")
    assert res.redirect == (5, True)


def test_the_last_redirect_call_wins():
    res = run(redirect(5, 1) + redirect(6, 0) + "exit")
    assert res.redirect == (6, False)


def test_redirect_takes_the_ifindex_as_a_u32():
    res = run(redirect((1 << 32) | 6, 0) + "exit")
    assert res.redirect == (6, False)
