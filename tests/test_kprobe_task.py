"""The current task of a KPROBE program beyond its ids: loads through
``bpf_get_current_task_btf``'s pointer, ``bpf_get_task_stack``, ``bpf_send_signal`` and
``bpf_send_signal_thread``, and the helpers the kernel offers but refuses at load.

The load verdicts are the kernel's (``disagreements``); what a program computes is held
against a program the kernel runs on a uprobe (tests/test_kprobe_kernel.py explains why
a uprobe), recorded where bpf(2) is refused.
"""
from __future__ import annotations

import ctypes
import errno
import os
import signal
import struct

import pytest

import pyebpf
from pyebpf import Map, Program, isa
from pyebpf.btf import Kind
from pyebpf.btf.relo import target_btf
from pyebpf.trace import Machine, Task

import probes
import recorded_kernel
from skbdiff import EXIT
from kprobe_value import into_value
from test_kprobe_kernel import _build_target, _ips
from bpfc import compile_object
from objdiff import verdicts
from test_verifier import code, disagreements

I = isa.Insn
KPROBE = isa.ProgType.BPF_PROG_TYPE_KPROBE
ARRAY = isa.MapType.BPF_MAP_TYPE_ARRAY
OUT_SIZE = 320
PARENT = 0xFFFF888100400000              # where the tests put the parent's task_struct


def asm(text: str) -> bytes:
    return pyebpf.asm.assemble(text)


def field_offset(name: str) -> int:
    task = target_btf().by_name("task_struct", Kind.STRUCT)[0]
    return next(f.offset for f in task.fields() if f.name == name)


# --- load verdicts, against the kernel ---------------------------------------------------

ZERO_ARGS = "r1 = 0\nr2 = 0\nr3 = 0\nr4 = 0\nr5 = 0\n"
STACK_ARGS = "r2 = r10\nr2 += -64\nr3 = 64\nr4 = 0\ncall 141\nr0 = 0\nexit"
VERDICTS = [
    ("probe_write_user (refused under lockdown)", ZERO_ARGS + "call 36\nr0 = 0\nexit"),
    ("copy_from_user (sleepable programs only)", ZERO_ARGS + "call 148\nr0 = 0\nexit"),
    ("copy_from_user_task (sleepable programs only)", ZERO_ARGS + "call 191\nr0 = 0\nexit"),
    ("get_current_task_btf, then a load of its first field",
     "call 158\nr0 = *(u32 *)(r0 + 0)\nexit"),
    ("a store through get_current_task_btf's pointer",
     "call 158\n*(u32 *)(r0 + 0) = 1\nr0 = 0\nexit"),
    ("get_task_stack of a scalar", ZERO_ARGS + "call 141\nr0 = 0\nexit"),
    ("get_task_stack of the context", STACK_ARGS),
    ("get_task_stack of the task pointer plus 8", "call 158\nr1 = r0\nr1 += 8\n" + STACK_ARGS),
    ("get_task_stack of the task", "call 158\nr1 = r0\n" + STACK_ARGS),
    ("send_signal and send_signal_thread", "r1 = 10\ncall 109\nr1 = 10\ncall 117\nr0 = 0\nexit"),
]


@pytest.mark.kernel
@pytest.mark.parametrize("label, text", VERDICTS, ids=[v[0] for v in VERDICTS])
def test_task_helpers_load_exactly_when_the_kernel_loads_them(label, text):
    bad = disagreements([(label, asm(text))], KPROBE)
    assert not bad, bad[0]


def test_the_sleepable_only_helpers_are_refused_before_their_arguments_are_read():
    """check_helper_call refuses a might_sleep helper in a program that is not
    sleepable (pyebpf loads none sleepable) whatever its arguments."""
    for hid in (148, 191):
        with pytest.raises(pyebpf.errors.VerifierError,
                           match="helper call might sleep in a non-sleepable prog"):
            Program(code(I(0x85, 0, 0, 0, hid), EXIT), KPROBE)


# --- loads through the task's BTF pointer --------------------------------------------------

def task_field_loads(base: str, offsets) -> str:
    """Loads of pid, tgid, comm, real_parent and real_parent->tgid through ``base``,
    as a CO-RE program reads them, into r7's memory at 0, 4, 8, 24 and 32."""
    return f"""
        r1 = *(u32 *)({base} + {offsets("pid")})
        *(u32 *)(r7 + 0) = r1
        r1 = *(u32 *)({base} + {offsets("tgid")})
        *(u32 *)(r7 + 4) = r1
        r1 = *(u64 *)({base} + {offsets("comm")})
        *(u64 *)(r7 + 8) = r1
        r1 = *(u64 *)({base} + {offsets("comm") + 8})
        *(u64 *)(r7 + 16) = r1
        r1 = *(u64 *)({base} + {offsets("real_parent")})
        *(u64 *)(r7 + 24) = r1
        r1 = *(u32 *)(r1 + {offsets("tgid")})
        *(u32 *)(r7 + 32) = r1"""


def task_fields_program(out: Map) -> Program:
    return into_value(out, "call 158" + task_field_loads("r0", field_offset))


def read_task_fields(machine: Machine) -> tuple:
    out = Map.create("array", 4, 40, 1)
    task_fields_program(out).run(machine=machine)
    return struct.unpack("<II16sQI", out[bytes(4)][:36])


def test_loads_through_the_task_pointer_read_the_modelled_task_struct():
    machine = Machine(task=Task(pid=41, tgid=40, comm="worker", fields={"real_parent": PARENT}),
                      kernel_memory={PARENT + field_offset("tgid"): struct.pack("<I", 7)})
    assert read_task_fields(machine) == (41, 40, b"worker".ljust(16, b"\0"), PARENT, 7)


def test_fields_the_machine_does_not_hold_read_zero():
    """BPF_PROBE_MEM: a load the kernel image does not map reads 0, and so does one
    through the NULL real_parent of a task without fields given."""
    assert read_task_fields(Machine(task=Task(pid=41))) == (0, 0, bytes(16), 0, 0)


def test_a_packet_program_reads_zero_through_get_current_task_btf():
    """A tc run has no machine: the helper gives NULL and a load through it reads 0, as
    a probe load of a user address does."""
    prog = Program.from_asm(f"call 158\nr0 = *(u32 *)(r0 + {field_offset('tgid')})\nexit",
                            "sched_cls")
    assert prog.run(bytes(64)).retval == 0


def test_an_unverified_tracing_program_still_faults_on_a_load_no_region_holds():
    prog = Program.from_asm(f"r1 = {PARENT} ll\nr0 = *(u32 *)(r1 + 0)\nexit", "kprobe",
                            verify=False)
    with pytest.raises(pyebpf.errors.MemoryFault):
        prog.run(machine=Machine(task=Task(fields={})))


# --- get_task_stack -------------------------------------------------------------------------

def task_stack(machine: Machine, task: str, flags: int) -> tuple:
    """(r0, the 4 frames) of bpf_get_task_stack(``task``, buf, 32, ``flags``)."""
    out = Map.create("array", 4, 40, 1)
    into_value(out, f"""
        call 158
        {task}
        r2 = r7
        r2 += 8
        r3 = 32
        r4 = {flags}
        call 141
        *(u64 *)(r7 + 0) = r0""").run(machine=machine)
    r0, *frames = struct.unpack("<q4Q", out[bytes(4)])
    return r0, tuple(frames)


STACKS = Machine(task=Task(fields={"real_parent": PARENT}), kernel_stack=(0xFFFFFFFF81000010,),
                 user_stack=(0x401000, 0x401100, 0x401200))


def test_get_task_stack_of_the_current_task_walks_its_user_stack():
    assert task_stack(STACKS, "r1 = r0", isa.BPF_F_USER_STACK | 1) == (
        16, (0x401100, 0x401200, 0, 0))


def test_get_task_stack_of_the_current_task_walks_its_kernel_stack():
    assert task_stack(STACKS, "r1 = r0", 0) == (8, (0xFFFFFFFF81000010, 0, 0, 0))


def test_get_task_stack_of_another_task_finds_no_frames():
    """Only the current task's stacks are modelled."""
    assert task_stack(STACKS, f"r1 = *(u64 *)(r0 + {field_offset('real_parent')})",
                      isa.BPF_F_USER_STACK) == (0, (0, 0, 0, 0))


# --- send_signal ---------------------------------------------------------------------------

def send(machine: Machine, *calls) -> tuple:
    """(each call's r0, the run's Result) of ``(helper, signal)`` calls."""
    out = Map.create("array", 4, 8 * len(calls), 1)
    body = "\n".join(f"r1 = {sig} ll\ncall {hid}\n*(u64 *)(r7 + {8 * k}) = r0"
                     for k, (hid, sig) in enumerate(calls))
    res = into_value(out, body).run(machine=machine)
    return struct.unpack(f"<{len(calls)}q", out[bytes(4)]), res


def test_send_signal_marks_the_signal_sent_to_the_process_and_the_thread():
    rets, res = send(Machine(), (109, signal.SIGUSR1), (117, signal.SIGTERM),
                     (109, signal.SIGUSR1))
    assert rets == (0, 0, 0)
    assert res.signals == ((signal.SIGUSR1, "process"), (signal.SIGTERM, "thread"))


def test_signal_zero_is_accepted_and_sends_nothing():
    rets, res = send(Machine(), (109, 0), (117, 0))
    assert rets == (0, 0) and res.signals == ()


def test_a_signal_past_nsig_is_einval():
    rets, res = send(Machine(), (109, isa.NSIG + 1), (117, 1 << 31))
    assert rets == (-errno.EINVAL, -errno.EINVAL) and res.signals == ()


def test_the_signal_is_a_u32():
    """BPF_CALL_1(bpf_send_signal, u32, sig): the register's upper half is not looked at."""
    rets, res = send(Machine(), (117, 1 << 32 | signal.SIGUSR1))
    assert rets == (0,) and res.signals == ((signal.SIGUSR1, "thread"),)


def test_the_init_process_is_not_signalled():
    """is_global_init comes before the signal's check: EPERM even for a bad signal."""
    rets, res = send(Machine(task=Task(pid=1)), (109, signal.SIGUSR1), (117, 99))
    assert rets == (-errno.EPERM, -errno.EPERM) and res.signals == ()


def test_a_packet_run_has_no_task_to_signal():
    res = Program.from_asm("r1 = 10\ncall 109\nexit", "sched_cls").run(bytes(64))
    assert res.retval == -errno.EPERM and res.signals is None


# --- against a program the kernel runs on a uprobe ---------------------------------------

def uprobe_program(out_fd: int, offsets: dict) -> str:
    """What the probe records in ``out``: the task's fields through its BTF pointer (as
    task_fields_program), the answers of send_signal(0), send_signal(NSIG + 1) and
    send_signal_thread(SIGUSR2) at 40, 48, 56, get_task_stack of the user stack at
    64 (r0) and 128.. and get_stack's at 72 and 192.."""
    return f"""
        r6 = r1
        *(u32 *)(r10 - 4) = 0
        r2 = r10
        r2 += -4
        r1 = map_fd({out_fd}) ll
        call 1
        if r0 == 0 goto end
        r7 = r0
        call 158
        r8 = r0
        {task_field_loads("r8", offsets.__getitem__)}
        r1 = 0
        call 109
        *(u64 *)(r7 + 40) = r0
        r1 = {isa.NSIG + 1}
        call 109
        *(u64 *)(r7 + 48) = r0
        r1 = {int(signal.SIGUSR2)}
        call 117
        *(u64 *)(r7 + 56) = r0
        r1 = r8
        r2 = r7
        r2 += 128
        r3 = 64
        r4 = {isa.BPF_F_USER_STACK}
        call 141
        *(u64 *)(r7 + 64) = r0
        r1 = r6
        r2 = r7
        r2 += 192
        r3 = 64
        r4 = {isa.BPF_F_USER_STACK}
        call 67
        *(u64 *)(r7 + 72) = r0
    end:
        r0 = 0
        exit"""


FIELDS = ("pid", "tgid", "comm", "real_parent")


def _observe(tmp) -> dict:
    """Attach the program to a uprobe on the library's function, call it once with
    SIGUSR2 blocked, and return what the program recorded and what was pending."""
    from pyebpf.btf import Btf
    from pyebpf.kernel import sysbpf
    calls = sysbpf.calls
    with open("/sys/kernel/btf/vmlinux", "rb") as f:
        task = Btf.parse(f.read()).by_name("task_struct", Kind.STRUCT)[0]
    offsets = {f.name: f.offset for f in task.fields() if f.name in FIELDS}
    lib_path = _build_target(tmp)
    out_fd, err = calls.map_create(ARRAY, 4, OUT_SIZE, 1, 0, 0, b"out")
    assert out_fd >= 0, err
    try:
        fd, err, log = calls.prog_load(KPROBE, asm(uprobe_program(out_fd, offsets)),
                                       b"GPL\0", 1)
        assert fd >= 0, log
        lib = ctypes.CDLL(lib_path)
        target = lib.pyebpf_probe_target
        target.argtypes = (ctypes.c_char_p, ctypes.c_long, ctypes.c_char_p)
        buf = ctypes.create_string_buffer(b"x", 2)
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2})
        try:
            with probes.Probe("uprobe", lib_path, probes.file_offset(lib_path,
                                                                     "pyebpf_probe_target"), fd):
                target(buf, 1, buf)
            pending = sorted(int(s) for s in signal.sigpending())
            if signal.SIGUSR2 in signal.sigpending():
                signal.sigwait({signal.SIGUSR2})
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
            os.close(fd)
        err, value = calls.map_elem(isa.BpfCmd.BPF_MAP_LOOKUP_ELEM, out_fd, bytes(4), None, 0,
                                    OUT_SIZE)
        assert err == 0
    finally:
        os.close(out_fd)
    with open("/proc/thread-self/comm", "rb") as f:
        comm = f.read().strip()
    return {"out": value.hex(), "offsets": offsets, "pending": pending, "comm": comm.hex(),
            "ppid": os.getppid()}


@pytest.fixture(scope="module")
def task_run(tmp_path_factory, kernel_observation):
    """(kernel's observation, its out value, the engine's out value, the engine's Result)."""
    seen = kernel_observation("uprobe reading the task through its BTF pointer", "v1",
                              lambda: _observe(tmp_path_factory.mktemp("uprobe-task")),
                              (probes.ProbeUnavailable,))
    theirs = bytes.fromhex(seen["out"])
    if {n: field_offset(n) for n in FIELDS} != seen["offsets"]:
        pytest.skip("this BTF lays out task_struct unlike the kernel the answers were "
                    "recorded on")
    pid, tgid, comm, parent, parent_tgid = struct.unpack_from("<II16sQI", theirs)
    machine = Machine(
        task=Task(pid=pid, tgid=tgid, comm=comm.split(b"\0")[0], fields={"real_parent": parent}),
        kernel_memory={parent + field_offset("tgid"): struct.pack("<I", parent_tgid)},
        user_stack=_ips(theirs[192:256]))
    out = Map.create("array", 4, OUT_SIZE, 1)
    res = Program.from_asm(uprobe_program(out.fd, seen["offsets"]), "kprobe").run(
        machine=machine)
    return seen, theirs, out[bytes(4)], res


@pytest.mark.parametrize("what, start, end", [
    ("pid, tgid and comm through the BTF pointer", 0, 24),
    ("real_parent and its tgid", 24, 40),
    ("send_signal of 0 and of a signal past NSIG, send_signal_thread", 40, 64),
    ("get_task_stack and get_stack of the user stack", 64, 80),
    ("get_task_stack's frames", 128, 192),
])
def test_a_uprobe_reading_its_task_leaves_what_the_kernel_left(task_run, what, start, end):
    seen, theirs, ours, _ = task_run
    recorded_kernel.count_comparison()
    assert ours[start:end] == theirs[start:end], what


def test_the_kernel_s_fields_are_the_task_s_own(task_run):
    """The kernel read the calling thread's ids, name and parent, which the test knows."""
    seen, theirs, _, _ = task_run
    pid, tgid, comm, _, parent_tgid = struct.unpack_from("<II16sQI", theirs)
    assert comm.split(b"\0")[0] == bytes.fromhex(seen["comm"]) and parent_tgid == seen["ppid"]


def test_a_uprobe_s_send_signal_thread_is_the_signal_the_kernel_left_pending(task_run):
    seen, _, _, res = task_run
    recorded_kernel.count_comparison()
    assert [sig for sig, _ in res.signals] == seen["pending"]


# --- find_vma ------------------------------------------------------------------------------

def with_callback(main: str, callback: str) -> str:
    """``main`` then ``callback``, with ``CALLBACK`` in main replaced by the lddw
    offset of the callback's first instruction (BPF_PSEUDO_FUNC: relative to the slot
    after the lddw)."""
    lines = [ln.strip() for ln in main.strip().splitlines()]
    slot, at = 0, None
    for ln in lines:
        if ln.endswith(":"):
            continue
        if "CALLBACK" in ln:
            at = slot
        slot += 2 if ln.endswith(" ll") else 1
    return "\n".join(lines).replace("CALLBACK", str(slot - at - 1)) + "\n" + callback.strip()


def find_vma(machine: Machine, addr: int, flags: int = 0, task: str = "r1 = r0") -> tuple:
    """(r0, what the callback saw: vm_start, vm_end, vm_pgoff, calls) of
    bpf_find_vma(``task``, ``addr``, callback, &ctx, ``flags``)."""
    off = {n: f.offset for n, f in
           ((f.name, f) for f in target_btf().by_name("vm_area_struct", Kind.STRUCT)[0].fields())}
    out = Map.create("array", 4, 40, 1)
    Program.from_asm(with_callback(f"""
        *(u32 *)(r10 - 4) = 0
        r2 = r10
        r2 += -4
        r1 = map_fd({out.fd}) ll
        call 1
        if r0 == 0 goto end
        *(u64 *)(r10 - 16) = r0
        call 158
        {task}
        r2 = {addr} ll
        r3 = func(CALLBACK) ll
        r4 = r10
        r4 += -16
        r5 = {flags}
        call 180
        r7 = *(u64 *)(r10 - 16)
        *(u64 *)(r7 + 0) = r0
    end:
        r0 = 0
        exit""", f"""
        r6 = *(u64 *)(r3 + 0)
        r1 = *(u64 *)(r2 + {off["vm_start"]})
        *(u64 *)(r6 + 8) = r1
        r1 = *(u64 *)(r2 + {off["vm_end"]})
        *(u64 *)(r6 + 16) = r1
        r1 = *(u64 *)(r2 + {off["vm_pgoff"]})
        *(u64 *)(r6 + 24) = r1
        r1 = *(u64 *)(r6 + 32)
        r1 += 1
        *(u64 *)(r6 + 32) = r1
        r0 = 0
        exit"""), "kprobe", func_info=True).run(machine=machine)   # a callback needs func_info
    r0, *seen = struct.unpack("<q4Q", out[bytes(4)])
    return r0, tuple(seen)


MAPPED = Machine(task=Task(fields={"real_parent": PARENT}),
                 vmas=[(0x400000, 0x401000), {"vm_start": 0x7F0000000000,
                                              "vm_end": 0x7F0000010000, "vm_pgoff": 3}])


def test_find_vma_calls_back_once_with_the_mapping_holding_the_address():
    assert find_vma(MAPPED, 0x7F000000FFFF) == (0, (0x7F0000000000, 0x7F0000010000, 3, 1))


def test_find_vma_of_an_address_between_mappings_is_enoent():
    assert find_vma(MAPPED, 0x401000) == (-errno.ENOENT, (0, 0, 0, 0))


def test_find_vma_with_a_flag_is_einval():
    assert find_vma(MAPPED, 0x400000, flags=1) == (-errno.EINVAL, (0, 0, 0, 0))


def test_find_vma_of_another_task_is_enoent():
    assert find_vma(MAPPED, 0x400000, task=f"r1 = *(u64 *)(r0 + {field_offset('real_parent')})"
                    ) == (-errno.ENOENT, (0, 0, 0, 0))


def test_more_mappings_than_the_space_for_them_are_refused():
    from pyebpf.trace.machine import VMA_SPACE
    with pytest.raises(pyebpf.trace.MachineSpecError, match="do not fit"):
        Machine(vmas=[(k << 12, (k << 12) + 1) for k in range(VMA_SPACE // 64 + 1)])


def test_overlapping_mappings_are_refused():
    with pytest.raises(pyebpf.trace.MachineSpecError, match="overlaps"):
        Machine(vmas=[(0x1000, 0x3000), (0x2000, 0x4000)])


FIND_VMA_C = """
struct vm_area_struct { unsigned long vm_start, vm_end; } __attribute__((preserve_access_index));
char LICENSE[] SEC("license") = "GPL";

static long visit(struct task_struct *task, struct vm_area_struct *vma, void *ctx)
{
    %s
}

SEC("kprobe/do_nanosleep")
int prog(void *ctx)
{
    return bpf_find_vma(%s, 0x400000, visit, 0, 0);
}
"""


@pytest.mark.kernel
@pytest.mark.parametrize("label, body, task", [
    ("a callback returning 0", "return 0;", "bpf_get_current_task_btf()"),
    ("a callback returning 2", "return 2;", "bpf_get_current_task_btf()"),
    ("a callback reading vm_end", "return vma->vm_end & 1;", "bpf_get_current_task_btf()"),
    ("a callback writing the vma", "vma->vm_end = 0; return 0;", "bpf_get_current_task_btf()"),
    ("a scalar for the task", "return 0;", "(void *)bpf_get_current_task()"),
])
def test_find_vma_loads_exactly_when_the_kernel_loads_it(label, body, task):
    ours, theirs = verdicts(compile_object(FIND_VMA_C % (body, task)))
    assert (ours is None) == (theirs is None) and (theirs is None or theirs in ours), \
        f"{label}: pyebpf {ours!r}, kernel {theirs!r}"
