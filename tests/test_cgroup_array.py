"""Cgroup arrays (BPF_MAP_TYPE_CGROUP_ARRAY) and bpf_skb_under_cgroup against the kernel:
the maps BPF_MAP_CREATE makes and refuses, the commands on them, the helper's answers
(an empty slot, an index past the end, the packet socket's cgroup under the root), the
verifier's pairing of map and helper; then the model's cgroup tree (Environment.cgroups)
deciding ancestry."""
from __future__ import annotations

import errno

import pytest

import pyebpf
from pyebpf import Map, asm, isa
from pyebpf.environment import Environment, PacketSocket
from pyebpf.errors import MapError

from cgroup_support import SKB_UNDER_CGROUP, root_cgroup_retval, same_under, under_prog
from recorded_kernel import count_comparison
from mapcheck import created, lookup_prog, outcome, refused_alike, u32

T = isa.MapType
CGROUP_ARRAY, HASH = T.BPF_MAP_TYPE_CGROUP_ARRAY, T.BPF_MAP_TYPE_HASH
FRAME = bytes(range(64))


@pytest.mark.parametrize("key, value, max_entries, flags", [
    (4, 4, 1, 0), (4, 8, 1, 0), (8, 4, 1, 0), (4, 4, 0, 0), (4, 4, 1, isa.BPF_F_NO_PREALLOC),
    (4, 4, 1, isa.BPF_F_NUMA_NODE), (4, 4, 1, isa.BPF_F_RDONLY),
    (4, 4, 1, isa.BPF_F_RDONLY_PROG)],
    ids=["plain", "value-8-bytes", "key-8-bytes", "no-entries", "no-prealloc", "numa-node",
         "rdonly", "rdonly-prog"])
def test_creation_succeeds_and_fails_as_the_kernels(kernel_oracle, key, value, max_entries,
                                                    flags):
    args = (CGROUP_ARRAY, key, value, max_entries, flags)
    count_comparison()
    assert created(Map.create, *args) == created(kernel_oracle.KernelMap, *args)


@pytest.mark.parametrize("op, args", [
    ("lookup", (u32(0),)), ("delete", (u32(0),)), ("delete", (u32(9),)),
    ("next_key", (None,)), ("next_key", (u32(3),))],
    ids=["lookup", "delete-empty", "delete-past-the-end", "first-key", "after-the-last"])
def test_the_commands_on_an_empty_array_answer_as_the_kernels(kernel_oracle, op, args):
    ours = Map.create(CGROUP_ARRAY, 4, 4, 4)
    with kernel_oracle.KernelMap(CGROUP_ARRAY, 4, 4, 4) as theirs:
        count_comparison()
        assert outcome(getattr(ours, op), *args) == outcome(getattr(theirs, op), *args)


def _under(fd, index):
    return under_prog(SKB_UNDER_CGROUP, fd, index)


def test_an_empty_slot_is_eagain(kernel_oracle):
    assert same_under(kernel_oracle, SKB_UNDER_CGROUP, 0, FRAME) == -errno.EAGAIN


def test_an_index_past_the_end_is_e2big(kernel_oracle):
    assert same_under(kernel_oracle, SKB_UNDER_CGROUP, 4, FRAME) == -errno.E2BIG


def test_the_packet_socket_is_under_the_root_cgroup(live_kernel):
    """BPF_PROG_TEST_RUN's socket is in the test's cgroup, below the root."""
    assert root_cgroup_retval(live_kernel, SKB_UNDER_CGROUP, 0, FRAME) == 1
    assert _engine_under(Environment(), 1, 0) == 1


def _engine_under(env, cgroup, index):
    m = Map.create(CGROUP_ARRAY, 4, 4, 4)
    m.update(u32(index), cgroup)
    return pyebpf.Program(asm.assemble(_under(m.fd, index)), "sched_cls").run(
        FRAME, env=env).retval


TREE = Environment(cgroups=(("/", 1), ("/a", 10), ("/a/b", 11), ("/c", 20)),
                   socket=PacketSocket(cgroup="/a/b"))


@pytest.mark.parametrize("cgroup, want", [(1, 1), (10, 1), (11, 1), (20, 0), (77, 0)],
                         ids=["root", "parent", "its-own", "a-sibling-tree", "unknown-id"])
def test_the_socket_is_under_its_cgroup_and_every_ancestor(cgroup, want):
    assert _engine_under(TREE, cgroup, 2) == want


def test_without_a_packet_socket_the_answer_is_enoent():
    assert _engine_under(Environment(socket=None), 1, 0) == -errno.ENOENT


def test_user_space_puts_cgroups_by_id_and_deletes_them():
    m = Map.create(CGROUP_ARRAY, 4, 4, 2)
    m.update(u32(1), 10)
    with pytest.raises(MapError) as exc:
        m.update(u32(2), 10)
    assert exc.value.errno == errno.E2BIG
    with pytest.raises(MapError) as exc:
        m.update(u32(0), 10, isa.BPF_NOEXIST)
    assert exc.value.errno == errno.EINVAL
    with pytest.raises(ValueError, match="holds cgroups by id"):
        m.update(u32(0), b"\x01\x00\x00\x00")
    m.delete(u32(1))
    with pytest.raises(MapError) as exc:
        m.delete(u32(1))
    assert exc.value.errno == errno.ENOENT


# --- the verifier ------------------------------------------------------------------------

def test_map_lookup_elem_cannot_take_a_cgroup_array(kernel_oracle):
    refused_alike(kernel_oracle, CGROUP_ARRAY, (4, 4, 4, 0), lookup_prog,
                  "cannot pass map_type 8 into func bpf_map_lookup_elem#1")


def test_skb_under_cgroup_cannot_take_a_hash_map(kernel_oracle):
    refused_alike(kernel_oracle, HASH, (4, 4, 4, 0), lambda fd: _under(fd, 0),
                  "cannot pass map_type 1 into func bpf_skb_under_cgroup#33")
