"""Red-black trees of allocated objects (``struct bpf_rb_root`` in a map value, held by
``__contains(type, field)``, guarded by the value's ``bpf_spin_lock``; the rbtree kfuncs
``bpf_rbtree_add_impl`` with its ``less`` callback, ``bpf_rbtree_first``,
``bpf_rbtree_remove``, ``bpf_rbtree_root``, ``bpf_rbtree_left``, ``bpf_rbtree_right``)
against the kernel: what SCHED_CLS programs compute with them run after run
(BPF_PROG_TEST_RUN's retvals: the order ``first`` and ``remove`` drain a tree in, the
tree's shape as ``root``/``left``/``right`` walk it), what a map's element drops, and
the verifier's refusals of the shapes the kernel refuses, in its words.  The programs
are in the shapes of the kernel's rbtree selftests."""
from __future__ import annotations

import pytest

import pyebpf

from bpfc import compile_object
from objdiff import program_retvals, verdicts

# bpf_experimental.h's declarations and the uapi structs the installed linux/bpf.h
# predates
PRELUDE = r"""
#include <stdbool.h>
#include <bpf/bpf_core_read.h>
struct bpf_rb_root { __u64 __opaque[2]; } __attribute__((aligned(8)));
struct bpf_rb_node { __u64 __opaque[4]; } __attribute__((aligned(8)));
struct bpf_list_head { __u64 __opaque[2]; } __attribute__((aligned(8)));
struct bpf_list_node { __u64 __opaque[3]; } __attribute__((aligned(8)));
struct bpf_refcount { __u32 __opaque[1]; } __attribute__((aligned(4)));
extern void *bpf_obj_new_impl(__u64 local_type_id, void *meta) __ksym;
#define bpf_obj_new(type) ((type *)bpf_obj_new_impl(bpf_core_type_id_local(type), NULL))
extern void bpf_obj_drop_impl(void *kptr, void *meta) __ksym;
#define bpf_obj_drop(kptr) bpf_obj_drop_impl(kptr, NULL)
extern void *bpf_refcount_acquire_impl(void *kptr, void *meta) __ksym;
#define bpf_refcount_acquire(kptr) bpf_refcount_acquire_impl(kptr, NULL)
extern int bpf_rbtree_add_impl(struct bpf_rb_root *root, struct bpf_rb_node *node,
                               bool (less)(struct bpf_rb_node *a, const struct bpf_rb_node *b),
                               void *meta, __u64 off) __ksym;
#define bpf_rbtree_add(root, node, less) bpf_rbtree_add_impl(root, node, less, NULL, 0)
extern struct bpf_rb_node *bpf_rbtree_remove(struct bpf_rb_root *root,
                                             struct bpf_rb_node *node) __ksym;
extern struct bpf_rb_node *bpf_rbtree_first(struct bpf_rb_root *root) __ksym;
extern struct bpf_rb_node *bpf_rbtree_root(struct bpf_rb_root *root) __ksym;
extern struct bpf_rb_node *bpf_rbtree_left(struct bpf_rb_root *root,
                                           struct bpf_rb_node *node) __ksym;
extern struct bpf_rb_node *bpf_rbtree_right(struct bpf_rb_root *root,
                                            struct bpf_rb_node *node) __ksym;
extern struct bpf_list_node *bpf_list_pop_front(struct bpf_list_head *head) __ksym;
#define __contains(name, node) __attribute__((btf_decl_tag("contains:" #name ":" #node)))

struct node_data { long key; long data; struct bpf_rb_node node; };
struct rnode { long key; struct bpf_rb_node node; struct bpf_refcount rc; };
struct other { long a; long b; long c; struct bpf_rb_node node; };
struct val { struct bpf_spin_lock lock; int n; struct bpf_rb_root root __contains(node_data, node); };
struct rval { struct bpf_spin_lock lock; struct bpf_rb_root a __contains(rnode, node);
              struct bpf_rb_root b __contains(rnode, node); };
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 2);
    __type(key, __u32); __type(value, struct val);
} arr SEC(".maps");
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
    __type(key, __u32); __type(value, struct rval);
} rarr SEC(".maps");
/* the structs a __contains tag names must be in the BTF: maps of them put them there */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
    __type(key, __u32); __type(value, struct node_data);
} nodes SEC(".maps");
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
    __type(key, __u32); __type(value, struct rnode);
} rnodes SEC(".maps");
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
    __type(key, __u32); __type(value, struct other);
} others SEC(".maps");

static bool less(struct bpf_rb_node *a, const struct bpf_rb_node *b)
{
  struct node_data *na = container_of(a, struct node_data, node);
  struct node_data *nb = container_of(b, struct node_data, node);
  return na->key < nb->key;
}
static bool rless(struct bpf_rb_node *a, const struct bpf_rb_node *b)
{
  return container_of(a, struct rnode, node)->key < container_of(b, struct rnode, node)->key;
}

/* the value's tree: add one key, take the first (-1 when the tree is empty) */
static __always_inline int add(struct val *v, long key, long data)
{
  struct node_data *n = bpf_obj_new(struct node_data);
  if (!n) return -2;
  n->key = key;
  n->data = data;
  bpf_spin_lock(&v->lock);
  int r = bpf_rbtree_add(&v->root, &n->node, less);
  bpf_spin_unlock(&v->lock);
  return r;
}
static __always_inline long take_first(struct val *v)
{
  bpf_spin_lock(&v->lock);
  struct bpf_rb_node *f = bpf_rbtree_first(&v->root);
  if (!f) {
    bpf_spin_unlock(&v->lock);
    return -1;
  }
  f = bpf_rbtree_remove(&v->root, f);
  bpf_spin_unlock(&v->lock);
  if (!f) return -3;
  struct node_data *n = container_of(f, struct node_data, node);
  long x = n->data;
  bpf_obj_drop(n);
  return x;
}
/* a node's key + 1, 0 for NULL */
static __always_inline long key1(struct bpf_rb_node *n)
{
  return n ? container_of(n, struct node_data, node)->key + 1 : 0;
}
"""
PACKET = bytes(range(64))
LOOKUP = """
  __u32 k = 0;
  struct val *v = bpf_map_lookup_elem(&arr, &k);
  if (!v) return 100;
"""


def tc(body: str) -> bytes:
    return compile_object(PRELUDE + 'SEC("tc") int prog(struct __sk_buff *skb) {\n' +
                          body + "\n}")


def _runs(data: bytes, n: int, between=None) -> tuple[list, list]:
    return program_retvals(data, PACKET, n, between)


def _drain(count: int) -> str:
    """A body returning the first ``count`` data taken from the tree as decimal digits,
    9 for an empty tree."""
    return "  long r = 0, x;\n" + "".join(
        "  x = take_first(v); if (x < 0) return r * 10 + 9; r = r * 10 + x;\n"
        for _ in range(count)) + "  return r;"


# --- what programs compute ------------------------------------------------------------

def test_an_added_object_is_taken_back_with_what_was_written_in_it():
    ours, theirs = _runs(tc(LOOKUP + """
  if (add(v, 5, 7)) return 101;
  return take_first(v);"""), 1)
    assert theirs == [7]
    assert ours == theirs


def test_first_and_remove_drain_the_tree_in_the_order_less_gives():
    ours, theirs = _runs(tc(LOOKUP + """
  add(v, 30, 3); add(v, 10, 1); add(v, 50, 5); add(v, 20, 2); add(v, 40, 4);
""" + _drain(6)), 1)
    assert theirs == [123459]
    assert ours == theirs


def test_equal_keys_go_right_so_they_drain_in_the_order_they_were_added():
    # __bpf_rbtree_add walks left only where less(node, parent) is true
    ours, theirs = _runs(tc(LOOKUP + """
  add(v, 1, 1); add(v, 1, 2); add(v, 0, 4); add(v, 1, 3);
""" + _drain(4)), 1)
    assert theirs == [4123]
    assert ours == theirs


def test_an_empty_trees_first_and_root_are_null():
    ours, theirs = _runs(tc(LOOKUP + """
  bpf_spin_lock(&v->lock);
  int r = !bpf_rbtree_first(&v->root) + 2 * !bpf_rbtree_root(&v->root);
  bpf_spin_unlock(&v->lock);
  return r;"""), 1)
    assert theirs == [3]
    assert ours == theirs


def test_a_node_removed_twice_is_null_the_second_time():
    # rbtree_api_release_aliasing: two non-owning references to one node
    ours, theirs = _runs(tc(LOOKUP + """
  if (add(v, 41, 42)) return 101;
  bpf_spin_lock(&v->lock);
  struct bpf_rb_node *a = bpf_rbtree_first(&v->root);
  if (!a) { bpf_spin_unlock(&v->lock); return 102; }
  struct bpf_rb_node *b = bpf_rbtree_first(&v->root);
  if (!b) { bpf_spin_unlock(&v->lock); return 103; }
  struct bpf_rb_node *r1 = bpf_rbtree_remove(&v->root, a);
  struct bpf_rb_node *r2 = bpf_rbtree_remove(&v->root, b);
  bpf_spin_unlock(&v->lock);
  long r = 0;
  if (r1) { r += container_of(r1, struct node_data, node)->data;
            bpf_obj_drop(container_of(r1, struct node_data, node)); }
  if (r2) { r += 1000; bpf_obj_drop(container_of(r2, struct node_data, node)); }
  return r;"""), 1)
    assert theirs == [42]
    assert ours == theirs


def test_a_remove_of_an_owned_node_never_added_is_null():
    # the kernel's verifier lets bpf_rbtree_remove take an owning reference
    # (check_kfunc_args: non-owning or refcounted); bpf_rbtree_remove finds the node in
    # no tree
    ours, theirs = _runs(tc(LOOKUP + """
  struct node_data *n = bpf_obj_new(struct node_data);
  if (!n) return 101;
  bpf_spin_lock(&v->lock);
  struct bpf_rb_node *r = bpf_rbtree_remove(&v->root, &n->node);
  bpf_spin_unlock(&v->lock);
  bpf_obj_drop(n);
  if (r) {
    bpf_obj_drop(container_of(r, struct node_data, node));
    return 1;
  }
  return 2;"""), 1)
    assert theirs == [2]
    assert ours == theirs


def test_a_non_owning_reference_writes_the_object_in_the_tree():
    ours, theirs = _runs(tc(LOOKUP + """
  struct node_data *n = bpf_obj_new(struct node_data);
  if (!n) return 101;
  n->key = 3;
  bpf_spin_lock(&v->lock);
  bpf_rbtree_add(&v->root, &n->node, less);
  n->data = 8;                       /* n is a non-owning reference now */
  bpf_spin_unlock(&v->lock);
  return take_first(v);"""), 1)
    assert theirs == [8]
    assert ours == theirs


def test_the_tree_keeps_its_objects_from_run_to_run():
    # each run adds its run number's key (counting down) and takes the first every
    # third run: the smallest key so far
    ours, theirs = _runs(tc(LOOKUP + """
  bpf_spin_lock(&v->lock);
  __u32 i = v->n++;
  bpf_spin_unlock(&v->lock);
  if (add(v, 100 - i, i)) return 101;
  if (i % 3 != 2) return 200 + i;
  return take_first(v);"""), 9)
    assert theirs == [200, 201, 2, 203, 204, 5, 206, 207, 8]
    assert ours == theirs


@pytest.mark.parametrize("body", [
    # the root's own bytes overwritten
    """*(volatile __u64 *)&v->root = 0x4141414141414141;
  ((volatile __u64 *)&v->root)[1] = 8;
  return take_first(v);""",
    # a node's links overwritten after its add, then the tree drained
    """add(v, 1, 1); add(v, 2, 2);
  struct node_data *n = bpf_obj_new(struct node_data);
  if (!n) return 101;
  n->key = 3;
  bpf_spin_lock(&v->lock);
  bpf_rbtree_add(&v->root, &n->node, less);
  ((volatile __u64 *)&n->node)[0] = 0x4141414141414141;
  ((volatile __u64 *)&n->node)[2] = 8;
  bpf_spin_unlock(&v->lock);
  add(v, 4, 4); add(v, 0, 0);
  take_first(v); take_first(v); take_first(v);
  return take_first(v) + take_first(v) + take_first(v) + take_first(v) + take_first(v);""",
], ids=["root", "node"])
def test_an_unverified_program_that_writes_tree_links_never_leaves_the_arena(body):
    # the kernel refuses such a program; without the verifier the engine still never
    # follows a link out of its own memory (the test fails by crashing the process:
    # what the runs return is not the point)
    o = pyebpf.load(tc(LOOKUP + "  " + body), verify=False)
    try:
        prog = o.program("prog")
        for _ in range(3):
            prog.run(PACKET)
        o.maps["arr"].update(bytes(4), bytes(24))        # and frees what it can
    finally:
        o.close()


# the shape of the tree as bpf_rbtree_root, _left and _right walk it: the keys of its
# top three levels, hashed
SHAPE = """
static __always_inline __u32 shape(struct val *v)
{
  __u32 h = 0;
  bpf_spin_lock(&v->lock);
  struct bpf_rb_node *r = bpf_rbtree_root(&v->root);
  if (r) {
    struct bpf_rb_node *l = bpf_rbtree_left(&v->root, r);
    struct bpf_rb_node *g = bpf_rbtree_right(&v->root, r);
    h = key1(r);
    h = h * 131 + key1(l);
    h = h * 131 + key1(g);
    if (l) {
      h = h * 131 + key1(bpf_rbtree_left(&v->root, l));
      h = h * 131 + key1(bpf_rbtree_right(&v->root, l));
    }
    if (g) {
      h = h * 131 + key1(bpf_rbtree_left(&v->root, g));
      h = h * 131 + key1(bpf_rbtree_right(&v->root, g));
    }
  }
  bpf_spin_unlock(&v->lock);
  return h;
}
"""


def _shape_prog(step: str) -> bytes:
    return compile_object(PRELUDE + SHAPE + 'SEC("tc") int prog(struct __sk_buff *skb) {\n'
                          + LOOKUP + step + "\n  return shape(v);\n}")


def test_the_trees_shape_after_each_add_is_the_kernels():
    # keys in an order that rotates both ways, at every height
    ours, theirs = _runs(_shape_prog("""
  bpf_spin_lock(&v->lock);
  __u32 i = v->n++;
  bpf_spin_unlock(&v->lock);
  if (add(v, (i * 37) % 64, i)) return 1;"""), 40)
    assert ours == theirs
    assert len(set(theirs)) == 10         # the top three levels change ten times


def test_the_trees_shape_after_each_add_and_removal_is_the_kernels():
    # every third run removes the root (a node with two children, mostly), every
    # fourth the first: the erase's rebalancing cases
    ours, theirs = _runs(_shape_prog("""
  bpf_spin_lock(&v->lock);
  __u32 i = v->n++;
  bpf_spin_unlock(&v->lock);
  if (add(v, (i * 23) % 61, i)) return 1;
  if (add(v, (i * 41 + 7) % 59, i)) return 2;
  if (i % 4 == 3) take_first(v);
  if (i % 3 == 2) {
    bpf_spin_lock(&v->lock);
    struct bpf_rb_node *r = bpf_rbtree_root(&v->root);
    if (r) r = bpf_rbtree_remove(&v->root, r);
    bpf_spin_unlock(&v->lock);
    if (r) bpf_obj_drop(container_of(r, struct node_data, node));
  }"""), 60)
    assert ours == theirs
    assert len(set(theirs)) > 20


def test_left_and_right_of_a_node_in_another_tree_are_null():
    ours, theirs = _runs(tc("""
  __u32 k0 = 0, k1 = 1;
  struct val *v = bpf_map_lookup_elem(&arr, &k0);
  struct val *w = bpf_map_lookup_elem(&arr, &k1);
  if (!v || !w) return 100;
  add(v, 1, 1); add(v, 2, 2); add(v, 3, 3);
  add(w, 5, 5);
  bpf_spin_lock(&v->lock);
  struct bpf_rb_node *r = bpf_rbtree_root(&v->root);
  long x = r ? !bpf_rbtree_left(&v->root, r) * 10 + !!bpf_rbtree_right(&v->root, r) : 99;
  bpf_spin_unlock(&v->lock);
  bpf_spin_lock(&w->lock);
  struct bpf_rb_node *s = bpf_rbtree_root(&w->root);
  long y = s ? !!bpf_rbtree_left(&w->root, s) : 99;
  bpf_spin_unlock(&w->lock);
  return x * 100 + y;"""), 1)
    assert theirs == [100]          # v's root (2) has both children, w's root none
    assert ours == theirs


def test_a_refcounted_node_added_to_a_second_tree_is_refused_and_dropped():
    # __bpf_rbtree_add: a node that is in a tree already is -EINVAL, its reference
    # dropped
    ours, theirs = _runs(tc("""
  __u32 k = 0;
  struct rval *v = bpf_map_lookup_elem(&rarr, &k);
  if (!v) return 100;
  struct rnode *n = bpf_obj_new(struct rnode);
  if (!n) return 101;
  n->key = 4;
  struct rnode *m = bpf_refcount_acquire(n);
  bpf_spin_lock(&v->lock);
  int a = bpf_rbtree_add(&v->a, &n->node, rless);
  int b = bpf_rbtree_add(&v->b, &m->node, rless);
  struct bpf_rb_node *f = bpf_rbtree_first(&v->b);
  struct bpf_rb_node *g = bpf_rbtree_first(&v->a);
  long r = (a == 0) + 10 * (b == -22) + 100 * !f +
           (g ? 1000 * container_of(g, struct rnode, node)->key : 0);
  bpf_spin_unlock(&v->lock);
  return r;"""), 1)
    assert theirs == [4111]
    assert ours == theirs


def test_an_update_of_the_element_empties_its_tree():
    # array_map_update_elem: bpf_obj_free_fields of the old value drops the tree's
    # objects
    def update(maps):
        maps["arr"].update(bytes(4), bytes(24))
    ours, theirs = _runs(tc(LOOKUP + """
  long x = take_first(v);
  add(v, 7, 7);
  return x;"""), 3, between=update)
    assert theirs == [0xFFFFFFFF] * 3
    assert ours == theirs


# --- the verifier ---------------------------------------------------------------------

# the kernel's refusals (rbtree_fail.c's and others): the body after LOOKUP, the message
REFUSED = {
    "an add without the lock": ("""
  struct node_data *n = bpf_obj_new(struct node_data);
  if (!n) return 1;
  bpf_rbtree_add(&v->root, &n->node, less);
  return 0;""", "bpf_spin_lock at off=0 must be held for bpf_rb_root"),
    "a first without the lock": ("""
  return bpf_rbtree_first(&v->root) != 0;""",
                                 "bpf_spin_lock at off=0 must be held for bpf_rb_root"),
    "a removed node not dropped": ("""
  bpf_spin_lock(&v->lock);
  struct bpf_rb_node *f = bpf_rbtree_first(&v->root);
  if (!f) { bpf_spin_unlock(&v->lock); return 1; }
  f = bpf_rbtree_remove(&v->root, f);
  bpf_spin_unlock(&v->lock);
  return f != 0;""", "BPF_EXIT instruction in main prog would lead to reference leak"),
    "an object added twice": ("""
  struct node_data *n = bpf_obj_new(struct node_data);
  if (!n) return 1;
  bpf_spin_lock(&v->lock);
  bpf_rbtree_add(&v->root, &n->node, less);
  bpf_rbtree_add(&v->root, &n->node, less);
  bpf_spin_unlock(&v->lock);
  return 0;""", "arg#1 expected pointer to allocated object"),
    "a remove of an added node after the unlock": ("""
  struct node_data *n = bpf_obj_new(struct node_data);
  if (!n) return 1;
  bpf_spin_lock(&v->lock);
  bpf_rbtree_add(&v->root, &n->node, less);
  bpf_spin_unlock(&v->lock);
  bpf_spin_lock(&v->lock);
  struct bpf_rb_node *r = bpf_rbtree_remove(&v->root, &n->node);
  bpf_spin_unlock(&v->lock);
  if (r) bpf_obj_drop(container_of(r, struct node_data, node));
  return 0;""", "bpf_rbtree_remove can only take non-owning or refcounted bpf_rb_node "
                  "pointer"),
    "a removed node used before its NULL check": ("""
  bpf_spin_lock(&v->lock);
  struct bpf_rb_node *f = bpf_rbtree_first(&v->root);
  if (!f) { bpf_spin_unlock(&v->lock); return 1; }
  f = bpf_rbtree_remove(&v->root, f);
  bpf_spin_unlock(&v->lock);
  bpf_obj_drop(container_of(f, struct node_data, node));
  return 0;""", "pointer arithmetic on ptr_or_null_ prohibited, null-check it first"),
    "an add of another struct's node": ("""
  struct other *n = bpf_obj_new(struct other);
  if (!n) return 1;
  bpf_spin_lock(&v->lock);
  bpf_rbtree_add(&v->root, &n->node, less);
  bpf_spin_unlock(&v->lock);
  return 0;""", "operation on bpf_rb_root expects arg#1 bpf_rb_node at offset=16 in "
                  "struct node_data, but arg is at offset=24 in struct other"),
    "an add of the object's start, not its node": ("""
  struct node_data *n = bpf_obj_new(struct node_data);
  if (!n) return 1;
  bpf_spin_lock(&v->lock);
  bpf_rbtree_add(&v->root, (void *)n, less);
  bpf_spin_unlock(&v->lock);
  return 0;""", "bpf_rb_node not found at offset=0"),
    "a load of the root": ("""
  return *(volatile long *)&v->root;""",
                           "bpf_rb_root cannot be accessed directly by load/store"),
    "a write of an object's bpf_rb_node": ("""
  struct node_data *n = bpf_obj_new(struct node_data);
  if (!n) return 1;
  *(volatile long *)&n->node = 1;
  bpf_obj_drop(n);
  return 0;""", "direct access to bpf_rb_node is disallowed"),
    "a first node read after the unlock": ("""
  bpf_spin_lock(&v->lock);
  struct bpf_rb_node *f = bpf_rbtree_first(&v->root);
  bpf_spin_unlock(&v->lock);
  if (!f) return 3;
  return container_of(f, struct node_data, node)->key;""", "invalid mem access 'scalar'"),
    "a list kfunc given the tree's root": ("""
  bpf_spin_lock(&v->lock);
  struct bpf_list_node *l = bpf_list_pop_front((struct bpf_list_head *)&v->root);
  bpf_spin_unlock(&v->lock);
  if (l) bpf_obj_drop(l);
  return 0;""", "bpf_list_head not found at offset=8"),
}


@pytest.mark.parametrize("body, message", REFUSED.values(), ids=REFUSED.keys())
def test_the_verifier_refuses_as_the_kernel_does(body, message):
    ours, theirs = verdicts(tc(LOOKUP + body))
    assert theirs is not None and message in theirs, theirs
    assert ours is not None and theirs in ours, (ours, theirs)


# a tree in global data, as the kernel's selftests keep theirs (the section's map value
# holds the lock and the root)
GLOBAL = """
#define private(name) SEC(".data." #name) __hidden __attribute__((aligned(8)))
private(A) struct bpf_spin_lock glock;
private(A) struct bpf_rb_root groot __contains(node_data, node);
private(A) struct bpf_rb_root groot_array[2] __contains(node_data, node);
"""


def test_a_tree_in_global_data_drains_in_key_order():
    # rbtree_add_nodes and rbtree_first_and_remove, in one
    ours, theirs = _runs(compile_object(PRELUDE + GLOBAL + """
static __always_inline int gadd(struct bpf_rb_root *root, long key)
{
  struct node_data *n = bpf_obj_new(struct node_data);
  if (!n) return 1;
  n->key = key;
  n->data = key;
  bpf_spin_lock(&glock);
  bpf_rbtree_add(root, &n->node, less);
  bpf_spin_unlock(&glock);
  return 0;
}
static __always_inline long gtake(struct bpf_rb_root *root)
{
  bpf_spin_lock(&glock);
  struct bpf_rb_node *f = bpf_rbtree_first(root);
  if (f) f = bpf_rbtree_remove(root, f);
  bpf_spin_unlock(&glock);
  if (!f) return 9;
  long x = container_of(f, struct node_data, node)->data;
  bpf_obj_drop(container_of(f, struct node_data, node));
  return x;
}
SEC("tc") int prog(struct __sk_buff *skb) {
  if (gadd(&groot, 5) || gadd(&groot, 1) || gadd(&groot, 3)) return 1;
  if (gadd(&groot_array[1], 4) || gadd(&groot_array[0], 2)) return 2;
  long r = gtake(&groot);
  r = r * 10 + gtake(&groot);
  r = r * 10 + gtake(&groot_array[1]);
  r = r * 10 + gtake(&groot);
  r = r * 10 + gtake(&groot_array[1]);
  return r;
}"""), 2)
    assert theirs == [13459, 13459]       # groot_array[0] keeps its 2s
    assert ours == theirs


def test_objects_kept_in_a_stack_array_go_to_the_trees_of_a_root_array():
    # rbtree_add_and_remove_array: the error path tests objects already known not NULL
    # (reg_not_null: an allocated object's pointer is trusted), so it drops them all
    ours, theirs = _runs(compile_object(PRELUDE + GLOBAL + """
private(A) struct bpf_rb_root groot_array_one[1] __contains(node_data, node);
SEC("tc") int prog(struct __sk_buff *skb) {
  struct bpf_rb_node *res1 = NULL, *res2 = NULL, *res3 = NULL;
  struct node_data *nodes[3][2] = {{NULL, NULL}, {NULL, NULL}, {NULL, NULL}};
  struct node_data *n;
  long k1 = -1, k2 = -1, k3 = -1;
  int i, j;

  for (i = 0; i < 3; i++) {
    for (j = 0; j < 2; j++) {
      nodes[i][j] = bpf_obj_new(typeof(*nodes[i][j]));
      if (!nodes[i][j])
        goto err_out;
      nodes[i][j]->key = i * 2 + j;
    }
  }
  bpf_spin_lock(&glock);
  for (i = 0; i < 2; i++)
    for (j = 0; j < 2; j++)
      bpf_rbtree_add(&groot_array[i], &nodes[i][j]->node, less);
  for (j = 0; j < 2; j++)
    bpf_rbtree_add(&groot_array_one[0], &nodes[2][j]->node, less);
  res1 = bpf_rbtree_remove(&groot_array[0], &nodes[0][0]->node);
  res2 = bpf_rbtree_remove(&groot_array[1], &nodes[1][0]->node);
  res3 = bpf_rbtree_remove(&groot_array_one[0], &nodes[2][0]->node);
  bpf_spin_unlock(&glock);
  if (res1) { n = container_of(res1, struct node_data, node); k1 = n->key; bpf_obj_drop(n); }
  if (res2) { n = container_of(res2, struct node_data, node); k2 = n->key; bpf_obj_drop(n); }
  if (res3) { n = container_of(res3, struct node_data, node); k3 = n->key; bpf_obj_drop(n); }
  if (k1 != 0 || k2 != 2 || k3 != 4)
    return 2;
  return 0;
err_out:
  for (i = 0; i < 3; i++)
    for (j = 0; j < 2; j++)
      if (nodes[i][j])
        bpf_obj_drop(nodes[i][j]);
  return 1;
}"""), 2)
    assert theirs == [0, 0]
    assert ours == theirs


def test_a_tree_in_an_inner_map_drains_in_key_order():
    # linked_list's inner_map_* shape: the value holding the lock and the root is an
    # inner map's, looked up through the map of maps
    ours, theirs = _runs(compile_object(PRELUDE + """
struct inner_arr {
    __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
    __type(key, __u32); __type(value, struct val);
} inner SEC(".maps");
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS); __uint(max_entries, 1);
    __type(key, __u32); __array(values, struct inner_arr);
} outer SEC(".maps") = { .values = { [0] = &inner } };
SEC("tc") int prog(struct __sk_buff *skb) {
  __u32 k = 0;
  void *m = bpf_map_lookup_elem(&outer, &k);
  if (!m) return 100;
  struct val *v = bpf_map_lookup_elem(m, &k);
  if (!v) return 101;
  add(v, 3, 3); add(v, 1, 1); add(v, 2, 2);
""" + _drain(3) + "\n}"), 2)
    assert theirs == [123, 123]
    assert ours == theirs


# less callbacks the kernel refuses: the callback's body (a and b its node pointers)
BAD_LESS = {
    "a remove": ("""
  bpf_rbtree_remove(&groot, a);""", "bpf_rbtree_remove not allowed in rbtree cb"),
    "an unlock": ("""
  bpf_spin_unlock(&glock);""", "can't spin_{lock,unlock} in rbtree cb"),
    "a node dropped": ("""
  bpf_obj_drop(container_of(a, struct node_data, node));""",
                       "function calls are not allowed while holding a lock"),
}


@pytest.mark.parametrize("body, message", BAD_LESS.values(), ids=BAD_LESS.keys())
def test_a_less_callback_is_verified_as_the_kernel_verifies_it(body, message):
    src = PRELUDE + GLOBAL + """
static bool bad_less(struct bpf_rb_node *a, const struct bpf_rb_node *b)
{""" + body + """
  return container_of(a, struct node_data, node)->key <
         container_of(b, struct node_data, node)->key;
}
SEC("tc") int prog(struct __sk_buff *skb) {
  struct node_data *n = bpf_obj_new(struct node_data);
  if (!n) return 1;
  bpf_spin_lock(&glock);
  bpf_rbtree_add(&groot, &n->node, bad_less);
  bpf_spin_unlock(&glock);
  return 0;
}"""
    ours, theirs = verdicts(compile_object(src))
    assert theirs is not None and message in theirs, theirs
    assert ours is not None and theirs in ours, (ours, theirs)


def test_a_less_callback_returning_out_of_0_1_is_refused_as_the_kernel_refuses_it():
    # set_rbtree_add_callback_state's callback_ret_range: a bool function cannot
    # return 2, a long one passed for it does
    ours, theirs = verdicts(compile_object(PRELUDE + GLOBAL + """
static long two_less(struct bpf_rb_node *a, const struct bpf_rb_node *b)
{
  return 2;
}
typedef bool (*less_fn)(struct bpf_rb_node *, const struct bpf_rb_node *);
SEC("tc") int prog(struct __sk_buff *skb) {
  struct node_data *n = bpf_obj_new(struct node_data);
  if (!n) return 1;
  bpf_spin_lock(&glock);
  bpf_rbtree_add(&groot, &n->node, (less_fn)two_less);
  bpf_spin_unlock(&glock);
  return 0;
}"""))
    message = "At callback return the register R0 has smin=2 smax=2 should have been in [0, 1]"
    assert theirs is not None and message in theirs, theirs
    assert ours is not None and theirs in ours, (ours, theirs)


@pytest.mark.parametrize("prog_type, message", [
    ("socket_filter", "socket filter progs cannot use bpf_spin_lock yet"),
    ("sched_act", "calling kernel function bpf_rbtree_first is not allowed"),
])
def test_the_rbtree_kfuncs_are_for_sched_cls_only(prog_type, message):
    ours, theirs = verdicts(tc(LOOKUP + "  return take_first(v);"), prog_type)
    assert theirs is not None and message in theirs, theirs
    assert ours is not None and theirs in ours, (ours, theirs)
