"""The newer map types and flags declared in C (libbpf's BTF map definitions: a queue, a
bloom filter with map_extra and BPF_F_ZERO_SEED, a BPF_F_RDONLY_PROG array), compiled
with clang and loaded by pyebpf.load and pyebpf.kernel.load_object, run alike."""
import struct

import pytest

import pyebpf
import pyebpf.kernel
from pyebpf import isa

from bpfc import compile_object

SOURCE = """
struct { __uint(type, BPF_MAP_TYPE_QUEUE); __type(value, __u32); __uint(max_entries, 3); } recent SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_BLOOM_FILTER); __type(value, __u32); __uint(max_entries, 64);
         __uint(map_extra, 3); __uint(map_flags, BPF_F_ZERO_SEED); } seen SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __type(key, __u32); __type(value, __u32);
         __uint(max_entries, 1); __uint(map_flags, BPF_F_RDONLY_PROG); } cfg SEC(".maps");

SEC("classifier")
int track(struct __sk_buff *skb)
{
    __u32 mark = skb->mark, key = 0, oldest = 0;
    __u32 *c = bpf_map_lookup_elem(&cfg, &key);
    int r = 0;

    if (bpf_map_peek_elem(&seen, &mark) == 0)
        r |= 1;
    bpf_map_push_elem(&seen, &mark, 0);
    if (bpf_map_push_elem(&recent, &mark, BPF_EXIST) == 0)
        r |= 2;
    if (bpf_map_peek_elem(&recent, &oldest) == 0)
        r |= (oldest & 0xff) << 8;
    if (c)
        r |= (*c & 0xff) << 16;
    return r;
}
char _license[] SEC("license") = "GPL";
"""


@pytest.mark.parametrize("flags", [("-O2",), ("-O1",)], ids=["O2", "O1"])
def test_a_queue_a_bloom_filter_and_a_read_only_array_run_as_in_the_kernel(flags):
    data = compile_object(SOURCE, flags=flags)
    obj, kobj = pyebpf.load(data), pyebpf.kernel.load_object(data)
    with kobj:
        for m in (obj.maps["cfg"], kobj.maps["cfg"]):
            m.update(struct.pack("<I", 0), struct.pack("<I", 0x42))
        for mark in (5, 6, 5, 7, 8, 9, 6):
            ours = obj.program("track").run(bytes(64), mark=mark)
            theirs = kobj.program("track").test_run(bytes(64), ctx={"mark": mark})
            assert ours.retval & 0xFFFFFFFF == theirs.retval, f"mark {mark}"
        left = [obj.maps["recent"].lookup_and_delete(b"") for _ in range(4)]
        assert left == [kobj.maps["recent"].lookup_and_delete(b"") for _ in range(4)]
    assert obj.maps["seen"].map_extra == 3
    assert obj.maps["seen"].flags == isa.BPF_F_ZERO_SEED


PERF_SOURCE = """
struct { __uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY); __uint(key_size, 4); __uint(value_size, 4); } events SEC(".maps");

SEC("classifier")
int report(struct __sk_buff *skb)
{
    __u32 len = skb->len;

    bpf_perf_event_output(skb, &events, BPF_F_CURRENT_CPU, &len, sizeof(len));
    return 0;
}
char _license[] SEC("license") = "GPL";
"""


def test_a_perf_event_array_declared_without_max_entries_gets_a_slot_per_cpu(tmp_path):
    # libbpf's map_set_def_max_entries: the usual way to declare a perf buffer
    path = tmp_path / "perf.o"
    path.write_bytes(compile_object(PERF_SOURCE))
    obj = pyebpf.load(path)
    assert obj.maps["events"].max_entries == pyebpf.host.map_cpus()
    assert obj.programs["report"].run(bytes(60)).retval == 0


def test_a_perf_event_array_without_max_entries_is_as_large_as_libbpf_makes_it(tmp_path,
                                                                                live_kernel):
    _sized_as_libbpf_sizes_it(tmp_path / "perf.o", PERF_SOURCE)


RINGBUF_SOURCE = """
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, %d); } events SEC(".maps");

SEC("classifier")
int report(struct __sk_buff *skb)
{
    __u32 len = skb->len;

    bpf_ringbuf_output(&events, &len, sizeof(len), 0);
    return 0;
}
char _license[] SEC("license") = "GPL";
"""


@pytest.mark.parametrize("asked,made", [(1000, 4096), (4096, 4096), (3 * 4096, 4 * 4096),
                                        (256 * 1024, 256 * 1024)])
def test_a_ring_buffer_is_made_the_least_power_of_2_pages_holding_its_size(tmp_path, asked,
                                                                          made):
    # libbpf's adjust_ringbuf_sz: the kernel takes only power-of-2 multiples of a page
    path = tmp_path / "ring.o"
    path.write_bytes(compile_object(RINGBUF_SOURCE % asked))
    assert pyebpf.load(path).maps["events"].max_entries == made


@pytest.mark.parametrize("asked", [1000, 3 * 4096])
def test_a_ring_buffer_is_as_large_as_libbpf_makes_it(tmp_path, asked, live_kernel):
    _sized_as_libbpf_sizes_it(tmp_path / "ring.o", RINGBUF_SOURCE % asked)


def _sized_as_libbpf_sizes_it(path, source):
    """pyebpf.load and the kernel oracle make the map "events" of ``source`` as large as
    libbpf makes it."""
    import libbpfobj
    path.write_bytes(compile_object(source))
    with libbpfobj.LoadedObject(str(path)) as lobj:
        libbpf_entries = lobj.maps["events"].max_entries
    with pyebpf.kernel.load_object(path) as kobj:
        oracle_entries = kobj.maps["events"].max_entries
    assert (pyebpf.load(path).maps["events"].max_entries, oracle_entries) == \
        (libbpf_entries, libbpf_entries)
