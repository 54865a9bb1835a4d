"""bpf_local_irq_save/restore and the bpf_res_spin_lock kfuncs against the kernel: the
verifier's irq flag stack slots (saved, restored in LIFO order, not to be read or
overwritten and then restored), its held bpf_res_spin_locks (several at once, each
once, given back in reverse order, the result checked), their interplay with
bpf_spin_lock, and at run time the locks taken and the AA deadlock rqspinlock detects
(retvals and map contents after BPF_PROG_TEST_RUN)."""
from __future__ import annotations

import errno
import struct

import pytest

import pyebpf
from pyebpf import Map, elf, isa

from bpfc import compile_object
from mapcheck import created_alike, lookup_key, u32
from objdiff import refused_alike, same_retval, verdicts
from recorded_kernel import count_comparison
from test_spin_lock import _outcome, _runs

T = isa.MapType

DECLS = r"""
struct bpf_res_spin_lock { __u32 val; };
extern void bpf_local_irq_save(unsigned long *flags) __ksym;
extern void bpf_local_irq_restore(unsigned long *flags) __ksym;
extern int bpf_res_spin_lock(struct bpf_res_spin_lock *lock) __ksym;
extern void bpf_res_spin_unlock(struct bpf_res_spin_lock *lock) __ksym;
extern int bpf_res_spin_lock_irqsave(struct bpf_res_spin_lock *lock,
                                     unsigned long *flags) __ksym;
extern void bpf_res_spin_unlock_irqrestore(struct bpf_res_spin_lock *lock,
                                           unsigned long *flags) __ksym;

struct elem { struct bpf_res_spin_lock lock; int cnt; };
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 4);
    __type(key, int); __type(value, struct elem);
} arr SEC(".maps");
struct selem { struct bpf_spin_lock lock; int cnt; };
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
    __type(key, int); __type(value, struct selem);
} sarr SEC(".maps");
char _license[] SEC("license") = "GPL";

#define ELEM(e, key) int k_##e = key; struct elem *e = bpf_map_lookup_elem(&arr, &k_##e); \
    if (!e) return 100;
"""
PROG = DECLS + 'SEC("tc") int prog(struct __sk_buff *skb) { %s }'
EXTRA = DECLS + '%s\nSEC("tc") int prog(struct __sk_buff *skb) { %s }'


def obj(body: str, extra: str = "") -> bytes:
    return compile_object(EXTRA % (extra, body), flags=("-O2", "-mcpu=v3"))


# --- irq flags: saved and restored ---------------------------------------------------

@pytest.mark.parametrize("body", [
    "unsigned long f; bpf_local_irq_save(&f); bpf_local_irq_restore(&f); return 1;",
    "unsigned long f1, f2, f3; bpf_local_irq_save(&f1); bpf_local_irq_save(&f2); "
    "bpf_local_irq_save(&f3); bpf_local_irq_restore(&f3); bpf_local_irq_restore(&f2); "
    "bpf_local_irq_restore(&f1); return 2;",
    "__u32 x = 0; unsigned long f; bpf_local_irq_save(&f); "
    "bpf_skb_load_bytes(skb, 12, &x, 2); bpf_local_irq_restore(&f); return x;",
    "unsigned long f; if (skb->len > 10) { bpf_local_irq_save(&f); "
    "bpf_local_irq_restore(&f); } return 3;",
], ids=["one", "nested three", "a helper inside", "on one branch"])
def test_balanced_irq_saves_load_and_run_as_in_the_kernel(body):
    ours, theirs = _runs(obj(body), 2, "arr")
    assert ours == theirs


def test_a_static_function_saving_the_callers_flag_loads_as_in_the_kernel():
    extra = """
static __attribute__((noinline)) void save(unsigned long *f) { bpf_local_irq_save(f); }
static __attribute__((noinline)) void restore(unsigned long *f) { bpf_local_irq_restore(f); }
"""
    ours, theirs = _runs(obj("unsigned long f1, f2; save(&f1); save(&f2); restore(&f2); "
                             "restore(&f1); return 4;", extra), 1, "arr")
    assert ours == theirs
    assert theirs[0] == [4]


def test_a_global_function_called_with_irqs_disabled_loads_as_in_the_kernel():
    extra = "__attribute__((noinline)) int twice(int x) { return x * 2; }"
    ours, theirs = _runs(obj("unsigned long f; bpf_local_irq_save(&f); int r = twice(3); "
                             "bpf_local_irq_restore(&f); return r;", extra), 1, "arr")
    assert ours == theirs
    assert theirs[0] == [6]


IRQ_REFUSALS = [
    ("unsigned long f; bpf_local_irq_save(&f); return 0;",
     "BPF_EXIT instruction in main prog cannot be used inside bpf_local_irq_save-ed region"),
    ("unsigned long f1, f2; bpf_local_irq_save(&f1); bpf_local_irq_save(&f2); "
     "bpf_local_irq_restore(&f2); return 0;",
     "BPF_EXIT instruction in main prog cannot be used inside bpf_local_irq_save-ed region"),
    ("unsigned long f1, f2; bpf_local_irq_save(&f1); bpf_local_irq_save(&f2); "
     "bpf_local_irq_restore(&f1); bpf_local_irq_restore(&f2); return 0;",
     "cannot restore irq state out of order, expected id=2 acquired at insn_idx="),
    ("unsigned long f; bpf_local_irq_save(&f); bpf_local_irq_save(&f); return 0;",
     "expected uninitialized irq flag as arg#0"),
    ("unsigned long f = 0; bpf_local_irq_restore(&f); return 0;",
     "expected an initialized irq flag as arg#0"),
    ("unsigned long f; bpf_local_irq_save(&f); f = 0xdeadbeef; "
     "bpf_local_irq_restore(&f); return 0;",
     "expected an initialized irq flag as arg#0"),
    ("unsigned long f; bpf_local_irq_save(&f); *(((volatile char *)&f) + 1) = 0xff; "
     "bpf_local_irq_restore(&f); return 0;",
     "expected an initialized irq flag as arg#0"),
    ("unsigned long f; bpf_local_irq_save(&f); "
     "asm volatile(\"*(u64 *)(r10 - 8) = r10\" ::: \"memory\"); "
     "bpf_local_irq_restore(&f); return 0;",
     "expected an initialized irq flag as arg#0"),
    ("unsigned long f; bpf_local_irq_save(&f); bpf_skb_load_bytes(skb, 0, &f, 4); "
     "bpf_local_irq_restore(&f); return 0;",
     "expected an initialized irq flag as arg#0"),
    ("unsigned long f; bpf_local_irq_save(&f); "
     "unsigned long g = *(volatile unsigned long *)&f; bpf_local_irq_restore(&f); "
     "return g;",
     "invalid read from stack off -8+0 size 8"),
    ("ELEM(e, 0) bpf_local_irq_save((unsigned long *)e); return 0;",
     "arg#0 doesn't point to an irq flag on stack"),
    ("unsigned long f; bpf_local_irq_save(&f); "
     "asm volatile(\"r6 = %[c]; r0 = *(u8 *)skb[0]\" :: [c]\"r\"(skb) "
     ": \"r0\", \"r1\", \"r2\", \"r3\", \"r4\", \"r5\", \"r6\"); "
     "bpf_local_irq_restore(&f); return 0;",
     "BPF_LD_[ABS|IND] cannot be used inside bpf_local_irq_save-ed region"),
]


@pytest.mark.parametrize("body, message", IRQ_REFUSALS,
                         ids=["never restored", "one of two never restored",
                              "restored out of order", "saved twice", "restored unsaved",
                              "overwritten", "a byte overwritten", "a pointer spilled over",
                              "a helper writes over it", "read", "not on the stack",
                              "LD_ABS inside"])
def test_an_irq_flag_misuse_is_refused_as_the_kernel_refuses_it(body, message):
    refused_alike(obj(body), message)


# --- bpf_res_spin_lock: taken, given back, the result checked ---------------------------

COUNTER = """ELEM(e, 0)
    if (bpf_res_spin_lock(&e->lock)) return 200;
    int c = ++e->cnt;
    bpf_res_spin_unlock(&e->lock);
    return c;"""


def test_a_counter_under_a_res_lock_counts_as_in_the_kernel():
    ours, theirs = _runs(obj(COUNTER), 3, "arr")
    assert ours == theirs
    assert theirs[0] == [1, 2, 3]
    assert struct.unpack("<Ii", theirs[1][0]) == (0, 3)     # the lock reads as 0


def test_a_counter_under_an_irqsave_res_lock_counts_as_in_the_kernel():
    ours, theirs = _runs(obj("""ELEM(e, 1) unsigned long f;
    if (bpf_res_spin_lock_irqsave(&e->lock, &f)) return 200;
    e->cnt += 7;
    int c = e->cnt;
    bpf_res_spin_unlock_irqrestore(&e->lock, &f);
    return c;"""), 2, "arr", keys=(1,))
    assert ours == theirs
    assert theirs[0] == [7, 14]


def test_two_res_locks_nest_and_unwind_as_in_the_kernel():
    ours, theirs = _runs(obj("""ELEM(a, 0) ELEM(b, 1) unsigned long fa, fb;
    if (bpf_res_spin_lock_irqsave(&a->lock, &fa)) return 200;
    if (bpf_res_spin_lock_irqsave(&b->lock, &fb)) {
        bpf_res_spin_unlock_irqrestore(&a->lock, &fa); return 201; }
    a->cnt += 1; b->cnt += 2;
    bpf_res_spin_unlock_irqrestore(&b->lock, &fb);
    bpf_res_spin_unlock_irqrestore(&a->lock, &fa);
    return a->cnt + b->cnt;"""), 2, "arr", keys=(0, 1))
    assert ours == theirs
    assert theirs[0] == [3, 6]


def test_the_same_value_locked_through_two_lookups_is_an_aa_deadlock_at_run_time():
    # two lookups give two ids: the verifier cannot see the deadlock, rqspinlock's
    # held-locks table can (-EDEADLK), and the first lock is still held
    ours, theirs = _runs(obj("""ELEM(a, 2) ELEM(b, 2)
    if (bpf_res_spin_lock(&a->lock)) return 200;
    int r = bpf_res_spin_lock(&b->lock);
    if (r) { a->cnt = r; bpf_res_spin_unlock(&a->lock); return -r; }
    bpf_res_spin_unlock(&b->lock);
    bpf_res_spin_unlock(&a->lock);
    return 0;"""), 2, "arr", keys=(2,))
    assert ours == theirs
    assert theirs[0] == [35, 35]                                # EDEADLK
    assert struct.unpack("<Ii", theirs[1][0]) == (0, -35)


def test_a_bpf_spin_lock_inside_a_res_lock_region_loads_as_in_the_kernel():
    ours, theirs = _runs(obj("""ELEM(e, 0) int k = 0;
    struct selem *s = bpf_map_lookup_elem(&sarr, &k); if (!s) return 100;
    bpf_spin_lock(&s->lock);
    if (bpf_res_spin_lock(&e->lock)) { bpf_spin_unlock(&s->lock); return 200; }
    s->cnt++; e->cnt++;
    bpf_res_spin_unlock(&e->lock);
    bpf_spin_unlock(&s->lock);
    return s->cnt;"""), 2, "sarr")
    assert ours == theirs
    assert theirs[0] == [1, 2]


LOCK_REFUSALS = [
    ("ELEM(e, 0) bpf_res_spin_lock(&e->lock); bpf_res_spin_unlock(&e->lock); return 0;",
     "bpf_res_spin_unlock without taking a lock"),
    ("ELEM(e, 0) if (bpf_res_spin_lock(&e->lock)) return 2; return 0;",
     "BPF_EXIT instruction in main prog cannot be used inside bpf_spin_lock-ed region"),
    ("ELEM(e, 0) if (bpf_res_spin_lock(&e->lock)) return 2; bpf_res_spin_lock(&e->lock); "
     "return 0;",
     "Acquiring the same lock again, AA deadlock detected"),
    ("ELEM(e, 0) unsigned long f; if (bpf_res_spin_lock_irqsave(&e->lock, &f)) return 2; "
     "bpf_res_spin_unlock(&e->lock); return 0;",
     "bpf_res_spin_unlock of different lock"),
    ("ELEM(e, 0) unsigned long f; bpf_local_irq_save(&f); "
     "if (bpf_res_spin_lock(&e->lock)) { bpf_local_irq_restore(&f); return 2; } "
     "bpf_res_spin_unlock_irqrestore(&e->lock, &f); return 0;",
     "bpf_res_spin_unlock of different lock"),
    ("ELEM(a, 0) ELEM(b, 1) if (bpf_res_spin_lock(&a->lock)) return 2; "
     "if (bpf_res_spin_lock(&b->lock)) { bpf_res_spin_unlock(&a->lock); return 3; } "
     "bpf_res_spin_unlock(&a->lock); bpf_res_spin_unlock(&b->lock); return 0;",
     "bpf_res_spin_unlock cannot be out of order"),
    ("ELEM(e, 0) int k = 0; struct selem *s = bpf_map_lookup_elem(&sarr, &k); "
     "if (!s) return 1; bpf_spin_lock(&s->lock); "
     "if (bpf_res_spin_lock(&e->lock)) { bpf_spin_unlock(&s->lock); return 2; } "
     "bpf_spin_unlock(&s->lock); bpf_res_spin_unlock(&e->lock); return 0;",
     "bpf_spin_unlock cannot be out of order"),
    ("ELEM(e, 0) int k = 0; struct selem *s = bpf_map_lookup_elem(&sarr, &k); "
     "if (!s) return 1; if (bpf_res_spin_lock(&e->lock)) return 2; "
     "bpf_spin_lock(&s->lock); bpf_spin_unlock(&s->lock); bpf_res_spin_unlock(&e->lock); "
     "return 0;",
     "function calls are not allowed while holding a lock"),
    ("ELEM(e, 0) if (bpf_res_spin_lock(&e->lock)) return 2; unsigned long f; "
     "bpf_local_irq_save(&f); bpf_local_irq_restore(&f); bpf_res_spin_unlock(&e->lock); "
     "return 0;",
     "function calls are not allowed while holding a lock"),
    ("ELEM(e, 0) if (bpf_res_spin_lock(&e->lock)) return 2; __u32 x = 0; "
     "bpf_skb_load_bytes(skb, 0, &x, 4); bpf_res_spin_unlock(&e->lock); return x;",
     "function calls are not allowed while holding a lock"),
    ("ELEM(e, 0) bpf_res_spin_lock((void *)&e->cnt); return 0;",
     "off 4 doesn't point to 'struct bpf_res_spin_lock' that is at 0"),
    ("struct bpf_res_spin_lock l = {}; bpf_res_spin_lock(&l); return 0;",
     "arg#0 doesn't point to map value or allocated object"),
    ("int k = 0; struct selem *s = bpf_map_lookup_elem(&sarr, &k); if (!s) return 1; "
     "bpf_res_spin_lock((void *)&s->lock); return 0;",
     "map 'sarr' has no valid bpf_res_spin_lock"),
    ("ELEM(e, 0) e->lock.val = 3; return 0;",
     "bpf_res_spin_lock cannot be accessed directly by load/store"),
]


@pytest.mark.parametrize("body, message", LOCK_REFUSALS,
                         ids=["unlocked without the result checked", "exit holding it",
                              "taken twice", "irqsave lock, plain unlock",
                              "native flag, lock restore", "unlocked out of order",
                              "bpf_spin_unlock out of order",
                              "bpf_spin_lock inside a res lock", "irq save inside a lock",
                              "a helper inside", "not at the lock", "a lock on the stack",
                              "a map with a bpf_spin_lock", "the lock word stored to"])
def test_a_res_lock_misuse_is_refused_as_the_kernel_refuses_it(body, message):
    refused_alike(obj(body), message)


def test_a_socket_filter_may_not_use_a_map_with_a_res_lock_as_in_the_kernel():
    source = DECLS + 'SEC("socket") int prog(struct __sk_buff *skb) { ' + COUNTER + ' }'
    refused_alike(compile_object(source, flags=("-O2", "-mcpu=v3")),
                  "socket filter progs cannot use bpf_spin_lock yet")


def test_many_res_locks_held_at_once_load_as_in_the_kernel():
    # no cap in the verifier: each lock's failure path gives back the ones before it
    n = 4
    body = "".join(f"ELEM(e{i}, {i}) " for i in range(n))
    for i in range(n):
        undo = "".join(f"bpf_res_spin_unlock(&e{j}->lock); " for j in reversed(range(i)))
        body += f"if (bpf_res_spin_lock(&e{i}->lock)) {{ {undo}return {10 + i}; }} "
    body += "".join(f"e{i}->cnt += {i + 1}; " for i in range(n))
    body += "".join(f"bpf_res_spin_unlock(&e{j}->lock); " for j in reversed(range(n)))
    body += "return e3->cnt;"
    ours, theirs = _runs(obj(body), 2, "arr", keys=range(n))
    assert ours == theirs
    assert theirs[0] == [4, 8]


def test_an_unchecked_result_of_a_lock_that_is_not_used_loads_as_in_the_kernel():
    # the failure path took nothing: code that only returns needs no unlock
    ours, theirs = verdicts(obj("ELEM(e, 0) int r = bpf_res_spin_lock(&e->lock); "
                                "if (r == -35) return 7; if (r) return 3; "
                                "bpf_res_spin_unlock(&e->lock); return 0;"))
    assert theirs is None and ours is None, (ours, theirs)


def test_a_flag_saved_natively_is_not_restored_by_a_lock_kfunc_as_in_the_kernel():
    refused_alike(obj("""ELEM(e, 0) unsigned long native, f;
    bpf_local_irq_save(&native);
    if (bpf_res_spin_lock_irqsave(&e->lock, &f)) { bpf_local_irq_restore(&native);
        return 2; }
    bpf_res_spin_unlock_irqrestore(&e->lock, &native);
    return 0;"""), "irq flag acquired by native kfuncs cannot be restored with lock kfuncs")


def test_a_tail_call_with_irqs_disabled_is_refused_as_the_kernel_refuses_it():
    extra = """struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY); __uint(max_entries, 1);
    __type(key, __u32); __type(value, __u32);
} jmp SEC(".maps");"""
    refused_alike(obj("unsigned long f; bpf_local_irq_save(&f); bpf_tail_call(skb, &jmp, 0); "
                      "bpf_local_irq_restore(&f); return 0;", extra),
                  "tail_call cannot be used inside bpf_local_irq_save-ed region")


def test_a_res_lock_in_global_data_guards_a_counter_as_in_the_kernel():
    # the kernel's selftests keep theirs in private(X) sections: a DATASEC's variable
    extra = """struct bpf_res_spin_lock glock SEC(".data.A");
int gcnt SEC(".data.A");"""
    ours, theirs = _runs(obj("if (bpf_res_spin_lock(&glock)) return 200; int c = ++gcnt; "
                             "bpf_res_spin_unlock(&glock); return c;", extra), 3, ".data.A")
    assert ours == theirs
    assert theirs[0] == [1, 2, 3]
    assert struct.unpack("<Ii", theirs[1][0]) == (0, 3)


def test_a_socket_filter_saves_and_restores_irqs_as_in_the_kernel():
    source = DECLS.split("struct elem")[0] + """char _license[] SEC("license") = "GPL";
SEC("socket") int prog(struct __sk_buff *skb)
{ unsigned long f; bpf_local_irq_save(&f); bpf_local_irq_restore(&f); return skb->len; }"""
    data = compile_object(source, flags=("-O2", "-mcpu=v3"))
    # a socket filter's test run sees the packet past its Ethernet header
    assert same_retval(data, bytes(range(64))) == 64 - 14


# --- maps whose value holds a bpf_res_spin_lock ------------------------------------------

def _value_btf(value: str):
    spec = elf.parse(obj("return 0;", value))
    ms = spec.maps["m"]
    return spec.kernel_btf, ms.key_type, ms.value_type


BOTH = """struct both { struct bpf_spin_lock a; struct bpf_res_spin_lock b; };
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
         __type(key, int); __type(value, struct both); } m SEC(".maps");"""
RES = """struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
         __type(key, int); __type(value, struct elem); } m SEC(".maps");"""


@pytest.mark.parametrize("value, kind", [
    (RES, T.BPF_MAP_TYPE_ARRAY), (RES, T.BPF_MAP_TYPE_HASH),
    (RES, T.BPF_MAP_TYPE_PERCPU_ARRAY), (RES, T.BPF_MAP_TYPE_LRU_HASH),
    (BOTH, T.BPF_MAP_TYPE_ARRAY),
], ids=["array", "hash", "percpu-array", "lru-hash", "beside a bpf_spin_lock"])
def test_a_map_with_a_res_lock_is_created_or_refused_as_in_the_kernel(kernel_oracle, value,
                                                                       kind):
    ours, theirs = created_alike(kernel_oracle, kind, _value_btf(value))
    assert ours == theirs


def test_the_res_lock_is_found_in_the_value_btf():
    _, _, value_type = _value_btf(RES)
    m = Map.create(T.BPF_MAP_TYPE_ARRAY, 4, 8, 1, value_type=value_type)
    assert (m.res_spin_lock_off, m.spin_lock_off) == (0, None)


def test_a_fault_while_holding_a_res_lock_gives_it_back():
    """A program loaded without the verifier that faults holding the lock: the next run
    takes it again (left held, it would wait out the timeout and return -ETIMEDOUT); the
    kernel cannot show this."""
    _, _, value_type = _value_btf(RES)
    m = Map.create(T.BPF_MAP_TYPE_ARRAY, 4, 8, 1, value_type=value_type)
    prog = pyebpf.Program.from_asm(lookup_key(m.fd) + f"""
        if r0 == 0 goto out
        r1 = r0
        call kfunc {isa.KFUNC_IDS["bpf_res_spin_lock"]}
        if r0 != 0 goto out
        r2 = 0
        r0 = *(u64 *)(r2 + 0)
    out:
        exit""", prog_type="sched_cls", verify=False)
    for _ in range(2):
        with pytest.raises(pyebpf.errors.ExecutionError):
            prog.run(bytes(64))


def test_bpf_f_lock_on_a_value_with_only_a_res_lock_is_einval_as_in_the_kernel(
        kernel_oracle):
    # BPF_F_LOCK copies under a bpf_spin_lock (map_lookup_elem, map_update_elem)
    blob, key_type, value_type = _value_btf(RES)
    with kernel_oracle.KernelMap(T.BPF_MAP_TYPE_ARRAY, 4, 8, 1,
                                 btf=(blob, key_type.id, value_type.id)) as theirs:
        want = [_outcome(theirs.lookup, u32(0), isa.BPF_F_LOCK),
                _outcome(theirs.update, u32(0), bytes(8), isa.BPF_F_LOCK)]
    m = Map.create(T.BPF_MAP_TYPE_ARRAY, 4, 8, 1, value_type=value_type)
    count_comparison()
    assert [_outcome(m.lookup, u32(0), isa.BPF_F_LOCK),
            _outcome(m.update, u32(0), bytes(8), isa.BPF_F_LOCK)] == want == [errno.EINVAL] * 2


def test_an_irq_save_in_each_round_of_a_loop_runs_as_in_the_kernel():
    # the loop's states are compared with their saved irq flags (refsafe, stacksafe)
    ours, theirs = _runs(obj("""unsigned long f; int n = 0;
    for (int i = 0; i < 6 && i < skb->len; i++) {
        bpf_local_irq_save(&f);
        n += i;
        bpf_local_irq_restore(&f);
    }
    return n;"""), 1, "arr")
    assert ours == theirs
    assert theirs[0] == [15]


def test_a_sleepable_kfunc_is_refused_before_the_irq_region_is_looked_at_as_in_the_kernel():
    # no socket filter or tc program may sleep: check_kfunc_call refuses the call
    # before "kernel func ... is sleepable within IRQ-disabled region" could apply
    extra = """struct bpf_key;
extern struct bpf_key *bpf_lookup_user_key(__s32 serial, __u64 flags) __ksym;
extern void bpf_key_put(struct bpf_key *k) __ksym;"""
    refused_alike(obj("unsigned long f; bpf_local_irq_save(&f); "
                      "struct bpf_key *k = bpf_lookup_user_key(1, 0); if (k) bpf_key_put(k); "
                      "bpf_local_irq_restore(&f); return 0;", extra),
                  "program must be sleepable to call sleepable kfunc bpf_lookup_user_key")


THROW = "extern void bpf_throw(__u64 cookie) __ksym;"


@pytest.mark.parametrize("body, extra", [
    ("unsigned long f; bpf_local_irq_save(&f); if (skb->len > 5) bpf_throw(3); "
     "bpf_local_irq_restore(&f); return 0;", THROW),
    ("unsigned long f; bpf_local_irq_save(&f); int r = sub(skb); "
     "bpf_local_irq_restore(&f); return r;",
     THROW + "\nstatic __attribute__((noinline)) int sub(struct __sk_buff *skb) "
             "{ if (skb->len > 5) bpf_throw(3); return skb->len; }"),
], ids=["in the main program", "in a static function"])
def test_a_throw_with_irqs_disabled_is_refused_as_the_kernel_refuses_it(body, extra):
    refused_alike(obj(body, extra), "bpf_throw cannot be used inside bpf_local_irq_save-ed "
                                    "region")


# --- paths that join: the saved flags and held locks are part of each state -------------

def test_a_flag_saved_on_one_branch_and_restored_on_an_unrelated_one_is_refused():
    # the second test reads skb->len again: the verifier cannot tie it to the first
    refused_alike(obj("unsigned long f; int l = skb->len; if (l > 10) bpf_local_irq_save(&f); "
                      "asm volatile(\"\" ::: \"memory\"); "
                      "if (skb->len > 10) bpf_local_irq_restore(&f); return 0;"),
                  "BPF_EXIT instruction in main prog cannot be used inside "
                  "bpf_local_irq_save-ed region")


@pytest.mark.parametrize("body", [
    "unsigned long f; int l = skb->len; if (l > 10) bpf_local_irq_save(&f); "
    "__u32 x = skb->mark; if (l > 10) bpf_local_irq_restore(&f); return x + 1;",
    "ELEM(e, 0) int l = skb->len; "
    "if (l > 10) { if (bpf_res_spin_lock(&e->lock)) return 5; } "
    "__u32 x = skb->mark; if (l > 10) bpf_res_spin_unlock(&e->lock); return x + 2;",
], ids=["irq flag", "res lock"])
def test_a_region_opened_and_closed_under_one_condition_runs_as_in_the_kernel(body):
    ours, theirs = _runs(obj(body), 1, "arr")
    assert ours == theirs
