"""kfunc calls: ``__ksym`` extern functions resolved by name (pyebpf's own ids in the
engine, the running kernel's BTF ids in ``pyebpf.kernel.load_object``), their
availability per program type, and the open-coded numeric iterator
(``bpf_iter_num_*``, libbpf's ``bpf_for``/``bpf_repeat``), each against the kernel:
the load verdict (with the kernel's message for a refusal) and BPF_PROG_TEST_RUN's
retval.
"""
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

import pyebpf
from pyebpf import elf, isa
from pyebpf.errors import ElfError
from pyebpf.verifier.kfuncs import KFUNCS

from skbdiff import TYPES

from bpfc import compile_object
from objdiff import same_retval, verdicts

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
    return verdicts(compile_object(ITER + source, flags=flags), prog_type)


def _same_retval(source: str, flags, packet: bytes = PACKET, prog_type=None) -> int:
    return same_retval(compile_object(ITER + source, flags=flags), packet, prog_type)


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


# --- RCU read-side and preemption regions ------------------------------------------------

REGIONS = r"""
extern void bpf_rcu_read_lock(void) __ksym;
extern void bpf_rcu_read_unlock(void) __ksym;
extern void bpf_preempt_disable(void) __ksym;
extern void bpf_preempt_enable(void) __ksym;

SEC("tc") int prog(struct __sk_buff *skb) { %s }
"""


@pytest.mark.parametrize("body", [
    "bpf_rcu_read_lock(); bpf_rcu_read_unlock(); return skb->len;",
    "bpf_preempt_disable(); bpf_preempt_disable(); bpf_preempt_enable(); "
    "bpf_preempt_enable(); return 3;",
    "__u16 x = 0; bpf_rcu_read_lock(); bpf_skb_load_bytes(skb, 12, &x, 2); "
    "bpf_rcu_read_unlock(); return x;",
    "bpf_rcu_read_lock(); bpf_preempt_disable(); bpf_rcu_read_unlock(); "
    "bpf_preempt_enable(); return 4;",
])
def test_closed_rcu_and_preemption_regions_load_and_run_as_in_the_kernel(body):
    same_retval(compile_object(REGIONS % body), PACKET)


@pytest.mark.parametrize("body, message", [
    ("bpf_rcu_read_lock(); return 0;",
     "BPF_EXIT instruction in main prog cannot be used inside bpf_rcu_read_lock-ed region"),
    ("bpf_rcu_read_unlock(); return 0;",
     "unmatched rcu read unlock (kernel function bpf_rcu_read_unlock)"),
    ("bpf_rcu_read_lock(); bpf_rcu_read_lock(); bpf_rcu_read_unlock(); "
     "bpf_rcu_read_unlock(); return 1;",
     "nested rcu read lock (kernel function bpf_rcu_read_lock)"),
    ("bpf_preempt_disable(); return 0;",
     "BPF_EXIT instruction in main prog cannot be used inside bpf_preempt_disable-ed region"),
    ("bpf_preempt_enable(); return 0;",
     "unmatched attempt to enable preemption (kernel function bpf_preempt_enable)"),
    ("if (skb->len > 10) bpf_rcu_read_lock(); return 5;",
     "BPF_EXIT instruction in main prog cannot be used inside bpf_rcu_read_lock-ed region"),
])
def test_an_open_or_unmatched_region_is_refused_as_the_kernel_refuses_it(body, message):
    ours, theirs = verdicts(compile_object(REGIONS % body))
    assert theirs is not None and message in theirs, theirs
    assert ours is not None and theirs in ours, (ours, theirs)


# --- the docs table -------------------------------------------------------------------

# why a kfunc the kernel offers these program types does not run in pyebpf yet
WHY_NOT = {
    **dict.fromkeys([n for n in KFUNCS if n.startswith("bpf_rbtree_")],
                    "rbtrees are not modelled yet"),
}


def kfuncs_table() -> str:
    """docs/kfuncs-table.md's table: each kfunc pyebpf knows, the program types the
    kernel registers it for, and whether the engine runs it (a program calling it
    loads)."""
    rows = ["| kfunc | socket_filter | sched_cls | sched_act | in pyebpf |",
            "|---|---|---|---|---|"]
    for name, k in KFUNCS.items():
        code = isa.Insn(isa.CALL_CODE, 0, isa.BPF_PSEUDO_KFUNC_CALL, 0,
                        isa.KFUNC_IDS[name]).pack() + isa.Insn(0x95, 0, 0, 0, 0).pack()
        try:
            pyebpf.Program(code, "sched_cls", verify=False)
            done = "yes"
        except pyebpf.errors.LoadError:
            done = f"no: {WHY_NOT[name]}"
        kinds = ["yes" if t in k.hooks else "" for t in TYPES]
        rows.append(f"| `{name}` | " + " | ".join(kinds) + f" | {done} |")
    return "\n".join(rows) + "\n"


def test_the_docs_kfunc_table_is_what_pyebpf_implements():
    text = (Path(__file__).resolve().parents[1] / "docs" / "kfuncs-table.md").read_text()
    begin, end = "<!-- kfuncs:begin -->\n", "<!-- kfuncs:end -->"
    table = text[text.index(begin) + len(begin):text.index(end)]
    want = kfuncs_table()
    assert table == want, f"docs/kfuncs-table.md's table should read:\n{want}"


def test_every_kfunc_is_declared_as_the_running_kernel_declares_it(live_kernel):
    from pyebpf.btf import Btf, Kind
    from pyebpf.kernel.vmlinux import VMLINUX_BTF
    vmlinux = Btf.parse(Path(VMLINUX_BTF).read_bytes())
    for name, k in KFUNCS.items():
        (func,) = vmlinux.by_name(name, Kind.FUNC)
        params = [p.name for p in func.target.members]
        assert params == [a.name for a in k.args], f"{name}: parameters differ"
