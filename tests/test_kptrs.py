"""Objects a program allocates (``bpf_obj_new``, ``bpf_obj_drop``,
``bpf_refcount_acquire``, libbpf's bpf_experimental.h macros) and the ``__kptr`` fields
of map values that hold them (``bpf_kptr_xchg``, loads of the field) against the
kernel: what SCHED_CLS programs compute with them (BPF_PROG_TEST_RUN's retvals, run
after run), and the verifier's refusals of the shapes the kernel refuses, in its
words."""
from __future__ import annotations

import errno
import os

import pytest

import pyebpf
from pyebpf import elf

from bpfc import compile_object
from objdiff import program_retvals, same_retval, verdicts
from recorded_kernel import count_comparison

# bpf_experimental.h's declarations (the installed libbpf has no such header) and the
# uapi struct bpf_refcount the installed linux/bpf.h predates
PRELUDE = r"""
#include <bpf/bpf_core_read.h>
extern void *bpf_obj_new_impl(__u64 local_type_id, void *meta) __ksym;
#define bpf_obj_new(type) ((type *)bpf_obj_new_impl(bpf_core_type_id_local(type), NULL))
extern void bpf_obj_drop_impl(void *kptr, void *meta) __ksym;
#define bpf_obj_drop(kptr) bpf_obj_drop_impl(kptr, NULL)
extern void *bpf_refcount_acquire_impl(void *kptr, void *meta) __ksym;
#define bpf_refcount_acquire(kptr) bpf_refcount_acquire_impl(kptr, NULL)
struct bpf_refcount { __u32 __opaque[1]; } __attribute__((aligned(4)));

#define __kptr __attribute__((btf_type_tag("kptr")))
#define __kptr_untrusted __attribute__((btf_type_tag("kptr_untrusted")))

struct item { long a; int b; char c[4]; };
struct counted { long v; struct bpf_refcount rc; };
struct locked { struct bpf_spin_lock l; int v; };
struct other { long x; };
struct val { int n; struct item __kptr *p; };
struct uval { struct item __kptr_untrusted *u; };
struct cval { struct counted __kptr *c; };
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
    __type(key, __u32); __type(value, struct val);
} arr SEC(".maps");
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
    __type(key, __u32); __type(value, struct uval);
} uarr SEC(".maps");
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
    __type(key, __u32); __type(value, struct cval);
} carr SEC(".maps");
/* clang's BTF has a kptr's struct behind the tag only as a declaration: a map of each
   struct makes the object define it, as a program allocating one does */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
    __type(key, __u32); __type(value, struct item);
} items SEC(".maps");
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
    __type(key, __u32); __type(value, struct counted);
} counteds SEC(".maps");
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
    __type(key, __u32); __type(value, struct locked);
} locks SEC(".maps");
"""
PACKET = bytes(range(64))


def obj(source: str) -> bytes:
    return compile_object(PRELUDE + source)


def tc(body: str) -> bytes:
    return obj('SEC("tc") int prog(struct __sk_buff *skb) {\n' + body + "\n}")


# --- what programs compute ------------------------------------------------------------

def test_an_object_is_allocated_filled_read_and_dropped():
    assert same_retval(tc("""
  struct item *n = bpf_obj_new(struct item);
  if (!n) return 1;
  n->a = 5; n->b = 7;
  int r = n->a + n->b;
  bpf_obj_drop(n);
  return r;"""), PACKET) == 12


def test_a_pointer_member_of_an_object_reads_as_a_number():
    # the member is written first: an object the kernel reuses after a drop keeps the
    # old object's bytes (bpf_obj_new zeroes only special fields)
    assert same_retval(tc("""
  struct holder { struct item *next; long v; };
  struct holder *n = bpf_obj_new(struct holder);
  if (!n) return 1;
  n->next = 0;
  n->v = 9;
  long q = (long)n->next;
  long r = n->v;
  bpf_obj_drop(n);
  return r + (q ? 100 : 0);"""), PACKET) == 9


def test_a_refcounted_object_lives_until_its_last_reference_is_dropped():
    assert same_retval(tc("""
  struct counted *n = bpf_obj_new(struct counted);
  if (!n) return 1;
  n->v = 40;
  struct counted *m = bpf_refcount_acquire(n);
  bpf_obj_drop(n);
  int r = m->v + 2;
  bpf_obj_drop(m);
  return r;"""), PACKET) == 42


def test_objects_dropped_in_one_run_are_allocated_again_in_the_next():
    data = tc("""
  struct item *a = bpf_obj_new(struct item);
  if (!a) return 1;
  struct item *b = bpf_obj_new(struct item);
  if (!b) { bpf_obj_drop(a); return 2; }
  a->a = 3; b->a = 4;
  long r = a->a * b->a;
  bpf_obj_drop(b);
  bpf_obj_drop(a);
  return r;""")
    prog = pyebpf.load(data).program("prog")
    assert [prog.run(PACKET).retval for _ in range(1000)] == [12] * 1000
    assert same_retval(data, PACKET) == 12


def test_bpf_obj_new_takes_the_type_id_of_the_programs_own_btf():
    spec = elf.parse(tc("""
  struct counted *n = bpf_obj_new(struct counted);
  if (n) bpf_obj_drop(n);
  return 0;"""))
    (counted,) = spec.btf.by_name("counted")
    code = spec.programs["prog"].instructions({})
    assert int.from_bytes(code[4:8], "little") == counted.id     # r1 = the local id


# --- what the verifier refuses ---------------------------------------------------------

REFUSED = {
    "an object still held at exit": ("""
  struct item *n = bpf_obj_new(struct item);
  if (!n) return 1;
  n->a = 5;
  return 0;""", "BPF_EXIT instruction in main prog would lead to reference leak"),
    "an object used before its NULL check": ("""
  struct item *n = bpf_obj_new(struct item);
  n->a = 5;
  bpf_obj_drop(n);
  return 0;""", "R0 invalid mem access 'ptr_or_null_'"),
    "an object read after it is dropped": ("""
  struct item *n = bpf_obj_new(struct item);
  if (!n) return 1;
  n->a = 5;
  bpf_obj_drop(n);
  return n->a;""", "R6 invalid mem access 'scalar'"),
    "an object dropped twice": ("""
  struct item *n = bpf_obj_new(struct item);
  if (!n) return 1;
  bpf_obj_drop(n);
  bpf_obj_drop(n);
  return 0;""", "R1 must be referenced or trusted"),
    "a possibly NULL object dropped": ("""
  struct item *n = bpf_obj_new(struct item);
  bpf_obj_drop(n);
  return 0;""", "Possibly NULL pointer passed to trusted arg0"),
    "a stack buffer dropped": ("""
  struct item x = {};
  bpf_obj_drop(&x);
  return 0;""", "R1 must be referenced or trusted"),
    "a pointer into an object dropped": ("""
  struct item *n = bpf_obj_new(struct item);
  if (!n) return 1;
  bpf_obj_drop(&n->b);
  return 0;""", "R1 must have zero offset when passed to release func or trusted arg to kfunc"),
    "an object of a type that is not a struct": ("""
  long *n = bpf_obj_new(long);
  if (!n) return 1;
  bpf_obj_drop(n);
  return 0;""", "bpf_obj_new/bpf_percpu_obj_new type ID argument must be of a struct"),
    "a read past the end of the struct": ("""
  struct item *n = bpf_obj_new(struct item);
  if (!n) return 1;
  long v = *(long *)((char *)n + 12);
  bpf_obj_drop(n);
  return v;""", "access beyond struct item at off 12 size 8"),
    "a write at a variable offset": ("""
  struct item *n = bpf_obj_new(struct item);
  if (!n) return 1;
  unsigned int i = skb->len & 3;
  n->c[i] = 1;
  bpf_obj_drop(n);
  return 0;""", "R2 is ptr_item invalid variable offset: off=12, var_off=(0x0; 0x3)"),
    "a read of the bpf_refcount field": ("""
  struct counted *n = bpf_obj_new(struct counted);
  if (!n) return 1;
  int r = *(volatile int *)&n->rc;
  bpf_obj_drop(n);
  return r;""", "direct access to bpf_refcount is disallowed"),
    "a write of the bpf_spin_lock field": ("""
  struct locked *n = bpf_obj_new(struct locked);
  if (!n) return 1;
  n->v = 3;
  *(volatile int *)&n->l = 1;
  bpf_obj_drop(n);
  return 0;""", "direct access to bpf_spin_lock is disallowed"),
    "bpf_refcount_acquire of a struct without special fields": ("""
  struct item *n = bpf_obj_new(struct item);
  if (!n) return 1;
  struct item *m = bpf_refcount_acquire(n);
  bpf_obj_drop(n);
  if (m) bpf_obj_drop(m);
  return 0;""", "verifier bug: Couldn't find btf_record"),
    "bpf_refcount_acquire of a struct without a bpf_refcount": ("""
  struct locked *n = bpf_obj_new(struct locked);
  if (!n) return 1;
  struct locked *m = bpf_refcount_acquire(n);
  bpf_obj_drop(n);
  if (m) bpf_obj_drop(m);
  return 0;""", "arg#0 doesn't point to a type with bpf_refcount field"),
    "bpf_refcount_acquire of a possibly NULL object": ("""
  struct counted *n = bpf_obj_new(struct counted);
  struct counted *m = bpf_refcount_acquire(n);
  if (m) bpf_obj_drop(m);
  if (n) bpf_obj_drop(n);
  return 0;""", "Possibly NULL pointer passed to trusted arg0"),
}


@pytest.mark.parametrize("body, message", REFUSED.values(), ids=REFUSED.keys())
def test_the_verifier_refuses_as_the_kernel_does(body, message):
    ours, theirs = verdicts(tc(body))
    assert theirs is not None and message in theirs
    assert ours is not None and theirs in ours


def test_the_leak_names_the_objects_reference_and_allocating_instruction():
    with pytest.raises(pyebpf.errors.ElfError, match=r"Unreleased reference id=2 "
                                                     r"alloc_insn=3"):
        pyebpf.load(tc(REFUSED["an object still held at exit"][0]))


@pytest.mark.parametrize("prog_type", ["socket_filter", "sched_act"])
def test_bpf_obj_new_is_for_sched_cls_only(prog_type):
    ours, theirs = verdicts(tc("""
  struct item *n = bpf_obj_new(struct item);
  if (n) bpf_obj_drop(n);
  return 0;"""), prog_type)
    assert theirs is not None and "calling kernel function bpf_obj_new_impl is not allowed" \
        in theirs
    assert ours is not None and theirs in ours


# --- kptr fields of map values ---------------------------------------------------------

VALUE = """
  __u32 k = 0;
  struct val *v = bpf_map_lookup_elem(&arr, &k);
  if (!v) return 1;
"""
STASH = tc(VALUE + """
  struct item *n = bpf_obj_new(struct item);
  if (!n) return 2;
  n->a = skb->len;
  struct item *old = bpf_kptr_xchg(&v->p, n);
  if (!old) return 3;
  int r = old->a + 10;
  bpf_obj_drop(old);
  return r;""")


def _runs(data: bytes, n: int, packet: bytes = PACKET) -> tuple[list, list]:
    """The retvals of ``n`` runs of the object's program in pyebpf and in the kernel."""
    obj_ = pyebpf.load(data)
    try:
        with pyebpf.kernel.load_object(data) as kobj:
            ours = [obj_.program("prog").run(packet).retval for _ in range(n)]
            theirs = [kobj.program("prog").test_run(packet).retval for _ in range(n)]
    finally:
        obj_.close()
    count_comparison()
    return ours, theirs


def test_bpf_kptr_xchg_stores_an_object_in_a_map_and_gives_back_the_previous_one():
    ours, theirs = _runs(STASH, 3)
    assert theirs == [3, 74, 74]        # empty, then the object the previous run stored
    assert ours == theirs


def test_a_loaded_kptr_is_read_and_written_through_until_it_is_exchanged():
    ours, theirs = _runs(tc(VALUE + """
  struct item *p = v->p;
  if (!p) {
    struct item *n = bpf_obj_new(struct item);
    if (!n) return 2;
    n->b = 100;
    n = bpf_kptr_xchg(&v->p, n);
    if (n) bpf_obj_drop(n);
    return 3;
  }
  p->b += 1;
  return p->b;"""), 4)
    assert theirs == [3, 101, 102, 103]
    assert ours == theirs


def test_a_refcounted_kptr_loaded_from_a_map_can_be_acquired():
    ours, theirs = _runs(tc("""
  __u32 k = 0;
  struct cval *v = bpf_map_lookup_elem(&carr, &k);
  if (!v) return 1;
  struct counted *p = v->c;
  if (!p) {
    struct counted *n = bpf_obj_new(struct counted);
    if (!n) return 2;
    n->v = 21;
    n = bpf_kptr_xchg(&v->c, n);
    if (n) bpf_obj_drop(n);
    return 3;
  }
  struct counted *m = bpf_refcount_acquire(p);
  if (!m) return 4;
  long r = m->v * 2;
  bpf_obj_drop(m);
  return r;"""), 3)
    assert theirs == [3, 42, 42]
    assert ours == theirs


def test_an_untrusted_kptr_takes_plain_stores_of_null():
    ours, theirs = _runs(tc("""
  __u32 k = 0;
  struct uval *v = bpf_map_lookup_elem(&uarr, &k);
  if (!v) return 1;
  v->u = 0;
  return v->u ? 5 : 6;"""), 2)
    assert theirs == [6, 6]
    assert ours == theirs


def test_the_map_shows_a_kptr_field_as_zeroes_and_an_update_drops_its_object():
    obj_ = pyebpf.load(STASH)
    try:
        with pyebpf.kernel.load_object(STASH) as kobj:
            for prog, m in ((obj_.program("prog"), obj_.maps["arr"]),
                            (kobj.program("prog"), kobj.maps["arr"])):
                run = getattr(prog, "test_run", None) or prog.run
                assert run(PACKET).retval == 3
                value = m.lookup(bytes(4))
                assert value == bytes(len(value))   # the lookup zeroes special fields
                m.update(bytes(4), bytes(len(value)))   # array_map_update_elem frees them
                assert run(PACKET).retval == 3      # so the program finds the field empty
    finally:
        obj_.close()
    count_comparison()


def test_objects_dropped_with_their_map_elements_are_allocated_again():
    # a hash map's element replaced or deleted drops the object its kptr held: the
    # heap is not exhausted by many rounds of store, then replace
    data = obj("""
struct {
    __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 4);
    __type(key, __u32); __type(value, struct val);
} h SEC(".maps");
SEC("tc") int prog(struct __sk_buff *skb) {
  __u32 k = 0;
  struct val zero = {};
  bpf_map_update_elem(&h, &k, &zero, BPF_ANY);
  struct val *v = bpf_map_lookup_elem(&h, &k);
  if (!v) return 1;
  struct item *n = bpf_obj_new(struct item);
  if (!n) return 2;
  n = bpf_kptr_xchg(&v->p, n);
  if (n) { bpf_obj_drop(n); return 4; }
  return 3;
}""")
    ours, theirs = _runs(data, 3)
    assert theirs == [3, 3, 3]
    assert ours == theirs
    prog = pyebpf.load(data).program("prog")
    assert {prog.run(PACKET).retval for _ in range(150_000)} == {3}


KPTR_REFUSED = {
    "a plain store to a referenced kptr": (VALUE + """
  struct item *n = bpf_obj_new(struct item);
  if (!n) return 2;
  v->p = n;
  return 0;""", "store to referenced kptr disallowed"),
    "a loaded kptr used before its NULL check": (VALUE + """
  struct item *p = v->p;
  return p->a;""", "R1 invalid mem access 'rcu_ptr_or_null_'"),
    "a loaded kptr dropped": (VALUE + """
  struct item *p = v->p;
  if (!p) return 2;
  bpf_obj_drop(p);
  return 0;""", "R1 must be referenced or trusted"),
    "a loaded kptr exchanged back": (VALUE + """
  struct item *p = v->p;
  if (!p) return 2;
  struct item *old = bpf_kptr_xchg(&v->p, p);
  if (old) bpf_obj_drop(old);
  return 0;""", "verifier bug: invalid PTR_TO_BTF_ID register for type match"),
    "an object of another type exchanged in": (VALUE + """
  struct other *n = bpf_obj_new(struct other);
  if (!n) return 2;
  struct item *old = bpf_kptr_xchg(&v->p, (struct item *)n);
  if (old) bpf_obj_drop(old);
  return 0;""", "invalid kptr access, R2 type=ptr_other expected=ptr_item"),
    "an exchange at a field that is no kptr": (VALUE + """
  struct item *old = bpf_kptr_xchg((void *)&v->n, NULL);
  if (old) bpf_obj_drop(old);
  return 0;""", "off=0 doesn't point to kptr"),
    "an exchange at a variable offset": (VALUE + """
  struct item *old = bpf_kptr_xchg((void *)v + (skb->len & 8), NULL);
  if (old) bpf_obj_drop(old);
  return 0;""", "R1 doesn't have constant offset. kptr has to be at the constant offset"),
    "an exchange of an untrusted kptr": ("""
  __u32 k = 0;
  struct uval *v = bpf_map_lookup_elem(&uarr, &k);
  if (!v) return 1;
  struct item *old = bpf_kptr_xchg(&v->u, NULL);
  if (old) bpf_obj_drop(old);
  return 0;""", "off=0 kptr isn't referenced kptr"),
    "an exchange in a map value without kptrs": ("""
  __u32 k = 0;
  struct locked *v = bpf_map_lookup_elem(&locks, &k);
  if (!v) return 1;
  struct item *old = bpf_kptr_xchg((void *)v, NULL);
  if (old) bpf_obj_drop(old);
  return 0;""", "R1 has no valid kptr"),
    "an exchange on the stack": ("""
  struct val x = {};
  struct item *old = bpf_kptr_xchg(&x.p, NULL);
  if (old) bpf_obj_drop(old);
  return 0;""", "R1 type=fp expected=map_value, ptr_"),
    "the exchanged-out object kept at exit": (VALUE + """
  struct item *old = bpf_kptr_xchg(&v->p, NULL);
  return old ? 1 : 0;""", "BPF_EXIT instruction in main prog would lead to reference leak"),
    "the object read after it is exchanged in": (VALUE + """
  struct item *n = bpf_obj_new(struct item);
  if (!n) return 2;
  struct item *old = bpf_kptr_xchg(&v->p, n);
  if (old) bpf_obj_drop(old);
  return n->a;""", "R6 invalid mem access 'scalar'"),
    "half a kptr field read": (VALUE + """
  return *(volatile int *)&v->p;""", "kptr access size must be BPF_DW"),
}


@pytest.mark.parametrize("body, message", KPTR_REFUSED.values(), ids=KPTR_REFUSED.keys())
def test_the_verifier_refuses_kptr_shapes_as_the_kernel_does(body, message):
    ours, theirs = verdicts(tc(body))
    assert theirs is not None and message in theirs
    assert ours is not None and theirs in ours


def test_a_map_holding_kptrs_is_not_pinned(tmp_path, monkeypatch):
    # its objects live in this process's heap: another process could not use them
    monkeypatch.setenv("PYEBPF_PIN_ROOT", str(tmp_path))
    obj_ = pyebpf.load(STASH)
    try:
        with pytest.raises(pyebpf.errors.PinError, match="values hold kptrs") as exc:
            obj_.maps["arr"].pin("arr")
        assert exc.value.errno == errno.EOPNOTSUPP and not (tmp_path / "arr").exists()
    finally:
        obj_.close()


# kptrs in per-CPU map values (map_kptr.c's pcpu_array_map): each CPU's copy of the
# value holds an object of its own; the kernel's runs are kept on one CPU
PERCPU_MAPS = """
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); __uint(max_entries, 1);
    __type(key, __u32); __type(value, struct val);
} pc SEC(".maps");
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_HASH); __uint(max_entries, 2);
    __type(key, __u32); __type(value, struct val);
} ph SEC(".maps");
"""
# the run's copy of the value: the object it holds taken out (its a returned), or a new
# one stored holding skb->len plus the copy's count of stores (5)
PERCPU_STASH = """
  if (!v) return 1;
  struct item *t = bpf_kptr_xchg(&v->p, NULL);
  if (t) { long r = t->a; bpf_obj_drop(t); return r; }
  struct item *i = bpf_obj_new(struct item);
  if (!i) return 2;
  i->a = skb->len + v->n++;
  i = bpf_kptr_xchg(&v->p, i);
  if (i) { bpf_obj_drop(i); return 4; }
  return 5;"""


def percpu_tc(lookup: str) -> bytes:
    return obj(PERCPU_MAPS + 'SEC("tc") int prog(struct __sk_buff *skb) {\n  __u32 k = 0;\n'
               + lookup + PERCPU_STASH + "\n}")


@pytest.fixture
def one_cpu():
    """This process on one CPU: the kernel's runs use one copy of a per-CPU value, as
    pyebpf's runs (on CPU 0) do."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    yield
    os.sched_setaffinity(0, before)


def _clear_percpu(maps, name: str) -> None:
    """Every CPU's copy of element 0 written with zeroes from user space."""
    m = maps[name]
    if hasattr(m, "value_buffer_size"):      # the kernel's
        m.update(bytes(4), bytes(m.value_buffer_size))
    else:
        m.update(bytes(4), [bytes(16)] * m.ncpu)


@pytest.mark.parametrize("lookup", [
    "struct val *v = bpf_map_lookup_elem(&pc, &k);",
    "struct val *v = bpf_map_lookup_elem(&ph, &k);\n"
    "  if (!v) { struct val z = {}; bpf_map_update_elem(&ph, &k, &z, 0);\n"
    "            v = bpf_map_lookup_elem(&ph, &k); }"], ids=["percpu-array", "percpu-hash"])
def test_an_object_stored_in_a_per_cpu_value_is_taken_back_next_run(one_cpu, lookup):
    ours, theirs = program_retvals(percpu_tc(lookup), PACKET, runs=4)
    assert theirs == [5, 64, 5, 65]
    assert ours == theirs


def test_a_user_space_update_of_a_per_cpu_array_drops_the_objects_its_copies_hold(one_cpu):
    def clear(maps):
        _clear_percpu(maps, "pc")

    data = percpu_tc("struct val *v = bpf_map_lookup_elem(&pc, &k);")
    ours, theirs = program_retvals(data, PACKET, runs=3, between=clear)
    assert theirs == [5, 5, 5]
    assert ours == theirs
    loaded = pyebpf.load(data)
    try:
        prog = loaded.program("prog")
        # more objects than the arena holds if the stored ones were left behind
        for _ in range(150_000):
            assert prog.run(PACKET).retval == 5
            clear(loaded.maps)
    finally:
        loaded.close()


def test_a_programs_update_of_a_per_cpu_hash_element_drops_the_object_its_copy_holds(
        one_cpu):
    # pcpu_copy_value: an existing element is written in place, then the objects the
    # copy held dropped (bpf_obj_free_fields): each run after the first finds the field
    # empty and stores a new object (had the update kept it: [5, 64, 5])
    ours, theirs = program_retvals(percpu_tc("""struct val *v = bpf_map_lookup_elem(&ph, &k);
  if (v && v->n) { struct val z = {}; z.n = 7; bpf_map_update_elem(&ph, &k, &z, 0); }
  if (!v) { struct val z = {}; bpf_map_update_elem(&ph, &k, &z, 0);
            v = bpf_map_lookup_elem(&ph, &k); }"""), PACKET, runs=3)
    assert theirs == [5, 5, 5]
    assert ours == theirs
