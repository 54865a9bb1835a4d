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

import os
import threading

import pytest

import pyebpf
from pyebpf import Environment, isa
from pyebpf.trace import Machine, Task

from bpfc import compile_object
from cgroup_support import cgroup2_mount
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


# --- a task's default cgroup: task->cgroups->dfl_cgrp -----------------------------------

DFL_CGRP = """
    struct css_set { struct cgroup *dfl_cgrp; } __attribute__((preserve_access_index));
    struct task_struct___cg { struct css_set *cgroups; } __attribute__((preserve_access_index));
    struct task_struct *t = %s;
    if (!t) return 100;
    struct cgroup *c = ((struct task_struct___cg *)t)->cgroups->dfl_cgrp;
    long r = c ? %s : 101;
    %s
    return r;"""
# the current task's: the cgroup bpf_get_current_cgroup_id names; kthreadd's: the root
CURRENT_DFL_CGRP = DFL_CGRP % ("CURRENT", "(c->kn->id == bpf_get_current_cgroup_id()) | "
                               "(c->level + 1) << 1", "")
KTHREADD_DFL_CGRP = DFL_CGRP % ("bpf_task_from_pid(2)", "c->kn->id | (c->level + 1) << 8",
                                "bpf_task_release(t);")


@pytest.mark.parametrize("body", [CURRENT_DFL_CGRP, KTHREADD_DFL_CGRP],
                         ids=["current-task", "kthreadd"])
def test_a_machine_that_does_not_give_a_tasks_cgroups_has_them_read_as_in_the_kernel(body):
    """Without a css_set in the machine's memory, the current task's default cgroup is
    the Environment's task_cgroup (this process's, at level 0 where the kernel runs it
    in the root cgroup) and every other task's is the root cgroup."""
    ours, theirs = _runs(body, machine=Machine(tasks=(KTHREADD,)),
                         env=Environment(cgroups=(("/", 1),)))
    assert ours == theirs


@pytest.mark.parametrize("body, want", [(CURRENT_DFL_CGRP, 1 | 2 << 1),
                                        (KTHREADD_DFL_CGRP, 1 | 1 << 8)],
                         ids=["current-task", "kthreadd"])
def test_the_current_tasks_default_cgroup_is_the_environments_task_cgroup(body, want):
    env = Environment(cgroups=(("/", 1), ("/app", 7)), task_cgroup="/app")
    assert engine_retval(body, machine=Machine(tasks=(KTHREADD,)), env=env) == want


def test_a_machine_that_gives_a_tasks_cgroups_keeps_them():
    # this_process(): its css_set's dfl_cgrp a struct cgroup of zeros in kernel memory
    assert engine_retval(CURRENT_DFL_CGRP, machine=this_process()) == 0 | 1 << 1


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


# --- the task iterator: what it walks -----------------------------------------------------

# init_task (the idle task of CPU 0, pid 0), which the kernel's task list starts at
INIT_TASK = Task(pid=0, comm="swapper/0", address=0xFFFF888100700000,
                 fields={"flags": isa.PF_KTHREAD})
TASK_ITER = ITERS + r"""
#define WALKED(task, flags) \
    int pid = (__u32)bpf_get_current_pid_tgid(), tgid = TGID; \
    int first = 0, found = 0, leaders = 1, mine = 1, other = 0; \
    struct bpf_iter_task it; \
    int r = bpf_iter_task_new(&it, task, flags); \
    struct task_struct *t = bpf_iter_task_next(&it); \
    if (t) first = t->pid == 0 ? 1 : t->pid == pid ? 2 : 3; \
    while (t) { \
        found |= t->pid == pid; \
        leaders &= t->pid == t->tgid; \
        mine &= t->tgid == tgid; \
        other |= t->tgid == tgid && t->pid != pid; \
        t = bpf_iter_task_next(&it); \
    } \
    bpf_iter_task_destroy(&it); \
    return -r | first << 8 | found << 12 | leaders << 13 | mine << 14 | other << 15;
"""
# WALKED's answer: the first task yielded (1 init_task, 2 the current task, 3 another),
# whether the current task was yielded, whether only group leaders were, only threads
# of this process, another thread of this process; the low byte -errno of _new
FIRST_INIT, FIRST_CURRENT = 1 << 8, 2 << 8
FOUND, LEADERS, MINE, OTHER = 1 << 12, 1 << 13, 1 << 14, 1 << 15


@pytest.fixture
def second_thread():
    """A second thread of this process, waiting while the test runs: the kernel's
    thread walks meet it, and the machine declares it."""
    started, done = threading.Event(), threading.Event()

    def wait():
        started.set()
        done.wait()
    thread = threading.Thread(target=wait)
    thread.start()
    started.wait()
    try:
        yield Task(pid=thread.native_id, tgid=os.getpid(), address=0xFFFF888100B00000,
                   fields={})
    finally:
        done.set()
        thread.join()


@pytest.mark.parametrize("task, flags, want", [
    ("0", isa.BPF_TASK_ITER_ALL_PROCS, FIRST_INIT | FOUND | LEADERS),
    ("0", isa.BPF_TASK_ITER_ALL_THREADS, FIRST_INIT | FOUND | OTHER),
    ("CURRENT", isa.BPF_TASK_ITER_PROC_THREADS, FIRST_CURRENT | FOUND | MINE | OTHER),
    ("0", isa.BPF_TASK_ITER_PROC_THREADS, isa.Errno.EINVAL | LEADERS | MINE),
    ("CURRENT", 3, isa.Errno.EINVAL | LEADERS | MINE),
], ids=["all-procs", "all-threads", "proc-threads", "proc-threads-of-null",
        "unknown-flags"])
def test_the_task_iterator_walks_the_tasks_the_kernel_walks(task, flags, want,
                                                            second_thread):
    machine = this_process(tasks=(INIT_TASK, KTHREADD, second_thread))
    data = compile_object(DECLS + TASK_ITER + 'SEC("tc") int prog(struct __sk_buff *skb) '
                          f'{{ WALKED({task}, {flags}) }}\n')
    ours, theirs = _object_runs(data, machine)
    assert (ours, theirs) == (want, want), f"pyebpf {ours:#x}, kernel {theirs:#x}"


def test_a_socket_filter_walks_the_tasks_too():
    # the kernel registers the task iterator for every program type (its common set)
    data = compile_object(DECLS + TASK_ITER + 'SEC("tc") int prog(struct __sk_buff *skb) '
                          f'{{ WALKED(0, {isa.BPF_TASK_ITER_ALL_PROCS}) }}\n')
    machine = this_process(tasks=(INIT_TASK, KTHREADD))
    want = FIRST_INIT | FOUND | LEADERS
    assert _object_runs(data, machine, "socket_filter") == (want, want)


def test_a_task_the_iterator_yields_may_be_acquired():
    data = compile_object(DECLS + ITERS + 'SEC("tc") int prog(struct __sk_buff *skb) {'
                          """
    struct bpf_iter_task it;
    int pid = (__u32)bpf_get_current_pid_tgid(), r = 0;
    bpf_iter_task_new(&it, CURRENT, 2);
    struct task_struct *t = bpf_iter_task_next(&it);
    if (t) {
        t = bpf_task_acquire(t);
        if (t) { r = t->pid == pid; bpf_task_release(t); }
    }
    bpf_iter_task_destroy(&it);
    return r;
}
""")
    assert _object_runs(data, this_process()) == (1, 1)


def _object_runs(data: bytes, machine, prog_type=None):
    """(pyebpf's retval, the kernel's) of one run of the object's ``prog``."""
    obj = pyebpf.load(data, prog_type=prog_type)
    try:
        ours = obj.program("prog").run(FRAME, machine=machine).retval & 0xFFFFFFFF
        with pyebpf.kernel.load_object(data, prog_type=prog_type) as kobj:
            theirs = kobj.program("prog").test_run(FRAME).retval
    finally:
        obj.close()
    count_comparison()
    return ours, theirs


ORDER = ITERS + r"""
#ifndef SEEN
#define SEEN 0
#endif
SEC("tc") int prog(struct __sk_buff *skb) {
    struct bpf_iter_task it;
    __u64 h = 0;
    struct task_struct *t;
    bpf_iter_task_new(&it, TASK, FLAGS);
    while ((t = bpf_iter_task_next(&it)))
        if (t->pid < 32)
            h = h * 32 + t->pid;
        else if (t->pid == SEEN)
            h = h * 32 + 1;
    bpf_iter_task_destroy(&it);
    return h;
}
"""
# a machine of thread groups: init_task; 20 (the current task) and its thread 21; 7 and
# its threads 9 and 8; thread 31 of process 30, whose leader is not declared
GROUPS = dict(task=Task(pid=20, tgid=20, address=0xFFFF888101000000, fields={}),
              tasks=(Task(pid=21, tgid=20, address=0xFFFF888101100000, fields={}),
                     Task(pid=9, tgid=7, address=0xFFFF888101200000, fields={}),
                     Task(pid=8, tgid=7, address=0xFFFF888101300000, fields={}),
                     Task(pid=7, address=0xFFFF888101400000, fields={}),
                     Task(pid=31, tgid=30, address=0xFFFF888101500000, fields={}),
                     INIT_TASK))


def _digits(h: int, base: int) -> list[int]:
    """The values a program packed into ``h``, ``h = h * base + value`` for each, in order."""
    values = []
    while h:
        h, value = divmod(h, base)
        values.insert(0, value)
    return values


def _walk(task: str, flags: int, machine, seen: int = 0) -> list[int]:
    """The pids below 32 the iterator yields, in order, and 1 for the task of pid
    ``seen`` (the machine's kworker is one of its tasks, pid 40 unless declared)."""
    data = compile_object(DECLS + f"#define TASK {task}\n#define FLAGS {flags}\n"
                          f"#define SEEN {seen}\n" + ORDER)
    obj = pyebpf.load(data)
    try:
        h = obj.program("prog").run(FRAME, machine=machine).retval & 0xFFFFFFFF
    finally:
        obj.close()
    return _digits(h, 32)


@pytest.mark.parametrize("task, flags, pids", [
    ("0", isa.BPF_TASK_ITER_ALL_PROCS, [7, 20, 31]),
    ("0", isa.BPF_TASK_ITER_ALL_THREADS, [7, 8, 9, 20, 21, 31]),
    ("CURRENT", isa.BPF_TASK_ITER_PROC_THREADS, [20, 21]),
], ids=["all-procs", "all-threads", "proc-threads"])
def test_the_task_iterator_walks_the_declared_groups_leader_first_in_tgid_order(
        task, flags, pids):
    from pyebpf.trace import Machine
    # init_task's pid 0 adds nothing to the hash: it is first in the two full walks
    assert _walk(task, flags, Machine(**GROUPS)) == pids


def test_the_task_iterator_walks_the_kworker_as_a_task_of_the_machine():
    from pyebpf.trace import Machine
    from pyebpf.trace.machine import KWORKER_PID
    assert _walk("0", isa.BPF_TASK_ITER_ALL_PROCS, Machine(**GROUPS),
                 seen=KWORKER_PID) == [7, 20, 31, 1]


def test_proc_threads_from_a_thread_walks_the_threads_after_it():
    from pyebpf.trace import Machine
    groups = dict(GROUPS, task=GROUPS["tasks"][0],
                  tasks=(GROUPS["task"],) + GROUPS["tasks"][1:])
    assert _walk("CURRENT", isa.BPF_TASK_ITER_PROC_THREADS, Machine(**groups)) == [21]


def test_without_a_machine_the_task_iterator_yields_nothing():
    data = compile_object(DECLS + "#define TASK 0\n#define FLAGS 1\n" + ORDER)
    obj = pyebpf.load(data)
    try:
        assert obj.program("prog").run(FRAME).retval == 0
    finally:
        obj.close()


def test_pid_0_finds_no_task_though_the_machine_declares_init_task():
    assert engine_retval("""
    struct task_struct *t = bpf_task_from_pid(0);
    if (!t) return 100;
    bpf_task_release(t);
    return 1;""", machine=this_process(tasks=(INIT_TASK,))) == 100


# --- the VMA iterator -------------------------------------------------------------------

VMA_ITER = ITERS + r"""
struct vm_area_struct { unsigned long vm_start; unsigned long vm_end; }
    __attribute__((preserve_access_index));
extern struct vm_area_struct *bpf_iter_task_vma_next(struct bpf_iter_task_vma *it) __ksym;
SEC("tc") int prog(struct __sk_buff *skb) {
    struct task_struct *t = TASK;
    if (!t) return 255;
    struct bpf_iter_task_vma it;
    struct vm_area_struct *v;
    int found = 0, ordered = 1;
    __u64 prev = 0, first = 0;
    int r = bpf_iter_task_vma_new(&it, t, ADDR);
    while ((v = bpf_iter_task_vma_next(&it))) {
        if (!found) first = v->vm_start;
        found = 1;
        ordered &= v->vm_start >= prev && v->vm_end > v->vm_start && v->vm_end > ADDR;
        prev = v->vm_end;
    }
    bpf_iter_task_vma_destroy(&it);
    RELEASE;
    return -r | found << 8 | ordered << 9 | FIRST;
}
"""
CURRENT_VMAS = "#define TASK CURRENT\n#define RELEASE\n"
# two mappings the machine declares for the current task
VMAS = ((0x400000, 0x401000), (0x600000, 0x602000))


def _vma_source(task: str, addr: int, first: str = "0") -> bytes:
    return compile_object(DECLS + task + f"#define ADDR {addr:#x}ull\n#define FIRST {first}\n"
                          + VMA_ITER)


@pytest.mark.parametrize("task, addr, want", [
    (CURRENT_VMAS, 0, 1 << 8 | 1 << 9),
    (CURRENT_VMAS, 0xFFFFFFFFFFFF, 1 << 9),
    ("#define TASK bpf_task_from_pid(2)\n#define RELEASE bpf_task_release(t)\n", 0,
     isa.Errno.ENOENT | 1 << 9),
], ids=["current", "current-above-every-mapping", "kthread"])
def test_the_vma_iterator_walks_the_mappings_the_kernel_walks(task, addr, want):
    machine = this_process(tasks=(KTHREADD,), vmas=VMAS)
    assert _object_runs(_vma_source(task, addr), machine) == (want, want)


@pytest.mark.parametrize("addr, first", [(0, 0x400000), (0x400800, 0x400000),
                                         (0x401000, 0x600000), (0x602000, 0)])
def test_the_vma_iterator_starts_at_the_first_mapping_ending_above_its_address(addr, first):
    obj = pyebpf.load(_vma_source(CURRENT_VMAS, addr, "(int)(first >> 12) << 12"))
    machine = this_process(vmas=VMAS)
    try:
        got = obj.program("prog").run(FRAME, machine=machine).retval & 0xFFFFFFFF
    finally:
        obj.close()
    assert got >> 12 << 12 == first


# --- the css iterator -----------------------------------------------------------------

CSS_ITER = ITERS + r"""
struct bpf_iter_css { __u64 __opaque[3]; } __attribute__((aligned(8)));
struct cgroup_subsys_state___parent { struct cgroup_subsys_state *parent; }
    __attribute__((preserve_access_index));
extern int bpf_iter_css_new(struct bpf_iter_css *it, struct cgroup_subsys_state *start,
                            unsigned int flags) __ksym;
extern struct cgroup_subsys_state *bpf_iter_css_next(struct bpf_iter_css *it) __ksym;
extern void bpf_iter_css_destroy(struct bpf_iter_css *it) __ksym;
#define SELF(c) (&((struct cgroup___css *)(c))->self)
#define CSS_WALKED(flags) \
    __u64 id = bpf_get_current_cgroup_id(); \
    struct cgroup *c = bpf_cgroup_from_id(id); \
    if (!c) return 255; \
    int first = 0, last = 0, levels = 0, n = 0; \
    struct bpf_iter_css it; \
    int r = bpf_iter_css_new(&it, SELF(c), flags); \
    struct cgroup_subsys_state *pos = bpf_iter_css_next(&it); \
    if (pos) first = pos->cgroup->kn->id == id; \
    while (pos) { \
        levels |= 1 << (pos->cgroup->level & 7); \
        last = pos->cgroup->kn->id == id; \
        n++; \
        pos = bpf_iter_css_next(&it); \
    } \
    bpf_iter_css_destroy(&it); \
    bpf_cgroup_release(c); \
    return -r | first << 8 | last << 9 | levels << 12 | (n & 0xff) << 20;
"""


def _cgroup_tree() -> dict:
    """The test's own cgroup v2 cgroup (``/proc/self/cgroup``), its ancestors and its
    descendants, each (path, id: its directory's inode number)."""
    mount = cgroup2_mount()
    if mount is None:
        raise OSError("no cgroup2 hierarchy is mounted")
    with open("/proc/self/cgroup") as f:
        own = next(line.rstrip("\n")[3:] for line in f if line.startswith("0::"))
    parts = [p for p in own.split("/") if p]
    paths = ["/" + "/".join(parts[:k]) for k in range(len(parts))]
    for top, dirs, _ in os.walk(mount + own.rstrip("/")):
        dirs.sort()
        paths.append("/" + os.path.relpath(top, mount).strip("./"))
    return {"own": "/" + "/".join(parts),
            "cgroups": [[p, os.stat(mount + p).st_ino] for p in paths]}


@pytest.fixture
def cgroup_tree(kernel_observation):
    return kernel_observation("the test's cgroup v2 cgroup, its ancestors and descendants",
                              "v1", _cgroup_tree, unavailable=(OSError,))


@pytest.mark.parametrize("flags", [isa.BPF_CGROUP_ITER_DESCENDANTS_PRE,
                                   isa.BPF_CGROUP_ITER_DESCENDANTS_POST,
                                   isa.BPF_CGROUP_ITER_ANCESTORS_UP,
                                   isa.BPF_CGROUP_ITER_SELF_ONLY, 0],
                         ids=["pre", "post", "ancestors-up", "self-only", "unspec"])
def test_the_css_iterator_walks_the_cgroups_the_kernel_walks(flags, cgroup_tree):
    own = cgroup_tree["own"]
    env = Environment(cgroups=tuple(map(tuple, cgroup_tree["cgroups"])), task_cgroup=own)
    level = len([p for p in own.split("/") if p])
    below = [p for p, _ in cgroup_tree["cgroups"]
             if p != own and p.startswith(own.rstrip("/") + "/")]
    if flags == isa.BPF_CGROUP_ITER_ANCESTORS_UP:
        walked = [level - k for k in range(level + 1)]
        want = 1 << 8 | (level == 0) << 9
    elif flags in (isa.BPF_CGROUP_ITER_DESCENDANTS_PRE, isa.BPF_CGROUP_ITER_DESCENDANTS_POST):
        walked = [level] + [len([p for p in b.split("/") if p]) for b in below]
        first_is_own = flags == isa.BPF_CGROUP_ITER_DESCENDANTS_PRE or not below
        last_is_own = flags == isa.BPF_CGROUP_ITER_DESCENDANTS_POST or not below
        want = first_is_own << 8 | last_is_own << 9
    else:
        walked, want = [], isa.Errno.EINVAL
    want |= sum(1 << (lv & 7) for lv in set(walked)) << 12 | (len(walked) & 0xFF) << 20
    data = compile_object(DECLS + CSS_ITER + 'SEC("tc") int prog(struct __sk_buff *skb) '
                          f'{{ CSS_WALKED({flags}) }}\n')
    ours, theirs = _runs_in(data, env)
    assert (ours, theirs) == (want, want), f"pyebpf {ours:#x}, kernel {theirs:#x}"


def _runs_in(data: bytes, env):
    """(pyebpf's retval in ``env``, the kernel's) of one run of the object's ``prog``."""
    obj = pyebpf.load(data)
    try:
        ours = obj.program("prog").run(FRAME, machine=this_process(), env=env).retval
        with pyebpf.kernel.load_object(data) as kobj:
            theirs = kobj.program("prog").test_run(FRAME).retval
    finally:
        obj.close()
    count_comparison()
    return ours & 0xFFFFFFFF, theirs


CSS_ORDER = r"""
SEC("tc") int prog(struct __sk_buff *skb) {
    struct cgroup *c = bpf_cgroup_from_id(START);
    if (!c) return 255;
    struct bpf_iter_css it;
    __u64 h = 0;
    struct cgroup_subsys_state *pos;
    bpf_iter_css_new(&it, SELF(c), FLAGS);
    while ((pos = bpf_iter_css_next(&it)))
        h = h * 16 + pos->cgroup->kn->id;
    bpf_iter_css_destroy(&it);
    bpf_cgroup_release(c);
    return h;
}
"""


@pytest.mark.parametrize("start, flags, ids", [
    (1, isa.BPF_CGROUP_ITER_DESCENDANTS_PRE, [1, 5, 9, 12]),
    (1, isa.BPF_CGROUP_ITER_DESCENDANTS_POST, [9, 5, 12, 1]),
    (5, isa.BPF_CGROUP_ITER_DESCENDANTS_PRE, [5, 9]),
    (9, isa.BPF_CGROUP_ITER_ANCESTORS_UP, [9, 5, 1]),
    (12, isa.BPF_CGROUP_ITER_DESCENDANTS_POST, [12]),
], ids=["pre", "post", "pre-of-a-subtree", "ancestors-up", "post-of-a-leaf"])
def test_the_css_iterator_walks_a_declared_tree_in_the_kernels_orders(start, flags, ids):
    data = compile_object(DECLS + CSS_ITER + f"#define START {start}\n#define FLAGS {flags}\n"
                          + CSS_ORDER)
    obj = pyebpf.load(data)
    try:
        h = obj.program("prog").run(FRAME, env=TREE, machine=this_process()).retval
    finally:
        obj.close()
    assert _digits(h, 16) == ids


def test_a_css_reads_its_parents_css_and_the_roots_none():
    data = compile_object(DECLS + CSS_ITER + r"""
SEC("tc") int prog(struct __sk_buff *skb) {
    struct cgroup *c = bpf_cgroup_from_id(9);
    if (!c) return 255;
    struct bpf_iter_css it;
    struct cgroup_subsys_state *pos, *prev = 0;
    int r = 0;
    bpf_iter_css_new(&it, SELF(c), BPF_CGROUP_ITER_ANCESTORS_UP);
    while ((pos = bpf_iter_css_next(&it))) {
        struct cgroup_subsys_state *up = ((struct cgroup_subsys_state___parent *)pos)->parent;
        if (prev) r = r << 1 | (((struct cgroup_subsys_state___parent *)prev)->parent == pos);
        r = r << 1 | (up == 0);
        prev = pos;
    }
    bpf_iter_css_destroy(&it);
    bpf_cgroup_release(c);
    return r;
}
""")
    obj = pyebpf.load(data)
    try:
        # 9 (not the root), then 5 (9's parent, not the root), then 1 (5's parent, root)
        assert obj.program("prog").run(FRAME, env=TREE, machine=this_process()).retval == \
            0b0_1_0_1_1
    finally:
        obj.close()


# --- probe reads into a dynptr --------------------------------------------------------

PROBE_READS = r"""
extern int bpf_dynptr_from_skb(struct __sk_buff *s, __u64 flags,
                               struct bpf_dynptr *ptr__uninit) __ksym;
extern int bpf_probe_read_kernel_dynptr(struct bpf_dynptr *dptr, __u32 off, __u32 size,
                                        const void *unsafe_ptr__ign) __ksym;
extern int bpf_probe_read_kernel_str_dynptr(struct bpf_dynptr *dptr, __u32 off, __u32 size,
                                            const void *unsafe_ptr__ign) __ksym;
extern int bpf_probe_read_user_dynptr(struct bpf_dynptr *dptr, __u32 off, __u32 size,
                                      const void *unsafe_ptr__ign) __ksym;
extern int bpf_probe_read_user_str_dynptr(struct bpf_dynptr *dptr, __u32 off, __u32 size,
                                          const void *unsafe_ptr__ign) __ksym;
SEC("tc") int prog(struct __sk_buff *skb) {
    char src[16] = "hello, dynptr";
    struct bpf_dynptr d;
    __u64 out = 0;
    if (bpf_dynptr_from_skb(skb, 0, &d))
        return 255;
    int r = bpf_probe_read_%s_dynptr(&d, %d, %d, %s);
    bpf_skb_load_bytes(skb, 0, &out, 8);
    __u32 fold = (__u32)out ^ (__u32)(out >> 32);
    return (r & 0xff) | (fold & 0xffffff) << 8;
}
"""


def _fold(packet: bytes) -> int:
    out = int.from_bytes(packet[:8], "little")
    return ((out ^ out >> 32) & 0xFFFFFF) << 8


@pytest.mark.parametrize("prog_type", ["sched_cls", "socket_filter"])
@pytest.mark.parametrize("kind, off, size, src, r, wrote", [
    ("kernel", 0, 8, "src", 0, b"hello, d"),
    ("kernel_str", 0, 16, "src", 14, b"hello, d"),
    ("kernel_str", 0, 4, "src", 4, b"hel\0"),
    ("kernel", 0, 0, "src", 0, b""),
    ("kernel", 0, 8, "(void *)0", -isa.Errno.ERANGE, b""),
    ("kernel_str", 0, 8, "(void *)0", -isa.Errno.ERANGE, b""),
    ("user", 0, 8, "src", -isa.Errno.EFAULT, b""),
    ("user_str", 0, 8, "src", -isa.Errno.EFAULT, b""),
    ("kernel", len(FRAME) - 4, 8, "src", -isa.Errno.E2BIG, b""),
], ids=["kernel", "kernel-str", "kernel-str-cut", "nothing", "kernel-null", "kernel-str-null",
        "user-of-a-kernel-address", "user-str-of-a-kernel-address", "past-the-end"])
def test_a_probe_read_into_an_skb_dynptr_answers_as_the_kernel(kind, off, size, src, r,
                                                              wrote, prog_type):
    # a socket filter's skb dynptr is read-only: the read comes first, then the write
    # of a read-only dynptr fails (__bpf_dynptr_copy's chunk loop)
    if prog_type == "socket_filter" and r >= 0 and size:
        r, wrote = -isa.Errno.EINVAL, b""
    data = compile_object(DECLS + PROBE_READS % (kind, off, size, src))
    want = (r & 0xFF) | _fold(wrote + FRAME[len(wrote):])
    ours, theirs = _object_runs(data, this_process(), prog_type)
    assert (ours, theirs) == (want, want), f"pyebpf {ours:#x}, kernel {theirs:#x}"


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
