"""The base helpers every skb program type gets (``bpf_base_func_proto``): number
parsing (``bpf_strtol``, ``bpf_strtoul``), ``bpf_strncmp`` and ``bpf_snprintf`` on
constant strings in ``.rodata``, ``bpf_trace_vprintk`` (``bpf_printk`` with more than three
arguments), the clocks besides ``bpf_ktime_get_ns`` and ``bpf_get_numa_node_id``, in
the shapes C programs use them, against the kernel: retvals, the bytes written into
the packet, load verdicts."""
import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from bpfc import compile_object
from objdiff import same_packet, same_retval, verdicts

PACKET = bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2) /
               bytes(64))
OUT = 42                          # where programs store what they found (UDP payload)


def c_bytes(data: bytes) -> str:
    return "{" + ", ".join(str(b) for b in data) + "}" if data else "{0}"


STRTOX = r"""
SEC("tc") int prog(struct __sk_buff *skb)
{
    char buf[%(cap)d] = %(init)s;
    %(type)s res = 0x5555;
    long n = bpf_%(fn)s(buf, %(len)d, %(flags)d, &res);
    bpf_skb_store_bytes(skb, 42, &res, sizeof(res), 0);
    return n;
}
"""

# text, flags
NUMBERS = [
    (b"123", 10), (b"  -42xyz", 0), (b"0x1f", 0), (b"0X1F", 16), (b"0x", 16),
    (b"0x", 0), (b"0777", 0), (b"089", 0), (b"-", 10), (b"   ", 10), (b"abc", 10),
    (b"ff", 16), (b"12", 2), (b"12", 10 | 0x20), (b"9223372036854775807", 10),
    (b"9223372036854775808", 10), (b"-9223372036854775808", 10),
    (b"-9223372036854775809", 10), (b"18446744073709551615", 10),
    (b"18446744073709551616", 10), (b"\xa012", 10), (b"\t\n+5", 10), (b"-0", 10),
    (b"0" * 70 + b"7", 10), (b"1\x002", 10),
]


@pytest.mark.parametrize("fn, ctype", [("strtol", "long"), ("strtoul", "unsigned long")])
@pytest.mark.parametrize("text, flags", NUMBERS,
                         ids=[f"{t[:12]!r}-{f:#x}" for t, f in NUMBERS])
def test_strtol_and_strtoul_parse_as_the_kernel_parses(fn, ctype, text, flags):
    source = STRTOX % {"cap": len(text) + 1, "init": c_bytes(text), "type": ctype,
                       "fn": fn, "len": len(text), "flags": flags}
    same_packet(compile_object(source), PACKET)


def test_strtol_reads_only_buf_len_bytes():
    source = STRTOX % {"cap": 8, "init": c_bytes(b"12345"), "type": "long",
                       "fn": "strtol", "len": 3, "flags": 10}
    retval, data = same_packet(compile_object(source), PACKET)
    assert retval == 3 and int.from_bytes(data[OUT:OUT + 8], "little") == 123


STRNCMP = r"""
static const char want[] = "%(want)s";

SEC("tc") int prog(struct __sk_buff *skb)
{
    char s[16] = %(init)s;
    return bpf_strncmp(s, %(size)d, want) & 0xff;
}
"""


@pytest.mark.parametrize("s, size, want", [
    (b"hello", 6, "hello"), (b"hello", 5, "hellx"), (b"hellz", 6, "hello"),
    (b"hella", 6, "hello"), (b"he", 3, "hello"), (b"hello!", 7, "hello"),
    (b"\xff", 2, "a"), (b"abc", 2, "abd"),
])
def test_strncmp_compares_against_a_constant_string_as_the_kernel_does(s, size, want):
    source = STRNCMP % {"want": want, "init": c_bytes(s), "size": size}
    same_retval(compile_object(source), PACKET)


@pytest.mark.parametrize("decl, message", [
    ("char want[] = \"hello\";", "does not point to a readonly map"),
])
def test_strncmp_refuses_a_string_outside_a_read_only_map(decl, message):
    ours, theirs = verdicts(compile_object(r"""
%s
SEC("tc") int prog(struct __sk_buff *skb)
{
    char s[8] = "hello";
    return bpf_strncmp(s, sizeof(s), want);
}
""" % decl))
    assert theirs is not None and message in theirs, theirs
    assert ours is not None and theirs in ours, (ours, theirs)


def test_strncmp_refuses_a_string_on_the_stack():
    ours, theirs = verdicts(compile_object(r"""
SEC("tc") int prog(struct __sk_buff *skb)
{
    char s[8] = "hello", t[8] = "hello";
    return bpf_strncmp(s, sizeof(s), t);
}
"""))
    assert theirs is not None and "expected=map_value" in theirs, theirs
    assert ours is not None and theirs in ours, (ours, theirs)


SNPRINTF = r"""
SEC("tc") int prog(struct __sk_buff *skb)
{
    char out[%(cap)d] = {};
    char name[8] = "pyebpf";
    __u8 ip[4] = {10, 1, 2, 3};
    long n = BPF_SNPRINTF(out, sizeof(out), "%(fmt)s"%(args)s);
    bpf_skb_store_bytes(skb, 42, out, sizeof(out), 0);
    return n;
}
"""


@pytest.mark.parametrize("fmt, args, cap", [
    ("plain", "", 16),
    ("x=%%d y=%%u z=%%x", ", -5, 7, 0xbeef", 32),
    ("%%s!", ", name", 16),
    ("%%08llx|%%-4d|", ", 0x1234ULL, 9", 24),
    ("truncated %%d", ", 123456", 8),
    ("%%c%%c%%c", ", 'a', 'b', 'c'", 8),
    ("%%d %%d %%d %%d %%d %%d", ", 1, 2, 3, 4, 5, 6", 32),
    ("%%pI4 %%pi4", ", ip, ip", 40),
])
def test_snprintf_writes_and_counts_as_the_kernel_does(fmt, args, cap):
    source = SNPRINTF % {"cap": cap, "fmt": fmt, "args": args}
    same_packet(compile_object(source.replace("%%", "%")), PACKET)


def test_snprintf_with_no_buffer_returns_the_length_it_needs():
    same_retval(compile_object(r"""
SEC("tc") int prog(struct __sk_buff *skb)
{
    static const char fmt[] = "len=%u";
    __u64 args[] = { skb->len };
    return bpf_snprintf(0, 0, fmt, args, sizeof(args));
}
"""), PACKET)


@pytest.mark.parametrize("fmt, nargs", [("%d %d", 1), ("%q", 1), ("%pZ", 1), ("%sx", 1)])
def test_snprintf_refuses_a_bad_format_at_load_as_the_kernel_does(fmt, nargs):
    ours, theirs = verdicts(compile_object(r"""
SEC("tc") int prog(struct __sk_buff *skb)
{
    static const char fmt[] = "%s";
    __u64 args[%d] = {0};
    char out[16];
    return bpf_snprintf(out, sizeof(out), fmt, args, sizeof(args));
}
""" % (fmt, nargs)))
    assert theirs is not None and "Invalid format string" in theirs, theirs
    assert ours is not None and theirs in ours, (ours, theirs)


def test_printk_with_more_than_three_arguments_is_trace_vprintk_and_returns_the_length():
    retval = same_retval(compile_object(r"""
SEC("tc") int prog(struct __sk_buff *skb)
{
    return bpf_printk("%d %d %d %d %s", 1, 2, 3, skb->len, "end");
}
"""), PACKET)
    assert retval == len(f"1 2 3 {len(PACKET)} end")


def test_trace_vprintk_refuses_a_data_length_that_is_not_whole_u64s():
    same_retval(compile_object(r"""
SEC("tc") int prog(struct __sk_buff *skb)
{
    static const char fmt[] = "%d";
    __u64 args[2] = {1, 2};
    return bpf_trace_vprintk(fmt, sizeof(fmt), args, 12);
}
"""), PACKET)


def test_clocks_and_the_numa_node_relate_as_in_the_kernel():
    """boot >= monotonic, coarse at most a few ticks behind it, TAI a wall clock
    (after 2020), jiffies64 counting ticks since boot from INITIAL_JIFFIES (HZ 250),
    one NUMA node: each fact is one bit of the retval."""
    retval = same_retval(compile_object(r"""
#define TICK 4000000ULL
#define INITIAL_JIFFIES 4294892296ULL
SEC("tc") int prog(struct __sk_buff *skb)
{
    __u64 t0 = bpf_ktime_get_ns();
    __u64 boot = bpf_ktime_get_boot_ns();
    __u64 coarse = bpf_ktime_get_coarse_ns();
    __u64 tai = bpf_ktime_get_tai_ns();
    __u64 jiffies = bpf_jiffies64();
    __u64 t1 = bpf_ktime_get_ns();
    __u64 ticks_ns = (jiffies - INITIAL_JIFFIES) * TICK;
    int bits = 0;
    bits |= boot >= t0;
    bits |= (coarse <= t1 && t1 - coarse < 3 * TICK) << 1;
    bits |= (tai - t1 > 1577836800000000000ULL) << 2;
    bits |= (ticks_ns < t1 + 2000000000ULL && t1 < ticks_ns + 2000000000ULL) << 3;
    bits |= (bpf_get_numa_node_id() == 0) << 4;
    return bits;
}
"""), PACKET)
    assert retval == 0b11111
