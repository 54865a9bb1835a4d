"""kptr fields of objects a program allocates (``struct outer { struct item __kptr
*inner; }`` made with ``bpf_obj_new``, the selftests' local_kptr_stash.c shape):
``bpf_kptr_xchg`` stores an object in an object the program owns and takes it back,
and dropping the outer object drops what its fields hold (``bpf_obj_free_fields``),
against the kernel: retvals run after run, the verifier's refusals in its words."""
from __future__ import annotations

import pyebpf
import pytest

from bpfc import compile_object
from objdiff import program_retvals, verdicts

PRELUDE = r"""
#include <bpf/bpf_core_read.h>
extern void *bpf_obj_new_impl(__u64 local_type_id, void *meta) __ksym;
#define bpf_obj_new(type) ((type *)bpf_obj_new_impl(bpf_core_type_id_local(type), NULL))
extern void bpf_obj_drop_impl(void *kptr, void *meta) __ksym;
#define bpf_obj_drop(kptr) bpf_obj_drop_impl(kptr, NULL)
#define __kptr __attribute__((btf_type_tag("kptr")))

struct item { long a; int b; };
struct other { long x; };
struct outer { long tag; struct item __kptr *inner; };
struct oval { struct outer __kptr *o; };
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
    __type(key, __u32); __type(value, struct oval);
} oarr SEC(".maps");
/* clang's BTF has a kptr's struct behind the tag only as a declaration: a map of each
   struct makes the object define it, as a program allocating one does */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
    __type(key, __u32); __type(value, struct item);
} items SEC(".maps");
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
    __type(key, __u32); __type(value, struct outer);
} outers SEC(".maps");
"""
PACKET = bytes(range(64))
VALUE = """
  __u32 k = 0;
  struct oval *v = bpf_map_lookup_elem(&oarr, &k);
  if (!v) return 1;
"""
# a new outer object holding a new inner one (skb->len in it), the pair stored in the
# map's kptr
NEW_PAIR = """
  struct outer *o = bpf_obj_new(struct outer);
  if (!o) return 2;
  struct item *i = bpf_obj_new(struct item);
  if (!i) { bpf_obj_drop(o); return 3; }
  i->a = skb->len;
  o->tag = 7;
  i = bpf_kptr_xchg(&o->inner, i);
  if (i) { bpf_obj_drop(i); bpf_obj_drop(o); return 4; }
"""
STASH = NEW_PAIR + """
  o = bpf_kptr_xchg(&v->o, o);
  if (o) { bpf_obj_drop(o); return 6; }
  return 5;
"""


def tc(body: str) -> bytes:
    return compile_object(PRELUDE + 'SEC("tc") int prog(struct __sk_buff *skb) {\n' + body
                          + "\n}")


def test_an_object_stashed_in_an_object_stashed_in_a_map_is_taken_back_out():
    ours, theirs = program_retvals(tc(VALUE + """
  struct outer *t = bpf_kptr_xchg(&v->o, NULL);
  if (t) {
    struct item *ti = bpf_kptr_xchg(&t->inner, NULL);
    long r = t->tag * 100 + (ti ? ti->a : 0);
    if (ti) bpf_obj_drop(ti);
    bpf_obj_drop(t);
    return r;
  }""" + STASH), PACKET, runs=4)
    assert theirs == [5, 764, 5, 764]
    assert ours == theirs


def test_the_outer_object_keeps_what_its_field_holds_between_runs():
    # each run takes the pair out, adds one to the inner object and stores it back
    ours, theirs = program_retvals(tc(VALUE + """
  struct outer *t = bpf_kptr_xchg(&v->o, NULL);
  if (t) {
    struct item *ti = bpf_kptr_xchg(&t->inner, NULL);
    if (!ti) { bpf_obj_drop(t); return 8; }
    ti->a += 1;
    long r = ti->a;
    ti = bpf_kptr_xchg(&t->inner, ti);
    if (ti) bpf_obj_drop(ti);
    t = bpf_kptr_xchg(&v->o, t);
    if (t) bpf_obj_drop(t);
    return r;
  }""" + STASH), PACKET, runs=4)
    assert theirs == [5, 65, 66, 67]
    assert ours == theirs


def test_an_outer_object_dropped_drops_the_object_it_holds():
    data = tc(NEW_PAIR + """
  bpf_obj_drop(o);
  return 5;""")
    ours, theirs = program_retvals(data, PACKET, runs=2)
    assert theirs == [5, 5]
    assert ours == theirs
    # no object is left behind: the arena is not exhausted
    obj = pyebpf.load(data)
    try:
        prog = obj.program("prog")
        assert {prog.run(PACKET).retval for _ in range(150_000)} == {5}
    finally:
        obj.close()


def test_a_map_update_drops_the_stored_object_and_the_one_it_holds():
    def clear(maps):
        maps["oarr"].update(bytes(4), bytes(8))

    data = tc(VALUE + STASH)
    ours, theirs = program_retvals(data, PACKET, runs=3, between=clear)
    assert theirs == [5, 5, 5]
    assert ours == theirs
    obj = pyebpf.load(data)
    try:
        prog = obj.program("prog")
        # more pairs than the arena holds if the inner objects were left behind
        for _ in range(150_000):
            assert prog.run(PACKET).retval == 5
            clear(obj.maps)
    finally:
        obj.close()


REFUSED = {
    "an exchange at an object's field that is no kptr": ("""
  struct outer *o = bpf_obj_new(struct outer);
  if (!o) return 2;
  struct item *i = bpf_kptr_xchg((void *)&o->tag, NULL);
  if (i) bpf_obj_drop(i);
  bpf_obj_drop(o);
  return 0;""", "off=0 doesn't point to kptr"),
    "an exchange in an object without kptrs": ("""
  struct item *o = bpf_obj_new(struct item);
  if (!o) return 2;
  struct item *i = bpf_kptr_xchg((void *)o, NULL);
  if (i) bpf_obj_drop(i);
  bpf_obj_drop(o);
  return 0;""", "R1 has no valid kptr"),
    "an object of another struct exchanged into an object": ("""
  struct outer *o = bpf_obj_new(struct outer);
  if (!o) return 2;
  struct other *n = bpf_obj_new(struct other);
  if (!n) { bpf_obj_drop(o); return 3; }
  struct item *i = bpf_kptr_xchg(&o->inner, (struct item *)n);
  if (i) bpf_obj_drop(i);
  bpf_obj_drop(o);
  return 0;""", "invalid kptr access, R2 type=ptr_other expected=ptr_item"),
    "an object's kptr field read directly": ("""
  struct outer *o = bpf_obj_new(struct outer);
  if (!o) return 2;
  long r = (long)o->inner;
  bpf_obj_drop(o);
  return r;""", "direct access to kptr is disallowed"),
    "an exchange in an object loaded from a map's kptr": (VALUE + """
  struct outer *o = v->o;
  if (!o) return 2;
  struct item *i = bpf_kptr_xchg(&o->inner, NULL);
  if (i) bpf_obj_drop(i);
  return 0;""", "R1 type=rcu_ptr_ expected=map_value, ptr_"),
    "the object taken out of an object kept at exit": ("""
  struct outer *o = bpf_obj_new(struct outer);
  if (!o) return 2;
  struct item *i = bpf_kptr_xchg(&o->inner, NULL);
  bpf_obj_drop(o);
  return i ? 1 : 0;""", "BPF_EXIT instruction in main prog would lead to reference leak"),
    # the call's hidden meta argument is one struct's record (kptr_struct_meta)
    "one bpf_obj_drop call given objects of two structs": ("""
  void *p;
  if (skb->len & 1) p = bpf_obj_new(struct item); else p = bpf_obj_new(struct other);
  if (p) bpf_obj_drop(p);
  return 0;""", "or mark the callee with __attribute__((nomerge))"),
    "one bpf_obj_drop call given an object with kptrs and one without": ("""
  void *p;
  if (skb->len & 1) p = bpf_obj_new(struct item); else p = bpf_obj_new(struct outer);
  if (p) bpf_obj_drop(p);
  return 0;""", "or mark the callee with __attribute__((nomerge))"),
}


@pytest.mark.parametrize("body, message", REFUSED.values(), ids=REFUSED.keys())
def test_the_verifier_refuses_as_the_kernel_does(body, message):
    ours, theirs = verdicts(tc(body))
    assert theirs is not None and message in theirs, theirs
    assert ours is not None and theirs in ours, (ours, theirs)


def test_one_bpf_obj_drop_call_given_objects_of_one_struct_on_two_paths_loads():
    assert verdicts(tc("""
  void *p;
  if (skb->len & 1) p = bpf_obj_new(struct outer); else p = bpf_obj_new(struct outer);
  if (p) bpf_obj_drop(p);
  return 0;""")) == (None, None)
