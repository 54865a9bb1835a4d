"""Program.run reuses one skb buffer across runs: each run still sees only its own frame."""
import pyebpf

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
