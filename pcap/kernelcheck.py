"""``tcsim --kernel-check``: every packet of a replay also through the running kernel.

Each program of the chain is loaded into the kernel as :func:`pyebpf.kernel.load_object`
loads an object (or from its instructions, for assembler text), its maps given the
contents the replay started from, and each packet run with ``BPF_PROG_TEST_RUN`` in
capture order as the replay loop hands each packet over, so each run sees the map state
the replay's run of that packet saw; a chain program by program as cls_bpf
direct-action runs it (:meth:`Check.run`).  Compared per packet: the program that
decided, its return value, the packet bytes after it and the ``__sk_buff`` mark and
priority (a socket filter's return value alone: ``--sf-start network``, where test_run
starts it); after the last packet, the contents of the hash, array, LRU hash
and LPM trie maps.  What test_run cannot show is not compared (redirect targets,
clones, trace_printk output), and packets it cannot take are counted as not checked
with the reason: frames at ingress with a VLAN tag (test_run does not untag them as the
receive path does), frames outside the 14..3712 bytes test_run accepts, and packets
the replay could not run (bad frames, frames dropped before tc).

With ``--env`` the kernel's runs are in a network namespace of the check's own built as
the environment declares (pyebpf.kernel.world: devices, routes, neighbours, sockets), so
that fib_lookup, check_mtu, the socket lookups and redirect_neigh consult the world the
replay's helpers consult; the declared conntrack entries are put into its table before
the first packet (pyebpf.kernel.conntrack).  What a namespace cannot be given (socket and
namespace cookies, cgroups, the packet's socket, the SYN cookie secret) is named on one
line; a world that cannot be built (an odd number of devices to pair, a command that
fails) skips the check with one line saying why.
"""
from __future__ import annotations

import contextlib
import struct
from collections import Counter

from .. import isa
from ..errors import EbpfError
from . import tcreplay

TEST_RUN_FIELDS = frozenset({"mark", "priority", "ingress_ifindex", "ifindex", "cb",
                             "tstamp", "wire_len", "gso_segs", "gso_size", "hwtstamp"})
TEST_RUN_MAX = 3712     # the most data bpf_prog_test_run_skb takes (PAGE_SIZE - headroom)
SHOWN = 20              # disagreements printed one per line before only the count follows
# the verdicts that end a direct-action chain (cls_bpf_exec_opcode); the rest go on
DA_VERDICTS = frozenset({isa.TC_ACT_OK, isa.TC_ACT_SHOT, isa.TC_ACT_STOLEN,
                         isa.TC_ACT_REDIRECT, isa.TC_ACT_TRAP})


class KernelCheckError(EbpfError):
    """--kernel-check cannot run this replay; the message says why."""


class Check:
    """The kernel's copy of the programs, loaded before the replay (see the module):
    ``observe`` is the replay loop's per-packet hook, ``finish`` the report."""

    def __init__(self, programs, sources, fields: dict, *, ingress: bool, world=None):
        from .. import kernel
        from ..kernel_check import _SYNCED_MAPS, _copy_map
        self._entries = contextlib.ExitStack()
        # the namespace the kernel's runs are in (None: tcsim's own)
        self.world = world
        unknown = sorted(set(fields) - TEST_RUN_FIELDS)
        if unknown:
            raise KernelCheckError(f"--kernel-check: BPF_PROG_TEST_RUN cannot set "
                                   f"{', '.join(unknown)} (--field)")
        self.ctx = dict(fields)
        self.ingress = ingress
        # a socket filter's verdict is its return value, the bytes to keep; it changes
        # neither the packet nor mark and priority (bpf_prog_test_run_skb runs it from
        # the network header, as --sf-start network does)
        self.socket_filter = programs[0].prog_type == isa.ProgType.BPF_PROG_TYPE_SOCKET_FILTER
        self.diffs, self.skipped, self.compared = [], Counter(), 0
        self._kobjs, self.kprogs, self.synced = [], [], []
        for program, (path, name) in zip(programs, sources):
            try:
                if path is None:
                    self.kprogs.append(kernel.KernelProgram(program.insns, program.prog_type))
                    continue
                kind = program.prog_type.name[len("BPF_PROG_TYPE_"):].lower()
                self._kobjs.append(kernel.load_object(path, prog_type=kind))
                kobj = self._kobjs[-1]
                self.kprogs.append(kobj.program(name) if name else
                                   next(iter(kobj.programs.values())))
            except (kernel.KernelError, KeyError, StopIteration) as exc:
                self.close()
                raise KernelCheckError(f"--kernel-check: the kernel refuses to load "
                                       f"{path or 'the program'}: {exc}") from None
            # each program's maps against its own object's (a chain's programs are loaded
            # one by one, each with maps of its own, as tcsim loads them)
            for m in program.maps:
                if m.type in _SYNCED_MAPS and m.name in kobj.maps and \
                        all(m is not e for e, _ in self.synced):
                    self.synced.append((m, kobj.maps[m.name]))
        for m, kmap in self.synced:
            _copy_map(m, kmap)
        if world is not None:
            self._declare(world.env.conntrack)

    def _entered(self):
        """The calling thread in the check's namespace for a block of test runs."""
        return self.world.entered() if self.world is not None else contextlib.nullcontext()

    def _declare(self, entries) -> None:
        """Put the declared conntrack entries into the namespace's table until close()."""
        from ..bpfcc import CompileError
        from ..kernel import KernelError
        from ..kernel.conntrack import declared

        @contextlib.contextmanager
        def inside():
            # the entries go in, and come out, in the namespace the runs are in
            table = declared(entries)
            with self._entered():
                table.__enter__()
            try:
                yield
            finally:
                with self._entered():
                    table.__exit__(None, None, None)
        try:
            self._entries.enter_context(inside())
        except (KernelError, CompileError, FileNotFoundError) as exc:
            self.close()
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise KernelCheckError(f"--kernel-check: cannot give the kernel the declared "
                                   f"conntrack entries (--env): {first}") from None

    def close(self) -> None:
        self._entries.close()
        for kobj in self._kobjs:
            kobj.close()
        if not self._kobjs:
            for kprog in self.kprogs:
                kprog.close()
        if self.world is not None:
            self.world.close()
            self.world = None

    def run(self, packet: bytes):
        """The kernel's test runs of ``packet`` through the chain as cls_bpf
        direct-action runs it (cls_bpf_exec_opcode: a verdict other than OK, SHOT,
        STOLEN, REDIRECT and TRAP goes on to the next program, each getting the bytes
        and mark, priority and cb the one before left): (the last KernelRunResult, how
        many programs ran)."""
        ctx = dict(self.ctx)
        for k, kprog in enumerate(self.kprogs):
            with self._entered():
                result = kprog.test_run(packet, ctx=ctx)
            if k + 1 == len(self.kprogs) or result.retval_signed in DA_VERDICTS:
                return result, k + 1
            packet = result.data
            if result.skb is not None:
                ctx.update({f: result.skb[f] for f in ("mark", "priority", "cb")})
        raise AssertionError("a chain holds at least one program")

    def observe(self, index: int, frame: bytes, out: bytes, outcome: bytes) -> None:
        """The replay loop's hook: one packet as pyebpf replayed it (the frame as tc saw
        it, its bytes afterwards, its TcOutcome), run at once in the kernel, whose maps
        have then seen every packet before it as pyebpf's have."""
        from ..kernel import KernelError
        rec = struct.unpack(tcreplay.REPLAY_RECORD, outcome)
        action = rec[9]
        if action == 5 or (action == 4 and not rec[12]):
            self.skipped["the replay ran no program on it"] += 1
            return
        if self.ingress and frame[12:14] in (b"\x81\x00", b"\x88\xa8"):
            self.skipped["VLAN-tagged at ingress (test_run does not untag)"] += 1
            return
        if len(frame) > TEST_RUN_MAX:
            self.skipped[f"longer than the {TEST_RUN_MAX} bytes test_run takes"] += 1
            return
        try:
            theirs, ran = self.run(frame)
        except KernelError as exc:
            self.skipped[f"test_run refused it: {str(exc).split(': ', 1)[-1]}"] += 1
            return
        self.compared += 1
        if action == 4:
            self.diffs.append((index, f"retval: pyebpf faulted, kernel "
                                      f"{theirs.retval_signed}"))
            return
        if rec[13] != ran:
            self.diffs.append((index, f"deciding program: pyebpf {rec[13]}, kernel {ran}"))
        if rec[1] != theirs.retval_signed:
            self.diffs.append((index, f"retval: pyebpf {rec[1]}, kernel "
                                      f"{theirs.retval_signed}"))
        if self.socket_filter:
            return
        if out != theirs.data:
            at = next((k for k, (a, b) in enumerate(zip(out, theirs.data)) if a != b),
                      min(len(out), len(theirs.data)))
            self.diffs.append((index, f"bytes from byte {at}: pyebpf "
                                      f"{out[at:at + 8].hex() or '(end)'} ({len(out)} bytes), "
                                      f"kernel {theirs.data[at:at + 8].hex() or '(end)'} "
                                      f"({len(theirs.data)} bytes)"))
        for field, k in (("mark", 3), ("priority", 4)):
            if theirs.skb is not None and rec[k] != theirs.skb[field]:
                self.diffs.append((index, f"{field}: pyebpf {rec[k]}, kernel "
                                          f"{theirs.skb[field]}"))

    def finish(self, stream) -> bool:
        """Compare the maps (when the kernel saw every packet), print the disagreements
        and the totals on ``stream``; whether any disagreed."""
        from ..kernel_check import _map_differences
        if not self.skipped:     # else the kernel's maps missed those packets' updates
            for m, kmap in self.synced:
                self.diffs += [(None, line) for line in _map_differences(m.name, m, kmap)]
        report(self.diffs, self.skipped, self.compared, stream)
        return bool(self.diffs)


def refused_reason() -> str:
    """Why bpf(2) cannot be used here ("" when it can)."""
    from .. import kernel
    ok, why = kernel.available()
    return "" if ok else why


def env_world(env, stream):
    """The namespace built as ``env`` declares for the kernel's runs: None without an
    environment; False, with a line on ``stream`` saying why the check is skipped, where
    it cannot be built.  What it cannot hold is named on ``stream``."""
    from ..kernel import world
    if env is None:
        return None
    missing = world.unbuilt(env)
    if missing:
        print(f"tcsim: kernel-check: the kernel is not given what --env declares of "
              f"{'; '.join(missing)}: runs that read them may disagree", file=stream)
    try:
        return world.World(env)
    except world.WorldError as exc:
        print(f"tcsim: kernel-check skipped: the --env world cannot be built in a network "
              f"namespace ({exc})", file=stream)
        return False


def check_chain(programs, sources, mode="da", sf_start="mac"):
    """The programs --kernel-check compares and their sources, or a KernelCheckError
    saying why not."""
    if len(programs) > 1 and mode != "da":
        raise KernelCheckError("--kernel-check runs a chain as cls_bpf direct-action runs "
                               "it, one BPF_PROG_TEST_RUN per program (give one program "
                               "in classid or action mode)")
    if programs[0].prog_type == isa.ProgType.BPF_PROG_TYPE_SOCKET_FILTER \
            and sf_start != "network":
        raise KernelCheckError("--kernel-check: BPF_PROG_TEST_RUN runs socket filters from "
                               "the network header, a packet socket from the MAC header "
                               "(--sf-start network compares them)")
    return programs, sources


def report(diffs, skipped, compared, stream) -> None:
    """The disagreements, one line each (the first SHOWN), then one line of totals."""
    for index, text in diffs[:SHOWN]:
        where = "after the last packet" if index is None else f"packet {index}"
        print(f"tcsim: kernel-check: {where}: {text}", file=stream)
    if len(diffs) > SHOWN:
        print(f"tcsim: kernel-check: {len(diffs) - SHOWN} more disagreements not shown",
              file=stream)
    packets = len({d[0] for d in diffs if d[0] is not None})
    maps = len(diffs) - sum(1 for d in diffs if d[0] is not None)
    not_checked = "".join(f"; {n} not checked: {why}" for why, n in sorted(skipped.items()))
    print(f"tcsim: kernel-check: {compared} packets compared, {packets} disagreed; "
          + (f"{maps} map entries disagreed" if maps else
             "maps not compared (the kernel missed the packets not checked)" if skipped
             else "maps agreed") + not_checked, file=stream)
