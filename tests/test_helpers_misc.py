"""Generic helpers: trace_printk, time, randomness, cpu, the current task, classids,
redirect.  The kernel (BPF_PROG_TEST_RUN) is the expected value wherever it can show one;
values that depend on the kernel's environment (clock, random state, cpu, task) are
supplied to ``run()`` and compared with what the kernel reports for the test process."""
from __future__ import annotations

import os
import select
import struct
import threading
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

import pyebpf
from pyebpf import errors, isa, kernel
from conftest import kernel_answers_replayed
from skbdiff import assert_same, both

I = isa.Insn
CLS, SF = "sched_cls", "socket_filter"
FRAME = bytes(Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:01")
              / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1234, dport=53) / (b"q" * 26))
TRACE_PIPE = Path("/sys/kernel/tracing/trace_pipe")


def code(*insns: I) -> bytes:
    return b"".join(i.pack() for i in insns)


def imm32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >> 31 else v


def lddw(reg: int, value: int) -> list[I]:
    return [I(0x18, reg, 0, 0, imm32(value)), I(0, 0, 0, 0, imm32(value >> 32))]


def put_stack(data: bytes, at: int) -> list[I]:
    """Store ``data`` (padded to 4 bytes) at r10 + at."""
    data += bytes(-len(data) % 4)
    return [I(0x62, 10, 0, at + k, imm32(int.from_bytes(data[k:k + 4], "little")))
            for k in range(0, len(data), 4)]


def printk_prog(fmt: bytes, *args, size: int | None = None) -> bytes:
    """r0 = bpf_trace_printk(fmt on the stack, size or len(fmt), args...).

    An argument is an int, ``("stack", bytes)`` for a pointer to those bytes on the
    stack, or ``("pkt", offset)`` for a pointer into the packet (tc only)."""
    at = -((len(fmt) + 7) // 8 * 8)
    insns = [I(0xBF, 6, 1, 0, 0)] + put_stack(fmt, at)
    regs = []
    for reg, arg in zip((3, 4, 5), args):
        if isinstance(arg, int):
            regs += lddw(reg, arg)
        elif arg[0] == "stack":
            at -= (len(arg[1]) + 7) // 8 * 8
            insns += put_stack(arg[1], at)
            regs += [I(0xBF, reg, 10, 0, 0), I(0x07, reg, 0, 0, at)]
        else:
            regs += [I(0x61, reg, 6, 76, 0), I(0x07, reg, 0, 0, arg[1])]
    insns += regs + [I(0xBF, 1, 10, 0, 0), I(0x07, 1, 0, 0, -((len(fmt) + 7) // 8 * 8)),
                     I(0xB7, 2, 0, 0, len(fmt) if size is None else size),
                     I(0x85, 0, 0, 0, 6), I(0x95, 0, 0, 0, 0)]
    return code(*insns)


def call_prog(helper: int, *, r1_ctx=False, regs=()) -> bytes:
    """r0 = helper(r1 = ctx if asked, then the (reg, value) pairs); cb[0], cb[1] = the
    low and high halves of r0; return the low half."""
    return code(I(0xBF, 6, 1, 0, 0), *[x for reg, v in regs for x in lddw(reg, v)],
                *([I(0xBF, 1, 6, 0, 0)] if r1_ctx else []),
                I(0x85, 0, 0, 0, helper), I(0x63, 6, 0, 48, 0), I(0xBF, 7, 0, 0, 0),
                I(0x77, 7, 0, 0, 32), I(0x63, 6, 7, 52, 0), I(0x95, 0, 0, 0, 0))


# --- bpf_trace_printk: the return value against the kernel, the text as documented ------

# FRAME, then strings to point %s at: 600 x and a NUL, 30 y and a NUL
X_AT = len(FRAME)
Y_AT = X_AT + 601
LONG_PKT = FRAME + b"x" * 600 + b"\0" + b"y" * 30 + b"\0" + bytes(9)

# id, fmt, args, expected text (None: refused, the helper returns -errno and prints nothing)
PRINTK = [
    ("plain", b"hi\0", (), "hi"),
    ("trailing-newline-is-counted", b"x=%d\n\0", (12345,), "x=12345"),
    ("nul-before-the-end", b"a\0b\0", (), "a"),
    ("no-nul-within-size", b"no nul", (), None),
    ("int-is-32-bit-signed", b"%d %d %i\0", (-1, 0xFFFFFFFF, 0x1_0000_0007), "-1 -1 7"),
    ("unsigned-and-hex", b"%u %x %X\0", (-3, 0xABC, 0xABC), "4294967293 abc ABC"),
    ("long-and-long-long", b"%ld %lld %lu\0", (-1, -5, -1), "-1 -5 18446744073709551615"),
    ("long-hex", b"%lx %llX\0", (-1, 0xDEADBEEFCAFE), "ffffffffffffffff DEADBEEFCAFE"),
    ("width-left-zero", b"%5d|%-5d|%05d\0", (42, 42, -42), "   42|42   |-0042"),
    ("plus-space-left-zero", b"%+d|% d|%-05d|\0", (5, 5, 5), "+5| 5|5    |"),
    ("plus-on-unsigned-ignored", b"%+u %+x\0", (5, 5), "5 5"),
    ("zero-pad-hex", b"%08x|%-8X|\0", (0xBEEF, 0xBEEF), "0000beef|BEEF    |"),
    ("percent-percent", b"100%%!\0", (), "100%!"),
    ("chars", b"%c%c%5c\0", (65, 66, 0x143), "AB    C"),
    ("char-nul-ends-the-line", b"%cz\0", (0,), ""),
    ("string-from-the-stack", b"%s!\0", (("stack", b"hello\0"),), "hello!"),
    ("string-width", b"[%8s|%-8s]\0", (("stack", b"ab\0"), ("stack", b"cd\0")),
     "[      ab|cd      ]"),
    ("string-unreadable-is-empty", b"bad %s\0", (12345,), "bad "),
    ("string-from-the-packet", b"%s\0", (("pkt", Y_AT),), "y" * 30),
    ("string-capped-at-511", b"%s\0", (("pkt", X_AT),), "x" * 511),
    ("string-shares-the-512-byte-argument-room", b"%d%s\0", (7, ("pkt", X_AT)),
     "7" + "x" * 507),
    ("no-room-after-a-long-string", b"%s%d\0", (("pkt", X_AT), 1), None),
    ("kernel-and-user-string", b"%pks|%pus\0", (("pkt", Y_AT + 25), ("pkt", Y_AT)), "yyyyy|"),
    ("pointer-null", b"%p\0", (0,), "0000000000000000"),
    ("pointer-raw", b"%px|%20px|%-6px|\0", (0x1234, 0x10, 0x10),
     "0000000000001234|                  10|10    |"),
    ("pointer-symbol", b"%pS\0", (0x10,), "0x10"),
    ("ipv4", b"%pI4 %pi4\0", (("pkt", 26), ("pkt", 26)), "10.0.0.1 010.000.000.001"),
    ("ipv6", b"%pI6\0", (("stack", bytes(range(16))),),
     "0001:0203:0405:0607:0809:0a0b:0c0d:0e0f"),
    ("ipv6-plain", b"%pi6\0", (("stack", bytes(16)),), "0" * 32),
    ("utf8-text", "été %d\0".encode(), (1,), "été 1"),
    ("tab", b"a\tb\0", (), "a\tb"),
    ("width-999", b"%999d\0", (1,), " " * 998 + "1"),
    ("output-cut-at-1023-return-full-length", b"%2000d\0", (1,), " " * 1023),
    ("four-conversions", b"%d %d %d %d\0", (1, 2, 3), None),
    ("octal", b"%o\0", (8,), None),
    ("precision", b"%.2d\0", (1,), None),
    ("short", b"%hd\0", (1,), None),
    ("three-l", b"%llld\0", (1,), None),
    ("long-char", b"%lc\0", (65,), None),
    ("percent-at-the-end", b"abc%\0", (), None),
    ("width-on-percent", b"%5%\0", (), None),
    ("string-then-letter", b"%sx\0", (0,), None),
    ("unknown-pointer-kind", b"%pz\0", (0,), None),
    ("control-char", b"\x01\0", (), None),
    ("delete-char", b"\x7f\0", (), None),
]


@pytest.fixture(scope="module")
def trace_pipe():
    """A function returning the bpf_trace_printk texts newly in the kernel's trace_pipe,
    or None when trace_pipe cannot be read here or the kernel's answers are replayed
    (readable to an unprivileged user with CAP_DAC_READ_SEARCH, but no program ran)."""
    if kernel_answers_replayed():
        yield None
        return
    try:
        tracing_off = TRACE_PIPE.with_name("tracing_on").read_text().strip() == "0"
    except OSError:
        tracing_off = False
    if tracing_off:
        # the kernel drops every line while tracing is off (tracer_tracing_is_on)
        pytest.skip("the kernel's tracing is off (/sys/kernel/tracing/tracing_on is 0): "
                    "its trace_printk lines, the texts compared, are dropped")
    try:
        fd = os.open(TRACE_PIPE, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        yield None
        return

    def read() -> list[str]:
        out = b""
        while select.select([fd], [], [], 0.2)[0]:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            out += chunk
        return [line.split(b"bpf_trace_printk: ", 1)[1].decode("utf-8", "backslashreplace")
                for line in out.split(b"\n") if b"bpf_trace_printk: " in line]

    read()
    yield read
    os.close(fd)


@pytest.mark.parametrize("fmt, args, text", [c[1:] for c in PRINTK], ids=[c[0] for c in PRINTK])
def test_trace_printk_returns_what_the_kernel_returns(fmt, args, text, trace_pipe):
    """The return value is the kernel's (characters printed, or -EINVAL/-ENOSPC).  The
    text does not come back from test_run: it is compared with trace_pipe where that
    is readable, otherwise with the documented expectation (C printf semantics; %p
    the table prints no hashed pointer: the kernel hashes a plain non-NULL %p)."""
    engine, theirs = both(printk_prog(fmt, *args), CLS, LONG_PKT)
    assert engine.retval == theirs.retval_signed
    if text is None:
        assert engine.retval < 0 and engine.trace_output == []
    elif trace_pipe is not None:
        assert engine.trace_output == trace_pipe()
    else:
        assert engine.trace_output == [text]


def test_trace_printk_from_a_socket_filter_matches_the_kernel():
    engine, _ = assert_same(printk_prog(b"len %d\0", 3), SF, FRAME)
    assert engine.trace_output == ["len 3"]


def test_trace_printk_lines_accumulate_in_call_order():
    prog = code(*put_stack(b"n=%d\0", -8), I(0xB7, 6, 0, 0, 0),
                I(0xBF, 1, 10, 0, 0), I(0x07, 1, 0, 0, -8), I(0xB7, 2, 0, 0, 5),
                I(0xBF, 3, 6, 0, 0), I(0x85, 0, 0, 0, 6), I(0x07, 6, 0, 0, 1),
                I(0xA5, 6, 0, -7, 3), I(0xB7, 0, 0, 0, 0), I(0x95, 0, 0, 0, 0))
    assert pyebpf.Program(prog, CLS).run(FRAME).trace_output == ["n=0", "n=1", "n=2"]


def test_trace_printk_with_fmt_size_zero_is_refused_like_the_kernel_verifier():
    prog = printk_prog(b"hi\0", size=0)
    with pytest.raises(errors.KernelError):
        kernel.KernelProgram(prog, CLS)
    with pytest.raises(errors.VerifierError, match="R2 invalid zero-sized read"):
        pyebpf.Program(prog, CLS)
    with pytest.raises(errors.ExecutionError, match="fmt_size must be a non-zero constant"):
        pyebpf.Program(prog, CLS, verify=False).run(FRAME)


def test_trace_printk_reading_fmt_past_the_stack_faults():
    prog = code(I(0xBF, 1, 10, 0, 0), I(0x07, 1, 0, 0, -4), I(0xB7, 2, 0, 0, 8),
                I(0x85, 0, 0, 0, 6), I(0x95, 0, 0, 0, 0))
    with pytest.raises(errors.MemoryFault):
        pyebpf.Program(prog, CLS, verify=False).run(FRAME)


# The 4.6 kernel cannot be asked: its source's rules (docs/kernel-notes.md, Helpers).
PRINTK_V46 = [
    ("plain", b"hi\0", (), 2, "hi"),
    ("int-long-long-long", b"%d %ld %llu\0", (-1, -2, -3), 26, "-1 -2 18446744073709551613"),
    ("hex-and-unsigned", b"%x %u %lx\0", (0xABC, -1, -1), 31, "abc 4294967295 ffffffffffffffff"),
    ("pointer", b"%p\0", (0x1234,), 16, "0000000000001234"),
    ("null-pointer", b"%p\0", (0,), 16, "          (null)"),
    ("string", b"%s!\0", (("stack", b"hello\0"),), 6, "hello!"),
    ("string-cut-at-63", b"%s\0", (("stack", b"x" * 100 + b"\0"),), 63, "x" * 63),
    ("nul-must-be-the-last-byte", b"hi\0x", (), -22, None),
    ("embedded-nul", b"a\0b\0", (), -22, None),
    ("percent-percent", b"%%\0", (), -22, None),
    ("width", b"%5d\0", (1,), -22, None),
    ("i-conversion", b"%i\0", (1,), -22, None),
    ("upper-hex", b"%X\0", (1,), -22, None),
    ("char", b"%c\0", (65,), -22, None),
    ("two-strings", b"%s %s\0", (("stack", b"a\0"), ("stack", b"b\0")), -22, None),
    ("pointer-kind", b"%pK\0", (1,), -22, None),
    ("string-then-letter", b"%sx\0", (("stack", b"a\0"),), -22, None),
    ("four-conversions", b"%d%d%d%d\0", (1, 2, 3), -22, None),
    ("non-ascii", "é\0".encode(), (), -22, None),
]


@pytest.mark.parametrize("fmt, args, ret, text", [c[1:] for c in PRINTK_V46],
                         ids=[c[0] for c in PRINTK_V46])
def test_trace_printk_in_the_4_6_profile_follows_its_source(fmt, args, ret, text):
    """Not differential: there is no 4.6 kernel to ask."""
    res = pyebpf.Program(printk_prog(fmt, *args), CLS, profile="4.6").run(FRAME)
    assert res.retval == ret
    assert res.trace_output == ([] if text is None else [text])


def test_trace_printk_in_the_4_6_profile_keeps_a_string_read_up_to_a_fault():
    """4.6's strncpy_from_unsafe kept the bytes read before the fault (the current
    kernel prints an empty string instead).  Not differential: no 4.6 kernel."""
    prog = code(*put_stack(b"[%s]\0", -16), *put_stack(b"abcdefgh", -8),
                I(0xBF, 1, 10, 0, 0), I(0x07, 1, 0, 0, -16), I(0xB7, 2, 0, 0, 5),
                I(0xBF, 3, 10, 0, 0), I(0x07, 3, 0, 0, -8),
                I(0x85, 0, 0, 0, 6), I(0x95, 0, 0, 0, 0))
    assert pyebpf.Program(prog, CLS, profile="4.6").run(FRAME).trace_output == ["[abcdefgh]"]
    assert pyebpf.Program(prog, CLS).run(FRAME).trace_output == ["[]"]


# --- the current task: test_run's is the test process; run() takes it as fields -------

def _this_task() -> dict:
    tid = threading.get_native_id()
    return {"pid_tgid": os.getpid() << 32 | tid, "uid_gid": os.getgid() << 32 | os.getuid(),
            "comm": Path(f"/proc/self/task/{tid}/comm").read_text().rstrip("\n")}


@pytest.mark.parametrize("helper, field", [(14, "pid_tgid"), (15, "uid_gid")],
                         ids=["get_current_pid_tgid", "get_current_uid_gid"])
@pytest.mark.parametrize("prog_type", [CLS, SF])
def test_current_task_ids_are_the_ones_run_is_given(helper, field, prog_type, live_kernel):
    """Under test_run the kernel reports the calling process; the engine reports the
    task passed to run(), here the same one (a recorded answer names another process)."""
    assert_same(call_prog(helper), prog_type, FRAME, {}, **{field: _this_task()[field]})


def comm_prog(size: int) -> bytes:
    # fill a 16-byte buffer with 0xff, get_current_comm(buf, size), copy it to cb[0..3]
    return code(I(0xBF, 6, 1, 0, 0), *lddw(1, -1), I(0x7B, 10, 1, -16, 0),
                I(0x7B, 10, 1, -8, 0), I(0xBF, 1, 10, 0, 0), I(0x07, 1, 0, 0, -16),
                I(0xB7, 2, 0, 0, size), I(0x85, 0, 0, 0, 16),
                *[x for k in range(4) for x in (I(0x61, 2, 10, -16 + 4 * k, 0),
                                                I(0x63, 6, 2, 48 + 4 * k, 0))],
                I(0x95, 0, 0, 0, 0))


@pytest.mark.parametrize("size", [1, 4, 8, 16])
def test_get_current_comm_copies_size_minus_1_bytes_and_zero_fills(size, live_kernel):
    engine, _ = assert_same(comm_prog(size), CLS, FRAME, {}, comm=_this_task()["comm"])
    comm = _this_task()["comm"].encode()[:size - 1]
    assert engine.skb.cb_bytes[:16] == (comm + bytes(size - len(comm))).ljust(16, b"\xff")


def test_get_current_comm_with_size_zero_is_refused_like_the_kernel_verifier():
    with pytest.raises(errors.KernelError):
        kernel.KernelProgram(comm_prog(0), CLS)
    with pytest.raises(errors.VerifierError, match="R2 invalid zero-sized read"):
        pyebpf.Program(comm_prog(0), CLS)
    with pytest.raises(errors.ExecutionError, match="size must be a non-zero constant"):
        pyebpf.Program(comm_prog(0), CLS, verify=False).run(FRAME)


def test_a_replayed_packet_has_no_task_by_default():
    """Not differential: in a tc hook the kernel reports whatever task was interrupted;
    the engine's default is pid 0, uid 0 and an empty name, unless run() says otherwise."""
    p = pyebpf.Program(comm_prog(16), CLS)
    assert p.run(FRAME).skb.cb_bytes[:16] == bytes(16)
    assert p.run(FRAME, comm="swapper/0").skb.cb_bytes[:16] == b"swapper/0".ljust(16, b"\0")
    res = pyebpf.Program(call_prog(14), CLS).run(FRAME)
    assert res.skb.cb[:2] == (0, 0)


def test_comm_longer_than_15_bytes_is_refused():
    with pytest.raises(ValueError, match="comm is at most 15 bytes"):
        pyebpf.Program(comm_prog(16), CLS).run(FRAME, comm="a" * 16)


# --- time, randomness, cpu: the kernel's are the machine's; run() makes them fixed --------

def store_u64(src: int, cb_off: int) -> list[I]:
    # cb[] takes 4-byte stores: low half, then high half (clobbers r9)
    return [I(0x63, 6, src, cb_off, 0), I(0xBF, 9, src, 0, 0), I(0x77, 9, 0, 0, 32),
            I(0x63, 6, 9, cb_off + 4, 0)]


def two_calls_prog(helper: int) -> bytes:
    # cb[0..1] = first call, cb[2..3] = second call (64-bit each); r0 = second - first
    return code(I(0xBF, 6, 1, 0, 0), I(0x85, 0, 0, 0, helper), *store_u64(0, 48),
                I(0xBF, 7, 0, 0, 0), I(0x85, 0, 0, 0, helper), *store_u64(0, 56),
                I(0x1F, 0, 7, 0, 0), I(0x95, 0, 0, 0, 0))


def _u64s(res) -> tuple[int, int]:
    return struct.unpack("<QQ", res.skb.cb_bytes[:16])


def test_ktime_starts_at_ktime_and_advances_by_ktime_step():
    res = pyebpf.Program(two_calls_prog(5), CLS).run(FRAME, ktime=10**12, ktime_step=40)
    assert _u64s(res) == (10**12, 10**12 + 40) and res.retval == 40


@pytest.mark.kernel_varies
def test_ktime_never_runs_backwards_in_the_kernel_or_the_engine():
    engine, theirs = both(two_calls_prog(5), CLS, FRAME, {}, ktime=5, ktime_step=50)
    assert 0 <= theirs.retval_signed < 10**6 and engine.retval == 50


def test_prandom_is_a_reproducible_sequence_of_distinct_u32_values():
    p = pyebpf.Program(two_calls_prog(7), CLS)
    first = _u64s(p.run(FRAME, prandom_seed=42))
    assert first == _u64s(p.run(FRAME, prandom_seed=42))
    assert first != _u64s(p.run(FRAME, prandom_seed=43))
    assert first[0] != first[1] and max(first) < 1 << 32


@pytest.mark.kernel_varies
def test_prandom_gives_different_values_on_each_call_like_the_kernel():
    engine, theirs = both(two_calls_prog(7), CLS, FRAME, {})
    kernel_values = struct.unpack("<QQ", struct.pack("<5I", *theirs.skb["cb"])[:16])
    assert kernel_values[0] != kernel_values[1] and max(kernel_values) < 1 << 32
    assert len(set(_u64s(engine))) == 2


def test_smp_processor_id_is_the_cpu_run_is_given():
    """Not differential: the kernel reports the CPU the test happens to run on."""
    p = pyebpf.Program(call_prog(8), CLS)
    assert (p.run(FRAME).retval, p.run(FRAME, cpu=3).retval) == (0, 3)


# --- classids and realms: 0 without net_cls and without a route, as under test_run ------

@pytest.mark.parametrize("helper, prog_type", [(17, CLS), (17, SF), (24, CLS)],
                         ids=["cgroup_classid-tc", "cgroup_classid-socket-filter",
                              "route_realm-tc"])
def test_classid_and_realm_are_zero_by_default_as_in_the_kernel(helper, prog_type):
    engine, _ = assert_same(call_prog(helper, r1_ctx=True), prog_type, FRAME, {})
    assert engine.retval == 0


@pytest.mark.parametrize("helper, field", [(17, "cgroup_classid"), (24, "route_realm")])
def test_classid_and_realm_are_the_values_run_is_given(helper, field):
    """Not differential: test_run attaches no net_cls classid and no route."""
    res = pyebpf.Program(call_prog(helper, r1_ctx=True), CLS).run(FRAME, **{field: 0x10002})
    assert res.retval == 0x10002


def test_route_realm_is_not_offered_to_socket_filters():
    with pytest.raises(errors.KernelError, match="cannot use helper"):
        kernel.KernelProgram(call_prog(24, r1_ctx=True), SF)
    with pytest.raises(errors.VerifierError, match="cannot use helper"):
        pyebpf.Program(call_prog(24, r1_ctx=True), SF)


# --- redirect ---------------------------------------------------------------------------

def redirect_prog(ifindex: int, flags: int, then: int | None = None) -> bytes:
    tail = [] if then is None else [I(0xB7, 0, 0, 0, then)]
    return code(*lddw(1, ifindex), *lddw(2, flags), I(0x85, 0, 0, 0, 23), *tail,
                I(0x95, 0, 0, 0, 0))


@pytest.mark.parametrize("ifindex, flags", [(1, 0), (1, 1), (9999, 0), (1, 2), (1, 4),
                                            (1, 0x100), (1, 1 << 32), (0xFFFFFFFF, 1)],
                         ids=["egress", "ingress", "unknown-ifindex", "flag-2", "flag-4",
                              "flag-0x100", "flag-bit-32", "ifindex-u32-max"])
def test_redirect_returns_what_the_kernel_returns(ifindex, flags):
    engine, _ = assert_same(redirect_prog(ifindex, flags), CLS, FRAME, {})
    assert engine.retval == (7 if flags in (0, 1) else 2)


@pytest.mark.parametrize("flags, then, expected", [
    (0, None, (5, False)), (1, None, (5, True)), (0, 0, None), (2, None, None)],
    ids=["egress", "ingress", "returned-ok-ignores-it", "bad-flags-record-nothing"])
def test_redirect_is_reported_only_when_the_program_returns_tc_act_redirect(flags, then,
                                                                           expected):
    """Not differential: test_run does not act on the verdict."""
    prog = redirect_prog(5, flags, then)
    assert pyebpf.Program(prog, CLS).run(FRAME).redirect == expected
    assert pyebpf.Program(prog, "sched_act").run(FRAME).redirect == expected


def test_returning_tc_act_redirect_without_calling_redirect_reports_no_target():
    res = pyebpf.Program(code(I(0xB7, 0, 0, 0, 7), I(0x95, 0, 0, 0, 0)), CLS).run(FRAME)
    assert res.retval == 7 and res.redirect is None
