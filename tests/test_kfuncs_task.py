"""The task and cgroup kfuncs of the kernel's generic set (``bpf_task_acquire``,
``bpf_task_release``, ``bpf_task_from_pid``, ``bpf_task_from_vpid``,
``bpf_cgroup_acquire``, ``bpf_cgroup_release``, ``bpf_cgroup_from_id``,
``bpf_cgroup_ancestor``, ``bpf_task_under_cgroup``) against the kernel: load verdicts
(with the kernel's message for a refusal) and BPF_PROG_TEST_RUN's retval.

BPF_PROG_TEST_RUN runs a tc program in the process that asks, so the engine's side
runs with ``machine=this_process()`` and the programs look up what exists in both
worlds without naming it in their code (the recorded answers are keyed by the
instructions): this process by ``bpf_get_current_pid_tgid``, its cgroup (the root of
cgroup v2, the default Environment's task cgroup) by ``bpf_get_current_cgroup_id``,
and kthreadd, pid 2 on every Linux machine, which the machine declares.  Then what only
the model shows: deeper cgroup trees, other tasks and namespaces, runs without a
machine.
"""
from __future__ import annotations

import pytest

import pyebpf
from pyebpf import Environment, isa
from pyebpf.trace import Task

from bpfc import compile_object
from current_task import this_process
from objdiff import assert_refused_alike, verdicts
from recorded_kernel import count_comparison

FRAME = bytes(64)
KTHREADD = Task(pid=2, comm="kthreadd", address=0xFFFF888100800000,
                fields={"flags": isa.PF_KTHREAD})
# a pid above the largest pid_max (PID_MAX_LIMIT, 4 << 20): no task has it
NO_SUCH_PID = (4 << 20) + 1

DECLS = r"""
struct task_struct { int pid; int tgid; char comm[16]; struct task_struct *real_parent; }
    __attribute__((preserve_access_index));
struct kernfs_node { __u64 id; } __attribute__((preserve_access_index));
struct cgroup { int level; struct kernfs_node *kn; struct cgroup *ancestors[]; }
    __attribute__((preserve_access_index));
extern struct task_struct *bpf_task_acquire(struct task_struct *p) __ksym;
extern void bpf_task_release(struct task_struct *p) __ksym;
extern struct task_struct *bpf_task_from_pid(int pid) __ksym;
extern struct task_struct *bpf_task_from_vpid(int vpid) __ksym;
extern struct cgroup *bpf_cgroup_acquire(struct cgroup *cgrp) __ksym;
extern void bpf_cgroup_release(struct cgroup *cgrp) __ksym;
extern struct cgroup *bpf_cgroup_ancestor(struct cgroup *cgrp, int level) __ksym;
extern struct cgroup *bpf_cgroup_from_id(__u64 cgid) __ksym;
extern long bpf_task_under_cgroup(struct task_struct *task, struct cgroup *ancestor) __ksym;
extern int bpf_send_signal_task(struct task_struct *task, int sig, int type, __u64 value)
    __ksym;
extern struct cgroup *bpf_task_get_cgroup1(struct task_struct *task, int hierarchy_id) __ksym;
char LICENSE[] SEC("license") = "GPL";

#define CURRENT ((struct task_struct *)bpf_get_current_task_btf())
#define TGID ((int)(bpf_get_current_pid_tgid() >> 32))
"""


def _source(body: str) -> bytes:
    return compile_object(DECLS + 'SEC("tc") int prog(struct __sk_buff *skb) {\n'
                          + body + "\n}\n")


def _runs(body: str, machine=None, env=None):
    """(pyebpf's retval, the kernel's) of one run; the engine's with ``machine``
    (default: this process, kthreadd beside it)."""
    data = _source(body)
    machine = machine or this_process(tasks=(KTHREADD,))
    fields = {"machine": machine} | ({"env": env} if env is not None else {})
    obj = pyebpf.load(data)
    try:
        ours = obj.program("prog").run(FRAME, **fields).retval
        with pyebpf.kernel.load_object(data) as kobj:
            theirs = kobj.program("prog").test_run(FRAME).retval
    finally:
        obj.close()
    count_comparison()
    return ours & 0xFFFFFFFF, theirs


def same_retval(body: str) -> int:
    ours, theirs = _runs(body)
    assert ours == theirs, f"pyebpf {ours:#x}, kernel {theirs:#x}"
    return theirs


def engine_retval(body: str, **fields) -> int:
    obj = pyebpf.load(_source(body))
    try:
        return obj.program("prog").run(FRAME, **fields).retval & 0xFFFFFFFF
    finally:
        obj.close()


# --- tasks ---------------------------------------------------------------------------

@pytest.mark.parametrize("lookup", ["bpf_task_from_pid", "bpf_task_from_vpid"])
def test_a_pid_lookup_finds_the_process_running_the_test(lookup):
    assert same_retval(f"""
    int tgid = TGID;
    struct task_struct *t = {lookup}(tgid);
    if (!t) return 100;
    int r = (t->tgid == tgid) | (t->pid == tgid) << 1 | (t == CURRENT) << 2;
    bpf_task_release(t);
    return r;""") == 7


def test_bpf_task_from_pid_finds_kthreadd_and_reads_its_name():
    assert same_retval("""
    struct task_struct *t = bpf_task_from_pid(2);
    if (!t) return 100;
    int r = t->pid | t->comm[0] << 8 | t->comm[7] << 16;
    bpf_task_release(t);
    return r;""") == 2 | ord("k") << 8 | ord("d") << 16


# pid 1 exists on the machine, but the kernel's test run does not find it
# (docs/kernel-notes.md); the machine declares no pid 1
@pytest.mark.parametrize("pid", [0, -1, NO_SUCH_PID, 1])
def test_bpf_task_from_pid_of_no_task_is_null(pid):
    assert same_retval(f"""
    struct task_struct *t = bpf_task_from_pid({pid});
    if (!t) return 100;
    bpf_task_release(t);
    return 1;""") == 100


def test_bpf_task_acquire_of_the_current_task_is_the_current_task():
    assert same_retval("""
    struct task_struct *t = bpf_task_acquire(CURRENT);
    if (!t) return 100;
    int r = t->pid == (__u32)bpf_get_current_pid_tgid();
    bpf_task_release(t);
    return r;""") == 1


def test_an_rcu_pointer_walked_from_a_trusted_task_may_be_acquired():
    # task->real_parent is RCU-protected (BTF_TYPE_SAFE_RCU): KF_RCU takes it
    ours, theirs = verdicts(_source("""
    struct task_struct *t = bpf_task_acquire(CURRENT->real_parent);
    if (!t) return 1;
    bpf_task_release(t);
    return 0;"""))
    assert (ours, theirs) == (None, None)


# --- cgroups -------------------------------------------------------------------------

def test_bpf_cgroup_from_id_finds_the_tasks_cgroup():
    assert same_retval("""
    __u64 id = bpf_get_current_cgroup_id();
    struct cgroup *c = bpf_cgroup_from_id(id);
    if (!c) return 100;
    int r = (c->kn->id == id) | (c->level + 1) << 1;
    bpf_cgroup_release(c);
    return r;""") == 1 | 1 << 1


def test_bpf_cgroup_from_id_of_no_cgroup_is_null():
    assert same_retval("""
    struct cgroup *c = bpf_cgroup_from_id(bpf_get_current_cgroup_id() + 0x7fffffff);
    if (!c) return 100;
    bpf_cgroup_release(c);
    return 1;""") == 100


@pytest.mark.parametrize("level, want", [(0, 1), (1, 100), (-1, 100)])
def test_bpf_cgroup_ancestor_is_the_cgroup_at_a_level_it_has(level, want):
    assert same_retval(f"""
    struct cgroup *c = bpf_cgroup_from_id(bpf_get_current_cgroup_id());
    if (!c) return 200;
    struct cgroup *a = bpf_cgroup_ancestor(c, {level});
    int r = a == c;
    bpf_cgroup_release(c);
    if (!a) return 100;
    bpf_cgroup_release(a);
    return r;""") == want


def test_bpf_cgroup_acquire_gives_the_same_cgroup():
    assert same_retval("""
    struct cgroup *c = bpf_cgroup_from_id(bpf_get_current_cgroup_id());
    if (!c) return 200;
    struct cgroup *a = bpf_cgroup_acquire(c);
    bpf_cgroup_release(c);
    if (!a) return 100;
    int r = a->level + 1;
    bpf_cgroup_release(a);
    return r;""") == 1


@pytest.mark.parametrize("task", ["CURRENT", "kthreadd"])
def test_every_task_is_under_the_root_cgroup(task):
    get = "bpf_task_from_pid(2)" if task == "kthreadd" else "bpf_task_acquire(CURRENT)"
    assert same_retval(f"""
    struct cgroup *c = bpf_cgroup_from_id(bpf_get_current_cgroup_id());
    if (!c) return 200;
    struct task_struct *t = {get};
    if (!t) {{ bpf_cgroup_release(c); return 100; }}
    long r = bpf_task_under_cgroup(t, c);
    bpf_task_release(t);
    bpf_cgroup_release(c);
    return r;""") == 1


# --- signals ---------------------------------------------------------------------------

PIDTYPE_PGID = 2
TO_KTHREADD = """
    struct task_struct *t = bpf_task_from_pid(2);
    if (!t) return 100;
    long r = bpf_send_signal_task(t, %d, %d, 7);
    bpf_task_release(t);
    return r;"""


@pytest.mark.parametrize("body, errno", [
    ("return bpf_send_signal_task(CURRENT, 0, %d, 7);" % isa.PIDTYPE_PID, 0),
    ("return bpf_send_signal_task(CURRENT, 0, %d, 7);" % isa.PIDTYPE_TGID, 0),
    ("return bpf_send_signal_task(CURRENT, 0, %d, 7);" % PIDTYPE_PGID, isa.Errno.EINVAL),
    ("return bpf_send_signal_task(CURRENT, %d, 0, 7);" % (isa.NSIG + 1), isa.Errno.EINVAL),
    ("return bpf_send_signal_task(CURRENT, -1, 0, 7);", isa.Errno.EINVAL),
    (TO_KTHREADD % (0, isa.PIDTYPE_PID), isa.Errno.EPERM),
    (TO_KTHREADD % (isa.NSIG + 1, isa.PIDTYPE_PID), isa.Errno.EPERM),
    (TO_KTHREADD % (0, PIDTYPE_PGID), isa.Errno.EINVAL),
], ids=["current-pid", "current-tgid", "pgid", "above-nsig", "negative", "kthread",
        "kthread-before-the-signal", "pid-type-before-kthread"])
def test_bpf_send_signal_task_answers_as_the_kernel(body, errno):
    assert same_retval(body) == -errno & 0xFFFFFFFF


@pytest.mark.parametrize("pid_type, scope", [(isa.PIDTYPE_PID, "thread"),
                                             (isa.PIDTYPE_TGID, "process")])
def test_a_signal_to_the_current_task_is_recorded_with_its_scope(pid_type, scope):
    result = _engine_run(f"return bpf_send_signal_task(CURRENT, 10, {pid_type}, 7);",
                         this_process())
    assert (result.retval, result.signals) == (0, ((10, scope),))


def test_a_signal_to_another_task_is_not_recorded():
    result = _engine_run("""
    struct task_struct *t = bpf_task_from_pid(3);
    if (!t) return 100;
    long r = bpf_send_signal_task(t, 10, 0, 7);
    bpf_task_release(t);
    return r;""", this_process(tasks=(Task(pid=3, address=0xFFFF888100900000, fields={}),)))
    assert (result.retval, result.signals) == (0, ())


def _engine_run(body: str, machine):
    obj = pyebpf.load(_source(body))
    try:
        return obj.program("prog").run(FRAME, machine=machine)
    finally:
        obj.close()


# --- cgroup v1 ---------------------------------------------------------------------------

# this machine's v1 hierarchies (tests/current_task.cgroup1): cpu (1), every cgroup's
# but the memory hierarchy's (4) the root, whose id is 1 on every hierarchy
GET_CGROUP1 = """
    struct cgroup *c = bpf_task_get_cgroup1(%s, %d);
    if (!c) return 100;
    long r = %s;
    bpf_cgroup_release(c);
    return r;"""


@pytest.mark.parametrize("hierarchy, value", [(1, "c->level | c->kn->id << 8"),
                                              (4, "c->level"), (0, "1"), (10, "1"),
                                              (-1, "1")],
                         ids=["cpu", "memory", "cgroup-v2", "no-such-hierarchy", "negative"])
def test_bpf_task_get_cgroup1_is_the_current_tasks_cgroup_of_a_v1_hierarchy(hierarchy,
                                                                           value):
    same_retval(GET_CGROUP1 % ("CURRENT", hierarchy, value))


def test_bpf_task_get_cgroup1_is_null_for_a_task_in_no_v1_hierarchy():
    assert engine_retval(GET_CGROUP1 % ("CURRENT", 1, "1"),
                         machine=this_process(cgroup1=())) == 100


def test_bpf_task_get_cgroup1_finds_another_tasks_declared_cgroup():
    other = Task(pid=3, address=0xFFFF888100900000, fields={}, cgroup1=((2, 3, 77),))
    assert engine_retval("""
    struct task_struct *t = bpf_task_from_pid(3);
    if (!t) return 100;
    struct cgroup *c = bpf_task_get_cgroup1(t, 2);
    bpf_task_release(t);
    if (!c) return 101;
    long r = c->level | c->kn->id << 8;
    bpf_cgroup_release(c);
    return r;""", machine=this_process(tasks=(other,))) == 3 | 77 << 8


@pytest.mark.parametrize("body, message", [
    ("struct cgroup *c = bpf_task_get_cgroup1(CURRENT, 1); return c != 0;",
     "BPF_EXIT instruction in main prog would lead to reference leak"),
    ("struct cgroup *c = bpf_task_get_cgroup1((struct task_struct *)0, 1); "
     "if (c) bpf_cgroup_release(c); return 0;",
     "Possibly NULL pointer passed to trusted arg0"),
    ("return bpf_send_signal_task((struct task_struct *)0, 0, 0, 0);",
     "Possibly NULL pointer passed to trusted arg0"),
], ids=["cgroup1-leak", "cgroup1-null-task", "signal-null-task"])
def test_a_misused_signal_or_cgroup1_call_is_refused_as_the_kernel_refuses_it(body, message):
    assert_refused_alike(*verdicts(_source(body)), message)


# --- what the verifier refuses ----------------------------------------------------------

@pytest.mark.parametrize("body, message", [
    ("struct task_struct *t = bpf_task_from_pid(2); return t ? 1 : 0;",
     "BPF_EXIT instruction in main prog would lead to reference leak"),
    ("struct cgroup *c = bpf_cgroup_from_id(1); return c ? 1 : 0;",
     "BPF_EXIT instruction in main prog would lead to reference leak"),
    ("struct task_struct *t = bpf_task_from_pid(2); bpf_task_release(t); return 0;",
     "Possibly NULL pointer passed to trusted arg0"),
    ("bpf_task_acquire((struct task_struct *)0); return 0;",
     "Possibly NULL pointer passed to trusted arg0"),
    ("bpf_task_release(CURRENT); return 0;",
     "release kernel function bpf_task_release expects refcounted PTR_TO_BTF_ID"),
    ("struct cgroup *c = bpf_cgroup_from_id(1); if (!c) return 1; "
     "bpf_task_release((struct task_struct *)c); return 0;",
     "kernel function bpf_task_release args#0 expected pointer to STRUCT task_struct but "
     "R1 has a pointer to STRUCT cgroup"),
    ("bpf_task_release((struct task_struct *)(long)skb->len); return 0;",
     "arg#0 pointer type STRUCT task_struct must point to scalar, or struct with scalar"),
    ("struct task_struct *t = bpf_task_from_pid(2); if (!t) return 1; "
     "bpf_task_release(t); bpf_task_release(t); return 0;",
     "arg#0 pointer type STRUCT task_struct must point to scalar, or struct with scalar"),
    ("struct task_struct *t = bpf_task_from_pid(2); if (!t) return 1; "
     "bpf_task_release(t); return t->pid;",
     "invalid mem access 'scalar'"),
    ("struct cgroup *c = bpf_cgroup_from_id(1); if (!c) return 1; "
     "long r = c->ancestors[0] == c; bpf_cgroup_release(c); return r;",
     "struct cgroup doesn't have field at offset"),
], ids=["task-leak", "cgroup-leak", "maybe-null", "null", "unreferenced", "wrong-struct",
        "scalar", "double-release", "use-after-release", "flexible-array"])
def test_a_misused_task_or_cgroup_pointer_is_refused_as_the_kernel_refuses_it(body, message):
    assert_refused_alike(*verdicts(_source(body)), message)


WALKS = r"""
struct task_struct___walk { struct task_struct *parent; struct mm_struct *mm; }
    __attribute__((preserve_access_index));
struct mm_struct { struct task_struct *owner; } __attribute__((preserve_access_index));
#define WALK ((struct task_struct___walk *)bpf_get_current_task_btf())
"""


@pytest.mark.parametrize("body, message", [
    ("struct task_struct *t = bpf_task_acquire(WALK->parent); if (!t) return 1; "
     "bpf_task_release(t); return 0;", "R1 must be a rcu pointer"),
    ("struct task_struct *t = bpf_task_acquire(WALK->mm->owner); if (!t) return 1; "
     "bpf_task_release(t); return 0;", "R1 must be a rcu pointer"),
    ("struct task_struct *t = bpf_task_acquire(CURRENT); if (!t) return 1; "
     "bpf_task_release(t->real_parent); bpf_task_release(t); return 0;",
     "R1 must be referenced or trusted"),
], ids=["parent", "mm-owner", "release-real-parent"])
def test_a_walked_pointer_is_trusted_only_where_the_kernel_lists_it(body, message):
    data = compile_object(DECLS + WALKS + 'SEC("tc") int prog(struct __sk_buff *skb) {\n'
                          + body + "\n}\n")
    assert_refused_alike(*verdicts(data), message)


RCU_WALKS = WALKS + r"""
struct css_set { struct cgroup *dfl_cgrp; } __attribute__((preserve_access_index));
struct task_struct___rcu { struct task_struct *group_leader; struct css_set *cgroups; }
    __attribute__((preserve_access_index));
struct sock { __u32 sk_mark; } __attribute__((preserve_access_index));
struct sk_buff { struct sock *sk; } __attribute__((preserve_access_index));
extern void bpf_rcu_read_lock(void) __ksym;
extern void bpf_rcu_read_unlock(void) __ksym;
extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;
#define RCU ((struct task_struct___rcu *)bpf_get_current_task_btf())
#define KSKB ((struct sk_buff *)bpf_cast_to_kern_ctx(skb))
"""


def _walk_verdicts(body: str):
    return verdicts(compile_object(DECLS + RCU_WALKS + 'SEC("tc") int prog(struct '
                                   '__sk_buff *skb) {\n' + body + "\n}\n"))


@pytest.mark.parametrize("body", [
    "struct task_struct *t = bpf_task_acquire(RCU->group_leader); if (!t) return 1; "
    "bpf_task_release(t); return 0;",
    "struct cgroup *c = bpf_cgroup_acquire(RCU->cgroups->dfl_cgrp); if (!c) return 1; "
    "bpf_cgroup_release(c); return 0;",
    "bpf_rcu_read_lock(); struct task_struct *t = bpf_task_acquire(CURRENT->real_parent); "
    "bpf_rcu_read_unlock(); if (!t) return 1; bpf_task_release(t); return 0;",
    "struct task_struct *t = bpf_task_acquire(CURRENT); if (!t) return 1; "
    "struct task_struct *p = bpf_task_acquire(t->real_parent); bpf_task_release(t); "
    "if (!p) return 2; bpf_task_release(p); return 0;",
], ids=["group-leader", "cgroups-dfl-cgrp", "inside-rcu-read-lock", "from-a-referenced-task"])
def test_a_member_the_kernel_lists_as_rcu_is_an_rcu_pointer_a_kf_rcu_kfunc_takes(body):
    assert _walk_verdicts(body) == (None, None)


@pytest.mark.parametrize("body, message", [
    ("bpf_rcu_read_lock(); struct task_struct *p = CURRENT->real_parent; "
     "bpf_rcu_read_unlock(); struct task_struct *t = bpf_task_acquire(p); if (!t) return 1; "
     "bpf_task_release(t); return 0;", "R1 must be a rcu pointer"),
    ("bpf_rcu_read_lock(); struct cgroup *c = RCU->cgroups->dfl_cgrp; "
     "bpf_rcu_read_unlock(); c = bpf_cgroup_acquire(c); if (!c) return 1; "
     "bpf_cgroup_release(c); return 0;", "R1 must be a rcu pointer"),
    ("return KSKB->sk->sk_mark;", "invalid mem access 'rcu_ptr_or_null_'"),
], ids=["real-parent-after-unlock", "dfl-cgrp-after-unlock", "skb-sk-unchecked"])
def test_an_rcu_pointer_is_untrusted_after_the_section_and_may_be_null_where_listed(
        body, message):
    assert_refused_alike(*_walk_verdicts(body), message)


@pytest.mark.parametrize("body", [
    "bpf_rcu_read_lock(); struct task_struct *p = CURRENT->real_parent; "
    "bpf_rcu_read_unlock(); return p->real_parent->pid;",
    "struct sock *sk = KSKB->sk; return sk ? sk->sk_mark : 0;",
    "return WALK->mm->owner->pid;",
], ids=["untrusted-walk", "skb-sk-checked", "legacy-walk"])
def test_an_untrusted_or_legacy_pointer_may_still_be_read(body):
    assert _walk_verdicts(body) == (None, None)


@pytest.mark.parametrize("prog_type", ["socket_filter", "sched_act"])
def test_the_task_kfuncs_are_the_kernels_for_sched_cls_only(prog_type):
    ours, theirs = verdicts(_source("""
    struct task_struct *t = bpf_task_from_pid(2);
    if (t) bpf_task_release(t);
    return 0;"""), prog_type)
    assert_refused_alike(ours, theirs, "calling kernel function bpf_task_from_pid is not "
                                       "allowed")


# --- task, css and VMA iterators: what the verifier refuses in a tc program --------------

ITERS = WALKS + r"""
struct bpf_iter_task { __u64 __opaque[3]; } __attribute__((aligned(8)));
struct bpf_iter_css_task { __u64 __opaque[1]; } __attribute__((aligned(8)));
struct bpf_iter_task_vma { __u64 __opaque[1]; } __attribute__((aligned(8)));
struct cgroup_subsys_state { struct cgroup *cgroup; } __attribute__((preserve_access_index));
struct cgroup___css { struct cgroup_subsys_state self; } __attribute__((preserve_access_index));
extern int bpf_iter_task_new(struct bpf_iter_task *it, struct task_struct *task__nullable,
                             unsigned int flags) __ksym;
extern struct task_struct *bpf_iter_task_next(struct bpf_iter_task *it) __ksym;
extern void bpf_iter_task_destroy(struct bpf_iter_task *it) __ksym;
extern int bpf_iter_css_task_new(struct bpf_iter_css_task *it,
                                 struct cgroup_subsys_state *css, unsigned int flags) __ksym;
extern void bpf_iter_css_task_destroy(struct bpf_iter_css_task *it) __ksym;
extern int bpf_iter_task_vma_new(struct bpf_iter_task_vma *it, struct task_struct *task,
                                 __u64 addr) __ksym;
extern void bpf_iter_task_vma_destroy(struct bpf_iter_task_vma *it) __ksym;
"""


@pytest.mark.parametrize("body, message", [
    ("struct bpf_iter_css_task it; struct cgroup *c = bpf_cgroup_from_id(1); "
     "if (!c) return 0; bpf_iter_css_task_new(&it, &((struct cgroup___css *)c)->self, 0); "
     "bpf_iter_css_task_destroy(&it); bpf_cgroup_release(c); return 0;",
     "css_task_iter is only allowed in bpf_lsm, bpf_iter and sleepable progs"),
    ("struct bpf_iter_task it; bpf_iter_task_new(&it, 0, 0); return 0;",
     "BPF_EXIT instruction in main prog would lead to reference leak"),
    ("struct bpf_iter_task it; bpf_iter_task_next(&it); return 0;",
     "expected an initialized iter_task as arg #0"),
    ("struct bpf_iter_task it; bpf_iter_task_new(&it, WALK->parent, 0); "
     "bpf_iter_task_destroy(&it); return 0;", "R2 must be referenced or trusted"),
    ("struct bpf_iter_task it; bpf_iter_task_new(&it, CURRENT->real_parent, 0); "
     "bpf_iter_task_destroy(&it); return 0;", "R2 must be referenced or trusted"),
    ("struct bpf_iter_task_vma it; bpf_iter_task_vma_new(&it, WALK->parent, 0); "
     "bpf_iter_task_vma_destroy(&it); return 0;", "R2 must be a rcu pointer"),
    ("struct bpf_iter_task_vma it; bpf_iter_task_vma_new(&it, 0, 0); "
     "bpf_iter_task_vma_destroy(&it); return 0;",
     "Possibly NULL pointer passed to trusted arg1"),
    ("struct bpf_iter_task it; struct task_struct *t; bpf_iter_task_new(&it, 0, 0); "
     "t = bpf_iter_task_next(&it); if (t) bpf_task_release(t); bpf_iter_task_destroy(&it); "
     "return 0;", "R1 must be referenced or trusted"),
], ids=["css-task-in-tc", "task-iter-leak", "next-before-new", "task-of-a-legacy-pointer",
        "task-of-an-rcu-pointer", "vma-of-a-legacy-pointer", "vma-of-null",
        "release-what-next-gives"])
def test_a_misused_task_iterator_is_refused_as_the_kernel_refuses_it(body, message):
    assert_refused_alike(*verdicts(compile_object(
        DECLS + ITERS + 'SEC("tc") int prog(struct __sk_buff *skb) {\n' + body + "\n}\n")),
        message)


# --- probe reads into a dynptr, task work: the argument rules -----------------------------

LATER = r"""
struct bpf_map;
struct bpf_task_work { __u64 __opaque; } __attribute__((aligned(8)));
typedef int (*bpf_task_work_callback_t)(struct bpf_map *map, void *key, void *value);
extern int bpf_task_work_schedule_signal_impl(struct task_struct *task,
    struct bpf_task_work *tw, void *map__map, bpf_task_work_callback_t callback,
    void *aux__prog) __ksym;
extern int bpf_probe_read_kernel_dynptr(struct bpf_dynptr *dptr, __u32 off, __u32 size,
                                        const void *unsafe_ptr__ign) __ksym;
extern int bpf_probe_read_user_str_dynptr(struct bpf_dynptr *dptr, __u32 off, __u32 size,
                                          const void *unsafe_ptr__ign) __ksym;
struct work { struct bpf_task_work tw; };
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
    __type(key, __u32); __type(value, struct work);
} works SEC(".maps");
static int work_cb(struct bpf_map *map, void *key, void *value) { return 0; }
#define WORK_TO(task) __u32 k = 0; struct work *w = bpf_map_lookup_elem(&works, &k); \
    if (!w) return 1; return bpf_task_work_schedule_signal_impl(task, &w->tw, &works, \
                                                                work_cb, 0);
"""


@pytest.mark.parametrize("prog_type", ["sched_cls", "socket_filter"])
@pytest.mark.parametrize("body, message", [
    ("struct bpf_dynptr d; return bpf_probe_read_kernel_dynptr(&d, 0, 8, (void *)0);",
     "Expected an initialized dynptr as arg #0"),
    ("struct bpf_dynptr d; return bpf_probe_read_user_str_dynptr(&d, 0, 8, (void *)0);",
     "Expected an initialized dynptr as arg #0"),
    ("return bpf_probe_read_kernel_dynptr((struct bpf_dynptr *)(long)skb->len, 0, 8, "
     "(void *)0);", "arg#0 expected pointer to stack or const struct bpf_dynptr"),
], ids=["kernel-uninit", "user-str-uninit", "kernel-scalar"])
def test_a_probe_read_into_a_dynptr_that_is_none_is_refused_as_the_kernel_refuses_it(
        body, message, prog_type):
    data = compile_object(DECLS + LATER + 'SEC("tc") int prog(struct __sk_buff *skb) {\n'
                          + body + "\n}\n")
    assert_refused_alike(*verdicts(data, prog_type), message)


@pytest.mark.parametrize("task, message", [
    ("(struct task_struct *)0", "Possibly NULL pointer passed to trusted arg0"),
    ("CURRENT->real_parent", "R1 must be referenced or trusted"),
], ids=["null", "rcu-pointer"])
def test_task_work_for_a_task_that_is_not_trusted_is_refused_as_the_kernel_refuses_it(
        task, message):
    data = compile_object(DECLS + LATER + 'SEC("tc") int prog(struct __sk_buff *skb) {\n'
                          f"WORK_TO({task})\n}}\n")
    assert_refused_alike(*verdicts(data), message)


# --- task and cgroup kptrs in map values -----------------------------------------------

KPTRS = r"""
#define __kptr __attribute__((btf_type_tag("kptr")))
struct tval { struct task_struct __kptr *task; };
struct cval { long n; struct cgroup __kptr *cg; };
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
    __type(key, __u32); __type(value, struct tval);
} tasks SEC(".maps");
struct {
    __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 4);
    __type(key, __u32); __type(value, struct cval);
} cgroups SEC(".maps");
"""


def _kptr_source(body: str, decls: str = "") -> bytes:
    return compile_object(DECLS + KPTRS + decls +
                          'SEC("tc") int prog(struct __sk_buff *skb) {\n'
                          "    __u32 k = 0;\n" + body + "\n}\n")


def same_retvals(body: str, runs: int, decls: str = "") -> list[int]:
    """The retvals of ``runs`` runs of one loaded program (``decls`` before it), which
    must be the kernel's."""
    data = _kptr_source(body, decls)
    obj = pyebpf.load(data)
    machine = this_process(tasks=(KTHREADD,))
    try:
        ours = [obj.program("prog").run(FRAME, machine=machine).retval & 0xFFFFFFFF
                for _ in range(runs)]
        with pyebpf.kernel.load_object(data) as kobj:
            theirs = [kobj.program("prog").test_run(FRAME).retval for _ in range(runs)]
    finally:
        obj.close()
    count_comparison()
    assert ours == theirs
    return theirs


def test_a_task_stored_in_a_kptr_is_read_by_the_next_run():
    assert same_retvals("""
    struct tval *v = bpf_map_lookup_elem(&tasks, &k);
    if (!v) return 99;
    struct task_struct *t = v->task;
    if (t) return t->pid;
    t = bpf_task_from_pid(2);
    if (!t) return 100;
    t = bpf_kptr_xchg(&v->task, t);
    if (t) { bpf_task_release(t); return 101; }
    return 0;""", 3) == [0, 2, 2]


def test_bpf_kptr_xchg_gives_back_the_task_it_held():
    assert same_retvals("""
    struct tval *v = bpf_map_lookup_elem(&tasks, &k);
    if (!v) return 99;
    struct task_struct *t = bpf_task_acquire((struct task_struct *)bpf_get_current_task_btf());
    if (!t) return 100;
    t = bpf_kptr_xchg(&v->task, t);
    if (!t) return 1;
    int r = t->tgid == TGID;
    bpf_task_release(t);
    return r + 2;""", 3) == [1, 3, 3]


def test_a_cgroup_kptr_of_a_hash_value_is_acquired_from_its_rcu_load():
    assert same_retvals("""
    struct cval init = {}, *v;
    bpf_map_update_elem(&cgroups, &k, &init, BPF_NOEXIST);
    v = bpf_map_lookup_elem(&cgroups, &k);
    if (!v) return 99;
    struct cgroup *c = v->cg;
    if (c) {
        c = bpf_cgroup_acquire(c);
        if (!c) return 100;
        int r = c->level + 10 + (c->kn->id == bpf_get_current_cgroup_id());
        bpf_cgroup_release(c);
        return r;
    }
    c = bpf_cgroup_from_id(bpf_get_current_cgroup_id());
    if (!c) return 101;
    c = bpf_kptr_xchg(&v->cg, c);
    if (c) bpf_cgroup_release(c);
    return 0;""", 2) == [0, 11]


# an object a program allocates holding a task: dropping the object releases the task
# (bpf_obj_free_fields: the release function of the kptr's type)
HOLDER = r"""
#include <bpf/bpf_core_read.h>
extern void *bpf_obj_new_impl(__u64 local_type_id, void *meta) __ksym;
#define bpf_obj_new(type) ((type *)bpf_obj_new_impl(bpf_core_type_id_local(type), NULL))
extern void bpf_obj_drop_impl(void *kptr, void *meta) __ksym;
#define bpf_obj_drop(kptr) bpf_obj_drop_impl(kptr, NULL)
struct holder { long n; struct task_struct __kptr *task; };
/* task_struct's usage (a refcount_t), through a CO-RE flavour of the struct */
struct task_struct___usage { struct { struct { int counter; } refs; } usage; }
    __attribute__((preserve_access_index));
#define USAGE(t) (((struct task_struct___usage *)(t))->usage.refs.counter)
"""


def test_a_task_held_by_a_dropped_object_is_released():
    # the current task's usage count, read while holding one reference, before and
    # after a reference is stored in an object that is dropped: equal unless the drop
    # left the reference behind (pyebpf counts no references: its tasks outlive runs)
    assert same_retvals("""
    struct task_struct *cur = (struct task_struct *)bpf_get_current_task_btf();
    struct task_struct *t = bpf_task_acquire(cur);
    if (!t) return 100;
    int before = USAGE(t);
    struct holder *h = bpf_obj_new(struct holder);
    if (!h) { bpf_task_release(t); return 101; }
    t = bpf_kptr_xchg(&h->task, t);
    if (t) bpf_task_release(t);
    bpf_obj_drop(h);
    t = bpf_task_acquire(cur);
    if (!t) return 102;
    int after = USAGE(t);
    bpf_task_release(t);
    return after - before + 10;""", 3, HOLDER) == [10, 10, 10]


@pytest.mark.parametrize("body, message", [
    ("struct task_struct *t = v->task; if (!t) return 1; bpf_task_release(t); return 0;",
     "R1 must be referenced or trusted"),
    ("struct task_struct *t = bpf_kptr_xchg(&v->task, "
     "(struct task_struct *)bpf_get_current_task_btf()); if (t) bpf_task_release(t); "
     "return 0;",
     "R2 must be referenced when passed to release function"),
    ("struct task_struct *t = v->task; if (!t) return 1; t = bpf_kptr_xchg(&v->task, t); "
     "if (t) bpf_task_release(t); return 0;",
     "R2 must be referenced when passed to release function"),
    ("struct cgroup *c = bpf_cgroup_from_id(1); if (!c) return 1; "
     "struct task_struct *t = bpf_kptr_xchg(&v->task, c); if (t) bpf_task_release(t); "
     "return 0;",
     "invalid kptr access, R2 type=ptr_cgroup expected=ptr_task_struct"),
    ("struct task_struct *t = bpf_task_from_pid(2); if (!t) return 1; "
     "t = bpf_kptr_xchg(&v->task, t); return t != 0;",
     "BPF_EXIT instruction in main prog would lead to reference leak"),
    ("struct task_struct *t = bpf_task_from_pid(2); if (!t) return 1; "
     "*(struct task_struct **)&v->task = t; bpf_task_release(t); return 0;",
     "store to referenced kptr disallowed"),
], ids=["release-a-loaded-kptr", "store-an-unreferenced-task", "store-a-loaded-kptr",
        "store-the-wrong-struct", "leak-the-old-task", "store-with-an-instruction"])
def test_a_misused_task_kptr_is_refused_as_the_kernel_refuses_it(body, message):
    data = _kptr_source("struct tval *v = bpf_map_lookup_elem(&tasks, &k);\n"
                        "if (!v) return 99;\n" + body)
    assert_refused_alike(*verdicts(data), message)


def test_deleting_an_element_lets_its_cgroup_go_and_lookups_show_the_field_as_zero():
    obj = pyebpf.load(_kptr_source("""
    struct cval init = {.n = 7}, *v;
    bpf_map_update_elem(&cgroups, &k, &init, BPF_NOEXIST);
    v = bpf_map_lookup_elem(&cgroups, &k);
    if (!v) return 99;
    struct cgroup *c = bpf_cgroup_from_id(1);
    if (!c) return 100;
    c = bpf_kptr_xchg(&v->cg, c);
    if (c) bpf_cgroup_release(c);
    return 0;"""))
    try:
        assert obj.program("prog").run(FRAME).retval == 0
        m = obj.maps["cgroups"]
        key = (0).to_bytes(4, "little")
        assert m[key] == (7).to_bytes(8, "little") + bytes(8)
        del m[key]
        assert len(m) == 0
    finally:
        obj.close()


# --- the model beyond what the kernel here shows ------------------------------------------

TREE = Environment(cgroups=(("/", 1), ("/a", 5), ("/a/b", 9), ("/c", 12)),
                   task_cgroup="/a/b")


def test_a_cgroup_of_a_deeper_tree_shows_its_level_id_and_ancestor():
    assert engine_retval("""
    struct cgroup *c = bpf_cgroup_from_id(9);
    if (!c) return 100;
    struct cgroup *a = bpf_cgroup_ancestor(c, 1);
    int r = c->level | c->kn->id << 4;
    if (a) { r |= a->kn->id << 16 | a->level << 24; bpf_cgroup_release(a); }
    bpf_cgroup_release(c);
    return r;""", env=TREE, machine=this_process()) == 2 | 9 << 4 | 5 << 16 | 1 << 24


@pytest.mark.parametrize("cgid, want", [(1, 1), (5, 1), (9, 1), (12, 0)])
def test_the_current_task_is_under_its_cgroup_and_its_ancestors_only(cgid, want):
    assert engine_retval(f"""
    struct cgroup *c = bpf_cgroup_from_id({cgid});
    if (!c) return 100;
    long r = bpf_task_under_cgroup(CURRENT, c);
    bpf_cgroup_release(c);
    return r;""", env=TREE, machine=this_process()) == want


def test_another_task_is_in_the_root_cgroup():
    assert engine_retval("""
    struct task_struct *t = bpf_task_from_pid(2);
    if (!t) return 100;
    struct cgroup *root = bpf_cgroup_from_id(1), *a = bpf_cgroup_from_id(5);
    long r = 0;
    if (root) { r |= bpf_task_under_cgroup(t, root); bpf_cgroup_release(root); }
    if (a) { r |= bpf_task_under_cgroup(t, a) << 1; bpf_cgroup_release(a); }
    bpf_task_release(t);
    return r;""", env=TREE, machine=this_process(tasks=(KTHREADD,))) == 1


def test_bpf_task_from_vpid_finds_tasks_of_the_current_namespace_by_their_pid_there():
    from pyebpf.trace import Machine
    ns, other = (4, 0xF0000001), (4, 0xF0000002)
    machine = Machine(task=Task(pid=300, ns_pid=1, pidns=ns, fields={}),
                      tasks=(Task(pid=301, ns_pid=2, pidns=ns, address=0xFFFF888100900000,
                                  fields={}),
                             Task(pid=302, ns_pid=3, pidns=other,
                                  address=0xFFFF888100A00000, fields={})))
    body = """
    struct task_struct *t = bpf_task_from_vpid(%d);
    if (!t) return 100;
    int r = t->pid;
    bpf_task_release(t);
    return r;"""
    got = [engine_retval(body % vpid, machine=machine) for vpid in (1, 2, 3, 301)]
    assert got == [300, 301, 100, 100]


def test_without_a_machine_a_packet_run_finds_no_task():
    assert engine_retval("""
    struct task_struct *t = bpf_task_from_pid(2);
    if (!t) return 100;
    bpf_task_release(t);
    return 1;""") == 100
