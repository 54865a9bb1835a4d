"""Task and cgroup local storage (BPF_MAP_TYPE_TASK_STORAGE, BPF_MAP_TYPE_CGRP_STORAGE)
and the current task's helpers (bpf_current_task_under_cgroup, bpf_get_ns_current_pid_tgid,
bpf_task_pt_regs) against the kernel.

The kernel offers all of them to tc programs, and BPF_PROG_TEST_RUN runs a tc program in
the process that asks: its current task is this test process.  So the engine's side
runs with ``machine=this_process()``, the Machine of that process (its ids, pid
namespace, cgroup, and the registers it entered bpf(2) with), and the two must agree on
return values.  Then what only the model shows: user space keyed by the owner's address,
values kept across runs, other tasks."""
from __future__ import annotations

import errno
import json
import os

import pytest

import pyebpf
from pyebpf import Map, asm, isa
from pyebpf.environment import Environment
from pyebpf.errors import MapError
from pyebpf.skb import kern
from pyebpf.trace import Machine, Task
from pyebpf.trace.machine import OTHER_REGS_ADDRESS, USER_REGS_ADDRESS

import local_storage as storage
from bpfc import compile_object
from cgroup_support import (CURRENT_TASK_UNDER_CGROUP, root_cgroup_retval, same_under,
                            under_prog)
from current_task import CGROUP, NR_BPF, this_process
from recorded_kernel import count_comparison
from mapcheck import created, lookup_prog, refused_alike, same_map_retval, u32

T = isa.MapType
TASK_STORAGE, CGRP_STORAGE = T.BPF_MAP_TYPE_TASK_STORAGE, T.BPF_MAP_TYPE_CGRP_STORAGE
HASH, CGROUP_ARRAY = T.BPF_MAP_TYPE_HASH, T.BPF_MAP_TYPE_CGROUP_ARRAY
NO_PREALLOC = isa.BPF_F_NO_PREALLOC
FRAME = bytes(range(64))


KINDS = pytest.mark.parametrize("kind", [TASK_STORAGE, CGRP_STORAGE], ids=["task", "cgrp"])


@KINDS
@storage.CREATION
def test_creation_succeeds_and_fails_as_the_kernels(kernel_oracle, kind, key, value,
                                                    max_entries, flags):
    args = (kind, key, value, max_entries, flags)
    count_comparison()
    assert created(Map.create, *args) == created(kernel_oracle.KernelMap, *args)


@KINDS
def test_next_key_is_enotsupp_as_in_the_kernel(kernel_oracle, kind):
    storage.assert_next_key_is_enotsupp(kernel_oracle, kind)


@KINDS
def test_a_storage_map_shows_the_sizes_it_was_created_with(kind):
    m = Map.create(kind, 4, 16, 0, NO_PREALLOC)
    assert (m.key_size, m.value_size, m.max_entries, len(m), m.keys()) == (4, 16, 0, 0, [])


# --- the helpers on the current task and its cgroup ------------------------------------

OWNERS = {
    # r6 = the owner: the current task, or its default cgroup (task->cgroups->dfl_cgrp)
    TASK_STORAGE: (156, 157, """
        call 158
        r6 = r0"""),
    CGRP_STORAGE: (210, 211, """
        call 158
        r0 = *(u64 *)(r0 + {cgroups})
        r6 = *(u64 *)(r0 + {dfl_cgrp})"""),
}


def _offset(struct: str, field: str) -> int:
    from pyebpf.btf import Kind
    from pyebpf.btf.relo import target_btf
    t = target_btf().by_name(struct, Kind.STRUCT)[0]
    return {f.name: f.offset for f in t.fields()}[field]


def _owner(kind) -> str:
    return OWNERS[kind][2].format(cgroups=_offset("task_struct", "cgroups"),
                                  dfl_cgrp=_offset("css_set", "dfl_cgrp"))


def _get(kind, fd, init=None, flags=1):
    """r0 = bpf_*_storage_get(map, owner, init, flags), r6 the owner."""
    return storage.get(_owner(kind), fd, OWNERS[kind][0], init, flags)


def _storage_life(kind, fd):
    return storage.storage_life(_owner(kind), fd, *OWNERS[kind][:2])


def _value_read(kind, fd, init=None, flags=1):
    # the value's first u64 plus 1, or 0 when the helper gave NULL
    return storage.read_at(_get(kind, fd, init, flags), 0, 1)


def _same_run(kernel_oracle, kind, make, value_size=8):
    """The retval of one sched_cls run of ``make(kind, fd)`` on a fresh map of ``kind``,
    the kernel's and pyebpf's in this process's machine alike."""
    return same_map_retval(kernel_oracle, kind, (4, value_size, 0, NO_PREALLOC),
                           lambda fd: make(kind, fd), FRAME, machine=this_process())


# r0 = 1 when the get gave NULL, else 5 (``out``: where an earlier NULL check ends a run
# with 0)
NULL_IS_1 = """
        if r0 == 0 goto null
        r0 = 5
        exit
    null:
        r0 = 1
    out:
        exit"""


@KINDS
def test_get_creates_a_zeroed_value_that_the_next_get_finds_and_delete_removes(
        kernel_oracle, kind):
    want = _same_run(kernel_oracle, kind, _storage_life)
    assert want == (-errno.ENOENT & 0xff) << 16 | 0 << 8 | 5 << 4 | 0


@KINDS
def test_get_with_a_value_creates_the_storage_from_it(kernel_oracle, kind):
    want = _same_run(kernel_oracle, kind, lambda k, fd: _value_read(k, fd, init=0x1234))
    assert want == 0x1235


@KINDS
@pytest.mark.parametrize("flags", [0, 2, 3], ids=["no-create", "unknown-flag",
                                                  "create-and-more"])
def test_get_gives_null_without_create_or_with_unknown_flags(kernel_oracle, kind, flags):
    want = _same_run(kernel_oracle, kind, lambda k, fd: _value_read(k, fd, flags=flags))
    assert want == 0


@KINDS
def test_an_unknown_flag_gives_null_even_for_an_existing_value(kernel_oracle, kind):
    def prog(k, fd):
        again = storage.get("", fd, OWNERS[k][0], flags=2)
        return _get(k, fd) + "if r0 == 0 goto out" + again + NULL_IS_1
    assert _same_run(kernel_oracle, kind, prog) == 1


@KINDS
def test_a_value_larger_than_a_u64_is_created_whole(kernel_oracle, kind):
    assert _same_run(kernel_oracle, kind, lambda k, fd: storage.read_at(_get(k, fd), 56, 3),
                     value_size=64) == 3


# --- the verifier ------------------------------------------------------------------------

def _refused(kernel_oracle, kind, make, message):
    """pyebpf's refusal of the program made for a map of ``kind``, which the kernel's
    also is, both saying ``message``."""
    sizes = (4, 8, 0, NO_PREALLOC) if kind in (TASK_STORAGE, CGRP_STORAGE) else (4, 8, 4, 0)
    return refused_alike(kernel_oracle, kind, sizes, make, message)


@pytest.mark.parametrize("kind", [TASK_STORAGE, CGRP_STORAGE], ids=["task", "cgrp"])
def test_map_lookup_elem_cannot_take_a_storage_map(kernel_oracle, kind):
    _refused(kernel_oracle, kind, lookup_prog,
             f"cannot pass map_type {int(kind)} into func bpf_map_lookup_elem#1")


@pytest.mark.parametrize("kind, other, helper", [
    (TASK_STORAGE, HASH, "bpf_task_storage_get#156"),
    (TASK_STORAGE, CGRP_STORAGE, "bpf_task_storage_get#156"),
    (CGRP_STORAGE, HASH, "bpf_cgrp_storage_get#210"),
    (CGRP_STORAGE, TASK_STORAGE, "bpf_cgrp_storage_get#210")],
    ids=["task-hash", "task-cgrp", "cgrp-hash", "cgrp-task"])
def test_a_storage_helper_takes_only_its_own_map_type(kernel_oracle, kind, other, helper):
    _refused(kernel_oracle, other, lambda fd: _value_read(kind, fd),
             f"cannot pass map_type {int(other)} into func {helper}")


@KINDS
def test_the_owner_must_be_a_btf_pointer(kernel_oracle, kind):
    _refused(kernel_oracle, kind, lambda fd: storage.non_pointer_owner(fd, OWNERS[kind][0]),
             "R2 type=fp expected=ptr_, trusted_ptr_, rcu_ptr_")


@KINDS
def test_a_null_owner_loads_and_get_gives_null(kernel_oracle, kind):
    def prog(k, fd):
        return storage.get("", fd, OWNERS[k][0], of="0") + NULL_IS_1
    assert _same_run(kernel_oracle, kind, prog) == 1


@KINDS
def test_deleting_a_null_owners_storage_is_einval(kernel_oracle, kind):
    def prog(k, fd):
        return f"""
        r1 = map_fd({fd}) ll
        r2 = 0
        call {OWNERS[k][1]}
        exit"""
    assert _same_run(kernel_oracle, kind, prog) == -errno.EINVAL


def test_a_task_helper_still_refuses_a_null_task(kernel_oracle):
    def prog(fd):
        return """
        r1 = 0
        call 175
        r0 = 0
        exit"""
    _refused(kernel_oracle, HASH, prog, "R1 type=scalar expected=ptr_, trusted_ptr_, rcu_ptr_")


def test_a_task_is_not_a_cgroup(kernel_oracle):
    def prog(fd):
        return f"""
        call 158
        r1 = map_fd({fd}) ll
        r2 = r0
        call 211
        exit"""
    _refused(kernel_oracle, CGRP_STORAGE, prog, "R2 is of type task_struct but cgroup is expected")


@KINDS
def test_the_value_must_be_null_checked(kernel_oracle, kind):
    _refused(kernel_oracle, kind, lambda fd: storage.unchecked_read(_get(kind, fd)),
             "R0 invalid mem access 'map_value_or_null'")


@KINDS
def test_a_read_past_the_value_is_refused(kernel_oracle, kind):
    mine = _refused(kernel_oracle, kind, lambda fd: storage.read_past(_get(kind, fd), 8),
                    "R0 min value is outside of the allowed memory range")
    assert "invalid access to map value, value_size=8 off=8 size=8" in mine


# the kfuncs that acquire an owner (here pid 1's task, the root cgroup) and release it
ACQUIRE = {TASK_STORAGE: ("bpf_task_from_pid", "bpf_task_release"),
           CGRP_STORAGE: ("bpf_cgroup_from_id", "bpf_cgroup_release")}


def _owner_and_record(kind, fd: int, ring: int, kfunc_id) -> str:
    """The get given an acquired owner (r7) and a ring buffer record as its value (r8),
    each holding a reference; both released after."""
    acquire, release = ACQUIRE[kind]
    return f"""
        r1 = 1
        call kfunc {kfunc_id(acquire)}
        if r0 == 0 goto out
        r7 = r0
        r1 = map_fd({ring}) ll
        r2 = 8
        r3 = 0
        call 131
        if r0 != 0 goto have
        r1 = r7
        call kfunc {kfunc_id(release)}
        goto out
    have:
        r8 = r0
        r1 = map_fd({fd}) ll
        r2 = r7
        r3 = r8
        r4 = 0
        call {OWNERS[kind][0]}
        r1 = r8
        r2 = 0
        call 133
        r1 = r7
        call kfunc {kfunc_id(release)}
    out:
        r0 = 0
        exit"""


@KINDS
def test_an_acquired_owner_and_a_ring_buffer_record_are_two_references_too_many(
        kernel_oracle, kind):
    """check_func_arg: a helper's arguments hold at most one reference between them, a
    task or cgroup acquired by a kfunc counting as a socket does (pyebpf checked
    sockets and ring buffer records only); EACCES, and the ids the kernel's."""
    from pyebpf.errors import KernelError, VerifierError
    from pyebpf.kernel.vmlinux import kfunc_btf_id
    sizes = (4, 8, 0, NO_PREALLOC)
    ours, ring = Map.create(kind, *sizes), Map.create(T.BPF_MAP_TYPE_RINGBUF, 0, 0, 4096)
    with pytest.raises(VerifierError) as mine:
        pyebpf.Program(asm.assemble(_owner_and_record(kind, ours.fd, ring.fd,
                                                      isa.KFUNC_IDS.__getitem__)),
                       "sched_cls")
    count_comparison()
    with kernel_oracle.KernelMap(kind, *sizes) as theirs, \
            kernel_oracle.KernelMap(T.BPF_MAP_TYPE_RINGBUF, 0, 0, 4096) as their_ring:
        with pytest.raises(KernelError) as kernel:
            kernel_oracle.KernelProgram(asm.assemble(_owner_and_record(
                kind, theirs.fd, their_ring.fd, lambda name: kfunc_btf_id(name, 0))),
                "sched_cls").close()
    message = "more than one arg with ref_obj_id R3 4 2"
    assert (message in str(kernel.value), kernel.value.errno) == (True, errno.EACCES)
    assert (message in str(mine.value), mine.value.errno) == (True, errno.EACCES)


# --- a libbpf-style object ----------------------------------------------------------------

RUNS = """
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct stats { __u64 runs; __u64 bytes; };
struct {
    __uint(type, BPF_MAP_TYPE_TASK_STORAGE);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, int);
    __type(value, struct stats);
} per_task SEC(".maps");

SEC("tc") int count(struct __sk_buff *skb) {
    struct task_struct *task = bpf_get_current_task_btf();
    struct stats *s = bpf_task_storage_get(&per_task, task, 0,
                                           BPF_LOCAL_STORAGE_GET_F_CREATE);
    if (!s)
        return 2;
    s->runs++;
    s->bytes += skb->len;
    return s->runs << 16 | s->bytes;
}
"""


def test_a_libbpf_style_object_counts_in_the_current_tasks_storage(kernel_oracle):
    data = compile_object(RUNS)
    machine = this_process()
    obj = pyebpf.load(data)
    try:
        with kernel_oracle.load_object(data) as kobj:
            theirs = [kobj.program("count").test_run(FRAME).retval for _ in range(2)]
        ours = [obj.program("count").run(FRAME, machine=machine).retval for _ in range(2)]
        stored = obj.maps["per_task"].lookup(machine.task)
    finally:
        obj.close()
    count_comparison()
    assert ours == theirs == [1 << 16 | len(FRAME), 2 << 16 | 2 * len(FRAME)]
    assert stored == (2).to_bytes(8, "little") + (2 * len(FRAME)).to_bytes(8, "little")


# --- bpf_current_task_under_cgroup -------------------------------------------------------

def _task_under(fd, index):
    return under_prog(CURRENT_TASK_UNDER_CGROUP, fd, index)


def test_an_empty_slot_is_eagain(kernel_oracle):
    assert same_under(kernel_oracle, CURRENT_TASK_UNDER_CGROUP, 1, FRAME) == -errno.EAGAIN


def test_an_index_past_the_end_is_e2big(kernel_oracle):
    assert same_under(kernel_oracle, CURRENT_TASK_UNDER_CGROUP, 4, FRAME) == -errno.E2BIG


def test_the_test_process_is_under_the_root_cgroup(live_kernel):
    """BPF_PROG_TEST_RUN's caller, this process, is in a cgroup below the root."""
    want = root_cgroup_retval(live_kernel, CURRENT_TASK_UNDER_CGROUP, 2, FRAME)
    assert _engine_task_under(Environment(), 1, 2) == want == 1


def _engine_task_under(env, cgroup, index):
    m = Map.create(CGROUP_ARRAY, 4, 4, 4)
    m.update(u32(index), cgroup)
    return pyebpf.Program(asm.assemble(_task_under(m.fd, index)), "kprobe").run(
        env=env).retval


TREE = Environment(cgroups=(("/", 1), ("/a", 10), ("/a/b", 11), ("/c", 20)),
                   task_cgroup="/a/b")


@pytest.mark.parametrize("cgroup, want", [(1, 1), (10, 1), (11, 1), (20, 0), (77, 0)],
                         ids=["root", "parent", "its-own", "a-sibling-tree", "unknown-id"])
def test_the_task_is_under_its_cgroup_and_every_ancestor(cgroup, want):
    assert _engine_task_under(TREE, cgroup, 0) == want


def test_current_task_under_cgroup_takes_only_a_cgroup_array(kernel_oracle):
    _refused(kernel_oracle, HASH, lambda fd: _task_under(fd, 0),
             "cannot pass map_type 1 into func bpf_current_task_under_cgroup#37")


# --- bpf_get_ns_current_pid_tgid ----------------------------------------------------------

def _ns_ids(dev, ino, size=8):
    # r0 = the helper's result (low byte) | nsdata.pid == current pid << 8
    #      | nsdata.tgid == current tgid << 9 | nsdata == 0 << 10
    return f"""
        *(u64 *)(r10 - 8) = -1
        r1 = {dev} ll
        r2 = {ino} ll
        r3 = r10
        r3 += -8
        r4 = {size}
        call 120
        r6 = r0
        r6 &= 0xff
        call 14
        r7 = *(u32 *)(r10 - 8)
        r8 = *(u32 *)(r10 - 4)
        r9 = r0
        r9 <<= 32
        r9 >>= 32
        if r7 != r9 goto tgid
        r6 |= 0x100
    tgid:
        r0 >>= 32
        if r8 != r0 goto zero
        r6 |= 0x200
    zero:
        r7 |= r8
        if r7 != 0 goto out
        r6 |= 0x400
    out:
        r0 = r6
        exit"""


def _ns_run(kernel_oracle, text):
    """The kernel's retval of one sched_cls run of ``text``, which pyebpf's run in this
    process's machine must equal."""
    with kernel_oracle.KernelProgram(asm.assemble(text), "sched_cls") as prog:
        want = prog.test_run(FRAME, ctx={}).retval_signed
    ours = pyebpf.Program(asm.assemble(text), "sched_cls").run(
        FRAME, machine=this_process()).retval
    count_comparison()
    assert ours == want, f"engine {ours:#x}, kernel {want:#x}"
    return want


def test_the_pid_namespace_of_proc_self_gives_the_tasks_ids(kernel_oracle):
    ns = os.stat("/proc/self/ns/pid")
    assert _ns_run(kernel_oracle, _ns_ids(ns.st_dev, ns.st_ino)) == 0x300


@pytest.mark.parametrize("which", ["other-ino", "other-dev", "dev-past-32-bits", "size-4"])
def test_another_namespace_or_a_wrong_size_is_einval_with_nsdata_zeroed(kernel_oracle, which):
    ns = os.stat("/proc/self/ns/pid")
    dev, ino, size = ns.st_dev, ns.st_ino, 8
    if which == "other-ino":
        ino += 1
    elif which == "other-dev":
        dev += 1
    elif which == "dev-past-32-bits":
        dev |= 1 << 32
    else:
        size = 4
    want = _ns_run(kernel_oracle, _ns_ids(dev, ino, size))
    if size == 8:
        assert want == (-errno.EINVAL & 0xff) | 0x400
    else:
        assert want & 0xff == -errno.EINVAL & 0xff


def test_a_packet_run_without_a_machine_has_no_task_namespace():
    prog = pyebpf.Program(asm.assemble(_ns_ids(4, 0xEFFFFFFC)), "sched_cls")
    assert prog.run(FRAME).retval & 0xff == -errno.EINVAL & 0xff


def test_the_task_is_given_its_ids_in_its_own_namespace():
    machine = Machine(task=Task(pid=5000, tgid=5000, ns_pid=7, ns_tgid=3, pidns=(9, 4242)))
    prog = pyebpf.Program(asm.assemble(f"""
        r1 = 9
        r2 = 4242
        r3 = r10
        r3 += -8
        r4 = 8
        call 120
        r0 = *(u64 *)(r10 - 8)
        exit"""), "kprobe")
    assert prog.run(machine=machine).retval == 7      # the u32 retval: nsdata.pid


# --- bpf_task_pt_regs -----------------------------------------------------------------------

ORIG_AX = isa.PT_REGS["x86_64"][0]["orig_ax"]


def _syscall_number():
    return f"""
        call 158
        r1 = r0
        call 175
        r0 = *(u64 *)(r0 + {ORIG_AX})
        exit"""


def test_the_task_registers_are_those_it_entered_bpf_with(kernel_oracle):
    assert _ns_run(kernel_oracle, _syscall_number()) == NR_BPF


def test_task_pt_regs_points_at_the_machines_user_registers():
    prog = pyebpf.Program(asm.assemble(_syscall_number().replace(
        f"r0 = *(u64 *)(r0 + {ORIG_AX})", "")), "kprobe")
    assert prog.run(machine=this_process()).retval == USER_REGS_ADDRESS & 0xFFFFFFFF


@pytest.mark.parametrize("read, want", [(True, 0), (False, OTHER_REGS_ADDRESS & 0xFFFFFFFF)],
                         ids=["orig_ax", "address"])
def test_another_tasks_registers_are_not_modelled_and_read_zero(read, want):
    machine = Machine(task=Task(user_regs={"orig_ax": 1},
                                fields={"real_parent": 0xFFFF888100600000}))
    prog = pyebpf.Program(asm.assemble(f"""
        call 158
        r1 = *(u64 *)(r0 + {_offset("task_struct", "real_parent")})
        call 175
        {f"r0 = *(u64 *)(r0 + {ORIG_AX})" if read else ""}
        exit"""), "kprobe")
    assert prog.run(machine=machine).retval == want


# --- the model: owners by address, user space, other tasks --------------------------------

def test_storage_lasts_across_runs_and_is_keyed_by_the_tasks_address():
    m = Map.create(TASK_STORAGE, 4, 8, 0, NO_PREALLOC)
    prog = pyebpf.Program(asm.assemble(_value_read(TASK_STORAGE, m.fd, init=41)), "kprobe")
    machine = Machine(task=Task(pid=77))
    assert [prog.run(machine=machine).retval for _ in range(2)] == [42, 42]
    assert m.keys() == [machine.task.address.to_bytes(8, "little")]
    assert m.lookup(machine.task) == (41).to_bytes(8, "little")


def test_cgroup_storage_is_keyed_by_the_cgroups_address():
    m = Map.create(CGRP_STORAGE, 4, 8, 0, NO_PREALLOC)
    prog = pyebpf.Program(asm.assemble(_value_read(CGRP_STORAGE, m.fd, init=6)), "kprobe")
    assert prog.run(machine=this_process()).retval == 7
    assert m.lookup(CGROUP) == (6).to_bytes(8, "little")


def test_a_task_whose_cgroup_the_machine_does_not_give_has_its_environments_cgroups():
    # task->cgroups->dfl_cgrp: the Environment's task_cgroup (the default's root, index 0)
    m = Map.create(CGRP_STORAGE, 4, 8, 0, NO_PREALLOC)
    prog = pyebpf.Program(asm.assemble(_value_read(CGRP_STORAGE, m.fd)), "kprobe")
    assert prog.run(machine=Machine(task=Task(fields={}))).retval == 1
    assert m.keys() == [kern.CGROUP_ADDRESS.to_bytes(8, "little")]


def test_user_space_updates_looks_up_and_deletes_by_task():
    m = Map.create(TASK_STORAGE, 4, 8, 0, NO_PREALLOC)
    task = Task(pid=9)
    m.update(task, bytes(8))
    with pytest.raises(MapError) as exc:
        m.update(task, bytes(8), isa.BPF_NOEXIST)
    assert exc.value.errno == errno.EEXIST
    assert m.lookup(task.address) == bytes(8)
    m.delete(task)
    assert m.lookup(task) is None
    with pytest.raises(MapError) as exc:
        m.delete(task.address)
    assert exc.value.errno == errno.ENOENT


def test_a_key_that_is_no_owner_is_refused():
    m = Map.create(CGRP_STORAGE, 4, 8, 0, NO_PREALLOC)
    with pytest.raises(ValueError, match="a key is the owner's kernel address"):
        m.lookup("root")


def test_dump_maps_lists_storage_by_owner_address_and_loads_it_back(tmp_path):
    from pyebpf.pcap import mapfiles
    m = Map.create(TASK_STORAGE, 4, 8, 0, NO_PREALLOC, name="per_task")
    task = Task(pid=3)
    m.update(task, (5).to_bytes(8, "little"))
    dumped = mapfiles.dump(m)
    assert dumped["entries"] == [{"key": task.address, "value": "0500000000000000",
                                  "key_hex": task.address.to_bytes(8, "little").hex(),
                                  "value_hex": "0500000000000000"}]
    again = Map.create(TASK_STORAGE, 4, 8, 0, NO_PREALLOC)
    path = tmp_path / "per_task.json"
    path.write_text(json.dumps(dumped))
    mapfiles.load(again, str(path), "per_task")
    assert again.lookup(task) == (5).to_bytes(8, "little")


@KINDS
def test_pinning_a_storage_map_is_refused_with_a_reason(tmp_path, monkeypatch, kind):
    monkeypatch.setenv("PYEBPF_PIN_ROOT", str(tmp_path / "pins"))
    m = Map.create(kind, 4, 8, 0, NO_PREALLOC)
    with pytest.raises(pyebpf.errors.PinError, match=f"does not pin {kind.name}"):
        m.pin("storage")


def test_a_packet_run_without_a_machine_has_no_task_and_so_no_storage():
    m = Map.create(TASK_STORAGE, 4, 8, 0, NO_PREALLOC)
    prog = pyebpf.Program(asm.assemble(_value_read(TASK_STORAGE, m.fd)), "sched_cls")
    assert prog.run(FRAME).retval == 0
    assert m.keys() == []


def test_a_packet_run_takes_the_machines_task_ids():
    prog = pyebpf.Program(asm.assemble("call 14\nexit"), "sched_cls")
    machine = Machine(task=Task(pid=12, tgid=34))
    assert prog.run(FRAME, machine=machine).retval == 12


def test_a_packet_run_refuses_task_ids_beside_a_machine():
    prog = pyebpf.Program(asm.assemble("r0 = 0\nexit"), "sched_cls")
    with pytest.raises(TypeError, match="pid_tgid= and machine= both give the current task"):
        prog.run(FRAME, machine=Machine(), pid_tgid=1)


def test_a_task_pid_namespace_is_a_dev_and_an_ino():
    from pyebpf.trace import MachineSpecError
    assert Task(pidns=[4, 5]).pidns == (4, 5)          # as a trace-replay JSON event gives it
    with pytest.raises(MachineSpecError, match=r"task pidns is \(dev, ino\)"):
        Task(pidns=(4,))
    with pytest.raises(MachineSpecError, match="task pidns dev must be an unsigned 32-bit"):
        Task(pidns=(1 << 32, 5))
