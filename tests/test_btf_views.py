"""Maps filled and read with their BTF types (named tuples for structs, lists per CPU),
and the perf event and ring buffer records of an object decoded the same way; the map
bytes the views write are checked by running the program in the kernel too."""
from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

import pyebpf
from bpfc import compile_object

SOURCE = """
struct flow_key {
	__u32 saddr;
	__u16 dport;
	__u8 proto;
	__u8 pad;
};
struct counters {
	__u64 packets;
	__u64 bytes;
};
struct event {
	__u32 saddr;
	__u16 dport;
	__u16 verdict;
};
/* clang writes BTF for types globals use: this puts struct event in it for readers */
const struct event *unused_event __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct flow_key);
	__type(value, struct counters);
	__uint(max_entries, 64);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1);
} total SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
	__uint(max_entries, 4);
} perf SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} rb SEC(".maps");

SEC("tc")
int account(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + sizeof(struct ethhdr);
	struct flow_key key = {};
	struct event ev = {};
	struct counters *c;
	__u32 zero = 0;
	__u64 *t;
	__u16 *ports;

	if ((void *)(ip + 1) + 4 > data_end)
		return TC_ACT_OK;
	ports = (void *)(ip + 1);
	key.saddr = ip->saddr;
	key.dport = bpf_ntohs(ports[1]);
	key.proto = ip->protocol;
	t = bpf_map_lookup_elem(&total, &zero);
	if (t)
		*t += skb->len;
	c = bpf_map_lookup_elem(&flows, &key);
	if (!c)
		return TC_ACT_OK;
	c->packets++;
	c->bytes += skb->len;
	ev.saddr = key.saddr;
	ev.dport = key.dport;
	ev.verdict = c->packets > 2 ? TC_ACT_SHOT : TC_ACT_OK;
	bpf_perf_event_output(skb, &perf, BPF_F_CURRENT_CPU, &ev, sizeof(ev));
	bpf_ringbuf_output(&rb, &ev, sizeof(ev), 0);
	return ev.verdict;
}

char _license[] SEC("license") = "GPL";
"""

FRAME = Ether() / IP(src="192.0.2.1", dst="198.51.100.1") / TCP(dport=22)
SRC = int.from_bytes(bytes([192, 0, 2, 1]), "little")      # saddr as the program reads it


OBJECT = "#include <linux/tcp.h>\n" + SOURCE


@pytest.fixture
def obj():
    return pyebpf.load(compile_object(OBJECT))


def test_struct_keys_and_values_are_named_tuples_named_after_their_c_types(obj):
    flows = obj.maps["flows"].typed()
    assert (flows.Key.__name__, flows.Key._fields) == ("FlowKey", ("saddr", "dport", "proto",
                                                                   "pad"))
    flows[flows.Key(saddr=SRC, dport=22, proto=6, pad=0)] = flows.Value(packets=10, bytes=0)
    obj.program().run(FRAME)
    [(key, value)] = flows.items()
    assert key == (SRC, 22, 6, 0) and value == flows.Value(11, len(FRAME))


def test_keys_and_values_may_be_dicts_or_plain_tuples(obj):
    flows = obj.maps["flows"].typed()
    flows[{"saddr": SRC, "dport": 22, "proto": 6}] = (0, 0)
    assert flows[(SRC, 22, 6, 0)] == (0, 0)
    assert obj.maps["flows"][bytes.fromhex("c0000201") + (22).to_bytes(2, "little")
                             + b"\x06\x00"] == bytes(16)


def test_the_map_itself_takes_btf_keys_and_gives_btf_values(obj):
    flows = obj.maps["flows"]
    FlowKey, Counters = flows.Key, flows.Value
    flows[FlowKey(saddr=SRC, dport=22, proto=6, pad=0)] = Counters(packets=10, bytes=0)
    obj.program().run(FRAME)
    assert flows[FlowKey(SRC, 22, 6, 0)] == Counters(11, len(FRAME))
    assert FlowKey(SRC, 22, 6, 0) in flows and FlowKey(SRC, 23, 6, 0) not in flows
    assert flows.get(FlowKey(SRC, 23, 6, 0)) is None
    del flows[FlowKey(SRC, 22, 6, 0)]
    assert len(flows) == 0


def test_a_map_without_btf_refuses_a_key_that_is_not_bytes():
    m = pyebpf.Map.create("hash", 4, 8, 4)
    with pytest.raises(TypeError, match=r"keys are bytes of key_size 4 .* got int: use "
                                        r"typed\(key_format, value_format\)"):
        m[0] = bytes(8)


def test_a_field_the_type_does_not_have_is_refused(obj):
    with pytest.raises(ValueError, match=r"key \{'sport': 1\} does not fit struct flow_key: "
                                         r"no field sport in struct flow_key"):
        obj.maps["flows"].typed()[{"sport": 1}] = (0, 0)


def test_per_cpu_values_are_lists(obj):
    total = obj.maps["total"].typed()
    obj.program().run(FRAME)
    assert total[0] == [len(FRAME)] + [0] * (obj.maps["total"].ncpu - 1)
    assert total.Key is None and total.Value is None


def test_perf_events_and_ring_buffer_records_decode_with_the_objects_types(obj):
    obj.maps["perf"].open(0)
    flows = obj.maps["flows"].typed()
    flows[flows.Key(SRC, 22, 6, 0)] = flows.Value(0, 0)
    prog = obj.program()
    verdicts = [prog.run(FRAME).verdict for _ in range(3)]
    assert verdicts == [0, 0, 2]
    events = obj.events("perf", type="struct event")
    assert [(cpu, e.verdict) for cpu, e in events] == [(0, 0), (0, 0), (0, 2)]
    assert type(events[0][1]).__name__ == "Event"
    records = obj.ringbuf("rb", type="struct event")
    assert [r.dport for r in records] == [22, 22, 22] and obj.ringbuf("rb") == []


def test_records_without_a_type_are_bytes(obj):
    obj.maps["flows"].typed()[(SRC, 22, 6, 0)] = (0, 0)
    obj.program().run(FRAME)
    assert obj.ringbuf("rb") == [SRC.to_bytes(4, "little") + (22).to_bytes(2, "little")
                                 + bytes(2)]


def test_streams_name_what_is_wrong(obj):
    with pytest.raises(pyebpf.errors.ElfError, match="map 'flows' is a BPF_MAP_TYPE_HASH, "
                                                     "not a ring buffer"):
        obj.ringbuf("flows")
    with pytest.raises(pyebpf.errors.ElfError, match="no type 'struct nope' in the object's"):
        obj.events("perf", type="struct nope")


def test_a_map_without_btf_says_how_to_type_it():
    m = pyebpf.Map.create("hash", 4, 8, 4)
    with pytest.raises(ValueError, match=r"has no BTF key and value types .*use "
                                         r"typed\(key_format, value_format\)"):
        m.typed()


def test_what_the_view_writes_is_what_the_kernel_reads(kernel_oracle, obj):
    flows = obj.maps["flows"].typed()
    key, value = flows.Key(SRC, 22, 6, 0), flows.Value(5, 100)
    flows[key] = value
    with kernel_oracle.load_object(compile_object(OBJECT)) as kobj:
        for k, v in obj.maps["flows"].items():
            kobj.maps["flows"].update(k, v)
        theirs = kobj.program("account").test_run(bytes(FRAME))
        ours = obj.program().run(FRAME)
        assert ours.retval == theirs.retval_signed
        [kernel_value] = [kobj.maps["flows"].lookup(k) for k in kobj.maps["flows"].keys()]
        assert flows[key] == flows._value.decode(kernel_value) == flows.Value(6, 100 + len(FRAME))


RESERVED_NAMES = """
struct odd { __u64 __opaque[2]; __u32 class; __u32 plain; };
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct odd);
	__uint(max_entries, 1);
} odd SEC(".maps");

SEC("tc")
int touch(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct odd *v = bpf_map_lookup_elem(&odd, &zero);
	if (v)
		v->plain++;
	return TC_ACT_OK;
}
"""


def test_members_python_cannot_name_keep_their_c_names_by_position():
    # uapi's struct bpf_timer and struct bpf_wq are { __u64 __opaque[2]; }
    obj = pyebpf.load(compile_object(RESERVED_NAMES))
    try:
        odd = obj.maps["odd"]
        odd[0] = {"__opaque": [1, 2], "class": 3, "plain": 4}
        value = odd[0]
        assert type(value).__name__ == "Odd"
        assert value._asdict() == {"__opaque": [1, 2], "class": 3, "plain": 4}
        assert (value[0], value[1], value.plain) == ([1, 2], 3, 4)
        odd[0] = value
        assert odd[0] == value
    finally:
        obj.close()
