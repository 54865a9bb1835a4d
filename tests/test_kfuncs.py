"""kfunc calls: ``__ksym`` extern functions resolved by name (pyebpf's own ids in the
engine, the running kernel's BTF ids in ``pyebpf.kernel.load_object``), their
availability per program type, and the open-coded numeric iterator
(``bpf_iter_num_*``, libbpf's ``bpf_for``/``bpf_repeat``), each against the kernel:
the load verdict (with the kernel's message for a refusal) and BPF_PROG_TEST_RUN's
retval.
"""
import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

import pyebpf
from pyebpf import elf, isa
from pyebpf.errors import ElfError, KernelError

from bpfc import compile_object
from recorded_kernel import count_comparison
from skbdiff import engine_fields

# the shapes of libbpf's bpf_helpers.h (1.2 and later): the installed 1.1 has neither
# the iterator's type nor the macros
ITER = r"""
struct bpf_iter_num { __u64 __opaque[1]; } __attribute__((aligned(8)));
extern int bpf_iter_num_new(struct bpf_iter_num *it, int start, int end) __weak __ksym;
extern int *bpf_iter_num_next(struct bpf_iter_num *it) __weak __ksym;
extern void bpf_iter_num_destroy(struct bpf_iter_num *it) __weak __ksym;

#define bpf_for(i, start, end) for (                                                   \
    struct bpf_iter_num ___it __attribute__((aligned(8), cleanup(bpf_iter_num_destroy))), \
        *___p __attribute__((unused)) = (bpf_iter_num_new(&___it, (start), (end)),     \
                                         (void)bpf_iter_num_destroy, (void *)0);       \
    ({ int *___t = bpf_iter_num_next(&___it);                                         \
       (___t && ((i) = *___t, (i) >= (start) && (i) < (end))); });                    \
    )
#define bpf_repeat(N) for (                                                            \
    struct bpf_iter_num ___it __attribute__((aligned(8), cleanup(bpf_iter_num_destroy))), \
        *___p __attribute__((unused)) = (bpf_iter_num_new(&___it, 0, (N)),             \
                                         (void)bpf_iter_num_destroy, (void *)0);       \
    bpf_iter_num_next(&___it);                                                         \
    )
"""

PACKET = bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2) /
               (b"\x07" * 40))
FLAGS = [("-O2", "-mcpu=v3"), ("-O2", "-mcpu=v4")]


def _verdicts(source: str, flags, prog_type=None):
    """(ours, theirs): None for a load, else the refusal's text."""
    data = compile_object(ITER + source, flags=flags)
    try:
        pyebpf.load(data, prog_type=prog_type).close()
        ours = None
    except ElfError as exc:
        ours = str(exc)
    try:
        pyebpf.kernel.load_object(data, prog_type=prog_type).close()
        theirs = None
    except KernelError as exc:
        theirs = str(exc).split("refused the program: ", 1)[-1]
    count_comparison()
    return ours, theirs


def _same_retval(source: str, flags, packet: bytes = PACKET, prog_type=None) -> int:
    data = compile_object(ITER + source, flags=flags)
    obj = pyebpf.load(data, prog_type=prog_type)
    try:
        with pyebpf.kernel.load_object(data, prog_type=prog_type) as kobj:
            (name,) = obj.programs
            prog = obj.program(name)
            ours = prog.run(packet, **engine_fields(prog.prog_type, None))
            theirs = kobj.program(name).test_run(packet)
    finally:
        obj.close()
    count_comparison()
    assert ours.retval & 0xFFFFFFFF == theirs.retval
    return theirs.retval


# --- the mechanism ------------------------------------------------------------------

def test_an_extern_function_call_is_a_kfunc_call_named_by_its_symbol():
    data = compile_object(ITER + """
SEC("tc") int prog(struct __sk_buff *skb) { int n = 0; bpf_repeat(3) n++; return n; }
""")
    spec = elf.parse(data).programs["prog"]
    assert sorted({name for _, name in spec.kfuncs}) == [
        "bpf_iter_num_destroy", "bpf_iter_num_new", "bpf_iter_num_next"]
    code = spec.instructions({})
    for pc, name in spec.kfuncs:
        insn = isa.Insn.unpack(code, pc * isa.INSN_SIZE)
        assert insn.is_kfunc_call and insn.imm == isa.KFUNC_IDS[name]


def test_the_kernel_oracle_calls_kfuncs_by_the_running_kernels_btf_ids():
    from pyebpf.kernel.vmlinux import kfunc_btf_id
    try:
        want = kfunc_btf_id("bpf_iter_num_new", 0)
    except pyebpf.errors.LoadError as exc:
        pytest.skip(str(exc))
    data = compile_object(ITER + """
SEC("tc") int prog(struct __sk_buff *skb) { int n = 0; bpf_repeat(3) n++; return n; }
""")
    spec = elf.parse(data).programs["prog"]
    code = spec.instructions({}, kfunc_btf_id)
    pcs = [pc for pc, name in spec.kfuncs if name == "bpf_iter_num_new"]
    assert [isa.Insn.unpack(code, pc * 8).imm for pc in pcs] == [want] * len(pcs)


def test_an_unknown_extern_function_is_refused_naming_it():
    data = compile_object("""
extern int bpf_no_such_kfunc(int x) __ksym;
SEC("tc") int prog(struct __sk_buff *skb) { return bpf_no_such_kfunc(1); }
""")
    with pytest.raises(ElfError, match="extern function 'bpf_no_such_kfunc' is not a kfunc"):
        pyebpf.load(data)


@pytest.mark.parametrize("prog_type", ["socket_filter", "sched_act"])
def test_a_kfunc_the_kernel_registers_for_sched_cls_only_is_refused_elsewhere(prog_type):
    source = """
struct nf_conn;
extern void bpf_ct_release(struct nf_conn *nfct) __ksym;
SEC("tc") int prog(struct __sk_buff *skb) { bpf_ct_release((void *)0); return 0; }
"""
    ours, theirs = _verdicts(source, FLAGS[0], prog_type)
    assert theirs is not None and "calling kernel function bpf_ct_release is not allowed" \
        in theirs
    assert ours is not None and theirs in ours


# --- bpf_iter_num -------------------------------------------------------------------

@pytest.mark.parametrize("flags", FLAGS)
def test_bpf_for_sums_its_range(flags):
    assert _same_retval("""
SEC("tc") int prog(struct __sk_buff *skb) { int i, s = 0; bpf_for(i, 3, 10) s += i; return s; }
""", flags) == 42


@pytest.mark.parametrize("flags", FLAGS)
def test_bpf_repeat_runs_its_body_n_times(flags):
    assert _same_retval("""
SEC("tc") int prog(struct __sk_buff *skb) { int n = 0; bpf_repeat(7) n += 2; return n; }
""", flags) == 14


@pytest.mark.parametrize("flags", FLAGS)
def test_bpf_for_bounds_from_the_packet_index_a_stack_array(flags):
    assert _same_retval("""
SEC("tc") int prog(struct __sk_buff *skb) {
    unsigned char buf[16] = {};
    int i, s = 0;
    bpf_for(i, 0, skb->len & 15) buf[i] = i;
    bpf_for(i, 0, 16) s += buf[i];
    return s;
}
""", flags) == sum(range(len(PACKET) & 15))


@pytest.mark.parametrize("start, end, want", [
    (5, 2, 0x100 - 22),                                # -EINVAL, then nothing
    (0, isa.BPF_MAX_LOOPS + 1, 0x100 - 7),            # -E2BIG, then nothing
    (-2, isa.BPF_MAX_LOOPS - 2, 0x100),                # the widest range: it yields
])
def test_bpf_iter_num_new_checks_its_range_and_next_yields_only_after_success(start, end,
                                                                               want):
    assert _same_retval(f"""
SEC("tc") int prog(struct __sk_buff *skb) {{
    struct bpf_iter_num it;
    int err = bpf_iter_num_new(&it, {start}, {end});
    int *v = bpf_iter_num_next(&it);
    bpf_iter_num_destroy(&it);
    return (err & 0xff) | (v ? 0x100 : 0);
}}
""", FLAGS[0]) == want


def test_an_iterator_left_undestroyed_is_refused_as_the_kernel_refuses_it():
    ours, theirs = _verdicts("""
SEC("tc") int prog(struct __sk_buff *skb) {
    struct bpf_iter_num it;
    bpf_iter_num_new(&it, 0, 3);
    return 0;
}
""", FLAGS[0])
    assert theirs == "BPF_EXIT instruction in main prog would lead to reference leak"
    assert ours is not None and theirs in ours and "Unreleased reference id=" in ours


def test_next_on_an_iterator_never_made_is_refused_as_the_kernel_refuses_it():
    ours, theirs = _verdicts("""
SEC("tc") int prog(struct __sk_buff *skb) {
    struct bpf_iter_num it;
    int *v = bpf_iter_num_next(&it);
    return v ? *v : 0;
}
""", FLAGS[0])
    assert theirs is not None and "expected an initialized iter_num as arg #0" in theirs
    assert ours is not None and theirs in ours
