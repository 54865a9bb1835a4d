"""The eBPF instruction set and the kernel's constants, in one place.

Everything that knows an opcode derives from this module: the interpreter's decoder
(``_core``), the assembler and disassembler (``asm``), and the structural checks
(``verifier``).  Names mirror ``include/uapi/linux/bpf.h``, ``bpf_common.h`` and
``pkt_cls.h``.  The instruction table covers RFC 9669 (which contains the v4.6 set).

Each instruction is one :class:`Op`: a raw opcode byte, an optional discriminator
(a fixed ``src``, ``off`` or ``imm`` value that selects the operation when the opcode
alone does not), and a :class:`Form` that says which fields carry operands.  ``Op.id``
is the dense internal number the interpreter switches on.

Run ``python pyebpf/isa.py --pxd`` to print the Cython declarations of these constants
that the build writes to ``pyebpf/_isa_defs.pxd``, from where the compiled core
cimports them.
"""
from __future__ import annotations

import array
import dataclasses
import enum
import struct
import sys
from dataclasses import dataclass

# --- instruction classes, sizes, modes (bpf_common.h / bpf.h) -----------------------
BPF_LD, BPF_LDX, BPF_ST, BPF_STX = 0x00, 0x01, 0x02, 0x03
BPF_ALU, BPF_JMP, BPF_JMP32, BPF_ALU64 = 0x04, 0x05, 0x06, 0x07

BPF_W, BPF_H, BPF_B, BPF_DW = 0x00, 0x08, 0x10, 0x18
SIZE_BYTES = {BPF_W: 4, BPF_H: 2, BPF_B: 1, BPF_DW: 8}
SIZE_NAME = {BPF_W: "w", BPF_H: "h", BPF_B: "b", BPF_DW: "dw"}

BPF_IMM, BPF_ABS, BPF_IND, BPF_MEM, BPF_MEMSX, BPF_ATOMIC = 0x00, 0x20, 0x40, 0x60, 0x80, 0xC0
BPF_XADD = BPF_ATOMIC

BPF_K, BPF_X = 0x00, 0x08
BPF_TO_LE, BPF_TO_BE = 0x00, 0x08

BPF_ADD, BPF_SUB, BPF_MUL, BPF_DIV = 0x00, 0x10, 0x20, 0x30
BPF_OR, BPF_AND, BPF_LSH, BPF_RSH = 0x40, 0x50, 0x60, 0x70
BPF_NEG, BPF_MOD, BPF_XOR, BPF_MOV = 0x80, 0x90, 0xA0, 0xB0
BPF_ARSH, BPF_END = 0xC0, 0xD0

BPF_JA, BPF_JEQ, BPF_JGT, BPF_JGE = 0x00, 0x10, 0x20, 0x30
BPF_JSET, BPF_JNE, BPF_JSGT, BPF_JSGE = 0x40, 0x50, 0x60, 0x70
BPF_CALL, BPF_EXIT = 0x80, 0x90
BPF_JLT, BPF_JLE, BPF_JSLT, BPF_JSLE = 0xA0, 0xB0, 0xC0, 0xD0
BPF_JCOND = 0xE0                        # src_reg BPF_MAY_GOTO: may_goto
BPF_MAY_GOTO = 0



# The fields of an opcode byte, as the kernel's macros of the same names take them apart.
def BPF_CLASS(code: int) -> int:  # noqa: N802
    return code & 0x07


def BPF_SIZE(code: int) -> int:  # noqa: N802
    return code & 0x18


def BPF_MODE(code: int) -> int:  # noqa: N802
    return code & 0xE0


def BPF_OP(code: int) -> int:  # noqa: N802
    return code & 0xF0


def BPF_SRC(code: int) -> int:  # noqa: N802
    return code & 0x08


# The opcodes of lddw and call (every kind of call shares one).
LDDW_CODE = BPF_LD | BPF_IMM | BPF_DW
CALL_CODE = BPF_JMP | BPF_CALL

BPF_FETCH = 0x01
BPF_XCHG = 0xE0 | BPF_FETCH
BPF_CMPXCHG = 0xF0 | BPF_FETCH

# Pseudo sources of lddw (src_reg) and of call (src_reg).
BPF_PSEUDO_MAP_FD = 1
BPF_PSEUDO_MAP_VALUE = 2
BPF_PSEUDO_BTF_ID = 3
BPF_PSEUDO_FUNC = 4
BPF_PSEUDO_MAP_IDX = 5
BPF_PSEUDO_MAP_IDX_VALUE = 6
BPF_PSEUDO_CALL = 1
BPF_PSEUDO_KFUNC_CALL = 2
# a mov's off that makes it addr_space_cast (arenas: between address spaces 0 and 1)
BPF_ADDR_SPACE_CAST = 1

# Registers and machine limits.
BPF_REG_0, BPF_REG_1, BPF_REG_10 = 0, 1, 10
MAX_BPF_REG = 11
MAX_BPF_STACK = 512
PAGE_SIZE = 4096         # the modelled kernel's (x86-64, arm64 with 4K pages)
MAX_CALL_FRAMES = 8
MAX_TAIL_CALL_CNT = 33
BPF_MAX_LOOPS = 8 * 1024 * 1024   # bpf_loop's and open-coded iterators' bound
BPF_MAX_USER_RINGBUF_SAMPLES = 128 * 1024  # bpf_user_ringbuf_drain's samples per call

# bpf_attr.log_level bits (BPF_LOG_LEVEL1, BPF_LOG_LEVEL2, BPF_LOG_STATS)
BPF_LOG_LEVEL1, BPF_LOG_LEVEL2, BPF_LOG_STATS = 1, 2, 4
MAX_BPRINTF_VARARGS = 12          # bpf_snprintf's and bpf_trace_vprintk's argument count
MAX_BPRINTF_BUF = 1024            # their output buffer (struct bpf_bprintf_buffers)
# BPF streams (kernel/bpf/stream.c): enum bpf_stream_id, and the bytes a stream may hold
# unread (include/linux/bpf.h; measured: the 101st 999-byte print is refused)
BPF_STDOUT, BPF_STDERR = 1, 2
BPF_STREAM_MAX_CAPACITY = 100000
BPF_STRTOX_BASE_MASK = 0x1F       # bpf_strtol's flags: the base, nothing else
# struct bpf_dynptr_kern: { void *data; u32 size; u32 offset; }, 16 bytes; size's low
# bits are the size, then the type, and its top bit marks a read-only dynptr
BPF_DYNPTR_SIZE = 16
# enum bpf_dynptr_type
BPF_DYNPTR_TYPE_LOCAL, BPF_DYNPTR_TYPE_RINGBUF, BPF_DYNPTR_TYPE_SKB = 1, 2, 3
BPF_DYNPTR_TYPE_SKB_META = 5
DYNPTR_SIZE_MASK = 0xFFFFFF
DYNPTR_MAX_SIZE = DYNPTR_SIZE_MASK  # bpf_dynptr_check_size: larger is -E2BIG
DYNPTR_TYPE_SHIFT = 28
DYNPTR_RDONLY_BIT = 1 << 31

# The modelled kernel's clocks (docs/clock.md): its CONFIG_HZ, jiffies at boot
# (INITIAL_JIFFIES of a 64-bit kernel: -300 * HZ as an unsigned int, so that the 32-bit
# count wraps five minutes after boot), and how far CLOCK_TAI is ahead of CLOCK_MONOTONIC
# (the modelled boot's wall time, 2026-01-01T00:00:00Z, plus TAI's 37 leap seconds).
HZ = 250
TICK_NSEC = 1_000_000_000 // HZ
INITIAL_JIFFIES = (-300 * HZ) & 0xFFFFFFFF
KTIME_TAI_OFFSET = (1_767_225_600 + 37) * 1_000_000_000

# Conntrack (include/uapi/linux/netfilter/nf_conntrack_common.h, nf_conntrack_zones_common.h,
# net/netfilter/nf_conntrack_bpf.c): the status bits, the default zone direction, the two
# sizes struct bpf_ct_opts may be passed with, the timeout a bpf_*_ct_alloc entry starts
# with (seconds) and the model's table size (slots; the kernel's nf_conntrack_max is larger).
IPS_EXPECTED, IPS_SEEN_REPLY, IPS_ASSURED, IPS_CONFIRMED = 1 << 0, 1 << 1, 1 << 2, 1 << 3
IPS_SRC_NAT, IPS_DST_NAT, IPS_SRC_NAT_DONE, IPS_DST_NAT_DONE = 1 << 4, 1 << 5, 1 << 7, 1 << 8
IPS_DYING, IPS_FIXED_TIMEOUT, IPS_HELPER = 1 << 9, 1 << 10, 1 << 13
# __nf_ct_change_status sets or clears only these (IPS_UNCHANGEABLE_MASK's complement)
IPS_CHANGEABLE = IPS_SEEN_REPLY | IPS_ASSURED | IPS_FIXED_TIMEOUT | IPS_HELPER
NF_CT_DEFAULT_ZONE_DIR = 3
NF_BPF_CT_OPTS_SZ, NF_BPF_CT_OPTS_OLD_SZ = 16, 12
NF_CT_ALLOC_TIMEOUT = 10
NF_CT_MODEL_SLOTS = 1024
# getsockopt(SOL_SOCKET, SO_COOKIE): a socket's cookie (asm-generic/socket.h), what a
# socket map's update by fd finds the modelled socket by
SO_COOKIE = 57
# the address family of AF_XDP sockets, what an XSKMAP holds (linux/socket.h)
AF_XDP = 44
INSN_SIZE = 8

# Legacy socket-filter offset bases (LD_ABS/LD_IND).
SKF_AD_OFF = -0x1000
SKF_NET_OFF = -0x100000
SKF_LL_OFF = -0x200000

# Classic BPF (bpf_common.h, filter.h): the classes and modes eBPF does not share.
BPF_RET, BPF_MISC = 0x06, 0x07          # the numbers eBPF reuses for JMP32 and ALU64
BPF_LEN, BPF_MSH = 0x80, 0xA0
BPF_A = 0x10                            # BPF_RVAL: return A (BPF_K returns k)
BPF_TAX, BPF_TXA = 0x00, 0x80           # BPF_MISCOP
BPF_MEMWORDS = 16                       # scratch memory M[0..15]
BPF_MAXINSNS = 4096

# Ancillary loads: LD_ABS at SKF_AD_OFF + one of these (filter.h).
SKF_AD = {
    "protocol": 0, "pkttype": 4, "ifindex": 8, "nlattr": 12, "nlattr_nest": 16,
    "mark": 20, "queue": 24, "hatype": 28, "rxhash": 32, "cpu": 36, "alu_xor_x": 40,
    "vlan_tag": 44, "vlan_tag_present": 48, "pay_offset": 52, "random": 56, "vlan_tpid": 60,
}
SKF_AD_MAX = 64
# Helper-table ids for the in-kernel functions converted classic code calls (the
# kernel calls bpf_skb_get_nlattr, _nlattr_nest and _pay_offset by address); past every
# helper id, so only classic programs have them.
CBPF_CALLS = {"nlattr": 253, "nlattr_nest": 254, "pay_offset": 255}

# Link-layer header types (pcap LINKTYPE_/DLT_ and the kernel's ARPHRD_ for a device).
DLT_EN10MB = 1
ARPHRD_ETHER = 1

# Socket options that attach classic filters, and eBPF ones (asm-generic/socket.h).
SO_ATTACH_FILTER, SO_DETACH_FILTER, SO_LOCK_FILTER = 26, 27, 44
SO_ATTACH_BPF = 50


class BpfCmd(enum.IntEnum):
    """``enum bpf_cmd``; the first eight are the v4.6 set."""
    BPF_MAP_CREATE = 0
    BPF_MAP_LOOKUP_ELEM = 1
    BPF_MAP_UPDATE_ELEM = 2
    BPF_MAP_DELETE_ELEM = 3
    BPF_MAP_GET_NEXT_KEY = 4
    BPF_PROG_LOAD = 5
    BPF_OBJ_PIN = 6
    BPF_OBJ_GET = 7
    BPF_PROG_ATTACH = 8
    BPF_PROG_DETACH = 9
    BPF_PROG_TEST_RUN = 10
    BPF_PROG_GET_NEXT_ID = 11
    BPF_MAP_GET_NEXT_ID = 12
    BPF_PROG_GET_FD_BY_ID = 13
    BPF_MAP_GET_FD_BY_ID = 14
    BPF_OBJ_GET_INFO_BY_FD = 15
    BPF_PROG_QUERY = 16
    BPF_RAW_TRACEPOINT_OPEN = 17
    BPF_BTF_LOAD = 18
    BPF_BTF_GET_FD_BY_ID = 19
    BPF_TASK_FD_QUERY = 20
    BPF_MAP_LOOKUP_AND_DELETE_ELEM = 21
    BPF_MAP_FREEZE = 22
    BPF_BTF_GET_NEXT_ID = 23
    BPF_MAP_LOOKUP_BATCH = 24
    BPF_MAP_LOOKUP_AND_DELETE_BATCH = 25
    BPF_MAP_UPDATE_BATCH = 26
    BPF_MAP_DELETE_BATCH = 27
    BPF_PROG_STREAM_READ_BY_FD = 37



# ``union bpf_attr`` (6.18, little-endian): per command, field -> (offset, struct format);
# "P" is a 64-bit user pointer (an aligned u64 in the uapi).  Only the fields pyebpf
# passes or reads back; the kernel wants every byte after the last field it knows zero
# (bpf_check_uarg_tail_zero), so an attr is always this many zeroed bytes.
BPF_ATTR_SIZE = 144
BPF_ATTR = {
    BpfCmd.BPF_MAP_CREATE: {"map_type": (0, "I"), "key_size": (4, "I"), "value_size": (8, "I"),
                            "max_entries": (12, "I"), "map_flags": (16, "I"),
                            "inner_map_fd": (20, "I"), "numa_node": (24, "I"),
                            "map_name": (28, "16s"), "btf_fd": (48, "I"),
                            "btf_key_type_id": (52, "I"), "btf_value_type_id": (56, "I"),
                            "map_extra": (64, "Q")},
    BpfCmd.BPF_PROG_LOAD: {"prog_type": (0, "I"), "insn_cnt": (4, "I"), "insns": (8, "P"),
                           "license": (16, "P"), "log_level": (24, "I"), "log_size": (28, "I"),
                           "log_buf": (32, "P"), "kern_version": (40, "I"),
                           "prog_flags": (44, "I"), "prog_name": (48, "16s"),
                           "prog_btf_fd": (72, "I"), "func_info_rec_size": (76, "I"),
                           "func_info": (80, "P"), "func_info_cnt": (88, "I"),
                           "line_info_rec_size": (92, "I"), "line_info": (96, "P"),
                           "line_info_cnt": (104, "I"),
                           "log_true_size": (140, "I")},
    BpfCmd.BPF_BTF_LOAD: {"btf": (0, "P"), "btf_log_buf": (8, "P"), "btf_size": (16, "I"),
                          "btf_log_size": (20, "I"), "btf_log_level": (24, "I")},
    BpfCmd.BPF_OBJ_PIN: {"pathname": (0, "P"), "bpf_fd": (8, "I"), "file_flags": (12, "I")},
    BpfCmd.BPF_PROG_TEST_RUN: {"prog_fd": (0, "I"), "retval": (4, "I"),
                               "data_size_in": (8, "I"), "data_size_out": (12, "I"),
                               "data_in": (16, "P"), "data_out": (24, "P"), "repeat": (32, "I"),
                               "duration": (36, "I"), "ctx_size_in": (40, "I"),
                               "ctx_size_out": (44, "I"), "ctx_in": (48, "P"),
                               "ctx_out": (56, "P"), "flags": (64, "I"), "cpu": (68, "I")},
    BpfCmd.BPF_PROG_STREAM_READ_BY_FD: {"stream_buf": (0, "P"), "stream_buf_len": (8, "I"),
                                        "stream_id": (12, "I"), "prog_fd": (16, "I")},
}
BPF_ATTR[BpfCmd.BPF_OBJ_GET] = BPF_ATTR[BpfCmd.BPF_OBJ_PIN]
for _cmd in (BpfCmd.BPF_PROG_GET_NEXT_ID, BpfCmd.BPF_MAP_GET_NEXT_ID):
    # next_id is written back; open_flags is past BPF_OBJ_GET_NEXT_ID_LAST_FIELD
    BPF_ATTR[_cmd] = {"start_id": (0, "I"), "next_id": (4, "I"), "open_flags": (8, "I")}
for _cmd in (BpfCmd.BPF_MAP_LOOKUP_ELEM, BpfCmd.BPF_MAP_UPDATE_ELEM,
             BpfCmd.BPF_MAP_DELETE_ELEM, BpfCmd.BPF_MAP_GET_NEXT_KEY,
             BpfCmd.BPF_MAP_LOOKUP_AND_DELETE_ELEM, BpfCmd.BPF_MAP_FREEZE):
    # value and next_key share the slot at 16 (an anonymous union in the uapi);
    # BPF_MAP_FREEZE reads map_fd alone and wants the rest zero
    BPF_ATTR[_cmd] = {"map_fd": (0, "I"), "key": (8, "P"), "value": (16, "P"),
                      "next_key": (16, "P"), "flags": (24, "Q")}
for _cmd in (BpfCmd.BPF_MAP_LOOKUP_BATCH, BpfCmd.BPF_MAP_LOOKUP_AND_DELETE_BATCH,
             BpfCmd.BPF_MAP_UPDATE_BATCH, BpfCmd.BPF_MAP_DELETE_BATCH):
    BPF_ATTR[_cmd] = {"in_batch": (0, "P"), "out_batch": (8, "P"), "keys": (16, "P"),
                      "values": (24, "P"), "count": (32, "I"), "map_fd": (36, "I"),
                      "elem_flags": (40, "Q"), "flags": (48, "Q")}
del _cmd

class MapType(enum.IntEnum):
    """``enum bpf_map_type``; up to STACK_TRACE is the v4.6 set."""
    BPF_MAP_TYPE_UNSPEC = 0
    BPF_MAP_TYPE_HASH = 1
    BPF_MAP_TYPE_ARRAY = 2
    BPF_MAP_TYPE_PROG_ARRAY = 3
    BPF_MAP_TYPE_PERF_EVENT_ARRAY = 4
    BPF_MAP_TYPE_PERCPU_HASH = 5
    BPF_MAP_TYPE_PERCPU_ARRAY = 6
    BPF_MAP_TYPE_STACK_TRACE = 7
    BPF_MAP_TYPE_CGROUP_ARRAY = 8
    BPF_MAP_TYPE_LRU_HASH = 9
    BPF_MAP_TYPE_LRU_PERCPU_HASH = 10
    BPF_MAP_TYPE_LPM_TRIE = 11
    BPF_MAP_TYPE_ARRAY_OF_MAPS = 12
    BPF_MAP_TYPE_HASH_OF_MAPS = 13
    BPF_MAP_TYPE_DEVMAP = 14
    BPF_MAP_TYPE_SOCKMAP = 15
    BPF_MAP_TYPE_CPUMAP = 16
    BPF_MAP_TYPE_XSKMAP = 17
    BPF_MAP_TYPE_SOCKHASH = 18
    BPF_MAP_TYPE_CGROUP_STORAGE = 19
    BPF_MAP_TYPE_REUSEPORT_SOCKARRAY = 20
    BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE = 21
    BPF_MAP_TYPE_QUEUE = 22
    BPF_MAP_TYPE_STACK = 23
    BPF_MAP_TYPE_SK_STORAGE = 24
    BPF_MAP_TYPE_DEVMAP_HASH = 25
    BPF_MAP_TYPE_STRUCT_OPS = 26
    BPF_MAP_TYPE_RINGBUF = 27
    BPF_MAP_TYPE_INODE_STORAGE = 28
    BPF_MAP_TYPE_TASK_STORAGE = 29
    BPF_MAP_TYPE_BLOOM_FILTER = 30
    BPF_MAP_TYPE_USER_RINGBUF = 31
    BPF_MAP_TYPE_CGRP_STORAGE = 32
    BPF_MAP_TYPE_ARENA = 33


class ProgType(enum.IntEnum):
    """``enum bpf_prog_type``; up to SCHED_ACT is the v4.6 set."""
    BPF_PROG_TYPE_UNSPEC = 0
    BPF_PROG_TYPE_SOCKET_FILTER = 1
    BPF_PROG_TYPE_KPROBE = 2
    BPF_PROG_TYPE_SCHED_CLS = 3
    BPF_PROG_TYPE_SCHED_ACT = 4
    BPF_PROG_TYPE_TRACEPOINT = 5
    BPF_PROG_TYPE_XDP = 6
    # the kernel runs it on BPF_PROG_TEST_RUN alone; pyebpf never loads one (the crypto
    # kfuncs' bpf_crypto_ctx_create is its: Map.create_crypto_ctx stands in)
    BPF_PROG_TYPE_SYSCALL = 31


def prog_type(value) -> ProgType:
    """A program type given as a ``ProgType``, its number, or a name with or without
    the ``BPF_PROG_TYPE_`` prefix (``"sched_cls"``); ValueError for anything else."""
    if isinstance(value, str):
        key = value.upper()
        if not key.startswith("BPF_PROG_TYPE_"):
            key = "BPF_PROG_TYPE_" + key
        try:
            return ProgType[key]
        except KeyError:
            raise ValueError(f"unknown program type {value!r}") from None
    try:
        return ProgType(value)
    except ValueError:
        raise ValueError(f"unknown program type {value!r}") from None


class Errno(enum.IntEnum):
    """The errno values the compiled core's helpers and map operations return, negated
    (``include/uapi/asm-generic/errno-base.h``, ``errno.h``).  ENOTSUPP is the
    kernel-internal one of ``include/linux/errno.h``, which some helpers return to the
    program although no syscall hands it to user space."""
    EPERM = 1
    ENOENT = 2
    E2BIG = 7
    EBADF = 9
    EAGAIN = 11
    ENOMEM = 12
    EACCES = 13
    EFAULT = 14
    EBUSY = 16
    EEXIST = 17
    ENODEV = 19
    EINVAL = 22
    ENOSPC = 28
    ERANGE = 34
    EDEADLK = 35
    ENODATA = 61
    ENONET = 64
    EPROTO = 71
    EOVERFLOW = 75
    ENOTSOCK = 88
    EPROTONOSUPPORT = 93
    ESOCKTNOSUPPORT = 94
    EOPNOTSUPP = 95
    EAFNOSUPPORT = 97
    ENETUNREACH = 101
    ETIMEDOUT = 110
    EALREADY = 114
    ENOTSUPP = 524


def errno_name(value: int) -> str:
    """``"ENOENT"`` for 2; the number as text for a value :class:`Errno` does not hold."""
    try:
        return Errno(value).name
    except ValueError:
        return str(value)


# The release of the kernel the "current" profile models: __kconfig LINUX_KERNEL_VERSION
# and CONFIG_* default to it, and the target BTF pyebpf ships came from it.
KERNEL_RELEASE = "6.18.44"


# ``struct __sk_buff`` (6.18): field -> (offset, size).  The 4.6 struct ended after
# tc_classid; later kernels only appended.
SK_BUFF_LAYOUT = {
    "len": (0, 4), "pkt_type": (4, 4), "mark": (8, 4), "queue_mapping": (12, 4),
    "protocol": (16, 4), "vlan_present": (20, 4), "vlan_tci": (24, 4), "vlan_proto": (28, 4),
    "priority": (32, 4), "ingress_ifindex": (36, 4), "ifindex": (40, 4), "tc_index": (44, 4),
    "cb": (48, 20), "hash": (68, 4), "tc_classid": (72, 4), "data": (76, 4),
    "data_end": (80, 4), "napi_id": (84, 4), "family": (88, 4), "remote_ip4": (92, 4),
    "local_ip4": (96, 4), "remote_ip6": (100, 16), "local_ip6": (116, 16),
    "remote_port": (132, 4), "local_port": (136, 4), "data_meta": (140, 4),
    "flow_keys": (144, 8), "tstamp": (152, 8), "wire_len": (160, 4), "gso_segs": (164, 4),
    "sk": (168, 8), "gso_size": (176, 4), "tstamp_type": (180, 1), "(padding)": (181, 3),
    "hwtstamp": (184, 8),
}
SIZEOF_SK_BUFF = 192
SIZEOF_SK_BUFF_4_6 = 76

# ``struct pt_regs``, the context of BPF_PROG_TYPE_KPROBE, per architecture: register name
# -> offset (every register is 8 bytes), and the struct's size, which bounds the context
# (kprobe_prog_is_valid_access).  x86-64's struct has been the same since 4.6.  arm64's
# registers are its ``user_pt_regs`` prefix (x0-x30, sp, pc, pstate); the whole struct of
# 6.18 adds orig_x0, syscallno/pmr, por_el1 and a pad (CONFIG_ARM64_POE), sdei_ttbr1, the
# frame record with its type, lockdep_hardirqs and exit_rcu: 352 bytes.
PT_REGS_X86_64 = ("r15", "r14", "r13", "r12", "bp", "bx", "r11", "r10", "r9", "r8", "ax",
                  "cx", "dx", "si", "di", "orig_ax", "ip", "cs", "flags", "sp", "ss")
PT_REGS_ARM64 = tuple(f"x{k}" for k in range(31)) + ("sp", "pc", "pstate")
PT_REGS = {"x86_64": ({name: 8 * k for k, name in enumerate(PT_REGS_X86_64)}, 168),
           "arm64": ({name: 8 * k for k, name in enumerate(PT_REGS_ARM64)}, 352)}
# The kprobe calling convention's argument registers (PT_REGS_PARM1..5) and the return
# value's (PT_REGS_RC), as libbpf's bpf_tracing.h names them.
PT_REGS_ARGS = {"x86_64": ("di", "si", "dx", "cx", "r8"), "arm64": ("x0", "x1", "x2", "x3", "x4")}
PT_REGS_RC = {"x86_64": "ax", "arm64": "x0"}
# Where user space ends (TASK_SIZE_MAX: the 4-level x86-64 layout, 48-bit arm64): an
# address below is a user address for bpf_probe_read, and bpf_probe_read_kernel refuses it
# (copy_from_kernel_nofault_allowed).
TASK_SIZE_MAX = {"x86_64": (1 << 47) - 4096, "arm64": 1 << 48}
# LINUX_VERSION_CODE of the 4.6 kernel: a KPROBE program's kern_version must equal it there.
LINUX_VERSION_CODE_4_6 = (4 << 16) | (6 << 8)
# The fields BPF_PROG_TEST_RUN takes from ctx_in and writes back to ctx_out for skb
# programs (net/bpf/test_run.c: convert___skb_to_skb, convert_skb_to___skb); every other
# byte of ctx_in must be zero.
TEST_RUN_SK_BUFF_FIELDS = ("mark", "priority", "ingress_ifindex", "ifindex", "cb", "tstamp",
                           "wire_len", "gso_segs", "gso_size", "hwtstamp")

# Update flags (map_update_elem) and helper flags.
BPF_ANY, BPF_NOEXIST, BPF_EXIST = 0, 1, 2
BPF_F_NO_PREALLOC = 1 << 0
BPF_F_NO_COMMON_LRU = 1 << 1
BPF_F_ZERO_SEED = 1 << 6
BPF_F_NUMA_NODE = 1 << 2
BPF_F_RDONLY = 1 << 3
BPF_F_WRONLY = 1 << 4
BPF_F_RDONLY_PROG = 1 << 7
BPF_F_WRONLY_PROG = 1 << 8
BPF_F_MMAPABLE = 1 << 10
BPF_F_INNER_MAP = 1 << 12
# arenas (kernel/bpf/arena.c): a user fault on a page no program allocated is SIGSEGV
# (arena_vm_fault), and addr_space_cast to user space keeps only the low 32 bits
BPF_F_SEGV_ON_FAULT = 1 << 17
BPF_F_NO_USER_CONV = 1 << 18
# the most an arena spans (arena_map_alloc: max_entries pages, SZ_4G at most)
ARENA_MAX_BYTES = 1 << 32
BPF_F_CLONE = 1 << 9         # local storage: a clone of the socket gets the storage too
BPF_F_SLEEPABLE = 1 << 4     # BPF_PROG_LOAD's prog_flags: libbpf's for SEC("syscall")
# the *_storage_get helpers' flag (bpf_sk_storage_get's older name for it)
BPF_LOCAL_STORAGE_GET_F_CREATE = 1
BPF_SK_STORAGE_GET_F_CREATE = BPF_LOCAL_STORAGE_GET_F_CREATE
# the largest local storage value (BPF_LOCAL_STORAGE_MAX_VALUE_SIZE: U16_MAX less the
# 128 bytes of struct bpf_local_storage_elem)
MAX_LOCAL_STORAGE_VALUE_SIZE = 65535 - 128
# a per-CPU cgroup storage value is at most PCPU_MIN_UNIT_SIZE (cgroup_storage_map_alloc)
PCPU_MIN_UNIT_SIZE = 32 << 10
# cpu_map_alloc: max_entries at most the kernel's NR_CPUS (this kernel's CONFIG_NR_CPUS:
# /sys/devices/system/cpu/kernel_max + 1); cpu_map_update_elem: qsize at most 16384
NR_CPUS = 256
CPU_MAP_MAX_QSIZE = 16384
BPF_F_LOCK = 1 << 2          # element flag of lookup/update (and their batches)
# special fields of a map value, found by their BTF struct name (btf_parse_fields):
# their sizes; each is aligned to its size's natural alignment (4 and 8)
SIZEOF_BPF_SPIN_LOCK = 4
SIZEOF_BPF_RES_SPIN_LOCK = 4    # struct bpf_res_spin_lock { u32 val; }
# rqspinlock (kernel/bpf/rqspinlock.c): the locks a CPU's held-locks table records for
# AA deadlock detection, and how long a waiter spins before it gives up (-ETIMEDOUT)
RES_NR_HELD = 31
MAX_ERRNO = 4095                # the errors a kernel function may return (IS_ERR_VALUE)
RES_DEF_TIMEOUT_NS = 250_000_000
SIZEOF_BPF_TIMER = 16
SIZEOF_BPF_WQ = 16              # struct bpf_wq, 8-aligned
SIZEOF_BPF_TASK_WORK = 8        # struct bpf_task_work, 8-aligned
SIZEOF_BPF_LIST_HEAD = 16       # struct bpf_list_head, 8-aligned
SIZEOF_BPF_LIST_NODE = 24       # struct bpf_list_node, 8-aligned
SIZEOF_BPF_RB_ROOT = 16         # struct bpf_rb_root, 8-aligned
SIZEOF_BPF_RB_NODE = 32         # struct bpf_rb_node, 8-aligned
# bpf_timer_init's flags name the timer's clock (flags & (MAX_CLOCKS - 1)); only these
# three are allowed (the _ALARM ones not); bpf_timer_start's flags
MAX_CLOCKS = 16
TIMER_CLOCK_REALTIME = 0
TIMER_CLOCK_MONOTONIC = 1
TIMER_CLOCK_BOOTTIME = 7
BPF_F_TIMER_ABS = 1 << 0
BPF_F_TIMER_CPU_PIN = 1 << 1
# bpf_copy_from_user_str's flag: zero the destination past the string (all of it on a fault)
BPF_F_PAD_ZEROS = 1 << 0
# callbacks a replay runs between two packets (and pyebpf.run_timers by default): a timer
# that re-arms itself 0 ns on would fire forever
TIMER_CALLBACKS_PER_GAP = 100_000
BPF_F_RECOMPUTE_CSUM = 1 << 0
BPF_F_INVALIDATE_HASH = 1 << 1
BPF_F_HDR_FIELD_MASK = 0xF
BPF_F_PSEUDO_HDR = 1 << 4
BPF_F_MARK_MANGLED_0 = 1 << 5
BPF_F_MARK_ENFORCE = 1 << 6
BPF_F_IPV6 = 1 << 7
BPF_F_INGRESS = 1 << 0
BPF_F_TUNINFO_IPV6 = 1 << 0
BPF_F_ZERO_CSUM_TX = 1 << 1
BPF_F_DONT_FRAGMENT = 1 << 2
BPF_F_SEQ_NUMBER = 1 << 3
BPF_F_NO_TUNNEL_KEY = 1 << 4
BPF_F_TUNINFO_FLAGS = 1 << 4     # skb_get_tunnel_key
BPF_F_INDEX_MASK = 0xFFFFFFFF
BPF_F_CURRENT_CPU = BPF_F_INDEX_MASK
BPF_F_TEST_SKB_CHECKSUM_COMPLETE = 1 << 2
BPF_ADJ_ROOM_NET, BPF_ADJ_ROOM_MAC = 0, 1   # bpf_skb_adjust_room's modes
BPF_F_ADJ_ROOM_FIXED_GSO = 1 << 0
BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 = 1 << 1
BPF_F_ADJ_ROOM_ENCAP_L3_IPV6 = 1 << 2
BPF_F_ADJ_ROOM_ENCAP_L4_GRE = 1 << 3
BPF_F_ADJ_ROOM_ENCAP_L4_UDP = 1 << 4
BPF_F_ADJ_ROOM_NO_CSUM_RESET = 1 << 5
BPF_F_ADJ_ROOM_ENCAP_L2_ETH = 1 << 6
BPF_F_ADJ_ROOM_DECAP_L3_IPV4 = 1 << 7
BPF_F_ADJ_ROOM_DECAP_L3_IPV6 = 1 << 8
BPF_ADJ_ROOM_ENCAP_L2_SHIFT = 56   # the inner MAC length, in bits 56-63 of the flags
BPF_F_SKIP_FIELD_MASK = 0xFF     # bpf_get_stackid
BPF_F_USER_STACK = 1 << 8
BPF_F_FAST_STACK_CMP = 1 << 9
BPF_F_REUSE_STACKID = 1 << 10
BPF_F_USER_BUILD_ID = 1 << 11   # bpf_get_stack
# The deepest stack a perf callchain (bpf_get_stackid, bpf_get_stack) holds: the default
# of sysctl kernel.perf_event_max_stack (PERF_MAX_STACK_DEPTH).
MAX_PERF_STACK = 127
# The highest signal number (_NSIG): bpf_send_signal refuses a greater one (valid_signal).
NSIG = 64
# bpf_send_signal_task's pid types (enum pid_type) and the task flag of a kernel thread,
# which no BPF signal reaches (bpf_send_signal_common)
PIDTYPE_PID, PIDTYPE_TGID = 0, 1
PF_KTHREAD = 0x00200000
# the other task flags (include/linux/sched.h) a per-CPU workqueue worker has: forked
# without exec, a workqueue worker (worker_thread), not frozen (kthreadd's), its CPU fixed
# (worker_attach_to_pool): a kworker's task->flags is these and PF_KTHREAD
PF_WQ_WORKER = 0x00000020
PF_FORKNOEXEC = 0x00000040
PF_NOFREEZE = 0x00008000
PF_NO_SETAFFINITY = 0x04000000
# bpf_iter_task_new's flags (kernel/bpf/task_iter.c): every process (thread group
# leader), every thread, the threads of one process from the task given on
BPF_TASK_ITER_ALL_PROCS, BPF_TASK_ITER_ALL_THREADS, BPF_TASK_ITER_PROC_THREADS = 0, 1, 2
# bpf_iter_css_new's orders (uapi enum bpf_cgroup_iter_order): the css iterator takes
# the last three
BPF_CGROUP_ITER_SELF_ONLY, BPF_CGROUP_ITER_DESCENDANTS_PRE = 1, 2
BPF_CGROUP_ITER_DESCENDANTS_POST, BPF_CGROUP_ITER_ANCESTORS_UP = 3, 4

# bpf_csum_level's levels and bpf_check_mtu's flag and results (uapi linux/bpf.h).
BPF_CSUM_LEVEL_QUERY = 0
BPF_CSUM_LEVEL_INC = 1
BPF_CSUM_LEVEL_DEC = 2
BPF_CSUM_LEVEL_RESET = 3
BPF_MTU_CHK_SEGS = 1 << 0
BPF_MTU_CHK_RET_SUCCESS = 0
BPF_MTU_CHK_RET_FRAG_NEEDED = 1
BPF_MTU_CHK_RET_SEGS_TOOBIG = 2
BPF_HDR_START_MAC = 0               # bpf_skb_load_bytes_relative
BPF_HDR_START_NET = 1
BPF_SKB_CLOCK_REALTIME = 0          # bpf_skb_set_tstamp
BPF_SKB_CLOCK_MONOTONIC = 1
BPF_SKB_CLOCK_TAI = 2

# bpf_fib_lookup's flags and results (uapi linux/bpf.h; MARK is 6.10's).
BPF_FIB_LOOKUP_DIRECT = 1 << 0
BPF_FIB_LOOKUP_OUTPUT = 1 << 1
BPF_FIB_LOOKUP_SKIP_NEIGH = 1 << 2
BPF_FIB_LOOKUP_TBID = 1 << 3
BPF_FIB_LOOKUP_SRC = 1 << 4
BPF_FIB_LOOKUP_MARK = 1 << 5
BPF_FIB_LKUP_RET_SUCCESS = 0
BPF_FIB_LKUP_RET_BLACKHOLE = 1
BPF_FIB_LKUP_RET_UNREACHABLE = 2
BPF_FIB_LKUP_RET_PROHIBIT = 3
BPF_FIB_LKUP_RET_NOT_FWDED = 4
BPF_FIB_LKUP_RET_FWD_DISABLED = 5
BPF_FIB_LKUP_RET_UNSUPP_LWT = 6
BPF_FIB_LKUP_RET_NO_NEIGH = 7
BPF_FIB_LKUP_RET_FRAG_NEEDED = 8
BPF_FIB_LKUP_RET_NO_SRC_ADDR = 9
SIZEOF_BPF_FIB_LOOKUP = 64
SIZEOF_BPF_REDIR_NEIGH = 20
# The redirect kinds bpf_redirect_info carries beside BPF_F_INGRESS (net/core/filter.c).
BPF_F_NEIGH = 1 << 16
BPF_F_PEER = 1 << 17
BPF_F_NEXTHOP = 1 << 18
BPF_F_CURRENT_NETNS = -1            # bpf_sk_lookup_*'s netns argument
# struct bpf_sock_tuple's two sizes, and the sizes of the socket views programs read.
SIZEOF_BPF_SOCK_TUPLE_IPV4 = 12
SIZEOF_BPF_SOCK_TUPLE_IPV6 = 36
SIZEOF_BPF_SOCK = 80
SIZEOF_BPF_TCP_SOCK = 112
# struct bpf_sock (uapi linux/bpf.h): field -> (offset, size).
BPF_SOCK_LAYOUT = {
    "bound_dev_if": (0, 4), "family": (4, 4), "type": (8, 4), "protocol": (12, 4),
    "mark": (16, 4), "priority": (20, 4), "src_ip4": (24, 4), "src_ip6": (28, 16),
    "src_port": (44, 4), "dst_port": (48, 2), "dst_ip4": (52, 4), "dst_ip6": (56, 16),
    "state": (72, 4), "rx_queue_mapping": (76, 4),
}
# struct bpf_tcp_sock: the two 8-byte counters; every other field is 4 bytes.
BPF_TCP_SOCK_U64 = {"bytes_received": 80, "bytes_acked": 88}

# pkt_cls.h verdicts.
TC_ACT_UNSPEC = -1
TC_ACT_OK = 0
TC_ACT_RECLASSIFY = 1
TC_ACT_SHOT = 2
TC_ACT_PIPE = 3
TC_ACT_STOLEN = 4
TC_ACT_QUEUED = 5
TC_ACT_REPEAT = 6
TC_ACT_REDIRECT = 7
TC_ACT_TRAP = 8
# The same verdicts as an IntEnum (``TC_ACT.SHOT == 2``), built from the names above so
# that they stay the one definition.
TC_ACT = enum.IntEnum("TC_ACT", sorted(((name[len("TC_ACT_"):], value) for name, value in
                                        globals().items() if name.startswith("TC_ACT_")),
                                       key=lambda item: item[1]))
TC_ACT.__doc__ = "The kernel's tc verdicts (``TC_ACT_*`` of ``linux/pkt_cls.h``)."

# enum bpf_func_id, in order (``__BPF_FUNC_MAPPER``); ids 1-30 are the v4.6 set.
HELPER_NAMES = (
    "unspec", "map_lookup_elem", "map_update_elem", "map_delete_elem", "probe_read",
    "ktime_get_ns", "trace_printk", "get_prandom_u32", "get_smp_processor_id",
    "skb_store_bytes", "l3_csum_replace", "l4_csum_replace", "tail_call", "clone_redirect",
    "get_current_pid_tgid", "get_current_uid_gid", "get_current_comm", "get_cgroup_classid",
    "skb_vlan_push", "skb_vlan_pop", "skb_get_tunnel_key", "skb_set_tunnel_key",
    "perf_event_read", "redirect", "get_route_realm", "perf_event_output", "skb_load_bytes",
    "get_stackid", "csum_diff", "skb_get_tunnel_opt", "skb_set_tunnel_opt",
    "skb_change_proto", "skb_change_type", "skb_under_cgroup", "get_hash_recalc",
    "get_current_task", "probe_write_user", "current_task_under_cgroup", "skb_change_tail",
    "skb_pull_data", "csum_update", "set_hash_invalid", "get_numa_node_id",
    "skb_change_head", "xdp_adjust_head", "probe_read_str", "get_socket_cookie",
    "get_socket_uid", "set_hash", "setsockopt", "skb_adjust_room", "redirect_map",
    "sk_redirect_map", "sock_map_update", "xdp_adjust_meta", "perf_event_read_value",
    "perf_prog_read_value", "getsockopt", "override_return", "sock_ops_cb_flags_set",
    "msg_redirect_map", "msg_apply_bytes", "msg_cork_bytes", "msg_pull_data", "bind",
    "xdp_adjust_tail", "skb_get_xfrm_state", "get_stack", "skb_load_bytes_relative",
    "fib_lookup", "sock_hash_update", "msg_redirect_hash", "sk_redirect_hash",
    "lwt_push_encap", "lwt_seg6_store_bytes", "lwt_seg6_adjust_srh", "lwt_seg6_action",
    "rc_repeat", "rc_keydown", "skb_cgroup_id", "get_current_cgroup_id",
    "get_local_storage", "sk_select_reuseport", "skb_ancestor_cgroup_id", "sk_lookup_tcp",
    "sk_lookup_udp", "sk_release", "map_push_elem", "map_pop_elem", "map_peek_elem",
    "msg_push_data", "msg_pop_data", "rc_pointer_rel", "spin_lock", "spin_unlock",
    "sk_fullsock", "tcp_sock", "skb_ecn_set_ce", "get_listener_sock", "skc_lookup_tcp",
    "tcp_check_syncookie", "sysctl_get_name", "sysctl_get_current_value",
    "sysctl_get_new_value", "sysctl_set_new_value", "strtol", "strtoul", "sk_storage_get",
    "sk_storage_delete", "send_signal", "tcp_gen_syncookie", "skb_output",
    "probe_read_user", "probe_read_kernel", "probe_read_user_str", "probe_read_kernel_str",
    "tcp_send_ack", "send_signal_thread", "jiffies64", "read_branch_records",
    "get_ns_current_pid_tgid", "xdp_output", "get_netns_cookie",
    "get_current_ancestor_cgroup_id", "sk_assign", "ktime_get_boot_ns", "seq_printf",
    "seq_write", "sk_cgroup_id", "sk_ancestor_cgroup_id", "ringbuf_output",
    "ringbuf_reserve", "ringbuf_submit", "ringbuf_discard", "ringbuf_query", "csum_level",
    "skc_to_tcp6_sock", "skc_to_tcp_sock", "skc_to_tcp_timewait_sock",
    "skc_to_tcp_request_sock", "skc_to_udp6_sock", "get_task_stack", "load_hdr_opt",
    "store_hdr_opt", "reserve_hdr_opt", "inode_storage_get", "inode_storage_delete",
    "d_path", "copy_from_user", "snprintf_btf", "seq_printf_btf", "skb_cgroup_classid",
    "redirect_neigh", "per_cpu_ptr", "this_cpu_ptr", "redirect_peer", "task_storage_get",
    "task_storage_delete", "get_current_task_btf", "bprm_opts_set", "ktime_get_coarse_ns",
    "ima_inode_hash", "sock_from_file", "check_mtu", "for_each_map_elem", "snprintf",
    "sys_bpf", "btf_find_by_name_kind", "sys_close", "timer_init", "timer_set_callback",
    "timer_start", "timer_cancel", "get_func_ip", "get_attach_cookie", "task_pt_regs",
    "get_branch_snapshot", "trace_vprintk", "skc_to_unix_sock", "kallsyms_lookup_name",
    "find_vma", "loop", "strncmp", "get_func_arg", "get_func_ret", "get_func_arg_cnt",
    "get_retval", "set_retval", "xdp_get_buff_len", "xdp_load_bytes", "xdp_store_bytes",
    "copy_from_user_task", "skb_set_tstamp", "ima_file_hash", "kptr_xchg",
    "map_lookup_percpu_elem", "skc_to_mptcp_sock", "dynptr_from_mem",
    "ringbuf_reserve_dynptr", "ringbuf_submit_dynptr", "ringbuf_discard_dynptr",
    "dynptr_read", "dynptr_write", "dynptr_data", "tcp_raw_gen_syncookie_ipv4",
    "tcp_raw_gen_syncookie_ipv6", "tcp_raw_check_syncookie_ipv4",
    "tcp_raw_check_syncookie_ipv6", "ktime_get_tai_ns", "user_ringbuf_drain",
    "cgrp_storage_get", "cgrp_storage_delete",
)
HELPER_IDS = {name: i for i, name in enumerate(HELPER_NAMES)}

BTF_FIELDS_MAX = 11        # special fields one map value may hold (include/linux/bpf.h)
BPF_GLOBAL_PERCPU_MA_MAX_SIZE = 512     # the largest struct bpf_percpu_obj_new allocates

# kfunc flags (the KF_* of include/linux/btf.h).
KF_ACQUIRE, KF_RELEASE, KF_RET_NULL = 1 << 0, 1 << 1, 1 << 2
KF_TRUSTED_ARGS, KF_SLEEPABLE, KF_DESTRUCTIVE, KF_RCU = 1 << 4, 1 << 5, 1 << 6, 1 << 7
KF_ITER_NEW, KF_ITER_NEXT, KF_ITER_DESTROY, KF_RCU_PROTECTED = 1 << 8, 1 << 9, 1 << 10, 1 << 11

# The kfuncs pyebpf knows, by the engine's own id (the imm of a kfunc call in an
# engine program; the kernel's imm is the function's id in its vmlinux BTF, which the
# engine cannot rely on having).  Append only: ids are stored in pin files.
KFUNC_NAMES = (
    "", "bpf_iter_num_new", "bpf_iter_num_next", "bpf_iter_num_destroy",
    "bpf_cast_to_kern_ctx", "bpf_rdonly_cast", "bpf_dynptr_from_skb", "bpf_dynptr_slice",
    "bpf_dynptr_slice_rdwr", "bpf_dynptr_adjust", "bpf_dynptr_is_null",
    "bpf_dynptr_is_rdonly", "bpf_dynptr_size", "bpf_dynptr_clone", "bpf_skb_ct_lookup",
    "bpf_skb_ct_alloc", "bpf_ct_insert_entry", "bpf_ct_release", "bpf_ct_set_timeout",
    "bpf_ct_change_timeout", "bpf_ct_set_status", "bpf_ct_change_status",
    "bpf_ct_set_nat_info", "bpf_obj_new_impl", "bpf_obj_drop_impl",
    "bpf_list_push_front_impl", "bpf_list_push_back_impl", "bpf_list_pop_front",
    "bpf_list_pop_back", "bpf_rbtree_add_impl", "bpf_rbtree_remove", "bpf_rbtree_first",
    "bpf_rcu_read_lock", "bpf_rcu_read_unlock", "bpf_preempt_disable", "bpf_preempt_enable",
    "bpf_refcount_acquire_impl",
    "__bpf_trap", "bpf_strcmp", "bpf_strcasecmp", "bpf_strchr", "bpf_strchrnul",
    "bpf_strnchr", "bpf_strrchr", "bpf_strlen", "bpf_strnlen", "bpf_strspn", "bpf_strcspn",
    "bpf_strstr", "bpf_strnstr", "bpf_iter_bits_new", "bpf_iter_bits_next",
    "bpf_iter_bits_destroy", "bpf_dynptr_copy", "bpf_dynptr_memset",
    "bpf_map_sum_elem_count", "bpf_local_irq_save", "bpf_local_irq_restore",
    "bpf_res_spin_lock", "bpf_res_spin_unlock", "bpf_res_spin_lock_irqsave",
    "bpf_res_spin_unlock_irqrestore", "bpf_probe_read_kernel_dynptr",
    "bpf_probe_read_kernel_str_dynptr", "bpf_probe_read_user_dynptr",
    "bpf_probe_read_user_str_dynptr", "bpf_copy_from_user_str", "bpf_copy_from_user_dynptr",
    "bpf_copy_from_user_str_dynptr", "bpf_copy_from_user_task_dynptr",
    "bpf_copy_from_user_task_str", "bpf_copy_from_user_task_str_dynptr",
    "bpf_cgroup_read_xattr", "bpf_get_kmem_cache", "bpf_iter_css_new", "bpf_iter_css_next",
    "bpf_iter_css_destroy", "bpf_iter_css_task_new", "bpf_iter_css_task_next",
    "bpf_iter_css_task_destroy", "bpf_iter_dmabuf_new", "bpf_iter_dmabuf_next",
    "bpf_iter_dmabuf_destroy", "bpf_iter_kmem_cache_new", "bpf_iter_kmem_cache_next",
    "bpf_iter_kmem_cache_destroy", "bpf_iter_task_new", "bpf_iter_task_next",
    "bpf_iter_task_destroy", "bpf_iter_task_vma_new", "bpf_iter_task_vma_next",
    "bpf_iter_task_vma_destroy", "bpf_modify_return_test_tp", "bpf_stream_vprintk_impl",
    "bpf_task_work_schedule_signal_impl", "bpf_task_work_schedule_resume_impl",
    "bpf_wq_init", "bpf_wq_set_callback_impl", "bpf_wq_start", "bpf_xdp_ct_alloc",
    "bpf_xdp_ct_lookup", "bpf_list_front", "bpf_list_back", "bpf_rbtree_root",
    "bpf_rbtree_left", "bpf_rbtree_right", "bpf_percpu_obj_new_impl",
    "bpf_percpu_obj_drop_impl", "bpf_task_acquire", "bpf_task_release", "bpf_task_from_pid",
    "bpf_task_from_vpid", "bpf_task_get_cgroup1", "bpf_task_under_cgroup",
    "bpf_cgroup_acquire", "bpf_cgroup_release", "bpf_cgroup_ancestor", "bpf_cgroup_from_id",
    "bpf_send_signal_task", "bpf_throw", "bpf_lookup_user_key", "bpf_lookup_system_key",
    "bpf_key_put", "bpf_sk_assign_tcp_reqsk", "bpf_kfunc_call_test_release",
    "bpf_kfunc_call_memb_release", "bpf_dynptr_from_skb_meta", "bpf_crypto_decrypt",
    "bpf_crypto_encrypt", "bpf_crypto_ctx_create", "bpf_crypto_ctx_acquire",
    "bpf_crypto_ctx_release", "bpf_arena_alloc_pages", "bpf_arena_free_pages",
    "bpf_arena_reserve_pages",
)
KFUNC_IDS = {name: i for i, name in enumerate(KFUNC_NAMES) if name}
N_KFUNC_IDS = len(KFUNC_NAMES)
BPF_FUNC = enum.IntEnum("BPF_FUNC", {f"BPF_FUNC_{n}": i for i, n in enumerate(HELPER_NAMES)})
MAX_HELPER_ID = len(HELPER_NAMES) - 1


# --- operand schema ---------------------------------------------------------------
class Field(enum.Enum):
    """How an instruction uses its ``off`` or ``imm`` field."""
    UNUSED = "unused"       # must be zero (or the discriminator value)
    S32 = "s32"             # signed 32-bit immediate (sign-extended for 64-bit ops)
    MEM = "mem"             # signed 16-bit memory offset
    JUMP = "jump"           # signed pc-relative target, counted from the next slot
    WIDTH = "width"         # 16, 32 or 64 (byte swaps)
    HELPER = "helper"       # helper id
    IMM64 = "imm64"         # lddw: low half here, high half in the next slot
    FIXED = "fixed"         # the discriminator; carries no operand


@dataclass(frozen=True, eq=False)
class Form:
    """Which fields of an instruction carry operands, and how.  Each form is one of the
    ``F_*`` constants below, compared by identity (the verifier tests forms per
    instruction processed)."""
    name: str
    dst: bool           # dst_reg is an operand
    src: bool           # src_reg is an operand (a register)
    off: Field
    imm: Field


F_ALU_K = Form("alu_k", True, False, Field.UNUSED, Field.S32)
F_ALU_X = Form("alu_x", True, True, Field.UNUSED, Field.UNUSED)
F_ALU_SX = Form("alu_sx", True, True, Field.FIXED, Field.UNUSED)      # movsx: off = width
# addr_space_cast (off = BPF_ADDR_SPACE_CAST): imm = dst address space << 16 | src's
F_ADDR_SPACE_CAST = Form("addr_space_cast", True, True, Field.FIXED, Field.S32)
F_ALU_XOFF_K = Form("alu_off_k", True, False, Field.FIXED, Field.S32)  # sdiv/smod imm
F_ALU_XOFF_X = Form("alu_off_x", True, True, Field.FIXED, Field.UNUSED)
F_NEG = Form("neg", True, False, Field.UNUSED, Field.UNUSED)
F_END = Form("end", True, False, Field.UNUSED, Field.WIDTH)
F_LDDW = Form("lddw", True, False, Field.UNUSED, Field.IMM64)
F_LDX = Form("ldx", True, True, Field.MEM, Field.UNUSED)
F_ST = Form("st", True, False, Field.MEM, Field.S32)
F_STX = Form("stx", True, True, Field.MEM, Field.UNUSED)
F_ATOMIC = Form("atomic", True, True, Field.MEM, Field.FIXED)
F_LD_ABS = Form("ld_abs", False, False, Field.UNUSED, Field.S32)
F_LD_IND = Form("ld_ind", False, True, Field.UNUSED, Field.S32)
F_JA = Form("ja", False, False, Field.JUMP, Field.UNUSED)
F_JA32 = Form("ja32", False, False, Field.UNUSED, Field.JUMP)
F_JCC_K = Form("jcc_k", True, False, Field.JUMP, Field.S32)
F_JCC_X = Form("jcc_x", True, True, Field.JUMP, Field.UNUSED)
F_CALL = Form("call", False, False, Field.UNUSED, Field.HELPER)
F_CALL_LOCAL = Form("call_local", False, False, Field.UNUSED, Field.JUMP)
F_CALLX = Form("callx", True, False, Field.UNUSED, Field.UNUSED)
F_EXIT = Form("exit", False, False, Field.UNUSED, Field.UNUSED)
F_MAY_GOTO = Form("may_goto", False, False, Field.JUMP, Field.UNUSED)


@dataclass(frozen=True)
class Op:
    """One instruction of the table.

    ``disc`` names the field that tells this op apart from others with the same opcode
    (``"src"``, ``"off"`` or ``"imm"``) and ``disc_value`` its value; both are None when
    the opcode byte alone decides.  ``mnemonic`` is the conformance-suite spelling.
    ``size`` is the access width in bytes for memory ops, or the byte-swap width.
    """
    id: int
    name: str
    code: int
    mnemonic: str
    form: Form
    disc: str | None = None
    disc_value: int | None = None
    size: int = 0

    @property
    def cls(self) -> int:
        return BPF_CLASS(self.code)

    @property
    def is_64(self) -> bool:
        """64-bit ALU/JMP (as opposed to ALU32/JMP32)."""
        return self.cls in (BPF_ALU64, BPF_JMP)

    @property
    def slots(self) -> int:
        return 2 if self.form is F_LDDW else 1

    @property
    def is_sign_extending_load(self) -> bool:
        """``ldxs*``: a BPF_MEMSX load, sign-extended to 64 bits."""
        return self.form is F_LDX and BPF_MODE(self.code) == BPF_MEMSX

    @property
    def is_to_le(self) -> bool:
        """``le16/32/64``: to little-endian on a little-endian machine, a truncation only
        (BPF_ALU | BPF_END | BPF_TO_LE; the ALU64 form is ``bswap``)."""
        return self.form is F_END and self.cls == BPF_ALU and self.code & BPF_TO_BE == BPF_TO_LE


ALU_OPS = (  # (kernel op, mnemonic, C-like operator for the disassembler)
    (BPF_ADD, "add", "+="), (BPF_SUB, "sub", "-="), (BPF_MUL, "mul", "*="),
    (BPF_DIV, "div", "/="), (BPF_OR, "or", "|="), (BPF_AND, "and", "&="),
    (BPF_LSH, "lsh", "<<="), (BPF_RSH, "rsh", ">>="), (BPF_MOD, "mod", "%="),
    (BPF_XOR, "xor", "^="), (BPF_MOV, "mov", "="), (BPF_ARSH, "arsh", "s>>="),
)
JMP_OPS = (  # (kernel op, mnemonic suffix, C-like comparison)
    (BPF_JEQ, "eq", "=="), (BPF_JGT, "gt", ">"), (BPF_JGE, "ge", ">="),
    (BPF_JSET, "set", "&"), (BPF_JNE, "ne", "!="), (BPF_JSGT, "sgt", "s>"),
    (BPF_JSGE, "sge", "s>="), (BPF_JLT, "lt", "<"), (BPF_JLE, "le", "<="),
    (BPF_JSLT, "slt", "s<"), (BPF_JSLE, "sle", "s<="),
)
ATOMIC_OPS = (  # (imm, mnemonic words)
    (BPF_ADD, "add"), (BPF_OR, "or"), (BPF_AND, "and"), (BPF_XOR, "xor"),
    (BPF_ADD | BPF_FETCH, "fetch add"), (BPF_OR | BPF_FETCH, "fetch or"),
    (BPF_AND | BPF_FETCH, "fetch and"), (BPF_XOR | BPF_FETCH, "fetch xor"),
    (BPF_XCHG, "xchg"), (BPF_CMPXCHG, "cmpxchg"),
)
ALU_OP_MNEMONIC = {op: m for op, m, _ in ALU_OPS}
ALU_OP_SYMBOL = {op: s for op, _, s in ALU_OPS}
JMP_OP_MNEMONIC = {op: m for op, m, _ in JMP_OPS}
JMP_OP_SYMBOL = {op: s for op, _, s in JMP_OPS}
ATOMIC_OP_WORDS = dict(ATOMIC_OPS)


def _build_table() -> tuple[Op, ...]:
    ops: list[Op] = []

    def add(name, code, mnemonic, form, disc=None, disc_value=None, size=0):
        ops.append(Op(len(ops) + 1, name, code, mnemonic, form, disc, disc_value, size))

    for cls, bits, sfx in ((BPF_ALU64, 64, ""), (BPF_ALU, 32, "32")):
        for op, m, _ in ALU_OPS:
            up = m.upper()
            # div, mod and mov share their opcodes with the v4 sdiv, smod and movsx,
            # which set off; off = 0 selects the original operation.
            shared_k = ("off", 0) if op in (BPF_DIV, BPF_MOD) else (None, None)
            shared_x = ("off", 0) if op in (BPF_DIV, BPF_MOD, BPF_MOV) else (None, None)
            add(f"{up}{bits}_K", cls | op | BPF_K, m + sfx, F_ALU_K, *shared_k)
            add(f"{up}{bits}_X", cls | op | BPF_X, m + sfx, F_ALU_X, *shared_x)
        for op, m in ((BPF_DIV, "sdiv"), (BPF_MOD, "smod")):
            up = m.upper()
            add(f"{up}{bits}_K", cls | op | BPF_K, m + sfx, F_ALU_XOFF_K, "off", 1)
            add(f"{up}{bits}_X", cls | op | BPF_X, m + sfx, F_ALU_XOFF_X, "off", 1)
        add(f"NEG{bits}", cls | BPF_NEG, "neg" + sfx, F_NEG)
    for w in (8, 16, 32):
        add(f"MOVSX{w}_64", BPF_ALU64 | BPF_MOV | BPF_X, f"movsx{w}64", F_ALU_SX, "off", w, w // 8)
    add("ADDR_SPACE_CAST", BPF_ALU64 | BPF_MOV | BPF_X, "addr_space_cast", F_ADDR_SPACE_CAST,
        "off", BPF_ADDR_SPACE_CAST)
    for w in (8, 16):
        add(f"MOVSX{w}_32", BPF_ALU | BPF_MOV | BPF_X, f"movsx{w}32", F_ALU_SX, "off", w, w // 8)
    for w in (16, 32, 64):
        add(f"LE{w}", BPF_ALU | BPF_END | BPF_TO_LE, f"le{w}", F_END, "imm", w, w // 8)
        add(f"BE{w}", BPF_ALU | BPF_END | BPF_TO_BE, f"be{w}", F_END, "imm", w, w // 8)
        add(f"BSWAP{w}", BPF_ALU64 | BPF_END | BPF_TO_LE, f"bswap{w}", F_END, "imm", w, w // 8)

    add("LDDW", BPF_LD | BPF_IMM | BPF_DW, "lddw", F_LDDW, "src", 0, 8)
    for src, tag in ((BPF_PSEUDO_MAP_FD, "MAP_FD"), (BPF_PSEUDO_MAP_VALUE, "MAP_VALUE"),
                     (BPF_PSEUDO_BTF_ID, "BTF_ID"), (BPF_PSEUDO_FUNC, "FUNC"),
                     (BPF_PSEUDO_MAP_IDX, "MAP_IDX"),
                     (BPF_PSEUDO_MAP_IDX_VALUE, "MAP_IDX_VALUE")):
        add(f"LDDW_{tag}", BPF_LD | BPF_IMM | BPF_DW, "lddw", F_LDDW, "src", src, 8)

    for sz in (BPF_B, BPF_H, BPF_W, BPF_DW):
        n, s = SIZE_BYTES[sz], SIZE_NAME[sz]
        add(f"LDX{n * 8}", BPF_LDX | BPF_MEM | sz, f"ldx{s}", F_LDX, size=n)
        add(f"ST{n * 8}", BPF_ST | BPF_MEM | sz, f"st{s}", F_ST, size=n)
        add(f"STX{n * 8}", BPF_STX | BPF_MEM | sz, f"stx{s}", F_STX, size=n)
    for sz in (BPF_B, BPF_H, BPF_W):
        n, s = SIZE_BYTES[sz], SIZE_NAME[sz]
        add(f"LDXS{n * 8}", BPF_LDX | BPF_MEMSX | sz, f"ldxs{s}", F_LDX, size=n)
        add(f"LD_ABS{n * 8}", BPF_LD | BPF_ABS | sz, f"ldabs{s}", F_LD_ABS, size=n)
        add(f"LD_IND{n * 8}", BPF_LD | BPF_IND | sz, f"ldind{s}", F_LD_IND, size=n)
    for sz, bits, sfx in ((BPF_W, 32, "32"), (BPF_DW, 64, "")):
        for imm, words in ATOMIC_OPS:
            tag = words.upper().replace(" ", "_")
            add(f"ATOMIC{bits}_{tag}", BPF_STX | BPF_ATOMIC | sz, f"lock {words}{sfx}",
                F_ATOMIC, "imm", imm, bits // 8)

    add("JA", BPF_JMP | BPF_JA, "ja", F_JA)
    add("JA32", BPF_JMP32 | BPF_JA, "ja32", F_JA32)
    for cls, bits, sfx in ((BPF_JMP, 64, ""), (BPF_JMP32, 32, "32")):
        for op, m, _ in JMP_OPS:
            up = m.upper()
            add(f"J{up}{bits}_K", cls | op | BPF_K, f"j{m}{sfx}", F_JCC_K)
            add(f"J{up}{bits}_X", cls | op | BPF_X, f"j{m}{sfx}", F_JCC_X)
    add("CALL", BPF_JMP | BPF_CALL, "call", F_CALL, "src", 0)
    add("CALL_LOCAL", BPF_JMP | BPF_CALL, "call local", F_CALL_LOCAL, "src", BPF_PSEUDO_CALL)
    add("CALL_KFUNC", BPF_JMP | BPF_CALL, "call kfunc", F_CALL, "src", BPF_PSEUDO_KFUNC_CALL)
    add("CALLX", BPF_JMP | BPF_CALL | BPF_X, "callx", F_CALLX)
    add("EXIT", BPF_JMP | BPF_EXIT, "exit", F_EXIT)
    add("MAY_GOTO", BPF_JMP | BPF_JCOND, "may_goto", F_MAY_GOTO, "src", BPF_MAY_GOTO)
    return tuple(ops)


OPS: tuple[Op, ...] = _build_table()
OPS_BY_NAME = {op.name: op for op in OPS}
OPS_BY_ID = {op.id: op for op in OPS}
# Internal id of the second slot of an lddw: never executed, jumped into = error.
OP_LDDW_TAIL = len(OPS) + 1
# Internal id of a slot the decoder could not map (the verifier refuses it first).
OP_INVALID = 0
# Internal ids of context loads the decoder specialised where the verifier proved the
# base the context (one pointer kind per instruction: the kernel's reg_type_mismatch)
# and the access readable, as the kernel's convert_ctx_access rewrites them: a field
# read (imm: field id | kernel width << 8), and the ``data`` and ``data_end`` pointers.
# Each loads ``size`` bytes at ``off`` of the context, as the LDX it replaces.
OP_LDX_CTX = OP_LDDW_TAIL + 1
OP_LDX_CTX_DATA = OP_LDDW_TAIL + 2
OP_LDX_CTX_DATA_END = OP_LDDW_TAIL + 3
CTX_LOAD_OPS = {"LDX_CTX": OP_LDX_CTX, "LDX_CTX_DATA": OP_LDX_CTX_DATA,
                "LDX_CTX_DATA_END": OP_LDX_CTX_DATA_END}
# The region hints of plain loads (LDX, not sign-extending) the decoder gives where the
# verifier proved the pointer's kind (as check_mem_access sorts them): the interpreter
# tries that region of the run first (1 + its index: the stack is region 0, an skb
# program's packet region 1, its maps' values from region 2), then every region as for
# any load.  0: no hint.  Any region a run has is readable, so a hint changes no result.
# A raw program's loads (no verifier) get the hint of the register they go through where
# the decoder follows it from r1 (the run's memory, region 1 as an skb's packet) or r10.
LOAD_HINT_NONE = 0
LOAD_HINTS = {"stack": 1, "packet": 2, "map_value": 3, "memory": 2}

# code -> discriminator field name (or None) and {disc value: Op}
_BY_CODE: dict[int, tuple[str | None, dict[int | None, Op]]] = {}
for _op in OPS:
    _disc, _table = _BY_CODE.setdefault(_op.code, (_op.disc, {}))
    if _disc != _op.disc:
        raise AssertionError(f"opcode {_op.code:#x}: mixed discriminators")
    _table[_op.disc_value] = _op
del _op, _disc, _table

OPCODES = frozenset(_BY_CODE)


@dataclass(frozen=True)
class Insn:
    """One raw 8-byte instruction slot, fields as the kernel's ``struct bpf_insn``."""
    code: int
    dst: int
    src: int
    off: int
    imm: int

    _STRUCT = struct.Struct("<BBhi")

    @classmethod
    def unpack(cls, raw: bytes, offset: int = 0) -> "Insn":
        code, regs, off, imm = cls._STRUCT.unpack_from(raw, offset)
        return cls(code, regs & 0x0F, regs >> 4, off, imm)

    def pack(self) -> bytes:
        return self._STRUCT.pack(self.code, (self.src << 4) | self.dst, self.off, self.imm)

    def replace(self, **fields) -> "Insn":
        """This slot with some fields changed (``imm=``, ``src=``, ...)."""
        return dataclasses.replace(self, **fields)

    @property
    def is_lddw(self) -> bool:
        """The first slot of a 16-byte ``lddw`` (any pseudo source)."""
        return self.code == LDDW_CODE

    @property
    def is_map_load(self) -> bool:
        """An ``lddw`` of a map (``BPF_PSEUDO_MAP_FD``: imm is the map's fd) or of an
        address in a map's value (``BPF_PSEUDO_MAP_VALUE``: the second slot's imm is the
        offset)."""
        return self.is_lddw and self.src in (BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_VALUE)

    @property
    def is_call(self) -> bool:
        """A ``call`` of any kind: helper, bpf-to-bpf or kfunc (not ``callx``)."""
        return self.code == CALL_CODE

    @property
    def is_helper_call(self) -> bool:
        return self.is_call and self.src == 0

    @property
    def is_pseudo_call(self) -> bool:
        """A bpf-to-bpf call: imm is the callee's offset from the next slot."""
        return self.is_call and self.src == BPF_PSEUDO_CALL

    @property
    def is_kfunc_call(self) -> bool:
        return self.is_call and self.src == BPF_PSEUDO_KFUNC_CALL

    @property
    def is_callx(self) -> bool:
        """A call through a register (``callx``)."""
        return self.code == CALL_CODE | BPF_X

    @property
    def is_exit(self) -> bool:
        return self.code == BPF_JMP | BPF_EXIT


def patch(buf: bytearray, pc: int, **fields) -> Insn:
    """Change fields of the slot at ``pc`` of the instruction bytes ``buf`` in place;
    the slot as it is now."""
    insn = Insn.unpack(buf, pc * INSN_SIZE).replace(**fields)
    buf[pc * INSN_SIZE:(pc + 1) * INSN_SIZE] = insn.pack()
    return insn


def unpack_program(raw: bytes) -> list[Insn]:
    """Split raw bytes into instruction slots (``len(raw)`` must be a multiple of 8)."""
    if len(raw) % INSN_SIZE:
        raise ValueError(f"program length {len(raw)} is not a multiple of {INSN_SIZE}")
    slots = _SLOTS
    if len(slots) >= _SLOTS_MAX:
        slots.clear()
    # each slot as one 64-bit word: the look-ups of slots seen before run in C
    words = array.array("Q", raw)
    if sys.byteorder != "little":
        words.byteswap()
    try:
        return list(map(slots.__getitem__, words))
    except KeyError:
        pass
    for word in words:
        if word in slots:
            continue
        code, regs, off, imm = Insn._STRUCT.unpack(word.to_bytes(8, "little"))
        slots[word] = Insn(code, regs & 0x0F, regs >> 4, off, imm)
    return list(map(slots.__getitem__, words))


# the Insn of each slot seen (Insn is immutable), by its bytes as a little-endian word: a
# process loads the same slots again and again, and building an Insn costs ten times a
# look-up
_SLOTS: dict[int, Insn] = {}
_SLOTS_MAX = 65536


def lookup(insn: Insn) -> Op | None:
    """The table entry for a raw slot, or None when no instruction has this encoding."""
    entry = _BY_CODE.get(insn.code)
    if entry is None:
        return None
    disc, table = entry
    if disc is None:
        return table[None]
    return table.get(getattr(insn, disc))


def encode(op: Op, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> list[Insn]:
    """Slots for one instruction; the discriminator field is filled in from the table.

    For lddw, ``imm`` is the 64-bit value and two slots are returned.
    """
    fields = {"dst": dst, "src": src, "off": off, "imm": imm}
    if op.disc is not None:
        fields[op.disc] = op.disc_value
    if op.form is F_LDDW:
        value = fields["imm"] & 0xFFFFFFFFFFFFFFFF
        lo, hi = value & 0xFFFFFFFF, value >> 32
        s32 = lambda v: v - (1 << 32) if v & 0x80000000 else v  # noqa: E731
        return [Insn(op.code, fields["dst"], fields["src"], fields["off"], s32(lo)),
                Insn(0, 0, 0, 0, s32(hi))]
    return [Insn(op.code, fields["dst"], fields["src"], fields["off"], fields["imm"])]


# Module constants the compiled core needs, by name prefix (kernel names).
_C_PREFIXES = ("BPF_F_", "BPF_PSEUDO_", "BPF_ADJ_ROOM_", "TC_ACT_", "MAX_", "SKF_",
               "BPF_CSUM_LEVEL_", "BPF_MTU_CHK_", "BPF_HDR_START_", "BPF_SKB_CLOCK_",
               "BPF_FIB_", "SIZEOF_BPF_", "IPS_", "NF_", "TIMER_CLOCK_")
_C_NAMES = ("INSN_SIZE", "PAGE_SIZE", "BPF_ANY", "BPF_SK_STORAGE_GET_F_CREATE", "BPF_LOCAL_STORAGE_GET_F_CREATE",
            "BPF_NOEXIST", "BPF_EXIST", "BPF_MAX_LOOPS", "N_KFUNC_IDS",
            "BPF_STRTOX_BASE_MASK", "TICK_NSEC", "BPF_DYNPTR_SIZE", "BPF_DYNPTR_TYPE_SKB", "BPF_DYNPTR_TYPE_SKB_META",
            "BPF_DYNPTR_TYPE_LOCAL", "BPF_DYNPTR_TYPE_RINGBUF", "DYNPTR_MAX_SIZE",
            "BPF_MAX_USER_RINGBUF_SAMPLES",
            "DYNPTR_SIZE_MASK", "DYNPTR_TYPE_SHIFT", "NSIG", "BTF_FIELDS_MAX",
            "RES_NR_HELD", "RES_DEF_TIMEOUT_NS", "BPF_GLOBAL_PERCPU_MA_MAX_SIZE",
            "PCPU_MIN_UNIT_SIZE", "NR_CPUS", "CPU_MAP_MAX_QSIZE", "AF_XDP",
            "BPF_STDOUT", "BPF_STDERR", "BPF_STREAM_MAX_CAPACITY")


def pxd_source() -> str:
    """The Cython declarations of the compiled core's constants, generated from this
    module: internal op ids, map and program types, errno values, ``TC_ACT_*``, flags
    and limits.

    Constants outside the C ``int`` range (``BPF_F_INDEX_MASK``) are left out: an enum
    constant is an ``int``."""
    lines = ["# Generated from pyebpf/isa.py by `python pyebpf/isa.py --pxd`. DO NOT EDIT.",
             "cdef enum:", f"    OP_INVALID = {OP_INVALID}"]
    lines += [f"    OP_{op.name} = {op.id}" for op in OPS]
    lines += [f"    OP_LDDW_TAIL = {OP_LDDW_TAIL}"]
    lines += [f"    OP_{name} = {value}" for name, value in CTX_LOAD_OPS.items()]
    lines += [f"    OP_COUNT = {max(CTX_LOAD_OPS.values()) + 1}",
              f"    N_HELPER_IDS = {MAX_HELPER_ID + 1}", "", "cdef enum:"]
    lines += [f"    {m.name} = {m.value}" for m in (*MapType, *ProgType, *Errno)]
    lines += ["", "cdef enum:"]
    consts = {name: value for name, value in globals().items()
              if (name.startswith(_C_PREFIXES) or name in _C_NAMES)
              and type(value) is int and -2**31 <= value < 2**31}
    lines += [f"    {name} = {value}" for name, value in consts.items()]
    return "\n".join(lines) + "\n"


# Forms after which the next instruction executed need not be the next slot: jumps,
# calls (a helper may also end the run or run callbacks on its budget) and exit.
BLOCK_END_FORMS = (F_JA, F_JA32, F_JCC_K, F_JCC_X, F_CALL, F_CALL_LOCAL, F_CALLX, F_EXIT,
                   F_MAY_GOTO)


def dispatch_header() -> str:
    """The C macros of the interpreter's dispatch (``pyebpf/_dispatch.h``, written by a
    build): with GCC or Clang, labels-as-values direct-threaded code (each case ends by
    jumping straight to the next instruction's case, whose address the program keeps per
    slot, ``ProgCore.cases``, filled from a table of 256 labels, one per op id, unknown
    ids to the invalid-instruction case; a case's label reads the operands, so the
    compiler keeps only the loads of those the case uses; three more tables give the
    ``acc_readers`` variants' labels (reading acc), NULL where an op has none, two more
    the ``fused_ops`` pairs' labels, by the second op, and four more the variants
    reading acc2); elsewhere, or with
    ``PYEBPF_NO_COMPUTED_GOTO`` defined, empty macros, and the loop's C switch does all
    the dispatch.  The labels are named after Cython's C names of the ``OP_*`` constants
    of ``pyebpf/_isa_defs.pxd``."""
    names = [op.name for op in OPS if not (op.form is F_LDDW and op.disc_value)]
    entries = ",\\\n    ".join(f"[PYEBPF_OP_(OP_{name})] = &&PYEBPF_LX_(PYEBPF_OP_(OP_{name}))"
                               for name in [*names, *CTX_LOAD_OPS])
    def acc_entries(kind: str) -> str:
        return ", ".join(f"[PYEBPF_OP_(OP_{op.name})] = &&PYEBPF_LACCX_({kind}, PYEBPF_OP_(OP_{op.name}))"
                         for op in acc_readers() if kind in _acc_variants(op))
    acc_d, acc_s, acc_ds = (acc_entries(k) for k in ("d", "s", "ds"))
    def fused_entries(kind: str) -> str:
        return ", ".join(f"[PYEBPF_OP_(OP_{op.name})] = &&PYEBPF_LACCX_({kind}, PYEBPF_OP_(OP_{op.name}))"
                         for op in fused_ops())
    fused_m, fused_ms = fused_entries("m"), fused_entries("ms")
    acc_p, acc_ps, acc_q, acc_dq = (acc_entries(k) for k in ("p", "ps", "q", "dq"))
    return f"""/* Generated from pyebpf/isa.py (dispatch_header) by setup.py. DO NOT EDIT. */
#ifndef PYEBPF_DISPATCH_H
#define PYEBPF_DISPATCH_H
/* whether the build asked for the switch alone, whatever the compiler */
#ifdef PYEBPF_NO_COMPUTED_GOTO
#define PYEBPF_NO_COMPUTED_GOTO_SET 1
#else
#define PYEBPF_NO_COMPUTED_GOTO_SET 0
#endif
#if (defined(__GNUC__) || defined(__clang__)) && !defined(PYEBPF_NO_COMPUTED_GOTO)
#define PYEBPF_COMPUTED_GOTO 1
#define PYEBPF_OP_(x) __pyx_e_6pyebpf_9_isa_defs_##x
#define PYEBPF_L_(x) pyebpf_L_##x
#define PYEBPF_LX_(x) PYEBPF_L_(x)
/* a case reads the operands it uses from its instruction itself (Cython's C names of
   _interp's locals i, d, s, imm): the compiler drops the loads a case does not use */
#define PYEBPF_LABEL(x) PYEBPF_L_(x): __attribute__((unused)); __pyx_v_d = __pyx_v_i->dst; \\
    __pyx_v_s = __pyx_v_i->src; __pyx_v_imm = __pyx_v_i->imm
#define PYEBPF_LABEL_DEFAULT() pyebpf_L_default: __attribute__((unused))
#define PYEBPF_LACC_(k, x) pyebpf_L##k##_##x
#define PYEBPF_LACCX_(k, x) PYEBPF_LACC_(k, x)
#define PYEBPF_LABEL_ACC(k, x) PYEBPF_LACC_(k, x): __attribute__((unused)); __pyx_v_d = __pyx_v_i->dst; \\
    __pyx_v_s = __pyx_v_i->src; __pyx_v_imm = __pyx_v_i->imm
#define PYEBPF_LABEL_ACC_D(x) PYEBPF_LABEL_ACC(d, x)
#define PYEBPF_LABEL_ACC_S(x) PYEBPF_LABEL_ACC(s, x)
#define PYEBPF_LABEL_ACC_DS(x) PYEBPF_LABEL_ACC(ds, x)
#define PYEBPF_LABEL_ACC_M(x) PYEBPF_LABEL_ACC(m, x)
#define PYEBPF_LABEL_ACC_MS(x) PYEBPF_LABEL_ACC(ms, x)
#define PYEBPF_LABEL_ACC_P(x) PYEBPF_LABEL_ACC(p, x)
#define PYEBPF_LABEL_ACC_PS(x) PYEBPF_LABEL_ACC(ps, x)
#define PYEBPF_LABEL_ACC_Q(x) PYEBPF_LABEL_ACC(q, x)
#define PYEBPF_LABEL_ACC_DQ(x) PYEBPF_LABEL_ACC(dq, x)
#define PYEBPF_TABLE() static const void* const pyebpf_table[256] __attribute__((unused)) = {{\\
    [0 ... 255] = &&pyebpf_L_default,\\
    {entries}}}; \\
    static const void* const pyebpf_table_acc[9][256] __attribute__((unused)) = {{ \\
    {{{acc_d}}}, {{{acc_s}}}, {{{acc_ds}}}, {{{fused_m}}}, {{{fused_ms}}}, \\
    {{{acc_p}}}, {{{acc_ps}}}, {{{acc_q}}}, {{{acc_dq}}}}}
/* the table's address, for the programs' per-slot case addresses (set by a call of the
   threaded loop without a VM at import: labels exist only inside their function) */
static const void* const* pyebpf_case_table;
static const void* const (*pyebpf_acc_table)[256];
#define PYEBPF_EXPORT_TABLE() (pyebpf_case_table = pyebpf_table, pyebpf_acc_table = pyebpf_table_acc)
/* direct threading: slot I's case address (ProgCore.cases, 8 bytes a slot against
   Insn's 16) is at I's address halved plus CASES (the decoded program is at least 2-byte
   aligned): a shift, one load and the jump */
#define PYEBPF_GOTO_CASE(I, CASES) \\
    goto **(const void* const*)(((uintptr_t)(I) >> 1) + (uintptr_t)(CASES))
#define PYEBPF_NEXT(INSNS, PC, I, CASES) do {{ \\
    (I) = &(INSNS)[PC]; (PC) += 1; PYEBPF_GOTO_CASE(I, CASES); }} while (0)
/* the next slot's case, from a case that does not jump: the pointer steps on, and PC is
   not kept (a case that reads it sets it from I first) */
#define PYEBPF_STEP(I, CASES) do {{ (I) += 1; PYEBPF_GOTO_CASE(I, CASES); }} while (0)
#else
#define PYEBPF_COMPUTED_GOTO 0
static const void* const* pyebpf_case_table;
static const void* const (*pyebpf_acc_table)[256];
#define PYEBPF_LABEL_ACC_D(x)
#define PYEBPF_LABEL_ACC_S(x)
#define PYEBPF_LABEL_ACC_DS(x)
#define PYEBPF_LABEL_ACC_M(x)
#define PYEBPF_LABEL_ACC_MS(x)
#define PYEBPF_LABEL_ACC_P(x)
#define PYEBPF_LABEL_ACC_PS(x)
#define PYEBPF_LABEL_ACC_Q(x)
#define PYEBPF_LABEL_ACC_DQ(x)
#define PYEBPF_LABEL(x)
#define PYEBPF_LABEL_DEFAULT()
#define PYEBPF_TABLE()
#define PYEBPF_EXPORT_TABLE()
/* the switch picks the next case itself; CASES is only read, so that the loop's
   variable holding it is not set-but-unused */
#define PYEBPF_NEXT(INSNS, PC, I, CASES) ((void)(CASES))
#define PYEBPF_STEP(I, CASES) ((void)(CASES))
#endif
#endif
"""


# The compiled core's instruction cases are written out in ``pyebpf/_core.pyx`` between
# marker lines, not called, so that every case stays one arm of one C switch; a build
# (setup.py) rewrites them from the table and a test checks that they are current.
_ALU_X_FORMS = (F_ALU_X, F_ALU_XOFF_X)
_EXIT_ON_DIV0 = ["elif vm.div0_abort:", "    r[0] = 0", "    vm.status = STATUS_EXIT", "    break"]


def _alu_case(op: Op) -> list[str]:
    """The body of an ALU, ALU32, movsx or byte-swap case: ALU32 works on the low
    halves and zero-extends its result."""
    kop = BPF_OP(op.code)
    b = "r[s]" if op.form in _ALU_X_FORMS else "imm"
    if op.is_64:
        U, S, M, u = "<uint64_t>", "<int64_t>", 63, ""
    else:
        U, S, M, u = "<uint32_t>", "<int32_t>", 31, "<uint32_t>"
    def trunc(expr: str) -> str:
        return f"{u}({expr})" if u else expr

    if op.form is F_NEG:
        return [f"r[d] = {trunc(f'0 - {u}r[d]')}"]
    if op.form is F_ALU_SX:
        return [f"r[d] = {U}{S}<int{op.size * 8}_t>r[s]"]
    if op.form is F_ADDR_SPACE_CAST:
        # the decoder's imm: 0 for a 32-bit mov (to address space 0, which the kernel's
        # do_misc_fixups makes of it, or to 1 with BPF_F_NO_USER_CONV), else the arena's
        # user_vm_start with bit 0 set: the JIT's cast to user space, the high 32 bits
        # of user_vm_start over the low 32 of src, 0 staying 0
        return ["if imm and <uint32_t>r[s]:",
                "    r[d] = (imm & <uint64_t>0xFFFFFFFF00000000) | <uint32_t>r[s]",
                "else:", "    r[d] = <uint32_t>r[s]"]
    if op.form is F_END:
        w = op.size * 8
        if op.is_to_le:
            # to little-endian on a little-endian host: only the truncation
            return ["pass"] if w == 64 else [f"r[d] = <uint{w}_t>r[d]"]
        return [f"r[d] = bswap{w}(<uint{w}_t>r[d])"]
    if op.form in (F_ALU_XOFF_K, F_ALU_XOFF_X):
        # sdiv by 0 gives 0, smod by 0 leaves dst; by -1 they cannot trap (INT_MIN / -1
        # wraps to INT_MIN, as the kernel's interpreter computes it)
        if kop == BPF_DIV:
            return [f"if {u}{b} == 0:", "    r[d] = 0",
                    f"elif {u}{b} == {U}-1:", f"    r[d] = {trunc(f'0 - {u}r[d]')}",
                    "else:", f"    r[d] = {U}({S}r[d] / {S}{b})"]
        lines = [f"if {u}{b} == {U}-1:", "    r[d] = 0",
                 f"elif {u}{b}:", f"    r[d] = {U}({S}r[d] % {S}{b})"]
        return lines if op.is_64 else [*lines, "else:", f"    r[d] = {u}r[d]"]
    if kop in (BPF_DIV, BPF_MOD):
        # by 0: div gives 0, mod leaves dst; a converted classic program ends with 0
        # instead (div0_abort, as bpf_convert_filter emits it)
        symbol = "/" if kop == BPF_DIV else "%"
        lines = [f"if {u}{b}:", f"    r[d] = {u}r[d] {symbol} {u}{b}", *_EXIT_ON_DIV0]
        if kop == BPF_DIV:
            return [*lines, "else:", "    r[d] = 0"]
        return lines if op.is_64 else [*lines, "else:", f"    r[d] = {u}r[d]"]
    if kop == BPF_MOV:
        return [f"r[d] = {u}{b}"]
    if kop == BPF_LSH:
        return [f"r[d] = {trunc(f'{u}r[d] << ({b} & {M})')}"]
    if kop == BPF_RSH:
        return [f"r[d] = {u}r[d] >> ({b} & {M})"]
    if kop == BPF_ARSH:
        return [f"r[d] = {U}({S}r[d] >> ({b} & {M}))"]
    symbol = ALU_OP_SYMBOL[kop].rstrip("=")
    if op.is_64:
        return [f"r[d] {symbol}= {b}"]
    return [f"r[d] = {U}({u}r[d] {symbol} {u}{b})"]


def _jcc_case(op: Op) -> list[str]:
    """The comparison on the low 32 bits for JMP32, signed for the "s" comparisons,
    against imm (K) or src (X)."""
    kop = BPF_OP(op.code)
    signed = kop in (BPF_JSGT, BPF_JSGE, BPF_JSLT, BPF_JSLE)
    cast = {(False, True): "", (True, True): "<int64_t>", (False, False): "<uint32_t>",
            (True, False): "<int32_t>"}[signed, op.is_64]
    b = "imm" if op.form is F_JCC_K else "r[s]"
    # pc from i on the fall-through: the straight-line cases before it step i alone
    return [f"pc = (<uint32_t>i.off if {cast}r[d] {JMP_OP_SYMBOL[kop].lstrip('s')} {cast}{b}"
            " else <uint32_t>(i - insns) + 1)"]


# Memory accesses of one kind share a case: the width is the decoded insn's size.  A plain
# load's imm (0 in the instruction) carries the decoder's region hint (LOAD_HINTS).
_MEM_CASES = {
    (F_LDX, BPF_MEM): ["a = r[s] + <uint64_t><int64_t>i.off",
                       "if imm != 0 and imm <= <uint64_t>vm.nregions and "
                       "_within(&vm.regions[imm - 1], a, i.size):",
                       "    p = <uint8_t*><uintptr_t>a",
                       "else:",
                       "    p = _mem(vm, a, i.size, ACCESS_READ)",
                       "if p != NULL:", "    acc2, acc = acc, _load(p, i.size)", "    r[d] = acc",
                       "elif not ctx_load(vm, a, i.size, &r[d]):", "    break",
                       "else:", "    acc2, acc = acc, r[d]"],
    (F_LDX, BPF_MEMSX): ["a = r[s] + <uint64_t><int64_t>i.off",
                         "p = _mem(vm, a, i.size, ACCESS_READ)",
                         "if p != NULL:", "    r[d] = _sext(_load(p, i.size), i.size)",
                         "elif ctx_load(vm, a, i.size, &r[d]):", "    r[d] = _sext(r[d], i.size)",
                         "else:", "    break"],
    (F_ST, BPF_MEM): ["a = r[d] + <uint64_t><int64_t>i.off",
                      "p = _mem(vm, a, i.size, ACCESS_WRITE)",
                      "if p != NULL:", "    _store(p, i.size, imm)",
                      "elif not ctx_store(vm, a, i.size, imm):", "    break"],
    (F_STX, BPF_MEM): ["a = r[d] + <uint64_t><int64_t>i.off",
                       "p = _mem(vm, a, i.size, ACCESS_WRITE)",
                       "if p != NULL:", "    _store(p, i.size, r[s])",
                       "elif not ctx_store(vm, a, i.size, r[s]):", "    break"],
    (F_ATOMIC, BPF_ATOMIC): ["p = _mem(vm, r[d] + <uint64_t><int64_t>i.off, i.size, ACCESS_WRITE)",
                             "if p == NULL:", "    break",
                             "_atomic(i.op, p, i.size, &r[s], &r[0])"],
}
_ALU_FORMS = (F_ALU_K, F_ALU_X, F_ALU_SX, F_ALU_XOFF_K, F_ALU_XOFF_X, F_NEG, F_END,
              F_ADDR_SPACE_CAST)


# Every case of the interpreter carries one dispatch label per op (labels-as-values
# builds jump to it; dispatch_header) and ends by dispatching the next instruction itself
# in the threaded loop; a jump first charges the budget for the block it enters.
_NEXT = ["if TraceMode is _Threaded: _next(insns, pc, i, cases)"]
# a case that leaves pc alone (ALU, loads, stores, atomics) steps to the next slot
_STEP = ["if TraceMode is _Threaded: _step(i, cases)"]
_ENTER_BLOCK = ["if TraceMode is _Threaded or TraceMode is _Switched:",
                "    if _short(&left, blocks, pc): break", *_NEXT]


def _labelled(ops: list[Op], body: list[str], tail: list[str]) -> list[str]:
    return [*(f"_label(OP_{op.name})" for op in ops), *body, *tail]


def _case(ops: list[Op], body: list[str], keyword: str = "elif") -> list[str]:
    if not ops:
        return [keyword, *("    " + line for line in body)]
    tests = [f"op == OP_{op.name}" for op in ops]
    if len(tests) == 1:
        return [f"{keyword} {tests[0]}:", *("    " + line for line in body)]
    pad = " " * (len(keyword) + 2)
    return [f"{keyword} ({tests[0]}", *(f"{pad}or {test}" for test in tests[1:-1]),
            f"{pad}or {tests[-1]}):", *("    " + line for line in body)]


# ALU ops whose result stays in a machine register (acc) for the next case, and which
# have variants taking an operand from it (threaded dispatch only: ProgCore.cases)
_ACC_KOPS = (BPF_ADD, BPF_SUB, BPF_MUL, BPF_OR, BPF_AND, BPF_XOR, BPF_LSH, BPF_RSH,
             BPF_ARSH, BPF_MOV)


def acc_ops() -> list[Op]:
    """The ALU ops whose case leaves its result in ``acc`` and has variants reading an
    operand from it (``_acc_variants``)."""
    return [op for op in OPS if op.form in (F_ALU_K, F_ALU_X) and BPF_OP(op.code) in _ACC_KOPS]


def acc_readers() -> list[Op]:
    """The ops with variants reading an operand from ``acc`` (``_acc_variants``): the
    ``acc_ops`` and the conditional jumps, whose variant compares ``acc``."""
    return [*acc_ops(), *(op for op in OPS if op.form in (F_JCC_K, F_JCC_X))]


def fused_ops() -> list[Op]:
    """The second ops of the pairs ``mov rX, rY; <op> rX, imm`` that one case runs (a
    copy then a change of the copy, as compilers emit ``x = y + 4``): the 64-bit
    ``acc_ops`` with an immediate but mov."""
    return [op for op in acc_ops()
            if op.form is F_ALU_K and op.is_64 and BPF_OP(op.code) != BPF_MOV]


def _fused_body(op: Op, kind: str) -> list[str]:
    """The case of a ``mov rX, rY`` slot running the next slot's ``op`` on rX too, with
    rY read from r[] ("m") or from acc ("ms"): the next slot's imm, one store of rX."""
    return ["acc2 = acc", *([] if kind == "ms" else ["acc = r[s]"]), "i += 1", "imm = i.imm",
            f"acc = {_acc_rhs(op).replace('r[d]', 'acc')}", "r[d] = acc", *_STEP]


def _acc_rhs(op: Op) -> str:
    """The value the op's case gives r[d] (``r[d] += imm`` as ``r[d] + imm``)."""
    (line,) = _alu_case(op)
    lhs, _, rhs = line.partition("= ")
    compound = lhs.strip()[len("r[d]"):].strip()
    return f"r[d] {compound} {rhs}" if compound else rhs


# a variant's operands: dst from acc (d) or acc2 (p), src from acc (s) or acc2 (q)
_ACC_KINDS = {"": ("r[d]", "r[s]"), "d": ("acc", "r[s]"), "s": ("r[d]", "acc"),
              "ds": ("acc", "acc"), "p": ("acc2", "r[s]"), "ps": ("acc2", "acc"),
              "q": ("r[d]", "acc2"), "dq": ("acc", "acc2")}


def _acc_body(op: Op, kind: str) -> list[str]:
    """The case of ``op`` reading its operands as ``_ACC_KINDS[kind]`` says; an ALU op's
    leaves its result in acc (the one before in acc2), a jump's enters the block it goes
    to."""
    jump = op.form in (F_JCC_K, F_JCC_X)
    dst, src = _ACC_KINDS[kind]
    rhs = (_jcc_case(op)[0].partition("= ")[2] if jump else _acc_rhs(op))
    rhs = rhs.replace("r[d]", "\0").replace("r[s]", src).replace("\0", dst)
    if jump:
        return [f"pc = {rhs}", *_ENTER_BLOCK]
    return [f"acc2, acc = acc, {rhs}", "r[d] = acc", *_STEP]


def _acc_variants(op: Op) -> list[str]:
    """Which of the op's operands a variant may take from acc or acc2 (``_ACC_KINDS``):
    dst (not for mov, which does not read it), src (X forms) or both."""
    kinds = [] if BPF_OP(op.code) == BPF_MOV else ["d", "p"]
    if op.form in (F_ALU_X, F_JCC_X):
        kinds += ["s", "q"] + ([] if BPF_OP(op.code) == BPF_MOV else ["ds", "ps", "dq"])
    return kinds


def interp_cases() -> list[str]:
    """The interpreter's cases for ALU, ALU32, movsx, byte swaps, memory loads and
    stores, atomics and conditional jumps, in table order; calls, exits, ``ja``,
    ``lddw`` and the legacy packet loads are written by hand around them."""
    lines: list[str] = []
    done: set = set()
    accs = acc_ops()
    for op in OPS:
        if op in accs:
            lines += _case([op], _labelled([op], _acc_body(op, ""), []))
        elif op.form in _ALU_FORMS:
            lines += _case([op], _labelled([op], _alu_case(op), _STEP))
        elif op.form in (F_JCC_K, F_JCC_X):
            lines += _case([op], _labelled([op], _jcc_case(op), _ENTER_BLOCK))
        elif op.form is F_ATOMIC:
            if op.form not in done:
                done.add(op.form)
                group = [o for o in OPS if o.form is F_ATOMIC]
                lines += _case(group, _labelled(group, _MEM_CASES[F_ATOMIC, BPF_ATOMIC], _STEP))
        elif (op.form, BPF_MODE(op.code)) in _MEM_CASES:
            # one case per width: the load or store of a constant size compiles to one move
            body = [line.replace("i.size", str(op.size))
                    for line in _MEM_CASES[op.form, BPF_MODE(op.code)]]
            lines += _case([op], _labelled([op], body, _STEP))
    # the variants: never the switch's (no op id is OP_COUNT), only a threaded jump's
    variants = []
    for op in acc_readers():
        for kind in _acc_variants(op):
            variants += [f"_label_acc_{kind}(OP_{op.name})", *_acc_body(op, kind)]
    for op in fused_ops():
        for kind in ("m", "ms"):
            variants += [f"_label_acc_{kind}(OP_{op.name})", *_fused_body(op, kind)]
    lines += _case([], [*variants, "vm.status = STATUS_BAD_INSN", "break"], "elif op == OP_COUNT:")
    return lines


def atomic_cases() -> list[str]:
    """``_atomic``'s cases, one per atomic operation for both widths: the new value,
    and the old one into src for the fetching ones; cmpxchg compares with
    ``expected`` (r0 as the instruction began), r0 receiving the old value."""
    lines: list[str] = []
    for imm, _ in ATOMIC_OPS:
        ops = [op for op in OPS if op.form is F_ATOMIC and op.disc_value == imm]
        if imm == BPF_CMPXCHG:
            body = ["new = val if old == expected else old", "r0[0] = old"]
        else:
            body = ["new = val" if imm == BPF_XCHG else
                    f"new = old {ALU_OP_SYMBOL[imm & ~BPF_FETCH].rstrip('=')} val"]
            if imm & BPF_FETCH:
                body.append("src[0] = old")
        lines += _case(ops, body, "elif" if lines else "if")
    return lines


# name -> (indentation, lines) of each generated region of pyebpf/_core.pyx
_CORE_REGIONS = {"interp_cases": (8, interp_cases), "atomic_cases": (8, atomic_cases)}


def _markers(name: str) -> tuple[str, str]:
    return (f"# --- generated by pyebpf.isa.{name}(): a build rewrites it ---",
            f"# --- end of the generated {name} ---")


def core_region(name: str) -> str:
    """One generated region of ``pyebpf/_core.pyx`` (``interp_cases`` or
    ``atomic_cases``), marker lines included."""
    indent, make = _CORE_REGIONS[name]
    begin, end = _markers(name)
    pad = " " * indent
    return "".join(f"{pad}{line}\n" for line in (begin, *make(), end))


def with_core_regions(source: str) -> str:
    """``source`` (the text of ``pyebpf/_core.pyx``) with every generated region
    rewritten from the table."""
    for name in _CORE_REGIONS:
        begin, end = _markers(name)
        start = source.rindex("\n", 0, source.index(begin)) + 1
        stop = source.index("\n", source.index(end)) + 1
        source = source[:start] + core_region(name) + source[stop:]
    return source


class CoreReloKind(enum.IntEnum):
    """``enum bpf_core_relo_kind``: what a CO-RE relocation asks of the target BTF."""
    BPF_CORE_FIELD_BYTE_OFFSET = 0
    BPF_CORE_FIELD_BYTE_SIZE = 1
    BPF_CORE_FIELD_EXISTS = 2
    BPF_CORE_FIELD_SIGNED = 3
    BPF_CORE_FIELD_LSHIFT_U64 = 4
    BPF_CORE_FIELD_RSHIFT_U64 = 5
    BPF_CORE_TYPE_ID_LOCAL = 6
    BPF_CORE_TYPE_ID_TARGET = 7
    BPF_CORE_TYPE_EXISTS = 8
    BPF_CORE_TYPE_SIZE = 9
    BPF_CORE_ENUMVAL_EXISTS = 10
    BPF_CORE_ENUMVAL_VALUE = 11
    BPF_CORE_TYPE_MATCHES = 12


# libbpf's poison for an instruction whose CO-RE relocation found no target: a call to
# this helper id, which the verifier refuses only if the instruction is reachable
BPF_CORE_POISON_HELPER = 0xBAD2310


if __name__ == "__main__":
    if sys.argv[1:] not in (["--pxd"], ["--cases"]):
        sys.exit("usage: python pyebpf/isa.py --pxd | --cases")
    sys.stdout.write(pxd_source() if sys.argv[1] == "--pxd"
                     else "".join(core_region(name) for name in _CORE_REGIONS))
