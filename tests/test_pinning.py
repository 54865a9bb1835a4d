"""Pinned maps and programs: shared state across processes (docs/pinning.md).

Not differential: sharing between processes, crash safety and pin-file errors are
pyebpf's own file format; the pin/get errnos are compared with the kernel in
test_syscall.py.
"""
import errno
import os
import signal
import subprocess
import sys
import time

import pytest

import pyebpf
from pyebpf import asm, pinning
from pyebpf.errors import PinError
from pyebpf._core import Map, Program

ROOT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY0 = bytes(4)


@pytest.fixture(autouse=True)
def pin_root(tmp_path, monkeypatch):
    monkeypatch.setenv("PYEBPF_PIN_ROOT", str(tmp_path))
    return tmp_path


def counter(map_fd):
    """SCHED_CLS: add 1 to the u64 at key 0 of an array map."""
    return Program(asm.assemble(f"""
        r0 = 0
        *(u32 *)(r10 - 4) = r0
        r1 = map_fd({map_fd}) ll
        r2 = r10
        r2 += -4
        call 1
        if r0 == 0 goto +2
        r1 = 1
        lock *(u64 *)(r0 + 0) += r1
        r0 = 0
        exit"""), "sched_cls")


def child(code, **kwargs):
    env = dict(os.environ, PYTHONPATH=ROOT_DIR)
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def finish(proc):
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return out


def u64(value):
    return int.from_bytes(value, "little")


# --- sharing ------------------------------------------------------------------------

def test_two_processes_running_a_pinned_counting_program_count_exactly():
    m = Map.create("array", 4, 8, 1)
    m.pin("counts")
    counter(m.fd).pin("count")
    n = 300
    code = f"""
import pyebpf
prog = pyebpf.Program.from_pin("count")
for _ in range({n}):
    prog.run(bytes(64))
"""
    procs = [child(code), child(code)]
    for p in procs:
        finish(p)
    assert u64(m[KEY0]) == 2 * n


def test_a_later_process_finds_the_contents_a_finished_one_left():
    m = Map.create("hash", 4, 8, 8)
    m.pin("flows")
    finish(child("import pyebpf\nm = pyebpf.Map.from_pin('flows')\n"
                 "m[b'\\x01\\0\\0\\0'] = (7).to_bytes(8, 'little')"))
    out = finish(child("import pyebpf\nprint(pyebpf.Map.from_pin('flows').items())"))
    assert out.strip() == repr([(b"\x01\0\0\0", (7).to_bytes(8, "little"))])
    assert m.items() == [(b"\x01\0\0\0", (7).to_bytes(8, "little"))]


def test_concurrent_writers_of_different_keys_lose_no_update():
    m = Map.create("hash", 4, 4, 512)
    m.pin("set")
    code = """
import pyebpf, sys
m = pyebpf.Map.from_pin("set")
base = int(sys.argv[1])
for i in range(base, base + 150):
    m[i.to_bytes(4, "little")] = b"ok!!"
"""
    procs = [child(code.replace("sys.argv[1]", str(b))) for b in (0, 1000, 2000)]
    for p in procs:
        finish(p)
    assert sorted(int.from_bytes(x, "little") for x in m.keys()) == \
        [*range(150), *range(1000, 1150), *range(2000, 2150)]


def test_the_hash_iteration_order_survives_a_pin_and_get():
    m = Map.create("hash", 4, 8, 8)
    for i in (5, 1, 9, 3, 5):
        m[i.to_bytes(4, "little")] = bytes(8)
    order = m.keys()
    m.pin("ordered")
    out = finish(child("import pyebpf\nprint(pyebpf.Map.from_pin('ordered').keys())"))
    assert out.strip() == repr(order)


def test_per_cpu_values_survive_a_pin_and_get():
    m = Map.create("percpu_hash", 4, 4, 4, ncpu=3)
    m[KEY0] = [b"aaaa", b"bbbb", b"cccc"]
    m.pin("pc")
    out = finish(child("import pyebpf\nprint(pyebpf.Map.from_pin('pc').items())"))
    assert out.strip() == repr([(KEY0, [b"aaaa", b"bbbb", b"cccc"])])


def test_a_pinned_program_array_tail_calls_into_pinned_programs_in_another_process():
    arr = Map.create("prog_array", 4, 4, 2)
    arr.pin("jmp")
    target = Program(asm.assemble("r0 = 42\nexit"), "sched_cls")
    target.pin("target")
    arr[KEY0] = target
    entry = Program(asm.assemble(f"""
        r2 = map_fd({arr.fd}) ll
        r3 = 0
        call 12
        r0 = 1
        exit"""), "sched_cls")
    entry.pin("entry")
    out = finish(child("import pyebpf\nprint(pyebpf.Program.from_pin('entry').run(bytes(64)).retval)"))
    assert out.strip() == "42"


def test_getting_a_pin_twice_in_one_process_gives_the_same_map():
    m = Map.create("array", 4, 8, 1)
    m.pin("a")
    assert Map.from_pin("a") is m
    os.makedirs(pyebpf.pin_root() / "tc" / "globals")
    m.pin("tc/globals/b")
    assert Map.from_pin("tc/globals/b") is m


def test_a_removed_pin_leaves_the_map_alive_and_private(pin_root):
    m = Map.create("array", 4, 8, 1)
    m.pin("gone")
    os.unlink(pin_root / "gone")
    m[KEY0] = (3).to_bytes(8, "little")
    assert u64(m[KEY0]) == 3 and not (pin_root / "gone").exists()


# --- crash safety -------------------------------------------------------------------

def test_a_writer_killed_mid_write_leaves_the_previous_state_readable(pin_root):
    """A 1M-entry array (an 8 MB pin file) rewritten in a loop; the writer is killed
    the moment its temporary file appears, so (nearly always) inside a write.  The pin must still
    load, holding the last value written or the one being written."""
    m = Map.create("array", 4, 8, 1 << 20)
    m.pin("big")
    code = """
import pyebpf
m = pyebpf.Map.from_pin("big")
gen = int.from_bytes(m[bytes(4)], "little")
print(gen, flush=True)
while True:
    gen += 1
    m[bytes(4)] = gen.to_bytes(8, "little")
    print(gen, flush=True)
"""
    mid_write = 0
    for _ in range(5):
        proc = child(code)
        deadline = time.monotonic() + 60
        while not any(n.endswith(".tmp") for n in os.listdir(pin_root)):
            assert time.monotonic() < deadline, "the writer never started a write"
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        mid_write += any(n.endswith(".tmp") for n in os.listdir(pin_root))
        last = int(out.split()[-1])
        value = u64(Map.from_pin("big")[KEY0])
        assert value in (last, last + 1), f"value {value} after generation {last}"
        for name in os.listdir(pin_root):
            if name.endswith(".tmp"):
                os.unlink(pin_root / name)
    assert mid_write, "no kill landed inside a write"


# --- errors -------------------------------------------------------------------------

def test_pinning_onto_an_existing_path_is_eexist():
    Map.create("array", 4, 8, 1).pin("x")
    with pytest.raises(PinError, match="cannot pin .*/x: File exists") as exc:
        Map.create("array", 4, 8, 1).pin("x")
    assert exc.value.errno == errno.EEXIST


def test_getting_a_missing_pin_is_enoent():
    with pytest.raises(PinError, match="no pinned map at .*/nothing") as exc:
        Map.from_pin("nothing")
    assert exc.value.errno == errno.ENOENT


def test_a_program_whose_maps_are_not_pinned_cannot_be_pinned():
    prog = counter(Map.create("array", 4, 8, 1, name="hits").fd)
    with pytest.raises(PinError, match="map hits .* is not pinned") as exc:
        prog.pin("p")
    assert exc.value.errno == errno.EINVAL


def test_getting_a_program_pin_as_a_map_is_einval():
    m = Map.create("array", 4, 8, 1)
    m.pin("m")
    counter(m.fd).pin("p")
    with pytest.raises(PinError, match="holds a pinned program, not a map") as exc:
        Map.from_pin("p")
    assert exc.value.errno == errno.EINVAL


def _damage(path, how):
    raw = bytearray(path.read_bytes())
    if how == "truncated-body":
        raw = raw[:-3]
    elif how == "truncated-header":
        raw = raw[:20]
    elif how == "flipped-byte":
        raw[-1] ^= 0xFF
    elif how == "future-version":
        raw[8] = 99
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("how, message", [
    ("truncated-body", "pin file truncated"), ("truncated-header", "truncated inside its header"),
    ("flipped-byte", "corrupt"), ("future-version", "format version 99"),
])
def test_a_damaged_pin_file_is_a_one_line_einval_naming_it(pin_root, how, message):
    m = Map.create("hash", 4, 8, 4)
    m[KEY0] = bytes(8)
    m.pin("d")
    _damage(pin_root / "d", how)
    pinning._live.clear()
    with pytest.raises(PinError, match=message) as exc:
        Map.from_pin("d")
    assert exc.value.errno == errno.EINVAL
    assert str(pin_root / "d") in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize("what", ["file", "directory"])
def test_a_foreign_file_or_directory_is_eacces_as_a_non_bpf_inode(pin_root, what):
    if what == "file":
        (pin_root / "f").write_text("hello")
    else:
        (pin_root / "f").mkdir()
    with pytest.raises(PinError, match=f"{pin_root / 'f'} is") as exc:
        Map.from_pin("f")
    assert exc.value.errno == errno.EACCES


def test_the_pin_root_comes_from_the_environment(pin_root):
    assert pyebpf.pin_root() == pin_root


@pytest.mark.parametrize("args", [("lru_hash", 4, 8, 8, 0), ("lpm_trie", 8, 8, 8, 1),
                                  ("ringbuf", 0, 0, 4096, 0), ("perf_event_array", 4, 4, 2, 0)],
                         ids=lambda a: a[0])
def test_map_types_the_pin_format_cannot_hold_are_refused_and_leave_no_file(pin_root, args):
    m = pyebpf.Map.create(*args)
    with pytest.raises(pyebpf._core.MapError, match="not supported yet"):
        m.pin("unsupported")
    assert not (pin_root / "unsupported").exists()
