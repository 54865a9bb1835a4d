"""Context loads of a verified program are decoded as direct reads of their field (the
kernel's convert_ctx_access, which relies on the verifier having proved the base the
context): every readable offset and size of ``__sk_buff`` reads what the checked load of
an unverified program (``verify=False``) reads, and ``data``/``data_end`` become the
packet's bounds."""
import pytest

from pyebpf import Program, asm, isa
from pyebpf.verifier import rules

SCHED_CLS = isa.ProgType.BPF_PROG_TYPE_SCHED_CLS
SOCKET_FILTER = isa.ProgType.BPF_PROG_TYPE_SOCKET_FILTER
FRAME = bytes.fromhex("02000000000202000000000108004500002e0001000040110000"
                      "0a0000010a000002") + bytes(30)
FIELDS = dict(mark=0x11223344, priority=0x55667788, queue_mapping=3, tc_index=0x99,
              hash=0xA1B2C3D4, ingress_ifindex=7, napi_id=0xCAFE, tstamp=0x1122334455667788,
              hwtstamp=0x99AABBCCDDEEFF00, gso_segs=2, gso_size=1400, vlan=(0x8100, 0x1234),
              cb=bytes(range(1, 21)))
SIZES = {1: "b", 2: "h", 4: "w", 8: "dw"}
CTX_LOADS = set(isa.CTX_LOAD_OPS.values())


def _readable(prog_type, profile):
    table = rules.context_table(prog_type, profile)
    return [(off, size) for off in range(len(table.read)) for size in SIZES
            if table.read[off] & size]


def _loaded(prog, fields):
    """r0 after the program's first instruction (the load)."""
    return prog.run(FRAME, trace=True, **fields).trace.steps[0][1][0]


@pytest.mark.parametrize("prog_type,profile", [(SCHED_CLS, "current"), (SCHED_CLS, "4.6"),
                                               (SOCKET_FILTER, "current")])
def test_every_readable_context_field_reads_as_the_checked_load_reads_it(prog_type, profile):
    fields = {k: v for k, v in FIELDS.items()
              if not (prog_type == SOCKET_FILTER and k in ("tc_index", "tc_classid"))}
    differ = []
    for off, size in _readable(prog_type, profile):
        field = rules.field_at(off).name
        if field in ("data", "data_end", "data_meta", "sk"):
            continue
        code = asm.assemble(f"ldx{SIZES[size]} %r0, [%r1+{off}]\nmov %r0, 0\nexit")
        fast = Program(code, prog_type, profile=profile)
        assert fast._decoded_ops()[0] in CTX_LOADS, f"{field} at {off}, {size} bytes"
        checked = Program(code, prog_type, profile=profile, verify=False)
        if _loaded(fast, fields) != _loaded(checked, fields):
            differ.append((field, off, size, hex(_loaded(fast, fields)),
                           hex(_loaded(checked, fields))))
    assert not differ, differ


@pytest.mark.parametrize("prog_type", [SCHED_CLS, isa.ProgType.BPF_PROG_TYPE_SCHED_ACT])
def test_data_and_data_end_loads_give_the_packets_bounds(prog_type):
    # 1: the packet is shorter than the frame, 2: longer, else its EtherType (LE load)
    code = asm.assemble(f"""
        ldxw %r2, [%r1+76]
        ldxw %r3, [%r1+80]
        mov %r0, 1
        mov %r4, %r2
        add %r4, {len(FRAME)}
        jgt %r4, %r3, out
        mov %r0, 2
        mov %r4, %r2
        add %r4, {len(FRAME) + 1}
        jle %r4, %r3, out
        ldxh %r0, [%r2+12]
    out:
        exit""")
    fast = Program(code, prog_type)
    assert fast._decoded_ops()[:2] == [isa.OP_LDX_CTX_DATA, isa.OP_LDX_CTX_DATA_END]
    checked = Program(code, prog_type, verify=False)
    assert (fast.run(FRAME).retval, checked.run(FRAME).retval) == (0x0008, 0x0008)


def test_an_unverified_program_keeps_the_checked_context_load():
    code = asm.assemble("ldxw %r0, [%r1+8]\nexit")
    assert Program(code, SCHED_CLS, verify=False)._decoded_ops()[0] == \
        isa.OPS_BY_NAME["LDX32"].id


def test_a_context_load_reached_through_a_subprogram_reads_its_field():
    code = asm.assemble("""
        call local f
        exit
    f:
        ldxw %r0, [%r1+8]
        exit""")
    prog = Program(code, SCHED_CLS)
    assert prog._decoded_ops()[2] == isa.OP_LDX_CTX
    assert prog.run(FRAME, mark=0x1234).retval == 0x1234
