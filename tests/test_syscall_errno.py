"""pyebpf.bpf(BPF_PROG_LOAD) refuses a program with the errno bpf(2) sets: one program
per kind of refusal the verifier makes, loaded by both; the kernel's errno is the
expected one, and pyebpf's refusal says the kernel's words."""
from __future__ import annotations

import errno

import pytest

import pyebpf
from pyebpf import Map, asm, isa, kernel
from pyebpf.errors import BpfError
from pyebpf.kernel import sysbpf
from recorded_kernel import count_comparison

C = isa.BpfCmd
SF, CLS = isa.ProgType.BPF_PROG_TYPE_SOCKET_FILTER, isa.ProgType.BPF_PROG_TYPE_SCHED_CLS

# nine nested calls: one frame more than MAX_CALL_FRAMES
_DEEP = "".join(f"f{i}:\ncall f{i + 1}\nr0 = 0\nexit\n" for i in range(8)) + "f8:\nr0 = 0\nexit"

# (kind, program text with MAP for an array's fd and RING for a ring buffer's, license,
#  the kernel's words, its errno)
REFUSALS = {
    "register-not-initialised": (
        "exit", "GPL", "R0 !read_ok", errno.EACCES),
    "memory-access-through-a-scalar": (
        "r2 = 0\nr0 = *(u64 *)(r2 + 0)\nexit", "GPL", "R2 invalid mem access 'scalar'",
        errno.EACCES),
    "stack-access-below-the-stack": (
        "r0 = *(u64 *)(r10 - 520)\nexit", "GPL", "invalid read from stack R10 off=-520",
        errno.EACCES),
    "helper-buffer-above-the-frame-pointer": (
        "r2 = 0\nr3 = r10\nr3 += -4\nr4 = 8\ncall skb_load_bytes\nr0 = 0\nexit",
        "GPL", "invalid write to stack R3 off=-4 size=8", errno.EINVAL),
    "gpl-only-helper-from-a-proprietary-program": (
        "r1 = r10\nr1 += -8\n*(u64 *)(r1 + 0) = 0\nr2 = 8\ncall trace_printk\nr0 = 0\nexit",
        "Proprietary", "cannot call GPL-restricted function from non-GPL compatible program",
        errno.EINVAL),
    "unknown-helper": (
        "call 100000\nr0 = 0\nexit", "GPL", "invalid func unknown#100000", errno.EINVAL),
    "division-by-zero-constant": (
        "r0 = 0\nr0 /= 0\nexit", "GPL", "div by zero", errno.EINVAL),
    "shift-by-64": (
        "r0 = 0\nr0 <<= 64\nexit", "GPL", "invalid shift 64", errno.EINVAL),
    "unreachable-instruction": (
        "r0 = 0\nexit\nr0 = 1\nexit", "GPL", "unreachable insn 2", errno.EINVAL),
    "infinite-loop": (
        "r0 = 0\nloop:\nif r0 == 0 goto loop\nexit", "GPL", "infinite loop detected at insn 1",
        errno.EINVAL),
    "stack-pointer-out-of-range": (
        "r2 = r10\nr2 += 536870912\nr0 = 0\nexit", "GPL",
        "math between fp pointer and 536870912 is not allowed", errno.EINVAL),
    "stack-pointer-returned-to-the-caller": (
        "call f\nr0 = 0\nexit\nf:\nr0 = r10\nexit", "GPL",
        "cannot return stack pointer to the caller", errno.EINVAL),
    "map-of-the-wrong-type-for-the-helper": (
        "*(u32 *)(r10 - 4) = 0\nr1 = map_fd(PROGS) ll\nr2 = r10\nr2 += -4\n"
        "call map_lookup_elem\nr0 = 0\nexit", "GPL",
        "cannot pass map_type 3 into func bpf_map_lookup_elem#1", errno.EINVAL),
    "reference-not-released": (
        "r1 = map_fd(RING) ll\nr2 = 8\nr3 = 0\ncall ringbuf_reserve\nr0 = 0\nexit", "GPL",
        "BPF_EXIT instruction in main prog would lead to reference leak", errno.EINVAL),
    "call-stack-too-deep": (
        "call f0\nr0 = 0\nexit\n" + _DEEP, "GPL", "the call stack of 9 frames is too deep",
        errno.E2BIG),
    # the largest fd: pyebpf's map handles count up from 3 for the process's life, so a
    # small number names a map once a long test session has made that many
    "map-fd-that-is-no-map": (
        "r1 = map_fd(2147483647) ll\nr0 = 0\nexit", "GPL",
        "fd 2147483647 is not pointing to valid bpf_map", errno.EBADF),
}


@pytest.fixture(scope="module")
def maps():
    """A program array and a ring buffer, pyebpf's and the kernel's (fds by name)."""
    mine = {"PROGS": Map.create("prog_array", 4, 4, 4), "RING": Map.create("ringbuf", 0, 0, 4096)}
    theirs = {"PROGS": kernel.KernelMap("prog_array", 4, 4, 4),
              "RING": kernel.KernelMap("ringbuf", 0, 0, 4096)}
    yield ({n: m.fd for n, m in mine.items()}, {n: m.fd for n, m in theirs.items()})
    for m in theirs.values():
        m.close()


def _with(text: str, fds: dict) -> bytes:
    for name, fd in fds.items():
        text = text.replace(f"map_fd({name})", f"map_fd({fd})")
    return asm.assemble(text)


def kernel_refusal(prog_type, code: bytes, license: str) -> tuple[int, str]:
    """The kernel's errno and its log."""
    count_comparison()
    fd, err, log = sysbpf.calls.prog_load(prog_type, code, license.encode() + b"\0",
                                          isa.BPF_LOG_LEVEL1)
    if fd >= 0:
        sysbpf.calls.close(fd)
        return 0, ""
    return err, log


def pyebpf_refusal(prog_type, code: bytes, license: str) -> tuple[int, str]:
    try:
        pyebpf.bpf(C.BPF_PROG_LOAD, dict(prog_type=int(prog_type), insns=code,
                                         license=license))
    except BpfError as exc:
        return exc.errno, str(exc)
    return 0, ""


@pytest.mark.parametrize("kind", REFUSALS, ids=REFUSALS)
@pytest.mark.parametrize("prog_type", (SF, CLS), ids=("socket_filter", "sched_cls"))
def test_a_refused_load_gets_the_kernels_errno(kind, prog_type, maps):
    text, license, words, code = REFUSALS[kind]
    mine, theirs = maps
    their_errno, their_words = kernel_refusal(prog_type, _with(text, theirs), license)
    assert (errno.errorcode.get(their_errno), words in their_words) == \
        (errno.errorcode[code], True), their_words
    my_errno, my_words = pyebpf_refusal(prog_type, _with(text, mine), license)
    assert errno.errorcode.get(my_errno) == errno.errorcode[their_errno], my_words
    assert words in my_words
