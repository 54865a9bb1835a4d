"""Every instruction clang-19 and clang-20 emit, at ``-mcpu=v1`` to ``v4`` and at ``v4`` with
``may_goto``, for a set of programs written to reach each instruction class (ALU and
ALU64 with immediates and registers, shifts, signed division, sign-extending moves and
loads, byte swaps, JMP and JMP32 conditions, atomics, bpf-to-bpf calls, ``may_goto``):
each is one pyebpf decodes, and each program loads and returns the same as in the
kernel on several packets.  clang-20 is Debian's where apt has it, else the ``ziglang``
wheel's (tests/bpfc.py)."""
import random

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from pyebpf import elf, isa

from bpfc import COMPILERS, compile_object
from objdiff import same_retval

MCPUS = ["v1", "v2", "v3", "v4"]
SWEEP = r"""
#define can_loop ({ __label__ l_break, l_continue; _Bool ret = 1;                 \
    asm volatile goto("may_goto %l[l_break]" :::: l_break); goto l_continue;   \
    l_break: ret = 0; l_continue:; ret; })

static __attribute__((noinline)) __u64 mix(__u64 a, __u64 b)
{
    __u32 x = a, y = b | 1;
    __s64 s = (__s64)a;
    a ^= b << 7;
    a += (b >> 3) * 0x9e3779b97f4a7c15ULL;
    a -= s >> 11;
    a |= (__u64)(x / y) << 32;
    a &= ~(__u64)(x % y);
    a = (a << (b & 63)) | (a >> (64 - (b & 63) & 63));
    x = (x << (y & 31)) ^ (x >> 5) ^ (__u32)((__s32)x >> 3);
    x = x * 31 + y - (x & 0xff) + (-x);
    return a + x;
}

SEC("tc") int prog(struct __sk_buff *skb)
{
    __u64 w[4] = {};
    __u64 acc;
    __u32 i = 0;
    if (bpf_skb_load_bytes(skb, 14, w, sizeof(w)))
        return 1;
    acc = mix(w[0], w[1]) ^ mix(w[2], skb->len);
    acc += bpf_ntohl((__u32)w[3]) + bpf_ntohs((__u16)w[2]) + bpf_htonl(skb->mark);
#if __BPF_CPU_VERSION__ >= 3
    {
        volatile __u64 v = w[1];
        volatile __u32 v32 = (__u32)w[2];
        __sync_fetch_and_add(&v, acc);
        acc ^= __sync_fetch_and_or(&v, 3) + __sync_fetch_and_and(&v32, 0xf0f0f0f0);
        acc += __sync_fetch_and_xor(&v, w[3]) + __sync_lock_test_and_set(&v32, 7);
        acc -= __sync_val_compare_and_swap(&v, acc, w[0]) + v + v32;
        if ((__u32)acc > (__u32)w[1] && (__s32)w[2] < (__s32)acc)
            acc += 5;
        if ((__u32)w[0] == 0x45000030 || (__u32)acc & 0x10)
            acc ^= 0x55;
    }
#endif
#if __BPF_CPU_VERSION__ >= 4
    {
        __s64 d = (__s64)w[0] | 1;
        __s32 d32 = (__s32)w[1] | 1;
        volatile __s8 c = (__s8)w[3];
        volatile __s16 h = (__s16)w[2];
        volatile __s32 q = (__s32)w[1];
        acc += (__s64)acc / d + (__s64)w[2] % d + (__s32)acc / d32 + (__s32)w[3] % d32;
        acc ^= (__s64)(__s8)w[1] + (__s64)(__s16)w[2] + (__s64)(__s32)w[3];
        acc += c + h + q;
        acc ^= __builtin_bswap16((__u16)acc) + __builtin_bswap32((__u32)w[0]) +
               __builtin_bswap64(w[1]);
    }
#endif
#ifdef MAY_GOTO
    while (i < 100 && can_loop) {
        acc = acc * 3 + i;
        i++;
    }
#endif
    for (i = 0; i < 8; i++)
        if ((__s64)acc < (__s64)w[i & 3] || acc >= w[(i + 1) & 3])
            acc += i;
    return (__u32)(acc ^ (acc >> 32));
}
"""
VARIANTS = [(f"-mcpu={m}",) for m in MCPUS] + [("-mcpu=v4", "-DMAY_GOTO")]
PACKETS = [bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=s, dport=53) /
                 random.Random(s).randbytes(48)) for s in (1, 2, 3, 4)]
# instructions only -mcpu=v4 has: the sweep must reach them
V4_ONLY = {"SDIV64_X", "SMOD64_X", "SDIV32_X", "SMOD32_X", "MOVSX8_64", "MOVSX16_64",
           "MOVSX32_64", "LDXS8", "LDXS16", "BSWAP16", "BSWAP32", "BSWAP64"}


def emitted(flags, compiler) -> set[str]:
    """The names of the instructions of the sweep's program (its subprogram included)
    compiled by ``compiler`` with ``flags`` ("undecoded 0xNN" for one pyebpf cannot
    decode), lddw tails skipped."""
    code = elf.parse(compile_object(SWEEP, flags=("-O2", *flags), compiler=compiler)) \
        .programs["prog"].instructions({})
    names, skip = set(), False
    for insn in isa.unpack_program(code):
        if skip:
            skip = False
            continue
        op = isa.lookup(insn)
        names.add(op.name if op is not None else f"undecoded {insn.code:#04x}")
        skip = op is not None and op.form is isa.F_LDDW
    return names


@pytest.mark.parametrize("compiler", COMPILERS)
@pytest.mark.parametrize("flags", VARIANTS, ids=" ".join)
def test_every_instruction_clang_emits_is_decoded(flags, compiler):
    names = emitted(flags, compiler)
    assert not {n for n in names if n.startswith("undecoded")}, names


@pytest.mark.parametrize("compiler", COMPILERS)
def test_the_sweep_reaches_the_v4_instructions(compiler):
    names = emitted(("-mcpu=v4",), compiler)
    assert V4_ONLY <= names, sorted(V4_ONLY - names)


@pytest.mark.parametrize("compiler", COMPILERS)
def test_the_may_goto_variant_emits_may_goto(compiler):
    assert "MAY_GOTO" in emitted(("-mcpu=v4", "-DMAY_GOTO"), compiler)


@pytest.mark.parametrize("flags", VARIANTS, ids=" ".join)
@pytest.mark.parametrize("packet", range(len(PACKETS)))
def test_the_sweep_runs_as_in_the_kernel(flags, packet):
    same_retval(compile_object(SWEEP, flags=("-O2", *flags)), PACKETS[packet])


@pytest.mark.parametrize("flags", VARIANTS, ids=" ".join)
@pytest.mark.parametrize("packet", range(len(PACKETS)))
def test_the_sweep_built_by_clang20_runs_as_in_the_kernel(flags, packet, live_kernel):
    """Live only, as tests/test_verifier_paths.py's clang-20 builds: the wheel's clang 20
    numbers some BTF types differently from one install to another."""
    same_retval(compile_object(SWEEP, flags=("-O2", *flags), compiler="clang-20"),
                PACKETS[packet])
