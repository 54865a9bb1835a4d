"""``bpf_cgroup_read_xattr`` (fs/bpf_fs_kfuncs.c) against the kernel: a tc program reads
an extended attribute of its task's cgroup (``bpf_cgroup_from_id`` of
``bpf_get_current_cgroup_id``) into a dynptr; BPF_PROG_TEST_RUN's retval and the bytes
the dynptr covers are compared.  Then the verifier's rule for its ``name__str``
argument (``check_reg_const_str``): the kernel's refusals and messages.

BPF_PROG_TEST_RUN runs a tc program in the process that asks, so for the kernel's run
this process moves into a cgroup v2 directory made for the test, whose attributes are
set with os.setxattr; the engine runs with an Environment declaring the same cgroup as
the task's and the same attributes (``Environment.cgroup_xattrs``).  The program names
no cgroup id, so the recorded answers replay where no cgroup can be made.
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import zlib

import pytest

import pyebpf
from pyebpf import Environment
from pyebpf.environment import EnvironmentSpecError
from pyebpf.skb import kern
from pyebpf.trace.machine import struct_bytes
from pyebpf.kernel import sysbpf
from pyebpf.kernel.oracle import KernelError
from pyebpf.verifier.errnos import errno_of

from bpfc import compile_object
from cgroup_support import cgroup2_mount
from current_task import CSS_SET, this_process
from objdiff import assert_refused_alike, verdicts
from recorded_kernel import count_comparison

FRAME = bytes(64)
CGROUP = "/pyebpf_xattr_test"

DECLS = r"""
struct cgroup { int level; } __attribute__((preserve_access_index));
extern struct cgroup *bpf_cgroup_from_id(__u64 cgid) __ksym;
extern struct cgroup *bpf_cgroup_ancestor(struct cgroup *cgrp, int level) __ksym;
extern void bpf_cgroup_release(struct cgroup *cgrp) __ksym;
extern int bpf_cgroup_read_xattr(struct cgroup *cgroup, const char *name__str,
                                 struct bpf_dynptr *value_p) __ksym;
extern int bpf_dynptr_from_skb(struct __sk_buff *skb, __u64 flags,
                               struct bpf_dynptr *ptr__uninit) __ksym;
extern int bpf_dynptr_adjust(const struct bpf_dynptr *ptr, __u32 start, __u32 end) __ksym;
char LICENSE[] SEC("license") = "GPL";
"""

# the task's cgroup in ``c``, the global ``value`` (``size`` bytes) as the dynptr ``d``;
# ``body`` sets ``r``.  ``world`` (a digest of the cgroup's attributes, read to no effect)
# makes the recorded answers of one program in different worlds differ: they are keyed
# by the program and the contents of the maps it reaches
PROG = r"""
unsigned char value[%(size)d] = {};
const volatile unsigned int world = %(world)d;

SEC("tc") int prog(struct __sk_buff *skb)
{
    struct bpf_dynptr d;
    struct cgroup *c = bpf_cgroup_from_id(bpf_get_current_cgroup_id());
    int r;

    asm volatile("" : : "r"(world));
    if (!c)
        return -1000;
    bpf_dynptr_from_mem(value, sizeof(value), 0, &d);
    %(body)s
    bpf_cgroup_release(c);
    return r;
}
"""


def read(name: str) -> str:
    return f'r = bpf_cgroup_read_xattr(c, "{name}", &d);'


@contextlib.contextmanager
def in_cgroup(xattrs: dict):
    """This process in a fresh cgroup v2 directory holding ``xattrs``, for the kernel's
    run; where the recorded answers stand in for the kernel, nothing."""
    if sysbpf.calls.mode == "replay":
        yield
        return
    mount = cgroup2_mount()
    if mount is None:
        pytest.fail("a live kernel run needs a mounted cgroup2 hierarchy")
    path = mount + CGROUP
    os.mkdir(path)
    try:
        for name, value in xattrs.items():
            os.setxattr(path, name, value)
        with open(path + "/cgroup.procs", "w") as f:
            f.write(str(os.getpid()))
        try:
            yield
        finally:
            with open(mount + "/cgroup.procs", "w") as f:
                f.write(str(os.getpid()))
    finally:
        os.rmdir(path)


def runs(body: str, xattrs: dict, size: int = 16):
    """(pyebpf's, the kernel's) (retval, value, packet) of one run of PROG."""
    world = zlib.crc32(repr(sorted(xattrs.items())).encode())
    data = compile_object(DECLS + PROG % {"size": size, "body": body, "world": world})
    env = Environment(cgroups=(("/", 1), (CGROUP, 2)), task_cgroup=CGROUP,
                      cgroup_xattrs={CGROUP: xattrs})
    obj = pyebpf.load(data, env=env)
    try:
        r = obj.program("prog").run(FRAME)
        ours = (r.retval, obj.maps[".bss"][bytes(4)], r.data_out)
    finally:
        obj.close()
    with in_cgroup(xattrs), pyebpf.kernel.load_object(data) as kobj:
        k = kobj.program("prog").test_run(FRAME)
        theirs = (k.retval_signed, kobj.maps[".bss"].lookup(bytes(4)), k.data)
    count_comparison()
    return ours, theirs


def same(body: str, xattrs: dict, size: int = 16):
    ours, theirs = runs(body, xattrs, size)
    assert ours == theirs
    return ours


def test_an_attribute_is_copied_and_its_length_returned():
    retval, value, _ = same(read("user.pyebpf_a"), {"user.pyebpf_a": b"hello"})
    assert (retval, value) == (5, b"hello".ljust(16, b"\0"))


def test_the_right_one_of_several_attributes_is_read():
    retval, value, _ = same(read("user.pyebpf_b"), {"user.pyebpf_a": b"first",
                                                    "user.pyebpf_b": b"second",
                                                    "user.pyebpf_c": b"third"})
    assert (retval, value[:6]) == (6, b"second")


def test_a_missing_attribute_is_enodata():
    retval, value, _ = same(read("user.pyebpf_missing"), {"user.pyebpf_a": b"hello"})
    assert (retval, value) == (-errno.ENODATA, bytes(16))


def test_a_value_longer_than_the_dynptr_is_erange_and_nothing_is_written():
    retval, value, _ = same(read("user.pyebpf_a"), {"user.pyebpf_a": b"hello"}, size=4)
    assert (retval, value) == (-errno.ERANGE, bytes(4))


def test_a_value_as_long_as_the_dynptr_fits():
    retval, value, _ = same(read("user.pyebpf_a"), {"user.pyebpf_a": b"hello"}, size=5)
    assert (retval, value) == (5, b"hello")


def test_an_empty_value_reads_as_length_0():
    retval, _, _ = same(read("user.pyebpf_a"), {"user.pyebpf_a": b""})
    assert retval == 0


def test_a_zero_sized_dynptr_is_erange_for_a_value():
    retval, _, _ = same("bpf_dynptr_adjust(&d, 0, 0); " + read("user.pyebpf_a"),
                        {"user.pyebpf_a": b"hello"})
    assert retval == -errno.ERANGE


@pytest.mark.parametrize("name", ["trusted.pyebpf_a", "use", "USER.pyebpf_a", ""])
def test_a_name_outside_user_is_eperm_even_when_set(name):
    retval, _, _ = same(read(name), {"user.pyebpf_a": b"hello"}
                        | ({"trusted.pyebpf_a": b"x"} if name.startswith("trusted") else {}))
    assert retval == -errno.EPERM


def test_the_bare_user_prefix_is_a_name_no_attribute_has():
    retval, _, _ = same(read("user."), {"user.pyebpf_a": b"hello"})
    assert retval == -errno.ENODATA


def test_a_null_dynptr_is_einval():
    # bpf_dynptr_from_mem's unknown flag leaves the dynptr NULL
    retval, _, _ = same("bpf_dynptr_from_mem(value, sizeof(value), 1, &d); "
                        + read("user.pyebpf_a"), {"user.pyebpf_a": b"hello"})
    assert retval == -errno.EINVAL


def test_the_name_is_checked_before_the_dynptr():
    retval, _, _ = same("bpf_dynptr_from_mem(value, sizeof(value), 1, &d); "
                        + read("trusted.pyebpf_a"), {"user.pyebpf_a": b"hello"})
    assert retval == -errno.EPERM


def test_an_skb_dynptr_receives_the_value_in_the_packet():
    retval, _, packet = same("bpf_dynptr_from_skb(skb, 0, &d); "
                             "bpf_dynptr_adjust(&d, 20, 40); " + read("user.pyebpf_a"),
                             {"user.pyebpf_a": b"in the packet"})
    assert (retval, packet[20:33]) == (13, b"in the packet")


def test_an_ancestor_without_the_attribute_is_enodata():
    retval, _, _ = same("struct cgroup *a = bpf_cgroup_ancestor(c, 0); "
                        "if (!a) { bpf_cgroup_release(c); return -1001; } "
                        'r = bpf_cgroup_read_xattr(a, "user.pyebpf_a", &d); '
                        "bpf_cgroup_release(a);", {"user.pyebpf_a": b"hello"})
    assert retval == -errno.ENODATA


def test_the_environment_from_toml_gives_the_same_attributes(tmp_path):
    toml = tmp_path / "net.toml"
    toml.write_text(f'task_cgroup = "{CGROUP}"\n[cgroups]\n"/" = 1\n"{CGROUP}" = 2\n'
                    f'[cgroup_xattrs."{CGROUP}"]\n"user.pyebpf_a" = "hello"\n'
                    f'"user.pyebpf_b" = [0, 1, 255]\n')
    env = Environment.from_toml(toml)
    assert env.xattrs(CGROUP) == {"user.pyebpf_a": b"hello", "user.pyebpf_b": b"\0\1\xff"}


@pytest.mark.parametrize("xattrs, message", [
    ({"/nowhere": {"user.a": b""}}, "cgroup_xattrs['/nowhere']: not one of the declared"),
    ({CGROUP: {"other.a": b""}}, "name 'other.a': expected user.NAME"),
    ({CGROUP: {"user.": b""}}, "name 'user.': expected user.NAME"),
    ({CGROUP: {"user." + "a" * 251: b""}}, "longer than 255 bytes"),
    ({CGROUP: {"user.a": "text"}}, "['user.a']: expected at most 65536 bytes"),
    ({CGROUP: {"user.a": bytes(65537)}}, "['user.a']: expected at most 65536 bytes"),
    ({CGROUP: {f"user.{i}": b"" for i in range(129)}}, "more than 128 user.* attributes"),
], ids=["undeclared-cgroup", "namespace", "bare-prefix", "long-name", "str-value",
        "long-value", "too-many"])
def test_an_attribute_setxattr_would_refuse_is_refused_naming_it(xattrs, message):
    with pytest.raises(EnvironmentSpecError) as exc:
        Environment(cgroups=(("/", 1), (CGROUP, 2)), cgroup_xattrs=xattrs)
    assert message in str(exc.value)


# the task's default cgroup through task->cgroups->dfl_cgrp (an RCU pointer, which the
# KF_RCU kfunc takes): no bpf_cgroup_from_id, which the kernel gives tc programs only
VIA_TASK = DECLS + r"""
struct css_set { struct cgroup *dfl_cgrp; } __attribute__((preserve_access_index));
struct task_struct { struct css_set *cgroups; } __attribute__((preserve_access_index));
extern void bpf_rcu_read_lock(void) __ksym;
extern void bpf_rcu_read_unlock(void) __ksym;
unsigned char value[16];

SEC("%s") int prog(struct __sk_buff *skb)
{
    struct task_struct *t = bpf_get_current_task_btf();
    struct bpf_dynptr d;
    struct cgroup *c;
    int r = -1;

    bpf_dynptr_from_mem(value, sizeof(value), 0, &d);
    bpf_rcu_read_lock();
    c = t->cgroups->dfl_cgrp;
    if (c)
        r = bpf_cgroup_read_xattr(c, "user.a", &d);
    bpf_rcu_read_unlock();
    return r;
}
"""


@pytest.mark.parametrize("section", ["socket", "tc", "action"])
def test_every_program_type_may_call_it_as_in_the_kernel(section):
    # the kernel registers it in its common set: socket filters and tc programs alike
    assert verdicts(compile_object(VIA_TASK % section)) == (None, None)


def test_a_socket_filter_reads_its_tasks_cgroup_through_the_task_as_the_kernel_does():
    # the engine's machine: this process, its css_set's dfl_cgrp the Environment's
    # cgroup CGROUP (index 1), where the kernel's run finds the cgroup it was moved into
    xattrs = {"user.a": b"via the task"}
    data = compile_object(VIA_TASK % "socket")
    env = Environment(cgroups=(("/", 1), (CGROUP, 2)), task_cgroup=CGROUP,
                      cgroup_xattrs={CGROUP: xattrs})
    dfl_cgrp = kern.CGROUP_ADDRESS + kern.CGROUP_STRIDE
    machine = dataclasses.replace(this_process(), kernel_memory={
        CSS_SET: struct_bytes("css_set", {"dfl_cgrp": dfl_cgrp})})
    obj = pyebpf.load(data, env=env)
    try:
        r = obj.program("prog").run(FRAME, machine=machine)
        ours = (r.retval, obj.maps[".bss"][bytes(4)])
    finally:
        obj.close()
    with in_cgroup(xattrs), pyebpf.kernel.load_object(data) as kobj:
        k = kobj.program("prog").test_run(FRAME)
        theirs = (k.retval, kobj.maps[".bss"].lookup(bytes(4)))
    count_comparison()
    assert ours == theirs
    assert ours == (12, b"via the task".ljust(16, b"\0"))


# --- the name__str argument (check_kfunc_args, KF_ARG_PTR_TO_CONST_STR) -------------------

NAMED = r"""
%(globals)s
unsigned char buf[8] = {};

SEC("tc") int prog(struct __sk_buff *skb)
{
    struct bpf_dynptr d;
    struct cgroup *c = bpf_cgroup_from_id(1);
    int r;

    if (!c)
        return 0;
    bpf_dynptr_from_mem(buf, sizeof(buf), 0, &d);
    %(body)s
    r = bpf_cgroup_read_xattr(c, %(name)s, &d);
    bpf_cgroup_release(c);
    return r;
}
"""


def named(name: str, body: str = "", globals_: str = "") -> bytes:
    return compile_object(DECLS + NAMED % {"name": name, "body": body, "globals": globals_})


def test_a_constant_string_loads_as_in_the_kernel():
    assert verdicts(named('"user.a"')) == (None, None)


@pytest.mark.parametrize("name, body, globals_, message", [
    ("n", 'char n[8] = "user.a"; asm volatile("" : : "r"(n) : "memory");', "",
     "arg#1 doesn't point to a const string"),
    ("(const char *)skb", "", "", "arg#1 doesn't point to a const string"),
    ("n", "", 'char n[8] = "user.a";', "R2 does not point to a readonly map'"),
    ("n + (skb->len & 1)", "", 'const volatile char n[16] = "user.a";',
     "R2 is not a constant address'"),
    ("(const char *)n", "", 'const volatile char n[6] SEC(".rodata.nz") = '
     "{'u', 's', 'e', 'r', '.', 'a'};", "string is not zero-terminated"),
    ("(const char *)0", "", "", "Possibly NULL pointer passed to trusted arg1"),
], ids=["stack", "ctx", "writable-global", "variable-offset", "unterminated", "null"])
def test_a_name_that_is_no_constant_string_is_refused_as_the_kernel_refuses_it(
        name, body, globals_, message):
    ours, theirs = verdicts(named(name, body, globals_))
    assert_refused_alike(ours, theirs, message)


@pytest.mark.parametrize("data, message, code", [
    (named("n", globals_='char n[8] = "user.a";'), "R2 does not point to a readonly map'",
     errno.EACCES),
    (named("(const char *)skb"), "arg#1 doesn't point to a const string", errno.EINVAL),
], ids=["writable-global", "ctx"])
def test_a_refused_name_has_the_kernels_errno(data, message, code):
    # check_reg_const_str's EACCES for a map programs may write; EINVAL for no map value
    with pytest.raises(KernelError) as theirs:
        pyebpf.kernel.load_object(data)
    count_comparison()
    assert (theirs.value.errno, errno_of(message)) == (code, code)
