"""The special fields of a map value: the ``struct bpf_spin_lock``,
``struct bpf_res_spin_lock``, ``struct bpf_timer``, ``struct bpf_wq`` and
``struct bpf_task_work``
its BTF type holds, found as the kernel's ``btf_parse_fields`` finds them
(``kernel/bpf/btf.c``): by struct name, in the value's members and the members of the
structs and unions nested in it, at most one of each."""
from __future__ import annotations

import errno
from dataclasses import dataclass, replace

from .. import isa
from ..errors import MapError
from .types import Kind, Type

SPIN_LOCK, TIMER, WQ = "bpf_spin_lock", "bpf_timer", "bpf_wq"
TASK_WORK = "bpf_task_work"
RES_SPIN_LOCK = "bpf_res_spin_lock"
# size and alignment of each (btf_get_field_type)
_SHAPES = {SPIN_LOCK: (isa.SIZEOF_BPF_SPIN_LOCK, 4), TIMER: (isa.SIZEOF_BPF_TIMER, 8),
           WQ: (isa.SIZEOF_BPF_WQ, 8), TASK_WORK: (isa.SIZEOF_BPF_TASK_WORK, 8),
           RES_SPIN_LOCK: (isa.SIZEOF_BPF_RES_SPIN_LOCK, 4)}
_MAX_NESTING = 32


def special_fields(value_type: Type | None) -> dict[str, int]:
    """{field name: byte offset} of the special fields in ``value_type``; MapError
    E2BIG for a second one of a kind, EINVAL for one in an array (the kernel's
    refusals at BPF_MAP_CREATE)."""
    found: dict[str, int] = {}
    if value_type is not None:
        _walk(value_type.resolve(), 0, found, 0)
    return found


def _members(t: Type, base: int):
    """(type id, byte offset, the (owner id, component index) a decl tag of it names,
    name) of each member of a struct or union, or each variable of a DATASEC (global
    data: btf_find_datasec_var; a variable's tags are the VAR's, component -1)."""
    if t.kind == Kind.DATASEC:
        for v in t.vars:
            var = t.btf.types[v.type_id]
            yield var.type_id, base + v.offset, (var.id, -1), var.name
    elif t.kind in (Kind.STRUCT, Kind.UNION):
        for i, m in enumerate(t.members):
            yield m.type_id, base + m.bit_offset // 8, (t.id, i), m.name


def _walk(t: Type, base: int, found: dict, depth: int) -> None:
    if depth > _MAX_NESTING:
        return
    for type_id, off, _tag, _name in _members(t, base):
        mt = t.btf.type(type_id, t).resolve()
        nelems = 1
        while mt.kind == Kind.ARRAY:
            nelems *= mt.nelems
            mt = mt.target.resolve()
        if mt.kind == Kind.STRUCT and mt.name in _SHAPES:
            size, align = _SHAPES[mt.name]
            if mt.size != size or off % align:
                continue        # btf_find_field_one ignores a misplaced or resized one
            if mt.name in found:
                raise MapError(errno.E2BIG, f"the map value holds more than one struct "
                                            f"{mt.name}")
            if nelems != 1:
                raise MapError(errno.EINVAL, f"the map value holds an array of struct "
                                             f"{mt.name}")
            found[mt.name] = off
        elif mt.kind in (Kind.STRUCT, Kind.UNION):
            step = mt.size
            for i in range(nelems):
                _walk(mt, off + i * step, found, depth + 1)


# the special fields of a struct a program allocates (btf_parse_struct_metas): the
# kernel's btf_field_type_name for each, and its size
_OBJECT_SHAPES = {SPIN_LOCK: 4, "bpf_res_spin_lock": 8,
                  "bpf_list_head": isa.SIZEOF_BPF_LIST_HEAD,
                  "bpf_list_node": isa.SIZEOF_BPF_LIST_NODE, "bpf_rb_root": isa.SIZEOF_BPF_RB_ROOT,
                  "bpf_rb_node": isa.SIZEOF_BPF_RB_NODE, "bpf_refcount": 4}
KPTR_TAGS = {"kptr": "kptr", "kptr_untrusted": "kptr", "percpu_kptr": "percpu_kptr"}


def object_fields(struct: Type) -> list[tuple[str, int, int]]:
    """(field kind name, byte offset, size) of each of the special fields of a struct of a
    program's own BTF, as ``btf_parse_struct_metas`` finds them (members and nested
    structs; a pointer member tagged ``__kptr`` and the like is a kptr field)."""
    found: list[tuple[str, int, int]] = []
    _walk_object(struct.resolve(), 0, found, 0)
    return found


def _walk_object(t: Type, base: int, found: list, depth: int) -> None:
    if t.kind not in (Kind.STRUCT, Kind.UNION) or depth > _MAX_NESTING:
        return
    for m in t.members:
        mt = t.btf.type(m.type_id, t).resolve()
        off = base + m.bit_offset // 8
        if mt.kind == Kind.PTR:
            tag = t.btf.type(mt.type_id, mt)
            if tag.kind == Kind.TYPE_TAG and tag.name in KPTR_TAGS:
                found.append((KPTR_TAGS[tag.name], off, 8))
        elif mt.kind == Kind.STRUCT and mt.name in _OBJECT_SHAPES:
            found.append((mt.name, off, _OBJECT_SHAPES[mt.name]))
        elif mt.kind in (Kind.STRUCT, Kind.UNION):
            _walk_object(mt, off, found, depth + 1)


@dataclass(frozen=True)
class Kptr:
    """A kptr field of a map value: its offset, its tag (``kptr``: referenced,
    ``kptr_untrusted``, ``percpu_kptr``) and the struct it points at: the kernel's (of
    the target BTF, ``kernel`` true) when the kernel has a struct of that name, as
    ``btf_parse_kptr`` looks it up first, else the program's."""
    off: int
    tag: str
    target: Type
    kernel: bool = False

    @property
    def kind_name(self) -> str:
        """btf_field_type_name."""
        return KPTR_TAGS[self.tag]


def full_type(t: Type) -> Type:
    """``t``, or for a forward declaration the one struct (union) of its name the BTF
    defines, as libbpf's BTF dedup resolves it (btf_dedup_resolve_fwds)."""
    if t.kind != Kind.FWD:
        return t
    kind = Kind.UNION if t.kind_flag else Kind.STRUCT
    found = t.btf.by_name(t.name, kind)
    return found[0] if len(found) == 1 else t


def kptr_fields(value_type: Type | None) -> list[Kptr]:
    """The kptr fields of a map value, by offset, as ``btf_find_kptr`` finds them: a
    pointer member (or array element) whose pointee is one ``type_tag`` naming a kptr
    kind in front of a struct the BTF defines (the kernel ignores one to a struct only
    declared); MapError EINVAL for another tag or a second tag, E2BIG past
    BTF_FIELDS_MAX fields."""
    found: list[Kptr] = []
    if value_type is not None:
        _walk_kptrs(value_type.resolve(), 0, found, 0)
    if len(found) > isa.BTF_FIELDS_MAX:
        raise MapError(errno.E2BIG, f"the map value holds {len(found)} kptr fields, more "
                                    f"than {isa.BTF_FIELDS_MAX}")
    return found


def _kernel_struct(name: str) -> Type | None:
    """The target BTF's struct ``name`` (bpf_find_btf_id), or None."""
    from .relo import target_btf
    found = target_btf().by_name(name, Kind.STRUCT)
    return found[0] if found else None


def _walk_kptrs(t: Type, base: int, found: list, depth: int) -> None:
    if t.kind not in (Kind.STRUCT, Kind.UNION) or depth > _MAX_NESTING:
        return
    for m in t.members:
        mt = t.btf.type(m.type_id, t)
        if mt.kind == Kind.VOLATILE:
            mt = mt.target
        off = base + m.bit_offset // 8
        nelems = 1
        while mt.kind == Kind.ARRAY:
            nelems *= mt.nelems
            mt = mt.target
        if mt.kind == Kind.PTR:
            tag = mt.target
            if tag.kind != Kind.TYPE_TAG or tag.kind_flag:
                continue
            if tag.name not in KPTR_TAGS:
                # another tag (__user, __rcu, ...) makes no field: 6.18 creates the map
                # (checked with libbpf, tests/test_btf.py's value holds an __user pointer)
                continue
            target = full_type(tag.target.resolve())
            if tag.target.kind == Kind.TYPE_TAG:
                raise MapError(errno.EINVAL, f"the map value's member {m.name} is a "
                                             f"pointer tagged {tag.name!r} and again")
            if target.kind != Kind.STRUCT or off % 8:
                continue        # a kptr to a struct the BTF only declares: no field
            kernel = _kernel_struct(target.name)
            found.extend(Kptr(off + 8 * i, tag.name, kernel or target, kernel is not None)
                         for i in range(nelems))
        else:
            mt = mt.resolve()
            if mt.kind in (Kind.STRUCT, Kind.UNION) and mt.name not in _SHAPES:
                for i in range(nelems):
                    _walk_kptrs(mt, off + i * mt.size, found, depth + 1)


# graph roots (btf_find_graph_root, btf_parse_graph_root): a root's struct, the node
# struct its values hold it by, and that node's alignment
LIST_HEAD, LIST_NODE = "bpf_list_head", "bpf_list_node"
RB_ROOT, RB_NODE = "bpf_rb_root", "bpf_rb_node"
_GRAPH_ROOTS = {LIST_HEAD: (LIST_NODE, isa.SIZEOF_BPF_LIST_HEAD, 8),
                RB_ROOT: (RB_NODE, isa.SIZEOF_BPF_RB_ROOT, 8)}
GRAPH_ROOT_SIZES = {k: v[1] for k, v in _GRAPH_ROOTS.items()}
_CONTAINS = "contains:"


@dataclass(frozen=True)
class GraphRoot:
    """A ``struct bpf_list_head`` (``struct bpf_rb_root``) of a map value: its offset,
    its kind, the struct its ``__contains(type, field)`` tag says the list (tree) holds,
    and the offset of that struct's ``struct bpf_list_node`` (``bpf_rb_node``) member
    that links it."""
    off: int
    kind: str
    value: Type
    node_off: int


def graph_roots(value_type: Type | None) -> list[GraphRoot]:
    """The graph roots of a map value, by offset, as ``btf_parse_fields`` finds them (a
    member of the root struct's size and alignment, in the value or a struct nested in
    it); MapError EINVAL for a root without a ``contains:`` tag or whose node member is
    missing its type, ENOENT for a tag naming a struct or a member the BTF lacks."""
    found: list[GraphRoot] = []
    if value_type is not None:
        _walk_roots(value_type.resolve(), 0, found, 0)
    return found


def _walk_roots(t: Type, base: int, found: list, depth: int) -> None:
    if depth > _MAX_NESTING:
        return
    for type_id, off, tag, name in _members(t, base):
        mt = t.btf.type(type_id, t).resolve()
        nelems = 1
        while mt.kind == Kind.ARRAY:      # an array of roots: each element one
            nelems *= mt.nelems
            mt = mt.target.resolve()
        if mt.kind == Kind.STRUCT and mt.name in _GRAPH_ROOTS:
            node, size, align = _GRAPH_ROOTS[mt.name]
            if mt.size != size or off % align:
                continue        # btf_find_field_one ignores a misplaced or resized one
            root = _parse_root(t, tag, name, off, mt.name, node)
            found.extend(replace(root, off=off + k * size) for k in range(nelems))
        elif mt.kind in (Kind.STRUCT, Kind.UNION) and mt.name not in _SHAPES and nelems == 1:
            _walk_roots(mt, off, found, depth + 1)


def _parse_root(owner: Type, tag: tuple, member: str, off: int, kind: str,
                node: str) -> GraphRoot:
    tags = [d.name[len(_CONTAINS):] for d in owner.btf.types
            if d.kind == Kind.DECL_TAG and (d.type_id, d.component_idx) == tag and
            d.name.startswith(_CONTAINS)]
    if not tags or ":" not in tags[0]:
        raise MapError(errno.EINVAL, f"the map value's {kind} {member} has no "
                                     f"__contains(type, field) tag")
    name, field = tags[0].split(":", 1)
    structs = owner.btf.by_name(name, Kind.STRUCT)
    if not structs:
        raise MapError(errno.ENOENT, f"the map value's {kind} {member} contains struct "
                                     f"{name}, which the BTF does not define")
    value = structs[0]
    if not field:
        raise MapError(errno.EINVAL, f"the map value's {kind} {member} names no member")
    members = [m for m in value.members if m.name == field]
    if not members:
        raise MapError(errno.ENOENT, f"the map value's {kind} {member} contains struct "
                                     f"{name} by member {field}, which it lacks")
    if len(members) > 1:
        raise MapError(errno.EINVAL, f"struct {name} has two members called {field}")
    mt = value.btf.type(members[0].type_id, value)
    node_off = members[0].bit_offset // 8
    if mt.kind != Kind.STRUCT or mt.name != node or members[0].bit_offset % 8 or \
            node_off % _GRAPH_ROOTS[kind][2]:
        raise MapError(errno.EINVAL, f"struct {name}'s member {field} is no struct {node}")
    return GraphRoot(off, kind, value, node_off)


# btf_parse_struct_metas: a struct of the program's BTF with a direct member of one of
# these structs (or a kptr) is one the kernel keeps a record of for bpf_obj_new
_META_MEMBERS = ("bpf_spin_lock", "bpf_list_head", "bpf_list_node", "bpf_rb_root",
                 "bpf_rb_node", "bpf_refcount")


def _struct_metas(btf) -> dict[int, list[tuple[str, int, int]]]:
    """{type id: its object_fields} of the structs btf_parse_struct_metas keeps."""
    ids = set()
    for name in _META_MEMBERS:
        found = btf.by_name(name, Kind.STRUCT)
        if found:
            ids.add(min(t.id for t in found))      # btf_find_by_name_kind: the first
    for t in btf.types:
        if t.kind == Kind.PTR and 0 < t.type_id < len(btf.types):
            tag = btf.types[t.type_id]
            if tag.kind == Kind.TYPE_TAG and tag.name in KPTR_TAGS:
                ids.add(t.id)                       # btf_find_kptr
    return {t.id: object_fields(t) for t in btf.types
            if t.kind == Kind.STRUCT and any(m.type_id in ids for m in t.members)}


def struct_meta_error(btf) -> MapError | None:
    """What the kernel refuses the program's BTF for among its struct metas
    (btf_parse_struct_metas): a struct holding a bpf_list_head or bpf_rb_root without a
    bpf_spin_lock, or both a bpf_list_node and a bpf_rb_node without a bpf_refcount
    (btf_parse_fields: EINVAL), or a root whose __contains tag does not parse
    (btf_parse_graph_root: graph_roots' error); a graph node whose graph root holds a
    struct that is a graph root too (btf_check_and_fixup_fields: ELOOP, ownership could
    form a cycle); None when there is nothing to refuse."""
    metas = _struct_metas(btf)
    roots, nodes = {LIST_HEAD, RB_ROOT}, {LIST_NODE, RB_NODE}
    for type_id, fields in metas.items():
        kinds = {kind for kind, _, _ in fields}
        name = btf.types[type_id].name
        if kinds & roots and SPIN_LOCK not in kinds:
            root = next(kind for kind, _, _ in fields if kind in roots)
            return MapError(errno.EINVAL, f"struct {name} holds a {root} but no "
                                          f"bpf_spin_lock (EINVAL)")
        if nodes <= kinds and "bpf_refcount" not in kinds:
            return MapError(errno.EINVAL, f"struct {name} is a node of a list and of a "
                                          f"tree without a bpf_refcount (EINVAL)")
        if kinds & roots:
            try:
                graph_roots(btf.types[type_id])
            except MapError as exc:
                return exc
    for type_id, fields in metas.items():
        kinds = {kind for kind, _, _ in fields}
        if not kinds & roots or not kinds & nodes:
            continue
        for g in graph_roots(btf.types[type_id]):
            if any(kind in roots for kind, _, _ in metas.get(g.value.id, ())):
                return MapError(errno.ELOOP, f"struct {btf.types[type_id].name} is a "
                                             f"graph node whose graph root holds a struct "
                                             f"that is a graph root too: ownership could "
                                             f"form a cycle (ELOOP)")
    return None


def has_special_fields(value_type: Type | None) -> bool:
    """Whether the value holds a field the kernel finds through the map's BTF (a
    bpf_spin_lock, bpf_timer, kptr, ...): a map whose value does is created with its BTF
    (pyebpf.kernel.load_object, and the type ids pyebpf.load gives the map).  True for
    one the kernel refuses: it is asked all the same."""
    try:
        return bool(special_fields(value_type) or kptr_fields(value_type))
    except MapError:
        return True
