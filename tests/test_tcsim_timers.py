"""bpf_timer in a tcsim replay: the capture's clock fires the callbacks due between two
packets, before the later one runs, and at the end of the capture those due by the last
packet's time (docs/tcsim.md).  The kernel's timers fire on its own clock, which no
replay of a capture can drive, so these hold the model's rule: expected values follow
from the capture's timestamps.  tests/test_timers.py holds what the callbacks do against
the kernel."""
from __future__ import annotations

import gc
import json
import struct

import pytest
from scapy.all import IP, UDP, Ether

import pyebpf
from pyebpf import KTIME_START
from pyebpf.pcap import pcapio, tcreplay, tcsim
from pyebpf.pcap.report import read_line

from bpfc import compile_object
from test_timers import INNER

MS = 1_000_000
FRAME = bytes(Ether() / IP() / UDP(dport=53))
TS0 = 1_700_000_000 * 1_000_000_000     # the capture's first timestamp

# Each packet's mark is how often the callback has run.  ARM_ONCE arms the timer at the
# first packet, DELAY ns on; REARM's callback arms it again, DELAY on; ARM_EACH arms it at
# every packet, DELAY on (re-arming moves the expiry).
SOURCE = r"""
#define CLOCK_MONOTONIC 1
struct tval { __u64 fires; __u64 fired_at; __u64 armed; struct bpf_timer t; };
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
    __type(key, __u32); __type(value, struct tval);
} timers SEC(".maps");
char LICENSE[] SEC("license") = "GPL";

static int fired(void *map, __u32 *key, struct tval *v)
{
    v->fires++;
    v->fired_at = bpf_ktime_get_ns();
    if (MODE == 1)
        bpf_timer_start(&v->t, DELAY, 0);
    return 0;
}

SEC("tc") int prog(struct __sk_buff *skb)
{
    __u32 k = 0;
    struct tval *v = bpf_map_lookup_elem(&timers, &k);
    if (!v)
        return TC_ACT_OK;
    skb->mark = v->fires;
    if (!v->armed) {
        bpf_timer_init(&v->t, &timers, CLOCK_MONOTONIC);
        bpf_timer_set_callback(&v->t, fired);
    }
    if (!v->armed || MODE == 2)
        bpf_timer_start(&v->t, DELAY, 0);
    v->armed = 1;
    return TC_ACT_OK;
}
"""
ARM_ONCE, REARM, ARM_EACH = 0, 1, 2


@pytest.fixture
def replay(tmp_path, capsys):
    """replay(mode, delay, times_ms, *options) -> (each packet's mark, the timer's value
    after the replay: fires, fired_at)."""
    def _replay(mode, delay, times_ms, *options):
        obj = tmp_path / f"timer{mode}_{delay}.o"
        obj.write_bytes(compile_object(SOURCE, flags=(
            "-O2", "-mcpu=v3", f"-DMODE={mode}", f"-DDELAY={delay}")))
        pcapio.write(tmp_path / "in.pcap", [(TS0 + int(t * MS), FRAME, len(FRAME))
                                           for t in times_ms])
        dump = tmp_path / "maps"
        rc = tcsim.main([str(obj), "-r", str(tmp_path / "in.pcap"), "-q",
                         "--report", str(tmp_path / "r.jsonl"), "--dump-maps", str(dump),
                         *options])
        assert rc == 0, capsys.readouterr().err
        marks = [read_line(line)["mark"]
                 for line in (tmp_path / "r.jsonl").read_text().splitlines()]
        value = json.loads((dump / "timers.json").read_text())["entries"][0]["value"]
        return marks, (value["fires"], value["fired_at"])
    return _replay


def test_a_timer_fires_before_the_first_packet_at_or_after_its_expiry(replay):
    marks, (fires, fired_at) = replay(ARM_ONCE, 5 * MS, [0, 3, 6, 20])
    assert marks == [0, 0, 1, 1]
    assert (fires, fired_at) == (1, KTIME_START + 5 * MS)


def test_a_timer_due_at_a_packets_own_time_fires_before_it(replay):
    marks, _ = replay(ARM_ONCE, 5 * MS, [0, 5])
    assert marks == [0, 1]


def test_a_callback_that_rearms_fires_once_per_period_in_a_long_gap(replay):
    marks, (fires, fired_at) = replay(REARM, 4 * MS, [0, 10, 13])
    assert marks == [0, 2, 3]
    assert (fires, fired_at) == (3, KTIME_START + 12 * MS)


def test_at_the_end_of_the_capture_only_the_timers_due_by_its_last_packet_fire(replay):
    _, (fires, fired_at) = replay(REARM, 4 * MS, [0, 10])
    assert (fires, fired_at) == (2, KTIME_START + 8 * MS)


def test_a_timer_the_last_packet_arms_with_no_delay_fires_at_the_end(replay):
    marks, (fires, fired_at) = replay(ARM_EACH, 0, [0, 1])
    assert marks == [0, 1]
    assert (fires, fired_at) == (2, KTIME_START + 1 * MS)


def test_rearming_before_the_expiry_moves_it_on(replay):
    marks, (fires, _) = replay(ARM_EACH, 5 * MS, [0, 3, 6, 12])
    assert marks == [0, 0, 0, 1]
    assert fires == 1


def test_with_a_fixed_ktime_the_clock_stands_and_only_timers_due_then_fire(replay):
    marks, (fires, fired_at) = replay(ARM_EACH, 0, [0, 1, 2], "--field", "ktime=5000")
    assert marks == [0, 1, 2]
    assert (fires, fired_at) == (3, 5000)


def test_two_simulated_cpus_fire_the_same_callbacks(replay):
    _, one = replay(REARM, 4 * MS, [0, 3, 6, 10, 13, 17, 30])
    _, two = replay(REARM, 4 * MS, [0, 3, 6, 10, 13, 17, 30], "--cpus", "2")
    assert one == two == (7, KTIME_START + 28 * MS)


@pytest.mark.parametrize("cpus", ["1", "2"])
def test_a_replay_leaves_no_timer_armed_in_the_process(replay, cpus):
    # with the garbage collector held, only references decide what outlives the run
    gc.disable()
    try:
        replay(REARM, 4 * MS, [0, 3], "--cpus", cpus)
        assert pyebpf.run_timers(10**9) == 0
    finally:
        gc.enable()


def test_the_python_replay_fires_timers_as_the_command_does():
    obj = compile_object(SOURCE, flags=("-O2", "-mcpu=v3", "-DMODE=0", f"-DDELAY={5 * MS}"))
    prog = pyebpf.load(obj).program("prog")
    records, _, _ = tcreplay.tc_replay([prog], [FRAME] * 3,
                                       ts=[TS0, TS0 + 3 * MS, TS0 + 6 * MS])
    marks = [o[3] for o in struct.iter_unpack(tcreplay.REPLAY_RECORD, records)]
    assert marks == [0, 0, 1]


def test_a_timer_in_an_inner_map_fires_between_packets(tmp_path, capsys):
    # each packet's mark: the inner map's value before the packet adds 1 (the
    # callback adds 10; every packet arms the timer 0 ns on)
    obj = tmp_path / "inner.o"
    source = INNER.replace("v->cnt += 1;", "skb->mark = v->cnt; v->cnt += 1;")
    obj.write_bytes(compile_object(source, flags=("-O2", "-mcpu=v3")))
    pcapio.write(tmp_path / "in.pcap", [(TS0 + k * MS, FRAME, len(FRAME)) for k in range(3)])
    rc = tcsim.main([str(obj), "-r", str(tmp_path / "in.pcap"), "-q",
                     "--report", str(tmp_path / "r.jsonl")])
    assert rc == 0, capsys.readouterr().err
    marks = [read_line(line)["mark"] for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert marks == [0, 11, 22]


WQ_SOURCE = r"""
// the system's linux/bpf.h predates struct bpf_wq (uapi since 6.10): its uapi shape
struct bpf_wq { __u64 __opaque[2]; } __attribute__((aligned(8)));
extern int bpf_wq_init(struct bpf_wq *wq, void *p__map, unsigned int flags) __ksym;
extern int bpf_wq_start(struct bpf_wq *wq, unsigned int flags) __ksym;
extern int bpf_wq_set_callback_impl(struct bpf_wq *wq,
        int (callback_fn)(void *map, int *key, void *value),
        unsigned int flags, void *aux__ign) __ksym;
struct wval { __u64 runs; __u64 ran_at; __u64 init; struct bpf_wq w; };
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
    __type(key, __u32); __type(value, struct wval);
} works SEC(".maps");
char LICENSE[] SEC("license") = "GPL";

static int ran(void *map, int *key, void *value)
{
    struct wval *v = value;
    v->runs++;
    v->ran_at = bpf_ktime_get_ns();
    return 0;
}

SEC("tc") int prog(struct __sk_buff *skb)
{
    __u32 k = 0;
    struct wval *v = bpf_map_lookup_elem(&works, &k);
    if (!v)
        return TC_ACT_OK;
    skb->mark = v->runs;
    if (!v->init) {
        bpf_wq_init(&v->w, &works, 0);
        bpf_wq_set_callback_impl(&v->w, ran, 0, 0);
        v->init = 1;
    }
    bpf_wq_start(&v->w, 0);
    return TC_ACT_OK;
}
"""


def test_work_a_packet_queues_runs_before_the_next_packet_and_at_the_end(tmp_path, capsys):
    # each packet's mark: how often the work ran before it; each packet queues it once
    obj = tmp_path / "wq.o"
    obj.write_bytes(compile_object(WQ_SOURCE, flags=("-O2", "-mcpu=v3")))
    pcapio.write(tmp_path / "in.pcap", [(TS0 + k * MS, FRAME, len(FRAME)) for k in range(3)])
    dump = tmp_path / "maps"
    rc = tcsim.main([str(obj), "-r", str(tmp_path / "in.pcap"), "-q",
                     "--report", str(tmp_path / "r.jsonl"), "--dump-maps", str(dump)])
    assert rc == 0, capsys.readouterr().err
    marks = [read_line(line)["mark"] for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    value = json.loads((dump / "works.json").read_text())["entries"][0]["value"]
    assert marks == [0, 1, 2]
    assert (value["runs"], value["ran_at"]) == (3, KTIME_START + 2 * MS)
    assert value["w"] == {"__opaque": [0, 0]}     # a lookup reads a bpf_wq as zeroes
