"""A constant string argument (``ARG_PTR_TO_CONST_STR``: ``bpf_strncmp``'s string,
``bpf_snprintf``'s format) must point into a read-only map as ``bpf_map_is_rdonly``
says: ``BPF_F_RDONLY_PROG`` and frozen (``check_reg_const_str``), the kernel the expected
value.  The same map is made in both, filled, and frozen with BPF_MAP_FREEZE or not;
``Map.freeze`` also shuts user space's writes out, as the kernel's does."""
from __future__ import annotations

import errno

import pytest

from pyebpf import Map, asm, isa, kernel, verifier
from pyebpf.errors import KernelError, MapError, VerifierError
from skbdiff import CLS

STRING = b"ok\0".ljust(16, b"\0")
# the string in r3: strncmp(s1, s1_sz, s2), snprintf(str, str_size, fmt, data, data_len)
CALLS = {"strncmp": "", "snprintf": "r4 = 0\nr5 = 0\n"}


def _program(helper: str, fd: int) -> bytes:
    return asm.assemble(
        "*(u64 *)(r10 - 8) = 0\nr1 = r10\nr1 += -8\nr2 = 8\n"
        f"r3 = map_value({fd}) ll\n{CALLS[helper]}call {isa.HELPER_IDS[helper]}\n"
        "r0 = 0\nexit")


def _verdicts(helper: str, frozen: bool) -> tuple[str, str]:
    """(the kernel's, pyebpf's) verdict: "accepted" or the refusal's last line."""
    theirs_map = kernel.KernelMap("array", 4, len(STRING), 1, flags=isa.BPF_F_RDONLY_PROG)
    ours_map = Map.create("array", 4, len(STRING), 1, flags=isa.BPF_F_RDONLY_PROG)
    for m in (theirs_map, ours_map):
        m.update(bytes(4), STRING)
        if frozen:
            m.freeze()
    try:
        with kernel.KernelProgram(_program(helper, theirs_map.fd), CLS):
            theirs = "accepted"
    except KernelError as exc:
        theirs = exc.log.strip().splitlines()[-2]
    finally:
        theirs_map.close()
    try:
        verifier.verify(isa.unpack_program(_program(helper, ours_map.fd)), CLS,
                        maps={ours_map.fd: ours_map}.get)
        ours = "accepted"
    except VerifierError as exc:
        ours = exc.log.strip().splitlines()[-2]
    return theirs, ours


@pytest.mark.parametrize("helper", CALLS)
def test_a_constant_string_in_an_unfrozen_read_only_map_is_refused(helper):
    theirs, ours = _verdicts(helper, frozen=False)
    assert theirs == "R3 does not point to a readonly map'"
    assert ours == theirs


@pytest.mark.parametrize("helper", CALLS)
def test_a_constant_string_in_a_frozen_read_only_map_is_taken(helper):
    theirs, ours = _verdicts(helper, frozen=True)
    assert theirs == "accepted"
    assert ours == theirs


@pytest.mark.parametrize("write", ["update", "freeze"])
def test_a_frozen_map_refuses_user_space_writes_with_eperm(write):
    theirs_map = kernel.KernelMap("array", 4, len(STRING), 1, flags=isa.BPF_F_RDONLY_PROG)
    ours_map = Map.create("array", 4, len(STRING), 1, flags=isa.BPF_F_RDONLY_PROG)
    args = (bytes(4), STRING) if write == "update" else ()
    got = []
    try:
        for m, error in ((theirs_map, KernelError), (ours_map, MapError)):
            m.freeze()
            with pytest.raises(error) as caught:
                getattr(m, write)(*args)
            got.append(errno.errorcode[caught.value.errno])
    finally:
        theirs_map.close()
    assert got == ["EPERM", "EPERM"]
