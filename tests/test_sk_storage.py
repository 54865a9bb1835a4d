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
from pyebpf.errors import MapError
from pyebpf.pcap import mapfiles

import local_storage as storage
from bpfc import compile_object
from recorded_kernel import count_comparison
from mapcheck import created, lookup_prog, refused_alike, same_map_retval
from objdiff import same_retval

T = isa.MapType
SK_STORAGE, HASH = T.BPF_MAP_TYPE_SK_STORAGE, T.BPF_MAP_TYPE_HASH
NO_PREALLOC = isa.BPF_F_NO_PREALLOC
SK = isa.SK_BUFF_LAYOUT["sk"][0]
FRAME = bytes(range(64))


@storage.CREATION
def test_creation_succeeds_and_fails_as_the_kernels(kernel_oracle, key, value, max_entries,
                                                    flags):
    args = (SK_STORAGE, key, value, max_entries, flags)
    count_comparison()
    assert created(Map.create, *args) == created(kernel_oracle.KernelMap, *args)


def test_a_storage_map_shows_the_sizes_it_was_created_with():
    m = Map.create(SK_STORAGE, 4, 16, 0, NO_PREALLOC)
    assert (m.key_size, m.value_size, m.max_entries, len(m), m.keys()) == (4, 16, 0, 0, [])


def test_next_key_is_enotsupp_as_in_the_kernel(kernel_oracle):
    storage.assert_next_key_is_enotsupp(kernel_oracle, SK_STORAGE)


# --- the helpers on skb->sk -------------------------------------------------------------

# r6 = skb->sk; NULL ends the run with 99
OWNER = f"""
        r6 = *(u64 *)(r1 + {SK})
        if r6 != 0 goto have
        r0 = 99
        exit
    have:"""


def _get(fd, init=None, flags=1):
    """r0 = bpf_sk_storage_get(map, skb->sk, init, flags)."""
    return storage.get(OWNER, fd, 107, init, flags)


def _value_read(fd, init=None, flags=1):
    # the value's first u64 plus 1, or 0 when the helper gave NULL
    return storage.read_at(_get(fd, init, flags), 0, 1)


def _same_run(kernel_oracle, make, value_size=8):
    return same_map_retval(kernel_oracle, SK_STORAGE, (4, value_size, 0, NO_PREALLOC), make,
                           FRAME)


def test_get_creates_a_zeroed_value_that_the_next_get_finds_and_delete_removes(kernel_oracle):
    want = _same_run(kernel_oracle, lambda fd: storage.storage_life(OWNER, fd, 107, 108))
    assert want == (-errno.ENOENT & 0xff) << 16 | 0 << 8 | 5 << 4 | 0


def test_get_with_a_value_creates_the_storage_from_it(kernel_oracle):
    want = _same_run(kernel_oracle, lambda fd: _value_read(fd, init=0x1234))
    assert want == 0x1235


@pytest.mark.parametrize("flags", [0, 2, 3], ids=["no-create", "unknown-flag", "create-and-more"])
def test_get_gives_null_without_create_or_with_unknown_flags(kernel_oracle, flags):
    want = _same_run(kernel_oracle, lambda fd: _value_read(fd, flags=flags))
    assert want == 0


def test_a_value_larger_than_a_u64_is_created_whole(kernel_oracle):
    want = _same_run(kernel_oracle, lambda fd: storage.read_at(_get(fd), 56, 3), value_size=64)
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

def _refused(kernel_oracle, kind, make, message, prog_type="sched_cls"):
    """pyebpf's refusal of the program made for a map of ``kind``, which the kernel's
    also is, both saying ``message``."""
    sizes = (4, 8, 0, NO_PREALLOC) if kind == SK_STORAGE else (4, 8, 4, 0)
    return refused_alike(kernel_oracle, kind, sizes, make, message, prog_type)


def test_map_lookup_elem_cannot_take_a_storage_map(kernel_oracle):
    _refused(kernel_oracle, SK_STORAGE, lookup_prog,
             "cannot pass map_type 24 into func bpf_map_lookup_elem#1")


def test_sk_storage_get_cannot_take_a_hash_map(kernel_oracle):
    _refused(kernel_oracle, HASH, lambda fd: _value_read(fd),
             "cannot pass map_type 1 into func bpf_sk_storage_get#107")


def test_the_socket_argument_must_be_a_socket(kernel_oracle):
    _refused(kernel_oracle, SK_STORAGE, lambda fd: storage.non_pointer_owner(fd, 107),
             "R2 type=fp expected=")


def test_the_value_must_be_null_checked(kernel_oracle):
    _refused(kernel_oracle, SK_STORAGE, lambda fd: storage.unchecked_read(_get(fd)),
             "R0 invalid mem access 'map_value_or_null'")


def test_a_read_past_the_value_is_refused(kernel_oracle):
    mine = _refused(kernel_oracle, SK_STORAGE, lambda fd: storage.read_past(_get(fd), 8),
                    "R0 min value is outside of the allowed memory range")
    assert "invalid access to map value, value_size=8 off=8 size=8" in mine


def test_a_socket_filter_cannot_use_socket_storage(kernel_oracle):
    _refused(kernel_oracle, SK_STORAGE, lambda fd: _value_read(fd),
             "bpf_sk_storage_get#107", "socket_filter")


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


def test_a_pinned_storage_map_keeps_each_sockets_value_under_its_cookie(tmp_path,
                                                                        monkeypatch):
    """docs/pinning.md, version 10: a map got from the pin (as another process gets it)
    holds the same sockets' values, and a program counting on them counts on."""
    from pyebpf import pinning
    monkeypatch.setenv("PYEBPF_PIN_ROOT", str(tmp_path / "pins"))
    m = Map.create(SK_STORAGE, 4, 8, 0, NO_PREALLOC)
    pyebpf.Program(asm.assemble(_count_on_listener(m.fd)), "sched_cls").run(FRAME, env=WORLD)
    m.update(WORLD.sockets[1], (7).to_bytes(8, "little"))
    m.pin("storage")
    pinning._live.clear()
    got = Map.from_pin("storage")
    assert (got.key_size, got.max_entries) == (4, 0)
    assert sorted(got.keys()) == sorted(m.keys())
    assert [got.lookup(k) for k in sorted(m.keys())] == [m.lookup(k) for k in sorted(m.keys())]
    prog = pyebpf.Program(asm.assemble(_count_on_listener(got.fd)), "sched_cls")
    assert prog.run(FRAME, env=WORLD).retval == 2


@pytest.mark.parametrize("kind", [T.BPF_MAP_TYPE_TASK_STORAGE, T.BPF_MAP_TYPE_CGRP_STORAGE])
def test_pinning_a_storage_map_keyed_by_kernel_addresses_is_refused(tmp_path, monkeypatch,
                                                                    kind):
    monkeypatch.setenv("PYEBPF_PIN_ROOT", str(tmp_path / "pins"))
    m = Map.create(kind, 4, 8, 0, NO_PREALLOC)
    with pytest.raises(pyebpf.errors.PinError, match=f"does not pin {kind.name}"):
        m.pin("storage")
    assert not (tmp_path / "pins" / "storage").exists()