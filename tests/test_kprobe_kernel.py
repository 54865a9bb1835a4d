"""KPROBE programs against the running kernel.

A program attached to a real probe copies what it saw (its ``pt_regs``) and what its
helpers answered (probe reads, pid/tgid, uid/gid, comm, the task pointer, the probed
address, stack ids and stacks) into a map; the test triggers the probe by calling the
probed function with arguments it owns.  pyebpf then runs the same program on those
registers, a :class:`pyebpf.trace.Machine` holding the same buffers, task and stacks,
and must leave the same map contents.

The kernel here is built without CONFIG_KPROBES, so the kprobe PMU is missing: the test
on ``do_sys_openat2`` skips with that reason.  Uprobes take KPROBE programs through the
same path (``perf_event_set_bpf_prog`` requires BPF_PROG_TYPE_KPROBE for both), so the
differential runs on a uprobe on a function of a library the test builds.  What the
kernel showed is recorded (``--record-kernel-answers``) and replayed where bpf(2) is
refused, so the engine side runs everywhere.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import struct
import subprocess

import pytest

import pyebpf
from pyebpf import isa
from pyebpf.trace import Machine, Task, replay

import probes
import recorded_kernel

KPROBE = isa.ProgType.BPF_PROG_TYPE_KPROBE
ARRAY = isa.MapType.BPF_MAP_TYPE_ARRAY
STACK_TRACE = isa.MapType.BPF_MAP_TYPE_STACK_TRACE
LOOKUP = isa.BpfCmd.BPF_MAP_LOOKUP_ELEM
OUT_SIZE = 512
STACK_DEPTH = 16
REGS = isa.PT_REGS["x86_64"][0]
TARGET_C = r"""
__attribute__((noinline)) long pyebpf_probe_target(const char *buf, long len,
                                                   const char *empty)
{
    long s = 0;
    for (long i = 0; i < len; i++)
        s += buf[i];
    return s + empty[0];
}
"""
BUF = b"pyebpf probes this buffer: 0123456789abcdef" + b"\0"


def program(out_fd: int, stacks_fd: int, tgid_offset: int) -> str:
    """The probe's program: every answer into the one value of ``out`` at fixed offsets
    (OFFSETS)."""
    lines = ["r6 = r1", "*(u32 *)(r10 - 4) = 0", "r2 = r10", "r2 += -4",
             f"r1 = map_fd({out_fd}) ll", "call 1", "if r0 == 0 goto out", "r7 = r0"]
    for off in range(0, 168, 8):
        lines += [f"r1 = *(u64 *)(r6 + {off})", f"*(u64 *)(r7 + {off}) = r1"]
    lines += ["call 14", "*(u64 *)(r7 + 168) = r0", "call 15", "*(u64 *)(r7 + 176) = r0"]
    lines += ["r1 = r7", "r1 += 184", "r2 = 16", "call 16"]
    lines += ["call 35", "*(u64 *)(r7 + 200) = r0"]
    lines += ["r1 = r6", "call 173", "*(u64 *)(r7 + 208) = r0"]
    di, dx = f"*(u64 *)(r6 + {REGS['di']})", f"*(u64 *)(r6 + {REGS['dx']})"
    for ret_at, helper, dst, size, src in (
            (216, 112, 224, 32, di),        # probe_read_user: the buffer
            (256, 114, 264, 48, di),        # probe_read_user_str: the string
            (312, 114, 320, 5, di),         # ... cut to 5 bytes
            (328, 114, 336, 8, dx),         # ... of an empty string
            (344, 113, 352, 8, di),         # probe_read_kernel of a user address
            (360, 4, 368, 8, di),           # probe_read: a user address, read as one
            (376, 112, 384, 8, "16")):      # probe_read_user of an unmapped address
        lines += ["r1 = r7", f"r1 += {dst}", f"r2 = {size}", f"r3 = {src}", f"call {helper}",
                  f"*(u64 *)(r7 + {ret_at}) = r0"]
    lines += ["r3 = *(u64 *)(r7 + 200)", f"r3 += {tgid_offset}", "r1 = r7", "r1 += 400",
              "r2 = 4", "call 113", "*(u64 *)(r7 + 392) = r0"]
    for ret_at, flags in ((408, 0), (416, isa.BPF_F_USER_STACK)):
        lines += ["r1 = r6", f"r2 = map_fd({stacks_fd}) ll", f"r3 = {flags}", "call 27",
                  f"*(u64 *)(r7 + {ret_at}) = r0"]
    lines += ["r1 = r6", "r2 = r7", "r2 += 432", "r3 = 64", f"r4 = {isa.BPF_F_USER_STACK}",
              "call 67", "*(u64 *)(r7 + 424) = r0"]
    # a kernel string on the program's own stack
    lines += ["r1 = 0x6968", "*(u64 *)(r10 - 16) = r1", "r1 = r7", "r1 += 504", "r2 = 8",
              "r3 = r10", "r3 += -16", "call 115", "*(u64 *)(r7 + 496) = r0"]
    lines += ["out:", "r0 = 0", "exit"]
    return "\n".join(lines)


def _tgid_offset() -> int:
    from pyebpf.btf import Btf, Kind
    with open("/sys/kernel/btf/vmlinux", "rb") as f:
        btf = Btf.parse(f.read())
    task = btf.by_name("task_struct", Kind.STRUCT)[0]
    return next(m.bit_offset // 8 for m in task.members if m.name == "tgid")


def _build_target(tmp_path) -> str:
    cc = shutil.which("cc") or shutil.which("clang-19")
    if cc is None:
        raise probes.ProbeUnavailable("no C compiler to build the probed library")
    src, lib = tmp_path / "target.c", tmp_path / "libtarget.so"
    src.write_text(TARGET_C)
    subprocess.run([cc, "-O1", "-fno-omit-frame-pointer", "-shared", "-fPIC", "-o", str(lib),
                    str(src)], check=True)
    return str(lib)


def _observe_uprobe(tmp_path) -> dict:
    """Attach the program to a uprobe on pyebpf_probe_target, call it once, and return
    what the program recorded and what the test knows of the call."""
    from pyebpf.kernel import sysbpf
    calls = sysbpf.calls
    lib_path = _build_target(tmp_path)
    tgid_offset = _tgid_offset()
    out_fd, err = calls.map_create(ARRAY, 4, OUT_SIZE, 1, 0, 0, b"out")
    stacks_fd, err2 = calls.map_create(STACK_TRACE, 4, 8 * STACK_DEPTH, 64, 0, 0, b"stacks")
    assert out_fd >= 0 and stacks_fd >= 0, (err, err2)
    try:
        text = program(out_fd, stacks_fd, tgid_offset)
        fd, err, log = calls.prog_load(KPROBE, pyebpf.asm.assemble(text), b"GPL\0", 1)
        assert fd >= 0, log
        try:
            lib = ctypes.CDLL(lib_path)
            target = lib.pyebpf_probe_target
            target.restype = ctypes.c_long
            target.argtypes = (ctypes.c_char_p, ctypes.c_long, ctypes.c_char_p)
            buf, empty = ctypes.create_string_buffer(BUF, len(BUF)), ctypes.create_string_buffer(b"", 1)
            with probes.Probe("uprobe", lib_path, probes.file_offset(lib_path, "pyebpf_probe_target"), fd):
                target(buf, len(BUF), empty)
        finally:
            os.close(fd)
        err, value = calls.map_elem(LOOKUP, out_fd, bytes(4), None, 0, OUT_SIZE)
        assert err == 0
        stacks = {}
        for at in (408, 416):
            sid = struct.unpack_from("<q", value, at)[0]
            if sid >= 0:
                err, ips = calls.map_elem(LOOKUP, stacks_fd, struct.pack("<I", sid), None, 0,
                                          8 * STACK_DEPTH)
                assert err == 0
                stacks[str(sid)] = ips.hex()
    finally:
        os.close(out_fd)
        os.close(stacks_fd)
    return {"out": value.hex(), "stacks": stacks, "tgid_offset": tgid_offset,
            "buf": [ctypes.addressof(buf), BUF.hex()], "empty": ctypes.addressof(empty),
            "func": ctypes.cast(target, ctypes.c_void_p).value}


def _ips(raw: bytes) -> tuple:
    ips = list(struct.unpack(f"<{len(raw) // 8}Q", raw))
    while ips and ips[-1] == 0:
        ips.pop()
    return tuple(ips)


@pytest.fixture(scope="module")
def uprobe_run(tmp_path_factory, kernel_observation):
    """(kernel's observation, engine's out value, engine's stack map) for one probe hit."""
    seen = kernel_observation("uprobe on pyebpf_probe_target", "v1",
                   lambda: _observe_uprobe(tmp_path_factory.mktemp("uprobe")),
                   (probes.ProbeUnavailable,))
    out = bytes.fromhex(seen["out"])
    out_map = pyebpf.Map.create("array", 4, OUT_SIZE, 1)
    stack_map = pyebpf.Map.create("stack_trace", 4, 8 * STACK_DEPTH, 64)
    prog = pyebpf.Program.from_asm(program(out_map.fd, stack_map.fd, seen["tgid_offset"]),
                                   "kprobe")
    pid_tgid, uid_gid = struct.unpack_from("<QQ", out, 168)
    task_addr = struct.unpack_from("<Q", out, 200)[0]
    user_stack = ()
    user_id = struct.unpack_from("<q", out, 416)[0]
    if str(user_id) in seen["stacks"]:
        user_stack = _ips(bytes.fromhex(seen["stacks"][str(user_id)]))
    buf_addr, buf = seen["buf"]
    machine = Machine(
        task=Task(pid=pid_tgid & 0xFFFFFFFF, tgid=pid_tgid >> 32, uid=uid_gid & 0xFFFFFFFF,
                  gid=uid_gid >> 32, comm=out[184:200].split(b"\0")[0], address=task_addr),
        user_memory={buf_addr: bytes.fromhex(buf), seen["empty"]: b"\0"},
        kernel_memory={task_addr + seen["tgid_offset"]: struct.pack("<I", pid_tgid >> 32)},
        user_stack=user_stack)
    prog.run(regs=out[:168], machine=machine, func_ip=seen["func"])
    ours = out_map[bytes(4)]
    stacks = {str(struct.unpack("<I", k)[0]): v.hex() for k, v in stack_map.items()}
    return seen, out, ours, stacks, machine


def _engine_maps(seen: dict):
    """A fresh copy of the uprobe program and its out and stack maps."""
    out_map = pyebpf.Map.create("array", 4, OUT_SIZE, 1, name="out")
    stack_map = pyebpf.Map.create("stack_trace", 4, 8 * STACK_DEPTH, 64, name="stacks")
    prog = pyebpf.Program.from_asm(program(out_map.fd, stack_map.fd, seen["tgid_offset"]),
                                   "kprobe")
    return prog, out_map, stack_map


def _field(value: bytes, start: int, end: int) -> bytes:
    return value[start:end]


@pytest.mark.parametrize("what, start, end", [
    ("pt_regs copied from the context", 0, 168),
    ("pid_tgid and uid_gid", 168, 184),
    ("comm", 184, 200),
    ("the task pointer and the probed address", 200, 216),
    ("probe_read_user of the buffer", 216, 256),
    ("probe_read_user_str of the string", 256, 312),
    ("probe_read_user_str cut short", 312, 328),
    ("probe_read_user_str of an empty string", 328, 344),
    ("probe_read_kernel of a user address", 344, 360),
    ("probe_read of a user address", 360, 376),
    ("probe_read_user of an unmapped address", 376, 392),
    ("probe_read_kernel of the task's tgid", 392, 408),
    ("get_stackid of the kernel and user stacks", 408, 424),
    ("get_stack of the user stack", 424, 496),
    ("probe_read_kernel_str of the program's stack", 496, 512),
])
def test_a_uprobe_program_leaves_what_the_kernel_left(uprobe_run, what, start, end):
    seen, theirs, ours, _, _ = uprobe_run
    recorded_kernel.count_comparison()
    assert _field(ours, start, end) == _field(theirs, start, end), what


def test_a_uprobe_program_stores_the_same_stacks_under_the_same_ids(uprobe_run):
    seen, _, _, stacks, _ = uprobe_run
    recorded_kernel.count_comparison()
    assert stacks == seen["stacks"]


def test_the_uprobe_hit_run_through_run_many_leaves_what_the_kernel_left(uprobe_run):
    seen, theirs, _, stacks, machine = uprobe_run
    prog, out_map, stack_map = _engine_maps(seen)
    batch = prog.run_many([theirs[:168]], machine=machine, func_ip=seen["func"])
    recorded_kernel.count_comparison()
    assert (batch.faults, out_map[bytes(4)]) == ([], theirs)
    assert {str(struct.unpack("<I", k)[0]): v.hex() for k, v in stack_map.items()} == \
        seen["stacks"]


def test_the_uprobe_hit_replayed_from_an_events_file_leaves_what_the_kernel_left(
        uprobe_run, tmp_path):
    seen, theirs, _, _, machine = uprobe_run
    prog, out_map, stack_map = _engine_maps(seen)
    task = machine.task
    hit = replay.event(regs=theirs[:168], func_ip=seen["func"],
                       task={"pid": task.pid, "tgid": task.tgid, "uid": task.uid,
                             "gid": task.gid, "comm": task.comm_bytes.decode(),
                             "address": task.address},
                       user_memory=dict(machine.user_memory),
                       kernel_memory=dict(machine.kernel_memory),
                       user_stack=machine.user_stack)
    replay.write_events(tmp_path / "hit.jsonl", [hit])
    out = replay.replay(prog, replay.read_events(tmp_path / "hit.jsonl"),
                        {"out": out_map, "stacks": stack_map})
    recorded_kernel.count_comparison()
    assert out["maps"]["out"] == [[bytes(4).hex(), theirs.hex()]]
    assert {str(int.from_bytes(bytes.fromhex(k), "little")): v
            for k, v in out["maps"]["stacks"]} == seen["stacks"]


OPENAT_PROGRAM = """
    r6 = r1
    *(u32 *)(r10 - 4) = 0
    r2 = r10
    r2 += -4
    r1 = map_fd({fd}) ll
    call 1
    if r0 == 0 goto out
    r7 = r0
{copy}
    call 14
    *(u64 *)(r7 + 168) = r0
    r1 = r7
    r1 += 184
    r2 = 64
    r3 = *(u64 *)(r6 + {si})
    call 114
    *(u64 *)(r7 + 176) = r0
out:
    r0 = 0
    exit"""
OPENAT_PATH = b"/pyebpf/kprobe/does-not-exist\0"


def _openat_program(fd: int) -> str:
    copy = "\n".join(f"    r1 = *(u64 *)(r6 + {off})\n    *(u64 *)(r7 + {off}) = r1"
                     for off in range(0, 168, 8))
    return OPENAT_PROGRAM.format(fd=fd, copy=copy, si=REGS["si"])


def _observe_openat() -> dict:
    """A kprobe on do_sys_openat2 (dfd, filename, how) and one openat(2) of a path this
    test owns."""
    from pyebpf.kernel import sysbpf
    calls = sysbpf.calls
    probes.pmu_type("kprobe")
    out_fd, err = calls.map_create(ARRAY, 4, 256, 1, 0, 0, b"out")
    assert out_fd >= 0, err
    try:
        fd, err, log = calls.prog_load(KPROBE, pyebpf.asm.assemble(_openat_program(out_fd)),
                                       b"GPL\0", 1)
        assert fd >= 0, log
        path = ctypes.create_string_buffer(OPENAT_PATH, len(OPENAT_PATH))
        try:
            with probes.Probe("kprobe", "do_sys_openat2", 0, fd):
                libc = ctypes.CDLL(None, use_errno=True)
                libc.syscall(257, -100, path, os.O_RDONLY, 0)       # openat, x86-64
        finally:
            os.close(fd)
        err, value = calls.map_elem(LOOKUP, out_fd, bytes(4), None, 0, 256)
        assert err == 0
    finally:
        os.close(out_fd)
    return {"out": value.hex(), "path": [ctypes.addressof(path), OPENAT_PATH.hex()]}


def test_a_kprobe_on_do_sys_openat2_leaves_what_the_kernel_left(kernel_observation):
    """The registers of the probed call, the task's ids and the filename read from the
    caller's memory; where the kernel has no kprobes the test says so."""
    seen = kernel_observation("kprobe on do_sys_openat2", "v1", _observe_openat,
                              (probes.ProbeUnavailable,))
    theirs = bytes.fromhex(seen["out"])
    out_map = pyebpf.Map.create("array", 4, 256, 1)
    prog = pyebpf.Program.from_asm(_openat_program(out_map.fd), "kprobe")
    pid_tgid = struct.unpack_from("<Q", theirs, 168)[0]
    addr, path = seen["path"]
    machine = Machine(task=Task(pid=pid_tgid & 0xFFFFFFFF, tgid=pid_tgid >> 32),
                      user_memory={addr: bytes.fromhex(path)})
    prog.run(regs=theirs[:168], machine=machine)
    recorded_kernel.count_comparison()
    assert out_map[bytes(4)] == theirs
