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
