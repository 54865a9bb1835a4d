"""bpf_wq against the kernel: what bpf_wq_init/set_callback/start return in each state
of a work item, the callbacks queued work runs (the map contents the kernel shows once
its workqueue ran the work, polled with a timeout; pyebpf's after
``pyebpf.run_timers()``), the work that deleting or overwriting an element cancels, the
maps that may hold a bpf_wq, and the verifier's refusals with the kernel's words."""
from __future__ import annotations

import ctypes
import errno
import mmap
import os
import struct
import time

import pytest

import pyebpf
from pyebpf import Map, elf, isa
from pyebpf.trace import Machine, Task
from pyebpf.trace import machine as machine_mod
from pyebpf.trace.machine import MachineSpecError

from bpfc import compile_object
from mapcheck import created, pinned_by_name, run_from_pins_in_child, u32
from objdiff import verdicts
from recorded_kernel import count_comparison

T = isa.MapType
PACKET = bytes(range(64))
# how long the kernel's system workqueue is given to run queued work before the maps
# are read (it runs within microseconds: a recorded answer read before then would not
# match a live one), then polled until the callback's write shows, up to RUN_WAIT; and to
# run work that must not run (cancelled work)
SETTLE = 0.1
RUN_WAIT = 2.0

MAPS = r"""
// the system's linux/bpf.h predates struct bpf_wq (uapi since 6.10)
struct bpf_wq { __u64 :64; __u64 :64; } __attribute__((aligned(8)));
extern int bpf_wq_init(struct bpf_wq *wq, void *p__map, unsigned int flags) __ksym;
extern int bpf_wq_start(struct bpf_wq *wq, unsigned int flags) __ksym;
extern int bpf_wq_set_callback_impl(struct bpf_wq *wq,
        int (callback_fn)(void *map, int *key, void *value),
        unsigned int flags, void *aux__ign) __ksym;
#define bpf_wq_set_callback(wq, cb, flags) bpf_wq_set_callback_impl(wq, cb, flags, NULL)

struct wval { int cnt; int data; struct bpf_wq w; };
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 2);
    __type(key, __u32); __type(value, struct wval);
} warr SEC(".maps");
struct {
    __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 4);
    __type(key, __u32); __type(value, struct wval);
} wh SEC(".maps");
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
CALLBACK = """
static int cb(void *map, int *key, void *value)
{ struct wval *v = value; v->cnt += 1; v->data = 42 + *key; return 0; }
"""
LOOKED_UP = "struct wval *v = bpf_map_lookup_elem(&warr, &k); if (!v) return 1;"


def obj(source: str) -> bytes:
    return compile_object(source, flags=("-O2", "-mcpu=v3"))


def _values(maps, wanted: dict) -> dict:
    return {name: [maps[name].lookup(u32(k)) for k in keys] for name, keys in wanted.items()}


def _both(data: bytes, runs: int, maps: dict, until=None, settle=False, before=None,
          machine=None):
    """Run the object's program ``runs`` times in the kernel and in pyebpf, then let
    queued work run (the kernel: poll ``maps`` until ``until(values)`` holds, or
    RUN_WAIT passes, after SETTLE; with ``settle`` wait SETTLE; pyebpf:
    pyebpf.run_timers(machine=machine)); (retvals, the values of ``maps`` (name -> keys))
    of each side.  ``before(maps)`` runs on each side's maps first."""
    ours = pyebpf.load(data)
    try:
        with pyebpf.kernel.load_object(data) as kobj:
            if before:
                before(kobj.maps)
            theirs = [kobj.program("prog").test_run(PACKET).retval for _ in range(runs)]
            if settle or until is not None:
                time.sleep(SETTLE)
            kernel = _values(kobj.maps, maps)
            deadline = time.monotonic() + RUN_WAIT
            while until is not None and not until(kernel) and time.monotonic() < deadline:
                time.sleep(0.01)
                kernel = _values(kobj.maps, maps)
        if before:
            before(ours.maps)
        prog = ours.program("prog")
        mine = [prog.run(PACKET).retval & 0xFFFFFFFF for _ in range(runs)]
        pyebpf.run_timers(machine=machine)
        engine = _values(ours.maps, maps)
    finally:
        ours.close()
    count_comparison()
    return (mine, engine), (theirs, kernel)


def _longs(value: bytes) -> list[int]:
    return list(struct.unpack("<16q", value))


def _record(*calls: str) -> str:
    """A program body that stores what each call returns in out[0][i], in order."""
    lines = ["__u32 z = 0; long *o = bpf_map_lookup_elem(&out, &z); if (!o) return 1;",
             LOOKED_UP]
    lines += [f"o[{i}] = {call};" for i, call in enumerate(calls)]
    return "\n".join(lines) + "\nreturn 0;"


def _ran(value: bytes) -> tuple[int, int]:
    """(cnt, data) of a struct wval."""
    return struct.unpack_from("<ii", value)


# --- what the kfuncs return in each state ---------------------------------------------


def test_the_kfuncs_on_an_uninitialised_work_item_give_what_the_kernel_gives():
    body = _record("bpf_wq_start(&v->w, 0)", "bpf_wq_set_callback(&v->w, cb, 0)")
    ours, theirs = _both(obj(TC % (CALLBACK, body)), 1, {"out": [0]})
    assert ours == theirs
    assert _longs(theirs[1]["out"][0])[:2] == [-errno.EINVAL] * 2


@pytest.mark.parametrize("flags", [1, 1 << 31], ids=["flag-bit-0", "flag-bit-31"])
def test_every_kfunc_refuses_flags_as_the_kernel_does(flags):
    body = _record(f"bpf_wq_init(&v->w, &warr, {flags}ULL)", "bpf_wq_init(&v->w, &warr, 0)",
                   f"bpf_wq_set_callback(&v->w, cb, {flags}ULL)",
                   "bpf_wq_set_callback(&v->w, cb, 0)", f"bpf_wq_start(&v->w, {flags}ULL)")
    ours, theirs = _both(obj(TC % (CALLBACK, body)), 1, {"out": [0], "warr": [0]})
    assert ours == theirs


def test_a_second_init_is_ebusy_as_in_the_kernel():
    body = _record("bpf_wq_init(&v->w, &warr, 0)", "bpf_wq_init(&v->w, &warr, 0)")
    ours, theirs = _both(obj(TC % (CALLBACK, body)), 1, {"out": [0]})
    assert ours == theirs
    assert _longs(theirs[1]["out"][0])[:2] == [0, -errno.EBUSY]


def test_a_map_without_user_references_refuses_init_with_eperm_as_in_the_kernel():
    # (a program no other test runs: the recorded answers key a run by the program and
    # the map's contents, which closing the map's fd does not change)
    body = "__u32 z = 0; struct wval *v = bpf_map_lookup_elem(&warr, &z); if (!v) return 1;" \
           "return -bpf_wq_init(&v->w, &warr, 0);"
    ours, theirs = _both(obj(TC % ("", body)), 1, {},
                         before=lambda maps: maps["warr"].close())
    assert ours == theirs
    assert theirs[0] == [errno.EPERM]


def test_start_needs_a_callback_as_in_the_kernel():
    body = _record("bpf_wq_init(&v->w, &warr, 0)", "bpf_wq_start(&v->w, 0)",
                   "bpf_wq_set_callback(&v->w, cb, 0)", "bpf_wq_start(&v->w, 0)")
    ours, theirs = _both(obj(TC % (CALLBACK, body)), 1, {"out": [0], "warr": [0]},
                         until=lambda m: _ran(m["warr"][0])[0] > 0)
    assert ours == theirs
    assert _longs(theirs[1]["out"][0])[:4] == [0, -errno.EINVAL, 0, 0]


# --- the work running ------------------------------------------------------------------

START = _record("bpf_wq_init(&v->w, &warr, 0)", "bpf_wq_set_callback(&v->w, cb, 0)",
                "bpf_wq_start(&v->w, 0)")


def test_started_work_runs_its_callback_on_the_map_value_as_in_the_kernel():
    ours, theirs = _both(obj(TC % (CALLBACK, START)), 1, {"warr": [0, 1]},
                         until=lambda m: _ran(m["warr"][0])[0] > 0)
    assert ours == theirs
    assert _ran(theirs[1]["warr"][0]) == (1, 42)


def test_a_wq_map_got_from_its_pin_in_another_process_keeps_its_work_item(tmp_path,
                                                                          monkeypatch):
    """The pin keeps the value's BTF (pin format 7): a process that gets the map from its
    pin loads and runs a program using its bpf_wq as the kernel runs it."""
    monkeypatch.setenv("PYEBPF_PIN_ROOT", str(tmp_path))
    pinned = pinned_by_name(MAPS, "warr")
    data = obj(pinned + "\n" + CALLBACK +
               'SEC("tc") int prog(struct __sk_buff *skb) { __u32 k = 0; ' + START + "}")
    with pyebpf.kernel.load_object(data) as kobj:
        retval = kobj.program("prog").test_run(PACKET).retval
        time.sleep(SETTLE)
        deadline = time.monotonic() + RUN_WAIT
        while _ran(kobj.maps["warr"].lookup(u32(0)))[0] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        theirs = retval, {name: [kobj.maps[name].lookup(u32(k)) for k in keys]
                          for name, keys in (("warr", (0, 1)), ("out", (0,)))}
    count_comparison()
    ours = run_from_pins_in_child(data, "warr", {"warr": [0, 1], "out": [0]}, PACKET)
    assert ours == theirs
    assert _ran(theirs[1]["warr"][0]) == (1, 42)

def test_work_started_twice_before_it_runs_runs_once_as_in_the_kernel():
    body = START.replace("return 0;", "o[3] = bpf_wq_start(&v->w, 0); return 0;")
    ours, theirs = _both(obj(TC % (CALLBACK, body)), 1, {"warr": [0], "out": [0]},
                         until=lambda m: _ran(m["warr"][0])[0] > 0)
    assert ours == theirs
    assert _ran(theirs[1]["warr"][0]) == (1, 42)


def test_a_hash_work_callback_gets_the_element_key_as_in_the_kernel():
    body = """
    __u32 key = 3; struct wval init = {};
    if (bpf_map_update_elem(&wh, &key, &init, 0)) return 1;
    struct wval *v = bpf_map_lookup_elem(&wh, &key); if (!v) return 2;
    if (bpf_wq_init(&v->w, &wh, 0)) return 3;
    if (bpf_wq_set_callback(&v->w, cb, 0)) return 4;
    return bpf_wq_start(&v->w, 0);
    """
    ours, theirs = _both(obj(TC % (CALLBACK, body)), 1, {"wh": [3]},
                         until=lambda m: _ran(m["wh"][0])[0] > 0)
    assert ours == theirs
    assert _ran(theirs[1]["wh"][0]) == (1, 45)


def test_work_items_stay_initialised_from_one_run_to_the_next_as_in_the_kernel():
    body = _record("bpf_wq_init(&v->w, &warr, 0)", "bpf_wq_set_callback(&v->w, cb, 0)",
                   "bpf_wq_start(&v->w, 0)")
    ours, theirs = _both(obj(TC % (CALLBACK, body)), 2, {"out": [0]})
    assert ours == theirs
    assert _longs(theirs[1]["out"][0])[:3] == [-errno.EBUSY, 0, 0]


def test_deleting_a_hash_element_cancels_its_queued_work_as_in_the_kernel():
    """bpf_wq_cancel_and_free: the element's work item goes with it, and the callback
    does not run (on the element added again under the same key)."""
    body = """
    __u32 key = 1; struct wval init = {};
    if (bpf_map_update_elem(&wh, &key, &init, 0)) return 1;
    struct wval *v = bpf_map_lookup_elem(&wh, &key); if (!v) return 2;
    bpf_wq_init(&v->w, &wh, 0); bpf_wq_set_callback(&v->w, cb, 0);
    bpf_wq_start(&v->w, 0);
    bpf_map_delete_elem(&wh, &key);
    return bpf_map_update_elem(&wh, &key, &init, 0);
    """
    ours, theirs = _both(obj(TC % (CALLBACK, body)), 1, {"wh": [1]}, settle=True)
    assert ours == theirs
    assert theirs[1]["wh"][0] == bytes(24)


def test_overwriting_an_array_element_cancels_its_queued_work_as_in_the_kernel():
    body = START.replace("return 0;", """
    struct wval fresh = {.cnt = 9};
    bpf_map_update_elem(&warr, &k, &fresh, BPF_ANY);
    return bpf_wq_start(&v->w, 0);""")
    ours, theirs = _both(obj(TC % (CALLBACK, body)), 1, {"warr": [0]}, settle=True)
    assert ours == theirs
    assert theirs[0] == [-errno.EINVAL & 0xFFFFFFFF]
    assert _ran(theirs[1]["warr"][0]) == (9, 0)


def test_closing_the_map_cancels_its_queued_work():
    ours = pyebpf.load(obj(TC % (CALLBACK, START)))
    try:
        ours.program("prog").run(PACKET)
        ours.maps["warr"].close()
        assert pyebpf.run_timers() == 0
    finally:
        ours.close()


def test_queued_work_runs_in_the_order_it_was_queued():
    callbacks = """
static int first(void *map, int *key, void *value)
{
    __u32 z = 0; long *o = bpf_map_lookup_elem(&out, &z);
    if (o) { long n = o[15] & 7; o[n] = *key; o[15] = n + 1; }
    return 0;
}
"""
    body = """
    __u32 z = 0, j = 1; struct wval *a = bpf_map_lookup_elem(&warr, &j);
    struct wval *b = bpf_map_lookup_elem(&warr, &z); if (!a || !b) return 1;
    bpf_wq_init(&a->w, &warr, 0); bpf_wq_set_callback(&a->w, first, 0);
    bpf_wq_init(&b->w, &warr, 0); bpf_wq_set_callback(&b->w, first, 0);
    bpf_wq_start(&a->w, 0); bpf_wq_start(&b->w, 0);
    return 0;
    """
    ours = pyebpf.load(obj(TC % (callbacks, body)))
    try:
        ours.program("prog").run(PACKET)
        assert pyebpf.run_timers() == 2
        assert _longs(ours.maps["out"].lookup(u32(0)))[:3] == [1, 0, 0]
        assert _longs(ours.maps["out"].lookup(u32(0)))[15] == 2
    finally:
        ours.close()


# --- the verifier -------------------------------------------------------------------------


@pytest.mark.parametrize("callbacks, body, message", [
    ("", LOOKED_UP + "return bpf_wq_init(&v->w, &k, 0);", "pointer in R2 isn't map pointer"),
    ("", LOOKED_UP + "return bpf_wq_init(&v->w, &wh, 0);",
     "workqueue pointer in R1 map_uid=0 doesn't match map pointer in R2 map_uid=0"),
    ("", "struct bpf_wq w = {}; return bpf_wq_start(&w, 0);",
     "arg#0 doesn't point to a map value"),
    ("", LOOKED_UP + "return bpf_wq_start((struct bpf_wq *)&v->data, 0);",
     "off 4 doesn't point to 'struct bpf_wq' that is at 8"),
    ("", LOOKED_UP + "return *(volatile __u64 *)&v->w;",
     "bpf_wq cannot be accessed directly by load/store"),
    ("", LOOKED_UP + "__u32 i = skb->len & 1;"
     "return bpf_wq_start((struct bpf_wq *)((char *)&v->w + i), 0);",
     "R1 doesn't have constant offset. bpf_wq has to be at the constant offset"),
    ("", LOOKED_UP + "return bpf_wq_set_callback_impl(&v->w, 0, 0, 0);",
     "Possibly NULL pointer passed to trusted arg1"),
    ("", LOOKED_UP + "return bpf_wq_set_callback_impl(&v->w, (void *)v, 0, 0);",
     "arg1 expected pointer to func"),
    ("__attribute__((noinline)) int cb(void *map, int *key, void *v) { return 0; }",
     LOOKED_UP + "return bpf_wq_set_callback(&v->w, cb, 0);", "callback function not static"),
    ("static int cb(void *map, int *key, void *v) { return 1; }",
     LOOKED_UP + "return bpf_wq_set_callback(&v->w, cb, 0);",
     "At async callback return the register R0 has smin=1 smax=1 should have been in [0, 0]"),
    ("static int cb(void *map, int *key, void *v) "
     "{ return *(volatile int *)((char *)v + 24); }",
     LOOKED_UP + "return bpf_wq_set_callback(&v->w, cb, 0);",
     "R3 min value is outside of the allowed memory range"),
    ("static int cb(void *map, int *key, void *v) { return (long)v; }",
     LOOKED_UP + "return bpf_wq_set_callback(&v->w, cb, 0);",
     "At async callback return the register R0 is not a known value (map_value)"),
], ids=["init-not-a-map", "init-other-map", "stack-wq", "wrong-offset", "direct-read",
        "variable-offset", "null-callback", "value-as-callback", "global-callback",
        "callback-returns-1", "callback-value-bounds", "callback-returns-pointer"])
def test_a_wq_misuse_is_refused_as_the_kernel_refuses_it(callbacks, body, message):
    ours, theirs = verdicts(obj(TC % (callbacks, body)))
    assert theirs is not None and message in theirs, theirs
    assert ours is not None and message in ours, (ours, theirs)


def test_a_callback_that_reads_its_key_and_value_loads_as_in_the_kernel():
    assert verdicts(obj(TC % (CALLBACK, START))) == (None, None)


def test_a_socket_filter_may_use_a_wq_as_in_the_kernel():
    source = MAPS + CALLBACK + 'SEC("socket") int prog(struct __sk_buff *skb) {' \
        "__u32 k = 0;" + START + "}"
    assert verdicts(obj(source)) == (None, None)


def test_a_kprobe_may_not_use_a_map_with_a_wq_as_in_the_kernel():
    source = MAPS + 'SEC("kprobe/x") int prog(void *ctx) { __u32 k = 0;' + LOOKED_UP + \
        "return v->cnt; }"
    ours, theirs = verdicts(obj(source))
    message = "tracing progs cannot use bpf_wq yet"
    assert theirs is not None and message in theirs, theirs
    assert ours is not None and message in ours, (ours, theirs)


# --- the callback's path may sleep (push_async_cb's is_sleepable, in_sleepable) -----------

SLEEPING = r"""
#define BPF_F_PAD_ZEROS 1
extern int bpf_copy_from_user_str(void *dst, __u32 dst__sz, const void *unsafe_ptr__ign,
                                  __u64 flags) __ksym;
extern void bpf_rcu_read_lock(void) __ksym;
extern void bpf_rcu_read_unlock(void) __ksym;
extern void bpf_preempt_disable(void) __ksym;
extern void bpf_preempt_enable(void) __ksym;
"""
COPY = "long d; ((struct wval *)v)->data = bpf_copy_from_user(&d, 8, 0);"
COPY_STR = "char d[8]; ((struct wval *)v)->data = bpf_copy_from_user_str(d, 8, 0, 0);"
COPY_TASK = ("long d; ((struct wval *)v)->data = "
             "bpf_copy_from_user_task(&d, 8, 0, bpf_get_current_task_btf(), 0);")


def _in_callback(body: str, helpers: str = "") -> str:
    return SLEEPING + helpers + "static int cb(void *map, int *key, void *v) { " + body + \
        " return 0; }"


@pytest.mark.parametrize("callbacks", [
    _in_callback(COPY), _in_callback(COPY_STR),
    _in_callback("((struct wval *)v)->data = f();",
                 "static __attribute__((noinline)) int f(void) "
                 "{ long d; return bpf_copy_from_user(&d, 8, 0); }"),
    _in_callback(COPY_TASK),
], ids=["helper", "kfunc", "helper-in-a-function-it-calls", "helper-on-a-task"])
def test_a_work_callback_may_call_what_might_sleep_as_in_the_kernel(callbacks):
    assert verdicts(obj(TC % (callbacks, START))) == (None, None)


@pytest.mark.parametrize("callbacks, body, message", [
    (SLEEPING, "long d; return bpf_copy_from_user(&d, 8, 0);",
     "helper call might sleep in a non-sleepable prog"),
    (SLEEPING, "char d[8]; return bpf_copy_from_user_str(d, 8, 0, 0);",
     "program must be sleepable to call sleepable kfunc bpf_copy_from_user_str"),
    (_in_callback("bpf_rcu_read_lock(); " + COPY + " bpf_rcu_read_unlock();"), START,
     "sleepable helper bpf_copy_from_user#148 in rcu_read_lock region"),
    (_in_callback("bpf_preempt_disable(); " + COPY + " bpf_preempt_enable();"), START,
     "sleepable helper bpf_copy_from_user#148 in non-preemptible region"),
    (_in_callback("bpf_rcu_read_lock(); " + COPY_STR + " bpf_rcu_read_unlock();"), START,
     "kernel func bpf_copy_from_user_str is sleepable within rcu_read_lock region"),
    (_in_callback("bpf_preempt_disable(); " + COPY_STR + " bpf_preempt_enable();"), START,
     "kernel func bpf_copy_from_user_str is sleepable within non-preemptible region"),
    (SLEEPING, "long d; return bpf_copy_from_user_task(&d, 8, 0, bpf_get_current_task_btf(), 0);",
     "helper call might sleep in a non-sleepable prog"),
    (_in_callback("bpf_rcu_read_lock(); " + COPY_TASK + " bpf_rcu_read_unlock();"), START,
     "sleepable helper bpf_copy_from_user_task#191 in rcu_read_lock region"),
], ids=["helper-in-the-program", "kfunc-in-the-program", "helper-under-rcu-lock",
        "helper-with-preemption-off", "kfunc-under-rcu-lock", "kfunc-with-preemption-off",
        "task-helper-in-the-program", "task-helper-under-rcu-lock"])
def test_what_might_sleep_is_refused_where_the_path_may_not_sleep_as_in_the_kernel(
        callbacks, body, message):
    ours, theirs = verdicts(obj(TC % (callbacks, body)))
    assert theirs is not None and message in theirs, theirs
    assert ours is not None and message in ours, (ours, theirs)


def test_copies_from_user_memory_in_a_work_callback_fault_as_in_the_kernel():
    """The kworker running the work has no user memory: every copy faults (-EFAULT), the
    helper zeroing its destination and the kfunc with BPF_F_PAD_ZEROS too; a 1-byte
    string copies nothing and cannot fault; flags it does not know are -EINVAL."""
    callbacks = SLEEPING + r"""
static int cb(void *map, int *key, void *value)
{
    __u32 z = 0; long *o = bpf_map_lookup_elem(&out, &z);
    if (!o) return 0;
    long d = -1; char s[8];
    o[4] = bpf_copy_from_user(&d, 8, 0); o[5] = d;
    d = -1; o[6] = bpf_copy_from_user(&d, 8, value); o[7] = d;
    __builtin_memset(s, 'x', 8); o[8] = bpf_copy_from_user_str(s, 8, 0, 0);
    o[9] = *(long *)s;
    o[10] = bpf_copy_from_user_str(s, 8, 0, BPF_F_PAD_ZEROS); o[11] = *(long *)s;
    __builtin_memset(s, 'x', 8); o[12] = bpf_copy_from_user_str(s, 1, 0, 0);
    o[13] = *(long *)s;
    o[14] = bpf_copy_from_user_str(s, 8, 0, 2);
    o[15] = 1;
    return 0;
}
"""
    ours, theirs = _both(obj(TC % (callbacks, START)), 1, {"out": [0]},
                         until=lambda m: _longs(m["out"][0])[15] == 1)
    assert ours == theirs
    xs = int.from_bytes(b"x" * 8, "little")
    assert _longs(theirs[1]["out"][0])[4:] == [
        -errno.EFAULT, 0, -errno.EFAULT, 0, -errno.EFAULT, xs, -errno.EFAULT, 0,
        1, int.from_bytes(b"\0" + b"x" * 7, "little"), -errno.EINVAL, 1]


COPIES = r"""
struct task_struct;
struct dma_buf;
struct bpf_iter_dmabuf { __u64 __opaque[1]; } __attribute__((aligned(8)));
extern int bpf_copy_from_user_dynptr(struct bpf_dynptr *dptr, __u64 off, __u64 size,
                                     const void *unsafe_ptr__ign) __ksym;
extern int bpf_copy_from_user_str_dynptr(struct bpf_dynptr *dptr, __u64 off, __u64 size,
                                         const void *unsafe_ptr__ign) __ksym;
extern int bpf_copy_from_user_task_dynptr(struct bpf_dynptr *dptr, __u64 off, __u64 size,
                                          const void *unsafe_ptr__ign,
                                          struct task_struct *tsk) __ksym;
extern int bpf_copy_from_user_task_str_dynptr(struct bpf_dynptr *dptr, __u64 off,
                                              __u64 size, const void *unsafe_ptr__ign,
                                              struct task_struct *tsk) __ksym;
extern int bpf_copy_from_user_task_str(void *dst, __u32 dst__sz, const void *unsafe_ptr__ign,
                                       struct task_struct *tsk, __u64 flags) __ksym;
extern int bpf_iter_dmabuf_new(struct bpf_iter_dmabuf *it) __ksym;
extern struct dma_buf *bpf_iter_dmabuf_next(struct bpf_iter_dmabuf *it) __ksym;
extern void bpf_iter_dmabuf_destroy(struct bpf_iter_dmabuf *it) __ksym;
extern struct task_struct *bpf_task_from_pid(__s32 pid) __ksym;
extern void bpf_task_release(struct task_struct *p) __ksym;
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
    __type(key, __u32); __type(value, char[32]);
} dbuf SEC(".maps");
#define X8 0x7878787878787878L
"""
# a callback that fills dbuf with 'x', makes d a dynptr over it and n a NULL one (the
# flags bpf_dynptr_from_mem refuses), then records into out[0]: BODY's calls, and 1 in
# its last slot once it ran
_DYNPTRS = """
static int cb(void *map, int *key, void *value)
{
    __u32 z = 0; long *o = bpf_map_lookup_elem(&out, &z); long *b = bpf_map_lookup_elem(&dbuf, &z);
    struct bpf_dynptr d, n;
    char s[8];
    if (!o || !b) return 0;
    b[0] = b[1] = b[2] = b[3] = X8;
    bpf_dynptr_from_mem(b, 32, 0, &d);
    bpf_dynptr_from_mem(b, 32, 1, &n);
    %s
    o[15] = 1;
    return 0;
}
"""


# the machine the work runs in: kthreadd (pid 2), a kernel thread, has no user memory
KTHREADD = Machine(tasks=(Task(pid=2, comm="kthreadd", address=0xFFFF888100900000),))


def _copies(body: str) -> list[int]:
    """out[0] of both sides once the callback running ``body`` (see _DYNPTRS) ran, after
    asserting they are the same."""
    ours, theirs = _both(obj(TC % (SLEEPING + COPIES + _DYNPTRS % body, START)), 1,
                         {"out": [0]}, until=lambda m: _longs(m["out"][0])[15] == 1,
                         machine=KTHREADD)
    assert ours == theirs
    return _longs(theirs[1]["out"][0])


def test_copies_from_user_memory_into_a_dynptr_fault_as_in_the_kernel():
    """In the kworker every user address faults: a copy into the dynptr's memory is
    -EFAULT and zeroes the range (copy_from_user), a string copy -EFAULT leaving it, but
    one of a single byte writes the NUL and gives 1; past the end is -E2BIG, nothing to
    copy 0, and into a NULL dynptr only nothing."""
    xs = int.from_bytes(b"x" * 8, "little")
    assert _copies("""
    o[0] = bpf_copy_from_user_dynptr(&d, 0, 8, 0); o[1] = b[0];
    o[2] = bpf_copy_from_user_dynptr(&d, 30, 8, 0);
    o[3] = bpf_copy_from_user_dynptr(&d, 8, 0, 0);
    o[4] = bpf_copy_from_user_str_dynptr(&d, 8, 8, 0); o[5] = b[1];
    o[6] = bpf_copy_from_user_str_dynptr(&d, 16, 1, 0); o[7] = b[2];
    o[8] = bpf_copy_from_user_str_dynptr(&d, 32, 1, 0);
    o[9] = bpf_copy_from_user_dynptr(&n, 0, 0, 0);
    o[10] = bpf_copy_from_user_str_dynptr(&n, 0, 4, 0);
    o[11] = bpf_copy_from_user_dynptr(&d, 24, 8, b); o[12] = b[3];
    """)[:13] == [-errno.EFAULT, 0, -errno.E2BIG, 0, -errno.EFAULT, xs, 1, xs & ~0xFF,
                  -errno.E2BIG, 0, -errno.E2BIG, -errno.EFAULT, 0]


def test_copies_from_a_tasks_user_memory_fault_as_in_the_kernel():
    """A task's memory (kthreadd's, pid 2: a kernel thread has none) read from the
    callback: the data copy -EFAULT leaving the destination, the string copies -EFAULT
    with the destination's first byte NUL (copy_remote_vm_str empties it first), all of
    it with BPF_F_PAD_ZEROS; flags it does not know are -EINVAL."""
    xs = int.from_bytes(b"x" * 8, "little")
    assert _copies("""
    struct task_struct *t = bpf_task_from_pid(2);
    o[14] = !t;
    if (t) {
    o[0] = bpf_copy_from_user_task_dynptr(&d, 0, 8, 0, t); o[1] = b[0];
    o[2] = bpf_copy_from_user_task_dynptr(&d, 8, 0, 0, t);
    o[3] = bpf_copy_from_user_task_dynptr(&d, 30, 8, 0, t);
    o[4] = bpf_copy_from_user_task_str_dynptr(&d, 8, 8, 0, t); o[5] = b[1];
    o[6] = bpf_copy_from_user_task_str_dynptr(&d, 16, 1, 0, t); o[7] = b[2];
    o[8] = bpf_copy_from_user_task_str_dynptr(&n, 0, 0, 0, t);
    __builtin_memset(s, 'x', 8);
    o[9] = bpf_copy_from_user_task_str(s, 8, 0, t, 0); o[10] = *(long *)s;
    __builtin_memset(s, 'x', 8);
    o[11] = bpf_copy_from_user_task_str(s, 8, 0, t, BPF_F_PAD_ZEROS); o[12] = *(long *)s;
    o[13] = bpf_copy_from_user_task_str(s, 8, 0, t, 2);
    bpf_task_release(t);
    }
    """)[:15] == [-errno.EFAULT, xs, 0, -errno.E2BIG, -errno.EFAULT, xs & ~0xFF,
                  -errno.EFAULT, xs & ~0xFF, 0, -errno.EFAULT, xs & ~0xFF, -errno.EFAULT, 0,
                  -errno.EINVAL, 0]


def test_the_dma_buf_iterator_finds_none_as_in_the_kernel():
    assert _copies("""
    struct bpf_iter_dmabuf it;
    long k = 0;
    o[0] = bpf_iter_dmabuf_new(&it);
    while (bpf_iter_dmabuf_next(&it) && k < 64)
        k++;
    bpf_iter_dmabuf_destroy(&it);
    o[1] = k;
    """)[:2] == [0, 0]


@pytest.mark.parametrize("call", [
    "bpf_copy_from_user_dynptr(&d, 0, 8, 0)", "bpf_copy_from_user_str_dynptr(&d, 0, 8, 0)",
    "bpf_copy_from_user_task_dynptr(&d, 0, 8, 0, t)",
    "bpf_copy_from_user_task_str_dynptr(&d, 0, 8, 0, t)",
    "bpf_copy_from_user_task_str(s, 8, 0, t, 0)", "bpf_iter_dmabuf_new(&it)",
], ids=lambda c: c.split("(")[0])
def test_a_sleepable_copy_in_the_program_is_refused_as_in_the_kernel(call):
    body = ("char s[8]; struct bpf_dynptr d; struct bpf_iter_dmabuf it; __u32 z = 0; "
            "long *b = bpf_map_lookup_elem(&dbuf, &z); struct task_struct *t; int r; "
            "if (!b) return 0; bpf_dynptr_from_mem(b, 32, 0, &d); "
            "t = bpf_task_from_pid(2); if (!t) return 0; "
            f"r = {call}; bpf_task_release(t); return r;")
    ours, theirs = verdicts(obj(TC % (SLEEPING + COPIES, body)))
    message = f"program must be sleepable to call sleepable kfunc {call.split('(')[0]}"
    assert theirs is not None and message in theirs, theirs
    assert ours is not None and message in ours, (ours, theirs)


# --- bpf_copy_from_user_task: a task's user memory (access_process_vm) ---------------------

TASK_COPY = SLEEPING + r"""
struct task_struct;
extern struct task_struct *bpf_task_from_pid(__s32 pid) __ksym;
extern void bpf_task_release(struct task_struct *p) __ksym;
// where[0]: 8 bytes the task maps, where[1]: 4 bytes it maps before a page it does not,
// where[2]: the task's pid
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 3);
    __type(key, __u32); __type(value, __u64);
} where SEC(".maps");
static __u64 at(__u32 k) { __u64 *p = bpf_map_lookup_elem(&where, &k); return p ? *p : 0; }

static int cb(void *map, int *key, void *value)
{
    __u32 z = 0; long *o = bpf_map_lookup_elem(&out, &z);
    struct task_struct *t;
    char *u = (char *)at(0);
    long d;
    if (!o) return 0;
    t = bpf_task_from_pid(at(2));
    o[14] = !t;
    if (t) {
        d = -1; o[0] = bpf_copy_from_user_task(&d, 8, u, t, 0); o[1] = d;
        d = -1; o[2] = bpf_copy_from_user_task(&d, 4, u + 4, t, 0); o[3] = d;
        d = -1; o[4] = bpf_copy_from_user_task(&d, 8, (char *)at(1), t, 0); o[5] = d;
        d = -1; o[6] = bpf_copy_from_user_task(&d, 8, (void *)8, t, 0); o[7] = d;
        d = -1; o[8] = bpf_copy_from_user_task(&d, 8, u, t, 1); o[9] = d;
        d = -1; o[10] = bpf_copy_from_user_task(&d, 0, u, t, 0); o[11] = d;
        bpf_task_release(t);
    }
    d = -1; o[12] = bpf_copy_from_user_task(&d, 8, u, bpf_get_current_task_btf(), 0);
    o[13] = d;
    o[15] = 1;
    return 0;
}
"""
WORDS, TAIL = b"copy me!", b"tail"
# where pyebpf's task maps them (the kernel's side: wherever mmap puts them)
USER_BASE = 0x7F0000000000
# the page the kernel's side maps (zeros but WORDS and TAIL), as pyebpf's task maps it
PAGE_MACHINE = Machine(task=Task(pid=4242), user_memory={
    USER_BASE: WORDS + bytes(mmap.PAGESIZE - len(WORDS) - len(TAIL)) + TAIL})
# what d (-1 before) holds after a copy of WORDS, and of its last 4 bytes
WORD = struct.unpack("<q", WORDS)[0]
HALF_WORD = struct.unpack("<q", WORDS[4:] + b"\xff" * 4)[0]


def _kernel_task_copy(data: bytes) -> dict:
    """The kernel's out[0] once the callback ran, with WORDS at the start of a page of
    this process and TAIL at the end of it, the next page unmapped."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    page = mmap.PAGESIZE
    base = libc.mmap(None, 2 * page, mmap.PROT_READ | mmap.PROT_WRITE,
                     mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
    assert base not in (None, ctypes.c_void_p(-1).value), os.strerror(ctypes.get_errno())
    ctypes.memmove(base, WORDS, len(WORDS))
    ctypes.memmove(base + page - len(TAIL), TAIL, len(TAIL))
    libc.munmap(base + page, page)
    try:
        with pyebpf.kernel.load_object(data) as kobj:
            for k, v in enumerate((base, base + page - len(TAIL), os.getpid())):
                kobj.maps["where"].update(u32(k), struct.pack("<Q", v))
            return _out_once_work_ran(kobj)
    finally:
        libc.munmap(base, page)


def _engine_task_copy(data: bytes, machine: Machine, pid: int) -> list[int]:
    ours = pyebpf.load(data)
    try:
        where = ours.maps["where"]
        for k, v in enumerate((USER_BASE, USER_BASE + mmap.PAGESIZE - len(TAIL), pid)):
            where[u32(k)] = struct.pack("<Q", v)
        ours.program("prog").run(PACKET, machine=machine)
        assert pyebpf.run_timers(machine=machine) == 1
        return _longs(ours.maps["out"][u32(0)])
    finally:
        ours.close()


def test_a_work_callback_copies_a_tasks_user_memory_as_the_kernel_does(kernel_observation):
    """bpf_copy_from_user_task reads the task's memory: 0 and the bytes when all of them
    are mapped; -EFAULT and a zeroed destination when any byte is not (a range running
    into an unmapped page, an unmapped address, the kworker running the work, which has
    no memory); flags are -EINVAL, the destination untouched; nothing to copy is 0."""
    data = obj(TC % (TASK_COPY, START))
    theirs = kernel_observation("a bpf_wq callback copying a task's user memory", data.hex(),
                                lambda: _kernel_task_copy(data))["out"]
    ours = _engine_task_copy(data, PAGE_MACHINE, PAGE_MACHINE.task.pid)
    count_comparison()
    assert ours == theirs
    assert theirs == [0, WORD, 0, HALF_WORD, -errno.EFAULT, 0,
                      -errno.EFAULT, 0, -errno.EINVAL, -1, 0, -1, -errno.EFAULT, 0, 0, 1]


TASK_KFUNCS = TASK_COPY.split("static int cb")[0] + COPIES.replace(
    "struct task_struct;\n", "").replace(
    "extern struct task_struct *bpf_task_from_pid(__s32 pid) __ksym;\n", "").replace(
    "extern void bpf_task_release(struct task_struct *p) __ksym;\n", "") + r"""
static int cb(void *map, int *key, void *value)
{
    __u32 z = 0; long *o = bpf_map_lookup_elem(&out, &z); long *b = bpf_map_lookup_elem(&dbuf, &z);
    char *u = (char *)at(0), *tail = (char *)at(1);
    struct task_struct *t;
    struct bpf_dynptr d;
    char s[16];
    if (!o || !b) return 0;
    t = bpf_task_from_pid(at(2));
    if (!t) { o[15] = 2; return 0; }
    b[0] = b[1] = b[2] = b[3] = X8;
    bpf_dynptr_from_mem(b, 32, 0, &d);
    o[0] = bpf_copy_from_user_task_dynptr(&d, 0, 8, u, t); o[1] = b[0];
    o[2] = bpf_copy_from_user_task_dynptr(&d, 8, 8, tail, t); o[3] = b[1];
    __builtin_memset(s, 'x', 16);
    o[4] = bpf_copy_from_user_task_str(s, 16, u, t, 0); o[5] = *(long *)s; o[6] = s[8];
    __builtin_memset(s, 'x', 16);
    o[7] = bpf_copy_from_user_task_str(s, 4, u, t, 0); o[8] = *(long *)s;
    __builtin_memset(s, 'x', 16);
    o[9] = bpf_copy_from_user_task_str(s, 16, tail, t, 0); o[10] = *(long *)s;
    __builtin_memset(s, 'x', 16);
    o[11] = bpf_copy_from_user_task_str(s, 16, u + 4, t, BPF_F_PAD_ZEROS);
    o[12] = *(long *)(s + 8);
    o[13] = bpf_copy_from_user_task_str_dynptr(&d, 16, 16, u, t); o[14] = b[2];
    bpf_task_release(t);
    o[15] = 1;
    return 0;
}
"""


def test_the_task_kfuncs_copy_a_tasks_user_memory_as_the_kernel_does(kernel_observation):
    """bpf_copy_from_user_task_dynptr copies what the task maps, -EFAULT unless all of it
    (what it could copy stays); bpf_copy_from_user_task_str and its dynptr twin copy the
    string and its NUL, at most the size with a NUL last, the length with the NUL
    returned (BPF_F_PAD_ZEROS zeroing the rest), -EFAULT for a string running into
    memory the task does not map (what it copied kept, a NUL after it)."""
    data = obj(TC % (TASK_KFUNCS, START))
    theirs = kernel_observation("a bpf_wq callback copying a task's user memory with the "
                                "kfuncs", data.hex(), lambda: _kernel_task_copy(data))["out"]
    ours = _engine_task_copy(data, PAGE_MACHINE, PAGE_MACHINE.task.pid)
    count_comparison()
    assert ours == theirs
    assert theirs[:2] == [0, WORD]
    assert theirs[4:9] == [9, WORD, 0, 4, struct.unpack("<q", b"cop\0" + b"x" * 4)[0]]
    assert theirs[2:4] == [-errno.EFAULT, struct.unpack("<q", TAIL + b"x" * 4)[0]]
    assert theirs[9:11] == [-errno.EFAULT, struct.unpack("<q", TAIL + b"\0xxx")[0]]
    assert theirs[11:15] == [5, 0, 9, WORD]
    assert theirs[15] == 1


TASK_PAGE = TASK_COPY.split("static int cb")[0] + r"""
static int cb(void *map, int *key, void *value)
{
    __u32 z = 0; long *o = bpf_map_lookup_elem(&out, &z);
    char *u = (char *)at(0), *tail = (char *)at(1);
    struct task_struct *t;
    long d[2];
    if (!o) return 0;
    t = bpf_task_from_pid(at(2));
    if (!t) { o[15] = 2; return 0; }
    d[0] = d[1] = -1; o[0] = bpf_copy_from_user_task(d, 8, u + 8, t, 0); o[1] = d[0];
    d[0] = d[1] = -1; o[2] = bpf_copy_from_user_task(d, 16, u + 2048, t, 0);
    o[3] = d[0]; o[4] = d[1];
    d[0] = d[1] = -1; o[5] = bpf_copy_from_user_task(d, 16, tail - 12, t, 0);
    o[6] = d[0]; o[7] = d[1];
    d[0] = d[1] = -1; o[8] = bpf_copy_from_user_task(d, 16, tail - 8, t, 0);
    o[9] = d[0]; o[10] = d[1];
    bpf_task_release(t);
    o[15] = 1;
    return 0;
}
"""


def test_a_tasks_user_memory_is_mapped_in_whole_pages_as_the_kernels(kernel_observation):
    """Task.user_memory maps the pages that hold the bytes given, the rest of them zero
    (a fresh anonymous mapping): declaring WORDS at a page's start and TAIL at its end
    maps the page the kernel's side maps, so copies of bytes nobody gave read zeros as
    the kernel's do, and a copy running on into the next page fails as a whole
    (-EFAULT, the destination zeroed)."""
    data = obj(TC % (TASK_PAGE, START))
    theirs = kernel_observation("a bpf_wq callback copying within and past a task's page",
                                data.hex(), lambda: _kernel_task_copy(data))["out"]
    page = mmap.PAGESIZE
    other = Task(pid=77, address=0xFFFF888100800000,
                 user_memory={USER_BASE: WORDS, USER_BASE + page - len(TAIL): TAIL})
    assert other.user_memory == ((USER_BASE, WORDS + bytes(page - 12) + TAIL),)
    ours = _engine_task_copy(data, Machine(tasks=(other,)), 77)
    count_comparison()
    assert ours == theirs
    tail_word = struct.unpack("<q", bytes(4) + TAIL)[0]
    assert theirs[:11] == [0, 0, 0, 0, 0, 0, 0, tail_word, -errno.EFAULT, 0, 0]


KWORKER_TASK = r"""
struct mm_struct;
struct task_struct {
    int pid; int tgid; unsigned int flags; struct mm_struct *mm; char comm[16];
} __attribute__((preserve_access_index));
extern struct task_struct *bpf_task_from_pid(__s32 pid) __ksym;
extern void bpf_task_release(struct task_struct *p) __ksym;
static int cb(void *map, int *key, void *value)
{
    __u32 z = 0; long *o = bpf_map_lookup_elem(&out, &z);
    struct task_struct *t = bpf_get_current_task_btf(), *found;
    if (!o) return 0;
    o[0] = t->pid; o[1] = t->tgid; o[2] = t->flags; o[3] = t->mm != 0;
    __builtin_memcpy(&o[4], t->comm, 8); __builtin_memcpy(&o[5], t->comm + 8, 8);
    o[6] = bpf_get_current_pid_tgid();
    o[7] = bpf_get_current_task() == (long)t;
    found = bpf_task_from_pid(t->pid);
    o[8] = found != 0;
    if (found) {
        o[9] = found->flags;
        bpf_task_release(found);
    }
    o[15] = 1;
    return 0;
}
"""


def _out_once_work_ran(kobj) -> dict:
    """Run the kernel's program once and wait for the work it queued: its out[0]
    once the callback set the done word (out[15]), or as it stands after RUN_WAIT."""
    kobj.program("prog").test_run(PACKET)
    time.sleep(SETTLE)
    deadline = time.monotonic() + RUN_WAIT
    out = _longs(kobj.maps["out"].lookup(u32(0)))
    while out[15] != 1 and time.monotonic() < deadline:
        time.sleep(0.01)
        out = _longs(kobj.maps["out"].lookup(u32(0)))
    return {"out": out}


def _kernel_callback_out(data: bytes) -> dict:
    """The kernel's out[0] once the work the program queued ran."""
    with pyebpf.kernel.load_object(data) as kobj:
        return _out_once_work_ran(kobj)


def _kworker_view(out: list[int]) -> dict:
    """What a work callback read of its current task, without the ids that vary
    (whether they agree with each other kept) and the comm's CPU and worker numbers."""
    comm = struct.pack("<qq", out[4], out[5]).rstrip(b"\0")
    return {"ids agree": out[0] == out[1] == out[6] & 0xFFFFFFFF == out[6] >> 32,
            "flags": out[2], "has mm": out[3], "comm": (comm.split(b"/")[0], b":" in comm),
            "current task": out[7], "found by pid": out[8], "flags found": out[9]}


def test_the_work_runs_in_a_kworker_with_a_task_struct_as_in_the_kernel(kernel_observation):
    """The work's current task is a per-CPU kworker: its task_struct has its pid (that
    of bpf_get_current_pid_tgid, its own thread group), a kernel thread's flags, no mm,
    a comm kworker/CPU:N, and bpf_task_from_pid finds it.  pyebpf's is
    Machine.kworker: pid KWORKER_PID, comm KWORKER_COMM."""
    data = obj(TC % (SLEEPING + KWORKER_TASK, START))
    theirs = kernel_observation("a bpf_wq callback reading its kworker's task_struct",
                                data.hex(), lambda: _kernel_callback_out(data))["out"]
    machine = Machine()
    ours = pyebpf.load(data)
    try:
        ours.program("prog").run(PACKET, machine=machine)
        assert pyebpf.run_timers(machine=machine) == 1
        mine = _longs(ours.maps["out"][u32(0)])
    finally:
        ours.close()
    count_comparison()
    assert _kworker_view(mine) == _kworker_view(theirs)
    assert _kworker_view(theirs)["flags"] == machine_mod.KWORKER_FLAGS
    assert (mine[0], struct.pack("<qq", mine[4], mine[5]).rstrip(b"\0")) == (
        machine_mod.KWORKER_PID, machine_mod.KWORKER_COMM)


def test_a_machine_may_name_its_kworker():
    data = obj(TC % (SLEEPING + KWORKER_TASK, START))
    machine = Machine(kworker=Task(pid=3803, comm="kworker/1:3", address=0xFFFF888100A00000))
    ours = pyebpf.load(data)
    try:
        ours.program("prog").run(PACKET, machine=machine)
        pyebpf.run_timers(machine=machine)
        mine = _longs(ours.maps["out"][u32(0)])
    finally:
        ours.close()
    assert (mine[0], mine[6], mine[8]) == (3803, 3803 << 32 | 3803, 1)
    assert struct.pack("<qq", mine[4], mine[5]).rstrip(b"\0") == b"kworker/1:3"


def test_a_kworker_has_no_user_memory():
    with pytest.raises(MachineSpecError, match="kworker: a kernel thread has no user memory"):
        Machine(kworker=Task(pid=40, address=0xFFFF888100300000,
                             user_memory={USER_BASE: WORDS}))


TOML_COPY = SLEEPING + r"""
struct task_struct;
extern struct task_struct *bpf_task_from_pid(__s32 pid) __ksym;
extern void bpf_task_release(struct task_struct *p) __ksym;
static int cb(void *map, int *key, void *value)
{
    __u32 z = 0; long *o = bpf_map_lookup_elem(&out, &z);
    struct task_struct *t;
    long d;
    if (!o) return 0;
    o[8] = bpf_get_current_pid_tgid();
    t = bpf_task_from_pid(4242);
    o[9] = t != 0;
    if (t) {
        d = -1; o[10] = bpf_copy_from_user_task(&d, 8, (void *)0x7f0000000000, t, 0);
        o[11] = d;
        d = -1; o[12] = bpf_copy_from_user_task(&d, 8, (void *)0x7f0000000ffc, t, 0);
        o[13] = d;
        bpf_task_release(t);
    }
    o[15] = 1;
    return 0;
}
"""
NET_TOML = """\
[[tasks]]
pid = 4242
comm = "app"
user_memory = { "0x7f0000000000" = "636f7079206d6521" }

[kworker]
pid = 3803
"""


def test_tcsim_runs_the_work_in_the_machine_its_env_file_declares(tmp_path, capsys):
    """tcsim --env: the file's [[tasks]] are the machine's tasks (their user memory
    mapped in pages), its [kworker] the thread the work runs in."""
    import json
    from scapy.all import IP, UDP, Ether
    from pyebpf.pcap import pcapio, tcsim
    (tmp_path / "wq.o").write_bytes(obj(TC % (TOML_COPY, START)))
    (tmp_path / "net.toml").write_text(NET_TOML)
    frame = bytes(Ether() / IP() / UDP())
    pcapio.write(tmp_path / "one.pcap", [(0, frame, len(frame))])
    rc = tcsim.main([str(a) for a in (tmp_path / "wq.o", "-r", tmp_path / "one.pcap", "-q",
                                      "--env", tmp_path / "net.toml",
                                      "--dump-maps", tmp_path / "maps")])
    assert (rc, capsys.readouterr().err) == (0, "")
    (entry,) = json.loads((tmp_path / "maps" / "out.json").read_text())["entries"]
    assert entry["value"][8:] == [3803 << 32 | 3803, 1, 0, WORD, -errno.EFAULT, 0, 0, 1]


def test_an_env_files_task_keys_are_checked(tmp_path):
    from pyebpf.environment import EnvironmentSpecError
    (tmp_path / "net.toml").write_text('[[tasks]]\npid = 1\nstack = 2\n')
    with pytest.raises(EnvironmentSpecError, match=r"net.toml: tasks\[0\]: unknown key "
                                                   r"'stack'; known: pid, tgid, uid, gid, "
                                                   r"comm, user_memory"):
        Machine.from_toml(tmp_path / "net.toml")


def test_a_work_callback_copies_the_user_memory_of_any_task_of_the_machine():
    # Task.user_memory: another task's, found by its pid
    data = obj(TC % (TASK_COPY, START))
    other = Task(pid=77, address=0xFFFF888100800000,
                 user_memory={USER_BASE: WORDS + bytes(mmap.PAGESIZE - 8)})
    out = _engine_task_copy(data, Machine(tasks=(other,)), 77)
    assert out[:6] == [0, WORD, 0, HALF_WORD, -errno.EFAULT, 0]


def test_without_a_machine_the_work_finds_no_task():
    data = obj(TC % (TASK_COPY, START))
    ours = pyebpf.load(data)
    try:
        ours.program("prog").run(PACKET)
        pyebpf.run_timers()
        out = _longs(ours.maps["out"][u32(0)])
    finally:
        ours.close()
    assert out[12:] == [-errno.EFAULT, 0, 1, 1]


def test_the_current_tasks_user_memory_is_the_machines():
    with pytest.raises(MachineSpecError, match="Machine.user_memory"):
        Machine(task=Task(user_memory={USER_BASE: WORDS}))


# --- the maps that may hold a bpf_wq -------------------------------------------------------

def _value_btf():
    spec = elf.parse(obj(TC % ("", "return 0;")))
    ms = spec.maps["warr"]
    return spec.kernel_btf, ms.key_type, ms.value_type


@pytest.mark.parametrize("kind", [
    T.BPF_MAP_TYPE_ARRAY, T.BPF_MAP_TYPE_HASH, T.BPF_MAP_TYPE_LRU_HASH,
    T.BPF_MAP_TYPE_PERCPU_ARRAY, T.BPF_MAP_TYPE_PERCPU_HASH, T.BPF_MAP_TYPE_LRU_PERCPU_HASH,
], ids=["array", "hash", "lru-hash", "percpu-array", "percpu-hash", "lru-percpu-hash"])
def test_a_map_with_a_wq_is_created_or_refused_as_in_the_kernel(kernel_oracle, kind):
    blob, key_type, value_type = _value_btf()
    size = value_type.byte_size
    ours = created(lambda: Map.create(kind, 4, size, 4, value_type=value_type))
    theirs = created(lambda: kernel_oracle.KernelMap(
        kind, 4, size, 4, btf=(blob, key_type.id, value_type.id)))
    count_comparison()
    assert ours == theirs


# --- work items in an inner map and in an LRU hash with 8-byte keys ---------------------

INNER = MAPS.split("struct wval")[0] + r"""
struct ival { int cnt; int pad; struct bpf_wq w; };
struct inner_map {
    __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
    __type(key, __u32); __type(value, struct ival);
} inner SEC(".maps");
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS); __uint(max_entries, 1);
    __type(key, __u32); __array(values, struct inner_map);
} outer SEC(".maps") = { .values = { [0] = &inner } };
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH); __uint(max_entries, 4);
    __type(key, __u64); __type(value, struct ival);
} lru SEC(".maps");
char LICENSE[] SEC("license") = "GPL";
static int bump(void *map, int *key, void *value)
{ struct ival *v = value; v->cnt += 10; return 0; }
static int lbump(void *map, int *key, void *value)
{ struct ival *v = value; v->cnt += *key; return 0; }
SEC("tc") int prog(struct __sk_buff *skb)
{
    __u32 k = 0; __u64 lk = 7; struct ival init = {};
    void *m = bpf_map_lookup_elem(&outer, &k);
    if (!m) return 1;
    struct ival *v = bpf_map_lookup_elem(m, &k);
    if (!v) return 2;
    long a = bpf_wq_init(&v->w, m, 0);
    long b = bpf_wq_set_callback(&v->w, bump, 0);
    long c = bpf_wq_start(&v->w, 0);
    v->cnt += 1;
    bpf_map_update_elem(&lru, &lk, &init, 0);
    struct ival *l = bpf_map_lookup_elem(&lru, &lk);
    if (!l) return 3;
    bpf_wq_init(&l->w, &lru, 0); bpf_wq_set_callback(&l->w, lbump, 0); bpf_wq_start(&l->w, 0);
    return (a & 0xff) << 16 | (b & 0xff) << 8 | (c & 0xff);
}
"""



def test_work_in_an_inner_map_and_an_lru_hash_runs_on_their_values_as_in_the_kernel():
    """bpf_wq_init takes the inner map a lookup gave (the same map_uid); an LRU hash
    element's callback gets its key (its first 4 bytes read as an int)."""
    data = obj(INNER)
    lk = struct.pack("<Q", 7)
    done = lambda m: _ran(m["inner"][0])[0] == 11 and _ran(m["lru"][0])[0] == 7  # noqa: E731

    def values(maps):
        return {"inner": [maps["inner"].lookup(u32(0))], "lru": [maps["lru"].lookup(lk)]}
    ours = pyebpf.load(data)
    try:
        with pyebpf.kernel.load_object(data) as kobj:
            theirs = kobj.program("prog").test_run(PACKET).retval
            time.sleep(SETTLE)
            kernel = values(kobj.maps)
            deadline = time.monotonic() + RUN_WAIT
            while not done(kernel) and time.monotonic() < deadline:
                time.sleep(0.01)
                kernel = values(kobj.maps)
        mine = ours.program("prog").run(PACKET).retval
        assert pyebpf.run_timers() == 2
        engine = values(ours.maps)
    finally:
        ours.close()
    count_comparison()
    assert (mine, engine) == (theirs, kernel)
    assert done(kernel)
