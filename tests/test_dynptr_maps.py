"""Local dynptrs over map values (``bpf_dynptr_from_mem``) and ring buffer dynptrs
(``bpf_ringbuf_reserve_dynptr``, ``_submit_dynptr``, ``_discard_dynptr``), with the
dynptr helpers and kfuncs on them, in the shapes the kernel's selftests use, against the
kernel: retval and the map value after a BPF_PROG_TEST_RUN, the records the ring holds
afterwards (read from the kernel's ring by mmap()ing it, as libbpf's consumer does), and
the verifier's message for the programs it refuses.
"""
import mmap
import struct

import pytest

import pyebpf
from bpfc import compile_object
from objdiff import refused_alike
from recorded_kernel import count_comparison
from skbdiff import engine_fields

from test_dynptr import DECLS, PACKET

RING = 4096
MAPS = r"""
struct val { __u8 b[64]; };
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, __u32);
         __type(value, struct val); } vals SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, %d); } rb SEC(".maps");
""" % RING

LOCAL = DECLS + MAPS + r"""
SEC("tc") int prog(struct __sk_buff *skb) {
    __u32 k = 0; struct val *v = bpf_map_lookup_elem(&vals, &k); struct bpf_dynptr d;
    if (!v) return 1;
    %s
}"""

RINGBUF = DECLS + MAPS + r"""
SEC("tc") int prog(struct __sk_buff *skb) { struct bpf_dynptr d; %s }"""


def obj(source: str) -> bytes:
    return compile_object(source, flags=("-O2", "-mcpu=v3"))


def _ours(data: bytes):
    """pyebpf's run of the object: (retval, the map value, the ring's records, its
    producer position)."""
    o = pyebpf.load(data)
    try:
        (name,) = o.programs
        prog = o.program(name)
        retval = prog.run(PACKET, **engine_fields(prog.prog_type, None)).retval & 0xFFFFFFFF
        ring = o.maps["rb"]
        return retval, o.maps["vals"][bytes(4)], [r.hex() for r in ring.drain()], \
            ring.producer_pos
    finally:
        o.close()


def _ring_records(fd: int) -> tuple[list, int]:
    """The submitted records of a kernel ring buffer from its consumer position on, and
    its producer position: the consumer page read-only, the producer page and the data
    (mapped twice, so a record is contiguous) after it, as libbpf's ring_buffer maps
    them."""
    page = mmap.PAGESIZE
    with mmap.mmap(fd, page, mmap.MAP_SHARED, mmap.PROT_READ) as cons, \
            mmap.mmap(fd, page + 2 * RING, mmap.MAP_SHARED, mmap.PROT_READ,
                      offset=page) as prod:
        pos, = struct.unpack_from("<Q", cons, 0)
        end, = struct.unpack_from("<Q", prod, 0)
        records = []
        while pos < end:
            hdr, = struct.unpack_from("<I", prod, page + pos % RING)
            size = hdr & ~(3 << 30)
            if not hdr & (3 << 30):             # neither BUSY nor DISCARD
                at = page + (pos + 8) % RING
                records.append(prod[at:at + size].hex())
            pos += (size + 8 + 7) & ~7
        return records, end


def _kernel_run(data: bytes) -> dict:
    with pyebpf.kernel.load_object(data) as kobj:
        (prog,) = kobj.programs.values()
        retval = prog.test_run(PACKET).retval
        records, end = _ring_records(kobj.maps["rb"].fd)
        return {"retval": retval, "value": kobj.maps["vals"].lookup(bytes(4)).hex(),
                "records": records, "producer_pos": end}


@pytest.fixture
def same_run(kernel_observation):
    """Run the object in both; require the same retval, map value, ring records and
    producer position; return the kernel's."""
    def run(data: bytes) -> dict:
        theirs = kernel_observation("a run with a ring buffer read by mmap",
                                    data.hex(), lambda: _kernel_run(data))
        retval, value, records, end = _ours(data)
        count_comparison()
        assert retval == theirs["retval"], (retval, theirs["retval"])
        assert value.hex() == theirs["value"]
        assert records == theirs["records"]
        assert end == theirs["producer_pos"]
        return theirs
    return run


# --- local dynptrs over a map value --------------------------------------------------

@pytest.mark.parametrize("body", [
    # write, then read back through the map value
    "char x[4] = {1, 2, 3, 4}; long r = bpf_dynptr_from_mem(v, sizeof(*v), 0, &d);"
    "long w = bpf_dynptr_write(&d, 60, x, 4, 0); return r | w << 8 | v->b[63] << 16;",
    # bpf_dynptr_write: -E2BIG past the end, -EINVAL for flags (a local dynptr has none)
    "char x[4] = {1, 2, 3, 4}; bpf_dynptr_from_mem(v, sizeof(*v), 0, &d);"
    "long a = bpf_dynptr_write(&d, 62, x, 4, 0); long b = bpf_dynptr_write(&d, 0, x, 4, 1);"
    "return (a == -7) | (b == -22) << 1 | v->b[0] << 8;",
    # read: -E2BIG past the end, -EINVAL for flags
    "char buf[8] = {}; v->b[5] = 9; bpf_dynptr_from_mem(v, sizeof(*v), 0, &d);"
    "long r = bpf_dynptr_read(buf, 8, &d, 0, 0); long e = bpf_dynptr_read(buf, 8, &d, 60, 0);"
    "long f = bpf_dynptr_read(buf, 8, &d, 0, 2);"
    "return (r == 0) | (e == -7) << 1 | (f == -22) << 2 | buf[5] << 8;",
    # flags other than 0 are refused and leave a NULL dynptr
    "char buf[1]; long r = bpf_dynptr_from_mem(v, 8, 1, &d);"
    "return (r == -22) | bpf_dynptr_is_null(&d) << 1 | (bpf_dynptr_size(&d) == -22) << 2 |"
    "(bpf_dynptr_read(buf, 1, &d, 0, 0) == -22) << 3 | (bpf_dynptr_data(&d, 0, 1) == 0) << 4;",
    # bpf_dynptr_data: the map value's bytes; NULL past the end
    "bpf_dynptr_from_mem(v, sizeof(*v), 0, &d); __u8 *p = bpf_dynptr_data(&d, 8, 4);"
    "if (!p) return 99; p[0] = 7; p[3] = 8; return (bpf_dynptr_data(&d, 62, 4) == 0) |"
    "v->b[8] << 8 | v->b[11] << 16;",
    # a dynptr over part of the value; size, is_rdonly; an empty one
    "struct bpf_dynptr e; char x[1] = {5};"
    "long r = bpf_dynptr_from_mem((char *)v + 16, 16, 0, &d);"
    "long s = bpf_dynptr_from_mem(v, 0, 0, &e); bpf_dynptr_write(&d, 15, x, 1, 0);"
    "return r | s << 4 | bpf_dynptr_size(&d) << 8 | bpf_dynptr_is_rdonly(&d) << 16 |"
    "bpf_dynptr_size(&e) << 17 | (bpf_dynptr_write(&e, 0, x, 1, 0) == -7) << 20 |"
    "v->b[31] << 24;",
    # two dynptrs over overlapping bytes (memmove)
    "struct bpf_dynptr e; for (int i = 0; i < 16; i++) v->b[i] = i;"
    "bpf_dynptr_from_mem(v, 16, 0, &d); bpf_dynptr_from_mem((char *)v + 4, 12, 0, &e);"
    "__u8 *p = bpf_dynptr_data(&e, 0, 8); if (!p) return 99;"
    "bpf_dynptr_write(&d, 0, p, 8, 0); return v->b[0] | v->b[7] << 8 | v->b[8] << 16;",
    # the kfuncs: adjust, slices, clone
    "struct bpf_dynptr c; bpf_dynptr_from_mem(v, sizeof(*v), 0, &d);"
    "long a = bpf_dynptr_adjust(&d, 8, 24); __u8 *p = bpf_dynptr_slice_rdwr(&d, 4, NULL, 4);"
    "if (!p) return 99; p[0] = 5; bpf_dynptr_clone(&d, &c); bpf_dynptr_adjust(&c, 2, 6);"
    "const __u8 *q = bpf_dynptr_slice(&c, 2, NULL, 1);"
    "return a | bpf_dynptr_size(&d) << 4 | bpf_dynptr_size(&c) << 12 |"
    "(q ? *q : 0xff) << 16 | (bpf_dynptr_slice(&d, 14, NULL, 4) == 0) << 24;",
])
def test_a_local_dynptr_over_a_map_value_is_the_kernels(same_run, body):
    same_run(obj(LOCAL % body))


@pytest.mark.parametrize("body, message", [
    ("int x = 0; bpf_dynptr_from_mem(&x, sizeof(x), 0, &d); return 0;",
     "Unsupported reg type fp for bpf_dynptr_from_mem data"),
    ("bpf_dynptr_from_mem(v, 65, 0, &d); return 0;",
     "R1 min value is outside of the allowed memory range"),
    ("bpf_dynptr_from_mem(v, 8, 0, &d); __u8 *p = bpf_dynptr_data(&d, 0, 4); return p[0];",
     "invalid mem access 'mem_or_null'"),
    ("bpf_dynptr_from_mem(v, 8, 0, &d); __u8 *p = bpf_dynptr_data(&d, 0, 4);"
     "return p ? p[4] : 0;",
     "R0 min value is outside of the allowed memory range"),
    ("struct bpf_dynptr e; bpf_dynptr_from_mem(v, 8, 0, &d);"
     "__u8 *p = bpf_dynptr_data(&d, 0, 4); if (!p) return 0;"
     "bpf_dynptr_from_mem(p, 4, 0, &e); return 0;",
     "for bpf_dynptr_from_mem data"),
    ("bpf_dynptr_from_mem(v, 8, 0, &d); bpf_ringbuf_submit_dynptr(&d, 0); return 0;",
     "arg 1 is an unacquired reference"),
    ("bpf_dynptr_from_mem(v, 8, 0, &d); const __u8 *p = bpf_dynptr_slice(&d, 0, NULL, 2);"
     "if (!p) return 0; *(__u8 *)p = 3; return 0;",
     "cannot write into rdonly_mem"),
])
def test_a_local_dynptr_misuse_is_refused_as_the_kernel_refuses_it(body, message):
    refused_alike(obj(LOCAL % body), message)


# --- ring buffer dynptrs -------------------------------------------------------------

@pytest.mark.parametrize("body", [
    # reserve, write, submit: one record
    "char x[6] = {1, 2, 3, 4, 5, 6}; long r = bpf_ringbuf_reserve_dynptr(&rb, 12, 0, &d);"
    "long w = bpf_dynptr_write(&d, 2, x, 6, 0); bpf_ringbuf_submit_dynptr(&d, 0);"
    "return r | w << 8;",
    # its memory through bpf_dynptr_data; the wakeup flags
    "long r = bpf_ringbuf_reserve_dynptr(&rb, 8, 0, &d); __u32 *p = bpf_dynptr_data(&d, 4, 4);"
    "if (p) *p = 0xabcdef; bpf_ringbuf_submit_dynptr(&d, BPF_RB_FORCE_WAKEUP);"
    "return r | (p != 0) << 4;",
    # a discarded record is skipped by the consumer
    "struct bpf_dynptr e; char x = 7; bpf_ringbuf_reserve_dynptr(&rb, 3, 0, &d);"
    "bpf_ringbuf_reserve_dynptr(&rb, 5, 0, &e); bpf_dynptr_write(&e, 4, &x, 1, 0);"
    "bpf_ringbuf_discard_dynptr(&d, BPF_RB_NO_WAKEUP); bpf_ringbuf_submit_dynptr(&e, 0);"
    "return bpf_ringbuf_query(&rb, BPF_RB_PROD_POS);",
    # flags other than 0: -EINVAL and a NULL dynptr, released all the same
    "long r = bpf_ringbuf_reserve_dynptr(&rb, 8, 1, &d); long n = bpf_dynptr_is_null(&d);"
    "bpf_ringbuf_discard_dynptr(&d, 0); return (r == -22) | n << 1;",
    # too big for a dynptr: -E2BIG; too big for the ring: -EINVAL; the largest that fits
    "struct bpf_dynptr e, f; long a = bpf_ringbuf_reserve_dynptr(&rb, 1 << 24, 0, &d);"
    "long b = bpf_ringbuf_reserve_dynptr(&rb, 4081, 0, &e);"
    "bpf_ringbuf_discard_dynptr(&d, 0); bpf_ringbuf_discard_dynptr(&e, 0);"
    "long c = bpf_ringbuf_reserve_dynptr(&rb, 4080, 0, &f); long s = bpf_dynptr_size(&f);"
    "bpf_ringbuf_submit_dynptr(&f, 0); return (a == -7) | (b == -22) << 1 | c << 2 | s << 8;",
    # no room left: -EINVAL (bpf_ringbuf_output says -EAGAIN)
    "struct bpf_dynptr e; bpf_ringbuf_reserve_dynptr(&rb, 3000, 0, &d);"
    "long r = bpf_ringbuf_reserve_dynptr(&rb, 2000, 0, &e); bpf_ringbuf_submit_dynptr(&e, 0);"
    "bpf_ringbuf_submit_dynptr(&d, 0); return r;",
    # the kfuncs on it; a read; the record's size after adjust is the reserved size
    "struct bpf_dynptr c; char buf[4] = {}; bpf_ringbuf_reserve_dynptr(&rb, 16, 0, &d);"
    "bpf_dynptr_clone(&d, &c); bpf_dynptr_adjust(&c, 8, 16);"
    "__u8 *p = bpf_dynptr_slice_rdwr(&c, 0, NULL, 4); if (p) p[1] = 0x55;"
    "long r = bpf_dynptr_read(buf, 4, &d, 8, 0); long s = bpf_dynptr_size(&c);"
    "bpf_ringbuf_submit_dynptr(&d, 0); return r | s << 4 | buf[1] << 8;",
])
def test_a_ring_buffer_dynptr_is_the_kernels(same_run, body):
    same_run(obj(RINGBUF % body))


@pytest.mark.parametrize("body, message", [
    ("bpf_ringbuf_reserve_dynptr(&rb, 8, 0, &d); return 0;",
     "BPF_EXIT instruction in main prog would lead to reference leak"),
    # released even when the reserve failed
    ("if (bpf_ringbuf_reserve_dynptr(&rb, 8, 0, &d)) return 0;"
     "bpf_ringbuf_submit_dynptr(&d, 0); return 0;",
     "BPF_EXIT instruction in main prog would lead to reference leak"),
    ("bpf_ringbuf_reserve_dynptr(&rb, 8, 0, &d); bpf_ringbuf_discard_dynptr(&d, 0);"
     "bpf_ringbuf_discard_dynptr(&d, 0); return 0;",
     "arg 1 is an unacquired reference"),
    ("bpf_ringbuf_reserve_dynptr(&rb, 8, 0, &d); __u8 *p = bpf_dynptr_data(&d, 0, 8);"
     "if (!p) { bpf_ringbuf_discard_dynptr(&d, 0); return 0; }"
     "bpf_ringbuf_submit_dynptr(&d, 0); return p[0];",
     "invalid mem access 'scalar'"),
    # a kfunc's slice holds the record's reference as bpf_dynptr_data's does (6.18.44
    # prints its ref_obj_id; 6.12's check_kfunc_call gave a slice none)
    ("bpf_ringbuf_reserve_dynptr(&rb, 8, 0, &d); __u8 *p = bpf_dynptr_slice_rdwr(&d, 0, 0, 8);"
     "if (!p) { bpf_ringbuf_discard_dynptr(&d, 0); return 0; }"
     "bpf_ringbuf_submit_dynptr(&d, 0); return p[0];",
     "invalid mem access 'scalar'"),
    ("bpf_ringbuf_reserve_dynptr(&rb, 8, 0, &d); *(volatile __u64 *)&d = 0;"
     "bpf_ringbuf_discard_dynptr(&d, 0); return 0;",
     "cannot overwrite referenced dynptr"),
    ("bpf_ringbuf_reserve_dynptr(&rb, 8, 0, &d); bpf_ringbuf_reserve_dynptr(&rb, 8, 0, &d);"
     "bpf_ringbuf_discard_dynptr(&d, 0); return 0;",
     "cannot overwrite referenced dynptr"),
    ("struct bpf_dynptr c; bpf_ringbuf_reserve_dynptr(&rb, 8, 0, &d); bpf_dynptr_clone(&d, &c);"
     "bpf_ringbuf_submit_dynptr(&c, 0); return bpf_dynptr_size(&d);",
     "Expected an initialized dynptr as arg #0"),
    ("bpf_ringbuf_reserve_dynptr(&vals, 8, 0, &d);"
     "bpf_ringbuf_discard_dynptr(&d, 0); return 0;",
     "cannot pass map_type 2 into func bpf_ringbuf_reserve_dynptr#198"),
])
def test_a_ring_buffer_dynptr_misuse_is_refused_as_the_kernel_refuses_it(body, message):
    refused_alike(obj(RINGBUF % body), message)
