"""Linked lists of allocated objects (``struct bpf_list_head`` in a map value, held by
``__contains(type, field)``, guarded by the value's ``bpf_spin_lock``; the list kfuncs
``bpf_list_push_front_impl``, ``bpf_list_push_back_impl``, ``bpf_list_pop_front``,
``bpf_list_pop_back``, ``bpf_list_front``, ``bpf_list_back``) against the kernel: what
SCHED_CLS programs compute with them run after run (BPF_PROG_TEST_RUN's retvals), what
a map's element shows and drops, the map creations the kernel refuses, and the
verifier's refusals of the shapes the kernel refuses, in its words.  The programs are
in the shapes of the kernel's linked_list selftests."""
from __future__ import annotations

import errno

import pytest

import pyebpf
from pyebpf.errors import ElfError, KernelError, MapError

from bpfc import compile_object
from objdiff import program_retvals, verdicts
from recorded_kernel import count_comparison

# bpf_experimental.h's declarations and the uapi structs the installed linux/bpf.h
# predates
PRELUDE = r"""
#include <bpf/bpf_core_read.h>
struct bpf_list_head { __u64 __opaque[2]; } __attribute__((aligned(8)));
struct bpf_list_node { __u64 __opaque[3]; } __attribute__((aligned(8)));
struct bpf_refcount { __u32 __opaque[1]; } __attribute__((aligned(4)));
extern void *bpf_obj_new_impl(__u64 local_type_id, void *meta) __ksym;
#define bpf_obj_new(type) ((type *)bpf_obj_new_impl(bpf_core_type_id_local(type), NULL))
extern void bpf_obj_drop_impl(void *kptr, void *meta) __ksym;
#define bpf_obj_drop(kptr) bpf_obj_drop_impl(kptr, NULL)
extern void *bpf_refcount_acquire_impl(void *kptr, void *meta) __ksym;
#define bpf_refcount_acquire(kptr) bpf_refcount_acquire_impl(kptr, NULL)
extern int bpf_list_push_front_impl(struct bpf_list_head *head,
                                    struct bpf_list_node *node, void *meta, __u64 off) __ksym;
#define bpf_list_push_front(head, node) bpf_list_push_front_impl(head, node, NULL, 0)
extern int bpf_list_push_back_impl(struct bpf_list_head *head,
                                   struct bpf_list_node *node, void *meta, __u64 off) __ksym;
#define bpf_list_push_back(head, node) bpf_list_push_back_impl(head, node, NULL, 0)
extern struct bpf_list_node *bpf_list_pop_front(struct bpf_list_head *head) __ksym;
extern struct bpf_list_node *bpf_list_pop_back(struct bpf_list_head *head) __ksym;
extern struct bpf_list_node *bpf_list_front(struct bpf_list_head *head) __ksym;
extern struct bpf_list_node *bpf_list_back(struct bpf_list_head *head) __ksym;
#define __contains(name, node) __attribute__((btf_decl_tag("contains:" #name ":" #node)))

struct elem { long v; struct bpf_list_node node; };
struct relem { long v; struct bpf_list_node node; struct bpf_refcount rc; };
struct other { long a; long b; struct bpf_list_node node; };
struct val { struct bpf_spin_lock lock; int n; struct bpf_list_head head __contains(elem, node); };
struct rval { struct bpf_spin_lock lock; struct bpf_list_head head __contains(relem, node); };
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 2);
    __type(key, __u32); __type(value, struct val);
} arr SEC(".maps");
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
    __type(key, __u32); __type(value, struct rval);
} rarr SEC(".maps");
/* the structs a __contains tag names must be in the BTF: maps of them put them there
   (the kernel ignores a bpf_list_node in a map value) */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
    __type(key, __u32); __type(value, struct elem);
} elems SEC(".maps");
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
    __type(key, __u32); __type(value, struct relem);
} relems SEC(".maps");

/* the value's list: push one number, pop one (-1 when the list is empty) */
static __always_inline int push(struct val *v, long x, int back)
{
  struct elem *n = bpf_obj_new(struct elem);
  if (!n) return -2;
  n->v = x;
  bpf_spin_lock(&v->lock);
  int r = back ? bpf_list_push_back(&v->head, &n->node)
               : bpf_list_push_front(&v->head, &n->node);
  bpf_spin_unlock(&v->lock);
  return r;
}
static __always_inline long pop(struct val *v, int back)
{
  bpf_spin_lock(&v->lock);
  struct bpf_list_node *l = back ? bpf_list_pop_back(&v->head)
                                 : bpf_list_pop_front(&v->head);
  bpf_spin_unlock(&v->lock);
  if (!l) return -1;
  struct elem *n = container_of(l, struct elem, node);
  long x = n->v;
  bpf_obj_drop(n);
  return x;
}
"""
PACKET = bytes(range(64))
LOOKUP = """
  __u32 k = 0;
  struct val *v = bpf_map_lookup_elem(&arr, &k);
  if (!v) return 100;
"""


def obj(source: str) -> bytes:
    return compile_object(PRELUDE + source)


def tc(body: str) -> bytes:
    return obj('SEC("tc") int prog(struct __sk_buff *skb) {\n' + body + "\n}")


def _runs(data: bytes, n: int, between=None) -> tuple[list, list]:
    return program_retvals(data, PACKET, n, between)


def _digits(*pops: str) -> str:
    """A body returning the popped numbers as decimal digits, in pop order."""
    return "  long r = 0, x;\n" + "".join(
        f"  x = pop(v, {p}); if (x < 0) return r * 10 + 9; r = r * 10 + x;\n" for p in pops) \
        + "  return r;"


# --- what programs compute ------------------------------------------------------------

def test_a_pushed_object_is_popped_with_what_was_written_in_it():
    ours, theirs = _runs(tc(LOOKUP + """
  if (push(v, 7, 1)) return 101;
  return pop(v, 0);"""), 1)
    assert theirs == [7]
    assert ours == theirs


def test_push_back_and_pop_front_keep_first_in_first_out_order():
    ours, theirs = _runs(tc(LOOKUP + """
  push(v, 1, 1); push(v, 2, 1); push(v, 3, 1);
""" + _digits("0", "0", "0")), 1)
    assert theirs == [123]
    assert ours == theirs


def test_push_front_and_pop_front_keep_last_in_first_out_order():
    ours, theirs = _runs(tc(LOOKUP + """
  push(v, 1, 0); push(v, 2, 0); push(v, 3, 0);
""" + _digits("0", "0", "0")), 1)
    assert theirs == [321]
    assert ours == theirs


def test_pop_back_takes_the_last_object_and_an_empty_list_pops_null():
    ours, theirs = _runs(tc(LOOKUP + """
  push(v, 1, 1); push(v, 2, 1); push(v, 3, 0);
""" + _digits("1", "1", "0", "1")), 1)
    assert theirs == [2139]         # the list is 3 1 2
    assert ours == theirs


def test_front_and_back_read_the_ends_without_taking_them():
    ours, theirs = _runs(tc(LOOKUP + """
  push(v, 4, 1); push(v, 5, 1);
  long r = 0;
  bpf_spin_lock(&v->lock);
  struct bpf_list_node *f = bpf_list_front(&v->head);
  struct bpf_list_node *b = bpf_list_back(&v->head);
  if (f) r += 10 * container_of(f, struct elem, node)->v;
  if (b) {
    container_of(b, struct elem, node)->v = 6;   /* a non-owning reference writes */
    r += container_of(b, struct elem, node)->v;
  }
  bpf_spin_unlock(&v->lock);
  return r * 100 + pop(v, 0) * 10 + pop(v, 0);"""), 1)
    assert theirs == [4646]
    assert ours == theirs


def test_an_empty_lists_front_and_back_are_null():
    ours, theirs = _runs(tc(LOOKUP + """
  bpf_spin_lock(&v->lock);
  int r = !bpf_list_front(&v->head) + 2 * !bpf_list_back(&v->head);
  bpf_spin_unlock(&v->lock);
  return r;"""), 1)
    assert theirs == [3]
    assert ours == theirs


def test_a_pushed_object_is_written_through_its_non_owning_reference_under_the_lock():
    ours, theirs = _runs(tc(LOOKUP + """
  struct elem *n = bpf_obj_new(struct elem);
  if (!n) return 101;
  bpf_spin_lock(&v->lock);
  bpf_list_push_back(&v->head, &n->node);
  n->v = 33;
  bpf_spin_unlock(&v->lock);
  return pop(v, 0);"""), 1)
    assert theirs == [33]
    assert ours == theirs


def test_a_list_keeps_its_objects_from_run_to_run():
    # each run takes the number the previous one left and leaves the next
    ours, theirs = _runs(tc(LOOKUP + """
  long x = pop(v, 0);
  if (x < 0) x = 40;
  if (push(v, x + 1, 1)) return 101;
  return x;"""), 4)
    assert theirs == [40, 41, 42, 43]
    assert ours == theirs


def test_the_lists_of_two_elements_are_apart():
    ours, theirs = _runs(tc(LOOKUP + """
  __u32 k1 = 1;
  struct val *w = bpf_map_lookup_elem(&arr, &k1);
  if (!w) return 102;
  push(v, 1, 1); push(w, 2, 1);
  return pop(w, 0) * 10 + pop(v, 0);"""), 1)
    assert theirs == [21]
    assert ours == theirs


def test_pushing_a_refcounted_object_already_in_a_list_fails_and_drops_the_reference():
    # __bpf_list_add: -EINVAL, and the reference the program gave is dropped
    ours, theirs = _runs(tc("""
  __u32 k = 0;
  struct rval *v = bpf_map_lookup_elem(&rarr, &k);
  if (!v) return 100;
  struct relem *n = bpf_obj_new(struct relem);
  if (!n) return 101;
  n->v = 5;
  struct relem *m = bpf_refcount_acquire(n);
  bpf_spin_lock(&v->lock);
  int a = bpf_list_push_back(&v->head, &n->node);
  int b = bpf_list_push_back(&v->head, &m->node);
  struct bpf_list_node *l = bpf_list_pop_front(&v->head);
  struct bpf_list_node *l2 = bpf_list_pop_front(&v->head);
  bpf_spin_unlock(&v->lock);
  long x = 0;
  if (l) {
    struct relem *o = container_of(l, struct relem, node);
    x = o->v;
    bpf_obj_drop(o);
  }
  if (l2) { bpf_obj_drop(container_of(l2, struct relem, node)); return 102; }
  return a * 1000 + b * 10 + x;"""), 2)
    assert theirs == [(-220 + 5) & 0xFFFFFFFF] * 2
    assert ours == theirs


def test_a_non_owning_reference_is_acquired_as_an_owning_one():
    ours, theirs = _runs(tc("""
  __u32 k = 0;
  struct rval *v = bpf_map_lookup_elem(&rarr, &k);
  if (!v) return 100;
  struct relem *n = bpf_obj_new(struct relem);
  if (!n) return 101;
  n->v = 8;
  bpf_spin_lock(&v->lock);
  bpf_list_push_back(&v->head, &n->node);
  struct relem *m = bpf_refcount_acquire(n);
  struct bpf_list_node *l = bpf_list_pop_front(&v->head);
  bpf_spin_unlock(&v->lock);
  if (l) bpf_obj_drop(container_of(l, struct relem, node));
  if (!m) return 102;
  long x = m->v;
  bpf_obj_drop(m);
  return x;"""), 2)
    assert theirs == [8, 8]
    assert ours == theirs


def test_loops_push_and_pop_under_a_lock_taken_in_each_round():
    ours, theirs = _runs(tc(LOOKUP + """
  long s = 0;
  for (int i = 0; i < 3; i++) {
    struct elem *n = bpf_obj_new(struct elem);
    if (!n) return 101;
    n->v = i + 1;
    bpf_spin_lock(&v->lock);
    bpf_list_push_back(&v->head, &n->node);
    bpf_spin_unlock(&v->lock);
  }
  for (int i = 0; i < 5; i++) {
    bpf_spin_lock(&v->lock);
    struct bpf_list_node *l = bpf_list_pop_front(&v->head);
    bpf_spin_unlock(&v->lock);
    if (!l) break;
    struct elem *n = container_of(l, struct elem, node);
    s = s * 10 + n->v;
    bpf_obj_drop(n);
  }
  return s;"""), 2)
    assert theirs == [123, 123]
    assert ours == theirs


def test_a_static_function_given_the_map_value_works_its_list():
    ours, theirs = _runs(obj("""
static __attribute__((noinline)) long take(struct val *v)
{
  bpf_spin_lock(&v->lock);
  struct bpf_list_node *l = bpf_list_pop_front(&v->head);
  bpf_spin_unlock(&v->lock);
  if (!l) return -1;
  struct elem *n = container_of(l, struct elem, node);
  long x = n->v;
  bpf_obj_drop(n);
  return x;
}
SEC("tc") int prog(struct __sk_buff *skb) {""" + LOOKUP + """
  long x = take(v);
  push(v, x < 0 ? 70 : x + 2, 1);
  return x;
}"""), 3)
    assert theirs == [0xFFFFFFFF, 70, 72]
    assert ours == theirs


# --- what a map element shows and drops -----------------------------------------------

PUSHER = tc(LOOKUP + """
  v->n += 1;
  long x = pop(v, 0);
  push(v, v->n, 1);
  return x;""")


@pytest.mark.kernel_varies          # the kernel shows an address of its own
def test_the_map_shows_a_value_but_its_list_head_as_the_kernel_does():
    obj_ = pyebpf.load(PUSHER)
    try:
        with pyebpf.kernel.load_object(PUSHER) as kobj:
            shown = []
            for prog, m in ((obj_.program("prog"), obj_.maps["arr"]),
                            (kobj.program("prog"), kobj.maps["arr"])):
                run = getattr(prog, "test_run", None) or prog.run
                run(PACKET)
                shown.append(m.lookup(bytes(4)))
    finally:
        obj_.close()
    count_comparison()
    ours, theirs = shown
    assert theirs[:8] == ours[:8] == bytes(4) + (1).to_bytes(4, "little")  # lock, n
    # the kernel's lookup initialises the head of its copy (bpf_obj_init: an empty
    # list_head pointing at itself, a kernel address); pyebpf's shows zeroes
    assert theirs[8:16] == theirs[16:24] != bytes(8)
    assert ours[8:] == bytes(16)


def test_an_array_update_from_user_space_drops_the_elements_list():
    # array_map_update_elem frees the old value's fields: the next pop finds no object
    def update(maps):
        maps["arr"].update(bytes(4), bytes(24))
    ours, theirs = _runs(PUSHER, 3, update)
    assert theirs == [0xFFFFFFFF] * 3
    assert ours == theirs


def test_an_array_update_under_bpf_f_lock_drops_the_list_too():
    # array_map_update_elem frees the fields after copy_map_value_locked as well
    def update(maps):
        maps["arr"].update(bytes(4), (7).to_bytes(8, "little") + bytes(16), flags=4)
    ours, theirs = _runs(PUSHER, 3, update)
    assert theirs == [0xFFFFFFFF] * 3
    assert ours == theirs


HASH = obj("""
struct {
    __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 4); __uint(map_flags, 1);
    __type(key, __u32); __type(value, struct val);
} h SEC(".maps");
SEC("tc") int prog(struct __sk_buff *skb) {
  __u32 k = 0;
  struct val zero = {};
  bpf_map_update_elem(&h, &k, &zero, BPF_NOEXIST);
  struct val *v = bpf_map_lookup_elem(&h, &k);
  if (!v) return 100;
  long x = pop(v, 0);
  push(v, 50, 1);
  return x;
}""")


def test_a_deleted_hash_elements_list_is_gone_with_it():
    def delete(maps):
        maps["h"].delete(bytes(4))
    ours, theirs = _runs(HASH, 3, delete)
    assert theirs == [0xFFFFFFFF] * 3
    assert ours == theirs


def test_a_hash_elements_list_lives_until_the_element_goes():
    ours, theirs = _runs(HASH, 3)
    assert theirs == [0xFFFFFFFF, 50, 50]
    assert ours == theirs


def test_a_hash_element_replaced_from_user_space_drops_its_list():
    def replace(maps):
        maps["h"].update(bytes(4), bytes(24))
    ours, theirs = _runs(HASH, 3, replace)
    assert theirs == [0xFFFFFFFF] * 3
    assert ours == theirs


@pytest.mark.parametrize("body", [
    # the head's own bytes overwritten
    """*(volatile __u64 *)&v->head = 0x4141414141414141;
  ((volatile __u64 *)&v->head)[1] = 8;
  return pop(v, 0);""",
    # a node's links overwritten after its push
    """struct elem *n = bpf_obj_new(struct elem);
  if (!n) return 101;
  bpf_spin_lock(&v->lock);
  bpf_list_push_back(&v->head, &n->node);
  ((volatile __u64 *)&n->node)[0] = 0x4141414141414141;
  bpf_spin_unlock(&v->lock);
  return pop(v, 0);""",
], ids=["head", "node"])
def test_an_unverified_program_that_writes_list_links_finds_the_list_empty(body):
    # the kernel refuses such a program; without the verifier the engine still never
    # follows a link out of its own memory
    data = tc(LOOKUP + "  " + body)
    o = pyebpf.load(data, verify=False)
    try:
        prog = o.program("prog")
        assert [prog.run(PACKET).retval & 0xFFFFFFFF for _ in range(3)] == [0xFFFFFFFF] * 3
        o.maps["arr"].update(bytes(4), bytes(24))        # and frees what it can
    finally:
        o.close()


def test_a_list_in_global_data_keeps_first_in_first_out_order():
    # the kernel's linked_list selftests keep their heads in private(X) sections: the
    # section's DATASEC holds the lock and the head
    ours, theirs = _runs(obj("""
#define private(name) SEC(".data." #name) __hidden __attribute__((aligned(8)))
private(A) struct bpf_spin_lock glock;
private(A) struct bpf_list_head ghead __contains(elem, node);
static __always_inline int gpush(long x)
{
  struct elem *n = bpf_obj_new(struct elem);
  if (!n) return 1;
  n->v = x;
  bpf_spin_lock(&glock);
  bpf_list_push_back(&ghead, &n->node);
  bpf_spin_unlock(&glock);
  return 0;
}
static __always_inline long gpop(void)
{
  bpf_spin_lock(&glock);
  struct bpf_list_node *l = bpf_list_pop_front(&ghead);
  bpf_spin_unlock(&glock);
  if (!l) return 9;
  long x = container_of(l, struct elem, node)->v;
  bpf_obj_drop(container_of(l, struct elem, node));
  return x;
}
SEC("tc") int prog(struct __sk_buff *skb) {
  if (gpush(1) || gpush(2)) return 100;
  long r = gpop();
  return r * 10 + gpop();
}"""), 2)
    assert theirs == [12, 12]
    assert ours == theirs


def test_objects_of_dropped_lists_are_allocated_again():
    # 100 objects a run, dropped with the element: the arena holds 4 MiB, far fewer
    # than the runs' 2.5 million objects
    prog_obj = pyebpf.load(obj("""
struct {
    __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 4); __uint(map_flags, 1);
    __type(key, __u32); __type(value, struct val);
} h SEC(".maps");
SEC("tc") int prog(struct __sk_buff *skb) {
  __u32 k = 0;
  struct val zero = {};
  bpf_map_update_elem(&h, &k, &zero, BPF_ANY);
  struct val *v = bpf_map_lookup_elem(&h, &k);
  if (!v) return 100;
  for (int i = 0; i < 100; i++)
    if (push(v, i, 1)) return 101;
  return 0;
}"""))
    prog = prog_obj.program("prog")
    assert {prog.run(PACKET).retval for _ in range(25_000)} == {0}
    prog_obj.close()


# --- the maps the kernel refuses to create ---------------------------------------------

def _create_errors(source: str) -> tuple[int, int]:
    """The errno each of pyebpf and the kernel refuses the object's maps with."""
    data = obj(source + '\nSEC("tc") int prog(struct __sk_buff *skb) { return 0; }')
    with pytest.raises(ElfError) as ours:
        pyebpf.load(data)
    with pytest.raises(KernelError) as theirs:
        pyebpf.kernel.load_object(data)
    count_comparison()
    assert isinstance(ours.value.__cause__, MapError)
    name = str(theirs.value).split("failed: ", 1)[1].split()[0]
    return ours.value.__cause__.errno, getattr(errno, name)


BAD_MAPS = {
    "a list head without a bpf_spin_lock": ("""
struct nolock { struct bpf_list_head head __contains(elem, node); };
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
    __type(key, __u32); __type(value, struct nolock);
} m SEC(".maps");""", "EINVAL"),
    "a list of a struct the BTF lacks": ("""
struct nostruct { struct bpf_spin_lock l; struct bpf_list_head head __contains(nothere, node); };
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
    __type(key, __u32); __type(value, struct nostruct);
} m SEC(".maps");""", "ENOENT"),
    "a list by a member the struct lacks": ("""
struct nomember { struct bpf_spin_lock l; struct bpf_list_head head __contains(elem, link); };
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
    __type(key, __u32); __type(value, struct nomember);
} m SEC(".maps");""", "ENOENT"),
    "a list by a member that is no bpf_list_node": ("""
struct notnode { struct bpf_spin_lock l; struct bpf_list_head head __contains(elem, v); };
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
    __type(key, __u32); __type(value, struct notnode);
} m SEC(".maps");""", "EINVAL"),
    "a list head without a __contains tag": ("""
struct untagged { struct bpf_spin_lock l; struct bpf_list_head head; };
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
    __type(key, __u32); __type(value, struct untagged);
} m SEC(".maps");""", "EINVAL"),
    "a list head in an LRU hash (refused its bpf_spin_lock)": ("""
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH); __uint(max_entries, 1);
    __type(key, __u32); __type(value, struct val);
} m SEC(".maps");""", "EOPNOTSUPP"),
    "a list head in a per-CPU array": ("""
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); __uint(max_entries, 1);
    __type(key, __u32); __type(value, struct val);
} m SEC(".maps");""", "EOPNOTSUPP"),
}


@pytest.mark.parametrize("source, name", BAD_MAPS.values(), ids=BAD_MAPS.keys())
def test_map_creation_is_refused_as_the_kernel_refuses_it(source, name):
    ours, theirs = _create_errors(source)
    assert theirs == getattr(errno, name)
    assert ours == theirs


def test_a_map_holding_lists_is_not_pinned(tmp_path, monkeypatch):
    # its objects live in this process's heap: another process could not use them
    monkeypatch.setenv("PYEBPF_PIN_ROOT", str(tmp_path))
    obj_ = pyebpf.load(PUSHER)
    try:
        with pytest.raises(pyebpf.errors.PinError, match="kptrs or lists") as exc:
            obj_.maps["arr"].pin("arr")
        assert exc.value.errno == errno.EOPNOTSUPP and not (tmp_path / "arr").exists()
    finally:
        obj_.close()


# --- what the verifier refuses ---------------------------------------------------------

REFUSED = {
    "a push without the lock": ("""
  struct elem *n = bpf_obj_new(struct elem);
  if (!n) return 1;
  bpf_list_push_back(&v->head, &n->node);
  return 0;""", "bpf_spin_lock at off=0 must be held for bpf_list_head"),
    "a pop under another element's lock": ("""
  __u32 k1 = 1;
  struct val *w = bpf_map_lookup_elem(&arr, &k1);
  if (!w) return 1;
  bpf_spin_lock(&w->lock);
  struct bpf_list_node *l = bpf_list_pop_front(&v->head);
  bpf_spin_unlock(&w->lock);
  if (l) bpf_obj_drop(container_of(l, struct elem, node));
  return 0;""", "bpf_spin_lock at off=0 must be held for bpf_list_head"),
    "an object used after the lock its push held is released": ("""
  struct elem *n = bpf_obj_new(struct elem);
  if (!n) return 1;
  bpf_spin_lock(&v->lock);
  bpf_list_push_back(&v->head, &n->node);
  bpf_spin_unlock(&v->lock);
  return n->v;""", "invalid mem access 'scalar'"),
    "an object pushed twice": ("""
  struct elem *n = bpf_obj_new(struct elem);
  if (!n) return 1;
  bpf_spin_lock(&v->lock);
  bpf_list_push_back(&v->head, &n->node);
  bpf_list_push_back(&v->head, &n->node);
  bpf_spin_unlock(&v->lock);
  return 0;""", "arg#1 expected pointer to allocated object"),
    "an object dropped after its push": ("""
  struct elem *n = bpf_obj_new(struct elem);
  if (!n) return 1;
  bpf_spin_lock(&v->lock);
  bpf_list_push_back(&v->head, &n->node);
  bpf_spin_unlock(&v->lock);
  bpf_obj_drop(n);
  return 0;""", "R1 must be referenced or trusted"),
    "a popped object not released": ("""
  bpf_spin_lock(&v->lock);
  struct bpf_list_node *l = bpf_list_pop_front(&v->head);
  bpf_spin_unlock(&v->lock);
  return l != 0;""", "BPF_EXIT instruction in main prog would lead to reference leak"),
    "an object dropped under the lock": ("""
  bpf_spin_lock(&v->lock);
  struct bpf_list_node *l = bpf_list_pop_front(&v->head);
  if (l) bpf_obj_drop(container_of(l, struct elem, node));
  bpf_spin_unlock(&v->lock);
  return 0;""", "function calls are not allowed while holding a lock"),
    "a load of the list head": ("""
  return *(volatile long *)&v->head;""",
                                "bpf_list_head cannot be accessed directly by load/store"),
    "a popped node used before its NULL check": ("""
  bpf_spin_lock(&v->lock);
  struct bpf_list_node *l = bpf_list_pop_back(&v->head);
  bpf_spin_unlock(&v->lock);
  bpf_obj_drop(container_of(l, struct elem, node));
  return 0;""", "pointer arithmetic on ptr_or_null_ prohibited, null-check it first"),
    "a popped node dropped at its node": ("""
  bpf_spin_lock(&v->lock);
  struct bpf_list_node *l = bpf_list_pop_back(&v->head);
  bpf_spin_unlock(&v->lock);
  if (l) bpf_obj_drop(l);
  return 0;""", "R1 must have zero offset when passed to release func or trusted arg to kfunc"),
    "a push of the object's start, not its node": ("""
  struct elem *n = bpf_obj_new(struct elem);
  if (!n) return 1;
  bpf_spin_lock(&v->lock);
  bpf_list_push_back(&v->head, (void *)n);
  bpf_spin_unlock(&v->lock);
  return 0;""", "bpf_list_node not found at offset=0"),
    "a push of another struct's node": ("""
  struct other *n = bpf_obj_new(struct other);
  if (!n) return 1;
  bpf_spin_lock(&v->lock);
  bpf_list_push_back(&v->head, &n->node);
  bpf_spin_unlock(&v->lock);
  return 0;""", "operation on bpf_list_head expects arg#1 bpf_list_node at offset=8 in "
                  "struct elem, but arg is at offset=16 in struct other"),
    "a write of an object's bpf_list_node": ("""
  struct elem *n = bpf_obj_new(struct elem);
  if (!n) return 1;
  *(volatile long *)&n->node = 1;
  bpf_obj_drop(n);
  return 0;""", "direct access to bpf_list_node is disallowed"),
    "a push of a node on the stack": ("""
  struct elem e = {};
  bpf_spin_lock(&v->lock);
  bpf_list_push_back(&v->head, &e.node);
  bpf_spin_unlock(&v->lock);
  return 0;""", "arg#1 expected pointer to allocated object"),
    "an exit with the list's lock held": ("""
  bpf_spin_lock(&v->lock);
  struct bpf_list_node *l = bpf_list_front(&v->head);
  if (l) return 3;
  bpf_spin_unlock(&v->lock);
  return 0;""", "BPF_EXIT instruction in main prog cannot be used inside bpf_spin_lock-ed "
                  "region"),
    "a front node read after the unlock": ("""
  bpf_spin_lock(&v->lock);
  struct bpf_list_node *l = bpf_list_front(&v->head);
  bpf_spin_unlock(&v->lock);
  if (!l) return 3;
  return container_of(l, struct elem, node)->v;""", "invalid mem access 'scalar'"),
    "a front node dropped": ("""
  bpf_spin_lock(&v->lock);
  struct bpf_list_node *l = bpf_list_front(&v->head);
  bpf_spin_unlock(&v->lock);
  if (l) bpf_obj_drop(container_of(l, struct elem, node));
  return 0;""", "R1 must be referenced or trusted"),
    "a front node read before its NULL check": ("""
  bpf_spin_lock(&v->lock);
  struct bpf_list_node *l = bpf_list_front(&v->head);
  long r = container_of(l, struct elem, node)->v;
  bpf_spin_unlock(&v->lock);
  return r;""", "R0 invalid mem access 'ptr_or_null_'"),
}


@pytest.mark.parametrize("body, message", REFUSED.values(), ids=REFUSED.keys())
def test_the_verifier_refuses_as_the_kernel_does(body, message):
    ours, theirs = verdicts(tc(LOOKUP + body))
    assert theirs is not None and message in theirs, theirs
    assert ours is not None and theirs in ours, (ours, theirs)


@pytest.mark.parametrize("prog_type, message", [
    # a socket filter is refused the map's lock before any call is looked at
    ("socket_filter", "socket filter progs cannot use bpf_spin_lock yet"),
    ("sched_act", "calling kernel function bpf_list_pop_front is not allowed"),
])
def test_the_list_kfuncs_are_for_sched_cls_only(prog_type, message):
    ours, theirs = verdicts(tc(LOOKUP + "  return pop(v, 0);"), prog_type)
    assert theirs is not None and message in theirs, theirs
    assert ours is not None and theirs in ours, (ours, theirs)


def test_a_struct_holding_a_list_head_without_a_lock_is_refused_as_the_kernel_refuses_it():
    # btf_parse_struct_metas: the struct's record needs the bpf_spin_lock guarding its
    # list, or the kernel refuses the object's BTF
    ours, theirs = verdicts(tc("""
  struct holder { struct bpf_list_head h __contains(elem, node); long x; };
  struct holder *o = bpf_obj_new(struct holder);
  if (!o) return 1;
  bpf_obj_drop(o);
  return 0;"""))
    assert theirs is not None and "EINVAL" in theirs, theirs
    assert ours is not None and "holds a bpf_list_head but no bpf_spin_lock (EINVAL)" in ours
