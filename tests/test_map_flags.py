"""Map creation flags against the kernel: which types take which (BPF_F_NUMA_NODE,
BPF_F_MMAPABLE, BPF_F_INNER_MAP, the access flags), user-side BPF_F_RDONLY and
BPF_F_WRONLY (EPERM), and the verifier's refusals of program reads and writes of
BPF_F_WRONLY_PROG and BPF_F_RDONLY_PROG maps' values."""
import errno

import pytest

import pyebpf
from pyebpf import Map, asm, isa
from pyebpf.errors import MapError, VerifierError

from mapcheck import lookup_key, u32

T = isa.MapType
HASH, ARRAY, LPM = T.BPF_MAP_TYPE_HASH, T.BPF_MAP_TYPE_ARRAY, T.BPF_MAP_TYPE_LPM_TRIE
NUMA, MMAP, INNER = isa.BPF_F_NUMA_NODE, isa.BPF_F_MMAPABLE, isa.BPF_F_INNER_MAP
RDONLY, WRONLY = isa.BPF_F_RDONLY, isa.BPF_F_WRONLY
RDONLY_PROG, WRONLY_PROG = isa.BPF_F_RDONLY_PROG, isa.BPF_F_WRONLY_PROG
FRAME = bytes(range(64))

SHAPES = {   # a valid (key, value, max_entries, flags) of each type
    "hash": (4, 4, 4, 0), "percpu_hash": (4, 4, 4, 0), "lru_hash": (4, 4, 4, 0),
    "array": (4, 4, 4, 0), "percpu_array": (4, 4, 4, 0), "prog_array": (4, 4, 4, 0),
    "perf_event_array": (4, 4, 4, 0), "lpm_trie": (8, 4, 4, isa.BPF_F_NO_PREALLOC),
    "stack_trace": (4, 8, 4, 0), "ringbuf": (0, 0, 4096, 0), "queue": (0, 4, 4, 0),
}
FLAGS = {"numa": NUMA, "mmapable": MMAP, "inner-map": INNER, "rdonly": RDONLY,
         "wronly": WRONLY, "rdonly-prog": RDONLY_PROG, "wronly-prog": WRONLY_PROG,
         "rdonly-and-wronly": RDONLY | WRONLY, "both-prog": RDONLY_PROG | WRONLY_PROG}


def _created(make, *args):
    try:
        make(*args)
    except (MapError, pyebpf.errors.KernelError) as exc:
        return exc.errno
    return "ok"


@pytest.mark.parametrize("flag", FLAGS)
@pytest.mark.parametrize("kind", SHAPES)
def test_a_flag_is_taken_or_refused_as_the_kernel_does(kernel_oracle, kind, flag):
    key, value, entries, base = SHAPES[kind]
    kind_id = T["BPF_MAP_TYPE_" + kind.upper()]
    args = (kind_id, key, value, entries, base | FLAGS[flag])

    def kernels(*a):
        kernel_oracle.KernelMap(*a).close()
    assert _created(Map.create, *args) == _created(kernels, *args)


@pytest.mark.parametrize("mode, ok, refused", [(RDONLY, "lookup", "update"),
                                               (WRONLY, "update", "lookup")],
                         ids=["rdonly", "wronly"])
def test_user_space_access_flags_refuse_the_other_direction_with_eperm(kernel_oracle, mode,
                                                                      ok, refused):
    ours = Map.create(ARRAY, 4, 4, 2, mode)
    with kernel_oracle.KernelMap(ARRAY, 4, 4, 2, mode) as theirs:
        for m in (ours, theirs):
            args = {"lookup": (u32(0),), "update": (u32(0), u32(1))}
            getattr(m, ok)(*args[ok])
            with pytest.raises((MapError, pyebpf.errors.KernelError)) as exc:
                getattr(m, refused)(*args[refused])
            assert exc.value.errno == errno.EPERM


def _value_access(fd, write):
    # look up key 0 and read or write its first word
    access = "*(u32 *)(r0 + 0x0) = r1" if write else "r1 = *(u32 *)(r0 + 0x0)"
    return lookup_key(fd) + f"""
        if r0 == 0x0 goto out
        r1 = 7
        {access}
    out:
        r0 = 0
        exit"""


@pytest.mark.parametrize("flags, write", [(RDONLY_PROG, True), (WRONLY_PROG, False)],
                         ids=["write-rdonly-prog", "read-wronly-prog"])
def test_the_verifier_refuses_the_forbidden_direction_with_the_kernels_message(
        kernel_oracle, flags, write):
    ours = Map.create(ARRAY, 4, 8, 2, flags)
    with kernel_oracle.KernelMap(ARRAY, 4, 8, 2, flags) as theirs:
        with pytest.raises(pyebpf.errors.KernelError) as kexc:
            kernel_oracle.KernelProgram(asm.assemble(_value_access(theirs.fd, write)),
                                        "sched_cls")
        with pytest.raises(VerifierError) as exc:
            pyebpf.Program(asm.assemble(_value_access(ours.fd, write)), "sched_cls")
    verb = "write into" if write else "read from"
    want = f"{verb} map forbidden, value_size=8 off=0 size=4"
    assert want in str(kexc.value) and want in str(exc.value)


@pytest.mark.parametrize("flags, write", [(RDONLY_PROG, False), (WRONLY_PROG, True)],
                         ids=["read-rdonly-prog", "write-wronly-prog"])
def test_the_allowed_direction_runs_as_in_the_kernel(kernel_oracle, flags, write):
    ours = Map.create(ARRAY, 4, 8, 2, flags)
    with kernel_oracle.KernelMap(ARRAY, 4, 8, 2, flags) as theirs:
        for m in (ours, theirs):
            m.update(u32(0), bytes(range(8)))
        mine = pyebpf.Program(asm.assemble(_value_access(ours.fd, write)), "sched_cls")
        with kernel_oracle.KernelProgram(asm.assemble(_value_access(theirs.fd, write)),
                                         "sched_cls") as prog:
            assert mine.run(FRAME).retval == prog.test_run(FRAME, ctx={}).retval_signed
        assert ours.lookup(u32(0)) == theirs.lookup(u32(0))


def _load_bytes_into_value(fd):
    # bpf_skb_load_bytes(skb, 0, value, 4): the helper writes the map value
    return "r6 = r1" + lookup_key(fd) + """
        if r0 == 0x0 goto out
        r1 = r6
        r2 = 0
        r3 = r0
        r4 = 4
        call 0x1a
    out:
        r0 = 0
        exit"""


def test_a_helper_writing_a_rdonly_prog_value_is_refused_with_the_kernels_message(
        kernel_oracle):
    ours = Map.create(ARRAY, 4, 8, 2, RDONLY_PROG)
    with kernel_oracle.KernelMap(ARRAY, 4, 8, 2, RDONLY_PROG) as theirs:
        with pytest.raises(pyebpf.errors.KernelError) as kexc:
            kernel_oracle.KernelProgram(asm.assemble(_load_bytes_into_value(theirs.fd)),
                                        "sched_cls")
        with pytest.raises(VerifierError) as exc:
            pyebpf.Program(asm.assemble(_load_bytes_into_value(ours.fd)), "sched_cls")
    want = "write into map forbidden, value_size=8 off=0 size=4"
    assert want in str(kexc.value) and want in str(exc.value)


@pytest.mark.parametrize("outer, tmpl_flags, inner_entries", [
    (T.BPF_MAP_TYPE_ARRAY_OF_MAPS, 0, 8), (T.BPF_MAP_TYPE_ARRAY_OF_MAPS, INNER, 8),
    (T.BPF_MAP_TYPE_HASH_OF_MAPS, 0, 8)],
    ids=["array-other-size", "array-inner-map-flag", "hash-of-maps-other-size"])
def test_an_inner_map_of_another_size_is_taken_as_the_kernel_takes_it(
        kernel_oracle, outer, tmpl_flags, inner_entries):
    def attempt(make_map, make_outer):
        tmpl = make_map(ARRAY, 4, 4, 2, tmpl_flags)
        inner = make_map(ARRAY, 4, 4, inner_entries, tmpl_flags)
        o = make_outer(tmpl)
        try:
            o.update(u32(0), inner if isinstance(o, Map) else u32(inner.fd))
        except (MapError, pyebpf.errors.KernelError) as exc:
            return exc.errno
        return "ok"
    ours = attempt(Map.create, lambda t: Map.create(outer, 4, 4, 2, inner_map=t))
    theirs = attempt(kernel_oracle.KernelMap,
                     lambda t: kernel_oracle.KernelMap(outer, 4, 4, 2, inner_map_fd=t.fd))
    assert ours == theirs
