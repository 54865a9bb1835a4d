"""What the map tests share: u32 keys and values, and the outcome of one map operation,
on pyebpf's side or the kernel's, in a form both sides can be compared in."""
import struct

from pyebpf.errors import KernelError, MapError

from objdiff import assert_refused_alike
from recorded_kernel import count_comparison


def u32(v):
    return struct.pack("<I", v)


def outcome(fn, *args):
    """What ``fn(*args)`` gives ("ok" for an update or delete, which give nothing), or the
    errno of the MapError or KernelError it raises."""
    try:
        out = fn(*args)
        return "ok" if out is None and fn.__name__ in ("update", "delete") else out
    except (MapError, KernelError) as exc:
        return exc.errno


def created(make, *args):
    """"ok" when ``make(*args)`` (Map.create or KernelMap) makes a map, else the errno."""
    try:
        m = make(*args)
    except (MapError, KernelError) as exc:
        return exc.errno
    if hasattr(m, "close"):
        m.close()
    return "ok"


def created_alike(kernel_oracle, kind, btf: tuple) -> tuple:
    """(pyebpf's, the kernel's) ``created`` outcome of a map of ``kind`` with 4-byte keys,
    4 entries and the value of ``btf`` (its blob, key type and value type), counted as
    one comparison."""
    from pyebpf import Map
    blob, key_type, value_type = btf
    size = value_type.byte_size
    ours = created(lambda: Map.create(kind, 4, size, 4, value_type=value_type))
    theirs = created(lambda: kernel_oracle.KernelMap(
        kind, 4, size, 4, btf=(blob, key_type.id, value_type.id)))
    count_comparison()
    return ours, theirs


def lookup_key(fd, key: int = 0) -> str:
    """r0 = bpf_map_lookup_elem(map, &(u32)key), the key at r10 - 4."""
    return f"""
        *(u32 *)(r10 - 4) = {key}
        r1 = map_fd({fd}) ll
        r2 = r10
        r2 += -4
        call 1"""


def lookup_inner(outer_fd, slot: int, no_inner: str, no_value: str) -> str:
    """r0 = key 0's value in the inner map in ``slot`` of a map of maps, with jumps to
    ``no_inner`` where the slot is empty and to ``no_value`` where the key is absent."""
    return lookup_key(outer_fd, slot) + f"""
        if r0 == 0 goto {no_inner}
        r1 = r0
        *(u32 *)(r10 - 4) = 0
        r2 = r10
        r2 += -4
        call 1
        if r0 == 0 goto {no_value}"""


def u32_or_minus_1(off: int = 0) -> str:
    """r0 = the u32 at ``off`` in what a lookup's r0 points at, or -1 where r0 is NULL."""
    return f"""
        if r0 == 0 goto miss
        r0 = *(u32 *)(r0 + {off})
        exit
    miss:
        r0 = -1
        exit"""


U32_OR_MINUS_1 = u32_or_minus_1()


def perf_output_prog(fd, flags: int, size: int = 8) -> str:
    """bpf_perf_event_output(skb, map, flags, the u64 0x1122334455667788 on the stack,
    size), returning its result."""
    return f"""
        r6 = r1
        r1 = 0x1122334455667788 ll
        *(u64 *)(r10 - 0x8) = r1
        r1 = r6
        r2 = map_fd({fd}) ll
        r3 = {flags:#x} ll
        r4 = r10
        r4 += -0x8
        r5 = {size:#x}
        call 0x19
        exit"""


def lookup_prog(fd):
    """bpf_map_lookup_elem(map, &(u32)0), returning 0: for map/helper pairing checks."""
    return lookup_key(fd) + """
        r0 = 0
        exit"""


def load_verdicts(kernel_oracle, kind, sizes, make, prog_type="sched_cls"):
    """(pyebpf's refusal or None, the kernel's) of the program ``make(fd)`` builds for a
    map of ``kind`` created with ``sizes`` (key, value, max_entries, flags)."""
    import pyebpf
    from pyebpf import asm
    from pyebpf.errors import VerifierError
    ours = pyebpf.Map.create(kind, *sizes)
    try:
        pyebpf.Program(asm.assemble(make(ours.fd)), prog_type)
        mine = None
    except VerifierError as exc:
        mine = str(exc)
    with kernel_oracle.KernelMap(kind, *sizes) as theirs:
        try:
            kernel_oracle.KernelProgram(asm.assemble(make(theirs.fd)), prog_type).close()
            kernel = None
        except KernelError as exc:
            kernel = str(exc)
    return mine, kernel


def refused_alike(kernel_oracle, kind, sizes, make, message, prog_type="sched_cls"):
    """Both refuse the program ``make(fd)`` builds for a map of ``kind`` created with
    ``sizes``, each saying ``message`` (one comparison); pyebpf's refusal."""
    count_comparison()
    mine, kernel = load_verdicts(kernel_oracle, kind, sizes, make, prog_type)
    assert_refused_alike(mine, kernel, message)
    return mine


def run_retvals(kernel_oracle, kind, sizes, make, packet, **run):
    """(pyebpf's retval, the kernel's, both signed 32-bit) of one sched_cls run of the
    program ``make(fd)`` builds for a fresh map of ``kind`` on ``packet``; ``run`` goes
    to pyebpf's ``Program.run`` (a ``machine=``, an ``env=``)."""
    import pyebpf
    from pyebpf import asm
    ours = pyebpf.Map.create(kind, *sizes)
    with kernel_oracle.KernelMap(kind, *sizes) as theirs:
        with kernel_oracle.KernelProgram(asm.assemble(make(theirs.fd)), "sched_cls") as prog:
            want = prog.test_run(packet, ctx={}).retval_signed
    got = pyebpf.Program(asm.assemble(make(ours.fd)), "sched_cls").run(packet, **run).retval
    return got, want


def same_map_retval(kernel_oracle, kind, sizes, make, packet, **run) -> int:
    """The two retvals of ``run_retvals``, which must be equal (one comparison): the
    kernel's."""
    got, want = run_retvals(kernel_oracle, kind, sizes, make, packet, **run)
    count_comparison()
    assert got == want, f"engine {got:#x}, kernel {want:#x}"
    return want


def pinned_by_name(source: str, name: str) -> str:
    """``source`` with its BTF-defined map ``name`` pinned by name (libbpf's
    ``LIBBPF_PIN_BY_NAME``), the attribute put last in the definition."""
    pinned = source.replace(f"\n}} {name}", f" __uint(pinning, LIBBPF_PIN_BY_NAME);\n}} {name}", 1)
    assert pinned != source, f"no map {name} in the source"
    return pinned


def run_from_pins_in_child(data: bytes, pinned: str, maps: dict, packet: bytes) -> tuple:
    """Load the object ``data`` here (pinning its map ``pinned``), then in a child
    process, which reads that map from its pin, run its program ``prog`` once on
    ``packet`` and then pyebpf.run_timers(): (retval, the values of ``maps`` (name ->
    keys, as u32)).  The child fails if the map does not come from its pin."""
    import json
    import subprocess
    import sys

    import pyebpf
    from conftest import child_python
    pyebpf.load(data).close()
    env, cwd = child_python()
    code = f"""
import json, sys, pyebpf
obj = pyebpf.load(sys.stdin.buffer.read())
maps = {dict(maps)!r}
assert obj.maps[{pinned!r}]._pin is not None, "the map is not from its pin"
retval = obj.program("prog").run({bytes(packet)!r}).retval & 0xFFFFFFFF
pyebpf.run_timers()
print(json.dumps([retval, {{name: [obj.maps[name].lookup(k.to_bytes(4, "little")).hex()
                                 for k in keys] for name, keys in maps.items()}}]))
"""
    done = subprocess.run([sys.executable, "-c", code], input=data, env=env, cwd=cwd,
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    retval, values = json.loads(done.stdout)
    return retval, {name: [bytes.fromhex(v) for v in vs] for name, vs in values.items()}
