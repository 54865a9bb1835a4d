"""Inode local storage (BPF_MAP_TYPE_INODE_STORAGE) against the kernel.  Its helpers
(bpf_inode_storage_get, _delete) are the LSM programs', so a tc or socket filter
program can only hold such a map in its object (as the selftests' map_kptr.o does):
creation, what the verifier lets a program do with the map (the kernel's messages),
and runs of programs that hold one."""
from __future__ import annotations

import errno

import pytest

from pyebpf import Map, isa
from pyebpf.errors import PinError

import local_storage as storage
from bpfc import compile_object
from mapcheck import created
from objdiff import assert_refused_alike, same_retval, verdicts
from recorded_kernel import count_comparison

INODE_STORAGE = isa.MapType.BPF_MAP_TYPE_INODE_STORAGE
NO_PREALLOC = isa.BPF_F_NO_PREALLOC
FRAME = bytes(64)
PROG_TYPES = pytest.mark.parametrize("prog_type", ["sched_cls", "socket_filter"])

DECLS = r"""
char LICENSE[] SEC("license") = "GPL";
struct val { long n; };
struct {
    __uint(type, BPF_MAP_TYPE_INODE_STORAGE); __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, int); __type(value, struct val);
} inodes SEC(".maps");
"""


def _source(body: str) -> bytes:
    return compile_object(DECLS + 'SEC("tc") int prog(struct __sk_buff *skb) {\n' + body
                          + "\n}\n")


@storage.CREATION
def test_creation_succeeds_and_fails_as_the_kernels(kernel_oracle, key, value, max_entries,
                                                    flags):
    args = (INODE_STORAGE, key, value, max_entries, flags)
    count_comparison()
    assert created(Map.create, *args) == created(kernel_oracle.KernelMap, *args)


def test_next_key_is_enotsupp_as_in_the_kernel(kernel_oracle):
    storage.assert_next_key_is_enotsupp(kernel_oracle, INODE_STORAGE)


@PROG_TYPES
def test_a_program_holding_the_map_loads_and_runs_as_in_the_kernel(prog_type):
    # the map's address is taken (an lddw of it), nothing passed to a helper
    assert same_retval(_source("void *m = &inodes; return (m != 0) + 2;"), FRAME,
                       prog_type) == 3


@PROG_TYPES
@pytest.mark.parametrize("body, message", [
    ("int k = 0; return bpf_map_lookup_elem(&inodes, &k) != 0;",
     "cannot pass map_type 28 into func bpf_map_lookup_elem#1"),
    ("struct val v = {}; int k = 0; return bpf_map_update_elem(&inodes, &k, &v, 0);",
     "cannot pass map_type 28 into func bpf_map_update_elem#2"),
    ("int k = 0; return bpf_map_delete_elem(&inodes, &k);",
     "cannot pass map_type 28 into func bpf_map_delete_elem#3"),
    ("return bpf_inode_storage_get(&inodes, 0, 0, 0) != 0;",
     "program of this type cannot use helper bpf_inode_storage_get#145"),
], ids=["lookup", "update", "delete", "inode-storage-get"])
def test_using_the_map_is_refused_as_the_kernel_refuses_it(body, message, prog_type):
    assert_refused_alike(*verdicts(_source(body), prog_type), message)


def test_pinning_one_is_refused_with_a_reason():
    # the pin format's records are a key's bytes and a value's: an owner's address is
    # not a key another process could use (docs/pinning.md)
    m = Map.create(INODE_STORAGE, 4, 8, 0, NO_PREALLOC)
    with pytest.raises(PinError) as exc:
        m.pin("inodes")
    assert exc.value.errno == errno.EOPNOTSUPP
    assert "does not pin BPF_MAP_TYPE_INODE_STORAGE maps" in str(exc.value)
