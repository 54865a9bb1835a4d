"""Declared conntrack entries (``Environment.conntrack``) put into the running kernel's
table, for comparisons that need the kernel to see the table pyebpf models
(``tcsim --kernel-check``).

This machine has no ``conntrack -I``; a tc program does what it does, one program per
entry run once with BPF_PROG_TEST_RUN in the calling thread's network namespace:
``bpf_skb_ct_alloc`` of the original tuple in the entry's zone, ``bpf_ct_set_status``,
``bpf_ct_set_nat_info`` for a reply tuple that is not the original's inverse, the mark,
``bpf_ct_set_timeout`` and ``bpf_ct_insert_entry``.  An entry of the same tuple left
there before (by an earlier run, even one whose timeout passed) is removed first: its
timeout set to 0, then met by a lookup, which drops it.  On the way out each entry is
removed the same way.  The programs are C, compiled with clang (pyebpf.bpfcc).
"""
from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path

from .. import isa
from ..errors import KernelError

_DECLS = r"""
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
struct nf_conn { __u32 mark; } __attribute__((preserve_access_index));
struct nf_conn___init;
union nf_inet_addr { __u32 all[4]; __be32 ip; __be32 ip6[4]; };
struct bpf_ct_opts {
    __s32 netns_id; __s32 error; __u8 l4proto; __u8 dir; __u16 ct_zone_id;
    __u8 ct_zone_dir; __u8 reserved[3];
};
enum nf_nat_manip_type { NF_NAT_MANIP_SRC, NF_NAT_MANIP_DST };
extern struct nf_conn *bpf_skb_ct_lookup(struct __sk_buff *, struct bpf_sock_tuple *, __u32,
                                         struct bpf_ct_opts *, __u32) __ksym;
extern struct nf_conn___init *bpf_skb_ct_alloc(struct __sk_buff *, struct bpf_sock_tuple *,
                                               __u32, struct bpf_ct_opts *, __u32) __ksym;
extern struct nf_conn *bpf_ct_insert_entry(struct nf_conn___init *) __ksym;
extern void bpf_ct_release(struct nf_conn *) __ksym;
extern void bpf_ct_set_timeout(struct nf_conn___init *, __u32) __ksym;
extern int bpf_ct_change_timeout(struct nf_conn *, __u32) __ksym;
extern int bpf_ct_set_status(const struct nf_conn___init *, __u32) __ksym;
extern int bpf_ct_set_nat_info(struct nf_conn___init *, union nf_inet_addr *, int,
                               enum nf_nat_manip_type) __ksym;
#define CLEAN() { struct nf_conn *old = bpf_skb_ct_lookup(skb, &t, len, &o, sizeof(o)); \
    if (old) { bpf_ct_change_timeout(old, 0); bpf_ct_release(old);                    \
        old = bpf_skb_ct_lookup(skb, &t, len, &o, sizeof(o));                          \
        if (old) bpf_ct_release(old); } }
char _license[] SEC("license") = "GPL";
"""
# what an insertion program returns when bpf_ct_insert_entry or a setter failed
INSERT_FAILED, SET_FAILED = -1000, -1001
_PROTO = {"tcp": "IPPROTO_TCP", "udp": "IPPROTO_UDP"}


def _words(addr) -> list[str]:
    """An address as the big-endian 32-bit words a C initializer takes."""
    packed = addr.packed
    return [f"bpf_htonl({int.from_bytes(packed[i:i + 4], 'big'):#x})"
            for i in range(0, len(packed), 4)]


def _head(c) -> str:
    """The entry's original tuple ``t`` (its length ``len``) and its options ``o``."""
    (src, sport), (dst, dport) = c.tuples()[0]
    if src.version == 4:
        fill = (f"t.ipv4.saddr = {_words(src)[0]}; t.ipv4.daddr = {_words(dst)[0]}; "
                f"t.ipv4.sport = bpf_htons({sport}); t.ipv4.dport = bpf_htons({dport}); "
                "__u32 len = sizeof(t.ipv4);")
    else:
        fill = "".join(f"t.ipv6.saddr[{i}] = {w}; " for i, w in enumerate(_words(src)))
        fill += "".join(f"t.ipv6.daddr[{i}] = {w}; " for i, w in enumerate(_words(dst)))
        fill += (f"t.ipv6.sport = bpf_htons({sport}); t.ipv6.dport = bpf_htons({dport}); "
                 "__u32 len = sizeof(t.ipv6);")
    return (f"struct bpf_sock_tuple t = {{}}; {fill} struct bpf_ct_opts o = {{ "
            f".netns_id = -1, .l4proto = {_PROTO[c.protocol]}, .ct_zone_id = {c.zone}, "
            f".ct_zone_dir = {c.zone_dir} }};")


def _address(addr) -> str:
    words = _words(addr)
    if len(words) == 1:
        return f"a.ip = {words[0]};"
    return " ".join(f"a.ip6[{i}] = {w};" for i, w in enumerate(words))


def insert_body(c) -> str:
    """The body of a tc program inserting the Conntrack ``c`` into the kernel's table:
    0, the errno bpf_skb_ct_alloc set (negative), INSERT_FAILED or SET_FAILED."""
    orig, (rsrc, rdst) = c.tuples()
    status = sum(getattr(isa, f"IPS_{name}") for name in c.status)
    nat = ""
    if rdst != orig[0]:
        nat += (f"{_address(rdst[0])} e |= bpf_ct_set_nat_info(n, &a, {rdst[1]}, "
                "NF_NAT_MANIP_SRC); ")
    if rsrc != orig[1]:
        nat += (f"{_address(rsrc[0])} e |= bpf_ct_set_nat_info(n, &a, {rsrc[1]}, "
                "NF_NAT_MANIP_DST); ")
    return (f"{_head(c)} CLEAN() struct nf_conn___init *n = bpf_skb_ct_alloc(skb, &t, len, "
            "&o, sizeof(o)); if (!n) return o.error; union nf_inet_addr a = {}; "
            f"int e = bpf_ct_set_status(n, {status}); {nat}"
            f"((struct nf_conn *)n)->mark = {c.mark}; "
            f"bpf_ct_set_timeout(n, {c.timeout * 1000}); "
            f"struct nf_conn *c = bpf_ct_insert_entry(n); if (!c) return {INSERT_FAILED}; "
            f"bpf_ct_release(c); return e ? {SET_FAILED} : 0;")


def remove_body(c) -> str:
    """The body of a tc program removing ``c``'s entry from the kernel's table."""
    return f"{_head(c)} CLEAN() return 0;"


def source(entries) -> str:
    """C of the programs ``insert<k>`` and ``remove<k>`` for each of ``entries``."""
    return _DECLS + "".join(
        f'SEC("tc") int {kind}{k}(struct __sk_buff *skb) {{ {body(c)} }}\n'
        for k, c in enumerate(entries)
        for kind, body in (("insert", insert_body), ("remove", remove_body)))


def _frame(c) -> bytes:
    """A frame of the entry's family for the programs' test runs (they read nothing of
    it; bpf_skb_ct_alloc takes the namespace from the skb's device)."""
    version = c.tuples()[0][0][0].version
    ethertype, header = (b"\x08\x00", b"\x45" + bytes(19)) if version == 4 else \
        (b"\x86\xdd", b"\x60" + bytes(39))
    return bytes(12) + ethertype + header + bytes(26)


@contextlib.contextmanager
def declared(entries):
    """The kernel's table (of the calling thread's network namespace) holds ``entries``
    while the block runs.  Raises KernelError naming the entry the kernel refused, and
    FileNotFoundError or bpfcc.CompileError when the programs cannot be compiled."""
    from .. import bpfcc
    from .objects import load_object
    entries = tuple(entries)
    if not entries:
        yield
        return
    with tempfile.TemporaryDirectory(prefix="pyebpf-ct-") as tmp:
        path = Path(tmp) / "conntrack.c"
        path.write_text(source(entries))
        data = bpfcc.compile(path).read_bytes()
    with load_object(data) as kobj:
        inserted = []
        try:
            for k, c in enumerate(entries):
                frame = _frame(c)
                rc = kobj.program(f"insert{k}").test_run(frame).retval_signed
                if rc:
                    what = {INSERT_FAILED: "bpf_ct_insert_entry failed",
                            SET_FAILED: "a status or NAT setter failed"}.get(
                                rc, f"bpf_skb_ct_alloc: {os.strerror(-rc)}")
                    raise KernelError(-rc if rc > INSERT_FAILED else errno.EINVAL,
                                      f"the kernel's conntrack table refused entry {k} "
                                      f"({c.protocol} {c.src} -> {c.dst}, zone {c.zone}): "
                                      f"{what}")
                inserted.append((k, frame))
            yield
        finally:
            for k, frame in inserted:
                kobj.program(f"remove{k}").test_run(frame)


