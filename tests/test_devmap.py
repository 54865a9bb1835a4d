"""XDP redirect maps (DEVMAP, DEVMAP_HASH, CPUMAP, XSKMAP) and cgroup storage
(CGROUP_STORAGE, PERCPU_CGROUP_STORAGE) against the kernel: the maps BPF_MAP_CREATE
makes and refuses, the commands on them and their errnos, the verifier's pairing of
these maps with helpers, a tc program's devmap lookups, and an object holding them all.

The kernel runs in the test process's network namespace, whose devices are not
pyebpf's default Environment's (loopback only): devmap updates name ifindex 1 (lo in
both) and ifindexes that neither has."""
from __future__ import annotations

import ctypes
import os
import socket
import struct

import pytest

import pyebpf
import pyebpf.kernel
from pyebpf import Map, asm, isa
from pyebpf.environment import Device, Environment
from pyebpf.errors import MapError

from bpfc import compile_object
from mapcheck import U32_OR_MINUS_1, created, load_verdicts, lookup_key, outcome, \
    refused_alike, u32, u32_or_minus_1
from recorded_kernel import count_comparison

T = isa.MapType
DEVMAP, DEVMAP_HASH = T.BPF_MAP_TYPE_DEVMAP, T.BPF_MAP_TYPE_DEVMAP_HASH
CPUMAP, XSKMAP = T.BPF_MAP_TYPE_CPUMAP, T.BPF_MAP_TYPE_XSKMAP
CGROUP_STORAGE = T.BPF_MAP_TYPE_CGROUP_STORAGE
PERCPU_CGROUP_STORAGE = T.BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE
RDONLY, WRONLY = isa.BPF_F_RDONLY, isa.BPF_F_WRONLY
RDONLY_PROG, WRONLY_PROG = isa.BPF_F_RDONLY_PROG, isa.BPF_F_WRONLY_PROG
NUMA, NO_PREALLOC = isa.BPF_F_NUMA_NODE, isa.BPF_F_NO_PREALLOC
ANY, NOEXIST, EXIST = isa.BPF_ANY, isa.BPF_NOEXIST, isa.BPF_EXIST
FRAME = bytes(range(64))
NO_DEVICE = 77          # an ifindex neither the kernel's namespace nor pyebpf's has


def pair(a, b):
    return struct.pack("<Ii", a, b)


# --- creation ------------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    (DEVMAP, 4, 4, 1, 0), (DEVMAP, 4, 8, 4, 0), (DEVMAP, 4, 6, 4, 0), (DEVMAP, 8, 4, 4, 0),
    (DEVMAP, 4, 4, 0, 0), (DEVMAP, 4, 4, 4, NO_PREALLOC), (DEVMAP, 4, 4, 4, RDONLY),
    (DEVMAP, 4, 4, 4, WRONLY), (DEVMAP, 4, 4, 4, NUMA), (DEVMAP, 4, 4, 4, RDONLY_PROG),
    (DEVMAP_HASH, 4, 8, 4, 0), (DEVMAP_HASH, 4, 4, 3, 0), (DEVMAP_HASH, 2, 4, 4, 0),
    (DEVMAP_HASH, 4, 12, 4, 0), (DEVMAP_HASH, 4, 4, 0, 0), (DEVMAP_HASH, 4, 4, 4, NO_PREALLOC),
    (CPUMAP, 4, 4, 2, 0), (CPUMAP, 4, 8, 256, 0), (CPUMAP, 4, 8, 257, 0), (CPUMAP, 4, 12, 2, 0),
    (CPUMAP, 4, 8, 0, 0), (CPUMAP, 8, 8, 2, 0), (CPUMAP, 4, 8, 2, RDONLY), (CPUMAP, 4, 8, 2, NUMA),
    (CPUMAP, 4, 8, 257, RDONLY),
    (XSKMAP, 4, 4, 4, 0), (XSKMAP, 4, 8, 4, 0), (XSKMAP, 4, 4, 0, 0), (XSKMAP, 4, 4, 4, RDONLY),
    (XSKMAP, 4, 4, 4, RDONLY_PROG), (XSKMAP, 4, 4, 4, RDONLY | WRONLY),
    (CGROUP_STORAGE, 8, 4, 0, 0), (CGROUP_STORAGE, 16, 4, 0, 0), (CGROUP_STORAGE, 12, 4, 0, 0),
    (CGROUP_STORAGE, 8, 0, 0, 0), (CGROUP_STORAGE, 8, 4, 1, 0), (CGROUP_STORAGE, 8, 65407, 0, 0),
    (CGROUP_STORAGE, 8, 65408, 0, NO_PREALLOC), (CGROUP_STORAGE, 8, 4, 0, NO_PREALLOC),
    (CGROUP_STORAGE, 8, 4, 0, RDONLY_PROG), (CGROUP_STORAGE, 8, 4, 0, RDONLY_PROG | WRONLY_PROG),
    (CGROUP_STORAGE, 8, 4, 0, NUMA | WRONLY),
    (PERCPU_CGROUP_STORAGE, 8, 32768, 0, 0), (PERCPU_CGROUP_STORAGE, 8, 32769, 0, 0),
    (PERCPU_CGROUP_STORAGE, 16, 8, 4, 0),
], ids=lambda a: f"{T(a[0]).name[13:].lower()}-k{a[1]}-v{a[2]}-n{a[3]}-f{a[4]:#x}")
def test_creation_succeeds_and_fails_as_the_kernels(kernel_oracle, args):
    count_comparison()
    assert created(Map.create, *args) == created(kernel_oracle.KernelMap, *args)


def _kernel_map_flags(kind, sizes) -> dict:
    """The map_flags of the kernel's struct bpf_map_info (BPF_OBJ_GET_INFO_BY_FD) of a
    map created with ``sizes`` (key, value, max_entries, flags)."""
    from pyebpf.kernel import sysbpf
    fd, err = sysbpf.calls.map_create(kind, *sizes, 0, b"")
    if fd < 0:
        raise OSError(err, f"BPF_MAP_CREATE {kind.name}: {os.strerror(err)}")
    try:
        info = ctypes.create_string_buffer(80)
        attr = ctypes.create_string_buffer(isa.BPF_ATTR_SIZE)
        struct.pack_into("<IIQ", attr, 0, fd, len(info), ctypes.addressof(info))
        _, err = sysbpf._syscall(isa.BpfCmd.BPF_OBJ_GET_INFO_BY_FD, attr)
        if err:
            raise OSError(err, f"BPF_OBJ_GET_INFO_BY_FD: {os.strerror(err)}")
        return {"flags": struct.unpack_from("<I", info, 20)[0]}   # bpf_map_info.map_flags
    finally:
        os.close(fd)


@pytest.mark.parametrize("kind, sizes", [
    (DEVMAP, (4, 4, 1, 0)), (DEVMAP_HASH, (4, 8, 1, RDONLY)), (CPUMAP, (4, 8, 1, 0)),
    (XSKMAP, (4, 4, 1, WRONLY)), (CGROUP_STORAGE, (8, 4, 0, RDONLY_PROG)),
], ids=["devmap", "devmap-hash-rdonly", "cpumap", "xskmap-wronly", "cgroup-storage-rdonly-prog"])
def test_the_map_flags_read_back_as_the_kernels(kernel_observation, kind, sizes):
    """dev_map_init_map ORs BPF_F_RDONLY_PROG into a devmap's flags (its effect on
    programs is compared below).  The kernel's map info leaves out BPF_F_RDONLY and
    BPF_F_WRONLY, which belong to the fd (bpf_map_flags_retain_permanent); a pyebpf
    Map, its own only handle, keeps them in ``flags``."""
    theirs = kernel_observation("map_flags in bpf_map_info", f"{int(kind)} {sizes}",
                                lambda: _kernel_map_flags(kind, sizes))
    count_comparison()
    assert Map.create(kind, *sizes).flags & ~(RDONLY | WRONLY) == theirs["flags"]


def test_the_syscall_creates_them_too():
    fd = pyebpf.bpf("BPF_MAP_CREATE", {"map_type": int(DEVMAP_HASH), "key_size": 4,
                                       "value_size": 8, "max_entries": 2})
    assert Map.from_fd(fd).type == DEVMAP_HASH
    with pytest.raises(pyebpf.errors.BpfError) as exc:
        pyebpf.bpf("BPF_MAP_CREATE", {"map_type": int(CPUMAP), "key_size": 4,
                                      "value_size": 8, "max_entries": 257})
    assert exc.value.errno == isa.Errno.E2BIG


# --- commands ------------------------------------------------------------------------

def same_commands(kernel_oracle, kind, sizes, ops):
    """Run ``ops`` ((command, *args)) on a fresh map in pyebpf and in the kernel, each
    answer compared (one comparison each)."""
    ours = Map.create(kind, *sizes)
    with kernel_oracle.KernelMap(kind, *sizes) as theirs:
        for op, *args in ops:
            count_comparison()
            mine, kernel = outcome(getattr(ours, op), *args), outcome(getattr(theirs, op), *args)
            assert mine == kernel, f"{op}{tuple(args)}: pyebpf {mine!r}, kernel {kernel!r}"


DEVMAP_OPS = [
    ("lookup", u32(0)), ("update", u32(0), u32(1)), ("lookup", u32(0)),
    ("update", u32(1), u32(NO_DEVICE)), ("lookup", u32(1)),
    ("update", u32(0), u32(1), NOEXIST), ("update", u32(1), u32(1), EXIST),
    ("update", u32(2), u32(1), 3), ("update", u32(4), u32(1)), ("update", u32(4), u32(1), 3),
    ("next_key", None), ("next_key", u32(2)), ("next_key", u32(3)), ("next_key", u32(9)),
    ("update", u32(0), u32(0)), ("lookup", u32(0)), ("lookup", u32(1)), ("lookup", u32(9)),
    ("delete", u32(1)), ("lookup", u32(1)), ("delete", u32(1)), ("delete", u32(4)),
    ("lookup_and_delete", u32(0)),
]


def test_devmap_commands_answer_as_the_kernels(kernel_oracle):
    same_commands(kernel_oracle, DEVMAP, (4, 4, 4), DEVMAP_OPS)


def test_devmap_commands_with_program_fds_answer_as_the_kernels(kernel_oracle):
    """An 8-byte value is {ifindex, prog fd}: a lookup gives {ifindex, prog id}; a
    program fd is refused (no XDP program, EINVAL), and ifindex 0 cannot name one."""
    same_commands(kernel_oracle, DEVMAP, (4, 8, 4), [
        ("update", u32(0), pair(1, 0)), ("lookup", u32(0)), ("update", u32(0), pair(1, -1)),
        ("lookup", u32(0)), ("update", u32(1), pair(1, 1)), ("update", u32(1), pair(0, 1)),
        ("update", u32(0), pair(0, -5)), ("lookup", u32(0)),
        ("update", u32(2), pair(NO_DEVICE, 0)), ("lookup", u32(2))])


def test_devmap_hash_commands_answer_as_the_kernels(kernel_oracle):
    """A hash keyed by any u32, iterated bucket by bucket (the key's low bits), newest
    first; BPF_EXIST adds a missing key (only BPF_NOEXIST is checked); ifindex 0 is
    EINVAL; full: E2BIG."""
    same_commands(kernel_oracle, DEVMAP_HASH, (4, 8, 3), [
        ("next_key", None), ("lookup", u32(7)), ("update", u32(7), pair(1, 0)),
        ("update", u32(9), pair(1, 0), EXIST), ("update", u32(7), pair(1, 0), NOEXIST),
        ("update", u32(3), pair(0, 0)), ("update", u32(3), pair(NO_DEVICE, 0)),
        ("update", u32(3), pair(1, 4)), ("update", u32(3), pair(1, 0), 4),
        ("update", u32(3), pair(1, 0)),
        ("next_key", None), ("next_key", u32(3)), ("next_key", u32(7)), ("next_key", u32(9)),
        ("next_key", u32(5)),
        ("update", u32(11), pair(1, 0)), ("update", u32(7), pair(1, 0)),
        ("next_key", None), ("next_key", u32(7)), ("next_key", u32(3)),
        ("lookup", u32(9)), ("delete", u32(9)), ("delete", u32(9)), ("lookup", u32(9)),
        ("update", u32(11), pair(1, 0)), ("lookup_and_delete", u32(7)),
    ])


def test_cpumap_commands_answer_as_the_kernels(kernel_oracle):
    """{qsize, prog fd}: qsize 0 empties a slot; above 16384: EOVERFLOW; a CPU past the
    possible ones: ENODEV; a program fd (no XDP program): ENOMEM, as the kernel's
    failed entry."""
    cpus = pyebpf.host.possible_cpus()
    same_commands(kernel_oracle, CPUMAP, (4, 8, cpus + 2), [
        ("lookup", u32(0)), ("update", u32(0), pair(192, 0)), ("lookup", u32(0)),
        ("update", u32(0), pair(16385, 0)), ("update", u32(0), pair(16384, 0)),
        ("lookup", u32(0)), ("update", u32(cpus), pair(64, 0)),
        ("update", u32(cpus + 2), pair(64, 0)), ("update", u32(0), pair(64, 0), NOEXIST),
        ("update", u32(0), pair(64, 0), 4), ("update", u32(0), pair(64, 1)),
        ("update", u32(0), pair(0, 1)), ("lookup", u32(0)),
        ("update", u32(0), pair(32, 0), EXIST), ("next_key", u32(0)),
        ("delete", u32(0)), ("lookup", u32(0)), ("delete", u32(0)), ("delete", u32(cpus + 2)),
    ])


@pytest.mark.parametrize("kind, value", [(DEVMAP, u32(1)), (CPUMAP, pair(64, 0))],
                         ids=["devmap", "cpumap"])
def test_items_leave_out_the_empty_slots_the_keys_list(kernel_oracle, kind, value):
    """get_next_key lists every slot of these arrays, filled or not
    (dev_map_get_next_key, cpu_map_get_next_key); items and values give the filled
    ones, the slots whose lookup finds a value."""
    ours = Map.create(kind, 4, len(value), 4)
    ours.update(u32(1), value)
    with kernel_oracle.KernelMap(kind, 4, len(value), 4) as theirs:
        theirs.update(u32(1), value)
        keys = theirs.keys()
        kernel = [(k, v) for k in keys for v in (theirs.lookup(k),) if v is not None]
    count_comparison()
    assert (ours.keys(), ours.items(), ours.values()) == \
        (keys, kernel, [v for _, v in kernel])


@pytest.fixture
def fixed_fds(tmp_path):
    """fd 1000 a regular file and fd 1001 a UDP socket, at the same numbers each run
    (the recorded answers are keyed by the values, which hold the fds)."""
    path = tmp_path / "f"
    path.write_bytes(b"")
    with open(path, "rb") as f, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        os.dup2(f.fileno(), 1000)
        os.dup2(s.fileno(), 1001)
        try:
            yield 1000, 1001
        finally:
            os.close(1000)
            os.close(1001)


def test_xskmap_commands_answer_as_the_kernels(kernel_oracle, fixed_fds):
    """An XSKMAP holds AF_XDP sockets: an fd not open is EBADF, a file ENOTSOCK, another
    socket EOPNOTSUPP; its values are not read back (EOPNOTSUPP); a slot's delete empties
    it (past the end: EINVAL)."""
    file_fd, udp_fd = fixed_fds
    same_commands(kernel_oracle, XSKMAP, (4, 4, 4), [
        ("update", u32(0), u32(file_fd)), ("update", u32(0), u32(udp_fd)),
        ("update", u32(0), u32(0x7FFFFFF0)), ("update", u32(4), u32(udp_fd)),
        ("update", u32(0), u32(udp_fd), 4), ("lookup", u32(0)), ("delete", u32(0)),
        ("delete", u32(4)), ("next_key", None), ("next_key", u32(3))])


@pytest.fixture
def xsk_fds(net_raw):
    """Two AF_XDP sockets, not bound, at fds 1002 and 1003 (fixed: the recorded answers
    are keyed by the values that hold them); a skip where this process may not make
    one (xsk_create wants CAP_NET_RAW)."""
    made = [socket.socket(isa.AF_XDP, socket.SOCK_RAW) for _ in range(2)]
    for n, s in enumerate(made):
        os.dup2(s.fileno(), 1002 + n)
    try:
        yield 1002, 1003
    finally:
        for n, s in enumerate(made):
            os.close(1002 + n)
            s.close()


def test_xskmap_commands_with_af_xdp_sockets_answer_as_the_kernels(kernel_oracle, xsk_fds):
    """xsk_map_update_elem takes any AF_XDP socket, in as many slots as wanted; the
    socket a slot holds already is no change, whatever the flags."""
    xsk, other = xsk_fds
    same_commands(kernel_oracle, XSKMAP, (4, 4, 4), [
        ("update", u32(0), u32(xsk)), ("update", u32(0), u32(xsk), NOEXIST),
        ("update", u32(1), u32(xsk)), ("update", u32(2), u32(xsk), EXIST),
        ("update", u32(0), u32(other), NOEXIST), ("update", u32(0), u32(other), EXIST),
        ("lookup", u32(0)), ("next_key", u32(1)), ("delete", u32(1)), ("delete", u32(1)),
        ("update", u32(1), u32(other), EXIST)])


@pytest.mark.parametrize("key, want", [(0, 0), (1, -1), (2, -1)],
                         ids=["socket", "deleted", "never-set"])
def test_a_tc_program_reads_an_af_xdp_sockets_queue_id_as_in_the_kernel(kernel_oracle, xsk_fds,
                                                                        key, want):
    """An unbound socket's queue_id is 0; an emptied slot is NULL."""
    xsk, _ = xsk_fds
    assert same_lookup(kernel_oracle, XSKMAP, (4, 4, 4), [
        (u32(0), u32(xsk)), (u32(1), u32(xsk))], key, QUEUE_ID_OR_MINUS_1,
        deletes=[u32(1)]) == want


@pytest.mark.parametrize("kind, key_size", [(CGROUP_STORAGE, 8), (CGROUP_STORAGE, 16),
                                            (PERCPU_CGROUP_STORAGE, 8)],
                         ids=["cgroup-id-key", "cgroup-and-attach-type-key", "percpu"])
def test_cgroup_storage_without_a_cgroup_answers_as_the_kernels(kernel_oracle, kind, key_size):
    """Nothing is attached: no storage to find (ENOENT), delete is EINVAL, and the
    update flags are checked first."""
    key = bytes(range(key_size))
    size = kernel_oracle.KernelMap(kind, key_size, 4, 0)
    value = bytes(size.value_buffer_size)
    size.close()
    same_commands(kernel_oracle, kind, (key_size, 4, 0), [
        ("lookup", key), ("update", key, value), ("update", key, value, EXIST),
        ("update", key, value, NOEXIST), ("update", key, value, isa.BPF_F_LOCK),
        ("lookup", key, isa.BPF_F_LOCK), ("delete", key), ("next_key", None),
        ("next_key", key)])


def test_a_devmap_takes_the_devices_of_the_given_network():
    env = Environment(devices=(Device(1, "lo"), Device(5, "eth0")))
    m = Map.create(DEVMAP, 4, 4, 2)
    m.update(u32(0), u32(5), env=env)
    assert m.lookup(u32(0)) == u32(5)
    with pytest.raises(MapError) as exc:
        m.update(u32(1), u32(5))
    assert exc.value.errno == isa.Errno.EINVAL


# --- programs ------------------------------------------------------------------------

@pytest.mark.parametrize("kind, flags, helper, message", [
    (DEVMAP, 0, "map_update_elem", "write into map forbidden"),
    (DEVMAP, 0, "map_delete_elem", "write into map forbidden"),
    (DEVMAP_HASH, 0, "map_update_elem", "write into map forbidden"),
    (T.BPF_MAP_TYPE_ARRAY, RDONLY_PROG, "map_update_elem", "write into map forbidden"),
    (T.BPF_MAP_TYPE_HASH, RDONLY_PROG, "map_delete_elem", "write into map forbidden"),
    (CPUMAP, 0, "map_lookup_elem", "cannot pass map_type 16 into func bpf_map_lookup_elem#1"),
    (XSKMAP, 0, "map_delete_elem", "cannot pass map_type 17 into func bpf_map_delete_elem#3"),
], ids=["devmap-update", "devmap-delete", "devmap-hash-update", "rdonly-prog-array-update",
        "rdonly-prog-hash-delete", "cpumap-lookup", "xskmap-delete"])
def test_other_helpers_on_these_maps_are_refused_as_by_the_kernel(kernel_oracle, kind, flags,
                                                                  helper, message):
    """record_func_map refuses the helpers that change a BPF_F_RDONLY_PROG map (a
    devmap's flags have it), check_map_func_compatibility the helpers a map type does
    not pair with."""
    call = isa.HELPER_IDS[helper]

    def make(fd):
        return f"""
            *(u64 *)(r10 - 8) = 0
            r1 = map_fd({fd}) ll
            r2 = r10
            r2 += -8
            r3 = r10
            r3 += -8
            r4 = 0
            call {call}
            r0 = 0
            exit"""
    value_size = 4 if kind == XSKMAP else 8
    refused_alike(kernel_oracle, kind, (4, value_size, 2, flags), make, message)


@pytest.mark.parametrize("kind, sizes", [(CGROUP_STORAGE, (8, 8, 0, 0)),
                                         (PERCPU_CGROUP_STORAGE, (8, 8, 0, 0))],
                         ids=["cgroup-storage", "percpu-cgroup-storage"])
def test_a_cgroup_storage_lookup_is_refused_as_by_the_kernel(kernel_oracle, kind, sizes):
    def make(fd):
        return f"""
            *(u64 *)(r10 - 8) = 0
            r1 = map_fd({fd}) ll
            r2 = r10
            r2 += -8
            call 1
            r0 = 0
            exit"""
    refused_alike(kernel_oracle, kind, sizes, make,
                  f"cannot pass map_type {int(kind)} into func bpf_map_lookup_elem#1")


def test_a_write_into_a_devmap_value_is_refused_as_by_the_kernel(kernel_oracle):
    def make(fd):
        return lookup_key(fd) + """
            if r0 == 0 goto out
            *(u32 *)(r0 + 0) = 2
        out:
            r0 = 0
            exit"""
    refused_alike(kernel_oracle, DEVMAP, (4, 4, 2, 0), make, "write into map forbidden")


QUEUE_ID_OR_MINUS_1 = U32_OR_MINUS_1     # struct bpf_xdp_sock's queue_id


def test_a_tc_program_reads_an_xskmap_sockets_queue_id_as_in_the_kernel(kernel_oracle):
    """mark_ptr_or_null_reg makes the lookup's result, once checked, a PTR_TO_XDP_SOCK
    whose u32 queue_id may be read; both load the program, and in a map that holds no
    AF_XDP socket the lookup is NULL."""
    count_comparison()
    mine, kernel = load_verdicts(kernel_oracle, XSKMAP, (4, 4, 2, 0),
                                 lambda fd: lookup_key(fd) + QUEUE_ID_OR_MINUS_1)
    assert (mine, kernel) == (None, None)
    assert same_lookup(kernel_oracle, XSKMAP, (4, 4, 4), [], 0, QUEUE_ID_OR_MINUS_1) == -1


def test_an_xdp_sock_is_a_sock_common_argument_as_in_the_kernel(kernel_oracle):
    """ARG_PTR_TO_SOCK_COMMON's types include PTR_TO_XDP_SOCK (bpf_sk_fullsock)."""
    count_comparison()
    assert load_verdicts(kernel_oracle, XSKMAP, (4, 4, 2, 0), lambda fd: lookup_key(fd) + f"""
        if r0 == 0 goto out
        r1 = r0
        call {isa.HELPER_IDS["sk_fullsock"]}
    out:
        r0 = 0
        exit""") == (None, None)


@pytest.mark.parametrize("body, message", [
    ("r0 = *(u32 *)(r0 + 0)", "R0 invalid mem access 'map_value_or_null'"),
    ("r0 += 4", "R0 pointer arithmetic on map_value_or_null prohibited, null-check it first"),
    ("if r0 == 0 goto out\n r0 = *(u32 *)(r0 + 4)", "R0 invalid xdp_sock access off=4 size=4"),
    ("if r0 == 0 goto out\n r0 = *(u64 *)(r0 + 0)", "R0 invalid xdp_sock access off=0 size=8"),
    ("if r0 == 0 goto out\n r0 = *(u16 *)(r0 + 0)", "R0 invalid xdp_sock access off=0 size=2"),
    ("if r0 == 0 goto out\n *(u32 *)(r0 + 0) = 1", "R0 cannot write into xdp_sock"),
    ("if r0 == 0 goto out\n r1 = 1\n lock *(u32 *)(r0 + 0) += w1",
     "BPF_ATOMIC stores into R0 xdp_sock is not allowed"),
    ("if r0 == 0 goto out\n r0 += 4", "R0 pointer arithmetic on xdp_sock prohibited"),
], ids=["no-null-check", "arithmetic-before-the-check", "past-queue-id", "u64-read",
        "narrow-read", "write", "atomic-add", "arithmetic"])
def test_what_an_xdp_sock_does_not_allow_is_refused_as_by_the_kernel(kernel_oracle, body,
                                                                      message):
    """check_sock_access with bpf_xdp_sock_is_valid_access (only queue_id, a u32), and
    the refusals every socket pointer has (writes, atomics, arithmetic)."""
    refused_alike(kernel_oracle, XSKMAP, (4, 4, 2, 0),
                  lambda fd: lookup_key(fd) + f"\n {body}\n out:\n r0 = 0\n exit", message)


def same_lookup(kernel_oracle, kind, sizes, updates, key, tail, deletes=()):
    """The retval of a tc program looking up ``key`` (then ``tail``) in a map given
    ``updates`` then ``deletes``, pyebpf's and the kernel's, equal (one comparison):
    the kernel's."""
    ours = Map.create(kind, *sizes)
    with kernel_oracle.KernelMap(kind, *sizes) as theirs:
        for k, v in updates:
            ours.update(k, v)
            theirs.update(k, v)
        for k in deletes:
            ours.delete(k)
            theirs.delete(k)
        with kernel_oracle.KernelProgram(asm.assemble(lookup_key(theirs.fd, key) + tail),
                                         "sched_cls") as prog:
            want = prog.test_run(FRAME, ctx={}).retval_signed
    got = pyebpf.Program(asm.assemble(lookup_key(ours.fd, key) + tail), "sched_cls").run(
        FRAME).retval
    count_comparison()
    assert got == want, f"pyebpf {got}, kernel {want}"
    return want


PROG_ID_OR_MINUS_1 = u32_or_minus_1(4)     # struct bpf_devmap_val's bpf_prog.id


@pytest.mark.parametrize("kind, value_size, key, tail, want", [
    (DEVMAP, 4, 0, U32_OR_MINUS_1, 1), (DEVMAP, 4, 1, U32_OR_MINUS_1, -1),
    (DEVMAP, 4, 2, U32_OR_MINUS_1, -1), (DEVMAP, 4, 9, U32_OR_MINUS_1, -1),
    (DEVMAP, 8, 0, PROG_ID_OR_MINUS_1, 0), (DEVMAP_HASH, 8, 0, U32_OR_MINUS_1, 1),
    (DEVMAP_HASH, 8, 1, U32_OR_MINUS_1, -1), (DEVMAP_HASH, 8, 0, PROG_ID_OR_MINUS_1, 0),
], ids=["devmap-slot", "devmap-emptied-slot", "devmap-never-set", "devmap-past-the-end",
        "devmap-prog-id", "devmap-hash-key", "devmap-hash-missing", "devmap-hash-prog-id"])
def test_a_tc_program_looks_up_a_devmap_as_in_the_kernel(kernel_oracle, kind, value_size, key,
                                                         tail, want):
    value = u32(1) if value_size == 4 else pair(1, 0)
    updates = [(u32(0), value), (u32(1), value)]
    if kind == DEVMAP:
        updates.append((u32(1), bytes(value_size)))
    else:
        updates = updates[:1]
    assert same_lookup(kernel_oracle, kind, (4, value_size, 4), updates, key, tail) == want


# --- an object holding them ----------------------------------------------------------

SOURCE = """
struct { __uint(type, BPF_MAP_TYPE_DEVMAP); __type(key, __u32); __type(value, struct bpf_devmap_val);
         __uint(max_entries, 4); } ports SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_DEVMAP_HASH); __type(key, __u32); __type(value, __u32);
         __uint(max_entries, 4); } ports_by_id SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_CPUMAP); __type(key, __u32); __type(value, struct bpf_cpumap_val);
         __uint(max_entries, 2); } cpus SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_XSKMAP); __type(key, __u32); __type(value, __u32);
         __uint(max_entries, 4); } xsks SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_CGROUP_STORAGE); __type(key, struct bpf_cgroup_storage_key);
         __type(value, __u64); } packets SEC(".maps");

SEC("classifier")
int port_of(struct __sk_buff *skb)
{
    __u32 key = skb->mark;
    struct bpf_devmap_val *v = bpf_map_lookup_elem(&ports, &key);
    __u32 *h = bpf_map_lookup_elem(&ports_by_id, &key);
    int r = 0;

    if (v)
        r |= v->ifindex | v->bpf_prog.id << 8;
    else
        r |= 0xff;
    if (h)
        r |= *h << 16;
    return r;
}

SEC("cgroup_skb/egress")
int count(struct __sk_buff *skb)
{
    __u64 *n = bpf_get_local_storage(&packets, 0);

    __sync_fetch_and_add(n, 1);
    return 1;
}
char _license[] SEC("license") = "GPL";
"""


def test_an_object_holding_them_loads_and_its_tc_program_runs_as_in_the_kernel():
    data = compile_object(SOURCE)
    obj, kobj = pyebpf.load(data), pyebpf.kernel.load_object(data)
    with kobj:
        for maps in (obj.maps, kobj.maps):
            maps["ports"].update(u32(1), pair(1, 0))
            maps["ports_by_id"].update(u32(2), u32(1))
        for mark in (0, 1, 2, 5):
            count_comparison()
            ours = obj.program("port_of").run(FRAME, mark=mark).retval
            theirs = kobj.program("port_of").test_run(FRAME, ctx={"mark": mark}).retval_signed
            assert ours == theirs, f"mark {mark}: pyebpf {ours:#x}, kernel {theirs:#x}"
    assert "count" in obj.skipped and "count" in kobj.skipped
    assert obj.maps["ports"].flags == RDONLY_PROG


def _syscall(cmd, **attr):
    """pyebpf.bpf's answer: 0 or the errno."""
    try:
        return pyebpf.bpf(cmd, attr)
    except pyebpf.errors.BpfError as exc:
        return exc.errno


def _kernel(fn, *args):
    got = outcome(fn, *args)
    return 0 if got == "ok" else got


@pytest.mark.parametrize("kind, sizes, key, value", [
    (DEVMAP, (4, 4, 2), u32(0), u32(1)), (DEVMAP, (4, 4, 2), u32(0), u32(NO_DEVICE)),
    (DEVMAP_HASH, (4, 8, 2), u32(5), pair(1, 0)), (CPUMAP, (4, 8, 2), u32(1), pair(8, 0)),
    (PERCPU_CGROUP_STORAGE, (8, 4, 0), u32(0) * 2, None),
], ids=["devmap", "devmap-no-device", "devmap-hash", "cpumap", "percpu-cgroup-storage"])
def test_the_syscall_updates_and_looks_up_as_the_kernel(kernel_oracle, kind, sizes, key, value):
    """pyebpf.bpf's BPF_MAP_UPDATE_ELEM and BPF_MAP_LOOKUP_ELEM (a per-CPU value: one
    8-byte slot per CPU) answer as the kernel's, and read back the same bytes."""
    fd = pyebpf.bpf("BPF_MAP_CREATE", {"map_type": int(kind), "key_size": sizes[0],
                                       "value_size": sizes[1], "max_entries": sizes[2]})
    with kernel_oracle.KernelMap(kind, *sizes) as theirs:
        value = bytes(theirs.value_buffer_size) if value is None else value
        count_comparison()
        assert _syscall("BPF_MAP_UPDATE_ELEM", map_fd=fd, key=key, value=value) == \
            _kernel(theirs.update, key, value)
        out = bytearray(theirs.value_buffer_size)
        mine = _syscall("BPF_MAP_LOOKUP_ELEM", map_fd=fd, key=key, value=out)
        kernel = theirs.lookup(key)
        count_comparison()
        assert (mine, bytes(out) if mine == 0 else None) == \
            ((0, kernel) if kernel is not None else (isa.Errno.ENOENT, None))


@pytest.mark.parametrize("kind, sizes, op", [
    (DEVMAP, (4, 4, 2), "lookup_batch"), (DEVMAP_HASH, (4, 8, 2), "lookup_batch"),
    (DEVMAP_HASH, (4, 8, 2), "delete_batch"), (CPUMAP, (4, 8, 2), "update_batch"),
    (XSKMAP, (4, 4, 2), "lookup_and_delete_batch"), (CGROUP_STORAGE, (8, 4, 0), "lookup_batch"),
], ids=["devmap-lookup", "devmap-hash-lookup", "devmap-hash-delete", "cpumap-update",
        "xskmap-lookup-and-delete", "cgroup-storage-lookup"])
def test_they_have_no_batch_commands(kernel_oracle, kind, sizes, op):
    """None of these maps has batch ops: ENOTSUPP (bpf_map_do_batch)."""
    args = {"delete_batch": ([u32(0)],), "update_batch": ([],)}.get(op, (2,))
    ours = Map.create(kind, *sizes)
    with kernel_oracle.KernelMap(kind, *sizes) as theirs:
        count_comparison()
        assert outcome(getattr(ours, op), *args) == outcome(getattr(theirs, op), *args) \
            == isa.Errno.ENOTSUPP
