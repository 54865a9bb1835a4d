"""KPROBE programs in the engine: the pt_regs context, the modelled machine the tracing
helpers read, objects with kprobe sections, the 4.6 profile.  The load verdicts are held
against the kernel's; what a program attached to a real probe computes is in
tests/test_kprobe_kernel.py."""
from __future__ import annotations

import errno
import struct

import pytest

import pyebpf
from pyebpf import Map, Program, errors, isa
from pyebpf.trace import Machine, MachineSpecError, Task, pt_regs

import bpfc
from kprobe_value import into_value, run_into_value
from test_verifier import _access, code, disagreements, theirs
from skbdiff import EXIT

I = isa.Insn

KPROBE = isa.ProgType.BPF_PROG_TYPE_KPROBE
REGS = isa.PT_REGS["x86_64"][0]
USER = 0x7F0000001000                    # a user address
KERNEL = 0xFFFF888000200000              # a kernel (direct map) address


def kprobe(text: str, **kwargs) -> Program:
    return Program.from_asm(text, "kprobe", **kwargs)


def neg(v: int) -> int:
    return v - (1 << 64) if v >> 63 else v


def probe(helper: int, size: int, src: int, machine: Machine, dst_size: int = 64):
    """(r0, the destination's bytes) of ``helper(dst, size, src)`` with a map value as the
    destination, which starts filled with 0xAA."""
    return run_into_value(machine, f"""
        r1 = r7
        r1 += 8
        r2 = {size}
        r3 = {src} ll
        call {helper}""", dst_size, fill=0xAA)


# --- the context, against the kernel ---------------------------------------------------

@pytest.mark.kernel
@pytest.mark.parametrize("kind", ["LDX", "LDXSX", "STX", "ST"])
def test_every_pt_regs_access_is_accepted_exactly_when_the_kernel_accepts_it(kind):
    """Offsets -8..199 (x86-64's struct pt_regs is 168 bytes), sizes 1/2/4/8: reads
    inside the struct at an offset the size divides pass (kprobe_prog_is_valid_access),
    nothing else."""
    sizes = (1, 2, 4) if kind == "LDXSX" else (1, 2, 4, 8)
    cases = [(f"{kind} off={off} size={size}", _access(kind, off, size))
             for off in range(-8, 200) for size in sizes]
    bad = disagreements(cases, KPROBE)
    assert not bad, f"{len(bad)} of {len(cases)} differ:\n" + "\n".join(bad)


@pytest.mark.kernel
def test_the_helpers_offered_to_kprobe_programs_are_the_kernel_s():
    """A bare ``call N`` for every id: the kernel refuses the ids it does not offer
    ("invalid func", "cannot use helper") and goes on to check the arguments of the
    others."""
    from pyebpf.verifier import rules
    offered = set()
    for hid in range(1, isa.MAX_HELPER_ID + 1):
        reason = theirs(code(I(0x85, 0, 0, 0, hid), EXIT), KPROBE) or ""
        if "invalid func" not in reason and "cannot use helper" not in reason:
            offered.add(hid)
    assert sorted(rules.helpers_allowed(KPROBE, "current")) == sorted(offered)


def _probe_read_into_map_value(map_fd: int, helper: int, size: int) -> bytes:
    return pyebpf.asm.assemble(f"""
        *(u32 *)(r10 - 4) = 0
        r2 = r10
        r2 += -4
        r1 = map_fd({map_fd}) ll
        call 1
        if r0 == 0 goto end
        r1 = r0
        r2 = {size}
        r3 = 0
        call {helper}
    end:
        r0 = 0
        exit""")


@pytest.mark.kernel
@pytest.mark.parametrize("helper", [4, 45, 112, 113, 114, 115])
def test_probe_reads_into_a_map_value_load_as_the_kernel_loads_them(helper, kernel_oracle):
    """Sizes 0 (ARG_CONST_SIZE_OR_ZERO), the value's 64 bytes, and one past it."""
    ours_map = Map.create("array", 4, 64, 1)
    with kernel_oracle.KernelMap("array", 4, 64, 1) as their_map:
        for size in (0, 8, 64, 65):
            try:
                Program(_probe_read_into_map_value(ours_map.fd, helper, size), KPROBE)
                mine = None
            except errors.VerifierError as exc:
                mine = str(exc)
            kern = theirs(_probe_read_into_map_value(their_map.fd, helper, size), KPROBE)
            assert (mine is None) == (kern is None), (size, mine, kern)
            assert kern is None or kern in mine


# --- the context in the engine ----------------------------------------------------------

def test_registers_given_by_name_are_read_at_their_pt_regs_offsets():
    prog = kprobe(f"r0 = *(u64 *)(r1 + {REGS['si']})\nexit")
    assert prog.run(regs={"si": 0x1234, "di": 7}).retval == 0x1234


def test_a_narrow_read_takes_the_low_bytes_of_a_register():
    prog = kprobe(f"r0 = *(u16 *)(r1 + {REGS['ip'] + 2})\nexit")
    assert prog.run(regs={"ip": 0xAABBCCDD}).retval == 0xAABB


def test_registers_given_as_bytes_must_be_the_whole_struct():
    prog = kprobe("r0 = 0\nexit")
    with pytest.raises(MachineSpecError, match="168 bytes on x86_64, got 8"):
        prog.run(regs=bytes(8))


def test_an_unknown_register_name_is_refused_with_the_known_ones():
    with pytest.raises(MachineSpecError, match="has no register 'rdi'"):
        kprobe("r0 = 0\nexit").run(regs={"rdi": 1})


def test_a_write_to_pt_regs_faults_when_the_program_was_not_verified():
    prog = kprobe(f"*(u64 *)(r1 + {REGS['ax']}) = 1\nr0 = 0\nexit", verify=False)
    with pytest.raises(errors.MemoryFault, match="pt_regs: the region is read-only|read-only"):
        prog.run()


def test_a_kprobe_program_takes_no_packet():
    with pytest.raises(TypeError, match="takes no packet"):
        kprobe("r0 = 0\nexit").run(b"\0" * 14)


def test_the_return_value_is_the_low_32_bits_of_r0():
    assert kprobe("r0 = -1\nexit").run().retval == 0xFFFFFFFF


def test_arm64_pt_regs_put_x0_first_and_end_after_352_bytes():
    prog = kprobe("r0 = *(u64 *)(r1 + 0)\nexit", arch="arm64")
    assert prog.run(regs={"x0": 5}).retval == 5
    with pytest.raises(errors.VerifierError, match="off=352 size=8"):
        kprobe("r0 = *(u64 *)(r1 + 352)\nexit", arch="arm64")
    kprobe("r0 = *(u64 *)(r1 + 344)\nexit", arch="arm64")


# --- the machine: memory ---------------------------------------------------------------

def test_probe_read_user_copies_from_the_user_image():
    got = probe(112, 8, USER + 2, Machine(user_memory={USER: b"0123456789"}), 8)
    assert got == (0, b"23456789")


def test_an_unmapped_address_is_efault_and_the_destination_zeroed():
    got = probe(113, 8, KERNEL, Machine(), 8)
    assert got == (-errno.EFAULT, bytes(8))


def test_probe_read_kernel_of_a_user_address_is_erange_on_x86_64():
    got = probe(113, 8, USER, Machine(user_memory={USER: b"x" * 8}), 8)
    assert got == (-errno.ERANGE, bytes(8))


def test_probe_read_takes_a_user_address_from_the_user_image():
    got = probe(4, 4, USER, Machine(user_memory={USER: b"user"}), 4)
    assert got == (0, b"user")


def test_a_read_across_two_adjacent_ranges_sees_one_mapping():
    got = probe(113, 4, KERNEL + 2, Machine(kernel_memory={KERNEL: b"ab", KERNEL + 2: b"cdef"}), 4)
    assert got == (0, b"cdef")
    got = probe(113, 4, KERNEL, Machine(kernel_memory={KERNEL: b"ab", KERNEL + 2: b"cd"}), 4)
    assert got == (0, b"abcd")


def test_overlapping_ranges_are_refused():
    with pytest.raises(MachineSpecError, match="overlaps"):
        Machine(kernel_memory={KERNEL: b"abcd", KERNEL + 2: b"ef"})


def test_probe_read_kernel_str_cut_short_ends_in_nul_and_counts_the_buffer():
    got = probe(115, 4, KERNEL, Machine(kernel_memory={KERNEL: b"abcdef\0"}), 8)
    assert got == (4, b"abc\0" + b"\xaa" * 4)


def test_probe_read_user_str_counts_the_nul():
    got = probe(114, 8, USER, Machine(user_memory={USER: b"hi\0zz"}), 8)
    assert got == (3, b"hi\0" + b"\xaa" * 5)


def test_a_string_running_into_unmapped_memory_is_efault_and_zeroed():
    got = probe(115, 8, KERNEL, Machine(kernel_memory={KERNEL: b"abc"}), 8)
    assert got == (-errno.EFAULT, bytes(8))


# --- the machine: the task, stacks, counters ---------------------------------------------

def test_the_task_answers_pid_tgid_uid_gid_comm_and_its_address():
    out = Map.create("array", 4, 40, 1)
    prog = into_value(out, """
        call 14
        *(u64 *)(r7 + 0) = r0
        call 15
        *(u64 *)(r7 + 8) = r0
        call 35
        *(u64 *)(r7 + 16) = r0
        r1 = r7
        r1 += 24
        r2 = 16
        call 16""")
    task = Task(pid=11, tgid=10, uid=1000, gid=100, comm="curl", address=KERNEL)
    prog.run(machine=Machine(task=task))
    assert struct.unpack("<QQQ16s", out[bytes(4)]) == (
        10 << 32 | 11, 100 << 32 | 1000, KERNEL, b"curl".ljust(16, b"\0"))


def _stack_prog(stacks: Map, flags: int) -> Program:
    return kprobe(f"r2 = map_fd({stacks.fd}) ll\nr3 = {flags}\ncall 27\nexit")


def test_get_stackid_stores_the_kernel_stack_and_gives_the_same_id_again():
    stacks = Map.create("stack_trace", 4, 32, 8)
    machine = Machine(kernel_stack=(0xFFFFFFFF81000010, 0xFFFFFFFF81000020))
    prog = _stack_prog(stacks, 0)
    first, second = prog.run(machine=machine).retval, prog.run(machine=machine).retval
    assert first == second < 8
    assert struct.unpack("<4Q", stacks[struct.pack("<I", first)]) == (
        0xFFFFFFFF81000010, 0xFFFFFFFF81000020, 0, 0)


def test_get_stackid_of_an_empty_user_stack_is_efault():
    stacks = Map.create("stack_trace", 4, 32, 8)
    assert neg(_stack_prog(stacks, isa.BPF_F_USER_STACK).run().retval | (0xFFFFFFFF << 32)) \
        == -errno.EFAULT


def test_get_stack_copies_after_skip_and_zeroes_the_rest():
    out = Map.create("array", 4, 40, 1)
    prog = into_value(out, f"""
        r1 = r6
        r2 = r7
        r2 += 8
        r3 = 32
        r4 = {isa.BPF_F_USER_STACK | 1}
        call 67
        *(u64 *)(r7 + 0) = r0""")
    prog.run(machine=Machine(user_stack=(0x401000, 0x401100, 0x401200)))
    assert struct.unpack("<5Q", out[bytes(4)]) == (16, 0x401100, 0x401200, 0, 0)


def test_perf_event_read_value_gives_counter_enabled_and_running():
    events = Map.create("perf_event_array", 4, 4, 2)
    events.open(0)
    events.set_counter(0, 1234, enabled=50, running=40)
    out = Map.create("array", 4, 32, 1)
    prog = into_value(out, f"""
        r1 = map_fd({events.fd}) ll
        r2 = 0
        r3 = r7
        r3 += 8
        r4 = 24
        call 55
        *(u64 *)(r7 + 0) = r0""")
    prog.run(cpu=0)
    assert struct.unpack("<4Q", out[bytes(4)]) == (0, 1234, 50, 40)


def test_perf_event_output_from_a_kprobe_takes_no_context_bytes():
    events = Map.create("perf_event_array", 4, 4, 1)
    events.open(0)
    prog = kprobe(f"""
        *(u64 *)(r10 - 8) = 7
        r2 = map_fd({events.fd}) ll
        r3 = {(8 << 32) | 0xFFFFFFFF} ll
        r4 = r10
        r4 += -8
        r5 = 8
        call 25
        exit""")
    assert neg(prog.run().retval | (0xFFFFFFFF << 32)) == -errno.EINVAL
    assert events.drain() == []


def test_get_func_ip_and_the_attach_cookie_are_the_run_s():
    prog = kprobe("r6 = r1\ncall 173\nr7 = r0\nr1 = r6\ncall 174\nr0 += r7\nexit")
    assert prog.run(func_ip=0x1000, cookie=7).retval == 0x1007


# --- loading ----------------------------------------------------------------------------

def test_the_4_6_profile_wants_kern_version_equal_to_its_own():
    with pytest.raises(errors.LoadError, match="kern_version"):
        kprobe("r0 = 0\nexit", profile="4.6")
    kprobe("r0 = 0\nexit", profile="4.6", kern_version=isa.LINUX_VERSION_CODE_4_6)


def test_the_4_6_profile_offers_kprobes_the_4_6_helpers_only():
    with pytest.raises(errors.VerifierError, match="probe_read_user"):
        kprobe("r1 = r10\nr1 += -8\nr2 = 8\nr3 = 0\ncall 112\nr0 = 0\nexit", profile="4.6",
               kern_version=isa.LINUX_VERSION_CODE_4_6)


def test_an_object_s_kprobe_section_loads_and_reads_its_arguments_through_bpf_kprobe():
    obj = pyebpf.load(bpfc.compile_object("""
#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <asm/ptrace.h>
char LICENSE[] SEC("license") = "GPL";

SEC("kprobe/do_sys_openat2")
int BPF_KPROBE(openat2, int dfd, const char *filename)
{
    char name[16] = {};
    bpf_probe_read_user_str(name, sizeof(name), filename);
    return dfd + name[0];
}
""", flags=("-O2", "-D__TARGET_ARCH_x86"), prelude=False))
    prog = obj.program("openat2")
    assert prog.prog_type == KPROBE
    machine = Machine(user_memory={USER: b"/etc/passwd\0"})
    assert prog.run(regs={"di": 2, "si": USER}, machine=machine).retval == 2 + ord("/")


KPROBE_PROJECT_C = """\
#include <linux/bpf.h>
#include <asm/ptrace.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

SEC("kretprobe/vfs_read")
int BPF_KRETPROBE(read_done, long ret)
{
    return ret < 0;
}
"""
KPROBE_PROJECT_TEST = """\
def test_a_failed_read_is_flagged(pyebpf_load):
    prog = pyebpf_load("probe.c", cflags=("-D__TARGET_ARCH_x86",)).program()
    assert prog.run(regs={"ax": -5}).retval == 1
    assert prog.run(regs={"ax": 100}).retval == 0
"""


def test_the_pytest_plugin_loads_and_runs_a_kretprobe_program(pytester, monkeypatch, tmp_path):
    from plugin_project import plugin_args
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    pytester.makefile(".c", probe=KPROBE_PROJECT_C)
    pytester.makepyfile(test_probe=KPROBE_PROJECT_TEST)
    pytester.runpytest_inprocess(*plugin_args()).assert_outcomes(passed=1)


def test_a_co_re_read_of_the_current_task_finds_the_tgid_in_its_task_struct():
    """BPF_CORE_READ relocates against the target BTF, and the machine lays the task's
    task_struct out by the same BTF."""
    obj = pyebpf.load(bpfc.compile_object("""
#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
struct task_struct { int pid; int tgid; int prio; } __attribute__((preserve_access_index));
char LICENSE[] SEC("license") = "GPL";

SEC("kprobe/schedule")
int tgid_and_prio(void *ctx)
{
    struct task_struct *task = (void *)bpf_get_current_task();
    return BPF_CORE_READ(task, tgid) * 1000 + BPF_CORE_READ(task, prio);
}
""", prelude=False))
    machine = Machine(task=Task(pid=7, tgid=9, fields={"prio": 120}))
    assert obj.program("tgid_and_prio").run(machine=machine).retval == 9120


def test_a_task_field_the_struct_does_not_have_is_refused():
    with pytest.raises(MachineSpecError, match="no byte-aligned field 'priority'"):
        Machine(task=Task(fields={"priority": 1}))
