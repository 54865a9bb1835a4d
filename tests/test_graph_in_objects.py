"""Graph roots and locks inside allocated objects: a struct made with ``bpf_obj_new``
holding a ``bpf_list_head`` (``bpf_rb_root``) and the ``bpf_spin_lock`` guarding it,
lists of objects that themselves hold lists (the selftests' linked_list.c
``list_in_list``, local_kptr_stash.c ``stash_local_with_root`` shapes), against the
kernel: what SCHED_CLS programs compute with them run after run (the object kept in a
map's kptr between runs), that dropping an object drops what its lists and trees hold
(``bpf_obj_free_fields``: no object left behind in the arena), and the verifier's
refusals in its words."""
from __future__ import annotations

import pytest

import pyebpf

from bpfc import compile_object
from objdiff import program_retvals, verdicts

PRELUDE = r"""
#include <stdbool.h>
#include <bpf/bpf_core_read.h>
struct bpf_list_head { __u64 __opaque[2]; } __attribute__((aligned(8)));
struct bpf_list_node { __u64 __opaque[3]; } __attribute__((aligned(8)));
struct bpf_rb_root { __u64 __opaque[2]; } __attribute__((aligned(8)));
struct bpf_rb_node { __u64 __opaque[4]; } __attribute__((aligned(8)));
extern void *bpf_obj_new_impl(__u64 local_type_id, void *meta) __ksym;
#define bpf_obj_new(type) ((type *)bpf_obj_new_impl(bpf_core_type_id_local(type), NULL))
extern void bpf_obj_drop_impl(void *kptr, void *meta) __ksym;
#define bpf_obj_drop(kptr) bpf_obj_drop_impl(kptr, NULL)
extern int bpf_list_push_front_impl(struct bpf_list_head *head,
                                    struct bpf_list_node *node, void *meta, __u64 off) __ksym;
#define bpf_list_push_front(head, node) bpf_list_push_front_impl(head, node, NULL, 0)
extern int bpf_list_push_back_impl(struct bpf_list_head *head,
                                   struct bpf_list_node *node, void *meta, __u64 off) __ksym;
#define bpf_list_push_back(head, node) bpf_list_push_back_impl(head, node, NULL, 0)
extern struct bpf_list_node *bpf_list_pop_front(struct bpf_list_head *head) __ksym;
extern struct bpf_list_node *bpf_list_front(struct bpf_list_head *head) __ksym;
extern struct bpf_list_node *bpf_list_back(struct bpf_list_head *head) __ksym;
extern int bpf_rbtree_add_impl(struct bpf_rb_root *root, struct bpf_rb_node *node,
                               bool (less)(struct bpf_rb_node *a, const struct bpf_rb_node *b),
                               void *meta, __u64 off) __ksym;
#define bpf_rbtree_add(root, node, less) bpf_rbtree_add_impl(root, node, less, NULL, 0)
extern struct bpf_rb_node *bpf_rbtree_first(struct bpf_rb_root *root) __ksym;
extern struct bpf_rb_node *bpf_rbtree_remove(struct bpf_rb_root *root,
                                             struct bpf_rb_node *node) __ksym;
#define __contains(name, node) __attribute__((btf_decl_tag("contains:" #name ":" #node)))
#define __kptr __attribute__((btf_type_tag("kptr")))
struct bpf_res_spin_lock { __u32 val; };
extern int bpf_res_spin_lock(struct bpf_res_spin_lock *lock) __ksym;
extern void bpf_res_spin_unlock(struct bpf_res_spin_lock *lock) __ksym;

/* linked_list.h's shapes: a bar in a foo's list, a foo in the map value's list */
struct bar { struct bpf_list_node node; long data; };
struct foo {
    struct bpf_list_node node;
    struct bpf_list_head head __contains(bar, node);
    struct bpf_spin_lock lock;
    long data;
    struct bpf_list_node node2;
};
struct map_value {
    struct bpf_spin_lock lock;
    int data;
    struct bpf_list_head head __contains(foo, node2);
};
/* local_kptr_stash.c's: an object holding a tree, kept in a map value's kptr */
struct node_data { long key; struct bpf_rb_node node; };
struct local_with_root {
    long key;
    struct bpf_spin_lock l;
    struct bpf_rb_root r __contains(node_data, node);
};
struct stash { long runs; struct foo __kptr *f; struct local_with_root __kptr *t; };
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
    __type(key, int); __type(value, struct map_value);
} array_map SEC(".maps");
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
    __type(key, int); __type(value, struct stash);
} stashes SEC(".maps");
/* the structs a __contains tag or a kptr names must be in the BTF */
struct bar *just_here_for_btf1;
struct foo *just_here_for_btf2;
struct node_data *just_here_for_btf3;
struct local_with_root *just_here_for_btf4;
struct counter { long n; struct bpf_res_spin_lock l; };
struct counter *just_here_for_btf7;

static bool less(struct bpf_rb_node *a, const struct bpf_rb_node *b)
{
  return container_of(a, struct node_data, node)->key <
         container_of(b, struct node_data, node)->key;
}
/* a new bar holding x, pushed to the back of f's list under f's lock */
static __always_inline int push_bar(struct foo *f, long x)
{
  struct bar *b = bpf_obj_new(struct bar);
  if (!b) return -2;
  b->data = x;
  bpf_spin_lock(&f->lock);
  int r = bpf_list_push_back(&f->head, &b->node);
  bpf_spin_unlock(&f->lock);
  return r;
}
/* the first bar of f's list taken out: its data, or -1 for an empty list */
static __always_inline long pop_bar(struct foo *f)
{
  bpf_spin_lock(&f->lock);
  struct bpf_list_node *n = bpf_list_pop_front(&f->head);
  bpf_spin_unlock(&f->lock);
  if (!n) return -1;
  struct bar *b = container_of(n, struct bar, node);
  long x = b->data;
  bpf_obj_drop(b);
  return x;
}
"""
PACKET = bytes(range(64))
STASH = """
  int k = 0;
  struct stash *s = bpf_map_lookup_elem(&stashes, &k);
  if (!s) return 100;
"""


def tc(body: str) -> bytes:
    return compile_object(PRELUDE + 'SEC("tc") int prog(struct __sk_buff *skb) {\n' + body
                          + "\n}")


def test_a_list_in_an_object_is_pushed_and_popped_in_order():
    ours, theirs = program_retvals(tc("""
  struct foo *f = bpf_obj_new(struct foo);
  if (!f) return 2;
  for (int i = 1; i <= 3; i++)
    if (push_bar(f, i * 10)) { bpf_obj_drop(f); return 3; }
  long a = pop_bar(f), b = pop_bar(f), c = pop_bar(f), d = pop_bar(f);
  bpf_obj_drop(f);
  return a * 1000000 + b * 10000 + c * 100 + (d + 1);"""), PACKET, runs=2)
    assert theirs == [10203000, 10203000]
    assert ours == theirs


def test_an_object_keeps_its_list_between_runs_in_a_map_kptr():
    # each run takes the foo out of the map (a new one the first time: bpf_obj_new
    # zeroes only its special fields, and none is read but its list), adds a bar
    # numbered by the run, reads the
    # list's first and last bars under the foo's lock and stores the foo back
    ours, theirs = program_retvals(tc(STASH + """
  struct foo *f = bpf_kptr_xchg(&s->f, NULL);
  if (!f) {
    f = bpf_obj_new(struct foo);
    if (!f) return 2;
  }
  long n = ++s->runs;
  if (push_bar(f, n)) { bpf_obj_drop(f); return 3; }
  long r = 0;
  bpf_spin_lock(&f->lock);
  struct bpf_list_node *first = bpf_list_front(&f->head);
  struct bpf_list_node *last = bpf_list_back(&f->head);
  if (first && last)
    r = container_of(first, struct bar, node)->data * 100 +
        container_of(last, struct bar, node)->data;
  bpf_spin_unlock(&f->lock);
  f = bpf_kptr_xchg(&s->f, f);
  if (f) { bpf_obj_drop(f); return 4; }
  return r;"""), PACKET, runs=4)
    assert theirs == [101, 102, 103, 104]
    assert ours == theirs


def test_an_object_with_a_list_goes_into_a_list_and_comes_back_with_it():
    # linked_list.c's list_in_list: bars in a foo, the foo in the map value's list
    ours, theirs = program_retvals(tc("""
  struct map_value *v = bpf_map_lookup_elem(&array_map, &(int){0});
  if (!v) return 1;
  struct foo *f = bpf_obj_new(struct foo);
  if (!f) return 2;
  for (int i = 0; i < 4; i++)
    if (push_bar(f, i)) { bpf_obj_drop(f); return 3; }
  bpf_spin_lock(&v->lock);
  f->data = 42;
  bpf_list_push_front(&v->head, &f->node2);
  bpf_spin_unlock(&v->lock);
  bpf_spin_lock(&v->lock);
  struct bpf_list_node *n = bpf_list_pop_front(&v->head);
  bpf_spin_unlock(&v->lock);
  if (!n) return 4;
  f = container_of(n, struct foo, node2);
  long r = f->data;
  for (int i = 0; i < 5; i++)
    r = r * 10 + (pop_bar(f) + 1);
  bpf_obj_drop(f);
  return r;"""), PACKET, runs=2)
    assert theirs == [4212340, 4212340]
    assert ours == theirs


# each run: a foo holding four bars, dropped (or left in the map value's list, then the
# list emptied by a map update): more objects than the arena holds if any stayed
FOO_OF_FOUR = """
  struct foo *f = bpf_obj_new(struct foo);
  if (!f) return 2;
  for (int i = 0; i < 4; i++)
    if (push_bar(f, i)) { bpf_obj_drop(f); return 3; }
"""


def _no_object_left_behind(data: bytes, between=None, retval: int = 5) -> None:
    obj = pyebpf.load(data)
    try:
        prog = obj.program("prog")
        for _ in range(60_000):
            assert prog.run(PACKET).retval == retval
            if between is not None:
                between(obj.maps)
    finally:
        obj.close()


def test_an_object_dropped_drops_the_objects_in_its_list():
    data = tc(FOO_OF_FOUR + """
  bpf_obj_drop(f);
  return 5;""")
    ours, theirs = program_retvals(data, PACKET, runs=2)
    assert theirs == [5, 5]
    assert ours == theirs
    _no_object_left_behind(data)


def test_a_map_update_drops_the_objects_in_the_lists_of_the_objects_in_its_list():
    def clear(maps):
        maps["array_map"].update((0).to_bytes(4, "little"), bytes(24))

    data = tc("""
  struct map_value *v = bpf_map_lookup_elem(&array_map, &(int){0});
  if (!v) return 1;""" + FOO_OF_FOUR + """
  bpf_spin_lock(&v->lock);
  bpf_list_push_front(&v->head, &f->node2);
  bpf_spin_unlock(&v->lock);
  return 5;""")
    ours, theirs = program_retvals(data, PACKET, runs=3, between=clear)
    assert theirs == [5, 5, 5]
    assert ours == theirs
    _no_object_left_behind(data, clear)


ROOTED = STASH + """
  struct local_with_root *res = bpf_obj_new(struct local_with_root);
  if (!res) return 2;
  res->key = 41;
  for (int i = 0; i < 3; i++) {
    struct node_data *n = bpf_obj_new(struct node_data);
    if (!n) { bpf_obj_drop(res); return 3; }
    n->key = (skb->len + i * 7) % 5;
    bpf_spin_lock(&res->l);
    bpf_rbtree_add(&res->r, &n->node, less);
    bpf_spin_unlock(&res->l);
  }
"""


def test_a_tree_in_an_object_stashed_in_a_map_gives_its_first_node_next_run():
    ours, theirs = program_retvals(tc("""
  {
    int k0 = 0;
    struct stash *s0 = bpf_map_lookup_elem(&stashes, &k0);
    if (!s0) return 100;
    struct local_with_root *old = bpf_kptr_xchg(&s0->t, NULL);
    if (old) {
      long r = -1;
      bpf_spin_lock(&old->l);
      struct bpf_rb_node *first = bpf_rbtree_first(&old->r);
      if (first) first = bpf_rbtree_remove(&old->r, first);
      bpf_spin_unlock(&old->l);
      if (first) {
        r = container_of(first, struct node_data, node)->key;
        bpf_obj_drop(container_of(first, struct node_data, node));
      }
      r += old->key * 10;
      bpf_obj_drop(old);
      return r;
    }
  }""" + ROOTED + """
  res = bpf_kptr_xchg(&s->t, res);
  if (res) { bpf_obj_drop(res); return 4; }
  return 0;"""), PACKET, runs=4)
    # skb->len 64: keys 4, 1, 3: the first is 1
    assert theirs == [0, 411, 0, 411]
    assert ours == theirs


def test_an_object_dropped_drops_the_nodes_of_its_tree():
    data = tc(ROOTED + """
  bpf_obj_drop(res);
  return 5;""")
    ours, theirs = program_retvals(data, PACKET, runs=2)
    assert theirs == [5, 5]
    assert ours == theirs
    _no_object_left_behind(data)


RC_PRELUDE = r"""
struct bpf_refcount { __u32 __opaque[1]; } __attribute__((aligned(4)));
extern void *bpf_refcount_acquire_impl(void *kptr, void *meta) __ksym;
#define bpf_refcount_acquire(kptr) bpf_refcount_acquire_impl(kptr, NULL)
struct rnode { struct bpf_list_node node; long data; struct bpf_refcount rc; };
struct rholder {
    struct bpf_spin_lock lock;
    struct bpf_list_head head __contains(rnode, node);
};
struct rnode *just_here_for_btf5;
struct rholder *just_here_for_btf6;
"""


def test_a_refcounted_node_outlives_the_dropped_object_whose_list_held_it():
    # the node's second reference (bpf_refcount_acquire) keeps it when the object
    # holding the list is dropped: the list's reference goes, the node stays readable
    # and writable until its own drop
    data = compile_object(PRELUDE + RC_PRELUDE + """
SEC("tc") int prog(struct __sk_buff *skb) {
  struct rholder *h = bpf_obj_new(struct rholder);
  if (!h) return 2;
  struct rnode *n = bpf_obj_new(struct rnode);
  if (!n) { bpf_obj_drop(h); return 3; }
  n->data = skb->len;
  struct rnode *m = bpf_refcount_acquire(n);
  bpf_spin_lock(&h->lock);
  bpf_list_push_back(&h->head, &n->node);
  bpf_spin_unlock(&h->lock);
  bpf_obj_drop(h);
  m->data += 1;
  long r = m->data;
  bpf_obj_drop(m);
  return r;
}""")
    ours, theirs = program_retvals(data, PACKET, runs=2)
    assert theirs == [65, 65]
    assert ours == theirs
    _no_object_left_behind(data, retval=65)


RES_LOCK_BODY = """
  struct counter *c = bpf_obj_new(struct counter);
  if (!c) return 2;
  c->n = skb->len;
  if (bpf_res_spin_lock(&c->l)) { bpf_obj_drop(c); return 3; }
  bpf_res_spin_unlock(&c->l);
  long r = c->n + 1;
  bpf_obj_drop(c);
  return r;"""


REFUSED = {
    # btf_parse_struct_metas keeps no bpf_res_spin_lock in an object's record
    "an object's bpf_res_spin_lock": (RES_LOCK_BODY, "local 'kptr' has no valid "
                                                     "bpf_res_spin_lock"),
    "an object's list used without its lock": ("""
  struct foo *f = bpf_obj_new(struct foo);
  if (!f) return 2;
  struct bpf_list_node *n = bpf_list_pop_front(&f->head);
  if (n) bpf_obj_drop(container_of(n, struct bar, node));
  bpf_obj_drop(f);
  return 0;""", "bpf_spin_lock at off=40 must be held for bpf_list_head"),
    "an object's list used under another object's lock": ("""
  struct foo *f = bpf_obj_new(struct foo);
  if (!f) return 2;
  struct foo *g = bpf_obj_new(struct foo);
  if (!g) { bpf_obj_drop(f); return 3; }
  bpf_spin_lock(&g->lock);
  struct bpf_list_node *n = bpf_list_pop_front(&f->head);
  bpf_spin_unlock(&g->lock);
  if (n) bpf_obj_drop(container_of(n, struct bar, node));
  bpf_obj_drop(f);
  bpf_obj_drop(g);
  return 0;""", "bpf_spin_lock at off=40 must be held for bpf_list_head"),
    "an object's list used through a non-owning reference": ("""
  struct map_value *v = bpf_map_lookup_elem(&array_map, &(int){0});
  if (!v) return 1;
  struct foo *f = bpf_obj_new(struct foo);
  if (!f) return 2;
  bpf_spin_lock(&v->lock);
  bpf_list_push_front(&v->head, &f->node2);
  struct bpf_list_node *n = bpf_list_pop_front(&f->head);
  bpf_spin_unlock(&v->lock);
  if (n) bpf_obj_drop(container_of(n, struct bar, node));
  return 0;""", "arg#0 expected pointer to map value or allocated object"),
    "a lock of an object without one": ("""
  struct bar *b = bpf_obj_new(struct bar);
  if (!b) return 2;
  bpf_spin_lock((void *)&b->data);
  bpf_spin_unlock((void *)&b->data);
  bpf_obj_drop(b);
  return 0;""", "local 'kptr' has no valid bpf_spin_lock"),
    "a lock taken at an object's offset that is not its lock": ("""
  struct foo *f = bpf_obj_new(struct foo);
  if (!f) return 2;
  bpf_spin_lock((void *)&f->data);
  bpf_spin_unlock((void *)&f->data);
  bpf_obj_drop(f);
  return 0;""", "off 48 doesn't point to 'struct bpf_spin_lock' that is at 40"),
}


@pytest.mark.parametrize("body, message", REFUSED.values(), ids=REFUSED.keys())
def test_the_verifier_refuses_as_the_kernel_does(body, message):
    ours, theirs = verdicts(tc(body))
    assert theirs is not None and message in theirs, theirs
    assert ours is not None and message in ours, (ours, theirs)


# the object's BTF, refused by the kernel for a struct programs could allocate
# (btf_parse_struct_metas): btf_check_and_fixup_fields lets a struct that is both a
# graph root and a graph node hold only structs that are no roots (ELOOP: ownership
# could form a cycle); btf_parse_fields wants a bpf_refcount in a struct that is a node
# of a list and of a tree (EINVAL)
BAD_BTF = {
    "a list node holding a list of its own struct": ("""
struct loop {
    struct bpf_list_node node;
    struct bpf_spin_lock l;
    struct bpf_list_head head __contains(loop, node);
};
struct loop *just_here_for_btf5;""", "ELOOP"),
    "a list node holding a list of structs that hold lists": ("""
struct inner {
    struct bpf_list_node node;
    struct bpf_spin_lock l;
    struct bpf_list_head head __contains(bar, node);
};
struct middle {
    struct bpf_list_node node;
    struct bpf_spin_lock l;
    struct bpf_list_head head __contains(inner, node);
};
struct middle *just_here_for_btf5;
struct inner *just_here_for_btf6;""", "ELOOP"),
    "a node of a list and of a tree without a bpf_refcount": ("""
struct both { struct bpf_list_node l; struct bpf_rb_node r; long v; };
struct both *just_here_for_btf5;""", "EINVAL"),
}


@pytest.mark.parametrize("decls, name", BAD_BTF.values(), ids=BAD_BTF.keys())
def test_a_struct_the_kernel_refuses_in_the_btf_is_refused_as_it_refuses_it(decls, name):
    data = compile_object(PRELUDE + decls + """
SEC("tc") int prog(struct __sk_buff *skb) { return 0; }""")
    ours, theirs = verdicts(data)
    assert theirs is not None and name in theirs, theirs
    assert ours is not None and f"({name})" in ours, (ours, theirs)


def test_a_root_holding_nodes_that_hold_lists_loads():
    # the kernel's allowed chain: a root that is no node (the map value) holding a
    # root and node (foo) holding nodes only (bar)
    assert verdicts(tc("return 0;")) == (None, None)
