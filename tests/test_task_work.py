"""Task work (``bpf_task_work_schedule_signal_impl``, ``bpf_task_work_schedule_resume_impl``,
kernel/bpf/helpers.c) against the kernel: load verdicts with the kernel's messages, the
retval of each run and the map value after it.

BPF_PROG_TEST_RUN runs a tc program in the process that asks, and the kernel runs task
work scheduled for that process when the syscall returns to user space: before the test
reads the map.  The engine runs it when Program.run returns, in the run's current task
(``machine=this_process()``), so a value the callback writes is there after each run in
both.
"""
from __future__ import annotations

import pytest

import pyebpf
from pyebpf import isa

from bpfc import compile_object
from current_task import this_process
from objdiff import assert_refused_alike, verdicts
from recorded_kernel import count_comparison
from test_kfuncs_task import KTHREADD

FRAME = bytes(64)
KEY0 = (0).to_bytes(4, "little")

DECLS = r"""
struct task_struct { int pid; } __attribute__((preserve_access_index));
struct bpf_map;
struct bpf_task_work { __u64 __opaque; } __attribute__((aligned(8)));
struct bpf_wq { __u64 __opaque[2]; } __attribute__((aligned(8)));
typedef int (*bpf_task_work_callback_t)(struct bpf_map *map, void *key, void *value);
extern int bpf_task_work_schedule_signal_impl(struct task_struct *task,
    struct bpf_task_work *tw, void *map__map, bpf_task_work_callback_t callback,
    void *aux__prog) __ksym;
extern int bpf_task_work_schedule_resume_impl(struct task_struct *task,
    struct bpf_task_work *tw, void *map__map, bpf_task_work_callback_t callback,
    void *aux__prog) __ksym;
extern struct task_struct *bpf_task_from_pid(int pid) __ksym;
extern void bpf_task_release(struct task_struct *p) __ksym;
extern int bpf_copy_from_user_str(void *dst, __u32 dst__sz, const void *unsafe_ptr__ign,
                                  __u64 flags) __ksym;
char LICENSE[] SEC("license") = "GPL";
#define CURRENT ((struct task_struct *)bpf_get_current_task_btf())

struct work { long n; struct bpf_task_work tw; long m; };
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 2);
    __type(key, __u32); __type(value, struct work);
} works SEC(".maps");
struct {
    __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 2);
    __type(key, __u32); __type(value, struct work);
} hworks SEC(".maps");
struct wqv { struct bpf_wq wq; };
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
    __type(key, __u32); __type(value, struct wqv);
} wqs SEC(".maps");

/* counts its runs in the value and notes its key */
static int count(struct bpf_map *map, void *key, void *value)
{
    struct work *w = value;
    w->n += 1;
    w->m = *(__u32 *)key + 100;
    return 0;
}

#define LOOKUP(map, k) __u32 key = k; struct work *w = bpf_map_lookup_elem(&map, &key); \
    if (!w) return 1;
"""


def _source(body: str, decls: str = "") -> bytes:
    return compile_object(DECLS + decls + 'SEC("tc") int prog(struct __sk_buff *skb) {\n'
                          + body + "\n}\n")


def refused_alike(body: str, message: str, decls: str = "") -> None:
    assert_refused_alike(*verdicts(_source(body, decls)), message)


def runs(body: str, n: int, decls: str = "", map_name: str = "works", key: bytes = KEY0,
         prog_type=None):
    """[(retval, the map's value at ``key`` after the run)] of ``n`` runs of one loaded
    program, in pyebpf (this process the current task) and in the kernel; they must be
    the same.  Returns the kernel's."""
    data = _source(body, decls)
    obj = pyebpf.load(data, prog_type=prog_type)
    machine = this_process(tasks=(KTHREADD,))
    try:
        prog = obj.program("prog")
        ours = []
        for _ in range(n):
            r = prog.run(FRAME, machine=machine).retval & 0xFFFFFFFF
            ours.append((r, obj.maps[map_name].get(key)))
        with pyebpf.kernel.load_object(data, prog_type=prog_type) as kobj:
            theirs = []
            for _ in range(n):
                r = kobj.program("prog").test_run(FRAME).retval
                theirs.append((r, kobj.maps[map_name].lookup(key)))
    finally:
        obj.close()
    count_comparison()
    assert ours == theirs, f"pyebpf {ours}, kernel {theirs}"
    return theirs


def work(n: int, m: int) -> bytes:
    """A struct work value: its bpf_task_work reads as zeros."""
    return n.to_bytes(8, "little", signed=True) + bytes(8) + m.to_bytes(8, "little",
                                                                        signed=True)


EBUSY = -isa.Errno.EBUSY & 0xFFFFFFFF
EPERM = -isa.Errno.EPERM & 0xFFFFFFFF


# --- load verdicts ------------------------------------------------------------------------

@pytest.mark.parametrize("body, message", [
    ("LOOKUP(works, 0) return bpf_task_work_schedule_signal_impl(CURRENT, (void *)&w->m, "
     "&works, count, 0);", "off 16 doesn't point to 'struct bpf_task_work' that is at 8"),
    ("LOOKUP(works, 0) return bpf_task_work_schedule_signal_impl(CURRENT, &w->tw, &hworks, "
     "count, 0);",
     "bpf_task_work pointer in R2 map_uid=0 doesn't match map pointer in R3 map_uid=0"),
    ("struct work w = {}; return bpf_task_work_schedule_signal_impl(CURRENT, &w.tw, &works, "
     "count, 0);", "arg#1 doesn't point to a map value"),
    ("LOOKUP(works, 0) return bpf_task_work_schedule_resume_impl(CURRENT, &w->tw, &works, "
     "0, 0);", "Possibly NULL pointer passed to trusted arg3"),
    ("LOOKUP(works, skb->len & 1) return bpf_task_work_schedule_signal_impl(CURRENT, "
     "(void *)w + (skb->len & 8), &works, count, 0);",
     "R2 doesn't have constant offset. bpf_task_work has to be at the constant offset"),
    ("__u32 k = 0; struct wqv *v = bpf_map_lookup_elem(&wqs, &k); if (!v) return 1;\n"
     "return bpf_task_work_schedule_signal_impl(CURRENT, (void *)v, &wqs, count, 0);",
     "map 'wqs' has no valid bpf_task_work"),
], ids=["wrong-offset", "other-map", "stack", "null-callback", "variable-offset",
        "map-without-one"])
def test_a_misplaced_task_work_argument_is_refused_as_the_kernel_refuses_it(body, message):
    refused_alike(body, message)


SCHEDULE_WITH = "LOOKUP(works, 0) return bpf_task_work_schedule_signal_impl(CURRENT, &w->tw, " \
                "&works, cb, 0);"


@pytest.mark.parametrize("callback, message", [
    ("return (long)value;",
     "At async callback return the register R0 is not a known value (map_value)"),
    ("return *(__u32 *)value;",
     "At async callback return the register R0 has smin=0 smax=4294967295 should have "
     "been in [-2147483648, 2147483647]"),
    # clang returns an int constant as a 64-bit one: -5 is 0xfffffffb
    ("return -5;", "At async callback return the register R0 has smin=4294967291 "
                   "smax=4294967291 should have been in [-2147483648, 2147483647]"),
    ("return *(__u64 *)key;", "R2 min value is outside of the allowed memory range"),
], ids=["pointer", "u32", "negative-int", "past-the-key"])
def test_a_callback_the_kernel_refuses_is_refused_with_its_message(callback, message):
    decls = ("static int cb(struct bpf_map *map, void *key, void *value) {\n"
             + callback + "\n}\n")
    refused_alike(SCHEDULE_WITH, message, decls)


@pytest.mark.parametrize("callback", [
    "return 1;",
    # the callback runs in the task's context, where it may sleep
    "char b[8]; bpf_copy_from_user_str(b, sizeof(b), 0, 0); return 0;",
], ids=["positive-int", "sleepable-kfunc"])
def test_a_callback_may_return_an_s32_and_sleep(callback):
    decls = ("static int cb(struct bpf_map *map, void *key, void *value) {\n"
             + callback + "\n}\n")
    assert verdicts(_source(SCHEDULE_WITH, decls)) == (None, None)


def test_a_value_holding_task_work_is_refused_in_a_per_cpu_array():
    # map_check_btf: only hash, LRU hash and array values may hold one (EOPNOTSUPP)
    ours, theirs = verdicts(compile_object(DECLS.split("struct work {")[0] + r"""
struct work { long n; struct bpf_task_work tw; };
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); __uint(max_entries, 1);
    __type(key, __u32); __type(value, struct work);
} pworks SEC(".maps");
SEC("tc") int prog(struct __sk_buff *skb) { return 0; }
"""))
    assert "Operation not supported" in theirs, theirs
    assert "cannot hold a bpf_task_work" in ours, ours


# --- runs ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kfunc", ["bpf_task_work_schedule_signal_impl",
                                   "bpf_task_work_schedule_resume_impl"])
def test_the_callback_runs_once_after_each_run_that_schedules_it(kfunc):
    assert runs(f"LOOKUP(works, 0) return {kfunc}(CURRENT, &w->tw, &works, count, 0);",
                3) == [(0, work(1, 100)), (0, work(2, 100)), (0, work(3, 100))]


def test_the_callback_gets_its_elements_key():
    assert runs("LOOKUP(works, 1) return bpf_task_work_schedule_signal_impl(CURRENT, "
                "&w->tw, &works, count, 0);", 2, key=(1).to_bytes(4, "little")) == \
        [(0, work(1, 101)), (0, work(2, 101))]


def test_scheduling_work_that_is_scheduled_is_ebusy():
    assert runs("""LOOKUP(works, 0)
    int a = bpf_task_work_schedule_signal_impl(CURRENT, &w->tw, &works, count, 0);
    int b = bpf_task_work_schedule_resume_impl(CURRENT, &w->tw, &works, count, 0);
    return (a & 0xff) | (b & 0xff) << 8;""", 2) == \
        [((EBUSY & 0xFF) << 8, work(1, 100)), ((EBUSY & 0xFF) << 8, work(2, 100))]


def test_a_callback_scheduling_its_own_work_again_is_ebusy():
    decls = r"""
static int again(struct bpf_map *map, void *key, void *value)
{
    struct work *w = value;
    w->m = bpf_task_work_schedule_signal_impl(CURRENT, &w->tw, map, again, 0);
    w->n += 1;
    return 0;
}
"""
    assert runs("LOOKUP(works, 0) return bpf_task_work_schedule_signal_impl(CURRENT, "
                "&w->tw, &works, again, 0);", 2, decls) == \
        [(0, work(1, -isa.Errno.EBUSY)), (0, work(2, -isa.Errno.EBUSY))]


def test_overwriting_the_element_cancels_its_work():
    # array_map_update_elem frees the old value's fields: bpf_task_work_cancel_and_free
    assert runs("""LOOKUP(works, 0)
    int r = bpf_task_work_schedule_signal_impl(CURRENT, &w->tw, &works, count, 0);
    struct work z = {.n = 40};
    bpf_map_update_elem(&works, &key, &z, 0);
    return r;""", 2) == [(0, work(40, 0)), (0, work(40, 0))]


def test_deleting_the_hash_element_cancels_its_work():
    assert runs("""__u32 key = 0; struct work z = {.n = 7};
    bpf_map_update_elem(&hworks, &key, &z, 0);
    struct work *w = bpf_map_lookup_elem(&hworks, &key);
    if (!w) return 1;
    int r = bpf_task_work_schedule_signal_impl(CURRENT, &w->tw, &hworks, count, 0);
    bpf_map_delete_elem(&hworks, &key);
    bpf_map_update_elem(&hworks, &key, &z, 0);
    return r;""", 2, map_name="hworks") == [(0, work(7, 0)), (0, work(7, 0))]


def test_work_for_a_kernel_thread_is_eperm():
    assert runs("""LOOKUP(works, 0)
    struct task_struct *t = bpf_task_from_pid(2);
    if (!t) return 2;
    int r = bpf_task_work_schedule_signal_impl(t, &w->tw, &works, count, 0);
    bpf_task_release(t);
    return r;""", 2) == [(EPERM, work(0, 0)), (EPERM, work(0, 0))]


def test_the_callback_runs_in_the_scheduling_task():
    # the program notes its task's pid_tgid; the callback compares its own with it
    decls = r"""
static int whose(struct bpf_map *map, void *key, void *value)
{
    struct work *w = value;
    w->n = bpf_get_current_pid_tgid() == w->m;
    w->m = 0;
    return 0;
}
"""
    assert runs("LOOKUP(works, 0) w->m = bpf_get_current_pid_tgid();\n"
                "return bpf_task_work_schedule_signal_impl(CURRENT, &w->tw, &works, whose, 0);",
                1, decls) == [(0, work(1, 0))]


def test_a_socket_filter_schedules_task_work_too():
    assert runs("LOOKUP(works, 0) return bpf_task_work_schedule_signal_impl(CURRENT, "
                "&w->tw, &works, count, 0);", 2, prog_type="socket_filter") == \
        [(0, work(1, 100)), (0, work(2, 100))]


# --- what only the model shows -----------------------------------------------------------

def test_work_left_by_a_batch_of_runs_runs_at_run_timers():
    obj = pyebpf.load(_source("LOOKUP(works, 0) return bpf_task_work_schedule_signal_impl("
                              "CURRENT, &w->tw, &works, count, 0);"))
    try:
        batch = obj.program("prog").run_many([FRAME, FRAME])
        assert [r & 0xFFFFFFFF for r in batch.retval] == [0, EBUSY]
        assert obj.maps["works"][KEY0] == work(0, 0)
        assert pyebpf.run_timers() == 1
        assert obj.maps["works"][KEY0] == work(1, 100)
    finally:
        obj.close()


def test_closing_the_map_cancels_scheduled_work():
    obj = pyebpf.load(_source("LOOKUP(works, 0) return bpf_task_work_schedule_signal_impl("
                              "CURRENT, &w->tw, &works, count, 0);"))
    try:
        obj.program("prog").run_many([FRAME])
        obj.maps["works"].close()
        assert pyebpf.run_timers() == 0
    finally:
        obj.close()
