"""BPF_MAP_TYPE_ARENA: creating one (arena_map_alloc's rules), its pages as user space
maps them, and programs reaching them.

The kernel is the oracle where it creates arenas; the machine these tests were written
on refuses every BPF_MAP_CREATE of an arena with EPERM (docs/reference.md, Arenas), so
the expected values are kernel/bpf/arena.c's of 6.18 (source-read), and the test that
asks the kernel skips with the reason it printed.
"""
import errno

import pytest

from pyebpf import Map
from pyebpf.errors import KernelError, MapError
from pyebpf.isa import BPF_F_MMAPABLE, BPF_F_NO_USER_CONV, BPF_F_SEGV_ON_FAULT, PAGE_SIZE

from mapcheck import created


def arena(pages=4, flags=BPF_F_MMAPABLE, map_extra=0, key_size=0, value_size=0):
    return Map.create("arena", key_size, value_size, pages, flags=flags, map_extra=map_extra)


# --- BPF_MAP_CREATE -----------------------------------------------------------------

# (what, key_size, value_size, max_entries, flags, map_extra, errno) as arena_map_alloc
# refuses them, in its order
REFUSED = [
    ("a key", 4, 0, 4, BPF_F_MMAPABLE, 0, errno.EINVAL),
    ("a value", 0, 8, 4, BPF_F_MMAPABLE, 0, errno.EINVAL),
    ("no pages", 0, 0, 0, BPF_F_MMAPABLE, 0, errno.EINVAL),
    ("no BPF_F_MMAPABLE", 0, 0, 4, 0, 0, errno.EINVAL),
    ("another flag", 0, 0, 4, BPF_F_MMAPABLE | 1, 0, errno.EINVAL),
    ("map_extra not page-aligned", 0, 0, 4, BPF_F_MMAPABLE, 0x1000_0010, errno.EINVAL),
    ("more than 4 GiB", 0, 0, (1 << 20) + 1, BPF_F_MMAPABLE, 0, errno.E2BIG),
    ("a range across 4 GiB", 0, 0, 4, BPF_F_MMAPABLE, (1 << 32) - PAGE_SIZE, errno.ERANGE),
]


@pytest.mark.parametrize("what,key,value,pages,flags,extra,expected", REFUSED,
                         ids=[r[0] for r in REFUSED])
def test_create_refuses_as_arena_map_alloc(what, key, value, pages, flags, extra, expected):
    assert created(Map.create, "arena", key, value, pages, flags, "", None, None,
                   extra) == expected


@pytest.mark.parametrize("flags", [BPF_F_MMAPABLE, BPF_F_MMAPABLE | BPF_F_SEGV_ON_FAULT,
                                   BPF_F_MMAPABLE | BPF_F_NO_USER_CONV])
def test_create_takes_the_arena_flags(flags):
    assert arena(flags=flags).flags == flags


def test_a_4_gib_arena_is_created():
    assert len(arena(pages=1 << 20).mmap()) == 1 << 32


def test_the_kernel_creates_an_arena_where_it_allows_one(kernel_oracle):
    try:
        kernel_oracle.KernelMap("arena", 0, 0, 4, BPF_F_MMAPABLE).close()
    except KernelError as exc:
        if exc.errno == errno.EPERM:
            pytest.skip(f"this kernel refuses arenas: {exc}")
        raise
    assert created(arena) == "ok"


# --- the address and user space's mapping ---------------------------------------------

def test_user_vm_start_is_map_extra():
    assert arena(map_extra=0x3_0000_0000).user_vm_start == 0x3_0000_0000


def test_a_chosen_start_keeps_the_pages_in_one_4_gib_window():
    a = arena(pages=1 << 19)
    start = a.user_vm_start
    assert start % PAGE_SIZE == 0
    assert start >> 32 == (start + (1 << 19) * PAGE_SIZE - 1) >> 32


def test_the_mapping_is_every_page_zero():
    view = arena(pages=3).mmap()
    assert len(view) == 3 * PAGE_SIZE and bytes(view) == bytes(3 * PAGE_SIZE)


def test_other_maps_have_no_user_vm_start():
    assert Map.create("array", 4, 4, 1).user_vm_start is None


def test_map_extra_of_another_map_is_refused():
    with pytest.raises(MapError) as exc:
        Map.create("array", 4, 4, 1, map_extra=PAGE_SIZE)
    assert exc.value.errno == errno.EINVAL


# --- a program's accesses (BPF_PROBE_MEM32) -------------------------------------------

def _unverified(arena_map, body):
    """A socket filter that names the arena (so it is one of its maps), r1 = its first
    page, then ``body``; unverified, as the accesses need no verifier to run."""
    from pyebpf import Program
    start = arena_map.user_vm_start
    return Program.from_asm(f"r2 = map_fd({arena_map.fd:#x}) ll\n"
                            f"r1 = {start:#x} ll\n{body}\nexit", "socket_filter",
                            verify=False)


def test_a_load_from_a_page_user_space_wrote_reads_it():
    a = arena()
    view = a.mmap()
    view[PAGE_SIZE + 8:PAGE_SIZE + 16] = (0x11223344).to_bytes(8, "little")
    prog = _unverified(a, "r0 = *(u64 *)(r1 + 4104)")
    assert prog.run(bytes(64)).retval == 0x11223344


def test_a_load_from_a_page_not_allocated_reads_zero():
    prog = _unverified(arena(), "r0 = 7\nr0 = *(u64 *)(r1 + 8)")
    assert prog.run(bytes(64)).retval == 0


def test_a_store_to_a_page_not_allocated_is_dropped():
    a = arena()
    prog = _unverified(a, "r3 = 5\n*(u64 *)(r1 + 0) = r3\nr0 = *(u64 *)(r1 + 0)")
    assert prog.run(bytes(64)).retval == 0
    assert bytes(a.mmap()[:8]) == bytes(8)


def test_a_store_to_an_allocated_page_is_seen_by_user_space():
    a = arena()
    view = a.mmap()
    view[0] = 0                                  # user space's touch allocates page 0
    prog = _unverified(a, "r3 = 5\n*(u64 *)(r1 + 16) = r3\nr0 = 0")
    prog.run(bytes(64))
    assert view[16] == 5


def test_only_the_low_32_bits_of_an_address_count():
    a = arena()
    a.mmap()[0:8] = (42).to_bytes(8, "little")
    low = a.user_vm_start & 0xFFFF_FFFF
    prog = _unverified(a, f"r1 = {low:#x} ll\nr0 = *(u64 *)(r1 + 0)")
    assert prog.run(bytes(64)).retval == 42


# --- the element commands (arena.c's map ops) -----------------------------------------

@pytest.mark.parametrize("command,args,expected", [
    ("lookup", (b"",), errno.EINVAL), ("update", (b"", b""), errno.EOPNOTSUPP),
    ("delete", (b"",), errno.EOPNOTSUPP), ("next_key", (None,), errno.EOPNOTSUPP)])
def test_the_element_commands_are_refused(command, args, expected):
    with pytest.raises(MapError) as exc:
        getattr(arena(), command)(*args)
    assert exc.value.errno == expected


# --- C programs: __arena globals, as libbpf loads them ---------------------------------

ARENA_PRELUDE = """
#define __arena __attribute__((address_space(1)))
struct {
    __uint(type, 33 /* BPF_MAP_TYPE_ARENA */);
    __uint(map_flags, BPF_F_MMAPABLE);
    __uint(max_entries, 4);
} arena SEC(".maps");
"""

COUNTERS = ARENA_PRELUDE + """
struct slot { __u64 hits; __u32 len; };
struct slot __arena slots[16];
__u64 __arena total;

SEC("tc") int count(struct __sk_buff *skb)
{
    __u32 i = skb->len & 15;
    slots[i].hits++;
    slots[i].len = skb->len;
    total += skb->len;
    return 0;
}
"""

# a list in the arena, its nodes from a pool there: each run pushes a node and sums
# the list through the pointers stored in the arena (address space 1: the compiler
# casts them to user addresses when it stores them and back when it follows them)
LIST = ARENA_PRELUDE + """
struct node { struct node __arena *next; __u64 value; };
struct state { struct node pool[32]; struct node __arena *head; __u32 used; __u64 sum; };
struct state __arena st;

SEC("tc") int push_and_sum(struct __sk_buff *skb)
{
    __u32 i = st.used;
    struct node __arena *n;
    __u64 sum = 0;
    int k;

    if (i >= 32)
        return 0;
    n = &st.pool[i];
    st.used = i + 1;
    n->value = skb->len;
    n->next = st.head;
    st.head = n;
    n = st.head;
    for (k = 0; k < 32 && n; k++) {
        sum += n->value;
        n = n->next;
    }
    st.sum = sum;
    return 0;
}
"""


def _load(source, tmp_path):
    import pyebpf
    from bpfc import compile_object
    path = tmp_path / "arena.o"
    path.write_bytes(compile_object(source))
    return pyebpf.load(str(path), pin=False)


def test_arena_globals_are_counted_as_the_c_code_counts(tmp_path):
    import struct
    obj = _load(COUNTERS, tmp_path)
    lengths = [60, 61, 60, 75, 1500]
    for n in lengths:
        obj.programs["count"].run(bytes(n))
    view = obj.maps["arena"].mmap()
    want = {i: [0, 0] for i in range(16)}
    for n in lengths:
        want[n & 15][0] += 1
        want[n & 15][1] = n
    assert {i: list(struct.unpack_from("<QI", view, 16 * i)) for i in range(16)} == want
    assert struct.unpack_from("<Q", view, 256)[0] == sum(lengths)


def test_a_list_in_the_arena_is_walked_through_its_user_addresses(tmp_path):
    import struct
    obj = _load(LIST, tmp_path)
    arena_map = obj.maps["arena"]
    for n in (60, 70, 80):
        obj.programs["push_and_sum"].run(bytes(n))
    view = arena_map.mmap()
    head, used, total = struct.unpack_from("<QIxxxxQ", view, 32 * 16)
    assert (used, total) == (3, 210)
    # cast_user: the pointer stored is the user address of pool[2]
    assert head == arena_map.user_vm_start + 2 * 16
    assert struct.unpack_from("<Q", view, 2 * 16)[0] == arena_map.user_vm_start + 16


def test_the_arena_globals_start_the_arena(tmp_path):
    obj = _load(COUNTERS, tmp_path)
    obj.programs["count"].run(bytes(60))
    assert obj.maps["arena"].mmap()[12 * 16] == 1


# --- the verifier's refusals (check_alu_op, add_used_map) -----------------------------

def _refusal(text):
    from pyebpf import Program
    from pyebpf.errors import VerifierError
    with pytest.raises(VerifierError) as exc:
        Program.from_asm(text, "sched_cls")
    return str(exc.value)


def test_a_cast_without_an_arena_is_refused():
    assert _refusal("r2 = addr_space_cast(r1, 0x0, 0x1)\nr0 = 0\nexit").endswith(
        "addr_space_cast insn can only be used in a program that has an associated arena")


@pytest.mark.parametrize("spaces", ["0x0, 0x2", "0x1, 0x1", "0x2, 0x0"])
def test_a_cast_between_other_address_spaces_is_refused(spaces):
    a = arena()
    text = f"r3 = map_fd({a.fd:#x}) ll\nr2 = addr_space_cast(r1, {spaces})\nr0 = 0\nexit"
    assert _refusal(text).endswith(
        "addr_space_cast insn can only convert between address space 1 and 0")


def test_a_second_arena_is_refused():
    a, b = arena(), arena()
    text = f"r2 = map_fd({a.fd:#x}) ll\nr3 = map_fd({b.fd:#x}) ll\nr0 = 0\nexit"
    assert _refusal(text).endswith("Only one arena per program")


def test_a_load_through_a_cast_pointer_is_accepted_unchecked():
    from pyebpf import Program
    a = arena()
    a.mmap()[8] = 9
    prog = Program.from_asm(f"r3 = map_fd({a.fd:#x}) ll\nr1 = {a.user_vm_start:#x} ll\n"
                            "r2 = addr_space_cast(r1, 0x0, 0x1)\n"
                            "r0 = *(u64 *)(r2 + 8)\nexit", "sched_cls")
    assert prog.run(bytes(60)).retval == 9


def _through_cast(a, body, prog_type="sched_cls", **kwargs):
    from pyebpf import Program
    return Program.from_asm(f"r3 = map_fd({a.fd:#x}) ll\nr1 = {a.user_vm_start:#x} ll\n"
                            f"r2 = addr_space_cast(r1, 0x0, 0x1)\n{body}", prog_type,
                            **kwargs)


def test_an_arena_pointer_spilled_and_filled_stays_one():
    a = arena()
    a.mmap()[0] = 5
    prog = _through_cast(a, "*(u64 *)(r10 - 8) = r2\nr4 = *(u64 *)(r10 - 8)\n"
                            "r0 = *(u64 *)(r4 + 0)\nexit")
    assert prog.run(bytes(60)).retval == 5


def test_an_atomic_through_an_arena_pointer_is_unchecked():
    a = arena()
    a.mmap()[0] = 5
    prog = _through_cast(a, "r5 = 3\nlock *(u64 *)(r2 + 1) += r5\nr0 = 0\nexit")
    prog.run(bytes(60))
    assert a.mmap()[1] == 3


def test_an_arena_pointer_is_no_helper_memory():
    from pyebpf.errors import VerifierError
    with pytest.raises(VerifierError) as exc:
        _through_cast(arena(), "r1 = r2\nr2 = 8\nr3 = 0\ncall bpf_probe_read_kernel\n"
                               "r0 = 0\nexit")
    assert "R1 type=arena expected=fp" in str(exc.value)


def test_the_jit_runs_the_arena_list_as_the_interpreter_does(tmp_path):
    import struct
    from pyebpf import jit
    if not jit.available():
        pytest.skip("llvmlite is not installed (pip install 'pyebpf[jit]')")
    obj = _load(LIST, tmp_path)
    prog = obj.programs["push_and_sum"]
    jit.compile(prog)
    assert prog.jitted
    for n in (60, 70, 80):
        prog.run(bytes(n))
    view = obj.maps["arena"].mmap()
    assert struct.unpack_from("<QIxxxxQ", view, 32 * 16) == (
        obj.maps["arena"].user_vm_start + 2 * 16, 3, 210)


def test_a_user_touch_of_a_page_not_allocated_is_sigsegv_with_segv_on_fault():
    import signal
    import subprocess
    import sys
    from conftest import child_python
    env, cwd = child_python()
    code = ("from pyebpf import Map\n"
            f"a = Map.create('arena', 0, 0, 2, flags={BPF_F_MMAPABLE | BPF_F_SEGV_ON_FAULT})\n"
            "a.mmap()[0]\n")
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd,
                          capture_output=True)
    assert done.returncode == -signal.SIGSEGV


def test_ulong_map_extra_asks_for_the_arenas_address(tmp_path):
    # bpf_helpers.h's __ulong (libbpf 1.4 on): an enum of one member, the value
    ulong = ("#define __cat(a, b) a ## b\n#define __uniq(n) __cat(__unique_value, n)\n"
             "#define __ulong(name, val) enum { __uniq(__COUNTER__) = val } name\n")
    source = ulong + COUNTERS.replace("__uint(max_entries, 4);",
                                      "__uint(max_entries, 4);\n    __ulong(map_extra, 2ull << 40);")
    arena_map = _load(source, tmp_path).maps["arena"]
    assert arena_map.map_extra == arena_map.user_vm_start == 2 << 40


def test_an_arena_is_not_pinned():
    from pyebpf.errors import PinError
    with pytest.raises(PinError) as exc:
        arena().pin("arena-not-pinned")
    assert exc.value.errno == errno.EOPNOTSUPP


def test_64_bit_arithmetic_on_an_arena_pointer_keeps_32_bits():
    # needs_zext: the kernel runs the ALU64 op as its ALU32 form
    # (the pointer is stored in the arena and loaded back as a scalar to be looked at)
    a = arena()
    a.mmap()[0] = 0
    prog = _through_cast(a, "r3 = 0x100000008 ll\nr2 += r3\n*(u64 *)(r2 + 0) = r2\n"
                            "r0 = *(u64 *)(r2 + 0)\nr0 >>= 32\nexit")
    assert prog.run(bytes(60)).retval == 0


# a hash table in the arena (open addressing, linear probing), as arena_htab.c keeps one:
# each run counts its packet's length under that key
HTAB = ARENA_PRELUDE + """
#define BUCKETS 64
struct bucket { __u32 key; __u32 used; __u64 count; };
struct bucket __arena table[BUCKETS];

static __always_inline __u32 hash(__u32 key) { return (key * 2654435761u) >> 26; }

SEC("tc") int count_lengths(struct __sk_buff *skb)
{
    __u32 key = skb->len, i = hash(key), n;
    struct bucket __arena *b;

    for (n = 0; n < BUCKETS; n++, i = (i + 1) & (BUCKETS - 1)) {
        b = &table[i];
        if (b->used && b->key != key)
            continue;
        b->used = 1;
        b->key = key;
        b->count++;
        return 0;
    }
    return 2;
}
"""


def test_a_hash_table_in_the_arena_counts_as_the_c_code_counts(tmp_path):
    import collections
    import struct
    obj = _load(HTAB, tmp_path)
    lengths = [60, 64, 60, 1500, 128, 60, 64, 99, 1500]
    for n in lengths:
        assert obj.programs["count_lengths"].run(bytes(n)).retval == 0
    view = obj.maps["arena"].mmap()
    table = [struct.unpack_from("<IIQ", view, 16 * i) for i in range(64)]
    counted = {key: count for key, used, count in table if used}
    assert counted == collections.Counter(lengths)
    # each key where the C code's probe from its hash finds it first
    for key in counted:
        i = ((key * 2654435761) & 0xFFFFFFFF) >> 26
        while table[i][0] != key:
            assert table[i][1]
            i = (i + 1) % 64


def test_the_log_prints_an_arena_pointer_as_its_type_and_the_cast_as_the_kernel_does():
    from pyebpf import asm, isa, verifier
    a = arena()
    code = asm.assemble(f"r3 = map_fd({a.fd:#x}) ll\nr1 = {a.user_vm_start:#x} ll\n"
                        "r2 = addr_space_cast(r1, 0x0, 0x1)\nr0 = 0\nexit")
    log = verifier.verify(isa.unpack_program(code), isa.ProgType.BPF_PROG_TYPE_SCHED_CLS,
                          log_level=2, maps={a.fd: a}.get).log
    line = next(x for x in log.splitlines() if "addr_space_cast" in x and ";" in x)
    assert line.split(";")[0].rstrip() == "4: (bf) r2 = addr_space_cast(r1, 0, 1)"
    assert "R2=arena" in line.split(";")[1].split()


def _cast_to_user(a, source):
    """What addr_space_cast to address space 1 makes of ``source`` (asm setting r4 from
    r2, an arena pointer), stored in the arena's first page and read back there."""
    a.mmap()[0] = 0
    prog = _through_cast(a, f"{source}\nr4 = addr_space_cast(r4, 0x1, 0x0)\n"
                            "*(u64 *)(r2 + 0) = r4\nr0 = 0\nexit")
    prog.run(bytes(60))
    return int.from_bytes(a.mmap()[:8], "little")


def test_the_cast_to_user_space_puts_back_the_high_32_bits():
    # the x86 JIT's cast_user: user_vm_start's high half over the low 32 bits
    a = arena()
    assert _cast_to_user(a, "r4 = r2\nr4 += 32") == a.user_vm_start + 32


def test_the_cast_to_user_space_keeps_0():
    assert _cast_to_user(arena(), "r4 = 0") == 0


def test_the_cast_to_user_space_is_a_32_bit_mov_with_no_user_conv():
    a = arena(flags=BPF_F_MMAPABLE | BPF_F_NO_USER_CONV)
    assert _cast_to_user(a, "r4 = r2\nr4 += 32") == (a.user_vm_start + 32) & 0xFFFF_FFFF


GLOBAL_FUNC = ARENA_PRELUDE + """
#define __arg_arena __attribute__((btf_decl_tag("arg:arena")))
struct slot { __u64 hits; };
struct slot __arena slots[16];

__noinline int bump(struct slot __arena *s __arg_arena)
{
    if (!s)
        return 1;
    s->hits++;
    return 0;
}

SEC("tc") int count(struct __sk_buff *skb)
{
    return bump(&slots[skb->len & 15]);
}
"""


def test_a_global_function_takes_an_arena_argument(tmp_path):
    import struct
    obj = _load(GLOBAL_FUNC, tmp_path)
    for n in (60, 61, 60):
        assert obj.programs["count"].run(bytes(n)).retval == 0
    view = obj.maps["arena"].mmap()
    assert struct.unpack_from("<QQ", view, 12 * 8) == (2, 1)


def test_tcsim_dumps_an_arenas_allocated_pages(tmp_path):
    import json
    import struct
    from pathlib import Path
    from pyebpf.pcap import tcsim
    from bpfc import compile_object
    obj = tmp_path / "count.o"
    obj.write_bytes(compile_object(COUNTERS))
    capture = Path(__file__).resolve().parent.parent / "examples" / "sample.pcap"
    assert tcsim.main([str(obj), "-r", str(capture), "-q",
                       "--dump-maps", str(tmp_path / "maps")]) == 0
    raw, lengths, at = capture.read_bytes(), [], 24       # pcap: 16-byte record headers
    while at < len(raw):
        incl, orig = struct.unpack_from("<II", raw, at + 8)
        # an outer VLAN tag (802.1Q, 802.1ad) goes to the skb's vlan_tci, out of
        # skb->len (docs/tcsim.md)
        tagged = raw[at + 16 + 12:at + 16 + 14] in (b"\x81\x00", b"\x88\xa8")
        lengths.append(orig - 4 * tagged)
        at += 16 + incl
    dumped = json.loads((tmp_path / "maps" / "arena.json").read_text())
    assert [e["key"] for e in dumped["entries"]] == [0]       # the globals' page
    page = bytes.fromhex(dumped["entries"][0]["value_hex"])
    assert struct.unpack_from("<Q", page, 256)[0] == sum(lengths)


def test_an_access_past_the_arenas_pages_reads_zero_and_does_not_end_the_run():
    # the kernel's PROBE_MEM32 lands in its 4 GiB area, whose faults its exception
    # table takes: past the arena's pages as before them
    a = arena(pages=2)
    prog = _through_cast(a, "r4 = 7\n*(u64 *)(r2 + 8200) = r4\n"
                            "r0 = *(u64 *)(r2 + 8200)\nr0 += 1\nexit")
    assert prog.run(bytes(60)).retval == 1


# --- the arena kfuncs ------------------------------------------------------------------

ALLOC = """
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, int);
    __type(value, long);
} m SEC(".maps");
extern void *bpf_arena_alloc_pages(void *map, void *addr, __u32 page_cnt, int node_id,
                                   __u64 flags) __ksym;

SEC("tc") int alloc(struct __sk_buff *skb)
{
    return bpf_arena_alloc_pages(&m, 0, 1, -1, 0) != 0;
}
"""


@pytest.mark.parametrize("prog_type", ["sched_cls", "socket_filter"])
def test_an_arena_kfunc_is_refused_as_the_kernel_refuses_it(prog_type):
    # this kernel registers the arena kfuncs for no program type; 6.18's registers them
    # for all, KF_SLEEPABLE, and would refuse a tc or socket program for not sleeping
    from bpfc import compile_object
    from objdiff import verdicts
    ours, theirs = verdicts(compile_object(ALLOC), prog_type=prog_type)
    assert theirs == "calling kernel function bpf_arena_alloc_pages is not allowed"
    assert ours.endswith(theirs)
