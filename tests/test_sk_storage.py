"""Socket local storage (BPF_MAP_TYPE_SK_STORAGE) against the kernel: the maps
BPF_MAP_CREATE makes and refuses, bpf_sk_storage_get and bpf_sk_storage_delete on the
packet's socket (skb->sk, which BPF_PROG_TEST_RUN gives every run), the verifier's
pairing of these maps with their helpers, and the user-space commands; then what only
the model shows: storage of the Environment's sockets, kept across runs and read from
user space by socket cookie."""
from __future__ import annotations

import errno

import pytest

import pyebpf
from pyebpf import Map, asm, isa
from pyebpf.environment import Device, Environment, PacketSocket, Socket
from pyebpf.errors import KernelError, MapError, VerifierError
from pyebpf.pcap import mapfiles

from bpfc import compile_object
from recorded_kernel import count_comparison
from mapcheck import created, load_verdicts, lookup_prog, outcome, run_retvals
from objdiff import same_retval

T = isa.MapType
SK_STORAGE, HASH = T.BPF_MAP_TYPE_SK_STORAGE, T.BPF_MAP_TYPE_HASH
NO_PREALLOC = isa.BPF_F_NO_PREALLOC
SK = isa.SK_BUFF_LAYOUT["sk"][0]
FRAME = bytes(range(64))


@pytest.mark.parametrize("key, value, max_entries, flags", [
    (4, 8, 0, NO_PREALLOC), (4, 8, 0, NO_PREALLOC | isa.BPF_F_CLONE),
    (4, isa.MAX_LOCAL_STORAGE_VALUE_SIZE, 0, NO_PREALLOC),
    (4, isa.MAX_LOCAL_STORAGE_VALUE_SIZE + 1, 0, NO_PREALLOC),
    (4, 8, 0, 0), (4, 8, 1, NO_PREALLOC), (8, 8, 0, NO_PREALLOC), (4, 0, 0, NO_PREALLOC),
    (4, 8, 0, NO_PREALLOC | isa.BPF_F_RDONLY), (4, 8, 0, NO_PREALLOC | isa.BPF_F_NUMA_NODE),
    (4, 8, 0, NO_PREALLOC | isa.BPF_F_RDONLY_PROG)],
    ids=["plain", "clone", "largest-value", "value-too-large", "preallocated",
         "max-entries", "key-8-bytes", "no-value", "rdonly", "numa-node", "rdonly-prog"])
def test_creation_succeeds_and_fails_as_the_kernels(kernel_oracle, key, value, max_entries,
                                                    flags):
    args = (SK_STORAGE, key, value, max_entries, flags)
    count_comparison()
    assert created(Map.create, *args) == created(kernel_oracle.KernelMap, *args)


def test_a_storage_map_shows_the_sizes_it_was_created_with():
    m = Map.create(SK_STORAGE, 4, 16, 0, NO_PREALLOC)
    assert (m.key_size, m.value_size, m.max_entries, len(m), m.keys()) == (4, 16, 0, 0, [])


def test_next_key_is_enotsupp_as_in_the_kernel(kernel_oracle):
    with kernel_oracle.KernelMap(SK_STORAGE, 4, 8, 0, NO_PREALLOC) as theirs:
        want = outcome(theirs.next_key, None)
    count_comparison()
    assert outcome(Map.create(SK_STORAGE, 4, 8, 0, NO_PREALLOC).next_key, None) == want
    assert want == isa.Errno.ENOTSUPP


# --- the helpers on skb->sk -------------------------------------------------------------

def _get(fd, init=None, flags=1):
    """r0 = bpf_sk_storage_get(map, skb->sk, init, flags); skb->sk NULL ends with 99."""
    init_value = "" if init is None else f"r2 = {init}\n*(u64 *)(r10 - 8) = r2"
    value = "r3 = 0" if init is None else "r3 = r10\nr3 += -8"
    return f"""
        r6 = *(u64 *)(r1 + {SK})
        if r6 != 0 goto have
        r0 = 99
        exit
    have:
        {init_value}
        r1 = map_fd({fd}) ll
        r2 = r6
        {value}
        r4 = {flags}
        call 107
"""


def _storage_life(fd):
    # r0 = the new value's first u64 (0) | what a second get without F_CREATE reads
    # (after storing 5) << 4 | the first delete's result << 8 | the second's << 16
    return _get(fd) + f"""
        if r0 == 0 goto none
        r7 = *(u64 *)(r0 + 0)
        r1 = 5
        *(u64 *)(r0 + 0) = r1
        r1 = map_fd({fd}) ll
        r2 = r6
        r3 = 0
        r4 = 0
        call 107
        if r0 == 0 goto none
        r8 = *(u64 *)(r0 + 0)
        r1 = map_fd({fd}) ll
        r2 = r6
        call 108
        r9 = r0
        r1 = map_fd({fd}) ll
        r2 = r6
        call 108
        r0 &= 0xff
        r0 <<= 16
        r9 &= 0xff
        r9 <<= 8
        r0 |= r9
        r8 <<= 4
        r0 |= r8
        r0 |= r7
        exit
    none:
        r0 = 77
        exit"""


def _value_read(fd, init=None, flags=1):
    # the value's first u64 plus 1, or 0 when the helper gave NULL
    return _get(fd, init, flags) + """
        if r0 == 0 goto out
        r0 = *(u64 *)(r0 + 0)
        r0 += 1
    out:
        exit"""


def _same_run(kernel_oracle, make, value_size=8):
    got, want = run_retvals(kernel_oracle, SK_STORAGE, (4, value_size, 0, NO_PREALLOC), make,
                            FRAME)
    count_comparison()
    assert got == want, f"engine {got:#x}, kernel {want:#x}"
    return want


def test_get_creates_a_zeroed_value_that_the_next_get_finds_and_delete_removes(kernel_oracle):
    want = _same_run(kernel_oracle, _storage_life)
    assert want == (-errno.ENOENT & 0xff) << 16 | 0 << 8 | 5 << 4 | 0


def test_get_with_a_value_creates_the_storage_from_it(kernel_oracle):
    want = _same_run(kernel_oracle, lambda fd: _value_read(fd, init=0x1234))
    assert want == 0x1235


@pytest.mark.parametrize("flags", [0, 2, 3], ids=["no-create", "unknown-flag", "create-and-more"])
def test_get_gives_null_without_create_or_with_unknown_flags(kernel_oracle, flags):
    want = _same_run(kernel_oracle, lambda fd: _value_read(fd, flags=flags))
    assert want == 0


def test_a_value_larger_than_a_u64_is_created_whole(kernel_oracle):
    def prog(fd):
        return _get(fd) + """
        if r0 == 0 goto out
        r0 = *(u64 *)(r0 + 56)
        r0 += 3
    out:
        exit"""
    want = _same_run(kernel_oracle, prog, value_size=64)
    assert want == 3


STATS = """
struct stats { __u64 packets; __u64 bytes; };
struct {
    __uint(type, BPF_MAP_TYPE_SK_STORAGE);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, int);
    __type(value, struct stats);
} stats SEC(".maps");

SEC("tc") int count(struct __sk_buff *skb) {
    struct bpf_sock *sk = skb->sk;
    if (!sk)
        return 1;
    struct stats *s = bpf_sk_storage_get(&stats, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
    if (!s)
        return 2;
    s->packets++;
    s->bytes += skb->len;
    return s->packets << 16 | s->bytes;
}
"""


def test_a_libbpf_style_object_counts_on_the_packets_socket():
    want = same_retval(compile_object(STATS), FRAME)
    assert want == 1 << 16 | len(FRAME)


# --- the verifier ------------------------------------------------------------------------

def _verdicts(kernel_oracle, kind, make, prog_type="sched_cls"):
    """(pyebpf's refusal or None, the kernel's), the program made for a map of ``kind``."""
    count_comparison()
    sizes = (4, 8, 0, NO_PREALLOC) if kind == SK_STORAGE else (4, 8, 4, 0)
    return load_verdicts(kernel_oracle, kind, sizes, make, prog_type)


def test_map_lookup_elem_cannot_take_a_storage_map(kernel_oracle):
    mine, kernel = _verdicts(kernel_oracle, SK_STORAGE, lookup_prog)
    want = "cannot pass map_type 24 into func bpf_map_lookup_elem#1"
    assert want in mine and want in kernel


def test_sk_storage_get_cannot_take_a_hash_map(kernel_oracle):
    mine, kernel = _verdicts(kernel_oracle, HASH, lambda fd: _value_read(fd))
    want = "cannot pass map_type 1 into func bpf_sk_storage_get#107"
    assert want in mine and want in kernel


def test_the_socket_argument_must_be_a_socket(kernel_oracle):
    def prog(fd):
        return f"""
        r1 = map_fd({fd}) ll
        r2 = r10
        r2 += -8
        r3 = 0
        r4 = 0
        call 107
        r0 = 0
        exit"""
    mine, kernel = _verdicts(kernel_oracle, SK_STORAGE, prog)
    want = "R2 type=fp expected="
    assert want in mine and want in kernel


def test_the_value_must_be_null_checked(kernel_oracle):
    def prog(fd):
        return _get(fd) + """
        r0 = *(u64 *)(r0 + 0)
        exit"""
    mine, kernel = _verdicts(kernel_oracle, SK_STORAGE, prog)
    want = "R0 invalid mem access 'map_value_or_null'"
    assert want in mine and want in kernel


def test_a_read_past_the_value_is_refused(kernel_oracle):
    def prog(fd):
        return _get(fd) + """
        if r0 == 0 goto out
        r0 = *(u64 *)(r0 + 8)
    out:
        exit"""
    mine, kernel = _verdicts(kernel_oracle, SK_STORAGE, prog)
    assert "invalid access to map value, value_size=8 off=8 size=8" in mine
    want = "R0 min value is outside of the allowed memory range"
    assert want in mine and want in kernel


def test_a_socket_filter_cannot_use_socket_storage(kernel_oracle):
    mine, kernel = _verdicts(kernel_oracle, SK_STORAGE, lambda fd: _value_read(fd),
                             "socket_filter")
    assert mine is not None and kernel is not None
    assert "bpf_sk_storage_get#107" in mine and "bpf_sk_storage_get#107" in kernel


# --- the model: the Environment's sockets, user space -------------------------------------

WORLD = Environment(
    devices=(Device(1, "lo", 65536, up=True, addresses=("127.0.0.1/8",)),),
    socket=PacketSocket(cookie=7),
    sockets=(Socket("tcp", "127.0.0.1:80"), Socket("udp", "127.0.0.1:53", cookie=99)))


def _count_on_listener(fd):
    # look up the listener on 127.0.0.1:80 and count the runs in its storage
    return f"""
        *(u64 *)(r10 - 16) = 0
        *(u32 *)(r10 - 8) = 0
        r2 = 0x0100007f
        *(u32 *)(r10 - 12) = r2
        r2 = 0x5000
        *(u16 *)(r10 - 6) = r2
        r2 = r10
        r2 += -16
        r3 = 12
        r4 = -1
        r5 = 0
        call 84
        if r0 == 0 goto out
        r6 = r0
        r1 = map_fd({fd}) ll
        r2 = r6
        r3 = 0
        r4 = 1
        call 107
        r7 = 0
        if r0 == 0 goto release
        r7 = *(u64 *)(r0 + 0)
        r7 += 1
        *(u64 *)(r0 + 0) = r7
    release:
        r1 = r6
        call 86
        r0 = r7
    out:
        exit"""


def test_a_modelled_sockets_storage_lasts_across_runs_and_is_keyed_by_its_cookie():
    m = Map.create(SK_STORAGE, 4, 8, 0, NO_PREALLOC)
    prog = pyebpf.Program(asm.assemble(_count_on_listener(m.fd)), "sched_cls")
    assert [prog.run(FRAME, env=WORLD).retval for _ in range(3)] == [1, 2, 3]
    cookie = WORLD.socket_cookie(0)
    assert m.keys() == [cookie.to_bytes(8, "little")]
    assert m.lookup(cookie) == (3).to_bytes(8, "little")


def test_the_packet_sockets_storage_is_under_its_cookie():
    m = Map.create(SK_STORAGE, 4, 8, 0, NO_PREALLOC)
    prog = pyebpf.Program(asm.assemble(_value_read(m.fd, init=41)), "sched_cls")
    assert prog.run(FRAME, env=WORLD).retval == 42
    assert m.lookup(WORLD.socket) == (41).to_bytes(8, "little")


def test_without_a_packet_socket_there_is_no_storage():
    m = Map.create(SK_STORAGE, 4, 8, 0, NO_PREALLOC)
    prog = pyebpf.Program(asm.assemble(_value_read(m.fd)), "sched_cls")
    assert prog.run(FRAME, env=Environment(socket=None)).retval == 99
    assert m.keys() == []


def test_user_space_updates_looks_up_and_deletes_by_socket():
    m = Map.create(SK_STORAGE, 4, 8, 0, NO_PREALLOC)
    sock = WORLD.sockets[1]
    m.update(sock, bytes(8))
    with pytest.raises(MapError) as exc:
        m.update(sock, bytes(8), isa.BPF_NOEXIST)
    assert exc.value.errno == errno.EEXIST
    assert m.lookup(99) == bytes(8)
    m.delete(sock)
    assert m.lookup(sock) is None
    with pytest.raises(MapError) as exc:
        m.delete(99)
    assert exc.value.errno == errno.ENOENT


def test_a_socket_without_a_cookie_of_its_own_is_refused_as_a_key():
    m = Map.create(SK_STORAGE, 4, 8, 0, NO_PREALLOC)
    with pytest.raises(ValueError, match="a key is a socket"):
        m.lookup(WORLD.sockets[0])


def test_dump_maps_lists_storage_by_socket_cookie():
    m = Map.create(SK_STORAGE, 4, 8, 0, NO_PREALLOC, name="counts")
    m.update(99, (5).to_bytes(8, "little"))
    dumped = mapfiles.dump(m)
    assert dumped["entries"] == [{"key": 99, "value": "0500000000000000",
                                  "key_hex": "6300000000000000",
                                  "value_hex": "0500000000000000"}]
    assert (dumped["key_size"], dumped["max_entries"]) == (4, 0)


def test_two_sockets_with_one_cookie_are_refused():
    with pytest.raises(pyebpf.environment.EnvironmentSpecError, match="sockets.1..cookie"):
        Environment(sockets=(Socket("tcp", "127.0.0.1:80", cookie=5),
                             Socket("tcp", "127.0.0.1:81", cookie=5)))


def test_pinning_a_storage_map_is_refused_with_a_reason(tmp_path, monkeypatch):
    monkeypatch.setenv("PYEBPF_PIN_ROOT", str(tmp_path / "pins"))
    m = Map.create(SK_STORAGE, 4, 8, 0, NO_PREALLOC)
    with pytest.raises(pyebpf.errors.PinError, match="does not pin BPF_MAP_TYPE_SK_STORAGE"):
        m.pin("storage")
    assert not (tmp_path / "pins" / "storage").exists()
