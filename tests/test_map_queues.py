"""Queues and stacks (BPF_MAP_TYPE_QUEUE, BPF_MAP_TYPE_STACK) against the kernel (their
creation is with the other types' in test_map_types.py): the commands (lookup peeks,
update pushes, lookup-and-delete pops), the push, pop and peek helpers, the verifier's
pairing of maps and helpers, and pinning."""
import errno
import struct

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import pyebpf
from pyebpf import Map, asm, isa, pin_format
from pyebpf.errors import VerifierError

from mapcheck import outcome as _outcome, u32

T = isa.MapType
QUEUE, STACK, HASH = T.BPF_MAP_TYPE_QUEUE, T.BPF_MAP_TYPE_STACK, T.BPF_MAP_TYPE_HASH
FRAME = bytes(range(64))


# --- the commands --------------------------------------------------------------------

_ops = st.lists(st.one_of(
    st.tuples(st.just("update"), st.integers(0, 255), st.sampled_from([0, 1, 2, 3])),
    st.tuples(st.sampled_from(["lookup", "lookup_and_delete", "delete", "next_key"]))),
    max_size=14)


@settings(max_examples=30, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from([QUEUE, STACK]), ops=_ops)
def test_every_command_returns_what_the_kernel_returns(kernel_oracle, kind, ops):
    ours = Map.create(kind, 0, 4, 3)
    with kernel_oracle.KernelMap(kind, 0, 4, 3) as theirs:
        for op in ops:
            if op[0] == "update":
                args = (b"", u32(op[1]), op[2])
            elif op[0] == "next_key":
                args = (None,)
            else:
                args = (b"",)
            assert _outcome(getattr(ours, op[0]), *args) == \
                _outcome(getattr(theirs, op[0]), *args), f"{op} after {ops}"


def test_a_queue_pops_the_oldest_value_and_a_stack_the_newest():
    q, s = Map.create(QUEUE, 0, 4, 4), Map.create(STACK, 0, 4, 4)
    for m in (q, s):
        for v in (1, 2, 3):
            m.push(u32(v))
    assert [q.pop(), q.peek(), len(q)] == [u32(1), u32(2), 2]
    assert [s.pop(), s.peek(), len(s)] == [u32(3), u32(2), 2]


def test_lookup_and_delete_of_a_hash_key_takes_it_as_the_kernel_does(kernel_oracle):
    ours = Map.create(HASH, 4, 4, 4, isa.BPF_F_ZERO_SEED)
    with kernel_oracle.KernelMap(HASH, 4, 4, 4, isa.BPF_F_ZERO_SEED) as theirs:
        for m in (ours, theirs):
            m.update(u32(1), u32(10))
        assert [_outcome(m.lookup_and_delete, u32(1)) for m in (ours, theirs)] == [u32(10)] * 2
        assert [_outcome(m.lookup_and_delete, u32(1)) for m in (ours, theirs)] == [None] * 2
        assert [_outcome(m.lookup_and_delete, u32(1), isa.BPF_F_LOCK)
                for m in (ours, theirs)] == [errno.EINVAL] * 2


def test_lookup_and_delete_of_an_array_is_enotsupp(kernel_oracle):
    ours = Map.create(T.BPF_MAP_TYPE_ARRAY, 4, 4, 4)
    with kernel_oracle.KernelMap(T.BPF_MAP_TYPE_ARRAY, 4, 4, 4) as theirs:
        assert _outcome(ours.lookup_and_delete, u32(0)) == \
            _outcome(theirs.lookup_and_delete, u32(0)) == isa.Errno.ENOTSUPP


def test_the_bpf_command_pops_a_queue(kernel_oracle):
    m = Map.create(QUEUE, 0, 4, 2)
    m.push(u32(7))
    out = bytearray(4)
    pyebpf.bpf("map_lookup_and_delete_elem", {"map_fd": m.fd, "value": out})
    assert out == u32(7)
    with pytest.raises(pyebpf.errors.BpfError) as exc:
        pyebpf.bpf("map_lookup_and_delete_elem", {"map_fd": m.fd, "value": out})
    assert exc.value.errno == errno.ENOENT


# --- the helpers ---------------------------------------------------------------------

def _helpers_prog(fd, flags):
    # push 1, 2, 3 (with ``flags``), pop one, peek one; r0 = popped * 1000 + peeked
    # * 10 + the third push's result (as a small number: 0 ok, 7 for E2BIG)
    def push(value):
        return f"""
        *(u32 *)(r10 - 0x4) = {value}
        r1 = map_fd({fd}) ll
        r2 = r10
        r2 += -0x4
        r3 = {flags}
        call 0x57"""

    def take(helper, at, weight):
        # r6 += the value bpf_map_pop_elem or _peek_elem gives into r10 - at, * weight
        return f"""
        r1 = map_fd({fd}) ll
        r2 = r10
        r2 += -{at}
        call {helper}
        if r0 != 0x0 goto out
        r7 = *(u32 *)(r10 - {at})
        r7 *= {weight}
        r6 += r7"""
    return "r6 = 0" + push(1) + push(2) + push(3) + """
        if r0 == 0x0 goto pushed
        r6 = 7
    pushed:""" + take(0x58, 8, 1000) + take(0x59, 12, 10) + """
    out:
        r0 = r6
        exit"""


@pytest.mark.parametrize("kind", [QUEUE, STACK], ids=["queue", "stack"])
@pytest.mark.parametrize("flags", [isa.BPF_ANY, isa.BPF_EXIST], ids=["any", "exist"])
def test_push_pop_and_peek_in_a_program_match_the_kernel(kernel_oracle, kind, flags):
    ours = Map.create(kind, 0, 4, 2)
    with kernel_oracle.KernelMap(kind, 0, 4, 2) as theirs:
        mine = pyebpf.Program(asm.assemble(_helpers_prog(ours.fd, flags)), "sched_cls")
        with kernel_oracle.KernelProgram(asm.assemble(_helpers_prog(theirs.fd, flags)),
                                         "sched_cls") as prog:
            assert mine.run(FRAME).retval == prog.test_run(FRAME, ctx={}).retval_signed
        left = [ours.lookup_and_delete(b"") for _ in range(2)]
        assert left == [theirs.lookup_and_delete(b"") for _ in range(2)]


def _pop_empty_prog(fd, helper):
    # pop or peek an empty map into a buffer holding 0xffffffff: r0 = the result in the
    # high half, the buffer's low 16 bits in the low half
    return f"""
        r1 = -1
        *(u32 *)(r10 - 0x4) = r1
        r1 = map_fd({fd}) ll
        r2 = r10
        r2 += -0x4
        call {helper}
        r0 <<= 16
        r1 = *(u32 *)(r10 - 0x4)
        r1 &= 0xffff
        r0 |= r1
        exit"""


@pytest.mark.parametrize("helper", [0x58, 0x59], ids=["pop", "peek"])
def test_taking_from_an_empty_queue_is_enoent_and_zeroes_the_buffer(kernel_oracle, helper):
    ours = Map.create(QUEUE, 0, 4, 2)
    with kernel_oracle.KernelMap(QUEUE, 0, 4, 2) as theirs:
        mine = pyebpf.Program(asm.assemble(_pop_empty_prog(ours.fd, helper)), "sched_cls")
        with kernel_oracle.KernelProgram(asm.assemble(_pop_empty_prog(theirs.fd, helper)),
                                         "sched_cls") as prog:
            theirs_r0 = prog.test_run(FRAME, ctx={}).retval_signed
    assert theirs_r0 == -errno.ENOENT << 16        # -ENOENT, and the buffer is zero
    assert mine.run(FRAME).retval == theirs_r0


def _call_on(fd, helper):
    # r2: 4 initialised bytes on the stack, r3: 4, r4: 0 — arguments every helper used
    # here accepts, so that only the map's type is wrong
    return f"""
        *(u32 *)(r10 - 0x4) = 0x0
        r1 = map_fd({fd}) ll
        r2 = r10
        r2 += -0x4
        r3 = 4
        r4 = 0
        call {helper}
        r0 = 0
        exit"""


@pytest.mark.parametrize("kind, helper", [(HASH, 0x57), (HASH, 0x59), (QUEUE, 0x82),
                                          (STACK, 0x86)],
                         ids=["push-on-hash", "peek-on-hash", "ringbuf-output-on-queue",
                              "ringbuf-query-on-stack"])
def test_the_verifier_pairs_queues_with_their_own_helpers(kernel_oracle, kind, helper):
    key = 4 if kind == HASH else 0
    ours = Map.create(kind, key, 4, 2)
    with kernel_oracle.KernelMap(kind, key, 4, 2) as theirs:
        with pytest.raises(pyebpf.errors.KernelError) as kexc:
            kernel_oracle.KernelProgram(asm.assemble(_call_on(theirs.fd, helper)), "sched_cls")
        with pytest.raises(VerifierError) as exc:
            pyebpf.Program(asm.assemble(_call_on(ours.fd, helper)), "sched_cls")
    want = f"cannot pass map_type {int(kind)} into func"
    assert want in str(exc.value) and want in str(kexc.value)


@pytest.mark.parametrize("kind, helper", [(QUEUE, 1), (STACK, 2), (QUEUE, 3)],
                         ids=["lookup", "update", "delete"])
def test_a_program_cannot_use_the_key_helpers_on_a_queue(kernel_oracle, kind, helper):
    ours = Map.create(kind, 0, 4, 2)
    with kernel_oracle.KernelMap(kind, 0, 4, 2) as theirs:
        with pytest.raises(pyebpf.errors.KernelError):
            kernel_oracle.KernelProgram(asm.assemble(_call_on(theirs.fd, helper)), "sched_cls")
        with pytest.raises(VerifierError):
            pyebpf.Program(asm.assemble(_call_on(ours.fd, helper)), "sched_cls")


# --- pinning -------------------------------------------------------------------------

def test_a_queue_survives_its_pin_file_with_its_order(tmp_path, monkeypatch):
    monkeypatch.setenv("PYEBPF_PIN_ROOT", str(tmp_path / "pins"))
    m = Map.create(QUEUE, 0, 4, 3)
    for v in (1, 2, 3, 4):
        m.push(u32(v), isa.BPF_EXIST)
    m.pin("q")
    copy = Map.create(QUEUE, 0, 4, 3)
    pin_format.load(copy, pin_format.dump(m))
    assert [copy.pop() for _ in range(4)] == [u32(2), u32(3), u32(4), None]


def test_queue_positions_holding_more_than_max_entries_are_refused():
    m = Map.create(STACK, 0, 4, 2)
    data = struct.pack("<QQ", 0, 3) + bytes(8)
    with pytest.raises(ValueError, match="more values than max_entries"):
        pin_format.load(m, data)
    assert len(m) == 0
