"""KPROBE runs in batches: ``Program.run_many`` over registers gives what a loop of
``run()`` gives, and ``pyebpf.trace.replay`` (one C loop per batch of events) what a
loop of ``run()`` over the same events gives."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings, strategies as st
import pytest

from pyebpf import Map, Program, errors
from pyebpf.trace import Machine, MachineSpecError, Task, pt_regs, replay

USER = 0x7F0000001000                    # mapped: 8 bytes of user memory
UNMAPPED = 0x7F0000002000
MACHINE = Machine(task=Task(pid=41, tgid=40), user_memory={USER: bytes(range(1, 9))})

# r0 = di + the 8 user bytes at si + probe_read_user's result + pid_tgid; map[di & 7] = r0
SUMS = """
    r6 = r1
    r1 = r10
    r1 += -8
    r2 = 8
    r3 = *(u64 *)(r6 + 104)
    call 112
    r7 = *(u64 *)(r10 - 8)
    r7 += r0
    r0 = *(u64 *)(r6 + 112)
    r7 += r0
    call 14
    r7 += r0
    r0 = *(u64 *)(r6 + 112)
    r0 &= 7
    *(u32 *)(r10 - 12) = r0
    *(u64 *)(r10 - 24) = r7
    r1 = map_fd({fd}) ll
    r2 = r10
    r2 += -12
    r3 = r10
    r3 += -24
    r4 = 0
    call 2
    r0 = r7
    exit
"""


def sums() -> tuple[Program, Map]:
    m = Map.create("hash", 4, 8, 8)
    return Program.from_asm(SUMS.format(fd=m.fd), "kprobe"), m


PAIR = [sums(), sums()]           # a looped and a batched program, their maps emptied first


registers = st.fixed_dictionaries(
    {"di": st.integers(-(1 << 63), (1 << 64) - 1),
     "si": st.sampled_from([USER, UNMAPPED, 0xFFFF888000000000, 0])})


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(registers, max_size=12))
def test_run_many_over_registers_equals_a_loop_of_run(regs):
    (looped, looped_map), (batched, batched_map) = PAIR
    for m in (looped_map, batched_map):
        for key in list(m.keys()):
            del m[key]
    runs = [looped.run(regs=r, machine=MACHINE) for r in regs]
    batch = batched.run_many(regs, machine=MACHINE)
    assert list(batch.retval) == [r.retval for r in runs]
    assert list(batch.insn_count) == [r.insn_count for r in runs]
    assert (batch.faults, list(batch.length)) == ([], [0] * len(regs))
    assert batched_map.items() == looped_map.items()


def test_run_many_takes_one_buffer_of_packed_pt_regs():
    regs = [{"di": 3, "si": USER}, {"di": 9, "si": UNMAPPED}]
    prog, _ = sums()
    from_dicts = prog.run_many(regs, machine=MACHINE)
    packed = prog.run_many(b"".join(pt_regs(r) for r in regs), machine=MACHINE)
    assert list(packed.retval) == list(from_dicts.retval)


def test_run_many_of_an_arm64_program_reads_arm64_s_pt_regs():
    prog = Program.from_asm("r0 = *(u64 *)(r1 + 248)\nexit", "kprobe", arch="arm64")
    assert list(prog.run_many([{"sp": 5}, {"sp": 6}]).retval) == [5, 6]


def test_run_many_gives_every_run_the_clock_and_task_a_run_would_get():
    prog = Program.from_asm("call 5\nr6 = r0\ncall 14\nr0 += r6\nexit", "kprobe")
    batch = prog.run_many([{}, {}], machine=MACHINE, ktime=1000)
    assert list(batch.retval) == [prog.run(machine=MACHINE, ktime=1000).retval] * 2


def test_a_faulting_run_is_recorded_and_the_batch_goes_on():
    prog = Program.from_asm("""
        r0 = *(u64 *)(r1 + 112)
        if r0 != 1 goto out
        r0 += 1
        r0 += 1
        r0 += 1
    out:
        exit""", "kprobe")
    batch = prog.run_many([{"di": 0}, {"di": 1}, {"di": 2}], budget=4)
    assert [(k, type(e)) for k, e in batch.faults] == [(1, errors.BudgetExceeded)]
    assert list(batch.retval) == [0, 0, 2]


def test_run_many_refuses_a_buffer_that_is_no_whole_number_of_pt_regs():
    prog, _ = sums()
    with pytest.raises(MachineSpecError, match="170 bytes are no whole number of 168-byte"):
        prog.run_many(bytes(170))


@pytest.mark.parametrize("kwargs, message", [
    ({"regs": {}}, "unknown argument 'regs'"), ({"mark": 1}, "unknown argument 'mark'"),
    ({"output": True}, "no offsets, no output")])
def test_run_many_of_a_kprobe_program_refuses_what_its_runs_cannot_take(kwargs, message):
    prog, _ = sums()
    with pytest.raises(TypeError, match=message):
        prog.run_many([{}], **kwargs)


def test_a_bad_register_in_run_many_is_named():
    prog, _ = sums()
    with pytest.raises(MachineSpecError, match="x86_64 has no register 'rdi'"):
        prog.run_many([{"di": 1}, {"rdi": 1}])


# --- trace-replay ------------------------------------------------------------------------

EVENTS = [replay.event(regs={"di": k, "si": USER if k % 3 else UNMAPPED},
                       task={"pid": 100 + k % 4, "tgid": 100},
                       user_memory={USER: bytes([k]) * 8}, timestamp=k * 10)
          for k in range(30)]


def test_replay_leaves_what_a_loop_of_run_over_the_same_events_leaves():
    looped, looped_map = sums()
    batched, batched_map = sums()
    retvals = [looped.run(**replay.event_run(e)).retval for e in EVENTS]
    out = replay.replay(batched, enumerate(EVENTS, 1), {"sums": batched_map})
    assert out["returns"] == {str(v): retvals.count(v) for v in sorted(set(retvals))}
    assert out["maps"]["sums"] == [[k.hex(), v.hex()] for k, v in looped_map.items()]


def test_replay_drains_the_ring_buffer_after_each_event_so_none_is_lost():
    ring = Map.create("ringbuf", 0, 0, 4096, name="ring")
    prog = Program.from_asm(f"""
        r2 = *(u64 *)(r1 + 112)
        *(u64 *)(r10 - 8) = r2
        r1 = map_fd({ring.fd}) ll
        r2 = r10
        r2 += -8
        r3 = 8
        r4 = 0
        call 130
        r0 = 0
        exit""", "kprobe")
    events = [replay.event(regs={"di": k}) for k in range(1000)]     # 16 bytes a record
    out = replay.replay(prog, enumerate(events, 1), {"ring": ring})
    assert out["ringbuf"]["ring"] == [k.to_bytes(8, "little").hex() for k in range(1000)]


def test_an_event_s_counters_are_what_its_run_reads():
    perf = Map.create("perf_event_array", 4, 4, 2, name="pe")
    prog = Program.from_asm(f"""
        r1 = map_fd({perf.fd}) ll
        r2 = 0xffffffff ll
        call 22
        exit""", "kprobe")
    events = [replay.event(cpu=1, counters={"pe": {1: 5}}), replay.event(cpu=1),
              replay.event(cpu=1, counters={"pe": {1: 7}})]
    out = replay.replay(prog, enumerate(events, 1), {"pe": perf})
    assert out["returns"] == {"5": 2, "7": 1}


def test_the_events_before_a_bad_one_have_run_when_it_is_reported():
    prog, m = sums()
    events = [replay.event(regs={"di": 1}), replay.event(regs={"di": 2}), {"tsak": {}}]
    with pytest.raises(replay.EventError, match="^ev:3: unknown key 'tsak'"):
        replay.replay(prog, enumerate(events, 1), {"sums": m}, where="ev")
    assert sorted(int.from_bytes(k, "little") for k in m.keys()) == [1, 2]


def test_a_counter_slot_past_the_array_is_named_with_its_line():
    perf = Map.create("perf_event_array", 4, 4, 2, name="pe")
    prog, _ = sums()
    with pytest.raises(replay.EventError, match="^ev:1: counters: slot 2 is past max_entries 2"):
        replay.replay(prog, [(1, replay.event(counters={"pe": {2: 1}}))], {"pe": perf},
                      where="ev")
