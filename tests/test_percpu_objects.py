"""Per-CPU objects a program allocates (``bpf_percpu_obj_new``, ``bpf_percpu_obj_drop``,
libbpf's bpf_experimental.h macros), the ``__percpu_kptr`` fields of map values that
hold them (``bpf_kptr_xchg``, loads of the field) and ``bpf_per_cpu_ptr`` /
``bpf_this_cpu_ptr`` on them, against the kernel: what SCHED_CLS programs compute
(BPF_PROG_TEST_RUN's retvals, run after run, on CPU 0) and the verifier's refusals of
the shapes the kernel refuses (the selftests' percpu_alloc_fail.c among them), in its
words."""
from __future__ import annotations

import os

import pytest

import pyebpf
from pyebpf.host import possible_cpus, simulated_cpus

from bpfc import compile_object
from objdiff import program_retvals, verdicts

PRELUDE = r"""
#include <bpf/bpf_core_read.h>
extern void *bpf_obj_new_impl(__u64 local_type_id, void *meta) __ksym;
#define bpf_obj_new(type) ((type *)bpf_obj_new_impl(bpf_core_type_id_local(type), NULL))
extern void bpf_obj_drop_impl(void *kptr, void *meta) __ksym;
#define bpf_obj_drop(kptr) bpf_obj_drop_impl(kptr, NULL)
extern void *bpf_percpu_obj_new_impl(__u64 local_type_id, void *meta) __ksym;
#define bpf_percpu_obj_new(type) \
    ((type __percpu_kptr *)bpf_percpu_obj_new_impl(bpf_core_type_id_local(type), NULL))
extern void bpf_percpu_obj_drop_impl(void *kptr, void *meta) __ksym;
#define bpf_percpu_obj_drop(kptr) bpf_percpu_obj_drop_impl(kptr, NULL)

#define __kptr __attribute__((btf_type_tag("kptr")))
#define __percpu_kptr __attribute__((btf_type_tag("percpu_kptr")))

struct pcval { long a, b; };
struct other { long x; };
struct with_ptr { char *p; };
struct with_lock { struct bpf_spin_lock l; };
struct big { char b[600]; };
struct nested { struct pcval v[2]; int n; };
union d0 { long a; int b[2]; };
struct d1 { union d0 u; char c[3]; };
struct d2 { struct d1 x; int y; };
struct d3 { struct d2 x; long z[2]; };
struct d4 { struct d3 x; };
struct pval { long n; struct pcval __percpu_kptr *pc; };
struct kval { struct pcval __kptr *p; };
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
    __type(key, __u32); __type(value, struct pval);
} parr SEC(".maps");
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
    __type(key, __u32); __type(value, struct kval);
} karr SEC(".maps");
/* clang's BTF has a kptr's struct behind the tag only as a declaration: a map of each
   struct makes the object define it, as a program allocating one does */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
    __type(key, __u32); __type(value, struct pcval);
} pcvals SEC(".maps");
"""
PACKET = bytes(range(64))
VALUE = """
  __u32 k = 0;
  struct pval *v = bpf_map_lookup_elem(&parr, &k);
  if (!v) return 1;
"""


def obj(source: str) -> bytes:
    return compile_object(PRELUDE + source)


def tc(body: str) -> bytes:
    return obj('SEC("tc") int prog(struct __sk_buff *skb) {\n' + body + "\n}")


@pytest.fixture
def on_cpu0():
    """This process kept on CPU 0, where pyebpf runs too: test_run runs the program on
    the caller's CPU, and bpf_this_cpu_ptr finds that CPU's copy."""
    before = os.sched_getaffinity(0)
    if 0 not in before:
        pytest.skip("this process may not run on CPU 0")
    os.sched_setaffinity(0, {0})
    yield
    os.sched_setaffinity(0, before)


# the object stored in the map's __percpu_kptr when the field is empty (the object
# exchanged in stays usable by the per-CPU helpers), its copies of CPUs 0 and 1 set
# (the kernel's may hold an earlier object's bytes), then this CPU's copy counted
COUNT = VALUE + """
  struct pcval __percpu_kptr *p = v->pc;
  if (!p) {
    p = bpf_percpu_obj_new(struct pcval);
    if (!p) return 2;
    struct pcval __percpu_kptr *old = bpf_kptr_xchg(&v->pc, p);
    if (old) { bpf_percpu_obj_drop(old); return 3; }
    struct pcval *z = bpf_per_cpu_ptr(p, 0);
    if (z) { z->a = 0; z->b = 0; }
    z = bpf_per_cpu_ptr(p, 1);
    if (z) { z->a = 0; z->b = 0; }
  }
  struct pcval *c = bpf_this_cpu_ptr(p);
  c->a += 1;
  c->b += skb->len;
"""


# --- what programs compute ------------------------------------------------------------

def test_a_stored_per_cpu_object_counts_this_cpus_runs(on_cpu0):
    ours, theirs = program_retvals(tc(COUNT + """
  struct pcval *c0 = bpf_per_cpu_ptr(p, 0);
  if (!c0) return 4;
  return c0->a * 1000 + c0->b;"""), PACKET, runs=3)
    assert theirs == [1064, 2128, 3192]
    assert ours == theirs


@pytest.mark.skipif(possible_cpus() < 2, reason="one possible CPU")
def test_each_cpu_has_its_own_copy_of_a_per_cpu_object(on_cpu0):
    ours, theirs = program_retvals(tc(COUNT + """
  struct pcval *c1 = bpf_per_cpu_ptr(p, 1);
  if (!c1) return 4;
  return c1->a * 1000 + c1->b + 7;"""), PACKET, runs=2)
    assert theirs == [7, 7]
    assert ours == theirs


def test_bpf_per_cpu_ptr_past_the_possible_cpus_is_null():
    ours, theirs = program_retvals(tc(COUNT + """
  struct pcval *far = bpf_per_cpu_ptr(p, 0x7fffffff);
  return far ? 5 : 6;"""), PACKET)
    assert theirs == [6]
    assert ours == theirs


def test_a_per_cpu_object_exchanged_out_is_dropped_and_the_field_left_empty(on_cpu0):
    ours, theirs = program_retvals(tc(VALUE + """
  struct pcval __percpu_kptr *p = bpf_percpu_obj_new(struct pcval);
  if (!p) return 2;
  struct pcval __percpu_kptr *old = bpf_kptr_xchg(&v->pc, p);
  if (!old) return 3;
  bpf_percpu_obj_drop(old);
  return 4;"""), PACKET, runs=3)
    assert theirs == [3, 4, 4]
    assert ours == theirs


def test_a_new_per_cpu_object_is_zeroed_on_every_cpu():
    # the kernel's is zeroed when its per-CPU allocator makes it, but one reused after
    # an RCU grace period keeps the bytes of the object dropped before (at a time no
    # program sees): pyebpf zeroes each
    prog = pyebpf.load(tc(VALUE + """
  struct pcval __percpu_kptr *p = bpf_percpu_obj_new(struct pcval);
  if (!p) return 2;
  struct pcval __percpu_kptr *old = bpf_kptr_xchg(&v->pc, p);
  if (old) bpf_percpu_obj_drop(old);
  struct pcval *c = bpf_this_cpu_ptr(p);
  struct pcval *c1 = bpf_per_cpu_ptr(p, 1);
  long r = c->a + c->b + (c1 ? c1->a + c1->b : 0);
  c->a = 77;
  c->b = 5;
  if (c1) c1->a = 9;
  return r + 10;""")).program("prog")
    assert [prog.run(PACKET, cpu=cpu).retval for cpu in (0, 1, 0, 0)] == [10] * 4


def test_the_map_shows_a_percpu_kptr_as_zeroes_and_an_update_drops_its_object(on_cpu0):
    def empty(maps):
        value = maps["parr"].lookup(bytes(4))
        assert value == bytes(len(value))       # the lookup zeroes the kptr field
        maps["parr"].update(bytes(4), bytes(len(value)))   # and the update frees it

    ours, theirs = program_retvals(tc(COUNT + "  return c->a;"), PACKET, runs=3,
                                   between=empty)
    assert theirs == [1, 1, 1]                  # each run finds the field empty
    assert ours == theirs


def test_per_cpu_objects_dropped_are_allocated_again():
    # two objects a run, the one exchanged out dropped: the arena is not exhausted
    prog = pyebpf.load(tc(VALUE + """
  struct pcval __percpu_kptr *p = bpf_percpu_obj_new(struct pcval);
  if (!p) return 2;
  struct pcval __percpu_kptr *old = bpf_kptr_xchg(&v->pc, p);
  if (old) bpf_percpu_obj_drop(old);
  struct pcval __percpu_kptr *q = bpf_percpu_obj_new(struct pcval);
  if (!q) return 5;
  bpf_percpu_obj_drop(q);
  return 3;"""))
    assert {prog.program("prog").run(PACKET).retval for _ in range(100_000)} == {3}


# --- what the verifier refuses ---------------------------------------------------------

REFUSED = {
    "a plain store to a percpu kptr": (VALUE + """
  v->pc = (struct pcval __percpu_kptr *)(long)skb->len;
  return 0;""", "store to referenced kptr disallowed"),
    "a per-CPU object of another struct exchanged in": (VALUE + """
  struct other __percpu_kptr *o = bpf_percpu_obj_new(struct other);
  if (!o) return 2;
  struct pcval __percpu_kptr *old = bpf_kptr_xchg(&v->pc, o);
  if (old) bpf_percpu_obj_drop(old);
  return 0;""", "invalid kptr access, R2 type=percpu_ptr_other expected=ptr_pcval"),
    "a per-CPU object exchanged into a kptr field": ("""
  __u32 k = 0;
  struct kval *v = bpf_map_lookup_elem(&karr, &k);
  if (!v) return 1;
  struct pcval __percpu_kptr *p = bpf_percpu_obj_new(struct pcval);
  if (!p) return 2;
  struct pcval *old = bpf_kptr_xchg(&v->p, p);
  if (old) bpf_obj_drop(old);
  return 0;""", "invalid kptr access, R2 type=percpu_ptr_ expected=ptr_pcval"),
    "an object exchanged into a percpu kptr": (VALUE + """
  struct pcval *n = bpf_obj_new(struct pcval);
  if (!n) return 2;
  struct pcval __percpu_kptr *old = bpf_kptr_xchg(&v->pc, n);
  if (old) bpf_percpu_obj_drop(old);
  return 0;""", "invalid kptr access, R2 type=ptr_ expected=ptr_pcval"),
    "a per-CPU object not yet stored given to bpf_this_cpu_ptr": ("""
  struct pcval __percpu_kptr *p = bpf_percpu_obj_new(struct pcval);
  if (!p) return 2;
  struct pcval *c = bpf_this_cpu_ptr(p);
  long r = c->a;
  bpf_percpu_obj_drop(p);
  return r;""", "R1 type=percpu_ptr_ expected=percpu_ptr_, percpu_rcu_ptr_, "
                "percpu_trusted_ptr_"),
    "a loaded percpu kptr given to bpf_this_cpu_ptr before its NULL check": (VALUE + """
  struct pcval *c = bpf_this_cpu_ptr(v->pc);
  return c->a;""", "R1 type=percpu_rcu_ptr_or_null_ expected=percpu_ptr_, percpu_rcu_ptr_, "
                   "percpu_trusted_ptr_"),
    "a per-CPU object read directly": ("""
  struct pcval __percpu_kptr *p = bpf_percpu_obj_new(struct pcval);
  if (!p) return 2;
  long r = *(volatile long *)p;
  bpf_percpu_obj_drop(p);
  return r;""", "is ptr_pcval access percpu memory: off=0"),
    "a loaded percpu kptr read directly": (VALUE + """
  struct pcval __percpu_kptr *p = v->pc;
  if (!p) return 2;
  return *(volatile long *)p;""", "is ptr_pcval access percpu memory: off=0"),
    "a per-CPU object given to bpf_obj_drop": ("""
  struct pcval __percpu_kptr *p = bpf_percpu_obj_new(struct pcval);
  if (!p) return 2;
  bpf_obj_drop(p);
  return 0;""", "arg#0 expected for bpf_percpu_obj_drop_impl()"),
    "an object given to bpf_percpu_obj_drop": ("""
  struct pcval *p = bpf_obj_new(struct pcval);
  if (!p) return 2;
  bpf_percpu_obj_drop(p);
  return 0;""", "arg#0 expected for bpf_obj_drop_impl()"),
    "a per-CPU object of a struct with a pointer": ("""
  struct with_ptr __percpu_kptr *p = bpf_percpu_obj_new(struct with_ptr);
  if (p) bpf_percpu_obj_drop(p);
  return 0;""", "bpf_percpu_obj_new type ID argument must be of a struct of scalars"),
    "a per-CPU object of a struct holding an array of structs": ("""
  struct nested __percpu_kptr *p = bpf_percpu_obj_new(struct nested);
  if (p) bpf_percpu_obj_drop(p);
  return 0;""", "bpf_percpu_obj_new type ID argument must be of a struct of scalars"),
    "a per-CPU object of structs nested four deep": ("""
  struct d4 __percpu_kptr *p = bpf_percpu_obj_new(struct d4);
  if (p) bpf_percpu_obj_drop(p);
  return 0;""", "bpf_percpu_obj_new type ID argument must be of a struct of scalars"),
    "a per-CPU object of a struct with a bpf_spin_lock": ("""
  struct with_lock __percpu_kptr *p = bpf_percpu_obj_new(struct with_lock);
  if (p) bpf_percpu_obj_drop(p);
  return 0;""", "bpf_percpu_obj_new type ID argument must not contain special fields"),
    "a per-CPU object of a struct of 600 bytes": ("""
  struct big __percpu_kptr *p = bpf_percpu_obj_new(struct big);
  if (p) bpf_percpu_obj_drop(p);
  return 0;""", "bpf_percpu_obj_new type size (600) is greater than 512"),
    "a per-CPU object still held at exit": ("""
  struct pcval __percpu_kptr *p = bpf_percpu_obj_new(struct pcval);
  return p ? 1 : 0;""", "BPF_EXIT instruction in main prog would lead to reference leak"),
    "a per-CPU object dropped twice": ("""
  struct pcval __percpu_kptr *p = bpf_percpu_obj_new(struct pcval);
  if (!p) return 2;
  bpf_percpu_obj_drop(p);
  bpf_percpu_obj_drop(p);
  return 0;""", "R1 must be referenced or trusted"),
    "a per-CPU object dropped after it is exchanged in": (VALUE + """
  struct pcval __percpu_kptr *p = bpf_percpu_obj_new(struct pcval);
  if (!p) return 2;
  struct pcval __percpu_kptr *old = bpf_kptr_xchg(&v->pc, p);
  if (old) bpf_percpu_obj_drop(old);
  bpf_percpu_obj_drop(p);
  return 0;""", "R1 must be referenced or trusted"),
    "a loaded percpu kptr exchanged back": (VALUE + """
  struct pcval __percpu_kptr *p = v->pc;
  if (!p) return 2;
  struct pcval __percpu_kptr *old = bpf_kptr_xchg(&v->pc, p);
  if (old) bpf_percpu_obj_drop(old);
  return 0;""", "R2 type=percpu_rcu_ptr_ expected=ptr_, trusted_ptr_, rcu_ptr_"),
}


@pytest.mark.parametrize("body, message", REFUSED.values(), ids=REFUSED.keys())
def test_the_verifier_refuses_as_the_kernel_does(body, message):
    ours, theirs = verdicts(tc(body))
    assert theirs is not None and message in theirs, theirs
    assert ours is not None and theirs in ours, (ours, theirs)


ACCEPTED = {
    "a per-CPU object of structs and unions three deep and arrays of scalars": """
  struct d3 __percpu_kptr *p = bpf_percpu_obj_new(struct d3);
  if (p) bpf_percpu_obj_drop(p);
  return 0;""",
    "a per-CPU copy read without a NULL check": COUNT + """
  struct pcval *c0 = bpf_per_cpu_ptr(p, 0);
  return c0->a;""",
}


@pytest.mark.parametrize("body", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_the_verifier_accepts_as_the_kernel_does(body):
    assert verdicts(tc(body)) == (None, None)


@pytest.mark.parametrize("prog_type", ["socket_filter", "sched_act"])
def test_bpf_percpu_obj_new_is_for_sched_cls_only(prog_type):
    ours, theirs = verdicts(tc("""
  struct pcval __percpu_kptr *p = bpf_percpu_obj_new(struct pcval);
  if (p) bpf_percpu_obj_drop(p);
  return 0;"""), prog_type)
    assert theirs is not None and \
        "calling kernel function bpf_percpu_obj_new_impl is not allowed" in theirs
    assert ours is not None and theirs in ours


def test_a_simulated_machine_gives_each_of_its_cpus_a_copy():
    # tcsim --cpus N: programs made for N CPUs run as any of them
    with simulated_cpus(possible_cpus() + 2):
        obj_ = pyebpf.load(tc(COUNT + """
  struct pcval *last = bpf_per_cpu_ptr(p, skb->cb[0]);
  if (!last) return 99;
  return last->a * 1000 + c->a;"""))
    try:
        prog, cpu = obj_.program("prog"), possible_cpus() + 1
        cb = [cpu, 0, 0, 0, 0]
        assert [prog.run(PACKET, cpu=cpu, cb=cb).retval for _ in range(2)] == [1001, 2002]
        assert prog.run(PACKET, cpu=0, cb=cb).retval == 2001
    finally:
        obj_.close()
