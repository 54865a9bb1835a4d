"""Each memory argument of each helper pyebpf implements for tc and socket filters is
read, written or both as the running kernel reads and writes it (``MEM_RDONLY``,
``MEM_WRITE``, ``MEM_UNINIT`` of its ``bpf_func_proto``), the kernel the expected value.

Nine probes tell the flags apart, each a small tc program that passes one memory
argument and otherwise calls the helper correctly (the prototypes do not depend on the
program type):

- ``rdonly_map``: a value of a frozen ``BPF_F_RDONLY_PROG`` array is refused to an
  argument the helper writes (``check_map_access_type``: "write into map forbidden");
- ``spilled_ptr``: a pointer spilled in the stack buffer is still a pointer after a
  helper that only reads it, an unknown scalar after one that may write it
  (``check_stack_range_initialized`` clobbers it, raw mode's byte writes scrub it);
- ``beside_spill``: a 4-byte spill in the slot the buffer begins in survives a
  ``MEM_WRITE`` argument but not a ``MEM_UNINIT`` one, whose bytes
  ``check_helper_call`` writes one at a time (``check_stack_write_fixed_off``);
- ``rdonly_mem``, ``rdwr_mem``: a ``bpf_dynptr_slice`` (``MEM_RDONLY``) is taken only
  by an argument with ``MEM_RDONLY``, neither slice by a map's key or value
  (``check_reg_type`` drops the dynptr flags for ``ARG_PTR_TO_MEM`` alone);
- ``ringbuf``: a ring buffer record is memory to every one of them, but not beside a
  socket (``check_func_arg``: "more than one arg with ref_obj_id");
- ``uninit_stack``: stack never written, refused unless the helper writes it first;
- ``packet``: a checked packet pointer, taken only by a helper with ``pkt_access``;
- ``dynptr_data``: a ``bpf_dynptr_data`` slice, plain ``PTR_TO_MEM`` to the kernel,
  is memory to every one of them, a map's key or value too;
- ``maybe_null``, ``maybe_null_slice``: a hash map's value and a writable dynptr slice
  not checked against NULL, taken only by an argument with ``PTR_MAYBE_NULL``
  (``check_reg_type`` drops the flag from the register's type for it).
"""
from __future__ import annotations

import re

import pytest

from pyebpf import Map, asm, isa, kernel, verifier
from pyebpf.errors import KernelError, VerifierError
from pyebpf.kernel.vmlinux import kfunc_btf_id
from skbdiff import CLS

# An argument: "ctx" (r6), an int, "mem" (memory, with its size in the next argument),
# "fix" (fixed-size memory: strtol's result, check_mtu's length, a header), "str" (a
# constant string), "map:KIND" (a map's fd), "sock" (a socket from bpf_skc_lookup_tcp, spilled
# at r10 - 136 and released after the call).
ARGS = {
    "map_lookup_elem": ("map:hash", "mem"),
    "map_update_elem": ("map:hash", "mem", "mem", 0),
    "map_delete_elem": ("map:hash", "mem"),
    "map_push_elem": ("map:queue", "mem", 0),
    "map_pop_elem": ("map:queue", "mem"),
    "map_peek_elem": ("map:queue", "mem"),
    "strtol": ("mem", 8, 0, "fix"),
    "strtoul": ("mem", 8, 0, "fix"),
    "strncmp": ("mem", 8, "str"),
    "snprintf": ("mem", 8, "str", "mem", 8),
    "trace_printk": ("mem", 8),
    "trace_vprintk": ("mem", 8, "mem", 8),
    "dynptr_from_mem": ("mem", 8, 0, "dynptr_out"),
    "dynptr_read": ("mem", 8, "dynptr", 0, 0),
    "dynptr_write": ("dynptr", 0, "mem", 8, 0),
    "get_current_comm": ("mem", 8),
    "skb_store_bytes": ("ctx", 0, "mem", 8, 0),
    "skb_get_tunnel_key": ("ctx", "mem", 8, 0),
    "skb_set_tunnel_key": ("ctx", "mem", 8, 0),
    "perf_event_output": ("ctx", "map:perf_event_array", 0, "mem", 8),
    "skb_load_bytes": ("ctx", 0, "mem", 8),
    "csum_diff": ("mem", 8, "mem", 8, 0),
    "skb_get_tunnel_opt": ("ctx", "mem", 8),
    "skb_set_tunnel_opt": ("ctx", "mem", 8),
    "check_mtu": ("ctx", 0, "fix", 0, 0),
    "skb_get_xfrm_state": ("ctx", 0, "mem", 8, 0),
    "skb_load_bytes_relative": ("ctx", 0, "mem", 8, 0),
    "ringbuf_output": ("map:ringbuf", "mem", 8, 0),
    "fib_lookup": ("ctx", "mem", 8, 0),
    "redirect_neigh": (1, "mem", 8, 0),
    "sk_lookup_tcp": ("ctx", "mem", 8, 0, 0),
    "sk_lookup_udp": ("ctx", "mem", 8, 0, 0),
    "skc_lookup_tcp": ("ctx", "mem", 8, 0, 0),
    "tcp_check_syncookie": ("sock", "mem", 20, "mem", 20),
    "tcp_gen_syncookie": ("sock", "mem", 20, "mem", 20),
    "tcp_raw_gen_syncookie_ipv4": ("fix", "mem", 20),
    "tcp_raw_gen_syncookie_ipv6": ("fix", "mem", 20),
    "tcp_raw_check_syncookie_ipv4": ("fix", "fix"),
    "tcp_raw_check_syncookie_ipv6": ("fix", "fix"),
    "probe_read_kernel": ("mem", 8, 0),
    "probe_read_kernel_str": ("mem", 8, 0),
    "probe_read_user": ("mem", 8, 0),
    "probe_read_user_str": ("mem", 8, 0),
    "get_ns_current_pid_tgid": (0, 0, "mem", 8),
}
ACQUIRES = {"sk_lookup_tcp", "sk_lookup_udp", "skc_lookup_tcp"}
MAPS = {"hash": ("hash", 8, 8, 4, 0), "queue": ("queue", 0, 8, 4, 0),
        "perf_event_array": ("perf_event_array", 4, 4, 4, 0),
        "ringbuf": ("ringbuf", 0, 0, 4096, 0), "dynmem": ("array", 4, 64, 1, 0),
        "hash64": ("hash", 4, 64, 1, 0),
        "rodata": ("array", 4, 64, 1, isa.BPF_F_RDONLY_PROG)}
RODATA = b"%d\0".ljust(64, b"\0")
PROBES = ("rdonly_map", "spilled_ptr", "beside_spill", "rdonly_mem", "rdwr_mem", "ringbuf",
          "uninit_stack", "packet", "dynptr_data", "maybe_null", "maybe_null_slice")

# r7: the helper's result; the other memory arguments get r10 - 128, zeroed
PROLOGUE = "r6 = r1\n" + "".join(f"*(u64 *)(r10 - {off}) = 0\n" for off in range(72, 136, 8))
LOOKUP = ("*(u32 *)(r10 - 4) = 0\nr2 = r10\nr2 += -4\nr1 = map_fd({{{name}}}) ll\ncall 1\n"
          "if r0 == 0 goto out\n")
PROBE_SETUP = {
    "rdonly_map": LOOKUP.format(name="rodata") + "r8 = r0\n",
    "spilled_ptr": "".join(f"*(u64 *)(r10 - {off}) = 0\n" for off in range(8, 64, 8)) +
                   "*(u64 *)(r10 - 64) = r6\nr8 = r10\nr8 += -64\n",
    "beside_spill": "r1 = 5\n*(u32 *)(r10 - 72) = r1\nr8 = r10\nr8 += -68\n",
    "rdonly_mem": ("r1 = r6\nr2 = 0\nr3 = r10\nr3 += -24\ncall KFUNC(bpf_dynptr_from_skb)\n"
                   "r1 = r10\nr1 += -24\nr2 = 0\nr3 = 0\nr4 = 64\n"
                   "call KFUNC(bpf_dynptr_slice)\nif r0 == 0 goto out\nr8 = r0\n"),
}
PROBE_SETUP["rdwr_mem"] = PROBE_SETUP["rdonly_mem"].replace("bpf_dynptr_slice)",
                                                            "bpf_dynptr_slice_rdwr)")
PROBE_SETUP["maybe_null"] = LOOKUP.format(name="hash64").replace("if r0 == 0 goto out\n",
                                                                 "r8 = r0\n")
PROBE_SETUP["maybe_null_slice"] = PROBE_SETUP["rdwr_mem"].replace("if r0 == 0 goto out\n", "")
PROBE_SETUP["uninit_stack"] = "r8 = r10\nr8 += -256\n"
PROBE_SETUP["packet"] = ("r8 = *(u32 *)(r6 + 76)\nr1 = *(u32 *)(r6 + 80)\nr2 = r8\nr2 += 64\n"
                         "if r2 > r1 goto out\n")
PROBE_SETUP["dynptr_data"] = (LOOKUP.format(name="dynmem") +
                              "r1 = r0\nr2 = 64\nr3 = 0\nr4 = r10\nr4 += -24\n"
                              f"call {isa.HELPER_IDS['dynptr_from_mem']}\n"
                              "r1 = r10\nr1 += -24\nr2 = 0\nr3 = 64\n"
                              f"call {isa.HELPER_IDS['dynptr_data']}\n"
                              "if r0 == 0 goto out\nr8 = r0\n")
PROBE_SETUP["ringbuf"] = ("r1 = map_fd({ringbuf}) ll\nr2 = 64\nr3 = 0\ncall 131\n"
                          "if r0 == 0 goto out\nr8 = r0\n")
# after the call: the spilled ctx pointer read back and dereferenced
PROBE_CHECK = {"spilled_ptr": "r1 = *(u64 *)(r10 - 64)\nr0 = *(u32 *)(r1 + 0)\n",
               "beside_spill": "r1 = *(u32 *)(r10 - 72)\nif r1 == 5 goto +1\n"
                               "r0 = *(u64 *)(r9 + 0)\n",
               "ringbuf": "r1 = r8\nr2 = 0\ncall 133\n"}
# a socket (a NULL one skips the call), spilled where no probe's memory reaches
SOCK = ("r1 = r6\nr2 = r10\nr2 += -128\nr3 = 8\nr4 = 0\nr5 = 0\n"
        f"call {isa.HELPER_IDS['skc_lookup_tcp']}\nif r0 == 0 goto nosock\n"
        "*(u64 *)(r10 - 136) = r0\n")
# a local dynptr over a map value, at r10 - 40 (for the helpers that take one)
DYNPTR = (LOOKUP.format(name="dynmem") + "r1 = r0\nr2 = 8\nr3 = 0\nr4 = r10\nr4 += -40\n"
          "call 197\n")


def _program(helper: str, probed: int, probe: str, args: tuple | None = None) -> str:
    """The probe program: argument ``probed`` (0-based) of ``helper`` is ``probe``'s
    memory, r8; ``{name}`` stands for each map's fd."""
    args = args or ARGS[helper]
    lines = [PROLOGUE]
    if "dynptr" in args:
        lines.append(DYNPTR)
    lines.append(PROBE_SETUP[probe])
    if "sock" in args:
        lines.append(SOCK)
    for i, arg in enumerate(args):
        r = f"r{i + 1}"
        if arg == "ctx":
            lines.append(f"{r} = r6\n")
        elif isinstance(arg, int):
            lines.append(f"{r} = {arg}\n")
        elif arg.startswith("map:"):
            lines.append(f"{r} = map_fd({{{arg[4:]}}}) ll\n")
        elif arg == "sock":
            lines.append(f"{r} = *(u64 *)(r10 - 136)\n")
        elif arg == "str":
            lines.append(f"{r} = map_value({{rodata}}) ll\n")
        elif arg in ("dynptr", "dynptr_out"):
            lines.append(f"{r} = r10\n{r} += {-40 if arg == 'dynptr' else -56}\n")
        elif i == probed:
            lines.append(f"{r} = r8\n")
        else:
            lines.append(f"{r} = r10\n{r} += -128\n")
    lines.append(f"call {isa.HELPER_IDS[helper]}\nr7 = r0\n")
    if helper in ACQUIRES:
        lines.append("if r7 == 0 goto +2\nr1 = r7\ncall 86\n")
    if "sock" in args:
        lines.append("r1 = *(u64 *)(r10 - 136)\ncall 86\nnosock:\n")
    lines.append(PROBE_CHECK.get(probe, ""))
    lines.append("out:\nr0 = 0\nexit")
    return "".join(lines)


def _cases():
    return [pytest.param(helper, i, probe, id=f"{helper}-arg{i + 1}-{probe}")
            for helper, args in ARGS.items() for i, arg in enumerate(args)
            if arg in ("mem", "fix") for probe in PROBES]


def _kernel_maps():
    made = {}
    for name, (kind, key, value, entries, flags) in MAPS.items():
        made[name] = kernel.KernelMap(kind, key, value, entries, flags=flags)
    made["rodata"].update(bytes(4), RODATA)
    made["rodata"].freeze()
    return made


def _our_maps():
    made = {name: Map.create(kind, key, value, entries, flags=flags)
            for name, (kind, key, value, entries, flags) in MAPS.items()}
    made["rodata"].update(bytes(4), RODATA)
    made["rodata"].freeze()
    return made


@pytest.fixture(scope="module")
def maps():
    theirs = _kernel_maps()
    ours = _our_maps()
    yield theirs, ours
    for m in theirs.values():
        m.close()


def _assemble(text: str, made: dict, kfunc_id) -> bytes:
    """``text`` with each ``{map}`` its fd and each ``KFUNC(name)`` ``kfunc_id(name)``."""
    text = re.sub(r"KFUNC\((\w+)\)", lambda m: f"kfunc {kfunc_id(m[1])}", text)
    return asm.assemble(text.format(**{name: m.fd for name, m in made.items()}))


def _last_line(log: str) -> str:
    """The refusal: the log's last line but the statistics (which follow on the same
    line after a message without a newline, check_func_arg's "more than one arg")."""
    lines = [line.partition("processed ")[0] for line in log.strip().splitlines()
             if not line.startswith(("processed ", "verification time"))]
    return lines[-1]


def verdicts(helper: str, probed: int, probe: str, maps,
             args: tuple | None = None) -> tuple[str, str]:
    """(the kernel's, pyebpf's) verdict on the probe: "accepted" or the refusal."""
    theirs_maps, ours_maps = maps
    text = _program(helper, probed, probe, args)
    try:
        with kernel.KernelProgram(_assemble(text, theirs_maps, lambda n: kfunc_btf_id(n, 0)),
                                  CLS):
            theirs = "accepted"
    except KernelError as exc:
        theirs = _last_line(exc.log)
    by_fd = {m.fd: m for m in ours_maps.values()}
    try:
        verifier.verify(isa.unpack_program(_assemble(text, ours_maps,
                                                     lambda n: isa.KFUNC_IDS[n])),
                        CLS, maps=by_fd.get)
        ours = "accepted"
    except VerifierError as exc:
        ours = _last_line(exc.log)
    return theirs, ours


@pytest.mark.parametrize("helper,probed,probe", _cases())
def test_a_helpers_memory_argument_is_read_and_written_as_the_kernel_does(
        helper, probed, probe, maps):
    theirs, ours = verdicts(helper, probed, probe, maps)
    assert ours == theirs


@pytest.mark.parametrize("size", [0, 20, 64, 65])
@pytest.mark.parametrize("probed", [1, 3], ids=["iph", "th"])
@pytest.mark.parametrize("helper", ["tcp_check_syncookie", "tcp_gen_syncookie"])
def test_a_syncookie_helpers_header_size_is_checked_as_the_kernel_does(helper, probed, size,
                                                                       maps):
    """The header's length is an ARG_CONST_SIZE over the header's memory (here a
    64-byte map value): not zero, not past the memory; the lengths a header may have
    are checked only when the helper runs."""
    args = list(ARGS[helper])
    args[probed + 1] = size
    theirs, ours = verdicts(helper, probed, "rdonly_map", maps, tuple(args))
    assert ours == theirs


@pytest.mark.parametrize("helper, args", [
    ("skb_load_bytes", "r1 = r6\nr2 = 0\nr3 = r10\nr3 += -8\nr4 = 4\n"),
    ("check_mtu", "r1 = r6\nr2 = 0\nr3 = r10\nr3 += -8\nr4 = 0\nr5 = 0\n")],
    ids=["uninit", "inout"])
def test_a_helper_writing_over_a_narrow_spill_makes_the_slots_zero_bytes_misc(helper, args):
    """A helper's write into a slot holding a spilled register (a 4-byte 0 beside two
    zero bytes: ``fp-8=??000``) scrubs the whole slot, its zero bytes too
    (scrub_spilled_slot: every byte not invalid misc), whether the bytes are written one
    at a time (``MEM_UNINIT``, check_stack_write_fixed_off) or clobbered
    (``MEM_WRITE``, check_stack_range_initialized); pyebpf kept the zeroes, so a byte
    read beside was 0 (cilium's tail_handle_snat_fwd_ipv6: 29,078 instructions
    processed, the kernel 29,003)."""
    from test_verifier_log_level2 import logs
    theirs, ours = logs("r6 = r1\n*(u16 *)(r10 - 4) = 0\nr1 = 0\n*(u32 *)(r10 - 8) = r1\n" +
                        args + f"call {isa.HELPER_IDS[helper]}\n"
                        "r0 = *(u8 *)(r10 - 3)\nexit")
    assert any("fp-8=??mmmmmm" in line for line in theirs), theirs
    assert ours == theirs
