"""LRU hashes filled past their size keep the kernel's keys (kernel/bpf/bpf_lru_list.c,
pyebpf/lru.pxi): the same keys survive, in the common LRU and with BPF_F_NO_COMMON_LRU,
LRU_HASH and LRU_PERCPU_HASH, maps smaller and larger than the batch a CPU takes.

BPF_PROG_TEST_RUN and the map syscalls run on the CPU the calling thread is on, so each
step pins this process to a CPU and pyebpf takes the same CPU: ``run(cpu=)`` for a
program, ``Map.update(on_cpu=)`` from user space.  After each step the key sets are
compared."""
import os
import random
import struct

import pytest

import pyebpf
from pyebpf import isa
from pyebpf import Map

from mapcheck import outcome
from recorded_kernel import count_comparison

T = isa.MapType
LRU, LRU_PERCPU = T.BPF_MAP_TYPE_LRU_HASH, T.BPF_MAP_TYPE_LRU_PERCPU_HASH
NO_COMMON_LRU, ZERO_SEED = isa.BPF_F_NO_COMMON_LRU, isa.BPF_F_ZERO_SEED
FRAME = bytes(range(64))
KINDS = {"lru": (LRU, 0), "lru-no-common": (LRU, NO_COMMON_LRU),
         "lru-percpu": (LRU_PERCPU, 0), "lru-percpu-no-common": (LRU_PERCPU, NO_COMMON_LRU)}
# with 2 CPUs a common LRU's batch (target_free) is max_entries / 4, at most 128
SIZES = [4, 16, 64, 300, 600]


def u32(v):
    return struct.pack("<I", v)


def u64(v):
    return struct.pack("<Q", v)


def _fill_src(fd, cpu, first, end):
    """Update keys first..end-1 (value: the key) from a loop; r0: how many succeeded.
    (r8 names the CPU: the recorded answers key a run by its instructions.)"""
    return "\n".join([
        f"r8 = {cpu:#x}", "r6 = 0x0", f"r7 = {first:#x}",
        "*(u32 *)(r10 - 0x4) = r7", "*(u64 *)(r10 - 0x10) = r7",
        f"r1 = map_fd({fd}) ll", "r2 = r10", "r2 += -0x4", "r3 = r10", "r3 += -0x10",
        "r4 = 0x0", "call 0x2", "if r0 != 0x0 goto +0x1", "r6 += 0x1", "r7 += 0x1",
        f"if r7 < {end:#x} goto -0xe", "r0 = r6", "exit"])


def _touch_src(fd, cpu, keys):
    """Look up ``keys`` (marking them used); r0: how many were found."""
    lines = [f"r8 = {cpu:#x}", "r6 = 0x0"]
    for k in keys:
        lines += [f"*(u32 *)(r10 - 0x4) = {k:#x}", f"r1 = map_fd({fd}) ll", "r2 = r10",
                  "r2 += -0x4", "call 0x1", "if r0 == 0x0 goto +0x1", "r6 += 0x1"]
    return "\n".join(lines + ["r0 = r6", "exit"])


class Pair:
    """The same LRU map in pyebpf and in the kernel, driven step by step on one CPU."""

    def __init__(self, kernel, kind, flags, size):
        self.kernel, self.kind = kernel, kind
        self.ncpu = kernel.possible_cpus()
        # BPF_F_ZERO_SEED: the kernel's iteration order, hence its recorded answers,
        # the same on every run
        self.ours = Map.create(kind, 4, 8, size, flags | ZERO_SEED, ncpu=self.ncpu)
        self.theirs = kernel.KernelMap(kind, 4, 8, size, flags | ZERO_SEED)
        self.cpu = 0

    def on(self, cpu):
        os.sched_setaffinity(0, {cpu})
        self.cpu = cpu

    def _run(self, ours_src, theirs_src):
        ours = pyebpf.Program(pyebpf.asm.assemble(ours_src), "sched_cls").run(FRAME, cpu=self.cpu)
        with self.kernel.KernelProgram(pyebpf.asm.assemble(theirs_src), "sched_cls") as prog:
            theirs = prog.test_run(FRAME, ctx={}).retval_signed
        assert ours.retval == theirs, f"a program's retval on CPU {self.cpu}"

    def fill_from_program(self, first, end):
        self._run(_fill_src(self.ours.fd, self.cpu, first, end),
                  _fill_src(self.theirs.fd, self.cpu, first, end))

    def touch(self, keys):
        self._run(_touch_src(self.ours.fd, self.cpu, keys),
                  _touch_src(self.theirs.fd, self.cpu, keys))

    def fill_from_user(self, keys):
        for k in keys:
            value = u64(k | self.cpu << 32)      # the CPU in it, as in the programs
            if self.kind == LRU:
                self.ours.update(u32(k), value, on_cpu=self.cpu)
                self.theirs.update(u32(k), value)
            else:
                self.ours.update(u32(k), [value] * self.ncpu, on_cpu=self.cpu)
                self.theirs.update(u32(k), value * self.ncpu)

    def delete(self, keys):
        for k in keys:
            ours = self.ours.lookup(u32(k)) is not None
            assert ours == (self.theirs.lookup(u32(k)) is not None), f"key {k} present"
            if ours:
                self.ours.delete(u32(k))
                self.theirs.delete(u32(k))

    def survivors(self):
        """(ours, the kernel's): the keys each map holds."""
        count_comparison()
        return ({struct.unpack("<I", k)[0] for k in self.ours.keys()},
                {struct.unpack("<I", k)[0] for k in self.theirs.keys()})

    def close(self):
        self.theirs.close()


@pytest.fixture
def pair(kernel_oracle, request):
    """Pair(kind, flags, size); the process's CPUs are given back afterwards."""
    before = os.sched_getaffinity(0)
    made = []

    def make(kind, flags, size):
        made.append(Pair(kernel_oracle, kind, flags, size))
        return made[-1]
    yield make
    for p in made:
        p.close()
    os.sched_setaffinity(0, before)


def _steps(p, size, cpus, seed):
    """A seeded mix of fills from programs and from user space, program lookups,
    replacements and deletes, each on one of ``cpus``; yields each step's name."""
    rng = random.Random(seed)
    nxt = 0
    for step in range(8):
        p.on(rng.choice(cpus))
        what = ["program-fill", "user-fill", "touch", "replace", "delete"][step % 5]
        if step == 0 or what == "program-fill":
            n = size + rng.randrange(1, size + 2)
            p.fill_from_program(nxt, nxt + n)
            nxt += n
        elif what == "user-fill":
            n = min(rng.randrange(1, size + 2), 150)
            p.fill_from_user(range(nxt, nxt + n))
            nxt += n
        elif what == "touch":
            p.touch(sorted(rng.sample(range(nxt), min(nxt, 60))))
        elif what == "replace":
            p.fill_from_user(sorted(rng.sample(range(nxt), min(nxt, 40))))
        else:
            p.delete(sorted(rng.sample(range(nxt), min(nxt, 20))))
        yield f"step {step} ({what}) on CPU {p.cpu}"


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("cpu", [0, 1])
def test_an_lru_map_filled_on_one_cpu_keeps_the_kernels_keys(pair, kind, size, cpu):
    p = pair(*KINDS[kind], size)
    for step in _steps(p, size, [cpu], seed=size * 31 + cpu):
        ours, theirs = p.survivors()
        assert (step, ours - theirs, theirs - ours) == (step, set(), set())
        assert len(ours) <= p.ours.max_entries


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("kind", list(KINDS))
def test_an_lru_map_filled_from_two_cpus_keeps_the_kernels_keys(pair, kind, size):
    p = pair(*KINDS[kind], size)
    for step in _steps(p, size, [0, 1], seed=size * 17 + 5):
        ours, theirs = p.survivors()
        assert (step, ours - theirs, theirs - ours) == (step, set(), set())


@pytest.mark.parametrize("kind", list(KINDS))
def test_cpus_taking_turns_evict_each_others_keys_as_the_kernel(pair, kind):
    """Each CPU takes a batch of one node (a 4-entry map on 2 CPUs): filling from CPU 0,
    then CPU 1, then CPU 0 again, each CPU's new keys wait on its pending list while it
    evicts from the common lists the other filled (per-CPU lists: only its own)."""
    p = pair(*KINDS[kind], 4)
    for cpu, first in ((0, 0), (1, 10), (0, 20), (1, 30)):
        p.on(cpu)
        p.fill_from_user(range(first, first + 3))
        ours, theirs = p.survivors()
        assert (cpu, first, ours) == (cpu, first, theirs)


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_failing_update_of_a_full_map_still_evicts(pair, kind):
    """htab_lru_map_update_elem takes the new element's node before it looks for the
    key: a BPF_NOEXIST update of the key updated last, or a BPF_EXIST update of a key
    the map lacks, can evict (a per-CPU map's BPF_EXIST update takes no node); with
    BPF_F_NO_COMMON_LRU the eviction may take the key itself, and the update succeeds."""
    p = pair(*KINDS[kind], 8)
    p.on(0)
    p.fill_from_user(range(40))
    for key, flags in ((39, isa.BPF_NOEXIST), (999, isa.BPF_EXIST)):
        ours = outcome(p.ours.update, u32(key),
                       u64(1) if p.kind == LRU else [u64(1)] * p.ncpu, flags)
        theirs = outcome(p.theirs.update, u32(key), u64(1) * (1 if p.kind == LRU else p.ncpu),
                         flags)
        assert (flags, ours, p.survivors()[0]) == (flags, theirs, p.survivors()[1])


@pytest.mark.parametrize("kind", list(KINDS))
def test_lookups_from_user_space_do_not_mark_keys_used(pair, kind):
    """The syscall's lookup (htab_lru_map_lookup_elem_sys, the per-CPU copy) leaves the
    ref bit alone, a program's lookup sets it: keys only user space looked up are evicted
    as if never looked up."""
    p = pair(*KINDS[kind], 64)
    p.on(0)
    p.fill_from_user(range(64))
    for k in range(0, 64, 2):
        assert (p.ours.lookup(u32(k)) is None) == (p.theirs.lookup(u32(k)) is None)
    p.touch(range(1, 64, 4))
    p.fill_from_user(range(100, 140))
    ours, theirs = p.survivors()
    assert (ours - theirs, theirs - ours) == (set(), set())


@pytest.mark.parametrize("kind", ["lru", "lru-percpu"])
def test_a_cpu_finding_the_common_lists_empty_steals_from_another_cpus_local_lists(pair, kind):
    """bpf_common_lru_pop_free's last resort: a one-entry map whose node sits on CPU
    0's local free list (its key deleted while pending there), then on a CPU's pending
    list; the other CPU's refill finds the common lists empty and steals it (the free
    node first, then the pending key, evicted), and the CPUs steal it back in turn."""
    p = pair(*KINDS[kind], 1)
    p.on(0)
    p.fill_from_user([1])
    p.delete([1])
    for cpu, keys in ((1, [2]), (0, [3]), (1, [4]), (1, [5]), (0, [6, 7])):
        p.on(cpu)
        p.fill_from_user(keys)
        ours, theirs = p.survivors()
        assert (cpu, keys, ours) == (cpu, keys, theirs)
        assert ours == {keys[-1]}
