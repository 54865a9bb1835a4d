"""STACK_TRACE maps and bpf_get_stackid (docs/kernel-notes.md, Maps).

None of the three program types may call bpf_get_stackid (the kernel refuses it at
load, and so does pyebpf), so its behaviour is tested in the raw mode, where it is a
builtin helper over a synthetic stack: the running bpf-to-bpf call chain.
"""
import errno
import struct

import pytest

import pyebpf
from pyebpf import isa
from pyebpf import Map
from pyebpf.errors import MapError

STACK_TRACE = isa.MapType.BPF_MAP_TYPE_STACK_TRACE


def u32(v):
    return struct.pack("<I", v)


# Creation rules: tests/test_maps.py.


def test_an_empty_map_answers_the_syscalls_like_the_kernel(kernel_oracle):
    ours = Map.create(STACK_TRACE, 4, 16, 4)
    with kernel_oracle.KernelMap(STACK_TRACE, 4, 16, 4) as theirs:
        for m in (ours, theirs):
            assert m.lookup(u32(1)) is None and m.next_key(None) is None
        for key, want in ((u32(1), errno.ENOENT), (u32(99), errno.E2BIG)):
            with pytest.raises(MapError) as a:
                ours.delete(key)
            with pytest.raises(pyebpf.errors.KernelError) as b:
                theirs.delete(key)
            assert a.value.errno == b.value.errno == want
        with pytest.raises(MapError) as a:
            ours.update(u32(0), bytes(16))
        with pytest.raises(pyebpf.errors.KernelError) as b:
            theirs.update(u32(0), bytes(16))
        assert a.value.errno == b.value.errno == errno.EINVAL


def _stackid_program(fd, flags, depth=1):
    """call local depth-1 times, then r0 = get_stackid(r1, map, flags)."""
    body = [f"lddw %r2, map_fd({fd})", f"lddw %r3, {flags}", "call 27", "exit"]
    lines = []
    for k in range(1, depth):
        lines += [f"call local f{k}", "exit", f"f{k}:"]
    return pyebpf.Program.from_asm("\n".join(lines + body), helpers={27: "get_stackid"})


def test_the_same_stack_gets_the_same_id_and_is_stored():
    m = Map.create(STACK_TRACE, 4, 32, 16)
    prog = _stackid_program(m.fd, 0, depth=3)
    first, second = prog.run().retval, prog.run().retval
    assert first == second < 16 and len(m) == 1
    # the get_stackid call at pc 8, then the two local calls at pcs 2 and 0; zero-filled
    assert struct.unpack("<4Q", m.lookup(u32(first))) == (8, 2, 0, 0)


def test_skipped_frames_and_a_truncated_stack():
    m = Map.create(STACK_TRACE, 4, 8, 16)
    sid = _stackid_program(m.fd, 1, depth=3).run().retval
    assert struct.unpack("<Q", m.lookup(u32(sid)))[0] == 2    # frame 0 skipped, one kept


@pytest.mark.parametrize("flags, want", [(isa.BPF_F_INGRESS << 11, -errno.EINVAL),
                                         (1 << 8, -errno.EFAULT), (5, -errno.EFAULT)],
                         ids=["unknown-flag", "user-stack", "skip-everything"])
def test_get_stackid_errors(flags, want):
    m = Map.create(STACK_TRACE, 4, 16, 4)
    assert _stackid_program(m.fd, flags, depth=2).run().retval == want & (2**64 - 1)


def test_a_colliding_stack_is_eexist_unless_reuse_stackid():
    m = Map.create(STACK_TRACE, 4, 16, 1)          # one bucket: every stack collides
    assert _stackid_program(m.fd, 0, depth=1).run().retval == 0
    other = _stackid_program(m.fd, 0, depth=2)
    assert other.run().retval == -errno.EEXIST & (2**64 - 1)
    assert other.run(budget=100).retval == -errno.EEXIST & (2**64 - 1)
    assert _stackid_program(m.fd, 1 << 10, depth=2).run().retval == 0


def test_map_helpers_refuse_a_stack_trace_map():
    m = Map.create(STACK_TRACE, 4, 16, 4)
    prog = pyebpf.Program.from_asm(f"""
        stw [%r10-4], 0
        lddw %r1, map_fd({m.fd})
        mov %r2, %r10
        add %r2, -4
        call 1
        exit""", helpers={1: "map_lookup_elem"})
    with pytest.raises(pyebpf.errors.ExecutionError, match="only for bpf_get_stackid"):
        prog.run()


def test_skb_programs_cannot_call_get_stackid(kernel_oracle):
    m = Map.create(STACK_TRACE, 4, 16, 4)
    code = pyebpf.asm.assemble(f"r2 = map_fd({m.fd}) ll\nr3 = 0x0\ncall 0x1b\nexit")
    with pytest.raises(pyebpf.errors.VerifierError, match="cannot use helper bpf_get_stackid#27"):
        pyebpf.Program(code, "sched_cls")
