"""bpf_get_kmem_cache(addr): the ``struct kmem_cache`` of the slab the kernel object at
``addr`` is in, or NULL (kernel/bpf/helpers.c), each against the kernel's
BPF_PROG_TEST_RUN: which cache holds the test run's sk_buff, its net_device, its packet
buffer and its socket, what a program reads of the cache (its sizes, alignment, free
pointer offset, flags), NULL for the stack and for no object, the cache of a map's value
(the accounted kmalloc cache of its allocation's size, or NULL where the kernel
vmallocs it, takes whole pages or gives it per-CPU memory), and the verifier's rules
for the call (a scalar address; an untrusted pointer that may be NULL).
"""
import struct

import pytest
from networld import world
from objdiff import verdicts
from recorded_kernel import count_comparison
from scapy.all import IP, TCP, Ether, raw
from skbdiff import engine_fields
from test_core import _core_object
from test_sockets import tuple_fill

import pyebpf
from pyebpf.environment import Device, Environment, Socket
from pyebpf.skb import slab

PACKETS = {
    "short": raw(Ether() / IP() / TCP()),
    # 1200 bytes: with test_run's headroom and shared info, a kmalloc-2k buffer
    "long": raw(Ether() / IP() / TCP() / (b"x" * 1146)),
}
FIELDS = ["object_size", "size", "align", "offset", "inuse", "flags", "refcount"]

SOURCE = """
extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;
extern struct kmem_cache *bpf_get_kmem_cache(__u64 addr) __ksym;
__u64 out[%d];
/* the kfunc takes a scalar: a pointer goes through memory to become one (a map of its
   own: the kernel's addresses differ from run to run) */
volatile __u64 slot SEC(".data.slot") = 1;

static __always_inline __u64 addr_of(const void *p) { slot = (__u64)p; return slot; }

SEC("tc")
int kmem(struct __sk_buff *ctx)
{
    struct sk_buff *skb = bpf_cast_to_kern_ctx(ctx);
    struct bpf_sock *sk = ctx->sk;
    __u64 local = 7;
    struct kmem_cache *c = bpf_get_kmem_cache(%s);

    if (!c)
        return 1;
    %s
    return 0;
}
char _license[] SEC("license") = "GPL";
"""

# the objects, as the address expression passed to the kfunc
OBJECTS = {
    "sk_buff": "addr_of(skb)",
    "inside the sk_buff": "addr_of(skb) + 100",
    "net_device": "addr_of(skb->dev)",
    "packet": "addr_of((void *)(long)ctx->data)",
    "socket": "sk ? addr_of(sk) : 0",
    "stack": "addr_of(&local)",
    # past an object's end, still in its slot of the slab (224 of skbuff_head_cache's 256
    # bytes; 2496 of kmalloc-cg-4k's; the packet's buffer: headroom, packet, shared info
    # and the slack of its kmalloc-512 or kmalloc-2k)
    "past the sk_buff, in its slot": "addr_of(skb) + 240",
    "past the net_device, in its slot": "addr_of(skb->dev) + 4000",
    "past the packet, in its buffer's slot": "addr_of((void *)(long)ctx->data) + ctx->len + 340",
    "before the packet, in its headroom": "addr_of((void *)(long)ctx->data) - 32",
    "no object": "0",
}


def _object(addr: str) -> bytes:
    body = "\n    ".join(f"out[{k}] = c->{f};" for k, f in enumerate(FIELDS))
    return _core_object(SOURCE % (len(FIELDS), addr, body))


def _both(addr: str, packet: bytes, data: bytes | None = None, env=None,
          ctx: dict | None = None) -> tuple[tuple, tuple]:
    """(pyebpf's, the kernel's) retval and cache fields of the object at ``addr`` (or
    of the object ``data``'s program ``kmem`` finds)."""
    data, n = data or _object(addr), len(FIELDS)
    obj = pyebpf.load(data)
    prog = obj.program("kmem")
    ours = prog.run(packet, env=env, **engine_fields(prog.prog_type, ctx or {})).retval
    mine = struct.unpack(f"<{n}Q", obj.maps[".bss"].lookup(bytes(4))[:8 * n])
    with pyebpf.kernel.load_object(data) as kobj:
        theirs = kobj.program("kmem").test_run(packet, ctx=ctx or {}).retval
        kernel = struct.unpack(f"<{n}Q", kobj.maps[".bss"].lookup(bytes(4))[:8 * n])
    count_comparison()
    return (ours, dict(zip(FIELDS, mine))), (theirs, dict(zip(FIELDS, kernel)))


@pytest.mark.parametrize("packet", sorted(PACKETS))
@pytest.mark.parametrize("what", sorted(OBJECTS))
def test_the_cache_of_an_object_is_the_kernels(what, packet):
    ours, theirs = _both(OBJECTS[what], PACKETS[packet])
    assert ours == theirs


def test_the_sk_buff_is_in_skbuff_head_cache():
    (retval, fields), _ = _both(OBJECTS["sk_buff"], PACKETS["short"])
    names = [name for name, _, _ in slab.caches()]
    assert retval == 0
    assert fields["object_size"] == slab.caches()[names.index("skbuff_head_cache")][1]


def test_a_cache_names_itself():
    # the name pointer leads to the name, read here through the engine's own loads
    data = _core_object(SOURCE % (1, OBJECTS["sk_buff"], "out[0] = (__u64)c->name;"))
    obj = pyebpf.load(data)
    obj.program("kmem").run(PACKETS["short"], ifindex=1)
    (name,) = struct.unpack("<Q", obj.maps[".bss"].lookup(bytes(4))[:8])
    image = slab.image()
    off = name - slab.KMEM_CACHE_ADDRESS
    assert image[off:image.index(b"\0", off)] == b"skbuff_head_cache"


# --- the sockets a lookup finds ----------------------------------------------------------

SOCKETS = Environment(
    devices=(Device(1, "lo", 65536, up=True, addresses=("127.0.0.1/8", "::1/128")),
             Device(2, "vrx", 1500, "02:00:00:00:00:02",
                    addresses=("10.0.0.1/24", "fd00::1/64")),
             Device(3, "vtx", 1500, "02:00:00:00:00:03")),
    sockets=(Socket("tcp", "0.0.0.0:80"), Socket("tcp", "[::]:443", v6only=True),
             Socket("udp", "0.0.0.0:53"), Socket("udp", "[::]:5300", v6only=True)))
LOOKUP = """
#include <bpf/bpf_endian.h>
extern struct kmem_cache *bpf_get_kmem_cache(__u64 addr) __ksym;
__u64 out[%d];
volatile __u64 slot SEC(".data.slot") = 1;

SEC("tc")
int kmem(struct __sk_buff *ctx)
{
    struct bpf_sock_tuple t = {};
    struct bpf_sock *sk;
    struct kmem_cache *c;
    %s
    sk = %s(ctx, &t, %d, -1, 0);      /* BPF_F_CURRENT_NETNS */
    if (!sk)
        return 1;
    slot = (__u64)sk;
    c = bpf_get_kmem_cache(slot);
    bpf_sk_release(sk);
    %s
    return 0;
}
char _license[] SEC("license") = "GPL";
"""
FOUND = {
    "TCP": ("bpf_sk_lookup_tcp", "10.0.0.2", 4000, "10.0.0.1", 80),
    "TCPv6": ("bpf_sk_lookup_tcp", "fd00::2", 4000, "fd00::1", 443),
    "UDP": ("bpf_sk_lookup_udp", "10.0.0.2", 4000, "10.0.0.1", 53),
    "UDPv6": ("bpf_sk_lookup_udp", "fd00::2", 4000, "fd00::1", 5300),
}


@pytest.fixture(scope="module")
def socket_world():
    with world(SOCKETS, "kmem") as run:
        yield run


@pytest.mark.parametrize("cache", sorted(FOUND))
def test_a_socket_a_lookup_finds_is_in_its_protocols_cache_as_in_the_kernel(socket_world,
                                                                           cache):
    helper, src, sport, dst, dport = FOUND[cache]
    fill, size = tuple_fill(src, sport, dst, dport)
    body = "\n    ".join(f"out[{k}] = c->{f};" for k, f in enumerate(FIELDS))
    data = _core_object(LOOKUP % (len(FIELDS), fill, helper, size, body))
    packet = PACKETS["short"]
    ours, theirs = socket_world(lambda: _both("", packet, data, SOCKETS, {"ifindex": 2}))
    assert ours == theirs
    assert ours[1]["object_size"] == dict((n, o) for n, o, _ in slab.caches())[cache]


# --- map values ------------------------------------------------------------------------

MAP = """
extern struct kmem_cache *bpf_get_kmem_cache(__u64 addr) __ksym;
__u64 out[%d];
volatile __u64 slot SEC(".data.slot") = 1;
char zero[%d] SEC(".data.zero");    /* apart from out, read from .bss */
struct {
    __uint(type, %s);
    __uint(max_entries, %d);
    __type(key, __u32);
    __uint(value_size, %d);
    __uint(map_flags, %d);
} m SEC(".maps");

SEC("tc")
int kmem(struct __sk_buff *ctx)
{
    __u32 k = 0;
    struct kmem_cache *c;
    void *v;

    bpf_map_update_elem(&m, &k, zero, 0);
    v = bpf_map_lookup_elem(&m, &k);
    if (!v)
        return 2;
    slot = (__u64)v + %d;
    c = bpf_get_kmem_cache(slot);
    if (!c)
        return 1;
    %s
    return 0;
}
char _license[] SEC("license") = "GPL";
"""
NO_PREALLOC, MMAPABLE = 1, 1 << 10
# (type, max_entries, value_size, map_flags, the address's offset into the value)
MAPS = {
    # struct bpf_array (312 bytes) and the values in one kmalloc
    "a small array": ("BPF_MAP_TYPE_ARRAY", 1, 8, 0, 0),
    "inside a small array's value": ("BPF_MAP_TYPE_ARRAY", 1, 200, 0, 180),
    # the struct bpf_array before the values; past them, the rest of kmalloc-cg-512's slot
    "the struct bpf_array before an array's values": ("BPF_MAP_TYPE_ARRAY", 1, 8, 0, -8),
    "past a small array's value, in its slot": ("BPF_MAP_TYPE_ARRAY", 1, 8, 0, 150),
    "an array in kmalloc-cg-8k": ("BPF_MAP_TYPE_ARRAY", 7, 1000, 0, 0),
    # 8312 bytes: a kmalloc past the largest cache takes whole pages
    "an array just past kmalloc-cg-8k": ("BPF_MAP_TYPE_ARRAY", 8, 1000, 0, 0),
    "a vmalloc'ed array": ("BPF_MAP_TYPE_ARRAY", 40, 1000, 0, 0),
    "a BPF_F_MMAPABLE array": ("BPF_MAP_TYPE_ARRAY", 1, 8, MMAPABLE, 0),
    "a per-CPU array": ("BPF_MAP_TYPE_PERCPU_ARRAY", 1, 8, 0, 0),
    # the elements and one per possible CPU in one kmalloc
    "a preallocated hash map": ("BPF_MAP_TYPE_HASH", 4, 100, 0, 0),
    "a BPF_F_NO_PREALLOC hash map": ("BPF_MAP_TYPE_HASH", 1, 100, NO_PREALLOC, 0),
    "an LRU hash map": ("BPF_MAP_TYPE_LRU_HASH", 1, 8, 0, 0),
    "a per-CPU hash map": ("BPF_MAP_TYPE_PERCPU_HASH", 1, 8, 0, 0),
}


@pytest.mark.parametrize("case", sorted(MAPS))
def test_the_cache_of_a_map_value_is_the_kernels(case):
    kind, entries, value_size, flags, offset = MAPS[case]
    body = "\n    ".join(f"out[{k}] = c->{f};" for k, f in enumerate(FIELDS))
    data = _core_object(MAP % (len(FIELDS), value_size, kind, entries, value_size, flags,
                               offset, body))
    ours, theirs = _both("", PACKETS["short"], data)
    assert ours == theirs


INNER = """
extern struct kmem_cache *bpf_get_kmem_cache(__u64 addr) __ksym;
__u64 out[%d];
volatile __u64 slot SEC(".data.slot") = 1;
struct inner {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 4);
    __type(key, __u32);
    __uint(value_size, 100);
} inner SEC(".maps");
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
    __uint(max_entries, 1);
    __type(key, __u32);
    __array(values, struct inner);
} outer SEC(".maps") = { .values = { [0] = &inner } };

SEC("tc")
int kmem(struct __sk_buff *ctx)
{
    __u32 k = 0;
    struct kmem_cache *c;
    void *m, *v;

    m = bpf_map_lookup_elem(&outer, &k);
    if (!m)
        return 3;
    v = bpf_map_lookup_elem(m, &k);
    if (!v)
        return 2;
    slot = (__u64)v;
    c = bpf_get_kmem_cache(slot);
    if (!c)
        return 1;
    %s
    return 0;
}
char _license[] SEC("license") = "GPL";
"""


def test_the_cache_of_an_inner_maps_value_is_the_kernels():
    # 312 + 4 * 104 bytes: kmalloc-cg-1k, reached through the map of maps
    body = "\n    ".join(f"out[{k}] = c->{f};" for k, f in enumerate(FIELDS))
    ours, theirs = _both("", PACKETS["short"], _core_object(INNER % (len(FIELDS), body)))
    assert ours == theirs
    assert ours[0] == 0


def test_a_small_arrays_value_is_in_an_accounted_kmalloc_cache():
    body = "\n    ".join(f"out[{k}] = c->{f};" for k, f in enumerate(FIELDS))
    data = _core_object(MAP % (len(FIELDS), 8, "BPF_MAP_TYPE_ARRAY", 1, 8, 0, 0, body))
    (retval, fields), _ = _both("", PACKETS["short"], data)
    assert retval == 0
    assert (fields["object_size"], fields["flags"] & slab.SLAB_ACCOUNT) == \
        (512, slab.SLAB_ACCOUNT)


# --- the verifier ----------------------------------------------------------------------

CALLS = {
    "a pointer for the address": "c = bpf_get_kmem_cache((__u64)skb); return c ? 1 : 0;",
    "no NULL check": "c = bpf_get_kmem_cache(addr_of(skb)); return c->size;",
    "a write through the cache": "c = bpf_get_kmem_cache(addr_of(skb)); "
                                 "if (c) c->size = 1; return 0;",
    "a NULL-checked read": "c = bpf_get_kmem_cache(addr_of(skb)); return c ? c->size : 0;",
}
VERIFY = """
extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;
extern struct kmem_cache *bpf_get_kmem_cache(__u64 addr) __ksym;
volatile __u64 slot;
static __always_inline __u64 addr_of(const void *p) { slot = (__u64)p; return slot; }

SEC("tc")
int kmem(struct __sk_buff *ctx)
{
    struct sk_buff *skb = bpf_cast_to_kern_ctx(ctx);
    struct kmem_cache *c;
    %s
}
char _license[] SEC("license") = "GPL";
"""


@pytest.mark.parametrize("case", sorted(CALLS))
def test_the_verifier_decides_a_call_as_the_kernels(case):
    ours, theirs = verdicts(_core_object(VERIFY % CALLS[case]))
    assert (ours is None) == (theirs is None), (ours, theirs)
    assert theirs is None or theirs in ours
