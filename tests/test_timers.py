"""bpf_timer against the kernel: what bpf_timer_init/set_callback/start/cancel return in
each state of a timer, the callbacks they run once the timer fires (the map contents the
kernel shows after a short wait, pyebpf's after ``pyebpf.run_timers()``), the timers that
deleting, overwriting or closing a map cancels, the maps that may hold a timer, and the
verifier's refusals with the kernel's words."""
from __future__ import annotations

import errno
import struct
import time

import pytest

import pyebpf
from pyebpf import Map, elf, isa

from bpfc import compile_object
from mapcheck import created, pinned_by_name, run_from_pins_in_child, u32
from objdiff import verdicts
from recorded_kernel import count_comparison

T = isa.MapType
PACKET = bytes(range(64))
# how long the kernel is given to fire a timer started with 0 ns (it fires in the next
# softirq, microseconds later)
FIRE_WAIT = 0.05

MAPS = r"""
#define CLOCK_MONOTONIC 1
#ifndef BPF_F_TIMER_ABS
#define BPF_F_TIMER_ABS 1
#define BPF_F_TIMER_CPU_PIN 2
#endif
struct tval { int cnt; struct bpf_timer t; int data; };
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 2);
    __type(key, __u32); __type(value, struct tval);
} tarr SEC(".maps");
struct {
    __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 4);
    __type(key, __u32); __type(value, struct tval);
} th SEC(".maps");
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
    __type(key, __u32); __type(value, long[16]);
} out SEC(".maps");
char LICENSE[] SEC("license") = "GPL";
"""
TC = MAPS + """
%s
SEC("tc") int prog(struct __sk_buff *skb) { __u32 k = 0; %s }
"""


def obj(source: str) -> bytes:
    return compile_object(source, flags=("-O2", "-mcpu=v3"))


def _both(data: bytes, runs: int, maps: dict, wait: bool = False, before=None):
    """Run the object's program ``runs`` times in the kernel and in pyebpf (then
    pyebpf.run_timers(), and a short wait in the kernel with ``wait``); (retvals, the
    values of ``maps`` (name -> keys)) of each side.  ``before(maps)`` runs on each
    side's maps first."""
    ours = pyebpf.load(data)
    try:
        with pyebpf.kernel.load_object(data) as kobj:
            if before:
                before(kobj.maps)
            theirs = [kobj.program("prog").test_run(PACKET).retval for _ in range(runs)]
            if wait:
                time.sleep(FIRE_WAIT)
            kernel = {name: [kobj.maps[name].lookup(u32(k)) for k in keys]
                      for name, keys in maps.items()}
        if before:
            before(ours.maps)
        prog = ours.program("prog")
        mine = [prog.run(PACKET).retval & 0xFFFFFFFF for _ in range(runs)]
        if wait:
            pyebpf.run_timers()
        engine = {name: [ours.maps[name].lookup(u32(k)) for k in keys]
                  for name, keys in maps.items()}
    finally:
        ours.close()
    count_comparison()
    return (mine, engine), (theirs, kernel)


def _longs(value: bytes) -> list[int]:
    return list(struct.unpack("<16q", value))


def _record(*calls: str) -> str:
    """A program body that stores what each call returns in out[0][i], in order."""
    lines = ["__u32 z = 0; long *o = bpf_map_lookup_elem(&out, &z); if (!o) return 1;",
             "struct tval *v = bpf_map_lookup_elem(&tarr, &k); if (!v) return 1;"]
    lines += [f"o[{i}] = {call};" for i, call in enumerate(calls)]
    return "\n".join(lines) + "\nreturn 0;"


CALLBACK = """
static int cb(void *map, __u32 *key, struct tval *v) { v->cnt += 1; v->data = 42; return 0; }
"""

# --- what the helpers return in each state --------------------------------------------


def test_the_helpers_on_an_uninitialised_timer_give_what_the_kernel_gives():
    body = _record("bpf_timer_start(&v->t, 0, 0)", "bpf_timer_cancel(&v->t)",
                   "bpf_timer_set_callback(&v->t, cb)")
    ours, theirs = _both(obj(TC % (CALLBACK, body)), 1, {"out": [0]})
    assert ours == theirs
    assert _longs(theirs[1]["out"][0])[:3] == [-errno.EINVAL] * 3


@pytest.mark.parametrize("flags", [0, 1, 7, 2, 3, 16, 17, 1 << 32],
                         ids=["realtime", "monotonic", "boottime", "process-cputime",
                              "thread-cputime", "past-max-clocks", "clock-bits-and-more",
                              "high-bits"])
def test_bpf_timer_init_takes_the_clocks_the_kernel_takes(flags):
    body = _record(f"bpf_timer_init(&v->t, &tarr, {flags}ULL)")
    ours, theirs = _both(obj(TC % ("", body)), 1, {"out": [0]})
    assert ours == theirs


def test_a_second_init_is_ebusy_as_in_the_kernel():
    body = _record("bpf_timer_init(&v->t, &tarr, 1)", "bpf_timer_init(&v->t, &tarr, 1)",
                   "bpf_timer_init(&v->t, &tarr, 0)")
    ours, theirs = _both(obj(TC % ("", body)), 1, {"out": [0]})
    assert ours == theirs
    assert _longs(theirs[1]["out"][0])[:3] == [0, -errno.EBUSY, -errno.EBUSY]


def test_a_timer_stays_initialised_from_one_run_to_the_next_as_in_the_kernel():
    body = "__u32 z = 0; struct tval *v = bpf_map_lookup_elem(&tarr, &z); if (!v) return 1;" \
           "return -bpf_timer_init(&v->t, &tarr, 1);"
    ours, theirs = _both(obj(TC % ("", body)), 2, {})
    assert ours == theirs
    assert theirs[0] == [0, errno.EBUSY]


def test_start_needs_a_callback_and_its_flags_as_in_the_kernel():
    body = _record("bpf_timer_init(&v->t, &tarr, 1)",
                   "bpf_timer_start(&v->t, 1000000000, 0)",
                   "bpf_timer_set_callback(&v->t, cb)",
                   "bpf_timer_start(&v->t, 1000000000, 4)",
                   "bpf_timer_start(&v->t, 1000000000, BPF_F_TIMER_CPU_PIN)",
                   "bpf_timer_start(&v->t, 1000000000, BPF_F_TIMER_ABS)",
                   "bpf_timer_start(&v->t, 1000000000000000000ULL, 3)",
                   "bpf_timer_cancel(&v->t)")
    ours, theirs = _both(obj(TC % (CALLBACK, body)), 1, {"out": [0]})
    assert ours == theirs
    assert _longs(theirs[1]["out"][0])[:8] == [0, -errno.EINVAL, 0, -errno.EINVAL, 0, 0, 0, 1]


def test_cancel_tells_an_armed_timer_and_drops_the_callback_as_in_the_kernel():
    body = _record("bpf_timer_init(&v->t, &tarr, 1)", "bpf_timer_set_callback(&v->t, cb)",
                   "bpf_timer_cancel(&v->t)",
                   "bpf_timer_start(&v->t, 1000000000, 0)",
                   "bpf_timer_cancel(&v->t)", "bpf_timer_cancel(&v->t)",
                   "bpf_timer_start(&v->t, 1000000000, 0)",
                   "bpf_timer_set_callback(&v->t, cb)",
                   "bpf_timer_start(&v->t, 1000000000, 0)",
                   "bpf_timer_start(&v->t, 2000000000, 0)",
                   "bpf_timer_cancel(&v->t)")
    ours, theirs = _both(obj(TC % (CALLBACK, body)), 1, {"out": [0]})
    assert ours == theirs
    assert _longs(theirs[1]["out"][0])[:11] == [0, 0, 0, -errno.EINVAL, 0, 0, -errno.EINVAL,
                                                 0, 0, 0, 1]


def test_a_map_without_user_references_refuses_init_with_eperm_as_in_the_kernel():
    # (a program no other test runs: the recorded answers key a run by the program and
    # the map's contents, which closing the map's fd does not change)
    body = "__u32 z = 0; struct tval *v = bpf_map_lookup_elem(&tarr, &z); if (!v) return 1;" \
           "return -bpf_timer_init(&v->t, &tarr, 0);"
    ours, theirs = _both(obj(TC % ("", body)), 1, {},
                         before=lambda maps: maps["tarr"].close())
    assert ours == theirs
    assert theirs[0] == [errno.EPERM]


# --- callbacks: run when the timer fires -----------------------------------------------

START_NOW = """
    struct tval *v = bpf_map_lookup_elem(&%s, &k); if (!v) return 1;
    bpf_timer_init(&v->t, &%s, CLOCK_MONOTONIC);
    bpf_timer_set_callback(&v->t, %s);
    return bpf_timer_start(&v->t, 0, 0);"""


def test_a_timer_started_now_runs_its_callback_on_the_map_value_as_in_the_kernel():
    ours, theirs = _both(obj(TC % (CALLBACK, START_NOW % ("tarr", "tarr", "cb"))), 1,
                         {"tarr": [0, 1]}, wait=True)
    assert ours == theirs
    assert struct.unpack("<i20xi4x", theirs[1]["tarr"][0]) == (1, 42)


def test_a_timer_map_got_from_its_pin_in_another_process_keeps_its_timer(tmp_path,
                                                                         monkeypatch):
    """The pin keeps the value's BTF (pin format 7): a process that gets the map from its
    pin loads and runs a program using its bpf_timer as the kernel runs it."""
    monkeypatch.setenv("PYEBPF_PIN_ROOT", str(tmp_path))
    pinned = pinned_by_name(MAPS, "tarr")
    data = obj(pinned + "\n" + CALLBACK +
               'SEC("tc") int prog(struct __sk_buff *skb) { __u32 k = 0; ' +
               START_NOW % ("tarr", "tarr", "cb") + "}")
    with pyebpf.kernel.load_object(data) as kobj:
        retval = kobj.program("prog").test_run(PACKET).retval
        time.sleep(FIRE_WAIT)
        theirs = retval, {"tarr": [kobj.maps["tarr"].lookup(u32(k)) for k in (0, 1)]}
    count_comparison()
    ours = run_from_pins_in_child(data, "tarr", {"tarr": [0, 1]}, PACKET)
    assert ours == theirs
    assert struct.unpack("<i20xi4x", theirs[1]["tarr"][0]) == (1, 42)

def test_a_hash_timer_callback_gets_the_element_key_as_in_the_kernel():
    hash_cb = """
    static int keyed(void *map, __u32 *key, struct tval *v) { v->data = *key + 7; return 0; }
    """
    body = "k = 3; struct tval init = {.cnt = 5};" \
           "bpf_map_update_elem(&th, &k, &init, BPF_ANY);" + START_NOW % ("th", "th", "keyed")
    ours, theirs = _both(obj(TC % (hash_cb, body)), 1, {"th": [3]}, wait=True)
    assert ours == theirs
    assert struct.unpack("<i20xi4x", theirs[1]["th"][0]) == (5, 10)


def test_a_callback_cancelling_its_own_timer_gets_edeadlk_as_in_the_kernel():
    self_cancel = """
    static int cb(void *map, __u32 *key, struct tval *v) {
        v->data = bpf_timer_cancel(&v->t);
        v->cnt = bpf_timer_start(&v->t, 1000000000000ULL, 0);
        return 0;
    }"""
    ours, theirs = _both(obj(TC % (self_cancel, START_NOW % ("tarr", "tarr", "cb"))), 1,
                         {"tarr": [0]}, wait=True)
    assert ours == theirs
    assert struct.unpack("<i20xi4x", theirs[1]["tarr"][0]) == (0, -errno.EDEADLK)


def test_overwriting_an_array_element_cancels_its_timer_as_in_the_kernel():
    body = START_NOW.replace("return bpf_timer_start(&v->t, 0, 0);", """
    bpf_timer_start(&v->t, 0, 0);
    struct tval fresh = {.cnt = 9};
    bpf_map_update_elem(&tarr, &k, &fresh, BPF_ANY);
    return bpf_timer_start(&v->t, 0, 0);""") % ("tarr", "tarr", "cb")
    ours, theirs = _both(obj(TC % (CALLBACK, body)), 1, {"tarr": [0]}, wait=True)
    assert ours == theirs
    assert theirs[0] == [-errno.EINVAL & 0xFFFFFFFF]
    assert struct.unpack("<i20xi4x", theirs[1]["tarr"][0]) == (9, 0)


def test_deleting_a_hash_element_cancels_its_timer_as_in_the_kernel():
    body = "struct tval init = {};" \
           "bpf_map_update_elem(&th, &k, &init, BPF_ANY);" + \
           START_NOW.replace("return bpf_timer_start(&v->t, 0, 0);", """
    bpf_timer_start(&v->t, 0, 0);
    bpf_map_delete_elem(&th, &k);
    bpf_map_update_elem(&th, &k, &init, BPF_ANY);
    return 0;""") % ("th", "th", "cb")
    ours, theirs = _both(obj(TC % (CALLBACK, body)), 1, {"th": [0]}, wait=True)
    assert ours == theirs
    assert theirs[1]["th"][0] == bytes(32)


def test_an_update_from_user_space_cancels_an_armed_timer_as_in_the_kernel():
    # armed 200 ms ahead, overwritten at once from user space (array_map_update_elem
    # frees the old value's timer), then given time to fire
    body = START_NOW.replace("bpf_timer_start(&v->t, 0, 0)",
                             "bpf_timer_start(&v->t, 200000000, 0)") % ("tarr", "tarr", "cb")
    data = obj(TC % (CALLBACK, body))
    fresh = struct.pack("<i28x", 9)
    ours = pyebpf.load(data)
    try:
        with pyebpf.kernel.load_object(data) as kobj:
            kobj.program("prog").test_run(PACKET)
            kobj.maps["tarr"].update(u32(0), fresh)
            time.sleep(0.25)
            want = kobj.maps["tarr"].lookup(u32(0))
        ours.program("prog").run(PACKET)
        ours.maps["tarr"].update(u32(0), fresh)
        fired = pyebpf.run_timers(10**9)
        got = ours.maps["tarr"].lookup(u32(0))
    finally:
        ours.close()
    count_comparison()
    assert (got, fired) == (want, 0)
    assert want == fresh


# --- the modelled clock: run_timers -------------------------------------------------------

def test_a_timer_fires_once_the_process_clock_reaches_its_expiry():
    body = START_NOW.replace("bpf_timer_start(&v->t, 0, 0)",
                             "bpf_timer_start(&v->t, 5000000, 0)") % ("tarr", "tarr", "cb")
    ours = pyebpf.load(obj(TC % (CALLBACK, body)))
    try:
        ours.program("prog").run(PACKET)
        fired = [pyebpf.run_timers(), pyebpf.run_timers(4_000_000),
                 pyebpf.run_timers(1_000_000), pyebpf.run_timers(10**9)]
        value = ours.maps["tarr"].lookup(u32(0))
    finally:
        ours.close()
    assert fired == [0, 0, 1, 0]
    assert struct.unpack("<i20xi4x", value) == (1, 42)


def test_a_callback_reads_the_time_its_timer_expired():
    clocked = """
    static int cb(void *map, __u32 *key, struct tval *v) {
        v->data = (int)(bpf_ktime_get_ns() - 3600000000000ULL);
        return 0;
    }"""
    body = START_NOW.replace("bpf_timer_start(&v->t, 0, 0)",
                             "bpf_timer_start(&v->t, 777, 0)") % ("tarr", "tarr", "cb")
    ours = pyebpf.load(obj(TC % (clocked, body)))
    try:
        ours.program("prog").run(PACKET, ktime=pyebpf.KTIME_START)
        assert pyebpf.run_timers(until=pyebpf.KTIME_START + 1_000) == 1
        value = ours.maps["tarr"].lookup(u32(0))
    finally:
        ours.close()
    assert struct.unpack("<i20xi4x", value)[1] == 777


def test_timers_fire_in_the_order_of_their_expiries():
    ordered = """
    static int cb(void *map, __u32 *key, struct tval *v) {
        __u32 z = 0; long *o = bpf_map_lookup_elem(&out, &z);
        if (o) { __u64 n = o[15] & 7; o[n] = *key; o[15] = n + 1; }
        return 0;
    }"""
    body = """
    __u32 one = 1;
    struct tval *v = bpf_map_lookup_elem(&tarr, &k), *w = bpf_map_lookup_elem(&tarr, &one);
    if (!v || !w) return 1;
    bpf_timer_init(&v->t, &tarr, CLOCK_MONOTONIC);
    bpf_timer_set_callback(&v->t, cb);
    bpf_timer_start(&v->t, 200, 0);
    bpf_timer_init(&w->t, &tarr, CLOCK_MONOTONIC);
    bpf_timer_set_callback(&w->t, cb);
    bpf_timer_start(&w->t, 100, 0);
    return 0;"""
    ours = pyebpf.load(obj(TC % (ordered, body)))
    try:
        ours.program("prog").run(PACKET)
        assert pyebpf.run_timers(1_000) == 2
        got = _longs(ours.maps["out"].lookup(u32(0)))
    finally:
        ours.close()
    assert (got[0], got[1], got[15]) == (1, 0, 2)


def test_a_callback_that_starts_its_timer_again_fires_each_time_it_is_due():
    again = """
    static int cb(void *map, __u32 *key, struct tval *v) {
        v->cnt += 1;
        bpf_timer_start(&v->t, 1000, 0);
        return 0;
    }"""
    ours = pyebpf.load(obj(TC % (again, START_NOW % ("tarr", "tarr", "cb"))))
    try:
        ours.program("prog").run(PACKET, ktime=pyebpf.KTIME_START)
        # due at the run's time, then every 1000 ns up to the run's time + 4500
        fired = pyebpf.run_timers(until=pyebpf.KTIME_START + 4_500)
        bounded = pyebpf.run_timers(until=pyebpf.KTIME_START + 10**9, limit=3)
        value = ours.maps["tarr"].lookup(u32(0))
    finally:
        ours.close()
    assert (fired, bounded) == (5, 3)
    assert struct.unpack("<i20xi4x", value)[0] == 8


def test_closing_the_map_cancels_its_timers():
    body = START_NOW.replace("bpf_timer_start(&v->t, 0, 0)",
                             "bpf_timer_start(&v->t, 1000, 0)") % ("tarr", "tarr", "cb")
    ours = pyebpf.load(obj(TC % (CALLBACK, body)))
    try:
        ours.program("prog").run(PACKET)
        ours.maps["tarr"].close()
        assert pyebpf.run_timers(10**6) == 0
    finally:
        ours.close()


# --- the verifier -------------------------------------------------------------------------

LOOKED_UP = "struct tval *v = bpf_map_lookup_elem(&tarr, &k); if (!v) return 1;"


@pytest.mark.parametrize("callbacks, body, message", [
    ("", LOOKED_UP + "return bpf_timer_init(&v->t, &th, 1);",
     "timer pointer in R1 map_uid=0 doesn't match map pointer in R2 map_uid=0"),
    ("", LOOKED_UP + "return bpf_timer_init((struct bpf_timer *)&v->data, &tarr, 1);",
     "off 24 doesn't point to 'struct bpf_timer' that is at 8"),
    ("", "struct bpf_timer t = {}; return bpf_timer_init(&t, &tarr, 1);",
     "R1 type=fp expected=map_value"),
    ("", LOOKED_UP + "__u32 i = skb->len & 1;"
     "return bpf_timer_start((struct bpf_timer *)((char *)&v->t + i), 0, 0);",
     "R1 doesn't have constant offset. bpf_timer has to be at the constant offset"),
    ("", LOOKED_UP + "return *(volatile __u64 *)&v->t;",
     "bpf_timer cannot be accessed directly by load/store"),
    ("static int cb(void *map, __u32 *key, struct tval *v) { return 1; }",
     LOOKED_UP + "return bpf_timer_set_callback(&v->t, cb);",
     "At async callback return the register R0 has smin=1 smax=1 should have been in [0, 0]"),
    ("static int cb(void *map, __u32 *key, struct tval *v) { return v->cnt; }",
     LOOKED_UP + "return bpf_timer_set_callback(&v->t, cb);",
     "At async callback return the register R0 has"),
    ("static int cb(void *map, __u32 *key, struct tval *v) {"
     " return *(volatile int *)((char *)v + 40); }",
     LOOKED_UP + "return bpf_timer_set_callback(&v->t, cb);",
     "R3 min value is outside of the allowed memory range"),
    ("__attribute__((noinline)) int cb(void *map, __u32 *key, struct tval *v) { return 0; }",
     LOOKED_UP + "return bpf_timer_set_callback(&v->t, cb);",
     "callback function not static"),
    ("static int cb(void *map, __u32 *key, struct tval *v) { return (long)v; }",
     LOOKED_UP + "return bpf_timer_set_callback(&v->t, cb);",
     "At async callback return the register R0 is not a known value (map_value)"),
    # a timer's callback runs in softirq: unlike a bpf_wq's, its path may not sleep
    ("static int cb(void *map, __u32 *key, struct tval *v) "
     "{ long d; v->data = bpf_copy_from_user(&d, 8, 0); return 0; }",
     LOOKED_UP + "return bpf_timer_set_callback(&v->t, cb);",
     "helper call might sleep in a non-sleepable prog"),
], ids=["other-map", "wrong-offset", "stack-timer", "variable-offset", "direct-read",
        "callback-returns-1", "callback-returns-unknown", "callback-value-bounds",
        "global-callback", "callback-returns-pointer", "callback-might-sleep"])
def test_a_timer_misuse_is_refused_as_the_kernel_refuses_it(callbacks, body, message):
    ours, theirs = verdicts(obj(TC % (callbacks, body)))
    assert theirs is not None and message in theirs, theirs
    assert ours is not None and message in ours, (ours, theirs)


def test_a_callback_that_reads_its_key_and_value_loads_as_in_the_kernel():
    source = TC % ("""
    static int cb(void *map, __u32 *key, struct tval *v) {
        v->data = *key + v->cnt; return 0;
    }""", LOOKED_UP + "return bpf_timer_set_callback(&v->t, cb);")
    assert verdicts(obj(source)) == (None, None)


def test_a_socket_filter_may_use_a_timer_as_in_the_kernel():
    source = MAPS + CALLBACK + 'SEC("socket") int prog(struct __sk_buff *skb) {' \
        "__u32 k = 0;" + START_NOW.replace("return 1;", "return 0;") % ("tarr", "tarr", "cb") + "}"
    assert verdicts(obj(source)) == (None, None)


def test_a_kprobe_may_not_use_a_map_with_a_timer_as_in_the_kernel():
    source = MAPS + 'SEC("kprobe/x") int prog(void *ctx) { __u32 k = 0;' + LOOKED_UP + \
        "return bpf_timer_init(&v->t, &tarr, 1); }"
    ours, theirs = verdicts(obj(source))
    message = "tracing progs cannot use bpf_timer yet"
    assert theirs is not None and message in theirs, theirs
    assert ours is not None and message in ours, (ours, theirs)


# --- the maps that may hold a timer ---------------------------------------------------------

def _value_btf():
    spec = elf.parse(obj(TC % ("", "return 0;")))
    ms = spec.maps["tarr"]
    return spec.kernel_btf, ms.key_type, ms.value_type


@pytest.mark.parametrize("kind", [
    T.BPF_MAP_TYPE_ARRAY, T.BPF_MAP_TYPE_HASH, T.BPF_MAP_TYPE_LRU_HASH,
    T.BPF_MAP_TYPE_PERCPU_ARRAY, T.BPF_MAP_TYPE_PERCPU_HASH, T.BPF_MAP_TYPE_LRU_PERCPU_HASH,
], ids=["array", "hash", "lru-hash", "percpu-array", "percpu-hash", "lru-percpu-hash"])
def test_a_map_with_a_timer_is_created_or_refused_as_in_the_kernel(kernel_oracle, kind):
    blob, key_type, value_type = _value_btf()
    size = value_type.byte_size
    ours = created(lambda: Map.create(kind, 4, size, 4, value_type=value_type))
    theirs = created(lambda: kernel_oracle.KernelMap(
        kind, 4, size, 4, btf=(blob, key_type.id, value_type.id)))
    count_comparison()
    assert ours == theirs


# --- timers in inner maps ---------------------------------------------------------------

INNER = r"""
#define CLOCK_MONOTONIC 1
struct ival { int cnt; struct bpf_timer t; };
struct inner_map {
    __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
    __type(key, __u32); __type(value, struct ival);
} inner SEC(".maps");
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS); __uint(max_entries, 1);
    __type(key, __u32); __array(values, struct inner_map);
} outer SEC(".maps") = { .values = { [0] = &inner } };
char LICENSE[] SEC("license") = "GPL";

static int bump(void *map, __u32 *key, struct ival *v)
{
    v->cnt += 10;
    return 0;
}

SEC("tc") int prog(struct __sk_buff *skb)
{
    __u32 k = 0;
    void *m = bpf_map_lookup_elem(&outer, &k);
    if (!m)
        return 1;
    struct ival *v = bpf_map_lookup_elem(m, &k);
    if (!v)
        return 2;
    long a = bpf_timer_init(&v->t, m, CLOCK_MONOTONIC);
    long b = bpf_timer_set_callback(&v->t, bump);
    long c = bpf_timer_start(&v->t, 0, 0);
    v->cnt += 1;
    return (a & 0xff) << 16 | (b & 0xff) << 8 | (c & 0xff);
}
"""


def test_a_timer_in_an_inner_map_fires_its_callback_on_the_inner_maps_value():
    """The kernel allows a bpf_timer in an inner map's value (bpf_map_meta_alloc keeps
    the template's timer; selftests' timer_mim.c): the callback runs on that value."""
    ours, theirs = _both(obj(INNER), 1, {"inner": [0]}, wait=True)
    assert ours == theirs == ([0], {"inner": [struct.pack("<i", 11) + bytes(20)]})


def test_a_callback_set_by_two_calls_is_pruned_against_itself_as_in_the_kernel(
        monkeypatch):
    """push_async_cb starts a callback in a first frame of call site BPF_MAIN_FUNC,
    whichever call queued it (init_func_state), so its second verification is pruned by
    the states of the first: the kernel's processed instructions and states (pyebpf gave
    each queuing call's verification states of its own: calico's calico_tc_main
    processed 116,788 instructions, the kernel 116,739)."""
    from verifier_counts import counts_and_the_kernels
    source = TC % ("""
    static int cb(void *map, __u32 *key, struct tval *v) {
        if (v->cnt > 3) v->data = 1; else v->data = 2;
        if (v->cnt & 4) v->data += 3;
        if (v->data > 2) v->cnt = 0;
        return 0;
    }""", LOOKED_UP + """
    if (skb->len > 100) {
        v->data = 4;
        bpf_timer_set_callback(&v->t, cb);
        v->data = 5;
    } else {
        v->cnt = 6;
        bpf_timer_set_callback(&v->t, cb);
        v->cnt = 7;
    }
    return 0;""")
    ours, theirs = counts_and_the_kernels(obj(source), monkeypatch)
    assert ours == theirs
