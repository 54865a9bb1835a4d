"""A global function's ``arg:`` decl tags (libbpf's ``__arg_ctx``, ``__arg_nonnull``,
``__arg_nullable``, ``__arg_trusted``, ``__arg_untrusted``, ``__arg_arena``) and its
dynptr arguments, against the kernel (btf_prepare_func_args, btf_check_func_arg_match,
do_check_common): which tags and pointer types a call is refused for, with the kernel's
words, what a call must pass, what the function may do with what it gets, and the runs
of the programs that load.  The shapes are the selftests' verifier_global_ptr_args.c and
verifier_global_subprogs.c, in tc programs."""
import re

import pytest

import pyebpf
from pyebpf.errors import ElfError, KernelError

from bpfc import compile_object
from current_task import this_process
from objdiff import assert_refused_alike, level_2_logs, same_retval, verdicts
from recorded_kernel import count_comparison

HEAD = r"""
#define __arg(tag) __attribute__((btf_decl_tag("arg:" tag)))
struct task_struct { int pid; int tgid; } __attribute__((preserve_access_index));
struct no_such_kernel_struct { int x; };
struct sk_buff { unsigned int len; };
extern struct task_struct *bpf_task_from_pid(int pid) __ksym;
extern void bpf_task_release(struct task_struct *p) __ksym;
extern int bpf_dynptr_from_skb(struct __sk_buff *skb, __u64 flags,
                               struct bpf_dynptr *ptr) __ksym;
#define CURRENT ((struct task_struct *)bpf_get_current_task_btf())
#define TGID ((int)(bpf_get_current_pid_tgid() >> 32))
/* what a function returns so that clang cannot fold its calls away */
#define UNKNOWN bpf_get_prandom_u32()
"""
# a pid above the largest pid_max (PID_MAX_LIMIT, 4 << 20): no task has it
NO_SUCH_PID = (4 << 20) + 1
PACKET = bytes(range(64))


def _object(funcs: str, body: str) -> bytes:
    """A tc program whose body is ``body``, after the global functions ``funcs``."""
    return compile_object(HEAD + funcs + 'SEC("tc") int prog(struct __sk_buff *skb)\n{\n'
                          + body + '\n}\nchar _license[] SEC("license") = "GPL";\n',
                          flags=("-O2", "-mcpu=v3"))


def _loads_alike(funcs: str, body: str) -> bytes:
    data = _object(funcs, body)
    assert verdicts(data, whole_log=True) == (None, None)
    return data


def _refused_alike(funcs: str, body: str, message: str) -> None:
    """Both refuse, saying ``message`` (the kernel anywhere in its log: its last line
    names only the call), with the same errno."""
    data = _object(funcs, body)
    with pytest.raises(ElfError) as ours:
        pyebpf.load(data)
    with pytest.raises(KernelError) as theirs:
        pyebpf.kernel.load_object(data)
    count_comparison()
    assert_refused_alike(str(ours.value), theirs.value.log, message)
    assert ours.value.__cause__.errno == theirs.value.errno, \
        (ours.value.__cause__.errno, theirs.value.errno)


def _task_retval(funcs: str, body: str) -> int:
    """The one run's retval in both, the engine's machine this process (as the kernel's
    test run sees it)."""
    data = _loads_alike(funcs, body)
    obj = pyebpf.load(data)
    try:
        ours = obj.program("prog").run(PACKET, machine=this_process()).retval & 0xFFFFFFFF
        with pyebpf.kernel.load_object(data) as kobj:
            theirs = kobj.program("prog").test_run(PACKET).retval
    finally:
        obj.close()
    count_comparison()
    assert ours == theirs, f"pyebpf {ours:#x}, kernel {theirs:#x}"
    return theirs


# --- tags the kernel refuses at the call ----------------------------------------------

MEM_ARG = "__noinline int f(struct __sk_buff *skb, int *p %s) { return p ? *p : 1; }\n"


def test_an_unknown_arg_tag_refuses_the_call():
    _refused_alike(MEM_ARG % '__arg("shiny")', "int x = 1; return f(skb, &x);",
                   "arg#1 has unsupported set of tags")


def test_nullable_without_trusted_is_an_invalid_combination_for_memory():
    _refused_alike(MEM_ARG % '__arg("nullable")', "int x = 1; return f(skb, &x);",
                   "arg#1 has invalid combination of tags")


def test_a_tag_on_an_integer_argument_refuses_the_call():
    _refused_alike('__noinline int f(int x __arg("nonnull")) { return x + UNKNOWN; }\n',
                   "return f(skb->len);", "arg#0 has pointer tag, but is not a pointer type")


def test_a_static_function_s_tags_are_ignored():
    # btf_prepare_func_args refuses them, but check_func_call ignores a static callee's
    # errors: it is verified at each call
    data = _loads_alike('static __noinline int f(int *p __arg("nonnull")) { return *p; }\n',
                        "int x = 7; return f(&x);")
    assert same_retval(data, PACKET) == 7


# --- __arg_ctx ------------------------------------------------------------------------

def test_a_void_pointer_tagged_ctx_is_the_context():
    data = _loads_alike('__noinline int f(void *ctx __arg("ctx")) '
                        '{ return ((struct __sk_buff *)ctx)->len; }\n', "return f(skb);")
    assert same_retval(data, PACKET) == len(PACKET)


def test_ctx_with_another_tag_is_an_invalid_combination():
    _refused_alike('__noinline int f(void *ctx __arg("ctx") __arg("nonnull")) '
                   '{ return UNKNOWN; }\n',
                   "return f(skb);", "arg#0 has invalid combination of tags")


def test_ctx_on_a_struct_other_than_the_context_names_the_context_struct():
    _refused_alike('struct other { int x; };\n'
                   '__noinline int f(struct other *o __arg("ctx")) { return UNKNOWN; }\n',
                   "return f((void *)skb);", "arg#0 should be `struct __sk_buff *`")


def test_struct_sk_buff_untagged_is_the_context_as_the_projection_of___sk_buff():
    data = _loads_alike('__noinline int f(struct sk_buff *s) { return s->len; }\n',
                        "return f((void *)skb);")
    assert same_retval(data, PACKET) == len(PACKET)


def test_struct_sk_buff_tagged_trusted_is_a_context_with_a_tag_too_many():
    _refused_alike('__noinline int f(struct sk_buff *s __arg("trusted")) { return UNKNOWN; }\n',
                   "return f((void *)skb);", "arg#0 has invalid combination of tags")


# --- __arg_trusted --------------------------------------------------------------------

TRUSTED = ('__noinline int f(struct task_struct *t __arg("trusted")) '
           '{ return t->tgid; }\n')
NULLABLE = ('__noinline int f(struct task_struct *t __arg("trusted") __arg("nullable")) '
            '{ return t ? t->tgid : -1; }\n')


def test_a_trusted_argument_reads_the_task_the_caller_passed():
    assert _task_retval(TRUSTED, "return f(CURRENT) == TGID;") == 1


@pytest.mark.parametrize("pid, found", [("TGID", 1), (str(NO_SUCH_PID), 0)])
def test_a_nullable_trusted_argument_takes_a_lookup_that_may_be_null(pid, found):
    assert _task_retval(NULLABLE, f"""
    struct task_struct *t = bpf_task_from_pid({pid});
    int r = f(t) == TGID;
    if (t) bpf_task_release(t);
    return r;""") == found


def test_null_goes_to_a_nullable_trusted_argument():
    assert _task_retval(NULLABLE, "return f(0);") == 0xFFFFFFFF


def test_null_is_refused_for_a_trusted_argument():
    _refused_alike(TRUSTED, "return f(0);", "R1 must be referenced or trusted")


def test_a_lookup_that_may_be_null_is_refused_for_a_trusted_argument():
    _refused_alike(TRUSTED, """
    struct task_struct *t = bpf_task_from_pid(TGID);
    int r = f(t);
    if (t) bpf_task_release(t);
    return r;""", "R1 type=ptr_or_null_ expected=ptr_, trusted_ptr_, rcu_ptr_")


def test_the_context_is_refused_for_a_trusted_argument():
    _refused_alike(TRUSTED, "return f((void *)skb);", "R1 must be referenced or trusted")


def test_trusted_and_nonnull_are_an_invalid_combination():
    _refused_alike('__noinline int f(struct task_struct *t __arg("trusted") __arg("nonnull")) '
                   '{ return t->pid; }\n', "return f(CURRENT);",
                   "arg#0 has invalid combination of tags")


def test_a_trusted_struct_the_kernel_lacks_has_no_matches():
    _refused_alike('__noinline int f(struct no_such_kernel_struct *p __arg("trusted")) '
                   '{ return p->x; }\n', "return f((void *)CURRENT);",
                   "arg#0 reference type('STRUCT no_such_kernel_struct') has no matches")


def test_a_nullable_trusted_argument_read_unchecked_is_refused_in_the_function():
    _refused_alike('__noinline int f(struct task_struct *t __arg("trusted") __arg("nullable")) '
                   '{ return t->pid; }\n', "return f(CURRENT);",
                   "R1 invalid mem access 'trusted_ptr_or_null_'")


# --- __arg_untrusted ------------------------------------------------------------------

def test_an_untrusted_void_pointer_reads_the_caller_s_stack():
    data = _loads_alike('__noinline int f(void *p __arg("untrusted")) '
                        '{ return *(int *)p; }\n',
                        "volatile int x = 1234; return f((void *)&x);")
    assert same_retval(data, PACKET) == 1234


def test_an_untrusted_argument_takes_a_scalar():
    _loads_alike('__noinline int f(void *p __arg("untrusted")) { return p != 0; }\n',
                 "return f((void *)(long)skb->len);")


def test_an_untrusted_void_pointer_is_not_written():
    _refused_alike('__noinline int f(void *p __arg("untrusted")) '
                   '{ *(int *)p = 1; return UNKNOWN; }\n',
                   "int x = 0; return f(&x);", "cannot write into rdonly_untrusted_mem")


def test_an_untrusted_task_reads_the_task_the_caller_passed():
    assert _task_retval('__noinline int f(struct task_struct *t __arg("untrusted")) '
                        '{ return t->tgid; }\n', "return f(CURRENT) == TGID;") == 1


def test_untrusted_with_another_tag_is_refused():
    _refused_alike('__noinline int f(void *p __arg("untrusted") __arg("nullable")) '
                   '{ return UNKNOWN; }\n', "return f(0);",
                   "arg#0 untrusted cannot be combined with any other tags")


# --- dynptr arguments -----------------------------------------------------------------

DYNPTR = ('__noinline int f(struct bpf_dynptr *d) {\n'
          '    __u8 b[2];\n'
          '    if (bpf_dynptr_read(b, 2, d, 6, 0)) return -1;\n'
          '    return b[0] << 8 | b[1];\n}\n')


def test_a_dynptr_argument_reads_the_caller_s_skb_dynptr():
    data = _loads_alike(DYNPTR, "struct bpf_dynptr d; bpf_dynptr_from_skb(skb, 0, &d); "
                                "return f(&d);")
    assert same_retval(data, PACKET) == 6 << 8 | 7


def test_a_dynptr_argument_is_logged_at_level_2_as_the_kernel_logs_it(monkeypatch, capsys,
                                                                     tmp_path):
    data = _object(DYNPTR, "struct bpf_dynptr d; bpf_dynptr_from_skb(skb, 0, &d); "
                           "return f(&d);")
    ours, theirs = level_2_logs(data, "prog", monkeypatch, capsys, tmp_path)

    def argument(log):
        return re.search(r"R1=dynptr_ptr\([^)]*\)", log.split("Validating f()")[1])[0]
    assert argument(ours) == argument(theirs)


def test_an_uninitialised_dynptr_is_refused_for_a_dynptr_argument():
    _refused_alike(DYNPTR, "struct bpf_dynptr d; return f(&d);",
                   "Expected an initialized dynptr as arg #0")


def test_a_dynptr_argument_with_a_tag_is_an_invalid_combination():
    _refused_alike('__noinline int f(struct bpf_dynptr *d __arg("nonnull")) '
                   '{ return UNKNOWN; }\n',
                   "struct bpf_dynptr d; bpf_dynptr_from_skb(skb, 0, &d); return f(&d);",
                   "arg#0 has invalid combination of tags")


def test_a_function_may_not_remake_its_dynptr_argument():
    _refused_alike('__noinline int f(struct bpf_dynptr *d) '
                   '{ char b[8] = {}; return bpf_dynptr_from_mem(b, 8, 0, d); }\n',
                   "struct bpf_dynptr d; bpf_dynptr_from_skb(skb, 0, &d); return f(&d);",
                   "Dynptr has to be an uninitialized dynptr")


# --- __arg_arena ----------------------------------------------------------------------

def test_arena_with_another_tag_is_refused():
    _refused_alike('__noinline int f(int *p __arg("arena") __arg("nonnull")) '
                   '{ return UNKNOWN; }\n',
                   "return f(0);", "arg#0 arena cannot be combined with any other tags")


ARENA = '__noinline int f(int *p __arg("arena")) { return p ? *p : 1; }\n'


@pytest.mark.parametrize("argument", ["(int *)skb", "&x"])
def test_a_pointer_is_refused_for_an_arena_argument(argument):
    _refused_alike(ARENA, f"int x = 5; return f({argument});",
                   "R1 is not a pointer to arena or scalar.")


def test_an_arena_argument_is_a_scalar_the_function_may_not_dereference():
    # a program without an arena (pyebpf has none): the function sees a scalar
    _refused_alike(ARENA, "return f((int *)(long)skb->mark);",
                   "R1 invalid mem access 'scalar'")


def test_an_arena_argument_the_function_only_compares_loads():
    data = _loads_alike('__noinline int f(int *p __arg("arena")) { return p ? 2 : 1; }\n',
                        "return f((int *)(long)skb->mark);")
    assert same_retval(data, PACKET) == 1


# --- pins -----------------------------------------------------------------------------

def test_a_program_got_from_its_pin_keeps_its_functions_trusted_argument(tmp_path,
                                                                       monkeypatch):
    monkeypatch.setenv("PYEBPF_PIN_ROOT", str(tmp_path))
    obj = pyebpf.load(_object(TRUSTED, "return f(CURRENT) == TGID;"))
    try:
        obj.program("prog").pin("prog")
        pyebpf.pinning._live_progs.clear()    # got as another process gets it
        got = pyebpf.Program.from_pin("prog")
        assert [(a.kind, a.struct.name, a.nullable) for f in got.functions
                for a in f.args] == [("btf", "task_struct", False)]
        assert got.run(PACKET, machine=this_process()).retval == 1
    finally:
        obj.close()


# --- callbacks ------------------------------------------------------------------------

def test_a_global_function_is_refused_as_a_bpf_loop_callback():
    # check_ld_imm: the lddw of a callback's address names a static function only
    data = _object('__noinline int cb(__u32 i, void *ctx) { *(__u64 *)ctx += i; return 0; }\n',
                   "__u64 s = 0; bpf_loop(4, cb, &s, 0); return s;")
    assert_refused_alike(*verdicts(data), "callback function not static")
