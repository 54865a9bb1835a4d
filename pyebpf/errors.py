"""The exceptions pyebpf raises.

Every message's first line says what failed and where (pc, line and column, section,
file offset, packet index); longer detail (a verifier log, a trace) stays on the
exception's attributes.  Catch :class:`EbpfError` to catch them all.
"""
from __future__ import annotations


class EbpfError(Exception):
    """Base class of every pyebpf error."""


class AsmError(EbpfError, ValueError):
    """Assembler input that cannot be assembled; names line and column."""

    def __init__(self, message: str, line: int = 0, column: int = 0, text: str = ""):
        self.line, self.column, self.text = line, column, text
        where = f"line {line}, column {column}: " if line else ""
        super().__init__(f"{where}{message}")


class LoadError(EbpfError, ValueError):
    """A program that cannot be loaded (wrong length, bad arguments)."""


class VerifierError(LoadError):
    """The load-time checks refused the program: ``pc`` names the instruction,
    ``insn`` is its text, ``source`` the C line it came from (``file:line `text```,
    empty without line info), ``log`` the verifier log; the message ends with the
    kernel's words for the refusal, and ``errno`` is the one BPF_PROG_LOAD sets for it."""

    def __init__(self, message: str, pc: int | None = None, insn: str = "",
                 log: str = "", errno: int = 13):
        self.pc, self.insn, self.log, self.source = pc, insn, log, ""
        self.message = message  # the kernel's words alone, as its log prints them
        self.errno = errno      # EACCES, the verifier's usual answer, unless given
        where = f"pc {pc}" + (f" ({insn})" if insn else "") + ": " if pc is not None else ""
        super().__init__(f"{where}{message}")


class ExecutionError(EbpfError, RuntimeError):
    """A run that stopped on a fault; ``pc`` and ``insn`` name the instruction, and
    ``source`` the C line it came from (``file:line``, and ``source_text`` that line)
    when the program has line info (objects compiled with ``-g``)."""

    def __init__(self, message: str, pc: int = 0, insn: str = ""):
        self.pc, self.insn, self.message = pc, insn, message
        self.source, self.source_text = "", ""
        super().__init__(self._render())

    def _render(self) -> str:
        where = f"pc {self.pc} ({self.insn})" if self.insn else f"pc {self.pc}"
        if self.source:
            where += f" at {self.source} `{self.source_text}`"
        return f"{where}: {self.message}"

    def add_source(self, location: str, text: str) -> None:
        """Name the C line (``file:line`` and its text) the instruction came from."""
        self.source, self.source_text = location, text
        self.args = (self._render(),)


class MemoryFault(ExecutionError):
    """A load or store outside every region the program may touch."""

    def __init__(self, message: str, pc: int = 0, insn: str = "", address: int = 0,
                 size: int = 0, write: bool = False, region: str = ""):
        self.address, self.size, self.write, self.region = address, size, write, region
        super().__init__(message, pc, insn)


class BudgetExceeded(ExecutionError):
    """More instructions executed than the run's budget allows."""


class CallDepthExceeded(ExecutionError):
    """A bpf-to-bpf call deeper than the kernel's MAX_CALL_FRAMES."""


class UnknownHelper(ExecutionError):
    """A call to a helper id with no implementation in this run."""


class ElfError(LoadError):
    """An ELF object that cannot be loaded; names the file and section.

    The first line reads ``FILE: section S, symbol Y, relocation #N, insn I: what``
    with only the places that are known; each is also an attribute (None if unknown).
    """

    def __init__(self, message: str, *, file: str | None = None, section: str | None = None,
                 symbol: str | None = None, relocation: int | None = None,
                 insn: int | None = None):
        self.file, self.section, self.symbol = file, section, symbol
        self.relocation, self.insn, self.reason = relocation, insn, message
        where = [f"section {section!r}" if section is not None else "",
                 f"symbol {symbol!r}" if symbol is not None else "",
                 f"relocation #{relocation}" if relocation is not None else "",
                 f"insn {insn}" if insn is not None else ""]
        where = ", ".join(w for w in where if w)
        head = ": ".join(x for x in (file, where) if x)
        super().__init__(f"{head}: {message}" if head else message)


class ElfWarning(UserWarning):
    """An object that loads, but not as its author probably meant (e.g. an iproute2
    tail-call section ``ID/KEY`` whose ID names no program array).  Its ``filename`` is
    the object's, so it shows as one line ``FILE:0: ElfWarning: section 'S': ...``."""


class PacketError(EbpfError, ValueError):
    """A packet ``run()`` cannot give the program's type (e.g. a scapy packet without an
    Ethernet header for a tc or socket-filter program); says what to give instead."""


class PcapError(EbpfError, ValueError):
    """A capture file that cannot be read or written; names file and packet."""


class ErrnoError(EbpfError, OSError):
    """Base class of the errors that carry an errno: ``errno`` is the kernel's (the one
    bpf(2) sets, or would set), and the message is the first line, without the
    ``[Errno N]`` prefix.  Raised as ``ErrnoError(errno, message)``."""

    def __str__(self) -> str:
        return self.args[1] if len(self.args) > 1 else super().__str__()


class KernelError(ErrnoError):
    """bpf(2) refused a request; ``errno`` is the kernel's, ``log`` the verifier log."""

    def __init__(self, errno_: int, message: str, log: str = ""):
        self.log = log
        super().__init__(errno_, message)


class PinError(ErrnoError):
    """A pin or get the kernel would refuse, or a pin file pyebpf cannot use; ``errno``
    is the kernel's (EEXIST, ENOENT, EACCES, EPERM) or EINVAL for a damaged pin file."""


class BpfError(ErrnoError):
    """A :func:`pyebpf.bpf` command refused; ``errno`` is the one bpf(2) sets."""


class MapError(ErrnoError):
    """A map operation the kernel would refuse; ``errno`` is the kernel's errno."""


class HelperAccessError(EbpfError, ValueError):
    """A Python helper's :class:`~pyebpf._core.HelperMemory` read or write that is not
    inside the running program's regions (writable ones, for a write): ``address``,
    ``size`` and ``write`` say which."""

    def __init__(self, address: int, size: int, write: bool):
        self.address, self.size, self.write = address, size, write
        super().__init__(f"helper {'write' if write else 'read'} of {size} bytes at "
                         f"{address:#x} is outside the program's memory")


class ClassicError(LoadError):
    """A classic BPF program the kernel refuses with EINVAL (``bpf_check_classic``), or
    classic input that cannot be read; ``pc`` names the classic instruction."""

    def __init__(self, message: str, pc: int | None = None, insn: str = ""):
        self.pc, self.insn = pc, insn
        where = f"classic pc {pc}" + (f" ({insn})" if insn else "") + ": " if pc is not None else ""
        super().__init__(f"{where}{message}")


class BtfError(EbpfError, ValueError):
    """Bytes that do not fit the BTF type asked to decode them, or no type to decode
    them with."""
