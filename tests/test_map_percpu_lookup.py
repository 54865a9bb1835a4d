"""bpf_map_lookup_percpu_elem (195): a program reads the value of any CPU of a per-CPU
map, against the kernel."""

import pytest

import pyebpf
from pyebpf import Map, asm, isa
from pyebpf.errors import VerifierError

from mapcheck import U32_OR_MINUS_1, u32

T = isa.MapType
FRAME = bytes(range(64))


def _lookup_on(fd, cpu):
    # the u32 value of key 0 for ``cpu``, or -1 for NULL
    return f"""
        *(u32 *)(r10 - 0x4) = 0x0
        r1 = map_fd({fd}) ll
        r2 = r10
        r2 += -0x4
        r3 = {cpu}
        call 0xc3""" + U32_OR_MINUS_1


@pytest.mark.parametrize("kind", [T.BPF_MAP_TYPE_PERCPU_ARRAY, T.BPF_MAP_TYPE_PERCPU_HASH,
                                  T.BPF_MAP_TYPE_LRU_PERCPU_HASH],
                         ids=["percpu-array", "percpu-hash", "lru-percpu-hash"])
@pytest.mark.parametrize("which", ["first", "last", "past-the-last", "huge"])
def test_a_program_reads_the_value_of_the_cpu_it_names(kernel_oracle, kind, which):
    with kernel_oracle.KernelMap(kind, 4, 4, 4) as theirs:
        ncpu = theirs.value_buffer_size // 8
        ours = Map.create(kind, 4, 4, 4, ncpu=ncpu)
        cpu = {"first": 0, "last": ncpu - 1, "past-the-last": ncpu, "huge": 0x7fffffff}[which]
        ours.update(u32(0), [u32(100 + c) for c in range(ncpu)])
        theirs.update(u32(0), b"".join(u32(100 + c).ljust(8, b"\0") for c in range(ncpu)))
        mine = pyebpf.Program(asm.assemble(_lookup_on(ours.fd, cpu)), "sched_cls")
        with kernel_oracle.KernelProgram(asm.assemble(_lookup_on(theirs.fd, cpu)),
                                         "sched_cls") as prog:
            assert mine.run(FRAME).retval == prog.test_run(FRAME, ctx={}).retval_signed


def test_a_map_that_is_not_per_cpu_is_refused_with_the_kernels_message(kernel_oracle):
    ours = Map.create(T.BPF_MAP_TYPE_ARRAY, 4, 4, 4)
    with kernel_oracle.KernelMap(T.BPF_MAP_TYPE_ARRAY, 4, 4, 4) as theirs:
        with pytest.raises(pyebpf.errors.KernelError) as kexc:
            kernel_oracle.KernelProgram(asm.assemble(_lookup_on(theirs.fd, 0)), "sched_cls")
        with pytest.raises(VerifierError) as exc:
            pyebpf.Program(asm.assemble(_lookup_on(ours.fd, 0)), "sched_cls")
    want = "cannot pass map_type 2 into func bpf_map_lookup_percpu_elem#195"
    assert want in str(kexc.value) and want in str(exc.value)
