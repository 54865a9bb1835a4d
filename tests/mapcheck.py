"""What the map tests share: u32 keys and values, and the outcome of one map operation,
on pyebpf's side or the kernel's, in a form both sides can be compared in."""
import struct

from pyebpf.errors import KernelError, MapError


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


def lookup_prog(fd):
    """bpf_map_lookup_elem(map, &(u32)0), returning 0: for map/helper pairing checks."""
    return f"""
        *(u32 *)(r10 - 4) = 0
        r1 = map_fd({fd}) ll
        r2 = r10
        r2 += -4
        call 1
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


def run_retvals(kernel_oracle, kind, sizes, make, packet):
    """(pyebpf's retval, the kernel's, both signed 32-bit) of one sched_cls run of the
    program ``make(fd)`` builds for a fresh map of ``kind`` on ``packet``."""
    import pyebpf
    from pyebpf import asm
    ours = pyebpf.Map.create(kind, *sizes)
    with kernel_oracle.KernelMap(kind, *sizes) as theirs:
        with kernel_oracle.KernelProgram(asm.assemble(make(theirs.fd)), "sched_cls") as prog:
            want = prog.test_run(packet, ctx={}).retval_signed
    got = pyebpf.Program(asm.assemble(make(ours.fd)), "sched_cls").run(packet).retval
    return got, want
