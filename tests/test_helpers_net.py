"""Helpers that consult the world around the packet (its socket, cgroups, namespace,
device MTUs) and the checksum-level and ECN helpers, against the kernel
(BPF_PROG_TEST_RUN) where it can show the value, and against the modelled network
(pyebpf.Environment) where the value is the world's."""
from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether

import pyebpf
from pyebpf import errors, isa, kernel
from pyebpf.environment import Device, Environment, EnvironmentSpecError, PacketSocket
from pyebpf.pcap.report import read_line
import toolpath
from netns import in_netns, veth_pair
from skbdiff import assert_same, both

I = isa.Insn
CLS, SF = "sched_cls", "socket_filter"
H = isa.HELPER_IDS
ETH = dict(dst="02:00:00:00:00:02", src="02:00:00:00:00:01")
UDP4 = bytes(Ether(**ETH) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=53)
             / (b"q" * 26))
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def lddw(reg: int, value: int) -> list[I]:
    value &= (1 << 64) - 1
    lo, hi = value & 0xFFFFFFFF, value >> 32
    return [I(0x18, reg, 0, 0, lo - (1 << 32) if lo >> 31 else lo),
            I(0, 0, 0, 0, hi - (1 << 32) if hi >> 31 else hi)]


def calls(*steps) -> bytes:
    """Each step (helper name, args after ctx) is called with r1 = ctx (or r1 = the
    first of ``args`` when the step's name ends in "!"), its r0's low half stored in
    cb[i]; the program returns the last step's r0."""
    insns = [I(0xBF, 6, 1, 0, 0)]
    for k, (name, *args) in enumerate(steps):
        ctx = not name.endswith("!")
        regs = (2, 3, 4, 5) if ctx else (1, 2, 3, 4, 5)
        for reg, value in zip(regs, args):
            insns += lddw(reg, value)
        if ctx:
            insns.append(I(0xBF, 1, 6, 0, 0))
        insns += [I(0x85, 0, 0, 0, H[name.rstrip("!")]), I(0x63, 6, 0, 48 + 4 * k, 0)]
    insns.append(I(0x95, 0, 0, 0, 0))
    return b"".join(i.pack() for i in insns)


def cb(res) -> list[int]:
    """The engine's or the kernel's cb words."""
    return list(res.skb["cb"]) if isinstance(res.skb, dict) else list(res.skb.as_dict()["cb"])


def same_cb(code: bytes, packet: bytes = UDP4, ctx: dict | None = None, **extra):
    engine, theirs = assert_same(code, CLS, packet, ctx or {}, **extra)
    assert cb(engine) == cb(theirs), f"cb: engine {cb(engine)}, kernel {cb(theirs)}"
    return cb(engine)


# --- bpf_csum_level ---------------------------------------------------------------------

Q, INC, DEC, RESET = (isa.BPF_CSUM_LEVEL_QUERY, isa.BPF_CSUM_LEVEL_INC,
                      isa.BPF_CSUM_LEVEL_DEC, isa.BPF_CSUM_LEVEL_RESET)


@pytest.mark.parametrize("levels", [
    (Q,), (INC, Q), (INC, INC, Q), (INC, INC, INC, INC, Q), (INC, DEC, Q), (INC, INC, DEC, Q),
    (INC, RESET, Q), (DEC, Q), (RESET, Q), (4,), (-1,)],
    ids=lambda v: "-".join(map(str, v)))
def test_csum_level_steps_match_the_kernel(levels):
    same_cb(calls(*[("csum_level", lv) for lv in levels]))


def test_csum_level_query_without_checksum_unnecessary_is_eacces():
    res = pyebpf.Program(calls(("csum_level", Q)), CLS).run(UDP4)
    assert res.retval == -13


def test_csum_level_is_not_offered_to_socket_filters():
    with pytest.raises(errors.VerifierError, match="cannot use helper bpf_csum_level#135"):
        pyebpf.Program(calls(("csum_level", Q)), SF)


# --- bpf_skb_ecn_set_ce -----------------------------------------------------------------

def _v4(tos, chksum=None, **kw):
    return bytes(Ether(**ETH) / IP(src="10.0.0.1", dst="10.0.0.2", tos=tos, chksum=chksum, **kw)
                 / TCP(sport=1, dport=2) / (b"x" * 10))


ECN_PACKETS = {
    "v4-not-ect": _v4(0x00), "v4-ect1": _v4(0x01), "v4-ect0": _v4(0x02), "v4-ce": _v4(0x03),
    "v4-dscp-ect0": _v4(0xB8 | 2), "v4-ect1-check-ffff": _v4(0x01, 0xFFFF),
    "v4-ect0-check-0": _v4(0x02, 0), "v4-ect0-check-fffe": _v4(0x02, 0xFFFE),
    "v4-ect1-check-1": _v4(0x01, 0x0001), "v4-ect0-check-2": _v4(0x02, 0x0002),
    "v6-not-ect": bytes(Ether(**ETH) / IPv6(tc=0x00) / UDP() / b"y"),
    "v6-ect0": bytes(Ether(**ETH) / IPv6(tc=0x02) / UDP() / b"y"),
    "v6-ect1-dscp": bytes(Ether(**ETH) / IPv6(tc=0xA1, fl=0xABCDE) / UDP() / b"y"),
    "v6-ce": bytes(Ether(**ETH) / IPv6(tc=0x03) / UDP() / b"y"),
    "vlan-v4-ect0": bytes(Ether(**ETH) / Dot1Q(vlan=5) / IP(tos=2) / UDP() / b"z"),
    "qinq-v6-ect1": bytes(Ether(**ETH) / Dot1Q(vlan=5, type=0x8100) / Dot1Q(vlan=6)
                          / IPv6(tc=1) / UDP() / b"z"),
    "arp": bytes(Ether(**ETH) / ARP()),
}


@pytest.mark.parametrize("name", ECN_PACKETS)
def test_ecn_set_ce_marks_the_packet_as_the_kernel_does(name):
    assert_same(calls(("skb_ecn_set_ce",)), CLS, ECN_PACKETS[name], {})


def test_ecn_set_ce_keeps_the_ipv4_header_checksum_valid():
    res = pyebpf.Program(calls(("skb_ecn_set_ce",)), CLS).run(ECN_PACKETS["v4-dscp-ect0"])
    ip = Ether(res.data)[IP]
    want = ip.chksum
    del ip.chksum
    assert res.retval == 1 and ip.tos == 0xBB
    assert IP(bytes(ip)).chksum == want


# --- the packet's socket, cgroup and namespace ------------------------------------------

def relation_prog() -> bytes:
    """cb[0] = (bpf_skb_cgroup_id(ctx) == bpf_get_current_cgroup_id()),
    cb[1] = bpf_skb_ancestor_cgroup_id(ctx, 0), cb[2] = bpf_get_current_ancestor_cgroup_id(0),
    cb[3] = bpf_get_socket_uid(ctx), cb[4] = bpf_skb_cgroup_classid(ctx)."""
    insns = [I(0xBF, 6, 1, 0, 0), I(0x85, 0, 0, 0, H["skb_cgroup_id"]), I(0xBF, 7, 0, 0, 0),
             I(0x85, 0, 0, 0, H["get_current_cgroup_id"]), I(0xB7, 8, 0, 0, 0),
             I(0x5D, 0, 7, 1, 0), I(0xB7, 8, 0, 0, 1), I(0x63, 6, 8, 48, 0),
             I(0xBF, 1, 6, 0, 0), I(0xB7, 2, 0, 0, 0),
             I(0x85, 0, 0, 0, H["skb_ancestor_cgroup_id"]), I(0x63, 6, 0, 52, 0),
             I(0xB7, 1, 0, 0, 0), I(0x85, 0, 0, 0, H["get_current_ancestor_cgroup_id"]),
             I(0x63, 6, 0, 56, 0), I(0xBF, 1, 6, 0, 0), I(0x85, 0, 0, 0, H["get_socket_uid"]),
             I(0x63, 6, 0, 60, 0), I(0xBF, 1, 6, 0, 0),
             I(0x85, 0, 0, 0, H["skb_cgroup_classid"]), I(0x63, 6, 0, 64, 0),
             I(0xB7, 0, 0, 0, 0), I(0x95, 0, 0, 0, 0)]
    return b"".join(i.pack() for i in insns)


def test_test_runs_socket_is_the_callers_in_its_cgroup_under_the_root_as_in_the_kernel():
    """test_run's packet has a socket of uid 0 that the calling task made: in the task's
    own cgroup, below the root cgroup (id 1), wherever the tests run."""
    assert same_cb(relation_prog()) == [1, 1, 1, 0, 0]


@pytest.mark.kernel_varies
def test_socket_cookie_is_non_zero_with_a_socket_as_in_the_kernel():
    engine, theirs = both(calls(("get_socket_cookie",)), CLS, UDP4)
    assert engine.retval == 1 and theirs.retval != 0


@pytest.mark.kernel_varies
def test_netns_cookie_with_a_null_context_is_the_initial_namespaces():
    code = calls(("get_netns_cookie",), ("get_netns_cookie!", 0))
    engine, theirs = both(code, CLS, UDP4)
    env = Environment(netns_cookie=7, init_netns_cookie=1)
    ours = pyebpf.Program(code, CLS).run(UDP4, env=env)
    assert cb(ours)[:2] == [7, 1]
    assert cb(theirs)[0] == netns_cookie_here()
    assert cb(engine)[:2] == [1, 1]


def netns_cookie_here() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with s:
        return int.from_bytes(s.getsockopt(socket.SOL_SOCKET, 71, 8), "little")  # SO_NETNS_COOKIE


def test_current_cgroup_ids_are_the_environments_task_cgroup():
    env = Environment(cgroups=(("/", 1), ("/a", 5), ("/a/b", 9)), task_cgroup="/a/b")
    code = calls(("get_current_cgroup_id!",), ("get_current_ancestor_cgroup_id!", 1),
                 ("get_current_ancestor_cgroup_id!", 2), ("get_current_ancestor_cgroup_id!", 3))
    assert cb(pyebpf.Program(code, CLS).run(UDP4, env=env))[:4] == [9, 5, 9, 0]


NET = Environment(
    devices=(Device(1, "lo", 65536, up=False), Device(2, "veth0", 1400, "02:00:00:00:00:02")),
    cgroups=(("/", 1), ("/sys", 40), ("/sys/app", 41)), netns_cookie=4096,
    init_netns_cookie=1, socket=PacketSocket(cookie=77, uid=1000, cgroup="/sys/app",
                                             classid=0x10001))


def test_socket_helpers_report_the_environments_socket():
    code = calls(("get_socket_cookie",), ("get_socket_uid",), ("skb_cgroup_id",),
                 ("skb_cgroup_classid",), ("get_netns_cookie",))
    assert cb(pyebpf.Program(code, CLS).run(UDP4, env=NET)) == [77, 1000, 41, 0x10001, 4096]


@pytest.mark.parametrize("level, want", [(0, 1), (1, 40), (2, 41), (3, 0), (-1, 0)])
def test_ancestor_cgroup_id_walks_the_environments_hierarchy(level, want):
    code = calls(("skb_ancestor_cgroup_id", level))
    assert pyebpf.Program(code, CLS).run(UDP4, env=NET).retval == want


def test_a_packet_without_a_socket_has_no_cookie_uid_or_cgroup():
    env = Environment(socket=None, netns_cookie=9, init_netns_cookie=3)
    code = calls(("get_socket_cookie",), ("get_socket_uid",), ("skb_cgroup_id",),
                 ("skb_ancestor_cgroup_id", 0), ("get_netns_cookie",))
    assert cb(pyebpf.Program(code, CLS).run(UDP4, env=env)) == [0, 65534, 0, 0, 3]


def test_a_programs_env_is_the_one_its_runs_see_unless_run_names_another():
    prog = pyebpf.Program(calls(("get_socket_uid",)), CLS)
    prog.env = NET
    assert prog.run(UDP4).retval == 1000
    assert prog.run(UDP4, env=Environment()).retval == 0


def test_load_gives_its_env_to_every_program():
    obj = pyebpf.load(EXAMPLES / "nat4.o", env=NET)
    assert [p.env for p in obj.programs.values()] == [NET] * len(obj.programs)


# --- bpf_check_mtu ----------------------------------------------------------------------

def mtu_prog(ifindex: int, mtu_in: int, len_diff: int, flags: int) -> bytes:
    """cb[0] = bpf_check_mtu(ctx, ifindex, &mtu (= mtu_in), len_diff, flags), cb[1] = mtu."""
    insns = [I(0xBF, 6, 1, 0, 0), I(0x62, 10, 0, -4, mtu_in), I(0xBF, 3, 10, 0, 0),
             I(0x07, 3, 0, 0, -4), *lddw(2, ifindex), *lddw(4, len_diff), *lddw(5, flags),
             I(0xBF, 1, 6, 0, 0), I(0x85, 0, 0, 0, H["check_mtu"]), I(0x63, 6, 0, 48, 0),
             I(0x61, 7, 10, -4, 0), I(0x63, 6, 7, 52, 0), I(0x95, 0, 0, 0, 0)]
    return b"".join(i.pack() for i in insns)


SEGS = isa.BPF_MTU_CHK_SEGS
MTU_CASES = {
    "own-device": (0, 0, 0, 0), "loopback": (1, 0, 0, 0), "grow-past-lo": (1, 0, 65536, 0),
    "grow-to-lo": (0, 0, 65536 + 14 - len(UDP4), 0),
    "grow-past-by-1": (0, 0, 65536 + 15 - len(UDP4), 0), "l3-len-fits": (1, 65536, 0, 0),
    "l3-len-too-big": (1, 65537, 0, 0), "negative-diff": (1, 65600, -100, 0),
    "no-such-device": (99, 0, 0, 0), "unknown-flag": (1, 0, 0, 2),
    "segs-with-diff": (1, 0, 1, SEGS), "segs-with-len": (1, 100, 0, SEGS),
    "segs": (1, 0, 0, SEGS)}


@pytest.mark.parametrize("case", MTU_CASES)
def test_check_mtu_on_test_runs_loopback_matches_the_kernel(case):
    same_cb(mtu_prog(*MTU_CASES[case]))


@pytest.fixture(scope="module")
def veth_ns():
    """Run a function with a namespace of our own as the thread's: vrx (ifindex 2 there,
    MTU 1400) and its peer vtx (ifindex 3, MTU 9000).  Where bpf(2) is refused (answers
    replayed) the function runs directly: the answers do not depend on where the call
    is made."""
    from conftest import _answers
    if _answers.mode == "replay":
        yield lambda fn: fn()
        return
    with veth_pair("net") as (name, inside, _):
        ip, = toolpath.need("ip", package="iproute2")
        inside(ip, "link", "set", "vrx", "mtu", "1400")
        inside(ip, "link", "set", "vtx", "mtu", "9000")
        indexes = in_netns(name, lambda: (socket.if_nametoindex("vrx"),
                                          socket.if_nametoindex("vtx")))
        assert indexes == (2, 3), f"vrx and vtx got ifindexes {indexes}, not (2, 3)"
        yield lambda fn: in_netns(name, fn)


VETH = Environment(devices=(Device(1, "lo", 65536, up=False), Device(2, "vrx", 1400),
                            Device(3, "vtx", 9000)))


@pytest.mark.parametrize("ifindex, mtu_in, len_diff", [
    (2, 0, 0), (2, 1400, 0), (2, 1401, 0), (3, 9000, 0), (3, 8000, 1001),
    (0, 0, 1400 + 14 - len(UDP4)), (0, 0, 1400 + 15 - len(UDP4)), (4, 0, 0)])
def test_check_mtu_on_veth_devices_matches_the_kernel(veth_ns, ifindex, mtu_in, len_diff):
    code = mtu_prog(ifindex, mtu_in, len_diff, 0)
    veth_ns(lambda: same_cb(code, UDP4, {"ifindex": 2}, env=VETH))


@pytest.mark.parametrize("off", [-4, -8, -6, -5, -2])
def test_check_mtus_length_pointer_is_checked_at_load_as_the_kernel_checks_it(off):
    """4 bytes the helper reads and writes, aligned (MEM_ALIGNED)."""
    code = b"".join(i.pack() for i in (
        I(0x7A, 10, 0, -8, 0), I(0xB7, 2, 0, 0, 0), I(0xBF, 3, 10, 0, 0), I(0x07, 3, 0, 0, off),
        I(0xB7, 4, 0, 0, 0), I(0xB7, 5, 0, 0, 0), I(0x85, 0, 0, 0, H["check_mtu"]),
        I(0x95, 0, 0, 0, 0)))
    try:
        with kernel.KernelProgram(code, CLS, log_level=0):
            want = None
    except errors.KernelError as exc:
        want = str(exc).split("refused the program: ", 1)[-1]
    try:
        pyebpf.Program(code, CLS)
        got = None
    except errors.VerifierError as exc:
        got = str(exc)
    assert (got is None) == (want is None) and (want is None or want in got), \
        f"kernel: {want}; pyebpf: {got}"


def test_check_mtu_of_an_undeclared_own_device_names_the_fix():
    with pytest.raises(errors.ExecutionError, match="not a device of the environment"):
        pyebpf.Program(mtu_prog(0, 0, 0, 0), CLS).run(UDP4, ifindex=5)


# --- the Environment itself -------------------------------------------------------------

def test_the_default_environment_is_a_fresh_namespaces_loopback():
    env = Environment()
    assert [(d.ifindex, d.name, d.mtu, d.up) for d in env.devices] == [(1, "lo", 65536, False)]


def test_an_environment_loads_from_toml(tmp_path):
    path = tmp_path / "net.toml"
    path.write_text('netns_cookie = 4096\ninit_netns_cookie = 1\n'
                    '[[devices]]\nifindex = 1\nname = "lo"\nmtu = 65536\nup = false\n'
                    '[[devices]]\nifindex = 2\nname = "veth0"\nmtu = 1400\n'
                    'mac = "02:00:00:00:00:02"\n'
                    '[cgroups]\n"/" = 1\n"/sys" = 40\n"/sys/app" = 41\n'
                    '[socket]\ncookie = 77\nuid = 1000\ncgroup = "/sys/app"\nclassid = 65537\n')
    assert Environment.from_toml(path) == NET


@pytest.mark.parametrize("text, message", [
    ('[[devices]]\nname = "x"\n', "devices[0]: ifindex is required"),
    ('[[devices]]\nifindex = 1\nname = "lo"\n[[devices]]\nifindex = 1\nname = "x"\n',
     "devices[1].ifindex: 1 is declared twice"),
    ('[[devices]]\nifindex = 2\nname = "x"\nmac = "zz"\n', "devices[0].mac: expected six"),
    ('[cgroups]\n"/" = 1\n"/a/b" = 3\n', "its parent '/a' is not declared"),
    ('[socket]\ncgroup = "/nope"\n', "socket.cgroup: '/nope' is not one of"),
    ('[[sockets]]\nprotocol = "tcp"\nlocal = "0.0.0.0:80"\ncgroup = "/nope"\n',
     "sockets[0].cgroup: '/nope' is not one of"),
    ('[[sockets]]\nprotocol = "tcp"\nlocal = "0.0.0.0:80"\nuid = -1\n',
     "sockets[0].uid: expected an integer in 0..4294967295"),
    ('rules = 1\n', "unknown key 'rules'"),
    ('routes = 1\n', "routes must be an array of tables"),
    ('netns_cookie = "x"\n', "netns_cookie: expected an integer"),
    ('[[devices]\n', "not TOML")])
def test_a_bad_environment_file_is_one_line_naming_the_key(tmp_path, text, message):
    path = tmp_path / "net.toml"
    path.write_text(text)
    with pytest.raises(EnvironmentSpecError, match=re.escape(message)) as info:
        Environment.from_toml(path)
    assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)


def test_env_must_be_an_environment():
    with pytest.raises(TypeError, match="pyebpf.Environment"):
        pyebpf.Program(calls(("get_socket_uid",)), CLS).run(UDP4, env={"devices": []})


def test_the_environments_devices_are_clone_redirects_targets():
    code = calls(("clone_redirect", 7, 0))
    assert pyebpf.Program(code, CLS).run(UDP4, env=NET).retval == -22     # -EINVAL
    assert pyebpf.Program(code, CLS).run(UDP4).retval == 0


def test_the_packets_device_mac_classifies_the_frame():
    code = b"".join(i.pack() for i in (I(0x61, 0, 1, 4, 0), I(0x95, 0, 0, 0, 0)))
    assert pyebpf.Program(code, CLS).run(UDP4, ifindex=2, env=NET).retval == 0   # HOST
    assert pyebpf.Program(code, CLS).run(UDP4, ifindex=1, env=NET).retval == 3   # OTHERHOST


# --- bpf_skb_load_bytes_relative, bpf_skb_set_tstamp, bpf_skb_get_xfrm_state ------------

def load_rel_prog(offset: int, size: int, start: int) -> bytes:
    """r0 = bpf_skb_load_bytes_relative(ctx, offset, fp-8, size, start); cb[0..1] = the
    8 bytes at fp-8 (pre-filled with 0xaa)."""
    insns = [I(0xBF, 6, 1, 0, 0), *lddw(7, 0xAAAAAAAAAAAAAAAA), I(0x7B, 10, 7, -8, 0),
             *lddw(2, offset), I(0xBF, 3, 10, 0, 0), I(0x07, 3, 0, 0, -8), I(0xB7, 4, 0, 0, size),
             I(0xB7, 5, 0, 0, start), I(0xBF, 1, 6, 0, 0),
             I(0x85, 0, 0, 0, H["skb_load_bytes_relative"]),
             I(0x61, 7, 10, -8, 0), I(0x63, 6, 7, 48, 0), I(0x61, 7, 10, -4, 0),
             I(0x63, 6, 7, 52, 0), I(0x95, 0, 0, 0, 0)]
    return b"".join(i.pack() for i in insns)


MAC, NET_ = isa.BPF_HDR_START_MAC, isa.BPF_HDR_START_NET


@pytest.mark.parametrize("offset, size, start", [
    (0, 8, MAC), (12, 4, MAC), (0, 8, NET_), (12, 8, NET_), (60, 8, MAC), (61, 8, MAC),
    (46, 8, NET_), (47, 8, NET_), (0x10000, 1, MAC), (0, 8, 2), (-1, 8, NET_)])
@pytest.mark.parametrize("prog_type", [CLS, SF])
def test_load_bytes_relative_matches_the_kernel(offset, size, start, prog_type):
    engine, theirs = assert_same(load_rel_prog(offset, size, start), prog_type, UDP4, {})
    assert cb(engine) == cb(theirs), f"cb: engine {cb(engine)}, kernel {cb(theirs)}"


def tstamp_prog(tstamp: int, kind: int) -> bytes:
    """cb[0] = bpf_skb_set_tstamp(ctx, tstamp, kind), cb[1] = skb->tstamp_type."""
    insns = [I(0xBF, 6, 1, 0, 0), *lddw(2, tstamp), *lddw(3, kind),
             I(0x85, 0, 0, 0, H["skb_set_tstamp"]), I(0x63, 6, 0, 48, 0),
             I(0x71, 7, 6, isa.SK_BUFF_LAYOUT["tstamp_type"][0], 0), I(0x63, 6, 7, 52, 0),
             I(0x95, 0, 0, 0, 0)]
    return b"".join(i.pack() for i in insns)


@pytest.mark.parametrize("tstamp, kind", [
    (0, 0), (123456789, 0), (0, 1), (5_000_000_000, 1), (0, 2), (77, 2), (77, 3),
    (77, 1 << 32)])
def test_set_tstamp_matches_the_kernel(tstamp, kind):
    same_cb(tstamp_prog(tstamp, kind))


def test_get_xfrm_state_finds_no_state_and_zeroes_the_buffer_as_the_kernel_does():
    insns = [I(0xBF, 6, 1, 0, 0), I(0x7A, 10, 0, -16, 0x55), I(0x7A, 10, 0, -8, 0x55),
             I(0xB7, 2, 0, 0, 0), I(0xBF, 3, 10, 0, 0), I(0x07, 3, 0, 0, -16),
             I(0xB7, 4, 0, 0, 16), I(0xB7, 5, 0, 0, 0), I(0x85, 0, 0, 0, H["skb_get_xfrm_state"]),
             I(0x61, 7, 10, -16, 0), I(0x63, 6, 7, 48, 0), I(0x61, 7, 10, -8, 0),
             I(0x63, 6, 7, 52, 0), I(0x95, 0, 0, 0, 0)]
    assert same_cb(b"".join(i.pack() for i in insns))[:2] == [0, 0]


# --- tcsim --env ------------------------------------------------------------------------

UID_TO_MARK = "r6 = r1\ncall 47\n*(u32 *)(r6 + 8) = r0\nr0 = 0\nexit"   # mark = socket uid


def test_tcsim_runs_every_packet_in_the_environment_of_env(tmp_path):
    from pyebpf.pcap import pcapio, tcsim
    (tmp_path / "p.s").write_text(UID_TO_MARK)
    (tmp_path / "net.toml").write_text('[socket]\nuid = 1000\n')
    pcapio.write(tmp_path / "in.pcap", [(k, UDP4, len(UDP4)) for k in range(3)])
    rc = tcsim.main([str(tmp_path / "p.s"), "-r", str(tmp_path / "in.pcap"), "--env",
                     str(tmp_path / "net.toml"), "--report", str(tmp_path / "r.jsonl")])
    marks = [read_line(line)["mark"] for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert (rc, marks) == (0, [1000] * 3)


def test_tcsim_with_a_bad_env_file_says_where_in_one_line(tmp_path, capsys):
    from pyebpf.pcap import pcapio, tcsim
    (tmp_path / "p.s").write_text(UID_TO_MARK)
    (tmp_path / "net.toml").write_text('[socket]\nuid = -1\n')
    pcapio.write(tmp_path / "in.pcap", [(0, UDP4, len(UDP4))])
    rc = tcsim.main([str(tmp_path / "p.s"), "-r", str(tmp_path / "in.pcap"), "--env",
                     str(tmp_path / "net.toml")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and err == [f"tcsim: --env {tmp_path / 'net.toml'}: socket.uid: expected "
                               f"an integer in 0..4294967295, got -1"]
