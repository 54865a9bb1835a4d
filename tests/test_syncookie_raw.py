"""The raw SYN cookie helpers (bpf_tcp_raw_gen_syncookie_ipv4/6,
bpf_tcp_raw_check_syncookie_ipv4/6) against the kernel and against the kernel's formula.
The kernel makes cookies with a secret random per boot, so its cookies cannot be ours:
the comparisons are what does not depend on it (a generated cookie checks, a tampered
one does not, the MSS a cookie encodes, every errno); the exact value is checked
against an independent implementation of net/ipv4/syncookies.c and
net/ipv6/syncookies.c with a known secret."""
from __future__ import annotations

import ipaddress
import struct

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

import pyebpf
from pyebpf import isa
from pyebpf.environment import Environment
from bpfc import TCP_REQSK_DECLS, compile_c, compile_object
from objdiff import refused_alike
from skbdiff import assert_same

CLS = "sched_cls"
PACKET = bytes(Ether(dst="02:00:00:00:00:02") / IP(src="10.0.0.2", dst="10.0.0.1")
               / TCP(sport=4000, dport=80) / (b"p" * 100))
SRC4, DST4 = "10.0.0.2", "192.168.7.1"
SRC6, DST6 = "fd00::2", "fd00:0:0:7::1"
SEQ = 0x01020304


def _bytes_c(raw: bytes) -> str:
    return ", ".join(str(b) for b in raw)


def headers(v6: bool, mss: int | None, *, doff: int | None = None) -> tuple[bytes, bytes]:
    """An IP header and a SYN's TCP header (4000 -> 80, seq SEQ), with an MSS option
    when ``mss`` is given (padded to 24 bytes)."""
    if v6:
        ip = bytes([0x60]) + bytes(7) + ipaddress.ip_address(SRC6).packed \
            + ipaddress.ip_address(DST6).packed
    else:
        ip = bytes([0x45]) + bytes(11) + ipaddress.ip_address(SRC4).packed \
            + ipaddress.ip_address(DST4).packed
    opts = struct.pack(">BBH", 2, 4, mss) if mss is not None else b""
    size = 20 + len(opts)
    th = struct.pack(">HHIIBBHHH", 4000, 80, SEQ, 0, (doff or size // 4) << 4, 0x02, 512, 0,
                     0) + opts
    return ip, th


def raw_prog(v6: bool, mss: int | None = None, *, th_len: int | None = None,
             doff: int | None = None, tamper: int = 0, ack_seq_delta: int = 1,
             seq_delta: int = 1, clock_reads: int = 0) -> bytes:
    """gen on a SYN; a negative answer is returned.  Otherwise the MSS it encodes goes
    over the packet with check's answer for the ACK a client would send (seq + 1,
    ack_seq cookie + 1, the cookie xor ``tamper``), after ``clock_reads`` reads of the
    clock; returns 0."""
    ip, th = headers(v6, mss, doff=doff)
    fam = "ipv6" if v6 else "ipv4"
    return compile_c(f"""
SEC("tc") int cookie(struct __sk_buff *skb) {{
    __u8 iph[40] = {{ {_bytes_c(ip)} }};
    __u8 th[24] = {{ {_bytes_c(th)} }};
    __u8 ack[20] = {{ {_bytes_c(th[:20])} }};
    __u64 o[3] = {{}};
    __s64 r = bpf_tcp_raw_gen_syncookie_{fam}((void *)iph, (void *)th, {th_len if th_len is not None else len(th)});
    if (r < 0)
        return r;
    o[0] = r >> 32;
    __u32 cookie = bpf_htonl(((__u32)r ^ {tamper}u) + {ack_seq_delta});
    __u32 seq = bpf_htonl({SEQ + seq_delta}u);
    __builtin_memcpy(ack + 4, &seq, 4);
    __builtin_memcpy(ack + 8, &cookie, 4);
    ack[12] = 5 << 4;
    ack[13] = 0x10;
    {"bpf_ktime_get_ns(); " * clock_reads}
    o[1] = bpf_tcp_raw_check_syncookie_{fam}((void *)iph, (void *)ack);
    o[2] = 1;
    return bpf_skb_store_bytes(skb, 14, o, sizeof(o), 0);
}}
""")


def outputs(data: bytes) -> tuple[int, int]:
    mss, check, _ = struct.unpack("<QqQ", data[14:38])
    return mss, check


# --- against the kernel -----------------------------------------------------------------

MSS_CASES = {
    "ipv4-no-option": (False, None), "ipv4-mss-1460": (False, 1460),
    "ipv4-mss-1400": (False, 1400), "ipv4-mss-1300": (False, 1300),
    "ipv4-mss-100": (False, 100), "ipv4-mss-9000": (False, 9000),
    "ipv6-no-option": (True, None), "ipv6-mss-1440": (True, 1440),
    "ipv6-mss-1430": (True, 1430), "ipv6-mss-9000": (True, 9000),
    "ipv6-mss-500": (True, 500),
}


@pytest.mark.parametrize("case", MSS_CASES)
def test_a_generated_cookie_checks_and_encodes_the_kernels_mss(case):
    """check(gen(SYN)) is 0 in both, and gen reports the same MSS (the table's largest
    not above the SYN's; 536 or 1220 without an option)."""
    engine, _ = assert_same(raw_prog(*MSS_CASES[case]), CLS, PACKET, {})
    assert engine.retval == 0
    assert outputs(engine.data_out)[1] == 0


@pytest.mark.parametrize("tamper", [4, 0x800000, 0x3000000, 0x80000000])
@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_a_tampered_cookie_is_refused_with_eacces(v6, tamper):
    """A cookie whose MSS index leaves the table (bit 2 set: index 3 becomes 7) or whose
    minute count is not this one or the last."""
    engine, _ = assert_same(raw_prog(v6, 1460, tamper=tamper), CLS, PACKET, {})
    assert outputs(engine.data_out)[1] == -isa.Errno.EACCES


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_a_cookie_one_mss_index_off_still_checks(v6):
    """Only the index's range is checked: an ack_seq one short makes index 3 index 2,
    which passes in both."""
    engine, _ = assert_same(raw_prog(v6, 1460, ack_seq_delta=0), CLS, PACKET, {})
    assert outputs(engine.data_out)[1] == 0


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
@pytest.mark.parametrize("delta", ["seq", "ack_seq"])
def test_an_ack_not_answering_the_syn_is_refused(v6, delta):
    """The ACK's seq - 1 and ack_seq - 1 undo the SYN's seq and the cookie: off by 5 or
    by 8, the MSS index leaves the table."""
    kw = {"seq_delta": 1 + 5} if delta == "seq" else {"ack_seq_delta": 1 + 8}
    engine, _ = assert_same(raw_prog(v6, 1460, **kw), CLS, PACKET, {})
    assert outputs(engine.data_out)[1] == -isa.Errno.EACCES


ERRNO_CASES = {
    "th-len-zero": dict(th_len=0), "th-len-short": dict(th_len=16),
    "th-len-not-doff": dict(th_len=20, mss=1460), "doff-short": dict(doff=4, th_len=20),
    "doff-long": dict(doff=6, th_len=20),
}


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
@pytest.mark.parametrize("case", ERRNO_CASES)
def test_gen_refuses_bad_header_lengths_as_the_kernel_does(v6, case):
    engine, _ = assert_same(raw_prog(v6, **ERRNO_CASES[case]), CLS, PACKET, {})
    assert engine.retval & 0xFFFFFFFF == -isa.Errno.EINVAL & 0xFFFFFFFF


# --- the exact value, against the kernel's formula --------------------------------------

def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & (1 << 64) - 1


def siphash24(key: bytes, data: bytes) -> int:
    """SipHash-2-4 (Aumasson and Bernstein's reference), written here independently."""
    k0, k1 = struct.unpack("<QQ", key)
    v = [k0 ^ 0x736F6D6570736575, k1 ^ 0x646F72616E646F6D, k0 ^ 0x6C7967656E657261,
         k1 ^ 0x7465646279746573]
    mask = (1 << 64) - 1

    def rounds(n):
        for _ in range(n):
            v[0] = (v[0] + v[1]) & mask; v[1] = _rotl(v[1], 13) ^ v[0]; v[0] = _rotl(v[0], 32)
            v[2] = (v[2] + v[3]) & mask; v[3] = _rotl(v[3], 16) ^ v[2]
            v[0] = (v[0] + v[3]) & mask; v[3] = _rotl(v[3], 21) ^ v[0]
            v[2] = (v[2] + v[1]) & mask; v[1] = _rotl(v[1], 17) ^ v[2]; v[2] = _rotl(v[2], 32)
    tail = len(data) % 8
    blocks = [struct.unpack_from("<Q", data, k)[0] for k in range(0, len(data) - tail, 8)]
    blocks.append(int.from_bytes(data[len(data) - tail:], "little") | len(data) % 256 << 56)
    for m in blocks:
        v[3] ^= m
        rounds(2)
        v[0] ^= m
    v[2] ^= 0xFF
    rounds(4)
    return v[0] ^ v[1] ^ v[2] ^ v[3]


def kernel_cookie(secret: bytes, v6: bool, mss: int, ktime: int) -> tuple[int, int]:
    """secure_tcp_syn_cookie / secure_tcp_syn_cookie of ipv6, from their definitions."""
    ip, th = headers(v6, mss)
    sport, dport = th[0:2], th[2:4]
    table = (1220, 1420, 1440, 8940) if v6 else (536, 1300, 1440, 1460)
    index = max(k for k in range(4) if k == 0 or mss >= table[k])
    jiffies = isa.INITIAL_JIFFIES + ktime // isa.TICK_NSEC
    count = jiffies // (60 * isa.HZ)

    def h(c: int, cnt: int) -> int:
        key = secret[16 * c:16 * c + 16]
        if v6:
            data = ip[8:40] + struct.pack("<I", cnt) + sport + dport
        else:
            data = ip[12:20] + (int.from_bytes(sport, "little") << 16
                                | int.from_bytes(dport, "little")).to_bytes(4, "little") \
                + struct.pack("<I", cnt)
        return siphash24(key, data) & 0xFFFFFFFF
    cookie = (h(0, 0) + SEQ + (count << 24) + ((h(1, count) + index) & 0xFFFFFF)) & 0xFFFFFFFF
    return cookie, table[index]


GEN_ONLY = """
SEC("tc") int gen(struct __sk_buff *skb) {
    __u8 iph[40] = { %s };
    __u8 th[24] = { %s };
    __s64 r = bpf_tcp_raw_gen_syncookie_%s((void *)iph, (void *)th, %d);
    return bpf_skb_store_bytes(skb, 14, &r, sizeof(r), 0);
}
"""
SECRET = bytes(range(1, 33))


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
@pytest.mark.parametrize("ktime", [0, 10**9, 3600 * 10**9 + 7])
def test_a_cookie_is_the_kernels_formula_with_the_environments_secret(v6, ktime):
    ip, th = headers(v6, 1440)
    code = compile_c(GEN_ONLY % (_bytes_c(ip), _bytes_c(th), "ipv6" if v6 else "ipv4",
                                 len(th)))
    res = pyebpf.Program(code, CLS).run(PACKET, env=Environment(syncookie_secret=SECRET),
                                        ktime=ktime)
    got = struct.unpack_from("<Q", res.data_out, 14)[0]
    cookie, mss = kernel_cookie(SECRET, v6, 1440, ktime)
    assert got == cookie | mss << 32


@pytest.mark.parametrize("minutes, answer", [(0, 0), (1, 0), (2, -isa.Errno.EACCES)])
def test_a_cookie_checks_for_two_minutes(minutes, answer):
    """MAX_SYNCOOKIE_AGE: the count of the cookie's minute and the next one check."""
    res = pyebpf.Program(raw_prog(False, 1460, clock_reads=1), CLS).run(
        PACKET, ktime=30 * 10**9, ktime_step=minutes * 60 * 10**9)
    assert outputs(res.data_out)[1] == answer


def test_another_secret_makes_another_cookie():
    ip, th = headers(False, 1460)
    code = compile_c(GEN_ONLY % (_bytes_c(ip), _bytes_c(th), "ipv4", len(th)))
    prog = pyebpf.Program(code, CLS)
    a = prog.run(PACKET, env=Environment(syncookie_secret=SECRET)).data_out
    b = prog.run(PACKET, env=Environment(syncookie_secret=bytes(32))).data_out
    assert a[14:18] != b[14:18] and a[18:22] == b[18:22]


def test_a_secret_of_the_wrong_size_is_refused_naming_it():
    with pytest.raises(pyebpf.errors.EbpfError, match="syncookie_secret: expected 32 bytes"):
        Environment(syncookie_secret=bytes(16))


def test_the_secret_loads_from_toml_as_hex(tmp_path):
    path = tmp_path / "net.toml"
    path.write_text(f'syncookie_secret = "{SECRET.hex()}"\n')
    assert Environment.from_toml(path).syncookie_secret == SECRET


# --- bpf_sk_assign_tcp_reqsk: the verifier's refusals -----------------------------------

REQSK = TCP_REQSK_DECLS + r"""SEC("%s") int prog(struct __sk_buff *skb)
{
    struct bpf_tcp_req_attrs a = {};
    return bpf_sk_assign_tcp_reqsk(skb, 0, &a, sizeof(a));
}
"""


@pytest.mark.parametrize("section, message", [
    ("tc", "Possibly NULL pointer passed to trusted arg1"),
    ("socket", "calling kernel function bpf_sk_assign_tcp_reqsk is not allowed"),
], ids=["null-listener", "socket-filter"])
def test_an_assign_of_a_request_socket_is_refused_as_the_kernel_refuses_it(section, message):
    refused_alike(compile_object(REQSK % section, flags=("-O2", "-mcpu=v3")), message)


# rsk_listener shares a union with skc_flags (an unsigned long), the member the
# verifier's BTF walk (btf_struct_walk) takes: a scalar, no pointer
LISTENER_OF_REQUEST = r"""
struct sock_common {
    unsigned short skc_family; struct sock *skc_listener;
} __attribute__((preserve_access_index));
struct request_sock { struct sock_common __req_common; } __attribute__((preserve_access_index));
struct inet_request_sock { struct request_sock req; } __attribute__((preserve_access_index));
struct tcp_request_sock {
    struct inet_request_sock req;
} __attribute__((preserve_access_index));
char LICENSE[] SEC("license") = "GPL";
SEC("tc") int prog(struct __sk_buff *skb)
{
    struct bpf_sock *s = skb->sk;
    if (!s)
        return 0;
    struct tcp_request_sock *rq = bpf_skc_to_tcp_request_sock(s);
    if (!rq)
        return 0;
    return ((struct sock_common *)rq->req.req.__req_common.skc_listener)->skc_family;
}
"""


def test_a_load_through_a_request_sockets_listener_is_refused_as_the_kernel_refuses_it():
    refused_alike(compile_object(LISTENER_OF_REQUEST, flags=("-O2", "-mcpu=v3")),
                  "invalid mem access 'scalar'")
