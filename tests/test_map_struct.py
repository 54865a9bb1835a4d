"""A map pointer read as the kernel's struct against the kernel (check_ptr_to_map_access):
what a privileged program reads of struct bpf_map and of bpf_array's and bpf_htab's own
members through ``(struct bpf_map *)&map`` (the selftests' map_ptr_kern.c), and the
reads the verifier refuses, in the kernel's words (verifier_map_ptr.c)."""
from __future__ import annotations

import errno

import pytest
from bpfc import compile_object
from objdiff import refused_alike, same_retval
from recorded_kernel import count_comparison

import pyebpf
import pyebpf.kernel
from pyebpf.asm import assemble

PACKET = bytes(64)
# the members read, CO-RE relocated against the kernel's layout
STRUCTS = r"""
struct bpf_map {
    enum bpf_map_type map_type; __u32 key_size; __u32 value_size; __u32 max_entries;
    __u64 map_extra; __u32 map_flags; __u32 id; int numa_node; __u32 btf_key_type_id;
    __u32 btf_value_type_id; char name[16]; _Bool frozen;
} __attribute__((preserve_access_index));
struct bpf_array { struct bpf_map map; __u32 elem_size; __u32 index_mask; }
    __attribute__((preserve_access_index));
struct bpf_htab { struct bpf_map map; __u32 n_buckets; __u32 elem_size; }
    __attribute__((preserve_access_index));
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 5);
    __type(key, __u32); __type(value, char[12]);
} arr SEC(".maps");
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); __uint(max_entries, 33);
    __type(key, __u32); __type(value, __u64);
} pcpu_arr SEC(".maps");
struct {
    __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 10); __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, __u32); __type(value, char[20]);
} hash SEC(".maps");
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_HASH); __uint(max_entries, 3);
    __type(key, char[6]); __type(value, __u64);
} pcpu_hash SEC(".maps");
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH); __uint(max_entries, 64);
    __type(key, __u64); __type(value, __u32);
} lru SEC(".maps");
char LICENSE[] SEC("license") = "GPL";
"""


# maps of other kinds, kept out of the naked programs' objects below
MORE_MAPS = r"""
struct {
    __uint(type, BPF_MAP_TYPE_BLOOM_FILTER); __uint(max_entries, 16); __uint(map_extra, 3);
    __type(value, __u32);
} bloom SEC(".maps");
struct locked { struct bpf_spin_lock lock; __u32 n; };
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
    __type(key, __u32); __type(value, struct locked);
} with_lock SEC(".maps");
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
    __type(key, __u32); __type(value, __u32);
} a_map_of_a_rather_long_name SEC(".maps");
"""


def read(expr: str, maps: str = "") -> bytes:
    return compile_object(STRUCTS + maps + f"""
SEC("tc") int prog(struct __sk_buff *skb) {{ return {expr}; }}
""")


@pytest.mark.parametrize("expr, value", [
    ("((struct bpf_map *)&arr)->map_type", 2),
    ("((struct bpf_map *)&arr)->key_size", 4),
    ("((struct bpf_map *)&arr)->value_size", 12),
    ("((struct bpf_map *)&arr)->max_entries", 5),
    ("((struct bpf_map *)&hash)->map_flags", 1),
    ("((struct bpf_map *)&hash)->numa_node", -1),
    ("((struct bpf_array *)&arr)->elem_size", 16),
    ("((struct bpf_array *)&arr)->index_mask", 7),
    ("((struct bpf_array *)&pcpu_arr)->index_mask", 63),
    ("((struct bpf_htab *)&hash)->n_buckets", 16),
    ("((struct bpf_htab *)&hash)->elem_size", 48 + 8 + 24),
    ("((struct bpf_htab *)&pcpu_hash)->elem_size", 48 + 8 + 8),
    ("((struct bpf_htab *)&lru)->n_buckets", 64),
    ("((struct bpf_map *)&lru)->map_type", 9),
], ids=lambda v: v if isinstance(v, str) else None)
def test_a_map_pointer_reads_as_the_kernels_struct(expr, value):
    assert same_retval(read(expr), PACKET) & 0xFFFFFFFF == value & 0xFFFFFFFF


def _name_word(m: str, k: int) -> str:
    return f"*(__u32 *)&((struct bpf_map *)&{m})->name[{4 * k}]"


@pytest.mark.parametrize("expr, value", [
    ("((struct bpf_map *)&bloom)->map_extra", 3),
    ("((struct bpf_map *)&arr)->map_extra", 0),
    ("((struct bpf_map *)&arr)->frozen", 0),
    ("((struct bpf_map *)&arr)->btf_key_type_id", 0),
    ("((struct bpf_map *)&arr)->btf_value_type_id", 0),
    ("((struct bpf_map *)&with_lock)->btf_key_type_id != 0", 1),
    ("((struct bpf_map *)&with_lock)->btf_value_type_id != 0", 1),
    *[(_name_word("pcpu_hash", k), int.from_bytes(b"pcpu_hash".ljust(16, b"\0")[4 * k:4 * k + 4],
                                                  "little")) for k in range(4)],
    # bpf_obj_name_cpy keeps 15 bytes (libbpf, and load_object, cut the rest) and the NUL
    *[(_name_word("a_map_of_a_rather_long_name", k),
       int.from_bytes(b"a_map_of_a_rath\0"[4 * k:4 * k + 4], "little")) for k in range(4)],
], ids=lambda v: v if isinstance(v, str) else None)
def test_struct_bpf_maps_name_extra_and_btf_ids_read_as_the_kernels(expr, value):
    """map_extra as created; the name as the kernel keeps it; the BTF type ids of a map
    created with its BTF, which pyebpf.kernel.load_object passes only for a value with
    fields the kernel finds through it (a bpf_spin_lock here; libbpf passes it for every
    map that names its types), 0 without."""
    assert same_retval(read(expr, MORE_MAPS), PACKET) & 0xFFFFFFFF == value & 0xFFFFFFFF


def test_the_btf_value_type_id_is_the_objects_type_id_of_the_value():
    data = read("((struct bpf_map *)&with_lock)->btf_value_type_id", MORE_MAPS)
    obj = pyebpf.load(data)
    try:
        assert same_retval(data, PACKET) == obj.maps["with_lock"].value_type.id
    finally:
        obj.close()


def test_a_maps_id_is_non_zero_and_pyebpfs_is_map_id():
    """The kernel's id is the next free one of every map it has, which pyebpf cannot
    know: both read a non-zero id, and pyebpf's is the Map's ``id``."""
    data = read("((struct bpf_map *)&hash)->id")
    with pyebpf.kernel.load_object(data) as kobj:
        theirs = kobj.program("prog").test_run(PACKET).retval
    obj = pyebpf.load(data)
    try:
        ours = obj.program("prog").run(PACKET).retval
        assert theirs != 0 and ours == obj.maps["hash"].id != 0
    finally:
        obj.close()
    count_comparison()


ASM = STRUCTS + r"""
SEC("tc") __attribute__((naked)) int prog(struct __sk_buff *skb)
{
    asm volatile ("%s" :: __imm_addr(arr) : "memory");
}
"""


def asm(body: str) -> bytes:
    """The program of the instructions ``body`` (separated by "; "), %[arr] the map."""
    return compile_object(ASM.replace("__imm_addr(arr)", '[arr] "i"(&arr)')
                          % body.replace("; ", "\\n"))


@pytest.mark.parametrize("body, message", [
    ("r1 = %[arr] ll; r6 = *(u64 *)(r1 - 8); r0 = 1; exit;",
     "R1 is bpf_array invalid negative access: off=-8"),
    ("r2 = 0; r1 = %[arr] ll; *(u64 *)(r1 + 0) = r2; r0 = 1; exit;",
     "only read from bpf_array is supported"),
    ("r1 = %[arr] ll; r6 = *(u32 *)(r1 + 41); r0 = 1; exit;",
     "cannot access ptr member ops with moff 40 in struct bpf_map with off 41 size 4"),
    ("r1 = %[arr] ll; r6 = *(u32 *)(r1 + 312); r0 = 1; exit;",
     "access beyond struct bpf_array at off 312 size 4"),
], ids=["negative-offset", "write", "inside-a-pointer", "past-the-end"])
def test_a_map_pointer_read_is_refused_as_the_kernel_refuses_it(body, message):
    refused_alike(asm(body), message)


def test_a_pointer_member_read_through_a_map_pointer_loads_as_in_the_kernel():
    """bpf_map's ops, at 40 since 6.18 put the map's SHA-256 (sha[32], zero here: no
    hash was asked for) and excl before it, where the selftest reads at 0."""
    assert same_retval(asm("r1 = %[arr] ll; r6 = *(u64 *)(r1 + 40); r0 = 1; exit;"),
                       PACKET) == 1


def test_the_maps_hash_reads_zero_as_in_the_kernel():
    assert same_retval(asm("r1 = %[arr] ll; r0 = *(u32 *)(r1 + 1); exit;"), PACKET) == 0


def test_map_ids_number_maps_alone_and_are_never_given_twice():
    """bpf_map_alloc_id: the next id of the maps' own numbering (map_idr), whatever
    programs were made between, and a closed map's id is not given again."""
    first = pyebpf.Map.create("array", 4, 4, 1)
    pyebpf.Program(b"\xb7\x00\x00\x00\x00\x00\x00\x00\x95\x00\x00\x00\x00\x00\x00\x00",
                   "sched_cls")
    second = pyebpf.Map.create("hash", 4, 4, 1)
    closed = second.id
    del second
    third = pyebpf.Map.create("array", 4, 4, 1)
    assert (closed, third.id) == (first.id + 1, first.id + 2)


def test_a_refused_program_takes_no_id():
    """bpf_prog_load allocates the id after bpf_check passes: the programs loaded either
    side of a refused one have consecutive ids."""
    first = pyebpf.Program(assemble("r0 = 0\nexit"), "sched_cls")
    with pytest.raises(pyebpf.errors.VerifierError):
        pyebpf.Program(assemble("exit"), "sched_cls")
    second = pyebpf.Program(assemble("r0 = 0\nexit"), "sched_cls")
    assert second.id == first.id + 1


def test_a_refused_map_takes_no_id():
    """map_create allocates the id once the map is made and its BTF checked."""
    first = pyebpf.Map.create("array", 4, 4, 1)
    with pytest.raises(pyebpf.errors.MapError):
        pyebpf.Map.create("array", 4, 4, 1, flags=0x12345)
    second = pyebpf.Map.create("array", 4, 4, 1)
    assert second.id == first.id + 1


ORDERED = r"""
SEC("socket") int zeta(struct __sk_buff *s) { return 1; }
SEC("tc") int alpha(struct __sk_buff *s) { return 2; }
SEC("socket") int beta(struct __sk_buff *s) { return 3; }
SEC("classifier") int gamma(struct __sk_buff *s) { return 4; }
char _license[] SEC("license") = "GPL";
"""


def _kernel_load_order(tmp_path):
    import ctypes
    import struct

    import libbpfobj

    from pyebpf import isa
    from pyebpf.kernel import sysbpf
    path = tmp_path / "ordered.o"
    path.write_bytes(compile_object(ORDERED))
    ids = {}
    with libbpfobj.LoadedObject(str(path)) as loaded:
        for name, prog in loaded.programs.items():
            info = ctypes.create_string_buffer(80)
            attr = ctypes.create_string_buffer(isa.BPF_ATTR_SIZE)
            struct.pack_into("<IIQ", attr, 0, prog.fd, len(info), ctypes.addressof(info))
            assert sysbpf._syscall(isa.BpfCmd.BPF_OBJ_GET_INFO_BY_FD, attr)[1] == 0
            ids[name] = struct.unpack_from("<I", info, 4)[0]      # bpf_prog_info.id
    # other processes may load programs meanwhile: the order is what is compared
    return {"programs by id": sorted(ids, key=ids.get)}


def test_an_objects_programs_take_ids_in_libbpfs_load_order(kernel_observation, tmp_path):
    """libbpf loads an object's programs by section, in the order the sections appear,
    then by offset: their ids, increasing, follow that order."""
    theirs = kernel_observation("program ids of an object's programs", "v1",
                                lambda: _kernel_load_order(tmp_path))
    obj = pyebpf.load(compile_object(ORDERED), pin=False)
    try:
        ids = {name: obj.program(name).id for name in ("zeta", "alpha", "beta", "gamma")}
    finally:
        obj.close()
    count_comparison()
    assert {"programs by id": sorted(ids, key=ids.get)} == theirs


def _walk(cmd):
    """Every id BPF_*_GET_NEXT_ID gives, from 0 to ENOENT."""
    ids, attr = [], {"start_id": 0}
    while True:
        try:
            pyebpf.bpf(cmd, attr)
        except pyebpf.errors.BpfError as exc:
            assert exc.errno == errno.ENOENT
            return ids
        ids.append(attr["next_id"])
        attr = {"start_id": attr["next_id"]}


@pytest.mark.parametrize("cmd", ["BPF_PROG_GET_NEXT_ID", "BPF_MAP_GET_NEXT_ID"])
def test_get_next_id_walks_the_live_ids_in_increasing_order(cmd):
    """bpf_obj_get_next_id: idr_get_next from start_id + 1, over live objects only."""
    if cmd == "BPF_PROG_GET_NEXT_ID":
        made = [pyebpf.Program(assemble("r0 = 0\nexit"), "sched_cls") for _ in range(3)]
    else:
        made = [pyebpf.Map.create("array", 4, 4, 1) for _ in range(3)]
    gone = made.pop(1)
    if cmd == "BPF_MAP_GET_NEXT_ID":
        gone.close()        # its handle held it, as an open fd holds the kernel's map
    gone = gone.id
    walked = _walk(cmd)
    assert ([o.id for o in made if o.id in walked], gone in walked, walked == sorted(walked)) \
        == ([o.id for o in made], False, True)


NEXT_ID_REFUSALS = {"start-at-int-max": 0x7FFFFFFF, "start-past-every-id": 0x7FFFFFFE}


def _kernel_next_id(cmd, start):
    from pyebpf.kernel.sysbpf import _Attr
    return {"errno": _Attr(cmd, start_id=start).call()[1]}


@pytest.mark.parametrize("cmd", ["BPF_PROG_GET_NEXT_ID", "BPF_MAP_GET_NEXT_ID"])
@pytest.mark.parametrize("case", NEXT_ID_REFUSALS)
def test_get_next_id_refuses_as_the_kernel_does(kernel_observation, cmd, case):
    from pyebpf import isa
    start = NEXT_ID_REFUSALS[case]
    theirs = kernel_observation("BPF_*_GET_NEXT_ID refusals", f"{cmd} {case}",
                                lambda: _kernel_next_id(isa.BpfCmd[cmd], start))
    with pytest.raises(pyebpf.errors.BpfError) as exc:
        pyebpf.bpf(cmd, {"start_id": start})
    count_comparison()
    assert {"errno": exc.value.errno} == theirs


def test_each_machine_numbers_its_maps_from_one():
    """One map_idr per kernel: a Machine's maps are numbered by it alone, from 1,
    whatever maps the process or another machine made."""
    from pyebpf.trace import Machine
    one, other = Machine(), Machine()
    pyebpf.Map.create("array", 4, 4, 1)
    first = pyebpf.Map.create("array", 4, 4, 1, machine=one)
    theirs = pyebpf.Map.create("hash", 4, 4, 1, machine=other)
    second = pyebpf.Map.create("hash", 4, 4, 1, machine=one)
    assert (first.id, second.id, theirs.id) == (1, 2, 1)


def test_a_program_reads_the_id_its_machine_gave_the_map():
    from pyebpf.trace import Machine
    machine = Machine(map_ids=pyebpf.MapIds(next=1000))
    obj = pyebpf.load(read("((struct bpf_map *)&hash)->id"), machine=machine)
    try:
        ours = obj.program("prog").run(PACKET).retval
        assert (ours, obj.maps["hash"].id) == (1000 + list(obj.maps).index("hash"),) * 2
    finally:
        obj.close()


def test_map_ids_go_round_to_one_after_int_max_less_one():
    """idr_alloc_cyclic(&map_idr, map, 1, INT_MAX): ids in [1, INT_MAX), the search
    from one past the last id given, round to 1 after INT_MAX - 1."""
    from pyebpf.trace import Machine
    machine = Machine(map_ids=pyebpf.MapIds(next=0x7FFFFFFE))
    ids = [pyebpf.Map.create("array", 4, 4, 1, machine=machine).id for _ in range(3)]
    assert ids == [0x7FFFFFFE, 1, 2]


@pytest.mark.parametrize("next", [0, 0x7FFFFFFF])
def test_map_ids_start_inside_the_idrs_range(next):
    with pytest.raises(ValueError, match=f"MapIds: next is 1 to 2147483646, not {next}"):
        pyebpf.MapIds(next=next)


def test_a_map_made_on_something_else_than_a_machine_is_refused():
    with pytest.raises(TypeError, match="machine must be a pyebpf.trace.Machine, not dict"):
        pyebpf.Map.create("array", 4, 4, 1, machine={})


def test_tcsims_maps_take_the_ids_of_its_env_machine(tmp_path):
    """tcsim --env with tasks: the file's machine numbers the replay's maps, from 1,
    whatever maps the process made before."""
    import json

    from pyebpf.pcap import pcapio, tcsim
    from pyebpf.trace import Machine
    pyebpf.Map.create("array", 4, 4, 1)
    data = compile_object(STRUCTS + r"""
SEC("tc") int prog(struct __sk_buff *skb)
{
    __u32 zero = 0;
    char *v = bpf_map_lookup_elem(&arr, &zero);
    if (v)
        *(__u32 *)v = ((struct bpf_map *)&hash)->id;
    return 0;
}
""")
    (tmp_path / "id.o").write_bytes(data)
    fresh = pyebpf.load(data, machine=Machine())
    want = fresh.maps["hash"].id
    fresh.close()
    (tmp_path / "env.toml").write_text("[[tasks]]\npid = 4242\n")
    pcapio.write(tmp_path / "one.pcap", [(0, PACKET, len(PACKET))])
    rc = tcsim.main([str(tmp_path / "id.o") + ":prog", "-r", str(tmp_path / "one.pcap"),
                     "-q", "--env", str(tmp_path / "env.toml"),
                     "--dump-maps", str(tmp_path / "maps")])
    assert rc == 0
    entries = json.loads((tmp_path / "maps" / "arr.json").read_text())["entries"]
    value = bytes.fromhex(entries[0]["value"])
    assert int.from_bytes(value[:4], "little") == want <= len(fresh.maps)
