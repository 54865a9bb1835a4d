#!/usr/bin/env python3
"""Map lookup + update from a program: pyebpf against the kernel, and memory per entry.

    python bench/bench_maps.py [--quick] [--lru]

A SCHED_CLS program looks up a key of a hash map (4-byte keys, 8-byte values) and
writes the value back incremented with bpf_map_update_elem (BPF_ANY): one lookup and
one update per run (``--lru``: of an LRU hash, whose update takes a new element from
the CPU's LRU lists and frees the old one, pyebpf/lru.pxi).  The map is filled to 1k
and to 1M entries first.  Per size:

* pyebpf ns/run: median over batches of ``prog.run(frame)`` in a Python loop (the
  Python call and skb setup included);
* kernel ns/run: ``.duration`` of ``BPF_PROG_TEST_RUN`` with ``repeat`` (JIT, in-kernel);
* ratio: pyebpf / kernel;
* bytes/entry: pyebpf's preallocated storage / max_entries, and the kernel's
  ``memlock`` from /proc/self/fdinfo / max_entries.
Both sides' counters are checked equal after the timed runs.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from pyebpf import asm, isa, kernel  # noqa: E402
from pyebpf._core import Map, Program  # noqa: E402

HASH, LRU_HASH = isa.MapType.BPF_MAP_TYPE_HASH, isa.MapType.BPF_MAP_TYPE_LRU_HASH
FRAME = bytes(64)
KEY = (7).to_bytes(4, "little")


def program(fd):
    return asm.assemble(f"""
        r1 = 7
        *(u32 *)(r10 - 4) = r1
        r1 = map_fd({fd}) ll
        r2 = r10
        r2 += -4
        call 1
        if r0 == 0 goto miss
        r1 = *(u64 *)(r0 + 0)
        r1 += 1
        *(u64 *)(r10 - 16) = r1
        r1 = map_fd({fd}) ll
        r2 = r10
        r2 += -4
        r3 = r10
        r3 += -16
        r4 = 0
        call 2
    miss:
        r0 = 0
        exit""")


def pyebpf_ns(prog, batches, per_batch):
    times = []
    for _ in range(batches):
        start = time.perf_counter_ns()
        for _ in range(per_batch):
            prog.run(FRAME)
        times.append((time.perf_counter_ns() - start) / per_batch)
    return statistics.median(times)


def memlock(fd):
    with open(f"/proc/self/fdinfo/{fd}") as f:
        for line in f:
            if line.startswith("memlock:"):
                return int(line.split()[1])
    return 0


def ours_bytes_per_entry(m):
    buckets = 1 << (m.max_entries - 1).bit_length()
    stride = (m.value_size + 7) & ~7
    # an LRU element's node: two links, ref bit, list type and CPU (the list heads aside)
    node = 12 if m.type == LRU_HASH else 0
    return (m.max_entries * (stride * m.ncpu + m.key_size + 4 + node) + 4 * buckets) \
        / m.max_entries


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer runs (noisier)")
    ap.add_argument("--lru", action="store_true", help="an LRU hash instead of a hash")
    args = ap.parse_args()
    kind = LRU_HASH if args.lru else HASH
    batches, per_batch, repeat = (3, 2000, 100000) if args.quick else (7, 20000, 1000000)
    ok, reason = kernel.available()
    if not ok:
        print(f"kernel columns unavailable: {reason}")
    print(f"{'entries':>9} {'pyebpf ns/run':>14} {'kernel ns/run':>14} {'ratio':>8} "
          f"{'pyebpf B/entry':>15} {'kernel B/entry':>15}")
    for entries in (1000, 1 << 20):
        m = Map.create(kind, 4, 8, entries)
        for i in range(entries):
            m[i.to_bytes(4, "little")] = bytes(8)
        m[KEY] = bytes(8)       # last: a full LRU map has evicted the first keys
        prog = Program(program(m.fd), "sched_cls")
        ours = pyebpf_ns(prog, batches, per_batch)
        theirs = kmem = None
        if ok:
            with kernel.KernelMap(kind, 4, 8, entries) as km, \
                    kernel.KernelProgram(program(km.fd), "sched_cls", log_level=0) as kp:
                for i in range(entries):
                    km.update(i.to_bytes(4, "little"), bytes(8))
                km.update(KEY, bytes(8))
                runs = [kp.test_run(FRAME, repeat=repeat).duration for _ in range(batches)]
                theirs = statistics.median(runs)
                kmem = memlock(km.fd) / entries
                want = int.from_bytes(km.lookup(KEY), "little") - batches * repeat
                got = int.from_bytes(m[KEY], "little") - batches * per_batch
                if want != got:
                    sys.exit(f"counter mismatch at {entries} entries: pyebpf {got}, kernel {want}")
        ratio = f"{ours / theirs:8.1f}" if theirs else f"{'-':>8}"
        print(f"{entries:>9} {ours:>14.0f} {theirs if theirs is not None else '-':>14} {ratio} "
              f"{ours_bytes_per_entry(m):>15.1f} "
              f"{f'{kmem:.1f}' if kmem is not None else '-':>15}")


if __name__ == "__main__":
    main()
