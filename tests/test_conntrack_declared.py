"""Conntrack entries an Environment declares (``Environment(conntrack=...)``, the TOML's
``[[conntrack]]``): the table starts holding them, and the conntrack kfuncs find them
as the kernel finds the same entries.

The kernel side inserts each declared entry into the machine's table with a program
(pyebpf.kernel.conntrack: ``bpf_skb_ct_alloc``, ``bpf_ct_set_status``,
``bpf_ct_set_nat_info``, the mark, ``bpf_ct_set_timeout``, ``bpf_ct_insert_entry``: what
``conntrack -I`` does, which this machine does not have), then the same lookup programs
run in the kernel and in pyebpf (loaded with the Environment).  Each test uses ports of
its own and a last program removes its entries from the kernel's table (timeout 0).
``tcsim --kernel-check`` gives the kernel the entries ``--env`` declares the same way.
"""
from __future__ import annotations

import ipaddress
import json

import pytest
from scapy.all import IP, UDP, Ether

import pyebpf
from pyebpf import KTIME_START, isa
from pyebpf.environment import Conntrack, Environment, EnvironmentSpecError
from pyebpf.kernel import conntrack as kernel_conntrack
from pyebpf.kernel.conntrack import declared
from pyebpf.pcap import pcapio, tcsim
from pyebpf.pcap.report import read_line

from bpfc import compile_object
from recorded_kernel import count_comparison
from test_conntrack import DECLS, LICENSE, _s32

PACKET = bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2) /
               (b"\x07" * 40))
ENOENT = -isa.Errno.ENOENT
# pyebpf's runs read the modelled clock just after its start, as the kernel's lookups
# follow its insertions within milliseconds
NEAR_START = KTIME_START + 1000
PROTO = {"tcp": "IPPROTO_TCP", "udp": "IPPROTO_UDP"}
HELPERS = r"""
#define TUPLE4(name, sa, da, sp, dp) struct bpf_sock_tuple name = {};                \
    name.ipv4.saddr = bpf_htonl(sa); name.ipv4.daddr = bpf_htonl(da);               \
    name.ipv4.sport = bpf_htons(sp); name.ipv4.dport = bpf_htons(dp);
#define OPTS4(proto, zone, zdir) struct bpf_ct_opts o = { .netns_id = -1,           \
    .l4proto = (proto), .ct_zone_id = (zone), .ct_zone_dir = (zdir) };
#define LOOKUP(t) struct nf_conn *c =                                                \
    bpf_skb_ct_lookup(skb, &t, sizeof(t.ipv4), &o, sizeof(o)); if (!c) return o.error;
"""


def _ip(text: str) -> int:
    return int.from_bytes(ipaddress.ip_address(text).packed, "big")


def _tuple(name, ends) -> str:
    (s, sp), (d, dp) = ends
    return f"TUPLE4({name}, {_ip(str(s)):#x}, {_ip(str(d)):#x}, {sp}, {dp})"


def _obj(programs: dict) -> bytes:
    src = DECLS + HELPERS + "".join(
        f'SEC("tc") int {name}(struct __sk_buff *skb) {{ {body} }}\n'
        for name, body in programs.items())
    return compile_object(src + LICENSE)


def declared_runs(entries, programs: dict) -> list[int]:
    """Insert ``entries`` in the kernel (pyebpf.kernel.conntrack.declared, which takes
    them out again), run ``programs`` (name -> body) once each in order in the kernel and
    in pyebpf given Environment(conntrack=entries), require the same retvals and return
    them."""
    data = _obj(programs)
    obj = pyebpf.load(data, env=Environment(conntrack=tuple(entries)))
    try:
        with pyebpf.kernel.load_object(data) as kobj, declared(entries):
            out = []
            for name in programs:
                ours = _s32(obj.program(name).run(PACKET, ktime=NEAR_START).retval)
                theirs = _s32(kobj.program(name).test_run(PACKET).retval)
                count_comparison()
                assert ours == theirs, (name, ours, theirs)
                out.append(theirs)
            return out
    finally:
        obj.close()


def lookup(c: Conntrack, ends=None, zone=None, zone_dir=None, then="return 100 + o.dir;"):
    """A program looking ``ends`` (default c's original tuple) up in c's zone."""
    return (f"{_tuple('t', ends or c.tuples()[0])} OPTS4({PROTO[c.protocol]}, "
            f"{c.zone if zone is None else zone}, {c.zone_dir if zone_dir is None else zone_dir}) "
            f"LOOKUP(t) {then.replace('return', 'int r =', 1).rstrip(';')}; "
            "bpf_ct_release(c); return r;")


def _reverse(ends):
    return ends[1], ends[0]


ENTRY = Conntrack("tcp", "10.99.1.1:2001", "10.99.1.2:80", timeout=300, zone=4301,
                  status=("SEEN_REPLY", "ASSURED"), mark=0x42)


# --- found as the kernel finds them -----------------------------------------------------

def test_a_declared_entry_is_found_by_its_original_and_its_reply_tuple():
    orig = ENTRY.tuples()[0]
    assert declared_runs([ENTRY], {
        "original": lookup(ENTRY),
        "reply": lookup(ENTRY, _reverse(orig)),
        "other_zone": lookup(ENTRY, zone=ENTRY.zone + 1),
        "other_port": lookup(ENTRY, ((orig[0][0], 2002), orig[1])),
    }) == [100, 101, ENOENT, ENOENT]


FIELDS = [
    ("status: CONFIRMED and the declared bits", "c->status",
     isa.IPS_CONFIRMED | isa.IPS_SEEN_REPLY | isa.IPS_ASSURED),
    ("mark", "c->mark", 0x42),
    ("zone id", "c->zone.id", 4301),
    ("zone dir", "c->zone.dir", 3),
    ("reply saddr", "bpf_ntohl(c->tuplehash[1].tuple.src.u3.ip)", 0x0A630102),
    ("reply sport", "bpf_ntohs(c->tuplehash[1].tuple.src.u.all)", 80),
    ("reply dport", "bpf_ntohs(c->tuplehash[1].tuple.dst.u.all)", 2001),
    ("protonum", "c->tuplehash[0].tuple.dst.protonum", 6),
    ("l3num", "c->tuplehash[1].tuple.src.l3num", 2),
    ("reply dir", "c->tuplehash[1].tuple.dst.dir", 1),
    # whole seconds: a tick may pass between the kernel's insertion and its lookup
    ("timeout: seconds left", "(c->timeout - (__u32)bpf_jiffies64() + 125) / 250", 300),
]


@pytest.mark.parametrize("why, expr, want", FIELDS, ids=[f[0] for f in FIELDS])
def test_a_declared_entrys_fields_read_as_the_kernels(why, expr, want):
    assert declared_runs([ENTRY], {"read": lookup(ENTRY, then=f"return {expr};")}) == [want]


SNAT = Conntrack("udp", "10.99.2.1:3001", "10.99.2.2:53", timeout=60,
                 reply_dst="192.168.0.1:4001")
DNAT = Conntrack("udp", "10.99.2.1:3002", "10.99.2.3:53", timeout=60,
                 reply_src="192.168.0.9:5353")
NAT = [
    ("SNAT status", SNAT, "c->status",
     isa.IPS_CONFIRMED | isa.IPS_SRC_NAT | isa.IPS_SRC_NAT_DONE),
    ("SNAT reply daddr", SNAT, "bpf_ntohl(c->tuplehash[1].tuple.dst.u3.ip)", _s32(0xC0A80001)),
    ("SNAT reply dport", SNAT, "bpf_ntohs(c->tuplehash[1].tuple.dst.u.all)", 4001),
    ("DNAT status", DNAT, "c->status",
     isa.IPS_CONFIRMED | isa.IPS_DST_NAT | isa.IPS_DST_NAT_DONE),
    ("DNAT reply saddr", DNAT, "bpf_ntohl(c->tuplehash[1].tuple.src.u3.ip)", _s32(0xC0A80009)),
    ("DNAT reply sport", DNAT, "bpf_ntohs(c->tuplehash[1].tuple.src.u.all)", 5353),
    ("DNAT original dport stays", DNAT, "bpf_ntohs(c->tuplehash[0].tuple.dst.u.all)", 53),
]


@pytest.mark.parametrize("why, entry, expr, want", NAT, ids=[n[0] for n in NAT])
def test_a_declared_nat_entry_reads_as_the_kernels_nat_entry(why, entry, expr, want):
    assert declared_runs([entry], {"read": lookup(entry, then=f"return {expr};")}) == [want]


def test_a_nat_entry_is_found_by_its_rewritten_reply_tuple_only():
    (src, dst), (rsrc, rdst) = SNAT.tuples()
    assert declared_runs([SNAT], {
        "rewritten": lookup(SNAT, (rsrc, rdst)),
        "inverse_of_original": lookup(SNAT, (dst, src)),
    }) == [101, ENOENT]


def test_a_zone_for_the_original_direction_only_leaves_the_reply_in_zone_0():
    entry = Conntrack("tcp", "10.99.3.1:2101", "10.99.3.2:80", timeout=300, zone=4303,
                      zone_dir=1)
    reply = _reverse(entry.tuples()[0])
    assert declared_runs([entry], {
        "original": lookup(entry),
        "reply_zone_0": lookup(entry, reply, zone=0, zone_dir=3),
        "original_zone_0": lookup(entry, zone=0, zone_dir=3),
    }) == [100, 101, ENOENT]


def test_inserting_a_tuple_a_declared_entry_holds_fails():
    orig = ENTRY.tuples()[0]
    assert declared_runs([ENTRY], {
        "insert_again": f"{_tuple('t', orig)} OPTS4(IPPROTO_TCP, {ENTRY.zone}, 3) "
                        "struct nf_conn___init *n = bpf_skb_ct_alloc(skb, &t, sizeof(t.ipv4), "
                        "&o, sizeof(o)); if (!n) return o.error; "
                        "struct nf_conn *c = bpf_ct_insert_entry(n); if (!c) return 2; "
                        "bpf_ct_release(c); return 1;",
    }) == [2]


def test_a_declared_entry_whose_timeout_is_0_is_gone():
    entry = Conntrack("udp", "10.99.4.1:2201", "10.99.4.2:53", timeout=0, zone=4304)
    assert declared_runs([entry], {"lookup": lookup(entry)}) == [ENOENT]


def test_a_program_changes_a_declared_entrys_mark():
    entry = Conntrack("tcp", "10.99.5.1:2301", "10.99.5.2:80", timeout=300, zone=4305,
                      mark=1)
    assert declared_runs([entry], {
        "write": lookup(entry, then="return c->mark += 10;"),
        "read": lookup(entry, then="return c->mark;"),
    }) == [11, 11]


# --- the modelled clock, and the table read back -----------------------------------------

def _model_lookup(env, entry, ktime):
    obj = pyebpf.load(_obj({"lookup": lookup(entry)}), env=env)
    try:
        return _s32(obj.program("lookup").run(PACKET, ktime=ktime).retval)
    finally:
        obj.close()


def test_a_declared_entry_expires_timeout_seconds_after_the_clocks_start():
    entry = Conntrack("udp", "10.99.6.1:2401", "10.99.6.2:53", timeout=30)
    env = Environment(conntrack=(entry,))
    assert _model_lookup(env, entry, KTIME_START + 29_996_000_000) == 100
    assert _model_lookup(env, entry, KTIME_START + 30_000_000_000) == ENOENT


def test_conntrack_table_gives_the_entries_with_the_seconds_left():
    env = Environment(conntrack=(ENTRY, SNAT))
    assert env.conntrack_table(ktime=KTIME_START + 10_000_000_000) == (
        Conntrack("tcp", "10.99.1.1:2001", "10.99.1.2:80", timeout=290, zone=4301,
                  status=("SEEN_REPLY", "ASSURED"), mark=0x42),
        Conntrack("udp", "10.99.2.1:3001", "10.99.2.2:53", timeout=50,
                  reply_dst="192.168.0.1:4001"))
    assert env.conntrack_table(ktime=KTIME_START + 60_000_000_000) == (
        Conntrack("tcp", "10.99.1.1:2001", "10.99.1.2:80", timeout=240, zone=4301,
                  status=("SEEN_REPLY", "ASSURED"), mark=0x42),)


def test_conntrack_table_lists_what_programs_inserted_and_wrote():
    entry = Conntrack("tcp", "10.99.7.1:2501", "10.99.7.2:80", timeout=100)
    env = Environment(conntrack=(entry,))
    obj = pyebpf.load(_obj({"mark": lookup(entry, then="return c->mark = 5;")}), env=env)
    inserts = pyebpf.load(compile_object(kernel_conntrack.source(
        [Conntrack("udp", "10.99.7.3:9", "10.99.7.4:53", timeout=20)])), env=env)
    try:
        obj.program("mark").run(PACKET, ktime=KTIME_START)
        assert inserts.program("insert0").run(PACKET, ktime=KTIME_START).retval == 0
    finally:
        obj.close()
        inserts.close()
    assert env.conntrack_table(ktime=KTIME_START) == (
        Conntrack("tcp", "10.99.7.1:2501", "10.99.7.2:80", timeout=100, mark=5),
        Conntrack("udp", "10.99.7.3:9", "10.99.7.4:53", timeout=20))
    assert Environment(conntrack=(entry,)).conntrack_table(ktime=KTIME_START) == (entry,)


def test_an_ipv6_entry_is_declared_and_read_back():
    entry = Conntrack("udp", "[fd00::1]:53", "[fd00::2]:5353", timeout=9,
                      reply_src="[fd00::9]:53")
    assert Environment(conntrack=(entry,)).conntrack_table(ktime=KTIME_START) == (entry,)


# --- TOML -----------------------------------------------------------------------------

def test_the_toml_declares_the_entries(tmp_path):
    (tmp_path / "net.toml").write_text("""
[[conntrack]]
protocol = "tcp"
src = "10.99.1.1:2001"
dst = "10.99.1.2:80"
timeout = 300
zone = 4301
status = ["SEEN_REPLY", "ASSURED"]
mark = 0x42

[[conntrack]]
protocol = "udp"
src = "10.99.2.1:3001"
dst = "10.99.2.2:53"
reply_dst = "192.168.0.1:4001"
timeout = 60
""")
    assert Environment.from_toml(tmp_path / "net.toml") == Environment(conntrack=(ENTRY, SNAT))


BAD = [
    ('protocol = "sctp"', "net.toml: conntrack[0].protocol: expected \"tcp\" or \"udp\", "
     "got 'sctp'"),
    ('status = ["CONFIRMED"]', "net.toml: conntrack[0].status: 'CONFIRMED' is not one of "
     "SEEN_REPLY, ASSURED, FIXED_TIMEOUT, HELPER (the table sets CONFIRMED and the NAT bits "
     "itself)"),
    ('reply_src = "[fd00::1]:80"', "net.toml: conntrack[0].reply_src: [fd00::1]:80 is not of "
     "the family of src 10.0.0.1:1"),
    ('zone = 70000', "net.toml: conntrack[0].zone: expected an integer in 0..65535, got 70000"),
    ('zone_dir = 0', "net.toml: conntrack[0].zone_dir: expected an integer in 1..3, got 0"),
    ('dst = "10.0.0.2"', "net.toml: conntrack[0].dst: expected ADDRESS:PORT (10.0.0.1:80, "
     "[fd00::1]:80), got '10.0.0.2'"),
    ('timeout = -1', "net.toml: conntrack[0].timeout: expected an integer in 0..8589934, "
     "got -1"),
    ('state = "established"', "net.toml: conntrack[0]: unknown key 'state'; known: protocol, "
     "src, dst, timeout, reply_src, reply_dst, zone, zone_dir, status, mark"),
]


@pytest.mark.parametrize("line, message", BAD, ids=[b[1].split(": ")[1] for b in BAD])
def test_a_bad_entry_is_one_line_naming_its_key(tmp_path, monkeypatch, line, message):
    monkeypatch.chdir(tmp_path)
    keys = {"protocol": '"udp"', "src": '"10.0.0.1:1"', "dst": '"10.0.0.2:2"', "timeout": "5"}
    key = line.split(" = ")[0]
    keys.pop(key, None)
    body = "".join(f"{k} = {v}\n" for k, v in keys.items())
    (tmp_path / "net.toml").write_text(f"[[conntrack]]\n{body}{line}\n")
    with pytest.raises(EnvironmentSpecError) as exc:
        Environment.from_toml("net.toml")
    assert str(exc.value) == message


def test_a_missing_timeout_is_refused(tmp_path):
    (tmp_path / "net.toml").write_text('[[conntrack]]\nprotocol = "udp"\nsrc = "10.0.0.1:1"\n'
                                       'dst = "10.0.0.2:2"\n')
    with pytest.raises(EnvironmentSpecError, match=r"conntrack\[0\]: timeout is required$"):
        Environment.from_toml(tmp_path / "net.toml")


def test_a_tuple_declared_twice_in_a_zone_is_refused():
    with pytest.raises(EnvironmentSpecError) as exc:
        Environment(conntrack=(ENTRY, Conntrack("tcp", "10.99.1.2:80", "10.99.1.1:2001",
                                                timeout=5, zone=4301)))
    assert str(exc.value) == ("Environment: conntrack[1]: the tuple 10.99.1.2:80 -> "
                              "10.99.1.1:2001 is also conntrack[0]'s (the kernel refuses the "
                              "second: EEXIST)")


# --- tcsim ------------------------------------------------------------------------------

# a tc program looking an IPv4 UDP packet's tuple up in zone %d (other packets: OK), then
# going on as the rest says
UDP_LOOKUP = r"""
SEC("tc") int prog(struct __sk_buff *skb)
{
    void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
    struct iphdr *ip = data + 14;
    struct udphdr *udp = (void *)(ip + 1);
    if ((void *)(udp + 1) > end || ip->protocol != IPPROTO_UDP)
        return TC_ACT_OK;
    struct bpf_sock_tuple t = {};
    t.ipv4.saddr = ip->saddr; t.ipv4.daddr = ip->daddr;
    t.ipv4.sport = udp->source; t.ipv4.dport = udp->dest;
    struct bpf_ct_opts o = { .netns_id = -1, .l4proto = IPPROTO_UDP, .ct_zone_id = %d };
    struct nf_conn *c = bpf_skb_ct_lookup(skb, &t, sizeof(t.ipv4), &o, sizeof(o));
%s}
"""
MARK_FOUND = UDP_LOOKUP % (0, r"""    if (c) {
        skb->mark = c->mark;
        c->mark += 1;
        bpf_ct_release(c);
        return TC_ACT_OK;
    }
    struct nf_conn___init *n = bpf_skb_ct_alloc(skb, &t, sizeof(t.ipv4), &o, sizeof(o));
    if (!n)
        return TC_ACT_SHOT;
    bpf_ct_set_timeout(n, 20000);
    c = bpf_ct_insert_entry(n);
    if (c)
        bpf_ct_release(c);
    return TC_ACT_SHOT;
""")


def test_tcsim_env_declares_entries_and_dump_conntrack_writes_the_table_back(tmp_path,
                                                                             capsys):
    (tmp_path / "net.toml").write_text("""
[[conntrack]]
protocol = "udp"
src = "10.0.0.1:1000"
dst = "10.0.0.2:53"
timeout = 60
mark = 7
""")
    obj = tmp_path / "prog.o"
    obj.write_bytes(compile_object(DECLS + "#include <linux/ip.h>\n#include <linux/udp.h>\n"
                                   + MARK_FOUND + LICENSE))
    frames = [Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1000, dport=53),
              Ether() / IP(src="10.0.0.3", dst="10.0.0.2") / UDP(sport=1000, dport=53),
              Ether() / IP(src="10.0.0.2", dst="10.0.0.1") / UDP(sport=53, dport=1000)]
    t0 = 1_700_000_000 * 10 ** 9
    pcapio.write(tmp_path / "in.pcap", [(t0 + k * 5 * 10 ** 9, bytes(f), len(f))
                                       for k, f in enumerate(frames)])
    rc = tcsim.main([str(obj), "-r", str(tmp_path / "in.pcap"), "-q", "--env",
                     str(tmp_path / "net.toml"), "--report", str(tmp_path / "r.jsonl"),
                     "--dump-conntrack", str(tmp_path / "ct.json")])
    assert rc == 0, capsys.readouterr().err
    report = [read_line(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [(r["action"], r["mark"]) for r in report] == \
        [("delivered", 7), ("dropped", 0), ("delivered", 8)]
    dumped = json.loads((tmp_path / "ct.json").read_text())
    # the last packet came 10 s after the first (the clock's start)
    assert dumped == {"conntrack": [
        {"protocol": "udp", "src": "10.0.0.1:1000", "dst": "10.0.0.2:53", "timeout": 50,
         "mark": 9},
        {"protocol": "udp", "src": "10.0.0.3:1000", "dst": "10.0.0.2:53", "timeout": 15}]}
    assert Environment.from_dict(dumped).conntrack[1] == \
        Conntrack("udp", "10.0.0.3:1000", "10.0.0.2:53", timeout=15)


# --- tcsim --kernel-check: the kernel's table holds the declared entries too -------------

MARK_IF_FOUND = UDP_LOOKUP % (4307, r"""
    if (!c)
        return TC_ACT_SHOT;
    skb->mark = c->mark + o.dir;
    bpf_ct_release(c);
    return TC_ACT_OK;
""")
CHECKED_ENTRY = Conntrack("udp", "10.99.8.1:1000", "10.99.8.2:53", timeout=60, zone=4307,
                          mark=7)
CHECKED_TOML = """
[[conntrack]]
protocol = "udp"
src = "10.99.8.1:1000"
dst = "10.99.8.2:53"
timeout = 60
zone = 4307
mark = 7
"""


def _kernel_check(tmp_path, capsys, before=None) -> tuple[int, list[str]]:
    """tcsim --kernel-check of MARK_IF_FOUND over a packet of CHECKED_ENTRY's original
    tuple, one of its reply tuple and one of neither, with CHECKED_TOML as --env
    (``before()`` called first, once the program is compiled)."""
    (tmp_path / "net.toml").write_text(CHECKED_TOML)
    obj = tmp_path / "prog.o"
    obj.write_bytes(compile_object(DECLS + "#include <linux/ip.h>\n#include <linux/udp.h>\n"
                                   + MARK_IF_FOUND + LICENSE))
    frames = [Ether() / IP(src="10.99.8.1", dst="10.99.8.2") / UDP(sport=1000, dport=53),
              Ether() / IP(src="10.99.8.2", dst="10.99.8.1") / UDP(sport=53, dport=1000),
              Ether() / IP(src="10.99.8.3", dst="10.99.8.2") / UDP(sport=1000, dport=53)]
    t0 = 1_700_000_000 * 10 ** 9
    pcapio.write(tmp_path / "in.pcap", [(t0 + k * 10 ** 9, bytes(f), len(f))
                                       for k, f in enumerate(frames)])
    if before is not None:
        before()
    rc = tcsim.main([str(obj), "-r", str(tmp_path / "in.pcap"), "-q", "--env",
                     str(tmp_path / "net.toml"), "--kernel-check"])
    return rc, capsys.readouterr().err.strip().splitlines()


def test_kernel_check_gives_the_kernel_the_declared_entries_and_agrees(tmp_path, capsys,
                                                                       live_kernel):
    rc, err = _kernel_check(tmp_path, capsys)
    assert (rc, err) == (0, ["tcsim: kernel-check: 3 packets compared, 0 disagreed; "
                             "maps agreed"])
    # and takes them out of the kernel's table afterwards
    assert declared_runs([], {"gone": lookup(CHECKED_ENTRY)}) == [ENOENT]


def test_kernel_check_refuses_in_one_line_when_the_entries_cannot_be_compiled(
        tmp_path, capsys, live_kernel, monkeypatch):
    rc, err = _kernel_check(
        tmp_path, capsys, lambda: monkeypatch.setattr("pyebpf.bpfcc.find_clang", lambda: None))
    assert rc == 1
    assert err == ["tcsim: --kernel-check: cannot give the kernel the declared conntrack "
                   "entries (--env): clang not found (install clang, or set PYEBPF_CLANG)"]


def test_the_kernel_takes_a_declared_ipv6_nat_entry(live_kernel):
    """pyebpf.kernel.conntrack's IPv6 program loads and inserts the entry (declared()
    raises naming the entry where the kernel refuses it)."""
    entry = Conntrack("udp", "[fd00:99::1]:53", "[fd00:99::2]:5353", timeout=9,
                      reply_src="[fd00:99::9]:53", zone=4309)
    with declared([entry]):
        pass
