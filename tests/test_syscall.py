"""pyebpf.bpf() against bpf(2): the same command sequences, the same results and errnos."""
import errno
import os
import socket
import struct
import subprocess
import tempfile

import pytest

from pktprog import counter

import pyebpf
from pyebpf import asm, isa
from pyebpf.errors import BpfError, KernelError

C = isa.BpfCmd
HASH, ARRAY = int(isa.MapType.BPF_MAP_TYPE_HASH), int(isa.MapType.BPF_MAP_TYPE_ARRAY)
PERCPU_ARRAY = int(isa.MapType.BPF_MAP_TYPE_PERCPU_ARRAY)
SCHED_CLS = int(isa.ProgType.BPF_PROG_TYPE_SCHED_CLS)
ZERO_SEED = isa.BPF_F_ZERO_SEED
NO_FD = 0x7FFFFFFF                 # open neither here nor in pyebpf
FD_CMDS = {C.BPF_MAP_CREATE, C.BPF_PROG_LOAD, C.BPF_OBJ_GET}


def k(v):
    return v.to_bytes(4, "little")


def v8(v):
    return v.to_bytes(8, "little")


def fd(n):
    """The fd returned by the n-th fd-returning command of the sequence."""
    return lambda fds: fds[n]


def counter_prog(fds):
    return counter(fds[0])


def _run(bpf, root, steps):
    """Apply ``steps`` with ``bpf``: per step the outcome ("ok", "fd" or an errno name)
    and the bytes written into output buffers."""
    fds, out = [], []
    for cmd, attr in steps:
        attr = {name: (value(fds) if callable(value) else value) for name, value in attr.items()}
        if "pathname" in attr:
            attr["pathname"] = os.path.join(root, attr["pathname"])
        for name in ("value", "next_key"):
            if isinstance(attr.get(name), int):          # an output buffer of that size
                attr[name] = bytearray(attr[name])
        try:
            ret = bpf(cmd, attr)
            outcome = "fd" if cmd in FD_CMDS else ret
            if cmd in FD_CMDS:
                fds.append(ret)
        except (BpfError, KernelError) as exc:
            outcome = errno.errorcode[exc.errno]
        written = {n: bytes(b) for n, b in attr.items() if isinstance(b, bytearray)}
        out.append((cmd.name, outcome, written))
    return out


@pytest.fixture
def roots(live_kernel, tmp_path, monkeypatch):
    """(a bpffs mounted in a temporary directory, a pyebpf pin root)."""
    bpffs = tempfile.mkdtemp(prefix="pyebpf-bpffs-")
    if subprocess.run(["mount", "-t", "bpf", "bpf", bpffs], capture_output=True).returncode:
        os.rmdir(bpffs)
        pytest.skip("cannot mount a bpffs here")
    monkeypatch.setenv("PYEBPF_PIN_ROOT", str(tmp_path))
    try:
        yield bpffs, str(tmp_path)
    finally:
        subprocess.run(["umount", bpffs], check=True)
        os.rmdir(bpffs)


def assert_same(live_kernel, roots, steps):
    theirs = _run(live_kernel.sysbpf.command, roots[0], steps)
    ours = _run(pyebpf.bpf, roots[1], steps)
    assert ours == theirs


HASH_MAP = (C.BPF_MAP_CREATE, dict(map_type=HASH, key_size=4, value_size=8, max_entries=4,
                                   map_flags=ZERO_SEED))
SEQUENCES = {
    "hash-element-lifecycle": [
        HASH_MAP,
        (C.BPF_MAP_UPDATE_ELEM, dict(map_fd=fd(0), key=k(1), value=v8(10), flags=0)),
        (C.BPF_MAP_UPDATE_ELEM, dict(map_fd=fd(0), key=k(1), value=v8(11), flags=1)),
        (C.BPF_MAP_UPDATE_ELEM, dict(map_fd=fd(0), key=k(2), value=v8(20), flags=2)),
        (C.BPF_MAP_UPDATE_ELEM, dict(map_fd=fd(0), key=k(2), value=v8(20), flags=3)),
        (C.BPF_MAP_LOOKUP_ELEM, dict(map_fd=fd(0), key=k(1), value=8)),
        (C.BPF_MAP_LOOKUP_ELEM, dict(map_fd=fd(0), key=k(2), value=8)),
        (C.BPF_MAP_DELETE_ELEM, dict(map_fd=fd(0), key=k(1))),
        (C.BPF_MAP_DELETE_ELEM, dict(map_fd=fd(0), key=k(1))),
    ],
    "hash-full-and-iteration": [HASH_MAP] + [
        (C.BPF_MAP_UPDATE_ELEM, dict(map_fd=fd(0), key=k(i), value=v8(i), flags=0))
        for i in range(5)] + [
        (C.BPF_MAP_GET_NEXT_KEY, dict(map_fd=fd(0), key=key, next_key=4))
        for key in (None, k(0), k(1), k(2), k(3), k(99))],
    "array-rules": [
        (C.BPF_MAP_CREATE, dict(map_type=ARRAY, key_size=8, value_size=8, max_entries=2)),
        (C.BPF_MAP_CREATE, dict(map_type=ARRAY, key_size=4, value_size=8, max_entries=2)),
        (C.BPF_MAP_UPDATE_ELEM, dict(map_fd=fd(0), key=k(1), value=v8(5), flags=1)),
        (C.BPF_MAP_UPDATE_ELEM, dict(map_fd=fd(0), key=k(2), value=v8(5), flags=0)),
        (C.BPF_MAP_UPDATE_ELEM, dict(map_fd=fd(0), key=k(1), value=v8(5), flags=2)),
        (C.BPF_MAP_LOOKUP_ELEM, dict(map_fd=fd(0), key=k(1), value=8)),
        (C.BPF_MAP_LOOKUP_ELEM, dict(map_fd=fd(0), key=k(7), value=8)),
        (C.BPF_MAP_DELETE_ELEM, dict(map_fd=fd(0), key=k(0))),
        (C.BPF_MAP_GET_NEXT_KEY, dict(map_fd=fd(0), key=k(1), next_key=4)),
        (C.BPF_MAP_GET_NEXT_KEY, dict(map_fd=fd(0), key=k(9), next_key=4)),
    ],
    "per-cpu-values": [
        (C.BPF_MAP_CREATE, dict(map_type=PERCPU_ARRAY, key_size=4, value_size=4, max_entries=2)),
        (C.BPF_MAP_UPDATE_ELEM, dict(map_fd=fd(0), key=k(1),
                                     value=b"".join(v8(c + 1) for c in range(os.cpu_count())))),
        (C.BPF_MAP_LOOKUP_ELEM, dict(map_fd=fd(0), key=k(1), value=8 * os.cpu_count())),
    ],
    "bad-fds": [
        (C.BPF_MAP_LOOKUP_ELEM, dict(map_fd=NO_FD, key=k(1), value=8)),
        HASH_MAP,
        (C.BPF_PROG_LOAD, dict(prog_type=SCHED_CLS, insns=counter_prog, license="GPL")),
        (C.BPF_MAP_LOOKUP_ELEM, dict(map_fd=fd(1), key=k(1), value=8)),
        (C.BPF_OBJ_PIN, dict(pathname="x", bpf_fd=NO_FD)),
    ],
    "pin-and-get-share-a-map": [
        HASH_MAP,
        (C.BPF_MAP_UPDATE_ELEM, dict(map_fd=fd(0), key=k(1), value=v8(7))),
        (C.BPF_OBJ_PIN, dict(pathname="m", bpf_fd=fd(0))),
        (C.BPF_OBJ_PIN, dict(pathname="m", bpf_fd=fd(0))),
        (C.BPF_OBJ_PIN, dict(pathname="m2", bpf_fd=fd(0))),
        (C.BPF_OBJ_GET, dict(pathname="m")),
        (C.BPF_MAP_LOOKUP_ELEM, dict(map_fd=fd(1), key=k(1), value=8)),
        (C.BPF_MAP_UPDATE_ELEM, dict(map_fd=fd(1), key=k(2), value=v8(9))),
        (C.BPF_OBJ_GET, dict(pathname="m2")),
        (C.BPF_MAP_LOOKUP_ELEM, dict(map_fd=fd(2), key=k(2), value=8)),
    ],
    "pin-and-get-errors": [
        HASH_MAP,
        (C.BPF_OBJ_PIN, dict(pathname="no/such/dir", bpf_fd=fd(0))),
        (C.BPF_OBJ_GET, dict(pathname="missing")),
        (C.BPF_OBJ_GET, dict(pathname="")),
        (C.BPF_OBJ_PIN, dict(pathname="m", bpf_fd=fd(0), file_flags=1)),
        (C.BPF_OBJ_PIN, dict(pathname="m", bpf_fd=fd(0))),
        (C.BPF_OBJ_GET, dict(pathname="m", file_flags=7)),
        (C.BPF_OBJ_GET, dict(pathname="m", file_flags=1 << 3)),
    ],
    "pinned-program": [
        (C.BPF_MAP_CREATE, dict(map_type=ARRAY, key_size=4, value_size=8, max_entries=1)),
        (C.BPF_OBJ_PIN, dict(pathname="counts", bpf_fd=fd(0))),
        (C.BPF_PROG_LOAD, dict(prog_type=SCHED_CLS, insns=counter_prog, license="GPL")),
        (C.BPF_OBJ_PIN, dict(pathname="prog", bpf_fd=fd(1))),
        (C.BPF_OBJ_PIN, dict(pathname="prog", bpf_fd=fd(1))),
        (C.BPF_OBJ_GET, dict(pathname="prog")),
    ],
    "prog-load-refused": [
        (C.BPF_PROG_LOAD, dict(prog_type=SCHED_CLS, insns=asm.assemble("exit"), license="GPL")),
    ],
}


@pytest.mark.parametrize("steps", SEQUENCES.values(), ids=SEQUENCES.keys())
def test_a_command_sequence_gives_the_kernels_results_and_errnos(live_kernel, roots, steps):
    assert_same(live_kernel, roots, steps)


def test_getting_a_directory_is_refused_with_eacces_like_a_bpffs_directory(live_kernel, roots):
    for root in roots:
        os.mkdir(os.path.join(root, "dir"))
    assert_same(live_kernel, roots, [(C.BPF_OBJ_GET, dict(pathname="dir"))])


def test_getting_a_file_that_is_no_pin_is_refused_with_eacces_like_a_non_bpf_file(
        live_kernel, tmp_path, monkeypatch):
    """The kernel side gets a regular file (bpffs holds none): EACCES, not a BPF inode."""
    monkeypatch.setenv("PYEBPF_PIN_ROOT", str(tmp_path))
    (tmp_path / "foreign").write_bytes(b"#!/bin/sh\n")
    with pytest.raises(KernelError) as theirs:
        live_kernel.sysbpf.command(C.BPF_OBJ_GET, {"pathname": str(tmp_path / "foreign")})
    with pytest.raises(BpfError) as ours:
        pyebpf.bpf("OBJ_GET", {"pathname": "foreign"})
    assert ours.value.errno == theirs.value.errno == errno.EACCES


def test_a_path_outside_the_pin_root_is_refused_with_eperm_like_one_outside_a_bpffs(
        live_kernel, tmp_path, monkeypatch):
    monkeypatch.setenv("PYEBPF_PIN_ROOT", str(tmp_path / "root"))
    outside = str(tmp_path / "outside")
    kfd = live_kernel.sysbpf.command(C.BPF_MAP_CREATE, HASH_MAP[1])
    try:
        with pytest.raises(KernelError) as theirs:
            live_kernel.sysbpf.command(C.BPF_OBJ_PIN, {"pathname": outside, "bpf_fd": kfd})
    finally:
        os.close(kfd)
    ours_fd = pyebpf.bpf(C.BPF_MAP_CREATE, HASH_MAP[1])
    with pytest.raises(BpfError) as ours:
        pyebpf.bpf(C.BPF_OBJ_PIN, {"pathname": outside, "bpf_fd": ours_fd})
    assert ours.value.errno == theirs.value.errno == errno.EPERM


def test_commands_are_named_or_numbered_and_unknown_fields_are_einval():
    fd_ = pyebpf.bpf("map_create", HASH_MAP[1])
    assert pyebpf.bpf(C.BPF_MAP_UPDATE_ELEM, {"map_fd": fd_, "key": k(1), "value": v8(1)}) == 0
    with pytest.raises(BpfError, match="pathname are not this command's") as exc:
        pyebpf.bpf("BPF_MAP_DELETE_ELEM", {"map_fd": fd_, "key": k(1), "pathname": "x"})
    assert exc.value.errno == errno.EINVAL


# --- socket maps: updated by a socket's fd, pinned ----------------------------------------

SOCKMAP = int(isa.MapType.BPF_MAP_TYPE_SOCKMAP)
SOCKHASH = int(isa.MapType.BPF_MAP_TYPE_SOCKHASH)


@pytest.fixture
def sockets():
    """Sockets of this process, by kind: what a socket map takes and what it refuses."""
    made = {}
    listener = made["tcp-listening"] = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    made["tcp-established"] = socket.create_connection(listener.getsockname())
    made["tcp-accepted"], _ = listener.accept()
    made["tcp-unconnected"] = socket.socket()
    made["tcp6-listening"] = socket.socket(socket.AF_INET6)
    made["tcp6-listening"].bind(("::1", 0))
    made["tcp6-listening"].listen()
    made["udp-bound"] = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    made["udp-bound"].bind(("127.0.0.1", 0))
    made["udp-unbound"] = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    made["raw"] = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    fds = {name: sk.fileno() for name, sk in made.items()}
    fds["file"] = os.open(os.devnull, os.O_RDONLY)
    try:
        yield fds
    finally:
        os.close(fds["file"])
        for sk in made.values():
            sk.close()


def _sock_map(kind=SOCKMAP, value_size=8):
    return (C.BPF_MAP_CREATE, dict(map_type=kind, key_size=4, value_size=value_size,
                                   max_entries=2))


@pytest.mark.parametrize("kind", [SOCKMAP, SOCKHASH], ids=["sockmap", "sockhash"])
@pytest.mark.parametrize("name", ["tcp-listening", "tcp-established", "tcp-accepted",
                                  "tcp-unconnected", "tcp6-listening", "udp-bound",
                                  "udp-unbound", "raw", "file"])
def test_an_update_by_socket_fd_takes_the_sockets_the_kernel_takes(live_kernel, roots, sockets,
                                                                    kind, name):
    """What a lookup gives back afterwards is the socket's cookie, in both."""
    assert_same(live_kernel, roots, [
        _sock_map(kind),
        (C.BPF_MAP_UPDATE_ELEM, dict(map_fd=fd(0), key=k(0), value=v8(sockets[name]))),
        (C.BPF_MAP_LOOKUP_ELEM, dict(map_fd=fd(0), key=k(0), value=8)),
    ])


def test_an_update_by_socket_fd_checks_the_fd_and_flags_as_the_kernel(live_kernel, roots,
                                                                     sockets):
    listening = sockets["tcp-listening"]
    assert_same(live_kernel, roots, [
        _sock_map(value_size=4),
        (C.BPF_MAP_UPDATE_ELEM, dict(map_fd=fd(0), key=k(0), value=k(listening))),
        (C.BPF_MAP_UPDATE_ELEM, dict(map_fd=fd(0), key=k(0), value=k(listening), flags=1)),
        (C.BPF_MAP_UPDATE_ELEM, dict(map_fd=fd(0), key=k(1), value=k(listening), flags=2)),
        (C.BPF_MAP_UPDATE_ELEM, dict(map_fd=fd(0), key=k(2), value=k(listening))),
        (C.BPF_MAP_UPDATE_ELEM, dict(map_fd=fd(0), key=k(1), value=k(NO_FD))),
        (C.BPF_MAP_LOOKUP_ELEM, dict(map_fd=fd(0), key=k(0), value=8)),
        _sock_map(),
        (C.BPF_MAP_UPDATE_ELEM, dict(map_fd=fd(1), key=k(0), value=v8(1 << 31))),
        (C.BPF_MAP_UPDATE_ELEM, dict(map_fd=fd(1), key=k(0), value=v8(listening | 1 << 32))),
    ])


@pytest.mark.parametrize("kind", [SOCKMAP, SOCKHASH], ids=["sockmap", "sockhash"])
def test_a_pinned_socket_map_keeps_its_sockets(live_kernel, roots, sockets, kind):
    assert_same(live_kernel, roots, [
        _sock_map(kind),
        (C.BPF_MAP_UPDATE_ELEM, dict(map_fd=fd(0), key=k(1), value=v8(sockets["udp-bound"]))),
        (C.BPF_OBJ_PIN, dict(pathname="socks", bpf_fd=fd(0))),
        (C.BPF_OBJ_GET, dict(pathname="socks")),
        (C.BPF_MAP_LOOKUP_ELEM, dict(map_fd=fd(1), key=k(1), value=8)),
        (C.BPF_MAP_GET_NEXT_KEY, dict(map_fd=fd(1), key=None, next_key=4)),
        (C.BPF_MAP_DELETE_ELEM, dict(map_fd=fd(1), key=k(1))),
        (C.BPF_MAP_LOOKUP_ELEM, dict(map_fd=fd(0), key=k(1), value=8)),
    ])


def _btf_with_one_int(name: bytes) -> bytes:
    """A BTF blob of one 4-byte INT type (id 1) called ``name``."""
    strings = b"\0" + name + b"\0"
    types = struct.pack("<IIII", 1, 1 << 24, 4, 32)     # name_off, BTF_KIND_INT, size, bits
    header = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types),
                         len(strings))
    return header + types + strings


def _btf_fds_open() -> int:
    count = 0
    for entry in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{entry}") == "anon_inode:btf"
        except OSError:
            pass
    return count


def test_the_oracle_keeps_only_its_last_btf_blobs_loaded(live_kernel):
    # a test session loads thousands of objects: keeping each one's BTF fd open ran the
    # process past 1,024 fds, where select() refuses them
    calls = live_kernel.sysbpf.Syscalls()
    before = _btf_fds_open()
    for n in range(calls.BTF_FDS_KEPT + 8):
        blob = _btf_with_one_int(f"t{n}".encode())
        map_fd, err = calls.map_create(ARRAY, 4, 4, 1, 0, 0, b"btf_kept",
                                       btf=(blob, 1, 1))
        assert (map_fd >= 0, err) == (True, 0)
        os.close(map_fd)
    assert _btf_fds_open() - before == calls.BTF_FDS_KEPT
