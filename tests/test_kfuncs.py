"""kfunc calls: ``__ksym`` extern functions resolved by name (pyebpf's own ids in the
engine, the running kernel's BTF ids in ``pyebpf.kernel.load_object``), their
availability per program type, and the open-coded numeric iterator
(``bpf_iter_num_*``, libbpf's ``bpf_for``/``bpf_repeat``), each against the kernel:
the load verdict (with the kernel's message for a refusal) and BPF_PROG_TEST_RUN's
retval.
"""
import re
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
from objdiff import level_2_logs, same_retval, verdicts
from verifier_counts import counts_and_the_kernels

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


# 2,500 members: the kernel's BTF log (one line a type and a member, BPF_BTF_LOAD with a
# log) comes to more than 64 KiB, as for an object of the selftests that include vmlinux.h
WIDE = "struct wide { %s } wide;\n" % " ".join(f"int f{i};" for i in range(2500))


def test_an_object_with_a_kfunc_and_a_btf_too_large_to_log_loads_in_the_kernel():
    """Found by the 6.12 selftests (verifier_iterating_callbacks.c): the oracle loaded
    the BTF with a log, and a log past its buffer fails BPF_BTF_LOAD with ENOSPC; libbpf
    (btf_load_into_kernel) asks for a log only after a refusal."""
    data = compile_object(ITER + WIDE + """
SEC("tc") int prog(struct __sk_buff *skb) { int n = wide.f7; bpf_repeat(3) n++; return n; }
""")
    assert same_retval(data, PACKET) == 3


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


def test_a_call_of_bpf_trap_is_refused_as_the_kernel_refuses_it():
    source = """
extern void __bpf_trap(void) __ksym;
SEC("tc") int prog(struct __sk_buff *skb) { if (skb->len > 1000) __bpf_trap(); return 0; }
"""
    ours, theirs = _verdicts(source, FLAGS[0])
    assert theirs is not None and \
        "unexpected __bpf_trap() due to uninitialized variable?" in theirs, theirs
    assert ours is not None and theirs in ours, (ours, theirs)


def test_an_xdp_conntrack_kfunc_refuses_a_tc_programs_context_as_the_kernel_does():
    # registered for SCHED_CLS (nf_conntrack_bpf.c), but its first argument is an XDP
    # program's struct xdp_md
    source = """
struct nf_conn;
struct bpf_ct_opts { __s32 netns_id; __s32 error; __u8 l4proto; __u8 dir; __u16 zone;
                     __u8 zone_dir; __u8 reserved[3]; };
extern struct nf_conn *bpf_xdp_ct_lookup(struct xdp_md *, struct bpf_sock_tuple *, __u32,
                                         struct bpf_ct_opts *, __u32) __ksym;
extern void bpf_ct_release(struct nf_conn *) __ksym;
SEC("tc") int prog(struct __sk_buff *skb) {
    struct bpf_sock_tuple t = {};
    struct bpf_ct_opts o = { .netns_id = -1, .l4proto = 6 };
    struct nf_conn *ct = bpf_xdp_ct_lookup((struct xdp_md *)skb, &t, sizeof(t.ipv4), &o,
                                           sizeof(o));
    if (ct)
        bpf_ct_release(ct);
    return 0;
}
"""
    ours, theirs = _verdicts(source, FLAGS[0])
    assert theirs is not None and "R1 must be referenced or trusted" in theirs, theirs
    assert ours is not None and theirs in ours, (ours, theirs)


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


def test_the_int_next_yields_is_read_only_as_the_kernel_has_it():
    ours, theirs = _verdicts("""
SEC("tc") int prog(struct __sk_buff *skb) {
    struct bpf_iter_num it;
    int *p, s = 0;
    bpf_iter_num_new(&it, 0, 3);
    while ((p = bpf_iter_num_next(&it))) { *p = 5; s += *p; }
    bpf_iter_num_destroy(&it);
    return s;
}
""", FLAGS[0])
    assert theirs == "R0 cannot write into rdonly_mem"
    assert ours is not None and theirs in ours


def test_the_int_next_yields_is_gone_once_the_iterator_is_destroyed():
    ours, theirs = _verdicts("""
SEC("tc") int prog(struct __sk_buff *skb) {
    struct bpf_iter_num it;
    int *p, s = 0;
    bpf_iter_num_new(&it, 0, 3);
    p = bpf_iter_num_next(&it);
    bpf_iter_num_destroy(&it);
    if (p) s = *p;
    return s;
}
""", FLAGS[0])
    assert theirs is not None and theirs.endswith("invalid mem access 'scalar'")
    assert ours is not None and theirs in ours


def test_an_iterator_and_what_next_yields_are_logged_at_level_2_as_the_kernel_logs_them(
        monkeypatch, capsys, tmp_path):
    data = compile_object(ITER + """
SEC("tc") int prog(struct __sk_buff *skb) { int i, s = 0; bpf_for(i, 0, 3) s += i; return s; }
""", flags=FLAGS[0])
    ours, theirs = level_2_logs(data, "prog", monkeypatch, capsys, tmp_path)

    def queued(log):
        """R0 and the iterator's slot where the first iteration is popped."""
        line = next(ln for ln in log.splitlines() if ln.startswith("from ") and "fp-" in ln)
        return re.findall(r"R0=\S+|fp-\d+=iter\S+", line)
    assert queued(ours) == queued(theirs)


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


# --- bpf_modify_return_test_tp -----------------------------------------------------------

TEST_TP = r"""
extern int bpf_modify_return_test_tp(int nonce) __ksym;

SEC("tc") int prog(struct __sk_buff *skb) { return bpf_modify_return_test_tp(%s); }
"""


@pytest.mark.parametrize("nonce", ["skb->len + 7", "-5", "0x7fffffff"])
def test_bpf_modify_return_test_tp_gives_its_nonce_back_as_the_kernel_does(nonce):
    same_retval(compile_object(TEST_TP % nonce), PACKET)


# --- the docs table -------------------------------------------------------------------

# why a kfunc the kernel offers these program types does not run in pyebpf
_TODO = "not implemented yet"
WHY_NOT = {
    **dict.fromkeys([n for n in KFUNCS if n.startswith("bpf_iter_css_task")],
                    "the kernel's verifier refuses bpf_iter_css_task_new outside bpf_lsm, "
                    "bpf_iter and sleepable programs (check_css_task_iter_allowlist), and "
                    "so does pyebpf's"),
    **dict.fromkeys(["bpf_iter_kmem_cache_new", "bpf_iter_kmem_cache_next",
                     "bpf_iter_kmem_cache_destroy"],
                    "walks the kernel's slab caches (on a bpf_wq callback's path, as it "
                    "may sleep): the engine has no kernel heap"),
    "bpf_lookup_user_key": "kernel keyrings (struct bpf_key, for signature checks) are not "
                           "modelled",
    "__bpf_trap": "the kernel's verifier refuses every call of it (clang emits it where a "
                  "variable is used uninitialized), and so does pyebpf's",
    **dict.fromkeys(["bpf_crypto_ctx_create", "bpf_crypto_ctx_acquire",
                     "bpf_crypto_ctx_release"],
                    "registered for BPF_PROG_TYPE_SYSCALL programs only, which pyebpf does "
                    "not run: Map.create_crypto_ctx creates a context"),
    "bpf_xdp_ct_lookup": "its context argument is an XDP program's struct xdp_md: the "
                         "kernel refuses a tc program's context there",
    "bpf_xdp_ct_alloc": "its context argument is an XDP program's struct xdp_md: the "
                        "kernel refuses a tc program's context there",
    "bpf_kfunc_call_test_release": "test kfunc of net/bpf/test_run.c: releases a struct "
                                   "prog_test_ref_kfunc only the test kfuncs of "
                                   "bpf_testmod hand out",
    "bpf_kfunc_call_memb_release": "test kfunc of net/bpf/test_run.c: releases a struct "
                                   "prog_test_member only the test kfuncs of bpf_testmod "
                                   "hand out",
    "bpf_lookup_system_key": "kernel keyrings (struct bpf_key, for signature checks) are "
                             "not modelled",
    "bpf_key_put": "kernel keyrings (struct bpf_key, for signature checks) are not "
                   "modelled",
    **dict.fromkeys(["bpf_arena_alloc_pages", "bpf_arena_free_pages",
                     "bpf_arena_reserve_pages"],
                    "registered for no program type by the modelled kernel (6.18 "
                    "registers them for all, KF_SLEEPABLE: docs/reference.md, Arenas)"),
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


def _registered_kfuncs() -> dict[str, frozenset]:
    """The running kernel's kfuncs (vmlinux BTF FUNCs tagged ``bpf_kfunc``) each with
    the program types among TYPES it is registered for: a call of it, loaded as each
    type, is refused with ``calling kernel function NAME is not allowed`` where it is
    not (check_kfunc_call; any other verdict comes after that check)."""
    from pyebpf.btf import Btf, Kind
    from pyebpf.errors import KernelError
    from pyebpf.kernel.oracle import KernelProgram
    from pyebpf.kernel.vmlinux import VMLINUX_BTF
    vmlinux = Btf.parse(Path(VMLINUX_BTF).read_bytes())
    funcs = {t.type_id for t in vmlinux.types if t.kind == Kind.DECL_TAG and
             t.name == "bpf_kfunc"}
    out = {}
    for func_id in funcs:
        name = vmlinux.types[func_id].name
        code = isa.Insn(0xB7, 1, 0, 0, 0).pack() + isa.Insn(
            isa.CALL_CODE, 0, isa.BPF_PSEUDO_KFUNC_CALL, 0, func_id).pack() + \
            isa.Insn(0xB7, 0, 0, 0, 0).pack() + isa.Insn(0x95, 0, 0, 0, 0).pack()
        types = set()
        for t in TYPES:
            try:
                KernelProgram(code, t).close()
            except KernelError as exc:
                # the XDP metadata kfuncs (net/core/xdp.c registers them for XDP only)
                # are refused before the program type is looked at (add_kfunc_call:
                # bpf_dev_bound_kfunc_check)
                if "is not allowed" in str(exc) or "require device-bound program" in \
                        str(exc):
                    continue
            types.add(t)
        if types:
            out[name] = frozenset(types)
    return out


def test_pyebpf_knows_every_kfunc_the_running_kernel_registers_for_skb_programs(
        live_kernel):
    kernel = _registered_kfuncs()
    # kfuncs registered for other types only (the crypto context's: syscall programs)
    # are not among the kernel's answers
    skb = frozenset(TYPES)
    ours = {name: frozenset(k.hooks) for name, k in KFUNCS.items() if k.hooks & skb}
    missing = {n: sorted(t.name for t in ts) for n, ts in kernel.items() if n not in ours}
    extra = sorted(set(ours) - set(kernel))
    differ = {n: (sorted(t.name for t in ours[n]), sorted(t.name for t in kernel[n]))
              for n in set(ours) & set(kernel) if ours[n] != kernel[n]}
    assert (missing, extra, differ) == ({}, [], {}), \
        "(kernel-only kfuncs, pyebpf-only kfuncs, {name: (pyebpf's types, the kernel's)})"


@pytest.mark.parametrize("cond", ["i < 1000", "i < 1000 && (long)i >= 0"])
def test_a_counter_inside_an_open_coded_iterator_loop_is_explored_as_by_the_kernel(
        cond, monkeypatch):
    """Found by the 6.12 selftests (verifier_iterating_callbacks.c, loop_inside_iter and
    _signed: refused there while precision was not tracked in programs with kfuncs, so
    the index was widened at bpf_iter_num_next): the kernel's instructions and states."""
    data = compile_object(ITER + """
char arr2[1000] SEC(".data.arr2");
SEC("tc") int prog(struct __sk_buff *skb)
{
    struct bpf_iter_num it;
    int *v, sum = 0;
    __u64 i = 0;

    bpf_iter_num_new(&it, 0, 1000);
    while ((v = bpf_iter_num_next(&it))) {
        if (%s)
            sum += arr2[i++];
    }
    bpf_iter_num_destroy(&it);
    return sum;
}
""" % cond)
    ours, kernels = counts_and_the_kernels(data, monkeypatch)
    assert ours == kernels
