"""bpf_spin_lock and BPF_F_LOCK against the kernel: map values holding a struct
bpf_spin_lock (found in their BTF), the maps BPF_MAP_CREATE makes of them, programs
that take and give back the lock (retvals and map contents after BPF_PROG_TEST_RUN),
the verifier's refusals with the kernel's words, and the element commands that copy a
value under its lock (the lock itself reads as zeroes)."""
from __future__ import annotations

import errno
import json
import struct

import pytest

import pyebpf
from pyebpf import Map, asm, elf, isa
from pyebpf.errors import KernelError, MapError

from bpfc import compile_object
import mapcheck
from mapcheck import created, lookup_key, u32
from objdiff import refused_alike
from recorded_kernel import count_comparison

T = isa.MapType
PACKET = bytes(range(64))

MAPS = r"""
struct val { int cnt; struct bpf_spin_lock lock; int data; };
struct bare { int cnt; int data; int more; };
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
    __type(key, __u32); __type(value, struct val);
} arr SEC(".maps");
struct {
    __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 4);
    __type(key, __u32); __type(value, struct val);
} h SEC(".maps");
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
    __type(key, __u32); __type(value, struct bare);
} plain SEC(".maps");
struct first { struct bpf_spin_lock lock; int cnt; };
struct {
    __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 4);
    __type(key, __u32); __type(value, struct first);
} hf SEC(".maps");
"""
TC = MAPS + 'SEC("tc") int prog(struct __sk_buff *skb) { __u32 k = 0; %s }'


def obj(source: str) -> bytes:
    return compile_object(source, flags=("-O2", "-mcpu=v3"))


def _runs(data: bytes, n: int, map_name: str, keys=(0,)):
    """Run the object's program ``n`` times in pyebpf and in the kernel: (retvals, the
    map's values under ``keys`` afterwards) of each side."""
    obj_ = pyebpf.load(data)
    try:
        with pyebpf.kernel.load_object(data) as kobj:
            prog, kprog = obj_.program("prog"), kobj.program("prog")
            ours = [prog.run(PACKET).retval & 0xFFFFFFFF for _ in range(n)]
            theirs = [kprog.test_run(PACKET).retval for _ in range(n)]
            mine = [obj_.maps[map_name].lookup(u32(k)) for k in keys]
            kernel = [kobj.maps[map_name].lookup(u32(k)) for k in keys]
    finally:
        obj_.close()
    count_comparison()
    return (ours, mine), (theirs, kernel)


# --- programs that load: the lock taken and given back ---------------------------------

LOCKED_COUNTER = """
    struct val *v = bpf_map_lookup_elem(&arr, &k);
    if (!v) return 1;
    bpf_spin_lock(&v->lock);
    int c = ++v->cnt;
    v->data += 3;
    bpf_spin_unlock(&v->lock);
    return c;"""


def test_a_counter_under_the_lock_counts_as_in_the_kernel():
    ours, theirs = _runs(obj(TC % LOCKED_COUNTER), 3, "arr")
    assert ours == theirs
    assert theirs[0] == [1, 2, 3]
    assert struct.unpack("<iIi", theirs[1][0]) == (3, 0, 9)     # the lock reads as 0


def test_a_lock_in_global_data_guards_a_counter_as_in_the_kernel():
    # btf_parse_fields finds the lock among a DATASEC's variables: the section's map
    # value holds it (the kernel's selftests keep theirs in private(X) sections)
    source = r"""
struct gval { int cnt; int data; };
struct bpf_spin_lock glock SEC(".data.A");
struct gval gv SEC(".data.A");
SEC("tc") int prog(struct __sk_buff *skb)
{
    bpf_spin_lock(&glock);
    int c = ++gv.cnt;
    gv.data += 5;
    bpf_spin_unlock(&glock);
    return c;
}"""
    ours, theirs = _runs(obj(source), 3, ".data.A")
    assert ours == theirs
    assert theirs[0] == [1, 2, 3]
    assert struct.unpack("<Iii", theirs[1][0]) == (0, 3, 15)    # the lock reads as 0


def test_a_hash_value_is_locked_through_its_lookup_as_in_the_kernel():
    source = TC % """
    struct val init = {};
    bpf_map_update_elem(&h, &k, &init, BPF_NOEXIST);
    struct val *v = bpf_map_lookup_elem(&h, &k);
    if (!v) return 1;
    bpf_spin_lock(&v->lock);
    v->cnt += 5;
    int c = v->cnt;
    bpf_spin_unlock(&v->lock);
    return c;"""
    ours, theirs = _runs(obj(source), 2, "h")
    assert ours == theirs
    assert theirs[0] == [5, 10]


def test_an_update_with_bpf_f_lock_copies_all_but_the_lock_as_in_the_kernel():
    source = TC % """
    struct val nv = {.cnt = 7, .data = 11};
    struct val *v = bpf_map_lookup_elem(&arr, &k);
    if (!v) return 1;
    long a = bpf_map_update_elem(&arr, &k, &nv, BPF_F_LOCK);
    long b = bpf_map_update_elem(&h, &k, &nv, BPF_F_LOCK);
    long c = bpf_map_update_elem(&plain, &k, &nv, BPF_F_LOCK);
    long d = bpf_map_update_elem(&arr, &k, &nv, BPF_F_LOCK | BPF_NOEXIST);
    return (a & 0xff) | (b & 0xff) << 8 | (c & 0xff) << 16 | (d & 0xff) << 24;"""
    ours, theirs = _runs(obj(source), 1, "arr")
    assert ours == theirs
    # 0 for the maps with a lock, EINVAL for the one without, EEXIST for NOEXIST
    assert theirs[0] == [(-errno.EEXIST & 0xFF) << 24 | (-errno.EINVAL & 0xFF) << 16]
    assert struct.unpack("<iIi", theirs[1][0]) == (7, 0, 11)


def test_a_static_function_may_run_under_the_lock_as_in_the_kernel():
    source = MAPS + """
    static __attribute__((noinline)) int bump(struct val *v) { v->cnt += 2; return v->cnt; }
    SEC("tc") int prog(struct __sk_buff *skb) {
        __u32 k = 0;
        struct val *v = bpf_map_lookup_elem(&arr, &k);
        if (!v) return 1;
        bpf_spin_lock(&v->lock);
        int c = bump(v);
        bpf_spin_unlock(&v->lock);
        return c;
    }"""
    ours, theirs = _runs(obj(source), 2, "arr")
    assert ours == theirs
    assert theirs[0] == [2, 4]


# --- programs the verifier refuses ---------------------------------------------------

@pytest.mark.parametrize("body, message", [
    ("struct val *v = bpf_map_lookup_elem(&arr, &k); if (!v) return 1;"
     "bpf_spin_lock(&v->lock); return v->cnt;",
     "BPF_EXIT instruction in main prog cannot be used inside bpf_spin_lock-ed region"),
    ("struct val *v = bpf_map_lookup_elem(&arr, &k); if (!v) return 1;"
     "bpf_spin_lock(&v->lock); v->cnt = bpf_get_prandom_u32();"
     "bpf_spin_unlock(&v->lock); return 0;",
     "function calls are not allowed while holding a lock"),
    ("struct val *v = bpf_map_lookup_elem(&arr, &k); if (!v) return 1;"
     "struct val *w = bpf_map_lookup_elem(&h, &k); if (!w) return 2;"
     "bpf_spin_lock(&v->lock); bpf_spin_lock(&w->lock);"
     "bpf_spin_unlock(&w->lock); bpf_spin_unlock(&v->lock); return 0;",
     "function calls are not allowed while holding a lock"),
    ("struct val *v = bpf_map_lookup_elem(&arr, &k); if (!v) return 1;"
     "bpf_spin_unlock(&v->lock); return 0;",
     "bpf_spin_unlock without taking a lock"),
    ("struct val *v = bpf_map_lookup_elem(&arr, &k); if (!v) return 1;"
     "struct val *w = bpf_map_lookup_elem(&h, &k); if (!w) return 2;"
     "bpf_spin_lock(&v->lock); bpf_spin_unlock(&w->lock); return 0;",
     "bpf_spin_unlock of different lock"),
    ("struct val *v = bpf_map_lookup_elem(&arr, &k); if (!v) return 1;"
     "return *(volatile __u32 *)&v->lock;",
     "bpf_spin_lock cannot be accessed directly by load/store"),
    ("struct val *v = bpf_map_lookup_elem(&arr, &k); if (!v) return 1;"
     "*(volatile __u64 *)&v->cnt = 0; return 0;",
     "bpf_spin_lock cannot be accessed directly by load/store"),
    ("struct val *v = bpf_map_lookup_elem(&arr, &k); if (!v) return 1;"
     "bpf_spin_lock((struct bpf_spin_lock *)&v->cnt);"
     "bpf_spin_unlock((struct bpf_spin_lock *)&v->cnt); return 0;",
     "off 0 doesn't point to 'struct bpf_spin_lock' that is at 4"),
    ("struct first *v = bpf_map_lookup_elem(&hf, &k);"
     "bpf_spin_lock(&v->lock); bpf_spin_unlock(&v->lock); return 0;",
     "R1 type=map_value_or_null expected=map_value, ptr_"),
    ("struct val *v = bpf_map_lookup_elem(&arr, &k); if (!v) return 1;"
     "bpf_map_update_elem(&h, &k, v, 0); return 0;",
     "bpf_spin_lock cannot be accessed directly by load/store"),
], ids=["exit-while-locked", "helper-while-locked", "lock-twice", "unlock-unlocked",
        "unlock-other", "read-lock", "write-over-lock", "wrong-offset", "maybe-null",
        "value-as-helper-memory"])
def test_a_lock_misuse_is_refused_as_the_kernel_refuses_it(body, message):
    refused_alike(obj(TC % body), message)


def test_a_global_function_under_the_lock_is_refused_as_the_kernel_refuses_it():
    source = MAPS + """
    __attribute__((noinline)) int bump(int x) { return x + 2; }
    SEC("tc") int prog(struct __sk_buff *skb) {
        __u32 k = 0;
        struct val *v = bpf_map_lookup_elem(&arr, &k);
        if (!v) return 1;
        bpf_spin_lock(&v->lock);
        v->cnt = bump(v->cnt);
        bpf_spin_unlock(&v->lock);
        return 0;
    }"""
    # the kernel's message is two lines: "global function calls are not allowed while
    # holding a lock," and this one
    refused_alike(obj(source), "use static function instead")


def test_a_socket_filter_may_not_use_a_map_with_a_lock_as_in_the_kernel():
    source = MAPS + 'SEC("socket") int prog(struct __sk_buff *skb) {' + \
        LOCKED_COUNTER.replace("return 1;", "return 0;") + "}"
    source = source.replace("{\n    struct val *v", "{ __u32 k = 0;\n    struct val *v", 1)
    refused_alike(obj(source), "socket filter progs cannot use bpf_spin_lock yet")


def test_a_map_without_btf_cannot_be_locked_as_in_the_kernel(kernel_oracle):
    def make(fd):
        return lookup_key(fd) + """
            if r0 == 0 goto out
            r6 = r0
            r1 = r6
            call 93
            r1 = r6
            call 94
        out:
            r0 = 0
            exit"""
    mapcheck.refused_alike(kernel_oracle, T.BPF_MAP_TYPE_ARRAY, (4, 8, 1, 0), make,
                           "has to have BTF in order to use bpf_spin_lock")


# --- creating maps whose value holds a lock ----------------------------------------

def _value_btf():
    spec = elf.parse(obj(TC % "return 0;"))
    ms = spec.maps["arr"]
    return spec.kernel_btf, ms.key_type, ms.value_type


@pytest.mark.parametrize("kind, flags", [
    (T.BPF_MAP_TYPE_ARRAY, 0), (T.BPF_MAP_TYPE_HASH, 0), (T.BPF_MAP_TYPE_PERCPU_ARRAY, 0),
    (T.BPF_MAP_TYPE_PERCPU_HASH, 0), (T.BPF_MAP_TYPE_LRU_HASH, 0),
    (T.BPF_MAP_TYPE_ARRAY, isa.BPF_F_RDONLY_PROG), (T.BPF_MAP_TYPE_HASH, isa.BPF_F_WRONLY_PROG),
], ids=["array", "hash", "percpu-array", "percpu-hash", "lru-hash", "array-rdonly-prog",
        "hash-wronly-prog"])
def test_a_map_with_a_lock_is_created_or_refused_as_in_the_kernel(kernel_oracle, kind,
                                                                   flags):
    blob, key_type, value_type = _value_btf()
    size = value_type.byte_size
    ours = created(lambda: Map.create(kind, 4, size, 4, flags, value_type=value_type))
    theirs = created(lambda: kernel_oracle.KernelMap(
        kind, 4, size, 4, flags, btf=(blob, key_type.id, value_type.id)))
    count_comparison()
    assert ours == theirs


def test_the_lock_is_found_in_the_value_btf():
    _, _, value_type = _value_btf()
    m = Map.create(T.BPF_MAP_TYPE_ARRAY, 4, 12, 1, value_type=value_type)
    assert (m.spin_lock_off, m.timer_off) == (4, None)


# --- the element commands with BPF_F_LOCK -----------------------------------------------

def _both_maps(kernel_oracle, kind):
    blob, key_type, value_type = _value_btf()
    ours = Map.create(kind, 4, 12, 4, value_type=value_type)
    theirs = kernel_oracle.KernelMap(kind, 4, 12, 4, btf=(blob, key_type.id, value_type.id))
    return ours, theirs


def _elem_ops(m):
    value = struct.pack("<iIi", 5, 0xFFFFFFFF, 6)
    out = []
    for op, args in [("update", (u32(0), value, isa.BPF_F_LOCK)),
                     ("lookup", (u32(0), isa.BPF_F_LOCK)), ("lookup", (u32(0),)),
                     ("update", (u32(1), value, isa.BPF_F_LOCK | isa.BPF_NOEXIST)),
                     ("update", (u32(0), value, isa.BPF_F_LOCK | isa.BPF_NOEXIST)),
                     ("lookup", (u32(0), isa.BPF_F_LOCK | 8)),
                     ("update", (u32(0), value, 8 | isa.BPF_F_LOCK))]:
        try:
            got = getattr(m, op)(*args)
            out.append("ok" if got is None else got)
        except (MapError, KernelError) as exc:
            out.append(exc.errno)
    return out


@pytest.mark.parametrize("kind", [T.BPF_MAP_TYPE_ARRAY, T.BPF_MAP_TYPE_HASH],
                         ids=["array", "hash"])
def test_element_commands_with_bpf_f_lock_give_what_the_kernel_gives(kernel_oracle, kind):
    ours, theirs = _both_maps(kernel_oracle, kind)
    with theirs:
        want = _elem_ops(theirs)
    count_comparison()
    assert _elem_ops(ours) == want
    assert want[1] == struct.pack("<iIi", 5, 0, 6)


def test_bpf_f_lock_on_a_value_without_a_lock_is_einval_as_in_the_kernel(kernel_oracle):
    with kernel_oracle.KernelMap(T.BPF_MAP_TYPE_ARRAY, 4, 8, 1) as theirs:
        want = [_outcome(theirs.lookup, u32(0), isa.BPF_F_LOCK),
                _outcome(theirs.update, u32(0), bytes(8), isa.BPF_F_LOCK)]
    m = Map.create(T.BPF_MAP_TYPE_ARRAY, 4, 8, 1)
    count_comparison()
    assert [_outcome(m.lookup, u32(0), isa.BPF_F_LOCK),
            _outcome(m.update, u32(0), bytes(8), isa.BPF_F_LOCK)] == want == [errno.EINVAL] * 2


def _outcome(fn, *args):
    try:
        return fn(*args)
    except (MapError, KernelError) as exc:
        return exc.errno


def test_a_fault_while_holding_the_lock_gives_it_back():
    """A program loaded without the verifier that faults inside its locked region: the
    run ends, and the next run takes the lock again (the kernel cannot show this)."""
    _, _, value_type = _value_btf()
    m = Map.create(T.BPF_MAP_TYPE_ARRAY, 4, 12, 1, value_type=value_type)
    prog = pyebpf.Program.from_asm(lookup_key(m.fd) + """
        if r0 == 0 goto out
        r6 = r0
        r1 = r6
        r1 += 4
        call 93
        r2 = 0
        r0 = *(u64 *)(r2 + 0)
    out:
        r0 = 0
        exit""", prog_type="sched_cls", verify=False)
    for _ in range(2):
        with pytest.raises(pyebpf.errors.ExecutionError):
            prog.run(PACKET)


# --- a bpf_timer in the value: out of reach of loads and stores, kept through copies ---

TIMER_MAP = r"""
struct tval { int cnt; struct bpf_timer t; int data; };
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
    __type(key, __u32); __type(value, struct tval);
} tarr SEC(".maps");
SEC("tc") int prog(struct __sk_buff *skb) { __u32 k = 0; %s }
"""


def test_a_timer_field_cannot_be_read_directly_as_in_the_kernel():
    refused_alike(obj(TIMER_MAP % (
        "struct tval *v = bpf_map_lookup_elem(&tarr, &k); if (!v) return 1;"
        "return *(volatile __u64 *)&v->t;")),
        "bpf_timer cannot be accessed directly by load/store")


def test_an_update_from_user_space_leaves_the_timer_as_in_the_kernel():
    data = obj(TIMER_MAP % "return 0;")
    value = struct.pack("<i4x16si4x", 3, b"\xff" * 16, 4)
    ours = pyebpf.load(data)
    try:
        with pyebpf.kernel.load_object(data) as kobj:
            kobj.maps["tarr"].update(u32(0), value)
            want = kobj.maps["tarr"].lookup(u32(0))
        ours.maps["tarr"].update(u32(0), value)
        got = ours.maps["tarr"].lookup(u32(0))
        assert ours.maps["tarr"].timer_off == 8
    finally:
        ours.close()
    count_comparison()
    assert got == want
    assert want[8:24] == bytes(16) and want[:4] == u32(3)


# --- tcsim --cpus: the replay threads contend for the lock -----------------------------

LOCKED_ADDS = MAPS + """
SEC("tc") int prog(struct __sk_buff *skb) {
    __u32 k = 0;
    struct val *v = bpf_map_lookup_elem(&arr, &k);
    if (!v) return 0;
    bpf_spin_lock(&v->lock);
    for (int i = 0; i < 200; i++)      /* a plain read, then a write: only the lock */
        *(volatile int *)&v->cnt = *(volatile int *)&v->cnt + 1;   /* keeps every one */
    bpf_spin_unlock(&v->lock);
    return 0;
}
char LICENSE[] SEC("license") = "GPL";
"""


def test_two_replay_cpus_add_under_the_lock_without_losing_an_update(tmp_path, capsys):
    from scapy.all import IP, UDP, Ether
    from pyebpf.pcap import pcapio, tcsim
    (tmp_path / "adds.o").write_bytes(obj(LOCKED_ADDS))
    frames = [bytes(Ether() / IP(src=f"10.0.0.{i % 250 + 1}", dst="10.0.1.1") /
                    UDP(sport=1000 + i, dport=53)) for i in range(64)]
    packets = [(k * 1000, frames[k % 64], len(frames[k % 64])) for k in range(3000)]
    pcapio.write(tmp_path / "many.pcap", packets)
    rc = tcsim.main([str(a) for a in (tmp_path / "adds.o", "-r", tmp_path / "many.pcap",
                                      "-q", "--cpus", "2", "--dump-maps", tmp_path / "maps")])
    err = capsys.readouterr().err.splitlines()
    (entry,) = json.loads((tmp_path / "maps" / "arr.json").read_text())["entries"]
    assert (rc, err) == (0, [])
    assert entry["value"]["cnt"] == 200 * len(packets)


def _batch_ops(m, plain):
    value = struct.pack("<iIi", 5, 0xFFFFFFFF, 6)
    out = []
    for op, args in [("update_batch", ([(u32(1), value), (u32(2), value)], isa.BPF_F_LOCK)),
                     ("lookup_batch", (4, None, isa.BPF_F_LOCK)),
                     ("delete_batch", ([u32(1)], isa.BPF_F_LOCK))]:
        for target in (m, plain):
            try:
                got = getattr(target, op)(*args)
                out.append(got[0] if op == "lookup_batch" else got)
            except (MapError, KernelError) as exc:
                out.append(exc.errno)
    return out


def test_batch_commands_with_bpf_f_lock_give_what_the_kernel_gives(kernel_oracle):
    H = T.BPF_MAP_TYPE_HASH
    ours, theirs = _both_maps(kernel_oracle, H)
    with theirs, kernel_oracle.KernelMap(H, 4, 12, 4, isa.BPF_F_ZERO_SEED) as kplain:
        want = _batch_ops(theirs, kplain)
    count_comparison()
    got = _batch_ops(ours, Map.create(H, 4, 12, 4, isa.BPF_F_ZERO_SEED))
    assert sorted(got[2]) == sorted(want[2])        # the kernel seeds its hash randomly
    assert got[:2] + got[3:] == want[:2] + want[3:]
    assert want[:2] == [2, errno.EINVAL]
