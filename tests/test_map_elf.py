"""The newer map types and flags declared in C (libbpf's BTF map definitions: a queue, a
bloom filter with map_extra and BPF_F_ZERO_SEED, a BPF_F_RDONLY_PROG array) and the global
data maps (BPF_F_MMAPABLE as libbpf makes them), compiled with clang and loaded by
pyebpf.load and pyebpf.kernel.load_object, run alike."""
import ctypes
import errno
import mmap
import struct

import pytest

import pyebpf
import pyebpf.kernel
from pyebpf import isa
from pyebpf.errors import MapError

from bpfc import compile_object
from recorded_kernel import count_comparison

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


GLOBALS_SOURCE = """
__u32 counter;
static __u32 hits = 1;
__attribute__((visibility("hidden"))) __u32 hidden_one SEC(".data.hidden") = 3;
const volatile __u32 step = 7;
extern unsigned int LINUX_KERNEL_VERSION __kconfig;

SEC("tc")
int bump(struct __sk_buff *skb)
{
    hits++;
    hidden_one++;
    counter += step;
    return counter + hits + hidden_one + (LINUX_KERNEL_VERSION != 0);
}
char _license[] SEC("license") = "GPL";
"""
BSS_SOURCE = """
__u32 counter;

SEC("tc")
int bump(struct __sk_buff *skb)
{
    return ++counter;
}
char _license[] SEC("license") = "GPL";
"""
RW = mmap.PROT_READ | mmap.PROT_WRITE


def _kernel_map_flags(fd: int) -> int:
    """The map_flags of the kernel's struct bpf_map_info (BPF_OBJ_GET_INFO_BY_FD)."""
    from pyebpf.kernel import sysbpf
    info = ctypes.create_string_buffer(80)
    attr = ctypes.create_string_buffer(isa.BPF_ATTR_SIZE)
    struct.pack_into("<IIQ", attr, 0, fd, len(info), ctypes.addressof(info))
    _, err = sysbpf._syscall(isa.BpfCmd.BPF_OBJ_GET_INFO_BY_FD, attr)
    if err:
        raise OSError(err, f"BPF_OBJ_GET_INFO_BY_FD: {errno.errorcode[err]}")
    return struct.unpack_from("<I", info, 20)[0]


def _kernel_global_data_flags(path) -> dict:
    """The flags the kernel shows for each global data map of ``path`` loaded by libbpf
    (keyed by section: libbpf prefixes the object's name to .data, .bss, .rodata and
    .kconfig) and by pyebpf.kernel.load_object."""
    import libbpfobj
    sections = pyebpf.load(path).maps
    with libbpfobj.LoadedObject(str(path)) as lobj:
        by_libbpf = {sec: _kernel_map_flags(m.fd) for sec in sections
                     for name, m in lobj.maps.items() if name.endswith(sec)}
    with pyebpf.kernel.load_object(path) as kobj:
        by_oracle = {name: _kernel_map_flags(m.fd) for name, m in kobj.maps.items()}
    return {"libbpf": by_libbpf, "kernel.load_object": by_oracle}


def test_global_data_maps_are_mmapable_as_libbpf_makes_them(tmp_path, kernel_observation):
    """BPF_F_MMAPABLE where a map's DATASEC holds a variable neither static nor hidden
    (libbpf's map_is_mmapable): .bss, .rodata and .kconfig here; not .data (a static
    only) nor .data.hidden (an STV_HIDDEN global)."""
    path = tmp_path / "globals.o"
    path.write_bytes(compile_object(GLOBALS_SOURCE))
    theirs = kernel_observation("global data maps' flags, loaded by libbpf and by "
                                "pyebpf.kernel.load_object", "v1",
                                lambda: _kernel_global_data_flags(path))
    ours = {name: m.flags for name, m in pyebpf.load(path).maps.items()}
    count_comparison()
    assert {"libbpf": ours, "kernel.load_object": ours} == theirs


def _kernel_bss_shared(data) -> dict:
    with pyebpf.kernel.load_object(data) as kobj:
        view = mmap.mmap(kobj.maps[".bss"].fd, mmap.PAGESIZE, flags=mmap.MAP_SHARED, prot=RW)
        view[0:4] = struct.pack("<I", 41)
        retval = kobj.program("bump").test_run(bytes(64), ctx={}).retval
        seen = {"retval": retval, "counter": view[0:4].hex()}
        view.close()
        return seen


def test_a_programs_bss_mapped_is_what_the_program_reads_and_writes_as_in_the_kernel(
        kernel_observation):
    """The program reads the 41 written through the mapping of its .bss and returns 42;
    the mapping then shows the 42 it stored."""
    data = compile_object(BSS_SOURCE)
    theirs = kernel_observation("a program's .bss written and read through its mapping",
                                "v1", lambda: _kernel_bss_shared(data))
    obj = pyebpf.load(data)
    view = obj.maps[".bss"].mmap()
    view[0:4] = struct.pack("<I", 41)
    retval = obj.program("bump").run(bytes(64)).retval
    count_comparison()
    assert {"retval": retval, "counter": view[0:4].hex()} == theirs


def _kernel_mmap_errno(data, name) -> dict:
    with pyebpf.kernel.load_object(data) as kobj:
        try:
            mmap.mmap(kobj.maps[name].fd, mmap.PAGESIZE, flags=mmap.MAP_SHARED, prot=RW).close()
        except OSError as exc:
            return {"errno": errno.errorcode[exc.errno]}
        return {"errno": None}


@pytest.mark.parametrize("name", [".data", ".data.hidden"])
def test_global_data_holding_no_exposed_variable_is_not_mmapable_as_in_the_kernel(
        kernel_observation, name):
    """.data holds only a static variable, .data.hidden only an STV_HIDDEN global: the
    kernel's array_map_mmap refuses their mapping (EINVAL)."""
    data = compile_object(GLOBALS_SOURCE)
    theirs = kernel_observation("mmap of a global data map without exposed variables",
                                name, lambda: _kernel_mmap_errno(data, name))
    with pytest.raises(MapError) as refused:
        pyebpf.load(data).maps[name].mmap()
    count_comparison()
    assert {"errno": errno.errorcode[refused.value.errno]} == theirs
