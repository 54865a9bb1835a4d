"""The ``__sk_buff`` context: what each field reads and what each write does, held
against the kernel (BPF_PROG_TEST_RUN) through skbdiff.assert_same.

Fields test_run does not export (len, pkt_type, protocol, tc_index, queue_mapping...)
are made visible by the test program itself: it copies every loaded value into cb[],
which comes back in ctx_out.  The 4.6 profile's rules cannot be run on this kernel:
they are unit tests against 4.6's sk_filter_is_valid_access and tc_cls_act_is_valid_access
(said on each; docs/kernel-notes.md).
"""
import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether

from pyebpf import Environment, Program, errors, isa, kernel
from pyebpf.verifier import rules
from skbdiff import (ACT, CLS, EXIT, R0_0, SF, SIZES, TYPES, assert_same, both,
                     engine_fields)

I = isa.Insn
A = isa.OPS_BY_NAME
CB = rules.FIELDS_BY_NAME["cb"].offset
POINTERS = ("data", "data_end", "data_meta", "sk")


def type_id(t):
    return t.name[14:].lower()


def frame(dst="00:00:00:00:00:00", payload=b"0123456789abcdef", l3=None):
    return bytes(Ether(dst=dst, src="02:00:00:00:00:01") / (l3 if l3 is not None else
                                                            IP() / UDP() / payload))


UDP4 = frame()
# Every exported input field non-zero, with the top bit of each byte pattern set so that
# sign extension shows.
CTX_IN = {"mark": 0x81828384, "priority": 0xF1E2D3C4, "ingress_ifindex": 0x8899AABB,
          "cb": [0x80818283, 0x90A0B0C0, 0x8000FF7F, 0x7F7F7F80, 0xDEADBEEF],
          "tstamp": 0x8070605040302010, "wire_len": 0xF123, "gso_segs": 0xFEDC,
          "gso_size": 0x8765, "hwtstamp": 0x8877665544332211}


def copy_to_cb(loads, before=()) -> bytes:
    """``before``, then each context load ``(offset, size, signed)`` into its own
    register, then the values into cb[] (an 8-byte value as two words); returns 0."""
    body, stores, slot = list(before), [], 0
    for reg, (off, size, signed) in enumerate(loads, start=2):
        mode = isa.BPF_MEMSX if signed else isa.BPF_MEM
        body.append(I(isa.BPF_LDX | mode | SIZES[size], reg, 1, off, 0))
        stores.append(I(A["STX32"].code, 1, reg, CB + 4 * slot, 0))
        slot += 1
        if size == 8:
            stores += [I(A["RSH64_K"].code, reg, 0, 0, 32),
                       I(A["STX32"].code, 1, reg, CB + 4 * slot, 0)]
            slot += 1
    assert slot <= 5, "cb[] holds five words"
    return b"".join(i.pack() for i in body + stores + [R0_0, EXIT])


def chunks(loads):
    """Split loads into groups whose values fit in cb[] (five words)."""
    group, words = [], 0
    for load in loads:
        need = 2 if load[1] == 8 else 1
        if words + need > 5:
            yield group
            group, words = [], 0
        group.append(load)
        words += need
    if group:
        yield group


def readable(prog_type, names=None, signed=False):
    """Every (offset, size, signed) read the kernel allows ``prog_type`` on the fields
    ``names`` (default: all but the pointers), per the measured table in rules.py."""
    out = []
    for f in rules.FIELDS:
        if (names is None and f.name in POINTERS) or (names is not None and f.name not in names):
            continue
        for size in (1, 2, 4) if signed else (1, 2, 4, 8):
            for off in range(f.offset, f.offset + f.size, size):
                if rules.access_rule(prog_type, "current", off, size, False)[1] is None:
                    out.append((off, size, signed))
    return out


def assert_reads_match(prog_type, loads, packet, ctx=None):
    """Run every chunk of ``loads`` in pyebpf and the kernel; report each differing
    load as field+offset/size with both values.  Returns the values read, in order (an
    8-byte value as one number)."""
    bad, values = [], []
    for group in chunks(loads):
        engine, theirs = both(copy_to_cb(group), prog_type, packet, ctx if ctx is not None
                              else {})
        ours, kernel = list(engine.skb.cb), list(theirs.skb["cb"])
        slot = 0
        for off, size, signed in group:
            n = 2 if size == 8 else 1
            values.append(ours[slot] | (ours[slot + 1] << 32 if n == 2 else 0))
            if ours[slot:slot + n] != kernel[slot:slot + n]:
                f = rules.field_at(off)
                bad.append(f"{'s' if signed else 'u'}{size * 8} {f.name}+{off - f.offset}: "
                           f"engine {[hex(v) for v in ours[slot:slot + n]]}, kernel "
                           f"{[hex(v) for v in kernel[slot:slot + n]]}")
            slot += n
        assert engine.retval == theirs.retval == 0
    assert not bad, f"{len(bad)} of {len(loads)} reads differ:\n" + "\n".join(bad)
    return values


# --- every field, every allowed size and offset ------------------------------------

@pytest.mark.kernel
@pytest.mark.parametrize("signed", [False, True], ids=["LDX", "LDXSX"])
@pytest.mark.parametrize("prog_type", TYPES, ids=type_id)
def test_every_allowed_read_of_every_field_returns_what_the_kernel_returns(prog_type, signed):
    """All non-pointer fields with every input test_run accepts set to a non-zero
    value; narrow reads follow bpf_ctx_narrow_access_ok, sign-extending ones extend that value."""
    loads = readable(prog_type, signed=signed)
    assert len(loads) > 100
    assert_reads_match(prog_type, loads, UDP4, CTX_IN)


@pytest.mark.kernel
@pytest.mark.parametrize("prog_type", TYPES, ids=type_id)
@pytest.mark.parametrize("size", [14, 34, 60, 1500, 3712])
def test_len_is_the_frame_length_for_tc_and_the_l3_length_for_socket_filters(prog_type,
                                                                             size):
    packet = frame(payload=bytes(size - 42)) if size >= 42 else \
        bytes(Ether(dst="00:00:00:00:00:00", type=0x88B5)) + bytes(size - 14)
    assert_reads_match(prog_type, readable(prog_type, ["len"]), packet)


@pytest.mark.kernel
@pytest.mark.parametrize("prog_type", (SF, CLS), ids=type_id)
@pytest.mark.parametrize("dst, expected", [
    ("00:00:00:00:00:00", 0), ("ff:ff:ff:ff:ff:ff", 2), ("01:00:5e:00:00:01", 2),
    ("33:33:00:00:00:01", 2), ("02:00:00:00:00:09", 3),
], ids=["host", "broadcast-is-multicast-on-lo", "ipv4-multicast", "ipv6-multicast",
        "otherhost"])
def test_pkt_type_follows_the_destination_mac_on_the_loopback_device(prog_type, dst,
                                                                     expected):
    """test_run's device is lo, whose address and broadcast address are both zero."""
    packet = frame(dst=dst)
    values = assert_reads_match(prog_type, readable(prog_type, ["pkt_type"]), packet)
    assert set(values) == {expected}


PROTOCOLS = {
    "ipv4": (frame(), 0x0008),
    "ipv6": (frame(l3=IPv6() / UDP() / b"payload"), 0xDD86),
    "arp": (frame(l3=ARP()), 0x0608),
    "802.1q-in-payload": (frame(l3=Dot1Q(vlan=5) / IP() / UDP()), 0x0081),
    "802.3-raw-ipx (ff ff)": (bytes(Ether(dst="00:00:00:00:00:00", type=46)) + b"\xff\xff"
                              + bytes(44), 0x0100),
    "802.3-llc": (bytes(Ether(dst="00:00:00:00:00:00", type=46)) + b"\xaa\xaa\x03"
                  + bytes(43), 0x0400),
    "length-0x05ff": (bytes(Ether(dst="00:00:00:00:00:00", type=0x05FF)) + bytes(46),
                      0x0400),
    "ethertype-0x0600": (bytes(Ether(dst="00:00:00:00:00:00", type=0x0600)) + bytes(46),
                         0x0006),
}


@pytest.mark.kernel
@pytest.mark.parametrize("prog_type", (SF, CLS), ids=type_id)
@pytest.mark.parametrize("name", PROTOCOLS)
def test_protocol_is_the_ethertype_as_stored_or_the_802_3_kind(prog_type, name):
    packet, expected = PROTOCOLS[name]
    loads = readable(prog_type, ["protocol"])
    values = assert_reads_match(prog_type, loads, packet)
    assert values[loads.index((16, 4, False))] == expected


@pytest.mark.kernel
@pytest.mark.parametrize("prog_type", (SF, CLS), ids=type_id)
def test_a_tag_in_the_packet_bytes_leaves_the_vlan_fields_zero(prog_type):
    packet = PROTOCOLS["802.1q-in-payload"][0]
    values = assert_reads_match(prog_type, readable(prog_type, ["vlan_present", "vlan_tci",
                                                                "vlan_proto"]), packet)
    assert set(values) == {0}


@pytest.mark.kernel
@pytest.mark.parametrize("prog_type", TYPES, ids=type_id)
def test_fields_test_run_never_sets_read_zero(prog_type):
    names = ["hash", "tc_index", "tc_classid", "queue_mapping", "napi_id", "tstamp_type"]
    loads = [(f.offset, 4 if f.size == 4 else 1, False) for f in rules.FIELDS
             if f.name in names and rules.access_rule(prog_type, "current", f.offset,
                                                      4 if f.size == 4 else 1, False)[1]
             is None]
    assert len(loads) == (4 if prog_type == SF else 6)
    assert assert_reads_match(prog_type, loads, UDP4, CTX_IN) == [0] * len(loads)


@pytest.mark.kernel
@pytest.mark.parametrize("prog_type", (CLS, ACT), ids=type_id)
@pytest.mark.parametrize("ctx, fields, expected", [
    (None, {"wire_len": 0}, 0), ({}, {}, len(UDP4)), ({"wire_len": 3000}, {"wire_len": 3000},
                                                      3000)],
    ids=["no-ctx_in", "zero-ctx_in", "ctx_in-wire_len"])
def test_wire_len_is_zero_without_ctx_in_else_its_value_or_len(prog_type, ctx, fields,
                                                               expected):
    """test_run sets wire_len from ctx_in (0 means len) and leaves it 0 without a ctx_in;
    the engine's ``wire_len`` field defaults to len.  The program returns it."""
    prog = b"".join(i.pack() for i in [I(A["LDX32"].code, 0, 1, 160, 0), EXIT])
    with kernel.KernelProgram(prog, prog_type) as kp:
        assert kp.test_run(UDP4, ctx=ctx).retval == expected
    assert Program(prog, prog_type).run(UDP4, **fields).retval == expected


@pytest.mark.kernel
@pytest.mark.parametrize("prog_type", (CLS, ACT), ids=type_id)
@pytest.mark.parametrize("packet", [UDP4, frame(payload=bytes(1000)), bytes(14)],
                         ids=["udp4", "1042-bytes", "14-bytes"])
def test_data_end_minus_data_is_len_and_data_meta_is_data(prog_type, packet):
    """The pointers themselves differ between runs; their distances do not."""
    prog = b"".join(i.pack() for i in [
        I(A["LDX32"].code, 2, 1, 76, 0), I(A["LDX32"].code, 3, 1, 80, 0),
        I(A["LDX32"].code, 4, 1, 140, 0), I(A["LDX32"].code, 5, 1, 0, 0),
        I(A["SUB64_X"].code, 3, 2, 0, 0), I(A["SUB64_X"].code, 4, 2, 0, 0),
        I(A["STX32"].code, 1, 3, CB, 0), I(A["STX32"].code, 1, 4, CB + 4, 0),
        I(A["STX32"].code, 1, 5, CB + 8, 0), R0_0, EXIT])
    engine, _ = assert_same(prog, prog_type, packet, {})
    assert engine.skb.cb[:3] == (len(packet), 0, len(packet))


@pytest.mark.kernel
@pytest.mark.parametrize("prog_type", TYPES, ids=type_id)
def test_ifindex_is_loopback_and_ingress_ifindex_comes_from_ctx_in(prog_type):
    loads = readable(prog_type, ["ifindex", "ingress_ifindex"])
    assert_reads_match(prog_type, loads, UDP4, {"ingress_ifindex": 7})
    assert_reads_match(prog_type, loads, UDP4, {})


@pytest.mark.kernel
@pytest.mark.parametrize("prog_type", TYPES, ids=type_id)
def test_sk_is_loaded_after_a_null_check_in_both(prog_type):
    """test_run attaches a socket of its own to the packet, and so does the default
    Environment (its fields: tests/test_sockets.py); without a socket sk reads NULL."""
    prog = b"".join(i.pack() for i in [
        I(A["LDX64"].code, 2, 1, 168, 0), I(A["JEQ64_K"].code, 2, 0, 1, 0),
        I(A["LDX32"].code, 3, 2, 0, 0), R0_0, EXIT])
    assert_same(prog, prog_type, UDP4, {})
    copy = Program(copy_to_cb([(168, 8, False)]), prog_type, verify=False)
    engine = copy.run(UDP4, **engine_fields(prog_type, None))
    alone = copy.run(UDP4, **engine_fields(prog_type, None), env=Environment(socket=None))
    assert engine.skb.cb[:2] != (0, 0) and alone.skb.cb[:2] == (0, 0)


# --- writes -----------------------------------------------------------------------

def store(off, size, value, imm=False):
    """One context store of ``value``: ST (immediate) or a register load then STX."""
    if imm:
        return [I(isa.BPF_ST | isa.BPF_MEM | SIZES[size], 1, 0, off, value)]
    return [*isa.encode(A["LDDW"], dst=7, imm=value),
            I(isa.BPF_STX | isa.BPF_MEM | SIZES[size], 1, 7, off, 0)]


def _s32(v):
    return v - (1 << 32) if v & 0x80000000 else v


WRITES = [  # (field, value written, value read back)
    ("mark", 0x12345678, 0x12345678), ("priority", 0xFFFFFFFF, 0xFFFFFFFF),
    ("tc_index", 0x12345, 0x2345), ("tc_classid", 0x10002, 0x0002),
    ("queue_mapping", 5, 5), ("queue_mapping", 0xFFFE, 0xFFFE),
    ("queue_mapping", 0xFFFF, 0), ("queue_mapping", 0x1FFFF, 0),
]


@pytest.mark.kernel
@pytest.mark.parametrize("imm", [False, True], ids=["STX", "ST"])
@pytest.mark.parametrize("prog_type", (CLS, ACT), ids=type_id)
@pytest.mark.parametrize("name, value, back", WRITES,
                         ids=[f"{n}={v:#x}" for n, v, _ in WRITES])
def test_a_tc_write_reads_back_as_the_kernel_keeps_it(prog_type, imm, name, value, back):
    """Written, then read back into cb[0]; queue_mapping values >= 0xffff are ignored."""
    off = rules.FIELDS_BY_NAME[name].offset
    prog = copy_to_cb([(off, 4, False)], before=store(off, 4, _s32(value) if imm else value,
                                                      imm))
    engine, _ = assert_same(prog, prog_type, UDP4, {})
    assert engine.skb.cb[0] == back


CB_WRITES = [(48, 1, 0x80), (49, 1, 0x7F), (50, 2, 0x8001), (52, 4, 0xFEDCBA98),
             (56, 8, 0x0123456789ABCDEF), (48, 8, 0xFFFFFFFF00000001), (66, 2, 0xBEEF),
             (67, 1, 0x11)]


@pytest.mark.kernel
@pytest.mark.parametrize("imm", [False, True], ids=["STX", "ST"])
@pytest.mark.parametrize("prog_type", TYPES, ids=type_id)
@pytest.mark.parametrize("off, size, value", CB_WRITES,
                         ids=[f"cb+{o - 48}-size{s}" for o, s, _ in CB_WRITES])
def test_cb_writes_of_every_size_land_as_in_the_kernel(prog_type, imm, off, size, value):
    if imm:
        value = _s32(value & 0xFFFFFFFF)   # ST stores a sign-extended 32-bit immediate
    prog = b"".join(i.pack() for i in store(off, size, value, imm) + [R0_0, EXIT])
    assert_same(prog, prog_type, UDP4, CTX_IN)


@pytest.mark.kernel
@pytest.mark.parametrize("imm", [False, True], ids=["STX", "ST"])
@pytest.mark.parametrize("prog_type", (CLS, ACT), ids=type_id)
def test_tstamp_and_mark_and_priority_writes_come_back_in_ctx_out(prog_type, imm):
    value = -2 if imm else 0x1122334455667788
    prog = b"".join(i.pack() for i in store(152, 8, value, imm) + store(8, 4, -3, imm)
                    + store(32, 4, 0x7FFFFFFF, imm) + [R0_0, EXIT])
    engine, theirs = assert_same(prog, prog_type, UDP4, CTX_IN)
    assert engine.skb.tstamp == value & (1 << 64) - 1
    assert (engine.skb.mark, engine.skb.priority) == (0xFFFFFFFD, 0x7FFFFFFF)


def test_a_write_the_program_type_may_not_make_is_refused_before_it_runs():
    with pytest.raises(errors.VerifierError, match="mark may not be written by "
                                                   "BPF_PROG_TYPE_SOCKET_FILTER"):
        Program(b"".join(i.pack() for i in store(8, 4, 1, True) + [R0_0, EXIT]), SF)


# --- the 4.6 profile (not differential: this kernel is 6.18) -----------------------

def v46(text, prog_type=CLS):
    return Program.from_asm(text, prog_type, profile="4.6")


def test_field_at_names_the_first_field_whose_bytes_cover_the_offset():
    for off in range(-8, isa.SIZEOF_SK_BUFF + 8):
        covering = [f for f in rules.FIELDS if f.offset <= off < f.offset + f.size]
        assert rules.field_at(off) is (covering[0] if covering else None), f"offset {off}"


@pytest.mark.parametrize("prog_type", TYPES, ids=type_id)
def test_4_6_context_is_76_bytes(prog_type):
    """4.6's struct __sk_buff ends after tc_classid (offset 72)."""
    with pytest.raises(errors.VerifierError, match=r"off=76 size=4: offset 76 is outside "
                                                   r"struct __sk_buff \(76 bytes in the 4.6"):
        v46("r0 = *(u32 *)(r1 + 76)\nexit", prog_type)


@pytest.mark.parametrize("size", [1, 2, 8])
def test_4_6_allows_only_4_byte_context_accesses(size):
    """4.6's __is_valid_access: size must be exactly 4 (no narrow or 8-byte loads)."""
    kind = {1: "u8", 2: "u16", 8: "u64"}[size]
    with pytest.raises(errors.VerifierError, match="the 4.6 kernel allows 4-byte"):
        v46(f"r0 = *({kind} *)(r1 + 48)\nexit")


def test_4_6_socket_filters_cannot_read_tc_classid_but_tc_can():
    """4.6's sk_filter_is_valid_access: every field but tc_classid is readable."""
    with pytest.raises(errors.VerifierError, match="tc_classid may not be read by "
                                                   "BPF_PROG_TYPE_SOCKET_FILTER in the 4.6"):
        v46("r0 = *(u32 *)(r1 + 72)\nexit", SF)
    assert v46("r0 = *(u32 *)(r1 + 72)\nexit").run(UDP4, tc_classid=9).retval == 9


@pytest.mark.parametrize("prog_type", TYPES, ids=type_id)
def test_4_6_every_field_up_to_tc_classid_is_readable_with_4_bytes(prog_type):
    for off in range(0, 76, 4):
        if not (prog_type == SF and off == 72):
            v46(f"r0 = *(u32 *)(r1 + {off})\nexit", prog_type)


WRITABLE_46 = {"mark": 8, "priority": 32, "tc_index": 44, "cb[0]": 48, "cb[4]": 64,
               "tc_classid": 72}


@pytest.mark.parametrize("off", range(0, 76, 4))
def test_4_6_tc_writes_exactly_mark_tc_index_priority_cb_and_tc_classid(off):
    """4.6's tc_cls_act_is_valid_access: queue_mapping (and tstamp) were not writable."""
    text = f"r2 = 1\n*(u32 *)(r1 + {off}) = r2\nr0 = 0\nexit"
    if off in WRITABLE_46.values() or 48 <= off < 68:
        v46(text)
    else:
        with pytest.raises(errors.VerifierError, match="may not be written by "
                                                       "BPF_PROG_TYPE_SCHED_CLS in the 4.6"):
            v46(text)


def test_4_6_socket_filters_write_only_cb():
    for off in range(0, 76, 4):
        text = f"r2 = 1\n*(u32 *)(r1 + {off}) = r2\nr0 = 0\nexit"
        if 48 <= off < 68:
            v46(text, SF)
        else:
            with pytest.raises(errors.VerifierError):
                v46(text, SF)


def test_4_6_tc_writes_reach_the_skb():
    res = v46("r2 = 0x12345\n*(u32 *)(r1 + 8) = r2\n*(u32 *)(r1 + 32) = r2\n"
              "*(u32 *)(r1 + 44) = r2\n*(u32 *)(r1 + 72) = r2\n*(u32 *)(r1 + 64) = r2\n"
              "r0 = 0\nexit").run(UDP4)
    f = res.skb
    assert (f.mark, f.priority, f.tc_index, f.tc_classid, f.cb[4]) == \
        (0x12345, 0x12345, 0x2345, 0x2345, 0x12345)


@pytest.mark.parametrize("text", [
    "*(u32 *)(r1 + 8) = 1", "*(u32 *)(r1 + 48) = 1",
    "r2 = 1\nlock *(u32 *)(r1 + 48) += w2", "r2 = 1\nlock *(u32 *)(r1 + 8) += w2",
], ids=["st-mark", "st-cb", "xadd-cb", "xadd-mark"])
def test_4_6_store_immediate_and_xadd_into_the_context_are_refused(text):
    """4.6's convert_ctx_accesses: 4.6 passed these and then stored into the raw struct sk_buff
    (a kernel bug); the engine refuses them instead of imitating it."""
    with pytest.raises(errors.VerifierError, match="ctx"):
        v46(f"{text}\nr0 = 0\nexit")


@pytest.mark.parametrize("tci, present, read", [
    (0x1005, 1, 0x0005), (0x0fff, 1, 0x0fff), (0x3123, 1, 0x2123),
], ids=["dei-set", "dei-clear", "pcp-and-dei"])
def test_4_6_vlan_tci_masks_the_dei_bit_and_vlan_present_is_its_own_flag(tci, present, read):
    """4.6's __vlan_hwaccel_put_tag: in 4.6 the presence flag was bit 12 (CFI/DEI) of vlan_tci, which
    reads with that bit cleared; the current kernel reads all 16 bits."""
    prog = "r2 = *(u32 *)(r1 + 20)\n*(u32 *)(r1 + 48) = r2\nr2 = *(u32 *)(r1 + 24)\n" \
           "*(u32 *)(r1 + 52) = r2\nr0 = 0\nexit"
    assert v46(prog).run(UDP4, vlan=(0x8100, tci)).skb.cb[:2] == (present, read)
    assert Program.from_asm(prog, CLS).run(UDP4, vlan=(0x8100, tci)).skb.cb[:2] == \
        (present, tci)


def test_4_6_refuses_sign_extending_context_loads():
    """Sign-extending loads (BPF_MEMSX) arrived in 6.6; the current kernel allows them on
    the context and the 4.6 profile does not."""
    with pytest.raises(errors.VerifierError, match="do not exist in the 4.6 kernel"):
        v46("r0 = *(s32 *)(r1 + 48)\nexit")
