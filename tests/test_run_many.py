"""Program.run_many: a batch of frames run in one C loop gives what a loop of run() gives,
and each frame's run what the kernel's BPF_PROG_TEST_RUN gives."""
import array
import struct

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import pyebpf
from pyebpf import Map, isa
from pyebpf.pcap import pcapio
from recorded_kernel import count_comparison

ARRAY = isa.MapType.BPF_MAP_TYPE_ARRAY

# tc: r0 = the frame's byte 14 + len + mark; byte 14 becomes 0x5a, mark len * 3
TC_SUM = pyebpf.asm.assemble("""
    r6 = r1
    r2 = *(u32 *)(r6 + 0x4c)
    r3 = *(u32 *)(r6 + 0x50)
    r4 = r2
    r4 += 15
    r0 = 0
    if r4 > r3 goto out
    r0 = *(u8 *)(r2 + 14)
    r5 = 0x5a
    *(u8 *)(r2 + 14) = r5
    r5 = *(u32 *)(r6 + 0x0)
    r0 += r5
    r5 = *(u32 *)(r6 + 0x8)
    r0 += r5
    r5 = *(u32 *)(r6 + 0x0)
    r5 *= 3
    *(u32 *)(r6 + 0x8) = r5
out:
    exit""")
# socket filter: keep as many bytes as the frame's byte 20 says
SF_KEEP = pyebpf.asm.assemble("""
    r6 = r1
    r0 = *(u8 *)skb[20]
    exit""")
# raw mode: r0 = the first 8 bytes plus the length; the first byte becomes 0xee
RAW_SUM = pyebpf.asm.assemble("""
    r0 = r2
    if r2 < 8 goto out
    r3 = *(u64 *)(r1 + 0)
    r0 += r3
    r3 = 0xee
    *(u8 *)(r1 + 0) = r3
out:
    exit""")
# tc, unchecked: a frame whose byte 14 is 0xff makes it read past the packet's end
TC_FAULTS = pyebpf.asm.assemble("""
    r2 = *(u32 *)(r1 + 0x4c)
    r0 = *(u8 *)(r2 + 14)
    if r0 != 0xff goto out
    r0 = *(u8 *)(r2 + 4000)
out:
    exit""")
# tc: r0 = bpf_ktime_get_ns(), low 32 bits
KTIME = pyebpf.asm.assemble("""
    call 5
    exit""")

frames_st = st.lists(st.binary(min_size=15, max_size=120), min_size=0, max_size=12)
CASES = {"sched_cls": TC_SUM, "socket_filter": SF_KEEP, None: RAW_SUM}


def _loop(prog, frames, **fields):
    """(retval, insn_count, data) of each run of a loop of run()."""
    out = []
    for frame in frames:
        res = prog.run(frame, **fields)
        out.append((res.retval, res.insn_count, res.data))
    return out


def _batch(batch):
    return [(r, n, d) for r, n, d in zip(batch.retval, batch.insn_count, batch.data)]


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(frames=frames_st, prog_type=st.sampled_from(list(CASES)),
       mark=st.integers(0, 2**32 - 1))
def test_run_many_gives_what_a_loop_of_run_gives(frames, prog_type, mark):
    prog = pyebpf.Program(CASES[prog_type], prog_type)
    fields = {"mark": mark} if prog_type else {}
    batch = prog.run_many(frames, output=True, **fields)
    assert _batch(batch) == _loop(prog, frames, **fields)
    assert list(batch.length) == [len(d) for d in batch.data]
    assert batch.faults == []


@settings(max_examples=30, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(frames=frames_st)
def test_one_buffer_with_offsets_runs_as_the_list_of_its_frames(frames):
    prog = pyebpf.Program(TC_SUM, "sched_cls")
    offsets = [0]
    for f in frames:
        offsets.append(offsets[-1] + len(f))
    together = prog.run_many(b"".join(frames), offsets=offsets, output=True)
    assert _batch(together) == _batch(prog.run_many(frames, output=True))


def test_retvals_read_as_run_reads_them_for_each_program_kind():
    tc = pyebpf.Program.from_asm("r0 = -1\nexit", "sched_cls").run_many([bytes(60)])
    sf = pyebpf.Program.from_asm("r0 = -1\nexit", "socket_filter").run_many([bytes(60)])
    raw = pyebpf.Program.from_asm("r0 = -1\nexit").run_many([bytes(60)])
    assert (tc.retval.typecode, tc.retval[0]) == ("i", -1)
    assert (sf.retval.typecode, sf.retval[0]) == ("I", 0xFFFFFFFF)
    assert (raw.retval.typecode, raw.retval[0]) == ("Q", 2**64 - 1)


def test_without_output_no_bytes_are_kept():
    batch = pyebpf.Program(TC_SUM, "sched_cls").run_many([bytes(60)] * 3)
    assert batch.data is None and len(batch) == 3 and list(batch.length) == [60] * 3


def test_a_fault_mid_batch_is_recorded_with_its_pc_and_the_batch_goes_on():
    prog = pyebpf.Program(TC_FAULTS, "sched_cls", verify=False)
    frames = [bytes(60), bytes(14) + b"\xff" + bytes(45), bytes(14) + b"\x07" + bytes(45)]
    batch = prog.run_many(frames)
    with pytest.raises(pyebpf.errors.MemoryFault) as alone:
        prog.run(frames[1])
    [(index, err)] = batch.faults
    assert (index, type(err), err.pc, str(err)) == (1, type(alone.value), 3, str(alone.value))
    assert list(batch.retval) == [0, 0, 7] and list(batch.length) == [60, 0, 60]
    assert batch.insn_count[1] == 4


def test_a_budget_fault_stops_only_its_run():
    prog = pyebpf.Program(TC_SUM, "sched_cls")
    batch = prog.run_many([bytes(60)] * 2, budget=5)
    assert [type(err) for _, err in batch.faults] == [pyebpf.errors.BudgetExceeded] * 2
    assert [k for k, _ in batch.faults] == [0, 1]


def test_the_runs_of_a_batch_share_the_programs_maps():
    counter = Map.create(ARRAY, 4, 8, 1)
    prog = pyebpf.Program(_count_into(counter.fd), "sched_cls")
    count = counter.typed("I", "Q")
    prog.run_many([bytes(60)] * 1000)
    assert count[0] == 1000
    prog.run(bytes(60))
    assert count[0] == 1001


def _count_into(fd):
    return pyebpf.asm.assemble(f"""
        r0 = 0
        *(u32 *)(r10 - 4) = r0
        r1 = map_fd({fd}) ll
        r2 = r10
        r2 += -4
        call 1
        if r0 == 0 goto out
        r1 = 1
        lock *(u64 *)(r0 + 0) += r1
    out:
        r0 = 0
        exit""")


def test_the_clock_advances_through_a_batch_as_through_a_loop_of_run():
    prog = pyebpf.Program(KTIME, "sched_cls")
    looped = [r for r, _, _ in _loop(prog, [bytes(60)] * 4)]
    batched = list(prog.run_many([bytes(60)] * 4).retval)
    assert [b - a for a, b in zip(looped, looped[1:])] == \
        [b - a for a, b in zip(batched, batched[1:])]
    assert batched[0] - looped[-1] == looped[1] - looped[0]


def test_a_frame_no_skb_can_hold_is_refused_before_anything_runs():
    counter = Map.create(ARRAY, 4, 8, 1)
    prog = pyebpf.Program(_count_into(counter.fd), "sched_cls")
    with pytest.raises(ValueError, match=r"^run_many\(\): frame 2: a 3-byte packet is shorter"):
        prog.run_many([bytes(60), bytes(60), bytes(3)])
    assert counter.typed("I", "Q")[0] == 0


def test_offsets_past_the_buffer_are_refused_in_one_line():
    prog = pyebpf.Program(TC_SUM, "sched_cls")
    with pytest.raises(ValueError, match=r"frame 1 spans bytes 60 to 200 of a 120-byte buffer"):
        prog.run_many(bytes(120), offsets=[0, 60, 200])


def test_a_capture_runs_as_the_list_of_its_frames(tmp_path):
    frames = [bytes(14) + bytes([k]) + bytes(45) for k in range(20)]
    path = tmp_path / "c.pcap"
    pcapio.write(path, [(k * 1000, f, len(f)) for k, f in enumerate(frames)])
    prog = pyebpf.Program(TC_SUM, "sched_cls")
    want = _batch(prog.run_many(frames, output=True))
    assert _batch(prog.run_many(pcapio.read(path), output=True)) == want
    with pcapio.Source(path) as source:
        assert _batch(prog.run_many(source, output=True)) == want


def test_a_capture_of_another_linktype_is_refused_for_skb_programs(tmp_path):
    path = tmp_path / "raw.pcap"
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101))
    with pytest.raises(ValueError, match="linktype 101; skb programs take Ethernet frames"):
        pyebpf.Program(TC_SUM, "sched_cls").run_many(pcapio.read(path))


@pytest.mark.parametrize("prog_type", ["sched_cls", "socket_filter"])
def test_each_run_of_a_batch_gives_what_the_kernels_test_run_gives(kernel_oracle, prog_type):
    code = CASES[prog_type]
    frames = [bytes(14) + bytes([k * 37 % 256]) + bytes(range(k, k + 45)) for k in range(8)]
    # test_run starts a socket filter at the network header
    fields = {"sf_start": "network"} if prog_type == "socket_filter" else {}
    batch = pyebpf.Program(code, prog_type).run_many(frames, output=True, **fields)
    with kernel_oracle.KernelProgram(code, prog_type) as kprog:
        for k, frame in enumerate(frames):
            theirs = kprog.test_run(frame, ctx={})
            count_comparison()
            if prog_type == "sched_cls":
                assert (batch.retval[k], batch.data[k]) == (theirs.retval_signed, theirs.data)
            else:
                assert batch.retval[k] == theirs.retval


def test_offsets_may_be_an_array_of_unsigned_64_bit_ints():
    prog = pyebpf.Program(TC_SUM, "sched_cls")
    batch = prog.run_many(bytes(120), offsets=array.array("Q", [0, 60, 120]))
    assert list(batch.retval) == list(prog.run_many([bytes(60)] * 2).retval)
