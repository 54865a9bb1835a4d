"""Every map type against a small Python model of it: random operation sequences give
the same results, errnos and contents (docs/kernel-notes.md, Maps).

Not differential: the kernel's hash order needs BPF_F_ZERO_SEED and its program arrays
need loaded kernel programs; test_maps.py and test_syscall.py hold those against the
kernel, this holds every type (PROG_ARRAY and per-CPU included) against its rules.
"""
import errno

import pytest
from hypothesis import given, settings, strategies as st

import pyebpf
from pyebpf import isa
from pyebpf import Map
from pyebpf.errors import MapError

T = isa.MapType
MAX, NCPU = 4, 3
EINVAL, E2BIG, EEXIST, ENOENT = errno.EINVAL, errno.E2BIG, errno.EEXIST, errno.ENOENT


def _rol(x, k):
    return ((x << k) | (x >> (32 - k))) & 0xFFFFFFFF


def jhash_word(word):
    """The kernel's jhash of one 32-bit word, seed 0."""
    a = b = c = (0xDEADBEEF + 4) & 0xFFFFFFFF
    a = (a + word) & 0xFFFFFFFF
    for x, y, z, r in (("c", "b", "c", 14), ("a", "c", "a", 11), ("b", "a", "b", 25),
                       ("c", "b", "c", 16), ("a", "c", "a", 4), ("b", "a", "b", 14),
                       ("c", "b", "c", 24)):
        v = {"a": a, "b": b, "c": c}
        v[x] = ((v[x] ^ v[y]) - _rol(v[y], r)) & 0xFFFFFFFF
        a, b, c = v["a"], v["b"], v["c"]
    return c


class HashModel:
    """Buckets of keys, newest first; a plain hash relinks a replaced key."""

    def __init__(self, percpu):
        self.percpu, self.values, self.buckets = percpu, {}, [[] for _ in range(MAX)]

    def _bucket(self, key):
        return self.buckets[jhash_word(key) & (MAX - 1)]

    def update(self, key, value, flags):
        if flags > 2:
            return EINVAL
        present = key in self.values
        if not present and flags == 2:
            return ENOENT
        if present and flags == 1:
            return EEXIST
        if not present and len(self.values) == MAX:
            return E2BIG
        if not present or not self.percpu:
            if present:
                self._bucket(key).remove(key)
            self._bucket(key).insert(0, key)
        self.values[key] = value
        return "ok"

    def delete(self, key):
        if key not in self.values:
            return ENOENT
        self._bucket(key).remove(key)
        del self.values[key]
        return "ok"

    def lookup(self, key):
        return self.values.get(key)

    def keys(self):
        return [k for b in self.buckets for k in b]

    def next_key(self, key):
        order = self.keys()
        if key not in self.values:
            return order[0] if order else None
        i = order.index(key) + 1
        return order[i] if i < len(order) else None


class ArrayModel:
    """Every index holds a value (zero at first); a program array's slots start empty."""

    def __init__(self, zero, progs=False):
        self.progs = progs
        self.values = {i: zero for i in range(MAX)}

    def update(self, key, value, flags):
        if flags > 2 or (self.progs and flags):
            return EINVAL
        if key >= MAX:
            return E2BIG
        if flags == 1:
            return EEXIST
        self.values[key] = value
        return "ok"

    def delete(self, key):
        if not self.progs:
            return EINVAL
        if key >= MAX:          # __fd_array_map_delete_elem
            return E2BIG
        if self.values[key] is None:
            return ENOENT
        self.values[key] = None
        return "ok"

    def lookup(self, key):
        return self.values.get(key) if key < MAX else None

    def keys(self):
        return list(range(MAX))

    def next_key(self, key):
        nxt = 0 if key is None or key >= MAX else key + 1
        return nxt if nxt < MAX else None


PROGS = [pyebpf.Program(pyebpf.asm.assemble(f"r0 = {i}\nexit"), "sched_cls") for i in range(2)]


def _kinds():
    word = st.integers(0, 2**32 - 1)
    return {
        "hash": (T.BPF_MAP_TYPE_HASH, lambda: HashModel(False), word),
        "percpu_hash": (T.BPF_MAP_TYPE_PERCPU_HASH, lambda: HashModel(True),
                        st.lists(word, min_size=NCPU, max_size=NCPU)),
        "array": (T.BPF_MAP_TYPE_ARRAY, lambda: ArrayModel(0), word),
        "percpu_array": (T.BPF_MAP_TYPE_PERCPU_ARRAY, lambda: ArrayModel([0] * NCPU),
                         st.lists(word, min_size=NCPU, max_size=NCPU)),
        "prog_array": (T.BPF_MAP_TYPE_PROG_ARRAY, lambda: ArrayModel(None, progs=True),
                       st.integers(0, len(PROGS) - 1)),
    }


KINDS = _kinds()


def _encode(kind, value):
    """A model value as the Map takes and gives it (a program array gives its
    program's id)."""
    if value is None:
        return None
    if kind == T.BPF_MAP_TYPE_PROG_ARRAY:
        return PROGS[value].id.to_bytes(4, "little")
    if isinstance(value, list):
        return [v.to_bytes(4, "little") for v in value]
    return value.to_bytes(4, "little")


def _apply(m, op, key, flags, value):
    try:
        if op == "update":
            m.update(key, PROGS[value] if m.type == T.BPF_MAP_TYPE_PROG_ARRAY else value, flags)
            return "ok"
        if op == "delete":
            m.delete(key)
            return "ok"
        return m.lookup(key) if op == "lookup" else m.next_key(key)
    except MapError as exc:
        return exc.errno


@pytest.mark.parametrize("name", KINDS)
@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(data=st.data())
def test_random_operations_match_the_model_of_the_map_type(name, data):
    kind, make_model, values = KINDS[name]
    model, m = make_model(), Map.create(kind, 4, 4, MAX, ncpu=NCPU)
    ops = data.draw(st.lists(st.tuples(
        st.sampled_from(["update", "update", "delete", "lookup", "next_key"]),
        st.one_of(st.integers(0, 6), st.none()), st.integers(0, 3), values), max_size=40))
    for op, key, flags, value in ops:
        if key is None and op != "next_key":
            key = 0
        kb = None if key is None else key.to_bytes(4, "little")
        if op == "update":
            want = model.update(key, value, flags)
        elif op == "delete":
            want = model.delete(key)
        elif op == "lookup":
            want = _encode(kind, model.lookup(key))
        else:
            nxt = model.next_key(key)
            want = None if nxt is None else nxt.to_bytes(4, "little")
        got = _apply(m, op, kb, flags, _encode(kind, value) if kind != T.BPF_MAP_TYPE_PROG_ARRAY
                     else value)
        assert got == want, f"{op} key {key} flags {flags}"
    assert m.keys() == [k.to_bytes(4, "little") for k in model.keys()]
    assert [m.lookup(k) for k in m.keys()] == [_encode(kind, model.lookup(k)) for k in model.keys()]
