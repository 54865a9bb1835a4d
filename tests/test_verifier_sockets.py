"""The verifier's socket pointers and references against the kernel's load verdicts: a
socket a lookup returns must be NULL-checked before use and released before exit, is
read only through the fields struct bpf_sock (bpf_sock_common, bpf_tcp_sock) allows,
cannot be moved or written, and is gone once released; casts share the reference of
the socket they came from.  Each program is loaded by both; where the kernel refuses,
pyebpf's message holds the kernel's words."""
from __future__ import annotations

import pytest

from pyebpf import Program, asm, errors, kernel
from bpfc import compile_c
from recorded_kernel import count_comparison

CLS = "sched_cls"
# r0 = bpf_sk_lookup_tcp(ctx, &zero tuple, 12, BPF_F_CURRENT_NETNS, 0), ctx kept in r6
LOOKUP = """r6 = r1
r2 = 0
*(u64 *)(r10 - 16) = r2
*(u32 *)(r10 - 8) = r2
r2 = r10
r2 += -16
r3 = 12
r4 = -1
r5 = 0
call 84
"""
# ... and a found socket in r7 (NULL returns 0)
FOUND = LOOKUP + "if r0 != 0 goto +2\nr0 = 0\nexit\nr7 = r0\n"
RELEASE_EXIT = "r1 = r7\ncall 86\nr0 = 0\nexit"
SK_EXPECTED = "expected=sock_common, sock, tcp_sock, xdp_sock, ptr_, trusted_ptr_"


def verdicts(code: bytes) -> tuple[str | None, str | None]:
    """(the kernel's refusal or None, pyebpf's or None)."""
    try:
        with kernel.KernelProgram(code, CLS, log_level=0):
            theirs = None
    except errors.KernelError as exc:
        theirs = str(exc).split("refused the program: ", 1)[-1]
    try:
        Program(code, CLS)
        mine = None
    except errors.VerifierError as exc:
        mine = str(exc)
    return theirs, mine


def agree(code: bytes, expected: str | None) -> None:
    theirs, mine = verdicts(code)
    count_comparison()
    assert (theirs is None) == (mine is None), f"kernel: {theirs}; pyebpf: {mine}"
    if theirs is not None:
        assert theirs in mine, f"kernel: {theirs}; pyebpf: {mine}"
        assert expected in mine, mine
    assert expected is None or mine is not None


CASES = {
    "released-after-null-check": (FOUND + RELEASE_EXIT, None),
    "never-released": (LOOKUP + "r0 = 0\nexit", "Unreleased reference id=2 alloc_insn=9"),
    "released-on-one-path-only": (LOOKUP + "if r0 == 0 goto +3\nr1 = r0\nr0 = 0\nexit\n"
                                  "r0 = 0\nexit", "Unreleased reference id=2 alloc_insn=9"),
    "released-before-null-check": (LOOKUP + "r1 = r0\ncall 86\nr0 = 0\nexit",
                                   f"R1 type=sock_or_null {SK_EXPECTED}"),
    "released-twice": (FOUND + "r1 = r7\ncall 86\n" + RELEASE_EXIT,
                       f"R1 type=scalar {SK_EXPECTED}"),
    "read-before-null-check": (LOOKUP + "r0 = *(u32 *)(r0 + 4)\nexit",
                               "R0 invalid mem access 'sock_or_null'"),
    "read-after-release": (FOUND + "r1 = r7\ncall 86\nr0 = *(u32 *)(r7 + 4)\nexit",
                           "R7 invalid mem access 'scalar'"),
    "write": (FOUND + "r1 = 1\n*(u32 *)(r7 + 16) = r1\n" + RELEASE_EXIT,
              "R7 cannot write into sock"),
    "read-family-byte": (FOUND + "r1 = *(u8 *)(r7 + 4)\n" + RELEASE_EXIT, None),
    "read-src-ip6-half": (FOUND + "r1 = *(u16 *)(r7 + 34)\n" + RELEASE_EXIT, None),
    "read-dst-port-half": (FOUND + "r1 = *(u16 *)(r7 + 48)\n" + RELEASE_EXIT, None),
    "read-dst-port-word": (FOUND + "r1 = *(u32 *)(r7 + 48)\n" + RELEASE_EXIT, None),
    "read-dst-port-padding": (FOUND + "r1 = *(u16 *)(r7 + 50)\n" + RELEASE_EXIT,
                              "R7 invalid sock access off=50 size=2"),
    "read-bound-dev-if-byte": (FOUND + "r1 = *(u8 *)(r7 + 0)\n" + RELEASE_EXIT,
                               "R7 invalid sock access off=0 size=1"),
    "read-misaligned": (FOUND + "r1 = *(u32 *)(r7 + 2)\n" + RELEASE_EXIT,
                        "R7 invalid sock access off=2 size=4"),
    "read-eight-bytes": (FOUND + "r1 = *(u64 *)(r7 + 0)\n" + RELEASE_EXIT,
                         "R7 invalid sock access off=0 size=8"),
    "read-past-the-end": (FOUND + "r1 = *(u32 *)(r7 + 80)\n" + RELEASE_EXIT,
                          "R7 invalid sock access off=80 size=4"),
    "arithmetic": (FOUND + "r7 += 4\n" + RELEASE_EXIT,
                   "R7 pointer arithmetic on sock prohibited"),
    "arithmetic-before-null-check": (LOOKUP + "r0 += 4\nr0 = 0\nexit",
                                     "R0 pointer arithmetic on sock_or_null prohibited, "
                                     "null-check it first"),
    "tcp-sock-read": (FOUND + "r1 = r7\ncall 96\nif r0 == 0 goto +1\n"
                      "r2 = *(u64 *)(r0 + 80)\n" + RELEASE_EXIT, None),
    "tcp-sock-counter-as-word": (FOUND + "r1 = r7\ncall 96\nif r0 == 0 goto +1\n"
                                 "r2 = *(u32 *)(r0 + 80)\n" + RELEASE_EXIT,
                                 "R0 invalid tcp_sock access off=80 size=4"),
    "tcp-sock-null-keeps-the-socket": (FOUND + "r1 = r7\ncall 96\nif r0 != 0 goto +2\n"
                                       "r0 = 0\nexit\n" + RELEASE_EXIT,
                                       "Unreleased reference id=2 alloc_insn=9"),
    "released-through-tcp-sock": (FOUND + "r1 = r7\ncall 96\nif r0 == 0 goto +4\nr1 = r0\n"
                                  "call 86\nr0 = 0\nexit\n" + RELEASE_EXIT, None),
    "tcp-sock-read-after-release": (FOUND + "r1 = r7\ncall 96\nif r0 == 0 goto +5\n"
                                    "r8 = r0\n" + "r1 = r7\ncall 86\n"
                                    "r0 = *(u32 *)(r8 + 0)\nexit\n" + RELEASE_EXIT,
                                    "R8 invalid mem access 'scalar'"),
    "listener-is-not-referenced": (FOUND + "r1 = r7\ncall 98\nif r0 == 0 goto +2\nr1 = r0\n"
                                   "call 86\n" + RELEASE_EXIT,
                                   "R1 must be referenced when passed to release function"),
    "fullsock-of-skc-lookup": (LOOKUP.replace("call 84", "call 99") +
                               "if r0 != 0 goto +2\nr0 = 0\nexit\nr7 = r0\nr1 = r0\ncall 95\n"
                               "if r0 == 0 goto +1\nr2 = *(u32 *)(r0 + 12)\n" + RELEASE_EXIT,
                               None),
    "sock-common-type-field": (LOOKUP.replace("call 84", "call 99") +
                               "if r0 != 0 goto +2\nr0 = 0\nexit\nr7 = r0\n"
                               "r1 = *(u32 *)(r7 + 8)\n" + RELEASE_EXIT,
                               "R7 invalid sock_common access off=8 size=4"),
    "assign-before-null-check": (LOOKUP + "r2 = r0\nr1 = r6\nr3 = 0\ncall 124\nr0 = 0\nexit",
                                 f"R2 type=sock_or_null {SK_EXPECTED}"),
    "assign-then-release": (FOUND + "r1 = r6\nr2 = r7\nr3 = 0\ncall 124\n" + RELEASE_EXIT,
                            None),
    "two-lookups-one-released": (LOOKUP + "r8 = r0\n" + LOOKUP.replace("r6 = r1\n", "r1 = r6\n")
                                 + "if r0 == 0 goto +2\nr1 = r0\ncall 86\nr0 = 0\nexit",
                                 "Unreleased reference id=2 alloc_insn=9"),
    "ctx-sk-needs-no-release": ("r1 = *(u64 *)(r1 + 168)\nif r1 == 0 goto +1\n"
                                "r0 = *(u32 *)(r1 + 4)\nr0 = 0\nexit", None),
    "ctx-sk-released": ("r1 = *(u64 *)(r1 + 168)\nif r1 == 0 goto +1\ncall 86\nr0 = 0\nexit",
                        "R1 must be referenced when passed to release function"),
}


@pytest.mark.parametrize("case", CASES)
def test_socket_references_load_as_in_the_kernel(case):
    text, expected = CASES[case]
    agree(asm.assemble(text), expected)


STEERING = r"""
SEC("tc") int steer(struct __sk_buff *skb) {
    void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
    struct ethhdr *eth = data;
    struct iphdr *ip = data + sizeof(*eth);
    if ((void *)(ip + 1) + 4 > end || eth->h_proto != bpf_htons(ETH_P_IP) || ip->ihl != 5)
        return TC_ACT_OK;
    struct bpf_sock_tuple t = {};
    t.ipv4.saddr = ip->saddr;
    t.ipv4.daddr = ip->daddr;
    __builtin_memcpy(&t.ipv4.sport, ip + 1, 4);
    struct bpf_sock *sk = bpf_skc_lookup_tcp(skb, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
    if (!sk)
        return TC_ACT_OK;
    if (sk->state != BPF_TCP_LISTEN) {
        bpf_sk_release(sk);
        return TC_ACT_OK;
    }
    long err = bpf_sk_assign(skb, sk, 0);
    bpf_sk_release(sk);
    return err ? TC_ACT_SHOT : TC_ACT_OK;
}
"""


@pytest.mark.parametrize("opt", ["-O1", "-O2"])
def test_a_clang_compiled_steering_program_loads_as_in_the_kernel(opt):
    agree(compile_c(STEERING, flags=(opt,)), None)


def test_a_clang_compiled_leak_is_refused_as_in_the_kernel():
    leak = STEERING.replace("        bpf_sk_release(sk);\n        return TC_ACT_OK;",
                            "        return TC_ACT_OK;")
    agree(compile_c(leak), "Unreleased reference")


# --- bpf_skc_to_*: BTF pointers to the kernel's socket structs ---------------------------

# r0 = bpf_skc_to_tcp_sock(r7), the found socket
TO_TCP = FOUND + "r1 = r7\ncall 137\n"
BTF_CASES = {
    "cast-read-after-null-check": (TO_TCP + "if r0 == 0 goto +1\nr1 = *(u16 *)(r0 + 16)\n"
                                   + RELEASE_EXIT, None),
    "cast-read-before-null-check": (TO_TCP + "r1 = *(u16 *)(r0 + 16)\n" + RELEASE_EXIT,
                                    "R0 invalid mem access 'ptr_or_null_'"),
    "cast-write": (TO_TCP + "if r0 == 0 goto +2\nr1 = 1\n*(u32 *)(r0 + 524) = r1\n"
                   + RELEASE_EXIT, "only read is supported"),
    "cast-read-past-the-struct": (TO_TCP + "if r0 == 0 goto +1\nr1 = *(u32 *)(r0 + 2304)\n"
                                  + RELEASE_EXIT, "access beyond struct tcp_sock at off 2304"),
    "cast-read-inside-a-pointer": (TO_TCP + "if r0 == 0 goto +1\nr1 = *(u32 *)(r0 + 40)\n"
                                   + RELEASE_EXIT, "cannot access ptr member skc_prot"),
    "cast-of-the-ctx-socket": ("r1 = *(u64 *)(r1 + 168)\nif r1 == 0 goto +3\ncall 137\n"
                               "if r0 == 0 goto +1\nr0 = *(u8 *)(r0 + 18)\nr0 = 0\nexit", None),
    "cast-of-a-maybe-null-ctx-socket": ("r1 = *(u64 *)(r1 + 168)\ncall 137\nr0 = 0\nexit",
                                        f"R1 type=sock_common_or_null {SK_EXPECTED}"),
    "released-through-the-cast": (TO_TCP + "if r0 == 0 goto +4\nr1 = r0\ncall 86\nr0 = 0\n"
                                  "exit\n" + RELEASE_EXIT, None),
    "released-through-the-cast-and-again": (TO_TCP + "if r0 == 0 goto +2\nr1 = r0\ncall 86\n"
                                            + RELEASE_EXIT, f"R1 type=scalar {SK_EXPECTED}"),
    "cast-leaves-the-socket-referenced": (TO_TCP + "r0 = 0\nexit",
                                          "Unreleased reference id=2 alloc_insn=9"),
    "unix-sock-cast-is-not-referenced": (FOUND + "r1 = r7\ncall 178\nif r0 == 0 goto +2\n"
                                         "r1 = r0\ncall 86\n" + RELEASE_EXIT,
                                         "R1 must be referenced when passed to release "
                                         "function"),
    "cast-of-a-cast": (TO_TCP + "if r0 == 0 goto +2\nr1 = r0\ncall 136\n" + RELEASE_EXIT,
                       None),
    "cast-of-a-field-inside": (TO_TCP + "if r0 == 0 goto +3\nr1 = r0\nr1 += 16\ncall 137\n"
                               + RELEASE_EXIT, "but sock_common is expected"),
    **{f"cast-{hid}-loads": (FOUND + f"r1 = r7\ncall {hid}\nif r0 == 0 goto +1\n"
                             "r1 = *(u8 *)(r0 + 18)\n" + RELEASE_EXIT, None)
       for hid in (136, 138, 139, 140, 196)},
}


@pytest.mark.parametrize("case", BTF_CASES)
def test_skc_cast_pointers_load_as_in_the_kernel(case):
    text, expected = BTF_CASES[case]
    agree(asm.assemble(text), expected)
