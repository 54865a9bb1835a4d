"""Where tcsim writes (pcap/outputs.py), through the ``tcsim`` command as a user runs it:
regular files through a temporary name renamed onto them, symlinks followed, devices
and FIFOs streamed into, ``-`` for standard input and output, and the paths that
cannot work refused before anything runs, naming the path as given."""
import contextlib
import errno
import fcntl
import os
import stat
import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from conftest import child_python
from scapy.all import ICMP, IP, TCP, UDP, Ether

from pyebpf.errors import EbpfError
from pyebpf.pcap import outputs, pcapio, tcreplay

FRAMES = [bytes(p) for p in (Ether() / IP() / TCP(dport=80), Ether() / IP() / UDP(dport=53),
                             Ether() / IP() / ICMP())]
ACCEPT = "r0 = 0\nexit\n"


def tcsim(*args, cwd, stdin=None, **kwargs):
    """The installed ``tcsim`` command (or ``python -m``), run in ``cwd``."""
    exe = Path(sys.executable).parent / "tcsim"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "pyebpf.pcap.tcsim"]
    env = child_python(PYTHONWARNINGS="error")[0]
    return subprocess.run([*cmd, *map(str, args)], cwd=cwd, env=env, input=stdin,
                          capture_output=True, timeout=120, **kwargs)


@pytest.fixture
def work(tmp_path):
    """A directory with in.pcap (FRAMES) and prog.s (accepts every packet)."""
    pcapio.write(tmp_path / "in.pcap", [(k * 1000, f, len(f)) for k, f in enumerate(FRAMES)])
    (tmp_path / "prog.s").write_text(ACCEPT)
    return tmp_path


def expected_capture(work):
    """The bytes ``-o`` writes for in.pcap: what a plain regular file receives."""
    done = tcsim("prog.s", "-r", "in.pcap", "-o", "plain.pcap", cwd=work)
    assert done.returncode == 0, done.stderr
    return (work / "plain.pcap").read_bytes()


def leftovers(directory):
    return sorted(p.name for p in Path(directory).iterdir()
                  if p.name.endswith(outputs.TEMP_SUFFIX))


def one_line(done):
    lines = done.stderr.decode().splitlines()
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    return lines[0]


# --- regular files and symlinks ----------------------------------------------------------

def test_a_symlinked_output_writes_its_target_and_the_link_stays(work):
    want = expected_capture(work)
    (work / "real").mkdir()
    (work / "real" / "out.pcap").write_bytes(b"previous")
    (work / "link.pcap").symlink_to(work / "real" / "out.pcap")
    done = tcsim("prog.s", "-r", "in.pcap", "-o", "link.pcap", cwd=work)
    assert done.returncode == 0, done.stderr
    assert (work / "link.pcap").is_symlink()
    assert (work / "real" / "out.pcap").read_bytes() == want
    assert leftovers(work) == [] and leftovers(work / "real") == []


def test_a_dangling_symlink_creates_its_target(work):
    want = expected_capture(work)
    (work / "link.pcap").symlink_to("made.pcap")
    done = tcsim("prog.s", "-r", "in.pcap", "-o", "link.pcap", cwd=work)
    assert done.returncode == 0, done.stderr
    assert (work / "link.pcap").is_symlink() and (work / "made.pcap").read_bytes() == want


def test_stale_temporary_files_in_the_output_directory_are_removed(work):
    """A run killed by SIGKILL leaves ``.NAME.tcsim-tmp``; the next run there removes it
    and any other unlocked one, and leaves a temporary file a live run holds locked."""
    for name in (".out.pcap.tcsim-tmp", ".other.pcap.tcsim-tmp"):
        (work / name).write_bytes(b"stale")
    live = work / ".busy.pcap.tcsim-tmp"
    with open(live, "wb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        done = tcsim("prog.s", "-r", "in.pcap", "-o", "out.pcap", cwd=work)
        assert done.returncode == 0, done.stderr
        assert leftovers(work) == [live.name]


def test_an_output_another_run_is_writing_is_refused(work):
    (work / "out.pcap").write_bytes(b"previous")
    with open(work / ".out.pcap.tcsim-tmp", "wb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        done = tcsim("prog.s", "-r", "in.pcap", "-o", "out.pcap", cwd=work)
    assert one_line(done) == "tcsim: out.pcap: another run is writing it right now"
    assert (work / "out.pcap").read_bytes() == b"previous"


FS_IOC_FIEMAP = 0xC020660B          # _IOWR('f', 11, struct fiemap), linux/fs.h
FIEMAP_EXTENT_DELALLOC = 0x4


def first_extent_flags(path):
    """The flags of the first extent FIEMAP reports for ``path``."""
    request = bytearray(struct.pack("=QQIIII", 0, 2**64 - 1, 0, 0, 1, 0) + bytes(56))
    with open(path, "rb") as f:
        fcntl.ioctl(f.fileno(), FS_IOC_FIEMAP, request)
    return struct.unpack_from("=I", request, 32 + 40)[0]


def finished_temp(directory, data):
    """A temporary file as a run leaves it, written and not yet renamed."""
    tmp = outputs.temp_path(directory / "out.pcap")
    tmp.write_bytes(data)
    return tmp


def test_replacing_an_existing_output_leaves_the_new_file_and_unlinks_the_old(work):
    (work / "out.pcap").write_bytes(b"previous")
    with open(work / "out.pcap", "rb") as old:
        outputs.replace(finished_temp(work, b"new"), work / "out.pcap")
        assert os.fstat(old.fileno()).st_nlink == 0
    assert (work / "out.pcap").read_bytes() == b"new"
    assert leftovers(work) == []


def delays_allocation(path):
    """Whether a file just written at ``path`` is left to the writeback (FIEMAP says
    delalloc), as on ext4; else the test skips."""
    try:
        delayed = first_extent_flags(path) & FIEMAP_EXTENT_DELALLOC
    except OSError as exc:
        pytest.skip(f"no FIEMAP on this filesystem ({exc.strerror})")
    if not delayed:
        pytest.skip("this filesystem allocates blocks as they are written (no delalloc)")


def test_replacing_an_existing_output_does_not_write_the_new_file_out(work):
    """ext4 allocates and writes out a file renamed onto another (auto_da_alloc); the
    exchange that replaces an existing output leaves its pages to the writeback."""
    (work / "out.pcap").write_bytes(b"previous")
    tmp = finished_temp(work, bytes(1 << 20))
    delays_allocation(tmp)
    outputs.replace(tmp, work / "out.pcap")
    assert first_extent_flags(work / "out.pcap") & FIEMAP_EXTENT_DELALLOC
    assert (work / "out.pcap").stat().st_size == 1 << 20


def test_a_new_output_is_not_written_out_when_its_run_closes_it(work):
    """ext4 writes out at its close a file truncated to 0 (auto_da_alloc): a new
    temporary file is not truncated."""
    (work / "probe").write_bytes(b"x")
    delays_allocation(work / "probe")
    done = tcsim("prog.s", "-r", "in.pcap", "-o", "new.pcap", cwd=work)
    assert done.returncode == 0, done.stderr
    assert first_extent_flags(work / "new.pcap") & FIEMAP_EXTENT_DELALLOC


def test_an_output_another_process_holds_locked_is_still_replaced(work):
    want = expected_capture(work)
    (work / "out.pcap").write_bytes(b"previous")
    with open(work / "out.pcap", "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        done = tcsim("prog.s", "-r", "in.pcap", "-o", "out.pcap", cwd=work)
    assert done.returncode == 0, done.stderr
    assert (work / "out.pcap").read_bytes() == want
    assert leftovers(work) == []


def test_a_temporary_file_another_run_removes_before_it_is_locked_is_made_again(
        work, monkeypatch):
    """Two runs writing into one directory (a cluster's workers): the other run's
    removal of stale temporary files may unlink this one's between its creation and its
    lock; the output is still written."""
    lock = fcntl.flock
    removed = []

    def unlinked_first(fd, op):
        if not removed:
            removed.append(outputs.temp_path(work / "out.pcap"))
            os.unlink(removed[0])
        return lock(fd, op)

    monkeypatch.setattr(fcntl, "flock", unlinked_first)
    outputs.write_all([(outputs.resolve(str(work / "out.pcap")), b"written")])
    assert removed and (work / "out.pcap").read_bytes() == b"written"
    assert leftovers(work) == []


def test_a_write_error_names_the_path_given_not_the_temporary_one(work):
    (work / "file").write_bytes(b"")
    done = tcsim("prog.s", "-r", "in.pcap", "--report", "file/r.jsonl", cwd=work)
    assert one_line(done) == "tcsim: file/r.jsonl: cannot be written: Not a directory"


def test_an_output_that_is_a_directory_is_refused_before_the_run(work):
    (work / "d").mkdir()
    done = tcsim("prog.s", "-r", "in.pcap", "-o", "out.pcap", "--drops", "d", cwd=work)
    assert one_line(done) == "tcsim: d: is a directory"
    assert not (work / "out.pcap").exists()


# --- one file, two roles -------------------------------------------------------------------

@pytest.mark.parametrize("first, second", [
    (["-o", "x.pcap"], ["--drops", "x.pcap"]),
    (["-o", "x.pcap"], ["--report", "./x.pcap"]),
    (["--report", "x.pcap"], ["--events", "alias.pcap"]),
], ids=["same-name", "same-path-spelt-twice", "symlink-to-it"])
def test_two_outputs_that_are_one_file_are_refused_before_the_run(work, first, second):
    (work / "x.pcap").write_bytes(b"previous")
    (work / "alias.pcap").symlink_to("x.pcap")
    done = tcsim("prog.s", "-r", "in.pcap", *first, *second, cwd=work)
    assert one_line(done) == (f"tcsim: {second[0]} {second[1]} and {first[0]} {first[1]} are "
                              "the same file; give each output its own")
    assert (work / "x.pcap").read_bytes() == b"previous"


def test_a_new_path_named_twice_is_refused(work):
    done = tcsim("prog.s", "-r", "in.pcap", "-o", "new.pcap", "--drops", "sub/../new.pcap",
                 cwd=work)
    assert "are the same file" in one_line(done)
    assert not (work / "new.pcap").exists()


@pytest.mark.parametrize("spelling", ["in.pcap", "./in.pcap", "alias.pcap"])
def test_an_output_that_is_the_input_is_refused_and_the_input_kept(work, spelling):
    before = (work / "in.pcap").read_bytes()
    (work / "alias.pcap").symlink_to("in.pcap")
    done = tcsim("prog.s", "-r", "in.pcap", "--drops", spelling, cwd=work)
    assert one_line(done) == (f"tcsim: --drops {spelling}: is the capture being read "
                              "(-r in.pcap); write the output elsewhere")
    assert (work / "in.pcap").read_bytes() == before


def test_an_output_where_a_redirect_capture_goes_is_refused(work):
    done = tcsim("prog.s", "-r", "in.pcap", "-o", "rd/ifindex-4.pcap", "--redirect-dir", "rd",
                 cwd=work)
    assert one_line(done).startswith("tcsim: -o rd/ifindex-4.pcap is inside --redirect-dir rd")


# --- standard input and output ---------------------------------------------------------------

def test_dash_reads_the_capture_from_stdin_and_writes_it_to_stdout(work):
    want = expected_capture(work)
    done = tcsim("prog.s", "-r", "-", "-o", "-", cwd=work,
                 stdin=(work / "in.pcap").read_bytes())
    assert done.returncode == 0, done.stderr
    assert done.stdout == want
    assert done.stderr.decode().startswith("tcsim: 3 packets from stdin: 3 delivered")


def test_dev_stdout_is_streamed_into_not_replaced(work):
    want = expected_capture(work)
    done = tcsim("prog.s", "-r", "in.pcap", "-o", "/dev/stdout", cwd=work)
    assert done.returncode == 0, done.stderr
    assert done.stdout == want


def test_dash_and_dev_stdout_together_are_one_file(work):
    done = tcsim("prog.s", "-r", "in.pcap", "-o", "-", "--report", "/dev/stdout", cwd=work)
    assert "are the same file" in one_line(done)
    assert done.stdout == b""


def test_a_stdout_whose_reader_went_away_is_one_line(work):
    exe = Path(sys.executable).parent / "tcsim"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "pyebpf.pcap.tcsim"]
    read, write = os.pipe()
    os.close(read)
    with os.fdopen(write, "wb") as pipe:
        done = subprocess.run([*cmd, "prog.s", "-r", "in.pcap", "-o", "-"], cwd=work,
                              stdout=pipe, stderr=subprocess.PIPE, timeout=120,
                              env=child_python(PYTHONWARNINGS="error")[0])
    assert one_line(done) == "tcsim: -: the reader went away (broken pipe)"


# --- device nodes and FIFOs (made here, never the real /dev) ----------------------------------

@pytest.fixture
def mknod(work, root):

    def make(name, major, minor):
        path = work / name
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
        return path
    return make


def test_a_character_device_is_written_into_and_stays_a_device(work, mknod):
    null = mknod("null", 1, 3)
    done = tcsim("prog.s", "-r", "in.pcap", "-o", "null", cwd=work)
    assert done.returncode == 0, done.stderr
    st = null.stat()
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)
    assert leftovers(work) == []


def test_a_full_device_is_one_line_naming_it(work, mknod):
    mknod("full", 1, 7)
    done = tcsim("prog.s", "-r", "in.pcap", "-o", "full", cwd=work)
    assert one_line(done) == "tcsim: full: cannot be written: No space left on device"
    assert stat.S_ISCHR((work / "full").stat().st_mode)


def test_a_fifo_is_streamed_to_its_reader_and_stays_a_fifo(work):
    want = expected_capture(work)
    fifo = work / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    done = tcsim("prog.s", "-r", "in.pcap", "-o", "pipe", cwd=work)
    reader.join(timeout=60)
    assert done.returncode == 0, done.stderr
    assert got == [want]
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_output_errors_are_pyebpf_errors():
    assert issubclass(outputs.OutputError, EbpfError)


# --- the writers' write-behind (pcap/capio.pxi Writer) --------------------------------------

PIECES = [k.to_bytes(4, "little") * 250 for k in range(3000)]     # 3 MB, three buffers


def _threads():
    """The writers' write-behind threads of this process."""
    names = []
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError):     # a thread that ended meanwhile
            names.append((task / "comm").read_text().strip())
    return names.count("pyebpf-write")


def test_a_writer_into_a_file_writes_full_buffers_on_a_thread_and_flush_waits_for_all(
        tmp_path):
    fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT, 0o644)
    writer = tcreplay.Writer(fd)
    before = _threads()
    for piece in PIECES:
        writer.append(piece)
    during = _threads()
    writer.flush()
    os.close(fd)
    assert (during - before, _threads() - before) == (1, 0)
    assert (tmp_path / "out").read_bytes() == b"".join(PIECES)
    assert writer.error == 0


def direct_flag_while_writing(path, direct_ok, before=b""):
    """(whether ``fd``'s open file had O_DIRECT after every full buffer was handed over,
    after ``flush``) of a Writer of PIECES into ``path`` after ``before``."""
    try:
        os.close(os.open(path.with_name("probe"), os.O_WRONLY | os.O_CREAT | os.O_DIRECT))
    except OSError as exc:
        pytest.skip(f"no O_DIRECT on this filesystem ({exc.strerror})")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, before)
    writer = tcreplay.Writer(fd)
    writer.direct_ok = direct_ok
    for piece in PIECES:
        writer.append(piece)
    during = bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT)
    writer.flush()
    after = bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT)
    os.close(fd)
    assert writer.error == 0
    assert path.read_bytes() == before + b"".join(PIECES)
    return during, after


def test_a_writer_into_a_file_of_its_own_writes_behind_with_o_direct_until_flush(tmp_path):
    """Its whole blocks go from its buffers to the disk (no page cache taken); the
    bytes past the last whole block are written through the page cache by flush."""
    assert direct_flag_while_writing(tmp_path / "out", True) == (True, False)


def test_a_writer_into_a_file_others_may_write_never_sets_o_direct(tmp_path):
    assert direct_flag_while_writing(tmp_path / "out", False) == (False, False)


def test_a_writer_at_an_offset_no_block_starts_at_writes_through_the_page_cache(tmp_path):
    assert direct_flag_while_writing(tmp_path / "out", True, b"header") == (False, False)


def test_a_report_of_several_buffers_is_the_same_in_a_file_as_through_a_pipe(work):
    """A report file is written with O_DIRECT, standard output (a pipe) in place."""
    frames = [(k * 1000, FRAMES[k % 3], len(FRAMES[k % 3])) for k in range(30000)]
    pcapio.write(work / "many.pcap", frames)
    done = tcsim("prog.s", "-r", "many.pcap", "--report", "r.jsonl", cwd=work)
    assert done.returncode == 0, done.stderr
    piped = tcsim("prog.s", "-r", "many.pcap", "--report", "-", cwd=work)
    assert piped.returncode == 0, piped.stderr
    report = (work / "r.jsonl").read_bytes()
    assert len(report) > 2 * (1 << 20) and report == piped.stdout


def test_a_failed_write_behind_is_the_writers_error_by_flush(tmp_path):
    (tmp_path / "ro").write_bytes(b"")
    fd = os.open(tmp_path / "ro", os.O_RDONLY)      # a regular file that refuses writes
    writer = tcreplay.Writer(fd)
    for piece in PIECES:
        writer.append(piece)
    writer.flush()
    os.close(fd)
    assert writer.error == errno.EBADF
    assert (tmp_path / "ro").read_bytes() == b""


def test_a_writer_into_a_pipe_writes_in_place_in_order_with_other_writers():
    read_end, write_end = os.pipe()
    got = []
    reader = threading.Thread(target=lambda: got.append(b"".join(iter(
        lambda: os.read(read_end, 1 << 16), b""))))
    reader.start()
    writer = tcreplay.Writer(write_end)
    before = _threads()
    for piece in PIECES:
        writer.append(piece)
    during = _threads()
    os.write(write_end, b"after")
    writer.flush()
    os.close(write_end)
    reader.join()
    os.close(read_end)
    assert during == before
    # two full buffers went before "after": each the pieces up to the first past 1 MiB
    flushed = 2 * -(-(1 << 20) // len(PIECES[0]))
    assert got == [b"".join(PIECES[:flushed]) + b"after" + b"".join(PIECES[flushed:])]
