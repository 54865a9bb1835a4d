"""bpf_snprintf_btf: a tc program prints the packet's Ethernet, IPv4 and TCP headers by
their kernel BTF type ids (bpf_core_type_id_kernel) into a map value, from a copy on
its stack, from the packet itself or from a map value; pyebpf must write the same
bytes and return the same value as the kernel (BPF_PROG_TEST_RUN) under every flag
combination, into a buffer that holds the text and one that cuts it, and give the
kernel's errors for bad flags, sizes, type ids and pointers."""
from __future__ import annotations

import struct

import pytest
from scapy.all import IP, TCP, Ether, raw

import pyebpf
import pyebpf.kernel
from pyebpf import isa

from kprobe_value import run_into_value
from recorded_kernel import count_comparison
from skbdiff import engine_fields
from test_core import _core_object

SOURCE = r"""
/* UAPI (linux/bpf.h); the target BTF pyebpf ships keeps only what tc programs reach */
struct btf_ptr {
    void *ptr;
    __u32 type_id;
    __u32 flags;
};

#define BIG 1024
#define SMALL 40

struct out {
    long ret;
    char text[BIG];
};

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 2);
    __type(key, __u32);
    __type(value, struct out);
} out_map SEC(".maps");

/* what the test asks for, after the TCP header */
struct ask {
    __u8 which;          /* 0 ethhdr, 1 iphdr, 2 tcphdr */
    __u8 where;          /* 0 a stack copy, 1 the packet, 2 a map value copy */
    __u8 small;          /* print into SMALL bytes */
    __u8 bad_size;       /* pass a btf_ptr size of 12 */
    __u32 type_id;       /* non-zero: this type id instead */
    __u64 flags;
    __u64 ptr;           /* non-zero: this pointer instead */
};

#define ASK_AT (sizeof(struct ethhdr) + sizeof(struct iphdr) + sizeof(struct tcphdr))

SEC("tc")
int print_header(struct __sk_buff *skb)
{
    void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
    struct { char bytes[sizeof(struct iphdr)]; } copy = {};
    struct btf_ptr p = {};
    struct ask ask;
    struct out *o, *scratch;
    __u32 key = 0, key1 = 1;
    __u32 off, size;

    if (data + ASK_AT + sizeof(ask) > end)
        return 1;
    __builtin_memcpy(&ask, data + ASK_AT, sizeof(ask));
    o = bpf_map_lookup_elem(&out_map, &key);
    scratch = bpf_map_lookup_elem(&out_map, &key1);
    if (!o || !scratch)
        return 2;
    if (ask.which == 0) {
        off = 0;
        size = sizeof(struct ethhdr);
        p.type_id = bpf_core_type_id_kernel(struct ethhdr);
    } else if (ask.which == 1) {
        off = sizeof(struct ethhdr);
        size = sizeof(struct iphdr);
        p.type_id = bpf_core_type_id_kernel(struct iphdr);
    } else {
        off = sizeof(struct ethhdr) + sizeof(struct iphdr);
        size = sizeof(struct tcphdr);
        p.type_id = bpf_core_type_id_kernel(struct tcphdr);
    }
    if (data + off + sizeof(copy) > end)
        return 3;
    __builtin_memcpy(&copy, data + off, sizeof(copy));
    if (ask.where == 0)
        p.ptr = &copy;
    else if (ask.where == 1)
        p.ptr = data + off;
    else {
        __builtin_memcpy(scratch->text, &copy, sizeof(copy));
        p.ptr = scratch->text;
    }
    if (ask.type_id)
        p.type_id = ask.type_id;
    if (ask.ptr)
        p.ptr = (void *)ask.ptr;
    if (ask.bad_size)
        o->ret = bpf_snprintf_btf(o->text, BIG, &p, 12, ask.flags);
    else if (ask.small)
        o->ret = bpf_snprintf_btf(o->text, SMALL, &p, sizeof(p), ask.flags);
    else
        o->ret = bpf_snprintf_btf(o->text, BIG, &p, sizeof(p), ask.flags);
    return 0;
}

char _license[] SEC("license") = "GPL";
"""

HEADERS = {"ethhdr": 0, "iphdr": 1, "tcphdr": 2}
COMPACT, NONAME, PTR_RAW, ZERO = 1, 2, 4, 8
ALL_FLAGS = range(16)
STACK, PACKET, MAP_VALUE = 0, 1, 2


def frame(which=0, where=STACK, small=0, bad_size=0, type_id=0, flags=0, ptr=0) -> bytes:
    """A TCP frame carrying the ask; printable MAC bytes ('A', 'z') and a NUL in the
    source MAC exercise the char-array rules, the TCP flags the bitfields; the TCP
    checksum is fixed, so that frames asking different things print the same header."""
    ask = struct.pack("<BBBBIQQ", which, where, small, bad_size, type_id, flags, ptr)
    return raw(Ether(dst="41:7a:00:7a:41:02", src="02:41:7e:20:7f:a0")
               / IP(src="10.1.2.3", dst="192.168.7.9", ttl=17, id=0x1234, tos=0x10)
               / TCP(sport=4321, dport=80, seq=7, flags="SA", window=0, chksum=0xBEEF) / ask)


@pytest.fixture(scope="module")
def objects():
    data = _core_object(SOURCE)
    obj = pyebpf.load(data)
    try:
        with pyebpf.kernel.load_object(data) as kobj:
            yield obj, kobj
    finally:
        obj.close()


def _clear(m):
    m.update((0).to_bytes(4, "little"), b"\xee" * (8 + 1024))


def same_print(objects, **ask) -> tuple[int, bytes]:
    """Run both on the frame for ``ask``; require the same retval, return value and
    output buffer (bytes past the text included: the helper leaves them as they were);
    return the helper's value and the text up to its NUL."""
    obj, kobj = objects
    _clear(obj.maps["out_map"])
    _clear(kobj.maps["out_map"])
    packet = frame(**ask)
    prog = obj.program("print_header")
    ours = prog.run(packet, **engine_fields(prog.prog_type, None))
    theirs = kobj.program("print_header").test_run(packet, ctx={})
    assert ours.retval & 0xFFFFFFFF == theirs.retval == 0
    key = (0).to_bytes(4, "little")
    mine, kernel = obj.maps["out_map"].lookup(key), kobj.maps["out_map"].lookup(key)
    ret = struct.unpack_from("<q", kernel)[0]
    assert struct.unpack_from("<q", mine)[0] == ret
    assert mine[8:].split(b"\0")[0].decode("latin-1") == kernel[8:].split(b"\0")[0].decode(
        "latin-1")
    assert mine == kernel
    count_comparison()
    return ret, kernel[8:].split(b"\0")[0]


@pytest.mark.parametrize("flags", ALL_FLAGS)
@pytest.mark.parametrize("header", sorted(HEADERS))
def test_a_header_on_the_stack_prints_as_the_kernel_prints_it(objects, header, flags):
    ret, text = same_print(objects, which=HEADERS[header], flags=flags)
    assert ret == len(text) > 0


@pytest.mark.parametrize("flags", (0, COMPACT | ZERO))
@pytest.mark.parametrize("header", sorted(HEADERS))
def test_a_header_in_the_packet_prints_as_from_the_stack(objects, header, flags):
    on_stack = same_print(objects, which=HEADERS[header], flags=flags)
    assert same_print(objects, which=HEADERS[header], where=PACKET, flags=flags) == on_stack


@pytest.mark.parametrize("header", sorted(HEADERS))
def test_a_header_in_a_map_value_prints_as_from_the_stack(objects, header):
    on_stack = same_print(objects, which=HEADERS[header], flags=ZERO)
    assert same_print(objects, which=HEADERS[header], where=MAP_VALUE, flags=ZERO) == on_stack


@pytest.mark.parametrize("flags", (0, COMPACT, NONAME | ZERO))
@pytest.mark.parametrize("header", sorted(HEADERS))
def test_a_short_buffer_holds_the_start_and_the_full_length_is_returned(objects, header,
                                                                        flags):
    full, text = same_print(objects, which=HEADERS[header], flags=flags)
    ret, cut = same_print(objects, which=HEADERS[header], flags=flags, small=1)
    assert ret == full and cut == text[:39]


def test_the_iphdr_text_names_members_and_hides_zeros(objects):
    _, text = same_print(objects, which=HEADERS["iphdr"], flags=COMPACT)
    assert text.startswith(b"(struct iphdr){.ihl = (__u8)0x5,.version = (__u8)0x4,")
    assert b".frag_off" not in text          # zero: shown only with BTF_F_ZERO


def test_a_flag_the_kernel_does_not_know_is_einval(objects):
    assert same_print(objects, flags=16)[0] == -22


def test_a_btf_ptr_of_the_wrong_size_is_einval(objects):
    assert same_print(objects, bad_size=1)[0] == -22


def test_a_type_id_the_kernel_does_not_have_is_enoent(objects):
    assert same_print(objects, type_id=0x7FFFFFF0)[0] == -2


@pytest.mark.parametrize("ptr", (0x10, 0x7F0000001000), ids=("null-page", "user"))
def test_a_user_address_is_erange_and_leaves_the_buffer_as_it_was(objects, ptr):
    assert same_print(objects, ptr=ptr) == (-34, b"\xee" * 1024)


def _stack_destination(initialised: bool) -> bytes:
    """A tc program printing into 64 stack bytes, written first or not."""
    I = isa.Insn
    insns = [I(0x7A, 10, 0, -80, 0), I(0x7A, 10, 0, -72, 1)]
    if initialised:
        insns += [I(0x7A, 10, 0, -8 * k, 0) for k in range(1, 9)]
    insns += [I(0xBF, 1, 10, 0, 0), I(0x07, 1, 0, 0, -64), I(0xB7, 2, 0, 0, 64),
              I(0xBF, 3, 10, 0, 0), I(0x07, 3, 0, 0, -80), I(0xB7, 4, 0, 0, 16),
              I(0xB7, 5, 0, 0, 0), I(0x85, 0, 0, 0, 149), I(0xB7, 0, 0, 0, 0),
              I(0x95, 0, 0, 0, 0)]
    return b"".join(i.pack() for i in insns)


@pytest.mark.parametrize("initialised", (True, False))
def test_a_stack_destination_loads_as_in_the_kernel(initialised):
    code = _stack_destination(initialised)
    pyebpf.Program(code, "sched_cls")
    pyebpf.kernel.KernelProgram(code, "sched_cls").close()
    count_comparison()


KERNEL = 0xFFFF888000300000


def _kprobe_print(machine, ptr: int, flags: int = 1) -> tuple[int, bytes]:
    """A kprobe run printing the iphdr at ``ptr`` (by the target BTF's type id) into a
    map value: (the helper's value, the text up to its NUL)."""
    from pyebpf.btf import Kind
    from pyebpf.btf.relo import target_btf
    type_id = target_btf().by_name("iphdr", Kind.STRUCT)[0].id
    ret, text = run_into_value(machine, f"""
        r1 = {ptr} ll
        *(u64 *)(r10 - 24) = r1
        *(u32 *)(r10 - 16) = {type_id}
        *(u32 *)(r10 - 12) = 0
        r1 = r7
        r1 += 8
        r2 = 512
        r3 = r10
        r3 += -24
        r4 = 16
        r5 = {flags}
        call 149""", 512)
    return ret, text.split(b"\0")[0]


def test_a_kprobe_run_prints_an_object_from_the_machine_s_kernel_memory(objects):
    iphdr = frame(which=1)[14:34]
    ret, text = _kprobe_print(pyebpf.Machine(kernel_memory={KERNEL: iphdr}), KERNEL)
    assert (ret, text) == same_print(objects, which=HEADERS["iphdr"], flags=COMPACT)


def test_a_kernel_address_the_machine_does_not_map_is_efault():
    assert _kprobe_print(pyebpf.Machine(), KERNEL) == (-14, b"")
