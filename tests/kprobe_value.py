"""What the tests of kprobe programs that leave their results in a map value share
(test_kprobe, test_kprobe_task, test_branch_snapshot, test_snprintf_btf): a program
around a body that has the value at hand, and a run of a helper that writes into a
buffer there."""
from __future__ import annotations

import struct

from pyebpf import Map, Program


def into_value(out: Map, body: str, **kwargs) -> Program:
    """A kprobe program running ``body`` with r6 = the context and r7 = the value of
    ``out``'s key 0, then returning 0; ``kwargs`` go to the Program (an ``arch=``)."""
    return Program.from_asm(f"""
        r6 = r1
        *(u32 *)(r10 - 4) = 0
        r2 = r10
        r2 += -4
        r1 = map_fd({out.fd}) ll
        call 1
        if r0 == 0 goto end
        r7 = r0
        {body}
    end:
        r0 = 0
        exit""", "kprobe", **kwargs)


def run_into_value(machine, call: str, size: int, fill: int = 0,
                   **kwargs) -> tuple[int, bytes]:
    """(r0, the buffer) of a kprobe run in ``machine`` of ``call``: text that calls a
    helper with r7 a map value of 8 + ``size`` bytes (each ``fill`` before the run), the
    buffer at r7 + 8.  r0 is kept in the value's first 8 bytes."""
    out = Map.create("array", 4, 8 + size, 1)
    out[bytes(4)] = bytes([fill]) * (8 + size)
    into_value(out, call + """
        *(u64 *)(r7 + 0) = r0""", **kwargs).run(machine=machine)
    value = out[bytes(4)]
    return struct.unpack_from("<q", value)[0], value[8:]
