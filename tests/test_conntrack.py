"""The nf_conntrack kfuncs of tc programs (``bpf_skb_ct_lookup``, ``bpf_skb_ct_alloc``,
``bpf_ct_insert_entry``, ``bpf_ct_release``, ``bpf_ct_set_timeout``,
``bpf_ct_change_timeout``, ``bpf_ct_set_status``, ``bpf_ct_change_status``,
``bpf_ct_set_nat_info``) over the modelled conntrack table, each against the kernel:
the errno in ``opts->error``, the entry's fields read back, an entry inserted by one
run found by a later one, the load verdicts of programs the verifier refuses.

The kernel's table is the machine's: each test uses tuples of its own (10.99.0.1:PORT
-> 10.99.0.2:80, PORT the test's) in a zone of its own, and its last program sets the
timeouts of the entries it inserted to 0, which removes them.  Runs of one test are
different programs (the recorded answers key a run by program and packet).
"""
import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

import pyebpf
from pyebpf import isa

from bpfc import compile_object
from objdiff import verdicts
from recorded_kernel import count_comparison

PACKET = bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2) /
               (b"\x07" * 40))

# what programs declare: the kernel structs as CO-RE reads them (vmlinux.h's shapes),
# struct bpf_ct_opts and the kfuncs as the kernel's selftests declare them
DECLS = r"""
#include <linux/in.h>
struct nf_conntrack_zone { __u16 id; __u8 flags; __u8 dir; } __attribute__((preserve_access_index));
union nf_inet_addr { __u32 all[4]; __be32 ip; __be32 ip6[4]; };
union nf_conntrack_man_proto { __be16 all; };
struct nf_conntrack_man {
    union nf_inet_addr u3; union nf_conntrack_man_proto u; __u16 l3num;
} __attribute__((preserve_access_index));
struct nf_conntrack_tuple {
    struct nf_conntrack_man src;
    struct { union nf_inet_addr u3; union { __be16 all; } u; __u8 protonum; __u8 dir; } dst;
} __attribute__((preserve_access_index));
struct nf_conntrack_tuple_hash { struct nf_conntrack_tuple tuple; }
    __attribute__((preserve_access_index));
struct nf_conn {
    unsigned int timeout; struct nf_conntrack_zone zone;
    struct nf_conntrack_tuple_hash tuplehash[2]; unsigned long status; __u32 mark;
} __attribute__((preserve_access_index));
struct nf_conn___init;
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
extern int bpf_ct_change_status(struct nf_conn *, __u32) __ksym;
extern int bpf_ct_set_nat_info(struct nf_conn___init *, union nf_inet_addr *, int,
                               enum nf_nat_manip_type) __ksym;

#define IPS_CONFIRMED 8
#define TUPLE(port) struct bpf_sock_tuple t = {};                                   \
    t.ipv4.saddr = bpf_htonl(0x0a630001); t.ipv4.daddr = bpf_htonl(0x0a630002);     \
    t.ipv4.sport = bpf_htons(port); t.ipv4.dport = bpf_htons(80);
#define OPTS(zone) struct bpf_ct_opts o = { .netns_id = -1, .l4proto = IPPROTO_TCP,  \
                                            .ct_zone_id = (zone) };
/* an entry of t left by an earlier run, even one whose timeout passed, keeps a new one
   out of the kernel's table until a lookup meets it and removes it */
#define CLEAN() { struct nf_conn *old =                                             \
        bpf_skb_ct_lookup(skb, &t, sizeof(t.ipv4), &o, sizeof(o));                  \
    if (old) { bpf_ct_change_timeout(old, 0); bpf_ct_release(old);                  \
        old = bpf_skb_ct_lookup(skb, &t, sizeof(t.ipv4), &o, sizeof(o));            \
        if (old) bpf_ct_release(old); } }
/* a new entry of t, or return its error */
#define ALLOC() CLEAN() struct nf_conn___init *n =                                  \
        bpf_skb_ct_alloc(skb, &t, sizeof(t.ipv4), &o, sizeof(o));                   \
    if (!n) return o.error;
#define INSERT() struct nf_conn *c = bpf_ct_insert_entry(n); if (!c) return -1000;
"""
LICENSE = '\nchar _license[] SEC("license") = "GPL";\n'
ENOENT, EINVAL = -isa.Errno.ENOENT, -isa.Errno.EINVAL


def _obj(programs: dict[str, str]) -> bytes:
    """An object of tc programs NAME(skb) { BODY }, in the order given."""
    src = DECLS + "".join(f'SEC("tc") int {name}(struct __sk_buff *skb) {{ {body} }}\n'
                          for name, body in programs.items())
    return compile_object(src + LICENSE)


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def same_runs(programs: dict[str, str], packet: bytes = PACKET) -> list[int]:
    """Load the programs in pyebpf and in the kernel, run each once in order in both,
    require the same retvals and return them (signed)."""
    data = _obj(programs)
    obj = pyebpf.load(data)
    try:
        with pyebpf.kernel.load_object(data) as kobj:
            out = []
            for name in programs:
                ours = obj.program(name).run(packet).retval
                theirs = kobj.program(name).test_run(packet).retval
                count_comparison()
                assert _s32(ours) == _s32(theirs), (name, _s32(ours), _s32(theirs))
                out.append(_s32(theirs))
            return out
    finally:
        obj.close()


def _verdicts(body: str):
    return verdicts(_obj({"prog": body}))


def _expire(port: int, zone: int) -> str:
    """A program body that sets the timeout of port's entry to 0 (removing it)."""
    return f"TUPLE({port}) OPTS({zone}) struct nf_conn *c = " \
           "bpf_skb_ct_lookup(skb, &t, sizeof(t.ipv4), &o, sizeof(o)); if (!c) return o.error; " \
           "bpf_ct_change_timeout(c, 0); bpf_ct_release(c); return 0;"


# --- lookups and opts ---------------------------------------------------------------

@pytest.mark.parametrize("opts_sz", ["sizeof(o)", "12"])
def test_a_lookup_of_a_tuple_not_in_the_table_fails_with_enoent(opts_sz):
    assert same_runs({"prog": f"""TUPLE(1001) OPTS(0)
struct nf_conn *c = bpf_skb_ct_lookup(skb, &t, sizeof(t.ipv4), &o, {opts_sz});
if (c) {{ bpf_ct_release(c); return 1; }}
return o.error;"""}) == [ENOENT]


BAD_OPTS = [
    ("opts__sz 8", "", "8", "sizeof(t.ipv4)", EINVAL),
    ("opts__sz 13", "", "13", "sizeof(t.ipv4)", EINVAL),
    ("reserved byte set", "o.reserved[1] = 1;", "sizeof(o)", "sizeof(t.ipv4)", EINVAL),
    ("zone id in the 12-byte opts", "o.ct_zone_id = 7;", "12", "sizeof(t.ipv4)", EINVAL),
    ("l4proto ICMP", "o.l4proto = IPPROTO_ICMP;", "sizeof(o)", "sizeof(t.ipv4)",
     -isa.Errno.EPROTO),
    ("netns_id -2", "o.netns_id = -2;", "sizeof(o)", "sizeof(t.ipv4)", EINVAL),
    ("netns_id 0: no such namespace", "o.netns_id = 0;", "sizeof(o)", "sizeof(t.ipv4)",
     -isa.Errno.ENONET),
    ("tuple__sz 13", "", "sizeof(o)", "13", -isa.Errno.EAFNOSUPPORT),
    ("ICMP and netns_id -2", "o.l4proto = IPPROTO_ICMP; o.netns_id = -2;", "sizeof(o)",
     "sizeof(t.ipv4)", None),
]


@pytest.mark.parametrize("kfunc", ["bpf_skb_ct_lookup", "bpf_skb_ct_alloc"])
@pytest.mark.parametrize("why, change, opts_sz, tuple_sz, errno", BAD_OPTS,
                         ids=[b[0] for b in BAD_OPTS])
def test_bad_opts_or_tuples_fail_with_the_kernels_errno(kfunc, why, change, opts_sz,
                                                        tuple_sz, errno):
    if kfunc == "bpf_skb_ct_lookup":
        call = "struct nf_conn *c = bpf_skb_ct_lookup"
        found = "bpf_ct_release(c);"
    else:
        call = "struct nf_conn___init *c = bpf_skb_ct_alloc"
        found = "bpf_ct_set_timeout(c, 0); struct nf_conn *d = bpf_ct_insert_entry(c); " \
                "if (d) bpf_ct_release(d);"
    got = same_runs({"prog": f"""TUPLE(1002) OPTS(0) {change}
{call}(skb, &t, {tuple_sz}, &o, {opts_sz});
if (c) {{ {found} return 1; }}
return o.error;"""})
    if errno is not None:
        assert got == [errno]
    else:
        # the lookup checks the protocol first, the allocation the namespace id
        assert got == [-isa.Errno.EPROTO if kfunc == "bpf_skb_ct_lookup" else EINVAL]


# --- entries: inserted, found, read -------------------------------------------------

def test_an_entry_inserted_by_one_run_is_found_by_a_later_one_in_both_directions():
    port, zone = 1003, 4203
    assert same_runs({
        "insert": f"TUPLE({port}) OPTS({zone}) ALLOC() bpf_ct_set_timeout(n, 5000); INSERT() "
                  "bpf_ct_release(c); return 0;",
        "lookup": f"TUPLE({port}) OPTS({zone}) struct nf_conn *c = "
                  "bpf_skb_ct_lookup(skb, &t, sizeof(t.ipv4), &o, sizeof(o)); "
                  "if (!c) return o.error; bpf_ct_release(c); return 100 + o.dir;",
        "reply": f"TUPLE({port}) OPTS({zone}) struct bpf_sock_tuple r = {{}}; "
                 "r.ipv4.saddr = t.ipv4.daddr; r.ipv4.daddr = t.ipv4.saddr; "
                 "r.ipv4.sport = t.ipv4.dport; r.ipv4.dport = t.ipv4.sport; "
                 "struct nf_conn *c = bpf_skb_ct_lookup(skb, &r, sizeof(r.ipv4), &o, sizeof(o)); "
                 "if (!c) return o.error; bpf_ct_release(c); return 100 + o.dir;",
        "other_zone": f"TUPLE({port}) OPTS({zone + 1}) struct nf_conn *c = "
                      "bpf_skb_ct_lookup(skb, &t, sizeof(t.ipv4), &o, sizeof(o)); "
                      "if (!c) return o.error; bpf_ct_release(c); return 1;",
        "expire": _expire(port, zone),
        "after": f"TUPLE({port}) OPTS({zone}) struct nf_conn *c = "
                 "bpf_skb_ct_lookup(skb, &t, sizeof(t.ipv4), &o, sizeof(o)); "
                 "if (!c) return o.error; bpf_ct_release(c); return 2;",
    }) == [0, 100, 101, ENOENT, 0, ENOENT]


FIELDS = [
    ("status after insert", "c->status", isa.IPS_CONFIRMED),
    ("mark", "c->mark", 0),
    ("zone id", "c->zone.id", 4204),
    ("zone dir: 0 asks for the default", "c->zone.dir", isa.NF_CT_DEFAULT_ZONE_DIR),
    ("original sport", "bpf_ntohs(c->tuplehash[0].tuple.src.u.all)", 1004),
    ("reply dport", "bpf_ntohs(c->tuplehash[1].tuple.dst.u.all)", 1004),
    ("reply saddr", "bpf_ntohl(c->tuplehash[1].tuple.src.u3.ip)", 0x0A630002),
    ("l3num", "c->tuplehash[0].tuple.src.l3num", 2),
    ("protonum", "c->tuplehash[1].tuple.dst.protonum", 6),
    ("reply dir", "c->tuplehash[1].tuple.dst.dir", 1),
    ("timeout: 10 s in jiffies", "c->timeout - (__u32)bpf_jiffies64()",
     isa.NF_CT_ALLOC_TIMEOUT * isa.HZ),
]


@pytest.mark.parametrize("why, expr, want", FIELDS, ids=[f[0] for f in FIELDS])
def test_an_inserted_entrys_fields_read_as_in_the_kernel(why, expr, want):
    assert same_runs({
        "prog": f"TUPLE(1004) OPTS(4204) ALLOC() INSERT() int r = {expr}; "
                "bpf_ct_change_timeout(c, 0); bpf_ct_release(c); return r;"}) == [want]


def test_a_program_writes_an_entrys_mark_and_a_later_run_reads_it():
    port, zone = 1005, 4205
    assert same_runs({
        "insert": f"TUPLE({port}) OPTS({zone}) ALLOC() ((struct nf_conn *)n)->mark = 7; "
                  "INSERT() c->mark += 35; bpf_ct_release(c); return 0;",
        "read": f"TUPLE({port}) OPTS({zone}) struct nf_conn *c = "
                "bpf_skb_ct_lookup(skb, &t, sizeof(t.ipv4), &o, sizeof(o)); "
                "if (!c) return o.error; int r = c->mark; bpf_ct_change_timeout(c, 0); "
                "bpf_ct_release(c); return r;",
    }) == [0, 42]


def test_inserting_a_tuple_already_in_the_table_fails():
    assert same_runs({"prog": """TUPLE(1006) OPTS(4206) ALLOC() INSERT()
struct nf_conn___init *m = bpf_skb_ct_alloc(skb, &t, sizeof(t.ipv4), &o, sizeof(o));
if (!m) { bpf_ct_release(c); return o.error; }
struct nf_conn *d = bpf_ct_insert_entry(m);
int r = d ? 1 : 2;
if (d) bpf_ct_release(d);
bpf_ct_change_timeout(c, 0);
bpf_ct_release(c);
return r;"""}) == [2]


def test_an_entry_whose_timeout_passed_is_gone():
    port, zone = 1007, 4207
    assert same_runs({
        "insert": f"TUPLE({port}) OPTS({zone}) ALLOC() bpf_ct_set_timeout(n, 0); INSERT() "
                  "bpf_ct_release(c); return 0;",
        "lookup": f"TUPLE({port}) OPTS({zone}) struct nf_conn *c = "
                  "bpf_skb_ct_lookup(skb, &t, sizeof(t.ipv4), &o, sizeof(o)); "
                  "if (!c) return o.error; bpf_ct_release(c); return 1;",
    }) == [0, ENOENT]


# --- timeouts and status ------------------------------------------------------------

@pytest.mark.parametrize("msecs, jiffies", [(0, 0), (7, 2), (1000, 250), (4000, 1000),
                                            (0x7FFFFFFF, 0x20000000),
                                            (0x80000000, 0x7FFFFFFF)])
def test_bpf_ct_set_timeout_takes_msecs_as_whole_ticks(msecs, jiffies):
    assert same_runs({
        "prog": f"TUPLE(1008) OPTS(4208) ALLOC() bpf_ct_set_timeout(n, {msecs}u); INSERT() "
                "int r = c->timeout - (__u32)bpf_jiffies64(); bpf_ct_change_timeout(c, 0); "
                "bpf_ct_release(c); return r;"}) == [jiffies]


def test_bpf_ct_change_timeout_counts_from_now():
    assert same_runs({
        "prog": "TUPLE(1009) OPTS(4209) ALLOC() INSERT() int e = bpf_ct_change_timeout(c, 4000); "
                "int r = c->timeout - (__u32)bpf_jiffies64(); bpf_ct_change_timeout(c, 0); "
                "bpf_ct_release(c); return e * 65536 + r;"}) == [1000]


# status values: (value, set before insertion: errno, status after insertion)
SET_STATUS = [(0, 0, 8), (2, 0, 10), (6, 0, 14), (1 << 10, 0, 8 | 1 << 10),
              (1 << 13, 0, 8 | 1 << 13), (1 << 4, 0, 8), (1 << 6 | 1 << 15, 0, 8),
              (1, -isa.Errno.EBUSY, 8), (8, -isa.Errno.EBUSY, 8),
              (1 << 9, -isa.Errno.EBUSY, 8)]


@pytest.mark.parametrize("value, errno, status", SET_STATUS)
def test_bpf_ct_set_status_sets_only_the_changeable_bits(value, errno, status):
    # a port per case: an entry with IPS_FIXED_TIMEOUT whose timeout passed keeps its
    # tuple out of the kernel's table until the garbage collector comes by
    port = 1100 + SET_STATUS.index((value, errno, status))
    assert same_runs({
        "prog": f"TUPLE({port}) OPTS(4210) ALLOC() int e = bpf_ct_set_status(n, {value}); "
                "INSERT() int r = c->status; bpf_ct_change_timeout(c, 0); bpf_ct_release(c); "
                "return e * 65536 + r;"}) == [errno * 65536 + status]


# from SEEN_REPLY | ASSURED | CONFIRMED (14): (value, errno, status)
CHANGE_STATUS = [(14, 0, 14), (14 | 1 << 10, 0, 14 | 1 << 10), (10, -isa.Errno.EBUSY, 14),
                 (12, -isa.Errno.EBUSY, 14), (6, -isa.Errno.EBUSY, 14),
                 (15, -isa.Errno.EBUSY, 14), (14 | 1 << 5, 0, 14)]


@pytest.mark.parametrize("value, errno, status", CHANGE_STATUS)
def test_bpf_ct_change_status_never_clears_seen_reply_or_assured(value, errno, status):
    port = 1120 + CHANGE_STATUS.index((value, errno, status))
    assert same_runs({
        "prog": f"TUPLE({port}) OPTS(4211) ALLOC() bpf_ct_set_status(n, 6); INSERT() "
                f"int e = bpf_ct_change_status(c, {value}); int r = c->status; "
                "bpf_ct_change_timeout(c, 0); bpf_ct_release(c); return e * 65536 + r;"
    }) == [errno * 65536 + status]


# --- NAT ----------------------------------------------------------------------------

NAT = [
    ("SNAT status", 0, 4321, "c->status", 8 | isa.IPS_SRC_NAT | isa.IPS_SRC_NAT_DONE),
    ("DNAT status", 1, 4321, "c->status", 8 | isa.IPS_DST_NAT | isa.IPS_DST_NAT_DONE),
    ("SNAT reply daddr", 0, 4321, "bpf_ntohl(c->tuplehash[1].tuple.dst.u3.ip)",
     _s32(0xC0A80001)),
    ("SNAT reply dport", 0, 4321, "bpf_ntohs(c->tuplehash[1].tuple.dst.u.all)", 4321),
    ("SNAT without a port keeps it", 0, 0, "bpf_ntohs(c->tuplehash[1].tuple.dst.u.all)",
     1012),
    ("DNAT reply saddr", 1, -1, "bpf_ntohl(c->tuplehash[1].tuple.src.u3.ip)",
     _s32(0xC0A80001)),
    ("DNAT reply sport", 1, 8080, "bpf_ntohs(c->tuplehash[1].tuple.src.u.all)", 8080),
    ("the original tuple stays", 1, 8080, "bpf_ntohs(c->tuplehash[0].tuple.dst.u.all)", 80),
    ("a bad manip type", 2, 1, "c->status", -isa.Errno.EINVAL * 65536 + 8),
]


@pytest.mark.parametrize("why, manip, port, expr, want", NAT, ids=[n[0] for n in NAT])
def test_bpf_ct_set_nat_info_rewrites_the_reply_tuple(why, manip, port, expr, want):
    assert same_runs({
        "prog": "TUPLE(1012) OPTS(4212) ALLOC() union nf_inet_addr a = {}; "
                f"a.ip = bpf_htonl(0xc0a80001); int e = bpf_ct_set_nat_info(n, &a, {port}, {manip}); "
                f"INSERT() int r = {expr}; bpf_ct_change_timeout(c, 0); bpf_ct_release(c); "
                "return e * 65536 + r;"}) == [want]


# --- the verifier -------------------------------------------------------------------

LOOKUP = "TUPLE(1013) OPTS(0) struct nf_conn *c = " \
    "bpf_skb_ct_lookup(skb, &t, sizeof(t.ipv4), &o, sizeof(o));"
REFUSED = [
    ("a looked-up entry never released", LOOKUP + "return c != 0;",
     "BPF_EXIT instruction in main prog would lead to reference leak"),
    ("an allocated entry never inserted", "TUPLE(1013) OPTS(0) ALLOC() return 0;",
     "BPF_EXIT instruction in main prog would lead to reference leak"),
    ("a release before the NULL check", LOOKUP + "bpf_ct_release(c); return 0;",
     "Possibly NULL pointer passed to trusted arg0"),
    ("a release of NULL", "bpf_ct_release(0); return 0;",
     "Possibly NULL pointer passed to trusted arg0"),
    ("a read after the release", LOOKUP + "if (!c) return 0; bpf_ct_release(c); return c->mark;",
     "invalid mem access 'scalar'"),
    ("a second release", LOOKUP + "if (!c) return 0; bpf_ct_release(c); bpf_ct_release(c); "
     "return 0;", "arg#0 pointer type STRUCT nf_conn must point to scalar, or struct with scalar"),
    ("an allocated entry released", "TUPLE(1013) OPTS(0) ALLOC() "
     "bpf_ct_release((struct nf_conn *)n); return 0;",
     "kernel function bpf_ct_release args#0 expected pointer to STRUCT nf_conn but R1 has a "
     "pointer to STRUCT nf_conn___init"),
    ("an inserted entry given a first timeout", "TUPLE(1013) OPTS(0) ALLOC() INSERT() "
     "bpf_ct_set_timeout((struct nf_conn___init *)c, 5); bpf_ct_release(c); return 0;",
     "kernel function bpf_ct_set_timeout args#0 expected pointer to STRUCT nf_conn___init but "
     "R1 has a pointer to STRUCT nf_conn"),
    ("a NULL NAT address", "TUPLE(1013) OPTS(0) ALLOC() int e = bpf_ct_set_nat_info(n, 0, 1, 0);"
     " INSERT() bpf_ct_release(c); return e;", "Possibly NULL pointer passed to trusted arg1"),
    ("a tuple longer than its memory", "TUPLE(1013) OPTS(0) struct nf_conn *c = "
     "bpf_skb_ct_lookup(skb, &t, sizeof(t) + 1, &o, sizeof(o)); if (c) bpf_ct_release(c); "
     "return 0;", "arg#1 arg#2 memory, len pair leads to invalid memory access"),
    ("a write to status", "TUPLE(1013) OPTS(0) ALLOC() INSERT() c->status = 1; "
     "bpf_ct_release(c); return 0;", "no write support to nf_conn at off 128"),
    ("a write inside mark", "TUPLE(1013) OPTS(0) ALLOC() INSERT() "
     "*(volatile __u8 *)((char *)&c->mark + 1) = 7; bpf_ct_release(c); return 0;",
     "no write support to nf_conn at off 169"),
    ("a write past mark", "TUPLE(1013) OPTS(0) ALLOC() INSERT() "
     "*(volatile __u64 *)&c->mark = 7; bpf_ct_release(c); return 0;",
     "write access at off 168 with size 8 beyond the member of nf_conn ended at 172"),
    ("a read past the struct", "TUPLE(1013) OPTS(0) ALLOC() INSERT() "
     "int r = *(volatile int *)((char *)c + 248); bpf_ct_release(c); return r;",
     "access beyond struct nf_conn at off 248 size 4"),
]


@pytest.mark.parametrize("why, body, message", REFUSED, ids=[r[0] for r in REFUSED])
def test_the_verifier_refuses_as_the_kernel_does(why, body, message):
    ours, theirs = _verdicts(body)
    assert theirs is not None and message in theirs, theirs
    assert ours is not None and theirs in ours, (ours, theirs)


def test_a_write_to_mark_loads_as_in_the_kernel():
    ours, theirs = _verdicts("TUPLE(1013) OPTS(0) ALLOC() INSERT() c->mark = 3; "
                             "bpf_ct_change_timeout(c, 0); bpf_ct_release(c); return 0;")
    assert ours is None and theirs is None, (ours, theirs)


# --- the model's own ------------------------------------------------------------------

def test_each_environment_has_its_own_table_and_entries_expire_on_the_modelled_clock():
    data = _obj({
        "insert": "TUPLE(1014) OPTS(0) ALLOC() bpf_ct_set_timeout(n, 1000); INSERT() "
                  "bpf_ct_release(c); return 0;",
        "lookup": "TUPLE(1014) OPTS(0) struct nf_conn *c = "
                  "bpf_skb_ct_lookup(skb, &t, sizeof(t.ipv4), &o, sizeof(o)); "
                  "if (!c) return o.error; bpf_ct_release(c); return 1;"})
    one, two = pyebpf.Environment(), pyebpf.Environment()
    t0 = 10 ** 12

    def run(env, name, ktime):
        obj = pyebpf.load(data, env=env)
        try:
            return _s32(obj.program(name).run(PACKET, ktime=ktime).retval)
        finally:
            obj.close()
    assert run(one, "insert", t0) == 0
    assert run(one, "lookup", t0 + 999_000_000) == 1
    assert run(one, "lookup", t0 + 1_000_000_000) == ENOENT
    assert run(two, "lookup", t0) == ENOENT
