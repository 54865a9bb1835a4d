"""A constant string argument (``ARG_PTR_TO_CONST_STR``: ``bpf_strncmp``'s string,
``bpf_snprintf``'s format) must point into a read-only map as ``bpf_map_is_rdonly``
says: ``BPF_F_RDONLY_PROG`` and frozen (``check_reg_const_str``), the kernel the expected
value.  The same map is made in both, filled, and frozen with BPF_MAP_FREEZE or not;
``Map.freeze`` also shuts user space's writes out, as the kernel's does."""
from __future__ import annotations

import errno
import os
import subprocess
import tempfile

import pytest

from pyebpf import Map, asm, isa, kernel, pinning, verifier
from pyebpf.errors import KernelError, MapError, VerifierError
from skbdiff import CLS

STRING = b"ok\0".ljust(16, b"\0")
# the string in r3: strncmp(s1, s1_sz, s2), snprintf(str, str_size, fmt, data, data_len)
CALLS = {"strncmp": "", "snprintf": "r4 = 0\nr5 = 0\n"}


def _program(helper: str) -> str:
    return ("*(u64 *)(r10 - 8) = 0\nr1 = r10\nr1 += -8\nr2 = 8\n"
            f"r3 = map_value({{fd}}) ll\n{CALLS[helper]}call {isa.HELPER_IDS[helper]}\n"
            "r0 = 0\nexit")


def _maps(kind: str, entries: int, frozen: bool):
    """The kernel's and pyebpf's ``BPF_F_RDONLY_PROG`` map holding STRING under key 0."""
    made = (kernel.KernelMap(kind, 4, len(STRING), entries, flags=isa.BPF_F_RDONLY_PROG),
            Map.create(kind, 4, len(STRING), entries, flags=isa.BPF_F_RDONLY_PROG))
    for m in made:
        m.update(bytes(4), STRING)
        if frozen:
            m.freeze()
    return made


def _both(text: str, kind: str = "array", entries: int = 1,
          frozen: bool = True) -> tuple[str, str]:
    """(the kernel's, pyebpf's) verdict on the assembly ``text`` whose ``{fd}`` is the
    map of :func:`_maps`: "accepted" or the refusal's last line."""
    theirs_map, ours_map = _maps(kind, entries, frozen)
    try:
        with kernel.KernelProgram(asm.assemble(text.format(fd=theirs_map.fd)), CLS):
            theirs = "accepted"
    except KernelError as exc:
        theirs = exc.log.strip().splitlines()[-2]
    finally:
        theirs_map.close()
    try:
        verifier.verify(isa.unpack_program(asm.assemble(text.format(fd=ours_map.fd))), CLS,
                        maps={ours_map.fd: ours_map}.get)
        ours = "accepted"
    except VerifierError as exc:
        ours = exc.log.strip().splitlines()[-2]
    return theirs, ours


@pytest.mark.parametrize("helper", CALLS)
def test_a_constant_string_in_an_unfrozen_read_only_map_is_refused(helper):
    theirs, ours = _both(_program(helper), frozen=False)
    assert theirs == "R3 does not point to a readonly map'"
    assert ours == theirs


@pytest.mark.parametrize("helper", CALLS)
def test_a_constant_string_in_a_frozen_read_only_map_is_taken(helper):
    theirs, ours = _both(_program(helper))
    assert theirs == "accepted"
    assert ours == theirs


@pytest.mark.parametrize("write", ["update", "freeze"])
def test_a_frozen_map_refuses_user_space_writes_with_eperm(write):
    """map_get_sys_perms: a frozen map is not writable from user space, so an update and
    a second BPF_MAP_FREEZE get EPERM."""
    theirs_map, ours_map = _maps("array", 1, frozen=True)
    args = (bytes(4), STRING) if write == "update" else ()
    got = []
    try:
        for m, error in ((theirs_map, KernelError), (ours_map, MapError)):
            with pytest.raises(error) as caught:
                getattr(m, write)(*args)
            got.append(errno.errorcode[caught.value.errno])
    finally:
        theirs_map.close()
    assert got == ["EPERM", "EPERM"]


# bpf_strncmp of the string a lookup of key 0 finds
LOOKED_UP = ("r1 = 0\n*(u32 *)(r10 - 16) = r1\nr2 = r10\nr2 += -16\nr1 = map_fd({fd}) ll\n"
             "call 1\nif r0 == 0 goto out\nr3 = r0\n*(u64 *)(r10 - 8) = 0\nr1 = r10\n"
             f"r1 += -8\nr2 = 8\ncall {isa.HELPER_IDS['strncmp']}\nout:\nr0 = 0\nexit")


@pytest.mark.parametrize("kind,entries,message", [
    ("array", 4, "direct value access on string failed"),
    ("hash", 1, "no direct value access support for this map type")])
def test_a_constant_string_needs_a_direct_value_address(kind, entries, message):
    """Only an array of one element has one (array_map_direct_value_addr); a map type
    without map_direct_value_addr is refused before the access is checked."""
    theirs, ours = _both(LOOKED_UP, kind, entries)
    assert theirs == message
    assert ours == theirs


# --- a frozen map pinned and got again: the kernel's pin is the frozen map itself ---------

@pytest.fixture
def pin_roots(live_kernel, tmp_path, monkeypatch):
    """(a bpffs mounted in a temporary directory, a pyebpf pin root)."""
    bpffs = tempfile.mkdtemp(prefix="pyebpf-bpffs-")
    if subprocess.run(["mount", "-t", "bpf", "bpf", bpffs], capture_output=True,
                      check=False).returncode:
        os.rmdir(bpffs)
        pytest.skip("cannot mount a bpffs here")
    monkeypatch.setenv("PYEBPF_PIN_ROOT", str(tmp_path))
    try:
        yield bpffs
    finally:
        subprocess.run(["umount", bpffs], check=True)
        os.rmdir(bpffs)


def _got_again(live_kernel, bpffs):
    """(the kernel's fd, pyebpf's Map) of the frozen map of :func:`_maps`, pinned, its
    first handle closed, and got from its pin (pyebpf: as another process would)."""
    theirs_map, ours_map = _maps("array", 1, frozen=True)
    try:
        live_kernel.sysbpf.command(isa.BpfCmd.BPF_OBJ_PIN, {
            "pathname": os.path.join(bpffs, "ro"), "bpf_fd": theirs_map.fd})
    finally:
        theirs_map.close()
    ours_map.pin("ro")
    pinning._live.clear()
    return (live_kernel.sysbpf.command(isa.BpfCmd.BPF_OBJ_GET,
                                       {"pathname": os.path.join(bpffs, "ro")}),
            Map.from_pin("ro"))


def test_a_frozen_map_got_from_its_pin_refuses_an_update_with_eperm(live_kernel, pin_roots):
    theirs_fd, ours_map = _got_again(live_kernel, pin_roots)
    got = []
    try:
        with pytest.raises(KernelError) as theirs:
            live_kernel.sysbpf.command(isa.BpfCmd.BPF_MAP_UPDATE_ELEM, {
                "map_fd": theirs_fd, "key": bytes(4), "value": STRING, "flags": 0})
        got.append(errno.errorcode[theirs.value.errno])
    finally:
        os.close(theirs_fd)
    with pytest.raises(MapError) as ours:
        ours_map.update(bytes(4), STRING)
    got.append(errno.errorcode[ours.value.errno])
    assert got == ["EPERM", "EPERM"]


@pytest.mark.parametrize("helper", CALLS)
def test_a_constant_string_in_a_frozen_map_got_from_its_pin_is_taken(live_kernel, pin_roots,
                                                                     helper):
    theirs_fd, ours_map = _got_again(live_kernel, pin_roots)
    try:
        with kernel.KernelProgram(asm.assemble(_program(helper).format(fd=theirs_fd)), CLS):
            theirs = "accepted"
    except KernelError as exc:
        theirs = exc.log.strip().splitlines()[-2]
    finally:
        os.close(theirs_fd)
    try:
        verifier.verify(isa.unpack_program(asm.assemble(_program(helper).format(
            fd=ours_map.fd))), CLS, maps={ours_map.fd: ours_map}.get)
        ours = "accepted"
    except VerifierError as exc:
        ours = exc.log.strip().splitlines()[-2]
    assert theirs == "accepted"
    assert ours == theirs
