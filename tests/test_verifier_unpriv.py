"""The verifier's unprivileged rules (``unpriv=True``, ``pyebpf verify --unpriv``): what
the kernel refuses a loader without CAP_BPF, CAP_PERFMON or CAP_SYS_ADMIN that it lets
root load.  Each program's expected verdict is the kernel's words, measured on 6.18 as
user nobody; the tests that ask the running kernel again need root (they switch
``kernel.unprivileged_bpf_disabled`` to 0 for the load and put it back).
"""
from __future__ import annotations

import contextlib
import json
import os

import pytest

from pyebpf import Map, Program, asm, errors, isa, verifier
from pyebpf import kernel
from pyebpf.kernel import sysbpf
from pyebpf.verifier import rules
from skbdiff import CLS, SF

SYSCTL = "/proc/sys/kernel/unprivileged_bpf_disabled"
NOBODY = 65534

# name: (program, the kernel's refusal for an unprivileged loader or None; root loads
# every one of them)
CASES = {
    "a_scalar_return": ("r0 = 0\nexit", None),
    "a_pointer_returned": ("r0 = r10\nexit", "R0 leaks addr as return value"),
    "a_bounded_loop": ("r0 = 0\nr1 = 1\nr1 += 1\nif r1 < 3 goto -2\nexit",
                       "back-edge from insn 3 to 2"),
    "pointer_minus_pointer": ("r0 = r10\nr0 -= r10\nr0 = 0\nexit",
                              "R0 pointer -= pointer prohibited"),
    "pointers_compared": ("r2 = r10\nif r2 > r1 goto +0\nr0 = 0\nexit",
                          "R1 pointer comparison prohibited"),
    "a_pointer_compared_with_a_number": ("r2 = r10\nif r2 > 5 goto +0\nr0 = 0\nexit",
                                         "R2 pointer comparison prohibited"),
    "uninitialised_stack_read": ("r0 = *(u64 *)(r10 - 8)\nr0 = 0\nexit",
                                 "invalid read from stack R10 off=-8 size=8"),
    "a_partly_written_slot_read": ("*(u32 *)(r10 - 8) = 0\nr0 = *(u64 *)(r10 - 8)\n"
                                   "r0 = 0\nexit", "invalid read from stack off -8+4 size 8"),
    "an_initialised_stack_read": ("*(u64 *)(r10 - 8) = 0\nr0 = *(u64 *)(r10 - 8)\nexit",
                                  None),
    "a_32_bit_copy_of_a_pointer": ("w0 = w10\nr0 = 0\nexit", "R10 partial copy of pointer"),
    "a_spilled_pointer_overwritten_in_part": (
        "*(u64 *)(r10 - 8) = r1\n*(u8 *)(r10 - 8) = 0\nr0 = 0\nexit",
        "attempt to corrupt spilled pointer on stack"),
    "a_spilled_pointer_filled": ("*(u64 *)(r10 - 8) = r1\nr2 = *(u64 *)(r10 - 8)\n"
                                 "r0 = *(u32 *)(r2 + 0)\nexit", None),
    "a_variable_stack_offset": ("r2 = r10\nr3 = *(u32 *)(r1 + 0)\nr3 &= 7\nr2 += -16\n"
                                "r2 += r3\nr0 = 0\nexit",
                                "R2 variable stack access prohibited for !root, "
                                "var_off=(0x0; 0x7) off=-16"),
    "a_call_of_another_function": ("call sub\nexit\nsub:\nr0 = 0\nexit",
                                   "loading/calling other bpf or kernel functions are "
                                   "allowed for CAP_BPF and CAP_SYS_ADMIN"),
    "a_pointer_given_to_a_helper_as_a_number": (
        "r2 = r10\nr3 = r10\nr3 += -8\nr4 = 8\ncall 26\nr0 = 0\nexit",
        "R2 leaks addr into helper function"),
    "a_capable_only_helper": ("r1 = r10\nr1 += -8\n*(u64 *)(r10 - 8) = 0\nr2 = 8\n"
                              "call 6\nr0 = 0\nexit",
                              "program of this type cannot use helper bpf_trace_printk#6"),
    # sanitize_ptr_alu: a register offset is masked at run time, so what cannot be
    # masked is refused (retrieve_ptr_limit knows stack and map values only)
    "the_context_plus_a_register": ("r2 = 8\nr1 += r2\nr0 = 0\nexit",
                                    "R1 has pointer with unsupported alu operation, "
                                    "pointer arithmetic with it prohibited for !root"),
    "the_context_minus_a_register": ("r2 = 8\nr1 -= r2\nr0 = 0\nexit",
                                     "R1 has pointer with unsupported alu operation, "
                                     "pointer arithmetic with it prohibited for !root"),
    "a_register_plus_the_context": ("r2 = 8\nr2 += r1\nr0 = 0\nexit",
                                    "R2 has pointer with unsupported alu operation, "
                                    "pointer arithmetic with it prohibited for !root"),
    "the_context_plus_a_constant": ("r1 += 8\nr0 = 0\nexit", None),
    "a_stack_pointer_plus_mixed_signs": (
        "r2 = *(u32 *)(r1 + 0)\nr2 -= 4\nr3 = r10\nr3 += r2\nr0 = 0\nexit",
        "R2 has unknown scalar with mixed signed bounds, pointer arithmetic with it "
        "prohibited for !root"),
    "mixed_signs_plus_a_stack_pointer": (
        "r2 = *(u32 *)(r1 + 0)\nr2 -= 4\nr2 += r10\nr0 = 0\nexit",
        "R10 has unknown scalar with mixed signed bounds, pointer arithmetic with it "
        "prohibited for !root"),
    "a_stack_pointer_plus_a_known_register": (
        "r2 = -8\nr3 = r10\nr3 += r2\n*(u64 *)(r3 + 0) = 0\nr0 = 0\nexit", None),
    # sanitize_check_bounds: the result must stay inside the frame, even unused
    "a_stack_pointer_above_the_frame": (
        "r3 = r10\nr3 += 8\nr0 = 0\nexit",
        "R3 stack pointer arithmetic goes out of range, prohibited for !root; off=8"),
    "the_frame_pointer_plus_zero": (
        "r3 = r10\nr3 += 0\nr0 = 0\nexit",
        "R3 stack pointer arithmetic goes out of range, prohibited for !root; off=0"),
    "a_stack_pointer_below_the_frame": (
        "r3 = r10\nr3 += -513\nr0 = 0\nexit",
        "R3 stack pointer arithmetic goes out of range, prohibited for !root; off=-513"),
    "the_bottom_of_the_frame": ("r3 = r10\nr3 += -512\nr0 = 0\nexit", None),
    "a_stack_pointer_plus_a_register_above_the_frame": (
        "r2 = 8\nr3 = r10\nr3 += r2\nr0 = 0\nexit",
        "R3 stack pointer arithmetic goes out of range, prohibited for !root; off=8"),
    # 6.18 masks a speculatively executed dead branch instead of verifying it: no
    # refusal comes from what only a mispredicted branch would run
    "an_uninitialised_read_on_a_dead_branch": (
        "r0 = 0\nif r0 == 0 goto +1\nr0 = *(u64 *)(r10 - 8)\nexit", None),
    "a_pointer_leak_on_a_dead_branch": (
        "r0 = 0\nif r0 == 0 goto +2\nr0 = r10\nexit\nr0 = 0\nexit", None),
    "a_scalar_dereference_on_a_dead_branch": (
        "r0 = 0\nr2 = 0\nif r0 == 0 goto +1\nr0 = *(u64 *)(r2 + 0)\nexit", None),
}


# sanitize_ptr_alu's limits, with a lookup of {map} (an array of one 48-byte value,
# whose r6 is the context): the mask is written into the instruction once, so every
# path through it must need the same (update_alu_sanitation_state), and a pointer
# already at its object's end the way the offset goes has none (retrieve_ptr_limit)
LOOKUP = ("r6 = r1\n*(u32 *)(r10 - 4) = 0\nr2 = r10\nr2 += -4\n"
          "r1 = map_fd({map}) ll\ncall 1\nif r0 == 0 goto out\n")
_PATHS = "tried to {} from different maps, paths or scalars, " + \
    "pointer arithmetic with it prohibited for !root"
_LIMIT = "tried to {} beyond pointer bounds, pointer arithmetic with it prohibited for !root"
MAP_CASES = {
    "two_paths_adding_different_constants": (
        LOOKUP + "r1 = *(u32 *)(r6 + 0)\nr2 = 4\nif r1 == 1 goto l\nr2 = 8\nl:\n"
        "r0 += r2\nr0 = *(u8 *)(r0 + 0)\nout:\nr0 = 0\nexit", "R0 " + _PATHS.format("add")),
    "two_paths_adding_the_same_constant": (
        LOOKUP + "r1 = *(u32 *)(r6 + 0)\nr2 = 4\nif r1 == 1 goto l\nr2 = 4\nl:\n"
        "r0 += r2\nr0 = *(u8 *)(r0 + 0)\nout:\nr0 = 0\nexit", None),
    "two_paths_subtracting_different_constants": (
        LOOKUP + "r0 += 16\nr1 = *(u32 *)(r6 + 0)\nr2 = 4\nif r1 == 1 goto l\nr2 = 8\n"
        "l:\nr0 -= r2\nr0 = *(u8 *)(r0 + 0)\nout:\nr0 = 0\nexit",
        "R0 " + _PATHS.format("sub")),
    "two_paths_adding_constants_of_different_signs": (
        LOOKUP + "r0 += 8\nr1 = *(u32 *)(r6 + 0)\nr2 = 4\nif r1 == 1 goto l\nr2 = -4\n"
        "l:\nr0 += r2\nr0 = *(u8 *)(r0 + 0)\nout:\nr0 = 0\nexit",
        "R0 " + _PATHS.format("add")),
    "two_paths_adding_differently_bounded_scalars": (
        LOOKUP + "r1 = *(u32 *)(r6 + 0)\nr2 = *(u32 *)(r6 + 4)\nr2 &= 7\n"
        "if r1 == 1 goto l\nr2 &= 3\nl:\nr0 += r2\nr0 = *(u8 *)(r0 + 0)\nout:\n"
        "r0 = 0\nexit", "R0 " + _PATHS.format("add")),
    "a_scalar_plus_the_pointer_on_two_paths": (
        LOOKUP + "r1 = *(u32 *)(r6 + 0)\nr2 = 4\nif r1 == 1 goto l\nr2 = 8\nl:\n"
        "r2 += r0\nr0 = *(u8 *)(r2 + 0)\nout:\nr0 = 0\nexit", "R2 " + _PATHS.format("add")),
    "a_pointer_on_one_path_and_a_scalar_on_the_other": (
        LOOKUP + "r1 = *(u32 *)(r6 + 0)\nr2 = 4\nr3 = r0\nif r1 == 1 goto l\nr3 = 1\n"
        "l:\nr3 += r2\nout:\nr0 = 0\nexit", "R3 " + _PATHS.format("add")),
    # explore_alu_limits: once a variable offset was masked, a scalar prunes only an
    # equal one (regsafe), so the narrower offset of the second path, within the
    # first's bounds, still reaches the instruction (the 8 moves make the join a
    # checkpoint: is_state_visited's add_new_state)
    "a_narrower_offset_joining_after_a_wider_one_was_masked": (
        LOOKUP + "r1 = *(u32 *)(r6 + 0)\nr2 = *(u32 *)(r6 + 4)\nr2 &= 7\nif r1 == 1 goto a\n"
        + "r5 = 1\n" * 8 + "goto l\na:\nr2 &= 3\nl:\nr0 += r2\nr0 = *(u8 *)(r0 + 0)\n"
        "out:\nr0 = 0\nexit", "R0 " + _PATHS.format("add")),
    # get_constant_map_key finds no key without bpf_capable: an array's value by a
    # constant key stays NULL-able (root's is not: can_elide_value_nullness)
    "an_array_value_by_a_constant_key_unchecked": (
        "*(u32 *)(r10 - 4) = 0\nr2 = r10\nr2 += -4\nr1 = map_fd({map}) ll\ncall 1\n"
        "r0 = *(u8 *)(r0 + 0)\nr0 = 0\nexit", "R0 invalid mem access 'map_value_or_null'"),
    "two_stack_offsets_on_two_paths": (
        "r1 = *(u32 *)(r1 + 0)\nr2 = -8\nif r1 == 1 goto l\nr2 = -16\nl:\nr3 = r10\n"
        "r3 += r2\nr0 = 0\nexit", "R3 " + _PATHS.format("add")),
    "a_register_added_to_the_bottom_of_the_stack": (
        "r2 = 8\nr3 = r10\nr3 += -512\nr3 += r2\nr0 = 0\nexit", "R3 " + _LIMIT.format("add")),
    "a_negative_register_taken_from_the_bottom_of_the_stack": (
        "r2 = -8\nr3 = r10\nr3 += -512\nr3 -= r2\nr0 = 0\nexit",
        "R3 " + _LIMIT.format("sub")),
    "a_negative_register_added_to_the_bottom_of_the_stack": (
        "r2 = -8\nr3 = r10\nr3 += -512\nr3 += r2\nr0 = 0\nexit",
        "R3 stack pointer arithmetic goes out of range, prohibited for !root; off=-520"),
}
MAP = ("array", 4, 48, 1)


def ours(text: str) -> str | None:
    try:
        Program.from_asm(text, SF, unpriv=True)
    except errors.VerifierError as exc:
        return str(exc)
    return None


@pytest.mark.parametrize("name", CASES)
def test_pyebpf_gives_an_unprivileged_loader_the_kernels_verdict(name):
    text, expected = CASES[name]
    Program.from_asm(text, SF)      # root loads it
    mine = ours(text)
    if expected is None:
        assert mine is None, mine
    else:
        assert mine is not None and expected in mine, mine


@pytest.mark.parametrize("name", MAP_CASES)
def test_pyebpf_masks_an_unprivileged_loaders_pointer_arithmetic_as_the_kernel(name):
    text, expected = MAP_CASES[name]
    m = Map.create(*MAP)
    insns = isa.unpack_program(asm.assemble(text.format(map=m.fd)))
    try:
        verifier.verify(insns, SF, maps={m.fd: m}.get, unpriv=True)
        mine = None
    except errors.VerifierError as exc:
        mine = str(exc)
    if expected is None:
        assert mine is None, mine
    else:
        assert mine is not None and expected in mine, mine


def test_an_unprivileged_loader_may_not_load_a_classifier():
    with pytest.raises(errors.VerifierError, match="need CAP_BPF"):
        Program.from_asm("r0 = 0\nexit", CLS, unpriv=True)


def test_verify_unpriv_prints_the_refusal(tmp_path):
    from pyebpf import cli
    src = tmp_path / "leak.s"
    src.write_text("r0 = r10\nexit\n")
    assert cli.main(["verify", str(src), "--type", "socket_filter"]) == 0
    assert cli.main(["verify", str(src), "--type", "socket_filter", "--unpriv"]) == 1


# --- the running kernel, as user nobody ---------------------------------------------------

@contextlib.contextmanager
def _unprivileged_bpf_allowed():
    with open(SYSCTL) as f:
        old = f.read().strip()
    if old == "1":
        pytest.skip("kernel.unprivileged_bpf_disabled is 1: locked until reboot")
    with open(SYSCTL, "w") as f:
        f.write("0")
    try:
        yield
    finally:
        with open(SYSCTL, "w") as f:
            f.write(old)


def _as_nobody(work, failed):
    """What ``work()`` (a JSON-able value) gives in a forked child running as nobody;
    ``failed(exc)`` stands for it when the child raises."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:    # the child: drop to nobody, work, report, exit without cleanup
        os.close(r)
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            out = work()
        except BaseException as exc:     # noqa: BLE001 (reported to the parent)
            out = failed(exc)
        os.write(w, json.dumps(out).encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    return json.loads(data)


def _load_as_nobody(code: bytes) -> tuple[bool, str]:
    """(accepted, the log's last line before the statistics) of a socket filter
    loaded by a child running as nobody."""
    def load():
        fd, err, log = sysbpf.calls.prog_load(SF, code, b"GPL\0", 1)
        lines = [ln for ln in log.splitlines() if ln and not ln.startswith("processed ")]
        return [fd >= 0, lines[-1] if lines else f"errno {err}"]
    ok, last = _as_nobody(load, lambda exc: [False, f"child failed: {exc!r}"])
    return ok, last


def test_the_kernel_gives_an_unprivileged_loader_these_verdicts(root):
    with _unprivileged_bpf_allowed():
        got = {name: _load_as_nobody(asm.assemble(text)) for name, (text, _) in CASES.items()}
    differ = {name: got[name] for name, (_, expected) in CASES.items()
              if got[name][0] != (expected is None) or
              (expected is not None and got[name][1] != expected)}
    assert not differ, differ


def test_the_kernel_masks_an_unprivileged_loaders_pointer_arithmetic_so(root):
    with kernel.KernelMap(*MAP) as m, _unprivileged_bpf_allowed():
        got = {name: _load_as_nobody(asm.assemble(text.format(map=m.fd)))
               for name, (text, _) in MAP_CASES.items()}
    differ = {name: got[name] for name, (_, expected) in MAP_CASES.items()
              if got[name] != (expected is None, expected or "errno 0")}
    assert not differ, differ


def test_the_unprivileged_helper_set_is_the_kernels(root):
    ids = sorted(rules.helpers_allowed(SF, "current"))
    with _unprivileged_bpf_allowed():
        refused = {i for i in ids if "cannot use helper" in _load_as_nobody(asm.assemble(
            f"r1 = 0\nr2 = 0\nr3 = 0\nr4 = 0\nr5 = 0\ncall {i}\nr0 = 0\nexit"))[1]}
    assert set(ids) - refused == set(rules.helpers_allowed(SF, "current", unpriv=True))


def test_a_user_who_may_load_only_socket_filters_has_no_kernel_oracle(root):
    # kernel.available() decides whether the suite and the pytest plugin ask the live
    # kernel; a socket filter alone would pass a probe that the oracle's tc programs,
    # LPM tries and maps of maps then fail with EPERM.
    with _unprivileged_bpf_allowed():
        socket_filter_loads = _load_as_nobody(asm.assemble("r0 = 0\nexit"))[0]

        def probe():
            sysbpf.calls = sysbpf.calls.real     # the real bpf(2), not the recorded answers
            return list(kernel.available())
        live, reason = _as_nobody(probe, lambda exc: [None, f"child failed: {exc!r}"])
    assert socket_filter_loads, "the sysctl window let no unprivileged socket filter load"
    assert (live, "EPERM" in reason) == (False, True), reason
