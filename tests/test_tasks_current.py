"""The current task of a tc program's packet runs, per hook, as an environment file's
``[current]`` table declares it (pyebpf.trace.Machine.from_toml(path, hook=), tcsim
--env with --hook): bpf_get_current_pid_tgid, _uid_gid and _comm.  The kernel's on a
veth pair (tests/netns.py): a frame sent by this process through a packet socket on
vtx meets the program at vtx's tc egress in the sending task, and at vrx's tc ingress
in the softirq the send runs on its way out of the syscall, the same task; that
observation (kernel_observation) is recorded for the unprivileged replay."""
from __future__ import annotations

import json
import os
import socket
import struct
import time

import pytest

import pyebpf
from bpfc import compile_object
from netns import in_netns, tcx_attach, veth_pair
from pyebpf.environment import EnvironmentSpecError
from pyebpf.trace import Machine
from recorded_kernel import count_comparison

SOURCE = r"""
char LICENSE[] SEC("license") = "GPL";
struct rec { __u64 runs, pid_tgid, uid_gid; char comm[16]; };
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 2);
    __type(key, __u32); __type(value, struct rec);
} seen SEC(".maps");

static __always_inline int record(__u32 hook)
{
    struct rec *r = bpf_map_lookup_elem(&seen, &hook);
    if (!r)
        return 0;
    r->runs += 1;
    r->pid_tgid = bpf_get_current_pid_tgid();
    r->uid_gid = bpf_get_current_uid_gid();
    bpf_get_current_comm(r->comm, sizeof(r->comm));
    return 0;
}

SEC("tc") int ingress(struct __sk_buff *skb) { return record(0); }
SEC("tc") int egress(struct __sk_buff *skb) { return record(1); }
"""
HOOKS = ("ingress", "egress")
FRAME = bytes.fromhex("020000000002" "020000000003" "0800"
                      "4500001c000100004011f96f0a0000020a000001" "0fa000350008f0c7")


def decode(value: bytes) -> dict:
    runs, pid_tgid, uid_gid = struct.unpack_from("<3Q", value)
    return {"pid_tgid": pid_tgid, "uid_gid": uid_gid,
            "comm": value[24:40].split(b"\0")[0].decode()}


def _observe() -> dict:
    """Each hook's record after one frame sent from vtx, and who sent it."""
    data = compile_object(SOURCE, flags=("-O2",))
    with veth_pair("curtask") as (name, _, _), pyebpf.kernel.load_object(data) as kobj:
        def attach():
            tcx_attach("vrx", kobj.program("ingress").fd, ingress=True)
            tcx_attach("vtx", kobj.program("egress").fd, ingress=False)
            tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
            tx.bind(("vtx", 0))
            return tx
        with in_netns(name, attach) as tx:
            tx.send(FRAME)
            seen = kobj.maps["seen"]
            deadline = time.monotonic() + 5
            while struct.unpack_from("<Q", seen.lookup(bytes(4)))[0] == 0:
                assert time.monotonic() < deadline, "the frame never reached vrx's ingress"
                time.sleep(0.01)
            records = {hook: decode(seen.lookup(struct.pack("<I", k)))
                       for k, hook in enumerate(HOOKS)}
    with open("/proc/thread-self/comm") as f:
        comm = f.read().strip()
    return {"sender": {"pid": os.getpid(), "uid": os.getuid(), "gid": os.getgid(),
                       "comm": comm}, **records}


@pytest.fixture(scope="module")
def kernel_current(kernel_observation):
    return kernel_observation("a veth's tc programs' current task", "current v1", _observe)


def env_file(tmp_path, sender: dict, current: str) -> str:
    """An environment file whose one task is ``sender``, ``current`` its [current]
    table's body."""
    path = tmp_path / "net.toml"
    path.write_text(f"""
[[tasks]]
pid = {sender["pid"]}
uid = {sender["uid"]}
gid = {sender["gid"]}
comm = "{sender["comm"]}"

[current]
{current}
""")
    return str(path)


def engine_records(path: str) -> dict:
    """Each hook's record from pyebpf: the program of the hook run once in the machine
    the file declares for that hook."""
    obj = pyebpf.load(compile_object(SOURCE, flags=("-O2",)))
    try:
        for hook in HOOKS:
            obj.program(hook).run(FRAME, machine=Machine.from_toml(path, hook=hook),
                                  ingress=hook == "ingress")
        return {hook: decode(obj.maps["seen"].lookup(struct.pack("<I", k)))
                for k, hook in enumerate(HOOKS)}
    finally:
        obj.close()


def test_a_veths_tc_programs_run_in_the_sending_task(kernel_current):
    """The kernel's: at egress the sender's syscall; at a veth peer's ingress the
    softirq its send raised, run as it leaves the syscall (local_bh_enable)."""
    sender = kernel_current["sender"]
    want = {"pid_tgid": sender["pid"] << 32 | sender["pid"],
            "uid_gid": sender["gid"] << 32 | sender["uid"], "comm": sender["comm"]}
    assert kernel_current["egress"] == want
    assert kernel_current["ingress"] == want


def test_the_declared_current_task_is_the_kernels_at_each_hook(kernel_current, tmp_path):
    sender = kernel_current["sender"]
    path = env_file(tmp_path, sender, f"ingress = {sender['pid']}\negress = {sender['pid']}")
    ours = engine_records(path)
    count_comparison()
    assert ours == {hook: kernel_current[hook] for hook in HOOKS}


def test_without_a_current_table_both_hooks_run_in_the_idle_task(tmp_path):
    path = tmp_path / "net.toml"
    path.write_text("[[tasks]]\npid = 4242\ncomm = \"app\"\n")
    idle = {"pid_tgid": 0, "uid_gid": 0, "comm": "swapper/0"}
    assert engine_records(str(path)) == {"ingress": idle, "egress": idle}


def test_each_hook_runs_in_the_task_declared_for_it(tmp_path):
    path = env_file(tmp_path, {"pid": 4242, "uid": 1000, "gid": 100, "comm": "app"},
                    "egress = 4242")
    assert engine_records(path) == {
        "ingress": {"pid_tgid": 0, "uid_gid": 0, "comm": "swapper/0"},
        "egress": {"pid_tgid": 4242 << 32 | 4242, "uid_gid": 100 << 32 | 1000, "comm": "app"}}


def test_the_current_task_keeps_its_user_memory_and_is_found_by_pid(tmp_path):
    (tmp_path / "net.toml").write_text("""
[[tasks]]
pid = 4242
user_memory = { "0x7f0000000000" = "6869" }

[[tasks]]
pid = 4243

[current]
egress = 4242
""")
    machine = Machine.from_toml(tmp_path / "net.toml", hook="egress")
    assert (machine.task.pid, [t.pid for t in machine.tasks]) == (4242, [4243])
    assert machine.user_memory == ((0x7F0000000000, b"hi" + bytes(4094)),)


@pytest.mark.parametrize("current,message", [
    ("egress = 7", r"current\.egress: 7 is not the pid of a \[\[tasks\]\] table"),
    ("sideways = 0", r"current: unknown key 'sideways'; known: ingress, egress"),
    ('ingress = "app"', r"current\.ingress: 'app' is not the pid of a \[\[tasks\]\] table"),
], ids=["unknown-pid", "unknown-hook", "not-a-pid"])
def test_a_bad_current_table_is_refused_naming_it(tmp_path, current, message):
    path = env_file(tmp_path, {"pid": 4242, "uid": 0, "gid": 0, "comm": "app"}, current)
    with pytest.raises(EnvironmentSpecError, match=r"net\.toml: " + message):
        Machine.from_toml(path)


def test_tcsim_runs_the_packets_in_the_hooks_current_task(tmp_path, capsys):
    """tcsim --env --hook egress: every packet's program runs in the task [current]
    names for egress; --field pid_tgid would override it."""
    from pyebpf.pcap import pcapio, tcsim
    (tmp_path / "cur.o").write_bytes(compile_object(SOURCE, flags=("-O2",)))
    path = env_file(tmp_path, {"pid": 4242, "uid": 1000, "gid": 100, "comm": "app"},
                    "egress = 4242")
    pcapio.write(tmp_path / "one.pcap", [(0, FRAME, len(FRAME))])
    rc = tcsim.main([str(tmp_path / "cur.o") + ":egress", "-r", str(tmp_path / "one.pcap"),
                     "-q", "--hook", "egress", "--env", path,
                     "--dump-maps", str(tmp_path / "maps")])
    assert (rc, capsys.readouterr().err) == (0, "")
    entries = json.loads((tmp_path / "maps" / "seen.json").read_text())["entries"]
    egress = [e for e in entries if e["key"] == 1][0]["value"]
    assert egress["pid_tgid"] == 4242 << 32 | 4242
    assert egress["uid_gid"] == 100 << 32 | 1000


TASK_SOURCE = r"""
struct task_struct { int pid; int tgid; char comm[16]; } __attribute__((preserve_access_index));
char LICENSE[] SEC("license") = "GPL";
struct rec { __u64 task; __u32 pid, tgid; char comm[16]; };
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
    __type(key, __u32); __type(value, struct rec);
} task SEC(".maps");

SEC("tc") int prog(struct __sk_buff *skb)
{
    __u32 zero = 0;
    struct rec *r = bpf_map_lookup_elem(&task, &zero);
    struct task_struct *t = bpf_get_current_task_btf();
    if (!r)
        return 0;
    r->task = bpf_get_current_task();
    r->pid = t->pid;
    r->tgid = t->tgid;
    __builtin_memcpy(r->comm, t->comm, sizeof(r->comm));
    return 0;
}
"""


def decode_task(value: bytes) -> dict:
    task, pid, tgid = struct.unpack_from("<QII", value)
    return {"task": task, "pid": pid, "tgid": tgid,
            "comm": value[16:32].split(b"\0")[0].decode()}


@pytest.mark.parametrize("hook", HOOKS)
@pytest.mark.parametrize("cpus", [1, 2])
def test_tcsims_packet_runs_have_the_hooks_current_task_struct(tmp_path, hook, cpus):
    """tcsim --env: bpf_get_current_task(_btf) is the task_struct of the task [current]
    names for the --hook, read through BTF as run(machine=) reads it, on every CPU."""
    from pyebpf.pcap import pcapio, tcsim
    data = compile_object(TASK_SOURCE, flags=("-O2",))
    (tmp_path / "task.o").write_bytes(data)
    path = env_file(tmp_path, {"pid": 4242, "uid": 1000, "gid": 100, "comm": "app"},
                    f"{hook} = 4242")
    pcapio.write(tmp_path / "some.pcap",
                 [(k, FRAME[:-2] + bytes([k, k]), len(FRAME)) for k in range(16)])
    rc = tcsim.main([str(tmp_path / "task.o") + ":prog", "-r", str(tmp_path / "some.pcap"),
                     "-q", "--hook", hook, "--env", path, "--cpus", str(cpus),
                     "--dump-maps", str(tmp_path / "maps")])
    assert rc == 0
    value = json.loads((tmp_path / "maps" / "task.json").read_text())["entries"][0]["value"]
    replayed = {"task": value["task"], "pid": value["pid"], "tgid": value["tgid"],
                "comm": bytes.fromhex(value["comm"]).split(b"\0")[0].decode()}
    obj = pyebpf.load(data)
    try:
        machine = Machine.from_toml(path, hook=hook)
        obj.program("prog").run(FRAME, machine=machine, ingress=hook == "ingress")
        ran = decode_task(obj.maps["task"].lookup(bytes(4)))
    finally:
        obj.close()
    assert ran == {"task": machine.task.address, "pid": 4242, "tgid": 4242, "comm": "app"}
    assert replayed == ran
