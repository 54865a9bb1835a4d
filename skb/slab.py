"""The slab caches of the kernel objects pyebpf models, as ``bpf_get_kmem_cache`` finds
them (kernel/bpf/helpers.c: the ``struct kmem_cache`` of the slab an address is in).

Each cache is laid out as the target BTF's ``struct kmem_cache`` with the fields SLUB
sets when it creates the cache (mm/slub.c ``calculate_sizes``, without slab debugging,
as the modelled kernel's config has it): ``name``, ``object_size``, ``size``, ``align``,
``offset`` (the free pointer: in the middle of the object, or after it for a
SLAB_TYPESAFE_BY_RCU cache), ``inuse``, ``flags`` (``enum _slab_flag_bits``) and
``refcount`` (1, or the measured count of a cache others were merged into).  Which
cache holds which object is the kernel's, measured on it
(tests/test_kfuncs_kmem_cache.py): the test run's sk_buff comes from
``skbuff_head_cache``, its packet buffer (``bpf_test_init``: headroom, packet and
``skb_shared_info``) and its socket (``bpf_dummy_proto``: a ``struct sock``) from plain
``kmalloc`` caches, the loopback ``net_device`` from an accounted one
(``kmalloc-cg-*``), sockets from their protocol's cache (``TCP``, ``TCPv6``, ``UDP``,
``UDPv6``) and request sockets from ``request_sock_TCP`` (not measured: derived); a
map's values from the accounted kmalloc cache of the allocation holding them
(pyebpf/kmem_cache.pxi ``_map_cache``).
"""
from __future__ import annotations

from ..btf.relo import target_btf
from .kern import _lay_out, _struct

#: Where the modelled caches are said to be: the k-th's ``struct kmem_cache`` at
#: ``KMEM_CACHE_ADDRESS + k * KMEM_CACHE_STRIDE``, the names after the last one.
KMEM_CACHE_ADDRESS = 0xFFFF8881B0000000
KMEM_CACHE_STRIDE = 0x4000
NAME_SIZE = 32

# enum _slab_flag_bits (include/linux/slab.h)
SLAB_KMALLOC, SLAB_HWCACHE_ALIGN, SLAB_PANIC = 1 << 3, 1 << 4, 1 << 8
SLAB_TYPESAFE_BY_RCU, SLAB_NO_MERGE, SLAB_ACCOUNT = 1 << 9, 1 << 12, 1 << 13
SLAB_CMPXCHG_DOUBLE = 1 << 17    # kmem_cache_open sets it where the CPU has cmpxchg16b

CACHE_LINE = 64                  # x86-64's cache_line_size()
ARCH_MINALIGN = 8                # ARCH_SLAB_MINALIGN, ARCH_KMALLOC_MINALIGN
#: kmalloc's size classes (KMALLOC_MIN_SIZE 8, KMALLOC_MAX_CACHE_SIZE two pages);
#: a larger kmalloc takes whole pages, which are no slab
KMALLOC_SIZES = (8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192)

#: The named caches: (name, the struct its objects are, flags at creation)
NAMED = (
    ("skbuff_head_cache", "sk_buff", SLAB_HWCACHE_ALIGN | SLAB_PANIC | SLAB_NO_MERGE),
    # proto_register: SLAB_HWCACHE_ALIGN | SLAB_ACCOUNT | the protocol's slab_flags
    ("TCP", "tcp_sock", SLAB_HWCACHE_ALIGN | SLAB_ACCOUNT | SLAB_TYPESAFE_BY_RCU),
    ("TCPv6", "tcp6_sock", SLAB_HWCACHE_ALIGN | SLAB_ACCOUNT | SLAB_TYPESAFE_BY_RCU),
    ("UDP", "udp_sock", SLAB_HWCACHE_ALIGN | SLAB_ACCOUNT),
    ("UDPv6", "udp6_sock", SLAB_HWCACHE_ALIGN | SLAB_ACCOUNT),
    # req_prot_init: SLAB_ACCOUNT | the protocol's slab_flags
    ("request_sock_TCP", "tcp_request_sock", SLAB_ACCOUNT | SLAB_TYPESAFE_BY_RCU),
)
SKBUFF, TCP, TCPV6, UDP, UDPV6, REQUEST_SOCK_TCP = range(len(NAMED))
#: The caches another cache of the same geometry was merged into (find_mergeable), with
#: their refcount: the cache and its aliases (measured: UDP-Lite's and one more share
#: UDP's, UDPLITEv6's UDPv6's)
MERGED = {"UDP": 3, "UDPv6": 2}
KMALLOC = len(NAMED)                            # then kmalloc-8 ... kmalloc-8k
KMALLOC_CG = KMALLOC + len(KMALLOC_SIZES)       # and kmalloc-cg-8 ... kmalloc-cg-8k
N_CACHES = KMALLOC_CG + len(KMALLOC_SIZES)


def _kmalloc_name(size: int) -> str:
    return f"{size // 1024}k" if size >= 1024 else str(size)


def geometry(object_size: int, flags: int, align: int = ARCH_MINALIGN) -> dict[str, int]:
    """SLUB's sizes of a cache of ``object_size``-byte objects (calculate_alignment,
    calculate_sizes): ``inuse``, ``offset``, ``align`` and ``size``."""
    size = -(-object_size // 8) * 8
    inuse = size
    if flags & SLAB_TYPESAFE_BY_RCU:
        offset, size = size, size + 8            # the free pointer after the object
    else:
        offset = object_size // 2 // 8 * 8       # in its middle (freelist hardening)
    if flags & SLAB_HWCACHE_ALIGN:
        ralign = CACHE_LINE
        while object_size <= ralign // 2:
            ralign //= 2
        align = max(align, ralign)
    align = max(align, ARCH_MINALIGN)
    return {"inuse": inuse, "offset": offset, "align": align,
            "size": -(-size // align) * align}


def kmalloc_index(size: int) -> int:
    """The kmalloc size class that a ``size``-byte kmalloc takes, as an index into
    KMALLOC_SIZES; -1 when it is larger than the largest (its pages are no slab)."""
    return next((k for k, c in enumerate(KMALLOC_SIZES) if size <= c), -1)


def caches(btf=None) -> list[tuple[str, int, int]]:
    """Every modelled cache, by index: (name, object_size, flags at creation)."""
    btf = target_btf(btf)
    out = [(name, _struct(btf, struct).byte_size, flags) for name, struct, flags in NAMED]
    # new_kmalloc_cache: with memcg, the unaccounted caches are never merged
    for prefix, extra in (("kmalloc-", SLAB_NO_MERGE), ("kmalloc-cg-", SLAB_ACCOUNT)):
        out += [(prefix + _kmalloc_name(size), size, SLAB_KMALLOC | extra)
                for size in KMALLOC_SIZES]
    return out


def image(btf=None) -> bytes:
    """The caches' ``struct kmem_cache`` records, ``KMEM_CACHE_STRIDE`` apart from
    ``KMEM_CACHE_ADDRESS``, then their NUL-terminated names, ``NAME_SIZE`` bytes each."""
    t = _struct(target_btf(btf), "kmem_cache")
    if t.byte_size > KMEM_CACHE_STRIDE:
        raise ValueError(f"struct kmem_cache is {t.byte_size} bytes, more than the "
                         f"{KMEM_CACHE_STRIDE} the model leaves each")
    names = KMEM_CACHE_ADDRESS + N_CACHES * KMEM_CACHE_STRIDE
    out = bytearray()
    for k, (name, object_size, flags) in enumerate(caches(btf)):
        # create_boot_cache: a kmalloc cache is aligned to the largest power of two
        # dividing its size (a power-of-two size naturally; kmalloc-192 to 64 bytes)
        align = object_size & -object_size if flags & SLAB_KMALLOC else ARCH_MINALIGN
        values = {"name": names + k * NAME_SIZE, "object_size": object_size,
                  "flags": flags | SLAB_CMPXCHG_DOUBLE, "refcount": MERGED.get(name, 1),
                  **geometry(object_size, flags, align)}
        out += _lay_out(t, values).ljust(KMEM_CACHE_STRIDE, b"\0")
    for name, _, _ in caches(btf):
        out += name.encode().ljust(NAME_SIZE, b"\0")
    return bytes(out)


def object_sizes(btf=None) -> dict[str, int]:
    """The sizes of the objects the kfunc places by address: ``sk_buff``,
    ``net_device``, ``sock`` (a test run's skb->sk), ``tcp_request_sock`` and
    ``skb_shared_info`` (the end of a packet's buffer), and of the headers a map's
    values are allocated behind: ``bpf_array``, ``htab_elem`` and ``llist_node``."""
    btf = target_btf(btf)
    return {name: _struct(btf, name).byte_size
            for name in ("sk_buff", "net_device", "sock", "tcp_request_sock",
                         "skb_shared_info", "bpf_array", "htab_elem", "llist_node")}
