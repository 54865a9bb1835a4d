"""BPF streams: ``bpf_stream_vprintk_impl`` (libbpf's ``bpf_stream_printk``) appends
formatted text to a program's stdout or stderr, and BPF_PROG_STREAM_READ_BY_FD
(``Program.read_stream``, ``KernelProgram.read_stream``) reads it back, consuming it
(kernel/bpf/stream.c), each against the kernel: the kfunc's return values, the read
command's errnos, and the text where the kernel keeps it.

The kernel these answers were recorded on gives every element of a stream ENOMEM
(bpf_stream_page_reserve_elem gets no page from alloc_pages_nolock, likely because
its boot's deferred page initialisation is on), so its streams stay empty; the text is then
checked against the kernel's bpf_snprintf of the same format and arguments, which
bpf_stream_vprintk_impl prints by the same rules (bpf_bprintf_prepare, bstr_printf).
Its capacity is charged all the same (bpf_stream_push_str charges before it allocates),
so where ENOSPC begins is the kernel's on every kernel.
"""
import errno

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

import pyebpf
from pyebpf.errors import BpfError, KernelError
from pyebpf.pcap import pcapio, tcreplay, tcsim

from bpfc import compile_object
from recorded_kernel import count_comparison

PACKET = bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2) /
               (b"\x07" * 64))

# libbpf's bpf_stream_printk (bpf_helpers.h of libbpf 1.6); the installed 1.1 has neither
# it nor the kfunc's declaration
STREAMS = r"""
extern int bpf_stream_vprintk_impl(int stream_id, const char *fmt__str, const void *args,
                                   __u32 len__sz, void *aux__prog) __ksym;
#define bpf_stream_printk(stream_id, fmt, args...)                                    \
({                                                                                     \
    static const char ___fmt[] = fmt;                                                  \
    unsigned long long ___param[___bpf_narg(args)];                                    \
    _Pragma("GCC diagnostic push")                                                     \
    _Pragma("GCC diagnostic ignored \"-Wint-conversion\"")                             \
    ___bpf_fill(___param, args);                                                       \
    _Pragma("GCC diagnostic pop")                                                      \
    bpf_stream_vprintk_impl(stream_id, ___fmt, ___param, sizeof(___param), NULL);      \
})
"""


def _both(source: str):
    """(pyebpf's Program, the kernel's KernelProgram, the kernel object) of the one
    program ``prog`` of ``source``."""
    data = compile_object(STREAMS + source)
    kobj = pyebpf.kernel.load_object(data)
    return pyebpf.load(data).program("prog"), kobj.program("prog"), kobj


ENOMEM = -errno.ENOMEM & 0xFFFFFFFF


def _paged(retval: int, fields: int = 1) -> int:
    """The kernel's retval as a kernel that gets pages for its stream elements gives it:
    each of the ``fields`` bytes (or, with 1, the whole retval) that holds ENOMEM, 0."""
    if fields == 1:
        return 0 if retval == ENOMEM else retval
    return sum(b << 8 * k for k, b in enumerate(retval.to_bytes(fields, "little"))
               if b != errno.ENOMEM)


def _runs(source: str, fields: int = 1):
    """Run ``prog`` once in both; require the same retval, the kernel's :func:`_paged`;
    (engine program, kernel program, kernel object, the kernel's retval)."""
    ours, theirs, kobj = _both(source)
    r_ours = ours.run(PACKET, ifindex=1).retval & 0xFFFFFFFF
    r_theirs = theirs.test_run(PACKET).retval
    count_comparison()
    assert r_ours == _paged(r_theirs, fields), \
        f"retval: pyebpf {r_ours:#x}, kernel {r_theirs:#x}"
    return ours, theirs, kobj, r_theirs


# --- the text ------------------------------------------------------------------------

TEXT = r"""
SEC("tc") int prog(struct __sk_buff *skb)
{
    int out = bpf_stream_printk(BPF_STDOUT_, "len %u mark %x %s|%-4d|%c\n", skb->len,
                                0xbeef, "str", -7, 'z');
    int err = bpf_stream_printk(BPF_STDERR_, "proto %04x %llu%%\n",
                                bpf_ntohs(skb->protocol), 1ULL << 40);
    return (-out & 0xff) | (-err & 0xff) << 8;
}
""".replace("BPF_STDOUT_", "1").replace("BPF_STDERR_", "2")

# the same formats and arguments through bpf_snprintf, into the packet
SNPRINTF = r"""
static const char fmt_out[] = "len %u mark %x %s|%-4d|%c\n";
static const char fmt_err[] = "proto %04x %llu%%\n";

SEC("tc") int prog(struct __sk_buff *skb)
{
    char text[48] = {};
    __u64 out[5] = {skb->len, 0xbeef, (__u64)"str", (__u64)-7, 'z'};
    __u64 err[2] = {bpf_ntohs(skb->protocol), 1ULL << 40};
    long n = bpf_snprintf(text, 48, fmt_out, out, sizeof(out));
    if (n < 1 || n > 48 || bpf_skb_store_bytes(skb, 0, text, 48, 0))
        return 1;
    n = bpf_snprintf(text, 48, fmt_err, err, sizeof(err));
    if (n < 1 || n > 48 || bpf_skb_store_bytes(skb, 48, text, 48, 0))
        return 2;
    return 0;
}
"""


def test_a_print_reads_back_from_its_stream_as_the_kernel_formats_it():
    ours, theirs, kobj, retval = _runs(TEXT, 2)
    with kobj:
        got = {s: ours.read_stream(s) for s in ("stdout", "stderr")}
        kernel = {s: theirs.read_stream(s) for s in ("stdout", "stderr")}
    # each print's return: 0, or ENOMEM where the kernel got no page for the element
    for k, stream in enumerate(("stdout", "stderr")):
        code = retval >> 8 * k & 0xFF
        assert code in (0, errno.ENOMEM), f"{stream}: the kernel returned -{code}"
        if code == 0:
            assert got[stream] == kernel[stream], (stream, got[stream], kernel[stream])
    data = compile_object(SNPRINTF)
    with pyebpf.kernel.load_object(data) as sobj:
        run = sobj.program("prog").test_run(PACKET)
    assert run.retval == 0
    want = {"stdout": run.data[:48].split(b"\0")[0], "stderr": run.data[48:96].split(b"\0")[0]}
    assert got == want


def test_a_stream_keeps_what_each_run_printed_until_it_is_read():
    ours, _, kobj, _ = _runs(TEXT, 2)
    kobj.close()
    ours.run(PACKET, ifindex=1)
    line = b"len %d mark beef str|-7  |z\n" % len(PACKET)
    assert ours.read_stream(1) == line * 2
    assert ours.read_stream(1) == b""


def test_a_read_takes_bytes_across_prints_and_leaves_the_rest_for_the_next():
    ours, _, kobj, _ = _runs(TEXT, 2)
    kobj.close()
    ours.run(PACKET, ifindex=1)
    line = b"len %d mark beef str|-7  |z\n" % len(PACKET)
    first = ours.read_stream("stdout", len(line) + 5)
    assert first == line + line[:5]
    assert ours.read_stream("stdout", 0) == b""
    assert ours.read_stream("stdout") == line[5:]


def test_the_streams_are_the_programs_own():
    ours, _, kobj, _ = _runs(TEXT, 2)
    kobj.close()
    other = pyebpf.load(compile_object(STREAMS + TEXT)).program("prog")
    assert other.read_stream(1) == b"" and ours.read_stream(1) != b""


# --- the kfunc's errnos ------------------------------------------------------------------

RETURN = r"""
SEC("tc") int prog(struct __sk_buff *skb)
{
    static const char fmt[] = FMT;
    __u64 args[13] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13};
    return bpf_stream_vprintk_impl(ID, fmt, args, LEN, NULL);
}
"""


@pytest.mark.parametrize("stream_id, fmt, length, why", [
    (0, "x", 0, "stream 0: ENOENT"),
    (3, "x", 0, "stream 3: ENOENT"),
    (-1, "x", 0, "stream -1: ENOENT"),
    (1, "%d %d", 12, "arguments not a multiple of 8 bytes: EINVAL"),
    (1, "%d", 13 * 8, "13 arguments, more than MAX_BPRINTF_VARARGS: EINVAL"),
    (3, "%d", 12, "the stream is looked up before the arguments: ENOENT"),
    (2, "%k", 8, "a conversion bpf_bprintf_prepare refuses: EINVAL"),
    (1, "%d %d", 8, "fewer arguments than conversions: EINVAL"),
    (2, "%d", 8, "a good print: 0 (or ENOMEM where the kernel gets no page)"),
])
def test_bpf_stream_vprintk_impl_returns_the_kernels_errno(stream_id, fmt, length, why):
    """``why``: what the kernel returns, and why."""
    source = RETURN.replace("FMT", f'"{fmt}"').replace("ID", str(stream_id)) \
        .replace("LEN", str(length))
    _, _, kobj, _ = _runs(source)
    kobj.close()


# --- the capacity ----------------------------------------------------------------------

FILL = r"""
SEC("tc") int prog(struct __sk_buff *skb)
{
    static const char big[] = "%BIGd";
    static const char fmt[] = "%998d\n";
    __u64 args[1] = {7};
    int i, r = 0;

    if (BIG)
        r = bpf_stream_vprintk_impl(1, big, args, 8, NULL);
    for (i = 0; i < 300; i++) {
        r = bpf_stream_vprintk_impl(1, fmt, args, 8, NULL);
        if (r == -ENOSPC_)
            break;
    }
    return i;
}
""".replace("ENOSPC_", str(errno.ENOSPC))


def _fill(big: int = 0) -> tuple[pyebpf.Program, int]:
    ours, _, kobj, prints = _runs(FILL.replace("BIG", str(big)))
    kobj.close()
    return ours, prints


def test_a_stream_refuses_a_print_that_would_make_it_hold_100000_bytes():
    ours, prints = _fill()
    assert prints == 100           # 100 × 999 bytes held: the 101st would reach 100000
    assert len(ours.read_stream(1)) == 100 * 999


def test_a_text_longer_than_the_1024_byte_buffer_is_refused_yet_charged():
    # bstr_printf's length of the whole text is charged, then bpf_stream_elem_alloc
    # refuses more than MAX_BPRINTF_BUF bytes: ENOMEM, and the charge stays
    ours, prints = _fill(big=2000)
    assert prints == 98            # 2000 + 98 × 999 = 99902 charged
    assert len(ours.read_stream(1)) == 98 * 999


def test_a_text_of_1024_bytes_keeps_the_buffers_terminating_nul():
    # %1024d: the text is 1024 characters, the buffer holds the first 1023 and the NUL,
    # and the element is the buffer's 1024 bytes
    ours, _, kobj, _ = _runs(RETURN.replace("FMT", '"%1024d"').replace("ID", "1")
                             .replace("LEN", "8"))
    kobj.close()
    assert ours.read_stream(1) == b" " * 1023 + b"\0"


def test_an_element_stops_counting_against_the_capacity_only_when_all_of_it_is_read():
    # bpf_stream_read releases an element's bytes when its last byte is read
    ours, _ = _fill()
    assert len(ours.read_stream(1, 500)) == 500
    assert ours.run(PACKET, ifindex=1).retval == 0          # still full: no print fits
    ours.read_stream(1, 499)                                 # the first print's last byte
    assert ours.run(PACKET, ifindex=1).retval == 1          # room for one again


# --- the read command ------------------------------------------------------------------

@pytest.mark.parametrize("stream_id", [0, 3, 0xFFFFFFFF])
def test_reading_a_stream_id_the_kernel_has_no_stream_for_is_enoent(stream_id):
    ours, theirs, kobj = _both(TEXT)
    with kobj, pytest.raises(KernelError) as kernel:
        theirs.read_stream(stream_id, 64)
    with pytest.raises(BpfError) as engine:
        ours.read_stream(stream_id, 64)
    count_comparison()
    assert engine.value.errno == kernel.value.errno == errno.ENOENT


def test_pyebpf_bpf_reads_a_stream_as_the_command_does():
    ours, _, kobj, _ = _runs(TEXT, 2)
    kobj.close()
    handle = ours.fd
    buf = bytearray(8)
    n = pyebpf.bpf("prog_stream_read_by_fd", {"prog_fd": handle, "stream_id": 2,
                                              "stream_buf": buf, "stream_buf_len": 8})
    assert (n, bytes(buf)) == (8, b"proto 08")
    with pytest.raises(BpfError) as exc:
        pyebpf.bpf("prog_stream_read_by_fd", {"prog_fd": handle, "stream_id": 9,
                                              "stream_buf": buf, "stream_buf_len": 8})
    assert exc.value.errno == errno.ENOENT



# --- tcsim --tracelog ------------------------------------------------------------------

def _tcsim(capture, tmp_path, *options, packets=(PACKET,) * 3):
    """tcsim on TEXT's program over ``packets``: (exit status, what ``capture``, capsys
    or capfd, caught on stdout)."""
    (tmp_path / "streams.o").write_bytes(compile_object(STREAMS + TEXT))
    pcapio.write(tmp_path / "in.pcap", [(k * 1000, p, len(p)) for k, p in enumerate(packets)])
    rc = tcsim.main([str(tmp_path / "streams.o"), "-r", str(tmp_path / "in.pcap"), "-q",
                     *map(str, options)])
    return rc, capture.readouterr().out


def test_tcsim_tracelog_writes_each_programs_streams_after_the_run(tmp_path, capsys):
    rc, _ = _tcsim(capsys, tmp_path, "--tracelog", tmp_path / "trace.txt")
    prog = tmp_path / "streams.o"
    out = b"len %d mark beef str|-7  |z\n" % len(PACKET)
    err = b"proto 0800 1099511627776%\n"
    assert rc == 0
    assert (tmp_path / "trace.txt").read_bytes() == (
        f"==> {prog} stdout <==\n".encode() + out * 3 +
        f"==> {prog} stderr <==\n".encode() + err * 3)


def test_tcsim_tracelog_dash_writes_to_standard_output(tmp_path, capfd):
    rc, out = _tcsim(capfd, tmp_path, "--tracelog", "-")
    assert rc == 0 and out.count("proto 0800") == 3


def test_tcsim_tracelog_holds_every_cpus_prints(tmp_path, capsys):
    # the replay threads of --cpus print into the program's one pair of streams: 64
    # flows, which RSS spreads over both CPUs
    flows = [bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1000 + k, dport=2)
                   / (b"\x07" * 64)) for k in range(64)]
    rc, _ = _tcsim(capsys, tmp_path, "--cpus", "2", "--tracelog", tmp_path / "trace.txt",
                   packets=flows)
    text = (tmp_path / "trace.txt").read_bytes()
    # the CPUs tcsim steers them to (docs/tcsim.md, Many CPUs)
    assert {(tcreplay.frame_rss_hash(f) & 127) % 2 for f in flows} == {0, 1}
    assert rc == 0
    assert text.count(b"proto 0800 1099511627776%\n") == 64
    assert text.count(b"len %d mark beef" % len(PACKET)) == 64
