"""Program.run reuses one skb buffer across runs: each run still sees only its own frame."""
import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

import pyebpf
from bpfc import compile_c

# bpf_skb_change_tail(skb, len + 2000, 0): the buffer outgrows its tailroom and moves
GROW_TAIL = pyebpf.asm.assemble("""
    r6 = r1
    r2 = *(u32 *)(r6 + 0)
    r2 += 2000
    r3 = 0
    r1 = r6
    call 38
    r0 = 0
    exit""")


def test_a_run_after_one_that_grew_the_buffer_sees_only_its_own_frame():
    prog = pyebpf.Program(GROW_TAIL, "sched_cls")
    prog.run(b"\xab" * 1400)
    after = prog.run(b"\xcd" * 60)
    assert after.data_out == pyebpf.Program(GROW_TAIL, "sched_cls").run(b"\xcd" * 60).data_out
    assert after.data_out == b"\xcd" * 60 + bytes(2000)


def test_a_run_inside_a_run_of_the_same_program_keeps_both_frames_apart():
    inner = []

    def helper(memory, *args):
        if not inner:
            inner.append(None)
            inner[0] = prog.run(b"\x11" * 100)
        return 0

    prog = pyebpf.Program.from_asm("r6 = r1\ncall 200\nr0 = *(u32 *)(r6 + 0)\nexit",
                                   "sched_cls", verify=False, helpers={200: helper})
    outer = prog.run(b"\x22" * 60)
    assert (outer.retval, outer.data_out) == (60, b"\x22" * 60)
    assert (inner[0].retval, inner[0].data_out) == (100, b"\x11" * 100)


def test_a_result_keeps_its_fields_after_later_runs():
    prog = pyebpf.Program.from_asm("r2 = *(u32 *)(r1 + 0)\n*(u32 *)(r1 + 8) = r2\nr0 = 0\nexit",
                                   "sched_cls")
    first = prog.run(bytes(60))
    prog.run(bytes(90))
    assert (first.skb.mark, first.skb.len, first.data_out) == (60, 60, bytes(60))


# keeps the layout (no helper that moves data or sets tunnel metadata): runs after the
# first reset only what a run can change (skb_reload_frame)
SK_SRC = """
SEC("tc") int src(struct __sk_buff *skb) {
    struct bpf_sock *sk = skb->sk;
    if (!sk)
        return 0;
    return sk->src_ip4;
}
"""
MARK_CB = pyebpf.asm.assemble("""
    r2 = *(u32 *)(r1 + 8)
    r3 = *(u32 *)(r1 + 48)
    r2 += r3
    r4 = 77
    *(u32 *)(r1 + 8) = r4
    *(u32 *)(r1 + 48) = r4
    r0 = r2
    exit""")


def _ipv4(src: str, payload: int) -> bytes:
    return bytes(Ether(dst="02:00:00:00:00:02") / IP(src=src, dst="10.0.0.1")
                 / UDP(sport=1, dport=2) / (b"p" * payload))


def test_a_run_sees_the_templates_mark_and_cb_after_a_run_that_set_them():
    prog = pyebpf.Program(MARK_CB, "sched_cls")
    assert [prog.run(bytes(60)).retval for _ in range(3)] == [0, 0, 0]
    assert list(prog.run_many([bytes(60)] * 3).retval) == [0, 0, 0]


def test_the_packets_socket_is_each_runs_own_packets():
    prog = pyebpf.Program(compile_c(SK_SRC), "sched_cls")
    frames = [_ipv4("10.1.1.1", 300), _ipv4("10.2.2.2", 20), _ipv4("10.3.3.3", 100)]
    fresh = [pyebpf.Program(compile_c(SK_SRC), "sched_cls").run(f).retval for f in frames]
    assert len(set(fresh)) == 3
    assert [prog.run(f).retval for f in frames] == fresh
    assert list(prog.run_many(frames).retval) == fresh


def test_frames_shorter_and_longer_than_the_last_are_each_their_own():
    frames = [bytes([k]) * n for k, n in enumerate((1500, 60, 61, 1400, 14, 200), 1)]
    prog = pyebpf.Program(MARK_CB, "sched_cls")
    assert [prog.run(f).data_out for f in frames] == frames
    batch = prog.run_many(frames, output=True)
    assert batch.data == frames


def test_a_run_without_fields_after_runs_with_tunnel_metadata_has_none():
    tunnel = {"id": 5, "src": bytes([10, 0, 0, 1]), "dst": bytes([10, 0, 0, 2])}
    prog = pyebpf.Program(MARK_CB, "sched_cls")
    prog.run(bytes(60))
    assert prog.run(bytes(60), tunnel=tunnel).tunnel["id"] == 5
    assert prog.run(bytes(60)).tunnel is None
    prog.run_many([bytes(60)] * 2, tunnel=tunnel)
    assert prog.run(bytes(60)).tunnel is None


# writes a stack slot only for frames over 100 bytes, then reads it (unverified: the
# read of a slot not written on every path)
STACK_LEFTOVER = pyebpf.asm.assemble("""
    r2 = *(u32 *)(r1 + 0)
    if r2 < 100 goto read
    r3 = 0x55
    *(u64 *)(r10 - 8) = r3
read:
    r0 = *(u64 *)(r10 - 8)
    exit""")


def test_a_run_reads_a_zeroed_stack_after_a_run_that_wrote_it():
    prog = pyebpf.Program(STACK_LEFTOVER, "sched_cls", verify=False)
    assert [prog.run(bytes(n)).retval for n in (200, 60)] == [0x55, 0]
    assert list(prog.run_many([bytes(200), bytes(60)]).retval) == [0x55, 0]


# runs with int fields start from a template kept for equal fields (Program._ftmpl)
def test_runs_with_the_same_fields_see_them_after_a_run_that_changed_them():
    prog = pyebpf.Program(MARK_CB, "sched_cls")
    fresh = pyebpf.Program(MARK_CB, "sched_cls").run(bytes(60), mark=7, cb=[1, 0, 0, 0, 0])
    runs = [prog.run(bytes(60), mark=7, cb=[1, 0, 0, 0, 0]) for _ in range(3)]
    assert [(r.retval, r.skb.mark) for r in runs] == [(fresh.retval, fresh.skb.mark)] * 3
    assert [prog.run(bytes(60), mark=7).retval for _ in range(3)] == [7, 7, 7]


def test_a_run_with_other_field_values_than_the_last_sees_its_own():
    prog = pyebpf.Program(MARK_CB, "sched_cls")
    assert [prog.run(bytes(60), mark=m).retval for m in (7, 7, 8, 7)] == [7, 7, 8, 7]
    assert prog.run(bytes(60), priority=3).retval == 0
    assert prog.run(bytes(60), mark=7, priority=3).retval == 7


def test_runs_without_fields_between_runs_with_fields_see_the_default_metadata():
    prog = pyebpf.Program(MARK_CB, "sched_cls")
    assert [prog.run(bytes(60), **f).retval
            for f in ({"mark": 7}, {}, {"mark": 7}, {}, {})] == [7, 0, 7, 0, 0]


def test_a_field_of_another_type_with_an_equal_value_runs_as_its_own():
    prog = pyebpf.Program(MARK_CB, "sched_cls")
    assert prog.run(bytes(60), mark=1).retval == 1
    assert prog.run(bytes(60), mark=True).retval == 1
    with pytest.raises(TypeError):
        prog.run(bytes(60), mark="1")


def test_a_refused_field_value_is_refused_every_time():
    prog = pyebpf.Program(MARK_CB, "sched_cls")
    prog.run(bytes(60), gso_size=1)
    for _ in range(2):
        with pytest.raises(ValueError, match="gso_size is a 16-bit field"):
            prog.run(bytes(60), gso_size=0x10000)
    assert prog.run(bytes(60), gso_size=1).skb.gso_size == 1


def test_a_result_is_not_tracked_by_the_cycle_collector():
    # nothing a Result holds can lead back to it (no_gc): its runs cost no GC tracking
    import gc
    prog = pyebpf.Program.from_asm("r0 = 0\nexit", "sched_cls")
    assert not gc.is_tracked(prog.run(bytes(60)))


def test_a_results_input_is_the_frame_as_run_even_after_the_bytearray_given_changes():
    frame = bytearray(b"\x33" * 60)
    res = pyebpf.Program.from_asm("r0 = 0\nexit", "sched_cls").run(frame)
    frame[0] = 0x44
    assert res.input == b"\x33" * 60


def test_a_results_tunnel_is_read_as_a_new_dict_each_time():
    prog = pyebpf.Program.from_asm("r0 = 0\nexit", "sched_cls")
    res = prog.run(bytes(60), tunnel={"id": 5, "src": bytes(4), "dst": bytes(4)})
    first = res.tunnel
    first["id"] = 6
    assert res.tunnel["id"] == 5
