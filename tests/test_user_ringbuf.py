"""USER_RINGBUF maps and ``bpf_user_ringbuf_drain``, against the kernel: user space
produces samples (pyebpf's ``Map.reserve``/``submit``/``discard``; in the kernel's map,
written through its mmap()ed producer pages as libbpf's user_ring_buffer does), a tc
program drains them with a callback that reads each sample through its dynptr; compared
are the drain's return value, what the callback saw (kept in an array map) and the
consumer position; the verifier's message for the programs it refuses; creation rules.
"""
import mmap
import struct

import pytest

import pyebpf
from bpfc import compile_object
from objdiff import refused_alike
from pyebpf import Map, isa
from pyebpf.errors import MapError
from mapcheck import created
from recorded_kernel import count_comparison
from skbdiff import engine_fields

from test_dynptr import DECLS, PACKET

RING = 4096
USER_RINGBUF = isa.MapType.BPF_MAP_TYPE_USER_RINGBUF
BUSY, DISCARD = 1 << 31, 1 << 30

SOURCE = DECLS + r"""
struct { __uint(type, BPF_MAP_TYPE_USER_RINGBUF); __uint(max_entries, %d); } urb SEC(".maps");
struct acc { __u64 calls, sizes, reads, last, past, data; };
__u64 stop_after = %d;      /* in .data: a value the verifier does not know */
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, __u32);
         __type(value, struct acc); } out SEC(".maps");

/* each sample starts with its size (when it has four bytes): the callback reads it, the
 * last four bytes, one byte past the end, and its first byte through its memory */
static long seen(struct bpf_dynptr *d, void *ctx)
{
    struct acc *a = ctx;
    __u32 size = 0, w = 0;
    __u8 *p = bpf_dynptr_data(d, 0, 4);
    a->calls++;
    a->reads += bpf_dynptr_read(&size, 4, d, 0, 0);
    a->sizes += size;
    a->last ^= bpf_dynptr_read(&w, 4, d, size - 4, 0) ? 0xffff : w;
    a->past += bpf_dynptr_read(&w, 1, d, size, 0);
    if (p)
        a->data += p[0];
    return stop_after && a->calls >= stop_after;
}

SEC("tc") int prog(struct __sk_buff *skb)
{
    __u32 k = 0;
    struct acc a = {};
    struct acc *o = bpf_map_lookup_elem(&out, &k);
    long n = bpf_user_ringbuf_drain(&urb, seen, &a, %d);
    if (!o)
        return 1;
    *o = a;
    return n;
}
"""


def obj(stop_after: int = 0, flags: int = 0) -> bytes:
    return compile_object(SOURCE % (RING, stop_after, flags), flags=("-O2", "-mcpu=v3"))


# --- the producer side of the kernel's map, as libbpf's user_ring_buffer ------------

def _kernel_produce(fd: int, samples) -> None:
    """user_ring_buffer__reserve and __submit/__discard of each (bytes, discard) sample,
    through the consumer page (read-only) and the producer page and data pages
    (writable, the data mapped twice) of the map."""
    page = mmap.PAGESIZE
    with mmap.mmap(fd, page, mmap.MAP_SHARED, mmap.PROT_READ) as cons, \
            mmap.mmap(fd, page + 2 * RING, mmap.MAP_SHARED,
                      mmap.PROT_READ | mmap.PROT_WRITE, offset=page) as prod:
        for data, discard in samples:
            pos, = struct.unpack_from("<Q", prod, 0)
            total = (len(data) + 8 + 7) // 8 * 8
            assert RING - (pos - struct.unpack_from("<Q", cons, 0)[0]) >= total
            at = page + pos % RING
            struct.pack_into("<II", prod, at, len(data) | BUSY, 0)
            struct.pack_into("<Q", prod, 0, pos + total)
            prod[at + 8:at + 8 + len(data)] = data
            struct.pack_into("<I", prod, at, len(data) | (DISCARD if discard else 0))


def _kernel_consumer_pos(fd: int) -> int:
    with mmap.mmap(fd, mmap.PAGESIZE, mmap.MAP_SHARED, mmap.PROT_READ) as cons:
        return struct.unpack_from("<Q", cons, 0)[0]


def _kernel_rounds(data: bytes, rounds) -> list:
    out = []
    with pyebpf.kernel.load_object(data) as kobj:
        (prog,) = kobj.programs.values()
        fd = kobj.maps["urb"].fd
        for samples in rounds:
            _kernel_produce(fd, samples)
            retval = prog.test_run(PACKET).retval
            out.append({"retval": retval, "out": kobj.maps["out"].lookup(bytes(4)).hex(),
                        "consumer_pos": _kernel_consumer_pos(fd)})
    return out


def _our_rounds(data: bytes, rounds) -> list:
    out = []
    o = pyebpf.load(data)
    try:
        (name,) = o.programs
        prog = o.program(name)
        ring = o.maps["urb"]
        for samples in rounds:
            for sample, discard in samples:
                pos = ring.reserve(len(sample))
                if discard:
                    ring.discard(pos)
                else:
                    ring.submit(pos, sample)
            retval = prog.run(PACKET, **engine_fields(prog.prog_type, None)).retval
            out.append({"retval": retval & 0xFFFFFFFF, "out": o.maps["out"][bytes(4)].hex(),
                        "consumer_pos": ring.consumer_pos})
    finally:
        o.close()
    return out


def same_drains(kernel_observation, data: bytes, rounds) -> list:
    """Produce each round's samples, then run the program, in both; the same results
    after every round."""
    key = data.hex() + repr(rounds)
    theirs = kernel_observation("user ring buffer samples written by mmap, drained",
                                key, lambda: _kernel_rounds(data, rounds))
    ours = _our_rounds(data, rounds)
    count_comparison()
    assert ours == theirs
    return theirs


def s(n: int, seed: int = 1, discard: bool = False):
    """A sample of ``n`` bytes: its size (u32, as far as it fits), then a pattern."""
    data = struct.pack("<I", n)[:n] + bytes((seed + i) & 0xFF for i in range(4, n))
    return data, discard


@pytest.mark.parametrize("rounds", [
    [[s(4), s(9, 7), s(1, 3), s(2)]],
    [[s(4), s(12, 5, discard=True), s(16, 9)]],
    [[]],
    [[s(0), s(8)]],
    # a sample that wraps past the ring's end, after the first ones are consumed
    [[s(3000)], [s(2000, 11)], [s(600, 2), s(600, 3)]],
], ids=["three", "one-discarded", "empty", "empty-sample", "wrapping"])
def test_drain_hands_each_sample_to_the_callback_as_the_kernel(kernel_observation, rounds):
    same_drains(kernel_observation, obj(), rounds)


def test_a_callback_returning_1_stops_the_drain_after_that_sample(kernel_observation):
    same_drains(kernel_observation, obj(stop_after=2), [[s(4), s(5), s(6)], []])


@pytest.mark.parametrize("flags", [1, 2, 4], ids=["no-wakeup", "force-wakeup", "unknown"])
def test_drain_flags_are_the_kernels(kernel_observation, flags):
    same_drains(kernel_observation, obj(flags=flags), [[s(4)]])


def test_a_sample_still_reserved_stops_the_drain():
    """Not differential (the kernel's side needs a reserved but unsubmitted sample,
    which the test's producer does not leave): the drain stops at a busy header and
    goes on once it is submitted."""
    o = pyebpf.load(obj())
    ring = o.maps["urb"]
    prog = o.program("prog")
    held = ring.reserve(4)
    ring.push(b"next")
    assert prog.run(PACKET).retval == 0
    ring.submit(held, b"abcd")
    assert prog.run(PACKET).retval == 2 and ring.consumer_pos == 32


def test_the_producer_refuses_what_libbpf_refuses():
    ring = Map.create(USER_RINGBUF, 0, 0, RING)
    with pytest.raises(MapError) as big:
        ring.reserve(RING - 7)
    ring.reserve(RING - 8 - 8)
    with pytest.raises(MapError) as full:
        ring.reserve(1)
    assert (big.value.errno, full.value.errno) == (isa.Errno.E2BIG, isa.Errno.ENOSPC)


@pytest.mark.parametrize("args", [(USER_RINGBUF, 0, 0, 12288, 0), (USER_RINGBUF, 0, 0, 2048, 0),
                                  (USER_RINGBUF, 4, 0, 4096, 0),
                                  (USER_RINGBUF, 0, 0, 4096, isa.BPF_F_NO_PREALLOC)],
                         ids=["not-pow2", "below-page", "key", "flags"])
def test_creation_is_refused_with_the_kernels_errno(kernel_oracle, args):
    theirs = created(kernel_oracle.KernelMap, *args)
    assert theirs != "ok" and created(Map.create, *args) == theirs


def test_creation_is_accepted_like_the_kernel(kernel_oracle):
    kernel_oracle.KernelMap(USER_RINGBUF, 0, 0, 8192, 0).close()
    assert Map.create(USER_RINGBUF, 0, 0, 8192).max_entries == 8192


# --- programs the verifier refuses ---------------------------------------------------

REFUSED = DECLS + r"""
struct { __uint(type, BPF_MAP_TYPE_USER_RINGBUF); __uint(max_entries, 4096); } urb SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 4096); } rb SEC(".maps");
static long cb(struct bpf_dynptr *d, void *ctx) { %s }
SEC("tc") int prog(struct __sk_buff *skb) { long x = 0; %s }
"""


@pytest.mark.parametrize("callback, body, message", [
    ("return 2;", "return bpf_user_ringbuf_drain(&urb, cb, &x, 0);",
     "At callback return the register R0 has smin=2 smax=2 should have been in [0, 1]"),
    ("return 0;", "return bpf_user_ringbuf_drain(&rb, cb, &x, 0);",
     "cannot pass map_type 27 into func bpf_user_ringbuf_drain#209"),
    ("return 0;", "__u32 k = 0; return bpf_map_lookup_elem(&urb, &k) != 0;",
     "invalid zero-sized read"),
    ("bpf_ringbuf_submit_dynptr(d, 0); return 0;",
     "return bpf_user_ringbuf_drain(&urb, cb, &x, 0);",
     "cannot release unowned const bpf_dynptr"),
    ("return *(long *)d;", "return bpf_user_ringbuf_drain(&urb, cb, &x, 0);",
     "invalid mem access 'dynptr_ptr'"),
    ("__u8 *p = bpf_dynptr_data(d, 0, 4); return p ? p[4] & 1 : 0;",
     "return bpf_user_ringbuf_drain(&urb, cb, &x, 0);",
     "R1 min value is outside of the allowed memory range"),
])
def test_a_drain_misuse_is_refused_as_the_kernel_refuses_it(callback, body, message):
    refused_alike(compile_object(REFUSED % (callback, body), flags=("-O2", "-mcpu=v3")),
                  message)
