"""Pinned maps and programs: shared state across processes (docs/pinning.md).

Not differential: sharing between processes, crash safety and pin-file errors are
pyebpf's own file format; the pin/get errnos are compared with the kernel in
test_syscall.py.
"""
import errno
import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import child_python
from mapcheck import lookup_inner, lookup_key, perf_output_prog
from pktprog import counter as counter_code
from hypothesis import HealthCheck, given, settings, strategies as st

import pyebpf
from pyebpf import asm, isa, pin_format, pinning
from pyebpf.errors import MapError, PinError
from pyebpf import Map, Program

KEY0 = bytes(4)


@pytest.fixture(autouse=True)
def pin_root(tmp_path, monkeypatch):
    monkeypatch.setenv("PYEBPF_PIN_ROOT", str(tmp_path))
    return tmp_path


def counter(map_fd):
    """SCHED_CLS: add 1 to the u64 at key 0 of an array map."""
    return Program(counter_code(map_fd), "sched_cls")


def child(code, **kwargs):
    env, cwd = child_python()
    env.update(kwargs.pop("env", {}))
    return subprocess.Popen([sys.executable, "-c", code], env=env, cwd=kwargs.pop("cwd", cwd),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


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
    pinning.makedirs("tc/globals")
    m.pin("tc/globals/b")
    assert Map.from_pin("tc/globals/b") is m


def test_a_closed_map_got_again_from_its_pin_has_its_handle_back_for_new_programs():
    m = Map.create("array", 4, 8, 1)
    m.pin("closed")
    m.close()
    got = Map.from_pin("closed")
    counter(got.fd).run(bytes(60))
    assert u64(got[KEY0]) == 1


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


def test_a_pinned_kprobe_program_keeps_its_architecture_and_kern_version():
    prog = Program(asm.assemble("r0 = *(u64 *)(r1 + 248)\nexit"), "kprobe", arch="arm64",
                   kern_version=0x60c00)
    prog.pin("kprobe")
    got = got_program("kprobe")
    assert (got.arch, got.kern_version) == ("arm64", 0x60c00)
    assert got.run(regs={"sp": 7}).retval == 7     # arm64's sp: past x86-64's 168 bytes


def test_a_pinned_4_6_kprobe_program_is_got_again_with_the_kern_version_4_6_requires():
    prog = Program(asm.assemble("r0 = 0\nexit"), "kprobe", profile="4.6",
                   kern_version=isa.LINUX_VERSION_CODE_4_6)
    prog.pin("old")
    got = got_program("old")
    assert (got.profile, got.kern_version) == ("4.6", isa.LINUX_VERSION_CODE_4_6)


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


# --- every map type: its whole state survives a pin and get ---------------------------

def u32(v):
    return v.to_bytes(4, "little")


def u64b(v):
    return v.to_bytes(8, "little")


def got(path):
    """The map pinned at ``path`` as another process gets it: a new Map from the file."""
    pinning._live.clear()
    return Map.from_pin(path)


def got_program(path):
    """The program pinned at ``path`` as another process gets it: a new Program from
    the file (its maps those this process has)."""
    pinning._live_progs.clear()
    return Program.from_pin(path)


def touch(m, keys):
    """Run a program that looks ``keys`` up: program lookups mark LRU keys used (syscall
    lookups do not)."""
    lines = []
    for k in keys:
        lines += [f"*(u32 *)(r10 - 4) = {k}", f"r1 = map_fd({m.fd}) ll", "r2 = r10",
                  "r2 += -4", "call 1"]
    Program(asm.assemble("\n".join(lines + ["r0 = 0", "exit"])), "sched_cls").run(bytes(64))


def lru(kind="lru_hash"):
    """A full 4-entry LRU map of 2 CPUs whose keys a program has used (ref bits set, in
    the pending and the common lists alike)."""
    m = Map.create(kind, 4, 8, 4, ncpu=2)
    for k in range(4):
        m[u32(k)] = u64b(k)
    touch(m, [1, 3, 0, 2])
    return m


@pytest.mark.parametrize("kind", ["lru_hash", "lru_percpu_hash"])
def test_an_lru_map_evicts_after_a_pin_and_get_exactly_as_it_would_have(kind):
    reference = lru(kind)
    lru(kind).pin("lru")
    m = got("lru")
    assert m.items() == reference.items()           # the iteration order too
    for k in (10, 11, 12):
        reference[u32(k)] = bytes(8)
        m[u32(k)] = bytes(8)
        assert m.keys() == reference.keys()
    assert not {u32(k) for k in range(4)} <= set(m.keys())      # the LRU's state evicted


def test_a_later_process_evicts_from_a_pinned_lru_map_in_its_recency_order():
    reference = lru()
    lru().pin("lru")
    out = finish(child("import pyebpf\nm = pyebpf.Map.from_pin('lru')\n"
                       "for k in (10, 11):\n    m[k.to_bytes(4, 'little')] = bytes(8)\n"
                       "print(m.keys())"))
    for k in (10, 11):
        reference[u32(k)] = bytes(8)
    assert out.strip() == repr(reference.keys())
    assert not {u32(k) for k in range(4)} <= set(reference.keys())


def lru_history(flags):
    """A 16-entry LRU hash of 2 CPUs after inserts from both, program lookups and
    deletes: elements on the active, inactive and pending lists, free nodes on the free
    and local free lists, and nodes no pop has reached yet."""
    m = Map.create("lru_hash", 4, 8, 16, flags=flags, ncpu=2)
    for k in range(10):
        m.update(u32(k), u64b(k), on_cpu=k % 2)
    touch(m, [1, 4, 7])
    for k in (2, 5):
        del m[u32(k)]
    return m


def test_a_pinned_lru_maps_file_holds_its_elements_not_its_free_nodes(pin_root):
    # a free list is its length (docs/pinning.md, version 9): 16M free nodes cost no bytes
    m = Map.create("lru_hash", 4, 8, 1 << 24, ncpu=2)
    for k in range(3):
        m[u32(k)] = u64b(k)
    m.pin("lru")
    assert (pin_root / "lru").stat().st_size < 1024


def lpm_key(plen, addr):
    return u32(plen) + socket.inet_aton(addr)


ADDRESSES = [lpm_key(32, f"{a}.{b}.{c}.{d}") for a in (0, 10, 172, 192) for b in (0, 1, 2, 16)
             for c in (0, 1, 2, 3) for d in (0, 3)]


def lpm():
    """An IPv4 trie with intermediate nodes, one of them left by a deletion."""
    m = Map.create("lpm_trie", 8, 4, 16, isa.BPF_F_NO_PREALLOC)
    for i, (plen, addr) in enumerate([
            (0, "0.0.0.0"), (8, "10.0.0.0"), (16, "10.1.0.0"), (24, "10.1.2.0"),
            (24, "10.1.3.0"), (16, "10.2.0.0"), (32, "10.1.2.3"), (12, "172.16.0.0"),
            (24, "192.168.1.0")]):
        m[lpm_key(plen, addr)] = u32(i)
    del m[lpm_key(16, "10.1.0.0")]
    del m[lpm_key(24, "192.168.1.0")]
    return m


def test_an_lpm_trie_got_from_its_pin_answers_lookups_and_iterates_like_the_original():
    reference = lpm()
    lpm().pin("routes")
    m = got("routes")
    assert m.items() == reference.items()
    assert [m.lookup(a) for a in ADDRESSES] == [reference.lookup(a) for a in ADDRESSES]


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 16), st.integers(0, 0xFFFF)),
                max_size=40))
def test_re_inserting_an_lpm_tries_prefixes_gives_the_same_lookups_and_order(ops):
    """What the pin stores of a trie is its prefixes and values; the trie's shape (hence
    its get_next_key order) depends on them only, whatever the history of updates and
    deletions that made it."""
    m = Map.create("lpm_trie", 6, 4, 64, isa.BPF_F_NO_PREALLOC)
    for insert, plen, data in ops:
        key = u32(plen) + data.to_bytes(2, "big")
        if insert:
            m[key] = u32(data)
        elif key in m.keys():
            del m[key]
    copy = Map.create("lpm_trie", 6, 4, 64, isa.BPF_F_NO_PREALLOC)
    pin_format.load(copy, pin_format.dump(m))
    assert copy.items() == m.items()
    probes = [u32(16) + x.to_bytes(2, "big") for x in range(0, 0x10000, 97)]
    assert [copy.lookup(k) for k in probes] == [m.lookup(k) for k in probes]


def test_a_later_process_finds_the_longest_matching_prefixes_of_a_pinned_trie():
    m = lpm()
    m.pin("routes")
    out = finish(child(f"import pyebpf\nm = pyebpf.Map.from_pin('routes')\nprint(m.keys())\n"
                       f"print([m.lookup(a) for a in {ADDRESSES!r}])"))
    assert out.splitlines() == [repr(m.keys()), repr([m.lookup(a) for a in ADDRESSES])]


def outer_map(kind, slots=(2,)):
    """A pinned map of maps (template: a 1-entry u64 array) holding a pinned inner map
    (whose u64 is 41) in each of ``slots``."""
    outer = Map.create(kind, 4, 4, 4, name="outer",
                       inner_map=Map.create("array", 4, 8, 1, name="tmpl"))
    outer.pin("outer")
    for k in slots:
        inner = Map.create("array", 4, 8, 1)
        inner[KEY0] = u64b(41)
        inner.pin(f"inner{k}")
        outer[u32(k)] = inner
    return outer


@pytest.mark.parametrize("kind", ["array_of_maps", "hash_of_maps"])
def test_a_map_of_maps_keeps_its_template_and_inner_maps_through_a_pin_and_get(kind):
    outer = outer_map(kind, slots=(3, 0, 2))
    m = got("outer")
    t, want = m.inner_map, outer.inner_map
    assert (t.type, t.key_size, t.value_size, t.max_entries, t.flags, t.name) == \
        (want.type, want.key_size, want.value_size, want.max_entries, want.flags, want.name)
    used = [k for k in m.keys() if m.lookup(k) is not None]
    assert used == [k for k in outer.keys() if outer.lookup(k) is not None]
    assert [m.held(k) for k in used] == \
        [Map.from_pin(f"inner{u64(k)}") for k in used]


def outer_inner_counter(outer):
    """SCHED_CLS: add 1 to the u64 of the inner map in slot 2 of ``outer``; returns it."""
    return Program(asm.assemble(lookup_inner(outer.fd, 2, "miss", "miss") + """
        r1 = 1
        lock *(u64 *)(r0 + 0) += r1
        r0 = *(u64 *)(r0 + 0)
        exit
    miss:
        r0 = -1
        exit"""), "sched_cls")


@pytest.mark.parametrize("kind", ["array_of_maps", "hash_of_maps"])
def test_a_program_in_another_process_reaches_a_pinned_inner_map_through_its_outer_map(kind):
    outer = outer_map(kind)
    outer_inner_counter(outer).pin("count")
    out = finish(child("import pyebpf\n"
                       "print(pyebpf.Program.from_pin('count').run(bytes(64)).retval)"))
    assert out.strip() == "42"
    assert u64(Map.from_pin("inner2")[KEY0]) == 42


@pytest.mark.parametrize("kind, slot", [("array_of_maps", "slot 1"),
                                        ("hash_of_maps", "key 01000000")])
def test_a_map_of_maps_holding_an_unpinned_inner_map_cannot_be_pinned(pin_root, kind, slot):
    outer = Map.create(kind, 4, 4, 4, inner_map=Map.create("array", 4, 8, 1))
    outer[u32(1)] = Map.create("array", 4, 8, 1)
    with pytest.raises(PinError, match=f"{slot} holds .*, which is not pinned") as exc:
        outer.pin("outer")
    assert exc.value.errno == errno.EINVAL and not (pin_root / "outer").exists()


@pytest.mark.parametrize("kind", ["array_of_maps", "hash_of_maps"])
def test_putting_an_unpinned_inner_map_into_a_pinned_outer_map_is_refused_and_undone(kind):
    outer = outer_map(kind)
    with pytest.raises(PinError, match="which is not pinned") as exc:
        outer[u32(1)] = Map.create("array", 4, 8, 1)
    assert exc.value.errno == errno.EINVAL
    assert outer.lookup(u32(1)) is None and got("outer").lookup(u32(1)) is None


def perf_output(fd, flags):
    """SCHED_CLS: bpf_perf_event_output of 8 bytes (0x1122334455667788) to ``flags``."""
    return Program(asm.assemble(perf_output_prog(fd, flags)), "sched_cls")


EVENT = u64b(0x1122334455667788)


def test_a_perf_event_arrays_open_slots_and_counters_survive_a_pin_and_get():
    m = Map.create("perf_event_array", 4, 4, 4)
    m.open(1)
    m.open(2, cpu=0)
    m.set_counter(1, 1234)
    m.pin("events")
    g = got("events")
    read = Program(asm.assemble(f"r1 = map_fd({g.fd}) ll\nr2 = 0xffffffff ll\ncall 22\nexit"),
                   "sched_cls")
    assert read.run(bytes(64), cpu=1).retval == 1234
    outcomes = [perf_output(g.fd, slot).run(bytes(64), cpu=cpu).retval
                for slot, cpu in ((2, 0), (2, 2), (3, 3))]
    assert outcomes == [0, -errno.EOPNOTSUPP, -errno.ENOENT]


def test_undrained_perf_events_stay_with_the_process_that_produced_them():
    """Events are a delivery channel, as the kernel's perf ring buffers (mmapped by each
    reader) are: what a process produced and did not drain is its own."""
    m = Map.create("perf_event_array", 4, 4, 2)
    m.open(0)
    m.pin("events")
    perf_output(m.fd, 0).pin("emit")
    out = finish(child("import pyebpf\npyebpf.Program.from_pin('emit').run(bytes(64), cpu=0)\n"
                       "print(pyebpf.Map.from_pin('events').drain())"))
    assert out.strip() == repr([(0, EVENT)])
    assert m.drain() == []


def ring_output(fd):
    """SCHED_CLS: bpf_ringbuf_output of the packet's mark as a u64."""
    return Program(asm.assemble(f"""
        r6 = *(u32 *)(r1 + 8)
        *(u64 *)(r10 - 8) = r6
        r1 = map_fd({fd}) ll
        r2 = r10
        r2 += -8
        r3 = 8
        r4 = 0
        call 130
        exit"""), "sched_cls")


def test_a_ring_buffers_positions_and_undrained_records_survive_a_pin_and_get():
    m = Map.create("ringbuf", 0, 0, 4096)
    prog = ring_output(m.fd)
    for mark in range(200):
        prog.run(bytes(64), mark=mark)
    m.drain()
    for mark in range(200, 300):    # 16-byte records from 3200 to 4800: across the end
        prog.run(bytes(64), mark=mark)
    m.pin("ring")
    g = got("ring")
    assert (g.consumer_pos, g.producer_pos) == (3200, 4800)
    assert g.drain() == [u64b(mark) for mark in range(200, 300)]


def test_records_one_process_submits_to_a_pinned_ring_buffer_another_drains():
    m = Map.create("ringbuf", 0, 0, 4096)
    m.pin("ring")
    ring_output(m.fd).pin("emit")
    finish(child("import pyebpf\np = pyebpf.Program.from_pin('emit')\n"
                 "for mark in (7, 8, 9):\n    assert p.run(bytes(64), mark=mark).retval == 0"))
    out = finish(child("import pyebpf\nprint(pyebpf.Map.from_pin('ring').drain())"))
    assert out.strip() == repr([u64b(7), u64b(8), u64b(9)])
    assert m.consumer_pos == m.producer_pos == 48 and m.drain() == []


def stackid(fd, depth):
    """A raw program: ``depth - 1`` nested calls, then bpf_get_stackid (flags 0)."""
    lines = []
    for k in range(1, depth):
        lines += [f"call local f{k}", "exit", f"f{k}:"]
    return Program.from_asm("\n".join(lines + [f"lddw %r2, map_fd({fd})", "mov %r3, 0",
                                               "call 27", "exit"]),
                            helpers={27: "get_stackid"})


def test_stored_stacks_survive_a_pin_and_get():
    m = Map.create("stack_trace", 4, 32, 8)
    ids = [stackid(m.fd, depth).run().retval for depth in (1, 2, 3)]
    m.pin("stacks")
    g = got("stacks")
    assert len(g) == 3 and g.items() == m.items()
    # the same stacks find their stored hashes again (a lost hash would be EEXIST)
    assert [stackid(g.fd, depth).run().retval for depth in (1, 2, 3)] == ids


# --- the format: version 1 is still read; damaged sections are refused -----------------

def test_a_version_1_pin_file_is_still_read(pin_root):
    m = Map.create("hash", 4, 8, 4)
    m[KEY0] = u64b(5)
    m.pin("old")
    # version 1's layout: no key or value BTF after the definition (a map named ""), nor
    # whether it is frozen
    _rewrite_body(pin_root / "old", lambda b: b.__delitem__(
        slice(pinning.MAP_DEF.size, pinning.MAP_DEF.size + 2 * pinning.MAP_BTF.size
              + pinning.MAP_STATE.size)))
    raw = bytearray((pin_root / "old").read_bytes())
    raw[8] = 1
    (pin_root / "old").write_bytes(bytes(raw))
    assert got("old").items() == [(KEY0, u64b(5))]


def test_the_core_imports_no_pinning_and_the_pin_format_is_a_module_of_its_own(pin_root):
    env, cwd = child_python()
    script = ("import sys; from pyebpf import _core, pin_format\n"
              "assert 'pyebpf.pinning' not in sys.modules, 'the core imported pinning'\n"
              "assert pin_format.__file__ != _core.__file__\n"
              "from pyebpf import Map\n"
              "Map.create('array', 4, 4, 1).pin('m')\n"
              "print(sorted(m for m in sys.modules if m.startswith('pyebpf.pin')))")
    out = subprocess.run([sys.executable, "-c", script], env=env, cwd=cwd,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['pyebpf.pin_format', 'pyebpf.pinning']"


V2_FILES = Path(__file__).parent / "pin_files" / "v2"


def test_version_2_pin_files_made_by_pyebpf_before_queues_are_still_read(pin_root):
    # made by pyebpf when it wrote version 2: a ZERO_SEED hash of 5 keys, an LRU hash
    # of 4 that saw 6 inserts, an LPM trie of two prefixes
    for name in ("hash", "lru", "lpm"):
        (pin_root / name).write_bytes((V2_FILES / name).read_bytes())
        (pin_root / name).chmod(0o600)
    assert got("hash").items() == [(u32(k), u64b(k * 11)) for k in (0, 4, 2, 1, 3)]
    assert got("lru").items() == [(u32(k), u32(k * 3)) for k in (4, 5, 2, 3)]
    assert got("lpm").items() == [(u32(24) + bytes([10, 1, 2, 0]), u32(2)),
                                  (u32(16) + bytes([10, 1, 0, 0]), u32(1))]
    m = got("hash")
    m[u32(9)] = u64b(99)        # a write-back is the current version
    assert pinning.HEADER.unpack_from((pin_root / "hash").read_bytes())[1] == pinning.VERSION


V6_FILES = Path(__file__).parent / "pin_files" / "v6"


def test_version_6_pin_files_without_value_btf_are_still_read(pin_root):
    # made by pyebpf when it wrote version 6: an array of a value holding a bpf_timer,
    # with 7 and 9 around the timer of element 1; an array of maps whose inner map holds
    # a timer too (the template's definition is followed by the contents)
    for name in ("tarr", "inner", "outer"):
        (pin_root / name).write_bytes((V6_FILES / name).read_bytes())
        (pin_root / name).chmod(0o600)
    tarr = got("tarr")
    assert tarr.lookup(u32(1)) == u32(7) + bytes(20) + u32(9) + bytes(4)
    assert (tarr.value_type, tarr.timer_off) == (None, None)    # version 6 kept no BTF
    outer = got("outer")
    assert (outer.inner_map.value_size, outer.inner_map.max_entries) == (24, 1)
    assert list(outer.keys()) == [u32(0)]


SPECIAL = r"""
struct bpf_wq { __u64 :64; __u64 :64; } __attribute__((aligned(8)));
struct val { struct bpf_spin_lock lock; int n; struct bpf_timer t; struct bpf_wq w; };
struct {
    __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 4);
    __type(key, __u32); __type(value, struct val);
} special SEC(".maps");
int counter = 5;
char _license[] SEC("license") = "GPL";
SEC("tc") int prog(struct __sk_buff *skb)
{ __u32 k = 0; struct val *v = bpf_map_lookup_elem(&special, &k); return (v ? v->n : 0) + counter; }
"""


def _special_object():
    from bpfc import compile_object
    return pyebpf.load(compile_object(SPECIAL, flags=("-O2", "-mcpu=v3")), pin=False)


def test_a_pinned_map_keeps_its_key_and_value_btf_and_so_its_special_fields(pin_root):
    obj = _special_object()
    m = obj.maps["special"]
    m[u32(3)] = bytes(4) + u32(11) + bytes(m.value_size - 8)
    m.pin("special")
    back = got("special")
    assert back is not m
    assert (back.spin_lock_off, back.timer_off, back.wq_off) == \
        (m.spin_lock_off, m.timer_off, m.wq_off) == (0, 8, 24)
    assert back.key_type.describe() == m.key_type.describe()
    assert back.value_type.describe() == m.value_type.describe()
    assert back.decode_value(back.lookup(u32(3)))["n"] == 11


def test_a_damaged_value_btf_is_a_one_line_pin_error_naming_the_file(pin_root):
    m = _special_object().maps["special"]
    m.pin("special")
    key_btf = pinning.MAP_DEF.size + len("special") + pinning.MAP_BTF.size
    _rewrite_body(pin_root / "special", lambda b: b.__setitem__(key_btf, 0))   # its magic
    with pytest.raises(PinError, match="map definition unreadable") as exc:
        got("special")
    assert exc.value.errno == errno.EINVAL
    assert str(pin_root / "special") in str(exc.value) and "\n" not in str(exc.value)

def test_a_pinned_global_data_map_keeps_its_sections_variables(pin_root):
    obj = _special_object()
    data = next(m for name, m in obj.maps.items() if name.endswith(".data"))
    data.pin("data")
    back = got("data")
    assert [v.offset for v in back.value_type.vars] == [v.offset for v in data.value_type.vars]
    assert back.decode_value(back.lookup(bytes(4))) == {"counter": 5}


def test_a_map_value_type_of_no_btf_is_refused_when_pinned(pin_root):
    from pyebpf.btf.types import Kind, Type
    m = Map.create("array", 4, 4, 1)
    m.value_type = Type(1, Kind.INT, "int", 0, size=4, nr_bits=32)
    with pytest.raises(PinError, match="its value type 'int' belongs to no BTF") as exc:
        m.pin("m")
    assert exc.value.errno == errno.EINVAL

@pytest.mark.parametrize("version, kind, key_size, value_size", [
    (2, "queue", 0, 4), (4, "sockmap", 4, 8), (7, "devmap", 4, 4), (7, "xskmap", 4, 4),
    (7, "reuseport_sockarray", 4, 8), (9, "cgroup_array", 4, 4)],
    ids=["queue-in-version-2", "sockmap-in-version-4", "devmap-in-version-7",
         "xskmap-in-version-7", "reuseport-array-in-version-7", "cgroup-array-in-version-9"])
def test_an_older_version_file_cannot_hold_a_map_type_it_did_not_have(pin_root, version, kind,
                                                                      key_size, value_size):
    m = Map.create(kind, key_size, value_size, 2)
    m.pin("m")
    raw = bytearray((pin_root / "m").read_bytes())
    raw[8] = version
    (pin_root / "m").write_bytes(bytes(raw))
    with pytest.raises(PinError, match=f"version {version} pin file cannot hold a map of "
                                       f"type {int(m.type)}") as exc:
        got("m")
    assert exc.value.errno == errno.EINVAL


def test_a_pinned_stack_shared_with_another_map_object_pops_in_order(pin_root):
    m = Map.create("stack", 0, 4, 4)
    m.pin("s")
    for v in (1, 2, 3):
        m.push(u32(v))
    other = got("s")
    assert [other.pop(), other.pop()] == [u32(3), u32(2)]
    assert m.pop() == u32(1) and m.pop() is None


def _rewrite_body(path, change):
    """Change a pin file's body and give it a valid checksum: damage the checksum cannot
    see."""
    raw = path.read_bytes()
    _, _, kind, pin_id, generation, _, _ = pinning.HEADER.unpack_from(raw)
    body = bytearray(raw[pinning.HEADER.size:])
    change(body)
    pinning._write(str(path), kind, pin_id, generation + 1, bytes(body))


def _ring_with_records():
    m = Map.create("ringbuf", 0, 0, 4096)
    ring_output(m.fd).run(bytes(64), mark=1)
    return m


def _stacks():
    m = Map.create("stack_trace", 4, 16, 4)
    stackid(m.fd, 2).run()
    return m


def _set(at, data):
    def change(body):
        body[at:at + len(data)] = data
    return change


def _version_1(path):
    raw = bytearray(path.read_bytes())
    raw[8] = 1
    path.write_bytes(bytes(raw))


# the definition ends here (maps named "", without key or value BTF), then whether the
# map is frozen, then the contents
DEF = pinning.MAP_DEF.size + 2 * pinning.MAP_BTF.size
AT = DEF + pinning.MAP_STATE.size

DAMAGE = {
    "frozen": (lambda: Map.create("array", 4, 4, 1), _set(DEF, b"\x02"), errno.EINVAL,
               "map state unreadable"),
    "lru-size": (lru, lambda b: b.pop(), errno.EINVAL, "do not fit its definition"),
    "lru-lists": (lru, lambda b: b.__setitem__(slice(-4, None), u32(7)), errno.EINVAL,
                  "LRU lists do not fit"),
    "lpm-prefix-too-long": (lpm, _set(AT, u32(33)), errno.EINVAL, "LPM entry is refused"),
    "lpm-prefix-twice": (lpm, lambda b: b.__setitem__(slice(AT + 12, AT + 24),
                                                      b[AT:AT + 12]),
                         errno.EINVAL, "LPM entry is refused"),
    "perf-slot": (lambda: Map.create("perf_event_array", 4, 4, 2), _set(AT, b"\xfb\xff\xff\xff"),
                  errno.EINVAL, "perf event slot"),
    "ring-positions": (_ring_with_records, _set(AT + 8, u64b(8)), errno.EINVAL,
                       "ring buffer positions"),
    "stack-hash": (_stacks, lambda b: b.__setitem__(AT + 4, b[AT + 4] ^ 0x10),
                   errno.EINVAL, "stack entry does not match"),
    "template": (lambda: outer_map("array_of_maps"), _set(DEF + 20, u32(99)), errno.EINVAL,
                 "inner map template refused"),
    "slot-list": (lambda: outer_map("hash_of_maps"), lambda b: b.pop(), errno.EINVAL,
                  "slot list unreadable"),
    "slot-missing-inner-pin": (lambda: outer_map("array_of_maps"),
                               lambda b: b.__setitem__(slice(-6, None), b"gone!!"),
                               errno.ENOENT, "slot 2: no pinned map at"),
}


@pytest.mark.parametrize("case", DAMAGE)
def test_a_damaged_section_is_a_one_line_pin_error_naming_the_file(pin_root, case):
    build, change, want_errno, message = DAMAGE[case]
    m = build()
    if m._pin is None:
        m.pin("outer")
    path = pin_root / "outer"
    _rewrite_body(path, change)
    with pytest.raises(PinError, match=message) as exc:
        got("outer")
    assert exc.value.errno == want_errno
    assert str(path) in str(exc.value) and "\n" not in str(exc.value)


def test_a_version_1_file_cannot_hold_the_newer_map_types(pin_root):
    lru().pin("outer")
    _version_1(pin_root / "outer")
    with pytest.raises(PinError, match="version 1 pin file cannot hold a map of type 9") as exc:
        got("outer")
    assert exc.value.errno == errno.EINVAL


def test_a_damaged_file_met_by_a_linked_map_is_refused_and_left_as_it_is(pin_root):
    m = lru()
    m.pin("lru")
    _rewrite_body(pin_root / "lru", lambda b: b.pop())
    damaged = (pin_root / "lru").read_bytes()
    with pytest.raises(PinError, match="do not fit"):
        m[u32(9)] = bytes(8)
    assert (pin_root / "lru").read_bytes() == damaged


# --- socket maps ------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["sockmap", "sockhash"])
@pytest.mark.parametrize("value_size", [4, 8], ids=["fd-values", "cookie-values"])
def test_a_pinned_socket_map_keeps_the_cookies_of_its_sockets(pin_root, kind, value_size):
    m = Map.create(kind, 4, value_size, 4)
    m.update(u32(1), 4097)
    m.update(u32(3), 1 << 60)
    m.pin("socks")
    want = pin_format.dump(m)
    assert len(want) == (4 * 8 if kind == "sockmap" else 2 * (4 + 8))
    assert pin_format.dump(got("socks")) == want


def test_another_process_reads_the_socket_cookies_a_pinned_socket_map_holds(pin_root):
    m = Map.create("sockhash", 4, 8, 4)
    m.update(u32(7), 4242)
    m.pin("socks")
    out = finish(child("import pyebpf\nm = pyebpf.Map.from_pin('socks')\n"
                       "print(int.from_bytes(m.lookup((7).to_bytes(4, 'little')), 'little'))",
                       env={"PYEBPF_PIN_ROOT": str(pin_root)}))
    assert out.strip() == "4242"
GLOBAL_AND_CALLBACK = """
static long add(__u32 i, void *data) { *(__u32 *)data += i; return 0; }
__attribute__((noinline)) int twice(int x) { return x * 2; }
SEC("tc") int prog(struct __sk_buff *skb)
{
    __u32 sum = 0;
    bpf_loop(4, add, &sum, 0);
    return twice(sum);
}
"""


def test_a_program_got_from_its_pin_is_verified_with_its_function_info_and_license():
    """A program with a callback (which needs BTF function info) and a global function
    (verified on its own from its prototype), licensed Dual BSD/GPL: got from its pin it
    is verified as when it was loaded, and runs as the kernel runs the object."""
    from bpfc import compile_object
    from objdiff import same_retval
    data = compile_object("char _license[] SEC(\"license\") = \"Dual BSD/GPL\";\n"
                          + GLOBAL_AND_CALLBACK)
    assert same_retval(data, bytes(64)) == 12
    prog = pyebpf.load(data).program("prog")
    assert prog.func_info and [f.name for f in prog.functions] == ["twice"]
    prog.pin("prog")
    got = got_program("prog")
    assert (got.func_info, got.functions, got.license) == \
        (True, prog.functions, "Dual BSD/GPL")
    assert got.run(bytes(64)).retval == 12


# --- XDP redirect maps, cgroup storage, reuseport arrays (version 8) ----------------------

def _version_8_maps() -> dict:
    """A map of each type version 8 added, holding what pyebpf lets them hold: devices
    by ifindex (lo), queue sizes of the modelled CPUs; XSKMAPs and cgroup storage stay
    empty (no AF_XDP sockets, no attached cgroup)."""
    T = isa.MapType
    dev = Map.create(T.BPF_MAP_TYPE_DEVMAP, 4, 8, 4)
    dev.update(u32(2), u32(1) + u32(0))
    dev_hash = Map.create(T.BPF_MAP_TYPE_DEVMAP_HASH, 4, 4, 4)
    for key in (9, 5, 17):
        dev_hash.update(u32(key), u32(1))
    cpus = Map.create(T.BPF_MAP_TYPE_CPUMAP, 4, 8, 4, ncpu=3)
    cpus.update(u32(2), u32(64) + u32(0))
    return {"devmap": dev, "devmap_hash": dev_hash, "cpumap": cpus,
            "xskmap": Map.create(T.BPF_MAP_TYPE_XSKMAP, 4, 4, 2, isa.BPF_F_WRONLY),
            "cgroup_storage": Map.create(T.BPF_MAP_TYPE_CGROUP_STORAGE, 16, 4, 0),
            "percpu_cgroup_storage": Map.create(T.BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE, 8, 4, 0,
                                                ncpu=2)}


def _definition(m) -> tuple:
    return (m.type, m.key_size, m.value_size, m.max_entries, m.flags, m.ncpu, m.lru_cpus)


@pytest.mark.parametrize("name", ["devmap", "devmap_hash", "cpumap", "xskmap", "cgroup_storage",
                                  "percpu_cgroup_storage"])
def test_the_maps_version_8_added_keep_their_definition_and_slots_through_a_pin_and_get(
        pin_root, name):
    m = _version_8_maps()[name]
    m.pin(name)
    assert pinning.HEADER.unpack_from((pin_root / name).read_bytes())[1] == pinning.VERSION
    again = got(name)
    assert _definition(again) == _definition(m)
    assert pin_format.dump(again) == pin_format.dump(m)
    if not m.flags & isa.BPF_F_WRONLY and name != "xskmap":
        assert list(again.keys()) == list(m.keys())
        assert [again.lookup(k) for k in again.keys()] == [m.lookup(k) for k in m.keys()]


def test_another_process_looks_up_the_devices_and_queues_of_pinned_xdp_maps(pin_root):
    """What is kept is what the slots hold: a devmap's ifindexes (the reader's network
    namespace is not consulted again) and a cpumap's queue sizes, for the CPUs the
    writer modelled (a CPU past them stays ENODEV)."""
    maps = _version_8_maps()
    maps["devmap_hash"].pin("ports")
    maps["cpumap"].pin("cpus")
    out = finish(child("import pyebpf\n"
                       "from pyebpf.errors import MapError\n"
                       "k = lambda v: v.to_bytes(4, 'little')\n"
                       "ports, cpus = (pyebpf.Map.from_pin(p) for p in ('ports', 'cpus'))\n"
                       "print([ports.lookup(n).hex() for n in ports.keys()])\n"
                       "print(cpus.lookup(k(2)).hex(), cpus.lookup(k(0)))\n"
                       "try:\n"
                       "    cpus.update(k(3), k(8) + k(0))\n"
                       "except MapError as e:\n"
                       "    print(e.errno)\n",
                       env={"PYEBPF_PIN_ROOT": str(pin_root)}))
    assert out.split("\n")[:3] == [str([u32(1).hex()] * 3), f"{(u32(64) + u32(0)).hex()} None",
                                   str(errno.ENODEV)]


def test_a_pinned_reuseport_array_keeps_the_cookies_of_its_sockets(pin_root):
    """The reader gets the cookie of the socket while it is open, and none once this
    process (which put it in) has closed it."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind(("127.0.0.1", 0))
        m = Map.create(isa.MapType.BPF_MAP_TYPE_REUSEPORT_SOCKARRAY, 4, 8, 2)
        m.update(u32(1), s.fileno().to_bytes(8, "little"))
        m.pin("servers")
        cookie = s.getsockopt(socket.SOL_SOCKET, isa.SO_COOKIE, 8)
        again = got("servers")
        assert (again.lookup(u32(0)), again.lookup(u32(1))) == (None, cookie)
    assert got("servers").lookup(u32(1)) is None


def test_a_pinned_xskmap_keeps_its_sockets_for_the_programs_of_another_process(pin_root,
                                                                            net_raw):
    with socket.socket(isa.AF_XDP, socket.SOCK_RAW) as xsk:
        m = Map.create(isa.MapType.BPF_MAP_TYPE_XSKMAP, 4, 4, 2)
        m.update(u32(1), u32(xsk.fileno()))
        m.pin("xsks")
        out = finish(child(f"""
import pyebpf
from pyebpf import asm
m = pyebpf.Map.from_pin("xsks")
for key in (0, 1):
    prog = asm.assemble(f\"\"\"
        *(u32 *)(r10 - 4) = {{key}}
        r1 = map_fd({{m.fd}}) ll
        r2 = r10
        r2 += -4
        call 1
        if r0 == 0 goto miss
        r0 = *(u32 *)(r0 + 0)
        exit
    miss:
        r0 = 7
        exit\"\"\")
    print(pyebpf.Program(prog, "sched_cls").run(bytes(64)).retval)
""", env={"PYEBPF_PIN_ROOT": str(pin_root)}))
    assert out.split() == ["7", "0"]       # slot 0 empty, slot 1 the socket's queue 0


def test_an_object_reuses_the_devmap_it_pinned_by_name(pin_root):
    """The pinned devmap's flags have the BPF_F_RDONLY_PROG its creation added, which
    the declaration has not: ignored, as libbpf's map_is_reuse_compat does."""
    from bpfc import compile_object
    from mapcheck import pinned_by_name
    source = pinned_by_name("""
struct { __uint(type, BPF_MAP_TYPE_DEVMAP); __type(key, __u32); __type(value, __u32);
         __uint(max_entries, 2);
} ports SEC(".maps");
SEC("tc") int prog(struct __sk_buff *skb)
{ __u32 k = 1; __u32 *v = bpf_map_lookup_elem(&ports, &k); return v ? *v : 9; }
char _license[] SEC("license") = "GPL";
""", "ports")
    data = compile_object(source)
    first = pyebpf.load(data)
    first.maps["ports"].update(u32(1), u32(1))
    second = pyebpf.load(data)
    assert second.maps["ports"].lookup(u32(1)) == u32(1)
    assert second.program("prog").run(bytes(64)).retval == 1


V8_FILES = Path(__file__).parent / "pin_files" / "v8"


def _as_version_8(path, change):
    """Change a version 8 pin file's body, keeping its version, with a valid checksum."""
    raw = path.read_bytes()
    _, _, kind, pin_id, generation, _, _ = pinning.HEADER.unpack_from(raw)
    body = bytearray(raw[pinning.HEADER.size:])
    change(body)
    digest = hashlib.blake2b(bytes(body), digest_size=16).digest()
    path.write_bytes(pinning.HEADER.pack(pinning.MAGIC, 8, kind, pin_id, generation,
                                         len(body), digest) + bytes(body))


@pytest.mark.parametrize("name, flags", [("lru", 0), ("lru-no-common", isa.BPF_F_NO_COMMON_LRU)])
def test_version_8_lru_pin_files_listing_each_free_node_are_still_read(pin_root, name, flags):
    # made by pyebpf when it wrote version 8, from lru_history(flags): its free lists
    # listed their nodes; read, they hold the same state as the map made again now
    (pin_root / name).write_bytes((V8_FILES / name).read_bytes())
    (pin_root / name).chmod(0o600)
    assert pinning.HEADER.unpack_from((pin_root / name).read_bytes())[1] == 8
    m, reference = got(name), lru_history(flags)
    assert pin_format.dump(m) == pin_format.dump(reference)
    for k in range(20, 40):
        m.update(u32(k), u64b(k), on_cpu=k % 2)
        reference.update(u32(k), u64b(k), on_cpu=k % 2)
        assert m.items() == reference.items(), f"after inserting key {k}"


def test_a_version_8_lru_free_list_naming_an_element_is_einval(pin_root):
    (pin_root / "lru").write_bytes((V8_FILES / "lru").read_bytes())
    (pin_root / "lru").chmod(0o600)
    # CPU 1's local free list ends before its pending list's length and one node, the
    # rotation and the two steals: its last node becomes element 0
    _as_version_8(pin_root / "lru", lambda b: b.__setitem__(slice(-24, -20), u32(0)))
    with pytest.raises(PinError, match="a free list names an element") as exc:
        got("lru")
    assert exc.value.errno == errno.EINVAL


V7_FILES = Path(__file__).parent / "pin_files" / "v7"


def test_version_7_pin_files_are_still_read(pin_root):
    # made by pyebpf when it wrote version 7: an array of 4 u32 (slot k holds k * 5)
    # and a hash of 3 keys (k -> k * 7) in its iteration order
    for name in ("array", "hash"):
        (pin_root / name).write_bytes((V7_FILES / name).read_bytes())
        (pin_root / name).chmod(0o600)
        assert pinning.HEADER.unpack_from((pin_root / name).read_bytes())[1] == 7
    assert got("array").items() == [(u32(k), u32(k * 5)) for k in range(4)]
    assert sorted(got("hash").items()) == [(u32(k), u32(k * 7)) for k in (1, 2, 3)]
    m = got("array")
    m[u32(0)] = u32(1)        # a write-back is the current version
    assert pinning.HEADER.unpack_from((pin_root / "array").read_bytes())[1] == pinning.VERSION


# --- frozen maps (version 10) ---------------------------------------------------------------

def _frozen_array():
    m = Map.create("array", 4, 4, 1, flags=isa.BPF_F_RDONLY_PROG)
    m[KEY0] = u32(7)
    m.freeze()
    return m


@pytest.mark.parametrize("write", ["update", "delete", "freeze"])
def test_a_map_got_from_the_pin_of_a_frozen_map_refuses_user_space_writes(pin_root, write):
    """The kernel's pinned map is the frozen map itself (map_get_sys_perms: no write)."""
    _frozen_array().pin("ro")
    m = got("ro")
    with pytest.raises(MapError, match="the map is frozen") as exc:
        {"update": lambda: m.update(KEY0, u32(8)), "delete": lambda: m.delete(KEY0),
         "freeze": m.freeze}[write]()
    assert (m.frozen, exc.value.errno, m[KEY0]) == (True, errno.EPERM, u32(7))


def test_a_map_frozen_after_its_pin_is_frozen_for_the_process_that_got_it_before(pin_root):
    m = Map.create("array", 4, 4, 1)
    m.pin("late")
    finish(child("import pyebpf\npyebpf.Map.from_pin('late').freeze()\n",
                 env={"PYEBPF_PIN_ROOT": str(pin_root)}))
    with pytest.raises(MapError, match="the map is frozen") as exc:
        m.update(KEY0, u32(1))
    assert (exc.value.errno, m.frozen) == (errno.EPERM, True)


def test_an_unfrozen_map_stays_writable_through_its_pin(pin_root):
    Map.create("array", 4, 4, 1).pin("rw")
    m = got("rw")
    m[KEY0] = u32(3)
    assert (m.frozen, got("rw")[KEY0]) == (False, u32(3))


V9_FILES = Path(__file__).parent / "pin_files" / "v9"


def test_version_9_pin_files_read_as_maps_not_frozen(pin_root):
    # made by pyebpf when it wrote version 9: an array of 4 u32 (slot k holds k * 5), an
    # array of maps holding at slot 1 an array whose slot 0 holds 6 (whether a map is
    # frozen comes after its template's definition)
    for name in ("array", "inner", "outer"):
        (pin_root / name).write_bytes((V9_FILES / name).read_bytes())
        (pin_root / name).chmod(0o600)
        assert pinning.HEADER.unpack_from((pin_root / name).read_bytes())[1] == 9
    m, outer = got("array"), got("outer")
    assert m.items() == [(u32(k), u32(k * 5)) for k in range(4)]
    assert (m.frozen, outer.frozen, outer.inner_map.max_entries) == (False, False, 1)
    assert got("inner")[KEY0] == u32(6)
    m[u32(0)] = u32(1)        # a write-back is the current version
    assert pinning.HEADER.unpack_from((pin_root / "array").read_bytes())[1] == pinning.VERSION


# --- cgroup arrays (version 10) -------------------------------------------------------------

def test_a_pinned_cgroup_array_keeps_its_cgroups_ids(pin_root):
    """Each slot keeps the id of its cgroup (of the Environment the programs run in):
    bpf_skb_under_cgroup on the map got from the pin answers as on the map pinned."""
    from pyebpf.environment import Environment, PacketSocket
    from cgroup_support import SKB_UNDER_CGROUP, under_prog
    tree = Environment(cgroups=(("/", 1), ("/a", 10), ("/a/b", 11), ("/c", 20)),
                       socket=PacketSocket(cgroup="/a/b"))
    m = Map.create(isa.MapType.BPF_MAP_TYPE_CGROUP_ARRAY, 4, 4, 4)
    m.update(u32(1), 10)
    m.update(u32(2), 20)
    m.pin("cgroups")
    g = got("cgroups")

    def answers(a):
        return [Program(asm.assemble(under_prog(SKB_UNDER_CGROUP, a.fd, i)), "sched_cls").run(
            bytes(64), env=tree).retval for i in range(4)]
    assert answers(g) == answers(m) == [-errno.EAGAIN, 1, 0, -errno.EAGAIN]


# --- BPF_F_MMAPABLE arrays: one set of values, mapped by every process -----------------

MMAPABLE = isa.BPF_F_MMAPABLE


def _reader(fd, key):
    """SCHED_CLS: the u32 at the start of ``key``'s value, 0 for none."""
    return Program(asm.assemble(lookup_key(fd, key) + """
        if r0 == 0x0 goto out
        r0 = *(u32 *)(r0 + 0x0)
        exit
    out:
        r0 = 0
        exit"""), "sched_cls")


def test_a_mapping_of_a_pinned_array_shows_what_another_processs_program_writes():
    """The kernel's pinned map is one object: its mapping in one process shows what a
    program run in another writes, with no call between (the mapping was made before
    the pin: it stays the map's storage)."""
    m = Map.create("array", 4, 8, 1, MMAPABLE)
    view = m.mmap()
    m.pin("counts")
    counter(m.fd).pin("count")
    finish(child("import pyebpf\nprog = pyebpf.Program.from_pin('count')\n"
                 "for _ in range(5):\n    prog.run(bytes(64))"))
    assert u64(view[0:8]) == 5


def test_another_processs_program_reads_what_this_processs_mapping_wrote():
    m = Map.create("array", 4, 4, 4, MMAPABLE)
    m.pin("values")
    _reader(m.fd, 3).pin("read")
    m.mmap()[24:28] = u32(0x1234)        # value 3, at 3 * 8
    out = finish(child("import pyebpf\n"
                       "print(pyebpf.Program.from_pin('read').run(bytes(64)).retval)"))
    assert int(out) == 0x1234


def test_two_processes_mappings_of_a_pinned_array_are_the_same_memory():
    """A child writes through its mapping (a window from the third page); the parent's
    mapping and lookups see it, and the child's mapping sees the parent's answer, while
    both hold their mappings."""
    m = Map.create("array", 4, 4, 2000, MMAPABLE)     # 16,000 bytes: four pages
    m.pin("shared")
    proc = child("""
import sys, pyebpf
view = pyebpf.Map.from_pin("shared").mmap(offset=8192)
view[4000:4004] = (77).to_bytes(4, "little")     # value 1524, at 12,192
print("written", flush=True)
sys.stdin.readline()
print(int.from_bytes(view[0:4], "little"))       # value 1024, at 8,192
""", stdin=subprocess.PIPE)
    assert proc.stdout.readline() == "written\n"
    view = m.mmap()
    seen = (bytes(view[12192:12196]), m.lookup(u32(1524)))
    m.update(u32(1024), u32(88))
    out, err = proc.communicate("go\n", timeout=120)
    assert (seen, out, proc.returncode) == ((u32(77), u32(77)), "88\n", 0), err


def test_a_freeze_in_another_process_refuses_this_ones_writable_mapping_and_updates():
    m = Map.create("array", 4, 4, 4, MMAPABLE)
    m.pin("frozen")
    finish(child("import pyebpf\npyebpf.Map.from_pin('frozen').freeze()"))
    errnos = []
    for write in (lambda: m.mmap(), lambda: m.update(u32(0), u32(1))):
        with pytest.raises(MapError) as exc:
            write()
        errnos.append(exc.value.errno)
    assert (errnos, bytes(m.mmap(writable=False)[0:4])) == ([errno.EPERM] * 2, u32(0))


def test_a_pinned_mmapable_arrays_file_holds_its_values_from_a_page_boundary(pin_root):
    m = Map.create("array", 4, 4, 1000, MMAPABLE)     # 8,000 bytes: two pages
    m.update(u32(999), u32(0x99))
    m.pin("paged")
    raw = (pin_root / "paged").read_bytes()
    (at,) = pinning.VALUES_AT.unpack_from(raw, 12)
    assert (at % os.sysconf("SC_PAGE_SIZE"), len(raw) - at, raw[at + 7992:at + 7996]) == \
        (0, 8192, u32(0x99))


def test_a_version_10_pin_file_of_an_mmapable_array_is_read_and_then_shared(pin_root):
    """Version 10 held the values as the array's contents: a process getting it rewrites
    it as version 11 (under its lock), after which another process shares the values."""
    m = Map.create("array", 4, 4, 3, MMAPABLE)
    m.update(u32(2), u32(0x22))
    body = pinning._map_def(m) + pinning.MAP_STATE.pack(False) + pin_format.dump(m)
    digest = hashlib.blake2b(body, digest_size=16).digest()
    (pin_root / "old").write_bytes(pinning.HEADER.pack(
        pinning.MAGIC, 10, pinning.KIND_MAP, os.urandom(16), 0, len(body), digest) + body)
    (pin_root / "old").chmod(0o600)
    got_ = got("old")
    view = got_.mmap()
    finish(child("import pyebpf\npyebpf.Map.from_pin('old').update("
                 "(1).to_bytes(4, 'little'), (0x11).to_bytes(4, 'little'))"))
    assert (pinning.HEADER.unpack_from((pin_root / "old").read_bytes())[1],
            bytes(view[8:12]), bytes(view[16:20])) == (pinning.VERSION, u32(0x11), u32(0x22))


def test_a_pin_file_cut_inside_its_values_is_einval(pin_root):
    Map.create("array", 4, 4, 1000, MMAPABLE).pin("cut")
    os.truncate(pin_root / "cut", os.path.getsize(pin_root / "cut") - 4096)
    with pytest.raises(PinError, match="cut: pin file truncated inside its values "
                                       r"\(8192 of 12288 bytes\)") as exc:
        got("cut")
    assert exc.value.errno == errno.EINVAL


def test_a_writable_mapping_in_another_process_makes_freeze_ebusy_until_released():
    """map_freeze counts every process's writable mappings (bpf_map_write_active)."""
    m = Map.create("array", 4, 4, 4, MMAPABLE)
    m.pin("mapped")
    proc = child("""
import sys, pyebpf
m = pyebpf.Map.from_pin("mapped")
read_only, writable = m.mmap(writable=False), m.mmap()
print("mapped", flush=True)
sys.stdin.readline()
writable.release()
print("released", flush=True)
sys.stdin.readline()
""", stdin=subprocess.PIPE)
    answers = []
    for step in ("mapped\n", "released\n"):
        assert proc.stdout.readline() == step
        try:
            m.freeze()
            answers.append(0)
        except MapError as exc:
            answers.append(exc.errno)
        proc.stdin.write("go\n")
        proc.stdin.flush()
    finish(proc)
    assert answers == [errno.EBUSY, 0]


def test_a_writable_mappings_count_ends_with_its_process():
    m = Map.create("array", 4, 4, 4, MMAPABLE)
    m.pin("crashed")
    finish(child("import os, pyebpf\nview = pyebpf.Map.from_pin('crashed').mmap()\n"
                 "os._exit(0)"))
    m.freeze()
    assert m.frozen


def test_a_program_got_from_its_pin_in_the_pinning_process_is_the_program_itself():
    """BPF_OBJ_GET gives the pinned program, whose id it keeps (a program array's lookup
    gives the same id whichever handle put it there)."""
    m = Map.create("array", 4, 8, 1)
    m.pin("counts")
    prog = counter(m.fd)
    prog.pin("count")
    got_ = Program.from_pin("count")
    assert (got_ is prog, got_.id) == (True, prog.id)
