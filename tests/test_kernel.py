"""The kernel oracle itself (pyebpf.kernel): loading, test_run outputs, maps, run_raw64.

Programs are built slot by slot with isa.Insn so these tests depend on nothing but isa.
"""
import errno
import os
import struct

import pytest

from pyebpf import isa, kernel
from pyebpf.errors import KernelError
from pyebpf.isa import Insn

SF, CLS = "socket_filter", "sched_cls"
R0, R1, R2, R3, R4, R10 = 0, 1, 2, 3, 4, 10

# A 64-byte frame with a non-IP EtherType (0x88b5): valid for every skb program type.
FRAME = bytes(range(6)) + b"\x02\x00\x00\x00\x00\x01" + b"\x88\xb5" + bytes(range(100, 150))


def s32(v):
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def prog(*slots):
    return b"".join(s.pack() for s in slots)


def mov(dst, imm):
    return Insn(isa.BPF_ALU64 | isa.BPF_MOV | isa.BPF_K, dst, 0, 0, imm)


def movr(dst, src):
    return Insn(isa.BPF_ALU64 | isa.BPF_MOV | isa.BPF_X, dst, src, 0, 0)


def add(dst, imm):
    return Insn(isa.BPF_ALU64 | isa.BPF_ADD | isa.BPF_K, dst, 0, 0, imm)


def lddw(dst, value, src=0):
    return [Insn(isa.BPF_LD | isa.BPF_IMM | isa.BPF_DW, dst, src, 0, s32(value)),
            Insn(0, 0, 0, 0, s32(value >> 32))]


def ldx(size, dst, src, off):
    return Insn(isa.BPF_LDX | isa.BPF_MEM | size, dst, src, off, 0)


def stx(size, dst, src, off):
    return Insn(isa.BPF_STX | isa.BPF_MEM | size, dst, src, off, 0)


def st(size, dst, off, imm):
    return Insn(isa.BPF_ST | isa.BPF_MEM | size, dst, 0, off, imm)


def jmp(op, dst, off, imm=0, src=None):
    if src is None:
        return Insn(isa.BPF_JMP | op | isa.BPF_K, dst, 0, off, imm)
    return Insn(isa.BPF_JMP | op | isa.BPF_X, dst, src, off, 0)


def call(helper):
    return Insn(isa.BPF_JMP | isa.BPF_CALL, 0, 0, 0, isa.HELPER_IDS[helper])


EXIT = Insn(isa.BPF_JMP | isa.BPF_EXIT, 0, 0, 0, 0)


def ret(imm):
    return prog(mov(R0, imm), EXIT)


def ret64(value):
    return prog(*lddw(R0, value), EXIT)


# --- programs and test_run ----------------------------------------------------------------
def test_trivial_program_returns_its_constant():
    with kernel.KernelProgram(ret(42)) as p:
        r = p.test_run(FRAME)
    assert (r.retval, r.retval_signed, r.ctx, r.skb) == (42, 42, None, None)


def test_socket_filter_data_out_is_zeroed_l2_header_then_l3():
    with kernel.KernelProgram(ret(0), SF) as p:
        assert p.test_run(FRAME).data == bytes(14) + FRAME[14:]


def test_retval_is_the_low_32_bits_of_r0():
    with kernel.KernelProgram(ret64(0x1234567887654321)) as p:
        r = p.test_run(FRAME)
    assert r.retval == 0x87654321
    assert r.retval_signed == s32(0x87654321)


def test_run_raw64_recovers_all_64_bits():
    assert kernel.run_raw64(ret64(0x1234567887654321)) == 0x1234567887654321
    assert kernel.run_raw64(ret64(0xFFFFFFFF00000000)) == 0xFFFFFFFF00000000


def test_run_raw64_rewrites_every_exit():
    # Two exits on two paths: r1 (the ctx pointer) is never 0, so the second one runs.
    p = prog(*lddw(R0, 0xAAAAAAAA00000001), jmp(isa.BPF_JNE, R1, 1), EXIT,
             *lddw(R0, 0xBBBBBBBB00000002), EXIT)
    assert kernel.run_raw64(p) == 0xBBBBBBBB00000002


def test_run_raw64_refuses_bpf_to_bpf_calls():
    p = prog(Insn(isa.BPF_JMP | isa.BPF_CALL, 0, isa.BPF_PSEUDO_CALL, 0, 1), EXIT, mov(R0, 1),
             EXIT)
    with pytest.raises(ValueError, match="bpf-to-bpf"):
        kernel.run_raw64(p)


def test_refused_program_reports_the_verifiers_reason_and_log():
    with pytest.raises(KernelError) as ei:
        kernel.KernelProgram(prog(movr(R0, R3), EXIT))  # r3 is never written
    e = ei.value
    assert e.errno == errno.EACCES
    assert str(e) == "kernel verifier refused the program: R3 !read_ok"
    assert "(bf) r0 = r3" in e.log and "processed" in e.log


def test_exit_without_setting_r0_is_refused():
    with pytest.raises(KernelError, match=r"R0 !read_ok"):
        kernel.KernelProgram(prog(EXIT))


def test_refused_program_without_a_log_level_still_gets_the_reason():
    with pytest.raises(KernelError, match=r"R0 !read_ok") as ei:
        kernel.KernelProgram(prog(EXIT), log_level=0)
    assert "processed" in ei.value.log


def test_successful_load_keeps_the_verifier_log():
    with kernel.KernelProgram(ret(0), CLS, log_level=2) as p:
        assert "processed 2 insns" in p.verifier_log


def test_ctx_dict_round_trip_through_a_sched_cls_program():
    # mark, priority and cb[0..3] written by the program; cb[4] and ingress_ifindex only
    # passed through.
    body = [mov(R2, 0x11), stx(isa.BPF_W, R1, R2, 8), mov(R2, 0x22), stx(isa.BPF_W, R1, R2, 32)]
    for i in range(4):
        body += [mov(R2, 0x100 + i), stx(isa.BPF_W, R1, R2, 48 + 4 * i)]
    with kernel.KernelProgram(prog(*body, mov(R0, 0), EXIT), CLS) as p:
        r = p.test_run(FRAME, ctx={"mark": 5, "cb": [0, 0, 0, 0, 99], "ingress_ifindex": 7})
    assert len(r.ctx) == 192
    assert r.skb["mark"] == 0x11 and r.skb["priority"] == 0x22
    assert r.skb["cb"] == [0x100, 0x101, 0x102, 0x103, 99]
    assert r.skb["ingress_ifindex"] == 7
    assert r.skb["wire_len"] == len(FRAME)  # the kernel fills it in when a ctx is passed


def test_ctx_dict_rejects_unknown_fields():
    with kernel.KernelProgram(ret(0), CLS) as p:
        with pytest.raises(ValueError, match="'len'"):
            p.test_run(FRAME, ctx={"len": 1})


def test_data_out_returns_the_packet_written_through_direct_access():
    p = prog(ldx(isa.BPF_W, R2, R1, 76), ldx(isa.BPF_W, R3, R1, 80),  # data, data_end
             movr(R4, R2), add(R4, 15), jmp(isa.BPF_JGT, R4, 1, src=R3),
             st(isa.BPF_B, R2, 14, 0xAB), mov(R0, 0), EXIT)
    with kernel.KernelProgram(p, CLS) as kp:
        r = kp.test_run(FRAME)
    assert r.data == FRAME[:14] + b"\xab" + FRAME[15:]


def test_default_data_out_holds_a_packet_grown_to_the_kernels_limit():
    # skb_change_tail stops at SKB_MAX_ALLOC (16064 bytes on 6.18 x86_64, 4 KiB pages).
    p = prog(ldx(isa.BPF_W, R2, R1, 0), add(R2, 16000), mov(R3, 0),
             call("skb_change_tail"), EXIT)
    with kernel.KernelProgram(p, CLS) as kp:
        r = kp.test_run(FRAME)
    assert r.retval == 0 and len(r.data) == len(FRAME) + 16000
    assert r.data[:len(FRAME)] == FRAME


def test_too_small_data_out_raises_enospc_with_the_partial_result():
    with kernel.KernelProgram(ret(9), CLS) as kp:
        with pytest.raises(KernelError) as ei:
            kp.test_run(FRAME, ctx={}, data_out_size=20)
    e = ei.value
    assert e.errno == errno.ENOSPC
    assert e.result.retval == 9 and e.result.data == FRAME[:20] and e.result.ctx is None


def test_checksum_complete_mismatch_raises_ebadmsg_and_the_kernel_reports_nothing():
    # IPv4/UDP frame; the program rewrites a payload byte without fixing skb->csum.
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 36, 0, 0, 64, 17, 0, bytes(4), bytes(4))
    frame = FRAME[:12] + b"\x08\x00" + ip + struct.pack("!HHHH", 1, 2, 16, 0) + b"12345678"
    p = prog(ldx(isa.BPF_W, R2, R1, 76), ldx(isa.BPF_W, R3, R1, 80), movr(R4, R2),
             add(R4, 43), jmp(isa.BPF_JGT, R4, 1, src=R3), st(isa.BPF_B, R2, 42, 0x55),
             mov(R0, 7), EXIT)
    with kernel.KernelProgram(p, CLS) as kp:
        assert kp.test_run(frame).retval == 7
        with pytest.raises(KernelError) as ei:
            kp.test_run(frame, flags=isa.BPF_F_TEST_SKB_CHECKSUM_COMPLETE)
    assert ei.value.errno == errno.EBADMSG
    # 6.18 returns before copying retval, data or ctx out: there is nothing to attach.
    assert ei.value.result is None


def test_invalid_run_input_names_the_errno():
    with kernel.KernelProgram(ret(0), CLS) as kp:
        with pytest.raises(KernelError, match="EINVAL") as ei:
            kp.test_run(FRAME[:10])  # shorter than an Ethernet header
    assert ei.value.errno == errno.EINVAL


def test_close_releases_the_fd():
    p = kernel.KernelProgram(ret(0))
    fd = p.fd
    p.close()
    assert p.fd == -1
    with pytest.raises(OSError):
        os.fstat(fd)


# --- maps ---------------------------------------------------------------------------------
def u32(v):
    return struct.pack("<I", v)


def test_hash_map_update_lookup_delete_next_key():
    with kernel.KernelMap("hash", 4, 8, 4, flags=isa.BPF_F_ZERO_SEED) as m:
        assert m.lookup(u32(1)) is None and m.next_key() is None
        m.update(u32(1), b"A" * 8)
        m.update(u32(2), b"B" * 8)
        assert m.lookup(u32(1)) == b"A" * 8
        assert sorted(m.keys()) == [u32(1), u32(2)]
        first = m.next_key()
        assert m.next_key(u32(99)) == first  # a missing key restarts the walk
        m.delete(u32(1))
        assert m.keys() == [u32(2)] and m.next_key(u32(2)) is None


def test_array_map_elements_exist_zero_filled():
    with kernel.KernelMap(isa.MapType.BPF_MAP_TYPE_ARRAY, 4, 4, 3) as m:
        assert m.lookup(u32(2)) == bytes(4)
        assert m.next_key() == u32(0) and m.next_key(u32(2)) is None
        assert m.keys() == [u32(0), u32(1), u32(2)]


@pytest.mark.parametrize("map_type,op,err", [
    ("array", lambda m: m.update(u32(0), u32(1), isa.BPF_NOEXIST), errno.EEXIST),
    ("array", lambda m: m.update(u32(2), u32(1)), errno.E2BIG),
    ("array", lambda m: m.delete(u32(0)), errno.EINVAL),
    ("hash", lambda m: m.delete(u32(5)), errno.ENOENT),
    ("hash", lambda m: m.update(u32(5), u32(1), isa.BPF_EXIST), errno.ENOENT),
    ("hash", lambda m: (m.update(u32(5), u32(1)), m.update(u32(5), u32(2), isa.BPF_NOEXIST)),
     errno.EEXIST),
    ("hash", lambda m: [m.update(u32(k), u32(1)) for k in range(3)], errno.E2BIG),
    ("hash", lambda m: m.update(u32(5), u32(1), 3), errno.EINVAL),
])
def test_map_errors_carry_the_kernels_errno(map_type, op, err):
    with kernel.KernelMap(map_type, 4, 4, 2) as m:
        with pytest.raises(KernelError) as ei:
            op(m)
    assert ei.value.errno == err
    assert errno.errorcode[err] in str(ei.value) and "map" in str(ei.value)


def test_map_create_failure_raises_kernel_error():
    with pytest.raises(KernelError) as ei:
        kernel.KernelMap("array", 8, 4, 1)  # ARRAY keys must be 4 bytes
    assert ei.value.errno == errno.EINVAL and "BPF_MAP_CREATE" in str(ei.value)


def test_short_key_is_refused_before_the_syscall():
    with kernel.KernelMap("hash", 8, 4, 1) as m:
        with pytest.raises(ValueError, match="key_size 8"):
            m.lookup(b"abc")


def test_percpu_value_has_one_8_byte_aligned_slot_per_possible_cpu():
    with kernel.KernelMap("percpu_array", 4, 4, 1) as m:
        n = kernel.possible_cpus()
        assert m.value_buffer_size == 8 * n
        value = b"".join(struct.pack("<Q", 10 + i) for i in range(n))
        m.update(u32(0), value)
        assert m.lookup(u32(0)) == value


def test_program_reads_a_map_value_through_map_lookup_elem():
    with kernel.KernelMap("array", 4, 4, 1) as m:
        m.update(u32(0), u32(0xC0FFEE))
        p = prog(*lddw(R1, m.fd, src=isa.BPF_PSEUDO_MAP_FD), st(isa.BPF_W, R10, -4, 0),
                 movr(R2, R10), add(R2, -4), call("map_lookup_elem"),
                 jmp(isa.BPF_JEQ, R0, 2), ldx(isa.BPF_W, R0, R0, 0), EXIT,
                 mov(R0, -1), EXIT)
        with kernel.KernelProgram(p, CLS) as kp:
            m.close()  # the loaded program keeps the map alive
            assert kp.test_run(FRAME).retval == 0xC0FFEE


# --- cross_check ---------------------------------------------------------------------------

def _classifier_code():
    from pyebpf.asm import assemble
    return assemble("""
        r0 = 0x2
        r2 = *(u32 *)(r1 + 0x4c)
        r3 = *(u32 *)(r1 + 0x50)
        r4 = r2
        r4 += 0xe
        if r4 > r3 goto +2
        r5 = *(u32 *)(r1 + 0x10)
        *(u32 *)(r1 + 0x8) = r5
        exit""")


def test_cross_check_reports_no_difference_when_engine_and_kernel_agree():
    import pyebpf
    prog = pyebpf.Program(_classifier_code(), "sched_cls")
    assert kernel.cross_check(prog, bytes(64), mark=3, cb=[1, 2, 3, 4, 5]) == []


def test_cross_check_refuses_fields_test_run_cannot_take():
    import pyebpf
    prog = pyebpf.Program(_classifier_code(), "sched_cls")
    with pytest.raises(ValueError, match="'tc_index'"):
        kernel.cross_check(prog, bytes(64), tc_index=1)


def test_cross_check_needs_a_typed_program():
    import pyebpf
    with pytest.raises(ValueError, match="typed program"):
        kernel.cross_check(pyebpf.Program(bytes.fromhex("b7000000000000009500000000000000")),
                           bytes(64))


def test_run_gives_a_typed_programs_result_in_pyebpfs_shape():
    import pyebpf
    prog = pyebpf.Program(_classifier_code(), "sched_cls")
    theirs = kernel.run(prog, bytes(64), mark=3)
    ours = prog.run(bytes(64), mark=3, ifindex=1)
    assert (theirs.retval, theirs.data, theirs.skb["mark"]) == (ours.retval, ours.data, ours.skb.mark)


def test_run_trims_a_socket_filters_packet_to_its_retval():
    import pyebpf
    prog = pyebpf.Program(bytes.fromhex("b7000000050000009500000000000000"), "socket_filter")
    theirs = kernel.run(prog, bytes(range(64)))
    assert (theirs.retval, theirs.data, len(theirs.data_out)) == (5, bytes(range(14, 19)), 50)
